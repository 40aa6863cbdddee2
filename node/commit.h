/* commit: group commit of writes to the store.
 *
 * Many concurrent API requests share one LMDB write transaction and one
 * fsync (DESIGN.md §4 "Durability"). A request is completed only after the
 * transaction holding its events committed, or failed: nothing is ever
 * acknowledged that is not on disk. One writer thread owns the write side of
 * the store and the site's hybrid logical clock.
 *
 * Failure isolation: if a batch fails to commit (disk full, map full), each
 * of its requests is retried in a transaction of its own, so that one
 * oversized request cannot fail its neighbours; whatever still fails is
 * answered with the error, and nothing of it is durable. */
#ifndef IM_COMMIT_H
#define IM_COMMIT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "hlc.h"
#include "im.pb-c.h"
#include "keys.h"
#include "store.h"

struct commit_step;

/* One write: append body to incident ("" for an opening), or run `step`. */
struct commit_op {
    const char *incident;   /* borrowed from the caller until done() */
    Im__Body *body;         /* borrowed */
    /* Instead of appending body: a step run inside the write transaction,
     * which reads the store and appends any number of events with
     * commit_append() (alert intake, occurrence flushes, delivery
     * records), or stores replicated events (node/peer.c; it counts them
     * in cs->events so that on_commit wakes the replication links). It returns 0 when it has its answer, refusals included,
     * which it keeps in step_arg (no packed result is made); any other
     * code fails the transaction, after which the step may run again in a
     * transaction of its own, so it must reset its outputs on entry. */
    int (*step)(struct commit_step *cs, void *step_arg);
    void *step_arg;
    /* Output, valid in done(): a packed Im__Result (malloc'd; the caller
     * frees it) answering this op. */
    uint8_t *result;
    size_t result_size;
    int code;               /* the result's code */
    uint64_t events;        /* step: events it appended */
};

struct commit_req {
    const char *actor;      /* borrowed: who caused the events */
    struct commit_op *ops;
    size_t ops_count;
    /* Called on the writer thread once every op has its result. Must not
     * block: hand the reply to another thread. */
    void (*done)(struct commit_req *req);
    void *arg;
    struct commit_req *next; /* private */
};

struct committer {
    struct store *store;
    const struct im_key *site_key;
    struct hlc clock;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct commit_req *head, *tail;
    size_t queued_ops;
    int stopping;
    int started;
    /* Called on the writer thread after every commit that stored
     * something (given to commit_start_with; must not block). */
    void (*on_commit)(void *arg);
    void *on_commit_arg;
    /* Counters for metrics and benchmarks. */
    _Atomic uint64_t commits, events, failures, batch_ops_max;
};

/* What a step sees: the open write transaction and the clock. */
struct commit_step {
    struct committer *c;
    struct store_txn *t;
    const char *actor;
    uint64_t now_ms;        /* wall clock of this transaction */
    struct incident *inc;   /* scratch: the incident after the last append */
    uint64_t events;        /* events appended by this step */
};

/* Appends body to incident (NULL or "" with an opening: the next id is
 * assigned and written to id_out, which may be NULL otherwise). On 0,
 * cs->inc holds the incident after the event. A refusal of the fold
 * (IM_ESTATE, IM_ESTALE, IM_EINVAL, ...) writes nothing and is returned
 * with e saying why; the step decides what it means. Other codes are
 * failures of the transaction: return them. */
int commit_append(struct commit_step *cs, const char *incident, Im__Body *body,
                  char id_out[INCIDENT_ID_MAX + 1], struct im_err *e);

/* Runs one step through c from a thread that may block, and waits for its
 * commit: 0 once what the step wrote is durable, else the failure
 * (IM_EBUSY, IM_ECLOSED, or the transaction's). */
int commit_run(struct committer *c, const char *actor,
               int (*step)(struct commit_step *, void *), void *arg);

/* 1 if code is a refusal of one event (the transaction goes on). */
int commit_is_refusal(int code);

/* Starts the writer thread. site_key signs checkpoints; both are borrowed
 * for the committer's lifetime. */
int commit_start(struct committer *c, struct store *s,
                 const struct im_key *site_key, struct im_err *e);

/* Same, calling on_commit(on_commit_arg) on the writer thread after every
 * commit that stored something. */
int commit_start_with(struct committer *c, struct store *s,
                      const struct im_key *site_key,
                      void (*on_commit)(void *arg), void *on_commit_arg,
                      struct im_err *e);

/* Queues r. IM_EBUSY if COMMIT_QUEUE_MAX ops are already waiting,
 * IM_ECLOSED if stopping; in both cases done() is not called and r is the
 * caller's again. On 0, done() will be called exactly once. */
int commit_submit(struct committer *c, struct commit_req *r);

/* Completes everything queued, then stops the thread. */
void commit_stop(struct committer *c);

#endif
