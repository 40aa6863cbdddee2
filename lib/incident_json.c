/* incident_json: see incident_json.h. */
#include "incident_json.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "incident.h"
#include "text.h"

static const char *
str(const char *s)
{
    return s != NULL ? s : "";
}

/* Allocation failures are collected rather than checked at every call:
 * a builder that saw one returns NULL and nothing half-built is printed. */
struct jb {
    int failed;
};

static void
put(struct jb *b, json_t *obj, const char *key, json_t *value)
{
    if (value == NULL || obj == NULL ||
        json_object_set_new(obj, key, value) != 0)
        b->failed = 1;
}

static void
append(struct jb *b, json_t *arr, json_t *value)
{
    if (value == NULL || arr == NULL || json_array_append_new(arr, value) != 0)
        b->failed = 1;
}

/* Length of the UTF-8 sequence starting at s (at most n bytes available),
 * or 0 if it is not a valid one. */
static size_t
utf8_seq(const char *s, size_t n)
{
    unsigned char c = (unsigned char)s[0];
    size_t len = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;

    if (len > n || text_utf8_valid(s, len) != 0)
        return 0;
    return len;
}

json_t *
incident_json_str(const char *s)
{
    size_t n, used = 0;
    char *copy;
    json_t *j;

    s = str(s);
    n = strlen(s);
    if (text_utf8_valid(s, n) == 0)
        return json_stringn(s, n);
    /* Each invalid byte becomes U+FFFD (3 bytes). */
    copy = malloc(3 * n + 1);
    if (copy == NULL)
        return NULL;
    for (size_t i = 0; i < n;) {
        size_t len = utf8_seq(s + i, n - i);
        if (len == 0) {
            memcpy(copy + used, "\xef\xbf\xbd", 3);
            used += 3;
            i++;
        } else {
            memcpy(copy + used, s + i, len);
            used += len;
            i += len;
        }
    }
    j = json_stringn(copy, used);
    free(copy);
    return j;
}

#define jstr incident_json_str
#define jtime incident_json_time

/* A string field where "" means "not set": null. */
static json_t *
jstr_or_null(const char *s)
{
    return str(s)[0] != '\0' ? jstr(s) : json_null();
}

json_t *
incident_json_time(uint64_t ms)
{
    char t[CLOCK_RFC3339_MAX];

    if (ms == 0)
        return json_null();
    clock_fmt_rfc3339(ms, t);
    return json_string(t);
}

static json_t *
juint(uint64_t v)
{
    /* json_int_t is signed 64-bit; counts and tokens stay far below. */
    return json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v);
}

static const char *
priority_name(uint32_t priority)
{
    static const char *const names[] = {"-", "P1", "P2", "P3", "P4", "P5"};
    return priority <= 5 ? names[priority] : "-";
}

static json_t *
owner_json(struct jb *b, const Im__Owner *o)
{
    json_t *j = json_object();

    if (o == NULL)
        return json_null();
    put(b, j, "site", jstr_or_null(o->site));
    put(b, j, "manager", jstr_or_null(o->manager));
    put(b, j, "token", juint(o->token));
    put(b, j, "provisional", json_boolean(o->provisional));
    return j;
}

static json_t *
roles_json(struct jb *b, const Im__Roles *r)
{
    json_t *j = json_object(), *smes = json_array();

    put(b, j, "manager", jstr_or_null(r ? r->manager : NULL));
    put(b, j, "commander", jstr_or_null(r ? r->commander : NULL));
    put(b, j, "comms", jstr_or_null(r ? r->comms : NULL));
    put(b, j, "ops", jstr_or_null(r ? r->ops : NULL));
    for (size_t i = 0; r != NULL && i < r->n_smes; i++)
        append(b, smes, jstr(r->smes[i]));
    put(b, j, "smes", smes);
    return j;
}

static json_t *
timeline_json(struct jb *b, const Im__Incident *inc)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < inc->n_timeline; i++) {
        const Im__TimelineEntry *t = inc->timeline[i];
        json_t *j = json_object();
        put(b, j, "at", jtime(t->at_ms));
        put(b, j, "site", jstr(t->site));
        put(b, j, "actor", jstr(t->actor));
        put(b, j, "kind", jstr(t->kind));
        put(b, j, "text", jstr(t->text));
        put(b, j, "refused", json_boolean(t->refused));
        put(b, j, "refused_reason", jstr_or_null(t->refused_reason));
        put(b, j, "seq", juint(t->seq));
        append(b, arr, j);
    }
    return arr;
}

static json_t *
incident_obj(struct jb *b, const Im__Incident *inc, int summary)
{
    json_t *j = json_object(), *res;

    put(b, j, "id", jstr(inc->id));
    put(b, j, "title", jstr(inc->title));
    if (!summary)
        put(b, j, "description", jstr(inc->description));
    put(b, j, "service", jstr(inc->service));
    put(b, j, "category", jstr(inc->category));
    put(b, j, "subcategory", jstr(inc->subcategory));
    put(b, j, "impact", json_string(incident_level_name(inc->impact)));
    put(b, j, "urgency", json_string(incident_level_name(inc->urgency)));
    put(b, j, "priority",
        inc->priority >= 1 && inc->priority <= 5
            ? json_string(priority_name(inc->priority))
            : json_null());
    put(b, j, "major", json_boolean(inc->major));
    put(b, j, "declared_major", json_boolean(inc->declared_major));
    put(b, j, "state", json_string(incident_state_name(inc->state)));
    put(b, j, "origin_site", jstr(inc->origin_site));
    put(b, j, "owner", owner_json(b, inc->owner));
    put(b, j, "assignee", jstr_or_null(inc->assignee));
    put(b, j, "roles", roles_json(b, inc->roles));
    put(b, j, "opened_at", jtime(inc->opened_at_ms));
    put(b, j, "acknowledged_at", jtime(inc->acknowledged_at_ms));
    put(b, j, "resolved_at", jtime(inc->resolved_at_ms));
    put(b, j, "closed_at", jtime(inc->closed_at_ms));
    put(b, j, "cancelled_at", jtime(inc->cancelled_at_ms));
    put(b, j, "updated_at", jtime(inc->updated_at_ms));
    if (str(inc->resolution_code)[0] != '\0' ||
        str(inc->resolution_notes)[0] != '\0') {
        res = json_object();
        put(b, res, "code", jstr(inc->resolution_code));
        put(b, res, "notes", jstr(inc->resolution_notes));
    } else {
        res = json_null();
    }
    put(b, j, "resolution", res);
    put(b, j, "last_public_update", jstr_or_null(inc->last_public_update));
    put(b, j, "last_public_update_at", jtime(inc->last_public_update_at_ms));
    put(b, j, "reopen_count", juint(inc->reopen_count));
    put(b, j, "events_count", juint(inc->events_count));
    if (!summary && inc->n_timeline > 0)
        put(b, j, "timeline", timeline_json(b, inc));
    return j;
}

/* Drops j and returns NULL if any part of it failed. */
static json_t *
finish(struct jb *b, json_t *j)
{
    if (b->failed || j == NULL) {
        json_decref(j);
        return NULL;
    }
    return j;
}

json_t *
incident_json(const Im__Incident *inc, int summary)
{
    struct jb b = {0};
    return finish(&b, incident_obj(&b, inc, summary));
}

json_t *
incident_list_json(const Im__IncidentList *list)
{
    struct jb b = {0};
    json_t *j = json_object(), *items = json_array();

    for (size_t i = 0; list != NULL && i < list->n_items; i++)
        append(&b, items, incident_obj(&b, list->items[i], 1));
    put(&b, j, "items", items);
    put(&b, j, "matched", juint(list != NULL ? list->matched : 0));
    return finish(&b, j);
}
