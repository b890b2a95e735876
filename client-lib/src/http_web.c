/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * http_web.c (WebAssembly build only): the HTTP transport of the
 * attachments (http_transport.h) over the browser's fetch(), reached
 * through web-widget/src/http_web.lib.js (its top comment is the contract).
 * A PUT's body is the spool file (emscripten's MEMFS in the widget) read
 * whole into the heap and handed to fetch() as a Uint8Array, so the
 * browser sends it with that exact Content-Length. The answer comes back
 * from a promise, never inside http__start(); a failure found before
 * fetch() starts is reported from a zero timer. One thread: the browser's.
 */
#include <stdio.h>
#include <string.h>

#include <emscripten/emscripten.h>
#include <uv.h>

#include "bv_error.h"
#include "bv_util.h"
#include "http_transport.h"

/* ---- http_web.lib.js: called from here ---- */

/*
 * Starts fetch(method, url) with "Authorization: Bearer <bearer>" and, for
 * a PUT, body[0..body_len) (copied before it returns); answers longer than
 * max_answer end in BV_EFRAME. Returns the request's handle (> 0), or 0
 * when no request could be started (no report follows then).
 */
extern int bvw_http_start(const char *method, const char *url,
			  const char *bearer, const uint8_t *body,
			  double body_len, double max_answer,
			  double timeout_ms);
/* Aborts handle (its report still comes, with BV_EIO). */
extern void bvw_http_abort(int handle);

/* ---- exported to http_web.lib.js (EMSCRIPTEN_KEEPALIVE) ---- */

uint8_t *bvw_http_alloc(size_t len);
void bvw_http_done(int handle, int end, int status, uint8_t *body, size_t len);

struct bv_http {
	struct bv_http *next; /* every request in flight, for the handles */
	uv_timer_t timer;     /* a failure before fetch() started */
	bv_http_cb cb;
	void *arg;
	int handle;
	int rc; /* for the timer */
};

static struct bv_http *all;

static void
unlink_req(struct bv_http *h)
{
	struct bv_http **pp;

	for (pp = &all; *pp; pp = &(*pp)->next)
		if (*pp == h) {
			*pp = h->next;
			return;
		}
}

static void
on_closed(uv_handle_t *t)
{
	bv_free(t->data);
}

static void
on_timer(uv_timer_t *t)
{
	struct bv_http *h = t->data;

	unlink_req(h);
	h->cb(h->arg, h->rc, 0, NULL, 0);
	uv_close((uv_handle_t *)&h->timer, on_closed);
}

/* Reads the whole spool file path, which must be exactly len bytes. */
static int
read_body(const char *path, uint64_t len, uint8_t **out)
{
	FILE *f = NULL;
	uint8_t *b = NULL;
	int rc = BV_EIO;

	if (len > SIZE_MAX - 1)
		return BV_EIO;
	f = fopen(path, "rb");
	if (!f)
		goto out;
	b = bv_malloc(len ? (size_t)len : 1);
	if (!b) {
		rc = BV_ENOMEM;
		goto out;
	}
	/* Exactly len bytes, and nothing after them. */
	if (fread(b, 1, (size_t)len, f) != (size_t)len || fgetc(f) != EOF)
		goto out;
	*out = b;
	b = NULL;
	rc = 0;
out:
	if (f)
		fclose(f);
	if (b) {
		bv_wipe(b, (size_t)len);
		bv_free(b);
	}
	return rc;
}

int
http__start(uv_loop_t *loop, const struct bv_http_req *r, bv_http_cb cb,
	    void *arg, struct bv_http **out)
{
	struct bv_http *h;
	uint8_t *body = NULL;
	int put, rc = 0;

	if (!loop || !r || !cb || !r->method || !r->url || !r->bearer)
		return BV_EINVAL;
	put = strcmp(r->method, "PUT") == 0;
	if ((!put && strcmp(r->method, "GET") != 0) || (put && !r->body_path))
		return BV_EINVAL;
	h = bv_calloc(1, sizeof(*h));
	if (!h)
		return BV_ENOMEM;
	h->cb = cb;
	h->arg = arg;
	if (put)
		rc = read_body(r->body_path, r->body_len, &body);
	if (rc == BV_ENOMEM) {
		bv_free(h);
		return rc;
	}
	if (rc == 0) {
		/* fetch() has copied the body when this returns. */
		h->handle = bvw_http_start(
			r->method, r->url, r->bearer, body,
			put ? (double)r->body_len : 0, (double)r->max_answer,
			1000.0 * (double)(r->timeout_s > 0 ? r->timeout_s
							   : 600));
		if (!h->handle)
			rc = BV_EIO;
	}
	if (body) {
		bv_wipe(body, (size_t)r->body_len);
		bv_free(body);
	}
	h->next = all;
	all = h;
	if (rc < 0) {
		h->rc = rc;
		uv_timer_init(loop, &h->timer);
		h->timer.data = h;
		uv_timer_start(&h->timer, on_timer, 0, 0);
	}
	if (out)
		*out = h;
	return 0;
}

void
http__abort(struct bv_http *h)
{
	if (h && h->handle)
		bvw_http_abort(h->handle);
}

EMSCRIPTEN_KEEPALIVE uint8_t *
bvw_http_alloc(size_t len)
{
	return len < SIZE_MAX ? bv_malloc(len + 1) : NULL;
}

/* The end of request handle: end 0 with status and body (from
 * bvw_http_alloc(), len bytes, ours now); 1 no answer, 2 an answer over
 * max_answer, 3 no memory for it (http_web.lib.js). */
EMSCRIPTEN_KEEPALIVE void
bvw_http_done(int handle, int end, int status, uint8_t *body, size_t len)
{
	struct bv_http *h;
	int rc = end == 0   ? 0
		 : end == 2 ? BV_EFRAME
		 : end == 3 ? BV_ENOMEM
			    : BV_EIO;

	for (h = all; h; h = h->next)
		if (h->handle == handle && handle > 0)
			break;
	if (body)
		body[len] = 0;
	if (!h || rc < 0) {
		if (body) {
			bv_wipe(body, len);
			bv_free(body);
		}
		body = NULL;
		len = 0;
	}
	if (!h)
		return; /* stale: not ours any more */
	unlink_req(h);
	h->cb(h->arg, rc, rc == 0 ? status : 0, body, len);
	bv_free(h);
}
