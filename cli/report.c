/* report: see report.h. */
#include "report.h"

#include <inttypes.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "incident.h"
#include "render.h"

static const char *
str(const char *s)
{
    return s != NULL ? s : "";
}

/* Incident text into Markdown. '<' is backslash-escaped everywhere so that
 * text can never become raw HTML where the report is rendered (a wiki, a
 * ticket); in a table cell '|' would end the cell and a newline the row. */
static void
md(FILE *out, const char *s, int in_cell)
{
    for (s = str(s); *s; s++) {
        if (*s == '<')
            fputs("\\<", out);
        else if (in_cell && *s == '|')
            fputs("\\|", out);
        else if (in_cell && *s == '\n')
            fputs("<br>", out);
        else if (in_cell && *s == '\r')
            continue;
        else
            fputc(*s, out);
    }
}

/* "none" in italics for an empty field. */
static void
md_or_none(FILE *out, const char *s, const char *none)
{
    if (str(s)[0] == '\0')
        fprintf(out, "_%s_", none);
    else
        md(out, s, 0);
}

static void
line_time(FILE *out, const char *label, uint64_t ms)
{
    char t[RENDER_TIME_MAX];

    if (ms == 0)
        return;
    render_time(ms, "", t);
    fprintf(out, "- %s: %s\n", label, t);
}

static void
summary(FILE *out, const Im__Incident *inc)
{
    fputs("## Summary\n\n", out);
    if (str(inc->description)[0] != '\0') {
        md(out, inc->description, 0);
        fputs("\n\n", out);
    } else {
        fputs("_No description recorded._\n\n", out);
    }
    fprintf(out, "- State: %s", incident_state_name(inc->state));
    if (inc->reopen_count > 0)
        fprintf(out, " (reopened %" PRIu32 " time%s)", inc->reopen_count,
                inc->reopen_count == 1 ? "" : "s");
    fputc('\n', out);
    line_time(out, "Opened", inc->opened_at_ms);
    line_time(out, "Acknowledged", inc->acknowledged_at_ms);
    line_time(out, "Resolved", inc->resolved_at_ms);
    line_time(out, "Closed", inc->closed_at_ms);
    line_time(out, "Cancelled", inc->cancelled_at_ms);
    fprintf(out, "- Origin site: %s\n", str(inc->origin_site));
    if (inc->owner != NULL && str(inc->owner->site)[0] != '\0')
        fprintf(out, "- Owner site: %s%s\n", inc->owner->site,
                inc->owner->provisional ? " (provisional)" : "");
    fputc('\n', out);
}

static void
impact(FILE *out, const Im__Incident *inc)
{
    fputs("## Impact and priority\n\n", out);
    fprintf(out, "- Impact: %s\n", incident_level_name(inc->impact));
    fprintf(out, "- Urgency: %s\n", incident_level_name(inc->urgency));
    fprintf(out, "- Priority: %s\n", render_priority_name(inc->priority));
    fprintf(out, "- Major incident: %s\n\n",
            !inc->major           ? "no"
            : inc->declared_major ? "yes (declared)"
                                  : "yes (P1)");
}

static void
service(FILE *out, const Im__Incident *inc)
{
    fputs("## Service\n\n- Service: ", out);
    md_or_none(out, inc->service, "none");
    fputs("\n- Category: ", out);
    md_or_none(out, inc->category, "none");
    if (str(inc->subcategory)[0] != '\0') {
        fputs(" / ", out);
        md(out, inc->subcategory, 0);
    }
    fputs("\n\n", out);
}

static void
roles(FILE *out, const Im__Incident *inc)
{
    const Im__Roles *r = inc->roles;
    static const char *const none = "unassigned";

    fputs("## Roles\n\n- Incident manager: ", out);
    md_or_none(out, r ? r->manager : NULL, none);
    fputs("\n- Commander: ", out);
    md_or_none(out, r ? r->commander : NULL, none);
    fputs("\n- Communications: ", out);
    md_or_none(out, r ? r->comms : NULL, none);
    fputs("\n- Operations: ", out);
    md_or_none(out, r ? r->ops : NULL, none);
    fputs("\n- Subject-matter experts: ", out);
    if (r == NULL || r->n_smes == 0)
        fprintf(out, "_none_");
    for (size_t i = 0; r != NULL && i < r->n_smes; i++) {
        fputs(i ? ", " : "", out);
        md(out, r->smes[i], 0);
    }
    fputs("\n- Assignee: ", out);
    md_or_none(out, inc->assignee, none);
    fputs("\n\n", out);
}

static void
timeline(FILE *out, const Im__Incident *inc)
{
    fputs("## Timeline\n\n", out);
    if (inc->n_timeline == 0) {
        fputs("_No events._\n\n", out);
        return;
    }
    fputs("| Time (UTC) | Site | Actor | Event | Details |\n"
          "|---|---|---|---|---|\n",
          out);
    for (size_t i = 0; i < inc->n_timeline; i++) {
        const Im__TimelineEntry *t = inc->timeline[i];
        char at[RENDER_TIME_MAX];

        render_time(t->at_ms, "-", at);
        fprintf(out, "| %s | ", at);
        md(out, t->site, 1);
        fputs(" | ", out);
        md(out, t->actor, 1);
        fputs(" | ", out);
        md(out, t->kind, 1);
        fputs(" | ", out);
        if (t->refused)
            fputs("**refused** (", out);
        if (t->refused) {
            md(out, t->refused_reason, 1);
            fputs("): ", out);
        }
        md(out, render_timeline_body(t), 1);
        fputs(" |\n", out);
    }
    fputc('\n', out);
}

static void
duration_line(FILE *out, const char *label, uint64_t from_ms, uint64_t to_ms,
              const char *not_yet)
{
    char d[32];

    if (from_ms == 0 || to_ms == 0 || to_ms < from_ms) {
        fprintf(out, "- %s: _%s_\n", label, not_yet);
        return;
    }
    clock_fmt_duration(to_ms - from_ms, d);
    fprintf(out, "- %s: %s\n", label, d);
}

static void
times(FILE *out, const Im__Incident *inc)
{
    fputs("## Response times\n\n", out);
    duration_line(out, "Time to acknowledge", inc->opened_at_ms,
                  inc->acknowledged_at_ms, "not acknowledged");
    duration_line(out, "Time to resolve", inc->opened_at_ms,
                  inc->resolved_at_ms,
                  inc->reopen_count > 0 ? "not resolved since reopening"
                                        : "not resolved");
    fputc('\n', out);
}

static void
resolution(FILE *out, const Im__Incident *inc)
{
    fputs("## Resolution\n\n", out);
    if (str(inc->resolution_code)[0] == '\0') {
        if (inc->state == IM__STATE__STATE_CANCELLED)
            fputs("_Cancelled; not resolved._\n\n", out);
        else
            fputs("_Not resolved._\n\n", out);
        return;
    }
    fputs("- Code: ", out);
    md(out, inc->resolution_code, 0);
    fputs("\n- Notes: ", out);
    md_or_none(out, inc->resolution_notes, "none");
    fputs("\n\n", out);
}

static int
accepted(const Im__TimelineEntry *t, const char *kind)
{
    return !t->refused && strcmp(str(t->kind), kind) == 0;
}

static void
public_updates(FILE *out, const Im__Incident *inc)
{
    int any = 0;

    fputs("## Public updates\n\n", out);
    for (size_t i = 0; i < inc->n_timeline; i++) {
        const Im__TimelineEntry *t = inc->timeline[i];
        char at[RENDER_TIME_MAX];

        if (!accepted(t, "update"))
            continue;
        render_time(t->at_ms, "-", at);
        fprintf(out, "- %s: ", at);
        md(out, render_timeline_body(t), 0);
        fputc('\n', out);
        any = 1;
    }
    fputs(any ? "\n" : "_None published._\n\n", out);
}

/* Follow-up notes are the convention responders already use in chat:
 * a note beginning "follow-up:" or "TODO". */
static int
is_follow_up(const char *text)
{
    return strncasecmp(text, "follow-up:", 10) == 0 ||
           strncmp(text, "TODO", 4) == 0;
}

static void
follow_ups(FILE *out, const Im__Incident *inc)
{
    int any = 0;

    fputs("## Follow-ups\n\n", out);
    for (size_t i = 0; i < inc->n_timeline; i++) {
        const Im__TimelineEntry *t = inc->timeline[i];
        const char *body = render_timeline_body(t);

        if (!accepted(t, "note") || !is_follow_up(body))
            continue;
        fputs("- [ ] ", out);
        md(out, body, 1); /* one list item: keep it on one line */
        fprintf(out, " (%s)\n", str(t->actor));
        any = 1;
    }
    fputs(any ? "\n" : "_None recorded._\n\n", out);
}

void
report_write(FILE *out, const Im__Incident *inc, uint64_t now_ms)
{
    char now[RENDER_TIME_MAX];

    fprintf(out, "# Post-incident report: %s: ", str(inc->id));
    md(out, inc->title, 1);
    fputs("\n\n", out);
    summary(out, inc);
    impact(out, inc);
    service(out, inc);
    roles(out, inc);
    timeline(out, inc);
    times(out, inc);
    resolution(out, inc);
    public_updates(out, inc);
    follow_ups(out, inc);
    render_time(now_ms, "-", now);
    fprintf(out, "---\n_Generated at %s by imctl from %" PRIu32 " events._\n",
            now, inc->events_count);
}
