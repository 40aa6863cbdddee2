/* pagerduty: the PagerDuty Events API v2 intake format (POST /v2/enqueue),
 * parsed and validated.
 *
 * Pure: bytes in, a validated struct intake_req or a list of specific
 * errors out; no socket, no store (the fuzzer calls it as the node does).
 * The routing key selects a [integration NAME] of type pagerduty in cfg.
 *
 * Accepted (https://developer.pagerduty.com, Events API v2):
 *   routing_key   required, a configured pagerduty integration's key
 *   event_action  required: trigger | acknowledge | resolve
 *   dedup_key     <= 255 bytes, no control characters; required for
 *                 acknowledge and resolve; generated for a trigger without
 *   payload       trigger only, required: summary (<= 1024 bytes), source
 *                 (<= 255), severity (critical|error|warning|info)
 *                 required; timestamp (ISO 8601), component, group, class
 *                 (<= 255), custom_details (any JSON) optional
 *   links         [{href, text?}], images [{src, href?, alt?}], client,
 *                 client_url: optional, shown in the description
 * Unknown members are ignored, as PagerDuty does. */
#ifndef IM_PAGERDUTY_H
#define IM_PAGERDUTY_H

#include <stddef.h>

#include "config.h"
#include "intake.h"

/* 0 and *req filled (free with intake_req_free), or IM_EINVAL /
 * IM_ETOOBIG with errs saying what is wrong (req then holds nothing). */
int pd_parse(const struct config *cfg, const char *body, size_t size,
             struct intake_req *req, struct intake_errors *errs);

#endif
