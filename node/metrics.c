/* metrics: see metrics.h. */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commit.h"
#include "incident.h"
#include "store.h"

struct metrics_out {
    char *data;
    size_t size, cap;
    int failed; /* IM_ENOMEM or IM_ETOOBIG */
};

void
metrics_init(struct metrics *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
}

void
metrics_fini(struct metrics *m)
{
    pthread_mutex_destroy(&m->mu);
}

int
metrics_register(struct metrics *m, metrics_collect_fn fn, void *arg)
{
    int rv = 0;

    pthread_mutex_lock(&m->mu);
    if (m->count == METRICS_COLLECTORS_MAX) {
        rv = IM_ETOOBIG;
    } else {
        m->collectors[m->count].fn = fn;
        m->collectors[m->count].arg = arg;
        m->count++;
    }
    pthread_mutex_unlock(&m->mu);
    return rv;
}

static void
out_put(struct metrics_out *o, const char *s, size_t n)
{
    if (o->failed)
        return;
    if (o->size + n + 1 > METRICS_TEXT_MAX) {
        o->failed = IM_ETOOBIG;
        return;
    }
    if (o->size + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 8192;
        char *d;
        while (cap < o->size + n + 1)
            cap *= 2;
        if ((d = realloc(o->data, cap)) == NULL) {
            o->failed = IM_ENOMEM;
            return;
        }
        o->data = d;
        o->cap = cap;
    }
    memcpy(o->data + o->size, s, n);
    o->size += n;
    o->data[o->size] = '\0';
}

static void
out_str(struct metrics_out *o, const char *s)
{
    out_put(o, s, strlen(s));
}

void
metrics_family(struct metrics_out *o, const char *name, const char *type,
               const char *help)
{
    out_str(o, "# HELP ");
    out_str(o, name);
    out_str(o, " ");
    out_str(o, help);
    out_str(o, "\n# TYPE ");
    out_str(o, name);
    out_str(o, " ");
    out_str(o, type);
    out_str(o, "\n");
}

void
metrics_sample(struct metrics_out *o, const char *name, uint64_t value, ...)
{
    char num[32];
    const char *label;
    va_list ap;
    int first = 1;

    out_str(o, name);
    va_start(ap, value);
    while ((label = va_arg(ap, const char *)) != NULL) {
        const char *v = va_arg(ap, const char *);
        out_str(o, first ? "{" : ",");
        out_str(o, label);
        out_str(o, "=\"");
        for (; v != NULL && *v; v++) {
            if (*v == '\\')
                out_str(o, "\\\\");
            else if (*v == '"')
                out_str(o, "\\\"");
            else if (*v == '\n')
                out_str(o, "\\n");
            else
                out_put(o, v, 1);
        }
        out_str(o, "\"");
        first = 0;
    }
    va_end(ap);
    if (!first)
        out_str(o, "}");
    snprintf(num, sizeof num, " %llu\n", (unsigned long long)value);
    out_str(o, num);
}

int
metrics_render(struct metrics *m, char **text, size_t *size)
{
    struct metrics_out o = {0};

    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->count; i++)
        m->collectors[i].fn(m->collectors[i].arg, &o);
    pthread_mutex_unlock(&m->mu);
    out_put(&o, "", 0);
    if (o.failed) {
        free(o.data);
        return o.failed;
    }
    *text = o.data;
    *size = o.size;
    return 0;
}

/* ---- core collectors ---- */

struct count_acc {
    uint64_t by[IM__STATE__STATE_CANCELLED + 1][6];
    uint64_t major_open;
};

static int
count_visit(void *arg, const Im__Incident *inc)
{
    struct count_acc *a = arg;
    if (inc->state >= 0 && inc->state <= IM__STATE__STATE_CANCELLED &&
        inc->priority <= 5)
        a->by[inc->state][inc->priority]++;
    a->major_open += inc->major && incident_state_is_open(inc->state);
    return 0;
}

void
metrics_collect_store(void *arg, struct metrics_out *o)
{
    static const char *const prio[6] = {"none", "P1", "P2", "P3", "P4", "P5"};
    struct store *s = arg;
    struct count_acc *a = calloc(1, sizeof *a);
    struct im_err e = {0};
    MDB_txn *txn;
    int ok = 0;

    if (a != NULL && store_read_begin(s, &txn, &e) == 0) {
        /* One pass over the records: cheap next to a scrape interval for
         * the incident counts a site holds (100,000 in ~0.1 s). */
        ok = store_scan(txn, s, count_visit, a, &e) == 0;
        store_read_end(txn);
    }
    metrics_family(o, "im_incidents", "gauge",
                   "Incidents held by this node, by state and priority.");
    for (int st = 1; ok && st <= IM__STATE__STATE_CANCELLED; st++)
        for (int p = 1; p <= 5; p++)
            metrics_sample(o, "im_incidents", a->by[st][p], "state",
                           incident_state_name(st), "priority", prio[p], NULL);
    metrics_family(o, "im_incidents_major_open", "gauge",
                   "Open major incidents.");
    if (ok)
        metrics_sample(o, "im_incidents_major_open", a->major_open, NULL);
    metrics_family(o, "im_store_read_ok", "gauge",
                   "1 if the incident counts above could be read.");
    metrics_sample(o, "im_store_read_ok", ok, NULL);
    free(a);
}

void
metrics_collect_commit(void *arg, struct metrics_out *o)
{
    struct committer *c = arg;

    metrics_family(o, "im_events_appended_total", "counter",
                   "Events appended to this site's log (committed).");
    metrics_sample(o, "im_events_appended_total", atomic_load(&c->events),
                   NULL);
    metrics_family(o, "im_commits_total", "counter",
                   "LMDB write transactions committed (one fsync each).");
    metrics_sample(o, "im_commits_total", atomic_load(&c->commits), NULL);
    metrics_family(
        o, "im_commit_failures_total", "counter",
        "Write transactions that failed (disk full, map full, ...).");
    metrics_sample(o, "im_commit_failures_total", atomic_load(&c->failures),
                   NULL);
}
