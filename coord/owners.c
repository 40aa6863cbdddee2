/* owners: see owners.h. */
#include "owners.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"

/* Incidents one txn decides: each takes a compare (plus the leader's) and
 * up to two puts. */
#define OWNERS_TXN_INCIDENTS ((ETCD_TXN_OPS_MAX - 1) / 2)

/* ---- reading ------------------------------------------------------------- */

int
owners_read(struct replica *r, const char *const *ids, size_t n,
            struct assignment_record *out, int *found, struct im_err *e)
{
    for (size_t base = 0; base < n; base += ETCD_TXN_OPS_MAX) {
        size_t m = n - base < ETCD_TXN_OPS_MAX ? n - base : ETCD_TXN_OPS_MAX;
        struct etcd_op ops[ETCD_TXN_OPS_MAX];
        char keys[ETCD_TXN_OPS_MAX][RECORDS_KEY_MAX + 1];
        struct etcd_txn_result res;
        int rv;

        for (size_t i = 0; i < m; i++) {
            records_key(keys[i], r->cfg->etcd.prefix, "assign", ids[base + i]);
            ops[i] = (struct etcd_op){.kind = ETCD_OP_RANGE, .key = keys[i]};
        }
        if ((rv = etcd_txn(&r->etcd, NULL, 0, ops, m, NULL, 0, &res, e)) != 0)
            return rv;
        for (size_t i = 0; i < m; i++) {
            struct im_err de = {0};
            found[base + i] = 0;
            if (i >= res.ranges_count || res.ranges[i].count != 1)
                continue;
            if (records_assignment_decode(res.ranges[i].kvs[0].value,
                                          res.ranges[i].kvs[0].value_size,
                                          &out[base + i], &de) != 0) {
                log_warn("%s: %s", keys[i], im_errmsg(&de));
                continue;
            }
            out[base + i].token = (uint64_t)res.ranges[i].kvs[0].mod_revision;
            found[base + i] = 1;
        }
        etcd_txn_result_free(&res);
    }
    return 0;
}

/* The table's form of an assignment record; site -1 if the record names
 * a site this cluster does not have. */
static void
owner_of(const struct replica *r, const struct assignment_record *a,
         struct openset_owner *o)
{
    memset(o, 0, sizeof *o);
    o->site = replica_site_index(r, a->owner_site);
    o->token = a->token;
    memcpy(o->manager, a->manager, sizeof o->manager);
    memcpy(o->reason, a->reason, sizeof o->reason);
    o->assigned_at_ms = a->assigned_at_ms;
}

/* Under mu: records what etcd says of x's owner. */
static void
set_owner_locked(struct replica *r, struct openset_entry *x,
                 const struct assignment_record *a)
{
    struct openset_owner o;
    struct im_err e = {0};
    owner_of(r, a, &o);
    if (o.site < 0)
        log_warn("%s: owned by %s, which is not a site of this cluster",
                 a->incident, a->owner_site);
    if (openset_set_owner(x, &o, &e) != 0)
        log_warn("%s: %s", a->incident, im_errmsg(&e));
}

/* Reads ids[0..n) from etcd and records each found owner in the table
 * (checked = 1; owner cleared where etcd has none). */
static int
refresh(struct replica *r, char (*ids)[INCIDENT_ID_MAX + 1], size_t n,
        struct im_err *e)
{
    const char **p = calloc(n ? n : 1, sizeof *p);
    struct assignment_record *recs = calloc(n ? n : 1, sizeof *recs);
    int *found = calloc(n ? n : 1, sizeof *found);
    int rv;

    if (p == NULL || recs == NULL || found == NULL) {
        rv = im_errf(e, IM_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        p[i] = ids[i];
    if ((rv = owners_read(r, p, n, recs, found, e)) != 0)
        goto out;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < n; i++) {
        struct openset_entry *x = openset_find(&r->open, ids[i]);
        if (x == NULL)
            continue;
        x->checked = 1;
        if (found[i]) {
            set_owner_locked(r, x, &recs[i]);
        } else {
            free(x->owner);
            x->owner = NULL;
        }
    }
    pthread_mutex_unlock(&r->mu);
out:
    free(p);
    free(recs);
    free(found);
    return rv;
}

/* ---- what the heartbeats say ----------------------------------------------
 */

static int
origin_index(void *arg, const char *id)
{
    struct replica *r = arg;
    char site[SITE_CODE_MAX + 1];
    if (strlen(id) > INCIDENT_ID_MAX || records_incident_origin(id, site) != 0)
        return -1;
    return replica_site_index(r, site);
}

void
owners_observe(struct replica *r, int site, const Im__Heartbeat *h)
{
    struct openset_summary *items =
        calloc(h->n_open ? h->n_open : 1, sizeof *items);
    size_t skipped = 0;

    if (items == NULL)
        return;
    for (size_t i = 0; i < h->n_open; i++) {
        const Im__IncidentSummary *s = h->open[i];
        items[i] = (struct openset_summary){
            .id = s->id,
            .service = s->service,
            .priority = s->priority,
            .state = (int)s->state,
            .owner_site = s->owner_site,
            .owner_token = s->owner_token,
        };
    }
    pthread_mutex_lock(&r->mu);
    openset_heartbeat(&r->open, site, clock_wall_ms(), items, h->n_open,
                      h->open_count <= h->n_open, origin_index, r, &skipped);
    pthread_mutex_unlock(&r->mu);
    if (skipped > 0)
        log_warn("site %s: %zu incidents of its heartbeat not tracked",
                 r->sites[site].cfg->code, skipped);
    free(items);
}

/* ---- a new leader's load ------------------------------------------------- */

int
owners_load(struct replica *r, int64_t term, struct im_err *e)
{
    struct etcd_range rg;
    char(*ids)[INCIDENT_ID_MAX + 1] = NULL;
    size_t n = 0;
    uint64_t now = clock_wall_ms();
    int rv;

    if ((rv = etcd_range(&r->etcd, r->k_open, ETCD_PREFIX, 0, 0, &rg, e)) != 0)
        return rv;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->open.count; i++) {
        struct openset_entry *x = &r->open.v[i];
        x->recorded_open = 0;
        x->checked = 0;
        free(x->owner);
        x->owner = NULL;
    }
    openset_prune(&r->open);
    for (size_t k = 0; k < rg.count; k++) {
        struct open_record o;
        struct openset_entry *x;
        struct im_err de = {0};
        if (records_open_decode(rg.kvs[k].value, rg.kvs[k].value_size, &o,
                                &de) != 0) {
            log_warn("%s: %s: ignored", rg.kvs[k].key, im_errmsg(&de));
            continue;
        }
        if (openset_add(&r->open, o.incident, origin_index(r, o.incident), now,
                        &x, &de) != 0) {
            log_warn("%s: %s", rg.kvs[k].key, im_errmsg(&de));
            continue;
        }
        x->recorded_open = 1;
        if (x->listed == 0) { /* no fresher word from a heartbeat */
            memcpy(x->service, o.service, sizeof x->service);
            x->priority = o.priority;
        }
    }
    etcd_range_free(&rg);
    n = r->open.count;
    if ((ids = calloc(n ? n : 1, sizeof *ids)) != NULL)
        for (size_t i = 0; i < n; i++)
            memcpy(ids[i], r->open.v[i].id, sizeof ids[i]);
    pthread_mutex_unlock(&r->mu);
    if (ids == NULL)
        return im_errf(e, IM_ENOMEM, "out of memory");
    rv = refresh(r, ids, n, e);
    free(ids);
    if (rv != 0)
        return rv;
    pthread_mutex_lock(&r->mu);
    r->owners_loaded_term = (uint64_t)term;
    pthread_mutex_unlock(&r->mu);
    log_info("loaded %zu open incidents and their owners", n);
    return 0;
}

/* ---- elections ------------------------------------------------------------
 */

/* Under mu: the election's inputs now. down[i] (may be NULL): site i is
 * recorded down. */
static int
env_locked(struct replica *r, struct openset_env *env, int *down,
           struct im_err *e)
{
    struct openset_health h[SITES_MAX];
    uint32_t load[SITES_MAX];

    for (size_t i = 0; i < r->sites_count; i++) {
        const struct coord_site *s = &r->sites[i];
        h[i].code = s->cfg->code;
        h[i].up = s->rec.state == SITE_UP;
        h[i].last_heard_ms =
            s->heard ? s->last_wall_ms : s->rec.last_heartbeat_ms;
        if (down != NULL)
            down[i] = s->rec.state == SITE_DOWN;
    }
    openset_load(&r->open, load);
    return openset_env_build(env, h, r->sites_count, r->cfg->coord.lease_ms,
                             load, r->sched, clock_wall_ms(), e);
}

static void
record_from(struct replica *r, const char *id, const struct elect_result *res,
            int64_t term, struct assignment_record *a)
{
    memset(a, 0, sizeof *a);
    snprintf(a->incident, sizeof a->incident, "%s", id);
    memcpy(a->owner_site, res->site, sizeof a->owner_site);
    memcpy(a->manager, res->manager, sizeof a->manager);
    memcpy(a->reason, res->reason, sizeof a->reason);
    a->assigned_at_ms = clock_wall_ms();
    snprintf(a->by, sizeof a->by, "%s", r->self->id);
    a->term = term;
}

/* One batch of decisions: for each k, put assign[k] (compare: create == 0
 * if token[k] == 0, else mod == token[k]) and, if open[k], P/open/ID. On
 * success *rev_out is the new token. */
static int
write_batch(struct replica *r, const struct assignment_record *assign,
            const uint64_t *token, const struct open_record *open, size_t m,
            int64_t *rev_out, struct im_err *e)
{
    struct etcd_cmp cmps[OWNERS_TXN_INCIDENTS];
    struct etcd_op ops[2 * OWNERS_TXN_INCIDENTS];
    char akeys[OWNERS_TXN_INCIDENTS][RECORDS_KEY_MAX + 1];
    char okeys[OWNERS_TXN_INCIDENTS][RECORDS_KEY_MAX + 1];
    char *values[2 * OWNERS_TXN_INCIDENTS];
    size_t nops = 0;
    int rv = 0;

    for (size_t k = 0; k < m; k++) {
        records_key(akeys[k], r->cfg->etcd.prefix, "assign",
                    assign[k].incident);
        cmps[k] = (struct etcd_cmp){.key = akeys[k],
                                    .target = token[k] == 0 ? ETCD_CMP_CREATE
                                                            : ETCD_CMP_MOD,
                                    .result = ETCD_EQUAL,
                                    .number = (int64_t)token[k]};
        if ((values[nops] = records_assignment_encode(&assign[k])) == NULL) {
            rv = im_errf(e, IM_ENOMEM, "out of memory");
            goto out;
        }
        ops[nops] = (struct etcd_op){.kind = ETCD_OP_PUT,
                                     .key = akeys[k],
                                     .value = values[nops],
                                     .value_size = strlen(values[nops])};
        nops++;
        if (open == NULL || open[k].incident[0] == '\0')
            continue;
        records_key(okeys[k], r->cfg->etcd.prefix, "open", open[k].incident);
        if ((values[nops] = records_open_encode(&open[k])) == NULL) {
            rv = im_errf(e, IM_ENOMEM, "out of memory");
            goto out;
        }
        ops[nops] = (struct etcd_op){.kind = ETCD_OP_PUT,
                                     .key = okeys[k],
                                     .value = values[nops],
                                     .value_size = strlen(values[nops])};
        nops++;
    }
    rv = replica_txn(r, cmps, m, ops, nops, rev_out, e);
out:
    for (size_t k = 0; k < nops; k++)
        free(values[k]);
    return rv;
}

/* Under mu: after a successful batch, the table follows etcd. */
static void
apply_batch_locked(struct replica *r, const struct assignment_record *assign,
                   size_t m, int opened, int64_t rev)
{
    for (size_t k = 0; k < m; k++) {
        struct openset_entry *x = openset_find(&r->open, assign[k].incident);
        struct assignment_record a = assign[k];
        if (x == NULL)
            continue;
        a.token = (uint64_t)rev;
        set_owner_locked(r, x, &a);
        x->checked = 1;
        x->confirmed = 0;
        if (opened)
            x->recorded_open = 1;
    }
}

void
owners_assign(struct replica *r, int site)
{
    char(*unchecked)[INCIDENT_ID_MAX + 1] = NULL;
    struct assignment_record *assign = NULL;
    struct open_record *open = NULL;
    uint64_t tokens[OWNERS_TXN_INCIDENTS] = {0};
    struct openset_env env;
    struct im_err e = {0};
    uint64_t bit = (uint64_t)1 << site;
    size_t nu = 0, m = 0;
    int64_t term = 0, rev = 0;
    int rv;

    if (!replica_leading(r, &term, NULL, NULL))
        return;
    /* Incidents with no owner known: read etcd first (an earlier term may
     * have decided), at most one txn's worth per heartbeat. */
    unchecked = calloc(ETCD_TXN_OPS_MAX, sizeof *unchecked);
    assign = calloc(OWNERS_TXN_INCIDENTS, sizeof *assign);
    open = calloc(OWNERS_TXN_INCIDENTS, sizeof *open);
    if (unchecked == NULL || assign == NULL || open == NULL)
        goto out;
    pthread_mutex_lock(&r->mu);
    if (r->owners_loaded_term != (uint64_t)term) {
        pthread_mutex_unlock(&r->mu);
        goto out;
    }
    for (size_t i = 0; i < r->open.count && nu < ETCD_TXN_OPS_MAX; i++) {
        const struct openset_entry *x = &r->open.v[i];
        if ((x->listed & bit) && x->open && x->owner == NULL && !x->checked)
            memcpy(unchecked[nu++], x->id, sizeof unchecked[0]);
    }
    pthread_mutex_unlock(&r->mu);
    if (nu > 0 && (rv = refresh(r, unchecked, nu, &e)) != 0) {
        log_warn("reading owners: %s", im_errmsg(&e));
        goto out;
    }
    /* Those still without one are elected. Not while the reporting site
     * is not recorded up yet (it just came back): the next heartbeat, a
     * tick later, elects with it up, so its own incidents stay with it. */
    pthread_mutex_lock(&r->mu);
    if (r->sites[site].rec.state != SITE_UP ||
        env_locked(r, &env, NULL, &e) != 0) {
        pthread_mutex_unlock(&r->mu);
        goto out;
    }
    for (size_t i = 0; i < r->open.count && m < OWNERS_TXN_INCIDENTS; i++) {
        const struct openset_entry *x = &r->open.v[i];
        struct elect_result res;
        struct im_err ee = {0};
        int to;

        if (!(x->listed & bit) || !x->open || x->owner != NULL || !x->checked)
            continue;
        if (openset_elect(&env, &r->open, x, &res, &ee) != 0) {
            log_warn("%s: no owner elected: %s", x->id, im_errmsg(&ee));
            continue;
        }
        record_from(r, x->id, &res, term, &assign[m]);
        snprintf(open[m].incident, sizeof open[m].incident, "%s", x->id);
        memcpy(open[m].service, x->service, sizeof open[m].service);
        open[m].priority = x->priority;
        open[m].since_ms = clock_wall_ms();
        tokens[m] = 0;
        m++;
        for (to = 0; to < (int)env.sites_count; to++)
            if (strcmp(env.sites[to].code, res.site) == 0)
                env.sites[to].load++;
    }
    pthread_mutex_unlock(&r->mu);
    openset_env_free(&env);
    if (m == 0)
        goto out;
    rv = write_batch(r, assign, tokens, open, m, &rev, &e);
    if (rv != 0) {
        /* Another worker (the owner's heartbeat) decided first: read what
         * it decided next time. */
        pthread_mutex_lock(&r->mu);
        for (size_t k = 0; k < m; k++) {
            struct openset_entry *x =
                openset_find(&r->open, assign[k].incident);
            if (x != NULL && x->owner == NULL)
                x->checked = 0;
        }
        pthread_mutex_unlock(&r->mu);
        if (rv != IM_ENOTLEADER)
            log_debug("recording owners: %s", im_errmsg(&e));
        goto out;
    }
    pthread_mutex_lock(&r->mu);
    apply_batch_locked(r, assign, m, 1, rev);
    pthread_mutex_unlock(&r->mu);
    for (size_t k = 0; k < m; k++)
        log_info("%s: owner %s (token %lld): %s", assign[k].incident,
                 assign[k].owner_site, (long long)rev, assign[k].reason);
out:
    free(unchecked);
    free(assign);
    free(open);
}

/* ---- the leader's tick: failover, closures --------------------------------
 */

/* Records closures (delete P/open/ID) and reopenings or missing records
 * (put P/open/ID), one txn's worth per tick. */
static void
record_open_states(struct replica *r, const int *up)
{
    struct etcd_op ops[ETCD_TXN_OPS_MAX - 1];
    char keys[ETCD_TXN_OPS_MAX - 1][RECORDS_KEY_MAX + 1];
    char *values[ETCD_TXN_OPS_MAX - 1] = {0};
    char ids[ETCD_TXN_OPS_MAX - 1][INCIDENT_ID_MAX + 1];
    int puts[ETCD_TXN_OPS_MAX - 1];
    size_t m = 0;
    struct im_err e = {0};
    int rv;

    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->open.count && m < ETCD_TXN_OPS_MAX - 1; i++) {
        struct openset_entry *x = &r->open.v[i];
        if (x->open && openset_is_closed(&r->open, x, up)) {
            x->open = 0;
            log_info("%s: closed (no longer listed by its origin or owner)",
                     x->id);
        }
        if (x->open == x->recorded_open || (x->open && x->owner == NULL))
            continue;
        records_key(keys[m], r->cfg->etcd.prefix, "open", x->id);
        memcpy(ids[m], x->id, sizeof ids[m]);
        puts[m] = x->open;
        if (x->open) {
            struct open_record o = {.priority = x->priority,
                                    .since_ms = clock_wall_ms()};
            memcpy(o.incident, x->id, sizeof o.incident);
            memcpy(o.service, x->service, sizeof o.service);
            if ((values[m] = records_open_encode(&o)) == NULL)
                break;
            ops[m] = (struct etcd_op){.kind = ETCD_OP_PUT,
                                      .key = keys[m],
                                      .value = values[m],
                                      .value_size = strlen(values[m])};
        } else {
            ops[m] = (struct etcd_op){.kind = ETCD_OP_DELETE, .key = keys[m]};
        }
        m++;
    }
    pthread_mutex_unlock(&r->mu);
    if (m == 0)
        return;
    rv = replica_txn(r, NULL, 0, ops, m, NULL, &e);
    for (size_t k = 0; k < m; k++)
        free(values[k]);
    if (rv != 0) {
        log_debug("recording open incidents: %s", im_errmsg(&e));
        return;
    }
    pthread_mutex_lock(&r->mu);
    for (size_t k = 0; k < m; k++) {
        struct openset_entry *x = openset_find(&r->open, ids[k]);
        if (x != NULL)
            x->recorded_open = puts[k];
    }
    openset_prune(&r->open);
    pthread_mutex_unlock(&r->mu);
}

void
owners_tick(struct replica *r)
{
    struct openset_move *moves = NULL;
    struct assignment_record *assign = NULL;
    uint64_t tokens[OWNERS_TXN_INCIDENTS];
    char(*ids)[INCIDENT_ID_MAX + 1] = NULL;
    int up[SITES_MAX], down[SITES_MAX];
    struct openset_env env;
    struct im_err e = {0};
    size_t m = 0;
    int more = 0, rv, grace_over;
    int64_t term = 0, rev = 0;

    if (!replica_leading(r, &term, NULL, NULL))
        return;
    moves = calloc(OWNERS_TXN_INCIDENTS, sizeof *moves);
    assign = calloc(OWNERS_TXN_INCIDENTS, sizeof *assign);
    ids = calloc(OWNERS_TXN_INCIDENTS, sizeof *ids);
    if (moves == NULL || assign == NULL || ids == NULL)
        goto out;
    pthread_mutex_lock(&r->mu);
    if (r->owners_loaded_term != (uint64_t)term) {
        pthread_mutex_unlock(&r->mu);
        goto out;
    }
    /* A new leader moves nothing during its first lease: until then a
     * site may hold a lease the previous leader granted (docs/
     * coordinator.md "Liveness timing"). */
    grace_over =
        clock_mono_ms() - r->leader_since_mono_ms >= r->cfg->coord.lease_ms;
    if (!grace_over || env_locked(r, &env, down, &e) != 0) {
        pthread_mutex_unlock(&r->mu);
        goto out;
    }
    for (size_t i = 0; i < r->sites_count; i++)
        up[i] = env.sites[i].up;
    rv = openset_failover(&env, &r->open, down, moves, OWNERS_TXN_INCIDENTS, &m,
                          &more, &e);
    for (size_t k = 0; rv == 0 && k < m; k++) {
        const struct openset_entry *x = &r->open.v[moves[k].index];
        record_from(r, x->id, &moves[k].result, term, &assign[k]);
        tokens[k] = x->owner->token;
        memcpy(ids[k], x->id, sizeof ids[k]);
    }
    pthread_mutex_unlock(&r->mu);
    openset_env_free(&env);
    if (rv != 0) {
        log_debug("failover: %s", im_errmsg(&e));
        m = 0;
    }
    if (m > 0) {
        rv = write_batch(r, assign, tokens, NULL, m, &rev, &e);
        if (rv == 0) {
            pthread_mutex_lock(&r->mu);
            apply_batch_locked(r, assign, m, 0, rev);
            pthread_mutex_unlock(&r->mu);
            for (size_t k = 0; k < m; k++)
                log_info("%s: failover to %s (token %lld): %s",
                         assign[k].incident, assign[k].owner_site,
                         (long long)rev, assign[k].reason);
        } else if (rv != IM_ENOTLEADER && e.code != IM_ENOTLEADER) {
            /* A decision landed meanwhile (a reassign): read them again;
             * the next tick retries with what etcd holds. */
            log_info("failover batch not applied: %s; re-reading",
                     im_errmsg(&e));
            refresh(r, ids, m, &e);
        }
    }
    record_open_states(r, up);
out:
    free(moves);
    free(assign);
    free(ids);
}

/* ---- operators ------------------------------------------------------------
 */

int
owners_move(struct replica *r, const char *id, const char *to_site,
            const char *manager, const char *why, int handback,
            const char *operator_name, struct assignment_record *out,
            struct im_err *e)
{
    struct assignment_record cur, a;
    char origin[SITE_CODE_MAX + 1], person[PERSON_MAX + 1], mline[160];
    int found = 0, is_global = 0, to, rv;
    int64_t term = 0, rev = 0;
    enum site_state st;
    uint64_t tok;
    struct open_record none = {0};

    if (records_incident_origin(id, origin) != 0)
        return im_errf(e, IM_EINVAL,
                       "'%.40s' is not an incident id (SITE-N, e.g. AMS-42)",
                       id);
    if (handback)
        to_site = origin;
    if ((to = replica_site_index(r, to_site)) < 0)
        return im_errf(e, IM_EINVAL, "no site '%.16s' in this cluster",
                       to_site);
    if (!replica_leading(r, &term, NULL, NULL))
        return im_errf(e, IM_ENOTLEADER, "replica %s is not the leader",
                       r->self->id);
    if ((rv = owners_read(r, &id, 1, &cur, &found, e)) != 0)
        return rv;
    if (!found)
        return im_errf(e, IM_ENOTFOUND,
                       "no owner recorded for %s yet (its site has not "
                       "reported it in a heartbeat)",
                       id);
    if (strcmp(cur.owner_site, to_site) == 0)
        return im_errf(e, IM_ESTATE, "%s is owned by %s already (token %llu)%s",
                       id, to_site, (unsigned long long)cur.token,
                       handback ? ": nothing to hand back" : "");
    pthread_mutex_lock(&r->mu);
    st = r->sites[to].rec.state;
    if (st == SITE_UP && manager[0] == '\0')
        openset_manager(r->sched, to_site, clock_wall_ms(), person, &is_global);
    pthread_mutex_unlock(&r->mu);
    if (st != SITE_UP)
        return im_errf(e, IM_ESTATE,
                       "site %s is %s: it cannot act as owner now (imctl "
                       "sites shows why)",
                       to_site, records_site_state_name(st));
    if (manager[0] != '\0') {
        snprintf(person, sizeof person, "%s", manager);
        snprintf(mline, sizeof mline, "manager %s named by the operator",
                 person);
    } else if (person[0] == '\0') {
        snprintf(mline, sizeof mline,
                 "nobody is on call at %s and there is no global incident "
                 "manager on call",
                 to_site);
    } else if (is_global) {
        snprintf(mline, sizeof mline,
                 "nobody is on call at %s, so %s, the global incident "
                 "manager",
                 to_site, person);
    } else {
        snprintf(mline, sizeof mline, "%s is on call at %s", person, to_site);
    }
    memset(&a, 0, sizeof a);
    snprintf(a.incident, sizeof a.incident, "%s", id);
    snprintf(a.owner_site, sizeof a.owner_site, "%s", to_site);
    snprintf(a.manager, sizeof a.manager, "%s", person);
    snprintf(a.reason, sizeof a.reason, "%s by operator %s%s%s; %s",
             handback ? "handed back" : "reassigned", operator_name,
             why[0] ? ": " : "", why, mline);
    a.assigned_at_ms = clock_wall_ms();
    snprintf(a.by, sizeof a.by, "%s", r->self->id);
    a.term = term;
    tok = cur.token;
    if ((rv = write_batch(r, &a, &tok, &none, 1, &rev, e)) != 0) {
        if (rv == IM_ESTALE && e->code == IM_ESTALE &&
            strstr(e->msg, "deposed") == NULL)
            return im_errf(e, IM_ESTALE,
                           "%s changed while this was decided (another "
                           "decision landed first): try again",
                           id);
        return rv;
    }
    a.token = (uint64_t)rev;
    pthread_mutex_lock(&r->mu);
    {
        struct openset_entry *x = openset_find(&r->open, id);
        if (x != NULL) {
            set_owner_locked(r, x, &a);
            x->checked = 1;
            x->confirmed = 0;
        }
    }
    pthread_mutex_unlock(&r->mu);
    log_info("%s: owner %s -> %s (token %llu) by %s", id, cur.owner_site,
             to_site, (unsigned long long)a.token, operator_name);
    *out = a;
    return 0;
}

/* ---- heartbeat replies ----------------------------------------------------
 */

int
owners_for_site(struct replica *r, int site, struct assignment_record **out,
                size_t *count, struct im_err *e)
{
    struct assignment_record *v;
    size_t n = 0, cap;

    *out = NULL;
    *count = 0;
    pthread_mutex_lock(&r->mu);
    /* Sized to what names the site: most heartbeats carry a few. */
    for (size_t i = 0; i < r->open.count; i++) {
        const struct openset_entry *x = &r->open.v[i];
        if (x->open && x->owner != NULL && x->owner->site >= 0 &&
            (x->owner->site == site || x->origin == site))
            n++;
    }
    if (n > COORD_REPLY_ASSIGNMENTS_MAX)
        n = COORD_REPLY_ASSIGNMENTS_MAX;
    v = calloc(n ? n : 1, sizeof *v);
    if (v == NULL) {
        pthread_mutex_unlock(&r->mu);
        return im_errf(e, IM_ENOMEM, "out of memory");
    }
    cap = n;
    n = 0;
    /* First what the site has not confirmed as owner, then the incidents
     * it raised that others own, then the rest. */
    for (int pass = 0; pass < 3; pass++)
        for (size_t i = 0; i < r->open.count && n < cap; i++) {
            const struct openset_entry *x = &r->open.v[i];
            const struct openset_owner *o = x->owner;
            int mine, want;
            if (!x->open || o == NULL || o->site < 0)
                continue;
            mine = o->site == site;
            if (!mine && x->origin != site)
                continue;
            want = pass == 0   ? mine && x->confirmed < o->token
                   : pass == 1 ? !mine
                               : mine && x->confirmed >= o->token;
            if (!want)
                continue;
            struct assignment_record *a = &v[n++];
            snprintf(a->incident, sizeof a->incident, "%s", x->id);
            snprintf(a->owner_site, sizeof a->owner_site, "%s",
                     r->sites[o->site].cfg->code);
            memcpy(a->manager, o->manager, sizeof a->manager);
            memcpy(a->reason, o->reason, sizeof a->reason);
            a->assigned_at_ms = o->assigned_at_ms;
            a->token = o->token;
        }
    pthread_mutex_unlock(&r->mu);
    *out = v;
    *count = n;
    return 0;
}
