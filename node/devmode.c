/* devmode: see devmode.h. */
#include "devmode.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sodium.h>
#include <sys/socket.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keys.h"

static int
ensure_key(const char *path, struct im_key *k, struct im_err *e)
{
    if (access(path, F_OK) == 0)
        return key_load(k, path, e);
    key_generate(k);
    return key_save(k, path, e);
}

static int
write_file(const char *path, const char *text, mode_t mode, struct im_err *e)
{
    char tmp[PATH_MAX_IM + 8];
    size_t n = strlen(text);
    int fd;

    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return im_errf(e, im_from_errno(errno), "create %s: %s", tmp,
                       strerror(errno));
    if (write(fd, text, n) != (ssize_t)n || fsync(fd) != 0) {
        int saved = errno;
        close(fd);
        unlink(tmp);
        return im_errf(e, im_from_errno(saved), "write %s: %s", tmp,
                       strerror(saved));
    }
    close(fd);
    if (rename(tmp, path) != 0)
        return im_errf(e, im_from_errno(errno), "rename %s: %s", tmp,
                       strerror(errno));
    return 0;
}

/* A loopback port nothing listens on now (the kernel's choice). */
static int
free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t n = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

    if (fd < 0)
        return -1;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &n) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* 32 hex digits of randomness: an integration key or token. */
static void
token(char out[33])
{
    uint8_t rnd[16];
    randombytes_buf(rnd, sizeof rnd);
    sodium_bin2hex(out, 33, rnd, sizeof rnd);
}

int
devmode_prepare(const char *dir, const char *site, const char *listen,
                struct config *cfg, struct im_err *e)
{
    char abs[PATH_MAX], conf[PATH_MAX_IM + 16], path[PATH_MAX_IM + 16];
    char site_up[SITE_CODE_MAX + 1], site_pk[KEY_PUB_TEXT_MAX],
        admin_pk[KEY_PUB_TEXT_MAX];
    char text[8192], pd_key[33], am_token[33], api_token[33];
    struct im_key site_key, admin_key;
    int http_port;
    size_t n = strlen(site);
    int rv;

    if (n > SITE_CODE_MAX)
        return im_errf(e, IM_EINVAL, "site code '%s' is longer than %d", site,
                       SITE_CODE_MAX);
    for (size_t i = 0; i <= n; i++)
        site_up[i] = (char)(site[i] >= 'a' && site[i] <= 'z' ? site[i] - 32
                                                             : site[i]);
    if (config_check_site_code(site_up) != 0)
        return im_errf(e, IM_EINVAL,
                       "invalid site code '%s': use %d to %d letters or "
                       "digits, starting with a letter",
                       site, SITE_CODE_MIN, SITE_CODE_MAX);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return im_errf(e, im_from_errno(errno), "create %s: %s", dir,
                       strerror(errno));
    if (realpath(dir, abs) == NULL)
        return im_errf(e, im_from_errno(errno), "resolve %s: %s", dir,
                       strerror(errno));
    if (strlen(abs) > PATH_MAX_IM - 32)
        return im_errf(e, IM_ETOOBIG, "data directory path is too long");
    snprintf(conf, sizeof conf, "%s/node.conf", abs);

    if (access(conf, F_OK) != 0) {
        snprintf(path, sizeof path, "%s/site.key", abs);
        if ((rv = ensure_key(path, &site_key, e)) != 0)
            return rv;
        snprintf(path, sizeof path, "%s/admin.key", abs);
        if ((rv = ensure_key(path, &admin_key, e)) != 0)
            return rv;
        key_pub_encode(site_key.pk, site_pk);
        key_pub_encode(admin_key.pk, admin_pk);
        if ((http_port = free_port()) < 0)
            return im_errf(e, IM_EIO, "no free loopback port for HTTP: %s",
                           strerror(errno));
        token(pd_key);
        token(am_token);
        token(api_token);
        snprintf(text, sizeof text,
                 "# Incident Mesh node, written by 'imnode --dev'.\n"
                 "# Edit freely: it is read at every start.\n"
                 "[node]\n"
                 "site = %s\n"
                 "data = %s\n"
                 "listen = %s\n"
                 "key = site.key\n"
                 "\n"
                 "[site %s]\n"
                 "name = %s (dev)\n"
                 "pubkey = %s\n"
                 "\n"
                 "[operator admin]\n"
                 "pubkey = %s\n"
                 "role = admin\n"
                 "\n"
                 "# HTTP: alert intake, JSON API, /metrics, /status\n"
                 "# (docs/http-api.md).\n"
                 "[http]\n"
                 "listen = http://127.0.0.1:%d\n"
                 "\n"
                 "# POST /v2/enqueue with this routing_key.\n"
                 "[integration pagerduty]\n"
                 "type = pagerduty\n"
                 "key = %s\n"
                 "service = dev\n"
                 "\n"
                 "# POST /api/v1/alertmanager with Authorization: Bearer TOKEN.\n"
                 "[integration alertmanager]\n"
                 "type = alertmanager\n"
                 "token = %s\n"
                 "service = dev\n"
                 "\n"
                 "# /api/v1/incidents with Authorization: Bearer TOKEN.\n"
                 "[integration api]\n"
                 "type = api\n"
                 "token = %s\n"
                 "role = responder\n",
                 site_up, abs, listen ? listen : CONFIG_LISTEN_DEFAULT,
                 site_up, site_up, site_pk, admin_pk, http_port, pd_key,
                 am_token, api_token);
        if ((rv = write_file(conf, text, 0600, e)) != 0)
            return rv;
    }
    if ((rv = config_load(cfg, conf, e)) != 0)
        return rv;
    if (strcmp(cfg->node.site, site_up) != 0)
        return im_errf(e, IM_EINVAL,
                       "%s holds site %s, not %s: use another --data "
                       "directory for %s",
                       abs, cfg->node.site, site_up, site_up);
    if (listen != NULL) {
        if (strlen(listen) > URL_MAX)
            return im_errf(e, IM_ETOOBIG, "--listen address is too long");
        snprintf(cfg->node.listen, sizeof cfg->node.listen, "%s", listen);
    }
    return 0;
}

/* The key of the first integration of a type ("" if none). */
static const char *
integ_key(const struct config *cfg, enum integ_type t)
{
    for (size_t i = 0; i < cfg->integrations_count; i++)
        if (cfg->integrations[i].type == t)
            return cfg->integrations[i].key;
    return "";
}

int
devmode_announce(const struct config *cfg, struct im_err *e)
{
    char env[PATH_MAX_IM * 2 + 1024], path[PATH_MAX_IM + 16],
        key[PATH_MAX_IM + 16], shown[PATH_MAX_IM * 2 + 1024];
    int rv;

    snprintf(key, sizeof key, "%s/admin.key", cfg->node.data);
    snprintf(env, sizeof env,
             "export IM_NODE='%s'\nexport IM_KEY='%s'\n", cfg->node.listen, key);
    snprintf(shown, sizeof shown,
             "  export IM_NODE='%s'\n  export IM_KEY='%s'\n", cfg->node.listen,
             key);
    if (cfg->http.listen[0] != '\0') {
        /* Tokens are secrets, but this is a dev node on loopback whose
         * config (mode 0600) holds them anyway. */
        const char *vars[4][2] = {
            {"IM_HTTP", cfg->http.listen},
            {"IM_PD_KEY", integ_key(cfg, INTEG_PAGERDUTY)},
            {"IM_AM_TOKEN", integ_key(cfg, INTEG_ALERTMANAGER)},
            {"IM_API_TOKEN", integ_key(cfg, INTEG_API)},
        };
        for (int i = 0; i < 4; i++) {
            size_t n = strlen(env), m = strlen(shown);
            if (vars[i][1][0] == '\0')
                continue;
            snprintf(env + n, sizeof env - n, "export %s='%s'\n", vars[i][0],
                     vars[i][1]);
            snprintf(shown + m, sizeof shown - m, "  export %s='%s'\n",
                     vars[i][0], vars[i][1]);
        }
    }
    snprintf(path, sizeof path, "%s/env", cfg->node.data);
    if ((rv = write_file(path, env, 0644, e)) != 0)
        return rv;
    printf("Incident Mesh dev node for site %s\n"
           "  data: %s\n"
           "  api:  %s\n"
           "\n"
           "In another shell, point imctl at it:\n"
           "  source %s\n"
           "or\n"
           "%s"
           "\n"
           "Then try:\n"
           "  bin/imctl open --title \"Checkout errors\" --service shop "
           "--impact high --urgency medium\n"
           "  bin/imctl list\n"
           "  bin/imctl --help\n"
           "%s"
           "\n",
           cfg->node.site, cfg->node.data, cfg->node.listen, path, shown,
           cfg->http.listen[0] != '\0'
               ? "\nAlerts (see README: Alert intake):\n"
                 "  curl -s -H 'Content-Type: application/json' "
                 "\"$IM_HTTP/v2/enqueue\" -d \"{\\\"routing_key\\\": "
                 "\\\"$IM_PD_KEY\\\", \\\"event_action\\\": \\\"trigger\\\", "
                 "\\\"payload\\\": {\\\"summary\\\": \\\"disk full\\\", "
                 "\\\"source\\\": \\\"db1\\\", \\\"severity\\\": "
                 "\\\"critical\\\"}}\"\n"
                 "  status page: $IM_HTTP/status\n"
               : "");
    fflush(stdout);
    return 0;
}
