/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_webpush.c: unit tests of relay/webpush.c: RFC 8291 Appendix A byte
 * for byte, round trips through the user agent's side (tests/support/
 * push_ua.c, another code path), tampering, the size limit; VAPID JWTs
 * verified as a push service would (signature with k, aud, exp, sub), the
 * key file in its SEC 1 and PKCS#8 forms and the openssl command of
 * docs/operations.md; endpoints, origins, subscriptions and bad inputs,
 * and the error table. No network: webpush_send is tested in
 * tests/integration/40-webpush.c against the local push service.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/encoder.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sodium.h>

#include "bv_error.h"
#include "bv_util.h"
#include "push_sink.h"
#include "webpush.h"

/* RFC 8291 Appendix A (base64url, line breaks removed). */
static const char rfc_plaintext[] = "When I grow up, I want to be a watermelon";
static const char rfc_as_public[] =
	"BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6Tlz"
	"AC8wEqKK6PBru3jl7A8";
static const char rfc_as_private[] =
	"yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
static const char rfc_ua_public[] =
	"BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7V"
	"d8pZGH6SRpkNtoIAiw4";
static const char rfc_ua_private[] =
	"q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
static const char rfc_salt[] = "DGv6ra1nlYgDCS1FRnbzlw";
static const char rfc_auth[] = "BTBZMqHH6r4Tts7J_aSIgg";
/* Section 5: the header, then the one record. */
static const char rfc_body[] =
	"DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27ml"
	"mlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPT"
	"pK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";

#define NOW 1767225600 /* 2026-01-01T00:00:00Z */

static char tmpdir[64];

static size_t
unb64(const char *in, uint8_t *out, size_t cap)
{
	size_t got = 0;

	assert_int_equal(
		sodium_base642bin(out, cap, in, strlen(in), NULL, &got, NULL,
				  sodium_base64_VARIANT_URLSAFE_NO_PADDING),
		0);
	return got;
}

static void
test_rfc8291_vector(void **state)
{
	uint8_t ua_pub[65], as_pub[65], as_priv[32], salt[16], auth[16];
	uint8_t want[256], *body = NULL, *pt = NULL;
	size_t want_len, body_len = 0, pt_len = 0;
	struct push_ua ua;
	char why[128];

	(void)state;
	assert_int_equal(unb64(rfc_ua_public, ua_pub, sizeof(ua_pub)), 65);
	assert_int_equal(unb64(rfc_as_public, as_pub, sizeof(as_pub)), 65);
	assert_int_equal(unb64(rfc_as_private, as_priv, sizeof(as_priv)), 32);
	assert_int_equal(unb64(rfc_salt, salt, sizeof(salt)), 16);
	assert_int_equal(unb64(rfc_auth, auth, sizeof(auth)), 16);
	want_len = unb64(rfc_body, want, sizeof(want));
	assert_int_equal(want_len, 86 + strlen(rfc_plaintext) + 17);

	assert_int_equal(webpush__encrypt_with(ua_pub, auth,
					       (const uint8_t *)rfc_plaintext,
					       strlen(rfc_plaintext), as_priv,
					       as_pub, salt, &body, &body_len),
			 0);
	assert_int_equal(body_len, want_len);
	assert_memory_equal(body, want, want_len);

	/* The user agent's side reads the RFC's own body. */
	memcpy(ua.p256dh, ua_pub, 65);
	assert_int_equal(unb64(rfc_ua_private, ua.priv, sizeof(ua.priv)), 32);
	memcpy(ua.auth, auth, 16);
	assert_int_equal(push_ua_decrypt(&ua, want, want_len, &pt, &pt_len, why,
					 sizeof(why)),
			 0);
	assert_int_equal(pt_len, strlen(rfc_plaintext));
	assert_memory_equal(pt, rfc_plaintext, pt_len);
	free(pt);

	/* A public key that is not the private key's is refused. */
	as_pub[64] ^= 1;
	bv_free(body);
	body = NULL;
	assert_int_equal(webpush__encrypt_with(ua_pub, auth,
					       (const uint8_t *)rfc_plaintext,
					       strlen(rfc_plaintext), as_priv,
					       as_pub, salt, &body, &body_len),
			 WEBPUSH_EKEY);
	assert_null(body);
}

static void
test_roundtrip(void **state)
{
	static const size_t lens[] = {0, 1, 41, 1000, WEBPUSH_PAYLOAD_MAX};
	uint8_t text[WEBPUSH_PAYLOAD_MAX], *b1 = NULL, *b2 = NULL, *pt;
	size_t l1, l2, pt_len, i;
	struct push_ua ua;
	char why[128];

	(void)state;
	assert_int_equal(push_ua_new(&ua), 0);
	randombytes_buf(text, sizeof(text));
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		assert_int_equal(webpush_encrypt(ua.p256dh, ua.auth, text,
						 lens[i], &b1, &l1),
				 0);
		assert_int_equal(l1, 86 + lens[i] + 17);
		/* Header: rs 4096, idlen 65, keyid an uncompressed point. */
		assert_int_equal(b1[16], 0);
		assert_int_equal(b1[17], 0);
		assert_int_equal(b1[18], 0x10);
		assert_int_equal(b1[19], 0);
		assert_int_equal(b1[20], 65);
		assert_int_equal(b1[21], 0x04);
		pt = NULL;
		assert_int_equal(push_ua_decrypt(&ua, b1, l1, &pt, &pt_len, why,
						 sizeof(why)),
				 0);
		assert_int_equal(pt_len, lens[i]);
		if (lens[i])
			assert_memory_equal(pt, text, lens[i]);
		free(pt);

		/* Fresh salt and ephemeral key every time. */
		assert_int_equal(webpush_encrypt(ua.p256dh, ua.auth, text,
						 lens[i], &b2, &l2),
				 0);
		assert_int_equal(l1, l2);
		assert_memory_not_equal(b1, b2, 16);
		assert_memory_not_equal(b1 + 21, b2 + 21, 65);
		bv_free(b1);
		bv_free(b2);
	}
	/* The largest message is exactly one 4096-byte body. */
	assert_int_equal(86 + WEBPUSH_PAYLOAD_MAX + 17, 4096);
	assert_int_equal(WEBPUSH_BODY_MAX, 4096);
}

static void
test_tamper(void **state)
{
	static const char text[] = "Du har en ny melding.";
	uint8_t *body = NULL, *pt = NULL;
	size_t len, pt_len, i;
	struct push_ua ua, other;
	char why[128];

	(void)state;
	assert_int_equal(push_ua_new(&ua), 0);
	assert_int_equal(push_ua_new(&other), 0);
	assert_int_equal(webpush_encrypt(ua.p256dh, ua.auth,
					 (const uint8_t *)text, strlen(text),
					 &body, &len),
			 0);
	/* Any flipped bit in the salt, the key or the record is noticed. */
	for (i = 0; i < len; i++) {
		if (i >= 16 && i < 21)
			continue; /* rs and idlen are checked, not keyed */
		body[i] ^= 0x01;
		assert_int_not_equal(push_ua_decrypt(&ua, body, len, &pt,
						     &pt_len, why, sizeof(why)),
				     0);
		body[i] ^= 0x01;
	}
	/* Cut short, or read by another subscription. */
	assert_int_not_equal(push_ua_decrypt(&ua, body, len - 1, &pt, &pt_len,
					     why, sizeof(why)),
			     0);
	assert_int_not_equal(push_ua_decrypt(&other, body, len, &pt, &pt_len,
					     why, sizeof(why)),
			     0);
	memcpy(other.auth, ua.auth, 16);
	memcpy(other.p256dh, ua.p256dh, 65);
	other.auth[0] ^= 1; /* the right key, the wrong auth secret */
	assert_int_not_equal(push_ua_decrypt(&other, body, len, &pt, &pt_len,
					     why, sizeof(why)),
			     0);
	assert_int_equal(
		push_ua_decrypt(&ua, body, len, &pt, &pt_len, why, sizeof(why)),
		0);
	free(pt);
	bv_free(body);
}

static void
test_encrypt_bad_input(void **state)
{
	uint8_t text[WEBPUSH_PAYLOAD_MAX + 1] = {0}, bad[65], *body = NULL;
	size_t len = 0;
	struct push_ua ua;

	(void)state;
	assert_int_equal(push_ua_new(&ua), 0);
	assert_int_equal(webpush_encrypt(ua.p256dh, ua.auth, text,
					 WEBPUSH_PAYLOAD_MAX + 1, &body, &len),
			 WEBPUSH_ESIZE);
	assert_int_equal(webpush_encrypt(ua.p256dh, ua.auth, text, (size_t)-1,
					 &body, &len),
			 WEBPUSH_ESIZE);
	/* Compressed form, off the curve, all zeros. */
	memcpy(bad, ua.p256dh, 65);
	bad[0] = 0x02;
	assert_int_equal(webpush_encrypt(bad, ua.auth, text, 1, &body, &len),
			 WEBPUSH_EKEY);
	memcpy(bad, ua.p256dh, 65);
	bad[64] ^= 0x01;
	assert_int_equal(webpush_encrypt(bad, ua.auth, text, 1, &body, &len),
			 WEBPUSH_EKEY);
	memset(bad, 0, 65);
	bad[0] = 0x04;
	assert_int_equal(webpush_encrypt(bad, ua.auth, text, 1, &body, &len),
			 WEBPUSH_EKEY);
	assert_int_equal(webpush_encrypt(NULL, ua.auth, text, 1, &body, &len),
			 BV_EINVAL);
	assert_int_equal(webpush_encrypt(ua.p256dh, NULL, text, 1, &body, &len),
			 BV_EINVAL);
	assert_int_equal(
		webpush_encrypt(ua.p256dh, ua.auth, NULL, 1, &body, &len),
		BV_EINVAL);
	assert_int_equal(
		webpush_encrypt(ua.p256dh, ua.auth, text, 1, NULL, &len),
		BV_EINVAL);
	assert_null(body);
	assert_int_equal(len, 0);
}

static void
check_origin(const char *endpoint, int allow_http, const char *want)
{
	char out[WEBPUSH_ENDPOINT_MAX + 1];

	assert_int_equal(webpush_origin(endpoint, allow_http, out, sizeof(out)),
			 0);
	assert_string_equal(out, want);
}

static void
test_origin(void **state)
{
	char long_ep[WEBPUSH_ENDPOINT_MAX + 16], small[10];
	static const char *const bad[] = {
		"",
		"fcm.googleapis.com/fcm/send/x",
		"ftp://push.example/x",
		"wss://push.example/x",
		"https://",
		"https:///path",
		"https://user@push.example/x",
		"https://user:pw@push.example/x",
		"https://push.example:/x",
		"https://push.example:0/x",
		"https://push.example:65536/x",
		"https://push.example:443443/x",
		"https://push.example:44a/x",
		"https://push example/x",
		"https://push.example/x y",
		"https://push.example/\x01",
		"https://push.example/\xc3\xa6",
		"https://[::1/x",
		"https://[]/x",
		"https://push_example/x",
		"https://%70ush.example/x",
		"javascript:alert(1)",
	};
	size_t i;

	(void)state;
	check_origin("https://fcm.googleapis.com/fcm/send/dGVzdA:APA91b", 0,
		     "https://fcm.googleapis.com");
	check_origin("HTTPS://Updates.Push.Services.Mozilla.COM/wpush/v2/x", 0,
		     "https://updates.push.services.mozilla.com");
	check_origin("https://web.push.apple.com:443/QGx", 0,
		     "https://web.push.apple.com");
	check_origin("https://push.example:8443/a?b#c", 0,
		     "https://push.example:8443");
	check_origin("https://push.example?x=1", 0, "https://push.example");
	check_origin("https://push.example", 0, "https://push.example");
	check_origin("https://[2001:db8::1]:8443/x", 0,
		     "https://[2001:db8::1]:8443");
	check_origin("http://127.0.0.1:43123/push/a", 1,
		     "http://127.0.0.1:43123");
	check_origin("http://127.0.0.1:80/push/a", 1, "http://127.0.0.1");

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char out[WEBPUSH_ENDPOINT_MAX + 1];

		if (webpush_origin(bad[i], 1, out, sizeof(out)) !=
		    WEBPUSH_EENDPOINT)
			fail_msg("accepted %s", bad[i]);
	}
	/* http only when allowed (local tests), never in production. */
	assert_int_equal(webpush_origin("http://push.example/x", 0, small,
					sizeof(small)),
			 WEBPUSH_EENDPOINT);
	/* Too long, and an output buffer too small. */
	memset(long_ep, 'a', sizeof(long_ep));
	memcpy(long_ep, "https://h/", 10);
	long_ep[WEBPUSH_ENDPOINT_MAX + 1] = '\0';
	assert_int_equal(webpush_origin(long_ep, 0, small, sizeof(small)),
			 WEBPUSH_EENDPOINT);
	long_ep[WEBPUSH_ENDPOINT_MAX] = '\0';
	{
		char out[WEBPUSH_ENDPOINT_MAX + 1];

		assert_int_equal(webpush_origin(long_ep, 0, out, sizeof(out)),
				 0);
	}
	assert_int_equal(webpush_origin("https://push.example/x", 0, small,
					sizeof(small)),
			 BV_EINVAL);
	assert_int_equal(webpush_origin(NULL, 0, small, sizeof(small)),
			 BV_EINVAL);
}

static void
test_subscription_parse(void **state)
{
	struct webpush_subscription sub;
	struct push_ua ua;
	char *p, *a, padded[120], bad[120];

	(void)state;
	assert_int_equal(push_ua_new(&ua), 0);
	p = bv_b64url_encode(ua.p256dh, 65);
	a = bv_b64url_encode(ua.auth, 16);
	assert_non_null(p);
	assert_non_null(a);
	assert_int_equal(webpush_subscription_parse("https://push.example/s/1",
						    p, a, 0, &sub),
			 0);
	assert_memory_equal(sub.p256dh, ua.p256dh, 65);
	assert_memory_equal(sub.auth, ua.auth, 16);
	assert_string_equal(sub.endpoint, "https://push.example/s/1");
	/* Padded base64url, as some browsers give it. */
	snprintf(padded, sizeof(padded), "%s=", p);
	assert_int_equal(
		webpush_subscription_parse("https://push.example/s/1", padded,
					   "AAAAAAAAAAAAAAAAAAAAAA==", 0, &sub),
		0);

	/* 64-byte key, 15- and 17-byte auth, standard base64, junk. */
	{
		char *short_key = bv_b64url_encode(ua.p256dh, 64);

		assert_int_equal(
			webpush_subscription_parse("https://push.example/s",
						   short_key, a, 0, &sub),
			WEBPUSH_EKEY);
		bv_free(short_key);
	}
	assert_int_equal(webpush_subscription_parse("https://push.example/s", p,
						    "AAAAAAAAAAAAAAAAAAAA", 0,
						    &sub),
			 WEBPUSH_EKEY);
	assert_int_equal(webpush_subscription_parse("https://push.example/s", p,
						    "AAAAAAAAAAAAAAAAAAAAAAA",
						    0, &sub),
			 WEBPUSH_EKEY);
	snprintf(bad, sizeof(bad), "%s", p);
	bad[3] = '+';
	assert_int_equal(webpush_subscription_parse("https://push.example/s",
						    bad, a, 0, &sub),
			 WEBPUSH_EKEY);
	assert_int_equal(webpush_subscription_parse("https://push.example/s",
						    "", a, 0, &sub),
			 WEBPUSH_EKEY);
	/* A 65-byte string that is not a point. */
	{
		uint8_t off[65];
		char *o;

		memcpy(off, ua.p256dh, 65);
		off[40] ^= 0x80;
		o = bv_b64url_encode(off, 65);
		assert_int_equal(
			webpush_subscription_parse("https://push.example/s", o,
						   a, 0, &sub),
			WEBPUSH_EKEY);
		bv_free(o);
	}
	assert_int_equal(webpush_subscription_parse("http://push.example/s", p,
						    a, 0, &sub),
			 WEBPUSH_EENDPOINT);
	assert_int_equal(webpush_subscription_parse("http://push.example/s", p,
						    a, 1, &sub),
			 0);
	assert_int_equal(webpush_subscription_parse("mailto:x@example.no", p, a,
						    1, &sub),
			 WEBPUSH_EENDPOINT);
	assert_int_equal(webpush_subscription_parse(NULL, p, a, 1, &sub),
			 BV_EINVAL);
	bv_free(p);
	bv_free(a);
}

/* Writes pkey as PEM (SEC 1 "EC PRIVATE KEY" when sec1, else PKCS#8). */
static void
write_key(const char *path, EVP_PKEY *pkey, int sec1)
{
	OSSL_ENCODER_CTX *ectx;
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	ectx = OSSL_ENCODER_CTX_new_for_pkey(
		pkey, OSSL_KEYMGMT_SELECT_KEYPAIR, "PEM",
		sec1 ? "type-specific" : "PrivateKeyInfo", NULL);
	assert_non_null(ectx);
	assert_int_equal(OSSL_ENCODER_to_fp(ectx, f), 1);
	OSSL_ENCODER_CTX_free(ectx);
	fclose(f);
}

/* The claims of a "vapid t=…, k=…" value, as JSON. */
static json_t *
claims_of(const char *hdr)
{
	const char *t = strstr(hdr, "t="), *d1, *d2;
	uint8_t buf[1024];
	size_t got = 0;

	assert_non_null(t);
	d1 = strchr(t, '.');
	assert_non_null(d1);
	d2 = strchr(d1 + 1, '.');
	assert_non_null(d2);
	assert_int_equal(
		sodium_base642bin(buf, sizeof(buf), d1 + 1,
				  (size_t)(d2 - d1 - 1), NULL, &got, NULL,
				  sodium_base64_VARIANT_URLSAFE_NO_PADDING),
		0);
	return json_loadb((const char *)buf, got, 0, NULL);
}

static void
vapid_round(const char *path, EVP_PKEY *pkey)
{
	struct webpush_vapid_key *key = NULL;
	uint8_t pub[65], kbytes[65];
	size_t n = 0;
	char *hdr = NULL, k[100], why[200];
	json_t *claims;

	assert_int_equal(webpush_vapid_key_load(path, &key), 0);
	assert_int_equal(
		EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY,
						pub, sizeof(pub), &n),
		1);
	assert_int_equal(
		unb64(webpush_vapid_key_public(key), kbytes, sizeof(kbytes)),
		65);
	assert_memory_equal(kbytes, pub, 65);

	assert_int_equal(
		webpush_vapid(key, "https://Push.Example:8443/s/abc?x#y",
			      "mailto:drift@kommune.example", NOW, &hdr),
		0);
	assert_int_equal(strncmp(hdr, "vapid t=", 8), 0);
	assert_non_null(strstr(hdr, ", k="));
	assert_string_equal(strstr(hdr, ", k=") + 4,
			    webpush_vapid_key_public(key));
	/* As a push service checks it: signature with k, aud, exp, sub. */
	if (push_vapid_verify(hdr, "https://push.example:8443", NOW, k, why,
			      sizeof(why)) != 0)
		fail_msg("VAPID refused: %s", why);
	assert_string_equal(k, webpush_vapid_key_public(key));
	claims = claims_of(hdr);
	assert_non_null(claims);
	assert_string_equal(json_string_value(json_object_get(claims, "aud")),
			    "https://push.example:8443");
	assert_int_equal(json_integer_value(json_object_get(claims, "exp")),
			 NOW + 12 * 3600);
	assert_string_equal(json_string_value(json_object_get(claims, "sub")),
			    "mailto:drift@kommune.example");
	json_decref(claims);
	/* Another origin, a later clock, a flipped signature: refused. */
	assert_int_not_equal(push_vapid_verify(hdr, "https://push.example", NOW,
					       NULL, why, sizeof(why)),
			     0);
	assert_int_not_equal(push_vapid_verify(hdr, "https://push.example:8443",
					       NOW + 12 * 3600, NULL, why,
					       sizeof(why)),
			     0);
	{
		char *comma = strstr(hdr, ", k=");

		comma[-3] = comma[-3] == 'A' ? 'B' : 'A';
		assert_int_not_equal(
			push_vapid_verify(hdr, "https://push.example:8443", NOW,
					  NULL, why, sizeof(why)),
			0);
	}
	bv_free(hdr);
	hdr = NULL;

	/* https: subjects too; bad subjects and endpoints. */
	assert_int_equal(webpush_vapid(key, "https://push.example/s",
				       "https://kommune.example/kontakt", NOW,
				       &hdr),
			 0);
	bv_free(hdr);
	hdr = NULL;
	assert_int_equal(webpush_vapid(key, "https://push.example/s",
				       "drift@kommune.example", NOW, &hdr),
			 WEBPUSH_ESUBJECT);
	assert_int_equal(webpush_vapid(key, "https://push.example/s",
				       "mailto:", NOW, &hdr),
			 WEBPUSH_ESUBJECT);
	assert_int_equal(webpush_vapid(key, "https://push.example/s",
				       "mailto:a\"}@x", NOW, &hdr),
			 WEBPUSH_ESUBJECT);
	assert_int_equal(
		webpush_vapid(key, "https://push.example/s", NULL, NOW, &hdr),
		WEBPUSH_ESUBJECT);
	assert_int_equal(webpush_vapid(key, "ftp://push.example/s",
				       "mailto:a@b", NOW, &hdr),
			 WEBPUSH_EENDPOINT);
	assert_int_equal(webpush_vapid(NULL, "https://push.example/s",
				       "mailto:a@b", NOW, &hdr),
			 BV_EINVAL);
	assert_null(hdr);
	webpush_vapid_key_free(key);
}

static void
test_vapid(void **state)
{
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	char sec1[96], pkcs8[96];

	(void)state;
	assert_non_null(pkey);
	snprintf(sec1, sizeof(sec1), "%s/sec1.pem", tmpdir);
	snprintf(pkcs8, sizeof(pkcs8), "%s/pkcs8.pem", tmpdir);
	write_key(sec1, pkey, 1);
	write_key(pkcs8, pkey, 0);
	vapid_round(sec1, pkey);
	vapid_round(pkcs8, pkey);
	unlink(sec1);
	unlink(pkcs8);
	EVP_PKEY_free(pkey);
}

/* The command docs/operations.md gives, when openssl is installed. */
static void
test_vapid_openssl_command(void **state)
{
	struct webpush_vapid_key *key = NULL;
	char cmd[512], path[96], *hdr = NULL, why[200];

	(void)state;
	if (system("command -v openssl >/dev/null 2>&1") != 0)
		skip();
	snprintf(path, sizeof(path), "%s/vapid.pem", tmpdir);
	snprintf(cmd, sizeof(cmd),
		 "openssl ecparam -genkey -name prime256v1 -noout -out %s",
		 path);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(webpush_vapid_key_load(path, &key), 0);
	assert_int_equal(webpush_vapid(key, "https://push.example/s",
				       "mailto:a@b", NOW, &hdr),
			 0);
	if (push_vapid_verify(hdr, "https://push.example", NOW, NULL, why,
			      sizeof(why)) != 0)
		fail_msg("VAPID refused: %s", why);
	/* The public key as the documented pipeline prints it. */
	snprintf(cmd, sizeof(cmd),
		 "openssl ec -in %s -pubout -outform DER 2>/dev/null | "
		 "tail -c 65 | basenc --base64url | tr -d '=\\n'",
		 path);
	{
		FILE *p = popen(cmd, "r");
		char pub[128] = "";

		assert_non_null(p);
		assert_non_null(fgets(pub, sizeof(pub), p));
		assert_int_equal(pclose(p), 0);
		assert_string_equal(pub, webpush_vapid_key_public(key));
	}
	bv_free(hdr);
	webpush_vapid_key_free(key);
	unlink(path);
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void
test_vapid_key_bad(void **state)
{
	struct webpush_vapid_key *key = NULL;
	EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	EVP_PKEY *p256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	char path[96];
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/bad.pem", tmpdir);
	assert_int_equal(webpush_vapid_key_load("/nonexistent/vapid.pem", &key),
			 BV_EIO);
	assert_int_equal(webpush_vapid_key_load(tmpdir, &key),
			 WEBPUSH_EVAPIDKEY);
	write_file(path, "not a key\n");
	assert_int_equal(webpush_vapid_key_load(path, &key), WEBPUSH_EVAPIDKEY);
	write_key(path, p384, 0);
	assert_int_equal(webpush_vapid_key_load(path, &key), WEBPUSH_EVAPIDKEY);
	write_key(path, ed, 0);
	assert_int_equal(webpush_vapid_key_load(path, &key), WEBPUSH_EVAPIDKEY);
	/* A public key only. */
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_PUBKEY(f, p256), 1);
	fclose(f);
	assert_int_equal(webpush_vapid_key_load(path, &key), WEBPUSH_EVAPIDKEY);
	/* An encrypted key is refused, not prompted for. */
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, p256, EVP_aes_256_cbc(),
					      (unsigned char *)"pw", 2, NULL,
					      NULL),
			 1);
	fclose(f);
	assert_int_equal(webpush_vapid_key_load(path, &key), WEBPUSH_EVAPIDKEY);
	assert_null(key);
	assert_int_equal(webpush_vapid_key_load(NULL, &key), BV_EINVAL);
	webpush_vapid_key_free(NULL);
	assert_null(webpush_vapid_key_public(NULL));
	unlink(path);
	EVP_PKEY_free(p384);
	EVP_PKEY_free(ed);
	EVP_PKEY_free(p256);
}

static void
test_errors(void **state)
{
	(void)state;
	assert_string_equal(webpush_errname(WEBPUSH_EGONE), "WEBPUSH_EGONE");
	assert_string_equal(webpush_errname(WEBPUSH_EKEY), "WEBPUSH_EKEY");
	assert_string_equal(webpush_errname(BV_ENOMEM), "BV_ENOMEM");
	assert_non_null(strstr(webpush_strerror(WEBPUSH_ESIZE), "3993"));
	assert_int_equal(webpush_retryable(WEBPUSH_ERETRY), 1);
	assert_int_equal(webpush_retryable(WEBPUSH_EGONE), 0);
	assert_int_equal(webpush_retryable(WEBPUSH_EREJECTED), 0);
	assert_int_equal(webpush_retryable(BV_EINVAL), 0);
	/* The range stays clear of libbvfiks's -100 … -149. */
	assert_true(WEBPUSH_EKEY <= -150 && WEBPUSH_EREJECTED >= -159);
}

static int
internal(const char *ip)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};

	if (inet_pton(AF_INET, ip, &sin.sin_addr) == 1)
		return webpush__addr_internal((struct sockaddr *)&sin);
	assert_int_equal(inet_pton(AF_INET6, ip, &sin6.sin6_addr), 1);
	return webpush__addr_internal((struct sockaddr *)&sin6);
}

/* webpush_send connects to no inside address a client could name. */
static void
test_addr_internal(void **state)
{
	static const char *const inside[] = {
		"127.0.0.1",
		"127.255.255.254",
		"10.1.2.3",
		"172.16.0.1",
		"172.31.255.255",
		"192.168.1.1",
		"169.254.169.254",
		"100.64.0.1",
		"0.0.0.0",
		"224.0.0.1",
		"255.255.255.255",
		"::1",
		"::",
		"fe80::1",
		"fc00::1",
		"fd12:3456::1",
		"ff02::1",
		"::ffff:127.0.0.1",
		"::ffff:10.0.0.1",
	};
	static const char *const outside[] = {
		"142.250.74.10",
		"172.15.255.255",
		"172.32.0.1",
		"100.128.0.1",
		"192.169.0.1",
		"8.8.8.8",
		"2a00:1450:400f:80d::200a",
		"::ffff:142.250.74.10",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(inside) / sizeof(inside[0]); i++)
		if (!internal(inside[i]))
			fail_msg("%s taken as outside", inside[i]);
	for (i = 0; i < sizeof(outside) / sizeof(outside[0]); i++)
		if (internal(outside[i]))
			fail_msg("%s taken as inside", outside[i]);
}

/* docs/operations.md lists every code with its number and retry flag. */
static void
test_errors_documented(void **state)
{
	static const struct {
		const char *name;
		int num, retry;
	} rows[] = {
#define ROW(name, num, retry, msg) {"WEBPUSH_" #name, num, retry},
		WEBPUSH_ERR_MAP(ROW)
#undef ROW
	};
	char line[1024], want[128];
	size_t i, found = 0;
	FILE *f;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		snprintf(want, sizeof(want), "| `%s` | %d | %s |", rows[i].name,
			 rows[i].num, rows[i].retry ? "yes" : "no");
		f = fopen(BV_SOURCE_DIR "/docs/operations.md", "r");
		assert_non_null(f);
		while (fgets(line, sizeof(line), f))
			if (strncmp(line, want, strlen(want)) == 0) {
				found++;
				break;
			}
		fclose(f);
		if (found != i + 1)
			fail_msg("docs/operations.md lacks the row %s", want);
	}
}

static int
setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/bvu-webpush-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int
teardown(void **state)
{
	(void)state;
	return rmdir(tmpdir);
}

int
main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc8291_vector),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_tamper),
		cmocka_unit_test(test_encrypt_bad_input),
		cmocka_unit_test(test_origin),
		cmocka_unit_test(test_subscription_parse),
		cmocka_unit_test(test_vapid),
		cmocka_unit_test(test_vapid_openssl_command),
		cmocka_unit_test(test_vapid_key_bad),
		cmocka_unit_test(test_addr_internal),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_errors_documented),
	};
	/* clang-format on */

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
