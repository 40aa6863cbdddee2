/* status: the status page (GET /status), for customers and staff.
 *
 * A clean, self-contained HTML page (inline CSS, no scripts, no external
 * resources): the open major incidents with their customer-facing public
 * updates and times, major incidents resolved in the last day, and the
 * status of each service. Only what is meant for customers is shown: the
 * title, service, state, priority, times and public updates; never
 * descriptions, notes, people, resolution notes or alerts. Everything
 * from the store is HTML-escaped.
 *
 * status_render() is pure (a view in, HTML out); status_page() reads the
 * view from the store. */
#ifndef IM_STATUS_H
#define IM_STATUS_H

#include <stddef.h>
#include <stdint.h>

#include "bounds.h"
#include "config.h"
#include "err.h"
#include "im.pb-c.h"
#include "store.h"

struct status_update {
    uint64_t at_ms;
    char text[PUBLIC_UPDATE_MAX + 1];
};

struct status_incident {
    char id[INCIDENT_ID_MAX + 1];
    char title[TITLE_MAX + 1];
    char service[SERVICE_MAX + 1];
    Im__State state;
    int priority;
    uint64_t opened_at_ms, resolved_at_ms, updated_at_ms;
    struct status_update updates[STATUS_UPDATES_MAX]; /* latest first */
    size_t updates_count;
};

/* Service health, worst first. */
enum status_level {
    STATUS_MAJOR_OUTAGE,   /* an open major incident */
    STATUS_PARTIAL_OUTAGE, /* an open P2 */
    STATUS_DEGRADED,       /* an open P3 */
    STATUS_OPERATIONAL
};

struct status_service {
    char name[SERVICE_MAX + 1];
    enum status_level level;
};

struct status_view {
    const char *title; /* [http] status_title */
    const char *site;
    uint64_t now_ms;
    struct status_incident *open; /* open major incidents, newest first */
    size_t open_count;
    struct status_incident *recent; /* resolved majors, last 24 h */
    size_t recent_count;
    struct status_service *services; /* by name */
    size_t services_count;
};

/* Renders the page into a malloc'd string (*html, *size). IM_ENOMEM. */
int status_render(const struct status_view *v, char **html, size_t *size);

/* Builds the view from the store at now_ms and renders it. */
int status_page(struct store *s, const struct config *cfg, uint64_t now_ms,
                char **html, size_t *size, struct im_err *e);

const char *status_level_name(enum status_level l);

#endif
