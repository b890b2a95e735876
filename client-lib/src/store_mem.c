/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * store_mem.c: the client's local store in memory, for the WebAssembly build
 * (issue 6), where SQLite does not fit and browser storage is asynchronous:
 * the contract of store.h with store.c's semantics, plus a sealed image of
 * the whole store that the JavaScript side saves after each change and hands
 * back before the next open. Plain C and libsodium, no files: the image is
 * the only copy outside process memory. Not here: durability (the caller's),
 * threads, per-row sealing (the image is sealed whole).
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bv_error.h"
#include "bv_util.h"
#include "store.h"

/*
 * The image, version 2 (integers big-endian):
 *   "BVSM" | version (1 or 2) | nonce[24] | check[32] | box | sum[32]
 * check: BLAKE2b-256 keyed with the check subkey over the 29 bytes before
 * it, so that a wrong key (BV_EINVAL) is told from damage (BV_EIO).
 * box: crypto_secretbox_easy(body, nonce) under the box subkey.
 * sum: unkeyed BLAKE2b-256 over everything before it, so that accidental
 * damage anywhere, the check included, is BV_EIO and never "wrong key".
 * body: the tables in this order, each a u32 row count and its rows in key
 * order (strictly ascending: no duplicates), nothing after the last:
 *   local identity  u8 present (0, 1); present: u32 reg, pub, priv
 *   prekeys         u32 id, rec                         by id
 *   signed prekeys  u32 id, rec                         by id
 *   sessions        name, i32 device, rec, u8 has_user, [user]
 *   peer identities name, i32 device, key, i64 first_seen, i64 accepted
 *   seen            sender, i32 device, message_id, i64 seen_ms
 *   history         i64 seq, conversation, u8 direction, sender, i32
 *                   device, message_id, i64 ts, u8 state, body      by seq
 *   out recipients  i64 seq, account[36]                 by (seq, account)
 *   cases           case_id[36], view                    by case_id
 *   journaled       message_id, journal, i64 at_ms       by message_id
 *   attachments     i64 seq, u8 idx, u32 state, rec      by (seq, idx)
 *                   (version 2 only; a version 1 image has none)
 * (name, device) orders by strcmp, then device; seen by (sender, device,
 * message_id). A string or value is a u32 length and its bytes (strings
 * without NUL). Every length is checked against what is left and against
 * STORE_MAX_VALUE before anything is allocated; a row that store.h's put
 * would refuse (empty record, invalid uuid, state out of range, recipients
 * of a seq not in the history) makes the whole image BV_EIO.
 */
#define STORE_MAX_VALUE (16u * 1024u * 1024u)
#ifndef STORE_MEM_MAX_IMAGE /* the tests build with a smaller one */
#define STORE_MEM_MAX_IMAGE (256u * 1024u * 1024u)
#endif
#define IMG_MAGIC	  "BVSM"
#define IMG_VERSION	  2
#define IMG_NONCE_AT	  5
#define IMG_CHECK_AT	  (IMG_NONCE_AT + crypto_secretbox_NONCEBYTES)
#define IMG_BOX_AT	  (IMG_CHECK_AT + IMG_HASH_LEN)
#define IMG_HASH_LEN	  32
#define IMG_OVERHEAD	  (IMG_BOX_AT + crypto_secretbox_MACBYTES + IMG_HASH_LEN)
#define STORE_KDF_CONTEXT "bvstmem1"

enum store_purpose {
	P_CHECK = 1,
	P_BOX,
};

/* The tables, in image order. */
enum store_table {
	T_LOCAL,
	T_PREKEY,
	T_SIGNED,
	T_SESSION,
	T_PEER,
	T_SEEN,
	T_HISTORY,
	T_RECIPIENT,
	T_CASE,
	T_JOURNAL,
	T_ATTACH,
	T_COUNT
};

/*
 * Every row is one allocation: its struct, then its strings and values, each
 * followed by a NUL (so that an empty value still has a pointer). size is
 * the whole allocation, wiped when the row is freed.
 */
struct row_head {
	size_t size;
};

struct row_local {
	struct row_head h;
	uint32_t reg;
	const uint8_t *pub, *priv;
	size_t pub_len, priv_len;
};

struct row_prekey {
	struct row_head h;
	uint32_t id;
	const uint8_t *rec;
	size_t len;
};

struct row_session {
	struct row_head h;
	const char *name;
	int32_t device;
	const uint8_t *rec, *user; /* user NULL when none was stored */
	size_t len, user_len;
};

struct row_peer {
	struct row_head h;
	const char *name;
	int32_t device;
	const uint8_t *key;
	size_t len;
	int64_t first_seen_ms, accepted_ms;
};

struct row_seen {
	struct row_head h;
	const char *sender, *message_id;
	int32_t device;
	int64_t seen_ms;
};

struct row_history {
	struct row_head h;
	int64_t seq, ts;
	const char *conversation, *sender, *message_id;
	int32_t device;
	int direction, state;
	const uint8_t *body;
	size_t body_len;
};

struct row_recipient {
	struct row_head h;
	int64_t seq;
	char account[BV_UUID_LEN + 1];
};

struct row_case {
	struct row_head h;
	char case_id[BV_UUID_LEN + 1];
	const char *view;
	size_t len;
};

struct row_journal {
	struct row_head h;
	const char *message_id, *journal;
	int64_t at_ms;
};

struct row_attach {
	struct row_head h;
	int64_t seq;
	int idx, state;
	const uint8_t *rec;
	size_t len;
};

/* A table: row pointers in key order (history: in seq order). */
struct mem_table {
	void **rows;
	size_t n, cap;
};

/*
 * The undo log: what puts the tables back, newest last. Outside a
 * transaction it holds one call's changes (undone when the call fails);
 * inside one, everything since bv_store_begin(). Rows that were replaced or
 * deleted live here until the log is discarded.
 */
enum undo_kind {
	U_INSERT,  /* a row was inserted at i: remove it */
	U_DELETE,  /* row was deleted from i: put it back */
	U_REPLACE, /* row was replaced at i: put it back */
	U_STATE,   /* history row i had state */
};

struct mem_undo {
	enum undo_kind kind;
	enum store_table table;
	size_t i;
	void *row;
	int state;
};

/* The registry: what this process knows of each path. */
struct mem_slot {
	struct mem_slot *next;
	struct bv_store *open;
	uint8_t *img; /* what the next open starts from, or NULL */
	size_t img_len;
	int lost; /* the last close could not keep the image */
	char path[];
};

struct bv_store {
	struct mem_slot *slot;
	uint8_t k_check[IMG_HASH_LEN];
	uint8_t k_box[crypto_secretbox_KEYBYTES];
	struct mem_table t[T_COUNT];
	struct mem_undo *undo;
	size_t n_undo, cap_undo;
	int in_tx;
	uint64_t generation;
};

static struct mem_slot *slots;
static bv_store_mem_hook hook_fn;
static void *hook_ud;

/* --- rows and tables ---------------------------------------------------- */

static void
row_free(void *row)
{
	struct row_head *h = row;

	if (!h)
		return;
	bv_wipe(h, h->size);
	bv_free(h);
}

/*
 * A new row of head bytes followed by n parts (each len <= STORE_MAX_VALUE,
 * n <= 5), each copied and NUL-terminated; at[i] is where part i went.
 */
static void *
row_new(size_t head, size_t n, const void *const src[], const size_t len[],
	uint8_t *at[])
{
	struct row_head *h;
	uint8_t *p;
	size_t size = head, i;

	for (i = 0; i < n; i++)
		size += len[i] + 1;
	h = bv_calloc(1, size);
	if (!h)
		return NULL;
	h->size = size;
	p = (uint8_t *)h + head;
	for (i = 0; i < n; i++) {
		if (len[i])
			memcpy(p, src[i], len[i]);
		p[len[i]] = '\0';
		at[i] = p;
		p += len[i] + 1;
	}
	return h;
}

/* A copy of a value in a new buffer with a spare NUL, as store.c's unseal. */
static uint8_t *
value_dup(const uint8_t *p, size_t len)
{
	uint8_t *b;

	b = bv_malloc(len + 1);
	if (!b)
		return NULL;
	if (len)
		memcpy(b, p, len);
	b[len] = '\0';
	return b;
}

static void
value_free(uint8_t *p, size_t len)
{
	if (p)
		bv_wipe(p, len);
	bv_free(p);
}

static int
table_reserve(struct mem_table *t, size_t more)
{
	void **rows;
	size_t cap;

	if (t->cap - t->n >= more)
		return 0;
	if (more > SIZE_MAX / sizeof(void *) - t->n)
		return BV_ENOMEM;
	cap = t->cap ? t->cap : 8;
	while (cap < t->n + more)
		cap = cap > SIZE_MAX / sizeof(void *) / 2
			      ? SIZE_MAX / sizeof(void *)
			      : cap * 2;
	rows = bv_realloc(t->rows, cap * sizeof(*rows));
	if (!rows)
		return BV_ENOMEM;
	t->rows = rows;
	t->cap = cap;
	return 0;
}

static int
undo_reserve(struct bv_store *s, size_t more)
{
	struct mem_undo *u;
	size_t cap;

	if (s->cap_undo - s->n_undo >= more)
		return 0;
	if (more > SIZE_MAX / sizeof(*u) - s->n_undo)
		return BV_ENOMEM;
	cap = s->cap_undo ? s->cap_undo : 16;
	while (cap < s->n_undo + more)
		cap = cap > SIZE_MAX / sizeof(*u) / 2 ? SIZE_MAX / sizeof(*u)
						      : cap * 2;
	u = bv_realloc(s->undo, cap * sizeof(*u));
	if (!u)
		return BV_ENOMEM;
	s->undo = u;
	s->cap_undo = cap;
	return 0;
}

static void
rows_insert(struct mem_table *t, size_t i, void *row)
{
	memmove(&t->rows[i + 1], &t->rows[i], (t->n - i) * sizeof(void *));
	t->rows[i] = row;
	t->n++;
}

static void *
rows_remove(struct mem_table *t, size_t i)
{
	void *row = t->rows[i];

	memmove(&t->rows[i], &t->rows[i + 1], (t->n - i - 1) * sizeof(void *));
	t->n--;
	return row;
}

static void
undo_push(struct bv_store *s, enum undo_kind kind, enum store_table table,
	  size_t i, void *row, int state)
{
	struct mem_undo *u = &s->undo[s->n_undo++];

	u->kind = kind;
	u->table = table;
	u->i = i;
	u->row = row;
	u->state = state;
}

/*
 * The three changes. Each needs room reserved first (undo_reserve, and
 * table_reserve for an insert) and then cannot fail.
 */
static void
table_insert(struct bv_store *s, enum store_table tid, size_t i, void *row)
{
	rows_insert(&s->t[tid], i, row);
	undo_push(s, U_INSERT, tid, i, NULL, 0);
}

static void
table_delete(struct bv_store *s, enum store_table tid, size_t i)
{
	undo_push(s, U_DELETE, tid, i, rows_remove(&s->t[tid], i), 0);
}

static void
table_replace(struct bv_store *s, enum store_table tid, size_t i, void *row)
{
	undo_push(s, U_REPLACE, tid, i, s->t[tid].rows[i], 0);
	s->t[tid].rows[i] = row;
}

/* Inserts row at i, or replaces the row at i; frees row when out of memory. */
static int
table_put(struct bv_store *s, enum store_table tid, size_t i, int replace,
	  void *row)
{
	if (undo_reserve(s, 1) < 0 ||
	    (!replace && table_reserve(&s->t[tid], 1) < 0)) {
		row_free(row);
		return BV_ENOMEM;
	}
	if (replace)
		table_replace(s, tid, i, row);
	else
		table_insert(s, tid, i, row);
	return 0;
}

/* Undoes the log back to mark, newest first: the tables as they were. */
static void
undo_to(struct bv_store *s, size_t mark)
{
	struct mem_undo *u;
	struct mem_table *t;

	while (s->n_undo > mark) {
		u = &s->undo[--s->n_undo];
		t = &s->t[u->table];
		switch (u->kind) {
		case U_INSERT:
			row_free(rows_remove(t, u->i));
			break;
		case U_DELETE:
			rows_insert(t, u->i, u->row); /* the room it had */
			break;
		case U_REPLACE:
			row_free(t->rows[u->i]);
			t->rows[u->i] = u->row;
			break;
		case U_STATE:
			((struct row_history *)t->rows[u->i])->state = u->state;
			break;
		}
	}
}

/* Forgets the log: the changes stay, the rows they replaced go. */
static void
undo_discard(struct bv_store *s)
{
	size_t i;

	for (i = 0; i < s->n_undo; i++)
		if (s->undo[i].kind == U_DELETE || s->undo[i].kind == U_REPLACE)
			row_free(s->undo[i].row);
	s->n_undo = 0;
}

/* The changes of the log are committed: count them and tell the hook. */
static void
committed(struct bv_store *s)
{
	int wrote = s->n_undo > 0;

	undo_discard(s);
	if (!wrote)
		return;
	s->generation++;
	if (hook_fn)
		hook_fn(hook_ud, s->slot->path, s->generation);
}

/*
 * Ends a writing call that started with the log at mark: a failed call
 * leaves nothing behind (each call is atomic, as an SQLite statement); a
 * successful one outside a transaction is committed.
 */
static int
write_end(struct bv_store *s, size_t mark, int rc)
{
	if (rc < 0)
		undo_to(s, mark);
	else if (!s->in_tx)
		committed(s);
	return rc;
}

typedef int (*row_cmp)(const void *row, const void *key);

/* Binary search: 1 and *at = its index when found, else 0 and *at = where it
 * would go. */
static int
table_find(const struct mem_table *t, row_cmp cmp, const void *key, size_t *at)
{
	size_t lo = 0, hi = t->n, mid;
	int c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = cmp(t->rows[mid], key);
		if (c < 0) {
			lo = mid + 1;
		} else if (c > 0) {
			hi = mid;
		} else {
			*at = mid;
			return 1;
		}
	}
	*at = lo;
	return 0;
}

static int
cmp_i64(int64_t a, int64_t b)
{
	return a < b ? -1 : a > b;
}

static int
prekey_cmp(const void *row, const void *key)
{
	const struct row_prekey *r = row;

	return cmp_i64(r->id, *(const uint32_t *)key);
}

struct addr {
	const char *name;
	int32_t device;
};

/* Sessions and peer identities, by (name, device). */
static int
session_cmp(const void *row, const void *key)
{
	const struct row_session *r = row;
	const struct addr *a = key;
	int c = strcmp(r->name, a->name);

	return c ? c : cmp_i64(r->device, a->device);
}

static int
peer_cmp(const void *row, const void *key)
{
	const struct row_peer *r = row;
	const struct addr *a = key;
	int c = strcmp(r->name, a->name);

	return c ? c : cmp_i64(r->device, a->device);
}

struct seen_key {
	const char *sender, *message_id;
	int32_t device;
};

static int
seen_cmp(const void *row, const void *key)
{
	const struct row_seen *r = row;
	const struct seen_key *k = key;
	int c = strcmp(r->sender, k->sender);

	if (!c)
		c = cmp_i64(r->device, k->device);
	return c ? c : strcmp(r->message_id, k->message_id);
}

static int
history_cmp(const void *row, const void *key)
{
	return cmp_i64(((const struct row_history *)row)->seq,
		       *(const int64_t *)key);
}

struct recipient_key {
	int64_t seq;
	const char *account;
};

struct attach_key {
	int64_t seq;
	int idx;
};

static int
attach_cmp(const void *row, const void *key)
{
	const struct row_attach *r = row;
	const struct attach_key *k = key;
	int c = cmp_i64(r->seq, k->seq);

	return c ? c : cmp_i64(r->idx, k->idx);
}

static int
recipient_cmp(const void *row, const void *key)
{
	const struct row_recipient *r = row;
	const struct recipient_key *k = key;
	int c = cmp_i64(r->seq, k->seq);

	return c ? c : strcmp(r->account, k->account);
}

static int
case_cmp(const void *row, const void *key)
{
	return strcmp(((const struct row_case *)row)->case_id, key);
}

static int
journal_cmp(const void *row, const void *key)
{
	return strcmp(((const struct row_journal *)row)->message_id, key);
}

/*
 * Names and ids: any C string, up to the limit an image field has. (Not
 * strnlen(): POSIX, hidden by musl under -std=c11 in the emscripten build.)
 */
static int
str_ok(const char *str, size_t *len)
{
	size_t n = 0;

	while (n <= STORE_MAX_VALUE && str[n])
		n++;
	*len = n;
	return n <= STORE_MAX_VALUE;
}

static void
store_free(struct bv_store *s)
{
	size_t i, k;

	if (!s)
		return;
	undo_to(s, 0);
	for (k = 0; k < T_COUNT; k++) {
		for (i = 0; i < s->t[k].n; i++)
			row_free(s->t[k].rows[i]);
		bv_free(s->t[k].rows);
	}
	bv_free(s->undo);
	bv_wipe(s, sizeof(*s));
	bv_free(s);
}

/* --- the image ---------------------------------------------------------- */

/* Writes (or, with p NULL, only counts) the body. */
struct wbuf {
	uint8_t *p;
	size_t len;
	int over;
};

static void
put_raw(struct wbuf *w, const void *src, size_t n)
{
	if (w->over || n > SIZE_MAX - w->len) {
		w->over = 1;
		return;
	}
	if (w->p && n)
		memcpy(w->p + w->len, src, n);
	w->len += n;
}

static void
put_u64(struct wbuf *w, uint64_t v, size_t bytes)
{
	uint8_t b[8];
	size_t i;

	for (i = bytes; i > 0; i--) {
		b[i - 1] = (uint8_t)v;
		v >>= 8;
	}
	put_raw(w, b, bytes);
}

static void
put_u8(struct wbuf *w, unsigned v)
{
	put_u64(w, v, 1);
}

static void
put_u32(struct wbuf *w, uint32_t v)
{
	put_u64(w, v, 4);
}

static void
put_i64(struct wbuf *w, int64_t v)
{
	put_u64(w, (uint64_t)v, 8);
}

static void
put_value(struct wbuf *w, const void *p, size_t len)
{
	put_u32(w, (uint32_t)len); /* len <= STORE_MAX_VALUE */
	put_raw(w, p, len);
}

static void
put_str(struct wbuf *w, const char *str)
{
	put_value(w, str, strlen(str));
}

static void
put_count(struct wbuf *w, size_t n)
{
	if (n > UINT32_MAX)
		w->over = 1;
	put_u32(w, (uint32_t)n);
}

static void
body_write(const struct bv_store *s, struct wbuf *w)
{
	const struct mem_table *t;
	size_t i;
	int k;

	t = &s->t[T_LOCAL];
	put_u8(w, t->n ? 1 : 0);
	if (t->n) {
		const struct row_local *r = t->rows[0];

		put_u32(w, r->reg);
		put_value(w, r->pub, r->pub_len);
		put_value(w, r->priv, r->priv_len);
	}
	for (k = T_PREKEY; k <= T_SIGNED; k++) {
		t = &s->t[k];
		put_count(w, t->n);
		for (i = 0; i < t->n; i++) {
			const struct row_prekey *r = t->rows[i];

			put_u32(w, r->id);
			put_value(w, r->rec, r->len);
		}
	}
	t = &s->t[T_SESSION];
	put_count(w, t->n);
	for (i = 0; i < t->n; i++) {
		const struct row_session *r = t->rows[i];

		put_str(w, r->name);
		put_u32(w, (uint32_t)r->device);
		put_value(w, r->rec, r->len);
		put_u8(w, r->user ? 1 : 0);
		if (r->user)
			put_value(w, r->user, r->user_len);
	}
	t = &s->t[T_PEER];
	put_count(w, t->n);
	for (i = 0; i < t->n; i++) {
		const struct row_peer *r = t->rows[i];

		put_str(w, r->name);
		put_u32(w, (uint32_t)r->device);
		put_value(w, r->key, r->len);
		put_i64(w, r->first_seen_ms);
		put_i64(w, r->accepted_ms);
	}
	t = &s->t[T_SEEN];
	put_count(w, t->n);
	for (i = 0; i < t->n; i++) {
		const struct row_seen *r = t->rows[i];

		put_str(w, r->sender);
		put_u32(w, (uint32_t)r->device);
		put_str(w, r->message_id);
		put_i64(w, r->seen_ms);
	}
	t = &s->t[T_HISTORY];
	put_count(w, t->n);
	for (i = 0; i < t->n; i++) {
		const struct row_history *r = t->rows[i];

		put_i64(w, r->seq);
		put_str(w, r->conversation);
		put_u8(w, (unsigned)r->direction);
		put_str(w, r->sender);
		put_u32(w, (uint32_t)r->device);
		put_str(w, r->message_id);
		put_i64(w, r->ts);
		put_u8(w, (unsigned)r->state);
		put_value(w, r->body, r->body_len);
	}
	t = &s->t[T_RECIPIENT];
	put_count(w, t->n);
	for (i = 0; i < t->n; i++) {
		const struct row_recipient *r = t->rows[i];

		put_i64(w, r->seq);
		put_raw(w, r->account, BV_UUID_LEN);
	}
	t = &s->t[T_CASE];
	put_count(w, t->n);
	for (i = 0; i < t->n; i++) {
		const struct row_case *r = t->rows[i];

		put_raw(w, r->case_id, BV_UUID_LEN);
		put_value(w, r->view, r->len);
	}
	t = &s->t[T_JOURNAL];
	put_count(w, t->n);
	for (i = 0; i < t->n; i++) {
		const struct row_journal *r = t->rows[i];

		put_str(w, r->message_id);
		put_str(w, r->journal);
		put_i64(w, r->at_ms);
	}
	t = &s->t[T_ATTACH];
	put_count(w, t->n);
	for (i = 0; i < t->n; i++) {
		const struct row_attach *r = t->rows[i];

		put_i64(w, r->seq);
		put_u8(w, (unsigned)r->idx);
		put_u32(w, (uint32_t)r->state);
		put_value(w, r->rec, r->len);
	}
}

/* The committed state of s as a sealed image (see the top of the file). */
static int
image_make(const struct bv_store *s, uint8_t **out, size_t *out_len)
{
	struct wbuf w = {NULL, 0, 0};
	size_t body_len, len;
	uint8_t *img;

	body_write(s, &w);
	body_len = w.len;
	if (w.over || body_len > STORE_MEM_MAX_IMAGE - IMG_OVERHEAD) {
		bv_log(BV_LOG_ERR, "store: the store is too large for an "
				   "image");
		return BV_ENOMEM;
	}
	len = body_len + IMG_OVERHEAD;
	img = bv_malloc(len);
	if (!img)
		return BV_ENOMEM;
	memcpy(img, IMG_MAGIC, 4);
	img[4] = IMG_VERSION;
	randombytes_buf(img + IMG_NONCE_AT, crypto_secretbox_NONCEBYTES);
	crypto_generichash(img + IMG_CHECK_AT, IMG_HASH_LEN, img, IMG_CHECK_AT,
			   s->k_check, sizeof(s->k_check));
	/* The body goes where its ciphertext will be: sealed in place. */
	w.p = img + IMG_BOX_AT + crypto_secretbox_MACBYTES;
	w.len = 0;
	body_write(s, &w);
	crypto_secretbox_easy(img + IMG_BOX_AT, w.p, body_len,
			      img + IMG_NONCE_AT, s->k_box);
	crypto_generichash(img + len - IMG_HASH_LEN, IMG_HASH_LEN, img,
			   len - IMG_HASH_LEN, NULL, 0);
	*out = img;
	*out_len = len;
	return 0;
}

/* Reads the body; any read past the end or out of bounds sets bad. */
struct rbuf {
	const uint8_t *p;
	size_t len, off;
	int bad;
};

static uint64_t
get_u64(struct rbuf *r, size_t bytes)
{
	uint64_t v = 0;
	size_t i;

	if (r->bad || r->len - r->off < bytes) {
		r->bad = 1;
		return 0;
	}
	for (i = 0; i < bytes; i++)
		v = v << 8 | r->p[r->off++];
	return v;
}

static unsigned
get_u8(struct rbuf *r)
{
	return (unsigned)get_u64(r, 1);
}

static uint32_t
get_u32(struct rbuf *r)
{
	return (uint32_t)get_u64(r, 4);
}

static int32_t
get_i32(struct rbuf *r)
{
	uint32_t u = get_u32(r);

	return u > INT32_MAX ? (int32_t)(u - INT32_MAX - 1) + INT32_MIN
			     : (int32_t)u;
}

static int64_t
get_i64(struct rbuf *r)
{
	uint64_t u = get_u64(r, 8);

	return u > INT64_MAX ? (int64_t)(u - INT64_MAX - 1) + INT64_MIN
			     : (int64_t)u;
}

/* A value: *p into the buffer, *len <= STORE_MAX_VALUE and what is left. */
static void
get_value(struct rbuf *r, const void **p, size_t *len)
{
	uint32_t n = get_u32(r);

	*p = NULL;
	*len = 0;
	if (r->bad || n > STORE_MAX_VALUE || n > r->len - r->off) {
		r->bad = 1;
		return;
	}
	*p = r->p + r->off;
	*len = n;
	r->off += n;
}

/* A string: a value without a NUL in it. */
static void
get_str(struct rbuf *r, const void **p, size_t *len)
{
	get_value(r, p, len);
	if (!r->bad && memchr(*p, '\0', *len))
		r->bad = 1;
}

/* A row count: every row takes at least 4 bytes, so more cannot be there. */
static size_t
get_count(struct rbuf *r)
{
	uint32_t n = get_u32(r);

	if (!r->bad && n > (r->len - r->off) / 4) {
		r->bad = 1;
		return 0;
	}
	return n;
}

static int
fixed_uuid(struct rbuf *r, char out[BV_UUID_LEN + 1])
{
	if (r->bad || r->len - r->off < BV_UUID_LEN) {
		r->bad = 1;
		return 0;
	}
	memcpy(out, r->p + r->off, BV_UUID_LEN);
	out[BV_UUID_LEN] = '\0';
	r->off += BV_UUID_LEN;
	if (!bv_uuid_valid(out))
		r->bad = 1;
	return !r->bad;
}

/* Appends a loaded row: BV_EIO unless it sorts strictly after the last
 * one (cmp against key, the row's own key), BV_ENOMEM. Frees row on error. */
static int
load_push(struct mem_table *t, void *row, row_cmp cmp, const void *key)
{
	if (!row)
		return BV_ENOMEM;
	if (cmp && t->n && cmp(t->rows[t->n - 1], key) >= 0) {
		row_free(row);
		return BV_EIO;
	}
	if (table_reserve(t, 1) < 0) {
		row_free(row);
		return BV_ENOMEM;
	}
	t->rows[t->n++] = row;
	return 0;
}

static int
state_valid(int state)
{
	return state >= BV_MSG_SENDING && state <= BV_MSG_RECEIVED;
}

/* Fills the empty tables of s from a body; BV_EIO when it is not one. */
static int
body_load(struct bv_store *s, const uint8_t *p, size_t len, int version)
{
	struct rbuf r = {p, len, 0, 0};
	const void *src[5];
	size_t l[5], n, i;
	uint8_t *at[5];
	int rc = 0, k;

	n = get_u8(&r);
	if (n > 1)
		goto bad;
	if (n) {
		struct row_local *row;
		uint32_t reg = get_u32(&r);

		get_value(&r, &src[0], &l[0]);
		get_value(&r, &src[1], &l[1]);
		if (r.bad || !l[0] || !l[1])
			goto bad;
		row = row_new(sizeof(*row), 2, src, l, at);
		if (row) {
			row->reg = reg;
			row->pub = at[0];
			row->pub_len = l[0];
			row->priv = at[1];
			row->priv_len = l[1];
		}
		rc = load_push(&s->t[T_LOCAL], row, NULL, NULL);
		if (rc < 0)
			return rc;
	}
	for (k = T_PREKEY; k <= T_SIGNED; k++) {
		n = get_count(&r);
		for (i = 0; i < n; i++) {
			struct row_prekey *row;
			uint32_t id = get_u32(&r);

			get_value(&r, &src[0], &l[0]);
			if (r.bad || !l[0])
				goto bad;
			row = row_new(sizeof(*row), 1, src, l, at);
			if (row) {
				row->id = id;
				row->rec = at[0];
				row->len = l[0];
			}
			rc = load_push(&s->t[k], row, prekey_cmp, &id);
			if (rc < 0)
				return rc;
		}
	}
	n = get_count(&r);
	for (i = 0; i < n; i++) {
		struct row_session *row;
		struct addr a;
		unsigned has_user;

		get_str(&r, &src[0], &l[0]);
		a.device = get_i32(&r);
		get_value(&r, &src[1], &l[1]);
		has_user = get_u8(&r);
		src[2] = NULL;
		l[2] = 0;
		if (has_user == 1)
			get_value(&r, &src[2], &l[2]);
		if (r.bad || !l[1] || has_user > 1)
			goto bad;
		row = row_new(sizeof(*row), 3, src, l, at);
		if (row) {
			row->name = (const char *)at[0];
			row->device = a.device;
			row->rec = at[1];
			row->len = l[1];
			row->user = has_user ? at[2] : NULL;
			row->user_len = l[2];
		}
		a.name = row ? row->name : NULL;
		rc = load_push(&s->t[T_SESSION], row, session_cmp, &a);
		if (rc < 0)
			return rc;
	}
	n = get_count(&r);
	for (i = 0; i < n; i++) {
		struct row_peer *row;
		struct addr a;
		int64_t first, accepted;

		get_str(&r, &src[0], &l[0]);
		a.device = get_i32(&r);
		get_value(&r, &src[1], &l[1]);
		first = get_i64(&r);
		accepted = get_i64(&r);
		if (r.bad || !l[1])
			goto bad;
		row = row_new(sizeof(*row), 2, src, l, at);
		if (row) {
			row->name = (const char *)at[0];
			row->device = a.device;
			row->key = at[1];
			row->len = l[1];
			row->first_seen_ms = first;
			row->accepted_ms = accepted;
		}
		a.name = row ? row->name : NULL;
		rc = load_push(&s->t[T_PEER], row, peer_cmp, &a);
		if (rc < 0)
			return rc;
	}
	n = get_count(&r);
	for (i = 0; i < n; i++) {
		struct row_seen *row;
		struct seen_key key = {NULL, NULL, 0};
		int64_t when;

		get_str(&r, &src[0], &l[0]);
		key.device = get_i32(&r);
		get_str(&r, &src[1], &l[1]);
		when = get_i64(&r);
		if (r.bad)
			goto bad;
		row = row_new(sizeof(*row), 2, src, l, at);
		if (row) {
			row->sender = (const char *)at[0];
			row->device = key.device;
			row->message_id = (const char *)at[1];
			row->seen_ms = when;
			key.sender = row->sender;
			key.message_id = row->message_id;
		}
		rc = load_push(&s->t[T_SEEN], row, seen_cmp, &key);
		if (rc < 0)
			return rc;
	}
	n = get_count(&r);
	for (i = 0; i < n; i++) {
		struct row_history *row;
		int64_t seq, ts;
		unsigned dir, state;
		int32_t device;

		seq = get_i64(&r);
		get_str(&r, &src[0], &l[0]);
		dir = get_u8(&r);
		get_str(&r, &src[1], &l[1]);
		device = get_i32(&r);
		get_str(&r, &src[2], &l[2]);
		ts = get_i64(&r);
		state = get_u8(&r);
		get_value(&r, &src[3], &l[3]);
		/* seq as AUTOINCREMENT gives them: 1, 2, … (never INT64_MAX,
		 * so that the next one fits). */
		if (r.bad || seq < 1 || seq == INT64_MAX ||
		    (dir != BV_MSG_IN && dir != BV_MSG_OUT) ||
		    !state_valid((int)state))
			goto bad;
		row = row_new(sizeof(*row), 4, src, l, at);
		if (row) {
			row->seq = seq;
			row->conversation = (const char *)at[0];
			row->direction = (int)dir;
			row->sender = (const char *)at[1];
			row->device = device;
			row->message_id = (const char *)at[2];
			row->ts = ts;
			row->state = (int)state;
			row->body = at[3];
			row->body_len = l[3];
		}
		rc = load_push(&s->t[T_HISTORY], row, history_cmp, &seq);
		if (rc < 0)
			return rc;
	}
	n = get_count(&r);
	for (i = 0; i < n; i++) {
		struct row_recipient *row;
		struct recipient_key key;
		char account[BV_UUID_LEN + 1];
		size_t at_seq;

		key.seq = get_i64(&r);
		if (!fixed_uuid(&r, account) ||
		    !table_find(&s->t[T_HISTORY], history_cmp, &key.seq,
				&at_seq))
			goto bad;
		row = row_new(sizeof(*row), 0, NULL, NULL, NULL);
		if (row) {
			row->seq = key.seq;
			memcpy(row->account, account, sizeof(account));
		}
		key.account = row ? row->account : NULL;
		rc = load_push(&s->t[T_RECIPIENT], row, recipient_cmp, &key);
		if (rc < 0)
			return rc;
	}
	n = get_count(&r);
	for (i = 0; i < n; i++) {
		struct row_case *row;
		char id[BV_UUID_LEN + 1];

		if (!fixed_uuid(&r, id))
			goto bad;
		get_value(&r, &src[0], &l[0]);
		if (r.bad || !l[0])
			goto bad;
		row = row_new(sizeof(*row), 1, src, l, at);
		if (row) {
			memcpy(row->case_id, id, sizeof(id));
			row->view = (const char *)at[0];
			row->len = l[0];
		}
		rc = load_push(&s->t[T_CASE], row, case_cmp, id);
		if (rc < 0)
			return rc;
	}
	n = get_count(&r);
	for (i = 0; i < n; i++) {
		struct row_journal *row;
		int64_t when;

		get_str(&r, &src[0], &l[0]);
		get_str(&r, &src[1], &l[1]);
		when = get_i64(&r);
		if (r.bad || !l[1])
			goto bad;
		row = row_new(sizeof(*row), 2, src, l, at);
		if (row) {
			row->message_id = (const char *)at[0];
			row->journal = (const char *)at[1];
			row->at_ms = when;
		}
		rc = load_push(&s->t[T_JOURNAL], row, journal_cmp,
			       row ? row->message_id : NULL);
		if (rc < 0)
			return rc;
	}
	n = version >= 2 ? get_count(&r) : 0;
	for (i = 0; i < n; i++) {
		struct row_attach *row;
		struct attach_key key;
		uint32_t state;
		size_t at_seq;

		key.seq = get_i64(&r);
		key.idx = (int)get_u8(&r);
		state = get_u32(&r);
		get_value(&r, &src[0], &l[0]);
		if (r.bad || key.idx >= BV_STORE_ATTACHMENTS_MAX ||
		    state > INT32_MAX ||
		    !table_find(&s->t[T_HISTORY], history_cmp, &key.seq,
				&at_seq))
			goto bad;
		row = row_new(sizeof(*row), 1, src, l, at);
		if (row) {
			row->seq = key.seq;
			row->idx = key.idx;
			row->state = (int)state;
			row->rec = at[0];
			row->len = l[0];
		}
		rc = load_push(&s->t[T_ATTACH], row, attach_cmp, &key);
		if (rc < 0)
			return rc;
	}
	if (r.bad || r.off != r.len)
		goto bad;
	return 0;
bad:
	return BV_EIO;
}

/*
 * Loads a sealed image into the empty store s. BV_EINVAL when it was
 * sealed under another key, BV_EIO when it is not an image we can read,
 * BV_ENOMEM; on error s may hold part of it (the caller frees s).
 */
static int
image_load(struct bv_store *s, const uint8_t *img, size_t len)
{
	uint8_t h[IMG_HASH_LEN];
	uint8_t *body = NULL;
	size_t body_len;
	int rc;

	if (len < IMG_OVERHEAD || len > STORE_MEM_MAX_IMAGE ||
	    memcmp(img, IMG_MAGIC, 4) != 0) {
		bv_log(BV_LOG_ERR, "store: not a store image (%zu bytes)", len);
		return BV_EIO;
	}
	if (img[4] != IMG_VERSION && img[4] != 1) {
		bv_log(BV_LOG_ERR, "store: image version %u is not %u", img[4],
		       IMG_VERSION);
		return BV_EIO;
	}
	crypto_generichash(h, sizeof(h), img, len - IMG_HASH_LEN, NULL, 0);
	if (sodium_memcmp(h, img + len - IMG_HASH_LEN, IMG_HASH_LEN) != 0) {
		bv_log(BV_LOG_ERR, "store: the image is damaged");
		return BV_EIO;
	}
	crypto_generichash(h, sizeof(h), img, IMG_CHECK_AT, s->k_check,
			   sizeof(s->k_check));
	if (sodium_memcmp(h, img + IMG_CHECK_AT, IMG_HASH_LEN) != 0) {
		/* BV_EINVAL, as store.c's check_key(). */
		bv_log(BV_LOG_ERR, "store: wrong key for this store");
		return BV_EINVAL;
	}
	body_len = len - IMG_OVERHEAD;
	body = bv_malloc(body_len);
	if (!body)
		return BV_ENOMEM;
	if (crypto_secretbox_open_easy(body, img + IMG_BOX_AT,
				       body_len + crypto_secretbox_MACBYTES,
				       img + IMG_NONCE_AT, s->k_box) != 0) {
		bv_log(BV_LOG_ERR, "store: the image failed to open");
		rc = BV_EIO;
		goto out;
	}
	rc = body_load(s, body, body_len, img[4]);
	if (rc == BV_EIO)
		bv_log(BV_LOG_ERR, "store: the image is not a valid store");
out:
	bv_wipe(body, body_len);
	bv_free(body);
	return rc;
}

/* --- the registry, open and close --------------------------------------- */

static struct mem_slot *
slot_find(const char *path)
{
	struct mem_slot *sl;

	for (sl = slots; sl; sl = sl->next)
		if (strcmp(sl->path, path) == 0)
			return sl;
	return NULL;
}

static struct mem_slot *
slot_get(const char *path)
{
	struct mem_slot *sl;
	size_t n;

	sl = slot_find(path);
	if (sl)
		return sl;
	n = strlen(path);
	sl = bv_calloc(1, sizeof(*sl) + n + 1);
	if (!sl)
		return NULL;
	memcpy(sl->path, path, n + 1);
	sl->next = slots;
	slots = sl;
	return sl;
}

/* Drops a slot that holds nothing any more. */
static void
slot_gc(struct mem_slot *sl)
{
	struct mem_slot **pp;

	if (sl->open || sl->img || sl->lost)
		return;
	for (pp = &slots; *pp; pp = &(*pp)->next) {
		if (*pp == sl) {
			*pp = sl->next;
			bv_free(sl);
			return;
		}
	}
}

static void
slot_set_image(struct mem_slot *sl, uint8_t *img, size_t len)
{
	bv_free(sl->img);
	sl->img = img;
	sl->img_len = len;
	sl->lost = 0;
}

int
bv_store_open(const char *path, const uint8_t key[BV_STORE_KEY_LEN],
	      struct bv_store **out)
{
	struct bv_store *s = NULL;
	struct mem_slot *sl;
	int rc;

	if (!path || !key || !out)
		return BV_EINVAL;
	if (sodium_init() < 0)
		return BV_EIO;
	sl = slot_find(path);
	if (sl && sl->open) {
		bv_log(BV_LOG_ERR, "store: %s is open already", path);
		return BV_EINVAL;
	}
	if (sl && sl->lost) {
		bv_log(BV_LOG_ERR,
		       "store: the state of %s at its last close "
		       "was lost: preload the saved image",
		       path);
		return BV_EIO;
	}
	s = bv_calloc(1, sizeof(*s));
	if (!s)
		return BV_ENOMEM;
	crypto_kdf_derive_from_key(s->k_check, sizeof(s->k_check), P_CHECK,
				   STORE_KDF_CONTEXT, key);
	crypto_kdf_derive_from_key(s->k_box, sizeof(s->k_box), P_BOX,
				   STORE_KDF_CONTEXT, key);
	if (sl && sl->img) {
		rc = image_load(s, sl->img, sl->img_len);
		if (rc < 0)
			goto out;
	}
	sl = slot_get(path);
	if (!sl) {
		rc = BV_ENOMEM;
		goto out;
	}
	sl->open = s;
	s->slot = sl;
	*out = s;
	s = NULL;
	rc = 0;
out:
	store_free(s);
	return rc;
}

void
bv_store_close(struct bv_store *s)
{
	struct mem_slot *sl;
	uint8_t *img = NULL;
	size_t len = 0;

	if (!s)
		return;
	undo_to(s, 0); /* an open transaction is rolled back */
	s->in_tx = 0;
	sl = s->slot;
	if (image_make(s, &img, &len) == 0) {
		slot_set_image(sl, img, len);
	} else {
		/* Neither a stale image nor a silent new store next time. */
		bv_log(BV_LOG_ERR, "store: %s closed without its image",
		       sl->path);
		slot_set_image(sl, NULL, 0);
		sl->lost = 1;
	}
	sl->open = NULL;
	store_free(s);
}

int
bv_store_mem_preload(const char *path, const uint8_t *img, size_t len)
{
	struct mem_slot *sl;
	uint8_t *copy;

	if (!path)
		return BV_EINVAL;
	sl = slot_find(path);
	if (sl && sl->open)
		return BV_EINVAL;
	if (!img) {
		if (sl) {
			slot_set_image(sl, NULL, 0);
			slot_gc(sl);
		}
		return 0;
	}
	copy = bv_malloc(len);
	if (!copy)
		return BV_ENOMEM;
	if (len)
		memcpy(copy, img, len);
	sl = slot_get(path);
	if (!sl) {
		bv_free(copy);
		return BV_ENOMEM;
	}
	slot_set_image(sl, copy, len);
	return 0;
}

int
bv_store_mem_image(const char *path, uint8_t **out, size_t *len)
{
	struct mem_slot *sl;

	if (!path || !out || !len)
		return BV_EINVAL;
	sl = slot_find(path);
	if (!sl || !sl->open || sl->open->in_tx)
		return BV_EINVAL;
	return image_make(sl->open, out, len);
}

uint64_t
bv_store_mem_generation(const char *path)
{
	struct mem_slot *sl;

	sl = path ? slot_find(path) : NULL;
	return sl && sl->open ? sl->open->generation : 0;
}

void
bv_store_mem_set_hook(bv_store_mem_hook fn, void *ud)
{
	hook_fn = fn;
	hook_ud = ud;
}

int
bv_store_begin(struct bv_store *s)
{
	if (!s || s->in_tx)
		return BV_EINVAL;
	s->in_tx = 1;
	return 0;
}

int
bv_store_commit(struct bv_store *s)
{
	if (!s || !s->in_tx)
		return BV_EINVAL;
	s->in_tx = 0;
	committed(s);
	return 0;
}

int
bv_store_rollback(struct bv_store *s)
{
	if (!s || !s->in_tx)
		return BV_EINVAL;
	undo_to(s, 0);
	s->in_tx = 0;
	return 0;
}

/* --- our identity ------------------------------------------------------- */

int
bv_store_identity_put(struct bv_store *s, const uint8_t *pub, size_t pub_len,
		      const uint8_t *priv, size_t priv_len,
		      uint32_t registration_id)
{
	const void *src[2] = {pub, priv};
	size_t l[2] = {pub_len, priv_len};
	struct row_local *row;
	uint8_t *at[2];
	size_t mark;

	if (!s || !pub || !pub_len || !priv || !priv_len)
		return BV_EINVAL;
	if (pub_len > STORE_MAX_VALUE || priv_len > STORE_MAX_VALUE)
		return BV_EINVAL;
	mark = s->n_undo;
	row = row_new(sizeof(*row), 2, src, l, at);
	if (!row)
		return BV_ENOMEM;
	row->reg = registration_id;
	row->pub = at[0];
	row->pub_len = pub_len;
	row->priv = at[1];
	row->priv_len = priv_len;
	return write_end(s, mark,
			 table_put(s, T_LOCAL, 0, s->t[T_LOCAL].n > 0, row));
}

int
bv_store_identity_get(struct bv_store *s, uint8_t **pub, size_t *pub_len,
		      uint8_t **priv, size_t *priv_len,
		      uint32_t *registration_id)
{
	const struct row_local *r;
	uint8_t *p = NULL, *k = NULL;

	if (!s || !pub || !pub_len || !priv || !priv_len || !registration_id)
		return BV_EINVAL;
	if (!s->t[T_LOCAL].n)
		return BV_EINVAL;
	r = s->t[T_LOCAL].rows[0];
	p = value_dup(r->pub, r->pub_len);
	k = value_dup(r->priv, r->priv_len);
	if (!p || !k) {
		bv_free(p);
		value_free(k, r->priv_len);
		return BV_ENOMEM;
	}
	*pub = p;
	*pub_len = r->pub_len;
	*priv = k;
	*priv_len = r->priv_len;
	*registration_id = r->reg;
	return 0;
}

/* --- prekeys ------------------------------------------------------------ */

static enum store_table
prekey_table(int is_signed)
{
	return is_signed ? T_SIGNED : T_PREKEY;
}

int
bv_store_prekey_put(struct bv_store *s, int is_signed, uint32_t id,
		    const uint8_t *rec, size_t len)
{
	enum store_table tid = prekey_table(is_signed);
	const void *src[1] = {rec};
	struct row_prekey *row;
	uint8_t *at[1];
	size_t mark, i;
	int found;

	if (!s || !rec || !len)
		return BV_EINVAL;
	if (len > STORE_MAX_VALUE)
		return BV_EINVAL;
	mark = s->n_undo;
	row = row_new(sizeof(*row), 1, src, &len, at);
	if (!row)
		return BV_ENOMEM;
	row->id = id;
	row->rec = at[0];
	row->len = len;
	found = table_find(&s->t[tid], prekey_cmp, &id, &i);
	return write_end(s, mark, table_put(s, tid, i, found, row));
}

static int
prekey_load(struct bv_store *s, int is_signed, uint32_t id, uint8_t **rec,
	    size_t *len, int *found)
{
	const struct mem_table *t = &s->t[prekey_table(is_signed)];
	const struct row_prekey *r;
	size_t i;

	*found = 0;
	if (!table_find(t, prekey_cmp, &id, &i))
		return 0;
	r = t->rows[i];
	*rec = value_dup(r->rec, r->len);
	if (!*rec)
		return BV_ENOMEM;
	*len = r->len;
	*found = 1;
	return 0;
}

int
bv_store_prekey_get(struct bv_store *s, int is_signed, uint32_t id,
		    uint8_t **rec, size_t *len)
{
	uint8_t *r = NULL;
	size_t n = 0;
	int rc, found;

	if (!s || !rec || !len)
		return BV_EINVAL;
	rc = prekey_load(s, is_signed, id, &r, &n, &found);
	if (rc < 0)
		return rc;
	if (!found)
		return BV_EINVAL;
	*rec = r;
	*len = n;
	return 0;
}

int
bv_store_prekey_contains(struct bv_store *s, int is_signed, uint32_t id,
			 int *found)
{
	size_t i;

	if (!s || !found)
		return BV_EINVAL;
	*found =
		table_find(&s->t[prekey_table(is_signed)], prekey_cmp, &id, &i);
	return 0;
}

static int
prekey_delete(struct bv_store *s, int is_signed, uint32_t id, int below)
{
	enum store_table tid = prekey_table(is_signed);
	size_t mark, i, n;
	int found;

	if (!s)
		return BV_EINVAL;
	mark = s->n_undo;
	found = table_find(&s->t[tid], prekey_cmp, &id, &i);
	/* One row at i, or the i rows before it (ids below id). */
	n = below ? i : (size_t)found;
	if (undo_reserve(s, n) < 0)
		return BV_ENOMEM;
	while (n--)
		table_delete(s, tid, below ? n : i);
	return write_end(s, mark, 0);
}

int
bv_store_prekey_remove(struct bv_store *s, int is_signed, uint32_t id)
{
	return prekey_delete(s, is_signed, id, 0);
}

int
bv_store_prekey_remove_below(struct bv_store *s, int is_signed, uint32_t id)
{
	return prekey_delete(s, is_signed, id, 1);
}

/* --- sessions ----------------------------------------------------------- */

/* The sessions of name: rows [*first, *first + n). */
static size_t
session_range(const struct mem_table *t, const char *name, size_t *first)
{
	struct addr a = {name, INT32_MIN};
	size_t i, n = 0;

	table_find(t, session_cmp, &a, &i);
	*first = i;
	while (i + n < t->n &&
	       strcmp(((const struct row_session *)t->rows[i + n])->name,
		      name) == 0)
		n++;
	return n;
}

int
bv_store_session_store(struct bv_store *s, const char *name, int32_t device_id,
		       const uint8_t *rec, size_t len, const uint8_t *user,
		       size_t user_len)
{
	const void *src[3] = {name, rec, user};
	size_t l[3] = {0, len, user_len};
	struct addr a = {name, device_id};
	struct row_session *row;
	uint8_t *at[3];
	size_t mark, i;
	int found;

	if (!s || !name || !rec || !len || (!user && user_len))
		return BV_EINVAL;
	if (!str_ok(name, &l[0]) || len > STORE_MAX_VALUE ||
	    user_len > STORE_MAX_VALUE)
		return BV_EINVAL;
	mark = s->n_undo;
	row = row_new(sizeof(*row), 3, src, l, at);
	if (!row)
		return BV_ENOMEM;
	row->name = (const char *)at[0];
	row->device = device_id;
	row->rec = at[1];
	row->len = len;
	row->user = user ? at[2] : NULL;
	row->user_len = user_len;
	found = table_find(&s->t[T_SESSION], session_cmp, &a, &i);
	return write_end(s, mark, table_put(s, T_SESSION, i, found, row));
}

int
bv_store_session_load(struct bv_store *s, const char *name, int32_t device_id,
		      uint8_t **rec, size_t *len, uint8_t **user,
		      size_t *user_len, int *found)
{
	const struct mem_table *t;
	const struct row_session *r;
	struct addr a = {name, device_id};
	uint8_t *rb = NULL, *ub = NULL;
	size_t i;

	if (!s || !name || !rec || !len || !user || !user_len || !found)
		return BV_EINVAL;
	t = &s->t[T_SESSION];
	if (!table_find(t, session_cmp, &a, &i)) {
		*found = 0;
		return 0;
	}
	r = t->rows[i];
	rb = value_dup(r->rec, r->len);
	if (r->user)
		ub = value_dup(r->user, r->user_len);
	if (!rb || (r->user && !ub)) {
		value_free(rb, r->len);
		value_free(ub, r->user_len);
		return BV_ENOMEM;
	}
	*rec = rb;
	*len = r->len;
	*user = ub;
	*user_len = r->user ? r->user_len : 0;
	*found = 1;
	return 0;
}

int
bv_store_session_contains(struct bv_store *s, const char *name,
			  int32_t device_id, int *found)
{
	struct addr a = {name, device_id};
	size_t i;

	if (!s || !name || !found)
		return BV_EINVAL;
	*found = table_find(&s->t[T_SESSION], session_cmp, &a, &i);
	return 0;
}

/* Deletes sessions of name: one device, or all when all is set. */
static int
session_delete(struct bv_store *s, const char *name, int32_t device_id, int all,
	       int *deleted)
{
	struct addr a = {name, device_id};
	size_t mark, i, n, k;
	int rc;

	if (!s || !name)
		return BV_EINVAL;
	mark = s->n_undo;
	if (all)
		n = session_range(&s->t[T_SESSION], name, &i);
	else
		n = (size_t)table_find(&s->t[T_SESSION], session_cmp, &a, &i);
	if (n > INT_MAX || undo_reserve(s, n) < 0)
		return BV_ENOMEM;
	for (k = 0; k < n; k++)
		table_delete(s, T_SESSION, i);
	rc = write_end(s, mark, 0);
	if (deleted)
		*deleted = (int)n;
	return rc;
}

int
bv_store_session_delete(struct bv_store *s, const char *name, int32_t device_id,
			int *deleted)
{
	return session_delete(s, name, device_id, 0, deleted);
}

int
bv_store_session_delete_all(struct bv_store *s, const char *name, int *deleted)
{
	return session_delete(s, name, 0, 1, deleted);
}

int
bv_store_session_devices(struct bv_store *s, const char *name, int32_t **ids,
			 size_t *n)
{
	const struct mem_table *t;
	int32_t *v = NULL;
	size_t first, count, i;

	if (!s || !name || !ids || !n)
		return BV_EINVAL;
	t = &s->t[T_SESSION];
	count = session_range(t, name, &first);
	if (count) {
		v = bv_malloc(count * sizeof(*v));
		if (!v)
			return BV_ENOMEM;
		for (i = 0; i < count; i++)
			v[i] = ((const struct row_session *)t->rows[first + i])
				       ->device;
	}
	*ids = v;
	*n = count;
	return 0;
}

/* --- peer identities ---------------------------------------------------- */

/* The stored key of (name, device_id): *found = 0 when none. */
static int
peer_id_load(struct bv_store *s, const char *name, int32_t device_id,
	     uint8_t **key_out, size_t *len, int *found)
{
	const struct mem_table *t = &s->t[T_PEER];
	const struct row_peer *r;
	struct addr a = {name, device_id};
	size_t i;

	*found = 0;
	if (!table_find(t, peer_cmp, &a, &i))
		return 0;
	r = t->rows[i];
	*key_out = value_dup(r->key, r->len);
	if (!*key_out)
		return BV_ENOMEM;
	*len = r->len;
	*found = 1;
	return 0;
}

int
bv_store_identity_peer(struct bv_store *s, const char *name, int32_t device_id,
		       uint8_t **key, size_t *len, int *found)
{
	if (!s || !name || !key || !len || !found)
		return BV_EINVAL;
	*key = NULL;
	*len = 0;
	return peer_id_load(s, name, device_id, key, len, found);
}

int
bv_store_identity_check(struct bv_store *s, const char *name, int32_t device_id,
			const uint8_t *key, size_t len, enum bv_trust *trust)
{
	const struct mem_table *t;
	const struct row_peer *r;
	struct addr a = {name, device_id};
	size_t i;

	if (!s || !name || !key || !len || !trust)
		return BV_EINVAL;
	t = &s->t[T_PEER];
	if (!table_find(t, peer_cmp, &a, &i)) {
		*trust = BV_TRUST_NEW;
		return 0;
	}
	r = t->rows[i];
	if (r->len == len && sodium_memcmp(r->key, key, len) == 0)
		*trust = BV_TRUST_SAME;
	else
		*trust = BV_TRUST_CHANGED;
	return 0;
}

/* Stores the key of (name, device_id); first_seen_ms survives a change. */
static int
peer_id_write(struct bv_store *s, const char *name, int32_t device_id,
	      const uint8_t *k, size_t len)
{
	const void *src[2] = {name, k};
	size_t l[2] = {0, len};
	struct addr a = {name, device_id};
	struct row_peer *row;
	uint8_t *at[2];
	size_t mark, i;
	int64_t now = bv_now_ms();
	int found;

	if (!str_ok(name, &l[0]) || len > STORE_MAX_VALUE)
		return BV_EINVAL;
	mark = s->n_undo;
	row = row_new(sizeof(*row), 2, src, l, at);
	if (!row)
		return BV_ENOMEM;
	row->name = (const char *)at[0];
	row->device = device_id;
	row->key = at[1];
	row->len = len;
	row->first_seen_ms = now;
	row->accepted_ms = now;
	found = table_find(&s->t[T_PEER], peer_cmp, &a, &i);
	if (found)
		row->first_seen_ms =
			((const struct row_peer *)s->t[T_PEER].rows[i])
				->first_seen_ms;
	return write_end(s, mark, table_put(s, T_PEER, i, found, row));
}

int
bv_store_identity_save(struct bv_store *s, const char *name, int32_t device_id,
		       const uint8_t *key, size_t len, enum bv_trust *trust)
{
	enum bv_trust t;
	int rc;

	if (!trust)
		return BV_EINVAL;
	rc = bv_store_identity_check(s, name, device_id, key, len, &t);
	if (rc < 0)
		return rc;
	if (t == BV_TRUST_NEW) {
		rc = peer_id_write(s, name, device_id, key, len);
		if (rc < 0)
			return rc;
	}
	*trust = t;
	return 0;
}

int
bv_store_identity_accept(struct bv_store *s, const char *name,
			 int32_t device_id, const uint8_t *key, size_t len)
{
	if (!s || !name || !key || !len)
		return BV_EINVAL;
	bv_log(BV_LOG_NOTICE, "store: identity key of a device of %s accepted",
	       name);
	return peer_id_write(s, name, device_id, key, len);
}

/* --- processed message ids and history ---------------------------------- */

int
bv_store_seen(struct bv_store *s, const char *sender, int32_t sender_device,
	      const char *message_id, int *was_seen)
{
	struct seen_key key = {sender, message_id, sender_device};
	const void *src[2] = {sender, message_id};
	struct row_seen *row;
	uint8_t *at[2];
	size_t l[2], mark, i;
	int rc;

	if (!s || !sender || !message_id || !was_seen)
		return BV_EINVAL;
	if (!str_ok(sender, &l[0]) || !str_ok(message_id, &l[1]))
		return BV_EINVAL;
	if (table_find(&s->t[T_SEEN], seen_cmp, &key, &i)) {
		*was_seen = 1;
		return 0;
	}
	mark = s->n_undo;
	row = row_new(sizeof(*row), 2, src, l, at);
	if (!row)
		return BV_ENOMEM;
	row->sender = (const char *)at[0];
	row->message_id = (const char *)at[1];
	row->device = sender_device;
	row->seen_ms = bv_now_ms();
	rc = write_end(s, mark, table_put(s, T_SEEN, i, 0, row));
	if (rc == 0)
		*was_seen = 0;
	return rc;
}

int
bv_store_history_append(struct bv_store *s, const char *conversation,
			enum bv_msg_direction direction, const char *sender,
			int32_t sender_device, const char *message_id,
			int64_t timestamp_ms, const uint8_t *body,
			size_t body_len, enum bv_msg_state state, int64_t *seq)
{
	const void *src[4] = {conversation, sender, message_id, body};
	const struct mem_table *t;
	struct row_history *row;
	uint8_t *at[4];
	size_t l[4], mark;
	int64_t next;
	int rc;

	if (!s || !conversation || !sender || !message_id ||
	    (!body && body_len) || !state_valid((int)state) ||
	    (direction != BV_MSG_IN && direction != BV_MSG_OUT))
		return BV_EINVAL;
	if (!str_ok(conversation, &l[0]) || !str_ok(sender, &l[1]) ||
	    !str_ok(message_id, &l[2]) || body_len > STORE_MAX_VALUE)
		return BV_EINVAL;
	l[3] = body_len;
	/* AUTOINCREMENT: one more than the last (none is ever deleted, and
	 * a rolled back append gives its seq back). */
	t = &s->t[T_HISTORY];
	next = t->n ? ((const struct row_history *)t->rows[t->n - 1])->seq + 1
		    : 1;
	mark = s->n_undo;
	row = row_new(sizeof(*row), 4, src, l, at);
	if (!row)
		return BV_ENOMEM;
	row->seq = next;
	row->conversation = (const char *)at[0];
	row->direction = (int)direction;
	row->sender = (const char *)at[1];
	row->device = sender_device;
	row->message_id = (const char *)at[2];
	row->ts = timestamp_ms;
	row->state = (int)state;
	row->body = at[3];
	row->body_len = body_len;
	rc = write_end(s, mark, table_put(s, T_HISTORY, t->n, 0, row));
	if (rc == 0 && seq)
		*seq = next;
	return rc;
}

typedef int (*history_match)(const struct row_history *r, const void *arg);

/*
 * Calls cb with a copy of r (strings, journal and body in one buffer,
 * wiped after the call), so that what the callback does to the store
 * cannot pull the entry from under it.
 */
static int
history_call(struct bv_store *s, const struct row_history *r, bv_history_cb cb,
	     void *arg)
{
	const struct row_journal *j = NULL;
	struct bv_history_entry e;
	size_t lc, ls, lm, lj = 0, size, i;
	uint8_t *buf;
	char *p;
	int rc;

	if (table_find(&s->t[T_JOURNAL], journal_cmp, r->message_id, &i)) {
		j = s->t[T_JOURNAL].rows[i];
		lj = strlen(j->journal) + 1;
	}
	lc = strlen(r->conversation) + 1;
	ls = strlen(r->sender) + 1;
	lm = strlen(r->message_id) + 1;
	size = r->body_len + 1 + lc + ls + lm + lj;
	buf = bv_malloc(size);
	if (!buf)
		return BV_ENOMEM;
	memset(&e, 0, sizeof(e));
	if (r->body_len)
		memcpy(buf, r->body, r->body_len);
	buf[r->body_len] = '\0';
	p = (char *)buf + r->body_len + 1;
	e.conversation = memcpy(p, r->conversation, lc);
	p += lc;
	e.sender = memcpy(p, r->sender, ls);
	p += ls;
	e.message_id = memcpy(p, r->message_id, lm);
	p += lm;
	if (j)
		e.journal = memcpy(p, j->journal, lj);
	e.seq = r->seq;
	e.direction = (enum bv_msg_direction)r->direction;
	e.sender_device = r->device;
	e.timestamp_ms = r->ts;
	e.state = (enum bv_msg_state)r->state;
	e.body = buf;
	e.body_len = r->body_len;
	rc = cb(&e, arg);
	bv_wipe(buf, size);
	bv_free(buf);
	return rc;
}

/*
 * Calls cb for each message with seq > after that match says yes to, in
 * seq order, up to the last message there was at the start. Each step
 * looks the next seq up again: the callback may change the store.
 */
static int
history_each(struct bv_store *s, int64_t after, history_match match,
	     const void *marg, bv_history_cb cb, void *arg)
{
	const struct mem_table *t = &s->t[T_HISTORY];
	const struct row_history *r;
	int64_t end;
	size_t i;
	int rc;

	if (!t->n)
		return 0;
	end = ((const struct row_history *)t->rows[t->n - 1])->seq;
	if (table_find(t, history_cmp, &after, &i))
		i++;
	while (i < t->n) {
		r = t->rows[i];
		if (r->seq > end)
			break;
		if (!match(r, marg)) {
			i++;
			continue;
		}
		after = r->seq;
		rc = history_call(s, r, cb, arg);
		if (rc != 0)
			return rc;
		if (table_find(t, history_cmp, &after, &i))
			i++;
	}
	return 0;
}

static int
match_conversation(const struct row_history *r, const void *arg)
{
	return strcmp(r->conversation, arg) == 0;
}

static int
match_message_id(const struct row_history *r, const void *arg)
{
	return strcmp(r->message_id, arg) == 0;
}

static int
match_unsent(const struct row_history *r, const void *arg)
{
	(void)arg;
	return r->direction == BV_MSG_OUT && r->state == BV_MSG_SENDING;
}

int
bv_store_history_list(struct bv_store *s, const char *conversation,
		      int64_t after_seq, bv_history_cb cb, void *arg)
{
	if (!s || !conversation || !cb)
		return BV_EINVAL;
	return history_each(s, after_seq, match_conversation, conversation, cb,
			    arg);
}

struct conv_sum {
	char *conversation;
	int64_t last_seq, last_ts, n;
};

static int
conv_sum_newest_first(const void *a, const void *b)
{
	const struct conv_sum *x = a, *y = b;

	return cmp_i64(y->last_seq, x->last_seq);
}

int
bv_store_conversations(struct bv_store *s, bv_conversation_cb cb, void *arg)
{
	const struct mem_table *t;
	struct bv_conversation_entry e;
	struct conv_sum *c = NULL, *nc;
	size_t n = 0, cap = 0, i, k;
	int rc = 0;

	if (!s || !cb)
		return BV_EINVAL;
	t = &s->t[T_HISTORY];
	/* In seq order, so the last row seen of each is its newest. */
	for (i = 0; i < t->n; i++) {
		const struct row_history *r = t->rows[i];

		for (k = 0; k < n; k++)
			if (strcmp(c[k].conversation, r->conversation) == 0)
				break;
		if (k == n) {
			if (n == cap) {
				cap = cap ? cap * 2 : 8;
				nc = bv_realloc(c, cap * sizeof(*c));
				if (!nc) {
					rc = BV_ENOMEM;
					goto out;
				}
				c = nc;
			}
			c[n].conversation = bv_strdup(r->conversation);
			if (!c[n].conversation) {
				rc = BV_ENOMEM;
				goto out;
			}
			c[n++].n = 0;
		}
		c[k].last_seq = r->seq;
		c[k].last_ts = r->ts;
		c[k].n++;
	}
	if (n)
		qsort(c, n, sizeof(*c), conv_sum_newest_first);
	for (k = 0; k < n; k++) {
		e.conversation = c[k].conversation;
		e.last_seq = c[k].last_seq;
		e.last_timestamp_ms = c[k].last_ts;
		e.n_messages = c[k].n;
		rc = cb(&e, arg);
		if (rc != 0)
			goto out;
	}
out:
	for (k = 0; k < n; k++)
		bv_free(c[k].conversation);
	bv_free(c);
	return rc;
}

int
bv_store_history_find(struct bv_store *s, const char *message_id,
		      bv_history_cb cb, void *arg)
{
	if (!s || !message_id || !cb)
		return BV_EINVAL;
	return history_each(s, INT64_MIN, match_message_id, message_id, cb,
			    arg);
}

int
bv_store_history_unsent(struct bv_store *s, bv_history_cb cb, void *arg)
{
	if (!s || !cb)
		return BV_EINVAL;
	return history_each(s, INT64_MIN, match_unsent, NULL, cb, arg);
}

int
bv_store_out_recipients_put(struct bv_store *s, int64_t seq,
			    const char *const *accounts, size_t n)
{
	struct recipient_key key;
	struct row_recipient *row;
	size_t mark, i, at;
	int rc = 0;

	if (!s || (!accounts && n))
		return BV_EINVAL;
	for (i = 0; i < n; i++)
		if (!accounts[i] || !bv_uuid_valid(accounts[i]))
			return BV_EINVAL;
	if (!n)
		return 0;
	/* The foreign key: seq must be in the history. */
	if (!table_find(&s->t[T_HISTORY], history_cmp, &seq, &at))
		return BV_EINVAL;
	mark = s->n_undo;
	if (undo_reserve(s, n) < 0 || table_reserve(&s->t[T_RECIPIENT], n) < 0)
		return BV_ENOMEM;
	key.seq = seq;
	for (i = 0; i < n && rc == 0; i++) {
		key.account = accounts[i];
		if (table_find(&s->t[T_RECIPIENT], recipient_cmp, &key, &at))
			continue; /* INSERT OR IGNORE */
		row = row_new(sizeof(*row), 0, NULL, NULL, NULL);
		if (!row) {
			rc = BV_ENOMEM;
			break;
		}
		row->seq = seq;
		memcpy(row->account, accounts[i], BV_UUID_LEN);
		row->account[BV_UUID_LEN] = '\0';
		table_insert(s, T_RECIPIENT, at, row);
	}
	return write_end(s, mark, rc);
}

int
bv_store_out_recipients_get(struct bv_store *s, int64_t seq,
			    char (**accounts)[BV_UUID_LEN + 1], size_t *n)
{
	struct recipient_key key = {seq, ""};
	const struct mem_table *t;
	char(*a)[BV_UUID_LEN + 1] = NULL;
	size_t first, k = 0, i;

	if (!s || !accounts || !n)
		return BV_EINVAL;
	*accounts = NULL;
	*n = 0;
	t = &s->t[T_RECIPIENT];
	table_find(t, recipient_cmp, &key, &first);
	while (first + k < t->n &&
	       ((const struct row_recipient *)t->rows[first + k])->seq == seq)
		k++;
	if (!k)
		return 0;
	a = bv_malloc(k * sizeof(*a));
	if (!a)
		return BV_ENOMEM;
	for (i = 0; i < k; i++)
		memcpy(a[i],
		       ((const struct row_recipient *)t->rows[first + i])
			       ->account,
		       BV_UUID_LEN + 1);
	*accounts = a;
	*n = k;
	return 0;
}

/* --- the case view ------------------------------------------------------ */

int
bv_store_case_put(struct bv_store *s, const char *case_id, const char *view,
		  size_t len)
{
	const void *src[1] = {view};
	struct row_case *row;
	uint8_t *at[1];
	size_t mark, i;
	int found;

	if (!s || !case_id || !bv_uuid_valid(case_id) || !view || !len)
		return BV_EINVAL;
	if (len > STORE_MAX_VALUE)
		return BV_EINVAL;
	mark = s->n_undo;
	row = row_new(sizeof(*row), 1, src, &len, at);
	if (!row)
		return BV_ENOMEM;
	memcpy(row->case_id, case_id, BV_UUID_LEN + 1);
	row->view = (const char *)at[0];
	row->len = len;
	found = table_find(&s->t[T_CASE], case_cmp, case_id, &i);
	return write_end(s, mark, table_put(s, T_CASE, i, found, row));
}

int
bv_store_case_delete(struct bv_store *s, const char *case_id)
{
	size_t mark, i, n;

	if (!s || (case_id && !bv_uuid_valid(case_id)))
		return BV_EINVAL;
	mark = s->n_undo;
	if (case_id) {
		n = (size_t)table_find(&s->t[T_CASE], case_cmp, case_id, &i);
	} else {
		i = 0;
		n = s->t[T_CASE].n;
	}
	if (undo_reserve(s, n) < 0)
		return BV_ENOMEM;
	while (n--)
		table_delete(s, T_CASE, i + n);
	return write_end(s, mark, 0);
}

int
bv_store_cases(struct bv_store *s, bv_case_cb cb, void *arg)
{
	const struct mem_table *t;
	const struct row_case *r;
	char id[BV_UUID_LEN + 1];
	uint8_t *view;
	size_t i = 0, len;
	int rc;

	if (!s || !cb)
		return BV_EINVAL;
	t = &s->t[T_CASE];
	/* By case id; the next one is looked up again after each call. */
	while (i < t->n) {
		r = t->rows[i];
		memcpy(id, r->case_id, sizeof(id));
		len = r->len;
		view = value_dup((const uint8_t *)r->view, len);
		if (!view)
			return BV_ENOMEM;
		rc = cb(id, (const char *)view, len, arg);
		value_free(view, len);
		if (rc != 0)
			return rc;
		if (table_find(t, case_cmp, id, &i))
			i++;
	}
	return 0;
}

int
bv_store_journaled_put(struct bv_store *s, const char *message_id,
		       const char *journal, int64_t at_ms)
{
	const void *src[2] = {message_id, journal};
	struct row_journal *row;
	uint8_t *at[2];
	size_t l[2], mark, i;

	if (!s || !message_id || !journal || !*journal)
		return BV_EINVAL;
	if (!str_ok(message_id, &l[0]) || !str_ok(journal, &l[1]))
		return BV_EINVAL;
	/* The first reference stays: a repeated receipt changes nothing. */
	if (table_find(&s->t[T_JOURNAL], journal_cmp, message_id, &i))
		return 0;
	mark = s->n_undo;
	row = row_new(sizeof(*row), 2, src, l, at);
	if (!row)
		return BV_ENOMEM;
	row->message_id = (const char *)at[0];
	row->journal = (const char *)at[1];
	row->at_ms = at_ms;
	return write_end(s, mark, table_put(s, T_JOURNAL, i, 0, row));
}

int
bv_store_history_set_state(struct bv_store *s, int64_t seq,
			   enum bv_msg_state state)
{
	struct row_history *r;
	size_t mark, i;

	if (!s || !state_valid((int)state))
		return BV_EINVAL;
	if (!table_find(&s->t[T_HISTORY], history_cmp, &seq, &i))
		return BV_EINVAL;
	r = s->t[T_HISTORY].rows[i];
	if (r->state == (int)state)
		return 0; /* nothing changes: no generation */
	mark = s->n_undo;
	if (undo_reserve(s, 1) < 0)
		return BV_ENOMEM;
	undo_push(s, U_STATE, T_HISTORY, i, NULL, r->state);
	r->state = (int)state;
	return write_end(s, mark, 0);
}

/* --- attachments --------------------------------------------------------- */

int
bv_store_attachment_put(struct bv_store *s, int64_t seq, int idx, int state,
			const uint8_t *rec, size_t len)
{
	const void *src[1] = {rec};
	struct attach_key key = {seq, idx};
	struct row_attach *row;
	uint8_t *at[1];
	size_t mark, i;
	int found;

	if (!s || idx < 0 || idx >= BV_STORE_ATTACHMENTS_MAX || state < 0 ||
	    (!rec && len) || len > STORE_MAX_VALUE)
		return BV_EINVAL;
	if (!table_find(&s->t[T_HISTORY], history_cmp, &seq, &i))
		return BV_EINVAL;
	mark = s->n_undo;
	row = row_new(sizeof(*row), 1, src, &len, at);
	if (!row)
		return BV_ENOMEM;
	row->seq = seq;
	row->idx = idx;
	row->state = state;
	row->rec = at[0];
	row->len = len;
	found = table_find(&s->t[T_ATTACH], attach_cmp, &key, &i);
	return write_end(s, mark, table_put(s, T_ATTACH, i, found, row));
}

int
bv_store_attachments(struct bv_store *s, int64_t seq, bv_attachment_cb cb,
		     void *arg)
{
	const struct mem_table *t;
	const struct row_attach *r;
	struct attach_key key = {seq, 0};
	uint8_t *rec;
	size_t i = 0, len;
	int rc, state;

	if (!s || !cb || seq < 0)
		return BV_EINVAL;
	t = &s->t[T_ATTACH];
	if (seq)
		table_find(t, attach_cmp, &key, &i);
	/* The next row is looked up again after each call: cb may write. */
	while (i < t->n) {
		r = t->rows[i];
		if (seq && r->seq != seq)
			break;
		key.seq = r->seq;
		key.idx = r->idx;
		state = r->state;
		len = r->len;
		rec = value_dup(r->rec, len);
		if (!rec)
			return BV_ENOMEM;
		rc = cb(key.seq, key.idx, state, rec, len, arg);
		value_free(rec, len);
		if (rc != 0)
			return rc;
		if (table_find(t, attach_cmp, &key, &i))
			i++;
	}
	return 0;
}
