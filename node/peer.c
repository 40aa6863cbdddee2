/* peer: see peer.h. */
#include "peer.h"

#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"

/* ---- shared ---- */

const char *
peer_reject_name(int reason)
{
    return link_reject_name(reason);
}

static const uint8_t *
site_key(void *arg, const char *origin)
{
    const struct cfg_site *s = config_site(arg, origin);
    return s ? s->pk : NULL;
}

static int
link_of_pk(const struct peers *p, const uint8_t pk[KEY_PUB_BYTES])
{
    for (size_t i = 0; i < p->links_count; i++)
        if (sodium_memcmp(p->links[i].site->pk, pk, KEY_PUB_BYTES) == 0)
            return (int)i;
    return -1;
}

/* A peer may be any configured site but ourselves. */
static int
pinned(void *arg, const uint8_t pk[KEY_PUB_BYTES])
{
    return link_of_pk(arg, pk) >= 0 ? 0 : IM_EUNKNOWNKEY;
}

/* Stores verified ranges through the committer and waits for the commit:
 * the replicated events share the group commit with local writes. */
struct apply_req {
    struct commit_req r;
    struct repl_verified *v;
    size_t n;
    int *codes;
    uint64_t applied;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
};

static int
apply_write(struct commit_req *r, struct store_txn *t, struct hlc *clk,
            uint64_t now_ms, struct im_err *e)
{
    struct apply_req *a = r->arg;
    return repl_ranges_apply(t, a->v, a->n, clk, now_ms, a->codes, &a->applied,
                             e);
}

static void
apply_done(struct commit_req *r)
{
    struct apply_req *a = r->arg;
    pthread_mutex_lock(&a->mu);
    a->done = 1;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

static int
apply_via_committer(void *arg, struct repl_verified *v, size_t n, int *codes,
                    uint64_t *applied, struct im_err *e)
{
    struct peers *p = arg;
    struct apply_req a;
    size_t weight = 0;
    int rv;

    memset(&a, 0, sizeof a);
    for (size_t i = 0; i < n; i++)
        weight += v[i].count;
    a.v = v;
    a.n = n;
    a.codes = codes;
    a.r.write = apply_write;
    a.r.weight = weight < 1 ? 1
                 : weight > COMMIT_BATCH_OPS_MAX ? COMMIT_BATCH_OPS_MAX
                                                 : weight;
    a.r.done = apply_done;
    a.r.arg = &a;
    a.r.actor = "replication";
    pthread_mutex_init(&a.mu, NULL);
    pthread_cond_init(&a.cv, NULL);
    if ((rv = commit_submit(p->commit, &a.r)) != 0) {
        rv = im_errf(e, rv, "store busy: %s", im_strerror(rv));
        goto out;
    }
    pthread_mutex_lock(&a.mu);
    while (!a.done)
        pthread_cond_wait(&a.cv, &a.mu);
    pthread_mutex_unlock(&a.mu);
    if ((rv = a.r.write_code) != 0)
        im_errf(e, rv, "%s", a.r.write_error);
    *applied = a.applied;
out:
    pthread_cond_destroy(&a.cv);
    pthread_mutex_destroy(&a.mu);
    return rv;
}

/* ---- the listening side ---- */

static int
peer_of(void *arg, const uint8_t pk[KEY_PUB_BYTES])
{
    return link_of_pk(arg, pk);
}

static const char *
peer_name(void *arg, int link)
{
    struct peers *p = arg;
    return p->links[link].site->code;
}

/* One replication request of the peer at link (lib/link.h serves the
 * session and the framing). */
static int
serve_repl(void *arg, int link, const uint8_t *plain, size_t plain_size,
           uint8_t **reply, size_t *reply_size, struct im_err *e)
{
    struct peers *p = arg;
    struct peer_link *l = &p->links[link];
    struct repl_counters c = {0};
    int rv;

    rv = repl_serve(&p->env, l->site->code, plain, plain_size, clock_wall_ms(),
                    &c, reply, reply_size, e);
    pthread_mutex_lock(&l->mu);
    l->srv_counters.events_in += c.events_in;
    for (int r = 0; r < REPL_R_COUNT; r++)
        l->srv_counters.ranges_rejected[r] += c.ranges_rejected[r];
    pthread_mutex_unlock(&l->mu);
    link_dial_count(&l->dial, plain_size + LINK_DATA_OVERHEAD,
                    rv == 0 ? *reply_size + LINK_DATA_OVERHEAD : 0);
    if (rv != 0)
        log_warn("peer %s: %s", l->site->code, im_errmsg(e));
    return rv;
}

/* ---- the dialling side ---- */

static void
link_error(struct peer_link *l, const struct im_err *e)
{
    pthread_mutex_lock(&l->mu);
    l->connected = 0;
    snprintf(l->error, sizeof l->error, "%s", im_errmsg(e));
    pthread_mutex_unlock(&l->mu);
}

static void
drop_session(struct peer_link *l)
{
    if (!l->dial.has_session)
        return;
    pthread_mutex_lock(&l->mu);
    l->connected = 0;
    pthread_mutex_unlock(&l->mu);
    link_dial_drop(&l->dial);
}

static int
handshake(struct peer_link *l, struct im_err *e)
{
    struct peers *p = l->p;
    int rv = link_dial_handshake(&l->dial, p->key, p->cluster_id, l->site->pk,
                                 pinned, p, e);
    if (rv != 0)
        return rv;
    pthread_mutex_lock(&l->mu);
    l->sessions++;
    repl_link_reset(&l->link);
    pthread_mutex_unlock(&l->mu);
    log_info("peer %s: session established", l->site->code);
    return 0;
}

/* Sends one replication request and handles its reply. 0 with *idle set if
 * there was nothing to send. */
static int
link_step(struct peer_link *l, int *idle, struct im_err *e)
{
    struct peers *p = l->p;
    uint8_t *req = NULL, *plain;
    size_t req_size = 0, plain_size;
    nng_msg *rep = NULL;
    uint64_t now = clock_wall_ms();
    int rv;

    *idle = 0;
    pthread_mutex_lock(&l->mu);
    rv = repl_link_request(&p->env, &l->link, now, &req, &req_size, e);
    pthread_mutex_unlock(&l->mu);
    if (rv != 0)
        return rv;
    if (req == NULL) {
        *idle = 1;
        return 0;
    }
    rv = link_dial_call(&l->dial, req, req_size, &rep, &plain, &plain_size, e);
    free(req);
    if (rv != 0)
        return rv;
    /* The reply's ranges go through the committer: do not hold mu for it.
     * The link state is this thread's; mu guards it against readers. */
    {
        struct repl_link work;
        pthread_mutex_lock(&l->mu);
        work = l->link;
        pthread_mutex_unlock(&l->mu);
        rv = repl_link_reply(&p->env, &work, plain, plain_size, clock_wall_ms(), e);
        pthread_mutex_lock(&l->mu);
        if (work.lag_samples != l->link.lag_samples) {
            l->lag[l->lag_next] = work.lag_ms;
            l->lag_next = (l->lag_next + 1) % PEER_LAG_SAMPLES;
            if (l->lag_count < PEER_LAG_SAMPLES)
                l->lag_count++;
        }
        l->link = work;
        l->connected = 1;
        l->last_contact_ms = now;
        snprintf(l->error, sizeof l->error, "%s", work.last_error);
        pthread_mutex_unlock(&l->mu);
    }
    nng_msg_free(rep);
    return rv;
}

static void *
link_main(void *arg)
{
    struct peer_link *l = arg;
    struct peers *p = l->p;
    uint64_t seen = 0;

    for (;;) {
        struct im_err e = {0};
        int idle = 0, rv;

        pthread_mutex_lock(&p->mu);
        if (p->stopping) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);

        if (!l->dial.has_session) {
            if (atomic_load(&l->dial.pipes) == 0) {
                /* Not connected: NNG redials with back-off; look again
                 * shortly rather than queue a request. */
                idle = 2;
            } else if ((rv = handshake(l, &e)) != 0) {
                link_error(l, &e);
                log_debug("peer %s: %s", l->site->code, im_errmsg(&e));
                idle = 2;
            } else {
                l->backoff_ms = 0;
            }
        }
        if (l->dial.has_session && idle == 0) {
            rv = link_step(l, &idle, &e);
            if (rv != 0) {
                link_error(l, &e);
                if (e.code != IM_ECLOSED)
                    log_debug("peer %s: %s", l->site->code, im_errmsg(&e));
                drop_session(l);
                idle = 2;
            }
        }
        if (idle == 0)
            continue; /* more to do at once */
        pthread_mutex_lock(&p->mu);
        if (!p->stopping && p->gen == seen) {
            struct timespec ts;
            uint64_t wait_ms;
            if (idle == 2) {
                l->backoff_ms = l->backoff_ms ? l->backoff_ms * 2 : PEER_RECONNECT_MS_MIN;
                if (l->backoff_ms > PEER_RECONNECT_MS_MAX)
                    l->backoff_ms = PEER_RECONNECT_MS_MAX;
                wait_ms = l->backoff_ms;
            } else {
                uint64_t now = clock_wall_ms(), next;
                pthread_mutex_lock(&l->mu);
                next = l->link.next_sync_ms;
                pthread_mutex_unlock(&l->mu);
                wait_ms = next > now ? next - now : 1;
                if (wait_ms > REPL_SYNC_INTERVAL_MS)
                    wait_ms = REPL_SYNC_INTERVAL_MS;
            }
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += (time_t)(wait_ms / 1000);
            ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&p->cv, &p->mu, &ts);
        }
        pthread_mutex_unlock(&p->mu);
    }
    drop_session(l);
    return NULL;
}

static void
pipe_added(void *l)
{
    peers_notify(((struct peer_link *)l)->p);
}

static int
link_open(struct peer_link *l, struct im_err *e)
{
    return link_dial_open(&l->dial, l->site->peer, PEER_WIRE_MAX,
                          PEER_REQUEST_TIMEOUT_MS, PEER_RECONNECT_MS_MIN,
                          PEER_RECONNECT_MS_MAX, e);
}

int
peers_start(struct peers *p, const struct config *cfg, struct store *s,
            struct committer *c, const struct im_key *key, struct im_err *e)
{
    const struct cfg_site *own = config_site(cfg, cfg->node.site);
    const char *listen = cfg->node.peer_listen[0] ? cfg->node.peer_listen
                                                  : own->peer;
    int rv;

    p->cfg = cfg;
    p->store = s;
    p->commit = c;
    p->key = key;
    config_cluster_id(cfg, p->cluster_id);
    p->env.store = s;
    p->env.self = cfg->node.site;
    p->env.site_key = site_key;
    p->env.key_arg = (void *)cfg;
    p->env.apply = apply_via_committer;
    p->env.apply_arg = p;

    for (size_t i = 0; i < cfg->sites_count; i++) {
        struct peer_link *l;
        if (strcmp(cfg->sites[i].code, cfg->node.site) == 0)
            continue;
        l = &p->links[p->links_count++];
        l->p = p;
        l->site = &cfg->sites[i];
        pthread_mutex_init(&l->mu, NULL);
        link_dial_init(&l->dial, l->site->code, pipe_added, l);
        repl_link_init(&l->link, l->site->code);
    }
    if (p->links_count == 0)
        return 0; /* a single-site cluster: nothing to replicate */

    if (listen[0] != '\0') {
        struct link_server_cfg sc = {
            .what = "peer",
            .key = key,
            .peers_count = p->links_count,
            .peer_of = peer_of,
            .peer_name = peer_name,
            .serve = serve_repl,
            .arg = p,
            .recv_max = PEER_WIRE_MAX,
            .workers = PEER_SERVER_WORKERS,
        };
        memcpy(sc.cluster_id, p->cluster_id, sizeof sc.cluster_id);
        if ((rv = link_server_start(&p->srv, listen, &sc, e)) != 0) {
            im_errwrap(e, "listen for peers");
            goto fail;
        }
        p->srv_started = 1;
    } else {
        log_warn("site %s has no peer address: peers cannot reach it; it "
                 "still dials them", cfg->node.site);
    }
    for (size_t i = 0; i < p->links_count; i++) {
        struct peer_link *l = &p->links[i];
        if (l->site->peer[0] == '\0') {
            snprintf(l->error, sizeof l->error,
                     "no peer address configured: it must dial us");
            continue;
        }
        if ((rv = link_open(l, e)) != 0)
            goto fail;
        if (pthread_create(&l->thread, NULL, link_main, l) != 0) {
            rv = im_errf(e, IM_ENOMEM, "start peer thread");
            goto fail;
        }
        l->thread_started = 1;
    }
    return 0;
fail:
    peers_close(p);
    return rv;
}

void
peers_init(struct peers *p)
{
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
}

void
peers_notify(void *arg)
{
    struct peers *p = arg;
    pthread_mutex_lock(&p->mu);
    p->gen++;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void
peers_close(struct peers *p)
{
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < p->links_count; i++)
        link_dial_close(&p->links[i].dial);
    if (p->srv_started)
        link_server_close(&p->srv);
    p->srv_started = 0;
    for (size_t i = 0; i < p->links_count; i++)
        if (p->links[i].thread_started)
            pthread_join(p->links[i].thread, NULL);
    for (size_t i = 0; i < p->links_count; i++) {
        p->links[i].thread_started = 0;
        link_dial_fini(&p->links[i].dial);
        pthread_mutex_destroy(&p->links[i].mu);
    }
    p->links_count = 0;
}

void
peers_fini(struct peers *p)
{
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void
peers_status(struct peers *p, struct peer_status *out, size_t *count,
             uint64_t *node_rejected)
{
    *count = 0;
    memset(node_rejected, 0, PEER_REJECT_COUNT * sizeof node_rejected[0]);
    for (size_t i = 0; i < p->links_count; i++) {
        struct peer_link *l = &p->links[i];
        struct peer_status *st = &out[(*count)++];
        uint64_t sorted[PEER_LAG_SAMPLES];

        memset(st, 0, sizeof *st);
        snprintf(st->site, sizeof st->site, "%s", l->site->code);
        snprintf(st->address, sizeof st->address, "%s", l->site->peer);
        pthread_mutex_lock(&l->mu);
        st->connected = l->connected && atomic_load(&l->dial.pipes) > 0;
        st->last_contact_ms = l->last_contact_ms;
        st->lag_ms = l->link.lag_ms;
        if (l->lag_count > 0) {
            memcpy(sorted, l->lag, l->lag_count * sizeof sorted[0]);
            qsort(sorted, l->lag_count, sizeof sorted[0], cmp_u64);
            st->lag_p99_ms = sorted[(l->lag_count * 99) / 100 < l->lag_count
                                        ? (l->lag_count * 99) / 100
                                        : l->lag_count - 1];
        }
        st->events_in = l->link.counters.events_in + l->srv_counters.events_in;
        st->events_out = l->link.counters.events_out;
        st->sessions = l->sessions;
        st->theirs = l->link.theirs;
        st->theirs_known = l->link.theirs_known;
        for (int r = 0; r < REPL_R_COUNT; r++)
            st->repl_rejected[r] = l->link.counters.ranges_rejected[r] +
                                   l->srv_counters.ranges_rejected[r];
        snprintf(st->error, sizeof st->error, "%s", l->error);
        pthread_mutex_unlock(&l->mu);
        link_dial_counters(&l->dial, &st->bytes_in, &st->bytes_out,
                           st->chan_rejected);
    }
    /* Sessions on the listening side count toward their peer. */
    if (p->srv_started) {
        uint64_t(*per)[CHAN_REJECT_COUNT] = calloc(p->links_count ? p->links_count : 1,
                                                   sizeof *per);
        if (per != NULL) {
            link_server_counters(&p->srv, per, node_rejected);
            for (size_t i = 0; i < *count; i++)
                for (int r = 0; r < CHAN_REJECT_COUNT; r++)
                    out[i].chan_rejected[r] += per[i][r];
            free(per);
        }
    }
}
