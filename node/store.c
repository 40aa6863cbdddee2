/* store: see store.h.
 *
 * Key layouts (all integers big-endian so that LMDB's byte order is numeric
 * order; origins NUL-padded to SITE_CODE_MAX bytes):
 *   events       origin[8] seq[8]
 *   heads        origin[8]                 -> seq[8] hash[32] hlc[8]
 *   checkpoints  origin[8] seq[8]          -> sig[64]
 *   inc_events   id NUL hlc[8] origin[8] seq[8]
 *   incidents    id
 *   idx          'R' open[1] prio[1] opened[8] id      rank: open first
 *                'S' state[1] prio[1] opened[8] id
 *                'V' service NUL open[1] prio[1] opened[8] id
 *   meta         "version" -> u32, "counter" -> u64
 */
#include "store.h"

#include <errno.h>
#include <inttypes.h>

#include "alerts.h"
#include <stdarg.h>
#include <stddef.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ORIGIN_KEY 8
#define EVENT_KEY (ORIGIN_KEY + 8)
#define HEAD_VALUE (8 + STORE_HASH_BYTES + 8)
#define IDX_KEY_MAX (1 + SERVICE_MAX + 1 + 1 + 1 + 8 + INCIDENT_ID_MAX)
#define INC_EV_KEY_MAX (INCIDENT_ID_MAX + 1 + 8 + ORIGIN_KEY + 8)
#define STORE_DBS 10

_Static_assert(SITE_CODE_MAX == ORIGIN_KEY, "origin keys are one site code");
_Static_assert(IDX_KEY_MAX <= 511, "LMDB's default key size limit");

static void
put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t
get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void
origin_key(uint8_t out[ORIGIN_KEY], const char *origin)
{
    memset(out, 0, ORIGIN_KEY);
    memcpy(out, origin, strnlen(origin, ORIGIN_KEY));
}

static void
event_key(uint8_t out[EVENT_KEY], const char *origin, uint64_t seq)
{
    origin_key(out, origin);
    put_be64(out + ORIGIN_KEY, seq);
}

/* Translates an LMDB code at the edge; `what` names the operation. */
static int
from_mdb(struct store *s, int rv, struct im_err *e, const char *what)
{
    switch (rv) {
    case 0:
        return 0;
    case MDB_NOTFOUND:
        return im_errf(e, IM_ENOTFOUND, "%s: not found", what);
    case MDB_MAP_FULL:
        return im_errf(e, IM_EFULL,
                       "store full: %s: the LMDB map of %llu bytes is used up; "
                       "raise map_size in [node] and restart",
                       what, (unsigned long long)s->map_size);
    case ENOSPC:
    case EDQUOT:
        return im_errf(e, IM_ENOSPC, "disk full: %s: %s", what, strerror(rv));
    case ENOMEM:
        return im_errf(e, IM_ENOMEM, "%s: out of memory", what);
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
        return im_errf(e, IM_ECORRUPT, "%s: %s", what, mdb_strerror(rv));
    default:
        if (rv > 0)
            return im_errf(e, im_from_errno(rv) == IM_EIO ? IM_EIO : IM_ESTORE,
                           "%s: %s", what, strerror(rv));
        return im_errf(e, IM_ESTORE, "%s: %s", what, mdb_strerror(rv));
    }
}

int
store_mdb_error(struct store *s, int rv, struct im_err *e, const char *what)
{
    return from_mdb(s, rv, e, what);
}

int
store_open(struct store *s, const char *dir, const char *site,
           uint64_t map_size, struct im_err *e)
{
    static const struct {
        const char *name;
        size_t off;
    } dbs[STORE_DBS] = {
        {"events", offsetof(struct store, events)},
        {"heads", offsetof(struct store, heads)},
        {"checkpoints", offsetof(struct store, checkpoints)},
        {"inc_events", offsetof(struct store, inc_events)},
        {"incidents", offsetof(struct store, incidents)},
        {"idx", offsetof(struct store, idx)},
        {"meta", offsetof(struct store, meta)},
        {"alerts", offsetof(struct store, alerts)},
        {"alert_pending", offsetof(struct store, alert_pending)},
        {"outbox", offsetof(struct store, outbox)},
    };
    MDB_txn *txn;
    MDB_val k, v;
    uint8_t ver[4];
    int rv;

    memset(s, 0, sizeof *s);
    snprintf(s->site, sizeof s->site, "%s", site);
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    s->map_size = map_size;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return im_errf(e, im_from_errno(errno), "open store %s: mkdir: %s", dir,
                       strerror(errno));
    if ((rv = mdb_env_create(&s->env)) != 0)
        return from_mdb(s, rv, e, "mdb_env_create");
    mdb_env_set_maxdbs(s->env, STORE_DBS);
    mdb_env_set_mapsize(s->env, (size_t)map_size);
    /* Readers run on NNG's worker threads; MDB_NOTLS ties read slots to
     * transactions rather than threads. */
    rv = mdb_env_open(s->env, dir, MDB_NOTLS, 0600);
    if (rv != 0) {
        from_mdb(s, rv, e, "mdb_env_open");
        im_errwrap(e, "open store %s", dir);
        goto fail_env;
    }
    if ((rv = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0) {
        from_mdb(s, rv, e, "begin");
        im_errwrap(e, "open store %s", dir);
        goto fail_env;
    }
    for (int i = 0; i < STORE_DBS; i++) {
        MDB_dbi *dbi = (MDB_dbi *)((char *)s + dbs[i].off);
        if ((rv = mdb_dbi_open(txn, dbs[i].name, MDB_CREATE, dbi)) != 0) {
            from_mdb(s, rv, e, "mdb_dbi_open");
            im_errwrap(e, "open store %s: table %s", dir, dbs[i].name);
            goto fail_txn;
        }
    }
    k.mv_data = "version";
    k.mv_size = 7;
    rv = mdb_get(txn, s->meta, &k, &v);
    if (rv == MDB_NOTFOUND) {
        ver[0] = ver[1] = ver[2] = 0;
        ver[3] = STORE_SCHEMA_VERSION;
        v.mv_data = ver;
        v.mv_size = 4;
        rv = mdb_put(txn, s->meta, &k, &v, 0);
    } else if (rv == 0 && (v.mv_size != 4 ||
                           ((const uint8_t *)v.mv_data)[3] != STORE_SCHEMA_VERSION)) {
        im_errf(e, IM_ECORRUPT,
                "open store %s: schema version is not %d (written by another "
                "version of imnode?)", dir, STORE_SCHEMA_VERSION);
        goto fail_txn;
    }
    if (rv != 0) {
        from_mdb(s, rv, e, "schema version");
        im_errwrap(e, "open store %s", dir);
        goto fail_txn;
    }
    if ((rv = mdb_txn_commit(txn)) != 0) {
        from_mdb(s, rv, e, "commit");
        im_errwrap(e, "open store %s", dir);
        goto fail_env;
    }
    return 0;

fail_txn:
    mdb_txn_abort(txn);
fail_env:
    mdb_env_close(s->env);
    s->env = NULL;
    return e ? e->code : IM_ESTORE;
}

void
store_close(struct store *s)
{
    if (s->env != NULL)
        mdb_env_close(s->env);
    s->env = NULL;
}

/* ---- heads and events ---- */

int
store_head_get(MDB_txn *txn, struct store *s, const char *origin,
               struct store_head *out)
{
    uint8_t kb[ORIGIN_KEY];
    MDB_val k = {ORIGIN_KEY, kb}, v;
    int rv;

    origin_key(kb, origin);
    memset(out, 0, sizeof *out);
    rv = mdb_get(txn, s->heads, &k, &v);
    if (rv == MDB_NOTFOUND)
        return 0;
    if (rv != 0)
        return from_mdb(s, rv, NULL, "head");
    if (v.mv_size != HEAD_VALUE)
        return IM_ECORRUPT;
    out->seq = get_be64(v.mv_data);
    memcpy(out->hash, (const uint8_t *)v.mv_data + 8, STORE_HASH_BYTES);
    out->hlc = get_be64((const uint8_t *)v.mv_data + 8 + STORE_HASH_BYTES);
    return 0;
}

static int
head_put(MDB_txn *txn, struct store *s, const char *origin,
         const struct store_head *h)
{
    uint8_t kb[ORIGIN_KEY], vb[HEAD_VALUE];
    MDB_val k = {ORIGIN_KEY, kb}, v = {HEAD_VALUE, vb};

    origin_key(kb, origin);
    put_be64(vb, h->seq);
    memcpy(vb + 8, h->hash, STORE_HASH_BYTES);
    put_be64(vb + 8 + STORE_HASH_BYTES, h->hlc);
    return mdb_put(txn, s->heads, &k, &v, 0);
}

static Im__Event *
event_decode(const MDB_val *v)
{
    return im__event__unpack(NULL, v->mv_size, v->mv_data);
}

int
store_event_get(MDB_txn *txn, struct store *s, const char *origin,
                uint64_t seq, Im__Event **out, struct im_err *e)
{
    uint8_t kb[EVENT_KEY];
    MDB_val k = {EVENT_KEY, kb}, v;
    Im__Event *ev;
    int rv;

    event_key(kb, origin, seq);
    if ((rv = mdb_get(txn, s->events, &k, &v)) != 0) {
        if (rv == MDB_NOTFOUND)
            return im_errf(e, IM_ENOTFOUND, "no event %s/%llu", origin,
                           (unsigned long long)seq);
        return from_mdb(s, rv, e, "read event");
    }
    if ((ev = event_decode(&v)) == NULL)
        return im_errf(e, IM_ECORRUPT, "event %s/%llu does not decode", origin,
                       (unsigned long long)seq);
    *out = ev;
    return 0;
}

/* ---- incident records and indexes ---- */

static size_t
inc_ev_key(uint8_t out[INC_EV_KEY_MAX], const char *id, hlc_t hlc,
           const char *origin, uint64_t seq)
{
    size_t n = strlen(id);
    memcpy(out, id, n);
    out[n++] = '\0';
    put_be64(out + n, hlc);
    n += 8;
    origin_key(out + n, origin);
    n += ORIGIN_KEY;
    put_be64(out + n, seq);
    return n + 8;
}

/* The three index keys of an incident; returns how many were written. */
static int
idx_keys(const struct incident *inc, uint8_t keys[3][IDX_KEY_MAX],
         size_t sizes[3])
{
    size_t id_size = strlen(inc->id), svc_size = strlen(inc->service), n;
    uint8_t open = incident_state_is_open(inc->state) ? 0 : 1;
    uint8_t prio = (uint8_t)inc->priority;

    n = 0;
    keys[0][n++] = 'R';
    keys[0][n++] = open;
    keys[0][n++] = prio;
    put_be64(keys[0] + n, inc->opened_at_ms);
    n += 8;
    memcpy(keys[0] + n, inc->id, id_size);
    sizes[0] = n + id_size;

    n = 0;
    keys[1][n++] = 'S';
    keys[1][n++] = (uint8_t)inc->state;
    keys[1][n++] = prio;
    put_be64(keys[1] + n, inc->opened_at_ms);
    n += 8;
    memcpy(keys[1] + n, inc->id, id_size);
    sizes[1] = n + id_size;

    n = 0;
    keys[2][n++] = 'V';
    memcpy(keys[2] + n, inc->service, svc_size);
    n += svc_size;
    keys[2][n++] = '\0';
    keys[2][n++] = open;
    keys[2][n++] = prio;
    put_be64(keys[2] + n, inc->opened_at_ms);
    n += 8;
    memcpy(keys[2] + n, inc->id, id_size);
    sizes[2] = n + id_size;
    return 3;
}

/* Writes inc's record and moves its index entries from okeys (the keys of
 * the record it replaces; NULL if none) to its own. */
static int
record_put(MDB_txn *txn, struct store *s, uint8_t okeys[3][IDX_KEY_MAX],
           const size_t osizes[3], const struct incident *inc)
{
    uint8_t nkeys[3][IDX_KEY_MAX];
    size_t nsizes[3];
    struct incident_pb pb;
    MDB_val k, v;
    size_t size;
    int rv;

    incident_pb_fill(&pb, inc);
    size = im__incident__get_packed_size(&pb.msg);
    k.mv_data = (void *)inc->id;
    k.mv_size = strlen(inc->id);
    v.mv_size = size;
    if ((rv = mdb_put(txn, s->incidents, &k, &v, MDB_RESERVE)) != 0)
        return rv;
    if (im__incident__pack(&pb.msg, v.mv_data) != size)
        abort(); /* protobuf-c disagrees with itself: a bug, not input */

    /* Only keys that changed are touched. Most events (notes, roles,
     * assignment) change none, and re-putting an unchanged key still
     * copies and rewrites its B-tree page in every commit: with many
     * incidents that was a third of the pages a commit wrote (tests/bench). */
    idx_keys(inc, nkeys, nsizes);
    int have_old = okeys != NULL;
    for (int i = 0; i < 3; i++) {
        MDB_val empty = {0, NULL};
        if (have_old && osizes[i] == nsizes[i] &&
            memcmp(okeys[i], nkeys[i], osizes[i]) == 0)
            continue;
        if (have_old) {
            k.mv_data = okeys[i];
            k.mv_size = osizes[i];
            rv = mdb_del(txn, s->idx, &k, NULL);
            if (rv != 0 && rv != MDB_NOTFOUND)
                return rv;
        }
        k.mv_data = nkeys[i];
        k.mv_size = nsizes[i];
        if ((rv = mdb_put(txn, s->idx, &k, &empty, 0)) != 0)
            return rv;
    }
    return 0;
}

static int
incident_put(MDB_txn *txn, struct store *s, const struct incident *old,
             const struct incident *inc)
{
    uint8_t okeys[3][IDX_KEY_MAX];
    size_t osizes[3];

    if (old == NULL || old->id[0] == '\0')
        return record_put(txn, s, NULL, NULL, inc);
    idx_keys(old, okeys, osizes);
    return record_put(txn, s, okeys, osizes, inc);
}

static int
record_decode(struct store *s, const MDB_val *v, struct incident *out,
              struct im_err *e, const char *id)
{
    Im__Incident *msg = im__incident__unpack(NULL, v->mv_size, v->mv_data);
    int rv;
    if (msg == NULL)
        return im_errf(e, IM_ECORRUPT, "incident %s: record does not decode", id);
    rv = incident_from_pb(out, msg);
    im__incident__free_unpacked(msg, NULL);
    if (rv != 0)
        return im_errf(e, IM_ECORRUPT, "incident %s: record out of bounds", id);
    return 0;
}

int
store_incident_get(MDB_txn *txn, struct store *s, const char *id,
                   struct incident *out, struct im_err *e)
{
    MDB_val k, v;
    int rv;

    if (strlen(id) > INCIDENT_ID_MAX)
        return im_errf(e, IM_ENOTFOUND, "no incident %.40s...", id);
    k.mv_data = (void *)id;
    k.mv_size = strlen(id);
    if (k.mv_size == 0)
        return im_errf(e, IM_EINVAL, "incident id is required");
    rv = mdb_get(txn, s->incidents, &k, &v);
    if (rv == MDB_NOTFOUND)
        return im_errf(e, IM_ENOTFOUND, "no incident %s", id);
    if (rv != 0)
        return from_mdb(s, rv, e, "read incident");
    return record_decode(s, &v, out, e, id);
}

void
store_events_free(Im__Event **events, size_t count)
{
    if (events == NULL)
        return;
    for (size_t i = 0; i < count; i++)
        im__event__free_unpacked(events[i], NULL);
    free(events);
}

int
store_incident_events(MDB_txn *txn, struct store *s, const char *id,
                      Im__Event ***events_out, size_t *count_out,
                      struct im_err *e)
{
    uint8_t prefix[INCIDENT_ID_MAX + 1];
    size_t prefix_size = strlen(id) + 1, count = 0, cap = 16;
    Im__Event **events;
    MDB_cursor *cur;
    MDB_val k, v;
    int rv;

    if (prefix_size > sizeof prefix)
        return im_errf(e, IM_ENOTFOUND, "no incident %.40s...", id);
    memcpy(prefix, id, prefix_size);
    if ((rv = mdb_cursor_open(txn, s->inc_events, &cur)) != 0)
        return from_mdb(s, rv, e, "cursor");
    events = malloc(cap * sizeof *events);
    if (events == NULL) {
        mdb_cursor_close(cur);
        return im_errf(e, IM_ENOMEM, "out of memory");
    }
    k.mv_data = prefix;
    k.mv_size = prefix_size;
    for (rv = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rv == 0;
         rv = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const uint8_t *kb = k.mv_data;
        char origin[ORIGIN_KEY + 1];
        Im__Event *ev;
        if (k.mv_size != prefix_size + 8 + ORIGIN_KEY + 8 ||
            memcmp(kb, prefix, prefix_size) != 0)
            break;
        memcpy(origin, kb + prefix_size + 8, ORIGIN_KEY);
        origin[ORIGIN_KEY] = '\0';
        if (count == INCIDENT_EVENTS_MAX + 1) {
            rv = im_errf(e, IM_ECORRUPT, "incident %s holds more than %d events",
                         id, INCIDENT_EVENTS_MAX);
            goto fail;
        }
        rv = store_event_get(txn, s, origin,
                             get_be64(kb + prefix_size + 8 + ORIGIN_KEY), &ev, e);
        if (rv != 0)
            goto fail;
        if (count == cap) {
            Im__Event **bigger = realloc(events, 2 * cap * sizeof *events);
            if (bigger == NULL) {
                im__event__free_unpacked(ev, NULL);
                rv = im_errf(e, IM_ENOMEM, "out of memory");
                goto fail;
            }
            events = bigger;
            cap *= 2;
        }
        events[count++] = ev;
    }
    if (rv != 0 && rv != MDB_NOTFOUND) {
        rv = from_mdb(s, rv, e, "read incident events");
        goto fail;
    }
    mdb_cursor_close(cur);
    if (count == 0) {
        free(events);
        return im_errf(e, IM_ENOTFOUND, "no incident %s", id);
    }
    *events_out = events;
    *count_out = count;
    return 0;
fail:
    mdb_cursor_close(cur);
    store_events_free(events, count);
    return rv;
}

/* ---- write side ---- */

int
store_write_begin(struct store *s, struct store_txn *t, struct im_err *e)
{
    int rv;
    memset(t, 0, sizeof *t);
    t->s = s;
    if ((rv = mdb_txn_begin(s->env, NULL, 0, &t->txn)) != 0)
        return from_mdb(s, rv, e, "begin write");
    return 0;
}

static void remote_free(struct store_txn *t);

void
store_abort(struct store_txn *t)
{
    remote_free(t);
    if (t->txn != NULL)
        mdb_txn_abort(t->txn);
    t->txn = NULL;
}

static int
note_appended(struct store_txn *t, const char *origin)
{
    for (int i = 0; i < t->appended_count; i++)
        if (strcmp(t->appended[i], origin) == 0)
            return 0;
    if (t->appended_count == SITES_MAX)
        return IM_ETOOBIG;
    snprintf(t->appended[t->appended_count++], SITE_CODE_MAX + 1, "%s", origin);
    return 0;
}

void
store_checkpoint_message(uint8_t out[STORE_CKPT_MSG_BYTES], const char *origin,
                         uint64_t seq, const uint8_t hash[STORE_HASH_BYTES])
{
    event_key(out, origin, seq);
    memcpy(out + EVENT_KEY, hash, STORE_HASH_BYTES);
}

static void
checkpoint_message(uint8_t out[STORE_CKPT_MSG_BYTES], const char *origin,
                   const struct store_head *h)
{
    store_checkpoint_message(out, origin, h->seq, h->hash);
}

static int
checkpoint_sign_put(struct store_txn *t, const struct im_key *site_key,
                    uint64_t seq, const uint8_t hash[STORE_HASH_BYTES])
{
    uint8_t msg[STORE_CKPT_MSG_BYTES], sig[KEY_SIG_BYTES], kb[EVENT_KEY];
    MDB_val k = {EVENT_KEY, kb}, v = {KEY_SIG_BYTES, sig};

    store_checkpoint_message(msg, t->s->site, seq, hash);
    key_sign(site_key, KEY_CTX_CHECKPOINT, msg, sizeof msg, sig);
    event_key(kb, t->s->site, seq);
    return mdb_put(t->txn, t->s->checkpoints, &k, &v, 0);
}

int
store_commit(struct store_txn *t, const struct im_key *site_key,
             struct im_err *e)
{
    struct store *s = t->s;
    int rv;

    if (t->remote != NULL)
        abort(); /* a bug: store_remote_end must write the incidents first */
    /* One signature per commit (DESIGN.md §4), plus one every
     * STORE_CKPT_EVERY events of a long commit: receivers verify the chain
     * links by hashing and a range by one signature. Only our own site's
     * head is ours to sign. */
    for (int i = 0; i < t->appended_count; i++) {
        struct store_head h;

        if (strcmp(t->appended[i], s->site) != 0 || site_key == NULL)
            continue;
        if ((rv = store_head_get(t->txn, s, s->site, &h)) != 0) {
            store_abort(t);
            return im_errf(e, rv, "commit: read head");
        }
        for (int m = 0; m < t->mid_count; m++) {
            if (t->mid[m].seq >= h.seq)
                continue;
            if ((rv = checkpoint_sign_put(t, site_key, t->mid[m].seq,
                                          t->mid[m].hash)) != 0) {
                store_abort(t);
                return from_mdb(s, rv, e, "commit: checkpoint");
            }
        }
        if ((rv = checkpoint_sign_put(t, site_key, h.seq, h.hash)) != 0) {
            store_abort(t);
            return from_mdb(s, rv, e, "commit: checkpoint");
        }
    }
    rv = mdb_txn_commit(t->txn);
    t->txn = NULL; /* committed or aborted by LMDB either way */
    if (rv != 0)
        return from_mdb(s, rv, e, "commit");
    return 0;
}

int
store_next_id(struct store_txn *t, char id[INCIDENT_ID_MAX + 1],
              struct im_err *e)
{
    struct store *s = t->s;
    uint8_t buf[8];
    MDB_val k = {7, "counter"}, v;
    uint64_t n = 0;
    int rv;

    rv = mdb_get(t->txn, s->meta, &k, &v);
    if (rv == 0 && v.mv_size == 8)
        n = get_be64(v.mv_data);
    else if (rv == 0)
        return im_errf(e, IM_ECORRUPT, "incident counter is corrupt");
    else if (rv != MDB_NOTFOUND)
        return from_mdb(s, rv, e, "read incident counter");
    n++;
    put_be64(buf, n);
    v.mv_data = buf;
    v.mv_size = 8;
    if ((rv = mdb_put(t->txn, s->meta, &k, &v, 0)) != 0)
        return from_mdb(s, rv, e, "write incident counter");
    snprintf(id, INCIDENT_ID_MAX + 1, "%s-%llu", s->site, (unsigned long long)n);
    return 0;
}

/* Re-folds an incident from its stored events plus `extra` (not yet
 * stored), for an event that sorts before what was already folded. */
static int
refold_with(struct store_txn *t, const char *id, const Im__Event *extra,
            struct incident *out, int *extra_code, struct im_err *e)
{
    Im__Event **events = NULL, **all;
    struct fold_outcome *outcomes;
    size_t n = 0;
    int rv;

    rv = store_incident_events(t->txn, t->s, id, &events, &n, e);
    if (rv != 0 && rv != IM_ENOTFOUND)
        return rv;
    all = malloc((n + 1) * sizeof *all);
    outcomes = malloc((n + 1) * sizeof *outcomes);
    if (all == NULL || outcomes == NULL) {
        free(all);
        free(outcomes);
        store_events_free(events, n);
        return im_errf(e, IM_ENOMEM, "out of memory");
    }
    memcpy(all, events, n * sizeof *all);
    all[n] = (Im__Event *)extra;
    rv = incident_fold(out, (const Im__Event **)all, n + 1, outcomes);
    *extra_code = 0;
    for (size_t i = 0; i <= n; i++)
        if (outcomes[i].event == extra) {
            *extra_code = outcomes[i].code;
            if (outcomes[i].code != 0)
                im_errf(e, outcomes[i].code, "%s", outcomes[i].reason);
        }
    free(all);
    free(outcomes);
    store_events_free(events, n);
    return rv;
}

int
store_append_local(struct store_txn *t, Im__Event *ev, struct hlc *clk,
                   uint64_t wall_ms, struct incident *inc, struct im_err *e)
{
    struct store *s = t->s;
    static const uint8_t zero_hash[STORE_HASH_BYTES];
    struct incident *old;
    struct store_head head;
    uint8_t ekey[EVENT_KEY], ikey[INC_EV_KEY_MAX];
    MDB_val k, v;
    size_t size;
    int rv, is_open = ev->body != NULL &&
                      ev->body->kind_case == IM__BODY__KIND_OPENED;

    if (t->remote != NULL)
        abort(); /* a bug: it would read stale incidents */
    old = malloc(sizeof *old);
    if (old == NULL)
        return im_errf(e, IM_ENOMEM, "out of memory");
    memset(old, 0, sizeof *old);
    if (!is_open) {
        if ((rv = store_incident_get(t->txn, s, ev->incident, old, e)) != 0)
            goto out;
    }
    if ((rv = store_head_get(t->txn, s, s->site, &head)) != 0) {
        rv = im_errf(e, rv, "read chain head of %s", s->site);
        goto out;
    }
    ev->origin = s->site;
    /* A node acts under the owner token it holds, and only as the owner
     * (DESIGN.md §5): another site's incident refuses owner-only actions
     * here, and this site's own only while the owner gate (the
     * coordinator lease) lets it. The fold would refuse the first too; the
     * message here says where to act instead. */
    if (!is_open && incident_body_owner_only(ev->body)) {
        if (strcmp(old->owner_site, s->site) != 0) {
            rv = im_errf(e, IM_ESTALE,
                         "%s is owned by %s (token %" PRIu64 "%s%s): "
                         "acknowledge, transitions, assignment and public "
                         "updates are taken there, or after `imctl "
                         "reassign`; notes are accepted at every site",
                         old->id, old->owner_site, old->owner_token,
                         old->owner_manager[0] ? ", manager " : "",
                         old->owner_manager);
            goto out;
        }
        if (s->owner_gate != NULL &&
            (rv = s->owner_gate(s->owner_gate_arg, old, e)) != 0)
            goto out;
    }
    if (!is_open)
        ev->owner_token = strcmp(old->owner_site, s->site) == 0 ? old->owner_token : 0;
    ev->seq = head.seq + 1;
    memcpy(t->prev_hash, head.seq ? head.hash : zero_hash, STORE_HASH_BYTES);
    ev->prev_hash.data = t->prev_hash;
    ev->prev_hash.len = STORE_HASH_BYTES;
    /* The chain's own clock never runs backwards, even across a restart
     * with a clock that did. */
    hlc_observe(clk, head.hlc, wall_ms);
    ev->hlc = hlc_now(clk, wall_ms);

    /* Decide first, write after: a refused event writes nothing. */
    memcpy(inc, old, sizeof *inc);
    if (is_open || incident_event_after_last(inc, ev)) {
        rv = incident_apply(inc, ev, e);
    } else {
        int code = 0;
        rv = refold_with(t, ev->incident, ev, inc, &code, e);
        if (rv == 0)
            rv = code;
    }
    if (rv != 0)
        goto out;

    size = im__event__get_packed_size(ev);
    if (size > EVENT_SIZE_MAX) {
        rv = im_errf(e, IM_ETOOBIG, "event of %zu bytes exceeds %d", size,
                     EVENT_SIZE_MAX);
        goto out;
    }
    event_key(ekey, s->site, ev->seq);
    k.mv_data = ekey;
    k.mv_size = EVENT_KEY;
    v.mv_size = size;
    if ((rv = mdb_put(t->txn, s->events, &k, &v, MDB_RESERVE | MDB_NOOVERWRITE)) != 0) {
        rv = from_mdb(s, rv, e, "append event");
        goto out;
    }
    if (im__event__pack(ev, v.mv_data) != size)
        abort();
    crypto_generichash(head.hash, STORE_HASH_BYTES, v.mv_data, size, NULL, 0);
    head.seq = ev->seq;
    head.hlc = ev->hlc;
    t->mid_events++;
    t->mid_bytes += size;
    if (t->mid_events >= STORE_CKPT_EVERY || t->mid_bytes >= STORE_CKPT_BYTES) {
        if (t->mid_count == STORE_CKPT_MID_MAX) {
            rv = im_errf(e, IM_ETOOBIG, "more than %d events in one commit",
                         COMMIT_BATCH_OPS_MAX);
            goto out;
        }
        t->mid[t->mid_count].seq = head.seq;
        memcpy(t->mid[t->mid_count].hash, head.hash, STORE_HASH_BYTES);
        t->mid_count++;
        t->mid_events = t->mid_bytes = 0;
    }
    if ((rv = head_put(t->txn, s, s->site, &head)) != 0) {
        rv = from_mdb(s, rv, e, "advance chain head");
        goto out;
    }
    k.mv_data = ikey;
    k.mv_size = inc_ev_key(ikey, ev->incident, ev->hlc, s->site, ev->seq);
    v.mv_data = NULL;
    v.mv_size = 0;
    if ((rv = mdb_put(t->txn, s->inc_events, &k, &v, 0)) != 0) {
        rv = from_mdb(s, rv, e, "index event");
        goto out;
    }
    if ((rv = incident_put(t->txn, s, is_open ? NULL : old, inc)) != 0) {
        rv = from_mdb(s, rv, e, "write incident");
        goto out;
    }
    if ((rv = note_appended(t, s->site)) != 0) {
        rv = im_errf(e, rv, "too many origins in one transaction");
        goto out;
    }
    /* Tables derived from events, in the same transaction as the event:
     * a crash cannot separate them. */
    if ((rv = alerts_index_event(t, ev, e)) != 0)
        goto out;
    if (s->derive != NULL)
        rv = s->derive(s->derive_arg, t, old, inc, ev, e);
out:
    free(old);
    return rv;
}

/* ---- replication: remote events, checkpoints, vectors ---- */

/* Re-folds incident id from every event stored for it into inc; if ev is
 * not NULL, *refused tells whether the fold refused it. inc->id stays ""
 * if no opening was accepted yet. */
static int
refold_stored(struct store_txn *t, const char *id, const Im__Event *ev,
              struct incident *inc, int *refused, struct im_err *e)
{
    Im__Event **events = NULL;
    struct fold_outcome *outcomes;
    size_t n = 0;
    int rv;

    if ((rv = store_incident_events(t->txn, t->s, id, &events, &n, e)) != 0)
        return rv;
    outcomes = malloc(n * sizeof *outcomes);
    if (outcomes == NULL) {
        store_events_free(events, n);
        return im_errf(e, IM_ENOMEM, "out of memory");
    }
    incident_fold(inc, (const Im__Event **)events, n, outcomes);
    for (size_t i = 0; ev != NULL && i < n; i++)
        if (strcmp(outcomes[i].event->origin, ev->origin) == 0 &&
            outcomes[i].event->seq == ev->seq)
            *refused = outcomes[i].code != 0;
    free(outcomes);
    store_events_free(events, n);
    return 0;
}

/* One cached incident of a run of remote appends. */
struct remote_entry {
    char id[INCIDENT_ID_MAX + 1];     /* the key ("" = free slot) */
    struct incident inc;              /* current state; inc.id "" = none */
    int had_record;                   /* a record was stored before the run */
    uint8_t okeys[3][IDX_KEY_MAX];    /* its index keys, if had_record */
    size_t osizes[3];
    int dirty;                        /* inc differs from the stored record */
    int refold;                       /* a late event came: fold all at the end */
    const Im__Event *last_ev;         /* the latest such event (borrowed from
                                         the caller until the run ends) */
};

/* Open addressing over a power of two at least twice the entries, so a
 * probe ends quickly at a free slot. */
#define REMOTE_SLOTS (2 * STORE_REMOTE_CACHE_MAX)
_Static_assert((REMOTE_SLOTS & (REMOTE_SLOTS - 1)) == 0, "a power of two");

struct store_remote {
    struct remote_entry *slot[REMOTE_SLOTS];
    size_t count;
    struct incident scratch;          /* a re-fold's result */
    /* The incident before an event, for the derive hook: one buffer for
     * the run, not a malloc'd copy per event (a catch-up spent a fifth of
     * its writer time allocating and freeing these; tests/bench/repl.sh). */
    struct incident before;
};

static uint32_t
id_hash(const char *id)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *id != '\0'; id++)
        h = (h ^ (uint8_t)*id) * 16777619u;
    return h;
}

static void
remote_clear(struct store_remote *r)
{
    for (size_t i = 0; i < REMOTE_SLOTS; i++) {
        free(r->slot[i]);
        r->slot[i] = NULL;
    }
    r->count = 0;
}

/* Writes every dirty entry; they stay cached, now clean. */
static int
remote_flush(struct store_txn *t, struct im_err *e)
{
    struct store_remote *r = t->remote;
    int rv;

    for (size_t i = 0; i < REMOTE_SLOTS; i++) {
        struct remote_entry *en = r->slot[i];
        if (en == NULL || !en->dirty)
            continue;
        if (en->refold) {
            int unused = 0;
            en->refold = 0;
            if ((rv = refold_stored(t, en->id, NULL, &r->scratch, &unused, e)) != 0)
                return rv;
            /* No accepted "opened" yet (it is still on its way from its
             * origin): the incident has events but no state until then. */
            if (r->scratch.id[0] == '\0') {
                en->dirty = 0;
                continue;
            }
            if (t->s->derive != NULL && en->last_ev != NULL &&
                (rv = t->s->derive(t->s->derive_arg, t, &en->inc, &r->scratch,
                                   en->last_ev, e)) != 0)
                return rv;
            en->last_ev = NULL;
            memcpy(&en->inc, &r->scratch, sizeof en->inc);
        }
        if (en->inc.id[0] == '\0' || strcmp(en->inc.id, en->id) != 0)
            abort(); /* a bug: only a folded incident is dirty */
        rv = record_put(t->txn, t->s, en->had_record ? en->okeys : NULL,
                        en->osizes, &en->inc);
        if (rv != 0)
            return from_mdb(t->s, rv, e, "write incident");
        en->had_record = 1;
        idx_keys(&en->inc, en->okeys, en->osizes);
        en->dirty = 0;
    }
    return 0;
}

/* The entry of id, loaded from the store on first use. */
static int
remote_entry_get(struct store_txn *t, const char *id,
                 struct remote_entry **out, struct im_err *e)
{
    struct store_remote *r = t->remote;
    struct remote_entry *en;
    struct im_err ee = {0};
    size_t i;
    int rv;

    for (i = id_hash(id) & (REMOTE_SLOTS - 1); r->slot[i] != NULL;
         i = (i + 1) & (REMOTE_SLOTS - 1))
        if (strcmp(r->slot[i]->id, id) == 0) {
            *out = r->slot[i];
            return 0;
        }
    if (r->count == STORE_REMOTE_CACHE_MAX) {
        /* Full: write everything out and start over. */
        if ((rv = remote_flush(t, e)) != 0)
            return rv;
        remote_clear(r);
        for (i = id_hash(id) & (REMOTE_SLOTS - 1); r->slot[i] != NULL;
             i = (i + 1) & (REMOTE_SLOTS - 1))
            ;
    }
    if ((en = malloc(sizeof *en)) == NULL)
        return im_errf(e, IM_ENOMEM, "out of memory");
    memset(en, 0, sizeof *en);
    snprintf(en->id, sizeof en->id, "%s", id);
    rv = store_incident_get(t->txn, t->s, id, &en->inc, &ee);
    if (rv == 0) {
        en->had_record = 1;
        idx_keys(&en->inc, en->okeys, en->osizes);
    } else if (rv == IM_ENOTFOUND) {
        memset(&en->inc, 0, sizeof en->inc);
    } else {
        free(en);
        return im_errf(e, rv, "%s", im_errmsg(&ee));
    }
    r->slot[i] = en;
    r->count++;
    *out = en;
    return 0;
}

int
store_remote_begin(struct store_txn *t, struct im_err *e)
{
    if (t->txn == NULL || t->remote != NULL)
        abort(); /* a bug: one run at a time, in an open transaction */
    if ((t->remote = calloc(1, sizeof *t->remote)) == NULL)
        return im_errf(e, IM_ENOMEM, "out of memory");
    return 0;
}

static void
remote_free(struct store_txn *t)
{
    if (t->remote == NULL)
        return;
    remote_clear(t->remote);
    free(t->remote);
    t->remote = NULL;
}

int
store_remote_end(struct store_txn *t, struct im_err *e)
{
    int rv;
    if (t->remote == NULL)
        abort(); /* a bug: no run is open */
    rv = remote_flush(t, e);
    remote_free(t);
    return rv;
}

/* Folds ev (already stored) into its incident's cached entry. A late
 * event (one that sorts before what the incident already folded), or the
 * first of an incident we hold no state of, marks the entry for one re-fold
 * of all its stored events when the run is written: re-folding at every
 * late event made a healed partition quadratic (each of a side's events
 * re-read the whole incident; tests/bench/repl.sh table 6). */
static int
remote_fold(struct store_txn *t, const Im__Event *ev, int *refused,
            struct im_err *e)
{
    struct remote_entry *en = NULL;
    struct im_err ee = {0};
    int rv;

    if ((rv = remote_entry_get(t, ev->incident, &en, e)) != 0)
        return rv;
    if (!en->refold && en->inc.id[0] != '\0' &&
        incident_event_after_last(&en->inc, ev)) {
        /* The usual case: the newest event of a known incident. */
        struct incident *before = &en->inc;
        if (t->s->derive != NULL && t->s->derive_before) {
            before = &t->remote->before;
            memcpy(before, &en->inc, sizeof *before);
        }
        *refused = incident_apply(&en->inc, ev, &ee) != 0;
        en->dirty = 1;
        /* Derived tables (the outbox) see each event with the incident
         * before and after it, as for a local append (before is after
         * when the hook does not compare them: a 13 KiB copy per event
         * saved in a catch-up). */
        if (t->s->derive != NULL)
            rv = t->s->derive(t->s->derive_arg, t, before, &en->inc, ev, e);
        return rv;
    }
    /* Re-folded when the run is written. The derive hook sees this event
     * now with the state unchanged (it records deliveries), and the last
     * such event again with the re-folded state then. */
    if (t->s->derive != NULL &&
        (rv = t->s->derive(t->s->derive_arg, t, &en->inc, &en->inc, ev, e)) != 0)
        return rv;
    en->refold = 1;
    en->dirty = 1;
    en->last_ev = ev;
    return 0;
}

int
store_append_remote(struct store_txn *t, const Im__Event *ev,
                    const uint8_t *bytes, size_t size,
                    const uint8_t hash[STORE_HASH_BYTES], int *refused,
                    struct im_err *e)
{
    struct store *s = t->s;
    static const uint8_t zero_hash[STORE_HASH_BYTES];
    struct store_head head;
    uint8_t ekey[EVENT_KEY], ikey[INC_EV_KEY_MAX];
    MDB_val k, v;
    int rv, own_run = 0;

    *refused = 0;
    if ((rv = store_head_get(t->txn, s, ev->origin, &head)) != 0)
        return im_errf(e, rv, "read chain head of %s", ev->origin);
    if (ev->seq != head.seq + 1)
        return im_errf(e, IM_EPROTO, "event %s/%llu does not follow head %llu",
                       ev->origin, (unsigned long long)ev->seq,
                       (unsigned long long)head.seq);
    if (ev->prev_hash.len != STORE_HASH_BYTES ||
        memcmp(ev->prev_hash.data, head.seq ? head.hash : zero_hash,
               STORE_HASH_BYTES) != 0)
        return im_errf(e, IM_EPROTO,
                       "event %s/%llu does not link to the stored chain",
                       ev->origin, (unsigned long long)ev->seq);
    if (strcmp(ev->origin, s->site) == 0)
        return im_errf(e, IM_EPROTO, "event %s/%llu claims to be ours",
                       ev->origin, (unsigned long long)ev->seq);

    event_key(ekey, ev->origin, ev->seq);
    k.mv_data = ekey;
    k.mv_size = EVENT_KEY;
    v.mv_data = (void *)bytes;
    v.mv_size = size;
    if ((rv = mdb_put(t->txn, s->events, &k, &v, MDB_NOOVERWRITE)) != 0)
        return from_mdb(s, rv, e, "append remote event");
    memcpy(head.hash, hash, STORE_HASH_BYTES);
    head.seq = ev->seq;
    head.hlc = ev->hlc;
    if ((rv = head_put(t->txn, s, ev->origin, &head)) != 0)
        return from_mdb(s, rv, e, "advance chain head");
    k.mv_data = ikey;
    k.mv_size = inc_ev_key(ikey, ev->incident, ev->hlc, ev->origin, ev->seq);
    v.mv_data = NULL;
    v.mv_size = 0;
    if ((rv = mdb_put(t->txn, s->inc_events, &k, &v, 0)) != 0)
        return from_mdb(s, rv, e, "index event");
    /* The alert index is derived from events alone: follow replicated
     * events exactly as local ones, in the same transaction. */
    if ((rv = alerts_index_event(t, ev, e)) != 0)
        return rv;

    if (t->remote == NULL) {
        if ((rv = store_remote_begin(t, e)) != 0)
            return rv;
        own_run = 1;
    }
    rv = remote_fold(t, ev, refused, e);
    if (own_run) {
        if (rv == 0)
            rv = store_remote_end(t, e);
        else
            remote_free(t);
    }
    return rv;
}

int
store_checkpoint_put(struct store_txn *t, const char *origin, uint64_t seq,
                     const uint8_t sig[KEY_SIG_BYTES], struct im_err *e)
{
    uint8_t kb[EVENT_KEY];
    MDB_val k = {EVENT_KEY, kb}, v = {KEY_SIG_BYTES, (void *)sig};
    int rv;

    event_key(kb, origin, seq);
    if ((rv = mdb_put(t->txn, t->s->checkpoints, &k, &v, 0)) != 0)
        return from_mdb(t->s, rv, e, "store checkpoint");
    return 0;
}

int
store_checkpoint_get(MDB_txn *txn, struct store *s, const char *origin,
                     uint64_t seq, uint8_t sig[KEY_SIG_BYTES])
{
    uint8_t kb[EVENT_KEY];
    MDB_val k = {EVENT_KEY, kb}, v;
    int rv;

    event_key(kb, origin, seq);
    if ((rv = mdb_get(txn, s->checkpoints, &k, &v)) != 0)
        return rv == MDB_NOTFOUND ? IM_ENOTFOUND : from_mdb(s, rv, NULL, "");
    if (v.mv_size != KEY_SIG_BYTES)
        return IM_ECORRUPT;
    memcpy(sig, v.mv_data, KEY_SIG_BYTES);
    return 0;
}

int
store_checkpoint_find(MDB_txn *txn, struct store *s, const char *origin,
                      uint64_t lo, uint64_t hi, int last, uint64_t *seq_out)
{
    uint8_t kb[EVENT_KEY], okey[ORIGIN_KEY];
    MDB_cursor *cur;
    MDB_val k = {EVENT_KEY, kb}, v;
    uint64_t seq;
    int rv;

    if (lo > hi)
        return IM_ENOTFOUND;
    if ((rv = mdb_cursor_open(txn, s->checkpoints, &cur)) != 0)
        return from_mdb(s, rv, NULL, "");
    origin_key(okey, origin);
    if (last) {
        /* The first key after (origin, hi), then one step back. */
        event_key(kb, origin, hi == UINT64_MAX ? hi : hi + 1);
        rv = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rv == 0)
            rv = mdb_cursor_get(cur, &k, &v, MDB_PREV);
        else if (rv == MDB_NOTFOUND)
            rv = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    } else {
        event_key(kb, origin, lo);
        rv = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    }
    mdb_cursor_close(cur);
    if (rv != 0)
        return IM_ENOTFOUND;
    if (k.mv_size != EVENT_KEY || memcmp(k.mv_data, okey, ORIGIN_KEY) != 0)
        return IM_ENOTFOUND;
    seq = get_be64((const uint8_t *)k.mv_data + ORIGIN_KEY);
    if (seq < lo || seq > hi)
        return IM_ENOTFOUND;
    *seq_out = seq;
    return 0;
}

int
store_vector(MDB_txn *txn, struct store *s, struct store_vv *out)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rv;

    out->count = 0;
    if ((rv = mdb_cursor_open(txn, s->heads, &cur)) != 0)
        return from_mdb(s, rv, NULL, "");
    for (rv = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rv == 0;
         rv = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        struct store_vv_entry *en;
        if (out->count == SITES_MAX || k.mv_size != ORIGIN_KEY) {
            mdb_cursor_close(cur);
            return IM_ECORRUPT;
        }
        en = &out->e[out->count];
        memcpy(en->origin, k.mv_data, ORIGIN_KEY);
        en->origin[ORIGIN_KEY] = '\0';
        if ((rv = store_head_get(txn, s, en->origin, &en->head)) != 0) {
            mdb_cursor_close(cur);
            return rv;
        }
        out->count++;
    }
    mdb_cursor_close(cur);
    return rv == MDB_NOTFOUND ? 0 : from_mdb(s, rv, NULL, "");
}

uint64_t
store_vv_seq(const struct store_vv *vv, const char *origin)
{
    for (size_t i = 0; i < vv->count; i++)
        if (strcmp(vv->e[i].origin, origin) == 0)
            return vv->e[i].head.seq;
    return 0;
}

int
store_events_visit(MDB_txn *txn, struct store *s, const char *origin,
                   uint64_t from, uint64_t to, store_event_fn fn, void *arg)
{
    uint8_t kb[EVENT_KEY], okey[ORIGIN_KEY];
    MDB_cursor *cur;
    MDB_val k = {EVENT_KEY, kb}, v;
    uint64_t want = from;
    int rv;

    if (from > to)
        return 0;
    if ((rv = mdb_cursor_open(txn, s->events, &cur)) != 0)
        return from_mdb(s, rv, NULL, "");
    origin_key(okey, origin);
    event_key(kb, origin, from);
    for (rv = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY); rv == 0 && want <= to;
         rv = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != EVENT_KEY || memcmp(k.mv_data, okey, ORIGIN_KEY) != 0 ||
            get_be64((const uint8_t *)k.mv_data + ORIGIN_KEY) != want) {
            rv = IM_ECORRUPT;
            break;
        }
        if ((rv = fn(arg, want, v.mv_data, v.mv_size)) != 0)
            break;
        want++;
    }
    mdb_cursor_close(cur);
    if (rv == MDB_NOTFOUND || (rv == 0 && want > to))
        return want > to ? 0 : IM_ECORRUPT;
    return rv;
}

/* ---- read side ---- */

int
store_read_begin(struct store *s, MDB_txn **txn, struct im_err *e)
{
    int rv = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
    return rv ? from_mdb(s, rv, e, "begin read") : 0;
}

void
store_read_end(MDB_txn *txn)
{
    mdb_txn_abort(txn);
}

static int
list_match_decoded(const struct store_list_query *q, const Im__Incident *inc)
{
    if (q->state != IM__STATE__STATE_NONE && inc->state != q->state)
        return 0;
    if (q->major_only && !inc->major)
        return 0;
    if (q->service != NULL && q->service[0] && strcmp(inc->service, q->service) != 0)
        return 0;
    if (!q->all && q->state == IM__STATE__STATE_NONE &&
        !incident_state_is_open(inc->state))
        return 0;
    return 1;
}

int
store_list(MDB_txn *txn, struct store *s, const struct store_list_query *q,
           store_list_fn fn, void *arg, uint64_t *matched, struct im_err *e)
{
    uint8_t prefix[IDX_KEY_MAX];
    size_t prefix_size = 0, tail; /* tail: bytes before opened[8] id */
    size_t site_size = q->site ? strlen(q->site) : 0;
    int need_decode = q->major_only, visiting = 1;
    MDB_cursor *cur;
    MDB_val k, v;
    int rv;

    *matched = 0;
    if (q->service != NULL && q->service[0]) {
        size_t n = strlen(q->service);
        if (n > SERVICE_MAX)
            return 0;
        prefix[prefix_size++] = 'V';
        memcpy(prefix + prefix_size, q->service, n);
        prefix_size += n;
        prefix[prefix_size++] = '\0';
        if (!q->all && q->state == IM__STATE__STATE_NONE)
            prefix[prefix_size++] = 0;
        tail = 1 + n + 1 + 1 + 1;
        need_decode |= q->state != IM__STATE__STATE_NONE;
    } else if (q->state != IM__STATE__STATE_NONE) {
        prefix[prefix_size++] = 'S';
        prefix[prefix_size++] = (uint8_t)q->state;
        tail = 3;
    } else {
        prefix[prefix_size++] = 'R';
        if (!q->all)
            prefix[prefix_size++] = 0;
        tail = 3;
    }
    if ((rv = mdb_cursor_open(txn, s->idx, &cur)) != 0)
        return from_mdb(s, rv, e, "cursor");
    k.mv_data = prefix;
    k.mv_size = prefix_size;
    for (rv = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rv == 0;
         rv = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const uint8_t *kb = k.mv_data;
        const char *id;
        size_t id_size;
        char idbuf[INCIDENT_ID_MAX + 1];
        Im__Incident *inc = NULL;

        if (k.mv_size < prefix_size || memcmp(kb, prefix, prefix_size) != 0)
            break;
        if (k.mv_size <= tail + 8 || k.mv_size - tail - 8 > INCIDENT_ID_MAX) {
            rv = im_errf(e, IM_ECORRUPT, "index key of %zu bytes", k.mv_size);
            goto out;
        }
        if (q->priority && kb[tail - 1] != q->priority)
            continue;
        id = (const char *)kb + tail + 8;
        id_size = k.mv_size - tail - 8;
        if (site_size && (id_size <= site_size ||
                          memcmp(id, q->site, site_size) != 0 ||
                          id[site_size] != '-'))
            continue;
        if (!need_decode && !visiting) {
            (*matched)++;
            continue;
        }
        memcpy(idbuf, id, id_size);
        idbuf[id_size] = '\0';
        MDB_val rk = {id_size, (void *)id}, rvv;
        if ((rv = mdb_get(txn, s->incidents, &rk, &rvv)) != 0) {
            rv = rv == MDB_NOTFOUND
                     ? im_errf(e, IM_ECORRUPT, "index names missing incident %s",
                               idbuf)
                     : from_mdb(s, rv, e, "read incident");
            goto out;
        }
        inc = im__incident__unpack(NULL, rvv.mv_size, rvv.mv_data);
        if (inc == NULL) {
            rv = im_errf(e, IM_ECORRUPT, "incident %s does not decode", idbuf);
            goto out;
        }
        if (list_match_decoded(q, inc)) {
            (*matched)++;
            if (visiting && fn(arg, inc) != 0)
                visiting = 0;
        }
        im__incident__free_unpacked(inc, NULL);
    }
    rv = (rv == MDB_NOTFOUND || rv == 0) ? 0 : from_mdb(s, rv, e, "list");
out:
    mdb_cursor_close(cur);
    return rv;
}

int
store_scan(MDB_txn *txn, struct store *s, store_list_fn fn, void *arg,
           struct im_err *e)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rv;

    if ((rv = mdb_cursor_open(txn, s->incidents, &cur)) != 0)
        return from_mdb(s, rv, e, "cursor");
    for (rv = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rv == 0;
         rv = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        Im__Incident *inc = im__incident__unpack(NULL, v.mv_size, v.mv_data);
        int stop;
        if (inc == NULL) {
            rv = im_errf(e, IM_ECORRUPT, "incident %.*s does not decode",
                         (int)k.mv_size, (const char *)k.mv_data);
            mdb_cursor_close(cur);
            return rv;
        }
        stop = fn(arg, inc);
        im__incident__free_unpacked(inc, NULL);
        if (stop)
            break;
    }
    mdb_cursor_close(cur);
    return (rv == 0 || rv == MDB_NOTFOUND) ? 0 : from_mdb(s, rv, e, "scan");
}

/* ---- offline check ---- */

struct check_ctx {
    struct store *s;
    MDB_txn *txn;
    FILE *out;
    uint64_t incidents, problems;
};

static void
problem(struct check_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
problem(struct check_ctx *c, const char *fmt, ...)
{
    va_list ap;
    c->problems++;
    if (c->problems > 100)
        return;
    fputs("  PROBLEM: ", c->out);
    va_start(ap, fmt);
    vfprintf(c->out, fmt, ap);
    va_end(ap);
    fputc('\n', c->out);
}

static int
check_chains(struct check_ctx *c, store_site_key_fn site_pk, void *arg)
{
    struct store *s = c->s;
    MDB_cursor *hc;
    MDB_val hk, hv;
    int rv;

    if ((rv = mdb_cursor_open(c->txn, s->heads, &hc)) != 0)
        return rv;
    for (rv = mdb_cursor_get(hc, &hk, &hv, MDB_FIRST); rv == 0;
         rv = mdb_cursor_get(hc, &hk, &hv, MDB_NEXT)) {
        char origin[ORIGIN_KEY + 1];
        struct store_head head;
        uint8_t hash[STORE_HASH_BYTES] = {0};
        uint64_t seq;

        memcpy(origin, hk.mv_data, ORIGIN_KEY);
        origin[ORIGIN_KEY] = '\0';
        if (store_head_get(c->txn, s, origin, &head) != 0) {
            problem(c, "origin %s: head record malformed", origin);
            continue;
        }
        for (seq = 1; seq <= head.seq; seq++) {
            uint8_t kb[EVENT_KEY];
            MDB_val k = {EVENT_KEY, kb}, v;
            Im__Event *ev;
            event_key(kb, origin, seq);
            if (mdb_get(c->txn, s->events, &k, &v) != 0) {
                problem(c, "origin %s: event %llu missing (head is %llu)",
                        origin, (unsigned long long)seq,
                        (unsigned long long)head.seq);
                break;
            }
            ev = event_decode(&v);
            if (ev == NULL) {
                problem(c, "origin %s: event %llu does not decode", origin,
                        (unsigned long long)seq);
                break;
            }
            if (ev->seq != seq || strcmp(ev->origin, origin) != 0 ||
                ev->prev_hash.len != STORE_HASH_BYTES ||
                memcmp(ev->prev_hash.data, hash, STORE_HASH_BYTES) != 0)
                problem(c, "origin %s: event %llu does not link to its "
                           "predecessor", origin, (unsigned long long)seq);
            im__event__free_unpacked(ev, NULL);
            crypto_generichash(hash, sizeof hash, v.mv_data, v.mv_size, NULL, 0);
        }
        if (seq > head.seq && memcmp(hash, head.hash, STORE_HASH_BYTES) != 0)
            problem(c, "origin %s: head hash does not match event %llu", origin,
                    (unsigned long long)head.seq);
        /* Nothing may follow the head. */
        {
            uint8_t kb[EVENT_KEY];
            MDB_val k = {EVENT_KEY, kb}, v;
            event_key(kb, origin, head.seq + 1);
            if (mdb_get(c->txn, s->events, &k, &v) == 0)
                problem(c, "origin %s: events beyond head %llu", origin,
                        (unsigned long long)head.seq);
        }
        const uint8_t *pk = site_pk ? site_pk(arg, origin) : NULL;
        if (pk != NULL && head.seq > 0) {
            uint8_t kb[EVENT_KEY], msg[STORE_CKPT_MSG_BYTES];
            MDB_val k = {EVENT_KEY, kb}, v;
            event_key(kb, origin, head.seq);
            checkpoint_message(msg, origin, &head);
            if (mdb_get(c->txn, s->checkpoints, &k, &v) != 0 ||
                v.mv_size != KEY_SIG_BYTES)
                problem(c, "origin %s: no checkpoint for head %llu", origin,
                        (unsigned long long)head.seq);
            else if (key_verify(pk, KEY_CTX_CHECKPOINT, msg, sizeof msg,
                                v.mv_data) != 0)
                problem(c, "origin %s: checkpoint signature at %llu is invalid",
                        origin, (unsigned long long)head.seq);
        }
        fprintf(c->out, "origin %s: %llu events, chain %s\n", origin,
                (unsigned long long)head.seq,
                c->problems ? "checked (see problems)" : "verified");
    }
    mdb_cursor_close(hc);
    return rv == MDB_NOTFOUND ? 0 : rv;
}

static int
check_incident(void *arg, const Im__Incident *rec)
{
    struct check_ctx *c = arg;
    struct incident *stored, *folded;
    Im__Event **events = NULL;
    struct im_err e = {0};
    size_t n = 0;

    c->incidents++;
    stored = calloc(1, sizeof *stored);
    folded = calloc(1, sizeof *folded);
    if (stored == NULL || folded == NULL) {
        problem(c, "out of memory");
        goto out;
    }
    if (incident_from_pb(stored, rec) != 0) {
        problem(c, "incident %s: record out of bounds", rec->id);
        goto out;
    }
    if (store_incident_events(c->txn, c->s, rec->id, &events, &n, &e) != 0) {
        problem(c, "incident %s: %s", rec->id, im_errmsg(&e));
        goto out;
    }
    if (incident_fold(folded, (const Im__Event **)events, n, NULL) != 0)
        problem(c, "incident %s: its events do not fold", rec->id);
    else if (memcmp(stored, folded, sizeof *stored) != 0)
        problem(c, "incident %s: stored state differs from a fold of its %zu "
                   "events", rec->id, n);
    else {
        uint8_t keys[3][IDX_KEY_MAX];
        size_t sizes[3];
        idx_keys(stored, keys, sizes);
        for (int i = 0; i < 3; i++) {
            MDB_val k = {sizes[i], keys[i]}, v;
            if (mdb_get(c->txn, c->s->idx, &k, &v) != 0)
                problem(c, "incident %s: index entry %c missing", rec->id,
                        keys[i][0]);
        }
    }
out:
    store_events_free(events, n);
    free(stored);
    free(folded);
    return 0;
}

int
store_check(struct store *s, store_site_key_fn site_pk, void *arg, FILE *out,
            struct im_err *e)
{
    struct check_ctx c = {.s = s, .out = out};
    MDB_stat st;
    int rv;

    if ((rv = store_read_begin(s, &c.txn, e)) != 0)
        return rv;
    if ((rv = check_chains(&c, site_pk, arg)) != 0) {
        store_read_end(c.txn);
        return from_mdb(s, rv, e, "check chains");
    }
    if ((rv = store_scan(c.txn, s, check_incident, &c, e)) != 0) {
        store_read_end(c.txn);
        return rv;
    }
    if (mdb_stat(c.txn, s->idx, &st) == 0 && st.ms_entries != 3 * c.incidents)
        problem(&c, "index holds %zu entries for %llu incidents (expected %llu)",
                st.ms_entries, (unsigned long long)c.incidents,
                (unsigned long long)(3 * c.incidents));
    store_read_end(c.txn);
    fprintf(out, "incidents: %llu, each equal to a fold of its events%s\n",
            (unsigned long long)c.incidents, c.problems ? " (see problems)" : "");
    if (c.problems)
        return im_errf(e, IM_ECORRUPT, "%llu problems found",
                       (unsigned long long)c.problems);
    return 0;
}
