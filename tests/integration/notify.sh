#!/usr/bin/env bash
# Notifications from a real imnode to a real HTTP receiver
# (tests/integration/receiver.py) and a command: delivered exactly once,
# retried with exponential back-off on 5xx, a final failure recorded as an
# event after the channel's attempts, a 4xx refused at once, the same
# Idempotency-Key on every attempt, and nothing sent again after a
# restart or a kill -9.
#
#   BIN=bin (default) bash tests/integration/notify.sh
# Last line: "notify: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
TMP=$(mktemp -d)
# shellcheck source=tests/integration/lib.sh
. tests/integration/lib.sh

RX_PID=
DONE=
cleanup() {
    if [ -z "$DONE" ]; then fail=$((fail + 1)); fi
    if [ -n "$NODE_PID" ]; then
        kill -9 "$NODE_PID" 2>/dev/null || true
        wait "$NODE_PID" 2>/dev/null || true
    fi
    [ -n "$RX_PID" ] && kill "$RX_PID" 2>/dev/null
    if [ "$fail" -eq 0 ]; then rm -rf "$TMP"; else echo "kept $TMP for inspection"; fi
    echo "notify: $pass passed, $fail failed"
    if [ "$fail" -eq 0 ]; then exit 0; else exit 1; fi
}
trap cleanup EXIT
trap 'echo "FAIL: stopped at line $LINENO: $BASH_COMMAND"' ERR

python3 tests/integration/receiver.py "$TMP/rx.port" "$TMP/rx.log" &
RX_PID=$!
for _ in $(seq 50); do [ -f "$TMP/rx.port" ] && break; sleep 0.1; done
RX="http://127.0.0.1:$(cat "$TMP/rx.port")"
touch "$TMP/rx.log"

node_start "$TMP/node" AMS || exit 1
node_stop
cat >>"$TMP/node/node.conf" <<EOF

[notify pager]
type = webhook
url = $RX/flaky/2
on = new_p1, major, resolved
backoff = 300ms

[notify down]
type = webhook
url = $RX/down
on = new_p1
attempts = 3
backoff = 100ms

[notify reject]
type = webhook
url = $RX/reject
on = new_p1

[notify script]
type = command
command = cat > "$TMP/cmd.json"
on = new_p1
EOF
node_start "$TMP/node" AMS || exit 1

api() { curl -s -H "Authorization: Bearer $IM_API_TOKEN" "$IM_HTTP/api/v1/incidents$1"; }
hits() { grep -c "\"path\": \"$1\"" "$TMP/rx.log" || true; }
notified() { api "/$1" | jq -c '[.timeline[] | select(.kind == "notified") | .text]'; }

# A P1 through PagerDuty intake.
curl -s -o /dev/null -H 'Content-Type: application/json' "$IM_HTTP/v2/enqueue" --data-binary \
    "{\"routing_key\":\"$IM_PD_KEY\",\"event_action\":\"trigger\",\"dedup_key\":\"n1\",\"payload\":{\"summary\":\"payments down\",\"source\":\"pay1\",\"severity\":\"critical\"}}"
ID=$(api '?priority=P1' | jq -r '.items[0].id')
for _ in $(seq 100); do
    [ "$(notified "$ID" | jq length)" -ge 4 ] && break
    sleep 0.1
done
N=$(notified "$ID")
jq_check "four channels, four outcomes" "$N" 'length == 4'
jq_check "flaky receiver: delivered on the third attempt" "$N" \
    'any(. == "notified pager (new_p1,major) on attempt 3: HTTP 200")'
jq_check "down receiver: failed after 3 attempts" "$N" \
    'any(. == "notification to down (new_p1) failed after 3 attempts: HTTP 500")'
jq_check "4xx: failed at once" "$N" \
    'any(. == "notification to reject (new_p1) failed after 1 attempts: HTTP 400")'
jq_check "command: delivered" "$N" 'any(startswith("notified script (new_p1) on attempt 1: exit 0"))'
[ "$(hits /flaky/2)" = 3 ] && ok || bad "flaky: $(hits /flaky/2) requests, want 3"
[ "$(hits /down)" = 3 ] && ok || bad "down: $(hits /down) requests, want 3"
[ "$(hits /reject)" = 1 ] && ok || bad "reject: $(hits /reject) requests, want 1"

# Back-off doubles (300 ms, then 600 ms), and every attempt carries the
# same id, in the header and in the JSON.
FLAKY=$(jq -s -c '[.[] | select(.path == "/flaky/2")]' "$TMP/rx.log")
jq_check "back-off doubles" "$FLAKY" \
    '(.[1].t - .[0].t) >= 0.3 and (.[2].t - .[1].t) >= 0.6 and (.[2].t - .[1].t) > (.[1].t - .[0].t)'
NID=$(api "/$ID" | jq -r '.timeline[0] | "\(.site)/\(.seq)/pager"')
jq_check "one idempotency key per notification" "$FLAKY" --arg id "$NID" \
    'map(.key) == [$id, $id, $id] and all(.[]; .body | fromjson | .id == $id)'
jq_check "the payload" "$(jq -r '.[0].body' <<<"$FLAKY")" --arg id "$ID" \
    '.incident.id == $id and .incident.priority == "P1" and .rules == ["new_p1", "major"]
     and .event.kind == "opened" and .channel == "pager"'
jq_check "JSON on the command's stdin" "$(cat "$TMP/cmd.json")" --arg id "$ID" \
    '.incident.id == $id and .channel == "script"'

# Nothing is sent again: not by later passes, not after a restart, not
# after a kill -9.
sleep 1
before=$(wc -l <"$TMP/rx.log")
node_stop
node_start "$TMP/node" AMS || exit 1
sleep 1.5
kill -9 "$NODE_PID"
wait "$NODE_PID" 2>/dev/null || true
NODE_PID=
node_start "$TMP/node" AMS || exit 1
sleep 1.5
after=$(wc -l <"$TMP/rx.log")
[ "$before" = "$after" ] && ok || bad "sent again after restarts: $before -> $after requests"
jq_check "still four outcomes" "$(notified "$ID")" 'length == 4'

# Resolution notifies the pager again (a new event, a new id); the P3 no one.
"$BIN/imctl" ack "$ID" >/dev/null
"$BIN/imctl" start "$ID" >/dev/null
"$BIN/imctl" resolve "$ID" --code fixed --notes "failed over the DB" >/dev/null
for _ in $(seq 60); do
    [ "$(hits /flaky/2)" -ge 4 ] && break
    sleep 0.1
done
[ "$(hits /flaky/2)" = 4 ] && ok || bad "resolution: $(hits /flaky/2) pager requests, want 4"
jq_check "resolution delivered on the first attempt" "$(tail -n 1 "$TMP/rx.log")" \
    '.path == "/flaky/2" and (.body | fromjson | .rules == ["resolved"])'

M=$(curl -s "$IM_HTTP/metrics")
grep -q '^im_notifications_total{channel="pager",outcome="delivered"} 1$' <<<"$M" && ok ||
    bad "metrics: $(grep im_notifications_total <<<"$M")"
grep -q '^im_notify_outbox_entries 0$' <<<"$M" && ok || bad "outbox not empty: $(grep outbox <<<"$M")"

node_stop
expect "the store checks out" 0 "OK" "$BIN/imnode" check --data "$TMP/node"
DONE=1
