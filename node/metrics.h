/* metrics: the node's metrics in Prometheus text format (GET /metrics).
 *
 * A registry of collectors: each module that has something to count
 * registers one callback, which writes its families when /metrics is
 * scraped (so nothing is sampled between scrapes, and a module adds
 * metrics without touching this one; replication adds its lag and
 * rejected-frame counts this way). Collectors run on an HTTP worker
 * thread: they read atomics or open their own read transaction.
 *
 *   static void my_collect(void *arg, struct metrics_out *o) {
 *       metrics_family(o, "im_repl_lag_events", "gauge", "Events behind.");
 *       metrics_sample(o, "im_repl_lag_events", lag, "peer", "NYC", NULL);
 *   }
 *   metrics_register(&m, my_collect, peer_state);
 *
 * Names follow Prometheus conventions: im_ prefix, _total for counters. */
#ifndef IM_METRICS_H
#define IM_METRICS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "bounds.h"
#include "err.h"

struct metrics_out;

typedef void (*metrics_collect_fn)(void *arg, struct metrics_out *out);

struct metrics {
    pthread_mutex_t mu;
    struct {
        metrics_collect_fn fn;
        void *arg;
    } collectors[METRICS_COLLECTORS_MAX];
    size_t count;
};

void metrics_init(struct metrics *m);
void metrics_fini(struct metrics *m);

/* Adds a collector; arg is borrowed until metrics_fini. IM_ETOOBIG past
 * METRICS_COLLECTORS_MAX. Collectors run in registration order. */
int metrics_register(struct metrics *m, metrics_collect_fn fn, void *arg);

/* Runs every collector into a malloc'd text (*text, *size: the caller
 * frees it). IM_ENOMEM, or IM_ETOOBIG past METRICS_TEXT_MAX. */
int metrics_render(struct metrics *m, char **text, size_t *size);

/* For collectors: "# HELP" and "# TYPE" lines of a family (type counter
 * or gauge), then its samples. A sample's labels follow the value as
 * name, value string pairs, ended by NULL; values are escaped as the
 * format wants (backslash, quote, newline). */
void metrics_family(struct metrics_out *o, const char *name, const char *type,
                    const char *help);
void metrics_sample(struct metrics_out *o, const char *name, uint64_t value,
                    ...) __attribute__((sentinel));

/* Collectors of the core: incidents by state and priority (arg: struct
 * store *), events appended and commits (arg: struct committer *). */
void metrics_collect_store(void *store, struct metrics_out *o);
void metrics_collect_commit(void *committer, struct metrics_out *o);

#endif
