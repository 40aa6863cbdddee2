#!/usr/bin/env bash
# A real partition: SGP runs in its own network namespace, linked to the
# host (AMS, NYC) by a veth pair. nftables inside the namespace cuts the
# link; all three sites keep taking writes (SGP's API is on its own
# loopback, reached from inside the namespace); the link heals and every
# site converges to the same log and the same incident state, with every
# acknowledged write of either side present everywhere (DESIGN.md §7.1-7.3).
# Needs root (ip netns, nft); the addresses are this test's own hosts.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
# The nodes may run a sanitizer build; the clients need not.
CTL=${CTL_BIN:-$BIN}/imctl
TMP=$(mktemp -d)
source tests/integration/lib.sh
CL=$TMP/cluster
NS=imtest-$$
VH=imh$$
VN=imn$$
NET=10.231.$((RANDOM % 200 + 20))
SGP_PID=

cleanup() {
    [ -n "$SGP_PID" ] && kill -9 "$SGP_PID" 2>/dev/null
    [ -f "$CL/sites" ] && BIN=$PWD/$BIN deploy/cluster down --dir "$CL" >/dev/null 2>&1
    netns_down "$NS" "$VH"
    if [ "$fail" -eq 0 ]; then rm -rf "$TMP"; else echo "kept $TMP for inspection"; fi
}
trap cleanup EXIT

if ! netns_up "$NS" "$VH" "$VN" "$NET"; then
    # make deps installs nftables and iproute2; the suite runs as root.
    bad "needs root, ip netns, veth and nft (make deps installs them)"
    summary partition
    exit 1
fi

# Keys and configs from deploy/cluster, then the peer addresses moved onto
# the veth: AMS and NYC on the host side, SGP inside the namespace.
B=$(free_base)
BIN=$PWD/$BIN deploy/cluster up --sites ams,nyc,sgp --coords 0 --dir "$CL" --port "$B" >"$TMP/up.log" 2>&1 ||
    { bad "cluster up: $(tail -5 "$TMP/up.log")"; summary partition; exit 1; }
BIN=$PWD/$BIN deploy/cluster down --dir "$CL" >/dev/null 2>&1
peers_onto_veth "$CL" "$B" "$NET"
for s in ams nyc; do BIN=$PWD/$BIN deploy/cluster start "$s" --dir "$CL"; done
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
vectors() { local s; for s in ams nyc sgp; do ctl "$s" --timeout 5000 peers --json 2>/dev/null | jq -c '.have' || echo down; done; }
connected() { # SITE: all its links up
    ctl "$1" --timeout 5000 peers --json 2>/dev/null | jq -e 'all(.peers[]; .connected)' >/dev/null
}

for _ in $(seq 1 100); do connected ams && connected sgp && break; sleep 0.1; done
check "all links up across the veth" connected sgp
for s in ams nyc sgp; do
    ctl "$s" open --title "before the cut at $s" --service net --impact high --urgency low >/dev/null || bad "open at $s"
done
converge "before the cut"

# ---- cut SGP off; everyone keeps writing --------------------------------
ip netns exec "$NS" nft -f - <<EOF
table inet imcut {
  chain in { type filter hook input priority -10; iifname "$VN" drop; }
  chain out { type filter hook output priority -10; oifname "$VN" drop; }
}
EOF
ACK=$TMP/acked
: >"$ACK"
for i in $(seq 1 20); do
    for s in ams nyc sgp; do
        if ctl "$s" note "$(tr a-z A-Z <<<"${s}")-1" "cut $s $i" >/dev/null 2>&1; then
            echo "$s $i" >>"$ACK"
        fi
    done
done
ctl sgp open --title "opened at SGP while cut off" --service net --impact medium --urgency medium >/dev/null ||
    bad "open at sgp while cut off"
[ "$(wc -l <"$ACK")" = 60 ] && ok || bad "writes while cut off: $(wc -l <"$ACK") of 60 acknowledged"
sleep 3.5
jq_check "SGP sees its links down" "$(ctl sgp peers --json)" 'all(.peers[]; .connected | not)'
jq_check "AMS and NYC still replicate" "$(ctl nyc peers --json)" \
    '[.peers[] | select(.site == "AMS")][0].connected'
a=$(ctl ams show SGP-1 --json | jq '[.timeline[] | select(.text | startswith("note: cut sgp"))] | length')
[ "$a" = 0 ] && ok || bad "AMS saw SGP's notes through a cut link ($a)"

# ---- heal ---------------------------------------------------------------
ip netns exec "$NS" nft delete table inet imcut
converge "after healing"
for s in ams nyc sgp; do
    for o in ams nyc sgp; do
        O=$(tr a-z A-Z <<<"$o")
        n=$(ctl "$s" show "$O-1" --json | jq --arg p "note: cut $o " '[.timeline[] | select(.text | startswith($p))] | length')
        [ "$n" = 20 ] && ok || bad "$s holds $n of 20 notes written at $o while cut off"
    done
done
h=$(for s in ams nyc sgp; do
    for id in AMS-1 NYC-1 SGP-1 SGP-2; do ctl "$s" show "$id" --json; done | sha256sum
done | sort -u | wc -l)
[ "$h" = 1 ] && ok || bad "incident state differs between sites after healing"

kill -TERM "$SGP_PID" 2>/dev/null
wait "$SGP_PID" 2>/dev/null
SGP_PID=
BIN=$PWD/$BIN deploy/cluster down --dir "$CL" >/dev/null 2>&1
cluster_checks "$CL" ams nyc sgp
summary partition
