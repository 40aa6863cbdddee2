/* devmode: see devmode.h. */
#include "devmode.h"

#include <errno.h>
#include <fcntl.h>
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

int
devmode_prepare(const char *dir, const char *site, const char *listen,
                struct config *cfg, struct im_err *e)
{
    char abs[PATH_MAX], conf[PATH_MAX_IM + 16], path[PATH_MAX_IM + 16];
    char site_up[SITE_CODE_MAX + 1], site_pk[KEY_PUB_TEXT_MAX],
        admin_pk[KEY_PUB_TEXT_MAX];
    char text[4096];
    struct im_key site_key, admin_key;
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
                 "role = admin\n",
                 site_up, abs, listen ? listen : CONFIG_LISTEN_DEFAULT,
                 site_up, site_up, site_pk, admin_pk);
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

int
devmode_announce(const struct config *cfg, struct im_err *e)
{
    char env[PATH_MAX_IM * 2 + 256], path[PATH_MAX_IM + 16],
        key[PATH_MAX_IM + 16], shown[PATH_MAX_IM * 2 + 256];
    int rv;

    snprintf(key, sizeof key, "%s/admin.key", cfg->node.data);
    snprintf(env, sizeof env,
             "export IM_NODE='%s'\nexport IM_KEY='%s'\n", cfg->node.listen, key);
    snprintf(shown, sizeof shown,
             "  export IM_NODE='%s'\n  export IM_KEY='%s'\n", cfg->node.listen,
             key);
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
           "\n",
           cfg->node.site, cfg->node.data, cfg->node.listen, path, shown);
    fflush(stdout);
    return 0;
}
