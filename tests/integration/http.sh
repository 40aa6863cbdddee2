#!/usr/bin/env bash
# HTTP on a real imnode (dev mode) with curl: golden PagerDuty Events v2 and
# Alertmanager payloads (tests/golden) and what they do; every kind of bad
# request gets its status and message and stores nothing; the JSON API with
# the CLI's rules and words; an alert storm of 10,000 triggers on one key,
# with a kill -9 half way, ends as one incident with a bounded timeline and
# not one occurrence lost; /metrics.
#
#   BIN=bin (default) bash tests/integration/http.sh
# Last line: "http: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
TMP=$(mktemp -d)
# shellcheck source=tests/integration/lib.sh
. tests/integration/lib.sh

DONE=
cleanup() {
    if [ -z "$DONE" ]; then fail=$((fail + 1)); fi
    if [ -n "$NODE_PID" ]; then
        kill -9 "$NODE_PID" 2>/dev/null || true
        wait "$NODE_PID" 2>/dev/null || true
    fi
    if [ "$fail" -eq 0 ]; then rm -rf "$TMP"; else echo "kept $TMP for inspection"; fi
    echo "http: $pass passed, $fail failed"
    if [ "$fail" -eq 0 ]; then exit 0; else exit 1; fi
}
trap cleanup EXIT
trap 'echo "FAIL: stopped at line $LINENO: $BASH_COMMAND"' ERR

# Config mistakes in the HTTP sections stop the node with file:line.
printf '[node]\nsite = AMS\ndata = %s/x\n[http]\nlisten = http://127.0.0.1:1\n[integration pd]\ntype = pagerduty\nkey = short\n' \
    "$TMP" >"$TMP/bad1.conf"
expect "short integration key" 2 "bad1.conf:8: 'key' must be 16 to 128 characters long" \
    "$BIN/imnode" --config "$TMP/bad1.conf"
printf '[node]\nsite = AMS\ndata = %s/x\n[notify n]\ntype = webhook\nurl = http://h/x\non = new_p9\n' \
    "$TMP" >"$TMP/bad2.conf"
expect "unknown notify rule" 2 "bad2.conf:7: unknown rule 'new_p9' in 'on'" \
    "$BIN/imnode" --config "$TMP/bad2.conf"

# A dev node, restarted with a short storm summary interval.
node_start "$TMP/node" AMS || exit 1
node_stop
sed -i 's|^\[http\]$|[http]\nsummary_interval = 1s|' "$TMP/node/node.conf"
node_start "$TMP/node" AMS || exit 1

golden() { sed "s/@PD_KEY@/$IM_PD_KEY/" "tests/golden/$1"; }

# req METHOD PATH [CURL ARGS...]: STATUS, BODY, HDRS of one request.
req() {
    local method=$1 path=$2
    shift 2
    STATUS=$(curl -s -o "$TMP/body" -D "$TMP/hdrs" -w '%{http_code}' -X "$method" \
        "$IM_HTTP$path" "$@" || true)
    BODY=$(cat "$TMP/body")
    HDRS=$(tr -d '\r' <"$TMP/hdrs")
}
pd_post() { req POST /v2/enqueue -H 'Content-Type: application/json' --data-binary "$1"; }
am_post() {
    req POST /api/v1/alertmanager -H 'Content-Type: application/json' \
        -H "Authorization: Bearer $IM_AM_TOKEN" --data-binary "$1"
}
api() { curl -s -H "Authorization: Bearer $IM_API_TOKEN" "$IM_HTTP/api/v1/incidents$1"; }
outcome() { sed -n 's/^X-Intake-Outcome: //p' <<<"$HDRS"; }
incident_of() { sed -n 's/^X-Incident: //p' <<<"$HDRS"; }
events_total() { curl -s "$IM_HTTP/metrics" | sed -n 's/^im_events_appended_total //p'; }

# Everything a request could change: every incident (with events_count and
# updated_at) and the count of events appended.
snapshot() { echo "$(api '?all=true&limit=100000' | jq -S -c .) $(events_total)"; }

# expect_status NAME WANT [BODY-TEXT]: the last request's status and body.
expect_status() {
    local name=$1 want=$2 text=${3:-}
    if [ "$STATUS" != "$want" ]; then
        bad "$name: status $STATUS, want $want; body: ${BODY:0:400}"
    elif [ -n "$text" ] && [[ $BODY != *"$text"* ]]; then
        bad "$name: body lacks '$text': ${BODY:0:400}"
    else
        ok
    fi
}

# refuses NAME STATUS TEXT METHOD PATH CURL-ARGS...: answered STATUS with
# TEXT in the body, and the node is exactly as before.
refuses() {
    local name=$1 want=$2 text=$3 before after
    shift 3
    before=$(snapshot)
    req "$@"
    expect_status "$name" "$want" "$text"
    after=$(snapshot)
    if [ "$before" = "$after" ]; then ok; else bad "$name: the node changed"; fi
}

# ---- PagerDuty Events API v2 ------------------------------------------------

pd_post "$(golden pagerduty/trigger_full.json)"
expect_status "pd trigger" 202
check "pd trigger: PagerDuty's exact answer" test "$BODY" = \
    '{"status":"success","message":"Event processed","dedup_key":"srv01/mysql"}'
[ "$(outcome)" = opened ] && ok || bad "pd trigger outcome: $(outcome)"
PD1=$(incident_of)
SHOW=$(api "/$PD1")
jq_check "pd incident fields" "$SHOW" '.title == "DISK at 99% on machine prod-datapipe03.example.com"
    and .priority == "P1" and .major and .state == "new" and .service == "dev"
    and (.description | contains("\"load avg\": 0.75") and contains("component: mysql"))
    and .alerts[0].key == "srv01/mysql" and .alerts[0].occurrences == 1'

before_events=$(events_total)
pd_post "$(golden pagerduty/trigger_full.json)"
expect_status "pd trigger again" 202
[ "$(outcome)" = joined ] && [ "$(incident_of)" = "$PD1" ] && ok ||
    bad "second trigger: $(outcome) $(incident_of), want joined $PD1"
jq_check "occurrence counted, no new incident" "$(api "/$PD1")" \
    '.alerts[0].occurrences == 2'
jq_check "one incident for the key" "$(api '?all=true')" \
    '[.items[] | select(.title | startswith("DISK at 99%"))] | length == 1'

pd_post "$(golden pagerduty/acknowledge.json)"
expect_status "pd acknowledge" 202 '"dedup_key":"srv01/mysql"'
jq_check "acknowledged" "$(api "/$PD1")" '.state == "acknowledged"'
refuses "pd acknowledge again: dropped" 202 '"status":"success"' \
    POST /v2/enqueue -H 'Content-Type: application/json' --data-binary "$(golden pagerduty/acknowledge.json)"

pd_post "$(golden pagerduty/resolve.json)"
expect_status "pd resolve" 202
[ "$(outcome)" = resolved ] && ok || bad "resolve outcome: $(outcome)"
jq_check "resolved by its source, without a fake acknowledgement path" "$(api "/$PD1")" \
    '.state == "resolved" and .resolution.code == "resolved-by-source"
     and (.timeline | map(.kind) | index("started") == null)'
refuses "pd resolve again: dropped" 202 '"dedup_key":"srv01/mysql"' \
    POST /v2/enqueue -H 'Content-Type: application/json' --data-binary "$(golden pagerduty/resolve.json)"

pd_post "$(golden pagerduty/trigger_full.json)"
PD2=$(incident_of)
[ "$(outcome)" = opened ] && [ -n "$PD2" ] && [ "$PD2" != "$PD1" ] && ok ||
    bad "a trigger after resolution opens a new incident: $(outcome) $PD2"

pd_post "$(golden pagerduty/trigger_minimal.json)"
expect_status "pd trigger without dedup_key" 202
GEN=$(jq -r .dedup_key <<<"$BODY")
[[ $GEN =~ ^[0-9a-f]{32}$ ]] && ok || bad "generated dedup_key: $GEN"
pd_post "{\"routing_key\":\"$IM_PD_KEY\",\"event_action\":\"acknowledge\",\"dedup_key\":\"$GEN\"}"
[ "$(outcome)" = acknowledged ] && ok || bad "acknowledge with the generated key: $(outcome)"
refuses "pd acknowledge of an unknown key: dropped" 202 '"status":"success"' \
    POST /v2/enqueue -H 'Content-Type: application/json' \
    --data-binary "{\"routing_key\":\"$IM_PD_KEY\",\"event_action\":\"acknowledge\",\"dedup_key\":\"nobody\"}"

# ---- bad PagerDuty requests: status, message, nothing stored ----------------

J=(-H 'Content-Type: application/json')
V="\"routing_key\":\"$IM_PD_KEY\""
P='"payload":{"summary":"s","source":"h","severity":"info"}'
refuses "malformed JSON" 400 '"errors":["JSON parse error at line 1' \
    POST /v2/enqueue "${J[@]}" --data-binary '{"routing_key": "x",'
refuses "malformed JSON: PagerDuty's status" 400 '"status":"Unrecognized object"' \
    POST /v2/enqueue "${J[@]}" --data-binary '{"routing_key": "x",'
refuses "not an object" 400 'must be a JSON object, not an array' \
    POST /v2/enqueue "${J[@]}" --data-binary '[]'
refuses "empty body" 400 'the body is empty' POST /v2/enqueue "${J[@]}"
printf '{"routing_key":"%s","event_action":"trigger","payload":{"summary":"caf\xe9","source":"h","severity":"info"}}' \
    "$IM_PD_KEY" >"$TMP/latin1.json"
refuses "invalid UTF-8" 400 'JSON parse error' \
    POST /v2/enqueue "${J[@]}" --data-binary "@$TMP/latin1.json"
refuses "wrong type" 400 "'payload.summary' must be a string, not a number" \
    POST /v2/enqueue "${J[@]}" --data-binary "{$V,\"event_action\":\"trigger\",\"payload\":{\"summary\":5,\"source\":\"h\",\"severity\":\"info\"}}"
refuses "missing payload" 400 "'payload' is missing" \
    POST /v2/enqueue "${J[@]}" --data-binary "{$V,\"event_action\":\"trigger\"}"
refuses "missing event_action" 400 "'event_action' is missing" \
    POST /v2/enqueue "${J[@]}" --data-binary "{$V,$P}"
refuses "unknown event_action" 400 "'event_action' must be trigger, acknowledge or resolve" \
    POST /v2/enqueue "${J[@]}" --data-binary "{$V,\"event_action\":\"snooze\",$P}"
refuses "unknown severity" 400 "'payload.severity' must be critical, error, warning or info" \
    POST /v2/enqueue "${J[@]}" --data-binary "{$V,\"event_action\":\"trigger\",\"payload\":{\"summary\":\"s\",\"source\":\"h\",\"severity\":\"sev1\"}}"
refuses "several problems at once" 400 "'payload.source' is missing\",\"'payload.severity' is missing" \
    POST /v2/enqueue "${J[@]}" --data-binary "{$V,\"event_action\":\"trigger\",\"payload\":{\"summary\":\"s\"}}"
refuses "resolve without dedup_key" 400 "'dedup_key' is required for resolve" \
    POST /v2/enqueue "${J[@]}" --data-binary "{$V,\"event_action\":\"resolve\"}"
refuses "unknown routing key" 400 "'routing_key' does not match any pagerduty integration" \
    POST /v2/enqueue "${J[@]}" --data-binary "{\"routing_key\":\"0000000000000000ffffffffffffffff\",\"event_action\":\"trigger\",$P}"
refuses "an api token is no routing key" 400 "'routing_key' does not match" \
    POST /v2/enqueue "${J[@]}" --data-binary "{\"routing_key\":\"$IM_API_TOKEN\",\"event_action\":\"trigger\",$P}"
long=$(head -c 1025 /dev/zero | tr '\0' s)
refuses "summary over 1024 bytes" 400 "'payload.summary' is longer than 1024 bytes" \
    POST /v2/enqueue "${J[@]}" --data-binary "{$V,\"event_action\":\"trigger\",\"payload\":{\"summary\":\"$long\",\"source\":\"h\",\"severity\":\"info\"}}"
long=$(head -c 256 /dev/zero | tr '\0' k)
refuses "dedup_key over 255 bytes" 400 "'dedup_key' is longer than 255 bytes" \
    POST /v2/enqueue "${J[@]}" --data-binary "{$V,\"event_action\":\"trigger\",\"dedup_key\":\"$long\",$P}"
python3 -c "import json,sys; print(json.dumps({'routing_key': sys.argv[1], 'event_action': 'trigger', 'payload': {'summary': 's', 'source': 'h', 'severity': 'info', 'custom_details': {'blob': 'x' * 600000}}}))" \
    "$IM_PD_KEY" >"$TMP/big.json"
refuses "body over 512 KB" 413 'exceeds the limit of 524288 bytes' \
    POST /v2/enqueue "${J[@]}" --data-binary "@$TMP/big.json"
head -c 2000000 /dev/zero | tr '\0' ' ' >"$TMP/huge.json"
refuses "body over 1 MiB: NNG refuses it unread" 400 '' \
    POST /v2/enqueue "${J[@]}" --data-binary "@$TMP/huge.json"
refuses "wrong content type" 415 'Content-Type must be application/json, not text/plain' \
    POST /v2/enqueue -H 'Content-Type: text/plain' --data-binary "$(golden pagerduty/trigger_full.json)"
refuses "form encoding" 415 'Content-Type must be application/json' \
    POST /v2/enqueue --data "$(golden pagerduty/trigger_full.json)"
refuses "GET on the intake" 405 'send the event with POST' GET /v2/enqueue
[[ $HDRS == *"Allow: POST"* ]] && ok || bad "405 without Allow: $HDRS"
refuses "chunked body" 411 'send a Content-Length' \
    POST /v2/enqueue "${J[@]}" -H 'Transfer-Encoding: chunked' --data-binary "$(golden pagerduty/trigger_full.json)"

# ---- Alertmanager ------------------------------------------------------------

am_post "$(cat tests/golden/alertmanager/firing.json)"
expect_status "am firing" 200 '"outcome":"opened"'
AM1=$(incident_of)
jq_check "am incident" "$(api "/$AM1")" '.title == "HighErrorRate on api" and .priority == "P1"
    and (.description | contains("c3a0ef7f1a2b3c4d") and contains("2 firing, 0 resolved"))
    and .alerts[0].firing'
refuses "am duplicate delivery (HA pair)" 200 '"outcome":"duplicate"' \
    POST /api/v1/alertmanager "${J[@]}" -H "Authorization: Bearer $IM_AM_TOKEN" \
    --data-binary "@tests/golden/alertmanager/firing.json"
am_post "$(cat tests/golden/alertmanager/resolved_one.json)"
expect_status "am one alert resolved" 200 '"outcome":"alerts_resolved"'
jq_check "still open with one alert firing" "$(api "/$AM1")" '.state == "new"'
refuses "am resolved delivered twice" 200 '"outcome":"duplicate"' \
    POST /api/v1/alertmanager "${J[@]}" -H "Authorization: Bearer $IM_AM_TOKEN" \
    --data-binary "@tests/golden/alertmanager/resolved_one.json"
am_post "$(cat tests/golden/alertmanager/resolved_all.json)"
expect_status "am all resolved" 200 '"outcome":"resolved"'
jq_check "resolved when its last alert resolved" "$(api "/$AM1")" '.state == "resolved"'
refuses "am without a token" 401 "no 'Authorization: Bearer TOKEN' header" \
    POST /api/v1/alertmanager "${J[@]}" --data-binary "@tests/golden/alertmanager/firing.json"
refuses "am with the routing key as token" 401 'matches no alertmanager integration' \
    POST /api/v1/alertmanager "${J[@]}" -H "Authorization: Bearer $IM_PD_KEY" \
    --data-binary "@tests/golden/alertmanager/firing.json"
jq '.version = "3"' tests/golden/alertmanager/firing.json >"$TMP/v3.json"
refuses "am payload version 3" 400 "'version' must be \\\"4\\\"" \
    POST /api/v1/alertmanager "${J[@]}" -H "Authorization: Bearer $IM_AM_TOKEN" --data-binary "@$TMP/v3.json"
jq 'del(.groupKey) | .alerts[1].fingerprint = 7' tests/golden/alertmanager/firing.json >"$TMP/nokey.json"
refuses "am missing groupKey and a wrong type" 400 "'groupKey' is missing\",\"'alerts[1].fingerprint' must be a string" \
    POST /api/v1/alertmanager "${J[@]}" -H "Authorization: Bearer $IM_AM_TOKEN" --data-binary "@$TMP/nokey.json"
printf '{"version":"4","groupKey":"g\xff","status":"firing","alerts":[]}' >"$TMP/am-latin1.json"
refuses "am invalid UTF-8" 400 'JSON parse error' \
    POST /api/v1/alertmanager "${J[@]}" -H "Authorization: Bearer $IM_AM_TOKEN" --data-binary "@$TMP/am-latin1.json"
refuses "am no alerts" 400 "'alerts' is empty" \
    POST /api/v1/alertmanager "${J[@]}" -H "Authorization: Bearer $IM_AM_TOKEN" \
    --data-binary '{"version":"4","groupKey":"g","status":"firing","alerts":[]}'
refuses "am wrong content type" 415 'Content-Type must be application/json' \
    POST /api/v1/alertmanager -H 'Content-Type: text/plain' -H "Authorization: Bearer $IM_AM_TOKEN" \
    --data-binary "@tests/golden/alertmanager/firing.json"

# ---- the JSON API: the CLI's rules and words ---------------------------------

A=(-H "Authorization: Bearer $IM_API_TOKEN" -H 'Content-Type: application/json')
req POST /api/v1/incidents "${A[@]}" --data-binary \
    '{"title":"Checkout returns 500","service":"shop","impact":"high","urgency":"medium","category":"app/payments"}'
expect_status "api open" 201 '"priority":"P2"'
API1=$(jq -r .id <<<"$BODY")
[[ $HDRS == *"Location: /api/v1/incidents/$API1"* ]] && ok || bad "201 without Location"
# The same illegal move through imctl and through HTTP: the same words.
run "$BIN/imctl" resolve "$API1" --code fixed --notes n
CLI_ERR=${ERR#imctl: }
refuses "api illegal transition" 409 "$CLI_ERR" POST "/api/v1/incidents/$API1/resolve" "${A[@]}" \
    --data-binary '{"code":"fixed","notes":"n"}'
[[ $CLI_ERR == *"it is new; from new you can: ack, cancel"* ]] && ok || bad "imctl said: $CLI_ERR"
req POST "/api/v1/incidents/$API1/acknowledge" "${A[@]}"
expect_status "api acknowledge" 200 '"state":"acknowledged"'
run "$BIN/imctl" ack "$API1"
CLI_ERR=${ERR#imctl: }
refuses "api acknowledge twice" 409 "$CLI_ERR" POST "/api/v1/incidents/$API1/acknowledge" "${A[@]}"
req POST "/api/v1/incidents/$API1/notes" "${A[@]}" --data-binary '{"text":"gateway returns 502"}'
expect_status "api note" 200
jq_check "note in the timeline, by the integration" "$(api "/$API1")" \
    '.timeline[-1].kind == "note" and .timeline[-1].actor == "api"'
refuses "api blank note" 400 'note' POST "/api/v1/incidents/$API1/notes" "${A[@]}" --data-binary '{"text":"  "}'
refuses "api unknown field" 400 "unknown field 'txt'" POST "/api/v1/incidents/$API1/notes" "${A[@]}" \
    --data-binary '{"txt":"x"}'
refuses "api malformed JSON" 400 'JSON parse error' POST /api/v1/incidents "${A[@]}" --data-binary '{"title":'
refuses "api missing impact" 400 "'impact' is required" POST /api/v1/incidents "${A[@]}" \
    --data-binary '{"title":"t","service":"s","urgency":"low"}'
refuses "api title too long" 400 'title is longer than 200 bytes' POST /api/v1/incidents "${A[@]}" \
    --data-binary "{\"title\":\"$(head -c 201 /dev/zero | tr '\0' t)\",\"service\":\"s\",\"impact\":\"low\",\"urgency\":\"low\"}"
refuses "api unknown incident" 404 'no incident AMS-99999' POST /api/v1/incidents/AMS-99999/notes "${A[@]}" \
    --data-binary '{"text":"x"}'
refuses "api unknown action" 404 "no action 'close'" POST "/api/v1/incidents/$API1/close" "${A[@]}"
refuses "api without a token" 401 'no ' GET /api/v1/incidents
refuses "api with a wrong token" 401 'matches no api integration' GET /api/v1/incidents \
    -H "Authorization: Bearer $IM_AM_TOKEN"
refuses "api bad filter" 400 "priority 'P9' is not a priority: use P1 to P5" GET '/api/v1/incidents?priority=P9' "${A[@]}"
refuses "api unknown filter" 400 "unknown query parameter 'colour'" GET '/api/v1/incidents?colour=red' "${A[@]}"
jq_check "api list filters" "$(api '?priority=P2&state=acknowledged')" \
    "[.items[].id] == [\"$API1\"] and .matched == 1"
jq_check "api list equals imctl list" "$(api '?all=true&limit=100000' | jq -c '[.items[].id]')" \
    --argjson cli "$("$BIN/imctl" list --all --limit 100000 --json | jq -c '[.items[].id]')" '. == $cli'

# ---- an alert storm: 10,000 triggers on one key, kill -9 half way ------------

printf '{"routing_key":"%s","event_action":"trigger","dedup_key":"storm/1","payload":{"summary":"queue depth over 10k","source":"mq1","severity":"error"}}' \
    "$IM_PD_KEY" >"$TMP/storm.json"
start=$(date +%s)
R1=$(python3 tests/integration/sendmany.py "$IM_HTTP" /v2/enqueue "$TMP/storm.json" 5000 16)
jq_check "storm, first half: all 202" "$R1" '.statuses == {"202": 5000}'
kill -9 "$NODE_PID"
wait "$NODE_PID" 2>/dev/null || true
NODE_PID=
node_start "$TMP/node" AMS || exit 1
R2=$(python3 tests/integration/sendmany.py "$IM_HTTP" /v2/enqueue "$TMP/storm.json" 5000 16)
jq_check "storm, second half: all 202" "$R2" '.statuses == {"202": 5000}'
sleep 2.5 # the last summary is due one interval (1 s) after the last trigger
elapsed=$(($(date +%s) - start))
STORM=$(api '?all=true&limit=100000' | jq -r '[.items[] | select(.title == "queue depth over 10k")] | map(.id)')
jq_check "one incident for 10,000 triggers" "$STORM" 'length == 1'
SID=$(jq -r '.[0]' <<<"$STORM")
SHOW=$(api "/$SID")
jq_check "10,000 occurrences, none pending" "$SHOW" '.alerts[0].occurrences == 10000 and .alerts[0].occurrences_pending == 0'
jq_check "the timeline sums to 10,000" "$SHOW" \
    '[.timeline[] | select(.kind == "alert") | (.text | capture("^(?<n>[0-9]+) occurrences").n // "1" | tonumber)] | add == 10000'
# opened + first occurrence + at most one summary per second of storm,
# plus the one after the restart: a bounded summary, not 10,000 entries.
jq_check "the timeline is bounded" "$SHOW" --argjson max $((3 + elapsed)) \
    '.events_count <= $max and (.timeline | length) <= $max'
echo "storm: $(jq -c '{first: .seconds}' <<<"$R1") $(jq -c '{second: .seconds}' <<<"$R2"), $(jq '.events_count' <<<"$SHOW") events in ${elapsed}s"

# ---- /metrics ----------------------------------------------------------------

# Counters are the process's own (the storm restarted it): one refusal.
pd_post '{}'
M=$(curl -s "$IM_HTTP/metrics")
grep -q '^im_http_requests_total{endpoint="pagerduty",status="202"} [0-9]' <<<"$M" && ok || bad "metrics: intake 202"
grep -q '^im_http_requests_total{endpoint="pagerduty",status="400"} [0-9]' <<<"$M" && ok || bad "metrics: intake 400"
grep -q '^im_incidents{state="resolved",priority="P1"} [1-9]' <<<"$M" && ok || bad "metrics: incidents by state"
grep -q '^# TYPE im_events_appended_total counter' <<<"$M" && ok || bad "metrics: events appended"
req GET /metrics
[[ $HDRS == *"Content-Type: text/plain; version=0.0.4"* ]] && ok || bad "metrics content type: $HDRS"

node_stop
expect "the store checks out" 0 "OK" "$BIN/imnode" check --data "$TMP/node"

# ---- a full store: 503 (senders retry), nothing half-written, reads go on ---

node_start "$TMP/full" AMS || exit 1
node_stop
sed -i 's|^\[node\]$|[node]\nmap_size = 1MiB|' "$TMP/full/node.conf"
node_start "$TMP/full" AMS || exit 1
golden pagerduty/trigger_minimal.json >"$TMP/fill.json"
R=$(python3 tests/integration/sendmany.py "$IM_HTTP" /v2/enqueue "$TMP/fill.json" 3000 4)
jq_check "a full store answers 202 until full, then 503" "$R" \
    '(.statuses | keys) == ["202", "503"] and .statuses["503"] > 0'
refuses "store full" 503 'the store refused the write (store full): retry' \
    POST /v2/enqueue -H 'Content-Type: application/json' --data-binary "@$TMP/fill.json"
[[ $HDRS == *"Retry-After: 1"* ]] && ok || bad "503 without Retry-After: $HDRS"
req GET /status
expect_status "reads work on a full store" 200
accepted=$(jq '.statuses["202"]' <<<"$R")
jq_check "every 202 is an incident" "$(api '?all=true&limit=100000')" --argjson n "$accepted" '.matched == $n'
node_stop
expect "the full store checks out" 0 "OK" "$BIN/imnode" check --data "$TMP/full"
if grep -q "Sanitizer" "$TMP/node.log" "$TMP/full.log"; then
    bad "sanitizer report in a node's log:"
    grep -A20 "Sanitizer" "$TMP/node.log" "$TMP/full.log" | head -40
else
    ok
fi
DONE=1
