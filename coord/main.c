/* imcoord: a coordinator replica (DESIGN.md §5, docs/coordinator.md).
 * Loads the config, starts the replica (its etcd lease, election and
 * liveness threads) and the server on its api address, then waits for
 * SIGINT/SIGTERM; a stopping leader revokes its lease so a standby takes
 * over at once. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "keys.h"
#include "log.h"
#include "majors.h"
#include "replica.h"
#include "server.h"

static const char usage[] =
    "usage: imcoord --config FILE\n"
    "       imcoord --help\n"
    "\n"
    "Runs one Incident Mesh coordinator replica: it campaigns for leadership\n"
    "in etcd, takes heartbeats from the site nodes, declares silent sites\n"
    "down, records owners, registers major incidents and runs their\n"
    "escalation, and answers imctl's coordinator commands.\n"
    "\n"
    "  --config FILE   the replica's configuration: [coord], every\n"
    "                  [coordinator ID], [etcd], [site CODE], [operator NAME]\n"
    "                  (see docs/coordinator.md)\n"
    "\n"
    "Environment: IM_LOG=debug|info|warn|error\n";

static int
run(const struct config *cfg)
{
    struct replica *r;
    struct majors *majors;
    struct server srv;
    struct im_err e = {0};
    sigset_t sigs;
    char tag[64];
    int sig = 0;

    snprintf(tag, sizeof tag, "imcoord[%s]", cfg->coord.id);
    log_init(tag);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    r = malloc(sizeof *r);
    majors = malloc(sizeof *majors);
    if (r == NULL || majors == NULL) {
        free(r);
        free(majors);
        fprintf(stderr, "imcoord: out of memory\n");
        return 1;
    }
    if (replica_start(r, cfg, &e) != 0)
        goto fail;
    if (majors_start_daemon(majors, r, cfg, &e) != 0) {
        replica_stop(r);
        goto fail;
    }
    if (server_start(&srv, r, majors, cfg, &e) != 0) {
        majors_stop(majors);
        replica_stop(r);
        goto fail;
    }
    log_info(
        "coordinator %s serving on %s (etcd %s, prefix %s, site lease %llu "
        "ms)",
        cfg->coord.id, cfg->coord.listen, cfg->etcd.endpoints, cfg->etcd.prefix,
        (unsigned long long)cfg->coord.lease_ms);
    while (sigwait(&sigs, &sig) != 0)
        ;
    log_info("signal %d: stopping", sig);
    server_close(&srv);
    majors_stop(majors);
    replica_stop(r);
    free(majors);
    free(r);
    log_info("stopped");
    return 0;
fail:
    free(majors);
    free(r);
    fprintf(stderr, "imcoord: %s\n", im_errmsg(&e));
    return 1;
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    struct config *cfg;
    struct im_err e = {0};
    int c, rv;

    while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': path = optarg; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "imcoord: unexpected argument '%s'\n%s", argv[optind],
                usage);
        return 2;
    }
    if (path == NULL) {
        fprintf(stderr, "imcoord: --config FILE is required\n%s", usage);
        return 2;
    }
    if (keys_init() != 0) {
        fprintf(stderr, "imcoord: libsodium failed to initialise\n");
        return 1;
    }
    if ((cfg = malloc(sizeof *cfg)) == NULL) {
        fprintf(stderr, "imcoord: out of memory\n");
        return 1;
    }
    if (config_load(cfg, path, &e) != 0) {
        fprintf(stderr, "imcoord: %s\n", im_errmsg(&e));
        free(cfg);
        return 2;
    }
    if (cfg->coord.line == 0) {
        fprintf(stderr,
                "imcoord: %s: no [coord] section: this file configures "
                "a node (imnode), not a coordinator replica\n",
                path);
        free(cfg);
        return 2;
    }
    rv = run(cfg);
    free(cfg);
    return rv;
}
