/* test_openset: what a coordinator knows of open incidents, and the
 * decisions it drives (coord/openset.h): closure from the heartbeats,
 * failover of a down site's incidents by schedule and load, the manager
 * a reassignment defaults to; and the schedule's meaning for a cluster and
 * the on-call table (coord/schedstore.h). Pure: a fake clock, no etcd. */
#include "openset.h"
#include "records.h"
#include "schedstore.h"

#include "clock.h"
#include "test.h"

#include "im.pb-c.h"

static const char *const CODES[] = {"AMS", "NYC", "SGP"};
#define T0 1795000000000ull /* 2026-11-18, a Wednesday */

static int
origin_of(void *arg, const char *id)
{
    (void)arg;
    for (int i = 0; i < 3; i++)
        if (strncmp(id, CODES[i], 3) == 0 && id[3] == '-')
            return i;
    return -1;
}

static struct openset_summary
sum(const char *id, const char *service)
{
    return (struct openset_summary){.id = id,
                                    .service = service,
                                    .priority = 3,
                                    .state = IM__STATE__STATE_NEW,
                                    .owner_site = "",
                                    .owner_token = 0};
}

static void
own(struct openset *t, const char *id, int site, uint64_t token)
{
    struct openset_owner o = {.site = site, .token = token};
    struct im_err e = {0};
    struct openset_entry *x = openset_find(t, id);
    if (x != NULL)
        openset_set_owner(x, &o, &e);
}

TEST(heartbeats_and_closure)
{
    struct openset t;
    struct openset_summary a[3] = {sum("AMS-1", "shop"), sum("AMS-2", "dns"),
                                   sum("XYZ-1", "x")};
    int up[3] = {1, 1, 1};
    size_t skipped = 0;
    struct openset_entry *x;

    openset_init(&t, 3);
    openset_heartbeat(&t, 0, T0, a, 3, 1, origin_of, NULL, &skipped);
    CHECK_EQ_INT(t.count, 2);
    CHECK_EQ_INT(skipped, 1); /* XYZ is not a site of the cluster */
    REQUIRE((x = openset_find(&t, "AMS-2")) != NULL);
    CHECK_EQ_INT(x->origin, 0);
    CHECK_EQ_STR(x->service, "dns");
    CHECK(x->listed == 1 && x->open);
    CHECK(!openset_is_closed(&t, x, up));

    /* AMS-2 moves to NYC; NYC has not recorded it yet. AMS, the origin,
     * still lists it: open. */
    own(&t, "AMS-2", 1, 10);
    openset_heartbeat(&t, 0, T0 + 1000, a, 2, 1, origin_of, NULL, NULL);
    x = openset_find(&t, "AMS-2");
    CHECK(!openset_is_closed(&t, x, up));

    /* AMS goes down; its last list is stale. NYC has not confirmed (it
     * never listed AMS-2 under token 10): its silence says nothing. */
    up[0] = 0;
    openset_heartbeat(&t, 1, T0 + 2000, NULL, 0, 1, origin_of, NULL, NULL);
    CHECK(!openset_is_closed(&t, x, up));

    /* NYC lists it under token 10 (confirmed), then resolves it and stops
     * listing it: closed, although the down origin's stale list had it. */
    {
        struct openset_summary s = sum("AMS-2", "dns");
        s.owner_site = "NYC";
        s.owner_token = 10;
        openset_heartbeat(&t, 1, T0 + 3000, &s, 1, 1, origin_of, NULL, NULL);
        x = openset_find(&t, "AMS-2");
        CHECK_EQ_INT(x->confirmed, 10);
        CHECK(!openset_is_closed(&t, x, up));
    }
    openset_heartbeat(&t, 1, T0 + 4000, NULL, 0, 1, origin_of, NULL, NULL);
    CHECK(openset_is_closed(&t, x, up));

    /* An incomplete list (cut at the heartbeat limit) clears nothing and
     * speaks for nothing. */
    up[0] = 1;
    openset_heartbeat(&t, 0, T0 + 5000, NULL, 0, 0, origin_of, NULL, NULL);
    x = openset_find(&t, "AMS-1");
    CHECK(x->listed & 1);
    CHECK(!openset_is_closed(&t, x, up));
    /* The origin's complete list without it: closed. */
    openset_heartbeat(&t, 0, T0 + 6000, NULL, 0, 1, origin_of, NULL, NULL);
    CHECK(openset_is_closed(&t, x, up));

    /* Prune drops closed entries whose closure was recorded. */
    x->open = 0;
    openset_find(&t, "AMS-2")->open = 0;
    openset_find(&t, "AMS-2")->recorded_open = 1; /* not yet deleted */
    openset_prune(&t);
    CHECK_EQ_INT(t.count, 1);
    CHECK(openset_find(&t, "AMS-2") != NULL);
    openset_free(&t);
}

static void
health(struct openset_health h[3], int ams, int nyc, int sgp)
{
    int up[3] = {ams, nyc, sgp};
    for (int i = 0; i < 3; i++) {
        h[i].code = CODES[i];
        h[i].up = up[i];
        h[i].last_heard_ms = T0 - (up[i] ? 500 : 4000);
    }
}

static void
add_owned(struct openset *t, const char *id, int owner, uint64_t token)
{
    struct openset_entry *x;
    struct im_err e = {0};
    openset_add(t, id, origin_of(NULL, id), T0, &x, &e);
    own(t, id, owner, token);
}

TEST(failover_without_schedule_spreads_by_load)
{
    struct openset t;
    struct openset_env env;
    struct openset_health h[3];
    struct openset_move moves[8];
    uint32_t load[SITES_MAX];
    int down[3] = {1, 0, 0};
    size_t n = 0;
    int more = 0;
    struct im_err e = {0};

    openset_init(&t, 3);
    add_owned(&t, "AMS-1", 0, 5);
    add_owned(&t, "AMS-2", 0, 5);
    add_owned(&t, "AMS-3", 0, 6);
    add_owned(&t, "NYC-1", 1, 7); /* NYC owns one already */
    openset_load(&t, load);
    CHECK_EQ_INT(load[0], 3);
    CHECK_EQ_INT(load[1], 1);
    health(h, 0, 1, 1);
    REQUIRE(openset_env_build(&env, h, 3, 3000, load, NULL, T0, &e) == 0);
    REQUIRE(openset_failover(&env, &t, down, moves, 8, &n, &more, &e) == 0);
    REQUIRE(n == 3);
    CHECK(!more);
    /* Ids in order: SGP (load 0) before NYC (1); then a tie at 1 goes to
     * NYC, the lower code; then SGP (1) before NYC (2). */
    CHECK_EQ_STR(moves[0].result.site, "SGP");
    CHECK_EQ_STR(moves[1].result.site, "NYC");
    CHECK_EQ_STR(moves[2].result.site, "SGP");
    CHECK(strncmp(moves[0].result.reason, "failover: AMS is down (silent 4",
                  31) == 0);
    CHECK(strstr(moves[0].result.reason, "lowest load") != NULL);
    /* No schedule: nobody on call, said so. */
    CHECK_EQ_STR(moves[0].result.manager, "");
    CHECK(strstr(moves[0].result.reason, "no global incident manager") != NULL);

    /* A cap: the rest next time. */
    openset_env_free(&env);
    REQUIRE(openset_env_build(&env, h, 3, 3000, load, NULL, T0, &e) == 0);
    REQUIRE(openset_failover(&env, &t, down, moves, 2, &n, &more, &e) == 0);
    CHECK(n == 2 && more);

    /* A site neither up nor declared down (a new leader has not heard it
     * yet) keeps its incidents. */
    down[0] = 0;
    REQUIRE(openset_failover(&env, &t, down, moves, 8, &n, &more, &e) == 0);
    CHECK_EQ_INT(n, 0);
    openset_env_free(&env);

    /* Nobody up: no decision, and the error says so. */
    down[0] = 1;
    health(h, 0, 0, 0);
    REQUIRE(openset_env_build(&env, h, 3, 3000, load, NULL, T0, &e) == 0);
    CHECK_EQ_INT(openset_failover(&env, &t, down, moves, 8, &n, &more, &e),
                 IM_EUNREACH);
    openset_env_free(&env);
    openset_free(&t);
}

static const char SCHED[] =
    "{\"version\": 1,"
    " \"global\": {\"rotation\": {\"people\": [\"gina\", \"hugo\"], \"length\":"
    "   \"1w\", \"handoff\": \"09:00\", \"zone\": \"Europe/London\", \"start\":"
    "   \"2026-01-05\"}},"
    " \"sites\": {"
    "  \"AMS\": {\"rotation\": {\"people\": [\"alice\", \"bram\"], \"length\":"
    "   \"1d\", \"handoff\": \"09:00\", \"zone\": \"Europe/Amsterdam\","
    "   \"start\": \"2026-01-05\"}, \"failover\": [\"LON\", \"NYC\"]},"
    "  \"LON\": {},"
    "  \"NYC\": {\"rotation\": {\"people\": [\"nina\"], \"length\": \"1w\","
    "   \"handoff\": \"08:00\", \"zone\": \"America/New_York\", \"start\":"
    "   \"2026-01-05\"}, \"failover\": [\"AMS\"]}},"
    " \"services\": {\"dns\": \"NYC\", \"mail\": \"LON\"},"
    " \"escalation\": {\"levels\": [{\"target\": \"site_manager\", \"ack\":"
    "   \"5m\"}]}}";

TEST(failover_with_schedule)
{
    struct schedule *s = NULL;
    struct openset t;
    struct openset_env env;
    struct openset_health h[3];
    struct openset_move moves[8];
    struct elect_result r;
    uint32_t load[SITES_MAX];
    int down[3] = {0, 1, 0};
    size_t n = 0;
    int more = 0;
    struct im_err e = {0};

    if (schedule_parse(SCHED, strlen(SCHED), &s, &e) != 0)
        fprintf(stderr, "schedule: %s\n", e.msg);
    REQUIRE(s != NULL);
    openset_init(&t, 3);
    /* NYC owns AMS-1 (reassigned there) and NYC-1 (its own). */
    add_owned(&t, "AMS-1", 1, 5);
    add_owned(&t, "NYC-1", 1, 5);
    openset_load(&t, load);
    health(h, 1, 0, 1);
    /* LON (not in this cluster) is skipped in AMS's failover order
     * instead of failing the election. */
    REQUIRE(openset_env_build(&env, h, 3, 3000, load, s, T0, &e) == 0);
    CHECK(env.sites[0].failover != NULL &&
          env.sites[0].failover->sites_count == 1);
    CHECK_EQ_INT(env.services_count, 1); /* mail -> LON dropped */
    REQUIRE(openset_failover(&env, &t, down, moves, 8, &n, &more, &e) == 0);
    REQUIRE(n == 2);
    /* AMS-1: the origin AMS is up again, so it owns; the reason names NYC. */
    CHECK_EQ_STR(moves[0].result.site, "AMS");
    CHECK(strncmp(moves[0].result.reason,
                  "failover from NYC, the owner, which is down (silent 4.0 s, "
                  "lease 3.0 s): AMS is the origin and is up",
                  99) == 0);
    CHECK(moves[0].result.manager[0] != '\0');
    /* NYC-1: NYC's failover order says AMS. */
    CHECK_EQ_STR(moves[1].result.site, "AMS");
    CHECK(strstr(moves[1].result.reason, "NYC is down") != NULL);
    openset_env_free(&env);

    /* A new incident of service dns goes to NYC while NYC is up. */
    health(h, 1, 1, 1);
    REQUIRE(openset_env_build(&env, h, 3, 3000, load, s, T0, &e) == 0);
    {
        struct openset_entry *x;
        REQUIRE(openset_add(&t, "SGP-1", 2, T0, &x, &e) == 0);
        snprintf(x->service, sizeof x->service, "dns");
        REQUIRE(openset_elect(&env, &t, x, &r, &e) == 0);
        CHECK_EQ_STR(r.site, "NYC");
        CHECK_EQ_STR(r.manager, "nina");
        CHECK(strstr(r.reason, "service dns is mapped to NYC") != NULL);
    }
    openset_env_free(&env);
    openset_free(&t);
    schedule_free(s);
}

TEST(reassign_manager_defaults)
{
    struct schedule *s = NULL;
    struct im_err e = {0};
    char person[PERSON_MAX + 1];
    int global = -1;

    REQUIRE(schedule_parse(SCHED, strlen(SCHED), &s, &e) == 0);
    openset_manager(s, "NYC", T0, person, &global);
    CHECK_EQ_STR(person, "nina");
    CHECK_EQ_INT(global, 0);
    /* SGP is not in the schedule: the global manager. */
    openset_manager(s, "SGP", T0, person, &global);
    CHECK(person[0] != '\0');
    CHECK_EQ_INT(global, 1);
    openset_manager(NULL, "SGP", T0, person, &global);
    CHECK_EQ_STR(person, "");
    schedule_free(s);
}

TEST(schedule_meaning_for_the_cluster)
{
    struct schedule *s = NULL;
    struct im_err e = {0};
    struct schedstore_warnings w;
    int lon = 0, sgp = 0, fo = 0, mail = 0;

    REQUIRE(schedule_parse(SCHED, strlen(SCHED), &s, &e) == 0);
    schedstore_check(s, CODES, 3, &w);
    CHECK_EQ_INT(w.count, 4);
    for (size_t i = 0; i < w.count; i++) {
        lon += strcmp(w.text[i], "sites.LON: not a site of this cluster: "
                                 "ignored") == 0;
        sgp += strncmp(w.text[i], "sites: no entry for SGP", 23) == 0;
        fo += strncmp(w.text[i], "sites.AMS.failover: LON", 23) == 0;
        mail += strncmp(w.text[i], "services.mail: LON", 18) == 0;
    }
    CHECK(lon == 1 && sgp == 1 && fo == 1 && mail == 1);
    schedule_free(s);
}

TEST(oncall_rows)
{
    struct schedule *s = NULL;
    struct im_err e = {0};
    struct schedstore_oncall_row rows[4];
    uint64_t at;

    REQUIRE(schedule_parse(SCHED, strlen(SCHED), &s, &e) == 0);
    /* Tuesday 2026-11-24 15:00 UTC: AMS daily since Monday 5 January at
     * 09:00 Amsterdam, alice/bram alternate. */
    REQUIRE(clock_parse_rfc3339("2026-11-24T15:00:00Z", &at) == 0);
    schedstore_oncall(s, CODES, 3, at, rows);
    CHECK_EQ_STR(rows[0].site, "AMS");
    CHECK_EQ_STR(rows[0].source, "rotation");
    CHECK_EQ_STR(rows[0].until_text, "2026-11-25 09:00 Europe/Amsterdam");
    CHECK(strcmp(rows[0].person, rows[0].next_person) != 0);
    CHECK_EQ_STR(rows[0].next_until_text, "2026-11-26 09:00 Europe/Amsterdam");
    CHECK_EQ_STR(rows[1].person, "nina");
    CHECK_EQ_STR(rows[1].until_text, "2026-11-30 08:00 America/New_York");
    /* SGP has no entry: the global manager covers, said so. */
    CHECK_EQ_STR(rows[2].site, "SGP");
    CHECK_EQ_STR(rows[2].source, "global");
    CHECK_EQ_STR(rows[2].person, rows[3].person);
    CHECK_EQ_STR(rows[3].site, "");
    CHECK_EQ_STR(rows[3].until_text, "2026-11-30 09:00 Europe/London");
    /* Before any rotation started: nobody anywhere. */
    REQUIRE(clock_parse_rfc3339("2025-06-01T00:00:00Z", &at) == 0);
    schedstore_oncall(s, CODES, 3, at, rows);
    CHECK_EQ_STR(rows[0].person, "");
    CHECK_EQ_STR(rows[0].source, "");
    CHECK_EQ_STR(rows[3].person, "");
    schedule_free(s);
}

TEST(open_record_round_trip)
{
    struct open_record o = {
        .incident = "AMS-9", .service = "dns", .priority = 2, .since_ms = 77};
    struct open_record back;
    struct im_err e = {0};
    char *j = records_open_encode(&o);

    REQUIRE(j != NULL);
    REQUIRE(records_open_decode((uint8_t *)j, strlen(j), &back, &e) == 0);
    CHECK_EQ_STR(back.incident, "AMS-9");
    CHECK_EQ_STR(back.service, "dns");
    CHECK_EQ_INT(back.priority, 2);
    CHECK_EQ_INT(back.since_ms, 77);
    free(j);
    CHECK_EQ_INT(records_open_decode((const uint8_t *)"{\"incident\":\"A-1\","
                                                      "\"priority\":9}",
                                     32, &back, &e),
                 IM_ECORRUPT);
}

TEST_MAIN(RUN(heartbeats_and_closure);
          RUN(failover_without_schedule_spreads_by_load);
          RUN(failover_with_schedule); RUN(reassign_manager_defaults);
          RUN(schedule_meaning_for_the_cluster); RUN(oncall_rows);
          RUN(open_record_round_trip))
