/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * bv_util.c: allocation wrappers with fail-the-Nth-call support, wiping,
 * base64 (libsodium's constant-time codec, made strict), UUIDs, clocks and
 * one-line logging to stderr.
 *
 * It does not install itself as jansson's allocator; a program that wants
 * jansson inside the torture runs calls json_set_alloc_funcs() itself.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "bv_error.h"
#include "bv_util.h"

/* BV_ALLOC_FAIL_AT: -1 until the environment was read, 0 = never fail. */
static atomic_long alloc_fail_at = -1;
static atomic_long alloc_count;

static long
alloc_limit(void)
{
	long n = atomic_load(&alloc_fail_at);
	const char *env;
	char *end;

	if (n >= 0)
		return n;
	env = getenv("BV_ALLOC_FAIL_AT");
	n = 0;
	if (env && *env) {
		n = strtol(env, &end, 10);
		if (*end != '\0' || n < 0)
			n = 0;
	}
	/* Losing this race only means another thread stored the same n. */
	atomic_store(&alloc_fail_at, n);
	return n;
}

/* Returns 1 when this allocation call has to fail. */
static int
alloc_should_fail(void)
{
	long limit = alloc_limit();

	if (limit == 0)
		return 0;
	return atomic_fetch_add(&alloc_count, 1) + 1 >= limit;
}

void
bv_alloc_fail_at(long n)
{
	atomic_store(&alloc_count, 0);
	atomic_store(&alloc_fail_at, n > 0 ? n : 0);
}

/* A zero-sized request still returns a distinct pointer, so NULL is ENOMEM. */
void *
bv_malloc(size_t n)
{
	if (alloc_should_fail())
		return NULL;
	return malloc(n ? n : 1);
}

void *
bv_calloc(size_t nmemb, size_t size)
{
	if (alloc_should_fail())
		return NULL;
	if (nmemb == 0 || size == 0)
		nmemb = size = 1;
	return calloc(nmemb, size);
}

void *
bv_realloc(void *p, size_t n)
{
	if (alloc_should_fail())
		return NULL;
	return realloc(p, n ? n : 1);
}

char *
bv_strdup(const char *s)
{
	return s ? bv_strndup(s, strlen(s)) : NULL;
}

char *
bv_strndup(const char *s, size_t n)
{
	char *d;

	if (!s)
		return NULL;
	n = strnlen(s, n);
	d = bv_malloc(n + 1);
	if (!d)
		return NULL;
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

void
bv_free(void *p)
{
	free(p);
}

void
bv_wipe(void *p, size_t n)
{
	if (p && n)
		sodium_memzero(p, n);
}

void
bv_msg_begin(struct bv_msg *m, int drop)
{
	m->len = 0;
	m->overflow = drop;
}

int
bv_msg_append(struct bv_msg *m, const void *in, size_t len, size_t max)
{
	char *n;

	if (m->overflow)
		return 0;
	if (m->len + len > max) {
		m->overflow = 1;
		m->len = 0;
		return 0;
	}
	if (m->len + len + 1 > m->cap) {
		size_t want = m->cap ? m->cap : 4096;

		while (want < m->len + len + 1)
			want *= 2;
		if (want > max + 1)
			want = max + 1;
		n = bv_realloc(m->buf, want);
		if (!n)
			return BV_ENOMEM;
		m->buf = n;
		m->cap = want;
	}
	memcpy(m->buf + m->len, in, len);
	m->len += len;
	return 0;
}

void
bv_msg_end(struct bv_msg *m)
{
	m->len = 0;
	m->overflow = 0;
	if (m->cap > 65536) {
		bv_free(m->buf);
		m->buf = NULL;
		m->cap = 0;
	}
}

void
bv_msg_free(struct bv_msg *m)
{
	bv_free(m->buf);
	memset(m, 0, sizeof(*m));
}

static char *
b64_encode(const uint8_t *buf, size_t len, int variant)
{
	size_t cap;
	char *s;

	/* sodium_base64_ENCODED_LEN would overflow past this. */
	if (len > (SIZE_MAX - 8) / 4 * 3)
		return NULL;
	cap = sodium_base64_ENCODED_LEN(len, variant);
	s = bv_malloc(cap);
	if (!s)
		return NULL;
	if (len == 0) {
		s[0] = '\0';
		return s;
	}
	sodium_bin2base64(s, cap, buf, len, variant);
	return s;
}

/*
 * Decodes with libsodium, rejecting everything it would otherwise tolerate:
 * characters after the last valid one, missing or extra padding and
 * non-zero unused bits. No ignore set is passed, so whitespace is invalid.
 */
static int
b64_decode_into(const char *in, size_t len, uint8_t *out, size_t cap,
		size_t *outlen, int variant)
{
	const char *end = NULL;
	size_t n = 0;

	if (sodium_base642bin(out, cap, in, len, NULL, &n, &end, variant) != 0)
		return BV_EBASE64;
	if (end != in + len)
		return BV_EBASE64;
	*outlen = n;
	return 0;
}

/*
 * Exact decoded length of len characters, or SIZE_MAX when len alone shows
 * the input is invalid.
 */
static size_t
b64_exact_len(const char *in, size_t len, int padded)
{
	size_t n = len / 4 * 3;

	if (padded) {
		if (len % 4 != 0)
			return SIZE_MAX;
		if (len >= 1 && in[len - 1] == '=')
			n--;
		if (len >= 2 && in[len - 2] == '=')
			n--;
		return n;
	}
	if (len % 4 == 1)
		return SIZE_MAX;
	return n + (len % 4 ? len % 4 - 1 : 0);
}

/*
 * Checks input too long for the caller's buffer, so that invalid input is
 * BV_EBASE64 whatever its length. Chunks of a multiple of 4 characters
 * decode independently; a chunk that ends early (padding inside) fails.
 */
static int
b64_validate(const char *in, size_t len, int variant)
{
	uint8_t scratch[768];
	size_t off, chunk, n;
	int rc;

	for (off = 0; off < len; off += chunk) {
		chunk = len - off < 1024 ? len - off : 1024;
		rc = b64_decode_into(in + off, chunk, scratch, sizeof(scratch),
				     &n, variant);
		if (rc < 0)
			break;
	}
	if (off < len)
		rc = BV_EBASE64;
	else
		rc = 0;
	sodium_memzero(scratch, sizeof(scratch));
	return rc;
}

static int
b64_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *outlen,
	   int variant)
{
	int padded = variant == sodium_base64_VARIANT_ORIGINAL;
	size_t need;
	int rc;

	if (!in && len)
		return BV_EINVAL;
	need = b64_exact_len(in, len, padded);
	if (need == SIZE_MAX)
		return BV_EBASE64;
	if (need > cap) {
		rc = b64_validate(in, len, variant);
		return rc < 0 ? rc : BV_EINVAL;
	}
	return b64_decode_into(in, len, out, cap, outlen, variant);
}

char *
bv_b64_encode(const uint8_t *buf, size_t len)
{
	return b64_encode(buf, len, sodium_base64_VARIANT_ORIGINAL);
}

int
bv_b64_decode(const char *in, size_t len, uint8_t *out, size_t cap,
	      size_t *outlen)
{
	return b64_decode(in, len, out, cap, outlen,
			  sodium_base64_VARIANT_ORIGINAL);
}

size_t
bv_b64_decoded_max(size_t len)
{
	return len / 4 * 3 + (len % 4 ? 3 : 0);
}

char *
bv_b64url_encode(const uint8_t *buf, size_t len)
{
	return b64_encode(buf, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

int
bv_b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap,
		 size_t *outlen)
{
	return b64_decode(in, len, out, cap, outlen,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

int
bv_uuid_valid(const char *s)
{
	size_t i;

	if (!s)
		return 0;
	for (i = 0; i < BV_UUID_LEN; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!((s[i] >= '0' && s[i] <= '9') ||
			     (s[i] >= 'a' && s[i] <= 'f'))) {
			return 0; /* also stops at the NUL of a short string */
		}
	}
	return s[BV_UUID_LEN] == '\0';
}

void
bv_uuid_generate(char out[BV_UUID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t b[16];
	size_t i, j = 0;

	/* Without a working random source nothing here is safe to go on. */
	if (sodium_init() < 0)
		abort();
	randombytes_buf(b, sizeof(b));
	b[6] = (b[6] & 0x0f) | 0x40; /* version 4 */
	b[8] = (b[8] & 0x3f) | 0x80; /* RFC 4122 variant */
	for (i = 0; i < sizeof(b); i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[j++] = '-';
		out[j++] = hex[b[i] >> 4];
		out[j++] = hex[b[i] & 0x0f];
	}
	out[j] = '\0';
}

int64_t
bv_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
bv_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec;
}

uint64_t
bv_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static const char *const level_names[] = {"err", "warn", "notice", "info",
					  "debug"};
#define LEVEL_COUNT ((int)(sizeof(level_names) / sizeof(level_names[0])))

static atomic_int log_level = BV_LOG_NOTICE;

int
bv_log_set_level(int level)
{
	if (level < BV_LOG_ERR)
		level = BV_LOG_ERR;
	if (level > BV_LOG_DEBUG)
		level = BV_LOG_DEBUG;
	return atomic_exchange(&log_level, level);
}

int
bv_log_level_from_name(const char *name)
{
	int i;

	if (!name)
		return -1;
	for (i = 0; i < LEVEL_COUNT; i++)
		if (strcmp(name, level_names[i]) == 0)
			return i;
	return -1;
}

void
bv_log(int level, const char *fmt, ...)
{
	char msg[1024], ts[32];
	struct timespec now;
	struct tm tm;
	va_list ap;
	size_t i;
	int n;

	if (level > atomic_load(&log_level))
		return;
	if (level < BV_LOG_ERR)
		level = BV_LOG_ERR;
	if (level >= LEVEL_COUNT)
		level = LEVEL_COUNT - 1;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(msg))
		memcpy(msg + sizeof(msg) - 4, "...", 4);
	/* One event is one line: a peer-supplied newline cannot forge another. */
	for (i = 0; msg[i]; i++)
		if ((unsigned char)msg[i] < 0x20 || msg[i] == 0x7f)
			msg[i] = '?';

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ldZ %s %s\n", ts, now.tv_nsec / 1000000,
		level_names[level], msg);
}
