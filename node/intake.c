/* intake: see intake.h. */
#include "intake.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alerts.h"
#include "clock.h"
#include "hlc.h"
#include "incident.h"
#include "log.h"
#include "store.h"
#include "text.h"

void
intake_errors_init(struct intake_errors *errs)
{
    memset(errs, 0, sizeof *errs);
    errs->status = 400;
}

void
intake_error(struct intake_errors *errs, const char *fmt, ...)
{
    va_list ap;

    if (errs->count == INTAKE_ERRORS_MAX) {
        errs->dropped++;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(errs->msg[errs->count], INTAKE_ERROR_MAX, fmt, ap);
    va_end(ap);
    errs->count++;
}

void
intake_req_free(struct intake_req *req)
{
    free(req->description);
    free(req->alerts);
    req->description = NULL;
    req->alerts = NULL;
    req->alerts_count = 0;
}

const char *
intake_outcome_name(enum intake_outcome o)
{
    switch (o) {
    case INTAKE_OPENED: return "opened";
    case INTAKE_JOINED: return "joined";
    case INTAKE_ACKNOWLEDGED: return "acknowledged";
    case INTAKE_RESOLVED: return "resolved";
    case INTAKE_ALERTS_RESOLVED: return "alerts_resolved";
    case INTAKE_DUPLICATE: return "duplicate";
    case INTAKE_DROPPED: return "dropped";
    }
    return "unknown";
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t
utf8_len(const char *s, size_t n)
{
    unsigned char c = (unsigned char)s[0];
    size_t len = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    return len <= n && text_utf8_valid(s, len) == 0 ? len : 0;
}

int
intake_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] > 0x20 && s[i] != 0x7f)
            return 0;
    return 1;
}

static int copy_clean(char *dst, size_t dst_size, const char *src,
                      size_t src_size, int single_line);

int
intake_text_copy(char *dst, size_t dst_size, const char *src, size_t src_size)
{
    return copy_clean(dst, dst_size, src, src_size, 0);
}

int
intake_line_copy(char *dst, size_t dst_size, const char *src, size_t src_size)
{
    return copy_clean(dst, dst_size, src, src_size, 1);
}

static int
copy_clean(char *dst, size_t dst_size, const char *src, size_t src_size,
           int single_line)
{
    static const char ellipsis[] = "...";
    size_t used = 0, i = 0;
    int cut = 0;

    if (dst_size == 0)
        return 1;
    while (i < src_size && src[i] != '\0') {
        size_t len = utf8_len(src + i, src_size - i);
        if (len == 0) {
            i++; /* not UTF-8: the parsers never pass it; skip, never copy */
            continue;
        }
        if (used + len + 1 > dst_size) {
            cut = 1;
            break;
        }
        if (len == 1 && (unsigned char)src[i] < 0x20 &&
            (single_line || (src[i] != '\n' && src[i] != '\t')))
            dst[used] = ' ';
        else if (len == 1 && src[i] == 0x7f)
            dst[used] = ' ';
        else
            memcpy(dst + used, src + i, len);
        used += len;
        i += len;
    }
    if (cut) {
        /* Make room for "..." at a character boundary. */
        while (used > 0 && used + sizeof ellipsis > dst_size) {
            used--;
            while (used > 0 && ((unsigned char)dst[used] & 0xc0) == 0x80)
                used--;
        }
        if (used + sizeof ellipsis <= dst_size) {
            memcpy(dst + used, ellipsis, sizeof ellipsis - 1);
            used += sizeof ellipsis - 1;
        }
    }
    dst[used] = '\0';
    return cut;
}

/* ---- helpers for the parsers ---- */

json_t *
intake_json_load(const char *body, size_t size, struct intake_errors *errs)
{
    json_error_t jerr;
    json_t *j;

    if (size > HTTP_BODY_MAX) {
        errs->status = 413;
        intake_error(errs,
                     "the body of %zu bytes exceeds the limit of %d bytes "
                     "(512 KB)",
                     size, HTTP_BODY_MAX);
        return NULL;
    }
    if (size == 0) {
        errs->unparsable = 1;
        intake_error(errs, "JSON parse error: the body is empty");
        return NULL;
    }
    /* jansson refuses invalid UTF-8, NUL in strings and trailing data. */
    j = json_loadb(body, size, 0, &jerr);
    if (j == NULL) {
        errs->unparsable = 1;
        intake_error(errs, "JSON parse error at line %d, column %d: %s",
                     jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        errs->unparsable = 1;
        intake_error(errs, "the body must be a JSON object, not %s",
                     json_is_array(j) ? "an array" : "a scalar");
        json_decref(j);
        return NULL;
    }
    return j;
}

static const char *
json_type_name(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "unknown";
}

int
intake_json_string(json_t *obj, const char *name, const char *path, size_t max,
                   int required, int single_line, const char **out,
                   struct intake_errors *errs)
{
    json_t *v = obj ? json_object_get(obj, name) : NULL;
    const char *s;
    size_t n;

    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        if (required)
            intake_error(errs, "'%s' is missing", path);
        return required ? -1 : 0;
    }
    if (!json_is_string(v)) {
        intake_error(errs, "'%s' must be a string, not %s", path,
                     json_type_name(v));
        return -1;
    }
    s = json_string_value(v);
    n = json_string_length(v);
    if (n > max) {
        intake_error(errs, "'%s' is longer than %zu bytes (it has %zu)", path,
                     max, n);
        return -1;
    }
    if (required && intake_blank(s, n)) {
        intake_error(errs, "'%s' is blank", path);
        return -1;
    }
    if (single_line)
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
                intake_error(errs, "'%s' contains a control character", path);
                return -1;
            }
    *out = s;
    return 1;
}

int
intake_parse_time(const char *text, uint64_t *ms_out)
{
    char buf[64];
    size_t n = strlen(text);

    if (n >= sizeof buf - 1)
        return IM_EINVAL;
    memcpy(buf, text, n + 1);
    /* "+0000" (PagerDuty's own example) -> "+00:00" */
    if (n > 5 && (buf[n - 5] == '+' || buf[n - 5] == '-') &&
        strspn(buf + n - 4, "0123456789") == 4 && strchr(buf, 'T') != NULL) {
        memmove(buf + n - 1, buf + n - 2, 3);
        buf[n - 2] = ':';
    }
    return clock_parse_rfc3339(buf, ms_out);
}

void
intake_text_printf(struct intake_text *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (t->failed || t->truncated)
        return;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        t->failed = 1;
        return;
    }
    if (t->size + (size_t)n > t->max) {
        t->truncated = 1;
        if (t->size >= t->max)
            return;
    }
    if (t->size + (size_t)n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 1024;
        char *d;
        while (cap < t->size + (size_t)n + 1)
            cap *= 2;
        if ((d = realloc(t->data, cap)) == NULL) {
            t->failed = 1;
            return;
        }
        t->data = d;
        t->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(t->data + t->size, (size_t)n + 1, fmt, ap);
    va_end(ap);
    t->size += (size_t)n;
}

char *
intake_text_finish(struct intake_text *t)
{
    char *out = NULL;

    if (!t->failed && (out = malloc(DESCRIPTION_MAX + 1)) != NULL) {
        if (intake_text_copy(out, DESCRIPTION_MAX + 1, t->data ? t->data : "",
                             t->size) == 0 &&
            t->truncated) {
            /* Cut by the bound of the builder: say so. */
            size_t n = strlen(out);
            if (n + 4 <= DESCRIPTION_MAX)
                memcpy(out + n, "...", 4);
        }
    }
    free(t->data);
    memset(t, 0, sizeof *t);
    return out;
}

/* ---- the transaction step ---- */

struct step {
    struct commit_step *cs;
    const struct intake_req *req;
    uint64_t interval_ms;
    struct intake_result *res;
    struct im_err e;
};

static const char *
str(const char *s)
{
    return s != NULL ? s : "";
}

/* 1 if incident id exists and is open; its state in *state. */
static int
incident_is_open(struct step *st, const char *id, Im__State *state)
{
    struct store_txn *t = st->cs->t;
    struct im_err e = {0};

    *state = IM__STATE__STATE_NONE;
    if (store_incident_get(t->txn, t->s, id, st->cs->inc, &e) != 0)
        return 0;
    *state = st->cs->inc->state;
    return incident_state_is_open(*state);
}

/* A failure of the transaction, or a refusal turned into an outcome. */
static int
failed(struct step *st, int rv)
{
    return commit_is_refusal(rv) ? 0 : rv;
}


/* Appends one event of this intake step and counts it. */
static int
append(struct step *st, const char *incident, Im__Body *body,
       char id_out[INCIDENT_ID_MAX + 1])
{
    int rv = commit_append(st->cs, incident, body, id_out, &st->e);
    if (rv == 0)
        st->res->events++;
    return rv;
}
static int
append_occurrence(struct step *st, const char *incident, const char *integ,
                  const char *key, uint64_t count, uint64_t first_ms,
                  uint64_t last_ms, const char *summary, const char *source,
                  const char *severity, Im__AlertRef **refs, size_t refs_count,
                  int opened)
{
    Im__Body body = IM__BODY__INIT;
    Im__AlertOccurrence a = IM__ALERT_OCCURRENCE__INIT;

    a.integration = (char *)integ;
    a.key = (char *)key;
    a.count = count;
    a.first_ms = first_ms;
    a.last_ms = last_ms;
    a.summary = (char *)summary;
    a.source = (char *)source;
    a.severity = (char *)severity;
    a.alerts = refs;
    a.n_alerts = refs_count;
    a.opened = opened;
    body.kind_case = IM__BODY__KIND_ALERT;
    body.alert = &a;
    return append(st, incident, &body, NULL);
}

/* Summarises the pending occurrences of a key into an event on the
 * incident they were counted for, and clears them. */
static int
flush_pending(struct step *st, const Im__AlertEntry *p)
{
    int rv;

    if (p->pending > 0) {
        rv = append_occurrence(st, p->incident, p->integration, p->key,
                               p->pending, p->pending_first_ms,
                               p->pending_last_ms, p->summary, p->source,
                               p->severity, NULL, 0, 0);
        if (rv != 0) {
            /* A refusal here means the pending entry cannot be recorded
             * (the incident is gone: a bug or a damaged store). Keep the
             * transaction; log and drop the count rather than wedge the
             * key forever. */
            if (!commit_is_refusal(rv))
                return rv;
            log_warn("intake: dropping %llu pending occurrences of %s/%s: %s",
                     (unsigned long long)p->pending, p->integration, p->key,
                     im_errmsg(&st->e));
        }
    }
    return alerts_pending_del(st->cs->t, p->integration, p->key, &st->e);
}

/* The opening of an incident for req (strings borrowed from req). */
static void
opened_body(const struct intake_req *req, Im__Body *body, Im__Opened *o)
{
    const struct cfg_integration *in = req->integ;

    im__body__init(body);
    im__opened__init(o);
    o->title = (char *)req->title;
    o->description = req->description ? req->description : (char *)"";
    o->service = (char *)in->service;
    o->category = (char *)in->category;
    o->subcategory = (char *)in->subcategory;
    o->impact = (Im__Level)in->impact[req->severity];
    o->urgency = (Im__Level)in->urgency[req->severity];
    body->kind_case = IM__BODY__KIND_OPENED;
    body->opened = o;
}

static int
append_opened(struct step *st, char id[INCIDENT_ID_MAX + 1])
{
    Im__Body body;
    Im__Opened o;

    opened_body(st->req, &body, &o);
    return append(st, NULL, &body, id);
}

static int
append_transition(struct step *st, const char *incident, Im__State to,
                  Im__State from)
{
    const struct intake_req *req = st->req;
    Im__Body body = IM__BODY__INIT;
    Im__Transition tr = IM__TRANSITION__INIT;
    char notes[256];

    tr.to = to;
    tr.from = from;
    if (to == IM__STATE__STATE_RESOLVED) {
        tr.by_source = 1;
        tr.code = "resolved-by-source";
        snprintf(notes, sizeof notes, "resolved by %s (%s)", req->integ->name,
                 config_integ_type_name(req->integ->type));
        tr.notes = notes;
    }
    body.kind_case = IM__BODY__KIND_TRANSITION;
    body.transition = &tr;
    return append(st, incident, &body, NULL);
}

static int
append_resolved(struct step *st, const char *incident, Im__AlertRef **refs,
                size_t refs_count, int all)
{
    Im__Body body = IM__BODY__INIT;
    Im__AlertResolved a = IM__ALERT_RESOLVED__INIT;

    a.integration = (char *)st->req->integ->name;
    a.key = (char *)st->req->key;
    a.alerts = refs;
    a.n_alerts = refs_count;
    a.all = all;
    body.kind_case = IM__BODY__KIND_ALERT_RESOLVED;
    body.alert_resolved = &a;
    return append(st, incident, &body, NULL);
}

/* Reads the key's entry; *k is NULL if the key is unknown. */
static int
key_entry(struct step *st, const char *fingerprint, Im__AlertEntry **k)
{
    struct store_txn *t = st->cs->t;
    int rv = alerts_key_get(t->txn, t->s, st->req->integ->name, st->req->key,
                            fingerprint, k, &st->e);
    if (rv == IM_ENOTFOUND) {
        *k = NULL;
        return 0;
    }
    return rv;
}

static int
pending_entry(struct step *st, Im__AlertEntry **p)
{
    struct store_txn *t = st->cs->t;
    int rv = alerts_pending_get(t->txn, t->s, st->req->integ->name,
                                st->req->key, p, &st->e);
    if (rv == IM_ENOTFOUND) {
        *p = NULL;
        return 0;
    }
    return rv;
}

/* Opens a new incident for the key: first any pending occurrences of an
 * older incident of the key are summarised on that one. */
static int
open_for_key(struct step *st, Im__AlertRef **refs, size_t refs_count)
{
    const struct intake_req *req = st->req;
    Im__AlertEntry *p = NULL;
    uint64_t now = st->cs->now_ms;
    const char *sev = config_severity_name(req->severity);
    int rv;

    if ((rv = pending_entry(st, &p)) != 0)
        return rv;
    if (p != NULL) {
        rv = flush_pending(st, p);
        im__alert_entry__free_unpacked(p, NULL);
        if (rv != 0)
            return rv;
    }
    if ((rv = append_opened(st, st->res->incident)) != 0) {
        if (!commit_is_refusal(rv))
            return rv;
        /* The parsers validate what an opening needs, so this is a gap in
         * them: answer it as invalid input rather than guess. */
        log_warn("intake: %s: cannot open an incident: %s", req->integ->name,
                 im_errmsg(&st->e));
        st->res->refused = rv;
        st->res->outcome = INTAKE_DROPPED;
        snprintf(st->res->detail, sizeof st->res->detail, "%s",
                 im_errmsg(&st->e));
        st->res->incident[0] = '\0';
        return 0;
    }
    st->res->outcome = INTAKE_OPENED;
    /* One occurrence event per ALERT_REFS_PER_EVENT_MAX alerts; the first
     * says it opened the incident. */
    size_t done = 0;
    do {
        size_t n = refs_count - done;
        if (n > ALERT_REFS_PER_EVENT_MAX)
            n = ALERT_REFS_PER_EVENT_MAX;
        rv =
            append_occurrence(st, st->res->incident, req->integ->name, req->key,
                              n ? n : 1, now, now, req->summary, req->source,
                              sev, refs ? refs + done : NULL, n, done == 0);
        if (rv != 0)
            return rv;
        done += n;
    } while (done < refs_count);
    return 0;
}

/* PagerDuty trigger on a key whose incident is open: count it, and
 * summarise if the key's interval is over. */
static int
join_occurrence(struct step *st, const Im__AlertEntry *k)
{
    const struct intake_req *req = st->req;
    Im__AlertEntry *p = NULL, q;
    uint64_t now = st->cs->now_ms;
    int rv;

    if ((rv = pending_entry(st, &p)) != 0)
        return rv;
    if (p != NULL && strcmp(str(p->incident), str(k->incident)) != 0) {
        rv = flush_pending(st, p); /* counted for an older incident */
        im__alert_entry__free_unpacked(p, NULL);
        p = NULL;
        if (rv != 0)
            return rv;
    }
    /* Work on a shallow copy: its strings may point at the request's
     * without protobuf-c freeing them with p. */
    if (p == NULL) {
        im__alert_entry__init(&q);
        q.integration = (char *)req->integ->name;
        q.key = (char *)req->key;
        q.incident = k->incident;
        q.pending_first_ms = now;
    } else {
        q = *p;
    }
    q.pending++;
    q.pending_last_ms = now;
    q.summary = (char *)req->summary;
    q.source = (char *)req->source;
    q.severity = (char *)config_severity_name(req->severity);
    if (now >= HLC_MS(k->hlc) + st->interval_ms)
        rv = flush_pending(st, &q);
    else
        rv = alerts_pending_put(st->cs->t, &q, &st->e);
    if (p != NULL)
        im__alert_entry__free_unpacked(p, NULL);
    if (rv != 0)
        return rv;
    st->res->outcome = INTAKE_JOINED;
    snprintf(st->res->incident, sizeof st->res->incident, "%s", k->incident);
    return 0;
}

static int
pd_step(struct step *st)
{
    const struct intake_req *req = st->req;
    Im__AlertEntry *k = NULL, *p = NULL;
    Im__State state = IM__STATE__STATE_NONE;
    int rv, open;

    if ((rv = key_entry(st, NULL, &k)) != 0)
        return rv;
    open = k != NULL && k->firing && incident_is_open(st, k->incident, &state);
    switch (req->action) {
    case INTAKE_TRIGGER:
        rv = open ? join_occurrence(st, k) : open_for_key(st, NULL, 0);
        break;
    case INTAKE_ACKNOWLEDGE:
        st->res->outcome = INTAKE_DROPPED;
        if (!open) {
            snprintf(st->res->detail, sizeof st->res->detail,
                     "no open incident for this dedup_key");
            break;
        }
        snprintf(st->res->incident, sizeof st->res->incident, "%s",
                 k->incident);
        if (state != IM__STATE__STATE_NEW) {
            snprintf(st->res->detail, sizeof st->res->detail,
                     "%s is already %s", k->incident,
                     incident_state_name(state));
            break;
        }
        rv = append_transition(st, k->incident, IM__STATE__STATE_ACKNOWLEDGED,
                               IM__STATE__STATE_NEW);
        if (rv == 0)
            st->res->outcome = INTAKE_ACKNOWLEDGED;
        else if (commit_is_refusal(rv))
            snprintf(st->res->detail, sizeof st->res->detail, "%s",
                     im_errmsg(&st->e));
        break;
    case INTAKE_RESOLVE:
        st->res->outcome = INTAKE_DROPPED;
        if (!open) {
            snprintf(st->res->detail, sizeof st->res->detail,
                     "no open incident for this dedup_key");
            break;
        }
        snprintf(st->res->incident, sizeof st->res->incident, "%s",
                 k->incident);
        if ((rv = pending_entry(st, &p)) != 0)
            break;
        if (p != NULL) {
            rv = flush_pending(st, p);
            im__alert_entry__free_unpacked(p, NULL);
            if (rv != 0)
                break;
        }
        if ((rv = append_resolved(st, k->incident, NULL, 0, 1)) != 0)
            break;
        st->res->outcome = INTAKE_RESOLVED;
        rv = append_transition(st, k->incident, IM__STATE__STATE_RESOLVED,
                               IM__STATE__STATE_NONE);
        if (commit_is_refusal(rv)) {
            /* The alert is resolved either way; the incident stays for its
             * owner (another site holds it). */
            snprintf(st->res->detail, sizeof st->res->detail,
                     "alert resolved; incident not: %s", im_errmsg(&st->e));
            st->res->outcome = INTAKE_ALERTS_RESOLVED;
            rv = 0;
        }
        break;
    }
    if (k != NULL)
        im__alert_entry__free_unpacked(k, NULL);
    return failed(st, rv);
}

/* Alertmanager: one notification for a group. */
static int
am_step(struct step *st)
{
    const struct intake_req *req = st->req;
    const char *integ = req->integ->name;
    Im__AlertEntry *k = NULL;
    Im__AlertRef *refs = NULL, **fire = NULL, **gone = NULL;
    size_t fire_n = 0, gone_n = 0, firing_left = 0;
    Im__State state;
    char incident[INCIDENT_ID_MAX + 1] = "";
    int rv, open;

    if ((rv = key_entry(st, NULL, &k)) != 0)
        return rv;
    open = k != NULL && incident_is_open(st, k->incident, &state);
    if (open)
        snprintf(incident, sizeof incident, "%s", k->incident);
    refs = calloc(req->alerts_count ? req->alerts_count : 1, sizeof *refs);
    fire = calloc(req->alerts_count ? req->alerts_count : 1, sizeof *fire);
    gone = calloc(req->alerts_count ? req->alerts_count : 1, sizeof *gone);
    if (refs == NULL || fire == NULL || gone == NULL) {
        rv = im_errf(&st->e, IM_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < req->alerts_count; i++) {
        const struct intake_alert *al = &req->alerts[i];
        Im__AlertEntry *f = NULL;
        int known_firing = 0, same_start = 0, dup = 0;

        if (open) {
            if ((rv = key_entry(st, al->fingerprint, &f)) != 0)
                goto out;
            if (f != NULL && strcmp(str(f->incident), incident) == 0) {
                known_firing = f->firing;
                same_start = f->starts_at_ms == al->starts_at_ms;
            }
            if (f != NULL)
                im__alert_entry__free_unpacked(f, NULL);
        }
        /* The same alert twice in one notification counts once. */
        for (size_t j = 0; j < i; j++)
            dup |= strcmp(req->alerts[j].fingerprint, al->fingerprint) == 0;
        if (dup)
            continue;
        im__alert_ref__init(&refs[i]);
        refs[i].fingerprint = (char *)al->fingerprint;
        refs[i].starts_at_ms = al->starts_at_ms;
        if (al->firing && !(known_firing && same_start))
            fire[fire_n++] = &refs[i];
        else if (!al->firing && known_firing)
            gone[gone_n++] = &refs[i];
    }
    st->res->outcome = INTAKE_DUPLICATE;
    if (open)
        snprintf(st->res->incident, sizeof st->res->incident, "%s", incident);
    if (fire_n > 0) {
        if (!open) {
            if ((rv = open_for_key(st, fire, fire_n)) != 0 || st->res->refused)
                goto out;
            snprintf(incident, sizeof incident, "%s", st->res->incident);
            open = 1;
        } else {
            for (size_t done = 0; done < fire_n;) {
                size_t n = fire_n - done;
                if (n > ALERT_REFS_PER_EVENT_MAX)
                    n = ALERT_REFS_PER_EVENT_MAX;
                rv = append_occurrence(
                    st, incident, integ, req->key, n, st->cs->now_ms,
                    st->cs->now_ms, req->summary, req->source,
                    config_severity_name(req->severity), fire + done, n, 0);
                if (rv != 0)
                    goto out;
                done += n;
            }
            st->res->outcome = INTAKE_JOINED;
        }
    }
    if (gone_n > 0) {
        /* After this notification's firing alerts are recorded: how many
         * of the group's alerts will still fire once these resolve. */
        rv = alerts_firing_count(st->cs->t->txn, st->cs->t->s, integ, req->key,
                                 incident, &firing_left, &st->e);
        if (rv != 0)
            goto out;
        firing_left = firing_left > gone_n ? firing_left - gone_n : 0;
        for (size_t done = 0; done < gone_n;) {
            size_t n = gone_n - done;
            if (n > ALERT_REFS_PER_EVENT_MAX)
                n = ALERT_REFS_PER_EVENT_MAX;
            done += n;
            rv = append_resolved(st, incident, gone + done - n, n,
                                 done == gone_n && firing_left == 0);
            if (rv != 0)
                goto out;
        }
        if (st->res->outcome == INTAKE_DUPLICATE)
            st->res->outcome = INTAKE_ALERTS_RESOLVED;
        if (firing_left == 0 && req->integ->resolve_when_all_resolved) {
            rv = append_transition(st, incident, IM__STATE__STATE_RESOLVED,
                                   IM__STATE__STATE_NONE);
            if (rv == 0)
                st->res->outcome = INTAKE_RESOLVED;
            else if (commit_is_refusal(rv)) {
                snprintf(st->res->detail, sizeof st->res->detail,
                         "alerts resolved; incident not: %s",
                         im_errmsg(&st->e));
                rv = 0;
            }
        }
    }
    if (st->res->outcome == INTAKE_DUPLICATE && !open)
        st->res->outcome = INTAKE_DROPPED; /* only resolved, unknown alerts */
out:
    free(refs);
    free(fire);
    free(gone);
    if (k != NULL)
        im__alert_entry__free_unpacked(k, NULL);
    return failed(st, rv);
}

int
intake_step(struct commit_step *cs, void *arg)
{
    struct intake_job *job = arg;
    struct step st = {.cs = cs,
                      .req = job->req,
                      .interval_ms = job->interval_ms,
                      .res = &job->result};
    int rv;

    memset(&job->result, 0, sizeof job->result);
    if (job->req->integ->type == INTEG_ALERTMANAGER)
        rv = am_step(&st);
    else
        rv = pd_step(&st);
    if (rv != 0)
        log_warn("intake: %s: %s", job->req->integ->name, im_errmsg(&st.e));
    return rv;
}

/* ---- periodic summaries ---- */

struct due_key {
    char integration[INTEGRATION_NAME_MAX + 1];
    char key[ALERT_KEY_MAX + 1];
};

struct due_scan {
    struct commit_step *cs;
    uint64_t interval_ms;
    struct due_key *due;
    size_t count;
    int more;
};

static int
due_visit(void *arg, const Im__AlertEntry *p)
{
    struct due_scan *d = arg;
    struct store_txn *t = d->cs->t;
    Im__AlertEntry *k = NULL;
    struct im_err e = {0};
    uint64_t last_ms = 0;

    if (alerts_key_get(t->txn, t->s, str(p->integration), str(p->key), NULL, &k,
                       &e) == 0) {
        last_ms = HLC_MS(k->hlc);
        im__alert_entry__free_unpacked(k, NULL);
    }
    if (d->cs->now_ms < last_ms + d->interval_ms)
        return 0;
    if (d->count == ALERT_FLUSH_PASS_MAX) {
        d->more = 1;
        return 1;
    }
    snprintf(d->due[d->count].integration, sizeof d->due[0].integration, "%s",
             str(p->integration));
    snprintf(d->due[d->count].key, sizeof d->due[0].key, "%s", str(p->key));
    d->count++;
    return 0;
}

int
intake_flush_step(struct commit_step *cs, void *arg)
{
    struct intake_flush_job *job = arg;
    struct due_scan d = {.cs = cs, .interval_ms = job->interval_ms};
    struct intake_result res;
    struct step st = {.cs = cs, .res = &res};
    int rv;

    job->flushed_keys = 0;
    job->more = 0;
    d.due = malloc(ALERT_FLUSH_PASS_MAX * sizeof *d.due);
    if (d.due == NULL)
        return IM_ENOMEM;
    /* Collect first: no writes to the table under its own cursor. */
    rv = alerts_pending_scan(cs->t->txn, cs->t->s, SIZE_MAX, due_visit, &d,
                             &st.e);
    for (size_t i = 0; rv == 0 && i < d.count; i++) {
        Im__AlertEntry *p = NULL;
        rv = alerts_pending_get(cs->t->txn, cs->t->s, d.due[i].integration,
                                d.due[i].key, &p, &st.e);
        if (rv == IM_ENOTFOUND) {
            rv = 0;
            continue;
        }
        if (rv != 0)
            break;
        rv = flush_pending(&st, p);
        im__alert_entry__free_unpacked(p, NULL);
        job->flushed_keys += rv == 0;
    }
    job->more = d.more;
    free(d.due);
    if (rv != 0)
        log_warn("intake: summarising occurrences: %s", im_errmsg(&st.e));
    return rv;
}

/* ---- for the fuzzers: what a valid request turns into ---- */

int
intake_events_check(const struct intake_req *req, struct im_err *e)
{
    Im__Body body = IM__BODY__INIT;
    Im__Opened o;
    Im__AlertOccurrence a = IM__ALERT_OCCURRENCE__INIT;
    Im__AlertResolved r = IM__ALERT_RESOLVED__INIT;
    Im__AlertRef *refs = NULL, **ptrs = NULL;
    size_t n = req->alerts_count < ALERT_REFS_PER_EVENT_MAX
                   ? req->alerts_count
                   : ALERT_REFS_PER_EVENT_MAX;
    int rv;

    if (req->integ == NULL || req->key[0] == '\0')
        return im_errf(e, IM_EINVAL, "accepted without integration or key");
    if (n > 0) {
        refs = calloc(n, sizeof *refs);
        ptrs = calloc(n, sizeof *ptrs);
        if (refs == NULL || ptrs == NULL) {
            free(refs);
            free(ptrs);
            return im_errf(e, IM_ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < n; i++) {
            im__alert_ref__init(&refs[i]);
            refs[i].fingerprint = (char *)req->alerts[i].fingerprint;
            refs[i].starts_at_ms = req->alerts[i].starts_at_ms;
            ptrs[i] = &refs[i];
        }
    }
    if (req->action == INTAKE_TRIGGER || req->alerts_count > 0) {
        opened_body(req, &body, &o);
        if ((rv = incident_body_check(&body, e)) != 0)
            goto out;
    }
    a.integration = (char *)req->integ->name;
    a.key = (char *)req->key;
    a.count = n ? n : 1;
    a.first_ms = a.last_ms = 1;
    a.summary = (char *)req->summary;
    a.source = (char *)req->source;
    a.severity = (char *)config_severity_name(req->severity);
    a.alerts = ptrs;
    a.n_alerts = n;
    im__body__init(&body);
    body.kind_case = IM__BODY__KIND_ALERT;
    body.alert = &a;
    if ((rv = incident_body_check(&body, e)) != 0)
        goto out;
    r.integration = a.integration;
    r.key = a.key;
    r.alerts = ptrs;
    r.n_alerts = n;
    body.kind_case = IM__BODY__KIND_ALERT_RESOLVED;
    body.alert_resolved = &r;
    rv = incident_body_check(&body, e);
out:
    free(refs);
    free(ptrs);
    return rv;
}
