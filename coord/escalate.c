/* escalate: see escalate.h. */
#include "escalate.h"

#include <assert.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "oncall.h"

/* A notice's own text stays this much under ESC_WHY_MAX, so that the copy
 * to a helping site ("copy for NYC: ...") fits without truncation. */
#define COPY_PREFIX_MAX (16 + SITE_CODE_MAX)

#define PATH_TEXT_MAX 256

const char *
escalate_target_name(enum esc_target t)
{
    switch (t) {
    case ESC_SITE_MANAGER: return "site_manager";
    case ESC_SITE_BACKUP: return "site_backup";
    case ESC_GLOBAL_MANAGER: return "global_manager";
    case ESC_PERSON: return "person";
    }
    return "unknown";
}

const char *
escalate_phase_name(enum esc_phase p)
{
    switch (p) {
    case ESC_ACTIVE: return "active";
    case ESC_ACKED: return "acknowledged";
    case ESC_EXHAUSTED: return "exhausted";
    }
    return "unknown";
}

int
escalate_policy_check(const struct esc_policy *policy, const char *path,
                      struct im_err *e)
{
    char p[PATH_TEXT_MAX];
    const char *dot = (path && path[0]) ? "." : "";
    path = path ? path : "";
    int rv;

    if (policy->levels_count == 0)
        return im_errf(e, IM_EINVAL,
                       "%s%slevels: empty list (a policy needs "
                       "at least one level)",
                       path, dot);
    if (policy->levels_count > ESC_LEVELS_MAX)
        return im_errf(e, IM_ETOOBIG, "%s%slevels: more than %d levels", path,
                       dot, ESC_LEVELS_MAX);
    for (size_t i = 0; i < policy->levels_count; i++) {
        const struct esc_level *l = &policy->levels[i];
        switch (l->target) {
        case ESC_PERSON:
            snprintf(p, sizeof p, "%s%slevels[%zu].person", path, dot, i);
            if ((rv = oncall_check_person(l->person, p, e)) != 0)
                return rv;
            break;
        case ESC_SITE_MANAGER:
        case ESC_SITE_BACKUP:
        case ESC_GLOBAL_MANAGER:
            if (l->person[0] != '\0')
                return im_errf(e, IM_EINVAL,
                               "%s%slevels[%zu].person: only for target "
                               "\"person\"",
                               path, dot, i);
            break;
        default:
            return im_errf(e, IM_EINVAL, "%s%slevels[%zu].target: unknown",
                           path, dot, i);
        }
        if (l->ack_ms < ESC_ACK_MS_MIN || l->ack_ms > ESC_ACK_MS_MAX)
            return im_errf(e, IM_EINVAL,
                           "%s%slevels[%zu].ack: must be from 5s to 24h", path,
                           dot, i);
    }
    if (policy->repeat > ESC_REPEAT_MAX)
        return im_errf(e, IM_EINVAL, "%s%srepeat: at most %d", path, dot,
                       ESC_REPEAT_MAX);
    return 0;
}

void
escalate_describe_target(const struct esc_level *l, const char *site, char *out,
                         size_t cap)
{
    switch (l->target) {
    case ESC_SITE_MANAGER:
        snprintf(out, cap, "site manager of %s", site);
        break;
    case ESC_SITE_BACKUP: snprintf(out, cap, "site backup of %s", site); break;
    case ESC_GLOBAL_MANAGER: snprintf(out, cap, "global manager"); break;
    case ESC_PERSON: snprintf(out, cap, "%s", l->person); break;
    }
}

static void notice_why(struct esc_notice *n, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
notice_why(struct esc_notice *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(n->why, sizeof n->why, fmt, ap);
    va_end(ap);
    /* Our texts are bounded by the names in them: too long is a bug. */
    assert(len >= 0 && len < ESC_WHY_MAX - COPY_PREFIX_MAX);
}

/* The notice for level `lvl` of `pass`, with "where" words; returns it. */
static struct esc_notice *
level_notice(struct esc_notices *out, const struct esc_policy *policy,
             const char *owner_site, uint32_t lvl, uint32_t pass,
             enum esc_why why)
{
    struct esc_notice *n = &out->items[out->count++];
    const struct esc_level *l = &policy->levels[lvl];
    memset(n, 0, sizeof *n);
    n->target = l->target;
    snprintf(n->site, sizeof n->site, "%s", owner_site);
    memcpy(n->person, l->person, sizeof n->person);
    n->level = lvl;
    n->pass = pass;
    n->why_code = why;
    return n;
}

/* "level 2 of 3 (site backup of AMS), run 1 of 2, acknowledge within 10m 00s"
 */
static void
fmt_level(char *buf, size_t cap, const struct esc_policy *policy,
          const char *owner_site, uint32_t lvl, uint32_t pass)
{
    char who[PERSON_MAX + 32], within[32], run[32] = "";
    escalate_describe_target(&policy->levels[lvl], owner_site, who, sizeof who);
    clock_fmt_duration(policy->levels[lvl].ack_ms, within);
    if (policy->repeat > 0)
        snprintf(run, sizeof run, ", run %u of %u", pass + 1,
                 policy->repeat + 1);
    snprintf(buf, cap, "level %u of %zu (%s)%s, acknowledge within %s", lvl + 1,
             policy->levels_count, who, run, within);
}

static void
add_copies(struct esc_notices *out, const struct esc_state *st)
{
    assert(out->count == 1);
    const struct esc_notice *first = &out->items[0];
    for (size_t i = 0; i < st->help_count; i++) {
        struct esc_notice *n = &out->items[out->count++];
        *n = *first;
        n->target = ESC_SITE_MANAGER;
        memcpy(n->site, st->help[i].site, sizeof n->site);
        n->person[0] = '\0';
        n->why_code = ESC_WHY_COPY;
        int len = snprintf(n->why, sizeof n->why, "copy for %s: %s",
                           st->help[i].site, first->why);
        assert(len >= 0 && len <= ESC_WHY_MAX);
    }
}

static int
check_site(const char *site, const char *what, struct im_err *e)
{
    if (site == NULL || config_check_site_code(site) != 0)
        return im_errf(e, IM_EINVAL, "%s: bad site code '%s'", what,
                       site ? site : "(none)");
    return 0;
}

int
escalate_start(const struct esc_policy *policy, const char *owner_site,
               uint64_t now_ms, struct esc_state *st, struct esc_notices *out,
               struct im_err *e)
{
    struct esc_state s;
    struct esc_notices n;
    char lv[ESC_WHY_MAX];
    int rv;

    if ((rv = escalate_policy_check(policy, "", e)) != 0 ||
        (rv = check_site(owner_site, "owner", e)) != 0)
        return rv;
    if (now_ms == 0)
        return im_errf(e, IM_EINVAL, "no start time");
    memset(&s, 0, sizeof s);
    s.phase = ESC_ACTIVE;
    s.started_ms = now_ms;
    s.deadline_ms = now_ms + policy->levels[0].ack_ms;
    n.count = 0;
    struct esc_notice *first =
        level_notice(&n, policy, owner_site, 0, 0, ESC_WHY_START);
    fmt_level(lv, sizeof lv, policy, owner_site, 0, 0);
    notice_why(first, "major incident: %s", lv);
    *st = s;
    *out = n;
    return 0;
}

int
escalate_tick(struct esc_state *st, const struct esc_policy *policy,
              const char *owner_site, uint64_t now_ms, struct esc_notices *out,
              struct im_err *e)
{
    struct esc_notices n;
    char lv[ESC_WHY_MAX], missed[PERSON_MAX + 32], within[32];
    int rv;

    if ((rv = escalate_policy_check(policy, "", e)) != 0 ||
        (rv = check_site(owner_site, "owner", e)) != 0)
        return rv;
    n.count = 0;
    if (st->phase != ESC_ACTIVE || now_ms < st->deadline_ms) {
        *out = n;
        return 0;
    }

    /* Walk the timeline as if every tick had come on time: each level
     * after the one that timed out would have been notified at the
     * previous level's deadline. Stop at the level whose window holds now,
     * or past the last run. */
    uint32_t lvl = st->level, pass = st->pass;
    uint64_t t = st->deadline_ms;
    uint32_t skipped = 0, skipped_first = 0;
    int exhausted = 0;
    const uint32_t steps_max =
        ESC_LEVELS_MAX * (ESC_REPEAT_MAX + 1) + ESC_LEVELS_MAX + 2;
    for (uint32_t step = 0;; step++) {
        assert(step < steps_max);
        lvl++;
        if (lvl >= policy->levels_count) {
            lvl = 0;
            pass++;
        }
        if (pass > policy->repeat) {
            exhausted = 1;
            break;
        }
        uint64_t next = t + policy->levels[lvl].ack_ms;
        if (now_ms < next)
            break;
        if (skipped++ == 0)
            skipped_first = lvl;
        t = next;
    }

    if (st->level < policy->levels_count)
        escalate_describe_target(&policy->levels[st->level], owner_site, missed,
                                 sizeof missed);
    else
        snprintf(missed, sizeof missed, "a level since removed");
    within[0] = '\0';
    if (st->level < policy->levels_count)
        clock_fmt_duration(policy->levels[st->level].ack_ms, within);

    if (exhausted) {
        uint32_t last = (uint32_t)policy->levels_count - 1;
        struct esc_notice *x = &n.items[n.count++];
        memset(x, 0, sizeof *x);
        x->target = ESC_GLOBAL_MANAGER;
        snprintf(x->site, sizeof x->site, "%s", owner_site);
        x->level = last;
        x->pass = policy->repeat;
        x->why_code = ESC_WHY_EXHAUSTED;
        notice_why(x,
                   "nobody acknowledged after %u run%s of %zu level%s "
                   "(last: %s); escalation exhausted%s",
                   policy->repeat + 1, policy->repeat ? "s" : "",
                   policy->levels_count, policy->levels_count == 1 ? "" : "s",
                   missed,
                   skipped ? ", deadlines passed while no "
                             "coordinator checked"
                           : "");
        st->phase = ESC_EXHAUSTED;
        st->level = last;
        st->pass = policy->repeat;
        st->deadline_ms = 0;
    } else {
        fmt_level(lv, sizeof lv, policy, owner_site, lvl, pass);
        struct esc_notice *x =
            level_notice(&n, policy, owner_site, lvl, pass,
                         skipped ? ESC_WHY_CATCHUP : ESC_WHY_TIMEOUT);
        if (skipped == 0)
            notice_why(x, "not acknowledged by %s within %s; now %s", missed,
                       within, lv);
        else
            notice_why(x,
                       "not acknowledged by %s; %u level%s skipped (from "
                       "level %u) because %s deadline%s passed before a "
                       "coordinator checked; now %s",
                       missed, skipped, skipped == 1 ? "" : "s",
                       skipped_first + 1, skipped == 1 ? "its" : "their",
                       skipped == 1 ? "" : "s", lv);
        st->level = lvl;
        st->pass = pass;
        /* The person just paged gets a whole window, however late. */
        st->deadline_ms = now_ms + policy->levels[lvl].ack_ms;
    }
    add_copies(&n, st);
    *out = n;
    return 0;
}

int
escalate_now(struct esc_state *st, const struct esc_policy *policy,
             const char *owner_site, const char *who, const char *reason,
             uint64_t now_ms, struct esc_notices *out, struct im_err *e)
{
    struct esc_state s;
    struct esc_notices n;
    char lv[ESC_WHY_MAX], because[ESC_REASON_MAX + 8] = "";
    int rv;

    if ((rv = oncall_check_person(who, "escalated by", e)) != 0)
        return rv;
    if (reason == NULL)
        reason = "";
    if (strlen(reason) > ESC_REASON_MAX)
        return im_errf(e, IM_ETOOBIG, "reason: longer than %d bytes",
                       ESC_REASON_MAX);
    if (st->phase == ESC_ACKED) {
        char at[CLOCK_RFC3339_MAX];
        clock_fmt_rfc3339(st->acked_ms, at);
        return im_errf(e, IM_ESTATE,
                       "already acknowledged by %s at %s: nothing to "
                       "escalate",
                       st->acked_by, at);
    }
    if (st->phase == ESC_EXHAUSTED)
        return im_errf(e, IM_ESTATE,
                       "the escalation is exhausted (every level of every "
                       "run was paged): nothing to escalate");
    /* The ladder moves exactly as at a deadline: a tick with the deadline
     * now takes one step, since the next level's window is still whole. */
    s = *st;
    s.deadline_ms = now_ms;
    if ((rv = escalate_tick(&s, policy, owner_site, now_ms, &n, e)) != 0)
        return rv;
    assert(n.count >= 1);
    if (reason[0] != '\0')
        snprintf(because, sizeof because, " (%s)", reason);
    n.count = 1;
    if (s.phase != ESC_EXHAUSTED)
        n.items[0].why_code = ESC_WHY_MANUAL;
    if (s.phase == ESC_EXHAUSTED) {
        notice_why(&n.items[0],
                   "escalated by %s%s past the last level of the last run; "
                   "escalation exhausted",
                   who, because);
    } else {
        fmt_level(lv, sizeof lv, policy, owner_site, s.level, s.pass);
        notice_why(&n.items[0], "escalated by %s%s before the deadline; now %s",
                   who, because, lv);
    }
    add_copies(&n, &s);
    *st = s;
    *out = n;
    return 0;
}

int
escalate_ack(struct esc_state *st, const char *who, uint64_t now_ms,
             struct im_err *e)
{
    int rv;
    if ((rv = oncall_check_person(who, "acknowledged by", e)) != 0)
        return rv;
    if (st->phase == ESC_ACKED) {
        char at[CLOCK_RFC3339_MAX];
        clock_fmt_rfc3339(st->acked_ms, at);
        return im_errf(e, IM_ESTATE, "already acknowledged by %s at %s",
                       st->acked_by, at);
    }
    st->phase = ESC_ACKED;
    snprintf(st->acked_by, sizeof st->acked_by, "%s", who);
    st->acked_ms = now_ms;
    st->deadline_ms = 0;
    return 0;
}

int
escalate_to_site(struct esc_state *st, const char *owner_site, const char *site,
                 const char *asked_by, uint64_t now_ms, struct esc_notices *out,
                 struct im_err *e)
{
    int rv;
    if ((rv = check_site(owner_site, "owner", e)) != 0 ||
        (rv = check_site(site, "site", e)) != 0 ||
        (rv = oncall_check_person(asked_by, "asked by", e)) != 0)
        return rv;
    if (strcmp(site, owner_site) == 0)
        return im_errf(e, IM_EINVAL,
                       "%s owns the incident: it cannot be "
                       "asked for help",
                       site);
    for (size_t i = 0; i < st->help_count; i++)
        if (strcmp(st->help[i].site, site) == 0)
            return im_errf(e, IM_EEXIST,
                           "%s was already asked for help by "
                           "%s",
                           site, st->help[i].asked_by);
    if (st->help_count == ESC_HELP_SITES_MAX)
        return im_errf(e, IM_ETOOBIG, "more than %d sites asked for help",
                       ESC_HELP_SITES_MAX);

    struct esc_help *h = &st->help[st->help_count++];
    memset(h, 0, sizeof *h);
    snprintf(h->site, sizeof h->site, "%s", site);
    snprintf(h->asked_by, sizeof h->asked_by, "%s", asked_by);
    h->asked_ms = now_ms;

    out->count = 0;
    struct esc_notice *x = &out->items[out->count++];
    memset(x, 0, sizeof *x);
    x->target = ESC_SITE_MANAGER;
    snprintf(x->site, sizeof x->site, "%s", site);
    x->level = st->level;
    x->pass = st->pass;
    x->why_code = ESC_WHY_HELP;
    notice_why(x, "%s asks %s to help with a major incident owned by %s",
               asked_by, site, owner_site);
    return 0;
}

/* JSON: compact keys; "v" versions the layout. */
#define STATE_VERSION 1

int
escalate_state_to_json(const struct esc_state *st, char **json_out,
                       struct im_err *e)
{
    static const char *phases[] = {"active", "acked", "exhausted"};
    json_t *o = json_pack("{s:i,s:s,s:i,s:i,s:I}", "v", STATE_VERSION, "phase",
                          phases[st->phase], "level", (int)st->level, "pass",
                          (int)st->pass, "started", (json_int_t)st->started_ms);
    if (o == NULL)
        return im_errf(e, IM_ENOMEM, "out of memory");
    int bad = 0;
    if (st->deadline_ms != 0)
        bad |= json_object_set_new(o, "deadline",
                                   json_integer((json_int_t)st->deadline_ms));
    if (st->phase == ESC_ACKED)
        bad |= json_object_set_new(
            o, "acked",
            json_pack("[s,I]", st->acked_by, (json_int_t)st->acked_ms));
    if (st->help_count > 0) {
        json_t *a = json_array();
        for (size_t i = 0; a != NULL && i < st->help_count; i++)
            bad |= json_array_append_new(
                a, json_pack("[s,s,I]", st->help[i].site, st->help[i].asked_by,
                             (json_int_t)st->help[i].asked_ms));
        bad |= json_object_set_new(o, "help", a);
    }
    char *s = bad ? NULL : json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s == NULL)
        return im_errf(e, IM_ENOMEM, "out of memory");
    assert(strlen(s) <= ESC_STATE_JSON_MAX);
    *json_out = s;
    return 0;
}

static int bad_state(struct im_err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
bad_state(struct im_err *e, const char *fmt, ...)
{
    char msg[IM_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return im_errf(e, IM_EINVAL, "escalation state: %s", msg);
}

int
escalate_state_from_json(const char *json, struct esc_state *st,
                         struct im_err *e)
{
    struct esc_state s;
    json_error_t je;
    json_int_t v, level, pass, started, deadline = 0;
    const char *phase;
    json_t *acked = NULL, *help = NULL;

    if (json == NULL)
        return bad_state(e, "missing");
    if (strlen(json) > ESC_STATE_JSON_MAX)
        return im_errf(e, IM_ETOOBIG,
                       "escalation state: longer than %d "
                       "bytes",
                       ESC_STATE_JSON_MAX);
    json_t *o = json_loads(json, JSON_REJECT_DUPLICATES, &je);
    if (o == NULL)
        return bad_state(e, "%s", je.text);
    memset(&s, 0, sizeof s);
    if (json_unpack_ex(o, &je, JSON_STRICT, "{s:I,s:s,s:I,s:I,s:I,s?I,s?o,s?o}",
                       "v", &v, "phase", &phase, "level", &level, "pass", &pass,
                       "started", &started, "deadline", &deadline, "acked",
                       &acked, "help", &help) != 0) {
        json_decref(o);
        return bad_state(e, "%s", je.text);
    }
    int rv = 0;
    if (v != STATE_VERSION)
        rv = bad_state(e, "version %lld, expected %d", (long long)v,
                       STATE_VERSION);
    else if (level < 0 || level >= ESC_LEVELS_MAX)
        rv = bad_state(e, "level %lld out of range", (long long)level);
    else if (pass < 0 || pass > ESC_REPEAT_MAX)
        rv = bad_state(e, "pass %lld out of range", (long long)pass);
    else if (started <= 0 || deadline < 0)
        rv = bad_state(e, "bad times");
    if (rv != 0)
        goto done;
    s.level = (uint32_t)level;
    s.pass = (uint32_t)pass;
    s.started_ms = (uint64_t)started;
    s.deadline_ms = (uint64_t)deadline;
    if (strcmp(phase, "active") == 0) {
        s.phase = ESC_ACTIVE;
        if (deadline == 0 || acked != NULL)
            rv = bad_state(e, "active needs a deadline and no "
                              "acknowledgement");
    } else if (strcmp(phase, "acked") == 0) {
        s.phase = ESC_ACKED;
        json_int_t at;
        const char *who;
        if (deadline != 0 || acked == NULL ||
            json_unpack_ex(acked, &je, JSON_STRICT, "[s,I]", &who, &at) != 0 ||
            at <= 0)
            rv = bad_state(e, "acked needs [person, time] and no deadline");
        else if ((rv = oncall_check_person(who, "escalation state: acked",
                                           e)) == 0) {
            snprintf(s.acked_by, sizeof s.acked_by, "%s", who);
            s.acked_ms = (uint64_t)at;
        }
    } else if (strcmp(phase, "exhausted") == 0) {
        s.phase = ESC_EXHAUSTED;
        if (deadline != 0 || acked != NULL)
            rv = bad_state(e, "exhausted has no deadline and no "
                              "acknowledgement");
    } else {
        rv = bad_state(e, "unknown phase '%s'", phase);
    }
    if (rv == 0 && help != NULL) {
        if (!json_is_array(help))
            rv = bad_state(e, "help is not a list");
        else if (json_array_size(help) > ESC_HELP_SITES_MAX)
            rv = im_errf(e, IM_ETOOBIG,
                         "escalation state: more than %d "
                         "helping sites",
                         ESC_HELP_SITES_MAX);
        for (size_t i = 0; rv == 0 && i < json_array_size(help); i++) {
            const char *site, *by;
            json_int_t at;
            if (json_unpack_ex(json_array_get(help, i), &je, JSON_STRICT,
                               "[s,s,I]", &site, &by, &at) != 0 ||
                at <= 0 || config_check_site_code(site) != 0) {
                rv =
                    bad_state(e, "help[%zu]: expected [site, person, time]", i);
                break;
            }
            if ((rv = oncall_check_person(by, "escalation state: help", e)) !=
                0)
                break;
            for (size_t j = 0; j < s.help_count; j++)
                if (strcmp(s.help[j].site, site) == 0)
                    rv = bad_state(e, "help[%zu]: %s twice", i, site);
            if (rv != 0)
                break;
            struct esc_help *h = &s.help[s.help_count++];
            snprintf(h->site, sizeof h->site, "%s", site);
            snprintf(h->asked_by, sizeof h->asked_by, "%s", by);
            h->asked_ms = (uint64_t)at;
        }
    }
done:
    json_decref(o);
    if (rv == 0)
        *st = s;
    return rv;
}
