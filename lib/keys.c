/* keys: see keys.h. */
#include "keys.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_FILE_MAGIC "IM-ED25519-SECRET-V1"
#define KEY_PUB_PREFIX "ed25519:"

/* Domain labels are short constants; bounded so signing never allocates. */
#define KEY_CTX_MAX 32

int
keys_init(void)
{
    return sodium_init() < 0 ? IM_ECRYPTO : 0;
}

int
key_generate(struct im_key *k)
{
    crypto_sign_keypair(k->pk, k->sk);
    return 0;
}

int
key_save(const struct im_key *k, const char *path, struct im_err *e)
{
    char b64[sodium_base64_ENCODED_LEN(crypto_sign_SEEDBYTES,
                                       sodium_base64_VARIANT_ORIGINAL)];
    uint8_t seed[crypto_sign_SEEDBYTES];
    char line[256];
    int fd, n;

    crypto_sign_ed25519_sk_to_seed(seed, k->sk);
    sodium_bin2base64(b64, sizeof b64, seed, sizeof seed,
                      sodium_base64_VARIANT_ORIGINAL);
    sodium_memzero(seed, sizeof seed);
    n = snprintf(line, sizeof line, "%s %s\n", KEY_FILE_MAGIC, b64);
    sodium_memzero(b64, sizeof b64);

    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        int rv = im_from_errno(errno);
        return im_errf(e, rv, "create key file %s: %s", path, strerror(errno));
    }
    if (write(fd, line, (size_t)n) != n || fsync(fd) != 0) {
        int saved = errno;
        close(fd);
        unlink(path);
        sodium_memzero(line, sizeof line);
        return im_errf(e, im_from_errno(saved), "write key file %s: %s", path,
                       strerror(saved));
    }
    sodium_memzero(line, sizeof line);
    close(fd);
    return 0;
}

int
key_load(struct im_key *k, const char *path, struct im_err *e)
{
    char line[256];
    uint8_t seed[crypto_sign_SEEDBYTES];
    size_t seed_size = 0;
    struct stat st;
    FILE *f;
    const char *b64;

    f = fopen(path, "re");
    if (f == NULL)
        return im_errf(e, im_from_errno(errno), "open key file %s: %s", path,
                       strerror(errno));
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077) != 0) {
        fclose(f);
        return im_errf(e, IM_EDENIED,
                       "key file %s is readable by others (mode %03o); "
                       "chmod 600 it",
                       path, (unsigned)(st.st_mode & 0777));
    }
    if (fgets(line, sizeof line, f) == NULL) {
        /* A read error (a directory: EISDIR) is not an empty file. */
        int saved = ferror(f) ? errno : 0;
        fclose(f);
        if (saved != 0)
            return im_errf(e, im_from_errno(saved), "read key file %s: %s",
                           path, strerror(saved));
        return im_errf(e, IM_EINVAL, "key file %s is empty", path);
    }
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    if (strncmp(line, KEY_FILE_MAGIC " ", sizeof KEY_FILE_MAGIC) != 0) {
        sodium_memzero(line, sizeof line);
        return im_errf(e, IM_EINVAL,
                       "key file %s: not an Incident Mesh secret key "
                       "(expected a line starting '%s')",
                       path, KEY_FILE_MAGIC);
    }
    b64 = line + sizeof KEY_FILE_MAGIC;
    if (sodium_base642bin(seed, sizeof seed, b64, strlen(b64), NULL, &seed_size,
                          NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
        seed_size != sizeof seed) {
        sodium_memzero(line, sizeof line);
        return im_errf(e, IM_EINVAL, "key file %s: malformed key", path);
    }
    sodium_memzero(line, sizeof line);
    crypto_sign_seed_keypair(k->pk, k->sk, seed);
    sodium_memzero(seed, sizeof seed);
    return 0;
}

void
key_pub_encode(const uint8_t pk[KEY_PUB_BYTES], char out[KEY_PUB_TEXT_MAX])
{
    size_t prefix = sizeof KEY_PUB_PREFIX - 1;
    memcpy(out, KEY_PUB_PREFIX, prefix);
    sodium_bin2base64(out + prefix, KEY_PUB_TEXT_MAX - prefix, pk,
                      KEY_PUB_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

int
key_pub_decode(const char *text, uint8_t pk[KEY_PUB_BYTES])
{
    size_t prefix = sizeof KEY_PUB_PREFIX - 1, n = 0;
    const char *end = NULL;
    uint8_t tmp[KEY_PUB_BYTES];

    if (text == NULL || strncmp(text, KEY_PUB_PREFIX, prefix) != 0)
        return IM_EINVAL;
    text += prefix;
    if (sodium_base642bin(tmp, sizeof tmp, text, strlen(text), NULL, &n, &end,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        n != KEY_PUB_BYTES || (end != NULL && *end != '\0'))
        return IM_EINVAL;
    memcpy(pk, tmp, KEY_PUB_BYTES);
    return 0;
}

static size_t
ctx_prefixed(const char *ctx, const uint8_t *msg, size_t msg_size,
             crypto_sign_state *st)
{
    size_t ctx_size = strlen(ctx);
    /* Labels are ours, never input. */
    if (ctx_size == 0 || ctx_size > KEY_CTX_MAX)
        abort();
    crypto_sign_init(st);
    crypto_sign_update(st, (const uint8_t *)ctx, ctx_size + 1);
    crypto_sign_update(st, msg, msg_size);
    return ctx_size;
}

/* Ed25519ph over ctx || NUL || msg: one pass, no copy of msg, and the label
 * cannot run into the message. */
void
key_sign(const struct im_key *k, const char *ctx, const uint8_t *msg,
         size_t msg_size, uint8_t sig[KEY_SIG_BYTES])
{
    crypto_sign_state st;
    (void)ctx_prefixed(ctx, msg, msg_size, &st);
    crypto_sign_final_create(&st, sig, NULL, k->sk);
}

int
key_verify(const uint8_t pk[KEY_PUB_BYTES], const char *ctx,
           const uint8_t *msg, size_t msg_size,
           const uint8_t sig[KEY_SIG_BYTES])
{
    crypto_sign_state st;
    (void)ctx_prefixed(ctx, msg, msg_size, &st);
    return crypto_sign_final_verify(&st, sig, pk) == 0 ? 0 : IM_EBADSIG;
}
