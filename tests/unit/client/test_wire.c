/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_wire.c: unit tests of client-lib/src/wire.c: every relay frame of
 * docs/protocol.md parsed, every refusal path (types, uuids, base64, key
 * lengths, counts, unknown ops, oversize), the 409/410 detail lists, and
 * every built client frame round-tripped through the relay's own parser
 * bv_request_parse(), so both sides are held to one contract.
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
#include "bv_proto.h"
#include "bv_token.h"
#include "bv_util.h"
#include "wire.h"

#define ACC  "3f0c8a52-1b7e-4c1d-9a2f-6e5d4c3b2a10"
#define ACC2 "9e1d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"
#define CONV "c0a1b2c3-d4e5-4f60-8172-839405a6b7c8"
#define CASE "5b1e0000-1111-4222-8333-444455556666"
#define TEN  "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
#define KEY  "BQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g"
#define SIG                                                                    \
	"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDE"  \
	"yMzQ1Njc4OTo7PD0+Pw=="
#define NONCE "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA="
#define BODY  "MwohY2lwaGVydGV4dC1ieXRlcw=="

static struct bv_wire_msg *
parse(const char *s)
{
	struct bv_wire_msg *m = NULL;
	int rc;

	rc = bv_wire_parse(s, strlen(s), 0, &m);
	if (rc != 0)
		fprintf(stderr, "unexpected %s for %s\n", bv_errname(rc), s);
	assert_int_equal(rc, 0);
	assert_non_null(m);
	return m;
}

static void
refuse(const char *s, int code)
{
	struct bv_wire_msg *m = (struct bv_wire_msg *)0x1;
	int rc;

	rc = bv_wire_parse(s, strlen(s), 0, &m);
	if (rc != code)
		fprintf(stderr, "expected %s, got %s for %s\n",
			bv_errname(code), bv_errname(rc), s);
	assert_int_equal(rc, code);
	assert_ptr_equal(m, (struct bv_wire_msg *)0x1); /* untouched */
}

/* A P-256 point as base64url (0x04 then 64 bytes), and a 16-byte secret. */
#define PUSHKEY                                                                \
	"BAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fICEiIyQlJicoKSorLC0uLzAx" \
	"MjM0NTY3ODk6Ozw9Pj8"
#define PUSHAUTH "AAECAwQFBgcICQoLDA0ODw"

/* notify_set frames, the relay's key in a challenge and in an answer. */
static void
test_notify_set(void **state)
{
	struct bv_wire_msg *m;
	char *f = NULL;

	(void)state;
	assert_int_equal(bv_wire_build_notify_set(3, "webpush", "se",
						  "https://p.example/a",
						  PUSHKEY, PUSHAUTH, &f),
			 0);
	assert_string_equal(
		f, "{\"id\":3,\"op\":\"notify_set\",\"channel\":\"webpush\","
		   "\"language\":\"se\",\"webpush\":{\"endpoint\":"
		   "\"https://p.example/a\",\"keys\":{\"p256dh\":\"" PUSHKEY
		   "\",\"auth\":\"" PUSHAUTH "\"}}}");
	bv_free(f);
	assert_int_equal(
		bv_wire_build_notify_set(4, "none", NULL, "", NULL, NULL, &f),
		0);
	assert_string_equal(f, "{\"id\":4,\"op\":\"notify_set\",\"channel\":"
			       "\"none\",\"webpush\":null}");
	bv_free(f);
	f = NULL;
	assert_int_equal(
		bv_wire_build_notify_set(5, NULL, NULL, NULL, NULL, NULL, &f),
		BV_EINVAL);
	assert_int_equal(
		bv_wire_build_notify_set(5, "sms", "de", NULL, NULL, NULL, &f),
		BV_EINVAL);
	assert_int_equal(bv_wire_build_notify_set(5, NULL, NULL,
						  "https://p.example/a",
						  PUSHAUTH, PUSHKEY, &f),
			 BV_EINVAL);
	assert_null(f);

	m = parse("{\"op\":\"challenge\",\"nonce\":\"" NONCE
		  "\",\"relay\":\"r\",\"webpush_key\":\"" PUSHKEY "\"}");
	assert_string_equal(m->u.challenge.webpush_key, PUSHKEY);
	bv_wire_msg_free(m);
	/* Not a point: left out, the connection goes on. */
	m = parse("{\"op\":\"challenge\",\"nonce\":\"" NONCE
		  "\",\"relay\":\"r\",\"webpush_key\":\"" PUSHAUTH "\"}");
	assert_string_equal(m->u.challenge.webpush_key, "");
	bv_wire_msg_free(m);
	m = parse("{\"id\":3,\"ok\":{\"vapid_public_key\":\"" PUSHKEY "\"}}");
	assert_true(m->u.ok.fields & BV_WIRE_OK_VAPID);
	assert_string_equal(m->u.ok.vapid_public_key, PUSHKEY);
	bv_wire_msg_free(m);
	refuse("{\"id\":3,\"ok\":{\"vapid_public_key\":\"" PUSHAUTH "\"}}",
	       BV_EFIELD);
}

static void
test_challenge(void **state)
{
	struct bv_wire_msg *m;

	(void)state;
	m = parse(
		"{\"op\": \"challenge\", \"nonce\": \"" NONCE "\", "
		"\"relay\": \"bvchat-relay/0.1\", \"limits\": "
		"{\"max_frame_bytes\": 262144, \"max_envelope_bytes\": 65536,"
		" \"max_envelopes_per_send\": 100, \"max_prekeys_per_upload\":"
		" 100, \"max_devices_per_account\": 10, \"sends_per_minute\":"
		" 600, \"deliver_window\": 64, \"future_limit\": 3}}");
	assert_int_equal(m->kind, BV_WIRE_CHALLENGE);
	assert_int_equal(m->id, -1);
	assert_string_equal(m->u.challenge.nonce, NONCE);
	assert_string_equal(m->u.challenge.relay, "bvchat-relay/0.1");
	assert_int_equal(m->u.challenge.limits.max_frame_bytes, 262144);
	assert_int_equal(m->u.challenge.limits.max_envelope_bytes, 65536);
	assert_int_equal(m->u.challenge.limits.max_envelopes_per_send, 100);
	assert_int_equal(m->u.challenge.limits.max_prekeys_per_upload, 100);
	assert_int_equal(m->u.challenge.limits.max_devices_per_account, 10);
	assert_int_equal(m->u.challenge.limits.sends_per_minute, 600);
	assert_int_equal(m->u.challenge.limits.deliver_window, 64);
	bv_wire_msg_free(m);

	/* Without limits: every limit reads -1. */
	m = parse("{\"op\":\"challenge\",\"nonce\":\"" NONCE
		  "\",\"relay\":\"r\",\"limits\":null}");
	assert_int_equal(m->u.challenge.limits.max_frame_bytes, -1);
	assert_int_equal(m->u.challenge.limits.deliver_window, -1);
	bv_wire_msg_free(m);

	refuse("{\"op\":\"challenge\",\"relay\":\"r\"}", BV_EFIELD);
	refuse("{\"op\":\"challenge\",\"nonce\":\"q83v\",\"relay\":\"r\"}",
	       BV_EFIELD);
	refuse("{\"op\":\"challenge\",\"nonce\":\"q83vEjRWeJCrze8SNFZ4kKvN7xI0"
	       "VniQq83vEjRWeJA\",\"relay\":\"r\"}",
	       BV_EBASE64);
	refuse("{\"op\":\"challenge\",\"nonce\":\"" NONCE "\",\"relay\":1}",
	       BV_EFIELD);
	refuse("{\"op\":\"challenge\",\"nonce\":\"" NONCE
	       "\",\"relay\":\"a\\nb\"}",
	       BV_EFIELD);
	refuse("{\"op\":\"challenge\",\"nonce\":\"" NONCE
	       "\",\"relay\":\"r\",\"limits\":[]}",
	       BV_EFIELD);
	refuse("{\"op\":\"challenge\",\"nonce\":\"" NONCE
	       "\",\"relay\":\"r\",\"limits\":{\"deliver_window\":-1}}",
	       BV_EFIELD);
	refuse("{\"op\":\"challenge\",\"nonce\":\"" NONCE
	       "\",\"relay\":\"r\",\"limits\":{\"max_frame_bytes\":\"1\"}}",
	       BV_EFIELD);
	/* An event with an id is not an event. */
	refuse("{\"id\":1,\"op\":\"challenge\",\"nonce\":\"" NONCE
	       "\",\"relay\":\"r\"}",
	       BV_EFIELD);
}

static void
test_events(void **state)
{
	struct bv_wire_msg *m;

	(void)state;
	m = parse("{\"op\": \"queue_empty\"}");
	assert_int_equal(m->kind, BV_WIRE_QUEUE_EMPTY);
	bv_wire_msg_free(m);
	m = parse("{\"op\": \"displaced\", \"id\": null}");
	assert_int_equal(m->kind, BV_WIRE_DISPLACED);
	bv_wire_msg_free(m);
	m = parse("{\"op\": \"prekeys_low\", \"one_time_count\": 7}");
	assert_int_equal(m->kind, BV_WIRE_PREKEYS_LOW);
	assert_int_equal(m->u.prekeys_low.one_time_count, 7);
	bv_wire_msg_free(m);

	refuse("{\"op\":\"prekeys_low\"}", BV_EFIELD);
	refuse("{\"op\":\"prekeys_low\",\"one_time_count\":-1}", BV_EFIELD);
	refuse("{\"op\":\"prekeys_low\",\"one_time_count\":7.0}", BV_EFIELD);
	refuse("{\"op\":\"prekeys_low\",\"one_time_count\":2147483648}",
	       BV_EFIELD);
	refuse("{\"op\":\"hello\"}", BV_EOP);
	refuse("{\"id\":3,\"op\":\"auth\"}", BV_EOP);
	refuse("{\"op\":7}", BV_EFIELD);
	refuse("{\"nothing\":true}", BV_EFIELD);
}

#define DELIVER_HEAD "{\"id\": 90, \"op\": \"deliver\", \"envelope\": {"
#define DELIVER_ENV                                                            \
	"\"sender\": \"" ACC2 "\", \"sender_device\": 1, "                     \
	"\"conversation\": \"" CONV "\", "                                     \
	"\"message_id\": \"01J9Z3K7W5\", \"type\": 3, "                        \
	"\"timestamp\": 1795431296123"

static void
test_deliver(void **state)
{
	struct bv_wire_msg *m;

	(void)state;
	m = parse(DELIVER_HEAD DELIVER_ENV ", \"body\": \"" BODY "\"}}");
	assert_int_equal(m->kind, BV_WIRE_DELIVER);
	assert_int_equal(m->id, 90);
	assert_int_equal(m->u.deliver.notice, 0);
	assert_string_equal(m->u.deliver.sender, ACC2);
	assert_int_equal(m->u.deliver.sender_device, 1);
	assert_string_equal(m->u.deliver.conversation, CONV);
	assert_string_equal(m->u.deliver.message_id, "01J9Z3K7W5");
	assert_int_equal(m->u.deliver.type, 3);
	assert_int_equal(m->u.deliver.timestamp, 1795431296123LL);
	assert_int_equal(m->u.deliver.body_len, 19);
	assert_memory_equal(m->u.deliver.body, "3\n!ciphertext-bytes", 19);
	bv_wire_msg_free(m);

	refuse("{\"op\":\"deliver\",\"envelope\":{" DELIVER_ENV
	       ",\"body\":\"" BODY "\"}}",
	       BV_EFIELD);
	refuse("{\"id\":0,\"op\":\"deliver\",\"envelope\":{" DELIVER_ENV
	       ",\"body\":\"" BODY "\"}}",
	       BV_EFIELD);
	refuse("{\"id\":1,\"op\":\"deliver\",\"envelope\":[]}", BV_EFIELD);
	/* The conversation the sender named is required. */
	refuse(DELIVER_HEAD "\"sender\":\"" ACC2 "\",\"sender_device\":1,"
			    "\"message_id\":\"a\",\"type\":3,"
			    "\"timestamp\":1,\"body\":\"" BODY "\"}}",
	       BV_EFIELD);
	refuse(DELIVER_HEAD "\"sender\":\"" ACC2 "\",\"sender_device\":1,"
			    "\"conversation\":\"c0a1\",\"message_id\":\"a\","
			    "\"type\":3,\"timestamp\":1,\"body\":\"" BODY
			    "\"}}",
	       BV_EFIELD);
	refuse(DELIVER_HEAD DELIVER_ENV "}}", BV_EFIELD);
	refuse(DELIVER_HEAD DELIVER_ENV ",\"body\":\"\"}}", BV_EFIELD);
	refuse(DELIVER_HEAD DELIVER_ENV ",\"body\":\"Mw\"}}", BV_EBASE64);
	refuse(DELIVER_HEAD DELIVER_ENV ",\"body\":\"M$==\"}}", BV_EBASE64);
	refuse(DELIVER_HEAD DELIVER_ENV ",\"body\":5}}", BV_EFIELD);
	refuse(DELIVER_HEAD
	       "\"sender\":\"3F0C8A52-1B7E-4C1D-9A2F-6E5D4C3B2A10\","
	       "\"sender_device\":1,\"message_id\":\"a\",\"type\":3,"
	       "\"timestamp\":1,\"body\":\"" BODY "\"}}",
	       BV_EFIELD);
	refuse(DELIVER_HEAD "\"sender\":\"" ACC2 "\",\"sender_device\":0,"
			    "\"message_id\":\"a\",\"type\":3,"
			    "\"timestamp\":1,\"body\":\"" BODY "\"}}",
	       BV_EFIELD);
	refuse(DELIVER_HEAD "\"sender\":\"" ACC2 "\",\"sender_device\":1,"
			    "\"message_id\":\"a b\",\"type\":3,"
			    "\"timestamp\":1,\"body\":\"" BODY "\"}}",
	       BV_EFIELD);
	refuse(DELIVER_HEAD "\"sender\":\"" ACC2 "\",\"sender_device\":1,"
			    "\"message_id\":\"a\\u0000b\",\"type\":3,"
			    "\"timestamp\":1,\"body\":\"" BODY "\"}}",
	       BV_EJSON); /* jansson refuses NUL */
	refuse(DELIVER_HEAD "\"sender\":\"" ACC2 "\",\"sender_device\":1,"
			    "\"message_id\":\"a\",\"type\":256,"
			    "\"timestamp\":1,\"body\":\"" BODY "\"}}",
	       BV_EFIELD);
	refuse(DELIVER_HEAD "\"sender\":\"" ACC2 "\",\"sender_device\":1,"
			    "\"message_id\":\"a\",\"type\":1,"
			    "\"timestamp\":-5,\"body\":\"" BODY "\"}}",
	       BV_EFIELD);
}

static void
test_ok_auth_send_counts(void **state)
{
	struct bv_wire_msg *m;

	(void)state;
	m = parse("{\"id\": 1, \"ok\": {\"account\": \"" ACC
		  "\", \"device\": 1, \"tenant\": \"" TEN "\"}}");
	assert_int_equal(m->kind, BV_WIRE_OK);
	assert_int_equal(m->id, 1);
	assert_int_equal(m->u.ok.fields, BV_WIRE_OK_ACCOUNT |
						 BV_WIRE_OK_DEVICE |
						 BV_WIRE_OK_TENANT);
	assert_string_equal(m->u.ok.account, ACC);
	assert_int_equal(m->u.ok.device, 1);
	assert_string_equal(m->u.ok.tenant, TEN);
	bv_wire_msg_free(m);

	m = parse("{\"id\": 5, \"ok\": {\"timestamp\": 1795431296123}}");
	assert_int_equal(m->u.ok.fields, BV_WIRE_OK_TIMESTAMP);
	assert_int_equal(m->u.ok.timestamp, 1795431296123LL);
	bv_wire_msg_free(m);

	m = parse("{\"id\": 4, \"ok\": {\"one_time_count\": 57}}");
	assert_int_equal(m->u.ok.fields, BV_WIRE_OK_ONE_TIME_COUNT);
	assert_int_equal(m->u.ok.one_time_count, 57);
	bv_wire_msg_free(m);

	m = parse("{\"id\": 6, \"ok\": {}, \"extra\": [1,2]}");
	assert_int_equal(m->u.ok.fields, 0);
	bv_wire_msg_free(m);

	/* null counts as absent. */
	m = parse("{\"id\":6,\"ok\":{\"account\":null,\"devices\":null,"
		  "\"timestamp\":null}}");
	assert_int_equal(m->u.ok.fields, 0);
	bv_wire_msg_free(m);

	refuse("{\"ok\":{}}", BV_EFIELD);
	refuse("{\"id\":null,\"ok\":{}}", BV_EFIELD);
	refuse("{\"id\":2147483648,\"ok\":{}}", BV_EFIELD);
	refuse("{\"id\":\"1\",\"ok\":{}}", BV_EFIELD);
	refuse("{\"id\":1,\"ok\":[]}", BV_EFIELD);
	refuse("{\"id\":1,\"ok\":{},\"error\":{}}", BV_EFIELD);
	refuse("{\"id\":1,\"ok\":{\"account\":\"3f0c\"}}", BV_EFIELD);
	refuse("{\"id\":1,\"ok\":{\"tenant\":\"" ACC "x\"}}", BV_EFIELD);
	refuse("{\"id\":1,\"ok\":{\"device\":0}}", BV_EFIELD);
	refuse("{\"id\":1,\"ok\":{\"timestamp\":\"now\"}}", BV_EFIELD);
	refuse("{\"id\":1,\"ok\":{\"one_time_count\":true}}", BV_EFIELD);
}

#define BUNDLE(dev, otk)                                                       \
	"{\"device\": " #dev ", \"registration_id\": 4711, "                   \
	"\"identity_key\": \"" KEY "\", \"signed_prekey\": {\"id\": 1, "       \
	"\"key\": \"" KEY "\", \"signature\": \"" SIG "\"}, "                  \
	"\"one_time_prekey\": " otk "}"

static void
test_ok_keys_get(void **state)
{
	struct bv_wire_msg *m;
	uint8_t key[BV_KEY_LEN];
	size_t i;

	(void)state;
	key[0] = 5;
	for (i = 1; i < sizeof(key); i++)
		key[i] = (uint8_t)i;
	m = parse("{\"id\": 3, \"ok\": {\"account\": \"" ACC
		  "\", \"devices\": [" BUNDLE(
			  2, "{\"id\": 17, \"key\": \"" KEY
			     "\"}") ", " BUNDLE(3, "null") "]}}");
	assert_int_equal(m->u.ok.fields,
			 BV_WIRE_OK_ACCOUNT | BV_WIRE_OK_DEVICES);
	assert_int_equal(m->u.ok.n_bundles, 2);
	assert_int_equal(m->u.ok.bundles[0].device, 2);
	assert_int_equal(m->u.ok.bundles[0].registration_id, 4711);
	assert_memory_equal(m->u.ok.bundles[0].identity_key, key, sizeof(key));
	assert_int_equal(m->u.ok.bundles[0].signed_prekey.id, 1);
	assert_memory_equal(m->u.ok.bundles[0].signed_prekey.key, key,
			    sizeof(key));
	assert_int_equal(m->u.ok.bundles[0].signed_prekey_signature[63], 63);
	assert_int_equal(m->u.ok.bundles[0].has_one_time_prekey, 1);
	assert_int_equal(m->u.ok.bundles[0].one_time_prekey.id, 17);
	assert_int_equal(m->u.ok.bundles[1].device, 3);
	assert_int_equal(m->u.ok.bundles[1].has_one_time_prekey, 0);
	bv_wire_msg_free(m);

	m = parse("{\"id\":3,\"ok\":{\"account\":\"" ACC "\",\"devices\":[]}}");
	assert_int_equal(m->u.ok.n_bundles, 0);
	assert_null(m->u.ok.bundles);
	bv_wire_msg_free(m);

	/* 32 bytes where 33 belong, and a 65-byte signature. */
	refuse("{\"id\":3,\"ok\":{\"devices\":[{\"device\":2,"
	       "\"registration_id\":1,\"identity_key\":\"" SIG "\"}]}}",
	       BV_EFIELD);
	refuse("{\"id\":3,\"ok\":{\"devices\":[{\"device\":2,"
	       "\"registration_id\":1,\"identity_key\":"
	       "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}]}}",
	       BV_EFIELD);
	refuse("{\"id\":3,\"ok\":{\"devices\":[" BUNDLE(
		       2, "{\"id\":1,\"key\":\"" KEY "=\"}") "]}}",
	       BV_EBASE64);
	refuse("{\"id\":3,\"ok\":{\"devices\":[" BUNDLE(2, "{\"id\":1}") "]}}",
	       BV_EFIELD);
	refuse("{\"id\":3,\"ok\":{\"devices\":[" BUNDLE(2, "[]") "]}}",
	       BV_EFIELD);
	refuse("{\"id\":3,\"ok\":{\"devices\":[" BUNDLE(0, "null") "]}}",
	       BV_EFIELD);
	refuse("{\"id\":3,\"ok\":{\"devices\":[1]}}", BV_EFIELD);
	refuse("{\"id\":3,\"ok\":{\"devices\":{}}}", BV_EFIELD);
	refuse("{\"id\":3,\"ok\":{\"devices\":[{\"device\":2,"
	       "\"registration_id\":1,\"identity_key\":\"" KEY "\"}]}}",
	       BV_EFIELD);
}

static void
test_huge_arrays(void **state)
{
	size_t n = 1001, i, len;
	char *s, *p;

	(void)state;
	/* 1001 bundles: refused on the count, before any is read. */
	s = malloc(64 + n * 4);
	assert_non_null(s);
	p = s + sprintf(s, "{\"id\":3,\"ok\":{\"devices\":[");
	for (i = 0; i < n; i++)
		p += sprintf(p, "%s{}", i ? "," : "");
	strcpy(p, "]}}");
	refuse(s, BV_EFIELD);
	free(s);
	/* 1001 devices in one 409 entry. */
	s = malloc(256 + n * 3);
	assert_non_null(s);
	p = s + sprintf(s,
			"{\"id\":5,\"error\":{\"code\":\"BV_EDEVICES\","
			"\"errno\":-31,\"retryable\":false,\"message\":\"m\","
			"\"missing\":[{\"account\":\"" ACC "\",\"devices\":[");
	for (i = 0; i < n; i++)
		p += sprintf(p, "%s1", i ? "," : "");
	strcpy(p, "]}]}}");
	refuse(s, BV_EFIELD);
	free(s);

	/* Oversize: refused before parsing, whatever the bytes. */
	len = 262145;
	s = malloc(len);
	assert_non_null(s);
	memset(s, ' ', len);
	{
		struct bv_wire_msg *m = NULL;

		assert_int_equal(bv_wire_parse(s, len, 0, &m), BV_EFRAME);
		assert_int_equal(
			bv_wire_parse("{\"op\":\"queue_empty\"}", 20, 10, &m),
			BV_EFRAME);
		assert_null(m);
		assert_int_equal(bv_wire_parse(NULL, 0, 0, &m), BV_EINVAL);
		assert_int_equal(bv_wire_parse("{}", 2, 0, NULL), BV_EINVAL);
	}
	free(s);
}

static void
test_not_json(void **state)
{
	(void)state;
	refuse("", BV_EJSON);
	refuse("not json", BV_EJSON);
	refuse("[1,2]", BV_EJSON);
	refuse("\"op\"", BV_EJSON);
	refuse("{\"op\":\"queue_empty\"", BV_EJSON);
	refuse("{\"op\":\"queue_empty\",\"op\":\"displaced\"}", BV_EJSON);
}

static void
test_error_plain(void **state)
{
	struct bv_wire_msg *m;

	(void)state;
	m = parse("{\"id\": null, \"error\": {\"code\": \"BV_EJSON\", "
		  "\"errno\": -10, \"retryable\": false, "
		  "\"message\": \"frame is not a JSON object\"}}");
	assert_int_equal(m->kind, BV_WIRE_ERROR);
	assert_int_equal(m->id, -1);
	assert_int_equal(m->u.error.code, BV_EJSON);
	assert_string_equal(m->u.error.name, "BV_EJSON");
	assert_int_equal(m->u.error.retryable, 0);
	assert_string_equal(m->u.error.field, "");
	assert_int_equal(m->u.error.retry_after_ms, -1);
	bv_wire_msg_free(m);

	m = parse("{\"id\":2,\"error\":{\"code\":\"BV_EFIELD\",\"errno\":-11,"
		  "\"retryable\":false,\"message\":\"m\","
		  "\"field\":\"envelopes[3].body\"}}");
	assert_string_equal(m->u.error.field, "envelopes[3].body");
	bv_wire_msg_free(m);

	m = parse("{\"id\":5,\"error\":{\"code\":\"BV_ERATE\",\"errno\":-34,"
		  "\"retryable\":true,\"message\":\"rate limit exceeded\","
		  "\"retry_after_ms\":1500}}");
	assert_int_equal(m->u.error.code, BV_ERATE);
	assert_int_equal(m->u.error.retryable, 1);
	assert_int_equal(m->u.error.retry_after_ms, 1500);
	bv_wire_msg_free(m);

	m = parse(
		"{\"id\":5,\"error\":{\"code\":\"BV_EAUTH\",\"errno\":-21,"
		"\"retryable\":false,\"message\":\"p\u00e5logging feilet\"}}");
	assert_string_equal(m->u.error.message, "p\xc3\xa5logging feilet");
	bv_wire_msg_free(m);
	refuse("{\"id\":5,\"error\":{\"code\":\"BV_EAUTH\",\"errno\":-21,"
	       "\"retryable\":false,\"message\":\"a\\u001b[2Jb\"}}",
	       BV_EFIELD);

	/* A code this client does not know yet is passed on. */
	m = parse(
		"{\"id\":5,\"error\":{\"code\":\"BV_ENEWTHING\",\"errno\":-50,"
		"\"retryable\":false,\"message\":\"m\"}}");
	assert_int_equal(m->u.error.code, -50);
	bv_wire_msg_free(m);

	refuse("{\"error\":{\"code\":\"BV_EJSON\",\"errno\":-10,"
	       "\"retryable\":false,\"message\":\"m\"}}",
	       BV_EFIELD);
	refuse("{\"id\":1,\"error\":null}", BV_EFIELD);
	refuse("{\"id\":1,\"error\":{\"errno\":-10,\"retryable\":false,"
	       "\"message\":\"m\"}}",
	       BV_EFIELD);
	refuse("{\"id\":1,\"error\":{\"code\":\"bv ejson\",\"errno\":-10,"
	       "\"retryable\":false,\"message\":\"m\"}}",
	       BV_EFIELD);
	refuse("{\"id\":1,\"error\":{\"code\":\"BV_EJSON\",\"errno\":-11,"
	       "\"retryable\":false,\"message\":\"m\"}}",
	       BV_EFIELD);
	refuse("{\"id\":1,\"error\":{\"code\":\"BV_EJSON\",\"errno\":10,"
	       "\"retryable\":false,\"message\":\"m\"}}",
	       BV_EFIELD);
	refuse("{\"id\":1,\"error\":{\"code\":\"BV_EJSON\",\"errno\":-10,"
	       "\"retryable\":0,\"message\":\"m\"}}",
	       BV_EFIELD);
	refuse("{\"id\":1,\"error\":{\"code\":\"BV_EJSON\",\"errno\":-10,"
	       "\"retryable\":false}}",
	       BV_EFIELD);
	refuse("{\"id\":1,\"error\":{\"code\":\"BV_ERATE\",\"errno\":-34,"
	       "\"retryable\":true,\"message\":\"m\",\"retry_after_ms\":-1}}",
	       BV_EFIELD);
	refuse("{\"id\":1,\"error\":{\"code\":\"BV_EFIELD\",\"errno\":-11,"
	       "\"retryable\":false,\"message\":\"m\",\"field\":7}}",
	       BV_EFIELD);
}

static void
test_error_409_410(void **state)
{
	struct bv_wire_msg *m;

	(void)state;
	m = parse("{\"id\": 5, \"error\": {\"code\": \"BV_EDEVICES\", "
		  "\"errno\": -31, \"retryable\": false, "
		  "\"message\": \"envelopes do not match the recipient "
		  "devices\", \"missing\": [{\"account\": \"" ACC
		  "\", \"devices\": [3]}], \"extra\": [{\"account\": \"" ACC
		  "\", \"devices\": [9, 10]}, {\"account\": \"" ACC2
		  "\", \"devices\": [1]}]}}");
	assert_int_equal(m->u.error.code, BV_EDEVICES);
	assert_int_equal(m->u.error.missing.n, 1);
	assert_string_equal(m->u.error.missing.items[0].account, ACC);
	assert_int_equal(m->u.error.missing.items[0].n_devices, 1);
	assert_int_equal(m->u.error.missing.items[0].devices[0], 3);
	assert_int_equal(m->u.error.extra.n, 2);
	assert_int_equal(m->u.error.extra.items[0].n_devices, 2);
	assert_int_equal(m->u.error.extra.items[0].devices[1], 10);
	assert_string_equal(m->u.error.extra.items[1].account, ACC2);
	assert_int_equal(m->u.error.stale.n, 0);
	bv_wire_msg_free(m);

	m = parse("{\"id\": 5, \"error\": {\"code\": \"BV_ESTALE\", "
		  "\"errno\": -32, \"retryable\": false, "
		  "\"message\": \"recipient devices have a new registration "
		  "id\", \"stale\": [{\"account\": \"" ACC
		  "\", \"devices\": [1]}]}}");
	assert_int_equal(m->u.error.code, BV_ESTALE);
	assert_int_equal(m->u.error.stale.n, 1);
	assert_int_equal(m->u.error.stale.items[0].devices[0], 1);
	assert_int_equal(m->u.error.missing.n, 0);
	bv_wire_msg_free(m);

#define E409                                                                   \
	"{\"id\":5,\"error\":{\"code\":\"BV_EDEVICES\",\"errno\":-31,"         \
	"\"retryable\":false,\"message\":\"m\",\"missing\":"
	refuse(E409 "{}}}", BV_EFIELD);
	refuse(E409 "[7]}}", BV_EFIELD);
	refuse(E409 "[{\"devices\":[1]}]}}", BV_EFIELD);
	refuse(E409 "[{\"account\":\"nope\",\"devices\":[1]}]}}", BV_EFIELD);
	refuse(E409 "[{\"account\":\"" ACC "\"}]}}", BV_EFIELD);
	refuse(E409 "[{\"account\":\"" ACC "\",\"devices\":[]}]}}", BV_EFIELD);
	refuse(E409 "[{\"account\":\"" ACC "\",\"devices\":[0]}]}}", BV_EFIELD);
	refuse(E409 "[{\"account\":\"" ACC "\",\"devices\":[\"1\"]}]}}",
	       BV_EFIELD);
	refuse(E409 "[{\"account\":\"" ACC "\",\"devices\":[1]},5]}}",
	       BV_EFIELD);
#undef E409
}

/* ---- Built frames through the relay's parser -------------------------- */

static struct bv_request *
relay_parse(char *frame)
{
	struct bv_request *r = NULL;
	struct bv_parse_error err;
	int rc;

	assert_non_null(frame);
	rc = bv_request_parse(frame, strlen(frame), NULL, &r, &err);
	if (rc != 0)
		fprintf(stderr, "relay refused %s: %s at %s\n", frame,
			bv_errname(rc), err.field);
	assert_int_equal(rc, 0);
	bv_free(frame);
	return r;
}

static void
fill(uint8_t *buf, size_t n, uint8_t seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		buf[i] = (uint8_t)(seed + i * 13);
}

static void
test_build_auth_enroll(void **state)
{
	uint8_t sig[BV_SIG_LEN], ik[BV_KEY_LEN], ak[BV_AUTH_KEY_LEN];
	struct bv_request *r;
	char *s = NULL;

	(void)state;
	fill(sig, sizeof(sig), 1);
	fill(ik, sizeof(ik), 5);
	fill(ak, sizeof(ak), 9);
	assert_int_equal(bv_wire_build_auth(1, ACC, 1, sig, &s), 0);
	r = relay_parse(s);
	assert_int_equal(r->op, BV_OP_AUTH);
	assert_int_equal(r->id, 1);
	assert_string_equal(r->u.auth.account, ACC);
	assert_int_equal(r->u.auth.device, 1);
	assert_memory_equal(r->u.auth.signature, sig, sizeof(sig));
	bv_request_free(r);

	assert_int_equal(bv_wire_build_enroll(2147483647, "bvt1.abc.def", 4711,
					      ik, ak, sig, 3, &s),
			 0);
	r = relay_parse(s);
	assert_int_equal(r->op, BV_OP_ENROLL);
	assert_int_equal(r->id, 2147483647);
	assert_string_equal(r->u.enroll.token, "bvt1.abc.def");
	assert_int_equal(r->u.enroll.registration_id, 4711);
	assert_memory_equal(r->u.enroll.identity_key, ik, sizeof(ik));
	assert_memory_equal(r->u.enroll.auth_key, ak, sizeof(ak));
	assert_memory_equal(r->u.enroll.signature, sig, sizeof(sig));
	assert_int_equal(r->u.enroll.replaces, 3);
	bv_request_free(r);

	assert_int_equal(bv_wire_build_enroll(7, "t", 1, ik, ak, sig, 0, &s),
			 0);
	assert_null(strstr(s, "replaces"));
	r = relay_parse(s);
	assert_int_equal(r->u.enroll.replaces, 0);
	bv_request_free(r);

	s = NULL;
	assert_int_equal(bv_wire_build_auth(0, ACC, 1, sig, &s), BV_EINVAL);
	assert_int_equal(bv_wire_build_auth(2147483648LL, ACC, 1, sig, &s),
			 BV_EINVAL);
	assert_int_equal(bv_wire_build_auth(1, "3f0c", 1, sig, &s), BV_EINVAL);
	assert_int_equal(bv_wire_build_auth(1, ACC, 0, sig, &s), BV_EINVAL);
	assert_int_equal(bv_wire_build_auth(1, ACC, 1, NULL, &s), BV_EINVAL);
	assert_int_equal(bv_wire_build_enroll(1, "", 1, ik, ak, sig, 0, &s),
			 BV_EINVAL);
	assert_int_equal(bv_wire_build_enroll(1, "t", 0, ik, ak, sig, 0, &s),
			 BV_EINVAL);
	assert_int_equal(
		bv_wire_build_enroll(1, "bvt1.a b", 1, ik, ak, sig, 0, &s),
		BV_EINVAL);
	{
		char big[BV_TOKEN_MAX + 2];

		memset(big, 'a', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		assert_int_equal(
			bv_wire_build_enroll(1, big, 1, ik, ak, sig, 0, &s),
			BV_EINVAL);
		big[BV_TOKEN_MAX] = '\0';
		assert_int_equal(
			bv_wire_build_enroll(1, big, 1, ik, ak, sig, 0, &s), 0);
		r = relay_parse(s);
		assert_int_equal(strlen(r->u.enroll.token), BV_TOKEN_MAX);
		bv_request_free(r);
		s = NULL;
	}
	assert_null(s);
}

static void
test_build_keys(void **state)
{
	struct bv_prekey spk, otk[3];
	uint8_t sig[BV_SIG_LEN];
	struct bv_request *r;
	char *s = NULL;
	size_t i;

	(void)state;
	spk.id = 1;
	fill(spk.key, sizeof(spk.key), 3);
	fill(sig, sizeof(sig), 4);
	for (i = 0; i < 3; i++) {
		otk[i].id = (uint32_t)(i + 100);
		fill(otk[i].key, sizeof(otk[i].key), (uint8_t)i);
	}
	assert_int_equal(bv_wire_build_keys_put(2, &spk, sig, otk, 3, &s), 0);
	r = relay_parse(s);
	assert_int_equal(r->op, BV_OP_KEYS_PUT);
	assert_int_equal(r->u.keys_put.has_signed_prekey, 1);
	assert_int_equal(r->u.keys_put.signed_prekey.id, 1);
	assert_memory_equal(r->u.keys_put.signed_prekey.key, spk.key,
			    BV_KEY_LEN);
	assert_memory_equal(r->u.keys_put.signed_prekey_signature, sig,
			    BV_SIG_LEN);
	assert_int_equal(r->u.keys_put.n_one_time, 3);
	assert_int_equal(r->u.keys_put.one_time[2].id, 102);
	assert_memory_equal(r->u.keys_put.one_time[2].key, otk[2].key,
			    BV_KEY_LEN);
	bv_request_free(r);

	assert_int_equal(bv_wire_build_keys_put(2, NULL, NULL, otk, 1, &s), 0);
	r = relay_parse(s);
	assert_int_equal(r->u.keys_put.has_signed_prekey, 0);
	assert_int_equal(r->u.keys_put.n_one_time, 1);
	bv_request_free(r);

	assert_int_equal(bv_wire_build_keys_put(2, &spk, sig, NULL, 0, &s), 0);
	r = relay_parse(s);
	assert_int_equal(r->u.keys_put.has_signed_prekey, 1);
	assert_int_equal(r->u.keys_put.n_one_time, 0);
	bv_request_free(r);

	assert_int_equal(bv_wire_build_keys_get(3, ACC, 2, &s), 0);
	r = relay_parse(s);
	assert_int_equal(r->op, BV_OP_KEYS_GET);
	assert_string_equal(r->u.keys_get.account, ACC);
	assert_int_equal(r->u.keys_get.device, 2);
	bv_request_free(r);
	assert_int_equal(bv_wire_build_keys_get(3, ACC, 0, &s), 0);
	r = relay_parse(s);
	assert_int_equal(r->u.keys_get.device, 0);
	bv_request_free(r);

	assert_int_equal(bv_wire_build_keys_count(4, &s), 0);
	assert_string_equal(s, "{\"id\":4,\"op\":\"keys_count\"}");
	r = relay_parse(s);
	assert_int_equal(r->op, BV_OP_KEYS_COUNT);
	bv_request_free(r);

	s = NULL;
	assert_int_equal(bv_wire_build_keys_put(2, &spk, NULL, NULL, 0, &s),
			 BV_EINVAL);
	assert_int_equal(bv_wire_build_keys_put(2, NULL, NULL, NULL, 2, &s),
			 BV_EINVAL);
	otk[1].id = 0x80000000u;
	assert_int_equal(bv_wire_build_keys_put(2, NULL, NULL, otk, 3, &s),
			 BV_EINVAL);
	assert_int_equal(bv_wire_build_keys_get(3, "x", 0, &s), BV_EINVAL);
	assert_int_equal(bv_wire_build_keys_count(-1, &s), BV_EINVAL);
	assert_null(s);
}

static void
test_build_send_ping_ack(void **state)
{
	static const uint8_t b1[] = "3\n!ciphertext-bytes";
	uint8_t b2[300];
	struct bv_wire_envelope envs[2] = {
		{ACC, 1, 4711, 3, b1, sizeof(b1) - 1},
		{ACC2, 2, 911, 1, b2, sizeof(b2)},
	};
	struct bv_request *r;
	char *s = NULL;

	(void)state;
	fill(b2, sizeof(b2), 77);
	assert_int_equal(
		bv_wire_build_send(5, CONV, 0, "01J9Z3K7W5", envs, 2, &s), 0);
	assert_non_null(strstr(s, "\"conversation\":\"" CONV "\""));
	assert_null(strstr(s, "partial"));
	r = relay_parse(s);
	assert_int_equal(r->op, BV_OP_SEND);
	assert_string_equal(r->u.send.conversation, CONV);
	assert_int_equal(r->u.send.partial, 0);
	assert_string_equal(r->u.send.message_id, "01J9Z3K7W5");
	assert_int_equal(r->u.send.n_envelopes, 2);
	assert_string_equal(r->u.send.envelopes[0].account, ACC);
	assert_int_equal(r->u.send.envelopes[0].device, 1);
	assert_int_equal(r->u.send.envelopes[0].registration_id, 4711);
	assert_int_equal(r->u.send.envelopes[0].type, 3);
	assert_int_equal(r->u.send.envelopes[0].body_len, sizeof(b1) - 1);
	assert_memory_equal(r->u.send.envelopes[0].body, b1, sizeof(b1) - 1);
	assert_int_equal(r->u.send.envelopes[1].body_len, sizeof(b2));
	assert_memory_equal(r->u.send.envelopes[1].body, b2, sizeof(b2));
	bv_request_free(r);
	assert_int_equal(bv_wire_build_send(5, CONV, 1, "m", envs, 1, &s), 0);
	assert_non_null(strstr(s, "\"partial\":true"));
	r = relay_parse(s);
	assert_int_equal(r->op, BV_OP_SEND);
	assert_int_equal(r->u.send.partial, 1);
	bv_request_free(r);

	assert_int_equal(bv_wire_build_ping(6, &s), 0);
	assert_string_equal(s, "{\"id\":6,\"op\":\"ping\"}");
	r = relay_parse(s);
	assert_int_equal(r->op, BV_OP_PING);
	bv_request_free(r);

	assert_int_equal(bv_wire_build_ack(90, &s), 0);
	assert_string_equal(s, "{\"id\":90,\"ok\":{}}");
	r = relay_parse(s);
	assert_int_equal(r->op, BV_OP_RESPONSE);
	assert_int_equal(r->id, 90);
	assert_int_equal(r->u.response.is_error, 0);
	bv_request_free(r);

	assert_int_equal(bv_wire_build_error(91, BV_EINTERNAL, &s), 0);
	r = relay_parse(s);
	assert_int_equal(r->op, BV_OP_RESPONSE);
	assert_int_equal(r->id, 91);
	assert_int_equal(r->u.response.is_error, 1);
	bv_request_free(r);

	s = NULL;
	assert_int_equal(bv_wire_build_send(5, CONV, 0, "bad id", envs, 2, &s),
			 BV_EINVAL);
	assert_int_equal(bv_wire_build_send(5, NULL, 0, "m", envs, 2, &s),
			 BV_EINVAL);
	assert_int_equal(bv_wire_build_send(5, "c0a1", 0, "m", envs, 2, &s),
			 BV_EINVAL);
	assert_int_equal(bv_wire_build_send(5, CONV, 0, "m", envs, 0, &s),
			 BV_EINVAL);
	envs[1].body_len = 0;
	assert_int_equal(bv_wire_build_send(5, CONV, 0, "m", envs, 2, &s),
			 BV_EINVAL);
	envs[1].body_len = 1;
	envs[1].registration_id = 0;
	assert_int_equal(bv_wire_build_send(5, CONV, 0, "m", envs, 2, &s),
			 BV_EINVAL);
	assert_int_equal(bv_wire_build_ack(0, &s), BV_EINVAL);
	assert_int_equal(bv_wire_build_error(1, 0, &s), BV_EINVAL);
	assert_null(s);
}

/* ---- Case conversations -------------------------------------------- */

#define PERSON(acc, role, name)                                                \
	"{\"account\":\"" acc "\",\"role\":\"" role "\",\"name\":" name "}"
#define CASES_OK                                                                        \
	"{\"id\":7,\"ok\":{\"more\":true,\"cases\":[{\"case\":\"" CASE                  \
	"\",\"case_number\":\"2026/0417\",\"municipality\":\"Demo kommune\","           \
	"\"role\":\"child\",\"people\":[" PERSON(ACC, "child", "\"Elisa\"") "," PERSON( \
		ACC2, "archive",                                                        \
		"null") "],\"conversations\":[{"                                        \
			"\"conversation\":\"" CONV                                      \
			"\",\"kind\":\"team\",\"closed\":false,"                        \
			"\"created\":1795431296123,"                                    \
			"\"members\":[" PERSON(                                         \
				ACC, "child",                                           \
				"\"Elisa\"") "," PERSON(ACC2, "archive",                \
							"null") "]}]}]}}"
#define NOTICE_FRAME                                                           \
	"{\"id\":91,\"op\":\"deliver\",\"notice\":{\"kind\":\"out_of_hours\"," \
	"\"conversation\":\"" CONV "\",\"message_id\":\"oh-1795431296123\","   \
	"\"timestamp\":1795431296123,\"municipality\":\"Demo kommune\","       \
	"\"phone\":\"+47 800 00 000\",\"emergency_phone\":\"116 111\"}}"

static void
check_case(const struct bv_wire_case *c)
{
	assert_string_equal(c->case_id, CASE);
	assert_string_equal(c->case_number, "2026/0417");
	assert_string_equal(c->municipality, "Demo kommune");
	assert_string_equal(c->role, "child");
	assert_int_equal(c->n_people, 2);
	assert_string_equal(c->people[0].account, ACC);
	assert_string_equal(c->people[0].name, "Elisa");
	assert_string_equal(c->people[1].role, "archive");
	assert_null(c->people[1].name);
	assert_int_equal(c->n_conversations, 1);
	assert_string_equal(c->conversations[0].conversation, CONV);
	assert_string_equal(c->conversations[0].kind, "team");
	assert_int_equal(c->conversations[0].closed, 0);
	assert_int_equal(c->conversations[0].created, 1795431296123LL);
	assert_int_equal(c->conversations[0].n_members, 2);
	assert_string_equal(c->conversations[0].members[1].account, ACC2);
}

static void
test_cases(void **state)
{
	struct bv_wire_case c2;
	struct bv_wire_msg *m;
	char *dump = NULL, *dump2 = NULL;

	(void)state;
	m = parse(CASES_OK);
	assert_int_equal(m->kind, BV_WIRE_OK);
	assert_true(m->u.ok.fields & BV_WIRE_OK_CASES);
	assert_int_equal(m->u.ok.more, 1);
	assert_int_equal(m->u.ok.n_cases, 1);
	check_case(&m->u.ok.cases[0]);

	/* What the store keeps reads back the same, and dumps the same. */
	assert_int_equal(bv_wire_case_dump(&m->u.ok.cases[0], &dump), 0);
	assert_int_equal(bv_wire_case_parse(dump, strlen(dump), &c2), 0);
	check_case(&c2);
	assert_int_equal(bv_wire_case_dump(&c2, &dump2), 0);
	assert_string_equal(dump, dump2);
	bv_wire_case_cleanup(&c2);
	assert_int_equal(bv_wire_case_parse("[]", 2, &c2), BV_EFIELD);
	bv_wire_case_cleanup(&c2);
	assert_int_equal(bv_wire_case_parse("{", 1, &c2), BV_EJSON);
	bv_wire_case_cleanup(&c2);
	bv_free(dump);
	bv_free(dump2);
	bv_wire_msg_free(m);

	m = parse("{\"id\":7,\"ok\":{\"more\":false,\"cases\":[]}}");
	assert_true(m->u.ok.fields & BV_WIRE_OK_CASES);
	assert_int_equal(m->u.ok.n_cases, 0);
	assert_int_equal(m->u.ok.more, 0);
	bv_wire_msg_free(m);

	m = parse("{\"id\":8,\"ok\":{\"conversation\":\"" CONV "\"}}");
	assert_true(m->u.ok.fields & BV_WIRE_OK_CONVERSATION);
	assert_string_equal(m->u.ok.conversation, CONV);
	bv_wire_msg_free(m);

	/* Hostile views: bad words, control characters, wrong types. */
	refuse("{\"id\":7,\"ok\":{\"cases\":{}}}", BV_EFIELD);
	refuse("{\"id\":7,\"ok\":{\"cases\":[{\"case\":\"" CASE
	       "\",\"case_number\":\"1\",\"role\":\"Child\"}]}}",
	       BV_EFIELD);
	refuse("{\"id\":7,\"ok\":{\"cases\":[{\"case\":\"" CASE
	       "\",\"case_number\":\"1\\n2\",\"role\":\"child\"}]}}",
	       BV_EFIELD);
	refuse("{\"id\":7,\"ok\":{\"cases\":[{\"case\":\"" CASE
	       "\",\"case_number\":\"1\",\"role\":\"child\",\"people\":["
	       "{\"account\":\"" ACC "\",\"role\":\"child\",\"name\":"
	       "\"E\\u001b[2J\"}]}]}}",
	       BV_EFIELD);
	refuse("{\"id\":7,\"ok\":{\"more\":1,\"cases\":[]}}", BV_EFIELD);
	refuse("{\"id\":7,\"ok\":{\"cases\":[{\"case\":\"" CASE
	       "\",\"case_number\":\"1\",\"role\":\"child\",\"conversations\":"
	       "[{\"conversation\":\"" CONV "\",\"kind\":\"team\",\"closed\":"
	       "\"no\"}]}]}}",
	       BV_EFIELD);
	refuse("{\"id\":8,\"ok\":{\"conversation\":\"x\"}}", BV_EFIELD);
}

static void
test_notice_and_event(void **state)
{
	struct bv_wire_msg *m, *m2 = NULL;
	char *dump = NULL;

	(void)state;
	m = parse(NOTICE_FRAME);
	assert_int_equal(m->kind, BV_WIRE_DELIVER);
	assert_int_equal(m->id, 91);
	assert_int_equal(m->u.deliver.notice, 1);
	assert_string_equal(m->u.deliver.notice_kind, "out_of_hours");
	assert_string_equal(m->u.deliver.conversation, CONV);
	assert_string_equal(m->u.deliver.message_id, "oh-1795431296123");
	assert_int_equal(m->u.deliver.timestamp, 1795431296123LL);
	assert_string_equal(m->u.deliver.municipality, "Demo kommune");
	assert_string_equal(m->u.deliver.phone, "+47 800 00 000");
	assert_string_equal(m->u.deliver.emergency_phone, "116 111");
	assert_int_equal(bv_wire_notice_dump(m, &dump), 0);
	assert_int_equal(bv_wire_notice_parse(dump, strlen(dump), &m2), 0);
	assert_int_equal(m2->u.deliver.notice, 1);
	assert_string_equal(m2->u.deliver.phone, "+47 800 00 000");
	assert_string_equal(m2->u.deliver.message_id, "oh-1795431296123");
	assert_int_equal(m2->u.deliver.timestamp, 1795431296123LL);
	bv_wire_msg_free(m2);
	bv_free(dump);
	bv_wire_msg_free(m);

	/* phone null: the tenant has none. */
	m = parse("{\"id\":91,\"op\":\"deliver\",\"notice\":{\"kind\":\"x\","
		  "\"conversation\":\"" CONV "\",\"message_id\":\"n1\","
		  "\"timestamp\":1,\"phone\":null}}");
	assert_string_equal(m->u.deliver.phone, "");
	assert_string_equal(m->u.deliver.municipality, "");
	bv_wire_msg_free(m);
	refuse("{\"id\":91,\"op\":\"deliver\",\"notice\":{\"kind\":\"x\","
	       "\"conversation\":\"" CONV "\",\"message_id\":\"n1\","
	       "\"timestamp\":1,\"phone\":\"1\\r2\"}}",
	       BV_EFIELD);
	refuse("{\"id\":91,\"op\":\"deliver\",\"notice\":{\"kind\":\"x\","
	       "\"message_id\":\"n1\",\"timestamp\":1}}",
	       BV_EFIELD);
	/* Envelope and notice together are not one thing. */
	refuse("{\"id\":91,\"op\":\"deliver\",\"notice\":{\"kind\":\"x\","
	       "\"conversation\":\"" CONV "\",\"message_id\":\"n1\","
	       "\"timestamp\":1},\"envelope\":{" DELIVER_ENV ",\"body\":\"" BODY
	       "\"}}",
	       BV_EFIELD);

	m = parse("{\"op\":\"cases_changed\",\"case\":\"" CASE "\"}");
	assert_int_equal(m->kind, BV_WIRE_CASES_CHANGED);
	assert_string_equal(m->u.cases_changed.case_id, CASE);
	bv_wire_msg_free(m);
	m = parse("{\"op\":\"cases_changed\"}");
	assert_string_equal(m->u.cases_changed.case_id, "");
	bv_wire_msg_free(m);
	refuse("{\"op\":\"cases_changed\",\"case\":5}", BV_EFIELD);
	refuse("{\"id\":3,\"op\":\"cases_changed\"}", BV_EFIELD);
}

static void
test_build_cases_create(void **state)
{
	const char *members[2] = {ACC, ACC2};
	struct bv_request *r;
	char *s = NULL;

	(void)state;
	assert_int_equal(bv_wire_build_cases(7, NULL, NULL, &s), 0);
	assert_string_equal(s, "{\"id\":7,\"op\":\"cases\"}");
	bv_free(s);
	assert_int_equal(bv_wire_build_cases(7, CASE, NULL, &s), 0);
	assert_string_equal(s, "{\"id\":7,\"op\":\"cases\",\"case\":\"" CASE
			       "\"}");
	bv_free(s);
	assert_int_equal(bv_wire_build_cases(7, NULL, CASE, &s), 0);
	assert_string_equal(s, "{\"id\":7,\"op\":\"cases\",\"after\":\"" CASE
			       "\"}");
	r = relay_parse(s);
	assert_int_equal(r->op, BV_OP_CASES);
	assert_string_equal(r->u.cases.after, CASE);
	bv_request_free(r);
	assert_int_equal(bv_wire_build_conversation_create(8, CASE, "citizens",
							   members, 2, &s),
			 0);
	assert_string_equal(s, "{\"id\":8,\"op\":\"conversation_create\","
			       "\"case\":\"" CASE "\",\"kind\":\"citizens\","
			       "\"members\":[\"" ACC "\",\"" ACC2 "\"]}");
	r = relay_parse(s);
	assert_int_equal(r->op, BV_OP_CONVERSATION_CREATE);
	assert_string_equal(r->u.conversation_create.case_id, CASE);
	assert_string_equal(r->u.conversation_create.kind, "citizens");
	assert_int_equal(r->u.conversation_create.n_members, 2);
	assert_string_equal(r->u.conversation_create.members[1], ACC2);
	bv_request_free(r);
	assert_int_equal(
		bv_wire_build_conversation_create(8, CASE, "team", NULL, 0, &s),
		0);
	assert_null(strstr(s, "members"));
	bv_free(s);
	s = NULL;
	assert_int_equal(bv_wire_build_cases(7, "x", NULL, &s), BV_EINVAL);
	assert_int_equal(bv_wire_build_conversation_create(8, CASE, "group",
							   NULL, 0, &s),
			 BV_EINVAL);
	assert_int_equal(bv_wire_build_conversation_create(8, CASE, "team",
							   members, 21, &s),
			 BV_EINVAL);
	members[1] = "nope";
	assert_int_equal(bv_wire_build_conversation_create(8, CASE, "team",
							   members, 2, &s),
			 BV_EINVAL);
	assert_null(s);
}

#define CAP_U "uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu-"
#define CAP_D "ddddddddddddddddddddddddddddddddddddddddd_d"

/* blob_create and blobs_journaled as docs/protocol.md "Attachments" has
 * them, and blob_create's answer: all four members or a BV_EFIELD. */
static void
test_blobs(void **state)
{
	const char *blobs[2] = {CASE, CONV};
	uint8_t sha[32];
	struct bv_wire_msg *m;
	char *s = NULL;
	size_t i;

	(void)state;
	for (i = 0; i < 32; i++)
		sha[i] = (uint8_t)(i * 9);
	assert_int_equal(bv_wire_build_blob_create(7, CONV, 123456, sha, &s),
			 0);
	assert_string_equal(
		s,
		"{\"id\":7,\"op\":\"blob_create\",\"conversation\":\"" CONV
		"\",\"size\":123456,\"sha256\":"
		"\"0009121b242d363f48515a636c757e879099a2abb4bdc6cfd8e1eaf3fc"
		"050e17\"}");
	bv_free(s);
	s = NULL;
	assert_int_equal(bv_wire_build_blob_create(7, CONV, 0, sha, &s),
			 BV_EINVAL);
	assert_int_equal(bv_wire_build_blob_create(7, "x", 1, sha, &s),
			 BV_EINVAL);
	assert_int_equal(bv_wire_build_blobs_journaled(9, blobs, 2, &s), 0);
	assert_string_equal(s, "{\"id\":9,\"op\":\"blobs_journaled\","
			       "\"blobs\":[\"" CASE "\",\"" CONV "\"]}");
	bv_free(s);
	s = NULL;
	assert_int_equal(bv_wire_build_blobs_journaled(9, blobs, 0, &s),
			 BV_EINVAL);
	assert_int_equal(bv_wire_build_blobs_journaled(9, blobs, 101, &s),
			 BV_EINVAL);
	blobs[1] = "nope";
	assert_int_equal(bv_wire_build_blobs_journaled(9, blobs, 2, &s),
			 BV_EINVAL);
	assert_null(s);

	m = parse("{\"id\":7,\"ok\":{\"blob\":\"" CASE "\",\"upload\":\"" CAP_U
		  "\",\"download\":\"" CAP_D "\",\"expires\":1764003600000}}");
	assert_true(m->u.ok.fields & BV_WIRE_OK_BLOB);
	assert_string_equal(m->u.ok.blob, CASE);
	assert_string_equal(m->u.ok.upload, CAP_U);
	assert_string_equal(m->u.ok.download, CAP_D);
	assert_int_equal(m->u.ok.expires, 1764003600000LL);
	bv_wire_msg_free(m);
	/* A capability one short, one with '=' or '+', no expires. */
	refuse("{\"id\":7,\"ok\":{\"blob\":\"" CASE
	       "\",\"upload\":\"abc\",\"download\":\"" CAP_D
	       "\",\"expires\":1}}",
	       BV_EFIELD);
	refuse("{\"id\":7,\"ok\":{\"blob\":\"" CASE "\",\"upload\":\"" CAP_U
	       "\",\"download\":\"dddddddddd"
	       "ddddddddddddddddddddddddddddddd+=\",\"expires\":1}}",
	       BV_EFIELD);
	refuse("{\"id\":7,\"ok\":{\"blob\":\"" CASE "\",\"upload\":\"" CAP_U
	       "\",\"download\":\"" CAP_D "\"}}",
	       BV_EFIELD);
}

/* Every allocation failure is reported, never a crash or a leak. */
static void
test_alloc_failures(void **state)
{
	static const char *frames[] = {
		DELIVER_HEAD DELIVER_ENV ", \"body\": \"" BODY "\"}}",
		"{\"id\":3,\"ok\":{\"account\":\"" ACC
		"\",\"devices\":[" BUNDLE(2, "null") "]}}",
		"{\"id\":5,\"error\":{\"code\":\"BV_EDEVICES\",\"errno\":-31,"
		"\"retryable\":false,\"message\":\"m\",\"missing\":[{"
		"\"account\":"
		"\"" ACC "\",\"devices\":[3]}]}}",
		CASES_OK,
		NOTICE_FRAME,
	};
	struct bv_wire_msg *m;
	uint8_t body[8] = {1};
	struct bv_wire_envelope env = {ACC, 1, 1, 1, body, sizeof(body)};
	char *s;
	size_t i;
	long n;
	int rc;

	(void)state;
	for (i = 0; i < sizeof(frames) / sizeof(frames[0]); i++) {
		for (n = 1; n < 200; n++) {
			m = NULL;
			bv_alloc_fail_at(n);
			rc = bv_wire_parse(frames[i], strlen(frames[i]), 0, &m);
			bv_alloc_fail_at(0);
			if (rc == 0) {
				bv_wire_msg_free(m);
				break;
			}
			assert_int_equal(rc, BV_ENOMEM);
			assert_null(m);
		}
	}
	for (n = 1; n < 200; n++) {
		s = NULL;
		bv_alloc_fail_at(n);
		rc = bv_wire_build_send(1, CONV, 1, "m", &env, 1, &s);
		bv_alloc_fail_at(0);
		if (rc == 0) {
			bv_free(s);
			break;
		}
		assert_int_equal(rc, BV_ENOMEM);
		assert_null(s);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_challenge),
		cmocka_unit_test(test_notify_set),
		cmocka_unit_test(test_events),
		cmocka_unit_test(test_deliver),
		cmocka_unit_test(test_ok_auth_send_counts),
		cmocka_unit_test(test_ok_keys_get),
		cmocka_unit_test(test_huge_arrays),
		cmocka_unit_test(test_not_json),
		cmocka_unit_test(test_error_plain),
		cmocka_unit_test(test_error_409_410),
		cmocka_unit_test(test_build_auth_enroll),
		cmocka_unit_test(test_build_keys),
		cmocka_unit_test(test_build_send_ping_ack),
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_notice_and_event),
		cmocka_unit_test(test_build_cases_create),
		cmocka_unit_test(test_blobs),
		cmocka_unit_test(test_alloc_failures),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
