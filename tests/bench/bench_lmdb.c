/* bench_lmdb: the physical limits the node is measured against, on the
 * disk and cores it runs on (`make bench`, tests/bench/run).
 *
 *   single   LMDB synced commits/s, one put per write transaction, default
 *            sync (no MDB_NOSYNC, no MDB_WRITEMAP): what a node without
 *            group commit could acknowledge at most; also the latency of
 *            one synced commit (p50, p99), the floor of any write's latency
 *   batch    LMDB puts/s, BATCH_PUTS puts per synced transaction: the
 *            ceiling of group commit on this disk; also the bytes LMDB
 *            wrote meanwhile (write(2) bytes, /proc/self/io wchar) per put
 *            and per second: the disk's synced write bandwidth, which bounds
 *            any store that writes whole pages
 *   verify   Ed25519ph verifications/s on one core, through lib/keys.h's
 *            key_verify as the node calls it for every request: the ceiling
 *            of one-op requests per core
 *   sign     Ed25519ph signatures/s on one core (what a client pays)
 *
 * Prints one "name value" line per figure, for the run script to tabulate.
 * The store is created fresh in DIR (which must not hold one) and left
 * there for the caller to remove. */
#include <errno.h>
#include <lmdb.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "err.h"
#include "keys.h"

/* Puts per transaction in the batch measurement (the figure). */
#define BATCH_PUTS 1000
/* Bytes per value: about one encoded Note event with its framing. */
#define VALUE_BYTES 256
/* Bytes per signed message: about one encoded one-op request body. */
#define SIGNED_BYTES 160
/* Each measurement runs this long unless --ms says otherwise. */
#define MEASURE_MS_DEFAULT 2000
#define MEASURE_MS_MAX 60000
/* Latency samples kept for the single-commit percentiles. */
#define SAMPLES_MAX 1000000
/* Map ceiling: room for the batch measurement at any realistic disk speed. */
#define MAP_BYTES (8ULL << 30)

static const char usage[] =
    "usage: bench_lmdb [--ms MS] DIR\n"
    "Measures LMDB synced single-put commits/s and batched puts/s in a fresh\n"
    "store in DIR (created; must not exist), and Ed25519ph verify and sign\n"
    "rates. Each measurement runs MS milliseconds (default 2000).\n";

static uint64_t
clock_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

struct env {
    MDB_env *env;
    MDB_dbi dbi;
};

static int
from_mdb(int rv, struct im_err *e, const char *what)
{
    if (rv == 0)
        return 0;
    return im_errf(e, rv == ENOSPC ? IM_ENOSPC : IM_ESTORE, "%s: %s", what,
                   mdb_strerror(rv));
}

static int
env_open(struct env *v, const char *dir, struct im_err *e)
{
    MDB_txn *txn;
    int rv;

    if (mkdir(dir, 0700) != 0)
        return im_errf(e, im_from_errno(errno), "mkdir %s: %s", dir,
                       strerror(errno));
    if ((rv = mdb_env_create(&v->env)) != 0)
        return from_mdb(rv, e, "mdb_env_create");
    if ((rv = mdb_env_set_mapsize(v->env, MAP_BYTES)) != 0 ||
        (rv = mdb_env_open(v->env, dir, 0, 0600)) != 0) {
        from_mdb(rv, e, "mdb_env_open");
        goto fail_env;
    }
    if ((rv = mdb_txn_begin(v->env, NULL, 0, &txn)) != 0) {
        from_mdb(rv, e, "begin");
        goto fail_env;
    }
    if ((rv = mdb_dbi_open(txn, NULL, 0, &v->dbi)) != 0 ||
        (rv = mdb_txn_commit(txn)) != 0) {
        from_mdb(rv, e, "open table");
        goto fail_env;
    }
    return 0;
fail_env:
    mdb_env_close(v->env);
    return e->code;
}

/* Keys like the node's events table: 8-byte origin, 8-byte big-endian seq. */
static void
make_key(uint8_t k[16], uint64_t seq)
{
    memcpy(k, "BENCH\0\0\0", 8);
    for (int i = 15; i >= 8; i--, seq >>= 8)
        k[i] = (uint8_t)seq;
}

static int
put_one(MDB_txn *txn, MDB_dbi dbi, uint64_t seq, const uint8_t *value)
{
    uint8_t kb[16];
    MDB_val k = {sizeof kb, kb}, v = {VALUE_BYTES, (void *)value};
    make_key(kb, seq);
    return mdb_put(txn, dbi, &k, &v, MDB_APPEND);
}

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int
measure_single(struct env *v, uint64_t ms, uint64_t *seq, const uint8_t *value,
               struct im_err *e)
{
    uint32_t *lat = malloc(SAMPLES_MAX * sizeof *lat);
    uint64_t start = clock_mono_us(), end = start + ms * 1000, now = start;
    size_t n = 0;
    int rv = 0;

    if (lat == NULL)
        return im_errf(e, IM_ENOMEM, "out of memory");
    while (now < end && n < SAMPLES_MAX) {
        MDB_txn *txn;
        uint64_t t0 = now;
        if ((rv = mdb_txn_begin(v->env, NULL, 0, &txn)) != 0) {
            rv = from_mdb(rv, e, "begin");
            goto out;
        }
        if ((rv = put_one(txn, v->dbi, ++*seq, value)) != 0) {
            mdb_txn_abort(txn);
            rv = from_mdb(rv, e, "put");
            goto out;
        }
        if ((rv = mdb_txn_commit(txn)) != 0) {
            rv = from_mdb(rv, e, "commit");
            goto out;
        }
        now = clock_mono_us();
        lat[n++] = (uint32_t)(now - t0);
    }
    qsort(lat, n, sizeof *lat, cmp_u32);
    printf("single_commits_per_s %.0f\n", n * 1e6 / (double)(now - start));
    printf("single_commit_p50_us %u\n", lat[n / 2]);
    printf("single_commit_p99_us %u\n", lat[n * 99 / 100]);
out:
    free(lat);
    return rv;
}

/* Bytes this process passed to write(2) and friends so far; 0 if the
 * kernel does not say (no /proc). */
static uint64_t
wchar_bytes(void)
{
    unsigned long long v = 0;
    char line[128];
    FILE *f = fopen("/proc/self/io", "re");

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "wchar: %llu", &v) == 1)
            break;
    fclose(f);
    return v;
}

static int
measure_batch(struct env *v, uint64_t ms, uint64_t *seq, const uint8_t *value,
              struct im_err *e)
{
    uint64_t start = clock_mono_us(), end = start + ms * 1000, now = start;
    uint64_t puts = 0, written = wchar_bytes();
    int rv;

    while (now < end) {
        MDB_txn *txn;
        if ((rv = mdb_txn_begin(v->env, NULL, 0, &txn)) != 0)
            return from_mdb(rv, e, "begin");
        for (int i = 0; i < BATCH_PUTS; i++)
            if ((rv = put_one(txn, v->dbi, ++*seq, value)) != 0) {
                mdb_txn_abort(txn);
                return from_mdb(rv, e, "put");
            }
        if ((rv = mdb_txn_commit(txn)) != 0)
            return from_mdb(rv, e, "commit");
        puts += BATCH_PUTS;
        now = clock_mono_us();
    }
    written = wchar_bytes() - written;
    printf("batch_puts_per_s %.0f\n", puts * 1e6 / (double)(now - start));
    printf("batch_write_bytes_per_put %.0f\n", (double)written / (double)puts);
    printf("batch_write_mb_per_s %.1f\n", written / (double)(now - start));
    return 0;
}

static int
measure_sig(uint64_t ms, struct im_err *e)
{
    uint8_t msg[SIGNED_BYTES], sig[KEY_SIG_BYTES];
    struct im_key key;
    uint64_t start, end, now, n;

    if (key_generate(&key) != 0)
        return im_errf(e, IM_ECRYPTO, "key_generate failed");
    randombytes_buf(msg, sizeof msg);
    key_sign(&key, KEY_CTX_REQUEST, msg, sizeof msg, sig);

    start = now = clock_mono_us();
    end = start + ms * 1000;
    for (n = 0; now < end; n++) {
        /* A failure here is a bug in keys.c or libsodium, not input. */
        if (key_verify(key.pk, KEY_CTX_REQUEST, msg, sizeof msg, sig) != 0)
            return im_errf(e, IM_EBADSIG, "own signature does not verify");
        if ((n & 63) == 0)
            now = clock_mono_us();
    }
    now = clock_mono_us();
    printf("ed25519_verify_per_s %.0f\n", n * 1e6 / (double)(now - start));

    start = now = clock_mono_us();
    end = start + ms / 2 * 1000;
    for (n = 0; now < end; n++) {
        msg[0] = (uint8_t)n;
        key_sign(&key, KEY_CTX_REQUEST, msg, sizeof msg, sig);
        if ((n & 63) == 0)
            now = clock_mono_us();
    }
    now = clock_mono_us();
    printf("ed25519_sign_per_s %.0f\n", n * 1e6 / (double)(now - start));
    sodium_memzero(&key, sizeof key);
    return 0;
}

int
main(int argc, char **argv)
{
    struct im_err e = {0};
    uint8_t value[VALUE_BYTES];
    uint64_t ms = MEASURE_MS_DEFAULT, seq = 0;
    const char *dir = NULL;
    struct env v;
    int rv;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--ms") == 0 && i + 1 < argc) {
            char *end;
            errno = 0;
            ms = strtoull(argv[++i], &end, 10);
            if (errno || *end || argv[i][0] == '-' || ms < 10 ||
                ms > MEASURE_MS_MAX) {
                fprintf(stderr, "bench_lmdb: --ms '%s' is not 10..%d\n",
                        argv[i], MEASURE_MS_MAX);
                return 2;
            }
        } else if (strcmp(argv[i], "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (argv[i][0] != '-' && dir == NULL) {
            dir = argv[i];
        } else {
            fputs(usage, stderr);
            return 2;
        }
    }
    if (dir == NULL) {
        fputs(usage, stderr);
        return 2;
    }
    if (keys_init() != 0) {
        fprintf(stderr, "bench_lmdb: libsodium failed to initialise\n");
        return 1;
    }
    randombytes_buf(value, sizeof value);
    if ((rv = env_open(&v, dir, &e)) != 0)
        goto fail;
    if ((rv = measure_single(&v, ms, &seq, value, &e)) != 0 ||
        (rv = measure_batch(&v, ms, &seq, value, &e)) != 0) {
        mdb_env_close(v.env);
        goto fail;
    }
    mdb_env_close(v.env);
    if ((rv = measure_sig(ms, &e)) != 0)
        goto fail;
    if (fflush(stdout) != 0)
        return 1;
    return 0;
fail:
    fprintf(stderr, "bench_lmdb: %s: %s\n", dir, im_errmsg(&e));
    return 1;
}
