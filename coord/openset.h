/* openset: the open incidents a coordinator replica knows of, and the
 * ownership decisions that knowledge drives (docs/ownership.md,
 * docs/coordinator.md "Incident knowledge").
 *
 * Knowledge comes from two places: the sites' heartbeats (each lists the
 * open incidents it originated or owns, with service, priority, state and
 * the owner token it holds) and the leader's records in etcd (P/open/ID
 * and P/assign/ID, loaded when a replica becomes leader). Every replica
 * keeps a table from the heartbeats it receives, so a standby that takes
 * over already knows what is open; the leader adds the assignments.
 *
 * When an incident stops being open: nobody up lists it any more, and a
 * site that speaks for it says so — its origin (up, with a complete list)
 * or its owner (up, with a complete list, having listed it under the
 * current owner token). A site that is down or cut off says nothing, so
 * the incident stays open and a failover moves it.
 *
 * Pure: every function takes the time it needs; nothing here reads a
 * clock, etcd or a socket. One table is not thread-safe: the replica holds
 * it under its mutex. Sites are named by their index in the cluster's
 * configuration (0 .. sites_count-1, at most SITES_MAX, so a 64-bit mask
 * holds "which sites list it"). */
#ifndef IM_COORD_OPENSET_H
#define IM_COORD_OPENSET_H

#include <stddef.h>
#include <stdint.h>

#include "bounds.h"
#include "elect.h"
#include "err.h"
#include "schedule.h"

/* Open incidents one cluster tracks at once. Each heartbeat lists at most
 * COORD_HEARTBEAT_INCIDENTS_MAX per site; this bounds the table (and the
 * leader's load at election) with room for a day of a bad storm. */
#define OPENSET_INCIDENTS_MAX 65536

_Static_assert(SITES_MAX <= 64, "a uint64_t mask holds every site");

/* The owner of an incident as the leader recorded it. */
struct openset_owner {
    int site;                     /* index; -1 = no assignment known */
    uint64_t token;               /* its etcd mod_revision; 0 = none */
    char manager[PERSON_MAX + 1]; /* "" = nobody was on call */
    char reason[REASON_MAX + 1];
    uint64_t assigned_at_ms;
};

struct openset_entry {
    char id[INCIDENT_ID_MAX + 1];
    int origin; /* site index */
    char service[SERVICE_MAX + 1];
    uint32_t priority;
    int state;              /* Im__State, as last reported */
    uint64_t listed;        /* bit i: site i's latest heartbeat lists it */
    uint64_t first_seen_ms; /* when this replica first knew of it */
    uint64_t confirmed;     /* largest owner token its owner listed it under */
    int open;               /* 0 once closed (until the leader records it) */
    int recorded_open;      /* the leader's P/open/ID exists */
    int checked;            /* the leader has read its P/assign/ID */
    struct openset_owner *owner; /* NULL = none known; owned by the table */
};

/* What the table knows of each site's heartbeats. */
struct openset_site {
    uint64_t heard_ms; /* last heartbeat; 0 = never */
    int complete;      /* that heartbeat listed every open incident */
};

struct openset {
    struct openset_entry *v; /* sorted by id (strcmp) */
    size_t count, cap;
    struct openset_site sites[SITES_MAX];
    size_t sites_count;
};

/* One summary of a heartbeat, as the table reads it. */
struct openset_summary {
    const char *id;
    const char *service;
    uint32_t priority;
    int state;
    const char *owner_site; /* the site's belief; "" = none */
    uint64_t owner_token;
};

void openset_init(struct openset *t, size_t sites_count);
void openset_free(struct openset *t);

/* The entry with that id, or NULL. The pointer is valid until the next
 * call that adds or removes entries. */
struct openset_entry *openset_find(struct openset *t, const char *id);

/* Adds an entry (open, nobody listing it yet) or returns the existing one.
 * origin is the site index of the id's site code. IM_EINVAL for an id
 * that is not SITE-N of a known site (origin < 0); IM_ETOOBIG past
 * OPENSET_INCIDENTS_MAX; IM_ENOMEM. */
int openset_add(struct openset *t, const char *id, int origin, uint64_t now_ms,
                struct openset_entry **out, struct im_err *e);

/* Site `site`'s heartbeat at now listed items[0..n); complete says that
 * it listed every open incident it speaks for (open_count <= n). Unknown
 * ids are added (origin by origin_of, which returns -1 for ids of no
 * configured site: those are skipped). Sets the site's bit on the listed
 * entries and, for a complete list, clears it on every other. A summary
 * that names the owner the table has, under a token at least the
 * table's, confirms the assignment. Items past the table's limit are
 * skipped and counted in *skipped (may be NULL). */
void openset_heartbeat(struct openset *t, int site, uint64_t now_ms,
                       const struct openset_summary *items, size_t n,
                       int complete, int (*origin_of)(void *, const char *),
                       void *arg, size_t *skipped);

/* Sets (or replaces) the owner of an entry. */
int openset_set_owner(struct openset_entry *x, const struct openset_owner *o,
                      struct im_err *e);

/* 1 if entry x is to be taken as closed now, given each site's health
 * (up[i] for site i): see the rule at the top. */
int openset_is_closed(const struct openset *t, const struct openset_entry *x,
                      const int *up);

/* 1 if the latest heartbeat of a site that is up lists x (a reopened
 * incident shows up this way). */
int openset_listed_by_up(const struct openset_entry *x, const int *up,
                         size_t sites_count);

/* Removes entries that are closed and whose closure the leader has
 * recorded (open == 0 && !recorded_open). */
void openset_prune(struct openset *t);

/* Open incidents each site owns (load[i] for site i). */
void openset_load(const struct openset *t, uint32_t load[SITES_MAX]);

/* ---- the election's inputs -------------------------------------------- */

/* A site's health as the leader sees it, for the election. */
struct openset_health {
    const char *code;
    int up;                 /* the leader's recorded verdict */
    uint64_t last_heard_ms; /* wall time of its last heartbeat; 0 never */
};

/* The inputs of a run of elections: the cluster's sites with their
 * health, load, failover order and on-call manager at now; the service
 * map; the global manager. Built from the schedule when there is one;
 * without one, every site has no failover order and nobody on call (so
 * the origin owns while it is up and failover goes by load). Schedule
 * entries that name sites the cluster does not have are left out (the
 * apply warned about them). */
struct openset_env {
    struct elect_site sites[SITES_MAX];
    struct elect_failover failover[SITES_MAX];
    size_t sites_count;
    struct elect_service *services; /* malloc'd; freed by openset_env_free */
    size_t services_count;
    struct elect_oncall global;
    uint64_t now_ms;
};

/* sch may be NULL. IM_ENOMEM, or IM_ETOOBIG past SITES_MAX. */
int openset_env_build(struct openset_env *env,
                      const struct openset_health *health, size_t sites_count,
                      uint64_t lease_ms, const uint32_t *load,
                      const struct schedule *sch, uint64_t now_ms,
                      struct im_err *e);
void openset_env_free(struct openset_env *env);

/* Elects the owner of x. IM_EUNREACH if no site is up. */
int openset_elect(const struct openset_env *env, const struct openset *t,
                  const struct openset_entry *x, struct elect_result *out,
                  struct im_err *e);

/* The manager a site gets when a manager moves an incident there without
 * naming one: its on-call person at now, else the global incident
 * manager, else "" (nobody). *is_global says which. sch may be NULL. */
void openset_manager(const struct schedule *sch, const char *code,
                     uint64_t now_ms, char person[PERSON_MAX + 1],
                     int *is_global);

/* One failover decision: entry x (its index in the table) moves to
 * result.site. */
struct openset_move {
    size_t index;
    struct elect_result result;
};

/* The failover of every open incident owned by a site declared down
 * (down[i] for site i; a site neither up nor down, e.g. not yet heard by a
 * new leader, keeps its incidents), re-elected among the up sites, in id order;
 * each decision adds to the chosen site's load before the next, so a dead
 * site's incidents spread over equals. The reason names the down owner:
 * "failover: AMS is down (silent 3.1 s > lease 3 s); ..." when it is the
 * origin, else "failover from NYC, the owner, which is down (silent 3.2 s,
 * lease 3.0 s): AMS is the origin and is up; ...". Writes at most cap moves
 * into moves and sets *count; *more = 1 if there were more (the next run
 * takes them). env's loads are updated. IM_EUNREACH if no site is up. */
int openset_failover(struct openset_env *env, const struct openset *t,
                     const int *down, struct openset_move *moves, size_t cap,
                     size_t *count, int *more, struct im_err *e);

#endif
