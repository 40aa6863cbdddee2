/* tz: IANA time zones ("Europe/Amsterdam") and the civil-date arithmetic
 * that on-call rotations need.
 *
 * Zones come from the system's tz database (Debian's tzdata, the TZif files
 * under /usr/share/zoneinfo, or $TZDIR) through GLib's GTimeZone. We do not
 * use localtime_r/mktime with a changed TZ: setenv() races with every
 * getenv() in the process (libcurl reads proxy variables on its own
 * threads), so no mutex of ours could make it safe. GTimeZone parses TZif
 * (including the POSIX rule in its footer, so 2040 and 2100 are right),
 * and a zone once opened is immutable: every function below is safe to
 * call from any thread, on a shared struct tz too (tz.c says how opening
 * and closing are serialised).
 *
 * tz_open() is the only function here that reads files. Everything else is
 * pure arithmetic on an opened zone. */
#ifndef IM_COORD_TZ_H
#define IM_COORD_TZ_H

#include <stdint.h>

#include "err.h"

/* An IANA zone name. The longest in tzdata 2025 is 32 bytes
 * ("America/Argentina/ComodRivadavia"). */
#define TZ_NAME_MAX 64

/* "2026-11-25 09:00" plus room: what tz_fmt_local writes. */
#define TZ_LOCAL_TEXT_MAX 32

/* Years a civil date may have: Unix time from 1970, four-digit years. */
#define TZ_YEAR_MIN 1970
#define TZ_YEAR_MAX 9999

#define TZ_DAY_S 86400

struct tz; /* an opened zone: immutable, shared freely between threads */

/* A local calendar date and time of day (seconds after local midnight). */
struct tz_civil {
    int year;
    int month;      /* 1..12 */
    int day;        /* 1..31 */
    int sec_of_day; /* 0..86399 */
};

/* Opens the zone `name` and writes it to *out. The name must be an IANA
 * name: "Area/Location[/...]" or "UTC", made of letters, digits, '_', '-',
 * '+' and '/', starting with a letter, without "..": POSIX TZ rule strings
 * ("CET-1CEST,M3.5.0"), fixed offsets and paths are refused, so that a
 * schedule always names a zone of the tz database.
 * IM_EINVAL for a malformed name, IM_ETOOBIG past TZ_NAME_MAX, IM_ENOTFOUND
 * if the database has no such zone. *out is written only on success; close
 * it with tz_close(). */
int tz_open(const char *name, struct tz **out, struct im_err *e);

/* Releases a zone from tz_open(); NULL is ignored. */
void tz_close(struct tz *tz);

/* The name the zone was opened with. */
const char *tz_name(const struct tz *tz);

/* The zone's UTC offset in seconds (east positive) at the instant utc_s. */
int32_t tz_offset_s(const struct tz *tz, int64_t utc_s);

/* The local date and time at the instant ms. */
void tz_to_local(const struct tz *tz, uint64_t ms, struct tz_civil *out);

/* The instant at which the zone's clocks read `lt`. A local time that
 * occurs twice (clocks go back) is its first occurrence; one that does not
 * occur (clocks go forward) is read with the offset in force before the
 * change, i.e. it lands as far past the gap as it was into it (02:30 on a
 * day that skips 02:00-03:00 becomes 03:30). IM_EINVAL if lt is not a valid
 * date and time within TZ_YEAR_MIN..TZ_YEAR_MAX, or falls before the epoch.
 * *ms_out is written only on success. */
int tz_from_local(const struct tz *tz, const struct tz_civil *lt,
                  uint64_t *ms_out);

/* "2026-11-25 09:00": the local time of ms, to the minute. */
void tz_fmt_local(const struct tz *tz, uint64_t ms,
                  char out[TZ_LOCAL_TEXT_MAX]);

/* Days from 1970-01-01 to the proleptic Gregorian date y-m-d (negative
 * before), and back. Pure; valid for any date in int range. */
int64_t tz_days_from_civil(int y, int m, int d);
void tz_civil_from_days(int64_t days, int *y, int *m, int *d);

/* 1 if y-m-d is a real date within TZ_YEAR_MIN..TZ_YEAR_MAX, else 0. */
int tz_date_valid(int y, int m, int d);

#endif
