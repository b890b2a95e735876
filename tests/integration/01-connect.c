/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 01-connect: the connection life of docs/protocol.md: challenge, enroll
 * with tokens (admin-issued and test-signed), auth, and every way either can
 * be refused, the auth timeout and the device limit. Each test runs against
 * a fresh migrated database and its own relay.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include <sodium.h>

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
is_uuid(const char *s)
{
	int i;

	if (!s || strlen(s) != 36)
		return 0;
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!((s[i] >= '0' && s[i] <= '9') ||
			     (s[i] >= 'a' && s[i] <= 'f'))) {
			return 0;
		}
	}
	return 1;
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

static json_t *
ping(struct bvt_conn *c)
{
	return bvt_request(c, json_pack("{s:s}", "op", "ping"));
}

static void
check_limit(const json_t *limits, const char *name, json_int_t want)
{
	json_t *v = json_object_get(limits, name);

	if (!json_is_integer(v) || json_integer_value(v) != want)
		fail_msg("limits.%s: want %lld, got %s", name, (long long)want,
			 bvt_js(v));
}

static void
t_challenge(void **state)
{
	struct bvt_conn *a, *b;
	uint8_t n[64];
	size_t nl = 0;
	json_t *lim;

	(void)state;
	a = bvt_conn_open(env.relay.port);
	b = bvt_conn_open(env.relay.port);
	assert_non_null(a);
	assert_non_null(b);
	assert_string_equal(
		json_string_value(json_object_get(a->challenge, "op")),
		"challenge");
	assert_null(json_object_get(a->challenge, "id"));
	assert_int_equal(bvt_unb64(a->nonce, n, sizeof(n), &nl), 0);
	assert_int_equal(nl, 32);
	assert_string_not_equal(a->nonce, b->nonce);
	assert_non_null(
		json_string_value(json_object_get(a->challenge, "relay")));
	lim = json_object_get(a->challenge, "limits");
	assert_true(json_is_object(lim));
	check_limit(lim, "max_frame_bytes", 262144);
	check_limit(lim, "max_envelope_bytes", 65536);
	check_limit(lim, "max_envelopes_per_send", 100);
	check_limit(lim, "max_prekeys_per_upload", 100);
	check_limit(lim, "max_devices_per_account", 10);
	check_limit(lim, "sends_per_minute", 600);
	check_limit(lim, "deliver_window", 64);
	bvt_conn_free(a);
	bvt_conn_free(b);
}

/* The challenge carries the configured values, not the defaults. */
static void
t_challenge_configured(void **state)
{
	const char *args[] = {"--max_envelopes_per_send",
			      "12",
			      "--sends_per_minute",
			      "77",
			      "--max_frame_bytes",
			      "100000",
			      "--deliver_window",
			      "5",
			      NULL};
	struct bvt_relay r;
	struct bvt_conn *c;
	json_t *lim;

	(void)state;
	assert_int_equal(bvt_relay_start(&r, env.db, args), 0);
	c = bvt_conn_open(r.port);
	assert_non_null(c);
	lim = json_object_get(c->challenge, "limits");
	check_limit(lim, "max_envelopes_per_send", 12);
	check_limit(lim, "sends_per_minute", 77);
	check_limit(lim, "max_frame_bytes", 100000);
	check_limit(lim, "deliver_window", 5);
	bvt_conn_free(c);
	assert_int_equal(bvt_relay_term(&r, bvt_ms(30000)), 0);
}

/* "A connection that does not ask for bvchat.v1 is refused during the
 * handshake." */
static void
t_subprotocol_required(void **state)
{
	struct bvt_ws *ws;
	int status = 0;

	(void)state;
	ws = bvt_ws_connect(env.relay.port, "/v1", NULL, bvt_ms(BVT_TIMEOUT),
			    &status);
	if (ws)
		fail_msg("handshake without a subprotocol was accepted "
			 "(HTTP %d)",
			 status);
	ws = bvt_ws_connect(env.relay.port, "/v1", "bvchat.v0",
			    bvt_ms(BVT_TIMEOUT), &status);
	if (ws)
		fail_msg("handshake for bvchat.v0 was accepted (HTTP %d)",
			 status);
	/* And the right one still works. */
	ws = bvt_ws_connect(env.relay.port, "/v1", "bvchat.v1",
			    bvt_ms(BVT_TIMEOUT), &status);
	assert_non_null(ws);
	bvt_ws_free(ws);
}

static void
t_enroll_and_auth(void **state)
{
	struct bvt_dev d;
	struct bvt_conn *c;
	char *tok;
	json_t *r, *ok, *ev;

	(void)state;
	memset(&d, 0, sizeof(d));
	bvt_dev_keygen(&d);
	tok = bvt_token(&env.tenant, NULL);
	c = bvt_conn_open(env.relay.port);
	assert_non_null(c);
	r = bvt_enroll(c, &d, tok, 0);
	bvt_assert_ok(r);
	ok = bvt_ok(r);
	assert_true(is_uuid(json_string_value(json_object_get(ok, "account"))));
	assert_int_equal(json_integer_value(json_object_get(ok, "device")), 1);
	assert_string_equal(json_string_value(json_object_get(ok, "tenant")),
			    env.tenant.id);
	json_decref(r);
	/* Enrolled means authenticated: the backlog (none) and queue_empty. */
	ev = bvt_conn_next(c, "queue_empty", bvt_ms(BVT_TIMEOUT));
	if (!ev)
		fail_msg("no queue_empty after a successful enroll");
	json_decref(ev);
	BVT_OK(ping(c));
	bvt_conn_free(c);
	assert_int_equal(count("devices"), 1);
	assert_int_equal(count("accounts"), 1);

	/* A new connection authenticates with the key. */
	c = bvt_conn_open(env.relay.port);
	assert_non_null(c);
	r = bvt_auth(c, &d);
	bvt_assert_ok(r);
	ok = bvt_ok(r);
	assert_string_equal(json_string_value(json_object_get(ok, "account")),
			    d.account);
	assert_int_equal(json_integer_value(json_object_get(ok, "device")), 1);
	assert_string_equal(json_string_value(json_object_get(ok, "tenant")),
			    env.tenant.id);
	json_decref(r);
	ev = bvt_conn_next(c, "queue_empty", bvt_ms(BVT_TIMEOUT));
	if (!ev)
		fail_msg("no queue_empty after auth");
	json_decref(ev);
	BVT_OK(ping(c));
	bvt_conn_free(c);
	free(tok);
}

static char *
trim(char *s)
{
	size_t n = s ? strlen(s) : 0;

	while (n > 0 &&
	       (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
		s[--n] = '\0';
	return s;
}

/* bvchat-relay admin tenant-create / issue-token, end to end. */
static void
t_admin_tokens(void **state)
{
	char key[600], *tenant = NULL, *tok = NULL;
	struct bvt_dev d1, d2;
	struct bvt_conn *c;
	json_t *r;
	int rc;

	(void)state;
	snprintf(key, sizeof(key), "%s/tenant-%d.key", bvt_tmpdir(),
		 env.relay.port);
	{
		const char *args[] = {"--database",    env.db,	 "admin",
				      "tenant-create", "--name", "Testkommune",
				      "--key-out",     key,	 NULL};

		rc = bvt_relay_cmd(&tenant, args);
	}
	assert_int_equal(rc, 0);
	trim(tenant);
	if (!is_uuid(tenant))
		fail_msg("tenant-create printed \"%s\", not a uuid", tenant);
	assert_int_equal(count("tenants"), 2);
	{
		const char *args[] = {"admin", "issue-token", "--key", key,
				      NULL};

		rc = bvt_relay_cmd(&tok, args);
	}
	assert_int_equal(rc, 0);
	trim(tok);
	assert_int_equal(strncmp(tok, "bvt1.", 5), 0);
	memset(&d1, 0, sizeof(d1));
	bvt_dev_keygen(&d1);
	c = bvt_conn_open(env.relay.port);
	assert_non_null(c);
	r = bvt_enroll(c, &d1, tok, 0);
	bvt_assert_ok(r);
	assert_string_equal(d1.tenant, tenant);
	assert_int_equal(d1.device, 1);
	json_decref(r);
	bvt_conn_free(c);
	free(tok);
	tok = NULL;

	/* A token for the existing account adds device 2. */
	{
		const char *args[] = {"admin", "issue-token", "--key",
				      key,     "--account",   d1.account,
				      "--ttl", "600",	      NULL};

		rc = bvt_relay_cmd(&tok, args);
	}
	assert_int_equal(rc, 0);
	trim(tok);
	memset(&d2, 0, sizeof(d2));
	bvt_dev_keygen(&d2);
	c = bvt_conn_open(env.relay.port);
	assert_non_null(c);
	r = bvt_enroll(c, &d2, tok, 0);
	bvt_assert_ok(r);
	assert_string_equal(d2.account, d1.account);
	assert_int_equal(d2.device, 2);
	json_decref(r);
	bvt_conn_free(c);
	free(tok);
	free(tenant);
}

static struct bvt_dev
enrolled(void)
{
	struct bvt_dev d;

	if (bvt_new_account(env.relay.port, &env.tenant, &d) < 0)
		fail_msg("could not enroll an account");
	return d;
}

static json_t *
auth_with_sig(struct bvt_conn *c, const char *account, int device,
	      const char *sig)
{
	return bvt_request(c, json_pack("{s:s, s:s, s:i, s:s}", "op", "auth",
					"account", account, "device", device,
					"signature", sig));
}

static void
t_bad_signature(void **state)
{
	struct bvt_dev d = enrolled(), other;
	struct bvt_conn *c;
	char *sig, msg[256];
	uint8_t s[64];

	(void)state;
	/* Signed with another key. */
	other = d;
	bvt_dev_keygen(&other);
	c = bvt_conn_open(env.relay.port);
	assert_non_null(c);
	BVT_ERR(bvt_auth(c, &other), "BV_EAUTH");
	bvt_conn_free(c);

	/* The right key over the wrong text (another device number). */
	c = bvt_conn_open(env.relay.port);
	assert_non_null(c);
	snprintf(msg, sizeof(msg), "bvchat.v1 auth\n%s\n%s\n%u", c->nonce,
		 d.account, d.device + 1);
	crypto_sign_detached(s, NULL, (unsigned char *)msg, strlen(msg),
			     d.auth_sk);
	sig = bvt_b64(s, 64);
	BVT_ERR(auth_with_sig(c, d.account, (int)d.device, sig), "BV_EAUTH");
	free(sig);
	bvt_conn_free(c);

	/* With a trailing newline: not the documented text. */
	c = bvt_conn_open(env.relay.port);
	assert_non_null(c);
	snprintf(msg, sizeof(msg), "bvchat.v1 auth\n%s\n%s\n%u\n", c->nonce,
		 d.account, d.device);
	crypto_sign_detached(s, NULL, (unsigned char *)msg, strlen(msg),
			     d.auth_sk);
	sig = bvt_b64(s, 64);
	BVT_ERR(auth_with_sig(c, d.account, (int)d.device, sig), "BV_EAUTH");
	free(sig);
	bvt_conn_free(c);

	/* And the real key still works. */
	c = bvt_online(env.relay.port, &d);
	assert_non_null(c);
	bvt_conn_free(c);
}

/* Unknown account and unknown device get the same answer as a bad
 * signature. */
static void
t_unknown_account_device(void **state)
{
	struct bvt_dev d = enrolled(), ghost;
	struct bvt_conn *c;
	json_t *r1, *r2;

	(void)state;
	ghost = d;
	snprintf(ghost.account, sizeof(ghost.account),
		 "00000000-0000-4000-8000-000000000001");
	c = bvt_conn_open(env.relay.port);
	assert_non_null(c);
	r1 = bvt_auth(c, &ghost);
	bvt_assert_err(r1, "BV_EAUTH");
	bvt_conn_free(c);

	ghost = d;
	ghost.device = 7;
	c = bvt_conn_open(env.relay.port);
	assert_non_null(c);
	r2 = bvt_auth(c, &ghost);
	bvt_assert_err(r2, "BV_EAUTH");
	bvt_conn_free(c);
	/* Same code, same errno, same message: nothing to tell them apart. */
	assert_true(json_equal(bvt_err(r1), bvt_err(r2)));
	json_decref(r1);
	json_decref(r2);
}

/* A signature made for one connection's nonce fails on another. */
static void
t_replayed_signature(void **state)
{
	struct bvt_dev d = enrolled();
	struct bvt_conn *c1, *c2;
	char *sig;

	(void)state;
	c1 = bvt_conn_open(env.relay.port);
	c2 = bvt_conn_open(env.relay.port);
	assert_non_null(c1);
	assert_non_null(c2);
	sig = bvt_auth_signature(&d, c1->nonce);
	BVT_OK(auth_with_sig(c1, d.account, (int)d.device, sig));
	bvt_conn_free(c1);
	BVT_ERR(auth_with_sig(c2, d.account, (int)d.device, sig), "BV_EAUTH");
	bvt_conn_free(c2);
	free(sig);
}

static void
assert_nothing_enrolled(long long devices, long long accounts)
{
	assert_int_equal(count("devices"), devices);
	assert_int_equal(count("accounts"), accounts);
}

static void
t_expired_token(void **state)
{
	struct bvt_dev d;
	struct bvt_conn *c;
	char *tok;

	(void)state;
	memset(&d, 0, sizeof(d));
	bvt_dev_keygen(&d);
	tok = bvt_token_make(env.tenant.id, env.tenant.sk, NULL,
			     (int64_t)time(NULL) - 120);
	c = bvt_conn_open(env.relay.port);
	assert_non_null(c);
	BVT_ERR(bvt_enroll(c, &d, tok, 0), "BV_ETOKEN_EXPIRED");
	bvt_conn_free(c);
	assert_nothing_enrolled(0, 0);
	assert_int_equal(count("enrollment_tokens_used"), 0);
	free(tok);
}

static void
t_used_token(void **state)
{
	struct bvt_dev d1, d2;
	struct bvt_conn *c;
	char *tok;

	(void)state;
	memset(&d1, 0, sizeof(d1));
	memset(&d2, 0, sizeof(d2));
	bvt_dev_keygen(&d1);
	bvt_dev_keygen(&d2);
	tok = bvt_token(&env.tenant, NULL);
	c = bvt_conn_open(env.relay.port);
	assert_non_null(c);
	BVT_OK(bvt_enroll(c, &d1, tok, 0));
	bvt_conn_free(c);
	c = bvt_conn_open(env.relay.port);
	assert_non_null(c);
	BVT_ERR(bvt_enroll(c, &d2, tok, 0), "BV_ETOKEN_USED");
	bvt_conn_free(c);
	/* The second enrollment stored nothing. */
	assert_nothing_enrolled(1, 1);
	free(tok);
}

static void
enroll_expect(const char *tok, const char *code)
{
	struct bvt_dev d;
	struct bvt_conn *c;

	memset(&d, 0, sizeof(d));
	bvt_dev_keygen(&d);
	c = bvt_conn_open(env.relay.port);
	assert_non_null(c);
	BVT_ERR(bvt_enroll(c, &d, tok, 0), code);
	bvt_conn_free(c);
}

static void
t_bad_tokens(void **state)
{
	uint8_t pk[32], sk[64];
	int64_t now = (int64_t)time(NULL);
	char *tok;

	(void)state;
	/* Signed by a key that is not the tenant's. */
	crypto_sign_keypair(pk, sk);
	tok = bvt_token_make(env.tenant.id, sk, NULL, now + 600);
	enroll_expect(tok, "BV_ETOKEN");
	free(tok);
	/* For a tenant that does not exist. */
	tok = bvt_token_make("00000000-0000-4000-8000-00000000abcd", sk, NULL,
			     now + 600);
	enroll_expect(tok, "BV_ETOKEN");
	free(tok);
	/* Valid for longer than enrollment_token_max_ttl_s (86400). */
	tok = bvt_token_make(env.tenant.id, env.tenant.sk, NULL,
			     now + 86400 + 3600);
	enroll_expect(tok, "BV_ETOKEN");
	free(tok);
	/* For an account of no tenant. */
	tok = bvt_token_make(env.tenant.id, env.tenant.sk,
			     "00000000-0000-4000-8000-00000000abce", now + 600);
	enroll_expect(tok, "BV_ETOKEN");
	free(tok);
	/* Malformed. */
	enroll_expect("bvt1.bm90IGpzb24.c2ln", "BV_ETOKEN");
	enroll_expect("bvt2.e30.e30", "BV_ETOKEN");
	assert_nothing_enrolled(0, 0);
	assert_int_equal(count("enrollment_tokens_used"), 0);
}

/* "A failed enrollment stores nothing and does not use up the token." */
static void
t_failed_enroll_keeps_token(void **state)
{
	struct bvt_dev d, liar;
	struct bvt_conn *c;
	char *tok;

	(void)state;
	memset(&d, 0, sizeof(d));
	bvt_dev_keygen(&d);
	tok = bvt_token(&env.tenant, NULL);
	/* Presents d's auth key but signs with another. */
	liar = d;
	bvt_dev_keygen(&liar);
	memcpy(liar.auth_pk, d.auth_pk, 32);
	c = bvt_conn_open(env.relay.port);
	assert_non_null(c);
	BVT_ERR(bvt_enroll(c, &liar, tok, 0), "BV_EAUTH");
	bvt_conn_free(c);
	assert_nothing_enrolled(0, 0);
	c = bvt_conn_open(env.relay.port);
	assert_non_null(c);
	BVT_OK(bvt_enroll(c, &d, tok, 0));
	bvt_conn_free(c);
	assert_nothing_enrolled(1, 1);
	free(tok);
}

static void
t_op_before_auth(void **state)
{
	struct bvt_dev d = enrolled();
	struct bvt_conn *c;

	(void)state;
	c = bvt_conn_open(env.relay.port);
	assert_non_null(c);
	BVT_ERR(bvt_request(c, json_pack("{s:s}", "op", "keys_count")),
		"BV_ENOAUTH");
	BVT_ERR(bvt_keys_put(c, 1, 1, 2), "BV_ENOAUTH");
	BVT_ERR(bvt_keys_get(c, d.account, 1), "BV_ENOAUTH");
	{
		const struct bvt_dev *to[] = {&d};

		json_t *req = bvt_send_req("m1", bvt_envelopes_to(to, 1, "m1"));

		json_object_set_new(
			req, "conversation",
			json_string("00000000-0000-4000-8000-000000000000"));
		BVT_ERR(bvt_request(c, req), "BV_ENOAUTH");
	}
	assert_int_equal(count("queue"), 0);
	/* "Any other operation except ping before that gets BV_ENOAUTH". */
	BVT_OK(ping(c));
	/* The connection can still authenticate. */
	BVT_OK(bvt_auth(c, &d));
	BVT_OK(ping(c));
	bvt_conn_free(c);
}

static void
t_auth_twice(void **state)
{
	struct bvt_dev d = enrolled(), n;
	struct bvt_conn *c;
	char *tok;

	(void)state;
	c = bvt_online(env.relay.port, &d);
	assert_non_null(c);
	BVT_ERR(bvt_auth(c, &d), "BV_EALREADY");
	memset(&n, 0, sizeof(n));
	bvt_dev_keygen(&n);
	tok = bvt_token(&env.tenant, NULL);
	BVT_ERR(bvt_enroll(c, &n, tok, 0), "BV_EALREADY");
	BVT_OK(ping(c));
	bvt_conn_free(c);
	assert_nothing_enrolled(1, 1);
	free(tok);
}

static void
t_auth_timeout(void **state)
{
	const char *args[] = {"--auth_timeout_ms", "300", NULL};
	struct bvt_dev d = enrolled();
	struct bvt_relay r;
	struct bvt_conn *idle, *authed;
	int code, i;

	(void)state;
	assert_int_equal(bvt_relay_start(&r, env.db, args), 0);
	/* Authenticating within 300 ms may take a try or two on a loaded
	 * machine. */
	for (i = 0, authed = NULL; i < 10 && !authed; i++)
		authed = bvt_online(r.port, &d);
	assert_non_null(authed);
	idle = bvt_conn_open(r.port);
	assert_non_null(idle);
	code = bvt_conn_wait_closed(idle, bvt_ms(BVT_TIMEOUT));
	/* An authenticated connection is not subject to the timeout. */
	bvt_sleep_ms(800);
	BVT_OK(ping(authed));
	bvt_conn_free(idle);
	bvt_conn_free(authed);
	assert_int_equal(bvt_relay_term(&r, bvt_ms(30000)), 0);
	if (code != 4002)
		fail_msg("closed with %d, not 4002 (-1: no close frame, -2: "
			 "still open)",
			 code);
}

static void
t_device_limit(void **state)
{
	struct bvt_dev first = enrolled(), d;
	struct bvt_conn *c;
	char *tok;
	int i;

	(void)state;
	for (i = 2; i <= 10; i++) {
		assert_int_equal(bvt_new_device(env.relay.port, &env.tenant,
						first.account, &d),
				 0);
		assert_int_equal(d.device, i);
	}
	memset(&d, 0, sizeof(d));
	bvt_dev_keygen(&d);
	tok = bvt_token(&env.tenant, first.account);
	c = bvt_conn_open(env.relay.port);
	assert_non_null(c);
	BVT_ERR(bvt_enroll(c, &d, tok, 0), "BV_EDEVICE_LIMIT");
	bvt_conn_free(c);
	assert_int_equal(count("devices"), 10);
	/* The refused token was not used up: a reinstall of device 3 with it
	 * works (replacing does not add a device). */
	c = bvt_conn_open(env.relay.port);
	assert_non_null(c);
	BVT_OK(bvt_enroll(c, &d, tok, 3));
	assert_int_equal(d.device, 3);
	bvt_conn_free(c);
	assert_int_equal(count("devices"), 10);
	free(tok);
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
		T(t_challenge),
		T(t_challenge_configured),
		T(t_subprotocol_required),
		T(t_enroll_and_auth),
		T(t_admin_tokens),
		T(t_bad_signature),
		T(t_unknown_account_device),
		T(t_replayed_signature),
		T(t_expired_token),
		T(t_used_token),
		T(t_bad_tokens),
		T(t_failed_enroll_keeps_token),
		T(t_op_before_auth),
		T(t_auth_twice),
		T(t_auth_timeout),
		T(t_device_limit),
	};
	/* clang-format on */

	return bvt_done(cmocka_run_group_tests_name("01-connect", tests,
						    group_setup, NULL));
}
