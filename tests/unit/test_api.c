/* Tests of node/api over a real NNG socket (ipc:// in a temporary
 * directory), with the real store and committer in-process: every
 * request-level refusal (malformed, unsigned, unknown key, forged, clock
 * skew, too many ops, oversized, viewer writes) answers with its code and
 * changes nothing; concurrent clients are all answered. Runs under ASan and
 * TSan in `make test`. */
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <semaphore.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "client.h"
#include "clock.h"
#include "commit.h"
#include "config.h"
#include "store.h"
#include "test.h"

static char tmp_root[] = "/tmp/im-test-api-XXXXXX";
static char url[300];
static struct im_key site_key, admin_key, viewer_key, stranger_key;
static struct config *cfg;
static struct store store;
static struct committer commit;
static struct api api;

static Im__Response *
raw_call(const void *data, size_t size, int timeout_ms, int *rv_out)
{
    nng_socket s;
    nng_msg *msg;
    Im__Response *resp = NULL;
    int rv;

    nng_req0_open(&s);
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, timeout_ms);
    nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    if ((rv = nng_dial(s, url, NULL, 0)) == 0) {
        nng_msg_alloc(&msg, size);
        memcpy(nng_msg_body(msg), data, size);
        if ((rv = nng_sendmsg(s, msg, 0)) != 0)
            nng_msg_free(msg);
        else if ((rv = nng_recvmsg(s, &msg, 0)) == 0) {
            resp = im__response__unpack(NULL, nng_msg_len(msg), nng_msg_body(msg));
            nng_msg_free(msg);
        }
    }
    nng_close(s);
    *rv_out = rv;
    return resp;
}

/* Signs `body` (an encoded Request) with k, optionally corrupting things. */
static Im__Response *
signed_call(const struct im_key *k, const uint8_t *body, size_t body_size,
            int flip_body_after_signing)
{
    Im__SignedRequest sreq = IM__SIGNED_REQUEST__INIT;
    uint8_t sig[KEY_SIG_BYTES], *copy = malloc(body_size + 1), *out;
    size_t size;
    int rv;
    Im__Response *resp;

    memcpy(copy, body, body_size);
    key_sign(k, KEY_CTX_REQUEST, copy, body_size, sig);
    if (flip_body_after_signing)
        copy[body_size / 2] ^= 0x20;
    sreq.body.data = copy;
    sreq.body.len = body_size;
    sreq.key.data = (uint8_t *)k->pk;
    sreq.key.len = KEY_PUB_BYTES;
    sreq.sig.data = sig;
    sreq.sig.len = sizeof sig;
    size = im__signed_request__get_packed_size(&sreq);
    out = malloc(size);
    im__signed_request__pack(&sreq, out);
    resp = raw_call(out, size, 5000, &rv);
    free(out);
    free(copy);
    return resp;
}

static size_t
ping_request(uint8_t *buf, size_t n_ops, uint64_t ts_ms)
{
    Im__Request req = IM__REQUEST__INIT;
    Im__Op op = IM__OP__INIT;
    Im__Ping ping = IM__PING__INIT;
    Im__Op **ops = calloc(n_ops ? n_ops : 1, sizeof *ops);
    uint8_t nonce[16] = {1};
    size_t size;

    op.kind_case = IM__OP__KIND_PING;
    op.ping = &ping;
    for (size_t i = 0; i < n_ops; i++)
        ops[i] = &op;
    req.ts_ms = ts_ms;
    req.nonce.data = nonce;
    req.nonce.len = sizeof nonce;
    req.n_ops = n_ops;
    req.ops = ops;
    size = im__request__pack(&req, buf);
    free(ops);
    return size;
}

static uint64_t
head_seq(void)
{
    struct store_head h;
    MDB_txn *txn;
    if (store_read_begin(&store, &txn, NULL) != 0)
        return UINT64_MAX;
    store_head_get(txn, &store, "AMS", &h);
    store_read_end(txn);
    return h.seq;
}

static int
open_incident(struct client *c, const char *title, Im__Response **resp)
{
    Im__Op op = IM__OP__INIT, *ops[1] = {&op};
    Im__Write w = IM__WRITE__INIT;
    Im__Body b = IM__BODY__INIT;
    Im__Opened o = IM__OPENED__INIT;
    struct im_err e = {0};

    o.title = (char *)title;
    o.service = "shop";
    o.impact = IM__LEVEL__LEVEL_MEDIUM;
    o.urgency = IM__LEVEL__LEVEL_LOW;
    b.kind_case = IM__BODY__KIND_OPENED;
    b.opened = &o;
    w.incident = "";
    w.body = &b;
    op.kind_case = IM__OP__KIND_WRITE;
    op.write = &w;
    int rv = client_call(c, ops, 1, resp, &e);
    if (rv != 0)
        fprintf(stderr, "open_incident '%s': %s\n", title, im_errmsg(&e));
    return rv;
}

TEST(garbage_and_unsigned_refused)
{
    static const uint8_t junk[] = {0xff, 0x01, 0x02, 0x99, 0x00, 0x13};
    Im__SignedRequest sreq = IM__SIGNED_REQUEST__INIT;
    uint8_t body[256], out[512];
    uint64_t before = head_seq();
    Im__Response *r;
    int rv;

    r = raw_call(junk, sizeof junk, 5000, &rv);
    REQUIRE(r != NULL);
    CHECK_EQ_INT(r->code, IM_EPROTO);
    CHECK_EQ_INT(r->n_results, 0);
    im__response__free_unpacked(r, NULL);

    /* A well-formed request with no signature at all. */
    sreq.body.len = ping_request(body, 1, clock_wall_ms());
    sreq.body.data = body;
    r = raw_call(out, im__signed_request__pack(&sreq, out), 5000, &rv);
    REQUIRE(r != NULL);
    CHECK_EQ_INT(r->code, IM_EPROTO);
    CHECK(strstr(r->error, "unsigned") != NULL);
    im__response__free_unpacked(r, NULL);
    CHECK_EQ_INT(head_seq(), before);
}

TEST(unknown_key_forged_and_skewed_refused)
{
    uint8_t body[256];
    size_t n = ping_request(body, 1, clock_wall_ms());
    Im__Response *r;

    r = signed_call(&stranger_key, body, n, 0);
    REQUIRE(r != NULL);
    CHECK_EQ_INT(r->code, IM_EUNKNOWNKEY);
    CHECK(strstr(r->error, "unknown key ed25519:") != NULL);
    im__response__free_unpacked(r, NULL);

    r = signed_call(&admin_key, body, n, 1);
    REQUIRE(r != NULL);
    CHECK_EQ_INT(r->code, IM_EBADSIG);
    im__response__free_unpacked(r, NULL);

    n = ping_request(body, 1, clock_wall_ms() - 10 * 60 * 1000);
    r = signed_call(&admin_key, body, n, 0);
    REQUIRE(r != NULL);
    CHECK_EQ_INT(r->code, IM_ECLOCK);
    im__response__free_unpacked(r, NULL);

    n = ping_request(body, 1, clock_wall_ms());
    r = signed_call(&admin_key, body, n, 0);
    REQUIRE(r != NULL);
    CHECK_EQ_INT(r->code, 0);
    REQUIRE(r->n_results == 1 && r->results[0]->ping != NULL);
    CHECK_EQ_STR(r->results[0]->ping->operator_, "admin");
    CHECK_EQ_STR(r->results[0]->ping->site, "AMS");
    im__response__free_unpacked(r, NULL);
}

TEST(op_count_bounds)
{
    uint8_t *body = malloc(64 * 1024);
    size_t n;
    Im__Response *r;

    n = ping_request(body, 0, clock_wall_ms());
    r = signed_call(&admin_key, body, n, 0);
    REQUIRE(r != NULL);
    CHECK_EQ_INT(r->code, IM_EINVAL);
    im__response__free_unpacked(r, NULL);

    n = ping_request(body, REQ_OPS_MAX + 1, clock_wall_ms());
    r = signed_call(&admin_key, body, n, 0);
    REQUIRE(r != NULL);
    CHECK_EQ_INT(r->code, IM_ETOOBIG);
    im__response__free_unpacked(r, NULL);

    n = ping_request(body, REQ_OPS_MAX, clock_wall_ms());
    r = signed_call(&admin_key, body, n, 0);
    REQUIRE(r != NULL);
    CHECK_EQ_INT(r->code, 0);
    CHECK_EQ_INT(r->n_results, REQ_OPS_MAX);
    im__response__free_unpacked(r, NULL);
    free(body);
}

TEST(oversized_message_dropped_node_survives)
{
    size_t size = REQ_SIZE_MAX + 1024;
    uint8_t *big = calloc(1, size);
    struct client c;
    struct im_err e = {0};
    Im__Response *r;
    int rv;

    r = raw_call(big, size, 500, &rv);
    CHECK(r == NULL);
    free(big);
    REQUIRE(client_open_key(&c, url, &admin_key, &e) == 0);
    CHECK(open_incident(&c, "after oversize", &r) == 0);
    if (r != NULL) {
        CHECK_EQ_INT(r->code, 0);
        im__response__free_unpacked(r, NULL);
    }
    client_close(&c);
}

TEST(viewer_reads_but_cannot_write)
{
    struct client c;
    struct im_err e = {0};
    Im__Response *r = NULL;
    uint64_t before = head_seq();

    REQUIRE(client_open_key(&c, url, &viewer_key, &e) == 0);
    REQUIRE(open_incident(&c, "from a viewer", &r) == 0);
    CHECK_EQ_INT(r->code, 0);
    REQUIRE(r->n_results == 1);
    CHECK_EQ_INT(r->results[0]->code, IM_EDENIED);
    CHECK(strstr(r->results[0]->error, "viewer") != NULL);
    im__response__free_unpacked(r, NULL);
    CHECK_EQ_INT(head_seq(), before);
    client_close(&c);
}

TEST(write_then_read_in_one_request)
{
    struct client c;
    struct im_err e = {0};
    Im__Op w_op = IM__OP__INIT, g_op = IM__OP__INIT, l_op = IM__OP__INIT;
    Im__Op *ops[3] = {&w_op, &g_op, &l_op};
    Im__Write w = IM__WRITE__INIT;
    Im__Body b = IM__BODY__INIT;
    Im__Note note = IM__NOTE__INIT;
    Im__Get g = IM__GET__INIT;
    Im__List l = IM__LIST__INIT;
    Im__Response *r = NULL;
    char id[INCIDENT_ID_MAX + 1];

    REQUIRE(client_open_key(&c, url, &admin_key, &e) == 0);
    REQUIRE(open_incident(&c, "rw", &r) == 0);
    REQUIRE(r->n_results == 1 && r->results[0]->incident != NULL);
    snprintf(id, sizeof id, "%s", r->results[0]->incident->id);
    im__response__free_unpacked(r, NULL);

    note.text = "checked the logs";
    b.kind_case = IM__BODY__KIND_NOTE;
    b.note = &note;
    w.incident = id;
    w.body = &b;
    w_op.kind_case = IM__OP__KIND_WRITE;
    w_op.write = &w;
    g.id = id;
    g.timeline = 1;
    g_op.kind_case = IM__OP__KIND_GET;
    g_op.get = &g;
    l.all = 1;
    l.limit = 2;
    l_op.kind_case = IM__OP__KIND_LIST;
    l_op.list = &l;
    REQUIRE(client_call(&c, ops, 3, &r, &e) == 0);
    REQUIRE(r->n_results == 3);
    CHECK_EQ_INT(r->results[0]->code, 0);
    REQUIRE(r->results[1]->incident != NULL);
    CHECK_EQ_INT(r->results[1]->incident->n_timeline, 2);
    if (r->results[1]->incident->n_timeline == 2)
        CHECK_EQ_STR(r->results[1]->incident->timeline[1]->kind, "note");
    REQUIRE(r->results[2]->list != NULL);
    CHECK_EQ_INT(r->results[2]->list->n_items, 2);
    CHECK(r->results[2]->list->matched >= 2);
    im__response__free_unpacked(r, NULL);

    /* Unknown id: a per-op refusal with the id in the message. */
    g.id = "AMS-999999";
    ops[0] = &g_op;
    REQUIRE(client_call(&c, ops, 1, &r, &e) == 0);
    REQUIRE(r->n_results == 1);
    CHECK_EQ_INT(r->results[0]->code, IM_ENOTFOUND);
    CHECK_EQ_STR(r->results[0]->error, "no incident AMS-999999");
    im__response__free_unpacked(r, NULL);
    client_close(&c);
}

#define CLIENTS 12
#define PER_CLIENT 40

static void *
client_thread(void *arg)
{
    int *ok = arg;
    struct client c;
    struct im_err e = {0};
    Im__Response *r;

    if (client_open_key(&c, url, &admin_key, &e) != 0)
        return NULL;
    for (int i = 0; i < PER_CLIENT; i++) {
        if (open_incident(&c, "concurrent", &r) != 0)
            continue;
        *ok += r->code == 0 && r->n_results == 1 && r->results[0]->code == 0;
        im__response__free_unpacked(r, NULL);
    }
    client_close(&c);
    return NULL;
}

TEST(concurrent_clients)
{
    pthread_t th[CLIENTS];
    int ok[CLIENTS] = {0}, total = 0;
    uint64_t before = head_seq();
    struct im_err e = {0};
    FILE *devnull;

    for (int i = 0; i < CLIENTS; i++)
        pthread_create(&th[i], NULL, client_thread, &ok[i]);
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(th[i], NULL);
        total += ok[i];
    }
    CHECK_EQ_INT(total, CLIENTS * PER_CLIENT);
    CHECK_EQ_INT(head_seq(), before + CLIENTS * PER_CLIENT);
    devnull = fopen("/dev/null", "w");
    CHECK(store_check(&store, NULL, NULL, devnull, &e) == 0);
    fclose(devnull);
}

/* ---- a full write queue: refused at once, nothing applied ---- */

#define FILLER_REQS 200

struct filler {
    struct commit_req req;
    struct commit_op ops[REQ_OPS_MAX];
    Im__Body body;
};

static sem_t fillers_done;

static void
filler_done(struct commit_req *r)
{
    (void)r;
    sem_post(&fillers_done);
}

TEST(full_write_queue_refused_busy)
{
    static struct filler f[FILLER_REQS];
    struct store_txn hold;
    struct client c;
    struct im_err e = {0};
    Im__Response *r = NULL;
    uint64_t before = head_seq();
    int queued = 0, rv = 0;

    REQUIRE(sem_init(&fillers_done, 0, 0) == 0);
    /* Hold LMDB's write lock: the writer blocks in its next begin, so what
     * is submitted stays queued until the queue is full. */
    REQUIRE(store_write_begin(&store, &hold, &e) == 0);
    /* Fill until busy; the writer may take one batch off the queue before
     * it blocks, so fill again after a pause until a pause frees nothing. */
    for (int round = 0; round < 20; round++) {
        int added = 0;
        for (int i = queued; i < FILLER_REQS; i++) {
            im__body__init(&f[i].body); /* no kind: refused by the fold, cheap */
            for (int j = 0; j < REQ_OPS_MAX; j++) {
                f[i].ops[j].incident = "AMS-1";
                f[i].ops[j].body = &f[i].body;
            }
            f[i].req.actor = "filler";
            f[i].req.ops = f[i].ops;
            f[i].req.ops_count = REQ_OPS_MAX;
            f[i].req.done = filler_done;
            if ((rv = commit_submit(&commit, &f[i].req)) != 0)
                break;
            queued++;
            added++;
        }
        if (round > 0 && added == 0)
            break;
        usleep(100 * 1000);
    }
    CHECK_EQ_INT(rv, IM_EBUSY);
    CHECK(queued < FILLER_REQS);

    REQUIRE(client_open_key(&c, url, &admin_key, &e) == 0);
    CHECK(open_incident(&c, "while full", &r) == 0);
    if (r != NULL) {
        CHECK_EQ_INT(r->code, IM_EBUSY);
        CHECK(strstr(r->error, "node busy") != NULL);
        CHECK_EQ_INT(r->n_results, 0);
        im__response__free_unpacked(r, NULL);
        r = NULL;
    }
    store_abort(&hold);
    for (int i = 0; i < queued; i++)
        sem_wait(&fillers_done);
    for (int i = 0; i < queued; i++)
        for (int j = 0; j < REQ_OPS_MAX; j++) {
            CHECK(f[i].ops[j].code != 0);
            free(f[i].ops[j].result);
        }
    CHECK_EQ_INT(head_seq(), before);
    /* Drained: the same write is taken again. */
    CHECK(open_incident(&c, "after", &r) == 0);
    if (r != NULL) {
        CHECK_EQ_INT(r->code, 0);
        im__response__free_unpacked(r, NULL);
    }
    CHECK_EQ_INT(head_seq(), before + 1);
    client_close(&c);
    sem_destroy(&fillers_done);
}

static int
setup(void)
{
    char text[2048], spk[KEY_PUB_TEXT_MAX], apk[KEY_PUB_TEXT_MAX],
        vpk[KEY_PUB_TEXT_MAX], data[256];
    struct im_err e = {0};

    if (mkdtemp(tmp_root) == NULL || keys_init() != 0)
        return -1;
    key_generate(&site_key);
    key_generate(&admin_key);
    key_generate(&viewer_key);
    key_generate(&stranger_key);
    key_pub_encode(site_key.pk, spk);
    key_pub_encode(admin_key.pk, apk);
    key_pub_encode(viewer_key.pk, vpk);
    snprintf(data, sizeof data, "%s/data", tmp_root);
    snprintf(url, sizeof url, "ipc://%s/api.sock", tmp_root);
    snprintf(text, sizeof text,
             "[node]\nsite = AMS\ndata = %s\nlisten = %s\n"
             "[site AMS]\npubkey = %s\n"
             "[operator admin]\npubkey = %s\nrole = admin\n"
             "[operator watcher]\npubkey = %s\nrole = viewer\n",
             data, url, spk, apk, vpk);
    cfg = calloc(1, sizeof *cfg);
    if (config_parse(cfg, "test.conf", text, &e) != 0 ||
        store_open(&store, data, "AMS", MAP_SIZE_DEFAULT, &e) != 0 ||
        commit_start(&commit, &store, &site_key, &e) != 0 ||
        api_start(&api, cfg, &store, &commit, NULL, &e) != 0) {
        fprintf(stderr, "setup: %s\n", im_errmsg(&e));
        return -1;
    }
    return 0;
}

static void
teardown(void)
{
    char cmd[128];
    api_close(&api);
    commit_stop(&commit);
    api_free(&api);
    store_close(&store);
    free(cfg);
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp_root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp_root);
}

TEST_MAIN(if (setup() != 0) return 1; RUN(garbage_and_unsigned_refused);
          RUN(unknown_key_forged_and_skewed_refused); RUN(op_count_bounds);
          RUN(oversized_message_dropped_node_survives);
          RUN(viewer_reads_but_cannot_write);
          RUN(write_then_read_in_one_request); RUN(concurrent_clients);
          RUN(full_write_queue_refused_busy);
          teardown())
