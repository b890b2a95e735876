/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 02-prekeys: keys_put, keys_count and keys_get (docs/protocol.md): stock
 * accounting, two fetchers on two relays draining one device's one-time
 * prekeys concurrently (each handed out exactly once), the prekeys_low
 * event live and on the next connection, the limits, and reachability.
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
setup(void **state)
{
	(void)state;
	return bvt_env_init(&env, NULL);
}

static int
setup_small_stock(void **state)
{
	const char *args[] = {"--max_prekeys_stock", "150", NULL};

	(void)state;
	return bvt_env_init(&env, args);
}

static int
teardown(void **state)
{
	(void)state;
	bvt_env_cleanup(&env);
	return 0;
}

static struct bvt_dev
account(void)
{
	struct bvt_dev d;

	if (bvt_new_account(env.relay.port, &env.tenant, &d) < 0)
		fail_msg("could not enroll an account");
	return d;
}

static json_int_t
ok_int(const json_t *resp, const char *name)
{
	json_t *v = json_object_get(bvt_ok(resp), name);

	if (!json_is_integer(v))
		fail_msg("no integer %s in %s", name, bvt_js(resp));
	return json_integer_value(v);
}

static json_int_t
keys_count(struct bvt_conn *c)
{
	json_t *r = bvt_request(c, json_pack("{s:s}", "op", "keys_count"));
	json_int_t n;

	bvt_assert_ok(r);
	n = ok_int(r, "one_time_count");
	json_decref(r);
	return n;
}

static void
t_upload(void **state)
{
	struct bvt_dev d = account();
	struct bvt_conn *c;
	json_t *r;

	(void)state;
	c = bvt_online(env.relay.port, &d);
	assert_non_null(c);
	assert_int_equal(keys_count(c), 0);
	r = bvt_keys_put(c, 1, 1, 5);
	bvt_assert_ok(r);
	assert_int_equal(ok_int(r, "one_time_count"), 5);
	json_decref(r);
	assert_int_equal(keys_count(c), 5);
	/* Ids already stored are ignored. */
	r = bvt_keys_put(c, 0, 3, 5);
	bvt_assert_ok(r);
	assert_int_equal(ok_int(r, "one_time_count"), 7);
	json_decref(r);
	/* A new signed prekey replaces the old one. */
	r = bvt_keys_put(c, 2, 0, 0);
	bvt_assert_ok(r);
	assert_int_equal(ok_int(r, "one_time_count"), 7);
	json_decref(r);
	assert_int_equal(count("signed_prekeys"), 1);
	assert_int_equal(bvt_sql_int(env.db,
				     "SELECT key_id FROM signed_prekeys", 0,
				     NULL),
			 2);
	assert_int_equal(count("one_time_prekeys"), 7);
	bvt_conn_free(c);
}

/* Checks one bundle: owner's identity and registration id, signed prekey,
 * and the one-time prekey (its id, or 0 when null). */
static uint32_t
check_bundle(const json_t *resp, const struct bvt_dev *owner)
{
	json_t *ok = bvt_ok(resp), *devs, *b, *otpk;
	uint8_t ik[64], key[64], want[33];
	size_t n;
	char *ik64;

	if (!ok)
		fail_msg("keys_get: %s", bvt_js(resp));
	assert_string_equal(json_string_value(json_object_get(ok, "account")),
			    owner->account);
	devs = json_object_get(ok, "devices");
	assert_int_equal(json_array_size(devs), 1);
	b = json_array_get(devs, 0);
	assert_int_equal(json_integer_value(json_object_get(b, "device")),
			 owner->device);
	assert_int_equal(
		json_integer_value(json_object_get(b, "registration_id")),
		owner->regid);
	assert_int_equal(
		bvt_unb64(json_string_value(json_object_get(b, "identity_key")),
			  ik, sizeof(ik), &n),
		0);
	assert_int_equal(n, 33);
	assert_memory_equal(ik, owner->identity, 33);
	ik64 = bvt_b64(owner->identity, 33);
	free(ik64);
	assert_true(json_is_object(json_object_get(b, "signed_prekey")));
	otpk = json_object_get(b, "one_time_prekey");
	if (json_is_null(otpk))
		return 0;
	assert_true(json_is_object(otpk));
	{
		json_int_t id = json_integer_value(json_object_get(otpk, "id"));

		assert_true(id > 0);
		assert_int_equal(bvt_unb64(json_string_value(json_object_get(
						   otpk, "key")),
					   key, sizeof(key), &n),
				 0);
		assert_int_equal(n, 33);
		bvt_prekey_for((uint32_t)id, want);
		assert_memory_equal(key, want, 33);
		return (uint32_t)id;
	}
}

#define STOCK	 60
#define FETCHES	 70
#define PIPELINE 8

/*
 * Two fetchers, one on each of two relays sharing the database, keep up to
 * PIPELINE keys_get requests in flight each until FETCHES answers came
 * back: every one-time prekey is handed out exactly once, the rest get
 * null. The owner, connected, receives prekeys_low.
 */
static void
t_concurrent_drain(void **state)
{
	struct bvt_dev owner = account(), f1 = account(), f2 = account();
	struct bvt_relay r2;
	struct bvt_conn *oc, *fc[2];
	int seen[STOCK + 1], nulls = 0, got = 0, sent = 0, i;
	int64_t inflight[2][PIPELINE];
	int nin[2] = {0, 0};
	json_t *ev;

	(void)state;
	memset(seen, 0, sizeof(seen));
	assert_int_equal(bvt_relay_start(&r2, env.db, NULL), 0);
	oc = bvt_online(env.relay.port, &owner);
	assert_non_null(oc);
	BVT_OK(bvt_keys_put(oc, 1, 1, STOCK));
	fc[0] = bvt_online(env.relay.port, &f1);
	fc[1] = bvt_online(r2.port, &f2);
	assert_non_null(fc[0]);
	assert_non_null(fc[1]);
	while (got < FETCHES) {
		for (i = 0; i < 2; i++) {
			while (nin[i] < PIPELINE && sent < FETCHES) {
				json_t *req = json_pack("{s:s, s:s, s:i}", "op",
							"keys_get", "account",
							owner.account, "device",
							(int)owner.device);
				int64_t id = bvt_conn_submit(fc[i], req);

				assert_true(id > 0);
				inflight[i][nin[i]++] = id;
				sent++;
			}
		}
		for (i = 0; i < 2; i++) {
			json_t *r;
			uint32_t k;

			if (nin[i] == 0)
				continue;
			r = bvt_conn_wait(fc[i], inflight[i][0],
					  bvt_ms(BVT_TIMEOUT));
			assert_non_null(r);
			memmove(inflight[i], inflight[i] + 1,
				sizeof(int64_t) * (size_t)--nin[i]);
			k = check_bundle(r, &owner);
			json_decref(r);
			got++;
			if (k == 0) {
				nulls++;
				continue;
			}
			assert_true(k <= STOCK);
			if (seen[k])
				fail_msg("one-time prekey %u handed out twice",
					 k);
			seen[k] = 1;
		}
	}
	for (i = 1; i <= STOCK; i++)
		if (!seen[i])
			fail_msg("one-time prekey %d never handed out", i);
	assert_int_equal(nulls, FETCHES - STOCK);
	assert_int_equal(count("one_time_prekeys"), 0);
	assert_int_equal(keys_count(oc), 0);

	/* The owner was told while connected. */
	ev = bvt_conn_next(oc, "prekeys_low", bvt_ms(BVT_TIMEOUT));
	if (!ev)
		fail_msg("the connected owner got no prekeys_low");
	assert_true(json_is_integer(json_object_get(ev, "one_time_count")));
	assert_true(json_integer_value(json_object_get(ev, "one_time_count")) <
		    20);
	assert_null(json_object_get(ev, "id"));
	json_decref(ev);
	bvt_conn_free(oc);
	bvt_conn_free(fc[0]);
	bvt_conn_free(fc[1]);
	assert_int_equal(bvt_relay_term(&r2, bvt_ms(30000)), 0);
}

/* prekeys_low reaches an owner who was offline when the stock fell. */
static void
t_prekeys_low_on_connect(void **state)
{
	struct bvt_dev owner = account(), f = account();
	struct bvt_conn *oc, *fc;
	json_t *r, *ev;
	uint32_t k;

	(void)state;
	oc = bvt_online(env.relay.port, &owner);
	assert_non_null(oc);
	BVT_OK(bvt_keys_put(oc, 1, 1, 21));
	bvt_conn_free(oc);
	fc = bvt_online(env.relay.port, &f);
	assert_non_null(fc);
	/* 21 → 20 is not below the watermark (20); 20 → 19 is. */
	r = bvt_keys_get(fc, owner.account, owner.device);
	k = check_bundle(r, &owner);
	assert_true(k > 0);
	json_decref(r);
	r = bvt_keys_get(fc, owner.account, owner.device);
	k = check_bundle(r, &owner);
	assert_true(k > 0);
	json_decref(r);
	bvt_conn_free(fc);
	oc = bvt_online(env.relay.port, &owner);
	assert_non_null(oc);
	ev = bvt_conn_next(oc, "prekeys_low", bvt_ms(BVT_TIMEOUT));
	if (!ev)
		fail_msg("no prekeys_low on the next connection");
	assert_int_equal(
		json_integer_value(json_object_get(ev, "one_time_count")), 19);
	json_decref(ev);
	bvt_conn_free(oc);
}

static void
t_too_many(void **state)
{
	struct bvt_dev d = account();
	struct bvt_conn *c;

	(void)state;
	c = bvt_online(env.relay.port, &d);
	assert_non_null(c);
	BVT_ERR(bvt_keys_put(c, 1, 1, 101), "BV_ETOOMANY");
	assert_int_equal(keys_count(c), 0);
	assert_int_equal(count("one_time_prekeys"), 0);
	assert_int_equal(count("signed_prekeys"), 0);
	BVT_OK(bvt_keys_put(c, 1, 1, 100));
	assert_int_equal(keys_count(c), 100);
	bvt_conn_free(c);
}

/* Run with --max_prekeys_stock 150. */
static void
t_prekey_limit(void **state)
{
	struct bvt_dev d = account();
	struct bvt_conn *c;
	json_t *r;

	(void)state;
	c = bvt_online(env.relay.port, &d);
	assert_non_null(c);
	BVT_OK(bvt_keys_put(c, 1, 1, 100));
	BVT_ERR(bvt_keys_put(c, 0, 101, 51), "BV_EPREKEY_LIMIT");
	assert_int_equal(keys_count(c), 100);
	assert_int_equal(count("one_time_prekeys"), 100);
	r = bvt_keys_put(c, 0, 101, 50);
	bvt_assert_ok(r);
	assert_int_equal(ok_int(r, "one_time_count"), 150);
	json_decref(r);
	BVT_ERR(bvt_keys_put(c, 0, 151, 1), "BV_EPREKEY_LIMIT");
	bvt_conn_free(c);
}

static void
t_reachability(void **state)
{
	struct bvt_tenant other;
	struct bvt_dev me = account(), stranger, fresh = account();
	struct bvt_conn *c;
	json_t *r1, *r2, *r3;

	(void)state;
	assert_int_equal(bvt_tenant_create(env.db, "annen kommune", &other), 0);
	assert_int_equal(bvt_new_account(env.relay.port, &other, &stranger), 0);
	c = bvt_online(env.relay.port, &stranger);
	assert_non_null(c);
	BVT_OK(bvt_keys_put(c, 1, 1, 3));
	bvt_conn_free(c);

	c = bvt_online(env.relay.port, &me);
	assert_non_null(c);
	r1 = bvt_keys_get(c, stranger.account, 1);
	bvt_assert_err(r1, "BV_ENOACCOUNT");
	r2 = bvt_keys_get(c, "00000000-0000-4000-8000-0000000000ff", 1);
	bvt_assert_err(r2, "BV_ENOACCOUNT");
	/* Deliberately the same answer. */
	assert_true(json_equal(bvt_err(r1), bvt_err(r2)));
	r3 = bvt_keys_get(c, stranger.account, 0);
	bvt_assert_err(r3, "BV_ENOACCOUNT");
	json_decref(r1);
	json_decref(r2);
	json_decref(r3);
	/* The other tenant's stock is untouched. */
	assert_int_equal(count("one_time_prekeys"), 3);
	/* An unknown device of a reachable account. */
	BVT_ERR(bvt_keys_get(c, fresh.account, 9), "BV_ENOACCOUNT");
	/* A device that never uploaded a signed prekey. */
	BVT_ERR(bvt_keys_get(c, fresh.account, 1), "BV_ENOKEYS");
	bvt_conn_free(c);
}

/* Without "device", every device of the account except the caller's. */
static void
t_all_devices_but_mine(void **state)
{
	struct bvt_dev d1 = account(), d2, d3;
	struct bvt_conn *c;
	json_t *r, *devs;
	size_t i;

	(void)state;
	assert_int_equal(
		bvt_new_device(env.relay.port, &env.tenant, d1.account, &d2),
		0);
	assert_int_equal(
		bvt_new_device(env.relay.port, &env.tenant, d1.account, &d3),
		0);
	for (i = 0; i < 3; i++) {
		struct bvt_dev *d = i == 0 ? &d1 : i == 1 ? &d2 : &d3;

		c = bvt_online(env.relay.port, d);
		assert_non_null(c);
		BVT_OK(bvt_keys_put(c, 1, 1, 2));
		bvt_conn_free(c);
	}
	c = bvt_online(env.relay.port, &d1);
	assert_non_null(c);
	r = bvt_keys_get(c, d1.account, 0);
	bvt_assert_ok(r);
	devs = json_object_get(bvt_ok(r), "devices");
	assert_int_equal(json_array_size(devs), 2);
	for (i = 0; i < 2; i++) {
		json_int_t dev = json_integer_value(
			json_object_get(json_array_get(devs, i), "device"));

		assert_true(dev == 2 || dev == 3);
	}
	json_decref(r);
	/* Own device 1 kept its stock. */
	assert_int_equal(keys_count(c), 2);
	bvt_conn_free(c);
}

static int
group_setup(void **state)
{
	(void)state;
	return bvt_pg_start();
}

#define T(f)	 cmocka_unit_test_setup_teardown(f, setup, teardown)
#define TS(f, s) cmocka_unit_test_setup_teardown(f, s, teardown)

int
main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		T(t_upload),
		T(t_concurrent_drain),
		T(t_prekeys_low_on_connect),
		T(t_too_many),
		TS(t_prekey_limit, setup_small_stock),
		T(t_reachability),
		T(t_all_devices_but_mine),
	};
	/* clang-format on */

	bvt_open_case = 1; /* not about cases: any two accounts may talk */

	return bvt_done(cmocka_run_group_tests_name("02-prekeys", tests,
						    group_setup, NULL));
}
