/* peer: see peer.h. */
#include "peer.h"

#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"

/* ---- shared ---- */


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

static int
link_index(void *arg, const uint8_t pk[KEY_PUB_BYTES])
{
    return link_of_pk(arg, pk);
}

/* A peer may be any configured site but ourselves. */
static int
pinned(void *arg, const uint8_t pk[KEY_PUB_BYTES])
{
    return link_of_pk(arg, pk) >= 0 ? 0 : IM_EUNKNOWNKEY;
}

/* Whether our own link to peer is up and so pushes it whatever it lacks
 * (repl_env.pushing): its syncs to us then get no ranges. Those ranges
 * repeated our pushes, were verified twice, and held the peer's link
 * thread in a commit once a second while its pushes waited (a lag spike
 * every second: bench table 5). */
static int
link_pushing(void *arg, const char *peer)
{
    struct peers *p = arg;
    int pushing = 0;
    for (size_t i = 0; i < p->links_count; i++) {
        struct peer_link *l = &p->links[i];
        if (strcmp(l->site->code, peer) != 0)
            continue;
        pthread_mutex_lock(&l->mu);
        pushing = l->connected && l->link.theirs_known &&
                  clock_wall_ms() - l->last_contact_ms <= PEER_STALE_MS;
        pthread_mutex_unlock(&l->mu);
    }
    return pushing;
}

/* Stores verified ranges through the committer and waits for the commit:
 * the replicated events share the group commit with local writes. */
struct apply_req {
    struct commit_req r;
    struct commit_op op;
    struct repl_verified *v;
    size_t n;
    int *codes;
    uint64_t applied;
    struct im_err err;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
};

static int
apply_step(struct commit_step *cs, void *arg)
{
    struct apply_req *a = arg;
    int rv;

    /* A step may run again alone after its batch failed: start clean. */
    a->applied = 0;
    im_errclear(&a->err);
    rv = repl_ranges_apply(cs->t, a->v, a->n, &cs->c->clock, cs->now_ms,
                           a->codes, &a->applied, &a->err);
    cs->events += a->applied;
    return rv;
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
                    uint64_t *applied, void (*queued)(void *qarg), void *qarg,
                    struct im_err *e)
{
    struct peers *p = arg;
    struct apply_req a;
    int rv;

    memset(&a, 0, sizeof a);
    a.v = v;
    a.n = n;
    a.codes = codes;
    a.op.step = apply_step;
    a.op.step_arg = &a;
    a.r.ops = &a.op;
    a.r.ops_count = 1;
    a.r.done = apply_done;
    a.r.arg = &a;
    a.r.actor = "replication";
    pthread_mutex_init(&a.mu, NULL);
    pthread_cond_init(&a.cv, NULL);
    rv = commit_submit(p->commit, &a.r);
    /* In the committer's queue (which it takes in order): the link's next
     * request may queue its ranges behind these, into the same group
     * commit if it comes in time. */
    if (queued != NULL)
        queued(qarg);
    if (rv != 0) {
        rv = im_errf(e, rv, "store busy: %s", im_strerror(rv));
        goto out;
    }
    pthread_mutex_lock(&a.mu);
    while (!a.done)
        pthread_cond_wait(&a.cv, &a.mu);
    pthread_mutex_unlock(&a.mu);
    if ((rv = a.op.code) != 0) {
        /* The transaction failed (disk or map full...): nothing stored. */
        if (a.err.code != 0)
            *e = a.err;
        else
            im_errf(e, rv, "store: %s", im_strerror(rv));
        rv = e->code;
    }
    free(a.op.result);
    *applied = rv == 0 ? a.applied : 0;
out:
    pthread_cond_destroy(&a.cv);
    pthread_mutex_destroy(&a.mu);
    return rv;
}

/* ---- the receiving side's order (repl_env turn hooks) ---- */

static struct peer_link *
link_of_code(struct peers *p, const char *code)
{
    for (size_t i = 0; i < p->links_count; i++)
        if (strcmp(p->links[i].site->code, code) == 0)
            return &p->links[i];
    return NULL;
}

/* Blocks until request (stream, seq) of peer may queue its ranges, or
 * REPL_ORDER_WAIT_MS passed, or we stop. */
static void
turn_wait(void *arg, const char *peer, uint64_t stream, uint64_t seq)
{
    struct peer_link *l = link_of_code(arg, peer);
    struct timespec ts;

    if (l == NULL)
        return;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += REPL_ORDER_WAIT_MS / 1000;
    ts.tv_nsec += (long)(REPL_ORDER_WAIT_MS % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&l->order_mu);
    while (!repl_order_ready(&l->order, stream, seq) && !l->order_stopping)
        if (pthread_cond_timedwait(&l->order_cv, &l->order_mu, &ts) != 0) {
            log_debug("peer %s: request %llu waited out its turn", peer,
                      (unsigned long long)seq);
            break;
        }
    pthread_mutex_unlock(&l->order_mu);
}

static void
turn_done(void *arg, const char *peer, uint64_t stream, uint64_t seq)
{
    struct peer_link *l = link_of_code(arg, peer);
    if (l == NULL)
        return;
    pthread_mutex_lock(&l->order_mu);
    repl_order_done(&l->order, stream, seq);
    pthread_cond_broadcast(&l->order_cv);
    pthread_mutex_unlock(&l->order_mu);
}

/* ---- the listening side (lib/link.c serves sessions and framing) ---- */

static const char *
link_name(void *arg, int link)
{
    const struct peers *p = arg;
    return link >= 0 && (size_t)link < p->links_count
               ? p->links[link].site->code
               : "?";
}

/* One replication request of the peer at link. */
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
    link_dial_count(&l->dial, plain_size + LINK_DATA_OVERHEAD,
                    rv == 0 ? *reply_size + LINK_DATA_OVERHEAD : 0);
    pthread_mutex_lock(&l->mu);
    l->srv_counters.events_in += c.events_in;
    for (int r = 0; r < REPL_R_COUNT; r++)
        l->srv_counters.ranges_rejected[r] += c.ranges_rejected[r];
    pthread_mutex_unlock(&l->mu);
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

/* A call completed (on an NNG thread): wake the link's thread. */
static void
call_done(void *arg)
{
    struct peer_link *l = arg;
    pthread_mutex_lock(&l->p->mu);
    l->calls_done++;
    pthread_cond_broadcast(&l->p->cv);
    pthread_mutex_unlock(&l->p->mu);
}

static void
calls_close(struct peer_link *l)
{
    for (int i = 0; i < l->calls_open; i++)
        link_call_fini(&l->calls[i]);
    l->calls_open = 0;
}

/* Ends the session with everything in flight on it: what the requests in
 * flight carried is pushed again (or found by the next sync) on the next
 * session, which starts a new stream. */
static void
drop_session(struct peer_link *l)
{
    calls_close(l);
    if (!l->dial.has_session)
        return;
    link_dial_drop(&l->dial);
    pthread_mutex_lock(&l->mu);
    l->connected = 0;
    repl_link_reset(&l->link);
    pthread_mutex_unlock(&l->mu);
}

static int
handshake(struct peer_link *l, struct im_err *e)
{
    struct peers *p = l->p;
    int rv;

    rv = link_dial_handshake(&l->dial, p->key, p->cluster_id, l->site->pk,
                             pinned, p, e);
    if (rv != 0)
        return rv;
    for (int i = 0; i < REPL_PIPELINE_MAX; i++) {
        if ((rv = link_call_init(&l->calls[i], &l->dial, call_done, l, e)) != 0) {
            drop_session(l);
            return rv;
        }
        l->calls_open++;
    }
    pthread_mutex_lock(&l->mu);
    l->sessions++;
    repl_link_reset(&l->link);
    pthread_mutex_unlock(&l->mu);
    log_info("peer %s: session established", l->site->code);
    return 0;
}

/* Handles the reply of a completed call. */
static int
call_reply(struct peer_link *l, struct link_call *c, struct im_err *e)
{
    struct peers *p = l->p;
    struct repl_link *work;
    uint8_t *plain;
    size_t plain_size;
    nng_msg *rep = NULL;
    uint64_t now = clock_wall_ms();
    int rv;

    if ((rv = link_call_finish(c, &rep, &plain, &plain_size, e)) != 0)
        return rv;
    /* The reply's ranges go through the committer: do not hold mu for it.
     * The link state is this thread's; mu guards it against readers. */
    if ((work = malloc(sizeof *work)) == NULL) {
        nng_msg_free(rep);
        return im_errf(e, IM_ENOMEM, "out of memory");
    }
    pthread_mutex_lock(&l->mu);
    *work = l->link;
    pthread_mutex_unlock(&l->mu);
    rv = repl_link_reply(&p->env, work, plain, plain_size, clock_wall_ms(), e);
    pthread_mutex_lock(&l->mu);
    if (work->lag_samples != l->link.lag_samples) {
        l->lag[l->lag_next] = work->lag_ms;
        l->lag_next = (l->lag_next + 1) % PEER_LAG_SAMPLES;
        if (l->lag_count < PEER_LAG_SAMPLES)
            l->lag_count++;
        l->lag_p99_stale = 1;
    }
    l->link = *work;
    l->connected = 1;
    l->last_contact_ms = now;
    snprintf(l->error, sizeof l->error, "%s", work->last_error);
    pthread_mutex_unlock(&l->mu);
    free(work);
    nng_msg_free(rep);
    return rv;
}

/* Takes the replies that came and fills the pipeline with what the peer
 * lacks (or a sync when due). *idle: 0 if something happened that may
 * allow more at once, 1 if it waits for a commit, a reply or the next
 * sync. */
static int
link_pump(struct peer_link *l, int *idle, struct im_err *e)
{
    struct peers *p = l->p;
    int rv;

    *idle = 1;
    for (int i = 0; i < l->calls_open; i++) {
        if (!link_call_ready(&l->calls[i]))
            continue;
        if ((rv = call_reply(l, &l->calls[i], e)) != 0)
            return rv;
        *idle = 0;
    }
    for (int i = 0; i < l->calls_open; i++) {
        uint8_t *req = NULL;
        size_t req_size = 0;
        if (l->calls[i].busy)
            continue;
        pthread_mutex_lock(&l->mu);
        rv = repl_link_request(&p->env, &l->link, clock_wall_ms(), &req,
                               &req_size, e);
        pthread_mutex_unlock(&l->mu);
        if (rv != 0)
            return rv;
        if (req == NULL)
            break; /* nothing more to send now */
        rv = link_call_start(&l->calls[i], req, req_size,
                             PEER_REQUEST_TIMEOUT_MS, e);
        free(req);
        if (rv != 0)
            return rv;
    }
    return 0;
}

static int link_open(struct peers *p, struct peer_link *l, struct im_err *e);

/* Drops the link's TCP connection (or pending dial) and dials afresh
 * (PEER_CONNECT_MS_MAX). On the link's thread; the socket is swapped under
 * p->mu so that peers_close closes whichever is current, but closed
 * outside it: NNG's pipe callbacks take p->mu. */
static void
link_redial(struct peer_link *l)
{
    struct peers *p = l->p;
    struct im_err e = {0};
    nng_socket old;
    int had;

    drop_session(l);
    pthread_mutex_lock(&p->mu);
    if (p->stopping) {
        pthread_mutex_unlock(&p->mu);
        return;
    }
    old = l->dial.sock;
    had = l->dial.sock_open;
    l->dial.sock_open = 0;
    pthread_mutex_unlock(&p->mu);
    if (had)
        nng_close(old);
    pthread_mutex_lock(&p->mu);
    if (!p->stopping && link_open(p, l, &e) != 0)
        log_warn("peer %s: redial: %s", l->site->code, im_errmsg(&e));
    pthread_mutex_unlock(&p->mu);
    l->dial_since_ms = clock_mono_ms();
}

static void *
link_main(void *arg)
{
    struct peer_link *l = arg;
    struct peers *p = l->p;
    uint64_t seen = 0, seen_done = 0;

    for (;;) {
        struct im_err e = {0};
        int idle = 0, rv;

        pthread_mutex_lock(&p->mu);
        if (p->stopping) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        seen = p->gen;
        seen_done = l->calls_done;
        pthread_mutex_unlock(&p->mu);

        if (atomic_load(&l->dial.pipes) > 0) {
            l->dial_since_ms = 0;
        } else {
            uint64_t now = clock_mono_ms();
            if (l->dial_since_ms == 0)
                l->dial_since_ms = now;
            else if (now - l->dial_since_ms >= PEER_CONNECT_MS_MAX)
                link_redial(l);
        }
        if (!l->dial.has_session) {
            if (atomic_load(&l->dial.pipes) == 0) {
                /* Not connected: NNG redials with back-off; look again
                 * shortly rather than queue a request. */
                idle = 2;
            } else if ((rv = handshake(l, &e)) != 0) {
                link_error(l, &e);
                log_debug("peer %s: %s", l->site->code, im_errmsg(&e));
                if (e.code == IM_ETIMEDOUT)
                    link_redial(l);
                idle = 2;
            } else {
                l->backoff_ms = 0;
            }
        }
        if (l->dial.has_session && idle == 0) {
            rv = link_pump(l, &idle, &e);
            if (rv != 0) {
                link_error(l, &e);
                if (e.code != IM_ECLOSED)
                    log_debug("peer %s: %s", l->site->code, im_errmsg(&e));
                drop_session(l);
                if (e.code == IM_ETIMEDOUT)
                    link_redial(l);
                idle = 2;
            }
        }
        if (idle == 0)
            continue; /* more to do at once */
        pthread_mutex_lock(&p->mu);
        if (!p->stopping && p->gen == seen && l->calls_done == seen_done) {
            struct timespec ts;
            uint64_t wait_ms;
            if (idle == 2) {
                l->backoff_ms = l->backoff_ms ? l->backoff_ms * 2 : PEER_RECONNECT_MS_MIN;
                if (l->backoff_ms > PEER_RECONNECT_MS_MAX)
                    l->backoff_ms = PEER_RECONNECT_MS_MAX;
                wait_ms = l->backoff_ms;
                /* Look in time to abandon a dial that hangs. */
                if (atomic_load(&l->dial.pipes) == 0 &&
                    wait_ms > PEER_CONNECT_MS_MAX / 2)
                    wait_ms = PEER_CONNECT_MS_MAX / 2;
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

/* A dialler's pipe connected: wake the link threads. */
static void
pipe_added(void *arg)
{
    peers_notify(arg);
}

/* Opens the link's socket, dialling its peer in the background. Under
 * p->mu (peers_close takes the socket there). */
static int
link_open(struct peers *p, struct peer_link *l, struct im_err *e)
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
    p->env.pushing = link_pushing;
    p->env.pushing_arg = p;
    p->env.turn_wait = turn_wait;
    p->env.turn_done = turn_done;
    p->env.turn_arg = p;

    for (size_t i = 0; i < cfg->sites_count; i++) {
        struct peer_link *l;
        pthread_condattr_t ca;
        if (strcmp(cfg->sites[i].code, cfg->node.site) == 0)
            continue;
        l = &p->links[p->links_count++];
        l->p = p;
        l->site = &cfg->sites[i];
        pthread_mutex_init(&l->mu, NULL);
        pthread_mutex_init(&l->order_mu, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&l->order_cv, &ca);
        pthread_condattr_destroy(&ca);
        link_dial_init(&l->dial, l->site->code, pipe_added, p);
        repl_link_init(&l->link, l->site->code);
    }
    if (p->links_count == 0)
        return 0; /* a single-site cluster: nothing to replicate */

    if (listen[0] != '\0') {
        struct link_server_cfg sc = {
            .what = "peer",
            .key = key,
            .peers_count = p->links_count,
            .peer_of = link_index,
            .peer_name = link_name,
            .serve = serve_repl,
            .other = NULL,
            .arg = p,
            .recv_max = PEER_WIRE_MAX,
            .workers = PEER_SERVER_WORKERS,
        };
        memcpy(sc.cluster_id, p->cluster_id, sizeof sc.cluster_id);
        if ((rv = link_server_start(&p->srv, listen, &sc, e)) != 0) {
            im_errwrap(e, "listen for peers on %s", listen);
            goto fail;
        }
        pthread_mutex_lock(&p->srv_mu);
        p->srv_started = 1;
        pthread_mutex_unlock(&p->srv_mu);
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
        if ((rv = link_open(p, l, e)) != 0)
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
    pthread_mutex_init(&p->srv_mu, NULL);
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
    for (size_t i = 0; i < p->links_count; i++) {
        /* The link's thread may swap its socket (link_redial) until it
         * sees stopping: take the current one under mu. */
        struct peer_link *l = &p->links[i];
        nng_socket sock;
        int open;
        pthread_mutex_lock(&p->mu);
        sock = l->dial.sock;
        open = l->dial.sock_open;
        l->dial.sock_open = 0;
        pthread_mutex_unlock(&p->mu);
        if (open)
            nng_close(sock);
        /* Listener workers waiting for a turn stop waiting. */
        pthread_mutex_lock(&l->order_mu);
        l->order_stopping = 1;
        pthread_cond_broadcast(&l->order_cv);
        pthread_mutex_unlock(&l->order_mu);
    }
    /* The listener's counters outlive it (peers_status until peers_fini):
     * keep its last ones. Its workers take no lock of ours. */
    pthread_mutex_lock(&p->srv_mu);
    if (p->srv_started) {
        link_server_counters(&p->srv, p->srv_chan_rejected, p->rejected);
        link_server_close(&p->srv);
        p->srv_started = 0;
    }
    pthread_mutex_unlock(&p->srv_mu);
    for (size_t i = 0; i < p->links_count; i++)
        if (p->links[i].thread_started)
            pthread_join(p->links[i].thread, NULL);
    /* Links stay readable (peers_status) until peers_fini. */
    for (size_t i = 0; i < p->links_count; i++) {
        p->links[i].dial.sock_open = 0;
        p->links[i].thread_started = 0;
    }
}

void
peers_fini(struct peers *p)
{
    for (size_t i = 0; i < p->links_count; i++) {
        struct peer_link *l = &p->links[i];
        link_dial_fini(&l->dial);
        pthread_cond_destroy(&l->order_cv);
        pthread_mutex_destroy(&l->order_mu);
        pthread_mutex_destroy(&l->mu);
    }
    p->links_count = 0;
    pthread_mutex_destroy(&p->srv_mu);
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
    for (size_t i = 0; i < p->links_count; i++) {
        struct peer_link *l = &p->links[i];
        struct peer_status *st = &out[(*count)++];
        uint64_t sorted[PEER_LAG_SAMPLES];

        memset(st, 0, sizeof *st);
        snprintf(st->site, sizeof st->site, "%s", l->site->code);
        snprintf(st->address, sizeof st->address, "%s", l->site->peer);
        pthread_mutex_lock(&l->mu);
        /* A healthy link makes contact every REPL_SYNC_INTERVAL_MS; a cut
         * that drops packets leaves the TCP connection (and the session)
         * up until a request times out, so judge by contact, not sockets. */
        st->connected = l->connected && atomic_load(&l->dial.pipes) > 0 &&
                        clock_wall_ms() - l->last_contact_ms <= PEER_STALE_MS;
        st->last_contact_ms = l->last_contact_ms;
        st->lag_ms = l->link.lag_ms;
        if (l->lag_count > 0 && l->lag_p99_stale) {
            memcpy(sorted, l->lag, l->lag_count * sizeof sorted[0]);
            qsort(sorted, l->lag_count, sizeof sorted[0], cmp_u64);
            l->lag_p99_ms = sorted[(l->lag_count * 99) / 100 < l->lag_count
                                       ? (l->lag_count * 99) / 100
                                       : l->lag_count - 1];
            l->lag_p99_stale = 0;
        }
        st->lag_p99_ms = l->lag_p99_ms;

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
    /* The listening side's sessions count toward their peer. */
    pthread_mutex_lock(&p->srv_mu);
    memcpy(node_rejected, p->rejected, sizeof p->rejected);
    {
        uint64_t (*per)[CHAN_REJECT_COUNT] = p->srv_started ? calloc(SITES_MAX, sizeof *per)
                                                            : p->srv_chan_rejected;
        if (p->srv_started && per != NULL)
            link_server_counters(&p->srv, per, node_rejected);
        for (size_t i = 0; per != NULL && i < *count; i++)
            for (int r = 0; r < CHAN_REJECT_COUNT; r++)
                out[i].chan_rejected[r] += per[i][r];
        if (p->srv_started)
            free(per);
    }
    pthread_mutex_unlock(&p->srv_mu);
}

void
peers_metrics(void *arg, struct metrics_out *o)
{
    struct peers *p = arg;
    struct peer_status *st = calloc(SITES_MAX, sizeof *st);
    uint64_t node_rej[PEER_REJECT_COUNT];
    size_t n = 0;
    if (st == NULL)
        return;
    peers_status(p, st, &n, node_rej);
    metrics_family(o, "im_repl_peer_up", "gauge",
                   "1 if the replication link to the peer is up.");
    for (size_t i = 0; i < n; i++)
        metrics_sample(o, "im_repl_peer_up", (uint64_t)st[i].connected, "peer",
                       st[i].site, NULL);
    metrics_family(o, "im_repl_lag_ms", "gauge",
                   "Latest replication lag to the peer: its acknowledgement "
                   "time minus the HLC time of the newest event pushed.");
    for (size_t i = 0; i < n; i++)
        metrics_sample(o, "im_repl_lag_ms", st[i].lag_ms, "peer", st[i].site,
                       NULL);
    metrics_family(o, "im_repl_lag_p99_ms", "gauge",
                   "p99 of the replication lag over the last samples.");
    for (size_t i = 0; i < n; i++)
        metrics_sample(o, "im_repl_lag_p99_ms", st[i].lag_p99_ms, "peer",
                       st[i].site, NULL);
    metrics_family(o, "im_repl_events_behind", "gauge",
                   "Events of an origin we hold and the peer lacks, as of "
                   "its last reply.");
    for (size_t i = 0; i < n; i++) {
        MDB_txn *txn;
        struct store_vv ours;
        struct im_err e = {0};
        if (!st[i].theirs_known || store_read_begin(p->store, &txn, &e) != 0)
            continue;
        if (store_vector(txn, p->store, &ours) == 0)
            for (size_t k = 0; k < ours.count; k++) {
                uint64_t t = store_vv_seq(&st[i].theirs, ours.e[k].origin);
                metrics_sample(o, "im_repl_events_behind",
                               ours.e[k].head.seq > t ? ours.e[k].head.seq - t : 0,
                               "peer", st[i].site, "origin", ours.e[k].origin,
                               NULL);
            }
        store_read_end(txn);
    }
    metrics_family(o, "im_repl_bytes_total", "counter",
                   "Bytes on the replication links, by direction.");
    for (size_t i = 0; i < n; i++) {
        metrics_sample(o, "im_repl_bytes_total", st[i].bytes_in, "peer",
                       st[i].site, "direction", "in", NULL);
        metrics_sample(o, "im_repl_bytes_total", st[i].bytes_out, "peer",
                       st[i].site, "direction", "out", NULL);
    }
    metrics_family(o, "im_repl_events_total", "counter",
                   "Events replicated: received from the peer and stored "
                   "(in), sent and stored by the peer (out).");
    for (size_t i = 0; i < n; i++) {
        metrics_sample(o, "im_repl_events_total", st[i].events_in, "peer",
                       st[i].site, "direction", "in", NULL);
        metrics_sample(o, "im_repl_events_total", st[i].events_out, "peer",
                       st[i].site, "direction", "out", NULL);
    }
    metrics_family(o, "im_repl_rejected_total", "counter",
                   "Frames and ranges rejected (dropped, never applied), by "
                   "peer and reason; peer \"\" before a peer was known.");
    for (size_t i = 0; i < n; i++) {
        for (int r = 0; r < CHAN_REJECT_COUNT; r++)
            metrics_sample(o, "im_repl_rejected_total", st[i].chan_rejected[r],
                           "peer", st[i].site, "reason", chan_reject_name(r),
                           NULL);
        for (int r = 0; r < REPL_R_COUNT; r++)
            metrics_sample(o, "im_repl_rejected_total", st[i].repl_rejected[r],
                           "peer", st[i].site, "reason", repl_reason_name(r),
                           NULL);
    }
    for (int r = 0; r < PEER_REJECT_COUNT; r++)
        metrics_sample(o, "im_repl_rejected_total", node_rej[r], "peer", "",
                       "reason", peer_reject_name(r), NULL);
    free(st);
}
