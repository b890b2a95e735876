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

#include <stddef.h>
#include <stdint.h>

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

/*
 * Attachment encryption (docs/protocol.md, "Attachment encryption"), in
 * blob_crypto.c on libsodium, which both builds link (crypto_secretstream is
 * in the WebAssembly build's libsodium too), so one file serves both: a
 * fresh key per file, crypto_secretstream_xchacha20poly1305 over pieces of
 * BV_BLOB_PIECE bytes, the last one (possibly empty) tagged FINAL.
 */
#define BV_BLOB_KEY_LEN	       32
#define BV_BLOB_SHA256_LEN     32
#define BV_BLOB_PIECE	       65536
#define BV_BLOB_HEADER_LEN     24 /* crypto_secretstream_..._HEADERBYTES */
#define BV_BLOB_PIECE_OVERHEAD 17 /* crypto_secretstream_..._ABYTES */

/* Ciphertext bytes of a size-byte plaintext: header + size + 17 per piece
 * (size / PIECE + 1 pieces). */
uint64_t bv_blob_sealed_size(uint64_t size);

/*
 * Encrypts pt (len bytes; NULL when len is 0) under a fresh random key
 * (written to key) into a new buffer *ct (bv_free) of *ct_len =
 * bv_blob_sealed_size(len) bytes, and its SHA-256 into sha256.
 * Returns 0; BV_EINVAL for NULL arguments; BV_ENOMEM; BV_EINTERNAL when
 * libsodium fails (not initialised).
 */
int bv_blob_seal(const uint8_t *pt, size_t len, uint8_t key[BV_BLOB_KEY_LEN],
		 uint8_t **ct, size_t *ct_len,
		 uint8_t sha256[BV_BLOB_SHA256_LEN]);

/*
 * Checks and decrypts a downloaded ciphertext: its length must be
 * bv_blob_sealed_size(size) and its SHA-256 sha256 before anything is
 * decrypted; then every piece must authenticate under key, the last one
 * (only) tagged FINAL. Sets *pt (bv_free after bv_wipe; a 1-byte buffer
 * when size is 0) to the size plaintext bytes.
 * Returns 0; BV_EINVAL for NULL arguments; BV_ETAMPERED for anything that
 * does not check out (a changed byte, cut short, extended, wrong key or
 * digest) with nothing handed out; BV_ENOMEM.
 */
int bv_blob_open(const uint8_t *ct, size_t ct_len,
		 const uint8_t key[BV_BLOB_KEY_LEN],
		 const uint8_t sha256[BV_BLOB_SHA256_LEN], uint64_t size,
		 uint8_t **pt);

#endif
