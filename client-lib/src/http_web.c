/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * http_web.c (WebAssembly build only): the HTTP transport of the
 * attachments (http_transport.h) for the browser. Not wired to fetch()
 * yet: every request ends in BV_EUNAVAILABLE, reported from the loop (a
 * zero timer), never inside http__start(). The widget's attachments need
 * a conn_web.lib.js-style bvwHttp (fetch with the Bearer header and the
 * body from the store's spool) in its place.
 */
#include <string.h>

#include <uv.h>

#include "bv_error.h"
#include "bv_util.h"
#include "http_transport.h"

struct bv_http {
	uv_timer_t timer;
	bv_http_cb cb;
	void *arg;
};

static void
on_closed(uv_handle_t *t)
{
	bv_free(t->data);
}

static void
on_timer(uv_timer_t *t)
{
	struct bv_http *h = t->data;

	h->cb(h->arg, BV_EUNAVAILABLE, 0, NULL, 0);
	uv_close((uv_handle_t *)&h->timer, on_closed);
}

int
http__start(uv_loop_t *loop, const struct bv_http_req *r, bv_http_cb cb,
	    void *arg, struct bv_http **out)
{
	struct bv_http *h;

	if (!loop || !r || !cb)
		return BV_EINVAL;
	h = bv_calloc(1, sizeof(*h));
	if (!h)
		return BV_ENOMEM;
	h->cb = cb;
	h->arg = arg;
	uv_timer_init(loop, &h->timer);
	h->timer.data = h;
	uv_timer_start(&h->timer, on_timer, 0, 0);
	if (out)
		*out = h;
	return 0;
}

void
http__abort(struct bv_http *h)
{
	(void)h;
}
