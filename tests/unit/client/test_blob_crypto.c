/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_blob_crypto.c: unit tests of client-lib/src/blob_crypto.c, the
 * attachment encryption: round trips at the piece boundaries (0, 1, 65535,
 * 65536, 65537 bytes and a few MiB), the exact ciphertext size, a fresh key
 * each time, and BV_ETAMPERED for a changed byte anywhere, a file cut short
 * (also at a piece boundary, with its digest recomputed), one extended, a
 * wrong key, a wrong digest and a wrong size; every allocation failing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bv_error.h"
#include "bv_util.h"
#include "crypto.h"

static uint8_t *
pattern(size_t len)
{
	uint8_t *p = malloc(len ? len : 1);
	size_t i;

	assert_non_null(p);
	for (i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 31 + (i >> 8));
	return p;
}

static void
round_trip(size_t len)
{
	uint8_t key[BV_BLOB_KEY_LEN], sha[BV_BLOB_SHA256_LEN];
	uint8_t digest[crypto_hash_sha256_BYTES];
	uint8_t *pt = pattern(len), *ct = NULL, *back = NULL;
	size_t ct_len = 0;

	assert_int_equal(bv_blob_seal(pt, len, key, &ct, &ct_len, sha), 0);
	assert_int_equal(ct_len, bv_blob_sealed_size(len));
	assert_int_equal(ct_len, 24 + len + 17 * (len / 65536 + 1));
	crypto_hash_sha256(digest, ct, ct_len);
	assert_memory_equal(digest, sha, sizeof(sha));
	assert_int_equal(bv_blob_open(ct, ct_len, key, sha, len, &back), 0);
	if (len)
		assert_memory_equal(back, pt, len);
	bv_free(back);
	bv_free(ct);
	free(pt);
}

static void
test_round_trips(void **state)
{
	static const size_t sizes[] = {0,     1,     17,     65535,
				       65536, 65537, 131072, 3 * 1048576 + 5};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		round_trip(sizes[i]);
}

static void
test_fresh_key(void **state)
{
	uint8_t k1[32], k2[32], s1[32], s2[32], *c1, *c2;
	size_t l1, l2;

	(void)state;
	assert_int_equal(
		bv_blob_seal((const uint8_t *)"x", 1, k1, &c1, &l1, s1), 0);
	assert_int_equal(
		bv_blob_seal((const uint8_t *)"x", 1, k2, &c2, &l2, s2), 0);
	assert_memory_not_equal(k1, k2, 32);
	assert_memory_not_equal(s1, s2, 32);
	bv_free(c1);
	bv_free(c2);
}

/* Seals len bytes; the caller frees. */
static void
seal(size_t len, uint8_t key[32], uint8_t sha[32], uint8_t **ct, size_t *ct_len)
{
	uint8_t *pt = pattern(len);

	assert_int_equal(bv_blob_seal(pt, len, key, ct, ct_len, sha), 0);
	free(pt);
}

static void
test_tampered(void **state)
{
	uint8_t key[32], sha[32], *ct, *out = NULL;
	size_t len = 65537, ct_len, pos[] = {0, 23, 24, 100, 65560, 0};
	size_t i;

	(void)state;
	seal(len, key, sha, &ct, &ct_len);
	pos[5] = ct_len - 1;
	for (i = 0; i < sizeof(pos) / sizeof(pos[0]); i++) {
		/* A changed byte: the digest catches it first ... */
		ct[pos[i]] ^= 0x01;
		assert_int_equal(bv_blob_open(ct, ct_len, key, sha, len, &out),
				 BV_ETAMPERED);
		assert_null(out);
		/* ... and the pieces' MACs when the digest is made to fit
		 * (a relay that changes the message's digest cannot, but
		 * a bug could skip that check). */
		crypto_hash_sha256(sha, ct, ct_len);
		assert_int_equal(bv_blob_open(ct, ct_len, key, sha, len, &out),
				 BV_ETAMPERED);
		assert_null(out);
		ct[pos[i]] ^= 0x01;
		crypto_hash_sha256(sha, ct, ct_len);
	}
	assert_int_equal(bv_blob_open(ct, ct_len, key, sha, len, &out), 0);
	bv_free(out);
	bv_free(ct);
}

static void
test_cut_short_and_extended(void **state)
{
	uint8_t key[32], sha[32], cut_sha[32], *ct, *out = NULL, *longer;
	size_t len = 2 * 65536 + 10, ct_len, cut;

	(void)state;
	seal(len, key, sha, &ct, &ct_len);
	/* Cut anywhere, with the digest and size of the cut file: the claimed
	 * size no longer matches, and even when it is made to match (cut at
	 * a piece boundary, size claimed as what is left) FINAL is missing. */
	for (cut = 1; cut < ct_len; cut += 65553 / 3) {
		crypto_hash_sha256(cut_sha, ct, cut);
		assert_int_equal(bv_blob_open(ct, cut, key, cut_sha, len, &out),
				 BV_ETAMPERED);
	}
	cut = 24 + 2 * (65536 + 17); /* after two full pieces */
	crypto_hash_sha256(cut_sha, ct, cut);
	/* sealed_size(131072) is 24 + 131072 + 3 * 17: not this cut. */
	assert_int_equal(bv_blob_open(ct, cut, key, cut_sha, 2 * 65536, &out),
			 BV_ETAMPERED);
	cut = 24 + 65536 + 17; /* after one full piece, claimed 65535 + 1 */
	crypto_hash_sha256(cut_sha, ct, cut);
	assert_int_equal(bv_blob_open(ct, cut, key, cut_sha, 65536 - 17, &out),
			 BV_ETAMPERED);
	assert_null(out);
	/* Extended by a byte. */
	longer = malloc(ct_len + 1);
	assert_non_null(longer);
	memcpy(longer, ct, ct_len);
	longer[ct_len] = 0;
	crypto_hash_sha256(cut_sha, longer, ct_len + 1);
	assert_int_equal(
		bv_blob_open(longer, ct_len + 1, key, cut_sha, len, &out),
		BV_ETAMPERED);
	free(longer);
	/* A wrong size claim for the right file. */
	assert_int_equal(bv_blob_open(ct, ct_len, key, sha, len - 1, &out),
			 BV_ETAMPERED);
	assert_null(out);
	bv_free(ct);
}

static void
test_wrong_key_and_digest(void **state)
{
	uint8_t key[32], sha[32], *ct, *out = NULL;
	size_t ct_len;

	(void)state;
	seal(1000, key, sha, &ct, &ct_len);
	key[0] ^= 1;
	assert_int_equal(bv_blob_open(ct, ct_len, key, sha, 1000, &out),
			 BV_ETAMPERED);
	key[0] ^= 1;
	sha[31] ^= 1;
	assert_int_equal(bv_blob_open(ct, ct_len, key, sha, 1000, &out),
			 BV_ETAMPERED);
	assert_null(out);
	sha[31] ^= 1;
	/* An empty file: one empty FINAL piece, still authenticated. */
	bv_free(ct);
	seal(0, key, sha, &ct, &ct_len);
	assert_int_equal(ct_len, 41);
	key[5] ^= 0x80;
	assert_int_equal(bv_blob_open(ct, ct_len, key, sha, 0, &out),
			 BV_ETAMPERED);
	assert_int_equal(bv_blob_open(NULL, ct_len, key, sha, 0, &out),
			 BV_EINVAL);
	assert_int_equal(bv_blob_seal(NULL, 1, key, &ct, &ct_len, sha),
			 BV_EINVAL);
	bv_free(ct);
}

static void
test_alloc_failures(void **state)
{
	uint8_t key[32], sha[32], *ct = NULL, *out = NULL;
	size_t ct_len = 0;
	long n;
	int rc;

	(void)state;
	for (n = 1;; n++) {
		bv_alloc_fail_at(n);
		rc = bv_blob_seal((const uint8_t *)"abc", 3, key, &ct, &ct_len,
				  sha);
		bv_alloc_fail_at(0);
		if (rc == 0)
			break;
		assert_int_equal(rc, BV_ENOMEM);
	}
	for (n = 1;; n++) {
		bv_alloc_fail_at(n);
		rc = bv_blob_open(ct, ct_len, key, sha, 3, &out);
		bv_alloc_fail_at(0);
		if (rc == 0)
			break;
		assert_int_equal(rc, BV_ENOMEM);
		assert_null(out);
	}
	assert_memory_equal(out, "abc", 3);
	bv_free(out);
	bv_free(ct);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trips),
		cmocka_unit_test(test_fresh_key),
		cmocka_unit_test(test_tampered),
		cmocka_unit_test(test_cut_short_and_extended),
		cmocka_unit_test(test_wrong_key_and_digest),
		cmocka_unit_test(test_alloc_failures),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
