/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * widget.c: the web widget's static files at /widget/ and their headers.
 * Served here rather than by an lws mount: a mount cannot refuse symlinks,
 * has no type for .wasm without extra tables, would need LWS_CALLBACK_
 * ADD_HEADERS for every header and still answer POST and list nothing we
 * choose; here one short path check, openat() per segment with O_NOFOLLOW
 * and a type whitelist decide everything. Files are read in 16 KiB pieces
 * as the connection drains, never whole; it does not cache, compress or
 * answer ranges.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "bv_error.h"
#include "bv_util.h"
#include "widget.h"

#define PIECE	   16384
#define HEAD_BYTES 4096
#define MAX_SEGS   16

struct widget {
	int dirfd;
	char *csp;
	uint64_t max_file;
};

/* The only types served: anything else is 404. */
static const struct widget_type types[] = {
	{".html", "text/html; charset=utf-8", 1},
	{".js", "text/javascript", 0},
	{".mjs", "text/javascript", 0},
	{".css", "text/css", 0},
	{".wasm", "application/wasm", 0},
	{".svg", "image/svg+xml", 0},
	{".png", "image/png", 0},
	{".json", "application/json", 0},
	{".webmanifest", "application/manifest+json", 0},
};

/* The loader runs in the host page, which fetches it cross-origin. */
#define LOADER "loader.js"

/* One buffer for heads and pieces: everything runs on one thread. */
static unsigned char wbuf[LWS_PRE + (PIECE > HEAD_BYTES ? PIECE : HEAD_BYTES)];

static const struct widget_type *
type_of(const char *name)
{
	size_t i, n = strlen(name), e;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		e = strlen(types[i].ext);
		if (n > e && !strcmp(name + n - e, types[i].ext))
			return &types[i];
	}
	return NULL;
}

/* Appends s to buf (cap bytes) at *len; -1 when it does not fit. */
static int
cat(char *buf, size_t cap, size_t *len, const char *s, size_t n)
{
	if (*len + n + 1 > cap)
		return -1;
	memcpy(buf + *len, s, n);
	*len += n;
	buf[*len] = '\0';
	return 0;
}

/*
 * Appends each origin of the space-separated list to buf, after a space;
 * as_ws: in its WebSocket form (http → ws, https → wss). Sets *any when
 * the list named one. -1 when it does not fit.
 */
static int
cat_origins(char *buf, size_t cap, size_t *len, const char *list, int as_ws,
	    int *any)
{
	const char *s;
	size_t n;

	for (s = list ? list : "";; s += n) {
		s += strspn(s, " ");
		n = strcspn(s, " ");
		if (!n)
			return 0;
		if (cat(buf, cap, len, " ", 1) < 0)
			return -1;
		if (as_ws && !strncmp(s, "https://", 8)) {
			if (cat(buf, cap, len, "wss://", 6) < 0 ||
			    cat(buf, cap, len, s + 8, n - 8) < 0)
				return -1;
		} else if (as_ws) {
			if (cat(buf, cap, len, "ws://", 5) < 0 ||
			    cat(buf, cap, len, s + 7, n - 7) < 0)
				return -1;
		} else if (cat(buf, cap, len, s, n) < 0) {
			return -1;
		}
		if (any)
			*any = 1;
	}
}

/*
 * The policy of the frame and everything it loads (docs/operations.md):
 * only its own origins (widget_origins: the relay's names for itself),
 * WebAssembly compiled from them, WebSockets back to them, embedded only
 * by the configured pages. Scripts and frames may also come from
 * widget_origins, so that a page under /widget/ served on one of the
 * relay's names (make run's demo page on localhost) can load the loader
 * and frame the app from another (127.0.0.1), as a municipality's page
 * does. connect-src names ws:// and wss:// of widget_origins besides
 * 'self': CSP 3 lets 'self' match WebSockets to the same host (Chromium
 * since 70), Safari before 15.5 did not.
 */
static char *
csp_build(const struct relay_config *cfg)
{
	char buf[4096];
	size_t len = 0;
	int any = 0;
	const char *o = cfg->widget_origins;

#define CAT(lit) cat(buf, sizeof(buf), &len, lit, strlen(lit))
	if (CAT("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'") <
		    0 ||
	    cat_origins(buf, sizeof(buf), &len, o, 0, NULL) < 0 ||
	    CAT("; frame-src 'self'") < 0 ||
	    cat_origins(buf, sizeof(buf), &len, o, 0, NULL) < 0 ||
	    CAT("; connect-src 'self'") < 0 ||
	    cat_origins(buf, sizeof(buf), &len, o, 1, NULL) < 0 ||
	    CAT("; img-src 'self' data: blob:; style-src 'self'; "
		"frame-ancestors") < 0 ||
	    cat_origins(buf, sizeof(buf), &len, cfg->widget_embed_origins, 0,
			&any) < 0 ||
	    CAT(any ? "; base-uri 'none'; form-action 'none'"
		    : " 'none'; base-uri 'none'; form-action 'none'") < 0)
		return NULL;
#undef CAT
	return bv_strdup(buf);
}

int
widget_new(const struct relay_config *cfg, struct widget **out)
{
	struct widget *w;

	*out = NULL;
	if (!cfg->widget_dir || !*cfg->widget_dir)
		return 0;
	w = bv_calloc(1, sizeof(*w));
	if (!w)
		return BV_ENOMEM;
	w->max_file = cfg->widget_max_file_bytes;
	w->csp = csp_build(cfg);
	if (!w->csp) {
		bv_free(w);
		return BV_ENOMEM;
	}
	w->dirfd = open(cfg->widget_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (w->dirfd < 0) {
		bv_log(BV_LOG_ERR, "widget_dir %s: %s", cfg->widget_dir,
		       strerror(errno));
		bv_free(w->csp);
		bv_free(w);
		return BV_ECONFIG;
	}
	bv_log(BV_LOG_NOTICE, "widget: serving %s at %s/", cfg->widget_dir,
	       WIDGET_PREFIX);
	*out = w;
	return 0;
}

void
widget_free(struct widget *w)
{
	if (!w)
		return;
	close(w->dirfd);
	bv_free(w->csp);
	bv_free(w);
}

int
widget_match(const char *path)
{
	size_t n = strlen(WIDGET_PREFIX);

	return path && !strncmp(path, WIDGET_PREFIX, n) &&
	       (path[n] == '\0' || path[n] == '/');
}

const char *
widget_csp(const struct widget *w)
{
	return w ? w->csp : NULL;
}

/* The checks on the name alone. */
static int
name_ok(const char *rel)
{
	size_t n = strlen(rel), i, seg = 0, segs = 0;

	if (n > WIDGET_PATH_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwx"
			    "yz"
			    "0123456789._-/",
			    rel[i]))
			return 0;
	/* Segments: none empty, none starting with '.'. */
	for (i = 0; i <= n; i++) {
		if (i < n && rel[i] != '/')
			continue;
		if (i == seg || rel[seg] == '.')
			return 0;
		if (++segs > MAX_SEGS)
			return 0;
		seg = i + 1;
	}
	return 1;
}

int
widget_open(const struct widget *w, const char *rel, int *fd, struct stat *st,
	    const struct widget_type **type)
{
	char path[WIDGET_PATH_MAX + sizeof("index.html")], *p, *slash;
	const struct widget_type *t;
	int d = -1, f = -1, rc = BV_ENOACCOUNT, e = 0;
	size_t n = strlen(rel);

	if (n > WIDGET_PATH_MAX)
		return BV_ENOACCOUNT;
	/* A directory's index, never its listing. */
	snprintf(path, sizeof(path), "%s%s", rel,
		 n == 0 || rel[n - 1] == '/' ? "index.html" : "");
	if (!name_ok(path))
		return BV_ENOACCOUNT;
	slash = strrchr(path, '/');
	t = type_of(slash ? slash + 1 : path);
	if (!t)
		return BV_ENOACCOUNT;
	/*
	 * One segment at a time with O_NOFOLLOW: a symbolic link anywhere
	 * is refused, so nothing outside the directory is ever reached. The
	 * directory itself may be a link (it was opened at start).
	 */
	for (p = path; (slash = strchr(p, '/')); p = slash + 1) {
		int nd;

		*slash = '\0';
		nd = openat(d >= 0 ? d : w->dirfd, p,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		e = errno;
		if (d >= 0)
			close(d);
		d = nd;
		if (d < 0)
			goto fs_error;
	}
	/* O_NONBLOCK: opening a FIFO must not wait for a writer. */
	f = openat(d >= 0 ? d : w->dirfd, p,
		   O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	e = errno;
	if (f < 0 || fstat(f, st) < 0) {
		e = errno;
		goto fs_error;
	}
	if (!S_ISREG(st->st_mode))
		goto out;
	if ((uint64_t)st->st_size > w->max_file) {
		bv_log(BV_LOG_WARN,
		       "widget: a file of %lld bytes is above "
		       "widget_max_file_bytes; not served",
		       (long long)st->st_size);
		goto out;
	}
	*fd = f;
	f = -1;
	*type = t;
	if (t->cross_origin == 0 && !strcmp(rel, LOADER)) {
		static const struct widget_type loader = {".js",
							  "text/javascript", 1};

		*type = &loader;
	}
	rc = 0;
	goto out;
fs_error:
	/* Not there, a link, not a directory: the usual 404, not logged. */
	if (e != ENOENT && e != ELOOP && e != ENOTDIR && e != EACCES) {
		bv_log(BV_LOG_WARN, "widget: %s", strerror(e));
		rc = BV_EIO;
	}
out:
	if (f >= 0)
		close(f);
	if (d >= 0)
		close(d);
	return rc;
}

static int
add(struct lws *wsi, const char *name, const char *value, unsigned char **p,
    unsigned char *end)
{
	return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
					   (const unsigned char *)value,
					   (int)strlen(value), p, end);
}

/*
 * Every widget answer's headers after the status line. The frame's page
 * is embedded cross-origin (frame-ancestors says by whom) and the loader is
 * fetched by the host page: both say Cross-Origin-Resource-Policy
 * cross-origin; everything else only the frame loads, same-origin.
 */
static int
add_headers(const struct widget *w, struct lws *wsi, int cross_origin,
	    const char *cache, unsigned char **p, unsigned char *end)
{
	static const char *const fallback =
		"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
		"form-action 'none'";

	return add(wsi, "content-security-policy:", w ? w->csp : fallback, p,
		   end) ||
	       add(wsi, "x-content-type-options:", "nosniff", p, end) ||
	       add(wsi, "referrer-policy:", "no-referrer", p, end) ||
	       add(wsi, "cross-origin-opener-policy:", "same-origin", p, end) ||
	       add(wsi, "cross-origin-resource-policy:",
		   cross_origin ? "cross-origin" : "same-origin", p, end) ||
	       add(wsi, "cache-control:", cache, p, end);
}

/* Writes an answer without a file body: a head, then body (may be ""). */
static int
answer_small(const struct widget *w, struct lws *wsi, unsigned status,
	     const char *body, const char *allow)
{
	unsigned char *start = wbuf + LWS_PRE, *p = start,
		      *end = wbuf + sizeof(wbuf) - 1;
	size_t n = strlen(body);

	if (lws_add_http_common_headers(
		    wsi, status, "text/plain; charset=utf-8", n, &p, end) ||
	    add_headers(w, wsi, 0, "no-store", &p, end) ||
	    (allow && add(wsi, "allow:", allow, &p, end)) ||
	    lws_finalize_http_header(wsi, &p, end) || (size_t)(end - p) < n)
		return -1;
	memcpy(p, body, n);
	p += n;
	if (lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP) !=
	    (int)(p - start))
		return -1;
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* "size-mtime" in hex, quoted: changes whenever the file is replaced. */
static void
etag_of(const struct stat *st, char *buf, size_t cap)
{
	snprintf(buf, cap, "\"%llx-%llx.%lx\"", (unsigned long long)st->st_size,
		 (unsigned long long)st->st_mtim.tv_sec,
		 (unsigned long)st->st_mtim.tv_nsec);
}

/* The request's If-None-Match names etag (or is "*"). */
static int
not_modified(struct lws *wsi, const char *etag)
{
	char inm[512];

	if (lws_hdr_copy(wsi, inm, sizeof(inm), WSI_TOKEN_HTTP_IF_NONE_MATCH) <=
	    0)
		return 0;
	return strstr(inm, etag) != NULL || !strcmp(inm, "*");
}

/* The path as it may appear in a log line: printable ASCII, shortened. */
static void
log_access(const char *method, const char *path, unsigned status)
{
	char shown[100];
	size_t i;

	for (i = 0; path[i] && i < sizeof(shown) - 1; i++)
		shown[i] = path[i] > 0x20 && path[i] < 0x7f ? path[i] : '?';
	shown[i] = '\0';
	bv_log(BV_LOG_INFO, "widget: %s %s%s %u", method, shown,
	       path[i] ? "..." : "", status);
}

int
widget_http(const struct widget *w, struct lws *wsi, const char *path,
	    struct widget_tx *tx)
{
	unsigned char *start = wbuf + LWS_PRE, *p = start,
		      *end = wbuf + sizeof(wbuf) - 1;
	const struct widget_type *type = NULL;
	const char *method, *rel;
	struct stat st;
	char etag[64];
	int fd = -1, head, rc;
	unsigned status;

	head = lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) > 0;
	method = head						    ? "HEAD"
		 : lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0 ? "GET"
								    : "other";
	if (!strcmp(method, "other")) {
		log_access(lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0
				   ? "POST"
				   : "other",
			   path, 405);
		return answer_small(w, wsi, 405, "method not allowed\n",
				    "GET, HEAD");
	}
	rel = path + strlen(WIDGET_PREFIX);
	rc = BV_ENOACCOUNT;
	if (w && *rel == '/')
		rc = widget_open(w, rel + 1, &fd, &st, &type);
	if (rc < 0) {
		log_access(method, path, 404);
		return answer_small(w, wsi, 404, head ? "" : "not found\n",
				    NULL);
	}
	etag_of(&st, etag, sizeof(etag));
	status = not_modified(wsi, etag) ? 304 : 200;
	log_access(method, path, status);
	if (lws_add_http_header_status(wsi, status, &p, end) ||
	    add(wsi, "content-type:", type->mime, &p, end) ||
	    (status == 200 &&
	     lws_add_http_header_content_length(wsi, (lws_filepos_t)st.st_size,
						&p, end)) ||
	    add(wsi, "etag:", etag, &p, end) ||
	    add_headers(w, wsi, type->cross_origin, "no-cache", &p, end) ||
	    lws_finalize_write_http_header(wsi, start, &p, end)) {
		close(fd);
		return -1;
	}
	if (head || status == 304 || st.st_size == 0) {
		close(fd);
		return lws_http_transaction_completed(wsi) ? -1 : 0;
	}
	tx->active = 1;
	tx->fd = fd;
	tx->remain = (uint64_t)st.st_size;
	lws_callback_on_writable(wsi);
	return 0;
}

int
widget_write(struct lws *wsi, struct widget_tx *tx)
{
	size_t want = tx->remain < PIECE ? (size_t)tx->remain : PIECE;
	ssize_t n;

	do
		n = read(tx->fd, wbuf + LWS_PRE, want);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		/* The file shrank under us: the length is promised. */
		bv_log(BV_LOG_WARN, "widget: a file ended early");
		widget_tx_close(tx);
		return -1;
	}
	tx->remain -= (uint64_t)n;
	if (lws_write(wsi, wbuf + LWS_PRE, (size_t)n,
		      tx->remain ? LWS_WRITE_HTTP : LWS_WRITE_HTTP_FINAL) <
	    (int)n) {
		widget_tx_close(tx);
		return -1;
	}
	if (tx->remain) {
		lws_callback_on_writable(wsi);
		return 0;
	}
	widget_tx_close(tx);
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

void
widget_tx_close(struct widget_tx *tx)
{
	if (!tx->active)
		return;
	close(tx->fd);
	tx->active = 0;
	tx->fd = -1;
	tx->remain = 0;
}

int
widget_origin_allowed(const char *origins, const char *origin)
{
	size_t n, len;

	if (!origins || !origin || !*origin)
		return 0;
	len = strlen(origin);
	for (;;) {
		origins += strspn(origins, " ");
		n = strcspn(origins, " ");
		if (!n)
			return 0;
		if (n == len && !strncasecmp(origins, origin, n))
			return 1;
		origins += n;
	}
}
