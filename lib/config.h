/* config: the cluster configuration file (INI form), parsed and validated.
 *
 *   # comments start with # or ;
 *   [node]                      this node: which site it serves and where
 *   site = AMS
 *   data = /var/lib/incident-mesh/ams
 *   listen = tcp://127.0.0.1:7400
 *   key = ams.key               relative paths are relative to this file
 *   cluster = acme-prod         cluster name (default incident-mesh)
 *   peer_listen = tcp://0.0.0.0:7500   (default: this site's peer address)
 *   remote_listen = tcp://0.0.0.0:7403 the API for other hosts (encrypted);
 *                               listen itself must be loopback or ipc://
 *
 *   [site AMS]                  every site of the cluster, with its pinned key
 *   name = Amsterdam
 *   peer = tcp://ams.example.net:7500   replication address (may be empty)
 *   pubkey = ed25519:...
 *
 *   [operator alice]            people and tools allowed to call the API
 *   pubkey = ed25519:...
 *   role = admin                admin | responder | viewer
 *
 *   [http]                      HTTP on this node (alert intake, JSON API,
 *   listen = http://127.0.0.1:7480    /metrics, /status); see docs/http-api.md
 *
 *   [integration NAME]          a monitoring source or API client
 *   type = pagerduty            pagerduty | alertmanager | api
 *   key = ...                   pagerduty: the routing key; others: token = ...
 *   service = shop
 *
 *   [notify NAME]               a notification channel
 *   type = webhook              webhook (url = ...) | command (command = ...)
 *   on = new_p1, major          rules: what it is told about
 *   [coord]                     a coordinator replica (imcoord), instead of [node]
 *   id = c1                     which [coordinator] this replica is
 *   key = c1.key                its identity
 *   cluster = acme-prod
 *   lease = 3s                  site lease (default 3s)
 *   leader_ttl = 2s             its etcd leadership lease (default 2s)
 *   min_ack = 1m                shortest escalation ack window (default 1m)
 *   listen = tcp://0.0.0.0:7600 (default: its [coordinator] api address)
 *
 *   [coordinator c1]            every coordinator replica, for nodes and imctl
 *   api = tcp://coord1.example.net:7600
 *   pubkey = ed25519:...
 *
 *   [etcd]                      the coordinator's store (docs/coordinator.md)
 *   endpoints = https://10.0.0.5:2379, https://10.0.0.6:2379
 *   ca = ca.pem                 TLS: CA bundle, client cert and its key
 *   cert = c1.pem
 *   key = c1-key.pem
 *   prefix = /incident-mesh/acme-prod   (default /incident-mesh/CLUSTER)
 *   timeout = 2s                deadline of one etcd call (default 2s)
 *
 * Every error names the file, the line and the problem
 * ("ams.conf:12: unknown key 'lisen' in [node]"), and a file with any error
 * is refused whole. Later sections (coordinator, integrations) extend the
 * tables in config.c. */
#ifndef IM_CONFIG_H
#define IM_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "keys.h"
#include "bounds.h"

enum op_role { OP_ROLE_VIEWER, OP_ROLE_RESPONDER, OP_ROLE_ADMIN };

struct cfg_site {
    char code[SITE_CODE_MAX + 1];
    char name[PERSON_MAX + 1];
    char peer[URL_MAX + 1];  /* replication address; "" if none */
    uint8_t pk[KEY_PUB_BYTES];
    int has_pk;
    int line;
};

struct cfg_operator {
    char name[OPERATOR_NAME_MAX + 1];
    uint8_t pk[KEY_PUB_BYTES];
    int has_pk;
    enum op_role role;
    int line;
};

struct cfg_node {
    char site[SITE_CODE_MAX + 1];
    char data[PATH_MAX_IM + 1];
    char listen[URL_MAX + 1];
    char key[PATH_MAX_IM + 1];
    uint64_t map_size;
    /* Sites of one cluster name; a peer configured for another refuses
     * the handshake (lib/chan.h). */
    char cluster[CLUSTER_NAME_MAX + 1];
    /* Where to listen for peers; "" = this site's [site] peer address. */
    char peer_listen[URL_MAX + 1];
    /* The API for operators on other hosts, over the secure channel
     * (node/remote.h); "" = none. */
    char remote_listen[URL_MAX + 1];
    int line;
};

/* ---- HTTP, integrations, notifications ---- */

struct cfg_http {
    char listen[URL_MAX + 1];       /* "http://HOST:PORT"; "" = no HTTP */
    uint64_t summary_interval_ms;   /* alert storms: see bounds.h */
    char status_title[TITLE_MAX + 1]; /* heading of /status */
    int line;                       /* 0 = no [http] section */
};

enum integ_type { INTEG_PAGERDUTY = 1, INTEG_ALERTMANAGER, INTEG_API };

/* Alert severities, in PagerDuty's words; Alertmanager's `severity` label
 * uses the same names (anything else is the integration's default). */
enum alert_severity {
    SEV_CRITICAL,
    SEV_ERROR,
    SEV_WARNING,
    SEV_INFO,
    SEV_COUNT_
};

struct cfg_integration {
    char name[INTEGRATION_NAME_MAX + 1];
    enum integ_type type;
    /* pagerduty: the routing key; alertmanager and api: the bearer token. */
    char key[INTEGRATION_KEY_MAX + 1];
    char service[SERVICE_MAX + 1];
    char category[CATEGORY_MAX + 1];
    char subcategory[CATEGORY_MAX + 1];
    /* Severity -> impact and urgency, 1 high .. 3 low (Im__Level values). */
    int impact[SEV_COUNT_], urgency[SEV_COUNT_];
    enum alert_severity default_severity; /* alertmanager, no severity label */
    int resolve_when_all_resolved;        /* alertmanager; default 1 */
    enum op_role role;                    /* api: what the token may do */
    int line;
};

enum notify_type { NOTIFY_WEBHOOK = 1, NOTIFY_COMMAND };

/* Notification rules: bit (1 << rule). */
enum notify_rule {
    NOTIFY_NEW_P1,        /* a new incident of priority P1 */
    NOTIFY_NEW_P2,        /* ... of P2 */
    NOTIFY_ESCALATION,    /* an open incident's priority rose to P1 or P2 */
    NOTIFY_OWNER_CHANGE,  /* ownership moved to another site or manager */
    NOTIFY_MAJOR,         /* an incident became major (P1 or declared) */
    NOTIFY_RESOLVED,      /* an incident was resolved */
    NOTIFY_RULES_COUNT_
};

struct cfg_notify {
    char name[INTEGRATION_NAME_MAX + 1];
    enum notify_type type;
    char url[URL_MAX + 1];          /* webhook: http:// or https:// */
    char command[PATH_MAX_IM + 1];  /* command: run with /bin/sh -c */
    unsigned rules;                 /* bit set of enum notify_rule */
    char service[SERVICE_MAX + 1];  /* only incidents of this service; "" = all */
    unsigned attempts;              /* 1..NOTIFY_ATTEMPTS_MAX (default 5) */
    uint64_t backoff_ms;            /* first retry delay; doubles (default 1s) */
    uint64_t timeout_ms;            /* one attempt (default 5s) */
    int line;
};

struct cfg_coordinator {
    char id[COORD_ID_MAX + 1];
    char api[URL_MAX + 1];
    uint8_t pk[KEY_PUB_BYTES];
    int has_pk;
    int line;
};

/* This coordinator replica ([coord]); line == 0 if the file has none. */
struct cfg_coord {
    char id[COORD_ID_MAX + 1];
    char key[PATH_MAX_IM + 1];
    char listen[URL_MAX + 1]; /* "" = its [coordinator] api address */
    uint64_t lease_ms;
    uint64_t leader_ttl_s;
    uint64_t min_ack_ms; /* escalation levels get at least this to ack */
    int line;
};

struct cfg_etcd {
    char endpoints[ETCD_ENDPOINTS_TEXT_MAX + 1];
    char ca[PATH_MAX_IM + 1];
    char cert[PATH_MAX_IM + 1];
    char key[PATH_MAX_IM + 1];
    char prefix[ETCD_PREFIX_MAX + 1];
    uint64_t timeout_ms;
    int line; /* 0 if the file has no [etcd] */
};

struct config {
    char path[PATH_MAX_IM + 1];
    /* A file configures a node ([node]) or a coordinator replica ([coord]).
     * The cluster name lives in node.cluster either way. */
    struct cfg_node node;
    struct cfg_coord coord;
    struct cfg_coordinator coordinators[COORDINATORS_MAX];
    size_t coordinators_count;
    struct cfg_etcd etcd;
    struct cfg_site sites[SITES_MAX];
    size_t sites_count;
    struct cfg_operator operators[OPERATORS_MAX];
    size_t operators_count;
    struct cfg_http http;
    struct cfg_integration integrations[INTEGRATIONS_MAX];
    size_t integrations_count;
    struct cfg_notify notify[NOTIFY_CHANNELS_MAX];
    size_t notify_count;
};

#define CONFIG_LISTEN_DEFAULT "tcp://127.0.0.1:7400"
#define CONFIG_CLUSTER_DEFAULT "incident-mesh"
#define CONFIG_ETCD_PREFIX_ROOT "/incident-mesh/"
#define CONFIG_ETCD_TIMEOUT_MS_DEFAULT 2000

/* Reads and validates path into *cfg (which the caller allocates: it is
 * large). On error *cfg is unspecified and e says file:line: problem. */
int config_load(struct config *cfg, const char *path, struct im_err *e);

/* Same, from a string; `name` stands for the file in messages and relative
 * paths resolve against the current directory. */
int config_parse(struct config *cfg, const char *name, const char *text,
                 struct im_err *e);

/* The operator with public key pk, or NULL. */
const struct cfg_operator *config_operator_by_key(const struct config *cfg,
                                                  const uint8_t pk[KEY_PUB_BYTES]);

/* The coordinator replica with id, or NULL. */
const struct cfg_coordinator *config_coordinator(const struct config *cfg,
                                                 const char *id);

/* The coordinator replica with public key pk, or NULL. */
const struct cfg_coordinator *
config_coordinator_by_key(const struct config *cfg,
                          const uint8_t pk[KEY_PUB_BYTES]);

/* The site whose pinned key is pk, or NULL. */
const struct cfg_site *config_site_by_key(const struct config *cfg,
                                          const uint8_t pk[KEY_PUB_BYTES]);

/* The site with code, or NULL. */
const struct cfg_site *config_site(const struct config *cfg, const char *code);

const char *config_role_name(enum op_role role);

/* 1 if url only accepts connections from this host (127.0.0.0/8, ::1,
 * localhost, ipc://, inproc://). */
int config_url_is_local(const char *url);

/* The 32-byte cluster identity the secure channel binds every session to:
 * BLAKE2b-256("im-cluster-v1" NUL || cfg->node.cluster). */
void config_cluster_id(const struct config *cfg, uint8_t out[32]);

/* The integration of `type` whose key or token equals `key` (compared in
 * constant time), or NULL. */
const struct cfg_integration *config_integration_by_key(const struct config *cfg,
                                                        enum integ_type type,
                                                        const char *key);

/* "pagerduty", "alertmanager", "api"; "critical", "error", ...;
 * "new_p1", ...: the names used in config files and payloads. */
const char *config_integ_type_name(enum integ_type t);
const char *config_severity_name(enum alert_severity s);
/* IM_EINVAL for a name that is not a severity. */
int config_severity_parse(const char *name, enum alert_severity *out);
const char *config_notify_rule_name(enum notify_rule r);

/* 0 if s is a valid site code (2..8 of A-Z0-9, letter first), else IM_EINVAL. */
int config_check_site_code(const char *s);

#endif
