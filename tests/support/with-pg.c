/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * with-pg: runs a program against a throwaway PostgreSQL cluster.
 *
 *   with-pg PROGRAM [ARG]...
 *
 * Exports the conninfo of a fresh, empty (unmigrated) database as
 * BV_TEST_DB, runs PROGRAM, stops the cluster and exits with PROGRAM's
 * status (128 + signal when it was killed).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "bvtest.h"

int
main(int argc, char **argv)
{
	char db[512];
	pid_t pid;
	int st = 0, rc;

	if (argc < 2) {
		fprintf(stderr, "usage: with-pg PROGRAM [ARG]...\n");
		return 2;
	}
	if (bvt_pg_create_db(db, sizeof(db)) < 0) {
		fprintf(stderr, "with-pg: could not start PostgreSQL\n");
		bvt_pg_destroy();
		return 1;
	}
	if (setenv("BV_TEST_DB", db, 1) < 0) {
		perror("with-pg: setenv");
		bvt_pg_destroy();
		return 1;
	}
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		perror("with-pg: fork");
		bvt_pg_destroy();
		return 1;
	}
	if (pid == 0) {
		execvp(argv[1], argv + 1);
		fprintf(stderr, "with-pg: %s: %s\n", argv[1], strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(st))
		rc = WEXITSTATUS(st);
	else if (WIFSIGNALED(st))
		rc = 128 + WTERMSIG(st);
	else
		rc = 1;
	bvt_pg_destroy();
	return rc;
}
