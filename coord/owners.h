/* owners: the leader's ownership decisions and the etcd records behind
 * them (DESIGN.md §5, docs/ownership.md, docs/coordinator.md).
 *
 *  - owners_observe: every replica, every heartbeat: the open incidents a
 *    site lists go into r->open (coord/openset.h).
 *  - owners_load: a new leader, before it acts: P/open/ and the
 *    P/assign/ record of every incident it knows of, so it decides from
 *    what etcd holds, never from what it remembers of an earlier term.
 *  - owners_assign: the leader, on a heartbeat: incidents nobody owns yet
 *    are elected (elect_owner, fed by the schedule, site health and load)
 *    and recorded (P/assign/ID and P/open/ID, create-only).
 *  - owners_tick: the leader, every COORD_TICK_MS once its grace period is
 *    over: each open incident whose owner is recorded down is re-elected
 *    among the up sites (failover), and closures and reopenings are
 *    recorded in P/open/.
 *  - owners_move: `imctl reassign` and `imctl handback`.
 *  - owners_for_site: the assignments a heartbeat reply carries.
 *
 * Every write is a fenced txn (replica_txn) that also compares the
 * assignment's own revision (create == 0 for a first owner, mod == the
 * token for a move), so two decisions about one incident can never both
 * apply, across workers and across leaders. The owner token is the
 * assignment key's mod_revision. */
#ifndef IM_COORD_OWNERS_H
#define IM_COORD_OWNERS_H

#include <stddef.h>
#include <stdint.h>

#include "replica.h"

#include "im.pb-c.h"

/* Assignments one heartbeat reply carries: a reply must fit the node's
 * receive limit (1 MiB) with room for the major-incident notices, and one
 * assignment is at most ~1.2 KiB (its reason is REASON_MAX). Those the
 * site has not confirmed come first; the rest follow in later replies. */
#define COORD_REPLY_ASSIGNMENTS_MAX 512
_Static_assert(COORD_REPLY_ASSIGNMENTS_MAX *(INCIDENT_ID_MAX + SITE_CODE_MAX +
                                             PERSON_MAX + REASON_MAX + 64) <=
                   1024 * 1024 * 3 / 4,
               "a reply's assignments fit three quarters of a node's limit");

/* Reads the assignments of ids[0..n) into out[i] (found[i] says which
 * exist); token = each key's mod_revision. Linearizable. */
int owners_read(struct replica *r, const char *const *ids, size_t n,
                struct assignment_record *out, int *found, struct im_err *e);

void owners_observe(struct replica *r, int site, const Im__Heartbeat *h);

int owners_load(struct replica *r, int64_t term, struct im_err *e);

/* As the leader: owners for the incidents site's heartbeat listed that
 * have none. Errors are logged; the next heartbeat tries again. */
void owners_assign(struct replica *r, int site);

void owners_tick(struct replica *r);

/* Moves id to to_site (handback: to its origin). manager "" = the site's
 * on-call manager from the schedule (else the global one). Refused
 * (IM_EINVAL) for an unknown site, (IM_ESTATE) if to_site is not up or
 * already owns it; IM_ENOTFOUND if id has no owner yet; IM_ESTALE if
 * another decision about id landed meanwhile. *out: the new assignment. */
int owners_move(struct replica *r, const char *id, const char *to_site,
                const char *manager, const char *why, int handback,
                const char *operator_name, struct assignment_record *out,
                struct im_err *e);

/* The assignments naming site (owner or origin) of the open incidents
 * this leader knows, at most COORD_REPLY_ASSIGNMENTS_MAX: malloc'd into
 * *out (the caller frees), *count. */
int owners_for_site(struct replica *r, int site, struct assignment_record **out,
                    size_t *count, struct im_err *e);

#endif
