/* Unit tests for coord/escalate, with a fake clock (plain numbers): start,
 * on-time and late ticks, acknowledgement, a whole ladder run to
 * exhaustion, the failover catch-up (one level, across a run, past the
 * end), asking other sites for help and their copies, a policy changed
 * under a running escalation, the JSON state (round trips, a restored state
 * behaving exactly as the original, strict refusal of bad state), policy
 * checks, and the longest texts. */
#include "test.h"

#include "escalate.h"

#define MIN (60 * 1000ULL)
#define T0 1795600000000ULL /* 2026-11-25T09:46:40Z */

static struct esc_policy
policy3(uint32_t repeat)
{
    struct esc_policy p;
    memset(&p, 0, sizeof p);
    p.levels[0] = (struct esc_level){ESC_SITE_MANAGER, "", 5 * MIN};
    p.levels[1] = (struct esc_level){ESC_SITE_BACKUP, "", 10 * MIN};
    p.levels[2] = (struct esc_level){ESC_GLOBAL_MANAGER, "", 10 * MIN};
    p.levels_count = 3;
    p.repeat = repeat;
    return p;
}

static int
tick(struct esc_state *st, const struct esc_policy *p, uint64_t now,
     struct esc_notices *n)
{
    struct im_err e;
    int rv = escalate_tick(st, p, "AMS", now, n, &e);
    if (rv != 0)
        fprintf(stderr, "  tick: %s\n", im_errmsg(&e));
    return rv;
}

TEST(start_and_timeouts)
{
    struct esc_policy p = policy3(0);
    struct esc_state st;
    struct esc_notices n;
    struct im_err e;
    REQUIRE(escalate_start(&p, "AMS", T0, &st, &n, &e) == 0);
    CHECK_EQ_INT(st.phase, ESC_ACTIVE);
    CHECK_EQ_INT(st.deadline_ms, T0 + 5 * MIN);
    REQUIRE(n.count == 1);
    CHECK_EQ_INT(n.items[0].target, ESC_SITE_MANAGER);
    CHECK_EQ_STR(n.items[0].site, "AMS");
    CHECK_EQ_INT(n.items[0].why_code, ESC_WHY_START);
    CHECK_EQ_STR(n.items[0].why, "major incident: level 1 of 3 (site manager "
                                 "of AMS), acknowledge within 5m 00s");

    /* Before the deadline: nothing, and nothing changes. */
    struct esc_state before = st;
    REQUIRE(tick(&st, &p, T0 + 5 * MIN - 1, &n) == 0);
    CHECK_EQ_INT(n.count, 0);
    CHECK(memcmp(&before, &st, sizeof st) == 0);

    /* At the deadline: level 2. */
    REQUIRE(tick(&st, &p, T0 + 5 * MIN, &n) == 0);
    REQUIRE(n.count == 1);
    CHECK_EQ_INT(n.items[0].target, ESC_SITE_BACKUP);
    CHECK_EQ_INT(n.items[0].level, 1);
    CHECK_EQ_INT(n.items[0].why_code, ESC_WHY_TIMEOUT);
    CHECK_EQ_STR(n.items[0].why,
                 "not acknowledged by site manager of AMS within 5m 00s; now "
                 "level 2 of 3 (site backup of AMS), acknowledge within 10m "
                 "00s");
    CHECK_EQ_INT(st.level, 1);
    CHECK_EQ_INT(st.deadline_ms, T0 + 15 * MIN);

    /* A tick 30 s late: the next person still gets the full 10 minutes. */
    REQUIRE(tick(&st, &p, T0 + 15 * MIN + 30000, &n) == 0);
    REQUIRE(n.count == 1);
    CHECK_EQ_INT(n.items[0].target, ESC_GLOBAL_MANAGER);
    CHECK_EQ_INT(st.deadline_ms, T0 + 25 * MIN + 30000);

    /* The owner moved (failover): site targets follow the owner given. */
    REQUIRE(escalate_tick(&st, &p, "NYC", T0 + 25 * MIN + 30000, &n, &e) == 0);
    REQUIRE(n.count == 1);
    CHECK_EQ_INT(n.items[0].why_code, ESC_WHY_EXHAUSTED);
    CHECK_EQ_STR(n.items[0].site, "NYC");
}

TEST(ack_stops_the_timers)
{
    struct esc_policy p = policy3(2);
    struct esc_state st;
    struct esc_notices n;
    struct im_err e;
    REQUIRE(escalate_start(&p, "AMS", T0, &st, &n, &e) == 0);
    REQUIRE(escalate_ack(&st, "alice", T0 + MIN, &e) == 0);
    CHECK_EQ_INT(st.phase, ESC_ACKED);
    CHECK_EQ_STR(st.acked_by, "alice");
    CHECK_EQ_INT(st.acked_ms, T0 + MIN);
    CHECK_EQ_INT(st.deadline_ms, 0);
    REQUIRE(tick(&st, &p, T0 + 1000 * MIN, &n) == 0);
    CHECK_EQ_INT(n.count, 0);
    CHECK_EQ_INT(escalate_ack(&st, "bob", T0 + 2 * MIN, &e), IM_ESTATE);
    CHECK_EQ_STR(e.msg, "already acknowledged by alice at "
                        "2026-11-25T09:47:40.000Z");
    CHECK_EQ_STR(st.acked_by, "alice");
    CHECK_EQ_INT(escalate_ack(&st, "", T0, &e), IM_EINVAL);
}

TEST(ladder_runs_to_exhaustion)
{
    struct esc_policy p = policy3(1); /* two runs */
    struct esc_state st;
    struct esc_notices n;
    struct im_err e;
    REQUIRE(escalate_start(&p, "AMS", T0, &st, &n, &e) == 0);
    const enum esc_target want[] = {ESC_SITE_BACKUP, ESC_GLOBAL_MANAGER,
                                    ESC_SITE_MANAGER, ESC_SITE_BACKUP,
                                    ESC_GLOBAL_MANAGER};
    uint64_t now = T0;
    /* A tick every second, as the leader does. */
    size_t got = 0;
    int exhausted = 0;
    for (; now < T0 + 200 * MIN; now += 1000) {
        REQUIRE(tick(&st, &p, now, &n) == 0);
        if (n.count == 0)
            continue;
        REQUIRE(n.count == 1);
        if (n.items[0].why_code == ESC_WHY_EXHAUSTED) {
            exhausted++;
            CHECK_EQ_INT(n.items[0].target, ESC_GLOBAL_MANAGER);
            /* 5 + 10 + 10 + 5 + 10 + 10 minutes after the start. */
            CHECK_EQ_INT(now, T0 + 50 * MIN);
            continue;
        }
        REQUIRE(got < 5);
        CHECK_EQ_INT(n.items[0].target, want[got]);
        CHECK_EQ_INT(n.items[0].why_code, ESC_WHY_TIMEOUT);
        CHECK_EQ_INT(n.items[0].pass, got >= 2 ? 1 : 0);
        got++;
    }
    CHECK_EQ_INT(got, 5);
    CHECK_EQ_INT(exhausted, 1);
    CHECK_EQ_INT(st.phase, ESC_EXHAUSTED);
    CHECK_EQ_INT(st.deadline_ms, 0);
    /* Someone may still acknowledge an exhausted escalation. */
    CHECK_EQ_INT(escalate_ack(&st, "gina", now, &e), 0);
    CHECK_EQ_INT(st.phase, ESC_ACKED);
}

TEST(failover_catch_up)
{
    struct esc_policy p = policy3(1);
    struct esc_state st, start;
    struct esc_notices n;
    struct im_err e;
    REQUIRE(escalate_start(&p, "AMS", T0, &start, &n, &e) == 0);

    /* No tick from T0 until T0 + 18 min (the leader died at T0 + 1 min).
     * On time, level 2 would have been paged at +5 and level 3 at +15:
     * we are in level 3's window. One notice, for level 3, naming the
     * skipped level; a full window from now. */
    st = start;
    REQUIRE(tick(&st, &p, T0 + 18 * MIN, &n) == 0);
    REQUIRE(n.count == 1);
    CHECK_EQ_INT(n.items[0].target, ESC_GLOBAL_MANAGER);
    CHECK_EQ_INT(n.items[0].level, 2);
    CHECK_EQ_INT(n.items[0].why_code, ESC_WHY_CATCHUP);
    CHECK_EQ_STR(n.items[0].why,
                 "not acknowledged by site manager of AMS; 1 level skipped "
                 "(from level 2) because its deadline passed before a "
                 "coordinator checked; now level 3 of 3 (global manager), run "
                 "1 of 2, acknowledge within 10m 00s");
    CHECK_EQ_INT(st.level, 2);
    CHECK_EQ_INT(st.pass, 0);
    CHECK_EQ_INT(st.deadline_ms, T0 + 28 * MIN);

    /* Into the second run: +25 level 1 again, +30 level 2, +40 level 3;
     * at +32 we are in run 2's level 2, three levels skipped. */
    st = start;
    REQUIRE(tick(&st, &p, T0 + 32 * MIN, &n) == 0);
    REQUIRE(n.count == 1);
    CHECK_EQ_INT(n.items[0].target, ESC_SITE_BACKUP);
    CHECK_EQ_INT(n.items[0].pass, 1);
    CHECK(strstr(n.items[0].why, "3 levels skipped (from level 2)") != NULL);
    CHECK_EQ_INT(st.level, 1);
    CHECK_EQ_INT(st.pass, 1);

    /* Exactly on a deadline of the timeline: that level is due, not the
     * one before (+15 is level 3's start). */
    st = start;
    REQUIRE(tick(&st, &p, T0 + 15 * MIN, &n) == 0);
    CHECK_EQ_INT(n.items[0].level, 2);

    /* Past the whole timeline (+50): exhausted at once, one notice. */
    st = start;
    REQUIRE(tick(&st, &p, T0 + 24 * 60 * MIN, &n) == 0);
    REQUIRE(n.count == 1);
    CHECK_EQ_INT(n.items[0].why_code, ESC_WHY_EXHAUSTED);
    CHECK(strstr(n.items[0].why, "deadlines passed while no coordinator "
                                 "checked") != NULL);
    CHECK_EQ_INT(st.phase, ESC_EXHAUSTED);
}

TEST(help_from_other_sites)
{
    struct esc_policy p = policy3(0);
    struct esc_state st;
    struct esc_notices n;
    struct im_err e;
    REQUIRE(escalate_start(&p, "AMS", T0, &st, &n, &e) == 0);
    REQUIRE(escalate_to_site(&st, "AMS", "NYC", "alice", T0 + MIN, &n, &e) ==
            0);
    REQUIRE(n.count == 1);
    CHECK_EQ_INT(n.items[0].target, ESC_SITE_MANAGER);
    CHECK_EQ_STR(n.items[0].site, "NYC");
    CHECK_EQ_INT(n.items[0].why_code, ESC_WHY_HELP);
    CHECK_EQ_STR(n.items[0].why,
                 "alice asks NYC to help with a major incident owned by AMS");
    CHECK_EQ_INT(st.help_count, 1);
    CHECK_EQ_INT(escalate_to_site(&st, "AMS", "NYC", "bob", T0, &n, &e),
                 IM_EEXIST);
    CHECK_EQ_STR(e.msg, "NYC was already asked for help by alice");
    CHECK_EQ_INT(escalate_to_site(&st, "AMS", "AMS", "bob", T0, &n, &e),
                 IM_EINVAL);
    CHECK_EQ_INT(escalate_to_site(&st, "AMS", "nyc", "bob", T0, &n, &e),
                 IM_EINVAL);
    CHECK_EQ_INT(escalate_to_site(&st, "AMS", "SIN", "", T0, &n, &e),
                 IM_EINVAL);
    REQUIRE(escalate_to_site(&st, "AMS", "SIN", "bob", T0, &n, &e) == 0);

    /* The next escalation step is copied to both helping sites. */
    REQUIRE(tick(&st, &p, T0 + 5 * MIN, &n) == 0);
    REQUIRE(n.count == 3);
    CHECK_EQ_INT(n.items[0].target, ESC_SITE_BACKUP);
    CHECK_EQ_STR(n.items[0].site, "AMS");
    CHECK_EQ_INT(n.items[1].why_code, ESC_WHY_COPY);
    CHECK_EQ_STR(n.items[1].site, "NYC");
    CHECK_EQ_INT(n.items[1].target, ESC_SITE_MANAGER);
    CHECK(strncmp(n.items[1].why, "copy for NYC: not acknowledged", 30) == 0);
    CHECK_EQ_STR(n.items[2].site, "SIN");

    /* Full. */
    char code[SITE_CODE_MAX + 1];
    for (int i = 2; i < ESC_HELP_SITES_MAX; i++) {
        snprintf(code, sizeof code, "H%d", i);
        REQUIRE(escalate_to_site(&st, "AMS", code, "bob", T0, &n, &e) == 0);
    }
    CHECK_EQ_INT(escalate_to_site(&st, "AMS", "ZZZ", "bob", T0, &n, &e),
                 IM_ETOOBIG);
    REQUIRE(tick(&st, &p, T0 + 15 * MIN, &n) == 0);
    CHECK_EQ_INT(n.count, ESC_NOTICES_MAX);
}

TEST(policy_changed_under_a_running_escalation)
{
    struct esc_policy p = policy3(1);
    struct esc_state st;
    struct esc_notices n;
    struct im_err e;
    REQUIRE(escalate_start(&p, "AMS", T0, &st, &n, &e) == 0);
    REQUIRE(tick(&st, &p, T0 + 5 * MIN, &n) == 0);
    REQUIRE(tick(&st, &p, T0 + 15 * MIN, &n) == 0);
    CHECK_EQ_INT(st.level, 2);
    /* The schedule now has two levels: level 3 is gone; its deadline ends
     * the run and the next run starts at level 1. */
    p.levels_count = 2;
    REQUIRE(tick(&st, &p, T0 + 25 * MIN, &n) == 0);
    REQUIRE(n.count == 1);
    CHECK_EQ_INT(n.items[0].level, 0);
    CHECK_EQ_INT(n.items[0].pass, 1);
    CHECK(strstr(n.items[0].why, "a level since removed") != NULL);
    /* And no repeat any more: the end of this run exhausts it. */
    p.repeat = 0;
    REQUIRE(tick(&st, &p, T0 + 30 * MIN, &n) == 0);
    REQUIRE(n.count == 1);
    CHECK_EQ_INT(n.items[0].why_code, ESC_WHY_EXHAUSTED);
}

static void
round_trip(const struct esc_state *st)
{
    char *json = NULL;
    struct esc_state back;
    struct im_err e;
    REQUIRE(escalate_state_to_json(st, &json, &e) == 0);
    REQUIRE(escalate_state_from_json(json, &back, &e) == 0);
    /* Every state we build is zeroed first, as the parser's is. */
    CHECK(memcmp(st, &back, sizeof back) == 0);
    char *again = NULL;
    REQUIRE(escalate_state_to_json(&back, &again, &e) == 0);
    CHECK_EQ_STR(again, json);
    free(json);
    free(again);
}

TEST(json_round_trip_and_restore)
{
    struct esc_policy p = policy3(1);
    struct esc_state st;
    struct esc_notices n;
    struct im_err e;
    memset(&st, 0, sizeof st);
    REQUIRE(escalate_start(&p, "AMS", T0, &st, &n, &e) == 0);
    char *json = NULL;
    REQUIRE(escalate_state_to_json(&st, &json, &e) == 0);
    CHECK_EQ_STR(json, "{\"v\":1,\"phase\":\"active\",\"level\":0,\"pass\":0,"
                       "\"started\":1795600000000,\"deadline\":"
                       "1795600300000}");
    free(json);
    round_trip(&st);
    REQUIRE(escalate_to_site(&st, "AMS", "NYC", "al\"ice", T0, &n, &e) == 0);
    round_trip(&st);

    /* A coordinator failover: the new leader reads the stored state and
     * must do exactly what the old one would have done, tick for tick. */
    struct esc_state old = st, restored;
    REQUIRE(escalate_state_to_json(&st, &json, &e) == 0);
    REQUIRE(escalate_state_from_json(json, &restored, &e) == 0);
    free(json);
    struct esc_notices n1, n2;
    for (uint64_t now = T0; now < T0 + 60 * MIN; now += 7000) {
        REQUIRE(tick(&old, &p, now, &n1) == 0);
        REQUIRE(tick(&restored, &p, now, &n2) == 0);
        REQUIRE(n1.count == n2.count);
        for (size_t i = 0; i < n1.count; i++)
            CHECK_EQ_STR(n1.items[i].why, n2.items[i].why);
        round_trip(&restored);
    }
    CHECK_EQ_INT(old.phase, ESC_EXHAUSTED);
    CHECK_EQ_INT(restored.phase, ESC_EXHAUSTED);
    REQUIRE(escalate_ack(&restored, "bob", T0 + 61 * MIN, &e) == 0);
    round_trip(&restored);
    REQUIRE(escalate_state_to_json(&restored, &json, &e) == 0);
    CHECK(strstr(json, "\"acked\":[\"bob\",1795603660000]") != NULL);
    free(json);
}

TEST(json_refused)
{
    static const struct {
        const char *json;
        int code;
    } bad[] = {
        {"", IM_EINVAL},
        {"[]", IM_EINVAL},
        {"{\"v\":1,\"phase\":\"active\",\"level\":0,\"pass\":0,"
         "\"started\":1,\"deadline\":2,\"extra\":1}",
         IM_EINVAL},
        {"{\"v\":1,\"v\":1,\"phase\":\"active\",\"level\":0,\"pass\":0,"
         "\"started\":1,\"deadline\":2}",
         IM_EINVAL},
        {"{\"v\":2,\"phase\":\"active\",\"level\":0,\"pass\":0,"
         "\"started\":1,\"deadline\":2}",
         IM_EINVAL},
        {"{\"v\":1,\"phase\":\"active\",\"level\":0,\"pass\":0,"
         "\"started\":1}",
         IM_EINVAL}, /* active without a deadline */
        {"{\"v\":1,\"phase\":\"active\",\"level\":\"0\",\"pass\":0,"
         "\"started\":1,\"deadline\":2}",
         IM_EINVAL},
        {"{\"v\":1,\"phase\":\"active\",\"level\":16,\"pass\":0,"
         "\"started\":1,\"deadline\":2}",
         IM_EINVAL},
        {"{\"v\":1,\"phase\":\"active\",\"level\":0,\"pass\":-1,"
         "\"started\":1,\"deadline\":2}",
         IM_EINVAL},
        {"{\"v\":1,\"phase\":\"active\",\"level\":0,\"pass\":0,"
         "\"started\":1,\"deadline\":-2}",
         IM_EINVAL},
        {"{\"v\":1,\"phase\":\"acked\",\"level\":0,\"pass\":0,"
         "\"started\":1}",
         IM_EINVAL}, /* acked by nobody */
        {"{\"v\":1,\"phase\":\"acked\",\"level\":0,\"pass\":0,"
         "\"started\":1,\"acked\":[\"\",5]}",
         IM_EINVAL},
        {"{\"v\":1,\"phase\":\"exhausted\",\"level\":0,\"pass\":0,"
         "\"started\":1,\"deadline\":2}",
         IM_EINVAL},
        {"{\"v\":1,\"phase\":\"paused\",\"level\":0,\"pass\":0,"
         "\"started\":1}",
         IM_EINVAL},
        {"{\"v\":1,\"phase\":\"exhausted\",\"level\":0,\"pass\":0,"
         "\"started\":1,\"help\":[[\"nyc\",\"bob\",3]]}",
         IM_EINVAL},
        {"{\"v\":1,\"phase\":\"exhausted\",\"level\":0,\"pass\":0,"
         "\"started\":1,\"help\":[[\"NYC\",\"bob\",3],[\"NYC\",\"al\",3]]}",
         IM_EINVAL},
        {"{\"v\":1,\"phase\":\"exhausted\",\"level\":0,\"pass\":0,"
         "\"started\":1,\"help\":[[\"NYC\",\"bob\"]]}",
         IM_EINVAL},
    };
    struct im_err e;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct esc_state st = {.level = 77};
        int rv = escalate_state_from_json(bad[i].json, &st, &e);
        if (rv != bad[i].code)
            fprintf(stderr, "  case %zu: %d\n", i, rv);
        CHECK_EQ_INT(rv, bad[i].code);
        CHECK_EQ_INT(st.level, 77);
        CHECK(strncmp(e.msg, "escalation state", 16) == 0);
    }
    static char big[ESC_STATE_JSON_MAX + 2];
    memset(big, ' ', sizeof big - 1);
    struct esc_state st;
    CHECK_EQ_INT(escalate_state_from_json(big, &st, &e), IM_ETOOBIG);
}

TEST(policy_checks)
{
    struct esc_policy p = policy3(0);
    struct esc_state st = {.level = 77};
    struct esc_notices n;
    struct im_err e;
    p.levels_count = 0;
    CHECK_EQ_INT(escalate_start(&p, "AMS", T0, &st, &n, &e), IM_EINVAL);
    CHECK_EQ_STR(e.msg, "levels: empty list (a policy needs at least one "
                        "level)");
    p = policy3(0);
    p.levels[1].ack_ms = ESC_ACK_MS_MIN - 1;
    CHECK_EQ_INT(escalate_policy_check(&p, "escalation", &e), IM_EINVAL);
    CHECK_EQ_STR(e.msg, "escalation.levels[1].ack: must be from 5s to 24h");
    p.levels[1].ack_ms = ESC_ACK_MS_MIN; /* a drill's window */
    CHECK_EQ_INT(escalate_policy_check(&p, "escalation", &e), 0);
    p = policy3(0);
    p.levels[2].target = ESC_PERSON;
    CHECK_EQ_INT(escalate_policy_check(&p, "escalation", &e), IM_EINVAL);
    CHECK_EQ_STR(e.msg, "escalation.levels[2].person: empty name");
    p = policy3(0);
    strcpy(p.levels[0].person, "dave");
    CHECK_EQ_INT(escalate_policy_check(&p, "", &e), IM_EINVAL);
    p = policy3(ESC_REPEAT_MAX + 1);
    CHECK_EQ_INT(escalate_policy_check(&p, "", &e), IM_EINVAL);
    p = policy3(0);
    p.levels_count = ESC_LEVELS_MAX + 1;
    CHECK_EQ_INT(escalate_policy_check(&p, "", &e), IM_ETOOBIG);
    p = policy3(0);
    CHECK_EQ_INT(escalate_start(&p, "ams", T0, &st, &n, &e), IM_EINVAL);
    CHECK_EQ_INT(st.level, 77);
}

TEST(longest_texts)
{
    struct esc_policy p;
    memset(&p, 0, sizeof p);
    for (int i = 0; i < ESC_LEVELS_MAX; i++) {
        p.levels[i].target = ESC_PERSON;
        memset(p.levels[i].person, 'p', PERSON_MAX);
        p.levels[i].ack_ms = ESC_ACK_MS_MAX - 1000;
    }
    p.levels_count = ESC_LEVELS_MAX;
    p.repeat = ESC_REPEAT_MAX;
    struct esc_state st;
    struct esc_notices n;
    struct im_err e;
    char asker[PERSON_MAX + 1];
    memset(asker, 'a', PERSON_MAX);
    asker[PERSON_MAX] = '\0';
    REQUIRE(escalate_start(&p, "ABCDEFGH", T0, &st, &n, &e) == 0);
    char code[SITE_CODE_MAX + 1];
    for (int i = 0; i < ESC_HELP_SITES_MAX; i++) {
        snprintf(code, sizeof code, "HELP%04d", i);
        REQUIRE(escalate_to_site(&st, "ABCDEFGH", code, asker, T0, &n, &e) ==
                0);
    }
    /* Catch up over many levels: the longest sentence, copied 16 times;
     * an overflow would abort. */
    REQUIRE(escalate_tick(&st, &p, "ABCDEFGH",
                          T0 + 100 * (uint64_t)ESC_ACK_MS_MAX, &n, &e) == 0);
    CHECK_EQ_INT(n.count, ESC_NOTICES_MAX);
    CHECK_EQ_INT(n.items[0].why_code, ESC_WHY_CATCHUP);
    for (size_t i = 0; i < n.count; i++)
        CHECK(strlen(n.items[i].why) < ESC_WHY_MAX);
    char *json = NULL;
    REQUIRE(escalate_state_to_json(&st, &json, &e) == 0);
    CHECK(strlen(json) < ESC_STATE_JSON_MAX);
    free(json);
}

TEST(manual_escalation)
{
    struct esc_policy p = policy3(1);
    struct esc_state st, before;
    struct esc_notices n;
    struct im_err e;
    REQUIRE(escalate_start(&p, "AMS", T0, &st, &n, &e) == 0);
    REQUIRE(escalate_to_site(&st, "AMS", "NYC", "gina", T0 + 1000, &n, &e) ==
            0);

    /* Two minutes into level 1's five: level 2 now, with its full window,
     * and a copy for the helping site. */
    REQUIRE(escalate_now(&st, &p, "AMS", "gina", "database down everywhere",
                         T0 + 2 * MIN, &n, &e) == 0);
    CHECK_EQ_INT(st.phase, ESC_ACTIVE);
    CHECK_EQ_INT(st.level, 1);
    CHECK_EQ_INT(st.pass, 0);
    CHECK_EQ_INT(st.deadline_ms, T0 + 12 * MIN);
    REQUIRE(n.count == 2);
    CHECK_EQ_INT(n.items[0].target, ESC_SITE_BACKUP);
    CHECK_EQ_INT(n.items[0].why_code, ESC_WHY_MANUAL);
    CHECK_EQ_STR(n.items[0].why,
                 "escalated by gina (database down everywhere) before the "
                 "deadline; now level 2 of 3 (site backup of AMS), run 1 of "
                 "2, acknowledge within 10m 00s");
    CHECK_EQ_STR(n.items[1].site, "NYC");
    CHECK_EQ_INT(n.items[1].why_code, ESC_WHY_COPY);

    /* From the last level: the next run, level 1. */
    REQUIRE(escalate_now(&st, &p, "AMS", "gina", "", T0 + 3 * MIN, &n, &e) ==
            0);
    REQUIRE(escalate_now(&st, &p, "AMS", "gina", "", T0 + 4 * MIN, &n, &e) ==
            0);
    CHECK_EQ_INT(st.level, 0);
    CHECK_EQ_INT(st.pass, 1);
    CHECK_EQ_STR(n.items[0].why, "escalated by gina before the deadline; now "
                                 "level 1 of 3 (site manager of AMS), run 2 "
                                 "of 2, acknowledge within 5m 00s");

    /* Past the last level of the last run: exhausted, told once. */
    REQUIRE(escalate_now(&st, &p, "AMS", "gina", "", T0 + 5 * MIN, &n, &e) ==
            0);
    REQUIRE(escalate_now(&st, &p, "AMS", "gina", "", T0 + 6 * MIN, &n, &e) ==
            0);
    REQUIRE(escalate_now(&st, &p, "AMS", "gina", "", T0 + 7 * MIN, &n, &e) ==
            0);
    CHECK_EQ_INT(st.phase, ESC_EXHAUSTED);
    CHECK_EQ_INT(n.items[0].target, ESC_GLOBAL_MANAGER);
    CHECK_EQ_STR(n.items[0].why, "escalated by gina past the last level of "
                                 "the last run; escalation exhausted");
    before = st;
    CHECK_EQ_INT(escalate_now(&st, &p, "AMS", "gina", "", T0 + 8 * MIN, &n, &e),
                 IM_ESTATE);
    CHECK(strstr(e.msg, "exhausted") != NULL);
    CHECK(memcmp(&before, &st, sizeof st) == 0);

    /* Acknowledged: refused, naming who; bad input changes nothing. */
    REQUIRE(escalate_start(&p, "AMS", T0, &st, &n, &e) == 0);
    REQUIRE(escalate_ack(&st, "alice", T0 + MIN, &e) == 0);
    CHECK_EQ_INT(escalate_now(&st, &p, "AMS", "gina", "", T0 + 2 * MIN, &n, &e),
                 IM_ESTATE);
    CHECK(strstr(e.msg, "already acknowledged by alice") != NULL);
    REQUIRE(escalate_start(&p, "AMS", T0, &st, &n, &e) == 0);
    before = st;
    char longer[ESC_REASON_MAX + 2];
    memset(longer, 'r', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    CHECK_EQ_INT(escalate_now(&st, &p, "AMS", "gina", longer, T0 + MIN, &n, &e),
                 IM_ETOOBIG);
    CHECK_EQ_INT(escalate_now(&st, &p, "AMS", "", "", T0 + MIN, &n, &e),
                 IM_EINVAL);
    CHECK_EQ_INT(escalate_now(&st, &p, "ams", "gina", "", T0 + MIN, &n, &e),
                 IM_EINVAL);
    CHECK(memcmp(&before, &st, sizeof st) == 0);
}

TEST_MAIN(RUN(start_and_timeouts); RUN(ack_stops_the_timers);
          RUN(ladder_runs_to_exhaustion); RUN(failover_catch_up);
          RUN(help_from_other_sites);
          RUN(policy_changed_under_a_running_escalation);
          RUN(json_round_trip_and_restore); RUN(json_refused);
          RUN(policy_checks); RUN(longest_texts); RUN(manual_escalation))
