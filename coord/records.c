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
