/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * fuzz_store_image.c: libFuzzer driver for the image parser of the memory
 * store (client-lib/src/store_mem.c). The input is the body of an image: it
 * is sealed here as store_mem.c seals (so that mutations reach the parser,
 * not just the MAC), preloaded and opened: once as a version 1 image (no
 * attachments table; what older widgets saved) and once as version 2.
 *
 * Beyond "no crash, no leak" it aborts when an open fails with anything but
 * BV_EIO, when an accepted body does not come back byte for byte from
 * bv_store_mem_image() (the format has one way to say each store; a
 * version 1 body comes back as version 2 with an empty attachments table),
 * or when the loaded store does not work: every table is walked and written
 * once.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bv_error.h"
#include "bv_util.h"
#include "store.h"
#include "fuzz.h"

/* The layout of store_mem.c's image (see the top of that file). */
#define IMG_NONCE_AT 5
#define IMG_CHECK_AT (IMG_NONCE_AT + crypto_secretbox_NONCEBYTES)
#define IMG_BOX_AT   (IMG_CHECK_AT + 32)
#define IMG_OVERHEAD (IMG_BOX_AT + crypto_secretbox_MACBYTES + 32)

static const uint8_t key[BV_STORE_KEY_LEN] = {
	0x42, 0x13, 0x37, 0x99, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
	0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12,
	0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c,
};

static uint8_t *
seal(const uint8_t *body, size_t blen, int version, size_t *len)
{
	uint8_t kc[32], kb[32], *img;

	*len = blen + IMG_OVERHEAD;
	img = malloc(*len);
	CHECK(img);
	crypto_kdf_derive_from_key(kc, sizeof(kc), 1, "bvstmem1", key);
	crypto_kdf_derive_from_key(kb, sizeof(kb), 2, "bvstmem1", key);
	memcpy(img, "BVSM", 4);
	img[4] = (uint8_t)version;
	randombytes_buf(img + IMG_NONCE_AT, crypto_secretbox_NONCEBYTES);
	crypto_generichash(img + IMG_CHECK_AT, 32, img, IMG_CHECK_AT, kc,
			   sizeof(kc));
	crypto_secretbox_easy(img + IMG_BOX_AT, body, blen, img + IMG_NONCE_AT,
			      kb);
	crypto_generichash(img + *len - 32, 32, img, *len - 32, NULL, 0);
	return img;
}

/* The image of path must hold exactly body. */
static void
check_written_back(const char *path, const uint8_t *body, size_t blen)
{
	uint8_t kb[32], *img = NULL, *pt;
	size_t len = 0;

	CHECK(bv_store_mem_image(path, &img, &len) == 0);
	CHECK(len == blen + IMG_OVERHEAD);
	crypto_kdf_derive_from_key(kb, sizeof(kb), 2, "bvstmem1", key);
	pt = malloc(blen + 1);
	CHECK(pt);
	CHECK(crypto_secretbox_open_easy(pt, img + IMG_BOX_AT,
					 blen + crypto_secretbox_MACBYTES,
					 img + IMG_NONCE_AT, kb) == 0);
	CHECK(blen == 0 || memcmp(pt, body, blen) == 0);
	free(pt);
	free(img);
}

static int
history_cb(const struct bv_history_entry *e, void *arg)
{
	(void)arg;
	CHECK(e->seq >= 1);
	CHECK(e->direction == BV_MSG_IN || e->direction == BV_MSG_OUT);
	CHECK(e->state >= BV_MSG_SENDING && e->state <= BV_MSG_RECEIVED);
	CHECK(e->body && e->conversation && e->sender && e->message_id);
	CHECK(!e->journal || e->journal[0]);
	return 0;
}

static int
attachment_cb(int64_t seq, int idx, int state, const uint8_t *rec, size_t len,
	      void *arg)
{
	(void)arg;
	CHECK(seq >= 1 && idx >= 0 && idx < BV_STORE_ATTACHMENTS_MAX);
	CHECK(state >= 0 && (rec || len == 0));
	return 0;
}

static int
conversation_cb(const struct bv_conversation_entry *e, void *arg)
{
	CHECK(e->n_messages >= 1 && e->last_seq >= 1);
	return bv_store_history_list(arg, e->conversation, 0, history_cb, NULL);
}

static int
case_cb(const char *case_id, const char *view, size_t len, void *arg)
{
	(void)arg;
	CHECK(bv_uuid_valid(case_id));
	CHECK(len >= 1 && strlen(view) <= len);
	return 0;
}

/* Walks and writes every table of the loaded store. */
static void
exercise(struct bv_store *s)
{
	uint8_t *pub = NULL, *priv = NULL;
	size_t pub_len, priv_len;
	int64_t seq = 0;
	uint32_t reg;
	int rc;

	rc = bv_store_identity_get(s, &pub, &pub_len, &priv, &priv_len, &reg);
	CHECK(rc == 0 || rc == BV_EINVAL);
	if (rc == 0) {
		CHECK(pub_len >= 1 && priv_len >= 1);
		bv_free(pub);
		bv_free(priv);
	}
	CHECK(bv_store_conversations(s, conversation_cb, s) == 0);
	CHECK(bv_store_history_unsent(s, history_cb, NULL) == 0);
	CHECK(bv_store_history_find(s, "m-1", history_cb, NULL) == 0);
	CHECK(bv_store_cases(s, case_cb, NULL) == 0);
	CHECK(bv_store_attachments(s, 0, attachment_cb, NULL) == 0);
	CHECK(bv_store_prekey_remove_below(s, 0, 3) == 0);
	CHECK(bv_store_session_delete_all(s, "alice", NULL) == 0);
	CHECK(bv_store_history_append(s, "c", BV_MSG_OUT, "me", 1, "m-1", 1,
				      NULL, 0, BV_MSG_SENDING, &seq) == 0);
	CHECK(bv_store_history_list(s, "c", 0, history_cb, NULL) == 0);
	CHECK(bv_store_attachment_put(s, seq, 0, 1, NULL, 0) == 0);
}

/* Opens body sealed as version; accepted, it must come back as written
 * (expect: the version 2 body it stands for) and work. */
static void
try_version(const char *path, const uint8_t *body, size_t size, int version,
	    const uint8_t *expect, size_t expect_len)
{
	struct bv_store *s = NULL;
	uint8_t *img;
	size_t len;
	int rc;

	img = seal(body, size, version, &len);
	CHECK(bv_store_mem_preload(path, img, len) == 0);
	free(img);
	rc = bv_store_open(path, key, &s);
	CHECK(rc == 0 || rc == BV_EIO);
	if (rc == 0) {
		check_written_back(path, expect, expect_len);
		exercise(s);
		bv_store_close(s);
	}
	CHECK(bv_store_mem_preload(path, NULL, 0) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char path[] = "fuzz-store";
	uint8_t *v2;

	if (size > 1024 * 1024 || sodium_init() < 0)
		return 0;
	/* Version 1: the same body and an attachments table of no rows. */
	v2 = malloc(size + 4);
	CHECK(v2);
	if (size)
		memcpy(v2, data, size);
	memset(v2 + size, 0, 4);
	try_version(path, data, size, 1, v2, size + 4);
	free(v2);
	try_version(path, data, size, 2, data, size);
	return 0;
}
