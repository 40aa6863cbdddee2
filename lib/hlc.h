/* hlc: the hybrid logical clock that orders events across sites.
 *
 * An hlc_t is 48 bits of milliseconds since the Unix epoch followed by a
 * 16-bit logical counter (Kulkarni et al., "Logical Physical Clocks", 2014).
 * It never goes backwards, stays within the counter's reach of physical time,
 * and orders causally related events across sites. 0 means "none".
 *
 * Not thread-safe: one clock belongs to one thread (the node's writer). */
#ifndef IM_HLC_H
#define IM_HLC_H

#include <stdint.h>

typedef uint64_t hlc_t;

#define HLC_MS(h) ((uint64_t)(h) >> 16)
#define HLC_COUNTER(h) ((uint16_t)((h) & 0xffffu))
#define HLC_MAKE(ms, c) (((uint64_t)(ms) << 16) | (uint16_t)(c))

/* The largest millisecond 48 bits hold (year 10889), and the largest
 * timestamp. A wall clock past HLC_MS_MAX is read as HLC_MS_MAX; a clock at
 * HLC_MAX stays there (ties, never a wrap to 0 = "none"). Only a broken
 * clock or an unbounded remote timestamp gets there: callers bound remote
 * timestamps before observing them. */
#define HLC_MS_MAX ((UINT64_C(1) << 48) - 1)
#define HLC_MAX HLC_MAKE(HLC_MS_MAX, 0xffffu)

struct hlc {
    hlc_t last;
};

/* A timestamp for a local event at physical time wall_ms. */
hlc_t hlc_now(struct hlc *c, uint64_t wall_ms);

/* Merges a timestamp received from another site, so that the next local
 * event sorts after it. */
void hlc_observe(struct hlc *c, hlc_t remote, uint64_t wall_ms);

#endif
