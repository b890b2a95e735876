/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_util.c: unit tests of common/bv_util.c: allocation failure
 * injection, base64 (both alphabets, strictness, capacity), UUIDs, clocks
 * and the log line format.
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

#include "bv_error.h"
#include "bv_util.h"

/* Must run first: the environment is read at the first allocation. */
static void
test_alloc_env_read_once(void **state)
{
	void *a, *b, *c;

	(void)state;
	setenv("BV_ALLOC_FAIL_AT", "2", 1);
	a = bv_malloc(8);
	b = bv_malloc(8);
	setenv("BV_ALLOC_FAIL_AT", "0", 1); /* too late: read once */
	c = bv_malloc(8);
	assert_non_null(a);
	assert_null(b);
	assert_null(c);
	bv_free(a);
	bv_alloc_fail_at(0);
	unsetenv("BV_ALLOC_FAIL_AT");
	a = bv_malloc(8);
	assert_non_null(a);
	bv_free(a);
}

static void
test_alloc_fail_at(void **state)
{
	void *p[4];
	char *s;

	(void)state;
	bv_alloc_fail_at(3);
	p[0] = bv_malloc(1);
	p[1] = bv_calloc(2, 2);
	p[2] = bv_malloc(1);	/* the third call fails ... */
	p[3] = bv_calloc(1, 1); /* ... and every later one */
	assert_non_null(p[0]);
	assert_non_null(p[1]);
	assert_null(p[2]);
	assert_null(p[3]);
	assert_null(bv_realloc(p[0], 100)); /* p[0] still valid */
	assert_null(bv_strdup("x"));
	assert_null(bv_strndup("xyz", 2));
	bv_free(p[0]);
	bv_free(p[1]);

	bv_alloc_fail_at(1);
	assert_null(bv_malloc(1));
	bv_alloc_fail_at(0);
	p[0] = bv_malloc(0); /* zero bytes still succeed with a pointer */
	assert_non_null(p[0]);
	p[0] = bv_realloc(p[0], 64);
	assert_non_null(p[0]);
	bv_free(p[0]);
	bv_free(NULL);

	s = bv_strndup("abcdef", 3);
	assert_string_equal(s, "abc");
	bv_free(s);
	s = bv_strndup("ab", 10);
	assert_string_equal(s, "ab");
	bv_free(s);
	s = bv_strdup("hello");
	assert_string_equal(s, "hello");
	bv_free(s);
	assert_null(bv_strdup(NULL));
}

static void
test_wipe(void **state)
{
	uint8_t buf[16];
	size_t i;

	(void)state;
	memset(buf, 0xa5, sizeof(buf));
	bv_wipe(buf, sizeof(buf));
	for (i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0);
	bv_wipe(NULL, 3);
}

static const struct {
	const char *plain, *b64;
} rfc4648[] = {
	{"", ""},
	{"f", "Zg=="},
	{"fo", "Zm8="},
	{"foo", "Zm9v"},
	{"foob", "Zm9vYg=="},
	{"fooba", "Zm9vYmE="},
	{"foobar", "Zm9vYmFy"},
};

static void
test_b64_vectors(void **state)
{
	uint8_t out[16];
	size_t i, n;
	char *s;

	(void)state;
	for (i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
		const char *p = rfc4648[i].plain, *b = rfc4648[i].b64;

		s = bv_b64_encode((const uint8_t *)p, strlen(p));
		assert_non_null(s);
		assert_string_equal(s, b);
		bv_free(s);
		n = 99;
		assert_int_equal(
			bv_b64_decode(b, strlen(b), out, sizeof(out), &n), 0);
		assert_int_equal(n, strlen(p));
		assert_memory_equal(out, p, n);
		/* Exactly the decoded size fits. */
		assert_int_equal(
			bv_b64_decode(b, strlen(b), out, strlen(p), &n), 0);
	}
}

static void
test_b64_invalid(void **state)
{
	static const char *const bad[] = {
		"Zg=",		/* length not a multiple of 4 */
		"Zg",		/* missing padding */
		"Zh==",		/* non-zero unused bits */
		"Zm9v\n",	/* white space */
		" Zm9v",	/* white space */
		"Zm9vYg==Zm9v", /* data after padding */
		"Zm9v====",	/* padding without data */
		"Zm9vYmFy!!!!", /* trailing garbage */
		"Zm9-",		/* URL-safe alphabet */
		"Zm9_",		/* URL-safe alphabet */
		"Z===",		/* too much padding */
		"====",		"Zg==\r\n",
	};
	uint8_t out[64];
	size_t i, n = 77;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(bv_b64_decode(bad[i], strlen(bad[i]), out,
					       sizeof(out), &n),
				 BV_EBASE64);
	/* An embedded NUL inside the given length. */
	assert_int_equal(bv_b64_decode("Zm\0v", 4, out, sizeof(out), &n),
			 BV_EBASE64);
	assert_int_equal(n, 77); /* untouched on failure */
}

static void
test_b64_capacity(void **state)
{
	uint8_t raw[1500], out[10], back[1500];
	size_t n;
	char *s;

	(void)state;
	memset(raw, 0x5a, sizeof(raw));
	s = bv_b64_encode(raw, sizeof(raw));
	assert_non_null(s);
	assert_int_equal(strlen(s), 2000);
	/* Valid but too long for the buffer. */
	assert_int_equal(bv_b64_decode(s, strlen(s), out, sizeof(out), &n),
			 BV_EINVAL);
	assert_int_equal(bv_b64_decode("Zm9vYmFy", 8, out, 5, &n), BV_EINVAL);
	assert_int_equal(bv_b64_decode(s, strlen(s), back, sizeof(back), &n),
			 0);
	assert_int_equal(n, sizeof(raw));
	assert_memory_equal(back, raw, n);
	/* Invalid and too long: invalid wins, wherever the bad byte is. */
	s[1500] = '*';
	assert_int_equal(bv_b64_decode(s, strlen(s), out, sizeof(out), &n),
			 BV_EBASE64);
	s[1500] = 'W';
	s[1998] = '=';
	assert_int_equal(bv_b64_decode(s, strlen(s), out, sizeof(out), &n),
			 BV_EBASE64);
	bv_free(s);

	assert_int_equal(bv_b64_decoded_max(0), 0);
	assert_int_equal(bv_b64_decoded_max(4), 3);
	assert_int_equal(bv_b64_decoded_max(5), 6);
	assert_int_equal(bv_b64_decoded_max(44), 33);
	assert_int_equal(bv_b64_decoded_max(88), 66);
}

static void
test_b64url(void **state)
{
	const uint8_t raw[] = {0xfb, 0xff, 0xbf};
	uint8_t out[8];
	size_t n;
	char *s;

	(void)state;
	s = bv_b64url_encode(raw, sizeof(raw));
	assert_string_equal(s, "-_-_");
	bv_free(s);
	s = bv_b64url_encode((const uint8_t *)"f", 1);
	assert_string_equal(s, "Zg"); /* no padding */
	bv_free(s);
	assert_int_equal(bv_b64url_decode("-_-_", 4, out, sizeof(out), &n), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(out, raw, 3);
	assert_int_equal(bv_b64url_decode("Zm9vYg", 6, out, sizeof(out), &n),
			 0);
	assert_int_equal(n, 4);
	assert_int_equal(bv_b64url_decode("Zg==", 4, out, sizeof(out), &n),
			 BV_EBASE64);
	assert_int_equal(bv_b64url_decode("+/+/", 4, out, sizeof(out), &n),
			 BV_EBASE64);
	assert_int_equal(bv_b64url_decode("Z", 1, out, sizeof(out), &n),
			 BV_EBASE64);
	assert_int_equal(bv_b64url_decode("Zh", 2, out, sizeof(out), &n),
			 BV_EBASE64);
	assert_int_equal(bv_b64url_decode("Zm9vYg.x", 8, out, sizeof(out), &n),
			 BV_EBASE64);
	assert_int_equal(bv_b64url_decode("Zm9vYmFy", 8, out, 5, &n),
			 BV_EINVAL);
}

static void
test_b64_torture(void **state)
{
	const uint8_t raw[3] = {1, 2, 3};

	(void)state;
	bv_alloc_fail_at(1);
	assert_null(bv_b64_encode(raw, sizeof(raw)));
	assert_null(bv_b64url_encode(raw, sizeof(raw)));
	bv_alloc_fail_at(0);
}

static void
test_uuid(void **state)
{
	char a[BV_UUID_LEN + 1], b[BV_UUID_LEN + 1];
	int i;

	(void)state;
	assert_true(bv_uuid_valid("3f0c2a4e-1b2c-4d5e-8f90-a1b2c3d4e5f6"));
	assert_true(bv_uuid_valid("00000000-0000-0000-0000-000000000000"));
	assert_false(bv_uuid_valid("3F0C2A4E-1B2C-4D5E-8F90-A1B2C3D4E5F6"));
	assert_false(bv_uuid_valid("3f0c2a4e-1b2c-4d5e-8f90-a1b2c3d4e5f"));
	assert_false(bv_uuid_valid("3f0c2a4e-1b2c-4d5e-8f90-a1b2c3d4e5f6a"));
	assert_false(bv_uuid_valid("3f0c2a4e1b2c-4d5e-8f90-a1b2c3d4e5f6a"));
	assert_false(bv_uuid_valid("3f0c2a4e-1b2c-4d5e-8f90_a1b2c3d4e5f6"));
	assert_false(bv_uuid_valid("3f0c2a4g-1b2c-4d5e-8f90-a1b2c3d4e5f6"));
	assert_false(bv_uuid_valid("{f0c2a4e-1b2c-4d5e-8f90-a1b2c3d4e5f}"));
	assert_false(bv_uuid_valid(""));
	assert_false(bv_uuid_valid(NULL));

	for (i = 0; i < 100; i++) {
		bv_uuid_generate(a);
		bv_uuid_generate(b);
		assert_true(bv_uuid_valid(a));
		assert_int_equal(a[14], '4');
		assert_non_null(strchr("89ab", a[19]));
		assert_string_not_equal(a, b);
	}
}

static void
test_clock(void **state)
{
	int64_t s, ms;
	uint64_t m1, m2;

	(void)state;
	s = bv_now_s();
	ms = bv_now_ms();
	assert_true(s > 1700000000);
	assert_true(ms / 1000 - s <= 1 && ms / 1000 >= s);
	m1 = bv_mono_ms();
	m2 = bv_mono_ms();
	assert_true(m2 >= m1);
}

/* Runs fn with stderr sent to a file and returns what it wrote. */
static char *
capture_stderr(void (*fn)(void))
{
	char path[] = "/tmp/bv_test_util_XXXXXX";
	static char buf[4096];
	int fd, saved;
	ssize_t n;

	fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	fflush(stderr);
	saved = dup(2);
	dup2(fd, 2);
	fn();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	lseek(fd, 0, SEEK_SET);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n >= 0);
	buf[n] = '\0';
	return buf;
}

static void
log_some(void)
{
	bv_log(BV_LOG_DEBUG, "dropped %d", 1);
	bv_log(BV_LOG_NOTICE, "relay: hello\nforged %s", "line");
	bv_log(BV_LOG_ERR, "db: %s", "down");
}

static void
log_long(void)
{
	char big[3000];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	bv_log(BV_LOG_WARN, "%s", big);
}

static void
test_log(void **state)
{
	const char *out;
	int old;

	(void)state;
	assert_int_equal(bv_log_level_from_name("err"), BV_LOG_ERR);
	assert_int_equal(bv_log_level_from_name("warn"), BV_LOG_WARN);
	assert_int_equal(bv_log_level_from_name("notice"), BV_LOG_NOTICE);
	assert_int_equal(bv_log_level_from_name("info"), BV_LOG_INFO);
	assert_int_equal(bv_log_level_from_name("debug"), BV_LOG_DEBUG);
	assert_int_equal(bv_log_level_from_name("NOTICE"), -1);
	assert_int_equal(bv_log_level_from_name("warning"), -1);
	assert_int_equal(bv_log_level_from_name(NULL), -1);

	old = bv_log_set_level(BV_LOG_NOTICE);
	assert_int_equal(old, BV_LOG_NOTICE); /* the default */
	out = capture_stderr(log_some);
	/* "2026-11-22T21:36:13.123Z notice relay: hello?forged line\n" */
	assert_true(strlen(out) > 24);
	assert_int_equal(out[4], '-');
	assert_int_equal(out[7], '-');
	assert_int_equal(out[10], 'T');
	assert_int_equal(out[13], ':');
	assert_int_equal(out[19], '.');
	assert_int_equal(out[23], 'Z');
	/* The newline in the message cannot start a forged line. */
	assert_memory_equal(out + 23, "Z notice relay: hello?forged line\n",
			    strlen("Z notice relay: hello?forged line\n"));
}

static void
test_log_levels(void **state)
{
	const char *out, *nl;

	(void)state;
	bv_log_set_level(BV_LOG_NOTICE);
	out = capture_stderr(log_some);
	nl = strchr(out, '\n');
	assert_non_null(nl);
	assert_non_null(strstr(nl + 1, " err db: down\n"));
	assert_null(strstr(out, "dropped"));

	bv_log_set_level(BV_LOG_DEBUG);
	out = capture_stderr(log_some);
	assert_non_null(strstr(out, " debug dropped 1\n"));
	bv_log_set_level(BV_LOG_ERR);
	out = capture_stderr(log_some);
	assert_null(strstr(out, "notice"));
	assert_non_null(strstr(out, " err db: down\n"));
	assert_int_equal(bv_log_set_level(BV_LOG_NOTICE), BV_LOG_ERR);

	out = capture_stderr(log_long);
	assert_non_null(strstr(out, "xxx...\n"));
	assert_int_equal(strchr(out, '\n')[1], '\0'); /* still one line */
}

/* A message from fragments: whole, over the cap (dropped whole), dropped
 * from the start, and a big buffer given back at its end. */
static void
test_msg(void **state)
{
	struct bv_msg m = {0};
	char big[70000];

	(void)state;
	bv_msg_begin(&m, 0);
	assert_int_equal(bv_msg_append(&m, "{\"a\":", 5, 16), 0);
	assert_int_equal(bv_msg_append(&m, "1}", 2, 16), 0);
	assert_int_equal(m.len, 7);
	assert_memory_equal(m.buf, "{\"a\":1}", 7);
	assert_true(m.cap >= 8 && m.cap <= 17);
	assert_int_equal(m.overflow, 0);
	bv_msg_end(&m);
	assert_int_equal(m.len, 0);

	/* Over the cap: nothing kept, the rest ignored until the end. */
	bv_msg_begin(&m, 0);
	assert_int_equal(bv_msg_append(&m, "0123456789", 10, 16), 0);
	assert_int_equal(bv_msg_append(&m, "0123456789", 10, 16), 0);
	assert_int_equal(m.overflow, 1);
	assert_int_equal(m.len, 0);
	assert_int_equal(bv_msg_append(&m, "x", 1, 16), 0);
	assert_int_equal(m.len, 0);
	bv_msg_end(&m);
	assert_int_equal(m.overflow, 0);

	/* Dropped from the start (a binary frame). */
	bv_msg_begin(&m, 1);
	assert_int_equal(bv_msg_append(&m, "x", 1, 16), 0);
	assert_int_equal(m.len, 0);
	assert_int_equal(m.overflow, 1);

	/* A message over 64 KiB leaves no buffer behind. */
	memset(big, 'b', sizeof(big));
	bv_msg_begin(&m, 0);
	assert_int_equal(bv_msg_append(&m, big, sizeof(big), sizeof(big)), 0);
	assert_int_equal(m.len, sizeof(big));
	assert_true(m.cap > 65536);
	bv_msg_end(&m);
	assert_null(m.buf);
	assert_int_equal(m.cap, 0);
	bv_msg_free(&m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alloc_env_read_once),
		cmocka_unit_test(test_alloc_fail_at),
		cmocka_unit_test(test_wipe),
		cmocka_unit_test(test_b64_vectors),
		cmocka_unit_test(test_b64_invalid),
		cmocka_unit_test(test_b64_capacity),
		cmocka_unit_test(test_b64url),
		cmocka_unit_test(test_b64_torture),
		cmocka_unit_test(test_uuid),
		cmocka_unit_test(test_clock),
		cmocka_unit_test(test_log),
		cmocka_unit_test(test_log_levels),
		cmocka_unit_test(test_msg),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
