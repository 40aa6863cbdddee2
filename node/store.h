/* store: the node's LMDB store.
 *
 * Holds, in one LMDB environment (DESIGN.md §3):
 *   events      (origin, seq) -> encoded Event, per-origin gap-free and
 *               hash-chained: prev_hash = BLAKE2b-256 of the previous
 *               event's stored bytes
 *   heads       origin -> (seq, hash, hlc) of the origin's last event
 *   checkpoints (origin, seq) -> Ed25519 signature of the origin over its
 *               chain head at that seq, one per commit (§4)
 *   inc_events  (incident, hlc, origin, seq) -> "": the fold order
 *   incidents   id -> encoded Incident (materialised state, no timeline)
 *   idx         secondary indexes for listing (rank, state, service)
 *   meta        schema version, this site's incident counter
 *   alerts      alert keys -> incidents, derived from alert events
 *               (node/alerts.c)
 *   alert_pending  occurrences acknowledged but not yet summarised in an
 *               event (local; node/alerts.c)
 *   outbox      notifications waiting to be sent, derived from events
 *               through the derive hook (node/notify.c)
 *
 * Writes go through one write transaction at a time (the committer's
 * thread); reads use their own read-only transactions from any thread.
 * Sync is LMDB's default (fsync on commit): no MDB_NOSYNC, no MDB_WRITEMAP,
 * which would turn a full disk into SIGBUS. */
#ifndef IM_STORE_H
#define IM_STORE_H

#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>

#include "bounds.h"
#include "err.h"
#include "hlc.h"
#include "im.pb-c.h"
#include "incident.h"
#include "keys.h"

#define STORE_HASH_BYTES 32
#define STORE_SCHEMA_VERSION 1

struct store_txn;

/* Called inside the write transaction after each event is stored, with
 * the incident before (id "" for an opening) and after: node modules
 * derive their tables from events here (the notification outbox). Whatever
 * stores events (local appends, and replication for events from other
 * sites) calls it, so that derived tables follow the log. A non-zero
 * return fails the transaction. */
typedef int (*store_derive_fn)(void *arg, struct store_txn *t,
                               const struct incident *before,
                               const struct incident *after,
                               const Im__Event *ev, struct im_err *e);

/* The owner gate (node/coordlink.c): may this site act as the owner of
 * inc now? Called for every local owner-only event on an incident this
 * site owns; 0 lets it through, a refusal (IM_ENOLEASE) with e saying why
 * writes nothing. */
typedef int (*store_owner_gate_fn)(void *arg, const struct incident *inc,
                                   struct im_err *e);

struct store {
    MDB_env *env;
    MDB_dbi events, heads, checkpoints, inc_events, incidents, idx, meta;
    MDB_dbi alerts, alert_pending, outbox;
    store_derive_fn derive;         /* NULL: none; set before writes start */
    void *derive_arg;
    /* 1 if derive compares the incident before and after an event; 0 if
     * it reads only the event and `after` (replication may then pass
     * after as before, saving a copy per event). */
    int derive_before;
    store_owner_gate_fn owner_gate; /* NULL: none; set before writes start */
    void *owner_gate_arg;
    char site[SITE_CODE_MAX + 1];
    char dir[PATH_MAX_IM + 1];
    uint64_t map_size;
};

struct store_head {
    uint64_t seq;                   /* 0 = no events from this origin */
    uint8_t hash[STORE_HASH_BYTES];
    hlc_t hlc;
};

/* Opens (creating if needed) the store in dir for site. */
int store_open(struct store *s, const char *dir, const char *site,
               uint64_t map_size, struct im_err *e);
void store_close(struct store *s);

/* ---- write side: one transaction at a time ---- */

/* This site's chain is also checkpointed every STORE_CKPT_EVERY events or
 * STORE_CKPT_BYTES of events inside one commit, so that checkpoints are
 * never far apart and a replication range can always end on one close to
 * where its size budget ran out (node/repl.h). */
#define STORE_CKPT_EVERY 1024
#define STORE_CKPT_BYTES (1024 * 1024)
#define STORE_CKPT_MID_MAX                                                  \
    (COMMIT_BATCH_OPS_MAX * EVENT_SIZE_MAX / STORE_CKPT_BYTES +              \
     COMMIT_BATCH_OPS_MAX / STORE_CKPT_EVERY + 1)
#define STORE_CKPT_MSG_BYTES (SITE_CODE_MAX + 8 + STORE_HASH_BYTES)

struct store_ckpt_mid {
    uint64_t seq;
    uint8_t hash[STORE_HASH_BYTES];
};

struct store_txn {
    struct store *s;
    MDB_txn *txn;
    struct store_ckpt_mid mid[STORE_CKPT_MID_MAX];
    int mid_count;
    uint64_t mid_events, mid_bytes;  /* since the last checkpoint */
    /* Origins appended to in this transaction, for one checkpoint each. */
    char appended[SITES_MAX][SITE_CODE_MAX + 1];
    int appended_count;
    /* Backs the prev_hash of the event last appended. */
    uint8_t prev_hash[STORE_HASH_BYTES];
    /* Open between store_remote_begin and store_remote_end: NULL else. */
    struct store_remote *remote;
};

int store_write_begin(struct store *s, struct store_txn *t, struct im_err *e);

/* Signs a checkpoint of this site's chain head (if it advanced) and commits.
 * IM_ENOSPC for a full disk, IM_EFULL for a full map; on any error nothing
 * of the transaction is durable and t is finished. */
int store_commit(struct store_txn *t, const struct im_key *site_key,
                 struct im_err *e);
void store_abort(struct store_txn *t);

/* Reserves the next incident id of this site ("AMS-42"). */
int store_next_id(struct store_txn *t, char id[INCIDENT_ID_MAX + 1],
                  struct im_err *e);

/* Appends a local event. ev->incident, actor, owner_token and body are the
 * caller's; origin, seq, prev_hash and hlc are filled here (hlc from clk at
 * wall_ms). The event is first applied to the incident's current state: if
 * the fold would refuse it, nothing is written and the refusal is returned
 * (IM_ESTATE, IM_ESTALE, ...) with its reason. On success *inc holds the
 * incident after the event; ev's filled fields point into t and the store,
 * valid until the next append on t or its end. */
int store_append_local(struct store_txn *t, Im__Event *ev, struct hlc *clk,
                       uint64_t wall_ms, struct incident *inc,
                       struct im_err *e);

/* Reads this site's head inside t (for seeding the HLC after a restart). */
int store_head_get(MDB_txn *txn, struct store *s, const char *origin,
                   struct store_head *out);

/* Appends an event received from another site (replication). The caller
 * has decoded ev from bytes (exactly as its origin stored them), checked its
 * body and origin, hashed bytes into hash, and verified the origin's
 * signature over a checkpoint at or after it. ev must extend the origin's
 * chain: seq == head + 1 and prev_hash == the head's hash, else IM_EPROTO
 * and nothing is written. The event is stored even if the fold refuses it
 * (kept, shown as refused); *refused is set then. The incident is updated
 * by the same fold, incrementally, or for a late event (or one of an
 * incident not yet opened here) by one re-fold of all its events when the
 * run ends (store_remote_end); such an event's *refused stays 0: the
 * timeline shows its fate. */
int store_append_remote(struct store_txn *t, const Im__Event *ev,
                        const uint8_t *bytes, size_t size,
                        const uint8_t hash[STORE_HASH_BYTES], int *refused,
                        struct im_err *e);

/* A run of remote appends in one transaction (one replication message)
 * shares a cache of the incidents it touches, so that each incident record
 * is decoded once and written once per run rather than once per event: a
 * catch-up spent most of its writer time decoding, copying and re-encoding
 * the same records (tests/bench/repl.sh). Between store_remote_begin and
 * store_remote_end only store_append_remote, store_checkpoint_put and
 * store_head_get may use t: the incidents table and its indexes are stale
 * until store_remote_end writes them. Without an open run,
 * store_append_remote writes its incident at once, as before. At most
 * STORE_REMOTE_CACHE_MAX incidents are held (about 13 KiB each); a run that
 * touches more writes them out and starts over. On any error abort t (which
 * frees the run); store_commit requires the run to be ended. */
#define STORE_REMOTE_CACHE_MAX 1024
int store_remote_begin(struct store_txn *t, struct im_err *e);
int store_remote_end(struct store_txn *t, struct im_err *e);

/* Records a verified checkpoint signature of origin at seq. */
int store_checkpoint_put(struct store_txn *t, const char *origin, uint64_t seq,
                         const uint8_t sig[KEY_SIG_BYTES], struct im_err *e);

/* The message an origin signs for its chain head: origin[8] seq[8] hash[32]. */
void store_checkpoint_message(uint8_t out[STORE_CKPT_MSG_BYTES],
                              const char *origin, uint64_t seq,
                              const uint8_t hash[STORE_HASH_BYTES]);

/* The signature of origin's checkpoint at seq: IM_ENOTFOUND if none. */
int store_checkpoint_get(MDB_txn *txn, struct store *s, const char *origin,
                         uint64_t seq, uint8_t sig[KEY_SIG_BYTES]);

/* The highest (last != 0) or lowest seq in [lo, hi] with a checkpoint of
 * origin: IM_ENOTFOUND if none. */
int store_checkpoint_find(MDB_txn *txn, struct store *s, const char *origin,
                          uint64_t lo, uint64_t hi, int last,
                          uint64_t *seq_out);

/* The version vector: every origin this store holds events of, with its
 * head. At most SITES_MAX entries (IM_ECORRUPT beyond). */
struct store_vv_entry {
    char origin[SITE_CODE_MAX + 1];
    struct store_head head;
};
struct store_vv {
    struct store_vv_entry e[SITES_MAX];
    size_t count;
};
int store_vector(MDB_txn *txn, struct store *s, struct store_vv *out);

/* The head seq of origin in vv; 0 if absent. */
uint64_t store_vv_seq(const struct store_vv *vv, const char *origin);

/* Visits origin's events from..to (inclusive) in seq order, as stored;
 * bytes are LMDB's, valid until txn ends. fn returns non-zero to stop
 * (returned as is). IM_ECORRUPT for a gap. */
typedef int (*store_event_fn)(void *arg, uint64_t seq, const uint8_t *bytes,
                              size_t size);
int store_events_visit(MDB_txn *txn, struct store *s, const char *origin,
                       uint64_t from, uint64_t to, store_event_fn fn,
                       void *arg);

/* Translates an LMDB (or errno) code into an IM_E* code with context:
 * MDB_NOTFOUND -> IM_ENOTFOUND, MDB_MAP_FULL -> IM_EFULL ("raise
 * map_size"), ENOSPC -> IM_ENOSPC, ... For modules that keep tables in the
 * store (node/alerts.c, node/notify.c). */
int store_mdb_error(struct store *s, int rv, struct im_err *e, const char *what);

/* ---- read side ---- */

int store_read_begin(struct store *s, MDB_txn **txn, struct im_err *e);
void store_read_end(MDB_txn *txn);

/* The materialised incident. IM_ENOTFOUND ("no incident AMS-99"). */
int store_incident_get(MDB_txn *txn, struct store *s, const char *id,
                       struct incident *out, struct im_err *e);

/* All events of an incident, decoded, in fold order. *events_out is an
 * array of *count_out pointers; free with store_events_free. */
int store_incident_events(MDB_txn *txn, struct store *s, const char *id,
                          Im__Event ***events_out, size_t *count_out,
                          struct im_err *e);
void store_events_free(Im__Event **events, size_t count);

/* Visits incidents for a list query in rank order (open before closed,
 * priority, then oldest first); fn returns non-zero to stop. Summaries are
 * decoded records (no timeline). matched counts every match. */
struct store_list_query {
    Im__State state;        /* STATE_NONE: any (subject to all) */
    int priority;           /* 0: any */
    const char *service;    /* NULL or "": any */
    int major_only;
    int all;                /* include resolved, closed, cancelled */
    const char *site;       /* NULL or "": any */
};
typedef int (*store_list_fn)(void *arg, const Im__Incident *inc);
int store_list(MDB_txn *txn, struct store *s, const struct store_list_query *q,
               store_list_fn fn, void *arg, uint64_t *matched,
               struct im_err *e);

/* Visits every incident (decoded record). */
int store_scan(MDB_txn *txn, struct store *s, store_list_fn fn, void *arg,
               struct im_err *e);

/* The event at (origin, seq), decoded. IM_ENOTFOUND if absent. */
int store_event_get(MDB_txn *txn, struct store *s, const char *origin,
                    uint64_t seq, Im__Event **out, struct im_err *e);

/* Offline consistency check (imnode check): every origin's chain is
 * gap-free and its hashes link; the latest checkpoint of each origin whose
 * key is known verifies; every incident's stored state equals a fresh fold
 * of its events; indexes match. Prints findings to out; returns 0 if all
 * hold, IM_ECORRUPT otherwise. site_pk(origin) may return NULL (unknown). */
typedef const uint8_t *(*store_site_key_fn)(void *arg, const char *origin);
int store_check(struct store *s, store_site_key_fn site_pk, void *arg,
                FILE *out, struct im_err *e);

#endif
