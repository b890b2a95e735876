/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_store.c: unit tests of client-lib/src/store.c in a fresh mkdtemp
 * directory each: round trips, reopen, wrong key, no plaintext on disk,
 * changed identity keys, duplicate suppression across reopen, history
 * order and states, committed rows surviving SIGKILL, libsignal adapters,
 * the sealed case view and the migration of a version 2 store to it, and
 * details a second backend must copy (test_details).
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
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

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

	snprintf(p, sizeof(p), "%s/junk.db", f->dir);
	fp = fopen(p, "w");
	assert_non_null(fp);
	fputs("this is not an SQLite database, just some text to fill it up "
	      "..............................................................."
	      ".",
	      fp);
	fclose(fp);
	assert_int_equal(bv_store_open(p, f->key, &other), BV_EIO);
	assert_null(other);
	assert_int_equal(bv_store_open(NULL, f->key, &other), BV_EINVAL);
}

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

/* A sealed value moved to another row fails to open; history stays. */
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
	bv_store_close(f->s);
	f->s = NULL;
	assert_false(store_files_contain(f, "CANARY-Elisa-name", 17));
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

/* A store made by the previous version (schema 2) keeps its history and
 * gains the case view. */
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
		assert_int_equal(sqlite3_column_int(st, 0), 4);
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	reopen(f);
}

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

/* --- details of store.c that a second backend must copy ----------------- */

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
		cmocka_unit_test_setup_teardown(test_no_plaintext_on_disk,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_identity_change, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_seen_across_reopen, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_history_order_and_state,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_history_find_unsent_recipients, setup, teardown),
		cmocka_unit_test_setup_teardown(test_row_binding, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_crash_keeps_committed,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_journaled, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_case_view, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_migrate_v2, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_signal_adapters, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_details, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
