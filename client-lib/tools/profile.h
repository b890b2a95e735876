/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * profile.h: a profile directory of the command-line programs (bvchat,
 * bvchat-archiver): DIR/store.db sealed with the 32-byte key DIR/store.key,
 * and the relay they talk to.
 */
#ifndef BV_TOOLS_PROFILE_H
#define BV_TOOLS_PROFILE_H

#include <stdint.h>

#include <bvchat.h>

/*
 * Reads DIR/store.key into key; with create, makes DIR (0700) and a new
 * random key (0600) when there is none. Returns 0 or -1 after printing why
 * to stderr, prefixed with prog.
 */
int profile_key(const char *prog, const char *dir, int create,
		uint8_t key[BV_CLIENT_STORE_KEY_LEN]);

/* Splits "HOST:PORT" (port 1 … 65535) into host (cap bytes) and *port.
 * Returns 0 or -1. */
int profile_relay(const char *arg, char *host, size_t cap, int *port);

#endif /* BV_TOOLS_PROFILE_H */
