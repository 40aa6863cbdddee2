/* majors: major incidents across sites, served by the coordinator's leader
 * (DESIGN.md §5, docs/escalation.md).
 *
 * A major incident is registered in etcd at P/majors/INCIDENT, by an
 * operator (imctl major declare) or automatically when a heartbeat shows an
 * open incident that is major (P1, or declared at its site) and not
 * registered. Registration notifies the global incident manager on call
 * (a page sent by the owner site) and every affected site (a MajorNotice
 * in its heartbeat replies, which it records as MajorDeclared, and a page
 * to its own on-call manager, sent by that site), and starts the
 * escalation ladder (coord/escalate.h).
 *
 * Pages: every page has a notice id "<incident>/<n>", n counting from 1
 * per incident and never reused (the record keeps the count). The leader
 * stores the record with its new pages in a fenced txn (replica_txn, plus
 * a compare on the record's own revision) BEFORE any reply carries them;
 * then it repeats each page in the replies to the site that must send it
 * until a heartbeat lists its id among the incident's recorded notices
 * (IncidentSummary.notices), or for MAJORS_NOTICE_TTL_MS, after which the
 * page counts as expired unrecorded. A site records a page once by its id,
 * so repeats and a new leader's repeats never page twice.
 *
 * Heartbeats also acknowledge and resolve: an incident whose state is past
 * `new` is acknowledged (escalate_ack, the timers stop); one that the
 * origin site (or the owner site, once it listed it) no longer lists in a
 * complete heartbeat, or lists resolved, is resolved (its major record is
 * closed, nothing more is sent).
 *
 * Timers: the leader's majors thread ticks every MAJORS_TICK_MS (sooner
 * when a heartbeat or an operator brings news): escalate_tick with the
 * owner at that moment (P/assign, else the origin) and the schedule at
 * that moment (schedule_resolve). Deadlines are wall-clock times in the
 * record, so a new leader reads P/majors and carries on (escalate.h's
 * catch-up when deadlines passed meanwhile).
 *
 * The pure part (a record and its transitions, with the time as an
 * argument) is below the first line of "----"; the daemon part after it.
 * Threads: one majors thread; majors_heartbeat and the op functions are
 * called by the server's workers. The cache and the heartbeat
 * observations are under mu (held briefly); every etcd write and the
 * schedule are under write_mu. */
#ifndef IM_COORD_MAJORS_H
#define IM_COORD_MAJORS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "bounds.h"
#include "config.h"
#include "err.h"
#include "escalate.h"
#include "im.pb-c.h"
#include "records.h"
#include "schedule.h"

/* A page is repeated this long, then given up on and counted as expired
 * unrecorded: a site cut off longer has missed the moment the page was
 * for, and the ladder has moved on. */
#define MAJORS_NOTICE_TTL_MS (10 * 60 * 1000)

/* The leader's tick: bounds how late past a deadline the next level is
 * paged (besides the heartbeat that carries it, lease/3). */
#define MAJORS_TICK_MS 1000

/* How often the leader re-reads an active major's owner (P/assign) when no
 * deadline makes it read it anyway: `imctl majors` shows it, and major
 * notices go to it. */
#define MAJORS_OWNER_REFRESH_MS 5000

/* Unresolved major incidents the leader tracks at once. More than this at
 * one time is not a set of major incidents but a disaster plan. */
#define MAJORS_ACTIVE_MAX 256

/* Incidents seen major but not registered yet, queued by heartbeats for
 * the majors thread; a full queue drops the rest until the next heartbeat
 * reports them again. */
#define MAJORS_QUEUE_MAX 64

/* Records in one `imctl majors` answer (its count of the rest is given). */
#define MAJORS_LIST_MAX 1000

/* ---- pure: transitions of a record (records.h) ------------------------ */

/* The built-in policy, for a cluster without a schedule: site manager 5m,
 * site backup 10m, global manager 10m, three runs. */
void majors_default_policy(struct esc_policy *out);

/* The policy a coordinator runs: the schedule's (the built-in one if s is
 * NULL), with every acknowledgement window shorter than ack_ms_min raised
 * to it ([coord] min_ack). Returns how many levels were raised. */
size_t majors_policy(const struct schedule *s, uint64_t ack_ms_min,
                     struct esc_policy *out);

/* Registration: m holds the incident, origin, owner, declaration and
 * affected sites. Starts the ladder and issues its pages: level 1, the
 * global manager on call (sent by the owner site), and each affected
 * site's manager (sent by that site), one page per (site, person). People
 * are resolved with s at now (s may be NULL: pages then name nobody). */
int majors_start(struct major_record *m, const struct esc_policy *p,
                 const struct schedule *s, uint64_t now_ms, struct im_err *e);

/* The ladder at now: the next level's pages if its deadline passed
 * (escalate_tick, with m->owner as the owner). *stepped says whether m
 * changed. */
int majors_tick(struct major_record *m, const struct esc_policy *p,
                const struct schedule *s, uint64_t now_ms, int *stepped,
                struct im_err *e);

/* imctl escalate ID: the next level now (escalate_now). */
int majors_escalate(struct major_record *m, const struct esc_policy *p,
                    const struct schedule *s, const char *who,
                    const char *reason, uint64_t now_ms, struct im_err *e);

/* imctl escalate ID --to-site S: S's manager paged now and copied on every
 * later page (escalate_to_site). */
int majors_help(struct major_record *m, const struct schedule *s,
                const char *site, const char *who, uint64_t now_ms,
                struct im_err *e);

/* A heartbeat listed the page n as recorded: 1 if it was pending (now
 * counted as recorded), 0 if not. */
int majors_recorded(struct major_record *m, uint32_t n);

/* Pages pending longer than MAJORS_NOTICE_TTL_MS at now are given up on;
 * returns how many. */
size_t majors_expire(struct major_record *m, uint64_t now_ms);

/* The incident was resolved (or closed, or cancelled): no more pages, no
 * more timers. */
void majors_resolve(struct major_record *m, const char *why, uint64_t now_ms);

/* n of a notice id "<incident>/<n>" of this incident, or 0. */
uint32_t majors_notice_n(const char *incident, const char *notice);

/* ---- the daemon -------------------------------------------------------- */

struct replica;
struct majors_entry;

struct majors {
    struct replica *r;
    const struct config *cfg;
    char k_majors[RECORDS_KEY_MAX + 1]; /* P/majors/ */
    char k_schedule[RECORDS_KEY_MAX + 1];

    pthread_mutex_t mu; /* the cache and the observations */
    pthread_cond_t cv;
    int64_t term;               /* the term the cache was loaded in; 0 none */
    struct majors_entry *items; /* MAJORS_ACTIVE_MAX; [0, count) used */
    size_t count;
    struct {
        char incident[INCIDENT_ID_MAX + 1];
        char site[SITE_CODE_MAX + 1];
        uint32_t priority;
    } queue[MAJORS_QUEUE_MAX];
    size_t queue_count;
    int wake;

    pthread_mutex_t write_mu; /* etcd writes, the schedule */
    struct schedule *sched;   /* NULL: none applied (or unreadable) */
    int64_t sched_rev;        /* mod_revision it was read at; 0 none */

    atomic_int stop;
    pthread_t thread;
    int started;
};

/* Starts the majors thread. r and cfg are borrowed until majors_stop. */
int majors_start_daemon(struct majors *m, struct replica *r,
                        const struct config *cfg, struct im_err *e);
void majors_stop(struct majors *m);

/* A heartbeat of site (as the leader of term received it): notes what its
 * summaries show (major incidents to register, acknowledgements,
 * resolutions, pages recorded) and fills hb->majors and hb->escalations
 * for the site. Both are allocated: majors_reply_free frees them. */
int majors_heartbeat(struct majors *m, int64_t term, const char *site,
                     const Im__Heartbeat *h, Im__HeartbeatReply *hb,
                     struct im_err *e);
void majors_reply_free(Im__HeartbeatReply *hb);

/* The operator ops. An answer holds a MajorsReply and what it points to;
 * free it with majors_answer_free (also after an error). */
struct majors_answer {
    Im__MajorsReply reply;
    Im__MajorRecord *recs;
    Im__MajorRecord **ptrs;
    struct major_record *src; /* the records the reply points into */
    char (*help)[SITE_CODE_MAX + 1];
    char **help_ptrs;
    char **affects_ptrs;
};

/* imctl majors [--all]: from etcd, on any replica. */
int majors_op_list(struct majors *m, int all, struct majors_answer *a,
                   struct im_err *e);

/* imctl major declare (leader): registers the incident; IM_ENOTFOUND if no
 * site reported it, IM_EEXIST if registered, IM_EINVAL for bad input. */
int majors_op_declare(struct majors *m, const char *operator_name,
                      const Im__MajorDeclare *d, struct majors_answer *a,
                      struct im_err *e);

/* imctl escalate (leader): the next level now, or help from to_site. */
int majors_op_escalate(struct majors *m, const char *operator_name,
                       const Im__Escalate *x, struct majors_answer *a,
                       struct im_err *e);

void majors_answer_free(struct majors_answer *a);

#endif
