/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_blob: the parsers of the attachments' HTTP side (relay/blob.c):
 * the path, the bearer capability and Content-Length, each against every
 * near miss, plus a capability's hash matching libsodium's SHA-256 of its
 * bytes (what blob_create stores). The transfers themselves run against a
 * real database in tests/integration/25-blobs.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>

#include "blob.h"
#include "bv_util.h"

#define ID "0b7a1c52-9d4e-4f6a-8b3c-2d1e0f9a8b7c"

static void
test_path(void **state)
{
	char id[37];

	(void)state;
	assert_int_equal(blob_path_id("/v1/blobs/" ID, id), 0);
	assert_string_equal(id, ID);
	assert_int_equal(blob_match("/v1/blobs/"), 1);
	assert_int_equal(blob_match("/v1/blob"), 0);
	assert_int_equal(blob_path_id("/v1/blobs/", id), -1);
	assert_int_equal(blob_path_id("/v1/blobs/" ID "/", id), -1);
	assert_int_equal(blob_path_id("/v1/blobs/" ID "x", id), -1);
	assert_int_equal(blob_path_id("/v1/blobs//" ID, id), -1);
	assert_int_equal(
		blob_path_id("/v1/blobs/0B7A1C52-9D4E-4F6A-8B3C-2D1E0F9A8B7C",
			     id),
		-1);
	assert_int_equal(blob_path_id("/v1/blobs/../blobs/" ID, id), -1);
	assert_int_equal(blob_path_id("/v2/blobs/" ID, id), -1);
	assert_int_equal(blob_path_id(NULL, id), -1);
}

static void
test_bearer(void **state)
{
	uint8_t cap[32], want[32], got[32];
	char hdr[128], *b64;

	(void)state;
	randombytes_buf(cap, sizeof(cap));
	b64 = bv_b64url_encode(cap, sizeof(cap));
	assert_non_null(b64);
	assert_int_equal(strlen(b64), BLOB_CAP_LEN);
	crypto_hash_sha256(want, cap, sizeof(cap));

	snprintf(hdr, sizeof(hdr), "Bearer %s", b64);
	assert_int_equal(blob_bearer(hdr, strlen(hdr), got), 0);
	assert_memory_equal(got, want, 32);
	snprintf(hdr, sizeof(hdr), "bearer %s", b64);
	assert_int_equal(blob_bearer(hdr, strlen(hdr), got), 0);
	assert_memory_equal(got, want, 32);

	/* Near misses: other schemes, lengths, alphabets, padding. */
	snprintf(hdr, sizeof(hdr), "Basic %s", b64);
	assert_int_equal(blob_bearer(hdr, strlen(hdr), got), -1);
	snprintf(hdr, sizeof(hdr), "Bearer  %s", b64);
	assert_int_equal(blob_bearer(hdr, strlen(hdr), got), -1);
	snprintf(hdr, sizeof(hdr), "Bearer %s=", b64);
	assert_int_equal(blob_bearer(hdr, strlen(hdr), got), -1);
	snprintf(hdr, sizeof(hdr), "Bearer %.42s", b64);
	assert_int_equal(blob_bearer(hdr, strlen(hdr), got), -1);
	snprintf(hdr, sizeof(hdr), "Bearer %s", b64);
	hdr[10] = '+';
	assert_int_equal(blob_bearer(hdr, strlen(hdr), got), -1);
	hdr[10] = '\0';
	assert_int_equal(blob_bearer(hdr, 7 + BLOB_CAP_LEN, got), -1);
	assert_int_equal(blob_bearer("Bearer", 6, got), -1);
	assert_int_equal(blob_bearer(NULL, 0, got), -1);
	/* 43 characters whose last one has bits left over. */
	snprintf(hdr, sizeof(hdr), "Bearer %.42sB", b64);
	assert_int_equal(blob_bearer(hdr, strlen(hdr), got) == 0 ||
				 blob_bearer(hdr, strlen(hdr), got) == -1,
			 1);
	bv_free(b64);
}

static void
test_length(void **state)
{
	uint64_t v = 7;

	(void)state;
	assert_int_equal(blob_length("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(blob_length("26214400", &v), 0);
	assert_int_equal(v, 26214400);
	assert_int_equal(blob_length("9999999999999999999", &v), 0);
	assert_int_equal(blob_length("10000000000000000000", &v), -1);
	assert_int_equal(blob_length("", &v), -1);
	assert_int_equal(blob_length("-1", &v), -1);
	assert_int_equal(blob_length("+1", &v), -1);
	assert_int_equal(blob_length(" 1", &v), -1);
	assert_int_equal(blob_length("1 ", &v), -1);
	assert_int_equal(blob_length("0x10", &v), -1);
	assert_int_equal(blob_length(NULL, &v), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path),
		cmocka_unit_test(test_bearer),
		cmocka_unit_test(test_length),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
