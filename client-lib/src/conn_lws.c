/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * conn_lws.c: the native transport of conn.c (conn_transport.h): one
 * libwebsockets 4.1 client context on the caller's libuv loop (as
 * relay/server.c), fragments reassembled up to conn__t_max_frame(), one
 * queued frame written per writable callback, the close frame written by
 * hand. It knows nothing of the protocol above the WebSocket. Not
 * thread-safe: everything runs on the loop's thread.
 */
#include <string.h>
#include <libwebsockets.h>
#include <uv.h>

#include "bv_error.h"
#include "bv_util.h"
#include "conn_transport.h"

/* LWS_WRITE_CLOSE of lws 4.1's private-lib-roles-ws.h (see server.c). */
#define WRITE_CLOSE ((enum lws_write_protocol)4)

struct bv_conn_transport {
	struct bv_conn *c;
	struct lws_context *lws;
	char *host; /* of the current attempt, for the log */
	int port;
	/* An attempt is in progress or up: from transport__open() until it is
	 * reported closed or the transport shut down. */
	int up;
	struct lws *wsi;  /* NULL until lws_client_connect_via_info returns */
	int close_code;	  /* we are closing with this code */
	int peer_close;	  /* the relay's close code, 0 if none */
	struct bv_msg rx; /* binary or too large: dropped at its end */
};

/* The attempt ended: forget it, then tell conn.c (which may open again). */
static void
closed(struct bv_conn_transport *t)
{
	int code = t->peer_close ? t->peer_close : -1;

	t->up = 0;
	t->wsi = NULL;
	t->close_code = 0;
	bv_msg_free(&t->rx);
	conn__t_closed(t->c, code);
}

/* Whether wsi is our current attempt (NULL wsi: lws_client_connect_via_info
 * has not returned yet). */
static int
mine(const struct bv_conn_transport *t, const struct lws *wsi)
{
	return t->up && (t->wsi == wsi || t->wsi == NULL);
}

static int
ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
	    void *in, size_t len)
{
	struct lws_context *ctx = lws_get_context(wsi);
	struct bv_conn_transport *t = ctx ? lws_context_user(ctx) : NULL;
	const unsigned char *p = in;

	(void)user;
	if (!t)
		return 0;
	switch (reason) {
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		if (wsi != t->wsi)
			return -1;
		conn__t_opened(t->c);
		return 0;

	case LWS_CALLBACK_CLIENT_RECEIVE:
		if (wsi != t->wsi || t->close_code)
			return 0;
		if (lws_is_first_fragment(wsi))
			bv_msg_begin(&t->rx, lws_frame_is_binary(wsi));
		if (bv_msg_append(&t->rx, in, len, conn__t_max_frame(t->c)) < 0)
			return -1;
		if (!lws_is_final_fragment(wsi) ||
		    lws_remaining_packet_payload(wsi))
			return 0;
		if (t->rx.overflow)
			conn__t_dropped(t->c);
		else
			conn__t_frame(t->c, t->rx.buf, t->rx.len);
		bv_msg_end(&t->rx);
		return 0;

	case LWS_CALLBACK_CLIENT_WRITEABLE:
		if (wsi != t->wsi)
			return -1;
		if (t->close_code) {
			unsigned char cf[LWS_PRE + 2];

			/* As server.c: lws 4.1 on libuv would hang up
			 * without the close frame. */
			cf[LWS_PRE] = (unsigned char)(t->close_code >> 8);
			cf[LWS_PRE + 1] = (unsigned char)(t->close_code & 0xff);
			lws_write(wsi, cf + LWS_PRE, 2, WRITE_CLOSE);
			return -1;
		}
		return conn__t_writable(t->c) < 0 ? -1 : 0;

	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (wsi == t->wsi && len >= 2)
			t->peer_close = (p[0] << 8) | p[1];
		return 0;

	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		bv_log(BV_LOG_INFO, "conn: cannot connect to %s:%d: %s",
		       t->host ? t->host : "-", t->port,
		       in ? (const char *)in : "-");
		/* fall through */
	case LWS_CALLBACK_CLIENT_CLOSED:
		if (mine(t, wsi))
			closed(t);
		return 0;

	default:
		return 0;
	}
}

static const struct lws_protocols protocols[] = {
	{BV_SUBPROTOCOL, ws_callback, 0, 65536, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0}};

static void
lws_log_emit(int level, const char *line)
{
	size_t n = strlen(line);

	while (n && line[n - 1] == '\n')
		n--;
	bv_log(level == LLL_ERR ? BV_LOG_ERR : BV_LOG_WARN, "lws: %.*s", (int)n,
	       line);
}

int
transport__new(struct bv_conn *c, uv_loop_t *loop,
	       const struct bv_conn_cfg *cfg, struct bv_conn_transport **out)
{
	struct lws_context_creation_info info;
	struct bv_conn_transport *t;
	void *loops[1];

	t = bv_calloc(1, sizeof(*t));
	if (!t)
		return BV_ENOMEM;
	t->c = c;
	lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);
	memset(&info, 0, sizeof(info));
	loops[0] = loop;
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.options = LWS_SERVER_OPTION_LIBUV;
	info.foreign_loops = loops;
	info.user = t;
	info.timeout_secs = cfg->connect_timeout_s;
	info.connect_timeout_secs = cfg->connect_timeout_s;
	info.ka_time = 60;
	info.ka_probes = 3;
	info.ka_interval = 10;
	t->lws = lws_create_context(&info);
	if (!t->lws) {
		bv_free(t);
		return BV_EIO;
	}
	*out = t;
	return 0;
}

void
transport__open(struct bv_conn_transport *t, const char *host, int port)
{
	struct lws_client_connect_info ci;
	struct lws *w;
	char *h;

	h = bv_strdup(host);
	if (h) {
		bv_free(t->host);
		t->host = h;
	}
	t->port = port;
	memset(&ci, 0, sizeof(ci));
	ci.context = t->lws;
	ci.address = host;
	ci.port = port;
	ci.path = BV_WS_PATH;
	ci.host = host;
	/* No ci.origin: lws would send "Origin: http://<host>", which is
	 * what a browser page sends, and the relay refuses browser origins
	 * it does not serve the widget under (docs/protocol.md). */
	ci.protocol = BV_SUBPROTOCOL;
	ci.local_protocol_name = BV_SUBPROTOCOL;
	ci.ietf_version_or_minus_one = -1;
	t->peer_close = 0;
	t->close_code = 0;
	t->wsi = NULL;
	t->up = 1;
	w = lws_client_connect_via_info(&ci);
	/* lws may already have reported CONNECTION_ERROR (then !up). */
	if (!w && t->up)
		closed(t);
	else if (w && t->up)
		t->wsi = w;
}

size_t
transport__headroom(void)
{
	return LWS_PRE;
}

void
transport__want_write(struct bv_conn_transport *t)
{
	if (t->wsi)
		lws_callback_on_writable(t->wsi);
}

int
transport__write(struct bv_conn_transport *t, unsigned char *buf, size_t len)
{
	int n;

	n = lws_write(t->wsi, buf, len, LWS_WRITE_TEXT);
	return n < (int)len ? -1 : 0;
}

size_t
transport__buffered(const struct bv_conn_transport *t)
{
	(void)t;
	return 0;
}

void
transport__close(struct bv_conn_transport *t, int code)
{
	if (!t->wsi || t->close_code)
		return;
	/* The close frame goes out when writable. */
	t->close_code = code;
	lws_callback_on_writable(t->wsi);
}

void
transport__shutdown(struct bv_conn_transport *t)
{
	/* lws closes the connection (CLIENT_CLOSED: closed()) and its
	 * handles; what it reports later is no longer ours. */
	if (t->lws)
		lws_context_destroy(t->lws);
	t->up = 0;
	t->wsi = NULL;
	t->close_code = 0;
	bv_msg_free(&t->rx);
}

void
transport__free(struct bv_conn_transport *t)
{
	if (!t)
		return;
	/* The second call of lws's two-step destroy on a foreign loop. */
	if (t->lws)
		lws_context_destroy(t->lws);
	bv_msg_free(&t->rx);
	bv_free(t->host);
	bv_free(t);
}
