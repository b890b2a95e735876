/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_invite.c: unit tests of relay/invite.c: the code's format and how
 * typed codes are read, the keyed hash (one pinned vector, so the
 * construction in docs/protocol.md stays what the relay does), the key
 * file, tickets, client address keys (IPv6 by /64) and the failure limit
 * per address, its table full and swept.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sodium.h>

#include "bv_error.h"
#include "invite.h"

#define T0 1000000u

static void
test_code_new(void **state)
{
	static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
	char code[INVITE_CODE_LEN + 1], canon[INVITE_SYMBOLS + 1];
	unsigned seen[32] = {0};
	size_t i, k;

	(void)state;
	for (i = 0; i < 2000; i++) {
		invite_code_new(code);
		assert_int_equal(strlen(code), 11);
		assert_int_equal(code[5], '-');
		for (k = 0; k < 11; k++) {
			const char *p;

			if (k == 5)
				continue;
			p = strchr(alphabet, code[k]);
			assert_non_null(p);
			seen[p - alphabet]++;
		}
		assert_int_equal(invite_code_normalize(code, canon), 0);
		assert_int_equal(strlen(canon), 10);
	}
	/* 20000 symbols: every one of the 32 shows up, none wildly often. */
	for (k = 0; k < 32; k++)
		assert_true(seen[k] > 400 && seen[k] < 900);
}

static void
expect_canon(const char *in, const char *want)
{
	char out[INVITE_SYMBOLS + 1];

	if (invite_code_normalize(in, out) != 0 || strcmp(out, want) != 0)
		fail_msg("\"%s\": want %s", in, want);
}

static void
expect_bad(const char *in)
{
	char out[INVITE_SYMBOLS + 1];

	if (invite_code_normalize(in, out) != BV_EINVITE)
		fail_msg("\"%s\" accepted", in ? in : "(null)");
}

static void
test_normalize(void **state)
{
	char long_one[80];

	(void)state;
	expect_canon("ABCDE-FGHJK", "ABCDEFGHJK");
	expect_canon("abcde fghjk", "ABCDEFGHJK");
	expect_canon("  a-b-c-d-e-f-g-h-j-k ", "ABCDEFGHJK");
	expect_canon("ABCDEFGHJK", "ABCDEFGHJK");
	/* Crockford: I and L read as 1, O as 0. */
	expect_canon("IiLlI-OoOoO", "1111100000");
	expect_canon("01234-56789", "0123456789");
	expect_canon("MNPQR-STVWX", "MNPQRSTVWX");
	expect_bad(NULL);
	expect_bad("");
	expect_bad("ABCDE-FGHJ");
	expect_bad("ABCDE-FGHJKM");
	expect_bad("ABCDE-FGHJU"); /* U is not a symbol */
	expect_bad("ABCDE_FGHJK");
	expect_bad("ABCDE\tFGHJK");
	expect_bad("ABCDE-FGHJ\xc3\x85");
	expect_bad("ABCDE-FGHJ*");
	memset(long_one, ' ', sizeof(long_one) - 1);
	long_one[sizeof(long_one) - 1] = '\0';
	memcpy(long_one, "ABCDEFGHJK", 10);
	expect_bad(long_one); /* over 64 bytes, spaces or not */
}

static void
test_hash(void **state)
{
	uint8_t key[INVITE_KEY_LEN], key2[INVITE_KEY_LEN];
	uint8_t h1[INVITE_HASH_LEN], h2[INVITE_HASH_LEN];
	char hex[2 * INVITE_HASH_LEN + 1];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)i;
	/* HMAC-SHA-256(key 00…1f, "bvchat invite v1\nABCDEFGHJK"). */
	invite_code_hash(key, "ABCDEFGHJK", h1);
	sodium_bin2hex(hex, sizeof(hex), h1, sizeof(h1));
	assert_string_equal(hex, "74813120126eb76316eeab6d360df780"
				 "97b67f78b4ad5be3685429cd70452288");
	invite_code_hash(key, "ABCDEFGHJM", h2);
	assert_memory_not_equal(h1, h2, sizeof(h1));
	memcpy(key2, key, sizeof(key));
	key2[31] ^= 1;
	invite_code_hash(key2, "ABCDEFGHJK", h2);
	assert_memory_not_equal(h1, h2, sizeof(h1));
	/* Not the plain SHA-256 a dump could be searched with. */
	crypto_hash_sha256(h2, (const unsigned char *)"ABCDEFGHJK", 10);
	assert_memory_not_equal(h1, h2, sizeof(h1));
}

static char tmpdir[] = "/tmp/bv_test_invite_XXXXXX";

static const char *
put(const char *name, const char *text)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	chmod(path, 0600);
	return path;
}

static void
test_key_load(void **state)
{
	uint8_t key[INVITE_KEY_LEN];
	char err[256], path[300];
	size_t i;

	(void)state;
	assert_non_null(mkdtemp(tmpdir));
	assert_int_equal(
		invite_key_load(put("good",
				    "000102030405060708090a0b0c0d0e0f"
				    "101112131415161718191a1b1c1d1e1f\n"),
				key, err, sizeof(err)),
		0);
	for (i = 0; i < sizeof(key); i++)
		assert_int_equal(key[i], i);
	assert_int_equal(
		invite_key_load(put("crlf",
				    "000102030405060708090A0B0C0D0E0F"
				    "101112131415161718191A1B1C1D1E1F\r\n"),
				key, err, sizeof(err)),
		0);
	assert_int_equal(invite_key_load(put("short", "0001020304\n"), key, err,
					 sizeof(err)),
			 BV_ECONFIG);
	assert_non_null(strstr(err, "64 hexadecimal digits"));
	/* The key is never echoed, not even a wrong one. */
	assert_int_equal(
		invite_key_load(put("bad", "zz0102030405060708090a0b0c0d0e0f"
					   "101112131415161718191a1b1c1d1e1f"),
				key, err, sizeof(err)),
		BV_ECONFIG);
	assert_null(strstr(err, "0102030405"));
	assert_int_equal(
		invite_key_load(put("long", "000102030405060708090a0b0c0d0e0f"
					    "101112131415161718191a1b1c1d1e1f"
					    "00\n"),
				key, err, sizeof(err)),
		BV_ECONFIG);
	snprintf(path, sizeof(path), "%s/missing", tmpdir);
	assert_int_equal(invite_key_load(path, key, err, sizeof(err)), BV_EIO);
	assert_int_equal(invite_key_load(tmpdir, key, err, sizeof(err)),
			 BV_ECONFIG);
	snprintf(path, sizeof(path), "rm -rf '%s'", tmpdir);
	assert_int_equal(system(path), 0);
}

static void
test_ticket(void **state)
{
	char t[INVITE_TICKET_LEN + 1], bad[INVITE_TICKET_LEN + 1];
	uint8_t h1[INVITE_HASH_LEN], h2[INVITE_HASH_LEN];

	(void)state;
	assert_int_equal(invite_ticket_new(t, h1), 0);
	assert_int_equal(strlen(t), 48);
	assert_true(invite_is_ticket(t));
	assert_int_equal(invite_ticket_hash(t, h2), 0);
	assert_memory_equal(h1, h2, sizeof(h1));
	assert_false(invite_is_ticket("bvt1.abc"));
	assert_false(invite_is_ticket(NULL));
	assert_int_equal(invite_ticket_hash("bvi1.", h2), BV_ETOKEN);
	assert_int_equal(invite_ticket_hash("bvt1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
					    "AAAAAAAAAAAAAA",
					    h2),
			 BV_ETOKEN);
	memcpy(bad, t, sizeof(bad));
	bad[20] = '+'; /* not base64url */
	assert_int_equal(invite_ticket_hash(bad, h2), BV_ETOKEN);
	memcpy(bad, t, sizeof(bad));
	bad[47] = '='; /* no padding */
	assert_int_equal(invite_ticket_hash(bad, h2), BV_ETOKEN);
	/* Two tickets never agree. */
	assert_int_equal(invite_ticket_new(bad, h2), 0);
	assert_string_not_equal(t, bad);
	assert_memory_not_equal(h1, h2, sizeof(h1));
}

static void
expect_key(const char *addr, const char *want)
{
	char out[64];

	if (!want) {
		assert_int_equal(invite_addr_key(addr, out, sizeof(out)), -1);
		return;
	}
	assert_int_equal(invite_addr_key(addr, out, sizeof(out)), 0);
	assert_string_equal(out, want);
}

static void
test_addr_key(void **state)
{
	(void)state;
	expect_key("192.0.2.7", "192.0.2.7");
	expect_key("::ffff:192.0.2.7", "192.0.2.7");
	expect_key("2001:db8::1", "2001:db8::/64");
	expect_key("2001:db8:0:0:ffff:ffff:ffff:ffff", "2001:db8::/64");
	expect_key("2001:db8:0:1::1", "2001:db8:0:1::/64");
	expect_key("::1", "::/64");
	expect_key("", NULL);
	expect_key("localhost", NULL);
	expect_key("192.0.2.7:443", NULL);
	expect_key(NULL, NULL);
}

static void
test_limits(void **state)
{
	struct invite_limits *l = invite_limits_new(3);
	uint64_t retry = 0;
	char key[32];
	unsigned i;

	(void)state;
	assert_non_null(l);
	for (i = 0; i < 3; i++)
		assert_int_equal(invite_limits_take(l, "192.0.2.7", T0, &retry),
				 0);
	assert_int_equal(invite_limits_take(l, "192.0.2.7", T0, &retry),
			 BV_ERATE);
	assert_int_equal(retry, 1200000); /* 3 an hour: one per 20 min */
	/* Another address has its own count. */
	assert_int_equal(invite_limits_take(l, "192.0.2.8", T0, &retry), 0);
	/* A success gives the token back. */
	invite_limits_refund(l, "192.0.2.7");
	assert_int_equal(invite_limits_take(l, "192.0.2.7", T0, &retry), 0);
	assert_int_equal(invite_limits_take(l, "192.0.2.7", T0, &retry),
			 BV_ERATE);
	invite_limits_refund(l, "198.51.100.1"); /* unknown: nothing */
	assert_int_equal(invite_limits_count(l), 2);
	/* Fill the table: a new address is refused until old ones can be
	 * forgotten (their buckets full again), at most one sweep a second. */
	for (i = 2; i < INVITE_ADDRS_MAX; i++) {
		snprintf(key, sizeof(key), "10.%u.%u.%u", i >> 16,
			 (i >> 8) & 255, i & 255);
		assert_int_equal(invite_limits_take(l, key, T0, &retry), 0);
	}
	assert_int_equal(invite_limits_count(l), INVITE_ADDRS_MAX);
	assert_int_equal(invite_limits_take(l, "203.0.113.1", T0, &retry),
			 BV_EBUSY);
	/* Twenty minutes on, each bucket has refilled its one token. */
	assert_int_equal(
		invite_limits_take(l, "203.0.113.1", T0 + 1200000, &retry), 0);
	assert_int_equal(invite_limits_count(l), 2);
	/* 192.0.2.7 was not forgotten: it had used up its failures. */
	assert_int_equal(
		invite_limits_take(l, "192.0.2.7", T0 + 1200000, &retry), 0);
	assert_int_equal(
		invite_limits_take(l, "192.0.2.7", T0 + 1200000, &retry),
		BV_ERATE);
	invite_limits_free(l);
	invite_limits_free(NULL);
}

int
main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_code_new),
		cmocka_unit_test(test_normalize),
		cmocka_unit_test(test_hash),
		cmocka_unit_test(test_key_load),
		cmocka_unit_test(test_ticket),
		cmocka_unit_test(test_addr_key),
		cmocka_unit_test(test_limits),
	};
	/* clang-format on */

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
