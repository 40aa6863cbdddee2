/* httpapi: the native JSON API under /api/v1/incidents (see http.h and
 * docs/http-api.md). Token auth: "Authorization: Bearer TOKEN" of an
 * [integration NAME] with type = api; its role decides whether it may
 * write. Writes are the same events as imctl's, checked by the same
 * incident_body_check and fold, so the rules and messages are the CLI's;
 * they go through the group committer and are answered after the commit.
 *
 *   GET  /api/v1/incidents[?state=&priority=&service=&major=&all=&limit=&site=]
 *   POST /api/v1/incidents                  open
 *   GET  /api/v1/incidents/ID[?timeline=false]
 *   POST /api/v1/incidents/ID/acknowledge   (also /start)
 *   POST /api/v1/incidents/ID/notes         {"text": ...}
 *   POST /api/v1/incidents/ID/resolve       {"code": ..., "notes": ...} */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alerts.h"
#include "bounds.h"
#include "http.h"
#include "incident.h"
#include "incident_json.h"
#include "log.h"
#include "tsan.h"

#define PREFIX "/api/v1/incidents"

static const char *const allow_collection[] = {"Allow", "GET, POST", NULL};
static const char *const allow_item[] = {"Allow", "GET, HEAD", NULL};
static const char *const allow_action[] = {"Allow", "POST", NULL};

static void failh(struct http_server *h, nng_aio *aio, int status, int code,
                  const char *const *headers, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* {"error": ..., "code": "IM_E..."} */
static void
failh(struct http_server *h, nng_aio *aio, int status, int code,
      const char *const *headers, const char *fmt, ...)
{
    char msg[IM_ERRMSG_MAX];
    va_list ap;
    json_t *j = json_object();

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_object_set_new(j, "error", incident_json_str(msg));
    json_object_set_new(j, "code", json_string(im_errname(code)));
    http_reply_json(h, aio, HTTP_EP_API, status, j, headers);
}

#define fail(h, aio, status, code, ...)                                        \
    failh(h, aio, status, code, NULL, __VA_ARGS__)

/* ---- reads ---- */

static int
parse_bool(const char *v, int *out)
{
    if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0 || v[0] == '\0')
        *out = 1;
    else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
        *out = 0;
    else
        return IM_EINVAL;
    return 0;
}

struct list_acc {
    json_t *items;
    uint32_t limit, count;
    int failed;
};

static int
list_visit(void *arg, const Im__Incident *inc)
{
    struct list_acc *a = arg;
    json_t *j = incident_json(inc, 1);

    if (j == NULL || json_array_append_new(a->items, j) != 0)
        a->failed = 1;
    return ++a->count >= a->limit;
}

static void
api_list(struct http_server *h, nng_aio *aio, const char *uri)
{
    static const char *const known[] = {"state", "priority", "service", "major",
                                        "all",   "limit",    "site",    NULL};
    struct store_list_query q = {0};
    struct list_acc acc = {.limit = LIST_LIMIT_DEFAULT};
    char v[SERVICE_MAX + 2], service[SERVICE_MAX + 1], site[SITE_CODE_MAX + 1];
    struct im_err e = {0};
    uint64_t matched = 0;
    MDB_txn *txn;
    json_t *j;
    int r;

    if (!http_query_known(uri, known, v, sizeof v)) {
        fail(
            h, aio, 400, IM_EINVAL,
            "unknown query parameter '%.64s' (known: state, priority, service, "
            "major, all, limit, site)",
            v);
        return;
    }
    if ((r = http_query(uri, "state", v, sizeof v)) != 0) {
        Im__State st;
        if (r < 0 || incident_state_parse(v, &st) != 0) {
            fail(h, aio, 400, IM_EINVAL,
                 "state '%.64s' is not a state: use new, acknowledged, "
                 "in_progress, on_hold, resolved, closed or cancelled",
                 r < 0 ? "(malformed)" : v);
            return;
        }
        q.state = st;
    }
    if ((r = http_query(uri, "priority", v, sizeof v)) != 0) {
        if (v[0] == 'p')
            v[0] = 'P';
        if (r < 0 || incident_priority_parse(v, &q.priority) != 0) {
            fail(h, aio, 400, IM_EINVAL,
                 "priority '%.64s' is not a priority: use P1 to P5",
                 r < 0 ? "(malformed)" : v);
            return;
        }
    }
    if ((r = http_query(uri, "service", service, sizeof service)) != 0) {
        if (r < 0) {
            fail(h, aio, 400, IM_EINVAL,
                 "service is malformed or longer than %d bytes", SERVICE_MAX);
            return;
        }
        q.service = service;
    }
    if ((r = http_query(uri, "site", site, sizeof site)) != 0) {
        if (r < 0 || config_check_site_code(site) != 0) {
            fail(h, aio, 400, IM_EINVAL,
                 "site '%.16s' is not a site code (2 to 8 capital letters or "
                 "digits)",
                 r < 0 ? "(malformed)" : site);
            return;
        }
        q.site = site;
    }
    if ((r = http_query(uri, "major", v, sizeof v)) != 0 &&
        (r < 0 || parse_bool(v, &q.major_only) != 0)) {
        fail(h, aio, 400, IM_EINVAL, "major must be true or false");
        return;
    }
    if ((r = http_query(uri, "all", v, sizeof v)) != 0 &&
        (r < 0 || parse_bool(v, &q.all) != 0)) {
        fail(h, aio, 400, IM_EINVAL, "all must be true or false");
        return;
    }
    if ((r = http_query(uri, "limit", v, sizeof v)) != 0) {
        char *end;
        unsigned long n = strtoul(v, &end, 10);
        if (r < 0 || v[0] < '0' || v[0] > '9' || *end != '\0' || n < 1 ||
            n > LIST_LIMIT_MAX) {
            fail(h, aio, 400, IM_EINVAL,
                 "limit '%.32s' is not a number from 1 to 100000",
                 r < 0 ? "(malformed)" : v);
            return;
        }
        acc.limit = (uint32_t)n;
    }
    acc.items = json_array();
    if (store_read_begin(h->store, &txn, &e) == 0) {
        store_list(txn, h->store, &q, list_visit, &acc, &matched, &e);
        store_read_end(txn);
    }
    if (e.code != 0) {
        json_decref(acc.items);
        fail(h, aio, http_status_of(e.code), e.code, "%s", im_errmsg(&e));
        return;
    }
    if (acc.failed) {
        json_decref(acc.items);
        http_reply_json(h, aio, HTTP_EP_API, 500, NULL, NULL);
        return;
    }
    j = json_object();
    json_object_set_new(j, "items", acc.items);
    json_object_set_new(j, "matched", json_integer((json_int_t)matched));
    http_reply_json(h, aio, HTTP_EP_API, 200, j, NULL);
}

struct alerts_acc {
    struct store *s;
    MDB_txn *txn;
    json_t *arr;
};

static int
alert_visit(void *arg, const Im__AlertEntry *k)
{
    struct alerts_acc *a = arg;
    Im__AlertEntry *p = NULL;
    struct im_err e = {0};
    uint64_t pending = 0;
    json_t *j = json_object();

    if (alerts_pending_get(a->txn, a->s, k->integration, k->key, &p, &e) == 0) {
        if (strcmp(p->incident, k->incident) == 0)
            pending = p->pending;
        im__alert_entry__free_unpacked(p, NULL);
    }
    json_object_set_new(j, "integration", incident_json_str(k->integration));
    json_object_set_new(j, "key", incident_json_str(k->key));
    json_object_set_new(j, "firing", json_boolean(k->firing));
    json_object_set_new(j, "occurrences",
                        json_integer((json_int_t)(k->count + pending)));
    json_object_set_new(j, "occurrences_pending",
                        json_integer((json_int_t)pending));
    json_object_set_new(j, "first_at", incident_json_time(k->first_ms));
    json_object_set_new(j, "last_at", incident_json_time(k->last_ms));
    json_object_set_new(j, "summary", incident_json_str(k->summary));
    json_array_append_new(a->arr, j);
    return 0;
}

/* The incident with its timeline, as `imctl show --json` prints it, and
 * the alert keys that feed it. */
static json_t *
incident_full(struct store *s, MDB_txn *txn, const char *id, int timeline,
              struct im_err *e)
{
    struct incident *inc = malloc(sizeof *inc),
                    *folded = malloc(sizeof *folded);
    struct incident_pb pb;
    Im__Event **events = NULL;
    size_t n = 0;
    struct fold_outcome *outcomes = NULL;
    Im__TimelineEntry *entries = NULL, **ptrs = NULL;
    char(*kinds)[TIMELINE_KIND_MAX] = NULL;
    char **texts = NULL;
    json_t *j = NULL;
    struct alerts_acc acc = {.s = s, .txn = txn};

    if (inc == NULL || folded == NULL) {
        im_errf(e, IM_ENOMEM, "out of memory");
        goto out;
    }
    if (store_incident_get(txn, s, id, inc, e) != 0)
        goto out;
    incident_pb_fill(&pb, inc);
    if (timeline) {
        if (store_incident_events(txn, s, id, &events, &n, e) != 0)
            goto out;
        outcomes = calloc(n, sizeof *outcomes);
        entries = calloc(n, sizeof *entries);
        ptrs = calloc(n, sizeof *ptrs);
        kinds = calloc(n, sizeof *kinds);
        texts = calloc(n, sizeof *texts);
        if (!outcomes || !entries || !ptrs || !kinds || !texts) {
            im_errf(e, IM_ENOMEM, "out of memory");
            goto out;
        }
        incident_fold(folded, (const Im__Event **)events, n, outcomes);
        for (size_t i = 0; i < n; i++) {
            const Im__Event *ev = outcomes[i].event;
            if ((texts[i] = malloc(TIMELINE_TEXT_MAX)) == NULL) {
                im_errf(e, IM_ENOMEM, "out of memory");
                goto out;
            }
            incident_event_describe(ev, kinds[i], texts[i], TIMELINE_TEXT_MAX);
            im__timeline_entry__init(&entries[i]);
            entries[i].at_ms = HLC_MS(ev->hlc);
            entries[i].site = ev->origin;
            entries[i].actor = ev->actor;
            entries[i].kind = kinds[i];
            entries[i].text = texts[i];
            entries[i].refused = outcomes[i].code != 0;
            entries[i].refused_reason =
                outcomes[i].code ? outcomes[i].reason : "";
            entries[i].seq = ev->seq;
            entries[i].hlc = ev->hlc;
            ptrs[i] = &entries[i];
        }
        pb.msg.n_timeline = n;
        pb.msg.timeline = ptrs;
    }
    if ((j = incident_json(&pb.msg, 0)) == NULL) {
        im_errf(e, IM_ENOMEM, "out of memory");
        goto out;
    }
    acc.arr = json_array();
    if (alerts_of_incident(txn, s, id, alert_visit, &acc, e) != 0) {
        json_decref(acc.arr);
        json_decref(j);
        j = NULL;
        goto out;
    }
    json_object_set_new(j, "alerts", acc.arr);
out:
    if (texts != NULL)
        for (size_t i = 0; i < n; i++)
            free(texts[i]);
    free(texts);
    free(kinds);
    free(ptrs);
    free(entries);
    free(outcomes);
    store_events_free(events, n);
    free(folded);
    free(inc);
    return j;
}

static void
api_get(struct http_server *h, nng_aio *aio, const char *uri, const char *id)
{
    static const char *const known[] = {"timeline", NULL};
    char v[16];
    struct im_err e = {0};
    MDB_txn *txn;
    json_t *j = NULL;
    int timeline = 1, r;

    if (!http_query_known(uri, known, v, sizeof v)) {
        fail(h, aio, 400, IM_EINVAL,
             "unknown query parameter '%.64s' (known: timeline)", v);
        return;
    }
    if ((r = http_query(uri, "timeline", v, sizeof v)) != 0 &&
        (r < 0 || parse_bool(v, &timeline) != 0)) {
        fail(h, aio, 400, IM_EINVAL, "timeline must be true or false");
        return;
    }
    if (store_read_begin(h->store, &txn, &e) == 0) {
        j = incident_full(h->store, txn, id, timeline, &e);
        store_read_end(txn);
    }
    if (j == NULL) {
        fail(h, aio, http_status_of(e.code), e.code, "%s", im_errmsg(&e));
        return;
    }
    http_reply_json(h, aio, HTTP_EP_API, 200, j, NULL);
}

/* ---- writes ---- */

struct api_write {
    struct http_server *h;
    nng_aio *aio;
    json_t *doc; /* strings of the body point into it */
    char id[INCIDENT_ID_MAX + 1];
    int opening;
    Im__Body body;
    Im__Opened opened;
    Im__Transition tr;
    Im__Note note;
    char category[CATEGORY_MAX + 1], subcategory[CATEGORY_MAX + 1];
    struct commit_req creq;
    struct commit_op op;
};

static void
write_done(struct commit_req *r)
{
    struct api_write *w = r->arg;
    Im__Result *res = NULL;
    char location[sizeof PREFIX + INCIDENT_ID_MAX + 2];
    const char *headers[3] = {NULL};

    TSAN_ACQUIRE(w);
    if (w->op.result != NULL)
        res = im__result__unpack(NULL, w->op.result_size, w->op.result);
    if (res == NULL) {
        fail(w->h, w->aio, w->op.code ? http_status_of(w->op.code) : 500,
             w->op.code ? w->op.code : IM_ENOMEM, "%s",
             w->op.code ? im_strerror(w->op.code) : "out of memory");
    } else if (res->code != 0) {
        fail(w->h, w->aio, http_status_of(res->code), res->code, "%s",
             res->error);
    } else if (res->incident == NULL) {
        fail(w->h, w->aio, 500, IM_EPROTO,
             "write answered without the incident");
    } else {
        if (w->opening) {
            snprintf(location, sizeof location, PREFIX "/%s",
                     res->incident->id);
            headers[0] = "Location";
            headers[1] = location;
        }
        http_reply_json(w->h, w->aio, HTTP_EP_API, w->opening ? 201 : 200,
                        incident_json(res->incident, 0), headers);
    }
    if (res != NULL)
        im__result__free_unpacked(res, NULL);
    free(w->op.result);
    json_decref(w->doc);
    free(w);
}

static void
write_submit(struct api_write *w, const struct cfg_integration *who)
{
    static const char *const retry[] = {"Retry-After", "1", NULL};
    int rv;

    w->op.incident = w->opening ? "" : w->id;
    w->op.body = &w->body;
    w->creq.actor = who->name;
    w->creq.ops = &w->op;
    w->creq.ops_count = 1;
    w->creq.done = write_done;
    w->creq.arg = w;
    TSAN_RELEASE(w);
    if ((rv = commit_submit(w->h->commit, &w->creq)) == 0)
        return;
    TSAN_ACQUIRE(w);
    if (rv == IM_EBUSY) {
        failh(w->h, w->aio, 429, IM_EBUSY, retry,
              "the node's write queue is full; retry shortly");
    } else {
        fail(w->h, w->aio, 503, rv, "%s", "the node is shutting down; retry");
    }
    json_decref(w->doc);
    free(w);
}

/* Reads the body's members named in `fields`: each a string (or, for
 * "major", a boolean). Unknown members are refused: a typo must not be
 * silently ignored. Returns 0 or answers 4xx and returns -1. */
static int
body_fields(struct api_write *w, nng_http_req *req, const char *const *fields,
            const char **values, int *major)
{
    void *data;
    size_t size;
    json_error_t jerr;
    const char *k;
    json_t *v;

    nng_http_req_get_data(req, &data, &size);
    if (size == 0) {
        w->doc = json_object();
        return 0;
    }
    if (!http_is_json(req)) {
        const char *ct = nng_http_req_get_header(req, "Content-Type");
        fail(w->h, w->aio, 415, IM_EINVAL,
             "Content-Type must be application/json, not %.64s",
             ct ? ct : "(none)");
        return -1;
    }
    if (size > HTTP_BODY_MAX) {
        http_reply_error(w->h, w->aio, HTTP_EP_API, 413, "IM_ETOOBIG",
                         "the body of %zu bytes exceeds the limit of %d bytes",
                         size, HTTP_BODY_MAX);
        return -1;
    }
    w->doc = json_loadb(data, size, 0, &jerr);
    if (w->doc == NULL) {
        http_reply_error(w->h, w->aio, HTTP_EP_API, 400, "IM_EINVAL",
                         "JSON parse error at line %d, column %d: %s",
                         jerr.line, jerr.column, jerr.text);
        return -1;
    }
    if (!json_is_object(w->doc)) {
        fail(w->h, w->aio, 400, IM_EINVAL, "the body must be a JSON object");
        return -1;
    }
    json_object_foreach(w->doc, k, v)
    {
        int i, found = 0;
        for (i = 0; fields[i] != NULL; i++)
            if (strcmp(fields[i], k) == 0) {
                found = 1;
                break;
            }
        if (!found) {
            fail(w->h, w->aio, 400, IM_EINVAL, "unknown field '%.64s'", k);
            return -1;
        }
        if (strcmp(k, "major") == 0) {
            if (!json_is_boolean(v)) {
                fail(w->h, w->aio, 400, IM_EINVAL, "'%s' must be true or false",
                     k);
                return -1;
            }
            *major = json_is_true(v);
        } else if (json_is_null(v)) {
            values[i] = NULL;
        } else if (!json_is_string(v)) {
            fail(w->h, w->aio, 400, IM_EINVAL, "'%s' must be a string", k);
            return -1;
        } else {
            values[i] = json_string_value(v);
        }
    }
    return 0;
}

static int
level_field(struct api_write *w, const char *name, const char *v,
            Im__Level *out)
{
    if (v == NULL) {
        fail(w->h, w->aio, 400, IM_EINVAL,
             "'%s' is required: high, medium or low", name);
        return -1;
    }
    if (incident_level_parse(v, out) != 0) {
        fail(w->h, w->aio, 400, IM_EINVAL, "'%s' must be high, medium or low",
             name);
        return -1;
    }
    return 0;
}

static void
api_open(struct api_write *w, nng_http_req *req,
         const struct cfg_integration *who)
{
    static const char *const fields[] = {
        "title",    "service",     "impact", "urgency", "description",
        "category", "subcategory", "major",  NULL};
    const char *v[9] = {NULL};
    int major = 0;

    if (body_fields(w, req, fields, v, &major) != 0)
        goto refused;
    im__opened__init(&w->opened);
    w->opened.title = (char *)(v[0] ? v[0] : "");
    w->opened.service = (char *)(v[1] ? v[1] : "");
    if (level_field(w, "impact", v[2], &w->opened.impact) != 0 ||
        level_field(w, "urgency", v[3], &w->opened.urgency) != 0)
        goto refused;
    w->opened.description = (char *)(v[4] ? v[4] : "");
    /* "app/payments" as imctl takes it, or category and subcategory. */
    if (v[5] != NULL) {
        const char *slash = strchr(v[5], '/');
        size_t n = slash ? (size_t)(slash - v[5]) : strlen(v[5]);
        if (n > CATEGORY_MAX || (slash && strlen(slash + 1) > CATEGORY_MAX) ||
            (slash && v[6] != NULL)) {
            fail(w->h, w->aio, 400, IM_EINVAL,
                 "category '%.80s' is not CATEGORY[/SUBCATEGORY] of at most 64 "
                 "bytes each (or give subcategory separately)",
                 v[5]);
            goto refused;
        }
        memcpy(w->category, v[5], n);
        w->category[n] = '\0';
        snprintf(w->subcategory, sizeof w->subcategory, "%s",
                 slash  ? slash + 1
                 : v[6] ? v[6]
                        : "");
        if (!slash && v[6] != NULL && strlen(v[6]) > CATEGORY_MAX) {
            fail(w->h, w->aio, 400, IM_EINVAL,
                 "subcategory is longer than %d bytes", CATEGORY_MAX);
            goto refused;
        }
        w->opened.category = w->category;
        w->opened.subcategory = w->subcategory;
    } else {
        w->opened.category = "";
        w->opened.subcategory = (char *)(v[6] ? v[6] : "");
    }
    w->opened.major = major;
    w->body.kind_case = IM__BODY__KIND_OPENED;
    w->body.opened = &w->opened;
    w->opening = 1;
    write_submit(w, who);
    return;
refused:
    json_decref(w->doc);
    free(w);
}

static void
api_action(struct api_write *w, nng_http_req *req,
           const struct cfg_integration *who, const char *action)
{
    static const char *const none[] = {NULL};
    static const char *const note_fields[] = {"text", NULL};
    static const char *const resolve_fields[] = {"code", "notes", NULL};
    const char *v[3] = {NULL};
    int major = 0;

    im__transition__init(&w->tr);
    if (strcmp(action, "acknowledge") == 0 || strcmp(action, "start") == 0) {
        if (body_fields(w, req, none, v, &major) != 0)
            goto refused;
        w->tr.to = action[0] == 'a' ? IM__STATE__STATE_ACKNOWLEDGED
                                    : IM__STATE__STATE_IN_PROGRESS;
        w->body.kind_case = IM__BODY__KIND_TRANSITION;
        w->body.transition = &w->tr;
    } else if (strcmp(action, "notes") == 0) {
        if (body_fields(w, req, note_fields, v, &major) != 0)
            goto refused;
        im__note__init(&w->note);
        w->note.text = (char *)(v[0] ? v[0] : "");
        w->body.kind_case = IM__BODY__KIND_NOTE;
        w->body.note = &w->note;
    } else if (strcmp(action, "resolve") == 0) {
        if (body_fields(w, req, resolve_fields, v, &major) != 0)
            goto refused;
        w->tr.to = IM__STATE__STATE_RESOLVED;
        w->tr.code = (char *)(v[0] ? v[0] : "");
        w->tr.notes = (char *)(v[1] ? v[1] : "");
        w->body.kind_case = IM__BODY__KIND_TRANSITION;
        w->body.transition = &w->tr;
    } else {
        fail(w->h, w->aio, 404, IM_ENOTFOUND,
             "no action '%.64s' (known: acknowledge, start, notes, resolve)",
             action);
        goto refused;
    }
    write_submit(w, who);
    return;
refused:
    json_decref(w->doc);
    free(w);
}

void
httpapi_handle(struct http_server *h, nng_aio *aio, nng_http_req *req)
{
    static const char *const challenge[] = {
        "WWW-Authenticate", "Bearer realm=\"incident-mesh\"", NULL};
    const char *uri = nng_http_req_get_uri(req);
    const char *method = nng_http_req_get_method(req);
    const struct cfg_integration *who;
    char path[HTTP_URI_MAX + 1], id[INCIDENT_ID_MAX + 1], *rest, *slash;
    size_t path_size;
    struct api_write *w;

    if (strlen(uri) > HTTP_URI_MAX) {
        fail(h, aio, 414, IM_ETOOBIG, "the URI is longer than %d bytes",
             HTTP_URI_MAX);
        return;
    }
    if ((who = http_bearer(h, req, INTEG_API)) == NULL) {
        failh(h, aio, 401, IM_EUNKNOWNKEY, challenge, "%s",
              nng_http_req_get_header(req, "Authorization")
                  ? "the bearer token matches no api integration of this node"
                  : "no 'Authorization: Bearer TOKEN' header");
        return;
    }
    path_size = strcspn(uri, "?");
    memcpy(path, uri, path_size);
    path[path_size] = '\0';
    rest = path + strlen(PREFIX);
    while (*rest == '/')
        rest++;
    /* Collection. */
    if (*rest == '\0') {
        if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) {
            api_list(h, aio, uri);
            return;
        }
        if (strcmp(method, "POST") != 0) {
            failh(h, aio, 405, IM_EINVAL, allow_collection,
                  "%.16s is not allowed here: use GET or POST", method);
            return;
        }
    }
    slash = strchr(rest, '/');
    if ((slash ? (size_t)(slash - rest) : strlen(rest)) > INCIDENT_ID_MAX) {
        fail(h, aio, 404, IM_ENOTFOUND, "no incident %.40s...", rest);
        return;
    }
    snprintf(id, sizeof id, "%.*s",
             (int)(slash ? slash - rest : (long)strlen(rest)), rest);
    if (*rest != '\0' && slash == NULL) {
        if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
            failh(h, aio, 405, IM_EINVAL, allow_item,
                  "use GET on an incident; POST to its actions");
            return;
        }
        api_get(h, aio, uri, id);
        return;
    }
    if (*rest != '\0' && strcmp(method, "POST") != 0) {
        failh(h, aio, 405, IM_EINVAL, allow_action, "use POST for an action");
        return;
    }
    if (who->role == OP_ROLE_VIEWER) {
        fail(h, aio, 403, IM_EDENIED,
             "integration %s has role viewer: it may only read", who->name);
        return;
    }
    if ((w = calloc(1, sizeof *w)) == NULL) {
        fail(h, aio, 503, IM_ENOMEM, "%s", "out of memory");
        return;
    }
    w->h = h;
    w->aio = aio;
    im__body__init(&w->body);
    if (*rest == '\0') {
        api_open(w, req, who);
        return;
    }
    snprintf(w->id, sizeof w->id, "%s", id);
    if (strchr(slash + 1, '/') != NULL || slash[1] == '\0') {
        fail(h, aio, 404, IM_ENOTFOUND,
             "no such endpoint: %.200s (actions: acknowledge, start, notes, "
             "resolve)",
             path);
        free(w);
        return;
    }
    api_action(w, req, who, slash + 1);
}
