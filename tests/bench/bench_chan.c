/* bench_chan: what the secure channel costs over the bare AEAD.
 *
 * Prints frames/s and MB/s (payload bytes) on one thread for 256-byte and
 * 16 KiB payloads: raw crypto_aead_xchacha20poly1305_ietf encrypt, and
 * encrypt+decrypt, on the same buffers; then chan_seal, chan_seal+chan_open
 * (copying, tag verified before decrypting) and the in-place pair; each with
 * its ratio to the matching raw row. Then full handshakes per second (both
 * ends on this thread).
 *
 *   bench_chan [SECONDS_PER_ROW]     (default 0.5)
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chan.h"

#define PAYLOAD_MAX 16384

static double seconds_per_row = 0.5;

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
pinned_any(void *arg, const uint8_t pk[KEY_PUB_BYTES])
{
    (void)arg;
    (void)pk;
    return 0;
}

static struct im_key key_a, key_b;
static uint8_t cluster[CHAN_CLUSTER_ID_BYTES];

static int
handshake(struct chan_session *a, struct chan_session *b)
{
    uint8_t m1[CHAN_HS_MSG_MAX], m2[CHAN_HS_MSG_MAX], m3[CHAN_HS_MSG_MAX];
    size_t n1 = sizeof m1, n2 = sizeof m2, n3 = sizeof m3;
    struct chan_hs hi, hr;
    struct im_err e;

    if (chan_hs_initiate(&hi, &key_a, cluster, key_b.pk, m1, &n1, &e) != 0 ||
        chan_hs_respond(&hr, &key_b, cluster, m1, n1, m2, &n2, &e) != 0 ||
        chan_hs_finish_initiator(&hi, m2, n2, pinned_any, NULL, m3, &n3, a,
                                 &e) != 0 ||
        chan_hs_finish_responder(&hr, m3, n3, pinned_any, NULL, b, &e) != 0) {
        fprintf(stderr, "bench_chan: handshake: %s\n", im_errmsg(&e));
        return -1;
    }
    return 0;
}

enum mode {
    RAW_ENC,
    RAW_ENC_DEC,
    CHAN_SEAL,
    CHAN_SEAL_OPEN,
    CHAN_INPLACE,
    MODES
};

static const char *const mode_names[MODES] = {
    "raw xchacha encrypt", "raw encrypt+decrypt", "chan_seal",
    "chan_seal+chan_open", "seal+open in place",
};

/* Runs one mode for seconds_per_row; returns frames per second. */
static double
run(enum mode m, size_t size, struct chan_session *a, struct chan_session *b)
{
    static uint8_t plain[PAYLOAD_MAX], frame[PAYLOAD_MAX + CHAN_OVERHEAD],
        back[PAYLOAD_MAX];
    uint8_t key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
    uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES] = {0};
    uint64_t frames = 0, counter = 0, now_ms = 0;
    double start = now_s(), end = start;
    struct im_err e;
    int rv = 0;

    randombytes_buf(plain, sizeof plain);
    crypto_aead_xchacha20poly1305_ietf_keygen(key);
    while (end - start < seconds_per_row) {
        for (int i = 0; i < 256 && rv == 0; i++, frames++) {
            size_t fn = sizeof frame, pn = sizeof back;
            uint8_t *p;
            switch (m) {
            case RAW_ENC:
            case RAW_ENC_DEC:
                /* The same header-sized AD and counter nonce as a frame. */
                memcpy(nonce + 4, &counter, sizeof counter);
                counter++;
                crypto_aead_xchacha20poly1305_ietf_encrypt_detached(
                    frame + CHAN_HEADER_BYTES, frame + CHAN_HEADER_BYTES + size,
                    NULL, plain, size, frame, CHAN_HEADER_BYTES, NULL, nonce,
                    key);
                if (m == RAW_ENC_DEC)
                    rv = crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
                        back, NULL, frame + CHAN_HEADER_BYTES, size,
                        frame + CHAN_HEADER_BYTES + size, frame,
                        CHAN_HEADER_BYTES, nonce, key);
                break;
            case CHAN_SEAL:
                rv = chan_seal(a, now_ms, plain, size, frame, &fn, &e);
                break;
            case CHAN_SEAL_OPEN:
                rv = chan_seal(a, now_ms, plain, size, frame, &fn, &e);
                if (rv == 0)
                    rv = chan_open(b, now_ms, frame, fn, back, &pn, &e);
                break;
            case CHAN_INPLACE:
                rv = chan_seal_inplace(a, now_ms, frame, size + CHAN_OVERHEAD,
                                       &e);
                if (rv == 0)
                    rv = chan_open_inplace(b, now_ms, frame,
                                           size + CHAN_OVERHEAD, &p, &pn, &e);
                break;
            case MODES: abort();
            }
        }
        if (rv != 0) {
            fprintf(stderr, "bench_chan: %s failed: %s\n", mode_names[m],
                    im_errmsg(&e));
            exit(1);
        }
        end = now_s();
    }
    sodium_memzero(key, sizeof key);
    return (double)frames / (end - start);
}

int
main(int argc, char **argv)
{
    static const size_t sizes[] = {256, PAYLOAD_MAX};
    struct chan_session a, b;
    double rate[MODES];

    if (argc > 2 || (argc == 2 && (seconds_per_row = atof(argv[1])) <= 0)) {
        fprintf(stderr, "usage: bench_chan [SECONDS_PER_ROW]\n");
        return 2;
    }
    if (keys_init() != 0)
        return 1;
    key_generate(&key_a);
    key_generate(&key_b);
    randombytes_buf(cluster, sizeof cluster);

    printf("%-22s %8s %12s %10s %8s\n", "one thread", "payload", "frames/s",
           "MB/s", "vs raw");
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        for (int m = 0; m < MODES; m++) {
            /* A fresh pair per row: a seal-only row leaves the receiver
             * epochs behind. */
            if (handshake(&a, &b) != 0)
                return 1;
            rate[m] = run((enum mode)m, sizes[i], &a, &b);
            printf("%-22s %8zu %12.0f %10.1f", mode_names[m], sizes[i], rate[m],
                   rate[m] * (double)sizes[i] / 1e6);
            if (m >= CHAN_SEAL) /* against the raw row doing the same */
                printf(" %7.2fx",
                       rate[m] / (m == CHAN_SEAL ? rate[RAW_ENC]
                                                 : rate[RAW_ENC_DEC]));
            printf("\n");
        }
    }

    double start = now_s(), end = start;
    uint64_t count = 0;
    struct chan_session x, y;
    while (end - start < seconds_per_row) {
        if (handshake(&x, &y) != 0)
            return 1;
        count++;
        end = now_s();
    }
    printf("%-22s %8s %12.0f   (both ends on one thread)\n", "handshakes", "-",
           (double)count / (end - start));
    chan_session_wipe(&a);
    chan_session_wipe(&b);
    chan_session_wipe(&x);
    chan_session_wipe(&y);
    return 0;
}
