/* coordlink: the node's links to the coordinator replicas (DESIGN.md §5,
 * docs/coordinator.md).
 *
 * The node heartbeats every configured [coordinator] replica over the
 * secure channel (lib/link.h), each from its own thread, every lease/3:
 * its site code and a summary of its open incidents. Every replica
 * records the heartbeat (so a standby that takes over already knows which
 * sites are alive); only the leader's reply grants the site lease and
 * lists the incidents' recorded owners. The lease is held by this node's
 * monotonic clock from the moment the heartbeat was sent, so neither the
 * network delay nor the coordinator's clock can stretch it.
 *
 * A node without [coordinator] sections runs without a coordinator: its
 * incidents stay provisionally owned by their origin.
 *
 * What the leader's reply decides is recorded in the log, in one
 * transaction per reply, each only once: assignments that name this site
 * as owner or origin and are newer than the log's (OwnerAssigned), major
 * incidents that name it (MajorDeclared, if its copy is not major yet),
 * and pages for its team (Escalated, by notice id). An incident this node
 * does not hold yet (replication behind the coordinator) is left for the
 * next heartbeat.
 *
 * The lease fences the site's owner-only actions: coordlinks_owner_gate,
 * the store's owner gate, refuses them on a coordinator-assigned incident
 * (owner token > 0) once the lease has lapsed by this node's clock; the
 * notifier asks the same gate before sending. The coordinator moves a
 * site's incidents only after that lease has surely expired, so at most
 * one site acts as owner at a time (docs/ownership.md "Fencing"). */
#ifndef IM_COORDLINK_H
#define IM_COORDLINK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "commit.h"
#include "config.h"
#include "link.h"
#include "store.h"

/* A heartbeat without an answer within this is abandoned (and its
 * session): a little more than one lease at the longest. */
#define COORDLINK_TIMEOUT_MS 2000
#define COORDLINK_RECONNECT_MS_MIN 100
#define COORDLINK_RECONNECT_MS_MAX 1000
/* The largest reply: every assignment of a full heartbeat. */
#define COORDLINK_RECV_MAX (LINK_DATA_OVERHEAD + 1024 * 1024)

struct coordlink {
    struct coordlinks *all;
    const struct cfg_coordinator *coord;
    struct link_dial dial;
    pthread_t thread;
    int thread_started;
    uint64_t seq; /* heartbeats sent (this thread's) */
    /* Shared with status readers: under all->mu. */
    int connected;
    int leader; /* its last reply said it leads */
    uint64_t last_ok_mono_ms;
    char error[IM_ERRMSG_MAX];
};

/* The open incidents a heartbeat speaks for (those the site raised or
 * owns), at most COORD_HEARTBEAT_INCIDENTS_MAX of them; counts cover all. */
struct summary_acc {
    Im__IncidentSummary *items;
    size_t count;
    uint32_t open, owned;
    const char *site;
};

struct coordlinks {
    const struct config *cfg;
    struct store *store;
    struct committer *commit;
    const struct im_key *key;
    uint8_t cluster_id[CHAN_CLUSTER_ID_BYTES];
    struct coordlink links[COORDINATORS_MAX];
    size_t links_count;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping;
    /* The site lease, by this node's monotonic clock: the site may act as
     * owner until lease_until_mono_ms (0: never granted). */
    uint64_t lease_ms;
    uint64_t lease_until_mono_ms;
    uint64_t term; /* of the leader that granted it */
    _Atomic uint64_t recorded, refused; /* decisions recorded / refused */
    /* The heartbeat's summaries, shared by the links (under cache_mu). */
    pthread_mutex_t cache_mu;
    struct summary_acc cache;
    uint64_t cache_built_ms;
    int cache_valid;
};

/* Prepares c and installs the owner gate on store: call before writes
 * start. Everything passed is borrowed until coordlinks_fini. */
void coordlinks_init(struct coordlinks *c, const struct config *cfg,
                     struct store *store, struct committer *commit,
                     const struct im_key *key);

/* Starts one thread per configured coordinator (none: returns 0 and does
 * nothing). The committer must be running. */
int coordlinks_start(struct coordlinks *c, struct im_err *e);

/* Stops the threads (before the committer stops: they write through it). */
void coordlinks_stop(struct coordlinks *c);

/* Frees c, after the committer stopped (its thread calls the gate). */
void coordlinks_fini(struct coordlinks *c);

/* The store's owner gate (store_owner_gate_fn); arg is the coordlinks.
 * 0 if the site may act as owner of inc now: no coordinator configured,
 * an incident no coordinator assigned yet (owner token 0: provisional),
 * or a live lease. IM_ENOLEASE otherwise, saying since when. */
int coordlinks_owner_gate(void *arg, const struct incident *inc,
                          struct im_err *e);

/* 1 if the site holds a live lease now. */
int coordlinks_lease_held(struct coordlinks *c);

/* /metrics: lease held and remaining, each replica up and leading,
 * decisions recorded (metrics_collect_fn; arg is the coordlinks). */
struct metrics_out;
void coordlinks_metrics(void *arg, struct metrics_out *o);

#endif
