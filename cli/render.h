/* render: imctl's output, for people (aligned tables, RFC 3339 UTC times,
 * ages) and for scripts (one JSON object per command, via jansson).
 *
 * Pure formatting: the functions read decoded node replies (borrowed, not
 * kept) and write to the FILE given; they never talk to a node. The JSON
 * field names are part of imctl's interface, documented in docs/cli.md:
 * fields are only ever added. */
#ifndef IM_CLI_RENDER_H
#define IM_CLI_RENDER_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"
#include "im.pb-c.h"

/* ---- JSON ---------------------------------------------------------------
 * Each builder returns a new reference (the caller owns it, json_decref),
 * or NULL when jansson could not allocate. Times are RFC 3339 UTC strings,
 * or null when the time is 0 (not yet). Strings that are not valid UTF-8
 * (the node validates all text, so this is a defence, not a path) have the
 * offending bytes replaced by U+FFFD rather than being dropped. */

/* An incident. `summary`: a list item, which carries no description. The
 * timeline is included when the message has one (get with timeline). */
json_t *render_incident_json(const Im__Incident *inc, int summary);

/* {"items": [...summaries...], "matched": N} */
json_t *render_list_json(const Im__IncidentList *list);

/* Counts by state and priority, overall and per-service MTTA/MTTR. */
json_t *render_stats_json(const Im__StatsReply *st);

/* The node's identity and the clock skew measured by the caller: the
 * node's clock minus the midpoint of the request's round trip. */
json_t *render_ping_json(const Im__PingReply *p, int64_t skew_ms,
                         uint64_t round_trip_ms);

/* Writes j (indented, keys in insertion order) and a newline to out, and
 * drops the reference. IM_ENOMEM if j is NULL (a builder failed), IM_EIO
 * if the write failed. */
int render_json_print(FILE *out, json_t *j, struct im_err *e);

/* ---- people ---------------------------------------------------------- */

/* The fields of one incident, then its timeline (if the message has one),
 * refused entries marked. now_ms: for "(3h 02m ago)". */
void render_incident_text(FILE *out, const Im__Incident *inc, uint64_t now_ms);

/* A table: ID, P, STATE, MAJOR, SERVICE, OWNER, AGE, TITLE; with the
 * footer "N of M shown" when the node matched more than it sent. */
void render_list_text(FILE *out, const Im__IncidentList *list, uint64_t now_ms);

void render_stats_text(FILE *out, const Im__StatsReply *st);

/* imctl peers: replication links (behind = events the peer lacks of each
 * origin; "(+)" marks an origin where it holds more than we do). */
json_t *render_peers_json(const Im__PeersReply *r, uint64_t now_ms);
void render_peers_text(FILE *out, const Im__PeersReply *r, uint64_t now_ms);

void render_ping_text(FILE *out, const Im__PingReply *p, int64_t skew_ms,
                      uint64_t round_trip_ms);

/* imctl sites (a coordinator's answer): every site's health as the leader
 * recorded it, and how long ago the answering replica last heard it. */
json_t *render_sites_json(const Im__SitesReply *r);
void render_sites_text(FILE *out, const Im__SitesReply *r, uint64_t now_ms);

/* imctl owner / reassign / handback: an incident's recorded owner and, if
 * given, why. */
json_t *render_owner_json(const Im__OwnerReply *r);
void render_owner_text(FILE *out, const Im__OwnerReply *r);

/* schedule apply: {"stored", "revision", "warnings"}; text: one line, then
 * "warning: ..." lines. */
json_t *render_schedule_apply_json(const Im__ScheduleReply *r);
void render_schedule_apply_text(FILE *out, const Im__ScheduleReply *r);
/* schedule get: {"revision", "schedule": {...}}; text: the schedule,
 * indented, then its revision. e: the stored text is not JSON. */
json_t *render_schedule_json(const Im__ScheduleReply *r);
int render_schedule_text(FILE *out, const Im__ScheduleReply *r,
                         struct im_err *e);

/* oncall: {"at", "entries": [{"site" (null: global), "source", "person",
 * "from", "until", "until_local", "next": {"person", "until",
 * "until_local"}}]}; text: a table. */
json_t *render_oncall_json(const Im__OncallReply *r);
void render_oncall_text(FILE *out, const Im__OncallReply *r);

/* imctl majors / major declare / escalate: major incidents with their
 * owner, acknowledgement, escalation level and run, who the current level
 * paged, the next deadline, and the pages issued and recorded. */
json_t *render_majors_json(const Im__MajorsReply *r);
void render_majors_text(FILE *out, const Im__MajorsReply *r, uint64_t now_ms);

/* ---- helpers shared with report.c ---------------------------------------- */

/* "P1".."P5", or "-" for 0 (unknown). */
const char *render_priority_name(uint32_t priority);

/* RFC 3339 UTC, or `none` when ms is 0. out holds RENDER_TIME_MAX bytes. */
#define RENDER_TIME_MAX 40
void render_time(uint64_t ms, const char *none, char out[RENDER_TIME_MAX]);

/* The timeline text with the kind's own prefix removed ("note: x" -> "x",
 * "public update: x" -> "x"): the kind column says it already. */
const char *render_timeline_body(const Im__TimelineEntry *t);

#endif
