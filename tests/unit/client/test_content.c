/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_content.c: unit tests of client-lib/src/content.c: round trips of
 * every kind, padding sizes and stripping, every refusal of the decoder and
 * the constructors, limits at the boundary and one over, invalid UTF-8,
 * unknown kinds and versions, and failing every allocation in turn.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bv_error.h"
#include "bv_util.h"
#include "content.h"

#define CONV "3f0c8a52-1b7e-4c1e-9a53-6d2f0e8b7c41"
#define SENT 1795431296123LL

/* Pads the JSON text s and decodes it; returns the decoder's code. */
static int
decode_str(const char *s, struct bv_content **out)
{
	uint8_t *buf;
	size_t len;
	int rc;

	assert_int_equal(
		bv_content_pad((const uint8_t *)s, strlen(s), &buf, &len), 0);
	rc = bv_content_decode(buf, len, out);
	bv_free(buf);
	return rc;
}

static void
expect_decode_err(const char *s, int code)
{
	struct bv_content *c = NULL;

	assert_int_equal(decode_str(s, &c), code);
	assert_null(c);
}

/* Encodes c, checks the padding, decodes and returns the copy. */
static struct bv_content *
round_trip(const struct bv_content *c)
{
	struct bv_content *d = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;

	assert_int_equal(bv_content_encode(c, &buf, &len), 0);
	assert_int_equal(len % BV_CONTENT_PAD_BLOCK, 0);
	assert_int_equal(bv_content_decode(buf, len, &d), 0);
	bv_free(buf);
	assert_int_equal(d->kind, c->kind);
	assert_int_equal(d->version, BV_CONTENT_VERSION);
	assert_string_equal(d->kind_name, c->kind_name);
	assert_string_equal(d->conversation, c->conversation);
	assert_string_equal(d->message_id, c->message_id);
	assert_true(d->sent_ms == c->sent_ms);
	return d;
}

static void
test_text_round_trip(void **state)
{
	const char *txt = "Hei! Møtet er flyttet til torsdag 😀\n\"ok\"\t\\";
	struct bv_content *c = NULL, *d;

	(void)state;
	assert_int_equal(bv_content_text_new(CONV, "01J9Z3K7W5", SENT, txt,
					     strlen(txt), &c),
			 0);
	assert_int_equal(c->kind, BV_CONTENT_TEXT);
	assert_string_equal(c->kind_name, "text");
	d = round_trip(c);
	assert_int_equal(d->text_len, strlen(txt));
	assert_string_equal(d->text, txt);
	bv_content_free(c);
	bv_content_free(d);
}

static void
test_receipt_round_trip(void **state)
{
	const char *ids[] = {"a1", "b-2", "C_3"};
	struct bv_content *c = NULL, *d;
	size_t i;

	(void)state;
	assert_int_equal(bv_content_receipt_new(CONV, "r1", SENT,
						BV_RECEIPT_READ, ids, 3, &c),
			 0);
	d = round_trip(c);
	assert_int_equal(d->receipt, BV_RECEIPT_READ);
	assert_int_equal(d->n_ids, 3);
	for (i = 0; i < 3; i++)
		assert_string_equal(d->ids[i], ids[i]);
	bv_content_free(d);
	c->receipt = BV_RECEIPT_DELIVERED;
	d = round_trip(c);
	assert_int_equal(d->receipt, BV_RECEIPT_DELIVERED);
	bv_content_free(c);
	bv_content_free(d);
}

/* The archive's journaled receipt: its reference travels and is checked. */
static void
test_journaled_round_trip(void **state)
{
	const char *ids[] = {"a1", "b-2"};
	char long_ref[BV_CONTENT_JOURNAL_MAX + 2];
	struct bv_content *c = NULL, *d;

	(void)state;
	assert_int_equal(bv_content_journaled_new(CONV, "j1", SENT,
						  "2026/000123 ø", ids, 2, &c),
			 0);
	assert_int_equal(c->receipt, BV_RECEIPT_JOURNALED);
	d = round_trip(c);
	assert_int_equal(d->receipt, BV_RECEIPT_JOURNALED);
	assert_string_equal(d->journal, "2026/000123 ø");
	assert_int_equal(d->n_ids, 2);
	bv_content_free(c);
	bv_content_free(d);

	/* Only through its own constructor, and only with a reference. */
	c = NULL;
	assert_int_equal(bv_content_receipt_new(CONV, "j1", SENT,
						BV_RECEIPT_JOURNALED, ids, 2,
						&c),
			 BV_EINVAL);
	assert_int_equal(
		bv_content_journaled_new(CONV, "j1", SENT, NULL, ids, 2, &c),
		BV_EINVAL);
	assert_int_equal(
		bv_content_journaled_new(CONV, "j1", SENT, "", ids, 2, &c),
		BV_EFIELD);
	assert_int_equal(
		bv_content_journaled_new(CONV, "j1", SENT, "a\nb", ids, 2, &c),
		BV_EFIELD);
	memset(long_ref, 'x', sizeof(long_ref) - 1);
	long_ref[sizeof(long_ref) - 1] = '\0';
	assert_int_equal(bv_content_journaled_new(CONV, "j1", SENT, long_ref,
						  ids, 2, &c),
			 BV_EFIELD);
	long_ref[BV_CONTENT_JOURNAL_MAX] = '\0';
	assert_int_equal(bv_content_journaled_new(CONV, "j1", SENT, long_ref,
						  ids, 2, &c),
			 0);
	bv_content_free(c);
}

static void
test_resend_round_trip(void **state)
{
	const char *ids[] = {"01J9Z3K7W5", "01J9Z3K7W6"};
	struct bv_content *c = NULL, *d;
	int r;

	(void)state;
	/* Without a conversation: the receiver cannot know it. */
	for (r = BV_RESEND_OTHER; r <= BV_RESEND_UNKNOWN_TYPE; r++) {
		assert_int_equal(bv_content_resend_new(NULL, "rq1", SENT,
						       (enum bv_resend_reason)r,
						       ids, 2, &c),
				 0);
		assert_string_equal(c->conversation, "");
		d = round_trip(c);
		assert_int_equal(d->reason, r);
		assert_int_equal(d->n_ids, 2);
		assert_string_equal(d->ids[1], ids[1]);
		bv_content_free(c);
		bv_content_free(d);
	}
	assert_int_equal(bv_content_resend_new(CONV, "rq1", SENT,
					       BV_RESEND_NO_SESSION, ids, 2,
					       &c),
			 0);
	d = round_trip(c);
	bv_content_free(c);
	bv_content_free(d);
}

static void
test_padding(void **state)
{
	static const size_t lens[] = {0, 1, 158, 159, 160, 161, 319, 320};
	static const size_t want[] = {160, 160, 160, 160, 320, 320, 320, 480};
	uint8_t src[400], *p = NULL;
	size_t i, len, un;

	(void)state;
	memset(src, 0, sizeof(src)); /* zeros in the data must survive */
	src[0] = 0x80;
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		assert_int_equal(bv_content_pad(src, lens[i], &p, &len), 0);
		assert_int_equal(len, want[i]);
		assert_int_equal(p[lens[i]], 0x80);
		assert_int_equal(bv_content_unpad(p, len, &un), 0);
		/* Trailing zero data is indistinguishable from padding. */
		assert_true(un == lens[i] || (lens[i] > 1 && un == 1));
		bv_free(p);
	}
	/* Lenient bucket: any number of zeros after the terminator. */
	assert_int_equal(bv_content_unpad((const uint8_t *)"x\x80", 2, &un), 0);
	assert_int_equal(un, 1);
	assert_int_equal(bv_content_unpad((const uint8_t *)"\x80\0\0", 3, &un),
			 0);
	assert_int_equal(un, 0);
	/* No terminator, all zeros, empty, NULLs. */
	assert_int_equal(bv_content_unpad((const uint8_t *)"ab\0\0", 4, &un),
			 BV_EINVAL);
	assert_int_equal(bv_content_unpad((const uint8_t *)"\0\0", 2, &un),
			 BV_EINVAL);
	assert_int_equal(bv_content_unpad((const uint8_t *)"", 0, &un),
			 BV_EINVAL);
	assert_int_equal(bv_content_unpad(NULL, 0, &un), BV_EINVAL);
	assert_int_equal(bv_content_unpad(src, 1, NULL), BV_EINVAL);
	assert_int_equal(bv_content_pad(NULL, 1, &p, &len), BV_EINVAL);
	assert_int_equal(bv_content_pad(src, 1, NULL, &len), BV_EINVAL);
	assert_int_equal(bv_content_pad(src, 1, &p, NULL), BV_EINVAL);
	assert_int_equal(bv_content_pad(NULL, 0, &p, &len), 0);
	assert_int_equal(len, 160);
	bv_free(p);
}

/* Padded sizes of encoded contents follow the bucket. */
static void
test_encoded_sizes(void **state)
{
	char *txt = bv_malloc(BV_CONTENT_TEXT_MAX);
	struct bv_content *c = NULL;
	uint8_t *buf;
	size_t n, len, un, last = 0;

	(void)state;
	memset(txt, 'a', BV_CONTENT_TEXT_MAX);
	for (n = 1; n <= 400; n += 7) {
		assert_int_equal(
			bv_content_text_new(CONV, "m", SENT, txt, n, &c), 0);
		assert_int_equal(bv_content_encode(c, &buf, &len), 0);
		assert_int_equal(len % 160, 0);
		assert_true(len >= last);
		assert_int_equal(bv_content_unpad(buf, len, &un), 0);
		assert_true(un < len && len - un <= 160);
		last = len;
		bv_free(buf);
		bv_content_free(c);
	}
	bv_free(txt);
}

static void
test_text_limits(void **state)
{
	char *txt = bv_malloc(BV_CONTENT_TEXT_MAX + 2), *json;
	struct bv_content *c = NULL, *d;
	uint8_t *buf;
	size_t len;

	(void)state;
	/* Control characters: the worst case of JSON escaping. */
	memset(txt, 0x01, BV_CONTENT_TEXT_MAX + 1);
	txt[BV_CONTENT_TEXT_MAX + 1] = '\0';
	assert_int_equal(bv_content_text_new(CONV, "m", SENT, txt,
					     BV_CONTENT_TEXT_MAX, &c),
			 0);
	assert_int_equal(bv_content_encode(c, &buf, &len), 0);
	assert_true(len <= BV_CONTENT_MAX_BYTES);
	assert_int_equal(bv_content_decode(buf, len, &d), 0);
	assert_int_equal(d->text_len, BV_CONTENT_TEXT_MAX);
	bv_free(buf);
	bv_content_free(d);
	assert_int_equal(bv_content_text_new(CONV, "m", SENT, txt,
					     BV_CONTENT_TEXT_MAX + 1, &d),
			 BV_EFIELD);
	/* One over through the decoder, and through a modified struct. */
	json = bv_malloc(BV_CONTENT_TEXT_MAX + 200);
	memset(txt, 'x', BV_CONTENT_TEXT_MAX + 1);
	snprintf(json, BV_CONTENT_TEXT_MAX + 200,
		 "{\"v\":1,\"kind\":\"text\",\"conversation\":\"" CONV
		 "\",\"message_id\":\"m\",\"sent\":1,\"text\":\"%s\"}",
		 txt);
	expect_decode_err(json, BV_EFIELD);
	txt[BV_CONTENT_TEXT_MAX] = '\0';
	snprintf(json, BV_CONTENT_TEXT_MAX + 200,
		 "{\"v\":1,\"kind\":\"text\",\"conversation\":\"" CONV
		 "\",\"message_id\":\"m\",\"sent\":1,\"text\":\"%s\"}",
		 txt);
	assert_int_equal(decode_str(json, &d), 0);
	bv_content_free(d);
	c->text_len = BV_CONTENT_TEXT_MAX + 1;
	assert_int_equal(bv_content_encode(c, &buf, &len), BV_EFIELD);
	c->text_len = BV_CONTENT_TEXT_MAX;
	bv_content_free(c);
	bv_free(json);
	bv_free(txt);
	/* Empty text. */
	assert_int_equal(bv_content_text_new(CONV, "m", SENT, "", 0, &c),
			 BV_EFIELD);
	expect_decode_err("{\"v\":1,\"kind\":\"text\",\"conversation\":\"" CONV
			  "\",\"message_id\":\"m\",\"sent\":1,\"text\":\"\"}",
			  BV_EFIELD);
}

static void
test_ids_limits(void **state)
{
	const char *ids[BV_CONTENT_IDS_MAX + 1];
	char names[BV_CONTENT_IDS_MAX + 1][8], *json, *p;
	struct bv_content *c = NULL, *d;
	size_t i;

	(void)state;
	for (i = 0; i <= BV_CONTENT_IDS_MAX; i++) {
		snprintf(names[i], sizeof(names[i]), "id%zu", i);
		ids[i] = names[i];
	}
	assert_int_equal(bv_content_receipt_new(CONV, "m", SENT,
						BV_RECEIPT_DELIVERED, ids,
						BV_CONTENT_IDS_MAX, &c),
			 0);
	d = round_trip(c);
	assert_int_equal(d->n_ids, BV_CONTENT_IDS_MAX);
	bv_content_free(d);
	bv_content_free(c);
	assert_int_equal(bv_content_receipt_new(CONV, "m", SENT,
						BV_RECEIPT_DELIVERED, ids,
						BV_CONTENT_IDS_MAX + 1, &c),
			 BV_ETOOMANY);
	assert_int_equal(bv_content_resend_new(NULL, "m", SENT, BV_RESEND_OTHER,
					       ids, BV_CONTENT_IDS_MAX + 1, &c),
			 BV_ETOOMANY);
	assert_int_equal(bv_content_resend_new(NULL, "m", SENT, BV_RESEND_OTHER,
					       ids, 0, &c),
			 BV_EFIELD);
	/* One over through the decoder. */
	json = bv_malloc(4096);
	p = json + sprintf(json, "{\"v\":1,\"kind\":\"resend_request\","
				 "\"message_id\":\"m\",\"sent\":1,"
				 "\"reason\":\"other\",\"ids\":[");
	for (i = 0; i <= BV_CONTENT_IDS_MAX; i++)
		p += sprintf(p, "%s\"%s\"", i ? "," : "", names[i]);
	strcpy(p, "]}");
	expect_decode_err(json, BV_ETOOMANY);
	/* At the limit it decodes. */
	p = strrchr(json, ',');
	strcpy(p, "]}");
	assert_int_equal(decode_str(json, &d), 0);
	assert_int_equal(d->n_ids, BV_CONTENT_IDS_MAX);
	bv_content_free(d);
	bv_free(json);
}

static void
test_message_id_limits(void **state)
{
	char mid[BV_MESSAGE_ID_MAX + 2], json[512];
	const char *ids[1];
	struct bv_content *c = NULL;

	(void)state;
	memset(mid, 'Z', sizeof(mid) - 1);
	mid[BV_MESSAGE_ID_MAX] = '\0';
	assert_int_equal(bv_content_text_new(CONV, mid, SENT, "x", 1, &c), 0);
	bv_content_free(c);
	ids[0] = mid;
	assert_int_equal(bv_content_receipt_new(CONV, "m", SENT,
						BV_RECEIPT_READ, ids, 1, &c),
			 0);
	bv_content_free(c);
	snprintf(json, sizeof(json),
		 "{\"v\":1,\"kind\":\"receipt\",\"conversation\":\"" CONV
		 "\",\"message_id\":\"%s\",\"sent\":1,\"receipt\":\"read\","
		 "\"ids\":[\"%s\"]}",
		 mid, mid);
	assert_int_equal(decode_str(json, &c), 0);
	bv_content_free(c);

	mid[BV_MESSAGE_ID_MAX] = 'Z';
	mid[BV_MESSAGE_ID_MAX + 1] = '\0';
	assert_int_equal(bv_content_text_new(CONV, mid, SENT, "x", 1, &c),
			 BV_EFIELD);
	assert_int_equal(bv_content_receipt_new(CONV, "m", SENT,
						BV_RECEIPT_READ, ids, 1, &c),
			 BV_EFIELD);
	snprintf(json, sizeof(json),
		 "{\"v\":1,\"kind\":\"text\",\"conversation\":\"" CONV
		 "\",\"message_id\":\"%s\",\"sent\":1,\"text\":\"x\"}",
		 mid);
	expect_decode_err(json, BV_EFIELD);
	snprintf(json, sizeof(json),
		 "{\"v\":1,\"kind\":\"receipt\",\"conversation\":\"" CONV
		 "\",\"message_id\":\"m\",\"sent\":1,\"receipt\":\"read\","
		 "\"ids\":[\"%s\"]}",
		 mid);
	expect_decode_err(json, BV_EFIELD);
	assert_int_equal(bv_content_text_new(CONV, "a b", SENT, "x", 1, &c),
			 BV_EFIELD);
	assert_int_equal(bv_content_text_new(CONV, "", SENT, "x", 1, &c),
			 BV_EFIELD);
}

static void
test_invalid_utf8(void **state)
{
	static const char *const bad[] = {
		"\xff",
		"\xc0\xaf",
		"\xe0\x80\xaf",
		"\xed\xa0\x80",
		"\xf4\x90\x80\x80",
		"\xc3",
		"a\xe2\x82",
		"\x80",
		"\xf8\x88\x80\x80\x80",
	};
	static const char *const good[] = {"\xc3\xa5", "\xe2\x82\xac",
					   "\xf0\x9f\x98\x80",
					   "\xf4\x8f\xbf\xbf"};
	struct bv_content *c = NULL;
	char json[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(bv_content_text_new(CONV, "m", SENT, bad[i],
						     strlen(bad[i]), &c),
				 BV_EFIELD);
		snprintf(json, sizeof(json),
			 "{\"v\":1,\"kind\":\"text\",\"conversation\":"
			 "\"" CONV "\",\"message_id\":\"m\",\"sent\":1,"
			 "\"text\":\"%s\"}",
			 bad[i]);
		expect_decode_err(json, BV_EJSON);
	}
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(bv_content_text_new(CONV, "m", SENT, good[i],
						     strlen(good[i]), &c),
				 0);
		bv_content_free(c);
	}
	/* An embedded NUL, raw or escaped. */
	assert_int_equal(bv_content_text_new(CONV, "m", SENT, "a\0b", 3, &c),
			 BV_EFIELD);
	expect_decode_err("{\"v\":1,\"kind\":\"text\",\"conversation\":\"" CONV
			  "\",\"message_id\":\"m\",\"sent\":1,"
			  "\"text\":\"a\\u0000b\"}",
			  BV_EJSON);
	/* A lone surrogate escape. */
	expect_decode_err("{\"v\":1,\"kind\":\"text\",\"conversation\":\"" CONV
			  "\",\"message_id\":\"m\",\"sent\":1,"
			  "\"text\":\"\\ud800\"}",
			  BV_EJSON);
}

static void
test_unknown_kind_and_version(void **state)
{
	struct bv_content *c = NULL;

	(void)state;
	assert_int_equal(
		decode_str("{\"v\":1,\"kind\":\"poll\",\"conversation\":\"" CONV
			   "\",\"message_id\":\"m\",\"sent\":5,\"q\":[1]}",
			   &c),
		0);
	assert_int_equal(c->kind, BV_CONTENT_UNKNOWN);
	assert_string_equal(c->kind_name, "poll");
	assert_string_equal(c->conversation, CONV);
	bv_content_free(c);
	/* "email" is known now (issue 7): its members are checked. */
	expect_decode_err("{\"v\":1,\"kind\":\"email\",\"message_id\":"
			  "\"m\",\"sent\":5}",
			  BV_EFIELD);
	/* "attachment" stays reserved: unknown. */
	assert_int_equal(decode_str("{\"v\":1,\"kind\":\"attachment\","
				    "\"message_id\":\"m\",\"sent\":5}",
				    &c),
			 0);
	assert_int_equal(c->kind, BV_CONTENT_UNKNOWN);
	/* And cannot be sent. */
	c->kind = BV_CONTENT_ATTACHMENT;
	{
		uint8_t *buf;
		size_t len;

		assert_int_equal(bv_content_encode(c, &buf, &len), BV_EINVAL);
		c->kind = BV_CONTENT_UNKNOWN;
		assert_int_equal(bv_content_encode(c, &buf, &len), BV_EINVAL);
	}
	bv_content_free(c);
	/* A later version of a known kind, with members we do not know. */
	assert_int_equal(decode_str("{\"v\":2,\"kind\":\"text\",\"message_id\":"
				    "\"m\",\"sent\":5,\"rich\":{}}",
				    &c),
			 0);
	assert_int_equal(c->kind, BV_CONTENT_UNKNOWN);
	assert_int_equal(c->version, 2);
	bv_content_free(c);
	/* Unknown members of a known kind are ignored. */
	assert_int_equal(
		decode_str("{\"v\":1,\"kind\":\"text\",\"conversation\":\"" CONV
			   "\",\"message_id\":\"m\",\"sent\":5,\"text\":\"hi\","
			   "\"later\":[true]}",
			   &c),
		0);
	assert_int_equal(c->kind, BV_CONTENT_TEXT);
	bv_content_free(c);
	/* Unknown reasons are still honoured. */
	assert_int_equal(
		decode_str("{\"v\":1,\"kind\":\"resend_request\","
			   "\"message_id\":\"m\",\"sent\":5,"
			   "\"reason\":\"cosmic_ray\",\"ids\":[\"a\"]}",
			   &c),
		0);
	assert_int_equal(c->kind, BV_CONTENT_RESEND_REQUEST);
	assert_int_equal(c->reason, BV_RESEND_OTHER);
	bv_content_free(c);
	/* But the common members are checked for unknown kinds too. */
	expect_decode_err("{\"v\":1,\"kind\":\"poll\",\"message_id\":\"m\"}",
			  BV_EFIELD);
	expect_decode_err("{\"v\":9,\"kind\":\"Poll\",\"message_id\":\"m\","
			  "\"sent\":5}",
			  BV_EFIELD);
}

#define T(body) "{\"v\":1,\"kind\":\"text\"," body "}"
#define R(body) "{\"v\":1,\"kind\":\"receipt\"," body "}"
#define Q(body) "{\"v\":1,\"kind\":\"resend_request\"," body "}"
#define COMMON	"\"conversation\":\"" CONV "\",\"message_id\":\"m\",\"sent\":5"

static void
test_decode_errors(void **state)
{
	static const struct {
		const char *json;
		int code;
	} cases[] = {
		{"", BV_EJSON},
		{"hello", BV_EJSON},
		{"[1,2]", BV_EJSON},
		{"\"text\"", BV_EJSON},
		{"{\"v\":1", BV_EJSON},
		{"{\"v\":1} x", BV_EJSON},
		{"{\"v\":1,\"v\":1}", BV_EJSON},
		{"{\"v\":123456789012345678901234567890}", BV_EJSON},
		/* v */
		{"{\"kind\":\"text\"," COMMON ",\"text\":\"x\"}", BV_EFIELD},
		{"{\"v\":\"1\",\"kind\":\"text\"," COMMON ",\"text\":\"x\"}",
		 BV_EFIELD},
		{"{\"v\":1.0,\"kind\":\"text\"," COMMON ",\"text\":\"x\"}",
		 BV_EFIELD},
		{"{\"v\":0,\"kind\":\"text\"," COMMON ",\"text\":\"x\"}",
		 BV_EFIELD},
		{"{\"v\":256,\"kind\":\"text\"," COMMON ",\"text\":\"x\"}",
		 BV_EFIELD},
		/* kind */
		{"{\"v\":1," COMMON ",\"text\":\"x\"}", BV_EFIELD},
		{"{\"v\":1,\"kind\":7," COMMON "}", BV_EFIELD},
		{"{\"v\":1,\"kind\":\"\"," COMMON "}", BV_EFIELD},
		{"{\"v\":1,\"kind\":\"a-b\"," COMMON "}", BV_EFIELD},
		{"{\"v\":1,\"kind\":"
		 "\"abcdefghijklmnopqrstuvwxyz0123456\"," COMMON "}",
		 BV_EFIELD},
		/* message_id */
		{T("\"conversation\":\"" CONV "\",\"sent\":5,\"text\":\"x\""),
		 BV_EFIELD},
		{T("\"conversation\":\"" CONV "\",\"message_id\":1,\"sent\":5,"
		   "\"text\":\"x\""),
		 BV_EFIELD},
		{T("\"conversation\":\"" CONV "\",\"message_id\":\"a.b\","
		   "\"sent\":5,\"text\":\"x\""),
		 BV_EFIELD},
		/* sent */
		{T("\"conversation\":\"" CONV "\",\"message_id\":\"m\","
		   "\"text\":\"x\""),
		 BV_EFIELD},
		{T("\"conversation\":\"" CONV "\",\"message_id\":\"m\","
		   "\"sent\":0,\"text\":\"x\""),
		 BV_EFIELD},
		{T("\"conversation\":\"" CONV "\",\"message_id\":\"m\","
		   "\"sent\":-5,\"text\":\"x\""),
		 BV_EFIELD},
		{T("\"conversation\":\"" CONV "\",\"message_id\":\"m\","
		   "\"sent\":253402300800000,\"text\":\"x\""),
		 BV_EFIELD},
		{T("\"conversation\":\"" CONV "\",\"message_id\":\"m\","
		   "\"sent\":\"5\",\"text\":\"x\""),
		 BV_EFIELD},
		/* conversation */
		{T("\"message_id\":\"m\",\"sent\":5,\"text\":\"x\""),
		 BV_EFIELD},
		{T("\"conversation\":null,\"message_id\":\"m\",\"sent\":5,"
		   "\"text\":\"x\""),
		 BV_EFIELD},
		{T("\"conversation\":\"3F0C8A52-1B7E-4C1E-9A53-6D2F0E8B7C41\","
		   "\"message_id\":\"m\",\"sent\":5,\"text\":\"x\""),
		 BV_EFIELD},
		{T("\"conversation\":\"3f0c8a52\",\"message_id\":\"m\","
		   "\"sent\":5,\"text\":\"x\""),
		 BV_EFIELD},
		{R("\"message_id\":\"m\",\"sent\":5,\"receipt\":\"read\","
		   "\"ids\":[\"a\"]"),
		 BV_EFIELD},
		/* text */
		{T(COMMON), BV_EFIELD},
		{T(COMMON ",\"text\":5"), BV_EFIELD},
		{T(COMMON ",\"text\":[\"x\"]"), BV_EFIELD},
		/* receipt */
		{R(COMMON ",\"ids\":[\"a\"]"), BV_EFIELD},
		{R(COMMON ",\"receipt\":\"seen\",\"ids\":[\"a\"]"), BV_EFIELD},
		{R(COMMON ",\"receipt\":1,\"ids\":[\"a\"]"), BV_EFIELD},
		{R(COMMON ",\"receipt\":\"read\""), BV_EFIELD},
		{R(COMMON ",\"receipt\":\"read\",\"ids\":\"a\""), BV_EFIELD},
		{R(COMMON ",\"receipt\":\"read\",\"ids\":[]"), BV_EFIELD},
		{R(COMMON ",\"receipt\":\"read\",\"ids\":[1]"), BV_EFIELD},
		{R(COMMON ",\"receipt\":\"read\",\"ids\":[\"\"]"), BV_EFIELD},
		{R(COMMON ",\"receipt\":\"read\",\"ids\":[\"a\",\"a\"]"),
		 BV_EFIELD},
		{R(COMMON ",\"receipt\":\"read\",\"ids\":[\"a/b\"]"),
		 BV_EFIELD},
		/* journaled: a reference, printable, only there */
		{R(COMMON ",\"receipt\":\"journaled\",\"ids\":[\"a\"]"),
		 BV_EFIELD},
		{R(COMMON ",\"receipt\":\"journaled\",\"journal\":\"\","
			  "\"ids\":[\"a\"]"),
		 BV_EFIELD},
		{R(COMMON ",\"receipt\":\"journaled\",\"journal\":7,"
			  "\"ids\":[\"a\"]"),
		 BV_EFIELD},
		{R(COMMON ",\"receipt\":\"journaled\",\"journal\":\"a\\u0007\","
			  "\"ids\":[\"a\"]"),
		 BV_EFIELD},
		{R(COMMON ",\"receipt\":\"read\",\"journal\":\"2026/1\","
			  "\"ids\":[\"a\"]"),
		 BV_EFIELD},
		/* resend_request */
		{Q(COMMON ",\"ids\":[\"a\"]"), BV_EFIELD},
		{Q(COMMON ",\"reason\":7,\"ids\":[\"a\"]"), BV_EFIELD},
		{Q(COMMON ",\"reason\":\"Bad Reason\",\"ids\":[\"a\"]"),
		 BV_EFIELD},
		{Q(COMMON ",\"reason\":\"other\""), BV_EFIELD},
		{Q(COMMON ",\"reason\":\"other\",\"ids\":[null]"), BV_EFIELD},
		{Q(COMMON ",\"reason\":\"other\",\"ids\":[\"b\",\"b\"]"),
		 BV_EFIELD},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct bv_content *c = NULL;
		int rc = decode_str(cases[i].json, &c);

		if (rc != cases[i].code)
			fail_msg("case %zu (%s): %s, want %s", i, cases[i].json,
				 bv_errname(rc), bv_errname(cases[i].code));
		assert_null(c);
	}
}

static void
test_decode_args(void **state)
{
	struct bv_content *c = NULL;
	uint8_t *big;

	(void)state;
	assert_int_equal(bv_content_decode(NULL, 0, &c), BV_EINVAL);
	assert_int_equal(bv_content_decode((const uint8_t *)"{}\x80", 3, NULL),
			 BV_EINVAL);
	/* Not padded. */
	assert_int_equal(bv_content_decode((const uint8_t *)"{}", 2, &c),
			 BV_EINVAL);
	assert_null(c);
	/* At the size limit it is parsed (and refused as JSON); over, not. */
	big = bv_calloc(1, BV_CONTENT_MAX_BYTES + 1);
	memset(big, ' ', BV_CONTENT_MAX_BYTES - 1);
	big[BV_CONTENT_MAX_BYTES - 1] = 0x80;
	assert_int_equal(bv_content_decode(big, BV_CONTENT_MAX_BYTES, &c),
			 BV_EJSON);
	assert_int_equal(bv_content_decode(big, BV_CONTENT_MAX_BYTES + 1, &c),
			 BV_EINVAL);
	bv_free(big);
	assert_null(c);
}

static void
test_constructor_args(void **state)
{
	const char *ids[] = {"a", "a"}, *nul_ids[] = {"a", NULL};
	struct bv_content *c = NULL;
	uint8_t *buf;
	size_t len;

	(void)state;
	assert_int_equal(bv_content_text_new(NULL, "m", SENT, "x", 1, &c),
			 BV_EINVAL);
	assert_int_equal(bv_content_text_new(CONV, NULL, SENT, "x", 1, &c),
			 BV_EINVAL);
	assert_int_equal(bv_content_text_new(CONV, "m", SENT, NULL, 1, &c),
			 BV_EINVAL);
	assert_int_equal(bv_content_text_new(CONV, "m", SENT, "x", 1, NULL),
			 BV_EINVAL);
	assert_int_equal(
		bv_content_text_new("not-a-uuid", "m", SENT, "x", 1, &c),
		BV_EFIELD);
	assert_int_equal(bv_content_text_new(CONV "0", "m", SENT, "x", 1, &c),
			 BV_EFIELD);
	assert_int_equal(bv_content_text_new(CONV, "m", 0, "x", 1, &c),
			 BV_EFIELD);
	assert_int_equal(bv_content_text_new(CONV, "m", BV_CONTENT_SENT_MAX + 1,
					     "x", 1, &c),
			 BV_EFIELD);
	assert_int_equal(
		bv_content_text_new(CONV, "m", BV_CONTENT_SENT_MAX, "x", 1, &c),
		0);
	bv_content_free(c);
	c = NULL;
	assert_int_equal(bv_content_receipt_new(NULL, "m", SENT,
						BV_RECEIPT_READ, ids, 1, &c),
			 BV_EINVAL);
	assert_int_equal(bv_content_receipt_new(CONV, "m", SENT,
						(enum bv_receipt_type)3, ids, 1,
						&c),
			 BV_EINVAL);
	assert_int_equal(bv_content_receipt_new(CONV, "m", SENT,
						BV_RECEIPT_READ, NULL, 1, &c),
			 BV_EINVAL);
	assert_int_equal(bv_content_receipt_new(CONV, "m", SENT,
						BV_RECEIPT_READ, nul_ids, 2,
						&c),
			 BV_EINVAL);
	assert_int_equal(bv_content_receipt_new(CONV, "m", SENT,
						BV_RECEIPT_READ, ids, 2, &c),
			 BV_EFIELD);
	assert_int_equal(bv_content_resend_new(NULL, "m", SENT,
					       (enum bv_resend_reason)4, ids, 1,
					       &c),
			 BV_EINVAL);
	assert_int_equal(bv_content_resend_new(NULL, "m", SENT, BV_RESEND_OTHER,
					       ids, 1, NULL),
			 BV_EINVAL);
	assert_int_equal(bv_content_resend_new("x", "m", SENT, BV_RESEND_OTHER,
					       ids, 1, &c),
			 BV_EFIELD);
	assert_null(c);

	/* The encoder checks a struct the caller changed afterwards. */
	assert_int_equal(bv_content_receipt_new(CONV, "m", SENT,
						BV_RECEIPT_READ, ids, 1, &c),
			 0);
	assert_int_equal(bv_content_encode(NULL, &buf, &len), BV_EINVAL);
	assert_int_equal(bv_content_encode(c, NULL, &len), BV_EINVAL);
	assert_int_equal(bv_content_encode(c, &buf, NULL), BV_EINVAL);
	c->receipt = (enum bv_receipt_type)0;
	assert_int_equal(bv_content_encode(c, &buf, &len), BV_EFIELD);
	c->receipt = BV_RECEIPT_READ;
	c->n_ids = BV_CONTENT_IDS_MAX + 1;
	assert_int_equal(bv_content_encode(c, &buf, &len), BV_ETOOMANY);
	c->n_ids = 0;
	assert_int_equal(bv_content_encode(c, &buf, &len), BV_EFIELD);
	c->n_ids = 1;
	c->conversation[0] = '\0';
	assert_int_equal(bv_content_encode(c, &buf, &len), BV_EFIELD);
	bv_content_free(c);
	bv_content_free(NULL);
}

/* Fails each allocation in turn: every failure is BV_ENOMEM, no leaks. */
static void
test_alloc_failures(void **state)
{
	const char *ids[] = {"a", "b"};
	const char *json = R(COMMON ",\"receipt\":\"read\",\"ids\":[\"a\"]");
	struct bv_content *c = NULL, *d = NULL;
	uint8_t *buf = NULL;
	size_t len;
	long n;
	int rc;

	(void)state;
	for (n = 1;; n++) {
		bv_alloc_fail_at(n);
		rc = bv_content_resend_new(NULL, "m", SENT, BV_RESEND_OTHER,
					   ids, 2, &c);
		bv_alloc_fail_at(0);
		if (rc == 0)
			break;
		assert_int_equal(rc, BV_ENOMEM);
		assert_null(c);
	}
	assert_true(n > 1);
	for (n = 1;; n++) {
		bv_alloc_fail_at(n);
		rc = bv_content_encode(c, &buf, &len);
		bv_alloc_fail_at(0);
		if (rc == 0)
			break;
		assert_int_equal(rc, BV_ENOMEM);
	}
	bv_free(buf);
	bv_content_free(c);
	assert_int_equal(
		bv_content_pad((const uint8_t *)json, strlen(json), &buf, &len),
		0);
	for (n = 1;; n++) {
		bv_alloc_fail_at(n);
		rc = bv_content_decode(buf, len, &d);
		bv_alloc_fail_at(0);
		if (rc == 0)
			break;
		assert_int_equal(rc, BV_ENOMEM);
		assert_null(d);
	}
	bv_content_free(d);
	bv_free(buf);
	for (n = 1;; n++) {
		bv_alloc_fail_at(n);
		rc = bv_content_text_new(CONV, "m", SENT, "hej", 3, &c);
		bv_alloc_fail_at(0);
		if (rc == 0)
			break;
		assert_int_equal(rc, BV_ENOMEM);
	}
	bv_content_free(c);
}

#define E(body) "{\"v\":1,\"kind\":\"email\"," body "}"
#define BLOB	"5b1e0c2a-9d4f-4e8a-b1c3-2f6d7e8a9b0c"
#define DLCAP	"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define KEYB64	"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define SHAHEX                                                                 \
	"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
/* An attachment object with one member replaced by `over`. */
#define ATT(over)                                                              \
	"{\"blob\":\"" BLOB "\",\"download\":\"" DLCAP "\",\"key\":\"" KEYB64  \
	"\",\"sha256\":\"" SHAHEX "\",\"size\":5,\"type\":\"image/png\","      \
	"\"name\":\"a.png\"" over "}"

static void
fill_att(struct bv_content_attachment *a, const char *name)
{
	size_t i;

	memset(a, 0, sizeof(*a));
	strcpy(a->blob, BLOB);
	strcpy(a->download, DLCAP);
	for (i = 0; i < sizeof(a->key); i++)
		a->key[i] = (uint8_t)i;
	strcpy(a->sha256, SHAHEX);
	a->size = 65537;
	strcpy(a->type, "application/pdf");
	strcpy(a->name, name);
}

static void
test_email_round_trip(void **state)
{
	struct bv_content_attachment att[2];
	struct bv_content_msg m;
	struct bv_content *c = NULL, *d;

	(void)state;
	fill_att(&att[0], "brev.pdf");
	fill_att(&att[1], "Bilde av rommet mitt.pdf");
	memset(&m, 0, sizeof(m));
	m.text = "Jeg vil klage på vedtaket.";
	m.text_len = strlen(m.text);
	m.subject = "Klage";
	m.subject_len = 5;
	m.thread = "first-epost";
	m.answer_by_ms = SENT + 5 * 86400000LL;
	m.att = att;
	m.n_att = 2;
	assert_int_equal(bv_content_message_new(CONV, "m1", SENT, &m, &c), 0);
	assert_int_equal(c->kind, BV_CONTENT_EMAIL);
	d = round_trip(c);
	assert_int_equal(d->kind, BV_CONTENT_EMAIL);
	assert_string_equal(d->subject, "Klage");
	assert_string_equal(d->thread, "first-epost");
	assert_int_equal(d->answer_by_ms, SENT + 5 * 86400000LL);
	assert_string_equal(d->text, m.text);
	assert_int_equal(d->n_att, 2);
	assert_memory_equal(d->att, att, sizeof(att));
	bv_content_free(d);
	bv_content_free(c);
	/* A new thread: no thread, no answer_by. */
	m.thread = NULL;
	m.answer_by_ms = 0;
	m.n_att = 0;
	assert_int_equal(bv_content_message_new(CONV, "m2", SENT, &m, &c), 0);
	d = round_trip(c);
	assert_string_equal(d->thread, "");
	assert_int_equal(d->answer_by_ms, 0);
	assert_null(d->att);
	bv_content_free(d);
	bv_content_free(c);
	/* A text with attachments only. */
	memset(&m, 0, sizeof(m));
	m.text = "";
	m.att = att;
	m.n_att = 1;
	assert_int_equal(bv_content_message_new(CONV, "m3", SENT, &m, &c), 0);
	assert_int_equal(c->kind, BV_CONTENT_TEXT);
	d = round_trip(c);
	assert_int_equal(d->kind, BV_CONTENT_TEXT);
	assert_int_equal(d->text_len, 0);
	assert_int_equal(d->n_att, 1);
	assert_string_equal(d->att[0].name, "brev.pdf");
	bv_content_free(d);
	bv_content_free(c);
}

static void
test_email_limits(void **state)
{
	struct bv_content_attachment att[BV_CONTENT_ATTACHMENTS_MAX + 1];
	char subject[BV_CONTENT_SUBJECT_MAX + 2];
	struct bv_content_msg m;
	struct bv_content *c = NULL, *d;
	size_t i;

	(void)state;
	for (i = 0; i < BV_CONTENT_ATTACHMENTS_MAX + 1; i++)
		fill_att(&att[i], "x.pdf");
	memset(subject, 's', sizeof(subject));
	subject[sizeof(subject) - 1] = '\0';
	memset(&m, 0, sizeof(m));
	m.text = "b";
	m.text_len = 1;
	m.subject = subject;
	m.subject_len = BV_CONTENT_SUBJECT_MAX;
	m.att = att;
	m.n_att = BV_CONTENT_ATTACHMENTS_MAX;
	/* The largest e-post encodes and decodes. */
	for (i = 0; i < m.n_att; i++) {
		memset(att[i].name, '"', BV_CONTENT_NAME_MAX);
		att[i].name[BV_CONTENT_NAME_MAX] = '\0';
	}
	assert_int_equal(bv_content_message_new(CONV, "m", SENT, &m, &c), 0);
	d = round_trip(c);
	assert_int_equal(d->n_att, BV_CONTENT_ATTACHMENTS_MAX);
	bv_content_free(d);
	bv_content_free(c);
	c = NULL;
	m.n_att++;
	assert_int_equal(bv_content_message_new(CONV, "m", SENT, &m, &c),
			 BV_ETOOMANY);
	m.n_att = 1;
	m.subject_len = BV_CONTENT_SUBJECT_MAX + 1;
	assert_int_equal(bv_content_message_new(CONV, "m", SENT, &m, &c),
			 BV_EFIELD);
	m.subject_len = 0;
	assert_int_equal(bv_content_message_new(CONV, "m", SENT, &m, &c),
			 BV_EFIELD);
	m.subject = "a\nb";
	m.subject_len = 3;
	assert_int_equal(bv_content_message_new(CONV, "m", SENT, &m, &c),
			 BV_EFIELD);
	m.subject = "ok";
	m.subject_len = 2;
	m.text_len = 0; /* an e-post has a body */
	assert_int_equal(bv_content_message_new(CONV, "m", SENT, &m, &c),
			 BV_EFIELD);
	m.text_len = 1;
	m.thread = "not a message id";
	assert_int_equal(bv_content_message_new(CONV, "m", SENT, &m, &c),
			 BV_EFIELD);
	m.thread = NULL;
	m.answer_by_ms = -1;
	assert_int_equal(bv_content_message_new(CONV, "m", SENT, &m, &c),
			 BV_EFIELD);
	m.answer_by_ms = 0;
	/* Bad attachments. */
	strcpy(att[0].name, "../etc/passwd");
	assert_int_equal(bv_content_message_new(CONV, "m", SENT, &m, &c),
			 BV_EFIELD);
	strcpy(att[0].name, "a\\b");
	assert_int_equal(bv_content_message_new(CONV, "m", SENT, &m, &c),
			 BV_EFIELD);
	strcpy(att[0].name, "a\033[2Jb");
	assert_int_equal(bv_content_message_new(CONV, "m", SENT, &m, &c),
			 BV_EFIELD);
	strcpy(att[0].name, "..");
	assert_int_equal(bv_content_message_new(CONV, "m", SENT, &m, &c),
			 BV_EFIELD);
	fill_att(&att[0], "ok.pdf");
	strcpy(att[0].type, "text/html");
	assert_int_equal(bv_content_message_new(CONV, "m", SENT, &m, &c),
			 BV_EFIELD);
	fill_att(&att[0], "ok.pdf");
	att[0].size = -1;
	assert_int_equal(bv_content_message_new(CONV, "m", SENT, &m, &c),
			 BV_EFIELD);
	fill_att(&att[0], "ok.pdf");
	att[0].sha256[0] = 'A';
	assert_int_equal(bv_content_message_new(CONV, "m", SENT, &m, &c),
			 BV_EFIELD);
	fill_att(&att[0], "ok.pdf");
	att[0].download[5] = '+';
	assert_int_equal(bv_content_message_new(CONV, "m", SENT, &m, &c),
			 BV_EFIELD);
	fill_att(&att[0], "ok.pdf");
	/* thread and answer_by belong to e-posts. */
	m.subject = NULL;
	m.subject_len = 0;
	m.answer_by_ms = SENT;
	assert_int_equal(bv_content_message_new(CONV, "m", SENT, &m, &c),
			 BV_EFIELD);
	m.answer_by_ms = 0;
	m.n_att = 0;
	m.text_len = 0; /* a text says something or carries something */
	assert_int_equal(bv_content_message_new(CONV, "m", SENT, &m, &c),
			 BV_EFIELD);
	assert_null(c);
}

static void
test_email_decode_errors(void **state)
{
	struct bv_content *c = NULL;

	(void)state;
	/* The minimal valid ones. */
	assert_int_equal(decode_str(E(COMMON ",\"subject\":\"S\","
					     "\"text\":\"b\""),
				    &c),
			 0);
	assert_int_equal(c->kind, BV_CONTENT_EMAIL);
	bv_content_free(c);
	assert_int_equal(decode_str(T(COMMON ",\"text\":\"\","
					     "\"attachments\":[" ATT("") "]"),
				    &c),
			 0);
	assert_int_equal(c->n_att, 1);
	assert_int_equal(c->att[0].size, 5);
	assert_int_equal(c->att[0].key[31], 31);
	bv_content_free(c);
	/* e-post members. */
	expect_decode_err(E(COMMON ",\"text\":\"b\""), BV_EFIELD);
	expect_decode_err(E(COMMON ",\"subject\":\"\",\"text\":\"b\""),
			  BV_EFIELD);
	expect_decode_err(E(COMMON ",\"subject\":\"S\",\"text\":\"\""),
			  BV_EFIELD);
	expect_decode_err(E(COMMON ",\"subject\":\"a\\u001bb\",\"text\":\"b\""),
			  BV_EFIELD);
	expect_decode_err(E(COMMON ",\"subject\":5,\"text\":\"b\""), BV_EFIELD);
	expect_decode_err(E(COMMON ",\"subject\":\"S\",\"text\":\"b\","
				   "\"thread\":\"a b\""),
			  BV_EFIELD);
	expect_decode_err(E(COMMON ",\"subject\":\"S\",\"text\":\"b\","
				   "\"thread\":null"),
			  BV_EFIELD);
	expect_decode_err(E(COMMON ",\"subject\":\"S\",\"text\":\"b\","
				   "\"answer_by\":0"),
			  BV_EFIELD);
	expect_decode_err(E(COMMON ",\"subject\":\"S\",\"text\":\"b\","
				   "\"answer_by\":\"tomorrow\""),
			  BV_EFIELD);
	expect_decode_err(E(COMMON ",\"subject\":\"S\",\"text\":\"b\","
				   "\"answer_by\":253402300800000"),
			  BV_EFIELD);
	/* A text needs text or attachments. */
	expect_decode_err(T(COMMON ",\"text\":\"\""), BV_EFIELD);
	expect_decode_err(T(COMMON ",\"text\":\"\",\"attachments\":[]"),
			  BV_EFIELD);
	expect_decode_err(T(COMMON ",\"text\":\"x\",\"attachments\":{}"),
			  BV_EFIELD);
	/* Attachment members. */
	expect_decode_err(T(COMMON ",\"text\":\"x\",\"attachments\":[5]"),
			  BV_EFIELD);
	expect_decode_err(T(COMMON ",\"text\":\"x\",\"attachments\":[{"
				   "\"blob\":\"" BLOB "\"}]"),
			  BV_EFIELD);
	expect_decode_err(
		T(COMMON
		  ",\"text\":\"x\",\"attachments\":["
		  "{\"blob\":\"" BLOB "\",\"download\":\"" DLCAP
		  "\",\"key\":\"AAEC\",\"sha256\":\"" SHAHEX
		  "\",\"size\":5,\"type\":\"image/png\",\"name\":\"a\"}]"),
		BV_EFIELD);
	expect_decode_err(
		T(COMMON
		  ",\"text\":\"x\",\"attachments\":["
		  "{\"blob\":\"" BLOB "\",\"download\":\"" DLCAP
		  "\",\"key\":\"" KEYB64 "\",\"sha256\":\"" SHAHEX
		  "\",\"size\":-1,\"type\":\"image/png\",\"name\":\"a\"}]"),
		BV_EFIELD);
	expect_decode_err(T(COMMON
			    ",\"text\":\"x\",\"attachments\":["
			    "{\"blob\":\"" BLOB "\",\"download\":\"" DLCAP
			    "\",\"key\":\"" KEYB64 "\",\"sha256\":\"" SHAHEX
			    "\",\"size\":5,\"type\":\"image/svg+xml\","
			    "\"name\":\"a\"}]"),
			  BV_EFIELD);
	expect_decode_err(T(COMMON
			    ",\"text\":\"x\",\"attachments\":["
			    "{\"blob\":\"" BLOB "\",\"download\":\"" DLCAP
			    "\",\"key\":\"" KEYB64 "\",\"sha256\":\"" SHAHEX
			    "\",\"size\":5,\"type\":\"image/png\","
			    "\"name\":\"a/b\"}]"),
			  BV_EFIELD);
	expect_decode_err(T(COMMON
			    ",\"text\":\"x\",\"attachments\":["
			    "{\"blob\":\"" BLOB "\",\"download\":\"" DLCAP
			    "\",\"key\":\"" KEYB64 "\",\"sha256\":\"" SHAHEX
			    "\",\"size\":5,\"type\":\"image/png\","
			    "\"name\":\"a\\u0007\"}]"),
			  BV_EFIELD);
	expect_decode_err(T(COMMON
			    ",\"text\":\"x\",\"attachments\":["
			    "{\"blob\":\"" BLOB "\",\"download\":\"short\""
			    ",\"key\":\"" KEYB64 "\",\"sha256\":\"" SHAHEX
			    "\",\"size\":5,\"type\":\"image/png\","
			    "\"name\":\"a\"}]"),
			  BV_EFIELD);
	expect_decode_err(T(COMMON
			    ",\"text\":\"x\",\"attachments\":["
			    "{\"blob\":\"not-a-uuid\",\"download\":\"" DLCAP
			    "\",\"key\":\"" KEYB64 "\",\"sha256\":\"" SHAHEX
			    "\",\"size\":5,\"type\":\"image/png\","
			    "\"name\":\"a\"}]"),
			  BV_EFIELD);
	expect_decode_err(
		T(COMMON
		  ",\"text\":\"x\",\"attachments\":[" ATT("") "," ATT("") "," ATT("") "," ATT("") "," ATT(
			  "") "," ATT("") "," ATT("") "," ATT("") "," ATT("") "," ATT("") "," ATT("") "]"),
		BV_ETOOMANY);
}

static void
test_email_alloc_failures(void **state)
{
	struct bv_content_attachment att;
	struct bv_content_msg m;
	struct bv_content *c = NULL, *d = NULL;
	uint8_t *buf = NULL;
	size_t len;
	long n;
	int rc;

	(void)state;
	fill_att(&att, "a.pdf");
	memset(&m, 0, sizeof(m));
	m.text = "b";
	m.text_len = 1;
	m.subject = "S";
	m.subject_len = 1;
	m.att = &att;
	m.n_att = 1;
	for (n = 1;; n++) {
		bv_alloc_fail_at(n);
		rc = bv_content_message_new(CONV, "m", SENT, &m, &c);
		bv_alloc_fail_at(0);
		if (rc == 0)
			break;
		assert_int_equal(rc, BV_ENOMEM);
		assert_null(c);
	}
	for (n = 1;; n++) {
		bv_alloc_fail_at(n);
		rc = bv_content_encode(c, &buf, &len);
		bv_alloc_fail_at(0);
		if (rc == 0)
			break;
		assert_int_equal(rc, BV_ENOMEM);
	}
	for (n = 1;; n++) {
		bv_alloc_fail_at(n);
		rc = bv_content_decode(buf, len, &d);
		bv_alloc_fail_at(0);
		if (rc == 0)
			break;
		assert_int_equal(rc, BV_ENOMEM);
		assert_null(d);
	}
	bv_content_free(d);
	bv_free(buf);
	bv_content_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text_round_trip),
		cmocka_unit_test(test_receipt_round_trip),
		cmocka_unit_test(test_journaled_round_trip),
		cmocka_unit_test(test_resend_round_trip),
		cmocka_unit_test(test_padding),
		cmocka_unit_test(test_encoded_sizes),
		cmocka_unit_test(test_text_limits),
		cmocka_unit_test(test_ids_limits),
		cmocka_unit_test(test_message_id_limits),
		cmocka_unit_test(test_invalid_utf8),
		cmocka_unit_test(test_unknown_kind_and_version),
		cmocka_unit_test(test_decode_errors),
		cmocka_unit_test(test_decode_args),
		cmocka_unit_test(test_constructor_args),
		cmocka_unit_test(test_alloc_failures),
		cmocka_unit_test(test_email_round_trip),
		cmocka_unit_test(test_email_limits),
		cmocka_unit_test(test_email_decode_errors),
		cmocka_unit_test(test_email_alloc_failures),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
