/* replica: see replica.h. */
#include "replica.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "owners.h"
#include "schedstore.h"

static uint64_t
ttl_ms(const struct replica *r)
{
    return r->cfg->coord.leader_ttl_s * 1000;
}

/* Under mu. */
static int
leading_locked(const struct replica *r, uint64_t now)
{
    return r->leader && now - r->lease_ok_mono_ms < ttl_ms(r);
}

int
replica_leading(struct replica *r, int64_t *term, char *leader_id,
                char *leader_api)
{
    int yes;
    pthread_mutex_lock(&r->mu);
    yes = leading_locked(r, clock_mono_ms());
    if (term != NULL)
        *term = yes ? r->term : r->leader_term;
    if (leader_id != NULL)
        memcpy(leader_id, r->leader_id, sizeof r->leader_id);
    if (leader_api != NULL)
        memcpy(leader_api, r->leader_api, sizeof r->leader_api);
    pthread_mutex_unlock(&r->mu);
    return yes;
}

int
replica_site_index(const struct replica *r, const char *code)
{
    for (size_t i = 0; i < r->sites_count; i++)
        if (strcmp(r->sites[i].cfg->code, code) == 0)
            return (int)i;
    return -1;
}

void
replica_heartbeat(struct replica *r, int i, uint32_t open, uint32_t owned)
{
    struct coord_site *s = &r->sites[i];
    pthread_mutex_lock(&r->mu);
    s->heard = 1;
    s->last_mono_ms = clock_mono_ms();
    s->last_wall_ms = clock_wall_ms();
    s->heartbeats++;
    s->open = open;
    s->owned = owned;
    pthread_mutex_unlock(&r->mu);
}

/* Under mu. */
static void
step_down(struct replica *r, const char *why)
{
    if (r->leader)
        log_warn("no longer the leader (term %lld): %s", (long long)r->term,
                 why);
    r->leader = 0;
    r->term = 0;
    if (strcmp(r->leader_id, r->self->id) == 0)
        r->leader_id[0] = r->leader_api[0] = '\0';
}

int
replica_txn(struct replica *r, const struct etcd_cmp *cmp, size_t cmp_count,
            const struct etcd_op *ops, size_t ops_count, int64_t *revision_out,
            struct im_err *e)
{
    struct etcd_cmp all[ETCD_TXN_OPS_MAX];
    struct etcd_txn_result res;
    int64_t term;
    int rv;

    if (cmp_count + 1 > ETCD_TXN_OPS_MAX)
        return im_errf(e, IM_ETOOBIG, "more than %d compares",
                       ETCD_TXN_OPS_MAX - 1);
    pthread_mutex_lock(&r->mu);
    if (!leading_locked(r, clock_mono_ms())) {
        pthread_mutex_unlock(&r->mu);
        return im_errf(e, IM_ENOTLEADER, "replica %s is not the leader",
                       r->self->id);
    }
    term = r->term;
    pthread_mutex_unlock(&r->mu);
    all[0] = etcd_cmp_leader(r->k_leader, term);
    if (cmp_count > 0)
        memcpy(all + 1, cmp, cmp_count * sizeof *cmp);
    if ((rv = etcd_txn(&r->etcd, all, cmp_count + 1, ops, ops_count, NULL, 0,
                       &res, e)) != 0)
        return rv;
    if (!res.succeeded) {
        /* Which compare failed? Only the leader key says whether we were
         * deposed; the caller's own compares are its business. A read
         * error is not taken as deposition. */
        struct etcd_kv kv;
        struct im_err ge = {0};
        int grv = etcd_get(&r->etcd, r->k_leader, &kv, NULL, &ge);
        int deposed =
            grv == IM_ENOTFOUND || (grv == 0 && kv.create_revision != term);
        if (grv == 0)
            etcd_kv_free(&kv);
        etcd_txn_result_free(&res);
        if (deposed) {
            pthread_mutex_lock(&r->mu);
            if (r->leader && r->term == term)
                step_down(r, "a fenced write found another leader's term");
            r->deposed++;
            pthread_mutex_unlock(&r->mu);
            return im_errf(e, IM_ESTALE,
                           "deposed: term %lld is over; the write "
                           "was not applied",
                           (long long)term);
        }
        return im_errf(e, IM_ESTALE, "compare failed: the records changed");
    }
    if (revision_out != NULL)
        *revision_out = res.revision;
    etcd_txn_result_free(&res);
    return 0;
}

/* ---- the leader's liveness decisions ---- */

/* Loads the recorded site health, as a new leader. */
static int
load_sites(struct replica *r, struct im_err *e)
{
    struct etcd_range rg;
    int rv;

    if ((rv = etcd_range(&r->etcd, r->k_sites, ETCD_PREFIX, 0, 0, &rg, e)) != 0)
        return rv;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->sites_count; i++)
        memset(&r->sites[i].rec, 0, sizeof r->sites[i].rec);
    for (size_t k = 0; k < rg.count; k++) {
        const char *code = rg.kvs[k].key + strlen(r->k_sites);
        int i = replica_site_index(r, code);
        struct site_record rec;
        struct im_err de = {0};
        if (i < 0)
            continue; /* a site no longer configured */
        if (records_site_decode(rg.kvs[k].value, rg.kvs[k].value_size, &rec,
                                &de) != 0) {
            log_warn("%s: %s: treated as unknown", rg.kvs[k].key,
                     im_errmsg(&de));
            continue;
        }
        r->sites[i].rec = rec;
    }
    pthread_mutex_unlock(&r->mu);
    etcd_range_free(&rg);
    return 0;
}

/* One liveness tick of the leader: decides each site's state and writes
 * what changed in one fenced txn. */
static void
liveness_tick(struct replica *r)
{
    struct etcd_op ops[SITES_MAX];
    struct site_record next[SITES_MAX];
    char keys[SITES_MAX][RECORDS_KEY_MAX + 1];
    char *values[SITES_MAX];
    int changed[SITES_MAX];
    size_t n = 0;
    uint64_t now = clock_mono_ms(), wall = clock_wall_ms();
    uint64_t lease = r->cfg->coord.lease_ms;
    struct im_err e = {0};
    int64_t term;
    int rv;

    pthread_mutex_lock(&r->mu);
    if (!leading_locked(r, now)) {
        pthread_mutex_unlock(&r->mu);
        return;
    }
    term = r->term;
    for (size_t i = 0; i < r->sites_count; i++) {
        struct coord_site *s = &r->sites[i];
        struct site_record rec = s->rec;
        int fresh = s->heard && now - s->last_mono_ms <= lease;
        int grace_over = now - r->leader_since_mono_ms >= lease;
        enum site_state want = fresh        ? SITE_UP
                               : grace_over ? SITE_DOWN
                                            : rec.state;

        changed[i] = 0;
        if (want != rec.state) {
            changed[i] = 1;
            rec.state = want;
            rec.since_ms = wall;
            if (want == SITE_UP)
                snprintf(rec.reason, sizeof rec.reason, "heartbeats arrive");
            else if (s->heard)
                snprintf(rec.reason, sizeof rec.reason,
                         "silent for %llu ms (lease %llu ms)",
                         (unsigned long long)(now - s->last_mono_ms),
                         (unsigned long long)lease);
            else
                snprintf(
                    rec.reason, sizeof rec.reason,
                    "no heartbeat in the %llu ms since leader %s took over",
                    (unsigned long long)(now - r->leader_since_mono_ms),
                    r->self->id);
        }
        if (want == SITE_UP &&
            (changed[i] || rec.open != s->open || rec.owned != s->owned ||
             wall - rec.last_heartbeat_ms >= lease)) {
            changed[i] = 1;
            rec.last_heartbeat_ms = s->last_wall_ms;
            rec.open = s->open;
            rec.owned = s->owned;
        }
        if (!changed[i])
            continue;
        snprintf(rec.by, sizeof rec.by, "%s", r->self->id);
        rec.term = term;
        next[i] = rec;
        records_key(keys[n], r->cfg->etcd.prefix, "sites", s->cfg->code);
        values[n] = records_site_encode(&rec);
        if (values[n] == NULL) {
            changed[i] = 0;
            continue;
        }
        ops[n] = (struct etcd_op){.kind = ETCD_OP_PUT,
                                  .key = keys[n],
                                  .value = values[n],
                                  .value_size = strlen(values[n])};
        n++;
    }
    pthread_mutex_unlock(&r->mu);
    if (n == 0)
        return;
    rv = replica_txn(r, NULL, 0, ops, n, NULL, &e);
    for (size_t k = 0; k < n; k++)
        free(values[k]);
    if (rv != 0) {
        log_warn("recording site health: %s", im_errmsg(&e));
        return;
    }
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->sites_count; i++) {
        if (!changed[i])
            continue;
        if (next[i].state != r->sites[i].rec.state)
            log_info("site %s %s: %s", r->sites[i].cfg->code,
                     records_site_state_name(next[i].state), next[i].reason);
        r->sites[i].rec = next[i];
    }
    pthread_mutex_unlock(&r->mu);
}

/* ---- election ---- */

static void
wait_ms(struct replica *r, uint64_t ms)
{
    struct timespec ts;
    pthread_mutex_lock(&r->mu);
    if (!atomic_load(&r->stop) && !r->wake) {
        ts = clock_realtime_after(ms);
        pthread_cond_timedwait(&r->cv, &r->mu, &ts);
    }
    r->wake = 0;
    pthread_mutex_unlock(&r->mu);
}

/* Keeps the lease alive (leader or not: a standby's lease is ready for its
 * campaign). 0 if the lease is alive now. */
static int
keep_lease(struct replica *r, uint64_t now)
{
    struct im_err e = {0};
    int64_t lease, id = 0;
    uint64_t ok;
    int rv;

    pthread_mutex_lock(&r->mu);
    lease = r->lease;
    ok = r->lease_ok_mono_ms;
    pthread_mutex_unlock(&r->mu);
    if (lease == 0) {
        if ((rv =
                 etcd_lease_grant(&r->etcd, (int64_t)r->cfg->coord.leader_ttl_s,
                                  &id, NULL, &e)) != 0) {
            log_debug("lease grant: %s", im_errmsg(&e));
            return rv;
        }
        pthread_mutex_lock(&r->mu);
        r->lease = id;
        r->lease_ok_mono_ms = now;
        pthread_mutex_unlock(&r->mu);
        return 0;
    }
    if (now - ok < ttl_ms(r) / 3)
        return 0;
    rv = etcd_lease_keepalive(&r->etcd, lease, NULL, &e);
    pthread_mutex_lock(&r->mu);
    if (rv == 0) {
        r->lease_ok_mono_ms = now;
    } else if (rv == IM_ENOTFOUND) {
        r->lease = 0;
        step_down(r, "its etcd lease expired");
    } else {
        log_warn("lease keepalive: %s", im_errmsg(&e));
        if (now - ok >= ttl_ms(r))
            step_down(r, "cannot renew its etcd lease");
    }
    pthread_mutex_unlock(&r->mu);
    return rv;
}

static void
campaign(struct replica *r, uint64_t now)
{
    struct etcd_kv holder = {0};
    struct im_err e = {0};
    char *value = records_leader_encode(r->self->id, r->self->api);
    int64_t lease, term = 0;
    int rv;

    if (value == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    lease = r->lease;
    pthread_mutex_unlock(&r->mu);
    rv = etcd_campaign(&r->etcd, r->k_leader, value, strlen(value), lease,
                       &term, &holder, &e);
    free(value);
    if (rv == 0) {
        struct im_err le = {0};
        /* Everything a decision depends on, re-read from etcd before the
         * first one: site health, the schedule, open incidents and their
         * owners. Without them we would re-declare every site or decide
         * twice: give the term back and try again. */
        if (load_sites(r, &le) != 0 || schedstore_reload(r, 1, &le) != 0 ||
            owners_load(r, term, &le) != 0) {
            log_warn("elected, but cannot read the records: %s; resigning",
                     im_errmsg(&le));
            etcd_resign(&r->etcd, r->k_leader, term, &le);
            return;
        }
        pthread_mutex_lock(&r->mu);
        r->leader = 1;
        r->term = term;
        r->leader_term = term;
        r->leader_since_mono_ms = now;
        snprintf(r->leader_id, sizeof r->leader_id, "%s", r->self->id);
        snprintf(r->leader_api, sizeof r->leader_api, "%s", r->self->api);
        pthread_mutex_unlock(&r->mu);
        log_info("leader (term %lld); declaring no site down for %llu ms",
                 (long long)term, (unsigned long long)r->cfg->coord.lease_ms);
        return;
    }
    if (rv == IM_EBUSY && holder.value != NULL) {
        char id[COORD_ID_MAX + 1], api[URL_MAX + 1];
        struct im_err de = {0};
        if (records_leader_decode(holder.value, holder.value_size, id, api,
                                  &de) == 0) {
            pthread_mutex_lock(&r->mu);
            if (strcmp(r->leader_id, id) != 0)
                log_info("standby: %s leads (term %lld)", id,
                         (long long)holder.create_revision);
            snprintf(r->leader_id, sizeof r->leader_id, "%s", id);
            snprintf(r->leader_api, sizeof r->leader_api, "%s", api);
            r->leader_term = holder.create_revision;
            pthread_mutex_unlock(&r->mu);
        }
        etcd_kv_free(&holder);
        return;
    }
    if (rv == IM_ENOTFOUND) { /* our lease is gone: a new one next time */
        pthread_mutex_lock(&r->mu);
        r->lease = 0;
        pthread_mutex_unlock(&r->mu);
    }
    if (rv != IM_EBUSY)
        log_warn("campaign: %s", im_errmsg(&e));
}

/* Every replica reloads the schedule when its etcd revision changed. */
static void
schedule_poll(struct replica *r, uint64_t now)
{
    struct im_err e = {0};
    uint64_t last;

    pthread_mutex_lock(&r->mu);
    last = r->sched_checked_mono_ms;
    pthread_mutex_unlock(&r->mu);
    if (now - last < COORD_SCHEDULE_POLL_MS)
        return;
    if (schedstore_reload(r, 0, &e) != 0)
        log_debug("schedule: %s", im_errmsg(&e));
}

static void *
elect_main(void *arg)
{
    struct replica *r = arg;

    while (!atomic_load(&r->stop)) {
        uint64_t now = clock_mono_ms();
        int leading;

        keep_lease(r, now);
        pthread_mutex_lock(&r->mu);
        leading = leading_locked(r, now);
        if (r->leader && !leading)
            step_down(r, "its last keepalive is older than its TTL");
        pthread_mutex_unlock(&r->mu);
        schedule_poll(r, now);
        if (leading) {
            liveness_tick(r);
            owners_tick(r);
            wait_ms(r, COORD_TICK_MS);
            continue;
        }
        if (r->lease != 0)
            campaign(r, now);
        pthread_mutex_lock(&r->mu);
        leading = r->leader;
        pthread_mutex_unlock(&r->mu);
        if (!leading)
            wait_ms(r, COORD_CAMPAIGN_MS);
    }
    return NULL;
}

/* ---- the standby's watch ---- */

static int
on_leader_change(void *arg, const struct etcd_event *ev, size_t n,
                 int64_t revision)
{
    struct replica *r = arg;
    for (size_t i = 0; i < n; i++) {
        if (ev[i].type != ETCD_EVENT_DELETE)
            continue;
        pthread_mutex_lock(&r->mu);
        if (strcmp(r->leader_id, r->self->id) != 0)
            r->leader_id[0] = r->leader_api[0] = '\0';
        r->wake = 1;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        log_debug("the leader key is gone: campaigning");
    }
    return 0;
}

static void *
watch_main(void *arg)
{
    struct replica *r = arg;
    while (!atomic_load(&r->stop)) {
        struct im_err e = {0};
        int rv = etcd_watch(&r->etcd, r->k_leader, 0, 0, COORD_WATCH_MS,
                            &r->stop, on_leader_change, r, &e);
        if (rv != 0 && rv != IM_ETIMEDOUT && rv != IM_ECLOSED) {
            log_debug("watch: %s", im_errmsg(&e));
            wait_ms(r, COORD_CAMPAIGN_MS);
        }
    }
    return NULL;
}

/* ---- life cycle ---- */

int
replica_start(struct replica *r, const struct config *cfg, struct im_err *e)
{
    struct etcd_tls tls;
    int rv;

    memset(r, 0, sizeof *r);
    r->cfg = cfg;
    r->self = config_coordinator(cfg, cfg->coord.id);
    if ((rv = key_load(&r->key, cfg->coord.key, e)) != 0)
        return rv;
    if (sodium_memcmp(r->key.pk, r->self->pk, KEY_PUB_BYTES) != 0) {
        char have[KEY_PUB_TEXT_MAX];
        key_pub_encode(r->key.pk, have);
        sodium_memzero(&r->key, sizeof r->key);
        return im_errf(e, IM_ECONFIG,
                       "%s: %s holds %s, not the key [coordinator "
                       "%s] pins",
                       cfg->path, cfg->coord.key, have, cfg->coord.id);
    }
    memset(&tls, 0, sizeof tls);
    memcpy(tls.ca, cfg->etcd.ca, sizeof tls.ca);
    memcpy(tls.cert, cfg->etcd.cert, sizeof tls.cert);
    memcpy(tls.key, cfg->etcd.key, sizeof tls.key);
    if ((rv = etcd_open(&r->etcd, cfg->etcd.endpoints, &tls, e)) != 0) {
        sodium_memzero(&r->key, sizeof r->key);
        return rv;
    }
    etcd_set_timeout(&r->etcd, (int)cfg->etcd.timeout_ms);
    records_key(r->k_leader, cfg->etcd.prefix, "coord", "leader");
    records_key(r->k_sites, cfg->etcd.prefix, "sites", "");
    records_key(r->k_assign, cfg->etcd.prefix, "assign", "");
    records_key(r->k_open, cfg->etcd.prefix, "open", "");
    snprintf(r->k_schedule, sizeof r->k_schedule, "%s/schedule",
             cfg->etcd.prefix);
    for (size_t i = 0; i < cfg->sites_count; i++)
        r->sites[r->sites_count++].cfg = &cfg->sites[i];
    openset_init(&r->open, r->sites_count);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    if (pthread_create(&r->elect_thread, NULL, elect_main, r) != 0) {
        rv = im_errf(e, IM_ENOMEM, "start the election thread");
        goto fail;
    }
    r->elect_started = 1;
    if (pthread_create(&r->watch_thread, NULL, watch_main, r) != 0) {
        rv = im_errf(e, IM_ENOMEM, "start the watch thread");
        goto fail;
    }
    r->watch_started = 1;
    return 0;
fail:
    replica_stop(r);
    return rv;
}

void
replica_stop(struct replica *r)
{
    struct im_err e = {0};
    int64_t lease;

    atomic_store(&r->stop, 1);
    pthread_mutex_lock(&r->mu);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (r->elect_started)
        pthread_join(r->elect_thread, NULL);
    if (r->watch_started)
        pthread_join(r->watch_thread, NULL);
    r->elect_started = r->watch_started = 0;
    pthread_mutex_lock(&r->mu);
    lease = r->lease;
    r->lease = 0;
    step_down(r, "shutting down");
    pthread_mutex_unlock(&r->mu);
    /* Revoking deletes the leader key at once: a standby need not wait for
     * the TTL. */
    if (lease != 0 && etcd_lease_revoke(&r->etcd, lease, &e) != 0)
        log_debug("revoke lease: %s", im_errmsg(&e));
    etcd_close(&r->etcd);
    sodium_memzero(&r->key, sizeof r->key);
    openset_free(&r->open);
    schedule_free(r->sched);
    r->sched = NULL;
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
}
