/* Unit tests for coord/schedule: the example file in deploy/ and the one in
 * docs/schedule.md parse; lookups, resolution of escalation targets and the
 * election inputs they give; the JSON round trip (same text, same on-call
 * answers at many instants); and every kind of bad document, each refused
 * with the path of the bad value and the right code, leaving the caller's
 * schedule alone. Run from the repository root (tests/run does). */
#include "test.h"

#include "clock.h"
#include "schedule.h"

static uint64_t
utc(const char *rfc3339)
{
    uint64_t ms = 0;
    if (clock_parse_rfc3339(rfc3339, &ms) != 0)
        abort();
    return ms;
}

static char *
read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "cannot open %s (run from the repository root)\n",
                path);
        return NULL;
    }
    static char buf[256 * 1024];
    *len = fread(buf, 1, sizeof buf - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static struct schedule *
parse(const char *text, size_t len)
{
    struct schedule *s = NULL;
    struct im_err e;
    if (schedule_parse(text, len, &s, &e) != 0) {
        fprintf(stderr, "  schedule_parse: %s\n", im_errmsg(&e));
        return NULL;
    }
    return s;
}

TEST(example_file)
{
    size_t len;
    char *text = read_file("deploy/schedule.example.json", &len);
    REQUIRE(text != NULL);
    struct schedule *s = parse(text, len);
    REQUIRE(s != NULL);
    CHECK_EQ_INT(s->sites_count, 5);
    CHECK_EQ_STR(s->sites[0].code, "AMS"); /* sorted */
    CHECK_EQ_STR(s->sites[4].code, "SYD");
    CHECK_EQ_INT(s->services_count, 4);
    CHECK_EQ_STR(s->services[0].service, "dns"); /* sorted */
    CHECK_EQ_INT(s->escalation.levels_count, 4);
    CHECK_EQ_INT(s->escalation.repeat, 2);
    CHECK_EQ_STR(s->escalation.levels[3].person, "cio-office");
    CHECK_EQ_INT(s->zones_count, 5);

    const struct schedule_site *ams = schedule_site(s, "AMS");
    REQUIRE(ams != NULL);
    CHECK(schedule_site(s, "XYZ") == NULL);
    CHECK_EQ_INT(ams->failover.sites_count, 3);
    CHECK_EQ_STR(ams->failover.sites[0], "LON");
    CHECK_EQ_INT(ams->failover.tier[0], 0);
    CHECK_EQ_STR(ams->failover.sites[2], "SIN");
    CHECK_EQ_INT(ams->failover.tier[1], 1);
    CHECK_EQ_INT(ams->failover.tier[2], 1);

    /* 2026-01-05 is day 0 of AMS's daily rotation: alice; on the 6th bram.
     * Dirk's Christmas override; LON has nobody (no rotation). */
    struct oncall_segment seg;
    struct im_err e;
    REQUIRE(schedule_site_oncall(s, "AMS", utc("2026-01-06T12:00:00Z"), &seg,
                                 &e) == 0);
    CHECK_EQ_STR(seg.person, "bram");
    REQUIRE(schedule_site_oncall(s, "AMS", utc("2026-12-25T12:00:00Z"), &seg,
                                 &e) == 0);
    CHECK_EQ_STR(seg.person, "dirk");
    CHECK_EQ_INT(seg.end_ms, utc("2026-12-26T08:00:00Z"));
    CHECK_EQ_INT(
        schedule_site_oncall(s, "LON", utc("2026-06-01T12:00:00Z"), &seg, &e),
        IM_ENOTFOUND);
    CHECK_EQ_INT(
        schedule_site_oncall(s, "XYZ", utc("2026-06-01T12:00:00Z"), &seg, &e),
        IM_ENOTFOUND);
    REQUIRE(schedule_global_oncall(s, utc("2026-01-13T12:00:00Z"), &seg, &e) ==
            0);
    CHECK_EQ_STR(seg.person, "hugo"); /* week 1 */

    /* Escalation targets to people. */
    char who[PERSON_MAX + 1];
    uint64_t t = utc("2026-01-06T12:00:00Z");
    struct esc_notice n = {.target = ESC_SITE_MANAGER, .site = "AMS"};
    REQUIRE(schedule_resolve(s, &n, t, who, &e) == 0);
    CHECK_EQ_STR(who, "bram");
    n.target = ESC_SITE_BACKUP;
    REQUIRE(schedule_resolve(s, &n, t, who, &e) == 0);
    CHECK_EQ_STR(who, "carla");
    n.target = ESC_GLOBAL_MANAGER;
    REQUIRE(schedule_resolve(s, &n, t, who, &e) == 0);
    CHECK_EQ_STR(who, "gina");
    n.target = ESC_SITE_MANAGER; /* LON has nobody: the global manager */
    strcpy(n.site, "LON");
    REQUIRE(schedule_resolve(s, &n, t, who, &e) == 0);
    CHECK_EQ_STR(who, "gina");
    n.target = ESC_SITE_BACKUP;
    REQUIRE(schedule_resolve(s, &n, t, who, &e) == 0);
    CHECK_EQ_STR(who, "gina");
    n.target = ESC_PERSON;
    strcpy(n.person, "cio-office");
    REQUIRE(schedule_resolve(s, &n, t, who, &e) == 0);
    CHECK_EQ_STR(who, "cio-office");
    /* Before the global rotation starts, nobody at all. */
    n.target = ESC_GLOBAL_MANAGER;
    CHECK_EQ_INT(schedule_resolve(s, &n, utc("2025-12-01T00:00:00Z"), who, &e),
                 IM_ENOTFOUND);
    schedule_free(s);
}

TEST(election_from_the_schedule)
{
    size_t len;
    char *text = read_file("deploy/schedule.example.json", &len);
    REQUIRE(text != NULL);
    struct schedule *s = parse(text, len);
    REQUIRE(s != NULL);
    struct elect_site sites[SITES_MAX];
    struct elect_oncall global;
    size_t count = 0;
    struct im_err e;
    uint64_t now = utc("2026-11-24T15:00:00Z");
    CHECK_EQ_INT(schedule_elect_sites(s, now, sites, 2, &count, &global, &e),
                 IM_ETOOBIG);
    REQUIRE(schedule_elect_sites(s, now, sites, SITES_MAX, &count, &global,
                                 &e) == 0);
    REQUIRE(count == 5);
    /* AMS, LON down; payments is AMS's; NYC and SIN share a tier. */
    for (size_t i = 0; i < count; i++) {
        sites[i].up = strcmp(sites[i].code, "AMS") != 0 &&
                      strcmp(sites[i].code, "LON") != 0;
        sites[i].lease_ms = 5000;
        sites[i].last_heard_ms = now - (sites[i].up ? 1000 : 7200);
        sites[i].load = strcmp(sites[i].code, "NYC") == 0 ? 1 : 4;
    }
    CHECK_EQ_STR(sites[1].code, "LON");
    CHECK_EQ_STR(sites[1].oncall.person, "");
    struct elect_inputs in = {
        .origin = "AMS",
        .service = "payments",
        .sites = sites,
        .sites_count = count,
        .services = s->services,
        .services_count = s->services_count,
        .global = global,
    };
    struct elect_result r;
    REQUIRE(elect_owner(&in, now, &r, &e) == 0);
    CHECK_EQ_STR(r.site, "NYC");
    /* NYC's weekly rotation: week 46 from 5 January, nina; until Monday
     * 30 November 08:00 New York time. */
    CHECK_EQ_STR(r.manager, "nina");
    CHECK(strstr(r.reason, "nina is on call at NYC until 2026-11-30 08:00 "
                           "America/New_York") != NULL);
    CHECK(strstr(r.reason, "LON is down") != NULL);
    schedule_free(s);
}

/* The examples of docs/ownership.md, sentence for sentence, at
 * 2026-11-24T15:00:00Z with the example schedule: if a rule or its wording
 * changes, this fails until the document is brought along. */
struct scenario {
    const char *origin, *service;
    const char *down;  /* codes of down sites, "AMS,LON" */
    const char *loads; /* "NYC=3,SIN=1"; others 0 */
    const char *reason;
};

static uint32_t
load_of(const char *loads, const char *code)
{
    const char *p = strstr(loads, code);
    return p ? (uint32_t)atoi(p + strlen(code) + 1) : 0;
}

TEST(ownership_doc_examples)
{
    static const struct scenario cases[] = {
        {"AMS", "email", "", "",
         "service email is mapped to LON, which is up; nobody is on call at "
         "LON, so hugo is the global incident manager until 2026-11-30 09:00 "
         "Europe/London"},
        {"AMS", "printer", "", "",
         "AMS is the origin and is up; carla is on call at AMS until "
         "2026-11-25 09:00 Europe/Amsterdam"},
        {"AMS", "printer", "AMS", "",
         "AMS is down (silent 7.2 s > lease 5 s); LON is first in AMS's "
         "failover order; nobody is on call at LON, so hugo is the global "
         "incident manager until 2026-11-30 09:00 Europe/London"},
        {"AMS", "printer", "AMS,LON", "NYC=3,SIN=1",
         "AMS is down (silent 7.2 s > lease 5 s); LON is down (silent 7.2 s > "
         "lease 5 s); 2 sites are up in the next tier of AMS's failover "
         "order; SIN has the lowest load of the up sites (1 open incident); "
         "uma is on call at SIN until 2026-11-25 09:00 Asia/Singapore"},
        {"LON", "payments", "AMS", "",
         "service payments is mapped to AMS, but AMS is down (silent 7.2 s > "
         "lease 5 s); LON is the origin and is up; nobody is on call at LON, "
         "so hugo is the global incident manager until 2026-11-30 09:00 "
         "Europe/London"},
        {"SYD", NULL, "SYD,SIN", "AMS=2,LON=2,NYC=2",
         "SYD is down (silent 7.2 s > lease 5 s); SIN is down (silent 7.2 s > "
         "lease 5 s); no site of SYD's failover order is up; 3 up sites share "
         "the lowest load (2 open incidents) and AMS has the lowest site "
         "code; carla is on call at AMS until 2026-11-25 09:00 "
         "Europe/Amsterdam"},
    };
    size_t len;
    char *text = read_file("deploy/schedule.example.json", &len);
    REQUIRE(text != NULL);
    struct schedule *s = parse(text, len);
    REQUIRE(s != NULL);
    uint64_t now = utc("2026-11-24T15:00:00Z");
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct elect_site sites[SITES_MAX];
        struct elect_oncall global;
        size_t count;
        struct im_err e;
        REQUIRE(schedule_elect_sites(s, now, sites, SITES_MAX, &count, &global,
                                     &e) == 0);
        for (size_t i = 0; i < count; i++) {
            sites[i].up = strstr(cases[c].down, sites[i].code) == NULL;
            sites[i].lease_ms = 5000;
            sites[i].last_heard_ms = now - (sites[i].up ? 1000 : 7200);
            sites[i].load = load_of(cases[c].loads, sites[i].code);
        }
        struct elect_inputs in = {
            .origin = cases[c].origin,
            .service = cases[c].service,
            .sites = sites,
            .sites_count = count,
            .services = s->services,
            .services_count = s->services_count,
            .global = global,
        };
        struct elect_result r;
        REQUIRE(elect_owner(&in, now, &r, &e) == 0);
        if (strcmp(r.reason, cases[c].reason) != 0) {
            fprintf(stderr, "  case %zu: %s\n", c, r.reason);
            test_failed_ = 1;
        }
    }
    schedule_free(s);
}

TEST(docs_example_is_valid)
{
    size_t len;
    char *text = read_file("docs/schedule.md", &len);
    REQUIRE(text != NULL);
    char *start = strstr(text, "```json\n");
    REQUIRE(start != NULL);
    start += 8;
    char *end = strstr(start, "```");
    REQUIRE(end != NULL);
    struct schedule *s = parse(start, (size_t)(end - start));
    CHECK(s != NULL);
    schedule_free(s);
}

TEST(round_trip)
{
    size_t len;
    char *text = read_file("deploy/schedule.example.json", &len);
    REQUIRE(text != NULL);
    struct schedule *a = parse(text, len), *b = NULL;
    REQUIRE(a != NULL);
    char *ja = NULL, *jb = NULL, *pretty = NULL;
    struct im_err e;
    REQUIRE(schedule_to_json(a, 0, &ja, &e) == 0);
    b = parse(ja, strlen(ja));
    REQUIRE(b != NULL);
    REQUIRE(schedule_to_json(b, 0, &jb, &e) == 0);
    CHECK_EQ_STR(ja, jb);
    REQUIRE(schedule_to_json(b, 1, &pretty, &e) == 0);
    CHECK(strchr(pretty, '\n') != NULL);
    CHECK(strchr(ja, '\n') == NULL);
    /* The same answers at many instants, for every site and globally. */
    uint64_t seed = test_seed_;
    for (int i = 0; i < 2000; i++) {
        uint64_t t = utc("2026-01-05T09:00:00Z") +
                     test_rand(&seed) % (3ULL * 365 * 86400000);
        struct oncall_segment sa, sb;
        struct im_err ea, eb;
        for (size_t k = 0; k < a->sites_count; k++) {
            int ra = schedule_site_oncall(a, a->sites[k].code, t, &sa, &ea);
            int rb = schedule_site_oncall(b, a->sites[k].code, t, &sb, &eb);
            CHECK_EQ_INT(ra, rb);
            if (ra == 0)
                CHECK(memcmp(&sa, &sb, sizeof sa) == 0);
        }
        CHECK_EQ_INT(schedule_global_oncall(a, t, &sa, &ea), 0);
        CHECK_EQ_INT(schedule_global_oncall(b, t, &sb, &eb), 0);
        CHECK(memcmp(&sa, &sb, sizeof sa) == 0);
        if (test_failed_)
            break;
    }
    CHECK(memcmp(&a->escalation, &b->escalation, sizeof a->escalation) == 0);
    free(ja);
    free(jb);
    free(pretty);
    schedule_free(a);
    schedule_free(b);
}

/* Bad documents. Written with ' for " to stay readable; doc() swaps them
 * and fills the parts a case leaves NULL with a valid default. */
#define ROT(zone)                                                              \
    "{'people':['ann','bob'],'length':'1d','handoff':'09:00',"                 \
    "'zone':'" zone "','start':'2026-01-05'}"
#define GLOBAL "{'rotation':" ROT("UTC") "}"
#define SITES "{'AMS':{'rotation':" ROT("Europe/Amsterdam") "},'NYC':{}}"
#define ESC "{'levels':[{'target':'site_manager','ack':'5m'}]}"

static char docbuf[64 * 1024];

static const char *
doc(const char *global, const char *sites, const char *services,
    const char *escalation)
{
    snprintf(docbuf, sizeof docbuf,
             "{'version':1,'global':%s,'sites':%s,%s%s%s'escalation':%s}",
             global ? global : GLOBAL, sites ? sites : SITES,
             services ? "'services':" : "", services ? services : "",
             services ? "," : "", escalation ? escalation : ESC);
    for (char *p = docbuf; *p; p++)
        if (*p == '\'')
            *p = '"';
    return docbuf;
}

static const char *
quoted(const char *text)
{
    snprintf(docbuf, sizeof docbuf, "%s", text);
    for (char *p = docbuf; *p; p++)
        if (*p == '\'')
            *p = '"';
    return docbuf;
}

static void
refused(const char *text, int code, const char *msg, int line)
{
    struct schedule *keep = (struct schedule *)&keep;
    struct schedule *out = keep;
    struct im_err e;
    im_errclear(&e);
    int rv = schedule_parse(text, strlen(text), &out, &e);
    if (rv != code || strncmp(e.msg, msg, strlen(msg)) != 0 || out != keep) {
        fprintf(stderr, "line %d: got %d '%s', want %d '%s...'\n", line, rv,
                e.msg, code, msg);
        test_failed_ = 1;
        if (rv == 0)
            schedule_free(out);
    }
}
#define REFUSED(text, code, msg) refused(text, code, msg, __LINE__)

TEST(valid_minimal)
{
    const char *d = doc(NULL, NULL, NULL, NULL);
    struct schedule *s = parse(d, strlen(d));
    CHECK(s != NULL);
    schedule_free(s);
}

TEST(bad_documents)
{
    REFUSED("", IM_EINVAL, "line 1 column 0: ");
    REFUSED("{", IM_EINVAL, "line 1 column 1: ");
    REFUSED("[]", IM_EINVAL, "expected a JSON object");
    REFUSED(quoted("{'version':1,'version':1}"), IM_EINVAL,
            "line 1 column 22: duplicate object key");
    REFUSED(
        quoted("{'global':" GLOBAL ",'sites':" SITES ",'escalation':" ESC "}"),
        IM_EINVAL, "version: missing");
    REFUSED(quoted("{'version':2}"), IM_EINVAL, "version: expected 1");
    REFUSED(quoted("{'version':1,'extra':1}"), IM_EINVAL, "extra: unknown key");
    REFUSED(quoted("{'version':1,'sites':" SITES ",'escalation':" ESC "}"),
            IM_EINVAL, "global: missing");
    REFUSED(doc("{}", NULL, NULL, NULL), IM_EINVAL, "global.rotation: missing");
    REFUSED(doc("[]", NULL, NULL, NULL), IM_EINVAL,
            "global: expected an object");
    REFUSED(doc("{'rotation':" ROT("UTC") ",'failover':[]}", NULL, NULL, NULL),
            IM_EINVAL, "global.failover: unknown key");
    REFUSED(doc("{'rotation':" ROT("UTC") ",'overrides':{}}", NULL, NULL, NULL),
            IM_EINVAL, "global.overrides: expected a list");

    /* Rotations. */
    REFUSED(doc(NULL,
                "{'AMS':{'rotation':{'people':['ann','bob',''],"
                "'length':'1d','handoff':'09:00','zone':'UTC',"
                "'start':'2026-01-05'}}}",
                NULL, NULL),
            IM_EINVAL, "sites.AMS.rotation.people[2]: empty name");
    REFUSED(doc(NULL, "{'AMS':{'rotation':{'people':[],'length':'1d'}}}", NULL,
                NULL),
            IM_EINVAL, "sites.AMS.rotation.people: empty list");
    REFUSED(doc(NULL, "{'AMS':{'rotation':{'people':['ann',7]}}}", NULL, NULL),
            IM_EINVAL, "sites.AMS.rotation.people[1]: expected a name");
    REFUSED(doc(NULL,
                "{'AMS':{'rotation':{'people':['ann'],'length':'36h',"
                "'handoff':'09:00','zone':'UTC','start':'2026-01-05'}}}",
                NULL, NULL),
            IM_EINVAL,
            "sites.AMS.rotation.length: '36h' is not a whole "
            "number of days");
    REFUSED(doc(NULL, "{'AMS':{'rotation':{'people':['ann'],'length':'0d'}}}",
                NULL, NULL),
            IM_EINVAL, "sites.AMS.rotation.length: '0d' is not a length");
    REFUSED(doc(NULL, "{'AMS':{'rotation':{'people':['ann'],'length':'14w'}}}",
                NULL, NULL),
            IM_EINVAL,
            "sites.AMS.rotation.length: '14w' is longer than 92 "
            "days");
    REFUSED(doc(NULL, "{'AMS':{'rotation':{'people':['ann'],'length':1}}}",
                NULL, NULL),
            IM_EINVAL, "sites.AMS.rotation.length: expected a string");
    REFUSED(doc(NULL,
                "{'AMS':{'rotation':{'people':['ann'],'length':'1d',"
                "'handoff':'9:00'}}}",
                NULL, NULL),
            IM_EINVAL,
            "sites.AMS.rotation.handoff: '9:00' is not a time of "
            "day like 09:00");
    REFUSED(doc(NULL,
                "{'AMS':{'rotation':{'people':['ann'],'length':'1d',"
                "'handoff':'24:00'}}}",
                NULL, NULL),
            IM_EINVAL, "sites.AMS.rotation.handoff: '24:00'");
    REFUSED(doc(NULL,
                "{'AMS':{'rotation':{'people':['ann'],'length':'1d',"
                "'handoff':'09:00','start':'2026-02-30'}}}",
                NULL, NULL),
            IM_EINVAL, "sites.AMS.rotation.start: '2026-02-30' is not a date");
    REFUSED(doc(NULL,
                "{'AMS':{'rotation':{'people':['ann'],'length':'1d',"
                "'handoff':'09:00','start':'1969-12-31'}}}",
                NULL, NULL),
            IM_EINVAL, "sites.AMS.rotation.start: '1969-12-31' is not a date");
    REFUSED(doc(NULL,
                "{'AMS':{'rotation':{'people':['ann'],'length':'1d',"
                "'handoff':'09:00','start':'2026-01-05'}}}",
                NULL, NULL),
            IM_EINVAL, "sites.AMS.rotation.zone: missing");
    REFUSED(doc(NULL, "{'AMS':{'rotation':" ROT("Europe/Amsterdm") "}}", NULL,
                NULL),
            IM_ENOTFOUND,
            "sites.AMS.rotation.zone: unknown time zone "
            "'Europe/Amsterdm' (not in the tz database)");
    REFUSED(doc(NULL, "{'AMS':{'rotation':" ROT("EST5EDT") "}}", NULL, NULL),
            IM_EINVAL,
            "sites.AMS.rotation.zone: time zone 'EST5EDT': not an "
            "IANA zone name");
    REFUSED(doc(NULL, "{'AMS':{'rotation':{'people':['ann'],'colour':1}}}",
                NULL, NULL),
            IM_EINVAL, "sites.AMS.rotation.colour: unknown key");

    /* Overrides. */
    REFUSED(doc(NULL,
                "{'AMS':{'overrides':[{'person':'cy','from':"
                "'2026-01-05T09:00:00Z','until':'2026-01-05T09:00:00Z'"
                "}]}}",
                NULL, NULL),
            IM_EINVAL, "sites.AMS.overrides[0].until: not after from");
    REFUSED(doc(NULL,
                "{'AMS':{'overrides':[{'person':'cy','from':"
                "'yesterday','until':'2026-01-05T09:00:00Z'}]}}",
                NULL, NULL),
            IM_EINVAL,
            "sites.AMS.overrides[0].from: 'yesterday' is not a "
            "time like");
    REFUSED(doc(NULL,
                "{'AMS':{'overrides':[{'person':'cy','from':"
                "'2026-01-05T09:00:00','until':'2026-01-06T09:00:00Z'}]"
                "}}",
                NULL, NULL),
            IM_EINVAL, "sites.AMS.overrides[0].from: '2026-01-05T09:00:00'");
    REFUSED(doc(NULL, "{'AMS':{'overrides':[{'person':' cy'}]}}", NULL, NULL),
            IM_EINVAL,
            "sites.AMS.overrides[0].person: name begins or ends "
            "with a space");
    REFUSED(doc(NULL,
                "{'AMS':{'overrides':[{'person':'cy','from':"
                "'2026-01-05T09:00:00Z'}]}}",
                NULL, NULL),
            IM_EINVAL, "sites.AMS.overrides[0].until: missing");
    REFUSED(doc(NULL, "{'AMS':{'overrides':[7]}}", NULL, NULL), IM_EINVAL,
            "sites.AMS.overrides[0]: expected an object");

    /* Sites and failover orders. */
    REFUSED(doc(NULL, "{}", NULL, NULL), IM_EINVAL, "sites: no sites");
    REFUSED(doc(NULL, "{'ams':{}}", NULL, NULL), IM_EINVAL,
            "sites.ams: not a site code");
    REFUSED(doc(NULL, "{'AMS':[]}", NULL, NULL), IM_EINVAL,
            "sites.AMS: expected an object");
    REFUSED(doc(NULL, "{'AMS':{'failover':['XYZ']}}", NULL, NULL), IM_EINVAL,
            "sites.AMS.failover[0]: unknown site 'XYZ'");
    REFUSED(doc(NULL, "{'AMS':{'failover':['AMS']}}", NULL, NULL), IM_EINVAL,
            "sites.AMS.failover[0]: AMS cannot fail over to itself");
    REFUSED(doc(NULL,
                "{'AMS':{'failover':['NYC',['LON','NYC']]},'NYC':{},"
                "'LON':{}}",
                NULL, NULL),
            IM_EINVAL, "sites.AMS.failover[1][1]: NYC appears twice");
    REFUSED(doc(NULL, "{'AMS':{'failover':[[]]}}", NULL, NULL), IM_EINVAL,
            "sites.AMS.failover[0]: empty tier");
    REFUSED(doc(NULL, "{'AMS':{'failover':'NYC'},'NYC':{}}", NULL, NULL),
            IM_EINVAL, "sites.AMS.failover: expected a list");
    REFUSED(doc(NULL, "{'AMS':{'failover':[['NYC',1]]},'NYC':{}}", NULL, NULL),
            IM_EINVAL, "sites.AMS.failover[0][1]: expected a site code");
    REFUSED(doc(NULL, "{'AMS':{'fallover':[]}}", NULL, NULL), IM_EINVAL,
            "sites.AMS.fallover: unknown key");

    /* Services. */
    REFUSED(doc(NULL, NULL, "{'payments':'XYZ'}", NULL), IM_EINVAL,
            "services.payments: unknown site 'XYZ'");
    REFUSED(doc(NULL, NULL, "{'payments':1}", NULL), IM_EINVAL,
            "services.payments: expected a site code");
    REFUSED(doc(NULL, NULL, "{'':'AMS'}", NULL), IM_EINVAL,
            "services.: service name is required");
    REFUSED(doc(NULL, NULL, "[]", NULL), IM_EINVAL,
            "services: expected an object");

    /* Escalation. */
    REFUSED(doc(NULL, NULL, NULL, "{'levels':[]}"), IM_EINVAL,
            "escalation.levels: empty list");
    REFUSED(doc(NULL, NULL, NULL, "{'repeat':1}"), IM_EINVAL,
            "escalation.levels: missing");
    REFUSED(doc(NULL, NULL, NULL, "{'levels':[{'target':'boss','ack':'5m'}]}"),
            IM_EINVAL, "escalation.levels[0].target: 'boss' is not");
    REFUSED(doc(NULL, NULL, NULL,
                "{'levels':[{'target':'site_manager','ack':'soon'}]}"),
            IM_EINVAL, "escalation.levels[0].ack: 'soon' is not a duration");
    REFUSED(doc(NULL, NULL, NULL,
                "{'levels':[{'target':'site_manager','ack':'4s'}]}"),
            IM_EINVAL, "escalation.levels[0].ack: must be from 5s to 24h");
    REFUSED(doc(NULL, NULL, NULL,
                "{'levels':[{'target':'site_manager','person':'x','ack':'5m'"
                "}]}"),
            IM_EINVAL, "escalation.levels[0].person: only for target");
    REFUSED(
        doc(NULL, NULL, NULL, "{'levels':[{'target':'person','ack':'5m'}]}"),
        IM_EINVAL, "escalation.levels[0].person: empty name");
    REFUSED(doc(NULL, NULL, NULL,
                "{'levels':["
                "{'target':'site_manager',"
                "'ack':'5m'}],'repeat':11}"),
            IM_EINVAL,
            "escalation.repeat: expected a whole number from 0 "
            "to 10");
    REFUSED(doc(NULL, NULL, NULL,
                "{'levels':["
                "{'target':'site_manager',"
                "'ack':'5m'}],'repeat':-1}"),
            IM_EINVAL, "escalation.repeat");
    REFUSED(doc(NULL, NULL, NULL,
                "{'levels':["
                "{'target':'site_manager',"
                "'ack':'5m','note':'x'}]}"),
            IM_EINVAL, "escalation.levels[0].note: unknown key");
}

TEST(limits)
{
    /* 65 sites. */
    static char sites[8192];
    size_t n = 0;
    n += (size_t)snprintf(sites + n, sizeof sites - n, "{");
    for (int i = 0; i <= SITES_MAX; i++)
        n += (size_t)snprintf(sites + n, sizeof sites - n, "%s'S%d':{}",
                              i ? "," : "", i);
    snprintf(sites + n, sizeof sites - n, "}");
    REFUSED(doc(NULL, sites, NULL, NULL), IM_ETOOBIG,
            "sites: more than 64 sites");
    /* 65 people. */
    n = (size_t)snprintf(sites, sizeof sites, "{'AMS':{'rotation':{'people':[");
    for (int i = 0; i <= ROTATION_PEOPLE_MAX; i++)
        n += (size_t)snprintf(sites + n, sizeof sites - n, "%s'p%d'",
                              i ? "," : "", i);
    snprintf(sites + n, sizeof sites - n, "]}}}");
    REFUSED(doc(NULL, sites, NULL, NULL), IM_ETOOBIG,
            "sites.AMS.rotation.people: more than 64 people");
    /* A name one byte too long. */
    char name[PERSON_MAX + 2];
    memset(name, 'x', PERSON_MAX + 1);
    name[PERSON_MAX + 1] = '\0';
    snprintf(sites, sizeof sites, "{'AMS':{'overrides':[{'person':'%s'}]}}",
             name);
    REFUSED(doc(NULL, sites, NULL, NULL), IM_ETOOBIG,
            "sites.AMS.overrides[0].person: name longer than 64 bytes");
    /* The whole text. */
    size_t big = SCHEDULE_TEXT_MAX + 1;
    char *text = malloc(big + 1);
    REQUIRE(text != NULL);
    memset(text, ' ', big);
    text[big] = '\0';
    REFUSED(text, IM_ETOOBIG, "schedule longer than");
    free(text);
}

TEST_MAIN(RUN(example_file); RUN(election_from_the_schedule);
          RUN(ownership_doc_examples); RUN(docs_example_is_valid);
          RUN(round_trip); RUN(valid_minimal); RUN(bad_documents); RUN(limits))
