/* schedule: see schedule.h. The parser walks the document once with a
 * path string in hand, so that every message can say where; values are
 * checked as they are read, then the modules' own checks
 * (oncall_rotation_check, escalate_policy_check) run on the result. */
#include "schedule.h"

#include <ctype.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "text.h"

/* Paths in messages. A longer path (a huge unknown key) is cut short in
 * the message, never overflowed. */
#define PATH_TEXT_MAX 256

static int perr(struct im_err *e, int code, const char *path, const char *fmt,
                ...) __attribute__((format(printf, 4, 5)));

static int
perr(struct im_err *e, int code, const char *path, const char *fmt, ...)
{
    char msg[IM_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (path[0] == '\0')
        return im_errf(e, code, "%s", msg);
    return im_errf(e, code, "%s: %s", path, msg);
}

static void
sub(char out[PATH_TEXT_MAX], const char *path, const char *key)
{
    snprintf(out, PATH_TEXT_MAX, "%s%s%s", path, path[0] ? "." : "", key);
}

static void
idx(char out[PATH_TEXT_MAX], const char *path, size_t i)
{
    snprintf(out, PATH_TEXT_MAX, "%s[%zu]", path, i);
}

/* Refuses keys of o not in allowed (NULL-terminated). */
static int
only_keys(json_t *o, const char *path, const char *const *allowed,
          struct im_err *e)
{
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        size_t i = 0;
        while (allowed[i] != NULL && strcmp(allowed[i], key) != 0)
            i++;
        if (allowed[i] == NULL) {
            char p[PATH_TEXT_MAX];
            sub(p, path, key);
            return perr(e, IM_EINVAL, p, "unknown key");
        }
    }
    return 0;
}

static int
get_object(json_t *parent, const char *key, const char *path, int required,
           json_t **out, struct im_err *e)
{
    char p[PATH_TEXT_MAX];
    json_t *v = json_object_get(parent, key);
    sub(p, path, key);
    *out = NULL;
    if (v == NULL)
        return required ? perr(e, IM_EINVAL, p, "missing") : 0;
    if (!json_is_object(v))
        return perr(e, IM_EINVAL, p, "expected an object");
    *out = v;
    return 0;
}

static int
get_string(json_t *parent, const char *key, const char *path, const char **out,
           struct im_err *e)
{
    char p[PATH_TEXT_MAX];
    json_t *v = json_object_get(parent, key);
    sub(p, path, key);
    if (v == NULL)
        return perr(e, IM_EINVAL, p, "missing");
    if (!json_is_string(v))
        return perr(e, IM_EINVAL, p, "expected a string");
    *out = json_string_value(v);
    return 0;
}

/* Zones are opened once per distinct name and owned by the schedule. */
static int
zone(struct schedule *s, const char *name, const char *path,
     const struct tz **out, struct im_err *e)
{
    for (size_t i = 0; i < s->zones_count; i++)
        if (strcmp(tz_name(s->zones[i]), name) == 0) {
            *out = s->zones[i];
            return 0;
        }
    if (s->zones_count == sizeof s->zones / sizeof s->zones[0])
        return perr(e, IM_ETOOBIG, path, "more than %zu distinct zones",
                    sizeof s->zones / sizeof s->zones[0]);
    struct tz *tz;
    int rv = tz_open(name, &tz, e);
    if (rv != 0)
        return im_errwrap(e, "%s", path);
    s->zones[s->zones_count++] = tz;
    *out = tz;
    return 0;
}

static int
parse_days(const char *text, const char *path, uint32_t *out, struct im_err *e)
{
    uint64_t ms;
    const uint64_t day = 86400000u;
    if (clock_parse_duration(text, &ms) != 0 || ms == 0)
        return perr(e, IM_EINVAL, path, "'%s' is not a length like 1d or 1w",
                    text);
    if (ms % day != 0)
        return perr(e, IM_EINVAL, path,
                    "'%s' is not a whole number of days (use 1d, 2d, 1w...)",
                    text);
    if (ms / day > ROTATION_DAYS_MAX)
        return perr(e, IM_EINVAL, path, "'%s' is longer than %d days", text,
                    ROTATION_DAYS_MAX);
    *out = (uint32_t)(ms / day);
    return 0;
}

static int
two_digits(const char *p)
{
    if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]))
        return -1;
    return (p[0] - '0') * 10 + (p[1] - '0');
}

static int
parse_handoff(const char *text, const char *path, uint32_t *out,
              struct im_err *e)
{
    int h, m;
    if (strlen(text) != 5 || text[2] != ':' || (h = two_digits(text)) < 0 ||
        (m = two_digits(text + 3)) < 0 || h > 23 || m > 59)
        return perr(e, IM_EINVAL, path, "'%s' is not a time of day like 09:00",
                    text);
    *out = (uint32_t)(h * 3600 + m * 60);
    return 0;
}

static int
parse_date(const char *text, const char *path, struct oncall_date *out,
           struct im_err *e)
{
    int y1, y2, mo, d;
    if (strlen(text) != 10 || text[4] != '-' || text[7] != '-' ||
        (y1 = two_digits(text)) < 0 || (y2 = two_digits(text + 2)) < 0 ||
        (mo = two_digits(text + 5)) < 0 || (d = two_digits(text + 8)) < 0 ||
        !tz_date_valid(y1 * 100 + y2, mo, d))
        return perr(e, IM_EINVAL, path,
                    "'%s' is not a date like 2026-01-05 (%d to %d)", text,
                    TZ_YEAR_MIN, TZ_YEAR_MAX);
    *out = (struct oncall_date){y1 * 100 + y2, mo, d};
    return 0;
}

static int
parse_rotation(struct schedule *s, json_t *o, const char *path,
               struct oncall_rotation *rot, struct im_err *e)
{
    static const char *const keys[] = {"people", "length", "handoff",
                                       "zone",   "start",  NULL};
    char p[PATH_TEXT_MAX], pi[PATH_TEXT_MAX];
    const char *str;
    int rv;

    if ((rv = only_keys(o, path, keys, e)) != 0)
        return rv;
    memset(rot, 0, sizeof *rot);
    json_t *people = json_object_get(o, "people");
    sub(p, path, "people");
    if (people == NULL)
        return perr(e, IM_EINVAL, p, "missing");
    if (!json_is_array(people))
        return perr(e, IM_EINVAL, p, "expected a list of names");
    if (json_array_size(people) == 0)
        return perr(e, IM_EINVAL, p,
                    "empty list (a rotation needs at least "
                    "one person)");
    if (json_array_size(people) > ROTATION_PEOPLE_MAX)
        return perr(e, IM_ETOOBIG, p, "more than %d people",
                    ROTATION_PEOPLE_MAX);
    for (size_t i = 0; i < json_array_size(people); i++) {
        json_t *v = json_array_get(people, i);
        idx(pi, p, i);
        if (!json_is_string(v))
            return perr(e, IM_EINVAL, pi, "expected a name");
        if ((rv = oncall_check_person(json_string_value(v), pi, e)) != 0)
            return rv;
        memcpy(rot->people[i], json_string_value(v),
               strlen(json_string_value(v)) + 1);
    }
    rot->people_count = json_array_size(people);

    sub(p, path, "length");
    if ((rv = get_string(o, "length", path, &str, e)) != 0 ||
        (rv = parse_days(str, p, &rot->length_days, e)) != 0)
        return rv;
    sub(p, path, "handoff");
    if ((rv = get_string(o, "handoff", path, &str, e)) != 0 ||
        (rv = parse_handoff(str, p, &rot->handoff_s, e)) != 0)
        return rv;
    sub(p, path, "start");
    if ((rv = get_string(o, "start", path, &str, e)) != 0 ||
        (rv = parse_date(str, p, &rot->start, e)) != 0)
        return rv;
    sub(p, path, "zone");
    if ((rv = get_string(o, "zone", path, &str, e)) != 0 ||
        (rv = zone(s, str, p, &rot->tz, e)) != 0)
        return rv;
    return oncall_rotation_check(rot, path, e);
}

static int
parse_time(json_t *o, const char *key, const char *path, uint64_t *out,
           struct im_err *e)
{
    char p[PATH_TEXT_MAX];
    const char *str;
    int rv;
    if ((rv = get_string(o, key, path, &str, e)) != 0)
        return rv;
    sub(p, path, key);
    if (clock_parse_rfc3339(str, out) != 0 || *out == 0)
        return perr(e, IM_EINVAL, p,
                    "'%s' is not a time like 2026-12-24T09:00:00+01:00", str);
    return 0;
}

static int
parse_overrides(json_t *a, const char *path, struct schedule_oncall *oc,
                struct im_err *e)
{
    static const char *const keys[] = {"person", "from", "until", NULL};
    char pi[PATH_TEXT_MAX];
    const char *str;
    int rv;

    if (!json_is_array(a))
        return perr(e, IM_EINVAL, path, "expected a list");
    size_t n = json_array_size(a);
    if (n > OVERRIDES_MAX)
        return perr(e, IM_ETOOBIG, path, "more than %d overrides",
                    OVERRIDES_MAX);
    if (n == 0)
        return 0;
    oc->overrides = calloc(n, sizeof *oc->overrides);
    if (oc->overrides == NULL)
        return im_errf(e, IM_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(a, i);
        struct oncall_override *ov = &oc->overrides[i];
        idx(pi, path, i);
        if (!json_is_object(v))
            return perr(e, IM_EINVAL, pi, "expected an object");
        if ((rv = only_keys(v, pi, keys, e)) != 0)
            return rv;
        char pp[PATH_TEXT_MAX];
        sub(pp, pi, "person");
        if ((rv = get_string(v, "person", pi, &str, e)) != 0 ||
            (rv = oncall_check_person(str, pp, e)) != 0)
            return rv;
        memcpy(ov->person, str, strlen(str) + 1);
        if ((rv = parse_time(v, "from", pi, &ov->from_ms, e)) != 0 ||
            (rv = parse_time(v, "until", pi, &ov->until_ms, e)) != 0)
            return rv;
        oc->overrides_count = i + 1; /* freed by schedule_free from here */
        if ((rv = oncall_override_check(ov, pi, e)) != 0)
            return rv;
    }
    return 0;
}

/* {"rotation": {...}, "overrides": [...]} (plus "failover" for a site,
 * handled by the caller). */
static int
parse_oncall(struct schedule *s, json_t *o, const char *path,
             int rotation_required, struct schedule_oncall *oc,
             struct im_err *e)
{
    char p[PATH_TEXT_MAX];
    json_t *rot;
    int rv;
    if ((rv = get_object(o, "rotation", path, rotation_required, &rot, e)) != 0)
        return rv;
    if (rot != NULL) {
        sub(p, path, "rotation");
        if ((rv = parse_rotation(s, rot, p, &oc->rotation, e)) != 0)
            return rv;
        oc->has_rotation = 1;
    }
    json_t *ov = json_object_get(o, "overrides");
    if (ov != NULL) {
        sub(p, path, "overrides");
        if ((rv = parse_overrides(ov, p, oc, e)) != 0)
            return rv;
    }
    return 0;
}

static int
site_index(const struct schedule *s, const char *code)
{
    for (size_t i = 0; i < s->sites_count; i++)
        if (strcmp(s->sites[i].code, code) == 0)
            return (int)i;
    return -1;
}

static int
failover_add(const struct schedule *s, struct schedule_site *site, json_t *v,
             const char *path, uint8_t tier, struct im_err *e)
{
    struct elect_failover *f = &site->failover;
    if (!json_is_string(v))
        return perr(e, IM_EINVAL, path, "expected a site code");
    const char *code = json_string_value(v);
    if (site_index(s, code) < 0)
        return perr(e, IM_EINVAL, path, "unknown site '%s'", code);
    if (strcmp(code, site->code) == 0)
        return perr(e, IM_EINVAL, path, "%s cannot fail over to itself", code);
    for (size_t i = 0; i < f->sites_count; i++)
        if (strcmp(f->sites[i], code) == 0)
            return perr(e, IM_EINVAL, path, "%s appears twice", code);
    /* Each site appears once and is not the site itself. */
    if (f->sites_count >= SITES_MAX - 1)
        return perr(e, IM_ETOOBIG, path, "more than %d sites", SITES_MAX - 1);
    memcpy(f->sites[f->sites_count], code, strlen(code) + 1);
    f->tier[f->sites_count++] = tier;
    return 0;
}

static int
parse_failover(const struct schedule *s, json_t *a, const char *path,
               struct schedule_site *site, struct im_err *e)
{
    char pi[PATH_TEXT_MAX], pj[PATH_TEXT_MAX];
    int rv;
    if (!json_is_array(a))
        return perr(e, IM_EINVAL, path,
                    "expected a list of site codes or lists of site codes");
    if (json_array_size(a) >= SITES_MAX)
        return perr(e, IM_ETOOBIG, path, "more than %d entries", SITES_MAX - 1);
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *v = json_array_get(a, i);
        idx(pi, path, i);
        if (!json_is_array(v)) {
            if ((rv = failover_add(s, site, v, pi, (uint8_t)i, e)) != 0)
                return rv;
            continue;
        }
        if (json_array_size(v) == 0)
            return perr(e, IM_EINVAL, pi, "empty tier");
        for (size_t j = 0; j < json_array_size(v); j++) {
            idx(pj, pi, j);
            if ((rv = failover_add(s, site, json_array_get(v, j), pj,
                                   (uint8_t)i, e)) != 0)
                return rv;
        }
    }
    return 0;
}

static int
cmp_site(const void *a, const void *b)
{
    return strcmp(((const struct schedule_site *)a)->code,
                  ((const struct schedule_site *)b)->code);
}

static int
cmp_service(const void *a, const void *b)
{
    return strcmp(((const struct elect_service *)a)->service,
                  ((const struct elect_service *)b)->service);
}

static int
parse_sites(struct schedule *s, json_t *o, struct im_err *e)
{
    static const char *const keys[] = {"rotation", "overrides", "failover",
                                       NULL};
    char p[PATH_TEXT_MAX], pf[PATH_TEXT_MAX];
    const char *code;
    json_t *v;
    int rv;

    if (json_object_size(o) == 0)
        return perr(e, IM_EINVAL, "sites", "no sites");
    if (json_object_size(o) > SITES_MAX)
        return perr(e, IM_ETOOBIG, "sites", "more than %d sites", SITES_MAX);
    s->sites = calloc(json_object_size(o), sizeof *s->sites);
    if (s->sites == NULL)
        return im_errf(e, IM_ENOMEM, "out of memory");
    /* Codes first: failover orders refer to sites defined later. */
    json_object_foreach(o, code, v)
    {
        sub(p, "sites", code);
        if (config_check_site_code(code) != 0)
            return perr(e, IM_EINVAL, p,
                        "not a site code (%d to %d of A-Z and 0-9, starting "
                        "with a letter)",
                        SITE_CODE_MIN, SITE_CODE_MAX);
        if (!json_is_object(v))
            return perr(e, IM_EINVAL, p, "expected an object");
        memcpy(s->sites[s->sites_count++].code, code, strlen(code) + 1);
    }
    qsort(s->sites, s->sites_count, sizeof *s->sites, cmp_site);
    for (size_t i = 0; i < s->sites_count; i++) {
        struct schedule_site *site = &s->sites[i];
        v = json_object_get(o, site->code);
        sub(p, "sites", site->code);
        if ((rv = only_keys(v, p, keys, e)) != 0 ||
            (rv = parse_oncall(s, v, p, 0, &site->oncall, e)) != 0)
            return rv;
        json_t *f = json_object_get(v, "failover");
        sub(pf, p, "failover");
        if (f != NULL && (rv = parse_failover(s, f, pf, site, e)) != 0)
            return rv;
    }
    return 0;
}

static int
parse_services(struct schedule *s, json_t *o, struct im_err *e)
{
    char p[PATH_TEXT_MAX];
    const char *name;
    json_t *v;
    size_t n = json_object_size(o);

    if (n > SERVICES_MAX)
        return perr(e, IM_ETOOBIG, "services", "more than %d services",
                    SERVICES_MAX);
    if (n == 0)
        return 0;
    s->services = calloc(n, sizeof *s->services);
    if (s->services == NULL)
        return im_errf(e, IM_ENOMEM, "out of memory");
    json_object_foreach(o, name, v)
    {
        struct im_err te;
        sub(p, "services", name);
        if (text_check(name, SERVICE_MAX, TEXT_LINE, 1, "service name", &te) !=
            0)
            return perr(e, te.code, p, "%s", im_errmsg(&te));
        if (!json_is_string(v))
            return perr(e, IM_EINVAL, p, "expected a site code");
        if (site_index(s, json_string_value(v)) < 0)
            return perr(e, IM_EINVAL, p, "unknown site '%s'",
                        json_string_value(v));
        struct elect_service *m = &s->services[s->services_count++];
        memcpy(m->service, name, strlen(name) + 1);
        memcpy(m->site, json_string_value(v), strlen(json_string_value(v)) + 1);
    }
    qsort(s->services, s->services_count, sizeof *s->services, cmp_service);
    return 0;
}

static const struct {
    const char *name;
    enum esc_target target;
} targets[] = {
    {"site_manager", ESC_SITE_MANAGER},
    {"site_backup", ESC_SITE_BACKUP},
    {"global_manager", ESC_GLOBAL_MANAGER},
    {"person", ESC_PERSON},
};

static int
parse_escalation(json_t *o, struct esc_policy *pol, struct im_err *e)
{
    static const char *const keys[] = {"levels", "repeat", NULL};
    static const char *const level_keys[] = {"target", "person", "ack", NULL};
    char pi[PATH_TEXT_MAX], pp[PATH_TEXT_MAX];
    const char *str;
    int rv;

    if ((rv = only_keys(o, "escalation", keys, e)) != 0)
        return rv;
    memset(pol, 0, sizeof *pol);
    json_t *levels = json_object_get(o, "levels");
    if (levels == NULL)
        return perr(e, IM_EINVAL, "escalation.levels", "missing");
    if (!json_is_array(levels))
        return perr(e, IM_EINVAL, "escalation.levels", "expected a list");
    if (json_array_size(levels) > ESC_LEVELS_MAX)
        return perr(e, IM_ETOOBIG, "escalation.levels", "more than %d levels",
                    ESC_LEVELS_MAX);
    for (size_t i = 0; i < json_array_size(levels); i++) {
        json_t *v = json_array_get(levels, i);
        struct esc_level *l = &pol->levels[i];
        idx(pi, "escalation.levels", i);
        if (!json_is_object(v))
            return perr(e, IM_EINVAL, pi, "expected an object");
        if ((rv = only_keys(v, pi, level_keys, e)) != 0 ||
            (rv = get_string(v, "target", pi, &str, e)) != 0)
            return rv;
        size_t t = 0;
        while (t < sizeof targets / sizeof targets[0] &&
               strcmp(targets[t].name, str) != 0)
            t++;
        sub(pp, pi, "target");
        if (t == sizeof targets / sizeof targets[0])
            return perr(e, IM_EINVAL, pp,
                        "'%s' is not site_manager, site_backup, "
                        "global_manager or person",
                        str);
        l->target = targets[t].target;
        json_t *person = json_object_get(v, "person");
        sub(pp, pi, "person");
        if (person != NULL) {
            if (!json_is_string(person))
                return perr(e, IM_EINVAL, pp, "expected a name");
            if (l->target != ESC_PERSON)
                return perr(e, IM_EINVAL, pp, "only for target \"person\"");
            if ((rv = oncall_check_person(json_string_value(person), pp, e)) !=
                0)
                return rv;
            memcpy(l->person, json_string_value(person),
                   strlen(json_string_value(person)) + 1);
        }
        sub(pp, pi, "ack");
        if ((rv = get_string(v, "ack", pi, &str, e)) != 0)
            return rv;
        if (clock_parse_duration(str, &l->ack_ms) != 0)
            return perr(e, IM_EINVAL, pp, "'%s' is not a duration like 5m",
                        str);
        pol->levels_count = i + 1;
    }
    json_t *repeat = json_object_get(o, "repeat");
    if (repeat != NULL) {
        if (!json_is_integer(repeat) || json_integer_value(repeat) < 0 ||
            json_integer_value(repeat) > ESC_REPEAT_MAX)
            return perr(e, IM_EINVAL, "escalation.repeat",
                        "expected a whole number from 0 to %d", ESC_REPEAT_MAX);
        pol->repeat = (uint32_t)json_integer_value(repeat);
    }
    return escalate_policy_check(pol, "escalation", e);
}

static int
parse_doc(struct schedule *s, json_t *root, struct im_err *e)
{
    static const char *const keys[] = {"version",  "global",     "sites",
                                       "services", "escalation", NULL};
    static const char *const oncall_keys[] = {"rotation", "overrides", NULL};
    json_t *o;
    int rv;

    if (!json_is_object(root))
        return im_errf(e, IM_EINVAL, "expected a JSON object");
    if ((rv = only_keys(root, "", keys, e)) != 0)
        return rv;
    json_t *version = json_object_get(root, "version");
    if (version == NULL)
        return perr(e, IM_EINVAL, "version", "missing");
    if (!json_is_integer(version) ||
        json_integer_value(version) != SCHEDULE_VERSION)
        return perr(e, IM_EINVAL, "version", "expected %d", SCHEDULE_VERSION);
    /* Sites first: the services map refers to them. */
    if ((rv = get_object(root, "sites", "", 1, &o, e)) != 0 ||
        (rv = parse_sites(s, o, e)) != 0)
        return rv;
    if ((rv = get_object(root, "global", "", 1, &o, e)) != 0 ||
        (rv = only_keys(o, "global", oncall_keys, e)) != 0 ||
        (rv = parse_oncall(s, o, "global", 1, &s->global, e)) != 0)
        return rv;
    if ((rv = get_object(root, "services", "", 0, &o, e)) != 0 ||
        (o != NULL && (rv = parse_services(s, o, e)) != 0))
        return rv;
    if ((rv = get_object(root, "escalation", "", 1, &o, e)) != 0 ||
        (rv = parse_escalation(o, &s->escalation, e)) != 0)
        return rv;
    return 0;
}

int
schedule_parse(const char *text, size_t len, struct schedule **out,
               struct im_err *e)
{
    json_error_t je;
    int rv;

    if (len > SCHEDULE_TEXT_MAX)
        return im_errf(e, IM_ETOOBIG, "schedule longer than %d bytes",
                       SCHEDULE_TEXT_MAX);
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL)
        return im_errf(e, IM_EINVAL, "line %d column %d: %s", je.line,
                       je.column, je.text);
    struct schedule *s = calloc(1, sizeof *s);
    if (s == NULL) {
        json_decref(root);
        return im_errf(e, IM_ENOMEM, "out of memory");
    }
    rv = parse_doc(s, root, e);
    json_decref(root);
    if (rv != 0) {
        schedule_free(s);
        return rv;
    }
    *out = s;
    return 0;
}

void
schedule_free(struct schedule *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; s->sites != NULL && i < s->sites_count; i++)
        free(s->sites[i].oncall.overrides);
    free(s->sites);
    free(s->global.overrides);
    free(s->services);
    for (size_t i = 0; i < s->zones_count; i++)
        tz_close(s->zones[i]);
    free(s);
}

/* JSON output. Every json_* constructor may fail on memory; `bad` collects
 * the failures so that one check at the end covers them. */

static json_t *
rotation_json(const struct oncall_rotation *r, int *bad)
{
    char length[16], handoff[8], start[16];
    json_t *people = json_array();
    for (size_t i = 0; people != NULL && i < r->people_count; i++)
        *bad |= json_array_append_new(people, json_string(r->people[i]));
    if (r->length_days % 7 == 0)
        snprintf(length, sizeof length, "%uw", r->length_days / 7);
    else
        snprintf(length, sizeof length, "%ud", r->length_days);
    snprintf(handoff, sizeof handoff, "%02u:%02u", r->handoff_s / 3600,
             r->handoff_s % 3600 / 60);
    snprintf(start, sizeof start, "%04d-%02d-%02d", r->start.year,
             r->start.month, r->start.day);
    json_t *o =
        json_pack("{s:o,s:s,s:s,s:s,s:s}", "people", people, "length", length,
                  "handoff", handoff, "zone", tz_name(r->tz), "start", start);
    *bad |= o == NULL;
    return o;
}

static json_t *
oncall_json(const struct schedule_oncall *oc, json_t *o, int *bad)
{
    if (o == NULL) {
        *bad = 1;
        return NULL;
    }
    if (oc->has_rotation)
        *bad |= json_object_set_new(o, "rotation",
                                    rotation_json(&oc->rotation, bad));
    if (oc->overrides_count > 0) {
        json_t *a = json_array();
        for (size_t i = 0; a != NULL && i < oc->overrides_count; i++) {
            char from[CLOCK_RFC3339_MAX], until[CLOCK_RFC3339_MAX];
            clock_fmt_rfc3339(oc->overrides[i].from_ms, from);
            clock_fmt_rfc3339(oc->overrides[i].until_ms, until);
            *bad |= json_array_append_new(
                a, json_pack("{s:s,s:s,s:s}", "person", oc->overrides[i].person,
                             "from", from, "until", until));
        }
        *bad |= json_object_set_new(o, "overrides", a);
    }
    return o;
}

static json_t *
failover_json(const struct elect_failover *f, int *bad)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < f->sites_count;) {
        size_t j = i;
        while (j < f->sites_count && f->tier[j] == f->tier[i])
            j++;
        if (j - i == 1) {
            *bad |= json_array_append_new(a, json_string(f->sites[i]));
        } else {
            json_t *tier = json_array();
            for (size_t k = i; tier != NULL && k < j; k++)
                *bad |= json_array_append_new(tier, json_string(f->sites[k]));
            *bad |= json_array_append_new(a, tier);
        }
        i = j;
    }
    *bad |= a == NULL;
    return a;
}

int
schedule_to_json(const struct schedule *s, int pretty, char **json_out,
                 struct im_err *e)
{
    int bad = 0;
    json_t *root = json_object();
    json_t *sites = json_object();
    json_t *services = json_object();
    json_t *levels = json_array();
    if (root == NULL || sites == NULL || services == NULL || levels == NULL) {
        json_decref(root);
        json_decref(sites);
        json_decref(services);
        json_decref(levels);
        return im_errf(e, IM_ENOMEM, "out of memory");
    }
    bad |= json_object_set_new(root, "version", json_integer(SCHEDULE_VERSION));
    bad |= json_object_set_new(root, "global",
                               oncall_json(&s->global, json_object(), &bad));
    for (size_t i = 0; i < s->sites_count; i++) {
        const struct schedule_site *site = &s->sites[i];
        json_t *o = oncall_json(&site->oncall, json_object(), &bad);
        if (o != NULL && site->failover.sites_count > 0)
            bad |= json_object_set_new(o, "failover",
                                       failover_json(&site->failover, &bad));
        bad |= json_object_set_new(sites, site->code, o);
    }
    bad |= json_object_set_new(root, "sites", sites);
    for (size_t i = 0; i < s->services_count; i++)
        bad |= json_object_set_new(services, s->services[i].service,
                                   json_string(s->services[i].site));
    bad |= json_object_set_new(root, "services", services);
    for (size_t i = 0; i < s->escalation.levels_count; i++) {
        const struct esc_level *l = &s->escalation.levels[i];
        char ack[32];
        /* clock_parse_duration reads "Nms"; whole minutes read better. */
        if (l->ack_ms % 60000 == 0)
            snprintf(ack, sizeof ack, "%llum",
                     (unsigned long long)(l->ack_ms / 60000));
        else if (l->ack_ms % 1000 == 0)
            snprintf(ack, sizeof ack, "%llus",
                     (unsigned long long)(l->ack_ms / 1000));
        else
            snprintf(ack, sizeof ack, "%llums", (unsigned long long)l->ack_ms);
        json_t *o = json_pack("{s:s,s:s}", "target",
                              escalate_target_name(l->target), "ack", ack);
        if (o != NULL && l->target == ESC_PERSON)
            bad |= json_object_set_new(o, "person", json_string(l->person));
        bad |= json_array_append_new(levels, o);
    }
    bad |= json_object_set_new(root, "escalation",
                               json_pack("{s:o,s:i}", "levels", levels,
                                         "repeat", (int)s->escalation.repeat));
    char *text =
        bad ? NULL : json_dumps(root, pretty ? JSON_INDENT(2) : JSON_COMPACT);
    json_decref(root);
    if (text == NULL)
        return im_errf(e, IM_ENOMEM, "out of memory");
    *json_out = text;
    return 0;
}

const struct schedule_site *
schedule_site(const struct schedule *s, const char *code)
{
    int i = site_index(s, code);
    return i < 0 ? NULL : &s->sites[i];
}

int
schedule_site_oncall(const struct schedule *s, const char *code,
                     uint64_t now_ms, struct oncall_segment *out,
                     struct im_err *e)
{
    const struct schedule_site *site = schedule_site(s, code);
    if (site == NULL)
        return im_errf(e, IM_ENOTFOUND, "no site %s in the schedule", code);
    const struct schedule_oncall *oc = &site->oncall;
    int rv = oncall_at(oc->has_rotation ? &oc->rotation : NULL, oc->overrides,
                       oc->overrides_count, now_ms, out, e);
    return rv == 0 ? 0 : im_errwrap(e, "on call at %s", code);
}

int
schedule_global_oncall(const struct schedule *s, uint64_t now_ms,
                       struct oncall_segment *out, struct im_err *e)
{
    const struct schedule_oncall *oc = &s->global;
    int rv = oncall_at(&oc->rotation, oc->overrides, oc->overrides_count,
                       now_ms, out, e);
    return rv == 0 ? 0 : im_errwrap(e, "global on call");
}

int
schedule_resolve(const struct schedule *s, const struct esc_notice *n,
                 uint64_t now_ms, char person[PERSON_MAX + 1], struct im_err *e)
{
    struct oncall_segment seg;
    const struct schedule_site *site;
    int rv;

    switch (n->target) {
    case ESC_PERSON: memcpy(person, n->person, sizeof n->person); return 0;
    case ESC_SITE_MANAGER:
        if (schedule_site_oncall(s, n->site, now_ms, &seg, e) == 0) {
            memcpy(person, seg.person, sizeof seg.person);
            return 0;
        }
        break;
    case ESC_SITE_BACKUP:
        site = schedule_site(s, n->site);
        if (site != NULL && site->oncall.has_rotation &&
            oncall_backup(&site->oncall.rotation, site->oncall.overrides,
                          site->oncall.overrides_count, now_ms, person, e) == 0)
            return 0;
        break;
    case ESC_GLOBAL_MANAGER: break;
    }
    if ((rv = schedule_global_oncall(s, now_ms, &seg, e)) != 0)
        return rv;
    memcpy(person, seg.person, sizeof seg.person);
    return 0;
}

int
schedule_elect_sites(const struct schedule *s, uint64_t now_ms,
                     struct elect_site *sites, size_t cap, size_t *count,
                     struct elect_oncall *global, struct im_err *e)
{
    struct oncall_segment seg;
    struct im_err ignored;

    if (cap < s->sites_count)
        return im_errf(e, IM_ETOOBIG,
                       "room for %zu sites, the schedule has "
                       "%zu",
                       cap, s->sites_count);
    memset(global, 0, sizeof *global);
    if (schedule_global_oncall(s, now_ms, &seg, &ignored) == 0) {
        memcpy(global->person, seg.person, sizeof seg.person);
        global->until_ms = seg.end_ms;
        global->tz = s->global.rotation.tz;
    }
    for (size_t i = 0; i < s->sites_count; i++) {
        const struct schedule_site *site = &s->sites[i];
        struct elect_site *out = &sites[i];
        memset(out, 0, sizeof *out);
        memcpy(out->code, site->code, sizeof out->code);
        out->failover = &site->failover;
        /* Nobody on call (no rotation yet, or not started) is a fact the
         * election reports, not an error. */
        if (schedule_site_oncall(s, site->code, now_ms, &seg, &ignored) == 0) {
            memcpy(out->oncall.person, seg.person, sizeof seg.person);
            out->oncall.until_ms = seg.end_ms;
            out->oncall.tz =
                site->oncall.has_rotation ? site->oncall.rotation.tz : NULL;
        }
    }
    *count = s->sites_count;
    return 0;
}
