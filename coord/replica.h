/* replica: one coordinator replica — leadership in etcd, the sites'
 * heartbeats, and the liveness decisions (DESIGN.md §5, docs/coordinator.md).
 *
 * Leadership: the replica keeps an etcd lease of leader_ttl seconds alive
 * and campaigns (lib/etcd.h etcd_campaign) on P/coord/leader; the create
 * revision it wins with is its term. A standby watches the key and
 * campaigns again as soon as it is deleted (the leader's lease ended), and
 * at least every COORD_CAMPAIGN_MS. The leader acts only while its last
 * successful keepalive is younger than its TTL; every write it makes is a
 * txn that compares the leader key's create revision with its term
 * (replica_txn), so a deposed leader's write changes nothing and makes it
 * step down.
 *
 * Liveness: every replica records the heartbeats it receives (nodes send
 * them to every replica). The leader, every COORD_TICK_MS, declares a site
 * up when its last heartbeat is younger than the site lease, and down when
 * it is older — but only once it has led for one full lease, since until
 * then the heartbeats went to the previous leader. Changes (and, while up,
 * a refresh every lease) are written to P/sites/CODE.
 *
 * Threads: the election thread (campaign, keepalive, liveness), the watch
 * thread (standbys), and callers of replica_heartbeat and the read
 * functions (the server's workers). All shared state is under mu. */
#ifndef IM_REPLICA_H
#define IM_REPLICA_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "etcd.h"
#include "keys.h"
#include "openset.h"
#include "records.h"
#include "schedule.h"

/* The leader's liveness tick: bounds how late a silent site is declared
 * down beyond its lease. */
#define COORD_TICK_MS 100
/* A standby campaigns at least this often, in case it missed the leader
 * key's deletion between two watches. */
#define COORD_CAMPAIGN_MS 500
/* Every replica checks the stored schedule's revision this often and
 * reloads it when it changed (the leader also reloads at once after an
 * apply, and before acting as a new leader). */
#define COORD_SCHEDULE_POLL_MS 1000
/* One standby watch lasts at most this long, then is renewed (a watch on a
 * dead etcd member would otherwise wait forever). */
#define COORD_WATCH_MS 5000

struct coord_site {
    const struct cfg_site *cfg;
    /* What this replica heard. */
    int heard;
    uint64_t last_mono_ms, last_wall_ms;
    uint64_t heartbeats;
    uint32_t open, owned;
    /* What the leader recorded in etcd (valid while this replica leads). */
    struct site_record rec;
};

struct replica {
    const struct config *cfg;
    const struct cfg_coordinator *self;
    struct im_key key;
    struct etcd etcd;
    char k_leader[RECORDS_KEY_MAX + 1];
    char k_sites[RECORDS_KEY_MAX + 1];  /* P/sites/ */
    char k_assign[RECORDS_KEY_MAX + 1]; /* P/assign/ */
    char k_open[RECORDS_KEY_MAX + 1];   /* P/open/ */
    char k_schedule[RECORDS_KEY_MAX + 1];

    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct coord_site sites[SITES_MAX];
    size_t sites_count;
    /* Leadership, under mu. */
    int leader;                /* this replica leads */
    int64_t term;              /* its term while it leads */
    int64_t lease;             /* its etcd lease; 0 none */
    uint64_t lease_ok_mono_ms; /* when the last successful keepalive was sent */
    uint64_t leader_since_mono_ms;
    char leader_id[COORD_ID_MAX + 1]; /* the leader as last seen; "" none */
    char leader_api[URL_MAX + 1];
    int64_t leader_term;
    int wake;         /* the watch saw the leader key go */
    uint64_t deposed; /* times this replica lost a fenced write */
    /* Ownership (coord/owners.h), under mu: the open incidents this
     * replica knows of; their owners are valid while it leads. */
    struct openset open;
    uint64_t owners_loaded_term; /* the term whose records were loaded */
    /* The schedule in force (coord/schedstore.h), under mu: the parsed
     * copy of P/schedule at sched_rev (its mod_revision; 0 = none). A
     * reader uses it under mu; a reload swaps it under mu. */
    struct schedule *sched;
    int64_t sched_rev;
    uint64_t sched_checked_mono_ms;

    atomic_int stop;
    pthread_t elect_thread, watch_thread;
    int elect_started, watch_started;
};

/* Loads the replica's key, opens the etcd client and starts the threads.
 * cfg is borrowed until replica_stop. */
int replica_start(struct replica *r, const struct config *cfg,
                  struct im_err *e);

/* Stops the threads; a leader resigns (revokes its lease) so that a standby
 * takes over at once. */
void replica_stop(struct replica *r);

/* The index of the site with code, or -1. */
int replica_site_index(const struct replica *r, const char *code);

/* Records a heartbeat of site i. */
void replica_heartbeat(struct replica *r, int i, uint32_t open, uint32_t owned);

/* A snapshot of leadership: 1 if this replica leads now (its lease is
 * surely alive), with its term. leader_id/api (may be NULL) receive the
 * leader as known. */
int replica_leading(struct replica *r, int64_t *term, char *leader_id,
                    char *leader_api);

/* A leader's fenced txn: prepends the leader compare to cmp and runs
 * success ops (no failure branch). IM_ENOTLEADER if this replica does not
 * lead; IM_ESTALE if the compare failed — a deposed leader: it steps down.
 * *revision_out (may be NULL): the txn's revision. */
int replica_txn(struct replica *r, const struct etcd_cmp *cmp, size_t cmp_count,
                const struct etcd_op *ops, size_t ops_count,
                int64_t *revision_out, struct im_err *e);

#endif
