#!/usr/bin/env bash
# imnode as a process: usage errors, bad config files (file:line: problem),
# a key that does not match its pinned site key, dev-mode reuse, clean
# shutdown on SIGTERM, and `imnode check`.
set -uo pipefail
BIN=${BIN:-bin}
TMP=$(mktemp -d)
pass=0
fail=0
NODE_PID=
cleanup() { [ -n "$NODE_PID" ] && kill -9 "$NODE_PID" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT

ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# expect CODE PATTERN CMD...: exit code and a stderr/stdout pattern
expect() {
    local code=$1 pat=$2 out rc
    shift 2
    out=$("$@" 2>&1)
    rc=$?
    if [ "$rc" -ne "$code" ]; then
        bad "$* -> exit $rc, want $code: $out"
    elif ! grep -qE -- "$pat" <<<"$out"; then
        bad "$* -> output lacks /$pat/: $out"
    else
        ok
    fi
}

port() { echo $((10000 + RANDOM % 22000)); } # below the ephemeral range

expect 0 "usage: imnode" "$BIN/imnode" --help
expect 2 "unknown option '--bogus'" "$BIN/imnode" --bogus
expect 2 "exactly one of --config FILE and --dev" "$BIN/imnode"
expect 2 "check needs --config FILE or --data DIR" "$BIN/imnode" check
expect 2 "unexpected argument 'extra'" "$BIN/imnode" --dev extra
expect 2 "$TMP/missing.conf: No such file" "$BIN/imnode" --config "$TMP/missing.conf"
expect 2 "invalid site code 'a'" "$BIN/imnode" --dev --data "$TMP/x" --site a

# Bad config files: each names file, line and problem, and nothing starts.
conf() { printf '%b' "$2" >"$TMP/$1.conf"; }
conf c1 '[node]\nsite = AMS\nlisen = tcp://127.0.0.1:1\n'
expect 2 "c1.conf:3: unknown key 'lisen' in \[node\]" "$BIN/imnode" --config "$TMP/c1.conf"
conf c2 '# comment\n[nodes]\n'
expect 2 "c2.conf:2: unknown section \[nodes\]" "$BIN/imnode" --config "$TMP/c2.conf"
conf c3 '[node]\nsite = AMS\ndata = d\n[site AMS]\npubkey = ed25519:nope\n'
expect 2 "c3.conf:5: invalid public key" "$BIN/imnode" --config "$TMP/c3.conf"
conf c4 'site = AMS\n'
expect 2 "c4.conf:1: 'site' is outside any section" "$BIN/imnode" --config "$TMP/c4.conf"
conf c5 '[node]\nsite = AMS\ndata = d\n'
expect 2 "c5.conf:1: \[node\] site AMS has no \[site AMS\] section" "$BIN/imnode" --config "$TMP/c5.conf"
conf c6 '[node]\nsite = AMS\ndata = d\nlisten = http://x\n'
expect 2 "c6.conf:4: 'listen' must be a tcp://" "$BIN/imnode" --config "$TMP/c6.conf"

# A dev node: first run creates keys and config, prints the exports.
P=$(port)
"$BIN/imnode" --dev --data "$TMP/dev" --site ams --listen "tcp://127.0.0.1:$P" >"$TMP/dev.out" 2>&1 &
NODE_PID=$!
for _ in $(seq 50); do [ -f "$TMP/dev/env" ] && break; sleep 0.1; done
if grep -q "export IM_NODE='tcp://127.0.0.1:$P'" "$TMP/dev/env" 2>/dev/null; then ok; else bad "dev env file: $(cat "$TMP/dev/env" 2>&1)"; fi
if grep -q "source $TMP/dev/env" "$TMP/dev.out"; then ok; else bad "dev mode does not print what to type next"; fi
key_mode=$(stat -c %a "$TMP/dev/admin.key")
[ "$key_mode" = 600 ] && ok || bad "admin.key mode $key_mode"
# A second node on the same address is refused clearly.
expect 1 "listen on tcp://127.0.0.1:$P: Address in use" "$BIN/imnode" --config "$TMP/dev/node.conf"
kill -TERM "$NODE_PID"
if wait "$NODE_PID"; then ok; else bad "dev node did not exit 0 on SIGTERM"; fi
NODE_PID=
grep -q "stopped" "$TMP/dev.out" && ok || bad "no clean stop logged"
expect 0 "^OK" "$BIN/imnode" check --data "$TMP/dev"
# Reuse with another site code is refused; the data belongs to AMS.
expect 2 "holds site AMS, not NYC" "$BIN/imnode" --dev --data "$TMP/dev" --site nyc

# A key file that does not match the pinned site key.
cp "$TMP/dev/node.conf" "$TMP/dev/other.conf"
"$BIN/imctl" keygen --out "$TMP/dev/other.key" >/dev/null 2>&1
sed -i "s|^key = .*|key = $TMP/dev/other.key|" "$TMP/dev/other.conf"
if [ -f "$TMP/dev/other.key" ]; then
    expect 1 "holds ed25519:.*but \[site AMS\] pins" "$BIN/imnode" --config "$TMP/dev/other.conf"
else
    bad "could not create a second key for the mismatch test"
fi
# A world-readable key file is refused.
chmod 644 "$TMP/dev/site.key"
expect 1 "readable by others" "$BIN/imnode" --config "$TMP/dev/node.conf"
chmod 600 "$TMP/dev/site.key"

echo "node: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
