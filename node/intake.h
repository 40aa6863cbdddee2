/* intake: alert intake requests and what they do to the log.
 *
 * A request comes from one integration (a PagerDuty Events API v2 event,
 * or an Alertmanager webhook notification) and is first parsed and
 * validated by a pure function (node/pagerduty.c, node/alertmanager.c:
 * bytes -> struct intake_req, or a list of errors), with no socket and no
 * store, so that the fuzzers drive exactly what the node runs.
 *
 * intake_step() then applies it inside one write transaction of the group
 * committer: it looks the alert key up in the alert index (node/alerts.c)
 * and opens an incident, joins one, acknowledges or resolves it. The
 * decision and the events it causes commit together, so a crash cannot
 * split them, and the sender is answered only after the commit.
 *
 * Semantics (PagerDuty's, docs/http-api.md):
 *   trigger     a key with an open incident adds an occurrence to it; else
 *               a new incident (also after the old one was resolved)
 *   acknowledge a new incident of a firing key is acknowledged; an unknown
 *               or resolved key is dropped (202 all the same)
 *   resolve     the key's alert resolves, and its incident (by_source);
 *               unknown or resolved: dropped
 * Alertmanager: one incident per groupKey; a firing alert (fingerprint,
 * startsAt) not yet recorded joins it, a duplicate delivery changes
 * nothing; a resolved alert is recorded, and when the last firing alert
 * of the group resolves the incident is resolved if the integration says
 * resolve_when_all_resolved.
 *
 * Alert storms: the first trigger opens the incident with one occurrence
 * event; further occurrences of the key are counted in the alert_pending
 * table (same transaction as the 202) and summarised in at most one
 * AlertOccurrence event per key per summary interval, by the trigger that
 * finds the interval over or by intake_flush_step() (run periodically). */
#ifndef IM_INTAKE_H
#define IM_INTAKE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "bounds.h"
#include "commit.h"
#include "config.h"
#include "err.h"

/* Why a request is refused, for the 4xx answer: one line per problem. */
struct intake_errors {
    int status;     /* HTTP status: 400 (invalid), 413 (too large), ... */
    int unparsable; /* not JSON at all (PagerDuty: "Unrecognized object") */
    size_t count;   /* messages held (at most INTAKE_ERRORS_MAX) */
    size_t dropped; /* further problems not held */
    char msg[INTAKE_ERRORS_MAX][INTAKE_ERROR_MAX];
};

void intake_errors_init(struct intake_errors *errs);
void intake_error(struct intake_errors *errs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

enum intake_action { INTAKE_TRIGGER, INTAKE_ACKNOWLEDGE, INTAKE_RESOLVE };

/* One Alertmanager alert of a notification. */
struct intake_alert {
    int firing; /* else resolved */
    char fingerprint[AM_FINGERPRINT_MAX + 1];
    uint64_t starts_at_ms;
};

struct intake_req {
    const struct cfg_integration *integ; /* borrowed from the config */
    enum intake_action action;   /* PagerDuty; Alertmanager: per alert */
    char key[ALERT_KEY_MAX + 1]; /* dedup_key or groupKey */
    int key_generated;           /* trigger without dedup_key */
    /* What an opening or an occurrence records. */
    char title[TITLE_MAX + 1];
    char *description; /* malloc'd, <= DESCRIPTION_MAX */
    char summary[ALERT_SUMMARY_MAX + 1];
    char source[ALERT_FIELD_MAX + 1];
    enum alert_severity severity;
    uint64_t event_ms; /* the sender's time; 0 = none */
    /* Alertmanager: the alerts of the notification. */
    struct intake_alert *alerts; /* malloc'd */
    size_t alerts_count;
};

/* Frees what req holds (not req). */
void intake_req_free(struct intake_req *req);

/* What a request did; outputs of intake_step(). */
enum intake_outcome {
    INTAKE_OPENED, /* a new incident */
    INTAKE_JOINED, /* an occurrence on the open incident of the key */
    INTAKE_ACKNOWLEDGED,
    INTAKE_RESOLVED,        /* the alert and its incident */
    INTAKE_ALERTS_RESOLVED, /* some alerts of a group; others still fire */
    INTAKE_DUPLICATE,       /* already recorded: nothing changed */
    INTAKE_DROPPED /* acknowledge/resolve of an unknown or resolved key */
};

struct intake_result {
    enum intake_outcome outcome;
    char incident[INCIDENT_ID_MAX + 1]; /* "" if none */
    char detail[IM_ERRMSG_MAX];         /* why dropped, ... */
    int refused;     /* the fold refused the opening: IM_E* (a 400) */
    uint64_t events; /* appended */
};

const char *intake_outcome_name(enum intake_outcome o);

/* The committer step for req: set op->step = intake_step and op->step_arg
 * to a struct intake_job. interval_ms: the storm summary interval. */
struct intake_job {
    const struct intake_req *req;
    uint64_t interval_ms;
    struct intake_result result;
};
int intake_step(struct commit_step *cs, void *job);

/* The committer step that summarises pending occurrences whose interval
 * is over (at most NOTIFY_PASS_MAX keys per run). */
struct intake_flush_job {
    uint64_t interval_ms;
    uint64_t flushed_keys; /* output */
    int more;              /* output: more were due */
};
int intake_flush_step(struct commit_step *cs, void *job);

/* ---- helpers for the parsers ---- */

/* Loads body as a JSON object. On failure errs says why (marked
 * unparsable) and NULL is returned. Bodies over HTTP_BODY_MAX are refused
 * with status 413 before parsing. */
json_t *intake_json_load(const char *body, size_t size,
                         struct intake_errors *errs);

/* The string member `name` of obj (path names it in messages, e.g.
 * "payload.summary"). Returns 1 and sets *out (borrowed from obj) if it is
 * a string of at most max bytes (and, if single_line, without control
 * characters); 0 if absent or null (an error if required); -1 if invalid
 * (an error added). required also refuses a blank string. */
int intake_json_string(json_t *obj, const char *name, const char *path,
                       size_t max, int required, int single_line,
                       const char **out, struct intake_errors *errs);

/* An RFC 3339 / ISO 8601 time as senders write it ("...Z", "+02:00",
 * "+0200"); IM_EINVAL if it is not one. */
int intake_parse_time(const char *text, uint64_t *ms_out);

/* A growing text buffer for descriptions; bounded by `max` bytes, beyond
 * which appends are cut off (marked truncated). */
struct intake_text {
    char *data;
    size_t size, cap, max;
    int failed, truncated;
};
void intake_text_printf(struct intake_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Moves the text into a malloc'd event description (<= DESCRIPTION_MAX,
 * control characters cleaned); NULL on allocation failure. Frees t. */
char *intake_text_finish(struct intake_text *t);

/* Copies src into dst (of dst_size bytes) as event text: control
 * characters other than newline and tab become spaces, and if it does
 * not fit it is cut at a UTF-8 boundary and ends in "...". src must be
 * valid UTF-8. Returns 1 if it was cut. */
int intake_text_copy(char *dst, size_t dst_size, const char *src,
                     size_t src_size);

/* Same for single-line fields (titles, sources): newline and tab become
 * spaces too. */
int intake_line_copy(char *dst, size_t dst_size, const char *src,
                     size_t src_size);

/* 1 if s holds nothing but spaces and control characters: what would be
 * blank once cleaned. */
int intake_blank(const char *s, size_t n);

/* Checks that the events a valid request turns into (the opening, an
 * occurrence, a resolution of its alerts) pass incident_body_check: the
 * parsers' promise, which the fuzzers hold them to. */
int intake_events_check(const struct intake_req *req, struct im_err *e);

#endif
