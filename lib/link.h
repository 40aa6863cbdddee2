/* link: secure-channel sessions (lib/chan.h) over NNG req/rep — the
 * transport framing shared by every process-to-process link: node<->node
 * replication (node/peer.c) and node->coordinator heartbeats (node/coordlink.c,
 * coord/server.c).
 *
 * Every NNG message starts with a kind byte:
 *
 *   HS1   req  1 | chan msg1                  the dialler starts a handshake
 *   HS2   rep  2 | sid[8] | chan msg2         the listener's session id
 *   HS3   req  3 | sid[8] | chan msg3
 *   HSOK  rep  4 | sid[8]                     the session is live
 *   DATA  both 5 | sid[8] | chan frame        one request or one reply
 *   ERR   rep  6 | code[4, BE, negated] | text   refused (session unknown, ...)
 *
 * The dialler is the channel's initiator. A listener keeps one live session
 * per peer identity (a new handshake replaces the old one) and expires idle
 * ones. Any other first byte is not link traffic: a listener hands such a
 * message to its `other` handler (the coordinator serves signed operator
 * requests, whose protobuf encoding starts with 0x0a, on the same socket).
 *
 * NNG's req resend is off: a resent request would be a replayed frame. A
 * request without an answer within the timeout is abandoned with its
 * session, and the next exchange handshakes again. */
#ifndef IM_LINK_H
#define IM_LINK_H

#include <nng/nng.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "chan.h"
#include "err.h"
#include "keys.h"

enum link_msg {
    LINK_MSG_HS1 = 1,
    LINK_MSG_HS2 = 2,
    LINK_MSG_HS3 = 3,
    LINK_MSG_HSOK = 4,
    LINK_MSG_DATA = 5,
    LINK_MSG_ERR = 6,
};
#define LINK_SID_BYTES 8
/* Bytes a DATA message adds to its payload. */
#define LINK_DATA_OVERHEAD (1 + LINK_SID_BYTES + CHAN_OVERHEAD)

/* A handshake not finished within this is dropped by the listener. */
#define LINK_PENDING_MS 10000
/* An idle live session is expired by the listener after this. */
#define LINK_SESSION_IDLE_MS (10 * 60 * 1000)
/* An ERR message's text is cut to this many bytes when reported. */
#define LINK_ERR_TEXT_MAX 300

/* Reasons the listening side refuses a message before a peer is known: the
 * channel's own (enum chan_reject), plus these. */
#define LINK_REJECT_UNKNOWN_SESSION CHAN_REJECT_COUNT
#define LINK_REJECT_BAD_MESSAGE (CHAN_REJECT_COUNT + 1)
#define LINK_REJECT_COUNT (CHAN_REJECT_COUNT + 2)
const char *link_reject_name(int reason);

/* NNG error -> IM_E*, with "what: reason" in e. */
int link_from_nng(int rv, struct im_err *e, const char *what);

/* An ERR message (NULL if out of memory). */
nng_msg *link_err_msg(int code, const char *text);

/* ---- the dialling side ---- */

struct link_dial {
    nng_socket sock;
    int sock_open;
    _Atomic int pipes;          /* connected pipes (0: NNG is redialling) */
    char name[64];              /* the peer, for messages ("NYC", "c2") */
    void (*on_pipe)(void *arg); /* called when a pipe connects; may be NULL */
    void *pipe_arg;
    /* Owned by the thread that drives the link. */
    struct chan_session cs;
    int has_session;
    uint8_t sid[LINK_SID_BYTES];
    /* Shared with status readers: under mu. */
    pthread_mutex_t mu;
    uint64_t bytes_in, bytes_out;
    uint64_t chan_rejected[CHAN_REJECT_COUNT];      /* of ended sessions */
    uint64_t live_chan_rejected[CHAN_REJECT_COUNT]; /* of the live one */
};

/* Prepares d (no socket yet): name is copied; on_pipe (may be NULL) is
 * called, on an NNG thread, whenever a pipe connects. link_dial_fini is
 * due after it. */
void link_dial_init(struct link_dial *d, const char *name,
                    void (*on_pipe)(void *arg), void *pipe_arg);

/* Opens a req socket dialling url in the background (NNG redials with
 * back-off between reconnect_ms_min and _max), with receive limit recv_max
 * and send/receive timeout timeout_ms. On failure the socket is closed. */
int link_dial_open(struct link_dial *d, const char *url, size_t recv_max,
                   int timeout_ms, int reconnect_ms_min, int reconnect_ms_max,
                   struct im_err *e);

/* Closes the socket: a call blocked in it returns IM_ECLOSED. Then no
 * other call but link_dial_fini. */
void link_dial_close(struct link_dial *d);
void link_dial_fini(struct link_dial *d);

/* Handshakes a new session (the responder must prove expect_pk if not NULL,
 * and be pinned). Errors: the channel's (lib/chan.h), the peer's ERR
 * (its code and text), IM_EPROTO for an unexpected reply, NNG's. */
int link_dial_handshake(struct link_dial *d, const struct im_key *self,
                        const uint8_t cluster_id[CHAN_CLUSTER_ID_BYTES],
                        const uint8_t expect_pk[KEY_PUB_BYTES],
                        chan_pinned_fn pinned, void *pinned_arg,
                        struct im_err *e);

/* Seals plain into one DATA request and opens the reply: on success *reply
 * points into *rep (the caller frees it with nng_msg_free) and holds
 * *reply_size bytes. Any failure leaves the session as it was; the caller
 * drops it (link_dial_drop) after a transport or channel error. */
int link_dial_call(struct link_dial *d, const uint8_t *plain, size_t plain_size,
                   nng_msg **rep, uint8_t **reply, size_t *reply_size,
                   struct im_err *e);

/* Ends the session (counting its rejections). */
void link_dial_drop(struct link_dial *d);

/* Adds bytes moved on this peer's behalf elsewhere (its own dialled link
 * to our listener) to the counters. */
void link_dial_count(struct link_dial *d, uint64_t in, uint64_t out);

/* A snapshot of the counters; rejected holds CHAN_REJECT_COUNT. */
void link_dial_counters(struct link_dial *d, uint64_t *bytes_in,
                        uint64_t *bytes_out, uint64_t *rejected);

/* ---- pipelined calls on the dialling side ----
 *
 * link_dial_call has one request in flight on the socket. A link_call is
 * one more slot: an NNG context of the dialler's socket (req/rep matches
 * each reply to its context), so that several requests of one session can
 * be in flight at once. Frames are sealed in the order the calls start
 * and may be answered in any order (the channel's replay window takes
 * them). All calls of a dialler, and link_dial_handshake, are driven by
 * one thread; only the completion runs on NNG's, and it only marks the
 * call done and calls on_done. */

struct link_call {
    struct link_dial *d;
    nng_ctx ctx;
    nng_aio *aio;
    int open;
    int busy;                 /* started and not yet finished (driver's) */
    size_t out_bytes;
    int timeout_ms;
    /* Written by NNG's thread, read by the driver after done is set. */
    _Atomic int phase;        /* 0 idle, 1 sending, 2 receiving */
    _Atomic int done;         /* the call completed (result holds) */
    _Atomic int result;       /* NNG's code */
    void (*on_done)(void *arg);
    void *done_arg;
};

/* Opens call c on d's current socket. on_done(done_arg) is called on an
 * NNG thread when a call completes (it must not block). link_call_fini is
 * due after it, before d's socket is reopened. */
int link_call_init(struct link_call *c, struct link_dial *d,
                   void (*on_done)(void *arg), void *done_arg,
                   struct im_err *e);

/* Seals plain under d's session and sends it on c, expecting the reply
 * within timeout_ms. c must be idle (!c->busy). */
int link_call_start(struct link_call *c, const uint8_t *plain,
                    size_t plain_size, int timeout_ms, struct im_err *e);

/* 1 if c is busy and has completed: link_call_finish may take it. */
int link_call_ready(struct link_call *c);

/* Takes the result of a completed call, as link_dial_call returns it: on
 * success *reply points into *rep (the caller frees it with nng_msg_free).
 * c is idle again either way. */
int link_call_finish(struct link_call *c, nng_msg **rep, uint8_t **reply,
                     size_t *reply_size, struct im_err *e);

/* Closes c, abandoning its call if one is in flight (its reply, if it
 * comes, is dropped by NNG). Waits for the completion to have run. */
void link_call_fini(struct link_call *c);

/* ---- the listening side ---- */

/* Serves one request of peer (the index peer_of gave its key): reply is a
 * malloc'd buffer the server frees. A non-zero return is sent as ERR with
 * e's message. */
typedef int (*link_serve_fn)(void *arg, int peer, const uint8_t *plain,
                             size_t plain_size, uint8_t **reply,
                             size_t *reply_size, struct im_err *e);

/* The index (0..peers_count) of a pinned peer's key, or -1 if not pinned. */
typedef int (*link_peer_fn)(void *arg, const uint8_t pk[KEY_PUB_BYTES]);

/* Answers a message that is not link traffic (first byte not a link kind).
 * Takes req; returns the reply (NULL: no answer, the requester times out). */
typedef nng_msg *(*link_other_fn)(void *arg, nng_msg *req);

struct link_server_cfg {
    const char *what; /* "peer", "coordinator": for logs */
    const struct im_key *key;
    uint8_t cluster_id[CHAN_CLUSTER_ID_BYTES];
    size_t peers_count; /* identities: indexes 0..peers_count-1 */
    link_peer_fn peer_of;
    const char *(*peer_name)(void *arg, int peer);
    link_serve_fn serve;
    link_other_fn other; /* NULL: such messages are refused */
    void *arg;
    size_t recv_max;
    int workers; /* threads serving requests, 1..64 */
};

struct link_srv_session {
    int state; /* 0 free, 1 handshake pending, 2 live */
    uint8_t sid[LINK_SID_BYTES];
    struct chan_hs hs;
    struct chan_session cs;
    int peer;
    uint64_t last_ms;
};

struct link_server {
    struct link_server_cfg cfg;
    nng_socket sock;
    int sock_open;
    pthread_t workers[64];
    int workers_started;
    /* Sessions and counters: under mu (which also serialises their crypto). */
    pthread_mutex_t mu;
    struct link_srv_session *sessions;
    size_t sessions_count;
    uint64_t rejected[LINK_REJECT_COUNT];
    uint64_t (
        *ended_rejected)[CHAN_REJECT_COUNT]; /* per peer, of ended sessions */
};

/* Listens on url and starts the workers. cfg is copied; what it points to
 * is borrowed until link_server_close. On failure everything is closed. */
int link_server_start(struct link_server *s, const char *url,
                      const struct link_server_cfg *cfg, struct im_err *e);

/* Stops the workers, closes the socket and wipes every session. */
void link_server_close(struct link_server *s);

/* Adds each peer's channel rejections (ended and live sessions on this
 * side) to per_peer[peer][reason] (peers_count rows) and the listener-wide
 * ones to node (LINK_REJECT_COUNT). Either may be NULL. */
void link_server_counters(struct link_server *s,
                          uint64_t (*per_peer)[CHAN_REJECT_COUNT],
                          uint64_t *node);

#endif
