/* client: see client.h. */
#include "client.h"

#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "bounds.h"

static int
from_nng(int rv)
{
    switch (rv) {
    case 0: return 0;
    case NNG_ENOMEM: return IM_ENOMEM;
    case NNG_ETIMEDOUT: return IM_ETIMEDOUT;
    case NNG_EADDRINVAL:
    case NNG_EINVAL:
    case NNG_ENOTSUP: return IM_EINVAL;
    case NNG_EMSGSIZE: return IM_ETOOBIG;
    case NNG_ECLOSED: return IM_ECLOSED;
    default: return IM_EUNREACH;
    }
}

int
client_open_key(struct client *c, const char *url, const struct im_key *key,
                struct im_err *e)
{
    int rv;

    memset(c, 0, sizeof *c);
    c->key = *key;
    c->timeout_ms = CLIENT_TIMEOUT_MS_DEFAULT;
    if ((rv = nng_req0_open(&c->sock)) != 0)
        return im_errf(e, from_nng(rv), "open socket: %s", nng_strerror(rv));
    /* Never resend: a write must not be applied twice behind our back. */
    nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    nng_socket_set_ms(c->sock, NNG_OPT_RECVTIMEO, c->timeout_ms);
    nng_socket_set_ms(c->sock, NNG_OPT_SENDTIMEO, c->timeout_ms);
    nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, REPLY_SIZE_MAX);
    /* Synchronous dial: a node that is down is reported now (exit 3), not
     * after the receive timeout. */
    if ((rv = nng_dial(c->sock, url, NULL, 0)) != 0) {
        nng_close(c->sock);
        if (rv == NNG_EADDRINVAL || rv == NNG_ENOTSUP || rv == NNG_EINVAL)
            return im_errf(e, IM_EINVAL,
                           "invalid node address '%s': use tcp://HOST:PORT "
                           "or ipc:///PATH", url);
        return im_errf(e, IM_EUNREACH, "cannot reach node at %s: %s", url,
                       nng_strerror(rv));
    }
    c->open = 1;
    return 0;
}

int
client_open(struct client *c, const char *url, const char *key_path,
            struct im_err *e)
{
    struct im_key key;
    int rv;

    if ((rv = key_load(&key, key_path, e)) != 0)
        return rv;
    rv = client_open_key(c, url, &key, e);
    sodium_memzero(&key, sizeof key);
    return rv;
}

static int
node_pinned(void *arg, const uint8_t pk[KEY_PUB_BYTES])
{
    const struct client *c = arg;
    return sodium_memcmp(pk, c->node_pk, KEY_PUB_BYTES) == 0 ? 0
                                                             : IM_EUNKNOWNKEY;
}

int
client_open_secure(struct client *c, const char *url, const struct im_key *key,
                   const uint8_t node_pk[KEY_PUB_BYTES],
                   const uint8_t cluster_id[32], int timeout_ms,
                   struct im_err *e)
{
    uint64_t deadline;
    int rv;

    memset(c, 0, sizeof *c);
    c->key = *key;
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : CLIENT_TIMEOUT_MS_DEFAULT;
    c->secure = 1;
    memcpy(c->node_pk, node_pk, KEY_PUB_BYTES);
    link_dial_init(&c->dial, "node", NULL, NULL);
    if ((rv = link_dial_open(&c->dial, url, CHAN_PLAIN_MAX + LINK_DATA_OVERHEAD,
                             c->timeout_ms, 100, 1000, e)) != 0) {
        link_dial_fini(&c->dial);
        if (rv == IM_EINVAL)
            return im_errf(e, IM_EINVAL, "invalid node address '%s': use "
                                         "tcp://HOST:PORT", url);
        return rv;
    }
    /* The dial runs in the background: a node that is not there is
     * reported once the timeout has passed without a connection. */
    deadline = clock_mono_ms() + (uint64_t)c->timeout_ms;
    while (atomic_load(&c->dial.pipes) == 0 && clock_mono_ms() < deadline)
        nng_msleep(10);
    if (atomic_load(&c->dial.pipes) == 0) {
        link_dial_close(&c->dial);
        link_dial_fini(&c->dial);
        return im_errf(e, IM_EUNREACH, "cannot reach node at %s within %d ms",
                       url, c->timeout_ms);
    }
    rv = link_dial_handshake(&c->dial, &c->key, cluster_id, node_pk,
                             node_pinned, c, e);
    if (rv != 0) {
        link_dial_close(&c->dial);
        link_dial_fini(&c->dial);
        im_errwrap(e, "secure session with %s", url);
        return rv;
    }
    c->open = 1;
    return 0;
}

void
client_close(struct client *c)
{
    if (c->open && c->secure) {
        link_dial_close(&c->dial);
        link_dial_fini(&c->dial);
    } else if (c->open) {
        nng_close(c->sock);
    }
    c->open = 0;
    sodium_memzero(&c->key, sizeof c->key);
}

int
client_request_build(const struct im_key *key, Im__Op **ops, size_t n,
                     uint64_t now_ms, nng_msg **msg_out, struct im_err *e)
{
    Im__Request req = IM__REQUEST__INIT;
    Im__SignedRequest sreq = IM__SIGNED_REQUEST__INIT;
    uint8_t nonce[16], sig[KEY_SIG_BYTES];
    uint8_t *body;
    size_t body_size, total;
    nng_msg *msg;
    int rv;

    if (n == 0 || n > REQ_OPS_MAX)
        return im_errf(e, IM_ETOOBIG, "a request carries 1 to %d operations",
                       REQ_OPS_MAX);
    randombytes_buf(nonce, sizeof nonce);
    req.ts_ms = now_ms;
    req.nonce.data = nonce;
    req.nonce.len = sizeof nonce;
    req.n_ops = n;
    req.ops = ops;
    body_size = im__request__get_packed_size(&req);
    if (body_size > REQ_SIZE_MAX - 256)
        return im_errf(e, IM_ETOOBIG, "request of %zu bytes exceeds %d",
                       body_size, REQ_SIZE_MAX - 256);
    body = malloc(body_size ? body_size : 1);
    if (body == NULL)
        return im_errf(e, IM_ENOMEM, "out of memory");
    im__request__pack(&req, body);
    key_sign(key, KEY_CTX_REQUEST, body, body_size, sig);
    sreq.body.data = body;
    sreq.body.len = body_size;
    sreq.key.data = (uint8_t *)key->pk;
    sreq.key.len = KEY_PUB_BYTES;
    sreq.sig.data = sig;
    sreq.sig.len = sizeof sig;
    total = im__signed_request__get_packed_size(&sreq);
    if ((rv = nng_msg_alloc(&msg, total)) != 0) {
        free(body);
        return im_errf(e, IM_ENOMEM, "out of memory");
    }
    im__signed_request__pack(&sreq, nng_msg_body(msg));
    free(body);
    *msg_out = msg;
    return 0;
}

int
client_call(struct client *c, Im__Op **ops, size_t n, Im__Response **resp_out,
            struct im_err *e)
{
    nng_msg *msg;
    Im__Response *resp;
    int rv;

    if ((rv = client_request_build(&c->key, ops, n, clock_wall_ms(), &msg, e)) != 0)
        return rv;
    if (c->secure) {
        nng_msg *rep = NULL;
        uint8_t *plain;
        size_t plain_size;
        rv = link_dial_call(&c->dial, nng_msg_body(msg), nng_msg_len(msg), &rep,
                            &plain, &plain_size, e);
        nng_msg_free(msg);
        if (rv != 0)
            return rv == IM_ETIMEDOUT
                       ? im_errf(e, IM_ETIMEDOUT,
                                 "no answer from node within %d ms (the "
                                 "request may or may not have been applied)",
                                 c->timeout_ms)
                       : rv;
        resp = im__response__unpack(NULL, plain_size, plain);
        nng_msg_free(rep);
        if (resp == NULL)
            return im_errf(e, IM_EPROTO, "node sent an undecodable reply");
        *resp_out = resp;
        return 0;
    }
    if ((rv = nng_sendmsg(c->sock, msg, 0)) != 0) {
        nng_msg_free(msg);
        return im_errf(e, from_nng(rv), "send to node: %s", nng_strerror(rv));
    }
    if ((rv = nng_recvmsg(c->sock, &msg, 0)) != 0) {
        if (rv == NNG_ETIMEDOUT)
            return im_errf(e, IM_ETIMEDOUT,
                           "no answer from node within %d ms (the request may "
                           "or may not have been applied)", c->timeout_ms);
        return im_errf(e, from_nng(rv), "receive from node: %s",
                       nng_strerror(rv));
    }
    resp = im__response__unpack(NULL, nng_msg_len(msg), nng_msg_body(msg));
    nng_msg_free(msg);
    if (resp == NULL)
        return im_errf(e, IM_EPROTO, "node sent an undecodable reply");
    *resp_out = resp;
    return 0;
}
