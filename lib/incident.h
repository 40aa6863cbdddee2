/* incident: the incident model and the deterministic fold of events into
 * incident state (DESIGN.md §3).
 *
 * Pure: no I/O, no clock, no allocation. An incident's state is a function of
 * the set of its events alone: incident_fold() sorts by (hlc, origin, seq)
 * and applies each in turn, so every replica holding the same events computes
 * the same state whatever order they arrived in. An event the fold refuses
 * (an illegal transition, a stale owner token) leaves the state unchanged and
 * is reported as refused with its reason; it stays in the log and timeline.
 *
 * The same incident_apply() validates a write before the node appends it, so
 * what a node accepts and what the fold accepts can never disagree. */
#ifndef IM_INCIDENT_H
#define IM_INCIDENT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "hlc.h"
#include "im.pb-c.h"
#include "bounds.h"

struct incident {
    char id[INCIDENT_ID_MAX + 1];          /* "" = no incident yet */
    char title[TITLE_MAX + 1];
    char description[DESCRIPTION_MAX + 1];
    char service[SERVICE_MAX + 1];
    char category[CATEGORY_MAX + 1];
    char subcategory[CATEGORY_MAX + 1];
    Im__Level impact;
    Im__Level urgency;
    int priority;                          /* 1..5 */
    int major;                             /* P1 or declared */
    int declared_major;
    Im__State state;
    char origin_site[SITE_CODE_MAX + 1];
    char owner_site[SITE_CODE_MAX + 1];
    char owner_manager[PERSON_MAX + 1];
    uint64_t owner_token;                  /* 0 = origin's provisional ownership */
    int owner_provisional;
    char assignee[PERSON_MAX + 1];
    char manager[PERSON_MAX + 1];
    char commander[PERSON_MAX + 1];
    char comms[PERSON_MAX + 1];
    char ops[PERSON_MAX + 1];
    char smes[SMES_MAX][PERSON_MAX + 1];
    size_t smes_count;
    uint64_t opened_at_ms;
    uint64_t acknowledged_at_ms;           /* first acknowledgement; 0 = none */
    uint64_t resolved_at_ms;               /* latest resolution; 0 after reopen */
    uint64_t closed_at_ms;
    uint64_t cancelled_at_ms;
    uint64_t updated_at_ms;
    char resolution_code[RESOLUTION_CODE_MAX + 1];
    char resolution_notes[RESOLUTION_NOTES_MAX + 1];
    char last_public_update[PUBLIC_UPDATE_MAX + 1];
    uint64_t last_public_update_at_ms;
    uint32_t events_count;                 /* accepted + refused */
    uint32_t reopen_count;
    /* Sort key of the last event folded in (see Im__Incident.last_*). */
    hlc_t last_hlc;
    char last_origin[SITE_CODE_MAX + 1];
    uint64_t last_seq;
};

/* ITIL matrix: impact x urgency -> 1 (critical) .. 5 (planning); 0 if either
 * is LEVEL_NONE or out of range. */
int incident_priority(Im__Level impact, Im__Level urgency);

/* Names used on the CLI, in JSON and in messages:
 * states: new acknowledged in_progress on_hold resolved closed cancelled
 * levels: high medium low
 * roles:  manager commander comms ops sme
 * The parse functions accept exactly these names (and "in-progress",
 * "on-hold"); IM_EINVAL otherwise. Name functions return "none" for 0
 * and "unknown" for a value out of range. */
const char *incident_state_name(Im__State s);
int incident_state_parse(const char *name, Im__State *out);
const char *incident_level_name(Im__Level l);
int incident_level_parse(const char *name, Im__Level *out);
const char *incident_role_name(Im__Role r);
int incident_role_parse(const char *name, Im__Role *out);
/* "P1".."P5" parse into 1..5. */
int incident_priority_parse(const char *name, int *out);

/* new, acknowledged, in_progress, on_hold. */
int incident_state_is_open(Im__State s);

/* The lifecycle (DESIGN.md §3):
 *   new -> acknowledged -> in_progress <-> on_hold; in_progress -> resolved
 *   resolved -> closed; resolved -> in_progress (reopen)
 *   any open state -> cancelled */
int incident_transition_allowed(Im__State from, Im__State to);

/* Writes what is allowed from `from`, as CLI verbs, e.g.
 * "from acknowledged you can: start, cancel"; for a terminal state
 * "closed is final". */
void incident_transitions_describe(Im__State from, char *out, size_t out_size);

/* The CLI verb that moves to `to` from `from`: ack, start, hold, resolve,
 * close, reopen, cancel ("start" also for on_hold -> in_progress). NULL for
 * a state no verb moves to (none, new). */
const char *incident_transition_verb(Im__State from, Im__State to);

/* Validates an event body on its own (field presence, bounds, enums, text),
 * before any state is considered. Used on every write and on every event
 * received from elsewhere. */
int incident_body_check(const Im__Body *body, struct im_err *e);

/* Owner-only events (DESIGN.md §5): transitions, assignment, public updates.
 * incident_apply() refuses them (IM_ESTALE) unless the event's origin is the
 * owner site and its owner_token the current token. */
int incident_body_owner_only(const Im__Body *body);

/* Applies one event to inc. 0: accepted, inc updated. Negative: refused,
 * inc unchanged except events_count and the last_* sort key, e says why
 * (IM_ESTATE for an illegal transition, IM_ESTALE for a stale owner token,
 * IM_EINVAL for an event that cannot apply, such as a second "opened").
 * Accepts events in sort order only: the caller folds.
 *
 * Preconditions, asserted (a violation aborts: it is a bug, not input):
 * ev sorts after inc's last_* key unless inc is fresh (events_count 0), and
 * ev->origin is at most SITE_CODE_MAX bytes (callers admit events from
 * configured sites only). The body is checked with incident_body_check().
 *
 * Refusal messages name what is allowed, e.g.
 *   "cannot resolve AMS-1: it is acknowledged; from acknowledged you can:
 *    start, cancel", "AMS-1 is closed; closed is final",
 *   "AMS-3 is on_hold, not resolved" (Transition.from compare-and-set),
 *   "stale owner token 3 from NYC: AMS-7 is owned by SGP under token 5".
 * Closed and cancelled incidents still take notes, owner and major events.
 * A FieldsSet that changes the category without naming a subcategory
 * clears the subcategory (it belonged to the old category). */
int incident_apply(struct incident *inc, const Im__Event *ev, struct im_err *e);

/* Orders events by (hlc, origin, seq): <0, 0, >0. */
int incident_event_cmp(const Im__Event *a, const Im__Event *b);

/* 1 if ev's sort key (hlc, origin, seq) is after inc's last_* key, so that
 * incident_apply() may take it (always, for a fresh inc); 0 if it is equal
 * or before (the caller must re-fold). */
int incident_event_after_last(const struct incident *inc, const Im__Event *ev);

/* One timeline line for an event: kind ("opened", "acknowledged", "note",
 * "update", "assigned", "role", "set", "owner", "major", "started", "held",
 * "resolved", "closed", "reopened", "cancelled", "alert", "alert_resolved",
 * "notified", "paged"; "transition" for a move to
 * new, "invalid" for a body that fails incident_body_check) and a human
 * summary, cut with "..." at a character boundary to fit text_size. A move
 * to in_progress is "reopened" when its Transition.from is resolved. */
#define TIMELINE_KIND_MAX 32
#define TIMELINE_TEXT_MAX (NOTE_MAX + 256)
void incident_event_describe(const Im__Event *ev, char kind[TIMELINE_KIND_MAX],
                             char *text, size_t text_size);

/* Per-event outcome of a fold, in sorted order. */
struct fold_outcome {
    const Im__Event *event;
    int code;                              /* 0 accepted, else refused */
    char reason[IM_ERRMSG_MAX];
};

/* Folds n events (any order; `events` is sorted in place) into a fresh
 * *inc. If outcomes is not NULL it receives n entries. Returns 0, or
 * IM_EINVAL if the events do not start with an accepted "opened" (the
 * events are folded all the same). The events' sort keys must be distinct. */
int incident_fold(struct incident *inc, const Im__Event **events, size_t n,
                  struct fold_outcome *outcomes);

/* Wire form. incident_pb_fill() points the message's strings into inc
 * (borrowed: valid while inc lives and is unchanged); holder provides the
 * sub-message storage. incident_from_pb() copies and validates bounds
 * (IM_ECORRUPT for a stored record that breaks them). */
struct incident_pb {
    Im__Incident msg;
    Im__Owner owner;
    Im__Roles roles;
    char *smes[SMES_MAX];
};
void incident_pb_fill(struct incident_pb *holder, const struct incident *inc);
int incident_from_pb(struct incident *inc, const Im__Incident *msg);

#endif
