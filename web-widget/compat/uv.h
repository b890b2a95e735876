/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * uv.h (web build only): NOT libuv. A stand-in with libuv's names for the
 * few calls client-lib/src/client.c, conn.c and conn_web.c make, so that
 * one client.c serves the native and the WebAssembly build. Timers run on
 * the browser's event loop (emscripten_set_timeout); uv_run() never waits
 * and never runs timers. Put web-widget/compat first on the include path
 * of the web build and nowhere else. One thread: the browser's main one.
 */
#ifndef BV_COMPAT_UV_H
#define BV_COMPAT_UV_H

#include <stdint.h>

/* libuv's value on Linux and in emscripten (-EBUSY, -EINVAL). */
#define UV_EBUSY  (-16)
#define UV_EINVAL (-22)

typedef struct uv_loop_s uv_loop_t;
typedef struct uv_handle_s uv_handle_t;
typedef struct uv_timer_s uv_timer_t;

typedef void (*uv_close_cb)(uv_handle_t *handle);
typedef void (*uv_timer_cb)(uv_timer_t *handle);

typedef enum { UV_RUN_DEFAULT = 0, UV_RUN_ONCE, UV_RUN_NOWAIT } uv_run_mode;

typedef enum {
	UV_UNKNOWN_HANDLE = 0,
	UV_TIMER = 13 /* libuv's number, for whoever prints it */
} uv_handle_type;

struct uv_loop_s {
	void *data; /* the user's, as in libuv */
	/* private */
	unsigned nhandles;    /* initialised and not yet closed */
	uv_handle_t *closing; /* closed, close callback not yet run */
	uv_handle_t **closing_tail;
	long close_timeout; /* the turn that runs them, or 0 */
};

/* The fields every handle starts with, so (uv_handle_t *)&timer works. */
#define BV_UV_HANDLE_FIELDS                                                    \
	void *data; /* the user's, as in libuv */                              \
	uv_loop_t *loop;                                                       \
	uv_handle_type type;                                                   \
	/* private */                                                          \
	unsigned flags;                                                        \
	uv_close_cb close_cb;                                                  \
	uv_handle_t *next_closing;

struct uv_handle_s {
	BV_UV_HANDLE_FIELDS
};

struct uv_timer_s {
	BV_UV_HANDLE_FIELDS
	/* private */
	uv_timer_cb cb;
	uint64_t repeat;
	long timeout_id; /* emscripten_set_timeout's, or 0 */
};

/* Always 0. */
int uv_loop_init(uv_loop_t *loop);

/*
 * 0, or UV_EBUSY while a handle is not closed or its close callback has
 * not run (as libuv: then the loop must not be freed yet).
 */
int uv_loop_close(uv_loop_t *loop);

/*
 * Runs the close callbacks that are due, then returns 0 ("nothing left"),
 * whatever mode says: it must never block the browser, and timers fire
 * from the browser's event loop, not from here. So a caller's
 * `while (uv_run(loop, UV_RUN_NOWAIT))` drain ends at once, and
 * bv_client_run_once() is not needed in the browser.
 */
int uv_run(uv_loop_t *loop, uv_run_mode mode);

/* Always 0. */
int uv_timer_init(uv_loop_t *loop, uv_timer_t *handle);

/*
 * Calls cb after timeout ms, then every repeat ms if repeat is not 0, as
 * libuv: starting an active timer restarts it; a repeating timer is
 * re-armed before cb runs, so uv_timer_stop() or uv_timer_start() in cb
 * take effect and uv_is_active() in cb is 1 for a repeating timer, 0 for a
 * one-shot. Timers started with the same timeout fire in the order they
 * were started. The browser may fire late (clamped nested timeouts,
 * throttled background tabs), never early. 0, or UV_EINVAL when cb is NULL
 * or the handle is closing.
 */
int uv_timer_start(uv_timer_t *handle, uv_timer_cb cb, uint64_t timeout,
		   uint64_t repeat);

/* Always 0; stopping a stopped timer is fine. */
int uv_timer_stop(uv_timer_t *handle);

/* 1 when a timer is started and not yet stopped or fired (one-shot). */
int uv_is_active(const uv_handle_t *handle);

/*
 * Stops the handle for good. With close_cb NULL the handle's memory may be
 * reused as soon as this returns (libuv would want one more uv_run() turn;
 * nothing here needs it). Otherwise close_cb runs on a later turn of the
 * browser's event loop, or in the next uv_run(), whichever comes first;
 * the handle must live until then.
 */
void uv_close(uv_handle_t *handle, uv_close_cb close_cb);

#endif
