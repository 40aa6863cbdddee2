/* Unit tests for lib/clock: RFC 3339 formatting and parsing (round trips,
 * offsets, fractions, calendar checks, leap seconds, malformed input that
 * must be refused and leave the output alone), durations ("250ms" .. "2w",
 * malformed and too big), duration formatting, and the two clocks. */
#include "test.h"

#include <time.h>

#include "clock.h"
#include "err.h"

#define SENTINEL 0x5555555555555555ULL

TEST(format_rfc3339)
{
    char out[CLOCK_RFC3339_MAX];

    clock_fmt_rfc3339(0, out);
    CHECK_EQ_STR(out, ""); /* 0 means none */
    clock_fmt_rfc3339(1, out);
    CHECK_EQ_STR(out, "1970-01-01T00:00:00.001Z");
    clock_fmt_rfc3339(1700000000123ULL, out);
    CHECK_EQ_STR(out, "2023-11-14T22:13:20.123Z");
    clock_fmt_rfc3339(1709208000000ULL, out);
    CHECK_EQ_STR(out, "2024-02-29T12:00:00.000Z");
    clock_fmt_rfc3339(253402300799999ULL, out);
    CHECK_EQ_STR(out, "9999-12-31T23:59:59.999Z");

    /* Past year 9999 and past what gmtime can represent: bounded output,
     * never an overflow of out (ASan checks). */
    clock_fmt_rfc3339(253402300800000ULL, out);
    CHECK(strlen(out) < CLOCK_RFC3339_MAX);
    clock_fmt_rfc3339(UINT64_MAX, out);
    CHECK(strlen(out) < CLOCK_RFC3339_MAX);
}

struct parse_case {
    const char *text;
    uint64_t ms;
};

static const struct parse_case parse_ok[] = {
    {"2023-11-14T22:13:20.123Z", 1700000000123ULL},
    {"2023-11-14T22:13:20Z", 1700000000000ULL},
    {"2023-11-14t22:13:20z", 1700000000000ULL},
    {"2023-11-14 22:13:20Z", 1700000000000ULL},
    {"1970-01-01T00:00:00.001Z", 1},
    {"1970-01-01T00:00:00Z", 0},
    {"9999-12-31T23:59:59.999Z", 253402300799999ULL},
    /* Fractions: any number of digits, milliseconds kept, rest cut. */
    {"2023-11-14T22:13:20.1Z", 1700000000100ULL},
    {"2023-11-14T22:13:20.12Z", 1700000000120ULL},
    {"2023-11-14T22:13:20.000Z", 1700000000000ULL},
    {"2023-11-14T22:13:20.123456Z", 1700000000123ULL},
    {"2023-11-14T22:13:20.123999999Z", 1700000000123ULL},
    /* Offsets: the same instant written in other zones. */
    {"2023-11-14T23:13:20.123+01:00", 1700000000123ULL},
    {"2023-11-14T17:13:20.123-05:00", 1700000000123ULL},
    {"2023-11-15T03:43:20.123+05:30", 1700000000123ULL},
    {"2023-11-14T22:13:20.123+00:00", 1700000000123ULL},
    {"2023-11-14T22:13:20.123-00:00", 1700000000123ULL},
    {"2023-11-15T12:13:20+14:00", 1700000000000ULL},
    {"2023-11-14T00:13:20-22:00", 1700000000000ULL},
    /* An offset that crosses a year boundary. */
    {"2024-01-01T00:30:00+01:00", 1704065400000ULL},
    /* Calendar: leap days. */
    {"2024-02-29T12:00:00Z", 1709208000000ULL},
    {"2000-02-29T00:00:00Z", 951782400000ULL},
    /* Leap seconds (23:59:60 UTC) read as the next second. */
    {"2016-12-31T23:59:60Z", 1483228800000ULL},
    {"2016-12-31T23:59:60.5Z", 1483228800500ULL},
    {"2017-01-01T00:59:60+01:00", 1483228800000ULL},
    {"2016-12-31T18:59:60-05:00", 1483228800000ULL},
};

static const char *const parse_bad[] = {
    "",
    "2023",
    "2023-11-14",
    "2023-11-14T",
    "2023-11-14T22:13",
    "2023-11-14T22:13:20",      /* no zone */
    "2023-11-14T22:13:20.123",  /* no zone */
    "2023-11-14T22:13:20.Z",    /* empty fraction */
    "2023-11-14T22:13:20,123Z", /* comma fraction: not RFC 3339 */
    "2023-1-14T22:13:20Z",
    "2023-11-4T22:13:20Z",
    "2023-11-14T2:13:20Z",
    "23-11-14T22:13:20Z",
    "02023-11-14T22:13:20Z",
    "+2023-11-14T22:13:20Z",
    "2023/11/14T22:13:20Z",
    "2023-11-14X22:13:20Z",
    "2023-11-14T22.13.20Z",
    "2023-13-01T00:00:00Z",
    "2023-00-10T00:00:00Z",
    "2023-11-00T00:00:00Z",
    "2023-11-32T00:00:00Z",
    "2023-11-31T00:00:00Z", /* November has 30 days */
    "2023-02-29T00:00:00Z", /* not a leap year */
    "2100-02-29T00:00:00Z", /* century, not a leap year */
    "2023-04-31T00:00:00Z",
    "2023-11-14T24:00:00Z",
    "2023-11-14T23:60:00Z",
    "2023-11-14T23:59:61Z",
    "2023-11-14T12:00:60Z",      /* :60 away from a leap second */
    "2016-12-31T23:59:60+01:00", /* 22:59:60 UTC */
    "2023-11-14T22:13:20+24:00",
    "2023-11-14T22:13:20+01:60",
    "2023-11-14T22:13:20+0100",
    "2023-11-14T22:13:20+1:00",
    "2023-11-14T22:13:20+01",
    "2023-11-14T22:13:20 +01:00",
    "2023-11-14T22:13:20UTC",
    "2023-11-14T22:13:20Zx",
    "2023-11-14T22:13:20Z ",
    " 2023-11-14T22:13:20Z",
    "2023-11-14T22:13:20ZZ",
    "1969-12-31T23:59:59Z",      /* before the epoch */
    "1970-01-01T00:00:00+00:01", /* one minute before the epoch */
    "0001-01-01T00:00:00Z",
    "２０２３-11-14T22:13:20Z",
    "2023-11-14T22:13:20\xef\xbc\xba", /* fullwidth Z */
};

TEST(parse_rfc3339)
{
    for (size_t i = 0; i < sizeof parse_ok / sizeof parse_ok[0]; i++) {
        uint64_t ms = SENTINEL;
        int rv = clock_parse_rfc3339(parse_ok[i].text, &ms);
        if (rv != 0 || ms != parse_ok[i].ms)
            fprintf(stderr, "'%s': rv %d ms %llu, want %llu\n",
                    parse_ok[i].text, rv, (unsigned long long)ms,
                    (unsigned long long)parse_ok[i].ms);
        CHECK_EQ_INT(rv, 0);
        CHECK(ms == parse_ok[i].ms);
    }
}

TEST(parse_rfc3339_refuses_malformed)
{
    for (size_t i = 0; i < sizeof parse_bad / sizeof parse_bad[0]; i++) {
        uint64_t ms = SENTINEL;
        int rv = clock_parse_rfc3339(parse_bad[i], &ms);
        if (rv != IM_EINVAL)
            fprintf(stderr, "'%s': rv %d ms %llu, want IM_EINVAL\n",
                    parse_bad[i], rv, (unsigned long long)ms);
        CHECK_EQ_INT(rv, IM_EINVAL);
        /* Outputs are written only on success. */
        CHECK(ms == SENTINEL);
    }
}

TEST(parse_rfc3339_truncated_prefixes)
{
    /* Every proper prefix of a valid timestamp is refused (and never read
     * past its end: ASan). */
    const char *full = "2023-11-14T23:13:20.123+01:00";
    char buf[64];
    for (size_t n = 0; n < strlen(full); n++) {
        uint64_t ms = SENTINEL;
        memcpy(buf, full, n);
        buf[n] = '\0';
        int rv = clock_parse_rfc3339(buf, &ms);
        if (rv != IM_EINVAL)
            fprintf(stderr, "prefix '%s' accepted\n", buf);
        CHECK_EQ_INT(rv, IM_EINVAL);
        CHECK(ms == SENTINEL);
    }
}

TEST(rfc3339_round_trip)
{
    uint64_t rng = test_seed_ | 1;
    char out[CLOCK_RFC3339_MAX];
    const uint64_t max_ms = 253402300799999ULL; /* 9999-12-31T23:59:59.999Z */
    const uint64_t fixed[] = {
        1,     999, 1000, 86399999, 86400000, 951782400000ULL, 1709208000000ULL,
        max_ms};

    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0] + 20000; i++) {
        uint64_t ms = i < sizeof fixed / sizeof fixed[0]
                          ? fixed[i]
                          : 1 + test_rand(&rng) % max_ms;
        uint64_t back = 0;
        clock_fmt_rfc3339(ms, out);
        int rv = clock_parse_rfc3339(out, &back);
        if (rv != 0 || back != ms) {
            fprintf(stderr, "round trip %llu -> '%s' -> %llu (rv %d)\n",
                    (unsigned long long)ms, out, (unsigned long long)back, rv);
            CHECK(0);
            break;
        }
    }
}

TEST(parse_duration)
{
    static const struct {
        const char *text;
        uint64_t ms;
    } ok[] = {
        {"250ms", 250},
        {"30s", 30000},
        {"15m", 900000},
        {"12h", 43200000},
        {"7d", 604800000},
        {"2w", 1209600000},
        {"0s", 0},
        {"0ms", 0},
        {"1ms", 1},
        {"007d", 604800000},
        {"90s", 90000},
        /* The ceiling is 100 years of 366 days, inclusive. */
        {"36600d", 3162240000000ULL},
        {"3162240000000ms", 3162240000000ULL},
        {"5228w", 5228ULL * 604800000ULL},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t ms = SENTINEL;
        int rv = clock_parse_duration(ok[i].text, &ms);
        if (rv != 0 || ms != ok[i].ms)
            fprintf(stderr, "'%s': rv %d ms %llu\n", ok[i].text, rv,
                    (unsigned long long)ms);
        CHECK_EQ_INT(rv, 0);
        CHECK(ms == ok[i].ms);
    }
}

TEST(parse_duration_refuses_malformed_and_too_big)
{
    static const char *const bad[] = {
        "",      "s",   "ms",    "-5s",  "+5s",  " 5s",  "5 s",
        "5",     "5S",  "5M",    "5sec", "5ms ", "1.5h", "5mm",
        "0x10s", "5hm", "1h30m", "5y",   "5\n",  "١s",   "5ｓ",
    };
    static const char *const too_big[] = {
        "36601d",
        "3162240000001ms",
        "5229w",
        "878401h",
        "18446744073709551615ms",
        "18446744073709551616ms", /* past uint64: strtoull saturates */
        "99999999999999999999999999s",
    };
    uint64_t ms;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ms = SENTINEL;
        int rv = clock_parse_duration(bad[i], &ms);
        if (rv != IM_EINVAL)
            fprintf(stderr, "'%s': rv %d, want IM_EINVAL\n", bad[i], rv);
        CHECK_EQ_INT(rv, IM_EINVAL);
        CHECK(ms == SENTINEL);
    }
    for (size_t i = 0; i < sizeof too_big / sizeof too_big[0]; i++) {
        ms = SENTINEL;
        int rv = clock_parse_duration(too_big[i], &ms);
        if (rv != IM_ETOOBIG)
            fprintf(stderr, "'%s': rv %d, want IM_ETOOBIG\n", too_big[i], rv);
        CHECK_EQ_INT(rv, IM_ETOOBIG);
        CHECK(ms == SENTINEL);
    }
    ms = SENTINEL;
    CHECK_EQ_INT(clock_parse_duration(NULL, &ms), IM_EINVAL);
    CHECK(ms == SENTINEL);
}

TEST(format_duration)
{
    static const struct {
        uint64_t ms;
        const char *text;
    } cases[] = {
        {0, "0ms"},
        {1, "1ms"},
        {999, "999ms"},
        {1000, "1s"},
        {1999, "1s"},
        {45000, "45s"},
        {59999, "59s"},
        {60000, "1m 00s"},
        {90000, "1m 30s"},
        {3599999, "59m 59s"},
        {3600000, "1h 00m"},
        {3720000, "1h 02m"},
        {86399999, "23h 59m"},
        {86400000, "1d 0h"},
        {3 * 86400000ULL + 4 * 3600000ULL, "3d 4h"},
        {3162240000000ULL, "36600d 0h"},
        {UINT64_MAX, "213503982334d 14h"},
    };
    char out[32];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        clock_fmt_duration(cases[i].ms, out);
        CHECK_EQ_STR(out, cases[i].text);
    }
    /* What people type comes back in the same units. */
    uint64_t ms = 0;
    CHECK_EQ_INT(clock_parse_duration("90s", &ms), 0);
    clock_fmt_duration(ms, out);
    CHECK_EQ_STR(out, "1m 30s");
}

TEST(clocks)
{
    uint64_t w = clock_wall_ms();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ref =
        (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    CHECK(w <= ref && ref - w < 1000);

    uint64_t m0 = clock_mono_ms();
    struct timespec d = {0, 30 * 1000000};
    nanosleep(&d, NULL);
    uint64_t m1 = clock_mono_ms();
    CHECK(m1 >= m0 + 30);
    CHECK(m1 - m0 < 10000);
}

TEST_MAIN(RUN(format_rfc3339); RUN(parse_rfc3339);
          RUN(parse_rfc3339_refuses_malformed);
          RUN(parse_rfc3339_truncated_prefixes); RUN(rfc3339_round_trip);
          RUN(parse_duration);
          RUN(parse_duration_refuses_malformed_and_too_big);
          RUN(format_duration); RUN(clocks))
