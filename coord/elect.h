/* elect: the owner election. Which site owns an incident, and which
 * incident manager there, from explicit inputs: the incident's origin and
 * service, each site's health, load, failover order and on-call manager,
 * the service -> site map and the global on-call manager.
 *
 * Pure and deterministic: the same inputs (in any array order) give the
 * same result and the same reason, byte for byte; nothing here reads a
 * clock, a file or the network. The rules, in order (docs/ownership.md
 * gives the reasons and examples):
 *
 *   1. service: if the incident's service is mapped to a site and that
 *      site is up, it owns;
 *   2. origin: otherwise, if the origin site is up, it owns;
 *   3. failover: otherwise the origin's failover order, tier by tier: the
 *      first tier with an up site wins, and among its up sites the lowest
 *      load, then the lowest site code;
 *   4. least loaded: otherwise (no order, or nobody in it is up) the up
 *      site with the lowest load, then the lowest site code.
 *
 * The manager is the owner site's on-call person; if it has nobody on call,
 * the global incident manager; if there is none either, "" (the reason says
 * so). */
#ifndef IM_COORD_ELECT_H
#define IM_COORD_ELECT_H

#include <stddef.h>
#include <stdint.h>

#include "bounds.h"
#include "err.h"
#include "tz.h"

/* Service -> site mappings: one per service a cluster runs. Bounds the
 * linear lookup and the schedule file. */
#define SERVICES_MAX 4096

/* A site's failover order: sites in order of preference, grouped in tiers.
 * Sites of one tier are equals, chosen between by load. tier[] is
 * non-decreasing from 0; a plain list has one site per tier. */
struct elect_failover {
    char sites[SITES_MAX][SITE_CODE_MAX + 1];
    uint8_t tier[SITES_MAX];
    size_t sites_count;
};

/* Someone on call: who, until when, and the zone to say "until" in. */
struct elect_oncall {
    char person[PERSON_MAX + 1]; /* "" = nobody */
    uint64_t until_ms;           /* end of their segment; 0 = unknown */
    const struct tz *tz;         /* borrowed; NULL = say it in UTC */
};

struct elect_site {
    char code[SITE_CODE_MAX + 1];
    int up;                 /* the liveness verdict (lease and grace applied) */
    uint64_t last_heard_ms; /* last heartbeat; 0 = never */
    uint64_t lease_ms;      /* for the reason text */
    uint32_t load;          /* open incidents the site owns */
    const struct elect_failover *failover; /* borrowed; NULL = none */
    struct elect_oncall oncall;            /* the site's on-call at now */
};

struct elect_service {
    char service[SERVICE_MAX + 1];
    char site[SITE_CODE_MAX + 1];
};

struct elect_inputs {
    const char *origin;             /* the incident's origin site */
    const char *service;            /* its service; NULL or "" = none */
    const struct elect_site *sites; /* every site of the cluster */
    size_t sites_count;
    const struct elect_service *services; /* the service -> site map */
    size_t services_count;
    struct elect_oncall global; /* the global incident manager at now */
};

enum elect_rule {
    ELECT_RULE_SERVICE,
    ELECT_RULE_ORIGIN,
    ELECT_RULE_FAILOVER,
    ELECT_RULE_LEAST_LOADED,
};

struct elect_result {
    char site[SITE_CODE_MAX + 1];
    char manager[PERSON_MAX + 1]; /* "" = nobody is on call */
    int manager_is_global;        /* manager came from the global rotation */
    enum elect_rule rule;
    char reason[REASON_MAX + 1]; /* one or more sentences, for people */
};

/* Elects the owner. IM_EINVAL (with a message) if the inputs are
 * inconsistent: an unknown origin or mapped site, a site twice, a failover
 * order naming an unknown site, a bad site code; IM_ETOOBIG past SITES_MAX
 * or SERVICES_MAX; IM_EUNREACH if no site is up (nobody can own; the
 * current owner stays). *out is written only on success. */
int elect_owner(const struct elect_inputs *in, uint64_t now_ms,
                struct elect_result *out, struct im_err *e);

/* "service", "origin", "failover", "least-loaded". */
const char *elect_rule_name(enum elect_rule rule);

#endif
