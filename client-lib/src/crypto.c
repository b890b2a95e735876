/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * crypto.c: libsignal's crypto provider on OpenSSL 3 (EVP_MAC HMAC-SHA256,
 * EVP_MD SHA-512, EVP_CIPHER AES-CBC/PKCS#5 and AES-CTR, RAND_bytes).
 *
 * This is the only file in libbvchat that includes OpenSSL headers; the
 * WebAssembly build links crypto_web.c instead, and both builds share the
 * signal_context of signal_ctx.c. It keeps no keys: copies of key material
 * and decrypted plaintext made here are wiped before they are freed.
 */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "bv_error.h"
#include "bv_util.h"
#include "crypto.h"

#define AES_BLOCK 16

static int
provider_random(uint8_t *data, size_t len, void *user_data)
{
	(void)user_data;
	/* RAND_bytes() takes an int; fill large buffers in chunks. */
	while (len > 0) {
		size_t n = len > INT_MAX ? INT_MAX : len;

		if (RAND_bytes(data, (int)n) != 1)
			return SG_ERR_UNKNOWN;
		data += n;
		len -= n;
	}
	return SG_SUCCESS;
}

static int
provider_hmac_sha256_init(void **hmac_context, const uint8_t *key,
			  size_t key_len, void *user_data)
{
	/* A NULL key means "keep the previous key" to EVP_MAC_init(). */
	static const uint8_t empty_key[1];
	char digest[] = "SHA256";
	OSSL_PARAM params[2];
	EVP_MAC *mac = NULL;
	EVP_MAC_CTX *ctx = NULL;
	int result;

	(void)user_data;
	if (!hmac_context || (!key && key_len > 0)) {
		result = SG_ERR_INVAL;
		goto out;
	}
	mac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
	if (!mac) {
		result = SG_ERR_UNKNOWN;
		goto out;
	}
	ctx = EVP_MAC_CTX_new(mac);
	if (!ctx) {
		result = SG_ERR_NOMEM;
		goto out;
	}
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
						     digest, 0);
	params[1] = OSSL_PARAM_construct_end();
	if (EVP_MAC_init(ctx, key ? key : empty_key, key_len, params) != 1) {
		result = SG_ERR_UNKNOWN;
		goto out;
	}
	*hmac_context = ctx;
	ctx = NULL;
	result = SG_SUCCESS;
out:
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac); /* the context holds its own reference */
	return result;
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
	if (EVP_MAC_update(hmac_context, data, data_len) != 1)
		return SG_ERR_UNKNOWN;
	return SG_SUCCESS;
}

static int
provider_hmac_sha256_final(void *hmac_context, signal_buffer **output,
			   void *user_data)
{
	uint8_t md[EVP_MAX_MD_SIZE];
	size_t md_len = 0;
	signal_buffer *buf;
	int result;

	(void)user_data;
	if (!hmac_context || !output)
		return SG_ERR_INVAL;
	if (EVP_MAC_final(hmac_context, md, &md_len, sizeof(md)) != 1) {
		result = SG_ERR_UNKNOWN;
		goto out;
	}
	buf = signal_buffer_create(md, md_len);
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
	/* EVP_MAC_CTX_free() clears the key it holds. */
	EVP_MAC_CTX_free(hmac_context);
}

static int
provider_sha512_init(void **digest_context, void *user_data)
{
	EVP_MD_CTX *ctx;

	(void)user_data;
	if (!digest_context)
		return SG_ERR_INVAL;
	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return SG_ERR_NOMEM;
	if (EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		return SG_ERR_UNKNOWN;
	}
	*digest_context = ctx;
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
	if (EVP_DigestUpdate(digest_context, data, data_len) != 1)
		return SG_ERR_UNKNOWN;
	return SG_SUCCESS;
}

/*
 * libsignal calls final once per context in 2.3.3, but its contract lets a
 * caller hash again after final (as the Java MessageDigest does), so the
 * context is reset to a fresh SHA-512 state afterwards.
 */
static int
provider_sha512_final(void *digest_context, signal_buffer **output,
		      void *user_data)
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	signal_buffer *buf;
	int result;

	(void)user_data;
	if (!digest_context || !output)
		return SG_ERR_INVAL;
	if (EVP_DigestFinal_ex(digest_context, md, &md_len) != 1 ||
	    EVP_DigestInit_ex(digest_context, EVP_sha512(), NULL) != 1) {
		result = SG_ERR_UNKNOWN;
		goto out;
	}
	buf = signal_buffer_create(md, md_len);
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
	EVP_MD_CTX_free(digest_context);
}

/*
 * Picks the OpenSSL cipher for libsignal's cipher id and key length.
 * Returns NULL for an unknown id or a key that is not 16, 24 or 32 bytes.
 */
static const EVP_CIPHER *
aes_cipher(int cipher, size_t key_len)
{
	if (cipher == SG_CIPHER_AES_CBC_PKCS5) {
		switch (key_len) {
		case 16:
			return EVP_aes_128_cbc();
		case 24:
			return EVP_aes_192_cbc();
		case 32:
			return EVP_aes_256_cbc();
		}
	} else if (cipher == SG_CIPHER_AES_CTR_NOPADDING) {
		switch (key_len) {
		case 16:
			return EVP_aes_128_ctr();
		case 24:
			return EVP_aes_192_ctr();
		case 32:
			return EVP_aes_256_ctr();
		}
	}
	return NULL;
}

/*
 * Runs one whole AES operation (enc 1 encrypts, 0 decrypts) into a new
 * signal_buffer. CBC pads with PKCS#5 and checks the padding on decryption;
 * CTR does not pad. The working buffer may hold plaintext and is wiped.
 */
static int
aes_run(signal_buffer **output, int cipher, const uint8_t *key, size_t key_len,
	const uint8_t *iv, size_t iv_len, const uint8_t *in, size_t in_len,
	int enc)
{
	const EVP_CIPHER *evp;
	EVP_CIPHER_CTX *ctx = NULL;
	uint8_t *tmp = NULL;
	size_t cap = 0;
	signal_buffer *buf;
	int len1 = 0, len2 = 0;
	int result;

	evp = aes_cipher(cipher, key_len);
	if (!output || !evp || !key || !iv || iv_len != AES_BLOCK ||
	    (!in && in_len > 0) || in_len > INT_MAX - AES_BLOCK) {
		result = SG_ERR_INVAL;
		goto out;
	}
	cap = in_len + AES_BLOCK; /* room for one block of padding */
	tmp = bv_malloc(cap);
	ctx = EVP_CIPHER_CTX_new();
	if (!tmp || !ctx) {
		result = SG_ERR_NOMEM;
		goto out;
	}
	if (EVP_CipherInit_ex(ctx, evp, NULL, key, iv, enc) != 1 ||
	    EVP_CIPHER_CTX_set_padding(
		    ctx, cipher == SG_CIPHER_AES_CBC_PKCS5) != 1 ||
	    EVP_CipherUpdate(ctx, tmp, &len1, in, (int)in_len) != 1 ||
	    EVP_CipherFinal_ex(ctx, tmp + len1, &len2) != 1) {
		/* Includes bad padding and CBC input that is not whole blocks. */
		result = SG_ERR_UNKNOWN;
		goto out;
	}
	buf = signal_buffer_create(tmp, (size_t)len1 + (size_t)len2);
	if (!buf) {
		result = SG_ERR_NOMEM;
		goto out;
	}
	*output = buf;
	result = SG_SUCCESS;
out:
	EVP_CIPHER_CTX_free(ctx); /* clears the expanded key schedule */
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
