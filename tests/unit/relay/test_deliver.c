/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_deliver.c: unit tests of relay/deliver.c, the per-device queue logic:
 * backlog paging within deliver_window, queue_empty once, live pushes only
 * behind the backlog, no envelope pushed twice on one connection, a row
 * deleted only after its push is answered, error answers and reconnects.
 * The database and the WebSocket are stubs that record what deliver.c asks
 * of them; query results are real PGresults built with libpq.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bv_error.h"
#include "bv_util.h"
#include "relay.h"

/* ------------------------------------------------------------- the stubs */

#define MAX_JOBS   64
#define MAX_FRAMES 256

struct db_job {
	char stmt[32];
	char params[3][512];
	PGresult *res;
	db_done_cb cb;
	void *arg;
};

static struct db_job *jobs[MAX_JOBS];
static int n_jobs;
static json_t *frames[MAX_FRAMES];
static int n_frames;
static int db_up = 1;
static int closed_code;

struct db_job *
db_job_new(int transactional)
{
	(void)transactional;
	return calloc(1, sizeof(struct db_job));
}

void
db_job_free(struct db_job *job)
{
	free(job);
}

int
db_job_add(struct db_job *job, const char *stmt, int nparams,
	   const char *const *values, const int *lengths, const int *formats,
	   int binary_result)
{
	int i;

	(void)lengths;
	(void)formats;
	(void)binary_result;
	snprintf(job->stmt, sizeof(job->stmt), "%s", stmt);
	for (i = 0; i < nparams && i < 3; i++)
		snprintf(job->params[i], sizeof(job->params[i]), "%s",
			 values[i]);
	return 0;
}

int
db_submit(struct db *db, struct db_job *job, db_done_cb cb, void *arg)
{
	(void)db;
	assert_true(n_jobs < MAX_JOBS);
	job->cb = cb;
	job->arg = arg;
	jobs[n_jobs++] = job;
	return 0;
}

PGresult *
db_job_result(struct db_job *job, int i)
{
	assert_int_equal(i, 0);
	return job->res;
}

int
db_is_up(const struct db *db)
{
	(void)db;
	return db_up;
}

int
db_prepare(struct db *db, const char *name, const char *sql, int nparams)
{
	(void)db;
	(void)name;
	(void)sql;
	(void)nparams;
	return 0;
}

void
conn_send_json(struct conn *c, json_t *j)
{
	(void)c;
	assert_true(n_frames < MAX_FRAMES);
	frames[n_frames++] = j;
}

void
conn_close(struct conn *c, int code)
{
	(void)c;
	closed_code = code;
}

int
conn_alive(const struct conn *c)
{
	return c->wsi != NULL && c->close_code == 0;
}

void
conn_ref(struct conn *c)
{
	c->refs++;
}

void
conn_unref(struct conn *c)
{
	c->refs--;
}

/* ------------------------------------------------------------- helpers */

static struct relay_config cfg;
static struct relay relay;
static struct conn conn;

static int
setup(void **state)
{
	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.deliver_window = 4;
	memset(&relay, 0, sizeof(relay));
	relay.cfg = &cfg;
	memset(&conn, 0, sizeof(conn));
	conn.r = &relay;
	conn.wsi = (struct lws *)&conn; /* any non-NULL pointer */
	conn.refs = 1;
	conn.authed = 1;
	conn.device = 42;
	snprintf(conn.account, sizeof(conn.account), "%s",
		 "00000000-0000-4000-8000-000000000001");
	n_jobs = n_frames = 0;
	db_up = 1;
	closed_code = 0;
	return deliver_init(&conn);
}

static int
teardown(void **state)
{
	int i;

	(void)state;
	for (i = 0; i < n_frames; i++)
		json_decref(frames[i]);
	for (i = 0; i < n_jobs; i++)
		if (jobs[i]) {
			PQclear(jobs[i]->res);
			free(jobs[i]);
		}
	bv_free(conn.pushes);
	return 0;
}

/* A fetch result with rows for the given seqs. */
static PGresult *
rows(const int64_t *seqs, int n)
{
	static PGresAttDesc cols[7];
	static const char *names[7] = {"seq",		"sender_account",
				       "sender_device", "message_id",
				       "type",		"ts",
				       "body"};
	PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
	char v[64];
	int i;

	for (i = 0; i < 7; i++) {
		memset(&cols[i], 0, sizeof(cols[i]));
		cols[i].name = (char *)names[i];
		cols[i].format = 0;
	}
	assert_int_equal(PQsetResultAttrs(res, 7, cols), 1);
	for (i = 0; i < n; i++) {
		snprintf(v, sizeof(v), "%lld", (long long)seqs[i]);
		PQsetvalue(res, i, 0, v, (int)strlen(v));
		PQsetvalue(res, i, 1, "00000000-0000-4000-8000-000000000002",
			   36);
		PQsetvalue(res, i, 2, "1", 1);
		snprintf(v, sizeof(v), "m%lld", (long long)seqs[i]);
		PQsetvalue(res, i, 3, v, (int)strlen(v));
		PQsetvalue(res, i, 4, "3", 1);
		PQsetvalue(res, i, 5, "1795431296123", 13);
		PQsetvalue(res, i, 6, "\\x6869", 6); /* "hi" */
	}
	return res;
}

/* Completes the oldest pending job for stmt with rc and res. */
static void
complete(const char *stmt, int rc, PGresult *res)
{
	int i;

	for (i = 0; i < n_jobs; i++) {
		struct db_job *j = jobs[i];

		if (!j || strcmp(j->stmt, stmt))
			continue;
		jobs[i] = NULL;
		j->res = res;
		j->cb(j, rc, j->arg);
		PQclear(j->res);
		free(j);
		return;
	}
	fail_msg("no pending %s job", stmt);
}

static int
pending(const char *stmt)
{
	int i, n = 0;

	for (i = 0; i < n_jobs; i++)
		if (jobs[i] && !strcmp(jobs[i]->stmt, stmt))
			n++;
	return n;
}

static const char *
pending_param(const char *stmt, int p)
{
	int i;

	for (i = 0; i < n_jobs; i++)
		if (jobs[i] && !strcmp(jobs[i]->stmt, stmt))
			return jobs[i]->params[p];
	return NULL;
}

static int
count_op(const char *op)
{
	int i, n = 0;

	for (i = 0; i < n_frames; i++) {
		json_t *o = json_object_get(frames[i], "op");

		if (o && !strcmp(json_string_value(o), op))
			n++;
	}
	return n;
}

/* The seq encoded in the message_id of the i-th deliver frame. */
static int64_t
delivered_seq(int nth)
{
	int i, k = 0;

	for (i = 0; i < n_frames; i++) {
		json_t *o = json_object_get(frames[i], "op");
		const char *mid;

		if (!o || strcmp(json_string_value(o), "deliver"))
			continue;
		if (k++ != nth)
			continue;
		mid = json_string_value(json_object_get(
			json_object_get(frames[i], "envelope"), "message_id"));
		return strtoll(mid + 1, NULL, 10);
	}
	fail_msg("no deliver #%d", nth);
	return -1;
}

static int64_t
push_id(int nth)
{
	int i, k = 0;

	for (i = 0; i < n_frames; i++) {
		json_t *o = json_object_get(frames[i], "op");

		if (o && !strcmp(json_string_value(o), "deliver") && k++ == nth)
			return json_integer_value(
				json_object_get(frames[i], "id"));
	}
	fail_msg("no deliver #%d", nth);
	return -1;
}

static struct delivery
live(int64_t seq)
{
	static char mid[16];
	struct delivery d;

	memset(&d, 0, sizeof(d));
	d.seq = seq;
	snprintf(d.sender, sizeof(d.sender), "%s",
		 "00000000-0000-4000-8000-000000000002");
	d.sender_device = 1;
	snprintf(mid, sizeof(mid), "m%lld", (long long)seq);
	d.message_id = mid;
	d.body = (const uint8_t *)"hi";
	d.body_len = 2;
	return d;
}

/* --------------------------------------------------------------- tests */

/* A short backlog: one fetch, every row pushed in order, then the marker. */
static void
test_backlog_then_queue_empty(void **state)
{
	const int64_t seqs[] = {10, 11, 12};

	(void)state;
	deliver_start(&conn);
	assert_int_equal(pending("fetch"), 1);
	assert_string_equal(pending_param("fetch", 0), "42");
	assert_string_equal(pending_param("fetch", 1), "{}");
	assert_string_equal(pending_param("fetch", 2), "4");
	complete("fetch", 0, rows(seqs, 3));
	assert_int_equal(count_op("deliver"), 3);
	assert_int_equal(delivered_seq(0), 10);
	assert_int_equal(delivered_seq(2), 12);
	assert_int_equal(count_op("queue_empty"), 1);
	/* The marker comes after the backlog. */
	assert_string_equal(json_string_value(json_object_get(frames[3], "op")),
			    "queue_empty");
	assert_int_equal(pending("fetch"), 0);
}

/* A backlog larger than the window is paged; acks free the window. */
static void
test_backlog_paged_by_window(void **state)
{
	const int64_t page1[] = {1, 2, 3, 4}, page2[] = {5, 6};
	int i;

	(void)state;
	deliver_start(&conn);
	complete("fetch", 0, rows(page1, 4));
	assert_int_equal(count_op("deliver"), 4);
	assert_int_equal(count_op("queue_empty"), 0);
	/* Window full: no fetch until something is acknowledged. */
	assert_int_equal(pending("fetch"), 0);
	for (i = 0; i < 4; i++)
		assert_int_equal(deliver_answer(&conn, push_id(i), 0), 0);
	assert_int_equal(pending("ack"), 4);
	complete("ack", 0, NULL);
	/* One slot free: the next page asks for one row, excluding the
	 * three whose deletes are still in flight. */
	assert_int_equal(pending("fetch"), 1);
	assert_string_equal(pending_param("fetch", 1), "{4,2,3}");
	assert_string_equal(pending_param("fetch", 2), "1");
	complete("ack", 0, NULL);
	complete("ack", 0, NULL);
	complete("ack", 0, NULL);
	complete("fetch", 0, rows(page2, 1));
	assert_int_equal(count_op("deliver"), 5);
	assert_int_equal(delivered_seq(4), 5);
	/* A full page (1 of 1) means there may be more. */
	assert_int_equal(pending("fetch"), 1);
	complete("fetch", 0, rows(page2 + 1, 1));
	assert_int_equal(pending("fetch"), 0);
	assert_int_equal(count_op("queue_empty"), 1);
}

/* A row is deleted only after the answer, and only once. */
static void
test_delete_only_after_answer(void **state)
{
	const int64_t seqs[] = {7};

	(void)state;
	deliver_start(&conn);
	complete("fetch", 0, rows(seqs, 1));
	assert_int_equal(pending("ack"), 0);
	/* An answer to an id never pushed is not an acknowledgement. */
	assert_int_equal(deliver_answer(&conn, 999, 0), -1);
	assert_int_equal(pending("ack"), 0);
	assert_int_equal(deliver_answer(&conn, push_id(0), 0), 0);
	assert_int_equal(pending("ack"), 1);
	assert_string_equal(pending_param("ack", 0), "42");
	assert_string_equal(pending_param("ack", 1), "7");
	/* A second answer to the same push does nothing. */
	assert_int_equal(deliver_answer(&conn, push_id(0), 0), -1);
	assert_int_equal(pending("ack"), 1);
	complete("ack", 0, NULL);
	assert_int_equal(conn.n_pushes, 0);
}

/* An error answer leaves the row queued and never re-pushed here. */
static void
test_error_answer_keeps_row(void **state)
{
	const int64_t seqs[] = {8};

	(void)state;
	deliver_start(&conn);
	complete("fetch", 0, rows(seqs, 1));
	assert_int_equal(deliver_answer(&conn, push_id(0), 1), 0);
	assert_int_equal(pending("ack"), 0);
	deliver_poke(&conn);
	assert_string_equal(pending_param("fetch", 1), "{8}");
	complete("fetch", 0, rows(seqs, 1)); /* the database still has it */
	assert_int_equal(count_op("deliver"), 1);
}

/* Live envelopes are pushed from memory only behind the backlog. */
static void
test_live_waits_for_backlog(void **state)
{
	const int64_t backlog[] = {1, 2};
	struct delivery d = live(3);

	(void)state;
	deliver_start(&conn);
	/* Committed while the backlog fetch is out: not pushed ahead of it. */
	deliver_committed(&conn, &d);
	assert_int_equal(count_op("deliver"), 0);
	complete("fetch", 0, rows(backlog, 2));
	assert_int_equal(count_op("deliver"), 2);
	/* The poke made another fetch happen, which finds 3 in order. */
	assert_int_equal(pending("fetch"), 1);
	complete("fetch", 0, rows(&d.seq, 1));
	assert_int_equal(count_op("deliver"), 3);
	assert_int_equal(delivered_seq(2), 3);
	/* Now the queue is drained: the next one goes straight out. */
	d = live(4);
	deliver_committed(&conn, &d);
	assert_int_equal(pending("fetch"), 0);
	assert_int_equal(count_op("deliver"), 4);
	/* The same envelope committed and fetched is pushed once. */
	deliver_committed(&conn, &d);
	assert_int_equal(count_op("deliver"), 4);
}

/* A full window sends live envelopes through a later fetch instead. */
static void
test_live_when_window_full(void **state)
{
	const int64_t none[] = {0};
	struct delivery d;
	int64_t s;

	(void)state;
	deliver_start(&conn);
	complete("fetch", 0, rows(none, 0));
	for (s = 1; s <= 4; s++) {
		d = live(s);
		deliver_committed(&conn, &d);
	}
	assert_int_equal(count_op("deliver"), 4);
	d = live(5);
	deliver_committed(&conn, &d);
	assert_int_equal(count_op("deliver"), 4);
	assert_int_equal(pending("fetch"), 0); /* no slot: wait for an ack */
	assert_int_equal(deliver_answer(&conn, push_id(0), 0), 0);
	complete("ack", 0, NULL);
	assert_int_equal(pending("fetch"), 1);
	complete("fetch", 0, rows(&d.seq, 1));
	assert_int_equal(delivered_seq(4), 5);
}

/* A delete that fails is retried when the database is back. */
static void
test_failed_delete_retried_on_reconnect(void **state)
{
	const int64_t seqs[] = {9};

	(void)state;
	relay.conns = &conn;
	deliver_start(&conn);
	complete("fetch", 0, rows(seqs, 1));
	assert_int_equal(deliver_answer(&conn, push_id(0), 0), 0);
	complete("ack", BV_EUNAVAILABLE, NULL);
	assert_int_equal(conn.n_pushes, 1); /* still excluded from fetches */
	deliver_db_up(&relay);
	assert_int_equal(pending("ack"), 1);
	assert_string_equal(pending_param("ack", 1), "9");
	assert_int_equal(pending("fetch"), 1);
	assert_string_equal(pending_param("fetch", 1), "{9}");
	complete("ack", 0, NULL);
	assert_int_equal(conn.n_pushes, 0);
	complete("fetch", 0, rows(seqs, 0));
}

/* A failed fetch is tried again when the database comes back. */
static void
test_failed_fetch_retried(void **state)
{
	const int64_t seqs[] = {5};

	(void)state;
	relay.conns = &conn;
	deliver_start(&conn);
	complete("fetch", BV_EUNAVAILABLE, NULL);
	assert_int_equal(count_op("queue_empty"), 0);
	db_up = 0;
	deliver_poke(&conn);
	assert_int_equal(pending("fetch"), 0); /* not while down */
	db_up = 1;
	deliver_db_up(&relay);
	complete("fetch", 0, rows(seqs, 1));
	assert_int_equal(count_op("deliver"), 1);
	assert_int_equal(count_op("queue_empty"), 1);
}

/* Nothing is pushed to a connection that is no longer the device's. */
static void
test_no_push_after_unregister(void **state)
{
	const int64_t seqs[] = {1};
	struct delivery d = live(2);

	(void)state;
	deliver_start(&conn);
	conn.authed = 0; /* displaced while the fetch was out */
	complete("fetch", 0, rows(seqs, 1));
	deliver_committed(&conn, &d);
	assert_int_equal(count_op("deliver"), 0);
	assert_int_equal(conn.refs, 1); /* the fetch gave its ref back */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_backlog_then_queue_empty,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_backlog_paged_by_window,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_only_after_answer,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_answer_keeps_row,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_live_waits_for_backlog,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_live_when_window_full,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_failed_delete_retried_on_reconnect, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_failed_fetch_retried,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_push_after_unregister,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
