/* libFuzzer target: the PagerDuty Events API v2 intake path, bytes to
 * validated request (node/pagerduty.c), as POST /v2/enqueue runs it.
 * Oracles: a refusal says why (at least one error) and holds nothing; an
 * accepted request has a key, and every event it would append passes the
 * fold's own body check (intake_events_check). Sanitizers catch the rest.
 * Seeds: tests/golden/pagerduty with the routing key below. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "intake.h"
#include "pagerduty.h"

#define FUZZ_PD_KEY "fuzz-routing-key-0123456789abcdef"

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
        "[integration pd]\ntype = pagerduty\nkey = " FUZZ_PD_KEY "\n"
        "service = shop\ncategory = monitoring/alerts\n";
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

    if (pd_parse(cfg, (const char *)data, size, &req, &errs) != 0) {
        if (errs.count == 0 || req.description != NULL || req.alerts != NULL)
            abort(); /* refused without saying why, or holding memory */
        return 0;
    }
    if (intake_events_check(&req, &e) != 0) {
        fprintf(stderr, "accepted, but its event is invalid: %s\n",
                im_errmsg(&e));
        abort();
    }
    intake_req_free(&req);
    return 0;
}
