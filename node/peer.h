/* peer: the node's replication links over NNG (DESIGN.md §4).
 *
 * Each node listens for peers on one rep0 socket (its site's peer address)
 * and dials every other configured site with a req0 socket of its own, so
 * each side drives its own pushes and pulls (node/repl.h) and a link that
 * is down one way still works the other. Every exchange runs inside a
 * secure-channel session (lib/chan.h) authenticated by both sites' pinned
 * keys; the framing of handshake and data messages on the NNG sockets is
 * lib/link.h's (docs/protocol-replication.md). The listening side is a
 * lib/link.c server, the dialling side a lib/link.c dialler with up to
 * REPL_PIPELINE_MAX calls in flight.
 *
 * Threads: one per dialled peer (handshake, then push what the peer lacks
 * as soon as a commit wakes it, without waiting for the replies to earlier
 * pushes, else pull once a second), and PEER_SERVER_WORKERS serving the
 * rep socket, which take a peer's requests in turn (its stream order) to
 * the committer. Writes go through the committer, so replicated events
 * share its group commit. */
#ifndef IM_PEER_H
#define IM_PEER_H

#include <nng/nng.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "chan.h"
#include "commit.h"
#include "config.h"
#include "link.h"
#include "repl.h"
#include "store.h"

/* Enough for every request one peer has in flight to be verified while
 * the earliest waits for its commit. A worker waits only for an earlier
 * request of the same stream, which NNG handed to another worker before it
 * (rep0 takes a pipe's messages in order), so the workers cannot all wait
 * on requests still queued behind them. */
#define PEER_SERVER_WORKERS 4

/* A request on a link that has no answer within this is abandoned and the
 * session dropped (a new handshake follows): bounds how long a dead peer
 * holds its link thread. */
#define PEER_REQUEST_TIMEOUT_MS 10000

/* A link with no successful exchange for this long is reported down (it
 * syncs every REPL_SYNC_INTERVAL_MS when idle). */
#define PEER_STALE_MS (3 * REPL_SYNC_INTERVAL_MS)

/* Reconnect back-off of the dialers (NNG_OPT_RECONNMINT/MAXT), and of a
 * failed handshake. */
#define PEER_RECONNECT_MS_MIN 100
#define PEER_RECONNECT_MS_MAX 5000

/* A dial that has not connected within this is abandoned and started
 * afresh, and a request that timed out abandons its TCP connection too.
 * Under a partition that drops packets (rather than refusing them) the
 * kernel retries a lost SYN, and a stalled connection's data, with doubling
 * back-off: after a minute cut off, its next retry may come a minute after
 * the link healed, and NNG sees nothing wrong meanwhile (tests/bench/repl.sh
 * table 6). A fresh dial every PEER_CONNECT_MS_MAX bounds that wait. */
#define PEER_CONNECT_MS_MAX 2000

/* Lag samples kept per link for the p99. */
#define PEER_LAG_SAMPLES 512

/* The transport framing is lib/link.h's. */
#define PEER_WIRE_MAX (LINK_DATA_OVERHEAD + REPL_MSG_SIZE_MAX)
_Static_assert(REPL_MSG_SIZE_MAX <= CHAN_PLAIN_MAX,
               "a replication message fits one frame");

struct peers;

struct peer_link {
    struct peers *p;
    const struct cfg_site *site;
    /* Socket, session, bytes both ways and channel rejections (its own
     * link's on our listener too). The socket is swapped (a redial) by
     * the link's thread under p->mu, so that peers_close closes the
     * current one. */
    struct link_dial dial;
    pthread_t thread;
    int thread_started;
    /* Owned by the link's thread. */
    struct link_call calls[REPL_PIPELINE_MAX];
    int calls_open;             /* calls made for the current session */
    uint64_t backoff_ms;
    uint64_t dial_since_ms;     /* mono ms the current dial began; 0: connected */
    uint64_t calls_done;        /* completions (under p->mu): wake the thread */
    /* The peer's requests to our listener, in their stream order: under
     * order_mu (repl_env turn hooks). */
    pthread_mutex_t order_mu;
    pthread_cond_t order_cv;
    struct repl_order order;
    int order_stopping;
    /* Shared with status readers: under mu. */
    pthread_mutex_t mu;
    struct repl_link link;
    int connected;
    uint64_t last_contact_ms;
    uint64_t sessions;
    struct repl_counters srv_counters;   /* what it sent us on its link */
    uint64_t lag[PEER_LAG_SAMPLES];
    size_t lag_count, lag_next;
    /* p99 of lag[], kept until a sample comes: status is polled far more
     * often (every imctl peers, /metrics scrape, bench poll) than samples
     * come, and sorting them on every poll showed in profiles. */
    uint64_t lag_p99_ms;
    int lag_p99_stale;
    char error[IM_ERRMSG_MAX];
};

struct peer_status {
    char site[SITE_CODE_MAX + 1];
    char address[URL_MAX + 1];
    int connected;
    uint64_t last_contact_ms, lag_ms, lag_p99_ms;
    uint64_t bytes_in, bytes_out, events_in, events_out, sessions;
    struct store_vv theirs;
    int theirs_known;
    uint64_t repl_rejected[REPL_R_COUNT];
    uint64_t chan_rejected[CHAN_REJECT_COUNT];
    char error[IM_ERRMSG_MAX];
};

/* Reasons a frame or handshake is refused on the listening side before a
 * peer is known: lib/link.h's. */
#define PEER_REJECT_COUNT LINK_REJECT_COUNT
#define peer_reject_name link_reject_name

struct peers {
    const struct config *cfg;
    struct store *store;
    struct committer *commit;
    const struct im_key *key;
    uint8_t cluster_id[CHAN_CLUSTER_ID_BYTES];
    struct repl_env env;

    /* The listening side (lib/link.c). srv_mu guards srv_started, and the
     * listener's last counters, kept once it is closed. */
    struct link_server srv;
    pthread_mutex_t srv_mu;
    int srv_started;
    uint64_t rejected[PEER_REJECT_COUNT];
    uint64_t srv_chan_rejected[SITES_MAX][CHAN_REJECT_COUNT];

    struct peer_link links[SITES_MAX];
    size_t links_count;

    /* Commits wake the link threads: gen counts them. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t gen;
    int stopping;
};

/* Life cycle: peers_init (before commit_start, which is given
 * on_commit = peers_notify, arg p), peers_start (after commit_start),
 * peers_close (before commit_stop), peers_fini (after commit_stop and after
 * the last peers_status caller is gone: api_free). */
void peers_init(struct peers *p);

/* Starts listening (if this site has a peer address) and dialling every
 * other site that has one. Everything passed is borrowed until
 * peers_close. On failure everything started is closed again. */
int peers_start(struct peers *p, const struct config *cfg, struct store *s,
                struct committer *c, const struct im_key *key,
                struct im_err *e);

/* Wakes the link threads: there is something new to push. Safe from any
 * thread; never blocks for long. */
void peers_notify(void *p);

/* Stops the threads and closes the sockets. */
void peers_close(struct peers *p);
void peers_fini(struct peers *p);

/* A snapshot of every link. out holds SITES_MAX; node_rejected holds
 * PEER_REJECT_COUNT. */
void peers_status(struct peers *p, struct peer_status *out, size_t *count,
                  uint64_t *node_rejected);

/* /metrics collector (node/metrics.h; arg: struct peers *): link up,
 * lag, events behind per origin, bytes, events, rejections by reason. */
struct metrics_out;
void peers_metrics(void *arg, struct metrics_out *o);

#endif
