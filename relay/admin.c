/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * admin.c: `bvchat-relay admin …`, the operator's commands. Blocking libpq,
 * one short connection per command, never inside the event loop. Tenant
 * secret keys exist here only to be written (tenant-create) or to sign
 * (issue-token, which needs no database); they are wiped after use and
 * never printed. Counts only: nothing here reads an envelope body.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <sodium.h>

#include "admin.h"
#include "bv_error.h"
#include "bv_token.h"
#include "bv_util.h"
#include "invite.h"
#include "migrate.h"

/* Process exit statuses. */
#define EXIT_OK	   0
#define EXIT_FAIL  1
#define EXIT_USAGE 2

#define KEY_FILE_MAX	 4096 /* a key file is ~150 bytes */
#define TENANT_NAME_MAX	 200  /* bytes */
#define TTL_DEFAULT	 600
#define TTL_MAX_ABSOLUTE (366 * 24 * 3600)

struct admin_cmd {
	const char *name;
	const char *summary;
	const char *usage; /* synopsis and description for --help */
	int (*run)(const struct relay_config *c, int argc, char **argv);
};

/* One "--name VALUE" or "--name=VALUE" option. */
struct opt {
	const char *name;
	const char **value;
};

static void admin_err(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
admin_err(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bvchat-relay admin %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* libpq's last error without the newline it ends with. */
static int
pq_msg_len(const char *msg)
{
	size_t n = strlen(msg);

	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		n--;
	return (int)n;
}

#define PQ_MSG(conn) pq_msg_len(PQerrorMessage(conn)), PQerrorMessage(conn)

/*
 * Parses argv[1…] (argv[0] is the subcommand) into opts. Returns 0, 1 when
 * --help was asked for (usage printed on stdout), or -1 after printing a
 * usage error on stderr.
 */
static int
parse_opts(const struct admin_cmd *cmd, int argc, char **argv, struct opt *opts,
	   size_t nopts)
{
	int i;
	size_t k;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *eq = strchr(a, '=');
		size_t len = eq ? (size_t)(eq - a) : strlen(a);
		struct opt *o = NULL;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			fputs(cmd->usage, stdout);
			return 1;
		}
		for (k = 0; k < nopts; k++)
			if (strlen(opts[k].name) == len &&
			    strncmp(opts[k].name, a, len) == 0)
				o = &opts[k];
		if (o == NULL) {
			admin_err(cmd->name,
				  "unknown argument '%s' (see --help)", a);
			return -1;
		}
		if (*o->value != NULL) {
			admin_err(cmd->name, "%s given twice", o->name);
			return -1;
		}
		if (eq != NULL) {
			*o->value = eq + 1;
		} else if (i + 1 < argc) {
			*o->value = argv[++i];
		} else {
			admin_err(cmd->name, "%s needs a value (see --help)",
				  o->name);
			return -1;
		}
	}
	return 0;
}

static const char *
conninfo_of(const struct relay_config *c)
{
	return c != NULL && c->database != NULL ? c->database : "";
}

/*
 * Checks that the schema is the one this relay knows (migrate_check logs
 * why not), then connects. Returns the connection or NULL (reported).
 */
static PGconn *
db_open(const struct relay_config *c, const char *cmd)
{
	const char *const keys[] = {"connect_timeout", "dbname",
				    "fallback_application_name", NULL};
	const char *const vals[] = {"10", conninfo_of(c), "bvchat-admin", NULL};
	PGconn *conn;
	int rc;

	rc = migrate_check(conninfo_of(c));
	if (rc == BV_EUNAVAILABLE) {
		admin_err(cmd,
			  "cannot reach the database (see above); set it with "
			  "--database or the config file");
		return NULL;
	}
	if (rc < 0) {
		admin_err(cmd,
			  "the database schema does not match this relay (see "
			  "above)");
		return NULL;
	}
	conn = PQconnectdbParams(keys, vals, 1);
	if (conn == NULL) {
		admin_err(cmd, "cannot connect to the database: out of memory");
		return NULL;
	}
	if (PQstatus(conn) != CONNECTION_OK) {
		admin_err(cmd, "cannot connect to the database: %.*s",
			  PQ_MSG(conn));
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

static int
write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Returns 1 for a Norwegian organisation number: nine digits. */
static int
org_number_valid(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (!isdigit((unsigned char)s[i]))
			return 0;
	return i == 9;
}

static int
tenant_name_valid(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > TENANT_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

static const char usage_tenant_create[] =
	"usage: bvchat-relay admin tenant-create --name NAME "
	"[--org-number N] --key-out FILE\n"
	"\n"
	"Creates a tenant (a municipality) with a new Ed25519 key pair for\n"
	"signing enrollment tokens. The relay stores the public key; the\n"
	"secret key is written to FILE (mode 0600, never overwritten) as\n"
	"{\"tenant\": UUID, \"secret_key\": BASE64} and belongs to the\n"
	"municipality: keep it out of the relay's hosts. Prints the tenant's\n"
	"UUID on stdout.\n"
	"\n"
	"  --name NAME        display name, e.g. \"Demo kommune\"\n"
	"  --org-number N     the municipality's nine-digit organisation "
	"number\n"
	"  --key-out FILE     where to write the secret key\n";

static int
cmd_tenant_create(const struct relay_config *c, int argc, char **argv)
{
	const char *cmd = "tenant-create";
	const char *name = NULL, *org = NULL, *key_out = NULL;
	struct opt opts[] = {
		{"--name", &name},
		{"--org-number", &org},
		{"--key-out", &key_out},
	};
	struct admin_cmd self = {cmd, NULL, usage_tenant_create, NULL};
	uint8_t pk[crypto_sign_PUBLICKEYBYTES];
	uint8_t sk[crypto_sign_SECRETKEYBYTES];
	char id[BV_UUID_LEN + 1];
	char json[256];
	const char *params[4];
	int lengths[4] = {0, 0, 0, (int)sizeof(pk)};
	int formats[4] = {0, 0, 0, 1};
	PGconn *conn = NULL;
	PGresult *res = NULL;
	char *b64 = NULL;
	int fd = -1, created = 0, status = EXIT_FAIL, n;

	n = parse_opts(&self, argc, argv, opts, sizeof(opts) / sizeof(*opts));
	if (n != 0)
		return n > 0 ? EXIT_OK : EXIT_USAGE;
	if (name == NULL || key_out == NULL) {
		admin_err(cmd,
			  "--name and --key-out are required (see --help)");
		return EXIT_USAGE;
	}
	if (!tenant_name_valid(name)) {
		admin_err(cmd,
			  "--name must be 1 to %d bytes without control "
			  "characters",
			  TENANT_NAME_MAX);
		return EXIT_USAGE;
	}
	if (org != NULL && !org_number_valid(org)) {
		admin_err(cmd, "--org-number must be nine digits");
		return EXIT_USAGE;
	}

	conn = db_open(c, cmd);
	if (conn == NULL)
		goto out;
	/* O_EXCL: an existing key is never overwritten, not even by us. */
	fd = open(key_out, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd < 0) {
		if (errno == EEXIST)
			admin_err(cmd,
				  "%s already exists; refusing to overwrite a "
				  "key file",
				  key_out);
		else
			admin_err(cmd, "cannot create %s: %s", key_out,
				  strerror(errno));
		goto out;
	}
	created = 1;
	crypto_sign_keypair(pk, sk);
	bv_uuid_generate(id);
	b64 = bv_b64_encode(sk, sizeof(sk));
	if (b64 == NULL) {
		admin_err(cmd, "out of memory");
		goto out;
	}
	n = snprintf(json, sizeof(json),
		     "{\"tenant\": \"%s\", \"secret_key\": \"%s\"}\n", id, b64);
	if (n < 0 || (size_t)n >= sizeof(json)) {
		admin_err(cmd, "internal error: key file too long");
		goto out;
	}
	/* The key is on disk before the tenant exists, so it cannot be lost. */
	if (write_all(fd, json, (size_t)n) < 0 || fsync(fd) < 0) {
		admin_err(cmd, "cannot write %s: %s", key_out, strerror(errno));
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		admin_err(cmd, "cannot write %s: %s", key_out, strerror(errno));
		goto out;
	}
	fd = -1;

	params[0] = id;
	params[1] = name;
	params[2] = org;
	params[3] = (const char *)pk;
	res = PQexecParams(conn,
			   "INSERT INTO tenants (id, name, org_number, "
			   "token_key) VALUES ($1, $2, $3, $4)",
			   4, NULL, params, lengths, formats, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		admin_err(cmd, "cannot create the tenant: %.*s", PQ_MSG(conn));
		goto out;
	}
	created = 0; /* the tenant exists: its key stays, whatever happens */
	printf("%s\n", id);
	status = fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
out:
	if (fd >= 0)
		close(fd);
	if (created && unlink(key_out) < 0)
		admin_err(cmd, "cannot remove %s: %s", key_out,
			  strerror(errno));
	if (b64 != NULL) {
		bv_wipe(b64, strlen(b64));
		bv_free(b64);
	}
	bv_wipe(sk, sizeof(sk));
	bv_wipe(json, sizeof(json));
	PQclear(res);
	PQfinish(conn);
	return status;
}

static char *
skip_ws(char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/*
 * Parses a key file: one flat JSON object whose values are strings without
 * escapes, as tenant-create writes it. Works in place (no copies of the
 * secret): strings are NUL-terminated inside buf. Returns 0 or -1.
 */
static int
parse_key_file(char *buf, const char **tenant, const char **secret)
{
	char *p = buf, *key, *val;

	*tenant = NULL;
	*secret = NULL;
	p = skip_ws(p);
	if (*p++ != '{')
		return -1;
	p = skip_ws(p);
	if (*p == '}')
		return -1;
	for (;;) {
		const char **slot = NULL;

		if (*p++ != '"')
			return -1;
		key = p;
		p = strpbrk(p, "\"\\");
		if (p == NULL || *p != '"')
			return -1;
		*p++ = '\0';
		p = skip_ws(p);
		if (*p++ != ':')
			return -1;
		p = skip_ws(p);
		if (*p++ != '"')
			return -1;
		val = p;
		p = strpbrk(p, "\"\\");
		if (p == NULL || *p != '"')
			return -1;
		*p++ = '\0';
		if (strcmp(key, "tenant") == 0)
			slot = tenant;
		else if (strcmp(key, "secret_key") == 0)
			slot = secret;
		if (slot != NULL) {
			if (*slot != NULL)
				return -1;
			*slot = val;
		}
		p = skip_ws(p);
		if (*p == '}')
			break;
		if (*p++ != ',')
			return -1;
		p = skip_ws(p);
	}
	p++;
	p = skip_ws(p);
	return *p == '\0' && *tenant != NULL && *secret != NULL ? 0 : -1;
}

/*
 * Reads the tenant's key file into tenant and sk. Returns 0, or -1 after
 * reporting why. Nothing secret stays behind in buffers.
 */
static int
read_key_file(const char *cmd, const char *path, char tenant[37],
	      uint8_t sk[64])
{
	char buf[KEY_FILE_MAX + 1];
	uint8_t seed[crypto_sign_SEEDBYTES];
	uint8_t pk2[crypto_sign_PUBLICKEYBYTES];
	uint8_t sk2[crypto_sign_SECRETKEYBYTES];
	const char *t, *s;
	struct stat st;
	size_t len = 0, sklen = 0;
	int fd, rc = -1;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		admin_err(cmd, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		admin_err(cmd, "%s is not a regular file", path);
		goto out;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO))
		fprintf(stderr,
			"bvchat-relay admin %s: warning: %s is readable by "
			"others; it should be mode 0600\n",
			cmd, path);
	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			admin_err(cmd, "cannot read %s: %s", path,
				  strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == sizeof(buf) - 1) {
			admin_err(cmd, "%s is too large to be a key file",
				  path);
			goto out;
		}
	}
	buf[len] = '\0';
	if (parse_key_file(buf, &t, &s) < 0 || !bv_uuid_valid(t)) {
		admin_err(cmd, "%s is not a key file written by tenant-create",
			  path);
		goto out;
	}
	if (bv_b64_decode(s, strlen(s), sk, 64, &sklen) < 0 || sklen != 64) {
		admin_err(cmd, "%s: secret_key is not 64 bytes of base64",
			  path);
		goto out;
	}
	/* An Ed25519 secret key is seed || public key: they must agree. */
	crypto_sign_ed25519_sk_to_seed(seed, sk);
	crypto_sign_seed_keypair(pk2, sk2, seed);
	if (sodium_memcmp(sk, sk2, sizeof(sk2)) != 0) {
		admin_err(cmd,
			  "%s: secret_key is damaged (its halves disagree)",
			  path);
		goto out;
	}
	memcpy(tenant, t, BV_UUID_LEN + 1);
	rc = 0;
out:
	if (rc < 0)
		bv_wipe(sk, 64);
	bv_wipe(buf, sizeof(buf));
	bv_wipe(seed, sizeof(seed));
	bv_wipe(sk2, sizeof(sk2));
	close(fd);
	return rc;
}

static const char usage_issue_token[] =
	"usage: bvchat-relay admin issue-token --key FILE [--account UUID] "
	"[--ttl SECONDS]\n"
	"\n"
	"Prints a new enrollment token, signed with the tenant's secret key\n"
	"from FILE (written by tenant-create). Needs no database: the\n"
	"municipality can run it anywhere it keeps the key. The token\n"
	"enrolls one device, once, before it expires.\n"
	"\n"
	"  --key FILE         the tenant's key file\n"
	"  --account UUID     enroll another device of this account; without\n"
	"                     it the token creates a new account\n"
	"  --ttl SECONDS      how long the token is valid (default 600; the\n"
	"                     relay refuses tokens valid longer than its\n"
	"                     enrollment_token_max_ttl_s)\n";

/* Prints a token just signed (rc from the signing) and wipes it: a token
 * is a credential until it is used or expires. Returns the exit status. */
static int
print_token(const char *cmd, int rc, char *tok)
{
	int status = EXIT_FAIL;

	if (rc < 0)
		admin_err(cmd, "cannot sign the token: %s", bv_strerror(rc));
	else
		status = printf("%s\n", tok) > 0 && fflush(stdout) == 0
				 ? EXIT_OK
				 : EXIT_FAIL;
	if (tok != NULL) {
		bv_wipe(tok, strlen(tok));
		bv_free(tok);
	}
	return status;
}

static int
cmd_issue_token(const struct relay_config *c, int argc, char **argv)
{
	const char *cmd = "issue-token";
	const char *key = NULL, *account = NULL, *ttl_s = NULL;
	struct opt opts[] = {
		{"--key", &key},
		{"--account", &account},
		{"--ttl", &ttl_s},
	};
	struct admin_cmd self = {cmd, NULL, usage_issue_token, NULL};
	struct bv_token t;
	uint8_t sk[64];
	char *tok = NULL, *end;
	long long ttl = TTL_DEFAULT, max_ttl = TTL_MAX_ABSOLUTE;
	int n, rc;
	size_t i;

	memset(&t, 0, sizeof(t));
	n = parse_opts(&self, argc, argv, opts, sizeof(opts) / sizeof(*opts));
	if (n != 0)
		return n > 0 ? EXIT_OK : EXIT_USAGE;
	if (key == NULL) {
		admin_err(cmd, "--key is required (see --help)");
		return EXIT_USAGE;
	}
	if (c != NULL && c->enrollment_token_max_ttl_s > 0)
		max_ttl = c->enrollment_token_max_ttl_s;
	if (ttl_s != NULL) {
		errno = 0;
		ttl = strtoll(ttl_s, &end, 10);
		if (errno != 0 || end == ttl_s || *end != '\0' || ttl < 1 ||
		    ttl > max_ttl) {
			admin_err(
				cmd,
				"--ttl must be 1 to %lld seconds (the relay's "
				"enrollment_token_max_ttl_s)",
				max_ttl);
			return EXIT_USAGE;
		}
	}
	if (account != NULL) {
		if (strlen(account) != BV_UUID_LEN) {
			admin_err(cmd, "--account must be a UUID");
			return EXIT_USAGE;
		}
		for (i = 0; i < BV_UUID_LEN; i++)
			t.account[i] = (char)tolower((unsigned char)account[i]);
		if (!bv_uuid_valid(t.account)) {
			admin_err(cmd, "--account must be a UUID");
			return EXIT_USAGE;
		}
	}
	if (read_key_file(cmd, key, t.tenant, sk) < 0)
		return EXIT_FAIL;
	randombytes_buf(t.jti, sizeof(t.jti));
	t.exp = bv_now_s() + ttl;
	rc = bv_token_sign(&t, sk, &tok);
	bv_wipe(sk, sizeof(sk));
	return print_token(cmd, rc, tok);
}

static const char usage_api_token[] =
	"usage: bvchat-relay admin api-token --key FILE --method GET|POST\n"
	"           --path PATH [--body-file FILE] --sub USER [--ttl SECONDS]\n"
	"\n"
	"Prints a fagsystem API token (docs/fagsystem-api.md) for exactly one\n"
	"request: METHOD on PATH with the bytes of FILE as its body (no\n"
	"--body-file: an empty body, as for GET). Signed with the tenant's\n"
	"secret key from FILE (written by tenant-create); needs no database.\n"
	"The token is good once, and only until it expires. Send it as\n"
	"\"Authorization: Bvchat-Fagsystem TOKEN\".\n"
	"\n"
	"  --key FILE         the tenant's key file\n"
	"  --method M         GET or POST\n"
	"  --path PATH        e.g. /v1/fagsystem/cases\n"
	"  --body-file FILE   the exact body that will be sent (at most 16384\n"
	"                     bytes; \"-\" reads standard input)\n"
	"  --sub USER         the fagsystem user the audit log names\n"
	"                     (fagsystem:USER): 1-64 of A-Z a-z 0-9 . _ @ -\n"
	"  --ttl SECONDS      validity, 1 to 300 (default 60)\n";

#define API_BODY_MAX 16384

/* Reads at most API_BODY_MAX bytes of path ("-": stdin) into buf. */
static int
read_body_file(const char *cmd, const char *path, uint8_t *buf, size_t *len)
{
	int fd = 0;
	size_t n = 0;

	if (strcmp(path, "-") != 0) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			admin_err(cmd, "cannot open %s: %s", path,
				  strerror(errno));
			return -1;
		}
	}
	for (;;) {
		ssize_t r = read(fd, buf + n, API_BODY_MAX + 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			admin_err(cmd, "cannot read %s: %s", path,
				  strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > API_BODY_MAX) {
			admin_err(cmd, "%s: a body is at most %d bytes", path,
				  API_BODY_MAX);
			goto fail;
		}
	}
	if (fd != 0)
		close(fd);
	*len = n;
	return 0;
fail:
	if (fd != 0)
		close(fd);
	return -1;
}

static int
cmd_api_token(const struct relay_config *c, int argc, char **argv)
{
	const char *cmd = "api-token";
	const char *key = NULL, *method = NULL, *path = NULL, *body_file = NULL;
	const char *sub = NULL, *ttl_s = NULL;
	struct opt opts[] = {
		{"--key", &key},   {"--method", &method},
		{"--path", &path}, {"--body-file", &body_file},
		{"--sub", &sub},   {"--ttl", &ttl_s},
	};
	struct admin_cmd self = {cmd, NULL, usage_api_token, NULL};
	static uint8_t body[API_BODY_MAX + 1];
	struct bv_apitoken t;
	uint8_t sk[64];
	char *tok = NULL, *end;
	long long ttl = 60;
	size_t body_len = 0;
	int n, rc;

	(void)c;
	memset(&t, 0, sizeof(t));
	n = parse_opts(&self, argc, argv, opts, sizeof(opts) / sizeof(*opts));
	if (n != 0)
		return n > 0 ? EXIT_OK : EXIT_USAGE;
	if (key == NULL || method == NULL || path == NULL || sub == NULL) {
		admin_err(cmd, "--key, --method, --path and --sub are "
			       "required (see --help)");
		return EXIT_USAGE;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0) {
		admin_err(cmd, "--method is GET or POST");
		return EXIT_USAGE;
	}
	if (path[0] != '/' || strchr(path, '?') != NULL) {
		admin_err(cmd, "--path is a path such as /v1/fagsystem/cases");
		return EXIT_USAGE;
	}
	if (!bv_apitoken_sub_valid(sub)) {
		admin_err(cmd, "--sub is 1-64 of A-Z a-z 0-9 . _ @ -");
		return EXIT_USAGE;
	}
	if (ttl_s != NULL) {
		errno = 0;
		ttl = strtoll(ttl_s, &end, 10);
		if (errno != 0 || end == ttl_s || *end != '\0' || ttl < 1 ||
		    ttl > 300) {
			admin_err(cmd, "--ttl must be 1 to 300 seconds");
			return EXIT_USAGE;
		}
	}
	if (body_file != NULL &&
	    read_body_file(cmd, body_file, body, &body_len) < 0)
		return EXIT_FAIL;
	snprintf(t.sub, sizeof(t.sub), "%s", sub);
	if (bv_apitoken_request_hash(method, path, body, body_len, t.req) < 0) {
		admin_err(cmd, "cannot hash the request");
		return EXIT_FAIL;
	}
	if (read_key_file(cmd, key, t.tenant, sk) < 0)
		return EXIT_FAIL;
	randombytes_buf(t.jti, sizeof(t.jti));
	t.exp = bv_now_s() + ttl;
	rc = bv_apitoken_sign(&t, sk, &tok);
	bv_wipe(sk, sizeof(sk));
	return print_token(cmd, rc, tok);
}

static const char usage_tenant_list[] =
	"usage: bvchat-relay admin tenant-list\n"
	"\n"
	"Lists every tenant: UUID, organisation number, number of accounts,\n"
	"creation time (UTC) and name, oldest first.\n";

static int
cmd_tenant_list(const struct relay_config *c, int argc, char **argv)
{
	const char *cmd = "tenant-list";
	struct admin_cmd self = {cmd, NULL, usage_tenant_list, NULL};
	PGconn *conn = NULL;
	PGresult *res = NULL;
	int status = EXIT_FAIL, n, i;

	n = parse_opts(&self, argc, argv, NULL, 0);
	if (n != 0)
		return n > 0 ? EXIT_OK : EXIT_USAGE;
	conn = db_open(c, cmd);
	if (conn == NULL)
		goto out;
	res = PQexec(conn, "SELECT t.id, coalesce(t.org_number, '-'), "
			   "(SELECT count(*) FROM accounts a "
			   "WHERE a.tenant_id = t.id), "
			   "to_char(t.created_at AT TIME ZONE 'UTC', "
			   "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), t.name "
			   "FROM tenants t ORDER BY t.created_at, t.id");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		admin_err(cmd, "cannot list tenants: %.*s", PQ_MSG(conn));
		goto out;
	}
	printf("%-36s  %-10s  %8s  %-20s  %s\n", "TENANT", "ORG-NUMBER",
	       "ACCOUNTS", "CREATED", "NAME");
	for (i = 0; i < PQntuples(res); i++)
		printf("%-36s  %-10s  %8s  %-20s  %s\n", PQgetvalue(res, i, 0),
		       PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
		       PQgetvalue(res, i, 3), PQgetvalue(res, i, 4));
	status = fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
out:
	PQclear(res);
	PQfinish(conn);
	return status;
}

static const char usage_stats[] =
	"usage: bvchat-relay admin stats\n"
	"\n"
	"Prints counts, one \"name value\" per line: tenants, accounts,\n"
	"devices and queued envelopes (not yet acknowledged). Never bodies.\n";

static int
cmd_stats(const struct relay_config *c, int argc, char **argv)
{
	const char *cmd = "stats";
	const char *names[] = {"tenants", "accounts", "devices",
			       "queued_envelopes"};
	struct admin_cmd self = {cmd, NULL, usage_stats, NULL};
	PGconn *conn = NULL;
	PGresult *res = NULL;
	int status = EXIT_FAIL, n, i;

	n = parse_opts(&self, argc, argv, NULL, 0);
	if (n != 0)
		return n > 0 ? EXIT_OK : EXIT_USAGE;
	conn = db_open(c, cmd);
	if (conn == NULL)
		goto out;
	res = PQexec(conn, "SELECT (SELECT count(*) FROM tenants), "
			   "(SELECT count(*) FROM accounts), "
			   "(SELECT count(*) FROM devices), "
			   "(SELECT count(*) FROM queue)");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		admin_err(cmd, "cannot count: %.*s", PQ_MSG(conn));
		goto out;
	}
	for (i = 0; i < 4; i++)
		printf("%s %s\n", names[i], PQgetvalue(res, 0, i));
	status = fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
out:
	PQclear(res);
	PQfinish(conn);
	return status;
}

/* ---- cases, rosters, protections, conversations (docs/cases.md) ---- */

/*
 * A command that calls one function of migrations/0003_create_cases.sql
 * with its options as parameters, in order. Every change is audited by the
 * function itself, with the actor "admin:<login>". Missing optional
 * options are NULL (the function keeps what was there).
 */
struct sql_cmd {
	const char *name;
	const char *sql;
	const char *opts[7];
	unsigned required; /* bitmask over opts */
};

static const struct sql_cmd sql_cmds[] = {
	{"tenant-set",
	 "SELECT bv_tenant_set($1::uuid, $2, bv_office_days($3), $4::time, "
	 "$5::time, $6), bv_tenant_set_answer_days($1::uuid, $7::integer)",
	 {"--tenant", "--org-number", "--office-days", "--open", "--close",
	  "--out-of-hours-phone", "--email-answer-days"},
	 0x1},
	{"tenant-blobs",
	 "SELECT bv_tenant_blobs_set($1::uuid, $2::bigint, $3::int)",
	 {"--tenant", "--quota-bytes", "--retention-days"},
	 0x1},
	{"case-create",
	 "SELECT bv_case_create($1::uuid, $2)",
	 {"--tenant", "--case-number"},
	 0x3},
	{"archive-set",
	 "SELECT bv_archive_set($1::uuid, $2::uuid)",
	 {"--tenant", "--account"},
	 0x3},
	{"roster-add",
	 "SELECT bv_roster_add($1::uuid, $2::uuid, $3, $4)",
	 {"--case", "--account", "--role", "--name"},
	 0xf},
	{"roster-remove",
	 "SELECT bv_roster_remove($1::uuid, $2::uuid)",
	 {"--case", "--account"},
	 0x3},
	{"protect",
	 "SELECT bv_protect($1::uuid, $2::uuid, $3::uuid)",
	 {"--case", "--person", "--from"},
	 0x7},
	{"conversation-create",
	 "SELECT bv_conversation_create($1::uuid, $2::uuid, $3, "
	 "string_to_array($4, ',')::uuid[])",
	 {"--case", "--by", "--kind", "--members"},
	 0xf},
	{"notify-contact",
	 "SELECT bv_notify_contact((SELECT tenant_id FROM accounts WHERE id = "
	 "$1::uuid), $1::uuid, $2, $3)",
	 {"--account", "--phone", "--email"},
	 0x1},
	{"notify-tenant",
	 "SELECT bv_notify_tenant_set($1::uuid, $2::int, $3::int, $4::time, "
	 "$5::time)",
	 {"--tenant", "--wait-minutes", "--window-minutes", "--quiet-start",
	  "--quiet-end"},
	 0x1},
	{"task-tenant",
	 "SELECT bv_task_tenant_set($1::uuid, $2::int, $3)",
	 {"--tenant", "--after-minutes", "--fiks-konto"},
	 0x1},
	{"notify-template",
	 "SELECT bv_notify_template_set($1::uuid, $2, $3, $4::boolean, $5, "
	 "$6)",
	 {"--tenant", "--language", "--channel", "--mention-service",
	  "--subject", "--body"},
	 0x7},
};

#define SQL_NCMDS (sizeof(sql_cmds) / sizeof(sql_cmds[0]))

static const char usage_cases[] =
	"usage: bvchat-relay admin tenant-set --tenant UUID [--org-number N]\n"
	"           [--office-days mon-fri] [--open HH:MM] [--close HH:MM]\n"
	"           [--out-of-hours-phone NUMBER] [--email-answer-days N]\n"
	"       bvchat-relay admin tenant-blobs --tenant UUID "
	"[--quota-bytes N]\n"
	"           [--retention-days N]\n"
	"       bvchat-relay admin case-create --tenant UUID --case-number N\n"
	"       bvchat-relay admin archive-set --tenant UUID --account UUID\n"
	"       bvchat-relay admin roster-add --case UUID --account UUID "
	"--role ROLE\n"
	"           --name 'DISPLAY NAME'\n"
	"       bvchat-relay admin roster-remove --case UUID --account UUID\n"
	"       bvchat-relay admin protect --case UUID --person UUID --from "
	"UUID\n"
	"       bvchat-relay admin conversation-create --case UUID --by UUID\n"
	"           --kind team|citizens --members UUID[,UUID…]\n"
	"       bvchat-relay admin case-show --case UUID\n"
	"       bvchat-relay admin case-export --case UUID\n"
	"\n"
	"The case model of docs/cases.md. Roles: child, parent, "
	"foster_parent,\n"
	"guardian, supervisor, support_contact (citizens); caseworker,\n"
	"team_lead, service_leader (the case team). --office-days takes days\n"
	"and ranges (mon,wed-fri). protect: PERSON is never revealed to FROM.\n"
	"conversation-create applies the contact rules as if BY asked.\n"
	"tenant-blobs: bytes of attachments the tenant may hold (20 GiB\n"
	"by default) and days a journaled one is kept (30).\n"
	"case-create and conversation-create print the new UUID. case-show\n"
	"prints the case's roster, protections and conversations as text;\n"
	"case-export prints the same as one line of JSON, as the fagsystem\n"
	"API's GET /v1/fagsystem/cases/<id> answers. Every change and every\n"
	"export (case-show, case-export: case.export) is in the audit log\n"
	"(actor admin:<login>). A refusal exits 1 with the reason; \"not\n"
	"found or not allowed\" is one answer on purpose.\n";

static const char usage_notify[] =
	"usage: bvchat-relay admin notify-contact --account UUID [--phone N]\n"
	"           [--email ADDRESS]\n"
	"       bvchat-relay admin notify-tenant --tenant UUID "
	"[--wait-minutes N]\n"
	"           [--window-minutes N] [--quiet-start HH:MM] "
	"[--quiet-end HH:MM]\n"
	"       bvchat-relay admin notify-template --tenant UUID --language "
	"nb|nn|en|se\n"
	"           --channel sms|email|webpush [--mention-service "
	"true|false]\n"
	"           [--subject TEXT] [--body TEXT]\n"
	"       bvchat-relay admin task-tenant --tenant UUID "
	"[--after-minutes N]\n"
	"           [--fiks-konto UUID]\n"
	"\n"
	"Notifications (docs/operations.md \"Notifications\"). notify-contact\n"
	"registers the phone number (8 to 15 digits, + first allowed) and\n"
	"e-mail address the municipality has for a person; \"\" removes one.\n"
	"A person picks the channel and language in the app (notify_set);\n"
	"numbers and addresses never come from the app. notify-tenant sets\n"
	"how long a message may wait undelivered before anyone is told, at\n"
	"most one notification a window, and the quiet hours (tenant's time\n"
	"zone; equal start and end: none). notify-template sets the tenant's\n"
	"own text; without --body, back to the default. {kommune} in a text "
	"is\n"
	"the tenant's name. Never put a name, a case or message content in a\n"
	"text. Every change is audited (actor admin:<login>), never with the\n"
	"number or address.\n"
	"task-tenant: how long a citizen's message to the case team may stay\n"
	"unanswered (1 to 43200 minutes, 1440 by default) before\n"
	"bvchat-notifier raises a task for the fagsystem, and the FIKS IO\n"
	"account (kontoId) that receives them; \"\" turns tasks off\n"
	"(docs/operations.md \"Staff tasks\").\n";

/* "admin:<login>", the actor the audit log records. */
static void
admin_actor(char *buf, size_t cap)
{
	const char *who = getenv("SUDO_USER");

	if (who == NULL || *who == '\0')
		who = getenv("USER");
	if (who == NULL || *who == '\0') {
		const struct passwd *pw = getpwuid(geteuid());

		who = pw != NULL ? pw->pw_name : "unknown";
	}
	snprintf(buf, cap, "admin:%.64s", who);
}

/* Runs sql with params in one transaction that names the actor. */
static PGresult *
exec_as_admin(PGconn *conn, const char *sql, int n, const char *const *params)
{
	const char *actor_param[1];
	char actor[80];
	PGresult *res;

	admin_actor(actor, sizeof(actor));
	actor_param[0] = actor;
	res = PQexec(conn, "BEGIN");
	PQclear(res);
	res = PQexecParams(conn, "SELECT set_config('bvchat.actor', $1, true)",
			   1, NULL, actor_param, NULL, NULL, 0);
	PQclear(res);
	res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) == PGRES_TUPLES_OK) {
		PGresult *c = PQexec(conn, "COMMIT");

		if (PQresultStatus(c) != PGRES_COMMAND_OK) {
			PQclear(res);
			res = c;
		} else {
			PQclear(c);
		}
	} else {
		PQclear(PQexec(conn, "ROLLBACK"));
	}
	return res;
}

/* Reports a refused call: our own SQLSTATEs carry the reason. */
static void
sql_refused(const char *cmd, PGconn *conn, const PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

	if (state != NULL && strcmp(state, "BV030") == 0)
		admin_err(cmd, "not found or not allowed (%s)",
			  msg ? msg : "-");
	else if (msg != NULL)
		admin_err(cmd, "refused: %s", msg);
	else
		admin_err(cmd, "failed: %.*s", PQ_MSG(conn));
}

static int
cmd_sql(const struct relay_config *c, int argc, char **argv)
{
	const struct sql_cmd *sc = NULL;
	struct admin_cmd self = {argv[0], NULL,
				 strncmp(argv[0], "notify-", 7) ? usage_cases
								: usage_notify,
				 NULL};
	const char *vals[7] = {NULL};
	struct opt opts[7];
	PGconn *conn = NULL;
	PGresult *res = NULL;
	size_t i, n = 0;
	int status = EXIT_FAIL, r;

	for (i = 0; i < SQL_NCMDS; i++)
		if (strcmp(sql_cmds[i].name, argv[0]) == 0)
			sc = &sql_cmds[i];
	if (sc == NULL)
		return EXIT_USAGE;
	for (n = 0; n < 7 && sc->opts[n] != NULL; n++) {
		opts[n].name = sc->opts[n];
		opts[n].value = &vals[n];
	}
	r = parse_opts(&self, argc, argv, opts, n);
	if (r != 0)
		return r > 0 ? EXIT_OK : EXIT_USAGE;
	for (i = 0; i < n; i++)
		if ((sc->required & (1u << i)) && vals[i] == NULL) {
			admin_err(sc->name, "%s is required (see --help)",
				  sc->opts[i]);
			return EXIT_USAGE;
		}
	conn = db_open(c, sc->name);
	if (conn == NULL)
		goto out;
	res = exec_as_admin(conn, sc->sql, (int)n, vals);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		sql_refused(sc->name, conn, res);
		goto out;
	}
	if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) &&
	    *PQgetvalue(res, 0, 0) != '\0')
		printf("%s\n", PQgetvalue(res, 0, 0));
	status = fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
out:
	PQclear(res);
	PQfinish(conn);
	return status;
}

/* A string member of an exported object, "-" when there is none. */
static const char *
member(const json_t *o, const char *name)
{
	const char *v = json_string_value(json_object_get(o, name));

	return v != NULL ? v : "-";
}

/* Prints an exported case for a person: a header for each part, then its
 * rows, one a line. */
static void
print_case_text(const json_t *e, const char *tenant_name)
{
	const json_t *v, *m;
	size_t i, k;

	printf("case:\n  %s %s %s\n", member(e, "case"),
	       member(e, "case_number"), tenant_name);
	printf("roster:\n");
	json_array_foreach(json_object_get(e, "roster"), i, v)
		printf("  %s %s %s\n", member(v, "account"), member(v, "role"),
		       member(v, "name"));
	printf("protected (person from):\n");
	json_array_foreach(json_object_get(e, "protections"), i, v)
		printf("  %s %s\n", member(v, "protected"), member(v, "from"));
	printf("conversations (id kind state members):\n");
	json_array_foreach(json_object_get(e, "conversations"), i, v)
	{
		const json_t *ms = json_object_get(v, "members");

		printf("  %s %s %s ", member(v, "conversation"),
		       member(v, "kind"), member(v, "state"));
		if (json_array_size(ms) == 0)
			putchar('-');
		json_array_foreach(ms, k, m) printf(
			"%s%s", k > 0 ? "," : "",
			json_string_value(m) ? json_string_value(m) : "-");
		putchar('\n');
	}
}

/*
 * case-show and case-export: one export of a case by bv_case_export()
 * (migrations/0006), audited as case.export with the actor admin:<login>
 * and the form in the same transaction, committed before anything is
 * printed. case-export prints the case as the fagsystem API answers it
 * (compact JSON, one line), case-show as text. "not found or not allowed"
 * for a case that does not exist, and then nothing is audited.
 */
static int
cmd_case_export(const struct relay_config *c, int argc, char **argv)
{
	const char *cmd = argv[0];
	const int as_text = strcmp(cmd, "case-show") == 0;
	struct admin_cmd self = {cmd, NULL, usage_cases, NULL};
	const char *case_id = NULL;
	struct opt opts[] = {{"--case", &case_id}};
	const char *params[2];
	PGconn *conn = NULL;
	PGresult *res = NULL;
	json_t *e = NULL;
	int status = EXIT_FAIL, r;

	r = parse_opts(&self, argc, argv, opts, 1);
	if (r != 0)
		return r > 0 ? EXIT_OK : EXIT_USAGE;
	if (case_id == NULL) {
		admin_err(cmd, "--case is required (see --help)");
		return EXIT_USAGE;
	}
	conn = db_open(c, cmd);
	if (conn == NULL)
		goto out;
	params[0] = case_id;
	params[1] = as_text ? "text" : "json";
	res = exec_as_admin(conn,
			    "SELECT e, (SELECT t.name FROM cases k JOIN "
			    "tenants t ON t.id = k.tenant_id WHERE k.id = "
			    "$1::uuid) FROM bv_case_export(NULL, $1::uuid, "
			    "$2) e",
			    2, params);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		sql_refused(cmd, conn, res);
		goto out;
	}
	if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
		admin_err(cmd, "not found or not allowed (no such case)");
		goto out;
	}
	e = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
	if (!json_is_object(e)) {
		admin_err(cmd, "internal error: the export is not JSON");
		goto out;
	}
	if (as_text) {
		print_case_text(e, PQgetvalue(res, 0, 1));
	} else if (json_dumpf(e, stdout, JSON_COMPACT) < 0 ||
		   putchar('\n') == EOF) {
		goto out;
	}
	status = fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
out:
	json_decref(e);
	PQclear(res);
	PQfinish(conn);
	return status;
}

static const char usage_invite[] =
	"usage: bvchat-relay admin invite --account UUID [--ttl SECONDS]\n"
	"\n"
	"Prints a new invite code (XXXXX-XXXXX) for an existing citizen\n"
	"account, for a person without eID to type into the widget\n"
	"(docs/protocol.md, \"Invites\"), and on the next line when it\n"
	"expires (UTC). The code is good once; hand it over like a password.\n"
	"The database keeps only its keyed hash: this needs the relays'\n"
	"invite_key_file. Audited as invite.create (actor admin:<login>).\n"
	"\"not found or not allowed\" for an account that does not exist, is\n"
	"an archive or holds a staff role on a case: one answer on purpose.\n"
	"\n"
	"  --account UUID     the person's account\n"
	"  --ttl SECONDS      how long the code is valid: 60 to\n"
	"                     invite_max_ttl_s (default 259200, 72 hours,\n"
	"                     or invite_max_ttl_s when that is less)\n";

static int
cmd_invite(const struct relay_config *c, int argc, char **argv)
{
	const char *cmd = "invite";
	const char *account = NULL, *ttl_s = NULL;
	struct opt opts[] = {{"--account", &account}, {"--ttl", &ttl_s}};
	struct admin_cmd self = {cmd, NULL, usage_invite, NULL};
	uint8_t key[INVITE_KEY_LEN], hash[INVITE_HASH_LEN];
	char code[INVITE_CODE_LEN + 1], canon[INVITE_SYMBOLS + 1];
	char hex[2 + 2 * INVITE_HASH_LEN + 1], ttl[16], max_ttl[16], err[256];
	const char *params[4] = {NULL, hex, ttl, max_ttl};
	long long t = INVITE_TTL_DEFAULT, max = INVITE_TTL_DEFAULT;
	PGconn *conn = NULL;
	PGresult *res = NULL;
	int status = EXIT_FAIL, n;
	char *end;

	n = parse_opts(&self, argc, argv, opts, sizeof(opts) / sizeof(*opts));
	if (n != 0)
		return n > 0 ? EXIT_OK : EXIT_USAGE;
	if (account == NULL) {
		admin_err(cmd, "--account is required (see --help)");
		return EXIT_USAGE;
	}
	if (!bv_uuid_valid(account)) {
		admin_err(cmd, "--account must be a UUID (lower case)");
		return EXIT_USAGE;
	}
	if (c != NULL)
		max = c->invite_max_ttl_s;
	if (t > max)
		t = max;
	if (ttl_s != NULL) {
		errno = 0;
		t = strtoll(ttl_s, &end, 10);
		if (errno != 0 || end == ttl_s || *end != '\0' ||
		    t < INVITE_TTL_MIN || t > max) {
			admin_err(cmd,
				  "--ttl must be %d to %lld seconds (the "
				  "relay's invite_max_ttl_s)",
				  INVITE_TTL_MIN, max);
			return EXIT_USAGE;
		}
	}
	if (c == NULL || c->invite_key_file == NULL ||
	    *c->invite_key_file == '\0') {
		admin_err(cmd, "needs the relays' invite_key_file (set it in "
			       "the config file or with --invite_key_file)");
		return EXIT_USAGE;
	}
	if (invite_key_load(c->invite_key_file, key, err, sizeof(err)) < 0) {
		admin_err(cmd, "%s", err);
		return EXIT_FAIL;
	}
	conn = db_open(c, cmd);
	if (conn == NULL)
		goto out;
	invite_code_new(code);
	if (invite_code_normalize(code, canon) < 0)
		goto out;
	invite_code_hash(key, canon, hash);
	memcpy(hex, "\\x", 2);
	sodium_bin2hex(hex + 2, sizeof(hex) - 2, hash, sizeof(hash));
	snprintf(ttl, sizeof(ttl), "%lld", t);
	snprintf(max_ttl, sizeof(max_ttl), "%lld", max);
	params[0] = account;
	/* The account's own tenant: the operator is not confined to one. */
	res = exec_as_admin(conn,
			    "SELECT to_char(to_timestamp(i.expires) AT TIME "
			    "ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
			    "FROM bv_invite_create((SELECT a.tenant_id FROM "
			    "accounts a WHERE a.id = $1::uuid), $1::uuid, "
			    "$2::bytea, $3::int, $4::int) i",
			    4, params);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		sql_refused(cmd, conn, res);
		goto out;
	}
	printf("%s\nexpires %s\n", code, PQgetvalue(res, 0, 0));
	status = fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
out:
	bv_wipe(key, sizeof(key));
	bv_wipe(code, sizeof(code));
	bv_wipe(canon, sizeof(canon));
	bv_wipe(hash, sizeof(hash));
	PQclear(res);
	PQfinish(conn);
	return status;
}

static const struct admin_cmd admin_cmds[] = {
	{"tenant-create", "create a tenant and its token-signing key",
	 usage_tenant_create, cmd_tenant_create},
	{"issue-token", "print an enrollment token (no database needed)",
	 usage_issue_token, cmd_issue_token},
	{"api-token", "print a fagsystem API token for one request",
	 usage_api_token, cmd_api_token},
	{"tenant-list", "list tenants", usage_tenant_list, cmd_tenant_list},
	{"stats", "count tenants, accounts, devices, queued envelopes",
	 usage_stats, cmd_stats},
	{"tenant-set", "set office hours, out-of-hours number, org number",
	 usage_cases, cmd_sql},
	{"tenant-blobs", "set attachment quota and retention", usage_cases,
	 cmd_sql},
	{"case-create", "create a case (prints its UUID)", usage_cases,
	 cmd_sql},
	{"archive-set", "make an account the tenant's archive", usage_cases,
	 cmd_sql},
	{"roster-add", "put a person on a case with a role", usage_cases,
	 cmd_sql},
	{"roster-remove", "take a person off a case", usage_cases, cmd_sql},
	{"protect", "never reveal one person to another", usage_cases, cmd_sql},
	{"conversation-create", "create a conversation of a case", usage_cases,
	 cmd_sql},
	{"case-show", "print a case's roster and conversations (audited)",
	 usage_cases, cmd_case_export},
	{"case-export", "print a case as JSON, one line (audited)", usage_cases,
	 cmd_case_export},
	{"invite", "print an invite code for a citizen account", usage_invite,
	 cmd_invite},
	{"notify-contact", "set a person's phone and e-mail for notices",
	 usage_notify, cmd_sql},
	{"notify-tenant", "set notification wait, window, quiet hours",
	 usage_notify, cmd_sql},
	{"notify-template", "set a tenant's notification text", usage_notify,
	 cmd_sql},
	{"task-tenant", "set when staff tasks go, and to which FIKS account",
	 usage_notify, cmd_sql},
};

#define ADMIN_NCMDS (sizeof(admin_cmds) / sizeof(admin_cmds[0]))

static void
admin_usage(FILE *f)
{
	size_t i;

	fputs("usage: bvchat-relay [--database CONNINFO] admin COMMAND "
	      "[OPTIONS]\n\ncommands:\n",
	      f);
	for (i = 0; i < ADMIN_NCMDS; i++)
		fprintf(f, "  %-15s %s\n", admin_cmds[i].name,
			admin_cmds[i].summary);
	fputs("\n`bvchat-relay admin COMMAND --help` describes one command.\n",
	      f);
}

static const struct admin_cmd *
find_cmd(const char *name)
{
	size_t i;

	for (i = 0; i < ADMIN_NCMDS; i++)
		if (strcmp(admin_cmds[i].name, name) == 0)
			return &admin_cmds[i];
	return NULL;
}

int
admin_main(const struct relay_config *c, int argc, char **argv)
{
	const struct admin_cmd *cmd;

	if (argc < 1 || argv[0] == NULL) {
		admin_usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0 ||
	    strcmp(argv[0], "help") == 0) {
		if (argc > 1 && (cmd = find_cmd(argv[1])) != NULL) {
			fputs(cmd->usage, stdout);
			return EXIT_OK;
		}
		admin_usage(stdout);
		return EXIT_OK;
	}
	cmd = find_cmd(argv[0]);
	if (cmd == NULL) {
		fprintf(stderr, "bvchat-relay admin: unknown command '%s'\n\n",
			argv[0]);
		admin_usage(stderr);
		return EXIT_USAGE;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "bvchat-relay admin: libsodium failed to "
				"initialise\n");
		return EXIT_FAIL;
	}
	return cmd->run(c, argc, argv);
}
