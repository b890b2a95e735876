/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * conn_transport.h: the seam between conn.c (the connection logic: auth,
 * requests, output queue, deliver, backoff) and the one WebSocket transport
 * a build links: conn_lws.c (libwebsockets on libuv, native) or conn_web.c
 * (the browser's WebSocket, WebAssembly). Internal to libbvchat; nothing
 * here is public. One thread: the loop's. The transport calls conn__t_*()
 * from its loop callbacks (lws callbacks, browser events, timers) and from
 * inside a transport__*() call only where that function says so.
 */
#ifndef BV_CONN_TRANSPORT_H
#define BV_CONN_TRANSPORT_H

#include <stddef.h>
#include <uv.h>

#include "conn.h"

struct bv_conn_transport;

/* ---- the transport: called by conn.c only ---- */

/*
 * Makes the transport of c on loop (borrowed; it outlives the transport).
 * cfg is conn.c's copy with its defaults filled in; the transport copies
 * what it needs (connect_timeout_s). Returns 0 and sets *out, or BV_ENOMEM,
 * or BV_EIO (lws context). Nothing is called back.
 */
int transport__new(struct bv_conn *c, uv_loop_t *loop,
		   const struct bv_conn_cfg *cfg,
		   struct bv_conn_transport **out);

/*
 * Starts one connection attempt to ws://host:port/v1 (BV_WS_PATH,
 * subprotocol BV_SUBPROTOCOL); host is copied. Called only when no attempt
 * is live. Every attempt ends in exactly one conn__t_closed(), which may
 * come before this returns (the attempt could not even start); in between
 * come at most one conn__t_opened() and any number of conn__t_frame(),
 * conn__t_dropped() and conn__t_writable().
 */
void transport__open(struct bv_conn_transport *t, const char *host, int port);

/*
 * Bytes conn.c must leave free in front of every frame it hands to
 * transport__write() (LWS_PRE for lws, 0 for the browser).
 */
size_t transport__headroom(void);

/*
 * conn.c has frames queued: call conn__t_writable() when one can be
 * written, once per frame. lws: on the next writable callback. Browser: at
 * once, from inside this call (it has no writable callback). Ignored while
 * no connection is open or the transport is closing.
 */
void transport__want_write(struct bv_conn_transport *t);

/*
 * Writes one whole text frame, only from inside conn__t_writable(). buf has
 * transport__headroom() writable bytes in front of it and is borrowed.
 * Returns 0, or -1 when it could not be written whole (conn__t_writable()
 * then returns -1 and the transport drops the connection).
 */
int transport__write(struct bv_conn_transport *t, unsigned char *buf,
		     size_t len);

/*
 * Bytes written with transport__write() that the transport still holds
 * (not yet on the network), counted against max_output_bytes with conn.c's
 * own queue. lws: 0 (it writes only when writable). Browser: what
 * bvwTransport.buffered() says (the store gate plus bufferedAmount).
 */
size_t transport__buffered(const struct bv_conn_transport *t);

/*
 * Closes the live connection with code (1000, 1002, 1011…): nothing more
 * is written or received, conn__t_closed() follows later. lws sends the
 * close frame on the next writable callback and hangs up without waiting
 * for the echo; the browser may send 1000 instead (see conn_web.lib.js).
 * Ignored without a connection or when already closing.
 */
void transport__close(struct bv_conn_transport *t, int code);

/*
 * First step of shutting down (conn__close()): drops any connection
 * without a conn__t_closed() for it (conn.c cleans up itself) and begins
 * releasing the transport's loop handles. Nothing is called back afterwards
 * except, possibly, conn__t_closed() for the connection being dropped, from
 * inside this call. The caller then runs the loop (when it owns it) before
 * transport__free().
 */
void transport__shutdown(struct bv_conn_transport *t);

/* Second step: frees t (NULL is fine). transport__shutdown() came first. */
void transport__free(struct bv_conn_transport *t);

/* ---- conn.c: called by the transport only, from the loop ---- */

/* The attempt's WebSocket is up (handshake done, subprotocol agreed). */
void conn__t_opened(struct bv_conn *c);

/*
 * One whole text message from the relay, reassembled by the transport;
 * buf is borrowed for the call and need not be NUL-terminated. Longer than
 * conn__t_max_frame(): dropped here, as conn__t_dropped().
 */
void conn__t_frame(struct bv_conn *c, const char *buf, size_t len);

/* A message the transport would not assemble (binary, or longer than
 * conn__t_max_frame()) was dropped; the connection stays up. */
void conn__t_dropped(struct bv_conn *c);

/*
 * The transport can write one frame now (after transport__want_write()).
 * Returns 0 (written, or nothing was queued), or -1 when transport__write()
 * failed: the transport then drops the connection.
 */
int conn__t_writable(struct bv_conn *c);

/*
 * The attempt or connection ended: code is the relay's close code, or -1
 * when the relay sent none (refused, reset, timed out, we closed first).
 * conn.c fails outstanding requests and schedules a reconnect.
 */
void conn__t_closed(struct bv_conn *c, int code);

/* The cap on one message either way: max_frame_bytes until the challenge,
 * then the relay's (clamped); used to bound reassembly. */
size_t conn__t_max_frame(const struct bv_conn *c);

#endif
