/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * widget.h: the web widget's files at /widget/ (docs/operations.md, "The
 * web widget"): GET and HEAD of regular files below widget_dir, by a
 * whitelist of names and types, with the frame's security headers; and the
 * Origin rule that browsers' WebSockets and requests meet (docs/protocol.md).
 *
 * server.c owns the lws callbacks and calls in here; nothing here touches
 * the database.
 */
#ifndef BV_RELAY_WIDGET_H
#define BV_RELAY_WIDGET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <libwebsockets.h>

#include "config.h"

#define WIDGET_PREFIX	"/widget"
#define WIDGET_PATH_MAX 255 /* bytes after "/widget/" */

struct widget;

/* A file being sent (server.c keeps one per HTTP connection). */
struct widget_tx {
	int active; /* fd is open and remain bytes are still to go */
	int fd;
	uint64_t remain;
};

/* One served type, found from the file name. */
struct widget_type {
	const char *ext;  /* ".wasm" */
	const char *mime; /* "application/wasm" */
	int cross_origin; /* Cross-Origin-Resource-Policy: cross-origin */
};

/*
 * Opens cfg->widget_dir and builds the headers from cfg. Returns 0 with
 * *out NULL when widget_dir is "" (no widget: /widget/ answers 404), 0 with
 * a new widget, or BV_ECONFIG (logged: the directory cannot be opened),
 * BV_ENOMEM.
 */
int widget_new(const struct relay_config *cfg, struct widget **out);

void widget_free(struct widget *w);

/* 1 when path is /widget or below it. */
int widget_match(const char *path);

/* The Content-Security-Policy of every widget answer (borrowed). */
const char *widget_csp(const struct widget *w);

/*
 * Resolves rel, the part of the path after "/widget/" ("" for the
 * directory itself), to an open regular file below the widget directory.
 * Refused, with BV_ENOACCOUNT (answered 404): characters other than
 * A-Z a-z 0-9 . _ - and '/', an empty segment or one that starts with '.'
 * (so "..", hidden files and "//"), more than WIDGET_PATH_MAX bytes, a type
 * not in the table, a symbolic link anywhere on the way, anything but a
 * regular file, and a file larger than widget_max_file_bytes. A name that
 * ends in '/' (or is "") means its index.html. Returns 0 with *fd (the
 * caller closes it), *st and *type; BV_ENOACCOUNT; BV_EIO when the file
 * system failed otherwise (answered 404 too, and logged).
 */
int widget_open(const struct widget *w, const char *rel, int *fd,
		struct stat *st, const struct widget_type **type);

/*
 * Answers a request for path (widget_match()) from LWS_CALLBACK_HTTP. w may
 * be NULL: no widget, every path is 404. Writes the head, and for a GET of
 * a file leaves it in tx and asks for LWS_CALLBACK_HTTP_WRITEABLE; other
 * answers (HEAD, 304, 404, 405) are complete on return. Returns 0, or -1 to
 * hang up.
 */
int widget_http(const struct widget *w, struct lws *wsi, const char *path,
		struct widget_tx *tx);

/*
 * LWS_CALLBACK_HTTP_WRITEABLE while tx->active: writes the next piece and
 * completes the transaction after the last. Returns 0, or -1 to hang up
 * (the file ended early or the write failed).
 */
int widget_write(struct lws *wsi, struct widget_tx *tx);

/* Closes tx's file, if any (the connection went away). */
void widget_tx_close(struct widget_tx *tx);

/*
 * 1 when origin (an Origin header's value) is one of origins, a
 * space-separated list as in widget_origins; ASCII case does not matter.
 * 0 for NULL or "" origins.
 */
int widget_origin_allowed(const char *origins, const char *origin);

#endif
