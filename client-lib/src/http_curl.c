/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * http_curl.c (native build): the HTTP transport of the attachments
 * (http_transport.h) on libcurl's easy interface. Each request is one
 * blocking curl_easy_perform() on libuv's thread pool (uv_queue_work), so
 * the loop never waits for the network; the answer is handed back on the
 * loop in the work's after-callback. http__abort() sets a flag the
 * progress callback reads, so a client closing stops a 25 MiB upload
 * within a moment. Nothing is logged: URLs carry blob ids, headers
 * capabilities.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>
#include <uv.h>

#include "bv_error.h"
#include "bv_util.h"
#include "http_transport.h"

struct bv_http {
	uv_work_t work;
	bv_http_cb cb;
	void *arg;
	char method[8];
	char *url;
	char *auth; /* "Authorization: Bearer <cap>", wiped */
	char *body_path;
	uint64_t body_len;
	size_t max_answer;
	long timeout_s;
	atomic_int abort;
	/* Results, written by the work, read in after_work. */
	int rc;
	long status;
	uint8_t *ans;
	size_t ans_len, ans_cap;
	int too_long;
};

static uv_once_t curl_once = UV_ONCE_INIT;
static int curl_ok;

static void
curl_init_once(void)
{
	curl_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

static size_t
on_write(char *p, size_t size, size_t n, void *ud)
{
	struct bv_http *h = ud;
	size_t len = size * n, cap;
	uint8_t *b;

	if (len > h->max_answer - h->ans_len) {
		h->too_long = 1;
		return 0; /* curl stops with CURLE_WRITE_ERROR */
	}
	if (h->ans_len + len + 1 > h->ans_cap) {
		cap = h->ans_cap ? h->ans_cap : 4096;
		while (cap < h->ans_len + len + 1)
			cap *= 2;
		if (cap > h->max_answer + 1)
			cap = h->max_answer + 1;
		b = bv_malloc(cap);
		if (!b)
			return 0;
		if (h->ans) {
			memcpy(b, h->ans, h->ans_len);
			bv_wipe(h->ans, h->ans_len);
			bv_free(h->ans);
		}
		h->ans = b;
		h->ans_cap = cap;
	}
	memcpy(h->ans + h->ans_len, p, len);
	h->ans_len += len;
	return len;
}

static int
on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut,
	    curl_off_t un)
{
	struct bv_http *h = ud;

	(void)dt;
	(void)dn;
	(void)ut;
	(void)un;
	return atomic_load(&h->abort) ? 1 : 0;
}

static void
run(uv_work_t *w)
{
	struct bv_http *h = w->data;
	struct curl_slist *hdr = NULL, *t;
	FILE *f = NULL;
	CURL *e = NULL;
	CURLcode cc;

	h->rc = BV_EIO;
	if (!curl_ok)
		return;
	e = curl_easy_init();
	if (!e)
		return;
	t = curl_slist_append(hdr, h->auth);
	if (t)
		hdr = t;
	/* No "Expect: 100-continue": the relay answers a PUT as a whole. */
	t = t ? curl_slist_append(hdr, "Expect:") : NULL;
	if (!t)
		goto out;
	hdr = t;
	curl_easy_setopt(e, CURLOPT_URL, h->url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, h->timeout_s);
	/* A transfer stuck below 1 KiB/s for 30 s is given up. */
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1024L);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 30L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, h);
	curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(e, CURLOPT_XFERINFODATA, h);
	if (!strcmp(h->method, "PUT")) {
		f = fopen(h->body_path, "rb");
		if (!f)
			goto out;
		curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(e, CURLOPT_READDATA, f);
		curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE,
				 (curl_off_t)h->body_len);
	}
	cc = curl_easy_perform(e);
	if (cc == CURLE_OK) {
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &h->status);
		h->rc = 0;
	} else if (h->too_long) {
		h->rc = BV_EFRAME;
	}
out:
	if (f)
		fclose(f);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(e);
}

static void
http_free(struct bv_http *h)
{
	if (h->ans) {
		bv_wipe(h->ans, h->ans_len);
		bv_free(h->ans);
	}
	if (h->auth) {
		bv_wipe(h->auth, strlen(h->auth));
		bv_free(h->auth);
	}
	bv_free(h->url);
	bv_free(h->body_path);
	bv_free(h);
}

static void
after(uv_work_t *w, int status)
{
	struct bv_http *h = w->data;
	uint8_t *body = NULL;
	size_t len = 0;
	int rc = status < 0 ? BV_EIO : h->rc;

	if (rc == 0) {
		body = h->ans ? h->ans : bv_malloc(1);
		if (!body) {
			rc = BV_ENOMEM;
		} else {
			len = h->ans_len;
			body[len] = 0;
			h->ans = NULL;
		}
	}
	h->cb(h->arg, rc, rc == 0 ? h->status : 0, body, len);
	http_free(h);
}

int
http__start(uv_loop_t *loop, const struct bv_http_req *r, bv_http_cb cb,
	    void *arg, struct bv_http **out)
{
	struct bv_http *h;
	size_t n;
	int rc;

	if (!loop || !r || !r->method || !r->url || !r->bearer || !cb ||
	    (strcmp(r->method, "PUT") && strcmp(r->method, "GET")) ||
	    (!strcmp(r->method, "PUT") && !r->body_path))
		return BV_EINVAL;
	uv_once(&curl_once, curl_init_once);
	h = bv_calloc(1, sizeof(*h));
	if (!h)
		return BV_ENOMEM;
	snprintf(h->method, sizeof(h->method), "%s", r->method);
	n = strlen("Authorization: Bearer ") + strlen(r->bearer) + 1;
	h->url = bv_strdup(r->url);
	h->auth = bv_malloc(n);
	h->body_path = r->body_path ? bv_strdup(r->body_path) : NULL;
	if (!h->url || !h->auth || (r->body_path && !h->body_path)) {
		http_free(h);
		return BV_ENOMEM;
	}
	snprintf(h->auth, n, "Authorization: Bearer %s", r->bearer);
	h->body_len = r->body_len;
	h->max_answer = r->max_answer ? r->max_answer : 65536;
	h->timeout_s = r->timeout_s > 0 ? r->timeout_s : 600;
	h->cb = cb;
	h->arg = arg;
	atomic_init(&h->abort, 0);
	h->work.data = h;
	rc = uv_queue_work(loop, &h->work, run, after);
	if (rc < 0) {
		http_free(h);
		return BV_EIO;
	}
	if (out)
		*out = h;
	return 0;
}

void
http__abort(struct bv_http *h)
{
	if (h)
		atomic_store(&h->abort, 1);
}
