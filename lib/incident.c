/* incident: see incident.h. */
#include "incident.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "text.h"

/* Assertions stay on in release builds: a fold that breaks its own
 * preconditions would let replicas diverge silently. */
#define ENSURE(cond)                                                           \
    do {                                                                       \
        if (!(cond))                                                           \
            ensure_failed(#cond, __FILE__, __LINE__);                          \
    } while (0)

static void ensure_failed(const char *expr, const char *file, int line)
    __attribute__((noreturn));

static void
ensure_failed(const char *expr, const char *file, int line)
{
    fprintf(stderr, "%s:%d: assertion failed: %s\n", file, line, expr);
    abort();
}

/* protobuf-c leaves unset strings as "", but hand-built messages may hold
 * NULL; every string read from a message goes through this. */
static const char *
str(const char *s)
{
    return s != NULL ? s : "";
}

/* Copies src into a fixed buffer and zeroes the rest, so that two
 * incidents with the same content are byte-identical (the fold's
 * determinism is tested with memcmp, and records round-trip exactly). */
static void
set_str(char *dst, size_t dst_size, const char *src)
{
    size_t n = strlen(src);

    ENSURE(n < dst_size);
    memmove(dst, src, n);
    memset(dst + n, 0, dst_size - n);
}

#define SET_STR(dst, src) set_str((dst), sizeof(dst), (src))

static int
blank(const char *s)
{
    for (; *s != '\0'; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n')
            return 0;
    return 1;
}

/* ---- names ---------------------------------------------------------- */

static const char *const state_names[] = {
    [IM__STATE__STATE_NONE] = "none",
    [IM__STATE__STATE_NEW] = "new",
    [IM__STATE__STATE_ACKNOWLEDGED] = "acknowledged",
    [IM__STATE__STATE_IN_PROGRESS] = "in_progress",
    [IM__STATE__STATE_ON_HOLD] = "on_hold",
    [IM__STATE__STATE_RESOLVED] = "resolved",
    [IM__STATE__STATE_CLOSED] = "closed",
    [IM__STATE__STATE_CANCELLED] = "cancelled",
};
#define STATE_LAST IM__STATE__STATE_CANCELLED

static const char *const level_names[] = {
    [IM__LEVEL__LEVEL_NONE] = "none",
    [IM__LEVEL__LEVEL_HIGH] = "high",
    [IM__LEVEL__LEVEL_MEDIUM] = "medium",
    [IM__LEVEL__LEVEL_LOW] = "low",
};
#define LEVEL_LAST IM__LEVEL__LEVEL_LOW

static const char *const role_names[] = {
    [IM__ROLE__ROLE_NONE] = "none",
    [IM__ROLE__ROLE_MANAGER] = "manager",
    [IM__ROLE__ROLE_COMMANDER] = "commander",
    [IM__ROLE__ROLE_COMMS] = "comms",
    [IM__ROLE__ROLE_OPS] = "ops",
    [IM__ROLE__ROLE_SME] = "sme",
};
#define ROLE_LAST IM__ROLE__ROLE_SME

static int
state_valid(int s)
{
    return s >= IM__STATE__STATE_NEW && s <= STATE_LAST;
}

static int
level_valid(int l)
{
    return l >= IM__LEVEL__LEVEL_HIGH && l <= LEVEL_LAST;
}

static int
role_valid(int r)
{
    return r >= IM__ROLE__ROLE_MANAGER && r <= ROLE_LAST;
}

const char *
incident_state_name(Im__State s)
{
    if ((int)s < 0 || (int)s > STATE_LAST)
        return "unknown";
    return state_names[s];
}

const char *
incident_level_name(Im__Level l)
{
    if ((int)l < 0 || (int)l > LEVEL_LAST)
        return "unknown";
    return level_names[l];
}

const char *
incident_role_name(Im__Role r)
{
    if ((int)r < 0 || (int)r > ROLE_LAST)
        return "unknown";
    return role_names[r];
}

static int
parse_name(const char *const *names, int last, const char *name, int *out)
{
    if (name == NULL)
        return IM_EINVAL;
    for (int i = 1; i <= last; i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    return IM_EINVAL;
}

int
incident_state_parse(const char *name, Im__State *out)
{
    int v;

    if (name != NULL && strcmp(name, "in-progress") == 0)
        v = IM__STATE__STATE_IN_PROGRESS;
    else if (name != NULL && strcmp(name, "on-hold") == 0)
        v = IM__STATE__STATE_ON_HOLD;
    else if (parse_name(state_names, STATE_LAST, name, &v) != 0)
        return IM_EINVAL;
    *out = (Im__State)v;
    return 0;
}

int
incident_level_parse(const char *name, Im__Level *out)
{
    int v;

    if (parse_name(level_names, LEVEL_LAST, name, &v) != 0)
        return IM_EINVAL;
    *out = (Im__Level)v;
    return 0;
}

int
incident_role_parse(const char *name, Im__Role *out)
{
    int v;

    if (parse_name(role_names, ROLE_LAST, name, &v) != 0)
        return IM_EINVAL;
    *out = (Im__Role)v;
    return 0;
}

int
incident_priority_parse(const char *name, int *out)
{
    if (name == NULL || name[0] != 'P' || name[1] < '1' || name[1] > '5' ||
        name[2] != '\0')
        return IM_EINVAL;
    *out = name[1] - '0';
    return 0;
}

/* ---- priority and lifecycle ----------------------------------------- */

int
incident_priority(Im__Level impact, Im__Level urgency)
{
    /* DESIGN.md §3: rows impact high..low, columns urgency high..low. */
    static const int matrix[3][3] = {{1, 2, 3}, {2, 3, 4}, {3, 4, 5}};

    if (!level_valid((int)impact) || !level_valid((int)urgency))
        return 0;
    return matrix[impact - 1][urgency - 1];
}

int
incident_state_is_open(Im__State s)
{
    return s == IM__STATE__STATE_NEW || s == IM__STATE__STATE_ACKNOWLEDGED ||
           s == IM__STATE__STATE_IN_PROGRESS || s == IM__STATE__STATE_ON_HOLD;
}

static int
state_is_final(Im__State s)
{
    return s == IM__STATE__STATE_CLOSED || s == IM__STATE__STATE_CANCELLED;
}

int
incident_transition_allowed(Im__State from, Im__State to)
{
    switch (to) {
    case IM__STATE__STATE_ACKNOWLEDGED: return from == IM__STATE__STATE_NEW;
    case IM__STATE__STATE_IN_PROGRESS:
        return from == IM__STATE__STATE_ACKNOWLEDGED ||
               from == IM__STATE__STATE_ON_HOLD ||
               from == IM__STATE__STATE_RESOLVED;
    case IM__STATE__STATE_ON_HOLD:
    case IM__STATE__STATE_RESOLVED: return from == IM__STATE__STATE_IN_PROGRESS;
    case IM__STATE__STATE_CLOSED: return from == IM__STATE__STATE_RESOLVED;
    case IM__STATE__STATE_CANCELLED: return incident_state_is_open(from);
    default: return 0;
    }
}

const char *
incident_transition_verb(Im__State from, Im__State to)
{
    switch (to) {
    case IM__STATE__STATE_ACKNOWLEDGED: return "ack";
    case IM__STATE__STATE_IN_PROGRESS:
        return from == IM__STATE__STATE_RESOLVED ? "reopen" : "start";
    case IM__STATE__STATE_ON_HOLD: return "hold";
    case IM__STATE__STATE_RESOLVED: return "resolve";
    case IM__STATE__STATE_CLOSED: return "close";
    case IM__STATE__STATE_CANCELLED: return "cancel";
    default: return NULL;
    }
}

void
incident_transitions_describe(Im__State from, char *out, size_t out_size)
{
    size_t used;
    const char *sep = "";

    if (out_size == 0)
        return;
    if (!state_valid((int)from)) {
        snprintf(out, out_size, "%s is not a state", incident_state_name(from));
        return;
    }
    if (state_is_final(from)) {
        snprintf(out, out_size, "%s is final", incident_state_name(from));
        return;
    }
    snprintf(out, out_size, "from %s you can: ", incident_state_name(from));
    for (int to = IM__STATE__STATE_NEW; to <= STATE_LAST; to++) {
        if (!incident_transition_allowed(from, (Im__State)to))
            continue;
        used = strlen(out);
        snprintf(out + used, out_size - used, "%s%s", sep,
                 incident_transition_verb(from, (Im__State)to));
        sep = ", ";
    }
}

/* ---- body validation ------------------------------------------------ */

static int
level_check(Im__Level l, int required, const char *field, struct im_err *e)
{
    if (l == IM__LEVEL__LEVEL_NONE) {
        if (required)
            return im_errf(e, IM_EINVAL, "%s is required: high, medium or low",
                           field);
        return 0;
    }
    if (!level_valid((int)l))
        return im_errf(e, IM_EINVAL,
                       "%s %d is not a level: use high, medium or low", field,
                       (int)l);
    return 0;
}

/* Stops at the first failing check, whose message is already in e. */
#define TRY(expr)                                                              \
    do {                                                                       \
        int rv_ = (expr);                                                      \
        if (rv_ != 0)                                                          \
            return rv_;                                                        \
    } while (0)

static int
category_check(const char *category, const char *subcategory, int opening,
               struct im_err *e)
{
    TRY(text_check(category, CATEGORY_MAX, TEXT_LINE, 0, "category", e));
    TRY(text_check(subcategory, CATEGORY_MAX, TEXT_LINE, 0, "subcategory", e));
    if (opening && str(category)[0] == '\0' && str(subcategory)[0] != '\0')
        return im_errf(e, IM_EINVAL, "subcategory needs a category");
    return 0;
}

static int
opened_check(const Im__Opened *o, struct im_err *e)
{
    TRY(text_check(o->title, TITLE_MAX, TEXT_LINE, 1, "title", e));
    TRY(text_check(o->description, DESCRIPTION_MAX, TEXT_MULTILINE, 0,
                   "description", e));
    TRY(text_check(o->service, SERVICE_MAX, TEXT_LINE, 1, "service", e));
    TRY(category_check(o->category, o->subcategory, 1, e));
    TRY(level_check(o->impact, 1, "impact", e));
    TRY(level_check(o->urgency, 1, "urgency", e));
    return 0;
}

static int
transition_check(const Im__Transition *t, struct im_err *e)
{
    Im__State to = t->to;

    if (to == IM__STATE__STATE_NONE)
        return im_errf(e, IM_EINVAL, "target state is required");
    if (!state_valid((int)to))
        return im_errf(e, IM_EINVAL, "target state %d is not a state", (int)to);
    if (t->from != IM__STATE__STATE_NONE && !state_valid((int)t->from))
        return im_errf(e, IM_EINVAL, "expected state %d is not a state",
                       (int)t->from);
    if (t->by_source && to != IM__STATE__STATE_RESOLVED)
        return im_errf(e, IM_EINVAL,
                       "by_source applies to a resolution only, not to a move "
                       "to %s", incident_state_name(to));
    TRY(text_check(t->reason, REASON_MAX, TEXT_MULTILINE,
                   to == IM__STATE__STATE_ON_HOLD ||
                       to == IM__STATE__STATE_CANCELLED,
                   "reason", e));
    TRY(text_check(t->code, RESOLUTION_CODE_MAX, TEXT_LINE,
                   to == IM__STATE__STATE_RESOLVED, "resolution code", e));
    TRY(text_check(t->notes, RESOLUTION_NOTES_MAX, TEXT_MULTILINE,
                   to == IM__STATE__STATE_RESOLVED, "resolution notes", e));
    return 0;
}

static int
set_check(const Im__FieldsSet *s, struct im_err *e)
{
    /* Empty means unchanged; blank would clear a field that opening
     * requires. */
    if (str(s->title)[0] != '\0' && blank(s->title))
        return im_errf(e, IM_EINVAL, "title cannot be blank");
    if (str(s->service)[0] != '\0' && blank(s->service))
        return im_errf(e, IM_EINVAL, "service cannot be blank");
    TRY(text_check(s->title, TITLE_MAX, TEXT_LINE, 0, "title", e));
    TRY(text_check(s->description, DESCRIPTION_MAX, TEXT_MULTILINE, 0,
                   "description", e));
    TRY(text_check(s->service, SERVICE_MAX, TEXT_LINE, 0, "service", e));
    /* Whether a subcategory has a category depends on the incident: the
     * fold checks it. */
    TRY(category_check(s->category, s->subcategory, 0, e));
    TRY(level_check(s->impact, 0, "impact", e));
    TRY(level_check(s->urgency, 0, "urgency", e));
    return 0;
}

static int
role_check(const Im__RoleSet *r, struct im_err *e)
{
    if (r->role == IM__ROLE__ROLE_NONE)
        return im_errf(e, IM_EINVAL,
                       "role is required: manager, commander, comms, ops "
                       "or sme");
    if (!role_valid((int)r->role))
        return im_errf(e, IM_EINVAL,
                       "role %d is not a role: use manager, commander, comms, "
                       "ops or sme",
                       (int)r->role);
    TRY(text_check(r->person, PERSON_MAX, TEXT_LINE,
                   r->role == IM__ROLE__ROLE_SME, "person", e));
    if (r->remove && r->role != IM__ROLE__ROLE_SME)
        return im_errf(e, IM_EINVAL,
                       "remove applies to the sme role only: clear a %s "
                       "with an empty person",
                       incident_role_name(r->role));
    return 0;
}

static int
site_check(const char *site, const char *field, struct im_err *e)
{
    if (config_check_site_code(str(site)) != 0)
        return im_errf(e, IM_EINVAL,
                       "%s is not a site code: use %d to %d capital letters "
                       "or digits, starting with a letter",
                       field, SITE_CODE_MIN, SITE_CODE_MAX);
    return 0;
}

static int
owner_check(const Im__OwnerAssigned *o, struct im_err *e)
{
    TRY(site_check(o->site, "owner site", e));
    TRY(text_check(o->manager, PERSON_MAX, TEXT_LINE, 0, "manager", e));
    if (o->token == 0)
        return im_errf(e, IM_EINVAL, "owner token must be positive");
    TRY(text_check(o->reason, REASON_MAX, TEXT_MULTILINE, 0, "reason", e));
    return 0;
}

static int
major_check(const Im__MajorDeclared *m, struct im_err *e)
{
    char field[32];

    TRY(text_check(m->reason, REASON_MAX, TEXT_MULTILINE, 0, "reason", e));
    if (m->n_affects > AFFECTS_MAX)
        return im_errf(e, IM_ETOOBIG, "affects lists more than %d sites",
                       AFFECTS_MAX);
    for (size_t i = 0; i < m->n_affects; i++) {
        snprintf(field, sizeof field, "affects[%zu]", i);
        TRY(site_check(m->affects[i], field, e));
    }
    return 0;
}

static int
alert_refs_check(Im__AlertRef *const *refs, size_t n, struct im_err *e)
{
    char field[48];

    if (n > ALERT_REFS_PER_EVENT_MAX)
        return im_errf(e, IM_ETOOBIG, "an alert event lists more than %d alerts",
                       ALERT_REFS_PER_EVENT_MAX);
    for (size_t i = 0; i < n; i++) {
        snprintf(field, sizeof field, "alerts[%zu].fingerprint", i);
        if (refs[i] == NULL)
            return im_errf(e, IM_EINVAL, "alerts[%zu] is empty", i);
        TRY(text_check(refs[i]->fingerprint, AM_FINGERPRINT_MAX, TEXT_LINE, 1,
                       field, e));
    }
    return 0;
}

static int
alert_check(const Im__AlertOccurrence *a, struct im_err *e)
{
    enum alert_severity sev;

    TRY(text_check(a->integration, INTEGRATION_NAME_MAX, TEXT_LINE, 1,
                   "integration", e));
    TRY(text_check(a->key, ALERT_KEY_MAX, TEXT_LINE, 1, "alert key", e));
    if (a->count == 0)
        return im_errf(e, IM_EINVAL, "an alert occurrence counts at least 1");
    if (a->first_ms > a->last_ms)
        return im_errf(e, IM_EINVAL, "alert occurrence: first is after last");
    TRY(text_check(a->summary, ALERT_SUMMARY_MAX, TEXT_MULTILINE, 0,
                   "alert summary", e));
    TRY(text_check(a->source, ALERT_FIELD_MAX, TEXT_LINE, 0, "alert source", e));
    if (str(a->severity)[0] != '\0' &&
        config_severity_parse(a->severity, &sev) != 0)
        return im_errf(e, IM_EINVAL,
                       "alert severity must be critical, error, warning or info");
    return alert_refs_check(a->alerts, a->n_alerts, e);
}

static int
alert_resolved_check(const Im__AlertResolved *a, struct im_err *e)
{
    TRY(text_check(a->integration, INTEGRATION_NAME_MAX, TEXT_LINE, 1,
                   "integration", e));
    TRY(text_check(a->key, ALERT_KEY_MAX, TEXT_LINE, 1, "alert key", e));
    return alert_refs_check(a->alerts, a->n_alerts, e);
}

static int
notified_check(const Im__NotificationSent *n, struct im_err *e)
{
    TRY(text_check(n->id, NOTIFY_ID_MAX, TEXT_LINE, 1, "notification id", e));
    TRY(text_check(n->channel, INTEGRATION_NAME_MAX, TEXT_LINE, 1,
                   "notification channel", e));
    TRY(text_check(n->rules, NOTIFY_RULES_TEXT_MAX, TEXT_LINE, 0,
                   "notification rules", e));
    if (n->attempts == 0 || n->attempts > NOTIFY_ATTEMPTS_MAX)
        return im_errf(e, IM_EINVAL, "notification attempts must be 1 to %d",
                       NOTIFY_ATTEMPTS_MAX);
    TRY(text_check(n->detail, REASON_MAX, TEXT_MULTILINE, 0,
                   "notification detail", e));
    return 0;
}

static int
escalated_check(const Im__Escalated *p, struct im_err *e)
{
    TRY(text_check(p->notice, NOTICE_ID_MAX, TEXT_LINE, 1, "page notice", e));
    TRY(site_check(p->site, "page site", e));
    TRY(text_check(p->person, PERSON_MAX, TEXT_LINE, 0, "paged person", e));
    TRY(text_check(p->text, PAGE_TEXT_MAX, TEXT_MULTILINE, 0, "page text", e));
    return 0;
}

/* The sub-message of the body's kind, or NULL (a hand-built message with
 * the case set but no payload). */
static const void *
body_payload(const Im__Body *b)
{
    switch (b->kind_case) {
    case IM__BODY__KIND_OPENED: return b->opened;
    case IM__BODY__KIND_TRANSITION: return b->transition;
    case IM__BODY__KIND_NOTE: return b->note;
    case IM__BODY__KIND_SET: return b->set;
    case IM__BODY__KIND_ASSIGN: return b->assign;
    case IM__BODY__KIND_ROLE: return b->role;
    case IM__BODY__KIND_UPDATE: return b->update;
    case IM__BODY__KIND_OWNER: return b->owner;
    case IM__BODY__KIND_MAJOR: return b->major;
    case IM__BODY__KIND_ALERT: return b->alert;
    case IM__BODY__KIND_ALERT_RESOLVED: return b->alert_resolved;
    case IM__BODY__KIND_NOTIFIED: return b->notified;
    case IM__BODY__KIND_ESCALATED: return b->escalated;
    default: return NULL;
    }
}

int
incident_body_check(const Im__Body *b, struct im_err *e)
{
    if (b == NULL)
        return im_errf(e, IM_EINVAL, "event has no body");
    if (b->kind_case == IM__BODY__KIND__NOT_SET)
        return im_errf(e, IM_EINVAL, "event body has no kind");
    if (body_payload(b) == NULL)
        return im_errf(
            e, IM_EINVAL, "event body kind %d is %s", (int)b->kind_case,
            (int)b->kind_case > IM__BODY__KIND_ESCALATED ? "unknown" : "empty");
    switch (b->kind_case) {
    case IM__BODY__KIND_OPENED: return opened_check(b->opened, e);
    case IM__BODY__KIND_TRANSITION: return transition_check(b->transition, e);
    case IM__BODY__KIND_NOTE:
        return text_check(b->note->text, NOTE_MAX, TEXT_MULTILINE, 1, "note",
                          e);
    case IM__BODY__KIND_SET: return set_check(b->set, e);
    case IM__BODY__KIND_ASSIGN:
        return text_check(b->assign->person, PERSON_MAX, TEXT_LINE, 0, "person",
                          e);
    case IM__BODY__KIND_ROLE: return role_check(b->role, e);
    case IM__BODY__KIND_UPDATE:
        return text_check(b->update->text, PUBLIC_UPDATE_MAX, TEXT_MULTILINE, 1,
                          "public update", e);
    case IM__BODY__KIND_OWNER: return owner_check(b->owner, e);
    case IM__BODY__KIND_MAJOR: return major_check(b->major, e);
    case IM__BODY__KIND_ALERT: return alert_check(b->alert, e);
    case IM__BODY__KIND_ALERT_RESOLVED:
        return alert_resolved_check(b->alert_resolved, e);
    case IM__BODY__KIND_NOTIFIED: return notified_check(b->notified, e);
    case IM__BODY__KIND_ESCALATED: return escalated_check(b->escalated, e);
    default: return im_errf(e, IM_EINVAL, "unknown body kind");
    }
}

int
incident_body_owner_only(const Im__Body *b)
{
    if (b == NULL)
        return 0;
    return b->kind_case == IM__BODY__KIND_TRANSITION ||
           b->kind_case == IM__BODY__KIND_ASSIGN ||
           b->kind_case == IM__BODY__KIND_UPDATE;
}

/* ---- ordering ------------------------------------------------------- */

static int
key_cmp(hlc_t a_hlc, const char *a_origin, uint64_t a_seq, hlc_t b_hlc,
        const char *b_origin, uint64_t b_seq)
{
    int c;

    if (a_hlc != b_hlc)
        return a_hlc < b_hlc ? -1 : 1;
    c = strcmp(a_origin, b_origin);
    if (c != 0)
        return c < 0 ? -1 : 1;
    if (a_seq != b_seq)
        return a_seq < b_seq ? -1 : 1;
    return 0;
}

int
incident_event_cmp(const Im__Event *a, const Im__Event *b)
{
    return key_cmp(a->hlc, str(a->origin), a->seq, b->hlc, str(b->origin),
                   b->seq);
}

int
incident_event_after_last(const struct incident *inc, const Im__Event *ev)
{
    if (inc->events_count == 0)
        return 1;
    return key_cmp(ev->hlc, str(ev->origin), ev->seq, inc->last_hlc,
                   inc->last_origin, inc->last_seq) > 0;
}

/* ---- the fold ------------------------------------------------------- */

/* "<origin>-<n>", n a positive decimal without leading zeros that fits
 * 64 bits: the id a site's counter produces, so that ids are unique
 * without coordination (DESIGN.md §3). */
static int
id_valid(const char *id, const char *origin)
{
    size_t origin_size = strlen(origin), digits;
    const char *n;

    if (strlen(id) > INCIDENT_ID_MAX)
        return 0;
    if (strncmp(id, origin, origin_size) != 0 || id[origin_size] != '-')
        return 0;
    n = id + origin_size + 1;
    digits = strlen(n);
    if (digits == 0 || digits > 20 || n[0] == '0')
        return 0;
    for (size_t i = 0; i < digits; i++)
        if (n[i] < '0' || n[i] > '9')
            return 0;
    return digits < 20 || strcmp(n, "18446744073709551615") <= 0;
}

static int
apply_opened(struct incident *inc, const Im__Event *ev, uint64_t at_ms,
             struct im_err *e)
{
    const Im__Opened *o = ev->body->opened;
    const char *origin = str(ev->origin);

    if (config_check_site_code(origin) != 0)
        return im_errf(e, IM_EINVAL,
                       "an incident can only be opened by a site: origin is "
                       "not a site code");
    if (!id_valid(str(ev->incident), origin))
        return im_errf(e, IM_EINVAL,
                       "invalid incident id for an incident opened at %s: "
                       "expected %s-<n>, n a positive number without "
                       "leading zeros",
                       origin, origin);
    SET_STR(inc->id, ev->incident);
    SET_STR(inc->title, str(o->title));
    SET_STR(inc->description, str(o->description));
    SET_STR(inc->service, str(o->service));
    SET_STR(inc->category, str(o->category));
    SET_STR(inc->subcategory, str(o->subcategory));
    inc->impact = o->impact;
    inc->urgency = o->urgency;
    inc->priority = incident_priority(o->impact, o->urgency);
    inc->declared_major = o->major ? 1 : 0;
    inc->major = inc->priority == 1 || inc->declared_major;
    inc->state = IM__STATE__STATE_NEW;
    SET_STR(inc->origin_site, origin);
    SET_STR(inc->owner_site, origin);
    SET_STR(inc->owner_manager, "");
    inc->owner_token = 0;
    inc->owner_provisional = 1;
    inc->opened_at_ms = at_ms;
    return 0;
}

static int
apply_transition(struct incident *inc, const Im__Transition *t, uint64_t at_ms,
                 struct im_err *e)
{
    Im__State from = inc->state, to = t->to;
    char allowed[128];
    const char *verb;

    if (t->from != IM__STATE__STATE_NONE && t->from != from)
        return im_errf(e, IM_ESTATE, "%s is %s, not %s", inc->id,
                       incident_state_name(from), incident_state_name(t->from));
    incident_transitions_describe(from, allowed, sizeof allowed);
    if (state_is_final(from))
        return im_errf(e, IM_ESTATE, "%s is %s; %s", inc->id,
                       incident_state_name(from), allowed);
    /* Monitoring resolves what it triggered, from any open state (the
     * PagerDuty model); people go through the lifecycle. */
    if (t->by_source && to == IM__STATE__STATE_RESOLVED &&
        incident_state_is_open(from))
        ;
    else if (!incident_transition_allowed(from, to)) {
        verb = incident_transition_verb(from, to);
        if (verb != NULL)
            return im_errf(e, IM_ESTATE, "cannot %s %s: it is %s; %s", verb,
                           inc->id, incident_state_name(from), allowed);
        return im_errf(e, IM_ESTATE, "cannot move %s to %s: it is %s; %s",
                       inc->id, incident_state_name(to),
                       incident_state_name(from), allowed);
    }
    if (from == IM__STATE__STATE_RESOLVED &&
        to == IM__STATE__STATE_IN_PROGRESS && blank(str(t->reason)))
        return im_errf(e, IM_EINVAL, "reopening %s needs a reason", inc->id);

    switch (to) {
    case IM__STATE__STATE_ACKNOWLEDGED:
        if (inc->acknowledged_at_ms == 0)
            inc->acknowledged_at_ms = at_ms;
        break;
    case IM__STATE__STATE_IN_PROGRESS:
        if (from == IM__STATE__STATE_RESOLVED) {
            inc->reopen_count++;
            inc->resolved_at_ms = 0;
            SET_STR(inc->resolution_code, "");
            SET_STR(inc->resolution_notes, "");
        }
        break;
    case IM__STATE__STATE_RESOLVED:
        inc->resolved_at_ms = at_ms;
        SET_STR(inc->resolution_code, str(t->code));
        SET_STR(inc->resolution_notes, str(t->notes));
        break;
    case IM__STATE__STATE_CLOSED: inc->closed_at_ms = at_ms; break;
    case IM__STATE__STATE_CANCELLED: inc->cancelled_at_ms = at_ms; break;
    default: break;
    }
    inc->state = to;
    return 0;
}

static int
apply_set(struct incident *inc, const Im__FieldsSet *s, struct im_err *e)
{
    const char *title = str(s->title), *description = str(s->description);
    const char *service = str(s->service), *category = str(s->category);
    const char *subcategory = str(s->subcategory);
    Im__Level impact = s->impact, urgency = s->urgency;
    int changed = 0;

    /* Everything is decided before anything is written: a refused set
     * leaves the incident as it was. */
    if (title[0] == '\0')
        title = inc->title;
    if (description[0] == '\0')
        description = inc->description;
    if (service[0] == '\0')
        service = inc->service;
    if (category[0] == '\0')
        category = inc->category;
    /* A subcategory belongs to its category: a new category without a new
     * subcategory drops the old one rather than pair it with a stranger. */
    if (subcategory[0] == '\0')
        subcategory =
            strcmp(category, inc->category) == 0 ? inc->subcategory : "";
    if (impact == IM__LEVEL__LEVEL_NONE)
        impact = inc->impact;
    if (urgency == IM__LEVEL__LEVEL_NONE)
        urgency = inc->urgency;
    if (subcategory[0] != '\0' && category[0] == '\0')
        return im_errf(e, IM_EINVAL,
                       "subcategory needs a category: %s has none", inc->id);

    changed = strcmp(title, inc->title) != 0 ||
              strcmp(description, inc->description) != 0 ||
              strcmp(service, inc->service) != 0 ||
              strcmp(category, inc->category) != 0 ||
              strcmp(subcategory, inc->subcategory) != 0 ||
              impact != inc->impact || urgency != inc->urgency;
    if (!changed)
        return im_errf(e, IM_EINVAL,
                       "nothing to change: %s already has these values",
                       inc->id);

    SET_STR(inc->title, title);
    SET_STR(inc->description, description);
    SET_STR(inc->service, service);
    SET_STR(inc->category, category);
    SET_STR(inc->subcategory, subcategory);
    inc->impact = impact;
    inc->urgency = urgency;
    inc->priority = incident_priority(impact, urgency);
    inc->major = inc->priority == 1 || inc->declared_major;
    return 0;
}

static int
sme_find(const struct incident *inc, const char *person)
{
    for (size_t i = 0; i < inc->smes_count; i++)
        if (strcmp(inc->smes[i], person) == 0)
            return (int)i;
    return -1;
}

static int
apply_role(struct incident *inc, const Im__RoleSet *r, struct im_err *e)
{
    const char *person = str(r->person);
    int i;

    switch (r->role) {
    case IM__ROLE__ROLE_MANAGER: SET_STR(inc->manager, person); return 0;
    case IM__ROLE__ROLE_COMMANDER: SET_STR(inc->commander, person); return 0;
    case IM__ROLE__ROLE_COMMS: SET_STR(inc->comms, person); return 0;
    case IM__ROLE__ROLE_OPS: SET_STR(inc->ops, person); return 0;
    case IM__ROLE__ROLE_SME: break;
    default: ENSURE(!"role checked by incident_body_check");
    }
    i = sme_find(inc, person);
    if (r->remove) {
        if (i < 0)
            return im_errf(e, IM_ENOTFOUND, "%s is not an SME on %s", person,
                           inc->id);
        for (size_t k = (size_t)i; k + 1 < inc->smes_count; k++)
            memcpy(inc->smes[k], inc->smes[k + 1], sizeof inc->smes[k]);
        inc->smes_count--;
        SET_STR(inc->smes[inc->smes_count], "");
        return 0;
    }
    if (i >= 0)
        return im_errf(e, IM_EINVAL, "%s is already an SME on %s", person,
                       inc->id);
    if (inc->smes_count >= SMES_MAX)
        return im_errf(e, IM_ETOOBIG,
                       "%s already has %d SMEs, the most one incident may "
                       "have",
                       inc->id, SMES_MAX);
    SET_STR(inc->smes[inc->smes_count], person);
    inc->smes_count++;
    return 0;
}

static int
apply_owner(struct incident *inc, const Im__OwnerAssigned *o, struct im_err *e)
{
    const char *site = str(o->site), *manager = str(o->manager);

    if (o->token > inc->owner_token) {
        SET_STR(inc->owner_site, site);
        SET_STR(inc->owner_manager, manager);
        inc->owner_token = o->token;
        inc->owner_provisional = 0;
        SET_STR(inc->manager, manager);
        return 0;
    }
    /* Every site records the coordinator's decision, so the same
     * assignment may arrive more than once. */
    if (o->token == inc->owner_token && strcmp(site, inc->owner_site) == 0 &&
        strcmp(manager, inc->owner_manager) == 0)
        return 0;
    return im_errf(e, IM_ESTALE,
                   "stale owner token %" PRIu64 " for %s: %s is owned by %s "
                   "under token %" PRIu64,
                   o->token, site, inc->id, inc->owner_site, inc->owner_token);
}

static int
apply_major(struct incident *inc, const Im__MajorDeclared *m, struct im_err *e)
{
    if (m->major) {
        inc->declared_major = 1;
        inc->major = 1;
        return 0;
    }
    if (inc->priority == 1)
        return im_errf(e, IM_ESTATE,
                       "%s is P1: a P1 incident is always major; lower its "
                       "impact or urgency first",
                       inc->id);
    inc->declared_major = 0;
    inc->major = 0;
    return 0;
}

/* What a closed or cancelled incident refuses, in words for the message. */
static const char *
final_refusal_verb(Im__Body__KindCase kind)
{
    switch (kind) {
    case IM__BODY__KIND_SET: return "change";
    case IM__BODY__KIND_ASSIGN: return "assign";
    case IM__BODY__KIND_ROLE: return "set roles on";
    case IM__BODY__KIND_UPDATE: return "post a public update on";
    default: return NULL;
    }
}

static int
apply_event(struct incident *inc, const Im__Event *ev, struct im_err *e)
{
    const Im__Body *b = ev->body;
    const char *origin = str(ev->origin);
    uint64_t at_ms = HLC_MS(ev->hlc);
    const char *verb;
    int rv;

    if ((rv = incident_body_check(b, e)) != 0)
        return rv;
    if (inc->id[0] == '\0') {
        if (b->kind_case != IM__BODY__KIND_OPENED)
            return im_errf(e, IM_EINVAL,
                           "the incident has not been opened: its first "
                           "event must open it");
        rv = apply_opened(inc, ev, at_ms, e);
        goto done;
    }
    if (strcmp(str(ev->incident), inc->id) != 0)
        return im_errf(e, IM_EINVAL,
                       "event belongs to another incident, "
                       "not %s",
                       inc->id);
    if (b->kind_case == IM__BODY__KIND_OPENED)
        return im_errf(e, IM_EINVAL, "%s was already opened", inc->id);
    if (incident_body_owner_only(b) && (strcmp(origin, inc->owner_site) != 0 ||
                                        ev->owner_token != inc->owner_token))
        return im_errf(e, IM_ESTALE,
                       "stale owner token %" PRIu64 " from %s: %s is owned "
                       "by %s under token %" PRIu64,
                       ev->owner_token, origin, inc->id, inc->owner_site,
                       inc->owner_token);
    /* The log stays open for notes after the end; ownership and the major
     * flag are bookkeeping that other sites must still be able to record.
     * Transitions explain finality themselves. */
    verb = final_refusal_verb(b->kind_case);
    if (state_is_final(inc->state) && verb != NULL)
        return im_errf(e, IM_ESTATE, "cannot %s %s: it is %s", verb, inc->id,
                       incident_state_name(inc->state));

    switch (b->kind_case) {
    case IM__BODY__KIND_TRANSITION:
        rv = apply_transition(inc, b->transition, at_ms, e);
        break;
    case IM__BODY__KIND_NOTE: rv = 0; break;
    case IM__BODY__KIND_SET: rv = apply_set(inc, b->set, e); break;
    case IM__BODY__KIND_ASSIGN:
        SET_STR(inc->assignee, str(b->assign->person));
        rv = 0;
        break;
    case IM__BODY__KIND_ROLE: rv = apply_role(inc, b->role, e); break;
    case IM__BODY__KIND_UPDATE:
        SET_STR(inc->last_public_update, str(b->update->text));
        inc->last_public_update_at_ms = at_ms;
        rv = 0;
        break;
    case IM__BODY__KIND_OWNER: rv = apply_owner(inc, b->owner, e); break;
    case IM__BODY__KIND_MAJOR: rv = apply_major(inc, b->major, e); break;
    /* Observations and bookkeeping: any site, any state, no change to the
     * incident's fields (the alert index and the outbox derive from them,
     * node/alerts.c and node/notify.c). */
    case IM__BODY__KIND_ALERT:
    case IM__BODY__KIND_ALERT_RESOLVED:
    case IM__BODY__KIND_NOTIFIED:
    case IM__BODY__KIND_ESCALATED: rv = 0; break;
    default: ENSURE(!"kind checked by incident_body_check");
    }
done:
    if (rv == 0)
        inc->updated_at_ms = at_ms;
    return rv;
}

int
incident_apply(struct incident *inc, const Im__Event *ev, struct im_err *e)
{
    const char *origin;
    int rv;

    ENSURE(inc != NULL);
    ENSURE(ev != NULL);
    origin = str(ev->origin);
    /* The caller admits only events from configured sites, whose codes fit
     * last_origin. */
    ENSURE(strlen(origin) <= SITE_CODE_MAX);
    ENSURE(incident_event_after_last(inc, ev));
    ENSURE(inc->events_count < UINT32_MAX);

    if (inc->events_count >= INCIDENT_EVENTS_MAX)
        rv = im_errf(e, IM_ETOOBIG,
                     "%s already holds %d events, the most one incident may "
                     "hold",
                     inc->id[0] ? inc->id : str(ev->incident),
                     INCIDENT_EVENTS_MAX);
    else
        rv = apply_event(inc, ev, e);
    if (rv == 0)
        im_errclear(e);

    inc->events_count++;
    inc->last_hlc = ev->hlc;
    SET_STR(inc->last_origin, origin);
    inc->last_seq = ev->seq;
    return rv;
}

/* Sorted input is the common case (the store returns events in fold
 * order), and heapsort needs no memory beyond the array: glibc's qsort may
 * call malloc for the merge buffer, and the fold does not allocate. */
static void
sift_down(const Im__Event **a, size_t root, size_t n)
{
    for (;;) {
        size_t child = 2 * root + 1;
        const Im__Event *tmp;

        if (child >= n)
            return;
        if (child + 1 < n && incident_event_cmp(a[child], a[child + 1]) < 0)
            child++;
        if (incident_event_cmp(a[root], a[child]) >= 0)
            return;
        tmp = a[root];
        a[root] = a[child];
        a[child] = tmp;
        root = child;
    }
}

static void
events_sort(const Im__Event **a, size_t n)
{
    size_t i;

    for (i = 1; i < n; i++)
        if (incident_event_cmp(a[i - 1], a[i]) > 0)
            break;
    if (i >= n)
        return;
    for (i = n / 2; i-- > 0;)
        sift_down(a, i, n);
    for (i = n; i-- > 1;) {
        const Im__Event *tmp = a[0];
        a[0] = a[i];
        a[i] = tmp;
        sift_down(a, 0, i);
    }
}

int
incident_fold(struct incident *inc, const Im__Event **events, size_t n,
              struct fold_outcome *outcomes)
{
    struct im_err e;
    int first_rv = IM_EINVAL;

    memset(inc, 0, sizeof *inc);
    events_sort(events, n);
    for (size_t i = 0; i < n; i++) {
        int rv;

        im_errclear(&e);
        rv = incident_apply(inc, events[i], &e);
        if (i == 0)
            first_rv =
                rv == 0 && events[0]->body->kind_case == IM__BODY__KIND_OPENED
                    ? 0
                    : IM_EINVAL;
        if (outcomes != NULL) {
            outcomes[i].event = events[i];
            outcomes[i].code = rv;
            memcpy(outcomes[i].reason, e.msg, sizeof outcomes[i].reason);
        }
    }
    return first_rv;
}

/* ---- describe ------------------------------------------------------- */

/* A bounded text builder: output past the end is dropped and the text ends
 * in "..." on a character boundary, so display text stays valid UTF-8. */
struct line {
    char *p;
    size_t size;
    size_t used;
    int truncated;
};

static void line_printf(struct line *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
line_printf(struct line *l, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (l->truncated || l->size == 0)
        return;
    va_start(ap, fmt);
    n = vsnprintf(l->p + l->used, l->size - l->used, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= l->size - l->used) {
        l->used = l->size - 1;
        l->truncated = 1;
        return;
    }
    l->used += (size_t)n;
}

static void
line_finish(struct line *l)
{
    size_t keep;

    if (!l->truncated || l->size == 0)
        return;
    keep = l->size > 4 ? l->size - 4 : 0;
    if (keep > l->used)
        keep = l->used;
    while (keep > 0 && ((unsigned char)l->p[keep] & 0xc0) == 0x80)
        keep--;
    if (l->size >= 4)
        memcpy(l->p + keep, "...", 4);
    else
        l->p[keep] = '\0';
}

/* ": reason" when there is one. */
static void
line_reason(struct line *l, const char *reason)
{
    if (!blank(str(reason)))
        line_printf(l, ": %s", reason);
}

static void
describe_transition(const Im__Transition *t, char *kind, struct line *l)
{
    const char *k, *phrase;

    switch (t->to) {
    case IM__STATE__STATE_ACKNOWLEDGED:
        k = "acknowledged";
        phrase = "acknowledged";
        break;
    case IM__STATE__STATE_IN_PROGRESS:
        /* Only the event is known here, not the state it left: the CLI's
         * reopen names resolved as the expected state. */
        if (t->from == IM__STATE__STATE_RESOLVED) {
            k = "reopened";
            phrase = "reopened";
        } else {
            k = "started";
            phrase = "started work";
        }
        break;
    case IM__STATE__STATE_ON_HOLD:
        k = "held";
        phrase = "on hold";
        break;
    case IM__STATE__STATE_RESOLVED:
        snprintf(kind, TIMELINE_KIND_MAX, "resolved");
        line_printf(l, "resolved%s (code %s): %s",
                    t->by_source ? " by its alert source" : "", str(t->code),
                    str(t->notes));
        return;
    case IM__STATE__STATE_CLOSED:
        k = "closed";
        phrase = "closed";
        break;
    case IM__STATE__STATE_CANCELLED:
        k = "cancelled";
        phrase = "cancelled";
        break;
    default:
        snprintf(kind, TIMELINE_KIND_MAX, "transition");
        line_printf(l, "moved to %s", incident_state_name(t->to));
        line_reason(l, t->reason);
        return;
    }
    snprintf(kind, TIMELINE_KIND_MAX, "%s", k);
    line_printf(l, "%s", phrase);
    line_reason(l, t->reason);
}

static void
describe_set(const Im__FieldsSet *s, struct line *l)
{
    const char *sep = " ";

    line_printf(l, "set");
    if (s->impact != IM__LEVEL__LEVEL_NONE &&
        s->urgency != IM__LEVEL__LEVEL_NONE) {
        line_printf(l, "%spriority P%d (impact %s, urgency %s)", sep,
                    incident_priority(s->impact, s->urgency),
                    incident_level_name(s->impact),
                    incident_level_name(s->urgency));
        sep = ", ";
    } else if (s->impact != IM__LEVEL__LEVEL_NONE) {
        line_printf(l, "%simpact %s", sep, incident_level_name(s->impact));
        sep = ", ";
    } else if (s->urgency != IM__LEVEL__LEVEL_NONE) {
        line_printf(l, "%surgency %s", sep, incident_level_name(s->urgency));
        sep = ", ";
    }
    if (str(s->service)[0] != '\0') {
        line_printf(l, "%sservice %s", sep, s->service);
        sep = ", ";
    }
    if (str(s->category)[0] != '\0') {
        line_printf(l, "%scategory %s", sep, s->category);
        sep = ", ";
    }
    if (str(s->subcategory)[0] != '\0') {
        line_printf(l, "%ssubcategory %s", sep, s->subcategory);
        sep = ", ";
    }
    if (str(s->description)[0] != '\0') {
        line_printf(l, "%sdescription", sep);
        sep = ", ";
    }
    if (str(s->title)[0] != '\0')
        line_printf(l, "%stitle \"%s\"", sep, s->title);
}

static void
describe_role(const Im__RoleSet *r, struct line *l)
{
    const char *person = str(r->person);

    if (r->role == IM__ROLE__ROLE_SME)
        line_printf(l, "SME %s: %s", r->remove ? "removed" : "added", person);
    else if (person[0] == '\0')
        line_printf(l, "%s cleared", incident_role_name(r->role));
    else
        line_printf(l, "%s: %s", incident_role_name(r->role), person);
}

static void
describe_major(const Im__MajorDeclared *m, struct line *l)
{
    line_printf(l, "%s", m->major ? "declared major" : "major downgraded");
    for (size_t i = 0; i < m->n_affects; i++)
        line_printf(l, "%s%s", i == 0 ? " (affects " : ", ", m->affects[i]);
    if (m->n_affects > 0)
        line_printf(l, ")");
    line_reason(l, m->reason);
}

static void
describe_alert(const Im__AlertOccurrence *a, struct line *l)
{
    char first[CLOCK_RFC3339_MAX], last[CLOCK_RFC3339_MAX];

    if (a->opened)
        line_printf(l, "alert from %s opened it", a->integration);
    else if (a->count == 1)
        line_printf(l, "alert from %s", a->integration);
    else {
        clock_fmt_rfc3339(a->first_ms, first);
        clock_fmt_rfc3339(a->last_ms, last);
        line_printf(l, "%" PRIu64 " occurrences from %s (first %s, last %s)",
                    a->count, a->integration, first, last);
    }
    line_printf(l, " [%s]", a->key);
    if (a->n_alerts > 0)
        line_printf(l, ", %zu alert%s firing", a->n_alerts,
                    a->n_alerts == 1 ? "" : "s");
    if (str(a->severity)[0] != '\0')
        line_printf(l, " (%s)", a->severity);
    if (str(a->summary)[0] != '\0')
        line_printf(l, ": %s", a->summary);
}

void
incident_event_describe(const Im__Event *ev, char kind[TIMELINE_KIND_MAX],
                        char *text, size_t text_size)
{
    struct line l = {text, text_size, 0, 0};
    const Im__Body *b = ev->body;
    struct im_err e;

    if (text_size > 0)
        text[0] = '\0';
    /* Messages of incident_body_check never echo the input, so even an
     * invalid event yields printable, valid UTF-8. */
    if (incident_body_check(b, &e) != 0) {
        snprintf(kind, TIMELINE_KIND_MAX, "invalid");
        line_printf(&l, "invalid event: %s", e.msg);
        line_finish(&l);
        return;
    }
    switch (b->kind_case) {
    case IM__BODY__KIND_OPENED:
        snprintf(kind, TIMELINE_KIND_MAX, "opened");
        line_printf(&l, "opened P%d (impact %s, urgency %s)%s: %s",
                    incident_priority(b->opened->impact, b->opened->urgency),
                    incident_level_name(b->opened->impact),
                    incident_level_name(b->opened->urgency),
                    b->opened->major ? ", declared major" : "",
                    b->opened->title);
        break;
    case IM__BODY__KIND_TRANSITION:
        describe_transition(b->transition, kind, &l);
        break;
    case IM__BODY__KIND_NOTE:
        snprintf(kind, TIMELINE_KIND_MAX, "note");
        line_printf(&l, "note: %s", b->note->text);
        break;
    case IM__BODY__KIND_SET:
        snprintf(kind, TIMELINE_KIND_MAX, "set");
        describe_set(b->set, &l);
        break;
    case IM__BODY__KIND_ASSIGN:
        snprintf(kind, TIMELINE_KIND_MAX, "assigned");
        if (str(b->assign->person)[0] == '\0')
            line_printf(&l, "unassigned");
        else
            line_printf(&l, "assigned to %s", b->assign->person);
        break;
    case IM__BODY__KIND_ROLE:
        snprintf(kind, TIMELINE_KIND_MAX, "role");
        describe_role(b->role, &l);
        break;
    case IM__BODY__KIND_UPDATE:
        snprintf(kind, TIMELINE_KIND_MAX, "update");
        line_printf(&l, "public update: %s", b->update->text);
        break;
    case IM__BODY__KIND_OWNER:
        snprintf(kind, TIMELINE_KIND_MAX, "owner");
        line_printf(&l, "owner: %s (", b->owner->site);
        if (str(b->owner->manager)[0] != '\0')
            line_printf(&l, "manager %s, ", b->owner->manager);
        line_printf(&l, "token %" PRIu64 ")", b->owner->token);
        line_reason(&l, b->owner->reason);
        break;
    case IM__BODY__KIND_MAJOR:
        snprintf(kind, TIMELINE_KIND_MAX, "major");
        describe_major(b->major, &l);
        break;
    case IM__BODY__KIND_ALERT:
        snprintf(kind, TIMELINE_KIND_MAX, "alert");
        describe_alert(b->alert, &l);
        break;
    case IM__BODY__KIND_ALERT_RESOLVED:
        snprintf(kind, TIMELINE_KIND_MAX, "alert_resolved");
        line_printf(&l, "%s resolved %s", b->alert_resolved->integration,
                    b->alert_resolved->n_alerts ? "alerts of " : "");
        line_printf(&l, "%s", b->alert_resolved->key);
        if (b->alert_resolved->n_alerts)
            line_printf(&l, " (%zu)%s", b->alert_resolved->n_alerts,
                        b->alert_resolved->all ? ", none firing now" : "");
        break;
    case IM__BODY__KIND_NOTIFIED:
        snprintf(kind, TIMELINE_KIND_MAX, "notified");
        if (b->notified->delivered)
            line_printf(&l, "notified %s (%s) on attempt %u",
                        b->notified->channel, b->notified->rules,
                        b->notified->attempts);
        else
            line_printf(&l, "notification to %s (%s) failed after %u attempts",
                        b->notified->channel, b->notified->rules,
                        b->notified->attempts);
        line_reason(&l, b->notified->detail);
        break;
    case IM__BODY__KIND_ESCALATED: {
        const Im__Escalated *p = b->escalated;
        snprintf(kind, TIMELINE_KIND_MAX, "paged");
        line_printf(&l, "page to %s at %s",
                    str(p->person)[0] ? p->person : "(nobody on call)", p->site);
        if (p->level > 0)
            line_printf(&l, " (level %u, run %u)", p->level, p->run);
        line_reason(&l, p->text);
        break;
    }
    default: ENSURE(!"kind checked by incident_body_check");
    }
    line_finish(&l);
}

/* ---- wire form ------------------------------------------------------ */

void
incident_pb_fill(struct incident_pb *h, const struct incident *inc)
{
    Im__Incident *m = &h->msg;

    ENSURE(inc->smes_count <= SMES_MAX);
    im__incident__init(m);
    im__owner__init(&h->owner);
    im__roles__init(&h->roles);

    m->id = (char *)inc->id;
    m->title = (char *)inc->title;
    m->description = (char *)inc->description;
    m->service = (char *)inc->service;
    m->category = (char *)inc->category;
    m->subcategory = (char *)inc->subcategory;
    m->impact = inc->impact;
    m->urgency = inc->urgency;
    m->priority = (uint32_t)inc->priority;
    m->major = inc->major ? 1 : 0;
    m->state = inc->state;
    m->origin_site = (char *)inc->origin_site;
    h->owner.site = (char *)inc->owner_site;
    h->owner.manager = (char *)inc->owner_manager;
    h->owner.token = inc->owner_token;
    h->owner.provisional = inc->owner_provisional ? 1 : 0;
    m->owner = &h->owner;
    m->assignee = (char *)inc->assignee;
    h->roles.manager = (char *)inc->manager;
    h->roles.commander = (char *)inc->commander;
    h->roles.comms = (char *)inc->comms;
    h->roles.ops = (char *)inc->ops;
    for (size_t i = 0; i < inc->smes_count; i++)
        h->smes[i] = (char *)inc->smes[i];
    h->roles.n_smes = inc->smes_count;
    h->roles.smes = h->smes;
    m->roles = &h->roles;
    m->opened_at_ms = inc->opened_at_ms;
    m->acknowledged_at_ms = inc->acknowledged_at_ms;
    m->resolved_at_ms = inc->resolved_at_ms;
    m->closed_at_ms = inc->closed_at_ms;
    m->resolution_code = (char *)inc->resolution_code;
    m->resolution_notes = (char *)inc->resolution_notes;
    m->updated_at_ms = inc->updated_at_ms;
    m->events_count = inc->events_count;
    m->reopen_count = inc->reopen_count;
    m->last_public_update = (char *)inc->last_public_update;
    m->last_public_update_at_ms = inc->last_public_update_at_ms;
    m->cancelled_at_ms = inc->cancelled_at_ms;
    m->declared_major = inc->declared_major ? 1 : 0;
    m->last_hlc = inc->last_hlc;
    m->last_origin = (char *)inc->last_origin;
    m->last_seq = inc->last_seq;
}

static int
fits(const char *s, size_t max)
{
    return strlen(str(s)) <= max;
}

/* Validated before anything is copied, so that *inc is written only on
 * success. */
static int
pb_valid(const Im__Incident *m)
{
    const Im__Owner *o = m->owner;
    const Im__Roles *r = m->roles;

    if (!fits(m->id, INCIDENT_ID_MAX) || !fits(m->title, TITLE_MAX) ||
        !fits(m->description, DESCRIPTION_MAX) ||
        !fits(m->service, SERVICE_MAX) || !fits(m->category, CATEGORY_MAX) ||
        !fits(m->subcategory, CATEGORY_MAX) ||
        !fits(m->origin_site, SITE_CODE_MAX) ||
        !fits(m->assignee, PERSON_MAX) ||
        !fits(m->resolution_code, RESOLUTION_CODE_MAX) ||
        !fits(m->resolution_notes, RESOLUTION_NOTES_MAX) ||
        !fits(m->last_public_update, PUBLIC_UPDATE_MAX) ||
        !fits(m->last_origin, SITE_CODE_MAX))
        return 0;
    if ((m->impact != IM__LEVEL__LEVEL_NONE && !level_valid((int)m->impact)) ||
        (m->urgency != IM__LEVEL__LEVEL_NONE &&
         !level_valid((int)m->urgency)) ||
        (m->state != IM__STATE__STATE_NONE && !state_valid((int)m->state)) ||
        m->priority > 5)
        return 0;
    if (o != NULL &&
        (!fits(o->site, SITE_CODE_MAX) || !fits(o->manager, PERSON_MAX)))
        return 0;
    if (r != NULL) {
        if (!fits(r->manager, PERSON_MAX) || !fits(r->commander, PERSON_MAX) ||
            !fits(r->comms, PERSON_MAX) || !fits(r->ops, PERSON_MAX) ||
            r->n_smes > SMES_MAX)
            return 0;
        for (size_t i = 0; i < r->n_smes; i++)
            if (str(r->smes[i])[0] == '\0' || !fits(r->smes[i], PERSON_MAX))
                return 0;
    }
    return 1;
}

int
incident_from_pb(struct incident *inc, const Im__Incident *m)
{
    const Im__Owner *o = m->owner;
    const Im__Roles *r = m->roles;

    if (!pb_valid(m))
        return IM_ECORRUPT;
    memset(inc, 0, sizeof *inc);
    SET_STR(inc->id, str(m->id));
    SET_STR(inc->title, str(m->title));
    SET_STR(inc->description, str(m->description));
    SET_STR(inc->service, str(m->service));
    SET_STR(inc->category, str(m->category));
    SET_STR(inc->subcategory, str(m->subcategory));
    inc->impact = m->impact;
    inc->urgency = m->urgency;
    inc->priority = (int)m->priority;
    inc->major = m->major ? 1 : 0;
    inc->declared_major = m->declared_major ? 1 : 0;
    inc->state = m->state;
    SET_STR(inc->origin_site, str(m->origin_site));
    if (o != NULL) {
        SET_STR(inc->owner_site, str(o->site));
        SET_STR(inc->owner_manager, str(o->manager));
        inc->owner_token = o->token;
        inc->owner_provisional = o->provisional ? 1 : 0;
    }
    SET_STR(inc->assignee, str(m->assignee));
    if (r != NULL) {
        SET_STR(inc->manager, str(r->manager));
        SET_STR(inc->commander, str(r->commander));
        SET_STR(inc->comms, str(r->comms));
        SET_STR(inc->ops, str(r->ops));
        for (size_t i = 0; i < r->n_smes; i++)
            SET_STR(inc->smes[i], r->smes[i]);
        inc->smes_count = r->n_smes;
    }
    inc->opened_at_ms = m->opened_at_ms;
    inc->acknowledged_at_ms = m->acknowledged_at_ms;
    inc->resolved_at_ms = m->resolved_at_ms;
    inc->closed_at_ms = m->closed_at_ms;
    inc->cancelled_at_ms = m->cancelled_at_ms;
    inc->updated_at_ms = m->updated_at_ms;
    SET_STR(inc->resolution_code, str(m->resolution_code));
    SET_STR(inc->resolution_notes, str(m->resolution_notes));
    SET_STR(inc->last_public_update, str(m->last_public_update));
    inc->last_public_update_at_ms = m->last_public_update_at_ms;
    inc->events_count = m->events_count;
    inc->reopen_count = m->reopen_count;
    inc->last_hlc = m->last_hlc;
    SET_STR(inc->last_origin, str(m->last_origin));
    inc->last_seq = m->last_seq;
    return 0;
}
