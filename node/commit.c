/* commit: see commit.h. */
#include "commit.h"

#include <stdlib.h>
#include <string.h>

#include "bounds.h"
#include "clock.h"
#include "incident.h"
#include "log.h"

/* Refusals are answers about one op (the rest of the batch goes on);
 * anything else is a failure of the transaction itself. */
static int
is_refusal(int code)
{
    switch (code) {
    case IM_EINVAL:
    case IM_ETOOBIG:
    case IM_ESTATE:
    case IM_ESTALE:
    case IM_ENOLEASE:
    case IM_ENOTFOUND:
    case IM_EDENIED:
    case IM_EEXIST:
        return 1;
    default:
        return 0;
    }
}

static int
pack_result(Im__Result *res, struct commit_op *op)
{
    size_t size = im__result__get_packed_size(res);
    uint8_t *buf = malloc(size ? size : 1);
    if (buf == NULL)
        return IM_ENOMEM;
    im__result__pack(res, buf);
    free(op->result);
    op->result = buf;
    op->result_size = size;
    op->code = res->code;
    return 0;
}

static void
fail_op(struct commit_op *op, int code, const char *msg)
{
    Im__Result res = IM__RESULT__INIT;
    res.code = code;
    res.error = (char *)msg;
    if (pack_result(&res, op) != 0) {
        /* Even the error cannot be packed: the API answers the request
         * with a request-level out-of-memory instead. */
        free(op->result);
        op->result = NULL;
        op->result_size = 0;
        op->code = IM_ENOMEM;
    }
}

static void
fail_reqs(struct commit_req *list, const struct im_err *e)
{
    for (struct commit_req *r = list; r != NULL; r = r->next)
        for (size_t i = 0; i < r->ops_count; i++)
            fail_op(&r->ops[i], e->code, im_errmsg(e));
}

int
commit_is_refusal(int code)
{
    return is_refusal(code);
}

struct run_waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
};

static void
run_done(struct commit_req *r)
{
    struct run_waiter *w = r->arg;
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int
commit_run(struct committer *c, const char *actor,
           int (*step)(struct commit_step *, void *), void *arg)
{
    struct run_waiter w = {.done = 0};
    struct commit_op op = {.step = step, .step_arg = arg};
    struct commit_req req = {
        .actor = actor, .ops = &op, .ops_count = 1, .done = run_done, .arg = &w};
    int rv;

    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    if ((rv = commit_submit(c, &req)) == 0) {
        pthread_mutex_lock(&w.mu);
        while (!w.done)
            pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
        rv = op.code;
        free(op.result);
    }
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return rv;
}

int
commit_append(struct commit_step *cs, const char *incident, Im__Body *body,
              char id_out[INCIDENT_ID_MAX + 1], struct im_err *e)
{
    Im__Event ev = IM__EVENT__INIT;
    char id[INCIDENT_ID_MAX + 1];
    int rv;

    if ((rv = incident_body_check(body, e)) != 0)
        return rv;
    if (body->kind_case == IM__BODY__KIND_OPENED) {
        if ((rv = store_next_id(cs->t, id, e)) != 0)
            return rv;
        ev.incident = id;
    } else {
        if (incident == NULL || incident[0] == '\0')
            return im_errf(e, IM_EINVAL, "incident id is required");
        ev.incident = (char *)incident;
    }
    ev.actor = (char *)cs->actor;
    ev.body = body;
    rv = store_append_local(cs->t, &ev, &cs->c->clock, cs->now_ms, cs->inc, e);
    if (rv != 0)
        return rv;
    cs->events++;
    if (id_out != NULL)
        snprintf(id_out, INCIDENT_ID_MAX + 1, "%s", cs->inc->id);
    return 0;
}

static int
apply_op(struct committer *c, struct store_txn *t, const char *actor,
         struct commit_op *op, struct incident *inc, uint64_t now_ms,
         struct im_err *e)
{
    Im__Event ev = IM__EVENT__INIT;
    Im__Result res = IM__RESULT__INIT;
    struct incident_pb pb;
    char id[INCIDENT_ID_MAX + 1];
    int rv;

    im_errclear(e);
    if (op->step != NULL) {
        struct commit_step cs = {.c = c, .t = t, .actor = actor,
                                 .now_ms = now_ms, .inc = inc};
        if ((rv = op->step(&cs, op->step_arg)) != 0)
            return rv;
        op->code = 0;
        op->events = cs.events;
        return 0;
    }
    if ((rv = incident_body_check(op->body, e)) != 0) {
        fail_op(op, rv, im_errmsg(e));
        return 0;
    }
    if (op->body->kind_case == IM__BODY__KIND_OPENED) {
        if (op->incident != NULL && op->incident[0] != '\0') {
            fail_op(op, IM_EINVAL, "an opening takes no incident id: the node "
                                   "assigns it");
            return 0;
        }
        if ((rv = store_next_id(t, id, e)) != 0)
            return rv;
        ev.incident = id;
    } else {
        if (op->incident == NULL || op->incident[0] == '\0') {
            fail_op(op, IM_EINVAL, "incident id is required");
            return 0;
        }
        ev.incident = (char *)op->incident;
    }
    ev.actor = (char *)actor;
    ev.body = op->body;
    rv = store_append_local(t, &ev, &c->clock, now_ms, inc, e);
    if (rv != 0) {
        if (!is_refusal(rv))
            return rv;
        fail_op(op, rv, im_errmsg(e));
        return 0;
    }
    incident_pb_fill(&pb, inc);
    res.incident = &pb.msg;
    res.event = &ev;
    if (pack_result(&res, op) != 0)
        return im_errf(e, IM_ENOMEM, "out of memory");
    return 0;
}

/* Runs list in one transaction. 0: committed, every op answered.
 * Otherwise nothing is durable and e says why. */
static int
run_txn(struct committer *c, struct commit_req *list, struct incident *inc,
        struct im_err *e)
{
    struct store_txn t;
    uint64_t now_ms = clock_wall_ms(), events = 0, ops = 0;
    int rv;

    if ((rv = store_write_begin(c->store, &t, e)) != 0)
        return rv;
    for (struct commit_req *r = list; r != NULL; r = r->next) {
        for (size_t i = 0; i < r->ops_count; i++) {
            ops++;
            if ((rv = apply_op(c, &t, r->actor, &r->ops[i], inc, now_ms, e)) != 0) {
                store_abort(&t);
                return rv;
            }
            events += r->ops[i].step != NULL ? r->ops[i].events
                                             : r->ops[i].code == 0;
        }
    }
    if ((rv = store_commit(&t, c->site_key, e)) != 0)
        return rv;
    if (events > 0 && c->on_commit != NULL)
        c->on_commit(c->on_commit_arg);
    atomic_fetch_add(&c->commits, 1);
    atomic_fetch_add(&c->events, events);
    if (ops > atomic_load(&c->batch_ops_max))
        atomic_store(&c->batch_ops_max, ops);
    return 0;
}

static void
run_batch(struct committer *c, struct commit_req *batch, struct incident *inc)
{
    struct im_err e = {0};
    struct commit_req *r, *next;

    if (run_txn(c, batch, inc, &e) != 0) {
        atomic_fetch_add(&c->failures, 1);
        if (batch->next == NULL) {
            log_warn("commit: %s", im_errmsg(&e));
            fail_reqs(batch, &e);
        } else {
            /* Isolate: one request per transaction. */
            for (r = batch; r != NULL; r = next) {
                next = r->next;
                r->next = NULL;
                im_errclear(&e);
                if (run_txn(c, r, inc, &e) != 0) {
                    log_warn("commit: %s", im_errmsg(&e));
                    fail_reqs(r, &e);
                }
                r->next = next;
            }
        }
    }
    for (r = batch; r != NULL; r = next) {
        next = r->next;
        r->done(r);
    }
}

static void *
writer_main(void *arg)
{
    struct committer *c = arg;
    struct incident *inc = malloc(sizeof *inc);

    if (inc == NULL) {
        log_error("commit: out of memory at start");
        abort();
    }
    for (;;) {
        struct commit_req *batch, *last;
        size_t ops;

        pthread_mutex_lock(&c->mu);
        while (c->head == NULL && !c->stopping)
            pthread_cond_wait(&c->cv, &c->mu);
        if (c->head == NULL) {
            pthread_mutex_unlock(&c->mu);
            break;
        }
        /* Take what is waiting, up to one batch: whoever arrived during
         * the last fsync shares the next one. */
        batch = last = c->head;
        ops = batch->ops_count;
        while (last->next != NULL &&
               ops + last->next->ops_count <= COMMIT_BATCH_OPS_MAX) {
            last = last->next;
            ops += last->ops_count;
        }
        c->head = last->next;
        if (c->head == NULL)
            c->tail = NULL;
        c->queued_ops -= ops;
        last->next = NULL;
        pthread_mutex_unlock(&c->mu);
        run_batch(c, batch, inc);
    }
    free(inc);
    return NULL;
}

int
commit_start(struct committer *c, struct store *s,
             const struct im_key *site_key, struct im_err *e)
{
    return commit_start_with(c, s, site_key, NULL, NULL, e);
}

int
commit_start_with(struct committer *c, struct store *s,
                  const struct im_key *site_key, void (*on_commit)(void *arg),
                  void *on_commit_arg, struct im_err *e)
{
    struct store_head head;
    MDB_txn *txn;
    int rv;

    memset(c, 0, sizeof *c);
    c->store = s;
    c->site_key = site_key;
    c->on_commit = on_commit;
    c->on_commit_arg = on_commit_arg;
    /* Seed the clock past our own last event, so that a restart with a
     * clock that went backwards still extends the chain in order. */
    if ((rv = store_read_begin(s, &txn, e)) != 0)
        return rv;
    rv = store_head_get(txn, s, s->site, &head);
    store_read_end(txn);
    if (rv != 0)
        return im_errf(e, rv, "read chain head of %s", s->site);
    hlc_observe(&c->clock, head.hlc, clock_wall_ms());
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    if ((rv = pthread_create(&c->thread, NULL, writer_main, c)) != 0) {
        pthread_cond_destroy(&c->cv);
        pthread_mutex_destroy(&c->mu);
        return im_errf(e, IM_ENOMEM, "start writer thread: %s", strerror(rv));
    }
    c->started = 1;
    return 0;
}

int
commit_submit(struct committer *c, struct commit_req *r)
{
    if (r->ops_count == 0 || r->ops_count > REQ_OPS_MAX)
        return IM_ETOOBIG;
    for (size_t i = 0; i < r->ops_count; i++) {
        r->ops[i].result = NULL;
        r->ops[i].result_size = 0;
        r->ops[i].code = 0;
        r->ops[i].events = 0;
    }
    r->next = NULL;
    pthread_mutex_lock(&c->mu);
    if (c->stopping) {
        pthread_mutex_unlock(&c->mu);
        return IM_ECLOSED;
    }
    if (c->queued_ops + r->ops_count > COMMIT_QUEUE_MAX) {
        pthread_mutex_unlock(&c->mu);
        return IM_EBUSY;
    }
    if (c->tail != NULL)
        c->tail->next = r;
    else
        c->head = r;
    c->tail = r;
    c->queued_ops += r->ops_count;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

void
commit_stop(struct committer *c)
{
    if (!c->started)
        return;
    pthread_mutex_lock(&c->mu);
    c->stopping = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    c->started = 0;
}
