/* http: see http.h. */
#include "http.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alertmanager.h"
#include "bounds.h"
#include "clock.h"
#include "incident_json.h"
#include "intake.h"
#include "log.h"
#include "pagerduty.h"
#include "status.h"
#include "tsan.h"

/* How long http_close waits for requests in flight: their commits. */
#define HTTP_CLOSE_WAIT_MS 30000

const char *
http_endpoint_name(enum http_endpoint ep)
{
    switch (ep) {
    case HTTP_EP_PAGERDUTY: return "pagerduty";
    case HTTP_EP_ALERTMANAGER: return "alertmanager";
    case HTTP_EP_API: return "api";
    case HTTP_EP_METRICS: return "metrics";
    case HTTP_EP_STATUS: return "status";
    case HTTP_EP_OTHER:
    case HTTP_EP_COUNT_: break;
    }
    return "other";
}

/* ---- replies ---- */

void
http_reply(struct http_server *h, nng_aio *aio, enum http_endpoint ep,
           int status, const char *content_type, const void *body, size_t size,
           const char *const *headers)
{
    nng_http_res *res;
    int rv;

    if ((rv = nng_http_res_alloc(&res)) == 0) {
        if ((rv = nng_http_res_set_status(res, (uint16_t)status)) == 0 &&
            content_type != NULL)
            rv = nng_http_res_set_header(res, "Content-Type", content_type);
        for (size_t i = 0; rv == 0 && headers != NULL && headers[i] != NULL;
             i += 2)
            rv = nng_http_res_set_header(res, headers[i], headers[i + 1]);
        /* Always: it also sets Content-Length, which a body-less answer
         * needs too (a 302), or the client reads until the close. */
        if (rv == 0)
            rv = size > 0 ? nng_http_res_copy_data(res, body, size)
                          : nng_http_res_set_data(res, NULL, 0);
        if (rv != 0)
            nng_http_res_free(res);
    }
    if (status >= 0 && status < HTTP_STATUS_SLOTS && ep < HTTP_EP_COUNT_)
        atomic_fetch_add(&h->counts[ep][status], 1);
    atomic_fetch_sub(&h->inflight, 1);
    if (rv != 0) {
        /* Cannot even answer: NNG closes the connection. */
        nng_aio_finish(aio, rv);
        return;
    }
    nng_aio_set_output(aio, 0, res);
    nng_aio_finish(aio, 0);
}

/* jansson refuses invalid UTF-8; messages that quote input go through
 * incident_json_str, which replaces such bytes. */
static json_t *
jmsg(const char *s)
{
    return incident_json_str(s);
}

void
http_reply_json(struct http_server *h, nng_aio *aio, enum http_endpoint ep,
                int status, json_t *j, const char *const *headers)
{
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

    json_decref(j);
    if (text == NULL) {
        static const char oom[] =
            "{\"error\":\"out of memory\",\"code\":\"IM_ENOMEM\"}";
        http_reply(h, aio, ep, 500, "application/json", oom, sizeof oom - 1,
                   NULL);
        return;
    }
    http_reply(h, aio, ep, status, "application/json", text, strlen(text),
               headers);
    free(text);
}

void
http_reply_error(struct http_server *h, nng_aio *aio, enum http_endpoint ep,
                 int status, const char *code_name, const char *fmt, ...)
{
    char msg[IM_ERRMSG_MAX];
    va_list ap;
    json_t *j = json_object();

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_object_set_new(j, "error", jmsg(msg));
    json_object_set_new(j, "code", json_string(code_name));
    http_reply_json(h, aio, ep, status, j, NULL);
}

int
http_status_of(int code)
{
    switch (code) {
    case 0: return 200;
    case IM_EINVAL:
    case IM_ETOOBIG:
    case IM_EPROTO: return 400;
    case IM_EDENIED: return 403;
    case IM_ENOTFOUND: return 404;
    case IM_ESTATE:
    case IM_ESTALE:
    case IM_EEXIST: return 409;
    case IM_EBUSY: return 429;
    /* IM_ENOLEASE: this site may own the incident again once a coordinator
     * renews its lease; a sender's retry is the right answer. */
    default: return 503; /* store full, disk full, I/O, closing: retry */
    }
}

/* ---- request helpers ---- */

const struct cfg_integration *
http_bearer(const struct http_server *h, nng_http_req *req,
            enum integ_type type)
{
    const char *v = nng_http_req_get_header(req, "Authorization");

    if (v == NULL || strncasecmp(v, "Bearer ", 7) != 0)
        return NULL;
    v += 7;
    while (*v == ' ')
        v++;
    return config_integration_by_key(h->cfg, type, v);
}

int
http_is_json(nng_http_req *req)
{
    const char *v = nng_http_req_get_header(req, "Content-Type");
    static const char want[] = "application/json";

    if (v == NULL || strncasecmp(v, want, sizeof want - 1) != 0)
        return 0;
    v += sizeof want - 1;
    return *v == '\0' || *v == ';' || *v == ' ';
}

static int
hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes n bytes of a query component (%XX, '+' as space). */
static int
decode(const char *s, size_t n, char *out, size_t out_size)
{
    size_t used = 0;

    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= n)
                return -1;
            hi = hexval(s[i + 1]);
            lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = hi * 16 + lo;
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (c == 0 || used + 1 >= out_size)
            return -1;
        out[used++] = (char)c;
    }
    out[used] = '\0';
    return 0;
}

int
http_query(const char *uri, const char *name, char *out, size_t out_size)
{
    const char *q = strchr(uri, '?');
    size_t name_size = strlen(name);

    if (q == NULL)
        return 0;
    for (q++; *q;) {
        size_t n = strcspn(q, "&");
        const char *eq = memchr(q, '=', n);
        size_t key_size = eq ? (size_t)(eq - q) : n;
        if (key_size == name_size &&
            strncmp(q, name, n < name_size ? n : name_size) == 0) {
            if (eq == NULL) {
                if (out_size == 0)
                    return -1;
                out[0] = '\0';
                return 1;
            }
            return decode(eq + 1, n - key_size - 1, out, out_size) == 0 ? 1
                                                                        : -1;
        }
        q += n;
        if (*q == '&')
            q++;
    }
    return 0;
}

int
http_query_known(const char *uri, const char *const *known, char *scratch,
                 size_t scratch_size)
{
    const char *q = strchr(uri, '?');

    if (q == NULL)
        return 1;
    for (q++; *q;) {
        size_t n = strcspn(q, "&"), key_size = strcspn(q, "=&");
        int found = 0;
        for (size_t i = 0; known[i] != NULL; i++)
            found |= strlen(known[i]) == key_size &&
                     strncmp(known[i], q, key_size) == 0;
        if (!found && key_size > 0) {
            if (decode(q, key_size, scratch, scratch_size) != 0)
                snprintf(scratch, scratch_size, "(malformed)");
            return 0;
        }
        q += n;
        if (*q == '&')
            q++;
    }
    return 1;
}

/* ---- intake ---- */

struct intake_http {
    struct http_server *h;
    nng_aio *aio;
    enum http_endpoint ep;
    struct intake_req req;
    struct intake_job job;
    struct commit_req creq;
    struct commit_op op;
};

static void
pd_refuse(struct http_server *h, nng_aio *aio, int status, const char *st,
          const char *message, const struct intake_errors *errs,
          const char *const *headers)
{
    json_t *j = json_object(), *arr = json_array();

    json_object_set_new(j, "status", json_string(st));
    json_object_set_new(j, "message", json_string(message));
    for (size_t i = 0; errs != NULL && i < errs->count; i++)
        json_array_append_new(arr, jmsg(errs->msg[i]));
    if (errs != NULL && errs->dropped > 0) {
        char more[64];
        snprintf(more, sizeof more, "... and %zu more problems", errs->dropped);
        json_array_append_new(arr, json_string(more));
    }
    json_object_set_new(j, "errors", arr);
    http_reply_json(h, aio, HTTP_EP_PAGERDUTY, status, j, headers);
}

/* Alertmanager does not read bodies; the same shape serves people. */
static void
am_refuse(struct http_server *h, nng_aio *aio, int status, const char *message,
          const struct intake_errors *errs, const char *const *headers)
{
    json_t *j = json_object(), *arr = json_array();

    json_object_set_new(j, "status", json_string("error"));
    json_object_set_new(j, "message", json_string(message));
    for (size_t i = 0; errs != NULL && i < errs->count; i++)
        json_array_append_new(arr, jmsg(errs->msg[i]));
    json_object_set_new(j, "errors", arr);
    http_reply_json(h, aio, HTTP_EP_ALERTMANAGER, status, j, headers);
}

static void
intake_refuse(struct intake_http *x, int status, const char *st,
              const char *message, const struct intake_errors *errs,
              const char *const *headers)
{
    if (x->ep == HTTP_EP_PAGERDUTY)
        pd_refuse(x->h, x->aio, status, st, message, errs, headers);
    else
        am_refuse(x->h, x->aio, status, message, errs, headers);
}

static void
intake_free(struct intake_http *x)
{
    intake_req_free(&x->req);
    free(x);
}

/* Runs on the committer's thread once the transaction committed or
 * failed: answers and frees. */
static void
intake_done(struct commit_req *r)
{
    struct intake_http *x = r->arg;
    const struct intake_result *res = &x->job.result;
    static const char *const retry[] = {"Retry-After", "1", NULL};
    const char *headers[8];
    int n = 0;

    TSAN_ACQUIRE(x);
    if (x->op.code != 0) {
        struct intake_errors errs;
        intake_errors_init(&errs);
        intake_error(&errs, "the store refused the write (%s): retry",
                     im_strerror(x->op.code));
        log_warn("http: %s intake failed to commit (%s)",
                 http_endpoint_name(x->ep), im_errname(x->op.code));
        intake_refuse(x, 503, "error", "the event could not be stored; retry",
                      &errs, retry);
        free(x->op.result);
        intake_free(x);
        return;
    }
    free(x->op.result);
    if (res->refused) {
        struct intake_errors errs;
        intake_errors_init(&errs);
        intake_error(&errs, "%s", res->detail);
        intake_refuse(x, 400, "invalid event", "Event object is invalid", &errs,
                      NULL);
        intake_free(x);
        return;
    }
    headers[n++] = "X-Intake-Outcome";
    headers[n++] = intake_outcome_name(res->outcome);
    if (res->incident[0] != '\0') {
        headers[n++] = "X-Incident";
        headers[n++] = res->incident;
    }
    headers[n] = NULL;
    if (x->ep == HTTP_EP_PAGERDUTY) {
        json_t *j = json_object();
        json_object_set_new(j, "status", json_string("success"));
        json_object_set_new(j, "message", json_string("Event processed"));
        json_object_set_new(j, "dedup_key", jmsg(x->req.key));
        http_reply_json(x->h, x->aio, x->ep, 202, j, headers);
    } else {
        json_t *j = json_object();
        json_object_set_new(j, "status", json_string("success"));
        json_object_set_new(j, "message",
                            json_string("Notification processed"));
        json_object_set_new(j, "outcome",
                            json_string(intake_outcome_name(res->outcome)));
        json_object_set_new(j, "incident",
                            res->incident[0] ? json_string(res->incident)
                                             : json_null());
        http_reply_json(x->h, x->aio, x->ep, 200, j, headers);
    }
    intake_free(x);
}

static void
intake_submit(struct intake_http *x)
{
    static const char *const retry[] = {"Retry-After", "1", NULL};
    int rv;

    x->job.req = &x->req;
    x->job.interval_ms = x->h->cfg->http.summary_interval_ms;
    x->op.step = intake_step;
    x->op.step_arg = &x->job;
    x->creq.actor = x->req.integ->name;
    x->creq.ops = &x->op;
    x->creq.ops_count = 1;
    x->creq.done = intake_done;
    x->creq.arg = x;
    TSAN_RELEASE(x);
    rv = commit_submit(x->h->commit, &x->creq);
    if (rv == 0)
        return;
    TSAN_ACQUIRE(x);
    if (rv == IM_EBUSY)
        intake_refuse(x, 429, "throttled",
                      "the node's write queue is full; retry shortly", NULL,
                      retry);
    else
        intake_refuse(x, 503, "unavailable", "the node is shutting down; retry",
                      NULL, retry);
    intake_free(x);
}

/* Checks common to both intake endpoints; 0 if the request may go on
 * (x->req is then to be parsed). */
static int
intake_precheck(struct intake_http *x, nng_http_req *req)
{
    static const char *const allow[] = {"Allow", "POST", NULL};
    static const char *const close_conn[] = {"Connection", "close", NULL};
    struct intake_errors errs;
    const char *method = nng_http_req_get_method(req);

    intake_errors_init(&errs);
    if (strcmp(method, "POST") != 0) {
        intake_error(&errs, "%s is not allowed here: send the event with POST",
                     method);
        intake_refuse(x, 405, "method not allowed", "Use POST", &errs, allow);
        return -1;
    }
    if (nng_http_req_get_header(req, "Transfer-Encoding") != NULL) {
        /* NNG reads bodies by Content-Length only; the rest of a chunked
         * body would be read as the next request. */
        intake_error(&errs, "chunked bodies are not accepted: send a "
                            "Content-Length");
        intake_refuse(x, 411, "length required", "Content-Length required",
                      &errs, close_conn);
        return -1;
    }
    if (!http_is_json(req)) {
        const char *ct = nng_http_req_get_header(req, "Content-Type");
        intake_error(&errs, "Content-Type must be application/json, not %.64s",
                     ct ? ct : "(none)");
        intake_refuse(x, 415, "unsupported media type",
                      "Event object format is unrecognized", &errs, NULL);
        return -1;
    }
    return 0;
}

static struct intake_http *
intake_new(struct http_server *h, nng_aio *aio, enum http_endpoint ep)
{
    struct intake_http *x = calloc(1, sizeof *x);
    if (x == NULL) {
        http_reply(h, aio, ep, 503, NULL, NULL, 0, NULL);
        return NULL;
    }
    x->h = h;
    x->aio = aio;
    x->ep = ep;
    return x;
}

/* Common start of every handler: the server, the request, and a place
 * among those in flight (or a 429 answer, in which case NULL). */
static struct http_server *
begin(nng_aio *aio, enum http_endpoint ep, nng_http_req **req)
{
    nng_http_handler *hd = nng_aio_get_input(aio, 1);
    struct http_server *h = nng_http_handler_get_data(hd);

    *req = nng_aio_get_input(aio, 0);
    if (atomic_fetch_add(&h->inflight, 1) >= HTTP_INFLIGHT_MAX) {
        http_reply_error(h, aio, ep, 429, "IM_EBUSY",
                         "the node is handling %d requests; retry shortly",
                         HTTP_INFLIGHT_MAX);
        return NULL;
    }
    return h;
}

static void
on_pagerduty(nng_aio *aio)
{
    nng_http_req *req;
    struct http_server *h = begin(aio, HTTP_EP_PAGERDUTY, &req);
    struct intake_http *x;
    struct intake_errors errs;
    void *body;
    size_t size;
    int rv;

    if (h == NULL || (x = intake_new(h, aio, HTTP_EP_PAGERDUTY)) == NULL)
        return;
    if (intake_precheck(x, req) != 0) {
        intake_free(x);
        return;
    }
    nng_http_req_get_data(req, &body, &size);
    rv = pd_parse(h->cfg, body, size, &x->req, &errs);
    if (rv != 0) {
        if (errs.status == 413)
            intake_refuse(x, 413, "request too large",
                          "Event object is too large", &errs, NULL);
        else if (errs.unparsable)
            intake_refuse(x, 400, "Unrecognized object",
                          "Event object format is unrecognized", &errs, NULL);
        else if (rv == IM_ENOMEM)
            intake_refuse(x, 503, "error", "out of memory; retry", &errs, NULL);
        else
            intake_refuse(x, 400, "invalid event", "Event object is invalid",
                          &errs, NULL);
        intake_free(x);
        return;
    }
    intake_submit(x);
}

static void
on_alertmanager(nng_aio *aio)
{
    static const char *const challenge[] = {
        "WWW-Authenticate", "Bearer realm=\"incident-mesh\"", NULL};
    nng_http_req *req;
    struct http_server *h = begin(aio, HTTP_EP_ALERTMANAGER, &req);
    const struct cfg_integration *integ;
    struct intake_http *x;
    struct intake_errors errs;
    void *body;
    size_t size;
    int rv;

    if (h == NULL || (x = intake_new(h, aio, HTTP_EP_ALERTMANAGER)) == NULL)
        return;
    if (intake_precheck(x, req) != 0) {
        intake_free(x);
        return;
    }
    integ = http_bearer(h, req, INTEG_ALERTMANAGER);
    if (integ == NULL) {
        intake_errors_init(&errs);
        intake_error(&errs, nng_http_req_get_header(req, "Authorization")
                                ? "the bearer token matches no alertmanager "
                                  "integration of this node"
                                : "no 'Authorization: Bearer TOKEN' header");
        am_refuse(h, aio, 401, "unauthorized", &errs, challenge);
        intake_free(x);
        return;
    }
    nng_http_req_get_data(req, &body, &size);
    rv = am_parse(integ, body, size, &x->req, &errs);
    if (rv != 0) {
        am_refuse(h, aio,
                  errs.status == 413 ? 413
                  : rv == IM_ENOMEM  ? 503
                                     : 400,
                  errs.status == 413 ? "notification too large"
                                     : "invalid notification",
                  &errs, NULL);
        intake_free(x);
        return;
    }
    intake_submit(x);
}

/* ---- reads ---- */

static void
on_api(nng_aio *aio)
{
    nng_http_req *req;
    struct http_server *h = begin(aio, HTTP_EP_API, &req);

    if (h != NULL)
        httpapi_handle(h, aio, req);
}

static int
get_only(struct http_server *h, nng_aio *aio, enum http_endpoint ep,
         nng_http_req *req)
{
    static const char *const allow[] = {"Allow", "GET, HEAD", NULL};
    const char *m = nng_http_req_get_method(req);
    json_t *j;

    if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)
        return 0;
    j = json_object();
    json_object_set_new(j, "error", json_string("use GET"));
    json_object_set_new(j, "code", json_string("IM_EINVAL"));
    http_reply_json(h, aio, ep, 405, j, allow);
    return -1;
}

static void
on_metrics(nng_aio *aio)
{
    nng_http_req *req;
    struct http_server *h = begin(aio, HTTP_EP_METRICS, &req);
    char *text;
    size_t size;
    int rv;

    if (h == NULL || get_only(h, aio, HTTP_EP_METRICS, req) != 0)
        return;
    if ((rv = metrics_render(h->metrics, &text, &size)) != 0) {
        http_reply_error(h, aio, HTTP_EP_METRICS, 500, im_errname(rv),
                         "metrics: %s", im_strerror(rv));
        return;
    }
    http_reply(h, aio, HTTP_EP_METRICS, 200, "text/plain; version=0.0.4", text,
               size, NULL);
    free(text);
}

static void
on_status(nng_aio *aio)
{
    static const char *const headers[] = {"Cache-Control", "no-cache",
                                          "Content-Security-Policy",
                                          "default-src 'none'; style-src "
                                          "'unsafe-inline'",
                                          NULL};
    nng_http_req *req;
    struct http_server *h = begin(aio, HTTP_EP_STATUS, &req);
    struct im_err e = {0};
    char *html;
    size_t size;

    if (h == NULL || get_only(h, aio, HTTP_EP_STATUS, req) != 0)
        return;
    if (status_page(h->store, h->cfg, clock_wall_ms(), &html, &size, &e) != 0) {
        http_reply_error(h, aio, HTTP_EP_STATUS, 503, im_errname(e.code), "%s",
                         im_errmsg(&e));
        return;
    }
    http_reply(h, aio, HTTP_EP_STATUS, 200, "text/html; charset=utf-8", html,
               size, headers);
    free(html);
}

static void
on_other(nng_aio *aio)
{
    static const char *const to_status[] = {"Location", "/status", NULL};
    nng_http_req *req;
    struct http_server *h = begin(aio, HTTP_EP_OTHER, &req);
    const char *uri;

    if (h == NULL)
        return;
    uri = nng_http_req_get_uri(req);
    if ((strcmp(uri, "/") == 0 || strncmp(uri, "/?", 2) == 0) &&
        strcmp(nng_http_req_get_method(req), "GET") == 0) {
        http_reply(h, aio, HTTP_EP_OTHER, 302, NULL, NULL, 0, to_status);
        return;
    }
    http_reply_error(h, aio, HTTP_EP_OTHER, 404, "IM_ENOTFOUND",
                     "no such endpoint: %.200s (see docs/http-api.md: "
                     "/v2/enqueue, /api/v1/alertmanager, /api/v1/incidents, "
                     "/metrics, /status)",
                     uri);
}

/* ---- metrics ---- */

static void
collect(void *arg, struct metrics_out *o)
{
    struct http_server *h = arg;
    char status[8];

    metrics_family(o, "im_http_requests_total", "counter",
                   "HTTP requests answered, by endpoint and status.");
    for (int ep = 0; ep < HTTP_EP_COUNT_; ep++)
        for (int st = 0; st < HTTP_STATUS_SLOTS; st++) {
            uint64_t n = atomic_load(&h->counts[ep][st]);
            if (n == 0)
                continue;
            snprintf(status, sizeof status, "%d", st);
            metrics_sample(o, "im_http_requests_total", n, "endpoint",
                           http_endpoint_name((enum http_endpoint)ep), "status",
                           status, NULL);
        }
    metrics_family(o, "im_http_inflight", "gauge",
                   "HTTP requests being handled now.");
    metrics_sample(o, "im_http_inflight", (uint64_t)atomic_load(&h->inflight),
                   NULL);
}

/* ---- storm summaries: pending occurrences whose interval is over ---- */

static void flush_arm(struct http_server *h);

static void
flush_done(struct commit_req *r)
{
    struct http_server *h = r->arg;

    /* Once a minute at most: a full store fails every tick. */
    if (h->flush_op.code != 0 && clock_mono_ms() >= h->flush_warned_ms + 60000) {
        log_warn("http: summarising alert occurrences failed: %s",
                 im_strerror(h->flush_op.code));
        h->flush_warned_ms = clock_mono_ms();
    }
    free(h->flush_op.result);
    h->flush_op.result = NULL;
    atomic_store(&h->flush_busy, 0);
    /* More were due than one pass takes: go again at once. */
    if (h->flush_op.code == 0 && h->flush_job.more &&
        !atomic_load(&h->flush_stopping)) {
        atomic_store(&h->flush_busy, 1);
        if (commit_submit(h->commit, &h->flush_req) == 0)
            return;
        atomic_store(&h->flush_busy, 0);
    }
    flush_arm(h);
}

static void
flush_tick(void *arg)
{
    struct http_server *h = arg;

    TSAN_ACQUIRE(&h->flush_op);
    if (nng_aio_result(h->flush_aio) != 0 || atomic_load(&h->flush_stopping)) {
        /* For http_close, which reads h after nng_aio_stop returns. */
        TSAN_RELEASE(&h->flush_op);
        return;
    }
    h->flush_job.interval_ms = h->cfg->http.summary_interval_ms;
    h->flush_op.step = intake_flush_step;
    h->flush_op.step_arg = &h->flush_job;
    h->flush_req.actor = "intake";
    h->flush_req.ops = &h->flush_op;
    h->flush_req.ops_count = 1;
    h->flush_req.done = flush_done;
    h->flush_req.arg = h;
    atomic_store(&h->flush_busy, 1);
    if (commit_submit(h->commit, &h->flush_req) != 0) {
        atomic_store(&h->flush_busy, 0);
        flush_arm(h);
    }
    TSAN_RELEASE(&h->flush_op);
}

static void
flush_arm(struct http_server *h)
{
    if (!atomic_load(&h->flush_stopping)) {
        TSAN_RELEASE(&h->flush_op);
        nng_sleep_aio((nng_duration)h->flush_period_ms, h->flush_aio);
    }
}

/* ---- lifecycle ---- */

int
http_start(struct http_server *h, const struct config *cfg, struct store *s,
           struct committer *c, struct metrics *m, struct im_err *e)
{
    static const struct {
        const char *path;
        void (*cb)(nng_aio *);
        int tree;
        size_t body_max;
    } routes[HTTP_HANDLERS] = {
        {"/v2/enqueue", on_pagerduty, 0, HTTP_BODY_READ_MAX},
        {"/api/v1/alertmanager", on_alertmanager, 0, HTTP_BODY_READ_MAX},
        {"/api/v1/incidents", on_api, 1, HTTP_BODY_READ_MAX},
        {"/metrics", on_metrics, 0, 0},
        {"/status", on_status, 0, 0},
        {"/", on_other, 1, 0},
        {NULL, NULL, 0, 0},
    };
    int rv;

    memset(h, 0, sizeof *h);
    h->cfg = cfg;
    h->store = s;
    h->commit = c;
    h->metrics = m;
    if ((rv = nng_url_parse(&h->url, cfg->http.listen)) != 0)
        return im_errf(e, IM_ECONFIG, "http: listen address %s: %s",
                       cfg->http.listen, nng_strerror(rv));
    if ((rv = nng_http_server_hold(&h->srv, h->url)) != 0) {
        nng_url_free(h->url);
        return im_errf(e, IM_EINVAL, "http: %s: %s", cfg->http.listen,
                       nng_strerror(rv));
    }
    for (int i = 0; routes[i].path != NULL; i++) {
        nng_http_handler *hd;
        if ((rv = nng_http_handler_alloc(&hd, routes[i].path, routes[i].cb)) !=
            0)
            goto fail;
        /* Every method reaches the handler, which answers 405 itself. */
        if ((rv = nng_http_handler_set_method(hd, NULL)) != 0 ||
            (routes[i].tree && (rv = nng_http_handler_set_tree(hd)) != 0) ||
            (rv = nng_http_handler_collect_body(hd, true,
                                                routes[i].body_max)) != 0 ||
            (rv = nng_http_handler_set_data(hd, h, NULL)) != 0 ||
            (rv = nng_http_server_add_handler(h->srv, hd)) != 0) {
            nng_http_handler_free(hd);
            goto fail;
        }
    }
    if ((rv = nng_http_server_start(h->srv)) != 0) {
        rv = im_errf(e, rv == NNG_EADDRINUSE ? IM_EEXIST : IM_EINVAL,
                     "http: listen on %s: %s", cfg->http.listen,
                     nng_strerror(rv));
        nng_http_server_release(h->srv);
        nng_url_free(h->url);
        return rv;
    }
    h->started = 1;
    if ((rv = metrics_register(m, collect, h)) != 0)
        log_warn("http: cannot register metrics: %s", im_strerror(rv));
    /* Summaries are due per key once its interval is over; looking a few
     * times per interval keeps them close to it. */
    h->flush_period_ms = cfg->http.summary_interval_ms / 4;
    if (h->flush_period_ms < 50)
        h->flush_period_ms = 50;
    if (h->flush_period_ms > 1000)
        h->flush_period_ms = 1000;
    if ((rv = nng_aio_alloc(&h->flush_aio, flush_tick, h)) != 0) {
        http_close(h);
        http_free(h);
        return im_errf(e, IM_ENOMEM, "http: timer: %s", nng_strerror(rv));
    }
    flush_arm(h);
    return 0;
fail:
    nng_http_server_release(h->srv);
    nng_url_free(h->url);
    return im_errf(e, IM_ENOMEM, "http: handlers: %s", nng_strerror(rv));
}

void
http_close(struct http_server *h)
{
    uint64_t deadline;
    int quiet = 0;

    if (!h->started)
        return;
    nng_http_server_stop(h->srv);
    atomic_store(&h->flush_stopping, 1);
    if (h->flush_aio != NULL) {
        nng_aio_stop(h->flush_aio);
        TSAN_ACQUIRE(&h->flush_op);
    }
    /* A handler that NNG dispatched just before the stop may not have
     * counted itself yet: wait for two quiet looks 20 ms apart. */
    deadline = clock_mono_ms() + HTTP_CLOSE_WAIT_MS;
    while (quiet < 2 && clock_mono_ms() < deadline) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        quiet = atomic_load(&h->inflight) == 0 && !atomic_load(&h->flush_busy)
                    ? quiet + 1
                    : 0;
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&h->inflight) != 0)
        log_warn("http: %d requests still in flight at shutdown",
                 atomic_load(&h->inflight));
}

void
http_free(struct http_server *h)
{
    if (!h->started)
        return;
    if (h->flush_aio != NULL) {
        nng_aio_free(h->flush_aio);
        TSAN_ACQUIRE(&h->flush_op);
    }
    h->flush_aio = NULL;
    nng_http_server_release(h->srv);
    nng_url_free(h->url);
    h->started = 0;
}
