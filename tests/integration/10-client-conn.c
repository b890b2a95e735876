/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 10-client-conn: libbvchat's relay connection (client-lib/src/conn.c) on
 * a libuv loop against real relays: enroll then auth, requests matched to
 * responses, deliver acknowledged only after the callback stored it (and
 * pushed again after a refusal), reconnect with bounded backoff after the
 * relay is killed and restarted, displacement reported and not retried.
 * Every loop run is bounded by a deadline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <uv.h>

#include "bv_error.h"
#include "bv_util.h"
#include "bvtest.h"
#include "conn.h"
#include "wire.h"

static struct bvt_env env;

struct ctx {
	uv_loop_t loop;
	uv_timer_t tick;
	struct bv_conn *c;
	const struct bvt_dev *me; /* for queue checks in on_deliver */
	unsigned connected, authed, disconnected, displaced, auth_failed;
	int last_code;
	unsigned queue_empty;
	unsigned delivers;
	int deliver_rc;		/* what on_deliver returns */
	long long queued_in_cb; /* the relay's queue while we held it */
	char last_mid[BV_MESSAGE_ID_MAX + 1];
	char last_body[64];
	int resp_rc;
	unsigned resps;
};

static long long
queued_for(const struct bvt_dev *d)
{
	char dev[16];
	const char *p[2] = {d->account, dev};

	snprintf(dev, sizeof(dev), "%u", d->device);
	return bvt_sql_int(env.db,
			   "SELECT count(*) FROM queue q JOIN devices d"
			   " ON d.id = q.device WHERE d.account_id = $1::uuid"
			   " AND d.device_id = $2::int",
			   2, p);
}

static void
on_event(void *ud, enum bv_conn_event ev, int code)
{
	struct ctx *x = ud;

	x->last_code = code;
	switch (ev) {
	case BV_CONN_CONNECTED:
		x->connected++;
		break;
	case BV_CONN_AUTHED:
		x->authed++;
		break;
	case BV_CONN_DISCONNECTED:
		x->disconnected++;
		break;
	case BV_CONN_DISPLACED:
		x->displaced++;
		break;
	case BV_CONN_AUTH_FAILED:
		x->auth_failed++;
		break;
	}
}

static int
on_deliver(void *ud, const struct bv_wire_msg *m)
{
	struct ctx *x = ud;
	size_t n = m->u.deliver.body_len;

	x->delivers++;
	/* Not acknowledged yet: the relay still holds it. */
	x->queued_in_cb = x->me ? queued_for(x->me) : -1;
	snprintf(x->last_mid, sizeof(x->last_mid), "%s",
		 m->u.deliver.message_id);
	if (n >= sizeof(x->last_body))
		n = sizeof(x->last_body) - 1;
	memcpy(x->last_body, m->u.deliver.body, n);
	x->last_body[n] = '\0';
	return x->deliver_rc;
}

static void
on_queue_empty(void *ud)
{
	((struct ctx *)ud)->queue_empty++;
}

static void
on_response(void *arg, int rc, const struct bv_wire_msg *m)
{
	struct ctx *x = arg;

	(void)m;
	x->resp_rc = rc;
	x->resps++;
}

static void
tick(uv_timer_t *t)
{
	(void)t; /* only makes UV_RUN_ONCE return */
}

/* Runs the loop until *counter >= want or ms passed; returns 1 if reached. */
static int
run_until(struct ctx *x, const unsigned *counter, unsigned want, int ms)
{
	int64_t deadline = bvt_now_ms() + bvt_ms(ms);

	while (*counter < want && bvt_now_ms() < deadline)
		uv_run(&x->loop, UV_RUN_ONCE);
	return *counter >= want;
}

static void
run_for(struct ctx *x, int ms)
{
	int64_t deadline = bvt_now_ms() + ms;

	while (bvt_now_ms() < deadline)
		uv_run(&x->loop, UV_RUN_ONCE);
}

static void
ctx_init(struct ctx *x, int port, uint32_t bmin, uint32_t bmax)
{
	struct bv_conn_cfg cfg;
	struct bv_conn_cbs cbs;

	memset(x, 0, sizeof(*x));
	assert_int_equal(uv_loop_init(&x->loop), 0);
	uv_timer_init(&x->loop, &x->tick);
	uv_timer_start(&x->tick, tick, 5, 5);
	memset(&cfg, 0, sizeof(cfg));
	cfg.host = "127.0.0.1";
	cfg.port = port;
	cfg.loop = &x->loop;
	cfg.backoff_min_ms = bmin;
	cfg.backoff_max_ms = bmax;
	cfg.connect_timeout_s = 5;
	memset(&cbs, 0, sizeof(cbs));
	cbs.ud = x;
	cbs.on_event = on_event;
	cbs.on_deliver = on_deliver;
	cbs.on_queue_empty = on_queue_empty;
	assert_int_equal(conn__new(&cfg, &cbs, &x->c), 0);
}

static void
ctx_cleanup(struct ctx *x)
{
	int64_t deadline;

	conn__close(x->c);
	uv_timer_stop(&x->tick);
	uv_close((uv_handle_t *)&x->tick, NULL);
	deadline = bvt_now_ms() + bvt_ms(BVT_TIMEOUT);
	while (uv_run(&x->loop, UV_RUN_NOWAIT) && bvt_now_ms() < deadline)
		bvt_sleep_ms(1);
	conn__free(x->c);
	x->c = NULL;
	deadline = bvt_now_ms() + bvt_ms(BVT_TIMEOUT);
	while (uv_run(&x->loop, UV_RUN_NOWAIT) && bvt_now_ms() < deadline)
		bvt_sleep_ms(1);
	assert_int_equal(uv_loop_close(&x->loop), 0);
}

/* Connects x (already given credentials) and waits for auth and the end
 * of the backlog. */
static void
online(struct ctx *x)
{
	unsigned a = x->authed, q = x->queue_empty;

	assert_int_equal(conn__start(x->c), 0);
	if (!run_until(x, &x->authed, a + 1, BVT_TIMEOUT))
		fail_msg("not authenticated (auth_failed %u, code %d)",
			 x->auth_failed, x->last_code);
	if (!run_until(x, &x->queue_empty, q + 1, BVT_TIMEOUT))
		fail_msg("no queue_empty");
}

static void
ping(struct ctx *x)
{
	unsigned n = x->resps;
	int64_t id = conn__next_id(x->c);
	char *frame = NULL;

	assert_int_equal(bv_wire_build_ping(id, &frame), 0);
	assert_int_equal(conn__request(x->c, id, frame, on_response, x), 0);
	bv_free(frame);
	assert_true(run_until(x, &x->resps, n + 1, BVT_TIMEOUT));
	assert_int_equal(x->resp_rc, 0);
}

/* The sender S sends one envelope to R over the blocking test client. */
static void
send_one(const struct bvt_dev *s, const struct bvt_dev *r, const char *mid,
	 const char *body)
{
	struct bvt_conn *c = bvt_online(env.relay.port, s);
	json_t *envs;

	assert_non_null(c);
	envs = json_array();
	json_array_append_new(envs, bvt_envelope(r, 1, body, strlen(body)));
	BVT_OK(bvt_send(c, mid, envs));
	bvt_conn_free(c);
}

static int
setup(void **state)
{
	(void)state;
	return bvt_env_init(&env, NULL);
}

static int
teardown(void **state)
{
	(void)state;
	bvt_env_cleanup(&env);
	return 0;
}

static void
t_enroll_then_auth(void **state)
{
	struct ctx x;
	struct bvt_dev d;
	struct bv_conn_stats st;
	char *token;
	char *frame = NULL;
	unsigned disc;

	(void)state;
	memset(&d, 0, sizeof(d));
	bvt_dev_keygen(&d);
	token = bvt_token(&env.tenant, NULL);
	assert_non_null(token);
	ctx_init(&x, env.relay.port, 50, 400);

	/* Not authenticated: requests are refused at once, retryable. */
	assert_int_equal(conn__start(x.c), BV_EINVAL);
	assert_int_equal(bv_wire_build_ping(1, &frame), 0);
	assert_int_equal(conn__request(x.c, 1, frame, on_response, &x),
			 BV_EUNAVAILABLE);
	bv_free(frame);

	assert_int_equal(
		conn__set_enroll(x.c, token, d.regid, d.identity, d.auth_sk, 0),
		0);
	free(token);
	online(&x);
	assert_true(bv_uuid_valid(conn__account(x.c)));
	assert_int_equal(conn__device(x.c), 1);
	assert_true(conn__ready(x.c));
	ping(&x);

	/* Stop, then start again: now by auth with what enroll gave. */
	disc = x.disconnected;
	conn__stop(x.c);
	assert_true(run_until(&x, &x.disconnected, disc + 1, BVT_TIMEOUT));
	assert_false(conn__ready(x.c));
	online(&x);
	ping(&x);
	conn__stats(x.c, &st);
	assert_int_equal(st.connects, 2);
	assert_int_equal(st.authed, 2);
	assert_int_equal(x.auth_failed, 0);
	snprintf(d.account, sizeof(d.account), "%s", conn__account(x.c));
	d.device = conn__device(x.c);
	ctx_cleanup(&x);

	/* A fresh object, as after an app restart: conn__set_auth. */
	ctx_init(&x, env.relay.port, 50, 400);
	assert_int_equal(conn__set_auth(x.c, d.account, d.device, d.auth_sk),
			 0);
	online(&x);
	ping(&x);
	ctx_cleanup(&x);
}

static void
t_auth_and_bad_key(void **state)
{
	struct ctx x;
	struct bvt_dev d, bad;
	struct bv_conn_stats st;

	(void)state;
	memset(&d, 0, sizeof(d));
	assert_int_equal(bvt_new_account(env.relay.port, &env.tenant, &d), 0);
	ctx_init(&x, env.relay.port, 50, 400);
	assert_int_equal(conn__set_auth(x.c, d.account, d.device, d.auth_sk),
			 0);
	online(&x);
	ping(&x);
	ctx_cleanup(&x);

	/* A key the relay does not know: reported, not retried. */
	bad = d;
	bvt_dev_keygen(&bad);
	ctx_init(&x, env.relay.port, 50, 400);
	assert_int_equal(
		conn__set_auth(x.c, bad.account, bad.device, bad.auth_sk), 0);
	assert_int_equal(conn__start(x.c), 0);
	assert_true(run_until(&x, &x.auth_failed, 1, BVT_TIMEOUT));
	assert_int_equal(x.last_code, BV_EAUTH);
	run_for(&x, 500);
	conn__stats(x.c, &st);
	assert_int_equal(st.connects, 1);
	assert_int_equal(x.authed, 0);
	assert_int_equal(x.disconnected, 0);
	ctx_cleanup(&x);
}

static void
t_deliver_ack_after_store(void **state)
{
	struct ctx x;
	struct bvt_dev r, s;
	struct bv_conn_stats st;
	unsigned disc;
	int64_t deadline;

	(void)state;
	memset(&r, 0, sizeof(r));
	memset(&s, 0, sizeof(s));
	assert_int_equal(bvt_new_account(env.relay.port, &env.tenant, &r), 0);
	assert_int_equal(bvt_new_account(env.relay.port, &env.tenant, &s), 0);
	ctx_init(&x, env.relay.port, 50, 400);
	x.me = &r;
	assert_int_equal(conn__set_auth(x.c, r.account, r.device, r.auth_sk),
			 0);
	online(&x);

	/* Refused by the callback: answered with an error, stays queued. */
	x.deliver_rc = BV_EINTERNAL;
	send_one(&s, &r, "m-refused", "hello");
	assert_true(run_until(&x, &x.delivers, 1, BVT_TIMEOUT));
	assert_string_equal(x.last_mid, "m-refused");
	assert_string_equal(x.last_body, "hello");
	assert_int_equal(x.queued_in_cb, 1);
	run_for(&x, 300);
	conn__stats(x.c, &st);
	assert_int_equal(st.refused, 1);
	assert_int_equal(st.acks, 0);
	assert_int_equal(queued_for(&r), 1);

	/* Next connection: pushed again; stored this time, then acked. */
	disc = x.disconnected;
	conn__stop(x.c);
	assert_true(run_until(&x, &x.disconnected, disc + 1, BVT_TIMEOUT));
	x.deliver_rc = 0;
	assert_int_equal(conn__start(x.c), 0);
	assert_true(run_until(&x, &x.delivers, 2, BVT_TIMEOUT));
	assert_string_equal(x.last_mid, "m-refused");
	assert_int_equal(x.queued_in_cb, 1);
	deadline = bvt_now_ms() + bvt_ms(BVT_TIMEOUT);
	while (queued_for(&r) != 0 && bvt_now_ms() < deadline)
		run_for(&x, 20);
	assert_int_equal(queued_for(&r), 0);
	conn__stats(x.c, &st);
	assert_int_equal(st.acks, 1);

	/* A live push while connected. */
	send_one(&s, &r, "m-live", "again");
	assert_true(run_until(&x, &x.delivers, 3, BVT_TIMEOUT));
	assert_string_equal(x.last_mid, "m-live");
	assert_string_equal(x.last_body, "again");
	assert_int_equal(x.queued_in_cb, 1);
	deadline = bvt_now_ms() + bvt_ms(BVT_TIMEOUT);
	while (queued_for(&r) != 0 && bvt_now_ms() < deadline)
		run_for(&x, 20);
	assert_int_equal(queued_for(&r), 0);
	ctx_cleanup(&x);
}

static void
t_bounds(void **state)
{
	struct ctx x;
	struct bvt_dev r;
	char *frame = NULL, *big;
	int64_t id;
	unsigned i;

	(void)state;
	memset(&r, 0, sizeof(r));
	assert_int_equal(bvt_new_account(env.relay.port, &env.tenant, &r), 0);
	ctx_init(&x, env.relay.port, 50, 400);
	assert_int_equal(conn__set_auth(x.c, r.account, r.device, r.auth_sk),
			 0);
	online(&x);

	/* max_in_flight (64, the relay's max_requests_in_flight). */
	for (i = 0; i < 64; i++) {
		id = conn__next_id(x.c);
		assert_int_equal(bv_wire_build_ping(id, &frame), 0);
		assert_int_equal(conn__request(x.c, id, frame, on_response, &x),
				 0);
		bv_free(frame);
	}
	id = conn__next_id(x.c);
	assert_int_equal(bv_wire_build_ping(id, &frame), 0);
	assert_int_equal(conn__request(x.c, id, frame, on_response, &x),
			 BV_EBUSY);
	bv_free(frame);
	assert_true(run_until(&x, &x.resps, 64, BVT_TIMEOUT));
	assert_int_equal(x.resp_rc, 0);

	/* Larger than the challenge's max_frame_bytes: refused locally. */
	big = malloc(262144 + 2);
	assert_non_null(big);
	memset(big, 'x', 262144 + 1);
	big[262144 + 1] = '\0';
	assert_int_equal(
		conn__request(x.c, conn__next_id(x.c), big, on_response, &x),
		BV_EFRAME);
	free(big);
	ping(&x);
	ctx_cleanup(&x);
}

static void
t_relay_restart(void **state)
{
	struct ctx x;
	struct bvt_dev r;
	struct bv_conn_stats st;
	unsigned connects;
	int64_t t0;

	(void)state;
	memset(&r, 0, sizeof(r));
	assert_int_equal(bvt_new_account(env.relay.port, &env.tenant, &r), 0);
	ctx_init(&x, env.relay.port, 50, 400);
	assert_int_equal(conn__set_auth(x.c, r.account, r.device, r.auth_sk),
			 0);
	online(&x);

	/* A request in flight when the relay dies fails, retryably. */
	{
		int64_t id = conn__next_id(x.c);
		char *frame = NULL;

		assert_int_equal(bv_wire_build_ping(id, &frame), 0);
		assert_int_equal(conn__request(x.c, id, frame, on_response, &x),
				 0);
		bv_free(frame);
	}
	bvt_relay_kill(&env.relay);
	assert_true(run_until(&x, &x.disconnected, 1, BVT_TIMEOUT));
	assert_int_equal(x.resps, 1);
	assert_int_equal(x.resp_rc, BV_EUNAVAILABLE);
	assert_false(conn__ready(x.c));
	/* Attempts keep failing, each after a bounded, growing delay. */
	assert_true(run_until(&x, &x.disconnected, 4, BVT_TIMEOUT));
	conn__stats(x.c, &st);
	assert_true(st.connects >= 4);
	assert_true(st.attempt >= 3);
	assert_true(st.last_delay >= 50 && st.last_delay <= 400);
	/* 3 delays of at most 50, 100, 200 ms (plus refusals) did not take
	 * more than a few seconds, and none was below the minimum. */

	/* The relay comes back (the harness gives it a new port). */
	assert_int_equal(bvt_relay_start(&env.relay, env.db, NULL), 0);
	assert_int_equal(conn__set_relay(x.c, "127.0.0.1", env.relay.port), 0);
	t0 = bvt_now_ms();
	assert_true(run_until(&x, &x.authed, 2, BVT_TIMEOUT));
	/* At most backoff_max_ms plus a connect. */
	assert_true(bvt_now_ms() - t0 < 400 + bvt_ms(3000));
	conn__stats(x.c, &st);
	assert_int_equal(st.attempt, 0);
	connects = st.connects;
	ping(&x);
	assert_int_equal(connects, st.connects);
	ctx_cleanup(&x);
}

static void
t_displaced(void **state)
{
	struct ctx x;
	struct bvt_dev r;
	struct bvt_conn *other;
	struct bv_conn_stats st;

	(void)state;
	memset(&r, 0, sizeof(r));
	assert_int_equal(bvt_new_account(env.relay.port, &env.tenant, &r), 0);
	ctx_init(&x, env.relay.port, 50, 400);
	assert_int_equal(conn__set_auth(x.c, r.account, r.device, r.auth_sk),
			 0);
	online(&x);

	/* Another install of the same device connects. */
	other = bvt_online(env.relay.port, &r);
	assert_non_null(other);
	assert_true(run_until(&x, &x.displaced, 1, BVT_TIMEOUT));
	assert_int_equal(x.last_code, 4001);
	/* Well past backoff_max_ms: no reconnect, no second report. */
	run_for(&x, 1500);
	conn__stats(x.c, &st);
	assert_int_equal(st.connects, 1);
	assert_int_equal(x.displaced, 1);
	assert_int_equal(x.authed, 1);
	assert_int_equal(x.disconnected, 0);
	assert_false(conn__ready(x.c));
	bvt_conn_free(other);

	/* The caller may take over again explicitly. */
	online(&x);
	ctx_cleanup(&x);
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
		T(t_enroll_then_auth),
		T(t_auth_and_bad_key),
		T(t_deliver_ack_after_store),
		T(t_bounds),
		T(t_relay_restart),
		T(t_displaced),
	};
	/* clang-format on */

	/* The connection layer, not cases: any two accounts may talk. */
	bvt_open_case = 1;

	return bvt_done(cmocka_run_group_tests_name("10-client-conn", tests,
						    group_setup, NULL));
}
