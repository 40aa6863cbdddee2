#!/usr/bin/env bash
# Site-to-site replication with real imnode processes on loopback
# (DESIGN.md §4, §7.1-7.3): a three-site cluster from deploy/cluster;
# writes at every site converge everywhere with identical state; a site
# that was down catches up; a site killed with kill -9 in the middle of a
# burst loses nothing and duplicates nothing; a relay carries A's events
# to C when A and C cannot reach each other; every store checks out.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
# The nodes may run a sanitizer build; the clients need not.
CTL=${CTL_BIN:-$BIN}/imctl
TMP=$(mktemp -d)
source tests/integration/lib.sh
CL=$TMP/cluster

cleanup() {
    [ -f "$CL/sites" ] && BIN=$PWD/$BIN deploy/cluster down --dir "$CL" >/dev/null 2>&1
    jobs -p | xargs -r kill 2>/dev/null
    if [ "$fail" -eq 0 ]; then rm -rf "$TMP"; else echo "kept $TMP for inspection"; fi
}
trap cleanup EXIT


cluster() { BIN=$PWD/$BIN deploy/cluster "$@" --dir "$CL"; }
node_of() { jq -r --arg s "$1" '.sites[] | select(.code == $s) | .node.api' "$CL/cluster.json"; }
ctl() { # SITE ARGS...
    local s=$1
    shift
    "$CTL" --node "$(node_of "$s")" --key "$CL/keys/admin.key" "$@"
}

# Version vectors of every site, one line each.
vectors() {
    local s
    for s in ams nyc sgp; do
        ctl "$s" --timeout 5000 peers --json 2>/dev/null | jq -c '.have' || echo "down"
    done
}


# Every incident, shown in full, is the same JSON at every site.
same_state() {
    local name=$1 s ids a b
    ids=$(ctl ams list --all --limit 100000 --json | jq -r '.items[].id' | sort)
    a=$(for i in $ids; do ctl ams show "$i" --json | jq -c 'del(.timeline[]?.age)'; done | sha256sum)
    for s in nyc sgp; do
        b=$(for i in $ids; do ctl "$s" show "$i" --json | jq -c 'del(.timeline[]?.age)'; done | sha256sum)
        if [ "$a" != "$b" ]; then
            bad "$name: $s shows different incidents than ams"
            return 0
        fi
        [ "$(ctl "$s" list --all --limit 100000 --json | jq -r '.items[].id' | sort)" = "$ids" ] ||
            { bad "$name: $s lists other incidents than ams"; return 0; }
    done
    ok
}

BASE=$(free_base)
expect "cluster up" 0 "3 sites up" cluster up --sites ams,nyc,sgp --coords 0 --port "$BASE"
jq_check "cluster.json lists every node" "$(cat "$CL/cluster.json")" \
    '(.sites | length) == 3 and all(.sites[]; .node.pid > 0 and (.node.cmd | length) == 3) and (.admin_key | length) > 0'
expect "cluster status" 0 "AMS:up" cluster status
jq_check "cluster.json lists HTTP and integrations" "$(cat "$CL/cluster.json")" \
    'all(.sites[]; (.node.http | startswith("http://")) and (.integrations.pagerduty.routing_key | length) == 32 and (.integrations.alertmanager.token | length) == 32)'
run cluster status --bogus
[ "$RC" = 2 ] && [[ $ERR == "cluster: unknown option '--bogus'"* ]] && ok ||
    bad "cluster refuses a bad option: exit $RC: $ERR"

# ---- writes at every site converge ------------------------------------
for s in ams nyc sgp; do
    for i in 1 2 3; do
        ctl "$s" open --title "$s incident $i" --service "svc-$i" --impact medium --urgency high >/dev/null ||
            bad "open at $s"
    done
done
ctl nyc note AMS-1 "seen from NYC" >/dev/null 2>&1 || {
    sleep 1
    ctl nyc note AMS-1 "seen from NYC" >/dev/null || bad "note from nyc on AMS-1"
}
ctl ams ack AMS-2 >/dev/null || bad "ack at ams"
# An alert taken in over HTTP at NYC is an incident everywhere.
pd=$(jq -r '.sites[] | select(.code == "nyc") | .integrations.pagerduty' "$CL/cluster.json")
code=$(curl -s -o /dev/null -w '%{http_code}' -XPOST -H 'Content-Type: application/json' \
    "$(jq -r .url <<<"$pd")" -d "{\"routing_key\":\"$(jq -r .routing_key <<<"$pd")\",\"event_action\":\"trigger\",\"payload\":{\"summary\":\"replicated alert\",\"source\":\"db1\",\"severity\":\"error\"}}")
[ "$code" = 202 ] && ok || bad "PagerDuty trigger at NYC: HTTP $code"
converge "writes at three sites"
same_state "after writes at three sites"
expect "an alert taken in at NYC shows at SGP" 0 "replicated alert" ctl sgp list --site NYC
expect "show a remote incident" 0 "seen from NYC" ctl sgp show AMS-1
expect "list --site at another site" 0 "NYC-3" ctl ams list --site NYC
jq_check "peers shows connected links" "$(ctl ams peers --json)" \
    'all(.peers[]; .connected) and (.peers | length) == 2 and all(.peers[]; .bytes_out > 0)'

# ---- the API for other hosts: secure channel only ---------------------
R=$(jq -r '.sites[] | select(.code == "ams") | .node.remote' "$CL/cluster.json")
PUB=$(jq -r '.sites[] | select(.code == "ams") | .node.pubkey' "$CL/cluster.json")
NYCPUB=$(jq -r '.sites[] | select(.code == "nyc") | .node.pubkey' "$CL/cluster.json")
CN=$(jq -r .cluster "$CL/cluster.json")
rctl() { "$CTL" --node "$R" --key "$CL/keys/admin.key" --cluster "$CN" "$@"; }
expect "remote API: ping over the secure channel" 0 "site:          AMS" rctl --node-key "$PUB" ping
expect "remote API: a write over the secure channel" 0 "note added" rctl --node-key "$PUB" note AMS-1 "via the remote API"
expect "remote API: the node must prove the pinned key" 1 "unexpected peer identity" rctl --node-key "$NYCPUB" ping
expect "remote API: another cluster is refused" 1 "secure session" rctl --node-key "$PUB" --cluster other-cluster ping
"$CTL" keygen --out "$TMP/stranger.key" >/dev/null
expect "remote API: an operator the node does not pin is refused" 1 "secure session" \
    "$CTL" --node "$R" --key "$TMP/stranger.key" --cluster "$CN" --node-key "$PUB" ping
expect "remote API: plaintext is refused there" 1 "only encrypted sessions" "$CTL" --node "$R" --key "$CL/keys/admin.key" --timeout 2000 ping
expect "a non-loopback node needs --node-key" 2 "not a loopback address" \
    "$CTL" --node tcp://192.0.2.1:7400 --key "$CL/keys/admin.key" ping
expect "--node-key must be a key" 2 "is not a public key" \
    "$CTL" --node tcp://192.0.2.1:7400 --key "$CL/keys/admin.key" --node-key nope ping

# ---- a site down while others write, then back ------------------------
cluster stop sgp
for i in 1 2 3 4 5; do
    ctl ams note AMS-1 "while SGP is down $i" >/dev/null || bad "write at ams while sgp down"
    ctl nyc open --title "nyc while sgp down $i" --service down --impact low --urgency low >/dev/null ||
        bad "write at nyc while sgp down"
done
jq_check "peers shows the down link" "$(ctl ams peers --json)" \
    '[.peers[] | select(.site == "SGP")][0].connected == false'
cluster start sgp
converge "a stopped site catches up"
same_state "after catch-up"

# ---- kill -9 in the middle of a burst ---------------------------------
ACKED=$TMP/acked
: >"$ACKED"
(
    for i in $(seq 1 150); do
        if "$CTL" --node "$(node_of ams)" --key "$CL/keys/admin.key" \
            note AMS-3 "burst $i" >/dev/null 2>&1; then
            echo "burst $i" >>"$ACKED"
        fi
    done
) &
burst=$!
sleep 0.4
cluster kill nyc
sleep 0.3
cluster start nyc
wait "$burst"
converge "after kill -9 of a receiving site"
n_acked=$(wc -l <"$ACKED")
for s in ams nyc sgp; do
    got=$(ctl "$s" show AMS-3 --json | jq '[.timeline[] | select(.kind == "note" and (.text | startswith("note: burst ")))] | length')
    uniq=$(ctl "$s" show AMS-3 --json | jq '[.timeline[] | select(.kind == "note") | .text] | unique | length')
    missing=$(ctl "$s" show AMS-3 --json | jq -r '.timeline[] | select(.kind == "note") | .text | sub("^note: "; "")' |
        sort | comm -13 - <(sort "$ACKED") | wc -l)
    if [ "$missing" -gt 0 ] || [ "$got" -lt "$n_acked" ]; then
        bad "kill -9: $s holds $got of $n_acked acknowledged burst notes ($missing missing)"
    elif [ "$got" != "$uniq" ]; then
        bad "kill -9: $s holds duplicated notes ($got, $uniq unique)"
    else
        ok
    fi
done
[ "$n_acked" -ge 100 ] && ok || bad "burst: only $n_acked of 150 writes acknowledged"
same_state "after kill -9"

# ---- relay: AMS and SGP cannot reach each other, both reach NYC --------
cluster down >/dev/null
# Neither knows the other's address: AMS <-> NYC <-> SGP only.
awk 'BEGIN{s=""} /^\[site /{s=$2} !(s=="SGP]" && /^peer =/)' "$CL/ams/node.conf" >"$TMP/a" && mv "$TMP/a" "$CL/ams/node.conf"
awk 'BEGIN{s=""} /^\[site /{s=$2} !(s=="AMS]" && /^peer =/)' "$CL/sgp/node.conf" >"$TMP/a" && mv "$TMP/a" "$CL/sgp/node.conf"
for s in ams nyc sgp; do cluster start "$s"; done
for i in 1 2 3 4 5 6; do
    ctl ams open --title "relayed $i" --service relay --impact high --urgency high >/dev/null || bad "open at ams (relay)"
done
ctl ams note AMS-1 "relayed note" >/dev/null || bad "note at ams (relay)"
converge "relay through NYC"
same_state "after relay"
jq_check "AMS has no link to SGP" "$(ctl ams peers --json)" \
    '[.peers[] | select(.site == "SGP")][0] | .connected == false and .bytes_out == 0'
jq_check "SGP got AMS's events from NYC" "$(ctl sgp peers --json)" \
    '.have.AMS >= 1 and ([.peers[] | select(.site == "NYC")][0].events_in > 0)'

# ---- every store checks out ------------------------------------------
cluster down >/dev/null
for s in ams nyc sgp; do
    expect "imnode check $s" 0 "OK" "$BIN/imnode" check --config "$CL/$s/node.conf"
done

# ---- sanitizer builds report into the node logs ------------------------
if grep -l "Sanitizer" "$CL"/*/node.log >/dev/null 2>&1; then
    bad "a sanitizer reported in a node log: $(grep -h -m3 "Sanitizer" "$CL"/*/node.log)"
else
    ok
fi

summary replication
