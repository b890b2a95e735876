/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * pg.c: one throwaway PostgreSQL 15 cluster per test program: initdb once,
 * a fresh database per test. Unix socket only, in a private mkdtemp
 * directory (the port just names the socket); fsync and synchronous_commit
 * on, for real durability. As root, initdb and postgres run as "postgres"
 * (setuid in the child, like runuser -u postgres without PAM). atexit stops
 * and removes the cluster; if the program dies by a signal, the watchdog
 * (util.c) sends the postmaster SIGQUIT and removes the directory.
 */
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <libpq-fe.h>

#include "bvtest.h"
#include "internal.h"

#define PG_BIN "/usr/lib/postgresql/15/bin"

static struct {
	int inited;
	int running;
	char dir[64];
	char data[128];
	char log[128];
	char user[64];
	uid_t uid;
	gid_t gid;
	int as_other; /* switch to uid/gid for pg's programs */
	int port;
	pid_t pm;
	unsigned ndb;
	char admin[256];
} pg;

static int
pg_cmd(char *const argv[], int timeout_ms)
{
	return bvt__run_as(argv, pg.uid, pg.gid, pg.as_other, timeout_ms, NULL,
			   NULL);
}

static void
pg_atexit(void)
{
	bvt_pg_destroy();
}

static int
pg_init(void)
{
	char path[256], conf[2048];
	FILE *f;
	int rc;

	snprintf(pg.dir, sizeof(pg.dir), "/tmp/bvt-pg-XXXXXX");
	if (!mkdtemp(pg.dir)) {
		perror("bvtest: mkdtemp");
		return -1;
	}
	bvt__watchdog("D %s", pg.dir);
	atexit(pg_atexit);
	if (geteuid() == 0) {
		struct passwd *pw = getpwnam("postgres");

		if (!pw) {
			fprintf(stderr, "bvtest: running as root needs a "
					"postgres user\n");
			return -1;
		}
		pg.uid = pw->pw_uid;
		pg.gid = pw->pw_gid;
		pg.as_other = 1;
		snprintf(pg.user, sizeof(pg.user), "postgres");
		if (chown(pg.dir, pg.uid, pg.gid) < 0) {
			perror("bvtest: chown");
			return -1;
		}
	} else {
		struct passwd *pw = getpwuid(geteuid());

		snprintf(pg.user, sizeof(pg.user), "%s",
			 pw ? pw->pw_name : "postgres");
	}
	snprintf(pg.data, sizeof(pg.data), "%s/data", pg.dir);
	snprintf(pg.log, sizeof(pg.log), "%s/postgres.log", pg.dir);
	pg.port = bvt_free_port();
	if (pg.port <= 0)
		pg.port = 5432;
	{
		char *argv[] = {PG_BIN "/initdb",
				"-D",
				pg.data,
				"-A",
				"trust",
				"-U",
				pg.user,
				"-E",
				"UTF8",
				"--locale=C",
				"-N",
				"--no-instructions",
				NULL};

		/* -N skips initdb's own fsyncs only; the running cluster
		 * has fsync on. initdb prints progress: keep it quiet. */
		char *out = NULL;

		rc = bvt__run_as(argv, pg.uid, pg.gid, pg.as_other,
				 bvt_ms(120000), &out, NULL);
		if (rc != 0) {
			fprintf(stderr, "bvtest: initdb failed (%d):\n%s\n", rc,
				out ? out : "");
			free(out);
			return -1;
		}
		free(out);
	}
	snprintf(path, sizeof(path), "%s/postgresql.conf", pg.data);
	snprintf(conf, sizeof(conf),
		 "\n# bvtest\n"
		 "listen_addresses = ''\n"
		 "port = %d\n"
		 "unix_socket_directories = '%s'\n"
		 "fsync = on\n"
		 "synchronous_commit = on\n"
		 "full_page_writes = on\n"
		 "max_connections = 100\n"
		 "shared_buffers = 32MB\n"
		 "log_min_messages = warning\n"
		 "log_min_error_statement = panic\n"
		 "log_connections = off\n",
		 pg.port, pg.dir);
	f = fopen(path, "a");
	if (!f || fputs(conf, f) < 0) {
		perror("bvtest: postgresql.conf");
		if (f)
			fclose(f);
		return -1;
	}
	fclose(f);
	snprintf(pg.admin, sizeof(pg.admin),
		 "host=%s port=%d user=%s dbname=postgres", pg.dir, pg.port,
		 pg.user);
	pg.inited = 1;
	return 0;
}

static pid_t
read_pm_pid(void)
{
	char path[256], line[32] = "";
	FILE *f;

	snprintf(path, sizeof(path), "%s/postmaster.pid", pg.data);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(line, sizeof(line), f))
		line[0] = '\0';
	fclose(f);
	return (pid_t)atoi(line);
}

int
bvt_pg_start(void)
{
	if (pg.running)
		return 0;
	if (!pg.inited && pg_init() < 0)
		return -1;
	{
		char *argv[] = {PG_BIN "/pg_ctl",
				"-D",
				pg.data,
				"-l",
				pg.log,
				"-w",
				"-t",
				"120",
				"-s",
				"start",
				NULL};

		if (pg_cmd(argv, bvt_ms(150000)) != 0) {
			fprintf(stderr, "bvtest: pg_ctl start failed\n");
			bvt__pg_print_log();
			return -1;
		}
	}
	pg.pm = read_pm_pid();
	bvt__watchdog("P %d", (int)pg.pm);
	pg.running = 1;
	return 0;
}

int
bvt_pg_stop(const char *mode)
{
	char m[16];

	if (!pg.running)
		return 0;
	snprintf(m, sizeof(m), "%s", mode);
	{
		char *argv[] = {PG_BIN "/pg_ctl",
				"-D",
				pg.data,
				"-m",
				m,
				"-w",
				"-t",
				"120",
				"-s",
				"stop",
				NULL};

		if (pg_cmd(argv, bvt_ms(150000)) != 0) {
			fprintf(stderr, "bvtest: pg_ctl stop -m %s failed\n",
				mode);
			return -1;
		}
	}
	pg.running = 0;
	pg.pm = 0;
	bvt__watchdog("P 0");
	return 0;
}

int
bvt_pg_restart(const char *mode)
{
	if (bvt_pg_stop(mode) < 0)
		return -1;
	return bvt_pg_start();
}

void
bvt_pg_destroy(void)
{
	if (!pg.inited)
		return;
	if (pg.running && bvt_pg_stop("fast") < 0 &&
	    bvt_pg_stop("immediate") < 0 && pg.pm > 0) {
		kill(pg.pm, SIGQUIT);
		bvt_sleep_ms(1000);
	}
	pg.running = 0;
	if (!getenv("BVT_KEEP")) {
		char *argv[] = {"/bin/rm", "-rf", "--", pg.dir, NULL};

		bvt__run_as(argv, 0, 0, 0, 60000, NULL, NULL);
		bvt__watchdog("d %s", pg.dir);
	} else {
		fprintf(stderr, "bvtest: kept %s\n", pg.dir);
		bvt__watchdog("d %s", pg.dir);
	}
	pg.inited = 0;
}

void
bvt__pg_print_log(void)
{
	size_t len, i;
	char *s;
	int n = 0;

	if (!pg.inited)
		return;
	s = bvt_file_read(pg.log, &len);
	if (!s)
		return;
	for (i = len; i > 0; i--)
		if (s[i - 1] == '\n' && ++n > 30)
			break;
	fprintf(stderr, "----- last lines of %s -----\n%s\n", pg.log, s + i);
	free(s);
}

const char *
bvt_pg_admin_conninfo(void)
{
	return pg.admin;
}

int
bvt_pg_create_db(char *buf, size_t cap)
{
	char sql[128], name[64];

	if (bvt_pg_start() < 0)
		return -1;
	snprintf(name, sizeof(name), "bvt_%u", ++pg.ndb);
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
	if (bvt_sql_exec(pg.admin, sql) < 0)
		return -1;
	snprintf(buf, cap, "host=%s port=%d user=%s dbname=%s", pg.dir, pg.port,
		 pg.user, name);
	return 0;
}

char *
bvt_pg_dump(const char *conninfo, size_t *len)
{
	char ci[512], *out = NULL;
	char *argv[] = {PG_BIN "/pg_dump", "--no-owner", "-d", ci, NULL};
	int rc;

	snprintf(ci, sizeof(ci), "%s", conninfo);
	rc = bvt__run_as(argv, pg.uid, pg.gid, pg.as_other, bvt_ms(60000), &out,
			 len);
	if (rc != 0) {
		fprintf(stderr, "bvtest: pg_dump failed (%d)\n", rc);
		free(out);
		return NULL;
	}
	return out;
}

static PGconn *
connect_db(const char *conninfo)
{
	PGconn *c = PQconnectdb(conninfo);

	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "bvtest: connecting to %s: %s", conninfo,
			PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	return c;
}

int
bvt_sql_exec(const char *conninfo, const char *sql)
{
	PGconn *c = connect_db(conninfo);
	PGresult *r;
	int rc = -1;

	if (!c)
		return -1;
	r = PQexec(c, sql);
	if (PQresultStatus(r) == PGRES_COMMAND_OK ||
	    PQresultStatus(r) == PGRES_TUPLES_OK)
		rc = 0;
	else
		fprintf(stderr, "bvtest: %s: %s", sql, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
	return rc;
}

long long
bvt_sql_int(const char *conninfo, const char *sql, int nparams,
	    const char *const *params)
{
	PGconn *c = connect_db(conninfo);
	PGresult *r;
	long long v = -1;

	if (!c)
		return -1;
	r = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) >= 1 &&
	    !PQgetisnull(r, 0, 0))
		v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	else if (PQresultStatus(r) != PGRES_TUPLES_OK)
		fprintf(stderr, "bvtest: %s: %s", sql, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
	return v;
}
