/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_crypto.c: unit tests of libbvchat's crypto provider against published
 * vectors (NIST SP 800-38A AES-CBC and AES-CTR, RFC 4231 HMAC-SHA256,
 * FIPS 180-2 SHA-512), error paths, PKCS#5 padding, random bytes, and one
 * end-to-end run of libsignal on the provider: X3DH from Bob's bundle, then
 * Double Ratchet messages both ways between two parties with small in-memory
 * stores. The stores here are test stubs, not the client's store (store.c).
 * The same program tests crypto.c (native build, tests/unit) and
 * crypto_web.c (WebAssembly build under node, web-widget/CMakeLists.txt).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curve.h>
#include <key_helper.h>
#include <protocol.h>
#include <ratchet.h>
#include <session_builder.h>
#include <session_cipher.h>
#include <session_pre_key.h>
#include <signal_protocol.h>

#include "bv_error.h"
#include "bv_util.h"
#include "crypto.h"

/* Decodes a hex string into a new bv_malloc'd buffer; *len gets its size. */
static uint8_t *
unhex(const char *s, size_t *len)
{
	size_t n = strlen(s) / 2, i;
	uint8_t *b = bv_malloc(n ? n : 1);

	assert_non_null(b);
	for (i = 0; i < n; i++) {
		unsigned int v;

		assert_int_equal(sscanf(s + 2 * i, "%2x", &v), 1);
		b[i] = (uint8_t)v;
	}
	*len = n;
	return b;
}

static void
assert_buf_hex(signal_buffer *buf, const char *hex)
{
	size_t len;
	uint8_t *want = unhex(hex, &len);

	assert_non_null(buf);
	assert_int_equal(signal_buffer_len(buf), len);
	assert_memory_equal(signal_buffer_data(buf), want, len);
	bv_free(want);
}

/* SP 800-38A: the same four plaintext blocks for every AES vector. */
#define SP800_PT                                                               \
	"6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"     \
	"30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
#define SP800_KEY256                                                           \
	"603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4"
#define SP800_CBC_IV "000102030405060708090a0b0c0d0e0f"

struct aes_vector {
	const char *key, *ct;
};

/* F.2.1, F.2.3 and F.2.5: CBC-AES128, -AES192, -AES256 encryption. */
static const struct aes_vector cbc_vectors[] = {
	{"2b7e151628aed2a6abf7158809cf4f3c",
	 "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"
	 "73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7"},
	{"8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b",
	 "4f021db243bc633d7178183a9fa071e8b4d9ada9ad7dedf4e5e738763f69145a"
	 "571b242012fb7ae07fa9baac3df102e008b0e27988598881d920a9e64f5615cd"},
	{SP800_KEY256,
	 "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d"
	 "39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b"},
};

static void
test_aes_cbc_vectors(void **state)
{
	signal_crypto_provider p;
	size_t i;

	(void)state;
	assert_int_equal(bv_crypto_provider_init(&p), 0);
	for (i = 0; i < sizeof(cbc_vectors) / sizeof(cbc_vectors[0]); i++) {
		size_t klen, ivlen, ptlen, ctlen;
		uint8_t *key = unhex(cbc_vectors[i].key, &klen);
		uint8_t *iv = unhex(SP800_CBC_IV, &ivlen);
		uint8_t *pt = unhex(SP800_PT, &ptlen);
		uint8_t *ct = unhex(cbc_vectors[i].ct, &ctlen);
		signal_buffer *enc = NULL, *dec = NULL;

		/* PKCS#5 adds one whole block of padding to 64 bytes. */
		assert_int_equal(p.encrypt_func(&enc, SG_CIPHER_AES_CBC_PKCS5,
						key, klen, iv, ivlen, pt, ptlen,
						p.user_data),
				 SG_SUCCESS);
		assert_int_equal(signal_buffer_len(enc), ptlen + 16);
		assert_memory_equal(signal_buffer_data(enc), ct, ctlen);

		assert_int_equal(
			p.decrypt_func(&dec, SG_CIPHER_AES_CBC_PKCS5, key, klen,
				       iv, ivlen, signal_buffer_data(enc),
				       signal_buffer_len(enc), p.user_data),
			SG_SUCCESS);
		assert_int_equal(signal_buffer_len(dec), ptlen);
		assert_memory_equal(signal_buffer_data(dec), pt, ptlen);

		signal_buffer_free(enc);
		signal_buffer_free(dec);
		bv_free(key);
		bv_free(iv);
		bv_free(pt);
		bv_free(ct);
	}
}

static void
test_aes_cbc_lengths(void **state)
{
	static const uint8_t key[32] = {1}, iv[16] = {2};
	uint8_t pt[33];
	signal_crypto_provider p;
	size_t n;

	(void)state;
	memset(pt, 0x5a, sizeof(pt));
	assert_int_equal(bv_crypto_provider_init(&p), 0);
	/* Padding always adds 1..16 bytes, so 0 and 16 grow by a block. */
	for (n = 0; n <= sizeof(pt); n++) {
		signal_buffer *enc = NULL, *dec = NULL;

		assert_int_equal(p.encrypt_func(&enc, SG_CIPHER_AES_CBC_PKCS5,
						key, 32, iv, 16, pt, n, NULL),
				 SG_SUCCESS);
		assert_int_equal(signal_buffer_len(enc), (n / 16 + 1) * 16);
		assert_int_equal(p.decrypt_func(&dec, SG_CIPHER_AES_CBC_PKCS5,
						key, 32, iv, 16,
						signal_buffer_data(enc),
						signal_buffer_len(enc), NULL),
				 SG_SUCCESS);
		assert_int_equal(signal_buffer_len(dec), n);
		if (n > 0)
			assert_memory_equal(signal_buffer_data(dec), pt, n);
		signal_buffer_free(enc);
		signal_buffer_free(dec);
	}
}

/* F.5.5: CTR-AES256.Encrypt. */
static void
test_aes_ctr_vector(void **state)
{
	size_t klen, ivlen, ptlen;
	uint8_t *key = unhex(SP800_KEY256, &klen);
	uint8_t *iv = unhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff", &ivlen);
	uint8_t *pt = unhex(SP800_PT, &ptlen);
	static const char ct[] = "601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b"
				 "59aca84e990cacaf5c5"
				 "2b0930daa23de94ce87017ba2d84988ddfc9c58db67aa"
				 "da613c2dd08457941a6";
	signal_crypto_provider p;
	signal_buffer *enc = NULL, *dec = NULL, *part = NULL;

	(void)state;
	assert_int_equal(bv_crypto_provider_init(&p), 0);
	assert_int_equal(p.encrypt_func(&enc, SG_CIPHER_AES_CTR_NOPADDING, key,
					klen, iv, ivlen, pt, ptlen, NULL),
			 SG_SUCCESS);
	assert_buf_hex(enc, ct);
	assert_int_equal(p.decrypt_func(&dec, SG_CIPHER_AES_CTR_NOPADDING, key,
					klen, iv, ivlen,
					signal_buffer_data(enc),
					signal_buffer_len(enc), NULL),
			 SG_SUCCESS);
	assert_buf_hex(dec, SP800_PT);

	/* No padding: a partial block stays partial. */
	assert_int_equal(p.encrypt_func(&part, SG_CIPHER_AES_CTR_NOPADDING, key,
					klen, iv, ivlen, pt, 5, NULL),
			 SG_SUCCESS);
	assert_int_equal(signal_buffer_len(part), 5);
	assert_memory_equal(signal_buffer_data(part), signal_buffer_data(enc),
			    5);

	signal_buffer_free(enc);
	signal_buffer_free(dec);
	signal_buffer_free(part);
	bv_free(key);
	bv_free(iv);
	bv_free(pt);
}

static void
test_aes_errors(void **state)
{
	size_t klen, ivlen, ptlen;
	uint8_t *key = unhex(SP800_KEY256, &klen);
	uint8_t *iv = unhex(SP800_CBC_IV, &ivlen);
	uint8_t *pt = unhex(SP800_PT, &ptlen);
	uint8_t wrong[32];
	signal_crypto_provider p;
	signal_buffer *enc = NULL, *out = NULL;
	uint8_t *ct;

	(void)state;
	assert_int_equal(bv_crypto_provider_init(&p), 0);
	assert_int_equal(p.encrypt_func(&enc, SG_CIPHER_AES_CBC_PKCS5, key,
					klen, iv, ivlen, pt, ptlen, NULL),
			 SG_SUCCESS);
	ct = signal_buffer_data(enc);

	/* Wrong key: the last block decrypts to garbage, not padding. */
	memcpy(wrong, key, sizeof(wrong));
	wrong[0] ^= 1;
	assert_int_equal(p.decrypt_func(&out, SG_CIPHER_AES_CBC_PKCS5, wrong,
					32, iv, ivlen, ct,
					signal_buffer_len(enc), NULL),
			 SG_ERR_UNKNOWN);
	assert_null(out);

	/* Without the padding block the last byte is not valid padding. */
	assert_int_equal(p.decrypt_func(&out, SG_CIPHER_AES_CBC_PKCS5, key,
					klen, iv, ivlen, ct, 64, NULL),
			 SG_ERR_UNKNOWN);
	/* Not whole blocks, and no input at all. */
	assert_int_equal(p.decrypt_func(&out, SG_CIPHER_AES_CBC_PKCS5, key,
					klen, iv, ivlen, ct, 70, NULL),
			 SG_ERR_UNKNOWN);
	assert_int_equal(p.decrypt_func(&out, SG_CIPHER_AES_CBC_PKCS5, key,
					klen, iv, ivlen, ct, 0, NULL),
			 SG_ERR_UNKNOWN);
	assert_null(out);

	/* Bad arguments. */
	assert_int_equal(
		p.encrypt_func(&out, 99, key, klen, iv, ivlen, pt, ptlen, NULL),
		SG_ERR_INVAL);
	assert_int_equal(p.encrypt_func(&out, SG_CIPHER_AES_CBC_PKCS5, key, 31,
					iv, ivlen, pt, ptlen, NULL),
			 SG_ERR_INVAL);
	assert_int_equal(p.encrypt_func(&out, SG_CIPHER_AES_CTR_NOPADDING, key,
					klen, iv, 8, pt, ptlen, NULL),
			 SG_ERR_INVAL);
	assert_int_equal(p.decrypt_func(&out, SG_CIPHER_AES_CBC_PKCS5, NULL,
					klen, iv, ivlen, ct, 16, NULL),
			 SG_ERR_INVAL);
	assert_null(out);

	signal_buffer_free(enc);
	bv_free(key);
	bv_free(iv);
	bv_free(pt);
}

/*
 * Last blocks made by hand: a 16-byte plaintext encrypted with padding gives
 * two blocks, and the first block decrypted alone ends with the plaintext's
 * own last bytes, which must pass or fail as PKCS#5 padding. Each bad one
 * differs from good padding in one byte, including the byte furthest from
 * the end, which an off-by-one in the check would miss.
 */
static const struct {
	const char *tail; /* hex of the block's last bytes; the rest is 0x5a */
	int len;	  /* plaintext length when valid, -1 when not */
} pad_cases[] = {
	{"01", 15},
	{"04040404", 12},
	{"10101010101010101010101010101010", 0},
	{"00", -1},
	{"11", -1},
	{"05040404", -1},
	{"04030404", -1},
	{"04040403", -1},
	{"0f101010101010101010101010101010", -1},
};

static void
test_aes_cbc_padding(void **state)
{
	static const uint8_t key[16] = {7}, iv[16] = {9};
	signal_crypto_provider p;
	size_t i;

	(void)state;
	assert_int_equal(bv_crypto_provider_init(&p), 0);
	for (i = 0; i < sizeof(pad_cases) / sizeof(pad_cases[0]); i++) {
		uint8_t block[16];
		size_t tlen;
		uint8_t *tail = unhex(pad_cases[i].tail, &tlen);
		signal_buffer *enc = NULL, *dec = NULL;
		int rc;

		memset(block, 0x5a, sizeof(block));
		memcpy(block + sizeof(block) - tlen, tail, tlen);
		assert_int_equal(p.encrypt_func(&enc, SG_CIPHER_AES_CBC_PKCS5,
						key, 16, iv, 16, block, 16,
						NULL),
				 SG_SUCCESS);
		assert_int_equal(signal_buffer_len(enc), 32);
		rc = p.decrypt_func(&dec, SG_CIPHER_AES_CBC_PKCS5, key, 16, iv,
				    16, signal_buffer_data(enc), 16, NULL);
		if (pad_cases[i].len < 0) {
			assert_int_equal(rc, SG_ERR_UNKNOWN);
			assert_null(dec);
		} else {
			assert_int_equal(rc, SG_SUCCESS);
			assert_int_equal(signal_buffer_len(dec),
					 pad_cases[i].len);
			if (pad_cases[i].len > 0)
				assert_memory_equal(signal_buffer_data(dec),
						    block, pad_cases[i].len);
		}
		signal_buffer_free(enc);
		signal_buffer_free(dec);
		bv_free(tail);
	}
}

struct hmac_vector {
	const char *key_hex; /* NULL: key is rep_byte repeated rep_len */
	uint8_t rep_byte;
	size_t rep_len;
	const char *data; /* NULL: data is 0xcd/0xdd repeated 50 */
	uint8_t data_byte;
	const char *mac;
};

/* RFC 4231 test cases 1, 2, 3, 4, 6 and 7, and HMAC("", ""). */
static const struct hmac_vector hmac_vectors[] = {
	{NULL, 0x0b, 20, "Hi There", 0,
	 "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
	{"4a656665", 0, 0, "what do ya want for nothing?", 0,
	 "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
	{NULL, 0xaa, 20, NULL, 0xdd,
	 "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
	{"0102030405060708090a0b0c0d0e0f10111213141516171819", 0, 0, NULL, 0xcd,
	 "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
	{NULL, 0xaa, 131,
	 "Test Using Larger Than Block-Size Key - Hash Key First", 0,
	 "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
	{NULL, 0xaa, 131,
	 "This is a test using a larger than block-size key and a larger "
	 "than block-size data. The key needs to be hashed before being "
	 "used by the HMAC algorithm.",
	 0, "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
	{"", 0, 0, "", 0,
	 "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad"},
};

static void
test_hmac_sha256_vectors(void **state)
{
	signal_crypto_provider p;
	size_t i;

	(void)state;
	assert_int_equal(bv_crypto_provider_init(&p), 0);
	for (i = 0; i < sizeof(hmac_vectors) / sizeof(hmac_vectors[0]); i++) {
		const struct hmac_vector *v = &hmac_vectors[i];
		uint8_t key[131], data[200];
		size_t klen, dlen, off;
		void *ctx = NULL;
		signal_buffer *mac = NULL;

		if (v->key_hex) {
			uint8_t *k = unhex(v->key_hex, &klen);

			memcpy(key, k, klen);
			bv_free(k);
		} else {
			klen = v->rep_len;
			memset(key, v->rep_byte, klen);
		}
		if (v->data) {
			dlen = strlen(v->data);
			memcpy(data, v->data, dlen);
		} else {
			dlen = 50;
			memset(data, v->data_byte, dlen);
		}

		assert_int_equal(p.hmac_sha256_init_func(&ctx, key, klen, NULL),
				 SG_SUCCESS);
		/* Incremental: 1, 2, 3, ... byte pieces. */
		for (off = 0; off < dlen;) {
			size_t n = off + 1 + off % 7 > dlen ? dlen - off
							    : 1 + off % 7;

			assert_int_equal(p.hmac_sha256_update_func(
						 ctx, data + off, n, NULL),
					 SG_SUCCESS);
			off += n;
		}
		assert_int_equal(p.hmac_sha256_final_func(ctx, &mac, NULL),
				 SG_SUCCESS);
		assert_buf_hex(mac, v->mac);
		signal_buffer_free(mac);
		p.hmac_sha256_cleanup_func(ctx, NULL);
	}
	/* cleanup accepts NULL, as libsignal may call it after a failure. */
	p.hmac_sha256_cleanup_func(NULL, NULL);
}

static void
sha512_check(const signal_crypto_provider *p, const char *msg, size_t chunk,
	     const char *hex)
{
	size_t len = strlen(msg), off;
	void *ctx = NULL;
	signal_buffer *md = NULL;

	assert_int_equal(p->sha512_digest_init_func(&ctx, NULL), SG_SUCCESS);
	for (off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;

		assert_int_equal(
			p->sha512_digest_update_func(
				ctx, (const uint8_t *)msg + off, n, NULL),
			SG_SUCCESS);
	}
	assert_int_equal(p->sha512_digest_final_func(ctx, &md, NULL),
			 SG_SUCCESS);
	assert_buf_hex(md, hex);
	signal_buffer_free(md);

	/* After final the context starts again from empty. */
	assert_int_equal(p->sha512_digest_update_func(ctx, (const uint8_t *)msg,
						      len, NULL),
			 SG_SUCCESS);
	assert_int_equal(p->sha512_digest_final_func(ctx, &md, NULL),
			 SG_SUCCESS);
	assert_buf_hex(md, hex);
	signal_buffer_free(md);
	p->sha512_digest_cleanup_func(ctx, NULL);
}

/* FIPS 180-2 appendix C: one-block and multi-block messages. */
static void
test_sha512_vectors(void **state)
{
	static const char abc512[] = "ddaf35a193617abacc417349ae20413112e6fa4e8"
				     "9a97ea20a9eeee64b55d39a"
				     "2192992a274fc1a836ba3c23a3feebbd454d44236"
				     "43ce80e2a9ac94fa54ca49f";
	static const char long_msg[] =
		"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
		"hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
	static const char long512[] = "8e959b75dae313da8cf4f72814fc143f8f7779c6"
				      "eb9f7fa17299aeadb6889018"
				      "501d289e4900f7e4331b99dec4b5433ac7d329ee"
				      "b6dd26545e96e55b874be909";
	static const char empty512[] = "cf83e1357eefb8bdf1542850d66d8007d620e40"
				       "50b5715dc83f4a921d36ce9ce"
				       "47d0d13c5d85f2b0ff8318d2877eec2f63b931b"
				       "d47417a81a538327af927da3e";
	signal_crypto_provider p;

	(void)state;
	assert_int_equal(bv_crypto_provider_init(&p), 0);
	sha512_check(&p, "abc", 1, abc512);
	sha512_check(&p, "abc", 3, abc512);
	sha512_check(&p, long_msg, 1, long512);
	sha512_check(&p, long_msg, 13, long512);
	sha512_check(&p, long_msg, 112, long512);
	sha512_check(&p, "", 1, empty512);
	p.sha512_digest_cleanup_func(NULL, NULL);
}

static void
test_random(void **state)
{
	static const uint8_t zero[64];
	uint8_t a[64], b[64];
	signal_crypto_provider p;

	(void)state;
	assert_int_equal(bv_crypto_provider_init(&p), 0);
	memset(a, 0, sizeof(a));
	memset(b, 0, sizeof(b));
	assert_int_equal(p.random_func(a, sizeof(a), NULL), SG_SUCCESS);
	assert_int_equal(p.random_func(b, sizeof(b), NULL), SG_SUCCESS);
	/* Each is 2^-512 likely to be false by chance. */
	assert_memory_not_equal(a, zero, sizeof(a));
	assert_memory_not_equal(b, zero, sizeof(b));
	assert_memory_not_equal(a, b, sizeof(a));
	assert_int_equal(p.random_func(a, 0, NULL), SG_SUCCESS);
}

static void
test_init_args(void **state)
{
	signal_context *ctx = NULL;

	(void)state;
	assert_int_equal(bv_crypto_provider_init(NULL), BV_EINVAL);
	assert_int_equal(bv_signal_context_new(NULL), BV_EINVAL);
	assert_int_equal(bv_signal_context_new(&ctx), 0);
	assert_non_null(ctx);
	signal_context_destroy(ctx);
}

/*
 * In-memory stores for one party: a small table of blobs keyed by strings
 * ("S:name:dev" sessions, "P:id" pre keys, "K:id" signed pre keys,
 * "I:name:dev" remote identities). Enough for the exchange below.
 */
#define TABLE_SIZE 32

struct blob {
	char key[80];
	uint8_t *data;
	size_t len;
};

struct party {
	signal_context *ctx;
	signal_protocol_store_context *store;
	ratchet_identity_key_pair *identity;
	uint32_t reg_id;
	struct blob table[TABLE_SIZE];
};

static struct blob *
table_find(struct party *pt, const char *key)
{
	size_t i;

	for (i = 0; i < TABLE_SIZE; i++)
		if (pt->table[i].data && strcmp(pt->table[i].key, key) == 0)
			return &pt->table[i];
	return NULL;
}

static int
table_put(struct party *pt, const char *key, const uint8_t *data, size_t len)
{
	struct blob *b = table_find(pt, key);
	size_t i;

	for (i = 0; !b && i < TABLE_SIZE; i++)
		if (!pt->table[i].data)
			b = &pt->table[i];
	if (!b)
		return SG_ERR_NOMEM;
	bv_free(b->data);
	b->data = bv_malloc(len ? len : 1);
	if (!b->data)
		return SG_ERR_NOMEM;
	memcpy(b->data, data, len);
	b->len = len;
	snprintf(b->key, sizeof(b->key), "%s", key);
	return 0;
}

static int
table_del(struct party *pt, const char *key)
{
	struct blob *b = table_find(pt, key);

	if (!b)
		return 0;
	bv_free(b->data);
	b->data = NULL;
	return 1;
}

static void
addr_key(char *buf, size_t size, char kind, const signal_protocol_address *a)
{
	snprintf(buf, size, "%c:%.*s:%d", kind, (int)a->name_len, a->name,
		 (int)a->device_id);
}

static int
load_blob(signal_buffer **out, struct party *pt, const char *key)
{
	struct blob *b = table_find(pt, key);

	if (!b)
		return 0;
	*out = signal_buffer_create(b->data, b->len);
	return *out ? 1 : SG_ERR_NOMEM;
}

static int
session_load(signal_buffer **record, signal_buffer **user_record,
	     const signal_protocol_address *address, void *user_data)
{
	char key[80];

	*user_record = NULL;
	addr_key(key, sizeof(key), 'S', address);
	return load_blob(record, user_data, key);
}

static int
session_sub_devices(signal_int_list **sessions, const char *name,
		    size_t name_len, void *user_data)
{
	struct party *pt = user_data;
	signal_int_list *list = signal_int_list_alloc();
	char prefix[80];
	size_t i, plen;

	if (!list)
		return SG_ERR_NOMEM;
	plen = (size_t)snprintf(prefix, sizeof(prefix),
				"S:%.*s:", (int)name_len, name);
	for (i = 0; i < TABLE_SIZE; i++) {
		const char *k = pt->table[i].key;

		if (pt->table[i].data && strncmp(k, prefix, plen) == 0)
			signal_int_list_push_back(list, atoi(k + plen));
	}
	*sessions = list;
	return (int)signal_int_list_size(list);
}

static int
session_store(const signal_protocol_address *address, uint8_t *record,
	      size_t record_len, uint8_t *user_record, size_t user_record_len,
	      void *user_data)
{
	char key[80];

	(void)user_record;
	(void)user_record_len;
	addr_key(key, sizeof(key), 'S', address);
	return table_put(user_data, key, record, record_len);
}

static int
session_contains(const signal_protocol_address *address, void *user_data)
{
	char key[80];

	addr_key(key, sizeof(key), 'S', address);
	return table_find(user_data, key) != NULL;
}

static int
session_delete(const signal_protocol_address *address, void *user_data)
{
	char key[80];

	addr_key(key, sizeof(key), 'S', address);
	return table_del(user_data, key);
}

static int
session_delete_all(const char *name, size_t name_len, void *user_data)
{
	struct party *pt = user_data;
	char prefix[80];
	size_t i, plen;
	int n = 0;

	plen = (size_t)snprintf(prefix, sizeof(prefix),
				"S:%.*s:", (int)name_len, name);
	for (i = 0; i < TABLE_SIZE; i++)
		if (pt->table[i].data &&
		    strncmp(pt->table[i].key, prefix, plen) == 0)
			n += table_del(pt, pt->table[i].key);
	return n;
}

static int
pre_key_load(signal_buffer **record, uint32_t id, void *user_data)
{
	char key[32];

	snprintf(key, sizeof(key), "P:%u", (unsigned int)id);
	return load_blob(record, user_data, key) == 1 ? SG_SUCCESS
						      : SG_ERR_INVALID_KEY_ID;
}

static int
pre_key_store(uint32_t id, uint8_t *record, size_t len, void *user_data)
{
	char key[32];

	snprintf(key, sizeof(key), "P:%u", (unsigned int)id);
	return table_put(user_data, key, record, len);
}

static int
pre_key_contains(uint32_t id, void *user_data)
{
	char key[32];

	snprintf(key, sizeof(key), "P:%u", (unsigned int)id);
	return table_find(user_data, key) != NULL;
}

static int
pre_key_remove(uint32_t id, void *user_data)
{
	char key[32];

	snprintf(key, sizeof(key), "P:%u", (unsigned int)id);
	table_del(user_data, key);
	return 0;
}

static int
signed_pre_key_load(signal_buffer **record, uint32_t id, void *user_data)
{
	char key[32];

	snprintf(key, sizeof(key), "K:%u", (unsigned int)id);
	return load_blob(record, user_data, key) == 1 ? SG_SUCCESS
						      : SG_ERR_INVALID_KEY_ID;
}

static int
signed_pre_key_store(uint32_t id, uint8_t *record, size_t len, void *user_data)
{
	char key[32];

	snprintf(key, sizeof(key), "K:%u", (unsigned int)id);
	return table_put(user_data, key, record, len);
}

static int
signed_pre_key_contains(uint32_t id, void *user_data)
{
	char key[32];

	snprintf(key, sizeof(key), "K:%u", (unsigned int)id);
	return table_find(user_data, key) != NULL;
}

static int
signed_pre_key_remove(uint32_t id, void *user_data)
{
	char key[32];

	snprintf(key, sizeof(key), "K:%u", (unsigned int)id);
	table_del(user_data, key);
	return 0;
}

static int
identity_get_key_pair(signal_buffer **public_data, signal_buffer **private_data,
		      void *user_data)
{
	struct party *pt = user_data;
	int rc;

	rc = ec_public_key_serialize(
		public_data,
		ratchet_identity_key_pair_get_public(pt->identity));
	if (rc < 0)
		return rc;
	rc = ec_private_key_serialize(
		private_data,
		ratchet_identity_key_pair_get_private(pt->identity));
	if (rc < 0) {
		signal_buffer_free(*public_data);
		*public_data = NULL;
	}
	return rc;
}

static int
identity_get_reg_id(void *user_data, uint32_t *registration_id)
{
	*registration_id = ((struct party *)user_data)->reg_id;
	return 0;
}

static int
identity_save(const signal_protocol_address *address, uint8_t *key_data,
	      size_t key_len, void *user_data)
{
	char key[80];

	addr_key(key, sizeof(key), 'I', address);
	if (!key_data) {
		table_del(user_data, key);
		return 0;
	}
	return table_put(user_data, key, key_data, key_len);
}

/* Trust on first use; afterwards only the same key. */
static int
identity_is_trusted(const signal_protocol_address *address, uint8_t *key_data,
		    size_t key_len, void *user_data)
{
	struct blob *b;
	char key[80];

	addr_key(key, sizeof(key), 'I', address);
	b = table_find(user_data, key);
	if (!b)
		return 1;
	return b->len == key_len && memcmp(b->data, key_data, key_len) == 0;
}

static void
party_init(struct party *pt)
{
	signal_protocol_session_store ss = {
		.load_session_func = session_load,
		.get_sub_device_sessions_func = session_sub_devices,
		.store_session_func = session_store,
		.contains_session_func = session_contains,
		.delete_session_func = session_delete,
		.delete_all_sessions_func = session_delete_all,
		.user_data = pt,
	};
	signal_protocol_pre_key_store pks = {
		.load_pre_key = pre_key_load,
		.store_pre_key = pre_key_store,
		.contains_pre_key = pre_key_contains,
		.remove_pre_key = pre_key_remove,
		.user_data = pt,
	};
	signal_protocol_signed_pre_key_store spks = {
		.load_signed_pre_key = signed_pre_key_load,
		.store_signed_pre_key = signed_pre_key_store,
		.contains_signed_pre_key = signed_pre_key_contains,
		.remove_signed_pre_key = signed_pre_key_remove,
		.user_data = pt,
	};
	signal_protocol_identity_key_store iks = {
		.get_identity_key_pair = identity_get_key_pair,
		.get_local_registration_id = identity_get_reg_id,
		.save_identity = identity_save,
		.is_trusted_identity = identity_is_trusted,
		.user_data = pt,
	};

	memset(pt, 0, sizeof(*pt));
	assert_int_equal(bv_signal_context_new(&pt->ctx), 0);
	assert_int_equal(signal_protocol_key_helper_generate_identity_key_pair(
				 &pt->identity, pt->ctx),
			 0);
	assert_int_equal(signal_protocol_key_helper_generate_registration_id(
				 &pt->reg_id, 0, pt->ctx),
			 0);
	assert_int_equal(
		signal_protocol_store_context_create(&pt->store, pt->ctx), 0);
	assert_int_equal(
		signal_protocol_store_context_set_session_store(pt->store, &ss),
		0);
	assert_int_equal(signal_protocol_store_context_set_pre_key_store(
				 pt->store, &pks),
			 0);
	assert_int_equal(signal_protocol_store_context_set_signed_pre_key_store(
				 pt->store, &spks),
			 0);
	assert_int_equal(signal_protocol_store_context_set_identity_key_store(
				 pt->store, &iks),
			 0);
}

static void
party_cleanup(struct party *pt)
{
	size_t i;

	signal_protocol_store_context_destroy(pt->store);
	SIGNAL_UNREF(pt->identity);
	signal_context_destroy(pt->ctx);
	for (i = 0; i < TABLE_SIZE; i++)
		bv_free(pt->table[i].data);
}

/*
 * Bob publishes pre keys 100..102 and signed pre key 7 and returns a bundle
 * with pre key 101, as the relay would hand it to Alice.
 */
static session_pre_key_bundle *
bob_bundle(struct party *bob)
{
	signal_protocol_key_helper_pre_key_list_node *head = NULL, *node;
	session_signed_pre_key *spk = NULL;
	session_pre_key *chosen = NULL;
	session_pre_key_bundle *bundle = NULL;
	signal_buffer *buf = NULL;

	assert_int_equal(signal_protocol_key_helper_generate_pre_keys(
				 &head, 100, 3, bob->ctx),
			 0);
	for (node = head; node;
	     node = signal_protocol_key_helper_key_list_next(node)) {
		session_pre_key *pk =
			signal_protocol_key_helper_key_list_element(node);

		assert_int_equal(session_pre_key_serialize(&buf, pk), 0);
		assert_int_equal(pre_key_store(session_pre_key_get_id(pk),
					       signal_buffer_data(buf),
					       signal_buffer_len(buf), bob),
				 0);
		signal_buffer_free(buf);
		buf = NULL;
		if (session_pre_key_get_id(pk) == 101)
			chosen = pk;
	}
	assert_non_null(chosen);

	assert_int_equal(
		signal_protocol_key_helper_generate_signed_pre_key(
			&spk, bob->identity, 7, 1700000000000ULL, bob->ctx),
		0);
	assert_int_equal(session_signed_pre_key_serialize(&buf, spk), 0);
	assert_int_equal(signed_pre_key_store(7, signal_buffer_data(buf),
					      signal_buffer_len(buf), bob),
			 0);
	signal_buffer_free(buf);

	assert_int_equal(
		session_pre_key_bundle_create(
			&bundle, bob->reg_id, 1, 101,
			ec_key_pair_get_public(
				session_pre_key_get_key_pair(chosen)),
			7,
			ec_key_pair_get_public(
				session_signed_pre_key_get_key_pair(spk)),
			session_signed_pre_key_get_signature(spk),
			session_signed_pre_key_get_signature_len(spk),
			ratchet_identity_key_pair_get_public(bob->identity)),
		0);
	signal_protocol_key_helper_key_list_free(head);
	SIGNAL_UNREF(spk);
	return bundle;
}

/* Encrypts text, checks its type, decrypts it on the other side. */
static void
send_one(session_cipher *from, struct party *to_party, session_cipher *to,
	 const char *text, int want_type)
{
	ciphertext_message *msg = NULL;
	signal_buffer *wire, *plain = NULL;
	size_t len = strlen(text);

	assert_int_equal(
		session_cipher_encrypt(from, (const uint8_t *)text, len, &msg),
		SG_SUCCESS);
	assert_int_equal(ciphertext_message_get_type(msg), want_type);
	wire = ciphertext_message_get_serialized(msg);
	if (want_type == CIPHERTEXT_PREKEY_TYPE) {
		pre_key_signal_message *pm = NULL;

		assert_int_equal(pre_key_signal_message_deserialize(
					 &pm, signal_buffer_data(wire),
					 signal_buffer_len(wire),
					 to_party->ctx),
				 0);
		assert_int_equal(session_cipher_decrypt_pre_key_signal_message(
					 to, pm, NULL, &plain),
				 SG_SUCCESS);
		SIGNAL_UNREF(pm);
	} else {
		signal_message *sm = NULL;

		assert_int_equal(signal_message_deserialize(
					 &sm, signal_buffer_data(wire),
					 signal_buffer_len(wire),
					 to_party->ctx),
				 0);
		assert_int_equal(session_cipher_decrypt_signal_message(
					 to, sm, NULL, &plain),
				 SG_SUCCESS);
		SIGNAL_UNREF(sm);
	}
	assert_int_equal(signal_buffer_len(plain), len);
	assert_memory_equal(signal_buffer_data(plain), text, len);
	signal_buffer_free(plain);
	SIGNAL_UNREF(msg);
}

static void
test_signal_session(void **state)
{
	static const signal_protocol_address alice_addr = {"alice", 5, 1};
	static const signal_protocol_address bob_addr = {"bob", 3, 1};
	struct party *alice = bv_calloc(1, sizeof(*alice));
	struct party *bob = bv_calloc(1, sizeof(*bob));
	session_pre_key_bundle *bundle;
	session_builder *builder = NULL;
	session_cipher *a2b = NULL, *b2a = NULL;
	char text[64];
	int i;

	(void)state;
	assert_non_null(alice);
	assert_non_null(bob);
	party_init(alice);
	party_init(bob);

	/* X3DH: Alice builds a session from Bob's bundle. */
	bundle = bob_bundle(bob);
	assert_int_equal(session_builder_create(&builder, alice->store,
						&bob_addr, alice->ctx),
			 0);
	assert_int_equal(
		session_builder_process_pre_key_bundle(builder, bundle),
		SG_SUCCESS);
	assert_int_equal(session_cipher_create(&a2b, alice->store, &bob_addr,
					       alice->ctx),
			 0);
	assert_int_equal(
		session_cipher_create(&b2a, bob->store, &alice_addr, bob->ctx),
		0);

	/* Until Bob answers, every message of Alice's carries the X3DH. */
	for (i = 0; i < 3; i++) {
		snprintf(text, sizeof(text), "alice to bob %d", i);
		send_one(a2b, bob, b2a, text, CIPHERTEXT_PREKEY_TYPE);
	}
	/* Bob used the one-time pre key, so it is gone. */
	assert_int_equal(pre_key_contains(101, bob), 0);
	assert_int_equal(pre_key_contains(100, bob), 1);

	for (i = 0; i < 3; i++) {
		snprintf(text, sizeof(text), "bob to alice %d", i);
		send_one(b2a, alice, a2b, text, CIPHERTEXT_SIGNAL_TYPE);
	}
	/* Alice has heard from Bob: plain ratchet messages from now on. */
	for (i = 0; i < 3; i++) {
		snprintf(text, sizeof(text), "alice again %d", i);
		send_one(a2b, bob, b2a, text, CIPHERTEXT_SIGNAL_TYPE);
		snprintf(text, sizeof(text), "bob again %d", i);
		send_one(b2a, alice, a2b, text, CIPHERTEXT_SIGNAL_TYPE);
	}

	session_cipher_free(a2b);
	session_cipher_free(b2a);
	session_builder_free(builder);
	SIGNAL_UNREF(bundle);
	party_cleanup(alice);
	party_cleanup(bob);
	bv_free(alice);
	bv_free(bob);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_aes_cbc_vectors),
		cmocka_unit_test(test_aes_cbc_lengths),
		cmocka_unit_test(test_aes_ctr_vector),
		cmocka_unit_test(test_aes_errors),
		cmocka_unit_test(test_aes_cbc_padding),
		cmocka_unit_test(test_hmac_sha256_vectors),
		cmocka_unit_test(test_sha512_vectors),
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_init_args),
		cmocka_unit_test(test_signal_session),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
