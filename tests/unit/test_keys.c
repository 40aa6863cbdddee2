/* Unit tests for lib/keys: secret key files in a real temporary directory
 * (round trip, mode 0600, refusal of group/world-readable files, no
 * overwrite, corrupt and truncated files), the public key text form and its
 * bad inputs, and signatures with domain separation (a signature for one
 * label fails for another; a flipped bit anywhere fails). */
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <sodium.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keys.h"

static char dir[256];

static void
path_in_dir(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", dir, name);
}

/* Writes a file with exactly these bytes and mode. */
static int
write_file(const char *path, const void *bytes, size_t size, mode_t mode)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, bytes, size);
    close(fd);
    if (chmod(path, mode) != 0)
        return -1;
    return n == (ssize_t)size ? 0 : -1;
}

/* Reads a whole small file into buf (NUL-terminated); its size, or -1. */
static ssize_t
read_file(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n >= 0)
        buf[n] = '\0';
    return n;
}

static int
contains(const char *hay, const char *needle)
{
    return strstr(hay, needle) != NULL;
}

TEST(generate_save_load_round_trip)
{
    struct im_key k, back;
    struct im_err e = {0};
    char path[512], text[512];
    struct stat st;

    REQUIRE(key_generate(&k) == 0);
    path_in_dir(path, sizeof path, "a.key");
    REQUIRE(key_save(&k, path, &e) == 0);
    REQUIRE(stat(path, &st) == 0);
    CHECK_EQ_INT(st.st_mode & 0777, 0600);

    /* One line: the magic, a space, the base64 seed, a newline. */
    ssize_t n = read_file(path, text, sizeof text);
    REQUIRE(n > 0);
    CHECK(strncmp(text, "IM-ED25519-SECRET-V1 ", 21) == 0);
    CHECK(text[n - 1] == '\n');
    CHECK(strchr(text, '\n') == text + n - 1);

    memset(&back, 0, sizeof back);
    REQUIRE(key_load(&back, path, &e) == 0);
    CHECK(memcmp(back.pk, k.pk, KEY_PUB_BYTES) == 0);
    CHECK(memcmp(back.sk, k.sk, KEY_SEC_BYTES) == 0);

    /* Two generated keys differ. */
    struct im_key k2;
    key_generate(&k2);
    CHECK(memcmp(k.pk, k2.pk, KEY_PUB_BYTES) != 0);

    /* A umask does not widen the mode either way. */
    mode_t old = umask(0);
    path_in_dir(path, sizeof path, "umask0.key");
    CHECK(key_save(&k, path, &e) == 0);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    umask(old);
}

TEST(save_never_overwrites)
{
    struct im_key k, other;
    struct im_err e = {0};
    char path[512], before[512], after[512];

    key_generate(&k);
    key_generate(&other);
    path_in_dir(path, sizeof path, "b.key");
    REQUIRE(key_save(&k, path, &e) == 0);
    REQUIRE(read_file(path, before, sizeof before) > 0);

    im_errclear(&e);
    CHECK_EQ_INT(key_save(&other, path, &e), IM_EEXIST);
    CHECK_EQ_INT(e.code, IM_EEXIST);
    CHECK(contains(e.msg, path));
    CHECK(read_file(path, after, sizeof after) > 0);
    CHECK_EQ_STR(after, before);

    /* Any existing file, not only key files, is left alone. */
    path_in_dir(path, sizeof path, "notes.txt");
    REQUIRE(write_file(path, "keep me\n", 8, 0644) == 0);
    CHECK_EQ_INT(key_save(&k, path, &e), IM_EEXIST);
    CHECK(read_file(path, after, sizeof after) == 8);
    CHECK_EQ_STR(after, "keep me\n");

    /* Nor through a dangling symlink (O_EXCL refuses to follow it). */
    char target[512];
    path_in_dir(target, sizeof target, "elsewhere.key");
    path_in_dir(path, sizeof path, "link.key");
    REQUIRE(symlink(target, path) == 0);
    CHECK_EQ_INT(key_save(&k, path, &e), IM_EEXIST);
    CHECK(access(target, F_OK) != 0);
}

TEST(save_into_missing_directory)
{
    struct im_key k;
    struct im_err e = {0};
    char path[512];

    key_generate(&k);
    path_in_dir(path, sizeof path, "no/such/dir/c.key");
    CHECK_EQ_INT(key_save(&k, path, &e), IM_ENOTFOUND);
    CHECK(contains(e.msg, path));
    CHECK(contains(e.msg, "No such file or directory"));
}

TEST(load_refuses_readable_by_others)
{
    static const mode_t refused[] = {0640, 0604, 0644, 0660,       0606,
                                     0666, 0610, 0601, 0700 | 0040};
    static const mode_t accepted[] = {0600, 0400, 0700};
    struct im_key k, back;
    struct im_err e = {0};
    char path[512], want[64];

    key_generate(&k);
    path_in_dir(path, sizeof path, "d.key");
    REQUIRE(key_save(&k, path, &e) == 0);
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        REQUIRE(chmod(path, refused[i]) == 0);
        memset(&back, 0xAA, sizeof back);
        im_errclear(&e);
        CHECK_EQ_INT(key_load(&back, path, &e), IM_EDENIED);
        CHECK(contains(e.msg, path));
        snprintf(want, sizeof want, "readable by others (mode %03o)",
                 (unsigned)refused[i]);
        if (!contains(e.msg, want))
            fprintf(stderr, "message: %s\n", e.msg);
        CHECK(contains(e.msg, want));
        CHECK(contains(e.msg, "chmod 600"));
        /* Nothing written to the output on refusal. */
        CHECK(back.pk[0] == 0xAA && back.sk[KEY_SEC_BYTES - 1] == 0xAA);
    }
    for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++) {
        REQUIRE(chmod(path, accepted[i]) == 0);
        CHECK_EQ_INT(key_load(&back, path, &e), 0);
        CHECK(memcmp(back.pk, k.pk, KEY_PUB_BYTES) == 0);
    }
}

TEST(load_missing_file)
{
    struct im_key k;
    struct im_err e = {0};
    char path[512];

    path_in_dir(path, sizeof path, "missing.key");
    CHECK_EQ_INT(key_load(&k, path, &e), IM_ENOTFOUND);
    CHECK(contains(e.msg, "open key file"));
    CHECK(contains(e.msg, path));
}

TEST(load_directory)
{
    struct im_key k;
    struct im_err e = {0};
    char path[512];

    path_in_dir(path, sizeof path, "adir.key");
    REQUIRE(mkdir(path, 0700) == 0);
    CHECK_EQ_INT(key_load(&k, path, &e), IM_EIO);
    CHECK(contains(e.msg, "read key file"));
    CHECK(contains(e.msg, "Is a directory"));
    CHECK(contains(e.msg, path));
}

TEST(load_refuses_corrupt_files)
{
    struct im_key k, back;
    struct im_err e = {0};
    char path[512], line[512], b64[128];
    uint8_t seed[crypto_sign_SEEDBYTES + 1];

    key_generate(&k);
    crypto_sign_ed25519_sk_to_seed(seed, k.sk);
    sodium_bin2base64(b64, sizeof b64, seed, 32,
                      sodium_base64_VARIANT_ORIGINAL);

    struct {
        char text[400];
        const char *msg;
    } cases[16];
    size_t n = 0;
#define CASE(msg_, ...)                                                        \
    do {                                                                       \
        snprintf(cases[n].text, sizeof cases[n].text, __VA_ARGS__);            \
        cases[n++].msg = msg_;                                                 \
    } while (0)
    const char *notours = "not an Incident Mesh secret key";
    CASE("is empty", "%s", "");
    CASE(notours, "%s", "\n");
    CASE(notours, "IM-ED25519-SECRET-V1");
    CASE(notours, "IM-ED25519-SECRET-V1\n");
    CASE(notours, "IM-ED25519-SECRET-V2 %s\n", b64);
    CASE(notours, "im-ed25519-secret-v1 %s\n", b64);
    CASE(notours, " IM-ED25519-SECRET-V1 %s\n", b64);
    CASE(notours, "-----BEGIN OPENSSH PRIVATE KEY-----\n");
    CASE("malformed key", "IM-ED25519-SECRET-V1 \n");
    CASE("malformed key", "IM-ED25519-SECRET-V1 %.20s\n", b64); /* cut */
    CASE("malformed key", "IM-ED25519-SECRET-V1 %sAAAA\n", b64);
    CASE("malformed key", "IM-ED25519-SECRET-V1 %s x\n", b64);
    CASE("malformed key", "IM-ED25519-SECRET-V1  %s\n", b64);
    CASE("malformed key", "IM-ED25519-SECRET-V1 !%s\n", b64 + 1);
    /* A 31-byte and a 33-byte seed. */
    sodium_bin2base64(line, sizeof line, seed, 31,
                      sodium_base64_VARIANT_ORIGINAL);
    CASE("malformed key", "IM-ED25519-SECRET-V1 %s\n", line);
    seed[32] = 7;
    sodium_bin2base64(line, sizeof line, seed, 33,
                      sodium_base64_VARIANT_ORIGINAL);
    CASE("malformed key", "IM-ED25519-SECRET-V1 %s\n", line);
#undef CASE

    path_in_dir(path, sizeof path, "corrupt.key");
    for (size_t i = 0; i < n; i++) {
        REQUIRE(write_file(path, cases[i].text, strlen(cases[i].text), 0600) ==
                0);
        memset(&back, 0xAA, sizeof back);
        im_errclear(&e);
        int rv = key_load(&back, path, &e);
        if (rv != IM_EINVAL || !contains(e.msg, cases[i].msg))
            fprintf(stderr, "case %zu '%s': rv %d, %s\n", i, cases[i].text, rv,
                    e.msg);
        CHECK_EQ_INT(rv, IM_EINVAL);
        CHECK(contains(e.msg, cases[i].msg));
        CHECK(contains(e.msg, path));
        CHECK(back.pk[0] == 0xAA && back.sk[KEY_SEC_BYTES - 1] == 0xAA);
    }

    /* Binary garbage, including NUL bytes. */
    uint8_t junk[64];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)(i * 37 + 1);
    junk[5] = 0;
    REQUIRE(write_file(path, junk, sizeof junk, 0600) == 0);
    CHECK_EQ_INT(key_load(&back, path, &e), IM_EINVAL);

    /* A very long first line is refused, not overflowed. */
    char longline[2048];
    int m = snprintf(longline, sizeof longline, "IM-ED25519-SECRET-V1 ");
    memset(longline + m, 'A', sizeof longline - (size_t)m - 2);
    longline[sizeof longline - 2] = '\n';
    longline[sizeof longline - 1] = '\0';
    REQUIRE(write_file(path, longline, strlen(longline), 0600) == 0);
    CHECK_EQ_INT(key_load(&back, path, &e), IM_EINVAL);

    /* Windows line endings and a trailing second line are accepted: the
     * key is the first line. */
    snprintf(line, sizeof line, "IM-ED25519-SECRET-V1 %s\r\nignored\n", b64);
    REQUIRE(write_file(path, line, strlen(line), 0600) == 0);
    CHECK_EQ_INT(key_load(&back, path, &e), 0);
    CHECK(memcmp(back.pk, k.pk, KEY_PUB_BYTES) == 0);
}

TEST(pub_text_round_trip)
{
    struct im_key k;
    char text[KEY_PUB_TEXT_MAX];
    uint8_t pk[KEY_PUB_BYTES];

    for (int i = 0; i < 64; i++) {
        key_generate(&k);
        key_pub_encode(k.pk, text);
        CHECK_EQ_INT(strlen(text), 51);
        CHECK(strncmp(text, "ed25519:", 8) == 0);
        /* base64url: no '+', '/' or '=' (safe in URLs, file names). */
        CHECK(strpbrk(text + 8, "+/=") == NULL);
        memset(pk, 0, sizeof pk);
        CHECK_EQ_INT(key_pub_decode(text, pk), 0);
        CHECK(memcmp(pk, k.pk, KEY_PUB_BYTES) == 0);
    }
    /* All-zero and all-0xff keys encode and decode too. */
    uint8_t z[KEY_PUB_BYTES] = {0};
    key_pub_encode(z, text);
    CHECK_EQ_STR(text, "ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    memset(z, 0xff, sizeof z);
    key_pub_encode(z, text);
    CHECK_EQ_STR(text, "ed25519:__________________________________________8");
    CHECK_EQ_INT(key_pub_decode(text, pk), 0);
    CHECK(memcmp(pk, z, sizeof z) == 0);
}

TEST(pub_text_refuses_bad_input)
{
    struct im_key k;
    char good[KEY_PUB_TEXT_MAX], bad[128];
    uint8_t pk[KEY_PUB_BYTES];
    const char *b = good + 8; /* the base64url part, 43 characters */

    key_generate(&k);
    key_pub_encode(k.pk, good);

    const char *fixed[] = {
        "",
        "ed25519:",
        "ed25519",
        "ed25519:AAAA",
        "x25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "ed448:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        /* padding is not part of the form */
        "ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        /* the standard alphabet's '+' and '/' are not base64url */
        "ed25519:+AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "ed25519:/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        /* the last character carries 4 bits; the other 2 must be zero, so
         * that each key has exactly one text form */
        "ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB",
        "ed25519:__________________________________________9",
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        memset(pk, 0xAA, sizeof pk);
        int rv = key_pub_decode(fixed[i], pk);
        if (rv != IM_EINVAL)
            fprintf(stderr, "'%s' accepted\n", fixed[i]);
        CHECK_EQ_INT(rv, IM_EINVAL);
        CHECK(pk[0] == 0xAA && pk[KEY_PUB_BYTES - 1] == 0xAA);
    }
    CHECK_EQ_INT(key_pub_decode(NULL, pk), IM_EINVAL);

    const char *fmts[] = {
        "ED25519:%s",  /* prefix is lower case */
        " ed25519:%s", /* no surrounding space (config trims it) */
        "ed25519:%s ",   "ed25519:%s\n", "ed25519: %s",
        "ed25519:%sA",   /* 44 characters */
        "ed25519:%sAA",  /* 45 */
        "ed25519:%.42s", /* 42 */
        "ed25519:%.20s", "ed25519:%s:",  "ed25519:ed25519:%s",
    };
    for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        snprintf(bad, sizeof bad, fmts[i], b);
#pragma GCC diagnostic pop
        memset(pk, 0xAA, sizeof pk);
        int rv = key_pub_decode(bad, pk);
        if (rv != IM_EINVAL)
            fprintf(stderr, "'%s' accepted\n", bad);
        CHECK_EQ_INT(rv, IM_EINVAL);
        CHECK(pk[0] == 0xAA && pk[KEY_PUB_BYTES - 1] == 0xAA);
    }

    /* One character anywhere replaced by one outside the alphabet. */
    const char outside[] = "+/=.!~ \t\"\\";
    for (size_t pos = 8; pos < strlen(good); pos++) {
        for (size_t j = 0; j < sizeof outside - 1; j++) {
            snprintf(bad, sizeof bad, "%s", good);
            bad[pos] = outside[j];
            CHECK_EQ_INT(key_pub_decode(bad, pk), IM_EINVAL);
        }
    }
}

static void
flip(uint8_t *bytes, size_t bit)
{
    bytes[bit / 8] ^= (uint8_t)(1u << (bit % 8));
}

TEST(sign_verify)
{
    struct im_key k, other;
    uint8_t sig[KEY_SIG_BYTES], sig2[KEY_SIG_BYTES];
    uint8_t msg[100];

    key_generate(&k);
    key_generate(&other);
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)i;

    key_sign(&k, KEY_CTX_REQUEST, msg, sizeof msg, sig);
    CHECK_EQ_INT(key_verify(k.pk, KEY_CTX_REQUEST, msg, sizeof msg, sig), 0);
    /* Ed25519 is deterministic. */
    key_sign(&k, KEY_CTX_REQUEST, msg, sizeof msg, sig2);
    CHECK(memcmp(sig, sig2, sizeof sig) == 0);

    /* Domain separation: a request signature is not a checkpoint. */
    CHECK_EQ_INT(key_verify(k.pk, KEY_CTX_CHECKPOINT, msg, sizeof msg, sig),
                 IM_EBADSIG);
    key_sign(&k, KEY_CTX_CHECKPOINT, msg, sizeof msg, sig2);
    CHECK(memcmp(sig, sig2, sizeof sig) != 0);
    CHECK_EQ_INT(key_verify(k.pk, KEY_CTX_CHECKPOINT, msg, sizeof msg, sig2),
                 0);
    CHECK_EQ_INT(key_verify(k.pk, KEY_CTX_REQUEST, msg, sizeof msg, sig2),
                 IM_EBADSIG);

    /* Nor is it a plain Ed25519 signature of the message, in either the
     * pure or the prehashed form without the label. */
    CHECK(crypto_sign_verify_detached(sig, msg, sizeof msg, k.pk) != 0);
    crypto_sign_state st;
    crypto_sign_init(&st);
    crypto_sign_update(&st, msg, sizeof msg);
    CHECK(crypto_sign_final_verify(&st, sig, k.pk) != 0);

    /* The label cannot run into the message: "im-a" + "bc..." is not
     * "im-ab" + "c...". */
    uint8_t m1[] = "bcdef", m2[] = "cdef";
    key_sign(&k, "im-a", m1, 5, sig2);
    CHECK_EQ_INT(key_verify(k.pk, "im-a", m1, 5, sig2), 0);
    CHECK_EQ_INT(key_verify(k.pk, "im-ab", m2, 4, sig2), IM_EBADSIG);

    /* Another key. */
    CHECK_EQ_INT(key_verify(other.pk, KEY_CTX_REQUEST, msg, sizeof msg, sig),
                 IM_EBADSIG);

    /* Every bit of the message, the signature and the key matters. */
    int msg_bits_ok = 0, sig_bits_ok = 0, pk_bits_ok = 0;
    for (size_t bit = 0; bit < sizeof msg * 8; bit++) {
        flip(msg, bit);
        msg_bits_ok +=
            key_verify(k.pk, KEY_CTX_REQUEST, msg, sizeof msg, sig) == 0;
        flip(msg, bit);
    }
    for (size_t bit = 0; bit < KEY_SIG_BYTES * 8; bit++) {
        flip(sig, bit);
        sig_bits_ok +=
            key_verify(k.pk, KEY_CTX_REQUEST, msg, sizeof msg, sig) == 0;
        flip(sig, bit);
    }
    for (size_t bit = 0; bit < KEY_PUB_BYTES * 8; bit++) {
        flip(k.pk, bit);
        pk_bits_ok +=
            key_verify(k.pk, KEY_CTX_REQUEST, msg, sizeof msg, sig) == 0;
        flip(k.pk, bit);
    }
    CHECK_EQ_INT(msg_bits_ok, 0);
    CHECK_EQ_INT(sig_bits_ok, 0);
    CHECK_EQ_INT(pk_bits_ok, 0);
    /* And after flipping them back, it verifies again. */
    CHECK_EQ_INT(key_verify(k.pk, KEY_CTX_REQUEST, msg, sizeof msg, sig), 0);

    /* A shorter or longer message (truncation, extension). */
    CHECK_EQ_INT(key_verify(k.pk, KEY_CTX_REQUEST, msg, sizeof msg - 1, sig),
                 IM_EBADSIG);
    uint8_t longer[sizeof msg + 1];
    memcpy(longer, msg, sizeof msg);
    longer[sizeof msg] = 0;
    CHECK_EQ_INT(key_verify(k.pk, KEY_CTX_REQUEST, longer, sizeof longer, sig),
                 IM_EBADSIG);
}

TEST(sign_verify_sizes)
{
    struct im_key k;
    uint8_t sig[KEY_SIG_BYTES];
    key_generate(&k);

    /* An empty message is signed with its label. */
    key_sign(&k, KEY_CTX_REQUEST, NULL, 0, sig);
    CHECK_EQ_INT(key_verify(k.pk, KEY_CTX_REQUEST, NULL, 0, sig), 0);
    CHECK_EQ_INT(key_verify(k.pk, KEY_CTX_CHECKPOINT, NULL, 0, sig),
                 IM_EBADSIG);

    /* A large one (the largest node request), in one pass. */
    size_t size = 4u << 20;
    uint8_t *big = malloc(size);
    REQUIRE(big != NULL);
    randombytes_buf(big, size);
    key_sign(&k, KEY_CTX_REQUEST, big, size, sig);
    CHECK_EQ_INT(key_verify(k.pk, KEY_CTX_REQUEST, big, size, sig), 0);
    big[size - 1] ^= 1;
    CHECK_EQ_INT(key_verify(k.pk, KEY_CTX_REQUEST, big, size, sig), IM_EBADSIG);
    free(big);
}

/* A label is ours, never input: an empty or over-long one is a bug in our
 * code and stops the program rather than sign something ambiguous. */
static int
child_aborts(const char *ctx)
{
    pid_t pid = fork();
    int status = 0;
    if (pid == 0) {
        struct im_key k;
        uint8_t sig[KEY_SIG_BYTES];
        /* Keep the expected abort quiet. */
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0)
            dup2(fd, 2);
        key_generate(&k);
        key_sign(&k, ctx, (const uint8_t *)"m", 1, sig);
        _exit(0);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return 0;
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

TEST(bad_label_aborts)
{
    CHECK(child_aborts(""));
    CHECK(child_aborts("a-label-longer-than-thirty-two-bytes"));
    /* 32 bytes is the longest label. */
    struct im_key k;
    uint8_t sig[KEY_SIG_BYTES];
    const char *l32 = "0123456789abcdef0123456789abcdef";
    key_generate(&k);
    key_sign(&k, l32, (const uint8_t *)"m", 1, sig);
    CHECK_EQ_INT(key_verify(k.pk, l32, (const uint8_t *)"m", 1, sig), 0);
}

static void
make_dir(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/test_keys.XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        exit(1);
    }
}

static int
remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void
remove_dir(void)
{
    if (nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

TEST_MAIN(if (keys_init() != 0) return 1; make_dir();
          RUN(generate_save_load_round_trip); RUN(save_never_overwrites);
          RUN(save_into_missing_directory);
          RUN(load_refuses_readable_by_others); RUN(load_missing_file);
          RUN(load_directory); RUN(load_refuses_corrupt_files);
          RUN(pub_text_round_trip); RUN(pub_text_refuses_bad_input);
          RUN(sign_verify); RUN(sign_verify_sizes); RUN(bad_label_aborts);
          remove_dir())
