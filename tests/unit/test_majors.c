/* Unit tests for coord/majors (its pure part) and the P/majors record of
 * coord/records, with a fake clock (plain numbers) and a real schedule:
 * registration pages (level 1, the global manager, each affected site's
 * manager, one page per site and person), the ladder's pages and notice
 * ids, pages recorded and expired, a full pending list, operator
 * escalation and help, acknowledgement and resolution, the policy with
 * [coord] min_ack, notice ids, and the record's JSON (round trip, a
 * restored record carrying on exactly as the original, strict refusal). */
#include "test.h"

#include "majors.h"
#include "records.h"

#define SEC 1000ULL
#define MIN (60 * SEC)
#define T0 1795600000000ULL /* 2026-11-25T09:46:40Z */

/* Everyone is on call by override, so that the test does not depend on
 * the day it runs (the backup does: the test's clock is fixed). */
static const char SCHEDULE[] =
    "{\"version\": 1,"
    " \"global\": {\"rotation\": {\"people\": [\"gina\"], \"length\": \"1w\","
    "   \"handoff\": \"09:00\", \"zone\": \"UTC\", \"start\": \"2020-01-06\"}},"
    " \"sites\": {"
    "  \"AMS\": {\"rotation\": {\"people\": [\"alice\", \"bram\", \"carla\"], "
    "\"length\": "
    "\"1d\", \"handoff\": \"09:00\", \"zone\": \"Europe/Amsterdam\", "
    "\"start\": \"2020-01-06\"}, \"overrides\": [{\"person\": \"alice\", "
    "\"from\": \"2020-01-01T00:00:00Z\", \"until\": "
    "\"2099-01-01T00:00:00Z\"}]},"
    "  \"NYC\": {\"rotation\": {\"people\": [\"nina\", \"oscar\"], \"length\": "
    "\"1d\", \"handoff\": \"08:00\", \"zone\": \"America/New_York\", "
    "\"start\": \"2020-01-06\"}, \"overrides\": [{\"person\": \"nina\", "
    "\"from\": \"2020-01-01T00:00:00Z\", \"until\": "
    "\"2099-01-01T00:00:00Z\"}]},"
    "  \"SGP\": {}},"
    " \"escalation\": {\"levels\": ["
    "   {\"target\": \"site_manager\", \"ack\": \"5m\"},"
    "   {\"target\": \"site_backup\", \"ack\": \"10m\"},"
    "   {\"target\": \"global_manager\", \"ack\": \"10m\"}], \"repeat\": 1}}";

static struct schedule *
sched(void)
{
    struct schedule *s = NULL;
    struct im_err e;
    if (schedule_parse(SCHEDULE, strlen(SCHEDULE), &s, &e) != 0)
        fprintf(stderr, "  schedule_parse: %s\n", im_errmsg(&e));
    return s;
}

/* AMS-7, owned by AMS, declared by admin, affecting AMS and NYC. */
static struct major_record *
declared(void)
{
    struct major_record *m = calloc(1, sizeof *m);
    if (m == NULL)
        abort();
    strcpy(m->incident, "AMS-7");
    strcpy(m->origin, "AMS");
    strcpy(m->owner, "AMS");
    m->declared_ms = T0;
    strcpy(m->declared_by, "admin");
    strcpy(m->reason, "payments down");
    strcpy(m->affects[0], "AMS");
    strcpy(m->affects[1], "NYC");
    m->affects_count = 2;
    return m;
}

static int
policy_of(const struct schedule *s, struct esc_policy *p)
{
    return (int)majors_policy(s, COORD_MIN_ACK_MS_DEFAULT, p);
}

TEST(registration_pages)
{
    struct schedule *s = sched();
    struct major_record *m = declared();
    struct esc_policy p;
    struct im_err e;
    REQUIRE(s != NULL);
    CHECK_EQ_INT(policy_of(s, &p), 0);
    REQUIRE(majors_start(m, &p, s, T0, &e) == 0);

    /* Level 1 (alice at AMS), the global manager through the owner site,
     * NYC's manager; AMS's manager is alice already: not paged twice. */
    REQUIRE(m->pending_count == 3);
    CHECK_EQ_INT(m->issued, 3);
    CHECK_EQ_INT(m->pending[0].n, 1);
    CHECK_EQ_STR(m->pending[0].site, "AMS");
    CHECK_EQ_STR(m->pending[0].person, "alice");
    CHECK_EQ_INT(m->pending[0].level, 1);
    CHECK_EQ_INT(m->pending[0].run, 1);
    CHECK_EQ_STR(m->pending[1].site, "AMS");
    CHECK_EQ_STR(m->pending[1].person, "gina");
    CHECK_EQ_INT(m->pending[1].level, 0);
    CHECK_EQ_STR(m->pending[1].text,
                 "major incident AMS-7 declared by admin: payments down; "
                 "owner AMS; affects AMS, NYC; you are the global incident "
                 "manager on call");
    CHECK_EQ_STR(m->pending[2].site, "NYC");
    CHECK_EQ_STR(m->pending[2].person, "nina");
    CHECK_EQ_STR(m->pending[2].text, "major incident AMS-7 (owner AMS) affects "
                                     "NYC: declared by admin: payments down");
    CHECK_EQ_STR(m->global_manager, "gina");
    CHECK_EQ_STR(m->target, "site manager of AMS");
    CHECK_EQ_STR(m->paged_site, "AMS");
    CHECK_EQ_STR(m->paged_person, "alice");
    CHECK_EQ_INT(m->levels, 3);
    CHECK_EQ_INT(m->runs, 2);
    CHECK_EQ_INT(m->esc.deadline_ms, T0 + 5 * MIN);
    for (size_t i = 0; i < m->pending_count; i++)
        CHECK_EQ_INT(m->pending[i].issued_ms, T0);

    /* Without a schedule: the built-in policy, pages name nobody, and one
     * page per site still (level 1 and the global manager are both for
     * AMS's channels). */
    struct major_record *n = declared();
    CHECK_EQ_INT(policy_of(NULL, &p), 0);
    CHECK_EQ_INT(p.levels_count, 3);
    CHECK_EQ_INT(p.repeat, 2);
    REQUIRE(majors_start(n, &p, NULL, T0, &e) == 0);
    REQUIRE(n->pending_count == 2);
    CHECK_EQ_STR(n->pending[0].site, "AMS");
    CHECK_EQ_STR(n->pending[0].person, "");
    CHECK_EQ_STR(n->pending[1].site, "NYC");
    CHECK_EQ_STR(n->global_manager, "");
    free(n);
    free(m);
    schedule_free(s);
}

TEST(ladder_pages_and_records)
{
    struct schedule *s = sched();
    struct major_record *m = declared();
    struct esc_policy p;
    struct im_err e;
    int stepped;
    REQUIRE(s != NULL);
    policy_of(s, &p);
    REQUIRE(majors_start(m, &p, s, T0, &e) == 0);

    /* Before the deadline nothing; at it level 2 (bram), id 4. */
    REQUIRE(majors_tick(m, &p, s, T0 + 5 * MIN - 1, &stepped, &e) == 0);
    CHECK_EQ_INT(stepped, 0);
    CHECK_EQ_INT(m->issued, 3);
    REQUIRE(majors_tick(m, &p, s, T0 + 5 * MIN, &stepped, &e) == 0);
    CHECK_EQ_INT(stepped, 1);
    REQUIRE(m->pending_count == 4);
    CHECK_EQ_INT(m->pending[3].n, 4);
    /* T0 falls in bram's shift; alice covers it by override, so the backup
     * is the next in the rotation after both: carla. */
    CHECK_EQ_STR(m->pending[3].person, "carla");
    CHECK_EQ_INT(m->pending[3].level, 2);
    CHECK_EQ_STR(m->target, "site backup of AMS");
    CHECK_EQ_STR(m->paged_person, "carla");

    /* Recorded pages leave the list once; unknown ids change nothing. */
    CHECK_EQ_INT(majors_recorded(m, 1), 1);
    CHECK_EQ_INT(majors_recorded(m, 1), 0);
    CHECK_EQ_INT(majors_recorded(m, 99), 0);
    CHECK_EQ_INT(m->recorded, 1);
    CHECK_EQ_INT(m->pending_count, 3);

    /* The owner moved: the next level pages the new owner's people. */
    strcpy(m->owner, "NYC");
    REQUIRE(majors_tick(m, &p, s, T0 + 15 * MIN, &stepped, &e) == 0);
    CHECK_EQ_STR(m->pending[3].site, "NYC");
    CHECK_EQ_STR(m->pending[3].person, "gina");
    CHECK_EQ_STR(m->target, "global manager");
    REQUIRE(majors_tick(m, &p, s, T0 + 25 * MIN, &stepped, &e) == 0);
    CHECK_EQ_STR(m->pending[4].site, "NYC");
    CHECK_EQ_STR(m->pending[4].person, "nina");
    CHECK_EQ_INT(m->pending[4].run, 2);
    CHECK_EQ_INT(m->issued, 6);

    /* Unrecorded for MAJORS_NOTICE_TTL_MS: given up, counted. The first
     * pages were issued at T0, the last at T0 + 25m. */
    CHECK_EQ_INT(majors_expire(m, T0 + MAJORS_NOTICE_TTL_MS - 1), 0);
    CHECK_EQ_INT(majors_expire(m, T0 + MAJORS_NOTICE_TTL_MS), 2);
    CHECK_EQ_INT(m->expired, 2);
    CHECK_EQ_INT(m->pending_count, 3);
    CHECK_EQ_INT(m->pending[0].n, 4);

    /* Acknowledged: no more levels. */
    REQUIRE(escalate_ack(&m->esc, "site NYC", T0 + 26 * MIN, &e) == 0);
    REQUIRE(majors_tick(m, &p, s, T0 + 60 * MIN, &stepped, &e) == 0);
    CHECK_EQ_INT(stepped, 0);
    CHECK_EQ_INT(m->issued, 6);
    free(m);
    schedule_free(s);
}

TEST(operator_escalation_and_help)
{
    struct schedule *s = sched();
    struct major_record *m = declared();
    struct esc_policy p;
    struct im_err e;
    int stepped;
    REQUIRE(s != NULL);
    policy_of(s, &p);
    REQUIRE(majors_start(m, &p, s, T0, &e) == 0);

    REQUIRE(majors_help(m, s, "NYC", "gina", T0 + MIN, &e) == 0);
    REQUIRE(m->pending_count == 4);
    CHECK_EQ_STR(m->pending[3].site, "NYC");
    CHECK_EQ_STR(m->pending[3].person, "nina");
    CHECK_EQ_INT(m->pending[3].level, 0);
    CHECK_EQ_STR(m->pending[3].text, "gina asks NYC to help with a major "
                                     "incident owned by AMS");
    CHECK_EQ_STR(m->paged_person, "alice"); /* help is not a level */
    CHECK_EQ_INT(majors_help(m, s, "NYC", "gina", T0 + MIN, &e), IM_EEXIST);
    CHECK_EQ_INT(majors_help(m, s, "AMS", "gina", T0 + MIN, &e), IM_EINVAL);
    CHECK_EQ_INT(m->issued, 4);

    /* The next level now, with a copy for the helping site. */
    REQUIRE(majors_escalate(m, &p, s, "gina", "spreading", T0 + 2 * MIN, &e) ==
            0);
    REQUIRE(m->pending_count == 6);
    CHECK_EQ_STR(m->pending[4].person, "carla");
    CHECK_EQ_INT(m->pending[4].level, 2);
    CHECK_EQ_STR(m->pending[4].text,
                 "escalated by gina (spreading) before the deadline; now level "
                 "2 of 3 (site backup of AMS), run 1 of 2, acknowledge within "
                 "10m 00s");
    CHECK_EQ_STR(m->pending[5].site, "NYC");
    CHECK_EQ_STR(m->pending[5].person, "nina");
    CHECK_EQ_INT(m->pending[5].level, 2);
    CHECK_EQ_INT(m->esc.deadline_ms, T0 + 12 * MIN);

    /* A full list: the oldest pages give way, counted as expired. */
    for (int i = 0; i < 30; i++)
        REQUIRE(majors_escalate(m, &p, s, "gina", "", T0 + 3 * MIN, &e) == 0 ||
                m->esc.phase == ESC_EXHAUSTED);
    CHECK(m->pending_count <= MAJORS_PENDING_MAX);
    CHECK_EQ_INT(m->esc.phase, ESC_EXHAUSTED);
    CHECK_EQ_INT(m->issued, m->pending_count + m->expired + m->recorded);
    CHECK_EQ_INT(m->pending[m->pending_count - 1].n, m->issued);
    CHECK_EQ_STR(m->target, "global manager (escalation exhausted)");
    CHECK_EQ_INT(majors_escalate(m, &p, s, "gina", "", T0 + 4 * MIN, &e),
                 IM_ESTATE);

    /* Resolved: pages dropped (counted), nothing more happens. */
    uint32_t issued = m->issued;
    majors_resolve(m, "resolved at AMS", T0 + 5 * MIN);
    CHECK_EQ_INT(m->pending_count, 0);
    CHECK_EQ_INT(m->issued, m->expired + m->recorded);
    REQUIRE(majors_tick(m, &p, s, T0 + 99 * MIN, &stepped, &e) == 0);
    CHECK_EQ_INT(stepped, 0);
    CHECK_EQ_INT(majors_escalate(m, &p, s, "gina", "", T0 + 6 * MIN, &e),
                 IM_ESTATE);
    CHECK(strstr(e.msg, "AMS-7 was resolved at") != NULL);
    CHECK_EQ_INT(majors_help(m, s, "SGP", "gina", T0 + 6 * MIN, &e), IM_ESTATE);
    CHECK_EQ_INT(m->issued, issued);
    free(m);
    schedule_free(s);
}

TEST(policy_with_min_ack)
{
    struct esc_policy p;
    struct schedule *s;
    struct im_err e;
    static const char drill[] =
        "{\"version\": 1, \"global\": {\"rotation\": {\"people\": [\"g\"], "
        "\"length\": \"1w\", \"handoff\": \"09:00\", \"zone\": \"UTC\", "
        "\"start\": \"2020-01-06\"}}, \"sites\": {\"AMS\": {}},"
        " \"escalation\": {\"levels\": [{\"target\": \"site_manager\", "
        "\"ack\": \"5s\"}, {\"target\": \"global_manager\", \"ack\": "
        "\"2m\"}]}}";
    REQUIRE(schedule_parse(drill, strlen(drill), &s, &e) == 0);
    /* The default min_ack raises the drill's 5 s; a drill's keeps it. */
    CHECK_EQ_INT(majors_policy(s, COORD_MIN_ACK_MS_DEFAULT, &p), 1);
    CHECK_EQ_INT(p.levels[0].ack_ms, 60 * SEC);
    CHECK_EQ_INT(p.levels[1].ack_ms, 2 * MIN);
    CHECK_EQ_INT(majors_policy(s, COORD_MIN_ACK_MS_FLOOR, &p), 0);
    CHECK_EQ_INT(p.levels[0].ack_ms, 5 * SEC);
    CHECK_EQ_INT(escalate_policy_check(&p, "", &e), 0);
    schedule_free(s);
}

TEST(notice_ids)
{
    CHECK_EQ_INT(majors_notice_n("AMS-1", "AMS-1/3"), 3);
    CHECK_EQ_INT(majors_notice_n("AMS-1", "AMS-1/4294967295"), 4294967295u);
    CHECK_EQ_INT(majors_notice_n("AMS-1", "AMS-1/4294967296"), 0);
    CHECK_EQ_INT(majors_notice_n("AMS-1", "AMS-10/3"), 0);
    CHECK_EQ_INT(majors_notice_n("AMS-1", "AMS-1/0"), 0);
    CHECK_EQ_INT(majors_notice_n("AMS-1", "AMS-1/03"), 0);
    CHECK_EQ_INT(majors_notice_n("AMS-1", "AMS-1/"), 0);
    CHECK_EQ_INT(majors_notice_n("AMS-1", "AMS-1/3x"), 0);
    CHECK_EQ_INT(majors_notice_n("AMS-1", "NYC-1/3"), 0);
    CHECK_EQ_INT(majors_notice_n("AMS-1", ""), 0);
}

/* Equal records encode equally (strings are compared up to their NUL, not
 * what a longer earlier value left after it). */
static int
same(const struct major_record *a, const struct major_record *b)
{
    char *ja = records_major_encode(a), *jb = records_major_encode(b);
    int eq = ja != NULL && jb != NULL && strcmp(ja, jb) == 0;
    free(ja);
    free(jb);
    return eq;
}

static struct major_record *
round_trip(const struct major_record *m)
{
    struct major_record *back = calloc(1, sizeof *back);
    struct im_err e;
    char *json = records_major_encode(m);
    if (back == NULL || json == NULL)
        abort();
    if (records_major_decode((const uint8_t *)json, strlen(json), back, &e) !=
        0) {
        fprintf(stderr, "  decode: %s\n  %s\n", im_errmsg(&e), json);
        free(back);
        back = NULL;
    }
    free(json);
    return back;
}

TEST(record_json)
{
    struct schedule *s = sched();
    struct major_record *m = declared(), *back;
    struct esc_policy p;
    struct im_err e;
    int stepped;
    REQUIRE(s != NULL);
    policy_of(s, &p);
    REQUIRE(majors_start(m, &p, s, T0, &e) == 0);
    REQUIRE(majors_help(m, s, "NYC", "gina", T0 + MIN, &e) == 0);
    majors_recorded(m, 2);
    strcpy(m->by, "c1");
    m->term = 42;
    REQUIRE((back = round_trip(m)) != NULL);
    CHECK(memcmp(back, m, sizeof *m) == 0); /* byte for byte, even */

    /* A new leader reading the record carries on exactly as the old one
     * would have: 40 minutes without a tick, then one. */
    REQUIRE(majors_tick(m, &p, s, T0 + 40 * MIN, &stepped, &e) == 0);
    REQUIRE(majors_tick(back, &p, s, T0 + 40 * MIN, &stepped, &e) == 0);
    CHECK_EQ_INT(stepped, 1);
    CHECK(same(back, m));
    CHECK_EQ_INT(back->issued, 6); /* one catch-up page and its copy */
    CHECK_EQ_INT(back->esc.level, 2);
    CHECK_EQ_INT(back->esc.pass, 1);
    free(back);

    /* Acknowledged and resolved records too. */
    REQUIRE(escalate_ack(&m->esc, "site AMS", T0 + 41 * MIN, &e) == 0);
    majors_resolve(m, "no longer open at AMS", T0 + 50 * MIN);
    REQUIRE((back = round_trip(m)) != NULL);
    CHECK(same(back, m));
    CHECK_EQ_INT(back->resolved_ms, T0 + 50 * MIN);
    CHECK_EQ_STR(back->esc.acked_by, "site AMS");
    free(back);
    free(m);
    schedule_free(s);
}

/* Decoding text whose one change from a good record is given. */
static int
decode_with(const char *from, const char *to, struct im_err *e)
{
    struct major_record *m = declared(), *out = calloc(1, sizeof *out);
    struct esc_policy p;
    char *json, *at, *bad;
    int rv;
    majors_default_policy(&p);
    if (out == NULL || majors_start(m, &p, NULL, T0, e) != 0 ||
        (json = records_major_encode(m)) == NULL)
        abort();
    at = strstr(json, from);
    if (at == NULL) {
        fprintf(stderr, "  '%s' not in %s\n", from, json);
        abort();
    }
    bad = malloc(strlen(json) + strlen(to) + 1);
    if (bad == NULL)
        abort();
    memcpy(bad, json, (size_t)(at - json));
    strcpy(bad + (at - json), to);
    strcat(bad, at + strlen(from));
    out->issued = 77;
    rv = records_major_decode((const uint8_t *)bad, strlen(bad), out, e);
    if (rv != 0)
        CHECK_EQ_INT(out->issued, 77); /* untouched */
    free(bad);
    free(json);
    free(out);
    free(m);
    return rv;
}

TEST(record_refused)
{
    struct im_err e;
    CHECK_EQ_INT(decode_with("\"issued\":2", "\"issued\":2", &e), 0);
    CHECK_EQ_INT(decode_with("{", "[", &e), IM_ECORRUPT);
    CHECK_EQ_INT(decode_with("\"origin\":\"AMS\"", "\"origin\":\"NYC\"", &e),
                 IM_ECORRUPT);
    CHECK(strstr(e.msg, "not an incident of origin NYC") != NULL);
    CHECK_EQ_INT(decode_with("\"owner\":\"AMS\"", "\"owner\":\"ams\"", &e),
                 IM_ECORRUPT);
    CHECK_EQ_STR(e.msg, "field 'owner' is 'ams', not a site code");
    CHECK_EQ_INT(decode_with("[\"AMS\",\"NYC\"]", "[\"AMS\",7]", &e),
                 IM_ECORRUPT);
    CHECK_EQ_STR(e.msg, "affects[1] is not a site code");
    CHECK_EQ_INT(decode_with("\"issued\":2", "\"issued\":1", &e), IM_ECORRUPT);
    CHECK(strstr(e.msg, "pending[1]: notice 2 is not after 1 and at most "
                        "'issued' (1)") != NULL);
    CHECK_EQ_INT(decode_with("\"recorded\":0", "\"recorded\":3", &e),
                 IM_ECORRUPT);
    CHECK_EQ_INT(
        decode_with("\"phase\":\"active\"", "\"phase\":\"asleep\"", &e),
        IM_ECORRUPT);
    CHECK_EQ_INT(decode_with("\"level\":0", "\"level\":-1", &e), IM_ECORRUPT);
    CHECK_EQ_INT(
        decode_with("\"reason\":\"payments down\"", "\"reason\":5", &e),
        IM_ECORRUPT);
    CHECK_EQ_STR(e.msg, "field 'reason' is not a string of at most 160 bytes");
    static char big[MAJORS_RECORD_JSON_MAX + 2];
    struct major_record out;
    memset(big, ' ', sizeof big - 1);
    CHECK_EQ_INT(
        records_major_decode((const uint8_t *)big, sizeof big - 1, &out, &e),
        IM_ETOOBIG);
}

TEST_MAIN(RUN(registration_pages); RUN(ladder_pages_and_records);
          RUN(operator_escalation_and_help); RUN(policy_with_min_ack);
          RUN(notice_ids); RUN(record_json); RUN(record_refused))
