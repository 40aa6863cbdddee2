#!/usr/bin/env bash
# Major incidents across sites with real processes on loopback (DESIGN.md
# §5, docs/escalation.md): three etcd members, three imcoord replicas
# ([coord] min_ack lowered to 5 s for the drill) and the three-site cluster
# from deploy/cluster, with a schedule whose ladder is 8 s per level.
#
#  - `imctl major declare` lists the incident at level 1 with the right
#    people (site manager, global manager), and every page reaches the
#    timeline of the site that sends it (Escalated events, `imctl show`);
#  - a P1 opened at a node is registered automatically;
#  - a deadline passes: level 2 (the site's backup);
#  - `imctl escalate --to-site` pages the helping site; `imctl escalate`
#    moves the ladder on now;
#  - kill -9 of the leader: a standby carries on the timers (the level
#    advances after the deadline), and no notice id is issued twice (the
#    coordinators' logs, etcd's record and the timelines agree);
#  - acknowledging at the owner node stops the ladder; resolving ends the
#    major incident;
#  - bad input, unknown incidents and sites, and no leader get clear errors.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
TMP=$(mktemp -d)
source tests/integration/lib.sh
CL=$TMP/cluster
IMCTL=${IMCTL:-$BIN/imctl}
SLACK_MS=${SLACK_MS:-0}
ACK_S=8

RX_PID=
cleanup() {
    [ -n "$RX_PID" ] && kill "$RX_PID" 2>/dev/null
    [ -f "$CL/sites" ] && BIN=$PWD/$BIN deploy/cluster down --dir "$CL" >/dev/null 2>&1
    if [ "$fail" -eq 0 ]; then rm -rf "$TMP"; else echo "kept $TMP for inspection"; fi
}
trap cleanup EXIT
give_up() { bad "$1"; summary majors; exit 1; }

if [ ! -x "${ETCD_BIN:-/usr/bin/etcd}" ] || ! command -v etcdctl >/dev/null; then
    echo "majors: SKIPPED: no etcd or etcdctl (make deps installs etcd-server and etcd-client)"
    summary majors
    exit $?
fi

cluster() { BIN=$PWD/$BIN deploy/cluster "$@" --dir "$CL"; }
coord_api() { jq -r --arg n "$1" '.coordinators[] | select(.name == $n) | .api' "$CL/cluster.json"; }
all_coords() { jq -r '[.coordinators[].api] | join(",")' "$CL/cluster.json"; }
node_of() { jq -r --arg s "$1" '.sites[] | select(.code == $s) | .node.api' "$CL/cluster.json"; }
ctl() { "$IMCTL" --key "$CL/keys/admin.key" "$@"; }
gctl() { ctl --coord "$(all_coords)" "$@"; }
at() { local s=$1; shift; ctl --node "$(node_of "$s")" "$@"; }
major() { # ID: its record in `imctl majors --all --json` (a few tries)
    local j
    for _ in 1 2 3; do
        j=$(gctl --timeout 3000 majors --all --json 2>/dev/null | jq -c --arg i "$1" '.majors[] | select(.incident == $i)')
        [ -n "$j" ] && break
        sleep 0.2
    done
    echo "$j"
}
wait_for() { # LIMIT_S CMD...: polls every 200 ms
    local limit=$1
    shift
    for _ in $(seq 1 $((limit * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
    return 1
}
major_is() { major "$1" | jq -e "$2"; } # ID FILTER
leader_name() {
    local k
    for k in 1 2 3; do
        ctl --coord "$(coord_api "coord-$k")" --timeout 1500 sites --json 2>/dev/null |
            jq -e '.leader' >/dev/null 2>&1 && { echo "coord-$k"; return 0; }
    done
    return 1
}
# Paged entries of ID's timeline at SITE, one JSON text per line.
pages_at() { at "$1" show "$2" --json 2>/dev/null | jq -c '[.timeline[] | select(.kind == "paged") | .text]'; }
has_page() { pages_at "$1" "$2" | jq -e --arg t "$3" 'any(.[]; contains($t))'; }

B=$(free_base)
CLUSTER_MIN_ACK=5s cluster up --sites ams,nyc,sgp --port "$B" --etcd 3 --coords 3 >"$TMP/up.log" 2>&1 ||
    give_up "cluster up: $(tail -5 "$TMP/up.log")"
ok
EP=$(jq -r '[.etcd[].client_url] | join(",")' "$CL/cluster.json")
PFX=/incident-mesh/local-$(basename "$CL")
grep -q "^min_ack = 5s" "$CL/coord-1/coord.conf" && ok || bad "coord.conf lacks min_ack"

# Everyone on call by override, so that the people do not depend on the
# day; each site's backup is whoever of the rest of its rotation is next.
cat >"$TMP/schedule.json" <<EOF
{"version": 1,
 "global": {"rotation": {"people": ["gina"], "length": "1w", "handoff": "09:00", "zone": "UTC", "start": "2020-01-06"}},
 "sites": {
  "AMS": {"rotation": {"people": ["alice", "bram", "carla"], "length": "1d", "handoff": "09:00", "zone": "Europe/Amsterdam", "start": "2020-01-06"},
          "overrides": [{"person": "alice", "from": "2020-01-01T00:00:00Z", "until": "2099-01-01T00:00:00Z"}]},
  "NYC": {"rotation": {"people": ["nina", "oscar", "pat"], "length": "1d", "handoff": "08:00", "zone": "America/New_York", "start": "2020-01-06"},
          "overrides": [{"person": "nina", "from": "2020-01-01T00:00:00Z", "until": "2099-01-01T00:00:00Z"}]},
  "SGP": {"rotation": {"people": ["siew", "tan"], "length": "1d", "handoff": "09:00", "zone": "Asia/Singapore", "start": "2020-01-06"},
          "overrides": [{"person": "siew", "from": "2020-01-01T00:00:00Z", "until": "2099-01-01T00:00:00Z"}]}},
 "escalation": {"levels": [
   {"target": "site_manager", "ack": "${ACK_S}s"},
   {"target": "site_backup", "ack": "${ACK_S}s"},
   {"target": "global_manager", "ack": "${ACK_S}s"}], "repeat": 1}}
EOF
expect "schedule apply" 0 "" gctl schedule apply "$TMP/schedule.json"

# AMS pages its team through a webhook: the escalation rule covers the
# ladder's pages (event.page in the JSON).
python3 tests/integration/receiver.py "$TMP/rx.port" "$TMP/rx.log" &
RX_PID=$!
for _ in $(seq 50); do [ -f "$TMP/rx.port" ] && break; sleep 0.1; done
touch "$TMP/rx.log"
cluster stop ams >/dev/null
cat >>"$CL/ams/node.conf" <<EOF

[notify pager]
type = webhook
url = http://127.0.0.1:$(cat "$TMP/rx.port")/ok
on = escalation
backoff = 200ms
EOF
cluster start ams >/dev/null || give_up "restart AMS with a notify channel"

# ---- declare: level 1 with the right people --------------------------------
at ams open --title "payments down" --service pay --impact medium --urgency medium >/dev/null || bad "open AMS-1"
wait_for 10 gctl owner AMS-1 && ok || bad "no owner recorded for AMS-1"
expect "major declare" 0 "AMS-1" gctl major declare AMS-1 --affects nyc --reason "payments down everywhere"
jq_check "majors: AMS-1 at level 1 with its people" "$(major AMS-1)" \
    '.level == 1 and .levels == 3 and .run == 1 and .runs == 2 and .phase == "active"
     and .owner_site == "AMS" and .paged_person == "alice" and .paged_site == "AMS"
     and .target == "site manager of AMS" and .global_manager == "gina"
     and .affects == ["AMS", "NYC"] and .declared_by == "admin"
     and .reason == "payments down everywhere" and .next_deadline != null
     and .acknowledged == false and .notices.issued == 3'
expect "majors (text)" 0 "alice (site manager of AMS)" gctl majors
# The pages reach the sites that send them, and the coordinator sees them
# recorded.
wait_for 10 has_page ams AMS-1 "page to alice at AMS (level 1, run 1)" && ok ||
    bad "AMS-1: no level-1 page to alice at AMS: $(pages_at ams AMS-1)"
wait_for 10 has_page ams AMS-1 "page to gina at AMS: major incident AMS-1 declared by admin" && ok ||
    bad "AMS-1: no page to the global manager: $(pages_at ams AMS-1)"
wait_for 10 has_page nyc AMS-1 "page to nina at NYC: major incident AMS-1 (owner AMS) affects NYC" && ok ||
    bad "AMS-1: no page to NYC's manager: $(pages_at nyc AMS-1)"
paged() { # PERSON LEVEL: AMS's webhook delivered that page of AMS-1
    jq -s -e --arg p "$1" --argjson l "$2" 'any(.[]; .body | fromjson | .incident.id == "AMS-1" and .event.page.person == $p and .event.page.level == $l and .event.page.site == "AMS")' "$TMP/rx.log"
}
wait_for 10 paged alice 1 && ok || bad "AMS's webhook did not page alice for level 1: $(tail -c 600 "$TMP/rx.log")"
wait_for 10 paged gina 0 && ok || bad "AMS's webhook did not page gina (the global manager): $(tail -c 600 "$TMP/rx.log")"
nyc_major() { at nyc show AMS-1 --json | jq -e '.major'; }
wait_for 10 nyc_major && ok || bad "NYC's copy of AMS-1 is not major (MajorDeclared)"
wait_for 10 major_is AMS-1 '.notices.recorded == 3 and .notices.pending == 0' && ok ||
    bad "AMS-1: pages not seen recorded: $(major AMS-1)"
expect "imctl show: the page in the timeline" 0 "page to alice at AMS (level 1, run 1)" at ams show AMS-1

# ---- a P1 is registered by itself -------------------------------------------
at nyc open --title "dns down" --service dns --impact high --urgency high >/dev/null || bad "open NYC-1"
wait_for 10 major_is NYC-1 '.level == 1' && ok || bad "NYC-1 (P1) not registered: $(gctl majors 2>&1)"
jq_check "NYC-1: registered by the coordinator" "$(major NYC-1)" \
    '.declared_by == "coordinator: P1 at NYC" and .paged_person == "nina" and .owner_site == "NYC"'

# ---- the deadline passes: level 2 ------------------------------------------
wait_for $((ACK_S + 4 + SLACK_MS / 1000)) major_is AMS-1 '.level == 2' && ok ||
    bad "AMS-1 not at level 2 after its deadline: $(major AMS-1)"
jq_check "level 2: the site's backup" "$(major AMS-1)" \
    '.target == "site backup of AMS" and (.paged_person == "bram" or .paged_person == "carla")'

# ---- help from another site, and the next level now -------------------------
expect "escalate --to-site" 0 "help asked of SGP" gctl escalate NYC-1 --to-site sgp --reason "need SGP's dns team"
wait_for 10 has_page sgp NYC-1 "page to siew at SGP: admin asks SGP to help" && ok ||
    bad "NYC-1: no help page at SGP: $(pages_at sgp NYC-1)"
expect "escalate: the next level now" 0 "NYC-1" gctl escalate NYC-1 --reason "spreading"
jq_check "NYC-1 at level 2, help kept" "$(major NYC-1)" \
    '.level == 2 and .help_sites == ["SGP"] and .target == "site backup of NYC"'
wait_for 10 has_page sgp NYC-1 "copy for SGP: escalated by admin (spreading)" && ok ||
    bad "NYC-1: no copy of level 2 for SGP: $(pages_at sgp NYC-1)"

# ---- kill -9 the leader: a standby carries on ---------------------------------
leader=$(leader_name) || bad "no leader"
a1=$(major AMS-1)
level=$(jq -r '.level' <<<"$a1")
t0=$(date +%s%3N)
cluster kill "$leader"
wait_for $((ACK_S * 2 + 8 + SLACK_MS / 1000)) major_is AMS-1 ".level > $level or .run > 1" && ok ||
    bad "AMS-1's ladder stopped with $leader: $(major AMS-1)"
new=$(leader_name) || bad "no new leader"
[ -n "$new" ] && [ "$new" != "$leader" ] && ok || bad "leader $new after killing $leader"
echo "measured: leader kill -9 -> AMS-1 past level $level in $(($(date +%s%3N) - t0)) ms (ack window ${ACK_S} s)"
grep -q "unresolved major incidents to carry on" "$CL/$new/coord.log" && ok ||
    bad "$new did not load the major incidents"

# ---- acknowledged at the owner: no more levels --------------------------------
at ams ack AMS-1 >/dev/null || bad "ack AMS-1 at AMS"
wait_for 10 major_is AMS-1 '.acknowledged and .phase == "acknowledged" and .next_deadline == null' && ok ||
    bad "AMS-1 not acknowledged: $(major AMS-1)"
jq_check "acknowledged by the owner site" "$(major AMS-1)" '.acked_by == "site AMS"'
issued=$(major AMS-1 | jq '.notices.issued')
sleep $((ACK_S + 2))
jq_check "no more pages after the acknowledgement" "$(major AMS-1)" \
    --argjson n "$issued" '.notices.issued == $n and .phase == "acknowledged"'

# ---- no notice id issued twice ------------------------------------------------
# Every page is logged once, by the leader that issued it, as "ID/n: page".
wait_for 15 major_is AMS-1 '.notices.pending == 0' || true
for id in AMS-1 NYC-1; do
    ids=$(grep -ho "info: $id/[0-9]*: page" "$CL"/coord-*/coord.log | sort)
    dups=$(uniq -d <<<"$ids")
    [ -z "$dups" ] && ok || bad "$id: notice ids issued twice: $dups"
    rec=$(etcdctl --endpoints="$EP" get --print-value-only "$PFX/majors/$id")
    n=$(jq '.issued' <<<"$rec")
    [ "$(grep -c . <<<"$ids")" = "$n" ] && ok ||
        bad "$id: etcd says $n pages issued, the logs $(grep -c . <<<"$ids")"
    jq_check "$id: etcd's record" "$rec" '.by != "" and .term > 0 and (.escalation | type) == "object"'
done
# The owner's timeline holds every page of AMS-1 once (each site records a
# page once by its id, and replication brings the others').
wait_for 10 major_is AMS-1 '.notices.recorded == .notices.issued' || true
pages=$(pages_at ams AMS-1)
jq_check "AMS-1: one timeline entry per page issued, none twice" "$pages" \
    --argjson n "$(major AMS-1 | jq '.notices.issued')" 'length == $n and (unique | length) == $n'

# ---- resolved: the major incident ends ------------------------------------------
at ams start AMS-1 >/dev/null && at ams resolve AMS-1 --code fixed --notes "failed over" >/dev/null ||
    bad "resolve AMS-1"
wait_for 10 major_is AMS-1 '.resolved and .phase == "resolved"' && ok || bad "AMS-1 not resolved: $(major AMS-1)"
run gctl majors --json
jq_check "majors without --all leaves resolved ones out" "$OUT" \
    '[.majors[].incident] == ["NYC-1"]'

# ---- bad input ---------------------------------------------------------------
before=$(major NYC-1)
expect "declare a bad id" 2 "is not an incident id" gctl major declare bogus
expect "declare an unknown incident" 1 "unknown incident AMS-99: no site has reported it" \
    gctl major declare AMS-99
expect "declare it again" 1 "NYC-1 is already a major incident (declared by coordinator: P1 at NYC" \
    gctl major declare NYC-1
expect "declare a resolved one" 1 "AMS-1 was a major incident, resolved at" gctl major declare AMS-1
expect "declare for an unknown site" 2 "no site 'LON' in this cluster" \
    gctl major declare NYC-1 --affects lon
expect "a bad --affects" 2 "ends with a comma" gctl major declare NYC-1 --affects nyc,
expect "an unknown subcommand" 2 "not a major subcommand" gctl major undeclare NYC-1
expect "escalate an incident that is not major" 1 "AMS-99 is not a major incident" gctl escalate AMS-99
expect "escalate a resolved one" 1 "AMS-1 was resolved at" gctl escalate AMS-1
expect "help from an unknown site" 2 "no site 'LON' in this cluster" gctl escalate NYC-1 --to-site lon
expect "help from the owner" 2 "NYC owns the incident" gctl escalate NYC-1 --to-site nyc
expect "help asked twice" 1 "SGP was already asked for help by admin" gctl escalate NYC-1 --to-site sgp
expect "a long reason" 2 "--reason is longer than 100 bytes" \
    gctl escalate NYC-1 --reason "$(printf 'r%.0s' $(seq 1 101))"
expect "majors --help" 0 "imctl majors [--all]" ctl majors --help
expect "escalate --help" 0 "--to-site SITE" ctl escalate --help
jq_check "bad input changed nothing" "$(major NYC-1)" --argjson b "$before" \
    '.notices.issued == $b.notices.issued and .level == $b.level and .help_sites == $b.help_sites'
# A write sent to a standby reaches the leader; with no leader at all (the
# leader killed, etcd without quorum) writes get a clear error and reads
# still answer.
now=$(leader_name)
for k in 1 2 3; do
    [ "coord-$k" != "$leader" ] && [ "coord-$k" != "$now" ] && standby=coord-$k
done
expect "escalate through a standby" 0 "NYC-1" ctl --coord "$(coord_api "$standby")" escalate NYC-1
cluster kill "$now"
cluster kill etcd-1
cluster kill etcd-2
sleep 3
expect "no leader" 3 "is a standby" gctl --timeout 1500 major declare NYC-1
expect "majors from a standby without a leader" 0 "NYC-1" gctl --timeout 1500 majors

cluster down >/dev/null
if grep -l "Sanitizer" "$CL"/*/node.log "$CL"/coord-*/coord.log >/dev/null 2>&1; then
    bad "a sanitizer reported: $(grep -h -m3 "Sanitizer" "$CL"/*/node.log "$CL"/coord-*/coord.log)"
else
    ok
fi
summary majors
