/* test_coord: the coordinator's records (pure) and its fenced writes
 * against a real etcd: a leader whose term is over cannot write, and
 * steps down; the current leader can. Skips the etcd part only if the
 * etcd binary is missing (deploy/deps installs it). */
#include "records.h"
#include "replica.h"

#include "clock.h"
#include "etcd_proc.h"
#include "test.h"

TEST(site_record_round_trip)
{
    struct site_record r = {.state = SITE_DOWN,
                            .since_ms = 123,
                            .last_heartbeat_ms = 100,
                            .open = 3,
                            .owned = 2,
                            .by = "c1",
                            .term = 42,
                            .reason = "silent"};
    struct site_record back;
    struct im_err e = {0};
    char *j = records_site_encode(&r);

    REQUIRE(j != NULL);
    REQUIRE(records_site_decode((uint8_t *)j, strlen(j), &back, &e) == 0);
    CHECK(back.state == SITE_DOWN);
    CHECK_EQ_INT(back.since_ms, 123);
    CHECK_EQ_INT(back.open, 3);
    CHECK_EQ_INT(back.owned, 2);
    CHECK_EQ_INT(back.term, 42);
    CHECK_EQ_STR(back.by, "c1");
    CHECK_EQ_STR(back.reason, "silent");
    free(j);
    /* Not ours: refused with the field named. */
    CHECK_EQ_INT(records_site_decode((const uint8_t *)"[1]", 3, &back, &e),
                 IM_ECORRUPT);
    CHECK_EQ_INT(
        records_site_decode((const uint8_t *)"{\"state\":\"sideways\"}", 20,
                            &back, &e),
        IM_ECORRUPT);
    CHECK(strstr(e.msg, "sideways") != NULL);
    CHECK_EQ_INT(
        records_site_decode((const uint8_t *)"{\"open\":-1}", 11, &back, &e),
        IM_ECORRUPT);
    CHECK(strstr(e.msg, "'open'") != NULL);
}

TEST(assignment_record_round_trip)
{
    struct assignment_record a = {.incident = "AMS-7",
                                  .owner_site = "NYC",
                                  .manager = "dana",
                                  .reason = "failover",
                                  .assigned_at_ms = 5,
                                  .by = "c2",
                                  .term = 9};
    struct assignment_record back;
    struct im_err e = {0};
    char *j = records_assignment_encode(&a);

    REQUIRE(j != NULL);
    REQUIRE(records_assignment_decode((uint8_t *)j, strlen(j), &back, &e) == 0);
    CHECK_EQ_STR(back.incident, "AMS-7");
    CHECK_EQ_STR(back.owner_site, "NYC");
    CHECK_EQ_STR(back.manager, "dana");
    CHECK_EQ_INT(back.term, 9);
    free(j);
    CHECK_EQ_INT(
        records_assignment_decode((const uint8_t *)"{\"owner_site\":\"nyc!\"}",
                                  21, &back, &e),
        IM_ECORRUPT);
}

TEST(incident_origin)
{
    char site[SITE_CODE_MAX + 1];
    CHECK_EQ_INT(records_incident_origin("AMS-42", site), 0);
    CHECK_EQ_STR(site, "AMS");
    CHECK_EQ_INT(records_incident_origin("NYC2-1", site), 0);
    CHECK_EQ_STR(site, "NYC2");
    CHECK_EQ_INT(records_incident_origin("AMS-", site), IM_EINVAL);
    CHECK_EQ_INT(records_incident_origin("AMS42", site), IM_EINVAL);
    CHECK_EQ_INT(records_incident_origin("-4", site), IM_EINVAL);
    CHECK_EQ_INT(records_incident_origin("ams-4", site), IM_EINVAL);
    CHECK_EQ_INT(records_incident_origin("AMS-4x", site), IM_EINVAL);
    CHECK_EQ_INT(records_incident_origin("TOOLONGSITE-4", site), IM_EINVAL);
}

/* A replica set up by hand, without its threads: the fencing of
 * replica_txn is what is under test, not the election loop. */
static struct config cfg;
static struct cfg_coordinator self = {.id = "c1", .api = "tcp://127.0.0.1:1"};

static int
replica_by_hand(struct replica *r, const char *endpoint)
{
    struct im_err e = {0};
    memset(r, 0, sizeof *r);
    cfg.coord.leader_ttl_s = 30;
    cfg.coord.lease_ms = 3000;
    snprintf(cfg.etcd.prefix, sizeof cfg.etcd.prefix, "/t");
    r->cfg = &cfg;
    r->self = &self;
    if (etcd_open(&r->etcd, endpoint, NULL, &e) != 0) {
        fprintf(stderr, "%s\n", im_errmsg(&e));
        return -1;
    }
    records_key(r->k_leader, "/t", "coord", "leader");
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    return 0;
}

static void
replica_by_hand_free(struct replica *r)
{
    etcd_close(&r->etcd);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
}

static const char *etcd_endpoint;

TEST(deposed_leader_cannot_write)
{
    struct replica a;
    struct etcd c;
    struct im_err e = {0};
    struct etcd_kv kv;
    int64_t la = 0, lb = 0, ta = 0, tb = 0, rev = 0;
    struct etcd_op put_a = {.kind = ETCD_OP_PUT,
                            .key = "/t/sites/AMS",
                            .value = "by-a",
                            .value_size = 4};
    struct etcd_op put_b = {.kind = ETCD_OP_PUT,
                            .key = "/t/sites/AMS",
                            .value = "by-b",
                            .value_size = 4};

    REQUIRE(replica_by_hand(&a, etcd_endpoint) == 0);
    REQUIRE(etcd_open(&c, etcd_endpoint, NULL, &e) == 0);

    /* Not leading: refused before any request. */
    CHECK_EQ_INT(replica_txn(&a, NULL, 0, &put_a, 1, NULL, &e), IM_ENOTLEADER);

    /* a wins term ta and writes. */
    REQUIRE(etcd_lease_grant(&c, 30, &la, NULL, &e) == 0);
    REQUIRE(etcd_campaign(&c, a.k_leader, "a", 1, la, &ta, NULL, &e) == 0);
    a.leader = 1;
    a.term = ta;
    a.lease = la;
    a.lease_ok_mono_ms = clock_mono_ms();
    CHECK_EQ_INT(replica_txn(&a, NULL, 0, &put_a, 1, &rev, &e), 0);
    CHECK(rev > ta);

    /* a's lease ends while a still believes it leads (a stalled process);
     * b is elected and decides. */
    REQUIRE(etcd_lease_revoke(&c, la, &e) == 0);
    REQUIRE(etcd_lease_grant(&c, 30, &lb, NULL, &e) == 0);
    REQUIRE(etcd_campaign(&c, a.k_leader, "b", 1, lb, &tb, NULL, &e) == 0);
    REQUIRE(etcd_put(&c, "/t/sites/AMS", "by-b", 4, 0, NULL, &e) == 0);

    /* a's next write is refused, changes nothing, and a steps down. */
    CHECK_EQ_INT(replica_txn(&a, NULL, 0, &put_a, 1, NULL, &e), IM_ESTALE);
    CHECK(strstr(e.msg, "deposed") != NULL);
    CHECK_EQ_INT(a.leader, 0);
    CHECK_EQ_INT(a.deposed, 1);
    REQUIRE(etcd_get(&c, "/t/sites/AMS", &kv, NULL, &e) == 0);
    CHECK_EQ_STR((char *)kv.value, "by-b");
    etcd_kv_free(&kv);
    CHECK_EQ_INT(replica_txn(&a, NULL, 0, &put_a, 1, NULL, &e), IM_ENOTLEADER);

    /* The same replica as b's term: its writes go through, and a failed
     * compare of its own is not deposition. */
    a.leader = 1;
    a.term = tb;
    a.lease_ok_mono_ms = clock_mono_ms();
    CHECK_EQ_INT(replica_txn(&a, NULL, 0, &put_b, 1, NULL, &e), 0);
    {
        struct etcd_cmp absent = {.key = "/t/sites/AMS",
                                  .target = ETCD_CMP_CREATE,
                                  .result = ETCD_EQUAL,
                                  .number = 0};
        CHECK_EQ_INT(replica_txn(&a, &absent, 1, &put_b, 1, NULL, &e),
                     IM_ESTALE);
        CHECK(strstr(e.msg, "compare failed") != NULL);
        CHECK_EQ_INT(a.leader, 1);
    }

    /* A leader whose last keepalive is older than its TTL does not write:
     * its lease may have expired unseen. */
    a.lease_ok_mono_ms = clock_mono_ms() - 31000;
    CHECK_EQ_INT(replica_txn(&a, NULL, 0, &put_b, 1, NULL, &e), IM_ENOTLEADER);

    etcd_lease_revoke(&c, lb, &e);
    etcd_delete(&c, "/t/", ETCD_PREFIX, NULL, NULL, &e);
    etcd_close(&c);
    replica_by_hand_free(&a);
}

int
main(void)
{
    struct etcd_proc proc = {0};
    const char *s = getenv("TEST_SEED");
    test_seed_ = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL);
    RUN(site_record_round_trip);
    RUN(assignment_record_round_trip);
    RUN(incident_origin);
    if (!etcd_proc_available()) {
        printf("test_coord: etcd part SKIPPED: no %s (deploy/deps installs "
               "Debian's etcd-server)\n",
               etcd_proc_bin());
    } else if (etcd_proc_start(&proc) != 0) {
        test_failed_count_++;
        fprintf(stderr, "etcd did not start\n");
    } else {
        etcd_endpoint = proc.client_url;
        RUN(deposed_leader_cannot_write);
        etcd_proc_stop(&proc);
    }
    printf("%s: %d passed, %d failed\n", __FILE__, test_passed_count_,
           test_failed_count_);
    return test_failed_count_ ? 1 : 0;
}
