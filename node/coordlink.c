/* coordlink: see coordlink.h. */
#include "coordlink.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"

/* The coordinator we dial must prove its pinned key; any pinned replica
 * key is acceptable to the channel's pinned check. */
static const char *
str_or_empty(const char *s)
{
    return s != NULL ? s : "";
}

static int
coord_pinned(void *arg, const uint8_t pk[KEY_PUB_BYTES])
{
    return config_coordinator_by_key(arg, pk) ? 0 : IM_EUNKNOWNKEY;
}

/* 1 if id is "<site>-<n>": the site originated it. */
static int
originated(const char *id, const char *site)
{
    size_t n = strlen(site);
    return strncmp(id, site, n) == 0 && id[n] == '-';
}

static int
on_incident(void *arg, const Im__Incident *inc)
{
    struct summary_acc *a = arg;
    Im__IncidentSummary *s;
    int owned = inc->owner != NULL && strcmp(inc->owner->site, a->site) == 0;

    /* What this site speaks for: what it raised and what it owns. */
    if (!owned && !originated(inc->id, a->site))
        return 0;
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

/* The notice ids of the pages (Escalated events) a major incident's log
 * holds: the coordinator repeats a page until it sees its id here. */
static int
summary_notices(MDB_txn *txn, struct store *st, Im__IncidentSummary *s,
                struct im_err *e)
{
    Im__Event **events = NULL;
    size_t n = 0, k = 0;
    int rv;

    if ((rv = store_incident_events(txn, st, s->id, &events, &n, e)) != 0)
        return rv;
    for (size_t i = 0; i < n; i++)
        if (events[i]->body != NULL &&
            events[i]->body->kind_case == IM__BODY__KIND_ESCALATED)
            k++;
    if (k > 0 && (s->notices = calloc(k, sizeof *s->notices)) == NULL)
        rv = im_errf(e, IM_ENOMEM, "out of memory");
    for (size_t i = 0; rv == 0 && i < n; i++) {
        if (events[i]->body == NULL ||
            events[i]->body->kind_case != IM__BODY__KIND_ESCALATED)
            continue;
        if ((s->notices[s->n_notices] =
                 strdup(str_or_empty(events[i]->body->escalated->notice))) == NULL)
            rv = im_errf(e, IM_ENOMEM, "out of memory");
        else
            s->n_notices++;
    }
    store_events_free(events, n);
    return rv;
}

static void
summaries_free(struct summary_acc *a)
{
    if (a->items == NULL)
        return;
    for (size_t i = 0; i < a->count; i++) {
        free(a->items[i].id);
        free(a->items[i].service);
        free(a->items[i].owner_site);
        for (size_t k = 0; k < a->items[i].n_notices; k++)
            free(a->items[i].notices[k]);
        free(a->items[i].notices);
    }
    free(a->items);
    a->items = NULL;
    a->count = 0;
}

/* Rebuilds the summaries of c->cache (under cache_mu). */
static int
summaries_build(struct coordlinks *c, struct im_err *e)
{
    struct summary_acc acc = {.site = c->cfg->node.site};
    struct store_list_query q = {.site = NULL}; /* open ones, any origin */
    MDB_txn *txn;
    uint64_t matched = 0;
    int rv;

    acc.items = calloc(COORD_HEARTBEAT_INCIDENTS_MAX, sizeof *acc.items);
    if (acc.items == NULL)
        return im_errf(e, IM_ENOMEM, "out of memory");
    if ((rv = store_read_begin(c->store, &txn, e)) == 0) {
        rv = store_list(txn, c->store, &q, on_incident, &acc, &matched, e);
        for (size_t i = 0; rv == 0 && i < acc.count; i++)
            if (acc.items[i].major)
                rv = summary_notices(txn, c->store, &acc.items[i], e);
        store_read_end(txn);
    }
    if (rv != 0) {
        summaries_free(&acc);
        return rv;
    }
    summaries_free(&c->cache);
    c->cache = acc;
    c->cache_built_ms = clock_mono_ms();
    c->cache_valid = 1;
    return 0;
}

/* The encoded heartbeat (CoordRequest) of this site now. The summaries are
 * shared by the links for a sixth of a lease (or until the node records a
 * decision), so that one scan of the open incidents serves every replica. */
static int
heartbeat_build(struct coordlink *l, uint8_t **out, size_t *size,
                struct im_err *e)
{
    struct coordlinks *c = l->all;
    Im__CoordRequest req = IM__COORD_REQUEST__INIT;
    Im__Heartbeat hb = IM__HEARTBEAT__INIT;
    Im__IncidentSummary **ptrs = NULL;
    uint64_t lease_ms;
    int rv = 0;

    pthread_mutex_lock(&c->mu);
    lease_ms = c->lease_ms;
    pthread_mutex_unlock(&c->mu);
    pthread_mutex_lock(&c->cache_mu);
    if (!c->cache_valid || clock_mono_ms() - c->cache_built_ms >= lease_ms / 6)
        rv = summaries_build(c, e);
    if (rv != 0)
        goto out;
    if ((ptrs = calloc(c->cache.count ? c->cache.count : 1, sizeof *ptrs)) ==
        NULL) {
        rv = im_errf(e, IM_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < c->cache.count; i++)
        ptrs[i] = &c->cache.items[i];
    hb.site = (char *)c->cfg->node.site;
    hb.now_ms = clock_wall_ms();
    hb.seq = ++l->seq;
    hb.open = ptrs;
    hb.n_open = c->cache.count;
    hb.open_count = c->cache.open;
    hb.owned_count = c->cache.owned;
    req.kind_case = IM__COORD_REQUEST__KIND_HEARTBEAT;
    req.heartbeat = &hb;
    *size = im__coord_request__get_packed_size(&req);
    if ((*out = malloc(*size ? *size : 1)) == NULL) {
        rv = im_errf(e, IM_ENOMEM, "out of memory");
        goto out;
    }
    im__coord_request__pack(&req, *out);
out:
    pthread_mutex_unlock(&c->cache_mu);
    free(ptrs);
    return rv;
}

/* ---- recording what the leader decided ---- */

struct reply_job {
    struct coordlinks *c;
    const Im__HeartbeatReply *h;
    struct incident *inc; /* scratch */
    size_t recorded;      /* events appended by the last run */
};

/* Appends body (cs NULL: only counts it, for the read-only pass). A
 * refusal of one record is logged and skipped; anything else fails the
 * transaction (the next heartbeat brings the same decisions again). */
static int
record(struct commit_step *cs, struct reply_job *j, const char *incident,
       Im__Body *body, const char *what)
{
    struct im_err e = {0};
    int rv;

    if (cs == NULL) {
        j->recorded++;
        return 0;
    }
    if ((rv = commit_append(cs, incident, body, NULL, &e)) == 0) {
        j->recorded++;
        return 0;
    }
    if (!commit_is_refusal(rv))
        return rv;
    atomic_fetch_add(&j->c->refused, 1);
    log_warn("coordinator %s for %s not recorded: %s", what, incident,
             im_errmsg(&e));
    return 0;
}

/* The incident, if this node holds it yet (replication may lag behind the
 * coordinator: the next heartbeat tries again). 1 found, 0 not, or < 0. */
static int
known(MDB_txn *txn, struct reply_job *j, const char *id)
{
    struct im_err e = {0};
    int rv = store_incident_get(txn, j->c->store, id, j->inc, &e);
    if (rv == IM_ENOTFOUND || rv == IM_EINVAL)
        return 0;
    return rv == 0 ? 1 : rv;
}

/* *found: the incident's log holds the page with this notice id. */
static int
page_recorded(MDB_txn *txn, struct store *st, const char *id,
              const char *notice, int *found)
{
    Im__Event **events = NULL;
    size_t n = 0;
    struct im_err e = {0};
    int rv = store_incident_events(txn, st, id, &events, &n, &e);

    *found = 0;
    for (size_t i = 0; rv == 0 && i < n; i++)
        if (events[i]->body != NULL &&
            events[i]->body->kind_case == IM__BODY__KIND_ESCALATED &&
            strcmp(str_or_empty(events[i]->body->escalated->notice), notice) == 0)
            *found = 1;
    store_events_free(events, n);
    return rv;
}

/* Walks the reply against the log read through txn: appends what is new
 * through cs, or with cs NULL only counts it in j->recorded. */
static int
reply_walk(MDB_txn *txn, struct reply_job *j, struct commit_step *cs)
{
    const Im__HeartbeatReply *h = j->h;
    const char *site = j->c->cfg->node.site;
    int rv;

    j->recorded = 0;
    /* Assignments: the owner site and the origin record a decision newer
     * than the one their log holds (OwnerAssigned; the fold takes the
     * largest token). Both learn of it first-hand, so the log says who
     * owns even when the other is cut off; replication brings it to
     * everyone else. */
    for (size_t i = 0; i < h->n_assignments; i++) {
        const Im__Assignment *a = h->assignments[i];
        Im__Body body = IM__BODY__INIT;
        Im__OwnerAssigned o = IM__OWNER_ASSIGNED__INIT;

        if (a == NULL || a->incident == NULL || a->token == 0)
            continue;
        if ((rv = known(txn, j, a->incident)) <= 0) {
            if (rv < 0)
                return rv;
            continue;
        }
        if (j->inc->owner_token >= a->token)
            continue;
        if (strcmp(str_or_empty(a->owner_site), site) != 0 &&
            strcmp(j->inc->origin_site, site) != 0 &&
            strcmp(j->inc->owner_site, site) != 0)
            continue;
        o.site = a->owner_site;
        o.manager = a->manager;
        o.token = a->token;
        o.reason = a->reason;
        body.kind_case = IM__BODY__KIND_OWNER;
        body.owner = &o;
        if ((rv = record(cs, j, a->incident, &body, "assignment")) != 0)
            return rv;
    }
    /* Major incidents that name this site: record the declaration once. */
    for (size_t i = 0; i < h->n_majors; i++) {
        const Im__MajorNotice *m = h->majors[i];
        Im__Body body = IM__BODY__INIT;
        Im__MajorDeclared md = IM__MAJOR_DECLARED__INIT;

        if (m == NULL || m->incident == NULL)
            continue;
        if ((rv = known(txn, j, m->incident)) <= 0) {
            if (rv < 0)
                return rv;
            continue;
        }
        if (j->inc->major)
            continue;
        md.major = 1;
        md.reason = m->reason;
        md.affects = m->affects;
        md.n_affects = m->n_affects;
        body.kind_case = IM__BODY__KIND_MAJOR;
        body.major = &md;
        if ((rv = record(cs, j, m->incident, &body, "major declaration")) != 0)
            return rv;
    }
    /* Pages for this site's team: record each once (the notifier sends
     * them through this site's [notify] channels). */
    for (size_t i = 0; i < h->n_escalations; i++) {
        const Im__EscalationNotice *n = h->escalations[i];
        Im__Body body = IM__BODY__INIT;
        int found;

        if (n == NULL || n->incident == NULL || n->page == NULL ||
            strcmp(str_or_empty(n->page->site), site) != 0)
            continue;
        if ((rv = known(txn, j, n->incident)) <= 0) {
            if (rv < 0)
                return rv;
            continue;
        }
        if ((rv = page_recorded(txn, j->c->store, n->incident,
                                str_or_empty(n->page->notice), &found)) != 0)
            return rv;
        if (found)
            continue;
        body.kind_case = IM__BODY__KIND_ESCALATED;
        body.escalated = n->page;
        if ((rv = record(cs, j, n->incident, &body, "page")) != 0)
            return rv;
    }
    return 0;
}

static int
reply_step(struct commit_step *cs, void *arg)
{
    return reply_walk(cs->t->txn, arg, cs);
}

/* Records in the log what a leader's reply decided for this site. */
static void
reply_record(struct coordlink *l, const Im__HeartbeatReply *h)
{
    struct reply_job j = {.c = l->all, .h = h};
    int rv;

    if (!h->leader ||
        h->n_assignments + h->n_majors + h->n_escalations == 0)
        return;
    if ((j.inc = malloc(sizeof *j.inc)) == NULL)
        return;
    /* Most replies repeat what the log already holds: find out with a
     * read transaction, and take the writer only when something is new. */
    {
        MDB_txn *txn;
        struct im_err e = {0};
        if ((rv = store_read_begin(l->all->store, &txn, &e)) == 0) {
            rv = reply_walk(txn, &j, NULL);
            store_read_end(txn);
        }
        if (rv == 0 && j.recorded == 0) {
            free(j.inc);
            return;
        }
    }
    rv = commit_run(l->all->commit, "coordinator", reply_step, &j);
    if (rv == 0)
        atomic_fetch_add(&l->all->recorded, j.recorded);
    if (rv == 0 && j.recorded > 0) {
        /* The next heartbeat shows what was recorded (notices, owners). */
        pthread_mutex_lock(&l->all->cache_mu);
        l->all->cache_valid = 0;
        pthread_mutex_unlock(&l->all->cache_mu);
    }
    if (rv != 0 && rv != IM_ECLOSED)
        log_warn("coordinator %s: recording its decisions failed: %s (retried "
                 "with the next heartbeat)",
                 l->coord->id, im_strerror(rv));
    free(j.inc);
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
    if (r->heartbeat != NULL)
        reply_record(l, r->heartbeat);
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

void
coordlinks_init(struct coordlinks *c, const struct config *cfg,
                struct store *store, struct committer *commit,
                const struct im_key *key)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->cache_mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->cfg = cfg;
    c->store = store;
    c->commit = commit;
    c->key = key;
    c->lease_ms = COORD_LEASE_MS_DEFAULT;
    config_cluster_id(cfg, c->cluster_id);
    store->owner_gate = coordlinks_owner_gate;
    store->owner_gate_arg = c;
}

int
coordlinks_start(struct coordlinks *c, struct im_err *e)
{
    const struct config *cfg = c->cfg;
    int rv;

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
        c->links[i].thread_started = 0;
        link_dial_fini(&c->links[i].dial);
    }
    pthread_mutex_lock(&c->mu);
    c->links_count = 0;
    pthread_mutex_unlock(&c->mu);
}

void
coordlinks_fini(struct coordlinks *c)
{
    summaries_free(&c->cache);
    pthread_mutex_destroy(&c->cache_mu);
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

int
coordlinks_owner_gate(void *arg, const struct incident *inc, struct im_err *e)
{
    struct coordlinks *c = arg;
    uint64_t until, now;

    /* Without a coordinator, and for an incident no coordinator has
     * assigned yet, the site acts on its provisional ownership
     * (DESIGN.md §5: a node that reaches no coordinator keeps working). */
    if (c->cfg->coordinators_count == 0 || inc->owner_token == 0)
        return 0;
    pthread_mutex_lock(&c->mu);
    until = c->lease_until_mono_ms;
    pthread_mutex_unlock(&c->mu);
    now = clock_mono_ms();
    if (until > now)
        return 0;
    if (until == 0)
        return im_errf(e, IM_ENOLEASE,
                       "%s: no coordinator leader has granted site %s a lease "
                       "since this node started, so it cannot act as the "
                       "owner yet (owner token %" PRIu64 "); notes are "
                       "accepted",
                       inc->id, c->cfg->node.site, inc->owner_token);
    return im_errf(e, IM_ENOLEASE,
                   "%s: site %s's coordinator lease expired %" PRIu64
                   " ms ago; its incidents may have moved to another site, so "
                   "owner-only actions wait until a coordinator leader renews "
                   "the lease (`imctl sites` shows it); notes are accepted",
                   inc->id, c->cfg->node.site, now - until);
}

void
coordlinks_metrics(void *arg, struct metrics_out *o)
{
    struct coordlinks *c = arg;
    uint64_t now = clock_mono_ms(), until;
    struct {
        char id[COORD_ID_MAX + 1];
        int connected, leader;
    } st[COORDINATORS_MAX];
    size_t n;

    pthread_mutex_lock(&c->mu);
    until = c->lease_until_mono_ms;
    n = c->links_count;
    for (size_t i = 0; i < n; i++) {
        snprintf(st[i].id, sizeof st[i].id, "%s", c->links[i].coord->id);
        st[i].connected = c->links[i].connected;
        st[i].leader = c->links[i].leader;
    }
    pthread_mutex_unlock(&c->mu);
    if (c->cfg->coordinators_count == 0)
        return;
    metrics_family(o, "im_coord_lease_held", "gauge",
                   "1 while the site holds a live coordinator lease (it may "
                   "act as owner of assigned incidents).");
    metrics_sample(o, "im_coord_lease_held", until > now, NULL);
    metrics_family(o, "im_coord_lease_remaining_ms", "gauge",
                   "Milliseconds left on the site lease by this node's clock.");
    metrics_sample(o, "im_coord_lease_remaining_ms", until > now ? until - now : 0,
                   NULL);
    metrics_family(o, "im_coord_replica_up", "gauge",
                   "1 if the last heartbeat to the coordinator replica was "
                   "answered.");
    for (size_t i = 0; i < n; i++)
        metrics_sample(o, "im_coord_replica_up", (uint64_t)st[i].connected,
                       "replica", st[i].id, NULL);
    metrics_family(o, "im_coord_replica_leader", "gauge",
                   "1 if the replica said it leads in its last reply.");
    for (size_t i = 0; i < n; i++)
        metrics_sample(o, "im_coord_replica_leader", (uint64_t)st[i].leader,
                       "replica", st[i].id, NULL);
    metrics_family(o, "im_coord_recorded_total", "counter",
                   "Events recorded from the leader's decisions (assignments, "
                   "major declarations, pages).");
    metrics_sample(o, "im_coord_recorded_total", atomic_load(&c->recorded), NULL);
    metrics_family(o, "im_coord_refused_total", "counter",
                   "Decisions of the leader the fold refused to record.");
    metrics_sample(o, "im_coord_refused_total", atomic_load(&c->refused), NULL);
}
