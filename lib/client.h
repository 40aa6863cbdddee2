/* client: a connection to a node's API (NNG req/rep over tcp:// or ipc://),
 * every request signed with the operator's key.
 *
 * One struct client is one NNG req socket; it is safe to call from one
 * thread at a time (tools that want concurrency open one client per thread).
 * Retries are off: a request that timed out may or may not have been applied,
 * and the caller is told so rather than having it sent twice. */
#ifndef IM_CLIENT_H
#define IM_CLIENT_H

#include <nng/nng.h>
#include <stddef.h>

#include "err.h"
#include "im.pb-c.h"
#include "keys.h"
#include "link.h"

#define CLIENT_TIMEOUT_MS_DEFAULT 15000

struct client {
    nng_socket sock;
    int open;
    struct im_key key;
    int timeout_ms;
    /* A node on another host: a secure-channel session (node/remote.h). */
    int secure;
    struct link_dial dial;
    uint8_t node_pk[KEY_PUB_BYTES];
};

/* Loads the key at key_path and connects to url. IM_EUNREACH if nothing
 * answers at url, IM_EINVAL for a malformed url, key errors as key_load. */
int client_open(struct client *c, const char *url, const char *key_path,
                struct im_err *e);

/* Same, with a key already in memory. */
int client_open_key(struct client *c, const char *url, const struct im_key *key,
                    struct im_err *e);

/* Same, to a node's remote_listen address over the secure channel: the
 * node must prove node_pk (its site key), and cluster_id must be its
 * cluster's (config_cluster_id). IM_EUNREACH if nothing answers at url
 * within timeout_ms; the channel's errors for a node that proves another
 * key, refuses ours, or belongs to another cluster. */
int client_open_secure(struct client *c, const char *url,
                       const struct im_key *key,
                       const uint8_t node_pk[KEY_PUB_BYTES],
                       const uint8_t cluster_id[32], int timeout_ms,
                       struct im_err *e);

void client_close(struct client *c);

/* Signs and sends a request of n ops (1..REQ_OPS_MAX) and waits for the
 * response. On success *resp_out is the decoded response (free it with
 * im__response__free_unpacked(resp, NULL)); its request-level code may
 * still be non-zero (refused), which the caller checks. Errors:
 * IM_ETIMEDOUT (no answer in timeout_ms: the request may have been applied),
 * IM_EUNREACH, IM_EPROTO (undecodable reply). */
int client_call(struct client *c, Im__Op **ops, size_t n,
                Im__Response **resp_out, struct im_err *e);

/* Encodes ops into a signed request in a new NNG message (for tools that
 * drive contexts themselves). */
int client_request_build(const struct im_key *key, Im__Op **ops, size_t n,
                         uint64_t now_ms, nng_msg **msg_out, struct im_err *e);

#endif
