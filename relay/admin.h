/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * admin.h: `bvchat-relay admin …`, the operator's commands (blocking libpq;
 * they never run inside the relay's event loop).
 */
#ifndef BV_RELAY_ADMIN_H
#define BV_RELAY_ADMIN_H

#include "config.h"

/*
 * argv[0] is the subcommand ("tenant-create", "issue-token", …). Prints
 * results on stdout, errors on stderr. Returns a process exit status.
 */
int admin_main(const struct relay_config *c, int argc, char **argv);

#endif
