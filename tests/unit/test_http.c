/* Tests of node/http, node/httpapi and node/status over real HTTP on
 * loopback (libcurl), with the real store and committer in-process, so
 * that ASan and TSan see the HTTP threads, the committer's thread and the
 * summariser's timer together: intake answers, refusals that change
 * nothing, the JSON API, the status page (public updates only, escaped),
 * /metrics, concurrent senders, and a storm bounded to a few events. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "commit.h"
#include "config.h"
#include "http.h"
#include "keys.h"
#include "metrics.h"
#include "notify.h"
#include "status.h"
#include "store.h"
#include "test.h"

#define PD_KEY "0123456789abcdef0123456789abcdef"
#define AM_TOKEN "am-0123456789abcdef"
#define API_TOKEN "api-0123456789abcdef"
#define VIEWER_TOKEN "viewer-0123456789abcdef"

static char tmp_root[] = "/tmp/im-test-http-XXXXXX";
static char base[64];
static struct config *cfg;
static struct store store;
static struct committer commit;
static struct metrics metrics;
static struct notifier notifier;
static struct http_server http;
static struct im_key site_key;

struct resp {
    long status;
    char *body;
    size_t size;
    char headers[2048];
};

static size_t
on_body(char *p, size_t size, size_t n, void *arg)
{
    struct resp *r = arg;
    char *d = realloc(r->body, r->size + size * n + 1);
    if (d == NULL)
        return 0;
    memcpy(d + r->size, p, size * n);
    r->size += size * n;
    d[r->size] = '\0';
    r->body = d;
    return size * n;
}

static size_t
on_header(char *p, size_t size, size_t n, void *arg)
{
    struct resp *r = arg;
    size_t used = strlen(r->headers);
    if (used + size * n < sizeof r->headers) {
        memcpy(r->headers + used, p, size * n);
        r->headers[used + size * n] = '\0';
    }
    return size * n;
}

/* One request; headers: a NULL-ended list of "Name: value". */
static struct resp
request(const char *method, const char *path, const char *const *headers,
        const char *body, size_t body_size)
{
    struct resp r = {0};
    struct curl_slist *h = NULL;
    char url[512];
    CURL *c = curl_easy_init();

    snprintf(url, sizeof url, "%s%s", base, path);
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
        h = curl_slist_append(h, headers[i]);
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_size);
    }
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (r.body == NULL)
        r.body = calloc(1, 1);
    return r;
}

static const char *const json_hdr[] = {"Content-Type: application/json", NULL};
static const char *const api_hdr[] = {"Content-Type: application/json",
                                      "Authorization: Bearer " API_TOKEN, NULL};
static const char *const am_hdr[] = {"Content-Type: application/json",
                                     "Authorization: Bearer " AM_TOKEN, NULL};

static struct resp
post(const char *path, const char *const *headers, const char *body)
{
    return request("POST", path, headers, body, strlen(body));
}

static char *
pd_trigger(const char *key, const char *summary)
{
    char *b = malloc(1024);
    snprintf(b, 1024,
             "{\"routing_key\":\"" PD_KEY "\",\"event_action\":\"trigger\","
             "\"dedup_key\":\"%s\",\"payload\":{\"summary\":\"%s\",\"source\":"
             "\"db1\",\"severity\":\"critical\"}}",
             key, summary);
    return b;
}

static uint64_t
head_seq(void)
{
    struct store_head h = {0};
    MDB_txn *txn;
    if (store_read_begin(&store, &txn, NULL) != 0)
        return UINT64_MAX;
    store_head_get(txn, &store, "AMS", &h);
    store_read_end(txn);
    return h.seq;
}

struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
};

static void
waiter_done(struct commit_req *r)
{
    struct waiter *w = r->arg;
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Appends body to incident through the committer; the result's code. */
static int
commit_body(const char *incident, Im__Body *body)
{
    struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    struct commit_op op = {.incident = incident, .body = body};
    struct commit_req req = {.actor = "comms",
                             .ops = &op,
                             .ops_count = 1,
                             .done = waiter_done,
                             .arg = &w};
    Im__Result *res;
    int code = -1;

    if (commit_submit(&commit, &req) != 0)
        return -1;
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    if ((res = im__result__unpack(NULL, op.result_size, op.result)) != NULL) {
        code = res->code;
        im__result__free_unpacked(res, NULL);
    }
    free(op.result);
    return code;
}

static json_t *
get_json(const char *path)
{
    static const char *const auth[] = {"Authorization: Bearer " API_TOKEN,
                                       NULL};
    struct resp r = request("GET", path, auth, NULL, 0);
    json_t *j = r.status == 200 ? json_loads(r.body, 0, NULL) : NULL;
    if (j == NULL)
        fprintf(stderr, "  GET %s: %ld %s\n", path, r.status, r.body);
    free(r.body);
    return j;
}

TEST(pagerduty_trigger_join_resolve)
{
    char *b = pd_trigger("db1/disk", "disk full");
    struct resp r = post("/v2/enqueue", json_hdr, b);
    char id[INCIDENT_ID_MAX + 1] = "";
    const char *p;
    json_t *j;

    CHECK_EQ_INT(r.status, 202);
    CHECK_EQ_STR(r.body,
                 "{\"status\":\"success\",\"message\":\"Event processed\","
                 "\"dedup_key\":\"db1/disk\"}");
    p = strstr(r.headers, "X-Incident: ");
    REQUIRE(p != NULL);
    sscanf(p + 12, "%32[A-Z0-9-]", id);
    free(r.body);
    r = post("/v2/enqueue", json_hdr, b);
    CHECK_EQ_INT(r.status, 202);
    CHECK(strstr(r.headers, "X-Intake-Outcome: joined") != NULL);
    free(r.body);
    free(b);
    {
        char path[128];
        snprintf(path, sizeof path, "/api/v1/incidents/%s", id);
        j = get_json(path);
    }
    REQUIRE(j != NULL);
    CHECK_EQ_STR(json_string_value(json_object_get(j, "state")), "new");
    CHECK_EQ_STR(json_string_value(json_object_get(j, "priority")), "P1");
    CHECK_EQ_INT(
        json_integer_value(json_object_get(
            json_array_get(json_object_get(j, "alerts"), 0), "occurrences")),
        2);
    json_decref(j);
    r = post("/v2/enqueue", json_hdr,
             "{\"routing_key\":\"" PD_KEY "\",\"event_action\":\"resolve\","
             "\"dedup_key\":\"db1/disk\"}");
    CHECK_EQ_INT(r.status, 202);
    CHECK(strstr(r.headers, "X-Intake-Outcome: resolved") != NULL);
    free(r.body);
    /* Resolved: a second resolve is dropped; a trigger opens anew. */
    r = post("/v2/enqueue", json_hdr,
             "{\"routing_key\":\"" PD_KEY "\",\"event_action\":\"resolve\","
             "\"dedup_key\":\"db1/disk\"}");
    CHECK(strstr(r.headers, "X-Intake-Outcome: dropped") != NULL);
    free(r.body);
}

TEST(refusals_change_nothing)
{
    static const char *const text_hdr[] = {"Content-Type: text/plain", NULL};
    static const char *const chunked[] = {"Content-Type: application/json",
                                          "Transfer-Encoding: chunked", NULL};
    static const char *const bad_am[] = {
        "Content-Type: application/json",
        "Authorization: Bearer wrong-wrong-wrong", NULL};
    static const char *const viewer[] = {"Content-Type: application/json",
                                         "Authorization: Bearer " VIEWER_TOKEN,
                                         NULL};
    char *b = pd_trigger("x", "y");
    uint64_t before = head_seq();
    struct resp r;

    r = post("/v2/enqueue", text_hdr, b);
    CHECK_EQ_INT(r.status, 415);
    CHECK(strstr(r.body, "Content-Type must be application/json") != NULL);
    free(r.body);
    r = request("GET", "/v2/enqueue", NULL, NULL, 0);
    CHECK_EQ_INT(r.status, 405);
    CHECK(strstr(r.headers, "Allow: POST") != NULL);
    free(r.body);
    r = post("/v2/enqueue", chunked, b);
    CHECK_EQ_INT(r.status, 411);
    free(r.body);
    r = post("/v2/enqueue", json_hdr, "{\"routing_key\":");
    CHECK_EQ_INT(r.status, 400);
    CHECK(strstr(r.body, "\"status\":\"Unrecognized object\"") != NULL);
    free(r.body);
    r = post("/api/v1/alertmanager", json_hdr, "{}");
    CHECK_EQ_INT(r.status, 401);
    CHECK(strstr(r.headers, "WWW-Authenticate: Bearer") != NULL);
    free(r.body);
    r = post("/api/v1/alertmanager", bad_am, "{}");
    CHECK_EQ_INT(r.status, 401);
    free(r.body);
    r = post("/api/v1/alertmanager", am_hdr, "{\"version\":\"3\"}");
    CHECK_EQ_INT(r.status, 400);
    CHECK(strstr(r.body, "'version' must be") != NULL);
    free(r.body);
    r = request("GET", "/api/v1/incidents", NULL, NULL, 0);
    CHECK_EQ_INT(r.status, 401);
    free(r.body);
    r = post("/api/v1/incidents", viewer,
             "{\"title\":\"t\",\"service\":\"s\",\"impact\":\"high\","
             "\"urgency\":\"high\"}");
    CHECK_EQ_INT(r.status, 403);
    CHECK(strstr(r.body, "role viewer") != NULL);
    free(r.body);
    r = post("/api/v1/incidents", api_hdr,
             "{\"title\":\"t\",\"service\":\"s\",\"impact\":\"huge\","
             "\"urgency\":\"high\"}");
    CHECK_EQ_INT(r.status, 400);
    CHECK(strstr(r.body, "'impact' must be high, medium or low") != NULL);
    free(r.body);
    r = post("/api/v1/incidents", api_hdr,
             "{\"title\":\"t\",\"service\":\"s\",\"impact\":\"high\","
             "\"urgency\":\"high\",\"colour\":\"red\"}");
    CHECK_EQ_INT(r.status, 400);
    CHECK(strstr(r.body, "unknown field 'colour'") != NULL);
    free(r.body);
    r = request("GET", "/api/v1/incidents?state=flying", api_hdr, NULL, 0);
    CHECK_EQ_INT(r.status, 400);
    CHECK(strstr(r.body, "is not a state") != NULL);
    free(r.body);
    r = request("GET", "/nowhere", NULL, NULL, 0);
    CHECK_EQ_INT(r.status, 404);
    free(r.body);
    CHECK_EQ_INT(head_seq(), before);
    free(b);
}

TEST(api_lifecycle_with_cli_rules)
{
    struct resp r;
    char path[128], id[INCIDENT_ID_MAX + 1] = "";
    json_t *j;

    r = post("/api/v1/incidents", api_hdr,
             "{\"title\":\"Checkout returns 500\",\"service\":\"shop\","
             "\"impact\":\"high\",\"urgency\":\"medium\",\"category\":"
             "\"app/payments\",\"description\":\"since 10:02\"}");
    CHECK_EQ_INT(r.status, 201);
    j = json_loads(r.body, 0, NULL);
    free(r.body);
    REQUIRE(j != NULL);
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")));
    CHECK_EQ_STR(json_string_value(json_object_get(j, "priority")), "P2");
    CHECK_EQ_STR(json_string_value(json_object_get(j, "subcategory")),
                 "payments");
    json_decref(j);
    /* The CLI's rules and words: resolve from new is refused. */
    snprintf(path, sizeof path, "/api/v1/incidents/%s/resolve", id);
    r = post(path, api_hdr, "{\"code\":\"fixed\",\"notes\":\"n\"}");
    CHECK_EQ_INT(r.status, 409);
    CHECK(strstr(r.body, "it is new; from new you can: ack, cancel") != NULL);
    CHECK(strstr(r.body, "\"code\":\"IM_ESTATE\"") != NULL);
    free(r.body);
    snprintf(path, sizeof path, "/api/v1/incidents/%s/acknowledge", id);
    r = post(path, api_hdr, "");
    CHECK_EQ_INT(r.status, 200);
    free(r.body);
    snprintf(path, sizeof path, "/api/v1/incidents/%s/notes", id);
    r = post(path, api_hdr, "{\"text\":\"gateway returns 502\"}");
    CHECK_EQ_INT(r.status, 200);
    free(r.body);
    r = post(path, api_hdr, "{\"text\":\"\"}");
    CHECK_EQ_INT(r.status, 400);
    free(r.body);
    snprintf(path, sizeof path, "/api/v1/incidents/%s/start", id);
    r = post(path, api_hdr, "{}");
    CHECK_EQ_INT(r.status, 200);
    free(r.body);
    snprintf(path, sizeof path, "/api/v1/incidents/%s/resolve", id);
    r = post(path, api_hdr, "{\"code\":\"fixed\",\"notes\":\"rolled back\"}");
    CHECK_EQ_INT(r.status, 200);
    CHECK(strstr(r.body, "\"state\":\"resolved\"") != NULL);
    free(r.body);
    r = post("/api/v1/incidents/AMS-999999/acknowledge", api_hdr, "");
    CHECK_EQ_INT(r.status, 404);
    CHECK(strstr(r.body, "no incident AMS-999999") != NULL);
    free(r.body);
    j = get_json("/api/v1/incidents?all=true&service=shop&limit=5");
    REQUIRE(j != NULL);
    CHECK(json_integer_value(json_object_get(j, "matched")) >= 1);
    json_decref(j);
}

TEST(status_page_shows_public_updates_only)
{
    struct resp r;
    char path[128], id[INCIDENT_ID_MAX + 1];
    Im__Body body = IM__BODY__INIT;
    Im__PublicUpdate up = IM__PUBLIC_UPDATE__INIT;
    json_t *j;

    r = post(
        "/api/v1/incidents", api_hdr,
        "{\"title\":\"Payments <script>alert(1)</script> down\","
        "\"service\":\"payments\",\"impact\":\"high\",\"urgency\":\"high\","
        "\"description\":\"SECRET-DESCRIPTION\"}");
    REQUIRE(r.status == 201);
    j = json_loads(r.body, 0, NULL);
    free(r.body);
    REQUIRE(j != NULL);
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")));
    json_decref(j);
    snprintf(path, sizeof path, "/api/v1/incidents/%s/notes", id);
    r = post(path, api_hdr,
             "{\"text\":\"SECRET-NOTE: the DBA dropped a table\"}");
    CHECK_EQ_INT(r.status, 200);
    free(r.body);
    /* A public update goes through the committer, as imctl update. */
    up.text = "We have found the cause & are restoring service.";
    body.kind_case = IM__BODY__KIND_UPDATE;
    body.update = &up;
    CHECK_EQ_INT(commit_body(id, &body), 0);
    r = request("GET", "/status", NULL, NULL, 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK(strstr(r.headers, "Content-Type: text/html") != NULL);
    CHECK(
        strstr(r.body, "Payments &lt;script&gt;alert(1)&lt;/script&gt; down") !=
        NULL);
    CHECK(strstr(r.body, "<script") == NULL);
    CHECK(strstr(r.body, "SECRET") == NULL);
    CHECK(strstr(r.body, "Major outage") != NULL);
    CHECK(strstr(r.body,
                 "We have found the cause &amp; are restoring service.") !=
          NULL);
    free(r.body);
}

struct sender {
    int id, ok;
};

static void *
sender_main(void *arg)
{
    struct sender *s = arg;
    for (int i = 0; i < 25; i++) {
        char key[32];
        snprintf(key, sizeof key, "t%d-k%d", s->id, i % 5);
        char *b = pd_trigger(key, "concurrent");
        struct resp r = post("/v2/enqueue", json_hdr, b);
        s->ok += r.status == 202;
        free(r.body);
        free(b);
    }
    return NULL;
}

TEST(concurrent_senders)
{
    pthread_t th[8];
    struct sender s[8];
    int ok = 0;

    for (int i = 0; i < 8; i++) {
        s[i].id = i;
        s[i].ok = 0;
        pthread_create(&th[i], NULL, sender_main, &s[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        ok += s[i].ok;
    }
    CHECK_EQ_INT(ok, 8 * 25);
}

TEST(storm_is_summarised)
{
    char *b = pd_trigger("storm", "storm");
    uint64_t before = head_seq(), total = 0;
    json_t *j, *alerts;
    char path[128], id[INCIDENT_ID_MAX + 1] = "";
    struct resp r;
    size_t i;
    json_t *t;

    uint64_t start_ms = clock_mono_ms();
    for (int k = 0; k < 500; k++) {
        r = post("/v2/enqueue", json_hdr, b);
        if (r.status != 202)
            CHECK_EQ_INT(r.status, 202);
        if (k == 0) {
            const char *p = strstr(r.headers, "X-Incident: ");
            if (p)
                sscanf(p + 12, "%32[A-Z0-9-]", id);
        }
        free(r.body);
    }
    free(b);
    /* Summaries every 200 ms, and the last one within a tick or two. */
    usleep(700 * 1000);
    snprintf(path, sizeof path, "/api/v1/incidents/%s", id);
    j = get_json(path);
    REQUIRE(j != NULL);
    alerts = json_object_get(j, "alerts");
    CHECK_EQ_INT(json_integer_value(
                     json_object_get(json_array_get(alerts, 0), "occurrences")),
                 500);
    CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(alerts, 0),
                                                    "occurrences_pending")),
                 0);
    json_array_foreach(json_object_get(j, "timeline"), i, t)
    {
        const char *kind = json_string_value(json_object_get(t, "kind"));
        const char *text = json_string_value(json_object_get(t, "text"));
        unsigned long long n = 1;
        if (strcmp(kind, "alert") != 0)
            continue;
        if (sscanf(text, "%llu occurrences", &n) != 1)
            n = 1;
        total += n;
    }
    CHECK_EQ_INT(total, 500);
    /* Opened + first occurrence + one summary per 200 ms at most (the
     * senders of other tests flush their own keys meanwhile: count only
     * this incident's events). */
    CHECK(json_integer_value(json_object_get(j, "events_count")) <=
          2 + 1 + (int64_t)((clock_mono_ms() - start_ms) / 200));
    (void)before;
    json_decref(j);
}

TEST(overload_answers_429)
{
    char *b = pd_trigger("busy", "busy");
    uint64_t before = head_seq();
    struct resp r;

    /* As if HTTP_INFLIGHT_MAX requests were being handled. */
    atomic_fetch_add(&http.inflight, HTTP_INFLIGHT_MAX);
    r = post("/v2/enqueue", json_hdr, b);
    atomic_fetch_sub(&http.inflight, HTTP_INFLIGHT_MAX);
    CHECK_EQ_INT(r.status, 429);
    CHECK(strstr(r.body, "retry shortly") != NULL);
    free(r.body);
    CHECK_EQ_INT(head_seq(), before);
    r = post("/v2/enqueue", json_hdr, b);
    CHECK_EQ_INT(r.status, 202);
    free(r.body);
    free(b);
}

TEST(metrics_text)
{
    struct resp r;

    /* The notifier thread has had its P1s to send meanwhile. */
    for (int i = 0; i < 100; i++) {
        r = request("GET", "/metrics", NULL, NULL, 0);
        int sent = strstr(r.body, "im_notifications_total{channel=\"log\","
                                  "outcome=\"delivered\"} 0") == NULL;
        free(r.body);
        if (sent)
            break;
        usleep(50 * 1000);
    }
    r = request("GET", "/metrics", NULL, NULL, 0);
    CHECK(strstr(r.body, "im_notifications_total{channel=\"log\",outcome="
                         "\"delivered\"} 0") == NULL);
    CHECK_EQ_INT(r.status, 200);
    CHECK(strstr(r.body, "# TYPE im_http_requests_total counter") != NULL);
    CHECK(
        strstr(
            r.body,
            "im_http_requests_total{endpoint=\"pagerduty\",status=\"202\"}") !=
        NULL);
    CHECK(strstr(r.body, "im_incidents{state=\"new\",priority=\"P1\"}") !=
          NULL);
    CHECK(strstr(r.body, "im_events_appended_total ") != NULL);
    free(r.body);
}

TEST(status_render_escapes)
{
    struct status_incident in = {0};
    struct status_service svc = {.level = STATUS_PARTIAL_OUTAGE};
    struct status_view v = {.title = "Acme \"status\"",
                            .site = "AMS",
                            .now_ms = 1795428930123ULL,
                            .open = &in,
                            .open_count = 1,
                            .services = &svc,
                            .services_count = 1};
    char *html;
    size_t size;

    snprintf(in.id, sizeof in.id, "AMS-7");
    snprintf(in.title, sizeof in.title, "<img src=x onerror=alert(1)>");
    snprintf(in.service, sizeof in.service, "a&b");
    snprintf(svc.name, sizeof svc.name, "a&b");
    in.state = IM__STATE__STATE_ACKNOWLEDGED;
    in.priority = 1;
    in.updates_count = 1;
    snprintf(in.updates[0].text, sizeof in.updates[0].text, "line1\n'x'");
    REQUIRE(status_render(&v, &html, &size) == 0);
    CHECK(strstr(html, "&lt;img src=x onerror=alert(1)&gt;") != NULL);
    CHECK(strstr(html, "<img") == NULL);
    CHECK(strstr(html, "a&amp;b") != NULL);
    CHECK(strstr(html, "line1<br>&#39;x&#39;") != NULL);
    CHECK(strstr(html, "<title>Acme &quot;status&quot;</title>") != NULL);
    CHECK(strstr(html, "Partial outage") != NULL);
    CHECK_EQ_INT(strlen(html), size);
    free(html);
}

/* A loopback port nothing listens on now; another process may take it
 * before we do, hence the retries in setup. */
static int
free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t n = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

    if (fd < 0)
        return -1;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &n) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static int
setup(void)
{
    char text[4096], spk[KEY_PUB_TEXT_MAX], data[256];
    struct im_err e = {0};
    int port;

    signal(SIGPIPE, SIG_IGN);
    if (mkdtemp(tmp_root) == NULL || keys_init() != 0 ||
        curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        return -1;
    key_generate(&site_key);
    key_pub_encode(site_key.pk, spk);
    snprintf(data, sizeof data, "%s/data", tmp_root);
    for (int attempt = 0; attempt < 20; attempt++) {
        if ((port = free_port()) < 0)
            return -1;
        snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
        snprintf(text, sizeof text,
                 "[node]\nsite = AMS\ndata = %s\n"
                 "[site AMS]\npubkey = %s\n"
                 "[operator a]\npubkey = "
                 "ed25519:AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"
                 "[http]\nlisten = %s\nsummary_interval = 200ms\n"
                 "[integration pd]\ntype = pagerduty\nkey = " PD_KEY
                 "\nservice = db\n"
                 "[integration am]\ntype = alertmanager\ntoken = " AM_TOKEN
                 "\nservice = api\n"
                 "[integration bot]\ntype = api\ntoken = " API_TOKEN "\n"
                 "[integration watcher]\ntype = api\ntoken = " VIEWER_TOKEN
                 "\nrole = viewer\n"
                 "[notify log]\ntype = command\ncommand = cat >> %s/notified\n"
                 "on = new_p1\n",
                 data, spk, base, tmp_root);
        if (cfg == NULL)
            cfg = calloc(1, sizeof *cfg);
        if (config_parse(cfg, "test.conf", text, &e) != 0) {
            fprintf(stderr, "setup: %s\n", im_errmsg(&e));
            return -1;
        }
        if (attempt == 0) {
            metrics_init(&metrics);
            if (store_open(&store, data, "AMS", MAP_SIZE_DEFAULT, &e) != 0)
                break;
            notify_init(&notifier, cfg, &store, &commit, &metrics);
            store.derive = notify_derive;
            store.derive_before = 1;
            store.derive_arg = &notifier;
            if (commit_start(&commit, &store, &site_key, &e) != 0)
                break;
            metrics_register(&metrics, metrics_collect_store, &store);
            metrics_register(&metrics, metrics_collect_commit, &commit);
            if (notify_start(&notifier, &e) != 0)
                break;
        }
        if (http_start(&http, cfg, &store, &commit, &metrics, &e) == 0)
            return 0;
        if (e.code != IM_EEXIST)
            break;
    }
    fprintf(stderr, "setup: %s\n", im_errmsg(&e));
    return -1;
}

static void
teardown(void)
{
    char cmd[128];
    http_close(&http);
    notify_stop(&notifier);
    commit_stop(&commit);
    http_free(&http);
    metrics_fini(&metrics);
    store_close(&store);
    free(cfg);
    curl_global_cleanup();
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp_root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp_root);
}

TEST_MAIN(RUN(status_render_escapes); if (setup() != 0) return 1;
          RUN(pagerduty_trigger_join_resolve); RUN(refusals_change_nothing);
          RUN(api_lifecycle_with_cli_rules);
          RUN(status_page_shows_public_updates_only); RUN(concurrent_senders);
          RUN(storm_is_summarised); RUN(overload_answers_429);
          RUN(metrics_text); teardown())
