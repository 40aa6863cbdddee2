/* http: HTTP on the node, served by NNG's HTTP server ([http] listen):
 *
 *   POST /v2/enqueue              PagerDuty Events API v2 (node/pagerduty.c)
 *   POST /api/v1/alertmanager     Alertmanager webhook (node/alertmanager.c)
 *   /api/v1/incidents...          the native JSON API (node/httpapi.c)
 *   GET  /metrics                 Prometheus text (node/metrics.c)
 *   GET  /status                  the status page (node/status.c)
 *
 * docs/http-api.md is the reference. Intake and API writes go to the
 * group committer and are answered only after their transaction
 * committed: 202/200 means durable. A full commit queue answers 429, a
 * failed commit or a stopping node 503 (senders retry both). Reads run on
 * NNG's HTTP threads in their own read transactions. At most
 * HTTP_INFLIGHT_MAX requests are handled at once; past that, 429.
 *
 * Every handler answers every method itself, so that a wrong method gets
 * a JSON 405 with an Allow header, not NNG's HTML page; only a body over
 * HTTP_BODY_READ_MAX is refused by NNG before we see it (400). */
#ifndef IM_HTTP_H
#define IM_HTTP_H

#include <jansson.h>
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <stdatomic.h>
#include <stdint.h>

#include "commit.h"
#include "config.h"
#include "err.h"
#include "intake.h"
#include "metrics.h"
#include "store.h"

enum http_endpoint {
    HTTP_EP_PAGERDUTY,
    HTTP_EP_ALERTMANAGER,
    HTTP_EP_API,
    HTTP_EP_METRICS,
    HTTP_EP_STATUS,
    HTTP_EP_OTHER,
    HTTP_EP_COUNT_
};

#define HTTP_STATUS_SLOTS 600 /* counted per status code 0..599 */
#define HTTP_HANDLERS 7

struct http_server {
    const struct config *cfg;
    struct store *store;
    struct committer *commit;
    struct metrics *metrics;
    nng_http_server *srv;
    nng_url *url;
    int started;
    _Atomic int inflight;
    /* The storm summariser: a timer that runs intake_flush_step. */
    nng_aio *flush_aio;
    struct commit_req flush_req;
    struct commit_op flush_op;
    struct intake_flush_job flush_job;
    _Atomic int flush_busy, flush_stopping;
    uint64_t flush_period_ms;
    uint64_t flush_warned_ms;       /* committer's thread only */
    _Atomic uint64_t counts[HTTP_EP_COUNT_][HTTP_STATUS_SLOTS];
};

/* Listens on cfg->http.listen and serves. All arguments are borrowed
 * until http_free. Registers the intake counters with m. */
int http_start(struct http_server *h, const struct config *cfg, struct store *s,
               struct committer *c, struct metrics *m, struct im_err *e);

/* Stops accepting and waits until the requests being handled have been
 * answered (their commits included): call before commit_stop. */
void http_close(struct http_server *h);
void http_free(struct http_server *h);

/* ---- shared by the http modules (http.c, httpapi.c) ---- */

const char *http_endpoint_name(enum http_endpoint ep);

/* Sends the answer and completes the request (any thread). headers: name,
 * value pairs ending with NULL, or NULL. Counts it in the metrics and
 * ends its place among the requests in flight. */
void http_reply(struct http_server *h, nng_aio *aio, enum http_endpoint ep,
                int status, const char *content_type, const void *body,
                size_t size, const char *const *headers);

/* Same with a JSON body (the reference to j is taken; NULL: 500). */
void http_reply_json(struct http_server *h, nng_aio *aio, enum http_endpoint ep,
                     int status, json_t *j, const char *const *headers);

/* {"error": msg, "code": name} with status. */
void http_reply_error(struct http_server *h, nng_aio *aio,
                      enum http_endpoint ep, int status, const char *code_name,
                      const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* The HTTP status for an IM_E* code of a refused or failed write. */
int http_status_of(int code);

/* The integration of `type` named by "Authorization: Bearer TOKEN", or
 * NULL. */
const struct cfg_integration *http_bearer(const struct http_server *h,
                                          nng_http_req *req,
                                          enum integ_type type);

/* 1 if the request's Content-Type is application/json (parameters such as
 * charset allowed). */
int http_is_json(nng_http_req *req);

/* The value of query parameter `name` in uri, percent-decoded into out
 * (out_size bytes). 1 found, 0 absent, -1 malformed or too long. */
int http_query(const char *uri, const char *name, char *out, size_t out_size);

/* 1 if every query parameter of uri is one of `known` (NULL-ended); else
 * 0 and *bad names the first unknown one (in `scratch`). */
int http_query_known(const char *uri, const char *const *known, char *scratch,
                     size_t scratch_size);

/* The native JSON API (node/httpapi.c): handles a request under
 * /api/v1/incidents. */
void httpapi_handle(struct http_server *h, nng_aio *aio, nng_http_req *req);

#endif
