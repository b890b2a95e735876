/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 23-widget-http: the web widget's files at /widget/ (docs/operations.md)
 * from a temporary widget_dir: each type with its MIME type and the
 * frame's security headers, HEAD, ETag and 304, methods other than GET and
 * HEAD refused, and every way out of the directory (raw and encoded
 * "..", NUL, backslashes, hidden names, symbolic links in and out, a
 * directory, a FIFO, a file above the size cap) a 404 that shows nothing
 * and logs nothing but the access line. A relay without widget_dir
 * answers 404. Then the Origin rule of docs/protocol.md on WebSocket
 * upgrades: a browser page of a foreign origin gets 403, the widget's own
 * origins and native clients (no Origin) get their connection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "bvtest.h"

#define ORIGINS "https://chat.kommune.example http://127.0.0.1:8480"
#define EMBED	"http://localhost:8480 https://www.kommune.example"
#define CSP                                                                    \
	"default-src 'self'; script-src 'self' 'wasm-unsafe-eval' "            \
	"https://chat.kommune.example http://127.0.0.1:8480; frame-src "       \
	"'self' "                                                              \
	"https://chat.kommune.example http://127.0.0.1:8480; "                 \
	"connect-src 'self' wss://chat.kommune.example ws://127.0.0.1:8480; "  \
	"img-src 'self' data: blob:; style-src 'self'; frame-ancestors "       \
	"http://localhost:8480 https://www.kommune.example; base-uri 'none'; " \
	"form-action 'none'"
#define CANARY "OUTSIDE-THE-WIDGET-DIR-7c1f"

static struct bvt_env env;    /* the relay with the widget */
static struct bvt_relay bare; /* the same database, no widget_dir */
static char wdir[512], outdir[512];
static char big[40000];

static void
put(const char *dir, const char *name, const void *data, size_t len)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
}

static void
puts_file(const char *dir, const char *name, const char *text)
{
	put(dir, name, text, strlen(text));
}

static int
setup(void **state)
{
	static const unsigned char wasm[] = {0, 'a', 's', 'm', 1, 0, 0, 0};
	static const unsigned char png[] = {0x89, 'P',	'N',  'G',
					    '\r', '\n', 0x1a, '\n'};
	char path[1024], target[1024];
	const char *args[] = {"--widget_dir",
			      wdir,
			      "--widget_origins",
			      ORIGINS,
			      "--widget_embed_origins",
			      EMBED,
			      "--widget_max_file_bytes",
			      "65536",
			      "--log_level",
			      "info",
			      NULL};
	size_t i;

	(void)state;
	snprintf(wdir, sizeof(wdir), "%s/widget", bvt_tmpdir());
	snprintf(outdir, sizeof(outdir), "%s/outside", bvt_tmpdir());
	if (mkdir(wdir, 0755) < 0 || mkdir(outdir, 0755) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/sub", wdir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/empty", wdir);
	mkdir(path, 0755);
	puts_file(wdir, "index.html", "<!doctype html><title>bvchat</title>\n");
	puts_file(wdir, "loader.js", "/* loader */\n");
	puts_file(wdir, "app.js", "export const x = 1;\n");
	puts_file(wdir, "app.mjs", "export const y = 2;\n");
	puts_file(wdir, "style.css", "body { margin: 0 }\n");
	put(wdir, "app.wasm", wasm, sizeof(wasm));
	puts_file(wdir, "icon.svg",
		  "<svg xmlns='http://www.w3.org/2000/svg'/>");
	put(wdir, "icon.png", png, sizeof(png));
	puts_file(wdir, "strings.json", "{\"hei\": \"hallo\"}\n");
	puts_file(wdir, "manifest.webmanifest", "{\"name\": \"bvchat\"}\n");
	puts_file(wdir, "sub/index.html", "<!doctype html><title>sub</title>");
	puts_file(wdir, "sub/page.js", "/* sub page */\n");
	puts_file(wdir, "sub/loader.js", "/* not the loader */\n");
	puts_file(wdir, ".hidden.js", CANARY);
	puts_file(wdir, "notes.txt", CANARY);
	puts_file(wdir, "app.js.bak", CANARY);
	for (i = 0; i < sizeof(big); i++)
		big[i] = (char)('a' + i % 26);
	put(wdir, "big.js", big, sizeof(big));
	{
		static char huge[70000];

		memset(huge, 'h', sizeof(huge));
		put(wdir, "huge.js", huge, sizeof(huge));
	}
	puts_file(outdir, "secret.js", CANARY);
	/* Links: out of the directory, to a directory outside, and one that
	 * stays inside (refused as well: no link is followed). */
	snprintf(target, sizeof(target), "%s/secret.js", outdir);
	snprintf(path, sizeof(path), "%s/link.js", wdir);
	if (symlink(target, path) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/linkdir", wdir);
	if (symlink(outdir, path) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/inner.js", wdir);
	if (symlink("app.js", path) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/fifo.js", wdir);
	if (mkfifo(path, 0644) < 0)
		return -1;
	if (bvt_env_init(&env, args) < 0)
		return -1;
	return bvt_relay_start(&bare, env.db, NULL);
}

static int
teardown(void **state)
{
	(void)state;
	bvt_relay_term(&bare, bvt_ms(30000));
	bvt_env_cleanup(&env);
	return 0;
}

/* GET (or method) of path on the widget relay: status, head, body. */
static int
req(const char *method, const char *path, const char *headers, char **head,
    char **body)
{
	return bvt_http_request_head(env.relay.port, method, path, headers,
				     NULL, 0, bvt_ms(BVT_TIMEOUT), head, body);
}

static void
expect_header(const char *head, const char *name, const char *want)
{
	char buf[2048];
	const char *v = bvt_http_header(head, name, buf, sizeof(buf));

	if (!v || strcmp(v, want) != 0)
		fail_msg("%s: \"%s\", want \"%s\" in\n%s", name,
			 v ? v : "(none)", want, head);
}

/* The headers every widget answer carries. */
static void
expect_frame_headers(const char *head, const char *corp)
{
	expect_header(head, "Content-Security-Policy", CSP);
	expect_header(head, "X-Content-Type-Options", "nosniff");
	expect_header(head, "Referrer-Policy", "no-referrer");
	expect_header(head, "Cross-Origin-Opener-Policy", "same-origin");
	expect_header(head, "Cross-Origin-Resource-Policy", corp);
	/* One policy, not two: browsers would enforce both. */
	assert_null(strstr(strstr(head, "ontent-security-policy") + 1,
			   "ontent-security-policy"));
	assert_null(strstr(head, "x-frame-options"));
}

static void
t_types(void **state)
{
	static const struct {
		const char *path, *file, *mime, *corp;
	} cases[] = {
		{"/widget/", "index.html", "text/html; charset=utf-8",
		 "cross-origin"},
		{"/widget/index.html", "index.html", "text/html; charset=utf-8",
		 "cross-origin"},
		{"/widget/loader.js", "loader.js", "text/javascript",
		 "cross-origin"},
		{"/widget/app.js", "app.js", "text/javascript", "same-origin"},
		{"/widget/app.js?v=3", "app.js", "text/javascript",
		 "same-origin"},
		{"/widget/app.mjs", "app.mjs", "text/javascript",
		 "same-origin"},
		{"/widget/style.css", "style.css", "text/css", "same-origin"},
		{"/widget/app.wasm", "app.wasm", "application/wasm",
		 "same-origin"},
		{"/widget/icon.svg", "icon.svg", "image/svg+xml",
		 "same-origin"},
		{"/widget/icon.png", "icon.png", "image/png", "same-origin"},
		{"/widget/strings.json", "strings.json", "application/json",
		 "same-origin"},
		{"/widget/manifest.webmanifest", "manifest.webmanifest",
		 "application/manifest+json", "same-origin"},
		{"/widget/sub/", "sub/index.html", "text/html; charset=utf-8",
		 "cross-origin"},
		{"/widget/sub/page.js", "sub/page.js", "text/javascript",
		 "same-origin"},
		/* Only the top-level loader.js is fetched by host pages. */
		{"/widget/sub/loader.js", "sub/loader.js", "text/javascript",
		 "same-origin"},
		{"/widget/big.js", "big.js", "text/javascript", "same-origin"},
	};
	char *head, *body, path[1024], len[32];
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *want;

		snprintf(path, sizeof(path), "%s/%s", wdir, cases[i].file);
		want = bvt_file_read(path, &n);
		assert_non_null(want);
		assert_int_equal(req("GET", cases[i].path, NULL, &head, &body),
				 200);
		print_message("%s\n", cases[i].path);
		expect_header(head, "Content-Type", cases[i].mime);
		snprintf(len, sizeof(len), "%zu", n);
		expect_header(head, "Content-Length", len);
		expect_header(head, "Cache-Control", "no-cache");
		expect_frame_headers(head, cases[i].corp);
		assert_non_null(
			bvt_http_header(head, "ETag", len, sizeof(len)));
		assert_memory_equal(body, want, n);
		free(want);
		free(head);
		free(body);
	}
}

/* HEAD: the head of a GET, no body; the connection stays usable. */
static void
t_head(void **state)
{
	static const char two[] =
		"HEAD /widget/app.wasm HTTP/1.1\r\n"
		"Host: 127.0.0.1\r\n\r\n"
		"GET /widget/app.js HTTP/1.1\r\n"
		"Host: 127.0.0.1\r\nConnection: close\r\n\r\n";
	char *head, *body, buf[64];

	(void)state;
	assert_int_equal(bvt_http_raw(env.relay.port, two, strlen(two),
				      bvt_ms(BVT_TIMEOUT), &head, &body),
			 200);
	expect_header(head, "Content-Type", "application/wasm");
	expect_header(head, "Content-Length", "8");
	expect_frame_headers(head, "same-origin");
	/* What came after the head is the second answer, not a body. */
	assert_true(strncmp(body, "HTTP/1.1 200", 12) == 0);
	assert_non_null(strstr(body, "export const x = 1;"));
	free(head);
	free(body);
	assert_int_equal(req("HEAD", "/widget/nothing.js", NULL, &head, &body),
			 404);
	assert_string_equal(body, "");
	free(head);
	free(body);
	(void)buf;
}

/* ETag and If-None-Match: 304 without a body, with the same headers. */
static void
t_etag(void **state)
{
	char *head, *body, etag[128], hdr[256];

	(void)state;
	assert_int_equal(req("GET", "/widget/app.js", NULL, &head, &body), 200);
	assert_non_null(bvt_http_header(head, "ETag", etag, sizeof(etag)));
	free(head);
	free(body);
	snprintf(hdr, sizeof(hdr), "If-None-Match: %s\r\n", etag);
	assert_int_equal(req("GET", "/widget/app.js", hdr, &head, &body), 304);
	assert_string_equal(body, "");
	expect_header(head, "ETag", etag);
	expect_header(head, "Cache-Control", "no-cache");
	expect_frame_headers(head, "same-origin");
	free(head);
	free(body);
	/* Another file's tag does not match. */
	assert_int_equal(req("GET", "/widget/app.mjs", hdr, &head, &body), 200);
	free(head);
	free(body);
}

static void
t_methods(void **state)
{
	static const char *const methods[] = {"POST", "PUT", "DELETE",
					      "OPTIONS", "PATCH"};
	char *head, *body;
	size_t i;
	int st;

	(void)state;
	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		st = bvt_http_request_head(env.relay.port, methods[i],
					   "/widget/app.js", NULL, "x", 1,
					   bvt_ms(BVT_TIMEOUT), &head, &body);
		print_message("%s: %d\n", methods[i], st);
		assert_int_equal(st, 405);
		expect_header(head, "Allow", "GET, HEAD");
		expect_frame_headers(head, "same-origin");
		assert_null(strstr(body, "export"));
		free(head);
		free(body);
	}
}

/* Every answer of the relay so far, searched for the canary. */
static void
expect_no_canary(const char *what, const char *head, const char *body)
{
	if ((head && strstr(head, CANARY)) || (body && strstr(body, CANARY)))
		fail_msg("%s: the answer shows a file it must not", what);
}

static void
t_not_found(void **state)
{
	/* Through the request line as it is: lws, then widget.c. */
	static const char *const raw[] = {
		"/widget/../outside/secret.js",
		"/widget/%2e%2e/outside/secret.js",
		"/widget/%2E%2E%2Foutside%2Fsecret.js",
		"/widget/..%2foutside/secret.js",
		"/widget/sub/../../outside/secret.js",
		"/widget/..\\outside\\secret.js",
		"/widget/sub\\..\\..\\outside\\secret.js",
		"/widget/%5c..%5coutside%5csecret.js",
		"/widget/app.js%00.png",
		"/widget/link.js",
		"/widget/linkdir/secret.js",
		"/widget/inner.js",
		"/widget/.hidden.js",
		"/widget/./.hidden.js",
		"/widget/%2ehidden.js",
		"/widget/notes.txt",
		"/widget/app.js.bak",
		"/widget/fifo.js",
		"/widget/huge.js",
		"/widget/sub",
		"/widget/empty/",
		"/widget/missing.js",
		"/widget//etc/passwd",
		"/widget/app.js/",
		"/widget/a b.js",
		"/widget/a+b.js",
		"/widget",
		"/widgetx/app.js",
		"/widget/%ff.js",
	};
	char line[512], *head, *body, *log0, *log1;
	size_t i, n0, n1;
	int st;

	(void)state;
	log0 = bvt_file_read(env.relay.log, &n0);
	assert_non_null(log0);
	for (i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
		snprintf(line, sizeof(line),
			 "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			 "Connection: close\r\n\r\n",
			 raw[i]);
		st = bvt_http_raw(env.relay.port, line, strlen(line),
				  bvt_ms(BVT_TIMEOUT), &head, &body);
		print_message("%s: %d\n", raw[i], st);
		expect_no_canary(raw[i], head, body);
		/* lws itself refuses a NUL in the path (and closes). */
		if (strstr(raw[i], "%00"))
			assert_true(st == -1 || st == 400 || st == 403 ||
				    st == 404);
		else
			assert_int_equal(st, 404);
		free(head);
		free(body);
	}
	/* Nothing logged but access lines (no lws warning, no errno). */
	bvt_sleep_ms(200);
	log1 = bvt_file_read(env.relay.log, &n1);
	assert_non_null(log1);
	assert_true(n1 >= n0);
	{
		char *l, *save = NULL;

		/* The operator is told of a file above the cap. */
		for (l = strtok_r(log1 + n0, "\n", &save); l;
		     l = strtok_r(NULL, "\n", &save))
			if (!strstr(l, " info widget: GET /widget") &&
			    !strstr(l, " warn widget: a file of 70000 bytes is "
				       "above widget_max_file_bytes"))
				fail_msg("logged: %s", l);
	}
	assert_false(bvt_mem_contains(log1, n1, CANARY, strlen(CANARY)));
	free(log0);
	free(log1);
}

/* Without widget_dir: 404 for everything under /widget. */
static void
t_no_widget(void **state)
{
	char *head, *body;

	(void)state;
	assert_int_equal(
		bvt_http_request_head(bare.port, "GET", "/widget/", NULL, NULL,
				      0, bvt_ms(BVT_TIMEOUT), &head, &body),
		404);
	expect_header(head, "X-Content-Type-Options", "nosniff");
	free(head);
	free(body);
	assert_int_equal(bvt_http_request_head(
				 bare.port, "GET", "/widget/app.js", NULL, NULL,
				 0, bvt_ms(BVT_TIMEOUT), &head, &body),
			 404);
	assert_null(strstr(body, "export"));
	free(head);
	free(body);
}

/* The relay's other answers keep their own strict headers. */
static void
t_api_headers(void **state)
{
	char *head, *body;

	(void)state;
	assert_int_equal(req("GET", "/healthz", NULL, &head, &body), 200);
	expect_header(head, "Content-Security-Policy",
		      "default-src 'none'; frame-ancestors 'none'; base-uri "
		      "'none'; form-action 'none'");
	expect_header(head, "X-Content-Type-Options", "nosniff");
	expect_header(head, "X-Frame-Options", "deny");
	expect_header(head, "Referrer-Policy", "no-referrer");
	expect_header(head, "Cache-Control", "no-store");
	free(head);
	free(body);
}

/* A WebSocket with this Origin header (NULL: none): HTTP status. */
static int
ws_status(int port, const char *origin, int want_challenge)
{
	char hdr[256];
	struct bvt_ws *ws;
	int st = 0;

	if (origin)
		snprintf(hdr, sizeof(hdr), "Origin: %s\r\n", origin);
	ws = bvt_ws_connect_hdr(port, "/v1", "bvchat.v1", origin ? hdr : NULL,
				bvt_ms(BVT_TIMEOUT), &st);
	if (ws && want_challenge) {
		char *buf = NULL;
		size_t len;
		int op;

		assert_int_equal(
			bvt_ws_recv(ws, bvt_ms(BVT_TIMEOUT), &op, &buf, &len),
			BVT_WS_MSG);
		assert_non_null(strstr(buf, "\"challenge\""));
		free(buf);
	}
	bvt_ws_free(ws);
	return st;
}

static void
t_ws_origin(void **state)
{
	struct bvt_conn *c;

	(void)state;
	/* The widget's own origins, as browsers write them. */
	assert_int_equal(
		ws_status(env.relay.port, "https://chat.kommune.example", 1),
		101);
	assert_int_equal(ws_status(env.relay.port, "http://127.0.0.1:8480", 1),
			 101);
	assert_int_equal(
		ws_status(env.relay.port, "HTTPS://Chat.Kommune.Example", 1),
		101);
	/* Anything else: 403 before the upgrade. */
	assert_int_equal(ws_status(env.relay.port, "https://evil.example", 0),
			 403);
	assert_int_equal(ws_status(env.relay.port, "null", 0), 403);
	assert_int_equal(ws_status(env.relay.port, "http://127.0.0.1:8481", 0),
			 403);
	assert_int_equal(ws_status(env.relay.port,
				   "https://chat.kommune.example.evil", 0),
			 403);
	/* An embedding page is not the widget: it does not connect itself. */
	assert_int_equal(
		ws_status(env.relay.port, "https://www.kommune.example", 0),
		403);
	/* An empty Origin is no browser's: it counts as none (lws cannot
	 * tell the two apart). */
	assert_int_equal(ws_status(env.relay.port, "", 1), 101);
	/* What lws clients send when told an origin; libbvchat no longer
	 * does. */
	assert_int_equal(ws_status(env.relay.port, "http://127.0.0.1", 0), 403);
	assert_int_equal(ws_status(env.relay.port, "127.0.0.1", 0), 403);
	/* Native clients send no Origin: unchanged, and they authenticate. */
	assert_int_equal(ws_status(env.relay.port, NULL, 1), 101);
	{
		struct bvt_dev d;

		assert_int_equal(
			bvt_new_account(env.relay.port, &env.tenant, &d), 0);
		c = bvt_online(env.relay.port, &d);
		assert_non_null(c);
		bvt_conn_free(c);
	}
	/* Without widget_origins no browser page may connect at all. */
	assert_int_equal(
		ws_status(bare.port, "https://chat.kommune.example", 0), 403);
	assert_int_equal(ws_status(bare.port, NULL, 1), 101);
}

int
main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_types),
		cmocka_unit_test(t_head),
		cmocka_unit_test(t_etag),
		cmocka_unit_test(t_methods),
		cmocka_unit_test(t_not_found),
		cmocka_unit_test(t_no_widget),
		cmocka_unit_test(t_api_headers),
		cmocka_unit_test(t_ws_origin),
	};
	/* clang-format on */

	return bvt_done(cmocka_run_group_tests(tests, setup, teardown));
}
