/* alertmanager: see alertmanager.h. */
#include "alertmanager.h"

#include <stdlib.h>
#include <string.h>

#include "bounds.h"

/* Alerts listed one by one in the description; the rest are counted. */
#define DESCRIBE_ALERTS_MAX 20

/* An object of string values (labels, annotations); 1 if valid or
 * absent (unless required). */
static int
labels_check(json_t *obj, const char *name, const char *path, int required,
             struct intake_errors *errs)
{
    json_t *m = json_object_get(obj, name), *v;
    const char *k;
    char where[128];

    if (m == NULL || json_is_null(m)) {
        if (required) {
            intake_error(errs, "'%s' is missing", path);
            return 0;
        }
        return 1;
    }
    if (!json_is_object(m)) {
        intake_error(errs, "'%s' must be an object of strings", path);
        return 0;
    }
    if (json_object_size(m) > AM_LABELS_MAX) {
        intake_error(errs, "'%s' has %zu entries; at most %d are accepted",
                     path, json_object_size(m), AM_LABELS_MAX);
        return 0;
    }
    json_object_foreach(m, k, v)
    {
        if (!json_is_string(v)) {
            snprintf(where, sizeof where, "%s.%s", path, k);
            intake_error(errs, "'%.200s' must be a string", where);
            return 0;
        }
    }
    return 1;
}

static const char *
label(json_t *obj, const char *map, const char *name)
{
    json_t *v = json_object_get(json_object_get(obj, map), name);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void
describe_map(struct intake_text *t, json_t *m, const char *sep)
{
    const char *k;
    json_t *v;
    int first = 1;

    json_object_foreach(m, k, v)
    {
        if (json_is_string(v))
            intake_text_printf(t, "%s%s=%s", first ? "" : sep, k,
                               json_string_value(v));
        first = 0;
    }
}

static char *
describe(json_t *root, const struct intake_req *req, size_t firing)
{
    struct intake_text t = {.max = DESCRIPTION_MAX};
    json_t *alerts = json_object_get(root, "alerts"), *a, *m;
    const char *s;
    size_t i;

    if ((s = label(root, "commonAnnotations", "description")) != NULL)
        intake_text_printf(&t, "%s\n\n", s);
    intake_text_printf(&t, "Alertmanager group %s", req->key);
    if (json_is_string(json_object_get(root, "receiver")))
        intake_text_printf(
            &t, " (receiver %s)",
            json_string_value(json_object_get(root, "receiver")));
    intake_text_printf(&t, ": %zu firing, %zu resolved\n", firing,
                       req->alerts_count - firing);
    if ((m = json_object_get(root, "commonLabels")) != NULL &&
        json_object_size(m) > 0) {
        intake_text_printf(&t, "labels: ");
        describe_map(&t, m, ", ");
        intake_text_printf(&t, "\n");
    }
    if ((m = json_object_get(root, "commonAnnotations")) != NULL &&
        json_object_size(m) > 0) {
        const char *k;
        json_t *v;
        json_object_foreach(m, k, v)
        {
            if (strcmp(k, "description") != 0 && json_is_string(v))
                intake_text_printf(&t, "%s: %s\n", k, json_string_value(v));
        }
    }
    if (json_is_string(json_object_get(root, "externalURL")))
        intake_text_printf(
            &t, "alertmanager: %s\n",
            json_string_value(json_object_get(root, "externalURL")));
    intake_text_printf(&t, "alerts:\n");
    json_array_foreach(alerts, i, a)
    {
        if (i == DESCRIBE_ALERTS_MAX) {
            intake_text_printf(&t, "... and %zu more\n",
                               json_array_size(alerts) - i);
            break;
        }
        intake_text_printf(&t, "- [%s] %s since %s: ",
                           json_string_value(json_object_get(a, "status")),
                           json_string_value(json_object_get(a, "fingerprint")),
                           json_string_value(json_object_get(a, "startsAt")));
        describe_map(&t, json_object_get(a, "labels"), ", ");
        if ((s = label(a, "annotations", "summary")) != NULL)
            intake_text_printf(&t, " (%s)", s);
        if (json_is_string(json_object_get(a, "generatorURL")))
            intake_text_printf(
                &t, " %s",
                json_string_value(json_object_get(a, "generatorURL")));
        intake_text_printf(&t, "\n");
    }
    return intake_text_finish(&t);
}

/* Go's zero time, which Alertmanager sends as the endsAt of a firing
 * alert. */
static int
zero_time(const char *s)
{
    return strncmp(s, "0001-01-01T00:00:00", 19) == 0;
}

static void
alert_parse(json_t *a, size_t i, struct intake_alert *out,
            enum alert_severity *worst, int *have_worst,
            struct intake_errors *errs)
{
    char path[64];
    const char *s;
    uint64_t ms;

    if (!json_is_object(a)) {
        intake_error(errs, "'alerts[%zu]' must be an object", i);
        return;
    }
    snprintf(path, sizeof path, "alerts[%zu].status", i);
    if (intake_json_string(a, "status", path, 16, 1, 1, &s, errs) == 1) {
        if (strcmp(s, "firing") == 0)
            out->firing = 1;
        else if (strcmp(s, "resolved") != 0)
            intake_error(errs, "'%s' must be firing or resolved", path);
    }
    snprintf(path, sizeof path, "alerts[%zu].fingerprint", i);
    if (intake_json_string(a, "fingerprint", path, AM_FINGERPRINT_MAX, 1, 1, &s,
                           errs) == 1)
        snprintf(out->fingerprint, sizeof out->fingerprint, "%s", s);
    snprintf(path, sizeof path, "alerts[%zu].startsAt", i);
    if (intake_json_string(a, "startsAt", path, 64, 1, 1, &s, errs) == 1 &&
        intake_parse_time(s, &out->starts_at_ms) != 0)
        intake_error(errs, "'%s' is not an RFC 3339 time", path);
    snprintf(path, sizeof path, "alerts[%zu].endsAt", i);
    if (intake_json_string(a, "endsAt", path, 64, 0, 1, &s, errs) == 1 &&
        !zero_time(s) && intake_parse_time(s, &ms) != 0)
        intake_error(errs, "'%s' is not an RFC 3339 time", path);
    snprintf(path, sizeof path, "alerts[%zu].generatorURL", i);
    intake_json_string(a, "generatorURL", path, ALERT_URL_MAX, 0, 1, &s, errs);
    snprintf(path, sizeof path, "alerts[%zu].labels", i);
    if (labels_check(a, "labels", path, 1, errs)) {
        enum alert_severity sev;
        s = label(a, "labels", "severity");
        if (s != NULL && config_severity_parse(s, &sev) == 0 &&
            (!*have_worst || sev < *worst)) {
            *worst = sev;
            *have_worst = 1;
        }
    }
    snprintf(path, sizeof path, "alerts[%zu].annotations", i);
    labels_check(a, "annotations", path, 0, errs);
}

int
am_parse(const struct cfg_integration *integ, const char *body, size_t size,
         struct intake_req *req, struct intake_errors *errs)
{
    const char *s, *group = NULL, *title;
    json_t *root, *alerts, *a, *v;
    enum alert_severity worst = SEV_INFO, sev;
    int have_worst = 0;
    size_t i, firing = 0;

    memset(req, 0, sizeof *req);
    intake_errors_init(errs);
    req->integ = integ;
    if ((root = intake_json_load(body, size, errs)) == NULL)
        return errs->status == 413 ? IM_ETOOBIG : IM_EINVAL;

    v = json_object_get(root, "version");
    if (v == NULL)
        intake_error(errs, "'version' is missing: this endpoint takes "
                           "Alertmanager's webhook payload version \"4\"");
    else if (!json_is_string(v) || strcmp(json_string_value(v), "4") != 0)
        intake_error(errs, "'version' must be \"4\" (Alertmanager's webhook "
                           "payload version)");
    intake_json_string(root, "groupKey", "groupKey", ALERT_KEY_MAX, 1, 1,
                       &group, errs);
    if (intake_json_string(root, "status", "status", 16, 1, 1, &s, errs) == 1 &&
        strcmp(s, "firing") != 0 && strcmp(s, "resolved") != 0)
        intake_error(errs, "'status' must be firing or resolved");
    intake_json_string(root, "receiver", "receiver", ALERT_FIELD_MAX, 0, 0, &s,
                       errs);
    intake_json_string(root, "externalURL", "externalURL", ALERT_URL_MAX, 0, 1,
                       &s, errs);
    labels_check(root, "groupLabels", "groupLabels", 0, errs);
    labels_check(root, "commonLabels", "commonLabels", 0, errs);
    labels_check(root, "commonAnnotations", "commonAnnotations", 0, errs);
    v = json_object_get(root, "truncatedAlerts");
    if (v != NULL && !json_is_null(v) &&
        (!json_is_integer(v) || json_integer_value(v) < 0))
        intake_error(errs, "'truncatedAlerts' must be a non-negative integer");

    alerts = json_object_get(root, "alerts");
    if (alerts == NULL || json_is_null(alerts))
        intake_error(errs, "'alerts' is missing");
    else if (!json_is_array(alerts))
        intake_error(errs, "'alerts' must be an array");
    else if (json_array_size(alerts) == 0)
        intake_error(errs, "'alerts' is empty");
    else if (json_array_size(alerts) > AM_ALERTS_MAX)
        intake_error(errs, "'alerts' has %zu entries; at most %d are accepted",
                     json_array_size(alerts), AM_ALERTS_MAX);
    else {
        req->alerts_count = json_array_size(alerts);
        req->alerts = calloc(req->alerts_count, sizeof *req->alerts);
        if (req->alerts == NULL) {
            json_decref(root);
            memset(req, 0, sizeof *req);
            intake_error(errs, "out of memory");
            errs->status = 503;
            return IM_ENOMEM;
        }
        json_array_foreach(alerts, i, a)
        {
            alert_parse(a, i, &req->alerts[i], &worst, &have_worst, errs);
            firing += req->alerts[i].firing;
        }
    }
    if (errs->count > 0) {
        json_decref(root);
        intake_req_free(req);
        memset(req, 0, sizeof *req);
        return IM_EINVAL;
    }

    snprintf(req->key, sizeof req->key, "%s", group);
    req->action = firing > 0 ? INTAKE_TRIGGER : INTAKE_RESOLVE;
    s = label(root, "commonLabels", "severity");
    if (s != NULL && config_severity_parse(s, &sev) == 0)
        req->severity = sev;
    else
        req->severity = have_worst ? worst : integ->default_severity;
    title = label(root, "commonAnnotations", "summary");
    if (title != NULL && !intake_blank(title, strlen(title))) {
        intake_line_copy(req->title, sizeof req->title, title, strlen(title));
    } else {
        char buf[TITLE_MAX + 1];
        const char *name = label(root, "commonLabels", "alertname");
        const char *where = label(root, "commonLabels", "instance");
        if (where == NULL)
            where = label(root, "commonLabels", "job");
        if (name != NULL && !intake_blank(name, strlen(name)))
            snprintf(buf, sizeof buf, "%s%s%s", name, where ? " on " : "",
                     where ? where : "");
        else
            snprintf(buf, sizeof buf, "Alertmanager group %s", group);
        intake_line_copy(req->title, sizeof req->title, buf, strlen(buf));
    }
    intake_text_copy(req->summary, sizeof req->summary, req->title,
                     strlen(req->title));
    s = label(root, "commonLabels", "instance");
    if (s == NULL)
        s = label(root, "commonLabels", "job");
    if (s != NULL)
        intake_line_copy(req->source, sizeof req->source, s, strlen(s));
    req->description = describe(root, req, firing);
    json_decref(root);
    if (req->description == NULL) {
        intake_req_free(req);
        memset(req, 0, sizeof *req);
        intake_error(errs, "out of memory");
        errs->status = 503;
        return IM_ENOMEM;
    }
    return 0;
}
