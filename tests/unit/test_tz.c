/* Unit tests for coord/tz: zone names that must be refused (and how), the
 * offset at an instant, local <-> UTC across both DST changes in both
 * hemispheres, the gap and overlap rules, a date far past the zone file's
 * explicit transitions, the civil calendar arithmetic against the C
 * library's timegm, and concurrent use from several threads. */
#include "test.h"

#include <pthread.h>

#include "clock.h"
#include "tz.h"

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

static struct tz *
zone(const char *name)
{
    struct tz *tz = NULL;
    struct im_err e;
    if (tz_open(name, &tz, &e) != 0) {
        fprintf(stderr, "tz_open %s: %s\n", name, im_errmsg(&e));
        abort();
    }
    return tz;
}

TEST(names_refused)
{
    static const struct {
        const char *name;
        int code;
    } cases[] = {
        {"", IM_EINVAL},
        {"Europe/Amsterdm", IM_ENOTFOUND},
        {"Mars/Olympus_Mons", IM_ENOTFOUND},
        {"ABC3", IM_EINVAL},                       /* a POSIX rule */
        {"CET-1CEST,M3.5.0,M10.5.0/3", IM_EINVAL}, /* a POSIX rule */
        {"+02:00", IM_EINVAL},                     /* a fixed offset */
        {"/usr/share/zoneinfo/UTC", IM_EINVAL},    /* a path */
        {"../zoneinfo/UTC", IM_EINVAL},
        {"Europe/../UTC", IM_EINVAL},
        {"Europe/", IM_EINVAL},
        {"Europe//Amsterdam", IM_EINVAL},
        {"Europe/Amsterdam ", IM_EINVAL},
        {"EST5EDT", IM_EINVAL},
        {"Europe/Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
         IM_ETOOBIG},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct tz *tz = (struct tz *)&tz; /* must stay untouched */
        struct tz *before = tz;
        struct im_err e;
        im_errclear(&e);
        int rv = tz_open(cases[i].name, &tz, &e);
        if (rv != cases[i].code)
            fprintf(stderr, "  case '%s': %d (%s)\n", cases[i].name, rv,
                    im_errmsg(&e));
        CHECK_EQ_INT(rv, cases[i].code);
        CHECK(tz == before);
        CHECK(e.msg[0] != '\0');
    }
    struct im_err e;
    CHECK_EQ_INT(tz_open(NULL, &(struct tz *){NULL}, &e), IM_EINVAL);
}

TEST(names_accepted)
{
    const char *ok[] = {"UTC",
                        "Etc/UTC",
                        "Etc/GMT+5",
                        "Europe/Amsterdam",
                        "America/Argentina/ComodRivadavia",
                        "America/Port-au-Prince"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct tz *tz = NULL;
        struct im_err e;
        CHECK_EQ_INT(tz_open(ok[i], &tz, &e), 0);
        REQUIRE(tz != NULL);
        CHECK_EQ_STR(tz_name(tz), ok[i]);
        tz_close(tz);
    }
    struct tz *g = zone("Etc/GMT+5"); /* POSIX sign: five hours west */
    CHECK_EQ_INT(tz_offset_s(g, 0), -5 * 3600);
    tz_close(g);
    tz_close(NULL);
}

struct local_case {
    const char *zone;
    struct tz_civil local;
    const char *utc;
};

TEST(local_to_utc_and_back)
{
    static const struct local_case cases[] = {
        /* Europe/Amsterdam: CET +1, CEST +2 from 29 March to 25 October. */
        {"Europe/Amsterdam", {2026, 3, 28, 9 * 3600}, "2026-03-28T08:00:00Z"},
        {"Europe/Amsterdam", {2026, 3, 29, 9 * 3600}, "2026-03-29T07:00:00Z"},
        {"Europe/Amsterdam", {2026, 10, 24, 9 * 3600}, "2026-10-24T07:00:00Z"},
        {"Europe/Amsterdam", {2026, 10, 25, 9 * 3600}, "2026-10-25T08:00:00Z"},
        /* America/New_York: EST -5, EDT -4 from 8 March to 1 November. */
        {"America/New_York", {2026, 3, 2, 9 * 3600}, "2026-03-02T14:00:00Z"},
        {"America/New_York", {2026, 3, 9, 9 * 3600}, "2026-03-09T13:00:00Z"},
        {"America/New_York", {2026, 11, 2, 9 * 3600}, "2026-11-02T14:00:00Z"},
        /* Australia/Sydney: the other way round; AEDT +11 until 5 April,
         * AEST +10 until 4 October. The UTC date is the day before. */
        {"Australia/Sydney", {2026, 4, 4, 9 * 3600}, "2026-04-03T22:00:00Z"},
        {"Australia/Sydney", {2026, 4, 5, 9 * 3600}, "2026-04-04T23:00:00Z"},
        {"Australia/Sydney", {2026, 10, 3, 9 * 3600}, "2026-10-02T23:00:00Z"},
        {"Australia/Sydney", {2026, 10, 4, 9 * 3600}, "2026-10-03T22:00:00Z"},
        /* Asia/Singapore: +8 all year. */
        {"Asia/Singapore", {2026, 3, 29, 9 * 3600}, "2026-03-29T01:00:00Z"},
        {"Asia/Singapore", {2026, 10, 25, 9 * 3600}, "2026-10-25T01:00:00Z"},
        /* Past 2037, the last explicit transition of a "fat" zone file:
         * only the file's footer rule knows these. */
        {"Europe/Amsterdam", {2040, 3, 24, 9 * 3600}, "2040-03-24T08:00:00Z"},
        {"Europe/Amsterdam", {2040, 3, 25, 9 * 3600}, "2040-03-25T07:00:00Z"},
        {"America/New_York", {2100, 7, 1, 12 * 3600}, "2100-07-01T16:00:00Z"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct tz *tz = zone(cases[i].zone);
        uint64_t ms = 0;
        CHECK_EQ_INT(tz_from_local(tz, &cases[i].local, &ms), 0);
        if (ms != utc(cases[i].utc))
            fprintf(stderr, "  case %zu (%s)\n", i, cases[i].zone);
        CHECK_EQ_INT(ms, utc(cases[i].utc));
        struct tz_civil back;
        tz_to_local(tz, ms, &back);
        CHECK_EQ_INT(back.year, cases[i].local.year);
        CHECK_EQ_INT(back.month, cases[i].local.month);
        CHECK_EQ_INT(back.day, cases[i].local.day);
        CHECK_EQ_INT(back.sec_of_day, cases[i].local.sec_of_day);
        tz_close(tz);
    }
}

TEST(gap_and_overlap)
{
    struct tz *ams = zone("Europe/Amsterdam");
    struct tz *nyc = zone("America/New_York");
    struct tz *syd = zone("Australia/Sydney");
    uint64_t ms;
    struct tz_civil c;

    /* 02:30 does not exist on 29 March in Amsterdam (02:00 -> 03:00): read
     * with the offset before the change, it is 01:30Z, shown as 03:30. */
    CHECK_EQ_INT(tz_from_local(ams, &(struct tz_civil){2026, 3, 29, 9000}, &ms),
                 0);
    CHECK_EQ_INT(ms, utc("2026-03-29T01:30:00Z"));
    tz_to_local(ams, ms, &c);
    CHECK_EQ_INT(c.sec_of_day, 3 * 3600 + 1800);
    /* 02:30 happens twice on 25 October: the first, still in CEST. */
    CHECK_EQ_INT(
        tz_from_local(ams, &(struct tz_civil){2026, 10, 25, 9000}, &ms), 0);
    CHECK_EQ_INT(ms, utc("2026-10-25T00:30:00Z"));
    /* New York skips 02:00-03:00 on 8 March, repeats 01:00-02:00 on
     * 1 November. */
    CHECK_EQ_INT(tz_from_local(nyc, &(struct tz_civil){2026, 3, 8, 9000}, &ms),
                 0);
    CHECK_EQ_INT(ms, utc("2026-03-08T07:30:00Z"));
    CHECK_EQ_INT(tz_from_local(nyc, &(struct tz_civil){2026, 11, 1, 5400}, &ms),
                 0);
    CHECK_EQ_INT(ms, utc("2026-11-01T05:30:00Z"));
    /* Sydney skips 02:00-03:00 on 4 October, repeats 02:00-03:00 on
     * 5 April. */
    CHECK_EQ_INT(tz_from_local(syd, &(struct tz_civil){2026, 10, 4, 9000}, &ms),
                 0);
    CHECK_EQ_INT(ms, utc("2026-10-03T16:30:00Z")); /* 02:30 AEST = 03:30 AEDT */
    CHECK_EQ_INT(tz_from_local(syd, &(struct tz_civil){2026, 4, 5, 9000}, &ms),
                 0);
    CHECK_EQ_INT(ms, utc("2026-04-04T15:30:00Z")); /* 02:30 AEDT, the first */
    tz_close(ams);
    tz_close(nyc);
    tz_close(syd);
}

TEST(bad_local_times)
{
    struct tz *tz = zone("UTC");
    uint64_t ms = 42;
    const struct tz_civil bad[] = {
        {2026, 2, 29, 0}, /* not a leap year */
        {2026, 13, 1, 0}, {2026, 0, 1, 0},     {2026, 4, 31, 0},
        {2026, 1, 1, -1}, {2026, 1, 1, 86400}, {1969, 12, 31, 0},
        {10000, 1, 1, 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ_INT(tz_from_local(tz, &bad[i], &ms), IM_EINVAL);
        CHECK_EQ_INT(ms, 42);
    }
    CHECK_EQ_INT(tz_from_local(tz, &(struct tz_civil){2024, 2, 29, 0}, &ms), 0);
    tz_close(tz);
    /* 1970-01-01 00:30 in Amsterdam is before the epoch. */
    tz = zone("Europe/Amsterdam");
    CHECK_EQ_INT(tz_from_local(tz, &(struct tz_civil){1970, 1, 1, 1800}, &ms),
                 IM_EINVAL);
    tz_close(tz);
}

TEST(civil_days_against_timegm)
{
    uint64_t seed = test_seed_;
    for (int i = 0; i < 20000; i++) {
        int64_t days = (int64_t)(test_rand(&seed) % 2932897u); /* to 9999 */
        int y, m, d;
        tz_civil_from_days(days, &y, &m, &d);
        CHECK_EQ_INT(tz_days_from_civil(y, m, d), days);
        CHECK(tz_date_valid(y, m, d));
        struct tm tm;
        time_t t = (time_t)days * 86400;
        gmtime_r(&t, &tm);
        CHECK_EQ_INT(tm.tm_year + 1900, y);
        CHECK_EQ_INT(tm.tm_mon + 1, m);
        CHECK_EQ_INT(tm.tm_mday, d);
        if (test_failed_)
            return;
    }
    CHECK_EQ_INT(tz_days_from_civil(1970, 1, 1), 0);
    CHECK_EQ_INT(tz_days_from_civil(1969, 12, 31), -1);
    CHECK(!tz_date_valid(1900, 2, 29));
    CHECK(tz_date_valid(2000, 2, 29));
}

TEST(format_local)
{
    struct tz *tz = zone("America/New_York");
    char out[TZ_LOCAL_TEXT_MAX];
    tz_fmt_local(tz, utc("2026-11-25T14:00:00Z"), out);
    CHECK_EQ_STR(out, "2026-11-25 09:00");
    tz_close(tz);
}

/* Opening, converting and closing from several threads at once: GLib's
 * zone cache and our conversions must agree and race on nothing (TSan). */
struct thread_arg {
    int failures;
};

static void *
worker(void *p)
{
    struct thread_arg *a = p;
    const char *zones[] = {"Europe/Amsterdam", "America/New_York",
                           "Australia/Sydney", "Asia/Singapore"};
    const uint64_t want[] = {
        utc("2026-03-29T07:00:00Z"), utc("2026-03-29T13:00:00Z"),
        utc("2026-03-28T22:00:00Z"), utc("2026-03-29T01:00:00Z")};
    for (int i = 0; i < 400; i++) {
        struct tz *tz = NULL;
        struct im_err e;
        if (tz_open(zones[i % 4], &tz, &e) != 0) {
            a->failures++;
            continue;
        }
        uint64_t ms = 0;
        if (tz_from_local(tz, &(struct tz_civil){2026, 3, 29, 9 * 3600}, &ms) !=
                0 ||
            ms != want[i % 4])
            a->failures++;
        tz_close(tz);
    }
    return NULL;
}

TEST(threads)
{
    pthread_t th[4];
    struct thread_arg args[4];
    memset(args, 0, sizeof args);
    for (int i = 0; i < 4; i++)
        REQUIRE(pthread_create(&th[i], NULL, worker, &args[i]) == 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(args[i].failures, 0);
    }
}

TEST_MAIN(RUN(names_refused); RUN(names_accepted); RUN(local_to_utc_and_back);
          RUN(gap_and_overlap); RUN(bad_local_times);
          RUN(civil_days_against_timegm); RUN(format_local); RUN(threads))
