/* majors: see majors.h. */
#include "majors.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "replica.h"

#define MIN_MS (60 * 1000ULL)

/* ---- pure: policy ------------------------------------------------------ */

void
majors_default_policy(struct esc_policy *out)
{
    memset(out, 0, sizeof *out);
    out->levels[0] = (struct esc_level){ESC_SITE_MANAGER, "", 5 * MIN_MS};
    out->levels[1] = (struct esc_level){ESC_SITE_BACKUP, "", 10 * MIN_MS};
    out->levels[2] = (struct esc_level){ESC_GLOBAL_MANAGER, "", 10 * MIN_MS};
    out->levels_count = 3;
    out->repeat = 2;
}

size_t
majors_policy(const struct schedule *s, uint64_t ack_ms_min,
              struct esc_policy *out)
{
    size_t raised = 0;
    if (s != NULL)
        *out = s->escalation;
    else
        majors_default_policy(out);
    for (size_t i = 0; i < out->levels_count; i++)
        if (out->levels[i].ack_ms < ack_ms_min) {
            out->levels[i].ack_ms = ack_ms_min;
            raised++;
        }
    return raised;
}

/* ---- pure: pages --------------------------------------------------------- */

static void
resolve_person(const struct schedule *s, const struct esc_notice *n,
               uint64_t now_ms, char person[PERSON_MAX + 1])
{
    struct im_err e;
    person[0] = '\0';
    if (s != NULL && schedule_resolve(s, n, now_ms, person, &e) != 0)
        person[0] = '\0'; /* nobody on call: the site's channels still get it */
}

/* Adds a page with the next notice id; when the pending list is full the
 * oldest page is given up on (counted as expired). */
static void
page_add(struct major_record *m, const char *site, const char *person,
         uint32_t level, uint32_t run, const char *text, uint64_t now_ms)
{
    struct major_page *p;
    if (m->pending_count == MAJORS_PENDING_MAX) {
        memmove(&m->pending[0], &m->pending[1],
                (MAJORS_PENDING_MAX - 1) * sizeof m->pending[0]);
        m->pending_count--; /* the last slot is rewritten below */
        m->expired++;
    }
    p = &m->pending[m->pending_count++];
    memset(p, 0, sizeof *p);
    p->n = ++m->issued;
    snprintf(p->site, sizeof p->site, "%s", site);
    snprintf(p->person, sizeof p->person, "%s", person);
    p->level = level;
    p->run = run;
    snprintf(p->text, sizeof p->text, "%s", text);
    p->issued_ms = now_ms;
}

/* 1 if a page numbered from first on is for (site, person) already. */
static int
page_dup(const struct major_record *m, uint32_t first, const char *site,
         const char *person)
{
    for (size_t i = 0; i < m->pending_count; i++)
        if (m->pending[i].n >= first && strcmp(m->pending[i].site, site) == 0 &&
            strcmp(m->pending[i].person, person) == 0)
            return 1;
    return 0;
}

static int
is_level_page(enum esc_why why)
{
    return why == ESC_WHY_START || why == ESC_WHY_TIMEOUT ||
           why == ESC_WHY_CATCHUP || why == ESC_WHY_MANUAL ||
           why == ESC_WHY_COPY;
}

/* Issues the pages of one transition's notices, people resolved at now,
 * and notes the current level's page. */
static void
issue(struct major_record *m, const struct esc_policy *p,
      const struct schedule *s, const struct esc_notices *ns, uint64_t now_ms)
{
    m->levels = (uint32_t)p->levels_count;
    m->runs = p->repeat + 1;
    for (size_t i = 0; i < ns->count; i++) {
        const struct esc_notice *n = &ns->items[i];
        char person[PERSON_MAX + 1];
        resolve_person(s, n, now_ms, person);
        page_add(m, n->site, person,
                 is_level_page(n->why_code) ? n->level + 1 : 0, n->pass + 1,
                 n->why, now_ms);
        if (i > 0 || n->why_code == ESC_WHY_HELP)
            continue;
        snprintf(m->paged_site, sizeof m->paged_site, "%s", n->site);
        snprintf(m->paged_person, sizeof m->paged_person, "%s", person);
        if (n->why_code == ESC_WHY_EXHAUSTED)
            snprintf(m->target, sizeof m->target,
                     "global manager (escalation exhausted)");
        else
            escalate_describe_target(&p->levels[n->level], n->site, m->target,
                                     sizeof m->target);
    }
}

/* "AMS, NYC" or, for a long list, "12 sites". */
static void
affects_text(const struct major_record *m, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < m->affects_count; i++) {
        int k = snprintf(out + len, cap - len, "%s%s", i ? ", " : "",
                         m->affects[i]);
        if (k < 0 || (size_t)k >= cap - len) {
            snprintf(out, cap, "%zu sites", m->affects_count);
            return;
        }
        len += (size_t)k;
    }
}

static void text_of(char out[ESC_WHY_MAX + 1], const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
text_of(char out[ESC_WHY_MAX + 1], const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(out, ESC_WHY_MAX + 1, fmt, ap);
    va_end(ap);
    /* Bounded by the names and the reason in it: too long is a bug. */
    assert(len >= 0 && len <= ESC_WHY_MAX);
}

int
majors_start(struct major_record *m, const struct esc_policy *p,
             const struct schedule *s, uint64_t now_ms, struct im_err *e)
{
    struct esc_notices ns;
    struct esc_state st;
    struct esc_notice n;
    char affects[100], person[PERSON_MAX + 1], text[ESC_WHY_MAX + 1];
    char because[MAJORS_REASON_MAX + 4] = "";
    int rv;

    if ((rv = escalate_start(p, m->owner, now_ms, &st, &ns, e)) != 0)
        return rv;
    m->esc = st;
    uint32_t first = m->issued + 1;
    issue(m, p, s, &ns, now_ms);
    affects_text(m, affects, sizeof affects);
    if (m->reason[0] != '\0')
        snprintf(because, sizeof because, ": %s", m->reason);

    /* The global incident manager on call, through the owner site. */
    memset(&n, 0, sizeof n);
    n.target = ESC_GLOBAL_MANAGER;
    snprintf(n.site, sizeof n.site, "%s", m->owner);
    resolve_person(s, &n, now_ms, person);
    snprintf(m->global_manager, sizeof m->global_manager, "%s", person);
    text_of(text,
            "major incident %s declared by %s%s; owner %s; affects %s; you "
            "are the global incident manager on call",
            m->incident, m->declared_by, because, m->owner, affects);
    if (!page_dup(m, first, m->owner, person))
        page_add(m, m->owner, person, 0, 1, text, now_ms);

    /* Each affected site's own manager, through that site. */
    for (size_t i = 0; i < m->affects_count; i++) {
        n.target = ESC_SITE_MANAGER;
        snprintf(n.site, sizeof n.site, "%s", m->affects[i]);
        resolve_person(s, &n, now_ms, person);
        if (page_dup(m, first, n.site, person))
            continue;
        text_of(text,
                "major incident %s (owner %s) affects %s: declared by %s%s",
                m->incident, m->owner, n.site, m->declared_by, because);
        page_add(m, n.site, person, 0, 1, text, now_ms);
    }
    return 0;
}

int
majors_tick(struct major_record *m, const struct esc_policy *p,
            const struct schedule *s, uint64_t now_ms, int *stepped,
            struct im_err *e)
{
    struct esc_notices ns;
    struct esc_state st = m->esc;
    int rv;

    *stepped = 0;
    if (m->resolved_ms != 0)
        return 0;
    if ((rv = escalate_tick(&st, p, m->owner, now_ms, &ns, e)) != 0)
        return rv;
    if (ns.count == 0)
        return 0;
    m->esc = st;
    issue(m, p, s, &ns, now_ms);
    *stepped = 1;
    return 0;
}

static int
refuse_resolved(const struct major_record *m, struct im_err *e)
{
    char at[CLOCK_RFC3339_MAX];
    clock_fmt_rfc3339(m->resolved_ms, at);
    return im_errf(e, IM_ESTATE,
                   "%s was resolved at %s (%s): nothing to escalate",
                   m->incident, at, m->resolved_why);
}

int
majors_escalate(struct major_record *m, const struct esc_policy *p,
                const struct schedule *s, const char *who, const char *reason,
                uint64_t now_ms, struct im_err *e)
{
    struct esc_notices ns;
    struct esc_state st = m->esc;
    int rv;

    if (m->resolved_ms != 0)
        return refuse_resolved(m, e);
    if ((rv = escalate_now(&st, p, m->owner, who, reason, now_ms, &ns, e)) != 0)
        return rv;
    m->esc = st;
    issue(m, p, s, &ns, now_ms);
    return 0;
}

int
majors_help(struct major_record *m, const struct schedule *s, const char *site,
            const char *who, uint64_t now_ms, struct im_err *e)
{
    struct esc_notices ns;
    struct esc_state st = m->esc;
    int rv;

    if (m->resolved_ms != 0)
        return refuse_resolved(m, e);
    if ((rv = escalate_to_site(&st, m->owner, site, who, now_ms, &ns, e)) != 0)
        return rv;
    m->esc = st;
    /* A help request is no level: the current level's page stays. */
    for (size_t i = 0; i < ns.count; i++) {
        char person[PERSON_MAX + 1];
        resolve_person(s, &ns.items[i], now_ms, person);
        page_add(m, ns.items[i].site, person, 0, ns.items[i].pass + 1,
                 ns.items[i].why, now_ms);
    }
    return 0;
}

int
majors_recorded(struct major_record *m, uint32_t n)
{
    for (size_t i = 0; i < m->pending_count; i++) {
        if (m->pending[i].n != n)
            continue;
        memmove(&m->pending[i], &m->pending[i + 1],
                (m->pending_count - i - 1) * sizeof m->pending[0]);
        m->pending_count--;
        memset(&m->pending[m->pending_count], 0, sizeof m->pending[0]);
        m->recorded++;
        return 1;
    }
    return 0;
}

size_t
majors_expire(struct major_record *m, uint64_t now_ms)
{
    size_t k = 0, gone = 0;
    for (size_t i = 0; i < m->pending_count; i++) {
        if (now_ms - m->pending[i].issued_ms >= MAJORS_NOTICE_TTL_MS &&
            now_ms >= m->pending[i].issued_ms) {
            gone++;
            continue;
        }
        m->pending[k++] = m->pending[i];
    }
    memset(&m->pending[k], 0, (m->pending_count - k) * sizeof m->pending[0]);
    m->pending_count = k;
    m->expired += (uint32_t)gone;
    return gone;
}

void
majors_resolve(struct major_record *m, const char *why, uint64_t now_ms)
{
    m->resolved_ms = now_ms;
    snprintf(m->resolved_why, sizeof m->resolved_why, "%s", why);
    /* Pages not yet recorded are not for a resolved incident any more. */
    m->expired += (uint32_t)m->pending_count;
    memset(m->pending, 0, sizeof m->pending);
    m->pending_count = 0;
}

uint32_t
majors_notice_n(const char *incident, const char *notice)
{
    size_t len = strlen(incident);
    char *end;
    unsigned long long n;

    if (strncmp(notice, incident, len) != 0 || notice[len] != '/' ||
        notice[len + 1] < '1' || notice[len + 1] > '9')
        return 0;
    n = strtoull(notice + len + 1, &end, 10);
    if (*end != '\0' || n > UINT32_MAX)
        return 0;
    return (uint32_t)n;
}

/* ---- the daemon: cache and observations -------------------------------- */

struct majors_entry {
    struct major_record rec;
    int64_t mod_rev;
    uint64_t owner_checked_ms;
    /* What heartbeats showed since the last write (re-shown by every
     * heartbeat, so losing one to a race only delays it). */
    char ack_site[SITE_CODE_MAX + 1];  /* a copy past `new` */
    char gone_site[SITE_CODE_MAX + 1]; /* a site that no longer lists it */
    char gone_state[16];               /* "": not listed; else its state */
    uint64_t listed_by;                /* site indexes that listed it */
    uint32_t seen[MAJORS_PENDING_MAX]; /* pages seen recorded */
    size_t seen_count;
};
_Static_assert(SITES_MAX <= 64, "listed_by is a 64-bit mask");

/* Under mu. */
static struct majors_entry *
find_locked(struct majors *m, const char *id)
{
    for (size_t i = 0; i < m->count; i++)
        if (strcmp(m->items[i].rec.incident, id) == 0)
            return &m->items[i];
    return NULL;
}

static void
wake(struct majors *m)
{
    m->wake = 1;
    pthread_cond_broadcast(&m->cv);
}

static void
key_of(const struct majors *m, const char *id, char out[RECORDS_KEY_MAX + 1])
{
    records_key(out, m->cfg->etcd.prefix, "majors", id);
}

/* The open copy's state past `new`: acknowledged, or later. */
static int
state_acked(Im__State s)
{
    return s == IM__STATE__STATE_ACKNOWLEDGED ||
           s == IM__STATE__STATE_IN_PROGRESS || s == IM__STATE__STATE_ON_HOLD;
}

static const char *
state_closed(Im__State s)
{
    switch (s) {
    case IM__STATE__STATE_RESOLVED: return "resolved";
    case IM__STATE__STATE_CLOSED: return "closed";
    case IM__STATE__STATE_CANCELLED: return "cancelled";
    default: return NULL;
    }
}

/* Copies src into a new heap string; NULL src is "". */
static char *
dup_str(const char *src, int *oom)
{
    char *s = strdup(src ? src : "");
    if (s == NULL)
        *oom = 1;
    return s;
}

/* Under mu: the MajorNotices and pages for site into hb. */
static int
reply_fill_locked(struct majors *m, const char *site, Im__HeartbeatReply *hb)
{
    size_t nm = 0, np = 0;
    int oom = 0;

    for (size_t i = 0; i < m->count; i++) {
        const struct majors_entry *x = &m->items[i];
        int named =
            strcmp(x->rec.owner, site) == 0 || strcmp(x->rec.origin, site) == 0;
        for (size_t k = 0; !named && k < x->rec.affects_count; k++)
            named = strcmp(x->rec.affects[k], site) == 0;
        nm += named;
        for (size_t k = 0; k < x->rec.pending_count; k++)
            np += strcmp(x->rec.pending[k].site, site) == 0;
    }
    if (nm > 0 && (hb->majors = calloc(nm, sizeof *hb->majors)) == NULL)
        return IM_ENOMEM;
    if (np > 0 &&
        (hb->escalations = calloc(np, sizeof *hb->escalations)) == NULL)
        return IM_ENOMEM;
    for (size_t i = 0; i < m->count && !oom; i++) {
        const struct majors_entry *x = &m->items[i];
        const struct major_record *r = &x->rec;
        int named = strcmp(r->owner, site) == 0 || strcmp(r->origin, site) == 0;
        for (size_t k = 0; !named && k < r->affects_count; k++)
            named = strcmp(r->affects[k], site) == 0;
        if (named) {
            Im__MajorNotice *mn = calloc(1, sizeof *mn);
            if (mn == NULL)
                return IM_ENOMEM;
            im__major_notice__init(mn);
            hb->majors[hb->n_majors++] = mn;
            mn->incident = dup_str(r->incident, &oom);
            mn->reason = dup_str(r->reason, &oom);
            mn->declared_by = dup_str(r->declared_by, &oom);
            mn->declared_at_ms = r->declared_ms;
            if (r->affects_count > 0 &&
                (mn->affects = calloc(r->affects_count, sizeof *mn->affects)) ==
                    NULL)
                return IM_ENOMEM;
            for (size_t k = 0; k < r->affects_count; k++)
                mn->affects[mn->n_affects++] = dup_str(r->affects[k], &oom);
        }
        for (size_t k = 0; k < r->pending_count; k++) {
            const struct major_page *p = &r->pending[k];
            char id[NOTICE_ID_MAX + 1];
            int seen = 0;
            if (strcmp(p->site, site) != 0)
                continue;
            for (size_t j = 0; j < x->seen_count; j++)
                seen |= x->seen[j] == p->n;
            if (seen)
                continue; /* recorded: the write that says so is on its way */
            Im__EscalationNotice *en = calloc(1, sizeof *en);
            Im__Escalated *pg = calloc(1, sizeof *pg);
            if (en == NULL || pg == NULL) {
                free(en);
                free(pg);
                return IM_ENOMEM;
            }
            im__escalation_notice__init(en);
            im__escalated__init(pg);
            hb->escalations[hb->n_escalations++] = en;
            en->page = pg;
            snprintf(id, sizeof id, "%s/%" PRIu32, r->incident, p->n);
            en->incident = dup_str(r->incident, &oom);
            pg->notice = dup_str(id, &oom);
            pg->level = p->level;
            pg->run = p->run;
            pg->site = dup_str(p->site, &oom);
            pg->person = dup_str(p->person, &oom);
            pg->text = dup_str(p->text, &oom);
        }
    }
    return oom ? IM_ENOMEM : 0;
}

void
majors_reply_free(Im__HeartbeatReply *hb)
{
    for (size_t i = 0; i < hb->n_majors; i++) {
        Im__MajorNotice *mn = hb->majors[i];
        for (size_t k = 0; k < mn->n_affects; k++)
            free(mn->affects[k]);
        free(mn->affects);
        free(mn->incident);
        free(mn->reason);
        free(mn->declared_by);
        free(mn);
    }
    free(hb->majors);
    for (size_t i = 0; i < hb->n_escalations; i++) {
        Im__EscalationNotice *en = hb->escalations[i];
        if (en->page != NULL) {
            free(en->page->notice);
            free(en->page->site);
            free(en->page->person);
            free(en->page->text);
            free(en->page);
        }
        free(en->incident);
        free(en);
    }
    free(hb->escalations);
    hb->majors = NULL;
    hb->escalations = NULL;
    hb->n_majors = hb->n_escalations = 0;
}

int
majors_heartbeat(struct majors *m, int64_t term, const char *site,
                 const Im__Heartbeat *h, Im__HeartbeatReply *hb,
                 struct im_err *e)
{
    int si = replica_site_index(m->r, site);
    int complete = h->n_open >= h->open_count;
    uint8_t *listed = NULL;
    int news = 0, rv;

    if (si < 0)
        return 0;
    pthread_mutex_lock(&m->mu);
    if (m->term != term) {
        pthread_mutex_unlock(&m->mu);
        return 0; /* not loaded for this term yet: the next heartbeat */
    }
    if (m->count > 0 && (listed = calloc(m->count, 1)) == NULL) {
        pthread_mutex_unlock(&m->mu);
        return im_errf(e, IM_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < h->n_open; i++) {
        const Im__IncidentSummary *s = h->open[i];
        struct majors_entry *x;
        if (s->id == NULL || strlen(s->id) > INCIDENT_ID_MAX)
            continue;
        x = find_locked(m, s->id);
        if (x == NULL) {
            int queued = 0;
            if (!s->major || state_closed(s->state) != NULL)
                continue;
            for (size_t q = 0; q < m->queue_count; q++)
                queued |= strcmp(m->queue[q].incident, s->id) == 0;
            if (queued || m->queue_count == MAJORS_QUEUE_MAX)
                continue;
            snprintf(m->queue[m->queue_count].incident, INCIDENT_ID_MAX + 1,
                     "%s", s->id);
            snprintf(m->queue[m->queue_count].site, SITE_CODE_MAX + 1, "%s",
                     site);
            m->queue[m->queue_count++].priority = s->priority;
            news = 1;
            continue;
        }
        listed[x - m->items] = 1;
        x->listed_by |= 1ULL << si;
        if (state_closed(s->state) != NULL && x->gone_site[0] == '\0') {
            snprintf(x->gone_site, sizeof x->gone_site, "%s", site);
            snprintf(x->gone_state, sizeof x->gone_state, "%s",
                     state_closed(s->state));
            news = 1;
        } else if (state_acked(s->state) && x->rec.esc.phase != ESC_ACKED &&
                   x->ack_site[0] == '\0') {
            snprintf(x->ack_site, sizeof x->ack_site, "%s", site);
            news = 1;
        }
        for (size_t k = 0; k < s->n_notices; k++) {
            uint32_t n = majors_notice_n(s->id, s->notices[k]);
            int have = 0, pending = 0;
            for (size_t j = 0; j < x->seen_count; j++)
                have |= x->seen[j] == n;
            for (size_t j = 0; j < x->rec.pending_count; j++)
                pending |= x->rec.pending[j].n == n;
            if (n == 0 || have || !pending ||
                x->seen_count == MAJORS_PENDING_MAX)
                continue;
            x->seen[x->seen_count++] = n;
            news = 1;
        }
    }
    /* A complete heartbeat that leaves an incident out: that site's copy is
     * not open any more. The origin always holds its incidents; the owner
     * counts once it has listed it (before, its copy may not know it owns
     * it yet). */
    for (size_t i = 0; complete && i < m->count; i++) {
        struct majors_entry *x = &m->items[i];
        if (listed[i] || x->gone_site[0] != '\0')
            continue;
        if (strcmp(x->rec.origin, site) == 0 ||
            (strcmp(x->rec.owner, site) == 0 && (x->listed_by >> si & 1))) {
            snprintf(x->gone_site, sizeof x->gone_site, "%s", site);
            x->gone_state[0] = '\0';
            news = 1;
        }
    }
    rv = reply_fill_locked(m, site, hb);
    if (news)
        wake(m);
    pthread_mutex_unlock(&m->mu);
    free(listed);
    if (rv != 0) {
        majors_reply_free(hb);
        return im_errf(e, rv, "out of memory");
    }
    return 0;
}

/* ---- the daemon: etcd ---------------------------------------------------- */

/* Writes rec (prev_rev 0: creates it) in a fenced txn; *rev_out is the
 * record's new mod_revision. */
static int
write_record(struct majors *m, struct major_record *rec, int64_t term,
             int64_t prev_rev, int64_t *rev_out, struct im_err *e)
{
    char key[RECORDS_KEY_MAX + 1], *value;
    struct etcd_cmp cmp;
    struct etcd_op put;
    int rv;

    snprintf(rec->by, sizeof rec->by, "%s", m->cfg->coord.id);
    rec->term = term;
    key_of(m, rec->incident, key);
    if ((value = records_major_encode(rec)) == NULL)
        return im_errf(e, IM_ENOMEM, "out of memory");
    assert(strlen(value) <= MAJORS_RECORD_JSON_MAX);
    cmp = (struct etcd_cmp){.key = key,
                            .target = prev_rev ? ETCD_CMP_MOD : ETCD_CMP_CREATE,
                            .result = ETCD_EQUAL,
                            .number = prev_rev};
    put = (struct etcd_op){.kind = ETCD_OP_PUT,
                           .key = key,
                           .value = value,
                           .value_size = strlen(value)};
    rv = replica_txn(m->r, &cmp, 1, &put, 1, rev_out, e);
    free(value);
    return rv;
}

/* Reads P/majors/ID into *out (heap, the caller frees); IM_ENOTFOUND if
 * absent. */
static int
read_record(struct majors *m, const char *id, struct major_record **out,
            int64_t *rev_out, struct im_err *e)
{
    char key[RECORDS_KEY_MAX + 1];
    struct etcd_kv kv;
    struct major_record *rec;
    int rv;

    key_of(m, id, key);
    if ((rv = etcd_get(&m->r->etcd, key, &kv, NULL, e)) != 0)
        return rv;
    if ((rec = malloc(sizeof *rec)) == NULL) {
        etcd_kv_free(&kv);
        return im_errf(e, IM_ENOMEM, "out of memory");
    }
    if ((rv = records_major_decode(kv.value, kv.value_size, rec, e)) != 0) {
        im_errwrap(e, "%s", key);
        free(rec);
    } else {
        *out = rec;
        *rev_out = kv.mod_revision;
    }
    etcd_kv_free(&kv);
    return rv;
}

/* The owner P/assign records, or the origin if none. */
static int
owner_read(struct majors *m, const char *id, const char *origin,
           char owner[SITE_CODE_MAX + 1], struct im_err *e)
{
    char key[RECORDS_KEY_MAX + 1];
    struct etcd_kv kv;
    struct assignment_record a;
    int rv;

    records_key(key, m->cfg->etcd.prefix, "assign", id);
    rv = etcd_get(&m->r->etcd, key, &kv, NULL, e);
    if (rv == IM_ENOTFOUND) {
        snprintf(owner, SITE_CODE_MAX + 1, "%s", origin);
        return 0;
    }
    if (rv != 0)
        return rv;
    rv = records_assignment_decode(kv.value, kv.value_size, &a, e);
    etcd_kv_free(&kv);
    if (rv == 0)
        memcpy(owner, a.owner_site, sizeof a.owner_site);
    return rv;
}

/* The schedule in force: P/schedule, parsed again when the revision the
 * replica holds (coord/schedstore.h: it watches the key, and the leader's
 * apply updates it at once) differs from ours, so that a tick costs no etcd
 * read. Our own parsed copy, because a tick uses it across etcd calls
 * while the replica's may be swapped. Under write_mu. */
static void
schedule_refresh(struct majors *m)
{
    struct etcd_kv kv;
    struct im_err e = {0};
    struct schedule *s = NULL;
    struct esc_policy pol;
    int64_t have;
    int rv;

    pthread_mutex_lock(&m->r->mu);
    have = m->r->sched_rev;
    pthread_mutex_unlock(&m->r->mu);
    if (have == m->sched_rev && (have != 0 || m->sched == NULL))
        return;
    rv = have == 0 ? IM_ENOTFOUND
                   : etcd_get(&m->r->etcd, m->k_schedule, &kv, NULL, &e);
    if (rv == IM_ENOTFOUND) {
        if (m->sched_rev != 0 || m->sched != NULL)
            log_info("no schedule in etcd: major incidents run the built-in "
                     "policy and page nobody by name");
        schedule_free(m->sched);
        m->sched = NULL;
        m->sched_rev = 0;
        return;
    }
    if (rv != 0) {
        log_debug("reading the schedule: %s", im_errmsg(&e));
        return;
    }
    if (kv.mod_revision != m->sched_rev) {
        if (schedule_parse((const char *)kv.value, kv.value_size, &s, &e) !=
            0) {
            log_warn("%s (revision %" PRId64 "): %s; keeping the schedule "
                     "read before",
                     m->k_schedule, kv.mod_revision, im_errmsg(&e));
        } else {
            schedule_free(m->sched);
            m->sched = s;
            size_t raised = majors_policy(s, m->cfg->coord.min_ack_ms, &pol);
            log_info("schedule revision %" PRId64 " in force: %zu escalation "
                     "levels%s",
                     kv.mod_revision, pol.levels_count,
                     raised ? ", some raised to [coord] min_ack" : "");
        }
        m->sched_rev = kv.mod_revision;
    }
    etcd_kv_free(&kv);
}

/* Loads the unresolved records for term, as a new leader. Under write_mu. */
static int
ensure_loaded(struct majors *m, int64_t term, struct im_err *e)
{
    struct etcd_range rg;
    struct majors_entry *items;
    size_t n = 0;
    int rv;

    pthread_mutex_lock(&m->mu);
    rv = m->term == term;
    pthread_mutex_unlock(&m->mu);
    if (rv)
        return 0;
    if ((rv = etcd_range(&m->r->etcd, m->k_majors, ETCD_PREFIX, 0, 0, &rg,
                         e)) != 0)
        return rv;
    if ((items = calloc(MAJORS_ACTIVE_MAX, sizeof *items)) == NULL) {
        etcd_range_free(&rg);
        return im_errf(e, IM_ENOMEM, "out of memory");
    }
    for (size_t k = 0; k < rg.count; k++) {
        struct im_err de = {0};
        struct majors_entry *x = &items[n];
        if (n == MAJORS_ACTIVE_MAX) {
            log_warn("more than %d unresolved major incidents: %s and later "
                     "ones are not tracked",
                     MAJORS_ACTIVE_MAX, rg.kvs[k].key);
            break;
        }
        if (records_major_decode(rg.kvs[k].value, rg.kvs[k].value_size, &x->rec,
                                 &de) != 0) {
            log_warn("%s: %s: left alone", rg.kvs[k].key, im_errmsg(&de));
            continue;
        }
        if (x->rec.resolved_ms != 0)
            continue;
        x->mod_rev = rg.kvs[k].mod_revision;
        n++;
    }
    etcd_range_free(&rg);
    pthread_mutex_lock(&m->mu);
    free(m->items);
    m->items = items;
    m->count = n;
    m->queue_count = 0;
    m->term = term;
    pthread_mutex_unlock(&m->mu);
    log_info("leader (term %" PRId64 "): %zu unresolved major incident%s to "
             "carry on",
             term, n, n == 1 ? "" : "s");
    return 0;
}

static void
drop_cache(struct majors *m)
{
    pthread_mutex_lock(&m->mu);
    if (m->term != 0)
        log_debug("majors: not leading; cache dropped");
    m->term = 0;
    m->count = 0;
    m->queue_count = 0;
    pthread_mutex_unlock(&m->mu);
}

/* Installs rec (at rev) in the cache, or removes it once resolved. */
static void
cache_put(struct majors *m, const struct major_record *rec, int64_t rev,
          uint64_t owner_checked_ms)
{
    struct majors_entry *x;
    pthread_mutex_lock(&m->mu);
    x = find_locked(m, rec->incident);
    if (rec->resolved_ms != 0) {
        if (x != NULL)
            *x = m->items[--m->count];
    } else if (x != NULL || m->count < MAJORS_ACTIVE_MAX) {
        if (x == NULL) {
            x = &m->items[m->count++];
            memset(x, 0, sizeof *x);
        }
        x->rec = *rec;
        x->mod_rev = rev;
        x->owner_checked_ms = owner_checked_ms;
        /* What the write took in; anything newer is shown again by the
         * next heartbeat. */
        if (rec->esc.phase == ESC_ACKED)
            x->ack_site[0] = '\0';
        x->seen_count = 0;
    }
    pthread_mutex_unlock(&m->mu);
}

static void
log_pages(const struct major_record *rec, uint32_t first)
{
    for (size_t i = 0; i < rec->pending_count; i++) {
        const struct major_page *p = &rec->pending[i];
        if (p->n < first)
            continue;
        log_info("%s/%" PRIu32 ": page %s at %s: %s", rec->incident, p->n,
                 p->person[0] ? p->person : "(nobody on call)", p->site,
                 p->text);
    }
}

/* Registers rec (declaration filled in): starts its ladder and writes it,
 * before any page goes out. Under write_mu. */
static int
register_new(struct majors *m, int64_t term, struct major_record *rec,
             struct im_err *e)
{
    struct esc_policy pol;
    uint64_t now = clock_wall_ms();
    int64_t rev = 0;
    int rv;

    pthread_mutex_lock(&m->mu);
    rv = m->count >= MAJORS_ACTIVE_MAX;
    pthread_mutex_unlock(&m->mu);
    if (rv)
        return im_errf(e, IM_ETOOBIG,
                       "%d major incidents are unresolved: the most one "
                       "coordinator tracks",
                       MAJORS_ACTIVE_MAX);
    majors_policy(m->sched, m->cfg->coord.min_ack_ms, &pol);
    rec->declared_ms = now;
    if ((rv = majors_start(rec, &pol, m->sched, now, e)) != 0 ||
        (rv = write_record(m, rec, term, 0, &rev, e)) != 0)
        return rv;
    cache_put(m, rec, rev, now);
    log_info("%s: major incident registered (declared by %s; owner %s): "
             "level 1 of %" PRIu32 ", %s",
             rec->incident, rec->declared_by, rec->owner, rec->levels,
             rec->target);
    log_pages(rec, 1);
    return 0;
}

static void
affects_add(struct major_record *rec, const char *site)
{
    for (size_t i = 0; i < rec->affects_count; i++)
        if (strcmp(rec->affects[i], site) == 0)
            return;
    if (rec->affects_count < AFFECTS_MAX)
        snprintf(rec->affects[rec->affects_count++], SITE_CODE_MAX + 1, "%s",
                 site);
}

/* A heartbeat showed an unregistered major incident. Under write_mu. */
static void
register_seen(struct majors *m, int64_t term, const char *id, const char *site,
              uint32_t priority)
{
    struct major_record *rec = NULL;
    struct im_err e = {0};
    int64_t rev = 0;
    int rv;

    pthread_mutex_lock(&m->mu);
    rv = find_locked(m, id) != NULL;
    pthread_mutex_unlock(&m->mu);
    if (rv)
        return;
    rv = read_record(m, id, &rec, &rev, &e);
    if (rv == 0) {
        /* Registered before: it was resolved, and is open again. */
        if (rec->resolved_ms != 0) {
            log_info("%s: reopened (major incident resolved %s); tracked "
                     "again",
                     id, rec->resolved_why);
            rec->resolved_ms = 0;
            rec->resolved_why[0] = '\0';
            rv = write_record(m, rec, term, rev, &rev, &e);
        }
        if (rv == 0)
            cache_put(m, rec, rev, 0);
        else
            log_warn("%s: %s", id, im_errmsg(&e));
        free(rec);
        return;
    }
    if (rv != IM_ENOTFOUND) {
        log_warn("%s: reading its major record: %s", id, im_errmsg(&e));
        return;
    }
    if ((rec = calloc(1, sizeof *rec)) == NULL)
        return;
    snprintf(rec->incident, sizeof rec->incident, "%s", id);
    if (records_incident_origin(id, rec->origin) != 0 ||
        owner_read(m, id, rec->origin, rec->owner, &e) != 0) {
        log_warn("%s: cannot register: %s", id, im_errmsg(&e));
        free(rec);
        return;
    }
    snprintf(rec->declared_by, sizeof rec->declared_by, "coordinator: %s at %s",
             priority == 1 ? "P1" : "major", site);
    snprintf(rec->reason, sizeof rec->reason, "%s reported by site %s",
             priority == 1 ? "a P1 incident" : "an incident declared major",
             site);
    affects_add(rec, rec->origin);
    affects_add(rec, rec->owner);
    affects_add(rec, site);
    if (register_new(m, term, rec, &e) != 0 && e.code != IM_ENOTLEADER)
        log_warn("%s: cannot register: %s", id, im_errmsg(&e));
    free(rec);
}

/* One major's step: what heartbeats showed, expiry, the owner, the ladder;
 * written if anything changed. Under write_mu. */
static void
step_one(struct majors *m, int64_t term, const char *id,
         const struct esc_policy *pol, uint64_t now)
{
    struct majors_entry *x, *snap;
    struct major_record *rec;
    struct im_err e = {0};
    int changed = 0, stepped = 0, need_owner;
    int64_t rev;
    uint32_t first;

    if ((snap = malloc(sizeof *snap)) == NULL)
        return;
    pthread_mutex_lock(&m->mu);
    x = find_locked(m, id);
    if (x != NULL)
        *snap = *x;
    pthread_mutex_unlock(&m->mu);
    if (x == NULL) {
        free(snap);
        return;
    }
    rec = &snap->rec;
    first = rec->issued + 1;
    for (size_t i = 0; i < snap->seen_count; i++)
        changed |= majors_recorded(rec, snap->seen[i]);
    size_t gone = majors_expire(rec, now);
    if (gone > 0) {
        changed = 1;
        log_warn("%s: %zu page%s not recorded by the site%s within %d min: "
                 "given up (%" PRIu32 " expired in all)",
                 id, gone, gone == 1 ? "" : "s", gone == 1 ? "" : "s",
                 MAJORS_NOTICE_TTL_MS / 60000, rec->expired);
    }
    if (snap->gone_site[0] != '\0') {
        char why[MAJORS_REASON_MAX + 1];
        if (snap->gone_state[0] != '\0')
            snprintf(why, sizeof why, "%s at %s", snap->gone_state,
                     snap->gone_site);
        else
            snprintf(why, sizeof why,
                     "no longer open at %s (resolved, closed or cancelled)",
                     snap->gone_site);
        majors_resolve(rec, why, now);
        changed = 1;
        log_info("%s: major incident over: %s", id, why);
    } else {
        if (snap->ack_site[0] != '\0' && rec->esc.phase != ESC_ACKED) {
            char who[PERSON_MAX + 1];
            snprintf(who, sizeof who, "site %s", snap->ack_site);
            if (escalate_ack(&rec->esc, who, now, &e) == 0) {
                changed = 1;
                log_info("%s: acknowledged at %s: no more escalation", id,
                         snap->ack_site);
            }
        }
        need_owner =
            now - snap->owner_checked_ms >= MAJORS_OWNER_REFRESH_MS ||
            (rec->esc.phase == ESC_ACTIVE && now >= rec->esc.deadline_ms);
        if (need_owner) {
            char owner[SITE_CODE_MAX + 1];
            if (owner_read(m, id, rec->origin, owner, &e) == 0) {
                snap->owner_checked_ms = now;
                if (strcmp(owner, rec->owner) != 0) {
                    memcpy(rec->owner, owner, sizeof owner);
                    affects_add(rec, owner);
                    changed = 1;
                }
            }
        }
        if (majors_tick(rec, pol, m->sched, now, &stepped, &e) != 0)
            log_warn("%s: escalation: %s", id, im_errmsg(&e));
        changed |= stepped;
    }
    if (!changed) {
        pthread_mutex_lock(&m->mu);
        if ((x = find_locked(m, id)) != NULL)
            x->owner_checked_ms = snap->owner_checked_ms;
        pthread_mutex_unlock(&m->mu);
        free(snap);
        return;
    }
    if (write_record(m, rec, term, snap->mod_rev, &rev, &e) == 0) {
        cache_put(m, rec, rev, snap->owner_checked_ms);
        if (stepped)
            log_info("%s: %s; level %" PRIu32 " of %" PRIu32 ", run %" PRIu32
                     " of %" PRIu32,
                     id, rec->target, rec->esc.level + 1, rec->levels,
                     rec->esc.pass + 1, rec->runs);
        log_pages(rec, first);
    } else if (e.code == IM_ESTALE && strstr(e.msg, "deposed") == NULL) {
        /* Another writer of ours changed it: take etcd's version. */
        struct major_record *cur = NULL;
        if (read_record(m, id, &cur, &rev, &e) == 0) {
            cache_put(m, cur, rev, 0);
            free(cur);
        }
    } else if (e.code != IM_ENOTLEADER) {
        log_warn("%s: writing its major record: %s", id, im_errmsg(&e));
    }
    free(snap);
}

/* Under write_mu. */
static void
tick(struct majors *m, int64_t term)
{
    char(*ids)[INCIDENT_ID_MAX + 1];
    struct esc_policy pol;
    size_t n = 0, nq;
    uint64_t now;
    struct {
        char incident[INCIDENT_ID_MAX + 1];
        char site[SITE_CODE_MAX + 1];
        uint32_t priority;
    } queue[MAJORS_QUEUE_MAX];

    pthread_mutex_lock(&m->mu);
    nq = m->queue_count;
    memcpy(queue, m->queue, nq * sizeof queue[0]);
    m->queue_count = 0;
    pthread_mutex_unlock(&m->mu);
    for (size_t i = 0; i < nq; i++)
        register_seen(m, term, queue[i].incident, queue[i].site,
                      queue[i].priority);

    if ((ids = calloc(MAJORS_ACTIVE_MAX, sizeof *ids)) == NULL)
        return;
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->count; i++)
        memcpy(ids[n++], m->items[i].rec.incident, INCIDENT_ID_MAX + 1);
    pthread_mutex_unlock(&m->mu);
    majors_policy(m->sched, m->cfg->coord.min_ack_ms, &pol);
    now = clock_wall_ms();
    for (size_t i = 0; i < n; i++)
        step_one(m, term, ids[i], &pol, now);
    free(ids);
}

static void
wait_wake(struct majors *m, uint64_t ms)
{
    struct timespec ts;
    pthread_mutex_lock(&m->mu);
    if (!atomic_load(&m->stop) && !m->wake) {
        ts = clock_realtime_after(ms);
        pthread_cond_timedwait(&m->cv, &m->mu, &ts);
    }
    m->wake = 0;
    pthread_mutex_unlock(&m->mu);
}

static void *
majors_main(void *arg)
{
    struct majors *m = arg;

    while (!atomic_load(&m->stop)) {
        struct im_err e = {0};
        int64_t term = 0;
        if (!replica_leading(m->r, &term, NULL, NULL)) {
            drop_cache(m);
            wait_wake(m, 200);
            continue;
        }
        pthread_mutex_lock(&m->write_mu);
        if (ensure_loaded(m, term, &e) == 0) {
            schedule_refresh(m);
            tick(m, term);
        } else {
            log_warn("reading the major incidents: %s (retrying)",
                     im_errmsg(&e));
        }
        pthread_mutex_unlock(&m->write_mu);
        wait_wake(m, MAJORS_TICK_MS);
    }
    return NULL;
}

int
majors_start_daemon(struct majors *m, struct replica *r,
                    const struct config *cfg, struct im_err *e)
{
    memset(m, 0, sizeof *m);
    m->r = r;
    m->cfg = cfg;
    records_key(m->k_majors, cfg->etcd.prefix, "majors", "");
    records_key(m->k_schedule, cfg->etcd.prefix, "schedule", "");
    m->k_schedule[strlen(m->k_schedule) - 1] = '\0'; /* P/schedule */
    pthread_mutex_init(&m->mu, NULL);
    pthread_mutex_init(&m->write_mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    if (pthread_create(&m->thread, NULL, majors_main, m) != 0) {
        pthread_cond_destroy(&m->cv);
        pthread_mutex_destroy(&m->write_mu);
        pthread_mutex_destroy(&m->mu);
        return im_errf(e, IM_ENOMEM, "start the majors thread");
    }
    m->started = 1;
    return 0;
}

void
majors_stop(struct majors *m)
{
    if (!m->started)
        return;
    atomic_store(&m->stop, 1);
    pthread_mutex_lock(&m->mu);
    wake(m);
    pthread_mutex_unlock(&m->mu);
    pthread_join(m->thread, NULL);
    m->started = 0;
    schedule_free(m->sched);
    free(m->items);
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->write_mu);
    pthread_mutex_destroy(&m->mu);
}

/* ---- the operator ops ---------------------------------------------------- */

static int
record_pb(const struct major_record *r, Im__MajorRecord *pb)
{
    int oom = 0;
    im__major_record__init(pb);
    pb->incident = dup_str(r->incident, &oom);
    pb->declared_at_ms = r->declared_ms;
    pb->declared_by = dup_str(r->declared_by, &oom);
    pb->reason = dup_str(r->reason, &oom);
    pb->level = r->esc.level + 1;
    pb->next_deadline_ms = r->resolved_ms ? 0 : r->esc.deadline_ms;
    pb->acknowledged = r->esc.phase == ESC_ACKED;
    pb->global_manager = dup_str(r->global_manager, &oom);
    pb->resolved = r->resolved_ms != 0;
    pb->owner_site = dup_str(r->owner, &oom);
    pb->origin_site = dup_str(r->origin, &oom);
    pb->run = r->esc.pass + 1;
    pb->runs = r->runs;
    pb->levels = r->levels;
    pb->phase = dup_str(
        r->resolved_ms ? "resolved" : escalate_phase_name(r->esc.phase), &oom);
    pb->acked_by = dup_str(r->esc.acked_by, &oom);
    pb->acked_at_ms = r->esc.acked_ms;
    pb->target = dup_str(r->target, &oom);
    pb->paged_person = dup_str(r->paged_person, &oom);
    pb->paged_site = dup_str(r->paged_site, &oom);
    pb->notices_issued = r->issued;
    pb->notices_recorded = r->recorded;
    pb->notices_pending = (uint32_t)r->pending_count;
    pb->notices_expired = r->expired;
    pb->resolved_at_ms = r->resolved_ms;
    pb->resolved_why = dup_str(r->resolved_why, &oom);
    pb->started_at_ms = r->esc.started_ms;
    if (r->affects_count > 0 &&
        (pb->affects = calloc(r->affects_count, sizeof *pb->affects)) == NULL)
        oom = 1;
    for (size_t i = 0; pb->affects != NULL && i < r->affects_count; i++)
        pb->affects[pb->n_affects++] = dup_str(r->affects[i], &oom);
    if (r->esc.help_count > 0 &&
        (pb->help_sites = calloc(r->esc.help_count, sizeof *pb->help_sites)) ==
            NULL)
        oom = 1;
    for (size_t i = 0; pb->help_sites != NULL && i < r->esc.help_count; i++)
        pb->help_sites[pb->n_help_sites++] = dup_str(r->esc.help[i].site, &oom);
    return oom ? IM_ENOMEM : 0;
}

static void
record_pb_free(Im__MajorRecord *pb)
{
    char **strs[] = {&pb->incident,       &pb->declared_by, &pb->reason,
                     &pb->global_manager, &pb->owner_site,  &pb->origin_site,
                     &pb->phase,          &pb->acked_by,    &pb->target,
                     &pb->paged_person,   &pb->paged_site,  &pb->resolved_why};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (*strs[i] != protobuf_c_empty_string)
            free(*strs[i]);
    for (size_t i = 0; i < pb->n_affects; i++)
        free(pb->affects[i]);
    free(pb->affects);
    for (size_t i = 0; i < pb->n_help_sites; i++)
        free(pb->help_sites[i]);
    free(pb->help_sites);
    free(pb);
}

void
majors_answer_free(struct majors_answer *a)
{
    for (size_t i = 0; i < a->reply.n_majors; i++)
        record_pb_free(a->reply.majors[i]);
    free(a->reply.majors);
    if (a->reply.replica != protobuf_c_empty_string)
        free(a->reply.replica);
    im__majors_reply__init(&a->reply);
}

static void
answer_init(struct majors *m, struct majors_answer *a)
{
    int64_t term;
    int oom = 0;
    im__majors_reply__init(&a->reply);
    a->reply.leader = replica_leading(m->r, &term, NULL, NULL);
    a->reply.replica = dup_str(m->cfg->coord.id, &oom);
}

/* Appends rec to the answer (room for it was made by the caller). */
static int
answer_add(struct majors_answer *a, const struct major_record *rec,
           struct im_err *e)
{
    Im__MajorRecord *pb = calloc(1, sizeof *pb);
    if (pb == NULL)
        return im_errf(e, IM_ENOMEM, "out of memory");
    a->reply.majors[a->reply.n_majors++] = pb;
    if (record_pb(rec, pb) != 0)
        return im_errf(e, IM_ENOMEM, "out of memory");
    return 0;
}

static int
answer_one(struct majors *m, struct majors_answer *a,
           const struct major_record *rec, struct im_err *e)
{
    answer_init(m, a);
    if ((a->reply.majors = calloc(1, sizeof *a->reply.majors)) == NULL)
        return im_errf(e, IM_ENOMEM, "out of memory");
    return answer_add(a, rec, e);
}

int
majors_op_list(struct majors *m, int all, struct majors_answer *a,
               struct im_err *e)
{
    struct etcd_range rg;
    struct major_record *rec;
    int rv;

    answer_init(m, a);
    /* Serializable, as `imctl sites`: answers while etcd elects a leader. */
    if ((rv = etcd_range(&m->r->etcd, m->k_majors,
                         ETCD_PREFIX | ETCD_SERIALIZABLE, 0, 0, &rg, e)) != 0)
        return rv;
    a->reply.revision = (uint64_t)rg.revision;
    rec = malloc(sizeof *rec);
    a->reply.majors = calloc(rg.count ? rg.count : 1, sizeof *a->reply.majors);
    if (rec == NULL || a->reply.majors == NULL) {
        rv = im_errf(e, IM_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t k = 0; k < rg.count; k++) {
        struct im_err de = {0};
        if (records_major_decode(rg.kvs[k].value, rg.kvs[k].value_size, rec,
                                 &de) != 0) {
            log_warn("%s: %s", rg.kvs[k].key, im_errmsg(&de));
            continue;
        }
        if (!all && rec->resolved_ms != 0)
            continue;
        if (a->reply.n_majors == MAJORS_LIST_MAX) {
            a->reply.omitted++;
            continue;
        }
        if ((rv = answer_add(a, rec, e)) != 0)
            goto out;
    }
out:
    free(rec);
    etcd_range_free(&rg);
    return rv;
}

static int
check_id(struct majors *m, const char *id, char origin[SITE_CODE_MAX + 1],
         struct im_err *e)
{
    if (id == NULL || strlen(id) > INCIDENT_ID_MAX ||
        records_incident_origin(id, origin) != 0)
        return im_errf(e, IM_EINVAL,
                       "'%.40s' is not an incident id (SITE-N, e.g. AMS-42)",
                       id ? id : "");
    if (replica_site_index(m->r, origin) < 0)
        return im_errf(e, IM_EINVAL, "%s: no site '%s' in this cluster", id,
                       origin);
    return 0;
}

/* The leader's term with the cache loaded for it. Under write_mu. */
static int
leader_ready(struct majors *m, int64_t *term, struct im_err *e)
{
    if (!replica_leading(m->r, term, NULL, NULL))
        return im_errf(e, IM_ENOTLEADER, "replica %s is not the leader",
                       m->cfg->coord.id);
    return ensure_loaded(m, *term, e);
}

int
majors_op_declare(struct majors *m, const char *operator_name,
                  const Im__MajorDeclare *d, struct majors_answer *a,
                  struct im_err *e)
{
    struct major_record *rec, *old = NULL;
    struct majors_entry *x;
    char origin[SITE_CODE_MAX + 1], at[CLOCK_RFC3339_MAX];
    char key[RECORDS_KEY_MAX + 1];
    const char *reason = d->reason ? d->reason : "";
    struct etcd_kv kv;
    int64_t term, rev;
    int rv;

    answer_init(m, a);
    if ((rv = check_id(m, d->incident, origin, e)) != 0)
        return rv;
    if (strlen(reason) > MAJORS_REASON_MAX)
        return im_errf(e, IM_ETOOBIG, "reason: longer than %d bytes",
                       MAJORS_REASON_MAX);
    if (d->n_affects > AFFECTS_MAX)
        return im_errf(e, IM_ETOOBIG, "affects: more than %d sites",
                       AFFECTS_MAX);
    for (size_t i = 0; i < d->n_affects; i++) {
        if (replica_site_index(m->r, d->affects[i]) < 0)
            return im_errf(e, IM_EINVAL,
                           "affects: no site '%.16s' in this "
                           "cluster",
                           d->affects[i]);
        for (size_t k = 0; k < i; k++)
            if (strcmp(d->affects[k], d->affects[i]) == 0)
                return im_errf(e, IM_EINVAL, "affects: %s named twice",
                               d->affects[i]);
    }
    if ((rec = calloc(1, sizeof *rec)) == NULL)
        return im_errf(e, IM_ENOMEM, "out of memory");
    pthread_mutex_lock(&m->write_mu);
    if ((rv = leader_ready(m, &term, e)) != 0)
        goto out;
    schedule_refresh(m);
    pthread_mutex_lock(&m->mu);
    if ((x = find_locked(m, d->incident)) != NULL) {
        clock_fmt_rfc3339(x->rec.declared_ms, at);
        rv = im_errf(e, IM_EEXIST,
                     "%s is already a major incident (declared by %s at %s)",
                     d->incident, x->rec.declared_by, at);
    }
    pthread_mutex_unlock(&m->mu);
    if (rv != 0)
        goto out;
    if ((rv = read_record(m, d->incident, &old, &rev, e)) == 0) {
        clock_fmt_rfc3339(old->resolved_ms, at);
        rv = im_errf(e, IM_EEXIST,
                     "%s was a major incident, resolved at %s (%s)",
                     d->incident, at, old->resolved_why);
        free(old);
        goto out;
    }
    if (rv != IM_ENOTFOUND)
        goto out;
    /* Known to the coordinator: a site reported it, so it has an owner. */
    records_key(key, m->cfg->etcd.prefix, "assign", d->incident);
    if ((rv = etcd_get(&m->r->etcd, key, &kv, NULL, e)) == IM_ENOTFOUND) {
        rv = im_errf(e, IM_ENOTFOUND,
                     "unknown incident %s: no site has reported it in a "
                     "heartbeat",
                     d->incident);
        goto out;
    }
    if (rv != 0)
        goto out;
    etcd_kv_free(&kv);
    snprintf(rec->incident, sizeof rec->incident, "%s", d->incident);
    memcpy(rec->origin, origin, sizeof origin);
    if ((rv = owner_read(m, d->incident, origin, rec->owner, e)) != 0)
        goto out;
    snprintf(rec->declared_by, sizeof rec->declared_by, "%s", operator_name);
    snprintf(rec->reason, sizeof rec->reason, "%s", reason);
    affects_add(rec, rec->origin);
    affects_add(rec, rec->owner);
    for (size_t i = 0; i < d->n_affects; i++)
        affects_add(rec, d->affects[i]);
    if ((rv = register_new(m, term, rec, e)) == 0)
        rv = answer_one(m, a, rec, e);
out:
    pthread_mutex_unlock(&m->write_mu);
    free(rec);
    return rv;
}

int
majors_op_escalate(struct majors *m, const char *operator_name,
                   const Im__Escalate *x, struct majors_answer *a,
                   struct im_err *e)
{
    struct majors_entry *ent;
    struct major_record *rec;
    struct esc_policy pol;
    char origin[SITE_CODE_MAX + 1], owner[SITE_CODE_MAX + 1];
    const char *reason = x->reason ? x->reason : "";
    const char *to = x->to_site ? x->to_site : "";
    int64_t term, rev = 0;
    uint64_t now;
    uint32_t first;
    int rv;

    answer_init(m, a);
    if ((rv = check_id(m, x->incident, origin, e)) != 0)
        return rv;
    if (strlen(reason) > ESC_REASON_MAX)
        return im_errf(e, IM_ETOOBIG, "reason: longer than %d bytes",
                       ESC_REASON_MAX);
    if (to[0] != '\0' && replica_site_index(m->r, to) < 0)
        return im_errf(e, IM_EINVAL, "no site '%.16s' in this cluster", to);
    if ((rec = malloc(sizeof *rec)) == NULL)
        return im_errf(e, IM_ENOMEM, "out of memory");
    pthread_mutex_lock(&m->write_mu);
    if ((rv = leader_ready(m, &term, e)) != 0)
        goto out;
    schedule_refresh(m);
    pthread_mutex_lock(&m->mu);
    if ((ent = find_locked(m, x->incident)) != NULL) {
        *rec = ent->rec;
        rev = ent->mod_rev;
    }
    pthread_mutex_unlock(&m->mu);
    if (ent == NULL) {
        struct major_record *old = NULL;
        rv = read_record(m, x->incident, &old, &rev, e);
        if (rv == IM_ENOTFOUND)
            rv = im_errf(e, IM_ENOTFOUND,
                         "%s is not a major incident (imctl major declare %s "
                         "registers it)",
                         x->incident, x->incident);
        else if (rv == 0)
            rv = refuse_resolved(old, e);
        free(old);
        goto out;
    }
    now = clock_wall_ms();
    if ((rv = owner_read(m, x->incident, origin, owner, e)) != 0)
        goto out;
    if (strcmp(owner, rec->owner) != 0) {
        memcpy(rec->owner, owner, sizeof owner);
        affects_add(rec, owner);
    }
    first = rec->issued + 1;
    majors_policy(m->sched, m->cfg->coord.min_ack_ms, &pol);
    if (to[0] != '\0')
        rv = majors_help(rec, m->sched, to, operator_name, now, e);
    else
        rv =
            majors_escalate(rec, &pol, m->sched, operator_name, reason, now, e);
    if (rv != 0 || (rv = write_record(m, rec, term, rev, &rev, e)) != 0)
        goto out;
    cache_put(m, rec, rev, now);
    if (to[0] != '\0')
        log_info("%s: %s asks %s for help", x->incident, operator_name, to);
    else
        log_info("%s: escalated by %s: %s, level %" PRIu32 " of %" PRIu32,
                 x->incident, operator_name, rec->target, rec->esc.level + 1,
                 rec->levels);
    log_pages(rec, first);
    rv = answer_one(m, a, rec, e);
out:
    pthread_mutex_unlock(&m->write_mu);
    free(rec);
    return rv;
}
