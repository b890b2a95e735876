/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_conn_web: the browser transport (client-lib/src/conn_web.c) with
 * its JS half (web-widget/src/conn_web.lib.js) under node, against a mock
 * Module.bvwTransport (mock_transport.js) and a stub conn.c that records
 * the conn__t_*() calls: URLs, frames out as text in order, UTF-8 in,
 * binary and oversized messages dropped, buffered(), close codes, stale
 * handles ignored, open and send failures, the connect deadline, shutdown.
 * Built by web-widget/CMakeLists.txt (ctest wasm.conn); prints TAP, exits 0
 * when every check held.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <emscripten/emscripten.h>

#include "bv_util.h"
#include "conn_transport.h"
#include "tap.h"

/* ---- JS: the mock's log and the reports ---- */

/* clang-format off */
EM_JS(int, log_is, (const char *want), {
	var got = Module['mockLog'].join('|');
	Module['mockLog'] = [];
	if (got === UTF8ToString(want))
		return 1;
	out('# mock log: ' + got);
	return 0;
});
EM_JS(void, report_opened, (int h), { Module['bvwReport']['opened'](h); });
EM_JS(void, report_text, (int h, const char *s), {
	Module['bvwReport']['message'](h, UTF8ToString(s));
});
EM_JS(void, report_binary, (int h), {
	Module['bvwReport']['message'](h, new ArrayBuffer(8));
});
EM_JS(void, report_closed, (int h, int code), {
	Module['bvwReport']['closed'](h, code);
});
EM_JS(void, mock_fail, (int open, int send), {
	Module['mockFail'] = {'open': !!open, 'send': !!send};
});
EM_JS(void, mock_buffered, (int n), { Module['mockBuffered'] = n; });
EM_JS(void, mock_no_buffered, (void), {
	delete Module['bvwTransport']['buffered'];
});
/* clang-format on */

/* ---- bv_util, as much as conn_web.c uses ---- */

void *
bv_malloc(size_t n)
{
	return malloc(n);
}

void *
bv_calloc(size_t nmemb, size_t size)
{
	return calloc(nmemb, size);
}

void *
bv_realloc(void *p, size_t n)
{
	return realloc(p, n);
}

char *
bv_strdup(const char *s)
{
	return strdup(s);
}

void
bv_free(void *p)
{
	free(p);
}

void
bv_log(int level, const char *fmt, ...)
{
	va_list ap;

	(void)level;
	printf("# log: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

/* ---- conn.c, recorded ---- */

struct bv_conn {
	struct bv_conn_transport *t;
	size_t max_frame;
	unsigned opened, dropped, frames, closed;
	int last_close;
	char last_frame[256];
	size_t last_len;
	const char *queue[4]; /* frames to write, in order */
	unsigned nq, head;
};

void
conn__t_opened(struct bv_conn *c)
{
	c->opened++;
}

void
conn__t_frame(struct bv_conn *c, const char *buf, size_t len)
{
	c->frames++;
	c->last_len = len;
	if (len < sizeof(c->last_frame)) {
		memcpy(c->last_frame, buf, len);
		c->last_frame[len] = '\0';
	}
}

void
conn__t_dropped(struct bv_conn *c)
{
	c->dropped++;
}

/* As conn.c's write_one(): one frame, and ask again while more remain. */
int
conn__t_writable(struct bv_conn *c)
{
	const char *f;

	if (c->head == c->nq)
		return 0;
	f = c->queue[c->head];
	if (transport__write(c->t, (unsigned char *)f, strlen(f)) < 0)
		return -1;
	c->head++;
	if (c->head < c->nq)
		transport__want_write(c->t);
	return 0;
}

void
conn__t_closed(struct bv_conn *c, int code)
{
	c->closed++;
	c->last_close = code;
}

size_t
conn__t_max_frame(const struct bv_conn *c)
{
	return c->max_frame;
}

static struct bv_conn conn;
static uv_loop_t loop;
static uv_timer_t check;

static void
on_check(uv_timer_t *t)
{
	(void)t;
	/* Handle 7 never opened: the deadline (1 s) closed it. */
	CHECK(conn.closed == 1 && conn.last_close == -1);
	CHECK(log_is("close 7 1000"));
	report_opened(7); /* late: stale */
	CHECK(conn.opened == 0);

	transport__shutdown(conn.t);
	transport__free(conn.t);
	uv_close((uv_handle_t *)&check, NULL);
	CHECK(uv_loop_close(&loop) == 0);
	TAP_DONE();
}

int
main(void)
{
	struct bv_conn_cfg cfg;
	char big[64];

	uv_loop_init(&loop);
	memset(&cfg, 0, sizeof(cfg));
	cfg.connect_timeout_s = 1;
	memset(&conn, 0, sizeof(conn));
	conn.max_frame = 32;
	CHECK(transport__new(&conn, &loop, &cfg, &conn.t) == 0);
	CHECK(transport__headroom() == 0);

	/* Handle 1: the URL, nothing written before open. */
	transport__open(conn.t, "127.0.0.1", 8080);
	CHECK(log_is("open 1 ws://127.0.0.1:8080/v1"));
	conn.queue[0] = "{\"id\":1,\"op\":\"auth\"}";
	conn.queue[1] = "{\"id\":2,\"op\":\"ping\",\"x\":\"\xc3\xb8\"}";
	conn.nq = 2;
	transport__want_write(conn.t);
	CHECK(log_is(""));
	report_text(1, "{}"); /* not open yet: ignored */
	CHECK(conn.frames == 0);

	/* Open: reported, and the queue goes out as text, in order. */
	report_opened(1);
	CHECK(conn.opened == 1);
	CHECK(log_is("send 1 {\"id\":1,\"op\":\"auth\"}|"
		     "send 1 {\"id\":2,\"op\":\"ping\",\"x\":\"\xc3\xb8\"}"));
	conn.queue[2] = "{\"id\":3}";
	conn.nq = 3;
	transport__want_write(conn.t);
	CHECK(log_is("send 1 {\"id\":3}"));

	/* In: UTF-8 bytes as sent; binary and oversized dropped. */
	report_text(1, "{\"op\":\"\xc3\xa6\xc3\xb8\"}");
	CHECK(conn.frames == 1 && conn.last_len == 13 &&
	      !strcmp(conn.last_frame, "{\"op\":\"\xc3\xa6\xc3\xb8\"}"));
	report_binary(1);
	CHECK(conn.dropped == 1 && conn.frames == 1);
	memset(big, 'x', 33);
	big[33] = '\0';
	report_text(1, big);
	CHECK(conn.dropped == 2 && conn.frames == 1);
	big[32] = '\0'; /* exactly max_frame: taken */
	report_text(1, big);
	CHECK(conn.frames == 2 && conn.last_len == 32);

	/* buffered(), and its absence. */
	mock_buffered(1234);
	CHECK(transport__buffered(conn.t) == 1234);
	mock_buffered(-5);
	CHECK(transport__buffered(conn.t) == 0);

	/* The peer closes: its code; the handle is stale afterwards. */
	report_closed(1, 4001);
	CHECK(conn.closed == 1 && conn.last_close == 4001);
	report_text(1, "{}");
	report_closed(1, 1000);
	CHECK(conn.frames == 2 && conn.closed == 1);

	/* Handle 2: IPv6; we close with a code the browser refuses (1011 is
	 * sent as 1000); what the close event says is -1, as lws. */
	transport__open(conn.t, "::1", 443);
	CHECK(log_is("open 2 ws://[::1]:443/v1"));
	report_opened(2);
	CHECK(conn.opened == 2);
	transport__close(conn.t, 1011);
	transport__close(conn.t, 4000); /* once only */
	CHECK(log_is("close 2 1000"));
	report_text(2, "{}"); /* closing: not read */
	CHECK(conn.frames == 2);
	report_closed(2, 1000);
	CHECK(conn.closed == 2 && conn.last_close == -1);

	/* Handle 3: 1006 (no close frame) is -1; a 3000-4999 close code is
	 * passed on. */
	transport__open(conn.t, "relay.example", 443);
	report_opened(3);
	transport__close(conn.t, 4000);
	CHECK(log_is("open 3 ws://relay.example:443/v1|close 3 4000"));
	report_closed(3, 1006);
	CHECK(conn.closed == 3 && conn.last_close == -1);
	transport__open(conn.t, "relay.example", 443);
	report_closed(4, 1006); /* refused before open */
	CHECK(conn.closed == 4 && conn.last_close == -1 && conn.opened == 3);
	CHECK(log_is("open 4 ws://relay.example:443/v1"));

	/* open() throws: closed at once (handle 5 is used up). */
	mock_fail(1, 0);
	transport__open(conn.t, "relay.example", 443);
	CHECK(conn.closed == 5 && conn.last_close == -1);
	CHECK(log_is(""));

	/* send() throws: the transport gives the connection up. */
	mock_fail(0, 0);
	transport__open(conn.t, "relay.example", 443);
	report_opened(6);
	mock_fail(0, 1);
	conn.queue[3] = "{\"id\":4}";
	conn.nq = 4;
	transport__want_write(conn.t);
	CHECK(log_is("open 6 ws://relay.example:443/v1|close 6 1000"));
	mock_fail(0, 0);
	transport__want_write(conn.t); /* closing: nothing */
	CHECK(log_is(""));
	report_closed(6, 1006);
	CHECK(conn.closed == 6 && conn.last_close == -1);

	/* Without buffered(): sent counts as written. */
	mock_no_buffered();
	CHECK(transport__buffered(conn.t) == 0);

	/* Handle 7 never opens: the deadline ends it (checked later). */
	conn.closed = 0;
	conn.opened = 0;
	transport__open(conn.t, "relay.example", 443);
	CHECK(log_is("open 7 ws://relay.example:443/v1"));
	uv_timer_init(&loop, &check);
	uv_timer_start(&check, on_check, 1500, 0);
	return 0;
}
