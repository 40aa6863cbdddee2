/* keys: long-term Ed25519 identities (sites, coordinators, operators) and
 * their file and text forms.
 *
 * Secret key file: one line "IM-ED25519-SECRET-V1 <base64 32-byte seed>",
 * mode 0600, created exclusively (never overwrites). A key file readable by
 * group or others is refused, as ssh does.
 * Public key text: "ed25519:<base64url, no padding>" (51 bytes). */
#ifndef IM_KEYS_H
#define IM_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define KEY_PUB_BYTES 32
#define KEY_SEC_BYTES 64
#define KEY_SIG_BYTES 64
#define KEY_PUB_TEXT_MAX 64

/* Domain-separation labels: a signature made for one purpose is never valid
 * for another. */
#define KEY_CTX_REQUEST "im-req-v1"
#define KEY_CTX_CHECKPOINT "im-ckpt-v1"
#define KEY_CTX_CHAN "im-chan-v1" /* secure-channel handshake transcripts */

struct im_key {
    uint8_t pk[KEY_PUB_BYTES];
    uint8_t sk[KEY_SEC_BYTES];
};

/* Must be called once before any other function here (sodium_init). */
int keys_init(void);

/* A fresh random identity. */
int key_generate(struct im_key *k);

/* Writes k's seed to path with mode 0600; IM_EEXIST if path exists. */
int key_save(const struct im_key *k, const char *path, struct im_err *e);

/* Reads a secret key file written by key_save. */
int key_load(struct im_key *k, const char *path, struct im_err *e);

/* "ed25519:..." for pk. out holds KEY_PUB_TEXT_MAX bytes. */
void key_pub_encode(const uint8_t pk[KEY_PUB_BYTES], char out[KEY_PUB_TEXT_MAX]);

/* Parses the text form; IM_EINVAL if it is not one. */
int key_pub_decode(const char *text, uint8_t pk[KEY_PUB_BYTES]);

/* Signs ctx || msg (ctx is a domain-separation label such as "im-req-v1",
 * so that a signature made for one purpose is never valid for another). */
void key_sign(const struct im_key *k, const char *ctx, const uint8_t *msg,
              size_t msg_size, uint8_t sig[KEY_SIG_BYTES]);

/* 0 if sig is pk's signature over ctx || msg, IM_EBADSIG otherwise. */
int key_verify(const uint8_t pk[KEY_PUB_BYTES], const char *ctx,
               const uint8_t *msg, size_t msg_size,
               const uint8_t sig[KEY_SIG_BYTES]);

#endif
