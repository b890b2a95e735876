/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_store.c: unit tests of the store contract (store.h), built twice:
 * test_store on store.c (SQLite) in a fresh mkdtemp directory each, and
 * test_store_mem (BV_TEST_STORE_MEM) on store_mem.c, the memory backend.
 * Both: round trips, reopen, wrong key, changed identity keys, duplicate
 * suppression across reopen, history order and states, journaled receipts,
 * recipients, the case view, libsignal adapters, details of store.c that
 * store_mem.c copies. SQLite only (about the file): no plaintext on disk,
 * rows moved between rows, committed rows surviving SIGKILL, the migration
 * of a version 2 store. Memory only: the sealed image (round trip, wrong
 * key, every kind of damage, hostile bodies, size limit), generations and
 * the hook, rollback restoring the state exactly, one open per path.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef BV_TEST_STORE_MEM
#include <sodium.h>
#else
#include <sqlite3.h>
#endif

#include "bv_error.h"
#include "bv_util.h"
#include "store.h"

struct fixture {
	char dir[64];
	char path[96];
	uint8_t key[BV_STORE_KEY_LEN];
	struct bv_store *s;
};

static const char canary[] = "CANARY-9f3e-plaintext-body-must-not-be-on-disk";
static const uint8_t priv_key[32] = {
	0xde, 0xad, 0xbe, 0xef, 0x13, 0x37, 0x42, 0x42, 0xca, 0xfe, 0xba,
	0xbe, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
	0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14,
};
static const uint8_t pub_key[33] = {0x05, 0xaa, 0xbb, 0xcc};

static int
setup(void **state)
{
	struct fixture *f;
	size_t i;

	f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/bv_store_XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/store.db", f->dir);
	for (i = 0; i < sizeof(f->key); i++)
		f->key[i] = (uint8_t)(i * 7 + 1);
	if (bv_store_open(f->path, f->key, &f->s) != 0)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char p[512];
	struct dirent *d;
	DIR *dir;

	bv_store_close(f->s);
#ifdef BV_TEST_STORE_MEM
	/* The memory backend keeps the image of a closed store: forget it. */
	bv_store_mem_preload(f->path, NULL, 0);
	bv_store_mem_set_hook(NULL, NULL);
#endif
	dir = opendir(f->dir);
	while (dir && (d = readdir(dir))) {
		if (d->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", f->dir, d->d_name);
		unlink(p);
	}
	if (dir)
		closedir(dir);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void
reopen(struct fixture *f)
{
	bv_store_close(f->s);
	f->s = NULL;
	assert_int_equal(bv_store_open(f->path, f->key, &f->s), 0);
}

#ifdef BV_TEST_STORE_MEM
/*
 * The image format of store_mem.c, written out again here so that the
 * tests can open images and seal hostile bodies: "BVSM" | version 1 |
 * nonce[24] | check[32] | secretbox(body) | sum[32], subkeys 1 (check) and
 * 2 (box) of crypto_kdf context "bvstmem1".
 */
#define IMG_NONCE_AT 5
#define IMG_CHECK_AT (IMG_NONCE_AT + crypto_secretbox_NONCEBYTES)
#define IMG_BOX_AT   (IMG_CHECK_AT + 32)
#define IMG_OVERHEAD (IMG_BOX_AT + crypto_secretbox_MACBYTES + 32)

static void
img_subkey(const uint8_t *key, uint64_t id, uint8_t out[32])
{
	crypto_kdf_derive_from_key(out, 32, id, "bvstmem1", key);
}

static void
img_fix_sum(uint8_t *img, size_t len)
{
	crypto_generichash(img + len - 32, 32, img, len - 32, NULL, 0);
}

/* Seals body as store_mem.c does, into a new buffer (free). */
static uint8_t *
img_seal(const uint8_t *key, const uint8_t *body, size_t blen, size_t *len)
{
	uint8_t kc[32], kb[32], *img;

	*len = blen + IMG_OVERHEAD;
	img = malloc(*len);
	assert_non_null(img);
	img_subkey(key, 1, kc);
	img_subkey(key, 2, kb);
	memcpy(img, "BVSM", 4);
	img[4] = 1;
	randombytes_buf(img + IMG_NONCE_AT, crypto_secretbox_NONCEBYTES);
	crypto_generichash(img + IMG_CHECK_AT, 32, img, IMG_CHECK_AT, kc, 32);
	crypto_secretbox_easy(img + IMG_BOX_AT, body, blen, img + IMG_NONCE_AT,
			      kb);
	img_fix_sum(img, *len);
	return img;
}

/* The body of an image (free), asserting that it is one. */
static uint8_t *
img_body(const uint8_t *key, const uint8_t *img, size_t len, size_t *blen)
{
	uint8_t kb[32], sum[32], *body;

	assert_true(len >= IMG_OVERHEAD);
	assert_memory_equal(img, "BVSM", 4);
	assert_int_equal(img[4], 2);
	crypto_generichash(sum, 32, img, len - 32, NULL, 0);
	assert_memory_equal(sum, img + len - 32, 32);
	img_subkey(key, 2, kb);
	*blen = len - IMG_OVERHEAD;
	body = malloc(*blen + 1);
	assert_non_null(body);
	assert_int_equal(
		crypto_secretbox_open_easy(body, img + IMG_BOX_AT,
					   *blen + crypto_secretbox_MACBYTES,
					   img + IMG_NONCE_AT, kb),
		0);
	return body;
}

/* The body of the open store of f (free). */
static uint8_t *
store_body(struct fixture *f, size_t *blen)
{
	uint8_t *img = NULL, *body;
	size_t len = 0;

	assert_int_equal(bv_store_mem_image(f->path, &img, &len), 0);
	body = img_body(f->key, img, len, blen);
	free(img);
	return body;
}

static int
mem_contains(const uint8_t *hay, size_t len, const void *needle, size_t n)
{
	size_t i;

	for (i = 0; i + n <= len; i++)
		if (memcmp(hay + i, needle, n) == 0)
			return 1;
	return 0;
}

/* Whether the image of f (or, with body set, its opened body) has needle. */
static int
image_contains(struct fixture *f, const void *needle, size_t n, int body)
{
	uint8_t *img = NULL;
	size_t len = 0;
	int hit;

	if (body) {
		img = store_body(f, &len);
	} else {
		assert_int_equal(bv_store_mem_image(f->path, &img, &len), 0);
	}
	hit = mem_contains(img, len, needle, n);
	free(img);
	return hit;
}

/* The state of the store of f now equals body (as store_body gave it). */
static void
assert_body(struct fixture *f, const uint8_t *body, size_t blen)
{
	uint8_t *now;
	size_t len;

	now = store_body(f, &len);
	assert_int_equal(len, blen);
	assert_memory_equal(now, body, blen);
	free(now);
}

/* stderr off (1) and back on (0): thousands of damaged images are each
 * logged as an error. */
static void
quiet(int on)
{
	static int saved = -1;
	int null;

	fflush(stderr);
	if (on && saved < 0) {
		saved = dup(2);
		null = open("/dev/null", O_WRONLY);
		assert_true(saved >= 0 && null >= 0);
		dup2(null, 2);
		close(null);
	} else if (!on && saved >= 0) {
		dup2(saved, 2);
		close(saved);
		saved = -1;
	}
}
#endif /* BV_TEST_STORE_MEM */

static void
put_everything(struct bv_store *s)
{
	enum bv_trust t;
	int seen;

	assert_int_equal(bv_store_identity_put(s, pub_key, sizeof(pub_key),
					       priv_key, sizeof(priv_key),
					       4242),
			 0);
	assert_int_equal(
		bv_store_prekey_put(s, 0, 7, (const uint8_t *)"pk7", 3), 0);
	assert_int_equal(
		bv_store_prekey_put(s, 1, 9, (const uint8_t *)"spk9", 4), 0);
	assert_int_equal(bv_store_session_store(s, "alice", 2,
						(const uint8_t *)"sess-a2", 7,
						NULL, 0),
			 0);
	assert_int_equal(bv_store_session_store(s, "alice", 1,
						(const uint8_t *)"sess-a1", 7,
						(const uint8_t *)"u", 1),
			 0);
	assert_int_equal(bv_store_identity_save(s, "alice", 1, pub_key,
						sizeof(pub_key), &t),
			 0);
	assert_int_equal(t, BV_TRUST_NEW);
	assert_int_equal(bv_store_seen(s, "alice", 1, "m-1", &seen), 0);
	assert_int_equal(seen, 0);
	assert_int_equal(bv_store_history_append(
				 s, "case-1", BV_MSG_IN, "alice", 1, "m-1",
				 1000, (const uint8_t *)canary,
				 sizeof(canary) - 1, BV_MSG_RECEIVED, NULL),
			 0);
}

struct collect {
	int n;
	int64_t seq[16];
	char ids[16][16];
	int state[16];
	char body[16][64];
	char journal[16][32]; /* "-" when not journaled */
};

static int
collect_cb(const struct bv_history_entry *e, void *arg)
{
	struct collect *c = arg;

	if (c->n >= 16)
		return 1;
	c->seq[c->n] = e->seq;
	snprintf(c->ids[c->n], sizeof(c->ids[0]), "%s", e->message_id);
	c->state[c->n] = (int)e->state;
	snprintf(c->body[c->n], sizeof(c->body[0]), "%.*s", (int)e->body_len,
		 (const char *)e->body);
	snprintf(c->journal[c->n], sizeof(c->journal[0]), "%s",
		 e->journal ? e->journal : "-");
	c->n++;
	return 0;
}

static void
check_everything(struct bv_store *s)
{
	uint8_t *pub = NULL, *priv = NULL, *rec = NULL, *user = NULL;
	size_t pub_len, priv_len, len, user_len, n;
	struct collect c;
	int32_t *ids = NULL;
	enum bv_trust t;
	uint32_t reg;
	int found;

	assert_int_equal(bv_store_identity_get(s, &pub, &pub_len, &priv,
					       &priv_len, &reg),
			 0);
	assert_int_equal(reg, 4242);
	assert_int_equal(pub_len, sizeof(pub_key));
	assert_memory_equal(pub, pub_key, pub_len);
	assert_int_equal(priv_len, sizeof(priv_key));
	assert_memory_equal(priv, priv_key, priv_len);
	bv_free(pub);
	bv_free(priv);

	assert_int_equal(bv_store_prekey_get(s, 0, 7, &rec, &len), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(rec, "pk7", 3);
	bv_free(rec);
	assert_int_equal(bv_store_prekey_get(s, 1, 9, &rec, &len), 0);
	assert_memory_equal(rec, "spk9", 4);
	bv_free(rec);
	/* The two kinds do not mix. */
	assert_int_equal(bv_store_prekey_get(s, 1, 7, &rec, &len), BV_EINVAL);
	assert_int_equal(bv_store_prekey_contains(s, 0, 7, &found), 0);
	assert_int_equal(found, 1);
	assert_int_equal(bv_store_prekey_contains(s, 0, 9, &found), 0);
	assert_int_equal(found, 0);

	assert_int_equal(bv_store_session_load(s, "alice", 1, &rec, &len, &user,
					       &user_len, &found),
			 0);
	assert_int_equal(found, 1);
	assert_memory_equal(rec, "sess-a1", 7);
	assert_int_equal(user_len, 1);
	assert_memory_equal(user, "u", 1);
	bv_free(rec);
	bv_free(user);
	assert_int_equal(bv_store_session_load(s, "alice", 2, &rec, &len, &user,
					       &user_len, &found),
			 0);
	assert_int_equal(found, 1);
	assert_null(user);
	bv_free(rec);
	assert_int_equal(bv_store_session_load(s, "bob", 1, &rec, &len, &user,
					       &user_len, &found),
			 0);
	assert_int_equal(found, 0);
	assert_int_equal(bv_store_session_devices(s, "alice", &ids, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[1], 2);
	bv_free(ids);

	assert_int_equal(bv_store_identity_check(s, "alice", 1, pub_key,
						 sizeof(pub_key), &t),
			 0);
	assert_int_equal(t, BV_TRUST_SAME);

	memset(&c, 0, sizeof(c));
	assert_int_equal(bv_store_history_list(s, "case-1", 0, collect_cb, &c),
			 0);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.body[0], canary);
}

static void
test_round_trip_and_reopen(void **state)
{
	struct fixture *f = *state;
	int found, deleted;

	put_everything(f->s);
	check_everything(f->s);
	reopen(f);
	check_everything(f->s);

	assert_int_equal(bv_store_prekey_remove(f->s, 0, 7), 0);
	assert_int_equal(bv_store_prekey_contains(f->s, 0, 7, &found), 0);
	assert_int_equal(found, 0);
	assert_int_equal(bv_store_prekey_remove(f->s, 0, 7), 0);
	assert_int_equal(bv_store_session_delete(f->s, "alice", 2, &deleted),
			 0);
	assert_int_equal(deleted, 1);
	assert_int_equal(bv_store_session_contains(f->s, "alice", 2, &found),
			 0);
	assert_int_equal(found, 0);
	assert_int_equal(bv_store_session_store(f->s, "alice", 3,
						(const uint8_t *)"x", 1, NULL,
						0),
			 0);
	assert_int_equal(bv_store_session_delete_all(f->s, "alice", &deleted),
			 0);
	assert_int_equal(deleted, 2);
	reopen(f);
	assert_int_equal(bv_store_session_contains(f->s, "alice", 1, &found),
			 0);
	assert_int_equal(found, 0);
}

static void
test_wrong_key(void **state)
{
	struct fixture *f = *state;
	struct bv_store *other = NULL;
	uint8_t bad[BV_STORE_KEY_LEN];

	put_everything(f->s);
	bv_store_close(f->s);
	f->s = NULL;
	memcpy(bad, f->key, sizeof(bad));
	bad[0] ^= 1;
	assert_int_equal(bv_store_open(f->path, bad, &other), BV_EINVAL);
	assert_null(other);
	assert_int_equal(bv_store_open(f->path, f->key, &f->s), 0);
	check_everything(f->s);
}

static void
test_not_a_store(void **state)
{
	struct fixture *f = *state;
	struct bv_store *other = NULL;
	char p[160];
	FILE *fp;

	static const char junk[] =
		"this is not an SQLite database, just some text to fill it up "
		".............................................................."
		"."
		".";

	snprintf(p, sizeof(p), "%s/junk.db", f->dir);
#ifdef BV_TEST_STORE_MEM
	(void)fp;
	assert_int_equal(bv_store_mem_preload(p, (const uint8_t *)junk,
					      sizeof(junk) - 1),
			 0);
#else
	fp = fopen(p, "w");
	assert_non_null(fp);
	fputs(junk, fp);
	fclose(fp);
#endif
	assert_int_equal(bv_store_open(p, f->key, &other), BV_EIO);
	assert_null(other);
	assert_int_equal(bv_store_open(NULL, f->key, &other), BV_EINVAL);
#ifdef BV_TEST_STORE_MEM
	assert_int_equal(bv_store_mem_preload(p, NULL, 0), 0);
#endif
}

#ifndef BV_TEST_STORE_MEM
/* SQLite only: the files on disk. */
static int
file_contains(const char *path, const void *needle, size_t n)
{
	uint8_t *buf;
	size_t len, i;
	long sz;
	FILE *fp;
	int hit = 0;

	fp = fopen(path, "rb");
	if (!fp)
		return 0;
	fseek(fp, 0, SEEK_END);
	sz = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	buf = malloc((size_t)sz + 1);
	assert_non_null(buf);
	len = fread(buf, 1, (size_t)sz, fp);
	fclose(fp);
	for (i = 0; i + n <= len && !hit; i++)
		hit = memcmp(buf + i, needle, n) == 0;
	free(buf);
	return hit;
}

static int
store_files_contain(struct fixture *f, const void *needle, size_t n)
{
	static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
	char p[160];
	size_t i;
	int hit = 0;

	for (i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", f->path, sfx[i]);
		hit |= file_contains(p, needle, n);
	}
	return hit;
}

static void
test_no_plaintext_on_disk(void **state)
{
	struct fixture *f = *state;

	put_everything(f->s);
	/* Self-check of the search: the (unsealed) peer name is there. */
	assert_true(store_files_contain(f, "alice", 5));
	assert_false(store_files_contain(f, canary, sizeof(canary) - 1));
	assert_false(store_files_contain(f, priv_key, sizeof(priv_key)));
	assert_false(store_files_contain(f, "sess-a1", 7));
	bv_store_close(f->s); /* checkpoints the WAL into the database */
	f->s = NULL;
	assert_true(store_files_contain(f, "alice", 5));
	assert_false(store_files_contain(f, canary, sizeof(canary) - 1));
	assert_false(store_files_contain(f, priv_key, sizeof(priv_key)));
	assert_false(store_files_contain(f, "sess-a1", 7));
	assert_int_equal(bv_store_open(f->path, f->key, &f->s), 0);
}
#endif /* !BV_TEST_STORE_MEM */

static void
test_identity_change(void **state)
{
	struct fixture *f = *state;
	uint8_t other[33] = {0x05, 0x11, 0x22};
	enum bv_trust t;

	assert_int_equal(bv_store_identity_check(f->s, "bob", 1, pub_key,
						 sizeof(pub_key), &t),
			 0);
	assert_int_equal(t, BV_TRUST_NEW);
	assert_int_equal(bv_store_identity_save(f->s, "bob", 1, pub_key,
						sizeof(pub_key), &t),
			 0);
	assert_int_equal(t, BV_TRUST_NEW);
	assert_int_equal(bv_store_identity_save(f->s, "bob", 1, pub_key,
						sizeof(pub_key), &t),
			 0);
	assert_int_equal(t, BV_TRUST_SAME);
	/* A changed key is reported and not saved. */
	assert_int_equal(bv_store_identity_save(f->s, "bob", 1, other,
						sizeof(other), &t),
			 0);
	assert_int_equal(t, BV_TRUST_CHANGED);
	reopen(f);
	assert_int_equal(bv_store_identity_check(f->s, "bob", 1, other,
						 sizeof(other), &t),
			 0);
	assert_int_equal(t, BV_TRUST_CHANGED);
	assert_int_equal(bv_store_identity_check(f->s, "bob", 1, pub_key,
						 sizeof(pub_key), &t),
			 0);
	assert_int_equal(t, BV_TRUST_SAME);
	/* Another device of the same name is a different key slot. */
	assert_int_equal(bv_store_identity_check(f->s, "bob", 2, other,
						 sizeof(other), &t),
			 0);
	assert_int_equal(t, BV_TRUST_NEW);
	/* Only an explicit accept replaces it. */
	assert_int_equal(
		bv_store_identity_accept(f->s, "bob", 1, other, sizeof(other)),
		0);
	assert_int_equal(bv_store_identity_check(f->s, "bob", 1, other,
						 sizeof(other), &t),
			 0);
	assert_int_equal(t, BV_TRUST_SAME);
	assert_int_equal(bv_store_identity_check(f->s, "bob", 1, pub_key,
						 sizeof(pub_key), &t),
			 0);
	assert_int_equal(t, BV_TRUST_CHANGED);
}

/* What a receiver does before acking: store + mark seen, one commit. */
static int
receive(struct bv_store *s, const char *id, const char *body, int *dup)
{
	int rc;

	rc = bv_store_begin(s);
	if (rc < 0)
		return rc;
	rc = bv_store_seen(s, "carol", 3, id, dup);
	if (rc == 0 && !*dup)
		rc = bv_store_history_append(s, "case-2", BV_MSG_IN, "carol", 3,
					     id, 5000, (const uint8_t *)body,
					     strlen(body), BV_MSG_RECEIVED,
					     NULL);
	if (rc < 0) {
		bv_store_rollback(s);
		return rc;
	}
	return bv_store_commit(s);
}

static void
test_seen_across_reopen(void **state)
{
	struct fixture *f = *state;
	struct collect c;
	int dup = -1;

	assert_int_equal(receive(f->s, "m-a", "hello", &dup), 0);
	assert_int_equal(dup, 0);
	assert_int_equal(receive(f->s, "m-a", "hello", &dup), 0);
	assert_int_equal(dup, 1);
	reopen(f);
	assert_int_equal(receive(f->s, "m-a", "hello", &dup), 0);
	assert_int_equal(dup, 1);
	assert_int_equal(receive(f->s, "m-b", "again", &dup), 0);
	assert_int_equal(dup, 0);
	/* Same id from another device is not a duplicate. */
	assert_int_equal(bv_store_seen(f->s, "carol", 4, "m-a", &dup), 0);
	assert_int_equal(dup, 0);

	memset(&c, 0, sizeof(c));
	assert_int_equal(
		bv_store_history_list(f->s, "case-2", 0, collect_cb, &c), 0);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.body[0], "hello");
	assert_string_equal(c.body[1], "again");

	/* A rolled back transaction leaves neither row. */
	assert_int_equal(bv_store_begin(f->s), 0);
	assert_int_equal(bv_store_begin(f->s), BV_EINVAL);
	assert_int_equal(bv_store_seen(f->s, "carol", 3, "m-c", &dup), 0);
	assert_int_equal(bv_store_rollback(f->s), 0);
	assert_int_equal(bv_store_commit(f->s), BV_EINVAL);
	assert_int_equal(bv_store_seen(f->s, "carol", 3, "m-c", &dup), 0);
	assert_int_equal(dup, 0);
}

static void
test_history_order_and_state(void **state)
{
	struct fixture *f = *state;
	static const char *const ids[] = {"o-1", "o-2", "o-3", "o-4"};
	int64_t seq[4];
	struct collect c;
	size_t i;

	for (i = 0; i < 4; i++)
		assert_int_equal(bv_store_history_append(
					 f->s, i == 2 ? "other" : "case-3",
					 BV_MSG_OUT, "me", 1, ids[i],
					 (int64_t)(9000 - i), /* clock skew */
					 (const uint8_t *)ids[i], 3,
					 BV_MSG_SENDING, &seq[i]),
				 0);
	assert_int_equal(bv_store_history_append(f->s, "case-3", BV_MSG_IN,
						 "dave", 1, "in-x", 1, NULL, 0,
						 BV_MSG_UNDECRYPTABLE, NULL),
			 0);
	assert_int_equal(bv_store_history_set_state(f->s, seq[0], BV_MSG_READ),
			 0);
	assert_int_equal(
		bv_store_history_set_state(f->s, seq[1], BV_MSG_FAILED), 0);
	assert_int_equal(bv_store_history_set_state(f->s, 99999, BV_MSG_READ),
			 BV_EINVAL);
	assert_int_equal(
		bv_store_history_set_state(f->s, seq[0], (enum bv_msg_state)42),
		BV_EINVAL);
	reopen(f);
	memset(&c, 0, sizeof(c));
	assert_int_equal(
		bv_store_history_list(f->s, "case-3", 0, collect_cb, &c), 0);
	assert_int_equal(c.n, 4);
	assert_string_equal(c.ids[0], "o-1");
	assert_string_equal(c.ids[1], "o-2");
	assert_string_equal(c.ids[2], "o-4");
	assert_string_equal(c.ids[3], "in-x");
	assert_int_equal(c.state[0], BV_MSG_READ);
	assert_int_equal(c.state[1], BV_MSG_FAILED);
	assert_int_equal(c.state[2], BV_MSG_SENDING);
	assert_int_equal(c.state[3], BV_MSG_UNDECRYPTABLE);
	assert_string_equal(c.body[3], "");
	assert_true(c.seq[0] < c.seq[1] && c.seq[1] < c.seq[2]);

	/* Paging after a seq. */
	memset(&c, 0, sizeof(c));
	assert_int_equal(
		bv_store_history_list(f->s, "case-3", seq[1], collect_cb, &c),
		0);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.ids[0], "o-4");
}

/* Journaled receipts: by message id, before or after the message, the
 * first reference kept, across a reopen, and history stays immutable. */
static void
test_journaled(void **state)
{
	struct fixture *f = *state;
	struct collect c;

	/* The receipt for j-2 comes before j-2 itself. */
	assert_int_equal(bv_store_journaled_put(f->s, "j-2", "2026/7", 5), 0);
	assert_int_equal(bv_store_history_append(f->s, "conv-j", BV_MSG_IN,
						 "dave", 1, "j-1", 1,
						 (const uint8_t *)"a", 1,
						 BV_MSG_RECEIVED, NULL),
			 0);
	assert_int_equal(bv_store_history_append(
				 f->s, "conv-j", BV_MSG_OUT, "me", 1, "j-2", 2,
				 (const uint8_t *)"b", 1, BV_MSG_SENT, NULL),
			 0);
	assert_int_equal(bv_store_journaled_put(f->s, "j-1", "2026/6", 6), 0);
	assert_int_equal(bv_store_journaled_put(f->s, "j-1", "2026/99", 7), 0);
	assert_int_equal(bv_store_journaled_put(f->s, "j-3", "", 7), BV_EINVAL);
	assert_int_equal(bv_store_journaled_put(f->s, NULL, "2026/1", 7),
			 BV_EINVAL);
	reopen(f);
	memset(&c, 0, sizeof(c));
	assert_int_equal(
		bv_store_history_list(f->s, "conv-j", 0, collect_cb, &c), 0);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.journal[0], "2026/6");
	assert_string_equal(c.journal[1], "2026/7");
	assert_string_equal(c.body[1], "b");
	assert_int_equal(bv_store_history_append(f->s, "conv-j", BV_MSG_IN,
						 "dave", 1, "j-4", 3,
						 (const uint8_t *)"c", 1,
						 BV_MSG_RECEIVED, NULL),
			 0);
	memset(&c, 0, sizeof(c));
	assert_int_equal(
		bv_store_history_list(f->s, "conv-j", 0, collect_cb, &c), 0);
	assert_string_equal(c.journal[2], "-");
}

struct att_rows {
	int n;
	int64_t seq[8];
	int idx[8], state[8];
	char rec[8][32];
};

static int
att_cb(int64_t seq, int idx, int state, const uint8_t *rec, size_t len,
       void *arg)
{
	struct att_rows *r = arg;

	assert_true(r->n < 8 && len < sizeof(r->rec[0]));
	r->seq[r->n] = seq;
	r->idx[r->n] = idx;
	r->state[r->n] = state;
	memcpy(r->rec[r->n], rec, len);
	r->rec[r->n][len] = '\0';
	r->n++;
	return 0;
}

/* Attachments (issue 7): by (seq, index), replaced as an upload goes on,
 * only for entries of the history, surviving a reopen. */
static void
test_attachments(void **state)
{
	struct fixture *f = *state;
	struct att_rows r;
	int64_t s1 = 0, s2 = 0;

	assert_int_equal(bv_store_history_append(
				 f->s, "conv-a", BV_MSG_OUT, "me", 1, "a-1", 1,
				 (const uint8_t *)"x", 1, BV_MSG_SENDING, &s1),
			 0);
	assert_int_equal(bv_store_history_append(
				 f->s, "conv-a", BV_MSG_IN, "eve", 1, "a-2", 2,
				 (const uint8_t *)"y", 1, BV_MSG_RECEIVED, &s2),
			 0);
	assert_int_equal(bv_store_attachment_put(f->s, s1, 1, 0,
						 (const uint8_t *)"b", 1),
			 0);
	assert_int_equal(bv_store_attachment_put(f->s, s1, 0, 0,
						 (const uint8_t *)"a", 1),
			 0);
	assert_int_equal(bv_store_attachment_put(f->s, s2, 3, 7, NULL, 0), 0);
	assert_int_equal(bv_store_attachment_put(f->s, s1, 0, 2,
						 (const uint8_t *)"a2", 2),
			 0);
	/* Not in the history, index or state out of range. */
	assert_int_equal(bv_store_attachment_put(f->s, s2 + 10, 0, 0, NULL, 0),
			 BV_EINVAL);
	assert_int_equal(bv_store_attachment_put(f->s, s1, 10, 0, NULL, 0),
			 BV_EINVAL);
	assert_int_equal(bv_store_attachment_put(f->s, s1, 0, -1, NULL, 0),
			 BV_EINVAL);
	reopen(f);
	memset(&r, 0, sizeof(r));
	assert_int_equal(bv_store_attachments(f->s, 0, att_cb, &r), 0);
	assert_int_equal(r.n, 3);
	assert_int_equal(r.seq[0], s1);
	assert_int_equal(r.idx[0], 0);
	assert_int_equal(r.state[0], 2);
	assert_string_equal(r.rec[0], "a2");
	assert_int_equal(r.idx[1], 1);
	assert_string_equal(r.rec[1], "b");
	assert_int_equal(r.seq[2], s2);
	assert_int_equal(r.idx[2], 3);
	assert_int_equal(r.state[2], 7);
	assert_string_equal(r.rec[2], "");
	memset(&r, 0, sizeof(r));
	assert_int_equal(bv_store_attachments(f->s, s2, att_cb, &r), 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.idx[0], 3);
	assert_int_equal(bv_store_attachments(f->s, 0, NULL, &r), BV_EINVAL);
}

/* Lists conversations into a struct collect: id, last seq, count in
 * state, last timestamp in body. */
static int
conv_cb(const struct bv_conversation_entry *e, void *arg)
{
	struct collect *c = arg;

	if (c->n >= 16)
		return 1;
	snprintf(c->ids[c->n], sizeof(c->ids[0]), "%s", e->conversation);
	c->seq[c->n] = e->last_seq;
	c->state[c->n] = (int)e->n_messages;
	snprintf(c->body[c->n], sizeof(c->body[0]), "%lld",
		 (long long)e->last_timestamp_ms);
	c->n++;
	return 0;
}

/* Look-up by message id, the unsent list and the recipients of a message,
 * all surviving a reopen. */
static void
test_history_find_unsent_recipients(void **state)
{
	struct fixture *f = *state;
	static const char a1[] = "3f0c5a1e-1b2c-4d3e-8f40-5a6b7c8d9e01";
	static const char a2[] = "0a0c5a1e-1b2c-4d3e-8f40-5a6b7c8d9e02";
	const char *const rcpt[] = {a1, a2, a1};
	const char *const bad[] = {"not-a-uuid"};
	char(*got)[BV_UUID_LEN + 1] = NULL;
	int64_t s1, s2, s3;
	struct collect c;
	size_t n = 9;

	assert_int_equal(bv_store_history_append(f->s, "case-5", BV_MSG_OUT,
						 "me", 1, "m-1", 10,
						 (const uint8_t *)"one", 3,
						 BV_MSG_SENDING, &s1),
			 0);
	assert_int_equal(bv_store_history_append(f->s, "case-5", BV_MSG_OUT,
						 "me", 1, "m-2", 11,
						 (const uint8_t *)"two", 3,
						 BV_MSG_SENDING, &s2),
			 0);
	/* The same id received as a copy elsewhere. */
	assert_int_equal(bv_store_history_append(f->s, "case-6", BV_MSG_IN,
						 "me", 2, "m-1", 12,
						 (const uint8_t *)"{}", 2,
						 BV_MSG_RECEIVED, &s3),
			 0);
	assert_int_equal(bv_store_out_recipients_put(f->s, s1, rcpt, 3), 0);
	assert_int_equal(bv_store_out_recipients_put(f->s, s1, bad, 1),
			 BV_EINVAL);
	assert_int_equal(bv_store_out_recipients_put(f->s, 424242, rcpt, 1),
			 BV_EINVAL);
	assert_int_equal(bv_store_history_set_state(f->s, s2, BV_MSG_SENT), 0);
	reopen(f);

	memset(&c, 0, sizeof(c));
	assert_int_equal(bv_store_history_find(f->s, "m-1", collect_cb, &c), 0);
	assert_int_equal(c.n, 2);
	assert_int_equal(c.seq[0], s1);
	assert_string_equal(c.body[0], "one");
	assert_int_equal(c.seq[1], s3);
	memset(&c, 0, sizeof(c));
	assert_int_equal(bv_store_history_find(f->s, "m-9", collect_cb, &c), 0);
	assert_int_equal(c.n, 0);

	/* Only outgoing messages still sending are unsent. */
	memset(&c, 0, sizeof(c));
	assert_int_equal(bv_store_history_unsent(f->s, collect_cb, &c), 0);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.ids[0], "m-1");
	assert_int_equal(bv_store_history_set_state(f->s, s1, BV_MSG_SENT), 0);
	memset(&c, 0, sizeof(c));
	assert_int_equal(bv_store_history_unsent(f->s, collect_cb, &c), 0);
	assert_int_equal(c.n, 0);

	assert_int_equal(bv_store_out_recipients_get(f->s, s1, &got, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(got[0], a2);
	assert_string_equal(got[1], a1);
	bv_free(got);
	assert_int_equal(bv_store_out_recipients_get(f->s, s2, &got, &n), 0);
	assert_int_equal(n, 0);
	assert_null(got);
	assert_int_equal(bv_store_history_find(f->s, NULL, collect_cb, &c),
			 BV_EINVAL);

	/* Conversations, the one with the newest message first. */
	memset(&c, 0, sizeof(c));
	assert_int_equal(bv_store_conversations(f->s, conv_cb, &c), 0);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.ids[0], "case-6");
	assert_int_equal(c.seq[0], s3);
	assert_int_equal(c.state[0], 1); /* messages */
	assert_string_equal(c.ids[1], "case-5");
	assert_int_equal(c.seq[1], s2);
	assert_int_equal(c.state[1], 2);
	assert_string_equal(c.body[1], "11");
}

#ifndef BV_TEST_STORE_MEM
/* SQLite only: a sealed value moved to another row fails to open; history
 * stays. */
static void
test_row_binding(void **state)
{
	struct fixture *f = *state;
	uint8_t *rec = NULL, *user = NULL;
	size_t len, user_len;
	sqlite3 *db = NULL;
	int found = 0;

	put_everything(f->s);
	bv_store_close(f->s);
	f->s = NULL;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
				      "UPDATE sessions SET record = (SELECT"
				      " record FROM sessions WHERE device_id ="
				      " 2) WHERE device_id = 1",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	assert_int_not_equal(
		sqlite3_exec(db, "DELETE FROM history", NULL, NULL, NULL),
		SQLITE_OK);
	assert_int_not_equal(sqlite3_exec(db, "UPDATE history SET body = x''",
					  NULL, NULL, NULL),
			     SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(bv_store_open(f->path, f->key, &f->s), 0);
	assert_int_equal(bv_store_session_load(f->s, "alice", 1, &rec, &len,
					       &user, &user_len, &found),
			 BV_EIO);
	assert_null(rec);
	assert_int_equal(bv_store_session_load(f->s, "alice", 2, &rec, &len,
					       &user, &user_len, &found),
			 0);
	assert_int_equal(found, 1);
	bv_free(rec);
}

#define CRASH_ROWS 50

static void
test_crash_keeps_committed(void **state)
{
	struct fixture *f = *state;
	struct bv_store *s = NULL;
	struct collect c;
	char id[16];
	pid_t pid;
	int status, i;

	bv_store_close(f->s);
	f->s = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (bv_store_open(f->path, f->key, &s) != 0)
			_exit(2);
		for (i = 0; i < CRASH_ROWS; i++) {
			snprintf(id, sizeof(id), "k-%d", i);
			if (bv_store_begin(s) != 0 ||
			    bv_store_history_append(
				    s, "crash", BV_MSG_IN, "eve", 1, id, i,
				    (const uint8_t *)id, strlen(id),
				    BV_MSG_RECEIVED, NULL) != 0 ||
			    bv_store_commit(s) != 0)
				_exit(3);
		}
		/* An uncommitted row at the moment of death. */
		bv_store_begin(s);
		bv_store_history_append(s, "crash", BV_MSG_IN, "eve", 1, "lost",
					0, NULL, 0, BV_MSG_RECEIVED, NULL);
		kill(getpid(), SIGKILL);
		_exit(4);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);

	assert_int_equal(bv_store_open(f->path, f->key, &f->s), 0);
	memset(&c, 0, sizeof(c));
	/* collect_cb stops at 16; count the rest by paging. */
	{
		int64_t after = 0;
		int total = 0;

		for (;;) {
			memset(&c, 0, sizeof(c));
			i = bv_store_history_list(f->s, "crash", after,
						  collect_cb, &c);
			assert_true(i == 0 || i == 1);
			for (status = 0; status < c.n; status++) {
				snprintf(id, sizeof(id), "k-%d", total);
				assert_string_equal(c.ids[status], id);
				assert_string_equal(c.body[status], id);
				total++;
			}
			if (c.n == 0)
				break;
			after = c.seq[c.n - 1];
		}
		assert_int_equal(total, CRASH_ROWS);
	}
}
#endif /* !BV_TEST_STORE_MEM */

#define CASE_A "5b1e0000-1111-4222-8333-444455556666"
#define CASE_B "6c2f0000-1111-4222-8333-444455556666"

struct case_rows {
	int n;
	char ids[4][40];
	char views[4][128];
};

static int
case_row_cb(const char *case_id, const char *view, size_t len, void *arg)
{
	struct case_rows *r = arg;

	assert_true(r->n < 4);
	assert_int_equal(strlen(view), len);
	snprintf(r->ids[r->n], sizeof(r->ids[0]), "%s", case_id);
	snprintf(r->views[r->n], sizeof(r->views[0]), "%s", view);
	r->n++;
	return 0;
}

static void
test_case_view(void **state)
{
	struct fixture *f = *state;
	static const char va[] = "{\"case_number\":\"2026/0417\",\"name\":"
				 "\"CANARY-Elisa-name\"}";
	static const char vb[] = "{\"case_number\":\"2026/0999\"}";
	struct case_rows r;

	assert_int_equal(bv_store_case_put(f->s, CASE_B, vb, strlen(vb)), 0);
	assert_int_equal(bv_store_case_put(f->s, CASE_A, "x", 1), 0);
	assert_int_equal(bv_store_case_put(f->s, CASE_A, va, strlen(va)), 0);
	assert_int_equal(bv_store_case_put(f->s, "x", va, 1), BV_EINVAL);
	assert_int_equal(bv_store_case_put(f->s, CASE_A, va, 0), BV_EINVAL);
	reopen(f);
	memset(&r, 0, sizeof(r));
	assert_int_equal(bv_store_cases(f->s, case_row_cb, &r), 0);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.ids[0], CASE_A); /* by case id */
	assert_string_equal(r.views[0], va);
	assert_string_equal(r.views[1], vb);
	/* Names in the view are personal data: sealed on disk. */
#ifdef BV_TEST_STORE_MEM
	assert_true(image_contains(f, "CANARY-Elisa-name", 17, 1));
	assert_false(image_contains(f, "CANARY-Elisa-name", 17, 0));
#endif
	bv_store_close(f->s);
	f->s = NULL;
#ifndef BV_TEST_STORE_MEM
	assert_false(store_files_contain(f, "CANARY-Elisa-name", 17));
#endif
	reopen(f);

	assert_int_equal(bv_store_case_delete(f->s, CASE_A), 0);
	memset(&r, 0, sizeof(r));
	assert_int_equal(bv_store_cases(f->s, case_row_cb, &r), 0);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.ids[0], CASE_B);
	assert_int_equal(bv_store_case_delete(f->s, NULL), 0);
	memset(&r, 0, sizeof(r));
	assert_int_equal(bv_store_cases(f->s, case_row_cb, &r), 0);
	assert_int_equal(r.n, 0);
}

#ifndef BV_TEST_STORE_MEM
/* SQLite only: a store made by the previous version (schema 2) keeps its
 * history and gains the case view. */
static void
test_migrate_v2(void **state)
{
	struct fixture *f = *state;
	struct case_rows r;
	struct collect h;
	sqlite3 *db;

	assert_int_equal(bv_store_history_append(f->s, "conv-1", BV_MSG_OUT,
						 "me", 1, "m1", 1000,
						 (const uint8_t *)"hei", 3,
						 BV_MSG_SENT, NULL),
			 0);
	bv_store_close(f->s);
	f->s = NULL;
	/* Back to what version 2 left on disk. */
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
				      "DROP TABLE cases;"
				      "DROP TABLE journaled;"
				      "DROP TABLE attachments;"
				      "PRAGMA user_version = 2;",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(bv_store_open(f->path, f->key, &f->s), 0);
	memset(&r, 0, sizeof(r));
	assert_int_equal(bv_store_cases(f->s, case_row_cb, &r), 0);
	assert_int_equal(bv_store_case_put(f->s, CASE_A, "{}", 2), 0);
	memset(&h, 0, sizeof(h));
	assert_int_equal(
		bv_store_history_list(f->s, "conv-1", 0, collect_cb, &h), 0);
	assert_int_equal(h.n, 1);
	bv_store_close(f->s);
	f->s = NULL;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	{
		sqlite3_stmt *st;

		assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version",
						    -1, &st, NULL),
				 SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_int_equal(sqlite3_column_int(st, 0), 5);
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	reopen(f);
}
#endif /* !BV_TEST_STORE_MEM */

static void
test_signal_adapters(void **state)
{
	struct fixture *f = *state;
	signal_protocol_session_store ss;
	signal_protocol_pre_key_store pks;
	signal_protocol_signed_pre_key_store spks;
	signal_protocol_identity_key_store iks;
	signal_protocol_address addr = {"frank", 5, 4};
	signal_buffer *rec = NULL, *user = NULL, *pub = NULL, *priv = NULL;
	signal_int_list *list = NULL;
	uint8_t blob[] = "serialized-session-record";
	uint8_t other[33] = {0x05, 0x99};
	uint32_t reg = 0;

	bv_store_signal_session_store(f->s, &ss);
	bv_store_signal_pre_key_store(f->s, &pks);
	bv_store_signal_signed_pre_key_store(f->s, &spks);
	bv_store_signal_identity_key_store(f->s, &iks);

	assert_int_equal(ss.load_session_func(&rec, &user, &addr, ss.user_data),
			 0);
	assert_int_equal(ss.contains_session_func(&addr, ss.user_data), 0);
	assert_int_equal(ss.store_session_func(&addr, blob, sizeof(blob), NULL,
					       0, ss.user_data),
			 0);
	assert_int_equal(ss.contains_session_func(&addr, ss.user_data), 1);
	assert_int_equal(ss.load_session_func(&rec, &user, &addr, ss.user_data),
			 1);
	assert_non_null(rec);
	assert_null(user);
	assert_int_equal(signal_buffer_len(rec), sizeof(blob));
	assert_memory_equal(signal_buffer_data(rec), blob, sizeof(blob));
	signal_buffer_free(rec);
	/* name is counted, not NUL-terminated: "frankly" is "frank". */
	addr.name = "frankly";
	assert_int_equal(ss.contains_session_func(&addr, ss.user_data), 1);
	assert_int_equal(ss.get_sub_device_sessions_func(&list, "frank", 5,
							 ss.user_data),
			 1);
	assert_int_equal(signal_int_list_size(list), 1);
	assert_int_equal(signal_int_list_at(list, 0), 4);
	signal_int_list_free(list);
	assert_int_equal(ss.delete_session_func(&addr, ss.user_data), 1);
	assert_int_equal(ss.delete_session_func(&addr, ss.user_data), 0);
	assert_int_equal(ss.delete_all_sessions_func("frank", 5, ss.user_data),
			 0);

	assert_int_equal(pks.load_pre_key(&rec, 11, pks.user_data),
			 SG_ERR_INVALID_KEY_ID);
	assert_int_equal(pks.contains_pre_key(11, pks.user_data), 0);
	assert_int_equal(pks.store_pre_key(11, blob, 5, pks.user_data), 0);
	assert_int_equal(pks.contains_pre_key(11, pks.user_data), 1);
	assert_int_equal(pks.load_pre_key(&rec, 11, pks.user_data), 0);
	assert_int_equal(signal_buffer_len(rec), 5);
	assert_memory_equal(signal_buffer_data(rec), blob, 5);
	signal_buffer_free(rec);
	assert_int_equal(pks.remove_pre_key(11, pks.user_data), 0);
	assert_int_equal(pks.load_pre_key(&rec, 11, pks.user_data),
			 SG_ERR_INVALID_KEY_ID);

	assert_int_equal(spks.load_signed_pre_key(&rec, 12, spks.user_data),
			 SG_ERR_INVALID_KEY_ID);
	assert_int_equal(spks.store_signed_pre_key(12, blob, 6, spks.user_data),
			 0);
	assert_int_equal(spks.contains_signed_pre_key(12, spks.user_data), 1);
	assert_int_equal(spks.load_signed_pre_key(&rec, 12, spks.user_data), 0);
	assert_memory_equal(signal_buffer_data(rec), blob, 6);
	signal_buffer_free(rec);
	assert_int_equal(spks.remove_signed_pre_key(12, spks.user_data), 0);
	assert_int_equal(spks.contains_signed_pre_key(12, spks.user_data), 0);

	assert_true(iks.get_identity_key_pair(&pub, &priv, iks.user_data) < 0);
	assert_int_equal(bv_store_identity_put(f->s, pub_key, sizeof(pub_key),
					       priv_key, sizeof(priv_key), 77),
			 0);
	assert_int_equal(iks.get_identity_key_pair(&pub, &priv, iks.user_data),
			 0);
	assert_memory_equal(signal_buffer_data(pub), pub_key, sizeof(pub_key));
	assert_memory_equal(signal_buffer_data(priv), priv_key,
			    sizeof(priv_key));
	signal_buffer_free(pub);
	signal_buffer_bzero_free(priv);
	assert_int_equal(iks.get_local_registration_id(iks.user_data, &reg), 0);
	assert_int_equal(reg, 77);

	addr.name = "frank";
	assert_int_equal(iks.is_trusted_identity(&addr, (uint8_t *)pub_key,
						 sizeof(pub_key),
						 iks.user_data),
			 1);
	assert_int_equal(iks.save_identity(&addr, (uint8_t *)pub_key,
					   sizeof(pub_key), iks.user_data),
			 0);
	assert_int_equal(iks.is_trusted_identity(&addr, other, sizeof(other),
						 iks.user_data),
			 0);
	assert_int_equal(
		iks.save_identity(&addr, other, sizeof(other), iks.user_data),
		SG_ERR_UNTRUSTED_IDENTITY);
	assert_int_equal(iks.save_identity(&addr, NULL, 0, iks.user_data), 0);
	assert_int_equal(iks.is_trusted_identity(&addr, (uint8_t *)pub_key,
						 sizeof(pub_key),
						 iks.user_data),
			 1);
}

/* --- details of store.c that store_mem.c copies (both backends) --------- */

static int
stop_cb(const struct bv_history_entry *e, void *arg)
{
	(void)e;
	(void)arg;
	return 7;
}

static int
conv_stop_cb(const struct bv_conversation_entry *e, void *arg)
{
	(void)e;
	(void)arg;
	return 7;
}

static int
case_stop_cb(const char *case_id, const char *view, size_t len, void *arg)
{
	(void)case_id;
	(void)view;
	(void)len;
	(void)arg;
	return 7;
}

/* What client.c does on a receipt: change the state of the message shown. */
static int
mark_sent_cb(const struct bv_history_entry *e, void *arg)
{
	return bv_store_history_set_state(arg, e->seq, BV_MSG_SENT);
}

static void
test_details(void **state)
{
	struct fixture *f = *state;
	static const char a1[] = "3f0c5a1e-1b2c-4d3e-8f40-5a6b7c8d9e01";
	const char *const one[] = {a1};
	uint8_t *rec = NULL, *user = NULL, *pub = NULL, *priv = NULL, *big;
	size_t len = 0, user_len = 0, n = 0;
	int32_t *ids = NULL;
	int found = 0, deleted = 0;
	int64_t s1 = 0, s2 = 0;
	struct collect c;
	uint32_t reg;

	/* Nothing stored yet: BV_EINVAL to get. */
	assert_int_equal(
		bv_store_identity_get(f->s, &pub, &len, &priv, &len, &reg),
		BV_EINVAL);
	assert_int_equal(bv_store_prekey_get(f->s, 0, 1, &rec, &len),
			 BV_EINVAL);
	assert_int_equal(
		bv_store_identity_peer(f->s, "nobody", 1, &rec, &len, &found),
		0);
	assert_int_equal(found, 0);
	assert_null(rec);

	/* An empty user record is not the same as none. */
	assert_int_equal(bv_store_session_store(f->s, "gina", 1,
						(const uint8_t *)"r", 1,
						(const uint8_t *)"", 0),
			 0);
	assert_int_equal(bv_store_session_load(f->s, "gina", 1, &rec, &len,
					       &user, &user_len, &found),
			 0);
	assert_int_equal(found, 1);
	assert_non_null(user);
	assert_int_equal(user_len, 0);
	bv_free(rec);
	bv_free(user);

	/* Devices in signed order; names are compared whole. */
	assert_int_equal(bv_store_session_store(f->s, "gina", 7,
						(const uint8_t *)"r", 1, NULL,
						0),
			 0);
	assert_int_equal(bv_store_session_store(f->s, "gina", -5,
						(const uint8_t *)"r", 1, NULL,
						0),
			 0);
	assert_int_equal(bv_store_session_store(f->s, "gin", 3,
						(const uint8_t *)"r", 1, NULL,
						0),
			 0);
	assert_int_equal(bv_store_session_store(f->s, "ginb", 2,
						(const uint8_t *)"r", 1, NULL,
						0),
			 0);
	assert_int_equal(bv_store_session_devices(f->s, "gina", &ids, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(ids[0], -5);
	assert_int_equal(ids[1], 1);
	assert_int_equal(ids[2], 7);
	bv_free(ids);
	assert_int_equal(bv_store_session_devices(f->s, "nobody", &ids, &n), 0);
	assert_int_equal(n, 0);
	assert_null(ids);
	assert_int_equal(bv_store_session_delete_all(f->s, "gina", &deleted),
			 0);
	assert_int_equal(deleted, 3);
	assert_int_equal(bv_store_session_delete(f->s, "gina", 1, NULL), 0);
	assert_int_equal(bv_store_session_contains(f->s, "gin", 3, &found), 0);
	assert_int_equal(found, 1);
	assert_int_equal(bv_store_session_contains(f->s, "ginb", 2, &found), 0);
	assert_int_equal(found, 1);

	/* remove_below: one kind, ids strictly below. put replaces. */
	assert_int_equal(
		bv_store_prekey_put(f->s, 0, 1, (const uint8_t *)"a", 1), 0);
	assert_int_equal(
		bv_store_prekey_put(f->s, 0, 3, (const uint8_t *)"b", 1), 0);
	assert_int_equal(bv_store_prekey_put(f->s, 0, 4000000000u,
					     (const uint8_t *)"c", 1),
			 0);
	assert_int_equal(
		bv_store_prekey_put(f->s, 1, 1, (const uint8_t *)"d", 1), 0);
	assert_int_equal(bv_store_prekey_remove_below(f->s, 0, 3), 0);
	assert_int_equal(bv_store_prekey_contains(f->s, 0, 1, &found), 0);
	assert_int_equal(found, 0);
	assert_int_equal(bv_store_prekey_contains(f->s, 0, 3, &found), 0);
	assert_int_equal(found, 1);
	assert_int_equal(bv_store_prekey_contains(f->s, 1, 1, &found), 0);
	assert_int_equal(found, 1);
	assert_int_equal(
		bv_store_prekey_put(f->s, 0, 3, (const uint8_t *)"new", 3), 0);
	assert_int_equal(bv_store_prekey_get(f->s, 0, 3, &rec, &len), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(rec, "new", 3);
	bv_free(rec);
	assert_int_equal(bv_store_prekey_remove_below(f->s, 0, 4000000001u), 0);
	assert_int_equal(bv_store_prekey_contains(f->s, 0, 4000000000u, &found),
			 0);
	assert_int_equal(found, 0);

	/* Values over 16 MiB are refused (never read: not initialized). */
	big = malloc(16u * 1024u * 1024u + 1);
	assert_non_null(big);
	assert_int_equal(
		bv_store_prekey_put(f->s, 0, 9, big, 16u * 1024u * 1024u + 1),
		BV_EINVAL);
	assert_int_equal(bv_store_history_append(f->s, "c", BV_MSG_IN, "x", 1,
						 "big", 1, big,
						 16u * 1024u * 1024u + 1,
						 BV_MSG_RECEIVED, NULL),
			 BV_EINVAL);
	assert_int_equal(bv_store_case_put(f->s, a1, (const char *)big,
					   16u * 1024u * 1024u + 1),
			 BV_EINVAL);
	free(big);

	/* A rolled back append gives its seq back (AUTOINCREMENT). */
	assert_int_equal(bv_store_begin(f->s), 0);
	assert_int_equal(bv_store_history_append(f->s, "c", BV_MSG_OUT, "me", 1,
						 "d-0", 1, NULL, 0,
						 BV_MSG_SENDING, &s1),
			 0);
	assert_int_equal(bv_store_rollback(f->s), 0);
	assert_int_equal(bv_store_history_append(f->s, "c", BV_MSG_OUT, "me", 1,
						 "d-1", 1, NULL, 0,
						 BV_MSG_SENDING, &s2),
			 0);
	assert_int_equal(s1, s2);
	assert_int_equal(bv_store_history_set_state(f->s, s2, BV_MSG_SENDING),
			 0);

	/* No recipients for a seq that is not there: not an error. */
	assert_int_equal(bv_store_out_recipients_put(f->s, 4242, NULL, 0), 0);
	assert_int_equal(bv_store_out_recipients_put(f->s, 4242, one, 1),
			 BV_EINVAL);
	assert_int_equal(bv_store_out_recipients_put(f->s, s2, one, 1), 0);

	/* A callback may change the store it is walking. */
	assert_int_equal(bv_store_history_find(f->s, "d-1", mark_sent_cb, f->s),
			 0);
	memset(&c, 0, sizeof(c));
	assert_int_equal(bv_store_history_unsent(f->s, collect_cb, &c), 0);
	assert_int_equal(c.n, 0);

	/* A nonzero return stops the walk and is returned. */
	assert_int_equal(bv_store_case_put(f->s, a1, "{}", 2), 0);
	assert_int_equal(bv_store_history_list(f->s, "c", 0, stop_cb, NULL), 7);
	assert_int_equal(bv_store_history_find(f->s, "d-1", stop_cb, NULL), 7);
	assert_int_equal(bv_store_conversations(f->s, conv_stop_cb, NULL), 7);
	assert_int_equal(bv_store_cases(f->s, case_stop_cb, NULL), 7);
	assert_int_equal(bv_store_history_list(f->s, NULL, 0, stop_cb, NULL),
			 BV_EINVAL);
	assert_int_equal(bv_store_conversations(f->s, NULL, NULL), BV_EINVAL);

	/* Accepting a key nothing was stored for stores it. */
	assert_int_equal(bv_store_identity_accept(f->s, "hugo", 1, pub_key, 33),
			 0);
	assert_int_equal(
		bv_store_identity_peer(f->s, "hugo", 1, &rec, &len, &found), 0);
	assert_int_equal(found, 1);
	assert_int_equal(len, 33);
	assert_memory_equal(rec, pub_key, 33);
	bv_free(rec);
}

#ifdef BV_TEST_STORE_MEM
/* --- the memory backend only -------------------------------------------- */

#define MEM_A1	 "3f0c5a1e-1b2c-4d3e-8f40-5a6b7c8d9e01"
#define MEM_A2	 "0a0c5a1e-1b2c-4d3e-8f40-5a6b7c8d9e02"
#define MEM_CASE "7d3f0000-1111-4222-8333-444455556666"

#define CRASH_ROWS_MEM 50

static const uint8_t other_key[33] = {0x05, 0x77, 0x66};

/* A row in every table: put_everything and the rest. */
static void
put_all_tables(struct bv_store *s, int64_t *seq)
{
	const char *const to[] = {MEM_A1, MEM_A2};
	int seen;

	put_everything(s);
	assert_int_equal(
		bv_store_prekey_put(s, 1, 10, (const uint8_t *)"spk10", 5), 0);
	assert_int_equal(bv_store_session_store(s, "bob", -1,
						(const uint8_t *)"sb", 2,
						(const uint8_t *)"", 0),
			 0);
	assert_int_equal(bv_store_identity_accept(s, "bob", 1, other_key,
						  sizeof(other_key)),
			 0);
	assert_int_equal(bv_store_seen(s, "bob", 1, "m-2", &seen), 0);
	assert_int_equal(bv_store_history_append(
				 s, "case-9", BV_MSG_OUT, "me", 1, "m-3", 2000,
				 (const uint8_t *)"hi", 2, BV_MSG_SENDING, seq),
			 0);
	assert_int_equal(bv_store_history_append(s, "case-9", BV_MSG_IN, "bob",
						 -1, "m-4", -5, NULL, 0,
						 BV_MSG_UNDECRYPTABLE, NULL),
			 0);
	assert_int_equal(bv_store_out_recipients_put(s, *seq, to, 2), 0);
	assert_int_equal(bv_store_case_put(s, MEM_CASE, "{\"a\":1}", 7), 0);
	assert_int_equal(bv_store_journaled_put(s, "m-1", "2026/1", 5), 0);
}

/* The image holds every table; close and preload bring all of it back. */
static void
test_mem_image_round_trip(void **state)
{
	struct fixture *f = *state;
	char(*acc)[BV_UUID_LEN + 1] = NULL;
	uint8_t *img = NULL, *body, *pub = NULL, *priv = NULL, *rec, *user;
	size_t len = 0, blen, n = 0, user_len;
	struct case_rows r;
	struct collect c;
	int64_t seq = 0;
	enum bv_trust t;
	uint32_t reg;
	int found;

	put_all_tables(f->s, &seq);
	body = store_body(f, &blen);
	assert_int_equal(bv_store_mem_image(f->path, &img, &len), 0);
	bv_store_close(f->s);
	f->s = NULL;

	/* Forgotten: a new store. */
	assert_int_equal(bv_store_mem_preload(f->path, NULL, 0), 0);
	assert_int_equal(bv_store_open(f->path, f->key, &f->s), 0);
	assert_int_equal(
		bv_store_identity_get(f->s, &pub, &len, &priv, &len, &reg),
		BV_EINVAL);
	bv_store_close(f->s);
	f->s = NULL;

	/* Preloaded: everything, byte for byte. */
	assert_int_equal(bv_store_mem_preload(f->path, img, len), 0);
	free(img);
	assert_int_equal(bv_store_open(f->path, f->key, &f->s), 0);
	assert_body(f, body, blen);
	check_everything(f->s);
	assert_int_equal(bv_store_out_recipients_get(f->s, seq, &acc, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(acc[0], MEM_A2);
	bv_free(acc);
	assert_int_equal(bv_store_session_load(f->s, "bob", -1, &rec, &len,
					       &user, &user_len, &found),
			 0);
	assert_int_equal(found, 1);
	assert_non_null(user);
	assert_int_equal(user_len, 0);
	bv_free(rec);
	bv_free(user);
	assert_int_equal(bv_store_identity_check(f->s, "bob", 1, other_key,
						 sizeof(other_key), &t),
			 0);
	assert_int_equal(t, BV_TRUST_SAME);
	memset(&r, 0, sizeof(r));
	assert_int_equal(bv_store_cases(f->s, case_row_cb, &r), 0);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.views[0], "{\"a\":1}");
	memset(&c, 0, sizeof(c));
	assert_int_equal(
		bv_store_history_list(f->s, "case-1", 0, collect_cb, &c), 0);
	assert_string_equal(c.journal[0], "2026/1");
	memset(&c, 0, sizeof(c));
	assert_int_equal(bv_store_history_unsent(f->s, collect_cb, &c), 0);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.seq[0], seq);

	/* The image close keeps, and a reopen, are the same state. */
	reopen(f);
	assert_body(f, body, blen);
	free(body);
}

/* Values are in the image sealed only; the names too, unlike store.c. */
static void
test_mem_image_sealed(void **state)
{
	struct fixture *f = *state;

	put_everything(f->s);
	assert_true(image_contains(f, canary, sizeof(canary) - 1, 1));
	assert_true(image_contains(f, "sess-a1", 7, 1));
	assert_false(image_contains(f, canary, sizeof(canary) - 1, 0));
	assert_false(image_contains(f, priv_key, sizeof(priv_key), 0));
	assert_false(image_contains(f, "sess-a1", 7, 0));
	assert_false(image_contains(f, "alice", 5, 0));
}

/* A damaged image leaves nothing open, loaded or counted. */
static void
expect_eio(struct fixture *f, const uint8_t *img, size_t len)
{
	struct bv_store *s = (struct bv_store *)1;
	uint8_t *out = NULL;
	size_t n = 0;

	assert_int_equal(bv_store_mem_preload(f->path, img, len), 0);
	assert_int_equal(bv_store_open(f->path, f->key, &s), BV_EIO);
	assert_ptr_equal(s, (struct bv_store *)1);
	assert_int_equal(bv_store_mem_generation(f->path), 0);
	assert_int_equal(bv_store_mem_image(f->path, &out, &n), BV_EINVAL);
}

static void
test_mem_damaged_image(void **state)
{
	struct fixture *f = *state;
	uint8_t *img = NULL, *bad, *big;
	struct bv_store *other = NULL;
	uint8_t wrong[BV_STORE_KEY_LEN];
	int64_t seq = 0;
	size_t len = 0, i;

	put_all_tables(f->s, &seq);
	assert_int_equal(bv_store_mem_image(f->path, &img, &len), 0);
	bv_store_close(f->s);
	f->s = NULL;
	bad = malloc(len + 1);
	assert_non_null(bad);

	/* Another key is BV_EINVAL, not damage, and keeps the image. */
	memcpy(wrong, f->key, sizeof(wrong));
	wrong[31] ^= 0x80;
	assert_int_equal(bv_store_mem_preload(f->path, img, len), 0);
	assert_int_equal(bv_store_open(f->path, wrong, &other), BV_EINVAL);
	assert_null(other);
	assert_int_equal(bv_store_open(f->path, f->key, &f->s), 0);
	check_everything(f->s);
	bv_store_close(f->s);
	f->s = NULL;

	quiet(1);
	for (i = 0; i < len; i++)
		expect_eio(f, img, i); /* every truncation */
	for (i = 0; i < len * 8; i++) {
		memcpy(bad, img, len);
		bad[i / 8] ^= (uint8_t)(1u << (i % 8)); /* every bit */
		expect_eio(f, bad, len);
	}
	quiet(0);
	memcpy(bad, img, len);
	bad[len] = 0;
	expect_eio(f, bad, len + 1); /* a byte too many */
	bad[4] = 3;
	img_fix_sum(bad, len);
	expect_eio(f, bad, len); /* a version we do not know */
	memcpy(bad, img, len);
	memcpy(bad, "BVSN", 4);
	img_fix_sum(bad, len);
	expect_eio(f, bad, len); /* not our magic */
	memcpy(bad, img, len);
	bad[IMG_BOX_AT + 20] ^= 1;
	img_fix_sum(bad, len);
	expect_eio(f, bad, len); /* the sum fits, the box does not open */
	/* Over the limit (1 MiB in this build): refused before anything. */
	big = calloc(1, STORE_MEM_MAX_IMAGE + 1);
	assert_non_null(big);
	memcpy(big, img, len);
	expect_eio(f, big, STORE_MEM_MAX_IMAGE + 1);
	free(big);

	/* The image itself still opens. */
	assert_int_equal(bv_store_mem_preload(f->path, img, len), 0);
	assert_int_equal(bv_store_open(f->path, f->key, &f->s), 0);
	check_everything(f->s);
	free(bad);
	free(img);
}

/* A body written by the test, big-endian as store_mem.c's. */
struct tbody {
	uint8_t b[1024];
	size_t n;
};

static void
tb_int(struct tbody *t, uint64_t v, size_t bytes)
{
	size_t i;

	assert_true(t->n + bytes <= sizeof(t->b));
	for (i = bytes; i > 0; i--) {
		t->b[t->n + i - 1] = (uint8_t)v;
		v >>= 8;
	}
	t->n += bytes;
}

static void
tb_raw(struct tbody *t, const void *p, size_t len)
{
	assert_true(t->n + len <= sizeof(t->b));
	memcpy(t->b + t->n, p, len);
	t->n += len;
}

static void
tb_val(struct tbody *t, const void *p, size_t len)
{
	tb_int(t, len, 4);
	tb_raw(t, p, len);
}

static void
tb_str(struct tbody *t, const char *str)
{
	tb_val(t, str, strlen(str));
}

/* What body_variant() breaks; V_OK breaks nothing. */
enum {
	V_OK,
	V_LOCAL_TWO,
	V_EMPTY_PUB,
	V_PREKEY_COUNT_HUGE,
	V_PREKEY_LEN_HUGE,
	V_PREKEY_LEN_OVER,
	V_PREKEY_DUP,
	V_PREKEY_DESC,
	V_EMPTY_REC,
	V_NAME_NUL,
	V_HAS_USER_TWO,
	V_SESSION_DESC,
	V_PEER_EMPTY_KEY,
	V_SEEN_DUP,
	V_SEQ_ZERO,
	V_SEQ_MAX,
	V_SEQ_DESC,
	V_DIRECTION,
	V_STATE,
	V_RCPT_NO_SEQ,
	V_RCPT_BAD_UUID,
	V_RCPT_DUP,
	V_CASE_BAD_UUID,
	V_CASE_EMPTY,
	V_JOURNAL_EMPTY,
	V_JOURNAL_DESC,
	V_TRAILING,
	V_NO_LAST_COUNT,
	V_COUNT
};

/* A body with a row in every table, broken as v says. */
static void
body_variant(struct tbody *t, int v)
{
	static const char a1[] = MEM_A1;

	memset(t, 0, sizeof(*t));
	tb_int(t, v == V_LOCAL_TWO ? 2 : 1, 1);
	tb_int(t, 4242, 4);
	tb_val(t, pub_key, v == V_EMPTY_PUB ? 0 : sizeof(pub_key));
	tb_val(t, priv_key, sizeof(priv_key));
	/* prekeys 1 and 2 */
	tb_int(t, v == V_PREKEY_COUNT_HUGE ? 0xffffffffu : 2, 4);
	tb_int(t, v == V_PREKEY_DESC ? 2 : 1, 4);
	if (v == V_PREKEY_LEN_HUGE || v == V_PREKEY_LEN_OVER) {
		tb_int(t, v == V_PREKEY_LEN_HUGE ? 0xffffffffu : 0x01000001u,
		       4);
		tb_raw(t, "a", 1);
	} else {
		tb_val(t, "a", v == V_EMPTY_REC ? 0 : 1);
	}
	tb_int(t, v == V_PREKEY_DESC || v == V_PREKEY_DUP ? 1 : 2, 4);
	tb_val(t, "b", 1);
	/* signed prekey 5 */
	tb_int(t, 1, 4);
	tb_int(t, 5, 4);
	tb_val(t, "s", 1);
	/* sessions (alice, 1) with a user record, (alice, 2) without */
	tb_int(t, 2, 4);
	tb_val(t, v == V_NAME_NUL ? "al\0ce" : "alice", 5);
	tb_int(t, v == V_SESSION_DESC ? 2 : 1, 4);
	tb_val(t, "r", 1);
	tb_int(t, v == V_HAS_USER_TWO ? 2 : 1, 1);
	tb_val(t, "u", 1);
	tb_str(t, "alice");
	tb_int(t, v == V_SESSION_DESC ? 1 : 2, 4);
	tb_val(t, "r", 1);
	tb_int(t, 0, 1);
	/* a peer identity */
	tb_int(t, 1, 4);
	tb_str(t, "alice");
	tb_int(t, 1, 4);
	tb_val(t, pub_key, v == V_PEER_EMPTY_KEY ? 0 : sizeof(pub_key));
	tb_int(t, 1, 8);
	tb_int(t, 2, 8);
	/* seen: one row, or the same one twice */
	tb_int(t, v == V_SEEN_DUP ? 2 : 1, 4);
	tb_str(t, "alice");
	tb_int(t, 1, 4);
	tb_str(t, "m-1");
	tb_int(t, 3, 8);
	if (v == V_SEEN_DUP) {
		tb_str(t, "alice");
		tb_int(t, 1, 4);
		tb_str(t, "m-1");
		tb_int(t, 3, 8);
	}
	/* history: seq 1 in, seq 2 out */
	tb_int(t, 2, 4);
	tb_int(t, v == V_SEQ_ZERO ? 0 : v == V_SEQ_DESC ? 2 : 1, 8);
	tb_str(t, "c");
	tb_int(t, v == V_DIRECTION ? 2 : 0, 1);
	tb_str(t, "alice");
	tb_int(t, 1, 4);
	tb_str(t, "m-1");
	tb_int(t, 10, 8);
	tb_int(t, v == V_STATE ? 7 : BV_MSG_RECEIVED, 1);
	tb_str(t, "body");
	tb_int(t,
	       v == V_SEQ_MAX	 ? (uint64_t)INT64_MAX
	       : v == V_SEQ_DESC ? 1
				 : 2,
	       8);
	tb_str(t, "c");
	tb_int(t, 1, 1);
	tb_str(t, "me");
	tb_int(t, 1, 4);
	tb_str(t, "m-2");
	tb_int(t, 11, 8);
	tb_int(t, BV_MSG_SENDING, 1);
	tb_str(t, "");
	/* a recipient of seq 2 */
	tb_int(t, v == V_RCPT_DUP ? 2 : 1, 4);
	tb_int(t, v == V_RCPT_NO_SEQ ? 3 : 2, 8);
	tb_raw(t,
	       v == V_RCPT_BAD_UUID ? "3F0C5A1E-1B2C-4D3E-8F40-5A6B7C8D9E01"
				    : a1,
	       36);
	if (v == V_RCPT_DUP) {
		tb_int(t, 2, 8);
		tb_raw(t, a1, 36);
	}
	/* a case */
	tb_int(t, 1, 4);
	tb_raw(t,
	       v == V_CASE_BAD_UUID ? "7d3f0000-1111-4222-8333-44445555666g"
				    : MEM_CASE,
	       36);
	tb_val(t, "{}", v == V_CASE_EMPTY ? 0 : 2);
	/* journaled m-1 and m-2 */
	if (v == V_NO_LAST_COUNT)
		return;
	tb_int(t, 2, 4);
	tb_str(t, v == V_JOURNAL_DESC ? "m-2" : "m-1");
	tb_str(t, v == V_JOURNAL_EMPTY ? "" : "2026/1");
	tb_int(t, 5, 8);
	tb_str(t, v == V_JOURNAL_DESC ? "m-1" : "m-2");
	tb_str(t, "2026/2");
	tb_int(t, 6, 8);
	if (v == V_TRAILING)
		tb_int(t, 0, 1);
}

/* Opens body sealed under f's key: the open's result (0: f->s is open). */
static int
open_body(struct fixture *f, const uint8_t *body, size_t blen)
{
	uint8_t *img;
	size_t len;
	int rc;

	img = img_seal(f->key, body, blen, &len);
	assert_int_equal(bv_store_mem_preload(f->path, img, len), 0);
	free(img);
	rc = bv_store_open(f->path, f->key, &f->s);
	if (rc < 0) {
		assert_int_equal(rc, BV_EIO);
		assert_int_equal(bv_store_mem_generation(f->path), 0);
	}
	return rc;
}

/* Bodies that seal and check fine but lie inside: BV_EIO, never a crash,
 * an overread (ASan) or a half-loaded store. */
static void
test_mem_hostile_body(void **state)
{
	static const uint32_t lies[] = {0xffffffffu, 0x7fffffffu, 0x80000000u,
					0x01000001u, 0};
	struct fixture *f = *state;
	struct tbody t, m;
	struct collect c;
	uint8_t *body;
	size_t blen, i, k;
	int v, rc, opened = 0, refused = 0;

	bv_store_close(f->s);
	f->s = NULL;

	/* The good one opens with everything in it, and is written back as
	 * it was: the format has one way to say each store. */
	body_variant(&t, V_OK);
	assert_int_equal(open_body(f, t.b, t.n), 0);
	body = store_body(f, &blen);
	/* body_variant() writes version 1 (no attachments table); it comes
	 * back as version 2, the same with an empty attachments table. */
	assert_int_equal(blen, t.n + 4);
	assert_memory_equal(body, t.b, t.n);
	assert_memory_equal(body + t.n, "\0\0\0\0", 4);
	free(body);
	memset(&c, 0, sizeof(c));
	assert_int_equal(bv_store_history_list(f->s, "c", 0, collect_cb, &c),
			 0);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.body[0], "body");
	assert_string_equal(c.journal[1], "2026/2");
	bv_store_close(f->s);
	f->s = NULL;

	quiet(1);
	for (v = V_OK + 1; v < V_COUNT; v++) {
		body_variant(&t, v);
		rc = open_body(f, t.b, t.n);
		if (rc == 0)
			print_error("variant %d was accepted\n", v);
		assert_int_equal(rc, BV_EIO);
	}
	/* Every truncation of the good one. */
	body_variant(&t, V_OK);
	for (i = 0; i < t.n; i++)
		assert_int_equal(open_body(f, t.b, i), BV_EIO);
	/* A lie at every offset: whatever it opens to, no harm. */
	for (i = 0; i + 4 <= t.n; i++) {
		for (k = 0; k < sizeof(lies) / sizeof(lies[0]); k++) {
			m = t;
			m.b[i] = (uint8_t)(lies[k] >> 24);
			m.b[i + 1] = (uint8_t)(lies[k] >> 16);
			m.b[i + 2] = (uint8_t)(lies[k] >> 8);
			m.b[i + 3] = (uint8_t)lies[k];
			if (open_body(f, m.b, m.n) == 0) {
				opened++;
				bv_store_close(f->s);
				f->s = NULL;
			} else {
				refused++;
			}
		}
	}
	quiet(0);
	assert_true(refused > 0);
	assert_true(opened > 0);
	assert_int_equal(bv_store_mem_preload(f->path, NULL, 0), 0);
	assert_int_equal(bv_store_open(f->path, f->key, &f->s), 0);
}

struct hook_log {
	int calls;
	uint64_t last;
	char path[96];
	int take_image;
	uint8_t *img;
	size_t len;
};

static void
hook_cb(void *ud, const char *path, uint64_t generation)
{
	struct hook_log *h = ud;

	h->calls++;
	h->last = generation;
	snprintf(h->path, sizeof(h->path), "%s", path);
	assert_int_equal(bv_store_mem_generation(path), generation);
	if (h->take_image) {
		free(h->img);
		h->img = NULL;
		assert_int_equal(bv_store_mem_image(path, &h->img, &h->len), 0);
	}
}

/* Writes, commits and no-ops as the generation counts them. */
static void
test_mem_generation_hook(void **state)
{
	struct fixture *f = *state;
	struct hook_log h;
	struct bv_store *s2 = NULL;
	uint8_t *img = NULL;
	char p2[128];
	size_t len = 0;
	int64_t seq = 0;
	enum bv_trust t;
	int seen, found;

	memset(&h, 0, sizeof(h));
	bv_store_mem_set_hook(hook_cb, &h);
	assert_int_equal(bv_store_mem_generation(f->path), 0);
	assert_int_equal(bv_store_mem_generation("/no/such/store"), 0);
	assert_int_equal(bv_store_mem_generation(NULL), 0);

	assert_int_equal(
		bv_store_prekey_put(f->s, 0, 1, (const uint8_t *)"a", 1), 0);
	assert_int_equal(bv_store_mem_generation(f->path), 1);
	assert_int_equal(h.calls, 1);
	assert_int_equal(h.last, 1);
	assert_string_equal(h.path, f->path);
	assert_int_equal(
		bv_store_prekey_put(f->s, 0, 1, (const uint8_t *)"b", 1), 0);
	assert_int_equal(h.last, 2);
	/* Calls that change nothing, or fail, do not count. */
	assert_int_equal(bv_store_prekey_remove(f->s, 0, 99), 0);
	assert_int_equal(bv_store_prekey_remove_below(f->s, 0, 1), 0);
	assert_int_equal(bv_store_seen(f->s, "x", 1, "m", &seen), 0);
	assert_int_equal(bv_store_seen(f->s, "x", 1, "m", &seen), 0);
	assert_int_equal(seen, 1);
	assert_int_equal(bv_store_journaled_put(f->s, "m", "j", 1), 0);
	assert_int_equal(bv_store_journaled_put(f->s, "m", "k", 1), 0);
	assert_int_equal(bv_store_identity_save(f->s, "x", 1, pub_key, 33, &t),
			 0);
	assert_int_equal(bv_store_identity_save(f->s, "x", 1, pub_key, 33, &t),
			 0);
	assert_int_equal(
		bv_store_identity_save(f->s, "x", 1, other_key, 33, &t), 0);
	assert_int_equal(t, BV_TRUST_CHANGED);
	assert_int_equal(bv_store_session_delete(f->s, "x", 1, NULL), 0);
	assert_int_equal(bv_store_case_delete(f->s, NULL), 0);
	assert_int_equal(bv_store_prekey_put(f->s, 0, 2, NULL, 1), BV_EINVAL);
	assert_int_equal(bv_store_mem_generation(f->path), 5);
	assert_int_equal(h.calls, 5);

	/* A transaction counts once, at its commit, if it wrote. */
	assert_int_equal(bv_store_begin(f->s), 0);
	assert_int_equal(
		bv_store_prekey_put(f->s, 0, 3, (const uint8_t *)"c", 1), 0);
	assert_int_equal(bv_store_seen(f->s, "x", 1, "n", &seen), 0);
	assert_int_equal(bv_store_history_append(f->s, "c", BV_MSG_OUT, "me", 1,
						 "o", 1, NULL, 0,
						 BV_MSG_SENDING, &seq),
			 0);
	assert_int_equal(bv_store_mem_generation(f->path), 5);
	assert_int_equal(bv_store_mem_image(f->path, &img, &len), BV_EINVAL);
	assert_int_equal(bv_store_commit(f->s), 0);
	assert_int_equal(bv_store_mem_generation(f->path), 6);
	assert_int_equal(h.calls, 6);
	assert_int_equal(bv_store_begin(f->s), 0);
	assert_int_equal(bv_store_commit(f->s), 0);
	assert_int_equal(bv_store_begin(f->s), 0);
	assert_int_equal(bv_store_seen(f->s, "x", 1, "n", &seen), 0);
	assert_int_equal(bv_store_commit(f->s), 0);
	assert_int_equal(bv_store_begin(f->s), 0);
	assert_int_equal(
		bv_store_prekey_put(f->s, 0, 4, (const uint8_t *)"d", 1), 0);
	assert_int_equal(bv_store_rollback(f->s), 0);
	assert_int_equal(bv_store_history_set_state(f->s, seq, BV_MSG_SENDING),
			 0);
	assert_int_equal(bv_store_mem_generation(f->path), 6);
	assert_int_equal(h.calls, 6);
	assert_int_equal(bv_store_history_set_state(f->s, seq, BV_MSG_SENT), 0);
	assert_int_equal(bv_store_mem_generation(f->path), 7);

	/* The hook may take the image: it has the change it is called for. */
	h.take_image = 1;
	assert_int_equal(
		bv_store_prekey_put(f->s, 1, 9, (const uint8_t *)"e", 1), 0);
	assert_int_equal(h.last, 8);
	assert_non_null(h.img);
	snprintf(p2, sizeof(p2), "%s/second", f->dir);
	assert_int_equal(bv_store_mem_preload(p2, h.img, h.len), 0);
	assert_int_equal(bv_store_open(p2, f->key, &s2), 0);
	assert_int_equal(bv_store_prekey_contains(s2, 1, 9, &found), 0);
	assert_int_equal(found, 1);
	/* Another store, with its own count; no hook call for opening. */
	assert_int_equal(bv_store_mem_generation(p2), 0);
	assert_int_equal(h.calls, 8);
	bv_store_close(s2);
	assert_int_equal(bv_store_mem_preload(p2, NULL, 0), 0);
	free(h.img);
	h.img = NULL;

	/* No hook: still counted. A reopen starts at 0. */
	bv_store_mem_set_hook(NULL, NULL);
	assert_int_equal(
		bv_store_prekey_put(f->s, 1, 10, (const uint8_t *)"f", 1), 0);
	assert_int_equal(bv_store_mem_generation(f->path), 9);
	assert_int_equal(h.calls, 8);
	reopen(f);
	assert_int_equal(bv_store_mem_generation(f->path), 0);
}

/* One write of every kind in a transaction, rolled back: the state at
 * begin, byte for byte; a failed call undoes only itself. */
static void
test_mem_rollback_restores(void **state)
{
	struct fixture *f = *state;
	const char *const to[] = {MEM_A1, MEM_A2,
				  "4a0c5a1e-1b2c-4d3e-8f40-"
				  "5a6b7c8d9e03"};
	uint8_t *before, *after;
	size_t blen, alen;
	int64_t seq = 0, s2 = 0;
	enum bv_trust t;
	long n;
	int seen, deleted, rc, found;

	put_all_tables(f->s, &seq);
	before = store_body(f, &blen);

	assert_int_equal(bv_store_begin(f->s), 0);
	assert_int_equal(
		bv_store_identity_put(f->s, other_key, 33, pub_key, 33, 1), 0);
	assert_int_equal(
		bv_store_prekey_put(f->s, 0, 8, (const uint8_t *)"n", 1), 0);
	assert_int_equal(
		bv_store_prekey_put(f->s, 0, 7, (const uint8_t *)"r", 1), 0);
	assert_int_equal(bv_store_prekey_remove(f->s, 0, 8), 0);
	/* A row from the middle: 10 is after it and must stay after it. */
	assert_int_equal(bv_store_prekey_remove(f->s, 1, 9), 0);
	assert_int_equal(bv_store_prekey_remove_below(f->s, 0, 100), 0);
	assert_int_equal(bv_store_prekey_remove_below(f->s, 1, 100), 0);
	assert_int_equal(bv_store_session_store(f->s, "alice", 5,
						(const uint8_t *)"x", 1, NULL,
						0),
			 0);
	assert_int_equal(bv_store_session_store(f->s, "alice", 1,
						(const uint8_t *)"y", 1, NULL,
						0),
			 0);
	assert_int_equal(bv_store_session_delete(f->s, "bob", -1, &deleted), 0);
	assert_int_equal(bv_store_session_delete_all(f->s, "alice", &deleted),
			 0);
	assert_int_equal(deleted, 3);
	assert_int_equal(
		bv_store_identity_save(f->s, "carl", 1, pub_key, 33, &t), 0);
	assert_int_equal(
		bv_store_identity_accept(f->s, "alice", 1, other_key, 33), 0);
	assert_int_equal(bv_store_seen(f->s, "carl", 1, "m-9", &seen), 0);
	assert_int_equal(bv_store_history_append(
				 f->s, "case-9", BV_MSG_OUT, "me", 1, "m-9", 3,
				 (const uint8_t *)"z", 1, BV_MSG_SENDING, &s2),
			 0);
	assert_int_equal(bv_store_history_set_state(f->s, seq, BV_MSG_READ), 0);
	assert_int_equal(bv_store_history_set_state(f->s, s2, BV_MSG_SENT), 0);
	assert_int_equal(bv_store_out_recipients_put(f->s, s2, to, 3), 0);
	assert_int_equal(bv_store_out_recipients_put(f->s, seq, to, 3), 0);
	assert_int_equal(bv_store_case_put(f->s, MEM_A1, "{}", 2), 0);
	assert_int_equal(bv_store_case_put(f->s, MEM_CASE, "{}", 2), 0);
	assert_int_equal(bv_store_case_delete(f->s, NULL), 0);
	assert_int_equal(bv_store_journaled_put(f->s, "m-3", "2026/3", 9), 0);
	assert_int_equal(bv_store_rollback(f->s), 0);
	assert_body(f, before, blen);
	check_everything(f->s);

	/* Out of memory at each allocation in turn: BV_ENOMEM and nothing
	 * changed, inside a transaction (the earlier write stays) and out. */
	assert_int_equal(bv_store_history_append(f->s, "case-9", BV_MSG_OUT,
						 "me", 1, "m-10", 4, NULL, 0,
						 BV_MSG_SENDING, &s2),
			 0);
	free(before);
	before = store_body(f, &blen);
	for (n = 1;; n++) {
		assert_int_equal(bv_store_begin(f->s), 0);
		assert_int_equal(bv_store_prekey_put(f->s, 0, 50,
						     (const uint8_t *)"t", 1),
				 0);
		bv_alloc_fail_at(n);
		rc = bv_store_out_recipients_put(f->s, s2, to, 3);
		bv_alloc_fail_at(0);
		if (rc == 0) {
			assert_int_equal(bv_store_rollback(f->s), 0);
			break;
		}
		assert_int_equal(rc, BV_ENOMEM);
		assert_int_equal(bv_store_commit(f->s), 0);
		assert_int_equal(bv_store_prekey_contains(f->s, 0, 50, &found),
				 0);
		assert_int_equal(found, 1);
		assert_int_equal(bv_store_prekey_remove(f->s, 0, 50), 0);
		assert_body(f, before, blen);
	}
	assert_true(n > 3); /* at least the three rows failed */
	for (n = 1;; n++) {
		bv_alloc_fail_at(n);
		rc = bv_store_out_recipients_put(f->s, s2, to, 3);
		bv_alloc_fail_at(0);
		if (rc == 0)
			break;
		assert_int_equal(rc, BV_ENOMEM);
		assert_body(f, before, blen);
	}
	assert_true(n > 3);
	after = store_body(f, &alen);
	assert_int_equal(alen, blen + 3 * (8 + 36));
	free(before);
	before = after;
	blen = alen;

	/* Closing in a transaction rolls it back. */
	assert_int_equal(bv_store_begin(f->s), 0);
	assert_int_equal(
		bv_store_prekey_put(f->s, 0, 77, (const uint8_t *)"l", 1), 0);
	reopen(f);
	assert_body(f, before, blen);
	free(before);
}

/* The hook's image after each commit is what a crash leaves: every
 * committed row, no uncommitted one (test_crash_keeps_committed's twin). */
static void
test_mem_hook_image_is_committed(void **state)
{
	struct fixture *f = *state;
	struct bv_store *s2 = NULL;
	struct hook_log h;
	struct collect c;
	char id[16], p2[128];
	int64_t after = 0;
	int i, total = 0, rc;

	memset(&h, 0, sizeof(h));
	h.take_image = 1;
	bv_store_mem_set_hook(hook_cb, &h);
	for (i = 0; i < CRASH_ROWS_MEM; i++) {
		snprintf(id, sizeof(id), "k-%d", i);
		assert_int_equal(bv_store_begin(f->s), 0);
		assert_int_equal(bv_store_history_append(
					 f->s, "crash", BV_MSG_IN, "eve", 1, id,
					 i, (const uint8_t *)id, strlen(id),
					 BV_MSG_RECEIVED, NULL),
				 0);
		assert_int_equal(bv_store_commit(f->s), 0);
	}
	assert_int_equal(bv_store_begin(f->s), 0);
	assert_int_equal(bv_store_history_append(f->s, "crash", BV_MSG_IN,
						 "eve", 1, "lost", 0, NULL, 0,
						 BV_MSG_RECEIVED, NULL),
			 0);
	assert_int_equal(h.calls, CRASH_ROWS_MEM);

	snprintf(p2, sizeof(p2), "%s/after-crash", f->dir);
	assert_int_equal(bv_store_mem_preload(p2, h.img, h.len), 0);
	assert_int_equal(bv_store_open(p2, f->key, &s2), 0);
	for (;;) {
		memset(&c, 0, sizeof(c));
		rc = bv_store_history_list(s2, "crash", after, collect_cb, &c);
		assert_true(rc == 0 || rc == 1);
		for (i = 0; i < c.n; i++) {
			snprintf(id, sizeof(id), "k-%d", total);
			assert_string_equal(c.ids[i], id);
			assert_string_equal(c.body[i], id);
			total++;
		}
		if (c.n == 0)
			break;
		after = c.seq[c.n - 1];
	}
	assert_int_equal(total, CRASH_ROWS_MEM);
	bv_store_close(s2);
	assert_int_equal(bv_store_mem_preload(p2, NULL, 0), 0);
	assert_int_equal(bv_store_rollback(f->s), 0);
	free(h.img);
}

/* Over the image limit: no image, and a close that cannot keep one makes
 * the next open fail rather than start from nothing or from stale. */
static void
test_mem_image_limit(void **state)
{
	struct fixture *f = *state;
	struct bv_store *other = NULL;
	uint8_t *body, *img = NULL;
	size_t len = 0, i;
	uint32_t reg;

	body = calloc(1, 64 * 1024);
	assert_non_null(body);
	put_everything(f->s);
	for (i = 0; i < STORE_MEM_MAX_IMAGE / (64 * 1024) + 1; i++)
		assert_int_equal(bv_store_history_append(f->s, "big", BV_MSG_IN,
							 "x", 1, "b", 1, body,
							 64 * 1024,
							 BV_MSG_RECEIVED, NULL),
				 0);
	free(body);
	assert_int_equal(bv_store_mem_image(f->path, &img, &len), BV_ENOMEM);
	assert_null(img);
	bv_store_close(f->s);
	f->s = NULL;
	assert_int_equal(bv_store_open(f->path, f->key, &other), BV_EIO);
	assert_null(other);
	assert_int_equal(bv_store_mem_preload(f->path, NULL, 0), 0);
	assert_int_equal(bv_store_open(f->path, f->key, &f->s), 0);
	assert_int_equal(
		bv_store_identity_get(f->s, &img, &len, &img, &len, &reg),
		BV_EINVAL);
}

/* One open store per path; the registry's refusals. */
static void
test_mem_registry(void **state)
{
	struct fixture *f = *state;
	struct bv_store *other = NULL;
	uint8_t *img = NULL, *pub = NULL, *priv = NULL;
	size_t len = 0;
	char p2[128];
	uint32_t reg;

	assert_int_equal(bv_store_open(f->path, f->key, &other), BV_EINVAL);
	assert_null(other);
	assert_int_equal(bv_store_mem_preload(f->path, (const uint8_t *)"x", 1),
			 BV_EINVAL);
	assert_int_equal(bv_store_mem_preload(f->path, NULL, 0), BV_EINVAL);
	assert_int_equal(bv_store_mem_preload(NULL, NULL, 0), BV_EINVAL);
	assert_int_equal(bv_store_mem_image(NULL, &img, &len), BV_EINVAL);
	assert_int_equal(bv_store_mem_image(f->path, NULL, &len), BV_EINVAL);
	assert_int_equal(bv_store_mem_image("/no/such", &img, &len), BV_EINVAL);
	/* Another path is another store. */
	put_everything(f->s);
	snprintf(p2, sizeof(p2), "%s/other", f->dir);
	assert_int_equal(bv_store_open(p2, f->key, &other), 0);
	assert_int_equal(
		bv_store_identity_get(other, &pub, &len, &priv, &len, &reg),
		BV_EINVAL);
	bv_store_close(other);
	assert_int_equal(bv_store_mem_preload(p2, NULL, 0), 0);
	check_everything(f->s);
}
#endif /* BV_TEST_STORE_MEM */

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip_and_reopen,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_key, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_not_a_store, setup,
						teardown),
#ifndef BV_TEST_STORE_MEM
		cmocka_unit_test_setup_teardown(test_no_plaintext_on_disk,
						setup, teardown),
#endif
		cmocka_unit_test_setup_teardown(test_identity_change, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_seen_across_reopen, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_history_order_and_state,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_history_find_unsent_recipients, setup, teardown),
#ifndef BV_TEST_STORE_MEM
		cmocka_unit_test_setup_teardown(test_row_binding, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_crash_keeps_committed,
						setup, teardown),
#endif
		cmocka_unit_test_setup_teardown(test_attachments, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_journaled, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_case_view, setup,
						teardown),
#ifndef BV_TEST_STORE_MEM
		cmocka_unit_test_setup_teardown(test_migrate_v2, setup,
						teardown),
#endif
		cmocka_unit_test_setup_teardown(test_signal_adapters, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_details, setup, teardown),
#ifdef BV_TEST_STORE_MEM
		cmocka_unit_test_setup_teardown(test_mem_image_round_trip,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_mem_image_sealed, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_mem_damaged_image, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_mem_hostile_body, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_mem_generation_hook, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_mem_rollback_restores,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_mem_hook_image_is_committed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mem_image_limit, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_mem_registry, setup,
						teardown),
#endif
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
