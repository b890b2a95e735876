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

#define TOKEN_PREFIX "bvt1."
#define DOMAIN_MAX   32 /* bytes signed before the payload */
_Static_assert(sizeof(BV_APITOKEN_DOMAIN) - 1 <= DOMAIN_MAX,
	       "the API token's domain fits in front of the payload");

/*
 * Both kinds of token are PREFIX b64url(payload) "." b64url(signature),
 * the signature over DOMAIN ‖ payload (enrollment tokens: no domain). A
 * token's pieces: the signed message and the signature.
 */
struct signed_parts {
	uint8_t msg[DOMAIN_MAX + BV_TOKEN_MAX];
	size_t msg_len;
	uint8_t sig[crypto_sign_BYTES];
};

/*
 * Splits token (PREFIX …) into *p with domain in front of the payload and
 * parses the payload as a JSON object into *root. BV_ETOKEN when malformed,
 * BV_ENOMEM when memory ran out (not the token's fault).
 */
static int
signed_split(const char *token, const char *prefix, const char *domain,
	     struct signed_parts *p, json_t **root)
{
	size_t plen = strlen(prefix), dlen = strlen(domain), len, n = 0;
	const char *body, *dot;
	json_error_t jerr;

	*root = NULL;
	if (!token)
		return BV_ETOKEN;
	len = strnlen(token, BV_TOKEN_MAX + 1);
	if (len > BV_TOKEN_MAX || len < plen || memcmp(token, prefix, plen))
		return BV_ETOKEN;
	body = token + plen;
	len -= plen;
	dot = memchr(body, '.', len);
	if (!dot)
		return BV_ETOKEN;
	memcpy(p->msg, domain, dlen);
	if (bv_b64url_decode(body, (size_t)(dot - body), p->msg + dlen,
			     BV_TOKEN_MAX, &n) < 0 ||
	    n == 0)
		return BV_ETOKEN;
	p->msg_len = dlen + n;
	/* A second '.' in the signature part is not base64url: refused. */
	if (bv_b64url_decode(dot + 1, len - (size_t)(dot + 1 - body), p->sig,
			     sizeof(p->sig), &n) < 0 ||
	    n != sizeof(p->sig))
		return BV_ETOKEN;
	*root = json_loadb((const char *)p->msg + dlen, p->msg_len - dlen,
			   JSON_REJECT_DUPLICATES, &jerr);
	/* jansson leaves the error text empty when an allocation failed. */
	if (!*root && (jerr.text[0] == '\0' ||
		       json_error_code(&jerr) == json_error_out_of_memory))
		return BV_ENOMEM;
	if (!json_is_object(*root)) {
		json_decref(*root);
		*root = NULL;
		return BV_ETOKEN;
	}
	return 0;
}

/* Signs root's compact JSON (after domain) and writes the token to *out. */
static int
signed_encode(json_t *root, const char *prefix, const char *domain,
	      const uint8_t sk[64], char **out)
{
	size_t dlen = strlen(domain), len;
	char *payload = NULL, *msg = NULL, *p64 = NULL, *s64 = NULL;
	uint8_t sig[crypto_sign_BYTES];
	void (*jfree)(void *) = NULL;
	int rc = BV_ENOMEM;

	payload = root ? json_dumps(root, JSON_COMPACT) : NULL;
	if (!payload)
		goto out;
	len = strlen(payload);
	msg = bv_malloc(dlen + len);
	if (!msg)
		goto out;
	memcpy(msg, domain, dlen);
	memcpy(msg + dlen, payload, len);
	crypto_sign_detached(sig, NULL, (const uint8_t *)msg, dlen + len, sk);
	p64 = bv_b64url_encode((const uint8_t *)payload, len);
	s64 = bv_b64url_encode(sig, sizeof(sig));
	if (!p64 || !s64)
		goto out;
	len = strlen(prefix) + strlen(p64) + 1 + strlen(s64) + 1;
	if (len - 1 > BV_TOKEN_MAX) {
		rc = BV_EINVAL;
		goto out;
	}
	*out = bv_malloc(len);
	if (!*out)
		goto out;
	snprintf(*out, len, "%s%s.%s", prefix, p64, s64);
	rc = 0;
out:
	if (payload) {
		json_get_alloc_funcs(NULL, &jfree);
		jfree(payload);
	}
	bv_free(msg);
	bv_free(p64);
	bv_free(s64);
	return rc;
}

/*
 * The signature with the tenant's key, then the expiry against now; exp
 * more than max_ttl_s ahead is refused. Expiry is judged only for tokens
 * the tenant really signed.
 */
static int
signed_check(const struct signed_parts *p, const uint8_t pk[32], int64_t exp,
	     int64_t now, int64_t max_ttl_s)
{
	if (!pk || sodium_init() < 0 ||
	    crypto_sign_verify_detached(p->sig, p->msg, p->msg_len, pk) != 0)
		return BV_ETOKEN;
	if (exp < now)
		return BV_ETOKEN_EXPIRED;
	if (max_ttl_s < 0)
		max_ttl_s = 0;
	if ((uint64_t)exp - (uint64_t)now > (uint64_t)max_ttl_s)
		return BV_ETOKEN;
	return 0;
}

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

/* The claims both kinds share: tenant, jti, exp. */
static int
payload_common(json_t *root, char tenant[BV_UUID_LEN + 1],
	       uint8_t jti[BV_JTI_LEN], int64_t *exp)
{
	json_t *v = json_object_get(root, "jti");
	size_t n = 0;

	if (payload_uuid(json_object_get(root, "tenant"), 0, tenant) < 0)
		return BV_ETOKEN;
	if (!json_is_string(v) ||
	    bv_b64url_decode(json_string_value(v), json_string_length(v), jti,
			     BV_JTI_LEN, &n) < 0 ||
	    n != BV_JTI_LEN)
		return BV_ETOKEN;
	v = json_object_get(root, "exp");
	if (!json_is_integer(v))
		return BV_ETOKEN;
	*exp = json_integer_value(v);
	return 0;
}

/* ---- enrollment tokens ---- */

/* Reads token into *parts and its payload into *t. */
static int
token_parse(const char *token, struct signed_parts *parts, struct bv_token *t)
{
	struct bv_token tmp;
	json_t *root, *v;
	int rc;

	rc = signed_split(token, TOKEN_PREFIX, "", parts, &root);
	if (rc < 0)
		return rc;
	rc = BV_ETOKEN;
	v = json_object_get(root, "account");
	if (payload_common(root, tmp.tenant, tmp.jti, &tmp.exp) < 0 || !v ||
	    payload_uuid(v, 1, tmp.account) < 0)
		goto out;
	*t = tmp;
	rc = 0;
out:
	json_decref(root);
	return rc;
}

int
bv_token_sign(const struct bv_token *t, const uint8_t sk[64], char **out)
{
	char *jti = NULL;
	json_t *root = NULL;
	int rc;

	if (!t || !sk || !out || !bv_uuid_valid(t->tenant) ||
	    (t->account[0] && !bv_uuid_valid(t->account)))
		return BV_EINVAL;
	if (sodium_init() < 0)
		return BV_EINTERNAL;
	jti = bv_b64url_encode(t->jti, sizeof(t->jti));
	if (jti)
		root = json_pack("{s:s, s:s?, s:s, s:I}", "tenant", t->tenant,
				 "account", t->account[0] ? t->account : NULL,
				 "jti", jti, "exp", (json_int_t)t->exp);
	rc = signed_encode(root, TOKEN_PREFIX, "", sk, out);
	json_decref(root);
	bv_free(jti);
	return rc;
}

int
bv_token_peek(const char *token, struct bv_token *out)
{
	struct signed_parts parts;

	return token_parse(token, &parts, out);
}

int
bv_token_verify(const char *token, const uint8_t pk[32], int64_t now,
		int64_t max_ttl_s, struct bv_token *out)
{
	struct signed_parts parts;
	struct bv_token t;
	int rc;

	rc = token_parse(token, &parts, &t);
	if (rc == 0)
		rc = signed_check(&parts, pk, t.exp, now, max_ttl_s);
	if (rc == 0)
		*out = t;
	return rc;
}

/* ---- fagsystem API tokens ---- */

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
apitoken_parse(const char *token, struct signed_parts *parts,
	       struct bv_apitoken *t)
{
	struct bv_apitoken tmp;
	json_t *root, *v;
	int rc;

	memset(&tmp, 0, sizeof(tmp));
	rc = signed_split(token, BV_APITOKEN_PREFIX, BV_APITOKEN_DOMAIN, parts,
			  &root);
	if (rc < 0)
		return rc;
	rc = BV_ETOKEN;
	v = json_object_get(root, "aud");
	if (!json_is_string(v) || strcmp(json_string_value(v), BV_APITOKEN_AUD))
		goto out;
	if (payload_common(root, tmp.tenant, tmp.jti, &tmp.exp) < 0)
		goto out;
	v = json_object_get(root, "sub");
	if (!json_is_string(v) ||
	    json_string_length(v) != strlen(json_string_value(v)) ||
	    !bv_apitoken_sub_valid(json_string_value(v)))
		goto out;
	strcpy(tmp.sub, json_string_value(v));
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
	char *jti = NULL, req[65];
	json_t *root = NULL;
	size_t i;
	int rc;

	if (!t || !sk || !out || !bv_uuid_valid(t->tenant) ||
	    !bv_apitoken_sub_valid(t->sub))
		return BV_EINVAL;
	if (sodium_init() < 0)
		return BV_EINTERNAL;
	for (i = 0; i < sizeof(t->req); i++)
		snprintf(req + 2 * i, 3, "%02x", t->req[i]);
	jti = bv_b64url_encode(t->jti, sizeof(t->jti));
	if (jti)
		root = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "aud",
				 BV_APITOKEN_AUD, "tenant", t->tenant, "sub",
				 t->sub, "jti", jti, "exp", (json_int_t)t->exp,
				 "req", req);
	rc = signed_encode(root, BV_APITOKEN_PREFIX, BV_APITOKEN_DOMAIN, sk,
			   out);
	json_decref(root);
	bv_free(jti);
	return rc;
}

int
bv_apitoken_peek(const char *token, struct bv_apitoken *out)
{
	struct signed_parts parts;

	return apitoken_parse(token, &parts, out);
}

int
bv_apitoken_verify(const char *token, const uint8_t pk[32], int64_t now,
		   int64_t max_ttl_s, struct bv_apitoken *out)
{
	struct signed_parts parts;
	struct bv_apitoken t;
	int rc;

	rc = apitoken_parse(token, &parts, &t);
	if (rc == 0)
		rc = signed_check(&parts, pk, t.exp, now, max_ttl_s);
	if (rc == 0)
		*out = t;
	return rc;
}
