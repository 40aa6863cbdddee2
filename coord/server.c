/* server: see server.h. */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "owners.h"
#include "request.h"
#include "schedstore.h"

/* ---- assignments ---- */

static void
assignment_pb(const struct assignment_record *a, Im__Assignment *pb)
{
    im__assignment__init(pb);
    pb->incident = (char *)a->incident;
    pb->owner_site = (char *)a->owner_site;
    pb->manager = (char *)a->manager;
    pb->token = a->token;
    pb->reason = (char *)a->reason;
    pb->assigned_at_ms = a->assigned_at_ms;
}

/* ---- nodes: heartbeats and ownership queries ---- */

static int
site_of(void *arg, const uint8_t pk[KEY_PUB_BYTES])
{
    struct server *s = arg;
    const struct cfg_site *site = config_site_by_key(s->cfg, pk);
    return site ? (int)(site - s->cfg->sites) : -1;
}

static const char *
site_name(void *arg, int i)
{
    struct server *s = arg;
    return s->cfg->sites[i].code;
}

/* Assignments of ids into reply (allocated; the caller frees *pbs, *ptrs,
 * *recs). */
static int
lookup(struct server *s, const char *const *ids, size_t n,
       struct assignment_record **recs_out, Im__Assignment **pbs_out,
       Im__Assignment ***ptrs_out, size_t *count_out, struct im_err *e)
{
    struct assignment_record *recs = calloc(n ? n : 1, sizeof *recs);
    int *found = calloc(n ? n : 1, sizeof *found);
    Im__Assignment *pbs = calloc(n ? n : 1, sizeof *pbs);
    Im__Assignment **ptrs = calloc(n ? n : 1, sizeof *ptrs);
    size_t k = 0;
    int rv;

    if (recs == NULL || found == NULL || pbs == NULL || ptrs == NULL) {
        rv = im_errf(e, IM_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rv = owners_read(s->r, ids, n, recs, found, e)) != 0)
        goto fail;
    for (size_t i = 0; i < n; i++)
        if (found[i]) {
            assignment_pb(&recs[i], &pbs[k]);
            ptrs[k] = &pbs[k];
            k++;
        }
    free(found);
    *recs_out = recs;
    *pbs_out = pbs;
    *ptrs_out = ptrs;
    *count_out = k;
    return 0;
fail:
    free(recs);
    free(found);
    free(pbs);
    free(ptrs);
    return rv;
}

/* The leader's answer to a heartbeat: owners for what the site listed
 * that has none yet, then every assignment naming the site, so a new
 * owner learns of a failover at its next heartbeat. */
static int
heartbeat_assignments(struct replica *r, int site,
                      struct assignment_record **recs_out,
                      Im__Assignment **pbs_out, Im__Assignment ***ptrs_out,
                      size_t *count_out, struct im_err *e)
{
    struct assignment_record *recs;
    Im__Assignment *pbs, **ptrs;
    size_t n;
    int rv;

    owners_assign(r, site);
    if ((rv = owners_for_site(r, site, &recs, &n, e)) != 0)
        return rv;
    pbs = calloc(n ? n : 1, sizeof *pbs);
    ptrs = calloc(n ? n : 1, sizeof *ptrs);
    if (pbs == NULL || ptrs == NULL) {
        free(recs);
        free(pbs);
        free(ptrs);
        return im_errf(e, IM_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        assignment_pb(&recs[i], &pbs[i]);
        ptrs[i] = &pbs[i];
    }
    *recs_out = recs;
    *pbs_out = pbs;
    *ptrs_out = ptrs;
    *count_out = n;
    return 0;
}

static int
serve_node(void *arg, int site, const uint8_t *plain, size_t plain_size,
           uint8_t **reply, size_t *reply_size, struct im_err *e)
{
    struct server *s = arg;
    struct replica *r = s->r;
    Im__CoordRequest *req;
    Im__CoordReply rep = IM__COORD_REPLY__INIT;
    Im__HeartbeatReply hb = IM__HEARTBEAT_REPLY__INIT;
    Im__OwnershipReply own = IM__OWNERSHIP_REPLY__INIT;
    struct assignment_record *recs = NULL;
    Im__Assignment *pbs = NULL, **ptrs = NULL;
    size_t count = 0;
    char leader_id[COORD_ID_MAX + 1], leader_api[URL_MAX + 1];
    int64_t term = 0;
    int leading, rv = 0;

    req = im__coord_request__unpack(NULL, plain_size, plain);
    if (req == NULL)
        return im_errf(e, IM_EPROTO, "malformed coordinator request");
    leading = replica_leading(r, &term, leader_id, leader_api);
    switch (req->kind_case) {
    case IM__COORD_REQUEST__KIND_HEARTBEAT: {
        Im__Heartbeat *h = req->heartbeat;
        if (strcmp(h->site, s->cfg->sites[site].code) != 0) {
            rv = im_errf(e, IM_EDENIED,
                         "a heartbeat for site '%s' on the "
                         "session of site %s",
                         h->site, s->cfg->sites[site].code);
            goto out;
        }
        if (h->n_open > COORD_HEARTBEAT_INCIDENTS_MAX) {
            rv = im_errf(e, IM_ETOOBIG,
                         "a heartbeat lists %zu incidents; at "
                         "most %d",
                         h->n_open, COORD_HEARTBEAT_INCIDENTS_MAX);
            goto out;
        }
        replica_heartbeat(r, site, h->open_count, h->owned_count);
        hb.leader = leading;
        hb.replica = (char *)r->self->id;
        hb.leader_id = leader_id;
        hb.leader_api = leader_api;
        hb.term = (uint64_t)term;
        hb.lease_ms = s->cfg->coord.lease_ms;
        hb.now_ms = clock_wall_ms();
        owners_observe(r, site, h);
        if (leading) {
            if ((rv = heartbeat_assignments(r, site, &recs, &pbs, &ptrs, &count,
                                            e)) != 0)
                goto out;
            hb.lease_granted = 1;
            hb.assignments = ptrs;
            hb.n_assignments = count;
            if (s->majors != NULL &&
                (rv = majors_heartbeat(s->majors, term,
                                       s->cfg->sites[site].code, h, &hb, e)) !=
                    0)
                goto out;
        }
        rep.heartbeat = &hb;
        break;
    }
    case IM__COORD_REQUEST__KIND_OWNERSHIP: {
        Im__OwnershipQuery *q = req->ownership;
        if (q->n_incidents > COORD_QUERY_INCIDENTS_MAX) {
            rv = im_errf(e, IM_ETOOBIG,
                         "an ownership query of %zu incidents; "
                         "at most %d",
                         q->n_incidents, COORD_QUERY_INCIDENTS_MAX);
            goto out;
        }
        for (size_t i = 0; i < q->n_incidents; i++)
            if (strlen(q->incidents[i]) > INCIDENT_ID_MAX) {
                rv = im_errf(e, IM_EINVAL, "not an incident id: '%.40s'",
                             q->incidents[i]);
                goto out;
            }
        if ((rv = lookup(s, (const char *const *)q->incidents, q->n_incidents,
                         &recs, &pbs, &ptrs, &count, e)) != 0)
            goto out;
        own.assignments = ptrs;
        own.n_assignments = count;
        rep.ownership = &own;
        break;
    }
    default: rv = im_errf(e, IM_EINVAL, "empty coordinator request"); goto out;
    }
    *reply_size = im__coord_reply__get_packed_size(&rep);
    if ((*reply = malloc(*reply_size ? *reply_size : 1)) == NULL) {
        rv = im_errf(e, IM_ENOMEM, "out of memory");
        goto out;
    }
    im__coord_reply__pack(&rep, *reply);
out:
    majors_reply_free(&hb);
    free(recs);
    free(pbs);
    free(ptrs);
    im__coord_request__free_unpacked(req, NULL);
    return rv;
}

/* ---- operators ---- */

/* An operator's reason for a move: room is left in the record's reason
 * for "reassigned by operator NAME: " and the manager sentence. */
#define MOVE_REASON_MAX 200

struct opctx {
    struct server *s;
    const struct cfg_operator *op;
    int leading;
    int64_t term;
    char leader_id[COORD_ID_MAX + 1], leader_api[URL_MAX + 1];
};

/* Packs res into a malloc'd buffer. */
static uint8_t *
pack_result(const Im__Result *res, size_t *size)
{
    uint8_t *b;
    *size = im__result__get_packed_size(res);
    if ((b = malloc(*size ? *size : 1)) != NULL)
        im__result__pack(res, b);
    return b;
}

static uint8_t *
result_error(int code, const char *msg, size_t *size)
{
    Im__Result res = IM__RESULT__INIT;
    res.code = code;
    res.error = (char *)msg;
    return pack_result(&res, size);
}

static uint8_t *
op_sites(struct opctx *x, size_t *size)
{
    struct server *s = x->s;
    struct replica *r = s->r;
    Im__Result res = IM__RESULT__INIT;
    Im__SitesReply sr = IM__SITES_REPLY__INIT;
    Im__SiteHealth sh[SITES_MAX], *shp[SITES_MAX];
    struct site_record recs[SITES_MAX];
    int have[SITES_MAX] = {0};
    struct etcd_range rg;
    struct im_err e = {0};
    uint64_t now = clock_mono_ms();
    uint8_t *out;

    /* Serializable: imctl sites keeps answering while etcd elects a
     * leader (the records may then lag by what that member lacks). */
    if (etcd_range(&r->etcd, r->k_sites, ETCD_PREFIX | ETCD_SERIALIZABLE, 0, 0,
                   &rg, &e) != 0)
        return result_error(e.code, im_errmsg(&e), size);
    for (size_t k = 0; k < rg.count; k++) {
        int i = replica_site_index(r, rg.kvs[k].key + strlen(r->k_sites));
        struct im_err de = {0};
        if (i >= 0 && records_site_decode(rg.kvs[k].value, rg.kvs[k].value_size,
                                          &recs[i], &de) == 0)
            have[i] = 1;
    }
    sr.revision = (uint64_t)rg.revision;
    etcd_range_free(&rg);
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->sites_count; i++) {
        const struct coord_site *cs = &r->sites[i];
        Im__SiteHealth *h = &sh[i];
        im__site_health__init(h);
        h->site = (char *)cs->cfg->code;
        if (have[i]) {
            h->state = (char *)records_site_state_name(recs[i].state);
            h->since_ms = recs[i].since_ms;
            h->last_heartbeat_ms = recs[i].last_heartbeat_ms;
            h->open = recs[i].open;
            h->owned = recs[i].owned;
            h->reason = recs[i].reason;
        } else {
            h->state = (char *)"unknown";
            h->reason = (char *)"no decision recorded yet";
            h->open = cs->open;
            h->owned = cs->owned;
        }
        h->heard = cs->heard;
        h->lease_age_ms = cs->heard ? now - cs->last_mono_ms : 0;
        shp[i] = h;
    }
    sr.n_sites = r->sites_count;
    pthread_mutex_unlock(&r->mu);
    sr.sites = shp;
    sr.replica = (char *)r->self->id;
    sr.leader = x->leading;
    sr.leader_id = x->leader_id;
    sr.term = (uint64_t)x->term;
    sr.lease_ms = s->cfg->coord.lease_ms;
    res.sites = &sr;
    out = pack_result(&res, size);
    return out;
}

static int
check_incident(const char *id, char origin[SITE_CODE_MAX + 1], char *msg,
               size_t cap)
{
    if (strlen(id) > INCIDENT_ID_MAX ||
        records_incident_origin(id, origin) != 0) {
        snprintf(msg, cap,
                 "'%.40s' is not an incident id (SITE-N, e.g. AMS-42)", id);
        return IM_EINVAL;
    }
    return 0;
}

static uint8_t *
op_owner(struct opctx *x, const char *id, size_t *size)
{
    struct server *s = x->s;
    Im__Result res = IM__RESULT__INIT;
    Im__OwnerReply orp = IM__OWNER_REPLY__INIT;
    Im__Assignment pb;
    struct assignment_record a;
    int found = 0, rv;
    struct im_err e = {0};
    char origin[SITE_CODE_MAX + 1], msg[256], l1[256], l2[REASON_MAX + 16],
        l3[256];
    char *explain[3];
    char when[CLOCK_RFC3339_MAX];

    if ((rv = check_incident(id, origin, msg, sizeof msg)) != 0)
        return result_error(rv, msg, size);
    if ((rv = owners_read(s->r, &id, 1, &a, &found, &e)) != 0)
        return result_error(rv, im_errmsg(&e), size);
    if (!found) {
        snprintf(msg, sizeof msg,
                 "no owner recorded for %s yet (its site has "
                 "not reported it in a heartbeat)",
                 id);
        return result_error(IM_ENOTFOUND, msg, size);
    }
    clock_fmt_rfc3339(a.assigned_at_ms, when);
    snprintf(l1, sizeof l1, "owner: site %s, manager %s, token %llu",
             a.owner_site, a.manager[0] ? a.manager : "(nobody on call)",
             (unsigned long long)a.token);
    snprintf(l2, sizeof l2, "why: %s", a.reason);
    snprintf(l3, sizeof l3, "decided at %s by coordinator %s (term %lld)", when,
             a.by, (long long)a.term);
    explain[0] = l1;
    explain[1] = l2;
    explain[2] = l3;
    assignment_pb(&a, &pb);
    orp.assignment = &pb;
    orp.explain = explain;
    orp.n_explain = 3;
    res.owner = &orp;
    return pack_result(&res, size);
}

/* A leader's reassignment: to_site (handback: the origin) takes over;
 * coord/owners.c decides and records. */
static uint8_t *
op_move(struct opctx *x, const char *id, const char *to_site,
        const char *manager, const char *why, int handback, size_t *size)
{
    struct assignment_record a;
    struct im_err e = {0};
    char origin[SITE_CODE_MAX + 1], msg[256];
    int rv;

    if ((rv = check_incident(id, origin, msg, sizeof msg)) != 0)
        return result_error(rv, msg, size);
    if (strlen(manager) > PERSON_MAX || strlen(why) > MOVE_REASON_MAX) {
        snprintf(msg, sizeof msg,
                 "manager over %d or reason over %d characters", PERSON_MAX,
                 MOVE_REASON_MAX);
        return result_error(IM_ETOOBIG, msg, size);
    }
    if ((rv = owners_move(x->s->r, id, to_site, manager, why, handback,
                          x->op->name, &a, &e)) != 0)
        return result_error(rv, im_errmsg(&e), size);
    {
        Im__Result res = IM__RESULT__INIT;
        Im__OwnerReply orp = IM__OWNER_REPLY__INIT;
        Im__Assignment pb;
        assignment_pb(&a, &pb);
        orp.assignment = &pb;
        res.owner = &orp;
        return pack_result(&res, size);
    }
}

/* ---- schedules and on-call ---- */

static uint8_t *
op_schedule_apply(struct opctx *x, const Im__ScheduleApply *q, size_t *size)
{
    Im__Result res = IM__RESULT__INIT;
    Im__ScheduleReply sr = IM__SCHEDULE_REPLY__INIT;
    struct schedstore_warnings *w = malloc(sizeof *w);
    char *warnings[SCHEDULE_WARNINGS_MAX];
    struct im_err e = {0};
    int64_t rev = 0;
    uint8_t *out;
    int rv;

    if (w == NULL)
        return result_error(IM_ENOMEM, "out of memory", size);
    rv = schedstore_apply(x->s->r, q->text, strlen(q->text), q->dry_run, &rev,
                          w, &e);
    if (rv != 0) {
        free(w);
        return result_error(rv, im_errmsg(&e), size);
    }
    for (size_t i = 0; i < w->count; i++)
        warnings[i] = w->text[i];
    sr.revision = (uint64_t)rev;
    sr.stored = !q->dry_run;
    sr.text = (char *)"";
    sr.warnings = warnings;
    sr.n_warnings = w->count;
    res.schedule = &sr;
    out = pack_result(&res, size);
    free(w);
    return out;
}

static uint8_t *
op_schedule_get(struct opctx *x, size_t *size)
{
    Im__Result res = IM__RESULT__INIT;
    Im__ScheduleReply sr = IM__SCHEDULE_REPLY__INIT;
    struct im_err e = {0};
    char *text = NULL;
    int64_t rev = 0;
    uint8_t *out;
    int rv;

    if ((rv = schedstore_get(x->s->r, &text, &rev, &e)) != 0)
        return result_error(rv, im_errmsg(&e), size);
    sr.text = text;
    sr.revision = (uint64_t)rev;
    res.schedule = &sr;
    out = pack_result(&res, size);
    free(text);
    return out;
}

static uint8_t *
op_oncall(struct opctx *x, const Im__OncallGet *q, size_t *size)
{
    struct replica *r = x->s->r;
    Im__Result res = IM__RESULT__INIT;
    Im__OncallReply orp = IM__ONCALL_REPLY__INIT;
    Im__OncallEntry pbs[SITES_MAX + 1], *ptrs[SITES_MAX + 1];
    struct schedstore_oncall_row *rows;
    const char *codes[SITES_MAX];
    uint64_t at = q->at_ms ? q->at_ms : clock_wall_ms();
    size_t n = 0;
    char msg[160];
    uint8_t *out;

    if (q->site[0] != '\0') {
        int i = replica_site_index(r, q->site);
        if (i < 0) {
            snprintf(msg, sizeof msg, "no site '%.16s' in this cluster",
                     q->site);
            return result_error(IM_EINVAL, msg, size);
        }
        codes[n++] = r->sites[i].cfg->code;
    } else {
        for (size_t i = 0; i < r->sites_count; i++)
            codes[n++] = r->sites[i].cfg->code;
    }
    if ((rows = calloc(n + 1, sizeof *rows)) == NULL)
        return result_error(IM_ENOMEM, "out of memory", size);
    pthread_mutex_lock(&r->mu);
    if (r->sched == NULL) {
        pthread_mutex_unlock(&r->mu);
        free(rows);
        return result_error(IM_ENOTFOUND,
                            "no schedule has been applied yet (imctl "
                            "schedule apply FILE)",
                            size);
    }
    schedstore_oncall(r->sched, codes, n, at, rows);
    pthread_mutex_unlock(&r->mu);
    for (size_t i = 0; i <= n; i++) {
        Im__OncallEntry *p = &pbs[i];
        im__oncall_entry__init(p);
        p->site = rows[i].site;
        p->rotation = rows[i].source;
        p->person = rows[i].person;
        p->from_ms = rows[i].from_ms;
        p->until_ms = rows[i].until_ms;
        p->until_text = rows[i].until_text;
        p->next_person = rows[i].next_person;
        p->next_until_ms = rows[i].next_until_ms;
        p->next_until_text = rows[i].next_until_text;
        ptrs[i] = p;
    }
    orp.at_ms = at;
    orp.entries = ptrs;
    orp.n_entries = n + 1;
    res.oncall = &orp;
    out = pack_result(&res, size);
    free(rows);
    return out;
}

/* majors, major_declare, escalate (coord/majors.h). */
static uint8_t *
op_majors(struct opctx *x, const Im__Op *op, size_t *size)
{
    struct majors *m = x->s->majors;
    struct majors_answer a;
    struct im_err e = {0};
    Im__Result res = IM__RESULT__INIT;
    uint8_t *out;
    int rv;

    if (m == NULL)
        return result_error(
            IM_EINVAL, "this coordinator does not serve major incidents", size);
    memset(&a, 0, sizeof a);
    if (op->kind_case == IM__OP__KIND_MAJORS)
        rv = majors_op_list(m, op->majors->all, &a, &e);
    else if (op->kind_case == IM__OP__KIND_MAJOR_DECLARE)
        rv = majors_op_declare(m, x->op->name, op->major_declare, &a, &e);
    else
        rv = majors_op_escalate(m, x->op->name, op->escalate, &a, &e);
    if (rv != 0)
        out = result_error(rv, im_errmsg(&e), size);
    else {
        res.majors = &a.reply;
        out = pack_result(&res, size);
    }
    majors_answer_free(&a);
    return out;
}

static int
op_is_write(const Im__Op *op)
{
    switch (op->kind_case) {
    case IM__OP__KIND_REASSIGN:
    case IM__OP__KIND_HANDBACK:
    case IM__OP__KIND_SCHEDULE_APPLY:
    case IM__OP__KIND_MAJOR_DECLARE:
    case IM__OP__KIND_ESCALATE: return 1;
    default: return 0;
    }
}

static uint8_t *
run_op(struct opctx *x, const Im__Op *op, size_t *size)
{
    char msg[160];
    if (op_is_write(op) && x->op->role == OP_ROLE_VIEWER) {
        snprintf(msg, sizeof msg,
                 "operator %s has role viewer: it may only read", x->op->name);
        return result_error(IM_EDENIED, msg, size);
    }
    switch (op->kind_case) {
    case IM__OP__KIND_SITES: return op_sites(x, size);
    case IM__OP__KIND_OWNER: return op_owner(x, op->owner->incident, size);
    case IM__OP__KIND_REASSIGN:
        return op_move(x, op->reassign->incident, op->reassign->to_site,
                       op->reassign->manager, op->reassign->reason, 0, size);
    case IM__OP__KIND_HANDBACK:
        return op_move(x, op->handback->incident, "", "", op->handback->reason,
                       1, size);
    case IM__OP__KIND_MAJORS:
    case IM__OP__KIND_MAJOR_DECLARE:
    case IM__OP__KIND_ESCALATE: return op_majors(x, op, size);
    case IM__OP__KIND_SCHEDULE_APPLY:
        return op_schedule_apply(x, op->schedule_apply, size);
    case IM__OP__KIND_SCHEDULE_GET: return op_schedule_get(x, size);
    case IM__OP__KIND_ONCALL: return op_oncall(x, op->oncall, size);
    case IM__OP__KIND_WRITE:
    case IM__OP__KIND_GET:
    case IM__OP__KIND_LIST:
    case IM__OP__KIND_STATS:
    case IM__OP__KIND_PEERS:
        return result_error(IM_EINVAL,
                            "a node operation: send it to a node "
                            "(imctl --node), not to a coordinator",
                            size);
    case IM__OP__KIND_PING:
    default:
        return result_error(IM_EINVAL, "not a coordinator operation", size);
    }
}

static nng_msg *
response_msg(const Im__Response *resp)
{
    nng_msg *m;
    if (nng_msg_alloc(&m, im__response__get_packed_size(resp)) != 0)
        return NULL;
    im__response__pack(resp, nng_msg_body(m));
    return m;
}

static size_t
varint(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    do {
        out[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v != 0);
    return n;
}

/* A SignedRequest from imctl. */
static nng_msg *
serve_operator(void *arg, nng_msg *msg)
{
    struct server *s = arg;
    Im__SignedRequest *sreq = NULL;
    Im__Request *req = NULL;
    Im__Response resp = IM__RESPONSE__INIT;
    struct opctx x = {.s = s};
    struct im_err e = {0};
    uint8_t *results[REQ_OPS_MAX];
    size_t sizes[REQ_OPS_MAX];
    nng_msg *out = NULL;
    int rv;

    rv =
        request_open(s->cfg, "coordinator", nng_msg_body(msg), nng_msg_len(msg),
                     clock_wall_ms(), &sreq, &req, &x.op, &e);
    nng_msg_free(msg);
    if (rv != 0) {
        resp.code = rv;
        resp.error = e.msg;
        return response_msg(&resp);
    }
    x.leading = replica_leading(s->r, &x.term, x.leader_id, x.leader_api);
    if (!x.leading)
        for (size_t i = 0; i < req->n_ops; i++)
            if (op_is_write(req->ops[i])) {
                snprintf(e.msg, sizeof e.msg, "coordinator %s is a standby; %s",
                         s->r->self->id,
                         x.leader_id[0] ? "the leader is named in this reply"
                                        : "no leader is known right now: retry "
                                          "in a few seconds");
                resp.code = IM_ENOTLEADER;
                resp.error = e.msg;
                resp.leader_id = x.leader_id;
                resp.leader_api = x.leader_api;
                out = response_msg(&resp);
                goto done;
            }
    for (size_t i = 0; i < req->n_ops; i++) {
        results[i] = run_op(&x, req->ops[i], &sizes[i]);
        if (results[i] == NULL) {
            for (size_t k = 0; k < i; k++)
                free(results[k]);
            resp.code = IM_ENOMEM;
            resp.error = (char *)"out of memory while answering";
            out = response_msg(&resp);
            goto done;
        }
    }
    /* Response.results (field 3) as the packed results, in order. */
    if (nng_msg_alloc(&out, 0) == 0) {
        for (size_t i = 0; i < req->n_ops; i++) {
            uint8_t hdr[11];
            size_t h = 0;
            hdr[h++] = (3 << 3) | 2;
            h += varint(hdr + h, sizes[i]);
            if (nng_msg_append(out, hdr, h) != 0 ||
                nng_msg_append(out, results[i], sizes[i]) != 0) {
                nng_msg_free(out);
                out = NULL;
                break;
            }
        }
    }

    for (size_t i = 0; i < req->n_ops; i++)
        free(results[i]);
done:
    im__request__free_unpacked(req, NULL);
    im__signed_request__free_unpacked(sreq, NULL);
    return out;
}

int
server_start(struct server *s, struct replica *r, struct majors *majors,
             const struct config *cfg, struct im_err *e)
{
    struct link_server_cfg sc = {
        .what = "site",
        .key = &r->key,
        .peers_count = cfg->sites_count,
        .peer_of = site_of,
        .peer_name = site_name,
        .serve = serve_node,
        .other = serve_operator,
        .recv_max = COORD_RECV_MAX,
        .workers = COORD_SERVER_WORKERS,
    };
    int rv;

    memset(s, 0, sizeof *s);
    s->r = r;
    s->majors = majors;
    s->cfg = cfg;
    sc.arg = s;
    config_cluster_id(cfg, sc.cluster_id);
    if ((rv = link_server_start(&s->link, cfg->coord.listen, &sc, e)) != 0)
        return rv;
    s->started = 1;
    return 0;
}

void
server_close(struct server *s)
{
    if (s->started)
        link_server_close(&s->link);
    s->started = 0;
}
