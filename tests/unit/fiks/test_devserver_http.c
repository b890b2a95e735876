/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_devserver_http.c: unit tests of bvfiks-devserver's body parsers
 * (fiks/tools/devserver_http.c): the send API's multipart/form-data as
 * libcurl writes it for fiks_io.c, and every rejection with its reason.
 * The fuzz driver tests/fuzz/fuzz_devserver.c checks the invariants on
 * arbitrary input; this file checks exact answers.
 */
#define _GNU_SOURCE /* memmem() */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devserver_http.h"

#define B     "------------------------4eabed37918e9a88"
#define CTYPE "multipart/form-data; boundary=" B

static const char meta[] =
	"{\"avsenderKontoId\":\"6b3b0e0c-4a0e-4b8a-9c1e-2f5d6a7b8c9d\","
	"\"mottakerKontoId\":\"0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0\","
	"\"meldingType\":\"no.ks.fiks.arkiv.v1.arkivering.arkivmelding."
	"opprett\",\"svarPaMelding\":null,\"ttl\":null,\"headere\":{}}";

/* A payload as hostile to a parser as a CMS blob can be: NULs, CR, LF,
 * "--" and the boundary without its leading CRLF. */
static const unsigned char payload[] =
	"\x30\x82\0\0\r\n-\r\n--\n--" B "\r\r\n\0\xff";

struct buf {
	unsigned char b[65536];
	size_t len;
};

static void
put(struct buf *o, const void *p, size_t n)
{
	assert_true(o->len + n <= sizeof(o->b));
	memcpy(o->b + o->len, p, n);
	o->len += n;
}

static void
puts_(struct buf *o, const char *s)
{
	put(o, s, strlen(s));
}

/* The body fiks_io.c's send_mime() makes through libcurl (captured from
 * libcurl 7.88 and rebuilt here byte for byte). */
static void
curl_body(struct buf *o)
{
	o->len = 0;
	puts_(o, "--" B "\r\n"
		 "Content-Disposition: form-data; name=\"metadata\"\r\n"
		 "Content-Type: application/json\r\n\r\n");
	puts_(o, meta);
	puts_(o, "\r\n--" B "\r\n"
		 "Content-Disposition: form-data; name=\"data\"; "
		 "filename=\"3c1d5e2f-7a8b-4c9d-8e0f-1a2b3c4d5e6f\"\r\n"
		 "Content-Type: application/octet-stream\r\n\r\n");
	put(o, payload, sizeof(payload) - 1);
	puts_(o, "\r\n--" B "--\r\n");
}

static int
parse(const struct buf *o, const char *ctype, struct part *parts,
      const char **why)
{
	*why = NULL;
	return multipart_parse(o->b, o->len, ctype, parts, why);
}

/* Expects a rejection whose reason contains words. */
static void
refused(const struct buf *o, const char *ctype, const char *words)
{
	struct part parts[PARTS_MAX];
	const char *why;

	assert_int_equal(parse(o, ctype, parts, &why), -1);
	assert_non_null(why);
	if (!strstr(why, words))
		fail_msg("reason \"%s\", expected \"%s\"", why, words);
}

static void
test_curl_send(void **state)
{
	static struct buf o;
	struct part parts[PARTS_MAX];
	const char *why;

	(void)state;
	curl_body(&o);
	assert_int_equal(parse(&o, CTYPE, parts, &why), 2);
	assert_string_equal(parts[0].name, "metadata");
	assert_string_equal(parts[0].ctype, "application/json");
	assert_int_equal(parts[0].len, strlen(meta));
	assert_memory_equal(parts[0].data, meta, strlen(meta));
	assert_string_equal(parts[1].name, "data");
	assert_string_equal(parts[1].ctype, "application/octet-stream");
	assert_int_equal(parts[1].len, sizeof(payload) - 1);
	assert_memory_equal(parts[1].data, payload, sizeof(payload) - 1);
	/* The media type is case-insensitive, and so is the parameter. */
	assert_int_equal(parse(&o, "Multipart/Form-Data; BOUNDARY=\"" B "\"",
			       parts, &why),
			 2);
}

static void
test_no_parts(void **state)
{
	static struct buf o;
	struct part parts[PARTS_MAX];
	const char *why;

	(void)state;
	puts_(&o, "--" B "--\r\n");
	assert_int_equal(parse(&o, CTYPE, parts, &why), 0);
}

static void
test_content_type(void **state)
{
	static struct buf o;

	(void)state;
	curl_body(&o);
	refused(&o, NULL, "not multipart/form-data");
	refused(&o, "application/json", "not multipart/form-data");
	refused(&o, "multipart/form-data", "boundary");
	refused(&o, "multipart/form-data; boundary=", "malformed parameters");
	refused(&o, "multipart/form-data; boundary=\"\"", "boundary");
	refused(&o, "multipart/form-data; boundary=other", "no boundary");
}

static void
test_limits(void **state)
{
	static struct buf o;
	int i;

	(void)state;
	/* PARTS_MAX parts pass, one more does not. */
	for (i = 0; i <= PARTS_MAX; i++) {
		struct part parts[PARTS_MAX];
		const char *why;

		o.len = 0;
		for (int j = 0; j < i; j++)
			puts_(&o, "--" B "\r\nContent-Disposition: form-data; "
				  "name=\"x\"\r\n\r\nv\r\n");
		puts_(&o, "--" B "--");
		assert_int_equal(parse(&o, CTYPE, parts, &why), i);
	}
	o.len = 0;
	for (i = 0; i <= PARTS_MAX; i++)
		puts_(&o, "--" B "\r\nContent-Disposition: form-data; "
			  "name=\"x\"\r\n\r\nv\r\n");
	puts_(&o, "--" B "--");
	refused(&o, CTYPE, "more than 8 parts");

	o.len = 0;
	puts_(&o, "--" B "\r\nContent-Disposition: form-data; name=x\r\n");
	for (i = 1; i < PART_HDRS_MAX; i++)
		puts_(&o, "X-A: b\r\n");
	puts_(&o, "\r\nv\r\n--" B "--");
	{
		struct part parts[PARTS_MAX];
		const char *why;

		assert_int_equal(parse(&o, CTYPE, parts, &why), 1);
	}
	o.len = 0;
	puts_(&o, "--" B "\r\nContent-Disposition: form-data; name=x\r\n");
	for (i = 1; i <= PART_HDRS_MAX; i++)
		puts_(&o, "X-A: b\r\n");
	puts_(&o, "\r\nv\r\n--" B "--");
	refused(&o, CTYPE, "more than 16 header lines");

	o.len = 0;
	puts_(&o, "--" B "\r\nX-A: ");
	for (i = 0; i < PART_HDRS_BYTES; i++)
		puts_(&o, "b");
	puts_(&o, "\r\n\r\nv\r\n--" B "--");
	refused(&o, CTYPE, "longer than 8 KiB");
}

static void
test_framing(void **state)
{
	static struct buf o;

	(void)state;
	/* The last part is not closed. */
	curl_body(&o);
	o.len -= strlen("\r\n--" B "--\r\n");
	refused(&o, CTYPE, "no closing boundary");
	/* Nothing after the first boundary. */
	o.len = 0;
	puts_(&o, "--" B);
	refused(&o, CTYPE, "not a boundary line");
	/* Headers that never end. */
	o.len = 0;
	puts_(&o, "--" B "\r\nContent-Disposition: form-data; name=\"x\"\r\n");
	refused(&o, CTYPE, "not ended by an empty line");
}

/* RFC 2046 5.1.1: a part may have no headers; its body starts after the
 * empty line at once. The parser once looked for CRLF CRLF further on and
 * took the next part's headers, and lost this part. Form data needs a
 * Content-Disposition (RFC 7578 4.2), so such a part is refused, as
 * itself. */
static void
test_part_without_headers(void **state)
{
	static struct buf o;

	(void)state;
	puts_(&o, "--" B "\r\n\r\nhello\r\n--" B "\r\n"
		  "Content-Disposition: form-data; name=\"data\"\r\n\r\n"
		  "X\r\n--" B "--");
	refused(&o, CTYPE, "without Content-Disposition");
	/* And with an empty body. */
	o.len = 0;
	puts_(&o, "--" B "\r\n\r\n\r\n--" B "--");
	refused(&o, CTYPE, "without Content-Disposition");
}

/* Parameters are read as a list: a value never matches inside another
 * parameter's quotes, quotes must close, quoted-pairs are undone, NULs and
 * control characters are refused and a parameter given twice is
 * ambiguous. The parser once matched "name=" anywhere after a space or
 * ';' and stopped at a NUL or the end of the line. */
static void
test_header_param(void **state)
{
	static const char cd[] = "Content-Disposition: form-data; "
				 "filename=\"x name=metadata\"; name=\"data\"";
	static const char nul[] = "form-data; name=\"metadata\0junk\"";
	char out[32];

	(void)state;
	assert_int_equal(header_param(cd, strlen(cd), "name", out, sizeof(out)),
			 0);
	assert_string_equal(out, "data");
	assert_int_equal(
		header_param(cd, strlen(cd), "filename", out, sizeof(out)), 0);
	assert_string_equal(out, "x name=metadata");
#define HP(s, want)                                                            \
	assert_int_equal(header_param(s, strlen(s), "name", out, sizeof(out)), \
			 want)
	HP("form-data; name=data", 0);
	assert_string_equal(out, "data");
	HP("form-data;name=\"a\\\"b\" ; x=y;", 0);
	assert_string_equal(out, "a\"b");
	HP("form-data; NAME=\"\"", 0);
	assert_string_equal(out, "");
	HP("form-data", HP_ABSENT);
	HP("form-data; filename=name", HP_ABSENT);
	HP("form-data; name=\"data", HP_MALFORMED);
	HP("form-data; name=\"data\\", HP_MALFORMED);
	HP("form-data; name=\"data\"; name=\"metadata\"", HP_MALFORMED);
	HP("form-data; name=da\001ta", HP_MALFORMED);
	HP("form-data; name=\"da\001ta\"", HP_MALFORMED);
	HP("form-data; name=\"da\nta\"", HP_MALFORMED);
	HP("form-data; name=", HP_MALFORMED);
	HP("form-data; =x", HP_MALFORMED);
	HP("form-data; name=\"data\"x", HP_MALFORMED);
	HP("form-data; name=\"0123456789012345678901234567890\"", 0);
	HP("form-data; name=\"01234567890123456789012345678901\"", HP_TOO_LONG);
#undef HP
	assert_int_equal(
		header_param(nul, sizeof(nul) - 1, "name", out, sizeof(out)),
		HP_MALFORMED);
	/* The same in a Content-Type: boundary inside another's quotes. */
	{
		static struct buf o;
		struct part parts[PARTS_MAX];
		const char *why;

		puts_(&o, "--real\r\nContent-Disposition: form-data; "
			  "name=x\r\n\r\nv\r\n--real--");
		assert_int_equal(
			parse(&o,
			      "multipart/form-data; x=\"y boundary=evil\"; "
			      "boundary=real",
			      parts, &why),
			1);
	}
}

/* One part with the header lines h. */
static void
one_part(struct buf *o, const char *h)
{
	o->len = 0;
	puts_(o, "--" B "\r\n");
	put(o, h, strlen(h));
	puts_(o, "\r\n\r\nv\r\n--" B "--");
}

#define CD "Content-Disposition: form-data; name=\"data\""

/* Header lines: 'Name: value' without control characters, each of the two
 * that count at most once, a Content-Disposition of type form-data with a
 * name. The parser once let a second Content-Type overwrite the first only
 * in part ("application/octet-stream" then "a/b" gave
 * "a/blication/octet-stream"), took a bare LF or a NUL into a name and
 * ignored lines it could not read. */
static void
test_part_headers(void **state)
{
	static struct buf o;
	struct part parts[PARTS_MAX];
	const char *why;

	(void)state;
	one_part(&o, "content-disposition:form-data;name=data  \r\n"
		     "CONTENT-TYPE: \tapplication/octet-stream \t\r\n"
		     "X-Other: ignored");
	assert_int_equal(parse(&o, CTYPE, parts, &why), 1);
	assert_string_equal(parts[0].name, "data");
	assert_string_equal(parts[0].ctype, "application/octet-stream");

	one_part(&o, CD "\r\nContent-Type: application/octet-stream\r\n"
			"Content-Type: a/b");
	refused(&o, CTYPE, "given twice");
	one_part(&o, CD "\r\n" CD);
	refused(&o, CTYPE, "given twice");
	one_part(&o, "Content-Disposition: form-data; name=data\nX-A: y");
	refused(&o, CTYPE, "bare CR or LF");
	one_part(&o, CD "\rX-A: y");
	refused(&o, CTYPE, "bare CR or LF");
	o.len = 0;
	puts_(&o, "--" B "\r\n" CD "\r\nX-A: a");
	put(&o, "\0", 1);
	puts_(&o, "b\r\n\r\nv\r\n--" B "--");
	refused(&o, CTYPE, "NUL");
	one_part(&o, CD "\r\nX-A: \001");
	refused(&o, CTYPE, "control character");
	one_part(&o, CD "\r\ngarbage");
	refused(&o, CTYPE, "not 'Name: value'");
	one_part(&o, CD "\r\n: x");
	refused(&o, CTYPE, "not 'Name: value'");
	one_part(&o, CD "\r\nX-A: a\r\n folded");
	refused(&o, CTYPE, "not 'Name: value'");
	one_part(&o, "Content-Disposition : form-data; name=data");
	refused(&o, CTYPE, "not 'Name: value'");
	one_part(&o, "Content-Disposition: attachment; name=data");
	refused(&o, CTYPE, "without Content-Disposition: form-data");
	one_part(&o, "Content-Disposition: form-data");
	refused(&o, CTYPE, "without Content-Disposition: form-data");
	one_part(&o, "Content-Disposition: form-data; name=\"\"");
	refused(&o, CTYPE, "without Content-Disposition: form-data");
	one_part(&o, "Content-Type: application/json");
	refused(&o, CTYPE, "without Content-Disposition: form-data");
	one_part(&o, "Content-Disposition: form-data; name=\"data");
	refused(&o, CTYPE, "malformed parameters");
	one_part(&o, "Content-Disposition: form-data; "
		     "name=\"01234567890123456789012345678901\"");
	refused(&o, CTYPE, "longer than 31 bytes");
}

#define PART "Content-Disposition: form-data; name=x\r\n\r\nv"

/* RFC 2046 5.1.1: a boundary is 1 … 70 bchars not ending in a space; a
 * boundary line starts a line and ends in optional transport padding and
 * CRLF, or in "--"; no line in a part may begin with the boundary. The
 * parser once took 79 characters of anything, a media type with a suffix
 * ("multipart/form-dataX"), a first boundary in the middle of a line, and
 * refused padding, which receivers must accept. */
static void
test_boundary(void **state)
{
	static const char b70[] = "0123456789012345678901234567890123456789"
				  "012345678901234567890123456789";
	static struct buf o;
	struct part parts[PARTS_MAX];
	const char *why;

	(void)state;
	assert_int_equal(strlen(b70), BOUNDARY_MAX);
	puts_(&o, "--");
	puts_(&o, b70);
	puts_(&o, "\r\n" PART "\r\n--");
	puts_(&o, b70);
	puts_(&o, "--");
	assert_int_equal(parse(&o,
			       "multipart/form-data;boundary=0123456789"
			       "01234567890123456789012345678901234567890"
			       "1234567890123456789",
			       parts, &why),
			 1);
	refused(&o,
		"multipart/form-data;boundary=\"01234567890123456789012345678"
		"901234567890123456789012345678901234567890123456789\"",
		"longer than 70");
	refused(&o,
		"multipart/form-data;boundary=\"01234567890123456789012345678"
		"9012345678901234567890123456789012345678901234567890123456789"
		"01234567890123456789\"",
		"longer than 70");

	o.len = 0;
	puts_(&o, "--a@b\r\n" PART "\r\n--a@b--");
	refused(&o, "multipart/form-data; boundary=\"a@b\"", "RFC 2046");
	o.len = 0;
	puts_(&o, "--a b\r\n" PART "\r\n--a b--");
	assert_int_equal(
		parse(&o, "multipart/form-data; boundary=\"a b\"", parts, &why),
		1);
	refused(&o, "multipart/form-data; boundary=\"a b \"", "RFC 2046");
	refused(&o, "multipart/form-dataX; boundary=\"a b\"",
		"not multipart/form-data");

	/* Preamble, padding, epilogue. */
	o.len = 0;
	puts_(&o, "x--b\r\n--b \t\r\n" PART "\r\n--b--\r\n--b\r\nepilogue");
	assert_int_equal(
		parse(&o, "multipart/form-data; boundary=b", parts, &why), 1);
	assert_memory_equal(parts[0].data, "v", parts[0].len);
	/* A first boundary must begin a line: here all is preamble. */
	o.len = 0;
	puts_(&o, "x--b\r\n" PART "\r\n--b--");
	assert_int_equal(
		parse(&o, "multipart/form-data; boundary=b", parts, &why), 0);
	o.len = 0;
	puts_(&o, "x--b\r\n" PART);
	refused(&o, "multipart/form-data; boundary=b", "no boundary");
	o.len = 0;
	puts_(&o, "--bb\r\n" PART "\r\n--b--");
	refused(&o, "multipart/form-data; boundary=b", "not a boundary line");
	/* In a part, "--b" is data unless it begins a line; there it must
	 * be a boundary line. */
	o.len = 0;
	puts_(&o, "--b\r\n" PART " --b\n--b\r--b\r\n--b--");
	assert_int_equal(
		parse(&o, "multipart/form-data; boundary=b", parts, &why), 1);
	assert_int_equal(parts[0].len, strlen("v --b\n--b\r--b"));
	o.len = 0;
	puts_(&o, "--b\r\n" PART "\r\n--bx\r\nmore\r\n--b--");
	refused(&o, "multipart/form-data; boundary=b",
		"a line in a part begins with the boundary");
}

/* RFC 2046 5.1.1: body-part := MIME-part-headers [CRLF *OCTET], so a
 * part may end right after its headers, the empty line's CRLF being the
 * boundary line's; the parser once went on looking for the boundary
 * after it and refused the body. */
static void
test_part_ends_with_headers(void **state)
{
	static struct buf o;
	struct part parts[PARTS_MAX];
	const char *why;

	(void)state;
	puts_(&o, "--b\r\nContent-Disposition: form-data; name=x\r\n\r\n"
		  "--b\r\nContent-Disposition: form-data; name=y\r\n\r\n"
		  "\r\n--b--");
	assert_int_equal(
		parse(&o, "multipart/form-data; boundary=b", parts, &why), 2);
	assert_string_equal(parts[0].name, "x");
	assert_int_equal(parts[0].len, 0);
	assert_string_equal(parts[1].name, "y");
	assert_int_equal(parts[1].len, 0);
}

/* '+' and %XX, two hex digits and nothing else: sscanf("%2x") once took
 * "%-1" as 0xff and "% a" as 0x0a. */
static void
test_url_decode(void **state)
{
	static const char *const bad[] = {
		"%-1", "% a", "%+f", "%0x1", "%4", "%", "%g0", "%00", "a%",
	};
	char s[64];
	size_t i;

	(void)state;
	snprintf(s, sizeof(s), "a+b%%41%%e2%%82%%aC%%2b");
	assert_int_equal(url_decode(s), 0);
	assert_string_equal(s, "a bA\xe2\x82\xac+");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(s, sizeof(s), "%s", bad[i]);
		if (url_decode(s) != -1)
			fail_msg("\"%s\" decoded", bad[i]);
	}
}

static void
test_form_get(void **state)
{
	char *v;

	(void)state;
	v = form_get("usernamex=1&username=a%20b&password=p+w", "username");
	assert_non_null(v);
	assert_string_equal(v, "a b");
	free(v);
	v = form_get("username=a&password=p+w", "password");
	assert_non_null(v);
	assert_string_equal(v, "p w");
	free(v);
	assert_null(form_get("username=a", "password"));
	assert_null(form_get("username=%-1", "username"));
	assert_null(form_get("", "username"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_curl_send),
		cmocka_unit_test(test_no_parts),
		cmocka_unit_test(test_content_type),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_framing),
		cmocka_unit_test(test_part_without_headers),
		cmocka_unit_test(test_header_param),
		cmocka_unit_test(test_part_headers),
		cmocka_unit_test(test_boundary),
		cmocka_unit_test(test_part_ends_with_headers),
		cmocka_unit_test(test_url_decode),
		cmocka_unit_test(test_form_get),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
