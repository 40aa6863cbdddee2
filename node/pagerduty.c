/* pagerduty: see pagerduty.h. */
#include "pagerduty.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "bounds.h"

static void
links_check(json_t *arr, const char *name, const char *required_member,
            struct intake_errors *errs)
{
    char path[64];
    size_t i;
    json_t *item;

    if (arr == NULL || json_is_null(arr))
        return;
    if (!json_is_array(arr)) {
        intake_error(errs, "'%s' must be an array", name);
        return;
    }
    if (json_array_size(arr) > ALERT_LINKS_MAX) {
        intake_error(errs, "'%s' has %zu entries; at most %d are accepted",
                     name, json_array_size(arr), ALERT_LINKS_MAX);
        return;
    }
    json_array_foreach(arr, i, item)
    {
        const char *v;
        if (!json_is_object(item)) {
            intake_error(errs, "'%s[%zu]' must be an object", name, i);
            continue;
        }
        snprintf(path, sizeof path, "%s[%zu].%s", name, i, required_member);
        intake_json_string(item, required_member, path, ALERT_URL_MAX, 1, 1, &v,
                           errs);
        if (strcmp(required_member, "src") == 0) {
            snprintf(path, sizeof path, "%s[%zu].href", name, i);
            intake_json_string(item, "href", path, ALERT_URL_MAX, 0, 1, &v,
                               errs);
            snprintf(path, sizeof path, "%s[%zu].alt", name, i);
            intake_json_string(item, "alt", path, ALERT_SUMMARY_MAX, 0, 0, &v,
                               errs);
        } else {
            snprintf(path, sizeof path, "%s[%zu].text", name, i);
            intake_json_string(item, "text", path, ALERT_SUMMARY_MAX, 0, 0, &v,
                               errs);
        }
    }
}

static const char *
member(json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* The description of a new incident: everything the event said, for the
 * people working it (custom_details last: it may be long). */
static char *
describe(json_t *root, json_t *payload, const char *severity)
{
    static const char *const fields[] = {"source", "component", "group",
                                         "class"};
    struct intake_text t = {.max = DESCRIPTION_MAX};
    json_t *arr, *item, *details;
    size_t i;

    intake_text_printf(&t, "%s\n\n", member(payload, "summary"));
    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++)
        if (member(payload, fields[f]) != NULL)
            intake_text_printf(&t, "%s: %s\n", fields[f],
                               member(payload, fields[f]));
    intake_text_printf(&t, "severity: %s\n", severity);
    if (member(payload, "timestamp") != NULL)
        intake_text_printf(&t, "timestamp: %s\n", member(payload, "timestamp"));
    if (member(root, "client") != NULL)
        intake_text_printf(
            &t, "client: %s%s%s\n", member(root, "client"),
            member(root, "client_url") ? " " : "",
            member(root, "client_url") ? member(root, "client_url") : "");
    arr = json_object_get(root, "links");
    if (json_is_array(arr) && json_array_size(arr) > 0) {
        intake_text_printf(&t, "links:\n");
        json_array_foreach(arr, i, item) intake_text_printf(
            &t, "- %s%s%s\n", member(item, "text") ? member(item, "text") : "",
            member(item, "text") ? ": " : "", member(item, "href"));
    }
    arr = json_object_get(root, "images");
    if (json_is_array(arr) && json_array_size(arr) > 0) {
        intake_text_printf(&t, "images:\n");
        json_array_foreach(arr, i, item) intake_text_printf(
            &t, "- %s%s%s\n", member(item, "alt") ? member(item, "alt") : "",
            member(item, "alt") ? ": " : "", member(item, "src"));
    }
    details = json_object_get(payload, "custom_details");
    if (details != NULL && !json_is_null(details)) {
        char *dump = json_dumps(details, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
                                             JSON_ENCODE_ANY);
        if (dump != NULL) {
            intake_text_printf(&t, "custom_details:\n%s\n", dump);
            free(dump);
        }
    }
    return intake_text_finish(&t);
}

static int
action_parse(const char *s, enum intake_action *out)
{
    if (strcmp(s, "trigger") == 0)
        *out = INTAKE_TRIGGER;
    else if (strcmp(s, "acknowledge") == 0)
        *out = INTAKE_ACKNOWLEDGE;
    else if (strcmp(s, "resolve") == 0)
        *out = INTAKE_RESOLVE;
    else
        return IM_EINVAL;
    return 0;
}

int
pd_parse(const struct config *cfg, const char *body, size_t size,
         struct intake_req *req, struct intake_errors *errs)
{
    const char *routing_key = NULL, *action = NULL, *dedup = NULL;
    const char *summary = NULL, *source = NULL, *severity = NULL, *ts = NULL,
               *v = NULL;
    json_t *root, *payload = NULL;
    int have_action = 0;

    memset(req, 0, sizeof *req);
    intake_errors_init(errs);
    if ((root = intake_json_load(body, size, errs)) == NULL)
        return errs->status == 413 ? IM_ETOOBIG : IM_EINVAL;

    if (intake_json_string(root, "routing_key", "routing_key",
                           INTEGRATION_KEY_MAX + 64, 1, 1, &routing_key,
                           errs) == 1) {
        req->integ =
            config_integration_by_key(cfg, INTEG_PAGERDUTY, routing_key);
        if (req->integ == NULL)
            intake_error(errs, "'routing_key' does not match any pagerduty "
                               "integration of this node");
    }
    if (intake_json_string(root, "event_action", "event_action", 32, 1, 1,
                           &action, errs) == 1) {
        if (action_parse(action, &req->action) != 0)
            intake_error(errs, "'event_action' must be trigger, acknowledge or "
                               "resolve");
        else
            have_action = 1;
    }
    if (intake_json_string(root, "dedup_key", "dedup_key", DEDUP_KEY_MAX, 0, 1,
                           &dedup, errs) == 1 &&
        dedup[0] == '\0')
        dedup = NULL; /* "" is no key */
    if (have_action && req->action != INTAKE_TRIGGER && dedup == NULL &&
        json_object_get(root, "dedup_key") == NULL)
        intake_error(errs, "'dedup_key' is required for %s", action);
    else if (have_action && req->action != INTAKE_TRIGGER && dedup == NULL &&
             json_is_string(json_object_get(root, "dedup_key")))
        intake_error(errs,
                     "'dedup_key' is empty; %s needs the key of the alert",
                     action);

    if (have_action && req->action == INTAKE_TRIGGER) {
        payload = json_object_get(root, "payload");
        if (payload == NULL || json_is_null(payload)) {
            intake_error(errs, "'payload' is missing: a trigger needs summary, "
                               "source and severity");
            payload = NULL;
        } else if (!json_is_object(payload)) {
            intake_error(errs, "'payload' must be an object");
            payload = NULL;
        }
    }
    if (payload != NULL) {
        intake_json_string(payload, "summary", "payload.summary",
                           ALERT_SUMMARY_MAX, 1, 0, &summary, errs);
        intake_json_string(payload, "source", "payload.source", ALERT_FIELD_MAX,
                           1, 0, &source, errs);
        if (intake_json_string(payload, "severity", "payload.severity", 32, 1,
                               1, &severity, errs) == 1 &&
            config_severity_parse(severity, &req->severity) != 0) {
            intake_error(errs, "'payload.severity' must be critical, error, "
                               "warning or info");
            severity = NULL;
        }
        if (intake_json_string(payload, "timestamp", "payload.timestamp", 64, 0,
                               1, &ts, errs) == 1 &&
            intake_parse_time(ts, &req->event_ms) != 0)
            intake_error(errs,
                         "'payload.timestamp' is not an ISO 8601 date-time "
                         "(e.g. 2015-07-17T08:42:58.315+0000)");
        intake_json_string(payload, "component", "payload.component",
                           ALERT_FIELD_MAX, 0, 0, &v, errs);
        intake_json_string(payload, "group", "payload.group", ALERT_FIELD_MAX,
                           0, 0, &v, errs);
        intake_json_string(payload, "class", "payload.class", ALERT_FIELD_MAX,
                           0, 0, &v, errs);
        links_check(json_object_get(root, "links"), "links", "href", errs);
        links_check(json_object_get(root, "images"), "images", "src", errs);
        intake_json_string(root, "client", "client", ALERT_FIELD_MAX, 0, 0, &v,
                           errs);
        intake_json_string(root, "client_url", "client_url", ALERT_URL_MAX, 0,
                           1, &v, errs);
    }
    if (errs->count > 0) {
        json_decref(root);
        memset(req, 0, sizeof *req);
        return IM_EINVAL;
    }

    if (dedup != NULL) {
        snprintf(req->key, sizeof req->key, "%s", dedup);
    } else {
        /* PagerDuty generates a key for a trigger without one and returns
         * it: 32 hex digits, unique without coordination. */
        uint8_t rnd[16];
        randombytes_buf(rnd, sizeof rnd);
        sodium_bin2hex(req->key, sizeof req->key, rnd, sizeof rnd);
        req->key_generated = 1;
    }
    if (req->action == INTAKE_TRIGGER) {
        intake_line_copy(req->title, sizeof req->title, summary,
                         strlen(summary));
        intake_text_copy(req->summary, sizeof req->summary, summary,
                         strlen(summary));
        intake_line_copy(req->source, sizeof req->source, source,
                         strlen(source));
        req->description = describe(root, payload, severity);
        if (req->description == NULL) {
            json_decref(root);
            memset(req, 0, sizeof *req);
            intake_error(errs, "out of memory");
            errs->status = 503;
            return IM_ENOMEM;
        }
    }
    json_decref(root);
    return 0;
}
