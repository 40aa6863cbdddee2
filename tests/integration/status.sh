#!/usr/bin/env bash
# The status page of a real imnode, loaded in headless Chromium: the DOM
# shows the open major incident with its public updates and times, the
# service states and the recently resolved major incident, escapes what
# incidents say, and shows no internal text (descriptions, notes,
# resolution notes); the page is self-contained (no scripts, no external
# resources). A screenshot is kept as build/test-artifacts/status.png.
#
#   BIN=bin (default) bash tests/integration/status.sh
# Last line: "status: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
TMP=$(mktemp -d)
ARTIFACTS=build/test-artifacts
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
    echo "status: $pass passed, $fail failed"
    if [ "$fail" -eq 0 ]; then exit 0; else exit 1; fi
}
trap cleanup EXIT
trap 'echo "FAIL: stopped at line $LINENO: $BASH_COMMAND"' ERR

CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROMIUM" ]; then
    echo "FAIL: no chromium: run 'make deps' (deploy/deps installs Debian's chromium)"
    exit 1
fi

# Debian's chromium as root: no sandbox; and nothing that phones out.
chrome() {
    "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$TMP/chrome-$1" "${@:2}" 2>>"$TMP/chrome.log"
}

node_start "$TMP/node" AMS || exit 1
A=(-H "Authorization: Bearer $IM_API_TOKEN" -H 'Content-Type: application/json')
open_api() { curl -s "${A[@]}" "$IM_HTTP/api/v1/incidents" --data-binary "$1" | jq -r .id; }

# An open major incident, with internal text and two public updates.
MAJ=$(open_api '{"title":"Card payments fail <b>&</b> time out","service":"payments","impact":"high","urgency":"high","description":"SECRET-DESCRIPTION: the HSM certificate expired"}')
curl -s -o /dev/null "${A[@]}" "$IM_HTTP/api/v1/incidents/$MAJ/notes" --data-binary '{"text":"SECRET-NOTE: ask Bob for the root password"}'
"$BIN/imctl" update "$MAJ" --public "We are investigating failed card payments." >/dev/null
sleep 0.05
"$BIN/imctl" update "$MAJ" --public "A fix is being deployed; payments recover gradually." >/dev/null
# A P3 elsewhere: degraded, not on the page as an incident.
open_api '{"title":"Search is slow","service":"search","impact":"medium","urgency":"medium"}' >/dev/null
# A major incident resolved just now.
OLD=$(open_api '{"title":"Login outage","service":"accounts","impact":"high","urgency":"high"}')
"$BIN/imctl" update "$OLD" --public "Logins work again." >/dev/null
for verb in ack start; do "$BIN/imctl" "$verb" "$OLD" >/dev/null; done
"$BIN/imctl" resolve "$OLD" --code fixed --notes "SECRET-RESOLUTION: rotated keys" >/dev/null

RAW=$(curl -s "$IM_HTTP/status")
DOM=$(chrome dom --dump-dom "$IM_HTTP/status" || true)
[ -n "$DOM" ] && ok || bad "chromium printed no DOM: $(tail -n 5 "$TMP/chrome.log")"

has() { [[ $DOM == *"$2"* ]] && ok || bad "$1: the page lacks '$2'"; }
has "title" "<title>Service status</title>"
has "banner" 'id="overall">Major outage: we are working on it</div>'
has "incident title, escaped" "Card payments fail &lt;b&gt;&amp;&lt;/b&gt; time out"
has "latest update" "A fix is being deployed; payments recover gradually."
has "first update" "We are investigating failed card payments."
has "update time" '<time datetime="'
has "incident reference" "$MAJ"
has "payments row" '<td class="service">payments</td><td class="state major">Major outage</td>'
has "search row" '<td class="service">search</td><td class="state degraded">Degraded performance</td>'
has "accounts row" '<td class="service">accounts</td><td class="state ok">Operational</td>'
has "resolved section" "Resolved in the last 24 hours"
has "resolved incident" "Logins work again."
# Latest update first.
latest=${DOM%%A fix is being deployed*}
[[ $latest != *"We are investigating failed card payments."* ]] && ok || bad "updates not latest first"
# Nothing internal, nothing injected, nothing fetched.
for secret in SECRET-DESCRIPTION SECRET-NOTE SECRET-RESOLUTION "Search is slow"; do
    [[ $DOM != *"$secret"* ]] && ok || bad "the page shows internal text: $secret"
done
[[ $DOM != *"<b>"* ]] && ok || bad "HTML from an incident title reached the DOM"
grep -Eiq '<script|<link|<img|<iframe|src=|url\(' <<<"$RAW" && bad "the page loads something" || ok
# The DOM Chromium built is the page as sent (no script rewrote it).
[ "$(tr -d '\n' <<<"$DOM" | grep -o '<section' | wc -l)" -eq 3 ] && ok || bad "sections in the DOM"

mkdir -p "$ARTIFACTS"
rm -f "$ARTIFACTS/status.png"
chrome shot --window-size=1200,1400 --hide-scrollbars --screenshot="$PWD/$ARTIFACTS/status.png" \
    "$IM_HTTP/status" >/dev/null || true
if [ -s "$ARTIFACTS/status.png" ] && [ "$(head -c 8 "$ARTIFACTS/status.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] &&
    [ "$(stat -c %s "$ARTIFACTS/status.png")" -gt 20000 ]; then
    ok
    echo "screenshot: $ARTIFACTS/status.png ($(stat -c %s "$ARTIFACTS/status.png") bytes)"
else
    bad "no screenshot: $(tail -n 5 "$TMP/chrome.log")"
fi

node_stop
DONE=1
