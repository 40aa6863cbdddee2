/* imctl: the operator's command-line tool (DESIGN.md §6).
 *
 * git's shape: a table of commands, one function each, global options
 * accepted before or after the command. Every request is signed with the
 * operator's key (lib/client.h). What can be checked here is checked here,
 * with the same code the node runs (incident_body_check, the enum parsers,
 * lib/bounds.h), so a typo costs no round trip and sends nothing; the node
 * checks everything again.
 *
 * Exit codes (docs/cli.md): 0 ok; 1 the node refused or the action failed;
 * 2 usage or invalid input (including a missing or unsafe key file, and the
 * node answering IM_EINVAL, IM_ETOOBIG or IM_EPROTO); 3 the node is
 * unreachable or did not answer in time. Errors go to stderr as
 * "imctl: <message>", also under --json. */
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bounds.h"
#include "client.h"
#include "clock.h"
#include "config.h"
#include "incident.h"
#include "keys.h"
#include "render.h"
#include "report.h"
#include "text.h"

enum exit_code {
    EXIT_OK = 0,
    EXIT_REFUSED = 1,
    EXIT_USAGE = 2,
    EXIT_UNREACHABLE = 3,
};

/* Options one command declares, and arguments on one command line: both
 * far above what any command needs, and bounded so parsing never
 * allocates. ARGS_MAX stays below REQ_OPS_MAX so `role` always fits one
 * request. */
#define OPTS_MAX 16
#define ARGS_MAX 128
_Static_assert(ARGS_MAX <= REQ_OPS_MAX, "one role flag is one op");

/* --timeout: a request that takes longer than an hour is a hung node. */
#define TIMEOUT_MS_MAX 3600000

enum opt_kind { OPT_FLAG, OPT_VALUE };

struct opt {
    const char *name; /* without "--"; NULL ends a list */
    enum opt_kind kind;
    int repeatable;  /* every occurrence is kept, in order (role) */
    const char *arg; /* metavariable in help; NULL for flags */
    const char *help;
};

struct args {
    const struct opt *opts;
    const char *
        value[OPTS_MAX]; /* last value per option; flags: ""; NULL: not given */
    struct {
        int opt;
        const char *value;
    } seq[ARGS_MAX]; /* every option occurrence, in order */
    size_t seq_count;
    const char *pos[ARGS_MAX];
    size_t pos_count;
};

struct ctx;
typedef int (*cmd_fn)(struct ctx *c, const struct args *a);

#define NEEDS_NODE 1u
#define NEEDS_COORD 2u

/* A coordinator request follows at most this many "not the leader"
 * redirects beyond the listed replicas: a leader changing under us twice
 * in one command is an election in progress, reported as such. */
#define COORD_REDIRECTS_MAX 3

/* While every replica answers that none leads (an election: the leader
 * died, or etcd is electing its own leader), ask again for this long,
 * every COORD_RETRY_MS, before reporting it. */
#define COORD_ELECTION_WAIT_MS 5000
#define COORD_RETRY_MS 250

struct command {
    const char *name;
    cmd_fn run;
    unsigned flags;
    size_t pos_min, pos_max; /* operands */
    const struct opt *opts;
    const char *synopsis; /* after "imctl NAME " */
    const char *summary;
    const char *example;
};

struct ctx {
    const struct command *cmd;
    const char *node; /* --node, else IM_NODE */
    const char *coord; /* --coord, else IM_COORD: replica URLs, comma-separated */
    const char *key;  /* --key, else IM_KEY */
    const char *node_key; /* --node-key, else IM_NODE_KEY: a remote node's site key */
    const char *cluster;  /* --cluster, else IM_CLUSTER: the remote node's cluster */
    int json;
    int timeout_ms; /* 0: CLIENT_TIMEOUT_MS_DEFAULT */
    struct client client;
    int connected;
    struct im_err err;
};

static const struct opt global_opts[] = {
    {"node", OPT_VALUE, 0, "URL",
     "node API address, tcp://HOST:PORT or ipc:///PATH (default: $IM_NODE)"},
    {"coord", OPT_VALUE, 0, "URL[,URL...]",
     "coordinator replicas for global commands, tried in turn; a standby's "
     "answer leads to the leader (default: $IM_COORD)"},
    {"key", OPT_VALUE, 0, "FILE",
     "operator's secret key file, mode 0600 (default: $IM_KEY)"},
    {"node-key", OPT_VALUE, 0, "ed25519:...",
     "the node's site key: talk to its remote_listen address over the "
     "secure channel (needed for any node not on loopback; default: "
     "$IM_NODE_KEY)"},
    {"cluster", OPT_VALUE, 0, "NAME",
     "the node's cluster name, with --node-key (default: $IM_CLUSTER, else "
     "incident-mesh)"},
    {"json", OPT_FLAG, 0, NULL, "print one JSON object on stdout"},
    {"timeout", OPT_VALUE, 0, "MS",
     "wait at most MS milliseconds for the node (default 15000)"},
    {"help", OPT_FLAG, 0, NULL, "print this command's help (also -h)"},
    {NULL, 0, 0, NULL, NULL},
};

static const struct command commands[];
static const struct command *command_find(const char *name);

/* ---- errors ---------------------------------------------------------- */

static int
exit_for(int code)
{
    switch (code) {
    case 0: return EXIT_OK;
    case IM_EINVAL:
    case IM_ETOOBIG:
    case IM_EPROTO: return EXIT_USAGE;
    case IM_EUNREACH:
    case IM_ENOTLEADER:
    case IM_ETIMEDOUT: return EXIT_UNREACHABLE;
    default: return EXIT_REFUSED;
    }
}

/* A usage error: IM_EINVAL, the command named, and where help is. */
static int usage(struct ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
usage(struct ctx *c, const char *fmt, ...)
{
    char msg[IM_ERRMSG_MAX - 64];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->cmd != NULL)
        return im_errf(&c->err, IM_EINVAL, "%s: %s (see 'imctl %s --help')",
                       c->cmd->name, msg, c->cmd->name);
    return im_errf(&c->err, IM_EINVAL, "%s (see 'imctl help')", msg);
}

/* ---- option parsing ---------------------------------------------------- */

static int
opt_find(const struct opt *opts, const char *name, size_t name_size)
{
    for (int i = 0; opts != NULL && opts[i].name != NULL; i++)
        if (strlen(opts[i].name) == name_size &&
            memcmp(opts[i].name, name, name_size) == 0)
            return i;
    return -1;
}

/* The value of a command option: NULL if not given, "" for a flag given.
 * Asking for an option the command does not declare is a bug. */
static const char *
optval(const struct args *a, const char *name)
{
    int i = opt_find(a->opts, name, strlen(name));

    if (i < 0) {
        fprintf(stderr, "imctl: bug: option --%s not declared\n", name);
        abort();
    }
    return a->value[i];
}

static int
global_set(struct ctx *c, int i, const char *value)
{
    const char *name = global_opts[i].name;
    char *end;
    long ms;

    if (strcmp(name, "node") == 0) {
        c->node = value;
    } else if (strcmp(name, "coord") == 0) {
        c->coord = value;
    } else if (strcmp(name, "key") == 0) {
        c->key = value;
    } else if (strcmp(name, "node-key") == 0) {
        c->node_key = value;
    } else if (strcmp(name, "cluster") == 0) {
        c->cluster = value;
    } else if (strcmp(name, "json") == 0) {
        c->json = 1;
    } else if (strcmp(name, "timeout") == 0) {
        errno = 0;
        ms = strtol(value, &end, 10);
        if (errno != 0 || end == value || *end != '\0' || ms < 1 ||
            ms > TIMEOUT_MS_MAX)
            return usage(c,
                         "--timeout '%.32s' is not a number of milliseconds "
                         "from 1 to %d",
                         value, TIMEOUT_MS_MAX);
        c->timeout_ms = (int)ms;
    }
    return 0;
}

/* One "--name[=value]" at argv[*i]; consumes the value argument too.
 * cmd_opts NULL: before the command, where only global options exist. */
static int
parse_long(struct ctx *c, int argc, char **argv, int *i, struct args *a,
           int *help)
{
    const char *arg = argv[*i] + 2, *eq = strchr(arg, '=');
    size_t name_size = eq ? (size_t)(eq - arg) : strlen(arg);
    const struct opt *o;
    const char *value = "";
    int g, k = -1;

    g = opt_find(global_opts, arg, name_size);
    if (g < 0 && a != NULL)
        k = opt_find(a->opts, arg, name_size);
    if (g < 0 && k < 0)
        return usage(c, "unknown option --%.*s",
                     (int)(name_size > 64 ? 64 : name_size), arg);
    o = g >= 0 ? &global_opts[g] : &a->opts[k];
    if (o->kind == OPT_FLAG && eq != NULL)
        return usage(c, "--%s takes no value", o->name);
    if (o->kind == OPT_VALUE) {
        if (eq != NULL)
            value = eq + 1;
        else if (*i + 1 < argc)
            value = argv[++*i];
        else
            return usage(c, "--%s needs a value (%s)", o->name, o->arg);
    }
    if (g >= 0) {
        if (strcmp(o->name, "help") == 0) {
            *help = 1;
            return 0;
        }
        return global_set(c, g, value);
    }
    if (a->value[k] != NULL && !o->repeatable)
        return usage(c, "--%s given more than once", o->name);
    if (a->seq_count == ARGS_MAX)
        return usage(c, "more than %d options", ARGS_MAX);
    a->value[k] = value;
    a->seq[a->seq_count].opt = k;
    a->seq[a->seq_count].value = value;
    a->seq_count++;
    return 0;
}

/* Parses the whole command line. The first error is kept but the scan
 * goes on, so that --help anywhere still prints help. */
static int
parse(struct ctx *c, int argc, char **argv, struct args *a, int *help)
{
    int i = 1, rv = 0, only_operands = 0;

    memset(a, 0, sizeof *a);
    *help = 0;
    for (; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
        int r;
        if (strcmp(argv[i], "-h") == 0) {
            *help = 1;
            continue;
        }
        if (strncmp(argv[i], "--", 2) != 0 || argv[i][2] == '\0')
            r = usage(c, "unknown option %.64s", argv[i]);
        else
            r = parse_long(c, argc, argv, &i, NULL, help);
        if (r != 0 && rv == 0)
            rv = r;
    }
    if (i == argc)
        return rv != 0 ? rv : *help ? 0 : usage(c, "no command given");
    c->cmd = command_find(argv[i]);
    if (c->cmd == NULL)
        return rv != 0 ? rv : usage(c, "unknown command '%.64s'", argv[i]);
    a->opts = c->cmd->opts;
    for (size_t k = 0; a->opts[k].name != NULL; k++)
        if (k == OPTS_MAX) {
            fprintf(stderr, "imctl: bug: %s declares over %d options\n",
                    c->cmd->name, OPTS_MAX);
            abort();
        }
    for (i++; i < argc; i++) {
        const char *s = argv[i];
        int r = 0;

        if (!only_operands && strcmp(s, "--") == 0) {
            only_operands = 1;
        } else if (!only_operands && strcmp(s, "-h") == 0) {
            *help = 1;
        } else if (!only_operands && strncmp(s, "--", 2) == 0) {
            r = parse_long(c, argc, argv, &i, a, help);
        } else if (!only_operands && s[0] == '-' && s[1] != '\0') {
            r = usage(c,
                      "unknown option %.64s (an operand that starts with "
                      "'-' goes after '--')",
                      s);
        } else if (a->pos_count == ARGS_MAX) {
            r = usage(c, "more than %d arguments", ARGS_MAX);
        } else {
            a->pos[a->pos_count++] = s;
        }
        if (r != 0 && rv == 0)
            rv = r;
    }
    if (rv != 0 || *help)
        return rv;
    if (a->pos_count < c->cmd->pos_min)
        return usage(c, "missing argument: imctl %s %s", c->cmd->name,
                     c->cmd->synopsis);
    if (a->pos_count > c->cmd->pos_max)
        return usage(c, "unexpected argument '%.64s'", a->pos[c->cmd->pos_max]);
    return 0;
}

/* ---- argument values --------------------------------------------------- */

static int
need(struct ctx *c, const struct args *a, const char *name, const char **out)
{
    const char *v = optval(a, name);

    if (v == NULL)
        return usage(c, "--%s is required", name);
    *out = v;
    return 0;
}

/* Lower-cased copy for the enum parsers, so "High" and "ON_HOLD" work;
 * anything longer than a name is not one. */
static void
lower(const char *s, char *out, size_t out_size)
{
    size_t i = 0;

    for (; s[i] != '\0' && i + 1 < out_size; i++)
        out[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
    out[i] = '\0';
    if (s[i] != '\0')
        out[0] = '\0';
}

static int
level_arg(struct ctx *c, const char *name, const char *v, Im__Level *out)
{
    char buf[32];

    lower(v, buf, sizeof buf);
    if (incident_level_parse(buf, out) != 0)
        return usage(c, "--%s '%.64s' is not a level: use high, medium or low",
                     name, v);
    return 0;
}

static int
state_arg(struct ctx *c, const char *v, Im__State *out)
{
    char buf[32];

    lower(v, buf, sizeof buf);
    if (incident_state_parse(buf, out) != 0)
        return usage(c,
                     "--state '%.64s' is not a state: use new, acknowledged, "
                     "in_progress, on_hold, resolved, closed or cancelled",
                     v);
    return 0;
}

static int
priority_arg(struct ctx *c, const char *v, uint32_t *out)
{
    char buf[8];
    int p;

    snprintf(buf, sizeof buf, "%s", v);
    if (buf[0] == 'p')
        buf[0] = 'P';
    if (strlen(v) >= sizeof buf || incident_priority_parse(buf, &p) != 0)
        return usage(c, "--priority '%.64s' is not a priority: use P1 to P5",
                     v);
    *out = (uint32_t)p;
    return 0;
}

static int
site_arg(struct ctx *c, const char *v, char out[SITE_CODE_MAX + 1])
{
    size_t n = strlen(v);

    for (size_t i = 0; i <= n && i <= SITE_CODE_MAX; i++)
        out[i] = (char)(v[i] >= 'a' && v[i] <= 'z' ? v[i] - 32 : v[i]);
    if (n > SITE_CODE_MAX || config_check_site_code(out) != 0)
        return usage(c,
                     "--site '%.64s' is not a site code: use %d to %d "
                     "letters or digits, starting with a letter",
                     v, SITE_CODE_MIN, SITE_CODE_MAX);
    return 0;
}

/* "AMS-42" (any case) into out, upper-cased: SITE-N with a valid site
 * code and a decimal counter. */
static int
id_arg(struct ctx *c, const char *v, char out[INCIDENT_ID_MAX + 1])
{
    size_t n = strlen(v), site_size, digits;
    char site[SITE_CODE_MAX + 1];
    const char *dash;

    if (n == 0 || n > INCIDENT_ID_MAX)
        goto bad;
    for (size_t i = 0; i <= n; i++)
        out[i] = (char)(v[i] >= 'a' && v[i] <= 'z' ? v[i] - 32 : v[i]);
    dash = strchr(out, '-');
    if (dash == NULL)
        goto bad;
    site_size = (size_t)(dash - out);
    digits = n - site_size - 1;
    if (site_size > SITE_CODE_MAX || digits == 0 || digits > 20 ||
        strspn(dash + 1, "0123456789") != digits)
        goto bad;
    memcpy(site, out, site_size);
    site[site_size] = '\0';
    if (config_check_site_code(site) != 0)
        goto bad;
    return 0;
bad:
    return usage(c, "'%.64s' is not an incident id: use SITE-N, e.g. AMS-42",
                 v);
}

/* "CAT" or "CAT/SUB". Too long is IM_ETOOBIG, like the node would say,
 * rather than a silent cut. */
static int
category_arg(struct ctx *c, const char *v, char cat[CATEGORY_MAX + 1],
             char sub[CATEGORY_MAX + 1])
{
    const char *slash = strchr(v, '/');
    size_t cat_size = slash ? (size_t)(slash - v) : strlen(v);
    const char *s = slash ? slash + 1 : "";

    if (cat_size > CATEGORY_MAX)
        return im_errf(&c->err, IM_ETOOBIG, "category is longer than %d bytes",
                       CATEGORY_MAX);
    if (strlen(s) > CATEGORY_MAX)
        return im_errf(&c->err, IM_ETOOBIG,
                       "subcategory is longer than %d bytes", CATEGORY_MAX);
    memcpy(cat, v, cat_size);
    cat[cat_size] = '\0';
    memcpy(sub, s, strlen(s) + 1);
    return 0;
}

/* ---- talking to the node ----------------------------------------------- */

static int
node_connect(struct ctx *c)
{
    struct im_key key;
    int rv;

    if (c->connected)
        return 0;
    if ((rv = keys_init()) != 0)
        return im_errf(&c->err, rv, "cannot initialise libsodium");
    /* A key file that is missing, unreadable or unsafe is the caller's
     * input to fix, whatever errno said: exit 2, with key_load's message. */
    if ((rv = key_load(&key, c->key, &c->err)) != 0) {
        c->err.code = IM_EINVAL;
        return IM_EINVAL;
    }
    if ((c->node_key != NULL && c->node_key[0] != '\0') ||
        (strncmp(c->node, "tcp", 3) == 0 && strstr(c->node, "://") != NULL &&
         !config_url_is_local(c->node))) {
        /* Another host: only over the secure channel, to the node whose
         * key we pin (node/remote.h). */
        struct config *cl;
        uint8_t node_pk[KEY_PUB_BYTES], cluster_id[32];
        if (c->node_key == NULL || c->node_key[0] == '\0') {
            sodium_memzero(&key, sizeof key);
            return usage(c, "%s is not a loopback address: give --node-key "
                            "ed25519:... (the node's site key) to reach its "
                            "remote_listen address over the secure channel",
                         c->node);
        }
        if (key_pub_decode(c->node_key, node_pk) != 0) {
            sodium_memzero(&key, sizeof key);
            return usage(c, "--node-key '%.64s' is not a public key "
                            "(ed25519:<43 base64url characters>)", c->node_key);
        }
        if ((cl = calloc(1, sizeof *cl)) == NULL) {
            sodium_memzero(&key, sizeof key);
            return im_errf(&c->err, IM_ENOMEM, "out of memory");
        }
        snprintf(cl->node.cluster, sizeof cl->node.cluster, "%s",
                 c->cluster && c->cluster[0] ? c->cluster
                                             : CONFIG_CLUSTER_DEFAULT);
        config_cluster_id(cl, cluster_id);
        free(cl);
        rv = client_open_secure(&c->client, c->node, &key, node_pk, cluster_id,
                                c->timeout_ms, &c->err);
        sodium_memzero(&key, sizeof key);
        if (rv != 0)
            return rv;
        c->connected = 1;
        return 0;
    }
    rv = client_open_key(&c->client, c->node, &key, &c->err);
    sodium_memzero(&key, sizeof key);
    if (rv != 0)
        return rv;
    c->connected = 1;
    if (c->timeout_ms > 0) {
        c->client.timeout_ms = c->timeout_ms;
        nng_socket_set_ms(c->client.sock, NNG_OPT_RECVTIMEO, c->timeout_ms);
        nng_socket_set_ms(c->client.sock, NNG_OPT_SENDTIMEO, c->timeout_ms);
    }
    return 0;
}

/* Sends n ops; on success *resp_out holds exactly n results (the caller
 * frees it). A request the node refused as a whole is an error here. */
static int
call(struct ctx *c, Im__Op **ops, size_t n, Im__Response **resp_out)
{
    Im__Response *resp;
    int rv;

    if ((rv = node_connect(c)) != 0)
        return rv;
    if ((rv = client_call(&c->client, ops, n, &resp, &c->err)) != 0)
        return rv;
    if (resp->code != 0) {
        rv = resp->code < 0 ? resp->code : IM_EPROTO;
        im_errf(&c->err, rv, "node refused the request: %s",
                resp->error && resp->error[0] ? resp->error : im_strerror(rv));
        im__response__free_unpacked(resp, NULL);
        return rv;
    }
    if (resp->n_results != n) {
        im_errf(&c->err, IM_EPROTO,
                "node answered %zu results to %zu operations", resp->n_results,
                n);
        im__response__free_unpacked(resp, NULL);
        return IM_EPROTO;
    }
    *resp_out = resp;
    return 0;
}

static int
result_check(struct ctx *c, const Im__Result *r)
{
    int code;

    if (r->code == 0)
        return 0;
    code = r->code < 0 ? r->code : IM_EPROTO;
    return im_errf(&c->err, code, "%s",
                   r->error && r->error[0] ? r->error : im_strerror(code));
}

/* One op whose result must succeed; *resp_out owns *res_out. */
static int
call_one(struct ctx *c, Im__Op *op, Im__Response **resp_out,
         const Im__Result **res_out)
{
    Im__Op *ops[1] = {op};
    Im__Response *resp;
    int rv;

    if ((rv = call(c, ops, 1, &resp)) != 0)
        return rv;
    if ((rv = result_check(c, resp->results[0])) != 0) {
        im__response__free_unpacked(resp, NULL);
        return rv;
    }
    *resp_out = resp;
    *res_out = resp->results[0];
    return 0;
}

/* ---- talking to the coordinator ------------------------------------------ */

/* Sends one op to the coordinator: each replica of --coord in turn until
 * one answers; a standby's IM_ENOTLEADER leads to the leader it names.
 * *resp_out owns *res_out, which succeeded. */
static int
coord_call_one(struct ctx *c, Im__Op *op, Im__Response **resp_out,
               const Im__Result **res_out)
{
    char urls[COORDINATORS_MAX + COORD_REDIRECTS_MAX][URL_MAX + 1];
    char tried[IM_ERRMSG_MAX - 64];
    size_t n = 0, listed, redirects = 0;
    const char *p = c->coord;
    struct im_key key;
    Im__Op *ops[1] = {op};
    uint64_t deadline;
    int rv, last = IM_EUNREACH;

    tried[0] = '\0';
    while (*p && n < COORDINATORS_MAX) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len > URL_MAX)
            return usage(c, "--coord '%.64s': a comma-separated list of "
                            "tcp://HOST:PORT addresses", c->coord);
        memcpy(urls[n], p, len);
        urls[n++][len] = '\0';
        p += len + (p[len] == ',');
    }
    listed = n;
    if ((rv = keys_init()) != 0)
        return im_errf(&c->err, rv, "cannot initialise libsodium");
    if ((rv = key_load(&key, c->key, &c->err)) != 0) {
        c->err.code = IM_EINVAL;
        return IM_EINVAL;
    }
    deadline = clock_mono_ms() +
               (c->timeout_ms > 0 && c->timeout_ms < COORD_ELECTION_WAIT_MS
                    ? (uint64_t)c->timeout_ms
                    : COORD_ELECTION_WAIT_MS);
again:
    for (size_t i = 0; i < n; i++) {
        struct client cl;
        Im__Response *resp = NULL;
        struct im_err e = {0};
        size_t t = strlen(tried);

        rv = client_open_key(&cl, urls[i], &key, &e);
        if (rv == IM_EINVAL) {
            sodium_memzero(&key, sizeof key);
            c->err = e;
            return rv;
        }
        if (rv == 0) {
            if (c->timeout_ms > 0) {
                cl.timeout_ms = c->timeout_ms;
                nng_socket_set_ms(cl.sock, NNG_OPT_RECVTIMEO, c->timeout_ms);
                nng_socket_set_ms(cl.sock, NNG_OPT_SENDTIMEO, c->timeout_ms);
            }
            rv = client_call(&cl, ops, 1, &resp, &e);
            client_close(&cl);
        }
        if (rv != 0) {
            snprintf(tried + t, sizeof tried - t, "%s%s", t ? "; " : "",
                     im_errmsg(&e));
            last = rv;
            continue;
        }
        if (resp->code == IM_ENOTLEADER) {
            int known = 0;
            for (size_t k = 0; k < n; k++)
                known |= resp->leader_api && strcmp(urls[k], resp->leader_api) == 0;
            snprintf(tried + t, sizeof tried - t, "%s%s: %s", t ? "; " : "",
                     urls[i], resp->error);
            /* Ask the leader it names next (unless it is listed: the loop
             * reaches it anyway). */
            if (resp->leader_api && resp->leader_api[0] && !known &&
                redirects < COORD_REDIRECTS_MAX &&
                strlen(resp->leader_api) <= URL_MAX) {
                snprintf(urls[n++], URL_MAX + 1, "%s", resp->leader_api);
                redirects++;
            } else if (resp->leader_api && resp->leader_api[0] && known) {
                /* Move the named leader to the front of what is left. */
                for (size_t k = i + 1; k < n; k++)
                    if (strcmp(urls[k], resp->leader_api) == 0 && k != i + 1) {
                        char tmp[URL_MAX + 1];
                        memcpy(tmp, urls[i + 1], sizeof tmp);
                        memcpy(urls[i + 1], urls[k], sizeof tmp);
                        memcpy(urls[k], tmp, sizeof tmp);
                    }
            }
            last = IM_ENOTLEADER;
            im__response__free_unpacked(resp, NULL);
            continue;
        }
        sodium_memzero(&key, sizeof key);
        if (resp->code != 0) {
            rv = resp->code < 0 ? resp->code : IM_EPROTO;
            im_errf(&c->err, rv, "coordinator refused the request: %s",
                    resp->error && resp->error[0] ? resp->error : im_strerror(rv));
            im__response__free_unpacked(resp, NULL);
            return rv;
        }
        if (resp->n_results != 1) {
            im__response__free_unpacked(resp, NULL);
            return im_errf(&c->err, IM_EPROTO, "coordinator answered %zu results "
                           "to one operation", resp->n_results);
        }
        if ((rv = result_check(c, resp->results[0])) != 0) {
            im__response__free_unpacked(resp, NULL);
            return rv;
        }
        *resp_out = resp;
        *res_out = resp->results[0];
        return 0;
    }
    if (last == IM_ENOTLEADER && clock_mono_ms() + COORD_RETRY_MS < deadline) {
        struct timespec ts = {0, COORD_RETRY_MS * 1000000L};
        nanosleep(&ts, NULL);
        n = listed;
        redirects = 0;
        tried[0] = '\0';
        goto again;
    }
    sodium_memzero(&key, sizeof key);
    return im_errf(&c->err, last == IM_ENOTLEADER ? IM_ENOTLEADER : IM_EUNREACH,
                   "no coordinator %s (%s)",
                   last == IM_ENOTLEADER ? "leader answered" : "answered", tried);
}

/* Appends one event after checking its body here first (the node's own
 * check: same rules, same messages, nothing sent if it fails). */
static int
write_event(struct ctx *c, const char *id, Im__Body *body,
            Im__Response **resp_out, const Im__Incident **inc_out)
{
    Im__Write w = IM__WRITE__INIT;
    Im__Op op = IM__OP__INIT;
    const Im__Result *res;
    int rv;

    if ((rv = incident_body_check(body, &c->err)) != 0)
        return rv;
    w.incident = (char *)id;
    w.body = body;
    op.kind_case = IM__OP__KIND_WRITE;
    op.write = &w;
    if ((rv = call_one(c, &op, resp_out, &res)) != 0)
        return rv;
    if (res->incident == NULL) {
        im__response__free_unpacked(*resp_out, NULL);
        return im_errf(&c->err, IM_EPROTO,
                       "node accepted the write but sent no incident");
    }
    *inc_out = res->incident;
    return 0;
}

static int
get_incident(struct ctx *c, const char *id, int timeline,
             Im__Response **resp_out, const Im__Incident **inc_out)
{
    Im__Get g = IM__GET__INIT;
    Im__Op op = IM__OP__INIT;
    const Im__Result *res;
    int rv;

    g.id = (char *)id;
    g.timeline = timeline;
    op.kind_case = IM__OP__KIND_GET;
    op.get = &g;
    if ((rv = call_one(c, &op, resp_out, &res)) != 0)
        return rv;
    if (res->incident == NULL) {
        im__response__free_unpacked(*resp_out, NULL);
        return im_errf(&c->err, IM_EPROTO, "node sent no incident for %s", id);
    }
    *inc_out = res->incident;
    return 0;
}

/* The incident after a write: all of it for --json, else one line. */
static int
print_written(struct ctx *c, Im__Response *resp, const Im__Incident *inc,
              const char *what)
{
    int rv = 0;

    if (c->json)
        rv = render_json_print(stdout, render_incident_json(inc, 0), &c->err);
    else
        printf("%s %s\n", inc->id, what);
    im__response__free_unpacked(resp, NULL);
    return rv;
}

/* ---- commands ------------------------------------------------------------ */

static int
cmd_open(struct ctx *c, const struct args *a)
{
    Im__Opened o = IM__OPENED__INIT;
    Im__Body b = IM__BODY__INIT;
    Im__Response *resp;
    const Im__Incident *inc;
    const char *title = NULL, *service = NULL, *impact = NULL, *urgency = NULL;
    const char *v;
    char cat[CATEGORY_MAX + 1] = "", sub[CATEGORY_MAX + 1] = "";
    int rv;

    if ((rv = need(c, a, "title", &title)) != 0 ||
        (rv = need(c, a, "service", &service)) != 0 ||
        (rv = need(c, a, "impact", &impact)) != 0 ||
        (rv = need(c, a, "urgency", &urgency)) != 0 ||
        (rv = level_arg(c, "impact", impact, &o.impact)) != 0 ||
        (rv = level_arg(c, "urgency", urgency, &o.urgency)) != 0)
        return rv;
    if ((v = optval(a, "category")) != NULL &&
        (rv = category_arg(c, v, cat, sub)) != 0)
        return rv;
    o.title = (char *)title;
    o.service = (char *)service;
    o.category = cat;
    o.subcategory = sub;
    o.description =
        (char *)(optval(a, "description") ? optval(a, "description") : "");
    o.major = optval(a, "major") != NULL;
    b.kind_case = IM__BODY__KIND_OPENED;
    b.opened = &o;
    if ((rv = write_event(c, "", &b, &resp, &inc)) != 0)
        return rv;
    if (c->json)
        return print_written(c, resp, inc, "");
    printf("%s\n", inc->id);
    im__response__free_unpacked(resp, NULL);
    return 0;
}

static int
cmd_list(struct ctx *c, const struct args *a)
{
    Im__List l = IM__LIST__INIT;
    Im__Op op = IM__OP__INIT;
    Im__Response *resp;
    const Im__Result *res;
    char site[SITE_CODE_MAX + 1] = "";
    const char *v;
    struct im_err e;
    char *end;
    int rv;

    if ((v = optval(a, "state")) != NULL &&
        (rv = state_arg(c, v, &l.state)) != 0)
        return rv;
    if ((v = optval(a, "priority")) != NULL &&
        (rv = priority_arg(c, v, &l.priority)) != 0)
        return rv;
    if ((v = optval(a, "site")) != NULL && (rv = site_arg(c, v, site)) != 0)
        return rv;
    if ((v = optval(a, "service")) != NULL &&
        text_check(v, SERVICE_MAX, TEXT_LINE, 1, "--service", &e) != 0)
        return usage(c, "%s", e.msg);
    l.service = (char *)(v ? v : "");
    if ((v = optval(a, "limit")) != NULL) {
        unsigned long n;
        errno = 0;
        n = strtoul(v, &end, 10);
        if (errno != 0 || end == v || *end != '\0' || v[0] == '-' || n < 1 ||
            n > LIST_LIMIT_MAX)
            return usage(c, "--limit '%.32s' is not a number from 1 to %d", v,
                         LIST_LIMIT_MAX);
        l.limit = (uint32_t)n;
    }
    l.site = site;
    l.major = optval(a, "major") != NULL;
    l.all = optval(a, "all") != NULL;
    op.kind_case = IM__OP__KIND_LIST;
    op.list = &l;
    if ((rv = call_one(c, &op, &resp, &res)) != 0)
        return rv;
    if (c->json) {
        rv = render_json_print(stdout, render_list_json(res->list), &c->err);
    } else {
        render_list_text(stdout, res->list, clock_wall_ms());
    }
    im__response__free_unpacked(resp, NULL);
    return rv;
}

static int
cmd_show(struct ctx *c, const struct args *a)
{
    char id[INCIDENT_ID_MAX + 1];
    Im__Response *resp;
    const Im__Incident *inc;
    int rv = 0;

    if ((rv = id_arg(c, a->pos[0], id)) != 0 ||
        (rv = get_incident(c, id, 1, &resp, &inc)) != 0)
        return rv;
    if (c->json)
        rv = render_json_print(stdout, render_incident_json(inc, 0), &c->err);
    else
        render_incident_text(stdout, inc, clock_wall_ms());
    im__response__free_unpacked(resp, NULL);
    return rv;
}

/* A lifecycle move. from: the state the move must start from
 * (compare-and-set), or STATE_NONE when the target alone says which move
 * it is. */
static int
move(struct ctx *c, const char *id_text, Im__State to, Im__State from,
     const char *reason, const char *code, const char *notes)
{
    Im__Transition t = IM__TRANSITION__INIT;
    Im__Body b = IM__BODY__INIT;
    char id[INCIDENT_ID_MAX + 1], what[64];
    Im__Response *resp;
    const Im__Incident *inc;
    int rv;

    if ((rv = id_arg(c, id_text, id)) != 0)
        return rv;
    t.to = to;
    t.from = from;
    t.reason = (char *)reason;
    t.code = (char *)code;
    t.notes = (char *)notes;
    b.kind_case = IM__BODY__KIND_TRANSITION;
    b.transition = &t;
    if ((rv = write_event(c, id, &b, &resp, &inc)) != 0)
        return rv;
    snprintf(what, sizeof what, "is now %s", incident_state_name(inc->state));
    return print_written(c, resp, inc, what);
}

static int
cmd_ack(struct ctx *c, const struct args *a)
{
    return move(c, a->pos[0], IM__STATE__STATE_ACKNOWLEDGED,
                IM__STATE__STATE_NONE, "", "", "");
}

/* in_progress is reached from acknowledged and on_hold (start) but also
 * from resolved (reopen, which needs a reason): read the state first and
 * make the move conditional on it, so that `start` never reopens. */
static int
cmd_start(struct ctx *c, const struct args *a)
{
    char id[INCIDENT_ID_MAX + 1];
    Im__Response *resp;
    const Im__Incident *inc;
    Im__State from;
    int rv;

    if ((rv = id_arg(c, a->pos[0], id)) != 0 ||
        (rv = get_incident(c, id, 0, &resp, &inc)) != 0)
        return rv;
    from = inc->state;
    im__response__free_unpacked(resp, NULL);
    if (from == IM__STATE__STATE_RESOLVED)
        return im_errf(&c->err, IM_ESTATE,
                       "cannot start %s: it is resolved; to work on it again: "
                       "imctl reopen %s --reason R",
                       id, id);
    return move(c, id, IM__STATE__STATE_IN_PROGRESS, from, "", "", "");
}

static int
cmd_hold(struct ctx *c, const struct args *a)
{
    const char *reason = NULL;
    int rv;

    if ((rv = need(c, a, "reason", &reason)) != 0)
        return rv;
    return move(c, a->pos[0], IM__STATE__STATE_ON_HOLD, IM__STATE__STATE_NONE,
                reason, "", "");
}

static int
cmd_resolve(struct ctx *c, const struct args *a)
{
    const char *code = NULL, *notes = NULL;
    int rv;

    if ((rv = need(c, a, "code", &code)) != 0 ||
        (rv = need(c, a, "notes", &notes)) != 0)
        return rv;
    return move(c, a->pos[0], IM__STATE__STATE_RESOLVED, IM__STATE__STATE_NONE,
                "", code, notes);
}

static int
cmd_close(struct ctx *c, const struct args *a)
{
    return move(c, a->pos[0], IM__STATE__STATE_CLOSED, IM__STATE__STATE_NONE,
                "", "", "");
}

static int
cmd_reopen(struct ctx *c, const struct args *a)
{
    const char *reason = NULL;
    int rv;

    if ((rv = need(c, a, "reason", &reason)) != 0)
        return rv;
    return move(c, a->pos[0], IM__STATE__STATE_IN_PROGRESS,
                IM__STATE__STATE_RESOLVED, reason, "", "");
}

static int
cmd_cancel(struct ctx *c, const struct args *a)
{
    const char *reason = NULL;
    int rv;

    if ((rv = need(c, a, "reason", &reason)) != 0)
        return rv;
    return move(c, a->pos[0], IM__STATE__STATE_CANCELLED, IM__STATE__STATE_NONE,
                reason, "", "");
}

/* A note's text from stdin ("-"), for notes with paragraphs. */
static int
read_stdin_note(struct ctx *c, char *buf, size_t buf_size)
{
    size_t n = fread(buf, 1, buf_size - 1, stdin);

    if (ferror(stdin))
        return im_errf(&c->err, IM_EIO, "read note from stdin: %s",
                       strerror(errno));
    /* One final newline is the shell's, not the note's. */
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n > NOTE_MAX || (n == buf_size - 2 && fgetc(stdin) != EOF))
        return im_errf(&c->err, IM_ETOOBIG, "note is longer than %d bytes",
                       NOTE_MAX);
    if (memchr(buf, '\0', n) != NULL)
        return usage(c, "the note on stdin contains a NUL byte");
    buf[n] = '\0';
    return 0;
}

static int
cmd_note(struct ctx *c, const struct args *a)
{
    Im__Note note = IM__NOTE__INIT;
    Im__Body b = IM__BODY__INIT;
    char id[INCIDENT_ID_MAX + 1];
    Im__Response *resp;
    const Im__Incident *inc;
    size_t size = 1, used = 0;
    char *text;
    int rv;

    if ((rv = id_arg(c, a->pos[0], id)) != 0)
        return rv;
    /* Words after the id are one note, as `git commit -m` users expect;
     * "-" alone reads the note from stdin. */
    for (size_t i = 1; i < a->pos_count; i++)
        size += strlen(a->pos[i]) + 1;
    if (size < NOTE_MAX + 2)
        size = NOTE_MAX + 2;
    if ((text = malloc(size)) == NULL)
        return im_errf(&c->err, IM_ENOMEM, "out of memory");
    if (a->pos_count == 2 && strcmp(a->pos[1], "-") == 0) {
        rv = read_stdin_note(c, text, NOTE_MAX + 2);
    } else {
        text[0] = '\0';
        for (size_t i = 1; i < a->pos_count; i++) {
            size_t n = strlen(a->pos[i]);
            if (i > 1)
                text[used++] = ' ';
            memcpy(text + used, a->pos[i], n + 1);
            used += n;
        }
    }
    if (rv == 0) {
        note.text = text;
        b.kind_case = IM__BODY__KIND_NOTE;
        b.note = &note;
        rv = write_event(c, id, &b, &resp, &inc);
    }
    free(text);
    if (rv != 0)
        return rv;
    return print_written(c, resp, inc, "note added");
}

/* For `set`, an empty value could only mean "unchanged" on the wire:
 * refuse it rather than silently do nothing. */
static int
nonempty(struct ctx *c, const struct args *a, const char *name,
         const char **out)
{
    const char *v = optval(a, name);

    if (v != NULL && v[0] == '\0')
        return usage(c,
                     "--%s cannot be empty (leave it out to keep the "
                     "current value)",
                     name);
    *out = v;
    return 0;
}

static int
cmd_set(struct ctx *c, const struct args *a)
{
    Im__FieldsSet s = IM__FIELDS_SET__INIT;
    Im__Body b = IM__BODY__INIT;
    char id[INCIDENT_ID_MAX + 1], what[64];
    char cat[CATEGORY_MAX + 1] = "", sub[CATEGORY_MAX + 1] = "";
    const char *title = NULL, *service = NULL, *category = NULL;
    const char *impact = NULL, *urgency = NULL, *description = NULL;
    Im__Response *resp;
    const Im__Incident *inc;
    int rv;

    if ((rv = id_arg(c, a->pos[0], id)) != 0 ||
        (rv = nonempty(c, a, "title", &title)) != 0 ||
        (rv = nonempty(c, a, "service", &service)) != 0 ||
        (rv = nonempty(c, a, "category", &category)) != 0 ||
        (rv = nonempty(c, a, "impact", &impact)) != 0 ||
        (rv = nonempty(c, a, "urgency", &urgency)) != 0 ||
        (rv = nonempty(c, a, "description", &description)) != 0)
        return rv;
    if (a->seq_count == 0)
        return usage(c, "give at least one of --title, --service, "
                        "--category, --impact, --urgency, --description");
    if ((impact && (rv = level_arg(c, "impact", impact, &s.impact)) != 0) ||
        (urgency && (rv = level_arg(c, "urgency", urgency, &s.urgency)) != 0) ||
        (category && (rv = category_arg(c, category, cat, sub)) != 0))
        return rv;
    s.title = (char *)(title ? title : "");
    s.service = (char *)(service ? service : "");
    s.description = (char *)(description ? description : "");
    s.category = cat;
    s.subcategory = sub;
    b.kind_case = IM__BODY__KIND_SET;
    b.set = &s;
    if ((rv = write_event(c, id, &b, &resp, &inc)) != 0)
        return rv;
    snprintf(what, sizeof what, "updated (%s, %s)",
             render_priority_name(inc->priority),
             incident_state_name(inc->state));
    return print_written(c, resp, inc, what);
}

static int
assign(struct ctx *c, const char *id_text, const char *person)
{
    Im__Assign as = IM__ASSIGN__INIT;
    Im__Body b = IM__BODY__INIT;
    char id[INCIDENT_ID_MAX + 1], what[PERSON_MAX + 32];
    Im__Response *resp;
    const Im__Incident *inc;
    int rv;

    if ((rv = id_arg(c, id_text, id)) != 0)
        return rv;
    as.person = (char *)person;
    b.kind_case = IM__BODY__KIND_ASSIGN;
    b.assign = &as;
    if ((rv = write_event(c, id, &b, &resp, &inc)) != 0)
        return rv;
    if (inc->assignee != NULL && inc->assignee[0] != '\0')
        snprintf(what, sizeof what, "assigned to %s", inc->assignee);
    else
        snprintf(what, sizeof what, "unassigned");
    return print_written(c, resp, inc, what);
}

static int
cmd_assign(struct ctx *c, const struct args *a)
{
    const char *to = NULL;
    int rv;

    if ((rv = need(c, a, "to", &to)) != 0)
        return rv;
    return assign(c, a->pos[0], to);
}

static int
cmd_unassign(struct ctx *c, const struct args *a)
{
    return assign(c, a->pos[0], "");
}

/* role: every flag is one RoleSet op, all in one request, so that a
 * hand-over ("--commander bob --remove-sme bob") is one round trip. Every
 * op is checked before anything is sent; each result is reported. */
static int
cmd_role(struct ctx *c, const struct args *a)
{
    Im__RoleSet sets[ARGS_MAX];
    Im__Body bodies[ARGS_MAX];
    Im__Write writes[ARGS_MAX];
    Im__Op ops[ARGS_MAX], *op_ptrs[ARGS_MAX];
    char id[INCIDENT_ID_MAX + 1];
    const Im__Incident *last = NULL;
    Im__Response *resp;
    json_t *out = NULL, *results = NULL;
    size_t n = a->seq_count, failed = 0;
    int rv, first_error = 0;

    if ((rv = id_arg(c, a->pos[0], id)) != 0)
        return rv;
    if (n == 0)
        return usage(c, "give at least one of --manager, --commander, "
                        "--comms, --ops, --sme, --remove-sme");
    for (size_t i = 0; i < n; i++) {
        const char *name = a->opts[a->seq[i].opt].name;
        int remove = strcmp(name, "remove-sme") == 0;
        Im__Role role = IM__ROLE__ROLE_SME;

        /* The flags are named after the roles, but for --remove-sme. */
        if (!remove && incident_role_parse(name, &role) != 0) {
            fprintf(stderr, "imctl: bug: --%s is not a role\n", name);
            abort();
        }
        im__role_set__init(&sets[i]);
        sets[i].role = role;
        sets[i].person = (char *)a->seq[i].value;
        sets[i].remove = remove;
        im__body__init(&bodies[i]);
        bodies[i].kind_case = IM__BODY__KIND_ROLE;
        bodies[i].role = &sets[i];
        if ((rv = incident_body_check(&bodies[i], &c->err)) != 0)
            return im_errwrap(&c->err, "--%s", name);
        im__write__init(&writes[i]);
        writes[i].incident = id;
        writes[i].body = &bodies[i];
        im__op__init(&ops[i]);
        ops[i].kind_case = IM__OP__KIND_WRITE;
        ops[i].write = &writes[i];
        op_ptrs[i] = &ops[i];
    }
    if ((rv = call(c, op_ptrs, n, &resp)) != 0)
        return rv;
    if (c->json) {
        out = json_object();
        results = json_array();
        if (out == NULL || results == NULL ||
            json_object_set_new(out, "id", json_string(id)) != 0 ||
            json_object_set(out, "results", results) != 0) {
            json_decref(out);
            json_decref(results);
            im__response__free_unpacked(resp, NULL);
            return im_errf(&c->err, IM_ENOMEM, "out of memory");
        }
    }
    for (size_t i = 0; i < n; i++) {
        const Im__Result *r = resp->results[i];
        const char *role =
            sets[i].remove ? "sme" : incident_role_name(sets[i].role);
        const char *person = sets[i].person;
        const char *change = sets[i].remove                       ? "removed"
                             : sets[i].role == IM__ROLE__ROLE_SME ? "added"
                             : person[0] == '\0'                  ? "cleared"
                                                                  : "set";
        const char *error =
            r->error && r->error[0] ? r->error : im_strerror(r->code);

        if (r->code == 0 && r->incident != NULL)
            last = r->incident;
        if (r->code != 0) {
            failed++;
            if (first_error == 0)
                first_error = r->code < 0 ? r->code : IM_EPROTO;
        }
        if (c->json) {
            json_t *j =
                json_pack("{s:s, s:s, s:s, s:b, s:s?}", "role", role, "person",
                          person, "change", change, "ok", r->code == 0, "error",
                          r->code ? error : NULL);
            if (j == NULL || json_array_append_new(results, j) != 0)
                failed = n + 1;
        } else if (r->code == 0) {
            printf("%s %s %s%s%s\n", id, role, change, person[0] ? ": " : "",
                   person);
        } else {
            fprintf(stderr, "imctl: %s %s %s%s%s: refused: %s\n", id, role,
                    change, person[0] ? ": " : "", person, error);
        }
    }
    if (c->json) {
        json_decref(results);
        if (failed > n ||
            json_object_set_new(out, "incident",
                                last ? render_incident_json(last, 0)
                                     : json_null()) != 0) {
            json_decref(out);
            im__response__free_unpacked(resp, NULL);
            return im_errf(&c->err, IM_ENOMEM, "out of memory");
        }
        rv = render_json_print(stdout, out, &c->err);
    }
    im__response__free_unpacked(resp, NULL);
    if (rv != 0)
        return rv;
    if (failed > 0)
        return im_errf(&c->err, first_error, "%zu of %zu role changes refused",
                       failed, n);
    return 0;
}

static int
cmd_update(struct ctx *c, const struct args *a)
{
    Im__PublicUpdate u = IM__PUBLIC_UPDATE__INIT;
    Im__Body b = IM__BODY__INIT;
    char id[INCIDENT_ID_MAX + 1];
    Im__Response *resp;
    const Im__Incident *inc;
    const char *text = NULL;
    int rv;

    if ((rv = id_arg(c, a->pos[0], id)) != 0 ||
        (rv = need(c, a, "public", &text)) != 0)
        return rv;
    u.text = (char *)text;
    b.kind_case = IM__BODY__KIND_UPDATE;
    b.update = &u;
    if ((rv = write_event(c, id, &b, &resp, &inc)) != 0)
        return rv;
    return print_written(c, resp, inc, "public update posted");
}

static int
cmd_report(struct ctx *c, const struct args *a)
{
    char id[INCIDENT_ID_MAX + 1];
    Im__Response *resp;
    const Im__Incident *inc;
    char *md = NULL;
    size_t md_size = 0;
    FILE *f;
    json_t *j;
    int rv;

    if ((rv = id_arg(c, a->pos[0], id)) != 0 ||
        (rv = get_incident(c, id, 1, &resp, &inc)) != 0)
        return rv;
    if (!c->json) {
        report_write(stdout, inc, clock_wall_ms());
        im__response__free_unpacked(resp, NULL);
        return 0;
    }
    /* --json: the same Markdown as one string field. */
    if ((f = open_memstream(&md, &md_size)) == NULL) {
        im__response__free_unpacked(resp, NULL);
        return im_errf(&c->err, IM_ENOMEM, "out of memory");
    }
    report_write(f, inc, clock_wall_ms());
    im__response__free_unpacked(resp, NULL);
    if (fclose(f) != 0) {
        free(md);
        return im_errf(&c->err, IM_ENOMEM, "out of memory");
    }
    j = json_pack("{s:s, s:s%}", "id", id, "markdown", md, md_size);
    free(md);
    return render_json_print(stdout, j, &c->err);
}

static int
cmd_stats(struct ctx *c, const struct args *a)
{
    Im__Stats s = IM__STATS__INIT;
    Im__Op op = IM__OP__INIT;
    Im__Response *resp;
    const Im__Result *res;
    const char *since = optval(a, "since");
    uint64_t ms, now = clock_wall_ms();
    int rv;

    if (since != NULL) {
        rv = clock_parse_duration(since, &ms);
        if (rv == IM_ETOOBIG)
            return usage(c, "--since '%.32s' is longer than 100 years", since);
        if (rv != 0)
            return usage(c,
                         "--since '%.32s' is not a duration: use a number "
                         "and a unit, e.g. 90m, 24h, 7d, 2w",
                         since);
        /* 0 on the wire means "all time": a window reaching back past
         * the epoch is all time too. */
        s.since_ms = ms < now ? now - ms : 1;
    }
    op.kind_case = IM__OP__KIND_STATS;
    op.stats = &s;
    if ((rv = call_one(c, &op, &resp, &res)) != 0)
        return rv;
    if (res->stats == NULL) {
        im__response__free_unpacked(resp, NULL);
        return im_errf(&c->err, IM_EPROTO, "node sent no statistics");
    }
    if (c->json)
        rv = render_json_print(stdout, render_stats_json(res->stats), &c->err);
    else
        render_stats_text(stdout, res->stats);
    im__response__free_unpacked(resp, NULL);
    return rv;
}

static int
cmd_peers(struct ctx *c, const struct args *a)
{
    Im__Peers q = IM__PEERS__INIT;
    Im__Op op = IM__OP__INIT;
    Im__Response *resp;
    const Im__Result *res;
    int rv = 0;

    op.kind_case = IM__OP__KIND_PEERS;
    op.peers = &q;
    if ((rv = call_one(c, &op, &resp, &res)) != 0)
        return rv;
    if (res->peers == NULL) {
        im__response__free_unpacked(resp, NULL);
        return im_errf(&c->err, IM_EPROTO, "node sent no peers reply");
    }
    if (c->json)
        rv = render_json_print(stdout, render_peers_json(res->peers, clock_wall_ms()),
                               &c->err);
    else
        render_peers_text(stdout, res->peers, clock_wall_ms());
    im__response__free_unpacked(resp, NULL);
    return rv;
}

static int
cmd_ping(struct ctx *c, const struct args *a)
{
    Im__Ping p = IM__PING__INIT;
    Im__Op op = IM__OP__INIT;
    Im__Response *resp;
    const Im__Result *res;
    uint64_t t0, t1;
    int64_t skew;
    int rv;

    /* Connect first: the round trip measures the request, not the dial. */
    if ((rv = node_connect(c)) != 0)
        return rv;
    op.kind_case = IM__OP__KIND_PING;
    op.ping = &p;
    t0 = clock_wall_ms();
    if ((rv = call_one(c, &op, &resp, &res)) != 0)
        return rv;
    t1 = clock_wall_ms();
    if (res->ping == NULL) {
        im__response__free_unpacked(resp, NULL);
        return im_errf(&c->err, IM_EPROTO, "node sent no ping reply");
    }
    /* The node read its clock somewhere in the round trip: compare with
     * the midpoint. */
    skew = (int64_t)res->ping->now_ms - (int64_t)(t0 + (t1 - t0) / 2);
    if (c->json)
        rv = render_json_print(
            stdout, render_ping_json(res->ping, skew, t1 - t0), &c->err);
    else
        render_ping_text(stdout, res->ping, skew, t1 - t0);
    im__response__free_unpacked(resp, NULL);
    return rv;
}

static int
cmd_sites(struct ctx *c, const struct args *a)
{
    Im__CoordSites q = IM__COORD_SITES__INIT;
    Im__Op op = IM__OP__INIT;
    Im__Response *resp;
    const Im__Result *res;
    int rv;

    op.kind_case = IM__OP__KIND_SITES;
    op.sites = &q;
    if ((rv = coord_call_one(c, &op, &resp, &res)) != 0)
        return rv;
    if (res->sites == NULL) {
        im__response__free_unpacked(resp, NULL);
        return im_errf(&c->err, IM_EPROTO, "coordinator sent no sites reply");
    }
    if (c->json)
        rv = render_json_print(stdout, render_sites_json(res->sites), &c->err);
    else
        render_sites_text(stdout, res->sites, clock_wall_ms());
    im__response__free_unpacked(resp, NULL);
    return rv;
}

/* owner, reassign, handback: one op, an OwnerReply. */
static int
owner_op(struct ctx *c, Im__Op *op)
{
    Im__Response *resp;
    const Im__Result *res;
    int rv;

    if ((rv = coord_call_one(c, op, &resp, &res)) != 0)
        return rv;
    if (res->owner == NULL) {
        im__response__free_unpacked(resp, NULL);
        return im_errf(&c->err, IM_EPROTO, "coordinator sent no owner reply");
    }
    if (c->json)
        rv = render_json_print(stdout, render_owner_json(res->owner), &c->err);
    else
        render_owner_text(stdout, res->owner);
    im__response__free_unpacked(resp, NULL);
    return rv;
}

static int
cmd_owner(struct ctx *c, const struct args *a)
{
    Im__OwnerGet q = IM__OWNER_GET__INIT;
    Im__Op op = IM__OP__INIT;
    char id[INCIDENT_ID_MAX + 1];
    int rv;

    if ((rv = id_arg(c, a->pos[0], id)) != 0)
        return rv;
    q.incident = id;
    op.kind_case = IM__OP__KIND_OWNER;
    op.owner = &q;
    return owner_op(c, &op);
}

static int
cmd_reassign(struct ctx *c, const struct args *a)
{
    Im__Reassign q = IM__REASSIGN__INIT;
    Im__Op op = IM__OP__INIT;
    char id[INCIDENT_ID_MAX + 1], site[SITE_CODE_MAX + 1];
    const char *to = NULL, *manager = optval(a, "manager"),
               *reason = optval(a, "reason");
    int rv;

    if ((rv = id_arg(c, a->pos[0], id)) != 0 || (rv = need(c, a, "to", &to)) != 0)
        return rv;
    if ((rv = site_arg(c, to, site)) != 0) {
        im_errf(&c->err, IM_EINVAL, "--to '%.64s' is not a site code", to);
        return IM_EINVAL;
    }
    if (manager != NULL && strlen(manager) > PERSON_MAX)
        return im_errf(&c->err, IM_ETOOBIG, "--manager is longer than %d bytes",
                       PERSON_MAX);
    if (reason != NULL && strlen(reason) > 100)
        return im_errf(&c->err, IM_ETOOBIG, "--reason is longer than 100 bytes");
    q.incident = id;
    q.to_site = site;
    q.manager = (char *)(manager ? manager : "");
    q.reason = (char *)(reason ? reason : "");
    op.kind_case = IM__OP__KIND_REASSIGN;
    op.reassign = &q;
    return owner_op(c, &op);
}

/* majors, major declare, escalate: one op, a MajorsReply. */
static int
majors_op(struct ctx *c, Im__Op *op)
{
    Im__Response *resp;
    const Im__Result *res;
    int rv;

    if ((rv = coord_call_one(c, op, &resp, &res)) != 0)
        return rv;
    if (res->majors == NULL) {
        im__response__free_unpacked(resp, NULL);
        return im_errf(&c->err, IM_EPROTO, "coordinator sent no majors reply");
    }
    if (c->json)
        rv = render_json_print(stdout, render_majors_json(res->majors), &c->err);
    else
        render_majors_text(stdout, res->majors, clock_wall_ms());
    im__response__free_unpacked(resp, NULL);
    return rv;
}

static int
cmd_majors(struct ctx *c, const struct args *a)
{
    Im__MajorsList q = IM__MAJORS_LIST__INIT;
    Im__Op op = IM__OP__INIT;

    q.all = optval(a, "all") != NULL;
    op.kind_case = IM__OP__KIND_MAJORS;
    op.majors = &q;
    return majors_op(c, &op);
}

/* The reason of a coordinator command, at most max bytes. */
static int
reason_arg(struct ctx *c, const struct args *a, size_t max, const char **out)
{
    const char *reason = optval(a, "reason");
    if (reason != NULL && strlen(reason) > max)
        return im_errf(&c->err, IM_ETOOBIG, "--reason is longer than %zu bytes",
                       max);
    *out = reason ? reason : "";
    return 0;
}

static int
cmd_major(struct ctx *c, const struct args *a)
{
    Im__MajorDeclare q = IM__MAJOR_DECLARE__INIT;
    Im__Op op = IM__OP__INIT;
    char id[INCIDENT_ID_MAX + 1], sites[AFFECTS_MAX][SITE_CODE_MAX + 1];
    char *ptrs[AFFECTS_MAX];
    const char *affects = optval(a, "affects"), *reason = "";
    int rv;

    if (strcmp(a->pos[0], "declare") != 0)
        return usage(c, "'%.32s' is not a major subcommand (only 'declare')",
                     a->pos[0]);
    if ((rv = id_arg(c, a->pos[1], id)) != 0 ||
        (rv = reason_arg(c, a, 160, &reason)) != 0)
        return rv;
    for (const char *p = affects; p != NULL && *p != '\0';) {
        size_t n = strcspn(p, ",");
        char one[SITE_CODE_MAX + 2];
        if (q.n_affects == AFFECTS_MAX)
            return usage(c, "--affects names more than %d sites", AFFECTS_MAX);
        if (n == 0 || n > SITE_CODE_MAX)
            return usage(c, "--affects '%.64s': a comma-separated list of site "
                            "codes", affects);
        memcpy(one, p, n);
        one[n] = '\0';
        for (size_t i = 0; i <= n; i++)
            sites[q.n_affects][i] =
                (char)(one[i] >= 'a' && one[i] <= 'z' ? one[i] - 32 : one[i]);
        if (config_check_site_code(sites[q.n_affects]) != 0)
            return usage(c, "--affects: '%s' is not a site code", one);
        ptrs[q.n_affects] = sites[q.n_affects];
        q.n_affects++;
        p += n;
        if (*p == ',' && *++p == '\0')
            return usage(c, "--affects '%.64s' ends with a comma", affects);
    }
    q.incident = id;
    q.reason = (char *)reason;
    q.affects = ptrs;
    op.kind_case = IM__OP__KIND_MAJOR_DECLARE;
    op.major_declare = &q;
    return majors_op(c, &op);
}

static int
cmd_escalate(struct ctx *c, const struct args *a)
{
    Im__Escalate q = IM__ESCALATE__INIT;
    Im__Op op = IM__OP__INIT;
    char id[INCIDENT_ID_MAX + 1], site[SITE_CODE_MAX + 1] = "";
    const char *to = optval(a, "to-site"), *reason = "";
    int rv;

    if ((rv = id_arg(c, a->pos[0], id)) != 0 ||
        (rv = reason_arg(c, a, 100, &reason)) != 0)
        return rv;
    if (to != NULL && site_arg(c, to, site) != 0)
        return usage(c, "--to-site '%.64s' is not a site code", to);
    q.incident = id;
    q.reason = (char *)reason;
    q.to_site = site;
    op.kind_case = IM__OP__KIND_ESCALATE;
    op.escalate = &q;
    return majors_op(c, &op);
}

static int
cmd_handback(struct ctx *c, const struct args *a)
{
    Im__Handback q = IM__HANDBACK__INIT;
    Im__Op op = IM__OP__INIT;
    char id[INCIDENT_ID_MAX + 1];
    const char *reason = optval(a, "reason");
    int rv;

    if ((rv = id_arg(c, a->pos[0], id)) != 0)
        return rv;
    if (reason != NULL && strlen(reason) > 100)
        return im_errf(&c->err, IM_ETOOBIG, "--reason is longer than 100 bytes");
    q.incident = id;
    q.reason = (char *)(reason ? reason : "");
    op.kind_case = IM__OP__KIND_HANDBACK;
    op.handback = &q;
    return owner_op(c, &op);
}

/* The schedule file: at most SCHEDULE_TEXT_MAX bytes of text. *text_out
 * is malloc'd and NUL-terminated. */
static int
read_schedule_file(struct ctx *c, const char *path, char **text_out)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    char *buf;
    size_t n;

    if (f == NULL)
        return im_errf(&c->err, IM_EINVAL, "%s: %s", path, strerror(errno));
    if ((buf = malloc(SCHEDULE_TEXT_MAX + 2)) == NULL) {
        if (f != stdin)
            fclose(f);
        return im_errf(&c->err, IM_ENOMEM, "out of memory");
    }
    n = fread(buf, 1, SCHEDULE_TEXT_MAX + 1, f);
    if (ferror(f)) {
        int err = errno;
        if (f != stdin)
            fclose(f);
        free(buf);
        return im_errf(&c->err, IM_EINVAL, "%s: %s", path, strerror(err));
    }
    if (f != stdin)
        fclose(f);
    if (n > SCHEDULE_TEXT_MAX) {
        free(buf);
        return im_errf(&c->err, IM_ETOOBIG, "%s: larger than %d bytes", path,
                       SCHEDULE_TEXT_MAX);
    }
    if (memchr(buf, '\0', n) != NULL) {
        free(buf);
        return im_errf(&c->err, IM_EINVAL,
                       "%s: contains a NUL byte: not a JSON text", path);
    }
    buf[n] = '\0';
    *text_out = buf;
    return 0;
}

static int
cmd_schedule(struct ctx *c, const struct args *a)
{
    Im__ScheduleApply ap = IM__SCHEDULE_APPLY__INIT;
    Im__ScheduleGet get = IM__SCHEDULE_GET__INIT;
    Im__Op op = IM__OP__INIT;
    Im__Response *resp;
    const Im__Result *res;
    const char *verb = a->pos[0];
    char *text = NULL;
    int apply, rv;

    if (strcmp(verb, "apply") == 0) {
        apply = 1;
        if (a->pos_count != 2)
            return usage(c, "apply takes one FILE ('-' reads stdin)");
    } else if (strcmp(verb, "get") == 0) {
        apply = 0;
        if (a->pos_count != 1)
            return usage(c, "get takes no operand");
        if (optval(a, "dry-run") != NULL)
            return usage(c, "--dry-run goes with apply");
    } else {
        return usage(c, "unknown action '%.32s': apply or get", verb);
    }
    if (apply) {
        if ((rv = read_schedule_file(c, a->pos[1], &text)) != 0)
            return rv;
        ap.text = text;
        ap.dry_run = optval(a, "dry-run") != NULL;
        op.kind_case = IM__OP__KIND_SCHEDULE_APPLY;
        op.schedule_apply = &ap;
    } else {
        op.kind_case = IM__OP__KIND_SCHEDULE_GET;
        op.schedule_get = &get;
    }
    rv = coord_call_one(c, &op, &resp, &res);
    free(text);
    if (rv != 0) {
        if (apply)
            im_errwrap(&c->err, "%s", a->pos[1]);
        return rv;
    }
    if (res->schedule == NULL) {
        im__response__free_unpacked(resp, NULL);
        return im_errf(&c->err, IM_EPROTO,
                       "coordinator sent no schedule reply");
    }
    if (apply && c->json)
        rv = render_json_print(stdout, render_schedule_apply_json(res->schedule),
                               &c->err);
    else if (apply)
        render_schedule_apply_text(stdout, res->schedule);
    else if (c->json)
        rv = render_json_print(stdout, render_schedule_json(res->schedule),
                               &c->err);
    else
        rv = render_schedule_text(stdout, res->schedule, &c->err);
    im__response__free_unpacked(resp, NULL);
    return rv;
}

static int
cmd_oncall(struct ctx *c, const struct args *a)
{
    Im__OncallGet q = IM__ONCALL_GET__INIT;
    Im__Op op = IM__OP__INIT;
    Im__Response *resp;
    const Im__Result *res;
    const char *site = optval(a, "site"), *at = optval(a, "at");
    char code[SITE_CODE_MAX + 1] = "";
    uint64_t at_ms = 0;
    int rv;

    if (site != NULL && (rv = site_arg(c, site, code)) != 0)
        return rv;
    if (at != NULL && (clock_parse_rfc3339(at, &at_ms) != 0 || at_ms == 0))
        return usage(c,
                     "--at '%.64s' is not an RFC 3339 time "
                     "(2026-11-24T15:00:00Z or with an offset)",
                     at);
    q.site = code;
    q.at_ms = at_ms;
    op.kind_case = IM__OP__KIND_ONCALL;
    op.oncall = &q;
    if ((rv = coord_call_one(c, &op, &resp, &res)) != 0)
        return rv;
    if (res->oncall == NULL) {
        im__response__free_unpacked(resp, NULL);
        return im_errf(&c->err, IM_EPROTO, "coordinator sent no on-call reply");
    }
    if (c->json)
        rv = render_json_print(stdout, render_oncall_json(res->oncall), &c->err);
    else
        render_oncall_text(stdout, res->oncall);
    im__response__free_unpacked(resp, NULL);
    return rv;
}

static int
cmd_keygen(struct ctx *c, const struct args *a)
{
    struct im_key k;
    char pub[KEY_PUB_TEXT_MAX];
    const char *path = NULL;
    int rv;

    if ((rv = need(c, a, "out", &path)) != 0)
        return rv;
    if (path[0] == '\0')
        return usage(c, "--out cannot be empty");
    if ((rv = keys_init()) != 0)
        return im_errf(&c->err, rv, "cannot initialise libsodium");
    key_generate(&k);
    rv = key_save(&k, path, &c->err);
    key_pub_encode(k.pk, pub);
    sodium_memzero(&k, sizeof k);
    if (rv == IM_EEXIST)
        return im_errf(&c->err, rv,
                       "%s already exists: keygen never overwrites a key",
                       path);
    if (rv != 0)
        return rv;
    if (c->json)
        return render_json_print(
            stdout, json_pack("{s:s, s:s}", "path", path, "public_key", pub),
            &c->err);
    printf("%s\n", pub);
    return 0;
}

/* ---- help -------------------------------------------------------------- */

static void
print_opts(FILE *out, const struct opt *opts)
{
    for (size_t i = 0; opts[i].name != NULL; i++) {
        char left[48];
        snprintf(left, sizeof left, "--%s%s%s", opts[i].name,
                 opts[i].arg ? " " : "", opts[i].arg ? opts[i].arg : "");
        fprintf(out, "  %-24s %s\n", left, opts[i].help);
    }
}

static void
command_help(FILE *out, const struct command *cmd)
{
    fprintf(out, "usage: imctl %s %s\n\n%s\n", cmd->name, cmd->synopsis,
            cmd->summary);
    if (cmd->opts[0].name != NULL) {
        fputs("\noptions:\n", out);
        print_opts(out, cmd->opts);
    }
    if (cmd->flags & NEEDS_NODE) {
        fputs("\nglobal options (before or after the command):\n", out);
        print_opts(out, global_opts);
    }
    fprintf(out, "\nexample:\n  %s\n", cmd->example);
}

static void
general_help(FILE *out)
{
    fputs("usage: imctl [--node URL] [--key FILE] [--json] [--timeout MS] "
          "COMMAND [ARGS]\n\n"
          "Incident Mesh command-line client. Every request is signed with "
          "your key.\n\ncommands:\n",
          out);
    for (const struct command *cmd = commands; cmd->name != NULL; cmd++)
        fprintf(out, "  %-10s %s\n", cmd->name, cmd->summary);
    fputs("\nglobal options (before or after the command):\n", out);
    print_opts(out, global_opts);
    fputs("\nenvironment: IM_NODE and IM_KEY are the defaults of --node and "
          "--key.\n"
          "exit codes: 0 ok, 1 refused or failed, 2 usage or invalid input, "
          "3 node unreachable.\n"
          "'imctl help COMMAND' or 'imctl COMMAND --help' for a command's "
          "options.\n",
          out);
}

static int
cmd_help(struct ctx *c, const struct args *a)
{
    const struct command *cmd;

    if (a->pos_count == 0) {
        general_help(stdout);
        return 0;
    }
    if ((cmd = command_find(a->pos[0])) == NULL)
        return usage(c, "unknown command '%.64s'", a->pos[0]);
    command_help(stdout, cmd);
    return 0;
}

/* ---- the command table ------------------------------------------------- */

static const struct opt no_opts[] = {{NULL, 0, 0, NULL, NULL}};

static const struct opt open_opts[] = {
    {"title", OPT_VALUE, 0, "T", "one line, at most 200 bytes (required)"},
    {"service", OPT_VALUE, 0, "S", "affected service (required)"},
    {"impact", OPT_VALUE, 0, "LEVEL", "high, medium or low (required)"},
    {"urgency", OPT_VALUE, 0, "LEVEL", "high, medium or low (required)"},
    {"category", OPT_VALUE, 0, "CAT[/SUB]", "category and subcategory"},
    {"description", OPT_VALUE, 0, "D", "what is known, at most 4096 bytes"},
    {"major", OPT_FLAG, 0, NULL, "declare a major incident (P1 always is)"},
    {NULL, 0, 0, NULL, NULL},
};

static const struct opt list_opts[] = {
    {"state", OPT_VALUE, 0, "S",
     "only this state: new, acknowledged, in_progress, on_hold, resolved, "
     "closed, cancelled"},
    {"priority", OPT_VALUE, 0, "P", "only this priority, P1 to P5"},
    {"service", OPT_VALUE, 0, "S", "only this service"},
    {"major", OPT_FLAG, 0, NULL, "only major incidents"},
    {"all", OPT_FLAG, 0, NULL, "include resolved, closed and cancelled"},
    {"site", OPT_VALUE, 0, "CODE", "only incidents opened at this site"},
    {"limit", OPT_VALUE, 0, "N", "show at most N (default 100, max 100000)"},
    {NULL, 0, 0, NULL, NULL},
};

static const struct opt reason_opts[] = {
    {"reason", OPT_VALUE, 0, "R", "why, at most 1024 bytes (required)"},
    {NULL, 0, 0, NULL, NULL},
};

static const struct opt resolve_opts[] = {
    {"code", OPT_VALUE, 0, "C",
     "resolution code, e.g. fixed, workaround (required)"},
    {"notes", OPT_VALUE, 0, "N",
     "what was done, at most 4096 bytes (required)"},
    {NULL, 0, 0, NULL, NULL},
};

static const struct opt set_opts[] = {
    {"title", OPT_VALUE, 0, "T", "new title"},
    {"service", OPT_VALUE, 0, "S", "new service"},
    {"category", OPT_VALUE, 0, "CAT[/SUB]",
     "new category (without /SUB the subcategory is cleared)"},
    {"impact", OPT_VALUE, 0, "LEVEL", "high, medium or low"},
    {"urgency", OPT_VALUE, 0, "LEVEL", "high, medium or low"},
    {"description", OPT_VALUE, 0, "D", "new description"},
    {NULL, 0, 0, NULL, NULL},
};

static const struct opt assign_opts[] = {
    {"to", OPT_VALUE, 0, "PERSON", "assignee; \"\" unassigns (required)"},
    {NULL, 0, 0, NULL, NULL},
};

static const struct opt role_opts[] = {
    {"manager", OPT_VALUE, 0, "P", "incident manager (\"\" clears)"},
    {"commander", OPT_VALUE, 0, "P", "incident commander (\"\" clears)"},
    {"comms", OPT_VALUE, 0, "P", "communications lead (\"\" clears)"},
    {"ops", OPT_VALUE, 0, "P", "operations lead (\"\" clears)"},
    {"sme", OPT_VALUE, 1, "P", "add a subject-matter expert (repeatable)"},
    {"remove-sme", OPT_VALUE, 1, "P",
     "remove a subject-matter expert (repeatable)"},
    {NULL, 0, 0, NULL, NULL},
};

static const struct opt update_opts[] = {
    {"public", OPT_VALUE, 0, "TEXT",
     "customer-facing status update, at most 2048 bytes (required)"},
    {NULL, 0, 0, NULL, NULL},
};

static const struct opt stats_opts[] = {
    {"since", OPT_VALUE, 0, "DURATION",
     "only incidents opened in the last DURATION (30m, 24h, 7d, 2w)"},
    {NULL, 0, 0, NULL, NULL},
};

static const struct opt reassign_opts[] = {
    {"to", OPT_VALUE, 0, "SITE", "the site that takes ownership (required)"},
    {"manager", OPT_VALUE, 0, "P", "its incident manager (default: on call)"},
    {"reason", OPT_VALUE, 0, "R", "why, at most 100 bytes"},
    {NULL, 0, 0, NULL, NULL},
};

static const struct opt handback_opts[] = {
    {"reason", OPT_VALUE, 0, "R", "why, at most 100 bytes"},
    {NULL, 0, 0, NULL, NULL},
};

static const struct opt schedule_opts[] = {
    {"dry-run", OPT_FLAG, 0, NULL, "apply: validate only, store nothing"},
    {NULL, 0, 0, NULL, NULL},
};

static const struct opt oncall_opts[] = {
    {"site", OPT_VALUE, 0, "CODE", "only this site (and the global manager)"},
    {"at", OPT_VALUE, 0, "TIME",
     "at this RFC 3339 time instead of now (2026-12-24T18:00:00+01:00)"},
    {NULL, 0, 0, NULL, NULL},
};

static const struct opt majors_opts[] = {
    {"all", OPT_FLAG, 0, NULL, "include resolved major incidents"},
    {NULL, 0, 0, NULL, NULL},
};

static const struct opt major_opts[] = {
    {"affects", OPT_VALUE, 0, "SITE,...",
     "sites affected besides the origin and the owner (each is told and "
     "its manager paged)"},
    {"reason", OPT_VALUE, 0, "R", "why, at most 160 bytes"},
    {NULL, 0, 0, NULL, NULL},
};

static const struct opt escalate_opts[] = {
    {"to-site", OPT_VALUE, 0, "SITE",
     "ask this site for help: its manager is paged now and copied on every "
     "later page (without it: the next level is paged now)"},
    {"reason", OPT_VALUE, 0, "R", "why, at most 100 bytes"},
    {NULL, 0, 0, NULL, NULL},
};

static const struct opt keygen_opts[] = {
    {"out", OPT_VALUE, 0, "FILE",
     "where to write the secret key; never overwritten (required)"},
    {NULL, 0, 0, NULL, NULL},
};

static const struct command commands[] = {
    {"open", cmd_open, NEEDS_NODE, 0, 0, open_opts,
     "--title T --service S --impact LEVEL --urgency LEVEL [--category "
     "CAT[/SUB]] [--description D] [--major]",
     "Open an incident; prints its id (--json: the incident).",
     "imctl open --title 'Checkout returns 502' --service payments "
     "--category network/dns --impact high --urgency high"},
    {"list", cmd_list, NEEDS_NODE, 0, 0, list_opts,
     "[--state S] [--priority P] [--service S] [--major] [--all] [--site "
     "CODE] [--limit N]",
     "List incidents: open ones by default, highest priority first, then "
     "oldest.",
     "imctl list --priority P1 --all --limit 20"},
    {"show", cmd_show, NEEDS_NODE, 1, 1, no_opts, "ID",
     "Show an incident's fields and timeline (refused events marked).",
     "imctl show AMS-42"},
    {"ack", cmd_ack, NEEDS_NODE, 1, 1, no_opts, "ID",
     "Acknowledge a new incident.", "imctl ack AMS-42"},
    {"start", cmd_start, NEEDS_NODE, 1, 1, no_opts, "ID",
     "Start work (from acknowledged or on_hold).", "imctl start AMS-42"},
    {"hold", cmd_hold, NEEDS_NODE, 1, 1, reason_opts, "ID --reason R",
     "Put an incident in progress on hold.",
     "imctl hold AMS-42 --reason 'waiting for the vendor'"},
    {"resolve", cmd_resolve, NEEDS_NODE, 1, 1, resolve_opts,
     "ID --code C --notes N", "Resolve an incident in progress.",
     "imctl resolve AMS-42 --code fixed --notes 'rolled back 4.2.1'"},
    {"close", cmd_close, NEEDS_NODE, 1, 1, no_opts, "ID",
     "Close a resolved incident (final).", "imctl close AMS-42"},
    {"reopen", cmd_reopen, NEEDS_NODE, 1, 1, reason_opts, "ID --reason R",
     "Reopen a resolved incident (back to in_progress).",
     "imctl reopen AMS-42 --reason 'errors are back'"},
    {"cancel", cmd_cancel, NEEDS_NODE, 1, 1, reason_opts, "ID --reason R",
     "Cancel an open incident (final).",
     "imctl cancel AMS-42 --reason 'duplicate of AMS-41'"},
    {"note", cmd_note, NEEDS_NODE, 2, ARGS_MAX, no_opts, "ID TEXT...",
     "Add a timeline note (the words after ID, or '-' to read stdin). "
     "Notes starting 'follow-up:' or 'TODO' are listed in the report.",
     "imctl note AMS-42 'follow-up: alert on 502 rate'"},
    {"set", cmd_set, NEEDS_NODE, 1, 1, set_opts,
     "ID [--title T] [--service S] [--category CAT[/SUB]] [--impact LEVEL] "
     "[--urgency LEVEL] [--description D]",
     "Change fields (at least one); impact and urgency recompute the "
     "priority.",
     "imctl set AMS-42 --impact medium --urgency low"},
    {"assign", cmd_assign, NEEDS_NODE, 1, 1, assign_opts, "ID --to PERSON",
     "Assign an incident (--to '' unassigns).",
     "imctl assign AMS-42 --to alice"},
    {"unassign", cmd_unassign, NEEDS_NODE, 1, 1, no_opts, "ID",
     "Remove the assignee.", "imctl unassign AMS-42"},
    {"role", cmd_role, NEEDS_NODE, 1, 1, role_opts,
     "ID [--manager P] [--commander P] [--comms P] [--ops P] [--sme P]... "
     "[--remove-sme P]...",
     "Set incident roles: one change per flag, all in one request; each "
     "result is reported.",
     "imctl role AMS-42 --commander alice --comms bob --sme carol"},
    {"update", cmd_update, NEEDS_NODE, 1, 1, update_opts, "ID --public TEXT",
     "Post a customer-facing status update.",
     "imctl update AMS-42 --public 'Payments are degraded; we are on it.'"},
    {"report", cmd_report, NEEDS_NODE, 1, 1, no_opts, "ID",
     "Print the post-incident report in Markdown (--json: {id, markdown}).",
     "imctl report AMS-42 > AMS-42.md"},
    {"stats", cmd_stats, NEEDS_NODE, 0, 0, stats_opts, "[--since DURATION]",
     "Counts by state and priority, MTTA and MTTR, per service.",
     "imctl stats --since 7d"},
    {"peers", cmd_peers, NEEDS_NODE, 0, 0, no_opts, "",
     "Replication links of this node: connected or not, last contact, "
     "events each peer lacks per origin, lag (latest, p99), bytes in/out, "
     "frames and ranges rejected and why.",
     "imctl peers --json"},
    {"ping", cmd_ping, NEEDS_NODE, 0, 0, no_opts, "",
     "Check the node: site, your operator name and role, version, clock "
     "skew.",
     "imctl --node tcp://127.0.0.1:7400 ping"},
    {"sites", cmd_sites, NEEDS_COORD, 0, 0, no_opts, "",
     "Every site's health as the coordinator leader recorded it (up, down, "
     "unknown, since when and why), how long ago the answering replica "
     "heard it, and its open and owned incidents.",
     "imctl --coord tcp://127.0.0.1:7600 sites"},
    {"owner", cmd_owner, NEEDS_COORD, 1, 1, no_opts, "ID",
     "Who owns an incident (site, manager, token) and why.",
     "imctl owner AMS-42"},
    {"reassign", cmd_reassign, NEEDS_COORD, 1, 1, reassign_opts,
     "ID --to SITE [--manager P] [--reason R]",
     "Move an incident's ownership to another site (a new owner token).",
     "imctl reassign AMS-42 --to NYC --reason 'AMS team off shift'"},
    {"handback", cmd_handback, NEEDS_COORD, 1, 1, handback_opts,
     "ID [--reason R]",
     "Give an incident's ownership back to its origin site.",
     "imctl handback AMS-42"},
    {"schedule", cmd_schedule, NEEDS_COORD, 1, 2, schedule_opts,
     "apply FILE [--dry-run] | get",
     "Apply the on-call schedule (rotations, overrides, failover order, "
     "service map; docs/schedule.md), or print the one in force. A file "
     "with any error is refused whole, naming the place; nothing changes.",
     "imctl schedule apply schedule.json --dry-run"},
    {"oncall", cmd_oncall, NEEDS_COORD, 0, 0, oncall_opts,
     "[--site CODE] [--at TIME]",
     "Who is on call at each site and globally, until when, and who is "
     "next.",
     "imctl oncall --site AMS --at 2026-12-24T20:00:00+01:00"},
    {"majors", cmd_majors, NEEDS_COORD, 0, 0, majors_opts, "[--all]",
     "Major incidents of every site: owner, acknowledged or not, escalation "
     "level and run, who was paged, the next deadline, pages issued and "
     "recorded.",
     "imctl majors --all"},
    {"major", cmd_major, NEEDS_COORD, 2, 2, major_opts,
     "declare ID [--affects SITE,...] [--reason R]",
     "Declare a major incident at the coordinator: the global manager and "
     "every affected site are told and paged, and the escalation policy "
     "runs until someone acknowledges.",
     "imctl major declare AMS-42 --affects NYC,SGP --reason 'payments down'"},
    {"escalate", cmd_escalate, NEEDS_COORD, 1, 1, escalate_opts,
     "ID [--to-site SITE] [--reason R]",
     "Escalate a major incident now: page its next level, or ask another "
     "site for help.",
     "imctl escalate AMS-42 --to-site NYC"},
    {"keygen", cmd_keygen, 0, 0, 0, keygen_opts, "--out FILE",
     "Create an operator key (mode 0600) and print its public key for the "
     "node's config. Needs no node.",
     "imctl keygen --out ~/.config/im/alice.key"},
    {"help", cmd_help, 0, 0, 1, no_opts, "[COMMAND]",
     "Show help for imctl or for one command.", "imctl help role"},
    {NULL, NULL, 0, 0, 0, NULL, NULL, NULL, NULL},
};

static const struct command *
command_find(const char *name)
{
    for (const struct command *cmd = commands; cmd->name != NULL; cmd++)
        if (strcmp(cmd->name, name) == 0)
            return cmd;
    return NULL;
}

/* ---- main ---------------------------------------------------------------- */

int
main(int argc, char **argv)
{
    struct ctx c;
    struct args a;
    int help, rv;

    memset(&c, 0, sizeof c);
    c.node = getenv("IM_NODE");
    c.coord = getenv("IM_COORD");
    c.key = getenv("IM_KEY");
    c.node_key = getenv("IM_NODE_KEY");
    c.cluster = getenv("IM_CLUSTER");
    rv = parse(&c, argc, argv, &a, &help);
    if (help) {
        /* Help wins over any other problem on the line, as in git: the
         * user asked how to write it. */
        rv = 0;
        if (c.cmd != NULL)
            command_help(stdout, c.cmd);
        else
            general_help(stdout);
    } else if (rv == 0) {
        if ((c.cmd->flags & NEEDS_NODE) && (c.node == NULL || !c.node[0]))
            rv = im_errf(&c.err, IM_EINVAL,
                         "no node address: give --node URL or set IM_NODE");
        else if ((c.cmd->flags & NEEDS_COORD) && (c.coord == NULL || !c.coord[0]))
            rv = im_errf(&c.err, IM_EINVAL,
                         "no coordinator address: give --coord URL[,URL...] or "
                         "set IM_COORD");
        else if ((c.cmd->flags & (NEEDS_NODE | NEEDS_COORD)) &&
                 (c.key == NULL || !c.key[0]))
            rv = im_errf(&c.err, IM_EINVAL,
                         "no key: give --key FILE or set IM_KEY (create one "
                         "with 'imctl keygen --out FILE')");
        else
            rv = c.cmd->run(&c, &a);
    }
    if (c.connected)
        client_close(&c.client);
    if (rv != 0) {
        fflush(stdout);
        fprintf(stderr, "imctl: %s\n", im_errmsg(&c.err));
        return exit_for(rv);
    }
    /* Success is reported only once the output is really out: a full disk
     * or closed pipe must not look like a clean run. */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "imctl: write to stdout: %s\n", strerror(errno));
        return EXIT_REFUSED;
    }
    return EXIT_OK;
}
