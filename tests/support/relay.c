/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * relay.c: starting, watching and stopping bvchat-relay processes.
 *
 * Each relay is our child with PR_SET_PDEATHSIG = SIGKILL, so a test program
 * that dies takes its relays with it. Its stdout and stderr go to a log file
 * in the scratch directory that tests grep and bvt_done() prints.
 */
#define _GNU_SOURCE /* prctl() */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "bvtest.h"
#include "internal.h"

#ifndef BV_RELAY_BIN
#define BV_RELAY_BIN "bvchat-relay"
#endif

static unsigned nlogs;

const char *
bvt_relay_bin(void)
{
	const char *e = getenv("BV_RELAY_BIN");

	return e && *e ? e : BV_RELAY_BIN;
}

int
bvt_relay_spawn(struct bvt_relay *r, const char *conninfo,
		const char *const *args)
{
	char port[16], *argv[64];
	int n = 0, fd, i;
	pid_t parent = getpid();

	memset(r, 0, sizeof(*r));
	r->port = bvt_free_port();
	if (r->port <= 0)
		return -1;
	snprintf(port, sizeof(port), "%d", r->port);
	snprintf(r->log, sizeof(r->log), "%s/relay-%02u-port%d.log",
		 bvt_tmpdir(), ++nlogs, r->port);
	argv[n++] = (char *)bvt_relay_bin();
	argv[n++] = "--database";
	argv[n++] = (char *)conninfo;
	argv[n++] = "--listen";
	argv[n++] = "127.0.0.1";
	argv[n++] = "--port";
	argv[n++] = port;
	for (i = 0; args && args[i] && n < 63; i++)
		argv[n++] = (char *)args[i];
	argv[n] = NULL;
	fd = open(r->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0) {
		perror(r->log);
		return -1;
	}
	fflush(stdout);
	fflush(stderr);
	r->pid = fork();
	if (r->pid < 0) {
		close(fd);
		r->pid = 0;
		return -1;
	}
	if (r->pid == 0) {
		int nul = open("/dev/null", O_RDONLY);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(126);
		if (nul >= 0)
			dup2(nul, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		signal(SIGPIPE, SIG_DFL);
		execv(argv[0], argv);
		fprintf(stderr, "bvtest: exec %s: %s\n", argv[0],
			strerror(errno));
		_exit(127);
	}
	close(fd);
	r->status = 0;
	return 0;
}

/* Reaps r if it has exited: 1 exited (status recorded), 0 running. */
static int
poll_exit(struct bvt_relay *r)
{
	int st;
	pid_t p;

	if (r->pid <= 0)
		return 1;
	p = waitpid(r->pid, &st, WNOHANG);
	if (p != r->pid)
		return 0;
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	r->pid = 0;
	return 1;
}

int
bvt_relay_wait_healthy(struct bvt_relay *r, int timeout_ms)
{
	int64_t deadline = bvt_now_ms() + timeout_ms;

	while (bvt_now_ms() < deadline) {
		if (poll_exit(r))
			return -1;
		if (bvt_http_get(r->port, "/healthz", 2000, NULL) == 200)
			return 0;
		bvt_sleep_ms(50);
	}
	fprintf(stderr, "bvtest: relay on port %d not healthy after %d ms\n",
		r->port, timeout_ms);
	return -1;
}

int
bvt_relay_start(struct bvt_relay *r, const char *conninfo,
		const char *const *args)
{
	int attempt;

	/* A free port may be taken between bvt_free_port() and the relay's
	 * bind: a relay that exits at once is tried again on another. */
	for (attempt = 0; attempt < 3; attempt++) {
		if (bvt_relay_spawn(r, conninfo, args) < 0)
			return -1;
		if (bvt_relay_wait_healthy(r, bvt_ms(30000)) == 0)
			return 0;
		if (r->pid > 0) {
			bvt_relay_kill(r);
			break;
		}
		fprintf(stderr, "bvtest: relay exited with %d at start (%s)\n",
			r->status, r->log);
	}
	return -1;
}

int
bvt_relay_wait_exit(struct bvt_relay *r, int timeout_ms)
{
	int64_t deadline = bvt_now_ms() + timeout_ms;

	for (;;) {
		if (poll_exit(r))
			return r->status;
		if (bvt_now_ms() >= deadline)
			return -2;
		bvt_sleep_ms(10);
	}
}

void
bvt_relay_kill(struct bvt_relay *r)
{
	int st;

	if (r->pid <= 0)
		return;
	kill(r->pid, SIGKILL);
	if (bvt__reap(r->pid, 30000, &st) == 0)
		r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	r->pid = 0;
}

int
bvt_relay_term(struct bvt_relay *r, int timeout_ms)
{
	int rc;

	if (r->pid <= 0)
		return r->status;
	kill(r->pid, SIGTERM);
	rc = bvt_relay_wait_exit(r, timeout_ms);
	if (rc == -2) {
		fprintf(stderr,
			"bvtest: relay %d ignored SIGTERM for %d ms; killed\n",
			(int)r->pid, timeout_ms);
		bvt_relay_kill(r);
	}
	return rc;
}

int
bvt_relay_log_contains(const struct bvt_relay *r, const void *needle,
		       size_t len)
{
	size_t n;
	char *s = bvt_file_read(r->log, &n);
	int found;

	if (!s)
		return 0;
	found = bvt_mem_contains(s, n, needle, len);
	free(s);
	return found;
}

int
bvt_relay_cmd(char **out, const char *const *args)
{
	char *argv[32];
	int n = 0, i;

	argv[n++] = (char *)bvt_relay_bin();
	for (i = 0; args[i] && n < 31; i++)
		argv[n++] = (char *)args[i];
	argv[n] = NULL;
	return bvt_run(argv, 0, bvt_ms(60000), out, NULL);
}

int
bvt_migrate(const char *conninfo)
{
	const char *args[] = {"--migrate", "--database", conninfo, NULL};

	return bvt_relay_cmd(NULL, args);
}

int
bvt_admin(const char *db, char *out, size_t cap, const char *const *args)
{
	const char *argv[24] = {"--database", db, "admin"};
	char *o = NULL;
	int n = 3, rc, i;

	for (i = 0; args[i] && n < 23; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	rc = bvt_relay_cmd(&o, argv);
	if (out) {
		snprintf(out, cap, "%s", o ? o : "");
		out[strcspn(out, "\n")] = '\0';
	}
	free(o);
	return rc;
}
