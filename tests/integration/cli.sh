#!/usr/bin/env bash
# imctl against a real dev node on loopback: the whole lifecycle, every
# command's happy path (human and --json output), the exit codes and
# messages of bad input with proof that nothing changed on the node, the
# key and connection failures, and concurrent clients.
#
#   BIN=bin (default) or BIN=build/asan/bin bash tests/integration/cli.sh
# Last line: "cli: N passed, N failed"; exit status non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
TMP=$(mktemp -d)
# shellcheck source=tests/integration/lib.sh
. tests/integration/lib.sh

# The summary is printed here, last, also when the suite stopped early
# (set -e), which counts as a failure.
DONE=
cleanup() {
    if [ -z "$DONE" ]; then fail=$((fail + 1)); fi
    if [ -n "$NODE_PID" ]; then
        kill -CONT "$NODE_PID" 2>/dev/null || true
        kill -9 "$NODE_PID" 2>/dev/null || true
        wait "$NODE_PID" 2>/dev/null || true
    fi
    if [ "$fail" -eq 0 ]; then rm -rf "$TMP"; else echo "kept $TMP for inspection"; fi
    echo "cli: $pass passed, $fail failed"
    if [ "$fail" -eq 0 ]; then exit 0; else exit 1; fi
}
trap cleanup EXIT
trap 'echo "FAIL: stopped at line $LINENO: $BASH_COMMAND"' ERR

for b in imctl imnode; do
    if [ ! -x "$BIN/$b" ]; then
        echo "FAIL: no $BIN/$b: build it first (make $BIN/$b)"
        exit 1 # cleanup prints the summary
    fi
done

imctl() { "$BIN/imctl" "$@"; }

# Every incident (summaries carry events_count and updated_at): any write
# to any incident, and any new incident, changes this.
snapshot() { imctl list --all --limit 100000 --json | jq -S -c .; }

# rejects NAME CODE TEXT CMD...: CMD exits CODE with TEXT on stderr and
# leaves the node exactly as it was.
rejects() {
    local name=$1 before after
    before=$(snapshot)
    expect "$@"
    after=$(snapshot)
    if [ "$before" = "$after" ]; then ok; else bad "$name: the node changed"; fi
    return 0
}

field() { imctl show "$1" --json | jq -r "$2"; }

node_start "$TMP/node" AMS || exit 1 # cleanup prints the summary

# ---- ping, help ---------------------------------------------------------

expect "ping" 0 "site:          AMS" imctl ping
expect "ping shows clock skew" 0 "clock skew:" imctl ping
run imctl ping --json
jq_check "ping --json" "$OUT" \
    '.site == "AMS" and .operator == "admin" and .role == "admin" and (.node_version | length > 0) and (.clock_skew_ms | fabs < 5000)'

expect "help" 0 "commands:" imctl help
expect "--help" 0 "exit codes:" imctl --help
expect "help open" 0 "--description D" imctl help open
expect "help unknown" 2 "unknown command 'nosuch'" imctl help nosuch
for cmd in open list show ack start hold resolve close reopen cancel note set \
    assign unassign role update report stats ping keygen help; do
    expect "$cmd --help" 0 "usage: imctl $cmd" imctl "$cmd" --help
    expect "$cmd -h has an example" 0 "example:" imctl "$cmd" -h
done
# Help wins over everything else on the line, as in git.
expect "--help with an error" 0 "usage: imctl ack" imctl ack --bogus --help
expect "help lists every option" 0 "--remove-sme P" imctl role --help

# ---- lifecycle: open -> ack -> start -> hold -> start -> resolve -> close

run imctl open --title "Checkout returns 502" --service payments \
    --category network/dns --impact high --urgency high \
    --description $'Customers see 502.\nSince 10:02.'
A=$OUT
if [[ $RC -eq 0 && $A =~ ^AMS-[0-9]+$ ]]; then ok; else bad "open prints the id: rc=$RC out=$A err=$ERR"; fi

J=$(imctl show "$A" --json)
jq_check "open: fields" "$J" '.id and .title == "Checkout returns 502" and .service == "payments" and .category == "network" and .subcategory == "dns" and .impact == "high" and .urgency == "high"'
jq_check "open: P1 is major" "$J" '.priority == "P1" and .major == true and .declared_major == false and .state == "new"'
jq_check "open: description" "$J" '.description == "Customers see 502.\nSince 10:02."'
jq_check "open: times" "$J" '(.opened_at | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$")) and .acknowledged_at == null and .resolved_at == null and .closed_at == null and .cancelled_at == null'
jq_check "open: owner, origin" "$J" '.origin_site == "AMS" and .owner.site == "AMS" and (.owner | has("token") and has("provisional") and has("manager"))'
jq_check "open: empty roles" "$J" '.assignee == null and .roles.commander == null and .roles.smes == [] and .resolution == null and .reopen_count == 0'
jq_check "open: timeline" "$J" '.events_count == 1 and (.timeline | length) == 1 and .timeline[0].kind == "opened" and .timeline[0].actor == "admin" and .timeline[0].site == "AMS" and .timeline[0].refused == false'

expect "ack" 0 "$A is now acknowledged" imctl ack "$A"
jq_check "ack: state" "$(imctl show "$A" --json)" '.state == "acknowledged" and .acknowledged_at != null'
expect "start" 0 "$A is now in_progress" imctl start "$A"
expect "hold" 0 "$A is now on_hold" imctl hold "$A" --reason "waiting for the DNS provider"
jq_check "hold: reason in timeline" "$(imctl show "$A" --json)" '.state == "on_hold" and .timeline[-1].kind == "held" and (.timeline[-1].text | contains("waiting for the DNS provider"))'
expect "start from on_hold" 0 "$A is now in_progress" imctl start "$A"
expect "resolve" 0 "$A is now resolved" imctl resolve "$A" --code fixed --notes "rolled back resolver config"
J=$(imctl show "$A" --json)
jq_check "resolve: resolution" "$J" '.state == "resolved" and .resolution.code == "fixed" and .resolution.notes == "rolled back resolver config" and .resolved_at != null'
expect "close" 0 "$A is now closed" imctl close "$A"
J=$(imctl show "$A" --json)
jq_check "close: closed_at" "$J" '.state == "closed" and .closed_at != null'
jq_check "close: timeline kinds" "$J" '[.timeline[].kind] == ["opened","acknowledged","started","held","started","resolved","closed"]'
rejects "close is final" 1 "closed is final" imctl cancel "$A" --reason late
rejects "reopen of closed" 1 "is closed" imctl reopen "$A" --reason again

# reopen
run imctl open --title "Search slow" --service search --impact medium --urgency medium
B=$OUT
imctl ack "$B" >/dev/null && imctl start "$B" >/dev/null
imctl resolve "$B" --code workaround --notes "restarted" >/dev/null
rejects "start of resolved names reopen" 1 "imctl reopen $B --reason" imctl start "$B"
expect "reopen" 0 "$B is now in_progress" imctl reopen "$B" --reason "latency is back"
J=$(imctl show "$B" --json)
jq_check "reopen: state" "$J" '.state == "in_progress" and .reopen_count == 1 and .resolution == null and .resolved_at == null'
jq_check "reopen: timeline" "$J" '.timeline[-1].kind == "reopened" and (.timeline[-1].text | contains("latency is back"))'
rejects "reopen of in_progress" 1 "$B is in_progress, not resolved" imctl reopen "$B" --reason again

# cancel
run imctl open --title "Duplicate page" --service search --impact low --urgency low
C=$OUT
expect "cancel" 0 "$C is now cancelled" imctl cancel "$C" --reason "duplicate of $B"
jq_check "cancel: fields" "$(imctl show "$C" --json)" '.state == "cancelled" and .cancelled_at != null and .priority == "P5" and .major == false'
rejects "cancel twice" 1 "cancelled is final" imctl cancel "$C" --reason again

# ---- every command's happy path -------------------------------------------

run imctl open --title "Queue backlog" --service billing --impact low --urgency medium --major --json
D=$(jq -r .id <<<"$OUT")
jq_check "open --json" "$OUT" '.state == "new" and .priority == "P4" and .major == true and .declared_major == true and .category == "" and .description == ""'
expect "open prints only the id" 0 "" imctl open --title "x" --service misc --impact low --urgency low
if [[ $OUT =~ ^AMS-[0-9]+$ ]]; then ok; else bad "open output is not one id: $OUT"; fi
E=$OUT
# Values are case-insensitive; global options go anywhere.
expect "open with upper-case levels" 0 "AMS-" imctl open --title "Mail delayed" --service mail --impact MEDIUM --urgency High
expect "global options after the command" 0 '"matched"' imctl list --node "$IM_NODE" --json
expect "--opt=value form" 0 "AMS-" imctl --node="$IM_NODE" --key="$IM_KEY" list
expect "--node without IM_NODE" 0 "site:" env -u IM_NODE "$BIN/imctl" --node "$IM_NODE" ping
expect "--timeout" 0 "site:" imctl --timeout 5000 ping
TITLE_UTF8="Zahlungsausfall – Überweisung ✓ 支付"
run imctl open --title "$TITLE_UTF8" --service payments --impact low --urgency low --json
if [ "$(jq -r .title <<<"$OUT")" = "$TITLE_UTF8" ]; then ok; else bad "UTF-8 title changed: $OUT"; fi
# Boundaries: exactly at the limit is accepted.
T200=$(head -c 200 /dev/zero | tr '\0' t)
expect "200-byte title" 0 "AMS-" imctl open --title "$T200" --service misc --impact low --urgency low
N4096=$(head -c 4096 /dev/zero | tr '\0' n)
expect "4096-byte note" 0 "note added" imctl note "$E" "$N4096"

# note
expect "note" 0 "$D note added" imctl note "$D" checking consumer lag
jq_check "note: words joined" "$(imctl show "$D" --json)" '.timeline[-1].kind == "note" and (.timeline[-1].text | endswith("checking consumer lag"))'
expect "note after --" 0 "note added" imctl note "$D" -- "-5% throughput"
printf 'line one\nline two\n' >"$TMP/note.txt"
expect "note from stdin" 0 "note added" imctl note "$D" - <"$TMP/note.txt"
jq_check "note: stdin keeps lines" "$(imctl show "$D" --json)" '.timeline[-1].text | endswith("line one\nline two")'
imctl note "$D" "follow-up: alert on consumer lag" >/dev/null
imctl note "$D" "TODO add a runbook entry" >/dev/null
expect "note --json" 0 '"events_count"' imctl note "$D" "plain note" --json

# set
expect "set" 0 "$D updated" imctl set "$D" --title "Queue backlog growing" --impact high --urgency medium
J=$(imctl show "$D" --json)
jq_check "set: priority recomputed" "$J" '.title == "Queue backlog growing" and .impact == "high" and .urgency == "medium" and .priority == "P2"'
expect "set category" 0 "updated" imctl set "$D" --category infra/queue --service billing-core --description "Backlog at 2M"
jq_check "set: category, service, description" "$(imctl show "$D" --json)" '.category == "infra" and .subcategory == "queue" and .service == "billing-core" and .description == "Backlog at 2M"'
expect "set category without SUB" 0 "updated" imctl set "$D" --category storage
jq_check "set: subcategory cleared" "$(imctl show "$D" --json)" '.category == "storage" and .subcategory == ""'

# assign
expect "assign" 0 "$D assigned to alice" imctl assign "$D" --to alice
jq_check "assign: assignee" "$(imctl show "$D" --json)" '.assignee == "alice"'
expect "assign --to ''" 0 "$D unassigned" imctl assign "$D" --to ""
jq_check "assign: unassigned" "$(imctl show "$D" --json)" '.assignee == null'
imctl assign "$D" --to bob >/dev/null
expect "unassign" 0 "$D unassigned" imctl unassign "$D"

# role: one op per flag, one request
run imctl role "$D" --commander alice --comms bob --ops carol --manager mia --sme dave --sme erin --remove-sme dave --json
jq_check "role --json: every result" "$OUT" '(.results | length) == 7 and all(.results[]; .ok) and .id != null'
jq_check "role: roles" "$OUT" '.incident.roles == {"manager":"mia","commander":"alice","comms":"bob","ops":"carol","smes":["erin"]}'
expect "role human" 0 "$D commander set: frank" imctl role "$D" --commander frank
expect "role clear" 0 "$D comms cleared" imctl role "$D" --comms ""
jq_check "role: cleared" "$(imctl show "$D" --json)" '.roles.comms == null and .roles.commander == "frank"'
# One refused op: the others still apply, and each is reported.
run imctl role "$D" --remove-sme nobody --ops zed
if [ "$RC" -eq 1 ]; then ok; else bad "role partial: exit $RC"; fi
if [[ $ERR == *"nobody"*"refused"* && $ERR == *"1 of 2 role changes refused"* && $OUT == *"ops set: zed"* ]]; then ok; else bad "role partial report: out=$OUT err=$ERR"; fi
jq_check "role partial: the good op applied" "$(imctl show "$D" --json)" '.roles.ops == "zed"'

# update
expect "update" 0 "public update posted" imctl update "$D" --public "Invoices are delayed; no data lost."
jq_check "update: last_public_update" "$(imctl show "$D" --json)" '.last_public_update == "Invoices are delayed; no data lost." and .last_public_update_at != null and .timeline[-1].kind == "update"'

# show (human)
run imctl show "$D"
if [[ $RC -eq 0 && $OUT == *"$D  P2  new  MAJOR"* && $OUT == *"Timeline ("* && $OUT == *"follow-up: alert on consumer lag"* && $OUT == *"commander frank"* ]]; then ok; else bad "show human: $OUT"; fi

# report
imctl ack "$D" >/dev/null
imctl start "$D" >/dev/null
imctl resolve "$D" --code fixed --notes "scaled consumers" >/dev/null
run imctl report "$D"
R=$OUT
for section in "# Post-incident report: $D: Queue backlog growing" "## Summary" \
    "## Impact and priority" "- Priority: P2" "## Service" "- Service: billing-core" \
    "## Roles" "- Commander: frank" "## Timeline" "| Time (UTC) | Site | Actor | Event | Details |" \
    "## Response times" "- Time to acknowledge: " "- Time to resolve: " \
    "## Resolution" "- Code: fixed" "## Public updates" "Invoices are delayed" \
    "## Follow-ups" "follow-up: alert on consumer lag" "TODO add a runbook entry" \
    "_Generated at "; do
    if [[ $R == *"$section"* ]]; then ok; else bad "report lacks '$section'"; fi
done
if [[ $R == *"plain note (admin)"* ]]; then bad "report lists a plain note as a follow-up"; else ok; fi
expect "report without follow-ups" 0 "_None recorded._" imctl report "$C"
expect "report: unresolved" 0 "not acknowledged" imctl report "$C"
run imctl report "$D" --json
jq_check "report --json" "$OUT" --arg d "$D" '.id == $d and (.markdown | contains("## Timeline"))'

# list
run imctl list --json
L=$OUT
jq_check "list: open only by default" "$L" 'all(.items[]; .state | IN("new","acknowledged","in_progress","on_hold"))'
jq_check "list: priority order, then oldest" "$L" '[.items[] | [.priority, .opened_at]] == ([.items[] | [.priority, .opened_at]] | sort)'
jq_check "list: summaries" "$L" 'all(.items[]; has("description") | not) and .matched == (.items | length)'
run imctl list --all --json
jq_check "list --all" "$OUT" --arg a "$A" --arg c "$C" '[.items[].id] | index($a) != null and index($c) != null'
jq_check "list --state closed" "$(imctl list --state closed --json)" --arg a "$A" '[.items[].id] == [$a]'
jq_check "list --state on-hold spelling" "$(imctl list --state on-hold --json)" '.matched == 0'
jq_check "list --priority" "$(imctl list --priority p5 --all --json)" 'all(.items[]; .priority == "P5") and .matched >= 2'
jq_check "list --service" "$(imctl list --service search --all --json)" --arg b "$B" --arg c "$C" '[.items[].id] | sort == ([$b, $c] | sort)'
jq_check "list --major" "$(imctl list --major --all --json)" 'all(.items[]; .major) and .matched >= 2'
jq_check "list --site" "$(imctl list --site ams --json)" '.matched >= 1 and all(.items[]; .origin_site == "AMS")'
jq_check "list --site other" "$(imctl list --site NYC --all --json)" '.matched == 0 and .items == []'
run imctl list --limit 1 --json
jq_check "list --limit" "$OUT" '(.items | length) == 1 and .matched > 1'
M=$(jq .matched <<<"$OUT")
expect "list footer" 0 "1 of $M shown" imctl list --limit 1
expect "list table header" 0 "ID     P   STATE" imctl list
run imctl list
if [[ $OUT == *"MAJOR"*"SERVICE"*"OWNER"*"AGE"*"TITLE"* ]]; then ok; else bad "list columns: $OUT"; fi
expect "list with no match" 0 "no incidents match" imctl list --service nosuchservice

# stats: numbers from a service of our own, and totals from list --all
S1=$(imctl open --title s1 --service stats-svc --impact low --urgency low)
S2=$(imctl open --title s2 --service stats-svc --impact low --urgency low)
S3=$(imctl open --title s3 --service stats-svc --impact high --urgency high)
imctl ack "$S2" >/dev/null
imctl ack "$S3" >/dev/null && imctl start "$S3" >/dev/null
imctl resolve "$S3" --code fixed --notes done >/dev/null
run imctl stats --json
ST=$OUT
ALL=$(imctl list --all --limit 100000 --json)
jq_check "stats: total" "$ST" --argjson n "$(jq .matched <<<"$ALL")" '.total == $n and .since == null'
for s in new acknowledged in_progress on_hold resolved closed cancelled; do
    n=$(jq --arg s "$s" '[.items[] | select(.state == $s)] | length' <<<"$ALL")
    jq_check "stats: by_state.$s" "$ST" --arg s "$s" --argjson n "$n" '.by_state[$s] == $n'
done
for p in P1 P2 P3 P4 P5; do
    n=$(jq --arg p "$p" '[.items[] | select(.priority == $p)] | length' <<<"$ALL")
    jq_check "stats: by_priority.$p" "$ST" --arg p "$p" --argjson n "$n" '.by_priority[$p] == $n'
done
jq_check "stats: reopened" "$ST" '.reopened == 1'
jq_check "stats: per service" "$ST" '.services[] | select(.service == "stats-svc") | .total == 3 and .open == 2 and .major == 1 and .mtta_count == 2 and .mttr_count == 1 and .mtta_ms >= 0 and .mttr_ms >= 0'
jq_check "stats: overall" "$ST" '.overall.mtta_count >= 2 and .overall.mttr_count >= 1 and (.overall.mttr_ms | type) == "number"'
jq_check "stats --since 1h" "$(imctl stats --since 1h --json)" --argjson n "$(jq .total <<<"$ST")" '.total == $n and .since != null'
sleep 0.05
jq_check "stats --since 1ms" "$(imctl stats --since 1ms --json)" '.total == 0'
run imctl stats --since 7d
if [[ $OUT == *"incidents opened since"* && $OUT == *"MTTA:"* && $OUT == *"MTTR:"* && $OUT == *"stats-svc"* && $OUT == *"by priority:"* ]]; then ok; else bad "stats human: $OUT"; fi
: "$S1"

# keygen
expect "keygen" 0 "ed25519:" imctl keygen --out "$TMP/alice.key"
PUB=$OUT
if [ "$(stat -c %a "$TMP/alice.key")" = 600 ]; then ok; else bad "keygen mode $(stat -c %a "$TMP/alice.key")"; fi
if [[ $PUB =~ ^ed25519:[A-Za-z0-9_-]{43}$ ]]; then ok; else bad "keygen public key: $PUB"; fi
SUM=$(sha256sum "$TMP/alice.key")
expect "keygen never overwrites" 1 "already exists" imctl keygen --out "$TMP/alice.key"
if [ "$SUM" = "$(sha256sum "$TMP/alice.key")" ]; then ok; else bad "keygen overwrote a key"; fi
run env -u IM_NODE -u IM_KEY "$BIN/imctl" keygen --out "$TMP/bob.key" --json
jq_check "keygen --json, no node" "$OUT" --arg p "$TMP/bob.key" '.path == $p and (.public_key | startswith("ed25519:"))'
expect "keygen without --out" 2 "--out is required" imctl keygen

# ---- bad input: exit code, message, nothing changed ---------------------

rejects "unknown command" 2 "unknown command 'frobnicate'" imctl frobnicate
rejects "unknown option" 2 "unknown option --bogus" imctl ack "$E" --bogus
rejects "unknown global option" 2 "unknown option --bogus" imctl --bogus list
rejects "unknown short option" 2 "unknown option -x" imctl note "$E" -x
rejects "no command" 2 "no command given" imctl
rejects "missing --service" 2 "open: --service is required" imctl open --title t --impact high --urgency high
rejects "missing --impact" 2 "--impact is required" imctl open --title t --service s --urgency high
rejects "option without value" 2 "--title needs a value" imctl open --service s --impact high --urgency high --title
rejects "option twice" 2 "--title given more than once" imctl open --title a --title b --service s --impact high --urgency high
rejects "flag with value" 2 "--major takes no value" imctl open --major=yes --title a --service s --impact high --urgency high
rejects "bad --impact" 2 "--impact 'severe' is not a level: use high, medium or low" imctl open --title t --service s --impact severe --urgency high
rejects "bad --urgency" 2 "--urgency 'x' is not a level" imctl open --title t --service s --impact low --urgency x
rejects "empty title" 2 "title is required" imctl open --title "" --service s --impact high --urgency high
rejects "blank title" 2 "title is required" imctl open --title "   " --service s --impact high --urgency high
rejects "oversized title" 2 "title is longer than 200 bytes" imctl open --title "${T200}x" --service s --impact high --urgency high
rejects "invalid UTF-8 title" 2 "title is not valid UTF-8" imctl open --title "$(printf 'bad \xff title')" --service s --impact high --urgency high
rejects "control char in title" 2 "title" imctl open --title "$(printf 'bell\a')" --service s --impact high --urgency high
rejects "subcategory without category" 2 "subcategory needs a category" imctl open --title t --service s --category /sub --impact low --urgency low
rejects "oversized note" 2 "note is longer than 4096 bytes" imctl note "$E" "${N4096}n"
head -c 4097 /dev/zero | tr '\0' n >"$TMP/big.txt"
rejects "oversized note on stdin" 2 "note is longer than 4096 bytes" imctl note "$E" - <"$TMP/big.txt"
{ printf '%s\n' "$N4096"; echo more; } >"$TMP/big2.txt"
rejects "oversized note on stdin after a newline" 2 "note is longer than 4096 bytes" imctl note "$E" - <"$TMP/big2.txt"
printf '%s\n' "$N4096" >"$TMP/max.txt"
expect "4096-byte note on stdin with its newline" 0 "note added" imctl note "$E" - <"$TMP/max.txt"
rejects "empty note" 2 "note is required" imctl note "$E" ""
rejects "invalid UTF-8 note" 2 "not valid UTF-8" imctl note "$E" "$(printf '\xc3\x28')"
rejects "note without text" 2 "missing argument" imctl note "$E"
rejects "unknown id" 1 "no incident AMS-99" imctl show AMS-99
rejects "unknown id (write)" 1 "no incident AMS-99" imctl note AMS-99 hello
rejects "malformed id" 2 "'nope' is not an incident id" imctl show nope
rejects "extra argument" 2 "unexpected argument 'extra'" imctl show "$E" extra
rejects "close a new incident" 1 "cannot close $E: it is new; from new you can: ack, cancel" imctl close "$E"
rejects "resolve a new incident" 1 "you can:" imctl resolve "$E" --code fixed --notes n
rejects "start a new incident" 1 "cannot start $E: it is new" imctl start "$E"
rejects "ack twice" 1 "cannot ack $B" imctl ack "$B"
rejects "hold without reason" 2 "hold: --reason is required" imctl hold "$B"
rejects "hold with blank reason" 2 "reason is required" imctl hold "$B" --reason " "
rejects "resolve without notes" 2 "resolve: --notes is required" imctl resolve "$B" --code fixed
rejects "resolve without code" 2 "--code is required" imctl resolve "$B" --notes n
rejects "reopen without reason" 2 "--reason is required" imctl reopen "$B"
rejects "reopen non-resolved" 1 "$E is new, not resolved" imctl reopen "$E" --reason r
rejects "cancel without reason" 2 "--reason is required" imctl cancel "$E"
rejects "set nothing" 2 "give at least one of" imctl set "$E"
rejects "set empty title" 2 "--title cannot be empty" imctl set "$E" --title ""
rejects "set bad level" 2 "--urgency 'urgent' is not a level" imctl set "$E" --urgency urgent
rejects "set oversized service" 2 "service is longer than 64 bytes" imctl set "$E" --service "$(head -c 65 /dev/zero | tr '\0' s)"
rejects "assign without --to" 2 "--to is required" imctl assign "$E"
rejects "role without flags" 2 "give at least one of" imctl role "$E"
rejects "role: empty sme" 2 "person is required" imctl role "$E" --commander ok --sme ""
rejects "update without text" 2 "--public is required" imctl update "$E"
rejects "bad --state" 2 "--state 'open' is not a state" imctl list --state open
rejects "bad --priority" 2 "--priority 'P9' is not a priority" imctl list --priority P9
rejects "bad --limit" 2 "--limit '0' is not a number" imctl list --limit 0
rejects "bad --site" 2 "--site 'x' is not a site code" imctl list --site x
rejects "bad --since" 2 "--since 'yesterday' is not a duration" imctl stats --since yesterday
rejects "bad --timeout" 2 "--timeout '-1' is not a number" imctl --timeout -1 ping
rejects "--json error goes to stderr" 1 "no incident AMS-99" imctl show AMS-99 --json
if [ -z "$OUT" ]; then ok; else bad "--json error printed on stdout: $OUT"; fi
rejects "help for a bad command" 2 "unknown command" imctl help frobnicate

# stdout that cannot be written is a failure, not a success.
if [ -w /dev/full ]; then
    RC=0
    imctl ping >/dev/full 2>"$TMP/full.err" || RC=$?
    if [[ $RC -eq 1 && $(cat "$TMP/full.err") == *"write to stdout"* ]]; then ok; else bad "stdout to /dev/full: exit $RC"; fi
fi

# ---- keys and connection ------------------------------------------------

expect "no node" 2 "no node address: give --node URL or set IM_NODE" env -u IM_NODE "$BIN/imctl" list
expect "no key" 2 "no key: give --key FILE or set IM_KEY" env -u IM_KEY "$BIN/imctl" list
expect "missing key file" 2 "open key file $TMP/none.key: No such file" imctl --key "$TMP/none.key" list
cp "$IM_KEY" "$TMP/loose.key"
chmod 644 "$TMP/loose.key"
expect "key file mode 0644" 2 "is readable by others (mode 644)" imctl --key "$TMP/loose.key" ping
echo "not a key" >"$TMP/junk.key"
chmod 600 "$TMP/junk.key"
expect "not a key file" 2 "not an Incident Mesh secret key" imctl --key "$TMP/junk.key" ping
rejects "unknown key" 1 "unknown key $PUB" imctl --key "$TMP/alice.key" note "$E" hello
expect "unknown key (read)" 1 "not in this node's operator list" imctl --key "$TMP/alice.key" list
expect "malformed node address" 2 "invalid node address" imctl --node "nonsense" ping
# A port nobody listens on.
for _ in $(seq 20); do
    DEAD=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$DEAD") 2>/dev/null || break
done
expect "node unreachable" 3 "cannot reach node at tcp://127.0.0.1:$DEAD" imctl --node "tcp://127.0.0.1:$DEAD" ping
expect "node unreachable (write)" 3 "cannot reach node" imctl --node "tcp://127.0.0.1:$DEAD" open --title t --service s --impact low --urgency low
# A node that does not answer (stopped): exit 3, within NNG's dial
# handshake timeout even though --timeout is shorter (see docs/cli.md).
kill -STOP "$NODE_PID"
START=$(date +%s)
expect "stopped node" 3 "" imctl --timeout 500 ping
END=$(date +%s)
kill -CONT "$NODE_PID"
if [ $((END - START)) -le 15 ]; then ok; else bad "stopped node took $((END - START)) s"; fi
expect "node answers again" 0 "site:" imctl ping

# ---- concurrent clients -----------------------------------------------------

for k in $(seq 8); do
    (
        for i in $(seq 25); do
            if id=$("$BIN/imctl" open --title "load $k.$i" --service "conc-$k" --impact low --urgency medium 2>>"$TMP/conc.err"); then
                echo "$id" >>"$TMP/conc.$k"
                "$BIN/imctl" note "$id" "note from client $k, round $i" >/dev/null 2>>"$TMP/conc.err" ||
                    echo "note $id" >>"$TMP/conc.fail"
            else
                echo "open $k.$i" >>"$TMP/conc.fail"
            fi
        done
    ) &
done
wait_rc=0
for job in $(jobs -p); do
    [ "$job" = "$NODE_PID" ] && continue
    wait "$job" || wait_rc=1
done
if [ ! -s "$TMP/conc.fail" ] && [ "$wait_rc" -eq 0 ]; then ok; else bad "concurrent clients failed: $(cat "$TMP/conc.fail" "$TMP/conc.err" 2>/dev/null | head -5)"; fi
cat "$TMP"/conc.[0-9]* >"$TMP/conc.ids" 2>/dev/null || true
N=$(wc -l <"$TMP/conc.ids")
U=$(sort -u "$TMP/conc.ids" | wc -l)
if [ "$N" -eq 200 ] && [ "$U" -eq 200 ]; then ok; else bad "concurrent opens: $N ids, $U distinct, want 200"; fi
ALL=$(imctl list --all --limit 100000 --json)
jq -r '.items[] | select(.service | startswith("conc-")) | "\(.id) \(.events_count)"' <<<"$ALL" | sort >"$TMP/conc.seen"
if [ "$(cut -d' ' -f1 "$TMP/conc.seen")" = "$(sort "$TMP/conc.ids")" ]; then ok; else bad "the node does not hold exactly the 200 ids the clients got"; fi
if awk '$2 != 2 { bad = 1 } END { exit bad }' "$TMP/conc.seen"; then ok; else bad "some concurrent incidents lack their note"; fi
for k in $(seq 8); do
    jq_check "conc-$k: 25 incidents" "$ALL" --arg s "conc-$k" '[.items[] | select(.service == $s)] | length == 25'
done

# ---- a viewer may read but not write; data survives a restart ----------

# Everything above ran against one node process: it must still be there.
if kill -0 "$NODE_PID" 2>/dev/null; then ok; else bad "the node died during the suite (see $TMP/node.log)"; fi
node_stop
printf '\n[operator alice]\npubkey = %s\nrole = viewer\n' "$PUB" >>"$TMP/node/node.conf"
if node_start "$TMP/node" AMS; then
    ok
    expect "viewer can read" 0 "$D" imctl --key "$TMP/alice.key" show "$D"
    expect "viewer ping" 0 "role:          viewer" imctl --key "$TMP/alice.key" ping
    rejects "viewer cannot write" 1 "operator alice has role viewer" imctl --key "$TMP/alice.key" note "$D" hello
    jq_check "data survives restart" "$(imctl list --all --limit 100000 --json)" '.matched > 200'
else
    bad "node restart with a viewer operator"
fi
node_stop

DONE=1 # cleanup prints the summary and sets the exit status
