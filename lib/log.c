/* log: see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"

static char log_tag[64] = "im";
static enum log_level log_threshold = LOG_INFO;

void
log_init(const char *tag)
{
    const char *lvl = getenv("IM_LOG");
    snprintf(log_tag, sizeof log_tag, "%s", tag);
    if (lvl == NULL)
        return;
    if (strcmp(lvl, "debug") == 0)
        log_threshold = LOG_DEBUG;
    else if (strcmp(lvl, "warn") == 0)
        log_threshold = LOG_WARN;
    else if (strcmp(lvl, "error") == 0)
        log_threshold = LOG_ERROR;
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    char line[1024], ts[CLOCK_RFC3339_MAX];
    va_list ap;
    int n;

    if (level < log_threshold)
        return;
    clock_fmt_rfc3339(clock_wall_ms(), ts);
    n = snprintf(line, sizeof line, "%s %s %s: ", ts, log_tag, names[level]);
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof line)
        n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line - 1)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    /* One write per line so that concurrent lines never interleave. */
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}
