/* Tests of the pure intake parsers (node/pagerduty.c,
 * node/alertmanager.c) and their helpers: real payloads parse into the
 * request the node acts on; every kind of bad input gets its specific
 * message and no request. No sockets, no store. */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "alertmanager.h"
#include "config.h"
#include "intake.h"
#include "pagerduty.h"
#include "test.h"

#define PD_KEY "e93facc04764012d7bfb002500d5d1a6"
#define AM_TOKEN "am-token-0123456789abcdef"

static struct config *cfg;

static const struct cfg_integration *
integ(enum integ_type t)
{
    for (size_t i = 0; i < cfg->integrations_count; i++)
        if (cfg->integrations[i].type == t)
            return &cfg->integrations[i];
    return NULL;
}

/* 1 if some error message contains needle. */
static int
has_error(const struct intake_errors *errs, const char *needle)
{
    for (size_t i = 0; i < errs->count; i++)
        if (strstr(errs->msg[i], needle) != NULL)
            return 1;
    fprintf(stderr, "  no error containing \"%s\"; errors:\n", needle);
    for (size_t i = 0; i < errs->count; i++)
        fprintf(stderr, "    %s\n", errs->msg[i]);
    return 0;
}

static int
pd(const char *json, struct intake_req *req, struct intake_errors *errs)
{
    return pd_parse(cfg, json, strlen(json), req, errs);
}

/* A PagerDuty event with the test routing key and a given payload. */
static char *
pd_event(const char *action, const char *extra)
{
    char *buf = malloc(8192);
    snprintf(buf, 8192,
             "{\"routing_key\":\"" PD_KEY "\",\"event_action\":\"%s\"%s%s}",
             action, extra[0] ? "," : "", extra);
    return buf;
}

TEST(pd_full_trigger)
{
    /* PagerDuty's own documentation example. */
    static const char body[] =
        "{\"payload\":{\"summary\":\"DISK at 99% on machine "
        "prod-datapipe03.example.com\",\"timestamp\":\"2015-07-17T08:42:58.315+"
        "0000\","
        "\"severity\":\"critical\",\"source\":\"prod-datapipe03.example.com\","
        "\"component\":\"mysql\",\"group\":\"prod-datapipe\",\"class\":"
        "\"disk\","
        "\"custom_details\":{\"free space\":\"1%\",\"ping time\":\"1500ms\","
        "\"load avg\":0.75}},\"routing_key\":\"" PD_KEY "\","
        "\"dedup_key\":\"srv01/mysql\",\"event_action\":\"trigger\","
        "\"client\":\"Sample Monitoring Service\",\"client_url\":"
        "\"https://monitoring.service.com\",\"links\":[{\"href\":"
        "\"http://pagerduty.example.com\",\"text\":\"An example link.\"}],"
        "\"images\":[{\"src\":\"https://chart.example.com/x.png\",\"href\":"
        "\"https://example.com\",\"alt\":\"An example link with an image\"}]}";
    struct intake_req req;
    struct intake_errors errs;

    REQUIRE(pd(body, &req, &errs) == 0);
    CHECK(req.integ == integ(INTEG_PAGERDUTY));
    CHECK_EQ_INT(req.action, INTAKE_TRIGGER);
    CHECK_EQ_STR(req.key, "srv01/mysql");
    CHECK_EQ_INT(req.key_generated, 0);
    CHECK_EQ_STR(req.title,
                 "DISK at 99% on machine prod-datapipe03.example.com");
    CHECK_EQ_STR(req.source, "prod-datapipe03.example.com");
    CHECK_EQ_INT(req.severity, SEV_CRITICAL);
    CHECK_EQ_INT(req.event_ms, 1437122578315ULL);
    REQUIRE(req.description != NULL);
    CHECK(strstr(req.description, "component: mysql") != NULL);
    CHECK(strstr(req.description, "\"load avg\": 0.75") != NULL);
    CHECK(strstr(req.description,
                 "An example link.: http://pagerduty.example.com") != NULL);
    CHECK(strstr(req.description, "client: Sample Monitoring Service") != NULL);
    intake_req_free(&req);
}

TEST(pd_trigger_without_key_gets_one)
{
    char *b =
        pd_event("trigger", "\"payload\":{\"summary\":\"s\",\"source\":\"h\","
                            "\"severity\":\"info\"}");
    struct intake_req req, req2;
    struct intake_errors errs;

    REQUIRE(pd(b, &req, &errs) == 0);
    REQUIRE(pd(b, &req2, &errs) == 0);
    CHECK_EQ_INT(req.key_generated, 1);
    CHECK_EQ_INT(strlen(req.key), 32);
    CHECK(strcmp(req.key, req2.key) != 0);
    CHECK_EQ_INT(req.severity, SEV_INFO);
    intake_req_free(&req);
    intake_req_free(&req2);
    free(b);
}

TEST(pd_acknowledge_and_resolve)
{
    char *ack = pd_event("acknowledge", "\"dedup_key\":\"k\"");
    char *res = pd_event("resolve", "\"dedup_key\":\"k\",\"payload\":42");
    char *nokey = pd_event("resolve", "");
    char *empty = pd_event("acknowledge", "\"dedup_key\":\"\"");
    struct intake_req req;
    struct intake_errors errs;

    REQUIRE(pd(ack, &req, &errs) == 0);
    CHECK_EQ_INT(req.action, INTAKE_ACKNOWLEDGE);
    CHECK_EQ_STR(req.key, "k");
    intake_req_free(&req);
    /* PagerDuty ignores the payload of a resolve. */
    REQUIRE(pd(res, &req, &errs) == 0);
    CHECK_EQ_INT(req.action, INTAKE_RESOLVE);
    intake_req_free(&req);
    CHECK(pd(nokey, &req, &errs) == IM_EINVAL);
    CHECK(has_error(&errs, "'dedup_key' is required for resolve"));
    CHECK(pd(empty, &req, &errs) == IM_EINVAL);
    CHECK(has_error(&errs, "'dedup_key' is empty"));
    free(ack);
    free(res);
    free(nokey);
    free(empty);
}

TEST(pd_bad_input)
{
    static const struct {
        const char *body, *error;
        int unparsable;
    } cases[] = {
        {"", "the body is empty", 1},
        {"{\"routing_key\":", "JSON parse error", 1},
        {"[1,2]", "must be a JSON object, not an array", 1},
        {"\"text\"", "JSON parse error", 1},
        {"{\"a\":\"\xff\xfe\"}", "JSON parse error", 1},
        {"{\"a\":\"x\\u0000y\"}", "JSON parse error", 1},
        {"{} trailing", "JSON parse error", 1},
        {"{\"event_action\":\"trigger\"}", "'routing_key' is missing", 0},
        {"{\"routing_key\":7,\"event_action\":\"trigger\"}",
         "'routing_key' must be a string, not a number", 0},
        {"{\"routing_key\":\"nope-nope-nope-nope\",\"event_action\":"
         "\"resolve\","
         "\"dedup_key\":\"k\"}",
         "'routing_key' does not match any pagerduty integration", 0},
        {"{\"routing_key\":\"" PD_KEY "\"}", "'event_action' is missing", 0},
        {"{\"routing_key\":\"" PD_KEY "\",\"event_action\":\"escalate\"}",
         "'event_action' must be trigger, acknowledge or resolve", 0},
        {"{\"routing_key\":\"" PD_KEY "\",\"event_action\":\"trigger\"}",
         "'payload' is missing", 0},
        {"{\"routing_key\":\"" PD_KEY "\",\"event_action\":\"trigger\","
         "\"payload\":[]}",
         "'payload' must be an object", 0},
        {"{\"routing_key\":\"" PD_KEY "\",\"event_action\":\"trigger\","
         "\"payload\":{\"source\":\"h\",\"severity\":\"info\"}}",
         "'payload.summary' is missing", 0},
        {"{\"routing_key\":\"" PD_KEY "\",\"event_action\":\"trigger\","
         "\"payload\":{\"summary\":\"  "
         "\",\"source\":\"h\",\"severity\":\"info\"}}",
         "'payload.summary' is blank", 0},
        {"{\"routing_key\":\"" PD_KEY "\",\"event_action\":\"trigger\","
         "\"payload\":{\"summary\":\"s\",\"source\":true,\"severity\":\"info\"}"
         "}",
         "'payload.source' must be a string, not a boolean", 0},
        {"{\"routing_key\":\"" PD_KEY "\",\"event_action\":\"trigger\","
         "\"payload\":{\"summary\":\"s\",\"source\":\"h\",\"severity\":"
         "\"high\"}}",
         "'payload.severity' must be critical, error, warning or info", 0},
        {"{\"routing_key\":\"" PD_KEY "\",\"event_action\":\"trigger\","
         "\"payload\":{\"summary\":\"s\",\"source\":\"h\",\"severity\":"
         "\"info\","
         "\"timestamp\":\"yesterday\"}}",
         "'payload.timestamp' is not an ISO 8601 date-time", 0},
        {"{\"routing_key\":\"" PD_KEY "\",\"event_action\":\"trigger\","
         "\"dedup_key\":\"a\\nb\",\"payload\":{\"summary\":\"s\",\"source\":"
         "\"h\","
         "\"severity\":\"info\"}}",
         "'dedup_key' contains a control character", 0},
        {"{\"routing_key\":\"" PD_KEY "\",\"event_action\":\"trigger\","
         "\"links\":{},\"payload\":{\"summary\":\"s\",\"source\":\"h\","
         "\"severity\":\"info\"}}",
         "'links' must be an array", 0},
        {"{\"routing_key\":\"" PD_KEY "\",\"event_action\":\"trigger\","
         "\"links\":[{\"text\":\"t\"}],\"payload\":{\"summary\":\"s\","
         "\"source\":"
         "\"h\",\"severity\":\"info\"}}",
         "'links[0].href' is missing", 0},
        {"{\"routing_key\":\"" PD_KEY "\",\"event_action\":\"trigger\","
         "\"images\":[{\"src\":5}],\"payload\":{\"summary\":\"s\",\"source\":"
         "\"h\",\"severity\":\"info\"}}",
         "'images[0].src' must be a string", 0},
    };
    struct intake_req req;
    struct intake_errors errs;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rv = pd(cases[i].body, &req, &errs);
        if (rv != IM_EINVAL || !has_error(&errs, cases[i].error) ||
            errs.unparsable != cases[i].unparsable || req.description != NULL ||
            errs.status != 400) {
            fprintf(stderr, "  case %zu: %s\n", i, cases[i].body);
            CHECK(0);
        }
    }
}

TEST(pd_bounds)
{
    char *summary = malloc(ALERT_SUMMARY_MAX + 2), *body, *key = malloc(300);
    struct intake_req req;
    struct intake_errors errs;
    size_t big_size = HTTP_BODY_MAX + 1;
    char *big = malloc(big_size);
    char extra[4096];

    /* Exactly 1024 bytes is accepted; the title is cut with "...". */
    memset(summary, 'x', ALERT_SUMMARY_MAX);
    summary[ALERT_SUMMARY_MAX] = '\0';
    snprintf(extra, sizeof extra,
             "\"payload\":{\"summary\":\"%s\",\"source\":\"h\",\"severity\":"
             "\"warning\"}",
             summary);
    body = pd_event("trigger", extra);
    REQUIRE(pd(body, &req, &errs) == 0);
    CHECK_EQ_INT(strlen(req.summary), ALERT_SUMMARY_MAX);
    CHECK_EQ_INT(strlen(req.title), TITLE_MAX);
    CHECK(strcmp(req.title + TITLE_MAX - 3, "...") == 0);
    intake_req_free(&req);
    free(body);
    /* 1025 is not. */
    strcat(summary, "y");
    snprintf(extra, sizeof extra,
             "\"payload\":{\"summary\":\"%s\",\"source\":\"h\",\"severity\":"
             "\"warning\"}",
             summary);
    body = pd_event("trigger", extra);
    CHECK(pd(body, &req, &errs) == IM_EINVAL);
    CHECK(has_error(&errs, "'payload.summary' is longer than 1024 bytes"));
    free(body);
    /* dedup_key: 255 yes, 256 no. */
    memset(key, 'k', 256);
    key[256] = '\0';
    snprintf(extra, sizeof extra, "\"dedup_key\":\"%s\"", key);
    body = pd_event("resolve", extra);
    CHECK(pd(body, &req, &errs) == IM_EINVAL);
    CHECK(has_error(&errs, "'dedup_key' is longer than 255 bytes"));
    free(body);
    key[255] = '\0';
    snprintf(extra, sizeof extra, "\"dedup_key\":\"%s\"", key);
    body = pd_event("resolve", extra);
    CHECK(pd(body, &req, &errs) == 0);
    intake_req_free(&req);
    free(body);
    /* A body over 512 KB is refused before it is parsed: 413. */
    memset(big, ' ', big_size);
    big[0] = '{';
    big[big_size - 1] = '}';
    CHECK(pd_parse(cfg, big, big_size, &req, &errs) == IM_ETOOBIG);
    CHECK_EQ_INT(errs.status, 413);
    CHECK(has_error(&errs, "exceeds the limit of 524288 bytes"));
    /* Exactly 512 KB of valid JSON is parsed (and found wanting). */
    CHECK(pd_parse(cfg, big, HTTP_BODY_MAX, &req, &errs) == IM_EINVAL);
    free(big);
    free(summary);
    free(key);
}

TEST(pd_errors_are_bounded)
{
    char body[8192];
    size_t n = 0;
    struct intake_req req;
    struct intake_errors errs;

    /* 40 bad links: INTAKE_ERRORS_MAX messages kept, the rest counted. */
    n += (size_t)snprintf(
        body + n, sizeof body - n,
        "{\"routing_key\":\"" PD_KEY "\",\"event_action\":"
        "\"trigger\",\"payload\":{\"summary\":\"s\",\"source\":"
        "\"h\",\"severity\":\"info\",\"component\":1,"
        "\"group\":2,\"class\":3},\"images\":[");
    for (int i = 0; i < 30; i++)
        n += (size_t)snprintf(body + n, sizeof body - n, "%s{\"src\":%d}",
                              i ? "," : "", i);
    snprintf(body + n, sizeof body - n, "]}");
    CHECK(pd(body, &req, &errs) == IM_EINVAL);
    CHECK_EQ_INT(errs.count, INTAKE_ERRORS_MAX);
    CHECK(errs.dropped > 0);
}

static const char am_body[] =
    "{\"receiver\":\"incident-mesh\",\"status\":\"firing\",\"alerts\":["
    "{\"status\":\"firing\",\"labels\":{\"alertname\":\"HighErrorRate\","
    "\"instance\":\"api-1:9100\",\"severity\":\"warning\"},\"annotations\":"
    "{\"summary\":\"5xx above "
    "5%\"},\"startsAt\":\"2026-11-23T10:15:30.123456789Z\","
    "\"endsAt\":\"0001-01-01T00:00:00Z\",\"generatorURL\":"
    "\"http://prometheus:9090/"
    "graph?g0.expr=x\",\"fingerprint\":\"c3a0ef7f1a2b3c4d\"},"
    "{\"status\":\"resolved\",\"labels\":{\"alertname\":\"HighErrorRate\","
    "\"instance\":\"api-2:9100\",\"severity\":\"critical\"},\"annotations\":{},"
    "\"startsAt\":\"2026-11-23T10:10:00Z\",\"endsAt\":\"2026-11-23T10:20:00+01:"
    "00\","
    "\"generatorURL\":\"\",\"fingerprint\":\"d4b1f08a2b3c4d5e\"}],"
    "\"groupLabels\":{\"alertname\":\"HighErrorRate\"},\"commonLabels\":"
    "{\"alertname\":\"HighErrorRate\"},\"commonAnnotations\":{},"
    "\"externalURL\":\"http://alertmanager:9093\",\"version\":\"4\","
    "\"groupKey\":\"{}:{alertname=\\\"HighErrorRate\\\"}\",\"truncatedAlerts\":"
    "0}";

TEST(am_notification)
{
    struct intake_req req;
    struct intake_errors errs;

    REQUIRE(am_parse(integ(INTEG_ALERTMANAGER), am_body, strlen(am_body), &req,
                     &errs) == 0);
    CHECK_EQ_STR(req.key, "{}:{alertname=\"HighErrorRate\"}");
    REQUIRE(req.alerts_count == 2);
    CHECK_EQ_INT(req.alerts[0].firing, 1);
    CHECK_EQ_STR(req.alerts[0].fingerprint, "c3a0ef7f1a2b3c4d");
    CHECK_EQ_INT(req.alerts[0].starts_at_ms, 1795428930123ULL);
    CHECK_EQ_INT(req.alerts[1].firing, 0);
    /* No common severity: the worst of the alerts. */
    CHECK_EQ_INT(req.severity, SEV_CRITICAL);
    CHECK_EQ_STR(req.title, "HighErrorRate");
    CHECK(strstr(req.description, "1 firing, 1 resolved") != NULL);
    CHECK(strstr(req.description, "c3a0ef7f1a2b3c4d") != NULL);
    intake_req_free(&req);
}

TEST(am_bad_input)
{
    static const struct {
        const char *from, *to, *error;
    } edits[] = {
        {"\"version\":\"4\"", "\"version\":\"3\"", "'version' must be \"4\""},
        {"\"version\":\"4\"", "\"version\":4", "'version' must be \"4\""},
        {"\"version\":\"4\",", "", "'version' is missing"},
        {"\"groupKey\":\"{}:{alertname=\\\"HighErrorRate\\\"}\"",
         "\"groupKey\":\"\"", "'groupKey' is blank"},
        {"\"status\":\"firing\",\"alerts\"",
         "\"status\":\"burning\",\"alerts\"",
         "'status' must be firing or resolved"},
        {"\"fingerprint\":\"c3a0ef7f1a2b3c4d\"", "\"fingerprint\":null",
         "'alerts[0].fingerprint' is missing"},
        {"\"startsAt\":\"2026-11-23T10:15:30.123456789Z\"",
         "\"startsAt\":\"10:15\"",
         "'alerts[0].startsAt' is not an RFC 3339 time"},
        {"\"instance\":\"api-1:9100\"", "\"instance\":9100",
         "'alerts[0].labels.instance' must be a string"},
        {"\"commonAnnotations\":{}", "\"commonAnnotations\":[]",
         "'commonAnnotations' must be an object of strings"},
        {"\"truncatedAlerts\":0", "\"truncatedAlerts\":-1",
         "'truncatedAlerts' must be a non-negative integer"},
        {"\"status\":\"resolved\",\"labels\"", "\"status\":\"gone\",\"labels\"",
         "'alerts[1].status' must be firing or resolved"},
    };
    struct intake_req req;
    struct intake_errors errs;
    char body[4096];

    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        const char *at = strstr(am_body, edits[i].from);
        REQUIRE(at != NULL);
        snprintf(body, sizeof body, "%.*s%s%s", (int)(at - am_body), am_body,
                 edits[i].to, at + strlen(edits[i].from));
        if (am_parse(integ(INTEG_ALERTMANAGER), body, strlen(body), &req,
                     &errs) != IM_EINVAL ||
            !has_error(&errs, edits[i].error) || req.alerts != NULL) {
            fprintf(stderr, "  edit %zu\n", i);
            CHECK(0);
        }
    }
    snprintf(body, sizeof body,
             "{\"version\":\"4\",\"groupKey\":\"g\","
             "\"status\":\"firing\",\"alerts\":[]}");
    CHECK(am_parse(integ(INTEG_ALERTMANAGER), body, strlen(body), &req,
                   &errs) == IM_EINVAL);
    CHECK(has_error(&errs, "'alerts' is empty"));
}

TEST(text_copy_cleans_and_cuts)
{
    char out[8];

    /* Control characters become spaces; newline and tab stay. */
    CHECK_EQ_INT(intake_text_copy(out, sizeof out, "a\x01\tb\nc", 6), 0);
    CHECK_EQ_STR(out, "a \tb\nc");
    /* Cut at a character boundary, "..." appended. */
    CHECK_EQ_INT(
        intake_text_copy(out, sizeof out, "h\xc3\xa9h\xc3\xa9h\xc3\xa9", 9), 1);
    CHECK_EQ_STR(out, "h\xc3\xa9h...");
    CHECK_EQ_INT(intake_text_copy(out, sizeof out, "1234567", 7), 0);
    CHECK_EQ_STR(out, "1234567");
}

TEST(time_forms)
{
    uint64_t ms = 0;

    CHECK(intake_parse_time("2015-07-17T08:42:58.315+0000", &ms) == 0);
    CHECK_EQ_INT(ms, 1437122578315ULL);
    CHECK(intake_parse_time("2015-07-17T10:42:58.315+02:00", &ms) == 0);
    CHECK_EQ_INT(ms, 1437122578315ULL);
    CHECK(intake_parse_time("2015-07-17T08:42:58Z", &ms) == 0);
    CHECK(intake_parse_time("2015-07-17", &ms) != 0);
    CHECK(intake_parse_time("0001-01-01T00:00:00Z", &ms) != 0);
}

TEST_MAIN(static const char conf[] =
              "[node]\nsite = AMS\ndata = /nonexistent\n"
              "[site AMS]\npubkey = "
              "ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"
              "[operator a]\npubkey = "
              "ed25519:AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"
              "[http]\nlisten = http://127.0.0.1:1\n"
              "[integration pd]\ntype = pagerduty\nkey = " PD_KEY
              "\nservice = shop\n"
              "[integration am]\ntype = alertmanager\ntoken = " AM_TOKEN
              "\nservice = api\n";
          struct im_err e = {0}; if (sodium_init() < 0) return 1;
          cfg = calloc(1, sizeof *cfg);
          if (config_parse(cfg, "test.conf", conf, &e) != 0) {
              fprintf(stderr, "config: %s\n", im_errmsg(&e));
              return 1;
          } RUN(pd_full_trigger);
          RUN(pd_trigger_without_key_gets_one); RUN(pd_acknowledge_and_resolve);
          RUN(pd_bad_input); RUN(pd_bounds); RUN(pd_errors_are_bounded);
          RUN(am_notification); RUN(am_bad_input);
          RUN(text_copy_cleans_and_cuts); RUN(time_forms); free(cfg))
