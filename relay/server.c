/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * server.c: the libwebsockets side of the relay: the bvchat.v1 WebSocket
 * protocol (frame reassembly with a hard cap, a bounded output queue per
 * connection, close codes), /healthz, /metrics, the widget's files
 * (widget.c) and the fagsystem API's requests (fagapi.c) over plain HTTP
 * on the same port, and the SIGTERM drain. It does not interpret frames:
 * complete frames go to ops.c. lws runs on the relay's own libuv loop
 * (foreign loop).
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "blob.h"
#include "bv_error.h"
#include "bv_util.h"
#include "fagapi.h"
#include "relay.h"
#include "widget.h"

#define CLOSE_DISPLACED	   4001
#define CLOSE_AUTH_TIMEOUT 4002
#define CLOSE_SLOW	   4003
/* LWS_WRITE_CLOSE of lws 4.1's private-lib-roles-ws.h. */
#define WRITE_CLOSE ((enum lws_write_protocol)4)

struct ws_pss {
	struct conn *c;
};

struct http_pss {
	char *body;
	size_t len;
	struct fagapi_req *fa; /* a /v1/fagsystem/ request (fagapi.c) */
	int close_after;       /* hang up once the answer is written */
	struct widget_tx wtx;  /* a /widget/ file being sent */
	struct blob_http *bh;  /* a /v1/blobs/ transfer (blob.c) */
};

void
conn_ref(struct conn *c)
{
	c->refs++;
}

void
conn_unref(struct conn *c)
{
	if (--c->refs > 0)
		return;
	bv_msg_free(&c->rx);
	bv_free(c->pushes);
	bv_free(c);
}

int
conn_alive(const struct conn *c)
{
	return c->wsi != NULL && c->close_code == 0;
}

static void
out_free_all(struct conn *c)
{
	struct outframe *f, *n;

	for (f = c->out_head; f; f = n) {
		n = f->next;
		bv_free(f);
	}
	c->out_head = c->out_tail = NULL;
	c->out_bytes = 0;
}

void
conn_close(struct conn *c, int code)
{
	if (!c->wsi || c->close_code)
		return;
	c->close_code = code;
	lws_callback_on_writable(c->wsi);
}

static void
conn_queue(struct conn *c, const char *s, size_t len)
{
	struct outframe *f;

	if (!conn_alive(c))
		return;
	if (c->out_bytes + len > c->r->cfg->max_output_bytes) {
		/* A reader this slow is cut off, not buffered (STYLE.md). */
		bv_log(BV_LOG_NOTICE, "conn %s/%u: output buffer full, closing",
		       c->authed ? c->account : "-", c->device_id);
		c->r->m.slow_consumers++;
		out_free_all(c);
		conn_close(c, CLOSE_SLOW);
		return;
	}
	f = bv_malloc(sizeof(*f) + LWS_PRE + len);
	if (!f) {
		conn_close(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION);
		return;
	}
	f->next = NULL;
	f->len = len;
	memcpy(f->buf + LWS_PRE, s, len);
	if (c->out_tail)
		c->out_tail->next = f;
	else
		c->out_head = f;
	c->out_tail = f;
	c->out_bytes += len;
	lws_callback_on_writable(c->wsi);
}

void
conn_send_str(struct conn *c, char *s)
{
	if (s)
		conn_queue(c, s, strlen(s));
	else
		conn_close(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION);
	bv_free(s);
}

void
conn_send_json(struct conn *c, json_t *j)
{
	char *s = NULL;
	size_t n;

	if (j)
		n = json_dumpb(j, NULL, 0, JSON_COMPACT);
	else
		n = 0;
	if (n) {
		s = bv_malloc(n + 1);
		if (s) {
			json_dumpb(j, s, n, JSON_COMPACT);
			s[n] = '\0';
		}
	}
	json_decref(j);
	conn_send_str(c, s);
}

static int
conn_write_one(struct conn *c)
{
	struct outframe *f = c->out_head;
	int n;

	if (!f)
		return 0;
	n = lws_write(c->wsi, f->buf + LWS_PRE, f->len, LWS_WRITE_TEXT);
	if (n < (int)f->len)
		return -1;
	c->out_head = f->next;
	if (!c->out_head)
		c->out_tail = NULL;
	c->out_bytes -= f->len;
	bv_free(f);
	if (c->out_head)
		lws_callback_on_writable(c->wsi);
	return 0;
}

static void
auth_timer_closed(uv_handle_t *h)
{
	struct conn *c = h->data;

	bv_free(h);
	conn_unref(c);
}

static void
auth_timer_stop(struct conn *c)
{
	if (!c->auth_timer)
		return;
	uv_timer_stop(c->auth_timer);
	uv_close((uv_handle_t *)c->auth_timer, auth_timer_closed);
	c->auth_timer = NULL;
}

static void
auth_timeout(uv_timer_t *t)
{
	struct conn *c = t->data;

	if (!c->authed && conn_alive(c)) {
		bv_log(BV_LOG_INFO, "connection not authenticated in time");
		conn_close(c, CLOSE_AUTH_TIMEOUT);
	}
}

static struct conn *
conn_new(struct relay *r, struct lws *wsi)
{
	struct conn *c = bv_calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->r = r;
	c->wsi = wsi;
	c->refs = 1;
	if (deliver_init(c) < 0)
		goto fail;
	c->auth_timer = bv_malloc(sizeof(*c->auth_timer));
	if (!c->auth_timer)
		goto fail;
	uv_timer_init(r->loop, c->auth_timer);
	c->auth_timer->data = c;
	conn_ref(c); /* held by the timer until it is closed */
	uv_timer_start(c->auth_timer, auth_timeout, r->cfg->auth_timeout_ms, 0);
	c->next = r->conns;
	if (r->conns)
		r->conns->prev = c;
	r->conns = c;
	r->n_conns++;
	r->m.connections_total++;
	return c;
fail:
	bv_free(c->pushes);
	bv_free(c);
	return NULL;
}

static void
conn_gone(struct conn *c)
{
	struct relay *r = c->r;

	auth_timer_stop(c);
	ops_on_close(c);
	deliver_cleanup(c);
	out_free_all(c);
	c->wsi = NULL;
	if (c->prev)
		c->prev->next = c->next;
	else
		r->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	r->n_conns--;
	conn_unref(c);
}

static int
ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
	    void *in, size_t len)
{
	struct relay *r = lws_context_user(lws_get_context(wsi));
	struct ws_pss *pss = user;
	struct conn *c = pss ? pss->c : NULL;
	char uri[64];

	switch (reason) {
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		if (r->draining)
			return 1;
		if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <
			    0 ||
		    strcmp(uri, BV_WS_PATH) != 0)
			return 1;
		return 0;

	case LWS_CALLBACK_ESTABLISHED:
		pss->c = conn_new(r, wsi);
		if (!pss->c)
			return -1;
		ops_on_connect(pss->c);
		return 0;

	case LWS_CALLBACK_RECEIVE:
		if (!c || !conn_alive(c))
			return 0;
		if (lws_is_first_fragment(wsi)) {
			bv_msg_begin(&c->rx, 0);
			c->rx_binary = lws_frame_is_binary(wsi);
		}
		/* A frame over the cap is dropped here and answered with
		 * BV_EFRAME once its last fragment has arrived. */
		if (bv_msg_append(&c->rx, in, len,
				  r->cfg->limits.max_frame_bytes) < 0)
			return -1;
		if (!lws_is_final_fragment(wsi) ||
		    lws_remaining_packet_payload(wsi))
			return 0;
		r->m.frames_in++;
		if (c->rx.overflow)
			ops_frame_error(c, BV_EFRAME);
		else if (c->rx_binary)
			ops_frame_error(c, BV_EJSON);
		else
			ops_frame(c, c->rx.buf, c->rx.len);
		bv_msg_end(&c->rx);
		return 0;

	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (!c)
			return -1;
		if (c->close_code && !c->out_head) {
			unsigned char cf[LWS_PRE + 2];

			/*
			 * On its libuv loop lws 4.1 hangs up without the close
			 * frame that lws_close_reason() prepares (the peer sees
			 * 1006), so the frame (RFC 6455 5.5.1) is written here
			 * with lws's own opcode for it, which lws-write.h keeps
			 * private.
			 */
			cf[LWS_PRE] = (unsigned char)(c->close_code >> 8);
			cf[LWS_PRE + 1] = (unsigned char)(c->close_code & 0xff);
			lws_write(wsi, cf + LWS_PRE, 2, WRITE_CLOSE);
			return -1;
		}
		if (conn_write_one(c) < 0)
			return -1;
		if (c->close_code && !c->out_head)
			lws_callback_on_writable(wsi);
		return 0;

	case LWS_CALLBACK_CLOSED:
	case LWS_CALLBACK_WSI_DESTROY:
		if (c) {
			pss->c = NULL;
			conn_gone(c);
		}
		return 0;

	default:
		return 0;
	}
}

/*
 * The security headers of every answer that is not the widget's: what
 * lws's LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE added
 * to every status line, made stricter (nothing here is a document to
 * render). Set per answer rather than by that vhost-wide option, because
 * the widget's files (widget.c) need a policy of their own and browsers
 * enforce every Content-Security-Policy header they get.
 */
static const struct {
	const char *name, *value;
} api_headers[] = {
	{"content-security-policy:",
	 "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
	 "form-action 'none'"},
	{"x-content-type-options:", "nosniff"},
	{"x-frame-options:", "deny"},
	{"referrer-policy:", "no-referrer"},
	{"cache-control:", "no-store"},
};

int
server_http_head(struct lws *wsi, unsigned status, const char *ctype,
		 uint64_t len)
{
	unsigned char hdr[LWS_PRE + 1024], *start = hdr + LWS_PRE, *p = start,
					   *end = hdr + sizeof(hdr) - 1;
	size_t i;

	if (lws_add_http_common_headers(wsi, status, ctype, (lws_filepos_t)len,
					&p, end))
		return -1;
	for (i = 0; i < sizeof(api_headers) / sizeof(api_headers[0]); i++)
		if (lws_add_http_header_by_name(
			    wsi, (const unsigned char *)api_headers[i].name,
			    (const unsigned char *)api_headers[i].value,
			    (int)strlen(api_headers[i].value), &p, end))
			return -1;
	return lws_finalize_write_http_header(wsi, start, &p, end) ? -1 : 0;
}

static int
http_reply(struct lws *wsi, struct http_pss *pss, unsigned status,
	   const char *ctype, char *body)
{
	if (!body)
		return -1;
	pss->body = body;
	pss->len = strlen(body);
	if (server_http_head(wsi, status, ctype, pss->len) < 0)
		return -1;
	lws_callback_on_writable(wsi);
	return 0;
}

/*
 * An upgrade is about to happen (LWS_CALLBACK_HTTP_CONFIRM_UPGRADE). A
 * browser names the page's origin in Origin. Browsers may open a WebSocket
 * to us only from the origins the widget is served under (widget_origins),
 * so no other site's page can speak for a device whose keys live in the
 * widget's frame (docs/protocol.md); native clients send no Origin. The
 * refusal is an HTTP 403, written here in one piece; returns 1 then (lws
 * completes the transaction), 0 to let the upgrade go on.
 */
static int
confirm_upgrade(struct relay *r, struct lws *wsi, const char *what)
{
	static const char body[] = "origin not allowed\n";
	unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start,
					   *end = buf + sizeof(buf) - 1;
	char origin[256];
	size_t i;
	int n;

	n = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);
	if (n <= 0 || strcasecmp(what, "websocket"))
		return 0;
	if (n < (int)sizeof(origin) &&
	    lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) == n &&
	    widget_origin_allowed(r->cfg->widget_origins, origin))
		return 0;
	bv_log(BV_LOG_INFO, "refused a WebSocket from a browser page of "
			    "another origin (403)");
	if (lws_add_http_common_headers(wsi, 403, "text/plain",
					sizeof(body) - 1, &p, end))
		return -1;
	for (i = 0; i < sizeof(api_headers) / sizeof(api_headers[0]); i++)
		if (lws_add_http_header_by_name(
			    wsi, (const unsigned char *)api_headers[i].name,
			    (const unsigned char *)api_headers[i].value,
			    (int)strlen(api_headers[i].value), &p, end))
			return -1;
	if (lws_finalize_http_header(wsi, &p, end) ||
	    (size_t)(end - p) < sizeof(body) - 1)
		return -1;
	memcpy(p, body, sizeof(body) - 1);
	p += sizeof(body) - 1;
	/* lws has not read the request's version yet: the status line
	 * says HTTP/1.0, which browsers take as well. */
	if (lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP) !=
	    (int)(p - start))
		return -1;
	return 1;
}

static int
http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
	      void *in, size_t len)
{
	struct relay *r = lws_context_user(lws_get_context(wsi));
	struct http_pss *pss = user;
	unsigned char *buf;
	int n;

	switch (reason) {
	case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
		/* Draining: accept nothing new. */
		return r->draining ? 1 : 0;

	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		/* A WebSocket upgrade that did not ask for bvchat.v1. */
		return 1;

	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		return confirm_upgrade(r, wsi, (const char *)in);

	case LWS_CALLBACK_HTTP:
		if (widget_match((const char *)in))
			return widget_http(r->widget, wsi, (const char *)in,
					   &pss->wtx);
		if (blob_match((const char *)in))
			return blob_begin(r, wsi, (const char *)in, &pss->bh);
		if (fagapi_match((const char *)in)) {
			/* Answered later, from the database's callbacks. */
			if (fagapi_begin(r, wsi, (const char *)in, &pss->fa) <
			    0)
				return -1;
			return 0;
		}
		if (!strcmp((const char *)in, "/healthz")) {
			int up = db_is_up(r->dbw) && db_is_up(r->dbr);

			if (r->draining)
				return http_reply(wsi, pss, 503, "text/plain",
						  bv_strdup("draining\n"));
			return http_reply(
				wsi, pss, up ? 200 : 503, "text/plain",
				bv_strdup(up ? "ok\n" : "unavailable\n"));
		}
		if (!strcmp((const char *)in, "/metrics"))
			return http_reply(wsi, pss, 200,
					  "text/plain; version=0.0.4",
					  metrics_render(r));
		return http_reply(wsi, pss, 404, "text/plain",
				  bv_strdup("not found\n"));

	case LWS_CALLBACK_HTTP_BODY:
		if (pss->bh)
			return blob_body(pss->bh, in, len);
		if (pss->fa)
			return fagapi_body(pss->fa, in, len);
		return 0;

	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		if (pss->bh)
			return blob_body_done(pss->bh);
		if (pss->fa) {
			fagapi_body_done(pss->fa);
			return 0;
		}
		return lws_callback_http_dummy(wsi, reason, user, in, len);

	case LWS_CALLBACK_HTTP_WRITEABLE:
		if (pss->wtx.active)
			return widget_write(wsi, &pss->wtx);
		if (pss->bh)
			return blob_write(&pss->bh);
		if (!pss->body && pss->fa) {
			unsigned status;
			char *body;

			if (!fagapi_reply_take(pss->fa, &status, &body,
					       &pss->close_after))
				return 0; /* not yet */
			fagapi_detach(pss->fa);
			pss->fa = NULL;
			return http_reply(wsi, pss, status, "application/json",
					  body);
		}
		if (!pss->body)
			return -1;
		buf = bv_malloc(LWS_PRE + pss->len);
		if (!buf)
			return -1;
		memcpy(buf + LWS_PRE, pss->body, pss->len);
		n = lws_write(wsi, buf + LWS_PRE, pss->len,
			      LWS_WRITE_HTTP_FINAL);
		/* An answer may carry an invite code or a ticket. */
		bv_wipe(buf + LWS_PRE, pss->len);
		bv_free(buf);
		bv_wipe(pss->body, pss->len);
		bv_free(pss->body);
		pss->body = NULL;
		if (n < (int)pss->len || pss->close_after)
			return -1;
		if (lws_http_transaction_completed(wsi))
			return -1;
		return 0;

	case LWS_CALLBACK_CLOSED_HTTP:
		/* lws also closes connections whose request it refused
		 * before any pss was made (a NUL in the path). */
		if (!pss)
			return 0;
		widget_tx_close(&pss->wtx);
		if (pss->body)
			bv_wipe(pss->body, pss->len);
		bv_free(pss->body);
		pss->body = NULL;
		fagapi_detach(pss->fa);
		pss->fa = NULL;
		blob_detach(pss->bh);
		pss->bh = NULL;
		return 0;

	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

static struct lws_protocols protocols[] = {
	{"http", http_callback, sizeof(struct http_pss), 0, 0, NULL, 0},
	{BV_SUBPROTOCOL, ws_callback, sizeof(struct ws_pss), 65536, 0, NULL, 0},
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
server_start(struct relay *r)
{
	struct lws_context_creation_info info;
	void *loops[1] = {r->loop};
	int rc;

	lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);
	memset(&info, 0, sizeof(info));
	info.port = (int)r->cfg->port;
	info.iface = r->cfg->listen;
	info.protocols = protocols;
	/* No LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE:
	 * each answer sets its own (api_headers, widget.c). */
	info.options =
		LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8;
	info.foreign_loops = loops;
	info.user = r;
	info.timeout_secs = 30;
	info.ka_time = 60;
	info.ka_probes = 3;
	info.ka_interval = 10;
	rc = widget_new(r->cfg, &r->widget);
	if (rc < 0)
		return rc;
	r->lws = lws_create_context(&info);
	if (!r->lws) {
		bv_log(BV_LOG_ERR, "cannot listen on %s:%u", r->cfg->listen,
		       r->cfg->port);
		return BV_EIO;
	}
	bv_log(BV_LOG_NOTICE, "listening on %s:%u, ws path %s protocol %s",
	       r->cfg->listen, r->cfg->port, BV_WS_PATH, BV_SUBPROTOCOL);
	return 0;
}

static void
drain_tick(uv_timer_t *t)
{
	struct relay *r = t->data;
	uint64_t now = bv_mono_ms();
	struct conn *c;

	if (r->stopped)
		return;
	/* Phase 1: let commits in flight finish and be answered. */
	if (db_pending(r->dbw) && now < r->drain_deadline)
		return;
	/* Phase 2: close every connection (1001) and wait for it to go. */
	for (c = r->conns; c; c = c->next)
		conn_close(c, LWS_CLOSE_STATUS_GOINGAWAY);
	if (r->n_conns && now < r->drain_deadline + 2000)
		return;
	r->stopped = 1;
	uv_timer_stop(t);
	uv_stop(r->loop);
}

void
server_drain(struct relay *r)
{
	if (r->draining)
		return;
	r->draining = 1;
	bv_log(BV_LOG_NOTICE, "stopping: %u connections, %zu commits in flight",
	       r->n_conns, db_pending(r->dbw));
	r->drain_deadline = bv_mono_ms() + r->cfg->shutdown_timeout_ms;
	r->drain_timer = bv_malloc(sizeof(*r->drain_timer));
	if (!r->drain_timer) {
		uv_stop(r->loop);
		return;
	}
	uv_timer_init(r->loop, r->drain_timer);
	r->drain_timer->data = r;
	uv_timer_start(r->drain_timer, drain_tick, 0, 20);
}

static void
handle_free(uv_handle_t *h)
{
	bv_free(h);
}

void
server_destroy(struct relay *r)
{
	if (r->drain_timer) {
		uv_close((uv_handle_t *)r->drain_timer, handle_free);
		r->drain_timer = NULL;
	}
	if (r->lws)
		lws_context_destroy(r->lws);
}

void
server_finish(struct relay *r)
{
	/*
	 * On a foreign loop lws can only finish freeing its context once its
	 * handles have closed, so main() runs the loop and calls us again.
	 */
	if (r->lws) {
		lws_context_destroy(r->lws);
		r->lws = NULL;
	}
	widget_free(r->widget);
	r->widget = NULL;
}
