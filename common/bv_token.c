/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * bv_token.c: signs, reads and verifies enrollment tokens
 * ("bvt1." b64url(payload) "." b64url(Ed25519 signature over the payload))
 * and fagsystem API tokens ("bvf1.", signed over a domain prefix and the
 * payload, bound to one request by its hash).
 *
 * It does not know whether a jti was used before, nor which tenant key
 * belongs to which tenant: the relay looks both up in the database.
 */
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "bv_error.h"
#include "bv_token.h"
#include "bv_util.h"

#define TOKEN_PREFIX	 "bvt1."
#define TOKEN_PREFIX_LEN (sizeof(TOKEN_PREFIX) - 1)

/* A token's pieces: the raw payload bytes (what is signed) and signature. */
struct token_parts {
	uint8_t payload[BV_TOKEN_MAX];
	size_t payload_len;
	uint8_t sig[crypto_sign_BYTES];
};

static int
payload_uuid(json_t *v, int nullable, char out[BV_UUID_LEN + 1])
{
	if (nullable && json_is_null(v)) {
		out[0] = '\0';
		return 0;
	}
	if (!json_is_string(v) || json_string_length(v) != BV_UUID_LEN ||
	    !bv_uuid_valid(json_string_value(v)))
		return BV_ETOKEN;
	memcpy(out, json_string_value(v), BV_UUID_LEN + 1);
	return 0;
}

/* Splits and decodes token into *parts and its payload into *t. */
static int
token_parse(const char *token, struct token_parts *parts, struct bv_token *t)
{
	struct bv_token tmp;
	const char *body, *dot;
	json_t *root = NULL, *v;
	json_error_t jerr;
	size_t len, n = 0;
	int rc = BV_ETOKEN;

	if (!token)
		goto out;
	len = strnlen(token, BV_TOKEN_MAX + 1);
	if (len > BV_TOKEN_MAX || len < TOKEN_PREFIX_LEN ||
	    memcmp(token, TOKEN_PREFIX, TOKEN_PREFIX_LEN) != 0)
		goto out;
	body = token + TOKEN_PREFIX_LEN;
	len -= TOKEN_PREFIX_LEN;
	dot = memchr(body, '.', len);
	if (!dot)
		goto out;
	if (bv_b64url_decode(body, (size_t)(dot - body), parts->payload,
			     sizeof(parts->payload), &parts->payload_len) < 0 ||
	    parts->payload_len == 0)
		goto out;
	/* A second '.' in the signature part is not base64url: refused. */
	if (bv_b64url_decode(dot + 1, len - (size_t)(dot + 1 - body),
			     parts->sig, sizeof(parts->sig), &n) < 0 ||
	    n != sizeof(parts->sig))
		goto out;

	root = json_loadb((const char *)parts->payload, parts->payload_len,
			  JSON_REJECT_DUPLICATES, &jerr);
	/* jansson leaves the error text empty when an allocation failed. */
	if (!root && (jerr.text[0] == '\0' ||
		      json_error_code(&jerr) == json_error_out_of_memory)) {
		rc = BV_ENOMEM; /* not the token's fault: do not refuse it */
		goto out;
	}
	if (!json_is_object(root))
		goto out;
	if (payload_uuid(json_object_get(root, "tenant"), 0, tmp.tenant) < 0)
		goto out;
	v = json_object_get(root, "account");
	if (!v || payload_uuid(v, 1, tmp.account) < 0)
		goto out;
	v = json_object_get(root, "jti");
	if (!json_is_string(v) ||
	    bv_b64url_decode(json_string_value(v), json_string_length(v),
			     tmp.jti, sizeof(tmp.jti), &n) < 0 ||
	    n != BV_JTI_LEN)
		goto out;
	v = json_object_get(root, "exp");
	if (!json_is_integer(v))
		goto out;
	tmp.exp = json_integer_value(v);
	*t = tmp;
	rc = 0;
out:
	json_decref(root);
	return rc;
}

int
bv_token_sign(const struct bv_token *t, const uint8_t sk[64], char **out)
{
	char *jti = NULL, *payload = NULL, *p64 = NULL, *s64 = NULL;
	char *tok = NULL;
	uint8_t sig[crypto_sign_BYTES];
	void (*jfree)(void *) = NULL;
	json_t *root = NULL;
	size_t len;
	int rc;

	if (!t || !sk || !out || !bv_uuid_valid(t->tenant) ||
	    (t->account[0] && !bv_uuid_valid(t->account))) {
		rc = BV_EINVAL;
		goto out;
	}
	if (sodium_init() < 0) {
		rc = BV_EINTERNAL;
		goto out;
	}
	rc = BV_ENOMEM;
	jti = bv_b64url_encode(t->jti, sizeof(t->jti));
	if (!jti)
		goto out;
	root = json_pack("{s:s, s:s?, s:s, s:I}", "tenant", t->tenant,
			 "account", t->account[0] ? t->account : NULL, "jti",
			 jti, "exp", (json_int_t)t->exp);
	if (!root)
		goto out;
	payload = json_dumps(root, JSON_COMPACT);
	if (!payload)
		goto out;
	len = strlen(payload);
	crypto_sign_detached(sig, NULL, (const uint8_t *)payload, len, sk);
	p64 = bv_b64url_encode((const uint8_t *)payload, len);
	s64 = bv_b64url_encode(sig, sizeof(sig));
	if (!p64 || !s64)
		goto out;
	len = TOKEN_PREFIX_LEN + strlen(p64) + 1 + strlen(s64) + 1;
	if (len - 1 > BV_TOKEN_MAX) {
		rc = BV_EINVAL;
		goto out;
	}
	tok = bv_malloc(len);
	if (!tok)
		goto out;
	strcpy(tok, TOKEN_PREFIX);
	strcat(tok, p64);
	strcat(tok, ".");
	strcat(tok, s64);
	*out = tok;
	rc = 0;
out:
	if (payload) {
		json_get_alloc_funcs(NULL, &jfree);
		jfree(payload);
	}
	json_decref(root);
	bv_free(jti);
	bv_free(p64);
	bv_free(s64);
	return rc;
}

int
bv_token_peek(const char *token, struct bv_token *out)
{
	struct token_parts parts;

	return token_parse(token, &parts, out);
}

int
bv_token_verify(const char *token, const uint8_t pk[32], int64_t now,
		int64_t max_ttl_s, struct bv_token *out)
{
	struct token_parts parts;
	struct bv_token t;
	int rc;

	rc = token_parse(token, &parts, &t);
	if (rc < 0)
		goto out;
	rc = BV_ETOKEN;
	if (!pk || sodium_init() < 0)
		goto out;
	if (crypto_sign_verify_detached(parts.sig, parts.payload,
					parts.payload_len, pk) != 0)
		goto out;
	/* Expiry is judged only for tokens the tenant really signed. */
	if (t.exp < now) {
		rc = BV_ETOKEN_EXPIRED;
		goto out;
	}
	if (max_ttl_s < 0)
		max_ttl_s = 0;
	if ((uint64_t)t.exp - (uint64_t)now > (uint64_t)max_ttl_s)
		goto out;
	*out = t;
	rc = 0;
out:
	return rc;
}

/* ---- fagsystem API tokens ---- */

#define APITOKEN_PREFIX_LEN (sizeof(BV_APITOKEN_PREFIX) - 1)
#define APITOKEN_DOMAIN_LEN (sizeof(BV_APITOKEN_DOMAIN) - 1)

/* The signed message: the domain, then the payload bytes. */
struct apitoken_parts {
	uint8_t msg[APITOKEN_DOMAIN_LEN + BV_TOKEN_MAX];
	size_t msg_len;
	uint8_t sig[crypto_sign_BYTES];
};

int
bv_apitoken_sub_valid(const char *sub)
{
	size_t i;

	if (!sub || !sub[0])
		return 0;
	for (i = 0; sub[i]; i++) {
		char ch = sub[i];

		if (i >= BV_APITOKEN_SUB_MAX)
			return 0;
		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
		      ch == '@' || ch == '-'))
			return 0;
	}
	return 1;
}

int
bv_apitoken_request_hash(const char *method, const char *path,
			 const uint8_t *body, size_t len, uint8_t out[32])
{
	crypto_hash_sha256_state st;

	if (!method || !path || !out || (!body && len))
		return BV_EINVAL;
	if (sodium_init() < 0)
		return BV_EINTERNAL;
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const uint8_t *)method, strlen(method));
	crypto_hash_sha256_update(&st, (const uint8_t *)"\n", 1);
	crypto_hash_sha256_update(&st, (const uint8_t *)path, strlen(path));
	crypto_hash_sha256_update(&st, (const uint8_t *)"\n", 1);
	if (len)
		crypto_hash_sha256_update(&st, body, len);
	crypto_hash_sha256_final(&st, out);
	return 0;
}

static int
hex_decode32(json_t *v, uint8_t out[32])
{
	const char *s;
	size_t i;

	if (!json_is_string(v) || json_string_length(v) != 64)
		return BV_ETOKEN;
	s = json_string_value(v);
	for (i = 0; i < 64; i++) {
		char ch = s[i];
		int d;

		if (ch >= '0' && ch <= '9')
			d = ch - '0';
		else if (ch >= 'a' && ch <= 'f')
			d = ch - 'a' + 10;
		else
			return BV_ETOKEN;
		if (i % 2 == 0)
			out[i / 2] = (uint8_t)(d << 4);
		else
			out[i / 2] |= (uint8_t)d;
	}
	return 0;
}

static int
apitoken_parse(const char *token, struct apitoken_parts *parts,
	       struct bv_apitoken *t)
{
	struct bv_apitoken tmp;
	const char *body, *dot;
	json_t *root = NULL, *v;
	json_error_t jerr;
	size_t len, plen = 0, n = 0;
	int rc = BV_ETOKEN;

	memset(&tmp, 0, sizeof(tmp));
	if (!token)
		goto out;
	len = strnlen(token, BV_TOKEN_MAX + 1);
	if (len > BV_TOKEN_MAX || len < APITOKEN_PREFIX_LEN ||
	    memcmp(token, BV_APITOKEN_PREFIX, APITOKEN_PREFIX_LEN) != 0)
		goto out;
	body = token + APITOKEN_PREFIX_LEN;
	len -= APITOKEN_PREFIX_LEN;
	dot = memchr(body, '.', len);
	if (!dot)
		goto out;
	memcpy(parts->msg, BV_APITOKEN_DOMAIN, APITOKEN_DOMAIN_LEN);
	if (bv_b64url_decode(body, (size_t)(dot - body),
			     parts->msg + APITOKEN_DOMAIN_LEN, BV_TOKEN_MAX,
			     &plen) < 0 ||
	    plen == 0)
		goto out;
	parts->msg_len = APITOKEN_DOMAIN_LEN + plen;
	if (bv_b64url_decode(dot + 1, len - (size_t)(dot + 1 - body),
			     parts->sig, sizeof(parts->sig), &n) < 0 ||
	    n != sizeof(parts->sig))
		goto out;

	root = json_loadb((const char *)parts->msg + APITOKEN_DOMAIN_LEN, plen,
			  JSON_REJECT_DUPLICATES, &jerr);
	if (!root && (jerr.text[0] == '\0' ||
		      json_error_code(&jerr) == json_error_out_of_memory)) {
		rc = BV_ENOMEM;
		goto out;
	}
	if (!json_is_object(root))
		goto out;
	v = json_object_get(root, "aud");
	if (!json_is_string(v) || strcmp(json_string_value(v), BV_APITOKEN_AUD))
		goto out;
	if (payload_uuid(json_object_get(root, "tenant"), 0, tmp.tenant) < 0)
		goto out;
	v = json_object_get(root, "sub");
	if (!json_is_string(v) ||
	    json_string_length(v) != strlen(json_string_value(v)) ||
	    !bv_apitoken_sub_valid(json_string_value(v)))
		goto out;
	strcpy(tmp.sub, json_string_value(v));
	v = json_object_get(root, "jti");
	if (!json_is_string(v) ||
	    bv_b64url_decode(json_string_value(v), json_string_length(v),
			     tmp.jti, sizeof(tmp.jti), &n) < 0 ||
	    n != BV_JTI_LEN)
		goto out;
	v = json_object_get(root, "exp");
	if (!json_is_integer(v))
		goto out;
	tmp.exp = json_integer_value(v);
	if (hex_decode32(json_object_get(root, "req"), tmp.req) < 0)
		goto out;
	*t = tmp;
	rc = 0;
out:
	json_decref(root);
	return rc;
}

int
bv_apitoken_sign(const struct bv_apitoken *t, const uint8_t sk[64], char **out)
{
	char *jti = NULL, *payload = NULL, *p64 = NULL, *s64 = NULL;
	char *tok = NULL, *msg = NULL, req[65];
	uint8_t sig[crypto_sign_BYTES];
	void (*jfree)(void *) = NULL;
	json_t *root = NULL;
	size_t len, i;
	int rc;

	if (!t || !sk || !out || !bv_uuid_valid(t->tenant) ||
	    !bv_apitoken_sub_valid(t->sub)) {
		rc = BV_EINVAL;
		goto out;
	}
	if (sodium_init() < 0) {
		rc = BV_EINTERNAL;
		goto out;
	}
	for (i = 0; i < sizeof(t->req); i++)
		snprintf(req + 2 * i, 3, "%02x", t->req[i]);
	rc = BV_ENOMEM;
	jti = bv_b64url_encode(t->jti, sizeof(t->jti));
	if (!jti)
		goto out;
	root = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "aud",
			 BV_APITOKEN_AUD, "tenant", t->tenant, "sub", t->sub,
			 "jti", jti, "exp", (json_int_t)t->exp, "req", req);
	if (!root)
		goto out;
	payload = json_dumps(root, JSON_COMPACT);
	if (!payload)
		goto out;
	len = strlen(payload);
	msg = bv_malloc(APITOKEN_DOMAIN_LEN + len);
	if (!msg)
		goto out;
	memcpy(msg, BV_APITOKEN_DOMAIN, APITOKEN_DOMAIN_LEN);
	memcpy(msg + APITOKEN_DOMAIN_LEN, payload, len);
	crypto_sign_detached(sig, NULL, (const uint8_t *)msg,
			     APITOKEN_DOMAIN_LEN + len, sk);
	p64 = bv_b64url_encode((const uint8_t *)payload, len);
	s64 = bv_b64url_encode(sig, sizeof(sig));
	if (!p64 || !s64)
		goto out;
	len = APITOKEN_PREFIX_LEN + strlen(p64) + 1 + strlen(s64) + 1;
	if (len - 1 > BV_TOKEN_MAX) {
		rc = BV_EINVAL;
		goto out;
	}
	tok = bv_malloc(len);
	if (!tok)
		goto out;
	snprintf(tok, len, "%s%s.%s", BV_APITOKEN_PREFIX, p64, s64);
	*out = tok;
	rc = 0;
out:
	if (payload) {
		json_get_alloc_funcs(NULL, &jfree);
		jfree(payload);
	}
	json_decref(root);
	bv_free(msg);
	bv_free(jti);
	bv_free(p64);
	bv_free(s64);
	return rc;
}

int
bv_apitoken_peek(const char *token, struct bv_apitoken *out)
{
	struct apitoken_parts parts;

	return apitoken_parse(token, &parts, out);
}

int
bv_apitoken_verify(const char *token, const uint8_t pk[32], int64_t now,
		   int64_t max_ttl_s, struct bv_apitoken *out)
{
	struct apitoken_parts parts;
	struct bv_apitoken t;
	int rc;

	rc = apitoken_parse(token, &parts, &t);
	if (rc < 0)
		goto out;
	rc = BV_ETOKEN;
	if (!pk || sodium_init() < 0)
		goto out;
	if (crypto_sign_verify_detached(parts.sig, parts.msg, parts.msg_len,
					pk) != 0)
		goto out;
	if (t.exp < now) {
		rc = BV_ETOKEN_EXPIRED;
		goto out;
	}
	if (max_ttl_s < 0)
		max_ttl_s = 0;
	if ((uint64_t)t.exp - (uint64_t)now > (uint64_t)max_ttl_s)
		goto out;
	*out = t;
	rc = 0;
out:
	return rc;
}
