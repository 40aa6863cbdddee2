/* repl: the site-to-site replication protocol (DESIGN.md §4), without I/O.
 *
 * Every site holds every event of every site. Peers compare version vectors
 * {origin -> highest contiguous seq}; whoever has more sends the missing
 * events, oldest first, as Ranges: contiguous events of one origin, exactly
 * as the origin stored them, ending at one of the origin's checkpoints (its
 * Ed25519 signature over the chain head at that seq). A receiver verifies a
 * range with hashing (each event's prev_hash is the BLAKE2b of the one
 * before) and one signature, so a relay cannot forge, alter, reorder or
 * splice what an origin wrote: it can only withhold it.
 *
 * The pieces, composed by node/peer.c (NNG) and by the simulation
 * (tests/unit/test_sim.c, a fake network):
 *   repl_ranges_build   what a vector lacks, from a read transaction
 *   repl_range_verify   a received range, pure (no store)
 *   repl_range_apply    a verified range, in the writer's transaction
 * All functions are thread-compatible; none blocks. */
#ifndef IM_REPL_H
#define IM_REPL_H

#include <stddef.h>
#include <stdint.h>

#include "bounds.h"
#include "err.h"
#include "hlc.h"
#include "im.pb-c.h"
#include "keys.h"
#include "store.h"

/* Events in one range: bounds a range's verification and decoding work. */
#define REPL_RANGE_EVENTS_MAX 4096

/* Bytes of events one message aims for (REPL_BATCH_BYTES_DEFAULT; a sync
 * may ask for up to REPL_BATCH_BYTES_MAX): big enough to amortise a message
 * and a write transaction (DESIGN.md §8: NNG moves ~370 MB/s in 16 KiB
 * messages), small enough to keep a push's latency low.
 *
 * A range ends on a checkpoint: the last within its budget, else the first
 * after it. Checkpoints are never far apart: an origin signs at least every
 * STORE_CKPT_EVERY events and STORE_CKPT_BYTES; a relay stores the one that
 * ends each range it receives, and a range overruns its budget by at most
 * one checkpoint gap of its sender, so by induction no stored gap exceeds
 * REPL_BATCH_BYTES_MAX + EVENT_SIZE_MAX bytes or REPL_RANGE_EVENTS_MAX
 * events, and no message exceeds REPL_MSG_SIZE_MAX. */
#define REPL_BATCH_BYTES_DEFAULT (1024 * 1024)
#define REPL_BATCH_BYTES_MAX (4 * 1024 * 1024)
_Static_assert(STORE_CKPT_EVERY <= REPL_RANGE_EVENTS_MAX,
               "origin checkpoints are denser than a range");
_Static_assert(STORE_CKPT_BYTES <= REPL_BATCH_BYTES_MAX,
               "origin checkpoints are denser than a batch");

/* Ranges and events in one message. A message holds up to one range per
 * origin, and an origin whose share of the message has room for more than
 * REPL_RANGE_EVENTS_MAX events continues with further ranges while the
 * message stays within REPL_MSG_EVENTS_MAX: a catch-up then moves
 * REPL_BATCH_BYTES_MAX per round trip and per write transaction, not one
 * range's worth (tests/bench/repl.sh). The receiver refuses a message of
 * more than REPL_MSG_RANGES_MAX ranges. */
#define REPL_MSG_RANGES_MAX SITES_MAX
#define REPL_MSG_EVENTS_MAX (4 * REPL_RANGE_EVENTS_MAX)

#define REPL_MSG_SIZE_MAX                                                   \
    (2 * (REPL_BATCH_BYTES_MAX + EVENT_SIZE_MAX) +                           \
     REPL_MSG_EVENTS_MAX * 16 + SITES_MAX * 512 + 65536)

/* A received event whose HLC is further ahead of our wall clock than this
 * is stored and folded but not observed by our clock (DESIGN.md §3). */
#define REPL_HLC_AHEAD_MS_MAX (60 * 1000)

/* Whose key signs an origin's checkpoints: NULL if the origin is not a
 * configured site (its events are refused). */
typedef const uint8_t *(*repl_site_key_fn)(void *arg, const char *origin);

/* ---- version vectors ---- */

/* vv as Head messages: heads[i] point into vv; heads_out holds SITES_MAX. */
void repl_vv_to_pb(const struct store_vv *vv, Im__Head heads[SITES_MAX],
                   Im__Head *ptrs[SITES_MAX], size_t *count_out);

/* Heads from the wire into vv. IM_EPROTO for a malformed or repeated origin
 * or more than SITES_MAX entries. */
int repl_vv_from_pb(struct store_vv *vv, Im__Head **heads, size_t count,
                    struct im_err *e);

/* Events `ours` holds beyond `theirs`, summed over origins. */
uint64_t repl_vv_lacking(const struct store_vv *ours,
                         const struct store_vv *theirs);

/* ---- building ---- */

/* Ranges built for one message. Event bytes and strings point into the
 * read transaction's memory: pack the message before the transaction ends,
 * then repl_batch_free. */
struct repl_batch {
    Im__Range *ranges;
    Im__Range **range_ptrs;
    Im__Checkpoint *ckpts;
    ProtobufCBinaryData *events;   /* all ranges' events, one array */
    uint8_t (*hashes)[STORE_HASH_BYTES];
    uint8_t (*sigs)[KEY_SIG_BYTES];
    char (*origins)[SITE_CODE_MAX + 1];
    size_t ranges_count;
    size_t events_count, events_cap;
    size_t bytes;                  /* event bytes in all ranges */
    int more;                      /* stopped at max_bytes with more to send */
};

/* Fills b with what `ours` holds beyond `theirs`, oldest first per origin,
 * origins in turn, about max_bytes of events in all. Origins in skip (may
 * be NULL) are left out (the peer's own chain: it is its origin). */
int repl_ranges_build(MDB_txn *txn, struct store *s,
                      const struct store_vv *ours,
                      const struct store_vv *theirs, const char *skip,
                      size_t max_bytes, struct repl_batch *b,
                      struct im_err *e);
void repl_batch_free(struct repl_batch *b);

/* ---- receiving ---- */

/* A range that verified: decoded events (protobuf-c allocations), their
 * hashes, and the checkpoint to record. */
struct repl_verified {
    char origin[SITE_CODE_MAX + 1];
    uint64_t first_seq;
    size_t count;
    Im__Event **events;
    const uint8_t **bytes;         /* borrowed from the received message */
    size_t *sizes;
    uint8_t (*hashes)[STORE_HASH_BYTES];
    uint8_t sig[KEY_SIG_BYTES];
};

/* Verifies r: its origin is a configured site other than self, 1 to
 * REPL_RANGE_EVENTS_MAX events each within EVENT_SIZE_MAX that decode, name
 * that origin and consecutive seqs, link by hash, and end at a checkpoint
 * whose signature by the origin's key verifies. The body is not judged
 * here: the fold decides (a signed event the fold refuses is still stored,
 * marked refused). On success out holds the range (free it with
 * repl_verified_free); bytes stay borrowed from r. On failure nothing is
 * kept, e says which check failed and *reason_out is its REPL_R_* reason. */
int repl_range_verify(const Im__Range *r, const char *self,
                      repl_site_key_fn site_key, void *arg,
                      struct repl_verified *out, int *reason_out,
                      struct im_err *e);
void repl_verified_free(struct repl_verified *v);

/* Stores what of v extends the local chain of its origin, in t: events at
 * or below the local head are skipped (already held; the one at the head
 * must hash the same, or IM_ECORRUPT: the origin forked its log), a range
 * that starts beyond head + 1 is a gap (IM_EPROTO; the peer will be asked
 * for what is missing). The checkpoint is recorded; clk observes every
 * new event's HLC. *applied counts new events. */
int repl_range_apply(struct store_txn *t, const struct repl_verified *v,
                     struct hlc *clk, uint64_t wall_ms, uint64_t *applied,
                     struct im_err *e);

/* Applies n verified ranges in t: codes[i] is 0 or that range's refusal
 * (a gap or a fork: refused before it wrote anything, the others go on).
 * Any other failure is the transaction's (returned; abort t). */
int repl_ranges_apply(struct store_txn *t, const struct repl_verified *v,
                      size_t n, struct hlc *clk, uint64_t wall_ms, int *codes,
                      uint64_t *applied, struct im_err *e);

/* ---- requests and replies (one link, either side) ---- */

/* Pull sooner than this only when told there is more, or on connect. */
#define REPL_SYNC_INTERVAL_MS 1000

/* Rejection reasons counted per link and per node. */
#define REPL_REASONS(X)                                                      \
    X(REPL_R_MALFORMED, "malformed")                                          \
    X(REPL_R_UNKNOWN_ORIGIN, "unknown-origin")                                \
    X(REPL_R_CHAIN, "chain")                                                  \
    X(REPL_R_SIGNATURE, "signature")                                          \
    X(REPL_R_TOO_BIG, "too-big")                                              \
    X(REPL_R_GAP, "gap")                                                      \
    X(REPL_R_FORK, "fork")                                                    \
    X(REPL_R_STORE, "store")

enum repl_reason {
#define REPL_R_ENUM_(name, text) name,
    REPL_REASONS(REPL_R_ENUM_)
#undef REPL_R_ENUM_
    REPL_R_COUNT
};
const char *repl_reason_name(int reason);

struct repl_counters {
    uint64_t events_in;        /* events received that we stored */
    uint64_t events_out;       /* events we sent that the peer stored */
    uint64_t ranges_rejected[REPL_R_COUNT];
};

/* What replication needs of a site. apply stores verified ranges durably in
 * one write transaction (the node's committer, or the simulation's store
 * directly) and may block; it returns 0 or a transaction failure, and
 * per-range outcomes in codes[] (0, or the refusal of that range). It calls
 * queued(qarg) exactly once (if queued is not NULL): as soon as the ranges
 * are queued for the store ahead of anything queued later, or it failed to
 * queue them, before it waits for them to be durable. */
struct repl_env {
    struct store *store;
    const char *self;
    repl_site_key_fn site_key;
    void *key_arg;
    int (*apply)(void *arg, struct repl_verified *v, size_t n, int *codes,
                 uint64_t *applied, void (*queued)(void *qarg), void *qarg,
                 struct im_err *e);
    void *apply_arg;
    /* Optional (NULL: requests are served as they come; the simulation
     * orders its deliveries itself with repl_order): a link's requests
     * in stream order. turn_wait blocks until request (stream, seq) of
     * peer may queue its ranges (every earlier one of the stream has), or
     * REPL_ORDER_WAIT_MS passed; turn_done lets the next one go. repl_serve
     * calls both exactly once for every request of a stream. */
    void (*turn_wait)(void *arg, const char *peer, uint64_t stream,
                      uint64_t seq);
    void (*turn_done)(void *arg, const char *peer, uint64_t stream,
                      uint64_t seq);
    void *turn_arg;
    /* Optional (NULL: never): 1 if our own link to peer is up, and so
     * pushes it whatever it lacks of ours. A sync from that peer then gets
     * our vector but no ranges: they would repeat our pushes, the receiver
     * would verify every event twice (a catch-up moved each event about
     * twice before), and its link would wait for their commit. A sync
     * carries ranges when our link to the peer is down (only it can dial,
     * or ours has not connected yet). */
    int (*pushing)(void *arg, const char *peer);
    void *pushing_arg;
};

/* Server side: decodes a ReplRequest from peer_site (the identity the
 * secure channel authenticated), verifies and applies its ranges, and
 * answers with our vector and, for a sync, what the peer lacks. On 0,
 * *reply (malloc'd) is the packed ReplReply; a refused request still gets
 * a reply (code != 0). */
int repl_serve(struct repl_env *env, const char *peer_site,
               const uint8_t *req, size_t req_size, uint64_t now_ms,
               struct repl_counters *c, uint8_t **reply, size_t *reply_size,
               struct im_err *e);

/* ---- pipelining ---- */

/* Requests one link may have in flight. Each push waits for the peer's
 * commit: with one at a time a new event waited for the previous push's
 * commit before its own, and a catch-up's build, verify and apply took
 * turns (tests/bench/repl.sh tables 4 and 5). The receiver applies a
 * link's requests in the order they were sent (repl_order). */
#define REPL_PIPELINE_MAX 4

/* A request waits at most this long for the earlier requests of its
 * stream (one was lost with its session, say) before it is served out of
 * order: its ranges then apply if they extend the chain, else they are
 * refused as a gap and the sender syncs. */
#define REPL_ORDER_WAIT_MS 1000

/* The receiving side's order of one link's requests: the stream it
 * follows and the seq whose turn it is. Zeroed: none yet. */
struct repl_order {
    uint64_t stream;
    uint64_t next;
};

/* 1 if request (stream, seq) may go now: it is unordered (stream 0), the
 * next of the current stream (or an earlier one: late, it goes at once),
 * or the first of a new stream (its sender began a new session). 0: an
 * earlier request of its stream has not gone yet. */
int repl_order_ready(const struct repl_order *o, uint64_t stream,
                     uint64_t seq);

/* Request (stream, seq) went: the next of its stream may go. A request of
 * another stream than the current one makes its stream current. */
void repl_order_done(struct repl_order *o, uint64_t stream, uint64_t seq);

/* One request of a link in flight. */
struct repl_inflight {
    uint64_t seq;               /* its stream_seq */
    int push;                   /* 1: a push, 0: a sync */
    uint64_t newest_hlc;        /* push: the newest HLC it carries */
};

/* Client side of one link: our view of the peer. */
struct repl_link {
    char peer[SITE_CODE_MAX + 1];
    struct store_vv theirs;     /* the highest of the replies' vectors */
    int theirs_known;
    /* What pushes in flight carry, per origin (the highest seq): the next
     * push starts after it, not after theirs. Forgotten when a reply
     * reports a refusal (the peer then syncs first). */
    struct store_vv sent;
    uint64_t next_sync_ms;
    uint64_t lag_ms;            /* ack time - newest HLC of the last push */
    uint64_t lag_samples;       /* how many times lag_ms was measured */
    uint64_t stream;            /* this session's stream; 0: not begun */
    uint64_t stream_seq;        /* of the last request built */
    struct repl_inflight inflight[REPL_PIPELINE_MAX];
    size_t inflight_count;
    unsigned pipeline;          /* requests in flight at most (0:
                                 * REPL_PIPELINE_MAX) */
    uint32_t batch_bytes;       /* max_bytes of pushes and syncs (0: see
                                 * catching_up) */
    /* The last push or sync left more to send: a backlog (a site that was
     * down, a healed partition). With batch_bytes 0, the link then moves
     * REPL_BATCH_BYTES_MAX per message instead of the default, amortising
     * a round trip and a write transaction over four times the events;
     * steady pushes stay small and quick. */
    int catching_up;
    struct repl_counters counters;
    char last_error[IM_ERRMSG_MAX];
};

void repl_link_init(struct repl_link *l, const char *peer);

/* Forget what we knew of the peer and every request in flight (a new
 * session, an error): the next request is a sync, on a new stream. */
void repl_link_reset(struct repl_link *l);

/* The next request on this link, while fewer than its pipeline are in
 * flight: a push of what the peer lacks beyond what it holds and what is
 * already on its way, else a sync when due (one at a time) or when we know
 * nothing of the peer (then nothing else until its reply). 0 and *req NULL
 * when there is nothing to do now. A request built is in flight until its
 * reply (repl_link_reply) or a reset. */
int repl_link_request(struct repl_env *env, struct repl_link *l,
                      uint64_t now_ms, uint8_t **req, size_t *req_size,
                      struct im_err *e);

/* Handles a reply to one of the link's requests in flight (replies may
 * come in any order). IM_EPROTO for a reply that does not decode or
 * answers no request in flight (nothing changes then but a count). */
int repl_link_reply(struct repl_env *env, struct repl_link *l,
                    const uint8_t *reply, size_t reply_size, uint64_t now_ms,
                    struct im_err *e);

/* Verifies and applies a message's ranges through env->apply; counts
 * rejections in c; *first_error keeps the first problem. */
int repl_ranges_receive(struct repl_env *env, Im__Range **ranges, size_t n,
                        struct repl_counters *c, uint64_t *applied,
                        struct im_err *first_error);

#endif
