/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * tap.h: the checks of the web build's node tests (test_uv_web.c,
 * test_conn_web.c), printed as TAP. Their main work happens on node's event
 * loop, after main() returns, so cmocka's runner does not fit: CHECK()
 * records and prints, TAP_DONE() prints the plan and exits 0 only when
 * every check held. One translation unit each.
 */
#ifndef BV_TESTS_WEB_TAP_H
#define BV_TESTS_WEB_TAP_H

#include <stdio.h>
#include <stdlib.h>

static int failures, checks;

#define CHECK(cond)                                                            \
	do {                                                                   \
		checks++;                                                      \
		if (!(cond)) {                                                 \
			failures++;                                            \
			printf("not ok %d - %s (line %d)\n", checks, #cond,    \
			       __LINE__);                                      \
		} else {                                                       \
			printf("ok %d - %s\n", checks, #cond);                 \
		}                                                              \
	} while (0)

#define TAP_DONE()                                                             \
	do {                                                                   \
		printf("1..%d\n", checks);                                     \
		exit(failures ? 1 : 0);                                        \
	} while (0)

#endif
