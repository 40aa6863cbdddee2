/* status: see status.h. */
#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "incident.h"

const char *
status_level_name(enum status_level l)
{
    switch (l) {
    case STATUS_MAJOR_OUTAGE: return "Major outage";
    case STATUS_PARTIAL_OUTAGE: return "Partial outage";
    case STATUS_DEGRADED: return "Degraded performance";
    case STATUS_OPERATIONAL: return "Operational";
    }
    return "Unknown";
}

static const char *
level_class(enum status_level l)
{
    switch (l) {
    case STATUS_MAJOR_OUTAGE: return "major";
    case STATUS_PARTIAL_OUTAGE: return "partial";
    case STATUS_DEGRADED: return "degraded";
    case STATUS_OPERATIONAL: return "ok";
    }
    return "ok";
}

/* ---- HTML output ---- */

struct out {
    char *data;
    size_t size, cap;
    int failed;
};

static void
put(struct out *o, const char *s, size_t n)
{
    if (o->failed)
        return;
    if (o->size + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 16384;
        char *d;
        while (cap < o->size + n + 1)
            cap *= 2;
        if ((d = realloc(o->data, cap)) == NULL) {
            o->failed = 1;
            return;
        }
        o->data = d;
        o->cap = cap;
    }
    memcpy(o->data + o->size, s, n);
    o->size += n;
    o->data[o->size] = '\0';
}

static void
raw(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

/* Text from the store: every character that means something in HTML is
 * escaped, in element content and in attribute values alike. */
static void
esc(struct out *o, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': raw(o, "&amp;"); break;
        case '<': raw(o, "&lt;"); break;
        case '>': raw(o, "&gt;"); break;
        case '"': raw(o, "&quot;"); break;
        case '\'': raw(o, "&#39;"); break;
        case '\n': raw(o, "<br>"); break;
        default: put(o, s, 1);
        }
    }
}

static void fmt(struct out *o, const char *f, ...)
    __attribute__((format(printf, 2, 3)));

static void
fmt(struct out *o, const char *f, ...)
{
    char buf[256];
    va_list ap;
    int n;

    va_start(ap, f);
    n = vsnprintf(buf, sizeof buf, f, ap);
    va_end(ap);
    if (n > 0)
        put(o, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* "2026-11-23 10:15 UTC" */
static void
when(struct out *o, uint64_t ms)
{
    char t[CLOCK_RFC3339_MAX];

    clock_fmt_rfc3339(ms, t);
    fmt(o, "<time datetime=\"%s\">%.10s %.5s UTC</time>", t, t, t + 11);
}

static const char css[] =
    "body{margin:0;font-family:system-ui,-apple-system,'Segoe UI',Roboto,"
    "sans-serif;background:#f6f7f9;color:#1d2330;line-height:1.45}"
    "main{max-width:880px;margin:0 auto;padding:24px 16px 48px}"
    "h1{font-size:1.6rem;margin:8px 0 4px}h2{font-size:1.15rem;margin:28px 0 "
    "10px}"
    ".sub{color:#5b6475;font-size:.9rem}"
    ".banner{border-radius:10px;padding:16px 20px;margin:20px "
    "0;font-weight:600;"
    "color:#fff}.banner.ok{background:#1f9254}.banner.major{background:#c62828}"
    ".banner.partial{background:#e36209}.banner.degraded{background:#b08800}"
    ".card{background:#fff;border:1px solid #dde1e8;border-radius:10px;"
    "padding:16px 20px;margin:12px 0}"
    ".card h3{margin:0 0 4px;font-size:1.05rem}"
    ".meta{color:#5b6475;font-size:.85rem;margin-bottom:8px}"
    ".update{border-left:3px solid #dde1e8;padding:2px 0 2px 12px;margin:8px 0}"
    ".update time{display:block;color:#5b6475;font-size:.8rem}"
    ".none{color:#5b6475;font-style:italic}"
    "table{width:100%;border-collapse:collapse;background:#fff;border:1px "
    "solid "
    "#dde1e8;border-radius:10px}td{padding:10px 16px;border-top:1px solid "
    "#eef0f4}"
    "tr:first-child td{border-top:0}td.state{text-align:right;font-weight:600}"
    "td.ok{color:#1f9254}td.major{color:#c62828}td.partial{color:#e36209}"
    "td.degraded{color:#b08800}"
    ".pill{display:inline-block;border-radius:999px;padding:1px 10px;"
    "font-size:.75rem;font-weight:600;background:#eef0f4;color:#1d2330;"
    "margin-left:6px}.pill.resolved{background:#e3f4ea;color:#1f9254}"
    "footer{margin-top:32px;color:#8a93a3;font-size:.8rem}";

static void
incident_card(struct out *o, const struct status_incident *in)
{
    int resolved = !incident_state_is_open(in->state);

    raw(o, "<article class=\"card incident\"><h3>");
    esc(o, in->title);
    fmt(o, "<span class=\"pill%s\">%s</span>", resolved ? " resolved" : "",
        resolved                            ? "Resolved"
        : in->state == IM__STATE__STATE_NEW ? "Investigating"
                                            : "Identified, working on it");
    raw(o, "</h3><div class=\"meta\">");
    esc(o, in->service);
    fmt(o, " &middot; P%d &middot; ", in->priority);
    esc(o, in->id);
    raw(o, " &middot; since ");
    when(o, in->opened_at_ms);
    if (resolved && in->resolved_at_ms) {
        raw(o, " &middot; resolved ");
        when(o, in->resolved_at_ms);
    }
    raw(o, "</div>");
    if (in->updates_count == 0)
        raw(o, "<p class=\"none\">We are aware of this issue and are "
               "investigating. Updates will follow here.</p>");
    for (size_t i = 0; i < in->updates_count; i++) {
        raw(o, "<div class=\"update\">");
        when(o, in->updates[i].at_ms);
        esc(o, in->updates[i].text);
        raw(o, "</div>");
    }
    raw(o, "</article>");
}

int
status_render(const struct status_view *v, char **html, size_t *size)
{
    struct out o = {0};
    enum status_level worst = STATUS_OPERATIONAL;
    static const char *const banner[] = {
        "Major outage: we are working on it", "Partial outage",
        "Degraded performance", "All systems operational"};

    for (size_t i = 0; i < v->services_count; i++)
        if (v->services[i].level < worst)
            worst = v->services[i].level;
    if (v->open_count > 0 && worst == STATUS_OPERATIONAL)
        worst = STATUS_MAJOR_OUTAGE;

    raw(&o, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, "
            "initial-scale=1\"><title>");
    esc(&o, v->title);
    raw(&o, "</title><style>");
    raw(&o, css);
    raw(&o, "</style></head><body><main><header><h1>");
    esc(&o, v->title);
    raw(&o, "</h1><div class=\"sub\">Updated ");
    when(&o, v->now_ms);
    raw(&o, " &middot; site ");
    esc(&o, v->site);
    raw(&o, "</div></header>");
    fmt(&o, "<div class=\"banner %s\" id=\"overall\">%s</div>",
        level_class(worst), banner[worst]);

    raw(&o, "<section id=\"incidents\"><h2>Current incidents</h2>");
    if (v->open_count == 0)
        raw(&o, "<p class=\"none\">No major incidents right now.</p>");
    for (size_t i = 0; i < v->open_count; i++)
        incident_card(&o, &v->open[i]);
    raw(&o, "</section><section id=\"services\"><h2>Services</h2>");
    if (v->services_count == 0)
        raw(&o, "<p class=\"none\">No services reported yet.</p>");
    else {
        raw(&o, "<table>");
        for (size_t i = 0; i < v->services_count; i++) {
            raw(&o, "<tr><td class=\"service\">");
            esc(&o, v->services[i].name);
            fmt(&o, "</td><td class=\"state %s\">%s</td></tr>",
                level_class(v->services[i].level),
                status_level_name(v->services[i].level));
        }
        raw(&o, "</table>");
    }
    raw(&o, "</section>");
    if (v->recent_count > 0) {
        raw(&o, "<section id=\"resolved\"><h2>Resolved in the last 24 "
                "hours</h2>");
        for (size_t i = 0; i < v->recent_count; i++)
            incident_card(&o, &v->recent[i]);
        raw(&o, "</section>");
    }
    raw(&o, "<footer>Incident Mesh status page. Times are UTC.</footer>"
            "</main></body></html>\n");
    if (o.failed) {
        free(o.data);
        return IM_ENOMEM;
    }
    *html = o.data;
    *size = o.size;
    return 0;
}

/* ---- the view from the store ---- */

struct collect {
    struct status_view *v;
    uint64_t now_ms;
};

static struct status_service *
service_slot(struct status_view *v, const char *name)
{
    for (size_t i = 0; i < v->services_count; i++)
        if (strcmp(v->services[i].name, name) == 0)
            return &v->services[i];
    if (v->services_count == STATUS_SERVICES_MAX || name[0] == '\0')
        return NULL;
    snprintf(v->services[v->services_count].name, SERVICE_MAX + 1, "%s", name);
    v->services[v->services_count].level = STATUS_OPERATIONAL;
    return &v->services[v->services_count++];
}

static void
take(struct status_incident *out, const Im__Incident *inc)
{
    memset(out, 0, sizeof *out);
    snprintf(out->id, sizeof out->id, "%s", inc->id);
    snprintf(out->title, sizeof out->title, "%s", inc->title);
    snprintf(out->service, sizeof out->service, "%s", inc->service);
    out->state = inc->state;
    out->priority = (int)inc->priority;
    out->opened_at_ms = inc->opened_at_ms;
    out->resolved_at_ms = inc->resolved_at_ms;
    out->updated_at_ms = inc->updated_at_ms;
}

static int
visit(void *arg, const Im__Incident *inc)
{
    struct collect *c = arg;
    struct status_view *v = c->v;
    int open = incident_state_is_open(inc->state);
    struct status_service *svc;
    enum status_level l = STATUS_OPERATIONAL;

    if (open) {
        if (inc->major)
            l = STATUS_MAJOR_OUTAGE;
        else if (inc->priority == 2)
            l = STATUS_PARTIAL_OUTAGE;
        else if (inc->priority == 3)
            l = STATUS_DEGRADED;
    }
    /* Services with something open always have a row; others while the
     * table has room. */
    svc = service_slot(v, inc->service);
    if (svc != NULL && l < svc->level)
        svc->level = l;
    if (inc->major && open && v->open_count < STATUS_INCIDENTS_MAX)
        take(&v->open[v->open_count++], inc);
    else if (inc->major && !open && inc->resolved_at_ms != 0 &&
             inc->resolved_at_ms + STATUS_RECENT_MS >= c->now_ms &&
             v->recent_count < STATUS_INCIDENTS_MAX)
        take(&v->recent[v->recent_count++], inc);
    return 0;
}

/* The accepted public updates of an incident, latest first. */
static int
updates(struct store *s, MDB_txn *txn, struct status_incident *in,
        struct im_err *e)
{
    Im__Event **events = NULL;
    struct fold_outcome *outcomes;
    struct incident *folded;
    size_t n = 0;
    int rv;

    if ((rv = store_incident_events(txn, s, in->id, &events, &n, e)) != 0)
        return rv;
    outcomes = calloc(n, sizeof *outcomes);
    folded = malloc(sizeof *folded);
    if (outcomes == NULL || folded == NULL) {
        free(outcomes);
        free(folded);
        store_events_free(events, n);
        return im_errf(e, IM_ENOMEM, "out of memory");
    }
    /* Refused updates (a stale owner's) never reached customers. */
    incident_fold(folded, (const Im__Event **)events, n, outcomes);
    for (size_t i = n; i-- > 0 && in->updates_count < STATUS_UPDATES_MAX;) {
        const Im__Event *ev = outcomes[i].event;
        if (outcomes[i].code != 0 || ev->body == NULL ||
            ev->body->kind_case != IM__BODY__KIND_UPDATE)
            continue;
        in->updates[in->updates_count].at_ms = HLC_MS(ev->hlc);
        snprintf(in->updates[in->updates_count].text, PUBLIC_UPDATE_MAX + 1,
                 "%s", ev->body->update->text ? ev->body->update->text : "");
        in->updates_count++;
    }
    free(outcomes);
    free(folded);
    store_events_free(events, n);
    return 0;
}

static int
by_opened_desc(const void *a, const void *b)
{
    const struct status_incident *x = a, *y = b;
    return x->opened_at_ms < y->opened_at_ms   ? 1
           : x->opened_at_ms > y->opened_at_ms ? -1
                                               : 0;
}

static int
by_name(const void *a, const void *b)
{
    const struct status_service *x = a, *y = b;
    return strcmp(x->name, y->name);
}

int
status_page(struct store *s, const struct config *cfg, uint64_t now_ms,
            char **html, size_t *size, struct im_err *e)
{
    struct status_view v = {.title = cfg->http.status_title,
                            .site = cfg->node.site,
                            .now_ms = now_ms};
    struct collect c = {.v = &v, .now_ms = now_ms};
    MDB_txn *txn;
    int rv;

    v.open = calloc(STATUS_INCIDENTS_MAX, sizeof *v.open);
    v.recent = calloc(STATUS_INCIDENTS_MAX, sizeof *v.recent);
    v.services = calloc(STATUS_SERVICES_MAX, sizeof *v.services);
    if (v.open == NULL || v.recent == NULL || v.services == NULL) {
        rv = im_errf(e, IM_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < cfg->integrations_count; i++)
        if (cfg->integrations[i].type != INTEG_API)
            service_slot(&v, cfg->integrations[i].service);
    if ((rv = store_read_begin(s, &txn, e)) != 0)
        goto out;
    rv = store_scan(txn, s, visit, &c, e);
    for (size_t i = 0; rv == 0 && i < v.open_count; i++)
        rv = updates(s, txn, &v.open[i], e);
    for (size_t i = 0; rv == 0 && i < v.recent_count; i++)
        rv = updates(s, txn, &v.recent[i], e);
    store_read_end(txn);
    if (rv != 0)
        goto out;
    qsort(v.open, v.open_count, sizeof *v.open, by_opened_desc);
    qsort(v.recent, v.recent_count, sizeof *v.recent, by_opened_desc);
    qsort(v.services, v.services_count, sizeof *v.services, by_name);
    if ((rv = status_render(&v, html, size)) != 0)
        im_errf(e, rv, "out of memory rendering the status page");
out:
    free(v.open);
    free(v.recent);
    free(v.services);
    return rv;
}
