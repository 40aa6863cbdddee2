/* request: opening an operator's signed request, as every server of them
 * does (the node API, the coordinator): decode the SignedRequest, find the
 * operator by key, verify the signature (Ed25519ph over "im-req-v1" NUL
 * body), decode the Request, check its time against ours (CLOCK_SKEW_MS_MAX)
 * and its op count (1..REQ_OPS_MAX). One implementation, so both servers
 * refuse the same requests with the same words. */
#ifndef IM_REQUEST_H
#define IM_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "im.pb-c.h"

/* Opens data (size bytes) at now_ms. `who` names the server in refusals
 * ("node", "coordinator"). On success the caller owns *sreq_out and
 * *req_out (free with their free_unpacked) and *op_out points into cfg.
 * On failure nothing is returned and e says why: IM_EPROTO (malformed,
 * unsigned), IM_EUNKNOWNKEY, IM_EBADSIG, IM_ECLOCK, IM_EINVAL/IM_ETOOBIG
 * (op count), IM_ENOMEM. */
int request_open(const struct config *cfg, const char *who, const uint8_t *data,
                 size_t size, uint64_t now_ms, Im__SignedRequest **sreq_out,
                 Im__Request **req_out, const struct cfg_operator **op_out,
                 struct im_err *e);

#endif
