/* remote: the node API for operators on other hosts (DESIGN.md §4, §6).
 *
 * The node's API socket ([node] listen) carries signed but unencrypted
 * requests and must be on loopback (or ipc://). Operators elsewhere reach
 * the node at [node] remote_listen, over the secure channel (lib/link.h):
 * the handshake proves the node's site key to the client (imctl
 * --node-key) and the operator's pinned key to the node, and every request
 * and reply travels encrypted. Each request is the same signed request
 * imctl sends on loopback, and must be signed by the session's own key; it
 * is handed to the node's API over loopback, so both paths apply exactly
 * the same checks and rules. Replies larger than one frame
 * (CHAN_PLAIN_MAX) are refused: page them (--limit). */
#ifndef IM_REMOTE_H
#define IM_REMOTE_H

#include <nng/nng.h>

#include "config.h"
#include "link.h"

/* Sessions served at once; each waits on the API while it is served. */
#define REMOTE_WORKERS 8
/* One request's round trip through the local API. */
#define REMOTE_FORWARD_TIMEOUT_MS 30000

struct remote {
    const struct config *cfg;
    struct link_server srv;
    nng_socket fwd;
    int fwd_open;
    int started;
};

/* Starts the remote listener if cfg->node.remote_listen is set (else does
 * nothing). site_key is borrowed until remote_close. */
int remote_start(struct remote *r, const struct config *cfg,
                 const struct im_key *site_key, struct im_err *e);
void remote_close(struct remote *r);

#endif
