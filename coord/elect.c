/* elect: see elect.h. The reason text is built from bounded clauses: at
 * most ELECT_DOWN_LISTED down sites are named one by one, so that the
 * sentence always fits REASON_MAX whatever the number of sites. */
#include "elect.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "config.h"

/* Down sites of a failover order named one by one in a reason; the rest are
 * counted. Keeps the reason within REASON_MAX (asserted below). */
#define ELECT_DOWN_LISTED 3

struct text {
    char *buf;
    size_t cap;
    size_t len;
};

static void text_add(struct text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
text_add(struct text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    /* Every clause is bounded by the names in it (see ELECT_DOWN_LISTED):
     * running out of room is a bug here, not bad input. */
    assert(n >= 0 && (size_t)n < t->cap - t->len);
    t->len += (size_t)n;
}

const char *
elect_rule_name(enum elect_rule rule)
{
    switch (rule) {
    case ELECT_RULE_SERVICE: return "service";
    case ELECT_RULE_ORIGIN: return "origin";
    case ELECT_RULE_FAILOVER: return "failover";
    case ELECT_RULE_LEAST_LOADED: return "least-loaded";
    }
    return "unknown";
}

static const struct elect_site *
find_site(const struct elect_inputs *in, const char *code)
{
    for (size_t i = 0; i < in->sites_count; i++)
        if (strcmp(in->sites[i].code, code) == 0)
            return &in->sites[i];
    return NULL;
}

static const char *
mapped_site(const struct elect_inputs *in)
{
    if (in->service == NULL || in->service[0] == '\0')
        return NULL;
    for (size_t i = 0; i < in->services_count; i++)
        if (strcmp(in->services[i].service, in->service) == 0)
            return in->services[i].site;
    return NULL;
}

static int
check_inputs(const struct elect_inputs *in, struct im_err *e)
{
    if (in->sites_count > SITES_MAX)
        return im_errf(e, IM_ETOOBIG, "more than %d sites", SITES_MAX);
    if (in->services_count > SERVICES_MAX)
        return im_errf(e, IM_ETOOBIG, "more than %d services", SERVICES_MAX);
    for (size_t i = 0; i < in->sites_count; i++) {
        const struct elect_site *s = &in->sites[i];
        if (config_check_site_code(s->code) != 0)
            return im_errf(e, IM_EINVAL, "sites[%zu]: bad site code '%s'", i,
                           s->code);
        for (size_t j = 0; j < i; j++)
            if (strcmp(in->sites[j].code, s->code) == 0)
                return im_errf(e, IM_EINVAL, "site %s given twice", s->code);
        if (s->failover == NULL)
            continue;
        if (s->failover->sites_count > SITES_MAX)
            return im_errf(e, IM_ETOOBIG,
                           "failover order of %s: more than "
                           "%d sites",
                           s->code, SITES_MAX);
        for (size_t j = 0; j < s->failover->sites_count; j++) {
            if (find_site(in, s->failover->sites[j]) == NULL)
                return im_errf(e, IM_EINVAL,
                               "failover order of %s names %s, which is not "
                               "among the sites",
                               s->code, s->failover->sites[j]);
            if (j > 0 && s->failover->tier[j] < s->failover->tier[j - 1])
                return im_errf(e, IM_EINVAL,
                               "failover order of %s: tiers "
                               "out of order",
                               s->code);
        }
    }
    if (in->origin == NULL || find_site(in, in->origin) == NULL)
        return im_errf(e, IM_EINVAL, "origin %s is not among the sites",
                       in->origin ? in->origin : "(none)");
    const char *m = mapped_site(in);
    if (m != NULL && find_site(in, m) == NULL)
        return im_errf(e, IM_EINVAL,
                       "service %s is mapped to %s, which is not among the "
                       "sites",
                       in->service, m);
    return 0;
}

/* "7.2 s", "5 s", "3m 05s": a silence or lease for the reason text. */
static void
fmt_secs(uint64_t ms, char out[32])
{
    if (ms >= 60000) {
        clock_fmt_duration(ms, out);
    } else if (ms % 1000 == 0) {
        snprintf(out, 32, "%llu s", (unsigned long long)(ms / 1000));
    } else {
        unsigned long long tenths = (ms + 50) / 100;
        snprintf(out, 32, "%llu.%llu s", tenths / 10, tenths % 10);
    }
}

/* "AMS is down (silent 7.2 s > lease 5 s)" */
static void
add_down(struct text *t, const struct elect_site *s, uint64_t now_ms)
{
    char silent[32], lease[32];
    if (s->last_heard_ms == 0) {
        text_add(t, "%s is down (never heard from)", s->code);
        return;
    }
    uint64_t quiet = now_ms > s->last_heard_ms ? now_ms - s->last_heard_ms : 0;
    fmt_secs(quiet, silent);
    fmt_secs(s->lease_ms, lease);
    if (quiet > s->lease_ms)
        text_add(t, "%s is down (silent %s > lease %s)", s->code, silent,
                 lease);
    else
        text_add(t,
                 "%s is down (declared down; last heard %s ago, lease "
                 "%s)",
                 s->code, silent, lease);
}

/* Lower load first, then lower site code: the tie-break of rules 3 and 4. */
static int
better(const struct elect_site *a, const struct elect_site *b)
{
    if (a->load != b->load)
        return a->load < b->load;
    return strcmp(a->code, b->code) < 0;
}

/* "SIN has the lowest load of the up sites (2 open incidents)", or with a
 * tie, which the lowest site code breaks. `among` names the candidates. */
static void
add_choice(struct text *t, const struct elect_site *const *cands, size_t n,
           const struct elect_site *best, const char *among)
{
    size_t ties = 0;
    for (size_t i = 0; i < n; i++)
        if (cands[i]->load == best->load)
            ties++;
    const char *s = best->load == 1 ? "" : "s";
    if (ties > 1)
        text_add(t,
                 "%zu %s share the lowest load (%u open incident%s) and "
                 "%s has the lowest site code",
                 ties, among, best->load, s, best->code);
    else
        text_add(t, "%s has the lowest load of the %s (%u open incident%s)",
                 best->code, among, best->load, s);
}

static void
add_manager(struct text *t, const struct elect_oncall *o, const char *site,
            const char *role)
{
    char until[TZ_LOCAL_TEXT_MAX + TZ_NAME_MAX + 8];
    if (o->until_ms == 0) {
        until[0] = '\0';
    } else if (o->tz != NULL) {
        char local[TZ_LOCAL_TEXT_MAX];
        tz_fmt_local(o->tz, o->until_ms, local);
        snprintf(until, sizeof until, " until %s %s", local, tz_name(o->tz));
    } else {
        char r[CLOCK_RFC3339_MAX];
        clock_fmt_rfc3339(o->until_ms, r);
        snprintf(until, sizeof until, " until %s", r);
    }
    if (site != NULL)
        text_add(t, "%s is on call at %s%s", o->person, site, until);
    else
        text_add(t, "%s is %s%s", o->person, role, until);
}

int
elect_owner(const struct elect_inputs *in, uint64_t now_ms,
            struct elect_result *out, struct im_err *e)
{
    struct elect_result r;
    struct text t;
    const struct elect_site *owner = NULL;
    int rv;

    if ((rv = check_inputs(in, e)) != 0)
        return rv;
    memset(&r, 0, sizeof r);
    t.buf = r.reason;
    t.cap = sizeof r.reason;
    t.len = 0;

    const struct elect_site *origin = find_site(in, in->origin);
    const char *mcode = mapped_site(in);
    const struct elect_site *mapped = mcode ? find_site(in, mcode) : NULL;

    /* Rule 1: the site that runs the service. */
    if (mapped != NULL) {
        if (mapped->up) {
            owner = mapped;
            r.rule = ELECT_RULE_SERVICE;
            text_add(&t, "service %s is mapped to %s, which is up", in->service,
                     mapped->code);
        } else {
            text_add(&t, "service %s is mapped to %s, but ", in->service,
                     mapped->code);
            add_down(&t, mapped, now_ms);
            text_add(&t, "; ");
        }
    }
    /* Rule 2: the origin. */
    if (owner == NULL && origin->up) {
        owner = origin;
        r.rule = ELECT_RULE_ORIGIN;
        text_add(&t, "%s is the origin and is up", origin->code);
    }
    /* Rule 3: the origin's failover order, tier by tier. */
    if (owner == NULL) {
        if (origin != mapped) {
            add_down(&t, origin, now_ms);
            text_add(&t, "; ");
        }
        const struct elect_failover *f = origin->failover;
        size_t n = f ? f->sites_count : 0, down_named = 0, down_more = 0;
        for (size_t i = 0; i < n && owner == NULL;) {
            const struct elect_site *cands[SITES_MAX];
            size_t cands_count = 0, j = i;
            for (; j < n && f->tier[j] == f->tier[i]; j++) {
                const struct elect_site *s = find_site(in, f->sites[j]);
                if (s == origin || s == mapped)
                    continue; /* already said to be down */
                if (s->up) {
                    cands[cands_count++] = s;
                } else if (down_named < ELECT_DOWN_LISTED) {
                    add_down(&t, s, now_ms);
                    text_add(&t, "; ");
                    down_named++;
                } else {
                    down_more++;
                }
            }
            if (cands_count > 0) {
                owner = cands[0];
                for (size_t k = 1; k < cands_count; k++)
                    if (better(cands[k], owner))
                        owner = cands[k];
                r.rule = ELECT_RULE_FAILOVER;
                if (down_more > 0)
                    text_add(&t,
                             "%zu more site%s of %s's failover order %s "
                             "down; ",
                             down_more, down_more == 1 ? "" : "s", origin->code,
                             down_more == 1 ? "is" : "are");
                const char *which = i == 0 ? "first" : "next";
                if (j - i == 1) {
                    text_add(&t, "%s is %s in %s's failover order", owner->code,
                             which, origin->code);
                } else if (cands_count == 1) {
                    text_add(&t,
                             "%s is the only up site in the %s tier of "
                             "%s's failover order",
                             owner->code, which, origin->code);
                } else {
                    text_add(&t,
                             "%zu sites are up in the %s tier of %s's "
                             "failover order; ",
                             cands_count, which, origin->code);
                    add_choice(&t, cands, cands_count, owner, "up sites");
                }
            }
            i = j;
        }
        if (owner == NULL && down_more > 0)
            text_add(&t, "%zu more site%s of %s's failover order %s down; ",
                     down_more, down_more == 1 ? "" : "s", origin->code,
                     down_more == 1 ? "is" : "are");
    }
    /* Rule 4: any up site, least loaded first. */
    if (owner == NULL) {
        const struct elect_site *cands[SITES_MAX];
        size_t cands_count = 0;
        for (size_t i = 0; i < in->sites_count; i++)
            if (in->sites[i].up)
                cands[cands_count++] = &in->sites[i];
        if (cands_count == 0)
            return im_errf(e, IM_EUNREACH,
                           "no site is up: nobody can own the incident");
        owner = cands[0];
        for (size_t k = 1; k < cands_count; k++)
            if (better(cands[k], owner))
                owner = cands[k];
        r.rule = ELECT_RULE_LEAST_LOADED;
        if (origin->failover == NULL || origin->failover->sites_count == 0)
            text_add(&t, "%s has no failover order; ", origin->code);
        else
            text_add(&t, "no site of %s's failover order is up; ",
                     origin->code);
        add_choice(&t, cands, cands_count, owner, "up sites");
    }

    /* The manager. */
    text_add(&t, "; ");
    memcpy(r.site, owner->code, sizeof r.site);
    if (owner->oncall.person[0] != '\0') {
        memcpy(r.manager, owner->oncall.person, sizeof r.manager);
        add_manager(&t, &owner->oncall, owner->code, NULL);
    } else if (in->global.person[0] != '\0') {
        memcpy(r.manager, in->global.person, sizeof r.manager);
        r.manager_is_global = 1;
        text_add(&t, "nobody is on call at %s, so ", owner->code);
        add_manager(&t, &in->global, NULL, "the global incident manager");
    } else {
        text_add(&t,
                 "nobody is on call at %s, and there is no global "
                 "incident manager on call",
                 owner->code);
    }
    assert(owner->up);
    *out = r;
    return 0;
}
