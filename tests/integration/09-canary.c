/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 09-canary: "plaintext, keys and tokens are never logged" (STYLE.md), and
 * bodies leave the database once acknowledged. Canary bytes go into bodies
 * (stored, delivered, refused), tokens and keys through enroll and auth;
 * then the relay's debug log and a pg_dump are searched for them raw, in
 * base64 and in hex (pg_dump's bytea). The dump is taken after every
 * envelope was acknowledged; one taken while the body was queued proves
 * that the search finds what is there.
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

/* A well-formed conversation id (parsing comes before any check). */
#define NIL_CONV "00000000-0000-4000-8000-000000000000"

static struct bvt_env env;

/* The strings that must not show up, and where. */
#define MAXSECRETS 64
static struct secret {
	char *s;
	int in_dump; /* also searched in the final dump */
	char what[48];
} secrets[MAXSECRETS];
static int nsecrets;

static void
add_secret(const char *what, const char *s, int in_dump)
{
	assert_true(nsecrets < MAXSECRETS);
	secrets[nsecrets].s = strdup(s);
	secrets[nsecrets].in_dump = in_dump;
	snprintf(secrets[nsecrets].what, sizeof(secrets[nsecrets].what), "%s",
		 what);
	nsecrets++;
}

static char *
hex(const void *buf, size_t len)
{
	char *s = malloc(len * 2 + 1);

	assert_non_null(s);
	sodium_bin2hex(s, len * 2 + 1, buf, len);
	return s;
}

/* A body canary in its three forms: raw, base64, hex. */
static void
add_body(const char *what, const char *canary)
{
	char name[48], *b, *h;

	snprintf(name, sizeof(name), "%s (raw)", what);
	add_secret(name, canary, 1);
	b = bvt_b64(canary, strlen(canary));
	snprintf(name, sizeof(name), "%s (base64)", what);
	add_secret(name, b, 1);
	h = hex(canary, strlen(canary));
	snprintf(name, sizeof(name), "%s (hex)", what);
	add_secret(name, h, 1);
	free(b);
	free(h);
}

/* A token and its two parts. */
static void
add_token(const char *what, const char *tok)
{
	char name[48], *copy = strdup(tok), *dot1, *dot2;

	add_secret(what, tok, 1);
	dot1 = strchr(copy, '.');
	dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
	if (dot1 && dot2) {
		*dot2 = '\0';
		snprintf(name, sizeof(name), "%s payload", what);
		add_secret(name, dot1 + 1, 1);
		snprintf(name, sizeof(name), "%s signature", what);
		add_secret(name, dot2 + 1, 1);
	}
	free(copy);
}

/* Keys and signatures of a device: never in logs (keys are in the
 * database by design). */
static void
add_device_keys(const char *what, const struct bvt_dev *d)
{
	char name[48], *s;

	s = bvt_b64(d->auth_pk, 32);
	snprintf(name, sizeof(name), "%s auth key", what);
	add_secret(name, s, 0);
	free(s);
	s = bvt_b64(d->identity, 33);
	snprintf(name, sizeof(name), "%s identity key", what);
	add_secret(name, s, 0);
	free(s);
	s = bvt_b64(d->auth_sk, 64);
	snprintf(name, sizeof(name), "%s secret key", what);
	add_secret(name, s, 1);
	free(s);
}

static void
canary(char *out, size_t cap, const char *kind)
{
	uint8_t r[12];
	char h[25];

	randombytes_buf(r, sizeof(r));
	sodium_bin2hex(h, sizeof(h), r, sizeof(r));
	snprintf(out, cap, "BVCANARY-%s-%s", kind, h);
}

static int
setup(void **state)
{
	const char *args[] = {"--log_level", "debug", NULL};

	(void)state;
	nsecrets = 0;
	return bvt_env_init(&env, args);
}

static int
teardown(void **state)
{
	int i;

	(void)state;
	bvt_env_cleanup(&env);
	for (i = 0; i < nsecrets; i++)
		free(secrets[i].s);
	nsecrets = 0;
	return 0;
}

static void
enroll_new(struct bvt_dev *d, const char *account, const char *what)
{
	struct bvt_conn *c = bvt_conn_open(env.relay.port);
	char *tok = bvt_token(&env.tenant, account);

	assert_non_null(c);
	memset(d, 0, sizeof(*d));
	bvt_dev_keygen(d);
	BVT_OK(bvt_enroll(c, d, tok, 0));
	add_token(what, tok);
	add_device_keys(what, d);
	bvt_conn_free(c);
	free(tok);
}

static struct bvt_conn *
online_logged(const struct bvt_dev *d, const char *what)
{
	struct bvt_conn *c = bvt_conn_open(env.relay.port);
	char *sig, name[48];

	assert_non_null(c);
	sig = bvt_auth_signature(d, c->nonce);
	snprintf(name, sizeof(name), "%s auth signature", what);
	add_secret(name, sig, 1);
	free(sig);
	BVT_OK(bvt_auth(c, d));
	return c;
}

/* The response must not echo any secret. */
static void
assert_clean(const json_t *resp)
{
	char *s = json_dumps(resp, JSON_COMPACT);
	int i;

	assert_non_null(s);
	for (i = 0; i < nsecrets; i++)
		if (strstr(s, secrets[i].s))
			fail_msg("an answer contains %s: %s", secrets[i].what,
				 s);
	free(s);
}

static void
t_canaries(void **state)
{
	struct bvt_dev a, b, b2;
	struct bvt_conn *ca, *cb, *c;
	char body[64], refused[64], junk[64], raw[512], *dump, *log;
	size_t dlen, llen;
	json_t *e, *r, *dv;
	int i, leaks = 0;

	(void)state;
	enroll_new(&a, NULL, "token A");
	enroll_new(&b, NULL, "token B");
	/* b's second device, enrolled with a token for b's account. */
	enroll_new(&b2, b.account, "token B2");
	ca = online_logged(&a, "A");
	canary(body, sizeof(body), "BODY");
	add_body("stored body", body);
	canary(refused, sizeof(refused), "REFUSED");
	add_body("refused body", refused);
	canary(junk, sizeof(junk), "JUNK");
	add_secret("junk base64 field", junk, 1);

	/* Refused sends: 409, bad base64, too big. None may echo a body. */
	e = json_array();
	json_array_append_new(e, bvt_envelope(&b, 3, refused, strlen(refused)));
	r = bvt_send(ca, "refused-409", e);
	bvt_assert_err(r, "BV_EDEVICES");
	assert_clean(r);
	json_decref(r);
	snprintf(raw, sizeof(raw),
		 "{\"id\":900,\"op\":\"send\",\"conversation\":\"" NIL_CONV
		 "\",\"message_id\":\"junk\","
		 "\"envelopes\":[{\"account\":\"%s\",\"device\":1,"
		 "\"registration_id\":%u,\"type\":3,\"body\":\"%s\"}]}",
		 b.account, b.regid, junk);
	assert_int_equal(bvt_conn_send_raw(ca, raw, strlen(raw)), 0);
	r = bvt_conn_wait(ca, 900, bvt_ms(BVT_TIMEOUT));
	bvt_assert_err(r, "BV_EBASE64");
	assert_clean(r);
	json_decref(r);
	{
		char *big = malloc(70000);

		assert_non_null(big);
		for (i = 0; i < 70000; i++)
			big[i] = refused[i % strlen(refused)];
		e = json_array();
		json_array_append_new(e, bvt_envelope(&b, 3, big, 70000));
		r = bvt_send(ca, "refused-big", e);
		bvt_assert_err(r, "BV_EENVELOPE");
		assert_clean(r);
		json_decref(r);
		free(big);
	}

	/* The real one, to both of b's devices. */
	e = json_array();
	json_array_append_new(e, bvt_envelope(&b, 3, body, strlen(body)));
	json_array_append_new(e, bvt_envelope(&b2, 3, body, strlen(body)));
	BVT_OK(bvt_send(ca, "canary-1", e));

	/* Bad enrollments and auths: expired token, malformed token,
	 * wrong signature. */
	c = bvt_conn_open(env.relay.port);
	assert_non_null(c);
	{
		char *tok = bvt_token_make(env.tenant.id, env.tenant.sk, NULL,
					   (int64_t)time(NULL) - 60);
		struct bvt_dev d;

		memset(&d, 0, sizeof(d));
		bvt_dev_keygen(&d);
		add_token("expired token", tok);
		r = bvt_enroll(c, &d, tok, 0);
		bvt_assert_err(r, "BV_ETOKEN_EXPIRED");
		assert_clean(r);
		json_decref(r);
		free(tok);
		canary(junk, sizeof(junk), "TOKEN");
		{
			char tok2[160];

			snprintf(tok2, sizeof(tok2), "bvt1.%s.%s", junk, junk);
			add_secret("malformed token", junk, 1);
			r = bvt_enroll(c, &d, tok2, 0);
			bvt_assert_err(r, "BV_ETOKEN");
			assert_clean(r);
			json_decref(r);
		}
	}
	bvt_conn_free(c);
	c = bvt_conn_open(env.relay.port);
	assert_non_null(c);
	{
		struct bvt_dev liar = a;
		char *sig;

		bvt_dev_keygen(&liar);
		sig = bvt_auth_signature(&liar, c->nonce);
		add_secret("bad auth signature", sig, 1);
		free(sig);
		r = bvt_auth(c, &liar);
		bvt_assert_err(r, "BV_EAUTH");
		assert_clean(r);
		json_decref(r);
	}
	bvt_conn_free(c);

	/* Proof that the search works: queued, the body is in the dump. */
	dump = bvt_pg_dump(env.db, &dlen);
	assert_non_null(dump);
	{
		char *h = hex(body, strlen(body));

		if (!bvt_mem_contains(dump, dlen, h, strlen(h)))
			fail_msg("the queued body is not in the dump: the "
				 "search would prove nothing");
		free(h);
	}
	free(dump);

	/* Both of b's devices take it and acknowledge. */
	cb = online_logged(&b, "B");
	dv = bvt_next_deliver(cb, bvt_ms(BVT_TIMEOUT));
	assert_non_null(dv);
	{
		uint8_t got[128];
		size_t n = 0;

		assert_int_equal(
			bvt_unb64(json_string_value(json_object_get(
					  json_object_get(dv, "envelope"),
					  "body")),
				  got, sizeof(got), &n),
			0);
		assert_int_equal(n, strlen(body));
		assert_memory_equal(got, body, n);
	}
	assert_int_equal(bvt_ack(cb, dv), 0);
	json_decref(dv);
	bvt_conn_free(cb);
	cb = online_logged(&b2, "B2");
	dv = bvt_next_deliver(cb, bvt_ms(BVT_TIMEOUT));
	assert_non_null(dv);
	assert_int_equal(bvt_ack(cb, dv), 0);
	json_decref(dv);
	{
		int64_t deadline = bvt_now_ms() + bvt_ms(BVT_TIMEOUT);

		while (bvt_sql_int(env.db, "SELECT count(*) FROM queue", 0,
				   NULL) != 0 &&
		       bvt_now_ms() < deadline)
			bvt_sleep_ms(20);
	}
	assert_int_equal(
		bvt_sql_int(env.db, "SELECT count(*) FROM queue", 0, NULL), 0);
	bvt_conn_free(cb);
	bvt_conn_free(ca);

	/* Stop the relay so its log is complete. */
	assert_int_equal(bvt_relay_term(&env.relay, bvt_ms(30000)), 0);
	dump = bvt_pg_dump(env.db, &dlen);
	assert_non_null(dump);
	log = bvt_file_read(env.relay.log, &llen);
	assert_non_null(log);
	/* The log is not empty: debug logging ran. */
	assert_true(llen > 200);
	for (i = 0; i < nsecrets; i++) {
		const char *s = secrets[i].s;

		if (bvt_mem_contains(log, llen, s, strlen(s))) {
			print_error("LEAK: the relay log contains %s\n",
				    secrets[i].what);
			leaks++;
		}
		if (secrets[i].in_dump &&
		    bvt_mem_contains(dump, dlen, s, strlen(s))) {
			print_error("LEAK: the database dump contains %s\n",
				    secrets[i].what);
			leaks++;
		}
	}
	print_message("searched %d secrets in %zu bytes of log and %zu of "
		      "dump\n",
		      nsecrets, llen, dlen);
	free(dump);
	free(log);
	assert_int_equal(leaks, 0);
}

static int
group_setup(void **state)
{
	(void)state;
	return bvt_pg_start();
}

int
main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(t_canaries, setup, teardown),
	};
	/* clang-format on */

	bvt_open_case = 1; /* not about cases: any two accounts may talk */

	return bvt_done(cmocka_run_group_tests_name("09-canary", tests,
						    group_setup, NULL));
}
