#!/usr/bin/env bash
# Fencing across a real partition (DESIGN.md §5, §7.4): SGP runs in its own
# network namespace and is cut off by nftables from its peers and the
# coordinator, beyond its lease, while a webhook receiver stays reachable.
#
#  - an incident the coordinator moves while SGP is cut off (a manual
#    reassignment to NYC) and that SGP acknowledges under its old token,
#    with its lease still live: after healing, every site shows SGP's
#    acknowledgement refused, with the reason, in the timeline;
#  - SGP's owner-only actions after its lease lapsed are refused at once
#    (nothing written); its notes are accepted and reach every site;
#  - SGP's open incidents fail over to a live site, which acts on them; at
#    every point of the folded log exactly one site acted as owner;
#  - notifications: SGP's pending page is not sent by SGP once its lease
#    lapsed (though the receiver is reachable), the new owner sends it, and
#    every notification is delivered exactly once across the failover and
#    the heal, none lost.
# Needs root (ip netns, nft). Last line: "fencing: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
CTL=${CTL_BIN:-$BIN}/imctl
TMP=$(mktemp -d)
source tests/integration/lib.sh
CL=$TMP/cluster
NS=imfence-$$
VH=imfh$$
VN=imfn$$
NET=10.232.$((RANDOM % 200 + 20))
SGP_PID=
RX_PID=
LEASE_S=8

cleanup() {
    [ -n "$SGP_PID" ] && kill -9 "$SGP_PID" 2>/dev/null
    [ -n "$RX_PID" ] && kill "$RX_PID" 2>/dev/null
    [ -f "$CL/sites" ] && BIN=$PWD/$BIN deploy/cluster down --dir "$CL" >/dev/null 2>&1
    netns_down "$NS" "$VH"
    if [ "$fail" -eq 0 ]; then rm -rf "$TMP"; else echo "kept $TMP for inspection"; fi
}
trap cleanup EXIT
give_up() { bad "$1"; summary fencing; exit 1; }

netns_up "$NS" "$VH" "$VN" "$NET" || give_up "needs root, ip netns, veth and nft (make deps installs them)"

# The webhook receiver, on the host side of the veth so that SGP reaches it.
python3 tests/integration/receiver.py "$TMP/rx.port" "$TMP/rx.log" "$NET.1" &
RX_PID=$!
for _ in $(seq 50); do [ -f "$TMP/rx.port" ] && break; sleep 0.1; done
[ -f "$TMP/rx.port" ] || give_up "receiver did not start"
RXP=$(cat "$TMP/rx.port")
touch "$TMP/rx.log" "$TMP/rx.log.closed" # 503 until opened

# Keys and configs from deploy/cluster (one etcd member, one coordinator),
# then the peer and coordinator addresses moved onto the veth.
B=$(free_base)
CLUSTER_SITE_LEASE=${LEASE_S}s BIN=$PWD/$BIN deploy/cluster up --sites ams,nyc,sgp --etcd 1 --coords 1 \
    --dir "$CL" --port "$B" >"$TMP/up.log" 2>&1 || give_up "cluster up: $(tail -5 "$TMP/up.log")"
BIN=$PWD/$BIN deploy/cluster down --dir "$CL" >/dev/null 2>&1
COORD="tcp://$NET.1:$((B + 150))"
peers_onto_veth "$CL" "$B" "$NET"
sed -i "s|api = tcp://127.0.0.1:$((B + 150))\$|api = $COORD|" "$CL"/{ams,nyc,sgp}/node.conf "$CL"/coord-1/coord.conf
for s in ams nyc sgp; do
    S=$(tr a-z A-Z <<<"$s")
    cat >>"$CL/$s/node.conf" <<EOF

[notify pager]
type = webhook
url = http://$NET.1:$RXP/gate/$S
on = new_p2, owner_change
attempts = 20
backoff = 200ms
EOF
done
for n in etcd-1 coord-1 ams nyc; do
    BIN=$PWD/$BIN deploy/cluster start "$n" --dir "$CL" >/dev/null || give_up "start $n"
done
ip netns exec "$NS" "$BIN/imnode" --config "$CL/sgp/node.conf" >>"$CL/sgp/node.log" 2>&1 &
SGP_PID=$!

api() { case $1 in ams) echo "tcp://127.0.0.1:$B" ;; nyc) echo "tcp://127.0.0.1:$((B + 10))" ;; sgp) echo "tcp://127.0.0.1:$((B + 20))" ;; esac; }
ctl() { # SITE ARGS...: SGP's API is on the namespace's own loopback
    local s=$1
    shift
    if [ "$s" = sgp ]; then
        ip netns exec "$NS" "$CTL" --node "$(api sgp)" --key "$CL/keys/admin.key" "$@"
    else
        "$CTL" --node "$(api "$s")" --key "$CL/keys/admin.key" "$@"
    fi
}
gctl() { "$CTL" --coord "$COORD" --key "$CL/keys/admin.key" "$@"; }
vectors() { local s; for s in ams nyc sgp; do ctl "$s" --timeout 5000 peers --json 2>/dev/null | jq -c '.have' || echo down; done; }
owner_at() { ctl "$1" show "$2" --json 2>/dev/null | jq -r '.owner.site + " " + (.owner.token | tostring)'; }
wait_for() { # LIMIT_S CMD...: polls every 100 ms
    local limit=$1
    shift
    for _ in $(seq 1 $((limit * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    return 1
}
all_up() { gctl --timeout 1000 sites --json | jq -e '[.sites[] | select(.state == "up")] | length == 3'; }
assigned() { # SITE ID: SITE's copy of ID carries a coordinator token
    ctl "$1" show "$2" --json | jq -e '.owner.token > 0'
}

wait_for 40 all_up || give_up "the coordinator does not see all three sites up: $(gctl sites 2>&1)"
ok
ctl sgp open --title "SGP db latency" --service db --impact medium --urgency low >/dev/null || bad "open SGP-1"
ctl sgp open --title "SGP vpn flaps" --service vpn --impact medium --urgency low >/dev/null || bad "open SGP-2"
ctl sgp open --title "SGP payments down" --service pay --impact high --urgency medium >/dev/null || bad "open SGP-3"
for id in SGP-1 SGP-2 SGP-3; do
    wait_for 20 assigned sgp "$id" && ok || bad "$id: no coordinator assignment recorded at SGP: $(owner_at sgp "$id")"
done
converge "before the cut"
for id in SGP-1 SGP-2 SGP-3; do
    o=$(owner_at ams "$id")
    [[ $o == "SGP "* ]] && ok || bad "$id owned by '$o' before the cut, want SGP"
done
T1=$(owner_at sgp SGP-2 | cut -d' ' -f2)
# SGP-3 is a P2: SGP, its owner, tries to page; the receiver answers 503.
wait_for 10 grep -q '"path": "/gate/SGP"' "$TMP/rx.log" && ok || bad "SGP did not try to page for SGP-3"

# ---- cut SGP off from its peers and the coordinator (not the receiver) --
ip netns exec "$NS" nft -f - <<EOF
table inet imcut {
  chain in { type filter hook input priority -10; iifname "$VN" tcp sport $RXP accept; iifname "$VN" drop; }
  chain out { type filter hook output priority -10; oifname "$VN" tcp dport $RXP accept; oifname "$VN" drop; }
}
EOF
T_CUT=$(date +%s%3N)

# A global manager moves SGP-2 to NYC while SGP, cut off, still holds a
# live lease and its old token: SGP's acknowledgement after NYC recorded
# the move is stale.
expect "reassign SGP-2 while SGP is cut off" 0 "SGP-2: owner NYC" gctl reassign SGP-2 --to NYC --reason "fencing test"
nyc_owns() { [[ $(owner_at nyc SGP-2) == "NYC "* ]]; }
wait_for 6 nyc_owns && ok || bad "NYC did not record SGP-2's reassignment: $(owner_at nyc SGP-2)"
sleep 0.3 # SGP's event must sort after NYC's record (HLC)
if [ $(($(date +%s%3N) - T_CUT)) -lt $(((LEASE_S - 3) * 1000)) ]; then
    expect "SGP acknowledges SGP-2 under its old token (lease still live)" 0 "acknowledged" ctl sgp ack SGP-2
else
    bad "too slow: NYC recorded the reassignment $(($(date +%s%3N) - T_CUT)) ms after the cut; SGP's lease may be over"
fi
expect "SGP adds a note while cut off" 0 "note added" ctl sgp note SGP-1 "isolated: looking at the db"

# ---- SGP's lease lapses; its incidents fail over -------------------------
moved() { [[ $(gctl owner "$1" --json | jq -r '.owner_site') != SGP ]]; }
wait_for $((LEASE_S + 8)) moved SGP-1 && ok || bad "SGP-1 not failed over: $(gctl owner SGP-1 2>&1)"
wait_for 5 moved SGP-3 && ok || bad "SGP-3 not failed over: $(gctl owner SGP-3 2>&1)"
X=$(gctl owner SGP-1 --json | jq -r '.owner_site' | tr A-Z a-z)
X3=$(gctl owner SGP-3 --json | jq -r '.owner_site' | tr A-Z a-z)
echo "measured: SGP-1 failed over to $X $(($(date +%s%3N) - T_CUT)) ms after the cut (lease ${LEASE_S}s)"
jq_check "the failover's reason names SGP" "$(gctl owner SGP-1 --json)" '.reason | test("SGP")'
while [ $(($(date +%s%3N) - T_CUT)) -lt $((LEASE_S * 1000 + 500)) ]; do sleep 0.1; done
expect "SGP's owner-only action after its lease lapsed is refused" 1 "lease expired" ctl sgp start SGP-1
m=$(ip netns exec "$NS" curl -s "http://127.0.0.1:$((B + 22))/metrics")
grep -q '^im_coord_lease_held 0$' <<<"$m" && ok || bad "SGP's /metrics does not show its lease lapsed: $(grep im_coord_lease <<<"$m")"
expect "SGP's note after its lease lapsed is accepted" 0 "note added" ctl sgp note SGP-1 "isolated: lease gone, still watching"
x_owns() { [[ $(owner_at "$X" SGP-1) == "$(tr a-z A-Z <<<"$X") "* ]]; }
wait_for 6 x_owns && ok || bad "$X did not record its ownership of SGP-1: $(owner_at "$X" SGP-1)"
expect "the new owner acts on SGP-1" 0 "acknowledged" ctl "$X" ack SGP-1

# The receiver opens: the new owner of SGP-3 pages; SGP, whose lease
# lapsed, must not, although it reaches the receiver.
rm -f "$TMP/rx.log.closed"
X3U=$(tr a-z A-Z <<<"$X3")
delivered() { jq -s -e --arg p "/gate/$1" --arg id "$2" '[.[] | select(.path == $p and .status == 200 and (.body | fromjson | .incident.id) == $id)] | length >= 1' "$TMP/rx.log"; }
wait_for 15 delivered "$X3U" SGP-3 && ok || bad "$X3U did not page for SGP-3"
sleep 3
n=$(jq -s '[.[] | select(.path == "/gate/SGP" and .status == 200)] | length' "$TMP/rx.log")
[ "$n" = 0 ] && ok || bad "SGP sent $n notifications while its lease was lapsed"

# ---- heal ------------------------------------------------------------------
ip netns exec "$NS" nft delete table inet imcut
wait_for 30 all_up && ok || bad "SGP not up again after healing: $(gctl sites 2>&1)"
converge "after healing"
sleep 2 # outcomes of deliveries still in flight, and their replication
converge "after the last deliveries"

for s in ams nyc sgp; do
    j=$(ctl "$s" show SGP-2 --json)
    jq_check "$s: SGP's stale acknowledgement of SGP-2 is kept, refused, with the reason" "$j" \
        '[.timeline[] | select(.site == "SGP" and .kind == "acknowledged")] | length == 1 and all(.[]; .refused and (.refused_reason | contains("stale owner token")))'
    jq_check "$s: SGP-2 is NYC's and not acknowledged" "$j" '.owner.site == "NYC" and .state == "new"'
    j=$(ctl "$s" show SGP-1 --json)
    jq_check "$s: SGP's notes from the cut are kept" "$j" \
        '[.timeline[] | select(.kind == "note" and .site == "SGP" and (.text | contains("isolated:")) and (.refused | not))] | length == 2'
    # Walk the folded timeline: each accepted owner-only action is taken
    # by the owner in force at that point.
    for id in SGP-1 SGP-2 SGP-3; do
        jq_check "$s: $id: one owner at every point of the log" "$(ctl "$s" show "$id" --json)" '
            reduce (.timeline[] | select(.refused | not)) as $e ({owner: "SGP", ok: true};
                if $e.kind == "owner" then .owner = ($e.text | capture("^owner: (?<s>[A-Z0-9]+)").s)
                elif ($e.kind | IN("acknowledged", "started", "held", "resolved", "closed", "reopened", "cancelled", "assigned", "update"))
                then .ok = (.ok and $e.site == .owner) else . end) | .ok'
    done
done
h=$(for s in ams nyc sgp; do
    for id in SGP-1 SGP-2 SGP-3; do ctl "$s" show "$id" --json; done | sha256sum
done | sort -u | wc -l)
[ "$h" = 1 ] && ok || bad "incident state differs between sites after healing"
jq_check "SGP-2's token moved past SGP's" "$(gctl owner SGP-2 --json)" --argjson t "$T1" '.token > $t'
jq_check "the returning site does not take SGP-1 back" "$(gctl owner SGP-1 --json)" '.owner_site != "SGP"'
expect "SGP, back, is told who owns SGP-1" 1 "is owned by $(tr a-z A-Z <<<"$X")" ctl sgp start SGP-1

# Exactly once, none lost: one 200 per notification id; the page for
# SGP-3's opening and every ownership change reached the receiver.
dups=$(jq -s '[.[] | select(.status == 200) | .key] | group_by(.) | map(select(length > 1)) | length' "$TMP/rx.log")
[ "$dups" = 0 ] && ok || bad "$dups notification(s) delivered more than once: $(jq -c 'select(.status == 200) | [.path, .key]' "$TMP/rx.log" | sort | uniq -d)"
for want in "SGP-3 new_p2" "SGP-1 owner_change" "SGP-2 owner_change" "SGP-3 owner_change"; do
    read -r id rule <<<"$want"
    n=$(jq -s --arg id "$id" --arg r "$rule" '[.[] | select(.status == 200) | .body | fromjson | select(.incident.id == $id and (.rules | index($r)))] | length' "$TMP/rx.log")
    [ "$n" = 1 ] && ok || bad "$id $rule delivered $n times, want 1"
done
for s in ams nyc sgp; do
    n=$(ctl "$s" show SGP-3 --json | jq '[.timeline[] | select(.kind == "notified")] | length')
    [ "$n" -ge 2 ] && ok || bad "$s: SGP-3 records $n deliveries, want the page and the ownership change"
done

kill -TERM "$SGP_PID" 2>/dev/null
wait "$SGP_PID" 2>/dev/null
SGP_PID=
BIN=$PWD/$BIN deploy/cluster down --dir "$CL" >/dev/null 2>&1
cluster_checks "$CL" ams nyc sgp
summary fencing
