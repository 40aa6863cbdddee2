/* api: the node's request/reply API over NNG (rep0 with API_CONTEXTS
 * contexts, so that many clients are served at once).
 *
 * Every request is a SignedRequest: the operator's key must be in the
 * node's operator list, the Ed25519 signature must verify, and the request's
 * clock must be within CLOCK_SKEW_MS_MAX of ours; otherwise the whole request
 * is refused (Response.code) and nothing changes. Writes go to the group
 * committer and are answered after their commit; reads run on NNG's worker
 * threads in their own read transactions. Within one request, ops are
 * answered in order and reads see the request's own writes. */
#ifndef IM_API_H
#define IM_API_H

#include <nng/nng.h>
#include <stdatomic.h>

#include "commit.h"
#include "peer.h"
#include "config.h"
#include "store.h"

struct api_ctx;

struct api {
    nng_socket sock;
    int sock_open;
    struct api_ctx *ctxs;
    int ctxs_count;
    struct store *store;
    struct committer *commit;
    const struct config *cfg;
    struct peers *peers;        /* NULL: no replication (imctl peers is empty) */
    _Atomic uint64_t requests, refused;
};

/* Listens on cfg->node.listen and starts serving. All arguments are
 * borrowed until api_stop returns. */
int api_start(struct api *a, const struct config *cfg, struct store *s,
              struct committer *c, struct peers *peers, struct im_err *e);

/* Closes the socket (no new requests). Call commit_stop next, then
 * api_free: in-flight writes finish durably even if their replies cannot
 * be delivered any more. */
void api_close(struct api *a);
void api_free(struct api *a);

#define IM_VERSION "0.1.0"

#endif
