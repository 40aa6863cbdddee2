/* incident_json: the JSON form of an incident and of an incident list,
 * one copy for `imctl --json` and the node's HTTP API (docs/cli.md and
 * docs/http-api.md name the fields; fields are only ever added).
 *
 * Builders return a new reference (the caller owns it: json_decref), or
 * NULL when jansson could not allocate; nothing half-built is returned.
 * Times are RFC 3339 UTC strings, or null when 0 (not yet). Strings that
 * are not valid UTF-8 (the node validates all text, so this is a defence)
 * have the offending bytes replaced by U+FFFD. */
#ifndef IM_INCIDENT_JSON_H
#define IM_INCIDENT_JSON_H

#include <jansson.h>
#include <stdint.h>

#include "im.pb-c.h"

/* An incident. `summary`: a list item, which carries no description. The
 * timeline is included when the message has one (get with timeline). */
json_t *incident_json(const Im__Incident *inc, int summary);

/* {"items": [...summaries...], "matched": N} */
json_t *incident_list_json(const Im__IncidentList *list);

/* A JSON string of s, invalid UTF-8 bytes replaced by U+FFFD. */
json_t *incident_json_str(const char *s);

/* RFC 3339 UTC, or null for 0. */
json_t *incident_json_time(uint64_t ms);

#endif
