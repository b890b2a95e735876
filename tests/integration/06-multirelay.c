/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 06-multirelay: two relays on one database (ARCHITECTURE.md decision 5).
 * A send committed on one relay reaches a device connected to the other at
 * once (LISTEN/NOTIFY), a device connecting to the other relay displaces
 * its old connection (and a late notification never the newer one), and device changes made through one relay are seen by
 * the other's send checks.
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
static struct bvt_relay r2;

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
	(void)state;
	if (bvt_env_init(&env, NULL) < 0)
		return -1;
	return bvt_relay_start(&r2, env.db, NULL);
}

static int
teardown(void **state)
{
	(void)state;
	bvt_relay_term(&r2, bvt_ms(30000));
	bvt_env_cleanup(&env);
	return 0;
}

static struct bvt_conn *
settled(int port, const struct bvt_dev *d)
{
	struct bvt_conn *c = bvt_online(port, d);
	json_t *ev;

	if (!c)
		fail_msg("auth failed on port %d", port);
	ev = bvt_conn_next(c, "queue_empty", bvt_ms(BVT_TIMEOUT));
	if (!ev)
		fail_msg("no queue_empty");
	json_decref(ev);
	return c;
}

static void
deliver_and_ack(struct bvt_conn *c, const char *mid)
{
	json_t *dv = bvt_next_deliver(c, bvt_ms(BVT_TIMEOUT)), *e;

	if (!dv)
		fail_msg("%s was not delivered", mid);
	e = json_object_get(dv, "envelope");
	assert_string_equal(json_string_value(json_object_get(e, "message_id")),
			    mid);
	assert_int_equal(bvt_ack(c, dv), 0);
	json_decref(dv);
}

static void
t_live_across_relays(void **state)
{
	struct bvt_dev a, b;
	struct bvt_conn *ca, *cb;
	const struct bvt_dev *to_b[] = {&b}, *to_a[] = {&a};
	char mid[16];
	int i;

	(void)state;
	assert_int_equal(bvt_new_account(env.relay.port, &env.tenant, &a), 0);
	assert_int_equal(bvt_new_account(r2.port, &env.tenant, &b), 0);
	ca = settled(env.relay.port, &a);
	cb = settled(r2.port, &b);
	for (i = 0; i < 5; i++) {
		snprintf(mid, sizeof(mid), "ab%d", i);
		BVT_OK(bvt_send(ca, mid, bvt_envelopes_to(to_b, 1, mid)));
		deliver_and_ack(cb, mid);
		snprintf(mid, sizeof(mid), "ba%d", i);
		BVT_OK(bvt_send(cb, mid, bvt_envelopes_to(to_a, 1, mid)));
		deliver_and_ack(ca, mid);
	}
	{
		int64_t deadline = bvt_now_ms() + bvt_ms(BVT_TIMEOUT);

		while (count("queue") != 0 && bvt_now_ms() < deadline)
			bvt_sleep_ms(20);
	}
	assert_int_equal(count("queue"), 0);

	/* Backlog stored through one relay, fetched through the other. */
	bvt_conn_free(cb);
	BVT_OK(bvt_send(ca, "later", bvt_envelopes_to(to_b, 1, "later")));
	cb = bvt_online(r2.port, &b);
	assert_non_null(cb);
	deliver_and_ack(cb, "later");
	bvt_conn_free(ca);
	bvt_conn_free(cb);
}

static void
t_displacement_across_relays(void **state)
{
	struct bvt_dev a, b;
	struct bvt_conn *old, *cur, *ca;
	const struct bvt_dev *to_b[] = {&b};
	json_t *ev;
	int code;

	(void)state;
	assert_int_equal(bvt_new_account(env.relay.port, &env.tenant, &a), 0);
	assert_int_equal(bvt_new_account(env.relay.port, &env.tenant, &b), 0);
	old = settled(env.relay.port, &b);
	cur = settled(r2.port, &b);
	ev = bvt_conn_next(old, "displaced", bvt_ms(BVT_TIMEOUT));
	if (!ev)
		fail_msg("the connection on relay 1 was not displaced");
	json_decref(ev);
	code = bvt_conn_wait_closed(old, bvt_ms(BVT_TIMEOUT));
	bvt_conn_free(old);
	/* Sends from relay 1 now reach the connection on relay 2. */
	ca = settled(env.relay.port, &a);
	BVT_OK(bvt_send(ca, "moved", bvt_envelopes_to(to_b, 1, "moved")));
	deliver_and_ack(cur, "moved");
	bvt_conn_free(ca);
	bvt_conn_free(cur);
	if (code != 4001)
		fail_msg("displaced connection closed with %d, not 4001", code);
}

/* NOTIFY bv_connect for b's device as if from another relay, with order. */
static void
notify_connect(const struct bvt_dev *b, const char *order)
{
	const char *v[] = {b->account, order};
	char sql[] = "SELECT count(*) FROM (SELECT pg_notify('bv_connect', "
		     "(SELECT d.id::text FROM devices d WHERE d.account_id = "
		     "$1::uuid AND d.device_id = 1) || "
		     "' 00000000-0000-4000-8000-000000000000 ' || $2)) n";

	assert_int_equal(bvt_sql_int(env.db, sql, 2, v), 1);
}

/*
 * A relay's notification that the device connected can reach another
 * relay after the device connected there again (busy loops, slow
 * databases): it must not displace the newer connection. The relays order
 * connections by a number from the database, not by arrival.
 */
static void
t_late_notification_displaces_nothing(void **state)
{
	struct bvt_dev a, b;
	struct bvt_conn *cur, *ca;
	const struct bvt_dev *to_b[] = {&b};
	json_t *ev;

	(void)state;
	assert_int_equal(bvt_new_account(env.relay.port, &env.tenant, &a), 0);
	assert_int_equal(bvt_new_account(env.relay.port, &env.tenant, &b), 0);
	cur = settled(r2.port, &b);
	/* An older connection's notification, arriving late. */
	notify_connect(&b, "1");
	ev = bvt_conn_next(cur, "displaced", bvt_ms(1000));
	if (ev)
		fail_msg("a late notification displaced the newer connection");
	ca = settled(env.relay.port, &a);
	BVT_OK(bvt_send(ca, "still", bvt_envelopes_to(to_b, 1, "still")));
	deliver_and_ack(cur, "still");
	/* A newer one does displace it. */
	notify_connect(&b, "9223372036854775807");
	ev = bvt_conn_next(cur, "displaced", bvt_ms(BVT_TIMEOUT));
	if (!ev)
		fail_msg("a newer connection elsewhere did not displace");
	json_decref(ev);
	bvt_conn_free(ca);
	bvt_conn_free(cur);
}

static int
has_missing(const json_t *resp, const char *account, int device)
{
	json_t *m = json_object_get(bvt_err(resp), "missing");
	size_t i, j;

	for (i = 0; i < json_array_size(m); i++) {
		json_t *e = json_array_get(m, i), *d;
		const char *acc =
			json_string_value(json_object_get(e, "account"));

		if (!acc || strcmp(acc, account) != 0)
			continue;
		d = json_object_get(e, "devices");
		for (j = 0; j < json_array_size(d); j++)
			if (json_integer_value(json_array_get(d, j)) == device)
				return 1;
	}
	return 0;
}

/*
 * Relay 1 caches B's devices; B gains and reinstalls devices through relay
 * 2; relay 1's checks follow. Each enrollment was answered before the next
 * send was made, so the send must see it (repeated: a stale cache shows up
 * only sometimes).
 */
#define NDEV 8

static void
t_device_changes_across_relays(void **state)
{
	struct bvt_dev a, bd[NDEV + 1], fresh;
	const struct bvt_dev *to[NDEV];
	struct bvt_conn *ca, *c;
	char mid[32], *tok;
	json_t *r;
	int k, stale = 0;

	(void)state;
	assert_int_equal(bvt_new_account(env.relay.port, &env.tenant, &a), 0);
	assert_int_equal(bvt_new_account(env.relay.port, &env.tenant, &bd[1]),
			 0);
	ca = settled(env.relay.port, &a);
	to[0] = &bd[1];
	BVT_OK(bvt_send(ca, "one", bvt_envelopes_to(to, 1, "one")));
	for (k = 2; k <= NDEV; k++) {
		assert_int_equal(bvt_new_device(r2.port, &env.tenant,
						bd[1].account, &bd[k]),
				 0);
		assert_int_equal(bd[k].device, k);
		snprintf(mid, sizeof(mid), "without-%d", k);
		r = bvt_send(ca, mid, bvt_envelopes_to(to, (size_t)k - 1, mid));
		if (bvt_ok(r)) {
			print_error("device %d enrolled on relay 2 was not "
				    "required by relay 1: %s\n",
				    k, bvt_js(r));
			stale++;
		} else {
			bvt_assert_err(r, "BV_EDEVICES");
			if (!has_missing(r, bd[1].account, k))
				fail_msg("want B:[%d] missing: %s", k,
					 bvt_js(r));
		}
		json_decref(r);
		to[k - 1] = &bd[k];
		snprintf(mid, sizeof(mid), "with-%d", k);
		BVT_OK(bvt_send(ca, mid, bvt_envelopes_to(to, (size_t)k, mid)));
	}

	/* Device 2 reinstalled through relay 2: relay 1 answers 410. */
	memset(&fresh, 0, sizeof(fresh));
	bvt_dev_keygen(&fresh);
	while (fresh.regid == bd[2].regid)
		bvt_dev_keygen(&fresh);
	tok = bvt_token(&env.tenant, bd[1].account);
	c = bvt_conn_open(r2.port);
	assert_non_null(c);
	BVT_OK(bvt_enroll(c, &fresh, tok, 2));
	bvt_conn_free(c);
	free(tok);
	BVT_ERR(bvt_send(ca, "three", bvt_envelopes_to(to, NDEV, "three")),
		"BV_ESTALE");
	bd[2] = fresh;
	BVT_OK(bvt_send(ca, "three", bvt_envelopes_to(to, NDEV, "three")));
	bvt_conn_free(ca);
	assert_int_equal(stale, 0);
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
		T(t_live_across_relays),
		T(t_displacement_across_relays),
		T(t_late_notification_displaces_nothing),
		T(t_device_changes_across_relays),
	};
	/* clang-format on */

	bvt_open_case = 1; /* not about cases: any two accounts may talk */

	return bvt_done(cmocka_run_group_tests_name("06-multirelay", tests,
						    group_setup, NULL));
}
