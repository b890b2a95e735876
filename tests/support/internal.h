/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * internal.h: what libbvtest's files share with each other and nobody else.
 */
#ifndef BVTEST_INTERNAL_H
#define BVTEST_INTERNAL_H

#include <stddef.h>
#include <sys/types.h>

/* A line to the watchdog: "P <pid>" (postmaster), "D <dir>" (remove at
 * death), "d <dir>" (forget). */
void bvt__watchdog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Runs argv, optionally as uid/gid; see bvt_run(). */
int bvt__run_as(char *const argv[], uid_t uid, gid_t gid, int switch_user,
		int timeout_ms, char **out, size_t *outlen);

/* waitpid() with a deadline: 0 reaped, -2 timeout, -1 error. */
int bvt__reap(pid_t pid, int timeout_ms, int *status);

/* Prints the tail of the cluster's log (bvt_done()). */
void bvt__pg_print_log(void);

/* A blocking TCP connection to 127.0.0.1:port, or -1. */
int bvt__tcp_connect(int port, int timeout_ms);

/* Writes all of buf within timeout_ms; 0 or -1. */
int bvt__write_all(int fd, const void *buf, size_t len, int timeout_ms);

#endif
