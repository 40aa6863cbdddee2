/* chan: the secure channel. A three-message handshake authenticates both
 * ends by their pinned Ed25519 identities and derives fresh per-direction
 * session keys; frames are then sealed with XChaCha20-Poly1305 under counter
 * nonces, checked against a replay window, and rekeyed by a one-way ratchet.
 *
 * Transport-agnostic: every function turns byte buffers into byte buffers and
 * never touches a socket or a clock (time comes in as now_ms), so the same
 * code serves node<->node replication, node<->coordinator and a remote
 * imctl<->node link, and is tested without sockets. The protocol, byte by
 * byte, is in docs/protocol-secure-channel.md.
 *
 * Handshake (SIGMA-I, Noise-XX-shaped), initiator I, responder R:
 *   msg1 I->R  kind, cluster_id, I's ephemeral X25519 pk, random nonce
 *   msg2 R->I  kind, R's ephemeral pk, AEAD_k2(R's Ed25519 pk, R's signature)
 *   msg3 I->R  kind, AEAD_k3(I's Ed25519 pk, I's signature)
 * Each signature covers the running transcript hash (which starts from the
 * cluster_id), the signer's role and its own key. k2 and k3 come from the
 * ephemeral-ephemeral DH, so identities are hidden from passive observers,
 * and I reveals its identity only after R has proven its own. Session keys
 * come from that DH and the hash of the whole transcript: fresh per session
 * (forward secrecy), unlike crypto_kx with static keys.
 *
 * Threads: a handshake belongs to one thread. A session has a send half and
 * a receive half in separate structs: calls to chan_seal* must be serialised
 * among themselves, and calls to chan_open* among themselves, but one thread
 * may seal while another opens. chan_stats_get may run at any time from any
 * thread. chan_session_wipe needs both halves and stats readers idle.
 * keys_init() must have run. */
#ifndef IM_CHAN_H
#define IM_CHAN_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "bounds.h"
#include "err.h"
#include "keys.h"

#define CHAN_VERSION 1
#define CHAN_CLUSTER_ID_BYTES 32
#define CHAN_KEY_BYTES 32
#define CHAN_HASH_BYTES 64
#define CHAN_SESSION_ID_BYTES 16

/* Handshake message sizes (fixed in version 1). */
#define CHAN_HS1_BYTES 97
#define CHAN_HS2_BYTES 145
#define CHAN_HS3_BYTES 113
#define CHAN_HS_MSG_MAX CHAN_HS2_BYTES

/* Frame: kind(1) epoch(4, BE) counter(8, BE), then ciphertext and 16-byte
 * Poly1305 tag. The header is the AEAD's associated data. */
#define CHAN_HEADER_BYTES 13
#define CHAN_TAG_BYTES 16
#define CHAN_OVERHEAD (CHAN_HEADER_BYTES + CHAN_TAG_BYTES)
/* CHAN_PLAIN_MAX (bounds.h) is the largest payload. */
#define CHAN_FRAME_MAX (CHAN_PLAIN_MAX + CHAN_OVERHEAD)

/* The receiver accepts a counter at most this far below the highest it has
 * accepted, each once. 1024 covers every frame one link can have in flight
 * (NNG req/rep: API_CONTEXTS-sized windows, replication pipelining) with
 * room for reordering, at 128 bytes of bitmap per session. */
#define CHAN_REPLAY_WINDOW 1024

/* The sender moves to the next key epoch after this many frames or this much
 * time in one epoch, whichever comes first. The ratchet is one hash, so this
 * bounds what a stolen session key decrypts (at most a minute or 65,536
 * frames of past traffic), not the AEAD's limits, which are far larger. */
#define CHAN_REKEY_FRAMES (1u << 16)
#define CHAN_REKEY_MS (60 * 1000)

/* After following the sender to a new epoch, the receiver keeps the previous
 * epoch's key for stragglers until this much time has passed or the replay
 * window has moved past the new epoch's first frame, then wipes it. */
#define CHAN_PREV_KEY_MS 5000

/* A receiver follows the sender across at most this many epochs at once
 * (frames of the epochs in between were lost). Beyond it the frame is
 * rejected ("epoch"); bounds the hashing one forged header can cost. */
#define CHAN_EPOCH_SKIP_MAX 16

/* Why a handshake message or a frame was refused. The first five are the
 * frame reasons counted in chan_stats.rejected; the rest are handshake-only. */
enum chan_reject {
    CHAN_REJECT_MALFORMED, /* "malformed": wrong size or kind byte */
    CHAN_REJECT_AUTH,      /* "auth": tag or handshake AEAD failed */
    CHAN_REJECT_REPLAY,    /* "replay": counter already accepted */
    CHAN_REJECT_OLD,       /* "old": counter below the replay window */
    CHAN_REJECT_EPOCH,     /* "epoch": key epoch gone or too far ahead */
    CHAN_REJECT_VERSION,   /* "version": peer speaks another version */
    CHAN_REJECT_CLUSTER,   /* "cluster": msg1 is for another cluster */
    CHAN_REJECT_IDENTITY,  /* "identity": not the peer we expected */
    CHAN_REJECT_UNPINNED,  /* "unpinned": peer key not in our config */
    CHAN_REJECT_SIGNATURE, /* "signature": transcript signature invalid */
    CHAN_REJECT_COUNT
};

/* The reason's short name ("auth", "replay", ...); "unknown" otherwise. */
const char *chan_reject_name(int reason);

/* 0 if pk is pinned (may be a peer), nonzero (IM_EUNKNOWNKEY) if not. */
typedef int (*chan_pinned_fn)(void *arg, const uint8_t pk[KEY_PUB_BYTES]);

/* Handshake state: caller-allocated, fields private except `reject`. */
struct chan_hs {
    int reject; /* after a failed step: enum chan_reject; -1 otherwise */
    int hs_role;
    int hs_step;
    const struct im_key *hs_self; /* borrowed until finish or failure */
    int hs_has_expect;
    uint8_t hs_expect_pk[KEY_PUB_BYTES];
    uint8_t hs_e_sk[32], hs_e_pk[32];
    uint8_t hs_h[CHAN_HASH_BYTES];
    uint8_t hs_ck[CHAN_KEY_BYTES];
    uint8_t hs_k3[CHAN_KEY_BYTES];
};

/* Sending half: private. */
struct chan_tx {
    uint8_t tx_key[CHAN_KEY_BYTES];
    uint32_t tx_epoch;
    uint64_t tx_counter;        /* next counter to seal */
    uint64_t tx_epoch_frames;   /* frames sealed in this epoch */
    uint64_t tx_epoch_start_ms; /* UINT64_MAX until the first seal */
    _Atomic uint64_t tx_frames, tx_bytes;
};

/* Receiving half: private. */
struct chan_rx {
    uint8_t rx_key[CHAN_KEY_BYTES];
    uint32_t rx_epoch;
    int rx_prev_valid;
    uint8_t rx_prev_key[CHAN_KEY_BYTES]; /* key of rx_epoch - 1 */
    uint64_t rx_prev_until_ms;
    uint64_t rx_epoch_first; /* first counter accepted in rx_epoch */
    uint64_t rx_top;         /* highest accepted counter + 1; 0: none */
    uint64_t rx_window[CHAN_REPLAY_WINDOW / 64]; /* bit c % WINDOW: seen */
    int rx_last_reject; /* reason of the last refused frame; -1 none */
    _Atomic uint64_t rx_frames, rx_bytes, rx_rejected[CHAN_REJECT_COUNT];
};

/* An established session. Written only by a successful handshake finish. */
struct chan_session {
    uint8_t peer_pk[KEY_PUB_BYTES]; /* who the peer is (pinned, verified) */
    uint8_t session_id[CHAN_SESSION_ID_BYTES]; /* same on both ends; public,
                                                  for logs */
    int live;                                  /* 1 until chan_session_wipe */
    struct chan_tx tx;
    /* A cache line between the halves, so the sealing and the opening
     * thread never share one (padding, not alignas: a session may live in
     * malloc'd memory, which is only 16-byte aligned). */
    uint8_t pad_[64];
    struct chan_rx rx;
};

struct chan_stats {
    uint64_t frames_in, frames_out, bytes_in, bytes_out; /* payload bytes */
    uint64_t rejected[CHAN_REJECT_COUNT];
};

/* Initiator, step 1: a fresh ephemeral key and msg1 (CHAN_HS1_BYTES) into
 * msg1; *msg1_size is the capacity in, the size out. cluster_id is the
 * cluster this node is configured for. expect_peer_pk: the identity the
 * responder must prove (a dialled site's pinned key), or NULL for any pinned
 * key. self is borrowed until the handshake finishes or fails. */
int chan_hs_initiate(struct chan_hs *hs, const struct im_key *self,
                     const uint8_t cluster_id[CHAN_CLUSTER_ID_BYTES],
                     const uint8_t expect_peer_pk[KEY_PUB_BYTES], uint8_t *msg1,
                     size_t *msg1_size, struct im_err *e);

/* Responder, step 1: checks msg1 (version, cluster) and writes msg2
 * (CHAN_HS2_BYTES). Costs an X25519 and an Ed25519 signature and nothing
 * persistent; the caller rate-limits unauthenticated peers. */
int chan_hs_respond(struct chan_hs *hs, const struct im_key *self,
                    const uint8_t cluster_id[CHAN_CLUSTER_ID_BYTES],
                    const uint8_t *msg1, size_t msg1_size, uint8_t *msg2,
                    size_t *msg2_size, struct im_err *e);

/* Initiator, step 2: verifies msg2 (the responder's identity is the expected
 * one, pinned, and signed this transcript), writes msg3 (CHAN_HS3_BYTES) and
 * establishes *out. The session is usable at once; the responder confirms it
 * implicitly by its first frame. pinned must not be NULL. */
int chan_hs_finish_initiator(struct chan_hs *hs, const uint8_t *msg2,
                             size_t msg2_size, chan_pinned_fn pinned, void *arg,
                             uint8_t *msg3, size_t *msg3_size,
                             struct chan_session *out, struct im_err *e);

/* Responder, step 2: verifies msg3 (the initiator is pinned and signed this
 * transcript) and establishes *out. pinned must not be NULL. */
int chan_hs_finish_responder(struct chan_hs *hs, const uint8_t *msg3,
                             size_t msg3_size, chan_pinned_fn pinned, void *arg,
                             struct chan_session *out, struct im_err *e);
/* Every chan_hs_* call that fails (and both finishes when they succeed)
 * wipes the handshake's secrets; a failed handshake cannot be continued.
 * On failure hs->reject says why, e says which check failed in words
 * ("peer key not pinned: ed25519:...", "signature invalid", "cluster
 * mismatch", "unexpected peer identity", "malformed handshake message: ...",
 * "version unsupported: ..."), outputs are untouched and the code is
 * IM_EPROTO (malformed, version), IM_EAUTH (a handshake AEAD failed: tampered
 * or other cluster), IM_EDENIED (cluster), IM_EUNKNOWNKEY (unpinned,
 * unexpected identity), IM_EBADSIG, or IM_ESTATE (steps out of order). */

/* Abandons a handshake (timeout, lost peer): wipes its secrets. */
void chan_hs_wipe(struct chan_hs *hs);

/* Seals plain into frame (plain_size + CHAN_OVERHEAD bytes); *frame_size is
 * the capacity in, the size out. plain and frame must not overlap. Moves to
 * the next epoch first if this one is used up (CHAN_REKEY_*). Errors:
 * IM_ETOOBIG (plain over CHAN_PLAIN_MAX, or frame too small), IM_ECLOSED
 * (wiped session), IM_ESTATE (counter or epoch exhausted: handshake again). */
int chan_seal(struct chan_session *s, uint64_t now_ms, const uint8_t *plain,
              size_t plain_size, uint8_t *frame, size_t *frame_size,
              struct im_err *e);

/* Seals in place, for building a frame inside a message body without a
 * copy: frame holds frame_size = plain_size + CHAN_OVERHEAD bytes, with the
 * plaintext at frame + CHAN_HEADER_BYTES; on success it holds the frame.
 * On failure the buffer is untouched. */
int chan_seal_inplace(struct chan_session *s, uint64_t now_ms, uint8_t *frame,
                      size_t frame_size, struct im_err *e);

/* Opens frame into plain; *plain_size is the capacity in, the size out.
 * Writes plain only if the frame authenticates, is fresh and fits; on any
 * refusal writes nothing to plain, counts the reason in the stats, records it
 * in s->rx.rx_last_reject and returns IM_EPROTO (malformed; epoch too far
 * ahead), IM_EAUTH (auth), IM_EREPLAY (replay, old, epoch gone). A plain
 * buffer smaller than the payload is IM_ETOOBIG, not counted, and the frame
 * may be opened again. Verifies the tag before decrypting (two passes over
 * the payload: libsodium's one-pass decrypt zeroes its output on failure). */
int chan_open(struct chan_session *s, uint64_t now_ms, const uint8_t *frame,
              size_t frame_size, uint8_t *plain, size_t *plain_size,
              struct im_err *e);

/* Opens in place, in one pass: on success *plain points into frame (at
 * frame + CHAN_HEADER_BYTES) and *plain_size is its size. On refusal, as
 * chan_open, and the payload bytes of frame may have been zeroed (never
 * decrypted): the caller drops the frame. */
int chan_open_inplace(struct chan_session *s, uint64_t now_ms, uint8_t *frame,
                      size_t frame_size, uint8_t **plain, size_t *plain_size,
                      struct im_err *e);

/* A snapshot of s's counters (relaxed: each counter is exact, the set is not
 * one instant). */
void chan_stats_get(const struct chan_session *s, struct chan_stats *out);

/* Wipes every key and counter; s is dead (seal/open return IM_ECLOSED). */
void chan_session_wipe(struct chan_session *s);

#endif
