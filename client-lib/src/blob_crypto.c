/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * blob_crypto.c: encrypts and checks attachments (crypto.h): libsodium's
 * crypto_secretstream_xchacha20poly1305 in 64 KiB pieces and SHA-256 of
 * the ciphertext. Linked by both builds (native and WebAssembly): both
 * carry libsodium, so the format cannot drift between two copies.
 *
 * In memory, whole files: the relay takes at most max_blob_bytes (25 MiB by
 * default). No I/O, no keys kept.
 */
#include <string.h>

#include <sodium.h>

#include "bv_error.h"
#include "bv_util.h"
#include "crypto.h"

_Static_assert(BV_BLOB_KEY_LEN ==
		       crypto_secretstream_xchacha20poly1305_KEYBYTES,
	       "key length");
_Static_assert(BV_BLOB_HEADER_LEN ==
		       crypto_secretstream_xchacha20poly1305_HEADERBYTES,
	       "header length");
_Static_assert(BV_BLOB_PIECE_OVERHEAD ==
		       crypto_secretstream_xchacha20poly1305_ABYTES,
	       "piece overhead");
_Static_assert(BV_BLOB_SHA256_LEN == crypto_hash_sha256_BYTES, "sha256");

uint64_t
bv_blob_sealed_size(uint64_t size)
{
	return BV_BLOB_HEADER_LEN + size +
	       BV_BLOB_PIECE_OVERHEAD * (size / BV_BLOB_PIECE + 1);
}

int
bv_blob_seal(const uint8_t *pt, size_t len, uint8_t key[BV_BLOB_KEY_LEN],
	     uint8_t **ct, size_t *ct_len, uint8_t sha256[BV_BLOB_SHA256_LEN])
{
	crypto_secretstream_xchacha20poly1305_state st;
	uint64_t total = bv_blob_sealed_size(len);
	size_t off = 0, n;
	uint8_t *out = NULL, *p;
	unsigned char tag;
	int rc = BV_EINTERNAL;

	if ((!pt && len) || !key || !ct || !ct_len || !sha256)
		return BV_EINVAL;
	if (total > SIZE_MAX)
		return BV_ENOMEM;
	out = bv_malloc((size_t)total);
	if (!out)
		return BV_ENOMEM;
	crypto_secretstream_xchacha20poly1305_keygen(key);
	if (crypto_secretstream_xchacha20poly1305_init_push(&st, out, key))
		goto out;
	p = out + BV_BLOB_HEADER_LEN;
	/* len / PIECE + 1 pieces: a full last piece is followed by an empty
	 * FINAL one, so the FINAL tag is always on a piece of its own size. */
	for (;;) {
		n = len - off < BV_BLOB_PIECE ? len - off : BV_BLOB_PIECE;
		tag = len - off < BV_BLOB_PIECE
			      ? crypto_secretstream_xchacha20poly1305_TAG_FINAL
			      : crypto_secretstream_xchacha20poly1305_TAG_MESSAGE;
		if (crypto_secretstream_xchacha20poly1305_push(
			    &st, p, NULL, n ? pt + off : NULL, n, NULL, 0, tag))
			goto out;
		p += n + BV_BLOB_PIECE_OVERHEAD;
		off += n;
		if (tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL)
			break;
	}
	if ((uint64_t)(p - out) != total)
		goto out;
	crypto_hash_sha256(sha256, out, (unsigned long long)total);
	*ct = out;
	*ct_len = (size_t)total;
	out = NULL;
	rc = 0;
out:
	bv_wipe(&st, sizeof(st));
	if (out) {
		bv_wipe(key, BV_BLOB_KEY_LEN);
		bv_free(out);
	}
	return rc;
}

int
bv_blob_open(const uint8_t *ct, size_t ct_len,
	     const uint8_t key[BV_BLOB_KEY_LEN],
	     const uint8_t sha256[BV_BLOB_SHA256_LEN], uint64_t size,
	     uint8_t **pt)
{
	crypto_secretstream_xchacha20poly1305_state st;
	uint8_t digest[crypto_hash_sha256_BYTES];
	const uint8_t *p;
	uint8_t *out = NULL;
	unsigned long long mlen;
	size_t off = 0, n;
	unsigned char tag;
	int rc = BV_ETAMPERED;

	if (!ct || !key || !sha256 || !pt)
		return BV_EINVAL;
	/* Length, then digest: nothing is decrypted from a file that is not
	 * the one the message names. */
	if (size > SIZE_MAX - BV_BLOB_PIECE ||
	    (uint64_t)ct_len != bv_blob_sealed_size(size))
		return BV_ETAMPERED;
	crypto_hash_sha256(digest, ct, ct_len);
	if (sodium_memcmp(digest, sha256, sizeof(digest)) != 0)
		return BV_ETAMPERED;
	out = bv_malloc(size ? (size_t)size : 1);
	if (!out)
		return BV_ENOMEM;
	if (crypto_secretstream_xchacha20poly1305_init_pull(&st, ct, key))
		goto out;
	p = ct + BV_BLOB_HEADER_LEN;
	for (;;) {
		n = size - off < BV_BLOB_PIECE ? (size_t)(size - off)
					       : BV_BLOB_PIECE;
		if (crypto_secretstream_xchacha20poly1305_pull(
			    &st, out + off, &mlen, &tag, p,
			    n + BV_BLOB_PIECE_OVERHEAD, NULL, 0) ||
		    mlen != n)
			goto out;
		p += n + BV_BLOB_PIECE_OVERHEAD;
		off += n;
		/* FINAL exactly on the short (last) piece: a file cut at a
		 * piece boundary, or pieces reordered, does not pass. */
		if ((tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL) !=
		    (n < BV_BLOB_PIECE))
			goto out;
		if (n < BV_BLOB_PIECE)
			break;
	}
	if (off != size || p != ct + ct_len)
		goto out;
	*pt = out;
	out = NULL;
	rc = 0;
out:
	bv_wipe(&st, sizeof(st));
	if (out) {
		bv_wipe(out, size ? (size_t)size : 1);
		bv_free(out);
	}
	return rc;
}
