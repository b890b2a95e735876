/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_token.c: unit tests of common/bv_token.c: sign and verify round
 * trips, tampering, wrong keys, expiry and the TTL bound, and every kind of
 * malformed token (including well-signed tokens with bad payloads).
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
#include <sodium.h>

#include "bv_error.h"
#include "bv_token.h"
#include "bv_util.h"

#define TENANT	"a1b2c3d4-0000-4000-8000-000000000001"
#define ACCOUNT "3f0c2a4e-1b2c-4d5e-8f90-a1b2c3d4e5f6"
#define NOW	1795431296
#define TTL	86400

static uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
static uint8_t pk2[crypto_sign_PUBLICKEYBYTES], sk2[crypto_sign_SECRETKEYBYTES];

static int
setup(void **state)
{
	(void)state;
	if (sodium_init() < 0)
		return -1;
	crypto_sign_keypair(pk, sk);
	crypto_sign_keypair(pk2, sk2);
	return 0;
}

static struct bv_token
sample(void)
{
	struct bv_token t;
	size_t i;

	memset(&t, 0, sizeof(t));
	strcpy(t.tenant, TENANT);
	strcpy(t.account, ACCOUNT);
	for (i = 0; i < BV_JTI_LEN; i++)
		t.jti[i] = (uint8_t)(i * 17 + 1);
	t.exp = NOW + 3600;
	return t;
}

static char *
sign(const struct bv_token *t)
{
	char *tok = NULL;

	assert_int_equal(bv_token_sign(t, sk, &tok), 0);
	assert_non_null(tok);
	return tok;
}

/* A token over arbitrary payload bytes, signed with key. */
static char *
make_token(const char *payload, const uint8_t *key)
{
	uint8_t sig[crypto_sign_BYTES];
	char *p, *s, *tok;
	size_t n;

	crypto_sign_detached(sig, NULL, (const uint8_t *)payload,
			     strlen(payload), key);
	p = bv_b64url_encode((const uint8_t *)payload, strlen(payload));
	s = bv_b64url_encode(sig, sizeof(sig));
	assert_non_null(p);
	assert_non_null(s);
	n = strlen(p) + strlen(s) + 8;
	tok = malloc(n);
	assert_non_null(tok);
	snprintf(tok, n, "bvt1.%s.%s", p, s);
	bv_free(p);
	bv_free(s);
	return tok;
}

static void
expect_verify_at(int line, const char *tok, const uint8_t *key, int64_t now,
		 int code)
{
	struct bv_token out;
	int rc;

	memset(&out, 0xee, sizeof(out));
	rc = bv_token_verify(tok, key, now, TTL, &out);
	if (rc != code)
		fail_msg("line %d: got %s, want %s", line, bv_errname(rc),
			 bv_errname(code));
	if (rc != 0 && out.exp != (int64_t)0xeeeeeeeeeeeeeeeeULL)
		fail_msg("line %d: out written on failure", line);
}

#define EXPECT_VERIFY(tok, key, now, code)                                     \
	expect_verify_at(__LINE__, tok, key, now, code)

static void
test_roundtrip(void **state)
{
	struct bv_token t = sample(), out, peek;
	char *tok;

	(void)state;
	tok = sign(&t);
	assert_memory_equal(tok, "bvt1.", 5);
	assert_int_equal(bv_token_verify(tok, pk, NOW, TTL, &out), 0);
	assert_string_equal(out.tenant, TENANT);
	assert_string_equal(out.account, ACCOUNT);
	assert_memory_equal(out.jti, t.jti, BV_JTI_LEN);
	assert_int_equal(out.exp, t.exp);
	assert_int_equal(bv_token_peek(tok, &peek), 0);
	assert_string_equal(peek.tenant, out.tenant);
	assert_string_equal(peek.account, out.account);
	assert_memory_equal(peek.jti, out.jti, BV_JTI_LEN);
	assert_int_equal(peek.exp, out.exp);
	bv_free(tok);

	/* A token for a new account carries "account": null. */
	t.account[0] = '\0';
	tok = sign(&t);
	assert_int_equal(bv_token_verify(tok, pk, NOW, TTL, &out), 0);
	assert_string_equal(out.account, "");
	bv_free(tok);
}

static void
test_payload_format(void **state)
{
	struct bv_token t = sample();
	uint8_t raw[BV_TOKEN_MAX];
	char *tok, *dot, *jti;
	size_t n;
	json_t *j;

	(void)state;
	t.account[0] = '\0';
	tok = sign(&t);
	dot = strchr(tok + 5, '.');
	assert_non_null(dot);
	assert_null(strchr(dot + 1, '.'));
	assert_null(strchr(tok, '='));
	assert_int_equal(bv_b64url_decode(tok + 5, (size_t)(dot - tok - 5), raw,
					  sizeof(raw), &n),
			 0);
	j = json_loadb((const char *)raw, n, 0, NULL);
	assert_non_null(j);
	assert_int_equal(json_object_size(j), 4);
	assert_string_equal(json_string_value(json_object_get(j, "tenant")),
			    TENANT);
	assert_true(json_is_null(json_object_get(j, "account")));
	jti = bv_b64url_encode(t.jti, BV_JTI_LEN);
	assert_string_equal(json_string_value(json_object_get(j, "jti")), jti);
	assert_int_equal(json_integer_value(json_object_get(j, "exp")), t.exp);
	bv_free(jti);
	json_decref(j);
	/* The signature is 64 bytes over exactly those payload bytes. */
	assert_int_equal(bv_b64url_decode(dot + 1, strlen(dot + 1), raw,
					  sizeof(raw), &n),
			 0);
	assert_int_equal(n, 64);
	bv_free(tok);
}

static void
test_tampered(void **state)
{
	struct bv_token t = sample();
	char *tok, *other, *dot, *odot, *mix;
	size_t n;

	(void)state;
	tok = sign(&t);
	t.exp += 1;
	other = sign(&t);
	/* Payload of one token with the signature of the other. */
	dot = strchr(tok + 5, '.');
	odot = strchr(other + 5, '.');
	n = (size_t)(odot - other) + strlen(dot) + 1;
	mix = malloc(n);
	assert_non_null(mix);
	memcpy(mix, other, (size_t)(odot - other));
	strcpy(mix + (odot - other), dot);
	EXPECT_VERIFY(mix, pk, NOW, BV_ETOKEN);
	free(mix);

	/* A flipped signature character (still valid base64url). */
	n = strlen(tok);
	tok[n - 2] = tok[n - 2] == 'A' ? 'B' : 'A';
	EXPECT_VERIFY(tok, pk, NOW, BV_ETOKEN);
	bv_free(tok);

	/* The right token, the wrong tenant key. */
	EXPECT_VERIFY(other, pk2, NOW, BV_ETOKEN);
	EXPECT_VERIFY(other, pk, NOW, 0);
	assert_int_equal(bv_token_verify(other, NULL, NOW, TTL, &t), BV_ETOKEN);
	bv_free(other);
}

static void
test_expiry(void **state)
{
	struct bv_token t = sample();
	char *tok;

	(void)state;
	t.exp = NOW;
	tok = sign(&t);
	EXPECT_VERIFY(tok, pk, NOW, 0); /* valid through its exp second */
	EXPECT_VERIFY(tok, pk, NOW + 1, BV_ETOKEN_EXPIRED);
	/* An expired token with a bad signature says nothing of expiry. */
	EXPECT_VERIFY(tok, pk2, NOW + 1, BV_ETOKEN);
	bv_free(tok);

	t.exp = NOW + TTL;
	tok = sign(&t);
	EXPECT_VERIFY(tok, pk, NOW, 0);
	EXPECT_VERIFY(tok, pk, NOW - 1, BV_ETOKEN); /* too far ahead */
	bv_free(tok);

	t.exp = INT64_MAX;
	tok = sign(&t);
	EXPECT_VERIFY(tok, pk, NOW, BV_ETOKEN);
	/* The TTL arithmetic does not overflow at the extremes. */
	assert_int_equal(bv_token_verify(tok, pk, 0, INT64_MAX, &t), 0);
	assert_int_equal(bv_token_verify(tok, pk, INT64_MIN, INT64_MAX, &t),
			 BV_ETOKEN);
	assert_int_equal(bv_token_verify(tok, pk, -1, INT64_MAX, &t),
			 BV_ETOKEN);
	bv_free(tok);
	t.exp = -5;
	tok = sign(&t);
	EXPECT_VERIFY(tok, pk, NOW, BV_ETOKEN_EXPIRED);
	bv_free(tok);
}

static void
test_malformed_text(void **state)
{
	static const char *const bad[] = {
		"",
		"bvt1",
		"bvt1.",
		"bvt1..",
		"bvt2.eyJ9.AAAA",
		"BVT1.eyJ9.AAAA",
		"bvt1.eyJ9",
		"bvt1.eyJ9.AAAA.AAAA",
		"bvt1.!!!!.AAAA",
		" bvt1.eyJ9.AAAA",
	};
	struct bv_token t = sample(), out;
	char *tok, *long_tok;
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		EXPECT_VERIFY(bad[i], pk, NOW, BV_ETOKEN);
		assert_int_equal(bv_token_peek(bad[i], &out), BV_ETOKEN);
	}
	EXPECT_VERIFY(NULL, pk, NOW, BV_ETOKEN);
	assert_int_equal(bv_token_peek(NULL, &out), BV_ETOKEN);

	tok = sign(&t);
	n = strlen(tok);
	/* Padding, trailing garbage, a third part, a truncated signature. */
	long_tok = malloc(n + 8);
	assert_non_null(long_tok);
	snprintf(long_tok, n + 8, "%s=", tok);
	EXPECT_VERIFY(long_tok, pk, NOW, BV_ETOKEN);
	snprintf(long_tok, n + 8, "%s.AAAA", tok);
	EXPECT_VERIFY(long_tok, pk, NOW, BV_ETOKEN);
	snprintf(long_tok, n + 8, "%s\n", tok);
	EXPECT_VERIFY(long_tok, pk, NOW, BV_ETOKEN);
	snprintf(long_tok, n + 8, "%.*s", (int)n - 4, tok);
	EXPECT_VERIFY(long_tok, pk, NOW, BV_ETOKEN);
	free(long_tok);
	bv_free(tok);

	/* Longer than BV_TOKEN_MAX, even if otherwise well formed. */
	long_tok = malloc(BV_TOKEN_MAX + 64);
	assert_non_null(long_tok);
	memset(long_tok, 'A', BV_TOKEN_MAX + 63);
	memcpy(long_tok, "bvt1.", 5);
	long_tok[BV_TOKEN_MAX - 100] = '.';
	long_tok[BV_TOKEN_MAX + 63] = '\0';
	EXPECT_VERIFY(long_tok, pk, NOW, BV_ETOKEN);
	free(long_tok);
}

/* Tokens the tenant really signed whose payload is still wrong. */
static void
test_malformed_payload(void **state)
{
	static const char *const bad[] = {
		"not json",
		"[1]",
		"{}",
		"{\"tenant\":\"" TENANT "\",\"account\":null,"
		"\"jti\":\"AAAAAAAAAAAAAAAAAAAAAA\"}",
		"{\"account\":null,\"jti\":\"AAAAAAAAAAAAAAAAAAAAAA\","
		"\"exp\":1795431300}",
		"{\"tenant\":\"A1B2C3D4-0000-4000-8000-000000000001\","
		"\"account\":null,\"jti\":\"AAAAAAAAAAAAAAAAAAAAAA\","
		"\"exp\":1795431300}",
		"{\"tenant\":\"" TENANT "\",\"jti\":\"AAAAAAAAAAAAAAAAAAAAAA\","
		"\"exp\":1795431300}",
		"{\"tenant\":\"" TENANT "\",\"account\":5,"
		"\"jti\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"exp\":1795431300}",
		"{\"tenant\":\"" TENANT "\",\"account\":\"x\","
		"\"jti\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"exp\":1795431300}",
		"{\"tenant\":\"" TENANT "\",\"account\":null,"
		"\"jti\":\"AAAAAAAAAAAAAAAAAAAA\",\"exp\":1795431300}",
		"{\"tenant\":\"" TENANT "\",\"account\":null,"
		"\"jti\":\"AAAAAAAAAAAAAAAAAAAAAA==\",\"exp\":1795431300}",
		"{\"tenant\":\"" TENANT "\",\"account\":null,"
		"\"jti\":\"AAAAAAAAAAAAAAAAAAAAA+\",\"exp\":1795431300}",
		"{\"tenant\":\"" TENANT "\",\"account\":null,"
		"\"jti\":16,\"exp\":1795431300}",
		"{\"tenant\":\"" TENANT "\",\"account\":null,"
		"\"jti\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"exp\":\"1795431300\"}",
		"{\"tenant\":\"" TENANT "\",\"account\":null,"
		"\"jti\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"exp\":1795431300.0}",
		"{\"tenant\":\"" TENANT "\",\"account\":null,"
		"\"jti\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"exp\":1795431300,"
		"\"exp\":1795431301}",
		"{\"tenant\":\"" TENANT "\",\"account\":null,"
		"\"jti\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"exp\":1795431300} x",
	};
	struct bv_token out;
	size_t i;
	char *tok;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tok = make_token(bad[i], sk);
		if (bv_token_verify(tok, pk, NOW, TTL, &out) != BV_ETOKEN)
			fail_msg("payload %zu was accepted", i);
		assert_int_equal(bv_token_peek(tok, &out), BV_ETOKEN);
		free(tok);
	}

	/* Unknown payload members are ignored, as on the wire. */
	tok = make_token("{\"tenant\":\"" TENANT "\",\"account\":null,"
			 "\"jti\":\"AAAAAAAAAAAAAAAAAAAAAA\","
			 "\"exp\":1795431300,\"v\":2}",
			 sk);
	EXPECT_VERIFY(tok, pk, NOW, 0);
	free(tok);
}

static void
test_peek(void **state)
{
	struct bv_token t = sample(), out;
	char *tok;

	(void)state;
	tok = NULL;
	assert_int_equal(bv_token_sign(&t, sk2, &tok), 0);
	/* Peek reads the tenant without a key; verify still refuses. */
	assert_int_equal(bv_token_peek(tok, &out), 0);
	assert_string_equal(out.tenant, TENANT);
	EXPECT_VERIFY(tok, pk, NOW, BV_ETOKEN);
	EXPECT_VERIFY(tok, pk2, NOW, 0);
	bv_free(tok);
}

static void
test_sign_invalid(void **state)
{
	struct bv_token t = sample();
	char *tok = (char *)"untouched";

	(void)state;
	strcpy(t.tenant, "nope");
	assert_int_equal(bv_token_sign(&t, sk, &tok), BV_EINVAL);
	t = sample();
	strcpy(t.account, "3F0C2A4E-1B2C-4D5E-8F90-A1B2C3D4E5F6");
	assert_int_equal(bv_token_sign(&t, sk, &tok), BV_EINVAL);
	t = sample();
	assert_int_equal(bv_token_sign(NULL, sk, &tok), BV_EINVAL);
	assert_int_equal(bv_token_sign(&t, NULL, &tok), BV_EINVAL);
	assert_int_equal(bv_token_sign(&t, sk, NULL), BV_EINVAL);
	assert_string_equal(tok, "untouched");
}

static void
test_alloc_torture(void **state)
{
	struct bv_token t = sample(), out;
	char *tok;
	long n;
	int rc;

	(void)state;
	json_set_alloc_funcs(bv_malloc, bv_free);
	for (n = 1;; n++) {
		tok = NULL;
		bv_alloc_fail_at(n);
		rc = bv_token_sign(&t, sk, &tok);
		bv_alloc_fail_at(0);
		if (rc == 0)
			break;
		assert_int_equal(rc, BV_ENOMEM);
		assert_null(tok);
	}
	/* Running out of memory is not a verdict on the token. */
	for (n = 1;; n++) {
		bv_alloc_fail_at(n);
		rc = bv_token_verify(tok, pk, NOW, TTL, &out);
		bv_alloc_fail_at(0);
		if (rc == 0)
			break;
		/* jansson reports a few of its failures as bad syntax. */
		assert_true(rc == BV_ENOMEM || rc == BV_ETOKEN);
		if (n == 1)
			assert_int_equal(rc, BV_ENOMEM);
	}
	json_set_alloc_funcs(malloc, free);
	bv_free(tok);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_payload_format),
		cmocka_unit_test(test_tampered),
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_malformed_text),
		cmocka_unit_test(test_malformed_payload),
		cmocka_unit_test(test_peek),
		cmocka_unit_test(test_sign_invalid),
		cmocka_unit_test(test_alloc_torture),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
