/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 04-limits: every limit of docs/protocol.md's table that a client can hit:
 * frame size (whole and fragmented), envelope size, envelopes per send, the
 * send rate, queue length, connections per account and requests in
 * flight. Each refusal stores nothing and leaves the connection usable.
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

static struct bvt_env env;

static long long
count(const char *table)
{
	char sql[128];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
	return bvt_sql_int(env.db, sql, 0, NULL);
}

static int
teardown(void **state)
{
	(void)state;
	bvt_env_cleanup(&env);
	return 0;
}

static int
setup(void **state)
{
	(void)state;
	return bvt_env_init(&env, NULL);
}

static int
setup_rate(void **state)
{
	const char *args[] = {"--sends_per_minute", "5", NULL};

	(void)state;
	return bvt_env_init(&env, args);
}

static int
setup_queue(void **state)
{
	const char *args[] = {"--max_queue_per_device", "3", NULL};

	(void)state;
	return bvt_env_init(&env, args);
}

static int
setup_conns(void **state)
{
	const char *args[] = {"--max_connections_per_account", "1", NULL};

	(void)state;
	return bvt_env_init(&env, args);
}

static int
setup_busy(void **state)
{
	const char *args[] = {"--max_requests_in_flight", "1", NULL};

	(void)state;
	return bvt_env_init(&env, args);
}

static struct bvt_dev
account(void)
{
	struct bvt_dev d;

	if (bvt_new_account(env.relay.port, &env.tenant, &d) < 0)
		fail_msg("could not enroll an account");
	return d;
}

static void
assert_usable(struct bvt_conn *c)
{
	BVT_OK(bvt_request(c, json_pack("{s:s}", "op", "ping")));
}

/* A ping padded to exactly len bytes. */
static char *
padded_ping(int64_t id, size_t len)
{
	char head[64];
	int h = snprintf(head, sizeof(head),
			 "{\"id\":%lld,\"op\":\"ping\",\"pad\":\"",
			 (long long)id);
	char *s = malloc(len + 1);

	assert_non_null(s);
	assert_true(len > (size_t)h + 2);
	memcpy(s, head, (size_t)h);
	memset(s + h, 'x', len - (size_t)h - 2);
	memcpy(s + len - 2, "\"}", 2);
	s[len] = '\0';
	return s;
}

static void
t_frame_size(void **state)
{
	struct bvt_dev d = account();
	struct bvt_conn *c;
	char *big;
	json_t *r;

	(void)state;
	c = bvt_online(env.relay.port, &d);
	assert_non_null(c);

	/* One frame of 300000 bytes: refused, id unreadable. */
	big = padded_ping(900, 300000);
	assert_int_equal(bvt_conn_send_raw(c, big, strlen(big)), 0);
	r = bvt_conn_wait(c, -1, bvt_ms(BVT_TIMEOUT));
	bvt_assert_err(r, "BV_EFRAME");
	assert_true(json_is_null(json_object_get(r, "id")));
	json_decref(r);
	assert_usable(c);

	/* The same in 64 KiB fragments. */
	assert_int_equal(bvt_ws_send_fragmented(c->ws, BVT_WS_TEXT, big,
						strlen(big), 65536),
			 0);
	r = bvt_conn_wait(c, -1, bvt_ms(BVT_TIMEOUT));
	bvt_assert_err(r, "BV_EFRAME");
	json_decref(r);
	assert_usable(c);
	free(big);

	/* Just under the limit, with a 64-bit length header: fine. */
	big = padded_ping(901, 262144);
	assert_int_equal(bvt_conn_send_raw(c, big, strlen(big)), 0);
	r = bvt_conn_wait(c, 901, bvt_ms(BVT_TIMEOUT));
	bvt_assert_ok(r);
	json_decref(r);
	free(big);

	/* A small message in three fragments. */
	big = padded_ping(902, 3000);
	assert_int_equal(bvt_ws_send_fragmented(c->ws, BVT_WS_TEXT, big,
						strlen(big), 1000),
			 0);
	r = bvt_conn_wait(c, 902, bvt_ms(BVT_TIMEOUT));
	bvt_assert_ok(r);
	json_decref(r);
	free(big);

	/* WebSocket ping is answered with a pong. */
	assert_int_equal(bvt_ws_send(c->ws, BVT_WS_PING, "bvt", 3), 0);
	assert_usable(c);
	{
		int64_t deadline = bvt_now_ms() + bvt_ms(BVT_TIMEOUT);

		while (bvt_ws_pongs(c->ws) == 0 && bvt_now_ms() < deadline)
			bvt_conn_next(c, "nothing", 100);
		assert_true(bvt_ws_pongs(c->ws) >= 1);
	}
	bvt_conn_free(c);
}

static void
t_envelope_size(void **state)
{
	struct bvt_dev a = account(), b = account();
	struct bvt_conn *c;
	uint8_t *body;
	json_t *e;

	(void)state;
	c = bvt_online(env.relay.port, &a);
	assert_non_null(c);
	body = malloc(65537);
	assert_non_null(body);
	memset(body, 0xa5, 65537);
	e = json_array();
	json_array_append_new(e, bvt_envelope(&b, 1, body, 65537));
	BVT_ERR(bvt_send(c, "big", e), "BV_EENVELOPE");
	assert_int_equal(count("queue"), 0);
	assert_usable(c);
	/* An empty body is refused too. */
	e = json_array();
	json_array_append_new(e, bvt_envelope(&b, 1, "", 0));
	BVT_ERR(bvt_send(c, "empty", e), "BV_EENVELOPE");
	assert_int_equal(count("queue"), 0);
	/* Exactly max_envelope_bytes is fine. */
	e = json_array();
	json_array_append_new(e, bvt_envelope(&b, 1, body, 65536));
	BVT_OK(bvt_send(c, "max", e));
	assert_int_equal(count("queue"), 1);
	free(body);
	bvt_conn_free(c);
}

static void
t_too_many_envelopes(void **state)
{
	struct bvt_dev a = account(), b = account(), fake;
	struct bvt_conn *c;
	json_t *e;
	int i;

	(void)state;
	c = bvt_online(env.relay.port, &a);
	assert_non_null(c);
	e = json_array();
	fake = b;
	for (i = 1; i <= 101; i++) {
		fake.device = (uint32_t)i;
		json_array_append_new(e, bvt_envelope(&fake, 1, "x", 1));
	}
	BVT_ERR(bvt_send(c, "many", e), "BV_ETOOMANY");
	assert_int_equal(count("queue"), 0);
	assert_usable(c);
	bvt_conn_free(c);
}

/* Run with --sends_per_minute 5. */
static void
t_rate(void **state)
{
	struct bvt_dev a = account(), b = account();
	struct bvt_conn *c;
	const struct bvt_dev *to[] = {&b};
	char mid[16];
	json_t *r, *err;
	int i;

	(void)state;
	c = bvt_online(env.relay.port, &a);
	assert_non_null(c);
	for (i = 0; i < 5; i++) {
		snprintf(mid, sizeof(mid), "r%d", i);
		BVT_OK(bvt_send(c, mid, bvt_envelopes_to(to, 1, mid)));
	}
	r = bvt_send(c, "r5", bvt_envelopes_to(to, 1, "r5"));
	bvt_assert_err(r, "BV_ERATE");
	err = bvt_err(r);
	assert_true(json_is_true(json_object_get(err, "retryable")));
	assert_int_equal(json_integer_value(json_object_get(err, "errno")),
			 -34);
	assert_true(json_is_integer(json_object_get(err, "retry_after_ms")));
	assert_true(json_integer_value(json_object_get(err, "retry_after_ms")) >
		    0);
	json_decref(r);
	assert_int_equal(count("queue"), 5);
	assert_usable(c);
	bvt_conn_free(c);
}

/* Run with --max_queue_per_device 3. */
static void
t_queue_full(void **state)
{
	struct bvt_dev a = account(), b = account(), c1 = account();
	struct bvt_conn *c, *bc;
	const struct bvt_dev *to_b[] = {&b}, *to_bc[] = {&b, &c1};
	char mid[16];
	json_t *r, *dv;
	int i;

	(void)state;
	c = bvt_online(env.relay.port, &a);
	assert_non_null(c);
	for (i = 0; i < 3; i++) {
		snprintf(mid, sizeof(mid), "q%d", i);
		BVT_OK(bvt_send(c, mid, bvt_envelopes_to(to_b, 1, mid)));
	}
	r = bvt_send(c, "q3", bvt_envelopes_to(to_bc, 2, "q3"));
	bvt_assert_err(r, "BV_EQUEUE_FULL");
	assert_true(json_is_true(json_object_get(bvt_err(r), "retryable")));
	json_decref(r);
	/* Nothing stored, not even for the device whose queue had room. */
	assert_int_equal(count("queue"), 3);
	assert_usable(c);

	/* b takes one: there is room again. */
	bc = bvt_online(env.relay.port, &b);
	assert_non_null(bc);
	dv = bvt_next_deliver(bc, bvt_ms(BVT_TIMEOUT));
	if (!dv)
		fail_msg("b's backlog was not pushed");
	assert_int_equal(bvt_ack(bc, dv), 0);
	json_decref(dv);
	{
		int64_t deadline = bvt_now_ms() + bvt_ms(BVT_TIMEOUT);

		while (count("queue") != 2 && bvt_now_ms() < deadline)
			bvt_sleep_ms(20);
		if (count("queue") != 2)
			fail_msg("the acknowledged envelope was not deleted");
	}
	bvt_conn_free(bc);
	BVT_OK(bvt_send(c, "q3", bvt_envelopes_to(to_bc, 2, "q3")));
	assert_int_equal(count("queue"), 4);
	bvt_conn_free(c);
}

/* Run with --max_connections_per_account 1. */
static void
t_connection_limit(void **state)
{
	struct bvt_dev d1 = account(), d2;
	struct bvt_conn *c1, *c2 = NULL;
	json_t *r;
	int64_t deadline;

	(void)state;
	assert_int_equal(
		bvt_new_device(env.relay.port, &env.tenant, d1.account, &d2),
		0);
	c1 = bvt_online(env.relay.port, &d1);
	assert_non_null(c1);
	c2 = bvt_conn_open(env.relay.port);
	assert_non_null(c2);
	r = bvt_auth(c2, &d2);
	bvt_assert_err(r, "BV_ECONN_LIMIT");
	assert_true(json_is_true(json_object_get(bvt_err(r), "retryable")));
	json_decref(r);
	bvt_conn_free(c2);
	c2 = NULL;
	assert_usable(c1);

	/* Once the first is gone, the second gets in (retryable indeed). */
	bvt_conn_free(c1);
	deadline = bvt_now_ms() + bvt_ms(BVT_TIMEOUT);
	while (bvt_now_ms() < deadline) {
		c2 = bvt_conn_open(env.relay.port);
		assert_non_null(c2);
		r = bvt_auth(c2, &d2);
		if (bvt_ok(r)) {
			json_decref(r);
			break;
		}
		bvt_assert_err(r, "BV_ECONN_LIMIT");
		json_decref(r);
		bvt_conn_free(c2);
		c2 = NULL;
		bvt_sleep_ms(50);
	}
	assert_non_null(c2);
	assert_usable(c2);
	bvt_conn_free(c2);
}

/*
 * Run with --max_requests_in_flight 1: ten sends written in one go. Sends
 * wait for a commit, so while one is in flight the next ones should be
 * refused with BV_EBUSY. Whether they overlap depends on scheduling, so the
 * test only skips when none did; every request still gets exactly one
 * answer, and exactly the ok ones are stored.
 */
#define BURST 10

static void
t_busy(void **state)
{
	struct bvt_dev a = account(), b = account();
	struct bvt_conn *c;
	const struct bvt_dev *to[] = {&b};
	json_t *reqs[BURST];
	int64_t ids[BURST];
	char mid[16];
	int i, ok = 0, busy = 0;

	(void)state;
	c = bvt_online(env.relay.port, &a);
	assert_non_null(c);
	for (i = 0; i < BURST; i++) {
		snprintf(mid, sizeof(mid), "b%d", i);
		reqs[i] = bvt_send_req(mid, bvt_envelopes_to(to, 1, mid));
	}
	assert_int_equal(bvt_conn_submit_batch(c, reqs, BURST, ids), 0);
	for (i = 0; i < BURST; i++) {
		json_t *r = bvt_conn_wait(c, ids[i], bvt_ms(BVT_TIMEOUT));
		const char *code = bvt_err_code(r);

		assert_non_null(r);
		if (!code) {
			bvt_assert_ok(r);
			ok++;
		} else {
			bvt_assert_err(r, "BV_EBUSY");
			assert_true(json_is_true(
				json_object_get(bvt_err(r), "retryable")));
			busy++;
		}
		json_decref(r);
	}
	assert_int_equal(count("queue"), ok);
	assert_true(ok >= 1);
	assert_usable(c);
	bvt_conn_free(c);
	if (busy == 0)
		skip(); /* the relay answered each before reading the next */
}

static int
group_setup(void **state)
{
	(void)state;
	return bvt_pg_start();
}

#define T(f, s) cmocka_unit_test_setup_teardown(f, s, teardown)

int
main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		T(t_frame_size, setup),
		T(t_envelope_size, setup),
		T(t_too_many_envelopes, setup),
		T(t_rate, setup_rate),
		T(t_queue_full, setup_queue),
		T(t_connection_limit, setup_conns),
		T(t_busy, setup_busy),
	};
	/* clang-format on */

	bvt_open_case = 1; /* not about cases: any two accounts may talk */

	return bvt_done(cmocka_run_group_tests_name("04-limits", tests,
						    group_setup, NULL));
}
