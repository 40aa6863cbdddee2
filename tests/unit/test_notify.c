/* Tests of node/notify: the rules (pure), the back-off, and the outbox
 * with a real store, committer and command channel: a matching event is
 * delivered once and recorded as a NotificationSent event; nothing is sent
 * again; an incident owned by another site is left to it; a failing
 * command is retried and finally recorded as failed. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commit.h"
#include "config.h"
#include "incident.h"
#include "keys.h"
#include "notify.h"
#include "store.h"
#include "test.h"

static char tmp_root[] = "/tmp/im-test-notify-XXXXXX";
static struct config *cfg;
static struct store store;
static struct committer commit;
static struct notifier notifier;
static struct im_key site_key;
static char out_ok[300], out_bad[300];

/* ---- pure rules ---- */

static struct incident *
inc_new(const char *id, int priority, Im__State state)
{
    struct incident *i = calloc(1, sizeof *i);
    snprintf(i->id, sizeof i->id, "%s", id);
    snprintf(i->service, sizeof i->service, "shop");
    snprintf(i->owner_site, sizeof i->owner_site, "AMS");
    i->priority = priority;
    i->major = priority == 1;
    i->state = state;
    return i;
}

TEST(rules)
{
    struct cfg_notify ch = {.rules = (1u << NOTIFY_RULES_COUNT_) - 1};
    struct incident *none = calloc(1, sizeof *none);
    struct incident *p1 = inc_new("AMS-1", 1, IM__STATE__STATE_NEW);
    struct incident *p3 = inc_new("AMS-1", 3, IM__STATE__STATE_NEW);
    struct incident *p2 = inc_new("AMS-1", 2, IM__STATE__STATE_IN_PROGRESS);
    struct incident *res = inc_new("AMS-1", 2, IM__STATE__STATE_RESOLVED);
    struct incident *moved = inc_new("AMS-1", 3, IM__STATE__STATE_NEW);
    Im__Body b = IM__BODY__INIT;
    Im__Event ev = IM__EVENT__INIT;
    char text[128];

    ev.body = &b;
    b.kind_case = IM__BODY__KIND_OPENED;
    CHECK_EQ_INT(notify_match(&ch, none, p1, &ev),
                 (1u << NOTIFY_NEW_P1) | (1u << NOTIFY_MAJOR));
    CHECK_EQ_INT(notify_match(&ch, none, p3, &ev), 0);
    b.kind_case = IM__BODY__KIND_SET;
    CHECK_EQ_INT(notify_match(&ch, p3, p2, &ev), 1u << NOTIFY_ESCALATION);
    CHECK_EQ_INT(notify_match(&ch, p2, p2, &ev), 0); /* no change, no page */
    CHECK_EQ_INT(notify_match(&ch, p3, p1, &ev),
                 (1u << NOTIFY_ESCALATION) | (1u << NOTIFY_MAJOR));
    b.kind_case = IM__BODY__KIND_TRANSITION;
    CHECK_EQ_INT(notify_match(&ch, p2, res, &ev), 1u << NOTIFY_RESOLVED);
    CHECK_EQ_INT(notify_match(&ch, res, res, &ev), 0);
    b.kind_case = IM__BODY__KIND_OWNER;
    snprintf(moved->owner_site, sizeof moved->owner_site, "NYC");
    CHECK_EQ_INT(notify_match(&ch, p3, moved, &ev), 1u << NOTIFY_OWNER_CHANGE);
    /* The channel's own rules and service filter. */
    ch.rules = 1u << NOTIFY_RESOLVED;
    b.kind_case = IM__BODY__KIND_OPENED;
    CHECK_EQ_INT(notify_match(&ch, none, p1, &ev), 0);
    ch.rules = 1u << NOTIFY_NEW_P1;
    snprintf(ch.service, sizeof ch.service, "payroll");
    CHECK_EQ_INT(notify_match(&ch, none, p1, &ev), 0);
    notify_rules_text((1u << NOTIFY_NEW_P1) | (1u << NOTIFY_RESOLVED), text,
                      sizeof text);
    CHECK_EQ_STR(text, "new_p1,resolved");
    /* Only the owning site sends. */
    CHECK(notify_may_send(p1, "", "AMS"));
    CHECK(!notify_may_send(moved, "", "AMS"));
    CHECK(!notify_may_send(none, "", "AMS"));
    /* A page goes out from the paged site, owner or not. */
    CHECK(notify_may_send(moved, "AMS", "AMS"));
    CHECK(!notify_may_send(p1, "NYC", "AMS"));
    CHECK(!notify_may_send(none, "AMS", "AMS"));
    {
        Im__Body pb = IM__BODY__INIT;
        Im__Escalated pg = IM__ESCALATED__INIT;
        Im__Event pev = IM__EVENT__INIT;
        pg.notice = "AMS-1/1";
        pg.site = "AMS";
        pg.person = "carla";
        pb.kind_case = IM__BODY__KIND_ESCALATED;
        pb.escalated = &pg;
        pev.body = &pb;
        ch.rules = 1u << NOTIFY_ESCALATION;
        ch.service[0] = '\0';
        CHECK_EQ_INT(notify_match(&ch, p1, p1, &pev), 1u << NOTIFY_ESCALATION);
        ch.rules = 1u << NOTIFY_MAJOR;
        CHECK_EQ_INT(notify_match(&ch, p1, p1, &pev), 0);
    }
    free(none);
    free(p1);
    free(p2);
    free(p3);
    free(res);
    free(moved);
}

TEST(backoff)
{
    CHECK_EQ_INT(notify_backoff_ms(1000, 1), 1000);
    CHECK_EQ_INT(notify_backoff_ms(1000, 2), 2000);
    CHECK_EQ_INT(notify_backoff_ms(1000, 4), 8000);
    CHECK_EQ_INT(notify_backoff_ms(1000, 19), NOTIFY_BACKOFF_MS_MAX);
}

/* ---- with a store ---- */

struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
};

static void
done_cb(struct commit_req *r)
{
    struct waiter *w = r->arg;
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Appends body to incident ("" opens); the new id in id_out. */
static int
write_body(const char *incident, Im__Body *body,
           char id_out[INCIDENT_ID_MAX + 1])
{
    struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    struct commit_op op = {.incident = incident, .body = body};
    struct commit_req req = {.actor = "tester",
                             .ops = &op,
                             .ops_count = 1,
                             .done = done_cb,
                             .arg = &w};
    Im__Result *res;
    int code;

    if (commit_submit(&commit, &req) != 0)
        return -1;
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    res = im__result__unpack(NULL, op.result_size, op.result);
    free(op.result);
    if (res == NULL)
        return -1;
    code = res->code;
    if (code == 0 && id_out != NULL && res->incident != NULL)
        snprintf(id_out, INCIDENT_ID_MAX + 1, "%s", res->incident->id);
    im__result__free_unpacked(res, NULL);
    return code;
}

static int
open_incident(const char *service, Im__Level impact, Im__Level urgency,
              char id[INCIDENT_ID_MAX + 1])
{
    Im__Body b = IM__BODY__INIT;
    Im__Opened o = IM__OPENED__INIT;
    o.title = "payments down";
    o.description = "internal: the DB primary is gone";
    o.service = (char *)service;
    o.impact = impact;
    o.urgency = urgency;
    b.kind_case = IM__BODY__KIND_OPENED;
    b.opened = &o;
    return write_body("", &b, id);
}

static int
set_owner(const char *id, const char *site, uint64_t token)
{
    Im__Body b = IM__BODY__INIT;
    Im__OwnerAssigned o = IM__OWNER_ASSIGNED__INIT;
    o.site = (char *)site;
    o.token = token;
    b.kind_case = IM__BODY__KIND_OWNER;
    b.owner = &o;
    return write_body(id, &b, NULL);
}

static size_t
lines_in(const char *path)
{
    FILE *f = fopen(path, "r");
    size_t n = 0;
    int c;
    if (f == NULL)
        return 0;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

/* NotificationSent events of an incident: delivered ones and failed ones. */
static void
sent_events(const char *id, int *delivered, int *failed, unsigned *attempts)
{
    MDB_txn *txn;
    Im__Event **events = NULL;
    size_t n = 0;

    *delivered = *failed = 0;
    *attempts = 0;
    if (store_read_begin(&store, &txn, NULL) != 0)
        return;
    if (store_incident_events(txn, &store, id, &events, &n, NULL) == 0)
        for (size_t i = 0; i < n; i++)
            if (events[i]->body->kind_case == IM__BODY__KIND_NOTIFIED) {
                *delivered += events[i]->body->notified->delivered;
                *failed += !events[i]->body->notified->delivered;
                *attempts = events[i]->body->notified->attempts;
            }
    store_events_free(events, n);
    store_read_end(txn);
}

TEST(delivered_once_and_recorded)
{
    char id[INCIDENT_ID_MAX + 1];
    int delivered, failed;
    unsigned attempts;

    REQUIRE(open_incident("shop", IM__LEVEL__LEVEL_HIGH, IM__LEVEL__LEVEL_HIGH,
                          id) == 0);
    /* The "ok" channel takes P1s; the failing one only resolutions. */
    CHECK_EQ_INT(notify_run_once(&notifier), 1);
    CHECK_EQ_INT(lines_in(out_ok), 1);
    sent_events(id, &delivered, &failed, &attempts);
    CHECK_EQ_INT(delivered, 1);
    CHECK_EQ_INT(failed, 0);
    CHECK_EQ_INT(attempts, 1);
    /* Nothing left to send: another pass sends nothing. */
    CHECK_EQ_INT(notify_run_once(&notifier), 0);
    CHECK_EQ_INT(lines_in(out_ok), 1);
    /* A P3 matches no rule of either channel. */
    REQUIRE(open_incident("shop", IM__LEVEL__LEVEL_LOW, IM__LEVEL__LEVEL_MEDIUM,
                          id) == 0);
    CHECK_EQ_INT(notify_run_once(&notifier), 0);
}

TEST(only_the_owner_sends)
{
    char id[INCIDENT_ID_MAX + 1];
    int delivered, failed;
    unsigned attempts;
    size_t before = lines_in(out_ok);

    REQUIRE(open_incident("shop", IM__LEVEL__LEVEL_HIGH, IM__LEVEL__LEVEL_HIGH,
                          id) == 0);
    /* Before the notifier looks, the coordinator hands it to NYC. */
    REQUIRE(set_owner(id, "NYC", 3) == 0);
    CHECK_EQ_INT(notify_run_once(&notifier), 0);
    CHECK_EQ_INT(lines_in(out_ok), before);
    CHECK(atomic_load(&notifier.not_owner) > 0);
    sent_events(id, &delivered, &failed, &attempts);
    CHECK_EQ_INT(delivered + failed, 0);
    /* Handed back: now this site sends, once (the owner change itself
     * matches no rule of the channel). */
    REQUIRE(set_owner(id, "AMS", 4) == 0);
    CHECK_EQ_INT(notify_run_once(&notifier), 1);
    CHECK_EQ_INT(lines_in(out_ok), before + 1);
    sent_events(id, &delivered, &failed, &attempts);
    CHECK_EQ_INT(delivered, 1);
}

TEST(failures_are_retried_then_recorded)
{
    char id[INCIDENT_ID_MAX + 1];
    Im__Body b = IM__BODY__INIT;
    Im__Transition t = IM__TRANSITION__INIT;
    int delivered, failed, passes = 0;
    unsigned attempts;

    REQUIRE(open_incident("shop", IM__LEVEL__LEVEL_LOW, IM__LEVEL__LEVEL_LOW,
                          id) == 0);
    b.kind_case = IM__BODY__KIND_TRANSITION;
    b.transition = &t;
    t.to = IM__STATE__STATE_ACKNOWLEDGED;
    REQUIRE(write_body(id, &b, NULL) == 0);
    t.to = IM__STATE__STATE_IN_PROGRESS;
    REQUIRE(write_body(id, &b, NULL) == 0);
    t.to = IM__STATE__STATE_RESOLVED;
    t.code = "fixed";
    t.notes = "restarted";
    REQUIRE(write_body(id, &b, NULL) == 0);
    /* attempts = 3, back-off 20 ms doubling: three attempts, then a
     * failure event; never a fourth. */
    for (int i = 0; i < 200 && lines_in(out_bad) < 3; i++) {
        passes += notify_run_once(&notifier) > 0;
        usleep(10 * 1000);
    }
    CHECK_EQ_INT(lines_in(out_bad), 3);
    CHECK_EQ_INT(passes, 3);
    sent_events(id, &delivered, &failed, &attempts);
    CHECK_EQ_INT(delivered, 0);
    CHECK_EQ_INT(failed, 1);
    CHECK_EQ_INT(attempts, 3);
    usleep(100 * 1000);
    CHECK_EQ_INT(notify_run_once(&notifier), 0);
    CHECK_EQ_INT(lines_in(out_bad), 3);
}

static int
setup(void)
{
    char text[4096], spk[KEY_PUB_TEXT_MAX], data[256];
    struct im_err e = {0};

    signal(SIGPIPE, SIG_IGN);
    if (mkdtemp(tmp_root) == NULL || keys_init() != 0)
        return -1;
    key_generate(&site_key);
    key_pub_encode(site_key.pk, spk);
    snprintf(data, sizeof data, "%s/data", tmp_root);
    snprintf(out_ok, sizeof out_ok, "%s/ok.out", tmp_root);
    snprintf(out_bad, sizeof out_bad, "%s/bad.out", tmp_root);
    snprintf(text, sizeof text,
             "[node]\nsite = AMS\ndata = %s\n"
             "[site AMS]\npubkey = %s\n"
             "[operator a]\npubkey = "
             "ed25519:AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"
             "[notify ok]\ntype = command\n"
             "command = cat >> %s && echo >> %s\non = new_p1, new_p2\n"
             "[notify bad]\ntype = command\ncommand = echo >> %s; exit 3\n"
             "on = resolved\nattempts = 3\nbackoff = 20ms\n",
             data, spk, out_ok, out_ok, out_bad);
    cfg = calloc(1, sizeof *cfg);
    if (config_parse(cfg, "test.conf", text, &e) != 0 ||
        store_open(&store, data, "AMS", MAP_SIZE_DEFAULT, &e) != 0) {
        fprintf(stderr, "setup: %s\n", im_errmsg(&e));
        return -1;
    }
    notify_init(&notifier, cfg, &store, &commit, NULL);
    store.derive = notify_derive;
    store.derive_before = 1;
    store.derive_arg = &notifier;
    if (commit_start(&commit, &store, &site_key, &e) != 0) {
        fprintf(stderr, "setup: %s\n", im_errmsg(&e));
        return -1;
    }
    return 0;
}

static void
teardown(void)
{
    char cmd[128];
    notify_stop(&notifier);
    commit_stop(&commit);
    store_close(&store);
    free(cfg);
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp_root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp_root);
}

TEST_MAIN(RUN(rules); RUN(backoff); if (setup() != 0) return 1;
          RUN(delivered_once_and_recorded); RUN(only_the_owner_sends);
          RUN(failures_are_retried_then_recorded); teardown())
