/* etcd: see etcd.h. */
#include "etcd.h"

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

/* gRPC status codes that etcd's gateway puts in "code". */
enum {
    GRPC_CANCELLED = 1,
    GRPC_UNKNOWN = 2,
    GRPC_INVALID_ARGUMENT = 3,
    GRPC_DEADLINE_EXCEEDED = 4,
    GRPC_NOT_FOUND = 5,
    GRPC_ALREADY_EXISTS = 6,
    GRPC_PERMISSION_DENIED = 7,
    GRPC_RESOURCE_EXHAUSTED = 8,
    GRPC_FAILED_PRECONDITION = 9,
    GRPC_OUT_OF_RANGE = 11,
    GRPC_UNAVAILABLE = 14,
    GRPC_UNAUTHENTICATED = 16,
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_init_rv;

static void
curl_init_once(void)
{
    curl_init_rv = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

/* ---- base64 and JSON helpers ---- */

/* A new string holding the base64 of size bytes, or NULL (out of memory). */
static char *
b64_encode(const void *data, size_t size)
{
    size_t n = sodium_base64_ENCODED_LEN(size, sodium_base64_VARIANT_ORIGINAL);
    char *out = malloc(n);
    if (out == NULL)
        return NULL;
    sodium_bin2base64(out, n, data, size, sodium_base64_VARIANT_ORIGINAL);
    return out;
}

/* Sets obj[name] = base64(data); IM_ENOMEM on failure. */
static int
set_b64(json_t *obj, const char *name, const void *data, size_t size)
{
    char *s = b64_encode(data, size);
    if (s == NULL || json_object_set_new(obj, name, json_string(s)) != 0) {
        free(s);
        return IM_ENOMEM;
    }
    free(s);
    return 0;
}

static int
set_int(json_t *obj, const char *name, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    return json_object_set_new(obj, name, json_string(buf)) == 0 ? 0
                                                                 : IM_ENOMEM;
}

/* An int64 field, which the gateway sends as a string (proto3 JSON); 0 if
 * absent (proto3 omits zero values). -1 and *bad set if malformed. */
static int64_t
get_int(const json_t *obj, const char *name, int *bad)
{
    const json_t *v = json_object_get(obj, name);
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_integer(v))
        return (int64_t)json_integer_value(v);
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        long long n;
        errno = 0;
        n = strtoll(s, &end, 10);
        if (errno == 0 && end != s && *end == '\0')
            return n;
    }
    *bad = 1;
    return -1;
}

/* Decodes base64 field name of obj into a new NUL-terminated buffer. An
 * absent field is empty (proto3 omits empty bytes). */
static int
get_b64(const json_t *obj, const char *name, uint8_t **out, size_t *size_out)
{
    const json_t *v = json_object_get(obj, name);
    const char *s = "";
    size_t len, cap, n = 0;
    uint8_t *buf;

    if (v != NULL && !json_is_string(v))
        return IM_EPROTO;
    if (v != NULL)
        s = json_string_value(v);
    len = strlen(s);
    cap = len / 4 * 3 + 3;
    if ((buf = malloc(cap + 1)) == NULL)
        return IM_ENOMEM;
    if (len > 0 && sodium_base642bin(buf, cap, s, len, NULL, &n, NULL,
                                     sodium_base64_VARIANT_ORIGINAL) != 0) {
        free(buf);
        return IM_EPROTO;
    }
    buf[n] = '\0';
    *out = buf;
    *size_out = n;
    return 0;
}

void
etcd_kv_free(struct etcd_kv *kv)
{
    free(kv->key);
    free(kv->value);
    memset(kv, 0, sizeof *kv);
}

static int
parse_kv(const json_t *j, struct etcd_kv *kv)
{
    size_t key_size;
    int bad = 0, rv;

    memset(kv, 0, sizeof *kv);
    if (!json_is_object(j))
        return IM_EPROTO;
    if ((rv = get_b64(j, "key", (uint8_t **)&kv->key, &key_size)) != 0)
        return rv;
    if (strlen(kv->key) != key_size) {
        etcd_kv_free(kv);
        return IM_EPROTO; /* a NUL in a key: not one of ours */
    }
    if ((rv = get_b64(j, "value", &kv->value, &kv->value_size)) != 0) {
        etcd_kv_free(kv);
        return rv;
    }
    kv->create_revision = get_int(j, "create_revision", &bad);
    kv->mod_revision = get_int(j, "mod_revision", &bad);
    kv->version = get_int(j, "version", &bad);
    kv->lease = get_int(j, "lease", &bad);
    if (bad) {
        etcd_kv_free(kv);
        return IM_EPROTO;
    }
    return 0;
}

void
etcd_range_free(struct etcd_range *r)
{
    for (size_t i = 0; i < r->count; i++)
        etcd_kv_free(&r->kvs[i]);
    free(r->kvs);
    memset(r, 0, sizeof *r);
}

static int64_t
header_revision(const json_t *j, int *bad)
{
    const json_t *h = json_object_get(j, "header");
    return h ? get_int(h, "revision", bad) : 0;
}

/* A RangeResponse object into *out. */
static int
parse_range(const json_t *j, struct etcd_range *out)
{
    const json_t *kvs = json_object_get(j, "kvs");
    int bad = 0, rv;

    memset(out, 0, sizeof *out);
    out->revision = header_revision(j, &bad);
    out->total = get_int(j, "count", &bad);
    out->more = json_is_true(json_object_get(j, "more"));
    if (bad || (kvs != NULL && !json_is_array(kvs)))
        return IM_EPROTO;
    if (kvs == NULL || json_array_size(kvs) == 0)
        return 0;
    out->kvs = calloc(json_array_size(kvs), sizeof *out->kvs);
    if (out->kvs == NULL)
        return IM_ENOMEM;
    for (size_t i = 0; i < json_array_size(kvs); i++) {
        if ((rv = parse_kv(json_array_get(kvs, i), &out->kvs[i])) != 0) {
            etcd_range_free(out);
            return rv;
        }
        out->count++;
    }
    return 0;
}

/* ---- transport ---- */

struct buf {
    char *data;
    size_t size, cap;
    int overflow;
};

static size_t
on_body(char *p, size_t sz, size_t n, void *arg)
{
    struct buf *b = arg;
    size_t add = sz * n;
    if (b->size + add > ETCD_REPLY_MAX) {
        b->overflow = 1;
        return 0;
    }
    if (b->size + add + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        char *d;
        while (cap < b->size + add + 1)
            cap *= 2;
        if ((d = realloc(b->data, cap)) == NULL)
            return 0;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->size, p, add);
    b->size += add;
    b->data[b->size] = '\0';
    return add;
}

static CURL *
handle_get(struct etcd *c)
{
    CURL *h = NULL;
    pthread_mutex_lock(&c->mu);
    if (c->handles_count > 0)
        h = c->handles[--c->handles_count];
    pthread_mutex_unlock(&c->mu);
    if (h == NULL)
        h = curl_easy_init();
    else
        curl_easy_reset(h); /* options only: its connections stay */
    return h;
}

static void
handle_put(struct etcd *c, CURL *h)
{
    pthread_mutex_lock(&c->mu);
    if (c->handles_count < ETCD_HANDLES_MAX) {
        c->handles[c->handles_count++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    if (h != NULL)
        curl_easy_cleanup(h);
}

/* Options common to every request to endpoint ep. */
static void
setup(struct etcd *c, CURL *h, const char *url, const char *body,
      struct curl_slist *hdrs, long timeout_ms, char *errbuf)
{
    long connect_ms =
        timeout_ms < ETCD_CONNECT_MS_MAX ? timeout_ms : ETCD_CONNECT_MS_MAX;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    /* Threads: no SIGALRM-based DNS timeouts. */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    if (c->tls.ca[0])
        curl_easy_setopt(h, CURLOPT_CAINFO, c->tls.ca);
    if (c->tls.cert[0]) {
        curl_easy_setopt(h, CURLOPT_SSLCERT, c->tls.cert);
        curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
    }
    if (c->tls.key[0])
        curl_easy_setopt(h, CURLOPT_SSLKEY, c->tls.key);
}

/* curl failures where the request certainly did not reach etcd: the next
 * endpoint may be tried. */
static int
never_sent(CURLcode cc)
{
    switch (cc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_UNSUPPORTED_PROTOCOL: return 1;
    default: return 0;
    }
}

/* etcd's error JSON: {"error": "...", "message": "...", "code": n} for unary
 * calls; {"error": {"grpc_code": n, "message": "..."}} inside a stream. */
static int
etcd_error(const json_t *j, int *grpc_out, const char **msg_out)
{
    const json_t *err = json_object_get(j, "error");
    int bad = 0;
    if (err == NULL)
        return 0;
    if (json_is_object(err)) {
        *grpc_out = (int)get_int(err, "grpc_code", &bad);
        *msg_out = json_string_value(json_object_get(err, "message"));
    } else {
        *grpc_out = (int)get_int(j, "code", &bad);
        *msg_out = json_string_value(json_object_get(j, "message"));
        if (*msg_out == NULL)
            *msg_out = json_string_value(err);
    }
    if (*msg_out == NULL)
        *msg_out = "(no message)";
    return 1;
}

static int
from_grpc(int grpc)
{
    switch (grpc) {
    case GRPC_INVALID_ARGUMENT: return IM_EINVAL;
    case GRPC_NOT_FOUND: return IM_ENOTFOUND;
    case GRPC_OUT_OF_RANGE: return IM_ESTALE;
    case GRPC_PERMISSION_DENIED:
    case GRPC_UNAUTHENTICATED: return IM_EDENIED;
    case GRPC_RESOURCE_EXHAUSTED: return IM_EFULL;
    case GRPC_DEADLINE_EXCEEDED: return IM_ETIMEDOUT;
    case GRPC_UNAVAILABLE: return IM_EUNREACH;
    case GRPC_ALREADY_EXISTS: return IM_EEXIST;
    case GRPC_FAILED_PRECONDITION: return IM_ESTATE;
    case GRPC_CANCELLED: return IM_ECLOSED;
    default: return IM_EIO;
    }
}

/* Appends "; text" to a bounded list of per-endpoint failures. */
static void
note(char *list, size_t cap, const char *ep, const char *text)
{
    size_t n = strlen(list);
    if (n + 4 < cap)
        snprintf(list + n, cap - n, "%s%s: %s", n ? "; " : "", ep, text);
}

/* POSTs req to path at the endpoints in turn (see etcd.h) and returns the
 * reply's JSON (owned by the caller; for stream endpoints, its "result").
 * The one place where curl, HTTP and etcd errors become IM_E* codes. */
static int
call(struct etcd *c, const char *path, json_t *req, json_t **out,
     struct im_err *e)
{
    char *body = json_dumps(req, JSON_COMPACT);
    char url[URL_MAX + 64], errbuf[CURL_ERROR_SIZE], tried[IM_ERRMSG_MAX - 96];
    struct curl_slist *hdrs = NULL;
    uint64_t deadline = clock_mono_ms() + (uint64_t)c->timeout_ms;
    size_t start = atomic_load(&c->preferred);
    CURL *h;
    int rv = IM_EUNREACH;

    tried[0] = '\0';
    if (body == NULL)
        return im_errf(e, IM_ENOMEM, "etcd %s: out of memory", path);
    if ((h = handle_get(c)) == NULL) {
        free(body);
        return im_errf(e, IM_ENOMEM, "etcd %s: cannot create a curl handle",
                       path);
    }
    hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    for (size_t i = 0; i < c->endpoints_count; i++) {
        size_t idx = (start + i) % c->endpoints_count;
        const char *ep = c->endpoints[idx];
        uint64_t now = clock_mono_ms();
        struct buf b = {0};
        json_t *j;
        json_error_t jerr;
        long status = 0;
        CURLcode cc;
        int grpc = 0;
        const char *msg;

        if (now >= deadline) {
            rv = im_errf(e, IM_ETIMEDOUT,
                         "etcd %s: no answer within %d ms (%s)", path,
                         c->timeout_ms, tried[0] ? tried : "no endpoint tried");
            goto out;
        }
        snprintf(url, sizeof url, "%s%s", ep, path);
        errbuf[0] = '\0';
        curl_easy_reset(h);
        setup(c, h, url, body, hdrs, (long)(deadline - now), errbuf);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
        cc = curl_easy_perform(h);
        if (cc != CURLE_OK) {
            const char *why = errbuf[0] ? errbuf : curl_easy_strerror(cc);
            free(b.data);
            if (b.overflow) {
                rv =
                    im_errf(e, IM_ETOOBIG, "etcd %s at %s: reply over %d bytes",
                            path, ep, ETCD_REPLY_MAX);
                goto out;
            }
            if (never_sent(cc)) {
                note(tried, sizeof tried, ep, why);
                continue;
            }
            if (cc == CURLE_OPERATION_TIMEDOUT) {
                double connect_s = 0;
                curl_easy_getinfo(h, CURLINFO_CONNECT_TIME, &connect_s);
                if (connect_s == 0) { /* never connected: try the next */
                    note(tried, sizeof tried, ep, why);
                    continue;
                }
                rv = im_errf(e, IM_ETIMEDOUT,
                             "etcd %s at %s: no answer within %d ms (the "
                             "request may or may not have been applied)",
                             path, ep, c->timeout_ms);
                goto out;
            }
            rv = im_errf(e, IM_EUNREACH, "etcd %s at %s: %s", path, ep, why);
            goto out;
        }
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        j = b.data ? json_loadb(b.data, b.size, 0, &jerr) : NULL;
        free(b.data);
        if (j == NULL || !json_is_object(j)) {
            json_decref(j);
            rv = im_errf(e, status == 200 ? IM_EPROTO : IM_EIO,
                         "etcd %s at %s: HTTP %ld with a body that is not "
                         "etcd's JSON",
                         path, ep, status);
            if (status == 200)
                goto out;
            /* Not etcd (a proxy's error page): try the next. */
            note(tried, sizeof tried, ep, "not an etcd reply");
            continue;
        }
        if (etcd_error(j, &grpc, &msg)) {
            /* "no leader" and a stopping member: not applied, try the next. */
            if (grpc == GRPC_UNAVAILABLE &&
                (strstr(msg, "no leader") || strstr(msg, "stopped"))) {
                note(tried, sizeof tried, ep, msg);
                json_decref(j);
                continue;
            }
            rv =
                im_errf(e, from_grpc(grpc), "etcd %s at %s: %s", path, ep, msg);
            json_decref(j);
            goto out;
        }
        if (status != 200) {
            json_decref(j);
            rv =
                im_errf(e, IM_EIO, "etcd %s at %s: HTTP %ld", path, ep, status);
            goto out;
        }
        atomic_store(&c->preferred, idx);
        if (json_is_object(json_object_get(j, "result"))) {
            json_t *r = json_incref(json_object_get(j, "result"));
            json_decref(j);
            j = r;
        }
        *out = j;
        rv = 0;
        goto out;
    }
    rv = im_errf(e, IM_EUNREACH, "etcd %s: no endpoint answered (%s)", path,
                 tried);
out:
    curl_slist_free_all(hdrs);
    handle_put(c, h);
    free(body);
    return rv;
}

/* ---- public calls ---- */

static int
check_key(const char *key, struct im_err *e)
{
    size_t n = strlen(key);
    if (n == 0)
        return im_errf(e, IM_EINVAL, "etcd: empty key");
    if (n > ETCD_KEY_MAX)
        return im_errf(e, IM_ETOOBIG, "etcd: key of %zu bytes exceeds %d", n,
                       ETCD_KEY_MAX);
    return 0;
}

/* The range end that makes key a prefix: key with its last byte
 * incremented (after dropping trailing 0xff bytes). */
static int
set_prefix_end(json_t *obj, const char *key)
{
    size_t n = strlen(key);
    char end[ETCD_KEY_MAX + 1];
    memcpy(end, key, n);
    while (n > 0 && (uint8_t)end[n - 1] == 0xff)
        n--;
    if (n == 0)
        return set_b64(obj, "range_end", "", 1); /* "\0": every key */
    end[n - 1] = (char)((uint8_t)end[n - 1] + 1);
    return set_b64(obj, "range_end", end, n);
}

/* The JSON of a RangeRequest (also a txn's request_range). */
static json_t *
range_req(const char *key, int flags, int64_t revision, int64_t limit)
{
    json_t *r = json_object();
    if (r == NULL || set_b64(r, "key", key, strlen(key)) != 0 ||
        ((flags & ETCD_PREFIX) && set_prefix_end(r, key) != 0) ||
        (revision > 0 && set_int(r, "revision", revision) != 0) ||
        (limit > 0 && set_int(r, "limit", limit) != 0) ||
        ((flags & ETCD_KEYS_ONLY) &&
         json_object_set_new(r, "keys_only", json_true()) != 0) ||
        ((flags & ETCD_COUNT_ONLY) &&
         json_object_set_new(r, "count_only", json_true()) != 0) ||
        ((flags & ETCD_SERIALIZABLE) &&
         json_object_set_new(r, "serializable", json_true()) != 0)) {
        json_decref(r);
        return NULL;
    }
    return r;
}

int
etcd_range(struct etcd *c, const char *key, int flags, int64_t revision,
           int64_t limit, struct etcd_range *out, struct im_err *e)
{
    json_t *req, *rep = NULL;
    int rv;

    if ((rv = check_key(key, e)) != 0)
        return rv;
    if ((req = range_req(key, flags, revision, limit)) == NULL)
        return im_errf(e, IM_ENOMEM, "etcd range: out of memory");
    rv = call(c, "/v3/kv/range", req, &rep, e);
    json_decref(req);
    if (rv != 0)
        return rv;
    rv = parse_range(rep, out);
    json_decref(rep);
    if (rv != 0)
        return im_errf(e, rv, "etcd range %s: %s in the reply", key,
                       rv == IM_ENOMEM ? "out of memory" : "malformed kvs");
    return 0;
}

int
etcd_get(struct etcd *c, const char *key, struct etcd_kv *out,
         int64_t *revision_out, struct im_err *e)
{
    struct etcd_range r;
    int rv;

    if ((rv = etcd_range(c, key, 0, 0, 0, &r, e)) != 0)
        return rv;
    if (revision_out != NULL)
        *revision_out = r.revision;
    if (r.count == 0) {
        etcd_range_free(&r);
        return im_errf(e, IM_ENOTFOUND, "etcd: no key %s", key);
    }
    *out = r.kvs[0];
    memset(&r.kvs[0], 0, sizeof r.kvs[0]);
    etcd_range_free(&r);
    return 0;
}

static json_t *
put_req(const char *key, const void *value, size_t value_size, int64_t lease)
{
    json_t *r = json_object();
    if (r == NULL || set_b64(r, "key", key, strlen(key)) != 0 ||
        set_b64(r, "value", value, value_size) != 0 ||
        (lease != 0 && set_int(r, "lease", lease) != 0)) {
        json_decref(r);
        return NULL;
    }
    return r;
}

static int
check_value(size_t value_size, struct im_err *e)
{
    if (value_size > ETCD_VALUE_MAX)
        return im_errf(e, IM_ETOOBIG, "etcd: value of %zu bytes exceeds %d",
                       value_size, ETCD_VALUE_MAX);
    return 0;
}

int
etcd_put(struct etcd *c, const char *key, const void *value, size_t value_size,
         int64_t lease, int64_t *revision_out, struct im_err *e)
{
    json_t *req, *rep = NULL;
    int bad = 0, rv;
    int64_t rev;

    if ((rv = check_key(key, e)) != 0 || (rv = check_value(value_size, e)) != 0)
        return rv;
    if ((req = put_req(key, value, value_size, lease)) == NULL)
        return im_errf(e, IM_ENOMEM, "etcd put: out of memory");
    rv = call(c, "/v3/kv/put", req, &rep, e);
    json_decref(req);
    if (rv != 0)
        return rv;
    rev = header_revision(rep, &bad);
    json_decref(rep);
    if (bad)
        return im_errf(e, IM_EPROTO, "etcd put %s: malformed revision", key);
    if (revision_out != NULL)
        *revision_out = rev;
    return 0;
}

static json_t *
delete_req(const char *key, int flags)
{
    json_t *r = json_object();
    if (r == NULL || set_b64(r, "key", key, strlen(key)) != 0 ||
        ((flags & ETCD_PREFIX) && set_prefix_end(r, key) != 0)) {
        json_decref(r);
        return NULL;
    }
    return r;
}

int
etcd_delete(struct etcd *c, const char *key, int flags, int64_t *deleted_out,
            int64_t *revision_out, struct im_err *e)
{
    json_t *req, *rep = NULL;
    int bad = 0, rv;
    int64_t rev, n;

    if ((rv = check_key(key, e)) != 0)
        return rv;
    if ((req = delete_req(key, flags)) == NULL)
        return im_errf(e, IM_ENOMEM, "etcd delete: out of memory");
    rv = call(c, "/v3/kv/deleterange", req, &rep, e);
    json_decref(req);
    if (rv != 0)
        return rv;
    rev = header_revision(rep, &bad);
    n = get_int(rep, "deleted", &bad);
    json_decref(rep);
    if (bad)
        return im_errf(e, IM_EPROTO, "etcd delete %s: malformed reply", key);
    if (deleted_out != NULL)
        *deleted_out = n;
    if (revision_out != NULL)
        *revision_out = rev;
    return 0;
}

/* ---- txn ---- */

static const char *const cmp_target_names[] = {"VALUE", "MOD", "CREATE",
                                               "VERSION", "LEASE"};
static const char *const cmp_target_fields[] = {
    "value", "mod_revision", "create_revision", "version", "lease"};
static const char *const cmp_result_names[] = {"EQUAL", "NOT_EQUAL", "GREATER",
                                               "LESS"};

static json_t *
cmp_json(const struct etcd_cmp *x)
{
    json_t *r = json_object();
    int rv;
    if (r == NULL)
        return NULL;
    rv = set_b64(r, "key", x->key, strlen(x->key));
    if (rv == 0 &&
        json_object_set_new(r, "target",
                            json_string(cmp_target_names[x->target])) != 0)
        rv = IM_ENOMEM;
    if (rv == 0 &&
        json_object_set_new(r, "result",
                            json_string(cmp_result_names[x->result])) != 0)
        rv = IM_ENOMEM;
    if (rv == 0) {
        if (x->target == ETCD_CMP_VALUE)
            rv = set_b64(r, "value", x->value, x->value_size);
        else
            rv = set_int(r, cmp_target_fields[x->target], x->number);
    }
    if (rv != 0) {
        json_decref(r);
        return NULL;
    }
    return r;
}

static json_t *
op_json(const struct etcd_op *op)
{
    json_t *inner = NULL, *r = json_object();
    const char *name = NULL;
    if (r == NULL)
        return NULL;
    switch (op->kind) {
    case ETCD_OP_PUT:
        inner = put_req(op->key, op->value, op->value_size, op->lease);
        name = "request_put";
        break;
    case ETCD_OP_DELETE:
        inner = delete_req(op->key, op->flags);
        name = "request_delete_range";
        break;
    case ETCD_OP_RANGE:
        inner = range_req(op->key, op->flags, 0, 0);
        name = "request_range";
        break;
    }
    if (inner == NULL || json_object_set_new(r, name, inner) != 0) {
        json_decref(r);
        return NULL;
    }
    return r;
}

void
etcd_txn_result_free(struct etcd_txn_result *r)
{
    for (size_t i = 0; i < r->ranges_count; i++)
        etcd_range_free(&r->ranges[i]);
    free(r->ranges);
    memset(r, 0, sizeof *r);
}

static int
check_ops(const struct etcd_op *ops, size_t n, struct im_err *e)
{
    int rv;
    for (size_t i = 0; i < n; i++) {
        if ((rv = check_key(ops[i].key, e)) != 0)
            return rv;
        if (ops[i].kind == ETCD_OP_PUT &&
            (rv = check_value(ops[i].value_size, e)) != 0)
            return rv;
    }
    return 0;
}

int
etcd_txn(struct etcd *c, const struct etcd_cmp *cmp, size_t cmp_count,
         const struct etcd_op *success, size_t success_count,
         const struct etcd_op *failure, size_t failure_count,
         struct etcd_txn_result *out, struct im_err *e)
{
    json_t *req = NULL, *arr, *rep = NULL, *resps;
    struct etcd_txn_result res = {0};
    int bad = 0, rv;

    if (cmp_count > ETCD_TXN_OPS_MAX || success_count > ETCD_TXN_OPS_MAX ||
        failure_count > ETCD_TXN_OPS_MAX)
        return im_errf(e, IM_ETOOBIG,
                       "etcd txn: more than %d compares or "
                       "operations in a branch",
                       ETCD_TXN_OPS_MAX);
    for (size_t i = 0; i < cmp_count; i++)
        if ((rv = check_key(cmp[i].key, e)) != 0)
            return rv;
    if ((rv = check_ops(success, success_count, e)) != 0 ||
        (rv = check_ops(failure, failure_count, e)) != 0)
        return rv;
    if ((req = json_object()) == NULL)
        goto nomem;
    if ((arr = json_array()) == NULL ||
        json_object_set_new(req, "compare", arr) != 0)
        goto nomem;
    for (size_t i = 0; i < cmp_count; i++)
        if (json_array_append_new(arr, cmp_json(&cmp[i])) != 0)
            goto nomem;
    if ((arr = json_array()) == NULL ||
        json_object_set_new(req, "success", arr) != 0)
        goto nomem;
    for (size_t i = 0; i < success_count; i++)
        if (json_array_append_new(arr, op_json(&success[i])) != 0)
            goto nomem;
    if ((arr = json_array()) == NULL ||
        json_object_set_new(req, "failure", arr) != 0)
        goto nomem;
    for (size_t i = 0; i < failure_count; i++)
        if (json_array_append_new(arr, op_json(&failure[i])) != 0)
            goto nomem;
    rv = call(c, "/v3/kv/txn", req, &rep, e);
    json_decref(req);
    if (rv != 0)
        return rv;
    res.succeeded = json_is_true(json_object_get(rep, "succeeded"));
    res.revision = header_revision(rep, &bad);
    resps = json_object_get(rep, "responses");
    if (bad || (resps != NULL && !json_is_array(resps))) {
        json_decref(rep);
        return im_errf(e, IM_EPROTO, "etcd txn: malformed reply");
    }
    if (out != NULL && resps != NULL && json_array_size(resps) > 0) {
        res.ranges = calloc(json_array_size(resps), sizeof *res.ranges);
        if (res.ranges == NULL) {
            json_decref(rep);
            return im_errf(e, IM_ENOMEM, "etcd txn: out of memory");
        }
        for (size_t i = 0; i < json_array_size(resps); i++) {
            json_t *rr =
                json_object_get(json_array_get(resps, i), "response_range");
            res.ranges_count++;
            if (rr != NULL && (rv = parse_range(rr, &res.ranges[i])) != 0) {
                etcd_txn_result_free(&res);
                json_decref(rep);
                return im_errf(e, rv, "etcd txn: malformed range in the reply");
            }
        }
    }
    json_decref(rep);
    if (out == NULL) {
        if (!res.succeeded)
            return im_errf(e, IM_ESTALE, "etcd txn: compare failed");
        return 0;
    }
    *out = res;
    return 0;
nomem:
    json_decref(req);
    return im_errf(e, IM_ENOMEM, "etcd txn: out of memory");
}

/* ---- leases ---- */

int
etcd_lease_grant(struct etcd *c, int64_t ttl_s, int64_t *id_out,
                 int64_t *ttl_out, struct im_err *e)
{
    json_t *req, *rep = NULL;
    int bad = 0, rv;
    int64_t id, ttl;

    if (ttl_s <= 0)
        return im_errf(e, IM_EINVAL,
                       "etcd lease: TTL must be positive, not %lld",
                       (long long)ttl_s);
    if ((req = json_object()) == NULL || set_int(req, "TTL", ttl_s) != 0) {
        json_decref(req);
        return im_errf(e, IM_ENOMEM, "etcd lease grant: out of memory");
    }
    rv = call(c, "/v3/lease/grant", req, &rep, e);
    json_decref(req);
    if (rv != 0)
        return rv;
    id = get_int(rep, "ID", &bad);
    ttl = get_int(rep, "TTL", &bad);
    json_decref(rep);
    if (bad || id == 0 || ttl <= 0)
        return im_errf(e, IM_EPROTO, "etcd lease grant: malformed reply");
    *id_out = id;
    if (ttl_out != NULL)
        *ttl_out = ttl;
    return 0;
}

static int
lease_call(struct etcd *c, const char *path, int64_t id, json_t **rep,
           struct im_err *e)
{
    json_t *req;
    int rv;
    if ((req = json_object()) == NULL || set_int(req, "ID", id) != 0) {
        json_decref(req);
        return im_errf(e, IM_ENOMEM, "etcd %s: out of memory", path);
    }
    rv = call(c, path, req, rep, e);
    json_decref(req);
    return rv;
}

int
etcd_lease_keepalive(struct etcd *c, int64_t id, int64_t *ttl_out,
                     struct im_err *e)
{
    json_t *rep = NULL;
    int bad = 0, rv;
    int64_t ttl;

    if ((rv = lease_call(c, "/v3/lease/keepalive", id, &rep, e)) != 0)
        return rv;
    ttl = get_int(rep, "TTL", &bad);
    json_decref(rep);
    if (bad)
        return im_errf(e, IM_EPROTO, "etcd lease keepalive: malformed reply");
    /* An expired lease is answered with its ID and no TTL (zero). */
    if (ttl <= 0)
        return im_errf(e, IM_ENOTFOUND, "etcd lease %llx has expired",
                       (unsigned long long)id);
    if (ttl_out != NULL)
        *ttl_out = ttl;
    return 0;
}

int
etcd_lease_revoke(struct etcd *c, int64_t id, struct im_err *e)
{
    json_t *rep = NULL;
    int rv = lease_call(c, "/v3/lease/revoke", id, &rep, e);
    json_decref(rep);
    return rv;
}

/* ---- watch ---- */

struct watch {
    struct buf line;
    etcd_watch_fn fn;
    void *arg;
    const atomic_int *stop;
    int stopped_by_fn;
    int created;
    int code; /* an error found in the stream */
    struct im_err *e;
    const char *ep;
};

/* One JSON line of the stream. 0 to go on; non-zero to end the transfer. */
static int
watch_line(struct watch *w, const char *text, size_t size)
{
    json_error_t jerr;
    json_t *j = json_loadb(text, size, 0, &jerr), *r, *evs;
    struct etcd_event *ev = NULL;
    size_t n = 0;
    int grpc = 0, bad = 0, rv = 0;
    const char *msg;

    if (j == NULL) {
        w->code = im_errf(w->e, IM_EPROTO,
                          "etcd watch at %s: malformed stream "
                          "line: %s",
                          w->ep, jerr.text);
        return 1;
    }
    if (etcd_error(j, &grpc, &msg)) {
        w->code =
            im_errf(w->e, from_grpc(grpc), "etcd watch at %s: %s", w->ep, msg);
        json_decref(j);
        return 1;
    }
    r = json_object_get(j, "result");
    if (!json_is_object(r)) {
        json_decref(j);
        return 0;
    }
    if (json_is_true(json_object_get(r, "created")))
        w->created = 1;
    if (json_is_true(json_object_get(r, "canceled"))) {
        int64_t compact = get_int(r, "compact_revision", &bad);
        const char *why =
            json_string_value(json_object_get(r, "cancel_reason"));
        if (compact > 0)
            w->code =
                im_errf(w->e, IM_ESTALE,
                        "etcd watch at %s: revision "
                        "compacted (oldest is %lld): read and watch again",
                        w->ep, (long long)compact);
        else
            w->code = im_errf(w->e, IM_EIO, "etcd watch at %s: canceled: %s",
                              w->ep, why ? why : "(no reason)");
        json_decref(j);
        return 1;
    }
    header_revision(r, &bad);
    evs = json_object_get(r, "events");
    if (bad || (evs != NULL && !json_is_array(evs))) {
        w->code = im_errf(w->e, IM_EPROTO, "etcd watch at %s: malformed events",
                          w->ep);
        json_decref(j);
        return 1;
    }
    if (evs != NULL && json_array_size(evs) > 0) {
        if ((ev = calloc(json_array_size(evs), sizeof *ev)) == NULL) {
            w->code = im_errf(w->e, IM_ENOMEM, "etcd watch: out of memory");
            json_decref(j);
            return 1;
        }
        for (; n < json_array_size(evs); n++) {
            json_t *x = json_array_get(evs, n);
            const char *type = json_string_value(json_object_get(x, "type"));
            ev[n].type = type && strcmp(type, "DELETE") == 0 ? ETCD_EVENT_DELETE
                                                             : ETCD_EVENT_PUT;
            if ((rv = parse_kv(json_object_get(x, "kv"), &ev[n].kv)) != 0) {
                w->code = im_errf(w->e, IM_EPROTO,
                                  "etcd watch at %s: malformed "
                                  "event",
                                  w->ep);
                break;
            }
        }
        if (w->code == 0) {
            /* The last event's revision, not the header's: a catching-up
             * watcher's header is already the store's current revision,
             * ahead of events still to come. */
            int64_t last = ev[n - 1].kv.mod_revision;
            if (w->fn(w->arg, ev, n, last) != 0)
                w->stopped_by_fn = 1;
        }
        for (size_t i = 0; i < n; i++)
            etcd_kv_free(&ev[i].kv);
        free(ev);
    }
    json_decref(j);
    return w->code != 0 || w->stopped_by_fn;
}

static size_t
on_watch(char *p, size_t sz, size_t n, void *arg)
{
    struct watch *w = arg;
    size_t add = sz * n, done = 0;

    for (size_t i = 0; i < add; i++) {
        if (p[i] != '\n')
            continue;
        if (on_body(p + done, 1, i - done, &w->line) != i - done) {
            w->code = im_errf(w->e, IM_ETOOBIG,
                              "etcd watch: a response over %d "
                              "bytes",
                              ETCD_REPLY_MAX);
            return 0;
        }
        done = i + 1;
        if (w->line.size > 0 && watch_line(w, w->line.data, w->line.size) != 0)
            return 0;
        w->line.size = 0;
    }
    if (done < add &&
        on_body(p + done, 1, add - done, &w->line) != add - done) {
        w->code =
            im_errf(w->e, IM_ETOOBIG, "etcd watch: a response over %d bytes",
                    ETCD_REPLY_MAX);
        return 0;
    }
    return add;
}

static int
on_watch_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut,
                  curl_off_t un)
{
    struct watch *w = arg;
    return w->stop != NULL && atomic_load(w->stop) != 0;
}

int
etcd_watch(struct etcd *c, const char *key, int flags, int64_t start_revision,
           int duration_ms, const atomic_int *stop, etcd_watch_fn fn, void *arg,
           struct im_err *e)
{
    char url[URL_MAX + 64], errbuf[CURL_ERROR_SIZE], tried[IM_ERRMSG_MAX - 96];
    struct curl_slist *hdrs;
    json_t *req, *create;
    char *body;
    size_t start = atomic_load(&c->preferred);
    uint64_t deadline = clock_mono_ms() + (uint64_t)duration_ms;
    CURL *h;
    int rv;

    tried[0] = '\0';
    if ((rv = check_key(key, e)) != 0)
        return rv;
    if (duration_ms <= 0)
        return im_errf(e, IM_EINVAL, "etcd watch: duration must be positive");
    create = range_req(key, flags & ETCD_PREFIX, 0, 0);
    if (create != NULL && start_revision > 0 &&
        set_int(create, "start_revision", start_revision) != 0) {
        json_decref(create);
        create = NULL;
    }
    req = create ? json_object() : NULL;
    if (req == NULL ||
        json_object_set_new(req, "create_request", create) != 0) {
        json_decref(req);
        return im_errf(e, IM_ENOMEM, "etcd watch: out of memory");
    }
    body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (body == NULL)
        return im_errf(e, IM_ENOMEM, "etcd watch: out of memory");
    if ((h = handle_get(c)) == NULL) {
        free(body);
        return im_errf(e, IM_ENOMEM, "etcd watch: cannot create a curl handle");
    }
    hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    rv = IM_EUNREACH;
    for (size_t i = 0; i < c->endpoints_count; i++) {
        size_t idx = (start + i) % c->endpoints_count;
        const char *ep = c->endpoints[idx];
        uint64_t now = clock_mono_ms();
        struct watch w = {.fn = fn, .arg = arg, .stop = stop, .e = e, .ep = ep};
        CURLcode cc;
        long status = 0;

        if (now >= deadline)
            break;
        snprintf(url, sizeof url, "%s/v3/watch", ep);
        errbuf[0] = '\0';
        curl_easy_reset(h);
        setup(c, h, url, body, hdrs, (long)(deadline - now), errbuf);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_watch);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &w);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_watch_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, &w);
        cc = curl_easy_perform(h);
        free(w.line.data);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (w.stopped_by_fn) {
            rv = 0;
            break;
        }
        if (w.code != 0) {
            rv = w.code;
            break;
        }
        if (cc == CURLE_ABORTED_BY_CALLBACK) {
            rv = im_errf(e, IM_ECLOSED, "etcd watch: stopped");
            break;
        }
        if (never_sent(cc)) {
            note(tried, sizeof tried, ep,
                 errbuf[0] ? errbuf : curl_easy_strerror(cc));
            continue;
        }
        if (cc == CURLE_OPERATION_TIMEDOUT && w.created) {
            atomic_store(&c->preferred, idx);
            rv = im_errf(e, IM_ETIMEDOUT, "etcd watch: %d ms passed",
                         duration_ms);
            break;
        }
        if (cc == CURLE_OPERATION_TIMEDOUT) {
            note(tried, sizeof tried, ep, "no answer");
            continue;
        }
        if (cc != CURLE_OK) {
            rv = im_errf(e, IM_EUNREACH, "etcd watch at %s: %s", ep,
                         errbuf[0] ? errbuf : curl_easy_strerror(cc));
            break;
        }
        /* The member ended the stream (stopping, or HTTP error): try the
         * next member for the rest of the duration. */
        note(tried, sizeof tried, ep,
             status != 200 ? "HTTP error" : "stream ended");
    }
    if (rv == IM_EUNREACH && tried[0])
        rv = im_errf(e, IM_EUNREACH, "etcd watch: no endpoint answered (%s)",
                     tried);
    else if (rv == IM_EUNREACH)
        rv = im_errf(e, IM_ETIMEDOUT, "etcd watch: %d ms passed", duration_ms);
    curl_slist_free_all(hdrs);
    handle_put(c, h);
    free(body);
    return rv;
}

/* ---- election ---- */

struct etcd_cmp
etcd_cmp_leader(const char *key, int64_t term)
{
    struct etcd_cmp x = {.key = key,
                         .target = ETCD_CMP_CREATE,
                         .result = ETCD_EQUAL,
                         .number = term};
    return x;
}

int
etcd_campaign(struct etcd *c, const char *key, const void *value,
              size_t value_size, int64_t lease, int64_t *term_out,
              struct etcd_kv *holder_out, struct im_err *e)
{
    struct etcd_cmp cmp = {.key = key,
                           .target = ETCD_CMP_CREATE,
                           .result = ETCD_EQUAL,
                           .number = 0};
    struct etcd_op put = {.kind = ETCD_OP_PUT,
                          .key = key,
                          .value = value,
                          .value_size = value_size,
                          .lease = lease};
    struct etcd_op get = {.kind = ETCD_OP_RANGE, .key = key};
    struct etcd_txn_result r;
    struct etcd_kv *holder;
    int rv;

    if (lease == 0)
        return im_errf(e, IM_EINVAL,
                       "etcd campaign: a leader key needs a lease");
    if ((rv = etcd_txn(c, &cmp, 1, &put, 1, &get, 1, &r, e)) != 0)
        return rv;
    if (r.succeeded) {
        *term_out = r.revision; /* the put created the key at this revision */
        etcd_txn_result_free(&r);
        return 0;
    }
    if (r.ranges_count != 1 || r.ranges[0].count != 1) {
        /* Deleted between the compare and the read: try again. */
        etcd_txn_result_free(&r);
        return im_errf(e, IM_EBUSY, "etcd campaign: leader key changed; retry");
    }
    holder = &r.ranges[0].kvs[0];
    if (holder->lease == lease) {
        /* Ours already: a campaign whose reply was lost. */
        *term_out = holder->create_revision;
        etcd_txn_result_free(&r);
        return 0;
    }
    rv = im_errf(e, IM_EBUSY, "etcd campaign: %.*s leads (term %lld)",
                 (int)(holder->value_size < 64 ? holder->value_size : 64),
                 (const char *)holder->value,
                 (long long)holder->create_revision);
    if (holder_out != NULL) {
        *holder_out = *holder;
        memset(holder, 0, sizeof *holder);
    }
    etcd_txn_result_free(&r);
    return rv;
}

int
etcd_leader(struct etcd *c, const char *key, struct etcd_kv *out,
            struct im_err *e)
{
    return etcd_get(c, key, out, NULL, e);
}

int
etcd_resign(struct etcd *c, const char *key, int64_t term, struct im_err *e)
{
    struct etcd_cmp cmp = etcd_cmp_leader(key, term);
    struct etcd_op del = {.kind = ETCD_OP_DELETE, .key = key};
    int rv = etcd_txn(c, &cmp, 1, &del, 1, NULL, 0, NULL, e);
    if (rv == IM_ESTALE)
        im_errf(e, IM_ESTALE, "etcd resign: term %lld is over already",
                (long long)term);
    return rv;
}

/* ---- open / close ---- */

int
etcd_endpoints_parse(const char *text, char out[][URL_MAX + 1],
                     size_t *count_out, struct im_err *e)
{
    char eps[ETCD_ENDPOINTS_MAX][URL_MAX + 1];
    const char *p = text;
    size_t count = 0;

    while (*p) {
        size_t n = strcspn(p, ",");
        char ep[URL_MAX + 2];
        while (n > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            n--;
        }
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n == 0)
            return im_errf(e, IM_EINVAL, "etcd endpoints '%s': an empty entry",
                           text);
        if (n > URL_MAX)
            return im_errf(e, IM_EINVAL,
                           "etcd endpoint '%.40s...' is longer "
                           "than %d characters",
                           p, URL_MAX);
        memcpy(ep, p, n);
        ep[n] = '\0';
        while (n > 0 && ep[n - 1] == '/')
            ep[--n] = '\0';
        if ((strncmp(ep, "http://", 7) != 0 || n <= 7) &&
            (strncmp(ep, "https://", 8) != 0 || n <= 8))
            return im_errf(e, IM_EINVAL,
                           "etcd endpoint '%s': use http://HOST:PORT "
                           "or https://HOST:PORT",
                           ep);
        if (strchr(ep + 8, '/') != NULL || strchr(ep, '?') != NULL)
            return im_errf(e, IM_EINVAL,
                           "etcd endpoint '%s': no path or query "
                           "(the client adds /v3/...)",
                           ep);
        if (count == ETCD_ENDPOINTS_MAX)
            return im_errf(e, IM_EINVAL, "etcd endpoints: more than %d",
                           ETCD_ENDPOINTS_MAX);
        memcpy(eps[count++], ep, n + 1);
        p += strcspn(p, ",");
        if (*p == ',')
            p++;
    }
    if (count == 0)
        return im_errf(e, IM_EINVAL, "etcd endpoints: none given");
    memcpy(out, eps, count * sizeof eps[0]);
    *count_out = count;
    return 0;
}

int
etcd_open(struct etcd *c, const char *endpoints, const struct etcd_tls *tls,
          struct im_err *e)
{
    int rv;

    memset(c, 0, sizeof *c);
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rv != 0)
        return im_errf(e, IM_EIO, "etcd: curl_global_init failed");
    if ((rv = etcd_endpoints_parse(endpoints, c->endpoints, &c->endpoints_count,
                                   e)) != 0)
        return rv;
    if (tls != NULL) {
        c->tls = *tls;
        if (c->tls.key[0] && !c->tls.cert[0])
            return im_errf(e, IM_EINVAL, "etcd TLS: a key without a cert");
        if (c->tls.cert[0] && !c->tls.key[0])
            return im_errf(e, IM_EINVAL, "etcd TLS: a cert without its key");
    }
    c->timeout_ms = ETCD_TIMEOUT_MS_DEFAULT;
    pthread_mutex_init(&c->mu, NULL);
    return 0;
}

void
etcd_set_timeout(struct etcd *c, int timeout_ms)
{
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : ETCD_TIMEOUT_MS_DEFAULT;
}

void
etcd_close(struct etcd *c)
{
    for (size_t i = 0; i < c->handles_count; i++)
        curl_easy_cleanup(c->handles[i]);
    c->handles_count = 0;
    pthread_mutex_destroy(&c->mu);
}
