/* clock: see clock.h. */
#include "clock.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"

uint64_t
clock_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t
clock_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct timespec
clock_realtime_after(uint64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

void
clock_fmt_rfc3339(uint64_t ms, char out[CLOCK_RFC3339_MAX])
{
    struct tm tm;
    time_t secs = (time_t)(ms / 1000u);

    if (ms == 0 || gmtime_r(&secs, &tm) == NULL) {
        out[0] = '\0';
        return;
    }
    snprintf(out, CLOCK_RFC3339_MAX, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (unsigned)(ms % 1000u));
}

static int
digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)**p))
            return IM_EINVAL;
        v = v * 10 + (**p - '0');
        (*p)++;
    }
    *out = v;
    return 0;
}

int
clock_parse_rfc3339(const char *text, uint64_t *ms_out)
{
    const char *p = text;
    int y, mo, d, h, mi, s, frac_ms = 0, off_min = 0, leap = 0;
    struct tm tm;

    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) ||
        *p++ != '-' || digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' '))
        return IM_EINVAL;
    p++;
    if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) ||
        *p++ != ':' || digits(&p, 2, &s))
        return IM_EINVAL;
    if (*p == '.') {
        int scale = 100, n = 0;
        p++;
        while (isdigit((unsigned char)*p)) {
            if (n++ < 3) {
                frac_ms += (*p - '0') * scale;
                scale /= 10;
            }
            p++;
        }
        if (n == 0)
            return IM_EINVAL;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, oh, om;
        p++;
        if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) ||
            oh > 23 || om > 59)
            return IM_EINVAL;
        off_min = sign * (oh * 60 + om);
    } else {
        return IM_EINVAL;
    }
    if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
        mi > 59 || s > 60 || y < 1970)
        return IM_EINVAL;
    if (s == 60) {
        /* RFC 3339 allows second 60 only for a leap second, which is always
         * 23:59:60 UTC; Unix time has no room for it, so it reads as the
         * next second, as time() does. Any other :60 is malformed (timegm
         * would quietly roll it into the next minute). */
        int utc_min = ((h * 60 + mi - off_min) % 1440 + 1440) % 1440;
        if (utc_min != 23 * 60 + 59)
            return IM_EINVAL;
        leap = 1;
        s = 59;
    }
    memset(&tm, 0, sizeof tm);
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return IM_EINVAL;
    /* timegm normalises 31 February into March: refuse such dates. */
    struct tm back;
    gmtime_r(&t, &back);
    if (back.tm_mday != d || back.tm_mon != mo - 1)
        return IM_EINVAL;
    int64_t ms = ((int64_t)t + leap - (int64_t)off_min * 60) * 1000 + frac_ms;
    if (ms < 0)
        return IM_EINVAL;
    *ms_out = (uint64_t)ms;
    return 0;
}

int
clock_parse_duration(const char *text, uint64_t *ms_out)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {
        {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000},
        {"d", 86400000}, {"w", 604800000},
    };
    const uint64_t max_ms = 100ULL * 366 * 86400000ULL;
    char *end;
    unsigned long long n;

    if (text == NULL || !isdigit((unsigned char)text[0]))
        return IM_EINVAL;
    n = strtoull(text, &end, 10);
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].unit) == 0) {
            if (n > max_ms / units[i].ms)
                return IM_ETOOBIG;
            *ms_out = n * units[i].ms;
            return 0;
        }
    }
    return IM_EINVAL;
}

void
clock_fmt_duration(uint64_t ms, char out[32])
{
    uint64_t s = ms / 1000u;
    if (ms < 1000u)
        snprintf(out, 32, "%llums", (unsigned long long)ms);
    else if (s < 60)
        snprintf(out, 32, "%llus", (unsigned long long)s);
    else if (s < 3600)
        snprintf(out, 32, "%llum %02llus", (unsigned long long)(s / 60),
                 (unsigned long long)(s % 60));
    else if (s < 86400)
        snprintf(out, 32, "%lluh %02llum", (unsigned long long)(s / 3600),
                 (unsigned long long)(s % 3600 / 60));
    else
        snprintf(out, 32, "%llud %lluh", (unsigned long long)(s / 86400),
                 (unsigned long long)(s % 86400 / 3600));
}
