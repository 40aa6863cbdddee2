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
 * incidents stay provisionally owned by their origin. What the node does
 * with the lease and the assignments (owner tokens, fencing its own owner
 * actions) is not wired yet: coordlink only keeps them for status. */
#ifndef IM_COORDLINK_H
#define IM_COORDLINK_H

#include <pthread.h>
#include <stdint.h>

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

struct coordlinks {
    const struct config *cfg;
    struct store *store;
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
};

/* Starts one thread per configured coordinator (none: returns 0 and does
 * nothing). Everything passed is borrowed until coordlinks_stop. */
int coordlinks_start(struct coordlinks *c, const struct config *cfg,
                     struct store *store, const struct im_key *key,
                     struct im_err *e);
void coordlinks_stop(struct coordlinks *c);

/* 1 if the site holds a live lease now. */
int coordlinks_lease_held(struct coordlinks *c);

#endif
