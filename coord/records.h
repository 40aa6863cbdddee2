/* records: the coordinator's records in etcd — the key layout and the JSON
 * form of each record. Pure: encoding and decoding only; the replica
 * (coord/replica.h) reads and writes them. Layout, under the configured
 * prefix P (default /incident-mesh/CLUSTER; docs/coordinator.md):
 *
 *   P/coord/leader      {"id","api"}: the leader, under its etcd lease; the
 *                       key's create revision is the leader's term
 *   P/sites/CODE        a site's health as the leader decided it
 *   P/assign/INCIDENT   who owns an incident; its owner token is the key's
 *                       mod_revision (a new decision is a new revision)
 *   P/open/INCIDENT     an open incident the leader knows of: what the
 *                       next leader needs to fail it over (service,
 *                       priority); deleted when it closes
 *   P/schedule          the on-call schedule file, in schedule_to_json's
 *                       form (coord/schedule.h)
 *   P/majors/INCIDENT   a major incident: its declaration, escalation state
 *                       (deadlines) and the pages issued (coord/majors.h)
 *
 * Decoders refuse a record that is not ours (IM_ECORRUPT naming the
 * field), so that a hand edit in etcd is reported, never half-used. */
#ifndef IM_RECORDS_H
#define IM_RECORDS_H

#include <stddef.h>
#include <stdint.h>

#include "bounds.h"
#include "err.h"
#include "escalate.h"

#define RECORDS_KEY_MAX (ETCD_PREFIX_MAX + 16 + INCIDENT_ID_MAX)
#define RECORDS_REASON_MAX 160

enum site_state { SITE_UNKNOWN = 0, SITE_UP = 1, SITE_DOWN = 2 };

/* "unknown", "up", "down". */
const char *records_site_state_name(enum site_state s);

struct site_record {
    enum site_state state;
    uint64_t since_ms;          /* wall time of the last change of state */
    uint64_t last_heartbeat_ms; /* wall time of the last heartbeat recorded */
    uint32_t open, owned;       /* from that heartbeat */
    char by[COORD_ID_MAX + 1];  /* the leader that wrote it */
    int64_t term;               /* its term */
    char reason[RECORDS_REASON_MAX + 1];
};

struct assignment_record {
    char incident[INCIDENT_ID_MAX + 1];
    char owner_site[SITE_CODE_MAX + 1];
    char manager[PERSON_MAX + 1];
    char reason[REASON_MAX + 1]; /* an election's reason (coord/elect.h) */
    uint64_t assigned_at_ms;
    char by[COORD_ID_MAX + 1];
    int64_t term;
    uint64_t token; /* not stored: the key's mod_revision, filled on read */
};

/* PREFIX/KIND/NAME into out (RECORDS_KEY_MAX + 1); NAME may be "" (the
 * prefix of a kind, "P/sites/"). */
void records_key(char out[RECORDS_KEY_MAX + 1], const char *prefix,
                 const char *kind, const char *name);

/* Encoders return a malloc'd NUL-terminated JSON text, or NULL (memory). */
char *records_site_encode(const struct site_record *r);
int records_site_decode(const uint8_t *json, size_t size,
                        struct site_record *out, struct im_err *e);

char *records_assignment_encode(const struct assignment_record *r);
int records_assignment_decode(const uint8_t *json, size_t size,
                              struct assignment_record *out, struct im_err *e);

/* An open incident as the leader recorded it (P/open/INCIDENT). */
struct open_record {
    char incident[INCIDENT_ID_MAX + 1];
    char service[SERVICE_MAX + 1];
    uint32_t priority;
    uint64_t since_ms; /* when the leader first recorded it open */
};

char *records_open_encode(const struct open_record *r);
int records_open_decode(const uint8_t *json, size_t size,
                        struct open_record *out, struct im_err *e);

/* The leader key's value: {"id": id, "api": api}. */
char *records_leader_encode(const char *id, const char *api);
int records_leader_decode(const uint8_t *json, size_t size,
                          char id[COORD_ID_MAX + 1], char api[URL_MAX + 1],
                          struct im_err *e);

/* Pages of one incident issued and not yet seen recorded. A ladder step
 * issues 1 + ESC_HELP_SITES_MAX at most; this leaves room for a few steps
 * while a site is cut off. Past it the oldest counts as expired. */
#define MAJORS_PENDING_MAX 48
_Static_assert(MAJORS_PENDING_MAX >= 2 * ESC_NOTICES_MAX, "two steps fit");

/* An operator's reason for a declaration, and the words on a resolution. */
#define MAJORS_REASON_MAX 160

/* One record's JSON: MAJORS_PENDING_MAX pages of ESC_WHY_MAX text and the
 * rest fit with room; a larger value is refused unread. */
#define MAJORS_RECORD_JSON_MAX (64 * 1024)

/* "coordinator: P1 at SITE", or an operator's name. */
#define MAJORS_DECLARED_BY_MAX 64
_Static_assert(MAJORS_DECLARED_BY_MAX >= OPERATOR_NAME_MAX, "names fit");

/* One page issued: Escalated's fields without the incident. */
struct major_page {
    uint32_t n; /* the notice id is "<incident>/<n>" */
    char site[SITE_CODE_MAX + 1];
    char person[PERSON_MAX + 1]; /* "" nobody on call */
    uint32_t level;              /* ladder level from 1; 0 not a level */
    uint32_t run;                /* from 1 */
    char text[ESC_WHY_MAX + 1];
    uint64_t issued_ms;
};

/* P/majors/INCIDENT. */
struct major_record {
    char incident[INCIDENT_ID_MAX + 1];
    char origin[SITE_CODE_MAX + 1];
    char owner[SITE_CODE_MAX + 1]; /* as last read from P/assign */
    uint64_t declared_ms;
    char declared_by[MAJORS_DECLARED_BY_MAX + 1];
    char affects[AFFECTS_MAX][SITE_CODE_MAX + 1];
    size_t affects_count;
    char reason[MAJORS_REASON_MAX + 1];
    char global_manager[PERSON_MAX + 1]; /* paged at registration */
    struct esc_state esc;
    /* The policy's shape and the current level's page, as of the last
     * step: what `imctl majors` shows. */
    uint32_t levels, runs;
    char target[ESC_TARGET_TEXT_MAX + 1];
    char paged_site[SITE_CODE_MAX + 1];
    char paged_person[PERSON_MAX + 1];
    uint64_t resolved_ms; /* 0: open */
    char resolved_why[MAJORS_REASON_MAX + 1];
    uint32_t issued, recorded, expired;            /* pages */
    struct major_page pending[MAJORS_PENDING_MAX]; /* oldest first */
    size_t pending_count;
    char by[COORD_ID_MAX + 1]; /* the leader that wrote it, and its term */
    int64_t term;
};

/* The record as JSON: NULL if out of memory, or if the escalation state
 * does not encode (a bug: escalate_state_to_json's only error is memory). */
char *records_major_encode(const struct major_record *r);

/* Parses what records_major_encode wrote, strictly (IM_ECORRUPT naming the
 * field, IM_ETOOBIG past MAJORS_RECORD_JSON_MAX). *out written only on
 * success. */
int records_major_decode(const uint8_t *json, size_t size,
                         struct major_record *out, struct im_err *e);

/* The origin site of an incident id "<SITE>-<n>" into site; IM_EINVAL if
 * id is not one. */
int records_incident_origin(const char *id, char site[SITE_CODE_MAX + 1]);

#endif
