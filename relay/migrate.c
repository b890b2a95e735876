/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * migrate.c: applies and checks the compiled-in migrations with blocking
 * libpq, before the event loop starts. One transaction per migration,
 * together with its schema_migrations row; a session advisory lock keeps
 * two migrating relays apart. It never rewrites or reverts a migration:
 * migrations are forward-only, and a database newer than this relay is
 * refused, never "fixed".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libpq-fe.h>

#include "bv_error.h"
#include "bv_util.h"
#include "migrate.h"

/* pg_advisory_lock key: "bvchatmg" as a big-endian 64-bit number. */
#define MIGRATE_LOCK_KEY "7094967562931563879"

struct applied {
	int version;
	char *name;
};

static void
notice_cb(void *arg, const char *msg)
{
	size_t n = strlen(msg);

	(void)arg;
	/* libpq's notices end in a newline; bv_log adds its own. */
	if (n > 0 && msg[n - 1] == '\n')
		n--;
	bv_log(BV_LOG_DEBUG, "migrate: postgres: %.*s", (int)n, msg);
}

/* libpq's last error on one line, without its trailing newline. */
static const char *
pg_msg(PGconn *conn, char *buf, size_t cap)
{
	size_t n;
	char *p;

	snprintf(buf, cap, "%s", PQerrorMessage(conn));
	for (p = buf; *p != '\0'; p++)
		if (*p == '\n' || *p == '\t')
			*p = ' ';
	n = strlen(buf);
	while (n > 0 && buf[n - 1] == ' ')
		buf[--n] = '\0';
	return buf;
}

/*
 * Connects with a bounded connect timeout that conninfo may override.
 * Returns 0 and the connection in *out, or BV_EUNAVAILABLE (logged).
 */
static int
db_connect(const char *conninfo, PGconn **out)
{
	/* Array entries before dbname may be overridden by conninfo's. */
	const char *const keys[] = {"connect_timeout", "dbname",
				    "fallback_application_name", NULL};
	const char *const vals[] = {"10", conninfo ? conninfo : "",
				    "bvchat-relay", NULL};
	char msg[512];
	PGconn *conn;

	conn = PQconnectdbParams(keys, vals, 1);
	if (conn == NULL) {
		bv_log(BV_LOG_ERR, "migrate: cannot connect: out of memory");
		return BV_EUNAVAILABLE;
	}
	if (PQstatus(conn) != CONNECTION_OK) {
		bv_log(BV_LOG_ERR,
		       "migrate: cannot connect to the database: %s",
		       pg_msg(conn, msg, sizeof(msg)));
		PQfinish(conn);
		return BV_EUNAVAILABLE;
	}
	PQsetNoticeProcessor(conn, notice_cb, NULL);
	*out = conn;
	return 0;
}

/*
 * Runs one parameterless command. Returns 0, or BV_EUNAVAILABLE when the
 * connection broke, or BV_EINTERNAL when the statement failed (logged with
 * what, the SQLSTATE and the server's message).
 */
static int
exec_cmd(PGconn *conn, const char *what, const char *sql)
{
	char msg[512];
	PGresult *res;
	int rc = 0;

	res = PQexec(conn, sql);
	if (res == NULL || (PQresultStatus(res) != PGRES_COMMAND_OK &&
			    PQresultStatus(res) != PGRES_TUPLES_OK)) {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		bv_log(BV_LOG_ERR, "migrate: %s failed: %s%s%s", what,
		       state ? state : "", state ? " " : "",
		       pg_msg(conn, msg, sizeof(msg)));
		rc = PQstatus(conn) == CONNECTION_OK ? BV_EINTERNAL
						     : BV_EUNAVAILABLE;
	}
	PQclear(res);
	return rc;
}

static int
newest_compiled(void)
{
	int v = 0;
	size_t i;

	for (i = 0; i < bv_migrations_count; i++)
		if (bv_migrations[i].version > v)
			v = bv_migrations[i].version;
	return v;
}

static const struct migration *
find_compiled(int version)
{
	size_t i;

	for (i = 0; i < bv_migrations_count; i++)
		if (bv_migrations[i].version == version)
			return &bv_migrations[i];
	return NULL;
}

static void
applied_free(struct applied *a, size_t n)
{
	size_t i;

	if (a == NULL)
		return;
	for (i = 0; i < n; i++)
		bv_free(a[i].name);
	bv_free(a);
}

/*
 * Reads schema_migrations ordered by version. Returns 0 with *out (NULL
 * when empty) and *n, BV_ENOMEM, BV_EINTERNAL or BV_EUNAVAILABLE.
 */
static int
read_applied(PGconn *conn, struct applied **out, size_t *n)
{
	char msg[512];
	struct applied *a = NULL;
	PGresult *res;
	size_t i, rows = 0;
	int rc = 0;

	res = PQexec(conn, "SELECT version, name FROM schema_migrations "
			   "ORDER BY version");
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
		bv_log(BV_LOG_ERR, "migrate: cannot read schema_migrations: %s",
		       pg_msg(conn, msg, sizeof(msg)));
		rc = PQstatus(conn) == CONNECTION_OK ? BV_EINTERNAL
						     : BV_EUNAVAILABLE;
		goto out;
	}
	rows = (size_t)PQntuples(res);
	if (rows > 0) {
		a = bv_calloc(rows, sizeof(*a));
		if (a == NULL) {
			rc = BV_ENOMEM;
			goto out;
		}
	}
	for (i = 0; i < rows; i++) {
		a[i].version = atoi(PQgetvalue(res, (int)i, 0));
		a[i].name = bv_strdup(PQgetvalue(res, (int)i, 1));
		if (a[i].name == NULL) {
			rc = BV_ENOMEM;
			goto out;
		}
	}
	*out = a;
	*n = rows;
	a = NULL;
out:
	applied_free(a, rows);
	PQclear(res);
	return rc;
}

/*
 * Compares what the database recorded with what is compiled in. Returns 0
 * when every recorded migration is one of ours under the same name (the
 * database may still lack newer ones), BV_ECONFIG (logged) otherwise.
 */
static int
check_known(const struct applied *a, size_t n)
{
	int newest = newest_compiled();
	size_t i;

	for (i = 0; i < n; i++) {
		const struct migration *m = find_compiled(a[i].version);

		if (a[i].version > newest) {
			bv_log(BV_LOG_ERR,
			       "migrate: the database has schema version %d "
			       "(%s), newer than this relay knows (%d): "
			       "upgrade bvchat-relay; migrations are never "
			       "reverted",
			       a[i].version, a[i].name, newest);
			return BV_ECONFIG;
		}
		if (m == NULL || strcmp(m->name, a[i].name) != 0) {
			bv_log(BV_LOG_ERR,
			       "migrate: the database recorded migration %d as "
			       "%s, which this relay does not have (it has "
			       "%s): "
			       "the database was migrated by a different build",
			       a[i].version, a[i].name,
			       m ? m->name : "no such version");
			return BV_ECONFIG;
		}
	}
	return 0;
}

static int
is_applied(const struct applied *a, size_t n, int version)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (a[i].version == version)
			return 1;
	return 0;
}

/* The 1-based line of sql holding character pos (1-based), 0 if unknown. */
static int
sql_line(const char *sql, int pos)
{
	int line = 1, i;

	if (pos <= 0)
		return 0;
	for (i = 0; i < pos - 1 && sql[i] != '\0'; i++)
		if (sql[i] == '\n')
			line++;
	return line;
}

/* Applies m in one transaction with its schema_migrations row. */
static int
apply_one(PGconn *conn, const struct migration *m)
{
	char msg[512];
	char ver[16];
	const char *params[2];
	PGresult *res = NULL;
	uint64_t t0 = bv_mono_ms();
	int rc;

	rc = exec_cmd(conn, "BEGIN", "BEGIN");
	if (rc < 0)
		return rc;
	/* A multi-statement string runs inside the open transaction. */
	res = PQexec(conn, m->sql);
	if (res == NULL || (PQresultStatus(res) != PGRES_COMMAND_OK &&
			    PQresultStatus(res) != PGRES_TUPLES_OK)) {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		const char *what =
			PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		const char *pos =
			PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
		char where[32] = "";

		/* file:line: as a compiler says it, so the author finds it. */
		if (pos != NULL)
			snprintf(where, sizeof(where), ":%d",
				 sql_line(m->sql, atoi(pos)));
		bv_log(BV_LOG_ERR, "migrate: %s%s: %s%s%s; rolled back",
		       m->name, where, state ? state : "", state ? " " : "",
		       what ? what : pg_msg(conn, msg, sizeof(msg)));
		rc = PQstatus(conn) == CONNECTION_OK ? BV_EINTERNAL
						     : BV_EUNAVAILABLE;
		goto out;
	}
	PQclear(res);
	res = NULL;
	/* A COMMIT inside the file would split it from its record. */
	if (PQtransactionStatus(conn) != PQTRANS_INTRANS) {
		bv_log(BV_LOG_ERR,
		       "migrate: %s ends its own transaction, so it may be "
		       "partly applied and is not recorded: a migration must "
		       "not contain BEGIN, COMMIT or ROLLBACK",
		       m->name);
		rc = BV_EINTERNAL;
		goto out;
	}

	snprintf(ver, sizeof(ver), "%d", m->version);
	params[0] = ver;
	params[1] = m->name;
	res = PQexecParams(conn,
			   "INSERT INTO schema_migrations (version, name) "
			   "VALUES ($1, $2)",
			   2, NULL, params, NULL, NULL, 0);
	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
		bv_log(BV_LOG_ERR,
		       "migrate: recording %s failed, rolled back: %s", m->name,
		       pg_msg(conn, msg, sizeof(msg)));
		rc = PQstatus(conn) == CONNECTION_OK ? BV_EINTERNAL
						     : BV_EUNAVAILABLE;
		goto out;
	}
	rc = exec_cmd(conn, "COMMIT", "COMMIT");
	if (rc < 0)
		goto out;
	bv_log(BV_LOG_NOTICE, "migrate: applied %s (%llu ms)", m->name,
	       (unsigned long long)(bv_mono_ms() - t0));
out:
	PQclear(res);
	if (rc < 0 && PQstatus(conn) == CONNECTION_OK) {
		/* Harmless when already aborted or committed. */
		PQclear(PQexec(conn, "ROLLBACK"));
	}
	return rc;
}

/* Takes the session-level migration lock, saying so when it must wait. */
static int
take_lock(PGconn *conn)
{
	char msg[512];
	PGresult *res;
	int got;

	res = PQexec(conn, "SELECT pg_try_advisory_lock(" MIGRATE_LOCK_KEY ")");
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
		bv_log(BV_LOG_ERR,
		       "migrate: cannot take the migration lock: %s",
		       pg_msg(conn, msg, sizeof(msg)));
		PQclear(res);
		return PQstatus(conn) == CONNECTION_OK ? BV_EINTERNAL
						       : BV_EUNAVAILABLE;
	}
	got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (got)
		return 0;
	bv_log(BV_LOG_NOTICE, "migrate: another migration is running; "
			      "waiting for it to finish");
	return exec_cmd(conn, "waiting for the migration lock",
			"SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")");
}

int
migrate_apply(const char *conninfo)
{
	PGconn *conn = NULL;
	struct applied *a = NULL;
	size_t n = 0, i;
	int rc, count = 0;

	rc = db_connect(conninfo, &conn);
	if (rc < 0)
		goto out;
	rc = take_lock(conn);
	if (rc < 0)
		goto out;
	/* Under the lock, so concurrent migrators cannot race on it. */
	rc = exec_cmd(conn, "creating schema_migrations",
		      "CREATE TABLE IF NOT EXISTS schema_migrations ("
		      "version integer PRIMARY KEY, "
		      "name text NOT NULL, "
		      "applied_at timestamptz NOT NULL DEFAULT now())");
	if (rc < 0)
		goto out;
	rc = read_applied(conn, &a, &n);
	if (rc < 0)
		goto out;
	rc = check_known(a, n);
	if (rc < 0)
		goto out;
	/* bv_migrations[] is in file-name order, which is version order. */
	for (i = 0; i < bv_migrations_count; i++) {
		if (is_applied(a, n, bv_migrations[i].version))
			continue;
		rc = apply_one(conn, &bv_migrations[i]);
		if (rc < 0)
			goto out;
		count++;
	}
	if (count == 0)
		bv_log(BV_LOG_NOTICE,
		       "migrate: schema is up to date (version %d)",
		       newest_compiled());
	else
		bv_log(BV_LOG_NOTICE,
		       "migrate: applied %d migration(s), schema version %d",
		       count, newest_compiled());
out:
	applied_free(a, n);
	/* Closing the session releases the advisory lock. */
	if (conn != NULL)
		PQfinish(conn);
	return rc;
}

int
migrate_check(const char *conninfo)
{
	char msg[512];
	PGconn *conn = NULL;
	PGresult *res = NULL;
	struct applied *a = NULL;
	size_t n = 0, i;
	int rc, newest = newest_compiled();

	rc = db_connect(conninfo, &conn);
	if (rc < 0)
		goto out;
	res = PQexec(conn,
		     "SELECT to_regclass('schema_migrations') IS NOT NULL");
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
		bv_log(BV_LOG_ERR, "migrate: cannot read the schema: %s",
		       pg_msg(conn, msg, sizeof(msg)));
		rc = PQstatus(conn) == CONNECTION_OK ? BV_EINTERNAL
						     : BV_EUNAVAILABLE;
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		bv_log(BV_LOG_ERR,
		       "migrate: the database has never been migrated (no "
		       "schema_migrations table): run bvchat-relay --migrate");
		rc = BV_ECONFIG;
		goto out;
	}
	rc = read_applied(conn, &a, &n);
	if (rc < 0)
		goto out;
	rc = check_known(a, n);
	if (rc < 0)
		goto out;
	for (i = 0; i < bv_migrations_count; i++) {
		if (!is_applied(a, n, bv_migrations[i].version)) {
			bv_log(BV_LOG_ERR,
			       "migrate: the database schema is older than "
			       "this relay (%s is not applied): run "
			       "bvchat-relay --migrate",
			       bv_migrations[i].name);
			rc = BV_ECONFIG;
			goto out;
		}
	}
	bv_log(BV_LOG_INFO, "migrate: schema version %d matches this relay",
	       newest);
out:
	applied_free(a, n);
	PQclear(res);
	if (conn != NULL)
		PQfinish(conn);
	return rc;
}
