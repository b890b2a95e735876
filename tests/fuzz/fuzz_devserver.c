/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * fuzz_devserver.c: libFuzzer driver for bvfiks-devserver's parsers of
 * request bodies (fiks/tools/devserver_http.c): multipart/form-data of the
 * send API and the url-encoded forms of the token and broker endpoints.
 *
 * The input is a Content-Type line, "\n", then the body, as the server
 * gets them. "application/x-www-form-urlencoded" picks the form parser,
 * anything else the multipart one. Beyond "no crash, no leak" it aborts
 * when a parser reports success and breaks a promise of its header.
 */
#define _GNU_SOURCE /* memmem() */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "devserver_http.h"
#include "fuzz.h"

/* A string member of a struct that must end within its array. */
#define TERMINATED(s) CHECK(memchr((s), '\0', sizeof(s)) != NULL)

#define FORM "application/x-www-form-urlencoded"

static void
multipart(const char *ctype, const uint8_t *body, size_t len)
{
	struct part parts[PARTS_MAX + 1];
	const char *why = NULL;
	const uint8_t *prev_end = body;
	char delim[4 + BOUNDARY_MAX + 2] = "\r\n--";
	size_t dl;
	int n, i, j;

	/* A canary after the last part the parser may fill. */
	memset(&parts[PARTS_MAX], 0x5a, sizeof(parts[PARTS_MAX]));
	n = multipart_parse(body, len, ctype, parts, &why);
	CHECK(parts[PARTS_MAX].name[0] == 0x5a);
	if (n < 0) {
		CHECK(n == -1);
		CHECK(why && *why);
		return;
	}
	CHECK(n <= PARTS_MAX);
	/* Success needs a boundary of 1 … 70 characters. */
	CHECK(header_param(ctype, strlen(ctype), "boundary", delim + 4,
			   sizeof(delim) - 4) == 0);
	dl = strlen(delim);
	CHECK(dl > 4 && dl <= 4 + BOUNDARY_MAX);
	for (i = 0; i < n; i++) {
		const struct part *p = &parts[i];
		const uint8_t *after;

		TERMINATED(p->name);
		/* Names are quoted-strings or tokens: no control bytes
		 * but HTAB. */
		for (j = 0; p->name[j]; j++)
			CHECK(((unsigned char)p->name[j] >= 0x20 ||
			       p->name[j] == '\t') &&
			      p->name[j] != 0x7f);
		TERMINATED(p->ctype);
		/* Inside the body, in order, not overlapping. */
		CHECK(p->data >= prev_end);
		CHECK(p->len <= len);
		CHECK(p->data <= body + len - p->len);
		after = p->data + p->len;
		prev_end = after;
		/* Each part ends where CRLF --boundary begins, which a part
		 * with an empty body shares with its headers' empty line,
		 * and holds no CRLF --boundary. */
		if (p->len == 0 && (size_t)(p->data - body) >= 2 &&
		    (size_t)(body + len - p->data) + 2 >= dl &&
		    memcmp(p->data - 2, delim, dl) == 0)
			after = p->data - 2;
		CHECK((size_t)(body + len - after) >= dl);
		CHECK(memcmp(after, delim, dl) == 0);
		CHECK(!memmem(p->data, p->len, delim, dl));
	}
}

static void
form(const uint8_t *body, size_t len)
{
	static const char *const keys[] = {
		"grant_type", "assertion", "username", "password",
		"vhost",      "resource",  "name",     "permission",
	};
	char *s = malloc(len + 1);
	size_t i;

	if (!s)
		return;
	/* The server hands the body on NUL-terminated. */
	memcpy(s, body, len);
	s[len] = '\0';
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char *v = form_get(s, keys[i]);

		if (v) {
			CHECK(strlen(v) <= len);
			free(v);
		}
	}
	free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t cl, blen;
	uint8_t *body;
	char *ctype;

	if (!nl)
		return 0;
	cl = (size_t)(nl - data);
	blen = size - cl - 1;
	/* Header values reach the server as C strings. */
	ctype = malloc(cl + 1);
	/* Exactly the body's size, so that ASan sees any overread. */
	body = malloc(blen ? blen : 1);
	if (!ctype || !body)
		goto out;
	memcpy(ctype, data, cl);
	ctype[cl] = '\0';
	memcpy(body, nl + 1, blen);
	if (strncmp(ctype, FORM, strlen(FORM)) == 0)
		form(body, blen);
	else
		multipart(strlen(ctype) == cl ? ctype : NULL, body, blen);
out:
	free(ctype);
	free(body);
	return 0;
}
