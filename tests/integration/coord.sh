#!/usr/bin/env bash
# The coordinator with real processes on loopback (DESIGN.md §5): three
# etcd members, three imcoord replicas and the three-site cluster from
# deploy/cluster. One leader is elected and every replica agrees on it;
# `imctl sites` shows every site up; a node killed with kill -9 is declared
# down within its lease + 1 s; a write sent to a standby reaches the
# leader; the leader killed with kill -9 is replaced within a few seconds
# and `imctl sites` still answers; with one etcd member of three killed the
# coordinator still decides; bad input is refused with a clear message.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
TMP=$(mktemp -d)
source tests/integration/lib.sh
CL=$TMP/cluster
LEASE_MS=3000
# imctl may come from another build than the daemons (tests/run drives
# sanitizer-built daemons with the release imctl, so polling stays quick);
# SLACK_MS widens the timing bounds for sanitizer builds, which are slower.
IMCTL=${IMCTL:-$BIN/imctl}
SLACK_MS=${SLACK_MS:-0}

cleanup() {
    [ -f "$CL/sites" ] && BIN=$PWD/$BIN deploy/cluster down --dir "$CL" >/dev/null 2>&1
    if [ "$fail" -eq 0 ]; then rm -rf "$TMP"; else echo "kept $TMP for inspection"; fi
}
trap cleanup EXIT

if [ ! -x "${ETCD_BIN:-/usr/bin/etcd}" ]; then
    echo "coord: SKIPPED: no ${ETCD_BIN:-/usr/bin/etcd} (make deps installs etcd-server)"
    summary coord
    exit $?
fi

# A base port with its site, etcd and coordinator ports free, all below
# the kernel's ephemeral range (32768 and up), where an outgoing connection
# could take one of them first.
free_base() {
    local b p used
    for _ in $(seq 1 50); do
        b=$((20000 + (RANDOM % 1200) * 10))
        used=0
        for p in $(seq "$b" $((b + 29))) $(seq $((b + 100)) $((b + 105))) \
            $(seq $((b + 150)) $((b + 152))); do
            ss -ltn "sport = :$p" 2>/dev/null | grep -q LISTEN && used=1
        done
        [ $used = 0 ] && { echo "$b"; return; }
    done
    echo 39000
}

cluster() { BIN=$PWD/$BIN deploy/cluster "$@" --dir "$CL"; }
coord_api() { jq -r --arg n "$1" '.coordinators[] | select(.name == $n) | .api' "$CL/cluster.json"; }
all_coords() { jq -r '[.coordinators[].api] | join(",")' "$CL/cluster.json"; }
ctl() { "$IMCTL" --key "$CL/keys/admin.key" "$@"; }
node_of() { jq -r --arg s "$1" '.sites[] | select(.code == $s) | .node.api' "$CL/cluster.json"; }

# The replica that leads, by asking each (empty if none says so).
leader_name() {
    local k
    for k in 1 2 3; do
        if ctl --coord "$(coord_api "coord-$k")" --timeout 1500 sites --json 2>/dev/null |
            jq -e '.leader' >/dev/null 2>&1; then
            echo "coord-$k"
            return 0
        fi
    done
    return 1
}

# Milliseconds from T0 (ms since the epoch) until `imctl sites` shows SITE
# in STATE, polling every 100 ms for at most LIMIT ms; prints the time or
# "timeout".
until_state() {
    local site=$1 state=$2 limit=$3 t0=$4 now
    while :; do
        if ctl --coord "$(all_coords)" --timeout 1000 sites --json 2>/dev/null |
            jq -e --arg s "$site" --arg st "$state" \
                '.sites[] | select(.site == $s) | .state == $st' >/dev/null 2>&1; then
            echo $(($(date +%s%3N) - t0))
            return 0
        fi
        now=$(date +%s%3N)
        if [ $((now - t0)) -gt "$limit" ]; then
            echo timeout
            return 1
        fi
        sleep 0.1
    done
}

BASE=$(free_base)
expect "cluster up with etcd and coordinators" 0 "3 coordinator replica(s)" \
    cluster up --sites ams,nyc,sgp --port "$BASE" --etcd 3 --coords 3
jq_check "cluster.json lists coordinators and etcd members" "$(cat "$CL/cluster.json")" \
    '(.coordinators | length) == 3 and all(.coordinators[]; .pid > 0 and (.api | startswith("tcp://")) and (.cmd | length) == 3 and (.id | length) > 0)
     and (.etcd | length) == 3 and all(.etcd[]; .pid > 0 and (.client_url | startswith("http://")) and (.cmd | length) > 5)'
check "env exports IM_COORD" grep -q "^export IM_COORD='tcp://" "$CL/env"

# ---- one leader, and every replica agrees on it ------------------------
leader=$(leader_name) && ok || bad "no replica says it leads"
lid=${leader/coord-/c}
for k in 1 2 3; do
    jq_check "coord-$k names the leader" \
        "$(ctl --coord "$(coord_api "coord-$k")" sites --json)" --arg l "$lid" \
        '.leader_id == $l and (.leader == (.replica == $l))'
done

# ---- every site up ----------------------------------------------------
# Every replica hears every site (nodes heartbeat them all).
for k in 1 2 3; do
    j=
    for _ in $(seq 1 30); do
        j=$(ctl --coord "$(coord_api "coord-$k")" sites --json 2>/dev/null)
        jq -e 'all(.sites[]; .state == "up" and .lease_age_ms != null and .lease_age_ms < 3000)' \
            >/dev/null 2>&1 <<<"$j" && break
        sleep 0.1
    done
    jq_check "imctl sites at coord-$k: all up and heard" "$j" \
        '(.sites | length) == 3 and all(.sites[]; .state == "up" and .lease_age_ms != null and .lease_age_ms < 3000)'
done
expect "imctl sites (text)" 0 "heartbeats arrive" ctl --coord "$(all_coords)" sites

# ---- owners: the default, then a reassignment sent to a standby --------
ctl --node "$(node_of ams)" open --title "coord test" --service shop --impact high \
    --urgency high >/dev/null || bad "open at ams"
owner_json=
for _ in $(seq 1 50); do
    owner_json=$(ctl --coord "$(all_coords)" owner AMS-1 --json 2>/dev/null) && break
    sleep 0.1
done
jq_check "owner: the origin site by default" "$owner_json" \
    '.owner_site == "AMS" and .token > 0 and (.explain | length) == 3'
token1=$(jq -r '.token' <<<"$owner_json")
standby=coord-1
[ "$leader" = coord-1 ] && standby=coord-2
run ctl --coord "$(coord_api "$standby")" reassign AMS-1 --to nyc --reason "integration test"
if [ "$RC" = 0 ] && [[ $OUT == "AMS-1: owner NYC"* ]]; then ok; else
    bad "reassign through a standby: exit $RC: $OUT $ERR"; fi
jq_check "reassign: a new, larger token" "$(ctl --coord "$(all_coords)" owner AMS-1 --json)" \
    --argjson t "$token1" '.owner_site == "NYC" and .token > $t and (.explain[1] | contains("reassigned by operator admin"))'
expect "handback" 0 "AMS-1: owner AMS" ctl --coord "$(all_coords)" handback AMS-1

# ---- kill -9 a node: declared down within lease + 1 s ------------------
t0=$(date +%s%3N)
cluster kill nyc
ms=$(until_state NYC down $((LEASE_MS + 3000 + SLACK_MS)) "$t0")
if [ "$ms" != timeout ] && [ "$ms" -le $((LEASE_MS + 1000 + SLACK_MS)) ]; then ok; else
    bad "NYC declared down after ${ms} ms (want <= $((LEASE_MS + 1000 + SLACK_MS)))"; fi
echo "measured: node kill -9 -> site down in ${ms} ms (lease ${LEASE_MS} ms)"
jq_check "the others stay up" "$(ctl --coord "$(all_coords)" sites --json)" \
    '[.sites[] | select(.site != "NYC") | .state] == ["up", "up"] and
     ([.sites[] | select(.site == "NYC")][0].reason | startswith("silent for"))'

# ---- kill -9 the leader: a standby leads within a few seconds ----------
t0=$(date +%s%3N)
cluster kill "$leader"
new=
while [ $(($(date +%s%3N) - t0)) -lt $((8000 + SLACK_MS)) ]; do
    new=$(leader_name) && [ "$new" != "$leader" ] && break
    new=
    sleep 0.1
done
took=$(($(date +%s%3N) - t0))
if [ -n "$new" ] && [ "$took" -le $((6000 + SLACK_MS)) ]; then ok; else
    bad "no new leader within 6 s of killing $leader (${took} ms)"; fi
echo "measured: leader kill -9 -> $new leads in ${took} ms"
jq_check "imctl sites answers after the leader's death (dead replica listed first)" \
    "$(ctl --coord "$(coord_api "$leader"),$(all_coords)" sites --json)" \
    '(.sites | length) == 3 and .leader_id != ""'
# The new leader waits a full lease, then still sees NYC down and the rest up.
sleep $(((LEASE_MS + 500) / 1000 + 1))
jq_check "the new leader's view" "$(ctl --coord "$(all_coords)" sites --json)" \
    '[.sites[] | .state] == ["up", "down", "up"]'
cluster start nyc
ms=$(until_state NYC up 10000 "$(date +%s%3N)")
[ "$ms" != timeout ] && ok || bad "NYC not up again after restart"

# ---- one etcd member of three killed: the coordinator still decides ----
# The member may be etcd's own leader: etcd then elects another (about a
# second here); reads keep answering (serializable) and writes resume.
t0=$(date +%s%3N)
cluster kill etcd-1
expect "sites with etcd-1 dead" 0 "AMS" ctl --coord "$(all_coords)" sites
for _ in $(seq 1 50); do
    run ctl --coord "$(all_coords)" --timeout 2000 reassign AMS-1 --to SGP
    [ "$RC" = 0 ] && break
    sleep 0.1
done
[ "$RC" = 0 ] && ok || bad "reassign with etcd-1 dead: exit $RC: $ERR"
echo "measured: etcd-1 kill -9 -> next coordinator write in $(($(date +%s%3N) - t0)) ms"
t0=$(date +%s%3N)
cluster kill sgp
ms=$(until_state SGP down $((LEASE_MS + 4000 + SLACK_MS)) "$t0")
if [ "$ms" != timeout ] && [ "$ms" -le $((LEASE_MS + 1500 + SLACK_MS)) ]; then ok; else
    bad "SGP declared down after ${ms} ms with etcd-1 dead"; fi
echo "measured: with etcd-1 dead, node kill -9 -> site down in ${ms} ms"
cluster start sgp
cluster start etcd-1
cluster start "$leader"

# ---- bad input ------------------------------------------------------------
run env -u IM_COORD "$IMCTL" --key "$CL/keys/admin.key" sites
[ "$RC" = 2 ] && [[ $ERR == *"no coordinator address"* ]] && ok ||
    bad "sites without --coord: exit $RC: $ERR"
expect "owner of a bad id" 2 "is not an incident id" ctl --coord "$(all_coords)" owner bogus
expect "reassign to an unknown site" 2 "no site 'LON'" \
    ctl --coord "$(all_coords)" reassign AMS-1 --to LON
expect "nothing listens" 3 "no coordinator answered" ctl --coord tcp://127.0.0.1:1 sites
expect "a node is not a coordinator" 2 "a coordinator operation: send it to a coordinator" \
    ctl --coord "$(node_of ams)" sites
cp "$CL/coord-1/coord.conf" "$TMP/bad.conf"
sed -i 's/^lease = .*/lease = 3 seconds/' "$TMP/bad.conf"
run "$BIN/imcoord" --config "$TMP/bad.conf"
[ "$RC" = 2 ] && [[ $ERR == "imcoord: $TMP/bad.conf:"*"invalid lease '3 seconds'"* ]] && ok ||
    bad "imcoord with a bad lease: exit $RC: $ERR"
run "$BIN/imcoord" --config "$CL/ams/node.conf"
[ "$RC" = 2 ] && [[ $ERR == *"no [coord] section"* ]] && ok ||
    bad "imcoord with a node's config: exit $RC: $ERR"

# ---- down stops everything -------------------------------------------------
pids=$(jq -r '[.sites[].node.pid, .coordinators[].pid, .etcd[].pid] | .[]' "$CL/cluster.json")
cluster down >/dev/null
alive=0
for p in $pids; do
    # A zombie (exited, not yet reaped by init) is not running.
    [ "$p" -gt 0 ] && kill -0 "$p" 2>/dev/null &&
        [ "$(ps -o stat= -p "$p" 2>/dev/null | cut -c1)" != Z ] && alive=1
done
[ $alive = 0 ] && ok || bad "processes left after down"

if grep -l "Sanitizer" "$CL"/*/node.log "$CL"/coord-*/coord.log >/dev/null 2>&1; then
    bad "a sanitizer reported: $(grep -h -m3 "Sanitizer" "$CL"/*/node.log "$CL"/coord-*/coord.log)"
else
    ok
fi

summary coord
