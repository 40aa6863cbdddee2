/* report: the post-incident report, in Markdown, built from one incident
 * with its timeline (a `get` with timeline=true).
 *
 * Pure formatting, like render: reads the decoded reply, writes to out.
 * Sections, in order (docs/cli.md shows an example): title line, Summary,
 * Impact and priority, Service, Roles, Timeline (a table), Response times
 * (time to acknowledge, time to resolve), Resolution, Public updates,
 * Follow-ups (notes starting "follow-up:" or "TODO", else "None
 * recorded."), and a generated-at line.
 *
 * Text from the incident is escaped where Markdown would read it as
 * structure: inside table cells '|' becomes "\|" and newlines become
 * "<br>"; elsewhere lines keep their content. */
#ifndef IM_CLI_REPORT_H
#define IM_CLI_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "im.pb-c.h"

/* now_ms: the generated-at time, and the end of a still-open incident's
 * duration. */
void report_write(FILE *out, const Im__Incident *inc, uint64_t now_ms);

#endif
