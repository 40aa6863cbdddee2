/* clock: wall time, and the textual forms of times and durations people type
 * and read (RFC 3339 UTC, "90s", "15m", "7d"). */
#ifndef IM_CLOCK_H
#define IM_CLOCK_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
uint64_t clock_wall_ms(void);

/* Milliseconds from an arbitrary origin that never goes backwards. */
uint64_t clock_mono_ms(void);

/* The CLOCK_REALTIME instant ms from now, as pthread_cond_timedwait takes
 * its deadline. */
struct timespec clock_realtime_after(uint64_t ms);

/* "2026-11-23T10:15:30.123Z" for ms; "" for 0 (none). out must hold
 * CLOCK_RFC3339_MAX bytes. */
#define CLOCK_RFC3339_MAX 32
void clock_fmt_rfc3339(uint64_t ms, char out[CLOCK_RFC3339_MAX]);

/* Parses an RFC 3339 timestamp with 'Z' or a numeric offset, optional
 * fraction; writes ms since the epoch. IM_EINVAL if malformed. */
int clock_parse_rfc3339(const char *text, uint64_t *ms_out);

/* Parses "250ms", "30s", "15m", "12h", "7d", "2w" (one number and one unit)
 * into milliseconds. IM_EINVAL if malformed, IM_ETOOBIG past 100 years. */
int clock_parse_duration(const char *text, uint64_t *ms_out);

/* "1h 02m", "45s", "3d 4h": a duration for people. out holds 32 bytes. */
void clock_fmt_duration(uint64_t ms, char out[32]);

#endif
