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

/* Events in one range. Any window this long of any origin's chain holds a
 * checkpoint (STORE_CKPT_EVERY at the origin; a relay ends every range it
 * stores on a checkpoint it verified), so a range can always end on one. */
#define REPL_RANGE_EVENTS_MAX 4096
_Static_assert(STORE_CKPT_EVERY <= REPL_RANGE_EVENTS_MAX,
               "origin checkpoints are denser than a range");

/* Bytes of events one message aims for: big enough to amortise a message
 * and a write transaction (DESIGN.md §8: NNG moves ~370 MB/s in 16 KiB
 * messages), small enough to keep a push's latency low. A range may exceed
 * it to reach a checkpoint, never REPL_RANGE_EVENTS_MAX events. */
#define REPL_BATCH_BYTES_DEFAULT (1024 * 1024)
#define REPL_BATCH_BYTES_MAX (8 * 1024 * 1024)

/* One replication message: the byte target, plus one range that ran past
 * it to a checkpoint, plus framing. */
#define REPL_MSG_SIZE_MAX                                                   \
    (REPL_BATCH_BYTES_MAX + REPL_RANGE_EVENTS_MAX * (EVENT_SIZE_MAX + 16) + \
     SITES_MAX * 256 + 65536)

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
 * kept, e says which check failed and *reason_out names it for counters
 * ("unknown-origin", "malformed", "chain", "signature", "too-big"). */
int repl_range_verify(const Im__Range *r, const char *self,
                      repl_site_key_fn site_key, void *arg,
                      struct repl_verified *out, const char **reason_out,
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

#endif
