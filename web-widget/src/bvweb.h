/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * bvweb.h: what the widget's JavaScript (app/client.js) calls in the
 * WebAssembly module, besides the transport's reports (conn_web.lib.js).
 * Exported by the link (-sEXPORTED_FUNCTIONS); one client per page, one
 * thread. bvweb.c says what each op does.
 */
#ifndef BVWEB_H
#define BVWEB_H

#include <stddef.h>
#include <stdint.h>

/*
 * One JSON request {"op": …} in, one JSON answer out: {"rc": 0, …} or
 * {"rc": BV_E…, "error": "…"}. The answer is valid until the next call.
 */
const char *bvw_call(const char *request);

/*
 * The sealed store image saved last time, for the next "open" (copied);
 * len 0: a new store. Returns 0, BV_EINVAL or BV_ENOMEM.
 */
int bvw_preload(const uint8_t *img, size_t len);

/* Changes committed to the store so far (a double: JavaScript's number). */
double bvw_generation(void);

/*
 * The store as a sealed image to save: its length into *len and the image
 * (malloc'd: the caller frees it), or NULL when no store is open, memory
 * ran out or a transaction is open.
 */
uint8_t *bvw_image(size_t *len);

#endif
