/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 03-send: send, deliver and acknowledge between two accounts of two
 * devices each: at-least-once delivery, backlog order and queue_empty, the
 * exact 409 and 410 answers, displacement, reachability, and that nothing
 * is pushed before its transaction committed.
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

/* Account A with devices a1, a2; account B with b1, b2. */
struct world {
	struct bvt_dev a1, a2, b1, b2;
};

static long long
count(const char *table)
{
	char sql[128];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
	return bvt_sql_int(env.db, sql, 0, NULL);
}

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

/* Waits (bounded) until the queue table holds n rows. */
static void
wait_queue_total(long long n)
{
	int64_t deadline = bvt_now_ms() + bvt_ms(BVT_TIMEOUT);
	long long got;

	while ((got = count("queue")) != n && bvt_now_ms() < deadline)
		bvt_sleep_ms(20);
	if (got != n)
		fail_msg("queue holds %lld rows, want %lld", got, n);
}

static void
wait_queued_for(const struct bvt_dev *d, long long n)
{
	int64_t deadline = bvt_now_ms() + bvt_ms(BVT_TIMEOUT);
	long long got;

	while ((got = queued_for(d)) != n && bvt_now_ms() < deadline)
		bvt_sleep_ms(20);
	if (got != n)
		fail_msg("queue of %u holds %lld rows, want %lld", d->device,
			 got, n);
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
make_world(struct world *w)
{
	int p = env.relay.port;

	if (bvt_new_account(p, &env.tenant, &w->a1) < 0 ||
	    bvt_new_device(p, &env.tenant, w->a1.account, &w->a2) < 0 ||
	    bvt_new_account(p, &env.tenant, &w->b1) < 0 ||
	    bvt_new_device(p, &env.tenant, w->b1.account, &w->b2) < 0)
		fail_msg("could not enroll the test accounts");
}

/* Everyone a1 must address. */
static json_t *
to_all(const struct world *w, const char *mid)
{
	const struct bvt_dev *to[] = {&w->b1, &w->b2, &w->a2};

	return bvt_envelopes_to(to, 3, mid);
}

static struct bvt_conn *
online_settled(const struct bvt_dev *d)
{
	struct bvt_conn *c = bvt_online(env.relay.port, d);
	json_t *ev;

	if (!c)
		fail_msg("auth failed");
	ev = bvt_conn_next(c, "queue_empty", bvt_ms(BVT_TIMEOUT));
	if (!ev)
		fail_msg("no queue_empty");
	json_decref(ev);
	return c;
}

/* The next deliver or queue_empty: prekeys_low events (the test devices
 * never upload prekeys) are skipped. */
static json_t *
next_push(struct bvt_conn *c)
{
	int64_t deadline = bvt_now_ms() + bvt_ms(BVT_TIMEOUT);

	while (bvt_now_ms() < deadline) {
		json_t *f =
			bvt_conn_next(c, NULL, (int)(deadline - bvt_now_ms()));
		const char *op = json_string_value(json_object_get(f, "op"));

		if (!f)
			break;
		if (op && strcmp(op, "prekeys_low") == 0) {
			json_decref(f);
			continue;
		}
		return f;
	}
	fail_msg("nothing pushed");
	return NULL;
}

static json_int_t
sent_ok(json_t *resp)
{
	json_t *ts = json_object_get(bvt_ok(resp), "timestamp");

	if (!json_is_integer(ts) || json_integer_value(ts) <= 0)
		fail_msg("send: %s", bvt_js(resp));
	return json_integer_value(ts);
}

/* Checks a deliver request: who sent it, which message, and that the body
 * is the one addressed to `to`. ts 0 skips the timestamp. */
static void
check_deliver(const json_t *dv, const struct bvt_dev *from, const char *mid,
	      const struct bvt_dev *to, json_int_t ts)
{
	json_t *e = json_object_get(dv, "envelope");
	char want[256];
	uint8_t body[512];
	size_t n = 0;

	if (!dv)
		fail_msg("no deliver for %s", mid);
	assert_true(json_is_integer(json_object_get(dv, "id")));
	assert_true(json_is_object(e));
	assert_string_equal(json_string_value(json_object_get(e, "sender")),
			    from->account);
	assert_int_equal(
		json_integer_value(json_object_get(e, "sender_device")),
		from->device);
	assert_string_equal(json_string_value(json_object_get(e, "message_id")),
			    mid);
	assert_int_equal(json_integer_value(json_object_get(e, "type")), 1);
	if (ts)
		assert_int_equal(
			json_integer_value(json_object_get(e, "timestamp")),
			ts);
	assert_int_equal(
		bvt_unb64(json_string_value(json_object_get(e, "body")), body,
			  sizeof(body) - 1, &n),
		0);
	body[n] = '\0';
	snprintf(want, sizeof(want), "%s/%s/%u", mid, to->account, to->device);
	assert_string_equal((char *)body, want);
}

static void
t_send_deliver_ack(void **state)
{
	struct world w;
	struct bvt_conn *a1, *a2, *b1, *b2;
	json_int_t ts;
	json_t *dv, *r;
	char mid[32];
	int i;

	(void)state;
	make_world(&w);
	b1 = online_settled(&w.b1);
	b2 = online_settled(&w.b2);
	a2 = online_settled(&w.a2);
	a1 = online_settled(&w.a1);
	r = bvt_send(a1, "m1", to_all(&w, "m1"));
	ts = sent_ok(r);
	json_decref(r);

	dv = bvt_next_deliver(b1, bvt_ms(BVT_TIMEOUT));
	check_deliver(dv, &w.a1, "m1", &w.b1, ts);
	assert_int_equal(bvt_ack(b1, dv), 0);
	json_decref(dv);
	dv = bvt_next_deliver(b2, bvt_ms(BVT_TIMEOUT));
	check_deliver(dv, &w.a1, "m1", &w.b2, ts);
	assert_int_equal(bvt_ack(b2, dv), 0);
	json_decref(dv);
	dv = bvt_next_deliver(a2, bvt_ms(BVT_TIMEOUT));
	check_deliver(dv, &w.a1, "m1", &w.a2, ts);
	assert_int_equal(bvt_ack(a2, dv), 0);
	json_decref(dv);
	/* The sender gets no copy. */
	assert_null(bvt_next_deliver(a1, 300));
	wait_queue_total(0);

	/* Sequential sends arrive live in order. */
	for (i = 0; i < 5; i++) {
		snprintf(mid, sizeof(mid), "seq-%d", i);
		r = bvt_send(a1, mid, to_all(&w, mid));
		sent_ok(r);
		json_decref(r);
	}
	for (i = 0; i < 5; i++) {
		snprintf(mid, sizeof(mid), "seq-%d", i);
		dv = bvt_next_deliver(b1, bvt_ms(BVT_TIMEOUT));
		check_deliver(dv, &w.a1, mid, &w.b1, 0);
		assert_int_equal(bvt_ack(b1, dv), 0);
		json_decref(dv);
	}
	bvt_conn_free(a1);
	bvt_conn_free(a2);
	bvt_conn_free(b1);
	bvt_conn_free(b2);
}

/* An envelope stays queued until acknowledged, and is pushed again. */
static void
t_unacked_redelivered(void **state)
{
	struct world w;
	struct bvt_conn *a1, *b1;
	json_int_t ts;
	json_t *dv, *first;

	(void)state;
	make_world(&w);
	b1 = online_settled(&w.b1);
	a1 = online_settled(&w.a1);
	dv = bvt_send(a1, "keep", to_all(&w, "keep"));
	ts = sent_ok(dv);
	json_decref(dv);
	dv = bvt_next_deliver(b1, bvt_ms(BVT_TIMEOUT));
	check_deliver(dv, &w.a1, "keep", &w.b1, ts);
	json_decref(dv);
	bvt_conn_free(b1); /* no ack */
	assert_int_equal(queued_for(&w.b1), 1);

	b1 = bvt_online(env.relay.port, &w.b1);
	assert_non_null(b1);
	first = next_push(b1);
	assert_string_equal(json_string_value(json_object_get(first, "op")),
			    "deliver");
	check_deliver(first, &w.a1, "keep", &w.b1, ts);
	/* An error answer leaves it queued too. */
	{
		json_t *e = json_pack("{s:O, s:{s:s, s:i, s:b, s:s}}", "id",
				      json_object_get(first, "id"), "error",
				      "code", "BV_EINTERNAL", "errno", -3,
				      "retryable", 0, "message", "disk full");

		assert_int_equal(bvt_conn_send_json(b1, e), 0);
		json_decref(e);
	}
	json_decref(first);
	dv = next_push(b1);
	assert_string_equal(json_string_value(json_object_get(dv, "op")),
			    "queue_empty");
	json_decref(dv);
	bvt_conn_free(b1);
	assert_int_equal(queued_for(&w.b1), 1);

	b1 = bvt_online(env.relay.port, &w.b1);
	assert_non_null(b1);
	dv = bvt_next_deliver(b1, bvt_ms(BVT_TIMEOUT));
	check_deliver(dv, &w.a1, "keep", &w.b1, ts);
	assert_int_equal(bvt_ack(b1, dv), 0);
	json_decref(dv);
	wait_queued_for(&w.b1, 0);
	bvt_conn_free(b1);

	/* Acknowledged: not pushed again. */
	b1 = bvt_online(env.relay.port, &w.b1);
	assert_non_null(b1);
	dv = next_push(b1);
	assert_string_equal(json_string_value(json_object_get(dv, "op")),
			    "queue_empty");
	json_decref(dv);
	assert_null(bvt_next_deliver(b1, 300));
	bvt_conn_free(b1);
	bvt_conn_free(a1);
}

#define BACKLOG 20

static void
t_backlog_in_order(void **state)
{
	struct world w;
	struct bvt_conn *a1, *b1;
	char mid[32];
	int i;

	(void)state;
	make_world(&w);
	a1 = online_settled(&w.a1);
	for (i = 0; i < BACKLOG; i++) {
		json_t *r;

		snprintf(mid, sizeof(mid), "backlog-%02d", i);
		r = bvt_send(a1, mid, to_all(&w, mid));
		sent_ok(r);
		json_decref(r);
	}
	assert_int_equal(queued_for(&w.b1), BACKLOG);
	b1 = bvt_online(env.relay.port, &w.b1);
	assert_non_null(b1);
	for (i = 0; i < BACKLOG; i++) {
		json_t *f = next_push(b1);
		const char *op = json_string_value(json_object_get(f, "op"));

		snprintf(mid, sizeof(mid), "backlog-%02d", i);
		if (!op || strcmp(op, "deliver") != 0)
			fail_msg("push %d: want deliver %s, got %s", i, mid,
				 bvt_js(f));
		check_deliver(f, &w.a1, mid, &w.b1, 0);
		assert_int_equal(bvt_ack(b1, f), 0);
		json_decref(f);
	}
	{
		json_t *f = next_push(b1);

		assert_string_equal(json_string_value(json_object_get(f, "op")),
				    "queue_empty");
		json_decref(f);
	}
	wait_queued_for(&w.b1, 0);
	assert_int_equal(queued_for(&w.b2), BACKLOG);
	bvt_conn_free(b1);
	bvt_conn_free(a1);
}

/* {"account": a, "devices": [...]} lists, compared as sets. */
static int
has_entry(const json_t *list, const char *account, const int *devs, size_t n)
{
	size_t i, j, k;

	for (i = 0; i < json_array_size(list); i++) {
		json_t *e = json_array_get(list, i), *d;

		const char *a =
			json_string_value(json_object_get(e, "account"));

		if (!a || strcmp(a, account) != 0)
			continue;
		d = json_object_get(e, "devices");
		if (json_array_size(d) != n)
			return 0;
		for (j = 0; j < n; j++) {
			for (k = 0; k < n; k++)
				if (json_integer_value(json_array_get(d, k)) ==
				    devs[j])
					break;
			if (k == n)
				return 0;
		}
		return 1;
	}
	return 0;
}

static void
t_409(void **state)
{
	struct world w;
	struct bvt_conn *a1;
	struct bvt_dev b9;
	json_t *r, *err, *env_;
	const int two[] = {2}, nine[] = {9};

	(void)state;
	make_world(&w);
	a1 = online_settled(&w.a1);
	/* Missing b2, extra b9. */
	b9 = w.b1;
	b9.device = 9;
	{
		const struct bvt_dev *to[] = {&w.b1, &b9, &w.a2};

		env_ = bvt_envelopes_to(to, 3, "m409");
	}
	r = bvt_send(a1, "m409", env_);
	bvt_assert_err(r, "BV_EDEVICES");
	err = bvt_err(r);
	assert_int_equal(json_integer_value(json_object_get(err, "errno")),
			 -31);
	assert_true(json_is_false(json_object_get(err, "retryable")));
	if (json_array_size(json_object_get(err, "missing")) != 1 ||
	    !has_entry(json_object_get(err, "missing"), w.b1.account, two, 1))
		fail_msg("missing should be B:[2]: %s", bvt_js(r));
	if (json_array_size(json_object_get(err, "extra")) != 1 ||
	    !has_entry(json_object_get(err, "extra"), w.b1.account, nine, 1))
		fail_msg("extra should be B:[9]: %s", bvt_js(r));
	json_decref(r);
	assert_int_equal(count("queue"), 0);

	/* Corrected, it goes through. */
	r = bvt_send(a1, "m409", to_all(&w, "m409"));
	sent_ok(r);
	json_decref(r);
	assert_int_equal(count("queue"), 3);
	bvt_conn_free(a1);
}

/* "For the sender's own account, that means every device except the
 * sending one": the sender's other devices are always recipients. */
static void
t_sender_devices(void **state)
{
	struct world w;
	struct bvt_conn *a1;
	json_t *r, *err, *env_;
	const int two[] = {2}, one[] = {1};

	(void)state;
	make_world(&w);
	a1 = online_settled(&w.a1);
	/* The sending device itself is extra, a2 is missing. */
	{
		const struct bvt_dev *to[] = {&w.b1, &w.b2, &w.a1};

		env_ = bvt_envelopes_to(to, 3, "mself");
	}
	r = bvt_send(a1, "mself", env_);
	bvt_assert_err(r, "BV_EDEVICES");
	err = bvt_err(r);
	if (json_array_size(json_object_get(err, "missing")) != 1 ||
	    !has_entry(json_object_get(err, "missing"), w.a1.account, two, 1))
		fail_msg("missing should be A:[2]: %s", bvt_js(r));
	if (json_array_size(json_object_get(err, "extra")) != 1 ||
	    !has_entry(json_object_get(err, "extra"), w.a1.account, one, 1))
		fail_msg("extra should be A:[1]: %s", bvt_js(r));
	json_decref(r);

	/* Only the other account named: a2 is still required. */
	{
		const struct bvt_dev *to[] = {&w.b1, &w.b2};

		env_ = bvt_envelopes_to(to, 2, "mnoa2");
	}
	r = bvt_send(a1, "mnoa2", env_);
	bvt_assert_err(r, "BV_EDEVICES");
	err = bvt_err(r);
	if (json_array_size(json_object_get(err, "missing")) != 1 ||
	    !has_entry(json_object_get(err, "missing"), w.a1.account, two, 1))
		fail_msg("missing should be A:[2]: %s", bvt_js(r));
	assert_int_equal(json_array_size(json_object_get(err, "extra")), 0);
	json_decref(r);
	assert_int_equal(count("queue"), 0);
	bvt_conn_free(a1);
}

/* A device enrolled a moment ago is required at once: its enrollment was
 * answered before the send was made. */
static void
t_new_device_required_at_once(void **state)
{
	struct world w;
	struct bvt_conn *a1;
	struct bvt_dev b3;
	json_t *r;
	const int three[] = {3};
	int i;

	(void)state;
	make_world(&w);
	a1 = online_settled(&w.a1);
	for (i = 0; i < 3; i++) {
		char mid[16];

		/* The relay now knows B's devices... */
		snprintf(mid, sizeof(mid), "warm%d", i);
		r = bvt_send(a1, mid, to_all(&w, mid));
		sent_ok(r);
		json_decref(r);
	}
	/* ...and B gets a third. */
	assert_int_equal(
		bvt_new_device(env.relay.port, &env.tenant, w.b1.account, &b3),
		0);
	r = bvt_send(a1, "without-b3", to_all(&w, "without-b3"));
	bvt_assert_err(r, "BV_EDEVICES");
	if (!has_entry(json_object_get(bvt_err(r), "missing"), w.b1.account,
		       three, 1))
		fail_msg("missing should be B:[3]: %s", bvt_js(r));
	json_decref(r);
	bvt_conn_free(a1);
}

static void
t_410_after_reinstall(void **state)
{
	struct world w;
	struct bvt_dev old_b2, new_b2;
	struct bvt_conn *a1, *c;
	char *tok;
	json_t *r, *err;
	const int two[] = {2};

	(void)state;
	make_world(&w);
	a1 = online_settled(&w.a1);
	r = bvt_send(a1, "before", to_all(&w, "before"));
	sent_ok(r);
	json_decref(r);
	assert_int_equal(queued_for(&w.b2), 1);

	/* b2 is reinstalled: same device id, new keys and registration. */
	old_b2 = w.b2;
	memset(&new_b2, 0, sizeof(new_b2));
	bvt_dev_keygen(&new_b2);
	while (new_b2.regid == old_b2.regid)
		bvt_dev_keygen(&new_b2);
	tok = bvt_token(&env.tenant, w.b1.account);
	c = bvt_conn_open(env.relay.port);
	assert_non_null(c);
	BVT_OK(bvt_enroll(c, &new_b2, tok, 2));
	assert_int_equal(new_b2.device, 2);
	assert_string_equal(new_b2.account, w.b1.account);
	bvt_conn_free(c);
	free(tok);
	/* It lost its queue, and the old key no longer authenticates. */
	assert_int_equal(queued_for(&w.b2), 0);
	c = bvt_conn_open(env.relay.port);
	assert_non_null(c);
	BVT_ERR(bvt_auth(c, &old_b2), "BV_EAUTH");
	bvt_conn_free(c);

	r = bvt_send(a1, "after", to_all(&w, "after"));
	bvt_assert_err(r, "BV_ESTALE");
	err = bvt_err(r);
	assert_int_equal(json_integer_value(json_object_get(err, "errno")),
			 -32);
	if (json_array_size(json_object_get(err, "stale")) != 1 ||
	    !has_entry(json_object_get(err, "stale"), w.b1.account, two, 1))
		fail_msg("stale should be B:[2]: %s", bvt_js(r));
	json_decref(r);
	assert_int_equal(count("queue"), 2); /* "before" for b1 and a2 */

	w.b2 = new_b2;
	r = bvt_send(a1, "after", to_all(&w, "after"));
	sent_ok(r);
	json_decref(r);
	assert_int_equal(queued_for(&w.b2), 1);
	c = online_settled(&w.b2);
	bvt_conn_free(c);
	bvt_conn_free(a1);
}

static void
t_displacement(void **state)
{
	struct world w;
	struct bvt_conn *first, *second, *a1;
	json_t *ev, *dv;
	int code;

	(void)state;
	make_world(&w);
	first = online_settled(&w.b1);
	second = online_settled(&w.b1);
	ev = bvt_conn_next(first, "displaced", bvt_ms(BVT_TIMEOUT));
	if (!ev)
		fail_msg("the first connection got no displaced event");
	assert_null(json_object_get(ev, "id"));
	json_decref(ev);
	code = bvt_conn_wait_closed(first, bvt_ms(BVT_TIMEOUT));
	BVT_OK(bvt_request(second, json_pack("{s:s}", "op", "ping")));
	/* Deliveries go to the new connection. */
	a1 = online_settled(&w.a1);
	dv = bvt_send(a1, "after-move", to_all(&w, "after-move"));
	sent_ok(dv);
	json_decref(dv);
	dv = bvt_next_deliver(second, bvt_ms(BVT_TIMEOUT));
	check_deliver(dv, &w.a1, "after-move", &w.b1, 0);
	assert_int_equal(bvt_ack(second, dv), 0);
	json_decref(dv);
	bvt_conn_free(first);
	bvt_conn_free(second);
	bvt_conn_free(a1);
	/* Last, so a wrong close code does not hide the rest. */
	if (code != 4001)
		fail_msg("displaced connection closed with %d, not 4001", code);
}

static void
t_other_tenant(void **state)
{
	struct world w;
	struct bvt_tenant other;
	struct bvt_dev c1, ghost;
	struct bvt_conn *a1;
	json_t *r1, *r2, *e;

	(void)state;
	make_world(&w);
	assert_int_equal(bvt_tenant_create(env.db, "annen kommune", &other), 0);
	assert_int_equal(bvt_new_account(env.relay.port, &other, &c1), 0);
	a1 = online_settled(&w.a1);
	/*
	 * An account that is not a required account of the conversation is
	 * listed under extra with what was addressed to it, whether it is
	 * another municipality's or does not exist: the answer only repeats
	 * what the sender named.
	 */
	{
		const struct bvt_dev *to[] = {&c1};

		r1 = bvt_send(a1, "x1", bvt_envelopes_to(to, 1, "x1"));
	}
	ghost = c1;
	snprintf(ghost.account, sizeof(ghost.account),
		 "00000000-0000-4000-8000-0000000000ee");
	{
		const struct bvt_dev *to[] = {&ghost};

		r2 = bvt_send(a1, "x2", bvt_envelopes_to(to, 1, "x2"));
	}
	bvt_assert_err(r1, "BV_EDEVICES");
	bvt_assert_err(r2, "BV_EDEVICES");
	{
		json_t *want1 = json_pack("[{s:s, s:[i]}]", "account",
					  c1.account, "devices", 1);
		json_t *want2 = json_pack("[{s:s, s:[i]}]", "account",
					  ghost.account, "devices", 1);

		assert_true(json_equal(json_object_get(bvt_err(r1), "extra"),
				       want1));
		assert_true(json_equal(json_object_get(bvt_err(r2), "extra"),
				       want2));
		/* missing names only the sender's own devices, the same
		 * for both. */
		assert_true(
			json_equal(json_object_get(bvt_err(r1), "missing"),
				   json_object_get(bvt_err(r2), "missing")));
		json_decref(want1);
		json_decref(want2);
	}
	json_decref(r1);
	json_decref(r2);
	/* Keys: the same BV_ENOACCOUNT for the other tenant's and a ghost. */
	r1 = bvt_keys_get(a1, c1.account, 0);
	r2 = bvt_keys_get(a1, ghost.account, 0);
	bvt_assert_err(r1, "BV_ENOACCOUNT");
	assert_true(json_equal(bvt_err(r1), bvt_err(r2)));
	json_decref(r1);
	json_decref(r2);
	/* Mixed with a valid set: still refused as a whole. */
	e = to_all(&w, "x3");
	json_array_append_new(e, bvt_envelope(&c1, 1, "x", 1));
	BVT_ERR(bvt_send(a1, "x3", e), "BV_EDEVICES");
	assert_int_equal(count("queue"), 0);
	bvt_conn_free(a1);
}

/*
 * Nothing is delivered before the commit: when the recipient sees the
 * envelope, the whole send (all three rows) is visible to another database
 * session, and the sender's answer comes.
 */
static void
t_commit_before_deliver(void **state)
{
	struct world w;
	struct bvt_conn *a1, *b1;
	const char *p[1] = {"commit-1"};
	int64_t id;
	json_t *dv, *r;

	(void)state;
	make_world(&w);
	b1 = online_settled(&w.b1);
	a1 = online_settled(&w.a1);
	id = bvt_conn_submit(a1,
			     bvt_send_req("commit-1", to_all(&w, "commit-1")));
	assert_true(id > 0);
	dv = bvt_next_deliver(b1, bvt_ms(BVT_TIMEOUT));
	check_deliver(dv, &w.a1, "commit-1", &w.b1, 0);
	assert_int_equal(bvt_sql_int(env.db,
				     "SELECT count(*) FROM queue"
				     " WHERE message_id = $1",
				     1, p),
			 3);
	r = bvt_conn_wait(a1, id, bvt_ms(BVT_TIMEOUT));
	assert_int_equal(sent_ok(r), json_integer_value(json_object_get(
					     json_object_get(dv, "envelope"),
					     "timestamp")));
	json_decref(r);
	assert_int_equal(bvt_ack(b1, dv), 0);
	json_decref(dv);
	bvt_conn_free(a1);
	bvt_conn_free(b1);
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
		T(t_send_deliver_ack),
		T(t_unacked_redelivered),
		T(t_backlog_in_order),
		T(t_409),
		T(t_sender_devices),
		T(t_new_device_required_at_once),
		T(t_410_after_reinstall),
		T(t_displacement),
		T(t_other_tenant),
		T(t_commit_before_deliver),
	};
	/* clang-format on */

	bvt_open_case = 1; /* not about cases: any two accounts may talk */

	return bvt_done(cmocka_run_group_tests_name("03-send", tests,
						    group_setup, NULL));
}
