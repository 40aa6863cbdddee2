/* request: see request.h. */
#include "request.h"

#include "bounds.h"
#include "keys.h"

int
request_open(const struct config *cfg, const char *who, const uint8_t *data,
             size_t size, uint64_t now_ms, Im__SignedRequest **sreq_out,
             Im__Request **req_out, const struct cfg_operator **op_out,
             struct im_err *e)
{
    Im__SignedRequest *sreq;
    Im__Request *req;
    const struct cfg_operator *op;
    char pk_text[KEY_PUB_TEXT_MAX];
    int rv;

    sreq = im__signed_request__unpack(NULL, size, data);
    if (sreq == NULL)
        return im_errf(e, IM_EPROTO,
                       "malformed request: not a signed Incident "
                       "Mesh request");
    if (sreq->key.len != KEY_PUB_BYTES || sreq->sig.len != KEY_SIG_BYTES) {
        rv = im_errf(e, IM_EPROTO,
                     "malformed request: key or signature missing "
                     "or of the wrong size (unsigned requests are "
                     "refused)");
        goto fail_sreq;
    }
    op = config_operator_by_key(cfg, sreq->key.data);
    if (op == NULL) {
        key_pub_encode(sreq->key.data, pk_text);
        rv = im_errf(e, IM_EUNKNOWNKEY,
                     "unknown key %s: it is not in this %s's "
                     "operator list",
                     pk_text, who);
        goto fail_sreq;
    }
    if (key_verify(sreq->key.data, KEY_CTX_REQUEST, sreq->body.data,
                   sreq->body.len, sreq->sig.data) != 0) {
        rv = im_errf(e, IM_EBADSIG, "signature does not verify for operator %s",
                     op->name);
        goto fail_sreq;
    }
    req = im__request__unpack(NULL, sreq->body.len, sreq->body.data);
    if (req == NULL) {
        rv = im_errf(e, IM_EPROTO, "malformed request body");
        goto fail_sreq;
    }
    if (req->ts_ms + CLOCK_SKEW_MS_MAX < now_ms ||
        req->ts_ms > now_ms + CLOCK_SKEW_MS_MAX) {
        long long off = ((long long)req->ts_ms - (long long)now_ms) / 1000;
        rv = im_errf(e, IM_ECLOCK,
                     "request time is %llds off this %s's clock "
                     "(limit %ds): check both clocks",
                     off, who, CLOCK_SKEW_MS_MAX / 1000);
        goto fail_req;
    }
    if (req->n_ops == 0 || req->n_ops > REQ_OPS_MAX) {
        size_t n = req->n_ops;
        rv = im_errf(e, n ? IM_ETOOBIG : IM_EINVAL,
                     "a request carries 1 to %d operations, not %zu",
                     REQ_OPS_MAX, n);
        goto fail_req;
    }
    *sreq_out = sreq;
    *req_out = req;
    *op_out = op;
    return 0;
fail_req:
    im__request__free_unpacked(req, NULL);
fail_sreq:
    im__signed_request__free_unpacked(sreq, NULL);
    return rv;
}
