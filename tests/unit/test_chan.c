/* Unit tests for lib/chan: the handshake and both directions of traffic, and
 * every way a peer or the network can get it wrong: each bit flip and
 * truncation of a frame and of each handshake message, replays, reordering
 * around the window's edge, reflection, unpinned and unexpected identities,
 * another cluster, forged signatures, rekeying by count and by (fake) time,
 * limits, and one session sealing and opening on two threads at once (run
 * under TSan by `make test`). No test depends on wall time. */
#include <pthread.h>
#include <sodium.h>

#include "chan.h"
#include "test.h"

static struct im_key key_a, key_b, key_c; /* A, B: sites; C: another node */
static uint8_t cluster[CHAN_CLUSTER_ID_BYTES];
static uint8_t cluster_other[CHAN_CLUSTER_ID_BYTES];

/* A pin set: the keys a node's configuration lists. */
struct pins {
    const uint8_t *pk[4];
    int count;
};

static int
pinned_in(void *arg, const uint8_t pk[KEY_PUB_BYTES])
{
    const struct pins *p = arg;
    for (int i = 0; i < p->count; i++)
        if (memcmp(p->pk[i], pk, KEY_PUB_BYTES) == 0)
            return 0;
    return IM_EUNKNOWNKEY;
}

static struct pins pins_all; /* A, B and C */

/* One handshake between two configured ends; r->reject is the failing
 * side's reason. */
struct hs_run {
    const struct im_key *ini, *resp;
    const uint8_t *cluster_ini, *cluster_resp;
    const uint8_t *expect; /* NULL: any pinned */
    struct pins *pins_ini, *pins_resp;
    struct chan_hs hs_i, hs_r;
    int reject; /* reason of the side that failed, -1 if none */
    struct im_err e;
};

static int
hs_run(struct hs_run *r, struct chan_session *si, struct chan_session *sr)
{
    uint8_t m1[CHAN_HS_MSG_MAX], m2[CHAN_HS_MSG_MAX], m3[CHAN_HS_MSG_MAX];
    size_t n1 = sizeof m1, n2 = sizeof m2, n3 = sizeof m3;
    struct chan_hs *failed = &r->hs_i;
    int rv;

    im_errclear(&r->e);
    rv = chan_hs_initiate(&r->hs_i, r->ini, r->cluster_ini, r->expect, m1, &n1,
                          &r->e);
    if (rv != 0)
        goto fail;
    failed = &r->hs_r;
    rv = chan_hs_respond(&r->hs_r, r->resp, r->cluster_resp, m1, n1, m2, &n2,
                         &r->e);
    if (rv != 0)
        goto fail;
    failed = &r->hs_i;
    rv = chan_hs_finish_initiator(&r->hs_i, m2, n2, pinned_in, r->pins_ini, m3,
                                  &n3, si, &r->e);
    if (rv != 0)
        goto fail;
    failed = &r->hs_r;
    rv = chan_hs_finish_responder(&r->hs_r, m3, n3, pinned_in, r->pins_resp, sr,
                                  &r->e);
    if (rv != 0)
        goto fail;
    r->reject = -1;
    return 0;
fail:
    r->reject = failed->reject;
    return rv;
}

static void
hs_defaults(struct hs_run *r)
{
    memset(r, 0, sizeof *r);
    r->ini = &key_a;
    r->resp = &key_b;
    r->cluster_ini = cluster;
    r->cluster_resp = cluster;
    r->expect = key_b.pk;
    r->pins_ini = &pins_all;
    r->pins_resp = &pins_all;
}

/* A (initiator) and B (responder), established. */
static int
pair(struct chan_session *a, struct chan_session *b)
{
    struct hs_run r;
    hs_defaults(&r);
    return hs_run(&r, a, b);
}

static uint64_t
rejected_total(const struct chan_session *s)
{
    struct chan_stats st;
    uint64_t n = 0;
    chan_stats_get(s, &st);
    for (int i = 0; i < CHAN_REJECT_COUNT; i++)
        n += st.rejected[i];
    return n;
}

static uint64_t
rejected(const struct chan_session *s, int reason)
{
    struct chan_stats st;
    chan_stats_get(s, &st);
    return st.rejected[reason];
}

static int
all_bytes(const uint8_t *p, size_t size, uint8_t v)
{
    for (size_t i = 0; i < size; i++)
        if (p[i] != v)
            return 0;
    return 1;
}

/* Seals size bytes of pattern seed at now_ms; returns the frame size. */
static size_t
seal_pattern(struct chan_session *s, uint64_t now_ms, uint8_t seed, size_t size,
             uint8_t *frame, size_t cap)
{
    uint8_t plain[256];
    size_t n = cap;
    struct im_err e;
    if (size > sizeof plain)
        abort();
    for (size_t i = 0; i < size; i++)
        plain[i] = (uint8_t)(seed + i * 7);
    if (chan_seal(s, now_ms, plain, size, frame, &n, &e) != 0) {
        fprintf(stderr, "seal: %s\n", im_errmsg(&e));
        return 0;
    }
    return n;
}

/* Opens frame; 0 or the error, and the payload must be the pattern. */
static int
open_pattern(struct chan_session *s, uint64_t now_ms, uint8_t seed,
             const uint8_t *frame, size_t size)
{
    uint8_t plain[256];
    size_t n = sizeof plain;
    struct im_err e;
    int rv = chan_open(s, now_ms, frame, size, plain, &n, &e);
    if (rv != 0)
        return rv;
    for (size_t i = 0; i < n; i++)
        if (plain[i] != (uint8_t)(seed + i * 7))
            return IM_ECORRUPT;
    return 0;
}

TEST(handshake_and_traffic)
{
    struct hs_run r;
    struct chan_session a, b;
    struct chan_hs wiped;
    struct chan_stats st;
    static uint8_t plain[65536], frame[65536 + CHAN_OVERHEAD], back[65536];
    static const size_t sizes[] = {0, 1, 255, 256, 4096, 65536};
    struct im_err e;

    hs_defaults(&r);
    REQUIRE(hs_run(&r, &a, &b) == 0);
    CHECK(memcmp(a.peer_pk, key_b.pk, KEY_PUB_BYTES) == 0);
    CHECK(memcmp(b.peer_pk, key_a.pk, KEY_PUB_BYTES) == 0);
    CHECK(memcmp(a.session_id, b.session_id, CHAN_SESSION_ID_BYTES) == 0);
    CHECK(a.live && b.live);
    /* Each direction's key is the other end's receive key, and the two
     * directions differ. */
    CHECK(memcmp(a.tx.tx_key, b.rx.rx_key, CHAN_KEY_BYTES) == 0);
    CHECK(memcmp(b.tx.tx_key, a.rx.rx_key, CHAN_KEY_BYTES) == 0);
    CHECK(memcmp(a.tx.tx_key, a.rx.rx_key, CHAN_KEY_BYTES) != 0);
    /* Both handshake states are wiped. */
    memset(&wiped, 0, sizeof wiped);
    wiped.reject = -1;
    CHECK(memcmp(&r.hs_i, &wiped, sizeof wiped) == 0);
    CHECK(memcmp(&r.hs_r, &wiped, sizeof wiped) == 0);

    randombytes_buf(plain, sizeof plain);
    for (int dir = 0; dir < 2; dir++) {
        struct chan_session *tx = dir ? &b : &a, *rx = dir ? &a : &b;
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t fn = sizeof frame, pn = sizeof back;
            REQUIRE(chan_seal(tx, 1000, plain, sizes[i], frame, &fn, &e) == 0);
            CHECK_EQ_INT(fn, sizes[i] + CHAN_OVERHEAD);
            REQUIRE(chan_open(rx, 1000, frame, fn, back, &pn, &e) == 0);
            CHECK_EQ_INT(pn, sizes[i]);
            CHECK(memcmp(back, plain, sizes[i]) == 0);
        }
    }
    chan_stats_get(&a, &st);
    CHECK_EQ_INT(st.frames_out, 6);
    CHECK_EQ_INT(st.frames_in, 6);
    CHECK_EQ_INT(st.bytes_out, 0 + 1 + 255 + 256 + 4096 + 65536);
    CHECK_EQ_INT(st.bytes_in, st.bytes_out);
    CHECK_EQ_INT(rejected_total(&a), 0);
    CHECK_EQ_INT(rejected_total(&b), 0);
}

/* The documented layouts are the real ones: a third party that follows
 * docs/protocol-secure-channel.md can open our frames with plain libsodium. */
TEST(wire_layout_matches_the_document)
{
    uint8_t m1[CHAN_HS_MSG_MAX], m2[CHAN_HS_MSG_MAX], m3[CHAN_HS_MSG_MAX];
    size_t n1 = sizeof m1, n2 = sizeof m2, n3 = sizeof m3, fn;
    uint8_t frame[64], nonce[24] = {0}, plain[16];
    unsigned long long pn;
    struct chan_hs hi, hr;
    struct chan_session a, b;
    struct im_err e;

    REQUIRE(chan_hs_initiate(&hi, &key_a, cluster, NULL, m1, &n1, &e) == 0);
    CHECK_EQ_INT(n1, CHAN_HS1_BYTES);
    CHECK_EQ_INT(m1[0], 0x11);
    CHECK(memcmp(m1 + 1, cluster, 32) == 0);
    REQUIRE(chan_hs_respond(&hr, &key_b, cluster, m1, n1, m2, &n2, &e) == 0);
    CHECK_EQ_INT(n2, CHAN_HS2_BYTES);
    CHECK_EQ_INT(m2[0], 0x12);
    REQUIRE(chan_hs_finish_initiator(&hi, m2, n2, pinned_in, &pins_all, m3, &n3,
                                     &a, &e) == 0);
    CHECK_EQ_INT(n3, CHAN_HS3_BYTES);
    CHECK_EQ_INT(m3[0], 0x13);
    REQUIRE(chan_hs_finish_responder(&hr, m3, n3, pinned_in, &pins_all, &b,
                                     &e) == 0);
    /* The identities travel encrypted: neither static key is in clear. */
    for (size_t i = 0; i + KEY_PUB_BYTES <= n2; i++)
        CHECK(memcmp(m2 + i, key_b.pk, KEY_PUB_BYTES) != 0);
    for (size_t i = 0; i + KEY_PUB_BYTES <= n3; i++)
        CHECK(memcmp(m3 + i, key_a.pk, KEY_PUB_BYTES) != 0);

    a.tx.tx_counter = 0x0102030405060708ULL;
    a.tx.tx_epoch = 0x0a0b0c0d;
    fn = seal_pattern(&a, 5, 3, 16, frame, sizeof frame);
    REQUIRE(fn == 16 + CHAN_OVERHEAD);
    CHECK_EQ_INT(frame[0], 0x14);
    CHECK(memcmp(frame + 1, "\x0a\x0b\x0c\x0d", 4) == 0);
    CHECK(memcmp(frame + 5, "\x01\x02\x03\x04\x05\x06\x07\x08", 8) == 0);
    memcpy(nonce, frame + 1, 12); /* epoch || counter || 12 zero bytes */
    REQUIRE(crypto_aead_xchacha20poly1305_ietf_decrypt(
                plain, &pn, NULL, frame + 13, fn - 13, frame, 13, nonce,
                a.tx.tx_key) == 0);
    CHECK_EQ_INT(pn, 16);
    for (int i = 0; i < 16; i++)
        CHECK_EQ_INT(plain[i], (uint8_t)(3 + i * 7));
}

/* Every single-bit flip of a small frame, header, ciphertext and tag, is
 * refused, counted once, and leaves plain untouched, through both opens. */
TEST(every_bit_flip_of_a_frame)
{
    struct chan_session a, b;
    uint8_t frame[16 + CHAN_OVERHEAD], bad[sizeof frame], plain[64];
    struct im_err e;
    size_t fn;

    REQUIRE(pair(&a, &b) == 0);
    /* Some history first, so the window is not empty. */
    for (int i = 0; i < 40; i++) {
        fn = seal_pattern(&a, 0, (uint8_t)i, 16, frame, sizeof frame);
        REQUIRE(open_pattern(&b, 0, (uint8_t)i, frame, fn) == 0);
    }
    fn = seal_pattern(&a, 0, 9, 16, frame, sizeof frame);
    REQUIRE(fn == sizeof frame);
    for (size_t bit = 0; bit < fn * 8; bit++) {
        uint64_t before = rejected_total(&b);
        size_t pn = sizeof plain;
        int rv;
        memcpy(bad, frame, fn);
        bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        memset(plain, 0xa5, sizeof plain);
        rv = chan_open(&b, 0, bad, fn, plain, &pn, &e);
        CHECK(rv != 0);
        CHECK(all_bytes(plain, sizeof plain, 0xa5));
        CHECK_EQ_INT(pn, sizeof plain);
        CHECK_EQ_INT(rejected_total(&b), before + 1);
        if (bit / 8 == 0)
            CHECK_EQ_INT(b.rx.rx_last_reject, CHAN_REJECT_MALFORMED);
        else if (bit / 8 >= CHAN_HEADER_BYTES)
            CHECK_EQ_INT(b.rx.rx_last_reject, CHAN_REJECT_AUTH);
        else
            CHECK(b.rx.rx_last_reject != CHAN_REJECT_MALFORMED);

        uint8_t *p = NULL;
        rv = chan_open_inplace(&b, 0, bad, fn, &p, &pn, &e);
        CHECK(rv != 0);
        CHECK(p == NULL);
        CHECK_EQ_INT(rejected_total(&b), before + 2);
    }
    /* A refused frame changes no state: the genuine one still opens. */
    CHECK_EQ_INT(open_pattern(&b, 0, 9, frame, fn), 0);
    CHECK(rejected(&b, CHAN_REJECT_AUTH) > 0);
    CHECK_EQ_INT(rejected(&b, CHAN_REJECT_MALFORMED), 16);
}

TEST(every_truncation_and_extension)
{
    struct chan_session a, b;
    uint8_t frame[32 + CHAN_OVERHEAD + 1], plain[64];
    struct im_err e;
    size_t fn;

    REQUIRE(pair(&a, &b) == 0);
    fn = seal_pattern(&a, 0, 1, 32, frame, sizeof frame);
    REQUIRE(fn == 32 + CHAN_OVERHEAD);
    for (size_t len = 0; len < fn; len++) {
        size_t pn = sizeof plain;
        memset(plain, 0x5a, sizeof plain);
        CHECK(chan_open(&b, 0, frame, len, plain, &pn, &e) != 0);
        CHECK(all_bytes(plain, sizeof plain, 0x5a));
        CHECK_EQ_INT(b.rx.rx_last_reject, len < CHAN_OVERHEAD
                                              ? CHAN_REJECT_MALFORMED
                                              : CHAN_REJECT_AUTH);
    }
    CHECK_EQ_INT(rejected(&b, CHAN_REJECT_MALFORMED), CHAN_OVERHEAD);
    CHECK_EQ_INT(rejected(&b, CHAN_REJECT_AUTH), fn - CHAN_OVERHEAD);
    frame[fn] = 0;
    CHECK(chan_open(&b, 0, frame, fn + 1, plain, &(size_t){sizeof plain}, &e) ==
          IM_EAUTH);
    CHECK_EQ_INT(open_pattern(&b, 0, 1, frame, fn), 0);
}

TEST(replay_is_refused)
{
    struct chan_session a, b;
    uint8_t frame[64], plain[64];
    size_t fn, pn = sizeof plain;
    struct im_err e;

    REQUIRE(pair(&a, &b) == 0);
    fn = seal_pattern(&a, 0, 1, 8, frame, sizeof frame);
    REQUIRE(open_pattern(&b, 0, 1, frame, fn) == 0);
    memset(plain, 0x77, sizeof plain);
    CHECK_EQ_INT(chan_open(&b, 0, frame, fn, plain, &pn, &e), IM_EREPLAY);
    CHECK(all_bytes(plain, sizeof plain, 0x77));
    CHECK_EQ_INT(b.rx.rx_last_reject, CHAN_REJECT_REPLAY);
    CHECK_EQ_INT(rejected(&b, CHAN_REJECT_REPLAY), 1);
    CHECK(strstr(e.msg, "replayed") != NULL);
    uint8_t *p;
    CHECK_EQ_INT(chan_open_inplace(&b, 0, frame, fn, &p, &pn, &e), IM_EREPLAY);
    CHECK_EQ_INT(rejected(&b, CHAN_REJECT_REPLAY), 2);
}

/* Frames 0..N-1; the last arrives first. Everything within the window of it
 * is accepted once, in any order; the frame just past the edge is "old". */
TEST(reordering_within_the_window)
{
    enum { N = CHAN_REPLAY_WINDOW + 76 };
    static uint8_t frames[N][8 + CHAN_OVERHEAD];
    static int order[N];
    struct chan_session a, b;
    uint64_t seed = test_seed_;
    size_t fn = 0;

    REQUIRE(pair(&a, &b) == 0);
    for (int i = 0; i < N; i++)
        fn = seal_pattern(&a, 0, (uint8_t)i, 8, frames[i], sizeof frames[i]);
    REQUIRE(fn == sizeof frames[0]);
    CHECK_EQ_INT(open_pattern(&b, 0, (uint8_t)(N - 1), frames[N - 1], fn), 0);
    /* top = N: the window is [N - WINDOW, N). */
    CHECK_EQ_INT(open_pattern(&b, 0, (uint8_t)(N - CHAN_REPLAY_WINDOW),
                              frames[N - CHAN_REPLAY_WINDOW], fn),
                 0);
    CHECK_EQ_INT(open_pattern(&b, 0, 0, frames[N - CHAN_REPLAY_WINDOW - 1], fn),
                 IM_EREPLAY);
    CHECK_EQ_INT(b.rx.rx_last_reject, CHAN_REJECT_OLD);
    /* The rest of the window in a random order (shuffled by TEST_SEED). */
    int count = 0;
    for (int i = N - CHAN_REPLAY_WINDOW + 1; i < N - 1; i++)
        order[count++] = i;
    for (int i = count - 1; i > 0; i--) {
        int j = (int)(test_rand(&seed) % (uint64_t)(i + 1)), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int i = 0; i < count; i++)
        CHECK_EQ_INT(
            open_pattern(&b, 0, (uint8_t)order[i], frames[order[i]], fn), 0);
    for (int i = 0; i < count; i++)
        CHECK_EQ_INT(
            open_pattern(&b, 0, (uint8_t)order[i], frames[order[i]], fn),
            IM_EREPLAY);
    CHECK_EQ_INT(rejected(&b, CHAN_REJECT_REPLAY), count);
    for (int i = 0; i < N - CHAN_REPLAY_WINDOW; i++)
        CHECK_EQ_INT(open_pattern(&b, 0, (uint8_t)i, frames[i], fn),
                     IM_EREPLAY);
    /* Every counter below the window, plus the edge probe above. */
    CHECK_EQ_INT(rejected(&b, CHAN_REJECT_OLD), N - CHAN_REPLAY_WINDOW + 1);
    /* A big jump ahead (more than a window) clears the bitmap correctly. */
    for (int i = 0; i < 3000; i++)
        (void)seal_pattern(&a, 0, 1, 8, frames[0], fn);
    fn = seal_pattern(&a, 0, 2, 8, frames[0], fn);
    CHECK_EQ_INT(open_pattern(&b, 0, 2, frames[0], fn), 0);
    CHECK_EQ_INT(open_pattern(&b, 0, 2, frames[0], fn), IM_EREPLAY);
}

/* A frame sent back to its sender fails: each direction has its own key. */
TEST(reflection_is_refused)
{
    struct chan_session a, b;
    uint8_t frame[64];
    size_t fn;

    REQUIRE(pair(&a, &b) == 0);
    fn = seal_pattern(&a, 0, 4, 20, frame, sizeof frame);
    CHECK_EQ_INT(open_pattern(&a, 0, 4, frame, fn), IM_EAUTH);
    CHECK_EQ_INT(rejected(&a, CHAN_REJECT_AUTH), 1);
    CHECK_EQ_INT(open_pattern(&b, 0, 4, frame, fn), 0);
    /* B's counter 0 is now "seen" in B's own window; reflect counter 1 so
     * that only the key can refuse it. */
    (void)seal_pattern(&b, 0, 5, 20, frame, sizeof frame);
    fn = seal_pattern(&b, 0, 5, 20, frame, sizeof frame);
    CHECK_EQ_INT(open_pattern(&b, 0, 5, frame, fn), IM_EAUTH);
    CHECK_EQ_INT(open_pattern(&a, 0, 5, frame, fn), 0);
}

TEST(unpinned_keys_are_refused_on_both_sides)
{
    struct pins only_a = {{key_a.pk}, 1}, only_b = {{key_b.pk}, 1};
    struct chan_session si, sr, sentinel;
    struct hs_run r;

    /* The initiator does not pin the responder (no expectation set). */
    hs_defaults(&r);
    r.expect = NULL;
    r.pins_ini = &only_a;
    memset(&si, 0xee, sizeof si);
    memcpy(&sentinel, &si, sizeof si);
    CHECK_EQ_INT(hs_run(&r, &si, &sr), IM_EUNKNOWNKEY);
    CHECK_EQ_INT(r.reject, CHAN_REJECT_UNPINNED);
    CHECK(strstr(r.e.msg, "peer key not pinned") != NULL);
    CHECK(memcmp(&si, &sentinel, sizeof si) == 0);

    /* The responder does not pin the initiator. */
    hs_defaults(&r);
    r.pins_resp = &only_b;
    memset(&sr, 0xee, sizeof sr);
    memcpy(&sentinel, &sr, sizeof sr);
    CHECK_EQ_INT(hs_run(&r, &si, &sr), IM_EUNKNOWNKEY);
    CHECK_EQ_INT(r.reject, CHAN_REJECT_UNPINNED);
    CHECK(strstr(r.e.msg, "peer key not pinned") != NULL);
    CHECK(strstr(r.e.msg, "initiator") != NULL);
    CHECK(memcmp(&sr, &sentinel, sizeof sr) == 0);
}

TEST(another_cluster_is_refused)
{
    struct chan_session si, sr;
    struct hs_run r;
    uint8_t m1[CHAN_HS_MSG_MAX], m2[CHAN_HS_MSG_MAX], m3[CHAN_HS_MSG_MAX];
    size_t n1 = sizeof m1, n2 = sizeof m2, n3 = sizeof m3;
    struct chan_hs hi, hr;
    struct im_err e;

    hs_defaults(&r);
    r.cluster_resp = cluster_other;
    CHECK_EQ_INT(hs_run(&r, &si, &sr), IM_EDENIED);
    CHECK_EQ_INT(r.reject, CHAN_REJECT_CLUSTER);
    CHECK(strstr(r.e.msg, "cluster mismatch") != NULL);

    /* A responder of the other cluster that skips the check (here: msg1's
     * cluster rewritten to its own) still fails: the cluster is in the
     * transcript. */
    REQUIRE(chan_hs_initiate(&hi, &key_a, cluster, NULL, m1, &n1, &e) == 0);
    memcpy(m1 + 1, cluster_other, CHAN_CLUSTER_ID_BYTES);
    REQUIRE(chan_hs_respond(&hr, &key_b, cluster_other, m1, n1, m2, &n2, &e) ==
            0);
    CHECK_EQ_INT(chan_hs_finish_initiator(&hi, m2, n2, pinned_in, &pins_all, m3,
                                          &n3, &si, &e),
                 IM_EAUTH);
    CHECK_EQ_INT(hi.reject, CHAN_REJECT_AUTH);
    CHECK(strstr(e.msg, "another cluster") != NULL);
}

TEST(impersonation_is_refused)
{
    struct chan_session si, sr;
    struct hs_run r;
    struct im_key forged;

    /* A dials B, C answers (C is pinned: a real cluster member). */
    hs_defaults(&r);
    r.resp = &key_c;
    CHECK_EQ_INT(hs_run(&r, &si, &sr), IM_EUNKNOWNKEY);
    CHECK_EQ_INT(r.reject, CHAN_REJECT_IDENTITY);
    CHECK(strstr(r.e.msg, "unexpected peer identity") != NULL);

    /* C claims B's public key but can only sign with its own secret. */
    memcpy(forged.pk, key_b.pk, KEY_PUB_BYTES);
    memcpy(forged.sk, key_c.sk, KEY_SEC_BYTES);
    hs_defaults(&r);
    r.resp = &forged;
    CHECK_EQ_INT(hs_run(&r, &si, &sr), IM_EBADSIG);
    CHECK_EQ_INT(r.reject, CHAN_REJECT_SIGNATURE);
    CHECK(strstr(r.e.msg, "signature invalid") != NULL);
    CHECK(strstr(r.e.msg, "responder") != NULL);

    /* The same, on the initiator's side: C claims to be A. */
    memcpy(forged.pk, key_a.pk, KEY_PUB_BYTES);
    hs_defaults(&r);
    r.ini = &forged;
    CHECK_EQ_INT(hs_run(&r, &si, &sr), IM_EBADSIG);
    CHECK_EQ_INT(r.reject, CHAN_REJECT_SIGNATURE);
    CHECK(strstr(r.e.msg, "initiator") != NULL);

    /* A handshake looped back to ourselves. */
    hs_defaults(&r);
    r.resp = &key_a;
    r.expect = NULL;
    CHECK_EQ_INT(hs_run(&r, &si, &sr), IM_EUNKNOWNKEY);
    CHECK_EQ_INT(r.reject, CHAN_REJECT_IDENTITY);
    CHECK(strstr(r.e.msg, "our own key") != NULL);
    sodium_memzero(&forged, sizeof forged);
}

TEST(version_and_malformed_handshake_messages)
{
    uint8_t m1[CHAN_HS_MSG_MAX + 1], m2[CHAN_HS_MSG_MAX], m3[CHAN_HS_MSG_MAX];
    size_t n1 = sizeof m1, n2 = sizeof m2;
    struct chan_hs hi, hr;
    struct chan_session s;
    struct im_err e;

    memset(m2, 0, sizeof m2);
    memset(m3, 0, sizeof m3);
    REQUIRE(chan_hs_initiate(&hi, &key_a, cluster, NULL, m1, &n1, &e) == 0);
    m1[0] = 0x21; /* version 2, msg1 */
    CHECK_EQ_INT(chan_hs_respond(&hr, &key_b, cluster, m1, n1, m2, &n2, &e),
                 IM_EPROTO);
    CHECK_EQ_INT(hr.reject, CHAN_REJECT_VERSION);
    CHECK(strstr(e.msg, "version unsupported") != NULL);
    m1[0] = 0x12; /* msg2 where msg1 belongs */
    CHECK_EQ_INT(chan_hs_respond(&hr, &key_b, cluster, m1, n1, m2, &n2, &e),
                 IM_EPROTO);
    CHECK_EQ_INT(hr.reject, CHAN_REJECT_MALFORMED);
    CHECK(strstr(e.msg, "malformed handshake message") != NULL);
    m1[0] = 0x11;
    for (size_t len = 0; len <= CHAN_HS1_BYTES + 1; len++) {
        if (len == CHAN_HS1_BYTES)
            continue;
        n2 = sizeof m2;
        CHECK_EQ_INT(
            chan_hs_respond(&hr, &key_b, cluster, m1, len, m2, &n2, &e),
            IM_EPROTO);
        CHECK(hr.reject == CHAN_REJECT_MALFORMED);
    }
    /* A low-order ephemeral key (the all-zero point). */
    memset(m1 + 1 + CHAN_CLUSTER_ID_BYTES, 0, 32);
    CHECK_EQ_INT(
        chan_hs_respond(&hr, &key_b, cluster, m1, CHAN_HS1_BYTES, m2, &n2, &e),
        IM_EPROTO);
    CHECK(strstr(e.msg, "low-order") != NULL);
    /* Steps out of order. */
    CHECK_EQ_INT(chan_hs_finish_responder(&hi, m3, CHAN_HS3_BYTES, pinned_in,
                                          &pins_all, &s, &e),
                 IM_ESTATE);
    CHECK_EQ_INT(chan_hs_finish_initiator(&hr, m2, CHAN_HS2_BYTES, pinned_in,
                                          &pins_all, m3, &n2, &s, &e),
                 IM_ESTATE);
    /* Buffers too small are refused without writing. */
    n1 = CHAN_HS1_BYTES - 1;
    CHECK_EQ_INT(chan_hs_initiate(&hi, &key_a, cluster, NULL, m1, &n1, &e),
                 IM_ETOOBIG);
    CHECK_EQ_INT(n1, CHAN_HS1_BYTES - 1);
}

/* Every bit flip of msg1, msg2 and msg3 makes the handshake fail, with a
 * reason and a message, and never establishes a session. msg2 and msg3 are
 * replayed against a copy of the waiting state, so one honest exchange
 * serves all flips; the unflipped message then succeeds, which shows the
 * copies were live. */
TEST(every_bit_flip_of_each_handshake_message)
{
    uint8_t m1[CHAN_HS_MSG_MAX], m2[CHAN_HS_MSG_MAX], m3[CHAN_HS_MSG_MAX];
    uint8_t bad[CHAN_HS_MSG_MAX], out2[CHAN_HS_MSG_MAX], out3[CHAN_HS_MSG_MAX];
    size_t n1 = sizeof m1, n2 = sizeof m2, n3 = sizeof m3, k;
    struct chan_hs hi, hr, hi_saved, hr_saved, h2, h3;
    struct chan_session si, sr;
    int reasons[CHAN_REJECT_COUNT] = {0};
    struct im_err e;

    REQUIRE(chan_hs_initiate(&hi, &key_a, cluster, key_b.pk, m1, &n1, &e) == 0);
    hi_saved = hi;
    for (size_t bit = 0; bit < n1 * 8; bit++) {
        memcpy(bad, m1, n1);
        bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        hi = hi_saved;
        k = sizeof out2;
        int rv = chan_hs_respond(&h2, &key_b, cluster, bad, n1, out2, &k, &e);
        if (rv != 0) {
            CHECK(h2.reject >= 0 && h2.reject < CHAN_REJECT_COUNT);
            reasons[h2.reject]++;
            continue;
        }
        /* A flipped ephemeral key or nonce passes the responder, but the
         * initiator's transcript (and DH) no longer match. */
        size_t k3 = sizeof out3;
        rv = chan_hs_finish_initiator(&hi, out2, k, pinned_in, &pins_all, out3,
                                      &k3, &si, &e);
        CHECK_EQ_INT(rv, IM_EAUTH);
        CHECK(e.msg[0] != '\0');
        reasons[hi.reject]++;
        chan_hs_wipe(&h2);
    }
    CHECK(reasons[CHAN_REJECT_CLUSTER] == 32 * 8);
    CHECK(reasons[CHAN_REJECT_VERSION] == 4);
    CHECK(reasons[CHAN_REJECT_MALFORMED] >= 4);
    CHECK(reasons[CHAN_REJECT_AUTH] >= 64 * 8 - 8);

    hi = hi_saved;
    REQUIRE(chan_hs_respond(&hr, &key_b, cluster, m1, n1, m2, &n2, &e) == 0);
    hr_saved = hr;
    for (size_t bit = 0; bit < n2 * 8; bit++) {
        memcpy(bad, m2, n2);
        bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        h2 = hi_saved;
        k = sizeof out3;
        memset(out3, 0xcc, sizeof out3);
        CHECK(chan_hs_finish_initiator(&h2, bad, n2, pinned_in, &pins_all, out3,
                                       &k, &si, &e) != 0);
        CHECK(h2.reject == CHAN_REJECT_AUTH ||
              h2.reject == CHAN_REJECT_MALFORMED ||
              h2.reject == CHAN_REJECT_VERSION);
        CHECK(bit / 8 == 0 || h2.reject == CHAN_REJECT_AUTH ||
              h2.reject == CHAN_REJECT_MALFORMED);
        CHECK(all_bytes(out3, sizeof out3, 0xcc));
        CHECK_EQ_INT(k, sizeof out3);
    }
    hi = hi_saved;
    REQUIRE(chan_hs_finish_initiator(&hi, m2, n2, pinned_in, &pins_all, m3, &n3,
                                     &si, &e) == 0);

    for (size_t bit = 0; bit < n3 * 8; bit++) {
        memcpy(bad, m3, n3);
        bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        h3 = hr_saved;
        CHECK(chan_hs_finish_responder(&h3, bad, n3, pinned_in, &pins_all, &sr,
                                       &e) != 0);
        CHECK(bit / 8 == 0 || h3.reject == CHAN_REJECT_AUTH);
    }
    hr = hr_saved;
    REQUIRE(chan_hs_finish_responder(&hr, m3, n3, pinned_in, &pins_all, &sr,
                                     &e) == 0);
    CHECK(memcmp(si.tx.tx_key, sr.rx.rx_key, CHAN_KEY_BYTES) == 0);
    sodium_memzero(&hi_saved, sizeof hi_saved);
    sodium_memzero(&hr_saved, sizeof hr_saved);
}

TEST(rekey_by_frame_count)
{
    static uint8_t first[8 + CHAN_OVERHEAD], last_old[8 + CHAN_OVERHEAD];
    uint8_t frame[8 + CHAN_OVERHEAD];
    uint8_t key0[CHAN_KEY_BYTES];
    struct chan_session a, b;
    size_t fn = 0;

    REQUIRE(pair(&a, &b) == 0);
    memcpy(key0, a.tx.tx_key, sizeof key0);
    for (uint32_t i = 0; i < CHAN_REKEY_FRAMES + 2000; i++) {
        fn = seal_pattern(&a, 0, (uint8_t)i, 8, frame, sizeof frame);
        REQUIRE(fn == sizeof frame);
        if (i == 0)
            memcpy(first, frame, fn);
        if (i == CHAN_REKEY_FRAMES - 1) {
            /* The last frame of epoch 0: delivered late, below. */
            memcpy(last_old, frame, fn);
            CHECK_EQ_INT(a.tx.tx_epoch, 0);
            continue;
        }
        if (i == CHAN_REKEY_FRAMES) {
            CHECK_EQ_INT(a.tx.tx_epoch, 1);
            CHECK(memcmp(a.tx.tx_key, key0, sizeof key0) != 0);
        }
        REQUIRE(open_pattern(&b, 0, (uint8_t)i, frame, fn) == 0);
        if (i == CHAN_REKEY_FRAMES) {
            CHECK_EQ_INT(b.rx.rx_epoch, 1);
            CHECK(b.rx.rx_prev_valid);
            /* The straggler of epoch 0 still opens, once. */
            CHECK_EQ_INT(open_pattern(&b, 0, (uint8_t)(i - 1), last_old, fn),
                         0);
            CHECK_EQ_INT(open_pattern(&b, 0, (uint8_t)(i - 1), last_old, fn),
                         IM_EREPLAY);
            CHECK_EQ_INT(b.rx.rx_last_reject, CHAN_REJECT_REPLAY);
        }
    }
    /* The window has moved past the epoch's start: the old key is gone. */
    CHECK(!b.rx.rx_prev_valid);
    CHECK(all_bytes(b.rx.rx_prev_key, CHAN_KEY_BYTES, 0));
    CHECK_EQ_INT(open_pattern(&b, 0, 0, first, fn), IM_EREPLAY);
    CHECK_EQ_INT(b.rx.rx_last_reject, CHAN_REJECT_EPOCH);
    CHECK_EQ_INT(
        open_pattern(&b, 0, (uint8_t)(CHAN_REKEY_FRAMES - 1), last_old, fn),
        IM_EREPLAY);
    CHECK_EQ_INT(b.rx.rx_last_reject, CHAN_REJECT_EPOCH);
    /* Traffic the other way was never rekeyed by it. */
    CHECK_EQ_INT(b.tx.tx_epoch, 0);
    fn = seal_pattern(&b, 0, 1, 8, frame, sizeof frame);
    CHECK_EQ_INT(open_pattern(&a, 0, 1, frame, fn), 0);
}

TEST(rekey_by_time)
{
    uint8_t f[6][8 + CHAN_OVERHEAD];
    struct chan_session a, b;
    size_t fn;
    const uint64_t t0 = 1700000000000ULL;

    REQUIRE(pair(&a, &b) == 0);
    fn = seal_pattern(&a, t0, 0, 8, f[0], sizeof f[0]);
    (void)seal_pattern(&a, t0 + CHAN_REKEY_MS - 1, 1, 8, f[1], sizeof f[1]);
    CHECK_EQ_INT(a.tx.tx_epoch, 0);
    (void)seal_pattern(&a, t0 + CHAN_REKEY_MS, 2, 8, f[2], sizeof f[2]);
    CHECK_EQ_INT(a.tx.tx_epoch, 1);
    (void)seal_pattern(&a, t0 + CHAN_REKEY_MS + 1, 3, 8, f[3], sizeof f[3]);
    CHECK_EQ_INT(a.tx.tx_epoch, 1);
    /* A clock that steps back does not rekey (nor break anything). */
    (void)seal_pattern(&a, t0, 4, 8, f[4], sizeof f[4]);
    CHECK_EQ_INT(a.tx.tx_epoch, 1);

    uint64_t now = t0 + CHAN_REKEY_MS + 10;
    CHECK_EQ_INT(open_pattern(&b, now, 0, f[0], fn), 0);
    CHECK_EQ_INT(open_pattern(&b, now, 2, f[2], fn), 0); /* follows to 1 */
    CHECK_EQ_INT(b.rx.rx_epoch, 1);
    CHECK_EQ_INT(open_pattern(&b, now, 1, f[1], fn), 0); /* straggler */
    CHECK_EQ_INT(open_pattern(&b, now, 0, f[0], fn), IM_EREPLAY);
    CHECK_EQ_INT(b.rx.rx_last_reject, CHAN_REJECT_REPLAY);
    CHECK(b.rx.rx_prev_valid);
    /* Past the grace period the previous epoch's key is wiped. */
    now += CHAN_PREV_KEY_MS;
    CHECK_EQ_INT(open_pattern(&b, now, 1, f[1], fn), IM_EREPLAY);
    CHECK_EQ_INT(b.rx.rx_last_reject, CHAN_REJECT_EPOCH);
    CHECK(!b.rx.rx_prev_valid);
    CHECK(all_bytes(b.rx.rx_prev_key, CHAN_KEY_BYTES, 0));
    CHECK_EQ_INT(open_pattern(&b, now, 3, f[3], fn), 0);
    CHECK_EQ_INT(open_pattern(&b, now, 4, f[4], fn), 0);
    CHECK_EQ_INT(rejected(&b, CHAN_REJECT_EPOCH), 1);

    /* Frames of several epochs lost: the receiver follows, up to
     * CHAN_EPOCH_SKIP_MAX at once. */
    uint64_t t = now;
    for (int i = 0; i < CHAN_EPOCH_SKIP_MAX; i++) {
        t += CHAN_REKEY_MS;
        fn = seal_pattern(&a, t, 5, 8, f[5], sizeof f[5]);
    }
    CHECK_EQ_INT(a.tx.tx_epoch, 1 + CHAN_EPOCH_SKIP_MAX);
    CHECK_EQ_INT(open_pattern(&b, t, 5, f[5], fn), 0);
    CHECK_EQ_INT(b.rx.rx_epoch, 1 + CHAN_EPOCH_SKIP_MAX);
    for (int i = 0; i < CHAN_EPOCH_SKIP_MAX + 1; i++) {
        t += CHAN_REKEY_MS;
        fn = seal_pattern(&a, t, 5, 8, f[5], sizeof f[5]);
    }
    CHECK_EQ_INT(open_pattern(&b, t, 5, f[5], fn), IM_EPROTO);
    CHECK_EQ_INT(b.rx.rx_last_reject, CHAN_REJECT_EPOCH);
}

/* A forged frame that claims the next epoch costs a ratchet step and is
 * refused without moving the receiver. */
TEST(forged_next_epoch_changes_nothing)
{
    uint8_t frame[8 + CHAN_OVERHEAD], key[CHAN_KEY_BYTES];
    struct chan_session a, b;
    size_t fn;

    REQUIRE(pair(&a, &b) == 0);
    fn = seal_pattern(&a, 0, 1, 8, frame, sizeof frame);
    frame[4] ^= 1; /* epoch 0 -> 1 */
    memcpy(key, b.rx.rx_key, sizeof key);
    CHECK_EQ_INT(open_pattern(&b, 0, 1, frame, fn), IM_EAUTH);
    CHECK_EQ_INT(b.rx.rx_epoch, 0);
    CHECK(!b.rx.rx_prev_valid);
    CHECK(memcmp(key, b.rx.rx_key, sizeof key) == 0);
    frame[4] ^= 1;
    CHECK_EQ_INT(open_pattern(&b, 0, 1, frame, fn), 0);
}

/* Fresh ephemerals: two sessions between the same peers share no key, and
 * a frame of one is refused by the other. */
TEST(sessions_have_fresh_keys)
{
    struct chan_session a1, b1, a2, b2;
    uint8_t frame[64];
    size_t fn;

    REQUIRE(pair(&a1, &b1) == 0);
    REQUIRE(pair(&a2, &b2) == 0);
    CHECK(memcmp(a1.tx.tx_key, a2.tx.tx_key, CHAN_KEY_BYTES) != 0);
    CHECK(memcmp(a1.rx.rx_key, a2.rx.rx_key, CHAN_KEY_BYTES) != 0);
    CHECK(memcmp(a1.session_id, a2.session_id, CHAN_SESSION_ID_BYTES) != 0);
    fn = seal_pattern(&a1, 0, 1, 16, frame, sizeof frame);
    CHECK_EQ_INT(open_pattern(&b2, 0, 1, frame, fn), IM_EAUTH);
    CHECK_EQ_INT(open_pattern(&b1, 0, 1, frame, fn), 0);
}

TEST(in_place_variants)
{
    struct chan_session a, b;
    uint8_t buf[100 + CHAN_OVERHEAD], copy[sizeof buf], plain[100];
    uint8_t *p = NULL;
    size_t pn = 0, fn;
    struct im_err e;

    REQUIRE(pair(&a, &b) == 0);
    for (int i = 0; i < 100; i++)
        buf[CHAN_HEADER_BYTES + i] = (uint8_t)i;
    REQUIRE(chan_seal_inplace(&a, 0, buf, sizeof buf, &e) == 0);
    for (int i = 0; i < 100; i++)
        plain[i] = (uint8_t)i;
    CHECK(memcmp(buf + CHAN_HEADER_BYTES, plain, 100) != 0);
    memcpy(copy, buf, sizeof buf);
    REQUIRE(chan_open_inplace(&b, 0, buf, sizeof buf, &p, &pn, &e) == 0);
    CHECK(p == buf + CHAN_HEADER_BYTES);
    CHECK_EQ_INT(pn, 100);
    CHECK(memcmp(p, plain, 100) == 0);
    /* The copy opens the same frame: a replay now. */
    pn = sizeof plain;
    CHECK_EQ_INT(chan_open(&b, 0, copy, sizeof copy, plain, &pn, &e),
                 IM_EREPLAY);

    fn = sizeof buf;
    REQUIRE(chan_seal(&b, 0, plain, 100, buf, &fn, &e) == 0);
    REQUIRE(chan_open_inplace(&a, 0, buf, fn, &p, &pn, &e) == 0);
    CHECK(memcmp(p, plain, 100) == 0);

    /* Failing in-place seals leave the buffer as it was. */
    memset(buf, 0x3c, sizeof buf);
    CHECK_EQ_INT(chan_seal_inplace(&a, 0, buf, CHAN_OVERHEAD - 1, &e),
                 IM_EINVAL);
    chan_session_wipe(&a);
    CHECK_EQ_INT(chan_seal_inplace(&a, 0, buf, sizeof buf, &e), IM_ECLOSED);
    CHECK(all_bytes(buf, sizeof buf, 0x3c));
}

TEST(limits_and_buffers)
{
    struct chan_session a, b;
    uint8_t *big, *frame, small[64], plain[8];
    size_t fn, pn;
    struct im_err e;

    REQUIRE(pair(&a, &b) == 0);
    big = malloc(CHAN_PLAIN_MAX + 1);
    frame = malloc(CHAN_FRAME_MAX + 1);
    REQUIRE(big != NULL && frame != NULL);
    memset(big, 0x42, CHAN_PLAIN_MAX + 1);

    fn = CHAN_FRAME_MAX + 1;
    CHECK_EQ_INT(chan_seal(&a, 0, big, CHAN_PLAIN_MAX + 1, frame, &fn, &e),
                 IM_ETOOBIG);
    CHECK(strstr(e.msg, "CHAN_PLAIN_MAX") != NULL);
    CHECK_EQ_INT(a.tx.tx_counter, 0);
    fn = CHAN_FRAME_MAX - 1;
    CHECK_EQ_INT(chan_seal(&a, 0, big, CHAN_PLAIN_MAX, frame, &fn, &e),
                 IM_ETOOBIG);
    CHECK_EQ_INT(a.tx.tx_counter, 0);
    /* The largest frame goes through. */
    fn = CHAN_FRAME_MAX;
    REQUIRE(chan_seal(&a, 0, big, CHAN_PLAIN_MAX, frame, &fn, &e) == 0);
    CHECK_EQ_INT(fn, CHAN_FRAME_MAX);
    /* A plain buffer too small is the caller's: not counted, frame kept. */
    pn = sizeof plain;
    memset(plain, 0x11, sizeof plain);
    CHECK_EQ_INT(chan_open(&b, 0, frame, fn, plain, &pn, &e), IM_ETOOBIG);
    CHECK(all_bytes(plain, sizeof plain, 0x11));
    CHECK_EQ_INT(rejected_total(&b), 0);
    memset(big, 0, CHAN_PLAIN_MAX);
    pn = CHAN_PLAIN_MAX + 1;
    REQUIRE(chan_open(&b, 0, frame, fn, big, &pn, &e) == 0);
    CHECK_EQ_INT(pn, CHAN_PLAIN_MAX);
    CHECK(all_bytes(big, CHAN_PLAIN_MAX, 0x42));
    /* One byte over the frame limit is malformed, before any crypto. */
    frame[CHAN_FRAME_MAX] = 0;
    pn = CHAN_PLAIN_MAX + 1;
    CHECK_EQ_INT(chan_open(&b, 0, frame, CHAN_FRAME_MAX + 1, big, &pn, &e),
                 IM_EPROTO);
    CHECK_EQ_INT(b.rx.rx_last_reject, CHAN_REJECT_MALFORMED);
    free(big);
    free(frame);

    /* A zero-length payload, into a NULL buffer of capacity 0. */
    fn = sizeof small;
    REQUIRE(chan_seal(&a, 0, NULL, 0, small, &fn, &e) == 0);
    pn = 0;
    CHECK_EQ_INT(chan_open(&b, 0, small, fn, NULL, &pn, &e), 0);
    CHECK_EQ_INT(pn, 0);

    /* Counter exhaustion: the last usable counter, then a new handshake. */
    a.tx.tx_counter = UINT64_MAX - 1;
    fn = seal_pattern(&a, 0, 1, 8, small, sizeof small);
    REQUIRE(fn != 0);
    CHECK_EQ_INT(open_pattern(&b, 0, 1, small, fn), 0);
    CHECK_EQ_INT(b.rx.rx_top, UINT64_MAX);
    fn = sizeof small;
    CHECK_EQ_INT(chan_seal(&a, 0, plain, 8, small, &fn, &e), IM_ESTATE);
    CHECK(strstr(e.msg, "handshake again") != NULL);

    /* A wiped session refuses both ways. */
    chan_session_wipe(&b);
    CHECK(!b.live);
    CHECK(all_bytes(b.rx.rx_key, CHAN_KEY_BYTES, 0));
    pn = sizeof plain;
    CHECK_EQ_INT(chan_open(&b, 0, small, sizeof small, plain, &pn, &e),
                 IM_ECLOSED);
    fn = sizeof small;
    CHECK_EQ_INT(chan_seal(&b, 0, plain, 8, small, &fn, &e), IM_ECLOSED);
}

TEST(reject_names)
{
    for (int i = 0; i < CHAN_REJECT_COUNT; i++) {
        CHECK(strcmp(chan_reject_name(i), "unknown") != 0);
        for (int j = 0; j < i; j++)
            CHECK(strcmp(chan_reject_name(i), chan_reject_name(j)) != 0);
    }
    CHECK_EQ_STR(chan_reject_name(CHAN_REJECT_AUTH), "auth");
    CHECK_EQ_STR(chan_reject_name(CHAN_REJECT_UNPINNED), "unpinned");
    CHECK_EQ_STR(chan_reject_name(-1), "unknown");
    CHECK_EQ_STR(chan_reject_name(CHAN_REJECT_COUNT), "unknown");
    CHECK_EQ_STR(im_errname(IM_EAUTH), "IM_EAUTH");
    CHECK_EQ_STR(im_errname(IM_EREPLAY), "IM_EREPLAY");
}

/* One thread seals on a session while another opens on it and a third reads
 * its stats: the documented concurrency, checked by TSan. */
enum { THREAD_FRAMES = 3000 };
static uint8_t thread_in[THREAD_FRAMES][32 + CHAN_OVERHEAD];
static uint8_t thread_out[THREAD_FRAMES][32 + CHAN_OVERHEAD];
static int seal_fail, open_fail; /* each written by one thread */

static void *
sealer(void *arg)
{
    struct chan_session *s = arg;
    for (int i = 0; i < THREAD_FRAMES; i++)
        if (seal_pattern(s, (uint64_t)i * 100, (uint8_t)i, 32, thread_out[i],
                         sizeof thread_out[i]) == 0)
            seal_fail = 1;
    return NULL;
}

static void *
opener(void *arg)
{
    struct chan_session *s = arg;
    for (int i = 0; i < THREAD_FRAMES; i++)
        if (open_pattern(s, (uint64_t)i * 100, (uint8_t)i, thread_in[i],
                         sizeof thread_in[i]) != 0)
            open_fail = 1;
    return NULL;
}

TEST(seal_and_open_on_two_threads)
{
    struct chan_session a, b;
    struct chan_stats st;
    pthread_t t1, t2;

    REQUIRE(pair(&a, &b) == 0);
    for (int i = 0; i < THREAD_FRAMES; i++)
        REQUIRE(seal_pattern(&b, (uint64_t)i * 100, (uint8_t)i, 32,
                             thread_in[i], sizeof thread_in[i]) != 0);
    seal_fail = open_fail = 0;
    REQUIRE(pthread_create(&t1, NULL, sealer, &a) == 0);
    REQUIRE(pthread_create(&t2, NULL, opener, &a) == 0);
    uint64_t seen = 0;
    for (int i = 0; i < 1000; i++) {
        chan_stats_get(&a, &st);
        CHECK(st.frames_in >= seen);
        seen = st.frames_in;
    }
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    CHECK_EQ_INT(seal_fail, 0);
    CHECK_EQ_INT(open_fail, 0);
    chan_stats_get(&a, &st);
    CHECK_EQ_INT(st.frames_out, THREAD_FRAMES);
    CHECK_EQ_INT(st.frames_in, THREAD_FRAMES);
    CHECK_EQ_INT(rejected_total(&a), 0);
    /* Both directions crossed a time rekey (100 ms apart, 3000 frames). */
    CHECK(a.tx.tx_epoch >= 4);
    CHECK(a.rx.rx_epoch >= 4);
    for (int i = 0; i < THREAD_FRAMES; i++)
        CHECK_EQ_INT(open_pattern(&b, (uint64_t)i * 100, (uint8_t)i,
                                  thread_out[i], sizeof thread_out[i]),
                     0);
}

static void
setup(void)
{
    if (keys_init() != 0)
        abort();
    key_generate(&key_a);
    key_generate(&key_b);
    key_generate(&key_c);
    memcpy(cluster, "incident-mesh-test-cluster-one..", 32);
    memcpy(cluster_other, "incident-mesh-test-cluster-two..", 32);
    pins_all.pk[0] = key_a.pk;
    pins_all.pk[1] = key_b.pk;
    pins_all.pk[2] = key_c.pk;
    pins_all.count = 3;
}

TEST_MAIN(setup(); RUN(handshake_and_traffic);
          RUN(wire_layout_matches_the_document); RUN(every_bit_flip_of_a_frame);
          RUN(every_truncation_and_extension); RUN(replay_is_refused);
          RUN(reordering_within_the_window); RUN(reflection_is_refused);
          RUN(unpinned_keys_are_refused_on_both_sides);
          RUN(another_cluster_is_refused); RUN(impersonation_is_refused);
          RUN(version_and_malformed_handshake_messages);
          RUN(every_bit_flip_of_each_handshake_message);
          RUN(rekey_by_frame_count); RUN(rekey_by_time);
          RUN(forged_next_epoch_changes_nothing); RUN(sessions_have_fresh_keys);
          RUN(in_place_variants); RUN(limits_and_buffers); RUN(reject_names);
          RUN(seal_and_open_on_two_threads))
