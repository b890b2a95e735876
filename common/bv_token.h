/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * bv_token.h: enrollment tokens and fagsystem API tokens, both signed by a
 * tenant's Ed25519 key.
 *
 * Format (docs/protocol.md): "bvt1." b64url(payload JSON) "." b64url(sig).
 * The municipality signs (bvchat-relay admin issue-token); the relay verifies
 * with the tenant's public key and records the jti so a token enrolls once.
 */
#ifndef BV_TOKEN_H
#define BV_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define BV_TOKEN_MAX 1024 /* longest token string accepted */
#define BV_JTI_LEN   16

struct bv_token {
	char tenant[37];
	char account[37]; /* "" when the token asks for a new account */
	uint8_t jti[BV_JTI_LEN];
	int64_t exp; /* unix seconds */
};

/*
 * Signs t with the tenant's 64-byte libsodium Ed25519 secret key. Returns 0
 * and a new string in *out, or BV_EINVAL / BV_ENOMEM.
 */
int bv_token_sign(const struct bv_token *t, const uint8_t sk[64], char **out);

/*
 * Reads a token without checking its signature, to learn which tenant's key
 * verifies it. Returns 0, or BV_ETOKEN when malformed (BV_ENOMEM when
 * memory ran out reading it).
 */
int bv_token_peek(const char *token, struct bv_token *out);

/*
 * Verifies the signature with the tenant's public key and the expiry against
 * now (unix seconds); max_ttl_s bounds how far ahead exp may lie. Returns 0
 * and fills *out; BV_ETOKEN (malformed, bad signature, exp too far ahead),
 * BV_ETOKEN_EXPIRED, or BV_ENOMEM.
 */
int bv_token_verify(const char *token, const uint8_t pk[32], int64_t now,
		    int64_t max_ttl_s, struct bv_token *out);

/*
 * Fagsystem API tokens (docs/fagsystem-api.md): one HTTP request of a
 * municipality's case-management system, signed with the same tenant key.
 *
 * Format: "bvf1." b64url(payload JSON) "." b64url(sig), where sig is the
 * Ed25519 signature over BV_APITOKEN_DOMAIN followed by the payload bytes.
 * The domain prefix keeps the signed bytes of the two kinds apart: an
 * enrollment token's signature is over bytes starting with '{', so no
 * signature of one kind ever verifies as the other.
 */
#define BV_APITOKEN_PREFIX  "bvf1."
#define BV_APITOKEN_DOMAIN  "bvchat.v1 fagsystem\n"
#define BV_APITOKEN_AUD	    "bvchat-fagsystem"
#define BV_APITOKEN_SUB_MAX 64 /* bytes of A-Z a-z 0-9 . _ @ - */

struct bv_apitoken {
	char tenant[37];
	char sub[BV_APITOKEN_SUB_MAX + 1]; /* the fagsystem user */
	uint8_t jti[BV_JTI_LEN];
	int64_t exp;	 /* unix seconds */
	uint8_t req[32]; /* bv_apitoken_request_hash() of the request */
};

/* 1 when sub is 1 … BV_APITOKEN_SUB_MAX bytes of A-Z a-z 0-9 . _ @ -. */
int bv_apitoken_sub_valid(const char *sub);

/*
 * SHA-256 over method "\n" path "\n" body (body may be NULL when len is 0):
 * what binds a token to one request. Returns 0 or BV_EINVAL.
 */
int bv_apitoken_request_hash(const char *method, const char *path,
			     const uint8_t *body, size_t len, uint8_t out[32]);

/*
 * Signs t with the tenant's 64-byte Ed25519 secret key. Returns 0 and a new
 * string in *out (bv_free), or BV_EINVAL / BV_ENOMEM / BV_EINTERNAL.
 */
int bv_apitoken_sign(const struct bv_apitoken *t, const uint8_t sk[64],
		     char **out);

/*
 * Reads a token without checking its signature, to learn its tenant.
 * Returns 0, BV_ETOKEN when malformed, or BV_ENOMEM.
 */
int bv_apitoken_peek(const char *token, struct bv_apitoken *out);

/*
 * Verifies the signature with the tenant's public key, the audience and
 * the expiry against now (unix seconds); exp may lie at most max_ttl_s
 * ahead. Returns 0 and fills *out; BV_ETOKEN (malformed, wrong audience,
 * bad signature, exp too far ahead), BV_ETOKEN_EXPIRED, or BV_ENOMEM. The
 * request hash and the jti are the caller's to check.
 */
int bv_apitoken_verify(const char *token, const uint8_t pk[32], int64_t now,
		       int64_t max_ttl_s, struct bv_apitoken *out);

#endif
