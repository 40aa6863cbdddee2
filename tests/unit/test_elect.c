/* Unit tests for coord/elect: each rule (service, origin, failover order
 * with plain and tiered orders, least loaded), the tie-breaks, the manager
 * and its global fallback, the exact reason sentences, determinism under
 * any order of the inputs, the longest possible reason, and every
 * inconsistent input refused with its error. */
#include "test.h"

#include "clock.h"
#include "elect.h"

#define NOW 1795600000000ULL /* 2026-11-25T09:46:40Z */

static struct tz *ams_tz, *nyc_tz;

static struct elect_site sites[SITES_MAX];
static size_t sites_count;
static struct elect_failover fo[SITES_MAX];

static uint64_t
utc(const char *rfc3339)
{
    uint64_t ms = 0;
    if (clock_parse_rfc3339(rfc3339, &ms) != 0)
        abort();
    return ms;
}

static struct elect_site *
site(const char *code, int up, uint32_t load, const char *oncall)
{
    struct elect_site *s = &sites[sites_count];
    memset(s, 0, sizeof *s);
    snprintf(s->code, sizeof s->code, "%s", code);
    s->up = up;
    s->load = load;
    s->lease_ms = 5000;
    s->last_heard_ms = up ? NOW - 1000 : NOW - 7200;
    snprintf(s->oncall.person, sizeof s->oncall.person, "%s",
             oncall ? oncall : "");
    sites_count++;
    return s;
}

/* order: "NYC,LON|SIN" = tier 0 {NYC, LON}, tier 1 {SIN}. */
static void
failover(struct elect_site *s, const char *order)
{
    struct elect_failover *f = &fo[s - sites];
    memset(f, 0, sizeof *f);
    uint8_t tier = 0;
    const char *p = order;
    while (*p) {
        size_t n = strcspn(p, ",|");
        memcpy(f->sites[f->sites_count], p, n);
        f->sites[f->sites_count][n] = '\0';
        f->tier[f->sites_count++] = tier;
        p += n;
        if (*p == '|')
            tier++;
        if (*p)
            p++;
    }
    s->failover = f;
}

static void
reset(void)
{
    sites_count = 0;
    memset(sites, 0, sizeof sites);
}

static struct elect_inputs
inputs(const char *origin, const char *service)
{
    static struct elect_service map[] = {{"payments", "NYC"}, {"dns", "LON"}};
    struct elect_inputs in = {
        .origin = origin,
        .service = service,
        .sites = sites,
        .sites_count = sites_count,
        .services = map,
        .services_count = 2,
    };
    snprintf(in.global.person, sizeof in.global.person, "gina");
    in.global.until_ms = utc("2026-11-30T09:00:00Z");
    return in;
}

static int
elect(const struct elect_inputs *in, struct elect_result *r)
{
    struct im_err e;
    int rv = elect_owner(in, NOW, r, &e);
    if (rv != 0)
        fprintf(stderr, "  elect_owner: %s\n", im_errmsg(&e));
    return rv;
}

TEST(origin_owns_while_up)
{
    struct elect_result r;
    reset();
    struct elect_site *ams = site("AMS", 1, 9, "alice");
    ams->oncall.until_ms = utc("2026-11-26T08:00:00Z");
    ams->oncall.tz = ams_tz;
    site("NYC", 1, 0, "bob");
    failover(ams, "NYC");
    struct elect_inputs in = inputs("AMS", "email");
    REQUIRE(elect(&in, &r) == 0);
    CHECK_EQ_STR(r.site, "AMS");
    CHECK_EQ_STR(r.manager, "alice");
    CHECK_EQ_INT(r.rule, ELECT_RULE_ORIGIN);
    CHECK_EQ_STR(r.reason, "AMS is the origin and is up; alice is on call at "
                           "AMS until 2026-11-26 09:00 Europe/Amsterdam");
    /* No service at all: the same. */
    in.service = NULL;
    REQUIRE(elect(&in, &r) == 0);
    CHECK_EQ_STR(r.site, "AMS");
}

TEST(mapped_service_site_wins_over_origin)
{
    struct elect_result r;
    reset();
    site("AMS", 1, 0, "alice");
    site("NYC", 1, 50, "bob");
    struct elect_inputs in = inputs("AMS", "payments");
    REQUIRE(elect(&in, &r) == 0);
    CHECK_EQ_STR(r.site, "NYC");
    CHECK_EQ_STR(r.manager, "bob");
    CHECK_EQ_INT(r.rule, ELECT_RULE_SERVICE);
    CHECK_EQ_STR(r.reason, "service payments is mapped to NYC, which is up; "
                           "bob is on call at NYC");
    CHECK_EQ_STR(elect_rule_name(r.rule), "service");

    /* The mapped site is down: back to the origin. */
    sites[1].up = 0;
    sites[1].last_heard_ms = NOW - 7200;
    REQUIRE(elect(&in, &r) == 0);
    CHECK_EQ_STR(r.site, "AMS");
    CHECK_EQ_INT(r.rule, ELECT_RULE_ORIGIN);
    CHECK_EQ_STR(r.reason, "service payments is mapped to NYC, but NYC is "
                           "down (silent 7.2 s > lease 5 s); AMS is the "
                           "origin and is up; alice is on call at AMS");

    /* Both down: the origin's failover order, without saying twice that
     * NYC is down. */
    sites[0].up = 0;
    sites[0].last_heard_ms = NOW - 7200;
    site("LON", 1, 0, "lars");
    failover(&sites[0], "NYC|LON");
    in = inputs("AMS", "payments");
    REQUIRE(elect(&in, &r) == 0);
    CHECK_EQ_STR(r.site, "LON");
    CHECK_EQ_INT(r.rule, ELECT_RULE_FAILOVER);
    CHECK_EQ_STR(r.reason, "service payments is mapped to NYC, but NYC is "
                           "down (silent 7.2 s > lease 5 s); AMS is down "
                           "(silent 7.2 s > lease 5 s); LON is next in AMS's "
                           "failover order; lars is on call at LON");
}

TEST(failover_order_first_up)
{
    struct elect_result r;
    reset();
    struct elect_site *ams = site("AMS", 0, 0, "alice");
    struct elect_site *nyc = site("NYC", 1, 40, "alice");
    site("LON", 1, 0, "lars");
    nyc->oncall.until_ms = utc("2026-11-25T14:00:00Z");
    nyc->oncall.tz = nyc_tz;
    failover(ams, "NYC|LON");
    struct elect_inputs in = inputs("AMS", "email");
    REQUIRE(elect(&in, &r) == 0);
    CHECK_EQ_STR(r.site, "NYC"); /* first in the order, despite its load */
    CHECK_EQ_INT(r.rule, ELECT_RULE_FAILOVER);
    CHECK_EQ_STR(r.reason,
                 "AMS is down (silent 7.2 s > lease 5 s); NYC is first in "
                 "AMS's failover order; alice is on call at NYC until "
                 "2026-11-25 09:00 America/New_York");

    /* NYC down too, never heard from: the next in the order. */
    nyc->up = 0;
    nyc->last_heard_ms = 0;
    REQUIRE(elect(&in, &r) == 0);
    CHECK_EQ_STR(r.site, "LON");
    CHECK_EQ_STR(r.manager, "lars");
    CHECK_EQ_STR(r.reason, "AMS is down (silent 7.2 s > lease 5 s); NYC is "
                           "down (never heard from); LON is next in AMS's "
                           "failover order; lars is on call at LON");
}

TEST(failover_tiers_by_load_then_code)
{
    struct elect_result r;
    reset();
    struct elect_site *ams = site("AMS", 0, 0, "alice");
    struct elect_site *nyc = site("NYC", 1, 5, "nina");
    struct elect_site *lon = site("LON", 1, 3, "lars");
    site("SIN", 1, 0, "sam");
    failover(ams, "NYC,LON|SIN");
    struct elect_inputs in = inputs("AMS", NULL);
    REQUIRE(elect(&in, &r) == 0);
    CHECK_EQ_STR(r.site, "LON"); /* tier 0, lower load; SIN idles in tier 1 */
    CHECK_EQ_INT(r.rule, ELECT_RULE_FAILOVER);
    CHECK_EQ_STR(r.reason, "AMS is down (silent 7.2 s > lease 5 s); 2 sites "
                           "are up in the first tier of AMS's failover order; "
                           "LON has the lowest load of the up sites (3 open "
                           "incidents); lars is on call at LON");
    /* Equal load: the lower site code. */
    nyc->load = 3;
    REQUIRE(elect(&in, &r) == 0);
    CHECK_EQ_STR(r.site, "LON");
    CHECK(strstr(r.reason,
                 "2 up sites share the lowest load (3 open "
                 "incidents) and LON has the lowest site code") != NULL);
    lon->load = 4;
    REQUIRE(elect(&in, &r) == 0);
    CHECK_EQ_STR(r.site, "NYC");
    /* One of the tier down: the other, whatever its load. */
    nyc->up = 0;
    nyc->last_heard_ms = NOW - 7200;
    nyc->load = 100;
    REQUIRE(elect(&in, &r) == 0);
    CHECK_EQ_STR(r.site, "LON");
    CHECK(strstr(r.reason, "NYC is down (silent 7.2 s > lease 5 s); LON is "
                           "the only up site in the first tier of AMS's "
                           "failover order") != NULL);
    /* Declared down although heard from within the lease (the liveness
     * verdict is an input; the reason says what it saw). */
    nyc->last_heard_ms = NOW - 1000;
    REQUIRE(elect(&in, &r) == 0);
    CHECK(strstr(r.reason, "NYC is down (declared down; last heard 1 s ago, "
                           "lease 5 s)") != NULL);
    /* Both of tier 0 down: tier 1. */
    nyc->up = lon->up = 0;
    REQUIRE(elect(&in, &r) == 0);
    CHECK_EQ_STR(r.site, "SIN");
    CHECK(strstr(r.reason, "SIN is next in AMS's failover order") != NULL);
}

TEST(least_loaded_without_order)
{
    struct elect_result r;
    reset();
    site("AMS", 0, 0, "alice");
    site("TOK", 1, 2, "taro");
    site("SIN", 1, 2, "sam");
    site("NYC", 1, 7, "nina");
    struct elect_inputs in = inputs("AMS", NULL);
    REQUIRE(elect(&in, &r) == 0);
    CHECK_EQ_STR(r.site, "SIN"); /* load 2 like TOK; SIN < TOK */
    CHECK_EQ_INT(r.rule, ELECT_RULE_LEAST_LOADED);
    CHECK_EQ_STR(r.reason, "AMS is down (silent 7.2 s > lease 5 s); AMS has "
                           "no failover order; 2 up sites share the lowest "
                           "load (2 open incidents) and SIN has the lowest "
                           "site code; sam is on call at SIN");
    /* An order whose sites are all down: the same rule. */
    failover(&sites[0], "NYC");
    sites[3].up = 0;
    REQUIRE(elect(&in, &r) == 0);
    CHECK_EQ_STR(r.site, "SIN");
    CHECK(strstr(r.reason, "no site of AMS's failover order is up") != NULL);
    /* Nobody up: nobody can own. */
    sites[1].up = sites[2].up = 0;
    struct elect_result keep = {.site = "keep"};
    struct im_err e;
    CHECK_EQ_INT(elect_owner(&in, NOW, &keep, &e), IM_EUNREACH);
    CHECK_EQ_STR(keep.site, "keep");
}

TEST(manager_falls_back_to_global)
{
    struct elect_result r;
    reset();
    site("AMS", 1, 0, NULL);
    struct elect_inputs in = inputs("AMS", NULL);
    in.global.tz = ams_tz;
    REQUIRE(elect(&in, &r) == 0);
    CHECK_EQ_STR(r.manager, "gina");
    CHECK(r.manager_is_global);
    CHECK_EQ_STR(r.reason, "AMS is the origin and is up; nobody is on call "
                           "at AMS, so gina is the global incident manager "
                           "until 2026-11-30 10:00 Europe/Amsterdam");
    in.global.person[0] = '\0';
    REQUIRE(elect(&in, &r) == 0);
    CHECK_EQ_STR(r.site, "AMS");
    CHECK_EQ_STR(r.manager, "");
    CHECK(strstr(r.reason, "no global incident manager") != NULL);
}

TEST(deterministic_in_any_order)
{
    reset();
    const char *codes[] = {"AMS", "NYC", "LON", "SIN",
                           "TOK", "SYD", "FRA", "SFO"};
    for (size_t i = 0; i < 8; i++)
        site(codes[i], i != 0 && i != 2, (uint32_t)(i % 3), codes[i]);
    struct elect_site *ams = &sites[0];
    failover(ams, "LON|NYC,SIN,TOK|SYD");
    struct elect_service map[] = {{"dns", "LON"}};
    struct elect_inputs in = inputs("AMS", "dns");
    in.services = map;
    in.services_count = 1;
    struct elect_result first, r;
    REQUIRE(elect(&in, &first) == 0);
    /* The service site LON and the origin are down; tier 1 of the order
     * holds NYC (load 1), SIN (0), TOK (1). */
    CHECK_EQ_STR(first.site, "SIN");
    CHECK_EQ_INT(first.rule, ELECT_RULE_FAILOVER);
    uint64_t seed = test_seed_;
    struct elect_site shuffled[8];
    for (int round = 0; round < 200; round++) {
        memcpy(shuffled, sites, sizeof shuffled);
        for (size_t i = 7; i > 0; i--) {
            size_t j = (size_t)(test_rand(&seed) % (i + 1));
            struct elect_site tmp = shuffled[i];
            shuffled[i] = shuffled[j];
            shuffled[j] = tmp;
        }
        in.sites = shuffled;
        REQUIRE(elect(&in, &r) == 0);
        CHECK(memcmp(&r, &first, sizeof r) == 0);
        if (test_failed_)
            return;
    }
}

TEST(longest_reason_fits)
{
    reset();
    char code[SITE_CODE_MAX + 1];
    char name[PERSON_MAX + 1];
    memset(name, 'p', PERSON_MAX);
    name[PERSON_MAX] = '\0';
    for (int i = 0; i < SITES_MAX; i++) {
        snprintf(code, sizeof code, "S%07d", i);
        struct elect_site *s = site(code, i == SITES_MAX - 1, 0, name);
        s->last_heard_ms = 1; /* silent for decades */
        s->oncall.until_ms = UINT64_C(253402300799000);
        s->oncall.tz = nyc_tz;
    }
    struct elect_failover *f = &fo[0];
    memset(f, 0, sizeof *f);
    for (int i = 1; i < SITES_MAX - 1; i++) {
        snprintf(f->sites[f->sites_count], SITE_CODE_MAX + 1, "S%07d", i);
        f->tier[f->sites_count] = (uint8_t)i;
        f->sites_count++;
    }
    sites[0].failover = f;
    char service[SERVICE_MAX + 1];
    memset(service, 's', SERVICE_MAX);
    service[SERVICE_MAX] = '\0';
    struct elect_service map = {.site = "S0000001"};
    memcpy(map.service, service, sizeof service);
    struct elect_inputs in = inputs("S0000000", service);
    in.services = &map;
    in.services_count = 1;
    struct elect_result r;
    REQUIRE(elect(&in, &r) == 0); /* an overflow would abort */
    CHECK_EQ_STR(r.site, "S0000063");
    CHECK(strstr(r.reason, "more sites of S0000000's failover order are "
                           "down") != NULL);
    CHECK(strlen(r.reason) < REASON_MAX);
}

TEST(bad_inputs)
{
    struct elect_result r = {.site = "keep"};
    struct im_err e;
    reset();
    struct elect_site *ams = site("AMS", 1, 0, "alice");
    site("NYC", 1, 0, "bob");
    struct elect_inputs in = inputs("XYZ", NULL);
    CHECK_EQ_INT(elect_owner(&in, NOW, &r, &e), IM_EINVAL);
    CHECK_EQ_STR(e.msg, "origin XYZ is not among the sites");
    in = inputs("AMS", "dns"); /* mapped to LON, absent */
    CHECK_EQ_INT(elect_owner(&in, NOW, &r, &e), IM_EINVAL);
    CHECK_EQ_STR(e.msg, "service dns is mapped to LON, which is not among "
                        "the sites");
    failover(ams, "NYC,LON");
    in = inputs("AMS", NULL);
    CHECK_EQ_INT(elect_owner(&in, NOW, &r, &e), IM_EINVAL);
    CHECK_EQ_STR(e.msg, "failover order of AMS names LON, which is not among "
                        "the sites");
    ams->failover = NULL;
    site("AMS", 1, 0, "x");
    in = inputs("AMS", NULL);
    CHECK_EQ_INT(elect_owner(&in, NOW, &r, &e), IM_EINVAL);
    CHECK_EQ_STR(e.msg, "site AMS given twice");
    sites_count--;
    site("ams", 1, 0, "x");
    in = inputs("AMS", NULL);
    CHECK_EQ_INT(elect_owner(&in, NOW, &r, &e), IM_EINVAL);
    sites_count--;
    in = inputs("AMS", NULL);
    in.sites_count = SITES_MAX + 1;
    CHECK_EQ_INT(elect_owner(&in, NOW, &r, &e), IM_ETOOBIG);
    CHECK_EQ_STR(r.site, "keep");
}

TEST_MAIN({
    struct im_err e;
    if (tz_open("Europe/Amsterdam", &ams_tz, &e) != 0 ||
        tz_open("America/New_York", &nyc_tz, &e) != 0)
        abort();
} RUN(origin_owns_while_up);
          RUN(mapped_service_site_wins_over_origin);
          RUN(failover_order_first_up); RUN(failover_tiers_by_load_then_code);
          RUN(least_loaded_without_order); RUN(manager_falls_back_to_global);
          RUN(deterministic_in_any_order); RUN(longest_reason_fits);
          RUN(bad_inputs); tz_close(ams_tz); tz_close(nyc_tz))
