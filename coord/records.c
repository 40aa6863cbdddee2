/* records: see records.h. */
#include "records.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static const char *const state_names[] = {"unknown", "up", "down"};

const char *
records_site_state_name(enum site_state s)
{
    return (unsigned)s < 3 ? state_names[s] : "invalid";
}

void
records_key(char out[RECORDS_KEY_MAX + 1], const char *prefix, const char *kind,
            const char *name)
{
    snprintf(out, RECORDS_KEY_MAX + 1, "%s/%s/%s", prefix, kind, name);
}

static char *
dump(json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(j);
    return s;
}

/* A string field into out (cap bytes with the NUL); empty if absent. */
static int
get_str(json_t *j, const char *name, char *out, size_t cap, struct im_err *e)
{
    json_t *v = json_object_get(j, name);
    const char *s;
    if (v == NULL) {
        out[0] = '\0';
        return 0;
    }
    if (!json_is_string(v) || strlen(s = json_string_value(v)) >= cap)
        return im_errf(e, IM_ECORRUPT,
                       "field '%s' is not a string of at most "
                       "%zu bytes",
                       name, cap - 1);
    memcpy(out, s, strlen(s) + 1);
    return 0;
}

static int
get_u64(json_t *j, const char *name, uint64_t *out, struct im_err *e)
{
    json_t *v = json_object_get(j, name);
    if (v == NULL) {
        *out = 0;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return im_errf(e, IM_ECORRUPT,
                       "field '%s' is not a non-negative integer", name);
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static json_t *
load(const uint8_t *json, size_t size, struct im_err *e)
{
    json_error_t je;
    json_t *j = json_loadb((const char *)json, size, 0, &je);
    if (j == NULL || !json_is_object(j)) {
        json_decref(j);
        im_errf(e, IM_ECORRUPT, "not a JSON object: %s", j ? "" : je.text);
        return NULL;
    }
    return j;
}

char *
records_site_encode(const struct site_record *r)
{
    return dump(json_pack(
        "{s:s, s:I, s:I, s:I, s:I, s:s, s:I, s:s}", "state",
        records_site_state_name(r->state), "since_ms", (json_int_t)r->since_ms,
        "last_heartbeat_ms", (json_int_t)r->last_heartbeat_ms, "open",
        (json_int_t)r->open, "owned", (json_int_t)r->owned, "by", r->by, "term",
        (json_int_t)r->term, "reason", r->reason));
}

int
records_site_decode(const uint8_t *json, size_t size, struct site_record *out,
                    struct im_err *e)
{
    struct site_record r;
    char state[16];
    uint64_t open, owned, term;
    json_t *j = load(json, size, e);
    int rv;

    if (j == NULL)
        return IM_ECORRUPT;
    memset(&r, 0, sizeof r);
    if ((rv = get_str(j, "state", state, sizeof state, e)) != 0 ||
        (rv = get_u64(j, "since_ms", &r.since_ms, e)) != 0 ||
        (rv = get_u64(j, "last_heartbeat_ms", &r.last_heartbeat_ms, e)) != 0 ||
        (rv = get_u64(j, "open", &open, e)) != 0 ||
        (rv = get_u64(j, "owned", &owned, e)) != 0 ||
        (rv = get_str(j, "by", r.by, sizeof r.by, e)) != 0 ||
        (rv = get_u64(j, "term", &term, e)) != 0 ||
        (rv = get_str(j, "reason", r.reason, sizeof r.reason, e)) != 0)
        goto out;
    if (strcmp(state, "up") == 0)
        r.state = SITE_UP;
    else if (strcmp(state, "down") == 0)
        r.state = SITE_DOWN;
    else if (strcmp(state, "unknown") == 0)
        r.state = SITE_UNKNOWN;
    else {
        rv = im_errf(e, IM_ECORRUPT,
                     "field 'state' is '%s', not up, down or "
                     "unknown",
                     state);
        goto out;
    }
    if (open > UINT32_MAX || owned > UINT32_MAX || term > INT64_MAX) {
        rv = im_errf(e, IM_ECORRUPT, "a count or term out of range");
        goto out;
    }
    r.open = (uint32_t)open;
    r.owned = (uint32_t)owned;
    r.term = (int64_t)term;
    *out = r;
out:
    json_decref(j);
    return rv;
}

char *
records_assignment_encode(const struct assignment_record *r)
{
    return dump(json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:I}", "incident",
                          r->incident, "owner_site", r->owner_site, "manager",
                          r->manager, "reason", r->reason, "assigned_at_ms",
                          (json_int_t)r->assigned_at_ms, "by", r->by, "term",
                          (json_int_t)r->term));
}

int
records_assignment_decode(const uint8_t *json, size_t size,
                          struct assignment_record *out, struct im_err *e)
{
    struct assignment_record r;
    uint64_t term;
    json_t *j = load(json, size, e);
    int rv;

    if (j == NULL)
        return IM_ECORRUPT;
    memset(&r, 0, sizeof r);
    if ((rv = get_str(j, "incident", r.incident, sizeof r.incident, e)) != 0 ||
        (rv = get_str(j, "owner_site", r.owner_site, sizeof r.owner_site, e)) !=
            0 ||
        (rv = get_str(j, "manager", r.manager, sizeof r.manager, e)) != 0 ||
        (rv = get_str(j, "reason", r.reason, sizeof r.reason, e)) != 0 ||
        (rv = get_u64(j, "assigned_at_ms", &r.assigned_at_ms, e)) != 0 ||
        (rv = get_str(j, "by", r.by, sizeof r.by, e)) != 0 ||
        (rv = get_u64(j, "term", &term, e)) != 0)
        goto out;
    if (config_check_site_code(r.owner_site) != 0) {
        rv = im_errf(e, IM_ECORRUPT,
                     "field 'owner_site' is '%s', not a site code",
                     r.owner_site);
        goto out;
    }
    r.term = (int64_t)term;
    *out = r;
out:
    json_decref(j);
    return rv;
}

char *
records_open_encode(const struct open_record *r)
{
    return dump(json_pack("{s:s, s:s, s:I, s:I}", "incident", r->incident,
                          "service", r->service, "priority",
                          (json_int_t)r->priority, "since_ms",
                          (json_int_t)r->since_ms));
}

int
records_open_decode(const uint8_t *json, size_t size, struct open_record *out,
                    struct im_err *e)
{
    struct open_record r;
    uint64_t prio;
    json_t *j = load(json, size, e);
    int rv;

    if (j == NULL)
        return IM_ECORRUPT;
    memset(&r, 0, sizeof r);
    if ((rv = get_str(j, "incident", r.incident, sizeof r.incident, e)) != 0 ||
        (rv = get_str(j, "service", r.service, sizeof r.service, e)) != 0 ||
        (rv = get_u64(j, "priority", &prio, e)) != 0 ||
        (rv = get_u64(j, "since_ms", &r.since_ms, e)) != 0)
        goto out;
    if (prio > 5 || r.incident[0] == '\0') {
        rv = im_errf(e, IM_ECORRUPT, "field 'priority' or 'incident' invalid");
        goto out;
    }
    r.priority = (uint32_t)prio;
    *out = r;
out:
    json_decref(j);
    return rv;
}

char *
records_leader_encode(const char *id, const char *api)
{
    return dump(json_pack("{s:s, s:s}", "id", id, "api", api));
}

int
records_leader_decode(const uint8_t *json, size_t size,
                      char id[COORD_ID_MAX + 1], char api[URL_MAX + 1],
                      struct im_err *e)
{
    json_t *j = load(json, size, e);
    int rv;
    if (j == NULL)
        return IM_ECORRUPT;
    if ((rv = get_str(j, "id", id, COORD_ID_MAX + 1, e)) == 0)
        rv = get_str(j, "api", api, URL_MAX + 1, e);
    json_decref(j);
    return rv;
}

int
records_incident_origin(const char *id, char site[SITE_CODE_MAX + 1])
{
    const char *dash = strrchr(id, '-');
    char code[SITE_CODE_MAX + 2];
    size_t n;

    if (dash == NULL || dash[1] == '\0' ||
        strspn(dash + 1, "0123456789") != strlen(dash + 1))
        return IM_EINVAL;
    n = (size_t)(dash - id);
    if (n == 0 || n > SITE_CODE_MAX)
        return IM_EINVAL;
    memcpy(code, id, n);
    code[n] = '\0';
    if (config_check_site_code(code) != 0)
        return IM_EINVAL;
    memcpy(site, code, n + 1);
    return 0;
}

/* ---- P/majors/INCIDENT ---- */

static json_t *
major_page_json(const struct major_page *p)
{
    return json_pack("{s:I, s:s, s:s, s:I, s:I, s:s, s:I}", "n",
                     (json_int_t)p->n, "site", p->site, "person", p->person,
                     "level", (json_int_t)p->level, "run", (json_int_t)p->run,
                     "text", p->text, "issued_ms", (json_int_t)p->issued_ms);
}

char *
records_major_encode(const struct major_record *r)
{
    struct im_err e = {0};
    char *esc = NULL;
    json_t *j, *affects = json_array(), *pending = json_array(), *state;
    int bad = affects == NULL || pending == NULL;

    for (size_t i = 0; !bad && i < r->affects_count; i++)
        bad |= json_array_append_new(affects, json_string(r->affects[i]));
    for (size_t i = 0; !bad && i < r->pending_count; i++)
        bad |= json_array_append_new(pending, major_page_json(&r->pending[i]));
    if (bad || escalate_state_to_json(&r->esc, &esc, &e) != 0 ||
        (state = json_loads(esc, 0, NULL)) == NULL) {
        free(esc);
        json_decref(affects);
        json_decref(pending);
        return NULL;
    }
    free(esc);
    j = json_pack("{s:s, s:s, s:s, s:I, s:s, s:o, s:s, s:s, s:o, s:I, s:I, "
                  "s:s, s:s, s:s, s:I, s:s, s:I, s:I, s:I, s:o, s:s, s:I}",
                  "incident", r->incident, "origin", r->origin, "owner",
                  r->owner, "declared_at_ms", (json_int_t)r->declared_ms,
                  "declared_by", r->declared_by, "affects", affects, "reason",
                  r->reason, "global_manager", r->global_manager, "escalation",
                  state, "levels", (json_int_t)r->levels, "runs",
                  (json_int_t)r->runs, "target", r->target, "paged_site",
                  r->paged_site, "paged_person", r->paged_person,
                  "resolved_at_ms", (json_int_t)r->resolved_ms, "resolved_why",
                  r->resolved_why, "issued", (json_int_t)r->issued, "recorded",
                  (json_int_t)r->recorded, "expired", (json_int_t)r->expired,
                  "pending", pending, "by", r->by, "term", (json_int_t)r->term);
    return dump(j);
}

static int
get_site(json_t *j, const char *name, char out[SITE_CODE_MAX + 1],
         struct im_err *e)
{
    int rv = get_str(j, name, out, SITE_CODE_MAX + 1, e);
    if (rv == 0 && config_check_site_code(out) != 0)
        rv = im_errf(e, IM_ECORRUPT, "field '%s' is '%s', not a site code",
                     name, out);
    return rv;
}

static int
get_u32(json_t *j, const char *name, uint32_t *out, struct im_err *e)
{
    uint64_t v;
    int rv = get_u64(j, name, &v, e);
    if (rv == 0 && v > UINT32_MAX)
        rv = im_errf(e, IM_ECORRUPT, "field '%s' is out of range", name);
    if (rv == 0)
        *out = (uint32_t)v;
    return rv;
}

static int
major_page_decode(json_t *j, size_t i, uint32_t issued, uint32_t after,
                  struct major_page *p, struct im_err *e)
{
    int rv;
    if (!json_is_object(j))
        return im_errf(e, IM_ECORRUPT, "pending[%zu] is not an object", i);
    memset(p, 0, sizeof *p);
    if ((rv = get_u32(j, "n", &p->n, e)) != 0 ||
        (rv = get_site(j, "site", p->site, e)) != 0 ||
        (rv = get_str(j, "person", p->person, sizeof p->person, e)) != 0 ||
        (rv = get_u32(j, "level", &p->level, e)) != 0 ||
        (rv = get_u32(j, "run", &p->run, e)) != 0 ||
        (rv = get_str(j, "text", p->text, sizeof p->text, e)) != 0 ||
        (rv = get_u64(j, "issued_ms", &p->issued_ms, e)) != 0)
        return im_errwrap(e, "pending[%zu]", i);
    /* Ids count up from 1 and pending pages are kept oldest first. */
    if (p->n <= after || p->n > issued)
        return im_errf(e, IM_ECORRUPT,
                       "pending[%zu]: notice %u is not after %u and at "
                       "most 'issued' (%u)",
                       i, p->n, after, issued);
    return 0;
}

int
records_major_decode(const uint8_t *json, size_t size, struct major_record *out,
                     struct im_err *e)
{
    struct major_record *r;
    uint64_t term;
    json_t *j, *affects, *pending, *state;
    char *esc;
    int rv;

    if (size > MAJORS_RECORD_JSON_MAX)
        return im_errf(e, IM_ETOOBIG, "a major record of %zu bytes; at most %d",
                       size, MAJORS_RECORD_JSON_MAX);
    if ((j = load(json, size, e)) == NULL)
        return IM_ECORRUPT;
    if ((r = calloc(1, sizeof *r)) == NULL) {
        json_decref(j);
        return im_errf(e, IM_ENOMEM, "out of memory");
    }
    if ((rv = get_str(j, "incident", r->incident, sizeof r->incident, e)) !=
            0 ||
        (rv = get_site(j, "origin", r->origin, e)) != 0 ||
        (rv = get_site(j, "owner", r->owner, e)) != 0 ||
        (rv = get_u64(j, "declared_at_ms", &r->declared_ms, e)) != 0 ||
        (rv = get_str(j, "declared_by", r->declared_by, sizeof r->declared_by,
                      e)) != 0 ||
        (rv = get_str(j, "reason", r->reason, sizeof r->reason, e)) != 0 ||
        (rv = get_str(j, "global_manager", r->global_manager,
                      sizeof r->global_manager, e)) != 0 ||
        (rv = get_u32(j, "levels", &r->levels, e)) != 0 ||
        (rv = get_u32(j, "runs", &r->runs, e)) != 0 ||
        (rv = get_str(j, "target", r->target, sizeof r->target, e)) != 0 ||
        (rv = get_str(j, "paged_site", r->paged_site, sizeof r->paged_site,
                      e)) != 0 ||
        (rv = get_str(j, "paged_person", r->paged_person,
                      sizeof r->paged_person, e)) != 0 ||
        (rv = get_u64(j, "resolved_at_ms", &r->resolved_ms, e)) != 0 ||
        (rv = get_str(j, "resolved_why", r->resolved_why,
                      sizeof r->resolved_why, e)) != 0 ||
        (rv = get_u32(j, "issued", &r->issued, e)) != 0 ||
        (rv = get_u32(j, "recorded", &r->recorded, e)) != 0 ||
        (rv = get_u32(j, "expired", &r->expired, e)) != 0 ||
        (rv = get_str(j, "by", r->by, sizeof r->by, e)) != 0 ||
        (rv = get_u64(j, "term", &term, e)) != 0)
        goto out;
    char origin[SITE_CODE_MAX + 1];
    if (records_incident_origin(r->incident, origin) != 0 ||
        strcmp(origin, r->origin) != 0) {
        rv = im_errf(e, IM_ECORRUPT,
                     "field 'incident' is '%s', not an incident of origin %s",
                     r->incident, r->origin);
        goto out;
    }
    affects = json_object_get(j, "affects");
    if (!json_is_array(affects) || json_array_size(affects) > AFFECTS_MAX) {
        rv = im_errf(e, IM_ECORRUPT,
                     "field 'affects' is not a list of at most %d sites",
                     AFFECTS_MAX);
        goto out;
    }
    for (size_t i = 0; i < json_array_size(affects); i++) {
        json_t *a = json_array_get(affects, i);
        if (!json_is_string(a) ||
            config_check_site_code(json_string_value(a)) != 0) {
            rv = im_errf(e, IM_ECORRUPT, "affects[%zu] is not a site code", i);
            goto out;
        }
        snprintf(r->affects[r->affects_count++], SITE_CODE_MAX + 1, "%s",
                 json_string_value(a));
    }
    pending = json_object_get(j, "pending");
    if (!json_is_array(pending) ||
        json_array_size(pending) > MAJORS_PENDING_MAX) {
        rv = im_errf(e, IM_ECORRUPT,
                     "field 'pending' is not a list of at most %d pages",
                     MAJORS_PENDING_MAX);
        goto out;
    }
    for (size_t i = 0; i < json_array_size(pending); i++) {
        uint32_t after = i ? r->pending[i - 1].n : 0;
        if ((rv = major_page_decode(json_array_get(pending, i), i, r->issued,
                                    after, &r->pending[i], e)) != 0)
            goto out;
        r->pending_count++;
    }
    state = json_object_get(j, "escalation");
    if (!json_is_object(state) ||
        (esc = json_dumps(state, JSON_COMPACT)) == NULL) {
        rv = im_errf(e, IM_ECORRUPT, "field 'escalation' is not an object");
        goto out;
    }
    rv = escalate_state_from_json(esc, &r->esc, e);
    free(esc);
    if (rv != 0) {
        rv = IM_ECORRUPT;
        goto out;
    }
    if (term > INT64_MAX || r->recorded + r->expired > r->issued) {
        rv = im_errf(e, IM_ECORRUPT,
                     "term out of range, or more pages recorded and expired "
                     "than issued");
        goto out;
    }
    r->term = (int64_t)term;
    *out = *r;
out:
    free(r);
    json_decref(j);
    return rv;
}
