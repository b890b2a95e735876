/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 05-badinput: malformed frames and fields. Each gets its documented code
 * (docs/protocol.md, "Errors"), with "id": null when the id cannot be read
 * and the offending field named; nothing is stored and the connection keeps
 * working.
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

/* A well-formed conversation id (parsing comes before any check). */
#define NIL_CONV "00000000-0000-4000-8000-000000000000"

static struct bvt_env env;
static struct bvt_dev a, b;

#define ANY_ID	(-2)
#define NULL_ID (-1)

static long long
count(const char *table)
{
	char sql[128];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
	return bvt_sql_int(env.db, sql, 0, NULL);
}

static const char *const tables[] = {
	"accounts",	    "devices", "signed_prekeys",
	"one_time_prekeys", "queue",   "enrollment_tokens_used"};
#define NTABLES (sizeof(tables) / sizeof(tables[0]))

static void
snapshot(long long *n)
{
	size_t i;

	for (i = 0; i < NTABLES; i++)
		n[i] = count(tables[i]);
}

static void
assert_unchanged(const long long *n)
{
	size_t i;

	for (i = 0; i < NTABLES; i++)
		if (count(tables[i]) != n[i])
			fail_msg("%s changed: %lld rows, were %lld", tables[i],
				 count(tables[i]), n[i]);
}

static int
setup(void **state)
{
	(void)state;
	if (bvt_env_init(&env, NULL) < 0 ||
	    bvt_new_account(env.relay.port, &env.tenant, &a) < 0 ||
	    bvt_new_account(env.relay.port, &env.tenant, &b) < 0)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	bvt_env_cleanup(&env);
	return 0;
}

/*
 * Sends raw as one text frame (binary when binary is set) and checks the
 * answer: code, id (NULL_ID: "id": null; ANY_ID: null or want_id), and
 * when field is set, that the "field" detail mentions it. Then a ping
 * must still work.
 */
static void
expect(struct bvt_conn *c, const char *raw, int binary, int64_t id,
       const char *code, const char *field)
{
	json_t *r, *e;
	const char *f;
	int64_t wait_id = id == ANY_ID ? NULL_ID : id;

	if (binary)
		assert_int_equal(
			bvt_ws_send(c->ws, BVT_WS_BINARY, raw, strlen(raw)), 0);
	else
		assert_int_equal(bvt_conn_send_raw(c, raw, strlen(raw)), 0);
	if (id == ANY_ID) {
		/* Either answer will do: take the next response. */
		r = NULL;
		{
			int64_t deadline = bvt_now_ms() + bvt_ms(BVT_TIMEOUT);

			while (!r && bvt_now_ms() < deadline) {
				r = bvt_conn_wait(c, NULL_ID, 200);
				if (!r)
					r = bvt_conn_wait(c, 1, 200);
			}
		}
	} else {
		r = bvt_conn_wait(c, wait_id, bvt_ms(BVT_TIMEOUT));
	}
	if (!r)
		fail_msg("no answer (id %lld) to %.200s", (long long)id, raw);
	if (!bvt_err_code(r) || strcmp(bvt_err_code(r), code) != 0)
		fail_msg("%.200s: want %s, got %s", raw, code, bvt_js(r));
	e = bvt_err(r);
	if (!json_is_integer(json_object_get(e, "errno")) ||
	    !json_is_boolean(json_object_get(e, "retryable")) ||
	    !json_is_string(json_object_get(e, "message")))
		fail_msg("%.200s: error lacks errno/retryable/message: %s", raw,
			 bvt_js(r));
	if (field) {
		f = json_string_value(json_object_get(e, "field"));
		if (!f || !strstr(f, field))
			fail_msg("%.200s: want field \"%s\" named, got %s", raw,
				 field, bvt_js(r));
	}
	json_decref(r);
	BVT_OK(bvt_request(c, json_pack("{s:s}", "op", "ping")));
}

static void
send_str(struct bvt_conn *c, const char *s)
{
	assert_int_equal(bvt_conn_send_raw(c, s, strlen(s)), 0);
}

static char *
b64_of_len(size_t n, uint8_t first)
{
	uint8_t buf[128];

	memset(buf, 0x42, sizeof(buf));
	buf[0] = first;
	return bvt_b64(buf, n);
}

static void
t_frames(void **state)
{
	struct bvt_conn *c;
	long long before[NTABLES];

	(void)state;
	c = bvt_online(env.relay.port, &a);
	assert_non_null(c);
	c->next_id = 1000; /* our own pings stay clear of the ids below */
	snapshot(before);
	/* Not a JSON object: EJSON and id null. */
	expect(c, "not json{", 0, NULL_ID, "BV_EJSON", NULL);
	expect(c, "", 0, NULL_ID, "BV_EJSON", NULL);
	expect(c, "[1,2,3]", 0, NULL_ID, "BV_EJSON", NULL);
	expect(c, "[{\"id\":41,\"op\":\"ping\"}]", 0, NULL_ID, "BV_EJSON",
	       NULL);
	expect(c, "\"ping\"", 0, NULL_ID, "BV_EJSON", NULL);
	expect(c, "42", 0, NULL_ID, "BV_EJSON", NULL);
	expect(c, "{\"id\":42,\"op\":\"ping\"", 0, NULL_ID, "BV_EJSON", NULL);
	/* Invalid UTF-8 in a text frame: RFC 6455 section 8.1 has the
	 * connection failed (1007); answering BV_EJSON is fine too. */
	{
		static const char bad[] =
			"{\"id\":43,\"op\":\"ping\",\"x\":\"\xff\xfe\"}";
		json_t *r;
		int code;

		assert_int_equal(bvt_conn_send_raw(c, bad, strlen(bad)), 0);
		r = bvt_conn_wait(c, NULL_ID, bvt_ms(BVT_TIMEOUT));
		if (r) {
			bvt_assert_err(r, "BV_EJSON");
			json_decref(r);
		} else {
			code = bvt_conn_wait_closed(c, bvt_ms(BVT_TIMEOUT));
			if (code != 1007)
				fail_msg("invalid UTF-8: no BV_EJSON, and the "
					 "close code was %d, not 1007",
					 code);
			bvt_conn_free(c);
			c = bvt_online(env.relay.port, &a);
			assert_non_null(c);
			c->next_id = 1000;
		}
	}
	/* A binary frame, even one holding a valid request. */
	expect(c, "{\"id\":1,\"op\":\"ping\"}", 1, ANY_ID, "BV_EJSON", NULL);
	/* Ids of the wrong type or out of range cannot be answered. */
	expect(c, "{\"id\":\"7\",\"op\":\"ping\"}", 0, NULL_ID, "BV_EFIELD",
	       "id");
	expect(c, "{\"id\":0,\"op\":\"ping\"}", 0, NULL_ID, "BV_EFIELD", "id");
	expect(c, "{\"id\":-5,\"op\":\"ping\"}", 0, NULL_ID, "BV_EFIELD", "id");
	expect(c, "{\"id\":2147483648,\"op\":\"ping\"}", 0, NULL_ID,
	       "BV_EFIELD", "id");
	expect(c, "{\"id\":1.5,\"op\":\"ping\"}", 0, NULL_ID, "BV_EFIELD",
	       "id");
	expect(c, "{\"id\":null,\"op\":\"ping\"}", 0, NULL_ID, "BV_EFIELD",
	       "id");
	/* The largest id is fine. */
	send_str(c, "{\"id\":2147483647,\"op\":\"ping\"}");
	BVT_OK(bvt_conn_wait(c, 2147483647, bvt_ms(BVT_TIMEOUT)));
	/* op. */
	expect(c, "{\"id\":44,\"op\":5}", 0, 44, "BV_EFIELD", "op");
	expect(c, "{\"id\":45}", 0, 45, "BV_EFIELD", "op");
	expect(c, "{\"id\":46,\"op\":\"frobnicate\"}", 0, 46, "BV_EOP", NULL);
	expect(c, "{\"id\":47,\"op\":\"PING\"}", 0, 47, "BV_EOP", NULL);
	/* Unknown fields are ignored. */
	send_str(c, "{\"id\":48,\"op\":\"ping\",\"future\":[1]}");
	BVT_OK(bvt_conn_wait(c, 48, bvt_ms(BVT_TIMEOUT)));
	/* An answer to a request the relay never made is not answered. */
	send_str(c, "{\"id\":999,\"ok\":{}}");
	BVT_OK(bvt_request(c, json_pack("{s:s}", "op", "ping")));
	{
		json_t *stray = bvt_conn_wait(c, 999, 300);

		if (stray)
			fail_msg("the relay answered an answer: %s",
				 bvt_js(stray));
	}
	assert_unchanged(before);
	bvt_conn_free(c);
}

static void
t_keys_put_fields(void **state)
{
	struct bvt_conn *c;
	long long before[NTABLES];
	char raw[2048];
	char *k33 = b64_of_len(33, 5), *k32 = b64_of_len(32, 5),
	     *s64 = b64_of_len(64, 1), *s63 = b64_of_len(63, 1);
	char s64np[96];

	(void)state;
	c = bvt_online(env.relay.port, &a);
	assert_non_null(c);
	c->next_id = 1000; /* our own pings stay clear of the ids below */
	snapshot(before);
	/* Invalid base64 in the second of two prekeys: nothing stored. */
	snprintf(raw, sizeof(raw),
		 "{\"id\":50,\"op\":\"keys_put\",\"one_time_prekeys\":"
		 "[{\"id\":1,\"key\":\"%s\"},{\"id\":2,\"key\":\"BQ!!\"}]}",
		 k33);
	expect(c, raw, 0, 50, "BV_EBASE64", "key");
	/* Base64 without its padding. */
	snprintf(s64np, sizeof(s64np), "%s", s64);
	s64np[strcspn(s64np, "=")] = '\0';
	snprintf(raw, sizeof(raw),
		 "{\"id\":51,\"op\":\"keys_put\",\"signed_prekey\":"
		 "{\"id\":1,\"key\":\"%s\",\"signature\":\"%s\"}}",
		 k33, s64np);
	expect(c, raw, 0, 51, "BV_EBASE64", "signature");
	/* URL-safe alphabet is not standard base64. */
	snprintf(raw, sizeof(raw),
		 "{\"id\":52,\"op\":\"keys_put\",\"one_time_prekeys\":"
		 "[{\"id\":1,\"key\":\"BQ-_"
		 "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJC\"}]}");
	expect(c, raw, 0, 52, "BV_EBASE64", "key");
	/* Wrong lengths. */
	snprintf(raw, sizeof(raw),
		 "{\"id\":53,\"op\":\"keys_put\",\"one_time_prekeys\":"
		 "[{\"id\":1,\"key\":\"%s\"}]}",
		 k32);
	expect(c, raw, 0, 53, "BV_EFIELD", "key");
	snprintf(raw, sizeof(raw),
		 "{\"id\":54,\"op\":\"keys_put\",\"signed_prekey\":"
		 "{\"id\":1,\"key\":\"%s\",\"signature\":\"%s\"}}",
		 k33, s63);
	expect(c, raw, 0, 54, "BV_EFIELD", "signature");
	/* Wrong types and ranges. */
	snprintf(raw, sizeof(raw),
		 "{\"id\":55,\"op\":\"keys_put\",\"one_time_prekeys\":"
		 "[{\"id\":\"1\",\"key\":\"%s\"}]}",
		 k33);
	expect(c, raw, 0, 55, "BV_EFIELD", "id");
	expect(c,
	       "{\"id\":57,\"op\":\"keys_put\",\"one_time_prekeys\":{\"id\":1}"
	       "}",
	       0, 57, "BV_EFIELD", "one_time_prekeys");
	snprintf(raw, sizeof(raw),
		 "{\"id\":58,\"op\":\"keys_put\",\"signed_prekey\":"
		 "{\"id\":1,\"key\":\"%s\"}}",
		 k33);
	expect(c, raw, 0, 58, "BV_EFIELD", "signature");
	assert_unchanged(before);
	BVT_OK(bvt_keys_put(c, 1, 1, 2));
	free(k33);
	free(k32);
	free(s64);
	free(s63);
	bvt_conn_free(c);
}

/* A send whose one envelope has field name set to the JSON value v. */
static char *
send_with(int64_t id, const char *name, const char *v)
{
	json_t *e = bvt_envelope(&b, 1, "hi", 2), *val, *req;
	json_error_t err;
	char *s;

	val = json_loads(v, JSON_DECODE_ANY, &err);
	assert_non_null(val);
	json_object_set_new(e, name, val);
	req = json_pack("{s:I, s:s, s:s, s:s, s:[o]}", "id", (json_int_t)id,
			"op", "send", "conversation", NIL_CONV, "message_id",
			"m1", "envelopes", e);
	s = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	return s;
}

static void
t_send_fields(void **state)
{
	struct bvt_conn *c;
	long long before[NTABLES];
	char raw[4096], *s;
	char uuid_upper[37];
	size_t i;

	(void)state;
	c = bvt_online(env.relay.port, &a);
	assert_non_null(c);
	c->next_id = 1000; /* our own pings stay clear of the ids below */
	snapshot(before);
#define SEND_WITH(id, name, v, code, field)                                    \
	do {                                                                   \
		s = send_with(id, name, v);                                    \
		expect(c, s, 0, id, code, field);                              \
		free(s);                                                       \
	} while (0)
	SEND_WITH(60, "type", "256", "BV_EFIELD", "type");
	SEND_WITH(61, "type", "\"1\"", "BV_EFIELD", "type");
	SEND_WITH(62, "device", "0", "BV_EFIELD", "device");
	SEND_WITH(63, "device", "2147483648", "BV_EFIELD", "device");
	SEND_WITH(64, "registration_id", "0", "BV_EFIELD", "registration_id");
	SEND_WITH(65, "account", "\"not-a-uuid\"", "BV_EFIELD", "account");
	for (i = 0; i < 37; i++)
		uuid_upper[i] = (b.account[i] >= 'a' && b.account[i] <= 'f')
					? (char)(b.account[i] - 32)
					: b.account[i];
	snprintf(raw, sizeof(raw), "\"%s\"", uuid_upper);
	SEND_WITH(66, "account", raw, "BV_EFIELD", "account");
	SEND_WITH(67, "body", "\"aGk\"", "BV_EBASE64", "body");
	SEND_WITH(68, "body", "\"a G k=\"", "BV_EBASE64", "body");
	SEND_WITH(69, "body", "7", "BV_EFIELD", "body");

	/* message_id: spaces, too long, empty. */
	snprintf(raw, sizeof(raw),
		 "{\"id\":70,\"op\":\"send\",\"conversation\":\"" NIL_CONV
		 "\",\"message_id\":\"has space\","
		 "\"envelopes\":[{\"account\":\"%s\",\"device\":1,"
		 "\"registration_id\":%u,\"type\":1,\"body\":\"aGk=\"}]}",
		 b.account, b.regid);
	expect(c, raw, 0, 70, "BV_EFIELD", "message_id");
	snprintf(raw, sizeof(raw),
		 "{\"id\":71,\"op\":\"send\",\"conversation\":\"" NIL_CONV
		 "\",\"message_id\":\"%065d\","
		 "\"envelopes\":[{\"account\":\"%s\",\"device\":1,"
		 "\"registration_id\":%u,\"type\":1,\"body\":\"aGk=\"}]}",
		 0, b.account, b.regid);
	expect(c, raw, 0, 71, "BV_EFIELD", "message_id");
	snprintf(raw, sizeof(raw),
		 "{\"id\":72,\"op\":\"send\",\"conversation\":\"" NIL_CONV
		 "\",\"message_id\":\"\","
		 "\"envelopes\":[{\"account\":\"%s\",\"device\":1,"
		 "\"registration_id\":%u,\"type\":1,\"body\":\"aGk=\"}]}",
		 b.account, b.regid);
	expect(c, raw, 0, 72, "BV_EFIELD", "message_id");
	/* conversation: missing, not a UUID; partial not a boolean. */
	snprintf(raw, sizeof(raw),
		 "{\"id\":77,\"op\":\"send\",\"message_id\":\"m\","
		 "\"envelopes\":[{\"account\":\"%s\",\"device\":1,"
		 "\"registration_id\":%u,\"type\":1,\"body\":\"aGk=\"}]}",
		 b.account, b.regid);
	expect(c, raw, 0, 77, "BV_EFIELD", "conversation");
	expect(c,
	       "{\"id\":78,\"op\":\"send\",\"conversation\":\"c0\","
	       "\"message_id\":\"m\",\"envelopes\":[]}",
	       0, 78, "BV_EFIELD", "conversation");
	expect(c,
	       "{\"id\":79,\"op\":\"send\",\"conversation\":\"" NIL_CONV
	       "\",\"partial\":1,\"message_id\":\"m\",\"envelopes\":[]}",
	       0, 79, "BV_EFIELD", "partial");
	/* envelopes of the wrong type. */
	expect(c,
	       "{\"id\":73,\"op\":\"send\",\"conversation\":\"" NIL_CONV
	       "\",\"message_id\":\"m\","
	       "\"envelopes\":{}}",
	       0, 73, "BV_EFIELD", "envelopes");
	/* Two envelopes for the same device. */
	snprintf(raw, sizeof(raw),
		 "{\"id\":74,\"op\":\"send\",\"conversation\":\"" NIL_CONV
		 "\",\"message_id\":\"dup\","
		 "\"envelopes\":[{\"account\":\"%s\",\"device\":1,"
		 "\"registration_id\":%u,\"type\":1,\"body\":\"aGk=\"},"
		 "{\"account\":\"%s\",\"device\":1,"
		 "\"registration_id\":%u,\"type\":1,\"body\":\"aGk=\"}]}",
		 b.account, b.regid, b.account, b.regid);
	expect(c, raw, 0, 74, "BV_EFIELD", NULL);
	/* keys_get without an account. */
	expect(c, "{\"id\":75,\"op\":\"keys_get\",\"device\":1}", 0, 75,
	       "BV_EFIELD", "account");
	expect(c,
	       "{\"id\":76,\"op\":\"keys_get\",\"account\":\"x\",\"device\":1}",
	       0, 76, "BV_EFIELD", "account");
#undef SEND_WITH
	assert_unchanged(before);
	{
		const struct bvt_dev *to[] = {&b};

		BVT_OK(bvt_send(c, "good", bvt_envelopes_to(to, 1, "good")));
	}
	assert_int_equal(count("queue"), 1);
	bvt_conn_free(c);
}

/* auth and enroll fields, on connections that are not authenticated. */
static void
t_auth_fields(void **state)
{
	struct bvt_conn *c;
	long long before[NTABLES];
	char raw[2048], *sig63 = b64_of_len(63, 1), *sig64 = b64_of_len(64, 1),
			*k31 = b64_of_len(31, 1), *k32 = b64_of_len(32, 1),
			*ik32 = b64_of_len(32, 5), *ik33 = b64_of_len(33, 5),
			*tok = bvt_token(&env.tenant, NULL);

	(void)state;
	snapshot(before);
	c = bvt_conn_open(env.relay.port);
	assert_non_null(c);
	c->next_id = 1000;
	snprintf(raw, sizeof(raw),
		 "{\"id\":80,\"op\":\"auth\",\"account\":\"%s\",\"device\":1,"
		 "\"signature\":\"%s\"}",
		 a.account, sig63);
	expect(c, raw, 0, 80, "BV_EFIELD", "signature");
	snprintf(raw, sizeof(raw),
		 "{\"id\":81,\"op\":\"auth\",\"account\":\"nope\",\"device\":1,"
		 "\"signature\":\"%s\"}",
		 sig64);
	expect(c, raw, 0, 81, "BV_EFIELD", "account");
	snprintf(raw, sizeof(raw),
		 "{\"id\":82,\"op\":\"auth\",\"account\":\"%s\",\"device\":0,"
		 "\"signature\":\"%s\"}",
		 a.account, sig64);
	expect(c, raw, 0, 82, "BV_EFIELD", "device");
	snprintf(raw, sizeof(raw),
		 "{\"id\":83,\"op\":\"enroll\",\"token\":\"%s\","
		 "\"registration_id\":1,\"identity_key\":\"%s\","
		 "\"auth_key\":\"%s\",\"signature\":\"%s\"}",
		 tok, ik33, k31, sig64);
	expect(c, raw, 0, 83, "BV_EFIELD", "auth_key");
	snprintf(raw, sizeof(raw),
		 "{\"id\":84,\"op\":\"enroll\",\"token\":\"%s\","
		 "\"registration_id\":1,\"identity_key\":\"%s\","
		 "\"auth_key\":\"%s\",\"signature\":\"%s\"}",
		 tok, ik32, k32, sig64);
	expect(c, raw, 0, 84, "BV_EFIELD", "identity_key");
	snprintf(raw, sizeof(raw),
		 "{\"id\":85,\"op\":\"enroll\",\"token\":\"%s\","
		 "\"registration_id\":0,\"identity_key\":\"%s\","
		 "\"auth_key\":\"%s\",\"signature\":\"%s\"}",
		 tok, ik33, k32, sig64);
	expect(c, raw, 0, 85, "BV_EFIELD", "registration_id");
	snprintf(raw, sizeof(raw),
		 "{\"id\":86,\"op\":\"enroll\",\"token\":7,"
		 "\"registration_id\":1,\"identity_key\":\"%s\","
		 "\"auth_key\":\"%s\",\"signature\":\"%s\"}",
		 ik33, k32, sig64);
	expect(c, raw, 0, 86, "BV_EFIELD", "token");
	assert_unchanged(before);
	/* Still usable: a proper enrollment with the same token. */
	{
		struct bvt_dev d;

		memset(&d, 0, sizeof(d));
		bvt_dev_keygen(&d);
		BVT_OK(bvt_enroll(c, &d, tok, 0));
	}
	bvt_conn_free(c);
	free(sig63);
	free(sig64);
	free(k31);
	free(k32);
	free(ik32);
	free(ik33);
	free(tok);
}

/*
 * HTTP requests that lws refuses while it parses them: the connection is
 * dropped or answered with an error, and the relay lives on. A NUL in the
 * path used to crash it (LWS_CALLBACK_CLOSED_HTTP came without a pss).
 */
static void
t_http_garbage(void **state)
{
	static const char *const reqs[] = {
		"GET /x%00y HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /widget/app.js%00.png HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /v1/fagsystem/%00 HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /%00 HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx",
		"BREW /pot HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/9.9\r\nHost: a\r\n\r\n",
		"\r\n\r\n\r\n",
	};
	char *head, *body;
	size_t i;
	int st;

	(void)state;
	for (i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		st = bvt_http_raw(env.relay.port, reqs[i], strlen(reqs[i]),
				  bvt_ms(3000), &head, &body);
		print_message("request %zu: %d\n", i, st);
		assert_true(st == -1 || (st >= 400 && st < 500));
		free(head);
		free(body);
		assert_int_equal(bvt_http_get(env.relay.port, "/healthz",
					      bvt_ms(BVT_TIMEOUT), NULL),
				 200);
	}
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
		T(t_frames),
		T(t_keys_put_fields),
		T(t_send_fields),
		T(t_auth_fields),
		T(t_http_garbage),
	};
	/* clang-format on */

	bvt_open_case = 1; /* not about cases: any two accounts may talk */

	return bvt_done(cmocka_run_group_tests_name("05-badinput", tests,
						    group_setup, NULL));
}
