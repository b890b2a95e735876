/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * bv_util.h: allocation, wiping, base64, UUIDs, time and logging shared by the
 * relay, the client library and the tools.
 *
 * Allocation goes through bv_malloc() and friends so that test runs can fail
 * the Nth allocation (environment BV_ALLOC_FAIL_AT=n, as curl's torture runs).
 * Logging never receives envelope bodies, keys or tokens: callers log ids.
 */
#ifndef BV_UTIL_H
#define BV_UTIL_H

#include <stddef.h>
#include <stdint.h>

void *bv_malloc(size_t n);
void *bv_calloc(size_t nmemb, size_t size);
void *bv_realloc(void *p, size_t n);
char *bv_strdup(const char *s);
char *bv_strndup(const char *s, size_t n);
void bv_free(void *p);

/*
 * Makes the nth allocation call from now on (counting from 1) and every later
 * one fail, as curl's memlimit torture runs; 0 turns failing off. Overrides
 * the environment BV_ALLOC_FAIL_AT, which is read once at the first call.
 * For tests only.
 */
void bv_alloc_fail_at(long n);

/* Overwrites n bytes at p with zeros in a way the compiler cannot elide. */
void bv_wipe(void *p, size_t n);

/*
 * A WebSocket message put together from its fragments (relay and client
 * alike), never longer than the cap it is given. bv_msg_begin() starts one
 * (drop 1: ignore it, e.g. a binary frame); bv_msg_append() adds a
 * fragment, keeping room for a NUL; a message over max is dropped whole
 * (overflow set, nothing kept) and the caller answers it at its end;
 * bv_msg_end() empties it and gives back a buffer grown past 64 KiB, so an
 * idle connection holds no big buffer. Zero-initialised is empty.
 */
struct bv_msg {
	char *buf;
	size_t len, cap;
	int overflow; /* too large, or dropped from the start */
};
void bv_msg_begin(struct bv_msg *m, int drop);
/* 0, or BV_ENOMEM (the message so far is kept). */
int bv_msg_append(struct bv_msg *m, const void *in, size_t len, size_t max);
void bv_msg_end(struct bv_msg *m);
void bv_msg_free(struct bv_msg *m);

/*
 * Standard base64 with padding (RFC 4648 section 4). bv_b64_encode() returns
 * a new NUL-terminated string (free with bv_free) or NULL on ENOMEM.
 * bv_b64_decode() decodes len characters into out (capacity cap) and sets
 * *outlen. Returns 0, BV_EBASE64 for invalid input, BV_EINVAL if the result
 * would not fit in cap.
 */
char *bv_b64_encode(const uint8_t *buf, size_t len);
int bv_b64_decode(const char *in, size_t len, uint8_t *out, size_t cap,
		  size_t *outlen);
/* Decoded length upper bound for len base64 characters. */
size_t bv_b64_decoded_max(size_t len);

/* URL-safe base64 without padding, as used in enrollment tokens. */
char *bv_b64url_encode(const uint8_t *buf, size_t len);
int bv_b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap,
		     size_t *outlen);

#define BV_UUID_LEN 36
/* Returns 1 if s is a 36-character lower-case hex UUID, else 0. */
int bv_uuid_valid(const char *s);
/* Writes a new random (version 4) UUID and a NUL into out. */
void bv_uuid_generate(char out[BV_UUID_LEN + 1]);

/* Wall-clock milliseconds and seconds since the epoch; monotonic ms. */
int64_t bv_now_ms(void);
int64_t bv_now_s(void);
uint64_t bv_mono_ms(void);

enum bv_log_level {
	BV_LOG_ERR = 0,
	BV_LOG_WARN = 1,
	BV_LOG_NOTICE = 2,
	BV_LOG_INFO = 3,
	BV_LOG_DEBUG = 4,
};

/* Sets the level below which lines are dropped; returns the old one. */
int bv_log_set_level(int level);
/* Parses "err", "warn", "notice", "info", "debug"; returns -1 if unknown. */
int bv_log_level_from_name(const char *name);
/* One line to stderr: "2026-11-22T21:36:13.123Z notice relay: ...". */
void bv_log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
