/* tz: see tz.h. GLib is used for exactly one thing: reading the tz
 * database into an immutable GTimeZone and asking it for the offset in
 * force at an instant. The local-to-UTC rule for gaps and overlaps is ours,
 * so that it is written down (tz.h) rather than inherited. */
#include "tz.h"

#include <glib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tz {
    GTimeZone *gtz;
    char name[TZ_NAME_MAX + 1];
};

/* GLib keeps opened zones in a cache guarded by its own lock, a futex that
 * ThreadSanitizer cannot see, so concurrent opens look like races on the
 * cache's keys. Holding our lock across the two calls that touch the cache
 * (new and unref) makes the ordering visible and costs nothing: zones are
 * opened when a schedule is parsed, not per lookup. Lookups on an opened
 * zone only read it and take no lock. */
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static int
is_alpha(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int
name_char_ok(char c)
{
    return is_alpha(c) || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '+' || c == '/';
}

int
tz_open(const char *name, struct tz **out, struct im_err *e)
{
    size_t n = name ? strlen(name) : 0;

    if (n == 0)
        return im_errf(e, IM_EINVAL, "empty time zone name");
    if (n > TZ_NAME_MAX)
        return im_errf(e, IM_ETOOBIG, "time zone name longer than %d bytes",
                       TZ_NAME_MAX);
    for (size_t i = 0; i < n; i++)
        if (!name_char_ok(name[i]))
            return im_errf(e, IM_EINVAL,
                           "time zone '%s': not an IANA zone name (like "
                           "Europe/Amsterdam)",
                           name);
    /* A '/' (or the one bare name we accept) keeps GLib from reading the
     * name as a POSIX TZ rule such as "ABC3"; the character set keeps out
     * paths and rules with ',' or '.'. */
    if (!is_alpha(name[0]) || strstr(name, "..") != NULL ||
        strstr(name, "//") != NULL || name[n - 1] == '/' ||
        (strchr(name, '/') == NULL && strcmp(name, "UTC") != 0))
        return im_errf(e, IM_EINVAL,
                       "time zone '%s': not an IANA zone name (like "
                       "Europe/Amsterdam)",
                       name);

    pthread_mutex_lock(&cache_lock);
    GTimeZone *gtz = g_time_zone_new_identifier(name);
    pthread_mutex_unlock(&cache_lock);
    if (gtz == NULL)
        return im_errf(e, IM_ENOTFOUND,
                       "unknown time zone '%s' (not in the tz database)", name);
    struct tz *tz = calloc(1, sizeof *tz);
    if (tz == NULL) {
        pthread_mutex_lock(&cache_lock);
        g_time_zone_unref(gtz);
        pthread_mutex_unlock(&cache_lock);
        return im_errf(e, IM_ENOMEM, "out of memory");
    }
    tz->gtz = gtz;
    memcpy(tz->name, name, n + 1);
    *out = tz;
    return 0;
}

void
tz_close(struct tz *tz)
{
    if (tz == NULL)
        return;
    pthread_mutex_lock(&cache_lock);
    g_time_zone_unref(tz->gtz);
    pthread_mutex_unlock(&cache_lock);
    free(tz);
}

const char *
tz_name(const struct tz *tz)
{
    return tz->name;
}

int32_t
tz_offset_s(const struct tz *tz, int64_t utc_s)
{
    /* GLib takes a non-const zone but does not change it. */
    GTimeZone *gtz = tz->gtz;
    gint i = g_time_zone_find_interval(gtz, G_TIME_TYPE_UNIVERSAL, utc_s);
    return g_time_zone_get_offset(gtz, i);
}

static int64_t
floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

/* Howard Hinnant's days_from_civil / civil_from_days: exact for the
 * proleptic Gregorian calendar, no tables, no libc time functions. */
int64_t
tz_days_from_civil(int y, int m, int d)
{
    int64_t yy = (int64_t)y - (m <= 2);
    int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
    int64_t yoe = yy - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void
tz_civil_from_days(int64_t days, int *y, int *m, int *d)
{
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t dd = doy - (153 * mp + 2) / 5 + 1;
    int64_t mm = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yoe + era * 400 + (mm <= 2));
    *m = (int)mm;
    *d = (int)dd;
}

int
tz_date_valid(int y, int m, int d)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30,
                                  31, 31, 30, 31, 30, 31};
    if (y < TZ_YEAR_MIN || y > TZ_YEAR_MAX || m < 1 || m > 12 || d < 1)
        return 0;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return d <= mdays[m - 1] + (m == 2 && leap);
}

void
tz_to_local(const struct tz *tz, uint64_t ms, struct tz_civil *out)
{
    int64_t s = (int64_t)(ms / 1000u);
    int64_t local = s + tz_offset_s(tz, s);
    int64_t days = floor_div(local, TZ_DAY_S);
    tz_civil_from_days(days, &out->year, &out->month, &out->day);
    out->sec_of_day = (int)(local - days * TZ_DAY_S);
}

int
tz_from_local(const struct tz *tz, const struct tz_civil *lt, uint64_t *ms_out)
{
    if (!tz_date_valid(lt->year, lt->month, lt->day) || lt->sec_of_day < 0 ||
        lt->sec_of_day >= TZ_DAY_S)
        return IM_EINVAL;
    int64_t local =
        tz_days_from_civil(lt->year, lt->month, lt->day) * TZ_DAY_S +
        lt->sec_of_day;
    /* The offsets in force a day either side: UTC offsets are within
     * +-14 h, so these instants lie at least 10 h before and after the one
     * we look for, and no zone changes its clocks twice within 20 h. */
    int32_t before = tz_offset_s(tz, local - TZ_DAY_S);
    int32_t after = tz_offset_s(tz, local + TZ_DAY_S);
    int64_t t;
    int ok_before = tz_offset_s(tz, local - before) == before;
    int ok_after = tz_offset_s(tz, local - after) == after;

    if (ok_before && ok_after)
        t = local - before < local - after ? local - before : local - after;
    else if (ok_before)
        t = local - before;
    else if (ok_after)
        t = local - after;
    else
        t = local - before; /* a gap: read with the offset before it */
    if (t < 0)
        return IM_EINVAL;
    *ms_out = (uint64_t)t * 1000u;
    return 0;
}

void
tz_fmt_local(const struct tz *tz, uint64_t ms, char out[TZ_LOCAL_TEXT_MAX])
{
    struct tz_civil c;
    tz_to_local(tz, ms, &c);
    snprintf(out, TZ_LOCAL_TEXT_MAX, "%04d-%02d-%02d %02d:%02d", c.year,
             c.month, c.day, c.sec_of_day / 3600, c.sec_of_day % 3600 / 60);
}
