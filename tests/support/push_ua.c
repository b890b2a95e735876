/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * push_ua.c: the user agent's half of Web Push for the tests: a
 * subscription's keys, RFC 8291 decryption and RFC 8292 VAPID checks
 * (push_sink.h). Deliberately another path than relay/webpush.c: HKDF is
 * spelled out as the RFC's HMAC steps (not OpenSSL's HKDF), base64url is
 * libsodium's and JSON is jansson's, so a mistake in the module shows up
 * as a disagreement here rather than being repeated.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <sodium.h>

#include "push_sink.h"

static int
fail(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why && whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	ERR_clear_error();
	return -1;
}

/* base64url without padding into exactly n bytes; 0 or -1. */
static int
unb64url(const char *in, size_t len, uint8_t *out, size_t n)
{
	size_t got = 0;

	if (sodium_base642bin(out, n, in, len, NULL, &got, NULL,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    got != n)
		return -1;
	return 0;
}

/* A P-256 key from its point (and scalar when priv is not NULL). */
static EVP_PKEY *
ec_key(const uint8_t pub[65], const uint8_t *priv)
{
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;
	BIGNUM *d = NULL;

	if (!bld ||
	    !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
					     "P-256", 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub,
					      65))
		goto out;
	if (priv && (!(d = BN_bin2bn(priv, 32, NULL)) ||
		     !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d)))
		goto out;
	params = OSSL_PARAM_BLD_to_param(bld);
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey,
			      priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY,
			      params) <= 0)
		pkey = NULL;
out:
	BN_clear_free(d);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	return pkey;
}

int
push_ua_new(struct push_ua *ua)
{
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	BIGNUM *d = NULL;
	size_t n = 0;
	int rc = -1;

	if (!pkey ||
	    EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY,
					    ua->p256dh, sizeof(ua->p256dh),
					    &n) != 1 ||
	    n != 65 ||
	    EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_PRIV_KEY, &d) != 1 ||
	    BN_bn2binpad(d, ua->priv, 32) != 32 ||
	    RAND_bytes(ua->auth, sizeof(ua->auth)) != 1)
		goto out;
	rc = 0;
out:
	BN_clear_free(d);
	EVP_PKEY_free(pkey);
	return rc;
}

/* HMAC-SHA-256(key, a ‖ b ‖ c) into out (32 bytes). */
static int
hmac3(const uint8_t *key, size_t klen, const void *a, size_t alen,
      const void *b, size_t blen, const void *c, size_t clen, uint8_t out[32])
{
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	OSSL_PARAM p[2];
	size_t n = 0;
	int rc = -1;

	p[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256",
						0);
	p[1] = OSSL_PARAM_construct_end();
	if (!ctx || EVP_MAC_init(ctx, key, klen, p) != 1 ||
	    (alen && EVP_MAC_update(ctx, a, alen) != 1) ||
	    (blen && EVP_MAC_update(ctx, b, blen) != 1) ||
	    (clen && EVP_MAC_update(ctx, c, clen) != 1) ||
	    EVP_MAC_final(ctx, out, &n, 32) != 1 || n != 32)
		goto out;
	rc = 0;
out:
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return rc;
}

int
push_ua_decrypt(const struct push_ua *ua, const uint8_t *body, size_t len,
		uint8_t **out, size_t *out_len, char *why, size_t whylen)
{
	static const uint8_t one = 0x01;
	static const char cek_info[] = "Content-Encoding: aes128gcm";
	static const char nonce_info[] = "Content-Encoding: nonce";
	static const char webpush_info[] = "WebPush: info";
	EVP_PKEY *mine = NULL, *theirs = NULL;
	EVP_PKEY_CTX *dctx = NULL;
	EVP_CIPHER_CTX *cctx = NULL;
	const uint8_t *salt, *as_public, *ct;
	uint8_t ecdh[32], prk_key[32], ikm[32], prk[32], cek[32], nonce[32];
	uint8_t *pt = NULL;
	size_t n = sizeof(ecdh), ct_len, pt_len;
	uint32_t rs;
	int outl, rc = -1;

	/* RFC 8188 section 2.1: salt(16) rs(4) idlen(1) keyid(idlen). */
	if (len < 21)
		return fail(why, whylen, "body of %zu bytes has no header",
			    len);
	salt = body;
	rs = (uint32_t)body[16] << 24 | (uint32_t)body[17] << 16 |
	     (uint32_t)body[18] << 8 | body[19];
	if (body[20] != 65)
		return fail(why, whylen, "idlen %u, not 65 (RFC 8291 4)",
			    body[20]);
	if (len < 21 + 65 + 17)
		return fail(why, whylen, "body of %zu bytes too short", len);
	as_public = body + 21;
	ct = body + 86;
	ct_len = len - 86;
	if (rs < 18 || ct_len > rs)
		return fail(why, whylen,
			    "record of %zu bytes, rs %u: not one "
			    "record",
			    ct_len, rs);

	mine = ec_key(ua->p256dh, ua->priv);
	theirs = ec_key(as_public, NULL);
	if (!mine || !theirs) {
		fail(why, whylen, "keyid is not a P-256 point");
		goto out;
	}
	dctx = EVP_PKEY_CTX_new(mine, NULL);
	if (!dctx || EVP_PKEY_derive_init(dctx) <= 0 ||
	    EVP_PKEY_derive_set_peer(dctx, theirs) <= 0 ||
	    EVP_PKEY_derive(dctx, ecdh, &n) <= 0 || n != 32) {
		fail(why, whylen, "ECDH failed");
		goto out;
	}

	/*
	 * RFC 8291 section 3.4, one HMAC at a time:
	 *   PRK_key = HMAC(auth_secret, ecdh_secret)
	 *   IKM     = HMAC(PRK_key, "WebPush: info" 0x00 ua_public as_public 0x01)
	 *   PRK     = HMAC(salt, IKM)
	 *   CEK     = HMAC(PRK, "Content-Encoding: aes128gcm" 0x00 0x01)[0..16]
	 *   NONCE   = HMAC(PRK, "Content-Encoding: nonce" 0x00 0x01)[0..12]
	 */
	{
		uint8_t key_info[sizeof(webpush_info) + 130];

		memcpy(key_info, webpush_info, sizeof(webpush_info));
		memcpy(key_info + sizeof(webpush_info), ua->p256dh, 65);
		memcpy(key_info + sizeof(webpush_info) + 65, as_public, 65);
		if (hmac3(ua->auth, 16, ecdh, 32, NULL, 0, NULL, 0, prk_key) ||
		    hmac3(prk_key, 32, key_info, sizeof(key_info), &one, 1,
			  NULL, 0, ikm) ||
		    hmac3(salt, 16, ikm, 32, NULL, 0, NULL, 0, prk) ||
		    hmac3(prk, 32, cek_info, sizeof(cek_info), &one, 1, NULL, 0,
			  cek) ||
		    hmac3(prk, 32, nonce_info, sizeof(nonce_info), &one, 1,
			  NULL, 0, nonce)) {
			fail(why, whylen, "HMAC failed");
			goto out;
		}
	}

	/* One record, sequence number 0: the nonce as derived. */
	pt_len = ct_len - 16;
	pt = malloc(pt_len + 1);
	cctx = EVP_CIPHER_CTX_new();
	if (!pt || !cctx ||
	    EVP_DecryptInit_ex2(cctx, EVP_aes_128_gcm(), cek, nonce, NULL) !=
		    1 ||
	    EVP_DecryptUpdate(cctx, pt, &outl, ct, (int)pt_len) != 1 ||
	    (size_t)outl != pt_len ||
	    EVP_CIPHER_CTX_ctrl(cctx, EVP_CTRL_GCM_SET_TAG, 16,
				(void *)(ct + pt_len)) != 1) {
		fail(why, whylen, "cipher setup failed");
		goto out;
	}
	if (EVP_DecryptFinal_ex(cctx, pt + pt_len, &outl) != 1) {
		fail(why, whylen, "record does not authenticate");
		goto out;
	}
	/* RFC 8188 2: padding is zeros after the last record's 0x02. */
	while (pt_len > 0 && pt[pt_len - 1] == 0)
		pt_len--;
	if (pt_len == 0 || pt[pt_len - 1] != 0x02) {
		fail(why, whylen, "no 0x02 last-record delimiter");
		goto out;
	}
	pt_len--;
	pt[pt_len] = '\0';
	*out = pt;
	*out_len = pt_len;
	pt = NULL;
	rc = 0;
out:
	ERR_clear_error();
	free(pt);
	EVP_CIPHER_CTX_free(cctx);
	EVP_PKEY_CTX_free(dctx);
	EVP_PKEY_free(mine);
	EVP_PKEY_free(theirs);
	return rc;
}

/* The value of name= in a vapid parameter list ("t=…, k=…"). */
static int
vapid_param(const char *params, const char *name, const char **val,
	    size_t *vlen)
{
	const char *p = params;
	size_t nlen = strlen(name);

	while (*p) {
		const char *end;

		while (*p == ' ' || *p == ',')
			p++;
		end = p + strcspn(p, ",");
		if ((size_t)(end - p) > nlen + 1 &&
		    strncasecmp(p, name, nlen) == 0 && p[nlen] == '=') {
			*val = p + nlen + 1;
			*vlen = (size_t)(end - *val);
			while (*vlen > 0 && (*val)[*vlen - 1] == ' ')
				(*vlen)--;
			return 0;
		}
		p = end;
	}
	return -1;
}

/* Decodes one base64url JWT part as a JSON object. */
static json_t *
jwt_json(const char *part, size_t len)
{
	uint8_t buf[4096];
	size_t got = 0;

	if (sodium_base642bin(buf, sizeof(buf), part, len, NULL, &got, NULL,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
		return NULL;
	return json_loadb((const char *)buf, got, JSON_REJECT_DUPLICATES, NULL);
}

int
push_vapid_verify(const char *authorization, const char *origin, int64_t now_s,
		  char *k_out, char *why, size_t whylen)
{
	const char *t, *k, *dot1, *dot2;
	size_t tlen, klen;
	uint8_t pub[65], raw[64], der[80], *dp = der;
	json_t *hdr = NULL, *claims = NULL;
	EVP_PKEY *pkey = NULL;
	EVP_MD_CTX *md = NULL;
	ECDSA_SIG *sig = NULL;
	BIGNUM *r = NULL, *s = NULL;
	const char *aud, *sub;
	json_int_t exp;
	int dlen, rc = -1;

	if (!authorization || strncasecmp(authorization, "vapid ", 6) != 0)
		return fail(why, whylen, "Authorization is not vapid");
	if (vapid_param(authorization + 6, "t", &t, &tlen) ||
	    vapid_param(authorization + 6, "k", &k, &klen))
		return fail(why, whylen, "vapid lacks t= or k=");
	if (unb64url(k, klen, pub, sizeof(pub)) || pub[0] != 0x04)
		return fail(why, whylen, "k is not a 65-byte P-256 point");
	dot1 = memchr(t, '.', tlen);
	dot2 = dot1 ? memchr(dot1 + 1, '.', tlen - (size_t)(dot1 + 1 - t))
		    : NULL;
	if (!dot2)
		return fail(why, whylen, "JWT has not three parts");
	if (unb64url(dot2 + 1, tlen - (size_t)(dot2 + 1 - t), raw, sizeof(raw)))
		return fail(why, whylen, "JWT signature is not 64 bytes");

	/* The signature: raw r ‖ s → DER, verified over "header.claims". */
	sig = ECDSA_SIG_new();
	r = BN_bin2bn(raw, 32, NULL);
	s = BN_bin2bn(raw + 32, 32, NULL);
	if (!sig || !r || !s || ECDSA_SIG_set0(sig, r, s) != 1) {
		fail(why, whylen, "out of memory");
		goto out;
	}
	r = s = NULL;
	dlen = i2d_ECDSA_SIG(sig, &dp);
	pkey = ec_key(pub, NULL);
	md = EVP_MD_CTX_new();
	if (dlen <= 0 || !pkey || !md ||
	    EVP_DigestVerifyInit_ex(md, NULL, "SHA256", NULL, NULL, pkey,
				    NULL) != 1 ||
	    EVP_DigestVerify(md, der, (size_t)dlen, (const uint8_t *)t,
			     (size_t)(dot2 - t)) != 1) {
		fail(why, whylen, "JWT signature does not verify with k");
		goto out;
	}

	hdr = jwt_json(t, (size_t)(dot1 - t));
	claims = jwt_json(dot1 + 1, (size_t)(dot2 - dot1 - 1));
	if (!hdr || !claims) {
		fail(why, whylen, "JWT parts are not JSON objects");
		goto out;
	}
	if (!json_is_string(json_object_get(hdr, "typ")) ||
	    strcmp(json_string_value(json_object_get(hdr, "typ")), "JWT") ||
	    !json_is_string(json_object_get(hdr, "alg")) ||
	    strcmp(json_string_value(json_object_get(hdr, "alg")), "ES256")) {
		fail(why, whylen, "JWT header is not typ JWT, alg ES256");
		goto out;
	}
	aud = json_string_value(json_object_get(claims, "aud"));
	sub = json_string_value(json_object_get(claims, "sub"));
	if (!aud || strcmp(aud, origin) != 0) {
		fail(why, whylen, "aud %s is not %s", aud ? aud : "(none)",
		     origin);
		goto out;
	}
	if (!json_is_integer(json_object_get(claims, "exp"))) {
		fail(why, whylen, "exp missing or not an integer");
		goto out;
	}
	exp = json_integer_value(json_object_get(claims, "exp"));
	if (exp <= now_s || exp > now_s + 86400) {
		fail(why, whylen, "exp %lld not within 24 h of now %lld",
		     (long long)exp, (long long)now_s);
		goto out;
	}
	if (!sub || (strncmp(sub, "mailto:", 7) && strncmp(sub, "https:", 6))) {
		fail(why, whylen, "sub is not mailto: or https:");
		goto out;
	}
	if (k_out) {
		if (klen >= 100) {
			fail(why, whylen, "k too long");
			goto out;
		}
		memcpy(k_out, k, klen);
		k_out[klen] = '\0';
	}
	rc = 0;
out:
	ERR_clear_error();
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(sig);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pkey);
	json_decref(hdr);
	json_decref(claims);
	return rc;
}
