/* schedule: the schedule file, the coordinator's one input that people
 * write: on-call rotations per site and global, overrides, each site's
 * failover order, the service -> site map, and the escalation policy.
 * `imctl schedule apply FILE` sends it; the coordinator validates it with
 * schedule_parse and stores schedule_to_json's form in etcd. The format is
 * JSON, documented with a full example in docs/schedule.md:
 *
 *   {"version": 1,
 *    "global": {"rotation": {...}, "overrides": [...]},
 *    "sites": {"AMS": {"rotation": {...}, "overrides": [...],
 *                      "failover": ["LON", ["NYC", "SIN"]]}, ...},
 *    "services": {"payments": "AMS", ...},
 *    "escalation": {"levels": [{"target": "site_manager", "ack": "5m"},
 *                              ...], "repeat": 2}}
 *
 * Validation is strict: unknown keys, wrong types, duplicate keys, unknown
 * zones or sites, and every limit are errors, and every message begins
 * with the path of the offending value ("sites.AMS.rotation.people[2]:
 * empty name"). A document with any error yields no schedule at all.
 *
 * Parsing opens the zones the document names (the only files read, see
 * tz.h); everything else here is pure. A parsed schedule is immutable and
 * may be shared between threads. */
#ifndef IM_COORD_SCHEDULE_H
#define IM_COORD_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

#include "bounds.h"
#include "elect.h"
#include "err.h"
#include "escalate.h"
#include "oncall.h"

/* SCHEDULE_TEXT_MAX (lib/bounds.h, imctl checks it too) bounds one
 * document; checked before parsing. */

#define SCHEDULE_VERSION 1

/* A rotation (optional for a site) and its overrides. */
struct schedule_oncall {
    int has_rotation;
    struct oncall_rotation rotation;
    struct oncall_override *overrides; /* owned by the schedule */
    size_t overrides_count;
};

struct schedule_site {
    char code[SITE_CODE_MAX + 1];
    struct schedule_oncall oncall;
    struct elect_failover failover;
};

struct schedule {
    struct schedule_oncall global; /* has_rotation is always 1 */
    struct schedule_site *sites;   /* sorted by code */
    size_t sites_count;
    struct elect_service *services; /* sorted by service */
    size_t services_count;
    struct esc_policy escalation;
    struct tz *zones[SITES_MAX + 1]; /* owned; one per distinct zone */
    size_t zones_count;
};

/* Parses and validates the len bytes at text. On success *out is a new
 * schedule, which the caller frees with schedule_free. On error *out is
 * untouched and e says where and what: IM_EINVAL for a malformed or
 * inconsistent document, IM_ENOTFOUND for a zone the tz database does not
 * have, IM_ETOOBIG past a limit. */
int schedule_parse(const char *text, size_t len, struct schedule **out,
                   struct im_err *e);

/* The schedule as JSON that schedule_parse reads back into an equal
 * schedule: sites and services sorted, times in UTC, overrides in their
 * order (which breaks ties). Indented if pretty, else compact. *json_out
 * is malloc'd (the caller frees it), written only on success. */
int schedule_to_json(const struct schedule *s, int pretty, char **json_out,
                     struct im_err *e);

void schedule_free(struct schedule *s);

/* The site with that code, or NULL. */
const struct schedule_site *schedule_site(const struct schedule *s,
                                          const char *code);

/* Who is on call at a site at now (its rotation and overrides; no global
 * fallback): IM_ENOTFOUND if nobody, or the site is unknown. */
int schedule_site_oncall(const struct schedule *s, const char *code,
                         uint64_t now_ms, struct oncall_segment *out,
                         struct im_err *e);

/* The global incident manager at now. */
int schedule_global_oncall(const struct schedule *s, uint64_t now_ms,
                           struct oncall_segment *out, struct im_err *e);

/* The person an escalation notice means at now: a site's manager (or, if
 * the site has nobody on call, the global manager), a site's backup (the
 * global manager if the site has none), the global manager, or the named
 * person. IM_ENOTFOUND if even the global rotation has nobody. */
int schedule_resolve(const struct schedule *s, const struct esc_notice *n,
                     uint64_t now_ms, char person[PERSON_MAX + 1],
                     struct im_err *e);

/* Fills sites[0..*count) with every site of the schedule for
 * elect_owner: code, failover order (borrowed from s), and on-call at now
 * (person "" if nobody); *global with the global manager. The liveness
 * fields (up, last_heard_ms, lease_ms) and load are zero: the caller's.
 * cap must be at least s->sites_count (IM_ETOOBIG otherwise). */
int schedule_elect_sites(const struct schedule *s, uint64_t now_ms,
                         struct elect_site *sites, size_t cap, size_t *count,
                         struct elect_oncall *global, struct im_err *e);

#endif
