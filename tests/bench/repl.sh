#!/usr/bin/env bash
# tests/bench/repl.sh: the replication benchmarks of `make bench` (called by
# tests/bench/run; make builds, this script builds nothing). Real imnode
# clusters from deploy/cluster on loopback, data under build/ (same disk as
# the repo), each table beside the limits it is bound by, measured in the
# same run:
#
#   4. catch-up: a backlog of BENCH_BACKLOG (1,000,000) events written at
#      AMS while NYC is down; NYC is started empty and timed until it holds
#      them all (median of BENCH_CATCHUP_RUNS, default 3). Beside it, each
#      run: NNG req/rep with messages of the size a catch-up sends
#      (bin/bench_nng), the secure channel's AEAD (bin/bench_chan) and LMDB
#      batched puts (bin/bench_lmdb), converted to events/s with the
#      catch-up's own bytes per event.
#   5. lag: three sites, 5,000 events/s in all (one-op requests paced by
#      bin/imload --rate, a third at each site), every acknowledged event
#      timed from its reply to the first poll that finds it in each other
#      site's version vector (imload --watch); BENCH_LAG_RUNS runs (default
#      3) of BENCH_LAG_S seconds (default 15).
#   6. convergence after a partition: two sites cut apart by nftables for
#      BENCH_PARTITION_S seconds (default 60; drops tcp to both peer ports,
#      so both directions of both links die; the API ports stay open) while
#      each writes BENCH_PARTITION_EVENTS events (default 100,000), then
#      healed; timed until both hold the same version vector.
#
# Exit status: 0 if every benchmark ran (a missed goal prints MISSED), 1 if
# a tool failed. The nft table is removed whatever happens.
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN=${BIN:-bin}
BACKLOG=${BENCH_BACKLOG:-1000000}
CATCHUP_RUNS=${BENCH_CATCHUP_RUNS:-3}
LAG_RUNS=${BENCH_LAG_RUNS:-3}
LAG_S=${BENCH_LAG_S:-15}
LAG_RATE=5000
PART_S=${BENCH_PARTITION_S:-60}
PART_EVENTS=${BENCH_PARTITION_EVENTS:-100000}
INCIDENTS=1000
TABLES=${BENCH_REPL_TABLES:-4 5 6}  # a subset, for working on one of them
want() { [[ " $TABLES " == *" $1 "* ]]; }
POLL_S=0.1                  # vector polls while timing catch-up / convergence

for t in imnode imctl imload bench_lmdb bench_chan bench_nng; do
    [ -x "$BIN/$t" ] || { echo "bench: $BIN/$t is missing; run 'make bench'" >&2; exit 1; }
done
command -v nft >/dev/null || { echo "bench: nft is missing (make deps installs nftables)" >&2; exit 1; }

mkdir -p build
TMP=$(mktemp -d "$PWD/build/bench-repl.XXXXXX")
NFT_TABLE=imbench_$$
CL=

cleanup() {
    nft delete table inet "$NFT_TABLE" 2>/dev/null || true
    [ -n "$CL" ] && [ -f "$CL/sites" ] && BIN=$PWD/$BIN deploy/cluster down --dir "$CL" >/dev/null 2>&1
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

die() { echo "bench: $*" >&2; exit 1; }
val() { awk -v k="$2" '$1 == k { print $2; exit }' "$1"; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f\n", a / b }'; }
verdict() { if [ "$1" = 1 ]; then echo ok; else echo MISSED; fi; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { print (a >= b) ? 1 : 0 }'; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { print (a < b) ? 1 : 0 }'; }
ms() { awk -v u="$1" 'BEGIN { printf "%.2f\n", u / 1000 }'; }
calc() { awk "BEGIN { printf \"%.${2:-0}f\n\", $1 }"; }
row() { printf '  %-34s %10s   %-38s %10s  %7s  %s\n' "$@"; }
rule() { printf '  %s\n' "$(printf '%.0s-' $(seq 112))"; }
now() { echo "$EPOCHREALTIME"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

# A base port with 30 ports above it that no socket uses, below the
# kernel's ephemeral range (32768 up), where any outgoing connection may
# take one between our check and the node's listen.
free_base() {
    local b used
    for _ in $(seq 1 50); do
        b=$((20000 + (RANDOM % 60) * 200)) # BASE..BASE+199: sites, etcd, coordinators
        used=$(ss -tanH "( sport >= :$b and sport <= :$((b + 199)) )" 2>/dev/null | wc -l)
        [ "$used" = 0 ] && { echo "$b"; return; }
    done
    echo 31000
}

cluster() { BIN=$PWD/$BIN deploy/cluster "$@" --dir "$CL"; }
api_of() { jq -r --arg s "$1" '.sites[] | select(.code == $s) | .node.api' "$CL/cluster.json"; }
peer_port_of() { jq -r --arg s "$1" '.sites[] | select(.code == $s) | .node.peer' "$CL/cluster.json" | sed 's/.*://'; }
pid_of() { cat "$CL/$1/node.pid"; }
ctl() { local s=$1; shift; "$BIN/imctl" --node "$(api_of "$s")" --key "$CL/keys/admin.key" "$@"; }
have() { ctl "$1" --timeout 5000 peers --json 2>/dev/null | jq -c '.have' || echo '{}'; }
seq_of() { ctl "$1" --timeout 5000 peers --json 2>/dev/null | jq -r --arg o "$2" '.have[$o] // 0' || echo 0; }

# load SITE OUT ARGS...: bin/imload against SITE's node.
load() {
    local s=$1 out=$2
    shift 2
    "$BIN/imload" --node "$(api_of "$s")" --key "$CL/keys/admin.key" "$@" >"$out" 2>"$out.err" ||
        die "imload at $s ($*) failed: $(cat "$out.err")"
}

# Stops the cluster; a sanitizer build's report in a node log is a failure.
end_cluster() {
    cluster down >/dev/null
    if grep -q "Sanitizer" "$CL"/*/node.log 2>/dev/null; then
        die "a sanitizer reported: $(grep -h -m3 "Sanitizer" "$CL"/*/node.log)"
    fi
}

new_cluster() { # NAME SITES: a port another program took meanwhile gets a retry
    local try
    for try in 1 2 3; do
        CL=$TMP/$1.$try
        cluster up --sites "$2" --coords 0 --port "$(free_base)" >"$TMP/up.out" 2>&1 && return 0
        cluster down >/dev/null 2>&1 || true
    done
    die "cluster up ($2) failed: $(tail -3 "$TMP/up.out")"
}

# Figures later tables cite from table 4 ("-" when it did not run).
cu=0

# ---- 4. catch-up --------------------------------------------------------

med() { # med PREFIX KEY RUNS
    local vals=() r
    for r in $(seq "$3"); do vals+=("$(val "$TMP/$1.$r.out" "$2")"); done
    median "${vals[@]}"
}
runs() { # runs PREFIX KEY RUNS
    local r vals=""
    for r in $(seq "$3"); do vals="$vals $(val "$TMP/$1.$r.out" "$2")"; done
    echo "$vals"
}

if want 4; then
new_cluster catchup ams,nyc
cluster stop nyc
load ams "$TMP/open.out" open --count "$INCIDENTS" --ops 256
reqs=$(((BACKLOG + 255) / 256))
load ams "$TMP/fill.out" note --existing --incidents "$INCIDENTS" --ops 256 \
    --inflight 16 --requests "$reqs"
fill=$(val "$TMP/fill.out" events_per_s)
total=$(seq_of ams AMS)
[ "$total" -ge "$BACKLOG" ] || die "AMS holds $total events, not $BACKLOG"
MSG_BYTES=$((4 * 1024 * 1024)) # REPL_BATCH_BYTES_MAX: what a catching-up link sends

for r in $(seq "$CATCHUP_RUNS"); do
    cluster stop nyc
    rm -rf "$CL/nyc/data"
    a0=$(cpu_ticks "$(pid_of ams)")
    t0=$(now)
    cluster start nyc
    deadline=$(calc "$t0 + 300")
    until [ "$(seq_of nyc AMS)" = "$total" ]; do
        [ "$(lt "$(now)" "$deadline")" = 1 ] || die "catch-up run $r: NYC not caught up in 300 s"
        kill -0 "$(pid_of nyc)" 2>/dev/null || die "NYC exited: $(tail -3 "$CL/nyc/node.log")"
        sleep "$POLL_S"
    done
    t1=$(now)
    n_cpu=$(cpu_ticks "$(pid_of nyc)")
    a_cpu=$(($(cpu_ticks "$(pid_of ams)") - a0))
    wire=$(ctl nyc peers --json | jq '[.peers[] | select(.site == "AMS")][0].bytes_in')
    {
        echo "events $total"
        echo "seconds $(calc "$t1 - $t0" 3)"
        echo "events_per_s $(calc "$total / ($t1 - $t0)")"
        echo "wire_bytes_per_event $(calc "$wire / $total" 1)"
        echo "wire_mb_per_s $(calc "$wire / ($t1 - $t0) / 1e6" 1)"
        echo "recv_cpu_us_per_event $(calc "$n_cpu / $HZ * 1e6 / $total" 2)"
        echo "send_cpu_us_per_event $(calc "$a_cpu / $HZ * 1e6 / $total" 2)"
        echo "recv_cpu_cores $(calc "$n_cpu / $HZ / ($t1 - $t0)" 2)"
    } >"$TMP/cu.$r.out"
    "$BIN/bench_nng" --size "$MSG_BYTES" --ms 1500 >"$TMP/nng.$r.out" 2>"$TMP/nng.err" ||
        die "bench_nng failed: $(cat "$TMP/nng.err")"
    "$BIN/bench_chan" 0.3 >"$TMP/chan.$r.raw" 2>"$TMP/chan.err" || die "bench_chan failed: $(cat "$TMP/chan.err")"
    awk '$1 == "seal+open" && $2 == "in" && $4 == 16384 { print "aead_mb_per_s " $6 }
         $1 == "raw" && $2 == "encrypt+decrypt" && $3 == 16384 { print "raw_aead_mb_per_s " $5 }' \
        "$TMP/chan.$r.raw" >"$TMP/chan.$r.out"
    "$BIN/bench_lmdb" --ms 1500 "$TMP/lmdb.$r" >"$TMP/lmdb.$r.out" 2>"$TMP/lmdb.err" ||
        die "bench_lmdb failed: $(cat "$TMP/lmdb.err")"
    rm -rf "$TMP/lmdb.$r"
done
end_cluster

R=$CATCHUP_RUNS
cu=$(med cu events_per_s "$R")
bpe=$(med cu wire_bytes_per_event "$R")
wire_mbs=$(med cu wire_mb_per_s "$R")
recv_us=$(med cu recv_cpu_us_per_event "$R")
send_us=$(med cu send_cpu_us_per_event "$R")
recv_cores=$(med cu recv_cpu_cores "$R")
nng_mbs=$(med nng reqrep_mb_per_s "$R")
nng_msgs=$(med nng reqrep_msgs_per_s "$R")
pair_mbs=$(med nng pair_mb_per_s "$R")
aead_mbs=$(med chan aead_mb_per_s "$R")
lmdb_puts=$(med lmdb batch_puts_per_s "$R")
as_events() { calc "$1 * 1e6 / $bpe"; }
nng_ev=$(as_events "$nng_mbs")
aead_ev=$(as_events "$aead_mbs")

echo "4. Catch-up: $total events written at AMS while NYC was down; NYC started empty and"
echo "   timed from its start until its vector holds them all (median of $R; two sites;"
echo "   $bpe bytes/event on the wire, which converts the limits' MB/s to events/s)"
row "ours" "" "peer / limit (same run)" "peer" "ratio" "goal"
rule
row "catch-up events/s" "$cu" "goal" "200000" "$(ratio "$cu" 200000)" \
    ">= 1: $(verdict "$(ge "$cu" 200000)")"
row "catch-up events/s" "$cu" "NNG req/rep, 4 MiB msgs, as events/s" "$nng_ev" "$(ratio "$cu" "$nng_ev")" ""
row "catch-up events/s" "$cu" "AEAD seal+open 16 KiB, as events/s" "$aead_ev" "$(ratio "$cu" "$aead_ev")" ""
row "catch-up events/s" "$cu" "LMDB puts/s, 1000 per synced txn" "$lmdb_puts" "$(ratio "$cu" "$lmdb_puts")" ""
row "link MB/s (encrypted, on the wire)" "$wire_mbs" "NNG req/rep MB/s, 4 MiB msgs" "$nng_mbs" "$(ratio "$wire_mbs" "$nng_mbs")" ""
row "  the same" "$wire_mbs" "NNG pair MB/s (streaming), 4 MiB" "$pair_mbs" "$(ratio "$wire_mbs" "$pair_mbs")" ""
row "receiver CPU us/event" "$recv_us" "sender CPU us/event" "$send_us" "$(ratio "$recv_us" "$send_us")" ""
row "receiver CPU cores while catching up" "$recv_cores" "cores (shared with the sender)" "$(nproc)" "$(ratio "$recv_cores" "$(nproc)")" ""
echo "   The fill: $BACKLOG events at $fill/s (256 ops/request). NNG: $nng_msgs round trips/s of"
echo "   4 MiB. Up to 4 pushes per link in flight: the sender builds the next while the"
echo "   receiver verifies one and commits another; its writer (fold, LMDB puts) is the long pole."
echo
fi

# ---- 5. replication lag at a steady 5,000 events/s ----------------------

if want 5; then
new_cluster lag ams,nyc,sgp
per_site=$((LAG_RATE / 3))
reqs=$((per_site * LAG_S))
for r in $(seq "$LAG_RUNS"); do
    pids=()
    for s in ams nyc sgp; do
        others=$(for o in ams nyc sgp; do [ "$o" = "$s" ] || printf '%s,' "$(api_of "$o")"; done)
        "$BIN/imload" --node "$(api_of "$s")" --key "$CL/keys/admin.key" note \
            --incidents 100 --ops 1 --inflight 32 --conns 2 --requests "$reqs" \
            --rate "$per_site" --watch "${others%,}" >"$TMP/lag.$r.$s.out" 2>"$TMP/lag.$r.$s.err" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do
        wait "$p" || die "imload (lag run $r) failed: $(cat "$TMP"/lag."$r".*.err)"
    done
    # The floor of a lag, on the same disk in the same minute: one synced
    # commit at the receiver.
    "$BIN/bench_lmdb" --ms 1000 "$TMP/lmdb5.$r" >"$TMP/lmdb5.$r.out" 2>"$TMP/lmdb.err" ||
        die "bench_lmdb failed: $(cat "$TMP/lmdb.err")"
    rm -rf "$TMP/lmdb5.$r"
    node_p99=0
    for s in ams nyc sgp; do
        v=$(ctl "$s" peers --json | jq '[.peers[].lag_p99_ms] | max')
        node_p99=$(awk -v a="$node_p99" -v b="$v" 'BEGIN { print (b > a) ? b : a }')
    done
    f=("$TMP"/lag."$r".{ams,nyc,sgp}.out)
    {
        echo "lag_p50_us $(median $(for x in "${f[@]}"; do val "$x" lag_p50_us; done))"
        echo "lag_p99_us $(for x in "${f[@]}"; do val "$x" lag_p99_us; done | sort -g | tail -1)"
        echo "lag_max_us $(for x in "${f[@]}"; do val "$x" lag_max_us; done | sort -g | tail -1)"
        echo "events_per_s $(for x in "${f[@]}"; do val "$x" events_per_s; done | awk '{ s += $1 } END { print s }')"
        echo "lag_missing $(for x in "${f[@]}"; do val "$x" lag_missing; done | awk '{ s += $1 } END { print s }')"
        echo "lag_events $(for x in "${f[@]}"; do val "$x" lag_events; done | awk '{ s += $1 } END { print s }')"
        echo "node_lag_p99_ms $node_p99"
        echo "watch_poll_p99_us $(for x in "${f[@]}"; do val "$x" watch_poll_p99_us; done | sort -g | tail -1)"
    } >"$TMP/lag.$r.out"
done
end_cluster

R=$LAG_RUNS
lag50=$(med lag lag_p50_us "$R")
lag99=$(med lag lag_p99_us "$R")
lagmax=$(med lag lag_max_us "$R")
lag_rate=$(med lag events_per_s "$R")
node99=$(med lag node_lag_p99_ms "$R")
poll99=$(med lag watch_poll_p99_us "$R")
single_p50=$(med lmdb5 single_commit_p50_us "$R")
single_p99=$(med lmdb5 single_commit_p99_us "$R")
txn1000_us=$(calc "1000 * 1e6 / $(med lmdb5 batch_puts_per_s "$R")")
missing=$(runs lag lag_missing "$R" | awk '{ for (i = 1; i <= NF; i++) s += $i } END { print s + 0 }')
lag_events=$(runs lag lag_events "$R" | awk '{ for (i = 1; i <= NF; i++) s += $i } END { print s + 0 }')

echo "5. Replication lag, three sites, $LAG_RATE events/s in all (one-op requests, a third at each"
echo "   site), per event and per receiving site: from its acknowledgement at its origin to the"
echo "   first poll that finds it in the receiver's version vector (median of $R runs of ${LAG_S} s;"
echo "   p50: middle site's, p99 and max: worst site's; $lag_events event arrivals timed)"
row "ours" "" "peer / limit (same run)" "peer" "ratio" "goal"
rule
row "lag p99 ms" "$(ms "$lag99")" "goal ms" "20" "$(ratio "$(ms "$lag99")" 20)" \
    "< 20 ms: $(verdict "$(lt "$(ms "$lag99")" 20)")"
row "lag p50 ms" "$(ms "$lag50")" "one synced LMDB commit p50 ms" "$(ms "$single_p50")" "$(ratio "$lag50" "$single_p50")" ""
row "lag p99 ms" "$(ms "$lag99")" "one synced LMDB commit p99 ms" "$(ms "$single_p99")" "$(ratio "$lag99" "$single_p99")" ""
row "lag p50 ms" "$(ms "$lag50")" "one synced LMDB txn of 1000 puts, ms" "$(ms "$txn1000_us")" "$(ratio "$lag50" "$txn1000_us")" ""
row "lag max ms" "$(ms "$lagmax")" "" "" "" ""
row "lag p99 ms (ours, per event)" "$(ms "$lag99")" "node's own lag_p99_ms (imctl peers)" "$node99" "$(ratio "$(ms "$lag99")" "$node99")" ""
row "lag p99 ms" "$(ms "$lag99")" "poll round trip p99 ms (over-states)" "$(ms "$poll99")" "$(ratio "$lag99" "$poll99")" ""
row "events/s written (3 sites)" "$lag_rate" "target rate" "$LAG_RATE" "$(ratio "$lag_rate" "$LAG_RATE")" ""
echo "   A lag is at least one commit at the receiver plus a round trip; a push leaves at its"
echo "   origin's commit (up to 4 in flight per link) and waits for the receiver's transaction"
echo "   in progress, then its own: an event typically waits for one to two commits. The"
echo "   node's commits write every page their events dirty (tens of pages, two fdatasyncs),"
echo "   far more than a 1-put commit: the 1000-put row is closer."
echo "   Polls (each a signed API request) over-state a lag by up to a poll period (2 ms) and"
echo "   round trip, whose tail under this load is the row above. The node's lag_p99_ms times"
echo "   only the newest event of each push, from its HLC (before its origin committed): a"
echo "   cross-check, not the per-event figure."
[ "$missing" = 0 ] || echo "   WARNING: $missing event arrivals never seen within 30 s of the run's end"
echo
fi

# ---- 6. convergence after a 60-second partition --------------------------

if want 6; then
new_cluster part ams,nyc
load ams "$TMP/p.open.ams" open --count 100 --ops 100
load nyc "$TMP/p.open.nyc" open --count 100 --ops 100
pa=$(peer_port_of ams)
pn=$(peer_port_of nyc)
nft add table inet "$NFT_TABLE"
nft add chain inet "$NFT_TABLE" out '{ type filter hook output priority 0; }'
nft add rule inet "$NFT_TABLE" out ip daddr 127.0.0.1 tcp dport "{ $pa, $pn }" drop
p0=$(now)
rate=$(((PART_EVENTS + PART_S - 1) / PART_S))
reqs=$(((PART_EVENTS + 15) / 16))
pids=()
for s in ams nyc; do
    "$BIN/imload" --node "$(api_of "$s")" --key "$CL/keys/admin.key" note \
        --existing --incidents 100 --ops 16 --inflight 8 --conns 2 --requests "$reqs" \
        --rate "$rate" >"$TMP/p.load.$s" 2>"$TMP/p.load.$s.err" &
    pids+=($!)
done
for p in "${pids[@]}"; do
    wait "$p" || die "imload during the partition failed: $(cat "$TMP"/p.load.*.err)"
done
left=$(calc "$PART_S - ($(now) - $p0)" 3)
[ "$(ge "$left" 0)" = 1 ] && sleep "$left"
a_seq=$(seq_of ams AMS)
n_seq=$(seq_of nyc NYC)
cut_a=$(seq_of nyc AMS)
cut_n=$(seq_of ams NYC)
part_s=$(calc "$(now) - $p0" 1)
nft delete table inet "$NFT_TABLE"
h0=$(now)
deadline=$(calc "$h0 + 300")
until [ "$(have ams)" = "$(have nyc)" ] && [ "$(seq_of nyc AMS)" = "$a_seq" ] &&
    [ "$(seq_of ams NYC)" = "$n_seq" ]; do
    [ -n "${BENCH_DEBUG:-}" ] && echo "$(calc "$(now) - $h0" 2) $(have ams) $(have nyc) $(ctl ams peers --json | jq -c "[.peers[0].connected, .peers[0].last_error]") $(ctl nyc peers --json | jq -c "[.peers[0].connected, .peers[0].last_error]")" >&2
    [ "$(lt "$(now)" "$deadline")" = 1 ] || die "no convergence 300 s after healing"
    sleep "$POLL_S"
done
conv=$(calc "$(now) - $h0" 2)
end_cluster
lacked=$(((a_seq - cut_a) + (n_seq - cut_n)))
at_cu=-
[ "$cu" != 0 ] && at_cu=$(calc "$lacked / $cu" 2)

echo "6. Convergence after a partition: AMS and NYC cut apart for $part_s s (nftables drops tcp"
echo "   to both peer ports; the API ports stay open), each writing $PART_EVENTS events meanwhile"
echo "   ($(val "$TMP/p.load.ams" events_per_s) and $(val "$TMP/p.load.nyc" events_per_s) events/s); healed, then timed until"
echo "   both hold the same version vector (one run: it takes ${PART_S} s)"
row "ours" "" "peer / limit (same run)" "peer" "ratio" "goal"
rule
row "seconds to converge" "$conv" "goal s" "5" "$(ratio "$conv" 5)" "< 5 s: $(verdict "$(lt "$conv" 5)")"
row "seconds to converge" "$conv" "$lacked events at table 4's rate, s" "$at_cu" "$(ratio "$conv" "$at_cu")" ""
row "seconds to converge" "$conv" "fresh-dial period of a dead link, s" "2" "$(ratio "$conv" 2)" ""
echo "   Each side lacked the other's $PART_EVENTS events ($lacked in all). A dead link is noticed"
echo "   by its request timing out (10 s); a dial that has not connected in 2 s starts afresh."
echo
fi

want 4 && want 5 || exit 0
echo "Runs behind the medians (in order):"
echo "  catch-up events/s:               $(runs cu events_per_s "$CATCHUP_RUNS")"
echo "  receiver CPU us/event:           $(runs cu recv_cpu_us_per_event "$CATCHUP_RUNS")"
echo "  NNG req/rep MB/s, 4 MiB:         $(runs nng reqrep_mb_per_s "$CATCHUP_RUNS")"
echo "  AEAD seal+open MB/s, 16 KiB:     $(runs chan aead_mb_per_s "$CATCHUP_RUNS")"
echo "  LMDB puts/s, 1000 per txn:       $(runs lmdb batch_puts_per_s "$CATCHUP_RUNS")"
echo "  lag p99 ms:                      $(for r in $(seq "$LAG_RUNS"); do printf ' %s' "$(ms "$(val "$TMP/lag.$r.out" lag_p99_us)")"; done)"
