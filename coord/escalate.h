/* escalate: the escalation timers of a major incident, as pure state
 * transitions. A policy is a ladder of levels, each a target and an
 * acknowledgement deadline, run once and then repeated `repeat` more
 * times. The state says where on the ladder an incident is, when its
 * current deadline falls, and who acknowledged it. Every transition takes
 * the time as an argument and returns the notifications it makes due; the
 * caller (imcoord's leader) sends them, and stores the state (its compact
 * JSON) in etcd before acting, so that a coordinator failover keeps the
 * timers.
 *
 * Targets name roles, not people: the caller resolves "site manager of
 * AMS" to a person at the moment it sends (schedule_resolve), because the
 * on-call person may change between two levels.
 *
 * Catch-up: when several deadlines have passed by the time of a tick (the
 * coordinator failed over, or stalled), the state jumps to the level the
 * timeline has reached and notifies that level once, naming the levels
 * skipped, instead of paging every skipped level at the same moment; the
 * notified level gets its full acknowledgement window from now. If the
 * timeline ran past the last repeat, the escalation is exhausted at once.
 * docs/escalation.md gives the reasons. */
#ifndef IM_COORD_ESCALATE_H
#define IM_COORD_ESCALATE_H

#include <stddef.h>
#include <stdint.h>

#include "bounds.h"
#include "err.h"

/* Levels in one policy: more than a handful means nobody is accountable. */
#define ESC_LEVELS_MAX 16

/* Extra runs of the ladder after the first. */
#define ESC_REPEAT_MAX 10

/* An acknowledgement deadline: at most a day, and at least the floor a
 * coordinator's [coord] min_ack may be lowered to for drills (5 s). A
 * coordinator runs a policy with every shorter window raised to its
 * min_ack (a minute by default: a person must be able to reach a
 * keyboard), see coord/majors.h. */
#define ESC_ACK_MS_MIN COORD_MIN_ACK_MS_FLOOR
#define ESC_ACK_MS_MAX (24 * 60 * 60 * 1000)

/* An operator's words on a manual escalation (escalate_now). */
#define ESC_REASON_MAX 100

/* Sites asked to help with one incident (escalate_to_site). */
#define ESC_HELP_SITES_MAX 16

/* Notifications one transition returns: one level (or the exhaustion
 * notice) plus a copy to every site asked to help. */
#define ESC_NOTICES_MAX (1 + ESC_HELP_SITES_MAX)

/* The human text of one notification: a sentence naming two targets (each
 * at most a PERSON_MAX name) and a level; the longest we write is about
 * 330 bytes, asserted in escalate.c. */
#define ESC_WHY_MAX 512

/* The state's JSON. ESC_HELP_SITES_MAX entries of (site, person, time) and
 * the rest fit with room to spare; a larger text is refused unread. */
#define ESC_STATE_JSON_MAX 8192

enum esc_target {
    ESC_SITE_MANAGER,   /* the on-call manager of the owner site */
    ESC_SITE_BACKUP,    /* the next person in the owner site's rotation */
    ESC_GLOBAL_MANAGER, /* the global incident manager on call */
    ESC_PERSON,         /* a named person */
};

struct esc_level {
    enum esc_target target;
    char person[PERSON_MAX + 1]; /* ESC_PERSON only; "" otherwise */
    uint64_t ack_ms;             /* time to acknowledge once notified */
};

struct esc_policy {
    struct esc_level levels[ESC_LEVELS_MAX];
    size_t levels_count;
    uint32_t repeat; /* runs after the first: 2 = three runs in all */
};

enum esc_phase {
    ESC_ACTIVE,    /* waiting for an acknowledgement */
    ESC_ACKED,     /* acknowledged: no more timers */
    ESC_EXHAUSTED, /* every level of every run timed out */
};

struct esc_help {
    char site[SITE_CODE_MAX + 1];
    char asked_by[PERSON_MAX + 1];
    uint64_t asked_ms;
};

struct esc_state {
    enum esc_phase phase;
    uint32_t level; /* index into the policy's levels */
    uint32_t pass;  /* 0 = the first run of the ladder */
    uint64_t started_ms;
    uint64_t deadline_ms; /* the current level's; 0 unless ESC_ACTIVE */
    char acked_by[PERSON_MAX + 1]; /* "" unless ESC_ACKED */
    uint64_t acked_ms;
    struct esc_help help[ESC_HELP_SITES_MAX];
    size_t help_count;
};

enum esc_why {
    ESC_WHY_START,     /* the escalation began: level 1 */
    ESC_WHY_TIMEOUT,   /* the previous level's deadline passed */
    ESC_WHY_CATCHUP,   /* several deadlines passed at once; levels skipped */
    ESC_WHY_EXHAUSTED, /* nobody acknowledged; the global manager is told */
    ESC_WHY_HELP,      /* a site was asked to help */
    ESC_WHY_COPY,      /* a helping site's copy of one of the above */
    ESC_WHY_MANUAL,    /* an operator moved the ladder on (escalate_now);
                          past the end it is ESC_WHY_EXHAUSTED */
};

/* One notification due. `site` is the site whose role is meant (the owner
 * for level targets, the helping site for ESC_WHY_HELP/COPY), `person` the
 * named person of an ESC_PERSON level. */
struct esc_notice {
    enum esc_target target;
    char site[SITE_CODE_MAX + 1];
    char person[PERSON_MAX + 1];
    uint32_t level; /* 0-based level it concerns */
    uint32_t pass;
    enum esc_why why_code;
    char why[ESC_WHY_MAX + 1];
};

struct esc_notices {
    struct esc_notice items[ESC_NOTICES_MAX];
    size_t count;
};

/* 0 if policy is usable: 1..ESC_LEVELS_MAX levels, deadlines within
 * ESC_ACK_MS_MIN..MAX, a valid person for ESC_PERSON levels (and none for
 * others), repeat <= ESC_REPEAT_MAX. Messages name "PATH.levels[i].field". */
int escalate_policy_check(const struct esc_policy *policy, const char *path,
                          struct im_err *e);

/* Starts an escalation for an incident owned by owner_site: level 0 of
 * pass 0, due at now + its deadline; notifies level 0. *st and *out are
 * written only on success. */
int escalate_start(const struct esc_policy *policy, const char *owner_site,
                   uint64_t now_ms, struct esc_state *st,
                   struct esc_notices *out, struct im_err *e);

/* Advances st to now: if the current deadline has passed, moves to the
 * next level (or catches up, see above) and returns the notifications due,
 * with copies to every helping site. Nothing is due while the deadline is
 * ahead, or once acknowledged or exhausted (out->count = 0). owner_site is
 * the owner now (ownership may have moved since the start). If the policy
 * changed under a running escalation, a level past its end counts as the
 * end of a run. On error st is unchanged. */
int escalate_tick(struct esc_state *st, const struct esc_policy *policy,
                  const char *owner_site, uint64_t now_ms,
                  struct esc_notices *out, struct im_err *e);

/* An operator (who, with an optional reason of at most ESC_REASON_MAX
 * bytes) moves an active escalation to its next level now, before its
 * deadline: the next level (or run) is notified with its full window, as
 * if the deadline had passed, with copies to every helping site; past the
 * last level of the last run the escalation is exhausted. IM_ESTATE once
 * acknowledged or exhausted (nothing left to escalate). On error st is
 * unchanged. */
int escalate_now(struct esc_state *st, const struct esc_policy *policy,
                 const char *owner_site, const char *who, const char *reason,
                 uint64_t now_ms, struct esc_notices *out, struct im_err *e);

/* Records that `who` acknowledged at now: the timers stop. Allowed while
 * active or exhausted; IM_ESTATE if already acknowledged (the message
 * says by whom). */
int escalate_ack(struct esc_state *st, const char *who, uint64_t now_ms,
                 struct im_err *e);

/* A manager (asked_by) asks `site` for help: its manager becomes a
 * notified party, told now (ESC_WHY_HELP) and copied on every later
 * notification. IM_EEXIST if that site was already asked, IM_EINVAL if it
 * is the owner site or not a site code, IM_ETOOBIG past
 * ESC_HELP_SITES_MAX. Allowed in any phase. */
int escalate_to_site(struct esc_state *st, const char *owner_site,
                     const char *site, const char *asked_by, uint64_t now_ms,
                     struct esc_notices *out, struct im_err *e);

/* The state as compact JSON, e.g.
 *   {"v":1,"phase":"active","level":1,"pass":0,"started":1795..,
 *    "deadline":1795..,"help":[["NYC","bob",1795..]]}
 * (acknowledged: "acked":["alice",1795..]). *json_out is malloc'd, the
 * caller frees it; written only on success. */
int escalate_state_to_json(const struct esc_state *st, char **json_out,
                           struct im_err *e);

/* Parses what escalate_state_to_json wrote, strictly: unknown keys, wrong
 * types, a phase inconsistent with its fields, or more than
 * ESC_STATE_JSON_MAX bytes are refused (IM_EINVAL, IM_ETOOBIG). *st is
 * written only on success. */
int escalate_state_from_json(const char *json, struct esc_state *st,
                             struct im_err *e);

const char *escalate_target_name(enum esc_target t);

/* A level's role in words for the owner site: "site manager of AMS",
 * "site backup of AMS", "global manager", or the person's name. */
#define ESC_TARGET_TEXT_MAX (PERSON_MAX + 32)
void escalate_describe_target(const struct esc_level *l, const char *site,
                              char *out, size_t cap);
const char *escalate_phase_name(enum esc_phase p);

#endif
