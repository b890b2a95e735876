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

#define PARTS_MAX     8
#define PART_HDRS_MAX 16

struct part {
	char name[32];
	char ctype[128];
	const unsigned char *data;
	size_t len;
};

/* The value of parameter key in a header line (quoted or not). */
int header_param(const char *line, size_t len, const char *key, char *out,
		 size_t cap);

/* Splits a multipart/form-data body. Returns the number of parts or -1. */
int multipart_parse(const unsigned char *body, size_t len, const char *ctype,
		    struct part *parts);

/* url-decodes in place; -1 on a bad escape or an embedded NUL. */
int url_decode(char *s);

/* Looks up key in an application/x-www-form-urlencoded body (a NUL-
 * terminated copy). Returns a malloc'd decoded value or NULL. */
char *form_get(const char *body, const char *key);

#endif
