/* test_etcd: lib/etcd against a real single-member etcd started here, on
 * free loopback ports in a temporary directory. Skips (with a message) only
 * if the etcd binary is missing; deploy/deps installs it. */
#include "etcd.h"

#include <pthread.h>

#include "clock.h"
#include "etcd_proc.h"
#include "test.h"

static struct etcd_proc proc;
static char endpoint[64];

static void
sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int
open_client(struct etcd *c)
{
    struct im_err e = {0};
    int rv = etcd_open(c, endpoint, NULL, &e);
    if (rv != 0)
        fprintf(stderr, "etcd_open: %s\n", im_errmsg(&e));
    return rv;
}

TEST(open_refuses_bad_endpoints)
{
    struct etcd c;
    struct im_err e = {0};
    struct etcd_tls tls = {.cert = "c.pem"};

    CHECK_EQ_INT(etcd_open(&c, "", NULL, &e), IM_EINVAL);
    CHECK(strstr(e.msg, "none given") != NULL);
    CHECK_EQ_INT(etcd_open(&c, "ftp://127.0.0.1:1", NULL, &e), IM_EINVAL);
    CHECK(strstr(e.msg, "'ftp://127.0.0.1:1': use http://") != NULL);
    CHECK_EQ_INT(etcd_open(&c, "http://a:1,,http://b:2", NULL, &e), IM_EINVAL);
    CHECK(strstr(e.msg, "empty entry") != NULL);
    CHECK_EQ_INT(etcd_open(&c, "http://a:1/v3", NULL, &e), IM_EINVAL);
    CHECK(strstr(e.msg, "no path") != NULL);
    CHECK_EQ_INT(etcd_open(&c,
                           "http://a:1,http://a:2,http://a:3,http://a:4,"
                           "http://a:5,http://a:6,http://a:7,http://a:8",
                           NULL, &e),
                 IM_EINVAL);
    CHECK(strstr(e.msg, "more than 7") != NULL);
    CHECK_EQ_INT(etcd_open(&c, "https://a:1", &tls, &e), IM_EINVAL);
    CHECK(strstr(e.msg, "cert without its key") != NULL);
    REQUIRE(etcd_open(&c, " http://a:1/ , https://b:2 ", NULL, &e) == 0);
    CHECK_EQ_INT(c.endpoints_count, 2);
    CHECK_EQ_STR(c.endpoints[0], "http://a:1");
    CHECK_EQ_STR(c.endpoints[1], "https://b:2");
    etcd_close(&c);
}

TEST(put_get_range)
{
    struct etcd c;
    struct im_err e = {0};
    struct etcd_kv kv;
    struct etcd_range r;
    int64_t rev1 = 0, rev2 = 0, rev = 0, n = 0;
    const uint8_t bin[4] = {0, 1, 0xff, 0};

    REQUIRE(open_client(&c) == 0);
    REQUIRE(etcd_put(&c, "/t/a", "one", 3, 0, &rev1, &e) == 0);
    REQUIRE(etcd_put(&c, "/t/a", "two", 3, 0, &rev2, &e) == 0);
    CHECK(rev2 == rev1 + 1);
    REQUIRE(etcd_put(&c, "/t/b", bin, sizeof bin, 0, NULL, &e) == 0);
    REQUIRE(etcd_put(&c, "/u", "outside", 7, 0, NULL, &e) == 0);

    REQUIRE(etcd_get(&c, "/t/a", &kv, &rev, &e) == 0);
    CHECK_EQ_STR(kv.key, "/t/a");
    CHECK_EQ_INT(kv.value_size, 3);
    CHECK_EQ_STR((char *)kv.value, "two");
    CHECK_EQ_INT(kv.create_revision, rev1);
    CHECK_EQ_INT(kv.mod_revision, rev2);
    CHECK_EQ_INT(kv.version, 2);
    CHECK(rev >= rev2 + 2);
    etcd_kv_free(&kv);

    /* Binary values survive base64. */
    REQUIRE(etcd_get(&c, "/t/b", &kv, NULL, &e) == 0);
    CHECK(kv.value_size == sizeof bin &&
          memcmp(kv.value, bin, sizeof bin) == 0);
    etcd_kv_free(&kv);

    /* An old revision shows the old value. */
    REQUIRE(etcd_range(&c, "/t/a", 0, rev1, 0, &r, &e) == 0);
    REQUIRE(r.count == 1);
    CHECK_EQ_STR((char *)r.kvs[0].value, "one");
    etcd_range_free(&r);

    /* A prefix, in key order; a limit says there is more. */
    REQUIRE(etcd_range(&c, "/t/", ETCD_PREFIX, 0, 0, &r, &e) == 0);
    CHECK_EQ_INT(r.count, 2);
    CHECK_EQ_INT(r.total, 2);
    if (r.count == 2) {
        CHECK_EQ_STR(r.kvs[0].key, "/t/a");
        CHECK_EQ_STR(r.kvs[1].key, "/t/b");
    }
    etcd_range_free(&r);
    REQUIRE(etcd_range(&c, "/t/", ETCD_PREFIX | ETCD_KEYS_ONLY, 0, 1, &r, &e) ==
            0);
    CHECK_EQ_INT(r.count, 1);
    CHECK(r.more);
    CHECK_EQ_INT(r.total, 2);
    CHECK_EQ_INT(r.kvs[0].value_size, 0);
    etcd_range_free(&r);
    REQUIRE(etcd_range(&c, "/t/", ETCD_PREFIX | ETCD_SERIALIZABLE, 0, 0, &r,
                       &e) == 0);
    CHECK_EQ_INT(r.count, 2);
    etcd_range_free(&r);

    CHECK_EQ_INT(etcd_get(&c, "/t/none", &kv, NULL, &e), IM_ENOTFOUND);
    CHECK(strstr(e.msg, "no key /t/none") != NULL);

    /* A future revision: etcd's OutOfRange, translated. */
    CHECK_EQ_INT(etcd_range(&c, "/t/a", 0, rev + 1000, 0, &r, &e), IM_ESTALE);
    CHECK(strstr(e.msg, "future revision") != NULL);

    /* Delete one, then a prefix. */
    REQUIRE(etcd_delete(&c, "/t/a", 0, &n, NULL, &e) == 0);
    CHECK_EQ_INT(n, 1);
    REQUIRE(etcd_put(&c, "/t/c", "x", 1, 0, NULL, &e) == 0);
    REQUIRE(etcd_delete(&c, "/t/", ETCD_PREFIX, &n, NULL, &e) == 0);
    CHECK_EQ_INT(n, 2);
    REQUIRE(etcd_get(&c, "/u", &kv, NULL, &e) == 0); /* outside the prefix */
    etcd_kv_free(&kv);

    /* Our limits, before any request. */
    {
        char big[ETCD_KEY_MAX + 2];
        memset(big, 'k', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        CHECK_EQ_INT(etcd_put(&c, big, "v", 1, 0, NULL, &e), IM_ETOOBIG);
        CHECK_EQ_INT(etcd_put(&c, "", "v", 1, 0, NULL, &e), IM_EINVAL);
    }
    etcd_close(&c);
}

TEST(txn_compares)
{
    struct etcd c;
    struct im_err e = {0};
    struct etcd_txn_result r;
    struct etcd_kv kv;
    int64_t rev = 0;

    REQUIRE(open_client(&c) == 0);
    REQUIRE(etcd_put(&c, "/x/k", "v1", 2, 0, &rev, &e) == 0);
    {
        struct etcd_cmp cmp[] = {
            {.key = "/x/k",
             .target = ETCD_CMP_VALUE,
             .result = ETCD_EQUAL,
             .value = "v1",
             .value_size = 2},
            {.key = "/x/k",
             .target = ETCD_CMP_MOD,
             .result = ETCD_EQUAL,
             .number = rev},
            {.key = "/x/new",
             .target = ETCD_CMP_CREATE,
             .result = ETCD_EQUAL,
             .number = 0},
        };
        struct etcd_op ok[] = {
            {.kind = ETCD_OP_PUT,
             .key = "/x/k",
             .value = "v2",
             .value_size = 2},
            {.kind = ETCD_OP_PUT,
             .key = "/x/new",
             .value = "n",
             .value_size = 1},
            {.kind = ETCD_OP_RANGE, .key = "/x/", .flags = ETCD_PREFIX},
        };
        struct etcd_op no[] = {{.kind = ETCD_OP_RANGE, .key = "/x/k"}};

        REQUIRE(etcd_txn(&c, cmp, 3, ok, 3, no, 1, &r, &e) == 0);
        CHECK(r.succeeded);
        CHECK_EQ_INT(r.revision, rev + 1); /* one txn, one revision */
        REQUIRE(r.ranges_count == 3);
        CHECK_EQ_INT(r.ranges[0].count, 0); /* a put: no range */
        CHECK_EQ_INT(r.ranges[2].count, 2); /* sees its own writes */
        etcd_txn_result_free(&r);

        /* The same compares now fail: the value and mod_revision moved and
         * /x/new exists. The failure branch runs and reports the key. */
        REQUIRE(etcd_txn(&c, cmp, 3, ok, 3, no, 1, &r, &e) == 0);
        CHECK(!r.succeeded);
        REQUIRE(r.ranges_count == 1 && r.ranges[0].count == 1);
        CHECK_EQ_STR((char *)r.ranges[0].kvs[0].value, "v2");
        etcd_txn_result_free(&r);

        /* Without a result, a failed compare is IM_ESTALE, and nothing of
         * the success branch happened. */
        CHECK_EQ_INT(etcd_txn(&c, &cmp[1], 1, ok, 1, NULL, 0, NULL, &e),
                     IM_ESTALE);
        CHECK(strstr(e.msg, "compare failed") != NULL);
        REQUIRE(etcd_get(&c, "/x/k", &kv, NULL, &e) == 0);
        CHECK_EQ_INT(kv.mod_revision, rev + 1);
        etcd_kv_free(&kv);
    }
    {
        /* Only one of two racing creators wins. */
        struct etcd_cmp absent = {.key = "/x/once",
                                  .target = ETCD_CMP_VERSION,
                                  .result = ETCD_EQUAL,
                                  .number = 0};
        struct etcd_op put = {.kind = ETCD_OP_PUT,
                              .key = "/x/once",
                              .value = "a",
                              .value_size = 1};
        CHECK_EQ_INT(etcd_txn(&c, &absent, 1, &put, 1, NULL, 0, NULL, &e), 0);
        CHECK_EQ_INT(etcd_txn(&c, &absent, 1, &put, 1, NULL, 0, NULL, &e),
                     IM_ESTALE);
    }
    {
        struct etcd_op put = {.kind = ETCD_OP_PUT, .key = "/x/k"};
        struct etcd_op many[ETCD_TXN_OPS_MAX + 1];
        for (size_t i = 0; i < ETCD_TXN_OPS_MAX + 1; i++)
            many[i] = put;
        CHECK_EQ_INT(etcd_txn(&c, NULL, 0, many, ETCD_TXN_OPS_MAX + 1, NULL, 0,
                              NULL, &e),
                     IM_ETOOBIG);
    }
    etcd_delete(&c, "/x/", ETCD_PREFIX, NULL, NULL, &e);
    etcd_close(&c);
}

TEST(lease_expiry_keepalive_revoke)
{
    struct etcd c;
    struct im_err e = {0};
    struct etcd_kv kv;
    int64_t id = 0, ttl = 0, id2 = 0;
    uint64_t t0, gone_ms = 0;

    REQUIRE(open_client(&c) == 0);
    CHECK_EQ_INT(etcd_lease_grant(&c, 0, &id, &ttl, &e), IM_EINVAL);
    REQUIRE(etcd_lease_grant(&c, 1, &id, &ttl, &e) == 0);
    CHECK(id != 0);
    CHECK(ttl >= 1);
    REQUIRE(etcd_put(&c, "/l/k", "v", 1, id, NULL, &e) == 0);
    REQUIRE(etcd_get(&c, "/l/k", &kv, NULL, &e) == 0);
    CHECK_EQ_INT(kv.lease, id);
    etcd_kv_free(&kv);
    CHECK_EQ_INT(etcd_lease_keepalive(&c, id, &ttl, &e), 0);

    /* Left alone, it expires and takes its key along. */
    t0 = clock_mono_ms();
    while (clock_mono_ms() - t0 < 10000) {
        int rv = etcd_get(&c, "/l/k", &kv, NULL, &e);
        if (rv == IM_ENOTFOUND) {
            gone_ms = clock_mono_ms() - t0;
            break;
        }
        if (rv == 0)
            etcd_kv_free(&kv);
        sleep_ms(100);
    }
    CHECK(gone_ms > 0);
    CHECK(gone_ms <= (uint64_t)ttl * 1000 + 1500);
    CHECK_EQ_INT(etcd_lease_keepalive(&c, id, &ttl, &e), IM_ENOTFOUND);
    CHECK(strstr(e.msg, "expired") != NULL);
    /* A put under a dead lease: etcd's NotFound, translated. */
    CHECK_EQ_INT(etcd_put(&c, "/l/k", "v", 1, id, NULL, &e), IM_ENOTFOUND);
    CHECK(strstr(e.msg, "lease not found") != NULL);

    /* Revoke deletes at once; twice is NotFound. */
    REQUIRE(etcd_lease_grant(&c, 30, &id2, NULL, &e) == 0);
    REQUIRE(etcd_put(&c, "/l/r", "v", 1, id2, NULL, &e) == 0);
    CHECK_EQ_INT(etcd_lease_revoke(&c, id2, &e), 0);
    CHECK_EQ_INT(etcd_get(&c, "/l/r", &kv, NULL, &e), IM_ENOTFOUND);
    CHECK_EQ_INT(etcd_lease_revoke(&c, id2, &e), IM_ENOTFOUND);
    etcd_close(&c);
}

struct seen {
    int puts, deletes;
    char last_key[64], last_value[64];
    int64_t revision;
    int stop_after;
};

static int
on_events(void *arg, const struct etcd_event *ev, size_t n, int64_t revision)
{
    struct seen *s = arg;
    for (size_t i = 0; i < n; i++) {
        if (ev[i].type == ETCD_EVENT_PUT)
            s->puts++;
        else
            s->deletes++;
        snprintf(s->last_key, sizeof s->last_key, "%s", ev[i].kv.key);
        snprintf(s->last_value, sizeof s->last_value, "%s",
                 (const char *)ev[i].kv.value);
    }
    s->revision = revision;
    return s->puts + s->deletes >= s->stop_after;
}

struct writer {
    struct etcd *c;
    int delay_ms;
    atomic_int *stop; /* set instead of writing, if not NULL */
};

static void *
writer_main(void *arg)
{
    struct writer *w = arg;
    struct im_err e = {0};
    sleep_ms(w->delay_ms);
    if (w->stop != NULL) {
        atomic_store(w->stop, 1);
        return NULL;
    }
    etcd_put(w->c, "/w/live", "now", 3, 0, NULL, &e);
    etcd_delete(w->c, "/w/live", 0, NULL, NULL, &e);
    return NULL;
}

TEST(watch)
{
    struct etcd c;
    struct im_err e = {0};
    struct seen s = {0};
    int64_t rev = 0;
    pthread_t t;
    atomic_int stop = 0;
    uint64_t t0;

    REQUIRE(open_client(&c) == 0);
    /* History: from a past revision, every change since. */
    REQUIRE(etcd_put(&c, "/w/a", "1", 1, 0, &rev, &e) == 0);
    REQUIRE(etcd_put(&c, "/w/a", "2", 1, 0, NULL, &e) == 0);
    REQUIRE(etcd_delete(&c, "/w/a", 0, NULL, NULL, &e) == 0);
    REQUIRE(etcd_put(&c, "/other", "x", 1, 0, NULL, &e) == 0);
    s.stop_after = 3;
    CHECK_EQ_INT(
        etcd_watch(&c, "/w/", ETCD_PREFIX, rev, 5000, NULL, on_events, &s, &e),
        0);
    CHECK_EQ_INT(s.puts, 2);
    CHECK_EQ_INT(s.deletes, 1);
    CHECK_EQ_STR(s.last_key, "/w/a");
    CHECK_EQ_INT(s.revision, rev + 2);

    /* Live: a change made while watching arrives. */
    memset(&s, 0, sizeof s);
    s.stop_after = 2;
    {
        struct writer w = {.c = &c, .delay_ms = 300};
        REQUIRE(pthread_create(&t, NULL, writer_main, &w) == 0);
        CHECK_EQ_INT(
            etcd_watch(&c, "/w/live", 0, 0, 5000, NULL, on_events, &s, &e), 0);
        pthread_join(t, NULL);
    }
    CHECK_EQ_INT(s.puts, 1);
    CHECK_EQ_INT(s.deletes, 1);

    /* A bounded watch ends with IM_ETIMEDOUT; a stop flag ends it early. */
    memset(&s, 0, sizeof s);
    s.stop_after = 1;
    t0 = clock_mono_ms();
    CHECK_EQ_INT(etcd_watch(&c, "/w/quiet", 0, 0, 500, NULL, on_events, &s, &e),
                 IM_ETIMEDOUT);
    CHECK(clock_mono_ms() - t0 < 3000);
    {
        struct writer w = {.c = &c, .delay_ms = 200, .stop = &stop};
        REQUIRE(pthread_create(&t, NULL, writer_main, &w) == 0);
        t0 = clock_mono_ms();
        CHECK_EQ_INT(
            etcd_watch(&c, "/w/quiet", 0, 0, 20000, &stop, on_events, &s, &e),
            IM_ECLOSED);
        CHECK(clock_mono_ms() - t0 < 3000);
        pthread_join(t, NULL);
    }
    CHECK_EQ_INT(s.puts, 0);
    etcd_close(&c);
}

TEST(election_and_fencing)
{
    struct etcd c;
    struct im_err e = {0};
    struct etcd_kv holder = {0}, kv;
    int64_t la = 0, lb = 0, ta = 0, tb = 0, again = 0;
    const char *key = "/el/leader";

    REQUIRE(open_client(&c) == 0);
    REQUIRE(etcd_lease_grant(&c, 30, &la, NULL, &e) == 0);
    REQUIRE(etcd_lease_grant(&c, 30, &lb, NULL, &e) == 0);
    CHECK_EQ_INT(etcd_campaign(&c, key, "a", 1, 0, &ta, NULL, &e), IM_EINVAL);
    REQUIRE(etcd_campaign(&c, key, "a", 1, la, &ta, NULL, &e) == 0);
    CHECK(ta > 0);
    /* A retry by the leader is idempotent: same term. */
    CHECK_EQ_INT(etcd_campaign(&c, key, "a", 1, la, &again, NULL, &e), 0);
    CHECK_EQ_INT(again, ta);
    /* b loses and learns who leads. */
    CHECK_EQ_INT(etcd_campaign(&c, key, "b", 1, lb, &tb, &holder, &e),
                 IM_EBUSY);
    CHECK_EQ_STR((char *)holder.value, "a");
    CHECK_EQ_INT(holder.create_revision, ta);
    CHECK(strstr(e.msg, "a leads") != NULL);
    etcd_kv_free(&holder);
    REQUIRE(etcd_leader(&c, key, &kv, &e) == 0);
    CHECK_EQ_STR((char *)kv.value, "a");
    etcd_kv_free(&kv);

    /* a's fenced write goes through while it leads. */
    {
        struct etcd_cmp fence = etcd_cmp_leader(key, ta);
        struct etcd_op w = {.kind = ETCD_OP_PUT,
                            .key = "/el/decision",
                            .value = "by-a",
                            .value_size = 4};
        CHECK_EQ_INT(etcd_txn(&c, &fence, 1, &w, 1, NULL, 0, NULL, &e), 0);
    }
    /* a's lease ends (as when a stalls past its TTL); b takes over. */
    REQUIRE(etcd_lease_revoke(&c, la, &e) == 0);
    REQUIRE(etcd_campaign(&c, key, "b", 1, lb, &tb, NULL, &e) == 0);
    CHECK(tb > ta);
    {
        /* The deposed a still believes it leads: its write fails and
         * b's decision stands. */
        struct etcd_cmp fa = etcd_cmp_leader(key, ta),
                        fb = etcd_cmp_leader(key, tb);
        struct etcd_op wb = {.kind = ETCD_OP_PUT,
                             .key = "/el/decision",
                             .value = "by-b",
                             .value_size = 4};
        struct etcd_op wa = {.kind = ETCD_OP_PUT,
                             .key = "/el/decision",
                             .value = "by-a-late",
                             .value_size = 9};
        CHECK_EQ_INT(etcd_txn(&c, &fb, 1, &wb, 1, NULL, 0, NULL, &e), 0);
        CHECK_EQ_INT(etcd_txn(&c, &fa, 1, &wa, 1, NULL, 0, NULL, &e),
                     IM_ESTALE);
        REQUIRE(etcd_get(&c, "/el/decision", &kv, NULL, &e) == 0);
        CHECK_EQ_STR((char *)kv.value, "by-b");
        etcd_kv_free(&kv);
    }
    /* Resign: only the current term may, and only once. */
    CHECK_EQ_INT(etcd_resign(&c, key, ta, &e), IM_ESTALE);
    CHECK_EQ_INT(etcd_resign(&c, key, tb, &e), 0);
    CHECK_EQ_INT(etcd_leader(&c, key, &kv, &e), IM_ENOTFOUND);
    CHECK_EQ_INT(etcd_resign(&c, key, tb, &e), IM_ESTALE);
    etcd_lease_revoke(&c, lb, &e);
    etcd_close(&c);
}

TEST(endpoints_failover_and_unreachable)
{
    struct etcd c;
    struct im_err e = {0};
    struct etcd_kv kv;
    char list[256];
    int dead = etcd_proc_free_port(), dead2 = etcd_proc_free_port();

    /* A dead member first: the call moves on to the live one, and the next
     * call starts there. */
    snprintf(list, sizeof list, "http://127.0.0.1:%d,%s", dead, endpoint);
    REQUIRE(etcd_open(&c, list, NULL, &e) == 0);
    CHECK_EQ_INT(etcd_put(&c, "/f/k", "v", 1, 0, NULL, &e), 0);
    CHECK_EQ_INT(atomic_load(&c.preferred), 1);
    CHECK_EQ_INT(etcd_get(&c, "/f/k", &kv, NULL, &e), 0);
    etcd_kv_free(&kv);
    etcd_close(&c);

    /* None answers: IM_EUNREACH naming each. */
    snprintf(list, sizeof list, "http://127.0.0.1:%d,http://127.0.0.1:%d", dead,
             dead2);
    REQUIRE(etcd_open(&c, list, NULL, &e) == 0);
    CHECK_EQ_INT(etcd_put(&c, "/f/k", "v", 1, 0, NULL, &e), IM_EUNREACH);
    CHECK(strstr(e.msg, "no endpoint answered") != NULL);
    {
        char a[64];
        snprintf(a, sizeof a, "127.0.0.1:%d", dead2);
        CHECK(strstr(e.msg, a) != NULL);
    }
    etcd_close(&c);
}

/* TLS with client certificates: an etcd that requires them, a client that
 * presents one, and one that does not. Needs the openssl command. */
TEST(tls_client_certs)
{
    struct etcd_proc tp = {0};
    struct etcd c;
    struct im_err e = {0};
    struct etcd_tls tls = {0};
    struct etcd_kv kv;
    char tmpl[] = "/tmp/im-etcd-XXXXXX", cmd[4096];

    if (system("command -v openssl >/dev/null 2>&1") != 0) {
        fprintf(stderr, "test_etcd: openssl missing: TLS test skipped\n");
        return;
    }
    REQUIRE(mkdtemp(tmpl) != NULL);
    snprintf(tp.dir, sizeof tp.dir, "%s", tmpl);
    snprintf(
        cmd, sizeof cmd,
        "set -e; cd %s; "
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
        "-keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca 2>/dev/null; "
        "for n in server client; do "
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
        "-keyout $n.key -out $n.csr -subj /CN=$n 2>/dev/null; "
        "printf "
        "'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth,"
        "clientAuth\\n' > $n.ext; "
        "openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
        "-out $n.pem -days 2 -extfile $n.ext 2>/dev/null; done",
        tp.dir);
    REQUIRE(system(cmd) == 0);
    snprintf(tp.extra, sizeof tp.extra,
             "--cert-file %s/server.pem --key-file %s/server.key "
             "--client-cert-auth --trusted-ca-file %s/ca.pem",
             tp.dir, tp.dir, tp.dir);
    snprintf(tp.curl_extra, sizeof tp.curl_extra,
             "--cacert %s/ca.pem --cert %s/client.pem --key %s/client.key",
             tp.dir, tp.dir, tp.dir);
    if (etcd_proc_start_scheme(&tp, "https") != 0) {
        CHECK(!"etcd with TLS started");
        etcd_proc_stop(&tp);
        return;
    }
    snprintf(tls.ca, sizeof tls.ca, "%s/ca.pem", tp.dir);
    snprintf(tls.cert, sizeof tls.cert, "%s/client.pem", tp.dir);
    snprintf(tls.key, sizeof tls.key, "%s/client.key", tp.dir);
    REQUIRE(etcd_open(&c, tp.client_url, &tls, &e) == 0);
    CHECK_EQ_INT(etcd_put(&c, "/tls/k", "secret", 6, 0, NULL, &e), 0);
    CHECK_EQ_INT(etcd_get(&c, "/tls/k", &kv, NULL, &e), 0);
    if (e.code == 0) {
        CHECK_EQ_STR((char *)kv.value, "secret");
        etcd_kv_free(&kv);
    }
    etcd_close(&c);

    /* No client certificate: refused in the handshake. */
    tls.cert[0] = tls.key[0] = '\0';
    REQUIRE(etcd_open(&c, tp.client_url, &tls, &e) == 0);
    CHECK_EQ_INT(etcd_put(&c, "/tls/k", "x", 1, 0, NULL, &e), IM_EUNREACH);
    etcd_close(&c);
    /* An unknown CA: the server is not trusted. */
    snprintf(tls.ca, sizeof tls.ca, "%s/client.pem", tp.dir);
    REQUIRE(etcd_open(&c, tp.client_url, &tls, &e) == 0);
    CHECK_EQ_INT(etcd_get(&c, "/tls/k", &kv, NULL, &e), IM_EUNREACH);
    CHECK(strstr(e.msg, "certificate") != NULL || strstr(e.msg, "SSL") != NULL);
    etcd_close(&c);
    etcd_proc_stop(&tp);
}

/* Last: the member is killed; calls fail fast and say so. */
TEST(killed_member)
{
    struct etcd c;
    struct im_err e = {0};
    uint64_t t0;

    REQUIRE(open_client(&c) == 0);
    etcd_proc_stop(&proc);
    t0 = clock_mono_ms();
    CHECK_EQ_INT(etcd_put(&c, "/k", "v", 1, 0, NULL, &e), IM_EUNREACH);
    CHECK(strstr(e.msg, endpoint) != NULL);
    CHECK(clock_mono_ms() - t0 < 2000);
    etcd_close(&c);
}

int
main(void)
{
    if (!etcd_proc_available()) {
        printf("test_etcd: SKIPPED: no %s (deploy/deps installs Debian's "
               "etcd-server)\n",
               etcd_proc_bin());
        printf("%s: 0 passed, 0 failed\n", __FILE__);
        return 0;
    }
    if (etcd_proc_start(&proc) != 0) {
        printf("%s: 0 passed, 1 failed (etcd did not start)\n", __FILE__);
        return 1;
    }
    snprintf(endpoint, sizeof endpoint, "%s", proc.client_url);
    RUN(open_refuses_bad_endpoints);
    RUN(put_get_range);
    RUN(txn_compares);
    RUN(lease_expiry_keepalive_revoke);
    RUN(watch);
    RUN(election_and_fencing);
    RUN(endpoints_failover_and_unreachable);
    RUN(tls_client_certs);
    RUN(killed_member);
    etcd_proc_stop(&proc);
    printf("%s: %d passed, %d failed\n", __FILE__, test_passed_count_,
           test_failed_count_);
    return test_failed_count_ ? 1 : 0;
}
