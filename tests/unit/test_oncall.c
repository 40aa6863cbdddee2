/* Unit tests for coord/oncall: shifts of daily and weekly rotations across
 * both daylight-saving changes in Amsterdam, New York and Sydney, and in
 * Singapore (none); hand-offs inside a skipped or repeated hour; overrides
 * inside a shift, across a hand-off, nested and tied; walking segments with
 * oncall_next; the backup; and each bad input with its error. Times are
 * written as RFC 3339 and parsed by lib/clock (timegm), not by the code
 * under test. */
#include "test.h"

#include "clock.h"
#include "oncall.h"

static uint64_t
utc(const char *rfc3339)
{
    uint64_t ms = 0;
    if (clock_parse_rfc3339(rfc3339, &ms) != 0) {
        fprintf(stderr, "bad test time %s\n", rfc3339);
        abort();
    }
    return ms;
}

/* Every zone a test opens, closed at the end. */
static struct tz *zones[64];
static size_t zones_count;

static const struct tz *
zone(const char *name)
{
    struct im_err e;
    if (zones_count == sizeof zones / sizeof zones[0])
        abort();
    if (tz_open(name, &zones[zones_count], &e) != 0) {
        fprintf(stderr, "tz_open %s: %s\n", name, im_errmsg(&e));
        abort();
    }
    return zones[zones_count++];
}

static void
rotation(struct oncall_rotation *r, const char *zname, const char *people,
         uint32_t days, uint32_t handoff_s, int y, int m, int d)
{
    memset(r, 0, sizeof *r);
    /* people: comma-separated */
    const char *p = people;
    while (*p) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        memcpy(r->people[r->people_count], p, n);
        r->people[r->people_count++][n] = '\0';
        p += n + (c != NULL);
    }
    r->length_days = days;
    r->handoff_s = handoff_s;
    r->start = (struct oncall_date){y, m, d};
    r->tz = zone(zname);
}

/* The segment at `at` must be person over [start, end). */
static void
check_seg(const struct oncall_rotation *r, const struct oncall_override *o,
          size_t n, const char *at, const char *person, const char *start,
          const char *end, int line)
{
    struct oncall_segment s;
    struct im_err e;
    int rv = oncall_at(r, o, n, utc(at), &s, &e);
    if (rv != 0) {
        fprintf(stderr, "line %d: oncall_at(%s): %s\n", line, at,
                im_errmsg(&e));
        test_failed_ = 1;
        return;
    }
    if (strcmp(s.person, person) != 0 || s.start_ms != utc(start) ||
        s.end_ms != utc(end)) {
        char a[CLOCK_RFC3339_MAX], b[CLOCK_RFC3339_MAX];
        clock_fmt_rfc3339(s.start_ms, a);
        clock_fmt_rfc3339(s.end_ms, b);
        fprintf(stderr, "line %d: at %s: got %s [%s, %s), want %s [%s, %s)\n",
                line, at, s.person, a, b, person, start, end);
        test_failed_ = 1;
    }
}
#define SEG(r, o, n, at, person, start, end)                                   \
    check_seg(r, o, n, at, person, start, end, __LINE__)

#define H(h) ((uint32_t)(h)*3600u)

TEST(amsterdam_daily_across_dst)
{
    struct oncall_rotation r;
    rotation(&r, "Europe/Amsterdam", "alice,bob,carol", 1, H(9), 2026, 3, 27);
    SEG(&r, NULL, 0, "2026-03-27T08:00:00Z", "alice", "2026-03-27T08:00:00Z",
        "2026-03-28T08:00:00Z");
    /* Spring forward: bob's shift, Sat 09:00 CET -> Sun 09:00 CEST, is 23 h. */
    SEG(&r, NULL, 0, "2026-03-28T12:00:00Z", "bob", "2026-03-28T08:00:00Z",
        "2026-03-29T07:00:00Z");
    SEG(&r, NULL, 0, "2026-03-29T06:59:59Z", "bob", "2026-03-28T08:00:00Z",
        "2026-03-29T07:00:00Z");
    SEG(&r, NULL, 0, "2026-03-29T07:00:00Z", "carol", "2026-03-29T07:00:00Z",
        "2026-03-30T07:00:00Z");
    SEG(&r, NULL, 0, "2026-03-30T07:00:00Z", "alice", "2026-03-30T07:00:00Z",
        "2026-03-31T07:00:00Z");

    /* Fall back: Sat 24 Oct 09:00 CEST -> Sun 25 Oct 09:00 CET is 25 h.
     * 2026-03-27 + 211 days = 24 Oct, shift 211: 211 mod 3 = 1, bob. */
    SEG(&r, NULL, 0, "2026-10-25T07:30:00Z", "bob", "2026-10-24T07:00:00Z",
        "2026-10-25T08:00:00Z");
    SEG(&r, NULL, 0, "2026-10-25T08:00:00Z", "carol", "2026-10-25T08:00:00Z",
        "2026-10-26T08:00:00Z");
    /* Before the first hand-off nobody is on call. */
    struct oncall_segment s = {.person = "untouched"};
    struct im_err e;
    CHECK_EQ_INT(oncall_at(&r, NULL, 0, utc("2026-03-27T07:59:59Z"), &s, &e),
                 IM_ENOTFOUND);
    CHECK(strstr(e.msg, "2026-03-27 09:00 Europe/Amsterdam") != NULL);
    CHECK_EQ_STR(s.person, "untouched");
}

TEST(new_york_weekly_across_dst)
{
    struct oncall_rotation r;
    rotation(&r, "America/New_York", "dave,erin", 7, H(9), 2026, 3, 2);
    /* 2 March 09:00 EST -> 9 March 09:00 EDT: 167 h. */
    SEG(&r, NULL, 0, "2026-03-05T00:00:00Z", "dave", "2026-03-02T14:00:00Z",
        "2026-03-09T13:00:00Z");
    SEG(&r, NULL, 0, "2026-03-09T13:00:00Z", "erin", "2026-03-09T13:00:00Z",
        "2026-03-16T13:00:00Z");
    /* 26 October (week 34, dave) 09:00 EDT -> 2 November 09:00 EST: 169 h. */
    SEG(&r, NULL, 0, "2026-11-01T06:30:00Z", "dave", "2026-10-26T13:00:00Z",
        "2026-11-02T14:00:00Z");
    SEG(&r, NULL, 0, "2026-11-02T14:00:00Z", "erin", "2026-11-02T14:00:00Z",
        "2026-11-09T14:00:00Z");
    /* The local date is already Tuesday in UTC terms while it is still
     * Monday 23:00 in New York: the shift is still Monday's. */
    SEG(&r, NULL, 0, "2026-03-10T03:00:00Z", "erin", "2026-03-09T13:00:00Z",
        "2026-03-16T13:00:00Z");
}

TEST(sydney_and_singapore)
{
    struct oncall_rotation r;
    rotation(&r, "Australia/Sydney", "fay,gus", 1, H(9), 2026, 4, 4);
    /* Autumn in April: 4 April 09:00 AEDT -> 5 April 09:00 AEST, 25 h. */
    SEG(&r, NULL, 0, "2026-04-04T12:00:00Z", "fay", "2026-04-03T22:00:00Z",
        "2026-04-04T23:00:00Z");
    SEG(&r, NULL, 0, "2026-04-04T23:00:00Z", "gus", "2026-04-04T23:00:00Z",
        "2026-04-05T23:00:00Z");
    /* Spring in October: 3 October 09:00 AEST -> 4 October 09:00 AEDT,
     * 23 h. 3 Oct is day 182 from 4 April: fay. */
    SEG(&r, NULL, 0, "2026-10-03T12:00:00Z", "fay", "2026-10-02T23:00:00Z",
        "2026-10-03T22:00:00Z");

    struct oncall_rotation s;
    rotation(&s, "Asia/Singapore", "hana,ivan,jun", 1, H(9), 2026, 3, 27);
    /* No DST: every shift is 24 h, on the European change days too. */
    SEG(&s, NULL, 0, "2026-03-29T00:59:59Z", "ivan", "2026-03-28T01:00:00Z",
        "2026-03-29T01:00:00Z");
    /* 25 October is day 212: 212 mod 3 = 2, jun. */
    SEG(&s, NULL, 0, "2026-10-25T01:00:00Z", "jun", "2026-10-25T01:00:00Z",
        "2026-10-26T01:00:00Z");
}

TEST(handoff_in_skipped_and_repeated_hour)
{
    struct oncall_rotation r;
    /* Hand-off at 02:30 local. On 29 March 02:30 does not exist: the
     * hand-off happens at 01:30Z (03:30 CEST); on 25 October it exists
     * twice and happens at the first (00:30Z, 02:30 CEST). */
    rotation(&r, "Europe/Amsterdam", "alice,bob", 1, H(2) + 1800, 2026, 3, 28);
    SEG(&r, NULL, 0, "2026-03-28T12:00:00Z", "alice", "2026-03-28T01:30:00Z",
        "2026-03-29T01:30:00Z");
    SEG(&r, NULL, 0, "2026-03-29T12:00:00Z", "bob", "2026-03-29T01:30:00Z",
        "2026-03-30T00:30:00Z");
    SEG(&r, NULL, 0, "2026-10-25T00:30:00Z", "bob", "2026-10-25T00:30:00Z",
        "2026-10-26T01:30:00Z");
}

TEST(overrides)
{
    struct oncall_rotation r;
    rotation(&r, "Europe/Amsterdam", "alice,bob,carol", 1, H(9), 2026, 3, 27);
    /* bob's shift is 28 March 08:00Z -> 29 March 07:00Z. */
    struct oncall_override o[] = {
        /* 0: dave covers the middle of bob's shift */
        {"dave", utc("2026-03-28T12:00:00Z"), utc("2026-03-28T18:00:00Z")},
        /* 1: erin covers across the hand-off to carol */
        {"erin", utc("2026-03-28T20:00:00Z"), utc("2026-03-29T10:00:00Z")},
    };
    SEG(&r, o, 2, "2026-03-28T10:00:00Z", "bob", "2026-03-28T08:00:00Z",
        "2026-03-28T12:00:00Z");
    SEG(&r, o, 2, "2026-03-28T12:00:00Z", "dave", "2026-03-28T12:00:00Z",
        "2026-03-28T18:00:00Z");
    SEG(&r, o, 2, "2026-03-28T19:00:00Z", "bob", "2026-03-28T18:00:00Z",
        "2026-03-28T20:00:00Z");
    SEG(&r, o, 2, "2026-03-29T08:00:00Z", "erin", "2026-03-28T20:00:00Z",
        "2026-03-29T10:00:00Z");
    SEG(&r, o, 2, "2026-03-29T10:00:00Z", "carol", "2026-03-29T10:00:00Z",
        "2026-03-30T07:00:00Z");

    struct oncall_segment s;
    struct im_err e;
    REQUIRE(oncall_at(&r, o, 2, utc("2026-03-28T13:00:00Z"), &s, &e) == 0);
    CHECK_EQ_INT(s.override_index, 0);
    CHECK_EQ_INT(s.shift_index, -1);
    REQUIRE(oncall_at(&r, o, 2, utc("2026-03-28T19:00:00Z"), &s, &e) == 0);
    CHECK_EQ_INT(s.override_index, -1);
    CHECK_EQ_INT(s.shift_index, 1);
}

TEST(overrides_nested_and_tied)
{
    struct oncall_rotation r;
    rotation(&r, "Europe/Amsterdam", "alice,bob,carol", 1, H(9), 2026, 3, 27);
    struct oncall_override o[] = {
        /* 0: frank covers a whole week */
        {"frank", utc("2026-03-27T00:00:00Z"), utc("2026-04-03T00:00:00Z")},
        /* 1: inside it, grace for an hour (began later: wins) */
        {"grace", utc("2026-03-28T12:00:00Z"), utc("2026-03-28T13:00:00Z")},
        /* 2, 3: same start; the later in the list wins */
        {"heidi", utc("2026-03-30T12:00:00Z"), utc("2026-03-30T14:00:00Z")},
        {"ivan", utc("2026-03-30T12:00:00Z"), utc("2026-03-30T13:00:00Z")},
        /* 4: hidden under frank's week except where it sticks out */
        {"judy", utc("2026-03-26T00:00:00Z"), utc("2026-03-27T06:00:00Z")},
    };
    SEG(&r, o, 5, "2026-03-28T11:00:00Z", "frank", "2026-03-27T00:00:00Z",
        "2026-03-28T12:00:00Z");
    SEG(&r, o, 5, "2026-03-28T12:30:00Z", "grace", "2026-03-28T12:00:00Z",
        "2026-03-28T13:00:00Z");
    SEG(&r, o, 5, "2026-03-28T14:00:00Z", "frank", "2026-03-28T13:00:00Z",
        "2026-03-30T12:00:00Z");
    SEG(&r, o, 5, "2026-03-30T12:10:00Z", "ivan", "2026-03-30T12:00:00Z",
        "2026-03-30T13:00:00Z");
    SEG(&r, o, 5, "2026-03-30T13:10:00Z", "heidi", "2026-03-30T13:00:00Z",
        "2026-03-30T14:00:00Z");
    SEG(&r, o, 5, "2026-03-30T15:00:00Z", "frank", "2026-03-30T14:00:00Z",
        "2026-04-03T00:00:00Z");
    /* judy began before frank: frank wins from his start. Before the
     * rotation's first hand-off, an override still puts someone on call. */
    SEG(&r, o, 5, "2026-03-26T10:00:00Z", "judy", "2026-03-26T00:00:00Z",
        "2026-03-27T00:00:00Z");
    /* After frank's week: back to the rotation (3 April 09:00 CEST is
     * shift 7, bob; the 2 April shift, alice, runs until then). */
    SEG(&r, o, 5, "2026-04-03T00:00:00Z", "alice", "2026-04-03T00:00:00Z",
        "2026-04-03T07:00:00Z");
}

/* Walks from 20 October to 20 November with oncall_next; counts the
 * segments after the first, and the rotation's 25-hour shifts. */
static void
walk(const struct oncall_rotation *r, const struct oncall_override *o, size_t n,
     int *count, int *long_shifts)
{
    struct oncall_segment s, next;
    struct im_err e;
    *count = *long_shifts = 0;
    REQUIRE(oncall_at(r, o, n, utc("2026-10-20T12:00:00Z"), &s, &e) == 0);
    CHECK_EQ_INT(s.start_ms, utc("2026-10-20T12:00:00Z"));
    while (s.end_ms < utc("2026-11-20T00:00:00Z")) {
        REQUIRE(oncall_next(r, o, n, &s, &next, &e) == 0);
        CHECK_EQ_INT(next.start_ms, s.end_ms); /* no gap, no overlap */
        CHECK(next.end_ms > next.start_ms);
        CHECK(strcmp(next.person, s.person) != 0 || next.override_index >= 0 ||
              s.override_index >= 0);
        if (next.override_index < 0 &&
            next.end_ms - next.start_ms == 25 * 3600000u)
            (*long_shifts)++;
        s = next;
        (*count)++;
    }
}

TEST(next_walks_contiguous_segments)
{
    struct oncall_rotation r;
    rotation(&r, "America/New_York", "ann,ben,cat,dan", 1, H(8), 2026, 10, 20);
    int count, long_shifts;
    walk(&r, NULL, 0, &count, &long_shifts);
    CHECK_EQ_INT(count, 30);      /* 21 October .. 19 November */
    CHECK_EQ_INT(long_shifts, 1); /* 1 November, 08:00 EDT -> 08:00 EST */

    struct oncall_override o[] = {
        {"zed", utc("2026-10-30T15:00:00Z"), utc("2026-11-02T15:00:00Z")},
        {"yan", utc("2026-11-01T00:00:00Z"), utc("2026-11-01T04:00:00Z")},
    };
    walk(&r, o, 2, &count, &long_shifts);
    /* zed swallows the shifts of 31 October and 1 November and cuts those
     * of 30 October and 2 November; yan splits zed in three. */
    CHECK_EQ_INT(count, 30 - 2 + 3);
    CHECK_EQ_INT(long_shifts, 0);
}

TEST(backup)
{
    struct oncall_rotation r;
    rotation(&r, "Europe/Amsterdam", "alice,bob,carol", 1, H(9), 2026, 3, 27);
    char who[PERSON_MAX + 1] = "";
    struct im_err e;
    CHECK_EQ_INT(
        oncall_backup(&r, NULL, 0, utc("2026-03-28T12:00:00Z"), who, &e), 0);
    CHECK_EQ_STR(who, "carol"); /* bob is on call: carol is next */
    /* carol covers bob's shift: the backup skips her, and bob. */
    struct oncall_override o[] = {
        {"carol", utc("2026-03-28T10:00:00Z"), utc("2026-03-28T14:00:00Z")}};
    CHECK_EQ_INT(oncall_backup(&r, o, 1, utc("2026-03-28T12:00:00Z"), who, &e),
                 0);
    CHECK_EQ_STR(who, "alice");
    /* A name twice in the rotation: bob's shift, carol covers it; the
     * next "other" person is bob again, who is not his own backup. */
    struct oncall_rotation twice;
    rotation(&twice, "Europe/Amsterdam", "bob,carol,bob", 1, H(9), 2026, 3, 27);
    struct oncall_override cover[] = {
        {"carol", utc("2026-03-27T10:00:00Z"), utc("2026-03-27T14:00:00Z")}};
    strcpy(who, "untouched");
    CHECK_EQ_INT(
        oncall_backup(&twice, cover, 1, utc("2026-03-27T12:00:00Z"), who, &e),
        IM_ENOTFOUND);
    CHECK_EQ_STR(who, "untouched");
    struct oncall_rotation solo;
    rotation(&solo, "UTC", "alice", 7, 0, 2026, 1, 5);
    strcpy(who, "untouched");
    CHECK_EQ_INT(
        oncall_backup(&solo, NULL, 0, utc("2026-03-28T12:00:00Z"), who, &e),
        IM_ENOTFOUND);
    CHECK_EQ_STR(who, "untouched");
    CHECK_EQ_INT(
        oncall_backup(NULL, o, 1, utc("2026-03-28T12:00:00Z"), who, &e),
        IM_ENOTFOUND);
}

TEST(bad_inputs)
{
    struct oncall_rotation good, r;
    struct oncall_segment s = {.person = "untouched"};
    struct im_err e;
    uint64_t at = utc("2026-06-01T00:00:00Z");
    rotation(&good, "Europe/Amsterdam", "alice,bob,carol", 1, H(9), 2026, 3,
             27);

    r = good;
    r.people_count = 0;
    CHECK_EQ_INT(oncall_at(&r, NULL, 0, at, &s, &e), IM_EINVAL);
    CHECK_EQ_STR(e.msg, "rotation.people: empty list (a rotation needs at "
                        "least one person)");
    r = good;
    r.people[2][0] = '\0';
    CHECK_EQ_INT(oncall_at(&r, NULL, 0, at, &s, &e), IM_EINVAL);
    CHECK_EQ_STR(e.msg, "rotation.people[2]: empty name");
    r = good;
    strcpy(r.people[1], "bo\tb");
    CHECK_EQ_INT(oncall_at(&r, NULL, 0, at, &s, &e), IM_EINVAL);
    CHECK_EQ_STR(e.msg, "rotation.people[1]: control character in name");
    r = good;
    strcpy(r.people[1], "b\xff");
    CHECK_EQ_INT(oncall_at(&r, NULL, 0, at, &s, &e), IM_EINVAL);
    r = good;
    r.people_count = ROTATION_PEOPLE_MAX + 1;
    CHECK_EQ_INT(oncall_at(&r, NULL, 0, at, &s, &e), IM_ETOOBIG);
    r = good;
    r.length_days = 0;
    CHECK_EQ_INT(oncall_at(&r, NULL, 0, at, &s, &e), IM_EINVAL);
    CHECK(strstr(e.msg, "rotation.length:") == e.msg);
    r.length_days = ROTATION_DAYS_MAX + 1;
    CHECK_EQ_INT(oncall_at(&r, NULL, 0, at, &s, &e), IM_EINVAL);
    r = good;
    r.handoff_s = TZ_DAY_S;
    CHECK_EQ_INT(oncall_at(&r, NULL, 0, at, &s, &e), IM_EINVAL);
    CHECK_EQ_STR(e.msg, "rotation.handoff: not a time of day");
    r = good;
    r.start = (struct oncall_date){2026, 2, 29};
    CHECK_EQ_INT(oncall_at(&r, NULL, 0, at, &s, &e), IM_EINVAL);
    CHECK(strstr(e.msg, "rotation.start:") == e.msg);
    r.start = (struct oncall_date){1969, 12, 31};
    CHECK_EQ_INT(oncall_at(&r, NULL, 0, at, &s, &e), IM_EINVAL);
    r = good;
    r.tz = NULL;
    CHECK_EQ_INT(oncall_at(&r, NULL, 0, at, &s, &e), IM_EINVAL);
    CHECK_EQ_STR(e.msg, "rotation.zone: no time zone");

    struct oncall_override o[2] = {
        {"dave", utc("2026-06-01T00:00:00Z"), utc("2026-06-02T00:00:00Z")},
        {"erin", utc("2026-06-02T00:00:00Z"), utc("2026-06-02T00:00:00Z")},
    };
    CHECK_EQ_INT(oncall_at(&good, o, 2, at, &s, &e), IM_EINVAL);
    CHECK_EQ_STR(e.msg, "overrides[1].until: not after from");
    o[1].until_ms = o[1].from_ms + 1;
    o[1].person[0] = '\0';
    CHECK_EQ_INT(oncall_at(&good, o, 2, at, &s, &e), IM_EINVAL);
    CHECK_EQ_STR(e.msg, "overrides[1].person: empty name");
    CHECK_EQ_INT(oncall_at(&good, o, OVERRIDES_MAX + 1, at, &s, &e),
                 IM_ETOOBIG);
    /* No rotation, no override in force. */
    CHECK_EQ_INT(oncall_at(NULL, o, 1, utc("2026-07-01T00:00:00Z"), &s, &e),
                 IM_ENOTFOUND);
    /* Past year 9999. */
    CHECK_EQ_INT(oncall_at(&good, NULL, 0, UINT64_MAX / 2, &s, &e), IM_EINVAL);
    CHECK_EQ_STR(s.person, "untouched");
}

static void
close_zones(void)
{
    for (size_t i = 0; i < zones_count; i++)
        tz_close(zones[i]);
}

TEST_MAIN(RUN(amsterdam_daily_across_dst); RUN(new_york_weekly_across_dst);
          RUN(sydney_and_singapore); RUN(handoff_in_skipped_and_repeated_hour);
          RUN(overrides); RUN(overrides_nested_and_tied);
          RUN(next_walks_contiguous_segments); RUN(backup); RUN(bad_inputs);
          close_zones())
