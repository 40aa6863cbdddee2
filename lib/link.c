/* link: see link.h. */
#include "link.h"

#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "tsan.h"

static const char *const reject_extra[] = {"unknown-session", "bad-message"};

const char *
link_reject_name(int reason)
{
    if (reason >= 0 && reason < CHAN_REJECT_COUNT)
        return chan_reject_name(reason);
    if (reason >= CHAN_REJECT_COUNT && reason < LINK_REJECT_COUNT)
        return reject_extra[reason - CHAN_REJECT_COUNT];
    return "unknown";
}

int
link_from_nng(int rv, struct im_err *e, const char *what)
{
    switch (rv) {
    case 0: return 0;
    case NNG_ETIMEDOUT: return im_errf(e, IM_ETIMEDOUT, "%s: timed out", what);
    case NNG_ECLOSED: return im_errf(e, IM_ECLOSED, "%s: closed", what);
    case NNG_ENOMEM: return im_errf(e, IM_ENOMEM, "%s: out of memory", what);
    case NNG_EADDRINVAL:
    case NNG_EINVAL:
        return im_errf(e, IM_EINVAL, "%s: %s", what, nng_strerror(rv));
    case NNG_EMSGSIZE:
        return im_errf(e, IM_ETOOBIG, "%s: %s", what, nng_strerror(rv));
    default: return im_errf(e, IM_EUNREACH, "%s: %s", what, nng_strerror(rv));
    }
}

nng_msg *
link_err_msg(int code, const char *text)
{
    nng_msg *m;
    uint8_t hdr[5];
    uint32_t c = (uint32_t)-code;
    hdr[0] = LINK_MSG_ERR;
    hdr[1] = (uint8_t)(c >> 24);
    hdr[2] = (uint8_t)(c >> 16);
    hdr[3] = (uint8_t)(c >> 8);
    hdr[4] = (uint8_t)c;
    if (nng_msg_alloc(&m, 0) != 0)
        return NULL;
    if (nng_msg_append(m, hdr, sizeof hdr) != 0 ||
        nng_msg_append(m, text, strlen(text)) != 0) {
        nng_msg_free(m);
        return NULL;
    }
    return m;
}

/* Seals plain into a DATA message for session cs. */
static int
seal_msg(struct chan_session *cs, const uint8_t sid[LINK_SID_BYTES],
         const uint8_t *plain, size_t plain_size, nng_msg **out,
         struct im_err *e)
{
    nng_msg *m;
    uint8_t *b, *frame;
    int rv;

    if ((rv = nng_msg_alloc(&m, LINK_DATA_OVERHEAD + plain_size)) != 0)
        return link_from_nng(rv, e, "allocate message");
    b = nng_msg_body(m);
    b[0] = LINK_MSG_DATA;
    memcpy(b + 1, sid, LINK_SID_BYTES);
    frame = b + 1 + LINK_SID_BYTES;
    memcpy(frame + CHAN_HEADER_BYTES, plain, plain_size);
    if ((rv = chan_seal_inplace(cs, clock_mono_ms(), frame,
                                plain_size + CHAN_OVERHEAD, e)) != 0) {
        nng_msg_free(m);
        return rv;
    }
    *out = m;
    return 0;
}

static void
chan_count_into(uint64_t *dst, const struct chan_session *cs)
{
    struct chan_stats st;
    chan_stats_get(cs, &st);
    for (int r = 0; r < CHAN_REJECT_COUNT; r++)
        dst[r] += st.rejected[r];
}

/* A message of kind, then the given parts. */
static int
msg_build(nng_msg **out, uint8_t kind, const uint8_t *a, size_t a_size,
          const uint8_t *b, size_t b_size)
{
    nng_msg *m;
    int rv;
    if ((rv = nng_msg_alloc(&m, 0)) != 0)
        return rv;
    if ((rv = nng_msg_append(m, &kind, 1)) != 0 ||
        (a_size && (rv = nng_msg_append(m, a, a_size)) != 0) ||
        (b_size && (rv = nng_msg_append(m, b, b_size)) != 0)) {
        nng_msg_free(m);
        return rv;
    }
    *out = m;
    return 0;
}

/* ---- the dialling side ---- */

static void
pipe_event(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
    struct link_dial *d = arg;
    (void)pipe;
    /* NNG calls this on its own threads, after link_dial_open handed d
     * over (tsan.h). */
    TSAN_ACQUIRE(d);
    if (ev == NNG_PIPE_EV_ADD_POST) {
        atomic_fetch_add(&d->pipes, 1);
        if (d->on_pipe != NULL)
            d->on_pipe(d->pipe_arg);
    } else if (ev == NNG_PIPE_EV_REM_POST) {
        atomic_fetch_sub(&d->pipes, 1);
    }
}

void
link_dial_init(struct link_dial *d, const char *name,
               void (*on_pipe)(void *arg), void *pipe_arg)
{
    memset(d, 0, sizeof *d);
    pthread_mutex_init(&d->mu, NULL);
    snprintf(d->name, sizeof d->name, "%s", name);
    d->on_pipe = on_pipe;
    d->pipe_arg = pipe_arg;
}

int
link_dial_open(struct link_dial *d, const char *url, size_t recv_max,
               int timeout_ms, int reconnect_ms_min, int reconnect_ms_max,
               struct im_err *e)
{
    int rv;

    if ((rv = nng_req0_open(&d->sock)) != 0)
        return link_from_nng(rv, e, "open socket");
    d->sock_open = 1;
    nng_socket_set_size(d->sock, NNG_OPT_RECVMAXSZ, recv_max);
    nng_socket_set_ms(d->sock, NNG_OPT_RECVTIMEO, timeout_ms);
    nng_socket_set_ms(d->sock, NNG_OPT_SENDTIMEO, timeout_ms);
    nng_socket_set_ms(d->sock, NNG_OPT_RECONNMINT, reconnect_ms_min);
    nng_socket_set_ms(d->sock, NNG_OPT_RECONNMAXT, reconnect_ms_max);
    /* A resent request would be a replayed frame: never resend; a request
     * without an answer is abandoned with its session instead. */
    nng_socket_set_ms(d->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    TSAN_RELEASE(d);
    nng_pipe_notify(d->sock, NNG_PIPE_EV_ADD_POST, pipe_event, d);
    nng_pipe_notify(d->sock, NNG_PIPE_EV_REM_POST, pipe_event, d);
    /* Non-blocking: a peer that is down now is redialled in the
     * background, with back-off. */
    if ((rv = nng_dial(d->sock, url, NULL, NNG_FLAG_NONBLOCK)) != 0) {
        rv = link_from_nng(rv, e, url);
        link_dial_close(d);
        return rv;
    }
    return 0;
}

void
link_dial_close(struct link_dial *d)
{
    if (d->sock_open)
        nng_close(d->sock);
    d->sock_open = 0;
}

void
link_dial_fini(struct link_dial *d)
{
    link_dial_drop(d);
    pthread_mutex_destroy(&d->mu);
}

void
link_dial_drop(struct link_dial *d)
{
    if (!d->has_session)
        return;
    pthread_mutex_lock(&d->mu);
    chan_count_into(d->chan_rejected, &d->cs);
    memset(d->live_chan_rejected, 0, sizeof d->live_chan_rejected);
    pthread_mutex_unlock(&d->mu);
    chan_session_wipe(&d->cs);
    d->has_session = 0;
}

void
link_dial_count(struct link_dial *d, uint64_t in, uint64_t out)
{
    pthread_mutex_lock(&d->mu);
    d->bytes_in += in;
    d->bytes_out += out;
    pthread_mutex_unlock(&d->mu);
}

void
link_dial_counters(struct link_dial *d, uint64_t *bytes_in, uint64_t *bytes_out,
                   uint64_t *rejected)
{
    pthread_mutex_lock(&d->mu);
    *bytes_in = d->bytes_in;
    *bytes_out = d->bytes_out;
    for (int r = 0; r < CHAN_REJECT_COUNT; r++)
        rejected[r] = d->chan_rejected[r] + d->live_chan_rejected[r];
    pthread_mutex_unlock(&d->mu);
}

/* One request and its reply, counted; an ERR reply becomes its error. */
static int
exchange(struct link_dial *d, nng_msg *req, nng_msg **rep, struct im_err *e)
{
    size_t out = nng_msg_len(req);
    const uint8_t *b;
    int rv;

    if ((rv = nng_sendmsg(d->sock, req, 0)) != 0) {
        nng_msg_free(req);
        return link_from_nng(rv, e, "send");
    }
    if ((rv = nng_recvmsg(d->sock, rep, 0)) != 0)
        return link_from_nng(rv, e, "receive");
    link_dial_count(d, nng_msg_len(*rep), out);
    b = nng_msg_body(*rep);
    if (nng_msg_len(*rep) >= 5 && b[0] == LINK_MSG_ERR) {
        uint32_t c = (uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 |
                     (uint32_t)b[3] << 8 | b[4];
        int len = (int)(nng_msg_len(*rep) - 5);
        if (len > LINK_ERR_TEXT_MAX)
            len = LINK_ERR_TEXT_MAX;
        rv = im_errf(e, c > 0 && c < 1000 ? -(int)c : IM_EPROTO,
                     "%s refused: %.*s", d->name, len, (const char *)b + 5);
        nng_msg_free(*rep);
        *rep = NULL;
        return rv;
    }
    return 0;
}

int
link_dial_handshake(struct link_dial *d, const struct im_key *self,
                    const uint8_t cluster_id[CHAN_CLUSTER_ID_BYTES],
                    const uint8_t expect_pk[KEY_PUB_BYTES],
                    chan_pinned_fn pinned, void *pinned_arg, struct im_err *e)
{
    struct chan_hs hs;
    uint8_t msg[CHAN_HS_MSG_MAX];
    size_t msg_size = sizeof msg;
    nng_msg *m, *rep = NULL;
    const uint8_t *b;
    int rv;

    link_dial_drop(d);
    if ((rv = chan_hs_initiate(&hs, self, cluster_id, expect_pk, msg, &msg_size,
                               e)) != 0)
        return rv;
    if ((rv = msg_build(&m, LINK_MSG_HS1, msg, msg_size, NULL, 0)) != 0) {
        chan_hs_wipe(&hs);
        return link_from_nng(rv, e, "handshake");
    }
    if ((rv = exchange(d, m, &rep, e)) != 0) {
        chan_hs_wipe(&hs);
        return rv;
    }
    b = nng_msg_body(rep);
    if (nng_msg_len(rep) < 1 + LINK_SID_BYTES || b[0] != LINK_MSG_HS2) {
        nng_msg_free(rep);
        chan_hs_wipe(&hs);
        return im_errf(e, IM_EPROTO, "handshake: unexpected reply from %s",
                       d->name);
    }
    memcpy(d->sid, b + 1, LINK_SID_BYTES);
    msg_size = sizeof msg;
    rv = chan_hs_finish_initiator(&hs, b + 1 + LINK_SID_BYTES,
                                  nng_msg_len(rep) - 1 - LINK_SID_BYTES, pinned,
                                  pinned_arg, msg, &msg_size, &d->cs, e);
    nng_msg_free(rep);
    if (rv != 0) {
        pthread_mutex_lock(&d->mu);
        if (hs.reject >= 0 && hs.reject < CHAN_REJECT_COUNT)
            d->chan_rejected[hs.reject]++;
        pthread_mutex_unlock(&d->mu);
        return rv;
    }
    d->has_session = 1;
    if ((rv = msg_build(&m, LINK_MSG_HS3, d->sid, LINK_SID_BYTES, msg,
                        msg_size)) != 0) {
        link_dial_drop(d);
        return link_from_nng(rv, e, "handshake");
    }
    if ((rv = exchange(d, m, &rep, e)) != 0) {
        link_dial_drop(d);
        return rv;
    }
    b = nng_msg_body(rep);
    if (nng_msg_len(rep) != 1 + LINK_SID_BYTES || b[0] != LINK_MSG_HSOK ||
        memcmp(b + 1, d->sid, LINK_SID_BYTES) != 0) {
        nng_msg_free(rep);
        link_dial_drop(d);
        return im_errf(e, IM_EPROTO,
                       "handshake: unexpected confirmation from %s", d->name);
    }
    nng_msg_free(rep);
    return 0;
}

/* Opens a DATA reply of the session in place (the plaintext points into
 * rep, which is handed to the caller); rep is freed on any error. */
static int
open_reply(struct link_dial *d, nng_msg *rep, nng_msg **rep_out,
           uint8_t **reply, size_t *reply_size, struct im_err *e)
{
    const uint8_t *b = nng_msg_body(rep);
    struct chan_stats cst;
    int rv;

    if (nng_msg_len(rep) < 1 + LINK_SID_BYTES || b[0] != LINK_MSG_DATA ||
        memcmp(b + 1, d->sid, LINK_SID_BYTES) != 0) {
        nng_msg_free(rep);
        return im_errf(e, IM_EPROTO, "unexpected reply from %s", d->name);
    }
    rv = chan_open_inplace(&d->cs, clock_mono_ms(),
                           (uint8_t *)nng_msg_body(rep) + 1 + LINK_SID_BYTES,
                           nng_msg_len(rep) - 1 - LINK_SID_BYTES, reply,
                           reply_size, e);
    chan_stats_get(&d->cs, &cst);
    pthread_mutex_lock(&d->mu);
    memcpy(d->live_chan_rejected, cst.rejected, sizeof cst.rejected);
    pthread_mutex_unlock(&d->mu);
    if (rv != 0) {
        nng_msg_free(rep);
        return rv;
    }
    *rep_out = rep;
    return 0;
}

int
link_dial_call(struct link_dial *d, const uint8_t *plain, size_t plain_size,
               nng_msg **rep_out, uint8_t **reply, size_t *reply_size,
               struct im_err *e)
{
    nng_msg *m, *rep = NULL;
    int rv;

    if (!d->has_session)
        return im_errf(e, IM_ESTATE, "%s: no session", d->name);
    if ((rv = seal_msg(&d->cs, d->sid, plain, plain_size, &m, e)) != 0)
        return rv;
    if ((rv = exchange(d, m, &rep, e)) != 0)
        return rv;
    return open_reply(d, rep, rep_out, reply, reply_size, e);
}

/* ---- pipelined calls ---- */

static void
call_cb(void *arg)
{
    struct link_call *c = arg;
    int rv;

    TSAN_ACQUIRE(c);
    rv = nng_aio_result(c->aio);
    if (atomic_load(&c->phase) == 1 && rv == 0) {
        /* Sent: now wait for its reply on the same context. */
        atomic_store(&c->phase, 2);
        nng_aio_set_timeout(c->aio, c->timeout_ms);
        /* Handed to NNG again: its completion may run on another thread. */
        TSAN_RELEASE(c);
        nng_ctx_recv(c->ctx, c->aio);
        return;
    }
    if (atomic_load(&c->phase) == 1) {
        nng_msg *m = nng_aio_get_msg(c->aio);
        if (m != NULL)
            nng_msg_free(m); /* not sent: still ours */
        nng_aio_set_msg(c->aio, NULL);
    }
    atomic_store(&c->result, rv);
    atomic_store(&c->phase, 0);
    atomic_store(&c->done, 1);
    if (c->on_done != NULL)
        c->on_done(c->done_arg);
    /* Paired with the acquire after nng_aio_wait / nng_aio_stop, which
     * return only after this callback did. */
    TSAN_RELEASE(c);
}

int
link_call_init(struct link_call *c, struct link_dial *d,
               void (*on_done)(void *arg), void *done_arg, struct im_err *e)
{
    int rv;

    memset(c, 0, sizeof *c);
    c->d = d;
    c->on_done = on_done;
    c->done_arg = done_arg;
    if ((rv = nng_ctx_open(&c->ctx, d->sock)) != 0)
        return link_from_nng(rv, e, "open context");
    if ((rv = nng_aio_alloc(&c->aio, call_cb, c)) != 0) {
        nng_ctx_close(c->ctx);
        return link_from_nng(rv, e, "allocate aio");
    }
    c->open = 1;
    return 0;
}

int
link_call_start(struct link_call *c, const uint8_t *plain, size_t plain_size,
                int timeout_ms, struct im_err *e)
{
    struct link_dial *d = c->d;
    nng_msg *m;
    int rv;

    if (!c->open || c->busy)
        return im_errf(e, IM_ESTATE, "%s: call slot not free", d->name);
    if (!d->has_session)
        return im_errf(e, IM_ESTATE, "%s: no session", d->name);
    if ((rv = seal_msg(&d->cs, d->sid, plain, plain_size, &m, e)) != 0)
        return rv;
    c->busy = 1;
    c->out_bytes = nng_msg_len(m);
    c->timeout_ms = timeout_ms;
    atomic_store(&c->done, 0);
    atomic_store(&c->result, 0);
    atomic_store(&c->phase, 1);
    nng_aio_set_msg(c->aio, m);
    nng_aio_set_timeout(c->aio, timeout_ms);
    TSAN_RELEASE(c);
    nng_ctx_send(c->ctx, c->aio);
    return 0;
}

int
link_call_ready(struct link_call *c)
{
    return c->busy && atomic_load(&c->done);
}

int
link_call_finish(struct link_call *c, nng_msg **rep_out, uint8_t **reply,
                 size_t *reply_size, struct im_err *e)
{
    struct link_dial *d = c->d;
    const uint8_t *b;
    nng_msg *rep;
    int rv;

    nng_aio_wait(c->aio);
    TSAN_ACQUIRE(c);
    c->busy = 0;
    if ((rv = atomic_load(&c->result)) != 0)
        return link_from_nng(rv, e, rv == NNG_ETIMEDOUT ? "receive" : "call");
    rep = nng_aio_get_msg(c->aio);
    nng_aio_set_msg(c->aio, NULL);
    if (rep == NULL)
        return im_errf(e, IM_EPROTO, "%s: no reply", d->name);
    link_dial_count(d, nng_msg_len(rep), c->out_bytes);
    b = nng_msg_body(rep);
    if (nng_msg_len(rep) >= 5 && b[0] == LINK_MSG_ERR) {
        uint32_t code = (uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 |
                        (uint32_t)b[3] << 8 | b[4];
        int len = (int)(nng_msg_len(rep) - 5);
        if (len > LINK_ERR_TEXT_MAX)
            len = LINK_ERR_TEXT_MAX;
        rv = im_errf(e, code > 0 && code < 1000 ? -(int)code : IM_EPROTO,
                     "%s refused: %.*s", d->name, len, (const char *)b + 5);
        nng_msg_free(rep);
        return rv;
    }
    return open_reply(d, rep, rep_out, reply, reply_size, e);
}

void
link_call_fini(struct link_call *c)
{
    nng_msg *m;

    if (!c->open)
        return;
    /* Stopped for good (a completion that would start the receive fails
     * at once): the slot is re-made for the next session. */
    nng_aio_stop(c->aio);
    TSAN_ACQUIRE(c);
    if ((m = nng_aio_get_msg(c->aio)) != NULL)
        nng_msg_free(m);
    nng_aio_free(c->aio);
    nng_ctx_close(c->ctx);
    c->busy = 0;
    c->open = 0;
}

/* ---- the listening side ---- */

/* Under mu. */
static struct link_srv_session *
session_find(struct link_server *s, const uint8_t *sid, int state)
{
    for (size_t i = 0; i < s->sessions_count; i++)
        if (s->sessions[i].state == state &&
            memcmp(s->sessions[i].sid, sid, LINK_SID_BYTES) == 0)
            return &s->sessions[i];
    return NULL;
}

static void
session_free(struct link_srv_session *x)
{
    if (x->state == 1)
        chan_hs_wipe(&x->hs);
    if (x->state == 2)
        chan_session_wipe(&x->cs);
    memset(x, 0, sizeof *x);
}

/* Under mu: a live session ends; its rejections stay counted. */
static void
session_end(struct link_server *s, struct link_srv_session *x)
{
    if (x->state == 2)
        chan_count_into(s->ended_rejected[x->peer], &x->cs);
    session_free(x);
}

/* Under mu: a free slot, expiring idle sessions and, if still full, the
 * oldest pending handshake. */
static struct link_srv_session *
session_alloc(struct link_server *s, uint64_t now)
{
    struct link_srv_session *oldest = NULL;
    for (size_t i = 0; i < s->sessions_count; i++) {
        struct link_srv_session *x = &s->sessions[i];
        if (x->state == 2 && now - x->last_ms > LINK_SESSION_IDLE_MS)
            session_end(s, x);
        if (x->state == 1 && now - x->last_ms > LINK_PENDING_MS)
            session_free(x);
        if (x->state == 0)
            return x;
        if (x->state == 1 && (oldest == NULL || x->last_ms < oldest->last_ms))
            oldest = x;
    }
    if (oldest != NULL)
        session_free(oldest);
    return oldest;
}

static int
srv_pinned(void *arg, const uint8_t pk[KEY_PUB_BYTES])
{
    struct link_server *s = arg;
    return s->cfg.peer_of(s->cfg.arg, pk) >= 0 ? 0 : IM_EUNKNOWNKEY;
}

static nng_msg *
serve_hs1(struct link_server *s, const uint8_t *body, size_t size, uint64_t now)
{
    struct link_srv_session *x;
    struct im_err e = {0};
    uint8_t msg2[CHAN_HS_MSG_MAX], sid[LINK_SID_BYTES];
    size_t msg2_size = sizeof msg2;
    nng_msg *m;

    pthread_mutex_lock(&s->mu);
    if ((x = session_alloc(s, now)) == NULL) {
        pthread_mutex_unlock(&s->mu);
        return link_err_msg(IM_EBUSY, "too many handshakes in progress");
    }
    if (chan_hs_respond(&x->hs, s->cfg.key, s->cfg.cluster_id, body, size, msg2,
                        &msg2_size, &e) != 0) {
        s->rejected[x->hs.reject >= 0 ? x->hs.reject : CHAN_REJECT_MALFORMED]++;
        memset(x, 0, sizeof *x);
        pthread_mutex_unlock(&s->mu);
        log_debug("%s handshake refused: %s", s->cfg.what, im_errmsg(&e));
        return link_err_msg(e.code, im_errmsg(&e));
    }
    x->state = 1;
    x->last_ms = now;
    randombytes_buf(x->sid, LINK_SID_BYTES);
    memcpy(sid, x->sid, LINK_SID_BYTES);
    pthread_mutex_unlock(&s->mu);
    if (msg_build(&m, LINK_MSG_HS2, sid, LINK_SID_BYTES, msg2, msg2_size) != 0)
        return NULL;
    return m;
}

static nng_msg *
serve_hs3(struct link_server *s, const uint8_t *body, size_t size, uint64_t now)
{
    struct link_srv_session *x;
    struct chan_session cs;
    struct im_err e = {0};
    nng_msg *m;
    int peer;

    if (size < LINK_SID_BYTES)
        return link_err_msg(IM_EPROTO, "malformed handshake message");
    pthread_mutex_lock(&s->mu);
    if ((x = session_find(s, body, 1)) == NULL) {
        s->rejected[LINK_REJECT_UNKNOWN_SESSION]++;
        pthread_mutex_unlock(&s->mu);
        return link_err_msg(IM_ENOTFOUND, "no such handshake (expired?)");
    }
    if (chan_hs_finish_responder(&x->hs, body + LINK_SID_BYTES,
                                 size - LINK_SID_BYTES, srv_pinned, s, &cs,
                                 &e) != 0) {
        s->rejected[x->hs.reject >= 0 ? x->hs.reject : CHAN_REJECT_MALFORMED]++;
        memset(x, 0, sizeof *x);
        pthread_mutex_unlock(&s->mu);
        log_warn("%s handshake refused: %s", s->cfg.what, im_errmsg(&e));
        return link_err_msg(e.code, im_errmsg(&e));
    }
    peer = s->cfg.peer_of(s->cfg.arg, cs.peer_pk);
    /* One live session per peer on this side: a new handshake replaces the
     * old one (the peer restarted or timed out). */
    for (size_t i = 0; i < s->sessions_count; i++)
        if (s->sessions[i].state == 2 && s->sessions[i].peer == peer)
            session_end(s, &s->sessions[i]);
    x->cs = cs;
    x->state = 2;
    x->peer = peer;
    x->last_ms = now;
    pthread_mutex_unlock(&s->mu);
    log_info("%s %s: session accepted", s->cfg.what,
             s->cfg.peer_name ? s->cfg.peer_name(s->cfg.arg, peer) : "?");
    if (msg_build(&m, LINK_MSG_HSOK, body, LINK_SID_BYTES, NULL, 0) != 0)
        return NULL;
    return m;
}

static nng_msg *
serve_data(struct link_server *s, uint8_t *body, size_t size, uint64_t now)
{
    struct link_srv_session *x;
    struct im_err e = {0};
    uint8_t sid[LINK_SID_BYTES], *plain, *reply = NULL;
    size_t plain_size, reply_size = 0;
    nng_msg *m = NULL;
    int peer, rv;

    if (size < LINK_SID_BYTES)
        return link_err_msg(IM_EPROTO, "malformed data message");
    memcpy(sid, body, LINK_SID_BYTES);
    pthread_mutex_lock(&s->mu);
    if ((x = session_find(s, sid, 2)) == NULL) {
        s->rejected[LINK_REJECT_UNKNOWN_SESSION]++;
        pthread_mutex_unlock(&s->mu);
        return link_err_msg(IM_ENOTFOUND, "no such session: handshake again");
    }
    rv = chan_open_inplace(&x->cs, clock_mono_ms(), body + LINK_SID_BYTES,
                           size - LINK_SID_BYTES, &plain, &plain_size, &e);
    if (rv != 0) {
        /* Dropped and counted (chan_stats); the session stays for the
         * genuine peer, whose next frame is fine. */
        pthread_mutex_unlock(&s->mu);
        return link_err_msg(rv, "frame refused");
    }
    x->last_ms = now;
    peer = x->peer;
    pthread_mutex_unlock(&s->mu);

    rv = s->cfg.serve(s->cfg.arg, peer, plain, plain_size, &reply, &reply_size,
                      &e);
    if (rv != 0) {
        free(reply);
        return link_err_msg(rv, im_errmsg(&e));
    }
    pthread_mutex_lock(&s->mu);
    /* The session may have been replaced while we served: answer under the
     * one we opened with, if it is still there. */
    x = session_find(s, sid, 2);
    if (x != NULL)
        rv = seal_msg(&x->cs, sid, reply, reply_size, &m, &e);
    pthread_mutex_unlock(&s->mu);
    free(reply);
    if (x == NULL)
        return link_err_msg(IM_ENOTFOUND, "session replaced: handshake again");
    if (rv != 0)
        return link_err_msg(rv, im_errmsg(&e));
    return m;
}

static int
is_link_kind(uint8_t kind)
{
    return kind >= LINK_MSG_HS1 && kind <= LINK_MSG_ERR;
}

/* Takes req; returns the reply or NULL. */
static nng_msg *
serve(struct link_server *s, nng_msg *req)
{
    uint8_t *body = nng_msg_body(req);
    size_t size = nng_msg_len(req);
    uint64_t now = clock_mono_ms();
    nng_msg *rep;

    if (size >= 1 && !is_link_kind(body[0]) && s->cfg.other != NULL)
        return s->cfg.other(s->cfg.arg, req);
    switch (size >= 1 ? body[0] : 0) {
    case LINK_MSG_HS1: rep = serve_hs1(s, body + 1, size - 1, now); break;
    case LINK_MSG_HS3: rep = serve_hs3(s, body + 1, size - 1, now); break;
    case LINK_MSG_DATA: rep = serve_data(s, body + 1, size - 1, now); break;
    default:
        pthread_mutex_lock(&s->mu);
        s->rejected[LINK_REJECT_BAD_MESSAGE]++;
        pthread_mutex_unlock(&s->mu);
        rep = link_err_msg(IM_EPROTO, size >= 1 ? "unknown message kind"
                                                : "empty message");
        break;
    }
    nng_msg_free(req);
    return rep;
}

static void *
worker_main(void *arg)
{
    struct link_server *s = arg;
    nng_ctx ctx;
    nng_aio *aio;

    if (nng_ctx_open(&ctx, s->sock) != 0 ||
        nng_aio_alloc(&aio, NULL, NULL) != 0) {
        log_error("%s: cannot start a server worker", s->cfg.what);
        return NULL;
    }
    for (;;) {
        nng_msg *req, *rep;
        nng_ctx_recv(ctx, aio);
        nng_aio_wait(aio);
        if (nng_aio_result(aio) != 0) {
            if (nng_aio_result(aio) == NNG_ECLOSED)
                break;
            continue;
        }
        req = nng_aio_get_msg(aio);
        rep = serve(s, req);
        if (rep == NULL)
            continue; /* out of memory: the requester times out */
        nng_aio_set_msg(aio, rep);
        nng_ctx_send(ctx, aio);
        nng_aio_wait(aio);
        if (nng_aio_result(aio) != 0) {
            nng_msg_free(rep);
            if (nng_aio_result(aio) == NNG_ECLOSED)
                break;
        }
    }
    nng_aio_free(aio);
    nng_ctx_close(ctx);
    return NULL;
}

int
link_server_start(struct link_server *s, const char *url,
                  const struct link_server_cfg *cfg, struct im_err *e)
{
    int rv;

    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->cfg = *cfg;
    if (s->cfg.workers < 1 || s->cfg.workers > 64)
        s->cfg.workers = 4;
    /* One live session per peer, plus as many pending handshakes. */
    s->sessions_count = 2 * cfg->peers_count + 16;
    s->sessions = calloc(s->sessions_count, sizeof *s->sessions);
    s->ended_rejected = calloc(cfg->peers_count ? cfg->peers_count : 1,
                               sizeof *s->ended_rejected);
    if (s->sessions == NULL || s->ended_rejected == NULL) {
        rv = im_errf(e, IM_ENOMEM, "%s listener: out of memory", cfg->what);
        goto fail;
    }
    if ((rv = nng_rep0_open(&s->sock)) != 0) {
        rv = link_from_nng(rv, e, "open listener");
        goto fail;
    }
    s->sock_open = 1;
    nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, cfg->recv_max);
    if ((rv = nng_listen(s->sock, url, NULL, 0)) != 0) {
        rv = link_from_nng(rv, e, "listen");
        im_errwrap(e, "%s", url);
        goto fail;
    }
    for (int i = 0; i < s->cfg.workers; i++) {
        if (pthread_create(&s->workers[i], NULL, worker_main, s) != 0) {
            rv = im_errf(e, IM_ENOMEM, "start %s workers", cfg->what);
            goto fail;
        }
        s->workers_started++;
    }
    return 0;
fail:
    link_server_close(s);
    return rv;
}

void
link_server_close(struct link_server *s)
{
    if (s->sock_open)
        nng_close(s->sock);
    for (int i = 0; i < s->workers_started; i++)
        pthread_join(s->workers[i], NULL);
    for (size_t i = 0; s->sessions != NULL && i < s->sessions_count; i++)
        session_free(&s->sessions[i]);
    free(s->sessions);
    free(s->ended_rejected);
    s->sessions = NULL;
    s->ended_rejected = NULL;
    s->sessions_count = 0;
    s->sock_open = 0;
    s->workers_started = 0;
    pthread_mutex_destroy(&s->mu);
}

void
link_server_counters(struct link_server *s,
                     uint64_t (*per_peer)[CHAN_REJECT_COUNT], uint64_t *node)
{
    pthread_mutex_lock(&s->mu);
    if (node != NULL)
        for (int r = 0; r < LINK_REJECT_COUNT; r++)
            node[r] += s->rejected[r];
    if (per_peer != NULL) {
        for (size_t p = 0; p < s->cfg.peers_count; p++)
            for (int r = 0; r < CHAN_REJECT_COUNT; r++)
                per_peer[p][r] += s->ended_rejected[p][r];
        for (size_t i = 0; i < s->sessions_count; i++)
            if (s->sessions[i].state == 2)
                chan_count_into(per_peer[s->sessions[i].peer],
                                &s->sessions[i].cs);
    }
    pthread_mutex_unlock(&s->mu);
}
