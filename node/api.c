/* api: see api.h. */
#include "api.h"

#include <nng/protocol/reqrep0/rep.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bounds.h"
#include "clock.h"
#include "incident.h"
#include "keys.h"
#include "request.h"
#include "log.h"
#include "tsan.h"

/* Services tracked separately in one stats reply; the rest are summed
 * under "(other)". Bounds the reply and the work of one stats request. */
#define STATS_SERVICES_MAX 1000
#define STATS_SLOTS 2048
_Static_assert(STATS_SLOTS > 2 * STATS_SERVICES_MAX, "load factor under 1/2");

enum ctx_state { CTX_RECV, CTX_WAIT, CTX_SEND };

struct api_ctx {
    struct api *api;
    nng_ctx ctx;
    nng_aio *aio;
    enum ctx_state state;
    Im__SignedRequest *sreq;
    Im__Request *req;
    const struct cfg_operator *op;
    struct commit_req creq;
    int submit_rv;          /* commit_submit's refusal, answered in CTX_WAIT */
    struct commit_op cops[REQ_OPS_MAX];
    /* One packed Im__Result per op of the request, in order. */
    uint8_t *results[REQ_OPS_MAX];
    size_t result_sizes[REQ_OPS_MAX];
};

/* ---- a growing byte buffer, for hand-assembled protobuf ---- */

struct buf {
    uint8_t *data;
    size_t size, cap;
    int failed;
};

static void
buf_reserve(struct buf *b, size_t more)
{
    if (b->failed || b->size + more <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->size + more)
        cap *= 2;
    uint8_t *d = realloc(b->data, cap);
    if (d == NULL) {
        b->failed = 1;
        return;
    }
    b->data = d;
    b->cap = cap;
}

static void
buf_put(struct buf *b, const void *p, size_t n)
{
    if (n == 0)
        return; /* an empty list has no buffer: memcpy(NULL, ...) is UB */
    buf_reserve(b, n);
    if (b->failed)
        return;
    memcpy(b->data + b->size, p, n);
    b->size += n;
}

static void
buf_varint(struct buf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v != 0);
    buf_put(b, tmp, n);
}

/* A length-delimited field: protobuf lets a message be assembled from the
 * packed bytes of its parts, which spares decoding and re-encoding. */
static void
buf_field_bytes(struct buf *b, unsigned field, const void *p, size_t n)
{
    buf_varint(b, (uint64_t)field << 3 | 2);
    buf_varint(b, n);
    buf_put(b, p, n);
}

/* ---- results ---- */

static void
set_result(struct api_ctx *x, size_t i, Im__Result *res)
{
    size_t size = im__result__get_packed_size(res);
    uint8_t *p = malloc(size ? size : 1);
    free(x->results[i]);
    x->results[i] = p;
    x->result_sizes[i] = p ? size : 0;
    if (p != NULL)
        im__result__pack(res, p);
}

static void
set_error(struct api_ctx *x, size_t i, int code, const char *msg)
{
    Im__Result res = IM__RESULT__INIT;
    res.code = code;
    res.error = (char *)msg;
    set_result(x, i, &res);
}

static void
op_get(struct api_ctx *x, size_t i, MDB_txn *txn, const Im__Get *g)
{
    struct store *s = x->api->store;
    struct incident *inc = malloc(sizeof *inc);
    Im__Result res = IM__RESULT__INIT;
    struct incident_pb pb;
    struct im_err e = {0};
    Im__Event **events = NULL;
    size_t n = 0;
    struct fold_outcome *outcomes = NULL;
    Im__TimelineEntry *entries = NULL, **entry_ptrs = NULL;
    char **texts = NULL;

    if (inc == NULL) {
        set_error(x, i, IM_ENOMEM, "out of memory");
        return;
    }
    if (store_incident_get(txn, s, g->id, inc, &e) != 0) {
        set_error(x, i, e.code, im_errmsg(&e));
        free(inc);
        return;
    }
    incident_pb_fill(&pb, inc);
    if (g->timeline) {
        struct incident *folded = malloc(sizeof *folded);
        if (folded == NULL ||
            store_incident_events(txn, s, g->id, &events, &n, &e) != 0) {
            set_error(x, i, folded ? e.code : IM_ENOMEM,
                      folded ? im_errmsg(&e) : "out of memory");
            free(folded);
            free(inc);
            return;
        }
        outcomes = calloc(n, sizeof *outcomes);
        entries = calloc(n, sizeof *entries);
        entry_ptrs = calloc(n, sizeof *entry_ptrs);
        texts = calloc(n, sizeof *texts);
        if (outcomes == NULL || entries == NULL || entry_ptrs == NULL ||
            texts == NULL) {
            set_error(x, i, IM_ENOMEM, "out of memory");
            goto out;
        }
        incident_fold(folded, (const Im__Event **)events, n, outcomes);
        free(folded);
        for (size_t j = 0; j < n; j++) {
            char kind[TIMELINE_KIND_MAX], text[TIMELINE_TEXT_MAX];
            const Im__Event *ev = outcomes[j].event;
            incident_event_describe(ev, kind, text, sizeof text);
            im__timeline_entry__init(&entries[j]);
            texts[j] = malloc(strlen(kind) + 1 + strlen(text) + 1);
            if (texts[j] == NULL) {
                set_error(x, i, IM_ENOMEM, "out of memory");
                goto out;
            }
            /* kind and text share one allocation: "kind\0text\0". */
            strcpy(texts[j], kind);
            strcpy(texts[j] + strlen(kind) + 1, text);
            entries[j].kind = texts[j];
            entries[j].text = texts[j] + strlen(kind) + 1;
            entries[j].at_ms = HLC_MS(ev->hlc);
            entries[j].site = ev->origin;
            entries[j].actor = ev->actor;
            entries[j].refused = outcomes[j].code != 0;
            entries[j].refused_reason = outcomes[j].code ? outcomes[j].reason : "";
            entries[j].seq = ev->seq;
            entries[j].hlc = ev->hlc;
            entry_ptrs[j] = &entries[j];
        }
        pb.msg.n_timeline = n;
        pb.msg.timeline = entry_ptrs;
    }
    res.incident = &pb.msg;
    set_result(x, i, &res);
out:
    if (texts != NULL)
        for (size_t j = 0; j < n; j++)
            free(texts[j]);
    free(texts);
    free(entry_ptrs);
    free(entries);
    free(outcomes);
    store_events_free(events, n);
    free(inc);
}

struct list_acc {
    struct buf items;   /* IncidentList.items, packed */
    uint32_t limit, count;
};

static int
list_visit(void *arg, const Im__Incident *inc)
{
    struct list_acc *a = arg;
    Im__Incident *m = (Im__Incident *)inc;
    char *desc = m->description;
    size_t size;

    /* Summaries: the description stays with `show`. The decoded message
     * is ours until the visitor returns, so borrow and restore. */
    m->description = (char *)"";
    size = im__incident__get_packed_size(m);
    buf_varint(&a->items, 1 << 3 | 2);
    buf_varint(&a->items, size);
    buf_reserve(&a->items, size);
    if (!a->items.failed) {
        im__incident__pack(m, a->items.data + a->items.size);
        a->items.size += size;
    }
    m->description = desc;
    return ++a->count >= a->limit;
}

static void
op_list(struct api_ctx *x, size_t i, MDB_txn *txn, const Im__List *l)
{
    struct store_list_query q = {
        .state = l->state,
        .priority = (int)l->priority,
        .service = l->service,
        .major_only = l->major,
        .all = l->all,
        .site = l->site,
    };
    struct list_acc acc = {.limit = l->limit ? l->limit : LIST_LIMIT_DEFAULT};
    struct buf list = {0}, res = {0};
    struct im_err e = {0};
    uint64_t matched = 0;

    if (l->state < 0 || l->state > IM__STATE__STATE_CANCELLED) {
        set_error(x, i, IM_EINVAL, "unknown state in list filter");
        return;
    }
    if (l->priority > 5) {
        set_error(x, i, IM_EINVAL, "priority filter must be 1..5 (P1..P5)");
        return;
    }
    if (acc.limit > LIST_LIMIT_MAX) {
        char msg[96];
        snprintf(msg, sizeof msg, "list limit %u exceeds %d", l->limit,
                 LIST_LIMIT_MAX);
        set_error(x, i, IM_ETOOBIG, msg);
        return;
    }
    if (store_list(txn, x->api->store, &q, list_visit, &acc, &matched, &e) != 0) {
        set_error(x, i, e.code, im_errmsg(&e));
        free(acc.items.data);
        return;
    }
    /* IncidentList { items = 1; matched = 2 } inside Result.list = 4. */
    buf_put(&list, acc.items.data, acc.items.size);
    buf_varint(&list, 2 << 3 | 0);
    buf_varint(&list, matched);
    buf_field_bytes(&res, 4, list.data, list.size);
    free(acc.items.data);
    free(list.data);
    if (acc.items.failed || list.failed || res.failed) {
        free(res.data);
        set_error(x, i, IM_ENOMEM, "out of memory");
        return;
    }
    free(x->results[i]);
    x->results[i] = res.data;
    x->result_sizes[i] = res.size;
}

struct svc_acc {
    char name[SERVICE_MAX + 1];
    uint64_t total, open, major, tta_sum, tta_n, ttr_sum, ttr_n;
};

struct stats_acc {
    uint64_t since_ms;
    uint64_t total, reopened;
    uint64_t by_state[IM__STATE__STATE_CANCELLED + 1];
    uint64_t by_priority[6];
    struct svc_acc overall, other;
    struct svc_acc *slots; /* STATS_SLOTS, open addressing by name */
    size_t services;
};

static void
svc_add(struct svc_acc *s, const Im__Incident *inc)
{
    s->total++;
    s->open += incident_state_is_open(inc->state) != 0;
    s->major += inc->major != 0;
    if (inc->acknowledged_at_ms >= inc->opened_at_ms && inc->acknowledged_at_ms) {
        s->tta_sum += inc->acknowledged_at_ms - inc->opened_at_ms;
        s->tta_n++;
    }
    if (inc->resolved_at_ms >= inc->opened_at_ms && inc->resolved_at_ms) {
        s->ttr_sum += inc->resolved_at_ms - inc->opened_at_ms;
        s->ttr_n++;
    }
}

static int
stats_visit(void *arg, const Im__Incident *inc)
{
    struct stats_acc *a = arg;
    uint64_t h = 1469598103934665603ULL;
    size_t slot;

    if (inc->opened_at_ms < a->since_ms)
        return 0;
    a->total++;
    a->reopened += inc->reopen_count > 0;
    if (inc->state >= 0 && inc->state <= IM__STATE__STATE_CANCELLED)
        a->by_state[inc->state]++;
    if (inc->priority >= 1 && inc->priority <= 5)
        a->by_priority[inc->priority]++;
    svc_add(&a->overall, inc);
    for (const char *p = inc->service; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ULL;
    for (slot = h % STATS_SLOTS;; slot = (slot + 1) % STATS_SLOTS) {
        struct svc_acc *s = &a->slots[slot];
        if (s->name[0] == '\0') {
            if (a->services == STATS_SERVICES_MAX) {
                svc_add(&a->other, inc);
                return 0;
            }
            snprintf(s->name, sizeof s->name, "%s", inc->service);
            a->services++;
        }
        if (strcmp(s->name, inc->service) == 0) {
            svc_add(s, inc);
            return 0;
        }
    }
}

static void
svc_out(Im__ServiceStats *o, struct svc_acc *s)
{
    im__service_stats__init(o);
    o->service = s->name;
    o->total = s->total;
    o->open = s->open;
    o->major = s->major;
    o->mtta_ms = s->tta_n ? s->tta_sum / s->tta_n : 0;
    o->mtta_count = s->tta_n;
    o->mttr_ms = s->ttr_n ? s->ttr_sum / s->ttr_n : 0;
    o->mttr_count = s->ttr_n;
}

static int
svc_cmp(const void *a, const void *b)
{
    const Im__ServiceStats *x = *(Im__ServiceStats *const *)a;
    const Im__ServiceStats *y = *(Im__ServiceStats *const *)b;
    return strcmp(x->service, y->service);
}

static void
op_stats(struct api_ctx *x, size_t i, MDB_txn *txn, const Im__Stats *st)
{
    static const char *const prio_names[6] = {"", "P1", "P2", "P3", "P4", "P5"};
    struct stats_acc *a = calloc(1, sizeof *a);
    Im__StatsReply rep = IM__STATS_REPLY__INIT;
    Im__Result res = IM__RESULT__INIT;
    Im__Count states[IM__STATE__STATE_CANCELLED], prios[5];
    Im__Count *state_ptrs[IM__STATE__STATE_CANCELLED], *prio_ptrs[5];
    Im__ServiceStats overall, *svcs = NULL, **svc_ptrs = NULL;
    struct im_err e = {0};
    size_t n = 0;

    if (a == NULL || (a->slots = calloc(STATS_SLOTS, sizeof *a->slots)) == NULL) {
        free(a);
        set_error(x, i, IM_ENOMEM, "out of memory");
        return;
    }
    a->since_ms = st->since_ms;
    snprintf(a->other.name, sizeof a->other.name, "(other)");
    if (store_scan(txn, x->api->store, stats_visit, a, &e) != 0) {
        set_error(x, i, e.code, im_errmsg(&e));
        goto out;
    }
    for (int s = 1; s <= IM__STATE__STATE_CANCELLED; s++) {
        im__count__init(&states[s - 1]);
        states[s - 1].key = (char *)incident_state_name(s);
        states[s - 1].count = a->by_state[s];
        state_ptrs[s - 1] = &states[s - 1];
    }
    for (int p = 1; p <= 5; p++) {
        im__count__init(&prios[p - 1]);
        prios[p - 1].key = (char *)prio_names[p];
        prios[p - 1].count = a->by_priority[p];
        prio_ptrs[p - 1] = &prios[p - 1];
    }
    svcs = calloc(a->services + 1, sizeof *svcs);
    svc_ptrs = calloc(a->services + 1, sizeof *svc_ptrs);
    if (svcs == NULL || svc_ptrs == NULL) {
        set_error(x, i, IM_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t k = 0; k < STATS_SLOTS; k++)
        if (a->slots[k].name[0] != '\0') {
            svc_out(&svcs[n], &a->slots[k]);
            svc_ptrs[n] = &svcs[n];
            n++;
        }
    qsort(svc_ptrs, n, sizeof *svc_ptrs, svc_cmp);
    if (a->other.total) {
        svc_out(&svcs[n], &a->other);
        svc_ptrs[n] = &svcs[n];
        n++;
    }
    snprintf(a->overall.name, sizeof a->overall.name, "(all)");
    svc_out(&overall, &a->overall);
    rep.since_ms = st->since_ms;
    rep.total = a->total;
    rep.reopened = a->reopened;
    rep.n_by_state = IM__STATE__STATE_CANCELLED;
    rep.by_state = state_ptrs;
    rep.n_by_priority = 5;
    rep.by_priority = prio_ptrs;
    rep.n_by_service = n;
    rep.by_service = svc_ptrs;
    rep.overall = &overall;
    res.stats = &rep;
    set_result(x, i, &res);
out:
    free(svcs);
    free(svc_ptrs);
    free(a->slots);
    free(a);
}

static void
op_ping(struct api_ctx *x, size_t i)
{
    Im__PingReply ping = IM__PING_REPLY__INIT;
    Im__Result res = IM__RESULT__INIT;
    ping.site = x->api->store->site;
    ping.node_version = IM_VERSION;
    ping.operator_ = (char *)x->op->name;
    ping.role = (char *)config_role_name(x->op->role);
    ping.now_ms = clock_wall_ms();
    res.ping = &ping;
    set_result(x, i, &res);
}

/* ---- request flow ---- */

static void
request_free(struct api_ctx *x)
{
    size_t n = x->req ? x->req->n_ops : 0;
    for (size_t i = 0; i < n && i < REQ_OPS_MAX; i++) {
        free(x->results[i]);
        x->results[i] = NULL;
        x->result_sizes[i] = 0;
    }
    if (x->req != NULL)
        im__request__free_unpacked(x->req, NULL);
    if (x->sreq != NULL)
        im__signed_request__free_unpacked(x->sreq, NULL);
    x->req = NULL;
    x->sreq = NULL;
    x->op = NULL;
}

static void
send_msg(struct api_ctx *x, struct buf *b)
{
    nng_msg *msg;

    if (b->failed || nng_msg_alloc(&msg, b->size) != 0) {
        /* Cannot answer at all: drop the request; the client times out. */
        free(b->data);
        request_free(x);
        x->state = CTX_RECV;
        TSAN_RELEASE(x);
        nng_ctx_recv(x->ctx, x->aio);
        return;
    }
    memcpy(nng_msg_body(msg), b->data, b->size);
    free(b->data);
    request_free(x);
    x->state = CTX_SEND;
    nng_aio_set_msg(x->aio, msg);
    TSAN_RELEASE(x);
    nng_ctx_send(x->ctx, x->aio);
}

/* A request-level refusal: nothing of the request was applied. */
static void
refuse(struct api_ctx *x, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
refuse(struct api_ctx *x, int code, const char *fmt, ...)
{
    Im__Response resp = IM__RESPONSE__INIT;
    char msg[IM_ERRMSG_MAX];
    struct buf b = {0};
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    atomic_fetch_add(&x->api->refused, 1);
    resp.code = code;
    resp.error = msg;
    buf_reserve(&b, im__response__get_packed_size(&resp));
    if (!b.failed)
        b.size = im__response__pack(&resp, b.data);
    send_msg(x, &b);
}

static void
respond(struct api_ctx *x)
{
    struct buf b = {0};
    for (size_t i = 0; i < x->req->n_ops; i++) {
        if (x->results[i] == NULL) {
            free(b.data);
            refuse(x, IM_ENOMEM, "out of memory while answering");
            return;
        }
        buf_field_bytes(&b, 3, x->results[i], x->result_sizes[i]);
    }
    send_msg(x, &b);
}

/* Replication status: every link, with what each side lacks of the other
 * as of the peer's last reply. */
static void
op_peers(struct api_ctx *x, size_t i, MDB_txn *txn)
{
    Im__PeersReply pr = IM__PEERS_REPLY__INIT;
    Im__Result res = IM__RESULT__INIT;
    struct peer_status *st = NULL;
    struct store_vv *ours = NULL;
    Im__PeerStatus *ps = NULL, **psp = NULL;
    Im__OriginLag *lags = NULL, **lagp = NULL;
    Im__Count *cnt = NULL, **cntp = NULL;
    Im__Head heads[SITES_MAX], *headp[SITES_MAX];
    uint64_t node_rej[PEER_REJECT_COUNT] = {0};
    size_t n = 0, nl = 0, nc = 0;

    st = calloc(SITES_MAX, sizeof *st);
    ours = calloc(1, sizeof *ours);
    ps = calloc(SITES_MAX, sizeof *ps);
    psp = calloc(SITES_MAX, sizeof *psp);
    lags = calloc(SITES_MAX * SITES_MAX, sizeof *lags);
    lagp = calloc(SITES_MAX * SITES_MAX, sizeof *lagp);
    cnt = calloc(SITES_MAX * (REPL_R_COUNT + PEER_REJECT_COUNT) + PEER_REJECT_COUNT,
                 sizeof *cnt);
    cntp = calloc(SITES_MAX * (REPL_R_COUNT + PEER_REJECT_COUNT) + PEER_REJECT_COUNT,
                  sizeof *cntp);
    if (!st || !ours || !ps || !psp || !lags || !lagp || !cnt || !cntp) {
        set_error(x, i, IM_ENOMEM, "out of memory");
        goto out;
    }
    if (store_vector(txn, x->api->store, ours) != 0) {
        set_error(x, i, IM_ESTORE, "cannot read the version vector");
        goto out;
    }
    if (x->api->peers != NULL)
        peers_status(x->api->peers, st, &n, node_rej);
    pr.site = x->api->store->site;
    repl_vv_to_pb(ours, heads, headp, &pr.n_have);
    pr.have = headp;
    for (size_t k = 0; k < n; k++) {
        Im__PeerStatus *p = &ps[k];
        size_t lag0 = nl, c0 = nc;
        im__peer_status__init(p);
        p->site = st[k].site;
        p->address = st[k].address;
        p->connected = st[k].connected;
        p->last_contact_ms = st[k].last_contact_ms;
        p->lag_ms = st[k].lag_ms;
        p->lag_p99_ms = st[k].lag_p99_ms;
        p->bytes_in = st[k].bytes_in;
        p->bytes_out = st[k].bytes_out;
        p->events_in = st[k].events_in;
        p->events_out = st[k].events_out;
        p->sessions = st[k].sessions;
        p->last_error = st[k].error;
        if (st[k].theirs_known) {
            /* Every origin either side holds. */
            for (size_t o = 0; o < ours->count; o++) {
                uint64_t a = ours->e[o].head.seq,
                         b = store_vv_seq(&st[k].theirs, ours->e[o].origin);
                im__origin_lag__init(&lags[nl]);
                lags[nl].origin = ours->e[o].origin;
                lags[nl].behind = a > b ? a - b : 0;
                lags[nl].ahead = b > a ? b - a : 0;
                lagp[nl] = &lags[nl];
                nl++;
            }
            for (size_t o = 0; o < st[k].theirs.count; o++) {
                const struct store_vv_entry *t = &st[k].theirs.e[o];
                if (store_vv_seq(ours, t->origin) != 0 || t->head.seq == 0)
                    continue;
                im__origin_lag__init(&lags[nl]);
                lags[nl].origin = (char *)t->origin;
                lags[nl].ahead = t->head.seq;
                lagp[nl] = &lags[nl];
                nl++;
            }
        }
        p->origins = lagp + lag0;
        p->n_origins = nl - lag0;
        for (int r = 0; r < REPL_R_COUNT; r++)
            if (st[k].repl_rejected[r]) {
                im__count__init(&cnt[nc]);
                cnt[nc].key = (char *)repl_reason_name(r);
                cnt[nc].count = st[k].repl_rejected[r];
                cntp[nc] = &cnt[nc];
                nc++;
            }
        for (int r = 0; r < CHAN_REJECT_COUNT; r++)
            if (st[k].chan_rejected[r]) {
                im__count__init(&cnt[nc]);
                cnt[nc].key = (char *)chan_reject_name(r);
                cnt[nc].count = st[k].chan_rejected[r];
                cntp[nc] = &cnt[nc];
                nc++;
            }
        p->rejected = cntp + c0;
        p->n_rejected = nc - c0;
        psp[k] = p;
    }
    pr.peers = psp;
    pr.n_peers = n;
    {
        size_t c0 = nc;
        for (int r = 0; r < PEER_REJECT_COUNT; r++)
            if (node_rej[r]) {
                im__count__init(&cnt[nc]);
                cnt[nc].key = (char *)peer_reject_name(r);
                cnt[nc].count = node_rej[r];
                cntp[nc] = &cnt[nc];
                nc++;
            }
        pr.rejected = cntp + c0;
        pr.n_rejected = nc - c0;
    }
    res.peers = &pr;
    set_result(x, i, &res);
out:
    free(st);
    free(ours);
    free(ps);
    free(psp);
    free(lags);
    free(lagp);
    free(cnt);
    free(cntp);
}

/* Answers the read ops (and write ops refused before the committer). */
static void
run_reads(struct api_ctx *x)
{
    MDB_txn *txn = NULL;
    struct im_err e = {0};
    int reads = 0;

    for (size_t i = 0; i < x->req->n_ops; i++)
        reads += x->req->ops[i]->kind_case != IM__OP__KIND_WRITE &&
                 x->results[i] == NULL;
    if (reads && store_read_begin(x->api->store, &txn, &e) != 0) {
        for (size_t i = 0; i < x->req->n_ops; i++)
            if (x->results[i] == NULL)
                set_error(x, i, e.code, im_errmsg(&e));
        return;
    }
    for (size_t i = 0; i < x->req->n_ops; i++) {
        const Im__Op *op = x->req->ops[i];
        if (x->results[i] != NULL)
            continue;
        switch (op->kind_case) {
        case IM__OP__KIND_GET:
            op_get(x, i, txn, op->get);
            break;
        case IM__OP__KIND_LIST:
            op_list(x, i, txn, op->list);
            break;
        case IM__OP__KIND_STATS:
            op_stats(x, i, txn, op->stats);
            break;
        case IM__OP__KIND_PING:
            op_ping(x, i);
            break;
        case IM__OP__KIND_PEERS:
            op_peers(x, i, txn);
            break;
        default:
            /* Op kinds from 20 on are the coordinator's (proto/im.proto). */
            set_error(x, i, IM_EINVAL,
                      op->kind_case >= IM__OP__KIND_SITES
                          ? "a coordinator operation: send it to a "
                            "coordinator (imctl --coord), not to a node"
                          : "empty operation");
            break;
        }
    }
    if (txn != NULL)
        store_read_end(txn);
}

/* While a request waits for its commit, its aio is "deferred" (NNG's
 * provider API) and nng_aio_finish hands it back to NNG's workers: the
 * writer thread must not do the reads or the sending. nng_sleep_aio(0) is
 * not used for this hop: NNG 1.5's expire thread busy-waits on an aio that
 * expires within the current millisecond, which cost a core's fifth per
 * expire thread and up to 1 ms per reply under load (tests/bench). */
static void
commit_done(struct commit_req *r)
{
    struct api_ctx *x = r->arg;
    TSAN_RELEASE(x);
    nng_aio_finish(x->aio, 0);
}

/* A write handed to the committer cannot be withdrawn: it completes (and
 * becomes durable) and finishes the aio then, so cancelling does nothing.
 * api.h's shutdown order (commit_stop before api_free) means nothing is
 * still waiting when the aio is stopped. */
static void
commit_wait_cancel(nng_aio *aio, void *arg, int rv)
{
    (void)aio;
    (void)arg;
    (void)rv;
}

static void
handle_request(struct api_ctx *x, nng_msg *msg)
{
    struct api *a = x->api;
    struct im_err e = {0};
    uint64_t now = clock_wall_ms();
    size_t writes = 0;
    int rv;

    atomic_fetch_add(&a->requests, 1);
    rv = request_open(a->cfg, "node", nng_msg_body(msg), nng_msg_len(msg), now,
                      &x->sreq, &x->req, &x->op, &e);
    nng_msg_free(msg);
    if (rv != 0) {
        refuse(x, rv, "%s", im_errmsg(&e));
        return;
    }
    for (size_t i = 0; i < x->req->n_ops; i++) {
        Im__Op *op = x->req->ops[i];
        if (op->kind_case != IM__OP__KIND_WRITE)
            continue;
        if (x->op->role == OP_ROLE_VIEWER) {
            char m[160];
            snprintf(m, sizeof m, "operator %s has role viewer: it may only read",
                     x->op->name);
            set_error(x, i, IM_EDENIED, m);
            continue;
        }
        if (op->write->body == NULL) {
            set_error(x, i, IM_EINVAL, "write without a body");
            continue;
        }
        x->cops[writes].incident = op->write->incident;
        x->cops[writes].body = op->write->body;
        writes++;
    }
    if (writes == 0) {
        run_reads(x);
        respond(x);
        return;
    }
    x->creq.actor = x->op->name;
    x->creq.ops = x->cops;
    x->creq.ops_count = writes;
    x->creq.done = commit_done;
    x->creq.arg = x;
    /* Defer before submitting: the commit may finish the aio at once. */
    if (!nng_aio_begin(x->aio)) {
        request_free(x);
        return; /* the aio was stopped: the API is shutting down */
    }
    nng_aio_defer(x->aio, commit_wait_cancel, x);
    x->state = CTX_WAIT;
    /* On success x is the committer's: its callback may already be running
     * on another thread, so x is not touched again here. */
    rv = commit_submit(a->commit, &x->creq);
    if (rv != 0) {
        x->submit_rv = rv;
        TSAN_RELEASE(x);
        nng_aio_finish(x->aio, 0); /* refused in ctx_step, on a worker */
    }
}

/* The committer would not take the request: nothing of it was applied. */
static void
refuse_unsubmitted(struct api_ctx *x)
{
    int rv = x->submit_rv;

    x->submit_rv = 0;
    for (size_t i = 0; i < x->req->n_ops; i++) {
        free(x->results[i]);
        x->results[i] = NULL;
    }
    refuse(x, rv, rv == IM_EBUSY ? "node busy: its write queue is full; "
                                   "retry shortly"
                                 : "node is shutting down");
}

static void
collect_writes(struct api_ctx *x)
{
    size_t w = 0;
    for (size_t i = 0; i < x->req->n_ops; i++) {
        if (x->req->ops[i]->kind_case != IM__OP__KIND_WRITE || x->results[i])
            continue;
        x->results[i] = x->cops[w].result;
        x->result_sizes[i] = x->cops[w].result_size;
        x->cops[w].result = NULL;
        w++;
    }
}

static void
ctx_step(struct api_ctx *x)
{
    int rv = nng_aio_result(x->aio);

    switch (x->state) {
    case CTX_RECV:
        if (rv != 0) {
            if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
                return;
            TSAN_RELEASE(x);
        nng_ctx_recv(x->ctx, x->aio);
            return;
        }
        handle_request(x, nng_aio_get_msg(x->aio));
        return;
    case CTX_WAIT:
        if (x->submit_rv != 0) {
            refuse_unsubmitted(x);
            return;
        }
        collect_writes(x);
        run_reads(x);
        respond(x);
        return;
    case CTX_SEND:
        if (rv != 0) {
            nng_msg_free(nng_aio_get_msg(x->aio));
            if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
                return;
        }
        x->state = CTX_RECV;
        TSAN_RELEASE(x);
        nng_ctx_recv(x->ctx, x->aio);
        return;
    }
}

static void
ctx_cb(void *arg)
{
    struct api_ctx *x = arg;
    TSAN_ACQUIRE(x);
    ctx_step(x);
    /* For api_free, which reads x after nng_aio_stop returns. */
    TSAN_RELEASE(x);
}

int
api_start(struct api *a, const struct config *cfg, struct store *s,
          struct committer *c, struct peers *peers, struct im_err *e)
{
    int rv;

    memset(a, 0, sizeof *a);
    a->cfg = cfg;
    a->peers = peers;
    a->store = s;
    a->commit = c;
    if ((rv = nng_rep0_open(&a->sock)) != 0)
        return im_errf(e, IM_ENOMEM, "api: open socket: %s", nng_strerror(rv));
    a->sock_open = 1;
    nng_socket_set_size(a->sock, NNG_OPT_RECVMAXSZ, REQ_SIZE_MAX);
    a->ctxs = calloc(API_CONTEXTS, sizeof *a->ctxs);
    if (a->ctxs == NULL) {
        rv = im_errf(e, IM_ENOMEM, "api: out of memory");
        goto fail;
    }
    for (int i = 0; i < API_CONTEXTS; i++) {
        struct api_ctx *x = &a->ctxs[i];
        x->api = a;
        if ((rv = nng_aio_alloc(&x->aio, ctx_cb, x)) != 0 ||
            (rv = nng_ctx_open(&x->ctx, a->sock)) != 0) {
            rv = im_errf(e, IM_ENOMEM, "api: context: %s", nng_strerror(rv));
            goto fail;
        }
        a->ctxs_count++;
    }
    if ((rv = nng_listen(a->sock, cfg->node.listen, NULL, 0)) != 0) {
        rv = im_errf(e, rv == NNG_EADDRINUSE ? IM_EEXIST : IM_EINVAL,
                     "api: listen on %s: %s", cfg->node.listen, nng_strerror(rv));
        goto fail;
    }
    for (int i = 0; i < a->ctxs_count; i++) {
        a->ctxs[i].state = CTX_RECV;
        TSAN_RELEASE(&a->ctxs[i]);
        nng_ctx_recv(a->ctxs[i].ctx, a->ctxs[i].aio);
    }
    return 0;
fail:
    api_close(a);
    api_free(a);
    return rv;
}

void
api_close(struct api *a)
{
    if (a->sock_open)
        nng_close(a->sock);
    a->sock_open = 0;
}

void
api_free(struct api *a)
{
    for (int i = 0; i < a->ctxs_count; i++) {
        nng_aio_stop(a->ctxs[i].aio);
        TSAN_ACQUIRE(&a->ctxs[i]);
        nng_aio_free(a->ctxs[i].aio);
        request_free(&a->ctxs[i]);
    }
    free(a->ctxs);
    a->ctxs = NULL;
    a->ctxs_count = 0;
}
