/* libFuzzer target: the Alertmanager webhook intake path, bytes to
 * validated request (node/alertmanager.c), as POST /api/v1/alertmanager
 * runs it after the bearer token chose the integration. Oracles as in
 * fuzz_pagerduty.c. Seeds: tests/golden/alertmanager. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "alertmanager.h"
#include "config.h"
#include "intake.h"

static struct config *cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char conf[] =
        "[node]\nsite = AMS\ndata = /nonexistent\n"
        "[site AMS]\npubkey = "
        "ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"
        "[operator a]\npubkey = "
        "ed25519:AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"
        "[http]\nlisten = http://127.0.0.1:1\n"
        "[integration am]\ntype = alertmanager\ntoken = fuzz-token-0123456789\n"
        "service = api\n";
    struct im_err e = {0};

    (void)argc;
    (void)argv;
    cfg = calloc(1, sizeof *cfg);
    if (cfg == NULL || config_parse(cfg, "fuzz.conf", conf, &e) != 0) {
        fprintf(stderr, "fuzz config: %s\n", im_errmsg(&e));
        abort();
    }
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct intake_req req;
    struct intake_errors errs;
    struct im_err e = {0};

    if (am_parse(&cfg->integrations[0], (const char *)data, size, &req,
                 &errs) != 0) {
        if (errs.count == 0 || req.description != NULL || req.alerts != NULL)
            abort();
        return 0;
    }
    if (req.alerts_count == 0 || intake_events_check(&req, &e) != 0) {
        fprintf(stderr, "accepted, but its events are invalid: %s\n",
                im_errmsg(&e));
        abort();
    }
    intake_req_free(&req);
    return 0;
}
