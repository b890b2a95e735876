/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * bvfiks-archive-peer.c: the fagsystem's archive, as far as bvchat's tests
 * and make run need one (docs/fiks.md, "The test archive peer"). It
 * consumes its own FIKS IO account, journals each valid arkivmelding.opprett
 * once (SQLite + a directory of documents by SHA-256), answers mottatt and
 * kvittering, ugyldigforespoersel or serverfeil, and can be told to
 * misbehave. It is not an archive: no mapper, no search, no oppdater.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <sqlite3.h>

#include "bv_error.h"
#include "bv_util.h"
#include "fiks_arkiv.h"
#include "fiks_asice.h"
#include "fiks_error.h"
#include "fiks_io.h"

/* Exit codes (--help and docs/fiks.md list them). */
#define EXIT_OK	     0 /* stopped by SIGTERM/SIGINT, or list done */
#define EXIT_RUNTIME 1 /* the store or the account failed */
#define EXIT_USAGE   2 /* bad flags, config or pinned certificate */

#define RECEIVE_MS 500 /* how long one wait for a message lasts */

enum fault {
	FAULT_NONE,
	FAULT_SERVERFEIL,
	FAULT_UGYLDIG,
	FAULT_SILENCE,
	FAULT_DUPLICATE,
	FAULT_NOACK,
};

static const char *const fault_names[] = {
	"none", "serverfeil", "ugyldig", "silence", "duplicate", "noack",
};

struct peer {
	struct fiks_client *client;
	sqlite3 *db;
	const char *store;	/* document directory */
	const char *control;	/* fault control file */
	char *sender_pem;	/* pinned signer, or NULL */
	enum fault fault;	/* the fault in force */
	long fault_left;	/* messages it still applies to; -1: all */
	char control_seen[128]; /* the control file's last applied text */
	int control_read;	/* control_seen is valid */
};

static volatile sig_atomic_t stopping, reread_control;

static void
on_stop(int sig)
{
	(void)sig;
	/* A second signal while draining ends at once. */
	if (stopping)
		_exit(EXIT_OK);
	stopping = 1;
}

static void
on_usr1(int sig)
{
	(void)sig;
	reread_control = 1;
}

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: bvfiks-archive-peer --config FILE --db DB [--store "
		"DIR]\n"
		"                           [--sender-cert PEM] [--fault "
		"MODE[:N]]\n"
		"                           [--control FILE] [--log-level "
		"LEVEL]\n"
		"       bvfiks-archive-peer --db DB list [--json]\n"
		"\n"
		"A test archive on a FIKS IO account: journals each valid\n"
		"no.ks.fiks.arkiv.v1.arkivering.arkivmelding.opprett once and\n"
		"answers .mottatt and .kvittering; a package that fails a "
		"check\n"
		"(CMS, digest, signature, XSD, a missing file) gets\n"
		"no.ks.fiks.arkiv.v1.feilmelding.ugyldigforespoersel.\n"
		"\n"
		"  --config FILE      the account (fiks_config: api_url, "
		"amqp_host, ...)\n"
		"  --db DB            the SQLite store, created when missing\n"
		"  --store DIR        document bytes, named by SHA-256 "
		"(default DB.d)\n"
		"  --sender-cert PEM  refuse packages not signed by this "
		"certificate\n"
		"  --fault MODE[:N]   misbehave for the next N arkivmeldinger "
		"(default:\n"
		"                     all): serverfeil, ugyldig, silence, "
		"duplicate,\n"
		"                     noack, or none\n"
		"  --control FILE     a file holding MODE[:N], applied when "
		"its text\n"
		"                     changes (checked before every message) "
		"and\n"
		"                     again on SIGUSR1 (default DB.fault)\n"
		"  --log-level LEVEL  err, warn, notice (default), info, "
		"debug\n"
		"  list [--json]      print the journalposts of DB and exit\n"
		"  --help             show this text\n"
		"\n"
		"Runs until SIGTERM or SIGINT (a second one exits at once).\n"
		"Exit status: 0 stopped or listed, 1 the store or the account\n"
		"failed, 2 bad usage, config or certificate.\n");
}

/* ---- faults ------------------------------------------------------------- */

/* Parses "MODE[:N]"; returns 0 or -1. */
static int
fault_parse(const char *s, enum fault *mode, long *left)
{
	char name[32];
	const char *colon = strchr(s, ':');
	size_t n = colon != NULL ? (size_t)(colon - s) : strlen(s);
	size_t i;
	char *end;

	if (n == 0 || n >= sizeof(name))
		return -1;
	memcpy(name, s, n);
	name[n] = '\0';
	for (i = 0; i < sizeof(fault_names) / sizeof(fault_names[0]); i++)
		if (strcmp(name, fault_names[i]) == 0)
			break;
	if (i == sizeof(fault_names) / sizeof(fault_names[0]))
		return -1;
	*left = -1;
	if (colon != NULL) {
		errno = 0;
		*left = strtol(colon + 1, &end, 10);
		if (errno != 0 || end == colon + 1 || *end != '\0' || *left < 1)
			return -1;
	}
	*mode = (enum fault)i;
	return 0;
}

/*
 * Re-reads the control file: its first line that is not blank or a
 * # comment is MODE[:N]. Applied when the text differs from what was last
 * applied, or when SIGUSR1 asked (so the same text can re-arm a fault).
 */
static void
control_check(struct peer *p)
{
	char buf[128] = "", line[128];
	enum fault mode;
	long left;
	FILE *f;
	size_t n;
	char *s, *e;
	int forced = reread_control;

	reread_control = 0;
	f = fopen(p->control, "r");
	if (f == NULL)
		return;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	if (!forced && p->control_read && strcmp(buf, p->control_seen) == 0)
		return;
	memcpy(p->control_seen, buf, sizeof(buf));
	p->control_read = 1;
	for (s = strtok(buf, "\n"); s != NULL; s = strtok(NULL, "\n")) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '\0' || *s == '#')
			continue;
		snprintf(line, sizeof(line), "%s", s);
		e = line + strcspn(line, " \t\r#");
		*e = '\0';
		if (fault_parse(line, &mode, &left) < 0) {
			bv_log(BV_LOG_WARN,
			       "archive-peer: control file %s: bad fault "
			       "'%.40s', ignored",
			       p->control, line);
			return;
		}
		p->fault = mode;
		p->fault_left = left;
		bv_log(BV_LOG_NOTICE, "archive-peer: fault %s for %s", line,
		       left < 0 ? "every message" : "the next messages");
		return;
	}
}

/* The fault that applies to this message, counting it. */
static enum fault
fault_take(struct peer *p)
{
	enum fault f = p->fault;

	if (f == FAULT_NONE)
		return f;
	if (p->fault_left > 0 && --p->fault_left == 0)
		p->fault = FAULT_NONE;
	return f;
}

/* ---- the store ---------------------------------------------------------- */

static const char schema_sql[] =
	"PRAGMA journal_mode=WAL;"
	"CREATE TABLE IF NOT EXISTS journalpost ("
	" id INTEGER PRIMARY KEY,"
	" system_id TEXT NOT NULL UNIQUE,"
	" noekkel TEXT UNIQUE,"
	" fagsystem TEXT,"
	" mappe_noekkel TEXT,"
	" klient_melding_id TEXT,"
	" melding_id TEXT NOT NULL,"
	" avsender TEXT NOT NULL,"
	" journalaar INTEGER NOT NULL,"
	" journalsekvensnummer INTEGER NOT NULL,"
	" journalpostnummer INTEGER NOT NULL,"
	" journalposttype TEXT,"
	" tittel TEXT,"
	" skjermet INTEGER NOT NULL,"
	" received_at TEXT NOT NULL,"
	" replays INTEGER NOT NULL DEFAULT 0,"
	" UNIQUE (journalaar, journalsekvensnummer));"
	"CREATE INDEX IF NOT EXISTS journalpost_klient"
	" ON journalpost (klient_melding_id);"
	"CREATE TABLE IF NOT EXISTS dokument ("
	" journalpost_id INTEGER NOT NULL REFERENCES journalpost (id),"
	" nummer INTEGER NOT NULL,"
	" filnavn TEXT NOT NULL,"
	" sha256 TEXT NOT NULL,"
	" bytes INTEGER NOT NULL,"
	" tittel TEXT, visningsnavn TEXT, format TEXT, mime TEXT,"
	" variantformat TEXT, rolle TEXT,"
	" PRIMARY KEY (journalpost_id, nummer));"
	"CREATE TABLE IF NOT EXISTS melding ("
	" melding_id TEXT NOT NULL,"
	" type TEXT NOT NULL,"
	" outcome TEXT NOT NULL,"
	" at TEXT NOT NULL);";

#define STORE_VERSION 2

static int
store_open(const char *path, sqlite3 **out)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int version = -1;

	if (sqlite3_open_v2(path, &db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
			    NULL) != SQLITE_OK)
		goto fail;
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) !=
		    SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW)
		goto fail;
	version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	st = NULL;
	if (version != 0 && version != 1 && version != STORE_VERSION) {
		bv_log(BV_LOG_ERR,
		       "archive-peer: %s has store version %d, "
		       "not %d",
		       path, version, STORE_VERSION);
		sqlite3_close(db);
		return -1;
	}
	/* Version 1 had no document metadata. */
	if (version == 1 &&
	    sqlite3_exec(db,
			 "ALTER TABLE dokument ADD COLUMN tittel TEXT;"
			 "ALTER TABLE dokument ADD COLUMN visningsnavn TEXT;"
			 "ALTER TABLE dokument ADD COLUMN format TEXT;"
			 "ALTER TABLE dokument ADD COLUMN mime TEXT;"
			 "ALTER TABLE dokument ADD COLUMN variantformat TEXT;"
			 "ALTER TABLE dokument ADD COLUMN rolle TEXT;",
			 NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	if (sqlite3_exec(db, schema_sql, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, "PRAGMA user_version=2", NULL, NULL, NULL) !=
		    SQLITE_OK)
		goto fail;
	*out = db;
	return 0;
fail:
	bv_log(BV_LOG_ERR, "archive-peer: store %s: %s", path,
	       db != NULL ? sqlite3_errmsg(db) : "cannot open");
	sqlite3_finalize(st);
	sqlite3_close(db);
	return -1;
}

static void
now_iso(char out[32])
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void
bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s != NULL && *s != '\0')
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

static void
record_melding(struct peer *p, const struct fiks_melding *m,
	       const char *outcome)
{
	sqlite3_stmt *st = NULL;
	char at[32];

	now_iso(at);
	if (sqlite3_prepare_v2(p->db,
			       "INSERT INTO melding (melding_id, type, "
			       "outcome, at) VALUES (?, ?, ?, ?)",
			       -1, &st, NULL) == SQLITE_OK) {
		bind_text(st, 1, m->melding_id);
		bind_text(st, 2, m->type);
		bind_text(st, 3, outcome);
		bind_text(st, 4, at);
		sqlite3_step(st);
	}
	sqlite3_finalize(st);
}

/* An earlier journalpost with this noekkel or klientMeldingId. */
struct existing {
	char system_id[64];
	int aar, seq, nr;
	char fagsystem[128], noekkel[128];
};

/* 1 found, 0 not, -1 error. */
static int
store_find(struct peer *p, const char *noekkel, const char *klient_id,
	   struct existing *e)
{
	sqlite3_stmt *st = NULL;
	int rc = -1, r;

	if (sqlite3_prepare_v2(
		    p->db,
		    "SELECT system_id, journalaar, journalsekvensnummer, "
		    "journalpostnummer, fagsystem, noekkel FROM journalpost "
		    "WHERE (?1 IS NOT NULL AND noekkel = ?1) OR "
		    "(?2 IS NOT NULL AND klient_melding_id = ?2) "
		    "ORDER BY id LIMIT 1",
		    -1, &st, NULL) != SQLITE_OK)
		goto out;
	bind_text(st, 1, noekkel);
	bind_text(st, 2, klient_id);
	r = sqlite3_step(st);
	if (r == SQLITE_DONE) {
		rc = 0;
		goto out;
	}
	if (r != SQLITE_ROW)
		goto out;
	memset(e, 0, sizeof(*e));
	snprintf(e->system_id, sizeof(e->system_id), "%s",
		 (const char *)sqlite3_column_text(st, 0));
	e->aar = sqlite3_column_int(st, 1);
	e->seq = sqlite3_column_int(st, 2);
	e->nr = sqlite3_column_int(st, 3);
	if (sqlite3_column_text(st, 4) != NULL)
		snprintf(e->fagsystem, sizeof(e->fagsystem), "%s",
			 (const char *)sqlite3_column_text(st, 4));
	if (sqlite3_column_text(st, 5) != NULL)
		snprintf(e->noekkel, sizeof(e->noekkel), "%s",
			 (const char *)sqlite3_column_text(st, 5));
	rc = 1;
out:
	sqlite3_finalize(st);
	if (rc == 1) {
		sqlite3_stmt *u = NULL;

		if (sqlite3_prepare_v2(p->db,
				       "UPDATE journalpost SET replays = "
				       "replays + 1 WHERE system_id = ?",
				       -1, &u, NULL) == SQLITE_OK) {
			bind_text(u, 1, e->system_id);
			sqlite3_step(u);
		}
		sqlite3_finalize(u);
	}
	return rc;
}

static void
sha256_hex(const unsigned char *data, size_t len, char hex[65])
{
	unsigned char md[32];
	unsigned int n = 0;
	size_t i;

	EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

/* Writes data to store/<hex> (tmp, fsync, rename) unless it is there. */
static int
store_file(struct peer *p, const char *hex, const unsigned char *data,
	   size_t len)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	size_t off = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", p->store, hex);
	if (access(path, F_OK) == 0)
		return 0;
	snprintf(tmp, sizeof(tmp), "%s/.%s.%ld.tmp", p->store, hex,
		 (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return -1;
	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			close(fd);
			unlink(tmp);
			return -1;
		}
		off += (size_t)w;
	}
	if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* The dokumentbeskrivelse whose file is ref, or NULL. */
static const struct fiks_arkiv_melding_dok *
dok_of(const struct fiks_arkiv_melding *m, const char *ref)
{
	size_t i;

	for (i = 0; ref != NULL && i < m->n_dokumenter; i++)
		if (m->dokumenter[i].referanse != NULL &&
		    strcmp(m->dokumenter[i].referanse, ref) == 0)
			return &m->dokumenter[i];
	return NULL;
}

/*
 * Journals m: new journal numbers, one row per document, the documents'
 * bytes in the store; one transaction. Fills e with what was given.
 */
static int
store_journal(struct peer *p, const struct fiks_melding *fm,
	      const struct fiks_arkiv_melding *m, const struct fiks_asice *a,
	      struct existing *e)
{
	sqlite3_stmt *st = NULL;
	sqlite3_int64 id;
	char at[32];
	struct tm tm;
	time_t t = time(NULL);
	size_t i;
	int rc = -1;

	memset(e, 0, sizeof(*e));
	gmtime_r(&t, &tm);
	e->aar = tm.tm_year + 1900;
	bv_uuid_generate(e->system_id);
	now_iso(at);
	if (sqlite3_exec(p->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
	    SQLITE_OK)
		return -1;
	if (sqlite3_prepare_v2(
		    p->db,
		    "SELECT (SELECT COALESCE(MAX(journalsekvensnummer), 0) + 1 "
		    "FROM journalpost WHERE journalaar = ?1), "
		    "(SELECT COUNT(*) + 1 FROM journalpost WHERE "
		    "mappe_noekkel IS ?2)",
		    -1, &st, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_int(st, 1, e->aar);
	bind_text(st, 2, m->mappe_noekkel);
	if (sqlite3_step(st) != SQLITE_ROW)
		goto out;
	e->seq = sqlite3_column_int(st, 0);
	e->nr = sqlite3_column_int(st, 1);
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_prepare_v2(
		    p->db,
		    "INSERT INTO journalpost (system_id, noekkel, fagsystem, "
		    "mappe_noekkel, klient_melding_id, melding_id, avsender, "
		    "journalaar, journalsekvensnummer, journalpostnummer, "
		    "journalposttype, tittel, skjermet, received_at) VALUES "
		    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		    -1, &st, NULL) != SQLITE_OK)
		goto out;
	bind_text(st, 1, e->system_id);
	bind_text(st, 2, m->noekkel);
	bind_text(st, 3, m->fagsystem);
	bind_text(st, 4, m->mappe_noekkel);
	bind_text(st, 5, fm->klient_melding_id);
	bind_text(st, 6, fm->melding_id);
	bind_text(st, 7, fm->avsender);
	sqlite3_bind_int(st, 8, e->aar);
	sqlite3_bind_int(st, 9, e->seq);
	sqlite3_bind_int(st, 10, e->nr);
	bind_text(st, 11, m->journalposttype);
	bind_text(st, 12, m->tittel);
	sqlite3_bind_int(st, 13, m->skjermet);
	bind_text(st, 14, at);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto out;
	sqlite3_finalize(st);
	st = NULL;
	id = sqlite3_last_insert_rowid(p->db);
	if (sqlite3_prepare_v2(p->db,
			       "INSERT INTO dokument (journalpost_id, nummer, "
			       "filnavn, sha256, bytes, tittel, visningsnavn, "
			       "format, mime, variantformat, rolle) VALUES "
			       "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			       -1, &st, NULL) != SQLITE_OK)
		goto out;
	for (i = 0; i < m->n_filnavn; i++) {
		const struct fiks_file *f = fiks_asice_find(a, m->filnavn[i]);
		const struct fiks_arkiv_melding_dok *d =
			dok_of(m, m->filnavn[i]);
		char hex[65];

		if (f == NULL)
			goto out;
		sha256_hex(f->data, f->len, hex);
		if (store_file(p, hex, f->data, f->len) < 0) {
			bv_log(BV_LOG_ERR,
			       "archive-peer: cannot write to store %s: %s",
			       p->store, strerror(errno));
			goto out;
		}
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int(st, 2, (int)i + 1);
		bind_text(st, 3, m->filnavn[i]);
		bind_text(st, 4, hex);
		sqlite3_bind_int64(st, 5, (sqlite3_int64)f->len);
		bind_text(st, 6, d != NULL ? d->tittel : NULL);
		bind_text(st, 7, d != NULL ? d->filnavn : NULL);
		bind_text(st, 8, d != NULL ? d->format : NULL);
		bind_text(st, 9, d != NULL ? d->mime : NULL);
		bind_text(st, 10, d != NULL ? d->variantformat : NULL);
		bind_text(st, 11,
			  d == NULL	     ? NULL
			  : d->hoveddokument ? "H"
					     : "V");
		if (sqlite3_step(st) != SQLITE_DONE)
			goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_exec(p->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto out;
	if (m->fagsystem != NULL)
		snprintf(e->fagsystem, sizeof(e->fagsystem), "%s",
			 m->fagsystem);
	if (m->noekkel != NULL)
		snprintf(e->noekkel, sizeof(e->noekkel), "%s", m->noekkel);
	rc = 0;
out:
	if (rc < 0)
		bv_log(BV_LOG_ERR, "archive-peer: journaling failed: %s",
		       sqlite3_errmsg(p->db));
	sqlite3_finalize(st);
	if (rc < 0)
		sqlite3_exec(p->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/* ---- replies ------------------------------------------------------------ */

/* Sends a feilmelding of type; 0 or a FIKS_E* code. */
static int
reply_feil(struct peer *p, const struct fiks_melding *m, const char *type,
	   const char *melding)
{
	char feil_id[BV_UUID_LEN + 1], sent[FIKS_UUID_LEN + 1];
	struct fiks_file f = {.name = FIKS_ARKIV_FEILMELDING_FILE,
			      .mime = "application/xml"};
	char *xml = NULL;
	size_t len = 0;
	int rc;

	bv_uuid_generate(feil_id);
	rc = fiks_arkiv_feilmelding_build(type, feil_id, melding, &xml, &len);
	if (rc < 0)
		return rc;
	f.data = (const unsigned char *)xml;
	f.len = len;
	rc = fiks_reply(p->client, m, type, &f, 1, NULL, sent);
	free(xml);
	return rc;
}

/* Sends mottatt and the kvittering for e (twice each when dup). */
static int
reply_ok(struct peer *p, const struct fiks_melding *m, const struct existing *e,
	 int eksisterende, int dup)
{
	struct fiks_arkiv_kvittering k;
	struct fiks_file f = {.name = FIKS_ARKIV_KVITTERING_FILE,
			      .mime = "application/xml"};
	char sent[FIKS_UUID_LEN + 1];
	char *xml = NULL;
	size_t len = 0;
	int rc, i;

	memset(&k, 0, sizeof(k));
	snprintf(k.system_id, sizeof(k.system_id), "%s", e->system_id);
	snprintf(k.fagsystem, sizeof(k.fagsystem), "%s", e->fagsystem);
	snprintf(k.noekkel, sizeof(k.noekkel), "%s", e->noekkel);
	k.journalaar = e->aar;
	k.journalsekvensnummer = e->seq;
	k.journalpostnummer = e->nr;
	k.eksisterende = eksisterende;
	rc = fiks_arkiv_kvittering_build(&k, &xml, &len);
	if (rc < 0)
		return rc;
	f.data = (const unsigned char *)xml;
	f.len = len;
	for (i = 0; i <= dup && rc == 0; i++)
		rc = fiks_reply(p->client, m, FIKS_ARKIV_MOTTATT, NULL, 0, NULL,
				sent);
	for (i = 0; i <= dup && rc == 0; i++)
		rc = fiks_reply(p->client, m, FIKS_ARKIV_KVITTERING, &f, 1,
				NULL, sent);
	free(xml);
	return rc;
}

/* ---- one message -------------------------------------------------------- */

/* What to do with the delivery once handled. */
enum settle { SETTLE_ACK, SETTLE_REQUEUE };

/* Counts package files other than arkivmelding.xml. */
static size_t
count_documents(const struct fiks_asice *a)
{
	size_t i, n = 0;

	for (i = 0; i < fiks_asice_count(a); i++)
		if (strcmp(fiks_asice_file(a, i)->name,
			   FIKS_ARKIV_ARKIVMELDING_FILE) != 0)
			n++;
	return n;
}

/*
 * Checks an opened package against its arkivmelding. Returns 0, or -1 with
 * a sentence for the sender in why.
 */
static int
check_package(const struct fiks_arkiv_melding *m, const struct fiks_asice *a,
	      char *why, size_t cap)
{
	size_t i, docs = count_documents(a);

	if (m->antall_filer < 0 || (size_t)m->antall_filer != docs) {
		snprintf(why, cap,
			 "antallFiler is %d but the package holds %zu "
			 "document files",
			 m->antall_filer, docs);
		return -1;
	}
	for (i = 0; i < m->n_filnavn; i++)
		if (m->filnavn[i] == NULL ||
		    strcmp(m->filnavn[i], FIKS_ARKIV_ARKIVMELDING_FILE) == 0 ||
		    fiks_asice_find(a, m->filnavn[i]) == NULL) {
			snprintf(why, cap,
				 "referanseDokumentfil %zu names a file that "
				 "is not in the package",
				 i + 1);
			return -1;
		}
	/* Each document as described: its file's checksum and size when
	 * given, a variantformat, and a vedlegg's type named. */
	for (i = 0; i < m->n_dokumenter; i++) {
		const struct fiks_arkiv_melding_dok *d = &m->dokumenter[i];
		const struct fiks_file *f =
			d->referanse != NULL ? fiks_asice_find(a, d->referanse)
					     : NULL;
		char hex[65];

		if (f == NULL) {
			snprintf(why, cap, "dokument %zu has no file", i + 1);
			return -1;
		}
		if (d->sjekksum != NULL) {
			sha256_hex(f->data, f->len, hex);
			if (strcmp(hex, d->sjekksum) != 0) {
				snprintf(
					why, cap,
					"dokument %zu: sjekksum does not match "
					"its file",
					i + 1);
				return -1;
			}
		}
		if (d->filstoerrelse >= 0 &&
		    (size_t)d->filstoerrelse != f->len) {
			snprintf(why, cap,
				 "dokument %zu: filstoerrelse is %lld, the "
				 "file %zu bytes",
				 i + 1, d->filstoerrelse, f->len);
			return -1;
		}
		if (d->variantformat == NULL ||
		    (!d->hoveddokument && d->mime == NULL)) {
			snprintf(why, cap,
				 "dokument %zu: no variantformat, or a vedlegg "
				 "without mimeType",
				 i + 1);
			return -1;
		}
	}
	return 0;
}

static enum settle
handle_opprett(struct peer *p, const struct fiks_melding *m, char *outcome,
	       size_t cap)
{
	struct fiks_arkiv_melding am;
	struct fiks_asice *a = NULL;
	const struct fiks_file *xf;
	struct existing e;
	char err[300], why[400];
	const char *feil = NULL;
	enum fault fault = fault_take(p);
	enum settle settle = SETTLE_ACK;
	int rc, found;

	memset(&am, 0, sizeof(am));
	switch (fault) {
	case FAULT_SERVERFEIL:
		rc = reply_feil(p, m, FIKS_ARKIV_SERVERFEIL,
				"Arkivet er midlertidig utilgjengelig "
				"(fault serverfeil)");
		snprintf(outcome, cap, "fault serverfeil%s",
			 rc < 0 ? ": reply failed" : "");
		return rc < 0 ? SETTLE_REQUEUE : SETTLE_ACK;
	case FAULT_UGYLDIG:
		rc = reply_feil(p, m, FIKS_ARKIV_UGYLDIG,
				"Forespoerselen er avvist (fault ugyldig)");
		snprintf(outcome, cap, "fault ugyldig%s",
			 rc < 0 ? ": reply failed" : "");
		return rc < 0 ? SETTLE_REQUEUE : SETTLE_ACK;
	case FAULT_SILENCE:
		snprintf(outcome, cap, "fault silence: acked, no reply");
		return SETTLE_ACK;
	case FAULT_NOACK:
		snprintf(outcome, cap, "fault noack: given back unacked");
		return SETTLE_REQUEUE;
	default:
		break;
	}

	err[0] = '\0';
	rc = fiks_open(p->client, m, p->sender_pem, &a, err, sizeof(err));
	if (rc < 0 && err[0] == '\0')
		snprintf(err, sizeof(err), "%s", fiks_strerror(rc));
	if (rc == FIKS_EHTTP || rc == BV_ENOMEM) {
		snprintf(why, sizeof(why), "%s: %s", fiks_errname(rc), err);
		feil = FIKS_ARKIV_SERVERFEIL;
		goto reply_error;
	}
	if (rc < 0) {
		snprintf(why, sizeof(why), "Pakken er avvist: %s: %s",
			 fiks_errname(rc), err);
		feil = FIKS_ARKIV_UGYLDIG;
		goto reply_error;
	}
	xf = fiks_asice_find(a, FIKS_ARKIV_ARKIVMELDING_FILE);
	if (xf == NULL) {
		snprintf(why, sizeof(why),
			 "Pakken er avvist: %s mangler i pakken",
			 FIKS_ARKIV_ARKIVMELDING_FILE);
		feil = FIKS_ARKIV_UGYLDIG;
		goto reply_error;
	}
	rc = fiks_arkiv_arkivmelding_parse((const char *)xf->data, xf->len, &am,
					   err, sizeof(err));
	if (rc < 0) {
		snprintf(why, sizeof(why), "%s er avvist: %s: %s",
			 FIKS_ARKIV_ARKIVMELDING_FILE, fiks_errname(rc), err);
		feil = rc == BV_EIO || rc == BV_ENOMEM ? FIKS_ARKIV_SERVERFEIL
						       : FIKS_ARKIV_UGYLDIG;
		goto reply_error;
	}
	if (check_package(&am, a, err, sizeof(err)) < 0) {
		snprintf(why, sizeof(why), "Pakken er avvist: %s", err);
		feil = FIKS_ARKIV_UGYLDIG;
		goto reply_error;
	}

	found = store_find(p, am.noekkel, m->klient_melding_id, &e);
	if (found < 0) {
		snprintf(why, sizeof(why), "Arkivets lager svarer ikke");
		feil = FIKS_ARKIV_SERVERFEIL;
		goto reply_error;
	}
	if (!found && store_journal(p, m, &am, a, &e) < 0) {
		snprintf(why, sizeof(why), "Journalfoering feilet i arkivet");
		feil = FIKS_ARKIV_SERVERFEIL;
		goto reply_error;
	}
	rc = reply_ok(p, m, &e, found, fault == FAULT_DUPLICATE);
	snprintf(outcome, cap, "%s %d/%d nr %d%s%s",
		 found ? "eksisterende" : "journaled", e.aar, e.seq, e.nr,
		 fault == FAULT_DUPLICATE ? " (fault duplicate)" : "",
		 rc < 0 ? ": reply failed, requeued" : "");
	settle = rc < 0 ? SETTLE_REQUEUE : SETTLE_ACK;
	goto out;

reply_error:
	rc = reply_feil(p, m, feil, why);
	/* The reason names a file, element or check, never content. */
	snprintf(outcome, cap, "%s: %s%s",
		 strcmp(feil, FIKS_ARKIV_UGYLDIG) == 0 ? "ugyldigforespoersel"
						       : "serverfeil",
		 why, rc < 0 ? " (reply failed, requeued)" : "");
	settle = rc < 0 ? SETTLE_REQUEUE : SETTLE_ACK;
out:
	fiks_arkiv_melding_free(&am);
	fiks_asice_free(a);
	return settle;
}

static void
handle(struct peer *p, const struct fiks_melding *m)
{
	char outcome[600];
	enum settle settle = SETTLE_ACK;
	int rc;

	if (strcmp(m->type, FIKS_ARKIV_OPPRETT) == 0) {
		settle = handle_opprett(p, m, outcome, sizeof(outcome));
	} else if (strncmp(m->type, "no.ks.fiks.kvittering.", 22) == 0) {
		/* Fiks IO's own notices about what we sent. */
		snprintf(outcome, sizeof(outcome), "noted");
	} else {
		char why[FIKS_TYPE_MAX + 64];

		snprintf(why, sizeof(why), "Meldingstypen %s stoettes ikke",
			 m->type);
		rc = reply_feil(p, m, FIKS_ARKIV_UGYLDIG, why);
		snprintf(outcome, sizeof(outcome), "ugyldigforespoersel: %s%s",
			 "unsupported type", rc < 0 ? " (reply failed)" : "");
	}
	if (settle == SETTLE_ACK)
		rc = fiks_ack(p->client, m);
	else
		rc = fiks_nack_requeue(p->client, m);
	bv_log(BV_LOG_NOTICE, "archive-peer: %s %s%s: %s%s", m->type,
	       m->melding_id, m->redelivered ? " (redelivered)" : "", outcome,
	       rc < 0 ? " [settle failed]" : "");
	record_melding(p, m, outcome);
}

/* ---- list --------------------------------------------------------------- */

static const char *
dash(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "-";
}

static const char *
col(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t != NULL ? (const char *)t : NULL;
}

static int
list_main(sqlite3 *db, int as_json)
{
	sqlite3_stmt *st = NULL, *ds = NULL;
	json_t *arr = NULL;
	int rc = EXIT_RUNTIME;

	if (sqlite3_prepare_v2(
		    db,
		    "SELECT id, system_id, noekkel, fagsystem, mappe_noekkel, "
		    "klient_melding_id, melding_id, avsender, journalaar, "
		    "journalsekvensnummer, journalpostnummer, journalposttype, "
		    "tittel, skjermet, received_at, replays FROM journalpost "
		    "ORDER BY id",
		    -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
			       "SELECT nummer, filnavn, sha256, bytes, tittel, "
			       "visningsnavn, format, mime, variantformat, "
			       "rolle FROM dokument WHERE journalpost_id = ? "
			       "ORDER BY nummer",
			       -1, &ds, NULL) != SQLITE_OK)
		goto out;
	arr = json_array();
	if (arr == NULL)
		goto out;
	while (sqlite3_step(st) == SQLITE_ROW) {
		json_t *o, *docs = json_array();

		sqlite3_reset(ds);
		sqlite3_bind_int64(ds, 1, sqlite3_column_int64(st, 0));
		while (sqlite3_step(ds) == SQLITE_ROW) {
			json_array_append_new(
				docs,
				json_pack(
					"{s:i, s:s?, s:s?, s:I, s:s?, s:s?, "
					"s:s?, s:s?, s:s?, s:s?}",
					"nummer", sqlite3_column_int(ds, 0),
					"filnavn", col(ds, 1), "sha256",
					col(ds, 2), "bytes",
					(json_int_t)sqlite3_column_int64(ds, 3),
					"tittel", col(ds, 4), "visningsnavn",
					col(ds, 5), "format", col(ds, 6),
					"mime", col(ds, 7), "variantformat",
					col(ds, 8), "rolle", col(ds, 9)));
		}
		o = json_pack("{s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, "
			      "s:i, s:i, s:i, s:s?, s:s?, s:b, s:s?, s:i, "
			      "s:o}",
			      "system_id", col(st, 1), "noekkel", col(st, 2),
			      "fagsystem", col(st, 3), "mappe_noekkel",
			      col(st, 4), "klient_melding_id", col(st, 5),
			      "melding_id", col(st, 6), "avsender", col(st, 7),
			      "journalaar", sqlite3_column_int(st, 8),
			      "journalsekvensnummer", sqlite3_column_int(st, 9),
			      "journalpostnummer", sqlite3_column_int(st, 10),
			      "journalposttype", col(st, 11), "tittel",
			      col(st, 12), "skjermet",
			      sqlite3_column_int(st, 13), "received_at",
			      col(st, 14), "replays",
			      sqlite3_column_int(st, 15), "dokumenter", docs);
		if (o == NULL)
			goto out;
		json_array_append_new(arr, o);
	}
	if (as_json) {
		char *s = json_dumps(arr, JSON_INDENT(2));

		if (s == NULL)
			goto out;
		printf("%s\n", s);
		free(s);
	} else {
		size_t i, j;
		json_t *o, *d;

		json_array_foreach(arr, i, o)
		{
			printf("%d/%d nr %d %s noekkel=%s mappe=%s type=%s "
			       "replays=%d\n",
			       (int)json_integer_value(
				       json_object_get(o, "journalaar")),
			       (int)json_integer_value(json_object_get(
				       o, "journalsekvensnummer")),
			       (int)json_integer_value(
				       json_object_get(o, "journalpostnummer")),
			       dash(o, "system_id"), dash(o, "noekkel"),
			       dash(o, "mappe_noekkel"),
			       dash(o, "journalposttype"),
			       (int)json_integer_value(
				       json_object_get(o, "replays")));
			json_array_foreach(json_object_get(o, "dokumenter"), j,
					   d)
			{
				printf("  %d %s %s %lld bytes\n",
				       (int)json_integer_value(
					       json_object_get(d, "nummer")),
				       dash(d, "filnavn"), dash(d, "sha256"),
				       (long long)json_integer_value(
					       json_object_get(d, "bytes")));
			}
		}
	}
	rc = EXIT_OK;
out:
	json_decref(arr);
	sqlite3_finalize(st);
	sqlite3_finalize(ds);
	return rc;
}

/* ---- main --------------------------------------------------------------- */

static char *
read_text(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && n < 65536 &&
	    fseek(f, 0, SEEK_SET) == 0) {
		buf = bv_malloc((size_t)n + 1);
		if (buf != NULL && fread(buf, 1, (size_t)n, f) == (size_t)n)
			buf[n] = '\0';
		else {
			bv_free(buf);
			buf = NULL;
		}
	}
	fclose(f);
	return buf;
}

static int
run(struct peer *p)
{
	struct fiks_melding *m = NULL;
	int rc;

	bv_log(BV_LOG_NOTICE, "archive-peer: ready on account %s, fault %s",
	       fiks_client_account(p->client), fault_names[p->fault]);
	while (!stopping) {
		control_check(p);
		rc = fiks_receive(p->client, RECEIVE_MS, &m);
		if (rc == FIKS_ETIMEOUT || rc == FIKS_EHEADER ||
		    rc == FIKS_ELIMIT)
			continue;
		if (rc == FIKS_EAMQP) {
			/* The broker is gone for now: try again shortly. */
			struct timespec ts = {0, 200 * 1000 * 1000};

			nanosleep(&ts, NULL);
			continue;
		}
		if (rc < 0) {
			bv_log(BV_LOG_ERR, "archive-peer: receive: %s",
			       fiks_strerror(rc));
			return EXIT_RUNTIME;
		}
		control_check(p);
		handle(p, m);
		fiks_melding_free(m);
		m = NULL;
	}
	bv_log(BV_LOG_NOTICE, "archive-peer: stopping");
	return EXIT_OK;
}

int
main(int argc, char **argv)
{
	struct peer p;
	struct fiks_config cfg;
	struct sigaction sa;
	const char *config = NULL, *db_path = NULL, *sender = NULL;
	const char *fault = NULL, *level = NULL;
	char store[PATH_MAX], control[PATH_MAX], err[256];
	int i, list = 0, as_json = 0, status = EXIT_USAGE, lv;

	memset(&p, 0, sizeof(p));
	memset(&cfg, 0, sizeof(cfg));
	store[0] = control[0] = '\0';
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return EXIT_OK;
		} else if (!strcmp(a, "list")) {
			list = 1;
		} else if (!strcmp(a, "--json") && list) {
			as_json = 1;
		} else if (v != NULL && !strcmp(a, "--config")) {
			config = argv[++i];
		} else if (v != NULL && !strcmp(a, "--db")) {
			db_path = argv[++i];
		} else if (v != NULL && !strcmp(a, "--store")) {
			snprintf(store, sizeof(store), "%s", argv[++i]);
		} else if (v != NULL && !strcmp(a, "--sender-cert")) {
			sender = argv[++i];
		} else if (v != NULL && !strcmp(a, "--fault")) {
			fault = argv[++i];
		} else if (v != NULL && !strcmp(a, "--control")) {
			snprintf(control, sizeof(control), "%s", argv[++i]);
		} else if (v != NULL && !strcmp(a, "--log-level")) {
			level = argv[++i];
		} else {
			fprintf(stderr,
				"bvfiks-archive-peer: unknown or incomplete "
				"argument '%s' (--help)\n",
				a);
			return EXIT_USAGE;
		}
	}
	if (db_path == NULL || (!list && config == NULL)) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (level != NULL) {
		lv = bv_log_level_from_name(level);
		if (lv < 0) {
			fprintf(stderr, "bvfiks-archive-peer: bad log level\n");
			return EXIT_USAGE;
		}
		bv_log_set_level(lv);
	} else
		bv_log_set_level(BV_LOG_NOTICE);
	if (fault != NULL && fault_parse(fault, &p.fault, &p.fault_left) < 0) {
		fprintf(stderr, "bvfiks-archive-peer: bad --fault '%s'\n",
			fault);
		return EXIT_USAGE;
	}
	if (list && access(db_path, F_OK) != 0) {
		fprintf(stderr, "bvfiks-archive-peer: no store %s\n", db_path);
		return EXIT_RUNTIME;
	}
	if (store_open(db_path, &p.db) < 0)
		return EXIT_RUNTIME;
	if (list) {
		status = list_main(p.db, as_json);
		goto out;
	}
	if (store[0] == '\0')
		snprintf(store, sizeof(store), "%s.d", db_path);
	if (control[0] == '\0')
		snprintf(control, sizeof(control), "%s.fault", db_path);
	if (mkdir(store, 0700) != 0 && errno != EEXIST) {
		bv_log(BV_LOG_ERR, "archive-peer: cannot create %s: %s", store,
		       strerror(errno));
		status = EXIT_RUNTIME;
		goto out;
	}
	p.store = store;
	p.control = control;
	if (sender != NULL) {
		p.sender_pem = read_text(sender);
		if (p.sender_pem == NULL) {
			bv_log(BV_LOG_ERR, "archive-peer: cannot read %s",
			       sender);
			goto out;
		}
	}
	if (fiks_config_load(config, &cfg, err, sizeof(err)) < 0) {
		bv_log(BV_LOG_ERR, "archive-peer: config %s: %s", config, err);
		goto out;
	}
	if (fiks_client_new(&cfg, &p.client) < 0) {
		bv_log(BV_LOG_ERR, "archive-peer: cannot load the account's "
				   "keys");
		goto out;
	}
	/* The fault given on the command line stands until the control
	 * file's text changes. */
	{
		FILE *f = fopen(control, "r");

		if (f != NULL) {
			size_t n = fread(p.control_seen, 1,
					 sizeof(p.control_seen) - 1, f);

			p.control_seen[n] = '\0';
			p.control_read = fault != NULL;
			fclose(f);
		}
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	status = run(&p);
out:
	fiks_client_free(p.client);
	fiks_config_free(&cfg);
	bv_free(p.sender_pem);
	sqlite3_close(p.db);
	fiks_arkiv_cleanup();
	return status;
}
