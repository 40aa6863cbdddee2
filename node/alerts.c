/* alerts: see alerts.h. */
#include "alerts.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "bounds.h"

#define K_KEY (1 + ALERTS_HASH_BYTES)
#define F_KEY_MAX (K_KEY + AM_FINGERPRINT_MAX)
#define I_KEY_MAX (1 + INCIDENT_ID_MAX + 1 + ALERTS_HASH_BYTES)

/* Stored entries are bounded by what the events that wrote them may hold;
 * a few KiB covers the summary and the key. */
#define ALERT_ENTRY_SIZE_MAX (ALERT_KEY_MAX + ALERT_SUMMARY_MAX + 2048)

static const char *
str(const char *s)
{
    return s != NULL ? s : "";
}

static void
key_hash(uint8_t h[ALERTS_HASH_BYTES], const char *integration, const char *key)
{
    crypto_generichash_state st;

    crypto_generichash_init(&st, NULL, 0, ALERTS_HASH_BYTES);
    /* The NUL separates the two, so ("ab", "c") and ("a", "bc") differ. */
    crypto_generichash_update(&st, (const uint8_t *)integration,
                              strlen(integration) + 1);
    crypto_generichash_update(&st, (const uint8_t *)key, strlen(key));
    crypto_generichash_final(&st, h, ALERTS_HASH_BYTES);
}

static size_t
k_key(uint8_t out[F_KEY_MAX], const char *integration, const char *key,
      const char *fingerprint)
{
    size_t n;

    out[0] = fingerprint != NULL ? 'F' : 'K';
    key_hash(out + 1, integration, key);
    if (fingerprint == NULL)
        return K_KEY;
    n = strlen(fingerprint);
    if (n > AM_FINGERPRINT_MAX)
        n = AM_FINGERPRINT_MAX; /* callers validated; the index stays bounded */
    memcpy(out + K_KEY, fingerprint, n);
    return K_KEY + n;
}

static int
entry_get(struct store *s, MDB_txn *txn, MDB_dbi dbi, MDB_val *k,
          Im__AlertEntry **out, struct im_err *e)
{
    MDB_val v;
    int rv = mdb_get(txn, dbi, k, &v);

    if (rv == MDB_NOTFOUND)
        return im_errf(e, IM_ENOTFOUND, "no alert entry");
    if (rv != 0)
        return store_mdb_error(s, rv, e, "read alert entry");
    *out = im__alert_entry__unpack(NULL, v.mv_size, v.mv_data);
    if (*out == NULL)
        return im_errf(e, IM_ECORRUPT, "alert entry does not decode");
    return 0;
}

static int
entry_put(struct store *s, MDB_txn *txn, MDB_dbi dbi, MDB_val *k,
          const Im__AlertEntry *entry, struct im_err *e)
{
    size_t size = im__alert_entry__get_packed_size(entry);
    MDB_val v = {size, NULL};
    int rv;

    if (size > ALERT_ENTRY_SIZE_MAX)
        return im_errf(e, IM_ETOOBIG, "alert entry of %zu bytes", size);
    if ((rv = mdb_put(txn, dbi, k, &v, MDB_RESERVE)) != 0)
        return store_mdb_error(s, rv, e, "write alert entry");
    if (im__alert_entry__pack(entry, v.mv_data) != size)
        abort(); /* protobuf-c disagrees with itself: a bug, not input */
    return 0;
}

/* 1 if ev sorts after the event that last set entry (or entry is new). */
static int
later(const Im__AlertEntry *entry, const Im__Event *ev)
{
    int c;

    if (entry->hlc != ev->hlc)
        return ev->hlc > entry->hlc;
    c = strcmp(str(ev->origin), str(entry->origin));
    if (c != 0)
        return c > 0;
    return ev->seq > entry->seq;
}

static void
stamp(Im__AlertEntry *entry, const Im__Event *ev)
{
    entry->hlc = ev->hlc;
    entry->origin = ev->origin;
    entry->seq = ev->seq;
}

/* Reads the entry at k into a working copy *w (a shallow copy of the
 * decoded message *dec, whose strings it borrows), or starts a fresh one
 * (*dec NULL). Fields of *w may then point at the event's strings without
 * protobuf-c freeing them with *dec. */
static int
entry_load(struct store *s, MDB_txn *txn, MDB_val *k, Im__AlertEntry *w,
           Im__AlertEntry **dec, int *is_new, struct im_err *e)
{
    int rv = entry_get(s, txn, s->alerts, k, dec, e);

    *is_new = 0;
    if (rv == IM_ENOTFOUND) {
        im__alert_entry__init(w);
        *dec = NULL;
        *is_new = 1;
        im_errclear(e);
        return 0;
    }
    if (rv == 0)
        *w = **dec;
    return rv;
}

static void
entry_drop(Im__AlertEntry *dec)
{
    if (dec != NULL)
        im__alert_entry__free_unpacked(dec, NULL);
}

static int
index_incident(struct store_txn *t, const char *incident,
               const uint8_t h[ALERTS_HASH_BYTES], struct im_err *e)
{
    uint8_t kb[I_KEY_MAX];
    size_t n = strlen(incident);
    MDB_val k, v = {0, NULL};
    int rv;

    if (n > INCIDENT_ID_MAX)
        return im_errf(e, IM_EINVAL, "incident id too long");
    kb[0] = 'I';
    memcpy(kb + 1, incident, n);
    kb[1 + n] = '\0';
    memcpy(kb + 2 + n, h, ALERTS_HASH_BYTES);
    k.mv_data = kb;
    k.mv_size = 2 + n + ALERTS_HASH_BYTES;
    if ((rv = mdb_put(t->txn, t->s->alerts, &k, &v, 0)) != 0)
        return store_mdb_error(t->s, rv, e, "index alert key");
    return 0;
}

static int
index_occurrence(struct store_txn *t, const Im__Event *ev,
                 const Im__AlertOccurrence *a, struct im_err *e)
{
    struct store *s = t->s;
    uint8_t kb[F_KEY_MAX];
    Im__AlertEntry w, *entry = &w, *dec = NULL;
    MDB_val k;
    int rv, is_new;

    k.mv_data = kb;
    k.mv_size = k_key(kb, a->integration, a->key, NULL);
    if ((rv = entry_load(s, t->txn, &k, &w, &dec, &is_new, e)) != 0)
        return rv;
    /* Counts add up whatever the order; the rest is last writer wins. */
    entry->count += a->count;
    if (entry->first_ms == 0 ||
        (a->first_ms != 0 && a->first_ms < entry->first_ms))
        entry->first_ms = a->first_ms;
    if (a->last_ms > entry->last_ms)
        entry->last_ms = a->last_ms;
    if (is_new || later(entry, ev)) {
        stamp(entry, ev);
        entry->incident = ev->incident;
        entry->firing = 1;
        entry->integration = a->integration;
        entry->key = a->key;
        entry->summary = a->summary;
        entry->source = a->source;
        entry->severity = a->severity;
    }
    rv = entry_put(s, t->txn, s->alerts, &k, entry, e);
    entry_drop(dec);
    if (rv == 0)
        rv = index_incident(t, ev->incident, kb + 1, e);
    for (size_t i = 0; rv == 0 && i < a->n_alerts; i++) {
        const Im__AlertRef *ref = a->alerts[i];
        k.mv_size = k_key(kb, a->integration, a->key, ref->fingerprint);
        if ((rv = entry_load(s, t->txn, &k, &w, &dec, &is_new, e)) != 0)
            break;
        entry->count++;
        if (is_new || later(entry, ev)) {
            stamp(entry, ev);
            entry->incident = ev->incident;
            entry->firing = 1;
            entry->starts_at_ms = ref->starts_at_ms;
            entry->fingerprint = ref->fingerprint;
        }
        rv = entry_put(s, t->txn, s->alerts, &k, entry, e);
        entry_drop(dec);
    }
    return rv;
}

static int
index_resolved(struct store_txn *t, const Im__Event *ev,
               const Im__AlertResolved *a, struct im_err *e)
{
    struct store *s = t->s;
    uint8_t kb[F_KEY_MAX];
    Im__AlertEntry w, *entry = &w, *dec = NULL;
    MDB_val k;
    int rv, is_new;

    for (size_t i = 0; i < a->n_alerts; i++) {
        const Im__AlertRef *ref = a->alerts[i];
        k.mv_data = kb;
        k.mv_size = k_key(kb, a->integration, a->key, ref->fingerprint);
        if ((rv = entry_load(s, t->txn, &k, &w, &dec, &is_new, e)) != 0)
            return rv;
        if (is_new || later(entry, ev)) {
            stamp(entry, ev);
            if (is_new)
                entry->incident = ev->incident;
            entry->firing = 0;
            entry->fingerprint = ref->fingerprint;
            rv = entry_put(s, t->txn, s->alerts, &k, entry, e);
        }
        entry_drop(dec);
        if (rv != 0)
            return rv;
    }
    /* A PagerDuty resolve names the key itself; an Alertmanager group is
     * resolved when none of its alerts fires any more. */
    if (a->n_alerts > 0 && !a->all)
        return 0;
    k.mv_data = kb;
    k.mv_size = k_key(kb, a->integration, a->key, NULL);
    if ((rv = entry_load(s, t->txn, &k, &w, &dec, &is_new, e)) != 0)
        return rv;
    rv = 0;
    if (is_new || later(entry, ev)) {
        stamp(entry, ev);
        if (is_new) {
            entry->incident = ev->incident;
            entry->integration = a->integration;
            entry->key = a->key;
        }
        entry->firing = 0;
        rv = entry_put(s, t->txn, s->alerts, &k, entry, e);
        if (rv == 0 && is_new)
            rv = index_incident(t, ev->incident, kb + 1, e);
    }
    entry_drop(dec);
    return rv;
}

int
alerts_index_event(struct store_txn *t, const Im__Event *ev, struct im_err *e)
{
    if (ev->body == NULL)
        return 0;
    switch (ev->body->kind_case) {
    case IM__BODY__KIND_ALERT:
        return index_occurrence(t, ev, ev->body->alert, e);
    case IM__BODY__KIND_ALERT_RESOLVED:
        return index_resolved(t, ev, ev->body->alert_resolved, e);
    default: return 0;
    }
}

int
alerts_key_get(MDB_txn *txn, struct store *s, const char *integration,
               const char *key, const char *fingerprint, Im__AlertEntry **out,
               struct im_err *e)
{
    uint8_t kb[F_KEY_MAX];
    MDB_val k = {k_key(kb, integration, key, fingerprint), kb};

    return entry_get(s, txn, s->alerts, &k, out, e);
}

int
alerts_firing_count(MDB_txn *txn, struct store *s, const char *integration,
                    const char *key, const char *incident, size_t *out,
                    struct im_err *e)
{
    uint8_t prefix[F_KEY_MAX];
    MDB_cursor *cur;
    MDB_val k, v;
    size_t n = 0;
    int rv;

    k_key(prefix, integration, key, NULL);
    prefix[0] = 'F';
    if ((rv = mdb_cursor_open(txn, s->alerts, &cur)) != 0)
        return store_mdb_error(s, rv, e, "cursor");
    k.mv_data = prefix;
    k.mv_size = K_KEY;
    for (rv = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rv == 0;
         rv = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        Im__AlertEntry *entry;
        if (k.mv_size <= K_KEY || memcmp(k.mv_data, prefix, K_KEY) != 0)
            break;
        entry = im__alert_entry__unpack(NULL, v.mv_size, v.mv_data);
        if (entry == NULL) {
            mdb_cursor_close(cur);
            return im_errf(e, IM_ECORRUPT, "alert entry does not decode");
        }
        n += entry->firing && strcmp(str(entry->incident), incident) == 0;
        im__alert_entry__free_unpacked(entry, NULL);
    }
    mdb_cursor_close(cur);
    if (rv != 0 && rv != MDB_NOTFOUND)
        return store_mdb_error(s, rv, e, "count firing alerts");
    *out = n;
    return 0;
}

int
alerts_pending_get(MDB_txn *txn, struct store *s, const char *integration,
                   const char *key, Im__AlertEntry **out, struct im_err *e)
{
    uint8_t h[ALERTS_HASH_BYTES];
    MDB_val k = {sizeof h, h};

    key_hash(h, integration, key);
    return entry_get(s, txn, s->alert_pending, &k, out, e);
}

int
alerts_pending_put(struct store_txn *t, const Im__AlertEntry *p,
                   struct im_err *e)
{
    uint8_t h[ALERTS_HASH_BYTES];
    MDB_val k = {sizeof h, h};

    key_hash(h, str(p->integration), str(p->key));
    return entry_put(t->s, t->txn, t->s->alert_pending, &k, p, e);
}

int
alerts_pending_del(struct store_txn *t, const char *integration,
                   const char *key, struct im_err *e)
{
    uint8_t h[ALERTS_HASH_BYTES];
    MDB_val k = {sizeof h, h};
    int rv;

    key_hash(h, integration, key);
    rv = mdb_del(t->txn, t->s->alert_pending, &k, NULL);
    if (rv != 0 && rv != MDB_NOTFOUND)
        return store_mdb_error(t->s, rv, e, "delete pending occurrences");
    return 0;
}

int
alerts_pending_scan(MDB_txn *txn, struct store *s, size_t max, alerts_fn fn,
                    void *arg, struct im_err *e)
{
    MDB_cursor *cur;
    MDB_val k, v;
    size_t n = 0;
    int rv;

    if ((rv = mdb_cursor_open(txn, s->alert_pending, &cur)) != 0)
        return store_mdb_error(s, rv, e, "cursor");
    for (rv = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rv == 0 && n < max;
         rv = mdb_cursor_get(cur, &k, &v, MDB_NEXT), n++) {
        Im__AlertEntry *entry =
            im__alert_entry__unpack(NULL, v.mv_size, v.mv_data);
        int stop;
        if (entry == NULL) {
            mdb_cursor_close(cur);
            return im_errf(e, IM_ECORRUPT, "pending entry does not decode");
        }
        stop = fn(arg, entry);
        im__alert_entry__free_unpacked(entry, NULL);
        if (stop)
            break;
    }
    mdb_cursor_close(cur);
    if (rv != 0 && rv != MDB_NOTFOUND)
        return store_mdb_error(s, rv, e, "scan pending occurrences");
    return 0;
}

int
alerts_of_incident(MDB_txn *txn, struct store *s, const char *incident,
                   alerts_fn fn, void *arg, struct im_err *e)
{
    uint8_t prefix[I_KEY_MAX];
    size_t n = strlen(incident), prefix_size;
    MDB_cursor *cur;
    MDB_val k, v;
    int rv;

    if (n > INCIDENT_ID_MAX)
        return 0;
    prefix[0] = 'I';
    memcpy(prefix + 1, incident, n);
    prefix[1 + n] = '\0';
    prefix_size = 2 + n;
    if ((rv = mdb_cursor_open(txn, s->alerts, &cur)) != 0)
        return store_mdb_error(s, rv, e, "cursor");
    k.mv_data = prefix;
    k.mv_size = prefix_size;
    for (rv = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rv == 0;
         rv = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint8_t kb[K_KEY];
        MDB_val kk = {K_KEY, kb};
        Im__AlertEntry *entry;
        int stop;

        if (k.mv_size != prefix_size + ALERTS_HASH_BYTES ||
            memcmp(k.mv_data, prefix, prefix_size) != 0)
            break;
        kb[0] = 'K';
        memcpy(kb + 1, (const uint8_t *)k.mv_data + prefix_size,
               ALERTS_HASH_BYTES);
        if ((rv = entry_get(s, txn, s->alerts, &kk, &entry, e)) != 0) {
            mdb_cursor_close(cur);
            return rv == IM_ENOTFOUND ? im_errf(e, IM_ECORRUPT,
                                                "alert index of %s names a "
                                                "missing key",
                                                incident)
                                      : rv;
        }
        stop = fn(arg, entry);
        im__alert_entry__free_unpacked(entry, NULL);
        if (stop)
            break;
    }
    mdb_cursor_close(cur);
    if (rv != 0 && rv != MDB_NOTFOUND)
        return store_mdb_error(s, rv, e, "list alert keys");
    return 0;
}
