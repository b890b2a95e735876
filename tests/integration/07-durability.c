/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 07-durability: "a send is accepted only after its envelopes are committed"
 * and "killing a relay at any instant loses no accepted message"
 * (ARCHITECTURE.md decision 4), tested by force: relays killed with SIGKILL
 * while four senders keep sends in flight, and PostgreSQL stopped with -m
 * immediate under load. Afterwards every send that was answered ok must be
 * delivered; duplicates are allowed (at least once) and counted. Bounded by
 * send counts and time, never by assuming how fast anything is.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "bvtest.h"

#define NSEND  4   /* senders */
#define PIPE   4   /* sends in flight per sender */
#define MAXMSG 600 /* per sender: NSEND * MAXMSG bounds a test */

enum { UNSENT = 0, INFLIGHT, ANSWERED_OK, ANSWERED_ERR };

struct sender {
	struct bvt_dev d;
	struct bvt_conn *c;
	int64_t ids[PIPE];
	int seq[PIPE];
	int nin;
	int next;
	unsigned char status[MAXMSG];
	int delivered[MAXMSG];
	char err[MAXMSG][24];
};

static struct bvt_env env;
static struct sender snd[NSEND];
static struct bvt_dev rcpt;
static const char *const relay_args[] = {"--sends_per_minute", "0", NULL};

static long long
count(const char *table)
{
	char sql[128];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
	return bvt_sql_int(env.db, sql, 0, NULL);
}

static int
setup(void **state)
{
	int i;

	(void)state;
	memset(snd, 0, sizeof(snd));
	if (bvt_env_init(&env, relay_args) < 0 ||
	    bvt_new_account(env.relay.port, &env.tenant, &rcpt) < 0)
		return -1;
	for (i = 0; i < NSEND; i++)
		if (bvt_new_account(env.relay.port, &env.tenant, &snd[i].d) < 0)
			return -1;
	return 0;
}

static int
teardown(void **state)
{
	int i;

	(void)state;
	for (i = 0; i < NSEND; i++) {
		bvt_conn_free(snd[i].c);
		snd[i].c = NULL;
	}
	bvt_env_cleanup(&env);
	if (bvt_pg_start() < 0)
		return -1;
	return 0;
}

static int
connect_all(int port)
{
	int i;

	for (i = 0; i < NSEND; i++) {
		bvt_conn_free(snd[i].c);
		snd[i].nin = 0;
		snd[i].c = bvt_online(port, &snd[i].d);
		if (!snd[i].c)
			return -1;
	}
	return 0;
}

/* Tops up the sender's pipeline; returns how many were submitted. */
static int
fill(struct sender *s, int k)
{
	int n = 0;

	while (s->c && !s->c->closed && s->nin < PIPE && s->next < MAXMSG) {
		const struct bvt_dev *to[] = {&rcpt};
		char mid[32];
		int64_t id;

		snprintf(mid, sizeof(mid), "s%d-%d", k, s->next);
		id = bvt_conn_submit(
			s->c, bvt_send_req(mid, bvt_envelopes_to(to, 1, mid)));
		if (id < 0)
			break;
		s->ids[s->nin] = id;
		s->seq[s->nin] = s->next;
		s->status[s->next] = INFLIGHT;
		s->nin++;
		s->next++;
		n++;
	}
	return n;
}

static void
record(struct sender *s, int seq, const json_t *r)
{
	const char *code = bvt_err_code(r);

	if (bvt_ok(r)) {
		s->status[seq] = ANSWERED_OK;
	} else {
		int retryable =
			json_is_true(json_object_get(bvt_err(r), "retryable"));

		s->status[seq] = ANSWERED_ERR;
		/* A code that is not retryable counts as another error. */
		snprintf(s->err[seq], sizeof(s->err[seq]), "%s%s",
			 code ? code : "?", retryable ? "" : " (final)");
	}
}

/* Waits for the oldest answer: 1 got one, 0 nothing in flight, -1 the
 * connection ended or timed out. */
static int
collect(struct sender *s, int timeout_ms)
{
	json_t *r;

	if (s->nin == 0)
		return 0;
	r = bvt_conn_wait(s->c, s->ids[0], timeout_ms);
	if (!r)
		return -1;
	record(s, s->seq[0], r);
	json_decref(r);
	s->nin--;
	memmove(s->ids, s->ids + 1, sizeof(s->ids[0]) * (size_t)s->nin);
	memmove(s->seq, s->seq + 1, sizeof(s->seq[0]) * (size_t)s->nin);
	return 1;
}

/* Reads what the relay answered before the connection ended; what stays
 * unanswered stays INFLIGHT (may or may not be stored). */
static void
collect_until_closed(struct sender *s)
{
	while (s->nin > 0 && collect(s, bvt_ms(BVT_TIMEOUT)) == 1)
		;
	s->nin = 0;
}

static int
total(int status)
{
	int i, j, n = 0;

	for (i = 0; i < NSEND; i++)
		for (j = 0; j < MAXMSG; j++)
			n += snd[i].status[j] == status;
	return n;
}

/* Sends until `oks` more answers were ok, for at most ms, or the
 * senders run out of message numbers. */
static void
pump(int oks, int ms)
{
	int64_t deadline = bvt_now_ms() + bvt_ms(ms);
	int goal = total(ANSWERED_OK) + oks, i;

	while (total(ANSWERED_OK) < goal && bvt_now_ms() < deadline) {
		int any = 0;

		for (i = 0; i < NSEND; i++)
			any += fill(&snd[i], i);
		for (i = 0; i < NSEND; i++)
			if (collect(&snd[i], bvt_ms(BVT_TIMEOUT)) < 0)
				fail_msg("sender %d: no answer while the relay "
					 "was up",
					 i);
		if (!any && snd[0].nin == 0)
			break;
	}
}

/* The recipient takes everything (acknowledging each) until queue_empty
 * and the queue table is empty. Counts deliveries per message. */
static void
drain(int port)
{
	struct bvt_conn *c = bvt_online(port, &rcpt);
	int64_t deadline;
	int k, n;

	assert_non_null(c);
	for (;;) {
		json_t *f = bvt_conn_next(c, NULL, bvt_ms(30000));
		const char *op = json_string_value(json_object_get(f, "op"));

		if (!f)
			fail_msg("recipient: nothing pushed (no queue_empty)");
		if (!strcmp(op, "queue_empty")) {
			json_decref(f);
			break;
		}
		if (!strcmp(op, "deliver")) {
			const char *mid = json_string_value(json_object_get(
				json_object_get(f, "envelope"), "message_id"));

			if (!mid || sscanf(mid, "s%d-%d", &k, &n) != 2 ||
			    k < 0 || k >= NSEND || n < 0 || n >= MAXMSG)
				fail_msg("unexpected delivery %s", bvt_js(f));
			if (snd[k].status[n] == UNSENT)
				fail_msg("delivered %s, never sent", mid);
			snd[k].delivered[n]++;
			assert_int_equal(bvt_ack(c, f), 0);
		}
		json_decref(f);
	}
	deadline = bvt_now_ms() + bvt_ms(30000);
	while (count("queue") != 0 && bvt_now_ms() < deadline) {
		json_t *f = bvt_next_deliver(c, 100);

		if (f) {
			const char *mid = json_string_value(json_object_get(
				json_object_get(f, "envelope"), "message_id"));

			if (mid && sscanf(mid, "s%d-%d", &k, &n) == 2 &&
			    k >= 0 && k < NSEND && n >= 0 && n < MAXMSG)
				snd[k].delivered[n]++;
			bvt_ack(c, f);
			json_decref(f);
		}
	}
	assert_int_equal(count("queue"), 0);
	bvt_conn_free(c);
}

/* Every ok answer delivered; prints the tally. */
static void
verify(const char *what)
{
	int i, j, lost = 0, dups = 0, unknown_stored = 0, unknown = 0;
	int ok = total(ANSWERED_OK), err = total(ANSWERED_ERR);

	for (i = 0; i < NSEND; i++) {
		for (j = 0; j < MAXMSG; j++) {
			struct sender *s = &snd[i];

			if (s->delivered[j] > 1)
				dups += s->delivered[j] - 1;
			if (s->status[j] == INFLIGHT) {
				unknown++;
				unknown_stored += s->delivered[j] > 0;
			}
			if (s->status[j] == ANSWERED_OK && !s->delivered[j]) {
				if (lost < 10)
					print_error("LOST: s%d-%d was answered "
						    "ok, never delivered\n",
						    i, j);
				lost++;
			}
		}
	}
	print_message("%s: %d ok, %d errors, %d unanswered (%d of them "
		      "stored), %d duplicate deliveries, %d lost\n",
		      what, ok, err, unknown, unknown_stored, dups, lost);
	assert_int_equal(lost, 0);
	assert_true(ok > 0);
}

#define ROUNDS 3

static void
t_kill9_under_load(void **state)
{
	int round, i, j;

	(void)state;
	for (round = 0; round < ROUNDS; round++) {
		if (round > 0)
			assert_int_equal(
				bvt_relay_start(&env.relay, env.db, relay_args),
				0);
		assert_int_equal(connect_all(env.relay.port), 0);
		pump(150, 5000);
		/* Top up so sends are in flight at the instant of the kill. */
		for (i = 0; i < NSEND; i++)
			fill(&snd[i], i);
		bvt_relay_kill(&env.relay);
		for (i = 0; i < NSEND; i++)
			collect_until_closed(&snd[i]);
	}
	/* No answer may have been an error while the relay was up. */
	for (i = 0; i < NSEND; i++)
		for (j = 0; j < MAXMSG; j++)
			if (snd[i].status[j] == ANSWERED_ERR)
				fail_msg("s%d-%d: %s", i, j, snd[i].err[j]);
	assert_int_equal(bvt_relay_start(&env.relay, env.db, relay_args), 0);
	drain(env.relay.port);
	verify("kill -9");
}

/* Waits until /healthz answers want; 0 or -1. */
static int
wait_health(int port, int want, int ms)
{
	int64_t deadline = bvt_now_ms() + bvt_ms(ms);

	while (bvt_now_ms() < deadline) {
		if (bvt_http_get(port, "/healthz", 2000, NULL) == want)
			return 0;
		bvt_sleep_ms(50);
	}
	return -1;
}

static void
t_postgres_restart_under_load(void **state)
{
	int i, j, unavailable = 0, others = 0, outage_sends = 0;
	int mark[NSEND];

	(void)state;
	assert_int_equal(connect_all(env.relay.port), 0);
	pump(100, 5000);
	/* Keep sends in flight while PostgreSQL goes down hard. */
	for (i = 0; i < NSEND; i++)
		fill(&snd[i], i);
	assert_int_equal(bvt_pg_stop("immediate"), 0);
	for (i = 0; i < NSEND; i++)
		while (collect(&snd[i], bvt_ms(BVT_TIMEOUT)) == 1)
			;
	if (wait_health(env.relay.port, 503, 15000) < 0)
		fail_msg("/healthz does not say 503 with the database down");

	/* Sends now must fail, retryably, with BV_EUNAVAILABLE. */
	for (i = 0; i < NSEND; i++)
		mark[i] = snd[i].next;
	for (j = 0; j < 3; j++) {
		for (i = 0; i < NSEND; i++) {
			outage_sends += fill(&snd[i], i);
			while (collect(&snd[i], bvt_ms(BVT_TIMEOUT)) == 1)
				;
			if (snd[i].nin)
				fail_msg("sender %d: no answer during the "
					 "outage",
					 i);
		}
	}
	for (i = 0; i < NSEND; i++) {
		for (j = mark[i]; j < snd[i].next; j++) {
			if (snd[i].status[j] == ANSWERED_ERR &&
			    !strcmp(snd[i].err[j], "BV_EUNAVAILABLE"))
				unavailable++;
			else
				others++;
		}
	}
	print_message("outage: %d sends, %d BV_EUNAVAILABLE, %d other\n",
		      outage_sends, unavailable, others);
	assert_true(outage_sends > 0);
	assert_int_equal(others, 0);

	/* PostgreSQL back: the relay reconnects by itself. */
	assert_int_equal(bvt_pg_start(), 0);
	if (wait_health(env.relay.port, 200, 60000) < 0)
		fail_msg("/healthz not 200 again after PostgreSQL came back");
	{
		/* The first sends after recovery may still race the
		 * reconnect; within the bound they must succeed. */
		int64_t deadline = bvt_now_ms() + bvt_ms(30000);
		int before = total(ANSWERED_OK);

		while (total(ANSWERED_OK) < before + 100 &&
		       bvt_now_ms() < deadline) {
			for (i = 0; i < NSEND; i++)
				fill(&snd[i], i);
			for (i = 0; i < NSEND; i++)
				if (collect(&snd[i], bvt_ms(BVT_TIMEOUT)) < 0)
					fail_msg("sender %d: connection lost",
						 i);
		}
		if (total(ANSWERED_OK) < before + 100)
			fail_msg("sends did not recover after the restart");
		for (i = 0; i < NSEND; i++)
			while (collect(&snd[i], bvt_ms(BVT_TIMEOUT)) == 1)
				;
	}
	/* Errors other than BV_EUNAVAILABLE are not expected anywhere. */
	for (i = 0; i < NSEND; i++)
		for (j = 0; j < MAXMSG; j++)
			if (snd[i].status[j] == ANSWERED_ERR &&
			    strcmp(snd[i].err[j], "BV_EUNAVAILABLE") != 0)
				fail_msg("s%d-%d: %s", i, j, snd[i].err[j]);
	drain(env.relay.port);
	verify("postgres restart");
}

static int
group_setup(void **state)
{
	(void)state;
	return bvt_pg_start();
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int
main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		T(t_kill9_under_load),
		T(t_postgres_restart_under_load),
	};
	/* clang-format on */

	bvt_open_case = 1; /* not about cases: any two accounts may talk */

	return bvt_done(cmocka_run_group_tests_name("07-durability", tests,
						    group_setup, NULL));
}
