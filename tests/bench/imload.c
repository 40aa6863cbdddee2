/* imload: a load generator for a node's API (`make bench`).
 *
 * Drives many concurrent signed requests at a running imnode over NNG:
 * INFLIGHT req contexts spread over CONNS connections, each context sending
 * its next request as soon as the previous one is answered (a closed loop).
 * Every request is a batch of Write ops, built and signed with
 * client_request_build before the clock starts, so that the measurement is
 * of the node and not of the load generator's own signing (the node still
 * verifies every signature). Every reply is decoded and every op's result
 * checked: an event counts only if the node acknowledged it (code 0, i.e.
 * after its commit).
 *
 *   open   open COUNT incidents, OPS per request (populates a store)
 *   note   open INCIDENTS incidents first (not timed; with --existing, take
 *          the first INCIDENTS open ones the node lists instead), then
 *          REQUESTS requests of OPS Note writes each, round-robin over them
 *
 * Prints "name value" lines (events/s, requests/s, latency percentiles of
 * whole requests, send to reply) for the run script to tabulate. Exit 0
 * only if every op was acknowledged; otherwise the first error is printed
 * and the exit status is 1 (2 for bad usage, 3 if the node is unreachable).
 *
 * Replication lag (tests/bench/repl.sh): --rate paces the requests (open
 * loop: request i leaves at start + i * ops / rate, whatever the replies
 * do), and --watch URL,... polls those nodes' version vectors (the API's
 * peers op) in a thread while the run goes on, each every --watch-ms. For
 * every acknowledged event and watched node, lag = the first poll that saw
 * the node hold its seq - the moment its reply reached us; an event seen
 * before its reply arrived counts 0. A lag is over- rather than
 * under-stated, by up to one poll period and one poll's round trip
 * (watch_poll_p50_us, watch_poll_p99_us: the polls' round trips). */
#include <errno.h>
#include <getopt.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bounds.h"
#include "client.h"
#include "clock.h"
#include "err.h"
#include "keys.h"
#include "tsan.h"

/* Requests in one phase: all are built before the clock starts, so this
 * bounds the load generator's memory (a one-op request is ~250 bytes). */
#define LOAD_REQUESTS_MAX 4000000
/* Concurrent requests: the node serves API_CONTEXTS at once; more than a
 * few times that only queues in NNG. */
#define LOAD_INFLIGHT_MAX 4096
#define LOAD_CONNS_MAX 64
/* Incidents the note phase writes to. */
#define LOAD_INCIDENTS_MAX 1000000
#define LOAD_COUNT_MAX 10000000
#define LOAD_SECONDS_MAX 3600
/* A request unanswered this long is a failure, not a slow success. */
#define LOAD_TIMEOUT_MS 60000
/* Services the opened incidents are spread over (so lists are realistic). */
#define LOAD_SERVICES 20
#define LOAD_ERROR_MAX 512
/* Nodes --watch polls, and vector changes kept per node (one per poll at
 * most: a poll every ~0.5 ms for an hour fits). */
#define LOAD_WATCH_MAX 8
/* Poll round trips kept for watch_poll_p50/p99_us (later polls are not
 * counted): an hour at one poll per ms per node of a few nodes. */
#define LOAD_WATCH_RTTS_MAX 4000000
#define LOAD_WATCH_SAMPLES_MAX (8 * 1024 * 1024)
/* After the last reply, how long --watch waits for the watched nodes to
 * hold every acknowledged event before it counts the rest as lost. */
#define LOAD_WATCH_TAIL_MS 30000
#define LOAD_RATE_MAX 1000000

static const char usage[] =
    "usage: imload --node URL --key FILE [options] open|note\n"
    "\n"
    "Load generator for an imnode API. Requests are built and signed before\n"
    "the clock starts; every op's result is checked.\n"
    "\n"
    "  open              open --count N incidents\n"
    "  note              open --incidents K incidents (untimed), then send\n"
    "                    --requests N requests of Note writes to them\n"
    "\n"
    "  --node URL        node API address (default $IM_NODE)\n"
    "  --key FILE        operator key (default $IM_KEY)\n"
    "  --ops M           Write ops per request, 1.." "256" " (default 1; open: 256)\n"
    "  --inflight C      concurrent requests (default 64)\n"
    "  --conns S         connections the requests are spread over (default 4)\n"
    "  --count N         open: incidents to open (default 100000)\n"
    "  --incidents K     note: incidents to write to (default 1000)\n"
    "  --existing        note: write to the first K open incidents the node\n"
    "                    lists rather than opening new ones\n"
    "  --requests N      note: requests to send (default 20000)\n"
    "  --seconds S       stop sending after S seconds (default: no limit)\n"
    "  --rate R          send R events/s, paced (default: as fast as replies\n"
    "                    come back)\n"
    "  --watch URL,...   report replication lag: poll these nodes' version\n"
    "                    vectors and time each acknowledged event from its\n"
    "                    reply to the first poll that finds it there\n"
    "  --watch-ms P      poll each watched node every P ms (default 2)\n";

struct load;

struct lctx {
    struct load *l;
    nng_ctx ctx;
    nng_aio *aio;
    int ctx_open;
    int sending;
    int sleeping;      /* waiting for the request's paced start */
    size_t idx;        /* request being served */
    uint64_t t0_us;    /* when it was sent */
};

struct load {
    nng_socket socks[LOAD_CONNS_MAX];
    int socks_open;
    struct lctx *ctxs;
    size_t ctxs_count;

    /* The phase: prebuilt requests, each owned here until sent. */
    nng_msg **msgs;
    size_t msgs_count;
    size_t ops_per_req;        /* ops in every request but the last */
    size_t last_ops;           /* ops in the last request */
    uint32_t *lat_us;          /* per request; written by its one callback */
    uint8_t *answered;         /* per request: 1 once answered */
    char (*ids)[INCIDENT_ID_MAX + 1]; /* open: the ids, per op; or NULL */
    uint64_t deadline_us;      /* 0: none */
    uint64_t start_us;
    uint64_t rate;             /* events/s; 0: unpaced */
    /* --watch: per request, its reply's time and its events' seqs. */
    uint64_t *ack_us;
    uint64_t *seq_lo, *seq_hi;

    _Atomic size_t next;
    _Atomic uint64_t ops_ok, ops_failed, reqs_failed;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t active;             /* contexts still running */
    char first_error[LOAD_ERROR_MAX];
};

static uint64_t
mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void
note_error(struct load *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
note_error(struct load *l, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&l->mu);
    if (l->first_error[0] == '\0') {
        va_start(ap, fmt);
        vsnprintf(l->first_error, sizeof l->first_error, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&l->mu);
}

static void
ctx_finish(struct lctx *x)
{
    struct load *l = x->l;
    pthread_mutex_lock(&l->mu);
    if (--l->active == 0)
        pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

static void ctx_send(struct lctx *x);

/* Sends the next request (when its pace says), or finishes this context. */
static void
ctx_next(struct lctx *x)
{
    struct load *l = x->l;
    size_t i;

    if (l->deadline_us != 0 && mono_us() >= l->deadline_us) {
        ctx_finish(x);
        return;
    }
    i = atomic_fetch_add(&l->next, 1);
    if (i >= l->msgs_count) {
        ctx_finish(x);
        return;
    }
    x->idx = i;
    if (l->rate != 0) {
        uint64_t due = l->start_us + (uint64_t)((double)i * l->ops_per_req *
                                                1e6 / (double)l->rate);
        uint64_t now = mono_us();
        if (due > now + 500) {
            nng_aio *aio = x->aio;
            x->sleeping = 1;
            /* Nothing of x is read after the hand-off (NNG may already be
             * running the callback on another thread). */
            TSAN_RELEASE(x);
            nng_sleep_aio((nng_duration)((due - now) / 1000), aio);
            return;
        }
    }
    ctx_send(x);
}

static void
ctx_send(struct lctx *x)
{
    struct load *l = x->l;
    size_t i = x->idx;

    x->sending = 1;
    x->t0_us = mono_us();
    nng_aio_set_msg(x->aio, l->msgs[i]);
    l->msgs[i] = NULL;
    {
        nng_ctx ctx = x->ctx;
        nng_aio *aio = x->aio;
        TSAN_RELEASE(x);
        nng_ctx_send(ctx, aio);
    }
}

static void
check_reply(struct lctx *x, nng_msg *msg)
{
    struct load *l = x->l;
    Im__Response *resp;
    uint64_t ok = 0, failed = 0;
    size_t want = x->idx + 1 == l->msgs_count ? l->last_ops : l->ops_per_req;

    resp = im__response__unpack(NULL, nng_msg_len(msg), nng_msg_body(msg));
    if (resp == NULL) {
        atomic_fetch_add(&l->reqs_failed, 1);
        note_error(l, "request %zu: undecodable reply", x->idx);
        return;
    }
    if (resp->code != 0 || resp->n_results != want) {
        atomic_fetch_add(&l->reqs_failed, 1);
        note_error(l, "request %zu refused: %s (%s); %zu results for %zu ops",
                   x->idx, resp->error, im_errname(resp->code),
                   resp->n_results, want);
        im__response__free_unpacked(resp, NULL);
        return;
    }
    for (size_t j = 0; j < resp->n_results; j++) {
        const Im__Result *r = resp->results[j];
        if (r->code != 0 || r->incident == NULL || r->event == NULL) {
            failed++;
            note_error(l, "request %zu op %zu: %s (%s)", x->idx, j, r->error,
                       im_errname(r->code));
            continue;
        }
        ok++;
        if (l->seq_lo != NULL) {
            if (l->seq_lo[x->idx] == 0 || r->event->seq < l->seq_lo[x->idx])
                l->seq_lo[x->idx] = r->event->seq;
            if (r->event->seq > l->seq_hi[x->idx])
                l->seq_hi[x->idx] = r->event->seq;
        }
        if (l->ids != NULL)
            snprintf(l->ids[x->idx * l->ops_per_req + j], INCIDENT_ID_MAX + 1,
                     "%s", r->incident->id);
    }
    im__response__free_unpacked(resp, NULL);
    atomic_fetch_add(&l->ops_ok, ok);
    atomic_fetch_add(&l->ops_failed, failed);
    l->answered[x->idx] = 1;
}

static void
ctx_cb(void *arg)
{
    struct lctx *x = arg;
    struct load *l;
    int rv;

    TSAN_ACQUIRE(x);
    l = x->l;
    rv = nng_aio_result(x->aio);
    if (x->sleeping) {
        x->sleeping = 0;
        ctx_send(x);
        return;
    }
    if (x->sending) {
        if (rv != 0) {
            /* A failed send leaves the message with us. */
            nng_msg_free(nng_aio_get_msg(x->aio));
            atomic_fetch_add(&l->reqs_failed, 1);
            note_error(l, "request %zu: send: %s", x->idx, nng_strerror(rv));
            ctx_finish(x);
            return;
        }
        nng_ctx ctx = x->ctx;
        nng_aio *aio = x->aio;
        x->sending = 0;
        TSAN_RELEASE(x);
        nng_ctx_recv(ctx, aio);
        return;
    }
    if (rv != 0) {
        atomic_fetch_add(&l->reqs_failed, 1);
        note_error(l, "request %zu: no reply: %s", x->idx, nng_strerror(rv));
        ctx_finish(x);
        return;
    }
    nng_msg *msg = nng_aio_get_msg(x->aio);
    uint64_t now = mono_us();
    l->lat_us[x->idx] = (uint32_t)(now - x->t0_us);
    if (l->ack_us != NULL)
        l->ack_us[x->idx] = now;
    check_reply(x, msg);
    nng_msg_free(msg);
    ctx_next(x);
}

static int
load_connect(struct load *l, const char *url, size_t conns, size_t inflight,
             struct im_err *e)
{
    int rv;

    for (size_t i = 0; i < conns; i++) {
        nng_socket *s = &l->socks[i];
        if ((rv = nng_req0_open(s)) != 0)
            return im_errf(e, IM_ENOMEM, "open socket: %s", nng_strerror(rv));
        l->socks_open++;
        /* Never resend: a write must not be applied twice. */
        nng_socket_set_ms(*s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
        nng_socket_set_size(*s, NNG_OPT_RECVMAXSZ, REPLY_SIZE_MAX);
        if ((rv = nng_dial(*s, url, NULL, 0)) != 0) {
            if (rv == NNG_EADDRINVAL || rv == NNG_EINVAL || rv == NNG_ENOTSUP)
                return im_errf(e, IM_EINVAL, "invalid node address '%s': use "
                                             "tcp://HOST:PORT or ipc:///PATH",
                               url);
            return im_errf(e, IM_EUNREACH, "cannot reach node at %s: %s", url,
                           nng_strerror(rv));
        }
    }
    l->ctxs = calloc(inflight, sizeof *l->ctxs);
    if (l->ctxs == NULL)
        return im_errf(e, IM_ENOMEM, "out of memory");
    for (size_t i = 0; i < inflight; i++) {
        struct lctx *x = &l->ctxs[i];
        x->l = l;
        if ((rv = nng_aio_alloc(&x->aio, ctx_cb, x)) != 0)
            return im_errf(e, IM_ENOMEM, "aio: %s", nng_strerror(rv));
        l->ctxs_count++;
        if ((rv = nng_ctx_open(&x->ctx, l->socks[i % conns])) != 0)
            return im_errf(e, IM_ENOMEM, "context: %s", nng_strerror(rv));
        x->ctx_open = 1;
        nng_aio_set_timeout(x->aio, LOAD_TIMEOUT_MS);
    }
    return 0;
}

static void
load_disconnect(struct load *l)
{
    for (size_t i = 0; i < l->ctxs_count; i++)
        nng_aio_stop(l->ctxs[i].aio);
    for (size_t i = 0; i < l->ctxs_count; i++) {
        if (l->ctxs[i].ctx_open)
            nng_ctx_close(l->ctxs[i].ctx);
        nng_aio_free(l->ctxs[i].aio);
    }
    for (int i = 0; i < l->socks_open; i++)
        nng_close(l->socks[i]);
    free(l->ctxs);
    l->ctxs = NULL;
    l->ctxs_count = 0;
    l->socks_open = 0;
}

static void
phase_free(struct load *l)
{
    if (l->msgs != NULL)
        for (size_t i = 0; i < l->msgs_count; i++)
            if (l->msgs[i] != NULL)
                nng_msg_free(l->msgs[i]);
    free(l->msgs);
    free(l->lat_us);
    free(l->answered);
    free(l->ack_us);
    free(l->seq_lo);
    free(l->seq_hi);
    l->ack_us = l->seq_lo = l->seq_hi = NULL;
    l->msgs = NULL;
    l->lat_us = NULL;
    l->answered = NULL;
    l->msgs_count = 0;
}

static int
phase_alloc(struct load *l, size_t requests, size_t ops, struct im_err *e)
{
    l->msgs = calloc(requests, sizeof *l->msgs);
    l->lat_us = calloc(requests, sizeof *l->lat_us);
    l->answered = calloc(requests, 1);
    l->ack_us = calloc(requests, sizeof *l->ack_us);
    l->seq_lo = calloc(requests, sizeof *l->seq_lo);
    l->seq_hi = calloc(requests, sizeof *l->seq_hi);
    if (l->msgs == NULL || l->lat_us == NULL || l->answered == NULL ||
        l->ack_us == NULL || l->seq_lo == NULL || l->seq_hi == NULL) {
        phase_free(l);
        return im_errf(e, IM_ENOMEM, "out of memory for %zu requests", requests);
    }
    l->msgs_count = requests;
    l->ops_per_req = ops;
    l->last_ops = ops;
    return 0;
}

struct phase_result {
    uint64_t requests, ops_ok, ops_failed, reqs_failed;
    double seconds;
    uint32_t p50_us, p99_us, max_us;
};

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Runs the built phase with every context in flight; waits for the end. */
static void
phase_run(struct load *l, uint64_t seconds, struct phase_result *out)
{
    uint64_t start, end;
    size_t n = 0;

    atomic_store(&l->next, 0);
    atomic_store(&l->ops_ok, 0);
    atomic_store(&l->ops_failed, 0);
    atomic_store(&l->reqs_failed, 0);
    start = mono_us();
    l->start_us = start;
    l->deadline_us = seconds ? start + seconds * 1000000 : 0;
    pthread_mutex_lock(&l->mu);
    l->active = l->ctxs_count;
    pthread_mutex_unlock(&l->mu);
    for (size_t i = 0; i < l->ctxs_count; i++)
        ctx_next(&l->ctxs[i]);
    pthread_mutex_lock(&l->mu);
    while (l->active > 0)
        pthread_cond_wait(&l->cv, &l->mu);
    pthread_mutex_unlock(&l->mu);
    end = mono_us();
    for (size_t i = 0; i < l->ctxs_count; i++)
        TSAN_ACQUIRE(&l->ctxs[i]);

    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < l->msgs_count; i++)
        if (l->answered[i])
            l->lat_us[n++] = l->lat_us[i];
    qsort(l->lat_us, n, sizeof *l->lat_us, cmp_u32);
    out->requests = n;
    out->ops_ok = atomic_load(&l->ops_ok);
    out->ops_failed = atomic_load(&l->ops_failed);
    out->reqs_failed = atomic_load(&l->reqs_failed);
    out->seconds = (double)(end - start) / 1e6;
    if (n > 0) {
        out->p50_us = l->lat_us[n / 2];
        out->p99_us = l->lat_us[n * 99 / 100];
        out->max_us = l->lat_us[n - 1];
    }
}

static int
phase_ok(struct load *l, const struct phase_result *r, struct im_err *e)
{
    if (r->ops_failed || r->reqs_failed)
        return im_errf(e, IM_EIO, "%llu ops and %llu requests failed; first: %s",
                       (unsigned long long)r->ops_failed,
                       (unsigned long long)r->reqs_failed, l->first_error);
    return 0;
}

/* ---- --watch: replication lag ---- */

struct watched {
    char url[URL_MAX + 1];
    struct client c;
    int open;
    /* Every change of the node's seq for our origin: when a poll's reply
     * arrived, and the seq it held. */
    uint64_t *t_us, *seq;
    size_t count, cap;
};

struct watch {
    struct watched nodes[LOAD_WATCH_MAX];
    size_t count;
    char origin[SITE_CODE_MAX + 1];
    pthread_t thread;
    int started;
    _Atomic int phase_done;     /* the load finished: poll the tail */
    _Atomic uint64_t want_seq;  /* the highest acknowledged seq, then */
    uint64_t polls;
    uint64_t period_us;         /* one poll of every node per period */
    /* Each poll's round trip: how much a lag may be overstated by. */
    uint32_t *rtt_us;
    size_t rtts_count, rtts_cap;
    char error[LOAD_ERROR_MAX];
};

/* The seq that node holds of origin (0 if none). */
static int
poll_seq(struct client *c, const char *origin, char *site_out, uint64_t *seq,
         struct im_err *e)
{
    Im__Peers q = IM__PEERS__INIT;
    Im__Op op = IM__OP__INIT, *opp = &op;
    Im__Response *resp = NULL;
    int rv;

    op.kind_case = IM__OP__KIND_PEERS;
    op.peers = &q;
    if ((rv = client_call(c, &opp, 1, &resp, e)) != 0)
        return rv;
    if (resp->code != 0 || resp->n_results != 1 || resp->results[0]->code != 0 ||
        resp->results[0]->peers == NULL) {
        rv = im_errf(e, IM_EPROTO, "peers refused: %s",
                     resp->code ? resp->error : "no peers result");
        im__response__free_unpacked(resp, NULL);
        return rv;
    }
    const Im__PeersReply *pr = resp->results[0]->peers;
    *seq = 0;
    if (site_out != NULL)
        snprintf(site_out, SITE_CODE_MAX + 1, "%s", pr->site);
    for (size_t i = 0; origin != NULL && i < pr->n_have; i++)
        if (strcmp(pr->have[i]->origin, origin) == 0)
            *seq = pr->have[i]->seq;
    im__response__free_unpacked(resp, NULL);
    return 0;
}

static int
watched_add(struct watched *w, uint64_t t_us, uint64_t seq)
{
    if (w->count > 0 && w->seq[w->count - 1] == seq)
        return 0;
    if (w->count == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 4096;
        uint64_t *t, *q;
        if (cap > LOAD_WATCH_SAMPLES_MAX)
            return IM_ETOOBIG;
        if ((t = realloc(w->t_us, cap * sizeof *t)) == NULL)
            return IM_ENOMEM;
        w->t_us = t;
        if ((q = realloc(w->seq, cap * sizeof *q)) == NULL)
            return IM_ENOMEM;
        w->seq = q;
        w->cap = cap;
    }
    w->t_us[w->count] = t_us;
    w->seq[w->count] = seq;
    w->count++;
    return 0;
}

/* Keeps one poll's round trip (up to LOAD_WATCH_RTTS_MAX of them). */
static int
watch_rtt_add(struct watch *wt, uint64_t rtt_us)
{
    if (wt->rtts_count == wt->rtts_cap) {
        size_t cap = wt->rtts_cap ? wt->rtts_cap * 2 : 4096;
        uint32_t *r;
        if (wt->rtts_cap == LOAD_WATCH_RTTS_MAX)
            return 0;
        if (cap > LOAD_WATCH_RTTS_MAX)
            cap = LOAD_WATCH_RTTS_MAX;
        if ((r = realloc(wt->rtt_us, cap * sizeof *r)) == NULL)
            return IM_ENOMEM;
        wt->rtt_us = r;
        wt->rtts_cap = cap;
    }
    wt->rtt_us[wt->rtts_count++] = rtt_us > UINT32_MAX ? UINT32_MAX : (uint32_t)rtt_us;
    return 0;
}

static void *
watch_main(void *arg)
{
    struct watch *wt = arg;
    uint64_t tail_end = 0;

    for (;;) {
        int all = 1;
        uint64_t round_us = mono_us();
        /* phase_done before want_seq (watch_finish stores them in the
         * other order): a round that began after the load ended compares
         * against the final want, never against 0. */
        int done = atomic_load(&wt->phase_done);
        uint64_t want = atomic_load(&wt->want_seq);
        for (size_t i = 0; i < wt->count; i++) {
            struct watched *w = &wt->nodes[i];
            struct im_err e = {0};
            uint64_t seq, sent_us = mono_us(), got_us;
            if (poll_seq(&w->c, wt->origin, NULL, &seq, &e) != 0 ||
                watched_add(w, got_us = mono_us(), seq) != 0) {
                snprintf(wt->error, sizeof wt->error, "watch %s: %s", w->url,
                         e.code ? im_errmsg(&e) : "too many samples");
                return NULL;
            }
            wt->polls++;
            if (watch_rtt_add(wt, got_us - sent_us) != 0) {
                snprintf(wt->error, sizeof wt->error, "out of memory");
                return NULL;
            }
            if (seq < want)
                all = 0;
        }
        /* Every watched node once per period: polls are signed requests
         * the nodes verify, and back to back they cost the nodes more CPU
         * than the load being measured. */
        uint64_t spent = mono_us() - round_us;
        if (spent < wt->period_us) {
            struct timespec ts = {0, (long)(wt->period_us - spent) * 1000L};
            nanosleep(&ts, NULL);
        }
        if (done) {
            if (all)
                break;
            if (tail_end == 0)
                tail_end = mono_us() + LOAD_WATCH_TAIL_MS * 1000ULL;
            else if (mono_us() > tail_end)
                break;
        }
    }
    return NULL;
}

/* Connects to every node of the comma-separated list and learns our
 * node's origin; then starts polling. */
static int
watch_start(struct watch *wt, const char *list, const char *self_url,
            const struct im_key *key, struct im_err *e)
{
    struct client self;
    uint64_t seq;
    const char *p = list;
    int rv;

    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        struct watched *w;
        if (wt->count == LOAD_WATCH_MAX)
            return im_errf(e, IM_ETOOBIG, "--watch takes at most %d nodes",
                           LOAD_WATCH_MAX);
        if (n == 0 || n > URL_MAX)
            return im_errf(e, IM_EINVAL, "--watch: empty or too long address");
        w = &wt->nodes[wt->count++];
        memcpy(w->url, p, n);
        w->url[n] = '\0';
        if ((rv = client_open_key(&w->c, w->url, key, e)) != 0)
            return rv;
        w->open = 1;
        p += n + (comma != NULL);
    }
    if ((rv = client_open_key(&self, self_url, key, e)) != 0)
        return rv;
    rv = poll_seq(&self, NULL, wt->origin, &seq, e);
    client_close(&self);
    if (rv != 0)
        return rv;
    if (pthread_create(&wt->thread, NULL, watch_main, wt) != 0)
        return im_errf(e, IM_ENOMEM, "start the watch thread");
    wt->started = 1;
    return 0;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Waits for the watcher to see the tail, then prints the lag figures. */
static int
watch_finish(struct watch *wt, struct load *l, struct im_err *e)
{
    uint64_t want = 0, missing = 0, *lags;
    size_t n = 0, cap = 0;

    for (size_t i = 0; i < l->msgs_count; i++)
        if (l->answered[i] && l->seq_hi[i] > want)
            want = l->seq_hi[i];
    atomic_store(&wt->want_seq, want);
    atomic_store(&wt->phase_done, 1);
    pthread_join(wt->thread, NULL);
    wt->started = 0;
    if (wt->error[0] != '\0')
        return im_errf(e, IM_EIO, "%s", wt->error);
    for (size_t i = 0; i < l->msgs_count; i++)
        if (l->answered[i] && l->seq_hi[i] != 0)
            cap += (size_t)(l->seq_hi[i] - l->seq_lo[i] + 1) * wt->count;
    if ((lags = malloc((cap ? cap : 1) * sizeof *lags)) == NULL)
        return im_errf(e, IM_ENOMEM, "out of memory");
    for (size_t i = 0; i < l->msgs_count; i++) {
        if (!l->answered[i] || l->seq_hi[i] == 0)
            continue;
        for (size_t k = 0; k < wt->count; k++) {
            const struct watched *w = &wt->nodes[k];
            for (uint64_t q = l->seq_lo[i]; q <= l->seq_hi[i]; q++) {
                /* The first sample holding q: samples' seqs only grow. */
                size_t lo = 0, hi = w->count;
                while (lo < hi) {
                    size_t mid = lo + (hi - lo) / 2;
                    if (w->seq[mid] >= q)
                        hi = mid;
                    else
                        lo = mid + 1;
                }
                if (lo == w->count) {
                    missing++;
                    continue;
                }
                lags[n++] = w->t_us[lo] > l->ack_us[i] ? w->t_us[lo] - l->ack_us[i] : 0;
            }
        }
    }
    qsort(lags, n, sizeof *lags, cmp_u64);
    printf("origin %s\n", wt->origin);
    printf("watched_nodes %zu\n", wt->count);
    printf("watch_polls %llu\n", (unsigned long long)wt->polls);
    printf("watch_period_us %llu\n", (unsigned long long)wt->period_us);
    qsort(wt->rtt_us, wt->rtts_count, sizeof *wt->rtt_us, cmp_u32);
    printf("watch_poll_p50_us %llu\n", wt->rtts_count ?
           (unsigned long long)wt->rtt_us[wt->rtts_count / 2] : 0ULL);
    printf("watch_poll_p99_us %llu\n", wt->rtts_count ?
           (unsigned long long)wt->rtt_us[wt->rtts_count * 99 / 100] : 0ULL);
    printf("lag_events %zu\n", n);
    printf("lag_missing %llu\n", (unsigned long long)missing);
    printf("lag_p50_us %llu\n", n ? (unsigned long long)lags[n / 2] : 0ULL);
    printf("lag_p99_us %llu\n", n ? (unsigned long long)lags[n * 99 / 100] : 0ULL);
    printf("lag_p999_us %llu\n", n ? (unsigned long long)lags[n * 999 / 1000] : 0ULL);
    printf("lag_max_us %llu\n", n ? (unsigned long long)lags[n - 1] : 0ULL);
    free(lags);
    return 0;
}

static void
watch_close(struct watch *wt)
{
    if (wt->started) {
        atomic_store(&wt->want_seq, 0);
        atomic_store(&wt->phase_done, 1);
        pthread_join(wt->thread, NULL);
    }
    for (size_t i = 0; i < wt->count; i++) {
        if (wt->nodes[i].open)
            client_close(&wt->nodes[i].c);
        free(wt->nodes[i].t_us);
        free(wt->nodes[i].seq);
    }
    free(wt->rtt_us);
}

/* ---- request bodies ---- */

static const Im__Level levels[3] = {IM__LEVEL__LEVEL_HIGH, IM__LEVEL__LEVEL_MEDIUM,
                                    IM__LEVEL__LEVEL_LOW};

/* Builds and signs request r of `ops` openings (incidents first..). */
static int
build_opens(const struct im_key *key, size_t first, size_t ops,
            uint64_t now_ms, nng_msg **out, struct im_err *e)
{
    Im__Op op[REQ_OPS_MAX], *opp[REQ_OPS_MAX];
    Im__Write w[REQ_OPS_MAX];
    Im__Body b[REQ_OPS_MAX];
    Im__Opened o[REQ_OPS_MAX];
    char titles[REQ_OPS_MAX][64], services[REQ_OPS_MAX][16];

    for (size_t j = 0; j < ops; j++) {
        size_t n = first + j;
        im__op__init(&op[j]);
        im__write__init(&w[j]);
        im__body__init(&b[j]);
        im__opened__init(&o[j]);
        snprintf(titles[j], sizeof titles[j], "load incident %zu: errors above SLO", n);
        snprintf(services[j], sizeof services[j], "svc-%02zu", n % LOAD_SERVICES);
        o[j].title = titles[j];
        o[j].description = (char *)"opened by imload";
        o[j].service = services[j];
        o[j].category = (char *)"bench";
        o[j].subcategory = (char *)"";
        /* Impact and urgency walk the matrix, so all priorities occur;
         * (n / 3) keeps them from moving in lockstep. */
        o[j].impact = levels[n % 3];
        o[j].urgency = levels[(n / 3) % 3];
        b[j].kind_case = IM__BODY__KIND_OPENED;
        b[j].opened = &o[j];
        w[j].incident = (char *)"";
        w[j].body = &b[j];
        op[j].kind_case = IM__OP__KIND_WRITE;
        op[j].write = &w[j];
        opp[j] = &op[j];
    }
    return client_request_build(key, opp, ops, now_ms, out, e);
}

static int
build_notes(const struct im_key *key, char (*ids)[INCIDENT_ID_MAX + 1],
            size_t ids_count, size_t first, size_t ops, uint64_t now_ms,
            nng_msg **out, struct im_err *e)
{
    Im__Op op[REQ_OPS_MAX], *opp[REQ_OPS_MAX];
    Im__Write w[REQ_OPS_MAX];
    Im__Body b[REQ_OPS_MAX];
    Im__Note nt[REQ_OPS_MAX];
    char texts[REQ_OPS_MAX][80];

    for (size_t j = 0; j < ops; j++) {
        size_t n = first + j;
        im__op__init(&op[j]);
        im__write__init(&w[j]);
        im__body__init(&b[j]);
        im__note__init(&nt[j]);
        snprintf(texts[j], sizeof texts[j],
                 "load note %zu: p99 of checkout-api at 840 ms, rolling back", n);
        nt[j].text = texts[j];
        b[j].kind_case = IM__BODY__KIND_NOTE;
        b[j].note = &nt[j];
        w[j].incident = ids[n % ids_count];
        w[j].body = &b[j];
        op[j].kind_case = IM__OP__KIND_WRITE;
        op[j].write = &w[j];
        opp[j] = &op[j];
    }
    return client_request_build(key, opp, ops, now_ms, out, e);
}

/* Opens count incidents, ops per request (the last request takes the
 * rest); ids (if not NULL, count slots) receives their ids in order. */
static int
run_opens(struct load *l, const struct im_key *key, size_t count, size_t ops,
          uint64_t seconds, char (*ids)[INCIDENT_ID_MAX + 1],
          struct phase_result *r, struct im_err *e)
{
    size_t requests = (count + ops - 1) / ops;
    uint64_t now = clock_wall_ms();
    int rv;

    if ((rv = phase_alloc(l, requests, ops, e)) != 0)
        return rv;
    l->last_ops = count - (requests - 1) * ops;
    l->ids = ids;
    for (size_t i = 0; i < requests; i++) {
        size_t n = i + 1 == requests ? l->last_ops : ops;
        if ((rv = build_opens(key, i * ops, n, now, &l->msgs[i], e)) != 0)
            goto out;
    }
    phase_run(l, seconds, r);
    rv = phase_ok(l, r, e);
out:
    l->ids = NULL;
    phase_free(l);
    return rv;
}

/* The ids of the first count open incidents the node lists (rank order). */
static int
list_existing(const char *url, const struct im_key *key, size_t count,
              char (*ids)[INCIDENT_ID_MAX + 1], struct im_err *e)
{
    Im__List l = IM__LIST__INIT;
    Im__Op op = IM__OP__INIT, *opp = &op;
    Im__Response *resp = NULL;
    struct client c;
    int rv;

    if ((rv = client_open_key(&c, url, key, e)) != 0)
        return rv;
    l.limit = (uint32_t)count;
    op.kind_case = IM__OP__KIND_LIST;
    op.list = &l;
    if ((rv = client_call(&c, &opp, 1, &resp, e)) != 0)
        goto out;
    if (resp->code != 0 || resp->n_results != 1 || resp->results[0]->code != 0 ||
        resp->results[0]->list == NULL) {
        rv = im_errf(e, IM_EPROTO, "list refused: %s",
                     resp->code ? resp->error
                     : resp->n_results == 1 ? resp->results[0]->error : "no result");
        goto out;
    }
    if (resp->results[0]->list->n_items < count) {
        rv = im_errf(e, IM_ENOTFOUND, "--existing: the node lists %zu open "
                                      "incidents, not %zu",
                     resp->results[0]->list->n_items, count);
        goto out;
    }
    for (size_t i = 0; i < count; i++)
        snprintf(ids[i], INCIDENT_ID_MAX + 1, "%s",
                 resp->results[0]->list->items[i]->id);
out:
    if (resp != NULL)
        im__response__free_unpacked(resp, NULL);
    client_close(&c);
    return rv;
}

static void
print_result(const char *mode, const struct phase_result *r, size_t ops,
             size_t inflight, size_t conns)
{
    printf("mode %s\n", mode);
    printf("ops_per_request %zu\n", ops);
    printf("inflight %zu\n", inflight);
    printf("conns %zu\n", conns);
    printf("requests %llu\n", (unsigned long long)r->requests);
    printf("events_ok %llu\n", (unsigned long long)r->ops_ok);
    printf("seconds %.3f\n", r->seconds);
    printf("events_per_s %.0f\n", r->seconds > 0 ? r->ops_ok / r->seconds : 0.0);
    printf("requests_per_s %.0f\n",
           r->seconds > 0 ? r->requests / r->seconds : 0.0);
    printf("latency_p50_us %u\n", r->p50_us);
    printf("latency_p99_us %u\n", r->p99_us);
    printf("latency_max_us %u\n", r->max_us);
}

static int
parse_size(const char *opt, const char *v, size_t lo, size_t hi, size_t *out)
{
    char *end;
    unsigned long long n;
    errno = 0;
    n = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-' || n < lo || n > hi) {
        fprintf(stderr, "imload: %s '%.32s' is not a number from %zu to %zu\n",
                opt, v, lo, hi);
        return IM_EINVAL;
    }
    *out = (size_t)n;
    return 0;
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"node", required_argument, NULL, 'n'},
        {"key", required_argument, NULL, 'k'},
        {"ops", required_argument, NULL, 'o'},
        {"inflight", required_argument, NULL, 'i'},
        {"conns", required_argument, NULL, 'c'},
        {"count", required_argument, NULL, 'N'},
        {"incidents", required_argument, NULL, 'I'},
        {"requests", required_argument, NULL, 'r'},
        {"seconds", required_argument, NULL, 's'},
        {"existing", no_argument, NULL, 'x'},
        {"rate", required_argument, NULL, 'R'},
        {"watch", required_argument, NULL, 'w'},
        {"watch-ms", required_argument, NULL, 'W'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *url = getenv("IM_NODE"), *key_path = getenv("IM_KEY"), *mode;
    size_t ops = 0, inflight = 64, conns = 4, count = 100000, incidents = 1000,
           requests = 20000, seconds = 0;
    struct load l;
    struct im_key key;
    struct phase_result r;
    struct im_err e = {0};
    char (*ids)[INCIDENT_ID_MAX + 1] = NULL;
    int opt, rv = 0, status = 1, existing = 0;
    size_t rate = 0, watch_ms = 2;
    const char *watch_list = NULL;
    struct watch wt;

    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 'n': url = optarg; break;
        case 'k': key_path = optarg; break;
        case 'o': rv = parse_size("--ops", optarg, 1, REQ_OPS_MAX, &ops); break;
        case 'i': rv = parse_size("--inflight", optarg, 1, LOAD_INFLIGHT_MAX, &inflight); break;
        case 'c': rv = parse_size("--conns", optarg, 1, LOAD_CONNS_MAX, &conns); break;
        case 'N': rv = parse_size("--count", optarg, 1, LOAD_COUNT_MAX, &count); break;
        case 'I': rv = parse_size("--incidents", optarg, 1, LOAD_INCIDENTS_MAX, &incidents); break;
        case 'r': rv = parse_size("--requests", optarg, 1, LOAD_REQUESTS_MAX, &requests); break;
        case 's': rv = parse_size("--seconds", optarg, 1, LOAD_SECONDS_MAX, &seconds); break;
        case 'x': existing = 1; break;
        case 'R': rv = parse_size("--rate", optarg, 1, LOAD_RATE_MAX, &rate); break;
        case 'w': watch_list = optarg; break;
        case 'W': rv = parse_size("--watch-ms", optarg, 1, 1000, &watch_ms); break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
        if (rv != 0)
            return 2;
    }
    if (optind + 1 != argc) {
        fputs(usage, stderr);
        return 2;
    }
    mode = argv[optind];
    if (strcmp(mode, "open") != 0 && strcmp(mode, "note") != 0) {
        fprintf(stderr, "imload: unknown mode '%.32s': use open or note\n", mode);
        return 2;
    }
    if (url == NULL || key_path == NULL) {
        fprintf(stderr, "imload: --node and --key (or IM_NODE and IM_KEY) are "
                        "required\n");
        return 2;
    }
    if (ops == 0)
        ops = strcmp(mode, "open") == 0 ? REQ_OPS_MAX : 1;
    if (existing && incidents > LIST_LIMIT_MAX) {
        fprintf(stderr, "imload: --existing takes at most %d incidents (one "
                        "list), not %zu\n", LIST_LIMIT_MAX, incidents);
        return 2;
    }
    if (conns > inflight) {
        fprintf(stderr, "imload: --conns %zu exceeds --inflight %zu\n", conns,
                inflight);
        return 2;
    }
    if (keys_init() != 0) {
        fprintf(stderr, "imload: libsodium failed to initialise\n");
        return 1;
    }
    if (key_load(&key, key_path, &e) != 0) {
        fprintf(stderr, "imload: %s\n", im_errmsg(&e));
        return 2;
    }
    memset(&l, 0, sizeof l);
    memset(&wt, 0, sizeof wt);
    pthread_mutex_init(&l.mu, NULL);
    pthread_cond_init(&l.cv, NULL);
    if ((rv = load_connect(&l, url, conns, inflight, &e)) != 0) {
        status = rv == IM_EUNREACH ? 3 : rv == IM_EINVAL ? 2 : 1;
        goto out;
    }

    if (strcmp(mode, "open") == 0) {
        if (run_opens(&l, &key, count, ops, seconds, NULL, &r, &e) != 0)
            goto out;
        print_result(mode, &r, ops, inflight, conns);
        status = 0;
        goto out;
    }

    /* note: the incidents first, REQ_OPS_MAX per request (untimed). */
    ids = calloc(incidents, sizeof *ids);
    if (ids == NULL) {
        im_errf(&e, IM_ENOMEM, "out of memory");
        goto out;
    }
    if (existing) {
        if (list_existing(url, &key, incidents, ids, &e) != 0)
            goto out;
    } else if (run_opens(&l, &key, incidents, REQ_OPS_MAX, 0, ids, &r, &e) != 0) {
        im_errwrap(&e, "opening the incidents to write to");
        goto out;
    }
    if (phase_alloc(&l, requests, ops, &e) != 0)
        goto out;
    l.rate = rate;
    {
        uint64_t now = clock_wall_ms();
        for (size_t i = 0; i < requests; i++)
            if (build_notes(&key, ids, incidents, i * ops, ops, now, &l.msgs[i],
                            &e) != 0) {
                phase_free(&l);
                goto out;
            }
    }
    wt.period_us = watch_ms * 1000;
    if (watch_list != NULL && watch_start(&wt, watch_list, url, &key, &e) != 0)
        goto out;
    phase_run(&l, seconds, &r);
    if (phase_ok(&l, &r, &e) != 0) {
        phase_free(&l);
        goto out;
    }
    print_result(mode, &r, ops, inflight, conns);
    if (watch_list != NULL && watch_finish(&wt, &l, &e) != 0) {
        phase_free(&l);
        goto out;
    }
    phase_free(&l);
    status = 0;
out:
    if (status != 0 && e.code != 0)
        fprintf(stderr, "imload: %s\n", im_errmsg(&e));
    watch_close(&wt);
    load_disconnect(&l);
    pthread_cond_destroy(&l.cv);
    pthread_mutex_destroy(&l.mu);
    free(ids);
    sodium_memzero(&key, sizeof key);
    if (fflush(stdout) != 0)
        return 1;
    return status;
}
