/* bench_nng: what NNG itself moves over loopback TCP, the transport limit
 * a replication link is measured against (`make bench`, tests/bench/repl.sh).
 *
 * Two shapes, each for one message size:
 *   reqrep   req0/rep0, one request of SIZE bytes in flight, answered with
 *            a 64-byte reply: exactly a replication link's shape (one
 *            push or pull at a time, a small answer), without our
 *            encryption, verification or store
 *   pair     pair0, the sender never waits: the pipe's streaming ceiling
 * Both set NNG_OPT_RECVMAXSZ as the node does (NNG's default refuses
 * messages over 1 MiB). Prints "name value" lines: messages/s and MB/s of
 * request payload per shape.
 *
 *   bench_nng [--size BYTES] [--ms MS] [--port PORT]
 */
#include <errno.h>
#include <getopt.h>
#include <nng/nng.h>
#include <nng/protocol/pair0/pair.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Message sizes: up to a replication message's bound (node/repl.h). */
#define SIZE_MIN 64
#define SIZE_MAX_BYTES (16 * 1024 * 1024)
#define SIZE_DEFAULT (1024 * 1024)
#define MS_DEFAULT 2000
#define MS_MAX 60000
#define REPLY_BYTES 64

static const char usage[] =
    "usage: bench_nng [--size BYTES] [--ms MS] [--port PORT]\n"
    "NNG over loopback TCP: req/rep with one SIZE-byte request in flight and\n"
    "a 64-byte reply, then pair streaming; each for MS milliseconds\n"
    "(defaults 1048576 bytes, 2000 ms, port 0 = pick a free one).\n";

static uint64_t
mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void
fatal(const char *what, int rv)
{
    fprintf(stderr, "bench_nng: %s: %s\n", what, nng_strerror(rv));
    exit(1);
}

struct server {
    nng_socket sock;
    int reply;      /* answer every message (rep) or just take it (pair) */
};

static void *
server_main(void *arg)
{
    struct server *s = arg;
    for (;;) {
        nng_msg *m;
        int rv = nng_recvmsg(s->sock, &m, 0);
        if (rv == NNG_ECLOSED)
            return NULL;
        if (rv != 0)
            fatal("server receive", rv);
        if (!s->reply) {
            /* A one-byte message is the end: all before it arrived. */
            size_t len = nng_msg_len(m);
            nng_msg_free(m);
            if (len == 1)
                return NULL;
            continue;
        }
        nng_msg_clear(m);
        if ((rv = nng_msg_realloc(m, REPLY_BYTES)) != 0)
            fatal("server reply", rv);
        if ((rv = nng_sendmsg(s->sock, m, 0)) != 0) {
            nng_msg_free(m);
            if (rv == NNG_ECLOSED)
                return NULL;
            fatal("server send", rv);
        }
    }
}

/* Listens on a free loopback port (or port), dials it; returns the url. */
static void
connect_pair(nng_socket srv, nng_socket cli, int port, char *url,
             size_t url_size)
{
    nng_listener l;
    int rv;

    nng_socket_set_size(srv, NNG_OPT_RECVMAXSZ, SIZE_MAX_BYTES + 1024);
    nng_socket_set_size(cli, NNG_OPT_RECVMAXSZ, SIZE_MAX_BYTES + 1024);
    snprintf(url, url_size, "tcp://127.0.0.1:%d", port);
    if ((rv = nng_listen(srv, url, &l, 0)) != 0)
        fatal(url, rv);
    if (port == 0) {
        int bound;
        if ((rv = nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &bound)) != 0)
            fatal("bound port", rv);
        snprintf(url, url_size, "tcp://127.0.0.1:%d", bound);
    }
    if ((rv = nng_dial(cli, url, NULL, 0)) != 0)
        fatal("dial", rv);
}

static void
run(int reqrep, size_t size, uint64_t ms, int port)
{
    struct server s = {.reply = reqrep};
    nng_socket cli;
    pthread_t t;
    char url[64];
    uint64_t start, end, n = 0;
    int rv;

    if (reqrep) {
        if ((rv = nng_rep0_open(&s.sock)) != 0 || (rv = nng_req0_open(&cli)) != 0)
            fatal("open", rv);
        /* As the node: never resend a request. */
        nng_socket_set_ms(cli, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    } else {
        if ((rv = nng_pair0_open(&s.sock)) != 0 || (rv = nng_pair0_open(&cli)) != 0)
            fatal("open", rv);
    }
    connect_pair(s.sock, cli, port, url, sizeof url);
    if (pthread_create(&t, NULL, server_main, &s) != 0) {
        fprintf(stderr, "bench_nng: cannot start a thread\n");
        exit(1);
    }
    start = mono_us();
    end = start + ms * 1000;
    while (mono_us() < end) {
        nng_msg *m;
        if ((rv = nng_msg_alloc(&m, size)) != 0)
            fatal("allocate", rv);
        /* Touch the payload as a sender that built it would. */
        memset(nng_msg_body(m), (int)(n & 0xff), size);
        if ((rv = nng_sendmsg(cli, m, 0)) != 0)
            fatal("send", rv);
        if (reqrep) {
            if ((rv = nng_recvmsg(cli, &m, 0)) != 0)
                fatal("receive", rv);
            nng_msg_free(m);
        }
        n++;
    }
    if (!reqrep) {
        /* Count only what arrived: the end marker follows the rest. */
        nng_msg *m;
        if ((rv = nng_msg_alloc(&m, 1)) != 0 || (rv = nng_sendmsg(cli, m, 0)) != 0)
            fatal("send the end", rv);
        pthread_join(t, NULL);
        end = mono_us();
        nng_close(cli);
        nng_close(s.sock);
    } else {
        end = mono_us();
        nng_close(cli);
        nng_close(s.sock);
        pthread_join(t, NULL);
    }

    double secs = (double)(end - start) / 1e6;
    const char *name = reqrep ? "reqrep" : "pair";
    printf("%s_msgs_per_s %.0f\n", name, (double)n / secs);
    printf("%s_mb_per_s %.1f\n", name, (double)n * (double)size / secs / 1e6);
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"size", required_argument, NULL, 's'},
        {"ms", required_argument, NULL, 'm'},
        {"port", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    unsigned long long size = SIZE_DEFAULT, ms = MS_DEFAULT, port = 0;
    int opt;

    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        unsigned long long *dst, lo, hi;
        char *end;
        switch (opt) {
        case 's': dst = &size; lo = SIZE_MIN; hi = SIZE_MAX_BYTES; break;
        case 'm': dst = &ms; lo = 1; hi = MS_MAX; break;
        case 'p': dst = &port; lo = 0; hi = 65535; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
        errno = 0;
        *dst = strtoull(optarg, &end, 10);
        if (errno || end == optarg || *end || optarg[0] == '-' || *dst < lo ||
            *dst > hi) {
            fprintf(stderr, "bench_nng: '%.32s' is not a number from %llu to %llu\n",
                    optarg, lo, hi);
            return 2;
        }
    }
    if (optind != argc) {
        fputs(usage, stderr);
        return 2;
    }
    printf("size_bytes %llu\n", size);
    run(1, (size_t)size, ms, (int)port);
    run(0, (size_t)size, ms, (int)port);
    if (fflush(stdout) != 0)
        return 1;
    return 0;
}
