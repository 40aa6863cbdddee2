/* Seeded simulation of site-to-site replication (DESIGN.md §4, §7.1-7.3).
 *
 * Several sites in one process, each with its own real LMDB store, run the
 * replication protocol of node/repl.c over a fake network that drops,
 * duplicates, reorders and delays messages, partitions sites (one-way too)
 * and crashes them (the store is closed and reopened; everything in memory
 * is lost). Links pipeline: each has up to its pipeline (1 to
 * REPL_PIPELINE_MAX, random per site) requests in flight, and a receiver
 * serves a link's requests in stream order (repl_order), holding back one
 * that overtook an earlier one of its stream until that went or
 * REPL_ORDER_WAIT_MS passed. Time is a fake clock. After the chaos the network heals and
 * every run must converge: equal version vectors and chain heads, every
 * acknowledged event everywhere, identical incident state on every replica,
 * and a clean offline check of every store.
 *
 * SIM_SEEDS=N runs N seeds (default: 2000; fewer under sanitizers);
 * SIM_SEED=S replays one seed exactly. A failure prints its seed. Stores
 * live under $TMPDIR (the simulation needs no fsync to be meaningful:
 * a crash here is a process crash, which LMDB survives without one). */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "keys.h"
#include "repl.h"
#include "store.h"
#include "test.h"

#define SIM_SITES_MAX 5
#define SIM_MSGS_MAX 4096
#define SIM_ACKED_MAX 20000
#define SIM_IDS_MAX 4096
#define SIM_TIMEOUT_MS 300

static const char *const codes[SIM_SITES_MAX] = {"AMS", "NYC", "SGP", "LON",
                                                 "TYO"};
static struct im_key keys[SIM_SITES_MAX];
static char root[256];

/* Over all seeds: that pipelines filled and that requests overtook each
 * other and were put back in order (else the runs tested less than they
 * claim). */
static uint64_t stat_pipelined, stat_held, stat_waited_out;

struct msg {
    int from, to;
    int is_reply;
    uint64_t id;         /* request id; a reply carries its request's */
    uint64_t at_ms;      /* delivery time */
    uint64_t stream, seq; /* request: its place in its link's stream */
    uint64_t held_since; /* request held back for its turn since; 0: not */
    uint8_t *data;
    size_t size;
};

struct site {
    int index;
    int up;
    char dir[300];
    struct store st;
    struct hlc clk;
    struct repl_env env;
    struct repl_link links[SIM_SITES_MAX];
    /* Request ids in flight per link, and when each was sent. */
    uint64_t outstanding[SIM_SITES_MAX][REPL_PIPELINE_MAX];
    uint64_t sent_at[SIM_SITES_MAX][REPL_PIPELINE_MAX];
    size_t outstanding_count[SIM_SITES_MAX];
    /* The order in which each peer's requests are served here. */
    struct repl_order order[SIM_SITES_MAX];
    uint64_t down_until;
};

struct acked {
    int origin;
    uint64_t seq;
};

struct sim {
    uint64_t rng, now_ms, next_id;
    int n;
    struct site sites[SIM_SITES_MAX];
    struct msg msgs[SIM_MSGS_MAX];
    size_t msgs_count;
    int cut[SIM_SITES_MAX][SIM_SITES_MAX];   /* messages from a to b lost */
    double p_drop, p_dup;
    uint32_t delay_max_ms;
    struct acked acked[SIM_ACKED_MAX];
    size_t acked_count;
    char ids[SIM_IDS_MAX][INCIDENT_ID_MAX + 1];
    size_t ids_count;
    char why[512];
};

static uint64_t
rnd(struct sim *m, uint64_t n)
{
    return n ? test_rand(&m->rng) % n : 0;
}

static int
chance(struct sim *m, double p)
{
    return (double)(test_rand(&m->rng) >> 11) / (double)(1ULL << 53) < p;
}

static const uint8_t *
site_pk(void *arg, const char *origin)
{
    struct sim *m = arg;
    for (int i = 0; i < m->n; i++)
        if (strcmp(codes[i], origin) == 0)
            return keys[i].pk;
    return NULL;
}

/* The write side of a simulated node: one transaction per delivery. */
static int
sim_apply(void *arg, struct repl_verified *v, size_t n, int *rcodes,
          uint64_t *applied, void (*queued)(void *qarg), void *qarg,
          struct im_err *e)
{
    struct site *s = arg;
    struct store_txn t;
    int rv;

    /* Deliveries are one at a time: queued is queued first. */
    if (queued != NULL)
        queued(qarg);
    if ((rv = store_write_begin(&s->st, &t, e)) != 0)
        return rv;
    if ((rv = repl_ranges_apply(&t, v, n, &s->clk, clock_wall_ms(), rcodes,
                                applied, e)) != 0) {
        store_abort(&t);
        return rv;
    }
    return store_commit(&t, &keys[s->index], e);
}

static const uint8_t *
no_pk(void *arg, const char *origin)
{
    return NULL;
}

static void
site_open(struct sim *m, int i)
{
    struct site *s = &m->sites[i];
    struct im_err e = {0};
    MDB_txn *txn;
    struct store_head h;

    if (store_open(&s->st, s->dir, codes[i], 64ULL << 20, &e) != 0) {
        fprintf(stderr, "store_open: %s\n", im_errmsg(&e));
        abort();
    }
    memset(&s->clk, 0, sizeof s->clk);
    if (store_read_begin(&s->st, &txn, &e) == 0) {
        if (store_head_get(txn, &s->st, codes[i], &h) == 0)
            hlc_observe(&s->clk, h.hlc, m->now_ms);
        store_read_end(txn);
    }
    s->env.store = &s->st;
    s->env.self = codes[i];
    s->env.site_key = site_pk;
    s->env.key_arg = m;
    s->env.apply = sim_apply;
    s->env.apply_arg = s;
    {
        unsigned pipeline = 1 + (unsigned)rnd(m, REPL_PIPELINE_MAX);
        for (int j = 0; j < m->n; j++) {
            repl_link_init(&s->links[j], codes[j]);
            s->links[j].pipeline = pipeline;
            s->outstanding_count[j] = 0;
            memset(&s->order[j], 0, sizeof s->order[j]);
        }
    }
    if (chance(m, 0.3))
        for (int j = 0; j < m->n; j++)
            s->links[j].batch_bytes = 2048 + (uint32_t)rnd(m, 16384);
    s->up = 1;
}

static void
site_crash(struct sim *m, int i)
{
    struct site *s = &m->sites[i];
    store_close(&s->st);
    s->up = 0;
    s->down_until = m->now_ms + 50 + rnd(m, 2000);
}

static void
send_msg(struct sim *m, int from, int to, int is_reply, uint64_t id,
         uint64_t stream, uint64_t seq, uint8_t *data, size_t size)
{
    int copies = 1;
    if (m->cut[from][to] || chance(m, m->p_drop)) {
        free(data);
        return;
    }
    if (chance(m, m->p_dup))
        copies = 2;
    if (m->msgs_count + (size_t)copies > SIM_MSGS_MAX) {
        free(data); /* the network is saturated: lost */
        return;
    }
    for (int c = 0; c < copies; c++) {
        struct msg *g = &m->msgs[m->msgs_count++];
        g->from = from;
        g->to = to;
        g->is_reply = is_reply;
        g->id = id;
        g->stream = stream;
        g->seq = seq;
        g->held_since = 0;
        g->at_ms = m->now_ms + 1 + rnd(m, m->delay_max_ms);
        g->size = size;
        if (c == 0) {
            g->data = data;
        } else {
            g->data = malloc(size ? size : 1);
            memcpy(g->data, data, size);
        }
    }
}

/* A local write at site i: open an incident, or note/ack one it knows. */
static int
local_write(struct sim *m, int i, int count)
{
    struct site *s = &m->sites[i];
    struct store_txn t;
    struct im_err e = {0};
    struct incident *inc = malloc(sizeof *inc);
    uint64_t first_acked = m->acked_count;
    int rv;

    if (store_write_begin(&s->st, &t, &e) != 0) {
        free(inc);
        return -1;
    }
    for (int k = 0; k < count; k++) {
        Im__Event ev = IM__EVENT__INIT;
        Im__Body body = IM__BODY__INIT;
        Im__Opened o = IM__OPENED__INIT;
        Im__Note note = IM__NOTE__INIT;
        Im__Transition tr = IM__TRANSITION__INIT;
        char id[INCIDENT_ID_MAX + 1], text[64];
        uint64_t r = rnd(m, 100);

        if (m->ids_count == 0 || r < 25) {
            if (store_next_id(&t, id, &e) != 0)
                break;
            o.title = "sim";
            o.service = "svc";
            o.impact = 1 + (int)rnd(m, 3);
            o.urgency = 1 + (int)rnd(m, 3);
            body.kind_case = IM__BODY__KIND_OPENED;
            body.opened = &o;
        } else {
            snprintf(id, sizeof id, "%s", m->ids[rnd(m, m->ids_count)]);
            if (r < 85) {
                snprintf(text, sizeof text, "note %llu", (unsigned long long)r);
                note.text = text;
                body.kind_case = IM__BODY__KIND_NOTE;
                body.note = &note;
            } else {
                tr.to = r < 93 ? IM__STATE__STATE_ACKNOWLEDGED
                               : IM__STATE__STATE_IN_PROGRESS;
                body.kind_case = IM__BODY__KIND_TRANSITION;
                body.transition = &tr;
            }
        }
        ev.incident = id;
        ev.actor = "sim";
        ev.body = &body;
        rv = store_append_local(&t, &ev, &s->clk, m->now_ms, inc, &e);
        if (rv != 0)
            continue; /* refused (unknown here, illegal move): nothing written */
        if (body.kind_case == IM__BODY__KIND_OPENED && m->ids_count < SIM_IDS_MAX)
            snprintf(m->ids[m->ids_count++], INCIDENT_ID_MAX + 1, "%s", id);
        if (m->acked_count < SIM_ACKED_MAX) {
            m->acked[m->acked_count].origin = i;
            m->acked[m->acked_count].seq = ev.seq;
            m->acked_count++;
        }
    }
    free(inc);
    if (store_commit(&t, &keys[i], &e) != 0) {
        m->acked_count = first_acked; /* not durable: not acknowledged */
        return -1;
    }
    return 0;
}

/* Takes request id off site s's link to peer; 0 if it was not in flight. */
static int
outstanding_take(struct site *s, int peer, uint64_t id)
{
    for (size_t k = 0; k < s->outstanding_count[peer]; k++)
        if (s->outstanding[peer][k] == id) {
            size_t left = s->outstanding_count[peer] - k - 1;
            memmove(&s->outstanding[peer][k], &s->outstanding[peer][k + 1],
                    left * sizeof s->outstanding[peer][0]);
            memmove(&s->sent_at[peer][k], &s->sent_at[peer][k + 1],
                    left * sizeof s->sent_at[peer][0]);
            s->outstanding_count[peer]--;
            return 1;
        }
    return 0;
}

/* 1 if g (a request) was held back for its turn: it is queued again. */
static int
hold_back(struct sim *m, struct msg *g)
{
    struct site *to = &m->sites[g->to];
    if (repl_order_ready(&to->order[g->from], g->stream, g->seq))
        return 0;
    if (g->held_since == 0) {
        g->held_since = m->now_ms;
        stat_held++;
    }
    if (m->now_ms - g->held_since >= REPL_ORDER_WAIT_MS) {
        stat_waited_out++;
        return 0; /* waited long enough: out of order */
    }
    if (m->msgs_count == SIM_MSGS_MAX)
        return 0;
    g->at_ms = m->now_ms + 1;
    m->msgs[m->msgs_count++] = *g;
    g->data = NULL; /* the queue owns it again */
    return 1;
}

static void
deliver(struct sim *m, struct msg *g)
{
    struct site *to = &m->sites[g->to];
    struct im_err e = {0};

    if (!to->up)
        return;
    if (!g->is_reply) {
        struct repl_counters c = {0};
        uint8_t *reply = NULL;
        size_t reply_size = 0;
        int rv;
        if (hold_back(m, g))
            return;
        rv = repl_serve(&to->env, codes[g->from], g->data, g->size, m->now_ms,
                        &c, &reply, &reply_size, &e);
        repl_order_done(&to->order[g->from], g->stream, g->seq);
        if (rv != 0)
            return; /* no answer: the requester times out */
        send_msg(m, g->to, g->from, 1, g->id, 0, 0, reply, reply_size);
        return;
    }
    if (!outstanding_take(to, g->from, g->id))
        return; /* a late or duplicate reply: req/rep drops it */
    repl_link_reply(&to->env, &to->links[g->from], g->data, g->size, m->now_ms,
                    &e);
}

static void
tick_links(struct sim *m)
{
    for (int i = 0; i < m->n; i++) {
        struct site *s = &m->sites[i];
        if (!s->up)
            continue;
        for (int j = 0; j < m->n; j++) {
            if (j == i)
                continue;
            for (size_t k = 0; k < s->outstanding_count[j]; k++)
                if (m->now_ms - s->sent_at[j][k] >= SIM_TIMEOUT_MS) {
                    /* Timed out: the session ends with everything in
                     * flight on it; a new one syncs on a new stream. */
                    s->outstanding_count[j] = 0;
                    repl_link_reset(&s->links[j]);
                    break;
                }
            /* Fill the pipeline. */
            while (s->outstanding_count[j] < REPL_PIPELINE_MAX) {
                struct im_err e = {0};
                uint8_t *req;
                size_t size, k = s->outstanding_count[j];
                if (repl_link_request(&s->env, &s->links[j], m->now_ms, &req,
                                      &size, &e) != 0 || req == NULL)
                    break;
                s->outstanding[j][k] = ++m->next_id;
                s->sent_at[j][k] = m->now_ms;
                s->outstanding_count[j]++;
                if (k > 0)
                    stat_pipelined++;
                send_msg(m, i, j, 0, s->outstanding[j][k], s->links[j].stream,
                         s->links[j].stream_seq, req, size);
            }
        }
    }
}

static void
step(struct sim *m, int chaos)
{
    m->now_ms += 1 + rnd(m, 10);
    /* Deliver what is due, in due order (ties by queue order). */
    for (;;) {
        size_t best = SIZE_MAX;
        for (size_t k = 0; k < m->msgs_count; k++)
            if (m->msgs[k].at_ms <= m->now_ms &&
                (best == SIZE_MAX || m->msgs[k].at_ms < m->msgs[best].at_ms))
                best = k;
        if (best == SIZE_MAX)
            break;
        struct msg g = m->msgs[best];
        m->msgs[best] = m->msgs[--m->msgs_count];
        deliver(m, &g);
        free(g.data);
    }
    if (chaos) {
        int i = (int)rnd(m, m->n);
        if (m->sites[i].up && chance(m, 0.3))
            local_write(m, i, 1 + (int)rnd(m, 4));
        if (chance(m, 0.01)) {
            int a = (int)rnd(m, m->n), b = (int)rnd(m, m->n);
            if (a != b)
                m->cut[a][b] = !m->cut[a][b];
        }
        if (chance(m, 0.004) && m->sites[i].up)
            site_crash(m, i);
    }
    for (int i = 0; i < m->n; i++)
        if (!m->sites[i].up && (m->now_ms >= m->sites[i].down_until || !chaos))
            site_open(m, i);
    tick_links(m);
}

static int
converged(struct sim *m)
{
    struct store_vv vv[SIM_SITES_MAX];
    for (int i = 0; i < m->n; i++) {
        MDB_txn *txn;
        struct im_err e = {0};
        if (!m->sites[i].up || store_read_begin(&m->sites[i].st, &txn, &e) != 0)
            return 0;
        store_vector(txn, &m->sites[i].st, &vv[i]);
        store_read_end(txn);
    }
    for (int i = 1; i < m->n; i++) {
        if (vv[i].count != vv[0].count)
            return 0;
        for (size_t k = 0; k < vv[0].count; k++)
            if (store_vv_seq(&vv[i], vv[0].e[k].origin) != vv[0].e[k].head.seq ||
                memcmp(vv[i].e[k].head.hash, vv[0].e[k].head.hash,
                       STORE_HASH_BYTES) != 0)
                return 0;
    }
    return 1;
}

static void
rm_tree(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *de;
    char sub[600];
    if (d == NULL) {
        unlink(path);
        return;
    }
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
        rm_tree(sub);
    }
    closedir(d);
    rmdir(path);
}

struct cmp_ctx {
    struct sim *m;
    int bad;
    size_t count;
};

static int
cmp_incident(void *arg, const Im__Incident *rec)
{
    struct cmp_ctx *c = arg;
    struct incident *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    struct im_err e = {0};
    MDB_txn *txn;

    c->count++;
    incident_from_pb(a, rec);
    for (int i = 1; i < c->m->n && !c->bad; i++) {
        struct site *s = &c->m->sites[i];
        if (store_read_begin(&s->st, &txn, &e) != 0)
            continue;
        if (store_incident_get(txn, &s->st, a->id, b, &e) != 0 ||
            memcmp(a, b, sizeof *a) != 0) {
            snprintf(c->m->why, sizeof c->m->why,
                     "incident %s differs between %s and %s", a->id, codes[0],
                     codes[i]);
            c->bad = 1;
        }
        store_read_end(txn);
    }
    free(a);
    free(b);
    return c->bad;
}

static int
count_incident(void *arg, const Im__Incident *rec)
{
    (*(size_t *)arg)++;
    return 0;
}

/* 0 if every invariant holds. */
static int
verify(struct sim *m)
{
    struct im_err e = {0};
    struct cmp_ctx c = {.m = m};
    MDB_txn *txn;

    for (size_t k = 0; k < m->acked_count; k++)
        for (int i = 0; i < m->n; i++) {
            Im__Event *ev;
            struct site *s = &m->sites[i];
            if (store_read_begin(&s->st, &txn, &e) != 0)
                return -1;
            if (store_event_get(txn, &s->st, codes[m->acked[k].origin],
                                m->acked[k].seq, &ev, &e) != 0) {
                snprintf(m->why, sizeof m->why,
                         "acknowledged event %s/%llu missing at %s",
                         codes[m->acked[k].origin],
                         (unsigned long long)m->acked[k].seq, codes[i]);
                store_read_end(txn);
                return -1;
            }
            im__event__free_unpacked(ev, NULL);
            store_read_end(txn);
        }
    if (store_read_begin(&m->sites[0].st, &txn, &e) != 0)
        return -1;
    store_scan(txn, &m->sites[0].st, cmp_incident, &c, &e);
    store_read_end(txn);
    if (c.bad)
        return -1;
    for (int i = 1; i < m->n; i++) {
        size_t n = 0;
        if (store_read_begin(&m->sites[i].st, &txn, &e) != 0)
            return -1;
        store_scan(txn, &m->sites[i].st, count_incident, &n, &e);
        store_read_end(txn);
        if (n != c.count) {
            snprintf(m->why, sizeof m->why, "%s holds %zu incidents, %s %zu",
                     codes[i], n, codes[0], c.count);
            return -1;
        }
    }
    for (int i = 0; i < m->n; i++) {
        FILE *devnull = fopen("/dev/null", "w");
        int rv = store_check(&m->sites[i].st, site_pk, m, devnull, &e);
        fclose(devnull);
        if (rv != 0) {
            snprintf(m->why, sizeof m->why, "store_check at %s: %s", codes[i],
                     im_errmsg(&e));
            return -1;
        }
    }
    return 0;
}

/* One seeded run. 0 if it converged with every invariant holding. */
static int
sim_run(uint64_t seed, char *why, size_t why_size)
{
    struct sim *m = calloc(1, sizeof *m);
    int rv = 0, steps;

    m->rng = seed * 0x9E3779B97F4A7C15ULL + 1;
    m->now_ms = 1700000000000ULL + rnd(m, 1000000);
    m->n = 2 + (int)rnd(m, SIM_SITES_MAX - 1);
    m->p_drop = (double)rnd(m, 30) / 100.0;
    m->p_dup = (double)rnd(m, 20) / 100.0;
    m->delay_max_ms = 1 + (uint32_t)rnd(m, 80);
    for (int i = 0; i < m->n; i++) {
        m->sites[i].index = i;
        snprintf(m->sites[i].dir, sizeof m->sites[i].dir, "%s/%llu-%d", root,
                 (unsigned long long)seed, i);
        site_open(m, i);
    }
    /* Now and then a commit longer than a range, so that ranges must end
     * on a checkpoint inside a commit. */
    if (seed % 40 == 0)
        local_write(m, 0, 1500 + (int)rnd(m, 1500));
    steps = 200 + (int)rnd(m, 400);
    for (int k = 0; k < steps; k++)
        step(m, 1);
    /* Heal: no loss, no partitions, everyone up; converge within a bound. */
    m->p_drop = 0;
    m->p_dup = 0;
    memset(m->cut, 0, sizeof m->cut);
    for (steps = 0; steps < 20000 && !converged(m); steps++)
        step(m, 0);
    if (!converged(m)) {
        snprintf(why, why_size, "no convergence after healing (%d sites)", m->n);
        rv = -1;
    } else if (verify(m) != 0) {
        snprintf(why, why_size, "%s", m->why);
        rv = -1;
    }
    for (int i = 0; i < m->n; i++) {
        if (m->sites[i].up)
            store_close(&m->sites[i].st);
        rm_tree(m->sites[i].dir);
    }
    for (size_t k = 0; k < m->msgs_count; k++)
        free(m->msgs[k].data);
    free(m);
    return rv;
}

TEST(seeds)
{
    const char *one = getenv("SIM_SEED"), *n_env = getenv("SIM_SEEDS");
    uint64_t first = test_seed_, n = 2000, failures = 0;
    char why[512];

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    n = 150;
#endif
    if (n_env != NULL)
        n = strtoull(n_env, NULL, 10);
    if (one != NULL) {
        first = strtoull(one, NULL, 10);
        n = 1;
    }
    for (uint64_t k = 0; k < n; k++) {
        uint64_t seed = first + k;
        if (sim_run(seed, why, sizeof why) != 0) {
            fprintf(stderr, "sim: seed %llu failed: %s (replay: SIM_SEED=%llu)\n",
                    (unsigned long long)seed, why, (unsigned long long)seed);
            if (++failures >= 3)
                break;
        }
    }
    printf("sim: %llu seeds from %llu, %llu failed; %llu requests sent behind "
           "others in flight, %llu held back for their turn, %llu of them "
           "served out of order after waiting\n",
           (unsigned long long)n, (unsigned long long)first,
           (unsigned long long)failures, (unsigned long long)stat_pipelined,
           (unsigned long long)stat_held, (unsigned long long)stat_waited_out);
    CHECK(failures == 0);
    if (n >= 100) {
        CHECK(stat_pipelined > 0);
        CHECK(stat_held > 0);
    }
}

/* The receiving side's order of a link's requests (repl_order). */
TEST(order)
{
    struct repl_order o = {0};

    /* Unordered requests always go and change nothing. */
    CHECK(repl_order_ready(&o, 0, 7));
    repl_order_done(&o, 0, 7);
    CHECK_EQ_INT(o.stream, 0);
    /* A stream begins with seq 1; 2 waits for it. */
    CHECK(!repl_order_ready(&o, 5, 2));
    CHECK(repl_order_ready(&o, 5, 1));
    repl_order_done(&o, 5, 1);
    CHECK(repl_order_ready(&o, 5, 2));
    CHECK(!repl_order_ready(&o, 5, 3));
    repl_order_done(&o, 5, 2);
    CHECK(repl_order_ready(&o, 5, 3));
    /* One that waited out its predecessor goes; the late one after it
     * goes at once and does not move the order back. */
    CHECK(!repl_order_ready(&o, 5, 4));
    repl_order_done(&o, 5, 4);
    CHECK(repl_order_ready(&o, 5, 5));
    CHECK(repl_order_ready(&o, 5, 3));
    repl_order_done(&o, 5, 3);
    CHECK(repl_order_ready(&o, 5, 5));
    CHECK(!repl_order_ready(&o, 5, 6));
    /* A new session's stream takes over with its first request; a
     * straggler of the old one, let go after waiting, leaves it be. */
    CHECK(!repl_order_ready(&o, 9, 2));
    CHECK(repl_order_ready(&o, 9, 1));
    repl_order_done(&o, 9, 1);
    CHECK(!repl_order_ready(&o, 5, 6));
    repl_order_done(&o, 5, 6);
    CHECK_EQ_INT(o.stream, 9);
    CHECK(repl_order_ready(&o, 9, 2));
}

/* The simulation can fail: a relay that tampers with one byte of an event
 * must get its range refused and counted, never applied. */
TEST(tampered_relay_refused)
{
    struct sim *m = calloc(1, sizeof *m);
    struct repl_batch b;
    struct store_vv ours, none = {0};
    struct im_err e = {0};
    struct repl_verified v;
    MDB_txn *txn;
    int reason;

    m->rng = 7;
    m->now_ms = clock_wall_ms();
    m->n = 2;
    for (int i = 0; i < 2; i++) {
        m->sites[i].index = i;
        snprintf(m->sites[i].dir, sizeof m->sites[i].dir, "%s/tamper-%d", root, i);
        site_open(m, i);
    }
    REQUIRE(local_write(m, 0, 5) == 0);
    REQUIRE(store_read_begin(&m->sites[0].st, &txn, &e) == 0);
    REQUIRE(store_vector(txn, &m->sites[0].st, &ours) == 0);
    REQUIRE(repl_ranges_build(txn, &m->sites[0].st, &ours, &none, NULL, 0, &b,
                              &e) == 0);
    REQUIRE(b.ranges_count == 1);
    CHECK(repl_range_verify(&b.ranges[0], "NYC", site_pk, m, &v, &reason, &e) == 0);
    repl_verified_free(&v);
    /* Flip every bit of the second event in a copy: each flip refused. */
    {
        ProtobufCBinaryData *ev = &b.ranges[0].events[1];
        uint8_t *copy = malloc(ev->len), *orig = ev->data;
        size_t refused = 0, bits = ev->len * 8;
        memcpy(copy, orig, ev->len);
        ev->data = copy;
        for (size_t bit = 0; bit < bits; bit++) {
            copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            if (repl_range_verify(&b.ranges[0], "NYC", site_pk, m, &v, &reason,
                                  &e) != 0)
                refused++;
            else
                repl_verified_free(&v);
            copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        }
        CHECK_EQ_INT(refused, bits);

        /* Through the receiving path a relay's tampered range is counted
         * and nothing of it is stored; the genuine one then applies. */
        {
            struct repl_counters c = {0};
            struct im_err first = {0};
            struct store_vv vv;
            Im__Range *rp = &b.ranges[0];
            uint64_t applied = 0, rejected = 0;
            MDB_txn *t2;

            copy[3] ^= 0x10;
            CHECK(repl_ranges_receive(&m->sites[1].env, &rp, 1, &c, &applied,
                                      &first) == 0);
            for (int r = 0; r < REPL_R_COUNT; r++)
                rejected += c.ranges_rejected[r];
            CHECK_EQ_INT(rejected, 1);
            CHECK_EQ_INT(applied, 0);
            CHECK(first.code != 0);
            REQUIRE(store_read_begin(&m->sites[1].st, &t2, &e) == 0);
            CHECK(store_vector(t2, &m->sites[1].st, &vv) == 0);
            CHECK_EQ_INT(vv.count, 0);
            store_read_end(t2);
            copy[3] ^= 0x10;
            ev->data = orig;
            memset(&first, 0, sizeof first);
            CHECK(repl_ranges_receive(&m->sites[1].env, &rp, 1, &c, &applied,
                                      &first) == 0);
            CHECK_EQ_INT(applied, rp->n_events);
            CHECK_EQ_INT(first.code, 0);
        }
        ev->data = orig;
        free(copy);
    }
    /* A range from an origin we do not pin. */
    CHECK(repl_range_verify(&b.ranges[0], "NYC", no_pk, NULL, &v, &reason, &e) != 0);
    CHECK_EQ_INT(reason, REPL_R_UNKNOWN_ORIGIN);
    repl_batch_free(&b);
    store_read_end(txn);
    for (int i = 0; i < 2; i++) {
        store_close(&m->sites[i].st);
        rm_tree(m->sites[i].dir);
    }
    free(m);
}

/* Sends one message's worth of what site `to` lacks from site `from`, as a
 * catching-up link does (max_bytes), and stores it at `to`. */
static void
push_once(struct sim *m, int from, int to, size_t max_bytes,
          struct repl_batch *b, uint64_t *applied, struct repl_counters *c)
{
    struct store_vv ours, theirs;
    struct im_err e = {0}, first = {0};
    MDB_txn *txn;

    REQUIRE(store_read_begin(&m->sites[to].st, &txn, &e) == 0);
    REQUIRE(store_vector(txn, &m->sites[to].st, &theirs) == 0);
    store_read_end(txn);
    REQUIRE(store_read_begin(&m->sites[from].st, &txn, &e) == 0);
    REQUIRE(store_vector(txn, &m->sites[from].st, &ours) == 0);
    REQUIRE(repl_ranges_build(txn, &m->sites[from].st, &ours, &theirs,
                              codes[to], max_bytes, b, &e) == 0);
    *applied = 0;
    if (b->ranges_count > 0)
        CHECK(repl_ranges_receive(&m->sites[to].env, b->range_ptrs,
                                  b->ranges_count, c, applied, &first) == 0);
    CHECK_EQ_INT(first.code, 0);
    store_read_end(txn);
}

/* A catch-up message: one origin's backlog in several consecutive ranges
 * (node/repl.h REPL_MSG_EVENTS_MAX), applied in one transaction with the
 * incidents cached across them; then both sites write to the same
 * incidents, so that one side's events arrive late and are re-folded once
 * per incident when the message is written. Both end identical and check
 * out. */
TEST(catch_up_in_big_messages)
{
    struct sim *m = calloc(1, sizeof *m);
    struct repl_batch b;
    struct repl_counters c = {0};
    uint64_t applied, t;
    size_t rounds = 0;
    int more;

    m->rng = 11;
    m->now_ms = clock_wall_ms() - 60000;
    m->n = 2;
    for (int i = 0; i < 2; i++) {
        m->sites[i].index = i;
        snprintf(m->sites[i].dir, sizeof m->sites[i].dir, "%s/catchup-%d", root, i);
        site_open(m, i);
    }
    /* More than one message holds (REPL_MSG_EVENTS_MAX). */
    for (int k = 0; k < 6; k++)
        REQUIRE(local_write(m, 0, 3000) == 0);

    push_once(m, 0, 1, REPL_BATCH_BYTES_MAX, &b, &applied, &c);
    CHECK(b.ranges_count >= 2);
    CHECK(b.events_count <= REPL_MSG_EVENTS_MAX);
    CHECK(b.more);
    CHECK_EQ_INT(applied, b.events_count);
    for (size_t k = 0; k < b.ranges_count; k++) {
        CHECK(strcmp(b.ranges[k].origin, "AMS") == 0);
        CHECK(b.ranges[k].n_events <= REPL_RANGE_EVENTS_MAX);
        if (k > 0)
            CHECK_EQ_INT(b.ranges[k].first_seq,
                         b.ranges[k - 1].first_seq + b.ranges[k - 1].n_events);
    }
    repl_batch_free(&b);
    do {
        push_once(m, 0, 1, REPL_BATCH_BYTES_MAX, &b, &applied, &c);
        more = b.more;
        repl_batch_free(&b);
    } while (more && ++rounds < 100);
    CHECK(converged(m));

    /* Both write to the shared incidents; NYC's clock is ahead, so AMS's
     * events sort before NYC's newest and arrive there late. */
    t = m->now_ms + 1000;
    m->now_ms = t + 50;
    REQUIRE(local_write(m, 1, 2000) == 0);
    m->now_ms = t;
    REQUIRE(local_write(m, 0, 2000) == 0);
    rounds = 0;
    do {
        push_once(m, 0, 1, REPL_BATCH_BYTES_MAX, &b, &applied, &c);
        more = b.more;
        repl_batch_free(&b);
        push_once(m, 1, 0, REPL_BATCH_BYTES_MAX, &b, &applied, &c);
        more |= b.more;
        repl_batch_free(&b);
    } while (more && ++rounds < 100);
    CHECK(converged(m));
    for (int r = 0; r < REPL_R_COUNT; r++)
        CHECK_EQ_INT(c.ranges_rejected[r], 0);
    if (verify(m) != 0) {
        fprintf(stderr, "catch_up_in_big_messages: %s\n", m->why);
        CHECK(0);
    }
    for (int i = 0; i < 2; i++) {
        store_close(&m->sites[i].st);
        rm_tree(m->sites[i].dir);
    }
    free(m);
}

TEST_MAIN({
    const char *t = getenv("TMPDIR");
    struct stat st;
    if (t == NULL)
        t = stat("/dev/shm", &st) == 0 ? "/dev/shm" : "/tmp";
    snprintf(root, sizeof root, "%s/im-sim-XXXXXX", t);
    if (mkdtemp(root) == NULL || keys_init() != 0)
        return 2;
    for (int i = 0; i < SIM_SITES_MAX; i++)
        key_generate(&keys[i]);
    RUN(order);
    RUN(tampered_relay_refused);
    RUN(catch_up_in_big_messages);
    RUN(seeds);
    rm_tree(root);
})
