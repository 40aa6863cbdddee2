/* etcd: a client for etcd's v3 JSON gateway (etcd 3.4: POST /v3/kv/range,
 * put, txn, deleterange; /v3/lease/grant, keepalive, revoke; /v3/watch),
 * with libcurl and jansson. Keys and values travel base64-encoded in JSON;
 * 64-bit integers travel as JSON strings. Here keys are C strings (our
 * layout is text: docs/coordinator.md) and values are bytes.
 *
 * Endpoints: a client has one or more (the members of one etcd cluster).
 * A call starts at the endpoint that last answered and moves to the next
 * when one cannot be reached or answers that it has no leader (neither
 * means the request was applied), until the call's deadline. Any other
 * failure is reported, never retried behind the caller's back: a txn that
 * timed out may or may not have been applied.
 *
 * Errors are translated here, once: curl codes, HTTP status and etcd's
 * error JSON ({"code": gRPC code, "message": ...}) become IM_E* codes with
 * the endpoint and etcd's message in e:
 *   IM_EUNREACH  no endpoint answered (connection refused, DNS, TLS, no leader)
 *   IM_ETIMEDOUT the call's deadline passed (a write may have been applied)
 *   IM_ENOTFOUND lease not found or expired (gRPC 5)
 *   IM_EINVAL    etcd refused the request as malformed (gRPC 3)
 *   IM_ESTALE    revision compacted or in the future (gRPC 11)
 *   IM_EDENIED   authentication or permission (gRPC 7, 16)
 *   IM_EFULL     etcd's space quota is exhausted (gRPC 8)
 *   IM_ETOOBIG   a reply over ETCD_REPLY_MAX, or a request over our limits
 *   IM_EPROTO    a reply that is not the JSON etcd sends
 *   IM_EIO       anything else etcd reports
 *
 * TLS: https:// endpoints verify the server against `ca` (a PEM file; the
 * system store if empty) and present the client certificate `cert` with its
 * key `key` (PEM) if given, for etcd's --client-cert-auth. Host names are
 * verified: use the name or address the server certificate carries.
 *
 * Election: a lease + txn election on one key (etcd_campaign): a replica
 * becomes leader by creating the key, attached to its lease, in a txn that
 * compares the key's create_revision with 0; the create revision it gets is
 * its term and fencing token (etcd_cmp_leader). It stays leader while its
 * lease lives; standbys watch the key and try again when it is deleted. We
 * do not use the gateway's /v3/election/campaign, which holds an HTTP
 * request open until elected: a blocked campaign cannot be cancelled from
 * our side without dropping the connection, and the txn form gives the same
 * guarantee (at most one key, so at most one leader per lease lifetime)
 * with calls that all have deadlines.
 *
 * Threads: every call may run on any thread at once; calls share a small
 * pool of curl handles (kept connections). etcd_watch blocks its thread. */
#ifndef IM_ETCD_H
#define IM_ETCD_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <pthread.h>

#include "bounds.h"
#include "err.h"

/* Members of one etcd cluster a client knows: etcd clusters are 1, 3 or 5
 * members; 7 leaves room for a migration. */
#define ETCD_ENDPOINTS_MAX 7

/* One reply body. A range over every assignment of a large cluster is the
 * largest (SITES_MAX sites, thousands of open incidents, a few hundred
 * bytes each, base64-inflated); etcd's own default request limit is
 * 1.5 MiB but replies are not capped, so we cap them. */
#define ETCD_REPLY_MAX (32 * 1024 * 1024)

/* One key (before base64). Our keys are a prefix, a site code or an
 * incident id: far below this. */
#define ETCD_KEY_MAX 512

/* One value (before base64): below etcd's default request size (1.5 MiB). */
#define ETCD_VALUE_MAX (1024 * 1024)

/* Comparisons and operations in one txn: etcd's default --max-txn-ops. */
#define ETCD_TXN_OPS_MAX 128

/* Idle curl handles kept for reuse (each holds its connections). */
#define ETCD_HANDLES_MAX 8

/* The deadline of one call, unless the caller sets another, and of a
 * connection attempt to one endpoint (so a dead endpoint costs at most
 * this before the next is tried). */
#define ETCD_TIMEOUT_MS_DEFAULT 5000
#define ETCD_CONNECT_MS_MAX 1000

struct etcd_tls {
    char ca[PATH_MAX_IM + 1];   /* PEM CA bundle; "" = system store */
    char cert[PATH_MAX_IM + 1]; /* PEM client certificate; "" = none */
    char key[PATH_MAX_IM + 1];  /* PEM key of cert; "" with cert = none */
};

struct etcd {
    char endpoints[ETCD_ENDPOINTS_MAX][URL_MAX + 1];
    size_t endpoints_count;
    struct etcd_tls tls;
    int timeout_ms;
    _Atomic size_t preferred; /* index of the endpoint that last answered */
    pthread_mutex_t mu;       /* the handle pool */
    void *handles[ETCD_HANDLES_MAX];
    size_t handles_count;
};

/* One key-value as etcd returns it. key is NUL-terminated; value is
 * value_size bytes plus a NUL (for text values). Revisions are etcd's:
 * create_revision is the revision that created this key (0: absent),
 * mod_revision the last that changed it, version the number of changes
 * since creation, lease the attached lease (0: none). */
struct etcd_kv {
    char *key;
    uint8_t *value;
    size_t value_size;
    int64_t create_revision, mod_revision, version, lease;
};

/* The result of a range: kvs[0..count) owned by the struct (free with
 * etcd_range_free). revision is the store's revision the read saw; more is
 * set if a limit cut the result; total counts every match. */
struct etcd_range {
    struct etcd_kv *kvs;
    size_t count;
    int64_t revision;
    int more;
    int64_t total;
};

/* Parses a comma-separated list of 1..ETCD_ENDPOINTS_MAX http:// or
 * https:// URLs (no path) into out, which holds ETCD_ENDPOINTS_MAX. Pure:
 * the config reader validates with it. IM_EINVAL naming the bad entry. */
int etcd_endpoints_parse(const char *text, char out[][URL_MAX + 1],
                         size_t *count_out, struct im_err *e);

/* Opens a client for endpoints (comma-separated http:// or https:// URLs,
 * 1..ETCD_ENDPOINTS_MAX). tls may be NULL. Does not contact etcd.
 * IM_EINVAL (with the offending endpoint named) for a bad list; on failure
 * there is nothing to close. */
int etcd_open(struct etcd *c, const char *endpoints, const struct etcd_tls *tls,
              struct im_err *e);
void etcd_close(struct etcd *c);

/* The deadline of each later call (ms, > 0). */
void etcd_set_timeout(struct etcd *c, int timeout_ms);

/* Range flags. */
#define ETCD_PREFIX 1    /* every key starting with key */
#define ETCD_KEYS_ONLY 2 /* no values */
#define ETCD_COUNT_ONLY 4
/* A serializable read: answered by the member asked from its own state,
 * without a round through etcd's leader. Keeps answering while etcd
 * elects a leader, and may be stale by what that member has not applied. */
#define ETCD_SERIALIZABLE 8

/* Reads key, or every key with prefix key if flags has ETCD_PREFIX, as of
 * revision (0: latest), at most limit kvs (0: no limit), sorted by key.
 * On success *out is filled and owned by the caller (etcd_range_free). */
int etcd_range(struct etcd *c, const char *key, int flags, int64_t revision,
               int64_t limit, struct etcd_range *out, struct im_err *e);
void etcd_range_free(struct etcd_range *r);

/* Reads one key into *out (free with etcd_kv_free); IM_ENOTFOUND if absent. */
int etcd_get(struct etcd *c, const char *key, struct etcd_kv *out,
             int64_t *revision_out, struct im_err *e);
void etcd_kv_free(struct etcd_kv *kv);

/* Writes key = value (attached to lease if non-zero). *revision_out (may be
 * NULL) is the revision of the write. */
int etcd_put(struct etcd *c, const char *key, const void *value,
             size_t value_size, int64_t lease, int64_t *revision_out,
             struct im_err *e);

/* Deletes key (or every key with that prefix). *deleted_out (may be NULL)
 * is how many keys were deleted. */
int etcd_delete(struct etcd *c, const char *key, int flags,
                int64_t *deleted_out, int64_t *revision_out, struct im_err *e);

/* ---- transactions: the fenced-write primitive ---- */

enum etcd_cmp_target {
    ETCD_CMP_VALUE,
    ETCD_CMP_MOD,     /* mod_revision */
    ETCD_CMP_CREATE,  /* create_revision (0: the key does not exist) */
    ETCD_CMP_VERSION, /* 0: the key does not exist */
    ETCD_CMP_LEASE,
};
enum etcd_cmp_result { ETCD_EQUAL, ETCD_NOT_EQUAL, ETCD_GREATER, ETCD_LESS };

/* "key's target <result> (number | value)". Borrowed for the call. */
struct etcd_cmp {
    const char *key;
    enum etcd_cmp_target target;
    enum etcd_cmp_result result;
    int64_t number;    /* MOD, CREATE, VERSION, LEASE */
    const void *value; /* VALUE */
    size_t value_size;
};

enum etcd_op_kind { ETCD_OP_PUT, ETCD_OP_DELETE, ETCD_OP_RANGE };

/* One operation of a branch. flags: ETCD_PREFIX (delete, range). */
struct etcd_op {
    enum etcd_op_kind kind;
    const char *key;
    const void *value;
    size_t value_size;
    int64_t lease;
    int flags;
};

/* What a txn did: which branch ran, the revision after it, and for each op
 * of that branch a range result (filled for ETCD_OP_RANGE, empty for the
 * others). Free with etcd_txn_result_free. */
struct etcd_txn_result {
    int succeeded;
    int64_t revision;
    struct etcd_range *ranges;
    size_t ranges_count;
};

/* If every compare holds, runs success[], else failure[], atomically.
 * A failed compare is not an error: out->succeeded is 0. out may be NULL
 * when the caller needs only success or failure: then a failed compare is
 * IM_ESTALE ("compare failed"). */
int etcd_txn(struct etcd *c, const struct etcd_cmp *cmp, size_t cmp_count,
             const struct etcd_op *success, size_t success_count,
             const struct etcd_op *failure, size_t failure_count,
             struct etcd_txn_result *out, struct im_err *e);
void etcd_txn_result_free(struct etcd_txn_result *r);

/* ---- leases ---- */

/* A lease of ttl_s seconds (etcd may grant more: its minimum is about
 * 1.5 x its election timeout). */
int etcd_lease_grant(struct etcd *c, int64_t ttl_s, int64_t *id_out,
                     int64_t *ttl_out, struct im_err *e);

/* Renews lease id for its full TTL; *ttl_out (may be NULL) is the TTL
 * granted. IM_ENOTFOUND if the lease has expired or was revoked: its keys
 * are gone. */
int etcd_lease_keepalive(struct etcd *c, int64_t id, int64_t *ttl_out,
                         struct im_err *e);

/* Revokes lease id and deletes its keys at once. IM_ENOTFOUND if gone. */
int etcd_lease_revoke(struct etcd *c, int64_t id, struct im_err *e);

/* ---- watch ---- */

enum etcd_event_type { ETCD_EVENT_PUT, ETCD_EVENT_DELETE };

struct etcd_event {
    enum etcd_event_type type;
    struct etcd_kv kv; /* for DELETE: key and mod_revision only */
};

/* Called with each batch of events (borrowed for the call) and the
 * revision of the last (a watcher resumes from revision + 1). Returns 0 to go
 * on, non-zero to end the watch (etcd_watch then returns 0). */
typedef int (*etcd_watch_fn)(void *arg, const struct etcd_event *events,
                             size_t count, int64_t revision);

/* Watches key (or the prefix) from start_revision (0: from now) and calls
 * fn with every change, on this thread. Returns 0 when fn asked to stop,
 * IM_ECLOSED when *stop became non-zero (checked a few times a second),
 * IM_ETIMEDOUT after duration_ms (a watcher re-watches from the revision
 * after the last it saw: a bounded watch also notices a dead member, which
 * a long poll would not), or an error. IM_ESTALE if start_revision was
 * compacted: read the current state and watch from there. */
int etcd_watch(struct etcd *c, const char *key, int flags,
               int64_t start_revision, int duration_ms, const atomic_int *stop,
               etcd_watch_fn fn, void *arg, struct im_err *e);

/* ---- election (lease + txn on one key; see above) ---- */

/* Tries once to become leader: creates key = value attached to lease if
 * the key does not exist. 0 and *term_out = the key's create revision if
 * elected (also if this lease already holds the key: a retry after a lost
 * reply). IM_EBUSY if another holds it: *holder_out (may be NULL) then
 * receives the key as it is (free with etcd_kv_free). */
int etcd_campaign(struct etcd *c, const char *key, const void *value,
                  size_t value_size, int64_t lease, int64_t *term_out,
                  struct etcd_kv *holder_out, struct im_err *e);

/* The current leader's key (free with etcd_kv_free); IM_ENOTFOUND if none. */
int etcd_leader(struct etcd *c, const char *key, struct etcd_kv *out,
                struct im_err *e);

/* Gives up leadership of term: deletes key if its create revision is still
 * term. IM_ESTALE if it is not (already lost). */
int etcd_resign(struct etcd *c, const char *key, int64_t term,
                struct im_err *e);

/* The compare that fences a leader's write: key's create revision is still
 * term. Put it first in every compare list of a leader's txn; a txn of a
 * deposed leader then fails its compare and changes nothing. */
struct etcd_cmp etcd_cmp_leader(const char *key, int64_t term);

#endif
