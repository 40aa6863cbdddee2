/* notify: outbound notifications ([notify NAME] channels), sent only by
 * the owning site, each delivery recorded as an event.
 *
 * Rules (what notifies whom) are pure: notify_match() looks at one event
 * and the incident before and after it. The outbox is derived from the
 * log: the store's derive hook (notify_derive) runs in the transaction
 * that stores each event, local or replicated, and queues one entry per
 * (event, channel) whose rules match, unless a NotificationSent event for
 * that id was already folded; a NotificationSent event removes its entry.
 * So every replica holds the same pending notifications, and after a
 * failover the new owner sends exactly those that no NotificationSent
 * event records.
 *
 * The notifier thread delivers due entries, but only for incidents this
 * node may act on as owner (notify_may_send: the one decision the
 * coordinator work tightens with its lease). A webhook is a JSON POST
 * (2xx: delivered; 5xx, 408, 429 and network errors: retried with
 * exponential back-off; other 4xx: failed at once); a command gets the
 * JSON on stdin (exit 0: delivered). The outcome, delivered or failed
 * after the channel's attempts, is appended as a NotificationSent event
 * in the same transaction that removes the entry.
 *
 * At-least-once, not exactly-once: a crash between a delivery and its
 * commit sends it again on restart. Every delivery carries its id (JSON
 * "id" and an Idempotency-Key header; IM_NOTIFY_ID for commands) so that
 * receivers can drop the repeat.
 *
 * Outbox table keys (store's outbox table):
 *   'Q' id  -> OutboxEntry   waiting (id = "<origin>/<seq>/<channel>")
 *   'D' id  -> ""            a NotificationSent was folded for id */
#ifndef IM_NOTIFY_H
#define IM_NOTIFY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "commit.h"
#include "config.h"
#include "err.h"
#include "incident.h"
#include "metrics.h"
#include "store.h"

/* Outcomes a notifier keeps while the store refuses writes, and how long
 * it pauses after such a refusal. */
#define NOTIFY_UNRECORDED_MAX 64
#define NOTIFY_STORE_PAUSE_MS 1000

/* The rules of ch that one event matches (a bit set of enum
 * notify_rule), 0 if none or the channel's service filter excludes it.
 * before: the incident before ev (id "" for an opening). */
unsigned notify_match(const struct cfg_notify *ch,
                      const struct incident *before,
                      const struct incident *after, const Im__Event *ev);

/* "new_p1,major" */
void notify_rules_text(unsigned rules, char *out, size_t out_size);

/* Is `site` the one to send a notification about inc? A page of the
 * escalation ladder (sender: the paged site, from its Escalated event) is
 * sent by that site; everything else by the owning site, under the owner
 * token it holds (0 while provisional, the coordinator's token once
 * assigned). The notifier also asks the store's owner gate (the
 * coordinator lease) before sending: a site whose lease lapsed sends
 * nothing, since its incidents may be another site's by now. */
int notify_may_send(const struct incident *inc, const char *sender,
                    const char *site);

/* Delay before attempt n+1 after n failed attempts: backoff_ms * 2^(n-1),
 * capped at NOTIFY_BACKOFF_MS_MAX. */
uint64_t notify_backoff_ms(uint64_t backoff_ms, unsigned attempts);

struct notifier {
    const struct config *cfg;
    struct store *store;
    struct committer *commit;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping, started;
    uint64_t tick_ms;
    _Atomic uint64_t delivered[NOTIFY_CHANNELS_MAX];
    _Atomic uint64_t failed[NOTIFY_CHANNELS_MAX];
    _Atomic uint64_t attempts[NOTIFY_CHANNELS_MAX];
    _Atomic uint64_t not_owner; /* due entries skipped: another site owns */
    _Atomic uint64_t queued;    /* entries in the outbox at the last pass */
    /* Outcomes sent but not yet recorded (the store refused the commit:
     * disk or map full). Kept here so that they are recorded, not sent
     * again, once the store takes writes; passes pause meanwhile.
     * Notifier thread only. */
    struct notify_unrecorded {
        char id[NOTIFY_ID_MAX + 1];
        int delivered;
        unsigned attempts;
        char detail[256];
    } unrecorded[NOTIFY_UNRECORDED_MAX];
    size_t unrecorded_count;
    uint64_t paused_until_ms;
};

/* The store derive hook (see store.h); arg is the struct notifier. Set it
 * with store->derive = notify_derive, store->derive_arg = n before
 * writes start, and store->derive_before = 1 when the config has [notify]
 * channels (their rules compare the incident before and after). */
int notify_derive(void *arg, struct store_txn *t, const struct incident *before,
                  const struct incident *after, const Im__Event *ev,
                  struct im_err *e);

/* Prepares n (no thread yet): borrowed arguments live until notify_stop.
 * Registers the delivery counters with m (may be NULL). */
void notify_init(struct notifier *n, const struct config *cfg, struct store *s,
                 struct committer *c, struct metrics *m);

/* Starts the notifier thread (a pass every tick_ms). */
int notify_start(struct notifier *n, struct im_err *e);

/* One pass: delivers what is due now (at most NOTIFY_PASS_MAX), waiting
 * for each outcome's commit. Returns the number of deliveries attempted.
 * For the thread, and for tests that drive it without one. */
int notify_run_once(struct notifier *n);

/* Stops the thread (if started) and frees what notify_init made: call
 * once, before commit_stop (a pass waits for its commits). */
void notify_stop(struct notifier *n);

#endif
