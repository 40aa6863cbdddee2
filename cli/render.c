/* render: see render.h. */
#include "render.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bounds.h"
#include "clock.h"
#include "incident.h"
#include "incident_json.h"
#include "text.h"

/* protobuf-c decodes absent strings as "" but hand-built messages may
 * carry NULL: every read goes through this. */
static const char *
str(const char *s)
{
    return s != NULL ? s : "";
}

const char *
render_priority_name(uint32_t priority)
{
    static const char *const names[] = {"-", "P1", "P2", "P3", "P4", "P5"};
    return priority <= 5 ? names[priority] : "-";
}

void
render_time(uint64_t ms, const char *none, char out[RENDER_TIME_MAX])
{
    char t[CLOCK_RFC3339_MAX];

    if (ms == 0) {
        snprintf(out, RENDER_TIME_MAX, "%s", none);
        return;
    }
    clock_fmt_rfc3339(ms, t);
    snprintf(out, RENDER_TIME_MAX, "%s", t);
}

const char *
render_timeline_body(const Im__TimelineEntry *t)
{
    static const struct {
        const char *kind, *prefix;
    } prefixes[] = {{"note", "note: "}, {"update", "public update: "}};
    const char *text = str(t->text);

    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        size_t n = strlen(prefixes[i].prefix);
        if (strcmp(str(t->kind), prefixes[i].kind) == 0 &&
            strncmp(text, prefixes[i].prefix, n) == 0)
            return text + n;
    }
    return text;
}

/* ---- JSON ------------------------------------------------------------- */

/* Allocation failures are collected rather than checked at every call:
 * a builder that saw one returns NULL and nothing half-built is printed. */
struct jb {
    int failed;
};

static void
put(struct jb *b, json_t *obj, const char *key, json_t *value)
{
    if (value == NULL || obj == NULL ||
        json_object_set_new(obj, key, value) != 0)
        b->failed = 1;
}

static void
append(struct jb *b, json_t *arr, json_t *value)
{
    if (value == NULL || arr == NULL || json_array_append_new(arr, value) != 0)
        b->failed = 1;
}

/* Strings and times as lib/incident_json.c writes them: one copy. */
#define jstr incident_json_str
#define jtime incident_json_time

static json_t *
juint(uint64_t v)
{
    /* json_int_t is signed 64-bit; counts and tokens stay far below. */
    return json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v);
}

/* Drops j and returns NULL if any part of it failed. */
static json_t *
finish(struct jb *b, json_t *j)
{
    if (b->failed || j == NULL) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* One copy of the incident's JSON form, shared with the node's HTTP API:
 * lib/incident_json.c. */
json_t *
render_incident_json(const Im__Incident *inc, int summary)
{
    return incident_json(inc, summary);
}

json_t *
render_list_json(const Im__IncidentList *list)
{
    return incident_list_json(list);
}

static json_t *
service_stats_json(struct jb *b, const Im__ServiceStats *s, int named)
{
    json_t *j = json_object();

    if (named)
        put(b, j, "service", jstr(s->service));
    put(b, j, "total", juint(s->total));
    put(b, j, "open", juint(s->open));
    put(b, j, "major", juint(s->major));
    put(b, j, "mtta_ms", s->mtta_count ? juint(s->mtta_ms) : json_null());
    put(b, j, "mtta_count", juint(s->mtta_count));
    put(b, j, "mttr_ms", s->mttr_count ? juint(s->mttr_ms) : json_null());
    put(b, j, "mttr_count", juint(s->mttr_count));
    return j;
}

json_t *
render_stats_json(const Im__StatsReply *st)
{
    struct jb b = {0};
    json_t *j = json_object(), *states = json_object(), *prios = json_object(),
           *svcs = json_array();
    Im__ServiceStats none = IM__SERVICE_STATS__INIT;

    put(&b, j, "since", jtime(st->since_ms));
    put(&b, j, "total", juint(st->total));
    for (size_t i = 0; i < st->n_by_state; i++)
        put(&b, states, str(st->by_state[i]->key),
            juint(st->by_state[i]->count));
    put(&b, j, "by_state", states);
    for (size_t i = 0; i < st->n_by_priority; i++)
        put(&b, prios, str(st->by_priority[i]->key),
            juint(st->by_priority[i]->count));
    put(&b, j, "by_priority", prios);
    put(&b, j, "reopened", juint(st->reopened));
    put(&b, j, "overall",
        service_stats_json(&b, st->overall ? st->overall : &none, 0));
    for (size_t i = 0; i < st->n_by_service; i++)
        append(&b, svcs, service_stats_json(&b, st->by_service[i], 1));
    put(&b, j, "services", svcs);
    return finish(&b, j);
}

json_t *
render_ping_json(const Im__PingReply *p, int64_t skew_ms,
                 uint64_t round_trip_ms)
{
    struct jb b = {0};
    json_t *j = json_object();

    put(&b, j, "site", jstr(p->site));
    put(&b, j, "operator", jstr(p->operator_));
    put(&b, j, "role", jstr(p->role));
    put(&b, j, "node_version", jstr(p->node_version));
    put(&b, j, "node_time", jtime(p->now_ms));
    put(&b, j, "clock_skew_ms", json_integer(skew_ms));
    put(&b, j, "round_trip_ms", juint(round_trip_ms));
    return finish(&b, j);
}

static json_t *
counts_json(struct jb *b, Im__Count **c, size_t n)
{
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++)
        put(b, o, c[i]->key, juint(c[i]->count));
    return o;
}

json_t *
render_peers_json(const Im__PeersReply *r, uint64_t now_ms)
{
    struct jb b = {0};
    json_t *j = json_object(), *have = json_object(), *peers = json_array();

    put(&b, j, "site", jstr(r->site));
    for (size_t i = 0; i < r->n_have; i++)
        put(&b, have, r->have[i]->origin, juint(r->have[i]->seq));
    put(&b, j, "have", have);
    for (size_t i = 0; i < r->n_peers; i++) {
        const Im__PeerStatus *p = r->peers[i];
        json_t *o = json_object(), *origins = json_object();
        put(&b, o, "site", jstr(p->site));
        put(&b, o, "address", jstr(p->address));
        put(&b, o, "connected", json_boolean(p->connected));
        put(&b, o, "last_contact", jtime(p->last_contact_ms));
        put(&b, o, "last_contact_ago_ms",
            p->last_contact_ms && now_ms >= p->last_contact_ms
                ? juint(now_ms - p->last_contact_ms)
                : json_null());
        for (size_t k = 0; k < p->n_origins; k++) {
            json_t *x = json_object();
            put(&b, x, "behind", juint(p->origins[k]->behind));
            put(&b, x, "ahead", juint(p->origins[k]->ahead));
            put(&b, origins, p->origins[k]->origin, x);
        }
        put(&b, o, "origins", origins);
        put(&b, o, "lag_ms", juint(p->lag_ms));
        put(&b, o, "lag_p99_ms", juint(p->lag_p99_ms));
        put(&b, o, "bytes_in", juint(p->bytes_in));
        put(&b, o, "bytes_out", juint(p->bytes_out));
        put(&b, o, "events_in", juint(p->events_in));
        put(&b, o, "events_out", juint(p->events_out));
        put(&b, o, "sessions", juint(p->sessions));
        put(&b, o, "rejected", counts_json(&b, p->rejected, p->n_rejected));
        put(&b, o, "last_error", p->last_error && p->last_error[0]
                                     ? jstr(p->last_error)
                                     : json_null());
        if (json_array_append_new(peers, o) != 0)
            b.failed = 1;
    }
    put(&b, j, "peers", peers);
    put(&b, j, "rejected_unattributed",
        counts_json(&b, r->rejected, r->n_rejected));
    return finish(&b, j);
}

void
render_peers_text(FILE *out, const Im__PeersReply *r, uint64_t now_ms)
{
    fprintf(out, "site %s holds:", r->site && r->site[0] ? r->site : "-");
    for (size_t i = 0; i < r->n_have; i++)
        fprintf(out, " %s=%" PRIu64, r->have[i]->origin, r->have[i]->seq);
    fprintf(out, "%s\n", r->n_have ? "" : " nothing yet");
    if (r->n_peers == 0) {
        fprintf(out, "no peers: this is a single-site cluster\n");
        return;
    }
    fprintf(out, "%-8s %-5s %-10s %-22s %8s %8s %10s %10s  %s\n", "PEER",
            "LINK", "CONTACT", "BEHIND (theirs lack)", "LAG", "LAG-P99",
            "BYTES-IN", "BYTES-OUT", "REJECTED");
    for (size_t i = 0; i < r->n_peers; i++) {
        const Im__PeerStatus *p = r->peers[i];
        char contact[32], behind[256], rej[256];
        size_t n = 0;
        if (p->last_contact_ms == 0)
            snprintf(contact, sizeof contact, "never");
        else
            snprintf(contact, sizeof contact, "%.1fs ago",
                     now_ms > p->last_contact_ms
                         ? (double)(now_ms - p->last_contact_ms) / 1000.0
                         : 0.0);
        behind[0] = '\0';
        for (size_t k = 0; k < p->n_origins && n < sizeof behind; k++)
            if (p->origins[k]->behind || p->origins[k]->ahead)
                n += (size_t)snprintf(behind + n, sizeof behind - n, "%s%s:%" PRIu64 "%s",
                                      n ? " " : "", p->origins[k]->origin,
                                      p->origins[k]->behind,
                                      p->origins[k]->ahead ? "(+)" : "");
        if (behind[0] == '\0')
            snprintf(behind, sizeof behind, p->n_origins ? "in sync" : "unknown");
        n = 0;
        rej[0] = '\0';
        for (size_t k = 0; k < p->n_rejected && n < sizeof rej; k++)
            n += (size_t)snprintf(rej + n, sizeof rej - n, "%s%s=%" PRIu64,
                                  n ? " " : "", p->rejected[k]->key,
                                  p->rejected[k]->count);
        fprintf(out, "%-8s %-5s %-10s %-22s %6" PRIu64 "ms %6" PRIu64
                     "ms %10" PRIu64 " %10" PRIu64 "  %s\n",
                p->site, p->connected ? "up" : "down", contact, behind,
                p->lag_ms, p->lag_p99_ms, p->bytes_in, p->bytes_out,
                rej[0] ? rej : "-");
        if (p->last_error && p->last_error[0])
            fprintf(out, "         last error: %s\n", p->last_error);
    }
    if (r->n_rejected > 0) {
        fprintf(out, "refused before a peer was known:");
        for (size_t k = 0; k < r->n_rejected; k++)
            fprintf(out, " %s=%" PRIu64, r->rejected[k]->key,
                    r->rejected[k]->count);
        fprintf(out, "\n");
    }
}

int
render_json_print(FILE *out, json_t *j, struct im_err *e)
{
    int rv;

    if (j == NULL)
        return im_errf(e, IM_ENOMEM, "out of memory while building JSON");
    rv = json_dumpf(j, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (rv != 0 || fputc('\n', out) == EOF)
        return im_errf(e, IM_EIO, "write JSON to stdout failed");
    return 0;
}

/* ---- people ------------------------------------------------------------ */

/* Display columns of a UTF-8 string: one per code point. Wide (CJK) and
 * combining characters are rare in incident fields; tables stay aligned
 * for everything else. */
static size_t
columns(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

static void
pad(FILE *out, const char *s, size_t width)
{
    size_t used = columns(s);
    fputs(s, out);
    for (; used < width; used++)
        fputc(' ', out);
}

static const char *
or_dash(const char *s)
{
    return str(s)[0] != '\0' ? s : "-";
}

/* Multi-line text with every line after the first indented, so that a
 * note with paragraphs stays inside its block. */
static void
print_indented(FILE *out, const char *text, const char *indent)
{
    for (const char *p = str(text); *p; p++) {
        fputc(*p, out);
        if (*p == '\n' && p[1] != '\0')
            fputs(indent, out);
    }
}

static void
field_time(FILE *out, const char *label, uint64_t ms, uint64_t now_ms)
{
    char t[RENDER_TIME_MAX], ago[32];

    if (ms == 0)
        return;
    render_time(ms, "-", t);
    if (now_ms >= ms) {
        clock_fmt_duration(now_ms - ms, ago);
        fprintf(out, "%-14s%s (%s ago)\n", label, t, ago);
    } else {
        fprintf(out, "%-14s%s\n", label, t);
    }
}

static void
timeline_text(FILE *out, const Im__Incident *inc)
{
    size_t site_w = 4, actor_w = 5, kind_w = 4;

    for (size_t i = 0; i < inc->n_timeline; i++) {
        const Im__TimelineEntry *t = inc->timeline[i];
        if (columns(str(t->site)) > site_w)
            site_w = columns(str(t->site));
        if (columns(str(t->actor)) > actor_w)
            actor_w = columns(str(t->actor));
        if (columns(str(t->kind)) > kind_w)
            kind_w = columns(str(t->kind));
    }
    fprintf(out, "\nTimeline (%zu events):\n", inc->n_timeline);
    for (size_t i = 0; i < inc->n_timeline; i++) {
        const Im__TimelineEntry *t = inc->timeline[i];
        char at[RENDER_TIME_MAX];
        render_time(t->at_ms, "-", at);
        fprintf(out, "  %-24s  ", at);
        pad(out, str(t->site), site_w + 2);
        pad(out, str(t->actor), actor_w + 2);
        pad(out, str(t->kind), kind_w + 2);
        if (t->refused)
            fputs("REFUSED ", out);
        print_indented(out, render_timeline_body(t), "      ");
        if (t->refused)
            fprintf(out, " (refused: %s)", or_dash(t->refused_reason));
        fputc('\n', out);
    }
}

void
render_incident_text(FILE *out, const Im__Incident *inc, uint64_t now_ms)
{
    const Im__Roles *r = inc->roles;
    const Im__Owner *o = inc->owner;

    fprintf(out, "%s  %s  %s%s\n", str(inc->id),
            render_priority_name(inc->priority),
            incident_state_name(inc->state), inc->major ? "  MAJOR" : "");
    fprintf(out, "%-14s%s\n", "title:", str(inc->title));
    fprintf(out, "%-14s%s\n", "service:", or_dash(inc->service));
    if (str(inc->category)[0] != '\0')
        fprintf(out, "%-14s%s%s%s\n", "category:", inc->category,
                str(inc->subcategory)[0] ? "/" : "", str(inc->subcategory));
    fprintf(out, "%-14simpact %s, urgency %s, priority %s%s\n",
            "priority:", incident_level_name(inc->impact),
            incident_level_name(inc->urgency),
            render_priority_name(inc->priority),
            inc->declared_major ? " (declared major)" : "");
    fprintf(out, "%-14s%s\n", "state:", incident_state_name(inc->state));
    if (o != NULL && str(o->site)[0] != '\0')
        fprintf(out, "%-14s%s%s%s%s\n", "owner:", o->site,
                str(o->manager)[0] ? ", manager " : "", str(o->manager),
                o->provisional ? " (provisional)" : "");
    fprintf(out, "%-14s%s\n", "origin:", or_dash(inc->origin_site));
    fprintf(out, "%-14s%s\n", "assignee:", or_dash(inc->assignee));
    if (r != NULL) {
        fprintf(out, "%-14smanager %s, commander %s, comms %s, ops %s\n",
                "roles:", or_dash(r->manager), or_dash(r->commander),
                or_dash(r->comms), or_dash(r->ops));
        if (r->n_smes > 0) {
            fprintf(out, "%-14s", "smes:");
            for (size_t i = 0; i < r->n_smes; i++)
                fprintf(out, "%s%s", i ? ", " : "", str(r->smes[i]));
            fputc('\n', out);
        }
    }
    field_time(out, "opened:", inc->opened_at_ms, now_ms);
    field_time(out, "acknowledged:", inc->acknowledged_at_ms, now_ms);
    field_time(out, "resolved:", inc->resolved_at_ms, now_ms);
    field_time(out, "closed:", inc->closed_at_ms, now_ms);
    field_time(out, "cancelled:", inc->cancelled_at_ms, now_ms);
    field_time(out, "updated:", inc->updated_at_ms, now_ms);
    if (str(inc->resolution_code)[0] != '\0') {
        fprintf(out, "%-14s%s: ", "resolution:", inc->resolution_code);
        print_indented(out, str(inc->resolution_notes), "              ");
        fputc('\n', out);
    }
    if (str(inc->last_public_update)[0] != '\0') {
        fprintf(out, "%-14s", "public:");
        print_indented(out, inc->last_public_update, "              ");
        fputc('\n', out);
    }
    if (inc->reopen_count > 0)
        fprintf(out, "%-14s%" PRIu32 " time%s\n",
                "reopened:", inc->reopen_count,
                inc->reopen_count == 1 ? "" : "s");
    fprintf(out, "%-14s%" PRIu32 "\n", "events:", inc->events_count);
    if (str(inc->description)[0] != '\0') {
        fputs("\nDescription:\n  ", out);
        print_indented(out, inc->description, "  ");
        fputc('\n', out);
    }
    if (inc->n_timeline > 0)
        timeline_text(out, inc);
}

/* One list row's cells, formatted once so the widths can be measured. */
enum {
    COL_ID,
    COL_P,
    COL_STATE,
    COL_MAJOR,
    COL_SERVICE,
    COL_OWNER,
    COL_AGE,
    COL_TITLE,
    COLS
};

static void
row_cells(const Im__Incident *inc, uint64_t now_ms,
          char cells[COLS][PERSON_MAX + SITE_CODE_MAX + 8],
          const char *ptrs[COLS])
{
    const Im__Owner *o = inc->owner;
    size_t cell = PERSON_MAX + SITE_CODE_MAX + 8;

    snprintf(cells[COL_ID], cell, "%s", str(inc->id));
    snprintf(cells[COL_P], cell, "%s", render_priority_name(inc->priority));
    snprintf(cells[COL_STATE], cell, "%s", incident_state_name(inc->state));
    snprintf(cells[COL_MAJOR], cell, "%s", inc->major ? "yes" : "-");
    snprintf(cells[COL_SERVICE], cell, "%s", or_dash(inc->service));
    if (o != NULL && str(o->site)[0] != '\0')
        snprintf(cells[COL_OWNER], cell, "%s%s%s", o->site,
                 str(o->manager)[0] ? "/" : "", str(o->manager));
    else
        snprintf(cells[COL_OWNER], cell, "%s", or_dash(inc->origin_site));
    if (inc->opened_at_ms != 0 && now_ms >= inc->opened_at_ms)
        clock_fmt_duration(now_ms - inc->opened_at_ms, cells[COL_AGE]);
    else
        snprintf(cells[COL_AGE], cell, "-");
    cells[COL_TITLE][0] = '\0'; /* printed from the message: up to TITLE_MAX */
    for (int c = 0; c < COLS; c++)
        ptrs[c] = cells[c];
    ptrs[COL_TITLE] = str(inc->title);
}

void
render_list_text(FILE *out, const Im__IncidentList *list, uint64_t now_ms)
{
    static const char *const heads[COLS] = {
        "ID", "P", "STATE", "MAJOR", "SERVICE", "OWNER", "AGE", "TITLE"};
    char cells[COLS][PERSON_MAX + SITE_CODE_MAX + 8];
    const char *ptrs[COLS];
    size_t width[COLS];
    size_t n = list != NULL ? list->n_items : 0;

    if (n == 0) {
        fprintf(out, "no incidents match (%" PRIu32 " in all)\n",
                list != NULL ? list->matched : 0);
        return;
    }
    for (int c = 0; c < COLS; c++)
        width[c] = strlen(heads[c]);
    for (size_t i = 0; i < n; i++) {
        row_cells(list->items[i], now_ms, cells, ptrs);
        for (int c = 0; c < COLS; c++)
            if (columns(ptrs[c]) > width[c])
                width[c] = columns(ptrs[c]);
    }
    for (int c = 0; c < COLS; c++) {
        if (c == COLS - 1)
            fprintf(out, "%s\n", heads[c]);
        else
            pad(out, heads[c], width[c] + 2);
    }
    for (size_t i = 0; i < n; i++) {
        row_cells(list->items[i], now_ms, cells, ptrs);
        for (int c = 0; c < COLS - 1; c++)
            pad(out, ptrs[c], width[c] + 2);
        fprintf(out, "%s\n", ptrs[COLS - 1]);
    }
    if (list->matched > n)
        fprintf(out, "%zu of %" PRIu32 " shown (use --limit N or filters)\n", n,
                list->matched);
}

static void
mean(uint64_t ms, uint64_t count, char out[32])
{
    if (count == 0)
        snprintf(out, 32, "-");
    else
        clock_fmt_duration(ms, out);
}

void
render_stats_text(FILE *out, const Im__StatsReply *st)
{
    const Im__ServiceStats *all = st->overall;
    char since[RENDER_TIME_MAX], tta[32], ttr[32];
    size_t svc_w = strlen("SERVICE");

    render_time(st->since_ms, "", since);
    if (st->since_ms != 0)
        fprintf(out, "incidents opened since %s: %" PRIu64 "\n", since,
                st->total);
    else
        fprintf(out, "incidents: %" PRIu64 "\n", st->total);
    fputs("by state:    ", out);
    for (size_t i = 0; i < st->n_by_state; i++)
        fprintf(out, "%s%s %" PRIu64, i ? ", " : "", str(st->by_state[i]->key),
                st->by_state[i]->count);
    fputs("\nby priority:", out);
    for (size_t i = 0; i < st->n_by_priority; i++)
        fprintf(out, "%s%s %" PRIu64, i ? ", " : " ",
                str(st->by_priority[i]->key), st->by_priority[i]->count);
    fprintf(out, "\nreopened:    %" PRIu64 "\n", st->reopened);
    if (all != NULL) {
        mean(all->mtta_ms, all->mtta_count, tta);
        mean(all->mttr_ms, all->mttr_count, ttr);
        fprintf(out,
                "MTTA:        %s (%" PRIu64 " acknowledged)\n"
                "MTTR:        %s (%" PRIu64 " resolved)\n",
                tta, all->mtta_count, ttr, all->mttr_count);
    }
    if (st->n_by_service == 0)
        return;
    for (size_t i = 0; i < st->n_by_service; i++)
        if (columns(str(st->by_service[i]->service)) > svc_w)
            svc_w = columns(str(st->by_service[i]->service));
    fputc('\n', out);
    pad(out, "SERVICE", svc_w + 2);
    fprintf(out, "%6s %6s %6s  %-10s %s\n", "TOTAL", "OPEN", "MAJOR", "MTTA",
            "MTTR");
    for (size_t i = 0; i < st->n_by_service; i++) {
        const Im__ServiceStats *s = st->by_service[i];
        mean(s->mtta_ms, s->mtta_count, tta);
        mean(s->mttr_ms, s->mttr_count, ttr);
        pad(out, str(s->service), svc_w + 2);
        fprintf(out, "%6" PRIu64 " %6" PRIu64 " %6" PRIu64 "  %-10s %s\n",
                s->total, s->open, s->major, tta, ttr);
    }
}

void
render_ping_text(FILE *out, const Im__PingReply *p, int64_t skew_ms,
                 uint64_t round_trip_ms)
{
    char t[RENDER_TIME_MAX];
    uint64_t abs_skew = skew_ms < 0 ? (uint64_t)-skew_ms : (uint64_t)skew_ms;

    render_time(p->now_ms, "-", t);
    fprintf(out, "site:          %s\n", or_dash(p->site));
    fprintf(out, "operator:      %s\n", or_dash(p->operator_));
    fprintf(out, "role:          %s\n", or_dash(p->role));
    fprintf(out, "node version:  %s\n", or_dash(p->node_version));
    fprintf(out, "node time:     %s\n", t);
    fprintf(out, "clock skew:    %s%" PRIu64 " ms (%s)\n",
            skew_ms < 0 ? "-" : "+", abs_skew,
            skew_ms == 0  ? "in step"
            : skew_ms > 0 ? "node ahead of this host"
                          : "node behind this host");
    fprintf(out, "round trip:    %" PRIu64 " ms\n", round_trip_ms);
}

/* ---- coordinator replies ---- */

static json_t *
time_or_null(uint64_t ms)
{
    char t[RENDER_TIME_MAX];
    if (ms == 0)
        return json_null();
    render_time(ms, "", t);
    return json_string(t);
}

json_t *
render_sites_json(const Im__SitesReply *r)
{
    json_t *sites = json_array(), *j;
    for (size_t i = 0; sites != NULL && i < r->n_sites; i++) {
        const Im__SiteHealth *h = r->sites[i];
        json_array_append_new(
            sites,
            json_pack("{s:s, s:s, s:o, s:o, s:o, s:I, s:I, s:s}", "site", h->site,
                      "state", h->state, "since", time_or_null(h->since_ms),
                      "last_heartbeat", time_or_null(h->last_heartbeat_ms),
                      "lease_age_ms",
                      h->heard ? json_integer((json_int_t)h->lease_age_ms)
                               : json_null(),
                      "open", (json_int_t)h->open, "owned", (json_int_t)h->owned,
                      "reason", h->reason));
    }
    j = json_pack("{s:s, s:b, s:s, s:I, s:I, s:I, s:o}", "replica", r->replica,
                  "leader", (int)r->leader, "leader_id", r->leader_id, "term",
                  (json_int_t)r->term, "lease_ms", (json_int_t)r->lease_ms,
                  "revision", (json_int_t)r->revision, "sites",
                  sites ? sites : json_null());
    return j;
}

void
render_sites_text(FILE *out, const Im__SitesReply *r, uint64_t now_ms)
{
    fprintf(out, "%-8s %-8s %-12s %-14s %-10s %5s %6s  %s\n", "SITE", "STATE",
            "SINCE", "LAST-RECORDED", "LEASE-AGE", "OPEN", "OWNED", "REASON");
    for (size_t i = 0; i < r->n_sites; i++) {
        const Im__SiteHealth *h = r->sites[i];
        char since[32], last[32], age[32];
        if (h->since_ms == 0)
            snprintf(since, sizeof since, "-");
        else
            snprintf(since, sizeof since, "%.0fs ago",
                     now_ms > h->since_ms ? (double)(now_ms - h->since_ms) / 1000.0
                                          : 0.0);
        if (h->last_heartbeat_ms == 0)
            snprintf(last, sizeof last, "never");
        else
            snprintf(last, sizeof last, "%.1fs ago",
                     now_ms > h->last_heartbeat_ms
                         ? (double)(now_ms - h->last_heartbeat_ms) / 1000.0
                         : 0.0);
        if (!h->heard)
            snprintf(age, sizeof age, "never");
        else
            snprintf(age, sizeof age, "%.1fs", (double)h->lease_age_ms / 1000.0);
        fprintf(out, "%-8s %-8s %-12s %-14s %-10s %5u %6u  %s\n", h->site,
                h->state, since, last, age, h->open, h->owned, h->reason);
    }
    fprintf(out, "answered by coordinator %s (%s%s%s, term %" PRIu64
                 "); site lease %" PRIu64 " ms\n",
            r->replica, r->leader ? "leader" : "standby",
            r->leader ? "" : "; leader ",
            r->leader ? "" : (r->leader_id[0] ? r->leader_id : "unknown"),
            r->term, r->lease_ms);
}

json_t *
render_owner_json(const Im__OwnerReply *r)
{
    const Im__Assignment *a = r->assignment;
    json_t *explain = json_array();
    for (size_t i = 0; explain != NULL && i < r->n_explain; i++)
        json_array_append_new(explain, json_string(r->explain[i]));
    if (a == NULL)
        return json_pack("{s:n, s:o}", "incident", "explain", explain);
    return json_pack("{s:s, s:s, s:s, s:I, s:s, s:o, s:o}", "incident",
                     a->incident, "owner_site", a->owner_site, "manager",
                     a->manager, "token", (json_int_t)a->token, "reason",
                     a->reason, "assigned_at", time_or_null(a->assigned_at_ms),
                     "explain", explain ? explain : json_null());
}

void
render_owner_text(FILE *out, const Im__OwnerReply *r)
{
    const Im__Assignment *a = r->assignment;
    if (a != NULL)
        fprintf(out, "%s: owner %s, token %" PRIu64 ", manager %s\n", a->incident,
                a->owner_site, a->token, a->manager[0] ? a->manager : "-");
    for (size_t i = 0; i < r->n_explain; i++)
        fprintf(out, "  %s\n", r->explain[i]);
}

/* ---- schedules and on-call ---- */

static json_t *
warnings_json(const Im__ScheduleReply *r)
{
    json_t *w = json_array();
    for (size_t i = 0; w != NULL && i < r->n_warnings; i++)
        json_array_append_new(w, json_string(r->warnings[i]));
    return w ? w : json_null();
}

json_t *
render_schedule_apply_json(const Im__ScheduleReply *r)
{
    return json_pack("{s:b, s:I, s:o}", "stored", (int)r->stored, "revision",
                     (json_int_t)r->revision, "warnings", warnings_json(r));
}

void
render_schedule_apply_text(FILE *out, const Im__ScheduleReply *r)
{
    if (r->stored)
        fprintf(out, "schedule applied: revision %" PRIu64 "\n", r->revision);
    else if (r->revision != 0)
        fprintf(out,
                "schedule is valid (dry run: nothing stored; revision %" PRIu64
                " stays in force)\n",
                r->revision);
    else
        fprintf(out, "schedule is valid (dry run: nothing stored; no schedule "
                     "in force)\n");
    for (size_t i = 0; i < r->n_warnings; i++)
        fprintf(out, "warning: %s\n", r->warnings[i]);
}

json_t *
render_schedule_json(const Im__ScheduleReply *r)
{
    json_t *doc = json_loads(r->text, 0, NULL);
    return json_pack("{s:I, s:o}", "revision", (json_int_t)r->revision,
                     "schedule", doc ? doc : json_string(r->text));
}

int
render_schedule_text(FILE *out, const Im__ScheduleReply *r, struct im_err *e)
{
    json_error_t je;
    json_t *doc = json_loads(r->text, 0, &je);
    char *pretty;

    if (doc == NULL)
        return im_errf(e, IM_EPROTO, "the stored schedule is not JSON: %s",
                       je.text);
    pretty = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(doc);
    if (pretty == NULL)
        return im_errf(e, IM_ENOMEM, "out of memory");
    fprintf(out, "%s\n", pretty);
    fprintf(out, "# revision %" PRIu64 "\n", r->revision);
    free(pretty);
    return 0;
}

static json_t *
str_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? json_string(s) : json_null();
}

json_t *
render_oncall_json(const Im__OncallReply *r)
{
    json_t *entries = json_array();
    for (size_t i = 0; entries != NULL && i < r->n_entries; i++) {
        const Im__OncallEntry *x = r->entries[i];
        json_t *next =
            x->next_person[0]
                ? json_pack("{s:s, s:o, s:o}", "person", x->next_person,
                            "until", time_or_null(x->next_until_ms),
                            "until_local", str_or_null(x->next_until_text))
                : json_null();
        json_array_append_new(
            entries,
            json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "site",
                      str_or_null(x->site), "source", str_or_null(x->rotation),
                      "person", str_or_null(x->person), "from",
                      time_or_null(x->from_ms), "until",
                      time_or_null(x->until_ms), "until_local",
                      str_or_null(x->until_text), "next", next));
    }
    return json_pack("{s:o, s:o}", "at", time_or_null(r->at_ms), "entries",
                     entries ? entries : json_null());
}

void
render_oncall_text(FILE *out, const Im__OncallReply *r)
{
    char at[RENDER_TIME_MAX];
    render_time(r->at_ms, "-", at);
    fprintf(out, "on call at %s\n", at);
    fprintf(out, "%-8s %-9s %-16s %-40s %s\n", "SITE", "SOURCE", "ON-CALL",
            "UNTIL", "NEXT");
    for (size_t i = 0; i < r->n_entries; i++) {
        const Im__OncallEntry *x = r->entries[i];
        char next[PERSON_MAX + 80];
        if (x->next_person[0])
            snprintf(next, sizeof next, "%s until %s", x->next_person,
                     x->next_until_text[0] ? x->next_until_text : "-");
        else
            snprintf(next, sizeof next, "-");
        fprintf(out, "%-8s %-9s %-16s %-40s %s\n",
                x->site[0] ? x->site : "(global)",
                x->rotation[0] ? x->rotation : "-",
                x->person[0] ? x->person : "(nobody)",
                x->until_text[0] ? x->until_text : "-", next);
    }
}

static json_t *
strings_json(char **v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < n; i++)
        json_array_append_new(a, json_string(str(v[i])));
    return a ? a : json_null();
}

static json_t *
major_json(const Im__MajorRecord *m)
{
    json_t *j = json_pack(
        "{s:s, s:s, s:s, s:s, s:b, s:s*, s:o, s:I, s:I, s:I, s:I, s:s, s:s, "
        "s:s, s:o, s:o}",
        "incident", str(m->incident), "origin_site", str(m->origin_site),
        "owner_site", str(m->owner_site), "phase", str(m->phase),
        "acknowledged", (int)m->acknowledged, "acked_by",
        m->acknowledged ? str(m->acked_by) : NULL, "acked_at",
        time_or_null(m->acked_at_ms), "level", (json_int_t)m->level, "levels",
        (json_int_t)m->levels, "run", (json_int_t)m->run, "runs",
        (json_int_t)m->runs, "target", str(m->target), "paged_person",
        str(m->paged_person), "paged_site", str(m->paged_site),
        "next_deadline", time_or_null(m->next_deadline_ms), "started_at",
        time_or_null(m->started_at_ms));
    if (j == NULL)
        return NULL;
    json_object_set_new(j, "declared_at", time_or_null(m->declared_at_ms));
    json_object_set_new(j, "declared_by", json_string(str(m->declared_by)));
    json_object_set_new(j, "reason", json_string(str(m->reason)));
    json_object_set_new(j, "affects", strings_json(m->affects, m->n_affects));
    json_object_set_new(j, "global_manager",
                        json_string(str(m->global_manager)));
    json_object_set_new(j, "help_sites",
                        strings_json(m->help_sites, m->n_help_sites));
    json_object_set_new(
        j, "notices",
        json_pack("{s:I, s:I, s:I, s:I}", "issued",
                  (json_int_t)m->notices_issued, "recorded",
                  (json_int_t)m->notices_recorded, "pending",
                  (json_int_t)m->notices_pending, "expired",
                  (json_int_t)m->notices_expired));
    json_object_set_new(j, "resolved", json_boolean(m->resolved));
    json_object_set_new(j, "resolved_at", time_or_null(m->resolved_at_ms));
    json_object_set_new(j, "resolved_why",
                        m->resolved ? json_string(str(m->resolved_why))
                                    : json_null());
    return j;
}

json_t *
render_majors_json(const Im__MajorsReply *r)
{
    json_t *majors = json_array();
    for (size_t i = 0; majors != NULL && i < r->n_majors; i++)
        json_array_append_new(majors, major_json(r->majors[i]));
    return json_pack("{s:s, s:b, s:I, s:I, s:o}", "replica", str(r->replica),
                     "leader", (int)r->leader, "revision",
                     (json_int_t)r->revision, "omitted", (json_int_t)r->omitted,
                     "majors", majors ? majors : json_null());
}

/* "in 4m 10s", "12s ago", or "-" for none. */
static void
relative(uint64_t ms, uint64_t now_ms, char *out, size_t cap)
{
    char d[32];
    if (ms == 0) {
        snprintf(out, cap, "-");
        return;
    }
    clock_fmt_duration(ms > now_ms ? ms - now_ms : now_ms - ms, d);
    snprintf(out, cap, ms > now_ms ? "in %s" : "%s ago", d);
}

void
render_majors_text(FILE *out, const Im__MajorsReply *r, uint64_t now_ms)
{
    if (r->n_majors == 0) {
        fprintf(out, "no %smajor incidents\n", r->omitted ? "more " : "");
        return;
    }
    fprintf(out, "%-12s %-6s %-13s %-6s %-6s %-40s %-12s %s\n", "INCIDENT",
            "OWNER", "STATE", "LEVEL", "RUN", "PAGED", "DEADLINE", "DECLARED");
    for (size_t i = 0; i < r->n_majors; i++) {
        const Im__MajorRecord *m = r->majors[i];
        char level[24], run[24], paged[160], deadline[48], declared[48];
        char affects[SITES_MAX * (SITE_CODE_MAX + 2) + 1] = "";
        char t[RENDER_TIME_MAX];
        size_t len = 0;

        snprintf(level, sizeof level, "%u/%u", m->level, m->levels);
        snprintf(run, sizeof run, "%u/%u", m->run, m->runs);
        snprintf(paged, sizeof paged, "%s (%s)",
                 str(m->paged_person)[0] ? m->paged_person : "nobody on call",
                 str(m->target));
        relative(m->next_deadline_ms, now_ms, deadline, sizeof deadline);
        relative(m->declared_at_ms, now_ms, declared, sizeof declared);
        fprintf(out, "%-12s %-6s %-13s %-6s %-6s %-40s %-12s %s by %s\n",
                str(m->incident), str(m->owner_site), str(m->phase), level, run,
                paged, deadline, declared, str(m->declared_by));
        for (size_t k = 0; k < m->n_affects && len < sizeof affects - 12; k++)
            len += (size_t)snprintf(affects + len, sizeof affects - len, "%s%s",
                                    k ? "," : "", str(m->affects[k]));
        fprintf(out,
                "  affects %s; global manager %s; pages %u issued, %u "
                "recorded, %u pending, %u expired\n",
                affects, str(m->global_manager)[0] ? m->global_manager : "-",
                m->notices_issued, m->notices_recorded, m->notices_pending,
                m->notices_expired);
        if (str(m->reason)[0] != '\0')
            fprintf(out, "  reason: %s\n", m->reason);
        if (m->n_help_sites > 0) {
            fprintf(out, "  help asked of");
            for (size_t k = 0; k < m->n_help_sites; k++)
                fprintf(out, " %s", str(m->help_sites[k]));
            fprintf(out, "\n");
        }
        if (m->acknowledged) {
            render_time(m->acked_at_ms, "-", t);
            fprintf(out, "  acknowledged by %s at %s\n", str(m->acked_by), t);
        }
        if (m->resolved) {
            render_time(m->resolved_at_ms, "-", t);
            fprintf(out, "  resolved at %s: %s\n", t, str(m->resolved_why));
        }
    }
    if (r->omitted > 0)
        fprintf(out, "(%u more not shown)\n", r->omitted);
    fprintf(out, "answered by coordinator %s (%s), etcd revision %" PRIu64 "\n",
            str(r->replica), r->leader ? "leader" : "standby", r->revision);
}
