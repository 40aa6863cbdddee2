/* repl: see repl.h. */
#include "repl.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

/* ---- version vectors ---- */

void
repl_vv_to_pb(const struct store_vv *vv, Im__Head heads[SITES_MAX],
              Im__Head *ptrs[SITES_MAX], size_t *count_out)
{
    for (size_t i = 0; i < vv->count; i++) {
        im__head__init(&heads[i]);
        heads[i].origin = (char *)vv->e[i].origin;
        heads[i].seq = vv->e[i].head.seq;
        ptrs[i] = &heads[i];
    }
    *count_out = vv->count;
}

int
repl_vv_from_pb(struct store_vv *vv, Im__Head **heads, size_t count,
                struct im_err *e)
{
    memset(vv, 0, sizeof *vv);
    if (count > SITES_MAX)
        return im_errf(e, IM_EPROTO, "version vector of %zu origins exceeds %d",
                       count, SITES_MAX);
    for (size_t i = 0; i < count; i++) {
        const char *o = heads[i]->origin;
        if (o == NULL || config_check_site_code(o) != 0)
            return im_errf(e, IM_EPROTO, "version vector names an invalid origin");
        for (size_t j = 0; j < vv->count; j++)
            if (strcmp(vv->e[j].origin, o) == 0)
                return im_errf(e, IM_EPROTO, "version vector names %s twice", o);
        snprintf(vv->e[vv->count].origin, sizeof vv->e[0].origin, "%s", o);
        vv->e[vv->count].head.seq = heads[i]->seq;
        vv->count++;
    }
    return 0;
}

uint64_t
repl_vv_lacking(const struct store_vv *ours, const struct store_vv *theirs)
{
    uint64_t n = 0;
    for (size_t i = 0; i < ours->count; i++) {
        uint64_t t = store_vv_seq(theirs, ours->e[i].origin);
        if (ours->e[i].head.seq > t)
            n += ours->e[i].head.seq - t;
    }
    return n;
}

/* ---- building ---- */

struct collect {
    struct repl_batch *b;
    size_t budget, bytes;
    uint64_t last_seq;
    int failed;
};

static int
collect_event(void *arg, uint64_t seq, const uint8_t *bytes, size_t size)
{
    struct collect *c = arg;
    struct repl_batch *b = c->b;

    if (c->budget != 0 && c->bytes >= c->budget)
        return 1; /* stop: this origin's share is used */
    if (b->events_count == b->events_cap) {
        size_t cap = b->events_cap ? 2 * b->events_cap : 1024;
        ProtobufCBinaryData *ev = realloc(b->events, cap * sizeof *ev);
        if (ev == NULL) {
            c->failed = 1;
            return IM_ENOMEM;
        }
        b->events = ev;
        b->events_cap = cap;
    }
    b->events[b->events_count].data = (uint8_t *)bytes;
    b->events[b->events_count].len = size;
    b->events_count++;
    c->bytes += size;
    c->last_seq = seq;
    return 0;
}

void
repl_batch_free(struct repl_batch *b)
{
    free(b->ranges);
    free(b->range_ptrs);
    free(b->ckpts);
    free(b->events);
    free(b->hashes);
    free(b->sigs);
    free(b->origins);
    memset(b, 0, sizeof *b);
}

/* Appends origin's range from..(up to a checkpoint) to b. *left: events of
 * this origin still lacking after it. */
static int
build_range(MDB_txn *txn, struct store *s, const char *origin, uint64_t from,
            uint64_t head, size_t budget, struct repl_batch *b, uint64_t *left,
            struct im_err *e)
{
    uint64_t hi = head, end;
    size_t first = b->events_count, i = b->ranges_count;
    struct collect c = {.b = b, .budget = budget};
    int rv;

    if (hi - from + 1 > REPL_RANGE_EVENTS_MAX)
        hi = from + REPL_RANGE_EVENTS_MAX - 1;
    rv = store_events_visit(txn, s, origin, from, hi, collect_event, &c);
    if (rv < 0 || c.failed)
        return im_errf(e, rv < 0 ? rv : IM_ENOMEM, "read events of %s from %llu",
                       origin, (unsigned long long)from);
    /* End on the last checkpoint within what the budget took; if there is
     * none, on the first after it (a range may pass the budget by less than
     * one checkpoint gap to reach one, never the window). */
    if (store_checkpoint_find(txn, s, origin, from, c.last_seq, 1, &end) != 0) {
        if (store_checkpoint_find(txn, s, origin, c.last_seq + 1, hi, 0,
                                  &end) != 0) {
            b->events_count = first;
            return im_errf(e, IM_ECORRUPT,
                           "origin %s has no checkpoint in %llu..%llu", origin,
                           (unsigned long long)from, (unsigned long long)hi);
        }
        c.budget = 0;
        rv = store_events_visit(txn, s, origin, c.last_seq + 1, end,
                                collect_event, &c);
        if (rv != 0 || c.failed)
            return im_errf(e, rv < 0 ? rv : IM_ENOMEM, "read events of %s",
                           origin);
    }
    b->events_count = first + (size_t)(end - from + 1);
    for (size_t k = first; k < b->events_count; k++)
        b->bytes += b->events[k].len;

    snprintf(b->origins[i], sizeof b->origins[i], "%s", origin);
    crypto_generichash(b->hashes[i], STORE_HASH_BYTES,
                       b->events[b->events_count - 1].data,
                       b->events[b->events_count - 1].len, NULL, 0);
    if ((rv = store_checkpoint_get(txn, s, origin, end, b->sigs[i])) != 0)
        return im_errf(e, IM_ECORRUPT, "checkpoint %s/%llu unreadable", origin,
                       (unsigned long long)end);
    im__checkpoint__init(&b->ckpts[i]);
    b->ckpts[i].origin = b->origins[i];
    b->ckpts[i].seq = end;
    b->ckpts[i].hash.data = b->hashes[i];
    b->ckpts[i].hash.len = STORE_HASH_BYTES;
    b->ckpts[i].sig.data = b->sigs[i];
    b->ckpts[i].sig.len = KEY_SIG_BYTES;
    im__range__init(&b->ranges[i]);
    b->ranges[i].origin = b->origins[i];
    b->ranges[i].first_seq = from;
    b->ranges[i].n_events = b->events_count - first;
    /* Pointer fixed up at the end: b->events may still move. */
    b->ranges[i].events = (ProtobufCBinaryData *)(uintptr_t)first;
    b->ranges[i].checkpoint = &b->ckpts[i];
    b->range_ptrs[i] = &b->ranges[i];
    b->ranges_count++;
    *left = head - end;
    return 0;
}

int
repl_ranges_build(MDB_txn *txn, struct store *s, const struct store_vv *ours,
                  const struct store_vv *theirs, const char *skip,
                  size_t max_bytes, struct repl_batch *b, struct im_err *e)
{
    size_t lacking = 0, budget;
    int rv;

    memset(b, 0, sizeof *b);
    if (max_bytes == 0 || max_bytes > REPL_BATCH_BYTES_MAX)
        max_bytes = REPL_BATCH_BYTES_DEFAULT;
    for (size_t i = 0; i < ours->count; i++)
        if (ours->e[i].head.seq > store_vv_seq(theirs, ours->e[i].origin) &&
            (skip == NULL || strcmp(skip, ours->e[i].origin) != 0))
            lacking++;
    if (lacking == 0)
        return 0;
    /* Room for every range a message may hold: an origin's share may take
     * several (each at most REPL_RANGE_EVENTS_MAX events). */
    b->ranges = calloc(REPL_MSG_RANGES_MAX, sizeof *b->ranges);
    b->range_ptrs = calloc(REPL_MSG_RANGES_MAX, sizeof *b->range_ptrs);
    b->ckpts = calloc(REPL_MSG_RANGES_MAX, sizeof *b->ckpts);
    b->hashes = calloc(REPL_MSG_RANGES_MAX, sizeof *b->hashes);
    b->sigs = calloc(REPL_MSG_RANGES_MAX, sizeof *b->sigs);
    b->origins = calloc(REPL_MSG_RANGES_MAX, sizeof *b->origins);
    if (!b->ranges || !b->range_ptrs || !b->ckpts || !b->hashes || !b->sigs ||
        !b->origins) {
        repl_batch_free(b);
        return im_errf(e, IM_ENOMEM, "out of memory");
    }
    /* Origins in turn, each a fair share of the message, so that one big
     * backlog does not starve the others. */
    budget = max_bytes / lacking;
    if (budget < 64 * 1024)
        budget = 64 * 1024;
    for (size_t i = 0; i < ours->count; i++) {
        const struct store_vv_entry *o = &ours->e[i];
        uint64_t t = store_vv_seq(theirs, o->origin), left = 0;
        size_t start = b->bytes;
        if (o->head.seq <= t || (skip && strcmp(skip, o->origin) == 0))
            continue;
        if (b->bytes >= max_bytes || b->ranges_count == REPL_MSG_RANGES_MAX) {
            b->more = 1;
            break;
        }
        /* Consecutive ranges of this origin while its share, the message's
         * bytes and its event and range limits allow: the receiver applies
         * them in order, each extending the chain the one before left. */
        do {
            size_t used = b->bytes - start, share = budget - used;
            if (share > max_bytes - b->bytes)
                share = max_bytes - b->bytes;
            rv = build_range(txn, s, o->origin, t + 1, o->head.seq, share, b,
                             &left, e);
            if (rv != 0) {
                repl_batch_free(b);
                return rv;
            }
            t = o->head.seq - left;
        } while (left > 0 && b->bytes - start < budget &&
                 b->bytes < max_bytes &&
                 b->ranges_count < REPL_MSG_RANGES_MAX &&
                 b->events_count + REPL_RANGE_EVENTS_MAX <= REPL_MSG_EVENTS_MAX);
        if (left > 0)
            b->more = 1;
    }
    for (size_t i = 0; i < b->ranges_count; i++)
        b->ranges[i].events = b->events + (uintptr_t)b->ranges[i].events;
    return 0;
}

/* ---- receiving ---- */

void
repl_verified_free(struct repl_verified *v)
{
    if (v->events != NULL)
        for (size_t i = 0; i < v->count; i++)
            if (v->events[i] != NULL)
                im__event__free_unpacked(v->events[i], NULL);
    free(v->events);
    free(v->bytes);
    free(v->sizes);
    free(v->hashes);
    memset(v, 0, sizeof *v);
}

static void
refuse(int *reason_out, int reason)
{
    *reason_out = reason;
}

int
repl_range_verify(const Im__Range *r, const char *self,
                  repl_site_key_fn site_key, void *arg,
                  struct repl_verified *out, int *reason_out,
                  struct im_err *e)
{
    const Im__Checkpoint *ck = r->checkpoint;
    uint8_t msg[STORE_CKPT_MSG_BYTES];
    const uint8_t *pk;
    size_t n = r->n_events;
    int rv;

    memset(out, 0, sizeof *out);
    *reason_out = REPL_R_MALFORMED;
    if (r->origin == NULL || config_check_site_code(r->origin) != 0) {
        refuse(reason_out, REPL_R_MALFORMED);
        return im_errf(e, IM_EPROTO, "range names an invalid origin");
    }
    if (strcmp(r->origin, self) == 0) {
        refuse(reason_out, REPL_R_MALFORMED);
        return im_errf(e, IM_EPROTO, "range of our own origin %s", self);
    }
    if ((pk = site_key(arg, r->origin)) == NULL) {
        refuse(reason_out, REPL_R_UNKNOWN_ORIGIN);
        return im_errf(e, IM_EUNKNOWNKEY, "range of unknown origin %s",
                       r->origin);
    }
    if (n == 0 || n > REPL_RANGE_EVENTS_MAX) {
        refuse(reason_out, REPL_R_TOO_BIG);
        return im_errf(e, IM_EPROTO, "range of %s holds %zu events (1..%d)",
                       r->origin, n, REPL_RANGE_EVENTS_MAX);
    }
    if (r->first_seq == 0 || r->first_seq > UINT64_MAX - n) {
        refuse(reason_out, REPL_R_MALFORMED);
        return im_errf(e, IM_EPROTO, "range of %s starts at seq %llu", r->origin,
                       (unsigned long long)r->first_seq);
    }
    if (ck == NULL || ck->origin == NULL || strcmp(ck->origin, r->origin) != 0 ||
        ck->seq != r->first_seq + n - 1 || ck->hash.len != STORE_HASH_BYTES ||
        ck->sig.len != KEY_SIG_BYTES) {
        refuse(reason_out, REPL_R_MALFORMED);
        return im_errf(e, IM_EPROTO,
                       "range %s/%llu+%zu does not end with its checkpoint",
                       r->origin, (unsigned long long)r->first_seq, n);
    }
    snprintf(out->origin, sizeof out->origin, "%s", r->origin);
    out->first_seq = r->first_seq;
    out->events = calloc(n, sizeof *out->events);
    out->bytes = calloc(n, sizeof *out->bytes);
    out->sizes = calloc(n, sizeof *out->sizes);
    out->hashes = calloc(n, sizeof *out->hashes);
    if (!out->events || !out->bytes || !out->sizes || !out->hashes) {
        repl_verified_free(out);
        return im_errf(e, IM_ENOMEM, "out of memory");
    }
    out->count = n;
    for (size_t i = 0; i < n; i++) {
        const ProtobufCBinaryData *b = &r->events[i];
        uint64_t seq = r->first_seq + i;
        Im__Event *ev;

        if (b->len == 0 || b->len > EVENT_SIZE_MAX) {
            rv = im_errf(e, IM_EPROTO, "event %s/%llu of %zu bytes (1..%d)",
                         r->origin, (unsigned long long)seq, b->len,
                         EVENT_SIZE_MAX);
            refuse(reason_out, REPL_R_TOO_BIG);
            goto fail;
        }
        ev = out->events[i] = im__event__unpack(NULL, b->len, b->data);
        if (ev == NULL || ev->origin == NULL || ev->incident == NULL ||
            ev->actor == NULL) {
            rv = im_errf(e, IM_EPROTO, "event %s/%llu does not decode",
                         r->origin, (unsigned long long)seq);
            refuse(reason_out, REPL_R_MALFORMED);
            goto fail;
        }
        if (strcmp(ev->origin, r->origin) != 0 || ev->seq != seq) {
            rv = im_errf(e, IM_EPROTO, "event %s/%llu is labelled %.16s/%llu",
                         r->origin, (unsigned long long)seq, ev->origin,
                         (unsigned long long)ev->seq);
            refuse(reason_out, REPL_R_CHAIN);
            goto fail;
        }
        if (ev->incident[0] == '\0' || strlen(ev->incident) > INCIDENT_ID_MAX ||
            strlen(ev->actor) > OPERATOR_NAME_MAX || ev->hlc == 0 ||
            ev->prev_hash.len != STORE_HASH_BYTES) {
            rv = im_errf(e, IM_EPROTO, "event %s/%llu is malformed", r->origin,
                         (unsigned long long)seq);
            refuse(reason_out, REPL_R_MALFORMED);
            goto fail;
        }
        if (i > 0 && memcmp(ev->prev_hash.data, out->hashes[i - 1],
                            STORE_HASH_BYTES) != 0) {
            rv = im_errf(e, IM_EPROTO,
                         "event %s/%llu does not link to its predecessor",
                         r->origin, (unsigned long long)seq);
            refuse(reason_out, REPL_R_CHAIN);
            goto fail;
        }
        crypto_generichash(out->hashes[i], STORE_HASH_BYTES, b->data, b->len,
                           NULL, 0);
        out->bytes[i] = b->data;
        out->sizes[i] = b->len;
    }
    if (memcmp(ck->hash.data, out->hashes[n - 1], STORE_HASH_BYTES) != 0) {
        rv = im_errf(e, IM_EPROTO, "range %s/%llu: checkpoint hash differs from "
                                   "the events'", r->origin,
                     (unsigned long long)ck->seq);
        refuse(reason_out, REPL_R_CHAIN);
        goto fail;
    }
    store_checkpoint_message(msg, r->origin, ck->seq, out->hashes[n - 1]);
    if (key_verify(pk, KEY_CTX_CHECKPOINT, msg, sizeof msg, ck->sig.data) != 0) {
        rv = im_errf(e, IM_EBADSIG, "range %s/%llu: checkpoint signature of %s "
                                    "does not verify", r->origin,
                     (unsigned long long)ck->seq, r->origin);
        refuse(reason_out, REPL_R_SIGNATURE);
        goto fail;
    }
    memcpy(out->sig, ck->sig.data, KEY_SIG_BYTES);
    return 0;
fail:
    repl_verified_free(out);
    return rv;
}

int
repl_range_apply(struct store_txn *t, const struct repl_verified *v,
                 struct hlc *clk, uint64_t wall_ms, uint64_t *applied,
                 struct im_err *e)
{
    struct store_head head;
    uint64_t last = v->first_seq + v->count - 1;
    int rv, refused;

    *applied = 0;
    if ((rv = store_head_get(t->txn, t->s, v->origin, &head)) != 0)
        return im_errf(e, rv, "read chain head of %s", v->origin);
    if (head.seq >= last) {
        /* Already held (a duplicate or a slower path): it must be ours. */
        if (head.seq == last &&
            memcmp(head.hash, v->hashes[v->count - 1], STORE_HASH_BYTES) != 0)
            return im_errf(e, IM_ECORRUPT,
                           "origin %s forked its log at seq %llu", v->origin,
                           (unsigned long long)last);
        return 0;
    }
    if (head.seq + 1 < v->first_seq)
        return im_errf(e, IM_EPROTO, "range %s/%llu.. leaves a gap after %llu",
                       v->origin, (unsigned long long)v->first_seq,
                       (unsigned long long)head.seq);
    if (head.seq >= v->first_seq &&
        memcmp(head.hash, v->hashes[head.seq - v->first_seq],
               STORE_HASH_BYTES) != 0)
        return im_errf(e, IM_ECORRUPT, "origin %s forked its log at seq %llu",
                       v->origin, (unsigned long long)head.seq);
    for (size_t i = (size_t)(head.seq + 1 - v->first_seq); i < v->count; i++) {
        rv = store_append_remote(t, v->events[i], v->bytes[i], v->sizes[i],
                                 v->hashes[i], &refused, e);
        if (rv != 0)
            return rv;
        /* A site whose clock runs far ahead must not drag ours with it:
         * its events still sort by their HLC, ours keep real time. */
        if (HLC_MS(v->events[i]->hlc) <= wall_ms + REPL_HLC_AHEAD_MS_MAX)
            hlc_observe(clk, v->events[i]->hlc, wall_ms);
        (*applied)++;
    }
    return store_checkpoint_put(t, v->origin, last, v->sig, e);
}

int
repl_ranges_apply(struct store_txn *t, const struct repl_verified *v, size_t n,
                  struct hlc *clk, uint64_t wall_ms, int *codes,
                  uint64_t *applied, struct im_err *e)
{
    int rv;

    *applied = 0;
    /* One run: each incident record is read and written once per message
     * (store.h); on failure the caller aborts t, which ends the run. */
    if ((rv = store_remote_begin(t, e)) != 0)
        return rv;
    for (size_t i = 0; i < n; i++) {
        struct im_err ee = {0};
        uint64_t a = 0;
        codes[i] = repl_range_apply(t, &v[i], clk, wall_ms, &a, &ee);
        if (codes[i] == IM_EPROTO || codes[i] == IM_ECORRUPT)
            continue; /* refused before writing: the rest go on */
        if (codes[i] != 0) {
            *e = ee;
            return codes[i];
        }
        *applied += a;
    }
    return store_remote_end(t, e);
}

/* ---- requests and replies ---- */

static const char *const reason_names[REPL_R_COUNT] = {
#define REPL_R_NAME_(name, text) text,
    REPL_REASONS(REPL_R_NAME_)
#undef REPL_R_NAME_
};

const char *
repl_reason_name(int reason)
{
    return reason >= 0 && reason < REPL_R_COUNT ? reason_names[reason]
                                                 : "unknown";
}

static int
apply_reason(int code)
{
    switch (code) {
    case IM_EPROTO: return REPL_R_GAP;
    case IM_ECORRUPT: return REPL_R_FORK;
    default: return REPL_R_STORE;
    }
}

/* A request's turn in its stream (repl_env.turn_wait): taken once, after
 * its ranges verified (verifying is the part that runs in parallel), and
 * given back once, as soon as its ranges are queued for the store. */
struct turn {
    struct repl_env *env;
    const char *peer;
    uint64_t stream, seq;
    int taken, given;
};

static void
turn_take(struct turn *t)
{
    if (t == NULL || t->stream == 0 || t->taken)
        return;
    t->taken = 1;
    if (t->env->turn_wait != NULL)
        t->env->turn_wait(t->env->turn_arg, t->peer, t->stream, t->seq);
}

/* env->apply's queued: the stream's next request may go. */
static void
turn_give(void *arg)
{
    struct turn *t = arg;
    if (t == NULL || t->stream == 0 || t->given)
        return;
    turn_take(t);
    t->given = 1;
    if (t->env->turn_done != NULL)
        t->env->turn_done(t->env->turn_arg, t->peer, t->stream, t->seq);
}

/* repl_ranges_receive, in turn t (NULL: none). */
static int
receive(struct repl_env *env, Im__Range **ranges, size_t n,
        struct repl_counters *c, uint64_t *applied, struct turn *t,
        struct im_err *first_error)
{
    struct repl_verified *v;
    int *codes, rv = 0;
    size_t ok = 0;

    *applied = 0;
    if (n == 0)
        return 0;
    if (n > REPL_MSG_RANGES_MAX)
        return im_errf(first_error, IM_EPROTO, "%zu ranges in one message (max %d)",
                       n, REPL_MSG_RANGES_MAX);
    v = calloc(n, sizeof *v);
    codes = calloc(n, sizeof *codes);
    if (v == NULL || codes == NULL) {
        free(v);
        free(codes);
        return im_errf(first_error, IM_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        struct im_err e = {0};
        int reason;
        if (repl_range_verify(ranges[i], env->self, env->site_key, env->key_arg,
                              &v[ok], &reason, &e) != 0) {
            c->ranges_rejected[reason]++;
            if (first_error->code == 0)
                *first_error = e;
            continue;
        }
        ok++;
    }
    if (ok > 0) {
        struct im_err e = {0};
        turn_take(t);
        rv = env->apply(env->apply_arg, v, ok, codes, applied,
                        t != NULL ? turn_give : NULL, t, &e);
        if (rv != 0) {
            c->ranges_rejected[REPL_R_STORE]++;
            if (first_error->code == 0)
                *first_error = e;
        } else {
            for (size_t i = 0; i < ok; i++)
                if (codes[i] != 0) {
                    c->ranges_rejected[apply_reason(codes[i])]++;
                    if (first_error->code == 0)
                        im_errf(first_error, codes[i],
                                "range %s/%llu.. not applied", v[i].origin,
                                (unsigned long long)v[i].first_seq);
                }
            c->events_in += *applied;
        }
    }
    for (size_t i = 0; i < ok; i++)
        repl_verified_free(&v[i]);
    free(v);
    free(codes);
    return rv;
}

int
repl_ranges_receive(struct repl_env *env, Im__Range **ranges, size_t n,
                    struct repl_counters *c, uint64_t *applied,
                    struct im_err *first_error)
{
    return receive(env, ranges, n, c, applied, NULL, first_error);
}

static int
read_vector(struct repl_env *env, MDB_txn **txn, struct store_vv *vv,
            struct im_err *e)
{
    int rv;
    if ((rv = store_read_begin(env->store, txn, e)) != 0)
        return rv;
    if ((rv = store_vector(*txn, env->store, vv)) != 0) {
        store_read_end(*txn);
        return im_errf(e, rv, "read version vector");
    }
    return 0;
}

static int
pack_reply(Im__ReplReply *r, uint8_t **out, size_t *size, struct im_err *e)
{
    size_t n = im__repl_reply__get_packed_size(r);
    if ((*out = malloc(n ? n : 1)) == NULL)
        return im_errf(e, IM_ENOMEM, "out of memory");
    im__repl_reply__pack(r, *out);
    *size = n;
    return 0;
}

int
repl_serve(struct repl_env *env, const char *peer_site, const uint8_t *req,
           size_t req_size, uint64_t now_ms, struct repl_counters *c,
           uint8_t **reply, size_t *reply_size, struct im_err *e)
{
    Im__ReplReply r = IM__REPL_REPLY__INIT;
    Im__ReplRequest *q;
    Im__Head heads[SITES_MAX], *head_ptrs[SITES_MAX];
    struct im_err first = {0};
    struct store_vv *ours = NULL, *theirs = NULL;
    struct repl_batch b = {0};
    struct turn turn = {.env = env, .peer = peer_site};
    uint64_t applied = 0;
    MDB_txn *txn = NULL;
    int rv;

    r.now_ms = now_ms;
    q = im__repl_request__unpack(NULL, req_size, req);
    if (q == NULL || q->site == NULL || strcmp(q->site, peer_site) != 0) {
        c->ranges_rejected[REPL_R_MALFORMED]++;
        r.code = IM_EPROTO;
        r.error = q == NULL ? "request does not decode"
                            : "request names a site other than its sender";
        if (q != NULL)
            im__repl_request__free_unpacked(q, NULL);
        return pack_reply(&r, reply, reply_size, e);
    }
    /* From here on every path gives the request's turn back (turn_give at
     * out), so that the stream's next request never waits for it. */
    turn.stream = q->stream;
    turn.seq = q->stream_seq;
    r.stream = q->stream;
    r.stream_seq = q->stream_seq;
    ours = malloc(sizeof *ours);
    theirs = malloc(sizeof *theirs);
    if (ours == NULL || theirs == NULL) {
        rv = im_errf(e, IM_ENOMEM, "out of memory");
        goto out;
    }
    if ((rv = repl_vv_from_pb(theirs, q->have, q->n_have, &first)) != 0) {
        c->ranges_rejected[REPL_R_MALFORMED]++;
        r.code = rv;
        r.error = first.msg;
        rv = pack_reply(&r, reply, reply_size, e);
        goto out;
    }
    if (q->n_ranges > 0) {
        if ((rv = receive(env, q->ranges, q->n_ranges, c, &applied, &turn,
                          &first)) != 0) {
            /* The store could not take them: say so, keep serving. */
            r.code = first.code ? first.code : rv;
            r.error = first.msg;
            rv = 0;
        } else if (first.code != 0) {
            r.code = first.code;
            r.error = first.msg;
        }
        r.applied = (uint32_t)applied;
    }
    /* A sync applies nothing but still goes in its turn: its successors
     * must not overtake the pushes before it. */
    turn_give(&turn);
    if ((rv = read_vector(env, &txn, ours, e)) != 0)
        goto out;
    repl_vv_to_pb(ours, heads, head_ptrs, &r.n_have);
    r.have = head_ptrs;
    if (q->sync &&
        (env->pushing == NULL || !env->pushing(env->pushing_arg, q->site))) {
        if ((rv = repl_ranges_build(txn, env->store, ours, theirs, q->site,
                                    q->max_bytes, &b, e)) != 0)
            goto out;
        r.n_ranges = b.ranges_count;
        r.ranges = b.range_ptrs;
        r.more = b.more;
    }
    rv = pack_reply(&r, reply, reply_size, e);
out:
    turn_give(&turn);
    repl_batch_free(&b);
    if (txn != NULL)
        store_read_end(txn);
    im__repl_request__free_unpacked(q, NULL);
    free(ours);
    free(theirs);
    return rv;
}

/* ---- pipelining: the receiving side's order ---- */

int
repl_order_ready(const struct repl_order *o, uint64_t stream, uint64_t seq)
{
    if (stream == 0)
        return 1;
    if (stream != o->stream)
        return seq <= 1;
    return seq <= o->next;
}

void
repl_order_done(struct repl_order *o, uint64_t stream, uint64_t seq)
{
    if (stream == 0)
        return;
    if (stream != o->stream) {
        /* Only the first request of a stream makes it current: a
         * straggler of a replaced stream, let go after waiting, must not
         * take the order back from its successor. */
        if (seq <= 1) {
            o->stream = stream;
            o->next = seq + 1;
        }
        return;
    }
    if (seq >= o->next)
        o->next = seq + 1;
}

/* ---- the client side of a link ---- */

void
repl_link_init(struct repl_link *l, const char *peer)
{
    memset(l, 0, sizeof *l);
    snprintf(l->peer, sizeof l->peer, "%s", peer);
}

void
repl_link_reset(struct repl_link *l)
{
    l->catching_up = 0;
    l->theirs_known = 0;
    l->next_sync_ms = 0;
    memset(&l->sent, 0, sizeof l->sent);
    l->inflight_count = 0;
    l->stream = 0;
    l->stream_seq = 0;
}

static uint64_t
batch_newest_hlc(const struct repl_batch *b)
{
    uint64_t newest = 0;
    /* The last event of each range is its origin's newest in the batch;
     * decoding it is cheap next to sending. */
    for (size_t i = 0; i < b->ranges_count; i++) {
        const Im__Range *r = &b->ranges[i];
        const ProtobufCBinaryData *last = &r->events[r->n_events - 1];
        Im__Event *ev = im__event__unpack(NULL, last->len, last->data);
        if (ev != NULL) {
            if (ev->hlc > newest)
                newest = ev->hlc;
            im__event__free_unpacked(ev, NULL);
        }
    }
    return newest;
}

static uint32_t
link_batch_bytes(const struct repl_link *l)
{
    if (l->batch_bytes != 0)
        return l->batch_bytes;
    return l->catching_up ? REPL_BATCH_BYTES_MAX : REPL_BATCH_BYTES_DEFAULT;
}

static size_t
link_pipeline(const struct repl_link *l)
{
    if (l->pipeline == 0 || l->pipeline > REPL_PIPELINE_MAX)
        return REPL_PIPELINE_MAX;
    return l->pipeline;
}

/* Raises vv's seq of origin to at least seq (adding the origin). */
static void
vv_raise(struct store_vv *vv, const char *origin, uint64_t seq)
{
    for (size_t i = 0; i < vv->count; i++)
        if (strcmp(vv->e[i].origin, origin) == 0) {
            if (seq > vv->e[i].head.seq)
                vv->e[i].head.seq = seq;
            return;
        }
    if (vv->count == SITES_MAX)
        return; /* repl_vv_from_pb and the store bound origins: unreachable */
    memset(&vv->e[vv->count], 0, sizeof vv->e[0]);
    snprintf(vv->e[vv->count].origin, sizeof vv->e[0].origin, "%s", origin);
    vv->e[vv->count].head.seq = seq;
    vv->count++;
}

static int
sync_in_flight(const struct repl_link *l)
{
    for (size_t i = 0; i < l->inflight_count; i++)
        if (!l->inflight[i].push)
            return 1;
    return 0;
}

int
repl_link_request(struct repl_env *env, struct repl_link *l, uint64_t now_ms,
                  uint8_t **req, size_t *req_size, struct im_err *e)
{
    Im__ReplRequest q = IM__REPL_REQUEST__INIT;
    Im__Head heads[SITES_MAX], *head_ptrs[SITES_MAX];
    struct store_vv *ours, *base;
    struct repl_batch b = {0};
    struct repl_inflight rec = {0};
    MDB_txn *txn;
    int rv;

    *req = NULL;
    *req_size = 0;
    /* Full, or waiting for the first reply of a session: it tells what
     * the peer holds, and pushes start from there. */
    if (l->inflight_count >= link_pipeline(l) ||
        (!l->theirs_known && l->inflight_count > 0))
        return 0;
    ours = malloc(sizeof *ours);
    base = malloc(sizeof *base);
    if (ours == NULL || base == NULL) {
        free(ours);
        free(base);
        return im_errf(e, IM_ENOMEM, "out of memory");
    }
    if ((rv = read_vector(env, &txn, ours, e)) != 0) {
        free(ours);
        free(base);
        return rv;
    }
    q.site = (char *)env->self;
    repl_vv_to_pb(ours, heads, head_ptrs, &q.n_have);
    q.have = head_ptrs;
    if (l->theirs_known) {
        /* What the peer holds, and what is on its way to it. */
        *base = l->theirs;
        for (size_t i = 0; i < l->sent.count; i++)
            vv_raise(base, l->sent.e[i].origin, l->sent.e[i].head.seq);
        if (repl_vv_lacking(ours, base) > 0) {
            rv = repl_ranges_build(txn, env->store, ours, base, l->peer,
                                   link_batch_bytes(l), &b, e);
            if (rv != 0)
                goto out;
        }
    }
    if (b.ranges_count > 0) {
        q.n_ranges = b.ranges_count;
        q.ranges = b.range_ptrs;
        rec.push = 1;
        rec.newest_hlc = batch_newest_hlc(&b);
        l->catching_up = b.more;
    } else {
        if ((l->theirs_known && now_ms < l->next_sync_ms) || sync_in_flight(l))
            goto out; /* nothing to do yet */
        q.sync = 1;
        q.max_bytes = link_batch_bytes(l);
    }
    if (l->stream == 0) {
        /* Random: a receiver tells a new session's stream from the one it
         * follows by inequality alone, across restarts of either side. */
        while (l->stream == 0)
            randombytes_buf(&l->stream, sizeof l->stream);
        l->stream_seq = 0;
    }
    q.stream = l->stream;
    q.stream_seq = l->stream_seq + 1;
    *req_size = im__repl_request__get_packed_size(&q);
    if ((*req = malloc(*req_size)) == NULL) {
        *req_size = 0;
        rv = im_errf(e, IM_ENOMEM, "out of memory");
        goto out;
    }
    im__repl_request__pack(&q, *req);
    /* Committed to sending it: it is in flight from now on. */
    l->stream_seq++;
    rec.seq = l->stream_seq;
    l->inflight[l->inflight_count++] = rec;
    for (size_t i = 0; i < b.ranges_count; i++)
        vv_raise(&l->sent, b.ranges[i].origin,
                 b.ranges[i].first_seq + b.ranges[i].n_events - 1);
out:
    repl_batch_free(&b);
    store_read_end(txn);
    free(ours);
    free(base);
    return rv;
}

int
repl_link_reply(struct repl_env *env, struct repl_link *l,
                const uint8_t *reply, size_t reply_size, uint64_t now_ms,
                struct im_err *e)
{
    Im__ReplReply *r = im__repl_reply__unpack(NULL, reply_size, reply);
    struct im_err first = {0};
    struct store_vv *have = NULL;
    struct repl_inflight rec;
    uint64_t applied = 0;
    size_t k;
    int rv;

    if (r == NULL) {
        l->counters.ranges_rejected[REPL_R_MALFORMED]++;
        repl_link_reset(l);
        return im_errf(e, IM_EPROTO, "reply from %s does not decode", l->peer);
    }
    /* Which request it answers. */
    for (k = 0; k < l->inflight_count; k++)
        if (l->inflight[k].seq == r->stream_seq)
            break;
    if (k == l->inflight_count || r->stream != l->stream) {
        l->counters.ranges_rejected[REPL_R_MALFORMED]++;
        rv = im_errf(e, IM_EPROTO, "reply from %s answers no request in flight",
                     l->peer);
        im__repl_reply__free_unpacked(r, NULL);
        return rv;
    }
    rec = l->inflight[k];
    memmove(&l->inflight[k], &l->inflight[k + 1],
            (l->inflight_count - k - 1) * sizeof l->inflight[0]);
    l->inflight_count--;
    if ((have = malloc(sizeof *have)) == NULL) {
        rv = im_errf(e, IM_ENOMEM, "out of memory");
        repl_link_reset(l);
        goto out;
    }
    if ((rv = repl_vv_from_pb(have, r->have, r->n_have, e)) != 0) {
        l->counters.ranges_rejected[REPL_R_MALFORMED]++;
        repl_link_reset(l);
        goto out;
    }
    /* Replies may overtake each other; a peer's vector only grows within
     * a session (a restarted peer is a new session), so keep the highest. */
    if (!l->theirs_known) {
        l->theirs = *have;
        l->theirs_known = 1;
    } else {
        for (size_t i = 0; i < have->count; i++)
            vv_raise(&l->theirs, have->e[i].origin, have->e[i].head.seq);
    }
    if (rec.push) {
        l->counters.events_out += r->applied;
        if (rec.newest_hlc != 0 && now_ms >= HLC_MS(rec.newest_hlc)) {
            l->lag_ms = now_ms - HLC_MS(rec.newest_hlc);
            l->lag_samples++;
        }
    }
    if (r->code != 0) {
        snprintf(l->last_error, sizeof l->last_error, "%s: %s", l->peer,
                 r->error ? r->error : im_strerror(r->code));
        /* The peer refused part of what we sent (a gap, say): what is in
         * flight after it may not apply either. Ask where it stands
         * before pushing from our guess again. */
        memset(&l->sent, 0, sizeof l->sent);
        l->next_sync_ms = now_ms;
    }
    rv = repl_ranges_receive(env, r->ranges, r->n_ranges, &l->counters,
                             &applied, &first);
    if (rv != 0 || first.code != 0) {
        snprintf(l->last_error, sizeof l->last_error, "from %s: %s", l->peer,
                 im_errmsg(&first));
        if (rv != 0)
            *e = first;
    }
    if (!rec.push) {
        l->next_sync_ms = r->more ? now_ms : now_ms + REPL_SYNC_INTERVAL_MS;
        l->catching_up = r->more;
    }
out:
    free(have);
    im__repl_reply__free_unpacked(r, NULL);
    return rv;
}
