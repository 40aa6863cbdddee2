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

/* One write: append body to incident ("" for an opening). */
struct commit_op {
    const char *incident;   /* borrowed from the caller until done() */
    Im__Body *body;         /* borrowed */
    /* Output, valid in done(): a packed Im__Result (malloc'd; the caller
     * frees it) answering this op. */
    uint8_t *result;
    size_t result_size;
    int code;               /* the result's code */
};

struct commit_req {
    const char *actor;      /* borrowed: who caused the events */
    struct commit_op *ops;
    size_t ops_count;
    /* Instead of ops (ops_count 0): custom work in the batch's write
     * transaction, such as storing replicated events. It returns 0, having
     * recorded its own outcome in its request, or a failure of the
     * transaction (which is then retried with this request alone, like
     * ops). weight (1..COMMIT_BATCH_OPS_MAX) stands for ops_count in
     * batching. write_code is set after the commit: 0, or why the
     * transaction failed (nothing of it is durable). */
    int (*write)(struct commit_req *req, struct store_txn *t, struct hlc *clk,
                 uint64_t now_ms, struct im_err *e);
    size_t weight;
    int write_code;
    char write_error[IM_ERRMSG_MAX];
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
