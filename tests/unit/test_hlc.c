/* Unit tests for lib/hlc: the 48+16-bit packing, monotonicity under a wall
 * clock that jumps backwards, counter overflow, merging remote timestamps
 * that are ahead of or behind ours, and saturation at the top of the range
 * (a wall clock or remote timestamp past 48 bits must never wrap the clock
 * back to 1970 or to 0, "none"). The clock is pure: every test feeds it
 * wall times, no real clock is read. */
#include "test.h"

#include "hlc.h"

TEST(packing)
{
    hlc_t h = HLC_MAKE(1700000000123ULL, 42);
    CHECK_EQ_INT(HLC_MS(h), 1700000000123ULL);
    CHECK_EQ_INT(HLC_COUNTER(h), 42);
    CHECK(h == ((1700000000123ULL << 16) | 42));

    /* The counter is the low 16 bits: any counter of a millisecond sorts
     * before the next millisecond. */
    CHECK(HLC_MAKE(5, 0xffff) < HLC_MAKE(6, 0));
    CHECK(HLC_MAKE(5, 1) < HLC_MAKE(5, 2));
    CHECK_EQ_INT(HLC_COUNTER(HLC_MAKE(5, 0xffff)), 0xffff);

    /* The counter argument is cut to 16 bits; it never carries into ms. */
    CHECK(HLC_MAKE(1, 0x10001) == HLC_MAKE(1, 1));

    CHECK_EQ_INT(HLC_MS(HLC_MAKE(HLC_MS_MAX, 0)), HLC_MS_MAX);
    CHECK(HLC_MAX == UINT64_MAX);
    CHECK_EQ_INT(HLC_MS(HLC_MAX), HLC_MS_MAX);
    CHECK_EQ_INT(HLC_COUNTER(HLC_MAX), 0xffff);
    CHECK_EQ_INT(HLC_MS(0), 0);
    CHECK_EQ_INT(HLC_COUNTER(0), 0);
}

TEST(now_follows_wall_clock)
{
    struct hlc c = {0};

    CHECK(hlc_now(&c, 1000) == HLC_MAKE(1000, 0));
    CHECK(hlc_now(&c, 1000) == HLC_MAKE(1000, 1));
    CHECK(hlc_now(&c, 1000) == HLC_MAKE(1000, 2));
    /* A new millisecond resets the counter. */
    CHECK(hlc_now(&c, 1001) == HLC_MAKE(1001, 0));
    CHECK(hlc_now(&c, 2500) == HLC_MAKE(2500, 0));
    CHECK(c.last == HLC_MAKE(2500, 0));
}

TEST(never_zero)
{
    /* 0 means "none": even a clock reading 0 gives a real timestamp. */
    struct hlc c = {0};
    hlc_t h = hlc_now(&c, 0);
    CHECK(h != 0);
    CHECK(h == HLC_MAKE(0, 1));
}

TEST(wall_clock_jumps_backwards)
{
    struct hlc c = {0};
    hlc_t a, b, d, f, g;

    a = hlc_now(&c, 5000);
    b = hlc_now(&c, 4000); /* NTP stepped the clock back a second */
    d = hlc_now(&c, 4500);
    f = hlc_now(&c, 5000);
    g = hlc_now(&c, 5001);
    CHECK(a == HLC_MAKE(5000, 0));
    /* Still in the millisecond we had reached, counting on. */
    CHECK(b == HLC_MAKE(5000, 1));
    CHECK(d == HLC_MAKE(5000, 2));
    CHECK(f == HLC_MAKE(5000, 3));
    /* Physical time catches up and takes over again. */
    CHECK(g == HLC_MAKE(5001, 0));
    CHECK(a < b && b < d && d < f && f < g);

    /* A jump back by hours does not move it either. */
    CHECK(hlc_now(&c, 0) == HLC_MAKE(5001, 1));
}

TEST(counter_overflow_borrows_next_millisecond)
{
    struct hlc c = {.last = HLC_MAKE(7000, 0xfffe)};

    CHECK(hlc_now(&c, 7000) == HLC_MAKE(7000, 0xffff));
    /* 65,536 events in one millisecond: the next one moves to 7001 rather
     * than wrapping the counter (which would sort before 7000/0xffff). */
    CHECK(hlc_now(&c, 7000) == HLC_MAKE(7001, 0));
    /* The borrowed millisecond is ahead of the wall clock; it keeps
     * counting until the wall clock passes it. */
    CHECK(hlc_now(&c, 7000) == HLC_MAKE(7001, 1));
    CHECK(hlc_now(&c, 7001) == HLC_MAKE(7001, 2));
    CHECK(hlc_now(&c, 7002) == HLC_MAKE(7002, 0));

    /* A full millisecond's worth, from a fresh clock. */
    struct hlc d = {0};
    hlc_t prev = 0, h = 0;
    for (unsigned i = 0; i < 0x10000u + 10; i++) {
        h = hlc_now(&d, 9000);
        if (h <= prev) {
            CHECK(h > prev);
            break;
        }
        prev = h;
    }
    CHECK(h == HLC_MAKE(9001, 9));
}

TEST(observe_remote_ahead)
{
    struct hlc c = {0};

    (void)hlc_now(&c, 1000);
    /* A site whose clock runs 4 s ahead sent us this; our clock stays at
     * 1000 ms. The next local event must sort after what we received. */
    hlc_observe(&c, HLC_MAKE(5000, 7), 1000);
    CHECK(c.last > HLC_MAKE(5000, 7));
    CHECK(c.last == HLC_MAKE(5000, 8)); /* observe counts as an event */
    hlc_t h = hlc_now(&c, 1000);
    CHECK(h == HLC_MAKE(5000, 9));
    CHECK(h > HLC_MAKE(5000, 7));
    /* Our physical clock reaching it takes over as usual. */
    CHECK(hlc_now(&c, 5001) == HLC_MAKE(5001, 0));
}

TEST(observe_remote_same_millisecond)
{
    struct hlc c = {.last = HLC_MAKE(5000, 3)};

    hlc_observe(&c, HLC_MAKE(5000, 10), 5000);
    CHECK(c.last == HLC_MAKE(5000, 11));
    CHECK(hlc_now(&c, 5000) == HLC_MAKE(5000, 12));

    /* A remote counter at the top of its millisecond borrows the next. */
    hlc_observe(&c, HLC_MAKE(6000, 0xffff), 5000);
    CHECK(c.last == HLC_MAKE(6001, 0));
}

TEST(observe_remote_behind)
{
    struct hlc c = {0};

    (void)hlc_now(&c, 5000);
    (void)hlc_now(&c, 5000);
    CHECK(c.last == HLC_MAKE(5000, 1));
    /* An old event (a late replica, a site with a slow clock) never pulls
     * our clock back. */
    hlc_observe(&c, HLC_MAKE(1000, 9), 5000);
    CHECK(c.last == HLC_MAKE(5000, 2));
    CHECK(hlc_now(&c, 5000) == HLC_MAKE(5000, 3));
    hlc_observe(&c, 0, 5000); /* "none" is harmless too */
    CHECK(c.last == HLC_MAKE(5000, 4));
}

TEST(observe_wall_ahead_of_both)
{
    struct hlc c = {.last = HLC_MAKE(1000, 0)};

    hlc_observe(&c, HLC_MAKE(2000, 5), 3000);
    CHECK(c.last == HLC_MAKE(3000, 0));
}

TEST(observe_own_chain_head_after_restart)
{
    /* The node seeds a fresh clock with its own last event (commit_start),
     * so that a restart with a clock that went backwards still extends its
     * chain in order. */
    struct hlc c = {0};
    hlc_t head = HLC_MAKE(1700000060000ULL, 4);

    hlc_observe(&c, head, 1700000000000ULL);
    hlc_t h = hlc_now(&c, 1700000000000ULL);
    CHECK(h > head);
    CHECK_EQ_INT(HLC_MS(h), HLC_MS(head));
}

TEST(saturates_instead_of_wrapping)
{
    /* A wall clock past 48 bits of milliseconds (year 10889: a broken
     * clock) is read as the last millisecond, never truncated. */
    struct hlc c = {0};
    hlc_t a = hlc_now(&c, HLC_MS_MAX + 5);
    CHECK(a == HLC_MAKE(HLC_MS_MAX, 0));
    hlc_t b = hlc_now(&c, UINT64_MAX);
    CHECK(b == HLC_MAKE(HLC_MS_MAX, 1));
    /* Back to a sane clock: never backwards. */
    CHECK(hlc_now(&c, 1700000000000ULL) == HLC_MAKE(HLC_MS_MAX, 2));

    /* A remote timestamp at the very top (a hostile or corrupt value):
     * the clock stops there instead of wrapping to 0 ("none"). */
    struct hlc d = {0};
    (void)hlc_now(&d, 1000);
    hlc_observe(&d, HLC_MAX, 1000);
    CHECK(d.last == HLC_MAX);
    CHECK(hlc_now(&d, 1000) == HLC_MAX);
    CHECK(hlc_now(&d, 2000) == HLC_MAX);
    CHECK(hlc_now(&d, UINT64_MAX) == HLC_MAX);

    /* The last two timestamps before the ceiling are still distinct. */
    struct hlc f = {.last = HLC_MAKE(HLC_MS_MAX, 0xfffd)};
    CHECK(hlc_now(&f, 0) == HLC_MAKE(HLC_MS_MAX, 0xfffe));
    CHECK(hlc_now(&f, 0) == HLC_MAX);
    CHECK(hlc_now(&f, 0) == HLC_MAX);
}

/* Random walks of the wall clock (steps forward, back, stalls, big jumps)
 * mixed with remote timestamps: every local timestamp is strictly greater
 * than every earlier one and than every remote it observed, never below
 * the wall clock, and never further ahead of the largest time seen than the
 * counter overflows can explain. */
TEST(random_walk_is_strictly_monotonic)
{
    uint64_t rng = test_seed_ ^ 0x9e3779b97f4a7c15ULL;
    struct hlc c = {0};
    uint64_t wall = 1700000000000ULL, max_seen = 0, calls = 0;
    hlc_t prev = 0;
    int bad = 0;

    for (int i = 0; i < 200000 && !bad; i++) {
        uint64_t r = test_rand(&rng);
        switch (r % 16) {
        case 0: wall -= r >> 50; break;            /* back up to 16 s */
        case 1: wall += (r >> 40) % 100000; break; /* forward */
        case 2:
        case 3: wall += 1; break;
        default: break; /* same millisecond */
        }
        if (wall > max_seen)
            max_seen = wall;
        if (r % 97 == 0) {
            hlc_t remote = HLC_MAKE(wall + (r >> 56) - 128, (r >> 8) & 0xffff);
            hlc_observe(&c, remote, wall);
            calls++;
            if (c.last <= remote) {
                CHECK(c.last > remote);
                bad = 1;
            }
            if (HLC_MS(remote) > max_seen)
                max_seen = HLC_MS(remote);
            if (c.last <= prev) {
                CHECK(c.last > prev);
                bad = 1;
            }
            prev = c.last;
            continue;
        }
        hlc_t h = hlc_now(&c, wall);
        calls++;
        if (h <= prev) {
            CHECK(h > prev);
            bad = 1;
        }
        if (HLC_MS(h) < wall) {
            CHECK(HLC_MS(h) >= wall);
            bad = 1;
        }
        if (HLC_MS(h) > max_seen + calls / 0x10000u + 1) {
            CHECK(HLC_MS(h) <= max_seen + calls / 0x10000u + 1);
            bad = 1;
        }
        prev = h;
    }
    if (bad)
        fprintf(stderr, "random walk failed after %llu calls\n",
                (unsigned long long)calls);
}

TEST_MAIN(RUN(packing); RUN(now_follows_wall_clock); RUN(never_zero);
          RUN(wall_clock_jumps_backwards);
          RUN(counter_overflow_borrows_next_millisecond);
          RUN(observe_remote_ahead); RUN(observe_remote_same_millisecond);
          RUN(observe_remote_behind); RUN(observe_wall_ahead_of_both);
          RUN(observe_own_chain_head_after_restart);
          RUN(saturates_instead_of_wrapping);
          RUN(random_walk_is_strictly_monotonic))
