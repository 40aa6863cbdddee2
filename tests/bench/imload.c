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
 * and the exit status is 1 (2 for bad usage, 3 if the node is unreachable). */
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
    "  --seconds S       stop sending after S seconds (default: no limit)\n";

struct load;

struct lctx {
    struct load *l;
    nng_ctx ctx;
    nng_aio *aio;
    int ctx_open;
    int sending;
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

/* Sends the next request, or finishes this context. */
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
    x->sending = 1;
    x->t0_us = mono_us();
    nng_aio_set_msg(x->aio, l->msgs[i]);
    l->msgs[i] = NULL;
    TSAN_RELEASE(x);
    nng_ctx_send(x->ctx, x->aio);
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
    if (x->sending) {
        if (rv != 0) {
            /* A failed send leaves the message with us. */
            nng_msg_free(nng_aio_get_msg(x->aio));
            atomic_fetch_add(&l->reqs_failed, 1);
            note_error(l, "request %zu: send: %s", x->idx, nng_strerror(rv));
            ctx_finish(x);
            return;
        }
        x->sending = 0;
        TSAN_RELEASE(x);
        nng_ctx_recv(x->ctx, x->aio);
        return;
    }
    if (rv != 0) {
        atomic_fetch_add(&l->reqs_failed, 1);
        note_error(l, "request %zu: no reply: %s", x->idx, nng_strerror(rv));
        ctx_finish(x);
        return;
    }
    nng_msg *msg = nng_aio_get_msg(x->aio);
    l->lat_us[x->idx] = (uint32_t)(mono_us() - x->t0_us);
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
    if (l->msgs == NULL || l->lat_us == NULL || l->answered == NULL) {
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
    {
        uint64_t now = clock_wall_ms();
        for (size_t i = 0; i < requests; i++)
            if (build_notes(&key, ids, incidents, i * ops, ops, now, &l.msgs[i],
                            &e) != 0) {
                phase_free(&l);
                goto out;
            }
    }
    phase_run(&l, seconds, &r);
    phase_free(&l);
    if (phase_ok(&l, &r, &e) != 0)
        goto out;
    print_result(mode, &r, ops, inflight, conns);
    status = 0;
out:
    if (status != 0 && e.code != 0)
        fprintf(stderr, "imload: %s\n", im_errmsg(&e));
    load_disconnect(&l);
    pthread_cond_destroy(&l.cv);
    pthread_mutex_destroy(&l.mu);
    free(ids);
    sodium_memzero(&key, sizeof key);
    if (fflush(stdout) != 0)
        return 1;
    return status;
}
