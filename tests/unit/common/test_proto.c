/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_proto.c: unit tests of common/bv_proto.c: a valid frame of every
 * operation, every refusal with its code and field path, each limit at the
 * boundary and one over, allocation failures, the signed-message texts and
 * error frames. Frames are built with jansson and then mutated.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bv_error.h"
#include "bv_proto.h"
#include "bv_token.h"
#include "bv_util.h"

#define ACC1 "3f0c2a4e-1b2c-4d5e-8f90-a1b2c3d4e5f6"
#define ACC2 "9e1d0000-1111-4222-8333-444455556666"
/* A digest in lower-case hex: ff ff … ff fe. */
#define SHA_FF                                                                 \
	"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"       \
	"fe"

static struct bv_limits lim;

static int
setup(void **state)
{
	(void)state;
	bv_limits_default(&lim);
	return 0;
}

/* A JSON string holding the base64 of n bytes of value fill. */
static json_t *
b64(size_t n, uint8_t fill)
{
	uint8_t *buf = malloc(n ? n : 1);
	json_t *j;
	char *s;

	assert_non_null(buf);
	memset(buf, fill, n);
	s = bv_b64_encode(buf, n);
	assert_non_null(s);
	j = json_string(s);
	bv_free(s);
	free(buf);
	return j;
}

static json_t *
auth_frame(void)
{
	return json_pack("{s:i, s:s, s:s, s:i, s:o}", "id", 1, "op", "auth",
			 "account", ACC1, "device", 1, "signature", b64(64, 7));
}

static json_t *
enroll_frame(void)
{
	return json_pack("{s:i, s:s, s:s, s:i, s:o, s:o, s:o}", "id", 2, "op",
			 "enroll", "token", "bvt1.abc.def", "registration_id",
			 4711, "identity_key", b64(33, 5), "auth_key",
			 b64(32, 6), "signature", b64(64, 8));
}

static json_t *
prekey(int id)
{
	return json_pack("{s:i, s:o}", "id", id, "key", b64(33, (uint8_t)id));
}

static json_t *
keys_put_frame(size_t n_otk)
{
	json_t *otks = json_array();
	size_t i;

	for (i = 0; i < n_otk; i++)
		json_array_append_new(otks, prekey((int)i + 1));
	return json_pack("{s:i, s:s, s:{s:i, s:o, s:o}, s:o}", "id", 3, "op",
			 "keys_put", "signed_prekey", "id", 1, "key",
			 b64(33, 9), "signature", b64(64, 10),
			 "one_time_prekeys", otks);
}

static json_t *
keys_get_frame(void)
{
	return json_pack("{s:i, s:s, s:s, s:i}", "id", 4, "op", "keys_get",
			 "account", ACC1, "device", 2);
}

static json_t *
envelope(const char *account, int device, size_t body_len)
{
	return json_pack("{s:s, s:i, s:i, s:i, s:o}", "account", account,
			 "device", device, "registration_id", 100 + device,
			 "type", 3, "body", b64(body_len, 0x33));
}

static json_t *
send_frame(size_t n)
{
	json_t *envs = json_array();
	size_t i;

	for (i = 0; i < n; i++)
		json_array_append_new(envs, envelope(i % 2 ? ACC2 : ACC1,
						     (int)(i / 2) + 1, 10 + i));
	return json_pack("{s:i, s:s, s:s, s:s, s:o}", "id", 5, "op", "send",
			 "conversation", ACC2, "message_id", "01J9Z3K7W5",
			 "envelopes", envs);
}

/* Sets key of obj to v (stolen) and returns obj, for one-line mutations. */
static json_t *
set(json_t *obj, const char *key, json_t *v)
{
	assert_int_equal(json_object_set_new(obj, key, v), 0);
	return obj;
}

static json_t *
del(json_t *obj, const char *key)
{
	json_object_del(obj, key);
	return obj;
}

static json_t *
env_of(json_t *frame, size_t i)
{
	return json_array_get(json_object_get(frame, "envelopes"), i);
}

/* Parses frame (consumed) with l. */
static int
parse_frame(json_t *frame, const struct bv_limits *l, struct bv_request **r,
	    struct bv_parse_error *e)
{
	char *s;
	int rc;

	assert_non_null(frame);
	s = json_dumps(frame, JSON_COMPACT);
	assert_non_null(s);
	json_decref(frame);
	rc = bv_request_parse(s, strlen(s), l, r, e);
	free(s);
	return rc;
}

static struct bv_request *
parse_ok(json_t *frame, const struct bv_limits *l)
{
	struct bv_parse_error e;
	struct bv_request *r = NULL;
	int rc;

	rc = parse_frame(frame, l, &r, &e);
	if (rc != 0)
		fail_msg("expected success, got %s field \"%s\"",
			 bv_errname(rc), e.field);
	assert_non_null(r);
	return r;
}

#define SENTINEL ((struct bv_request *)(uintptr_t)0x1234)

static void
expect_err_at(int line, json_t *frame, const struct bv_limits *l, int code,
	      const char *field, int64_t id)
{
	struct bv_request *r = SENTINEL;
	struct bv_parse_error e;
	int rc;

	rc = parse_frame(frame, l, &r, &e);
	if (rc != code || e.code != code || strcmp(e.field, field) != 0 ||
	    e.id != id || r != SENTINEL)
		fail_msg("line %d: got %s field \"%s\" id %lld; want %s \"%s\" "
			 "id %lld",
			 line, bv_errname(rc), e.field, (long long)e.id,
			 bv_errname(code), field, (long long)id);
}

#define EXPECT_ERR(frame, code, field, id)                                     \
	expect_err_at(__LINE__, frame, &lim, code, field, id)
#define EXPECT_ERR_L(frame, l, code, field, id)                                \
	expect_err_at(__LINE__, frame, l, code, field, id)

static void
expect_raw_at(int line, const char *buf, size_t len, int code, int64_t id)
{
	struct bv_request *r = SENTINEL;
	struct bv_parse_error e;
	int rc;

	rc = bv_request_parse(buf, len, &lim, &r, &e);
	if (rc != code || e.code != code || e.id != id || r != SENTINEL)
		fail_msg("line %d: got %s id %lld; want %s id %lld", line,
			 bv_errname(rc), (long long)e.id, bv_errname(code),
			 (long long)id);
}

#define EXPECT_RAW(s, code, id) expect_raw_at(__LINE__, s, strlen(s), code, id)

static void
test_limits_default(void **state)
{
	struct bv_limits l;

	(void)state;
	bv_limits_default(&l);
	assert_int_equal(l.max_frame_bytes, 262144);
	assert_int_equal(l.max_envelope_bytes, 65536);
	assert_int_equal(l.max_envelopes_per_send, 100);
	assert_int_equal(l.max_prekeys_per_upload, 100);
}

static void
test_valid_auth(void **state)
{
	struct bv_request *r;

	(void)state;
	r = parse_ok(auth_frame(), &lim);
	assert_int_equal(r->op, BV_OP_AUTH);
	assert_int_equal(r->id, 1);
	assert_string_equal(r->u.auth.account, ACC1);
	assert_int_equal(r->u.auth.device, 1);
	assert_int_equal(r->u.auth.signature[0], 7);
	assert_int_equal(r->u.auth.signature[63], 7);
	bv_request_free(r);

	/* Unknown members are ignored; the largest id and device pass. */
	r = parse_ok(set(set(set(auth_frame(), "future", json_true()), "id",
			     json_integer(BV_ID_MAX)),
			 "device", json_integer(BV_ID_MAX)),
		     &lim);
	assert_int_equal(r->id, BV_ID_MAX);
	assert_int_equal(r->u.auth.device, BV_ID_MAX);
	bv_request_free(r);
}

static void
test_valid_enroll(void **state)
{
	struct bv_request *r;

	(void)state;
	r = parse_ok(enroll_frame(), &lim);
	assert_int_equal(r->op, BV_OP_ENROLL);
	assert_int_equal(r->id, 2);
	assert_string_equal(r->u.enroll.token, "bvt1.abc.def");
	assert_int_equal(r->u.enroll.registration_id, 4711);
	assert_int_equal(r->u.enroll.identity_key[32], 5);
	assert_int_equal(r->u.enroll.auth_key[31], 6);
	assert_int_equal(r->u.enroll.signature[63], 8);
	assert_int_equal(r->u.enroll.replaces, 0);
	bv_request_free(r);

	r = parse_ok(set(enroll_frame(), "replaces", json_integer(3)), &lim);
	assert_int_equal(r->u.enroll.replaces, 3);
	bv_request_free(r);
	r = parse_ok(set(enroll_frame(), "replaces", json_null()), &lim);
	assert_int_equal(r->u.enroll.replaces, 0);
	bv_request_free(r);
}

static void
test_valid_keys(void **state)
{
	struct bv_request *r;

	(void)state;
	r = parse_ok(keys_put_frame(2), &lim);
	assert_int_equal(r->op, BV_OP_KEYS_PUT);
	assert_true(r->u.keys_put.has_signed_prekey);
	assert_int_equal(r->u.keys_put.signed_prekey.id, 1);
	assert_int_equal(r->u.keys_put.signed_prekey.key[0], 9);
	assert_int_equal(r->u.keys_put.signed_prekey_signature[0], 10);
	assert_int_equal(r->u.keys_put.n_one_time, 2);
	assert_int_equal(r->u.keys_put.one_time[1].id, 2);
	assert_int_equal(r->u.keys_put.one_time[1].key[32], 2);
	bv_request_free(r);

	/* Both members are optional; prekey id 0 is allowed. */
	r = parse_ok(del(del(keys_put_frame(0), "signed_prekey"),
			 "one_time_prekeys"),
		     &lim);
	assert_false(r->u.keys_put.has_signed_prekey);
	assert_int_equal(r->u.keys_put.n_one_time, 0);
	assert_null(r->u.keys_put.one_time);
	bv_request_free(r);
	r = parse_ok(set(keys_put_frame(0), "one_time_prekeys", json_array()),
		     &lim);
	assert_int_equal(r->u.keys_put.n_one_time, 0);
	bv_request_free(r);
	r = parse_ok(set(del(keys_put_frame(0), "signed_prekey"),
			 "one_time_prekeys", json_pack("[o]", prekey(0))),
		     &lim);
	assert_int_equal(r->u.keys_put.n_one_time, 1);
	assert_int_equal(r->u.keys_put.one_time[0].id, 0);
	bv_request_free(r);

	r = parse_ok(keys_get_frame(), &lim);
	assert_int_equal(r->op, BV_OP_KEYS_GET);
	assert_string_equal(r->u.keys_get.account, ACC1);
	assert_int_equal(r->u.keys_get.device, 2);
	bv_request_free(r);
	r = parse_ok(del(keys_get_frame(), "device"), &lim);
	assert_int_equal(r->u.keys_get.device, 0);
	bv_request_free(r);

	r = parse_ok(json_pack("{s:i, s:s}", "id", 9, "op", "keys_count"),
		     &lim);
	assert_int_equal(r->op, BV_OP_KEYS_COUNT);
	assert_int_equal(r->id, 9);
	bv_request_free(r);
}

static void
test_valid_send(void **state)
{
	struct bv_request *r;

	(void)state;
	r = parse_ok(send_frame(3), &lim);
	assert_int_equal(r->op, BV_OP_SEND);
	assert_string_equal(r->u.send.conversation, ACC2);
	assert_int_equal(r->u.send.partial, 0);
	assert_string_equal(r->u.send.message_id, "01J9Z3K7W5");
	assert_int_equal(r->u.send.n_envelopes, 3);
	assert_string_equal(r->u.send.envelopes[1].account, ACC2);
	assert_int_equal(r->u.send.envelopes[1].device, 1);
	assert_int_equal(r->u.send.envelopes[2].device, 2);
	assert_int_equal(r->u.send.envelopes[2].registration_id, 102);
	assert_int_equal(r->u.send.envelopes[2].type, 3);
	assert_int_equal(r->u.send.envelopes[2].body_len, 12);
	assert_int_equal(r->u.send.envelopes[2].body[11], 0x33);
	bv_request_free(r);

	/* Same device number on two accounts is fine; type 0 and 255. */
	r = parse_ok(send_frame(2), &lim);
	assert_int_equal(r->u.send.envelopes[0].device,
			 r->u.send.envelopes[1].device);
	bv_request_free(r);
	r = parse_ok(set(send_frame(1), "message_id", json_string("aZ09-_")),
		     &lim);
	bv_request_free(r);
	{
		json_t *f = send_frame(2);

		set(env_of(f, 0), "type", json_integer(0));
		set(env_of(f, 1), "type", json_integer(255));
		r = parse_ok(f, &lim);
		assert_int_equal(r->u.send.envelopes[0].type, 0);
		assert_int_equal(r->u.send.envelopes[1].type, 255);
		bv_request_free(r);
	}
}

static void
test_valid_ping_response(void **state)
{
	struct bv_request *r;

	(void)state;
	r = parse_ok(json_pack("{s:i, s:s}", "id", 6, "op", "ping"), &lim);
	assert_int_equal(r->op, BV_OP_PING);
	bv_request_free(r);

	r = parse_ok(json_pack("{s:i, s:{}}", "id", 90, "ok"), &lim);
	assert_int_equal(r->op, BV_OP_RESPONSE);
	assert_int_equal(r->id, 90);
	assert_false(r->u.response.is_error);
	bv_request_free(r);
	r = parse_ok(json_pack("{s:i, s:{s:s}}", "id", 91, "error", "code",
			       "BV_EINTERNAL"),
		     &lim);
	assert_int_equal(r->op, BV_OP_RESPONSE);
	assert_true(r->u.response.is_error);
	bv_request_free(r);
	/* "ok" decides, even next to an "op". */
	r = parse_ok(
		json_pack("{s:i, s:s, s:{}}", "id", 92, "op", "nope", "ok"),
		&lim);
	assert_int_equal(r->op, BV_OP_RESPONSE);
	bv_request_free(r);
	bv_request_free(NULL);
}

static void
test_not_json(void **state)
{
	static const char *const bad[] = {
		"",
		"not json",
		"[1, 2]",
		"\"str\"",
		"42",
		"null",
		"{\"id\": 1, \"op\": \"ping\"",
		"{\"id\": 1, \"op\": \"ping\"} {}",
		"{\"id\": 1, \"op\": \"ping\"} x",
		"{\"id\": 1, \"id\": 2, \"op\": \"ping\"}",
		"{\"id\": 1, \"op\": \"pi\\u0000ng\"}",
		"{\"id\": 1, \"op\": \"\xc3\x28\"}",
		"{\"id\": 99999999999999999999999, \"op\": \"ping\"}",
		"{'id': 1}",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_raw_at((int)i, bad[i], strlen(bad[i]), BV_EJSON, -1);
	/* An embedded NUL byte in the frame. */
	expect_raw_at(__LINE__, "{\"id\":1,\0\"op\":\"ping\"}", 22, BV_EJSON,
		      -1);
	/* Trailing white space is fine. */
	{
		const char *ok = "{\"id\": 1, \"op\": \"ping\"}  \n";
		struct bv_request *r = NULL;
		struct bv_parse_error e;

		assert_int_equal(bv_request_parse(ok, strlen(ok), &lim, &r, &e),
				 0);
		assert_int_equal(e.id, 1);
		bv_request_free(r);
	}
}

static void
test_frame_limit(void **state)
{
	struct bv_limits small = lim;
	struct bv_request *r = NULL;
	struct bv_parse_error e;
	char buf[128];

	(void)state;
	small.max_frame_bytes = 64;
	memset(buf, ' ', sizeof(buf));
	memcpy(buf, "{\"id\":1,\"op\":\"ping\"}", 20);
	assert_int_equal(bv_request_parse(buf, 64, &small, &r, &e), 0);
	bv_request_free(r);
	r = SENTINEL;
	assert_int_equal(bv_request_parse(buf, 65, &small, &r, &e), BV_EFRAME);
	assert_int_equal(e.code, BV_EFRAME);
	assert_int_equal(e.id, -1);
	assert_ptr_equal(r, SENTINEL);
	/* NULL limits mean the defaults; NULL err is allowed. */
	r = NULL;
	assert_int_equal(bv_request_parse(buf, 128, NULL, &r, NULL), 0);
	bv_request_free(r);
	assert_int_equal(bv_request_parse(NULL, 0, NULL, &r, &e), BV_EINVAL);
}

static void
test_bad_id(void **state)
{
	(void)state;
	EXPECT_ERR(del(auth_frame(), "id"), BV_EFIELD, "id", -1);
	EXPECT_ERR(set(auth_frame(), "id", json_integer(0)), BV_EFIELD, "id",
		   -1);
	EXPECT_ERR(set(auth_frame(), "id", json_integer(-1)), BV_EFIELD, "id",
		   -1);
	EXPECT_ERR(set(auth_frame(), "id", json_integer(2147483648LL)),
		   BV_EFIELD, "id", -1);
	EXPECT_ERR(set(auth_frame(), "id", json_real(1.0)), BV_EFIELD, "id",
		   -1);
	EXPECT_ERR(set(auth_frame(), "id", json_string("1")), BV_EFIELD, "id",
		   -1);
	EXPECT_ERR(set(auth_frame(), "id", json_null()), BV_EFIELD, "id", -1);
	EXPECT_ERR(set(auth_frame(), "id", json_true()), BV_EFIELD, "id", -1);
	/* An event-shaped frame (no id) from a client. */
	EXPECT_ERR(json_pack("{s:s}", "op", "ping"), BV_EFIELD, "id", -1);
	EXPECT_ERR(json_pack("{s:{}}", "ok"), BV_EFIELD, "id", -1);
}

static void
test_bad_op(void **state)
{
	(void)state;
	EXPECT_ERR(json_pack("{s:i}", "id", 7), BV_EFIELD, "op", 7);
	EXPECT_ERR(json_pack("{s:i, s:i}", "id", 7, "op", 1), BV_EFIELD, "op",
		   7);
	EXPECT_ERR(json_pack("{s:i, s:n}", "id", 7, "op"), BV_EFIELD, "op", 7);
	EXPECT_ERR(json_pack("{s:i, s:s}", "id", 7, "op", "nope"), BV_EOP, "op",
		   7);
	EXPECT_ERR(json_pack("{s:i, s:s}", "id", 7, "op", "PING"), BV_EOP, "op",
		   7);
	EXPECT_ERR(json_pack("{s:i, s:s}", "id", 7, "op", ""), BV_EOP, "op", 7);
	/* Relay-to-client operations are not requests a client may make. */
	EXPECT_ERR(json_pack("{s:i, s:s}", "id", 7, "op", "deliver"), BV_EOP,
		   "op", 7);
	EXPECT_ERR(json_pack("{s:i, s:s}", "id", 7, "op", "challenge"), BV_EOP,
		   "op", 7);
}

static void
test_bad_response(void **state)
{
	(void)state;
	EXPECT_ERR(json_pack("{s:i, s:i}", "id", 8, "ok", 1), BV_EFIELD, "ok",
		   8);
	EXPECT_ERR(json_pack("{s:i, s:n}", "id", 8, "ok"), BV_EFIELD, "ok", 8);
	EXPECT_ERR(json_pack("{s:i, s:s}", "id", 8, "error", "x"), BV_EFIELD,
		   "error", 8);
	EXPECT_ERR(json_pack("{s:i, s:{}, s:{}}", "id", 8, "ok", "error"),
		   BV_EFIELD, "error", 8);
}

static void
test_bad_auth(void **state)
{
	(void)state;
	EXPECT_ERR(del(auth_frame(), "account"), BV_EFIELD, "account", 1);
	EXPECT_ERR(set(auth_frame(), "account", json_integer(1)), BV_EFIELD,
		   "account", 1);
	EXPECT_ERR(set(auth_frame(), "account",
		       json_string("3F0C2A4E-1B2C-4D5E-8F90-A1B2C3D4E5F6")),
		   BV_EFIELD, "account", 1);
	EXPECT_ERR(set(auth_frame(), "account", json_string(ACC1 "0")),
		   BV_EFIELD, "account", 1);
	EXPECT_ERR(set(auth_frame(), "account", json_string("")), BV_EFIELD,
		   "account", 1);
	EXPECT_ERR(del(auth_frame(), "device"), BV_EFIELD, "device", 1);
	EXPECT_ERR(set(auth_frame(), "device", json_integer(0)), BV_EFIELD,
		   "device", 1);
	EXPECT_ERR(set(auth_frame(), "device", json_integer(2147483648LL)),
		   BV_EFIELD, "device", 1);
	EXPECT_ERR(set(auth_frame(), "device", json_string("1")), BV_EFIELD,
		   "device", 1);
	EXPECT_ERR(del(auth_frame(), "signature"), BV_EFIELD, "signature", 1);
	EXPECT_ERR(set(auth_frame(), "signature", json_integer(1)), BV_EFIELD,
		   "signature", 1);
	EXPECT_ERR(set(auth_frame(), "signature", json_string("!!!!")),
		   BV_EBASE64, "signature", 1);
	EXPECT_ERR(set(auth_frame(), "signature", json_string("AAAA\n")),
		   BV_EBASE64, "signature", 1);
	EXPECT_ERR(set(auth_frame(), "signature", b64(63, 1)), BV_EFIELD,
		   "signature", 1);
	EXPECT_ERR(set(auth_frame(), "signature", b64(65, 1)), BV_EFIELD,
		   "signature", 1);
	EXPECT_ERR(set(auth_frame(), "signature", b64(0, 1)), BV_EFIELD,
		   "signature", 1);
}

static void
test_bad_enroll(void **state)
{
	struct bv_request *r;
	char *tok;

	(void)state;
	EXPECT_ERR(del(enroll_frame(), "token"), BV_EFIELD, "token", 2);
	EXPECT_ERR(set(enroll_frame(), "token", json_string("")), BV_EFIELD,
		   "token", 2);
	EXPECT_ERR(set(enroll_frame(), "token", json_integer(5)), BV_EFIELD,
		   "token", 2);
	tok = malloc(BV_TOKEN_MAX + 2);
	assert_non_null(tok);
	memset(tok, 'a', BV_TOKEN_MAX + 1);
	tok[BV_TOKEN_MAX + 1] = '\0';
	EXPECT_ERR(set(enroll_frame(), "token", json_string(tok)), BV_EFIELD,
		   "token", 2);
	tok[BV_TOKEN_MAX] = '\0';
	r = parse_ok(set(enroll_frame(), "token", json_string(tok)), &lim);
	assert_int_equal(strlen(r->u.enroll.token), BV_TOKEN_MAX);
	bv_request_free(r);
	free(tok);

	EXPECT_ERR(del(enroll_frame(), "registration_id"), BV_EFIELD,
		   "registration_id", 2);
	EXPECT_ERR(set(enroll_frame(), "registration_id", json_integer(0)),
		   BV_EFIELD, "registration_id", 2);
	EXPECT_ERR(set(enroll_frame(), "registration_id",
		       json_integer(2147483648LL)),
		   BV_EFIELD, "registration_id", 2);
	EXPECT_ERR(set(enroll_frame(), "identity_key", b64(32, 5)), BV_EFIELD,
		   "identity_key", 2);
	EXPECT_ERR(set(enroll_frame(), "identity_key", b64(34, 5)), BV_EFIELD,
		   "identity_key", 2);
	EXPECT_ERR(set(enroll_frame(), "identity_key", json_string("BQ==\t")),
		   BV_EBASE64, "identity_key", 2);
	EXPECT_ERR(del(enroll_frame(), "identity_key"), BV_EFIELD,
		   "identity_key", 2);
	EXPECT_ERR(set(enroll_frame(), "auth_key", b64(33, 6)), BV_EFIELD,
		   "auth_key", 2);
	EXPECT_ERR(set(enroll_frame(), "auth_key", b64(31, 6)), BV_EFIELD,
		   "auth_key", 2);
	EXPECT_ERR(set(enroll_frame(), "auth_key", json_string("AAA")),
		   BV_EBASE64, "auth_key", 2);
	EXPECT_ERR(set(enroll_frame(), "signature", b64(32, 6)), BV_EFIELD,
		   "signature", 2);
	EXPECT_ERR(set(enroll_frame(), "replaces", json_integer(0)), BV_EFIELD,
		   "replaces", 2);
	EXPECT_ERR(set(enroll_frame(), "replaces", json_integer(-3)), BV_EFIELD,
		   "replaces", 2);
	EXPECT_ERR(set(enroll_frame(), "replaces", json_string("1")), BV_EFIELD,
		   "replaces", 2);
}

static void
test_bad_keys_put(void **state)
{
	struct bv_limits l = lim;
	json_t *f;

	(void)state;
	EXPECT_ERR(set(keys_put_frame(1), "signed_prekey", json_integer(1)),
		   BV_EFIELD, "signed_prekey", 3);
	f = keys_put_frame(1);
	del(json_object_get(f, "signed_prekey"), "id");
	EXPECT_ERR(f, BV_EFIELD, "signed_prekey.id", 3);
	f = keys_put_frame(1);
	set(json_object_get(f, "signed_prekey"), "id", json_integer(-1));
	EXPECT_ERR(f, BV_EFIELD, "signed_prekey.id", 3);
	f = keys_put_frame(1);
	set(json_object_get(f, "signed_prekey"), "key", b64(32, 1));
	EXPECT_ERR(f, BV_EFIELD, "signed_prekey.key", 3);
	f = keys_put_frame(1);
	set(json_object_get(f, "signed_prekey"), "signature", json_string("*"));
	EXPECT_ERR(f, BV_EBASE64, "signed_prekey.signature", 3);
	f = keys_put_frame(1);
	del(json_object_get(f, "signed_prekey"), "signature");
	EXPECT_ERR(f, BV_EFIELD, "signed_prekey.signature", 3);

	EXPECT_ERR(set(keys_put_frame(0), "one_time_prekeys", json_object()),
		   BV_EFIELD, "one_time_prekeys", 3);
	f = keys_put_frame(3);
	json_array_set_new(json_object_get(f, "one_time_prekeys"), 2,
			   json_integer(1));
	EXPECT_ERR(f, BV_EFIELD, "one_time_prekeys[2]", 3);
	f = keys_put_frame(3);
	set(json_array_get(json_object_get(f, "one_time_prekeys"), 1), "key",
	    json_string("BQ=="));
	EXPECT_ERR(f, BV_EFIELD, "one_time_prekeys[1].key", 3);
	f = keys_put_frame(3);
	set(json_array_get(json_object_get(f, "one_time_prekeys"), 1), "key",
	    json_string("BQ"));
	EXPECT_ERR(f, BV_EBASE64, "one_time_prekeys[1].key", 3);
	f = keys_put_frame(3);
	del(json_array_get(json_object_get(f, "one_time_prekeys"), 0), "id");
	EXPECT_ERR(f, BV_EFIELD, "one_time_prekeys[0].id", 3);
	f = keys_put_frame(3);
	set(json_array_get(json_object_get(f, "one_time_prekeys"), 0), "id",
	    json_integer(2147483648LL));
	EXPECT_ERR(f, BV_EFIELD, "one_time_prekeys[0].id", 3);

	/* The limit: exactly max passes, one more is BV_ETOOMANY. */
	l.max_prekeys_per_upload = 5;
	bv_request_free(parse_ok(keys_put_frame(5), &l));
	EXPECT_ERR_L(keys_put_frame(6), &l, BV_ETOOMANY, "one_time_prekeys", 3);
	bv_request_free(parse_ok(keys_put_frame(100), &lim));
	EXPECT_ERR(keys_put_frame(101), BV_ETOOMANY, "one_time_prekeys", 3);
}

static void
test_bad_keys_get(void **state)
{
	(void)state;
	EXPECT_ERR(del(keys_get_frame(), "account"), BV_EFIELD, "account", 4);
	EXPECT_ERR(set(keys_get_frame(), "account", json_string("x")),
		   BV_EFIELD, "account", 4);
	EXPECT_ERR(set(keys_get_frame(), "device", json_integer(0)), BV_EFIELD,
		   "device", 4);
	EXPECT_ERR(set(keys_get_frame(), "device", json_string("2")), BV_EFIELD,
		   "device", 4);
}

static void
test_cases_ops(void **state)
{
	struct bv_request *r;
	json_t *f;
	int i;

	(void)state;
	r = parse_ok(set(send_frame(1), "partial", json_true()), &lim);
	assert_int_equal(r->u.send.partial, 1);
	bv_request_free(r);
	r = parse_ok(json_pack("{s:i, s:s}", "id", 7, "op", "cases"), &lim);
	assert_int_equal(r->op, BV_OP_CASES);
	assert_string_equal(r->u.cases.case_id, "");
	assert_string_equal(r->u.cases.after, "");
	bv_request_free(r);
	r = parse_ok(json_pack("{s:i, s:s, s:s, s:n}", "id", 7, "op", "cases",
			       "case", ACC1, "after"),
		     &lim);
	assert_string_equal(r->u.cases.case_id, ACC1);
	bv_request_free(r);
	EXPECT_ERR(json_pack("{s:i, s:s, s:s}", "id", 7, "op", "cases", "after",
			     "x"),
		   BV_EFIELD, "after", 7);

	r = parse_ok(json_pack("{s:i, s:s, s:s, s:s}", "id", 8, "op",
			       "conversation_create", "case", ACC1, "kind",
			       "team"),
		     &lim);
	assert_int_equal(r->op, BV_OP_CONVERSATION_CREATE);
	assert_string_equal(r->u.conversation_create.kind, "team");
	assert_int_equal(r->u.conversation_create.n_members, 0);
	bv_request_free(r);
	r = parse_ok(json_pack("{s:i, s:s, s:s, s:s, s:[s,s]}", "id", 8, "op",
			       "conversation_create", "case", ACC1, "kind",
			       "citizens", "members", ACC1, ACC2),
		     &lim);
	assert_int_equal(r->u.conversation_create.n_members, 2);
	assert_string_equal(r->u.conversation_create.members[1], ACC2);
	bv_request_free(r);
	EXPECT_ERR(json_pack("{s:i, s:s, s:s, s:s}", "id", 8, "op",
			     "conversation_create", "case", ACC1, "kind",
			     "group"),
		   BV_EFIELD, "kind", 8);
	EXPECT_ERR(json_pack("{s:i, s:s, s:s, s:s, s:[s,s]}", "id", 8, "op",
			     "conversation_create", "case", ACC1, "kind",
			     "citizens", "members", ACC1, ACC1),
		   BV_EFIELD, "members[1]", 8);
	EXPECT_ERR(json_pack("{s:i, s:s, s:s, s:s, s:[i]}", "id", 8, "op",
			     "conversation_create", "case", ACC1, "kind",
			     "citizens", "members", 1),
		   BV_EFIELD, "members[0]", 8);
	EXPECT_ERR(json_pack("{s:i, s:s, s:s}", "id", 8, "op",
			     "conversation_create", "kind", "team"),
		   BV_EFIELD, "case", 8);
	/* More than BV_CONVERSATION_MEMBERS_MAX members. */
	f = json_pack("{s:i, s:s, s:s, s:s, s:[]}", "id", 8, "op",
		      "conversation_create", "case", ACC1, "kind", "citizens",
		      "members");
	for (i = 0; i <= BV_CONVERSATION_MEMBERS_MAX; i++) {
		char u[37];

		snprintf(u, sizeof(u), "00000000-0000-4000-8000-%012d", i);
		json_array_append_new(json_object_get(f, "members"),
				      json_string(u));
	}
	EXPECT_ERR(f, BV_EFIELD, "members", 8);

	/* Attachments: the size's range is the relay's (BV_EBLOB_SIZE). */
	r = parse_ok(json_pack("{s:i, s:s, s:s, s:I, s:s}", "id", 9, "op",
			       "blob_create", "conversation", ACC1, "size",
			       (json_int_t)-3, "sha256", SHA_FF),
		     &lim);
	assert_int_equal(r->op, BV_OP_BLOB_CREATE);
	assert_true(r->u.blob_create.size == -3);
	assert_int_equal(r->u.blob_create.sha256[0], 0xff);
	assert_int_equal(r->u.blob_create.sha256[31], 0xfe);
	bv_request_free(r);
	EXPECT_ERR(json_pack("{s:i, s:s, s:s, s:i, s:s}", "id", 9, "op",
			     "blob_create", "conversation", ACC1, "size", 1,
			     "sha256", "FF"),
		   BV_EFIELD, "sha256", 9);
	EXPECT_ERR(json_pack("{s:i, s:s, s:s, s:s, s:s}", "id", 9, "op",
			     "blob_create", "conversation", ACC1, "size", "1",
			     "sha256", SHA_FF),
		   BV_EFIELD, "size", 9);
	r = parse_ok(json_pack("{s:i, s:s, s:[s,s]}", "id", 9, "op",
			       "blobs_journaled", "blobs", ACC1, ACC2),
		     &lim);
	assert_int_equal(r->u.blobs_journaled.n, 2);
	assert_string_equal(r->u.blobs_journaled.blobs[1], ACC2);
	bv_request_free(r);
	EXPECT_ERR(json_pack("{s:i, s:s, s:[]}", "id", 9, "op",
			     "blobs_journaled", "blobs"),
		   BV_EFIELD, "blobs", 9);
	EXPECT_ERR(json_pack("{s:i, s:s, s:[s,i]}", "id", 9, "op",
			     "blobs_journaled", "blobs", ACC1, 4),
		   BV_EFIELD, "blobs[1]", 9);
	f = json_pack("{s:i, s:s, s:[]}", "id", 9, "op", "blobs_journaled",
		      "blobs");
	for (i = 0; i <= BV_BLOBS_JOURNALED_MAX; i++)
		json_array_append_new(json_object_get(f, "blobs"),
				      json_string(ACC1));
	EXPECT_ERR(f, BV_ETOOMANY, "blobs", 9);
}

static void
test_bad_send(void **state)
{
	char mid[BV_MESSAGE_ID_MAX + 2];
	struct bv_request *r;
	json_t *f;

	(void)state;
	EXPECT_ERR(del(send_frame(1), "conversation"), BV_EFIELD,
		   "conversation", 5);
	EXPECT_ERR(set(send_frame(1), "conversation", json_string("c0a1")),
		   BV_EFIELD, "conversation", 5);
	EXPECT_ERR(set(send_frame(1), "partial", json_integer(1)), BV_EFIELD,
		   "partial", 5);
	EXPECT_ERR(del(send_frame(1), "message_id"), BV_EFIELD, "message_id",
		   5);
	EXPECT_ERR(set(send_frame(1), "message_id", json_string("")), BV_EFIELD,
		   "message_id", 5);
	EXPECT_ERR(set(send_frame(1), "message_id", json_string("a b")),
		   BV_EFIELD, "message_id", 5);
	EXPECT_ERR(set(send_frame(1), "message_id", json_string("\xc3\xa6")),
		   BV_EFIELD, "message_id", 5);
	EXPECT_ERR(set(send_frame(1), "message_id", json_integer(1)), BV_EFIELD,
		   "message_id", 5);
	memset(mid, 'm', sizeof(mid) - 1);
	mid[sizeof(mid) - 1] = '\0';
	EXPECT_ERR(set(send_frame(1), "message_id", json_string(mid)),
		   BV_EFIELD, "message_id", 5);
	mid[BV_MESSAGE_ID_MAX] = '\0';
	r = parse_ok(set(send_frame(1), "message_id", json_string(mid)), &lim);
	assert_string_equal(r->u.send.message_id, mid);
	bv_request_free(r);

	EXPECT_ERR(del(send_frame(1), "envelopes"), BV_EFIELD, "envelopes", 5);
	EXPECT_ERR(set(send_frame(1), "envelopes", json_object()), BV_EFIELD,
		   "envelopes", 5);
	EXPECT_ERR(set(send_frame(1), "envelopes", json_array()), BV_EFIELD,
		   "envelopes", 5);

	f = send_frame(3);
	json_array_set_new(json_object_get(f, "envelopes"), 1, json_null());
	EXPECT_ERR(f, BV_EFIELD, "envelopes[1]", 5);
	f = send_frame(3);
	set(env_of(f, 2), "account", json_string("nope"));
	EXPECT_ERR(f, BV_EFIELD, "envelopes[2].account", 5);
	f = send_frame(3);
	set(env_of(f, 2), "device", json_integer(0));
	EXPECT_ERR(f, BV_EFIELD, "envelopes[2].device", 5);
	f = send_frame(3);
	del(env_of(f, 0), "registration_id");
	EXPECT_ERR(f, BV_EFIELD, "envelopes[0].registration_id", 5);
	f = send_frame(3);
	set(env_of(f, 0), "registration_id", json_integer(0));
	EXPECT_ERR(f, BV_EFIELD, "envelopes[0].registration_id", 5);
	f = send_frame(3);
	set(env_of(f, 1), "type", json_integer(256));
	EXPECT_ERR(f, BV_EFIELD, "envelopes[1].type", 5);
	f = send_frame(3);
	set(env_of(f, 1), "type", json_integer(-1));
	EXPECT_ERR(f, BV_EFIELD, "envelopes[1].type", 5);
	f = send_frame(3);
	del(env_of(f, 1), "type");
	EXPECT_ERR(f, BV_EFIELD, "envelopes[1].type", 5);
	f = send_frame(3);
	del(env_of(f, 1), "body");
	EXPECT_ERR(f, BV_EFIELD, "envelopes[1].body", 5);
	f = send_frame(3);
	set(env_of(f, 1), "body", json_integer(1));
	EXPECT_ERR(f, BV_EFIELD, "envelopes[1].body", 5);
	f = send_frame(3);
	set(env_of(f, 1), "body", json_string(""));
	EXPECT_ERR(f, BV_EENVELOPE, "envelopes[1].body", 5);
	f = send_frame(3);
	set(env_of(f, 1), "body", json_string("Mw="));
	EXPECT_ERR(f, BV_EBASE64, "envelopes[1].body", 5);
	f = send_frame(3);
	set(env_of(f, 1), "body", json_string("Mw-_"));
	EXPECT_ERR(f, BV_EBASE64, "envelopes[1].body", 5);
}

static void
test_send_limits(void **state)
{
	struct bv_limits l = lim;
	struct bv_request *r;
	json_t *f;

	(void)state;
	/* Envelope size: max passes, one more byte is BV_EENVELOPE. */
	f = send_frame(1);
	set(env_of(f, 0), "body", b64(lim.max_envelope_bytes, 1));
	r = parse_ok(f, &lim);
	assert_int_equal(r->u.send.envelopes[0].body_len,
			 lim.max_envelope_bytes);
	bv_request_free(r);
	f = send_frame(2);
	set(env_of(f, 1), "body", b64(lim.max_envelope_bytes + 1, 1));
	EXPECT_ERR(f, BV_EENVELOPE, "envelopes[1].body", 5);
	/* Too large and invalid: the base64 error wins. */
	f = send_frame(1);
	{
		json_t *big = b64(lim.max_envelope_bytes + 3, 1);
		char *s = strdup(json_string_value(big));

		s[strlen(s) - 5] = '%';
		set(env_of(f, 0), "body", json_string(s));
		free(s);
		json_decref(big);
	}
	EXPECT_ERR(f, BV_EBASE64, "envelopes[0].body", 5);

	l.max_envelope_bytes = 16;
	f = send_frame(1);
	set(env_of(f, 0), "body", b64(16, 1));
	bv_request_free(parse_ok(f, &l));
	f = send_frame(1);
	set(env_of(f, 0), "body", b64(17, 1));
	EXPECT_ERR_L(f, &l, BV_EENVELOPE, "envelopes[0].body", 5);

	/* Envelope count. */
	l = lim;
	l.max_envelopes_per_send = 4;
	bv_request_free(parse_ok(send_frame(4), &l));
	EXPECT_ERR_L(send_frame(5), &l, BV_ETOOMANY, "envelopes", 5);
	bv_request_free(parse_ok(send_frame(100), &lim));
	EXPECT_ERR(send_frame(101), BV_ETOOMANY, "envelopes", 5);
}

static void
test_send_duplicates(void **state)
{
	json_t *f;

	(void)state;
	/* 0: ACC1/1, 1: ACC2/1, 2: ACC1/2, 3: ACC2/2, 4: ACC1/3 */
	f = send_frame(5);
	set(env_of(f, 4), "device", json_integer(1));
	EXPECT_ERR(f, BV_EFIELD, "envelopes[4].device", 5);
	f = send_frame(5);
	set(env_of(f, 3), "account", json_string(ACC1));
	set(env_of(f, 3), "device", json_integer(1));
	set(env_of(f, 4), "device", json_integer(2));
	/* The first envelope that repeats an earlier one is named. */
	EXPECT_ERR(f, BV_EFIELD, "envelopes[3].device", 5);
	f = send_frame(2);
	set(env_of(f, 1), "account", json_string(ACC1));
	EXPECT_ERR(f, BV_EFIELD, "envelopes[1].device", 5);
}

static json_t *
torture_frame(size_t i)
{
	switch (i) {
	case 0:
		return send_frame(4);
	case 1:
		return keys_put_frame(3);
	case 2:
		return enroll_frame();
	case 3:
		return auth_frame();
	default:
		return NULL;
	}
}

/*
 * Fails the parse's allocations one by one. With jansson on plain malloc,
 * every failure of ours must be BV_ENOMEM. With jansson on bv_malloc too,
 * jansson reports some of its failures as syntax errors, so BV_EJSON is
 * allowed; nothing may leak (ASan) and *out stays untouched.
 */
static void
torture(int with_jansson)
{
	struct bv_parse_error e;
	struct bv_request *r;
	json_t *frame;
	size_t i;
	long n;
	char *s;
	int rc;

	for (i = 0; (frame = torture_frame(i)) != NULL; i++) {
		s = json_dumps(frame, JSON_COMPACT);
		json_decref(frame);
		assert_non_null(s);
		if (with_jansson)
			json_set_alloc_funcs(bv_malloc, bv_free);
		for (n = 1; n < 100000; n++) {
			r = SENTINEL;
			bv_alloc_fail_at(n);
			rc = bv_request_parse(s, strlen(s), &lim, &r, &e);
			bv_alloc_fail_at(0);
			if (rc == 0)
				break;
			if (rc != BV_ENOMEM &&
			    !(with_jansson && rc == BV_EJSON))
				fail_msg("frame %zu, allocation %ld: %s", i, n,
					 bv_errname(rc));
			assert_int_equal(e.code, rc);
			assert_ptr_equal(r, SENTINEL);
		}
		json_set_alloc_funcs(malloc, free);
		assert_int_equal(rc, 0);
		assert_true(n > 1);
		bv_request_free(r);
		free(s);
	}
}

static void
test_alloc_torture(void **state)
{
	(void)state;
	torture(0);
}

static void
test_alloc_torture_jansson(void **state)
{
	struct bv_request *r = SENTINEL;
	struct bv_parse_error e;

	(void)state;
	torture(1);
	/* jansson's very first allocation fails silently: still ENOMEM. */
	json_set_alloc_funcs(bv_malloc, bv_free);
	bv_alloc_fail_at(1);
	assert_int_equal(bv_request_parse("{\"id\":1}", 8, &lim, &r, &e),
			 BV_ENOMEM);
	bv_alloc_fail_at(0);
	json_set_alloc_funcs(malloc, free);
}

static void
test_signed_messages(void **state)
{
	char *s;

	(void)state;
	s = bv_auth_message("q83v=", ACC1, 12);
	assert_string_equal(s, "bvchat.v1 auth\nq83v=\n" ACC1 "\n12");
	bv_free(s);
	s = bv_auth_message("n", ACC1, 4294967295u);
	assert_string_equal(s, "bvchat.v1 auth\nn\n" ACC1 "\n4294967295");
	bv_free(s);
	s = bv_enroll_message("q83v=", "bvt1.a.b");
	assert_string_equal(s, "bvchat.v1 enroll\nq83v=\nbvt1.a.b");
	bv_free(s);
	assert_null(bv_auth_message(NULL, ACC1, 1));
	assert_null(bv_enroll_message("n", NULL));
	bv_alloc_fail_at(1);
	assert_null(bv_auth_message("n", ACC1, 1));
	assert_null(bv_enroll_message("n", "t"));
	bv_alloc_fail_at(0);
}

static void
test_message_id(void **state)
{
	char s[BV_MESSAGE_ID_MAX + 2];

	(void)state;
	assert_true(bv_message_id_valid("a"));
	assert_true(bv_message_id_valid("01J9Z3K7W5"));
	assert_true(bv_message_id_valid("A-z_0-9"));
	assert_false(bv_message_id_valid(""));
	assert_false(bv_message_id_valid(NULL));
	assert_false(bv_message_id_valid("a b"));
	assert_false(bv_message_id_valid("a.b"));
	assert_false(bv_message_id_valid("a/b"));
	assert_false(bv_message_id_valid("\xc3\xa6"));
	memset(s, 'x', sizeof(s) - 1);
	s[sizeof(s) - 1] = '\0';
	assert_false(bv_message_id_valid(s)); /* 65 */
	s[BV_MESSAGE_ID_MAX] = '\0';
	assert_true(bv_message_id_valid(s)); /* 64 */
}

static void
test_error_frame(void **state)
{
	json_t *details, *j;
	char *s;

	(void)state;
	s = bv_error_frame(7, BV_EOP, NULL);
	assert_string_equal(s, "{\"id\":7,\"error\":{\"code\":\"BV_EOP\","
			       "\"errno\":-12,\"retryable\":false,"
			       "\"message\":\"unknown operation\"}}");
	bv_free(s);
	s = bv_error_frame(-1, BV_EJSON, NULL);
	assert_non_null(strstr(s, "{\"id\":null,\"error\":{"));
	bv_free(s);
	s = bv_error_frame(3, BV_ERATE, NULL);
	assert_non_null(strstr(s, "\"retryable\":true"));
	bv_free(s);

	/* Details are merged, but cannot replace code, errno or retryable. */
	details = json_pack("{s:[{s:s, s:[i]}], s:s, s:i, s:s}", "missing",
			    "account", ACC1, "devices", 3, "code", "BV_FAKE",
			    "errno", 0, "field", "envelopes[0].body");
	s = bv_error_frame(5, BV_EDEVICES, details);
	j = json_loads(s, 0, NULL);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(j, "error"), "code")),
			    "BV_EDEVICES");
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(j, "error"), "errno")),
			 -31);
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(j, "error"), "field")),
			    "envelopes[0].body");
	assert_int_equal(json_array_size(json_object_get(
				 json_object_get(j, "error"), "missing")),
			 1);
	assert_int_equal(json_integer_value(json_object_get(j, "id")), 5);
	json_decref(j);
	bv_free(s);
	/* details was borrowed. */
	assert_int_equal(details->refcount, 1);
	json_decref(details);

	j = json_array();
	assert_null(bv_error_frame(1, BV_EFIELD, j));
	json_decref(j);
	bv_alloc_fail_at(1);
	assert_null(bv_error_frame(1, BV_EFIELD, NULL));
	bv_alloc_fail_at(0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_limits_default),
		cmocka_unit_test(test_valid_auth),
		cmocka_unit_test(test_valid_enroll),
		cmocka_unit_test(test_valid_keys),
		cmocka_unit_test(test_valid_send),
		cmocka_unit_test(test_cases_ops),
		cmocka_unit_test(test_valid_ping_response),
		cmocka_unit_test(test_not_json),
		cmocka_unit_test(test_frame_limit),
		cmocka_unit_test(test_bad_id),
		cmocka_unit_test(test_bad_op),
		cmocka_unit_test(test_bad_response),
		cmocka_unit_test(test_bad_auth),
		cmocka_unit_test(test_bad_enroll),
		cmocka_unit_test(test_bad_keys_put),
		cmocka_unit_test(test_bad_keys_get),
		cmocka_unit_test(test_bad_send),
		cmocka_unit_test(test_send_limits),
		cmocka_unit_test(test_send_duplicates),
		cmocka_unit_test(test_alloc_torture),
		cmocka_unit_test(test_alloc_torture_jansson),
		cmocka_unit_test(test_signed_messages),
		cmocka_unit_test(test_message_id),
		cmocka_unit_test(test_error_frame),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
