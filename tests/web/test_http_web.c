/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_http_web: the browser HTTP transport of the attachments
 * (client-lib/src/http_web.c with web-widget/src/http_web.lib.js) under
 * node, against a real HTTP server in the same process (http_server.js) and
 * node's own fetch(): a PUT's exact body, Content-Length and Bearer header
 * from a spool file in MEMFS, a GET into memory, answers over max_answer
 * refused (by Content-Length and while reading), HTTP errors passed on,
 * abort, timeout, refused connections, and unreadable or wrong-sized spool
 * files failing without a request; never a callback inside http__start().
 * Built by web-widget/CMakeLists.txt (ctest wasm.http); prints TAP.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <emscripten/emscripten.h>
#include <sodium.h>
#include <uv.h>

#include "bv_error.h"
#include "bv_util.h"
#include "http_transport.h"
#include "tap.h"

/* clang-format off */
EM_JS(int, test_port, (void), { return Module['testPort']; });
EM_JS(int, test_hits, (void), { return Module['testHits']; });
/* clang-format on */

#define BODY_LEN 300000

static uv_loop_t loop;
static uv_timer_t next_timer, watchdog;
static int step, in_start, hits_before;
static uint8_t sent[BODY_LEN];
static char url[128];

static void run_step(void);

static void
on_next(uv_timer_t *t)
{
	(void)t;
	run_step();
}

static void
on_answer(void *arg, int rc, long status, uint8_t *body, size_t len)
{
	char hex[65], want[128];
	uint8_t sha[32];
	const char *s = (const char *)body;

	(void)arg;
	CHECK(!in_start);
	switch (step) {
	case 0: /* PUT: exact bytes, length, header */
		CHECK(rc == 0 && status == 201 && body && s[len] == 0);
		crypto_hash_sha256(sha, sent, sizeof(sent));
		sodium_bin2hex(hex, sizeof(hex), sha, sizeof(sha));
		snprintf(want, sizeof(want), "\"sha256\":\"%s\"", hex);
		CHECK(body && strstr(s, want));
		CHECK(body && strstr(s, "\"len\":300000"));
		CHECK(body && strstr(s, "\"cl\":\"300000\""));
		CHECK(body && strstr(s, "\"te\":\"\""));
		CHECK(body && strstr(s, "\"auth\":\"Bearer cap-123\""));
		CHECK(body && strstr(s, "\"ct\":\"application/octet-stream\""));
		break;
	case 1: /* GET into memory, exactly max_answer bytes */
		CHECK(rc == 0 && status == 200 && len == BODY_LEN);
		CHECK(body && !memcmp(body, sent, BODY_LEN) && body[len] == 0);
		break;
	case 2: /* one byte more than allowed, by Content-Length */
	case 3: /* no Content-Length: cut off while reading */
		CHECK(rc == BV_EFRAME && status == 0 && !body && len == 0);
		break;
	case 4: /* an HTTP error is an answer */
		CHECK(rc == 0 && status == 404 && body &&
		      strstr(s, "\"errno\":-43"));
		break;
	case 5: /* aborted */
	case 6: /* timed out */
	case 9: /* refused */
		CHECK(rc == BV_EIO && status == 0 && !body);
		break;
	case 7: /* spool file missing */
	case 8: /* spool file longer than announced */
		CHECK(rc == BV_EIO && status == 0 && !body);
		CHECK(test_hits() == hits_before);
		break;
	default:
		CHECK(0);
	}
	if (body) {
		bv_wipe(body, len);
		bv_free(body);
	}
	step++;
	uv_timer_start(&next_timer, on_next, 0, 0);
}

static void
start(const char *method, const char *path, const char *body_path,
      uint64_t body_len, size_t max_answer, long timeout_s, int abort_now)
{
	struct bv_http_req r;
	struct bv_http *h = NULL;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", test_port(), path);
	memset(&r, 0, sizeof(r));
	r.method = method;
	r.url = url;
	r.bearer = "cap-123";
	r.body_path = body_path;
	r.body_len = body_len;
	r.max_answer = max_answer;
	r.timeout_s = timeout_s;
	hits_before = test_hits();
	in_start = 1;
	CHECK(http__start(&loop, &r, on_answer, NULL, &h) == 0 && h);
	in_start = 0;
	if (abort_now)
		http__abort(h);
}

static void
run_step(void)
{
	switch (step) {
	case 0:
		start("PUT", "/v1/blobs/echo", "/spool.0", BODY_LEN, 4096, 0,
		      0);
		break;
	case 1:
		start("GET", "/v1/blobs/data", NULL, 0, BODY_LEN, 0, 0);
		break;
	case 2:
		start("GET", "/v1/blobs/data", NULL, 0, BODY_LEN - 1, 0, 0);
		break;
	case 3:
		start("GET", "/v1/blobs/chunk", NULL, 0, 5000, 0, 0);
		break;
	case 4:
		start("GET", "/v1/blobs/gone", NULL, 0, 4096, 0, 0);
		break;
	case 5:
		start("GET", "/v1/blobs/hang", NULL, 0, 4096, 0, 1);
		break;
	case 6:
		start("GET", "/v1/blobs/hang", NULL, 0, 4096, 1, 0);
		break;
	case 7:
		start("PUT", "/v1/blobs/echo", "/nope.0", 10, 4096, 0, 0);
		break;
	case 8:
		start("PUT", "/v1/blobs/echo", "/spool.0", BODY_LEN - 1, 4096,
		      0, 0);
		break;
	case 9:
		/* Port 9 (discard) on loopback: nothing listens here. */
		snprintf(url, sizeof(url), "http://127.0.0.1:9/v1/blobs/x");
		{
			struct bv_http_req r;
			struct bv_http *h = NULL;

			memset(&r, 0, sizeof(r));
			r.method = "GET";
			r.url = url;
			r.bearer = "cap-123";
			r.max_answer = 10;
			in_start = 1;
			CHECK(http__start(&loop, &r, on_answer, NULL, &h) == 0);
			in_start = 0;
		}
		break;
	default:
		CHECK(step == 10);
		/* Nothing left to keep node's runtime alive: exit() ends it. */
		uv_timer_stop(&watchdog);
		TAP_DONE();
	}
}

static void
on_watchdog(uv_timer_t *t)
{
	(void)t;
	printf("# stuck at step %d\n", step);
	CHECK(0);
	TAP_DONE();
}

int
main(void)
{
	struct bv_http_req r;
	FILE *f;
	size_t i;

	CHECK(sodium_init() >= 0);
	for (i = 0; i < sizeof(sent); i++)
		sent[i] = (uint8_t)(i * 7 + 3);
	f = fopen("/spool.0", "wb");
	CHECK(f && fwrite(sent, 1, sizeof(sent), f) == sizeof(sent));
	if (f)
		fclose(f);
	uv_loop_init(&loop);
	uv_timer_init(&loop, &next_timer);
	uv_timer_init(&loop, &watchdog);
	uv_timer_start(&watchdog, on_watchdog, 30000, 0);
	/* Bad arguments: refused at once, no callback. */
	memset(&r, 0, sizeof(r));
	r.method = "POST";
	r.url = "http://127.0.0.1:1/";
	r.bearer = "x";
	CHECK(http__start(&loop, &r, on_answer, NULL, NULL) == BV_EINVAL);
	r.method = "PUT";
	CHECK(http__start(&loop, &r, on_answer, NULL, NULL) == BV_EINVAL);
	run_step();
	return 0; /* the timers and the requests keep the runtime alive */
}
