/* coordlink: see coordlink.h. */
#include "coordlink.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"

/* The coordinator we dial must prove its pinned key; any pinned replica
 * key is acceptable to the channel's pinned check. */
static int
coord_pinned(void *arg, const uint8_t pk[KEY_PUB_BYTES])
{
    return config_coordinator_by_key(arg, pk) ? 0 : IM_EUNKNOWNKEY;
}

struct summary_acc {
    Im__IncidentSummary *items;
    size_t count;
    uint32_t open, owned;
    const char *site;
};

static int
on_incident(void *arg, const Im__Incident *inc)
{
    struct summary_acc *a = arg;
    Im__IncidentSummary *s;
    int owned = inc->owner != NULL && strcmp(inc->owner->site, a->site) == 0;

    a->open++;
    a->owned += owned;
    if (a->count == COORD_HEARTBEAT_INCIDENTS_MAX)
        return 0;
    s = &a->items[a->count++];
    im__incident_summary__init(s);
    s->id = strdup(inc->id);
    s->service = strdup(inc->service);
    s->owner_site = strdup(inc->owner ? inc->owner->site : "");
    s->priority = inc->priority;
    s->state = inc->state;
    s->major = inc->major;
    s->owner_token = inc->owner ? inc->owner->token : 0;
    if (s->id == NULL || s->service == NULL || s->owner_site == NULL)
        return IM_ENOMEM;
    return 0;
}

static void
summaries_free(struct summary_acc *a)
{
    for (size_t i = 0; i < a->count; i++) {
        free(a->items[i].id);
        free(a->items[i].service);
        free(a->items[i].owner_site);
    }
    free(a->items);
}

/* The encoded heartbeat (CoordRequest) of this site now. */
static int
heartbeat_build(struct coordlink *l, uint8_t **out, size_t *size,
                struct im_err *e)
{
    struct coordlinks *c = l->all;
    struct summary_acc acc = {.site = c->cfg->node.site};
    struct store_list_query q = {.site = c->cfg->node.site};
    Im__CoordRequest req = IM__COORD_REQUEST__INIT;
    Im__Heartbeat hb = IM__HEARTBEAT__INIT;
    Im__IncidentSummary **ptrs = NULL;
    MDB_txn *txn;
    uint64_t matched = 0;
    int rv;

    acc.items = calloc(COORD_HEARTBEAT_INCIDENTS_MAX, sizeof *acc.items);
    if (acc.items == NULL)
        return im_errf(e, IM_ENOMEM, "out of memory");
    if ((rv = store_read_begin(c->store, &txn, e)) != 0)
        goto out;
    rv = store_list(txn, c->store, &q, on_incident, &acc, &matched, e);
    store_read_end(txn);
    if (rv != 0)
        goto out;
    if ((ptrs = calloc(acc.count ? acc.count : 1, sizeof *ptrs)) == NULL) {
        rv = im_errf(e, IM_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < acc.count; i++)
        ptrs[i] = &acc.items[i];
    hb.site = (char *)c->cfg->node.site;
    hb.now_ms = clock_wall_ms();
    hb.seq = ++l->seq;
    hb.open = ptrs;
    hb.n_open = acc.count;
    hb.open_count = acc.open;
    hb.owned_count = acc.owned;
    req.kind_case = IM__COORD_REQUEST__KIND_HEARTBEAT;
    req.heartbeat = &hb;
    *size = im__coord_request__get_packed_size(&req);
    if ((*out = malloc(*size ? *size : 1)) == NULL) {
        rv = im_errf(e, IM_ENOMEM, "out of memory");
        goto out;
    }
    im__coord_request__pack(&req, *out);
out:
    free(ptrs);
    summaries_free(&acc);
    return rv;
}

/* One heartbeat and its reply. */
static int
heartbeat(struct coordlink *l, struct im_err *e)
{
    struct coordlinks *c = l->all;
    uint8_t *req = NULL, *plain;
    size_t req_size = 0, plain_size;
    nng_msg *rep = NULL;
    Im__CoordReply *r;
    uint64_t sent;
    int rv;

    if ((rv = heartbeat_build(l, &req, &req_size, e)) != 0)
        return rv;
    sent = clock_mono_ms();
    rv = link_dial_call(&l->dial, req, req_size, &rep, &plain, &plain_size, e);
    free(req);
    if (rv != 0)
        return rv;
    r = im__coord_reply__unpack(NULL, plain_size, plain);
    nng_msg_free(rep);
    if (r == NULL)
        return im_errf(e, IM_EPROTO, "coordinator %s: malformed reply",
                       l->coord->id);
    if (r->code != 0) {
        rv = im_errf(e, r->code, "coordinator %s: %s", l->coord->id, r->error);
        im__coord_reply__free_unpacked(r, NULL);
        return rv;
    }
    pthread_mutex_lock(&c->mu);
    l->connected = 1;
    l->last_ok_mono_ms = clock_mono_ms();
    l->error[0] = '\0';
    if (r->heartbeat != NULL) {
        Im__HeartbeatReply *h = r->heartbeat;
        if (h->leader != l->leader)
            log_info("coordinator %s: %s", l->coord->id,
                     h->leader ? "leads" : "is a standby");
        l->leader = h->leader;
        if (h->lease_ms >= COORD_LEASE_MS_MIN &&
            h->lease_ms <= COORD_LEASE_MS_MAX)
            c->lease_ms = h->lease_ms;
        if (h->leader && h->lease_granted &&
            sent + c->lease_ms > c->lease_until_mono_ms) {
            c->lease_until_mono_ms = sent + c->lease_ms;
            c->term = h->term;
        }
    }
    pthread_mutex_unlock(&c->mu);
    im__coord_reply__free_unpacked(r, NULL);
    return 0;
}

static void
link_failed(struct coordlink *l, const struct im_err *e)
{
    pthread_mutex_lock(&l->all->mu);
    if (l->connected)
        log_warn("coordinator %s: %s", l->coord->id, im_errmsg(e));
    l->connected = 0;
    l->leader = 0;
    snprintf(l->error, sizeof l->error, "%s", im_errmsg(e));
    pthread_mutex_unlock(&l->all->mu);
}

static void *
link_main(void *arg)
{
    struct coordlink *l = arg;
    struct coordlinks *c = l->all;

    for (;;) {
        struct im_err e = {0};
        struct timespec ts;
        uint64_t wait_ms;
        int rv = 0;

        pthread_mutex_lock(&c->mu);
        if (c->stopping) {
            pthread_mutex_unlock(&c->mu);
            break;
        }
        wait_ms = c->lease_ms / 3;
        pthread_mutex_unlock(&c->mu);

        if (atomic_load(&l->dial.pipes) > 0) {
            if (!l->dial.has_session)
                rv = link_dial_handshake(&l->dial, c->key, c->cluster_id,
                                         l->coord->pk, coord_pinned,
                                         (void *)c->cfg, &e);
            if (rv == 0)
                rv = heartbeat(l, &e);
            if (rv != 0) {
                link_failed(l, &e);
                link_dial_drop(&l->dial);
                if (e.code == IM_ECLOSED)
                    break;
            }
        }
        pthread_mutex_lock(&c->mu);
        if (!c->stopping) {
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += (time_t)(wait_ms / 1000);
            ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&c->cv, &c->mu, &ts);
        }
        pthread_mutex_unlock(&c->mu);
    }
    return NULL;
}

int
coordlinks_start(struct coordlinks *c, const struct config *cfg,
                 struct store *store, const struct im_key *key,
                 struct im_err *e)
{
    int rv;

    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->cfg = cfg;
    c->store = store;
    c->key = key;
    c->lease_ms = COORD_LEASE_MS_DEFAULT;
    config_cluster_id(cfg, c->cluster_id);
    for (size_t i = 0; i < cfg->coordinators_count; i++) {
        struct coordlink *l = &c->links[c->links_count++];
        l->all = c;
        l->coord = &cfg->coordinators[i];
        link_dial_init(&l->dial, l->coord->id, NULL, NULL);
        if ((rv = link_dial_open(&l->dial, l->coord->api, COORDLINK_RECV_MAX,
                                 COORDLINK_TIMEOUT_MS,
                                 COORDLINK_RECONNECT_MS_MIN,
                                 COORDLINK_RECONNECT_MS_MAX, e)) != 0) {
            im_errwrap(e, "coordinator %s", l->coord->id);
            goto fail;
        }
        if (pthread_create(&l->thread, NULL, link_main, l) != 0) {
            rv = im_errf(e, IM_ENOMEM, "start a coordinator link thread");
            goto fail;
        }
        l->thread_started = 1;
    }
    if (c->links_count > 0)
        log_info("heartbeating %zu coordinator replica(s)", c->links_count);
    return 0;
fail:
    coordlinks_stop(c);
    return rv;
}

void
coordlinks_stop(struct coordlinks *c)
{
    pthread_mutex_lock(&c->mu);
    c->stopping = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    for (size_t i = 0; i < c->links_count; i++)
        link_dial_close(&c->links[i].dial);
    for (size_t i = 0; i < c->links_count; i++) {
        if (c->links[i].thread_started)
            pthread_join(c->links[i].thread, NULL);
        link_dial_fini(&c->links[i].dial);
    }
    c->links_count = 0;
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
}

int
coordlinks_lease_held(struct coordlinks *c)
{
    int held;
    pthread_mutex_lock(&c->mu);
    held = c->lease_until_mono_ms > clock_mono_ms();
    pthread_mutex_unlock(&c->mu);
    return held;
}
