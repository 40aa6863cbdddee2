/* chan: see chan.h; the protocol is docs/protocol-secure-channel.md. */
#include "chan.h"

#include <assert.h>
#include <inttypes.h>
#include <sodium.h>
#include <string.h>

/* The first byte of every message: version in the high nibble, type in the
 * low one, so a peer of another version is told so whatever it sent. */
enum { TYPE_HS1 = 1, TYPE_HS2 = 2, TYPE_HS3 = 3, TYPE_DATA = 4 };
#define KIND(type) ((uint8_t)((CHAN_VERSION << 4) | (type)))

enum { ROLE_INITIATOR = 'I', ROLE_RESPONDER = 'R' };
enum { STEP_NONE, STEP_SENT1, STEP_SENT2 };

/* Hashed into the first transcript hash and chaining key: a change of any
 * algorithm is a new protocol whose transcripts never match this one. */
static const char protocol_name[] =
    "IM-CHAN-1/X25519/Ed25519/XChaCha20-Poly1305/BLAKE2b";

/* crypto_kdf contexts (8 bytes each) and subkey ids. */
#define KDF_CTX "IMchanv1"
#define RATCHET_CTX "IMchanrk"
enum { KDF_CK1 = 1, KDF_K2 = 2, KDF_K3 = 3, KDF_I2R = 4, KDF_R2I = 5 };

#define DH_BYTES crypto_scalarmult_curve25519_BYTES
#define ID_BYTES (KEY_PUB_BYTES + KEY_SIG_BYTES)        /* pk || signature */
#define SEALED_ID_BYTES (ID_BYTES + CHAN_TAG_BYTES)     /* AEAD of the above */
#define TBS_BYTES (1 + CHAN_HASH_BYTES + KEY_PUB_BYTES) /* role || h || pk */
#define NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES

_Static_assert(CHAN_HS1_BYTES == 1 + CHAN_CLUSTER_ID_BYTES + DH_BYTES + 32,
               "msg1 layout");
_Static_assert(CHAN_HS2_BYTES == 1 + DH_BYTES + SEALED_ID_BYTES, "msg2 layout");
_Static_assert(CHAN_HS3_BYTES == 1 + SEALED_ID_BYTES, "msg3 layout");
_Static_assert(CHAN_TAG_BYTES == crypto_aead_xchacha20poly1305_ietf_ABYTES,
               "tag size");
_Static_assert(CHAN_KEY_BYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES,
               "AEAD key size");
_Static_assert(CHAN_KEY_BYTES == crypto_kdf_KEYBYTES, "KDF key size");
_Static_assert(CHAN_HASH_BYTES <= crypto_generichash_BYTES_MAX, "hash size");
_Static_assert(CHAN_REPLAY_WINDOW % 64 == 0, "window is whole words");
_Static_assert(CHAN_SESSION_ID_BYTES <= CHAN_HASH_BYTES, "id from h");
_Static_assert(CHAN_REJECT_COUNT == 10, "chan_reject_name covers all");

static const char *const reject_names[CHAN_REJECT_COUNT] = {
    [CHAN_REJECT_MALFORMED] = "malformed",
    [CHAN_REJECT_AUTH] = "auth",
    [CHAN_REJECT_REPLAY] = "replay",
    [CHAN_REJECT_OLD] = "old",
    [CHAN_REJECT_EPOCH] = "epoch",
    [CHAN_REJECT_VERSION] = "version",
    [CHAN_REJECT_CLUSTER] = "cluster",
    [CHAN_REJECT_IDENTITY] = "identity",
    [CHAN_REJECT_UNPINNED] = "unpinned",
    [CHAN_REJECT_SIGNATURE] = "signature",
};

const char *
chan_reject_name(int reason)
{
    if (reason < 0 || reason >= CHAN_REJECT_COUNT)
        return "unknown";
    return reject_names[reason];
}

/* ---- primitives: hashing and key derivation (BLAKE2b) ---- */

static void
be32_put(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static void
be64_put(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint32_t
be32_get(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static uint64_t
be64_get(const uint8_t *p)
{
    return (uint64_t)be32_get(p) << 32 | be32_get(p + 4);
}

/* h = BLAKE2b-512(h || data): every byte on the wire enters the transcript. */
static void
mix_hash(uint8_t h[CHAN_HASH_BYTES], const uint8_t *data, size_t size)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, CHAN_HASH_BYTES);
    crypto_generichash_update(&st, h, CHAN_HASH_BYTES);
    crypto_generichash_update(&st, data, size);
    crypto_generichash_final(&st, h, CHAN_HASH_BYTES);
}

/* h0 = BLAKE2b-512(protocol_name || cluster_id); ck0 = BLAKE2b-256(name).
 * The cluster is our own configuration, never the peer's claim. */
static void
transcript_start(uint8_t h[CHAN_HASH_BYTES], uint8_t ck[CHAN_KEY_BYTES],
                 const uint8_t cluster_id[CHAN_CLUSTER_ID_BYTES])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, CHAN_HASH_BYTES);
    crypto_generichash_update(&st, (const uint8_t *)protocol_name,
                              sizeof protocol_name - 1);
    crypto_generichash_update(&st, cluster_id, CHAN_CLUSTER_ID_BYTES);
    crypto_generichash_final(&st, h, CHAN_HASH_BYTES);
    crypto_generichash(ck, CHAN_KEY_BYTES, (const uint8_t *)protocol_name,
                       sizeof protocol_name - 1, NULL, 0);
}

/* HKDF-shaped: prk = BLAKE2b-256 keyed by the chaining key over the input;
 * each output is crypto_kdf (BLAKE2b with id and context) of prk. */
static void
kdf_extract(uint8_t prk[CHAN_KEY_BYTES], const uint8_t ck[CHAN_KEY_BYTES],
            const uint8_t *ikm, size_t ikm_size)
{
    crypto_generichash(prk, CHAN_KEY_BYTES, ikm, ikm_size, ck, CHAN_KEY_BYTES);
}

static void
kdf_expand(uint8_t out[CHAN_KEY_BYTES], const uint8_t prk[CHAN_KEY_BYTES],
           uint64_t id)
{
    int rv = crypto_kdf_derive_from_key(out, CHAN_KEY_BYTES, id, KDF_CTX, prk);
    assert(rv == 0); /* sizes are constants within crypto_kdf's range */
    (void)rv;
}

/* The key of epoch next_epoch from the key of the epoch before: one-way, so
 * a key taken from memory does not decrypt earlier epochs. */
static void
ratchet(uint8_t next[CHAN_KEY_BYTES], const uint8_t key[CHAN_KEY_BYTES],
        uint32_t next_epoch)
{
    int rv = crypto_kdf_derive_from_key(next, CHAN_KEY_BYTES, next_epoch,
                                        RATCHET_CTX, key);
    assert(rv == 0);
    (void)rv;
}

static void
sign_transcript(const struct im_key *self, int role,
                const uint8_t h[CHAN_HASH_BYTES], uint8_t sig[KEY_SIG_BYTES])
{
    uint8_t tbs[TBS_BYTES];
    tbs[0] = (uint8_t)role;
    memcpy(tbs + 1, h, CHAN_HASH_BYTES);
    memcpy(tbs + 1 + CHAN_HASH_BYTES, self->pk, KEY_PUB_BYTES);
    key_sign(self, KEY_CTX_CHAN, tbs, sizeof tbs, sig);
}

static int
verify_transcript(const uint8_t pk[KEY_PUB_BYTES], int role,
                  const uint8_t h[CHAN_HASH_BYTES],
                  const uint8_t sig[KEY_SIG_BYTES])
{
    uint8_t tbs[TBS_BYTES];
    tbs[0] = (uint8_t)role;
    memcpy(tbs + 1, h, CHAN_HASH_BYTES);
    memcpy(tbs + 1 + CHAN_HASH_BYTES, pk, KEY_PUB_BYTES);
    return key_verify(pk, KEY_CTX_CHAN, tbs, sizeof tbs, sig);
}

/* The identity payload (pk || sig) under a handshake key. Each of k2 and k3
 * encrypts exactly one message, so the all-zero nonce is never reused. */
static void
id_seal(uint8_t out[SEALED_ID_BYTES], const uint8_t id[ID_BYTES],
        const uint8_t k[CHAN_KEY_BYTES], const uint8_t h[CHAN_HASH_BYTES])
{
    static const uint8_t zero_nonce[NONCE_BYTES];
    crypto_aead_xchacha20poly1305_ietf_encrypt(
        out, NULL, id, ID_BYTES, h, CHAN_HASH_BYTES, NULL, zero_nonce, k);
}

static int
id_open(uint8_t id[ID_BYTES], const uint8_t in[SEALED_ID_BYTES],
        const uint8_t k[CHAN_KEY_BYTES], const uint8_t h[CHAN_HASH_BYTES])
{
    static const uint8_t zero_nonce[NONCE_BYTES];
    return crypto_aead_xchacha20poly1305_ietf_decrypt(
               id, NULL, NULL, in, SEALED_ID_BYTES, h, CHAN_HASH_BYTES,
               zero_nonce, k) == 0
               ? 0
               : IM_EAUTH;
}

/* ---- handshake ---- */

static void
hs_reset(struct chan_hs *hs)
{
    sodium_memzero(hs, sizeof *hs);
    hs->reject = -1;
    hs->hs_step = STEP_NONE;
}

/* Wipes hs, records why it failed; returns rv (an im_errf result). */
static int
hs_fail(struct chan_hs *hs, int reason, int rv)
{
    hs_reset(hs);
    hs->reject = reason;
    return rv;
}

void
chan_hs_wipe(struct chan_hs *hs)
{
    hs_reset(hs);
}

/* Checks a handshake message's kind byte and size. */
static int
hs_parse(struct chan_hs *hs, const uint8_t *msg, size_t size, int type,
         size_t expect_size, struct im_err *e)
{
    if (size < 1)
        return hs_fail(hs, CHAN_REJECT_MALFORMED,
                       im_errf(e, IM_EPROTO,
                               "malformed handshake message: msg%d is empty",
                               type));
    if (msg[0] >> 4 != CHAN_VERSION)
        return hs_fail(hs, CHAN_REJECT_VERSION,
                       im_errf(e, IM_EPROTO,
                               "version unsupported: the peer speaks secure "
                               "channel version %d, this build speaks %d",
                               msg[0] >> 4, CHAN_VERSION));
    if (msg[0] != KIND(type))
        return hs_fail(hs, CHAN_REJECT_MALFORMED,
                       im_errf(e, IM_EPROTO,
                               "malformed handshake message: expected msg%d, "
                               "got message type %d",
                               type, msg[0] & 0x0f));
    if (size != expect_size)
        return hs_fail(hs, CHAN_REJECT_MALFORMED,
                       im_errf(e, IM_EPROTO,
                               "malformed handshake message: msg%d is %zu "
                               "bytes, expected %zu",
                               type, size, expect_size));
    return 0;
}

/* A fresh X25519 key pair. */
static int
ephemeral_new(uint8_t sk[32], uint8_t pk[32])
{
    randombytes_buf(sk, 32);
    return crypto_scalarmult_curve25519_base(pk, sk) == 0 ? 0 : IM_ECRYPTO;
}

/* Checks the peer's proven identity: not ourselves, the expected one if
 * any, pinned. Before the signature check, so an unknown key costs no
 * verification. */
static int
hs_check_peer(struct chan_hs *hs, const uint8_t peer[KEY_PUB_BYTES],
              chan_pinned_fn pinned, void *arg, const char *who,
              struct im_err *e)
{
    char text[KEY_PUB_TEXT_MAX], want[KEY_PUB_TEXT_MAX];

    key_pub_encode(peer, text);
    if (sodium_memcmp(peer, hs->hs_self->pk, KEY_PUB_BYTES) == 0)
        return hs_fail(hs, CHAN_REJECT_IDENTITY,
                       im_errf(e, IM_EUNKNOWNKEY,
                               "unexpected peer identity: the %s presents "
                               "our own key (a reflected or looped-back "
                               "handshake)",
                               who));
    if (hs->hs_has_expect &&
        sodium_memcmp(peer, hs->hs_expect_pk, KEY_PUB_BYTES) != 0) {
        key_pub_encode(hs->hs_expect_pk, want);
        return hs_fail(hs, CHAN_REJECT_IDENTITY,
                       im_errf(e, IM_EUNKNOWNKEY,
                               "unexpected peer identity: expected %s, the "
                               "%s is %s",
                               want, who, text));
    }
    if (pinned(arg, peer) != 0)
        return hs_fail(hs, CHAN_REJECT_UNPINNED,
                       im_errf(e, IM_EUNKNOWNKEY,
                               "peer key not pinned: the %s is %s, which is "
                               "not in this node's configuration",
                               who, text));
    return 0;
}

static void
session_init(struct chan_session *s, const uint8_t peer[KEY_PUB_BYTES],
             const uint8_t h_final[CHAN_HASH_BYTES],
             const uint8_t tx_key[CHAN_KEY_BYTES],
             const uint8_t rx_key[CHAN_KEY_BYTES])
{
    memset(s, 0, sizeof *s);
    memcpy(s->peer_pk, peer, KEY_PUB_BYTES);
    memcpy(s->session_id, h_final, CHAN_SESSION_ID_BYTES);
    memcpy(s->tx.tx_key, tx_key, CHAN_KEY_BYTES);
    memcpy(s->rx.rx_key, rx_key, CHAN_KEY_BYTES);
    s->tx.tx_epoch_start_ms = UINT64_MAX;
    atomic_init(&s->tx.tx_frames, 0);
    atomic_init(&s->tx.tx_bytes, 0);
    atomic_init(&s->rx.rx_frames, 0);
    atomic_init(&s->rx.rx_bytes, 0);
    for (int i = 0; i < CHAN_REJECT_COUNT; i++)
        atomic_init(&s->rx.rx_rejected[i], 0);
    s->rx.rx_last_reject = -1;
    s->live = 1;
}

/* Session keys from the chaining key after the DH and the whole transcript. */
static void
session_keys(const uint8_t ck[CHAN_KEY_BYTES],
             const uint8_t h_final[CHAN_HASH_BYTES],
             uint8_t i2r[CHAN_KEY_BYTES], uint8_t r2i[CHAN_KEY_BYTES])
{
    uint8_t prk[CHAN_KEY_BYTES];
    kdf_extract(prk, ck, h_final, CHAN_HASH_BYTES);
    kdf_expand(i2r, prk, KDF_I2R);
    kdf_expand(r2i, prk, KDF_R2I);
    sodium_memzero(prk, sizeof prk);
}

int
chan_hs_initiate(struct chan_hs *hs, const struct im_key *self,
                 const uint8_t cluster_id[CHAN_CLUSTER_ID_BYTES],
                 const uint8_t expect_peer_pk[KEY_PUB_BYTES], uint8_t *msg1,
                 size_t *msg1_size, struct im_err *e)
{
    uint8_t msg[CHAN_HS1_BYTES];

    assert(hs != NULL && self != NULL && cluster_id != NULL);
    assert(msg1 != NULL && msg1_size != NULL);
    hs_reset(hs);
    if (*msg1_size < CHAN_HS1_BYTES)
        return im_errf(e, IM_ETOOBIG,
                       "handshake buffer of %zu bytes is too small for msg1 "
                       "(%d bytes)",
                       *msg1_size, CHAN_HS1_BYTES);
    if (ephemeral_new(hs->hs_e_sk, hs->hs_e_pk) != 0)
        return hs_fail(hs, -1,
                       im_errf(e, IM_ECRYPTO, "X25519 key generation failed"));
    hs->hs_role = ROLE_INITIATOR;
    hs->hs_self = self;
    if (expect_peer_pk != NULL) {
        hs->hs_has_expect = 1;
        memcpy(hs->hs_expect_pk, expect_peer_pk, KEY_PUB_BYTES);
    }
    msg[0] = KIND(TYPE_HS1);
    memcpy(msg + 1, cluster_id, CHAN_CLUSTER_ID_BYTES);
    memcpy(msg + 1 + CHAN_CLUSTER_ID_BYTES, hs->hs_e_pk, DH_BYTES);
    randombytes_buf(msg + 1 + CHAN_CLUSTER_ID_BYTES + DH_BYTES, 32);

    transcript_start(hs->hs_h, hs->hs_ck, cluster_id);
    mix_hash(hs->hs_h, msg, sizeof msg);
    hs->hs_step = STEP_SENT1;
    memcpy(msg1, msg, sizeof msg);
    *msg1_size = sizeof msg;
    return 0;
}

int
chan_hs_respond(struct chan_hs *hs, const struct im_key *self,
                const uint8_t cluster_id[CHAN_CLUSTER_ID_BYTES],
                const uint8_t *msg1, size_t msg1_size, uint8_t *msg2,
                size_t *msg2_size, struct im_err *e)
{
    uint8_t msg[CHAN_HS2_BYTES], dh[DH_BYTES], prk[CHAN_KEY_BYTES];
    uint8_t k2[CHAN_KEY_BYTES], id[ID_BYTES];
    int rv;

    assert(hs != NULL && self != NULL && cluster_id != NULL);
    assert(msg1 != NULL && msg2 != NULL && msg2_size != NULL);
    hs_reset(hs);
    if (*msg2_size < CHAN_HS2_BYTES)
        return im_errf(e, IM_ETOOBIG,
                       "handshake buffer of %zu bytes is too small for msg2 "
                       "(%d bytes)",
                       *msg2_size, CHAN_HS2_BYTES);
    if ((rv = hs_parse(hs, msg1, msg1_size, TYPE_HS1, CHAN_HS1_BYTES, e)) != 0)
        return rv;
    if (sodium_memcmp(msg1 + 1, cluster_id, CHAN_CLUSTER_ID_BYTES) != 0)
        return hs_fail(hs, CHAN_REJECT_CLUSTER,
                       im_errf(e, IM_EDENIED,
                               "cluster mismatch: the initiator is configured "
                               "for another cluster"));
    hs->hs_role = ROLE_RESPONDER;
    hs->hs_self = self;
    transcript_start(hs->hs_h, hs->hs_ck, cluster_id);
    mix_hash(hs->hs_h, msg1, CHAN_HS1_BYTES);

    if (ephemeral_new(hs->hs_e_sk, hs->hs_e_pk) != 0) {
        rv = hs_fail(hs, -1,
                     im_errf(e, IM_ECRYPTO, "X25519 key generation failed"));
        goto done;
    }
    /* libsodium refuses a low-order point (an all-zero shared secret). */
    if (crypto_scalarmult_curve25519(dh, hs->hs_e_sk,
                                     msg1 + 1 + CHAN_CLUSTER_ID_BYTES) != 0) {
        rv = hs_fail(hs, CHAN_REJECT_MALFORMED,
                     im_errf(e, IM_EPROTO,
                             "malformed handshake message: msg1 carries a "
                             "low-order ephemeral key"));
        goto done;
    }
    msg[0] = KIND(TYPE_HS2);
    memcpy(msg + 1, hs->hs_e_pk, DH_BYTES);
    mix_hash(hs->hs_h, msg, 1 + DH_BYTES); /* h2 */

    kdf_extract(prk, hs->hs_ck, dh, sizeof dh);
    kdf_expand(hs->hs_ck, prk, KDF_CK1);
    kdf_expand(k2, prk, KDF_K2);
    kdf_expand(hs->hs_k3, prk, KDF_K3);

    memcpy(id, self->pk, KEY_PUB_BYTES);
    sign_transcript(self, ROLE_RESPONDER, hs->hs_h, id + KEY_PUB_BYTES);
    id_seal(msg + 1 + DH_BYTES, id, k2, hs->hs_h);
    mix_hash(hs->hs_h, msg + 1 + DH_BYTES, SEALED_ID_BYTES); /* h3 */

    /* The ephemeral secret's work is done: forget it now. */
    sodium_memzero(hs->hs_e_sk, sizeof hs->hs_e_sk);
    hs->hs_step = STEP_SENT2;
    memcpy(msg2, msg, sizeof msg);
    *msg2_size = sizeof msg;
    rv = 0;
done:
    sodium_memzero(dh, sizeof dh);
    sodium_memzero(prk, sizeof prk);
    sodium_memzero(k2, sizeof k2);
    sodium_memzero(id, sizeof id);
    return rv;
}

int
chan_hs_finish_initiator(struct chan_hs *hs, const uint8_t *msg2,
                         size_t msg2_size, chan_pinned_fn pinned, void *arg,
                         uint8_t *msg3, size_t *msg3_size,
                         struct chan_session *out, struct im_err *e)
{
    uint8_t msg[CHAN_HS3_BYTES], dh[DH_BYTES], prk[CHAN_KEY_BYTES];
    uint8_t k2[CHAN_KEY_BYTES], id[ID_BYTES], peer[KEY_PUB_BYTES];
    uint8_t i2r[CHAN_KEY_BYTES], r2i[CHAN_KEY_BYTES];
    const struct im_key *self = hs->hs_self;
    int rv;

    assert(msg2 != NULL && msg3 != NULL && msg3_size != NULL);
    assert(pinned != NULL && out != NULL);
    if (hs->hs_role != ROLE_INITIATOR || hs->hs_step != STEP_SENT1)
        return hs_fail(hs, -1,
                       im_errf(e, IM_ESTATE,
                               "handshake out of order: no msg1 outstanding"));
    if (*msg3_size < CHAN_HS3_BYTES)
        return hs_fail(hs, -1,
                       im_errf(e, IM_ETOOBIG,
                               "handshake buffer of %zu bytes is too small "
                               "for msg3 (%d bytes)",
                               *msg3_size, CHAN_HS3_BYTES));
    if ((rv = hs_parse(hs, msg2, msg2_size, TYPE_HS2, CHAN_HS2_BYTES, e)) != 0)
        return rv;
    if (crypto_scalarmult_curve25519(dh, hs->hs_e_sk, msg2 + 1) != 0) {
        rv = hs_fail(hs, CHAN_REJECT_MALFORMED,
                     im_errf(e, IM_EPROTO,
                             "malformed handshake message: msg2 carries a "
                             "low-order ephemeral key"));
        goto done;
    }
    mix_hash(hs->hs_h, msg2, 1 + DH_BYTES); /* h2 */
    kdf_extract(prk, hs->hs_ck, dh, sizeof dh);
    kdf_expand(hs->hs_ck, prk, KDF_CK1);
    kdf_expand(k2, prk, KDF_K2);
    kdf_expand(hs->hs_k3, prk, KDF_K3);

    if (id_open(id, msg2 + 1 + DH_BYTES, k2, hs->hs_h) != 0) {
        rv = hs_fail(hs, CHAN_REJECT_AUTH,
                     im_errf(e, IM_EAUTH,
                             "handshake msg2 does not authenticate: tampered "
                             "in transit, or the responder is configured for "
                             "another cluster"));
        goto done;
    }
    memcpy(peer, id, KEY_PUB_BYTES);
    if ((rv = hs_check_peer(hs, peer, pinned, arg, "responder", e)) != 0)
        goto done;
    if (verify_transcript(peer, ROLE_RESPONDER, hs->hs_h, id + KEY_PUB_BYTES) !=
        0) {
        rv = hs_fail(hs, CHAN_REJECT_SIGNATURE,
                     im_errf(e, IM_EBADSIG,
                             "signature invalid: the responder's signature "
                             "over the handshake transcript does not verify"));
        goto done;
    }
    mix_hash(hs->hs_h, msg2 + 1 + DH_BYTES, SEALED_ID_BYTES); /* h3 */

    msg[0] = KIND(TYPE_HS3);
    memcpy(id, self->pk, KEY_PUB_BYTES);
    sign_transcript(self, ROLE_INITIATOR, hs->hs_h, id + KEY_PUB_BYTES);
    id_seal(msg + 1, id, hs->hs_k3, hs->hs_h);
    mix_hash(hs->hs_h, msg, sizeof msg); /* h4 */

    session_keys(hs->hs_ck, hs->hs_h, i2r, r2i);
    session_init(out, peer, hs->hs_h, i2r, r2i);
    memcpy(msg3, msg, sizeof msg);
    *msg3_size = sizeof msg;
    hs_reset(hs);
    rv = 0;
done:
    sodium_memzero(dh, sizeof dh);
    sodium_memzero(prk, sizeof prk);
    sodium_memzero(k2, sizeof k2);
    sodium_memzero(id, sizeof id);
    sodium_memzero(i2r, sizeof i2r);
    sodium_memzero(r2i, sizeof r2i);
    return rv;
}

int
chan_hs_finish_responder(struct chan_hs *hs, const uint8_t *msg3,
                         size_t msg3_size, chan_pinned_fn pinned, void *arg,
                         struct chan_session *out, struct im_err *e)
{
    uint8_t id[ID_BYTES], peer[KEY_PUB_BYTES];
    uint8_t i2r[CHAN_KEY_BYTES], r2i[CHAN_KEY_BYTES];
    int rv;

    assert(msg3 != NULL && pinned != NULL && out != NULL);
    if (hs->hs_role != ROLE_RESPONDER || hs->hs_step != STEP_SENT2)
        return hs_fail(hs, -1,
                       im_errf(e, IM_ESTATE,
                               "handshake out of order: no msg2 outstanding"));
    if ((rv = hs_parse(hs, msg3, msg3_size, TYPE_HS3, CHAN_HS3_BYTES, e)) != 0)
        return rv;
    if (id_open(id, msg3 + 1, hs->hs_k3, hs->hs_h) != 0) {
        rv = hs_fail(hs, CHAN_REJECT_AUTH,
                     im_errf(e, IM_EAUTH,
                             "handshake msg3 does not authenticate: tampered "
                             "in transit"));
        goto done;
    }
    memcpy(peer, id, KEY_PUB_BYTES);
    if ((rv = hs_check_peer(hs, peer, pinned, arg, "initiator", e)) != 0)
        goto done;
    if (verify_transcript(peer, ROLE_INITIATOR, hs->hs_h, id + KEY_PUB_BYTES) !=
        0) {
        rv = hs_fail(hs, CHAN_REJECT_SIGNATURE,
                     im_errf(e, IM_EBADSIG,
                             "signature invalid: the initiator's signature "
                             "over the handshake transcript does not verify"));
        goto done;
    }
    mix_hash(hs->hs_h, msg3, CHAN_HS3_BYTES); /* h4 */
    session_keys(hs->hs_ck, hs->hs_h, i2r, r2i);
    session_init(out, peer, hs->hs_h, r2i, i2r);
    hs_reset(hs);
    rv = 0;
done:
    sodium_memzero(id, sizeof id);
    sodium_memzero(i2r, sizeof i2r);
    sodium_memzero(r2i, sizeof r2i);
    return rv;
}

/* ---- frames ---- */

/* Counters have one writer each (the sealing or the opening thread), so a
 * relaxed load and store suffice; readers get a torn-free value. */
static void
counter_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* epoch(4, BE) || counter(8, BE) || 12 zero bytes: unique per key, because
 * the counter never repeats in a direction and each direction and epoch has
 * its own key. */
static void
frame_nonce(uint8_t nonce[NONCE_BYTES], uint32_t epoch, uint64_t counter)
{
    memset(nonce, 0, NONCE_BYTES);
    be32_put(nonce, epoch);
    be64_put(nonce + 4, counter);
}

/* Checks before any write, then rekeys if due, writes the header into
 * frame[0..CHAN_HEADER_BYTES) and seals plain (which may be frame's payload
 * area) into frame. */
static int
seal_frame(struct chan_session *s, uint64_t now_ms, const uint8_t *plain,
           size_t plain_size, uint8_t *frame, struct im_err *e)
{
    struct chan_tx *tx = &s->tx;
    uint8_t nonce[NONCE_BYTES], next[CHAN_KEY_BYTES];
    int rekey = 0;

    if (!s->live)
        return im_errf(e, IM_ECLOSED, "secure channel session is closed");
    if (plain_size > CHAN_PLAIN_MAX)
        return im_errf(e, IM_ETOOBIG,
                       "payload of %zu bytes exceeds CHAN_PLAIN_MAX (%d)",
                       plain_size, CHAN_PLAIN_MAX);
    if (tx->tx_epoch_start_ms == UINT64_MAX)
        tx->tx_epoch_start_ms = now_ms;
    else if (tx->tx_epoch_frames >= CHAN_REKEY_FRAMES ||
             (now_ms > tx->tx_epoch_start_ms &&
              now_ms - tx->tx_epoch_start_ms >= CHAN_REKEY_MS))
        rekey = 1;
    /* UINT64_MAX is never sent, so the receiver's top (counter + 1) never
     * wraps. */
    if (tx->tx_counter == UINT64_MAX || (rekey && tx->tx_epoch == UINT32_MAX))
        return im_errf(e, IM_ESTATE,
                       "secure channel session exhausted its counters; "
                       "handshake again");
    if (rekey) {
        ratchet(next, tx->tx_key, tx->tx_epoch + 1);
        memcpy(tx->tx_key, next, CHAN_KEY_BYTES);
        sodium_memzero(next, sizeof next);
        tx->tx_epoch++;
        tx->tx_epoch_frames = 0;
        tx->tx_epoch_start_ms = now_ms;
    }

    frame[0] = KIND(TYPE_DATA);
    be32_put(frame + 1, tx->tx_epoch);
    be64_put(frame + 5, tx->tx_counter);
    frame_nonce(nonce, tx->tx_epoch, tx->tx_counter);
    crypto_aead_xchacha20poly1305_ietf_encrypt_detached(
        frame + CHAN_HEADER_BYTES, frame + CHAN_HEADER_BYTES + plain_size, NULL,
        plain, plain_size, frame, CHAN_HEADER_BYTES, NULL, nonce, tx->tx_key);
    tx->tx_counter++;
    tx->tx_epoch_frames++;
    counter_add(&tx->tx_frames, 1);
    counter_add(&tx->tx_bytes, plain_size);
    return 0;
}

int
chan_seal(struct chan_session *s, uint64_t now_ms, const uint8_t *plain,
          size_t plain_size, uint8_t *frame, size_t *frame_size,
          struct im_err *e)
{
    int rv;

    assert(s != NULL && frame != NULL && frame_size != NULL);
    assert(plain != NULL || plain_size == 0);
    if (plain_size <= CHAN_PLAIN_MAX &&
        *frame_size < plain_size + CHAN_OVERHEAD)
        return im_errf(e, IM_ETOOBIG,
                       "frame buffer of %zu bytes is too small for a %zu-byte "
                       "payload (needs %zu)",
                       *frame_size, plain_size, plain_size + CHAN_OVERHEAD);
    if ((rv = seal_frame(s, now_ms, plain, plain_size, frame, e)) != 0)
        return rv;
    *frame_size = plain_size + CHAN_OVERHEAD;
    return 0;
}

int
chan_seal_inplace(struct chan_session *s, uint64_t now_ms, uint8_t *frame,
                  size_t frame_size, struct im_err *e)
{
    assert(s != NULL && frame != NULL);
    if (frame_size < CHAN_OVERHEAD)
        return im_errf(e, IM_EINVAL,
                       "frame buffer of %zu bytes is shorter than the "
                       "%d-byte overhead",
                       frame_size, CHAN_OVERHEAD);
    return seal_frame(s, now_ms, frame + CHAN_HEADER_BYTES,
                      frame_size - CHAN_OVERHEAD, frame, e);
}

static int
rx_reject(struct chan_rx *rx, int reason, int rv)
{
    rx->rx_last_reject = reason;
    counter_add(&rx->rx_rejected[reason], 1);
    return rv;
}

static void
rx_drop_prev(struct chan_rx *rx)
{
    sodium_memzero(rx->rx_prev_key, sizeof rx->rx_prev_key);
    rx->rx_prev_valid = 0;
}

/* 0 if counter is fresh, else CHAN_REJECT_OLD or CHAN_REJECT_REPLAY. The
 * window covers counters [top - WINDOW, top); bit c % WINDOW says "seen". */
static int
window_check(const struct chan_rx *rx, uint64_t counter)
{
    uint64_t bit = counter % CHAN_REPLAY_WINDOW;
    if (counter >= rx->rx_top)
        return 0;
    if (rx->rx_top - counter > CHAN_REPLAY_WINDOW)
        return CHAN_REJECT_OLD;
    if (rx->rx_window[bit / 64] & (UINT64_C(1) << (bit % 64)))
        return CHAN_REJECT_REPLAY;
    return 0;
}

static void
window_mark(struct chan_rx *rx, uint64_t counter)
{
    uint64_t bit;
    if (counter >= rx->rx_top) {
        /* Counters [top, counter) enter the window unseen; their slots
         * still hold bits of counters a window ago. */
        if (counter - rx->rx_top >= CHAN_REPLAY_WINDOW) {
            memset(rx->rx_window, 0, sizeof rx->rx_window);
        } else {
            for (uint64_t c = rx->rx_top; c < counter; c++) {
                bit = c % CHAN_REPLAY_WINDOW;
                rx->rx_window[bit / 64] &= ~(UINT64_C(1) << (bit % 64));
            }
        }
        assert(counter != UINT64_MAX); /* frames never carry it: seal_frame */
        rx->rx_top = counter + 1;
    }
    bit = counter % CHAN_REPLAY_WINDOW;
    rx->rx_window[bit / 64] |= UINT64_C(1) << (bit % 64);
}

/* The common path of both opens. plain: where to decrypt (distinct from
 * frame), or NULL to decrypt in place. */
static int
open_frame(struct chan_session *s, uint64_t now_ms, const uint8_t *frame,
           size_t frame_size, uint8_t *frame_mut, uint8_t *plain,
           size_t plain_cap, struct im_err *e)
{
    struct chan_rx *rx = &s->rx;
    uint8_t nonce[NONCE_BYTES], next[CHAN_KEY_BYTES], prev[CHAN_KEY_BYTES];
    const uint8_t *key, *ct, *tag;
    uint32_t epoch;
    uint64_t counter;
    size_t payload_size;
    int reason, rv;

    if (!s->live)
        return im_errf(e, IM_ECLOSED, "secure channel session is closed");
    if (frame_size < CHAN_OVERHEAD)
        return rx_reject(rx, CHAN_REJECT_MALFORMED,
                         im_errf(e, IM_EPROTO,
                                 "malformed frame: %zu bytes, shorter than "
                                 "the %d-byte minimum",
                                 frame_size, CHAN_OVERHEAD));
    if (frame_size > CHAN_FRAME_MAX)
        return rx_reject(rx, CHAN_REJECT_MALFORMED,
                         im_errf(e, IM_EPROTO,
                                 "malformed frame: %zu bytes exceeds "
                                 "CHAN_FRAME_MAX (%d)",
                                 frame_size, CHAN_FRAME_MAX));
    if (frame[0] != KIND(TYPE_DATA))
        return rx_reject(rx, CHAN_REJECT_MALFORMED,
                         im_errf(e, IM_EPROTO,
                                 "malformed frame: kind byte 0x%02x is not a "
                                 "version %d data frame",
                                 frame[0], CHAN_VERSION));
    payload_size = frame_size - CHAN_OVERHEAD;
    if (plain != NULL && payload_size > plain_cap)
        return im_errf(e, IM_ETOOBIG,
                       "plaintext buffer of %zu bytes is too small for a "
                       "%zu-byte payload",
                       plain_cap, payload_size);
    epoch = be32_get(frame + 1);
    counter = be64_get(frame + 5);
    ct = frame + CHAN_HEADER_BYTES;
    tag = ct + payload_size;

    if (rx->rx_prev_valid && now_ms >= rx->rx_prev_until_ms)
        rx_drop_prev(rx);

    /* Which key: this epoch's, the previous one's (stragglers), or a few
     * ratchet steps ahead (the sender rekeyed; frames in between lost). */
    if (epoch == rx->rx_epoch) {
        key = rx->rx_key;
    } else if (epoch < rx->rx_epoch) {
        if (epoch != rx->rx_epoch - 1 || !rx->rx_prev_valid)
            return rx_reject(rx, CHAN_REJECT_EPOCH,
                             im_errf(e, IM_EREPLAY,
                                     "stale frame: key epoch %" PRIu32
                                     " is gone (current %" PRIu32 ")",
                                     epoch, rx->rx_epoch));
        key = rx->rx_prev_key;
    } else if (epoch - rx->rx_epoch <= CHAN_EPOCH_SKIP_MAX) {
        memcpy(next, rx->rx_key, CHAN_KEY_BYTES);
        for (uint32_t ep = rx->rx_epoch + 1; ep <= epoch; ep++) {
            memcpy(prev, next, CHAN_KEY_BYTES);
            ratchet(next, prev, ep);
        }
        key = next;
    } else {
        return rx_reject(rx, CHAN_REJECT_EPOCH,
                         im_errf(e, IM_EPROTO,
                                 "malformed frame: key epoch %" PRIu32
                                 " is more than %d ahead of %" PRIu32,
                                 epoch, CHAN_EPOCH_SKIP_MAX, rx->rx_epoch));
    }

    if ((reason = window_check(rx, counter)) != 0) {
        rv = rx_reject(rx, reason,
                       im_errf(e, IM_EREPLAY,
                               reason == CHAN_REJECT_OLD
                                   ? "stale frame: counter %" PRIu64
                                     " is below the replay window"
                                   : "replayed frame: counter %" PRIu64
                                     " was already accepted",
                               counter));
        goto done;
    }

    frame_nonce(nonce, epoch, counter);
    if (plain != NULL) {
        /* Verify first (libsodium's decrypt zeroes its output on failure,
         * and plain must stay untouched), then decrypt. */
        if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
                NULL, NULL, ct, payload_size, tag, frame, CHAN_HEADER_BYTES,
                nonce, key) != 0) {
            rv = rx_reject(
                rx, CHAN_REJECT_AUTH,
                im_errf(e, IM_EAUTH,
                        "frame does not authenticate (counter %" PRIu64
                        ", epoch %" PRIu32 ")",
                        counter, epoch));
            goto done;
        }
        rv = crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
            plain, NULL, ct, payload_size, tag, frame, CHAN_HEADER_BYTES, nonce,
            key);
        assert(rv == 0); /* the same inputs verified just above */
    } else if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
                   frame_mut + CHAN_HEADER_BYTES, NULL, ct, payload_size, tag,
                   frame, CHAN_HEADER_BYTES, nonce, key) != 0) {
        rv = rx_reject(rx, CHAN_REJECT_AUTH,
                       im_errf(e, IM_EAUTH,
                               "frame does not authenticate (counter %" PRIu64
                               ", epoch %" PRIu32 ")",
                               counter, epoch));
        goto done;
    }

    /* Authentic and fresh: commit. */
    window_mark(rx, counter);
    if (epoch > rx->rx_epoch) {
        memcpy(rx->rx_prev_key, prev, CHAN_KEY_BYTES);
        memcpy(rx->rx_key, next, CHAN_KEY_BYTES);
        rx->rx_prev_valid = 1;
        rx->rx_prev_until_ms = now_ms > UINT64_MAX - CHAN_PREV_KEY_MS
                                   ? UINT64_MAX
                                   : now_ms + CHAN_PREV_KEY_MS;
        rx->rx_epoch = epoch;
        rx->rx_epoch_first = counter;
    }
    /* Once the window has passed the epoch's first frame, every frame of
     * the previous epoch would be "old": its key has no use left. */
    if (rx->rx_prev_valid && rx->rx_top >= CHAN_REPLAY_WINDOW &&
        rx->rx_top - CHAN_REPLAY_WINDOW >= rx->rx_epoch_first)
        rx_drop_prev(rx);
    counter_add(&rx->rx_frames, 1);
    counter_add(&rx->rx_bytes, payload_size);
    rv = 0;
done:
    sodium_memzero(next, sizeof next);
    sodium_memzero(prev, sizeof prev);
    return rv;
}

int
chan_open(struct chan_session *s, uint64_t now_ms, const uint8_t *frame,
          size_t frame_size, uint8_t *plain, size_t *plain_size,
          struct im_err *e)
{
    uint8_t empty[1];
    int rv;

    assert(s != NULL && frame != NULL && plain_size != NULL);
    assert(plain != NULL || *plain_size == 0);
    /* A zero-capacity buffer may be NULL; open_frame takes NULL as "in
     * place", so give it somewhere that is never written. */
    rv = open_frame(s, now_ms, frame, frame_size, NULL,
                    plain != NULL ? plain : empty, *plain_size, e);
    if (rv != 0)
        return rv;
    *plain_size = frame_size - CHAN_OVERHEAD;
    return 0;
}

int
chan_open_inplace(struct chan_session *s, uint64_t now_ms, uint8_t *frame,
                  size_t frame_size, uint8_t **plain, size_t *plain_size,
                  struct im_err *e)
{
    int rv;

    assert(s != NULL && frame != NULL && plain != NULL && plain_size != NULL);
    rv = open_frame(s, now_ms, frame, frame_size, frame, NULL, 0, e);
    if (rv != 0)
        return rv;
    *plain = frame + CHAN_HEADER_BYTES;
    *plain_size = frame_size - CHAN_OVERHEAD;
    return 0;
}

void
chan_stats_get(const struct chan_session *s, struct chan_stats *out)
{
    memset(out, 0, sizeof *out);
    out->frames_out =
        atomic_load_explicit(&s->tx.tx_frames, memory_order_relaxed);
    out->bytes_out =
        atomic_load_explicit(&s->tx.tx_bytes, memory_order_relaxed);
    out->frames_in =
        atomic_load_explicit(&s->rx.rx_frames, memory_order_relaxed);
    out->bytes_in = atomic_load_explicit(&s->rx.rx_bytes, memory_order_relaxed);
    for (int i = 0; i < CHAN_REJECT_COUNT; i++)
        out->rejected[i] =
            atomic_load_explicit(&s->rx.rx_rejected[i], memory_order_relaxed);
}

void
chan_session_wipe(struct chan_session *s)
{
    sodium_memzero(s, sizeof *s);
    s->live = 0;
}
