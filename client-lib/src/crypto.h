/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * crypto.h: the crypto provider that libsignal-protocol-c calls for AES,
 * HMAC-SHA256, SHA-512 and random bytes, and the signal_context built on it.
 *
 * Internal to libbvchat. Two files implement the provider behind the same
 * contract: crypto.c on OpenSSL (the native build; the only file that
 * touches OpenSSL) and crypto_web.c on libsodium and mbedtls's AES (the
 * WebAssembly build). signal_ctx.c, shared by both, makes the context.
 * None holds keys, stores or sessions: those live in store.c and above.
 */
#ifndef BV_CRYPTO_H
#define BV_CRYPTO_H

#include <signal_protocol.h>

/*
 * Fills *out with the build's provider: random_func, the HMAC-SHA256
 * and SHA-512 init/update/final/cleanup functions, encrypt_func and
 * decrypt_func (SG_CIPHER_AES_CBC_PKCS5 and SG_CIPHER_AES_CTR_NOPADDING,
 * 16, 24 or 32 byte keys, 16 byte IV). user_data is NULL; the provider keeps
 * no state of its own. The callbacks return libsignal codes, as libsignal
 * expects: SG_ERR_INVAL for bad arguments (unknown cipher, key or IV length),
 * SG_ERR_NOMEM, and SG_ERR_UNKNOWN when the crypto library fails, including
 * bad padding and CBC input that is not whole blocks (or empty) on
 * decryption.
 * Returns 0, or BV_EINVAL when out is NULL.
 */
int bv_crypto_provider_init(signal_crypto_provider *out);

/*
 * Creates a signal_context that uses the provider above and logs through
 * bv_log(). No locking functions are set: libbvchat is single-threaded, and
 * a context must only ever be used from one thread at a time. Free it with
 * signal_context_destroy().
 * Returns 0 and sets *out, BV_EINVAL when out is NULL, BV_ENOMEM, or
 * BV_EINTERNAL when libsignal refuses the provider.
 */
int bv_signal_context_new(signal_context **out);

#endif
