/* config: see config.h.
 *
 * Our own INI reader rather than libinih: Debian's libinih is built with a
 * fixed 200-byte line buffer and treats an indented line as a continuation of
 * the previous value, both surprising in a file people edit; what we need is
 * sixty lines with exact line numbers. */
#include "config.h"

#include <sodium.h>

#include "clock.h"
#include "etcd.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "clock.h"
#include "text.h"

/* A config file is a few hundred lines; this bounds a mistaken path to a
 * large file. */
#define CONFIG_SIZE_MAX (1024 * 1024)

/* Keys one section may set, and their length: only known keys are
 * recorded (to refuse a key set twice), so these bound our own tables. */
#define SECTION_KEYS_MAX 16
#define KEY_NAME_MAX 31

struct parser {
    struct config *cfg;
    const char *name;   /* file name for messages */
    char dir[PATH_MAX_IM + 1]; /* directory of the file, for relative paths */
    int line;
    enum {
        SEC_NONE,
        SEC_NODE,
        SEC_SITE,
        SEC_OPERATOR,
        SEC_HTTP,
        SEC_INTEGRATION,
        SEC_NOTIFY,
        SEC_COORD,
        SEC_COORDINATOR,
        SEC_ETCD
    } section;
    void *current;      /* struct cfg_site *, cfg_operator *, cfg_integration *,
                           cfg_notify * or cfg_coordinator * */
    int node_seen;
    struct im_err *e;
    /* Keys set so far in the current section: a second 'key =' would
     * silently override the first (a second pubkey for one operator). */
    struct {
        char name[KEY_NAME_MAX + 1];
        int line;
    } keys[SECTION_KEYS_MAX];
    size_t keys_count;
};

static int
perr(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
perr(struct parser *p, const char *fmt, ...)
{
    char msg[IM_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (p->line > 0)
        return im_errf(p->e, IM_ECONFIG, "%s:%d: %s", p->name, p->line, msg);
    return im_errf(p->e, IM_ECONFIG, "%s: %s", p->name, msg);
}

static char *
trim(char *s)
{
    char *end;
    while (isspace((unsigned char)*s))
        s++;
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

int
config_check_site_code(const char *s)
{
    size_t n = strlen(s);
    if (n < SITE_CODE_MIN || n > SITE_CODE_MAX || !isupper((unsigned char)s[0]))
        return IM_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!isupper((unsigned char)s[i]) && !isdigit((unsigned char)s[i]))
            return IM_EINVAL;
    return 0;
}

static int
site_code(struct parser *p, const char *in, char out[SITE_CODE_MAX + 1])
{
    char up[SITE_CODE_MAX + 2];
    size_t n = strlen(in);
    if (n > SITE_CODE_MAX)
        return perr(p, "site code '%s' is longer than %d characters", in,
                    SITE_CODE_MAX);
    for (size_t i = 0; i <= n; i++)
        up[i] = (char)toupper((unsigned char)in[i]);
    if (config_check_site_code(up) != 0)
        return perr(p,
                    "invalid site code '%s': use %d to %d letters or digits, "
                    "starting with a letter",
                    in, SITE_CODE_MIN, SITE_CODE_MAX);
    memcpy(out, up, n + 1);
    return 0;
}

static int
copy_str(struct parser *p, const char *key, const char *v, char *out,
         size_t max)
{
    size_t n = strlen(v);
    if (n == 0)
        return perr(p, "'%s' is empty", key);
    if (n > max)
        return perr(p, "'%s' is longer than %zu characters", key, max);
    memcpy(out, v, n + 1);
    return 0;
}

static int
copy_path(struct parser *p, const char *key, const char *v, char *out)
{
    char buf[2 * PATH_MAX_IM + 2];
    if (v[0] == '\0')
        return perr(p, "'%s' is empty", key);
    if (v[0] == '/' || p->dir[0] == '\0')
        snprintf(buf, sizeof buf, "%s", v);
    else
        snprintf(buf, sizeof buf, "%s/%s", p->dir, v);
    return copy_str(p, key, buf, out, PATH_MAX_IM);
}

static int
copy_url(struct parser *p, const char *key, const char *v, char *out)
{
    if (strncmp(v, "tcp://", 6) != 0 && strncmp(v, "ipc://", 6) != 0)
        return perr(p, "'%s' must be a tcp://HOST:PORT or ipc:///PATH address, "
                       "not '%s'", key, v);
    return copy_str(p, key, v, out, URL_MAX);
}

static int
parse_size(const char *v, uint64_t *out)
{
    static const struct {
        const char *suffix;
        uint64_t mult;
    } sfx[] = {{"", 1}, {"KiB", 1ULL << 10}, {"MiB", 1ULL << 20},
               {"GiB", 1ULL << 30}, {"TiB", 1ULL << 40}};
    char *end;
    unsigned long long n;
    if (!isdigit((unsigned char)v[0]))
        return IM_EINVAL;
    errno = 0;
    n = strtoull(v, &end, 10);
    if (errno != 0)
        return IM_EINVAL;
    for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++)
        if (strcmp(end, sfx[i].suffix) == 0) {
            if (n > UINT64_MAX / sfx[i].mult)
                return IM_EINVAL;
            *out = n * sfx[i].mult;
            return 0;
        }
    return IM_EINVAL;
}

static int
pubkey(struct parser *p, const char *v, uint8_t pk[KEY_PUB_BYTES])
{
    if (key_pub_decode(v, pk) != 0)
        return perr(p, "invalid public key '%s': expected ed25519:<43 base64url "
                       "characters>, as printed by 'imctl keygen'", v);
    return 0;
}

static int valid_name(const char *s);
static int cluster_name(struct parser *p, const char *v);

static int
on_node(struct parser *p, const char *k, const char *v)
{
    struct cfg_node *n = &p->cfg->node;
    if (strcmp(k, "site") == 0)
        return site_code(p, v, n->site);
    if (strcmp(k, "data") == 0)
        return copy_path(p, k, v, n->data);
    if (strcmp(k, "listen") == 0)
        return copy_url(p, k, v, n->listen);
    if (strcmp(k, "key") == 0)
        return copy_path(p, k, v, n->key);
    if (strcmp(k, "map_size") == 0) {
        if (parse_size(v, &n->map_size) != 0)
            return perr(p, "invalid map_size '%s': use a number with an "
                           "optional KiB, MiB, GiB or TiB suffix", v);
        if (n->map_size < MAP_SIZE_MIN)
            return perr(p, "map_size %s is below the minimum of 1MiB", v);
        return 0;
    }
    if (strcmp(k, "cluster") == 0)
        return cluster_name(p, v);
    if (strcmp(k, "peer_listen") == 0)
        return copy_url(p, k, v, n->peer_listen);
    if (strcmp(k, "remote_listen") == 0)
        return copy_url(p, k, v, n->remote_listen);
    return perr(p, "unknown key '%s' in [node] (known: site, data, listen, "
                   "key, map_size, cluster, peer_listen, remote_listen)", k);
}

static int
on_site(struct parser *p, const char *k, const char *v)
{
    struct cfg_site *s = p->current;
    if (strcmp(k, "name") == 0)
        return copy_str(p, k, v, s->name, PERSON_MAX);
    if (strcmp(k, "peer") == 0)
        return copy_url(p, k, v, s->peer);
    if (strcmp(k, "pubkey") == 0) {
        s->has_pk = 1;
        return pubkey(p, v, s->pk);
    }
    return perr(p, "unknown key '%s' in [site %s] (known: name, peer, pubkey)",
                k, s->code);
}

static int
on_operator(struct parser *p, const char *k, const char *v)
{
    struct cfg_operator *o = p->current;
    if (strcmp(k, "pubkey") == 0) {
        o->has_pk = 1;
        return pubkey(p, v, o->pk);
    }
    if (strcmp(k, "role") == 0) {
        if (strcmp(v, "admin") == 0)
            o->role = OP_ROLE_ADMIN;
        else if (strcmp(v, "responder") == 0)
            o->role = OP_ROLE_RESPONDER;
        else if (strcmp(v, "viewer") == 0)
            o->role = OP_ROLE_VIEWER;
        else
            return perr(p, "unknown role '%s' (known: admin, responder, viewer)",
                        v);
        return 0;
    }
    return perr(p, "unknown key '%s' in [operator %s] (known: pubkey, role)", k,
                o->name);
}

/* A duration between min and max ms ("3s", "500ms"). */
static int
duration(struct parser *p, const char *k, const char *v, uint64_t min,
         uint64_t max, uint64_t *out)
{
    uint64_t ms;
    if (clock_parse_duration(v, &ms) != 0)
        return perr(p, "invalid %s '%s': use a number and a unit, such as "
                       "500ms, 3s or 1m", k, v);
    if (ms < min || ms > max)
        return perr(p, "%s %s is outside %llums..%llums", k, v,
                    (unsigned long long)min, (unsigned long long)max);
    *out = ms;
    return 0;
}

static int
cluster_name(struct parser *p, const char *v)
{
    if (strlen(v) > CLUSTER_NAME_MAX || !valid_name(v))
        return perr(p, "invalid cluster name '%s': 1 to %d of letters, "
                       "digits, '-', '_', '.', '@'", v, CLUSTER_NAME_MAX);
    snprintf(p->cfg->node.cluster, sizeof p->cfg->node.cluster, "%s", v);
    return 0;
}

static int
on_coord(struct parser *p, const char *k, const char *v)
{
    struct cfg_coord *c = &p->cfg->coord;
    if (strcmp(k, "id") == 0) {
        if (strlen(v) > COORD_ID_MAX || !valid_name(v))
            return perr(p, "invalid coordinator id '%s': 1 to %d of letters, "
                           "digits, '-', '_', '.', '@'", v, COORD_ID_MAX);
        snprintf(c->id, sizeof c->id, "%s", v);
        return 0;
    }
    if (strcmp(k, "key") == 0)
        return copy_path(p, k, v, c->key);
    if (strcmp(k, "cluster") == 0)
        return cluster_name(p, v);
    if (strcmp(k, "listen") == 0)
        return copy_url(p, k, v, c->listen);
    if (strcmp(k, "lease") == 0)
        return duration(p, k, v, COORD_LEASE_MS_MIN, COORD_LEASE_MS_MAX,
                        &c->lease_ms);
    if (strcmp(k, "leader_ttl") == 0) {
        uint64_t ms;
        int rv = duration(p, k, v, 1000, COORD_LEADER_TTL_S_MAX * 1000ULL, &ms);
        if (rv != 0)
            return rv;
        if (ms % 1000 != 0)
            return perr(p, "leader_ttl %s is not whole seconds (etcd leases "
                           "are counted in seconds)", v);
        c->leader_ttl_s = ms / 1000;
        return 0;
    }
    if (strcmp(k, "min_ack") == 0)
        return duration(p, k, v, COORD_MIN_ACK_MS_FLOOR, COORD_MIN_ACK_MS_MAX,
                        &c->min_ack_ms);
    return perr(p, "unknown key '%s' in [coord] (known: id, key, cluster, "
                   "listen, lease, leader_ttl, min_ack)", k);
}

static int
on_coordinator(struct parser *p, const char *k, const char *v)
{
    struct cfg_coordinator *c = p->current;
    if (strcmp(k, "api") == 0)
        return copy_url(p, k, v, c->api);
    if (strcmp(k, "pubkey") == 0) {
        c->has_pk = 1;
        return pubkey(p, v, c->pk);
    }
    return perr(p, "unknown key '%s' in [coordinator %s] (known: api, pubkey)",
                k, c->id);
}

static int
on_etcd(struct parser *p, const char *k, const char *v)
{
    struct cfg_etcd *x = &p->cfg->etcd;
    if (strcmp(k, "endpoints") == 0) {
        char eps[ETCD_ENDPOINTS_MAX][URL_MAX + 1];
        size_t n;
        struct im_err e = {0};
        if (etcd_endpoints_parse(v, eps, &n, &e) != 0)
            return perr(p, "%s", im_errmsg(&e));
        return copy_str(p, k, v, x->endpoints, ETCD_ENDPOINTS_TEXT_MAX);
    }
    if (strcmp(k, "ca") == 0)
        return copy_path(p, k, v, x->ca);
    if (strcmp(k, "cert") == 0)
        return copy_path(p, k, v, x->cert);
    if (strcmp(k, "key") == 0)
        return copy_path(p, k, v, x->key);
    if (strcmp(k, "timeout") == 0)
        return duration(p, k, v, 100, 60000, &x->timeout_ms);
    if (strcmp(k, "prefix") == 0) {
        size_t n = strlen(v);
        if (n < 2 || n > ETCD_PREFIX_MAX || v[0] != '/' || v[n - 1] == '/')
            return perr(p, "invalid prefix '%s': 2 to %d characters, starting "
                           "with '/' and not ending with one", v, ETCD_PREFIX_MAX);
        for (size_t i = 0; i < n; i++)
            if (!isalnum((unsigned char)v[i]) && strchr("/-_.", v[i]) == NULL)
                return perr(p, "invalid prefix '%s': only letters, digits and "
                               "'/', '-', '_', '.'", v);
        memcpy(x->prefix, v, n + 1);
        return 0;
    }
    return perr(p, "unknown key '%s' in [etcd] (known: endpoints, ca, cert, "
                   "key, prefix, timeout)", k);
}

static int
valid_name(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.' &&
            *s != '@')
            return 0;
    return 1;
}

/* ---- [http], [integration NAME], [notify NAME] ---- */

static int
parse_bool(struct parser *p, const char *k, const char *v, int *out)
{
    if (strcmp(v, "true") == 0 || strcmp(v, "yes") == 0 || strcmp(v, "1") == 0)
        *out = 1;
    else if (strcmp(v, "false") == 0 || strcmp(v, "no") == 0 ||
             strcmp(v, "0") == 0)
        *out = 0;
    else
        return perr(p, "'%s' must be true or false, not '%s'", k, v);
    return 0;
}

static int
parse_duration(struct parser *p, const char *k, const char *v, uint64_t min_ms,
               uint64_t max_ms, uint64_t *out)
{
    uint64_t ms;
    if (clock_parse_duration(v, &ms) != 0)
        return perr(p, "invalid %s '%s': use a number and a unit, e.g. 500ms, "
                       "30s, 5m", k, v);
    if (ms < min_ms || ms > max_ms)
        return perr(p, "%s '%s' is out of range (%llums to %llums)", k, v,
                    (unsigned long long)min_ms, (unsigned long long)max_ms);
    *out = ms;
    return 0;
}

static int
on_http(struct parser *p, const char *k, const char *v)
{
    struct cfg_http *h = &p->cfg->http;
    if (strcmp(k, "listen") == 0) {
        const char *port;
        if (strncmp(v, "http://", 7) != 0)
            return perr(p, "'listen' in [http] must be http://HOST:PORT, not "
                           "'%s' (TLS belongs to a proxy in front)", v);
        port = strrchr(v + 7, ':');
        if (port == NULL || port[1] == '\0' ||
            strspn(port + 1, "0123456789") != strlen(port + 1) ||
            strchr(v + 7, '/') != NULL)
            return perr(p, "'listen' in [http] must be http://HOST:PORT with a "
                           "numeric port and no path, not '%s'", v);
        return copy_str(p, k, v, h->listen, URL_MAX);
    }
    if (strcmp(k, "summary_interval") == 0)
        return parse_duration(p, k, v, 100, 24ULL * 3600 * 1000,
                              &h->summary_interval_ms);
    if (strcmp(k, "status_title") == 0) {
        struct im_err e;
        if (text_check(v, TITLE_MAX, TEXT_LINE, 1, "status_title", &e) != 0)
            return perr(p, "%s", e.msg);
        return copy_str(p, k, v, h->status_title, TITLE_MAX);
    }
    return perr(p, "unknown key '%s' in [http] (known: listen, "
                   "summary_interval, status_title)", k);
}

static int
parse_level(const char *v, size_t n, int *out)
{
    static const char *const names[] = {"high", "medium", "low"};
    for (int i = 0; i < 3; i++)
        if (strlen(names[i]) == n && strncmp(v, names[i], n) == 0) {
            *out = i + 1;
            return 0;
        }
    return IM_EINVAL;
}

static const char *const severity_names[SEV_COUNT_] = {"critical", "error",
                                                       "warning", "info"};

int
config_severity_parse(const char *name, enum alert_severity *out)
{
    for (int i = 0; i < SEV_COUNT_; i++)
        if (strcmp(name, severity_names[i]) == 0) {
            *out = (enum alert_severity)i;
            return 0;
        }
    return IM_EINVAL;
}

const char *
config_severity_name(enum alert_severity s)
{
    return (unsigned)s < SEV_COUNT_ ? severity_names[s] : "unknown";
}

const char *
config_integ_type_name(enum integ_type t)
{
    switch (t) {
    case INTEG_PAGERDUTY: return "pagerduty";
    case INTEG_ALERTMANAGER: return "alertmanager";
    case INTEG_API: return "api";
    }
    return "unknown";
}

static const char *const rule_names[NOTIFY_RULES_COUNT_] = {
    "new_p1", "new_p2", "escalation", "owner_change", "major", "resolved"};

const char *
config_notify_rule_name(enum notify_rule r)
{
    return (unsigned)r < NOTIFY_RULES_COUNT_ ? rule_names[r] : "unknown";
}

/* A secret: INTEGRATION_KEY_MIN..MAX printable ASCII characters, no
 * spaces (it travels in a header or a JSON string). */
static int
secret(struct parser *p, const char *k, const char *v, char *out)
{
    size_t n = strlen(v);
    if (n < INTEGRATION_KEY_MIN || n > INTEGRATION_KEY_MAX)
        return perr(p, "'%s' must be %d to %d characters long (it is %zu)", k,
                    INTEGRATION_KEY_MIN, INTEGRATION_KEY_MAX, n);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] <= 0x20 || (unsigned char)v[i] >= 0x7f)
            return perr(p, "'%s' may hold printable ASCII characters only, "
                           "without spaces", k);
    memcpy(out, v, n + 1);
    return 0;
}

static int
on_integration(struct parser *p, const char *k, const char *v)
{
    struct cfg_integration *in = p->current;
    struct im_err e;

    if (strcmp(k, "type") == 0) {
        if (strcmp(v, "pagerduty") == 0)
            in->type = INTEG_PAGERDUTY;
        else if (strcmp(v, "alertmanager") == 0)
            in->type = INTEG_ALERTMANAGER;
        else if (strcmp(v, "api") == 0)
            in->type = INTEG_API;
        else
            return perr(p, "unknown integration type '%s' (known: pagerduty, "
                           "alertmanager, api)", v);
        return 0;
    }
    if (strcmp(k, "key") == 0 || strcmp(k, "token") == 0)
        return secret(p, k, v, in->key);
    if (strcmp(k, "service") == 0) {
        if (text_check(v, SERVICE_MAX, TEXT_LINE, 1, "service", &e) != 0)
            return perr(p, "%s", e.msg);
        return copy_str(p, k, v, in->service, SERVICE_MAX);
    }
    if (strcmp(k, "category") == 0) {
        /* "app/payments": category and subcategory, as imctl takes it. */
        const char *slash = strchr(v, '/');
        size_t n = slash ? (size_t)(slash - v) : strlen(v);
        if (n == 0 || n > CATEGORY_MAX || (slash && (strlen(slash + 1) == 0 ||
                                                     strlen(slash + 1) > CATEGORY_MAX)))
            return perr(p, "invalid category '%s': CATEGORY[/SUBCATEGORY], each "
                           "1 to %d characters", v, CATEGORY_MAX);
        memcpy(in->category, v, n);
        in->category[n] = '\0';
        snprintf(in->subcategory, sizeof in->subcategory, "%s",
                 slash ? slash + 1 : "");
        if (text_check(in->category, CATEGORY_MAX, TEXT_LINE, 1, "category",
                       &e) != 0 ||
            text_check(in->subcategory, CATEGORY_MAX, TEXT_LINE, 0,
                       "subcategory", &e) != 0)
            return perr(p, "%s", e.msg);
        return 0;
    }
    if (strncmp(k, "severity.", 9) == 0) {
        enum alert_severity sev;
        const char *slash = strchr(v, '/');
        int impact, urgency;
        if (config_severity_parse(k + 9, &sev) != 0)
            return perr(p, "unknown severity in '%s' (known: severity.critical, "
                           "severity.error, severity.warning, severity.info)", k);
        if (slash == NULL || parse_level(v, (size_t)(slash - v), &impact) != 0 ||
            parse_level(slash + 1, strlen(slash + 1), &urgency) != 0)
            return perr(p, "invalid %s '%s': IMPACT/URGENCY, each high, medium "
                           "or low (e.g. high/medium)", k, v);
        in->impact[sev] = impact;
        in->urgency[sev] = urgency;
        return 0;
    }
    if (strcmp(k, "default_severity") == 0) {
        if (config_severity_parse(v, &in->default_severity) != 0)
            return perr(p, "unknown severity '%s' (known: critical, error, "
                           "warning, info)", v);
        return 0;
    }
    if (strcmp(k, "resolve_when_all_resolved") == 0)
        return parse_bool(p, k, v, &in->resolve_when_all_resolved);
    if (strcmp(k, "role") == 0) {
        if (strcmp(v, "admin") == 0)
            in->role = OP_ROLE_ADMIN;
        else if (strcmp(v, "responder") == 0)
            in->role = OP_ROLE_RESPONDER;
        else if (strcmp(v, "viewer") == 0)
            in->role = OP_ROLE_VIEWER;
        else
            return perr(p, "unknown role '%s' (known: admin, responder, viewer)",
                        v);
        return 0;
    }
    return perr(p, "unknown key '%s' in [integration %s] (known: type, key, "
                   "token, service, category, severity.LEVEL, default_severity, "
                   "resolve_when_all_resolved, role)", k, in->name);
}

static int
parse_rules(struct parser *p, const char *v, unsigned *out)
{
    char buf[CONFIG_LINE_MAX + 1], *tok, *save = NULL;
    unsigned rules = 0;

    snprintf(buf, sizeof buf, "%s", v);
    for (tok = strtok_r(buf, ", ", &save); tok != NULL;
         tok = strtok_r(NULL, ", ", &save)) {
        int found = 0;
        for (int r = 0; r < NOTIFY_RULES_COUNT_; r++)
            if (strcmp(tok, rule_names[r]) == 0) {
                rules |= 1u << r;
                found = 1;
            }
        if (!found)
            return perr(p, "unknown rule '%s' in 'on' (known: new_p1, new_p2, "
                           "escalation, owner_change, major, resolved)", tok);
    }
    if (rules == 0)
        return perr(p, "'on' names no rule (known: new_p1, new_p2, escalation, "
                       "owner_change, major, resolved)");
    *out = rules;
    return 0;
}

static int
on_notify(struct parser *p, const char *k, const char *v)
{
    struct cfg_notify *n = p->current;
    struct im_err e;

    if (strcmp(k, "type") == 0) {
        if (strcmp(v, "webhook") == 0)
            n->type = NOTIFY_WEBHOOK;
        else if (strcmp(v, "command") == 0)
            n->type = NOTIFY_COMMAND;
        else
            return perr(p, "unknown notify type '%s' (known: webhook, command)",
                        v);
        return 0;
    }
    if (strcmp(k, "url") == 0) {
        if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0)
            return perr(p, "'url' must start with http:// or https://, not '%s'",
                        v);
        return copy_str(p, k, v, n->url, URL_MAX);
    }
    if (strcmp(k, "command") == 0)
        return copy_str(p, k, v, n->command, PATH_MAX_IM);
    if (strcmp(k, "on") == 0)
        return parse_rules(p, v, &n->rules);
    if (strcmp(k, "service") == 0) {
        if (text_check(v, SERVICE_MAX, TEXT_LINE, 1, "service", &e) != 0)
            return perr(p, "%s", e.msg);
        return copy_str(p, k, v, n->service, SERVICE_MAX);
    }
    if (strcmp(k, "attempts") == 0) {
        char *end;
        unsigned long a = strtoul(v, &end, 10);
        if (!isdigit((unsigned char)v[0]) || *end != '\0' || a < 1 ||
            a > NOTIFY_ATTEMPTS_MAX)
            return perr(p, "'attempts' must be 1 to %d, not '%s'",
                        NOTIFY_ATTEMPTS_MAX, v);
        n->attempts = (unsigned)a;
        return 0;
    }
    if (strcmp(k, "backoff") == 0)
        return parse_duration(p, k, v, 10, NOTIFY_BACKOFF_MS_MAX, &n->backoff_ms);
    if (strcmp(k, "timeout") == 0)
        return parse_duration(p, k, v, 100, 120 * 1000, &n->timeout_ms);
    return perr(p, "unknown key '%s' in [notify %s] (known: type, url, command, "
                   "on, service, attempts, backoff, timeout)", k, n->name);
}

static int
section_name(struct parser *p, const char *kind, const char *arg)
{
    if (*arg == '\0')
        return perr(p, "[%s] needs a name: [%s NAME]", kind, kind);
    if (strlen(arg) > INTEGRATION_NAME_MAX || !valid_name(arg))
        return perr(p, "invalid %s name '%s': up to %d of letters, digits, "
                       "'-', '_', '.', '@'", kind, arg, INTEGRATION_NAME_MAX);
    return 0;
}

static int
integration_section(struct parser *p, const char *arg)
{
    struct config *c = p->cfg;
    struct cfg_integration *in;
    int rv;

    if ((rv = section_name(p, "integration", arg)) != 0)
        return rv;
    for (size_t i = 0; i < c->integrations_count; i++)
        if (strcmp(c->integrations[i].name, arg) == 0)
            return perr(p, "[integration %s] appears twice", arg);
    if (c->integrations_count == INTEGRATIONS_MAX)
        return perr(p, "more than %d integrations", INTEGRATIONS_MAX);
    in = &c->integrations[c->integrations_count++];
    memset(in, 0, sizeof *in);
    snprintf(in->name, sizeof in->name, "%s", arg);
    /* PagerDuty's own reading of its severities. */
    in->impact[SEV_CRITICAL] = 1, in->urgency[SEV_CRITICAL] = 1;
    in->impact[SEV_ERROR] = 1, in->urgency[SEV_ERROR] = 2;
    in->impact[SEV_WARNING] = 2, in->urgency[SEV_WARNING] = 2;
    in->impact[SEV_INFO] = 3, in->urgency[SEV_INFO] = 3;
    in->default_severity = SEV_WARNING;
    in->resolve_when_all_resolved = 1;
    in->role = OP_ROLE_RESPONDER;
    in->line = p->line;
    p->current = in;
    p->section = SEC_INTEGRATION;
    return 0;
}

static int
notify_section(struct parser *p, const char *arg)
{
    struct config *c = p->cfg;
    struct cfg_notify *n;
    int rv;

    if ((rv = section_name(p, "notify", arg)) != 0)
        return rv;
    for (size_t i = 0; i < c->notify_count; i++)
        if (strcmp(c->notify[i].name, arg) == 0)
            return perr(p, "[notify %s] appears twice", arg);
    if (c->notify_count == NOTIFY_CHANNELS_MAX)
        return perr(p, "more than %d notify channels", NOTIFY_CHANNELS_MAX);
    n = &c->notify[c->notify_count++];
    memset(n, 0, sizeof *n);
    snprintf(n->name, sizeof n->name, "%s", arg);
    n->attempts = 5;
    n->backoff_ms = 1000;
    n->timeout_ms = 5000;
    n->line = p->line;
    p->current = n;
    p->section = SEC_NOTIFY;
    return 0;
}

static int
validate_http(struct parser *p)
{
    struct config *c = p->cfg;

    if (c->http.line != 0 && c->http.listen[0] == '\0') {
        p->line = c->http.line;
        return perr(p, "[http] has no 'listen' (e.g. listen = "
                       "http://127.0.0.1:7480)");
    }
    for (size_t i = 0; i < c->integrations_count; i++) {
        const struct cfg_integration *in = &c->integrations[i];
        const char *what = in->type == INTEG_PAGERDUTY ? "key" : "token";
        p->line = in->line;
        if (in->type == 0)
            return perr(p, "[integration %s] has no 'type' (pagerduty, "
                           "alertmanager or api)", in->name);
        if (in->key[0] == '\0')
            return perr(p, "[integration %s] has no '%s'", in->name, what);
        if (in->type != INTEG_API && in->service[0] == '\0')
            return perr(p, "[integration %s] has no 'service' (the service its "
                           "incidents are opened for)", in->name);
        if (c->http.listen[0] == '\0')
            return perr(p, "[integration %s] needs HTTP: add an [http] section "
                           "with listen = http://HOST:PORT", in->name);
        for (size_t j = 0; j < i; j++)
            if (sodium_memcmp(c->integrations[j].key, in->key,
                              sizeof in->key) == 0)
                return perr(p, "[integration %s] has the same %s as "
                               "[integration %s]", in->name, what,
                            c->integrations[j].name);
    }
    for (size_t i = 0; i < c->notify_count; i++) {
        const struct cfg_notify *n = &c->notify[i];
        p->line = n->line;
        if (n->type == 0)
            return perr(p, "[notify %s] has no 'type' (webhook or command)",
                        n->name);
        if (n->type == NOTIFY_WEBHOOK && n->url[0] == '\0')
            return perr(p, "[notify %s] is a webhook without a 'url'", n->name);
        if (n->type == NOTIFY_COMMAND && n->command[0] == '\0')
            return perr(p, "[notify %s] is a command without a 'command'",
                        n->name);
        if (n->type == NOTIFY_WEBHOOK && n->command[0] != '\0')
            return perr(p, "[notify %s] is a webhook: 'command' does not apply",
                        n->name);
        if (n->type == NOTIFY_COMMAND && n->url[0] != '\0')
            return perr(p, "[notify %s] is a command: 'url' does not apply",
                        n->name);
        if (n->rules == 0)
            return perr(p, "[notify %s] has no 'on' (rules: new_p1, new_p2, "
                           "escalation, owner_change, major, resolved)", n->name);
    }
    return 0;
}

const struct cfg_integration *
config_integration_by_key(const struct config *cfg, enum integ_type type,
                          const char *key)
{
    char padded[INTEGRATION_KEY_MAX + 1];
    const struct cfg_integration *found = NULL;
    size_t n = key ? strlen(key) : 0;

    if (n == 0 || n > INTEGRATION_KEY_MAX)
        return NULL;
    memset(padded, 0, sizeof padded);
    memcpy(padded, key, n);
    /* Every entry is compared, in constant time, so that timing tells
     * nothing about how much of a guessed key matched. */
    for (size_t i = 0; i < cfg->integrations_count; i++) {
        const struct cfg_integration *in = &cfg->integrations[i];
        if (sodium_memcmp(in->key, padded, sizeof padded) == 0 &&
            in->type == type)
            found = in;
    }
    return found;
}

static int
on_section(struct parser *p, char *hdr)
{
    char *kind = trim(hdr), *arg = kind;
    struct config *c = p->cfg;

    while (*arg && !isspace((unsigned char)*arg))
        arg++;
    if (*arg)
        *arg++ = '\0';
    arg = trim(arg);

    if (strcmp(kind, "node") == 0) {
        if (*arg)
            return perr(p, "[node] takes no name");
        if (p->node_seen)
            return perr(p, "[node] appears twice");
        p->node_seen = 1;
        c->node.line = p->line;
        p->section = SEC_NODE;
        return 0;
    }
    if (strcmp(kind, "site") == 0) {
        struct cfg_site *s;
        char code[SITE_CODE_MAX + 1];
        int rv;
        if (*arg == '\0')
            return perr(p, "[site] needs a site code: [site AMS]");
        if ((rv = site_code(p, arg, code)) != 0)
            return rv;
        if (config_site(c, code) != NULL)
            return perr(p, "[site %s] appears twice", code);
        if (c->sites_count == SITES_MAX)
            return perr(p, "more than %d sites", SITES_MAX);
        s = &c->sites[c->sites_count++];
        memset(s, 0, sizeof *s);
        memcpy(s->code, code, sizeof code);
        s->line = p->line;
        p->current = s;
        p->section = SEC_SITE;
        return 0;
    }
    if (strcmp(kind, "operator") == 0) {
        struct cfg_operator *o;
        if (*arg == '\0')
            return perr(p, "[operator] needs a name: [operator alice]");
        if (strlen(arg) > OPERATOR_NAME_MAX || !valid_name(arg))
            return perr(p, "invalid operator name '%s': up to %d of letters, "
                           "digits, '-', '_', '.', '@'", arg, OPERATOR_NAME_MAX);
        for (size_t i = 0; i < c->operators_count; i++)
            if (strcmp(c->operators[i].name, arg) == 0)
                return perr(p, "[operator %s] appears twice", arg);
        if (c->operators_count == OPERATORS_MAX)
            return perr(p, "more than %d operators", OPERATORS_MAX);
        o = &c->operators[c->operators_count++];
        memset(o, 0, sizeof *o);
        snprintf(o->name, sizeof o->name, "%s", arg);
        o->role = OP_ROLE_RESPONDER;
        o->line = p->line;
        p->current = o;
        p->section = SEC_OPERATOR;
        return 0;
    }
    if (strcmp(kind, "http") == 0) {
        if (*arg)
            return perr(p, "[http] takes no name");
        if (c->http.line != 0)
            return perr(p, "[http] appears twice");
        c->http.line = p->line;
        p->section = SEC_HTTP;
        return 0;
    }
    if (strcmp(kind, "integration") == 0)
        return integration_section(p, arg);
    if (strcmp(kind, "notify") == 0)
        return notify_section(p, arg);
    if (strcmp(kind, "coord") == 0) {
        if (*arg)
            return perr(p, "[coord] takes no name: its id goes in 'id ='");
        if (c->coord.line != 0)
            return perr(p, "[coord] appears twice");
        c->coord.line = p->line;
        p->section = SEC_COORD;
        return 0;
    }
    if (strcmp(kind, "coordinator") == 0) {
        struct cfg_coordinator *k;
        if (*arg == '\0')
            return perr(p, "[coordinator] needs an id: [coordinator c1]");
        if (strlen(arg) > COORD_ID_MAX || !valid_name(arg))
            return perr(p, "invalid coordinator id '%s': 1 to %d of letters, "
                           "digits, '-', '_', '.', '@'", arg, COORD_ID_MAX);
        if (config_coordinator(c, arg) != NULL)
            return perr(p, "[coordinator %s] appears twice", arg);
        if (c->coordinators_count == COORDINATORS_MAX)
            return perr(p, "more than %d coordinators", COORDINATORS_MAX);
        k = &c->coordinators[c->coordinators_count++];
        memset(k, 0, sizeof *k);
        snprintf(k->id, sizeof k->id, "%s", arg);
        k->line = p->line;
        p->current = k;
        p->section = SEC_COORDINATOR;
        return 0;
    }
    if (strcmp(kind, "etcd") == 0) {
        if (*arg)
            return perr(p, "[etcd] takes no name");
        if (c->etcd.line != 0)
            return perr(p, "[etcd] appears twice");
        c->etcd.line = p->line;
        p->section = SEC_ETCD;
        return 0;
    }
    return perr(p, "unknown section [%s] (known: node, site CODE, operator NAME, "
                   "http, integration NAME, notify NAME, coord, coordinator ID, "
                   "etcd)", kind);
}

/* The sites and operators, common to nodes and coordinators. */
static int validate_members(struct parser *p);

/* [coordinator] sections, in any file (nodes dial them). */
static int
validate_coordinators(struct parser *p)
{
    struct config *c = p->cfg;
    for (size_t i = 0; i < c->coordinators_count; i++) {
        const struct cfg_coordinator *k = &c->coordinators[i];
        p->line = k->line;
        if (k->api[0] == '\0')
            return perr(p, "[coordinator %s] has no 'api' address", k->id);
        if (!k->has_pk)
            return perr(p, "[coordinator %s] has no 'pubkey'", k->id);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(k->api, c->coordinators[j].api) == 0)
                return perr(p, "[coordinator %s] has the same api address as "
                               "[coordinator %s]", k->id, c->coordinators[j].id);
            if (memcmp(k->pk, c->coordinators[j].pk, KEY_PUB_BYTES) == 0)
                return perr(p, "[coordinator %s] has the same pubkey as "
                               "[coordinator %s]", k->id, c->coordinators[j].id);
        }
        for (size_t j = 0; j < c->sites_count; j++)
            if (memcmp(k->pk, c->sites[j].pk, KEY_PUB_BYTES) == 0)
                return perr(p, "[coordinator %s] has the same pubkey as "
                               "[site %s]: each process needs its own key",
                            k->id, c->sites[j].code);
    }
    return 0;
}

/* A coordinator replica's file: [coord], its [coordinator], [etcd]. */
static int
validate_coord(struct parser *p)
{
    struct config *c = p->cfg;
    const struct cfg_coordinator *own;

    p->line = c->coord.line;
    if (c->coord.id[0] == '\0')
        return perr(p, "[coord] has no 'id'");
    if (c->coord.key[0] == '\0')
        return perr(p, "[coord] has no 'key' (this replica's identity, from "
                       "imctl keygen)");
    own = config_coordinator(c, c->coord.id);
    if (own == NULL)
        return perr(p, "[coord] id %s has no [coordinator %s] section with "
                       "its api address and public key", c->coord.id,
                    c->coord.id);
    if (c->etcd.line == 0)
        return perr(p, "no [etcd] section: a coordinator keeps its decisions "
                       "in etcd");
    p->line = c->etcd.line;
    if (c->etcd.endpoints[0] == '\0')
        return perr(p, "[etcd] has no 'endpoints'");
    if (c->etcd.cert[0] != '\0' && c->etcd.key[0] == '\0')
        return perr(p, "[etcd] has a 'cert' without its 'key'");
    if (c->etcd.key[0] != '\0' && c->etcd.cert[0] == '\0')
        return perr(p, "[etcd] has a 'key' without its 'cert'");
    if (c->sites_count == 0) {
        p->line = 0;
        return perr(p, "no [site CODE] section: the coordinator would have "
                       "no sites to watch");
    }
    return validate_members(p);
}

static int
validate(struct parser *p)
{
    struct config *c = p->cfg;
    const struct cfg_site *own;

    int rv;

    if ((rv = validate_coordinators(p)) != 0)
        return rv;
    p->line = 0;
    if (p->node_seen && c->coord.line != 0)
        return perr(p, "both [node] and [coord]: a file configures one "
                       "process, a node or a coordinator replica");
    if (c->coord.line != 0)
        return validate_coord(p);
    if (!p->node_seen)
        return perr(p, "no [node] section (or [coord], for imcoord)");
    p->line = c->node.line;
    if (c->node.site[0] == '\0')
        return perr(p, "[node] has no 'site'");
    if (c->node.data[0] == '\0')
        return perr(p, "[node] has no 'data' directory");
    /* Checked here, not only in finish_paths, so that the message names
     * the line. */
    if (c->node.key[0] == '\0' &&
        strlen(c->node.data) + sizeof "/site.key" - 1 > PATH_MAX_IM)
        return perr(p, "[node] has no 'key', and 'data' is too long for the "
                       "default DATA/site.key (over %d characters): set 'key'",
                    PATH_MAX_IM);
    own = config_site(c, c->node.site);
    if (own == NULL)
        return perr(p, "[node] site %s has no [site %s] section with its "
                       "public key", c->node.site, c->node.site);
    /* The API socket is signed but not encrypted: it stays on this host.
     * Other hosts use remote_listen, over the secure channel. */
    if (!config_url_is_local(c->node.listen))
        return perr(p, "[node] listen %s is not a loopback or ipc:// address: "
                       "the API there is not encrypted; keep it on loopback "
                       "and set remote_listen for operators on other hosts "
                       "(secure channel)", c->node.listen);
    if (c->node.remote_listen[0] != '\0' &&
        strcmp(c->node.remote_listen, c->node.listen) == 0)
        return perr(p, "[node] remote_listen is the same address as listen");
    return validate_members(p);
}

int
config_url_is_local(const char *url)
{
    static const char *const local[] = {
        "ipc://", "inproc://", "tcp://127.", "tcp://localhost:",
        "tcp://[::1]:", "tcp4://127.", "tcp6://[::1]:",
    };
    for (size_t i = 0; i < sizeof local / sizeof local[0]; i++)
        if (strncmp(url, local[i], strlen(local[i])) == 0)
            return 1;
    return 0;
}

static int
validate_members(struct parser *p)
{
    struct config *c = p->cfg;

    for (size_t i = 0; i < c->sites_count; i++) {
        p->line = c->sites[i].line;
        if (!c->sites[i].has_pk)
            return perr(p, "[site %s] has no 'pubkey'", c->sites[i].code);
        if (c->sites[i].peer[0] != '\0') {
            if (p->node_seen && strcmp(c->sites[i].peer, c->node.listen) == 0)
                return perr(p, "[site %s] peer %s is also this node's API "
                               "address", c->sites[i].code, c->sites[i].peer);
            for (size_t j = 0; j < i; j++)
                if (strcmp(c->sites[i].peer, c->sites[j].peer) == 0)
                    return perr(p, "[site %s] has the same peer address as "
                                   "[site %s]", c->sites[i].code,
                                c->sites[j].code);
        }
        for (size_t j = 0; j < i; j++)
            if (memcmp(c->sites[i].pk, c->sites[j].pk, KEY_PUB_BYTES) == 0)
                return perr(p, "[site %s] has the same pubkey as [site %s]",
                            c->sites[i].code, c->sites[j].code);
    }
    if (c->operators_count == 0) {
        p->line = 0;
        return perr(p, "no [operator NAME] section: nobody could use this %s",
                    p->node_seen ? "node" : "coordinator");
    }
    for (size_t i = 0; i < c->operators_count; i++) {
        p->line = c->operators[i].line;
        if (!c->operators[i].has_pk)
            return perr(p, "[operator %s] has no 'pubkey'", c->operators[i].name);
        for (size_t j = 0; j < i; j++)
            if (memcmp(c->operators[i].pk, c->operators[j].pk, KEY_PUB_BYTES) == 0)
                return perr(p, "[operator %s] has the same pubkey as "
                               "[operator %s]",
                            c->operators[i].name, c->operators[j].name);
    }
    return validate_http(p);
}

static int
parse(struct parser *p, char *text)
{
    char *line = text, *next;
    int rv;

    for (p->line = 1; line != NULL && *line != '\0'; p->line++, line = next) {
        char *s, *eq;
        size_t raw = strcspn(line, "\n");
        next = line[raw] ? line + raw + 1 : NULL;
        line[raw] = '\0';
        if (raw > CONFIG_LINE_MAX)
            return perr(p, "line longer than %d characters", CONFIG_LINE_MAX);
        if (memchr(line, '\0', raw) != NULL && strlen(line) != raw)
            return perr(p, "NUL byte in line");
        s = trim(line);
        if (*s == '\0' || *s == '#' || *s == ';')
            continue;
        if (*s == '[') {
            char *close = strchr(s, ']');
            if (close == NULL || *trim(close + 1) != '\0')
                return perr(p, "malformed section header '%s': expected [name]", s);
            *close = '\0';
            if ((rv = on_section(p, s + 1)) != 0)
                return rv;
            p->keys_count = 0;
            continue;
        }
        eq = strchr(s, '=');
        if (eq == NULL)
            return perr(p, "expected 'key = value' or [section], got '%s'", s);
        *eq = '\0';
        char *k = trim(s), *v = trim(eq + 1);
        if (*k == '\0')
            return perr(p, "missing key before '='");
        for (size_t i = 0; i < p->keys_count; i++)
            if (strcmp(p->keys[i].name, k) == 0)
                return perr(p, "'%s' is set twice in this section (first on "
                               "line %d)", k, p->keys[i].line);
        switch (p->section) {
        case SEC_NONE:
            return perr(p, "'%s' is outside any section", k);
        case SEC_NODE:
            rv = on_node(p, k, v);
            break;
        case SEC_SITE:
            rv = on_site(p, k, v);
            break;
        case SEC_OPERATOR:
            rv = on_operator(p, k, v);
            break;
        case SEC_HTTP:
            rv = on_http(p, k, v);
            break;
        case SEC_INTEGRATION:
            rv = on_integration(p, k, v);
            break;
        case SEC_NOTIFY:
            rv = on_notify(p, k, v);
            break;
        case SEC_COORD:
            rv = on_coord(p, k, v);
            break;
        case SEC_COORDINATOR:
            rv = on_coordinator(p, k, v);
            break;
        case SEC_ETCD:
            rv = on_etcd(p, k, v);
            break;
        }
        if (rv != 0)
            return rv;
        /* k was accepted, so it is one of the section's known keys: more
         * or longer ones than the table holds is a bug here. */
        if (p->keys_count >= SECTION_KEYS_MAX || strlen(k) > KEY_NAME_MAX)
            abort();
        memcpy(p->keys[p->keys_count].name, k, strlen(k) + 1);
        p->keys[p->keys_count++].line = p->line;
    }
    return validate(p);
}

static void
defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->node.listen, sizeof cfg->node.listen, "%s",
             CONFIG_LISTEN_DEFAULT);
    cfg->node.map_size = MAP_SIZE_DEFAULT;
    snprintf(cfg->node.cluster, sizeof cfg->node.cluster, "%s",
             CONFIG_CLUSTER_DEFAULT);
    cfg->http.summary_interval_ms = ALERT_SUMMARY_INTERVAL_MS_DEFAULT;
    snprintf(cfg->http.status_title, sizeof cfg->http.status_title,
             "Service status");
    cfg->coord.lease_ms = COORD_LEASE_MS_DEFAULT;
    cfg->coord.leader_ttl_s = COORD_LEADER_TTL_S_DEFAULT;
    cfg->coord.min_ack_ms = COORD_MIN_ACK_MS_DEFAULT;
    cfg->etcd.timeout_ms = CONFIG_ETCD_TIMEOUT_MS_DEFAULT;
}

void
config_cluster_id(const struct config *cfg, uint8_t out[32])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, (const uint8_t *)"im-cluster-v1", 14);
    crypto_generichash_update(&st, (const uint8_t *)cfg->node.cluster,
                              strlen(cfg->node.cluster));
    crypto_generichash_final(&st, out, 32);
}

static int
finish_paths(struct config *cfg)
{
    if (cfg->coord.line != 0) {
        if (cfg->coord.listen[0] == '\0')
            snprintf(cfg->coord.listen, sizeof cfg->coord.listen, "%s",
                     config_coordinator(cfg, cfg->coord.id)->api);
        if (cfg->etcd.prefix[0] == '\0')
            snprintf(cfg->etcd.prefix, sizeof cfg->etcd.prefix, "%s%s",
                     CONFIG_ETCD_PREFIX_ROOT, cfg->node.cluster);
        return 0;
    }
    if (cfg->node.key[0] == '\0') {
        int n = snprintf(cfg->node.key, sizeof cfg->node.key, "%s/site.key",
                         cfg->node.data);
        if (n < 0 || (size_t)n >= sizeof cfg->node.key)
            return IM_ETOOBIG;
    }
    return 0;
}

int
config_parse(struct config *cfg, const char *name, const char *text,
             struct im_err *e)
{
    struct parser p = {.cfg = cfg, .name = name, .e = e};
    char *copy;
    int rv;

    defaults(cfg);
    snprintf(cfg->path, sizeof cfg->path, "%s", name);
    copy = strdup(text);
    if (copy == NULL)
        return im_errf(e, IM_ENOMEM, "%s: out of memory", name);
    rv = parse(&p, copy);
    free(copy);
    if (rv == 0 && finish_paths(cfg) != 0)
        rv = im_errf(e, IM_ECONFIG, "%s: key path too long", name);
    return rv;
}

int
config_load(struct config *cfg, const char *path, struct im_err *e)
{
    struct parser p = {.cfg = cfg, .name = path, .e = e};
    char *text, *slash;
    FILE *f;
    size_t n;
    int rv;

    f = fopen(path, "re");
    if (f == NULL)
        return im_errf(e, IM_ECONFIG, "%s: %s", path, strerror(errno));
    text = malloc(CONFIG_SIZE_MAX + 1);
    if (text == NULL) {
        fclose(f);
        return im_errf(e, IM_ENOMEM, "%s: out of memory", path);
    }
    n = fread(text, 1, CONFIG_SIZE_MAX + 1, f);
    if (ferror(f)) {
        /* A directory reads as an error (EISDIR), not as an empty file
         * that would fail later with a misleading "no [node] section". */
        int saved = errno;
        fclose(f);
        free(text);
        return im_errf(e, IM_ECONFIG, "%s: %s", path, strerror(saved));
    }
    fclose(f);
    if (n > CONFIG_SIZE_MAX) {
        free(text);
        return im_errf(e, IM_ECONFIG, "%s: larger than %d bytes", path,
                       CONFIG_SIZE_MAX);
    }
    text[n] = '\0';
    if (strlen(text) != n) {
        free(text);
        return im_errf(e, IM_ECONFIG, "%s: contains a NUL byte: not a text file",
                       path);
    }
    defaults(cfg);
    snprintf(cfg->path, sizeof cfg->path, "%s", path);
    snprintf(p.dir, sizeof p.dir, "%s", path);
    slash = strrchr(p.dir, '/');
    if (slash != NULL)
        *slash = '\0';
    else
        p.dir[0] = '\0';
    rv = parse(&p, text);
    free(text);
    if (rv == 0 && finish_paths(cfg) != 0)
        rv = im_errf(e, IM_ECONFIG, "%s: key path too long", path);
    return rv;
}

const struct cfg_operator *
config_operator_by_key(const struct config *cfg, const uint8_t pk[KEY_PUB_BYTES])
{
    for (size_t i = 0; i < cfg->operators_count; i++)
        if (memcmp(cfg->operators[i].pk, pk, KEY_PUB_BYTES) == 0)
            return &cfg->operators[i];
    return NULL;
}

const struct cfg_coordinator *
config_coordinator(const struct config *cfg, const char *id)
{
    for (size_t i = 0; i < cfg->coordinators_count; i++)
        if (strcmp(cfg->coordinators[i].id, id) == 0)
            return &cfg->coordinators[i];
    return NULL;
}

const struct cfg_coordinator *
config_coordinator_by_key(const struct config *cfg,
                          const uint8_t pk[KEY_PUB_BYTES])
{
    for (size_t i = 0; i < cfg->coordinators_count; i++)
        if (memcmp(cfg->coordinators[i].pk, pk, KEY_PUB_BYTES) == 0)
            return &cfg->coordinators[i];
    return NULL;
}

const struct cfg_site *
config_site_by_key(const struct config *cfg, const uint8_t pk[KEY_PUB_BYTES])
{
    for (size_t i = 0; i < cfg->sites_count; i++)
        if (memcmp(cfg->sites[i].pk, pk, KEY_PUB_BYTES) == 0)
            return &cfg->sites[i];
    return NULL;
}

const struct cfg_site *
config_site(const struct config *cfg, const char *code)
{
    for (size_t i = 0; i < cfg->sites_count; i++)
        if (strcmp(cfg->sites[i].code, code) == 0)
            return &cfg->sites[i];
    return NULL;
}

const char *
config_role_name(enum op_role role)
{
    switch (role) {
    case OP_ROLE_ADMIN: return "admin";
    case OP_ROLE_RESPONDER: return "responder";
    case OP_ROLE_VIEWER: return "viewer";
    }
    return "unknown";
}
