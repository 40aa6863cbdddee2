/* hlc: see hlc.h. */
#include "hlc.h"

hlc_t
hlc_now(struct hlc *c, uint64_t wall_ms)
{
    uint64_t ms = HLC_MS(c->last);
    uint32_t counter = HLC_COUNTER(c->last);

    if (wall_ms > ms) {
        ms = wall_ms;
        counter = 0;
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
