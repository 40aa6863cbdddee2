/* alerts: which incident an alert key belongs to, in LMDB.
 *
 * Two tables of the store:
 *
 *   alerts         derived from events: AlertOccurrence and AlertResolved
 *                  events update it in the transaction that stores them, so
 *                  every replica folding the same events holds the same
 *                  entries. Entries are last-writer-wins by the event's
 *                  (hlc, origin, seq), and counts are sums, so the arrival
 *                  order of events does not matter.
 *     'K' h                    -> AlertEntry  a key (PagerDuty dedup_key,
 *                                             Alertmanager groupKey)
 *     'F' h fingerprint        -> AlertEntry  one Alertmanager alert of it
 *     'I' incident NUL h       -> ""          the keys of an incident
 *   alert_pending  local to the site that received the occurrences: those
 *                  acknowledged to the sender but not yet summarised in an
 *                  AlertOccurrence event (alert storms, docs/http-api.md).
 *     h                        -> AlertEntry with pending* set
 *
 * where h = BLAKE2b-128(integration NUL key): keys may be longer than
 * LMDB's key limit, and hashing keeps index keys short and uniform.
 *
 * Functions taking an MDB_txn work in read or write transactions; those
 * taking a store_txn write. Returned AlertEntry messages are the caller's
 * (free with im__alert_entry__free_unpacked). */
#ifndef IM_ALERTS_H
#define IM_ALERTS_H

#include <lmdb.h>
#include <stdint.h>

#include "err.h"
#include "im.pb-c.h"
#include "store.h"

#define ALERTS_HASH_BYTES 16

/* Updates the alerts table for one stored event (a no-op for other
 * kinds). Called by the store for every event it stores. */
int alerts_index_event(struct store_txn *t, const Im__Event *ev,
                       struct im_err *e);

/* The entry of a key, or of one alert of it (fingerprint not NULL).
 * IM_ENOTFOUND if there is none. */
int alerts_key_get(MDB_txn *txn, struct store *s, const char *integration,
                   const char *key, const char *fingerprint,
                   Im__AlertEntry **out, struct im_err *e);

/* How many alerts of a key are firing for `incident`. */
int alerts_firing_count(MDB_txn *txn, struct store *s, const char *integration,
                        const char *key, const char *incident, size_t *out,
                        struct im_err *e);

/* Pending occurrences of a key: get (IM_ENOTFOUND if none), put, delete. */
int alerts_pending_get(MDB_txn *txn, struct store *s, const char *integration,
                       const char *key, Im__AlertEntry **out, struct im_err *e);
int alerts_pending_put(struct store_txn *t, const Im__AlertEntry *p,
                       struct im_err *e);
int alerts_pending_del(struct store_txn *t, const char *integration,
                       const char *key, struct im_err *e);

/* Visits every pending entry (at most `max`); fn returns non-zero to
 * stop. The entry is borrowed for the call. */
typedef int (*alerts_fn)(void *arg, const Im__AlertEntry *entry);
int alerts_pending_scan(MDB_txn *txn, struct store *s, size_t max, alerts_fn fn,
                        void *arg, struct im_err *e);

/* Visits the key entries of an incident. */
int alerts_of_incident(MDB_txn *txn, struct store *s, const char *incident,
                       alerts_fn fn, void *arg, struct im_err *e);

#endif
