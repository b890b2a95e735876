/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * bv_token.c: signs, reads and verifies enrollment tokens
 * ("bvt1." b64url(payload) "." b64url(Ed25519 signature over the payload)).
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
