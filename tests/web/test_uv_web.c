/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_uv_web: the web build's libuv stand-in (web-widget/compat/uv_web.c)
 * under node: timer order, never early, repeat and its re-arming before
 * the callback, stop and restart inside a callback, restart of an active
 * timer, close with and without a callback, uv_run() and uv_loop_close().
 * Built with emcc -sENVIRONMENT=node by web-widget/CMakeLists.txt (ctest
 * wasm.uv); prints TAP and exits 0 when every check held. Everything happens on node's event loop:
 * main() only starts timers; the last one checks and exits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <emscripten/emscripten.h>

#include "uv.h"
#include "tap.h"

static uv_loop_t loop;

/* ---- order: due time first, then start order ---- */

static uv_timer_t ord[4];
static char order[8];
static int n_order;
static double ord_start, ord_at[4];
static const uint64_t ord_ms[4] = {30, 10, 20, 10};

static void
ord_cb(uv_timer_t *t)
{
	int i = (int)(t - ord);

	ord_at[i] = emscripten_get_now();
	order[n_order++] = (char)('A' + i);
	/* A fired one-shot is no longer active. */
	CHECK(!uv_is_active((uv_handle_t *)t));
}

/* ---- repeat, stopped from inside its callback on the 3rd call ---- */

static uv_timer_t rep;
static int rep_calls, rep_active_in_cb;

static void
rep_cb(uv_timer_t *t)
{
	rep_calls++;
	rep_active_in_cb += uv_is_active((uv_handle_t *)t);
	if (rep_calls == 3)
		uv_timer_stop(t);
}

/* ---- a one-shot that restarts itself twice ---- */

static uv_timer_t again;
static int again_calls;

static void
again_cb(uv_timer_t *t)
{
	if (++again_calls < 3)
		uv_timer_start(t, again_cb, 5, 0);
}

/* ---- a repeating timer restarted as a one-shot in its callback ---- */

static uv_timer_t swap;
static int swap_calls;

static void
swap_cb(uv_timer_t *t)
{
	if (++swap_calls == 1)
		uv_timer_start(t, swap_cb, 15, 0);
}

/* ---- stop before due, restart of an active timer ---- */

static uv_timer_t stopped, moved;
static int stopped_calls, moved_calls;
static double moved_at, moved_start;

static void
stopped_cb(uv_timer_t *t)
{
	(void)t;
	stopped_calls++;
}

static void
moved_cb(uv_timer_t *t)
{
	(void)t;
	moved_calls++;
	moved_at = emscripten_get_now();
}

/* ---- timeout 0 is never synchronous ---- */

static uv_timer_t zero;
static int zero_calls;

static void
zero_cb(uv_timer_t *t)
{
	(void)t;
	zero_calls++;
}

/* ---- close ---- */

static uv_loop_t cloop; /* its own loop, to check uv_loop_close */
static uv_timer_t closed_active, closed_cb_timer, closed_by_run;
static int closed_active_calls, close_cbs, close_cb_in_run;

static void
never_cb(uv_timer_t *t)
{
	(void)t;
	closed_active_calls++;
}

static void
on_close(uv_handle_t *h)
{
	close_cbs++;
	if (h == (uv_handle_t *)&closed_by_run)
		close_cb_in_run = 1;
}

/* A handle closed without a callback may be freed at once. */
static uv_timer_t *heap_timer;
static int heap_calls;

static void
heap_cb(uv_timer_t *t)
{
	(void)t;
	heap_calls++;
}

/* A timer whose callback closes it and frees the memory in the close cb. */
static uv_timer_t *self_closing;
static int self_close_freed;

static void
self_freed(uv_handle_t *h)
{
	free(h);
	self_close_freed = 1;
}

static void
self_close_cb(uv_timer_t *t)
{
	uv_close((uv_handle_t *)t, self_freed);
}

/* ---- the end ---- */

static uv_timer_t done;

static void
done_cb(uv_timer_t *t)
{
	int i;

	(void)t;
	order[n_order] = '\0';
	printf("# order %s\n", order);
	CHECK(n_order == 4 && order[0] == 'B' && order[1] == 'D' &&
	      order[2] == 'C' && order[3] == 'A');
	for (i = 0; i < 4; i++)
		/* Never early (node may round by up to 1 ms). */
		CHECK(ord_at[i] - ord_start >= (double)ord_ms[i] - 1.0);

	CHECK(rep_calls == 3);
	CHECK(rep_active_in_cb == 3);
	CHECK(!uv_is_active((uv_handle_t *)&rep));

	CHECK(again_calls == 3);
	CHECK(!uv_is_active((uv_handle_t *)&again));

	CHECK(swap_calls == 2);
	CHECK(!uv_is_active((uv_handle_t *)&swap));

	CHECK(stopped_calls == 0);
	CHECK(moved_calls == 1);
	CHECK(moved_at - moved_start >= 60.0 - 1.0);

	CHECK(zero_calls == 1);

	CHECK(closed_active_calls == 0);
	CHECK(close_cbs == 3);
	CHECK(close_cb_in_run == 1);
	CHECK(uv_loop_close(&cloop) == 0);
	CHECK(heap_calls == 0);
	CHECK(self_close_freed == 1);

	uv_close((uv_handle_t *)&rep, NULL);
	uv_close((uv_handle_t *)&again, NULL);
	uv_close((uv_handle_t *)&swap, NULL);
	uv_close((uv_handle_t *)&stopped, NULL);
	uv_close((uv_handle_t *)&moved, NULL);
	uv_close((uv_handle_t *)&zero, NULL);
	for (i = 0; i < 4; i++)
		uv_close((uv_handle_t *)&ord[i], NULL);
	uv_close((uv_handle_t *)&done, NULL);
	CHECK(uv_loop_close(&loop) == 0);

	TAP_DONE();
}

int
main(void)
{
	int i;

	uv_loop_init(&loop);
	uv_loop_init(&cloop);

	ord_start = emscripten_get_now();
	for (i = 0; i < 4; i++) {
		uv_timer_init(&loop, &ord[i]);
		uv_timer_start(&ord[i], ord_cb, ord_ms[i], 0);
	}
	CHECK(uv_is_active((uv_handle_t *)&ord[0]));

	uv_timer_init(&loop, &rep);
	uv_timer_start(&rep, rep_cb, 5, 5);

	uv_timer_init(&loop, &again);
	uv_timer_start(&again, again_cb, 5, 0);

	uv_timer_init(&loop, &swap);
	uv_timer_start(&swap, swap_cb, 5, 5);

	uv_timer_init(&loop, &stopped);
	uv_timer_start(&stopped, stopped_cb, 10, 0);
	uv_timer_stop(&stopped);
	CHECK(!uv_is_active((uv_handle_t *)&stopped));
	CHECK(uv_timer_stop(&stopped) == 0); /* twice is fine */

	moved_start = emscripten_get_now();
	uv_timer_init(&loop, &moved);
	uv_timer_start(&moved, moved_cb, 10, 0);
	uv_timer_start(&moved, moved_cb, 60, 0);

	uv_timer_init(&loop, &zero);
	uv_timer_start(&zero, zero_cb, 0, 0);
	CHECK(zero_calls == 0);

	/* Closing: an active timer never fires; close callbacks come later,
	 * or from uv_run(); the loop is busy until they ran. */
	uv_timer_init(&cloop, &closed_active);
	uv_timer_start(&closed_active, never_cb, 5, 0);
	uv_close((uv_handle_t *)&closed_active, on_close);
	CHECK(!uv_is_active((uv_handle_t *)&closed_active));
	CHECK(uv_timer_start(&closed_active, never_cb, 5, 0) == UV_EINVAL);
	CHECK(close_cbs == 0);
	CHECK(uv_loop_close(&cloop) == UV_EBUSY);
	uv_timer_init(&cloop, &closed_cb_timer);
	uv_close((uv_handle_t *)&closed_cb_timer, on_close);
	uv_timer_init(&cloop, &closed_by_run);
	CHECK(uv_loop_close(&cloop) == UV_EBUSY);
	CHECK(uv_run(&cloop, UV_RUN_NOWAIT) == 0);
	CHECK(close_cbs == 2);
	uv_close((uv_handle_t *)&closed_by_run, on_close);
	CHECK(uv_run(&cloop, UV_RUN_DEFAULT) == 0);
	CHECK(close_cbs == 3 && close_cb_in_run == 1);

	heap_timer = malloc(sizeof(*heap_timer));
	uv_timer_init(&loop, heap_timer);
	uv_timer_start(heap_timer, heap_cb, 5, 5);
	uv_close((uv_handle_t *)heap_timer, NULL);
	free(heap_timer);

	self_closing = malloc(sizeof(*self_closing));
	uv_timer_init(&loop, self_closing);
	uv_timer_start(self_closing, self_close_cb, 5, 5);

	uv_timer_init(&loop, &done);
	uv_timer_start(&done, done_cb, 200, 0);
	CHECK(uv_loop_close(&loop) == UV_EBUSY);
	/* Returns at once with timers pending. */
	CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
	return 0;
}
