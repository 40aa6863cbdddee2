/* server: what a coordinator replica answers on its api address (NNG
 * rep). One socket serves both kinds of client, told apart by the first
 * byte (lib/link.h):
 *
 *  - nodes, over the secure channel: CoordRequest in, CoordReply out
 *    (heartbeats and ownership queries); a site may only speak for itself;
 *  - operators (imctl): a SignedRequest (lib/request.h) whose ops are the
 *    coordinator ops of proto/im.proto; reads are served by any replica,
 *    writes only by the leader — a standby answers IM_ENOTLEADER with the
 *    leader's id and address in the Response.
 *
 * Threads: COORD_SERVER_WORKERS serve requests; each may call etcd. */
#ifndef IM_SERVER_H
#define IM_SERVER_H

#include "config.h"
#include "link.h"
#include "majors.h"
#include "replica.h"

#define COORD_SERVER_WORKERS 8

/* Incidents one ownership query asks about. */
#define COORD_QUERY_INCIDENTS_MAX 1024

/* The largest request: an operator's (REQ_SIZE_MAX) or a framed heartbeat. */
#define COORD_RECV_MAX (REQ_SIZE_MAX + LINK_DATA_OVERHEAD)

struct server {
    struct replica *r;
    struct majors *majors; /* major incidents; NULL: not served */
    const struct config *cfg;
    struct link_server link;
    int started;
};

/* Listens on cfg->coord.listen. r, majors (may be NULL) and cfg are
 * borrowed until server_close. */
int server_start(struct server *s, struct replica *r, struct majors *majors,
                 const struct config *cfg, struct im_err *e);
void server_close(struct server *s);

#endif
