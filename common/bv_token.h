/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * bv_token.h: enrollment tokens, signed by a tenant's Ed25519 key.
 *
 * Format (docs/protocol.md): "bvt1." b64url(payload JSON) "." b64url(sig).
 * The municipality signs (bvchat-relay admin issue-token); the relay verifies
 * with the tenant's public key and records the jti so a token enrolls once.
 */
#ifndef BV_TOKEN_H
#define BV_TOKEN_H

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

#endif
