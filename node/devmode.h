/* devmode: `imnode --dev`, a ready single-site node for trying things out.
 *
 * On first run in DIR it creates the site identity (site.key), an admin
 * operator key (admin.key) and a config (node.conf) naming both; later runs
 * reuse them. It writes DIR/env with the exports that point imctl at the
 * node (IM_NODE, IM_KEY) and prints them. */
#ifndef IM_DEVMODE_H
#define IM_DEVMODE_H

#include "config.h"
#include "err.h"

#define DEVMODE_DIR_DEFAULT "im-dev"
#define DEVMODE_SITE_DEFAULT "DEV"

/* Prepares dir for site and loads its config into *cfg. listen, if not
 * NULL, overrides the configured address. */
int devmode_prepare(const char *dir, const char *site, const char *listen,
                    struct config *cfg, struct im_err *e);

/* Writes DIR/env and prints the exports and next steps to stdout. */
int devmode_announce(const struct config *cfg, struct im_err *e);

#endif
