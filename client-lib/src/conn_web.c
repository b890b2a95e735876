/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * conn_web.c (WebAssembly build only): the browser transport of conn.c
 * (conn_transport.h) over the page's WebSocket, reached through
 * web-widget/src/conn_web.lib.js (its top comment is the contract with
 * Module.bvwTransport). Whole messages come from the browser, frames go out
 * as soon as conn.c queues them (no writable callback there), and a uv
 * timer bounds connecting and closing, which the browser does not. It knows
 * nothing of the protocol above the WebSocket. One thread: the browser's.
 */
#include <string.h>
#include <emscripten/emscripten.h>
#include <uv.h>

#include "bv_error.h"
#include "bv_util.h"
#include "conn_transport.h"

#define CLOSE_NORMAL	 1000
#define CLOSE_UNEXPECTED 1011
/* Received buffers larger than this are freed after use (as conn_lws.c). */
#define RX_KEEP 65536

/* ---- conn_web.lib.js: called from here ---- */

/*
 * Opens ws[s]://host:port<path> (the page's scheme decides) through
 * Module.bvwTransport. Returns the attempt's handle (> 0), or 0 when no
 * attempt could be started; no report comes for it then.
 */
extern int bvw_ws_open(const char *host, int port, const char *path);
/* Sends buf[0..len) as one text frame. 0, or -1 (it was not taken). */
extern int bvw_ws_send(int handle, const unsigned char *buf, size_t len);
/* Closes (1000 or 3000-4999 go on the wire, other codes as 1000). */
extern void bvw_ws_close(int handle, int code);
/* Bytes handed to bvw_ws_send() not yet on the network (0 if unknown). */
extern size_t bvw_ws_buffered(int handle);

/* ---- exported to conn_web.lib.js (EMSCRIPTEN_KEEPALIVE) ---- */

void bvw_ws_on_open(int handle);
char *bvw_ws_rx_buf(int handle, size_t len);
void bvw_ws_on_message(int handle, const char *buf, size_t len);
void bvw_ws_on_close(int handle, int code);

struct bv_conn_transport {
	struct bv_conn *c;
	struct bv_conn_transport *next; /* every transport, for the handles */
	uv_timer_t deadline; /* connecting or closing takes too long */
	int deadline_init;
	uint64_t timeout_ms;
	char *host; /* of the current attempt, for the log */
	int port;
	int handle;  /* the current attempt's, 0 without one */
	int open;    /* bvw_ws_on_open() came for it */
	int closing; /* we asked for the close */
	int writing; /* inside transport__want_write() */
	int again;   /* another frame was queued meanwhile */
	char *rx;    /* the last message, for bvw_ws_rx_buf() */
	size_t rx_cap;
};

/* The transports that exist; a handle names an attempt of one of them, or
 * of none when it is stale. */
static struct bv_conn_transport *all;

static struct bv_conn_transport *
find(int handle)
{
	struct bv_conn_transport *t;

	if (handle <= 0)
		return NULL;
	for (t = all; t; t = t->next)
		if (t->handle == handle)
			return t;
	return NULL;
}

static void
rx_release(struct bv_conn_transport *t)
{
	bv_free(t->rx);
	t->rx = NULL;
	t->rx_cap = 0;
}

/* The attempt ended: forget its handle (later reports are stale), then
 * tell conn.c, which may open the next one. */
static void
ended(struct bv_conn_transport *t, int code)
{
	uv_timer_stop(&t->deadline);
	t->handle = 0;
	t->open = 0;
	t->closing = 0;
	rx_release(t);
	conn__t_closed(t->c, code);
}

static void
on_deadline(uv_timer_t *timer)
{
	struct bv_conn_transport *t = timer->data;
	int h = t->handle;

	if (!h)
		return;
	bv_log(BV_LOG_INFO, "conn: %s %s:%d timed out",
	       t->closing ? "closing" : "connecting to",
	       t->host ? t->host : "-", t->port);
	/* What the browser reports for h from now on is stale. */
	t->handle = 0;
	if (!t->closing)
		bvw_ws_close(h, CLOSE_NORMAL);
	ended(t, -1);
}

/* Asks the browser to close; bvw_ws_on_close() or the deadline ends it. */
static void
start_close(struct bv_conn_transport *t, int code)
{
	t->closing = 1;
	bvw_ws_close(t->handle, code);
	uv_timer_start(&t->deadline, on_deadline, t->timeout_ms, 0);
}

int
transport__new(struct bv_conn *c, uv_loop_t *loop,
	       const struct bv_conn_cfg *cfg, struct bv_conn_transport **out)
{
	struct bv_conn_transport *t;

	t = bv_calloc(1, sizeof(*t));
	if (!t)
		return BV_ENOMEM;
	t->c = c;
	t->timeout_ms = (uint64_t)cfg->connect_timeout_s * 1000;
	uv_timer_init(loop, &t->deadline);
	t->deadline.data = t;
	t->deadline_init = 1;
	t->next = all;
	all = t;
	*out = t;
	return 0;
}

void
transport__open(struct bv_conn_transport *t, const char *host, int port)
{
	char *h;

	h = bv_strdup(host);
	if (h) {
		bv_free(t->host);
		t->host = h;
	}
	t->port = port;
	t->open = 0;
	t->closing = 0;
	t->handle = bvw_ws_open(host, port, BV_WS_PATH);
	if (t->handle <= 0) {
		bv_log(BV_LOG_INFO,
		       "conn: cannot connect to %s:%d: no "
		       "WebSocket (see the console)",
		       host, port);
		ended(t, -1);
		return;
	}
	uv_timer_start(&t->deadline, on_deadline, t->timeout_ms, 0);
}

size_t
transport__headroom(void)
{
	return 0;
}

void
transport__want_write(struct bv_conn_transport *t)
{
	/* The browser takes every frame at once: write now, in a loop rather
	 * than recursively (conn__t_writable() calls back here while frames
	 * remain). */
	if (!t->handle || !t->open || t->closing)
		return;
	if (t->writing) {
		t->again = 1;
		return;
	}
	t->writing = 1;
	do {
		t->again = 0;
		if (conn__t_writable(t->c) < 0) {
			/* As lws after a failed write: give the connection
			 * up (the browser cannot hang up without a close). */
			bv_log(BV_LOG_WARN, "conn: WebSocket send failed");
			start_close(t, CLOSE_UNEXPECTED);
			break;
		}
	} while (t->again && t->handle && !t->closing);
	t->writing = 0;
}

int
transport__write(struct bv_conn_transport *t, unsigned char *buf, size_t len)
{
	if (!t->handle || !t->open || t->closing)
		return -1;
	return bvw_ws_send(t->handle, buf, len) < 0 ? -1 : 0;
}

size_t
transport__buffered(const struct bv_conn_transport *t)
{
	if (!t->handle || !t->open)
		return 0;
	return bvw_ws_buffered(t->handle);
}

void
transport__close(struct bv_conn_transport *t, int code)
{
	if (!t->handle || t->closing)
		return;
	start_close(t, code);
}

void
transport__shutdown(struct bv_conn_transport *t)
{
	int h = t->handle;

	/* Forget the attempt first: its reports are stale from now on. */
	t->handle = 0;
	t->open = 0;
	if (h && !t->closing)
		bvw_ws_close(h, CLOSE_NORMAL);
	t->closing = 0;
	rx_release(t);
	if (t->deadline_init) {
		uv_close((uv_handle_t *)&t->deadline, NULL);
		t->deadline_init = 0;
	}
}

void
transport__free(struct bv_conn_transport *t)
{
	struct bv_conn_transport **pp;

	if (!t)
		return;
	if (t->deadline_init)
		transport__shutdown(t);
	for (pp = &all; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	}
	rx_release(t);
	bv_free(t->host);
	bv_free(t);
}

EMSCRIPTEN_KEEPALIVE void
bvw_ws_on_open(int handle)
{
	struct bv_conn_transport *t = find(handle);

	if (!t || t->open || t->closing)
		return;
	t->open = 1;
	uv_timer_stop(&t->deadline);
	conn__t_opened(t->c);
	/* Anything conn.c queued before the socket was up. */
	transport__want_write(t);
}

/*
 * A buffer for the next message of len bytes, owned by the transport and
 * good until the next call or the end of the attempt, so that nothing
 * larger than conn__t_max_frame() ever enters the wasm heap. NULL when the
 * handle is stale, the message too large, or memory short (the connection
 * is then given up, as conn_lws.c does).
 */
EMSCRIPTEN_KEEPALIVE char *
bvw_ws_rx_buf(int handle, size_t len)
{
	struct bv_conn_transport *t = find(handle);
	char *n;

	if (!t || !t->open || t->closing || len > conn__t_max_frame(t->c))
		return NULL;
	if (len + 1 > t->rx_cap) {
		n = bv_realloc(t->rx, len + 1);
		if (!n) {
			start_close(t, CLOSE_UNEXPECTED);
			return NULL;
		}
		t->rx = n;
		t->rx_cap = len + 1;
	}
	return t->rx;
}

/*
 * One whole message: a text frame's UTF-8 in buf (from bvw_ws_rx_buf()),
 * or buf NULL for one that was binary or refused by bvw_ws_rx_buf(),
 * dropped as conn_lws.c drops it.
 */
EMSCRIPTEN_KEEPALIVE void
bvw_ws_on_message(int handle, const char *buf, size_t len)
{
	struct bv_conn_transport *t = find(handle);

	if (!t || !t->open || t->closing)
		return;
	if (!buf)
		conn__t_dropped(t->c);
	else
		conn__t_frame(t->c, buf, len);
	/* Large buffers are not kept (as conn_lws.c); ended() may already
	 * have freed it. */
	if (t->handle == handle && t->rx_cap > RX_KEEP)
		rx_release(t);
}

/*
 * The socket closed (or never opened): code is CloseEvent.code. Codes that
 * never travel on the wire (1005 none given, 1006 abnormal, 1015 TLS) and
 * whatever comes after we closed are reported as -1, as conn_lws.c does:
 * it hangs up after its close frame without waiting for the relay's.
 */
EMSCRIPTEN_KEEPALIVE void
bvw_ws_on_close(int handle, int code)
{
	struct bv_conn_transport *t = find(handle);

	if (!t)
		return;
	if (!t->open && !t->closing)
		bv_log(BV_LOG_INFO, "conn: cannot connect to %s:%d: closed %d",
		       t->host ? t->host : "-", t->port, code);
	if (t->closing || code <= 0 || code == 1005 || code == 1006 ||
	    code == 1015)
		code = -1;
	ended(t, code);
}
