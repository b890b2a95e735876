/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * http_transport.h: the seam between client.c's attachments (upload and
 * download of encrypted blobs, docs/protocol.md "Attachments") and the one
 * HTTP transport a build links: http_curl.c (libcurl, native; each request
 * runs off the loop in uv_queue_work) or http_web.c (WebAssembly: the
 * browser's fetch(), the PUT body read from the spool file in emscripten's
 * MEMFS). Internal to libbvchat. One thread: the loop's; the
 * callback always comes from the loop, never inside http__start().
 */
#ifndef BV_HTTP_TRANSPORT_H
#define BV_HTTP_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct bv_http;

struct bv_http_req {
	const char *method; /* "PUT" or "GET" */
	const char *url;    /* http[s]://host:port/v1/blobs/<uuid>; copied */
	const char *bearer; /* the capability; copied, wiped when done */
	/* PUT: the body is body_len bytes of the file body_path (copied),
	 * sent with that exact Content-Length (never chunked). */
	const char *body_path;
	uint64_t body_len;
	/* The answer body is kept up to this many bytes; a longer one ends
	 * the request with BV_EFRAME. */
	size_t max_answer;
	/* Whole request bound in seconds (0: 600). */
	long timeout_s;
};

/*
 * The end of one request: rc 0 when an HTTP answer came (status, and the
 * body: body_len bytes, owned by the callee, NUL-terminated; bv_free it
 * after bv_wipe), else BV_EIO (no answer: refused, reset, timed out, the
 * body file unreadable, or http__abort() stopped it), BV_EFRAME (answer
 * over max_answer), BV_EUNAVAILABLE (no HTTP in this build), BV_ENOMEM;
 * status 0 and body NULL then.
 */
typedef void (*bv_http_cb)(void *arg, int rc, long status, uint8_t *body,
			   size_t body_len);

/*
 * Starts r on loop; cb(arg, …) comes exactly once, from the loop. Returns
 * 0 and sets *out (valid until cb returns); BV_EINVAL; BV_ENOMEM (no
 * callback then).
 */
int http__start(uv_loop_t *loop, const struct bv_http_req *r, bv_http_cb cb,
		void *arg, struct bv_http **out);

/* Asks h to stop soon (client close); its callback still comes. */
void http__abort(struct bv_http *h);

#endif
