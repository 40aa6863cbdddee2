# lib.sh: helpers for the integration suites; source it after setting TMP.
#
#   run CMD...                  RC, OUT, ERR of CMD, without tripping set -e
#   expect NAME CODE TEXT CMD...  exit status CODE and TEXT (a fixed string)
#                               in stderr (CODE != 0) or stdout (CODE 0)
#   check NAME CMD...           passes if CMD succeeds
#   jq_check NAME JSON [JQ-ARGS...] FILTER  passes if FILTER is true of JSON
#   node_start DIR SITE         a dev imnode on a free loopback port
#   node_stop                   SIGTERM, then wait
#   converge NAME               all sites' `vectors` (caller's function) agree
#   summary NAME                "NAME: N passed, N failed"; status 1 if any failed
#   netns_up NS VH VN NET       namespace NS linked to the host by a veth pair
#                               (host VH = NET.1, namespace VN = NET.2)
#   netns_down NS VH            removes them
#   peers_onto_veth CL BASE NET  a 3-site cluster's peer addresses moved onto
#                               the veth: sites 0 and 1 on the host, site 2
#                               in the namespace
#   cluster_checks CL SITES...  after `cluster down`: imnode check of each
#                               site, and no sanitizer report in any log
#
# Every helper returns 0 whatever the outcome, so that a suite under
# `set -e` counts failures instead of stopping at the first one.

BIN=${BIN:-bin}
pass=0
fail=0
NODE_PID=
PORT=

ok() { pass=$((pass + 1)); }
bad() {
    fail=$((fail + 1))
    echo "FAIL: $*"
}

run() {
    RC=0
    "$@" >"$TMP/run.out" 2>"$TMP/run.err" || RC=$?
    OUT=$(cat "$TMP/run.out")
    ERR=$(cat "$TMP/run.err")
    return 0
}

expect() {
    local name=$1 code=$2 text=$3
    shift 3
    run "$@"
    if [ "$RC" -ne "$code" ]; then
        bad "$name: exit $RC, want $code; stderr: ${ERR:0:400}; stdout: ${OUT:0:200}"
    elif [ "$code" -ne 0 ] && [[ $ERR != *"$text"* ]]; then
        bad "$name: stderr lacks '$text': ${ERR:0:400}"
    elif [ "$code" -ne 0 ] && [[ $ERR != "imctl: "* && $ERR != "imnode"* ]]; then
        bad "$name: stderr does not start with the program name: ${ERR:0:200}"
    elif [ "$code" -eq 0 ] && [[ $OUT != *"$text"* ]]; then
        bad "$name: stdout lacks '$text': ${OUT:0:400}"
    else
        ok
    fi
    return 0
}

check() {
    local name=$1
    shift
    if "$@" >/dev/null 2>&1; then ok; else bad "$name"; fi
    return 0
}

jq_check() {
    local name=$1 json=$2
    shift 2
    # jq -e succeeds on empty input: a command that printed nothing must
    # not pass.
    if [ -n "$json" ] && jq -e "$@" >/dev/null 2>&1 <<<"$json"; then
        ok
    else
        bad "$name: not (${*: -1}) in: ${json:0:600}"
    fi
    return 0
}

# Tries random ports in 20000..39999 until one binds; the node exits at
# once when its port is taken, which is how a busy port shows.
node_start() {
    local dir=$1 site=$2 attempt i
    for attempt in $(seq 20); do
        PORT=$((10000 + RANDOM % 22000)) # below the ephemeral range (32768-)
        rm -f "$dir/env"
        "$BIN/imnode" --dev --data "$dir" --site "$site" \
            --listen "tcp://127.0.0.1:$PORT" >>"$dir.log" 2>&1 &
        NODE_PID=$!
        for i in $(seq 150); do # 15 s: a node under ASan starts slowly
            kill -0 "$NODE_PID" 2>/dev/null || break
            if [ -f "$dir/env" ]; then
                # shellcheck disable=SC1091
                . "$dir/env"
                if "$BIN/imctl" ping >/dev/null 2>&1; then
                    return 0
                fi
            fi
            sleep 0.1
        done
        kill -9 "$NODE_PID" 2>/dev/null || true
        wait "$NODE_PID" 2>/dev/null || true
        NODE_PID=
    done
    echo "cannot start imnode after 20 attempts; log:"
    tail -n 20 "$dir.log"
    return 1
}

node_stop() {
    if [ -n "$NODE_PID" ]; then
        kill -TERM "$NODE_PID" 2>/dev/null || true
        wait "$NODE_PID" 2>/dev/null || true
        NODE_PID=
    fi
    return 0
}

# free_base: a base port with 200 free ports above it (deploy/cluster uses
# BASE.. for sites, BASE+100.. for etcd, BASE+150.. for coordinators), below
# the kernel's ephemeral range (32768-).
free_base() {
    local b used
    used=$(ss -Htln 2>/dev/null | awk '{n = split($4, a, ":"); print a[n]}')
    for _ in $(seq 1 50); do
        b=$((10000 + (RANDOM % 110) * 200))
        if ! awk -v b="$b" '$1 >= b && $1 < b + 200 { found = 1 } END { exit !found }' <<<"$used"; then
            echo "$b"
            return
        fi
    done
    echo 31000
}

# converge NAME: waits up to 30 s until the caller's `vectors` function
# prints the same non-empty version vector for every site.
converge() {
    local name=$1 v
    for _ in $(seq 1 300); do
        v=$(vectors | sort -u)
        if [ "$(wc -l <<<"$v")" = 1 ] && [ "$v" != down ] && [ "$v" != "{}" ]; then
            ok
            return 0
        fi
        sleep 0.1
    done
    bad "$name: no convergence in 30s: $(vectors | tr '\n' ' ')"
    return 0
}

netns_up() {
    local ns=$1 vh=$2 vn=$3 net=$4
    ip netns add "$ns" 2>/dev/null && command -v nft >/dev/null || return 1
    ip link add "$vh" type veth peer name "$vn" &&
        ip link set "$vn" netns "$ns" &&
        ip addr add "$net.1/24" dev "$vh" && ip link set "$vh" up &&
        ip netns exec "$ns" ip addr add "$net.2/24" dev "$vn" &&
        ip netns exec "$ns" ip link set "$vn" up &&
        ip netns exec "$ns" ip link set lo up
}

netns_down() {
    ip netns del "$1" 2>/dev/null
    ip link del "$2" 2>/dev/null
    return 0
}

peers_onto_veth() {
    local cl=$1 b=$2 net=$3 f
    for f in "$cl"/*/node.conf; do
        sed -i -e "s|peer = tcp://127.0.0.1:$((b + 1))\$|peer = tcp://$net.1:$((b + 1))|" \
            -e "s|peer = tcp://127.0.0.1:$((b + 11))\$|peer = tcp://$net.1:$((b + 11))|" \
            -e "s|peer = tcp://127.0.0.1:$((b + 21))\$|peer = tcp://$net.2:$((b + 21))|" "$f"
    done
}

cluster_checks() {
    local cl=$1 s
    shift
    for s in "$@"; do
        expect "imnode check $s" 0 "OK" "$BIN/imnode" check --config "$cl/$s/node.conf"
    done
    if grep -l "Sanitizer" "$cl"/*/node.log >/dev/null 2>&1; then
        bad "a sanitizer reported: $(grep -h -m3 Sanitizer "$cl"/*/node.log)"
    else
        ok
    fi
}

summary() {
    echo "$1: $pass passed, $fail failed"
    [ "$fail" -eq 0 ]
}
