/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * store.c: the client's local store in SQLite (WAL, synchronous=FULL: a
 * returned commit survives a crash). Secret and content values are sealed
 * with crypto_secretbox (nonce prepended) under a per-row key: BLAKE2b keyed
 * by a per-table subkey of the application key over the row's identifying
 * columns, so a value moved to another row fails to open (no AD in secretbox).
 * NOT encrypted: schema, row counts, peer names, device and message ids,
 * timestamps, states, value sizes: needed for lookup and order, relay-known.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "bv_error.h"
#include "bv_util.h"
#include "store.h"

#define STORE_MAX_VALUE (16u * 1024u * 1024u)
#define STORE_SEAL_OVERHEAD                                                    \
	(crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES)
#define STORE_KDF_CONTEXT "bvstore1"
#define STORE_CHECK_TEXT  "bvchat local store key check v1"

/* Subkey ids of crypto_kdf_derive_from_key(): one per kind of value. */
enum store_purpose {
	P_CHECK = 1,
	P_LOCAL_ID,
	P_PREKEY,
	P_SIGNED_PREKEY,
	P_SESSION,
	P_SESSION_USER,
	P_PEER_ID,
	P_HISTORY,
	P_CASE,
	P_ATTACH,
	P_COUNT
};

struct bv_store {
	sqlite3 *db;
	uint8_t sub[P_COUNT][crypto_kdf_KEYBYTES];
};

static const char schema_v1[] =
	"CREATE TABLE meta (k TEXT PRIMARY KEY, v BLOB NOT NULL) STRICT;"
	"CREATE TABLE local_identity ("
	" id INTEGER PRIMARY KEY CHECK (id = 1),"
	" registration_id INTEGER NOT NULL,"
	" pub BLOB NOT NULL, priv BLOB NOT NULL) STRICT;"
	"CREATE TABLE pre_keys (id INTEGER PRIMARY KEY,"
	" record BLOB NOT NULL) STRICT;"
	"CREATE TABLE signed_pre_keys (id INTEGER PRIMARY KEY,"
	" record BLOB NOT NULL) STRICT;"
	"CREATE TABLE sessions (name TEXT NOT NULL,"
	" device_id INTEGER NOT NULL, record BLOB NOT NULL, user_record BLOB,"
	" PRIMARY KEY (name, device_id)) STRICT;"
	"CREATE TABLE peer_identities (name TEXT NOT NULL,"
	" device_id INTEGER NOT NULL, identity_key BLOB NOT NULL,"
	" first_seen_ms INTEGER NOT NULL, accepted_ms INTEGER NOT NULL,"
	" PRIMARY KEY (name, device_id)) STRICT;"
	"CREATE TABLE seen (sender TEXT NOT NULL,"
	" sender_device INTEGER NOT NULL, message_id TEXT NOT NULL,"
	" seen_ms INTEGER NOT NULL,"
	" PRIMARY KEY (sender, sender_device, message_id)) STRICT;"
	"CREATE TABLE history (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	" conversation TEXT NOT NULL,"
	" direction INTEGER NOT NULL CHECK (direction IN (0, 1)),"
	" sender TEXT NOT NULL, sender_device INTEGER NOT NULL,"
	" message_id TEXT NOT NULL, timestamp_ms INTEGER NOT NULL,"
	" state INTEGER NOT NULL CHECK (state BETWEEN 0 AND 6),"
	" body BLOB NOT NULL) STRICT;"
	"CREATE INDEX history_by_conversation ON history (conversation, seq);"
	/* DOMAIN.md rule 1: history is part of the case file. */
	"CREATE TRIGGER history_no_delete BEFORE DELETE ON history BEGIN"
	" SELECT RAISE(ABORT, 'history is never deleted'); END;"
	"CREATE TRIGGER history_immutable BEFORE UPDATE OF conversation,"
	" direction, sender, sender_device, message_id, timestamp_ms, body"
	" ON history BEGIN"
	" SELECT RAISE(ABORT, 'only the state of a message changes'); END;";

/*
 * v2: the recipient accounts of each outgoing message (what a resend
 * request is checked against, and what an unsent message is sent to after
 * a restart), and history by message id (receipts, resend requests).
 */
static const char schema_v2[] =
	"CREATE TABLE out_recipients (seq INTEGER NOT NULL"
	" REFERENCES history (seq), account TEXT NOT NULL,"
	" PRIMARY KEY (seq, account)) STRICT, WITHOUT ROWID;"
	"CREATE INDEX history_by_message_id ON history (message_id);"
	"CREATE INDEX history_unsent ON history (seq)"
	" WHERE direction = 1 AND state = 0;";

/*
 * v3: the case view the relay last gave (docs/protocol.md `cases`), one
 * sealed row per case: names, roles and case numbers are personal data.
 * Not history: a case that is gone from the view is deleted.
 */
static const char schema_v3[] = "CREATE TABLE cases (case_id TEXT PRIMARY KEY,"
				" view BLOB NOT NULL) STRICT, WITHOUT ROWID;";

/*
 * v4: which messages the case file has (journaled receipts from the
 * municipality's archive device), by message id: a receipt may come before
 * the message it names, and history rows stay immutable. The reference is
 * the archive's, not personal data.
 */
static const char schema_v4[] =
	"CREATE TABLE journaled (message_id TEXT PRIMARY KEY,"
	" journal TEXT NOT NULL, at_ms INTEGER NOT NULL) STRICT, WITHOUT "
	"ROWID;";

/*
 * v5: the attachments of history entries (issue 7), by (seq, index): the
 * client's state of each (an upload's progress; downloaded) and a sealed
 * record (keys, capabilities, names: secret). Rows change as uploads go on;
 * history rows stay immutable.
 */
static const char schema_v5[] =
	"CREATE TABLE attachments (seq INTEGER NOT NULL REFERENCES history"
	" (seq), idx INTEGER NOT NULL CHECK (idx BETWEEN 0 AND 9),"
	" state INTEGER NOT NULL, rec BLOB NOT NULL,"
	" PRIMARY KEY (seq, idx)) STRICT, WITHOUT ROWID;";

/* Versions 2, 3, … in order; a new version adds its schema here. */
static const char *const schema_upgrades[] = {schema_v2, schema_v3, schema_v4,
					      schema_v5};
#define STORE_SCHEMA_VERSION                                                   \
	(1 + (int)(sizeof(schema_upgrades) / sizeof(schema_upgrades[0])))

static int
db_error(struct bv_store *s, int rc)
{
	if (rc == SQLITE_NOMEM)
		return BV_ENOMEM;
	bv_log(BV_LOG_ERR, "store: sqlite: %s (%d)", sqlite3_errmsg(s->db), rc);
	return BV_EIO;
}

static int
prepare(struct bv_store *s, const char *sql, sqlite3_stmt **st)
{
	int rc;

	rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
	if (rc != SQLITE_OK) {
		*st = NULL;
		return db_error(s, rc);
	}
	return 0;
}

/*
 * Prepares sql, whose two parameters are (name, device_id), and steps once.
 * Returns 1 with *st on the row (the caller finalizes it), 0 when there is
 * no row, or a BV_E* code; in those two cases *st is finalized and NULL.
 */
static int
select_addr(struct bv_store *s, const char *sql, const char *name,
	    int32_t device_id, sqlite3_stmt **st)
{
	int rc;

	rc = prepare(s, sql, st);
	if (rc < 0)
		return rc;
	if (sqlite3_bind_text(*st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK) {
		rc = BV_ENOMEM;
		goto fail;
	}
	sqlite3_bind_int64(*st, 2, device_id);
	rc = sqlite3_step(*st);
	if (rc == SQLITE_ROW)
		return 1;
	rc = rc == SQLITE_DONE ? 0 : db_error(s, rc);
fail:
	sqlite3_finalize(*st);
	*st = NULL;
	return rc;
}

/* Steps a statement that returns no rows. */
static int
step_done(struct bv_store *s, sqlite3_stmt *st)
{
	int rc;

	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return db_error(s, sqlite3_errcode(s->db));
	return 0;
}

static int
exec(struct bv_store *s, const char *sql)
{
	int rc;

	rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return db_error(s, rc);
	return 0;
}

/* Row keys: BLAKE2b(key = subkey[purpose], length-prefixed columns). */
static void
rk_init(struct bv_store *s, enum store_purpose p, crypto_generichash_state *h)
{
	crypto_generichash_init(h, s->sub[p], sizeof(s->sub[p]),
				crypto_secretbox_KEYBYTES);
}

static void
rk_bytes(crypto_generichash_state *h, const void *p, size_t len)
{
	uint8_t n[8];
	uint64_t v = len;
	int i;

	for (i = 7; i >= 0; i--) {
		n[i] = (uint8_t)v;
		v >>= 8;
	}
	crypto_generichash_update(h, n, sizeof(n));
	if (len)
		crypto_generichash_update(h, p, len);
}

static void
rk_str(crypto_generichash_state *h, const char *str)
{
	rk_bytes(h, str, strlen(str));
}

static void
rk_int(crypto_generichash_state *h, int64_t v)
{
	uint8_t n[8];
	uint64_t u = (uint64_t)v;
	int i;

	for (i = 7; i >= 0; i--) {
		n[i] = (uint8_t)u;
		u >>= 8;
	}
	rk_bytes(h, n, sizeof(n));
}

static void
rk_final(crypto_generichash_state *h, uint8_t key[crypto_secretbox_KEYBYTES])
{
	crypto_generichash_final(h, key, crypto_secretbox_KEYBYTES);
	bv_wipe(h, sizeof(*h));
}

/* Seals pt under key into a new buffer nonce || mac || ciphertext. */
static int
seal(const uint8_t *key, const uint8_t *pt, size_t len, uint8_t **out,
     size_t *out_len)
{
	uint8_t *b;

	if (len > STORE_MAX_VALUE)
		return BV_EINVAL;
	b = bv_malloc(len + STORE_SEAL_OVERHEAD);
	if (!b)
		return BV_ENOMEM;
	randombytes_buf(b, crypto_secretbox_NONCEBYTES);
	crypto_secretbox_easy(b + crypto_secretbox_NONCEBYTES, len ? pt : b,
			      len, b, key);
	*out = b;
	*out_len = len + STORE_SEAL_OVERHEAD;
	return 0;
}

/*
 * Opens a sealed value into a new buffer (one spare byte, so that an empty
 * value still gets a buffer). BV_EIO when it was tampered with, moved to
 * another row or sealed under another key: never garbage.
 */
static int
unseal(const uint8_t *key, const uint8_t *b, size_t len, uint8_t **out,
       size_t *out_len)
{
	uint8_t *pt;
	size_t n;

	if (!b || len < STORE_SEAL_OVERHEAD)
		return BV_EIO;
	n = len - STORE_SEAL_OVERHEAD;
	pt = bv_malloc(n + 1);
	if (!pt)
		return BV_ENOMEM;
	if (crypto_secretbox_open_easy(pt, b + crypto_secretbox_NONCEBYTES,
				       len - crypto_secretbox_NONCEBYTES, b,
				       key) != 0) {
		bv_free(pt);
		bv_log(BV_LOG_ERR, "store: a sealed value failed to open");
		return BV_EIO;
	}
	*out = pt;
	*out_len = n;
	return 0;
}

static int
bind_blob(sqlite3_stmt *st, int i, const uint8_t *b, size_t len)
{
	if (len > INT_MAX)
		return BV_EINVAL;
	if (sqlite3_bind_blob(st, i, b, (int)len, SQLITE_STATIC) != SQLITE_OK)
		return BV_ENOMEM;
	return 0;
}

static int
check_key(struct bv_store *s)
{
	static const char sql[] = "SELECT v FROM meta WHERE k = 'key_check'";
	crypto_generichash_state h;
	uint8_t key[crypto_secretbox_KEYBYTES];
	sqlite3_stmt *st = NULL;
	uint8_t *pt = NULL;
	size_t len = 0;
	int rc;

	rk_init(s, P_CHECK, &h);
	rk_str(&h, "key_check");
	rk_final(&h, key);
	rc = prepare(s, sql, &st);
	if (rc < 0)
		goto out;
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		rc = rc == SQLITE_DONE ? BV_EIO : db_error(s, rc);
		goto out;
	}
	rc = unseal(key, sqlite3_column_blob(st, 0),
		    (size_t)sqlite3_column_bytes(st, 0), &pt, &len);
	if (rc == BV_EIO) {
		/*
		 * BV_EINVAL until the error table has a code for a wrong
		 * store key (BV_ESTORE_KEY, proposed in issue 3's notes).
		 */
		bv_log(BV_LOG_ERR, "store: wrong key for this store");
		rc = BV_EINVAL;
		goto out;
	}
	if (rc < 0)
		goto out;
	if (len != sizeof(STORE_CHECK_TEXT) - 1 ||
	    memcmp(pt, STORE_CHECK_TEXT, len) != 0)
		rc = BV_EIO;
out:
	bv_free(pt);
	sqlite3_finalize(st);
	bv_wipe(key, sizeof(key));
	return rc;
}

static int
read_version(struct bv_store *s, int *version)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = prepare(s, "PRAGMA user_version", &st);
	if (rc < 0)
		return rc;
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		rc = db_error(s, rc);
		goto out;
	}
	*version = sqlite3_column_int(st, 0);
	rc = 0;
out:
	sqlite3_finalize(st);
	return rc;
}

/* Forward-only: each step runs in the transaction that records it. */
static int
create_schema(struct bv_store *s)
{
	static const char ins[] =
		"INSERT INTO meta (k, v) VALUES ('key_check', ?)";
	crypto_generichash_state h;
	uint8_t key[crypto_secretbox_KEYBYTES];
	sqlite3_stmt *st = NULL;
	uint8_t *b = NULL;
	size_t blen = 0;
	int version = 0, v;
	int rc;

	rc = exec(s, "BEGIN IMMEDIATE");
	if (rc < 0)
		return rc;
	rc = read_version(s, &version);
	if (rc < 0)
		goto out;
	if (version > STORE_SCHEMA_VERSION) {
		bv_log(BV_LOG_ERR, "store: schema %d is newer than %d", version,
		       STORE_SCHEMA_VERSION);
		rc = BV_EIO;
		goto out;
	}
	if (version == 0) {
		rc = exec(s, schema_v1);
		if (rc < 0)
			goto out;
		rk_init(s, P_CHECK, &h);
		rk_str(&h, "key_check");
		rk_final(&h, key);
		rc = seal(key, (const uint8_t *)STORE_CHECK_TEXT,
			  sizeof(STORE_CHECK_TEXT) - 1, &b, &blen);
		if (rc < 0)
			goto out;
		rc = prepare(s, ins, &st);
		if (rc < 0)
			goto out;
		rc = bind_blob(st, 1, b, blen);
		if (rc < 0)
			goto out;
		rc = step_done(s, st);
		if (rc < 0)
			goto out;
		rc = exec(s, "PRAGMA user_version = 1");
		if (rc < 0)
			goto out;
		version = 1;
	}
	/* Each later version: its schema, then its number, in this
	 * transaction. */
	for (v = 2; v <= STORE_SCHEMA_VERSION; v++) {
		char pragma[40];

		if (version >= v)
			continue;
		snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", v);
		rc = exec(s, schema_upgrades[v - 2]);
		if (rc == 0)
			rc = exec(s, pragma);
		if (rc < 0)
			goto out;
	}
	rc = exec(s, "COMMIT");
out:
	if (rc < 0)
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_finalize(st);
	bv_free(b);
	bv_wipe(key, sizeof(key));
	return rc;
}

static int
set_wal(struct bv_store *s)
{
	sqlite3_stmt *st = NULL;
	const unsigned char *mode;
	int rc;

	rc = prepare(s, "PRAGMA journal_mode = WAL", &st);
	if (rc < 0)
		return rc;
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		rc = db_error(s, rc);
		goto out;
	}
	mode = sqlite3_column_text(st, 0);
	rc = mode && strcmp((const char *)mode, "wal") == 0 ? 0 : BV_EIO;
out:
	sqlite3_finalize(st);
	return rc;
}

int
bv_store_open(const char *path, const uint8_t key[BV_STORE_KEY_LEN],
	      struct bv_store **out)
{
	struct bv_store *s = NULL;
	int fd, rc, i;

	if (!path || !key || !out)
		return BV_EINVAL;
	if (sodium_init() < 0)
		return BV_EIO;
	s = bv_calloc(1, sizeof(*s));
	if (!s)
		return BV_ENOMEM;
	for (i = 1; i < P_COUNT; i++)
		crypto_kdf_derive_from_key(s->sub[i], sizeof(s->sub[i]),
					   (uint64_t)i, STORE_KDF_CONTEXT, key);

	/* Create it 0600 ourselves: SQLite would use the umask (and gives
	 * the -wal and -shm files the mode of the database). */
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		bv_log(BV_LOG_ERR, "store: cannot open %s", path);
		rc = BV_EIO;
		goto out;
	}
	close(fd);

	rc = sqlite3_open_v2(path, &s->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				     SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK) {
		rc = s->db ? db_error(s, rc)
			   : (rc == SQLITE_NOMEM ? BV_ENOMEM : BV_EIO);
		goto out;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, 5000);
	rc = set_wal(s);
	if (rc < 0)
		goto out;
	rc = exec(s, "PRAGMA synchronous = FULL;"
		     "PRAGMA foreign_keys = ON;"
		     "PRAGMA secure_delete = ON;");
	if (rc < 0)
		goto out;
	rc = create_schema(s);
	if (rc < 0)
		goto out;
	rc = check_key(s);
	if (rc < 0)
		goto out;
	*out = s;
	s = NULL;
out:
	bv_store_close(s);
	return rc;
}

void
bv_store_close(struct bv_store *s)
{
	if (!s)
		return;
	if (s->db) {
		if (!sqlite3_get_autocommit(s->db))
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		sqlite3_close_v2(s->db);
	}
	bv_wipe(s, sizeof(*s));
	bv_free(s);
}

int
bv_store_begin(struct bv_store *s)
{
	if (!s || !sqlite3_get_autocommit(s->db))
		return BV_EINVAL;
	return exec(s, "BEGIN IMMEDIATE");
}

int
bv_store_commit(struct bv_store *s)
{
	if (!s || sqlite3_get_autocommit(s->db))
		return BV_EINVAL;
	return exec(s, "COMMIT");
}

int
bv_store_rollback(struct bv_store *s)
{
	if (!s || sqlite3_get_autocommit(s->db))
		return BV_EINVAL;
	return exec(s, "ROLLBACK");
}

/* --- our identity ------------------------------------------------------- */

static void
local_id_key(struct bv_store *s, const char *part, uint32_t reg,
	     uint8_t key[crypto_secretbox_KEYBYTES])
{
	crypto_generichash_state h;

	rk_init(s, P_LOCAL_ID, &h);
	rk_str(&h, part);
	rk_int(&h, reg);
	rk_final(&h, key);
}

int
bv_store_identity_put(struct bv_store *s, const uint8_t *pub, size_t pub_len,
		      const uint8_t *priv, size_t priv_len,
		      uint32_t registration_id)
{
	static const char sql[] =
		"INSERT OR REPLACE INTO local_identity"
		" (id, registration_id, pub, priv) VALUES (1, ?, ?, ?)";
	uint8_t key[crypto_secretbox_KEYBYTES];
	sqlite3_stmt *st = NULL;
	uint8_t *sp = NULL, *sk = NULL;
	size_t sp_len = 0, sk_len = 0;
	int rc;

	if (!s || !pub || !pub_len || !priv || !priv_len)
		return BV_EINVAL;
	local_id_key(s, "pub", registration_id, key);
	rc = seal(key, pub, pub_len, &sp, &sp_len);
	if (rc < 0)
		goto out;
	local_id_key(s, "priv", registration_id, key);
	rc = seal(key, priv, priv_len, &sk, &sk_len);
	if (rc < 0)
		goto out;
	rc = prepare(s, sql, &st);
	if (rc < 0)
		goto out;
	sqlite3_bind_int64(st, 1, registration_id);
	rc = bind_blob(st, 2, sp, sp_len);
	if (rc == 0)
		rc = bind_blob(st, 3, sk, sk_len);
	if (rc == 0)
		rc = step_done(s, st);
out:
	sqlite3_finalize(st);
	bv_free(sp);
	bv_free(sk);
	bv_wipe(key, sizeof(key));
	return rc;
}

int
bv_store_identity_get(struct bv_store *s, uint8_t **pub, size_t *pub_len,
		      uint8_t **priv, size_t *priv_len,
		      uint32_t *registration_id)
{
	static const char sql[] = "SELECT registration_id, pub, priv"
				  " FROM local_identity WHERE id = 1";
	uint8_t key[crypto_secretbox_KEYBYTES];
	sqlite3_stmt *st = NULL;
	uint8_t *p = NULL, *k = NULL;
	size_t p_len = 0, k_len = 0;
	uint32_t reg;
	int rc;

	if (!s || !pub || !pub_len || !priv || !priv_len || !registration_id)
		return BV_EINVAL;
	rc = prepare(s, sql, &st);
	if (rc < 0)
		goto out;
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		rc = rc == SQLITE_DONE ? BV_EINVAL : db_error(s, rc);
		goto out;
	}
	reg = (uint32_t)sqlite3_column_int64(st, 0);
	local_id_key(s, "pub", reg, key);
	rc = unseal(key, sqlite3_column_blob(st, 1),
		    (size_t)sqlite3_column_bytes(st, 1), &p, &p_len);
	if (rc < 0)
		goto out;
	local_id_key(s, "priv", reg, key);
	rc = unseal(key, sqlite3_column_blob(st, 2),
		    (size_t)sqlite3_column_bytes(st, 2), &k, &k_len);
	if (rc < 0)
		goto out;
	*pub = p;
	*pub_len = p_len;
	*priv = k;
	*priv_len = k_len;
	*registration_id = reg;
	p = NULL;
	k = NULL;
out:
	sqlite3_finalize(st);
	bv_free(p);
	if (k)
		bv_wipe(k, k_len);
	bv_free(k);
	bv_wipe(key, sizeof(key));
	return rc;
}

/* --- prekeys ------------------------------------------------------------ */

static void
prekey_key(struct bv_store *s, int is_signed, uint32_t id,
	   uint8_t key[crypto_secretbox_KEYBYTES])
{
	crypto_generichash_state h;

	rk_init(s, is_signed ? P_SIGNED_PREKEY : P_PREKEY, &h);
	rk_int(&h, id);
	rk_final(&h, key);
}

int
bv_store_prekey_put(struct bv_store *s, int is_signed, uint32_t id,
		    const uint8_t *rec, size_t len)
{
	uint8_t key[crypto_secretbox_KEYBYTES];
	sqlite3_stmt *st = NULL;
	uint8_t *b = NULL;
	size_t blen = 0;
	int rc;

	if (!s || !rec || !len)
		return BV_EINVAL;
	prekey_key(s, is_signed, id, key);
	rc = seal(key, rec, len, &b, &blen);
	if (rc < 0)
		goto out;
	rc = prepare(s,
		     is_signed ? "INSERT OR REPLACE INTO signed_pre_keys"
				 " (id, record) VALUES (?, ?)"
			       : "INSERT OR REPLACE INTO pre_keys"
				 " (id, record) VALUES (?, ?)",
		     &st);
	if (rc < 0)
		goto out;
	sqlite3_bind_int64(st, 1, id);
	rc = bind_blob(st, 2, b, blen);
	if (rc == 0)
		rc = step_done(s, st);
out:
	sqlite3_finalize(st);
	bv_free(b);
	bv_wipe(key, sizeof(key));
	return rc;
}

static int
prekey_load(struct bv_store *s, int is_signed, uint32_t id, uint8_t **rec,
	    size_t *len, int *found)
{
	uint8_t key[crypto_secretbox_KEYBYTES];
	sqlite3_stmt *st = NULL;
	int rc;

	*found = 0;
	rc = prepare(s,
		     is_signed
			     ? "SELECT record FROM signed_pre_keys WHERE id = ?"
			     : "SELECT record FROM pre_keys WHERE id = ?",
		     &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		rc = 0;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		rc = db_error(s, rc);
		goto out;
	}
	prekey_key(s, is_signed, id, key);
	rc = unseal(key, sqlite3_column_blob(st, 0),
		    (size_t)sqlite3_column_bytes(st, 0), rec, len);
	bv_wipe(key, sizeof(key));
	if (rc == 0)
		*found = 1;
out:
	sqlite3_finalize(st);
	return rc;
}

int
bv_store_prekey_get(struct bv_store *s, int is_signed, uint32_t id,
		    uint8_t **rec, size_t *len)
{
	int rc, found;

	if (!s || !rec || !len)
		return BV_EINVAL;
	rc = prekey_load(s, is_signed, id, rec, len, &found);
	if (rc == 0 && !found)
		rc = BV_EINVAL;
	return rc;
}

int
bv_store_prekey_contains(struct bv_store *s, int is_signed, uint32_t id,
			 int *found)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (!s || !found)
		return BV_EINVAL;
	rc = prepare(s,
		     is_signed ? "SELECT 1 FROM signed_pre_keys WHERE id = ?"
			       : "SELECT 1 FROM pre_keys WHERE id = ?",
		     &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
		*found = rc == SQLITE_ROW;
		rc = 0;
	} else {
		rc = db_error(s, rc);
	}
	sqlite3_finalize(st);
	return rc;
}

static int
prekey_delete(struct bv_store *s, int is_signed, uint32_t id, int below)
{
	static const char *const sql[2][2] = {
		{"DELETE FROM pre_keys WHERE id = ?",
		 "DELETE FROM pre_keys WHERE id < ?"},
		{"DELETE FROM signed_pre_keys WHERE id = ?",
		 "DELETE FROM signed_pre_keys WHERE id < ?"},
	};
	sqlite3_stmt *st = NULL;
	int rc;

	if (!s)
		return BV_EINVAL;
	rc = prepare(s, sql[!!is_signed][!!below], &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	rc = step_done(s, st);
	sqlite3_finalize(st);
	return rc;
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

static void
addr_key(struct bv_store *s, enum store_purpose p, const char *name,
	 int32_t device_id, uint8_t key[crypto_secretbox_KEYBYTES])
{
	crypto_generichash_state h;

	rk_init(s, p, &h);
	rk_str(&h, name);
	rk_int(&h, device_id);
	rk_final(&h, key);
}

int
bv_store_session_store(struct bv_store *s, const char *name, int32_t device_id,
		       const uint8_t *rec, size_t len, const uint8_t *user,
		       size_t user_len)
{
	static const char sql[] =
		"INSERT OR REPLACE INTO sessions"
		" (name, device_id, record, user_record) VALUES (?, ?, ?, ?)";
	uint8_t key[crypto_secretbox_KEYBYTES];
	sqlite3_stmt *st = NULL;
	uint8_t *b = NULL, *u = NULL;
	size_t blen = 0, ulen = 0;
	int rc;

	if (!s || !name || !rec || !len || (!user && user_len))
		return BV_EINVAL;
	addr_key(s, P_SESSION, name, device_id, key);
	rc = seal(key, rec, len, &b, &blen);
	if (rc < 0)
		goto out;
	if (user) {
		addr_key(s, P_SESSION_USER, name, device_id, key);
		rc = seal(key, user, user_len, &u, &ulen);
		if (rc < 0)
			goto out;
	}
	rc = prepare(s, sql, &st);
	if (rc < 0)
		goto out;
	if (sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK) {
		rc = BV_ENOMEM;
		goto out;
	}
	sqlite3_bind_int64(st, 2, device_id);
	rc = bind_blob(st, 3, b, blen);
	if (rc == 0 && u)
		rc = bind_blob(st, 4, u, ulen);
	if (rc == 0)
		rc = step_done(s, st);
out:
	sqlite3_finalize(st);
	bv_free(b);
	bv_free(u);
	bv_wipe(key, sizeof(key));
	return rc;
}

int
bv_store_session_load(struct bv_store *s, const char *name, int32_t device_id,
		      uint8_t **rec, size_t *len, uint8_t **user,
		      size_t *user_len, int *found)
{
	static const char sql[] = "SELECT record, user_record FROM sessions"
				  " WHERE name = ? AND device_id = ?";
	uint8_t key[crypto_secretbox_KEYBYTES];
	sqlite3_stmt *st = NULL;
	uint8_t *r = NULL, *u = NULL;
	size_t rlen = 0, ulen = 0;
	int rc;

	if (!s || !name || !rec || !len || !user || !user_len || !found)
		return BV_EINVAL;
	rc = select_addr(s, sql, name, device_id, &st);
	if (rc <= 0) {
		*found = 0;
		goto out;
	}
	addr_key(s, P_SESSION, name, device_id, key);
	rc = unseal(key, sqlite3_column_blob(st, 0),
		    (size_t)sqlite3_column_bytes(st, 0), &r, &rlen);
	if (rc < 0)
		goto out;
	if (sqlite3_column_type(st, 1) != SQLITE_NULL) {
		addr_key(s, P_SESSION_USER, name, device_id, key);
		rc = unseal(key, sqlite3_column_blob(st, 1),
			    (size_t)sqlite3_column_bytes(st, 1), &u, &ulen);
		if (rc < 0)
			goto out;
	}
	*rec = r;
	*len = rlen;
	*user = u;
	*user_len = ulen;
	*found = 1;
	r = NULL;
	u = NULL;
out:
	sqlite3_finalize(st);
	if (r)
		bv_wipe(r, rlen);
	bv_free(r);
	if (u)
		bv_wipe(u, ulen);
	bv_free(u);
	bv_wipe(key, sizeof(key));
	return rc;
}

int
bv_store_session_contains(struct bv_store *s, const char *name,
			  int32_t device_id, int *found)
{
	static const char sql[] =
		"SELECT 1 FROM sessions WHERE name = ? AND device_id = ?";
	sqlite3_stmt *st = NULL;
	int rc;

	if (!s || !name || !found)
		return BV_EINVAL;
	rc = select_addr(s, sql, name, device_id, &st);
	if (rc < 0)
		return rc;
	*found = rc;
	sqlite3_finalize(st);
	return 0;
}

/* Deletes sessions of name: one device, or all when all is set. */
static int
session_delete(struct bv_store *s, const char *name, int32_t device_id, int all,
	       int *deleted)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (!s || !name)
		return BV_EINVAL;
	rc = prepare(
		s,
		all ? "DELETE FROM sessions WHERE name = ?"
		    : "DELETE FROM sessions WHERE name = ? AND device_id = ?",
		&st);
	if (rc < 0)
		return rc;
	if (sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK) {
		rc = BV_ENOMEM;
		goto out;
	}
	if (!all)
		sqlite3_bind_int64(st, 2, device_id);
	rc = step_done(s, st);
	if (rc == 0 && deleted)
		*deleted = sqlite3_changes(s->db);
out:
	sqlite3_finalize(st);
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
	static const char sql[] = "SELECT device_id FROM sessions"
				  " WHERE name = ? ORDER BY device_id";
	sqlite3_stmt *st = NULL;
	int32_t *v = NULL, *nv;
	size_t count = 0, cap = 0;
	int rc;

	if (!s || !name || !ids || !n)
		return BV_EINVAL;
	rc = prepare(s, sql, &st);
	if (rc < 0)
		return rc;
	if (sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK) {
		rc = BV_ENOMEM;
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (count == cap) {
			cap = cap ? cap * 2 : 4;
			nv = bv_realloc(v, cap * sizeof(*v));
			if (!nv) {
				rc = BV_ENOMEM;
				goto out;
			}
			v = nv;
		}
		v[count++] = (int32_t)sqlite3_column_int64(st, 0);
	}
	if (rc != SQLITE_DONE) {
		rc = db_error(s, rc);
		goto out;
	}
	*ids = v;
	*n = count;
	v = NULL;
	rc = 0;
out:
	bv_free(v);
	sqlite3_finalize(st);
	return rc;
}

/* --- peer identities ---------------------------------------------------- */

/* Loads the stored key of (name, device_id); *found = 0 when none. */
static int
peer_id_load(struct bv_store *s, const char *name, int32_t device_id,
	     uint8_t **key_out, size_t *len, int *found)
{
	static const char sql[] = "SELECT identity_key FROM peer_identities"
				  " WHERE name = ? AND device_id = ?";
	uint8_t key[crypto_secretbox_KEYBYTES];
	sqlite3_stmt *st = NULL;
	int rc;

	*found = 0;
	rc = select_addr(s, sql, name, device_id, &st);
	if (rc <= 0)
		return rc;
	addr_key(s, P_PEER_ID, name, device_id, key);
	rc = unseal(key, sqlite3_column_blob(st, 0),
		    (size_t)sqlite3_column_bytes(st, 0), key_out, len);
	bv_wipe(key, sizeof(key));
	if (rc == 0)
		*found = 1;
	sqlite3_finalize(st);
	return rc;
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
	uint8_t *stored = NULL;
	size_t stored_len = 0;
	int rc, found;

	if (!s || !name || !key || !len || !trust)
		return BV_EINVAL;
	rc = peer_id_load(s, name, device_id, &stored, &stored_len, &found);
	if (rc < 0)
		return rc;
	if (!found)
		*trust = BV_TRUST_NEW;
	else if (stored_len == len && sodium_memcmp(stored, key, len) == 0)
		*trust = BV_TRUST_SAME;
	else
		*trust = BV_TRUST_CHANGED;
	bv_free(stored);
	return 0;
}

static int
peer_id_write(struct bv_store *s, const char *name, int32_t device_id,
	      const uint8_t *k, size_t len)
{
	/* first_seen_ms survives an accepted change. */
	static const char sql[] =
		"INSERT INTO peer_identities (name, device_id, identity_key,"
		" first_seen_ms, accepted_ms) VALUES (?1, ?2, ?3, ?4, ?4)"
		" ON CONFLICT (name, device_id) DO UPDATE SET"
		" identity_key = excluded.identity_key,"
		" accepted_ms = excluded.accepted_ms";
	uint8_t key[crypto_secretbox_KEYBYTES];
	sqlite3_stmt *st = NULL;
	uint8_t *b = NULL;
	size_t blen = 0;
	int rc;

	addr_key(s, P_PEER_ID, name, device_id, key);
	rc = seal(key, k, len, &b, &blen);
	if (rc < 0)
		goto out;
	rc = prepare(s, sql, &st);
	if (rc < 0)
		goto out;
	if (sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK) {
		rc = BV_ENOMEM;
		goto out;
	}
	sqlite3_bind_int64(st, 2, device_id);
	sqlite3_bind_int64(st, 4, bv_now_ms());
	rc = bind_blob(st, 3, b, blen);
	if (rc == 0)
		rc = step_done(s, st);
out:
	sqlite3_finalize(st);
	bv_free(b);
	bv_wipe(key, sizeof(key));
	return rc;
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
	static const char sql[] =
		"INSERT INTO seen (sender, sender_device, message_id, seen_ms)"
		" VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING";
	sqlite3_stmt *st = NULL;
	int rc;

	if (!s || !sender || !message_id || !was_seen)
		return BV_EINVAL;
	rc = prepare(s, sql, &st);
	if (rc < 0)
		return rc;
	if (sqlite3_bind_text(st, 1, sender, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(st, 3, message_id, -1, SQLITE_STATIC) !=
		    SQLITE_OK) {
		rc = BV_ENOMEM;
		goto out;
	}
	sqlite3_bind_int64(st, 2, sender_device);
	sqlite3_bind_int64(st, 4, bv_now_ms());
	rc = step_done(s, st);
	if (rc == 0)
		*was_seen = sqlite3_changes(s->db) == 0;
out:
	sqlite3_finalize(st);
	return rc;
}

static void
history_key(struct bv_store *s, const char *conversation, int direction,
	    const char *sender, int32_t sender_device, const char *message_id,
	    int64_t ts, uint8_t key[crypto_secretbox_KEYBYTES])
{
	crypto_generichash_state h;

	rk_init(s, P_HISTORY, &h);
	rk_str(&h, conversation);
	rk_int(&h, direction);
	rk_str(&h, sender);
	rk_int(&h, sender_device);
	rk_str(&h, message_id);
	rk_int(&h, ts);
	rk_final(&h, key);
}

static int
state_valid(int state)
{
	return state >= BV_MSG_SENDING && state <= BV_MSG_RECEIVED;
}

int
bv_store_history_append(struct bv_store *s, const char *conversation,
			enum bv_msg_direction direction, const char *sender,
			int32_t sender_device, const char *message_id,
			int64_t timestamp_ms, const uint8_t *body,
			size_t body_len, enum bv_msg_state state, int64_t *seq)
{
	static const char sql[] =
		"INSERT INTO history (conversation, direction, sender,"
		" sender_device, message_id, timestamp_ms, state, body)"
		" VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
	uint8_t key[crypto_secretbox_KEYBYTES];
	sqlite3_stmt *st = NULL;
	uint8_t *b = NULL;
	size_t blen = 0;
	int rc;

	if (!s || !conversation || !sender || !message_id ||
	    (!body && body_len) || !state_valid((int)state) ||
	    (direction != BV_MSG_IN && direction != BV_MSG_OUT))
		return BV_EINVAL;
	history_key(s, conversation, (int)direction, sender, sender_device,
		    message_id, timestamp_ms, key);
	rc = seal(key, body, body_len, &b, &blen);
	if (rc < 0)
		goto out;
	rc = prepare(s, sql, &st);
	if (rc < 0)
		goto out;
	if (sqlite3_bind_text(st, 1, conversation, -1, SQLITE_STATIC) !=
		    SQLITE_OK ||
	    sqlite3_bind_text(st, 3, sender, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(st, 5, message_id, -1, SQLITE_STATIC) !=
		    SQLITE_OK) {
		rc = BV_ENOMEM;
		goto out;
	}
	sqlite3_bind_int(st, 2, (int)direction);
	sqlite3_bind_int64(st, 4, sender_device);
	sqlite3_bind_int64(st, 6, timestamp_ms);
	sqlite3_bind_int(st, 7, (int)state);
	rc = bind_blob(st, 8, b, blen);
	if (rc == 0)
		rc = step_done(s, st);
	if (rc == 0 && seq)
		*seq = sqlite3_last_insert_rowid(s->db);
out:
	sqlite3_finalize(st);
	bv_free(b);
	bv_wipe(key, sizeof(key));
	return rc;
}

#define HISTORY_COLUMNS                                                        \
	"SELECT seq, conversation, direction, sender, sender_device,"          \
	" message_id, timestamp_ms, state, body, (SELECT j.journal FROM"       \
	" journaled j WHERE j.message_id = history.message_id) FROM history"

/* Steps st (a HISTORY_COLUMNS query, bound) and calls cb for each row with
 * its body opened; finalizes st. */
static int
history_each(struct bv_store *s, sqlite3_stmt *st, bv_history_cb cb, void *arg)
{
	uint8_t key[crypto_secretbox_KEYBYTES];
	struct bv_history_entry e;
	uint8_t *body = NULL;
	size_t len = 0;
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&e, 0, sizeof(e));
		e.seq = sqlite3_column_int64(st, 0);
		e.conversation = (const char *)sqlite3_column_text(st, 1);
		e.direction = (enum bv_msg_direction)sqlite3_column_int(st, 2);
		e.sender = (const char *)sqlite3_column_text(st, 3);
		e.sender_device = (int32_t)sqlite3_column_int64(st, 4);
		e.message_id = (const char *)sqlite3_column_text(st, 5);
		e.timestamp_ms = sqlite3_column_int64(st, 6);
		e.state = (enum bv_msg_state)sqlite3_column_int(st, 7);
		e.journal = (const char *)sqlite3_column_text(st, 9);
		if (!e.conversation || !e.sender || !e.message_id) {
			rc = BV_ENOMEM;
			goto out;
		}
		history_key(s, e.conversation, (int)e.direction, e.sender,
			    e.sender_device, e.message_id, e.timestamp_ms, key);
		rc = unseal(key, sqlite3_column_blob(st, 8),
			    (size_t)sqlite3_column_bytes(st, 8), &body, &len);
		if (rc < 0)
			goto out;
		e.body = body;
		e.body_len = len;
		rc = cb(&e, arg);
		bv_wipe(body, len);
		bv_free(body);
		body = NULL;
		if (rc != 0)
			goto out;
	}
	if (rc != SQLITE_DONE) {
		rc = db_error(s, rc);
		goto out;
	}
	rc = 0;
out:
	bv_free(body);
	sqlite3_finalize(st);
	bv_wipe(key, sizeof(key));
	return rc;
}

/* Runs a HISTORY_COLUMNS query with up to two parameters: text (when not
 * NULL) and then num (when the query has a second one). */
static int
history_query(struct bv_store *s, const char *sql, const char *text,
	      int64_t num, bv_history_cb cb, void *arg)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = prepare(s, sql, &st);
	if (rc < 0)
		return rc;
	if (text &&
	    sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC) != SQLITE_OK) {
		sqlite3_finalize(st);
		return BV_ENOMEM;
	}
	if (sqlite3_bind_parameter_count(st) >= 2)
		sqlite3_bind_int64(st, 2, num);
	return history_each(s, st, cb, arg);
}

int
bv_store_history_list(struct bv_store *s, const char *conversation,
		      int64_t after_seq, bv_history_cb cb, void *arg)
{
	if (!s || !conversation || !cb)
		return BV_EINVAL;
	return history_query(s,
			     HISTORY_COLUMNS " WHERE conversation = ? AND "
					     "seq > ? ORDER BY seq",
			     conversation, after_seq, cb, arg);
}

int
bv_store_conversations(struct bv_store *s, bv_conversation_cb cb, void *arg)
{
	static const char sql[] =
		"SELECT h.conversation, h.seq, h.timestamp_ms, c.n FROM"
		" (SELECT conversation, max(seq) AS last, count(*) AS n"
		"  FROM history GROUP BY conversation) AS c"
		" JOIN history AS h ON h.seq = c.last ORDER BY h.seq DESC";
	struct bv_conversation_entry e;
	sqlite3_stmt *st = NULL;
	int rc;

	if (!s || !cb)
		return BV_EINVAL;
	rc = prepare(s, sql, &st);
	if (rc < 0)
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		e.conversation = (const char *)sqlite3_column_text(st, 0);
		e.last_seq = sqlite3_column_int64(st, 1);
		e.last_timestamp_ms = sqlite3_column_int64(st, 2);
		e.n_messages = sqlite3_column_int64(st, 3);
		if (!e.conversation) {
			rc = BV_ENOMEM;
			goto out;
		}
		rc = cb(&e, arg);
		if (rc != 0)
			goto out;
	}
	rc = rc == SQLITE_DONE ? 0 : db_error(s, rc);
out:
	sqlite3_finalize(st);
	return rc;
}

int
bv_store_history_find(struct bv_store *s, const char *message_id,
		      bv_history_cb cb, void *arg)
{
	if (!s || !message_id || !cb)
		return BV_EINVAL;
	return history_query(
		s, HISTORY_COLUMNS " WHERE message_id = ? ORDER BY seq",
		message_id, 0, cb, arg);
}

int
bv_store_history_unsent(struct bv_store *s, bv_history_cb cb, void *arg)
{
	if (!s || !cb)
		return BV_EINVAL;
	return history_query(s,
			     HISTORY_COLUMNS
			     " WHERE direction = 1 AND state = 0 ORDER BY seq",
			     NULL, 0, cb, arg);
}

int
bv_store_out_recipients_put(struct bv_store *s, int64_t seq,
			    const char *const *accounts, size_t n)
{
	static const char sql[] = "INSERT OR IGNORE INTO out_recipients"
				  " (seq, account) VALUES (?, ?)";
	sqlite3_stmt *st = NULL;
	size_t i;
	int rc;

	if (!s || (!accounts && n))
		return BV_EINVAL;
	for (i = 0; i < n; i++)
		if (!accounts[i] || !bv_uuid_valid(accounts[i]))
			return BV_EINVAL;
	rc = prepare(s, sql, &st);
	if (rc < 0)
		return rc;
	for (i = 0; i < n && rc == 0; i++) {
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, seq);
		if (sqlite3_bind_text(st, 2, accounts[i], -1, SQLITE_STATIC) !=
		    SQLITE_OK) {
			rc = BV_ENOMEM;
			break;
		}
		rc = sqlite3_step(st);
		if ((rc & 0xff) == SQLITE_CONSTRAINT)
			rc = BV_EINVAL; /* seq is not in the history */
		else
			rc = rc == SQLITE_DONE ? 0 : db_error(s, rc);
	}
	sqlite3_finalize(st);
	return rc;
}

int
bv_store_out_recipients_get(struct bv_store *s, int64_t seq,
			    char (**accounts)[BV_UUID_LEN + 1], size_t *n)
{
	static const char sql[] = "SELECT account FROM out_recipients"
				  " WHERE seq = ? ORDER BY account";
	char(*a)[BV_UUID_LEN + 1] = NULL;
	sqlite3_stmt *st = NULL;
	size_t cap = 0, k = 0;
	const char *txt;
	int rc;

	if (!s || !accounts || !n)
		return BV_EINVAL;
	*accounts = NULL;
	*n = 0;
	rc = prepare(s, sql, &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, seq);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		txt = (const char *)sqlite3_column_text(st, 0);
		if (!txt || strlen(txt) != BV_UUID_LEN) {
			rc = txt ? BV_EIO : BV_ENOMEM;
			goto out;
		}
		if (k == cap) {
			void *p;

			cap = cap ? cap * 2 : 4;
			p = bv_realloc(a, cap * sizeof(*a));
			if (!p) {
				rc = BV_ENOMEM;
				goto out;
			}
			a = p;
		}
		memcpy(a[k++], txt, BV_UUID_LEN + 1);
	}
	if (rc != SQLITE_DONE) {
		rc = db_error(s, rc);
		goto out;
	}
	*accounts = a;
	*n = k;
	a = NULL;
	rc = 0;
out:
	bv_free(a);
	sqlite3_finalize(st);
	return rc;
}

/* --- the case view ------------------------------------------------------ */

static void
case_key(struct bv_store *s, const char *case_id,
	 uint8_t key[crypto_secretbox_KEYBYTES])
{
	crypto_generichash_state h;

	rk_init(s, P_CASE, &h);
	rk_str(&h, case_id);
	rk_final(&h, key);
}

int
bv_store_case_put(struct bv_store *s, const char *case_id, const char *view,
		  size_t len)
{
	static const char sql[] =
		"INSERT OR REPLACE INTO cases (case_id, view) VALUES (?, ?)";
	uint8_t key[crypto_secretbox_KEYBYTES];
	sqlite3_stmt *st = NULL;
	uint8_t *b = NULL;
	size_t blen = 0;
	int rc;

	if (!s || !case_id || !bv_uuid_valid(case_id) || !view || !len)
		return BV_EINVAL;
	case_key(s, case_id, key);
	rc = seal(key, (const uint8_t *)view, len, &b, &blen);
	if (rc < 0)
		goto out;
	rc = prepare(s, sql, &st);
	if (rc < 0)
		goto out;
	if (sqlite3_bind_text(st, 1, case_id, -1, SQLITE_STATIC) != SQLITE_OK) {
		rc = BV_ENOMEM;
		goto out;
	}
	rc = bind_blob(st, 2, b, blen);
	if (rc == 0)
		rc = step_done(s, st);
out:
	sqlite3_finalize(st);
	bv_free(b);
	bv_wipe(key, sizeof(key));
	return rc;
}

int
bv_store_case_delete(struct bv_store *s, const char *case_id)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (!s || (case_id && !bv_uuid_valid(case_id)))
		return BV_EINVAL;
	rc = prepare(s,
		     case_id ? "DELETE FROM cases WHERE case_id = ?"
			     : "DELETE FROM cases",
		     &st);
	if (rc < 0)
		return rc;
	if (case_id &&
	    sqlite3_bind_text(st, 1, case_id, -1, SQLITE_STATIC) != SQLITE_OK)
		rc = BV_ENOMEM;
	if (rc == 0)
		rc = step_done(s, st);
	sqlite3_finalize(st);
	return rc;
}

int
bv_store_cases(struct bv_store *s, bv_case_cb cb, void *arg)
{
	static const char sql[] =
		"SELECT case_id, view FROM cases ORDER BY case_id";
	uint8_t key[crypto_secretbox_KEYBYTES];
	sqlite3_stmt *st = NULL;
	const char *id;
	uint8_t *pt = NULL;
	size_t len = 0;
	int rc;

	if (!s || !cb)
		return BV_EINVAL;
	rc = prepare(s, sql, &st);
	if (rc < 0)
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		id = (const char *)sqlite3_column_text(st, 0);
		if (!id) {
			rc = BV_ENOMEM;
			goto out;
		}
		case_key(s, id, key);
		rc = unseal(key, sqlite3_column_blob(st, 1),
			    (size_t)sqlite3_column_bytes(st, 1), &pt, &len);
		if (rc < 0)
			goto out;
		pt[len] = '\0'; /* unseal leaves a spare byte */
		rc = cb(id, (const char *)pt, len, arg);
		bv_wipe(pt, len);
		bv_free(pt);
		pt = NULL;
		if (rc != 0)
			goto out;
	}
	rc = rc == SQLITE_DONE ? 0 : db_error(s, rc);
out:
	bv_free(pt);
	sqlite3_finalize(st);
	bv_wipe(key, sizeof(key));
	return rc;
}

int
bv_store_journaled_put(struct bv_store *s, const char *message_id,
		       const char *journal, int64_t at_ms)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (!s || !message_id || !journal || !*journal)
		return BV_EINVAL;
	/* The first reference stays: a repeated receipt changes nothing. */
	rc = prepare(s,
		     "INSERT INTO journaled (message_id, journal, at_ms) "
		     "VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
		     &st);
	if (rc < 0)
		return rc;
	if (sqlite3_bind_text(st, 1, message_id, -1, SQLITE_STATIC) !=
		    SQLITE_OK ||
	    sqlite3_bind_text(st, 2, journal, -1, SQLITE_STATIC) != SQLITE_OK) {
		sqlite3_finalize(st);
		return BV_ENOMEM;
	}
	sqlite3_bind_int64(st, 3, at_ms);
	rc = step_done(s, st);
	sqlite3_finalize(st);
	return rc;
}

int
bv_store_history_set_state(struct bv_store *s, int64_t seq,
			   enum bv_msg_state state)
{
	static const char sql[] = "UPDATE history SET state = ? WHERE seq = ?";
	sqlite3_stmt *st = NULL;
	int rc;

	if (!s || !state_valid((int)state))
		return BV_EINVAL;
	rc = prepare(s, sql, &st);
	if (rc < 0)
		return rc;
	sqlite3_bind_int(st, 1, (int)state);
	sqlite3_bind_int64(st, 2, seq);
	rc = step_done(s, st);
	if (rc == 0 && sqlite3_changes(s->db) == 0)
		rc = BV_EINVAL;
	sqlite3_finalize(st);
	return rc;
}

/* --- attachments --------------------------------------------------------- */

static void
attachment_key(struct bv_store *s, int64_t seq, int idx,
	       uint8_t key[crypto_secretbox_KEYBYTES])
{
	crypto_generichash_state h;

	rk_init(s, P_ATTACH, &h);
	rk_int(&h, seq);
	rk_int(&h, idx);
	rk_final(&h, key);
}

int
bv_store_attachment_put(struct bv_store *s, int64_t seq, int idx, int state,
			const uint8_t *rec, size_t len)
{
	static const char sql[] =
		"INSERT OR REPLACE INTO attachments (seq, idx, state, rec)"
		" SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM history"
		" WHERE seq = ?1)";
	uint8_t key[crypto_secretbox_KEYBYTES];
	sqlite3_stmt *st = NULL;
	uint8_t *b = NULL;
	size_t blen = 0;
	int rc;

	if (!s || idx < 0 || idx >= BV_STORE_ATTACHMENTS_MAX || state < 0 ||
	    (!rec && len))
		return BV_EINVAL;
	attachment_key(s, seq, idx, key);
	rc = seal(key, rec, len, &b, &blen);
	if (rc < 0)
		goto out;
	rc = prepare(s, sql, &st);
	if (rc < 0)
		goto out;
	sqlite3_bind_int64(st, 1, seq);
	sqlite3_bind_int(st, 2, idx);
	sqlite3_bind_int(st, 3, state);
	rc = bind_blob(st, 4, b, blen);
	if (rc == 0)
		rc = step_done(s, st);
	if (rc == 0 && sqlite3_changes(s->db) == 0)
		rc = BV_EINVAL; /* seq is not in the history */
out:
	sqlite3_finalize(st);
	bv_free(b);
	bv_wipe(key, sizeof(key));
	return rc;
}

int
bv_store_attachments(struct bv_store *s, int64_t seq, bv_attachment_cb cb,
		     void *arg)
{
	uint8_t key[crypto_secretbox_KEYBYTES];
	sqlite3_stmt *st = NULL;
	uint8_t *pt = NULL;
	size_t len = 0;
	int64_t q;
	int rc, idx;

	if (!s || !cb || seq < 0)
		return BV_EINVAL;
	rc = prepare(s,
		     seq ? "SELECT seq, idx, state, rec FROM attachments"
			   " WHERE seq = ? ORDER BY seq, idx"
			 : "SELECT seq, idx, state, rec FROM attachments"
			   " ORDER BY seq, idx",
		     &st);
	if (rc < 0)
		return rc;
	if (seq)
		sqlite3_bind_int64(st, 1, seq);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		q = sqlite3_column_int64(st, 0);
		idx = sqlite3_column_int(st, 1);
		attachment_key(s, q, idx, key);
		rc = unseal(key, sqlite3_column_blob(st, 3),
			    (size_t)sqlite3_column_bytes(st, 3), &pt, &len);
		if (rc < 0)
			goto out;
		rc = cb(q, idx, sqlite3_column_int(st, 2), pt, len, arg);
		bv_wipe(pt, len);
		bv_free(pt);
		pt = NULL;
		if (rc != 0)
			goto out;
	}
	rc = rc == SQLITE_DONE ? 0 : db_error(s, rc);
out:
	bv_free(pt);
	sqlite3_finalize(st);
	bv_wipe(key, sizeof(key));
	return rc;
}
