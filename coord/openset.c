/* openset: see openset.h. */
#include "openset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
openset_init(struct openset *t, size_t sites_count)
{
    memset(t, 0, sizeof *t);
    t->sites_count = sites_count < SITES_MAX ? sites_count : SITES_MAX;
}

void
openset_free(struct openset *t)
{
    for (size_t i = 0; i < t->count; i++)
        free(t->v[i].owner);
    free(t->v);
    memset(t, 0, sizeof *t);
}

/* The index of id, or of where it would go (*found 0). */
static size_t
search(const struct openset *t, const char *id, int *found)
{
    size_t lo = 0, hi = t->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(t->v[mid].id, id);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

struct openset_entry *
openset_find(struct openset *t, const char *id)
{
    int found;
    size_t i = search(t, id, &found);
    return found ? &t->v[i] : NULL;
}

int
openset_add(struct openset *t, const char *id, int origin, uint64_t now_ms,
            struct openset_entry **out, struct im_err *e)
{
    int found;
    size_t i;
    struct openset_entry *x;

    if (origin < 0 || (size_t)origin >= t->sites_count ||
        strlen(id) > INCIDENT_ID_MAX)
        return im_errf(e, IM_EINVAL,
                       "'%.40s' is not an incident of a site "
                       "of this cluster",
                       id);
    i = search(t, id, &found);
    if (found) {
        *out = &t->v[i];
        return 0;
    }
    if (t->count == OPENSET_INCIDENTS_MAX)
        return im_errf(e, IM_ETOOBIG,
                       "%d open incidents are tracked already; %s is not",
                       OPENSET_INCIDENTS_MAX, id);
    if (t->count == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        struct openset_entry *v = realloc(t->v, cap * sizeof *v);
        if (v == NULL)
            return im_errf(e, IM_ENOMEM, "out of memory");
        t->v = v;
        t->cap = cap;
    }
    memmove(&t->v[i + 1], &t->v[i], (t->count - i) * sizeof *t->v);
    t->count++;
    x = &t->v[i];
    memset(x, 0, sizeof *x);
    snprintf(x->id, sizeof x->id, "%s", id);
    x->origin = origin;
    x->open = 1;
    x->first_seen_ms = now_ms;
    *out = x;
    return 0;
}

void
openset_heartbeat(struct openset *t, int site, uint64_t now_ms,
                  const struct openset_summary *items, size_t n, int complete,
                  int (*origin_of)(void *, const char *), void *arg,
                  size_t *skipped)
{
    uint64_t bit;
    size_t skip = 0;
    uint8_t *seen;

    if (site < 0 || (size_t)site >= t->sites_count)
        return;
    bit = (uint64_t)1 << site;
    for (size_t k = 0; k < n; k++) {
        const struct openset_summary *s = &items[k];
        struct openset_entry *x;
        struct im_err e = {0};
        int origin = origin_of(arg, s->id);

        if (openset_add(t, s->id, origin, now_ms, &x, &e) != 0) {
            skip++;
            continue;
        }
        x->listed |= bit;
        x->open = 1;
        snprintf(x->service, sizeof x->service, "%s",
                 s->service ? s->service : "");
        x->priority = s->priority;
        x->state = s->state;
        if (x->owner != NULL && x->owner->site == site && s->owner_site &&
            s->owner_token >= x->owner->token && s->owner_token > x->confirmed)
            x->confirmed = s->owner_token;
    }
    /* A complete list says the others are not open here: clear the bit.
     * Entries were added above, so mark what was listed first. */
    if (complete && (seen = calloc(t->count ? t->count : 1, 1)) != NULL) {
        for (size_t k = 0; k < n; k++) {
            int found;
            size_t i = search(t, items[k].id, &found);
            if (found)
                seen[i] = 1;
        }
        for (size_t i = 0; i < t->count; i++)
            if (!seen[i])
                t->v[i].listed &= ~bit;
        free(seen);
    }
    t->sites[site].heard_ms = now_ms;
    t->sites[site].complete = complete;
    if (skipped != NULL)
        *skipped = skip;
}

int
openset_set_owner(struct openset_entry *x, const struct openset_owner *o,
                  struct im_err *e)
{
    if (x->owner == NULL && (x->owner = malloc(sizeof *x->owner)) == NULL)
        return im_errf(e, IM_ENOMEM, "out of memory");
    *x->owner = *o;
    return 0;
}

int
openset_listed_by_up(const struct openset_entry *x, const int *up,
                     size_t sites_count)
{
    for (size_t i = 0; i < sites_count; i++)
        if (up[i] && (x->listed & ((uint64_t)1 << i)))
            return 1;
    return 0;
}

/* 1 if site i's latest heartbeat is complete, came after the entry was
 * first known, and the site is up: its silence about x means "not open". */
static int
speaks(const struct openset *t, const struct openset_entry *x, int i,
       const int *up)
{
    return i >= 0 && (size_t)i < t->sites_count && up[i] &&
           t->sites[i].complete && t->sites[i].heard_ms > x->first_seen_ms;
}

int
openset_is_closed(const struct openset *t, const struct openset_entry *x,
                  const int *up)
{
    if (openset_listed_by_up(x, up, t->sites_count))
        return 0;
    if (speaks(t, x, x->origin, up))
        return 1;
    /* The owner speaks for it only once it has listed it under the
     * current token: before that its log may not hold the assignment (or
     * even the incident) yet. */
    return x->owner != NULL && x->owner->site >= 0 &&
           x->confirmed >= x->owner->token && x->owner->token > 0 &&
           speaks(t, x, x->owner->site, up);
}

void
openset_prune(struct openset *t)
{
    size_t k = 0;
    for (size_t i = 0; i < t->count; i++) {
        if (!t->v[i].open && !t->v[i].recorded_open) {
            free(t->v[i].owner);
            continue;
        }
        if (k != i)
            t->v[k] = t->v[i];
        k++;
    }
    t->count = k;
}

void
openset_load(const struct openset *t, uint32_t load[SITES_MAX])
{
    memset(load, 0, SITES_MAX * sizeof *load);
    for (size_t i = 0; i < t->count; i++) {
        const struct openset_entry *x = &t->v[i];
        if (x->open && x->owner != NULL && x->owner->site >= 0 &&
            x->owner->site < SITES_MAX)
            load[x->owner->site]++;
    }
}

/* ---- the election's inputs ---------------------------------------------- */

static int
cluster_index(const struct openset_env *env, const char *code)
{
    for (size_t i = 0; i < env->sites_count; i++)
        if (strcmp(env->sites[i].code, code) == 0)
            return (int)i;
    return -1;
}

int
openset_env_build(struct openset_env *env, const struct openset_health *health,
                  size_t sites_count, uint64_t lease_ms, const uint32_t *load,
                  const struct schedule *sch, uint64_t now_ms, struct im_err *e)
{
    memset(env, 0, sizeof *env);
    if (sites_count > SITES_MAX)
        return im_errf(e, IM_ETOOBIG, "%zu sites; at most %d", sites_count,
                       SITES_MAX);
    env->now_ms = now_ms;
    env->sites_count = sites_count;
    for (size_t i = 0; i < sites_count; i++) {
        struct elect_site *s = &env->sites[i];
        snprintf(s->code, sizeof s->code, "%s", health[i].code);
        s->up = health[i].up;
        s->last_heard_ms = health[i].last_heard_ms;
        s->lease_ms = lease_ms;
        s->load = load != NULL ? load[i] : 0;
    }
    if (sch == NULL)
        return 0;
    {
        struct elect_site ss[SITES_MAX];
        size_t n = 0;
        struct im_err ignored = {0};
        if (schedule_elect_sites(sch, now_ms, ss, SITES_MAX, &n, &env->global,
                                 &ignored) != 0)
            n = 0;
        for (size_t k = 0; k < n; k++) {
            int i = cluster_index(env, ss[k].code);
            struct elect_failover *f;
            if (i < 0)
                continue; /* a site the cluster does not have */
            env->sites[i].oncall = ss[k].oncall;
            /* The failover order, without sites the cluster lacks. */
            f = &env->failover[i];
            f->sites_count = 0;
            for (size_t j = 0;
                 ss[k].failover && j < ss[k].failover->sites_count; j++) {
                if (cluster_index(env, ss[k].failover->sites[j]) < 0)
                    continue;
                memcpy(f->sites[f->sites_count], ss[k].failover->sites[j],
                       sizeof f->sites[0]);
                f->tier[f->sites_count] = ss[k].failover->tier[j];
                f->sites_count++;
            }
            env->sites[i].failover = f->sites_count > 0 ? f : NULL;
        }
    }
    if (sch->services_count > 0) {
        env->services = calloc(sch->services_count, sizeof *env->services);
        if (env->services == NULL)
            return im_errf(e, IM_ENOMEM, "out of memory");
        for (size_t k = 0; k < sch->services_count; k++)
            if (cluster_index(env, sch->services[k].site) >= 0)
                env->services[env->services_count++] = sch->services[k];
    }
    return 0;
}

void
openset_env_free(struct openset_env *env)
{
    free(env->services);
    env->services = NULL;
    env->services_count = 0;
}

int
openset_elect(const struct openset_env *env, const struct openset *t,
              const struct openset_entry *x, struct elect_result *out,
              struct im_err *e)
{
    struct elect_inputs in = {
        .service = x->service,
        .sites = env->sites,
        .sites_count = env->sites_count,
        .services = env->services,
        .services_count = env->services_count,
        .global = env->global,
    };
    (void)t;
    if (x->origin < 0 || (size_t)x->origin >= env->sites_count)
        return im_errf(e, IM_EINVAL, "%s: origin not a site of this cluster",
                       x->id);
    in.origin = env->sites[x->origin].code;
    return elect_owner(&in, env->now_ms, out, e);
}

void
openset_manager(const struct schedule *sch, const char *code, uint64_t now_ms,
                char person[PERSON_MAX + 1], int *is_global)
{
    struct oncall_segment seg;
    struct im_err ignored = {0};

    person[0] = '\0';
    *is_global = 0;
    if (sch == NULL)
        return;
    if (schedule_site_oncall(sch, code, now_ms, &seg, &ignored) == 0) {
        memcpy(person, seg.person, PERSON_MAX + 1);
        return;
    }
    if (schedule_global_oncall(sch, now_ms, &seg, &ignored) == 0) {
        memcpy(person, seg.person, PERSON_MAX + 1);
        *is_global = 1;
    }
}

/* "failover from NYC, the owner, which is down (silent 3.2 s, lease 3.0 s)" */
static void
down_text(const struct elect_site *s, uint64_t now_ms, char *out, size_t cap)
{
    uint64_t quiet;
    if (s->last_heard_ms == 0) {
        snprintf(out, cap,
                 "failover from %s, the owner, which is down (never heard "
                 "from)",
                 s->code);
        return;
    }
    quiet = now_ms > s->last_heard_ms ? now_ms - s->last_heard_ms : 0;
    snprintf(out, cap,
             "failover from %s, the owner, which is down (silent %.1f s, "
             "lease %.1f s)",
             s->code, (double)quiet / 1000.0, (double)s->lease_ms / 1000.0);
}

int
openset_failover(struct openset_env *env, const struct openset *t,
                 const int *down, struct openset_move *moves, size_t cap,
                 size_t *count, int *more, struct im_err *e)
{
    size_t n = 0;
    int any_up = 0, rv;

    *count = 0;
    *more = 0;
    for (size_t i = 0; i < env->sites_count; i++)
        any_up |= env->sites[i].up;
    for (size_t i = 0; i < t->count; i++) {
        const struct openset_entry *x = &t->v[i];
        struct elect_result r;
        char head[160];
        int owner;

        if (!x->open || x->owner == NULL)
            continue;
        owner = x->owner->site;
        if (owner < 0 || (size_t)owner >= env->sites_count || !down[owner] ||
            env->sites[owner].up)
            continue;
        if (!any_up)
            return im_errf(e, IM_EUNREACH, "no site is up: %s stays with %s",
                           x->id, env->sites[owner].code);
        if (n == cap) {
            *more = 1;
            break;
        }
        if ((rv = openset_elect(env, t, x, &r, e)) != 0)
            return rv;
        /* The election's reason names the origin when it is down; an
         * owner that is not the origin is named first. */
        if (owner == x->origin && r.rule != ELECT_RULE_SERVICE)
            snprintf(head, sizeof head, "failover");
        else
            down_text(&env->sites[owner], env->now_ms, head, sizeof head);
        {
            char reason[REASON_MAX + 1];
            int w = snprintf(reason, sizeof reason, "%s: %s", head, r.reason);
            if (w < 0 || (size_t)w >= sizeof reason)
                memcpy(reason + sizeof reason - 4, "...", 4);
            memcpy(r.reason, reason, sizeof r.reason);
        }
        moves[n].index = i;
        moves[n].result = r;
        n++;
        {
            int to = cluster_index(env, r.site);
            if (to >= 0)
                env->sites[to].load++;
            if (env->sites[owner].load > 0)
                env->sites[owner].load--;
        }
    }
    *count = n;
    return 0;
}
