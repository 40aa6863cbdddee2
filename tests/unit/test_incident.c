/* Unit tests for lib/incident: the priority matrix, the lifecycle, owner
 * fencing, body validation, the fold's independence from arrival order,
 * timeline text and the wire form. */
#include "test.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "incident.h"
#include "text.h"

#define NEW IM__STATE__STATE_NEW
#define ACKED IM__STATE__STATE_ACKNOWLEDGED
#define IN_PROGRESS IM__STATE__STATE_IN_PROGRESS
#define ON_HOLD IM__STATE__STATE_ON_HOLD
#define RESOLVED IM__STATE__STATE_RESOLVED
#define CLOSED IM__STATE__STATE_CLOSED
#define CANCELLED IM__STATE__STATE_CANCELLED
#define NONE IM__STATE__STATE_NONE
#define HIGH IM__LEVEL__LEVEL_HIGH
#define MEDIUM IM__LEVEL__LEVEL_MEDIUM
#define LOW IM__LEVEL__LEVEL_LOW

/* ---- building events -------------------------------------------------- */

/* One event with storage for every body kind. Holds pointers into itself:
 * never copy one by value. */
struct tev {
    Im__Event ev;
    Im__Body body;
    Im__Opened opened;
    Im__Transition tr;
    Im__Note note;
    Im__FieldsSet set;
    Im__Assign assign;
    Im__RoleSet role;
    Im__PublicUpdate update;
    Im__OwnerAssigned owner;
    Im__MajorDeclared major;
    char *affects[AFFECTS_MAX + 1];
};

/* Each new event is one millisecond after the last, so that tests applying
 * events one by one apply them in sort order. */
static uint64_t clock_ms = 1700000000000ULL;
static uint64_t seq_next = 1;

static struct tev *
tev_init(struct tev *t, const char *origin, const char *incident,
         uint64_t token)
{
    memset(t, 0, sizeof *t);
    im__event__init(&t->ev);
    im__body__init(&t->body);
    clock_ms++;
    t->ev.origin = (char *)origin;
    t->ev.seq = seq_next++;
    t->ev.hlc = HLC_MAKE(clock_ms, 0);
    t->ev.incident = (char *)incident;
    t->ev.owner_token = token;
    t->ev.body = &t->body;
    return t;
}

static void
body_opened(struct tev *t, const char *title, const char *service,
            Im__Level impact, Im__Level urgency, int major)
{
    im__opened__init(&t->opened);
    t->opened.title = (char *)title;
    t->opened.service = (char *)service;
    t->opened.impact = impact;
    t->opened.urgency = urgency;
    t->opened.major = major;
    t->body.kind_case = IM__BODY__KIND_OPENED;
    t->body.opened = &t->opened;
}

static void
body_transition(struct tev *t, Im__State to, Im__State from, const char *reason,
                const char *code, const char *notes)
{
    im__transition__init(&t->tr);
    t->tr.to = to;
    t->tr.from = from;
    t->tr.reason = (char *)reason;
    t->tr.code = (char *)code;
    t->tr.notes = (char *)notes;
    t->body.kind_case = IM__BODY__KIND_TRANSITION;
    t->body.transition = &t->tr;
}

static void
body_note(struct tev *t, const char *text)
{
    im__note__init(&t->note);
    t->note.text = (char *)text;
    t->body.kind_case = IM__BODY__KIND_NOTE;
    t->body.note = &t->note;
}

static Im__FieldsSet *
body_set(struct tev *t)
{
    im__fields_set__init(&t->set);
    t->body.kind_case = IM__BODY__KIND_SET;
    t->body.set = &t->set;
    return &t->set;
}

static void
body_assign(struct tev *t, const char *person)
{
    im__assign__init(&t->assign);
    t->assign.person = (char *)person;
    t->body.kind_case = IM__BODY__KIND_ASSIGN;
    t->body.assign = &t->assign;
}

static void
body_role(struct tev *t, Im__Role role, const char *person, int remove)
{
    im__role_set__init(&t->role);
    t->role.role = role;
    t->role.person = (char *)person;
    t->role.remove = remove;
    t->body.kind_case = IM__BODY__KIND_ROLE;
    t->body.role = &t->role;
}

static void
body_update(struct tev *t, const char *text)
{
    im__public_update__init(&t->update);
    t->update.text = (char *)text;
    t->body.kind_case = IM__BODY__KIND_UPDATE;
    t->body.update = &t->update;
}

static void
body_owner(struct tev *t, const char *site, const char *manager, uint64_t token,
           const char *reason)
{
    im__owner_assigned__init(&t->owner);
    t->owner.site = (char *)site;
    t->owner.manager = (char *)manager;
    t->owner.token = token;
    t->owner.reason = (char *)reason;
    t->body.kind_case = IM__BODY__KIND_OWNER;
    t->body.owner = &t->owner;
}

static void
body_major(struct tev *t, int major, const char *reason)
{
    im__major_declared__init(&t->major);
    t->major.major = major;
    t->major.reason = (char *)reason;
    t->major.affects = t->affects;
    t->body.kind_case = IM__BODY__KIND_MAJOR;
    t->body.major = &t->major;
}

/* ---- applying events to one incident ---------------------------------- */

static int
open_incident(struct incident *inc, Im__Level impact, Im__Level urgency,
              int major, struct im_err *e)
{
    struct tev t;

    memset(inc, 0, sizeof *inc);
    tev_init(&t, "AMS", "AMS-1", 0);
    body_opened(&t, "Checkout errors", "checkout", impact, urgency, major);
    return incident_apply(inc, &t.ev, e);
}

/* A transition sent by the current owner, as a node would write it. */
static int
move(struct incident *inc, Im__State to, Im__State from, const char *reason,
     struct im_err *e)
{
    struct tev t;

    tev_init(&t, inc->owner_site, inc->id, inc->owner_token);
    body_transition(&t, to, from, reason, "fixed", "rolled back");
    return incident_apply(inc, &t.ev, e);
}

static int
note_from(struct incident *inc, const char *origin, const char *text,
          struct im_err *e)
{
    struct tev t;

    tev_init(&t, origin, inc->id, 0);
    body_note(&t, text);
    return incident_apply(inc, &t.ev, e);
}

static int
owner_event(struct incident *inc, const char *origin, const char *site,
            const char *manager, uint64_t token, struct im_err *e)
{
    struct tev t;

    tev_init(&t, origin, inc->id, 0);
    body_owner(&t, site, manager, token, "site down");
    return incident_apply(inc, &t.ev, e);
}

static int
role_event(struct incident *inc, Im__Role role, const char *person, int remove,
           struct im_err *e)
{
    struct tev t;

    tev_init(&t, "NYC", inc->id, 0);
    body_role(&t, role, person, remove);
    return incident_apply(inc, &t.ev, e);
}

static int
major_event(struct incident *inc, int major, struct im_err *e)
{
    struct tev t;

    tev_init(&t, "NYC", inc->id, 0);
    body_major(&t, major, "customer impact");
    return incident_apply(inc, &t.ev, e);
}

/* The shortest legal path from new, applied by the owner. */
static int
drive(struct incident *inc, Im__State to, struct im_err *e)
{
    static const Im__State paths[8][4] = {
        [NEW] = {0},
        [ACKED] = {ACKED},
        [IN_PROGRESS] = {ACKED, IN_PROGRESS},
        [ON_HOLD] = {ACKED, IN_PROGRESS, ON_HOLD},
        [RESOLVED] = {ACKED, IN_PROGRESS, RESOLVED},
        [CLOSED] = {ACKED, IN_PROGRESS, RESOLVED, CLOSED},
        [CANCELLED] = {CANCELLED},
    };
    int rv;

    for (int i = 0; i < 4 && paths[to][i] != NONE; i++)
        if ((rv = move(inc, paths[to][i], NONE, "because", e)) != 0)
            return rv;
    return inc->state == to ? 0 : IM_ESTATE;
}

/* Two incidents equal but for the bookkeeping every event touches. */
static int
same_except_bookkeeping(const struct incident *a, const struct incident *b)
{
    static struct incident x, y;

    memcpy(&x, a, sizeof x);
    memcpy(&y, b, sizeof y);
    x.events_count = y.events_count = 0;
    x.last_hlc = y.last_hlc = 0;
    x.last_seq = y.last_seq = 0;
    memset(x.last_origin, 0, sizeof x.last_origin);
    memset(y.last_origin, 0, sizeof y.last_origin);
    return memcmp(&x, &y, sizeof x) == 0;
}

/* ---- priority and names ----------------------------------------------- */

TEST(priority_matrix)
{
    static const int expect[3][3] = {{1, 2, 3}, {2, 3, 4}, {3, 4, 5}};

    for (int i = 1; i <= 3; i++)
        for (int u = 1; u <= 3; u++)
            CHECK_EQ_INT(incident_priority((Im__Level)i, (Im__Level)u),
                         expect[i - 1][u - 1]);
    CHECK_EQ_INT(incident_priority(HIGH, HIGH), 1);
    CHECK_EQ_INT(incident_priority(LOW, LOW), 5);
    CHECK_EQ_INT(incident_priority(IM__LEVEL__LEVEL_NONE, HIGH), 0);
    CHECK_EQ_INT(incident_priority(HIGH, IM__LEVEL__LEVEL_NONE), 0);
    CHECK_EQ_INT(incident_priority((Im__Level)4, HIGH), 0);
    CHECK_EQ_INT(incident_priority(HIGH, (Im__Level)4), 0);
    CHECK_EQ_INT(incident_priority((Im__Level)-1, MEDIUM), 0);
}

TEST(names)
{
    Im__State s;
    Im__Level l;
    Im__Role r;
    int p;

    for (int i = 1; i <= 7; i++) {
        CHECK(incident_state_parse(incident_state_name((Im__State)i), &s) == 0);
        CHECK_EQ_INT(s, i);
    }
    CHECK_EQ_STR(incident_state_name(ON_HOLD), "on_hold");
    CHECK_EQ_STR(incident_state_name(NONE), "none");
    CHECK_EQ_STR(incident_state_name((Im__State)8), "unknown");
    CHECK(incident_state_parse("in-progress", &s) == 0 && s == IN_PROGRESS);
    CHECK(incident_state_parse("on-hold", &s) == 0 && s == ON_HOLD);
    CHECK(incident_state_parse("none", &s) == IM_EINVAL);
    CHECK(incident_state_parse("Closed", &s) == IM_EINVAL);
    CHECK(incident_state_parse("", &s) == IM_EINVAL);
    CHECK(incident_level_parse("medium", &l) == 0 && l == MEDIUM);
    CHECK(incident_level_parse("critical", &l) == IM_EINVAL);
    CHECK_EQ_STR(incident_level_name(LOW), "low");
    CHECK_EQ_STR(incident_level_name(IM__LEVEL__LEVEL_NONE), "none");
    CHECK(incident_role_parse("sme", &r) == 0 && r == IM__ROLE__ROLE_SME);
    CHECK(incident_role_parse("comms", &r) == 0 && r == IM__ROLE__ROLE_COMMS);
    CHECK(incident_role_parse("none", &r) == IM_EINVAL);
    CHECK_EQ_STR(incident_role_name(IM__ROLE__ROLE_COMMANDER), "commander");
    CHECK(incident_priority_parse("P1", &p) == 0 && p == 1);
    CHECK(incident_priority_parse("P5", &p) == 0 && p == 5);
    CHECK(incident_priority_parse("P0", &p) == IM_EINVAL);
    CHECK(incident_priority_parse("P6", &p) == IM_EINVAL);
    CHECK(incident_priority_parse("P12", &p) == IM_EINVAL);
    CHECK(incident_priority_parse("1", &p) == IM_EINVAL);
}

/* ---- lifecycle -------------------------------------------------------- */

/* Written out by hand from DESIGN.md §3, not derived from the code. */
static const int legal[8][8] = {
    [NEW] = {[ACKED] = 1, [CANCELLED] = 1},
    [ACKED] = {[IN_PROGRESS] = 1, [CANCELLED] = 1},
    [IN_PROGRESS] = {[ON_HOLD] = 1, [RESOLVED] = 1, [CANCELLED] = 1},
    [ON_HOLD] = {[IN_PROGRESS] = 1, [CANCELLED] = 1},
    [RESOLVED] = {[IN_PROGRESS] = 1, [CLOSED] = 1},
};
static const char *const allowed_text[8] = {
    [NEW] = "from new you can: ack, cancel",
    [ACKED] = "from acknowledged you can: start, cancel",
    [IN_PROGRESS] = "from in_progress you can: hold, resolve, cancel",
    [ON_HOLD] = "from on_hold you can: start, cancel",
    [RESOLVED] = "from resolved you can: reopen, close",
    [CLOSED] = "closed is final",
    [CANCELLED] = "cancelled is final",
};

TEST(transitions_all_pairs)
{
    struct incident inc, before;
    struct im_err e;
    char buf[128];

    for (int from = 1; from <= 7; from++) {
        incident_transitions_describe((Im__State)from, buf, sizeof buf);
        CHECK_EQ_STR(buf, allowed_text[from]);
        for (int to = 1; to <= 7; to++) {
            int rv;

            REQUIRE(open_incident(&inc, HIGH, MEDIUM, 0, &e) == 0);
            REQUIRE(drive(&inc, (Im__State)from, &e) == 0);
            CHECK_EQ_INT(
                incident_transition_allowed((Im__State)from, (Im__State)to),
                legal[from][to]);
            memcpy(&before, &inc, sizeof inc);
            rv = move(&inc, (Im__State)to, NONE, "because", &e);
            if (legal[from][to]) {
                if (rv != 0)
                    fprintf(stderr, "%d -> %d: %s\n", from, to, e.msg);
                CHECK_EQ_INT(rv, 0);
                CHECK_EQ_INT(inc.state, to);
                CHECK(inc.events_count == before.events_count + 1);
                continue;
            }
            CHECK_EQ_INT(rv, IM_ESTATE);
            CHECK_EQ_INT(e.code, IM_ESTATE);
            CHECK(same_except_bookkeeping(&inc, &before));
            CHECK(inc.events_count == before.events_count + 1);
            CHECK(strstr(e.msg, allowed_text[from]) != NULL);
            if (strstr(e.msg, allowed_text[from]) == NULL)
                fprintf(stderr, "%d -> %d: %s\n", from, to, e.msg);
        }
    }
    REQUIRE(open_incident(&inc, HIGH, MEDIUM, 0, &e) == 0);
    REQUIRE(drive(&inc, ACKED, &e) == 0);
    CHECK(move(&inc, RESOLVED, NONE, "", &e) == IM_ESTATE);
    CHECK_EQ_STR(e.msg, "cannot resolve AMS-1: it is acknowledged; from "
                        "acknowledged you can: start, cancel");
    CHECK(move(&inc, NEW, NONE, "", &e) == IM_ESTATE);
    CHECK_EQ_STR(e.msg, "cannot move AMS-1 to new: it is acknowledged; from "
                        "acknowledged you can: start, cancel");
    REQUIRE(open_incident(&inc, HIGH, MEDIUM, 0, &e) == 0);
    REQUIRE(drive(&inc, CLOSED, &e) == 0);
    CHECK(move(&inc, IN_PROGRESS, NONE, "again", &e) == IM_ESTATE);
    CHECK_EQ_STR(e.msg, "AMS-1 is closed; closed is final");

    CHECK_EQ_STR(incident_transition_verb(RESOLVED, IN_PROGRESS), "reopen");
    CHECK_EQ_STR(incident_transition_verb(ON_HOLD, IN_PROGRESS), "start");
    CHECK_EQ_STR(incident_transition_verb(NEW, ACKED), "ack");
    CHECK(incident_transition_verb(ACKED, NEW) == NULL);
    CHECK(!incident_transition_allowed(NONE, NEW));
    CHECK(!incident_transition_allowed(NEW, NONE));
}

TEST(transition_requirements_and_times)
{
    struct incident inc;
    struct tev t;
    struct im_err e;
    uint64_t ack_ms, resolved_ms;

    REQUIRE(open_incident(&inc, HIGH, MEDIUM, 0, &e) == 0);
    CHECK(inc.opened_at_ms == clock_ms);
    CHECK(inc.updated_at_ms == clock_ms);
    CHECK(inc.acknowledged_at_ms == 0);
    REQUIRE(move(&inc, ACKED, NONE, "", &e) == 0);
    ack_ms = clock_ms;
    CHECK(inc.acknowledged_at_ms == ack_ms);
    REQUIRE(move(&inc, IN_PROGRESS, NONE, "", &e) == 0);

    /* Hold and cancel need a reason; resolve needs a code and notes. */
    tev_init(&t, "AMS", "AMS-1", 0);
    body_transition(&t, ON_HOLD, NONE, "  ", "", "");
    CHECK(incident_body_check(&t.body, &e) == IM_EINVAL);
    CHECK_EQ_STR(e.msg, "reason is required");
    CHECK(incident_apply(&inc, &t.ev, &e) == IM_EINVAL);
    CHECK(inc.state == IN_PROGRESS);
    body_transition(&t, CANCELLED, NONE, "", "", "");
    CHECK(incident_body_check(&t.body, &e) == IM_EINVAL);
    body_transition(&t, RESOLVED, NONE, "", "", "notes");
    CHECK(incident_body_check(&t.body, &e) == IM_EINVAL);
    CHECK_EQ_STR(e.msg, "resolution code is required");
    body_transition(&t, RESOLVED, NONE, "", "fixed", "");
    CHECK(incident_body_check(&t.body, &e) == IM_EINVAL);
    CHECK_EQ_STR(e.msg, "resolution notes is required");
    body_transition(&t, RESOLVED, NONE, "", "fixed", "rolled back");
    CHECK(incident_body_check(&t.body, &e) == 0);
    body_transition(&t, ACKED, NONE, "", "", "");
    CHECK(incident_body_check(&t.body, &e) == 0);

    REQUIRE(move(&inc, ON_HOLD, NONE, "waiting for vendor", &e) == 0);
    REQUIRE(move(&inc, IN_PROGRESS, NONE, "", &e) == 0);
    REQUIRE(move(&inc, RESOLVED, NONE, "", &e) == 0);
    resolved_ms = clock_ms;
    CHECK(inc.resolved_at_ms == resolved_ms);
    CHECK_EQ_STR(inc.resolution_code, "fixed");
    CHECK_EQ_STR(inc.resolution_notes, "rolled back");

    /* Reopen needs a reason, counts, and forgets the resolution. */
    CHECK(move(&inc, IN_PROGRESS, RESOLVED, " ", &e) == IM_EINVAL);
    CHECK_EQ_STR(e.msg, "reopening AMS-1 needs a reason");
    CHECK(inc.state == RESOLVED);
    CHECK(inc.resolved_at_ms == resolved_ms);
    REQUIRE(move(&inc, IN_PROGRESS, RESOLVED, "errors came back", &e) == 0);
    CHECK(inc.reopen_count == 1);
    CHECK(inc.resolved_at_ms == 0);
    CHECK_EQ_STR(inc.resolution_code, "");
    CHECK_EQ_STR(inc.resolution_notes, "");
    CHECK(inc.acknowledged_at_ms == ack_ms);
    /* A reopen without `from` is still a reopen. */
    REQUIRE(move(&inc, RESOLVED, NONE, "", &e) == 0);
    REQUIRE(move(&inc, IN_PROGRESS, NONE, "still broken", &e) == 0);
    CHECK(inc.reopen_count == 2);
    REQUIRE(move(&inc, RESOLVED, NONE, "", &e) == 0);
    REQUIRE(move(&inc, CLOSED, NONE, "", &e) == 0);
    CHECK(inc.closed_at_ms == clock_ms);
    CHECK(inc.updated_at_ms == clock_ms);
    CHECK(inc.cancelled_at_ms == 0);

    REQUIRE(open_incident(&inc, HIGH, MEDIUM, 0, &e) == 0);
    REQUIRE(move(&inc, CANCELLED, NONE, "duplicate of AMS-3", &e) == 0);
    CHECK(inc.cancelled_at_ms == clock_ms);
    CHECK(inc.closed_at_ms == 0);
}

TEST(transition_compare_and_set)
{
    struct incident inc, before;
    struct im_err e;

    REQUIRE(open_incident(&inc, HIGH, MEDIUM, 0, &e) == 0);
    REQUIRE(drive(&inc, ON_HOLD, &e) == 0);
    memcpy(&before, &inc, sizeof inc);
    /* imctl reopen on an incident someone put on hold meanwhile. */
    CHECK(move(&inc, IN_PROGRESS, RESOLVED, "errors came back", &e) ==
          IM_ESTATE);
    CHECK_EQ_STR(e.msg, "AMS-1 is on_hold, not resolved");
    CHECK(same_except_bookkeeping(&inc, &before));
    /* The expected state matches but the move is still illegal. */
    CHECK(move(&inc, RESOLVED, ON_HOLD, "", &e) == IM_ESTATE);
    CHECK(strstr(e.msg, "from on_hold you can: start, cancel") != NULL);
    CHECK(move(&inc, IN_PROGRESS, ON_HOLD, "", &e) == 0);
    CHECK(inc.state == IN_PROGRESS);
    CHECK(inc.reopen_count == 0);
    REQUIRE(move(&inc, ON_HOLD, NONE, "x", &e) == 0);
    REQUIRE(move(&inc, IN_PROGRESS, NONE, "", &e) == 0);
    REQUIRE(move(&inc, RESOLVED, NONE, "", &e) == 0);
    REQUIRE(move(&inc, CLOSED, NONE, "", &e) == 0);
    CHECK(move(&inc, IN_PROGRESS, RESOLVED, "again", &e) == IM_ESTATE);
    CHECK_EQ_STR(e.msg, "AMS-1 is closed, not resolved");
}

/* ---- opening ---------------------------------------------------------- */

TEST(opened_rules)
{
    static const char *const bad_ids[] = {
        "NYC-1",
        "AMS-0",
        "AMS-01",
        "AMS-",
        "AMS-1x",
        "AMS1",
        "AMS--1",
        "AMS-+1",
        "AMS-18446744073709551616",
        "AMS-99999999999999999999",
        "",
        "ams-1",
    };
    struct incident inc;
    struct tev t;
    struct im_err e;

    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        memset(&inc, 0, sizeof inc);
        tev_init(&t, "AMS", bad_ids[i], 0);
        body_opened(&t, "t", "s", HIGH, HIGH, 0);
        CHECK(incident_apply(&inc, &t.ev, &e) == IM_EINVAL);
        CHECK_EQ_STR(inc.id, "");
        CHECK(inc.events_count == 1);
    }
    memset(&inc, 0, sizeof inc);
    tev_init(&t, "AMS", "AMS-18446744073709551615", 0);
    body_opened(&t, "t", "s", HIGH, HIGH, 0);
    CHECK(incident_apply(&inc, &t.ev, &e) == 0);

    /* Nothing before the opening. */
    memset(&inc, 0, sizeof inc);
    tev_init(&t, "AMS", "AMS-7", 0);
    body_note(&t, "early");
    CHECK(incident_apply(&inc, &t.ev, &e) == IM_EINVAL);
    CHECK_EQ_STR(inc.id, "");
    tev_init(&t, "AMS", "AMS-7", 0);
    body_opened(&t, "Checkout errors", "checkout", LOW, MEDIUM, 0);
    REQUIRE(incident_apply(&inc, &t.ev, &e) == 0);
    CHECK_EQ_STR(inc.id, "AMS-7");
    CHECK_EQ_STR(inc.title, "Checkout errors");
    CHECK_EQ_STR(inc.service, "checkout");
    CHECK_EQ_STR(inc.origin_site, "AMS");
    CHECK_EQ_STR(inc.owner_site, "AMS");
    CHECK(inc.owner_token == 0);
    CHECK(inc.owner_provisional == 1);
    CHECK(inc.state == NEW);
    CHECK(inc.priority == 4);
    CHECK(!inc.major && !inc.declared_major);
    CHECK(inc.events_count == 2);

    tev_init(&t, "AMS", "AMS-7", 0);
    body_opened(&t, "again", "checkout", LOW, MEDIUM, 0);
    CHECK(incident_apply(&inc, &t.ev, &e) == IM_EINVAL);
    CHECK_EQ_STR(e.msg, "AMS-7 was already opened");
    CHECK_EQ_STR(inc.title, "Checkout errors");
    tev_init(&t, "AMS", "AMS-8", 0);
    body_note(&t, "wrong incident");
    CHECK(incident_apply(&inc, &t.ev, &e) == IM_EINVAL);

    /* P1 is major by itself; a declaration makes any priority major. */
    REQUIRE(open_incident(&inc, HIGH, HIGH, 0, &e) == 0);
    CHECK(inc.priority == 1 && inc.major && !inc.declared_major);
    REQUIRE(open_incident(&inc, MEDIUM, MEDIUM, 1, &e) == 0);
    CHECK(inc.priority == 3 && inc.major && inc.declared_major);
}

/* ---- owner fencing ---------------------------------------------------- */

TEST(owner_fencing)
{
    struct incident inc, before;
    struct tev t;
    struct im_err e;

    REQUIRE(open_incident(&inc, HIGH, MEDIUM, 0, &e) == 0);
    /* Before any coordinator decision the origin owns it under token 0. */
    tev_init(&t, "NYC", "AMS-1", 0);
    body_transition(&t, ACKED, NONE, "", "", "");
    memcpy(&before, &inc, sizeof inc);
    CHECK(incident_apply(&inc, &t.ev, &e) == IM_ESTALE);
    CHECK_EQ_STR(e.msg,
                 "stale owner token 0 from NYC: AMS-1 is owned by AMS under "
                 "token 0");
    CHECK(same_except_bookkeeping(&inc, &before));

    CHECK(owner_event(&inc, "NYC", "SGP", "carol", 5, &e) == 0);
    CHECK_EQ_STR(inc.owner_site, "SGP");
    CHECK_EQ_STR(inc.owner_manager, "carol");
    CHECK_EQ_STR(inc.manager, "carol");
    CHECK(inc.owner_token == 5);
    CHECK(inc.owner_provisional == 0);

    /* The old owner's actions no longer take effect. */
    memcpy(&before, &inc, sizeof inc);
    tev_init(&t, "AMS", "AMS-1", 0);
    body_transition(&t, ACKED, NONE, "", "", "");
    CHECK(incident_apply(&inc, &t.ev, &e) == IM_ESTALE);
    CHECK_EQ_STR(e.msg,
                 "stale owner token 0 from AMS: AMS-1 is owned by SGP under "
                 "token 5");
    tev_init(&t, "SGP", "AMS-1", 3);
    body_transition(&t, ACKED, NONE, "", "", "");
    CHECK(incident_apply(&inc, &t.ev, &e) == IM_ESTALE);
    tev_init(&t, "NYC", "AMS-1", 5);
    body_assign(&t, "bob");
    CHECK(incident_apply(&inc, &t.ev, &e) == IM_ESTALE);
    tev_init(&t, "AMS", "AMS-1", 0);
    body_update(&t, "we are on it");
    CHECK(incident_apply(&inc, &t.ev, &e) == IM_ESTALE);
    CHECK(same_except_bookkeeping(&inc, &before));

    /* The new owner's do. */
    tev_init(&t, "SGP", "AMS-1", 5);
    body_transition(&t, ACKED, NONE, "", "", "");
    CHECK(incident_apply(&inc, &t.ev, &e) == 0);
    CHECK(inc.state == ACKED);
    tev_init(&t, "SGP", "AMS-1", 5);
    body_update(&t, "we are on it");
    CHECK(incident_apply(&inc, &t.ev, &e) == 0);
    CHECK_EQ_STR(inc.last_public_update, "we are on it");
    CHECK(inc.last_public_update_at_ms == clock_ms);
    CHECK(inc.state == ACKED);
    tev_init(&t, "SGP", "AMS-1", 5);
    body_assign(&t, "bob");
    CHECK(incident_apply(&inc, &t.ev, &e) == 0);
    CHECK_EQ_STR(inc.assignee, "bob");

    /* Notes, roles, edits and the major flag come from any site. */
    CHECK(note_from(&inc, "AMS", "seen from Amsterdam", &e) == 0);
    CHECK(note_from(&inc, "NYC", "seen from New York", &e) == 0);
    CHECK(role_event(&inc, IM__ROLE__ROLE_COMMS, "dana", 0, &e) == 0);
    CHECK(major_event(&inc, 1, &e) == 0);
    tev_init(&t, "AMS", "AMS-1", 0);
    body_set(&t)->title = "Checkout down";
    CHECK(incident_apply(&inc, &t.ev, &e) == 0);

    /* The same assignment recorded again by another site is accepted and
     * changes nothing; anything else at or below the token is stale. */
    memcpy(&before, &inc, sizeof inc);
    CHECK(owner_event(&inc, "AMS", "SGP", "carol", 5, &e) == 0);
    CHECK(inc.updated_at_ms == clock_ms);
    before.updated_at_ms = inc.updated_at_ms;
    CHECK(same_except_bookkeeping(&inc, &before));
    CHECK(owner_event(&inc, "AMS", "NYC", "carol", 5, &e) == IM_ESTALE);
    CHECK(owner_event(&inc, "AMS", "SGP", "erin", 5, &e) == IM_ESTALE);
    CHECK(owner_event(&inc, "AMS", "NYC", "erin", 4, &e) == IM_ESTALE);
    CHECK_EQ_STR(e.msg,
                 "stale owner token 4 for NYC: AMS-1 is owned by SGP under "
                 "token 5");
    CHECK(same_except_bookkeeping(&inc, &before));
    CHECK(owner_event(&inc, "AMS", "NYC", "", 7, &e) == 0);
    CHECK_EQ_STR(inc.owner_site, "NYC");
    CHECK_EQ_STR(inc.manager, "");
    tev_init(&t, "SGP", "AMS-1", 5);
    body_transition(&t, IN_PROGRESS, NONE, "", "", "");
    CHECK(incident_apply(&inc, &t.ev, &e) == IM_ESTALE);
    tev_init(&t, "NYC", "AMS-1", 7);
    body_transition(&t, IN_PROGRESS, NONE, "", "", "");
    CHECK(incident_apply(&inc, &t.ev, &e) == 0);
}

/* ---- major, set, roles ------------------------------------------------ */

static int
set_levels(struct incident *inc, Im__Level impact, Im__Level urgency,
           struct im_err *e)
{
    struct tev t;
    Im__FieldsSet *s;

    tev_init(&t, "NYC", inc->id, 0);
    s = body_set(&t);
    s->impact = impact;
    s->urgency = urgency;
    return incident_apply(inc, &t.ev, e);
}

TEST(major_rules)
{
    struct incident inc;
    struct im_err e;

    REQUIRE(open_incident(&inc, HIGH, HIGH, 0, &e) == 0);
    CHECK(major_event(&inc, 0, &e) == IM_ESTATE);
    CHECK(inc.major);
    CHECK(set_levels(&inc, MEDIUM, IM__LEVEL__LEVEL_NONE, &e) == 0);
    CHECK(inc.priority == 2 && !inc.major);
    CHECK(inc.urgency == HIGH);
    CHECK(major_event(&inc, 1, &e) == 0);
    CHECK(inc.major && inc.declared_major);
    CHECK(set_levels(&inc, HIGH, IM__LEVEL__LEVEL_NONE, &e) == 0);
    CHECK(inc.priority == 1 && inc.major);
    CHECK(set_levels(&inc, LOW, LOW, &e) == 0);
    CHECK(inc.priority == 5 && inc.major && inc.declared_major);
    CHECK(major_event(&inc, 0, &e) == 0);
    CHECK(!inc.major && !inc.declared_major);
    /* Major events are still recorded after the end. */
    REQUIRE(drive(&inc, CLOSED, &e) == 0);
    CHECK(major_event(&inc, 1, &e) == 0);
}

TEST(set_rules)
{
    struct incident inc, before;
    struct tev t;
    Im__FieldsSet *s;
    struct im_err e;

    REQUIRE(open_incident(&inc, HIGH, MEDIUM, 0, &e) == 0);
    tev_init(&t, "NYC", "AMS-1", 0);
    body_set(&t);
    CHECK(incident_apply(&inc, &t.ev, &e) == IM_EINVAL);
    CHECK_EQ_STR(e.msg, "nothing to change: AMS-1 already has these values");
    tev_init(&t, "NYC", "AMS-1", 0);
    s = body_set(&t);
    s->title = "Checkout errors";
    s->impact = HIGH;
    CHECK(incident_apply(&inc, &t.ev, &e) == IM_EINVAL);

    tev_init(&t, "NYC", "AMS-1", 0);
    s = body_set(&t);
    s->subcategory = "disk";
    memcpy(&before, &inc, sizeof inc);
    CHECK(incident_apply(&inc, &t.ev, &e) == IM_EINVAL);
    CHECK_EQ_STR(e.msg, "subcategory needs a category: AMS-1 has none");
    CHECK(same_except_bookkeeping(&inc, &before));

    tev_init(&t, "NYC", "AMS-1", 0);
    s = body_set(&t);
    s->category = "hardware";
    s->subcategory = "disk";
    s->description = "line one\nline two";
    s->service = "payments";
    CHECK(incident_apply(&inc, &t.ev, &e) == 0);
    CHECK_EQ_STR(inc.category, "hardware");
    CHECK_EQ_STR(inc.subcategory, "disk");
    CHECK_EQ_STR(inc.service, "payments");
    CHECK_EQ_STR(inc.title, "Checkout errors");
    tev_init(&t, "NYC", "AMS-1", 0);
    body_set(&t)->subcategory = "memory";
    CHECK(incident_apply(&inc, &t.ev, &e) == 0);
    CHECK_EQ_STR(inc.subcategory, "memory");
    /* A new category drops the old category's subcategory. */
    tev_init(&t, "NYC", "AMS-1", 0);
    body_set(&t)->category = "network";
    CHECK(incident_apply(&inc, &t.ev, &e) == 0);
    CHECK_EQ_STR(inc.category, "network");
    CHECK_EQ_STR(inc.subcategory, "");
    /* A shorter value leaves no trace of the longer one. */
    tev_init(&t, "NYC", "AMS-1", 0);
    body_set(&t)->title = "Down";
    CHECK(incident_apply(&inc, &t.ev, &e) == 0);
    CHECK(memcmp(inc.title, "Down\0\0\0\0", 8) == 0);

    REQUIRE(drive(&inc, RESOLVED, &e) == 0);
    CHECK(set_levels(&inc, LOW, IM__LEVEL__LEVEL_NONE, &e) == 0);
    REQUIRE(move(&inc, CLOSED, NONE, "", &e) == 0);
    CHECK(set_levels(&inc, HIGH, IM__LEVEL__LEVEL_NONE, &e) == IM_ESTATE);
    CHECK_EQ_STR(e.msg, "cannot change AMS-1: it is closed");
}

TEST(roles_and_closed_incidents)
{
    static const char *const people[SMES_MAX + 1] = {
        "p0", "p1",  "p2",  "p3",  "p4",  "p5",  "p6",  "p7",  "p8",
        "p9", "p10", "p11", "p12", "p13", "p14", "p15", "p16",
    };
    struct incident inc;
    struct tev t;
    struct im_err e;

    REQUIRE(open_incident(&inc, HIGH, MEDIUM, 0, &e) == 0);
    CHECK(role_event(&inc, IM__ROLE__ROLE_MANAGER, "mia", 0, &e) == 0);
    CHECK(role_event(&inc, IM__ROLE__ROLE_COMMANDER, "alice", 0, &e) == 0);
    CHECK(role_event(&inc, IM__ROLE__ROLE_COMMS, "carl", 0, &e) == 0);
    CHECK(role_event(&inc, IM__ROLE__ROLE_OPS, "olga", 0, &e) == 0);
    CHECK_EQ_STR(inc.manager, "mia");
    CHECK_EQ_STR(inc.commander, "alice");
    CHECK_EQ_STR(inc.comms, "carl");
    CHECK_EQ_STR(inc.ops, "olga");
    CHECK(role_event(&inc, IM__ROLE__ROLE_COMMANDER, "", 0, &e) == 0);
    CHECK_EQ_STR(inc.commander, "");

    for (int i = 0; i < SMES_MAX; i++)
        CHECK(role_event(&inc, IM__ROLE__ROLE_SME, people[i], 0, &e) == 0);
    CHECK(inc.smes_count == SMES_MAX);
    CHECK(role_event(&inc, IM__ROLE__ROLE_SME, people[SMES_MAX], 0, &e) ==
          IM_ETOOBIG);
    CHECK(role_event(&inc, IM__ROLE__ROLE_SME, "p3", 0, &e) == IM_EINVAL);
    CHECK_EQ_STR(e.msg, "p3 is already an SME on AMS-1");
    CHECK(role_event(&inc, IM__ROLE__ROLE_SME, "p3", 1, &e) == 0);
    CHECK(inc.smes_count == SMES_MAX - 1);
    CHECK_EQ_STR(inc.smes[2], "p2");
    CHECK_EQ_STR(inc.smes[3], "p4");
    CHECK_EQ_STR(inc.smes[SMES_MAX - 2], "p15");
    CHECK(inc.smes[SMES_MAX - 1][0] == '\0');
    CHECK(role_event(&inc, IM__ROLE__ROLE_SME, "p3", 1, &e) == IM_ENOTFOUND);
    CHECK_EQ_STR(e.msg, "p3 is not an SME on AMS-1");
    CHECK(role_event(&inc, IM__ROLE__ROLE_SME, "p16", 0, &e) == 0);
    CHECK_EQ_STR(inc.smes[SMES_MAX - 1], "p16");

    /* After the end: notes, owner and major only. */
    REQUIRE(move(&inc, CANCELLED, NONE, "duplicate", &e) == 0);
    CHECK(note_from(&inc, "SGP", "post-mortem on Monday", &e) == 0);
    CHECK(inc.updated_at_ms == clock_ms);
    CHECK(role_event(&inc, IM__ROLE__ROLE_OPS, "x", 0, &e) == IM_ESTATE);
    CHECK_EQ_STR(e.msg, "cannot set roles on AMS-1: it is cancelled");
    tev_init(&t, "AMS", "AMS-1", 0);
    body_assign(&t, "bob");
    CHECK(incident_apply(&inc, &t.ev, &e) == IM_ESTATE);
    CHECK_EQ_STR(e.msg, "cannot assign AMS-1: it is cancelled");
    tev_init(&t, "AMS", "AMS-1", 0);
    body_update(&t, "all good");
    CHECK(incident_apply(&inc, &t.ev, &e) == IM_ESTATE);
    CHECK(move(&inc, ACKED, NONE, "", &e) == IM_ESTATE);
    CHECK_EQ_STR(e.msg, "AMS-1 is cancelled; cancelled is final");
    CHECK(owner_event(&inc, "AMS", "NYC", "nina", 2, &e) == 0);
    CHECK(major_event(&inc, 1, &e) == 0);
}

TEST(bookkeeping_and_limits)
{
    struct incident inc;
    struct tev t;
    struct im_err e;

    REQUIRE(open_incident(&inc, HIGH, MEDIUM, 0, &e) == 0);
    CHECK(inc.events_count == 1);
    tev_init(&t, "SGP", "AMS-1", 0);
    t.ev.seq = 77;
    body_note(&t, "");
    CHECK(incident_apply(&inc, &t.ev, &e) == IM_EINVAL);
    CHECK(inc.events_count == 2);
    CHECK(inc.last_hlc == t.ev.hlc);
    CHECK_EQ_STR(inc.last_origin, "SGP");
    CHECK(inc.last_seq == 77);
    CHECK(incident_event_after_last(&inc, &t.ev) == 0);
    CHECK(note_from(&inc, "NYC", "fine", &e) == 0);
    CHECK(e.code == 0 && e.msg[0] == '\0');
    CHECK(inc.events_count == 3);

    inc.events_count = INCIDENT_EVENTS_MAX;
    CHECK(note_from(&inc, "NYC", "one too many", &e) == IM_ETOOBIG);
    CHECK_EQ_STR(e.msg, "AMS-1 already holds 100000 events, the most one "
                        "incident may hold");
    CHECK(inc.events_count == INCIDENT_EVENTS_MAX + 1);
}

/* Applying out of sort order is a bug in the caller: it must crash, not
 * quietly build a state another replica would not. */
static struct incident abort_inc;

static void
apply_earlier(void)
{
    struct tev t;
    struct im_err e;

    tev_init(&t, "AMS", "AMS-1", 0);
    t.ev.hlc = abort_inc.last_hlc - 1;
    body_note(&t, "late");
    incident_apply(&abort_inc, &t.ev, &e);
}

static void
apply_same_key(void)
{
    struct tev t;
    struct im_err e;

    tev_init(&t, "AMS", "AMS-1", 0);
    t.ev.hlc = abort_inc.last_hlc;
    t.ev.seq = abort_inc.last_seq;
    body_note(&t, "again");
    incident_apply(&abort_inc, &t.ev, &e);
}

static int
aborts(void (*fn)(void))
{
    pid_t pid;
    int status;

    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0)
            dup2(fd, 2);
        fn();
        _exit(0);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return 0;
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

TEST(sort_order_asserted)
{
    struct im_err e;
    struct tev t;

    REQUIRE(open_incident(&abort_inc, HIGH, MEDIUM, 0, &e) == 0);
    CHECK(aborts(apply_earlier));
    CHECK(aborts(apply_same_key));
    /* Same HLC, later origin: in order. */
    tev_init(&t, "NYC", "AMS-1", 0);
    t.ev.hlc = abort_inc.last_hlc;
    body_note(&t, "tie");
    CHECK(incident_event_after_last(&abort_inc, &t.ev) == 1);
    t.ev.origin = "AAA";
    CHECK(incident_event_after_last(&abort_inc, &t.ev) == 0);
    t.ev.origin = "NYC";
    CHECK(incident_apply(&abort_inc, &t.ev, &e) == 0);
}

/* ---- body validation -------------------------------------------------- */

static char long_text[8192];

/* A string of n bytes of 'x' (n < sizeof long_text), valid until the next
 * call with a different n. */
static const char *
x_times(size_t n)
{
    memset(long_text, 'x', n);
    long_text[n] = '\0';
    return long_text;
}

static void
expect(const struct tev *t, int line, int code, const char *msg)
{
    struct im_err e;
    int rv;

    im_errclear(&e);
    rv = incident_body_check(&t->body, &e);
    if (rv != code || (msg != NULL && strstr(e.msg, msg) == NULL)) {
        fprintf(stderr, "line %d: got %s \"%s\", want %s \"%s\"\n", line,
                im_errname(rv), e.msg, im_errname(code), msg ? msg : "");
        test_failed_ = 1;
    }
}

#define EXPECT(t, code, msg) expect((t), __LINE__, (code), (msg))

TEST(body_check_opened)
{
    struct tev t;

    tev_init(&t, "AMS", "AMS-1", 0);
    body_opened(&t, "Checkout errors", "checkout", HIGH, MEDIUM, 0);
    EXPECT(&t, 0, NULL);
    t.opened.title = "";
    EXPECT(&t, IM_EINVAL, "title is required");
    t.opened.title = "   ";
    EXPECT(&t, IM_EINVAL, "title is required");
    t.opened.title = (char *)x_times(TITLE_MAX);
    EXPECT(&t, 0, NULL);
    t.opened.title = (char *)x_times(TITLE_MAX + 1);
    EXPECT(&t, IM_ETOOBIG, "title is longer than 200 bytes");
    t.opened.title = "bad \xc3\x28";
    EXPECT(&t, IM_EINVAL, "title is not valid UTF-8");
    t.opened.title = "two\nlines";
    EXPECT(&t, IM_EINVAL, "title contains control character 0x0a");
    t.opened.title = "ok";
    t.opened.description = (char *)x_times(DESCRIPTION_MAX + 1);
    EXPECT(&t, IM_ETOOBIG, "description is longer than 4096 bytes");
    t.opened.description = "a\r\nb";
    EXPECT(&t, IM_EINVAL, "description contains control character 0x0d");
    t.opened.description = "a\nb\tc";
    EXPECT(&t, 0, NULL);
    t.opened.service = "";
    EXPECT(&t, IM_EINVAL, "service is required");
    t.opened.service = (char *)x_times(SERVICE_MAX + 1);
    EXPECT(&t, IM_ETOOBIG, "service is longer than 64 bytes");
    t.opened.service = "checkout";
    t.opened.category = (char *)x_times(CATEGORY_MAX + 1);
    EXPECT(&t, IM_ETOOBIG, "category is longer than 64 bytes");
    t.opened.category = "";
    t.opened.subcategory = "disk";
    EXPECT(&t, IM_EINVAL, "subcategory needs a category");
    t.opened.category = "hardware";
    EXPECT(&t, 0, NULL);
    t.opened.subcategory = "\x7f";
    EXPECT(&t, IM_EINVAL, "subcategory contains control character 0x7f");
    t.opened.subcategory = "";
    t.opened.impact = IM__LEVEL__LEVEL_NONE;
    EXPECT(&t, IM_EINVAL, "impact is required");
    t.opened.impact = (Im__Level)4;
    EXPECT(&t, IM_EINVAL, "impact 4 is not a level");
    t.opened.impact = LOW;
    t.opened.urgency = (Im__Level)-1;
    EXPECT(&t, IM_EINVAL, "urgency -1 is not a level");
    t.opened.urgency = IM__LEVEL__LEVEL_NONE;
    EXPECT(&t, IM_EINVAL, "urgency is required");
    /* NULL strings in hand-built messages read as empty. */
    t.opened.urgency = LOW;
    t.opened.title = NULL;
    EXPECT(&t, IM_EINVAL, "title is required");
}

TEST(body_check_kinds)
{
    struct tev t;
    Im__FieldsSet *s;
    struct im_err e;

    CHECK(incident_body_check(NULL, &e) == IM_EINVAL);
    tev_init(&t, "AMS", "AMS-1", 0);
    EXPECT(&t, IM_EINVAL, "event body has no kind");
    t.body.kind_case = IM__BODY__KIND_NOTE;
    EXPECT(&t, IM_EINVAL, "is empty");
    t.body.kind_case = (Im__Body__KindCase)42;
    t.body.note = &t.note;
    EXPECT(&t, IM_EINVAL, "is unknown");

    body_transition(&t, IM__STATE__STATE_NONE, NONE, "", "", "");
    EXPECT(&t, IM_EINVAL, "target state is required");
    body_transition(&t, (Im__State)8, NONE, "", "", "");
    EXPECT(&t, IM_EINVAL, "target state 8 is not a state");
    body_transition(&t, ACKED, (Im__State)8, "", "", "");
    EXPECT(&t, IM_EINVAL, "expected state 8 is not a state");
    body_transition(&t, ACKED, (Im__State)-1, "", "", "");
    EXPECT(&t, IM_EINVAL, "expected state -1 is not a state");
    body_transition(&t, CLOSED, CLOSED, "", "", "");
    EXPECT(&t, 0, NULL);
    body_transition(&t, ACKED, NONE, x_times(REASON_MAX + 1), "", "");
    EXPECT(&t, IM_ETOOBIG, "reason is longer than 1024 bytes");
    body_transition(&t, RESOLVED, NONE, "", x_times(65), "n");
    EXPECT(&t, IM_ETOOBIG, "resolution code is longer than 64 bytes");
    body_transition(&t, RESOLVED, NONE, "", "fixed\tnow", "n");
    EXPECT(&t, IM_EINVAL, "resolution code contains control character");
    body_transition(&t, RESOLVED, NONE, "", "fixed", x_times(4097));
    EXPECT(&t, IM_ETOOBIG, "resolution notes is longer than 4096 bytes");
    body_transition(&t, ON_HOLD, NONE, "", "", "");
    EXPECT(&t, IM_EINVAL, "reason is required");
    body_transition(&t, CANCELLED, NONE, "\xed\xa0\x80", "", "");
    EXPECT(&t, IM_EINVAL, "reason is not valid UTF-8");

    body_note(&t, "");
    EXPECT(&t, IM_EINVAL, "note is required");
    body_note(&t, x_times(NOTE_MAX + 1));
    EXPECT(&t, IM_ETOOBIG, "note is longer than 4096 bytes");
    body_note(&t, x_times(NOTE_MAX));
    EXPECT(&t, 0, NULL);
    body_note(&t, "\xc0\x80");
    EXPECT(&t, IM_EINVAL, "note is not valid UTF-8");

    s = body_set(&t);
    EXPECT(&t, 0, NULL); /* empty, but only the fold knows it changes nothing */
    s->title = (char *)x_times(TITLE_MAX + 1);
    EXPECT(&t, IM_ETOOBIG, "title is longer than 200 bytes");
    s->title = "  ";
    EXPECT(&t, IM_EINVAL, "title cannot be blank");
    s->title = "";
    s->service = " ";
    EXPECT(&t, IM_EINVAL, "service cannot be blank");
    s->service = "";
    s->impact = (Im__Level)4;
    EXPECT(&t, IM_EINVAL, "impact 4 is not a level");
    s->impact = IM__LEVEL__LEVEL_NONE;
    s->urgency = (Im__Level)9;
    EXPECT(&t, IM_EINVAL, "urgency 9 is not a level");
    s->urgency = IM__LEVEL__LEVEL_NONE;
    s->description = "\x01";
    EXPECT(&t, IM_EINVAL, "description contains control character 0x01");
    s->description = "";
    s->subcategory = "disk";
    EXPECT(&t, 0, NULL);

    body_assign(&t, "");
    EXPECT(&t, 0, NULL);
    body_assign(&t, x_times(PERSON_MAX + 1));
    EXPECT(&t, IM_ETOOBIG, "person is longer than 64 bytes");
    body_assign(&t, "bob\tsmith");
    EXPECT(&t, IM_EINVAL, "person contains control character 0x09");

    body_role(&t, IM__ROLE__ROLE_NONE, "bob", 0);
    EXPECT(&t, IM_EINVAL, "role is required");
    body_role(&t, (Im__Role)6, "bob", 0);
    EXPECT(&t, IM_EINVAL, "role 6 is not a role");
    body_role(&t, IM__ROLE__ROLE_SME, "", 0);
    EXPECT(&t, IM_EINVAL, "person is required");
    body_role(&t, IM__ROLE__ROLE_SME, "", 1);
    EXPECT(&t, IM_EINVAL, "person is required");
    body_role(&t, IM__ROLE__ROLE_COMMANDER, "", 0);
    EXPECT(&t, 0, NULL);
    body_role(&t, IM__ROLE__ROLE_COMMANDER, "bob", 1);
    EXPECT(&t, IM_EINVAL, "remove applies to the sme role only");
    body_role(&t, IM__ROLE__ROLE_OPS, x_times(PERSON_MAX + 1), 0);
    EXPECT(&t, IM_ETOOBIG, "person is longer than 64 bytes");

    body_update(&t, " ");
    EXPECT(&t, IM_EINVAL, "public update is required");
    body_update(&t, x_times(PUBLIC_UPDATE_MAX + 1));
    EXPECT(&t, IM_ETOOBIG, "public update is longer than 2048 bytes");

    body_owner(&t, "NYC", "carol", 3, "");
    EXPECT(&t, 0, NULL);
    body_owner(&t, "", "carol", 3, "");
    EXPECT(&t, IM_EINVAL, "owner site is not a site code");
    body_owner(&t, "nyc", "carol", 3, "");
    EXPECT(&t, IM_EINVAL, "owner site is not a site code");
    body_owner(&t, "N", "carol", 3, "");
    EXPECT(&t, IM_EINVAL, "owner site is not a site code");
    body_owner(&t, "NYCNYCNYC", "carol", 3, "");
    EXPECT(&t, IM_EINVAL, "owner site is not a site code");
    body_owner(&t, "1YC", "carol", 3, "");
    EXPECT(&t, IM_EINVAL, "owner site is not a site code");
    body_owner(&t, "NYC", x_times(PERSON_MAX + 1), 3, "");
    EXPECT(&t, IM_ETOOBIG, "manager is longer than 64 bytes");
    body_owner(&t, "NYC", "carol", 0, "");
    EXPECT(&t, IM_EINVAL, "owner token must be positive");
    body_owner(&t, "NYC", "carol", 3, x_times(REASON_MAX + 1));
    EXPECT(&t, IM_ETOOBIG, "reason is longer than 1024 bytes");

    body_major(&t, 1, "");
    EXPECT(&t, 0, NULL);
    body_major(&t, 1, x_times(REASON_MAX + 1));
    EXPECT(&t, IM_ETOOBIG, "reason is longer than 1024 bytes");
    body_major(&t, 1, "why");
    for (int i = 0; i <= AFFECTS_MAX; i++)
        t.affects[i] = "AMS";
    t.major.n_affects = AFFECTS_MAX;
    EXPECT(&t, 0, NULL);
    t.major.n_affects = AFFECTS_MAX + 1;
    EXPECT(&t, IM_ETOOBIG, "affects lists more than 64 sites");
    t.major.n_affects = 2;
    t.affects[1] = "x";
    EXPECT(&t, IM_EINVAL, "affects[1] is not a site code");
}

TEST(invalid_body_refused_by_apply)
{
    struct incident inc, before;
    struct tev t;
    struct im_err e;

    REQUIRE(open_incident(&inc, HIGH, MEDIUM, 0, &e) == 0);
    memcpy(&before, &inc, sizeof inc);
    tev_init(&t, "AMS", "AMS-1", 0);
    body_note(&t, x_times(NOTE_MAX + 1));
    CHECK(incident_apply(&inc, &t.ev, &e) == IM_ETOOBIG);
    tev_init(&t, "AMS", "AMS-1", 0);
    t.ev.body = NULL;
    CHECK(incident_apply(&inc, &t.ev, &e) == IM_EINVAL);
    CHECK(same_except_bookkeeping(&inc, &before));
    CHECK(inc.events_count == 3);
}

/* ---- timeline text ---------------------------------------------------- */

static void
expect_describe(const struct tev *t, int line, const char *kind,
                const char *text)
{
    char k[TIMELINE_KIND_MAX];
    char buf[TIMELINE_TEXT_MAX];

    incident_event_describe(&t->ev, k, buf, sizeof buf);
    if (strcmp(k, kind) != 0 || strcmp(buf, text) != 0) {
        fprintf(stderr, "line %d: got %s \"%s\", want %s \"%s\"\n", line, k,
                buf, kind, text);
        test_failed_ = 1;
    }
}

#define DESCRIBE(t, kind, text) expect_describe((t), __LINE__, (kind), (text))

TEST(describe)
{
    struct tev t;
    Im__FieldsSet *s;

    tev_init(&t, "AMS", "AMS-1", 0);
    body_opened(&t, "Checkout errors", "checkout", HIGH, MEDIUM, 0);
    DESCRIBE(&t, "opened",
             "opened P2 (impact high, urgency medium): "
             "Checkout errors");
    t.opened.major = 1;
    DESCRIBE(&t, "opened",
             "opened P2 (impact high, urgency medium), "
             "declared major: Checkout errors");
    body_transition(&t, ACKED, NONE, "", "", "");
    DESCRIBE(&t, "acknowledged", "acknowledged");
    body_transition(&t, IN_PROGRESS, NONE, "", "", "");
    DESCRIBE(&t, "started", "started work");
    body_transition(&t, IN_PROGRESS, ON_HOLD, "", "", "");
    DESCRIBE(&t, "started", "started work");
    body_transition(&t, ON_HOLD, NONE, "waiting for vendor", "", "");
    DESCRIBE(&t, "held", "on hold: waiting for vendor");
    body_transition(&t, RESOLVED, NONE, "", "fixed", "rolled back");
    DESCRIBE(&t, "resolved", "resolved (code fixed): rolled back");
    body_transition(&t, CLOSED, NONE, "", "", "");
    DESCRIBE(&t, "closed", "closed");
    body_transition(&t, IN_PROGRESS, RESOLVED, "errors came back", "", "");
    DESCRIBE(&t, "reopened", "reopened: errors came back");
    body_transition(&t, CANCELLED, NONE, "duplicate of AMS-3", "", "");
    DESCRIBE(&t, "cancelled", "cancelled: duplicate of AMS-3");
    body_transition(&t, NEW, NONE, "", "", "");
    DESCRIBE(&t, "transition", "moved to new");
    body_note(&t, "looked at the logs");
    DESCRIBE(&t, "note", "note: looked at the logs");
    body_update(&t, "We are investigating.");
    DESCRIBE(&t, "update", "public update: We are investigating.");
    body_assign(&t, "bob");
    DESCRIBE(&t, "assigned", "assigned to bob");
    body_assign(&t, "");
    DESCRIBE(&t, "assigned", "unassigned");
    body_role(&t, IM__ROLE__ROLE_COMMANDER, "alice", 0);
    DESCRIBE(&t, "role", "commander: alice");
    body_role(&t, IM__ROLE__ROLE_COMMS, "", 0);
    DESCRIBE(&t, "role", "comms cleared");
    body_role(&t, IM__ROLE__ROLE_SME, "bob", 0);
    DESCRIBE(&t, "role", "SME added: bob");
    body_role(&t, IM__ROLE__ROLE_SME, "bob", 1);
    DESCRIBE(&t, "role", "SME removed: bob");
    body_owner(&t, "NYC", "carol", 7, "AMS unreachable");
    DESCRIBE(&t, "owner",
             "owner: NYC (manager carol, token 7): AMS "
             "unreachable");
    body_owner(&t, "NYC", "", 8, "");
    DESCRIBE(&t, "owner", "owner: NYC (token 8)");
    body_major(&t, 1, "customers affected");
    DESCRIBE(&t, "major", "declared major: customers affected");
    t.affects[0] = "AMS";
    t.affects[1] = "NYC";
    t.major.n_affects = 2;
    DESCRIBE(&t, "major",
             "declared major (affects AMS, NYC): customers "
             "affected");
    body_major(&t, 0, "");
    DESCRIBE(&t, "major", "major downgraded");
    s = body_set(&t);
    s->impact = HIGH;
    s->urgency = HIGH;
    DESCRIBE(&t, "set", "set priority P1 (impact high, urgency high)");
    s->urgency = IM__LEVEL__LEVEL_NONE;
    s->title = "Checkout down";
    s->service = "payments";
    DESCRIBE(&t, "set",
             "set impact high, service payments, title "
             "\"Checkout down\"");
    body_note(&t, "");
    DESCRIBE(&t, "invalid", "invalid event: note is required");
    t.ev.body = NULL;
    DESCRIBE(&t, "invalid", "invalid event: event has no body");
}

TEST(describe_truncates_on_characters)
{
    static char note[1001];
    struct tev t;
    char kind[TIMELINE_KIND_MAX];
    char buf[64];

    /* "note: " then 2-byte characters, so every cut lands somewhere
     * different relative to a character. */
    for (int i = 0; i < 500; i++)
        memcpy(note + 2 * i, "\xc3\xa9", 2);
    tev_init(&t, "AMS", "AMS-1", 0);
    body_note(&t, note);
    for (size_t size = 1; size <= sizeof buf; size++) {
        size_t n;

        memset(buf, 'Z', sizeof buf);
        incident_event_describe(&t.ev, kind, buf, size);
        n = strnlen(buf, size);
        CHECK(n < size);
        CHECK(text_utf8_valid(buf, n) == 0);
        if (size >= 4) {
            CHECK(n >= 3 && memcmp(buf + n - 3, "...", 3) == 0);
            CHECK(n + 2 >= size); /* at most one character backed off */
        }
        if (size > sizeof buf - 1)
            break;
        CHECK(buf[size] == 'Z'); /* nothing written past text_size */
    }
    incident_event_describe(&t.ev, kind, buf, 0);
    CHECK_EQ_STR(kind, "note");
}

/* ---- fold ------------------------------------------------------------- */

TEST(fold_basics)
{
    struct tev *t = calloc(4, sizeof *t);
    const Im__Event *evs[4];
    struct fold_outcome out[4];
    struct incident inc;

    REQUIRE(t != NULL);
    tev_init(&t[0], "AMS", "AMS-1", 0);
    body_opened(&t[0], "Checkout errors", "checkout", HIGH, MEDIUM, 0);
    tev_init(&t[1], "AMS", "AMS-1", 0);
    body_transition(&t[1], ACKED, NONE, "", "", "");
    tev_init(&t[2], "NYC", "AMS-1", 0);
    body_transition(&t[2], IN_PROGRESS, NONE, "", "", "");
    tev_init(&t[3], "NYC", "AMS-1", 0);
    body_note(&t[3], "hello");
    evs[0] = &t[3].ev;
    evs[1] = &t[1].ev;
    evs[2] = &t[2].ev;
    evs[3] = &t[0].ev;
    CHECK(incident_fold(&inc, evs, 4, out) == 0);
    CHECK(evs[0] == &t[0].ev && evs[1] == &t[1].ev);
    CHECK(evs[2] == &t[2].ev && evs[3] == &t[3].ev);
    CHECK(out[0].event == &t[0].ev && out[0].code == 0);
    CHECK(out[0].reason[0] == '\0');
    CHECK(out[1].code == 0);
    CHECK(out[2].code == IM_ESTALE);
    CHECK(strstr(out[2].reason, "stale owner token 0 from NYC") != NULL);
    CHECK(out[3].code == 0);
    CHECK(inc.state == ACKED);
    CHECK(inc.events_count == 4);
    CHECK(incident_fold(&inc, evs, 4, NULL) == 0);

    /* Without its opening, nothing exists. */
    CHECK(incident_fold(&inc, evs + 1, 3, out) == IM_EINVAL);
    CHECK(inc.id[0] == '\0');
    CHECK(out[0].code == IM_EINVAL && out[2].code == IM_EINVAL);
    CHECK(incident_fold(&inc, evs, 0, NULL) == IM_EINVAL);
    CHECK(inc.events_count == 0);
    free(t);
}

/* Random histories: one incident, several origins, colliding HLCs, owner
 * changes, illegal moves and invalid bodies. */
static const char *const origins[] = {"AMS", "NYC", "SGP"};
static const char *const people[] = {"alice", "bob", "carol", "dave"};
static const char *const texts[] = {"checking logs", "rolled back",
                                    "caf\xc3\xa9 down", ""};

struct gen {
    uint64_t rng;
    uint64_t seq[3];
    const char *owner_site; /* who the generator believes owns it */
    uint64_t owner_token;
    Im__State state; /* and what state it believes it is in */
};

static uint64_t
pick(struct gen *g, uint64_t n)
{
    return test_rand(&g->rng) % n;
}

/* Mostly the next step of the lifecycle as the writer sees it, so that
 * histories get far; sometimes anything at all. */
static Im__State
gen_target(struct gen *g)
{
    static const Im__State next[8][2] = {
        [NEW] = {ACKED, ACKED},
        [ACKED] = {IN_PROGRESS, IN_PROGRESS},
        [IN_PROGRESS] = {ON_HOLD, RESOLVED},
        [ON_HOLD] = {IN_PROGRESS, IN_PROGRESS},
        [RESOLVED] = {CLOSED, IN_PROGRESS},
    };
    Im__State to;

    if (pick(g, 6) == 0 || next[g->state][0] == NONE)
        return (Im__State)(1 + pick(g, 7));
    to = next[g->state][pick(g, 2)];
    if (pick(g, 30) == 0)
        to = CANCELLED;
    g->state = to;
    return to;
}

static void
gen_event(struct gen *g, struct tev *t, size_t i, uint64_t base_ms)
{
    size_t o = pick(g, 3);
    Im__FieldsSet *s;
    int kind = (int)pick(g, 10);

    tev_init(t, origins[o], pick(g, 40) ? "AMS-1" : "AMS-2", 0);
    t->ev.seq = ++g->seq[o];
    /* Time mostly follows the order of writing, but neighbours share
     * milliseconds and often whole HLCs across origins, and some events
     * sort before ones written earlier. */
    t->ev.hlc = HLC_MAKE(base_ms + 1 + i / 3 + pick(g, 3), pick(g, 2));
    switch (kind) {
    case 0:
    case 1:
    case 2:
        body_transition(t, gen_target(g),
                        pick(g, 4) ? NONE : (Im__State)(1 + pick(g, 7)),
                        texts[pick(g, 4)], pick(g, 5) ? "fixed" : "",
                        pick(g, 5) ? "rolled back" : "");
        break;
    case 3: body_note(t, texts[pick(g, 4)]); break;
    case 4:
        s = body_set(t);
        if (pick(g, 2))
            s->impact = (Im__Level)(1 + pick(g, 3));
        if (pick(g, 2))
            s->urgency = (Im__Level)(1 + pick(g, 3));
        if (pick(g, 3) == 0)
            s->title = (char *)texts[pick(g, 4)];
        if (pick(g, 3) == 0)
            s->category = pick(g, 2) ? "hardware" : "network";
        if (pick(g, 3) == 0)
            s->subcategory = pick(g, 2) ? "disk" : "dns";
        break;
    case 5: body_assign(t, people[pick(g, 4)]); break;
    case 6:
        body_role(t, (Im__Role)(1 + pick(g, 5)), people[pick(g, 4)], 0);
        if (t->role.role == IM__ROLE__ROLE_SME)
            t->role.remove = pick(g, 3) == 0;
        break;
    case 7: body_update(t, texts[pick(g, 4)]); break;
    case 8:
        body_owner(t, origins[pick(g, 3)], people[pick(g, 4)], 1 + pick(g, 5),
                   "");
        if (t->owner.token > g->owner_token) {
            g->owner_site = t->owner.site;
            g->owner_token = t->owner.token;
        }
        break;
    default: body_major(t, (int)pick(g, 2), texts[pick(g, 4)]); break;
    }
    /* Owner-only events mostly come from who the writer believed owned the
     * incident: some are right, some are stale by the time they sort. */
    if (incident_body_owner_only(&t->body) && pick(g, 5) != 0) {
        for (o = 0; o < 3; o++)
            if (strcmp(origins[o], g->owner_site) == 0)
                break;
        t->ev.origin = (char *)origins[o];
        t->ev.seq = ++g->seq[o];
        t->ev.owner_token = g->owner_token;
    }
}

/* Builds a history of n events (n >= 2) into t; the first opens it unless
 * the generator decides to put an early note before it. */
static void
gen_history(struct gen *g, struct tev *t, size_t n)
{
    const uint64_t base_ms = 1800000000000ULL;

    memset(g->seq, 0, sizeof g->seq);
    g->owner_site = "AMS";
    g->owner_token = 0;
    g->state = NEW;
    tev_init(&t[0], "AMS", "AMS-1", 0);
    t[0].ev.seq = ++g->seq[0];
    t[0].ev.hlc = HLC_MAKE(base_ms, 0);
    body_opened(&t[0], "Checkout errors", "checkout",
                (Im__Level)(1 + pick(g, 3)), (Im__Level)(1 + pick(g, 3)),
                (int)pick(g, 2));
    for (size_t i = 1; i < n; i++)
        gen_event(g, &t[i], i, base_ms);
    if (pick(g, 8) == 0) {
        body_note(&t[1], "before the opening");
        t[1].ev.hlc = HLC_MAKE(base_ms - 1, 0);
    }
}

static void
shuffle(uint64_t *rng, const Im__Event **a, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = test_rand(rng) % i;
        const Im__Event *tmp = a[i - 1];
        a[i - 1] = a[j];
        a[j] = tmp;
    }
}

static int
outcomes_equal(const struct fold_outcome *a, const struct fold_outcome *b,
               size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i].event != b[i].event || a[i].code != b[i].code ||
            strcmp(a[i].reason, b[i].reason) != 0)
            return 0;
    return 1;
}

static int
pb_round_trip(const struct incident *inc, struct incident *out)
{
    struct incident_pb pb;
    Im__Incident *m;
    uint8_t *buf;
    size_t size;
    int rv;

    incident_pb_fill(&pb, inc);
    size = im__incident__get_packed_size(&pb.msg);
    buf = malloc(size + 1);
    if (buf == NULL)
        return IM_ENOMEM;
    im__incident__pack(&pb.msg, buf);
    m = im__incident__unpack(NULL, size, buf);
    free(buf);
    if (m == NULL)
        return IM_EPROTO;
    rv = incident_from_pb(out, m);
    im__incident__free_unpacked(m, NULL);
    return rv;
}

#define HISTORY_MAX 64
#define TRIALS 200
#define SHUFFLES 20

TEST(fold_permutation_invariant)
{
    static struct incident ref, inc, round;
    static struct fold_outcome ref_out[HISTORY_MAX], out[HISTORY_MAX];
    struct tev *t = calloc(HISTORY_MAX, sizeof *t);
    const Im__Event *evs[HISTORY_MAX];
    struct gen g = {.rng = test_seed_};
    uint64_t shuffle_rng = test_seed_ ^ 0x9e3779b97f4a7c15ULL;
    int counts[IM_ERR_COUNT_ + 1] = {0};
    int transitions_ok = 0, reached[8] = {0};

    REQUIRE(t != NULL);
    for (int trial = 0; trial < TRIALS; trial++) {
        size_t n = 2 + pick(&g, HISTORY_MAX - 1);
        int ref_rv;

        gen_history(&g, t, n);
        for (size_t i = 0; i < n; i++)
            evs[i] = &t[i].ev;
        ref_rv = incident_fold(&ref, evs, n, ref_out);
        for (size_t i = 1; i < n; i++)
            CHECK(incident_event_cmp(evs[i - 1], evs[i]) < 0);
        for (size_t i = 0; i < n; i++) {
            counts[-ref_out[i].code]++;
            if (ref_out[i].code == 0 && ref_out[i].event->body->kind_case ==
                                            IM__BODY__KIND_TRANSITION) {
                transitions_ok++;
                reached[ref_out[i].event->body->transition->to]++;
            }
        }
        CHECK(ref.events_count == n);

        for (int k = 0; k < SHUFFLES; k++) {
            shuffle(&shuffle_rng, evs, n);
            CHECK(incident_fold(&inc, evs, n, out) == ref_rv);
            if (memcmp(&inc, &ref, sizeof inc) != 0 ||
                !outcomes_equal(out, ref_out, n)) {
                fprintf(stderr, "trial %d shuffle %d: fold differs\n", trial,
                        k);
                CHECK(0);
                break;
            }
        }
        CHECK(pb_round_trip(&ref, &round) == 0);
        CHECK(memcmp(&round, &ref, sizeof ref) == 0);
    }
    if (getenv("TEST_VERBOSE") != NULL) {
        for (int c = 0; c <= IM_ERR_COUNT_; c++)
            if (counts[c] > 0)
                fprintf(stderr, "%s: %d\n", im_errname(-c), counts[c]);
        fprintf(stderr, "transitions accepted: %d\n", transitions_ok);
        for (int s = 0; s < 8; s++)
            fprintf(stderr, "moves to %s: %d\n",
                    incident_state_name((Im__State)s), reached[s]);
    }
    /* The histories must exercise what they claim to. */
    CHECK(counts[0] > TRIALS * 5);
    CHECK(counts[-IM_ESTALE] > TRIALS / 2);
    CHECK(counts[-IM_ESTATE] > TRIALS / 2);
    CHECK(counts[-IM_EINVAL] > TRIALS / 2);
    CHECK(transitions_ok > TRIALS);
    for (int s = ACKED; s <= CANCELLED; s++)
        CHECK(reached[s] > 0);
    free(t);
}

/* The comparison above can fail: histories that differ only in how a
 * colliding HLC is broken, or in one accepted event, fold differently. */
TEST(fold_comparison_detects_differences)
{
    static struct incident a, b;
    struct tev *t = calloc(3, sizeof *t);
    const Im__Event *evs[3];
    hlc_t h;

    REQUIRE(t != NULL);
    tev_init(&t[0], "AMS", "AMS-1", 0);
    body_opened(&t[0], "Checkout errors", "checkout", HIGH, MEDIUM, 0);
    tev_init(&t[1], "AMS", "AMS-1", 0);
    body_role(&t[1], IM__ROLE__ROLE_COMMANDER, "alice", 0);
    tev_init(&t[2], "NYC", "AMS-1", 0);
    body_role(&t[2], IM__ROLE__ROLE_COMMANDER, "bob", 0);
    h = t[2].ev.hlc;
    t[1].ev.hlc = h;
    for (int i = 0; i < 3; i++)
        evs[i] = &t[i].ev;
    REQUIRE(incident_fold(&a, evs, 3, NULL) == 0);
    CHECK_EQ_STR(a.commander, "bob"); /* NYC sorts after AMS */

    t[1].ev.origin = "SGP";
    for (int i = 0; i < 3; i++)
        evs[i] = &t[i].ev;
    REQUIRE(incident_fold(&b, evs, 3, NULL) == 0);
    CHECK_EQ_STR(b.commander, "alice");
    CHECK(memcmp(&a, &b, sizeof a) != 0);

    /* One field apart, nothing else. */
    t[1].ev.origin = "AMS";
    t[2].role.person = "bob2";
    for (int i = 0; i < 3; i++)
        evs[i] = &t[i].ev;
    REQUIRE(incident_fold(&b, evs, 3, NULL) == 0);
    CHECK(memcmp(&a, &b, sizeof a) != 0);
    t[2].role.person = "bob";
    for (int i = 0; i < 3; i++)
        evs[i] = &t[i].ev;
    REQUIRE(incident_fold(&b, evs, 3, NULL) == 0);
    CHECK(memcmp(&a, &b, sizeof a) == 0);
    free(t);
}

/* ---- wire form -------------------------------------------------------- */

static void
fill_every_field(struct incident *inc)
{
    memset(inc, 0, sizeof *inc);
    strcpy(inc->id, "AMS-42");
    memset(inc->title, 't', TITLE_MAX);
    memset(inc->description, 'd', DESCRIPTION_MAX);
    strcpy(inc->service, "checkout");
    strcpy(inc->category, "hardware");
    strcpy(inc->subcategory, "disk");
    inc->impact = MEDIUM;
    inc->urgency = LOW;
    inc->priority = 4;
    inc->major = 1;
    inc->declared_major = 1;
    inc->state = RESOLVED;
    strcpy(inc->origin_site, "AMS");
    strcpy(inc->owner_site, "NYC2");
    strcpy(inc->owner_manager, "carol");
    inc->owner_token = 9;
    inc->owner_provisional = 1;
    strcpy(inc->assignee, "bob");
    strcpy(inc->manager, "mia");
    strcpy(inc->commander, "alice");
    strcpy(inc->comms, "carl");
    strcpy(inc->ops, "olga");
    for (size_t i = 0; i < SMES_MAX; i++)
        snprintf(inc->smes[i], sizeof inc->smes[i], "sme-%zu", i);
    inc->smes_count = SMES_MAX;
    inc->opened_at_ms = 1;
    inc->acknowledged_at_ms = 2;
    inc->resolved_at_ms = 3;
    inc->closed_at_ms = 4;
    inc->cancelled_at_ms = 5;
    inc->updated_at_ms = 6;
    strcpy(inc->resolution_code, "fixed");
    memset(inc->resolution_notes, 'n', RESOLUTION_NOTES_MAX);
    strcpy(inc->last_public_update, "caf\xc3\xa9 is back");
    inc->last_public_update_at_ms = 7;
    inc->events_count = 8;
    inc->reopen_count = 9;
    inc->last_hlc = HLC_MAKE(10, 11);
    strcpy(inc->last_origin, "SGP");
    inc->last_seq = 12;
}

/* A page from the coordinator's escalation: checked, accepted at any
 * state by any site, described, changes nothing. */
TEST(escalated_pages)
{
    struct incident inc, before;
    struct tev t;
    struct im_err e;
    Im__Escalated p = IM__ESCALATED__INIT;
    char kind[TIMELINE_KIND_MAX], text[TIMELINE_TEXT_MAX];

    REQUIRE(open_incident(&inc, HIGH, HIGH, 0, &e) == 0);
    tev_init(&t, "NYC", "AMS-1", 0);
    t.body.kind_case = IM__BODY__KIND_ESCALATED;
    t.body.escalated = &p;
    CHECK(incident_body_check(&t.body, &e) == IM_EINVAL);
    CHECK_EQ_STR(e.msg, "page notice is required");
    p.notice = "AMS-1/3";
    p.site = "nyc";
    CHECK(incident_body_check(&t.body, &e) == IM_EINVAL);
    CHECK(strstr(e.msg, "page site is not a site code") != NULL);
    p.site = "NYC";
    p.person = "bob";
    p.level = 2;
    p.run = 1;
    p.text = "not acknowledged by site manager of AMS within 5m";
    CHECK(incident_body_check(&t.body, &e) == 0);
    before = inc;
    CHECK(incident_apply(&inc, &t.ev, &e) == 0);
    CHECK_EQ_INT(inc.state, before.state);
    CHECK_EQ_STR(inc.owner_site, before.owner_site);
    incident_event_describe(&t.ev, kind, text, sizeof text);
    CHECK_EQ_STR(kind, "paged");
    CHECK_EQ_STR(text, "page to bob at NYC (level 2, run 1): not acknowledged "
                       "by site manager of AMS within 5m");
    t.body.escalated = NULL;
    CHECK(incident_body_check(&t.body, &e) == IM_EINVAL);
    CHECK(strstr(e.msg, "is empty") != NULL);
}

TEST(pb_round_trip)
{
    static struct incident inc, out, before;
    struct incident_pb pb;
    char big[TITLE_MAX + 2];
    char *too_many[SMES_MAX + 1];

    fill_every_field(&inc);
    CHECK(pb_round_trip(&inc, &out) == 0);
    CHECK(memcmp(&inc, &out, sizeof inc) == 0);
    memset(&inc, 0, sizeof inc);
    CHECK(pb_round_trip(&inc, &out) == 0);
    CHECK(memcmp(&inc, &out, sizeof inc) == 0);

    /* Stored records that break a bound are corrupt, and *inc is left
     * alone. */
    fill_every_field(&inc);
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    memcpy(&before, &out, sizeof out);
#define CORRUPT(stmt)                                                          \
    do {                                                                       \
        incident_pb_fill(&pb, &inc);                                           \
        stmt;                                                                  \
        CHECK(incident_from_pb(&out, &pb.msg) == IM_ECORRUPT);                 \
        CHECK(memcmp(&out, &before, sizeof out) == 0);                         \
    } while (0)
    CORRUPT(pb.msg.title = big);
    CORRUPT(pb.msg.id = big);
    CORRUPT(pb.msg.service = big);
    CORRUPT(pb.msg.last_origin = "SITECODE9");
    CORRUPT(pb.owner.site = "SITECODE9");
    CORRUPT(pb.owner.manager = big);
    CORRUPT(pb.roles.ops = big);
    CORRUPT(pb.smes[3] = big);
    CORRUPT(pb.smes[3] = "");
    CORRUPT(pb.msg.state = (Im__State)8);
    CORRUPT(pb.msg.impact = (Im__Level)4);
    CORRUPT(pb.msg.urgency = (Im__Level)-1);
    CORRUPT(pb.msg.priority = 6);
    for (int i = 0; i <= SMES_MAX; i++)
        too_many[i] = "x";
    CORRUPT((pb.roles.smes = too_many, pb.roles.n_smes = SMES_MAX + 1));
#undef CORRUPT
    incident_pb_fill(&pb, &inc);
    CHECK(incident_from_pb(&out, &pb.msg) == 0);
    CHECK(memcmp(&out, &inc, sizeof out) == 0);
    /* Absent sub-messages read as empty. */
    pb.msg.owner = NULL;
    pb.msg.roles = NULL;
    CHECK(incident_from_pb(&out, &pb.msg) == 0);
    CHECK(out.owner_site[0] == '\0' && out.smes_count == 0);
}

TEST_MAIN(RUN(priority_matrix); RUN(names); RUN(transitions_all_pairs);
          RUN(transition_requirements_and_times);
          RUN(transition_compare_and_set); RUN(opened_rules);
          RUN(owner_fencing); RUN(major_rules); RUN(set_rules);
          RUN(roles_and_closed_incidents); RUN(bookkeeping_and_limits);
          RUN(sort_order_asserted); RUN(body_check_opened);
          RUN(body_check_kinds); RUN(invalid_body_refused_by_apply);
          RUN(describe); RUN(describe_truncates_on_characters);
          RUN(fold_basics); RUN(fold_permutation_invariant);
          RUN(fold_comparison_detects_differences); RUN(escalated_pages);
          RUN(pb_round_trip))
