/* alertmanager: Prometheus Alertmanager's webhook notification (payload
 * version "4", POST /api/v1/alertmanager), parsed and validated.
 *
 * Pure: bytes in, a validated struct intake_req or a list of specific
 * errors out; the integration (chosen by the bearer token) is given.
 *
 *   version            required, "4"
 *   groupKey           required, <= ALERT_KEY_MAX bytes: the incident's key
 *   status             required, firing | resolved
 *   receiver, externalURL: optional strings
 *   groupLabels, commonLabels, commonAnnotations: optional objects of
 *                      strings
 *   truncatedAlerts    optional, a non-negative integer
 *   alerts             required, 1..AM_ALERTS_MAX objects:
 *     status           firing | resolved
 *     labels           object of strings (required)
 *     annotations      object of strings (optional)
 *     startsAt         RFC 3339 (required); endsAt optional ("0001-..." is
 *                      Go's zero time: none)
 *     generatorURL     optional
 *     fingerprint      required, 1..AM_FINGERPRINT_MAX, no control chars
 *
 * The incident's title is commonAnnotations.summary, else the alertname
 * (and instance); its severity is commonLabels.severity, else the highest
 * `severity` label of the alerts, else the integration's default. */
#ifndef IM_ALERTMANAGER_H
#define IM_ALERTMANAGER_H

#include <stddef.h>

#include "config.h"
#include "intake.h"

/* 0 and *req filled (free with intake_req_free), or IM_EINVAL /
 * IM_ETOOBIG with errs saying what is wrong. integ is borrowed. */
int am_parse(const struct cfg_integration *integ, const char *body, size_t size,
             struct intake_req *req, struct intake_errors *errs);

#endif
