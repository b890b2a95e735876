/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * crypto_web.c: libsignal's crypto provider in the WebAssembly build, on
 * libsodium (HMAC-SHA256, SHA-512, randombytes_buf, which reads the
 * browser's crypto.getRandomValues) and mbedtls's AES (CBC, with the
 * PKCS#5 padding done here, and CTR). No OpenSSL.
 *
 * Same contract as crypto.c (crypto.h); tests/unit/client/test_crypto.c
 * runs against both. It keeps no keys: key schedules, hash states and
 * buffers that may hold key material or plaintext are wiped.
 */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include <mbedtls/aes.h>
#include <sodium.h>

#include "bv_error.h"
#include "bv_util.h"
#include "crypto.h"

#define AES_BLOCK 16

static int
provider_random(uint8_t *data, size_t len, void *user_data)
{
	(void)user_data;
	/*
	 * In the browser, libsodium's randombytes is a JS function found by
	 * randombytes_stir(), which sodium_init() calls; before that there is
	 * none. No randomness at all aborts inside libsodium.
	 */
	if (sodium_init() < 0)
		return SG_ERR_UNKNOWN;
	if (len > 0)
		randombytes_buf(data, len);
	return SG_SUCCESS;
}

static int
provider_hmac_sha256_init(void **hmac_context, const uint8_t *key,
			  size_t key_len, void *user_data)
{
	static const uint8_t empty_key[1];
	crypto_auth_hmacsha256_state *st;

	(void)user_data;
	if (!hmac_context || (!key && key_len > 0))
		return SG_ERR_INVAL;
	st = bv_malloc(sizeof(*st));
	if (!st)
		return SG_ERR_NOMEM;
	crypto_auth_hmacsha256_init(st, key ? key : empty_key, key_len);
	*hmac_context = st;
	return SG_SUCCESS;
}

static int
provider_hmac_sha256_update(void *hmac_context, const uint8_t *data,
			    size_t data_len, void *user_data)
{
	(void)user_data;
	if (!hmac_context || (!data && data_len > 0))
		return SG_ERR_INVAL;
	if (data_len == 0)
		return SG_SUCCESS;
	crypto_auth_hmacsha256_update(hmac_context, data, data_len);
	return SG_SUCCESS;
}

static int
provider_hmac_sha256_final(void *hmac_context, signal_buffer **output,
			   void *user_data)
{
	uint8_t md[crypto_auth_hmacsha256_BYTES];
	signal_buffer *buf;
	int result;

	(void)user_data;
	if (!hmac_context || !output)
		return SG_ERR_INVAL;
	crypto_auth_hmacsha256_final(hmac_context, md);
	buf = signal_buffer_create(md, sizeof(md));
	if (!buf) {
		result = SG_ERR_NOMEM;
		goto out;
	}
	*output = buf;
	result = SG_SUCCESS;
out:
	bv_wipe(md, sizeof(md));
	return result;
}

static void
provider_hmac_sha256_cleanup(void *hmac_context, void *user_data)
{
	(void)user_data;
	/* The state holds the padded key. */
	bv_wipe(hmac_context, sizeof(crypto_auth_hmacsha256_state));
	bv_free(hmac_context);
}

static int
provider_sha512_init(void **digest_context, void *user_data)
{
	crypto_hash_sha512_state *st;

	(void)user_data;
	if (!digest_context)
		return SG_ERR_INVAL;
	st = bv_malloc(sizeof(*st));
	if (!st)
		return SG_ERR_NOMEM;
	crypto_hash_sha512_init(st);
	*digest_context = st;
	return SG_SUCCESS;
}

static int
provider_sha512_update(void *digest_context, const uint8_t *data,
		       size_t data_len, void *user_data)
{
	(void)user_data;
	if (!digest_context || (!data && data_len > 0))
		return SG_ERR_INVAL;
	if (data_len == 0)
		return SG_SUCCESS;
	crypto_hash_sha512_update(digest_context, data, data_len);
	return SG_SUCCESS;
}

/* As in crypto.c: after final the context starts again from empty. */
static int
provider_sha512_final(void *digest_context, signal_buffer **output,
		      void *user_data)
{
	uint8_t md[crypto_hash_sha512_BYTES];
	signal_buffer *buf;
	int result;

	(void)user_data;
	if (!digest_context || !output)
		return SG_ERR_INVAL;
	crypto_hash_sha512_final(digest_context, md);
	crypto_hash_sha512_init(digest_context);
	buf = signal_buffer_create(md, sizeof(md));
	if (!buf) {
		result = SG_ERR_NOMEM;
		goto out;
	}
	*output = buf;
	result = SG_SUCCESS;
out:
	bv_wipe(md, sizeof(md));
	return result;
}

static void
provider_sha512_cleanup(void *digest_context, void *user_data)
{
	(void)user_data;
	bv_wipe(digest_context, sizeof(crypto_hash_sha512_state));
	bv_free(digest_context);
}

/* 1 when a < b, else 0; both below 2^31. No branch, no table. */
static uint32_t
ct_lt(uint32_t a, uint32_t b)
{
	return (a - b) >> 31;
}

/*
 * Checks the PKCS#5 padding at the end of len decrypted bytes (len a
 * non-zero multiple of 16). Returns its length, 1..16, or 0 when it is not
 * valid. The work done does not depend on the bytes, so that the time a
 * failed decryption takes says nothing about the plaintext (EVP, under
 * crypto.c, is constant-time here too); only valid/invalid is branched on.
 */
static uint32_t
pkcs5_pad_len(const uint8_t *p, size_t len)
{
	const uint8_t *last = p + len - AES_BLOCK;
	uint32_t pad = last[AES_BLOCK - 1];
	uint32_t bad = ct_lt(AES_BLOCK, pad); /* pad 0 returns 0 anyway */
	uint32_t k;

	/* Byte k from the end (1..16) is padding when k <= pad. */
	for (k = 1; k <= AES_BLOCK; k++) {
		uint32_t diff = last[AES_BLOCK - k] ^ pad;

		bad |= ct_lt(k - 1, pad) & ct_lt(0, diff);
	}
	return pad & (bad - 1); /* bad 1: 0; bad 0: pad */
}

/*
 * Runs one whole AES operation (enc 1 encrypts, 0 decrypts) into a new
 * signal_buffer, with the argument checks and return codes of crypto.c's
 * aes_run(). CBC pads with PKCS#5 and checks the padding on decryption;
 * CTR does not pad. The working buffer may hold plaintext and is wiped, as
 * are the key schedule, the IV copy and CTR's key stream block.
 */
static int
aes_run(signal_buffer **output, int cipher, const uint8_t *key, size_t key_len,
	const uint8_t *iv, size_t iv_len, const uint8_t *in, size_t in_len,
	int enc)
{
	mbedtls_aes_context aes;
	uint8_t ivc[AES_BLOCK], stream[AES_BLOCK];
	uint8_t *tmp = NULL;
	size_t cap = 0, out_len = 0, ctr_off = 0;
	signal_buffer *buf;
	unsigned int bits = (unsigned int)key_len * 8;
	uint32_t pad;
	int result, rc = 0;

	mbedtls_aes_init(&aes);
	memset(stream, 0, sizeof(stream));
	if (!output ||
	    (cipher != SG_CIPHER_AES_CBC_PKCS5 &&
	     cipher != SG_CIPHER_AES_CTR_NOPADDING) ||
	    (key_len != 16 && key_len != 24 && key_len != 32) || !key || !iv ||
	    iv_len != AES_BLOCK || (!in && in_len > 0) ||
	    in_len > INT_MAX - AES_BLOCK) {
		result = SG_ERR_INVAL;
		goto out;
	}
	memcpy(ivc, iv, AES_BLOCK); /* mbedtls advances it in place */
	cap = in_len + AES_BLOCK;   /* room for one block of padding */
	tmp = bv_malloc(cap);
	if (!tmp) {
		result = SG_ERR_NOMEM;
		goto out;
	}
	if (cipher == SG_CIPHER_AES_CTR_NOPADDING) {
		/* CTR runs the block cipher forwards in both directions. */
		rc = mbedtls_aes_setkey_enc(&aes, key, bits);
		if (rc == 0 && in_len > 0)
			rc = mbedtls_aes_crypt_ctr(&aes, in_len, &ctr_off, ivc,
						   stream, in, tmp);
		out_len = in_len;
	} else if (enc) {
		pad = AES_BLOCK - (uint32_t)(in_len % AES_BLOCK);
		if (in_len > 0)
			memcpy(tmp, in, in_len);
		memset(tmp + in_len, (int)pad, pad);
		out_len = in_len + pad;
		rc = mbedtls_aes_setkey_enc(&aes, key, bits);
		if (rc == 0)
			rc = mbedtls_aes_crypt_cbc(&aes, MBEDTLS_AES_ENCRYPT,
						   out_len, ivc, tmp, tmp);
	} else {
		/* As EVP: no input, or not whole blocks, is a failure. */
		if (in_len == 0 || in_len % AES_BLOCK != 0) {
			result = SG_ERR_UNKNOWN;
			goto out;
		}
		rc = mbedtls_aes_setkey_dec(&aes, key, bits);
		if (rc == 0)
			rc = mbedtls_aes_crypt_cbc(&aes, MBEDTLS_AES_DECRYPT,
						   in_len, ivc, in, tmp);
		if (rc == 0) {
			pad = pkcs5_pad_len(tmp, in_len);
			if (pad == 0) {
				result = SG_ERR_UNKNOWN;
				goto out;
			}
			out_len = in_len - pad;
		}
	}
	if (rc != 0) {
		result = SG_ERR_UNKNOWN;
		goto out;
	}
	buf = signal_buffer_create(tmp, out_len);
	if (!buf) {
		result = SG_ERR_NOMEM;
		goto out;
	}
	*output = buf;
	result = SG_SUCCESS;
out:
	mbedtls_aes_free(&aes); /* zeroes the key schedule */
	bv_wipe(ivc, sizeof(ivc));
	bv_wipe(stream, sizeof(stream));
	if (tmp)
		bv_wipe(tmp, cap);
	bv_free(tmp);
	return result;
}

static int
provider_encrypt(signal_buffer **output, int cipher, const uint8_t *key,
		 size_t key_len, const uint8_t *iv, size_t iv_len,
		 const uint8_t *plaintext, size_t plaintext_len,
		 void *user_data)
{
	(void)user_data;
	return aes_run(output, cipher, key, key_len, iv, iv_len, plaintext,
		       plaintext_len, 1);
}

static int
provider_decrypt(signal_buffer **output, int cipher, const uint8_t *key,
		 size_t key_len, const uint8_t *iv, size_t iv_len,
		 const uint8_t *ciphertext, size_t ciphertext_len,
		 void *user_data)
{
	(void)user_data;
	return aes_run(output, cipher, key, key_len, iv, iv_len, ciphertext,
		       ciphertext_len, 0);
}

int
bv_crypto_provider_init(signal_crypto_provider *out)
{
	if (!out)
		return BV_EINVAL;
	memset(out, 0, sizeof(*out));
	out->random_func = provider_random;
	out->hmac_sha256_init_func = provider_hmac_sha256_init;
	out->hmac_sha256_update_func = provider_hmac_sha256_update;
	out->hmac_sha256_final_func = provider_hmac_sha256_final;
	out->hmac_sha256_cleanup_func = provider_hmac_sha256_cleanup;
	out->sha512_digest_init_func = provider_sha512_init;
	out->sha512_digest_update_func = provider_sha512_update;
	out->sha512_digest_final_func = provider_sha512_final;
	out->sha512_digest_cleanup_func = provider_sha512_cleanup;
	out->encrypt_func = provider_encrypt;
	out->decrypt_func = provider_decrypt;
	out->user_data = NULL;
	return 0;
}
