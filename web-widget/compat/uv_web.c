/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * uv_web.c (web build only): NOT libuv. The timers and handle life cycle
 * of web-widget/compat/uv.h over emscripten_set_timeout(), so that one
 * client.c serves the native and the WebAssembly build. No I/O, no
 * threads, no idle or check phases; uv_run() only runs due close
 * callbacks. One thread: the browser's main one.
 */
#include <stddef.h>
#include <emscripten/eventloop.h>

#include "uv.h"

#define F_ACTIVE  1u
#define F_CLOSING 2u
#define F_CLOSED  4u

int
uv_loop_init(uv_loop_t *loop)
{
	loop->data = NULL;
	loop->nhandles = 0;
	loop->closing = NULL;
	loop->closing_tail = &loop->closing;
	loop->close_timeout = 0;
	return 0;
}

/* Runs the close callbacks queued so far (not those queued meanwhile). */
static void
run_closing(uv_loop_t *loop)
{
	uv_handle_t *h = loop->closing, *next;

	if (loop->close_timeout) {
		emscripten_clear_timeout(loop->close_timeout);
		loop->close_timeout = 0;
	}
	loop->closing = NULL;
	loop->closing_tail = &loop->closing;
	for (; h; h = next) {
		next = h->next_closing;
		h->next_closing = NULL;
		h->flags |= F_CLOSED;
		loop->nhandles--;
		/* The callback may free h. */
		h->close_cb(h);
	}
}

static void
closing_due(void *arg)
{
	uv_loop_t *loop = arg;

	loop->close_timeout = 0;
	run_closing(loop);
}

int
uv_loop_close(uv_loop_t *loop)
{
	if (loop->nhandles || loop->closing)
		return UV_EBUSY;
	if (loop->close_timeout) {
		emscripten_clear_timeout(loop->close_timeout);
		loop->close_timeout = 0;
	}
	return 0;
}

int
uv_run(uv_loop_t *loop, uv_run_mode mode)
{
	(void)mode;
	if (loop->closing)
		run_closing(loop);
	return 0;
}

int
uv_timer_init(uv_loop_t *loop, uv_timer_t *handle)
{
	handle->data = NULL;
	handle->loop = loop;
	handle->type = UV_TIMER;
	handle->flags = 0;
	handle->close_cb = NULL;
	handle->next_closing = NULL;
	handle->cb = NULL;
	handle->repeat = 0;
	handle->timeout_id = 0;
	loop->nhandles++;
	return 0;
}

static void
timer_due(void *arg)
{
	uv_timer_t *t = arg;

	t->timeout_id = 0;
	/* As libuv's uv__run_timers(): re-armed before the callback. */
	if (t->repeat)
		t->timeout_id =
			emscripten_set_timeout(timer_due, (double)t->repeat, t);
	else
		t->flags &= ~F_ACTIVE;
	t->cb(t);
}

int
uv_timer_start(uv_timer_t *handle, uv_timer_cb cb, uint64_t timeout,
	       uint64_t repeat)
{
	if (!cb || (handle->flags & F_CLOSING))
		return UV_EINVAL;
	uv_timer_stop(handle);
	handle->cb = cb;
	handle->repeat = repeat;
	handle->flags |= F_ACTIVE;
	handle->timeout_id =
		emscripten_set_timeout(timer_due, (double)timeout, handle);
	return 0;
}

int
uv_timer_stop(uv_timer_t *handle)
{
	if (handle->timeout_id) {
		emscripten_clear_timeout(handle->timeout_id);
		handle->timeout_id = 0;
	}
	handle->flags &= ~F_ACTIVE;
	return 0;
}

int
uv_is_active(const uv_handle_t *handle)
{
	return (handle->flags & F_ACTIVE) != 0;
}

void
uv_close(uv_handle_t *handle, uv_close_cb close_cb)
{
	uv_loop_t *loop = handle->loop;

	if (handle->flags & (F_CLOSING | F_CLOSED))
		return; /* libuv asserts; here a second close is harmless */
	if (handle->type == UV_TIMER)
		uv_timer_stop((uv_timer_t *)handle);
	handle->flags |= F_CLOSING;
	handle->close_cb = close_cb;
	if (!close_cb) {
		handle->flags |= F_CLOSED;
		loop->nhandles--;
		return;
	}
	*loop->closing_tail = handle;
	loop->closing_tail = &handle->next_closing;
	if (!loop->close_timeout)
		loop->close_timeout =
			emscripten_set_timeout(closing_due, 0, loop);
}
