/* hlc: see hlc.h. */
#include "hlc.h"

hlc_t
hlc_now(struct hlc *c, uint64_t wall_ms)
{
    uint64_t ms = HLC_MS(c->last);
    uint32_t counter = HLC_COUNTER(c->last);

    /* Past 48 bits HLC_MAKE would drop the high bits and send the clock
     * back to 1970 (or to 0, "none"): saturate instead. */
    if (wall_ms > HLC_MS_MAX)
        wall_ms = HLC_MS_MAX;
    if (wall_ms > ms) {
        ms = wall_ms;
        counter = 0;
    } else if (c->last == HLC_MAX) {
        return c->last;
    } else if (++counter > 0xffffu) {
        /* 65,536 events in one millisecond: borrow the next millisecond
         * rather than wrap, so the clock stays monotonic. */
        ms++;
        counter = 0;
    }
    c->last = HLC_MAKE(ms, counter);
    return c->last;
}

void
hlc_observe(struct hlc *c, hlc_t remote, uint64_t wall_ms)
{
    if (remote > c->last)
        c->last = remote;
    (void)hlc_now(c, wall_ms);
}
