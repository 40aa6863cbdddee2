/* Tests of the config sections for HTTP: [http], [integration NAME] and
 * [notify NAME] parse into what the node uses, and every mistake is
 * refused whole with file:line and the problem. */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "test.h"

static const char
    base[] = "[node]\nsite = AMS\ndata = /nonexistent\n" /* 1-3 */
             "[site AMS]\npubkey = "
             "ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n" /* 4-5 */
             "[operator a]\npubkey = "
             "ed25519:AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"; /* 6-7 */

static struct config *cfg;

static int
parse(const char *extra, struct im_err *e)
{
    char text[8192];
    snprintf(text, sizeof text, "%s%s", base, extra);
    return config_parse(cfg, "t.conf", text, e);
}

TEST(full_sections)
{
    struct im_err e = {0};
    static const char extra[] =
        "[http]\nlisten = http://127.0.0.1:7480\nsummary_interval = 2s\n"
        "status_title = Example status\n"
        "[integration prom]\ntype = alertmanager\ntoken = "
        "tok-0123456789abcdef\n"
        "service = api\ncategory = monitoring/latency\n"
        "severity.warning = high/low\ndefault_severity = error\n"
        "resolve_when_all_resolved = false\n"
        "[integration pd]\ntype = pagerduty\nkey = "
        "e93facc04764012d7bfb002500d5d1a6\n"
        "service = shop\n"
        "[integration bot]\ntype = api\ntoken = bot-0123456789abcdef\nrole = "
        "viewer\n"
        "[notify pager]\ntype = webhook\nurl = https://pager.example/hook\n"
        "on = new_p1, major,resolved\nservice = shop\nattempts = 3\n"
        "backoff = 250ms\ntimeout = 2s\n"
        "[notify script]\ntype = command\ncommand = /usr/local/bin/page --team "
        "ops\n"
        "on = escalation owner_change\n";
    const struct cfg_integration *in;

    REQUIRE(parse(extra, &e) == 0);
    CHECK_EQ_STR(cfg->http.listen, "http://127.0.0.1:7480");
    CHECK_EQ_INT(cfg->http.summary_interval_ms, 2000);
    CHECK_EQ_STR(cfg->http.status_title, "Example status");
    REQUIRE(cfg->integrations_count == 3);
    in = config_integration_by_key(cfg, INTEG_ALERTMANAGER,
                                   "tok-0123456789abcdef");
    REQUIRE(in != NULL);
    CHECK_EQ_STR(in->name, "prom");
    CHECK_EQ_STR(in->category, "monitoring");
    CHECK_EQ_STR(in->subcategory, "latency");
    CHECK_EQ_INT(in->impact[SEV_WARNING], 1);
    CHECK_EQ_INT(in->urgency[SEV_WARNING], 3);
    CHECK_EQ_INT(in->impact[SEV_CRITICAL], 1); /* default kept */
    CHECK_EQ_INT(in->default_severity, SEV_ERROR);
    CHECK_EQ_INT(in->resolve_when_all_resolved, 0);
    /* A key of one type does not open another. */
    CHECK(config_integration_by_key(cfg, INTEG_API, "tok-0123456789abcdef") ==
          NULL);
    CHECK(config_integration_by_key(cfg, INTEG_ALERTMANAGER,
                                    "tok-0123456789abcde") == NULL);
    CHECK(config_integration_by_key(cfg, INTEG_ALERTMANAGER, "") == NULL);
    in = config_integration_by_key(cfg, INTEG_API, "bot-0123456789abcdef");
    REQUIRE(in != NULL);
    CHECK_EQ_INT(in->role, OP_ROLE_VIEWER);
    REQUIRE(cfg->notify_count == 2);
    CHECK_EQ_INT(cfg->notify[0].type, NOTIFY_WEBHOOK);
    CHECK_EQ_INT(cfg->notify[0].rules, (1u << NOTIFY_NEW_P1) |
                                           (1u << NOTIFY_MAJOR) |
                                           (1u << NOTIFY_RESOLVED));
    CHECK_EQ_INT(cfg->notify[0].attempts, 3);
    CHECK_EQ_INT(cfg->notify[0].backoff_ms, 250);
    CHECK_EQ_INT(cfg->notify[0].timeout_ms, 2000);
    CHECK_EQ_STR(cfg->notify[0].service, "shop");
    CHECK_EQ_INT(cfg->notify[1].type, NOTIFY_COMMAND);
    CHECK_EQ_INT(cfg->notify[1].rules,
                 (1u << NOTIFY_ESCALATION) | (1u << NOTIFY_OWNER_CHANGE));
    CHECK_EQ_INT(cfg->notify[1].attempts, 5);
}

TEST(defaults_without_http)
{
    struct im_err e = {0};
    REQUIRE(parse("", &e) == 0);
    CHECK_EQ_STR(cfg->http.listen, "");
    CHECK_EQ_INT(cfg->http.summary_interval_ms,
                 ALERT_SUMMARY_INTERVAL_MS_DEFAULT);
    CHECK_EQ_INT(cfg->integrations_count, 0);
}

TEST(mistakes_name_file_and_line)
{
    static const struct {
        const char *extra, *error;
    } cases[] = {
        {"[http]\nlisten = tcp://127.0.0.1:1\n",
         "t.conf:9: 'listen' in [http] must be http://HOST:PORT"},
        {"[http]\nlisten = http://127.0.0.1\n",
         "t.conf:9: 'listen' in [http] must be http://HOST:PORT with a numeric "
         "port"},
        {"[http]\nlisten = http://127.0.0.1:80/x\n",
         "t.conf:9: 'listen' in [http]"},
        {"[http]\nsummary_interval = 2s\n", "t.conf:8: [http] has no 'listen'"},
        {"[http]\nlisten = http://h:1\nsummary_interval = soon\n",
         "t.conf:10: invalid summary_interval 'soon'"},
        {"[http]\nlisten = http://h:1\nsummary_interval = 1ms\n",
         "t.conf:10: summary_interval '1ms' is out of range"},
        {"[http]\nlisten = http://h:1\nlisen = x\n",
         "t.conf:10: unknown key 'lisen' in [http]"},
        {"[http]\n[http]\n", "t.conf:9: [http] appears twice"},
        {"[http]\nlisten = http://h:1\n[integration x]\ntype = nagios\n",
         "t.conf:11: unknown integration type 'nagios'"},
        {"[http]\nlisten = http://h:1\n[integration x]\ntype = pagerduty\n"
         "key = short\n",
         "t.conf:12: 'key' must be 16 to 128 characters long (it is 5)"},
        {"[http]\nlisten = http://h:1\n[integration x]\ntype = pagerduty\n"
         "key = has space in the key!!\n",
         "t.conf:12: 'key' may hold printable ASCII characters only"},
        {"[http]\nlisten = http://h:1\n[integration x]\ntype = pagerduty\n"
         "service = s\n",
         "t.conf:10: [integration x] has no 'key'"},
        {"[http]\nlisten = http://h:1\n[integration x]\nkey = "
         "0123456789abcdef\n",
         "t.conf:10: [integration x] has no 'type'"},
        {"[http]\nlisten = http://h:1\n[integration x]\ntype = alertmanager\n"
         "token = 0123456789abcdef\n",
         "t.conf:10: [integration x] has no 'service'"},
        {"[integration x]\ntype = api\ntoken = 0123456789abcdef\n",
         "t.conf:8: [integration x] needs HTTP: add an [http] section"},
        {"[http]\nlisten = http://h:1\n[integration x]\ntype = api\n"
         "token = 0123456789abcdef\n[integration y]\ntype = pagerduty\n"
         "key = 0123456789abcdef\nservice = s\n",
         "t.conf:13: [integration y] has the same key as [integration x]"},
        {"[http]\nlisten = http://h:1\n[integration x]\nseverity.fatal = "
         "high/high\n",
         "t.conf:11: unknown severity in 'severity.fatal'"},
        {"[http]\nlisten = http://h:1\n[integration x]\nseverity.info = high\n",
         "t.conf:11: invalid severity.info 'high': IMPACT/URGENCY"},
        {"[http]\nlisten = http://h:1\n[integration x]\ncategory = /sub\n",
         "t.conf:11: invalid category '/sub'"},
        {"[http]\nlisten = http://h:1\n[integration x]\n"
         "resolve_when_all_resolved = maybe\n",
         "t.conf:11: 'resolve_when_all_resolved' must be true or false"},
        {"[http]\nlisten = http://h:1\n[integration x]\nrole = god\n",
         "t.conf:11: unknown role 'god'"},
        {"[integration]\n", "t.conf:8: [integration] needs a name"},
        {"[integration a b]\n", "t.conf:8: invalid integration name 'a b'"},
        {"[http]\nlisten = http://h:1\n[integration x]\ntype = api\n"
         "token = 0123456789abcdef\n[integration x]\n",
         "t.conf:13: [integration x] appears twice"},
        {"[notify n]\ntype = sms\n", "t.conf:9: unknown notify type 'sms'"},
        {"[notify n]\ntype = webhook\non = major\n",
         "t.conf:8: [notify n] is a webhook without a 'url'"},
        {"[notify n]\ntype = webhook\nurl = ftp://x\n",
         "t.conf:10: 'url' must start with http:// or https://"},
        {"[notify n]\ntype = command\non = major\n",
         "t.conf:8: [notify n] is a command without a 'command'"},
        {"[notify n]\ntype = command\ncommand = x\n",
         "t.conf:8: [notify n] has no 'on'"},
        {"[notify n]\ntype = command\ncommand = x\non = new_p3\n",
         "t.conf:11: unknown rule 'new_p3' in 'on'"},
        {"[notify n]\ntype = command\ncommand = x\non = major\nattempts = 0\n",
         "t.conf:12: 'attempts' must be 1 to 20"},
        {"[notify n]\ntype = command\ncommand = x\non = major\nbackoff = 1h\n",
         "t.conf:12: backoff '1h' is out of range"},
        {"[notify n]\ntype = command\ncommand = x\non = major\nurl = "
         "http://x\n",
         "t.conf:8: [notify n] is a command: 'url' does not apply"},
        {"[notify n]\nretry = 3\n",
         "t.conf:9: unknown key 'retry' in [notify n]"},
        {"[nope]\n", "unknown section [nope] (known: node, site CODE, operator "
                     "NAME, http, integration NAME, notify NAME, coord, "
                     "coordinator ID, etcd)"},
    };
    struct im_err e;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        im_errclear(&e);
        if (parse(cases[i].extra, &e) != IM_ECONFIG ||
            strstr(im_errmsg(&e), cases[i].error) == NULL) {
            fprintf(stderr, "  case %zu: want \"%s\", got \"%s\"\n", i,
                    cases[i].error, im_errmsg(&e));
            CHECK(0);
        }
    }
}

TEST_MAIN(cfg = calloc(1, sizeof *cfg); RUN(full_sections);
          RUN(defaults_without_http); RUN(mistakes_name_file_and_line);
          free(cfg))
