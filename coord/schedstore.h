/* schedstore: the on-call schedule in etcd (P/schedule) and each replica's
 * parsed copy of it (docs/schedule.md, docs/coordinator.md).
 *
 * `imctl schedule apply` reaches the leader, which validates the text with
 * schedule_parse and stores schedule_to_json's canonical form with a
 * fenced txn; a document with any error stores nothing. Every replica
 * keeps the parsed schedule in r->sched and reloads it when the key's
 * mod_revision changes: at once after an apply on this replica, before a
 * new leader acts, and otherwise within COORD_SCHEDULE_POLL_MS.
 *
 * Threads: the server's workers (apply, get) and the election thread
 * (reload); the cache is swapped under r->mu. */
#ifndef IM_COORD_SCHEDSTORE_H
#define IM_COORD_SCHEDSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "replica.h"

/* The stored form's size: etcd refuses requests over 1.5 MiB by default
 * (--max-request-bytes), and every replica holds a copy. */
#define SCHEDULE_STORED_MAX (1024 * 1024)

/* Warnings one apply reports; more are counted in the last one. */
#define SCHEDULE_WARNINGS_MAX 16
#define SCHEDULE_WARNING_MAX 200

struct schedstore_warnings {
    char text[SCHEDULE_WARNINGS_MAX][SCHEDULE_WARNING_MAX + 1];
    size_t count;
    size_t more; /* past SCHEDULE_WARNINGS_MAX */
};

/* What a valid schedule means for a cluster whose sites are
 * codes[0..n): sites the schedule names that the cluster lacks (ignored),
 * cluster sites it does not name (no rotation, no failover order: the
 * global manager and load decide), failover entries and services naming
 * sites the cluster lacks (ignored). Pure. */
void schedstore_check(const struct schedule *s, const char *const *codes,
                      size_t n, struct schedstore_warnings *w);

/* One line of `imctl oncall`: who is on call at a site (or globally) at
 * an instant, until when, and who follows. */
struct schedstore_oncall_row {
    char site[SITE_CODE_MAX + 1]; /* "" = the global incident manager */
    /* "rotation", "override", "global" (the site has nobody: the global
     * manager covers), or "" (nobody at all). */
    char source[16];
    char person[PERSON_MAX + 1];
    uint64_t from_ms, until_ms;
    char until_text[TZ_LOCAL_TEXT_MAX + TZ_NAME_MAX + 2];
    char next_person[PERSON_MAX + 1]; /* "" = nobody or unknown */
    uint64_t next_until_ms;
    char next_until_text[TZ_LOCAL_TEXT_MAX + TZ_NAME_MAX + 2];
};

/* The on-call rows at at_ms for the sites codes[0..n) (each must be a
 * site of the cluster; one the schedule lacks gets the global manager),
 * then the global manager: n + 1 rows into rows. Pure. */
void schedstore_oncall(const struct schedule *s, const char *const *codes,
                       size_t n, uint64_t at_ms,
                       struct schedstore_oncall_row *rows);

/* Validates text (len bytes) and, unless dry_run, stores its canonical
 * form as the leader. *revision_out: the stored revision (dry run: the
 * revision in force, 0 none). Errors: IM_EINVAL / IM_ENOTFOUND /
 * IM_ETOOBIG from schedule_parse with the path at fault; IM_ETOOBIG past
 * SCHEDULE_STORED_MAX; IM_ENOTLEADER; etcd's. Nothing is stored on any
 * error. */
int schedstore_apply(struct replica *r, const char *text, size_t len,
                     int dry_run, int64_t *revision_out,
                     struct schedstore_warnings *w, struct im_err *e);

/* The stored text (malloc'd, NUL-terminated) and its revision; any
 * replica, linearizable. IM_ENOTFOUND if no schedule was ever applied. */
int schedstore_get(struct replica *r, char **text_out, int64_t *revision_out,
                   struct im_err *e);

/* Reloads r->sched if P/schedule's revision differs from r->sched_rev (or
 * always, if force). A stored text that does not parse (a hand edit) is
 * logged and the copy in force kept. */
int schedstore_reload(struct replica *r, int force, struct im_err *e);

#endif
