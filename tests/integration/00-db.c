/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 00-db.c: relay/db.c against a real PostgreSQL on a libuv loop: single
 * jobs, group commit, solo retries after a failed group, LISTEN/NOTIFY,
 * binary parameters and results, failing while down, reconnecting after
 * the backend is terminated, re-entrant submits and db_free().
 *
 * The database comes from BV_TEST_DB (a conninfo); the tests own the schema
 * "dbtest" in it. A plain blocking libpq connection does setup and checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>
#include <libpq-fe.h>
#include <uv.h>

#include "bv_error.h"
#include "bv_util.h"
#include "db.h"

#define WAIT_MS	 10000
#define MAX_RECS 1100

struct rec {
	int called;
	int rc;
	int order;
	int sync_call; /* called from inside db_submit() */
	char sqlstate[6];
	char text[64];
	int isnull;
	int binary_ok;
};

/* Everything callbacks touch is static: a failed test longjmps away. */
static const char *conninfo;
static PGconn *admin;
static uv_loop_t loop;
static uv_timer_t guard;
static int timed_out;
static struct db *db;
static struct rec recs[MAX_RECS];
static int done_seq;
static int in_submit;
static int ups, downs;
static char note_chan[64], note_payload[64];
static int notes;
static unsigned char blob[256];

/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

static void
admin_exec(const char *sql)
{
	PGresult *res = PQexec(admin, sql);
	ExecStatusType st = PQresultStatus(res);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(admin));
	PQclear(res);
}

static long long
admin_int(const char *sql)
{
	PGresult *res = PQexec(admin, sql);
	long long v = -1;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		v = atoll(PQgetvalue(res, 0, 0));
	else
		fail_msg("%s: %s", sql, PQerrorMessage(admin));
	PQclear(res);
	return v;
}

static void
on_guard(uv_timer_t *h)
{
	(void)h;
	timed_out = 1;
}

/* Runs the loop until *flag >= want or ms pass; returns *flag >= want. */
static int
run_until(const int *flag, int want, int ms)
{
	timed_out = 0;
	uv_timer_start(&guard, on_guard, (uint64_t)ms, 0);
	while (*flag < want && !timed_out)
		uv_run(&loop, UV_RUN_ONCE);
	uv_timer_stop(&guard);
	return *flag >= want;
}

static void
run_for(int ms)
{
	int never = 0;

	run_until(&never, 1, ms);
}

static void
rec_cb(struct db_job *job, int rc, void *arg)
{
	struct rec *r = arg;
	PGresult *res;

	r->called++;
	r->rc = rc;
	r->order = ++done_seq;
	r->sync_call = in_submit;
	snprintf(r->sqlstate, sizeof(r->sqlstate), "%s", db_job_sqlstate(job));
	res = db_job_result(job, db_job_count(job) - 1);
	if (rc == 0 && res && PQresultStatus(res) == PGRES_TUPLES_OK &&
	    PQntuples(res) > 0) {
		r->isnull = PQgetisnull(res, 0, 0);
		if (PQfformat(res, 0) == 0)
			snprintf(r->text, sizeof(r->text), "%s",
				 PQgetvalue(res, 0, 0));
	}
}

static int
submit(struct db_job *job, db_done_cb cb, void *arg)
{
	int rc;

	in_submit = 1;
	rc = db_submit(db, job, cb, arg);
	in_submit = 0;
	return rc;
}

/* A job of one statement with text parameters. */
static struct db_job *
job1(int txn, const char *stmt, int n, const char *const *v)
{
	struct db_job *job = db_job_new(txn);

	assert_non_null(job);
	assert_int_equal(db_job_add(job, stmt, n, v, NULL, NULL, 0), 0);
	return job;
}

static struct db_job *
ins_job(int txn, int id, const char *v)
{
	char ids[16];
	const char *p[2] = {ids, v};

	snprintf(ids, sizeof(ids), "%d", id);
	return job1(txn, "ins", 2, p);
}

static void
on_state(int up, void *arg)
{
	(void)arg;
	if (up)
		ups++;
	else
		downs++;
}

static void
on_notify(const char *channel, const char *payload, void *arg)
{
	(void)arg;
	snprintf(note_chan, sizeof(note_chan), "%s", channel);
	snprintf(note_payload, sizeof(note_payload), "%s", payload);
	notes++;
}

static void
register_statements(struct db *d)
{
	static const struct {
		const char *name, *sql;
		int n;
	} s[] = {
		{"ins", "INSERT INTO dbtest.items (id, v) VALUES ($1, $2)", 2},
		{"check", "SELECT dbtest.check_v($1)", 1},
		{"count", "SELECT count(*) FROM dbtest.items", 0},
		{"echo", "SELECT $1::bytea, length($1::bytea)::int4", 1},
		{"insb",
		 "INSERT INTO dbtest.items (id, b) VALUES ($1, $2) RETURNING b",
		 2},
		{"pid", "SELECT pg_backend_pid()", 0},
		{"sleep", "SELECT pg_sleep($1::float8)", 1},
		{"notify", "SELECT pg_notify($1, $2)", 2},
	};
	size_t i;

	for (i = 0; i < sizeof(s) / sizeof(s[0]); i++)
		assert_int_equal(db_prepare(d, s[i].name, s[i].sql, s[i].n), 0);
}

/* A db on conninfo ci, statements registered; waits until up if asked. */
static void
open_db(const char *ci, const char *const *listen, unsigned max_jobs,
	int wait_up)
{
	struct db_opts o;

	memset(&o, 0, sizeof(o));
	o.conninfo = ci;
	o.listen = listen;
	o.on_notify = on_notify;
	o.on_state = on_state;
	o.max_jobs_per_round = max_jobs;
	o.reconnect_min_ms = 50;
	o.reconnect_max_ms = 400;
	db = db_new(&loop, &o);
	assert_non_null(db);
	register_statements(db);
	if (wait_up) {
		assert_true(run_until(&ups, 1, WAIT_MS));
		assert_true(db_is_up(db));
	}
}

/* ------------------------------------------------------------------ */
/* Fixtures                                                             */
/* ------------------------------------------------------------------ */

static int
group_setup(void **state)
{
	(void)state;
	admin = PQconnectdb(conninfo);
	if (PQstatus(admin) != CONNECTION_OK) {
		fprintf(stderr, "BV_TEST_DB: %s", PQerrorMessage(admin));
		return -1;
	}
	admin_exec("SET client_min_messages = warning");
	admin_exec("DROP SCHEMA IF EXISTS dbtest CASCADE");
	admin_exec("CREATE SCHEMA dbtest");
	admin_exec("CREATE TABLE dbtest.items (id integer PRIMARY KEY, "
		   "v text, b bytea)");
	admin_exec("CREATE FUNCTION dbtest.check_v(p integer) RETURNS integer "
		   "LANGUAGE plpgsql AS $$ BEGIN IF p < 0 THEN "
		   "RAISE EXCEPTION 'negative' USING ERRCODE = 'BV033'; "
		   "END IF; RETURN p; END $$");
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	admin_exec("DROP SCHEMA IF EXISTS dbtest CASCADE");
	PQfinish(admin);
	return 0;
}

static int
setup(void **state)
{
	(void)state;
	admin_exec("TRUNCATE dbtest.items");
	memset(recs, 0, sizeof(recs));
	done_seq = 0;
	ups = downs = notes = 0;
	note_chan[0] = note_payload[0] = '\0';
	db = NULL;
	if (uv_loop_init(&loop) != 0 || uv_timer_init(&loop, &guard) != 0)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	db_free(db);
	db = NULL;
	uv_close((uv_handle_t *)&guard, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	/* Every handle db made is closed and freed by now. */
	return uv_loop_close(&loop) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* Tests                                                                */
/* ------------------------------------------------------------------ */

static void
test_job_api(void **state)
{
	struct db_job *job = db_job_new(1);
	const char *v[2] = {"1", NULL};
	int len[2] = {0, -1}, fmt[2] = {0, 1};

	(void)state;
	assert_non_null(job);
	assert_int_equal(db_job_count(job), 0);
	assert_int_equal(db_job_add(job, NULL, 0, NULL, NULL, NULL, 0),
			 BV_EINVAL);
	assert_int_equal(db_job_add(job, "ins", 2, NULL, NULL, NULL, 0),
			 BV_EINVAL);
	/* A binary value needs a length. */
	v[1] = "x";
	assert_int_equal(db_job_add(job, "ins", 2, v, len, fmt, 0), BV_EINVAL);
	assert_int_equal(db_job_add(job, "ins", 2, v, NULL, NULL, 0), 0);
	assert_int_equal(db_job_add(job, "count", 0, NULL, NULL, NULL, 0), 0);
	assert_int_equal(db_job_add(job, "count", 0, NULL, NULL, NULL, 0), 0);
	assert_int_equal(db_job_count(job), 3);
	assert_null(db_job_result(job, 0));
	assert_null(db_job_result(job, 3));
	assert_null(db_job_result(job, -1));
	assert_string_equal(db_job_sqlstate(job), "");
	/* Never submitted: freed with its statements. */
	db_job_free(job);
	db_job_free(NULL);
	db_free(NULL);
}

static void
test_single_job(void **state)
{
	struct db_job *job;
	struct db_stats st;

	(void)state;
	open_db(conninfo, NULL, 0, 1);
	job = ins_job(1, 1, "one");
	assert_int_equal(db_job_add(job, "count", 0, NULL, NULL, NULL, 0), 0);
	assert_int_equal(submit(job, rec_cb, &recs[0]), 0);
	assert_int_equal(recs[0].called, 0);
	assert_int_equal(db_pending(db), 1);
	assert_true(run_until(&recs[0].called, 1, WAIT_MS));
	assert_int_equal(recs[0].rc, 0);
	assert_false(recs[0].sync_call);
	assert_string_equal(recs[0].sqlstate, "");
	assert_string_equal(recs[0].text, "1");
	assert_int_equal(db_pending(db), 0);
	assert_int_equal(admin_int("SELECT count(*) FROM dbtest.items "
				   "WHERE id = 1 AND v = 'one'"),
			 1);
	db_get_stats(db, &st);
	assert_int_equal(st.rounds, 1);
	assert_int_equal(st.transactions, 1);
	assert_int_equal(st.jobs, 1);
	assert_int_equal(st.failures, 0);
	assert_int_equal(st.solo_retries, 0);
	/* An empty job is refused and freed; its callback never runs. */
	assert_int_equal(submit(db_job_new(0), rec_cb, &recs[1]), BV_EINVAL);
	assert_int_equal(submit(NULL, rec_cb, &recs[1]), BV_EINVAL);
	run_for(50);
	assert_int_equal(recs[1].called, 0);
	assert_int_equal(db_pending(db), 0);
}

static void
test_group_commit(void **state)
{
	struct db_stats st;
	int i, ok = 1;

	(void)state;
	open_db(conninfo, NULL, 0, 1);
	for (i = 0; i < 1000; i++)
		assert_int_equal(submit(ins_job(1, i, "g"), rec_cb, &recs[i]),
				 0);
	assert_int_equal(db_pending(db), 1000);
	assert_true(run_until(&recs[999].called, 1, WAIT_MS));
	for (i = 0; i < 1000; i++) {
		if (recs[i].called != 1 || recs[i].rc != 0 ||
		    recs[i].order != i + 1 || recs[i].sync_call)
			ok = 0;
	}
	assert_true(ok);
	db_get_stats(db, &st);
	print_message("1000 jobs: %llu rounds, %llu transactions\n", st.rounds,
		      st.transactions);
	assert_true(st.rounds < 1000 / 5);
	assert_true(st.transactions <= st.rounds);
	assert_int_equal(st.jobs, 1000);
	assert_int_equal(db_pending(db), 0);
	assert_int_equal(admin_int("SELECT count(*) FROM dbtest.items"), 1000);
}

static void
test_round_cap(void **state)
{
	struct db_stats st;
	int i;

	(void)state;
	open_db(conninfo, NULL, 10, 1);
	for (i = 0; i < 50; i++)
		submit(ins_job(1, i, "c"), rec_cb, &recs[i]);
	assert_true(run_until(&recs[49].called, 1, WAIT_MS));
	db_get_stats(db, &st);
	assert_int_equal(st.rounds, 5);
	assert_int_equal(admin_int("SELECT count(*) FROM dbtest.items"), 50);
}

/* Ten jobs in one group, the fifth raising BV033: it fails alone. */
static void
test_solo_retry(void **state)
{
	struct db_stats st;
	int i;

	(void)state;
	open_db(conninfo, NULL, 0, 1);
	for (i = 0; i < 10; i++) {
		struct db_job *job = ins_job(1, i, "s");
		const char *p[1] = {i == 5 ? "-1" : "1"};

		assert_int_equal(db_job_add(job, "check", 1, p, NULL, NULL, 0),
				 0);
		submit(job, rec_cb, &recs[i]);
	}
	assert_true(run_until(&done_seq, 10, WAIT_MS));
	for (i = 0; i < 10; i++) {
		assert_int_equal(recs[i].called, 1);
		if (i == 5) {
			assert_int_equal(recs[i].rc, BV_EINTERNAL);
			assert_string_equal(recs[i].sqlstate, "BV033");
		} else {
			assert_int_equal(recs[i].rc, 0);
			assert_string_equal(recs[i].sqlstate, "");
		}
	}
	assert_int_equal(admin_int("SELECT count(*) FROM dbtest.items"), 9);
	assert_int_equal(
		admin_int("SELECT count(*) FROM dbtest.items WHERE id = 5"), 0);
	db_get_stats(db, &st);
	assert_int_equal(st.solo_retries, 10);
	assert_int_equal(st.failures, 1);

	/* A group of one fails directly, and the session recovers. */
	{
		const char *p[1] = {"-7"};

		submit(job1(1, "check", 1, p), rec_cb, &recs[20]);
	}
	assert_true(run_until(&recs[20].called, 1, WAIT_MS));
	assert_int_equal(recs[20].rc, BV_EINTERNAL);
	assert_string_equal(recs[20].sqlstate, "BV033");
	submit(ins_job(1, 100, "after"), rec_cb, &recs[21]);
	submit(ins_job(0, 101, "after"), rec_cb, &recs[22]);
	assert_true(run_until(&recs[22].called, 1, WAIT_MS));
	assert_true(run_until(&recs[21].called, 1, WAIT_MS));
	assert_int_equal(recs[21].rc, 0);
	assert_int_equal(recs[22].rc, 0);
	db_get_stats(db, &st);
	assert_int_equal(st.solo_retries, 10);

	/* A duplicate key (23505) in a group: the neighbour still commits. */
	submit(ins_job(1, 200, "x"), rec_cb, &recs[30]);
	submit(ins_job(1, 100, "dup"), rec_cb, &recs[31]);
	assert_true(run_until(&recs[31].called, 1, WAIT_MS));
	assert_true(run_until(&recs[30].called, 1, WAIT_MS));
	assert_int_equal(recs[30].rc, 0);
	assert_int_equal(recs[31].rc, BV_EINTERNAL);
	assert_string_equal(recs[31].sqlstate, "23505");
	assert_int_equal(
		admin_int("SELECT count(*) FROM dbtest.items WHERE id = 200"),
		1);
}

/* Jobs outside the group fail on their own, without retries. */
static void
test_non_transactional(void **state)
{
	struct db_stats st;
	int i;

	(void)state;
	open_db(conninfo, NULL, 0, 1);
	for (i = 0; i < 6; i++) {
		struct db_job *job = ins_job(i % 2, i, "n");
		const char *p[1] = {i == 2 ? "-1" : "1"};

		assert_int_equal(db_job_add(job, "check", 1, p, NULL, NULL, 0),
				 0);
		submit(job, rec_cb, &recs[i]);
	}
	assert_true(run_until(&done_seq, 6, WAIT_MS));
	for (i = 0; i < 6; i++)
		assert_int_equal(recs[i].rc, i == 2 ? BV_EINTERNAL : 0);
	assert_string_equal(recs[2].sqlstate, "BV033");
	/* The failed job's own earlier statement was rolled back too. */
	assert_int_equal(admin_int("SELECT count(*) FROM dbtest.items"), 5);
	db_get_stats(db, &st);
	assert_int_equal(st.solo_retries, 0);
	assert_int_equal(st.rounds, 1);
	/* 3 jobs alone and one group. */
	assert_int_equal(st.transactions, 4);
	/* An unknown statement name is a statement failure too. */
	submit(job1(0, "nosuch", 0, NULL), rec_cb, &recs[10]);
	assert_true(run_until(&recs[10].called, 1, WAIT_MS));
	assert_int_equal(recs[10].rc, BV_EINTERNAL);
	assert_string_equal(recs[10].sqlstate, "26000");
}

static void
test_notify(void **state)
{
	const char *listen[] = {"dbtest_chan", "Dbtest Mixed", NULL};
	const char *p[2] = {"dbtest_chan", "from-job"};

	(void)state;
	open_db(conninfo, listen, 0, 1);
	admin_exec("NOTIFY dbtest_chan, 'hello'");
	assert_true(run_until(&notes, 1, WAIT_MS));
	assert_string_equal(note_chan, "dbtest_chan");
	assert_string_equal(note_payload, "hello");
	admin_exec("SELECT pg_notify('Dbtest Mixed', '')");
	assert_true(run_until(&notes, 2, WAIT_MS));
	assert_string_equal(note_chan, "Dbtest Mixed");
	assert_string_equal(note_payload, "");
	/* Our own NOTIFY comes back after its commit. */
	submit(job1(1, "notify", 2, p), rec_cb, &recs[0]);
	assert_true(run_until(&notes, 3, WAIT_MS));
	assert_int_equal(recs[0].rc, 0);
	assert_string_equal(note_payload, "from-job");
	/* Channels not listed are not delivered. */
	admin_exec("NOTIFY dbtest_other, 'no'");
	admin_exec("NOTIFY dbtest_chan, 'last'");
	assert_true(run_until(&notes, 4, WAIT_MS));
	assert_string_equal(note_payload, "last");
	run_for(50);
	assert_int_equal(notes, 4);
}

static struct {
	int called, rc, ok;
} bin;

static void
echo_cb(struct db_job *job, int rc, void *arg)
{
	PGresult *r0 = db_job_result(job, 0), *r1 = db_job_result(job, 1);
	uint32_t n;

	(void)arg;
	bin.called++;
	bin.rc = rc;
	if (rc != 0 || !r0 || !r1 || PQntuples(r0) != 1 || PQntuples(r1) != 1)
		return;
	memcpy(&n, PQgetvalue(r0, 0, 1), sizeof(n));
	bin.ok = PQfformat(r0, 0) == 1 &&
		 PQgetlength(r0, 0, 0) == (int)sizeof(blob) &&
		 memcmp(PQgetvalue(r0, 0, 0), blob, sizeof(blob)) == 0 &&
		 PQgetlength(r0, 0, 1) == 4 && ntohl(n) == sizeof(blob) &&
		 PQfformat(r1, 0) == 1 &&
		 PQgetlength(r1, 0, 0) == (int)sizeof(blob) &&
		 memcmp(PQgetvalue(r1, 0, 0), blob, sizeof(blob)) == 0;
}

static void
test_binary(void **state)
{
	const char *v[2];
	int len[2], fmt[2];
	struct db_job *job;
	size_t i;

	(void)state;
	open_db(conninfo, NULL, 0, 1);
	for (i = 0; i < sizeof(blob); i++)
		blob[i] = (unsigned char)(255 - i); /* NULs and high bytes */
	job = db_job_new(1);
	v[0] = (const char *)blob;
	len[0] = sizeof(blob);
	fmt[0] = 1;
	assert_int_equal(db_job_add(job, "echo", 1, v, len, fmt, 1), 0);
	v[0] = "7";
	v[1] = (const char *)blob;
	len[0] = 0;
	len[1] = sizeof(blob);
	fmt[0] = 0;
	fmt[1] = 1;
	assert_int_equal(db_job_add(job, "insb", 2, v, len, fmt, 1), 0);
	/* The job holds copies: scribbling on ours changes nothing. */
	v[0] = "8";
	submit(job, echo_cb, NULL);
	assert_true(run_until(&bin.called, 1, WAIT_MS));
	assert_int_equal(bin.rc, 0);
	assert_true(bin.ok);
	assert_int_equal(admin_int("SELECT length(b) FROM dbtest.items "
				   "WHERE id = 7"),
			 sizeof(blob));
	/* SQL NULL parameters. */
	v[0] = NULL;
	submit(job1(0, "echo", 1, v), rec_cb, &recs[0]);
	assert_true(run_until(&recs[0].called, 1, WAIT_MS));
	assert_int_equal(recs[0].rc, 0);
	assert_true(recs[0].isnull);
}

#define BIG (8 << 20)
static unsigned char *big;
static struct {
	int called, rc, ok;
} large;

static void
large_cb(struct db_job *job, int rc, void *arg)
{
	PGresult *res = db_job_result(job, 0);

	(void)arg;
	large.called++;
	large.rc = rc;
	large.ok = rc == 0 && res && PQntuples(res) == 1 &&
		   PQgetlength(res, 0, 0) == BIG &&
		   memcmp(PQgetvalue(res, 0, 0), big, BIG) == 0;
}

/*
 * Parameters and results far larger than the socket buffers: PQflush()
 * returns 1 (UV_WRITABLE) and results arrive over many reads, while small
 * jobs share the same rounds.
 */
static void
test_large(void **state)
{
	const char *v[1];
	int len[1] = {BIG}, fmt[1] = {1}, i;
	struct db_job *job;

	(void)state;
	memset(&large, 0, sizeof(large));
	big = malloc(BIG);
	assert_non_null(big);
	for (i = 0; i < BIG; i++)
		big[i] = (unsigned char)(i * 7 + (i >> 12));
	open_db(conninfo, NULL, 0, 1);
	v[0] = (const char *)big;
	job = db_job_new(0);
	assert_int_equal(db_job_add(job, "echo", 1, v, len, fmt, 1), 0);
	submit(job, large_cb, NULL);
	for (i = 0; i < 20; i++)
		submit(ins_job(1, i, "small"), rec_cb, &recs[i]);
	assert_true(run_until(&large.called, 1, WAIT_MS));
	assert_true(run_until(&done_seq, 20, WAIT_MS));
	free(big);
	big = NULL;
	assert_int_equal(large.rc, 0);
	assert_true(large.ok);
	for (i = 0; i < 20; i++)
		assert_int_equal(recs[i].rc, 0);
}

static int resubmits;

/* Resubmits itself while the database is unavailable, three times. */
static void
retry_cb(struct db_job *job, int rc, void *arg)
{
	struct rec *r = arg;

	(void)job;
	r->rc = rc;
	if (rc == BV_EUNAVAILABLE && resubmits < 3) {
		resubmits++;
		assert_int_equal(submit(job1(1, "count", 0, NULL), retry_cb, r),
				 0);
		return;
	}
	r->called++;
}

static void
test_down(void **state)
{
	struct db_stats st;

	(void)state;
	resubmits = 0;
	open_db("host=/nonexistent/bvdbtest port=5 user=postgres "
		"dbname=postgres",
		NULL, 0, 0);
	run_for(300);
	assert_false(db_is_up(db));
	assert_int_equal(ups, 0);
	assert_int_equal(downs, 0);
	assert_int_equal(submit(job1(1, "count", 0, NULL), rec_cb, &recs[0]),
			 0);
	/* Not from inside db_submit(): on the next loop iteration. */
	assert_int_equal(recs[0].called, 0);
	assert_int_equal(db_pending(db), 1);
	assert_true(run_until(&recs[0].called, 1, WAIT_MS));
	assert_int_equal(recs[0].rc, BV_EUNAVAILABLE);
	assert_false(recs[0].sync_call);
	assert_int_equal(db_pending(db), 0);
	/* Callbacks may submit again. */
	submit(job1(0, "count", 0, NULL), retry_cb, &recs[1]);
	assert_true(run_until(&recs[1].called, 1, WAIT_MS));
	assert_int_equal(resubmits, 3);
	assert_int_equal(recs[1].rc, BV_EUNAVAILABLE);
	db_get_stats(db, &st);
	assert_int_equal(st.jobs, 5);
	assert_int_equal(st.failures, 5);
	assert_int_equal(st.rounds, 0);
}

/* A statement that does not prepare keeps the connection from coming up. */
static void
test_bad_prepare(void **state)
{
	(void)state;
	open_db(conninfo, NULL, 0, 0);
	assert_int_equal(db_prepare(db, "bad", "SELEC 1", 0), 0);
	run_for(500);
	assert_false(db_is_up(db));
	assert_int_equal(ups, 0);
}

static void
test_prepare_late(void **state)
{
	const char *p[1] = {"41"};

	(void)state;
	open_db(conninfo, NULL, 0, 1);
	assert_int_equal(db_prepare(db, "late", "SELECT $1::int + 1", 1), 0);
	submit(job1(0, "late", 1, p), rec_cb, &recs[0]);
	assert_true(run_until(&recs[0].called, 1, WAIT_MS));
	assert_int_equal(recs[0].rc, 0);
	assert_string_equal(recs[0].text, "42");
}

static int
backend_pid(void)
{
	recs[MAX_RECS - 1].called = 0;
	submit(job1(0, "pid", 0, NULL), rec_cb, &recs[MAX_RECS - 1]);
	assert_true(run_until(&recs[MAX_RECS - 1].called, 1, WAIT_MS));
	assert_int_equal(recs[MAX_RECS - 1].rc, 0);
	return atoi(recs[MAX_RECS - 1].text);
}

static void
test_reconnect(void **state)
{
	const char *listen[] = {"dbtest_chan", NULL};
	const char *sl[1] = {"30"};
	struct db_stats st;
	char sql[128];
	int pid, pid2;

	(void)state;
	open_db(conninfo, listen, 0, 1);
	pid = backend_pid();
	assert_true(pid > 0);

	/* A job in flight when the backend dies: outcome unknown. */
	submit(job1(0, "sleep", 1, sl), rec_cb, &recs[0]);
	submit(ins_job(1, 1, "queued"), rec_cb, &recs[1]);
	run_for(200);
	assert_int_equal(recs[0].called, 0);
	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)", pid);
	admin_exec(sql);
	assert_true(run_until(&downs, 1, WAIT_MS));
	assert_false(db_is_up(db));
	/* Down: a new job fails from the loop. */
	submit(ins_job(1, 2, "down"), rec_cb, &recs[2]);
	assert_int_equal(recs[2].called, 0);
	assert_true(run_until(&recs[2].called, 1, WAIT_MS));
	assert_int_equal(recs[0].called, 1);
	assert_int_equal(recs[0].rc, BV_EUNAVAILABLE);
	assert_int_equal(recs[1].called, 1);
	assert_int_equal(recs[1].rc, BV_EUNAVAILABLE);
	assert_int_equal(recs[2].rc, BV_EUNAVAILABLE);

	/* Back: statements prepared again, LISTEN again, jobs work. */
	assert_true(run_until(&ups, 2, WAIT_MS));
	assert_int_equal(downs, 1);
	assert_true(db_is_up(db));
	pid2 = backend_pid();
	assert_true(pid2 > 0 && pid2 != pid);
	submit(ins_job(1, 3, "again"), rec_cb, &recs[3]);
	assert_true(run_until(&recs[3].called, 1, WAIT_MS));
	assert_int_equal(recs[3].rc, 0);
	assert_int_equal(admin_int("SELECT count(*) FROM dbtest.items"), 1);
	admin_exec("NOTIFY dbtest_chan, 'back'");
	assert_true(run_until(&notes, 1, WAIT_MS));
	assert_string_equal(note_payload, "back");
	db_get_stats(db, &st);
	assert_int_equal(st.reconnects, 1);
	/* Terminated while idle, too. */
	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)", pid2);
	admin_exec(sql);
	assert_true(run_until(&ups, 3, WAIT_MS));
	assert_int_equal(downs, 2);
	submit(ins_job(1, 4, "third"), rec_cb, &recs[4]);
	assert_true(run_until(&recs[4].called, 1, WAIT_MS));
	assert_int_equal(recs[4].rc, 0);
}

static int chain_left;

/* Each completion submits the next link of the chain. */
static void
chain_cb(struct db_job *job, int rc, void *arg)
{
	struct rec *r = arg;

	rec_cb(job, rc, arg);
	if (rc == 0 && chain_left > 0) {
		int id = 1000 + chain_left--;

		submit(ins_job(1, id, "chain"), chain_cb, r + 1);
	}
}

static void
test_reentrant(void **state)
{
	int i;

	(void)state;
	open_db(conninfo, NULL, 0, 1);
	chain_left = 99;
	submit(ins_job(1, 1000, "chain"), chain_cb, &recs[0]);
	/* Independent jobs alongside the chain. */
	for (i = 0; i < 100; i++)
		submit(ins_job(i % 3 == 0, i, "side"), rec_cb, &recs[500 + i]);
	assert_true(run_until(&recs[99].called, 1, WAIT_MS));
	assert_true(run_until(&done_seq, 200, WAIT_MS));
	for (i = 0; i < 100; i++) {
		assert_int_equal(recs[i].rc, 0);
		assert_int_equal(recs[500 + i].rc, 0);
		assert_false(recs[i].sync_call);
	}
	assert_int_equal(admin_int("SELECT count(*) FROM dbtest.items"), 200);
}

static int shutdown_rc = 1;

static void
free_cb(struct db_job *job, int rc, void *arg)
{
	rec_cb(job, rc, arg);
	/* Inside db_free() nothing new is accepted. */
	shutdown_rc = db_submit(db, job1(1, "count", 0, NULL), rec_cb,
				&recs[MAX_RECS - 2]);
}

static void
test_free_pending(void **state)
{
	const char *sl[1] = {"30"};
	int i;

	(void)state;
	open_db(conninfo, NULL, 0, 1);
	/* One in flight, the others queued. */
	submit(job1(0, "sleep", 1, sl), rec_cb, &recs[0]);
	run_for(100);
	for (i = 1; i < 5; i++)
		submit(ins_job(1, i, "f"), i == 4 ? free_cb : rec_cb, &recs[i]);
	db_free(db);
	db = NULL;
	for (i = 0; i < 5; i++) {
		assert_int_equal(recs[i].called, 1);
		assert_int_equal(recs[i].rc, BV_EUNAVAILABLE);
	}
	assert_int_equal(shutdown_rc, BV_ESHUTDOWN);
	assert_int_equal(recs[MAX_RECS - 2].called, 0);
	/* Teardown runs the loop until db's handles are closed. */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_job_api, setup, teardown),
		cmocka_unit_test_setup_teardown(test_single_job, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_group_commit, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_round_cap, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_solo_retry, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_non_transactional, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_notify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_binary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_large, setup, teardown),
		cmocka_unit_test_setup_teardown(test_down, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_prepare, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_prepare_late, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reconnect, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reentrant, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_free_pending, setup,
						teardown),
	};
	const char *lvl = getenv("BV_LOG_LEVEL");

	conninfo = getenv("BV_TEST_DB");
	if (!conninfo || !*conninfo) {
		fprintf(stderr, "00-db: set BV_TEST_DB to a libpq conninfo "
				"of a database the test may write to\n");
		return 1;
	}
	if (lvl && bv_log_level_from_name(lvl) >= 0)
		bv_log_set_level(bv_log_level_from_name(lvl));
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
