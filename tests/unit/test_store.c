/* Unit tests of node/store and node/commit against real LMDB files in a
 * temporary directory: appends, chains, refusals that write nothing, map
 * full, reopen, offline check, and concurrent group commit (run under TSan
 * by `make test`). */
#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "commit.h"
#include "keys.h"
#include "store.h"
#include "test.h"

static char tmp_root[] = "/tmp/im-test-store-XXXXXX";
static int dir_counter;
static struct im_key site_key;

static void
new_dir(char *out, size_t size)
{
    snprintf(out, size, "%s/%d", tmp_root, dir_counter++);
}

static Im__Body *
body_open(const char *title, Im__Opened *o, Im__Body *b)
{
    im__opened__init(o);
    im__body__init(b);
    o->title = (char *)title;
    o->service = "shop";
    o->impact = IM__LEVEL__LEVEL_HIGH;
    o->urgency = IM__LEVEL__LEVEL_MEDIUM;
    b->kind_case = IM__BODY__KIND_OPENED;
    b->opened = o;
    return b;
}

/* Appends one event in its own transaction. */
static int
append(struct store *s, struct hlc *clk, const char *incident, Im__Body *body,
       char id_out[INCIDENT_ID_MAX + 1], struct im_err *e)
{
    struct store_txn t;
    struct incident *inc = malloc(sizeof *inc);
    Im__Event ev = IM__EVENT__INIT;
    char id[INCIDENT_ID_MAX + 1];
    int rv;

    if ((rv = store_write_begin(s, &t, e)) != 0) {
        free(inc);
        return rv;
    }
    if (body->kind_case == IM__BODY__KIND_OPENED) {
        if ((rv = store_next_id(&t, id, e)) != 0)
            goto fail;
        ev.incident = id;
    } else {
        ev.incident = (char *)incident;
    }
    ev.actor = "tester";
    ev.body = body;
    if ((rv = store_append_local(&t, &ev, clk, clock_wall_ms(), inc, e)) != 0)
        goto fail;
    if (id_out != NULL)
        snprintf(id_out, INCIDENT_ID_MAX + 1, "%s", ev.incident);
    free(inc);
    return store_commit(&t, &site_key, e);
fail:
    store_abort(&t);
    free(inc);
    return rv;
}

static const uint8_t *
pk_of(void *arg, const char *origin)
{
    return strcmp(origin, "AMS") == 0 ? site_key.pk : NULL;
}

static int
check_ok(struct store *s)
{
    struct im_err e = {0};
    FILE *devnull = fopen("/dev/null", "w");
    int rv = store_check(s, pk_of, NULL, devnull, &e);
    if (rv != 0)
        fprintf(stderr, "store_check: %s\n", im_errmsg(&e));
    fclose(devnull);
    return rv;
}

TEST(append_get_chain)
{
    char dir[256], id[INCIDENT_ID_MAX + 1];
    struct store s;
    struct hlc clk = {0};
    struct im_err e = {0};
    Im__Opened o;
    Im__Body b, nb;
    Im__Note note = IM__NOTE__INIT;
    struct incident inc;
    struct store_head head;
    MDB_txn *txn;

    new_dir(dir, sizeof dir);
    REQUIRE(store_open(&s, dir, "AMS", MAP_SIZE_DEFAULT, &e) == 0);
    REQUIRE(append(&s, &clk, NULL, body_open("disk full", &o, &b), id, &e) == 0);
    CHECK_EQ_STR(id, "AMS-1");
    REQUIRE(append(&s, &clk, NULL, body_open("second", &o, &b), id, &e) == 0);
    CHECK_EQ_STR(id, "AMS-2");
    im__body__init(&nb);
    nb.kind_case = IM__BODY__KIND_NOTE;
    note.text = "looking";
    nb.note = &note;
    REQUIRE(append(&s, &clk, "AMS-1", &nb, NULL, &e) == 0);

    REQUIRE(store_read_begin(&s, &txn, &e) == 0);
    CHECK(store_incident_get(txn, &s, "AMS-1", &inc, &e) == 0);
    CHECK_EQ_STR(inc.title, "disk full");
    CHECK_EQ_INT(inc.events_count, 2);
    CHECK_EQ_INT(inc.priority, 2);
    CHECK(store_head_get(txn, &s, "AMS", &head) == 0);
    CHECK_EQ_INT(head.seq, 3);
    CHECK_EQ_INT(store_incident_get(txn, &s, "AMS-99", &inc, &e), IM_ENOTFOUND);
    CHECK_EQ_STR(e.msg, "no incident AMS-99");
    store_read_end(txn);
    CHECK(check_ok(&s) == 0);
    store_close(&s);
}

TEST(refusal_writes_nothing)
{
    char dir[256], id[INCIDENT_ID_MAX + 1];
    struct store s;
    struct hlc clk = {0};
    struct im_err e = {0};
    Im__Opened o;
    Im__Body b, tb;
    Im__Transition tr = IM__TRANSITION__INIT;
    struct store_head head;
    MDB_txn *txn;

    new_dir(dir, sizeof dir);
    REQUIRE(store_open(&s, dir, "AMS", MAP_SIZE_DEFAULT, &e) == 0);
    REQUIRE(append(&s, &clk, NULL, body_open("t", &o, &b), id, &e) == 0);
    im__body__init(&tb);
    tb.kind_case = IM__BODY__KIND_TRANSITION;
    tr.to = IM__STATE__STATE_CLOSED;
    tb.transition = &tr;
    CHECK_EQ_INT(append(&s, &clk, id, &tb, NULL, &e), IM_ESTATE);
    CHECK(strstr(e.msg, "you can") != NULL);
    CHECK_EQ_INT(append(&s, &clk, "AMS-7", &tb, NULL, &e), IM_ENOTFOUND);
    REQUIRE(store_read_begin(&s, &txn, &e) == 0);
    CHECK(store_head_get(txn, &s, "AMS", &head) == 0);
    CHECK_EQ_INT(head.seq, 1);
    store_read_end(txn);
    CHECK(check_ok(&s) == 0);
    store_close(&s);
}

/* A gate that refuses, like node/coordlink.c's when the lease lapsed. */
static int gate_calls;
static int
gate_refuse(void *arg, const struct incident *inc, struct im_err *e)
{
    (void)arg;
    gate_calls++;
    return im_errf(e, IM_ENOLEASE, "%s: no lease", inc->id);
}

/* Owner-only actions: refused at another site's incident (naming the
 * owner), refused by the owner gate at our own, and nothing written by
 * either; notes pass everywhere, and the gate is not asked for them. */
TEST(owner_only_actions_are_fenced)
{
    char dir[256], id[INCIDENT_ID_MAX + 1];
    struct store s;
    struct hlc clk = {0};
    struct im_err e = {0};
    Im__Opened o;
    Im__Body b, tb, nb, ob;
    Im__Transition tr = IM__TRANSITION__INIT;
    Im__Note note = IM__NOTE__INIT;
    Im__OwnerAssigned own = IM__OWNER_ASSIGNED__INIT;
    struct store_head head;
    MDB_txn *txn;

    new_dir(dir, sizeof dir);
    REQUIRE(store_open(&s, dir, "AMS", MAP_SIZE_DEFAULT, &e) == 0);
    REQUIRE(append(&s, &clk, NULL, body_open("t", &o, &b), id, &e) == 0);
    im__body__init(&tb);
    tb.kind_case = IM__BODY__KIND_TRANSITION;
    tr.to = IM__STATE__STATE_ACKNOWLEDGED;
    tb.transition = &tr;
    im__body__init(&nb);
    nb.kind_case = IM__BODY__KIND_NOTE;
    note.text = "looking";
    nb.note = &note;
    im__body__init(&ob);
    ob.kind_case = IM__BODY__KIND_OWNER;
    own.site = "AMS";
    own.manager = "carla";
    own.token = 7;
    ob.owner = &own;

    s.owner_gate = gate_refuse;
    /* Provisional ownership (token 0) asks the gate too: the gate decides. */
    CHECK_EQ_INT(append(&s, &clk, id, &tb, NULL, &e), IM_ENOLEASE);
    CHECK_EQ_INT(gate_calls, 1);
    CHECK_EQ_INT(append(&s, &clk, id, &nb, NULL, &e), 0);
    CHECK_EQ_INT(append(&s, &clk, id, &ob, NULL, &e), 0);
    CHECK_EQ_INT(gate_calls, 1);
    CHECK_EQ_INT(append(&s, &clk, id, &tb, NULL, &e), IM_ENOLEASE);
    s.owner_gate = NULL;
    CHECK_EQ_INT(append(&s, &clk, id, &tb, NULL, &e), 0);
    /* Another site owns it now: refused here, whoever the gate is. */
    own.site = "NYC";
    own.manager = "bob";
    own.token = 9;
    CHECK_EQ_INT(append(&s, &clk, id, &ob, NULL, &e), 0);
    tr.to = IM__STATE__STATE_IN_PROGRESS;
    CHECK_EQ_INT(append(&s, &clk, id, &tb, NULL, &e), IM_ESTALE);
    CHECK(strstr(e.msg, "is owned by NYC (token 9, manager bob)") != NULL);
    CHECK_EQ_INT(append(&s, &clk, id, &nb, NULL, &e), 0);
    REQUIRE(store_read_begin(&s, &txn, &e) == 0);
    CHECK(store_head_get(txn, &s, "AMS", &head) == 0);
    CHECK_EQ_INT(head.seq, 6); /* open, note, owner, ack, owner, note */
    store_read_end(txn);
    CHECK(check_ok(&s) == 0);
    store_close(&s);
}

TEST(map_full_is_an_error_and_nothing_durable)
{
    char dir[256], id[INCIDENT_ID_MAX + 1], title[TITLE_MAX + 1];
    struct store s;
    struct hlc clk = {0};
    struct im_err e = {0};
    Im__Opened o;
    Im__Body b;
    struct store_head before, after;
    MDB_txn *txn;
    int rv = 0, n = 0;

    memset(title, 'x', TITLE_MAX);
    title[TITLE_MAX] = '\0';
    new_dir(dir, sizeof dir);
    REQUIRE(store_open(&s, dir, "AMS", MAP_SIZE_MIN, &e) == 0);
    while (n < 100000 && (rv = append(&s, &clk, NULL, body_open(title, &o, &b),
                                      id, &e)) == 0)
        n++;
    CHECK_EQ_INT(rv, IM_EFULL);
    CHECK(strstr(e.msg, "store full") != NULL);
    CHECK(n > 10);
    REQUIRE(store_read_begin(&s, &txn, &e) == 0);
    CHECK(store_head_get(txn, &s, "AMS", &before) == 0);
    store_read_end(txn);
    CHECK_EQ_INT(before.seq, n);
    /* Still full, still refused, still consistent. */
    CHECK_EQ_INT(append(&s, &clk, NULL, body_open(title, &o, &b), id, &e), IM_EFULL);
    REQUIRE(store_read_begin(&s, &txn, &e) == 0);
    CHECK(store_head_get(txn, &s, "AMS", &after) == 0);
    store_read_end(txn);
    CHECK_EQ_INT(after.seq, before.seq);
    CHECK(check_ok(&s) == 0);
    store_close(&s);
}

TEST(reopen_continues_chain_and_clock)
{
    char dir[256], id[INCIDENT_ID_MAX + 1];
    struct store s;
    struct hlc clk = {0};
    struct im_err e = {0};
    Im__Opened o;
    Im__Body b;
    struct store_head h1, h2;
    MDB_txn *txn;

    new_dir(dir, sizeof dir);
    REQUIRE(store_open(&s, dir, "AMS", MAP_SIZE_DEFAULT, &e) == 0);
    REQUIRE(append(&s, &clk, NULL, body_open("a", &o, &b), id, &e) == 0);
    REQUIRE(store_read_begin(&s, &txn, &e) == 0);
    CHECK(store_head_get(txn, &s, "AMS", &h1) == 0);
    store_read_end(txn);
    store_close(&s);

    REQUIRE(store_open(&s, dir, "AMS", MAP_SIZE_DEFAULT, &e) == 0);
    /* A fresh clock, as after a restart: the store's head keeps order. */
    struct hlc fresh = {0};
    REQUIRE(append(&s, &fresh, NULL, body_open("b", &o, &b), id, &e) == 0);
    CHECK_EQ_STR(id, "AMS-2");
    REQUIRE(store_read_begin(&s, &txn, &e) == 0);
    CHECK(store_head_get(txn, &s, "AMS", &h2) == 0);
    store_read_end(txn);
    CHECK_EQ_INT(h2.seq, 2);
    CHECK(h2.hlc > h1.hlc);
    CHECK(check_ok(&s) == 0);
    store_close(&s);
}

TEST(check_detects_tampering)
{
    char dir[256], id[INCIDENT_ID_MAX + 1];
    struct store s;
    struct hlc clk = {0};
    struct im_err e = {0};
    Im__Opened o;
    Im__Body b;
    struct store_txn t;
    uint8_t kb[16] = {'A', 'M', 'S', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    MDB_val k = {16, kb}, v;

    new_dir(dir, sizeof dir);
    REQUIRE(store_open(&s, dir, "AMS", MAP_SIZE_DEFAULT, &e) == 0);
    REQUIRE(append(&s, &clk, NULL, body_open("original", &o, &b), id, &e) == 0);
    REQUIRE(append(&s, &clk, NULL, body_open("next", &o, &b), id, &e) == 0);
    CHECK(check_ok(&s) == 0);
    /* Flip one byte of the first event's stored bytes. */
    REQUIRE(store_write_begin(&s, &t, &e) == 0);
    REQUIRE(mdb_get(t.txn, s.events, &k, &v) == 0);
    uint8_t *copy = malloc(v.mv_size);
    memcpy(copy, v.mv_data, v.mv_size);
    copy[v.mv_size - 3] ^= 0x01;
    v.mv_data = copy;
    REQUIRE(mdb_put(t.txn, s.events, &k, &v, 0) == 0);
    REQUIRE(mdb_txn_commit(t.txn) == 0);
    free(copy);
    CHECK(check_ok(&s) != 0);
    store_close(&s);
}

/* ---- indexes follow every change, and only changes touch them ---- */

struct ids {
    char v[8][INCIDENT_ID_MAX + 1];
    int n;
};

static int
collect_id(void *arg, const Im__Incident *inc)
{
    struct ids *ids = arg;
    if (ids->n < 8)
        snprintf(ids->v[ids->n++], INCIDENT_ID_MAX + 1, "%s", inc->id);
    return 0;
}

/* The ids a list query visits, joined by spaces, in rank order. */
static void
list_ids(struct store *s, const struct store_list_query *q, char *out,
         size_t size)
{
    struct ids ids = {0};
    struct im_err e = {0};
    uint64_t matched = 0;
    MDB_txn *txn;

    out[0] = '\0';
    if (store_read_begin(s, &txn, &e) != 0)
        return;
    if (store_list(txn, s, q, collect_id, &ids, &matched, &e) == 0)
        for (int i = 0; i < ids.n; i++)
            snprintf(out + strlen(out), size - strlen(out), "%s%s",
                     i ? " " : "", ids.v[i]);
    store_read_end(txn);
    if ((uint64_t)ids.n != matched)
        snprintf(out, size, "matched %llu, visited %d",
                 (unsigned long long)matched, ids.n);
}

TEST(indexes_follow_changes)
{
    char dir[256], id[INCIDENT_ID_MAX + 1], got[256];
    struct store s;
    struct hlc clk = {0};
    struct im_err e = {0};
    Im__Opened o;
    Im__Body b;
    Im__Note note = IM__NOTE__INIT;
    Im__Transition tr = IM__TRANSITION__INIT;
    Im__FieldsSet fs = IM__FIELDS_SET__INIT;
    struct store_list_query open_q = {0}, all_q = {.all = 1},
                            shop_q = {.service = "shop"},
                            db_q = {.service = "db", .all = 1},
                            ack_q = {.state = IM__STATE__STATE_ACKNOWLEDGED},
                            p4_q = {.priority = 4, .all = 1};

    new_dir(dir, sizeof dir);
    REQUIRE(store_open(&s, dir, "AMS", MAP_SIZE_DEFAULT, &e) == 0);
    for (int i = 0; i < 3; i++)
        REQUIRE(append(&s, &clk, NULL, body_open("idx", &o, &b), id, &e) == 0);
    list_ids(&s, &open_q, got, sizeof got);
    CHECK_EQ_STR(got, "AMS-1 AMS-2 AMS-3");

    /* A note changes no index key. */
    im__body__init(&b);
    b.kind_case = IM__BODY__KIND_NOTE;
    note.text = "looking";
    b.note = &note;
    REQUIRE(append(&s, &clk, "AMS-2", &b, NULL, &e) == 0);
    list_ids(&s, &shop_q, got, sizeof got);
    CHECK_EQ_STR(got, "AMS-1 AMS-2 AMS-3");
    CHECK(check_ok(&s) == 0);

    /* State: only the state key moves. */
    im__body__init(&b);
    b.kind_case = IM__BODY__KIND_TRANSITION;
    tr.to = IM__STATE__STATE_ACKNOWLEDGED;
    b.transition = &tr;
    REQUIRE(append(&s, &clk, "AMS-3", &b, NULL, &e) == 0);
    list_ids(&s, &ack_q, got, sizeof got);
    CHECK_EQ_STR(got, "AMS-3");

    /* Priority and service: every key moves (P2 -> P4, shop -> db). */
    im__body__init(&b);
    b.kind_case = IM__BODY__KIND_SET;
    fs.impact = IM__LEVEL__LEVEL_LOW;
    fs.service = "db";
    b.set = &fs;
    REQUIRE(append(&s, &clk, "AMS-1", &b, NULL, &e) == 0);
    list_ids(&s, &open_q, got, sizeof got);
    CHECK_EQ_STR(got, "AMS-2 AMS-3 AMS-1");
    list_ids(&s, &p4_q, got, sizeof got);
    CHECK_EQ_STR(got, "AMS-1");
    list_ids(&s, &shop_q, got, sizeof got);
    CHECK_EQ_STR(got, "AMS-2 AMS-3");

    /* Cancel: out of the open lists, still in --all. */
    im__body__init(&b);
    b.kind_case = IM__BODY__KIND_TRANSITION;
    tr.to = IM__STATE__STATE_CANCELLED;
    tr.reason = "duplicate";
    b.transition = &tr;
    REQUIRE(append(&s, &clk, "AMS-1", &b, NULL, &e) == 0);
    list_ids(&s, &open_q, got, sizeof got);
    CHECK_EQ_STR(got, "AMS-2 AMS-3");
    list_ids(&s, &all_q, got, sizeof got);
    CHECK_EQ_STR(got, "AMS-2 AMS-3 AMS-1");
    list_ids(&s, &db_q, got, sizeof got);
    CHECK_EQ_STR(got, "AMS-1");
    /* No stale key is left behind: check counts 3 keys per incident. */
    CHECK(check_ok(&s) == 0);
    store_close(&s);
}

/* ---- concurrent group commit ---- */

#define WRITERS 8
#define PER_WRITER 150

struct writer {
    struct committer *c;
    sem_t done;
    int ok, refused, busy;
};

static void
on_done(struct commit_req *r)
{
    struct writer *w = r->arg;
    sem_post(&w->done);
}

static void *
writer_thread(void *arg)
{
    struct writer *w = arg;
    Im__Opened o;
    Im__Body b;
    struct commit_op op;
    struct commit_req r;

    for (int i = 0; i < PER_WRITER; i++) {
        memset(&op, 0, sizeof op);
        memset(&r, 0, sizeof r);
        op.incident = "";
        op.body = body_open("concurrent", &o, &b);
        r.actor = "tester";
        r.ops = &op;
        r.ops_count = 1;
        r.done = on_done;
        r.arg = w;
        if (commit_submit(w->c, &r) != 0) {
            w->busy++;
            continue;
        }
        sem_wait(&w->done);
        if (op.code == 0)
            w->ok++;
        else
            w->refused++;
        free(op.result);
    }
    return NULL;
}

TEST(group_commit_concurrent)
{
    char dir[256];
    struct store s;
    struct committer c;
    struct im_err e = {0};
    struct writer w[WRITERS];
    pthread_t th[WRITERS];
    struct store_head head;
    MDB_txn *txn;
    int ok = 0;

    new_dir(dir, sizeof dir);
    REQUIRE(store_open(&s, dir, "AMS", MAP_SIZE_DEFAULT, &e) == 0);
    REQUIRE(commit_start(&c, &s, &site_key, &e) == 0);
    for (int i = 0; i < WRITERS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].c = &c;
        sem_init(&w[i].done, 0, 0);
        pthread_create(&th[i], NULL, writer_thread, &w[i]);
    }
    for (int i = 0; i < WRITERS; i++) {
        pthread_join(th[i], NULL);
        sem_destroy(&w[i].done);
        ok += w[i].ok;
        CHECK_EQ_INT(w[i].refused, 0);
        CHECK_EQ_INT(w[i].busy, 0);
    }
    commit_stop(&c);
    CHECK_EQ_INT(ok, WRITERS * PER_WRITER);
    CHECK_EQ_INT(atomic_load(&c.events), WRITERS * PER_WRITER);
    CHECK(atomic_load(&c.commits) <= (uint64_t)WRITERS * PER_WRITER);
    REQUIRE(store_read_begin(&s, &txn, &e) == 0);
    CHECK(store_head_get(txn, &s, "AMS", &head) == 0);
    store_read_end(txn);
    CHECK_EQ_INT(head.seq, WRITERS * PER_WRITER);
    CHECK(check_ok(&s) == 0);
    printf("group commit: %d events in %llu commits (largest batch %llu ops)\n",
           ok, (unsigned long long)atomic_load(&c.commits),
           (unsigned long long)atomic_load(&c.batch_ops_max));
    store_close(&s);
}

static void
cleanup(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp_root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp_root);
}

static int
setup(void)
{
    if (mkdtemp(tmp_root) == NULL || keys_init() != 0)
        return -1;
    key_generate(&site_key);
    atexit(cleanup);
    return 0;
}

TEST_MAIN(if (setup() != 0) return 1; RUN(append_get_chain); RUN(indexes_follow_changes);
          RUN(refusal_writes_nothing); RUN(owner_only_actions_are_fenced);
          RUN(map_full_is_an_error_and_nothing_durable);
          RUN(reopen_continues_chain_and_clock);
          RUN(check_detects_tampering); RUN(group_commit_concurrent))
