/* remote: see remote.h. */
#include "remote.h"

#include <nng/protocol/reqrep0/req.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "im.pb-c.h"
#include "log.h"

static int
operator_of(void *arg, const uint8_t pk[KEY_PUB_BYTES])
{
    const struct remote *r = arg;
    for (size_t i = 0; i < r->cfg->operators_count; i++)
        if (sodium_memcmp(r->cfg->operators[i].pk, pk, KEY_PUB_BYTES) == 0)
            return (int)i;
    return -1;
}

static const char *
operator_name(void *arg, int peer)
{
    const struct remote *r = arg;
    return peer >= 0 && (size_t)peer < r->cfg->operators_count
               ? r->cfg->operators[peer].name
               : "?";
}

/* One request of the operator the session authenticated: the same signed
 * request imctl sends on loopback, handed to the node's own API. */
static int
forward(void *arg, int peer, const uint8_t *plain, size_t plain_size,
        uint8_t **reply, size_t *reply_size, struct im_err *e)
{
    struct remote *r = arg;
    Im__SignedRequest *sreq;
    nng_ctx ctx;
    nng_aio *aio = NULL;
    nng_msg *m;
    int rv;

    /* The request must be signed by the key the session proved: a session
     * is not a way to pass on someone else's signed request. */
    sreq = im__signed_request__unpack(NULL, plain_size, plain);
    if (sreq == NULL || sreq->key.len != KEY_PUB_BYTES ||
        operator_of(r, sreq->key.data) != peer) {
        if (sreq != NULL)
            im__signed_request__free_unpacked(sreq, NULL);
        return im_errf(e, IM_EDENIED, "the request is not signed by the key "
                                      "of this session (%s)",
                       operator_name(r, peer));
    }
    im__signed_request__free_unpacked(sreq, NULL);

    if ((rv = nng_ctx_open(&ctx, r->fwd)) != 0)
        return link_from_nng(rv, e, "node API");
    if ((rv = nng_aio_alloc(&aio, NULL, NULL)) != 0) {
        nng_ctx_close(ctx);
        return link_from_nng(rv, e, "node API");
    }
    nng_aio_set_timeout(aio, REMOTE_FORWARD_TIMEOUT_MS);
    if ((rv = nng_msg_alloc(&m, plain_size)) != 0)
        goto out;
    memcpy(nng_msg_body(m), plain, plain_size);
    nng_aio_set_msg(aio, m);
    nng_ctx_send(ctx, aio);
    nng_aio_wait(aio);
    if ((rv = nng_aio_result(aio)) != 0) {
        nng_msg_free(m);
        goto out;
    }
    nng_ctx_recv(ctx, aio);
    nng_aio_wait(aio);
    if ((rv = nng_aio_result(aio)) != 0)
        goto out;
    m = nng_aio_get_msg(aio);
    if (nng_msg_len(m) > CHAN_PLAIN_MAX) {
        rv = -1;
        im_errf(e, IM_ETOOBIG, "reply of %zu bytes does not fit one frame of "
                               "a remote session: ask for less (--limit)",
                nng_msg_len(m));
        nng_msg_free(m);
        goto out;
    }
    *reply_size = nng_msg_len(m);
    if ((*reply = malloc(*reply_size ? *reply_size : 1)) == NULL) {
        nng_msg_free(m);
        rv = -1;
        im_errf(e, IM_ENOMEM, "out of memory");
        goto out;
    }
    memcpy(*reply, nng_msg_body(m), *reply_size);
    nng_msg_free(m);
out:
    nng_aio_free(aio);
    nng_ctx_close(ctx);
    if (rv > 0)
        return link_from_nng(rv, e, "node API");
    return rv < 0 ? e->code : 0;
}

/* A plaintext request at the remote address: answered with a refusal a
 * plain client can read, never served. */
static nng_msg *
refuse_plaintext(void *arg, nng_msg *req)
{
    Im__Response resp = IM__RESPONSE__INIT;
    nng_msg *m;
    size_t n;

    nng_msg_free(req);
    resp.code = IM_EDENIED;
    resp.error = "this address takes only encrypted sessions: connect with "
                 "imctl --node-key (the node's site key)";
    n = im__response__get_packed_size(&resp);
    if (nng_msg_alloc(&m, n) != 0)
        return NULL;
    im__response__pack(&resp, nng_msg_body(m));
    return m;
}

int
remote_start(struct remote *r, const struct config *cfg,
             const struct im_key *site_key, struct im_err *e)
{
    struct link_server_cfg sc = {
        .what = "operator",
        .key = site_key,
        .peers_count = cfg->operators_count,
        .peer_of = operator_of,
        .peer_name = operator_name,
        .serve = forward,
        .other = refuse_plaintext, /* plaintext is for loopback only */
        .recv_max = REQ_SIZE_MAX + LINK_DATA_OVERHEAD,
        .workers = REMOTE_WORKERS,
    };
    int rv;

    memset(r, 0, sizeof *r);
    r->cfg = cfg;
    if (cfg->node.remote_listen[0] == '\0')
        return 0;
    sc.arg = r;
    config_cluster_id(cfg, sc.cluster_id);
    if ((rv = nng_req0_open(&r->fwd)) != 0)
        return link_from_nng(rv, e, "remote API: open");
    r->fwd_open = 1;
    nng_socket_set_ms(r->fwd, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    nng_socket_set_size(r->fwd, NNG_OPT_RECVMAXSZ, REPLY_SIZE_MAX);
    if ((rv = nng_dial(r->fwd, cfg->node.listen, NULL, NNG_FLAG_NONBLOCK)) != 0) {
        rv = link_from_nng(rv, e, "remote API: dial the node API");
        goto fail;
    }
    if ((rv = link_server_start(&r->srv, cfg->node.remote_listen, &sc, e)) != 0) {
        im_errwrap(e, "remote API %s", cfg->node.remote_listen);
        goto fail;
    }
    r->started = 1;
    log_info("remote API (secure channel) on %s", cfg->node.remote_listen);
    return 0;
fail:
    nng_close(r->fwd);
    r->fwd_open = 0;
    return rv;
}

void
remote_close(struct remote *r)
{
    if (r->started)
        link_server_close(&r->srv);
    r->started = 0;
    if (r->fwd_open)
        nng_close(r->fwd);
    r->fwd_open = 0;
}
