/* imnode: the site daemon. Parses the command line, loads the config, and
 * wires store -> committer -> API; then waits for SIGINT/SIGTERM and shuts
 * down in the order that keeps every acknowledged write durable. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "commit.h"
#include "config.h"
#include "coordlink.h"
#include "devmode.h"
#include "http.h"
#include "keys.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "peer.h"
#include "remote.h"
#include "store.h"

static const char usage[] =
    "usage: imnode --config FILE\n"
    "       imnode --dev [--data DIR] [--site CODE] [--listen URL] [--http URL]\n"
    "       imnode check (--config FILE | --data DIR) [--acked FILE]\n"
    "       imnode --help | --version\n"
    "\n"
    "Runs an Incident Mesh site node: the LMDB event store, and the API that\n"
    "imctl talks to.\n"
    "\n"
    "  --config FILE   run the node described by FILE (see README:\n"
    "                  Configuration)\n"
    "  --dev           run a ready single-site node: creates DIR (default\n"
    "                  ./" DEVMODE_DIR_DEFAULT "), its site key, an admin operator key and\n"
    "                  node.conf on first run; prints and writes DIR/env,\n"
    "                  the exports that point imctl at it\n"
    "  --data DIR      data directory (--dev, check)\n"
    "  --site CODE     site code for --dev (default " DEVMODE_SITE_DEFAULT ")\n"
    "  --listen URL    API address, e.g. tcp://127.0.0.1:7400 (overrides the\n"
    "                  config)\n"
    "  --http URL      HTTP address, e.g. http://127.0.0.1:7480 (overrides the\n"
    "                  config's [http] listen)\n"
    "\n"
    "  check           verify a stopped node's store: hash chains, checkpoint\n"
    "                  signatures, every incident against a fresh fold of its\n"
    "                  events, indexes; with --acked FILE also that every\n"
    "                  'ORIGIN SEQ INCIDENT' line names a stored event.\n"
    "                  Exit 0 if all holds, 1 if not, 2 on bad usage.\n"
    "\n"
    "Environment: IM_LOG=debug|info|warn|error\n";

static int
load_site_key(const struct config *cfg, struct im_key *key, struct im_err *e)
{
    const struct cfg_site *own = config_site(cfg, cfg->node.site);
    char have[KEY_PUB_TEXT_MAX], want[KEY_PUB_TEXT_MAX];
    int rv;

    if ((rv = key_load(key, cfg->node.key, e)) != 0)
        return rv;
    if (memcmp(key->pk, own->pk, KEY_PUB_BYTES) != 0) {
        key_pub_encode(key->pk, have);
        key_pub_encode(own->pk, want);
        return im_errf(e, IM_ECONFIG,
                       "%s: key file %s holds %s, but [site %s] pins %s",
                       cfg->path, cfg->node.key, have, cfg->node.site, want);
    }
    return 0;
}

static int
run_node(struct config *cfg, int dev)
{
    struct im_err e = {0};
    struct im_key site_key;
    struct store store;
    struct committer commit;
    struct peers peers;
    struct api api;
    struct metrics metrics;
    struct http_server http = {0};
    struct notifier notifier;
    struct coordlinks coord;
    struct remote remote;
    sigset_t sigs;
    char tag[32];
    int sig = 0;

    snprintf(tag, sizeof tag, "imnode[%s]", cfg->node.site);
    log_init(tag);
    /* Signals are taken by sigwait below, never by the worker threads. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (load_site_key(cfg, &site_key, &e) != 0)
        goto fail;
    if (store_open(&store, cfg->node.data, cfg->node.site, cfg->node.map_size,
                   &e) != 0)
        goto fail;
    /* The outbox derives from every event stored, local or replicated:
     * hook it in before the first write. */
    metrics_init(&metrics);
    notify_init(&notifier, cfg, &store, &commit, &metrics);
    store.derive = notify_derive;
    store.derive_arg = &notifier;
    /* Without channels the hook only records deliveries: no rule compares
     * states. */
    store.derive_before = cfg->notify_count > 0;
    /* The owner gate (the coordinator lease) too. */
    coordlinks_init(&coord, cfg, &store, &commit, &site_key);
    peers_init(&peers);
    if (commit_start_with(&commit, &store, &site_key, peers_notify, &peers,
                          &e) != 0)
        goto fail_store;
    if (notify_start(&notifier, &e) != 0)
        goto fail_commit;
    if (peers_start(&peers, cfg, &store, &commit, &site_key, &e) != 0)
        goto fail_notify;
    if (api_start(&api, cfg, &store, &commit, &peers, &e) != 0)
        goto fail_peers;
    metrics_register(&metrics, metrics_collect_store, &store);
    metrics_register(&metrics, metrics_collect_commit, &commit);
    metrics_register(&metrics, peers_metrics, &peers);
    if (cfg->http.listen[0] != '\0' &&
        http_start(&http, cfg, &store, &commit, &metrics, &e) != 0)
        goto fail_api;
    if (coordlinks_start(&coord, &e) != 0)
        goto fail_http;
    metrics_register(&metrics, coordlinks_metrics, &coord);
    if (remote_start(&remote, cfg, &site_key, &e) != 0) {
        coordlinks_stop(&coord);
        goto fail_http;
    }
    if (dev && devmode_announce(cfg, &e) != 0) {
        remote_close(&remote);
        coordlinks_stop(&coord);
        goto fail_http;
    }
    log_info("serving site %s on %s (data %s)", cfg->node.site,
             cfg->node.listen, cfg->node.data);
    if (cfg->http.listen[0] != '\0')
        log_info("http on %s", cfg->http.listen);

    while (sigwait(&sigs, &sig) != 0)
        ;
    log_info("signal %d: stopping", sig);
    /* No new requests; finish the writes already taken (they become
     * durable even if the reply can no longer be sent); then free. */
    remote_close(&remote);
    coordlinks_stop(&coord);
    http_close(&http);
    notify_stop(&notifier);
    api_close(&api);
    peers_close(&peers);
    commit_stop(&commit);
    coordlinks_fini(&coord);
    api_free(&api);
    http_free(&http);
    peers_fini(&peers);
    metrics_fini(&metrics);
    store_close(&store);
    sodium_memzero(&site_key, sizeof site_key);
    log_info("stopped");
    return 0;

fail_http:
    http_close(&http);
fail_api:
    notify_stop(&notifier);
    api_close(&api);
    peers_close(&peers);
    commit_stop(&commit);
    api_free(&api);
    http_free(&http);
    peers_fini(&peers);
    goto fail_store;
fail_peers:
    peers_close(&peers);
fail_notify:
    notify_stop(&notifier);
fail_commit:
    commit_stop(&commit);
    peers_fini(&peers);
fail_store:
    coordlinks_fini(&coord);
    store_close(&store);
fail:
    sodium_memzero(&site_key, sizeof site_key);
    fprintf(stderr, "imnode: %s\n", im_errmsg(&e));
    return 1;
}

static const uint8_t *
check_site_key(void *arg, const char *origin)
{
    const struct config *cfg = arg;
    const struct cfg_site *s = cfg ? config_site(cfg, origin) : NULL;
    return s ? s->pk : NULL;
}

/* Every "ORIGIN SEQ INCIDENT" line of an acknowledgement log must name an
 * event that is stored, for that incident. */
static int
check_acked(struct store *s, const char *path, struct im_err *e)
{
    char line[256], origin[SITE_CODE_MAX + 2], incident[INCIDENT_ID_MAX + 2];
    unsigned long long seq, lines = 0, missing = 0;
    MDB_txn *txn;
    FILE *f = fopen(path, "re");
    int rv;

    if (f == NULL)
        return im_errf(e, IM_EINVAL, "open %s: %s", path, strerror(errno));
    if ((rv = store_read_begin(s, &txn, e)) != 0) {
        fclose(f);
        return rv;
    }
    while (fgets(line, sizeof line, f) != NULL) {
        Im__Event *ev;
        struct im_err ee = {0};
        if (sscanf(line, "%9s %llu %33s", origin, &seq, incident) != 3) {
            fprintf(stderr, "  PROBLEM: %s: malformed line %llu\n", path,
                    lines + 1);
            missing++;
            lines++;
            continue;
        }
        lines++;
        if (store_event_get(txn, s, origin, seq, &ev, &ee) != 0) {
            if (missing++ < 20)
                printf("  PROBLEM: acknowledged event %s/%llu (%s) is missing\n",
                       origin, seq, incident);
            continue;
        }
        if (strcmp(ev->incident, incident) != 0 && missing++ < 20)
            printf("  PROBLEM: event %s/%llu is for %s, acknowledged for %s\n",
                   origin, seq, ev->incident, incident);
        im__event__free_unpacked(ev, NULL);
    }
    store_read_end(txn);
    fclose(f);
    printf("acknowledged events: %llu listed, %llu missing or wrong\n", lines,
           missing);
    return missing ? im_errf(e, IM_ECORRUPT, "%llu acknowledged events missing",
                             missing)
                   : 0;
}

static int
run_check(const char *config_path, const char *data, const char *acked)
{
    struct config *cfg = NULL;
    struct im_err e = {0};
    struct store store;
    char conf[PATH_MAX_IM + 16];
    int rv, bad = 0;

    cfg = calloc(1, sizeof *cfg);
    if (cfg == NULL) {
        fprintf(stderr, "imnode: out of memory\n");
        return 1;
    }
    if (config_path == NULL && data != NULL) {
        snprintf(conf, sizeof conf, "%s/node.conf", data);
        if (access(conf, R_OK) == 0)
            config_path = conf;
    }
    if (config_path != NULL && config_load(cfg, config_path, &e) != 0) {
        fprintf(stderr, "imnode: %s\n", im_errmsg(&e));
        free(cfg);
        return 2;
    }
    if (config_path == NULL) {
        snprintf(cfg->node.data, sizeof cfg->node.data, "%s", data);
        cfg->node.map_size = MAP_SIZE_DEFAULT;
        printf("no node.conf in %s: checkpoint signatures not verified\n", data);
    } else if (data != NULL) {
        snprintf(cfg->node.data, sizeof cfg->node.data, "%s", data);
    }
    if (store_open(&store, cfg->node.data, cfg->node.site, cfg->node.map_size,
                   &e) != 0) {
        fprintf(stderr, "imnode: %s\n", im_errmsg(&e));
        free(cfg);
        return 1;
    }
    rv = store_check(&store, check_site_key, config_path ? cfg : NULL, stdout, &e);
    if (rv != 0) {
        printf("FAILED: %s\n", im_errmsg(&e));
        bad = 1;
    }
    if (acked != NULL) {
        im_errclear(&e);
        if (check_acked(&store, acked, &e) != 0) {
            printf("FAILED: %s\n", im_errmsg(&e));
            bad = 1;
        }
    }
    store_close(&store);
    free(cfg);
    if (!bad)
        printf("OK\n");
    return bad;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"dev", no_argument, NULL, 'd'},
        {"data", required_argument, NULL, 'D'},
        {"site", required_argument, NULL, 's'},
        {"listen", required_argument, NULL, 'l'},
        {"http", required_argument, NULL, 'H'},
        {"acked", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL, *data = NULL, *site = NULL,
               *listen = NULL, *acked = NULL, *http = NULL;
    int dev = 0, check = 0, c, rv;
    struct config *cfg;
    struct im_err e = {0};

    if (argc > 1 && strcmp(argv[1], "check") == 0) {
        check = 1;
        argv++;
        argc--;
    }
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config_path = optarg; break;
        case 'd': dev = 1; break;
        case 'D': data = optarg; break;
        case 's': site = optarg; break;
        case 'l': listen = optarg; break;
        case 'H': http = optarg; break;
        case 'a': acked = optarg; break;
        case 'h': fputs(usage, stdout); return 0;
        case 'V': printf("imnode %s\n", IM_VERSION); return 0;
        case '?':
        default:
            if (optopt)
                fprintf(stderr, "imnode: option -%c needs a value or is unknown\n",
                        optopt);
            else
                fprintf(stderr, "imnode: unknown option '%s'\n", argv[optind - 1]);
            fprintf(stderr, "run 'imnode --help' for usage\n");
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "imnode: unexpected argument '%s'\nrun 'imnode --help' "
                        "for usage\n", argv[optind]);
        return 2;
    }
    if (keys_init() != 0) {
        fprintf(stderr, "imnode: libsodium failed to initialise\n");
        return 1;
    }
    if (check) {
        if (config_path == NULL && data == NULL) {
            fprintf(stderr, "imnode: check needs --config FILE or --data DIR\n");
            return 2;
        }
        return run_check(config_path, data, acked);
    }
    if (dev == (config_path != NULL)) {
        fprintf(stderr, "imnode: give exactly one of --config FILE and --dev\n"
                        "run 'imnode --help' for usage\n");
        return 2;
    }
    if (!dev && (data || site)) {
        fprintf(stderr, "imnode: --data and --site go with --dev; a configured "
                        "node takes them from its config file\n");
        return 2;
    }
    if (acked != NULL) {
        fprintf(stderr, "imnode: --acked goes with check\n");
        return 2;
    }
    cfg = calloc(1, sizeof *cfg);
    if (cfg == NULL) {
        fprintf(stderr, "imnode: out of memory\n");
        return 1;
    }
    if (dev)
        rv = devmode_prepare(data ? data : DEVMODE_DIR_DEFAULT,
                             site ? site : DEVMODE_SITE_DEFAULT, listen, cfg, &e);
    else {
        rv = config_load(cfg, config_path, &e);
        if (rv == 0 && listen != NULL)
            snprintf(cfg->node.listen, sizeof cfg->node.listen, "%s", listen);
    }
    if (rv == 0 && http != NULL) {
        if (strncmp(http, "http://", 7) != 0 || strlen(http) > URL_MAX)
            rv = im_errf(&e, IM_EINVAL, "--http must be http://HOST:PORT, not "
                                        "'%.64s'", http);
        else
            snprintf(cfg->http.listen, sizeof cfg->http.listen, "%s", http);
    }
    if (rv != 0) {
        fprintf(stderr, "imnode: %s\n", im_errmsg(&e));
        free(cfg);
        return 2;
    }
    rv = run_node(cfg, dev);
    free(cfg);
    return rv;
}
