#!/usr/bin/env bash
# crash: kill -9 a real node in the middle of a burst of concurrent writes,
# restart it on the same data directory, and check that
#   (a) every write that imctl acknowledged (exit 0) is there, read back
#       through the API after the restart: each opened incident with its
#       title, each note with its unique text;
#   (b) `imnode check` passes on the crashed store (hash chains, checkpoint
#       signatures, every incident equal to a fresh fold of its events).
# Each trial crashes the store the previous trials left behind. At the end,
# every write of every trial is checked again, and the checker is shown a
# write that was never made, which it must report: a check that cannot fail
# proves nothing.
#
#   CRASH_TRIALS=5      trials (make crash-long runs 200)
#   CRASH_WRITERS=4     concurrent imctl loops
#   CRASH_SEED=N        replays the kill moments of a failed run
#   BIN=bin             or build/asan/bin
# Last line: "crash: N passed, N failed"; exit status non-zero on failure.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
BIN=${BIN:-bin}
TMP=$(mktemp -d)
# shellcheck source=tests/integration/lib.sh
. tests/integration/lib.sh

TRIALS=${CRASH_TRIALS:-5}
WRITERS=${CRASH_WRITERS:-4}
SEED=${CRASH_SEED:-$(($(date +%s%N) % 1000000))}
# The burst runs this long (ms, uniform) after the first acknowledged write
# before the kill: long enough for hundreds of acknowledged writes.
KILL_MS_MIN=${CRASH_KILL_MS_MIN:-800}
KILL_MS_MAX=${CRASH_KILL_MS_MAX:-2000}
DATA=$TMP/node
WRITER_PIDS=()

DONE=
cleanup() {
    local p
    [ -z "$DONE" ] && fail=$((fail + 1))
    touch "$TMP/stop"
    for p in "${WRITER_PIDS[@]}"; do
        wait "$p" 2>/dev/null
    done
    if [ -n "$NODE_PID" ]; then
        kill -9 "$NODE_PID" 2>/dev/null
        wait "$NODE_PID" 2>/dev/null
    fi
    if [ "$fail" -eq 0 ]; then
        rm -rf "$TMP"
    else
        echo "CRASH_SEED=$SEED; kept $TMP for inspection (node log: $DATA.log)"
    fi
    echo "crash: $pass passed, $fail failed"
    if [ "$fail" -eq 0 ]; then exit 0; else exit 1; fi
}
trap cleanup EXIT

for b in imctl imnode; do
    if [ ! -x "$BIN/$b" ]; then
        echo "FAIL: no $BIN/$b: build it first"
        exit 1 # cleanup prints the summary
    fi
done

# writer TRIAL W: until $TMP/stop exists, opens an incident and adds notes
# to it (a fresh incident every 40 writes). Appends one line per write that
# imctl acknowledged, only after it exited 0:
#   open ID TITLE      or      note ID TEXT
# A write that failed (the node died under it) may or may not be stored; it
# is not recorded and not checked.
writer() {
    local t=$1 w=$2 i=0 id="" text out
    local log=$TMP/acked.$t.$w
    : >"$log"
    while [ ! -e "$TMP/stop" ]; do
        text="t$t-w$w-$i"
        if [ -z "$id" ] || [ $((i % 40)) -eq 0 ]; then
            if out=$("$BIN/imctl" --timeout 2000 open --title "crash $text" \
                --service crash --impact low --urgency low 2>/dev/null); then
                id=$out
                echo "open $id crash $text" >>"$log"
            else
                id=""
            fi
        elif "$BIN/imctl" --timeout 2000 note "$id" "$text" \
            >/dev/null 2>&1; then
            echo "note $id $text" >>"$log"
        fi
        i=$((i + 1))
    done
}

# verify FILE...: every line of the acknowledgement logs is on the node.
# Prints each missing write; sets MISSING to their count.
verify() {
    local id
    MISSING=0
    sort -u "$@" >"$TMP/want"
    awk '{ print $2 }' "$TMP/want" | sort -u >"$TMP/ids"
    : >"$TMP/have"
    while read -r id; do
        # One show per incident: its title and every note's text.
        "$BIN/imctl" show "$id" --json 2>/dev/null |
            jq -r --arg id "$id" '
                ("open " + $id + " " + .title),
                (.timeline[] | select(.kind == "note")
                    | "note " + $id + " " + (.text | sub("^note: "; "")))' \
                >>"$TMP/have" 2>/dev/null
    done <"$TMP/ids"
    sort -u -o "$TMP/have" "$TMP/have"
    comm -23 "$TMP/want" "$TMP/have" >"$TMP/missing"
    MISSING=$(wc -l <"$TMP/missing")
    if [ "$MISSING" -gt 0 ]; then
        echo "missing acknowledged writes (first 10 of $MISSING):"
        head -n 10 "$TMP/missing"
    fi
    return 0
}

# check_store WHEN: `imnode check` on the stopped node's data passes.
check_store() {
    if "$BIN/imnode" check --data "$DATA" >"$TMP/check.out" 2>&1 &&
        grep -q '^OK$' "$TMP/check.out"; then
        ok
    else
        bad "$1: imnode check failed (CRASH_SEED=$SEED):"
        tail -n 20 "$TMP/check.out"
    fi
}

node_start "$DATA" AMS || exit 1 # cleanup prints the summary
echo "seed $SEED, $TRIALS trials, $WRITERS writers"
total_acked=0
for t in $(seq "$TRIALS"); do
    RANDOM=$((SEED + t)) # the kill moment of trial t replays from the seed
    kill_ms=$((KILL_MS_MIN + RANDOM % (KILL_MS_MAX - KILL_MS_MIN + 1)))
    rm -f "$TMP/stop"
    WRITER_PIDS=()
    for w in $(seq "$WRITERS"); do
        writer "$t" "$w" &
        WRITER_PIDS+=($!)
    done
    # The burst is on once a first write is acknowledged (at most 15 s:
    # a node under ASan is slow).
    for _ in $(seq 150); do
        cat "$TMP"/acked."$t".* 2>/dev/null | grep -q . && break
        sleep 0.1
    done
    sleep "$(printf '%d.%03d' $((kill_ms / 1000)) $((kill_ms % 1000)))"
    kill -9 "$NODE_PID"
    wait "$NODE_PID" 2>/dev/null
    NODE_PID=
    touch "$TMP/stop"
    for p in "${WRITER_PIDS[@]}"; do wait "$p"; done
    WRITER_PIDS=()
    acked=$(cat "$TMP"/acked."$t".* | wc -l)
    total_acked=$((total_acked + acked))
    if [ "$acked" -gt 0 ]; then
        ok
    else
        bad "trial $t (CRASH_SEED=$SEED): no write was acknowledged before the kill"
    fi

    # (b) the crashed store is consistent, before anything else touches it.
    check_store "trial $t after kill -9 at ${kill_ms}ms"

    # (a) after a restart, every acknowledged write is there.
    if ! node_start "$DATA" AMS; then
        bad "trial $t (CRASH_SEED=$SEED): the node does not restart"
        break
    fi
    verify "$TMP"/acked."$t".*
    if [ "$MISSING" -eq 0 ]; then
        ok
    else
        bad "trial $t (CRASH_SEED=$SEED): $MISSING of $acked acknowledged writes lost"
    fi
    echo "trial $t: killed after ${kill_ms}ms, $acked acknowledged writes, $MISSING missing"
done

# Writes of earlier trials survived the later crashes too.
verify "$TMP"/acked.*
if [ "$MISSING" -eq 0 ]; then
    ok
else
    bad "all trials (CRASH_SEED=$SEED): $MISSING of $total_acked acknowledged writes lost"
fi

# The checker catches a lost write: a note that was never written, on an
# incident that exists, and an incident that was never opened.
some_id=$(awk '$1 == "open" { print $2; exit }' "$TMP/want")
printf 'note %s never-written\nopen AMS-999999999 crash never-opened\n' \
    "$some_id" >"$TMP/acked.fake"
lost=$MISSING
verify "$TMP"/acked.* >/dev/null
if [ "$MISSING" -eq $((lost + 2)) ]; then
    ok
else
    bad "the checker found $((MISSING - lost)) of 2 fabricated writes missing"
fi
rm -f "$TMP/acked.fake"

# A clean stop after all that, and the store still checks.
node_stop
check_store "after the last trial and a clean stop"
echo "$TRIALS trials, $total_acked acknowledged writes"
DONE=1
