/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * devserver_http.h: the parsers of bvfiks-devserver that read request
 * bodies from the network: multipart/form-data (the send API), parameters
 * of header lines (boundary, Content-Disposition name) and
 * application/x-www-form-urlencoded (token and broker auth endpoints).
 * Pure functions on bytes; no I/O, no allocation except form_get()'s
 * result. Request lines and headers are libmicrohttpd's, not parsed here.
 */
#ifndef BV_FIKS_DEVSERVER_HTTP_H
#define BV_FIKS_DEVSERVER_HTTP_H

#include <stddef.h>

/* Limits of a multipart body (docs/fiks.md, bvfiks-devserver). */
#define PARTS_MAX	8    /* parts */
#define PART_HDRS_MAX	16   /* header lines of one part */
#define PART_HDRS_BYTES 8192 /* header bytes of one part */
#define BOUNDARY_MAX	70   /* characters (RFC 2046 5.1.1) */

/* One part: name and ctype are NUL-terminated; data points into the
 * body that was parsed. */
struct part {
	char name[32];
	char ctype[128];
	const unsigned char *data;
	size_t len;
};

#define HP_ABSENT    (-1)
#define HP_MALFORMED (-2)
#define HP_TOO_LONG  (-3)

/*
 * The value of the parameter key (case-insensitive) of a header value of
 * len bytes, "type; k1=v1; k2=\"v 2\"" (RFC 9110 5.6.6: tokens, or
 * quoted-strings with quoted-pairs, which are undone), into out (cap
 * bytes), NUL-terminated. The whole list is read, in order, so a value
 * never matches inside another's quotes.
 * Returns 0; HP_ABSENT when key is not there; HP_MALFORMED when the list
 * is not well-formed (a quote not closed, a control character or NUL in a
 * value, a character a token may not have, key given twice);
 * HP_TOO_LONG when the value does not fit in out.
 */
int header_param(const char *line, size_t len, const char *key, char *out,
		 size_t cap);

/*
 * Splits body, a multipart/form-data body of len bytes sent with the
 * Content-Type ctype (may be NULL), into parts (PARTS_MAX of them), as
 * RFC 2046 5.1.1 and RFC 7578 have it: a boundary of 1 … BOUNDARY_MAX
 * bchars; boundary lines at the start of a line, with optional transport
 * padding; a preamble and an epilogue, which are skipped; in each part at
 * most PART_HDRS_MAX header lines of PART_HDRS_BYTES in all, a
 * Content-Disposition "form-data" with a name and an optional
 * Content-Type, each once; no line in a part that begins with the
 * boundary. The body need not be NUL-terminated.
 * Returns the number of parts, 0 … PARTS_MAX, in order, each lying inside
 * body and ending where CRLF --boundary begins; -1 with *why set to a
 * static sentence that says what is wrong, for a client's 400 (the list
 * is in docs/fiks.md).
 */
int multipart_parse(const unsigned char *body, size_t len, const char *ctype,
		    struct part *parts, const char **why);

/* url-decodes in place ('+' is a space, %XX two hex digits); -1 on a
 * bad escape or an escaped NUL. */
int url_decode(char *s);

/* Looks up key in an application/x-www-form-urlencoded body (a NUL-
 * terminated copy). Returns a malloc'd decoded value or NULL. */
char *form_get(const char *body, const char *key);

#endif
