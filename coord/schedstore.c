/* schedstore: see schedstore.h. */
#include "schedstore.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"

static void warn(struct schedstore_warnings *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
warn(struct schedstore_warnings *w, const char *fmt, ...)
{
    va_list ap;
    if (w->count == SCHEDULE_WARNINGS_MAX) {
        w->more++;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(w->text[w->count++], SCHEDULE_WARNING_MAX + 1, fmt, ap);
    va_end(ap);
}

static int
has(const char *const *codes, size_t n, const char *code)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(codes[i], code) == 0)
            return 1;
    return 0;
}

void
schedstore_check(const struct schedule *s, const char *const *codes, size_t n,
                 struct schedstore_warnings *w)
{
    memset(w, 0, sizeof *w);
    for (size_t i = 0; i < s->sites_count; i++) {
        const struct schedule_site *site = &s->sites[i];
        if (!has(codes, n, site->code)) {
            warn(w, "sites.%s: not a site of this cluster: ignored",
                 site->code);
            continue;
        }
        for (size_t k = 0; k < site->failover.sites_count; k++)
            if (!has(codes, n, site->failover.sites[k]))
                warn(w,
                     "sites.%s.failover: %s is not a site of this cluster: "
                     "skipped",
                     site->code, site->failover.sites[k]);
    }
    for (size_t i = 0; i < n; i++)
        if (schedule_site(s, codes[i]) == NULL)
            warn(w,
                 "sites: no entry for %s, a site of this cluster: nobody on "
                 "call there (the global incident manager covers), no "
                 "failover order (load decides)",
                 codes[i]);
    for (size_t i = 0; i < s->services_count; i++)
        if (!has(codes, n, s->services[i].site))
            warn(w,
                 "services.%s: %s is not a site of this cluster: the "
                 "origin owns such incidents",
                 s->services[i].service, s->services[i].site);
    if (w->more > 0)
        snprintf(w->text[SCHEDULE_WARNINGS_MAX - 1], SCHEDULE_WARNING_MAX + 1,
                 "... and %zu more warnings", w->more + 1);
}

/* "2026-11-25 09:00 Europe/Amsterdam", or RFC 3339 in UTC without a zone. */
static void
fmt_when(const struct tz *tz, uint64_t ms, char *out, size_t cap)
{
    if (ms == 0) {
        out[0] = '\0';
    } else if (tz != NULL) {
        char local[TZ_LOCAL_TEXT_MAX];
        tz_fmt_local(tz, ms, local);
        snprintf(out, cap, "%s %s", local, tz_name(tz));
    } else {
        char r[CLOCK_RFC3339_MAX];
        clock_fmt_rfc3339(ms, r);
        snprintf(out, cap, "%s", r);
    }
}

/* The row of one rotation and its overrides; 0, or IM_ENOTFOUND if
 * nobody is on call. */
static int
oncall_row(const struct schedule_oncall *oc, uint64_t at,
           struct schedstore_oncall_row *row)
{
    const struct oncall_rotation *rot = oc->has_rotation ? &oc->rotation : NULL;
    const struct tz *tz = rot ? rot->tz : NULL;
    struct oncall_segment seg, next;
    struct im_err e = {0};

    if (oncall_at(rot, oc->overrides, oc->overrides_count, at, &seg, &e) != 0)
        return IM_ENOTFOUND;
    snprintf(row->source, sizeof row->source, "%s",
             seg.override_index >= 0 ? "override" : "rotation");
    memcpy(row->person, seg.person, sizeof row->person);
    row->from_ms = seg.start_ms;
    row->until_ms = seg.end_ms;
    fmt_when(tz, seg.end_ms, row->until_text, sizeof row->until_text);
    if (oncall_next(rot, oc->overrides, oc->overrides_count, &seg, &next, &e) ==
        0) {
        memcpy(row->next_person, next.person, sizeof row->next_person);
        row->next_until_ms = next.end_ms;
        fmt_when(tz, next.end_ms, row->next_until_text,
                 sizeof row->next_until_text);
    }
    return 0;
}

void
schedstore_oncall(const struct schedule *s, const char *const *codes, size_t n,
                  uint64_t at_ms, struct schedstore_oncall_row *rows)
{
    struct schedstore_oncall_row global;
    int have_global;

    memset(&global, 0, sizeof global);
    have_global = oncall_row(&s->global, at_ms, &global) == 0;
    for (size_t i = 0; i < n; i++) {
        struct schedstore_oncall_row *row = &rows[i];
        const struct schedule_site *site = schedule_site(s, codes[i]);
        memset(row, 0, sizeof *row);
        if (site == NULL || oncall_row(&site->oncall, at_ms, row) != 0) {
            /* Nobody of its own: the global manager covers. */
            *row = global;
            snprintf(row->source, sizeof row->source, "%s",
                     have_global ? "global" : "");
        }
        snprintf(row->site, sizeof row->site, "%s", codes[i]);
    }
    rows[n] = global;
    rows[n].site[0] = '\0';
}

static void
cluster_codes(const struct replica *r, const char *codes[SITES_MAX], size_t *n)
{
    *n = 0;
    for (size_t i = 0; i < r->sites_count; i++)
        codes[(*n)++] = r->sites[i].cfg->code;
}

int
schedstore_apply(struct replica *r, const char *text, size_t len, int dry_run,
                 int64_t *revision_out, struct schedstore_warnings *w,
                 struct im_err *e)
{
    struct schedule *s = NULL;
    const char *codes[SITES_MAX];
    size_t n;
    char *json = NULL;
    struct etcd_op put;
    int64_t rev = 0;
    int rv;

    memset(w, 0, sizeof *w);
    if (len > SCHEDULE_TEXT_MAX)
        return im_errf(e, IM_ETOOBIG, "the schedule is %zu bytes; at most %d",
                       len, SCHEDULE_TEXT_MAX);
    if ((rv = schedule_parse(text, len, &s, e)) != 0)
        /* An unknown zone is bad input like any other. */
        return rv == IM_ENOTFOUND ? (e->code = IM_EINVAL) : rv;
    cluster_codes(r, codes, &n);
    schedstore_check(s, codes, n, w);
    if ((rv = schedule_to_json(s, 0, &json, e)) != 0)
        goto out;
    if (strlen(json) > SCHEDULE_STORED_MAX) {
        rv = im_errf(e, IM_ETOOBIG,
                     "the schedule's stored form is %zu bytes; etcd takes "
                     "at most %d",
                     strlen(json), SCHEDULE_STORED_MAX);
        goto out;
    }
    if (dry_run) {
        pthread_mutex_lock(&r->mu);
        *revision_out = r->sched_rev;
        pthread_mutex_unlock(&r->mu);
        goto out;
    }
    put = (struct etcd_op){.kind = ETCD_OP_PUT,
                           .key = r->k_schedule,
                           .value = json,
                           .value_size = strlen(json)};
    if ((rv = replica_txn(r, NULL, 0, &put, 1, &rev, e)) != 0)
        goto out;
    log_info("schedule applied (revision %lld, %zu bytes, %zu sites, %zu "
             "services)",
             (long long)rev, strlen(json), s->sites_count, s->services_count);
    /* This replica's copy, at once: the next election uses it. */
    pthread_mutex_lock(&r->mu);
    if (rev > r->sched_rev) {
        schedule_free(r->sched);
        r->sched = s;
        r->sched_rev = rev;
        s = NULL;
    }
    pthread_mutex_unlock(&r->mu);
    *revision_out = rev;
out:
    free(json);
    if (s != NULL)
        schedule_free(s);
    return rv;
}

int
schedstore_get(struct replica *r, char **text_out, int64_t *revision_out,
               struct im_err *e)
{
    struct etcd_kv kv;
    char *text;
    int rv;

    if ((rv = etcd_get(&r->etcd, r->k_schedule, &kv, NULL, e)) != 0) {
        if (rv == IM_ENOTFOUND)
            im_errf(e, rv,
                    "no schedule has been applied yet (imctl schedule "
                    "apply FILE)");
        return rv;
    }
    if ((text = malloc(kv.value_size + 1)) == NULL) {
        etcd_kv_free(&kv);
        return im_errf(e, IM_ENOMEM, "out of memory");
    }
    memcpy(text, kv.value, kv.value_size);
    text[kv.value_size] = '\0';
    *revision_out = kv.mod_revision;
    *text_out = text;
    etcd_kv_free(&kv);
    return 0;
}

int
schedstore_reload(struct replica *r, int force, struct im_err *e)
{
    struct etcd_range rg;
    struct etcd_kv kv;
    struct schedule *s = NULL;
    int64_t have, rev;
    int rv;

    pthread_mutex_lock(&r->mu);
    have = r->sched_rev;
    r->sched_checked_mono_ms = clock_mono_ms();
    pthread_mutex_unlock(&r->mu);
    if (!force) {
        /* The revision only: the text is read when it changed. */
        if ((rv = etcd_range(&r->etcd, r->k_schedule,
                             ETCD_KEYS_ONLY | ETCD_SERIALIZABLE, 0, 0, &rg,
                             e)) != 0)
            return rv;
        rev = rg.count == 1 ? rg.kvs[0].mod_revision : 0;
        etcd_range_free(&rg);
        if (rev == have)
            return 0;
    }
    rv = etcd_get(&r->etcd, r->k_schedule, &kv, NULL, e);
    if (rv == IM_ENOTFOUND) {
        pthread_mutex_lock(&r->mu);
        if (r->sched != NULL)
            log_info("the schedule was removed from etcd");
        schedule_free(r->sched);
        r->sched = NULL;
        r->sched_rev = 0;
        pthread_mutex_unlock(&r->mu);
        return 0;
    }
    if (rv != 0)
        return rv;
    rev = kv.mod_revision;
    if (rev != have || force) {
        struct im_err pe = {0};
        if (schedule_parse((const char *)kv.value, kv.value_size, &s, &pe) !=
            0) {
            log_warn("%s (revision %lld) does not parse: %s; keeping revision "
                     "%lld",
                     r->k_schedule, (long long)rev, im_errmsg(&pe),
                     (long long)have);
            pthread_mutex_lock(&r->mu);
            r->sched_rev = rev; /* not again until it changes */
            pthread_mutex_unlock(&r->mu);
            etcd_kv_free(&kv);
            return 0;
        }
        pthread_mutex_lock(&r->mu);
        schedule_free(r->sched);
        r->sched = s;
        r->sched_rev = rev;
        pthread_mutex_unlock(&r->mu);
        log_info("schedule revision %lld loaded", (long long)rev);
    }
    etcd_kv_free(&kv);
    return 0;
}
