/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * audit.c: `bvchat-relay audit verify|list`. verify streams audit_log in
 * keyset pages and recomputes every hash in C (libsodium's SHA-256), so it
 * trusts nothing the database says about the chain. Writing entries is not
 * here: migrations/0002's trigger chains every INSERT. Blocking libpq, one
 * short connection per command. Entries hold no secrets; list prints them.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libpq-fe.h>
#include <sodium.h>

#include "audit.h"
#include "bv_error.h"
#include "bv_util.h"
#include "migrate.h"

#define EXIT_OK	   0
#define EXIT_FAIL  1
#define EXIT_USAGE 2

#define AUDIT_TAG	 "bvchat-audit-v1" /* 15 bytes, no NUL */
#define AUDIT_PAGE	 "1000"		   /* rows per verify page */
#define AUDIT_LIST_DEF	 100
#define AUDIT_LIST_MAX	 100000
#define AUDIT_FIELD_NULL 0xffffffffu

static void
put_be(crypto_hash_sha256_state *st, uint64_t v, int bytes)
{
	uint8_t b[8];
	int i;

	for (i = 0; i < bytes; i++)
		b[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
	crypto_hash_sha256_update(st, b, (unsigned long long)bytes);
}

/* A length-prefixed field; NULL is the length ff ff ff ff alone. */
static void
put_field(crypto_hash_sha256_state *st, const void *p, size_t len)
{
	if (p == NULL) {
		put_be(st, AUDIT_FIELD_NULL, 4);
		return;
	}
	put_be(st, (uint64_t)len, 4);
	crypto_hash_sha256_update(st, p, (unsigned long long)len);
}

static void
put_str(crypto_hash_sha256_state *st, const char *s)
{
	put_field(st, s, s != NULL ? strlen(s) : 0);
}

void
audit__hash(const struct audit_entry *e, uint8_t out[AUDIT_HASH_LEN])
{
	crypto_hash_sha256_state st;

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const uint8_t *)AUDIT_TAG,
				  sizeof(AUDIT_TAG) - 1);
	put_be(&st, (uint64_t)e->seq, 8);
	put_be(&st, (uint64_t)e->at_us, 8);
	put_field(&st, e->tenant, AUDIT_UUID_LEN);
	put_str(&st, e->actor);
	put_str(&st, e->action);
	put_str(&st, e->subject);
	put_str(&st, e->detail);
	crypto_hash_sha256_update(&st, e->prev_hash, AUDIT_HASH_LEN);
	crypto_hash_sha256_final(&st, out);
}

void
audit__check_init(struct audit_check *c, int64_t from,
		  const uint8_t anchor[AUDIT_HASH_LEN],
		  const uint8_t *expect_head)
{
	memset(c, 0, sizeof(*c));
	c->next_seq = from;
	memcpy(c->last, anchor, AUDIT_HASH_LEN);
	c->expect_head = expect_head;
	c->head_seq = -1;
	c->bad_seq = -1;
	if (expect_head != NULL &&
	    memcmp(expect_head, anchor, AUDIT_HASH_LEN) == 0)
		c->head_seq = from - 1;
}

int
audit__check_entry(struct audit_check *c, const struct audit_entry *e)
{
	uint8_t h[AUDIT_HASH_LEN];

	if (e->seq != c->next_seq) {
		c->bad_seq = c->next_seq;
		if (e->seq > c->next_seq)
			snprintf(c->why, sizeof(c->why),
				 "missing: the log jumps to seq %" PRId64
				 " (an entry was deleted)",
				 e->seq);
		else
			snprintf(c->why, sizeof(c->why),
				 "out of order: got seq %" PRId64, e->seq);
		return -1;
	}
	if (sodium_memcmp(e->prev_hash, c->last, AUDIT_HASH_LEN) != 0) {
		c->bad_seq = e->seq;
		snprintf(c->why, sizeof(c->why),
			 "broken link: prev_hash is not the hash of the entry "
			 "before it (that entry was changed or replaced)");
		return -1;
	}
	audit__hash(e, h);
	if (sodium_memcmp(h, e->hash, AUDIT_HASH_LEN) != 0) {
		c->bad_seq = e->seq;
		snprintf(c->why, sizeof(c->why),
			 "hash does not match the entry's contents (the entry "
			 "was edited)");
		return -1;
	}
	memcpy(c->last, e->hash, AUDIT_HASH_LEN);
	if (c->expect_head != NULL &&
	    memcmp(c->expect_head, e->hash, AUDIT_HASH_LEN) == 0)
		c->head_seq = e->seq;
	c->next_seq++;
	c->count++;
	return 0;
}

/* ---- the commands ---- */

struct audit_opts {
	const char *tenant;
	const char *expect_head;
	const char *from;
	const char *limit;
};

static void audit_err(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
audit_err(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bvchat-relay audit %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* libpq's last error without its trailing newline. */
static int
pq_len(const char *msg)
{
	size_t n = strlen(msg);

	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		n--;
	return (int)n;
}

#define PQ_MSG(conn) pq_len(PQerrorMessage(conn)), PQerrorMessage(conn)

static PGconn *
audit_db_open(const struct relay_config *c, const char *cmd)
{
	const char *ci = c != NULL && c->database != NULL ? c->database : "";
	const char *const keys[] = {"connect_timeout", "dbname",
				    "fallback_application_name", NULL};
	const char *const vals[] = {"10", ci, "bvchat-audit", NULL};
	PGconn *conn;
	int rc;

	rc = migrate_check(ci);
	if (rc < 0) {
		audit_err(cmd, rc == BV_EUNAVAILABLE
				       ? "cannot reach the database (see above)"
				       : "the database schema does not match "
					 "this relay (see above)");
		return NULL;
	}
	conn = PQconnectdbParams(keys, vals, 1);
	if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
		audit_err(cmd, "cannot connect to the database: %.*s",
			  conn ? pq_len(PQerrorMessage(conn)) : 13,
			  conn ? PQerrorMessage(conn) : "out of memory");
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

static int
parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Lower-cases a UUID argument into buf; -1 when it is not one. */
static int
norm_uuid(const char *s, char buf[BV_UUID_LEN + 1])
{
	size_t i;

	if (strlen(s) != BV_UUID_LEN)
		return -1;
	for (i = 0; i <= BV_UUID_LEN; i++)
		buf[i] = (char)tolower((unsigned char)s[i]);
	return bv_uuid_valid(buf) ? 0 : -1;
}

/* Exactly len bytes of lower- or upper-case hex, dashes skipped. */
static int
hex_bytes(const char *s, uint8_t *out, size_t len, const char *ignore)
{
	size_t n = 0;
	const char *end = NULL;

	if (sodium_hex2bin(out, len, s, strlen(s), ignore, &n, &end) != 0 ||
	    n != len || *end != '\0')
		return -1;
	return 0;
}

static const char usage_verify[] =
	"usage: bvchat-relay audit verify [--tenant UUID] [--expect-head HEX] "
	"[--from SEQ]\n"
	"\n"
	"Recomputes every entry's SHA-256 from its contents and checks that\n"
	"each links to the one before it and that seq has no gaps. Exit 0\n"
	"with one line ending in the head (newest seq and hash): note it.\n"
	"Exit 1 naming the first bad seq. Only --expect-head catches a log\n"
	"whose newest entries were removed: pass the head noted earlier; it\n"
	"must still be in the chain (newer entries after it are fine).\n"
	"\n"
	"  --tenant UUID      also count that tenant's entries (the chain is\n"
	"                     relay-wide, so every entry is still checked)\n"
	"  --expect-head HEX  a head hash noted earlier\n"
	"  --from SEQ         start at SEQ, trusting the entry before it\n";

static const char usage_list[] =
	"usage: bvchat-relay audit list [--tenant UUID] [--limit N]\n"
	"\n"
	"Prints the newest N entries (default 100), oldest first, one a\n"
	"line: seq, time (UTC), tenant (- for relay-wide), actor, action,\n"
	"subject, detail (JSON). Entries hold ids, never secrets.\n"
	"\n"
	"  --tenant UUID      only that tenant's entries\n"
	"  --limit N          at most N entries (1 to 100000)\n";

/* Fills e from row i of a verify page; -1 when a column is malformed. */
static int
row_entry(PGresult *res, int i, struct audit_entry *e, uint8_t *tenant)
{
	if (parse_int64(PQgetvalue(res, i, 0), 1, INT64_MAX, &e->seq) < 0 ||
	    parse_int64(PQgetvalue(res, i, 1), INT64_MIN, INT64_MAX,
			&e->at_us) < 0)
		return -1;
	e->tenant = NULL;
	if (!PQgetisnull(res, i, 2)) {
		if (hex_bytes(PQgetvalue(res, i, 2), tenant, AUDIT_UUID_LEN,
			      "-") < 0)
			return -1;
		e->tenant = tenant;
	}
	e->actor = PQgetisnull(res, i, 3) ? NULL : PQgetvalue(res, i, 3);
	e->action = PQgetisnull(res, i, 4) ? NULL : PQgetvalue(res, i, 4);
	e->subject = PQgetisnull(res, i, 5) ? NULL : PQgetvalue(res, i, 5);
	e->detail = PQgetisnull(res, i, 6) ? NULL : PQgetvalue(res, i, 6);
	if (PQgetisnull(res, i, 7) || PQgetisnull(res, i, 8) ||
	    hex_bytes(PQgetvalue(res, i, 7), e->prev_hash, AUDIT_HASH_LEN,
		      NULL) < 0 ||
	    hex_bytes(PQgetvalue(res, i, 8), e->hash, AUDIT_HASH_LEN, NULL) < 0)
		return -1;
	return 0;
}

/*
 * The stored hash of entry seq: 0, -1 (query failed, reported), -2 (no such
 * entry) or -3 (malformed).
 */
static int
query_hash(PGconn *conn, const char *cmd, int64_t seq,
	   uint8_t out[AUDIT_HASH_LEN])
{
	char s[24];
	const char *p[1] = {s};
	PGresult *res;
	int rc = -1;

	snprintf(s, sizeof(s), "%" PRId64, seq);
	res = PQexecParams(conn,
			   "SELECT encode(hash, 'hex') FROM audit_log "
			   "WHERE seq = $1",
			   1, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		audit_err(cmd, "cannot read the audit log: %.*s", PQ_MSG(conn));
	else if (PQntuples(res) != 1)
		rc = -2;
	else if (hex_bytes(PQgetvalue(res, 0, 0), out, AUDIT_HASH_LEN, NULL) <
		 0)
		rc = -3;
	else
		rc = 0;
	PQclear(res);
	return rc;
}

static int
cmd_verify(const struct relay_config *c, const struct audit_opts *o)
{
	const char *cmd = "verify";
	uint8_t anchor[AUDIT_HASH_LEN] = {0}, head[AUDIT_HASH_LEN];
	uint8_t tenant_bytes[AUDIT_UUID_LEN], want_tenant[AUDIT_UUID_LEN];
	char tenant[BV_UUID_LEN + 1], hex[2 * AUDIT_HASH_LEN + 1];
	char lo[24], hi[24];
	const char *params[2] = {lo, hi};
	struct audit_check chk;
	int64_t from = 1, max_seq, tenant_count = 0;
	PGconn *conn = NULL;
	PGresult *res = NULL;
	int status = EXIT_FAIL, i, n, rc;

	if (o->limit != NULL) {
		audit_err(cmd, "unknown argument --limit (see --help)");
		return EXIT_USAGE;
	}
	if (o->tenant != NULL &&
	    (norm_uuid(o->tenant, tenant) < 0 ||
	     hex_bytes(tenant, want_tenant, AUDIT_UUID_LEN, "-") < 0)) {
		audit_err(cmd, "--tenant must be a UUID");
		return EXIT_USAGE;
	}
	if (o->expect_head != NULL &&
	    hex_bytes(o->expect_head, head, AUDIT_HASH_LEN, NULL) < 0) {
		audit_err(cmd, "--expect-head must be 64 hex digits");
		return EXIT_USAGE;
	}
	if (o->from != NULL && parse_int64(o->from, 1, INT64_MAX, &from) < 0) {
		audit_err(cmd, "--from must be a seq, 1 or more");
		return EXIT_USAGE;
	}

	conn = audit_db_open(c, cmd);
	if (conn == NULL)
		goto out;
	/* Entries appended while we walk are left for the next run. */
	res = PQexec(conn, "SELECT coalesce(max(seq), 0) FROM audit_log");
	if (PQresultStatus(res) != PGRES_TUPLES_OK ||
	    parse_int64(PQgetvalue(res, 0, 0), 0, INT64_MAX, &max_seq) < 0) {
		audit_err(cmd, "cannot read the audit log: %.*s", PQ_MSG(conn));
		goto out;
	}
	PQclear(res);
	res = NULL;
	if (from > 1) {
		rc = query_hash(conn, cmd, from - 1, anchor);
		if (rc == -1)
			goto out;
		if (rc < 0) {
			printf("audit: FAILED at seq %" PRId64
			       ": %s (needed as the anchor of --from)\n",
			       from - 1,
			       rc == -2 ? "missing" : "hash is malformed");
			goto out;
		}
	}
	audit__check_init(&chk, from, anchor,
			  o->expect_head != NULL ? head : NULL);
	/* Keyset pages: memory stays bounded by one page, whatever the size. */
	while (chk.next_seq <= max_seq) {
		snprintf(lo, sizeof(lo), "%" PRId64, chk.next_seq);
		snprintf(hi, sizeof(hi), "%" PRId64, max_seq);
		res = PQexecParams(
			conn,
			"SELECT seq, (extract(epoch FROM at) * "
			"1000000)::bigint, "
			"tenant_id, actor, action, subject, detail::text, "
			"encode(prev_hash, 'hex'), encode(hash, 'hex') "
			"FROM audit_log WHERE seq >= $1 AND seq <= $2 "
			"ORDER BY seq LIMIT " AUDIT_PAGE,
			2, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			audit_err(cmd, "cannot read the audit log: %.*s",
				  PQ_MSG(conn));
			goto out;
		}
		n = PQntuples(res);
		if (n == 0) {
			/* max_seq was there: the rest vanished meanwhile. */
			printf("audit: FAILED at seq %" PRId64
			       ": missing (deleted while verifying)\n",
			       chk.next_seq);
			goto out;
		}
		for (i = 0; i < n; i++) {
			struct audit_entry e;

			if (row_entry(res, i, &e, tenant_bytes) < 0) {
				printf("audit: FAILED at seq %s: malformed "
				       "row\n",
				       PQgetvalue(res, i, 0));
				goto out;
			}
			if (audit__check_entry(&chk, &e) < 0) {
				printf("audit: FAILED at seq %" PRId64 ": %s\n",
				       chk.bad_seq, chk.why);
				goto out;
			}
			if (o->tenant != NULL && e.tenant != NULL &&
			    memcmp(e.tenant, want_tenant, AUDIT_UUID_LEN) == 0)
				tenant_count++;
		}
		PQclear(res);
		res = NULL;
	}
	sodium_bin2hex(hex, sizeof(hex), chk.last, AUDIT_HASH_LEN);
	if (o->expect_head != NULL && chk.head_seq < 0) {
		printf("audit: FAILED after seq %" PRId64
		       ": the noted head %s is not in the chain (entries "
		       "after it were removed, or it is from another log); "
		       "head now %" PRId64 " %s\n",
		       chk.next_seq - 1, o->expect_head, chk.next_seq - 1, hex);
		goto out;
	}
	printf("audit: ok: %" PRId64 " entries (seq %" PRId64 "..%" PRId64 ")",
	       chk.count, from, chk.next_seq - 1);
	if (o->tenant != NULL)
		printf(", %" PRId64 " of tenant %s", tenant_count, tenant);
	if (o->expect_head != NULL)
		printf(", noted head at seq %" PRId64, chk.head_seq);
	printf("; head %" PRId64 " %s\n", chk.next_seq - 1, hex);
	status = fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
out:
	PQclear(res);
	PQfinish(conn);
	return status;
}

/* Prints s with control characters as '?', so an entry stays one line. */
static void
put_clean(const char *s)
{
	for (; *s != '\0'; s++)
		putchar((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
}

static int
cmd_list(const struct relay_config *c, const struct audit_opts *o)
{
	const char *cmd = "list";
	char tenant[BV_UUID_LEN + 1], lim[24];
	const char *params[2] = {lim, tenant};
	int64_t limit = AUDIT_LIST_DEF;
	PGconn *conn = NULL;
	PGresult *res = NULL;
	int status = EXIT_FAIL, i, j;

	if (o->expect_head != NULL || o->from != NULL) {
		audit_err(cmd, "unknown argument %s (see --help)",
			  o->from != NULL ? "--from" : "--expect-head");
		return EXIT_USAGE;
	}
	if (o->tenant != NULL && norm_uuid(o->tenant, tenant) < 0) {
		audit_err(cmd, "--tenant must be a UUID");
		return EXIT_USAGE;
	}
	if (o->limit != NULL &&
	    parse_int64(o->limit, 1, AUDIT_LIST_MAX, &limit) < 0) {
		audit_err(cmd, "--limit must be 1 to %d", AUDIT_LIST_MAX);
		return EXIT_USAGE;
	}
	snprintf(lim, sizeof(lim), "%" PRId64, limit);
	conn = audit_db_open(c, cmd);
	if (conn == NULL)
		goto out;
	if (o->tenant == NULL)
		params[1] = NULL;
	res = PQexecParams(
		conn,
		"SELECT seq, to_char(at AT TIME ZONE 'UTC', "
		"'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
		"coalesce(tenant_id::text, '-'), actor, action, "
		"coalesce(subject, '-'), coalesce(detail::text, '-') "
		"FROM (SELECT * FROM audit_log "
		"WHERE $2::uuid IS NULL OR tenant_id = $2::uuid "
		"ORDER BY seq DESC LIMIT $1::bigint) a ORDER BY seq",
		2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		audit_err(cmd, "cannot read the audit log: %.*s", PQ_MSG(conn));
		goto out;
	}
	for (i = 0; i < PQntuples(res); i++) {
		for (j = 0; j < 7; j++) {
			if (j > 0)
				putchar(' ');
			put_clean(PQgetvalue(res, i, j));
		}
		putchar('\n');
	}
	status = fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
out:
	PQclear(res);
	PQfinish(conn);
	return status;
}

static void
audit_usage(FILE *f)
{
	fputs("usage: bvchat-relay [--database CONNINFO] audit verify "
	      "[--tenant UUID] [--expect-head HEX] [--from SEQ]\n"
	      "       bvchat-relay [--database CONNINFO] audit list "
	      "[--tenant UUID] [--limit N]\n"
	      "\n"
	      "  verify  check the audit log's hash chain; prints its head\n"
	      "  list    print the newest entries\n"
	      "\n`bvchat-relay audit COMMAND --help` describes one command.\n",
	      f);
}

int
audit_main(const struct relay_config *c, int argc, char **argv)
{
	struct audit_opts o;
	const char *usage;
	int i, verify;

	memset(&o, 0, sizeof(o));
	if (argc < 2 || argv[1] == NULL) {
		audit_usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		audit_usage(stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "verify")) {
		verify = 1;
		usage = usage_verify;
	} else if (!strcmp(argv[1], "list")) {
		verify = 0;
		usage = usage_list;
	} else {
		fprintf(stderr, "bvchat-relay audit: unknown command '%s'\n\n",
			argv[1]);
		audit_usage(stderr);
		return EXIT_USAGE;
	}
	for (i = 2; i < argc; i++) {
		const char *a = argv[i], *eq = strchr(a, '=');
		size_t len = eq ? (size_t)(eq - a) : strlen(a);
		const char **slot = NULL;

		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(usage, stdout);
			return EXIT_OK;
		}
		if (len == 8 && !strncmp(a, "--tenant", len))
			slot = &o.tenant;
		else if (len == 13 && !strncmp(a, "--expect-head", len))
			slot = &o.expect_head;
		else if (len == 6 && !strncmp(a, "--from", len))
			slot = &o.from;
		else if (len == 7 && !strncmp(a, "--limit", len))
			slot = &o.limit;
		if (slot == NULL) {
			fprintf(stderr,
				"bvchat-relay audit %s: unknown argument '%s' "
				"(see --help)\n",
				argv[1], a);
			return EXIT_USAGE;
		}
		if (*slot != NULL) {
			fprintf(stderr,
				"bvchat-relay audit %s: %.*s given twice\n",
				argv[1], (int)len, a);
			return EXIT_USAGE;
		}
		if (eq != NULL) {
			*slot = eq + 1;
		} else if (i + 1 < argc) {
			*slot = argv[++i];
		} else {
			fprintf(stderr,
				"bvchat-relay audit %s: %s needs a value\n",
				argv[1], a);
			return EXIT_USAGE;
		}
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "bvchat-relay audit: libsodium failed to "
				"initialise\n");
		return EXIT_FAIL;
	}
	return verify ? cmd_verify(c, &o) : cmd_list(c, &o);
}
