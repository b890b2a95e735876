/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * webpush.c: Web Push for bvchat-notifier (webpush.h): RFC 8291 aes128gcm
 * encryption, RFC 8292 VAPID JWTs and one blocking POST per message over
 * libcurl, its answer sorted into delivered, gone, retry later, refused.
 * OpenSSL 3 through EVP and its KDF/param interfaces only. It keeps no
 * state between calls but the VAPID key and never logs what it handles.
 */
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <strings.h>
#include <sys/stat.h>

#include <curl/curl.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "bv_error.h"
#include "bv_util.h"
#include "webpush.h"

/* A PEM file with one P-256 key is a few hundred bytes. */
#define VAPID_PEM_MAX 65536
/* Push services answer with a short body or none; more is not read. */
#define ANSWER_MAX 65536
/* Retry-After beyond a week is a broken service, not advice. */
#define RETRY_AFTER_MAX (7 * 86400)

struct webpush_vapid_key {
	EVP_PKEY *pkey;
	uint8_t pub[65];
	char *pub_b64; /* base64url of pub, the k= parameter */
};

/* Error table. */

struct webpush_err_row {
	int code;
	int retryable;
	const char *name;
	const char *msg;
};

static const struct webpush_err_row webpush_err_rows[] = {
#define WEBPUSH_ERR_ROW(name, num, retry, msg)                                 \
	{num, retry, "WEBPUSH_" #name, msg},
	WEBPUSH_ERR_MAP(WEBPUSH_ERR_ROW)
#undef WEBPUSH_ERR_ROW
};

static const struct webpush_err_row *
webpush_err_find(int code)
{
	size_t i;

	for (i = 0; i < sizeof(webpush_err_rows) / sizeof(webpush_err_rows[0]);
	     i++)
		if (webpush_err_rows[i].code == code)
			return &webpush_err_rows[i];
	return NULL;
}

const char *
webpush_strerror(int code)
{
	const struct webpush_err_row *r = webpush_err_find(code);

	return r ? r->msg : bv_strerror(code);
}

const char *
webpush_errname(int code)
{
	const struct webpush_err_row *r = webpush_err_find(code);

	return r ? r->name : bv_errname(code);
}

int
webpush_retryable(int code)
{
	const struct webpush_err_row *r = webpush_err_find(code);

	return r ? r->retryable : bv_err_retryable(code);
}

/* Keys. */

/*
 * Makes a P-256 key from its uncompressed public point (and its private
 * scalar when priv is not NULL). OpenSSL decodes the point and refuses one
 * off the curve; the public check also refuses the point at infinity.
 * Returns 0, WEBPUSH_EKEY, BV_ENOMEM.
 */
static int
p256_key(const uint8_t pub[65], const uint8_t *priv, EVP_PKEY **out)
{
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL, *check = NULL;
	EVP_PKEY *pkey = NULL;
	BIGNUM *d = NULL;
	int rc = BV_ENOMEM;

	if (pub[0] != 0x04)
		return WEBPUSH_EKEY; /* compressed or hybrid: not p256dh */
	bld = OSSL_PARAM_BLD_new();
	if (!bld)
		goto out;
	if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
					     "prime256v1", 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub,
					      65))
		goto out;
	if (priv) {
		d = BN_secure_new();
		if (!d || !BN_bin2bn(priv, 32, d) ||
		    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d))
			goto out;
	}
	params = OSSL_PARAM_BLD_to_param(bld);
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (!params || !ctx)
		goto out;
	rc = WEBPUSH_EKEY;
	if (EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey,
			      priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY,
			      params) <= 0)
		goto out;
	check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	if (!check || EVP_PKEY_public_check(check) <= 0)
		goto out;
	*out = pkey;
	pkey = NULL;
	rc = 0;
out:
	ERR_clear_error();
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(check);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_clear_free(d);
	return rc;
}

/* The 65-byte uncompressed public point of a P-256 key. */
static int
p256_public(EVP_PKEY *pkey, uint8_t pub[65])
{
	size_t n = 0;

	if (EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY, pub,
					    65, &n) != 1 ||
	    n != 65 || pub[0] != 0x04)
		return BV_EINTERNAL;
	return 0;
}

/* HKDF-SHA-256 (RFC 5869), extract then expand, into out (n bytes). */
static int
hkdf(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
     const uint8_t *info, size_t info_len, uint8_t *out, size_t n)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM p[5];
	int rc = BV_EINTERNAL;

	if (!kctx)
		goto out;
	p[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256",
						0);
	p[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
						 (void *)salt, salt_len);
	p[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
						 (void *)ikm, ikm_len);
	p[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
						 (void *)info, info_len);
	p[4] = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(kctx, out, n, p) == 1)
		rc = 0;
out:
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	return rc;
}

/* Encryption (RFC 8291 section 3, RFC 8188 section 2). */

static int
encrypt_core(const uint8_t ua_public[65], const uint8_t auth_secret[16],
	     const uint8_t *plaintext, size_t len, EVP_PKEY *as_key,
	     const uint8_t salt[16], uint8_t **body, size_t *body_len)
{
	static const char key_label[] = "WebPush: info";
	static const char cek_info[] = "Content-Encoding: aes128gcm";
	static const char nonce_info[] = "Content-Encoding: nonce";
	EVP_PKEY *ua = NULL;
	EVP_PKEY_CTX *dctx = NULL;
	EVP_CIPHER_CTX *cctx = NULL;
	uint8_t as_public[65];
	uint8_t key_info[sizeof(key_label) + 65 + 65];
	uint8_t ecdh[32], ikm[32], cek[16], nonce[12];
	uint8_t *b = NULL, *p;
	size_t n = sizeof(ecdh), total;
	int outl, rc;

	rc = p256_key(ua_public, NULL, &ua);
	if (rc < 0)
		goto out;
	rc = p256_public(as_key, as_public);
	if (rc < 0)
		goto out;

	/* ecdh_secret = ECDH(as_private, ua_public) */
	rc = BV_EINTERNAL;
	dctx = EVP_PKEY_CTX_new_from_pkey(NULL, as_key, NULL);
	if (!dctx || EVP_PKEY_derive_init(dctx) <= 0 ||
	    EVP_PKEY_derive_set_peer(dctx, ua) <= 0 ||
	    EVP_PKEY_derive(dctx, ecdh, &n) <= 0 || n != sizeof(ecdh))
		goto out;

	/*
	 * IKM = HKDF(auth_secret, ecdh_secret,
	 *            "WebPush: info" ‖ 0x00 ‖ ua_public ‖ as_public, 32)
	 * then CEK and NONCE from HKDF(salt, IKM, "Content-Encoding: …" ‖ 0x00).
	 */
	memcpy(key_info, key_label, sizeof(key_label)); /* with its NUL */
	memcpy(key_info + sizeof(key_label), ua_public, 65);
	memcpy(key_info + sizeof(key_label) + 65, as_public, 65);
	if (hkdf(auth_secret, 16, ecdh, sizeof(ecdh), key_info,
		 sizeof(key_info), ikm, sizeof(ikm)) < 0 ||
	    hkdf(salt, 16, ikm, sizeof(ikm), (const uint8_t *)cek_info,
		 sizeof(cek_info), cek, sizeof(cek)) < 0 ||
	    hkdf(salt, 16, ikm, sizeof(ikm), (const uint8_t *)nonce_info,
		 sizeof(nonce_info), nonce, sizeof(nonce)) < 0)
		goto out;

	total = WEBPUSH_HEADER_LEN + len + 1 + 16;
	b = bv_malloc(total);
	if (!b) {
		rc = BV_ENOMEM;
		goto out;
	}
	/* Header: salt ‖ rs (uint32 big-endian) ‖ idlen ‖ keyid. */
	memcpy(b, salt, 16);
	b[16] = (uint8_t)(WEBPUSH_RS >> 24);
	b[17] = (uint8_t)(WEBPUSH_RS >> 16);
	b[18] = (uint8_t)(WEBPUSH_RS >> 8);
	b[19] = (uint8_t)WEBPUSH_RS;
	b[20] = 65;
	memcpy(b + 21, as_public, 65);

	/*
	 * The one and last record: plaintext ‖ 0x02, no padding, sequence
	 * number 0 (so the nonce as derived), the 16-byte tag after it.
	 */
	p = b + WEBPUSH_HEADER_LEN;
	cctx = EVP_CIPHER_CTX_new();
	if (!cctx ||
	    EVP_EncryptInit_ex2(cctx, EVP_aes_128_gcm(), cek, nonce, NULL) != 1)
		goto out;
	if (len > 0) {
		if (EVP_EncryptUpdate(cctx, p, &outl, plaintext, (int)len) !=
			    1 ||
		    (size_t)outl != len)
			goto out;
	}
	if (EVP_EncryptUpdate(cctx, p + len, &outl, (const uint8_t *)"\x02",
			      1) != 1 ||
	    outl != 1 || EVP_EncryptFinal_ex(cctx, p + len + 1, &outl) != 1 ||
	    outl != 0 ||
	    EVP_CIPHER_CTX_ctrl(cctx, EVP_CTRL_GCM_GET_TAG, 16, p + len + 1) !=
		    1)
		goto out;
	*body = b;
	*body_len = total;
	b = NULL;
	rc = 0;
out:
	ERR_clear_error();
	bv_free(b);
	EVP_CIPHER_CTX_free(cctx);
	EVP_PKEY_CTX_free(dctx);
	EVP_PKEY_free(ua);
	bv_wipe(ecdh, sizeof(ecdh));
	bv_wipe(ikm, sizeof(ikm));
	bv_wipe(cek, sizeof(cek));
	bv_wipe(nonce, sizeof(nonce));
	return rc;
}

static int
encrypt_check(const uint8_t *ua_public, const uint8_t *auth_secret,
	      const uint8_t *plaintext, size_t len, uint8_t **body,
	      size_t *body_len)
{
	if (!ua_public || !auth_secret || (!plaintext && len > 0) || !body ||
	    !body_len)
		return BV_EINVAL;
	if (len > WEBPUSH_PAYLOAD_MAX)
		return WEBPUSH_ESIZE;
	return 0;
}

int
webpush_encrypt(const uint8_t ua_public[65], const uint8_t auth_secret[16],
		const uint8_t *plaintext, size_t len, uint8_t **body,
		size_t *body_len)
{
	EVP_PKEY *as_key = NULL;
	uint8_t salt[16];
	int rc;

	rc = encrypt_check(ua_public, auth_secret, plaintext, len, body,
			   body_len);
	if (rc < 0)
		return rc;
	rc = BV_EINTERNAL;
	if (RAND_bytes(salt, sizeof(salt)) != 1)
		goto out;
	as_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!as_key)
		goto out;
	rc = encrypt_core(ua_public, auth_secret, plaintext, len, as_key, salt,
			  body, body_len);
out:
	ERR_clear_error();
	EVP_PKEY_free(as_key);
	return rc;
}

int
webpush__encrypt_with(const uint8_t ua_public[65],
		      const uint8_t auth_secret[16], const uint8_t *plaintext,
		      size_t len, const uint8_t as_private[32],
		      const uint8_t as_public[65], const uint8_t salt[16],
		      uint8_t **body, size_t *body_len)
{
	EVP_PKEY *as_key = NULL;
	int rc;

	rc = encrypt_check(ua_public, auth_secret, plaintext, len, body,
			   body_len);
	if (rc < 0)
		return rc;
	if (!as_private || !as_public || !salt)
		return BV_EINVAL;
	rc = p256_key(as_public, as_private, &as_key);
	if (rc < 0)
		return rc;
	rc = encrypt_core(ua_public, auth_secret, plaintext, len, as_key, salt,
			  body, body_len);
	EVP_PKEY_free(as_key);
	return rc;
}

/* Endpoints and subscriptions. */

static char
lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static int
is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9');
}

int
webpush_origin(const char *endpoint, int allow_http, char *out, size_t cap)
{
	const char *host, *end, *port = NULL, *s;
	size_t len, hlen, need;
	unsigned long pnum = 0;
	int https;

	if (!endpoint || !out)
		return BV_EINVAL;
	len = strnlen(endpoint, WEBPUSH_ENDPOINT_MAX + 1);
	if (len > WEBPUSH_ENDPOINT_MAX)
		return WEBPUSH_EENDPOINT;
	for (s = endpoint; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return WEBPUSH_EENDPOINT; /* spaces, controls, non-ASCII */
	if (strncasecmp(endpoint, "https://", 8) == 0) {
		https = 1;
		host = endpoint + 8;
	} else if (allow_http && strncasecmp(endpoint, "http://", 7) == 0) {
		https = 0;
		host = endpoint + 7;
	} else {
		return WEBPUSH_EENDPOINT;
	}
	end = host + strcspn(host, "/?#");

	/* Host: a name or IPv4 address, or an IPv6 address in brackets. */
	s = host;
	if (*s == '[') {
		for (s++; s < end && *s != ']'; s++)
			if (!(is_alnum(*s) || *s == ':' || *s == '.'))
				return WEBPUSH_EENDPOINT;
		if (s >= end || s == host + 1)
			return WEBPUSH_EENDPOINT;
		s++; /* past ']' */
	} else {
		for (; s < end && *s != ':'; s++)
			if (!(is_alnum(*s) || *s == '.' || *s == '-'))
				return WEBPUSH_EENDPOINT; /* '@', '%', '_', … */
		if (s == host)
			return WEBPUSH_EENDPOINT;
	}
	hlen = (size_t)(s - host);
	if (s < end) {
		if (*s != ':')
			return WEBPUSH_EENDPOINT;
		port = ++s;
		if (s == end || end - s > 5)
			return WEBPUSH_EENDPOINT;
		for (; s < end; s++) {
			if (*s < '0' || *s > '9')
				return WEBPUSH_EENDPOINT;
			pnum = pnum * 10 + (unsigned long)(*s - '0');
		}
		if (pnum == 0 || pnum > 65535)
			return WEBPUSH_EENDPOINT;
		if (pnum == (https ? 443ul : 80ul))
			port = NULL; /* the origin leaves the default out */
	}

	need = (https ? 8 : 7) + hlen + (port ? 6 : 0) + 1;
	if (need > cap)
		return BV_EINVAL;
	strcpy(out, https ? "https://" : "http://");
	len = strlen(out);
	for (s = host; s < host + hlen; s++)
		out[len++] = lower(*s);
	if (port)
		len += (size_t)snprintf(out + len, cap - len, ":%lu", pnum);
	out[len] = '\0';
	return 0;
}

/* Decodes base64url with or without '=' padding into exactly n bytes. */
static int
b64url_exact(const char *in, uint8_t *out, size_t n)
{
	size_t len, got = 0;

	len = strnlen(in, 4 * n); /* longer than any padded form of n bytes */
	while (len > 0 && in[len - 1] == '=')
		len--;
	if (bv_b64url_decode(in, len, out, n, &got) < 0 || got != n)
		return -1;
	return 0;
}

int
webpush_subscription_parse(const char *endpoint, const char *p256dh,
			   const char *auth, int allow_http,
			   struct webpush_subscription *sub)
{
	char origin[WEBPUSH_ENDPOINT_MAX + 1];
	EVP_PKEY *ua = NULL;
	int rc;

	if (!endpoint || !p256dh || !auth || !sub)
		return BV_EINVAL;
	rc = webpush_origin(endpoint, allow_http, origin, sizeof(origin));
	if (rc < 0)
		return rc;
	if (b64url_exact(p256dh, sub->p256dh, 65) < 0 ||
	    b64url_exact(auth, sub->auth, 16) < 0)
		return WEBPUSH_EKEY;
	rc = p256_key(sub->p256dh, NULL, &ua);
	if (rc < 0)
		return rc;
	EVP_PKEY_free(ua);
	sub->endpoint = endpoint;
	return 0;
}

/* VAPID (RFC 8292). */

static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return 0; /* an encrypted key is refused, never prompted for */
}

int
webpush_vapid_key_load(const char *pem_path, struct webpush_vapid_key **out)
{
	struct webpush_vapid_key *k = NULL;
	EVP_PKEY *pkey = NULL;
	BIO *bio = NULL;
	struct stat st;
	char group[32];
	size_t glen = 0;
	int rc;

	if (!pem_path || !out)
		return BV_EINVAL;
	if (stat(pem_path, &st) != 0)
		return BV_EIO;
	if (!S_ISREG(st.st_mode) || st.st_size > VAPID_PEM_MAX)
		return WEBPUSH_EVAPIDKEY;
	bio = BIO_new_file(pem_path, "r");
	if (!bio) {
		rc = BV_EIO;
		goto out;
	}
	rc = WEBPUSH_EVAPIDKEY;
	pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	if (!pkey || !EVP_PKEY_is_a(pkey, "EC") ||
	    EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME,
					   group, sizeof(group), &glen) != 1 ||
	    strcmp(group, "prime256v1") != 0)
		goto out;
	rc = BV_ENOMEM;
	k = bv_calloc(1, sizeof(*k));
	if (!k)
		goto out;
	rc = p256_public(pkey, k->pub);
	if (rc < 0)
		goto out;
	k->pub_b64 = bv_b64url_encode(k->pub, sizeof(k->pub));
	if (!k->pub_b64) {
		rc = BV_ENOMEM;
		goto out;
	}
	k->pkey = pkey;
	pkey = NULL;
	*out = k;
	k = NULL;
	rc = 0;
out:
	ERR_clear_error();
	webpush_vapid_key_free(k);
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	return rc;
}

void
webpush_vapid_key_free(struct webpush_vapid_key *key)
{
	if (!key)
		return;
	EVP_PKEY_free(key->pkey); /* OpenSSL clears the private scalar */
	bv_free(key->pub_b64);
	bv_wipe(key, sizeof(*key));
	bv_free(key);
}

const char *
webpush_vapid_key_public(const struct webpush_vapid_key *key)
{
	return key ? key->pub_b64 : NULL;
}

/* mailto: or https:, printable ASCII that needs no escaping in JSON. */
static int
subject_ok(const char *subject)
{
	size_t len, i;

	if (!subject)
		return 0;
	len = strnlen(subject, WEBPUSH_SUBJECT_MAX + 1);
	if (len > WEBPUSH_SUBJECT_MAX)
		return 0;
	if (!((strncmp(subject, "mailto:", 7) == 0 && len > 7) ||
	      (strncmp(subject, "https:", 6) == 0 && len > 6)))
		return 0;
	for (i = 0; i < len; i++)
		if (subject[i] < 0x20 || subject[i] > 0x7e ||
		    subject[i] == '"' || subject[i] == '\\')
			return 0;
	return 1;
}

/* ES256 over msg: the raw r ‖ s of JWS (RFC 7518 section 3.4). */
static int
es256_sign(EVP_PKEY *pkey, const char *msg, size_t len, uint8_t sig[64])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	ECDSA_SIG *es = NULL;
	uint8_t der[80];
	const uint8_t *dp = der;
	size_t dlen = sizeof(der);
	const BIGNUM *r, *s;
	int rc = BV_EINTERNAL;

	if (!md ||
	    EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, pkey, NULL) !=
		    1 ||
	    EVP_DigestSign(md, der, &dlen, (const uint8_t *)msg, len) != 1)
		goto out;
	es = d2i_ECDSA_SIG(NULL, &dp, (long)dlen);
	if (!es)
		goto out;
	ECDSA_SIG_get0(es, &r, &s);
	if (BN_bn2binpad(r, sig, 32) != 32 ||
	    BN_bn2binpad(s, sig + 32, 32) != 32)
		goto out;
	rc = 0;
out:
	ERR_clear_error();
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(md);
	return rc;
}

int
webpush_vapid(const struct webpush_vapid_key *key, const char *endpoint,
	      const char *subject, int64_t now_s, char **header_out)
{
	static const char jwt_header[] = "{\"typ\":\"JWT\",\"alg\":\"ES256\"}";
	char origin[WEBPUSH_ENDPOINT_MAX + 1];
	char claims[WEBPUSH_ENDPOINT_MAX + WEBPUSH_SUBJECT_MAX + 64];
	char *h64 = NULL, *c64 = NULL, *s64 = NULL, *signing = NULL;
	char *hdr = NULL;
	uint8_t sig[64];
	size_t n;
	int rc;

	if (!key || !endpoint || !header_out)
		return BV_EINVAL;
	/* Any http(s) endpoint: the header is harmless, the sink is http. */
	rc = webpush_origin(endpoint, 1, origin, sizeof(origin));
	if (rc < 0)
		return rc;
	if (!subject_ok(subject))
		return WEBPUSH_ESUBJECT;
	/* origin and subject need no JSON escaping: both were checked. */
	snprintf(claims, sizeof(claims),
		 "{\"aud\":\"%s\",\"exp\":%lld,\"sub\":\"%s\"}", origin,
		 (long long)(now_s + WEBPUSH_JWT_LIFETIME_S), subject);

	rc = BV_ENOMEM;
	h64 = bv_b64url_encode((const uint8_t *)jwt_header,
			       sizeof(jwt_header) - 1);
	c64 = bv_b64url_encode((const uint8_t *)claims, strlen(claims));
	if (!h64 || !c64)
		goto out;
	n = strlen(h64) + 1 + strlen(c64) + 1;
	signing = bv_malloc(n);
	if (!signing)
		goto out;
	snprintf(signing, n, "%s.%s", h64, c64);
	rc = es256_sign(key->pkey, signing, strlen(signing), sig);
	if (rc < 0)
		goto out;
	rc = BV_ENOMEM;
	s64 = bv_b64url_encode(sig, sizeof(sig));
	if (!s64)
		goto out;
	n = strlen("vapid t=..., k=") + strlen(signing) + strlen(s64) +
	    strlen(key->pub_b64) + 1;
	hdr = bv_malloc(n);
	if (!hdr)
		goto out;
	snprintf(hdr, n, "vapid t=%s.%s, k=%s", signing, s64, key->pub_b64);
	*header_out = hdr;
	rc = 0;
out:
	bv_free(h64);
	bv_free(c64);
	bv_free(s64);
	bv_free(signing);
	return rc;
}

/* Delivery (RFC 8030 section 5). */

struct answer {
	size_t len;
};

/* Reads and drops the answer's body, at most ANSWER_MAX bytes of it. */
static size_t
answer_drop(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct answer *a = userdata;
	size_t n = size * nmemb;

	(void)ptr;
	if (n > ANSWER_MAX - a->len)
		return 0; /* libcurl stops; the status is known already */
	a->len += n;
	return n;
}

/*
 * Whether addr is one a push service never has: loopback, private,
 * link-local, shared (CGNAT), unspecified or multicast, IPv4 or IPv6
 * (IPv4-mapped addresses as their IPv4 address).
 */
int
webpush__addr_internal(const struct sockaddr *sa)
{
	const uint8_t *a;

	if (sa->sa_family == AF_INET6) {
		static const uint8_t mapped[12] = {0, 0, 0, 0, 0,    0,
						   0, 0, 0, 0, 0xff, 0xff};
		static const uint8_t zero[15] = {0};

		a = ((const struct sockaddr_in6 *)(const void *)sa)
			    ->sin6_addr.s6_addr;
		if (memcmp(a, mapped, 12) == 0) {
			a += 12; /* ::ffff:a.b.c.d, below as IPv4 */
		} else {
			return memcmp(a, zero, 15) == 0 || /* ::, ::1 */
			       (a[0] & 0xfe) == 0xfc ||	   /* fc00::/7 */
			       (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) ||
			       a[0] == 0xff; /* multicast */
		}
	} else if (sa->sa_family == AF_INET) {
		a = (const uint8_t *)&(
			    (const struct sockaddr_in *)(const void *)sa)
			    ->sin_addr.s_addr;
	} else {
		return 1;
	}
	return a[0] == 0 || a[0] == 10 || a[0] == 127 ||
	       (a[0] == 100 && (a[1] & 0xc0) == 64) ||
	       (a[0] == 169 && a[1] == 254) ||
	       (a[0] == 172 && (a[1] & 0xf0) == 16) ||
	       (a[0] == 192 && a[1] == 168) || a[0] >= 224;
}

/* Whether addr is a loopback address (127/8, ::1, ::ffff:127/104). */
static int
addr_loopback(const struct sockaddr *sa)
{
	static const uint8_t lo6[16] = {0, 0, 0, 0, 0, 0, 0, 0,
					0, 0, 0, 0, 0, 0, 0, 1};
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0,    0,
					   0, 0, 0, 0, 0xff, 0xff};
	const uint8_t *a;

	if (sa->sa_family == AF_INET6) {
		a = ((const struct sockaddr_in6 *)(const void *)sa)
			    ->sin6_addr.s6_addr;
		return memcmp(a, lo6, 16) == 0 ||
		       (memcmp(a, mapped, 12) == 0 && a[12] == 127);
	}
	if (sa->sa_family == AF_INET) {
		a = (const uint8_t *)&(
			    (const struct sockaddr_in *)(const void *)sa)
			    ->sin_addr.s_addr;
		return a[0] == 127;
	}
	return 0;
}

struct dial {
	int allow_loopback; /* opts->allow_http: loopback is fine */
	int loopback_only;  /* an http:// endpoint: nothing but loopback */
	int refused;	    /* an address was refused: nothing was sent */
};

/*
 * libcurl asks here for every socket it connects, after name resolution,
 * so a name that resolves to an inside address is caught as well as an
 * address literal.
 */
static curl_socket_t
dial_open(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr)
{
	struct dial *d = clientp;

	(void)purpose;
	int lo = addr_loopback(&addr->addr);

	if ((d->loopback_only && !lo) ||
	    (!(d->allow_loopback && lo) &&
	     webpush__addr_internal(&addr->addr))) {
		d->refused = 1;
		return CURL_SOCKET_BAD;
	}
	return socket(addr->family, addr->socktype, addr->protocol);
}

static int
classify(long status)
{
	if (status >= 200 && status <= 299)
		return 0;
	if (status == 404 || status == 410)
		return WEBPUSH_EGONE;
	if (status == 429 || (status >= 500 && status <= 599))
		return WEBPUSH_ERETRY;
	return WEBPUSH_EREJECTED;
}

int
webpush_send(const struct webpush_vapid_key *key, const char *subject,
	     const struct webpush_subscription *sub, const uint8_t *payload,
	     size_t len, const struct webpush_send_opts *opts, int64_t now_s,
	     struct webpush_result *res)
{
	char origin[WEBPUSH_ENDPOINT_MAX + 1];
	char ttl_hdr[40];
	char *vapid = NULL, *auth_hdr = NULL;
	uint8_t *body = NULL;
	size_t body_len = 0;
	struct curl_slist *hdrs = NULL, *h;
	struct answer answer = {0};
	struct dial dial = {0};
	CURL *curl = NULL;
	CURLcode cc;
	curl_off_t retry_after = 0;
	long ttl = 86400, timeout_ms = 10000, status = 0;
	int allow_http = 0, rc;

	if (res) {
		res->status = 0;
		res->retry_after_s = 0;
	}
	if (!key || !sub || !sub->endpoint || (!payload && len > 0))
		return BV_EINVAL;
	if (opts) {
		if (opts->ttl_s > 0)
			ttl = opts->ttl_s;
		if (opts->timeout_ms > 0)
			timeout_ms = opts->timeout_ms;
		allow_http = opts->allow_http;
	}
	/* Tests and development (webpush_allow_loopback_http): a push
	 * service on loopback, over http:// or https://; never a private
	 * address, and plain http:// to nothing but loopback. */
	dial.allow_loopback = allow_http;
	dial.loopback_only = strncasecmp(sub->endpoint, "http://", 7) == 0;
	if (len > WEBPUSH_PAYLOAD_MAX)
		return WEBPUSH_ESIZE;
	rc = webpush_origin(sub->endpoint, allow_http, origin, sizeof(origin));
	if (rc < 0)
		return rc;
	rc = webpush_vapid(key, sub->endpoint, subject, now_s, &vapid);
	if (rc < 0)
		goto out;
	rc = webpush_encrypt(sub->p256dh, sub->auth, payload, len, &body,
			     &body_len);
	if (rc < 0)
		goto out;

	rc = BV_ENOMEM;
	auth_hdr = bv_malloc(strlen(vapid) + sizeof("Authorization: "));
	if (!auth_hdr)
		goto out;
	strcpy(auth_hdr, "Authorization: ");
	strcat(auth_hdr, vapid);
	snprintf(ttl_hdr, sizeof(ttl_hdr), "TTL: %ld", ttl);
	{
		const char *lines[] = {
			ttl_hdr,
			"Urgency: normal",
			"Content-Encoding: aes128gcm",
			"Content-Type: application/octet-stream",
			auth_hdr,
			"Expect:", /* the body is small: no 100-continue */
		};
		size_t i;

		for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
			h = curl_slist_append(hdrs, lines[i]);
			if (!h)
				goto out;
			hdrs = h;
		}
	}

	rc = BV_EINTERNAL;
	curl = curl_easy_init();
	if (!curl)
		goto out;
	if (curl_easy_setopt(curl, CURLOPT_URL, sub->endpoint) != CURLE_OK ||
	    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR,
			     allow_http ? "http,https" : "https") != CURLE_OK ||
	    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
	    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms) !=
		    CURLE_OK ||
	    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms) !=
		    CURLE_OK ||
	    curl_easy_setopt(curl, CURLOPT_POST, 1L) != CURLE_OK ||
	    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body) != CURLE_OK ||
	    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)body_len) !=
		    CURLE_OK ||
	    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs) != CURLE_OK ||
	    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, answer_drop) !=
		    CURLE_OK ||
	    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer) != CURLE_OK ||
	    curl_easy_setopt(curl, CURLOPT_USERAGENT, "bvchat-notifier/1") !=
		    CURLE_OK ||
	    curl_easy_setopt(curl, CURLOPT_OPENSOCKETFUNCTION, dial_open) !=
		    CURLE_OK ||
	    curl_easy_setopt(curl, CURLOPT_OPENSOCKETDATA, &dial) != CURLE_OK ||
	    /* No proxy from the environment: the address check above must
	     * see the push service's own address. */
	    curl_easy_setopt(curl, CURLOPT_PROXY, "") != CURLE_OK)
		goto out;
	cc = curl_easy_perform(curl);
	if (curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status) !=
	    CURLE_OK)
		status = 0;
	if (status == 0) {
		/* No answer: refused, unreachable, TLS, timeout; or ours. */
		(void)cc;
		rc = dial.refused ? WEBPUSH_EENDPOINT : WEBPUSH_ERETRY;
		goto out;
	}
	rc = classify(status);
	if (rc == WEBPUSH_ERETRY &&
	    curl_easy_getinfo(curl, CURLINFO_RETRY_AFTER, &retry_after) ==
		    CURLE_OK &&
	    retry_after > 0 && res)
		res->retry_after_s = retry_after > RETRY_AFTER_MAX
					     ? RETRY_AFTER_MAX
					     : (int64_t)retry_after;
out:
	if (res)
		res->status = status;
	curl_easy_cleanup(curl);
	curl_slist_free_all(hdrs);
	bv_free(auth_hdr);
	bv_free(vapid);
	if (body)
		bv_wipe(body, body_len);
	bv_free(body);
	return rc;
}
