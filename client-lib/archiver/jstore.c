/* SPDX-License-Identifier: GPL-3.0-or-later */
/* jstore.c: the archiver's journal state in SQLite (jstore.h). */
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bv_error.h"
#include "bv_util.h"
#include "jstore.h"

struct jstore {
	sqlite3 *db;
	uint8_t key[crypto_secretbox_KEYBYTES]; /* seals batch documents */
};

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS cursors (conversation TEXT PRIMARY KEY,"
	" through_seq INTEGER NOT NULL) STRICT;"
	"CREATE TABLE IF NOT EXISTS batches ("
	" seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
	" conversation TEXT NOT NULL, case_id TEXT NOT NULL,"
	" first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,"
	" n_messages INTEGER NOT NULL,"
	" state INTEGER NOT NULL CHECK (state BETWEEN 0 AND 5),"
	" attempts INTEGER NOT NULL, next_try_ms INTEGER NOT NULL,"
	" sent_ms INTEGER NOT NULL, fiks_id TEXT NOT NULL,"
	" journal TEXT NOT NULL, error TEXT NOT NULL,"
	" created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
	" files BLOB NOT NULL) STRICT;"
	"CREATE INDEX IF NOT EXISTS batches_by_fiks ON batches (fiks_id);"
	"CREATE TABLE IF NOT EXISTS batch_messages (batch_id TEXT NOT NULL"
	" REFERENCES batches (id), pos INTEGER NOT NULL,"
	" message_id TEXT NOT NULL, PRIMARY KEY (batch_id, pos))"
	" STRICT, WITHOUT ROWID;"
	/* A message's files (jstore.h, "attachments"); data sealed. */
	"CREATE TABLE IF NOT EXISTS attachments (message_id TEXT NOT NULL,"
	" idx INTEGER NOT NULL, blob TEXT NOT NULL,"
	" state INTEGER NOT NULL CHECK (state BETWEEN 0 AND 2),"
	" tries INTEGER NOT NULL, next_try_ms INTEGER NOT NULL,"
	" code INTEGER NOT NULL, len INTEGER NOT NULL, sha256 TEXT NOT NULL,"
	" data BLOB, batch_id TEXT REFERENCES batches (id), pkg TEXT,"
	" mime TEXT, reported INTEGER NOT NULL DEFAULT 0,"
	" PRIMARY KEY (message_id, idx)) STRICT;"
	"CREATE INDEX IF NOT EXISTS attachments_by_batch ON attachments"
	" (batch_id);"
	/* An operator has seen a FAILED attachment (status stops counting
	 * it); a table of its own, so an older journal.db gains it too. */
	"CREATE TABLE IF NOT EXISTS acknowledged (message_id TEXT NOT NULL,"
	" idx INTEGER NOT NULL, at_ms INTEGER NOT NULL, note TEXT NOT NULL,"
	" PRIMARY KEY (message_id, idx)) STRICT;"
	/* Changed keys the archive accepted, and the batch that first
	 * recorded each in a conversation (jstore.h, "jkeychange"). */
	"CREATE TABLE IF NOT EXISTS keychanges (id INTEGER PRIMARY KEY,"
	" account TEXT NOT NULL, device INTEGER NOT NULL,"
	" accepted_ms INTEGER NOT NULL) STRICT;"
	"CREATE TABLE IF NOT EXISTS keychanges_noted (conversation TEXT NOT"
	" NULL, keychange INTEGER NOT NULL REFERENCES keychanges (id),"
	" batch_id TEXT NOT NULL REFERENCES batches (id),"
	" PRIMARY KEY (conversation, keychange)) STRICT, WITHOUT ROWID;";

static const char *const state_names[] = {
	"ready", "sent", "received", "journaled", "announced", "failed",
};

const char *
jstate_name(enum jstate s)
{
	return (unsigned)s < sizeof(state_names) / sizeof(state_names[0])
		       ? state_names[s]
		       : "?";
}

static int
db_err(struct jstore *j, int rc)
{
	if (rc == SQLITE_NOMEM)
		return BV_ENOMEM;
	bv_log(BV_LOG_ERR, "archiver: journal db: %s", sqlite3_errmsg(j->db));
	return BV_EIO;
}

static int
exec(struct jstore *j, const char *sql)
{
	int rc = sqlite3_exec(j->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : db_err(j, rc);
}

static int
prep(struct jstore *j, const char *sql, sqlite3_stmt **st)
{
	int rc = sqlite3_prepare_v2(j->db, sql, -1, st, NULL);

	if (rc != SQLITE_OK) {
		*st = NULL;
		return db_err(j, rc);
	}
	return 0;
}

/* Steps st, a statement that returns no row, and resets it for the next
 * binds: 0 or a BV_E* code. */
static int
step_done(struct jstore *j, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	rc = rc == SQLITE_DONE ? 0 : db_err(j, rc);
	sqlite3_reset(st);
	return rc;
}

/*
 * The end of a loop handing st's rows to a callback: rc is the last
 * sqlite3_step() code, stop the callback's nonzero return (0 when it saw
 * every row). Finalizes st; returns stop, 0, or a BV_E* code.
 */
static int
rows_end(struct jstore *j, sqlite3_stmt *st, int rc, int stop)
{
	if (!stop && rc != SQLITE_DONE)
		stop = db_err(j, rc);
	sqlite3_finalize(st);
	return stop;
}

int
jstore_open(const char *path, const uint8_t key[JSTORE_KEY_LEN],
	    struct jstore **out)
{
	static const char ctx[crypto_kdf_CONTEXTBYTES] = "bvarchiv";
	struct jstore *j;
	int rc;

	if (!path || !key || !out)
		return BV_EINVAL;
	if (sodium_init() < 0)
		return BV_EINTERNAL;
	j = bv_calloc(1, sizeof(*j));
	if (!j)
		return BV_ENOMEM;
	/* Its own subkey: the store key never seals two kinds of thing. */
	crypto_kdf_derive_from_key(j->key, sizeof(j->key), 1, ctx, key);
	rc = sqlite3_open_v2(path, &j->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				     SQLITE_OPEN_FULLMUTEX,
			     NULL);
	if (rc != SQLITE_OK) {
		rc = j->db ? db_err(j, rc) : BV_ENOMEM;
		goto fail;
	}
	sqlite3_busy_timeout(j->db, 5000);
	/* A batch that was created stays created: synchronous FULL. */
	rc = exec(j, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
		     "PRAGMA foreign_keys = ON;");
	if (rc == 0)
		rc = exec(j, schema);
	if (rc < 0)
		goto fail;
	*out = j;
	return 0;
fail:
	jstore_close(j);
	return rc;
}

void
jstore_close(struct jstore *j)
{
	if (!j)
		return;
	sqlite3_close(j->db);
	sodium_memzero(j->key, sizeof(j->key));
	bv_free(j);
}

int64_t
jstore_cursor(struct jstore *j, const char *conversation)
{
	sqlite3_stmt *st;
	int64_t v = 0;
	int rc;

	rc = prep(j, "SELECT through_seq FROM cursors WHERE conversation = ?",
		  &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, conversation, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	else if (rc != SQLITE_DONE)
		v = db_err(j, rc);
	sqlite3_finalize(st);
	return v;
}

/* ------------------------------------------------------- sealed files */

static void
put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t
get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/* nonce ‖ secretbox(name ‖ mime ‖ data, each length-prefixed, per file). */
static int
seal_files(struct jstore *j, const struct fiks_file *f, size_t n, uint8_t **out,
	   size_t *out_len)
{
	size_t i, len = 0, off = 0;
	uint8_t *plain, *box;
	int rc = 0;

	for (i = 0; i < n; i++)
		len += 12 + strlen(f[i].name) + strlen(f[i].mime) + f[i].len;
	plain = bv_malloc(len ? len : 1);
	box = bv_malloc(crypto_secretbox_NONCEBYTES +
			crypto_secretbox_MACBYTES + len);
	if (!plain || !box) {
		rc = BV_ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		size_t nl = strlen(f[i].name), ml = strlen(f[i].mime);

		put_u32(plain + off, (uint32_t)nl);
		memcpy(plain + off + 4, f[i].name, nl);
		off += 4 + nl;
		put_u32(plain + off, (uint32_t)ml);
		memcpy(plain + off + 4, f[i].mime, ml);
		off += 4 + ml;
		put_u32(plain + off, (uint32_t)f[i].len);
		if (f[i].len)
			memcpy(plain + off + 4, f[i].data, f[i].len);
		off += 4 + f[i].len;
	}
	randombytes_buf(box, crypto_secretbox_NONCEBYTES);
	crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES, plain, len,
			      box, j->key);
	*out = box;
	*out_len =
		crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + len;
	box = NULL;
out:
	if (plain) {
		sodium_memzero(plain, len);
		bv_free(plain);
	}
	bv_free(box);
	return rc;
}

void
jstore_files_free(struct fiks_file *files, size_t n)
{
	size_t i;

	for (i = 0; files && i < n; i++) {
		bv_free((void *)files[i].name);
		bv_free((void *)files[i].mime);
		if (files[i].data)
			sodium_memzero((void *)files[i].data, files[i].len);
		bv_free((void *)files[i].data);
	}
	bv_free(files);
}

/* Copies len bytes at *p (bounded by end) into a new NUL-terminated buffer. */
static char *
take(const uint8_t **p, const uint8_t *end, size_t *len_out)
{
	uint32_t len;
	char *s;

	if (end - *p < 4)
		return NULL;
	len = get_u32(*p);
	*p += 4;
	if ((size_t)(end - *p) < len)
		return NULL;
	s = bv_malloc((size_t)len + 1);
	if (!s)
		return NULL;
	memcpy(s, *p, len);
	s[len] = '\0';
	*p += len;
	if (len_out)
		*len_out = len;
	return s;
}

static int
unseal_files(struct jstore *j, const uint8_t *box, size_t box_len,
	     struct fiks_file **out, size_t *n_out)
{
	struct fiks_file *f = NULL;
	const uint8_t *p, *end;
	uint8_t *plain = NULL;
	size_t len, n = 0;
	int rc = BV_EIO;

	if (box_len < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES)
		return BV_EIO;
	len = box_len - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES;
	plain = bv_malloc(len ? len : 1);
	if (!plain)
		return BV_ENOMEM;
	if (crypto_secretbox_open_easy(plain, box + crypto_secretbox_NONCEBYTES,
				       box_len - crypto_secretbox_NONCEBYTES,
				       box, j->key) != 0) {
		bv_log(BV_LOG_ERR, "archiver: a batch's documents do not open "
				   "with this store's key");
		goto out;
	}
	p = plain;
	end = plain + len;
	while (p < end) {
		struct fiks_file *g = bv_realloc(f, (n + 1) * sizeof(*f));
		size_t dlen = 0;

		if (!g) {
			rc = BV_ENOMEM;
			goto out;
		}
		f = g;
		memset(&f[n], 0, sizeof(f[n]));
		n++;
		f[n - 1].name = take(&p, end, NULL);
		f[n - 1].mime = f[n - 1].name ? take(&p, end, NULL) : NULL;
		f[n - 1].data =
			f[n - 1].mime
				? (const unsigned char *)take(&p, end, &dlen)
				: NULL;
		f[n - 1].len = dlen;
		if (!f[n - 1].data)
			goto out;
	}
	*out = f;
	*n_out = n;
	f = NULL;
	rc = 0;
out:
	jstore_files_free(f, n);
	sodium_memzero(plain, len);
	bv_free(plain);
	return rc;
}

/* ------------------------------------------------------------ batches */

#define BATCH_COLUMNS                                                          \
	"SELECT seq, id, conversation, case_id, first_seq, last_seq,"          \
	" n_messages, state, attempts, next_try_ms, sent_ms, fiks_id,"         \
	" journal, error, created_ms, updated_ms FROM batches"

static void
copy_text(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
	const unsigned char *s = sqlite3_column_text(st, col);

	snprintf(dst, cap, "%s", s ? (const char *)s : "");
}

static void
row_batch(sqlite3_stmt *st, struct jbatch *b)
{
	memset(b, 0, sizeof(*b));
	b->seq = sqlite3_column_int64(st, 0);
	copy_text(b->id, sizeof(b->id), st, 1);
	copy_text(b->conversation, sizeof(b->conversation), st, 2);
	copy_text(b->case_id, sizeof(b->case_id), st, 3);
	b->first_seq = sqlite3_column_int64(st, 4);
	b->last_seq = sqlite3_column_int64(st, 5);
	b->n_messages = sqlite3_column_int(st, 6);
	b->state = (enum jstate)sqlite3_column_int(st, 7);
	b->attempts = sqlite3_column_int(st, 8);
	b->next_try_ms = sqlite3_column_int64(st, 9);
	b->sent_ms = sqlite3_column_int64(st, 10);
	copy_text(b->fiks_id, sizeof(b->fiks_id), st, 11);
	copy_text(b->journal, sizeof(b->journal), st, 12);
	copy_text(b->error, sizeof(b->error), st, 13);
	b->created_ms = sqlite3_column_int64(st, 14);
	b->updated_ms = sqlite3_column_int64(st, 15);
}

/* Inserts one batch row with its sealed files (inside a transaction). */
static int
insert_batch(struct jstore *j, const struct jbatch *b,
	     const struct fiks_file *files, size_t n_files)
{
	sqlite3_stmt *st = NULL;
	uint8_t *box = NULL;
	size_t box_len = 0;
	int rc;

	rc = seal_files(j, files, n_files, &box, &box_len);
	if (rc < 0)
		return rc;
	rc = prep(
		j,
		"INSERT INTO batches (id, conversation, case_id, first_seq,"
		" last_seq, n_messages, state, attempts, next_try_ms, sent_ms,"
		" fiks_id, journal, error, created_ms, updated_ms, files)"
		" VALUES (?, ?, ?, ?, ?, ?, 0, 0, ?, 0, '', '', '', ?, ?, ?)",
		&st);
	if (rc == 0) {
		sqlite3_bind_text(st, 1, b->id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, b->conversation, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, b->case_id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, b->first_seq);
		sqlite3_bind_int64(st, 5, b->last_seq);
		sqlite3_bind_int(st, 6, b->n_messages);
		sqlite3_bind_int64(st, 7, b->next_try_ms);
		sqlite3_bind_int64(st, 8, b->created_ms);
		sqlite3_bind_int64(st, 9, b->created_ms);
		sqlite3_bind_blob(st, 10, box, (int)box_len, SQLITE_STATIC);
		rc = sqlite3_step(st);
		rc = rc == SQLITE_DONE ? 0 : db_err(j, rc);
	}
	sqlite3_finalize(st);
	bv_free(box);
	return rc;
}

int
jstore_batch_create(struct jstore *j, const struct jpart *parts, size_t n_parts,
		    const char *const *message_ids, size_t n,
		    const struct jatt_ref *atts, size_t n_atts)
{
	const struct jbatch *b;
	sqlite3_stmt *st = NULL;
	size_t i;
	int64_t cur;
	int rc;

	if (!j || !parts || !n_parts || (!message_ids && n) ||
	    (!atts && n_atts))
		return BV_EINVAL;
	for (i = 0; i < n_parts; i++)
		if (!parts[i].b || !parts[i].files || !parts[i].n_files ||
		    (!parts[i].keychanges && parts[i].n_keychanges))
			return BV_EINVAL;
	for (i = 0; i < n_atts; i++)
		if (atts[i].part >= n_parts)
			return BV_EINVAL;
	b = parts[0].b;
	rc = exec(j, "BEGIN IMMEDIATE");
	if (rc < 0)
		return rc;
	cur = jstore_cursor(j, b->conversation);
	if (cur < 0 || b->first_seq <= cur || b->last_seq < b->first_seq) {
		rc = cur < 0 ? (int)cur : BV_EINVAL;
		goto rollback;
	}
	for (i = 0; i < n_parts; i++) {
		rc = insert_batch(j, parts[i].b, parts[i].files,
				  parts[i].n_files);
		if (rc < 0)
			goto rollback;
	}
	rc = prep(j,
		  "UPDATE attachments SET batch_id = ?, pkg = ?, mime = ?"
		  " WHERE message_id = ? AND idx = ? AND batch_id IS NULL"
		  " AND state = CASE WHEN ?2 IS NULL THEN 2 ELSE 1 END",
		  &st);
	if (rc < 0)
		goto rollback;
	for (i = 0; i < n_atts; i++) {
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, parts[atts[i].part].b->id, -1,
				  SQLITE_STATIC);
		sqlite3_bind_text(st, 2, atts[i].pkg, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, atts[i].mime, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, atts[i].message_id, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 5, atts[i].idx);
		rc = sqlite3_step(st);
		if (rc != SQLITE_DONE) {
			rc = db_err(j, rc);
			goto rollback;
		}
		if (sqlite3_changes(j->db) != 1) {
			rc = BV_EINVAL;
			goto rollback;
		}
	}
	sqlite3_finalize(st);
	st = NULL;
	rc = prep(j,
		  "INSERT INTO batch_messages (batch_id, pos, message_id)"
		  " VALUES (?, ?, ?)",
		  &st);
	if (rc < 0)
		goto rollback;
	for (i = 0; i < n; i++) {
		sqlite3_bind_text(st, 1, b->id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (int64_t)i);
		sqlite3_bind_text(st, 3, message_ids[i], -1, SQLITE_STATIC);
		rc = step_done(j, st);
		if (rc < 0)
			goto rollback;
	}
	sqlite3_finalize(st);
	st = NULL;
	rc = prep(j,
		  "INSERT INTO keychanges_noted (conversation, keychange,"
		  " batch_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
		  &st);
	if (rc < 0)
		goto rollback;
	for (i = 0; i < n_parts; i++) {
		size_t k;

		for (k = 0; k < parts[i].n_keychanges; k++) {
			sqlite3_bind_text(st, 1, b->conversation, -1,
					  SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, parts[i].keychanges[k]);
			sqlite3_bind_text(st, 3, parts[i].b->id, -1,
					  SQLITE_STATIC);
			rc = step_done(j, st);
			if (rc < 0)
				goto rollback;
		}
	}
	sqlite3_finalize(st);
	st = NULL;
	rc = prep(
		j,
		"INSERT INTO cursors (conversation, through_seq) VALUES (?, ?)"
		" ON CONFLICT (conversation) DO UPDATE SET"
		" through_seq = excluded.through_seq",
		&st);
	if (rc < 0)
		goto rollback;
	sqlite3_bind_text(st, 1, b->conversation, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, b->last_seq);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	st = NULL;
	if (rc != SQLITE_DONE) {
		rc = db_err(j, rc);
		goto rollback;
	}
	rc = exec(j, "COMMIT");
	if (rc == 0)
		return 0;
rollback:
	sqlite3_finalize(st);
	sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

int
jstore_batch_update(struct jstore *j, const struct jbatch *b)
{
	sqlite3_stmt *st;
	int rc;

	rc = prep(j,
		  "UPDATE batches SET state = ?, attempts = ?, next_try_ms = ?,"
		  " sent_ms = ?, fiks_id = ?, journal = ?, error = ?,"
		  " updated_ms = ? WHERE id = ?",
		  &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int(st, 1, (int)b->state);
	sqlite3_bind_int(st, 2, b->attempts);
	sqlite3_bind_int64(st, 3, b->next_try_ms);
	sqlite3_bind_int64(st, 4, b->sent_ms);
	sqlite3_bind_text(st, 5, b->fiks_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, b->journal, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, b->error, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 8, bv_now_ms());
	sqlite3_bind_text(st, 9, b->id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_err(j, rc);
	return sqlite3_changes(j->db) == 1 ? 0 : BV_EINVAL;
}

static int
batch_where(struct jstore *j, const char *where, const char *arg,
	    struct jbatch *out)
{
	char sql[256];
	sqlite3_stmt *st;
	int rc;

	snprintf(sql, sizeof(sql), BATCH_COLUMNS " WHERE %s", where);
	rc = prep(j, sql, &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		row_batch(st, out);
		rc = 1;
	} else {
		rc = rc == SQLITE_DONE ? 0 : db_err(j, rc);
	}
	sqlite3_finalize(st);
	return rc;
}

int
jstore_batch_get(struct jstore *j, const char *id, struct jbatch *out)
{
	return batch_where(j, "id = ?", id, out);
}

int
jstore_batch_by_fiks(struct jstore *j, const char *fiks_id, struct jbatch *out)
{
	if (!fiks_id || !*fiks_id)
		return 0;
	return batch_where(j, "fiks_id = ?", fiks_id, out);
}

int
jstore_batches(struct jstore *j, int state, jbatch_cb cb, void *arg)
{
	sqlite3_stmt *st;
	struct jbatch b;
	int rc, stop = 0;

	rc = prep(j,
		  state < 0 ? BATCH_COLUMNS " ORDER BY seq"
			    : BATCH_COLUMNS " WHERE state = ? ORDER BY seq",
		  &st);
	if (rc < 0)
		return rc;
	if (state >= 0)
		sqlite3_bind_int(st, 1, state);
	while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		row_batch(st, &b);
		stop = cb(&b, arg);
	}
	return rows_end(j, st, rc, stop);
}

void
jstore_ids_free(char **ids, size_t n)
{
	size_t i;

	for (i = 0; ids && i < n; i++)
		bv_free(ids[i]);
	bv_free(ids);
}

int
jstore_batch_messages(struct jstore *j, const char *id, char ***ids_out,
		      size_t *n_out)
{
	sqlite3_stmt *st;
	char **ids = NULL;
	size_t n = 0;
	int rc;

	rc = prep(j,
		  "SELECT message_id FROM batch_messages WHERE batch_id = ?"
		  " GROUP BY message_id ORDER BY min(pos)",
		  &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *m = (const char *)sqlite3_column_text(st, 0);
		char **g = m ? bv_realloc(ids, (n + 1) * sizeof(*ids)) : NULL;

		if (!g) {
			rc = BV_ENOMEM;
			break;
		}
		ids = g;
		ids[n] = bv_malloc(strlen(m) + 1);
		if (!ids[n]) {
			rc = BV_ENOMEM;
			break;
		}
		memcpy(ids[n++], m, strlen(m) + 1);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		jstore_ids_free(ids, n);
		return rc < 0 ? rc : db_err(j, rc);
	}
	*ids_out = ids;
	*n_out = n;
	return 0;
}

/* nonce ‖ secretbox(data): one attachment's plaintext. */
static int
seal_raw(struct jstore *j, const uint8_t *data, size_t len, uint8_t **out,
	 size_t *out_len)
{
	uint8_t *box = bv_malloc(crypto_secretbox_NONCEBYTES +
				 crypto_secretbox_MACBYTES + len);

	if (!box)
		return BV_ENOMEM;
	randombytes_buf(box, crypto_secretbox_NONCEBYTES);
	crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES, data, len, box,
			      j->key);
	*out = box;
	*out_len =
		crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + len;
	return 0;
}

static int
unseal_raw(struct jstore *j, const uint8_t *box, size_t box_len, uint8_t **out,
	   size_t *out_len)
{
	uint8_t *plain;
	size_t len;

	if (!box ||
	    box_len < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES)
		return BV_EIO;
	len = box_len - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES;
	plain = bv_malloc(len ? len : 1);
	if (!plain)
		return BV_ENOMEM;
	if (crypto_secretbox_open_easy(plain, box + crypto_secretbox_NONCEBYTES,
				       box_len - crypto_secretbox_NONCEBYTES,
				       box, j->key) != 0) {
		bv_free(plain);
		bv_log(BV_LOG_ERR, "archiver: an attachment does not open "
				   "with this store's key");
		return BV_EIO;
	}
	*out = plain;
	*out_len = len;
	return 0;
}

/* Appends the batch's attachments (sealed in their rows) to *files. */
static int
batch_attachments(struct jstore *j, const char *id, struct fiks_file **files,
		  size_t *n)
{
	sqlite3_stmt *st;
	int rc;

	rc = prep(j,
		  "SELECT pkg, mime, data FROM attachments WHERE batch_id = ?"
		  " AND pkg IS NOT NULL ORDER BY rowid",
		  &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *pkg = (const char *)sqlite3_column_text(st, 0);
		const char *mime = (const char *)sqlite3_column_text(st, 1);
		struct fiks_file *g, *f;
		uint8_t *plain = NULL;
		size_t len = 0;

		rc = unseal_raw(j, sqlite3_column_blob(st, 2),
				(size_t)sqlite3_column_bytes(st, 2), &plain,
				&len);
		if (rc < 0)
			break;
		g = bv_realloc(*files, (*n + 1) * sizeof(**files));
		if (!g) {
			sodium_memzero(plain, len);
			bv_free(plain);
			rc = BV_ENOMEM;
			break;
		}
		*files = g;
		f = &g[(*n)++];
		memset(f, 0, sizeof(*f));
		f->data = plain;
		f->len = len;
		f->name = bv_strdup(pkg ? pkg : "");
		f->mime = bv_strdup(mime ? mime : "application/octet-stream");
		if (!f->name || !f->mime) {
			rc = BV_ENOMEM;
			break;
		}
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return 0;
	return rc < 0 ? rc : db_err(j, rc);
}

int
jstore_batch_files(struct jstore *j, const char *id, struct fiks_file **files,
		   size_t *n)
{
	sqlite3_stmt *st;
	int rc;

	rc = prep(j, "SELECT files FROM batches WHERE id = ?", &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc = unseal_files(j, sqlite3_column_blob(st, 0),
				  (size_t)sqlite3_column_bytes(st, 0), files,
				  n);
	else
		rc = rc == SQLITE_DONE ? BV_EINVAL : db_err(j, rc);
	sqlite3_finalize(st);
	if (rc == 0) {
		rc = batch_attachments(j, id, files, n);
		if (rc < 0) {
			jstore_files_free(*files, *n);
			*files = NULL;
			*n = 0;
		}
	}
	return rc;
}

/* ------------------------------------------------------ attachments */

/* prep() of a statement on one attachment: ?1 message_id, ?2 idx. */
static int
prep_att(struct jstore *j, const char *sql, const char *message_id, int idx,
	 sqlite3_stmt **st)
{
	int rc = prep(j, sql, st);

	if (rc < 0)
		return rc;
	sqlite3_bind_text(*st, 1, message_id, -1, SQLITE_STATIC);
	sqlite3_bind_int(*st, 2, idx);
	return 0;
}

int
jstore_att_get(struct jstore *j, const char *message_id, int idx,
	       struct jatt *out)
{
	sqlite3_stmt *st;
	int rc;

	rc = prep_att(j,
		      "SELECT state, tries, next_try_ms, code, len,"
		      " batch_id IS NOT NULL, sha256 FROM attachments"
		      " WHERE message_id = ? AND idx = ?",
		      message_id, idx, &st);
	if (rc < 0)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		memset(out, 0, sizeof(*out));
		out->state = (enum jatt_state)sqlite3_column_int(st, 0);
		out->tries = sqlite3_column_int(st, 1);
		out->next_try_ms = sqlite3_column_int64(st, 2);
		out->code = sqlite3_column_int(st, 3);
		out->len = sqlite3_column_int64(st, 4);
		out->assigned = sqlite3_column_int(st, 5);
		copy_text(out->sha256, sizeof(out->sha256), st, 6);
		rc = 1;
	} else {
		rc = rc == SQLITE_DONE ? 0 : db_err(j, rc);
	}
	sqlite3_finalize(st);
	return rc;
}

int
jstore_att_fetched(struct jstore *j, const char *message_id, int idx,
		   const char *blob, const uint8_t *data, size_t len)
{
	uint8_t md[crypto_hash_sha256_BYTES];
	char hex[2 * crypto_hash_sha256_BYTES + 1];
	sqlite3_stmt *st;
	uint8_t *box = NULL;
	size_t box_len = 0;
	int rc;

	if (!j || !message_id || !blob || (!data && len) || len > INT32_MAX)
		return BV_EINVAL;
	crypto_hash_sha256(md, data, len);
	sodium_bin2hex(hex, sizeof(hex), md, sizeof(md));
	rc = seal_raw(j, data, len, &box, &box_len);
	if (rc < 0)
		return rc;
	/* A row already FETCHED or in a batch stays as it is: the same file
	 * twice is still one document. */
	rc = prep(j,
		  "INSERT INTO attachments (message_id, idx, blob, state,"
		  " tries, next_try_ms, code, len, sha256, data)"
		  " VALUES (?1, ?2, ?3, 1, 0, 0, 0, ?4, ?5, ?6)"
		  " ON CONFLICT (message_id, idx) DO UPDATE SET state = 1,"
		  " code = 0, len = ?4, sha256 = ?5, data = ?6"
		  " WHERE state = 0 AND batch_id IS NULL",
		  &st);
	if (rc == 0) {
		sqlite3_bind_text(st, 1, message_id, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, idx);
		sqlite3_bind_text(st, 3, blob, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, (int64_t)len);
		sqlite3_bind_text(st, 5, hex, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 6, box, (int)box_len, SQLITE_STATIC);
		rc = sqlite3_step(st);
		rc = rc == SQLITE_DONE ? 0 : db_err(j, rc);
		sqlite3_finalize(st);
	}
	bv_free(box);
	return rc;
}

int
jstore_att_failed(struct jstore *j, const char *message_id, int idx,
		  const char *blob, int code, int tries, int64_t next_try_ms,
		  int final)
{
	sqlite3_stmt *st;
	int rc;

	if (!j || !message_id || !blob)
		return BV_EINVAL;
	rc = prep_att(j,
		      "INSERT INTO attachments (message_id, idx, blob, state,"
		      " tries, next_try_ms, code, len, sha256)"
		      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, '')"
		      " ON CONFLICT (message_id, idx) DO UPDATE SET state = ?4,"
		      " tries = ?5, next_try_ms = ?6, code = ?7"
		      " WHERE state = 0 AND batch_id IS NULL",
		      message_id, idx, &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 3, blob, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, final ? JA_FAILED : JA_RETRY);
	sqlite3_bind_int(st, 5, tries);
	sqlite3_bind_int64(st, 6, next_try_ms);
	sqlite3_bind_int(st, 7, code);
	rc = sqlite3_step(st);
	rc = rc == SQLITE_DONE ? 0 : db_err(j, rc);
	sqlite3_finalize(st);
	return rc;
}

int
jstore_att_failures(struct jstore *j, jatt_failed_cb cb, void *arg)
{
	sqlite3_stmt *st;
	int rc, stop = 0;

	rc = prep(j,
		  "SELECT a.message_id, a.idx, a.code, a.batch_id, k.at_ms,"
		  " k.note FROM attachments a LEFT JOIN acknowledged k"
		  " ON k.message_id = a.message_id AND k.idx = a.idx"
		  " WHERE a.state = 2 ORDER BY a.rowid",
		  &st);
	if (rc < 0)
		return rc;
	while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct jatt_failure fl = {
			(const char *)sqlite3_column_text(st, 0),
			sqlite3_column_int(st, 1),
			sqlite3_column_int(st, 2),
			(const char *)sqlite3_column_text(st, 3),
			sqlite3_column_int64(st, 4),
			(const char *)sqlite3_column_text(st, 5),
		};

		stop = cb(arg, &fl);
	}
	return rows_end(j, st, rc, stop);
}

int
jstore_att_acknowledge(struct jstore *j, const char *message_id, int idx,
		       const char *note, int64_t at_ms)
{
	sqlite3_stmt *st;
	struct jatt att;
	int rc;

	if (!j || !message_id || !note || idx < 0)
		return BV_EINVAL;
	rc = jstore_att_get(j, message_id, idx, &att);
	if (rc <= 0 || att.state != JA_FAILED)
		return rc < 0 ? rc : 0; /* only a FAILED one */
	/* The first acknowledgement stays. */
	rc = prep_att(j,
		      "INSERT INTO acknowledged (message_id, idx, at_ms, note)"
		      " VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
		      message_id, idx, &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 3, at_ms);
	sqlite3_bind_text(st, 4, note, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	rc = rc == SQLITE_DONE ? 1 : db_err(j, rc);
	sqlite3_finalize(st);
	return rc;
}

int
jstore_blobs_unreported(struct jstore *j, size_t max, char ***blobs_out,
			size_t *n_out)
{
	sqlite3_stmt *st;
	char **blobs = NULL;
	size_t n = 0;
	int rc;

	if (max == 0 || max > 100)
		return BV_EINVAL;
	rc = prep(j,
		  "SELECT DISTINCT a.blob FROM attachments a JOIN batches b"
		  " ON b.id = a.batch_id WHERE a.reported = 0"
		  " AND b.state IN (3, 4) AND a.blob != '' LIMIT ?",
		  &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int(st, 1, (int)max);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *m = (const char *)sqlite3_column_text(st, 0);
		char **g =
			m ? bv_realloc(blobs, (n + 1) * sizeof(*blobs)) : NULL;

		if (!g) {
			rc = BV_ENOMEM;
			break;
		}
		blobs = g;
		blobs[n] = bv_strdup(m);
		if (!blobs[n]) {
			rc = BV_ENOMEM;
			break;
		}
		n++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		jstore_ids_free(blobs, n);
		return rc < 0 ? rc : db_err(j, rc);
	}
	*blobs_out = blobs;
	*n_out = n;
	return 0;
}

int
jstore_blobs_reported(struct jstore *j, const char *const *blobs, size_t n)
{
	sqlite3_stmt *st;
	size_t i;
	int rc;

	rc = exec(j, "BEGIN IMMEDIATE");
	if (rc < 0)
		return rc;
	rc = prep(j,
		  "UPDATE attachments SET reported = 1, data = NULL"
		  " WHERE blob = ? AND batch_id IS NOT NULL",
		  &st);
	for (i = 0; rc == 0 && i < n; i++) {
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, blobs[i], -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		rc = rc == SQLITE_DONE ? 0 : db_err(j, rc);
	}
	sqlite3_finalize(st);
	if (rc == 0)
		return exec(j, "COMMIT");
	sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

int
jstore_blocked(struct jstore *j, const char *conversation)
{
	sqlite3_stmt *st;
	int rc;

	rc = prep(j,
		  "SELECT 1 FROM batches WHERE conversation = ? AND state = 5"
		  " LIMIT 1",
		  &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, conversation, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	rc = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : db_err(j, rc);
	sqlite3_finalize(st);
	return rc;
}

int
jstore_keychange_add(struct jstore *j, const char *account, uint32_t device,
		     int64_t accepted_ms)
{
	sqlite3_stmt *st;
	int rc;

	if (!j || !account || !*account)
		return BV_EINVAL;
	rc = prep(j,
		  "INSERT INTO keychanges (account, device, accepted_ms)"
		  " VALUES (?, ?, ?)",
		  &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, device);
	sqlite3_bind_int64(st, 3, accepted_ms);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : db_err(j, rc);
}

int
jstore_keychanges_unnoted(struct jstore *j, const char *conversation,
			  jkeychange_cb cb, void *arg)
{
	sqlite3_stmt *st;
	int rc, stop = 0;

	if (!j || !conversation || !cb)
		return BV_EINVAL;
	rc = prep(j,
		  "SELECT k.id, k.account, k.device, k.accepted_ms"
		  " FROM keychanges k WHERE NOT EXISTS (SELECT 1 FROM"
		  " keychanges_noted n WHERE n.conversation = ?"
		  " AND n.keychange = k.id) ORDER BY k.accepted_ms, k.id",
		  &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, conversation, -1, SQLITE_STATIC);
	while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct jkeychange k = {
			sqlite3_column_int64(st, 0),
			(const char *)sqlite3_column_text(st, 1),
			(uint32_t)sqlite3_column_int64(st, 2),
			sqlite3_column_int64(st, 3),
		};

		stop = cb(arg, &k);
	}
	return rows_end(j, st, rc, stop);
}
