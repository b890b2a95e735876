/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * fiks_io.c: the FIKS IO transport (fiks_io.h, docs/fiks.md "Transport"):
 * the config file, the JWT-bearer token, HTTP send/katalog/dokumentlager
 * over libcurl, and the account's AMQP queue over librabbitmq with manual
 * ack and reconnection; at the end, fiks_send/fiks_reply/fiks_open, which
 * wrap fiks_asice and fiks_cms around it. Packages are built and checked
 * there, not here; this file bounds every byte that comes from the
 * network.
 */
#include <ctype.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/time.h>

#include <arpa/inet.h>

#include <amqp.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "bv_error.h"
#include "bv_util.h"
#include "fiks_asice.h"
#include "fiks_cms.h"
#include "fiks_error.h"
#include "fiks_identity.h"
#include "fiks_io.h"

#define QUEUE_PREFIX  "fiksio.konto."
#define KATALOG_CACHE 32
/* A token is renewed this long before the server says it expires. */
#define TOKEN_MARGIN_S 30
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
/* A polite Connection.Close waits this long for its answer. */
#define CLOSE_WAIT_MS	500
#define CONFIG_LINE_MAX 4096
/* Custom header strings of one message, in all. */
#define HEADER_BYTES_MAX                                                       \
	(FIKS_HEADERS_MAX *                                                    \
	 (FIKS_HEADER_NAME_MAX + 1 + FIKS_HEADER_VALUE_MAX + 1))

struct katalog_entry {
	char konto[FIKS_UUID_LEN + 1];
	char *pem;
};

struct fiks_client {
	struct fiks_config cfg;
	struct fiks_identity *me;     /* the account's pair: decrypts */
	struct fiks_identity *signer; /* signs packages and grants; may be me */
	char *x5c; /* the signer's certificate, DER in standard base64 */
	char *token;
	int64_t token_exp; /* unix seconds after which we fetch another */
	CURL *curl;
	struct katalog_entry katalog[KATALOG_CACHE];
	size_t katalog_next;

	amqp_connection_state_t amqp;
	uint64_t epoch; /* increases with every AMQP connection */
	int backoff_ms;
	long tls_error; /* the first X509_V_ERR_* of the last handshake */
};

static atomic_uint_least64_t epochs;

static struct fiks_identity *
signer(const struct fiks_client *c)
{
	return c->signer ? c->signer : c->me;
}

/* fiks_melding plus the storage its header pointers point into. */
struct melding_impl {
	struct fiks_melding m;
	char *strings;
};

/* ------------------------------------------------------------------ */
/* Configuration                                                        */
/* ------------------------------------------------------------------ */

enum cfg_kind { CFG_STR, CFG_INT, CFG_BOOL };

static const struct cfg_key {
	const char *name;
	enum cfg_kind kind;
	size_t off;
	int required;
	int lo, hi; /* numbers: the range accepted */
} cfg_keys[] = {
#define S_(f, r)                                                               \
	{                                                                      \
#f, CFG_STR, offsetof(struct fiks_config, f), r, 0, 0          \
	}
#define I_(f, lo, hi)                                                          \
	{                                                                      \
#f, CFG_INT, offsetof(struct fiks_config, f), 0, lo, hi        \
	}
	S_(api_url, 1),
	S_(token_url, 1),
	S_(amqp_host, 1),
	I_(amqp_port, 1, 65535),
	S_(amqp_vhost, 0),
	{"amqp_tls", CFG_BOOL, offsetof(struct fiks_config, amqp_tls), 0, 0, 1},
	S_(amqp_cafile, 0),
	/* 0 in the file is off (FIKS_HEARTBEAT_OFF in the struct). */
	I_(amqp_heartbeat, 0, FIKS_HEARTBEAT_MAX),
	S_(integration_id, 1),
	S_(integration_password, 1),
	S_(client_id, 1),
	S_(account_id, 1),
	S_(key_path, 1),
	S_(cert_path, 1),
	S_(sign_key_path, 0),
	S_(sign_cert_path, 0),
	I_(prefetch, 1, 65535),
	I_(timeout_ms, 1, 3600000),
#undef S_
#undef I_
};
#define N_CFG_KEYS (sizeof(cfg_keys) / sizeof(cfg_keys[0]))
_Static_assert(N_CFG_KEYS <= 32, "fiks_config_load's 'seen' is 32 bits");

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' ||
			 e[-1] == '\n'))
		*--e = '\0';
	return s;
}

static void
free_secret(char *s)
{
	if (s) {
		bv_wipe(s, strlen(s));
		bv_free(s);
	}
}

void
fiks_config_free(struct fiks_config *cfg)
{
	size_t i;

	if (!cfg)
		return;
	for (i = 0; i < N_CFG_KEYS; i++) {
		if (cfg_keys[i].kind == CFG_STR) {
			char **p = (char **)((char *)cfg + cfg_keys[i].off);

			free_secret(*p);
			*p = NULL;
		}
	}
	memset(cfg, 0, sizeof(*cfg));
}

static int
uuid_ok(const char *s)
{
	size_t i;

	if (!s || strlen(s) != FIKS_UUID_LEN)
		return 0;
	for (i = 0; i < FIKS_UUID_LEN; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!isxdigit((unsigned char)s[i])) {
			return 0;
		}
	}
	return 1;
}

static int
parse_int(const char *v, int min, int max, int *out)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < min || n > max)
		return -1;
	*out = (int)n;
	return 0;
}

int
fiks_config_load(const char *path, struct fiks_config *cfg, char *err,
		 size_t errcap)
{
	char line[CONFIG_LINE_MAX + 2];
	unsigned seen = 0;
	int lineno = 0, rc = 0;
	size_t i;
	FILE *f;

	memset(cfg, 0, sizeof(*cfg));
	if (err && errcap)
		err[0] = '\0';
	f = fopen(path, "r");
	if (!f) {
		if (err)
			snprintf(err, errcap, "%s: %s", path, strerror(errno));
		return BV_EIO;
	}
	while (fgets(line, sizeof(line), f)) {
		char *k, *v;
		const struct cfg_key *key = NULL;

		lineno++;
		if (strlen(line) > CONFIG_LINE_MAX ||
		    (!strchr(line, '\n') && !feof(f))) {
			if (err)
				snprintf(err, errcap, "%s:%d: line too long",
					 path, lineno);
			rc = BV_ECONFIG;
			goto out;
		}
		k = trim(line);
		if (!*k || *k == '#')
			continue;
		v = k + strcspn(k, " \t");
		if (*v)
			*v++ = '\0';
		v = trim(v);
		for (i = 0; i < N_CFG_KEYS; i++)
			if (strcmp(cfg_keys[i].name, k) == 0)
				key = &cfg_keys[i];
		if (!key) {
			if (err)
				snprintf(err, errcap,
					 "%s:%d: unknown key '%.64s'", path,
					 lineno, k);
			rc = BV_ECONFIG;
			goto out;
		}
		if (seen & (1u << (key - cfg_keys))) {
			if (err)
				snprintf(err, errcap, "%s:%d: '%s' given twice",
					 path, lineno, key->name);
			rc = BV_ECONFIG;
			goto out;
		}
		seen |= 1u << (key - cfg_keys);
		if (!*v) {
			if (err)
				snprintf(err, errcap,
					 "%s:%d: '%s' needs a value", path,
					 lineno, key->name);
			rc = BV_ECONFIG;
			goto out;
		}
		if (key->kind == CFG_STR) {
			char **p = (char **)((char *)cfg + key->off);

			*p = bv_strdup(v);
			if (!*p) {
				rc = BV_ENOMEM;
				goto out;
			}
		} else {
			int *p = (int *)((char *)cfg + key->off);

			if (parse_int(v, key->lo, key->hi, p) < 0) {
				if (err)
					snprintf(err, errcap,
						 "%s:%d: '%s' must be a number "
						 "%d…%d",
						 path, lineno, key->name,
						 key->lo, key->hi);
				rc = BV_ECONFIG;
				goto out;
			}
			if (p == &cfg->amqp_heartbeat && *p == 0)
				*p = FIKS_HEARTBEAT_OFF;
		}
	}
	if (ferror(f)) {
		rc = BV_EIO;
		goto out;
	}
	for (i = 0; i < N_CFG_KEYS; i++) {
		if (cfg_keys[i].required && !(seen & (1u << i))) {
			if (err)
				snprintf(err, errcap, "%s: '%s' is missing",
					 path, cfg_keys[i].name);
			rc = BV_ECONFIG;
			goto out;
		}
	}
	if (!uuid_ok(cfg->integration_id) || !uuid_ok(cfg->account_id)) {
		if (err)
			snprintf(err, errcap, "%s: %s is not a UUID", path,
				 uuid_ok(cfg->account_id) ? "integration_id"
							  : "account_id");
		rc = BV_ECONFIG;
		goto out;
	}
	if (strncmp(cfg->api_url, "http://", 7) != 0 &&
	    strncmp(cfg->api_url, "https://", 8) != 0) {
		if (err)
			snprintf(err, errcap, "%s: api_url must be http(s)",
				 path);
		rc = BV_ECONFIG;
		goto out;
	}
	if (strncmp(cfg->token_url, "http://", 7) != 0 &&
	    strncmp(cfg->token_url, "https://", 8) != 0) {
		if (err)
			snprintf(err, errcap, "%s: token_url must be http(s)",
				 path);
		rc = BV_ECONFIG;
		goto out;
	}
	if (cfg->amqp_cafile && !cfg->amqp_tls) {
		if (err)
			snprintf(err, errcap,
				 "%s: amqp_cafile is for amqp_tls 1 only",
				 path);
		rc = BV_ECONFIG;
		goto out;
	}
	if (strchr(cfg->integration_password, ' ')) {
		if (err)
			snprintf(err, errcap,
				 "%s: integration_password has a space", path);
		rc = BV_ECONFIG;
		goto out;
	}
	{
		size_t l = strlen(cfg->api_url);

		while (l > 0 && cfg->api_url[l - 1] == '/')
			cfg->api_url[--l] = '\0';
	}
out:
	bv_wipe(line, sizeof(line));
	fclose(f);
	if (rc < 0)
		fiks_config_free(cfg);
	return rc;
}

static int
config_copy(const struct fiks_config *src, struct fiks_config *dst)
{
	size_t i;

	*dst = *src;
	for (i = 0; i < N_CFG_KEYS; i++) {
		if (cfg_keys[i].kind == CFG_STR) {
			char **d = (char **)((char *)dst + cfg_keys[i].off);

			*d = NULL;
		}
	}
	for (i = 0; i < N_CFG_KEYS; i++) {
		const char *const *s;
		char **d;

		if (cfg_keys[i].kind != CFG_STR)
			continue;
		s = (const char *const *)((const char *)src + cfg_keys[i].off);
		d = (char **)((char *)dst + cfg_keys[i].off);
		if (*s && !(*d = bv_strdup(*s))) {
			fiks_config_free(dst);
			return BV_ENOMEM;
		}
	}
	if (!dst->prefetch)
		dst->prefetch = 10;
	if (!dst->timeout_ms)
		dst->timeout_ms = 30000;
	if (!dst->amqp_port)
		dst->amqp_port = dst->amqp_tls ? 5671 : 5672;
	if (!dst->amqp_heartbeat)
		dst->amqp_heartbeat = FIKS_HEARTBEAT_DEFAULT;
	return 0;
}

/* ------------------------------------------------------------------ */
/* The client                                                           */
/* ------------------------------------------------------------------ */

/* The account's identity and the signing one (the same unless the config
 * names a virksomhetssertifikat), and the signer's certificate as x5c. */
static int
load_identities(struct fiks_client *c)
{
	unsigned char *der = NULL;
	int rc, n;

	rc = fiks_identity_load(c->cfg.key_path, c->cfg.cert_path, &c->me);
	if (rc < 0)
		return rc;
	if (c->cfg.sign_key_path || c->cfg.sign_cert_path) {
		if (!c->cfg.sign_key_path || !c->cfg.sign_cert_path)
			return BV_EINVAL;
		rc = fiks_identity_load(c->cfg.sign_key_path,
					c->cfg.sign_cert_path, &c->signer);
		if (rc < 0)
			return rc;
	}
	n = i2d_X509(fiks_identity_cert(signer(c)), &der);
	if (n <= 0)
		return FIKS_EKEY;
	c->x5c = bv_b64_encode(der, (size_t)n);
	OPENSSL_free(der);
	return c->x5c ? 0 : BV_ENOMEM;
}

/* amqp_cafile, when given, must be readable and start with a PEM
 * certificate, so that a wrong path fails at start, not at the first
 * connection. Returns 0 or FIKS_EKEY. Only the first certificate is read:
 * OpenSSL reads the file again for every connection. */
static int
cafile_check(const char *path)
{
	BIO *b;
	X509 *x = NULL;

	if (!path)
		return 0;
	b = BIO_new_file(path, "r");
	if (b)
		x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	ERR_clear_error();
	if (!x) {
		bv_log(BV_LOG_ERR, "fiks: amqp_cafile %s holds no certificate",
		       path);
		return FIKS_EKEY;
	}
	X509_free(x);
	return 0;
}

int
fiks_client_new(const struct fiks_config *cfg, struct fiks_client **out)
{
	struct fiks_client *c = NULL;
	int rc;

	if (!cfg || !out || !cfg->api_url || !cfg->token_url ||
	    !cfg->amqp_host || !uuid_ok(cfg->integration_id) ||
	    !cfg->integration_password || !cfg->client_id ||
	    !uuid_ok(cfg->account_id) || !cfg->key_path || !cfg->cert_path ||
	    (cfg->amqp_heartbeat != FIKS_HEARTBEAT_OFF &&
	     (cfg->amqp_heartbeat < 0 ||
	      cfg->amqp_heartbeat > FIKS_HEARTBEAT_MAX)))
		return BV_EINVAL;
	c = bv_calloc(1, sizeof(*c));
	if (!c)
		return BV_ENOMEM;
	rc = config_copy(cfg, &c->cfg);
	if (rc < 0) {
		bv_free(c);
		return rc;
	}
	rc = load_identities(c);
	if (rc < 0)
		goto out;
	rc = cafile_check(c->cfg.amqp_cafile);
	if (rc < 0)
		goto out;
	c->backoff_ms = BACKOFF_MIN_MS;
	*out = c;
	c = NULL;
out:
	fiks_client_free(c);
	return rc;
}

/*
 * Ends the AMQP connection. A lost one (gone, or silent past its heartbeat
 * timeout) is only destroyed: a Connection.Close would wait for an answer
 * that cannot come. A healthy one is closed politely, for at most
 * CLOSE_WAIT_MS.
 */
static void
amqp_drop(struct fiks_client *c, int lost)
{
	if (!c->amqp)
		return;
	if (!lost) {
		struct timeval tv = {0, CLOSE_WAIT_MS * 1000};

		amqp_set_rpc_timeout(c->amqp, &tv);
		amqp_connection_close(c->amqp, AMQP_REPLY_SUCCESS);
	}
	amqp_destroy_connection(c->amqp);
	c->amqp = NULL;
}

void
fiks_client_free(struct fiks_client *c)
{
	size_t i;

	if (!c)
		return;
	amqp_drop(c, 0);
	if (c->curl)
		curl_easy_cleanup(c->curl);
	for (i = 0; i < KATALOG_CACHE; i++)
		bv_free(c->katalog[i].pem);
	free_secret(c->token);
	bv_free(c->x5c);
	fiks_identity_free(c->signer);
	fiks_identity_free(c->me);
	fiks_config_free(&c->cfg);
	bv_free(c);
}

const char *
fiks_client_account(const struct fiks_client *c)
{
	return c->cfg.account_id;
}

const struct fiks_config *
fiks_client_config(const struct fiks_client *c)
{
	return &c->cfg;
}

/* ------------------------------------------------------------------ */
/* HTTP                                                                 */
/* ------------------------------------------------------------------ */

struct sink {
	unsigned char *buf;
	size_t len, cap, max;
	int over;
};

static size_t
sink_write(char *p, size_t sz, size_t n, void *ud)
{
	struct sink *s = ud;
	size_t add = sz * n;

	if (s->len + add > s->max) {
		s->over = 1;
		return 0; /* curl aborts the transfer */
	}
	if (s->len + add + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		unsigned char *nb;

		while (cap < s->len + add + 1)
			cap *= 2;
		nb = bv_realloc(s->buf, cap);
		if (!nb)
			return 0;
		s->buf = nb;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, p, add);
	s->len += add;
	s->buf[s->len] = '\0';
	return add;
}

/*
 * One request: url, optional extra headers, and either a form body (form,
 * POST) or a multipart mime, or neither (GET). On a reply sets *status
 * and *body (NUL-terminated, bv_free(); NULL when empty) and returns 0;
 * FIKS_ELIMIT when the reply is over max; FIKS_EHTTP when no reply came;
 * BV_ENOMEM.
 */
static int
http_do(struct fiks_client *c, const char *url, struct curl_slist *hdrs,
	const char *form, curl_mime *mime, size_t max, long *status,
	unsigned char **body, size_t *len)
{
	struct sink s = {NULL, 0, 0, max, 0};
	CURLcode cc;
	int rc = 0;

	*body = NULL;
	*len = 0;
	if (!c->curl) {
		c->curl = curl_easy_init();
		if (!c->curl)
			return BV_ENOMEM;
	}
	curl_easy_reset(c->curl);
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c->curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, (long)c->cfg.timeout_ms);
	curl_easy_setopt(
		c->curl, CURLOPT_CONNECTTIMEOUT_MS,
		(long)(c->cfg.timeout_ms < 10000 ? c->cfg.timeout_ms : 10000));
	curl_easy_setopt(c->curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(c->curl, CURLOPT_USERAGENT, "bvchat-fiks/1");
	if (hdrs)
		curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hdrs);
	if (form)
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, form);
	if (mime)
		curl_easy_setopt(c->curl, CURLOPT_MIMEPOST, mime);
	cc = curl_easy_perform(c->curl);
	if (s.over || cc == CURLE_FILESIZE_EXCEEDED) {
		rc = FIKS_ELIMIT;
	} else if (cc != CURLE_OK) {
		bv_log(BV_LOG_WARN, "fiks: HTTP request failed: %s",
		       curl_easy_strerror(cc));
		rc = cc == CURLE_OUT_OF_MEMORY ? BV_ENOMEM : FIKS_EHTTP;
	} else {
		curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, status);
	}
	/* The handle keeps no pointer into what we free now. */
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(c->curl, CURLOPT_MIMEPOST, NULL);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, NULL);
	if (rc < 0) {
		bv_free(s.buf);
		return rc;
	}
	*body = s.buf;
	*len = s.len;
	return 0;
}

/* RS256 JWT for the JWT-bearer grant (docs/fiks.md "Authentication"). */
static int
jwt_make(struct fiks_client *c, char **out)
{
	char jti[BV_UUID_LEN + 1], aud[512];
	char *hs = NULL, *ps = NULL, *h64 = NULL, *p64 = NULL, *s64 = NULL,
	     *input = NULL, *jwt = NULL;
	unsigned char sig[1024];
	size_t siglen = sizeof(sig), l;
	int64_t now = bv_now_s();
	json_t *h = NULL, *p = NULL;
	EVP_MD_CTX *md = NULL;
	const char *u = c->cfg.token_url, *hostend;
	int rc = BV_ENOMEM;

	/* aud: the token endpoint's origin, as Maskinporten's
	 * https://maskinporten.no/ for https://maskinporten.no/token. */
	hostend = strchr(strstr(u, "://") + 3, '/');
	l = hostend ? (size_t)(hostend - u) : strlen(u);
	if (l + 2 > sizeof(aud))
		return BV_EINVAL;
	memcpy(aud, u, l);
	aud[l] = '/';
	aud[l + 1] = '\0';
	bv_uuid_generate(jti);
	h = json_pack("{s:s, s:[s]}", "alg", "RS256", "x5c", c->x5c);
	p = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "aud", aud, "iss",
		      c->cfg.client_id, "scope", "ks:fiks", "jti", jti, "iat",
		      (json_int_t)now, "exp", (json_int_t)(now + 120));
	if (!h || !p)
		goto out;
	hs = json_dumps(h, JSON_COMPACT);
	ps = json_dumps(p, JSON_COMPACT);
	if (!hs || !ps)
		goto out;
	h64 = bv_b64url_encode((const uint8_t *)hs, strlen(hs));
	p64 = bv_b64url_encode((const uint8_t *)ps, strlen(ps));
	if (!h64 || !p64)
		goto out;
	l = strlen(h64) + 1 + strlen(p64);
	input = bv_malloc(l + 1);
	if (!input)
		goto out;
	snprintf(input, l + 1, "%s.%s", h64, p64);
	md = EVP_MD_CTX_new();
	if (!md ||
	    EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL,
			       fiks_identity_key(signer(c))) != 1 ||
	    EVP_DigestSign(md, sig, &siglen, (const unsigned char *)input, l) !=
		    1) {
		rc = FIKS_EKEY;
		goto out;
	}
	s64 = bv_b64url_encode(sig, siglen);
	if (!s64)
		goto out;
	jwt = bv_malloc(l + 1 + strlen(s64) + 1);
	if (!jwt)
		goto out;
	snprintf(jwt, l + 1 + strlen(s64) + 1, "%s.%s", input, s64);
	*out = jwt;
	rc = 0;
out:
	EVP_MD_CTX_free(md);
	json_decref(h);
	json_decref(p);
	free(hs);
	free(ps);
	bv_free(h64);
	bv_free(p64);
	bv_free(s64);
	bv_free(input);
	return rc;
}

/*
 * A valid access token in c->token: the cached one unless fresh is set or
 * it is about to expire. Returns 0; FIKS_EUNAUTHORIZED (the grant was
 * refused); FIKS_EHTTP; FIKS_ELIMIT; FIKS_EKEY; BV_ENOMEM.
 */
static int
token_get(struct fiks_client *c, int fresh)
{
	static const char grant[] =
		"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3A"
		"jwt-bearer&assertion=";
	struct curl_slist *hdrs = NULL;
	char *jwt = NULL, *form = NULL;
	unsigned char *body = NULL;
	size_t len = 0;
	long status = 0;
	json_t *j = NULL;
	const char *tok;
	json_int_t exp;
	int rc;

	if (!fresh && c->token && bv_now_s() < c->token_exp)
		return 0;
	free_secret(c->token);
	c->token = NULL;
	rc = jwt_make(c, &jwt);
	if (rc < 0)
		return rc;
	form = bv_malloc(sizeof(grant) + strlen(jwt));
	rc = BV_ENOMEM;
	if (!form)
		goto out;
	snprintf(form, sizeof(grant) + strlen(jwt), "%s%s", grant, jwt);
	hdrs = curl_slist_append(NULL, "Accept: application/json");
	if (!hdrs)
		goto out;
	rc = http_do(c, c->cfg.token_url, hdrs, form, NULL, FIKS_HTTP_REPLY_MAX,
		     &status, &body, &len);
	if (rc < 0)
		goto out;
	if (status >= 500 || status == 0) {
		rc = FIKS_EHTTP;
		goto out;
	}
	if (status != 200) {
		bv_log(BV_LOG_WARN, "fiks: token endpoint answered %ld",
		       status);
		rc = FIKS_EUNAUTHORIZED;
		goto out;
	}
	j = body ? json_loadb((const char *)body, len, 0, NULL) : NULL;
	tok = json_string_value(json_object_get(j, "access_token"));
	exp = json_integer_value(json_object_get(j, "expires_in"));
	if (!tok || !*tok || strlen(tok) > 8192 || exp <= 0) {
		rc = FIKS_EHTTP;
		goto out;
	}
	c->token = bv_strdup(tok);
	if (!c->token) {
		rc = BV_ENOMEM;
		goto out;
	}
	/* Renewed TOKEN_MARGIN_S early, or halfway for short tokens. */
	c->token_exp =
		bv_now_s() +
		(exp > 2 * TOKEN_MARGIN_S ? exp - TOKEN_MARGIN_S : exp / 2);
	rc = 0;
out:
	if (body) {
		bv_wipe(body, len);
		bv_free(body);
	}
	json_decref(j);
	curl_slist_free_all(hdrs);
	free_secret(form);
	free_secret(jwt);
	return rc;
}

/* Authorization, IntegrasjonId and IntegrasjonPassord (plus extra). */
static int
auth_headers(struct fiks_client *c, const char *extra, struct curl_slist **out)
{
	struct curl_slist *l = NULL, *n;
	char buf[9000];
	int i;

	for (i = 0; i < 4; i++) {
		if (i == 0)
			snprintf(buf, sizeof(buf), "Authorization: Bearer %s",
				 c->token);
		else if (i == 1)
			snprintf(buf, sizeof(buf), "IntegrasjonId: %s",
				 c->cfg.integration_id);
		else if (i == 2)
			snprintf(buf, sizeof(buf), "IntegrasjonPassord: %s",
				 c->cfg.integration_password);
		else if (extra)
			snprintf(buf, sizeof(buf), "%s", extra);
		else
			break;
		n = curl_slist_append(l, buf);
		bv_wipe(buf, sizeof(buf));
		if (!n) {
			curl_slist_free_all(l);
			return BV_ENOMEM;
		}
		l = n;
	}
	*out = l;
	return 0;
}

/* What fiks_send_raw posts: built anew for every attempt, as curl does not
 * rewind a mime that went out once. */
struct send_body {
	const char *metadata;
	const unsigned char *data;
	size_t len;
};

static curl_mime *
send_mime(CURL *curl, const struct send_body *sb)
{
	char fname[BV_UUID_LEN + 1];
	curl_mime *mime = curl_mime_init(curl);
	curl_mimepart *part;

	if (!mime)
		return NULL;
	part = curl_mime_addpart(mime);
	if (!part || curl_mime_name(part, "metadata") != CURLE_OK ||
	    curl_mime_type(part, "application/json") != CURLE_OK ||
	    curl_mime_data(part, sb->metadata, CURL_ZERO_TERMINATED) !=
		    CURLE_OK)
		goto fail;
	if (sb->len) {
		bv_uuid_generate(fname);
		part = curl_mime_addpart(mime);
		if (!part || curl_mime_name(part, "data") != CURLE_OK ||
		    curl_mime_filename(part, fname) != CURLE_OK ||
		    curl_mime_type(part, "application/octet-stream") !=
			    CURLE_OK ||
		    curl_mime_data(part, (const char *)sb->data, sb->len) !=
			    CURLE_OK)
			goto fail;
	}
	return mime;
fail:
	curl_mime_free(mime);
	return NULL;
}

/*
 * An authenticated request (a GET; the send's multipart POST when sb is
 * not NULL; a POST of the string post when that is not NULL) with one
 * retry on 401 with a fresh token: the server may have forgotten ours.
 * The caller maps the status.
 */
static int
http_authed_post(struct fiks_client *c, const char *url, const char *extra,
		 const struct send_body *sb, const char *post, size_t max,
		 long *status, unsigned char **body, size_t *len)
{
	struct curl_slist *hdrs = NULL;
	curl_mime *mime = NULL;
	int rc, attempt;

	for (attempt = 0; attempt < 2; attempt++) {
		rc = token_get(c, attempt > 0);
		if (rc < 0)
			return rc;
		rc = auth_headers(c, extra, &hdrs);
		if (rc < 0)
			return rc;
		if (sb && !c->curl && !(c->curl = curl_easy_init()))
			rc = BV_ENOMEM;
		if (sb && rc == 0 && !(mime = send_mime(c->curl, sb)))
			rc = BV_ENOMEM;
		if (rc == 0)
			rc = http_do(c, url, hdrs, post, mime, max, status,
				     body, len);
		curl_mime_free(mime);
		mime = NULL;
		curl_slist_free_all(hdrs);
		hdrs = NULL;
		if (rc < 0 || *status != 401)
			return rc;
		if (attempt == 0) {
			bv_free(*body);
			*body = NULL;
		}
	}
	return 0;
}

static int
http_authed(struct fiks_client *c, const char *url, const char *extra,
	    const struct send_body *sb, size_t max, long *status,
	    unsigned char **body, size_t *len)
{
	return http_authed_post(c, url, extra, sb, NULL, max, status, body,
				len);
}

static int
map_status(long status)
{
	if (status == 401 || status == 403)
		return FIKS_EUNAUTHORIZED;
	if (status == 404)
		return FIKS_ENOTFOUND;
	if (status >= 400 && status < 500)
		return FIKS_EREFUSED;
	return FIKS_EHTTP;
}

int
fiks_katalog_cert(struct fiks_client *c, const char *konto, char **pem)
{
	char url[1024];
	unsigned char *body = NULL;
	size_t len = 0, i;
	long status = 0;
	json_t *j = NULL;
	const char *nokkel;
	struct katalog_entry *e;
	BIO *b = NULL;
	X509 *x = NULL;
	int rc;

	if (!c || !uuid_ok(konto) || !pem)
		return BV_EINVAL;
	for (i = 0; i < KATALOG_CACHE; i++) {
		if (c->katalog[i].pem &&
		    strcasecmp(c->katalog[i].konto, konto) == 0) {
			*pem = strdup(c->katalog[i].pem);
			return *pem ? 0 : BV_ENOMEM;
		}
	}
	snprintf(url, sizeof(url),
		 "%s/fiks-io/katalog/api/v1/kontoer/%s/offentligNokkel",
		 c->cfg.api_url, konto);
	rc = http_authed(c, url, "Accept: application/json", NULL,
			 FIKS_HTTP_REPLY_MAX, &status, &body, &len);
	if (rc < 0)
		goto out;
	if (status != 200) {
		rc = map_status(status);
		if (rc == FIKS_EREFUSED)
			rc = FIKS_EHTTP;
		goto out;
	}
	j = body ? json_loadb((const char *)body, len, 0, NULL) : NULL;
	nokkel = json_string_value(json_object_get(j, "nokkel"));
	rc = FIKS_EHTTP;
	if (!nokkel)
		goto out;
	/* Only a certificate that parses is worth caching. */
	b = BIO_new_mem_buf(nokkel, -1);
	x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	if (!x)
		goto out;
	rc = BV_ENOMEM;
	e = &c->katalog[c->katalog_next];
	bv_free(e->pem);
	e->pem = bv_strdup(nokkel);
	if (!e->pem)
		goto out;
	snprintf(e->konto, sizeof(e->konto), "%s", konto);
	c->katalog_next = (c->katalog_next + 1) % KATALOG_CACHE;
	*pem = strdup(nokkel);
	if (!*pem)
		goto out;
	rc = 0;
out:
	X509_free(x);
	BIO_free(b);
	json_decref(j);
	bv_free(body);
	return rc;
}

int
fiks_varsling_sms(struct fiks_client *c, const char *konto, const char *tekst,
		  const char *telefonnummer, char id[FIKS_UUID_LEN + 1])
{
	char url[1024];
	unsigned char *body = NULL;
	size_t len = 0, n = 0;
	const char *p, *got;
	long status = 0;
	json_t *j = NULL, *reply = NULL;
	char *post = NULL;
	int rc;

	if (!c || !uuid_ok(konto) || !tekst || !telefonnummer || !id)
		return BV_EINVAL;
	for (p = tekst; *p; p++) /* characters, not bytes */
		n += ((unsigned char)*p & 0xc0) != 0x80;
	if (n == 0 || n > FIKS_VARSLING_TEKST_MAX)
		return BV_EINVAL;
	snprintf(url, sizeof(url), "%s/varsling/api/v1/sms/%s/sms",
		 c->cfg.api_url, konto);
	j = json_pack("{s:s, s:s}", "tekst", tekst, "telefonnummer",
		      telefonnummer);
	post = j ? json_dumps(j, JSON_COMPACT) : NULL;
	rc = BV_ENOMEM;
	if (!post)
		goto out;
	rc = http_authed_post(
		c, url, "Content-Type: application/json;charset=UTF-8", NULL,
		post, FIKS_HTTP_REPLY_MAX, &status, &body, &len);
	if (rc < 0)
		goto out;
	if (status != 200 && status != 201) {
		rc = map_status(status);
		goto out;
	}
	reply = body ? json_loadb((const char *)body, len, 0, NULL) : NULL;
	got = json_string_value(json_object_get(reply, "id"));
	rc = FIKS_EHTTP;
	if (!got || strlen(got) > FIKS_UUID_LEN)
		goto out;
	snprintf(id, FIKS_UUID_LEN + 1, "%s", got);
	rc = 0;
out:
	if (post) {
		bv_wipe(post, strlen(post));
		free(post);
	}
	json_decref(j);
	json_decref(reply);
	bv_free(body);
	return rc;
}

int
fiks_dokumentlager_get(struct fiks_client *c, const char *id,
		       unsigned char **out, size_t *outlen)
{
	char url[1024];
	unsigned char *body = NULL;
	size_t len = 0;
	long status = 0;
	int rc;

	if (!c || !uuid_ok(id) || !out || !outlen)
		return BV_EINVAL;
	snprintf(url, sizeof(url), "%s/dokumentlager/nedlasting/%s",
		 c->cfg.api_url, id);
	rc = http_authed(c, url, NULL, NULL, FIKS_BODY_MAX, &status, &body,
			 &len);
	if (rc < 0)
		return rc;
	if (status != 200) {
		bv_free(body);
		rc = map_status(status);
		return rc == FIKS_EREFUSED ? FIKS_EHTTP : rc;
	}
	if (!body) {
		body = bv_malloc(1);
		if (!body)
			return BV_ENOMEM;
	}
	*out = body;
	*outlen = len;
	return 0;
}

static int
header_name_ok(const char *k)
{
	size_t i, l = k ? strlen(k) : 0;

	if (l == 0 || l > FIKS_HEADER_NAME_MAX)
		return 0;
	for (i = 0; i < l; i++)
		if (!isalnum((unsigned char)k[i]) && !strchr("-_.", k[i]))
			return 0;
	return 1;
}

static int
value_ok(const char *v)
{
	return v && strlen(v) <= FIKS_HEADER_VALUE_MAX;
}

/* The metadata part (MeldingSpesifikasjonApiModel, camelCase). */
static json_t *
metadata_json(struct fiks_client *c, const struct fiks_send_req *req)
{
	json_t *m, *h;
	size_t i;

	h = json_object();
	m = json_pack("{s:s, s:s, s:s, s:o, s:o}", "avsenderKontoId",
		      c->cfg.account_id, "mottakerKontoId", req->mottaker,
		      "meldingType", req->type, "svarPaMelding",
		      req->svar_paa ? json_string(req->svar_paa) : json_null(),
		      "ttl",
		      req->ttl_ms > 0 ? json_integer((json_int_t)req->ttl_ms)
				      : json_null());
	if (!h || !m)
		goto fail;
	if (req->klient_melding_id &&
	    json_object_set_new(h, "klientMeldingId",
				json_string(req->klient_melding_id)) < 0)
		goto fail;
	if (req->klient_korrelasjons_id &&
	    json_object_set_new(h, "klientKorrelasjonsId",
				json_string(req->klient_korrelasjons_id)) < 0)
		goto fail;
	for (i = 0; i < req->n_headers; i++)
		if (json_object_set_new(h, req->headers[i].name,
					json_string(req->headers[i].value)) < 0)
			goto fail;
	if (json_object_set_new(m, "headere", h) < 0) {
		h = NULL;
		goto fail;
	}
	return m;
fail:
	json_decref(h);
	json_decref(m);
	return NULL;
}

static int
send_req_ok(const struct fiks_send_req *req)
{
	size_t i, j;

	if (!req || !uuid_ok(req->mottaker) || !req->type || !*req->type ||
	    strlen(req->type) > FIKS_TYPE_MAX ||
	    (req->svar_paa && !uuid_ok(req->svar_paa)) || req->ttl_ms < 0 ||
	    (req->ttl_ms > 0 && req->ttl_ms < 1000) ||
	    (req->klient_melding_id && !value_ok(req->klient_melding_id)) ||
	    (req->klient_korrelasjons_id &&
	     !value_ok(req->klient_korrelasjons_id)) ||
	    req->n_headers > FIKS_HEADERS_MAX - 2 ||
	    (req->n_headers && !req->headers))
		return 0;
	for (i = 0; i < req->n_headers; i++) {
		if (!header_name_ok(req->headers[i].name) ||
		    !value_ok(req->headers[i].value) ||
		    strcmp(req->headers[i].name, "klientMeldingId") == 0 ||
		    strcmp(req->headers[i].name, "klientKorrelasjonsId") == 0)
			return 0;
		for (j = 0; j < i; j++)
			if (strcmp(req->headers[i].name,
				   req->headers[j].name) == 0)
				return 0;
	}
	return 1;
}

int
fiks_send_raw(struct fiks_client *c, const struct fiks_send_req *req,
	      const unsigned char *body, size_t body_len,
	      char melding_id[FIKS_UUID_LEN + 1])
{
	struct send_body sb;
	char url[1024];
	unsigned char *reply = NULL;
	size_t len = 0;
	long status = 0;
	json_t *meta = NULL, *j = NULL;
	char *ms = NULL;
	const char *id;
	int rc;

	if (!c || !send_req_ok(req) || !melding_id || (body_len && !body) ||
	    body_len > FIKS_BODY_MAX)
		return BV_EINVAL;
	rc = BV_ENOMEM;
	meta = metadata_json(c, req);
	ms = meta ? json_dumps(meta, JSON_COMPACT) : NULL;
	if (!ms)
		goto out;
	sb.metadata = ms;
	sb.data = body;
	sb.len = body_len;
	snprintf(url, sizeof(url), "%s/fiks-io/api/v1/send", c->cfg.api_url);
	rc = http_authed(c, url, "Accept: application/json", &sb,
			 FIKS_HTTP_REPLY_MAX, &status, &reply, &len);
	if (rc < 0)
		goto out;
	if (status != 202) {
		rc = map_status(status);
		if (rc == FIKS_ENOTFOUND)
			rc = FIKS_EREFUSED;
		bv_log(BV_LOG_WARN, "fiks: send to %s answered %ld",
		       req->mottaker, status);
		goto out;
	}
	j = reply ? json_loadb((const char *)reply, len, 0, NULL) : NULL;
	id = json_string_value(json_object_get(j, "meldingId"));
	if (!uuid_ok(id)) {
		rc = FIKS_EHTTP;
		goto out;
	}
	snprintf(melding_id, FIKS_UUID_LEN + 1, "%s", id);
	rc = 0;
out:
	json_decref(meta);
	json_decref(j);
	free(ms);
	bv_free(reply);
	return rc;
}

/* ------------------------------------------------------------------ */
/* AMQP                                                                 */
/* ------------------------------------------------------------------ */

/* The broker's refusal of a login or a queue: 1 when it was ours. */
static int
reply_refused(amqp_rpc_reply_t r)
{
	if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION) {
		if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD)
			return ((amqp_connection_close_t *)r.reply.decoded)
				       ->reply_code == AMQP_ACCESS_REFUSED;
		if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD)
			return ((amqp_channel_close_t *)r.reply.decoded)
				       ->reply_code == AMQP_ACCESS_REFUSED;
	}
	/* RabbitMQ closes the socket on a failed PLAIN login. */
	return r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
	       r.library_error == AMQP_STATUS_CONNECTION_CLOSED;
}

/* Remembers the first reason a certificate of the broker's chain failed,
 * for the log and FIKS_ETLS; the verdict itself is OpenSSL's. */
static int
tls_verify_cb(int ok, X509_STORE_CTX *x)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(
		x, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct fiks_client *c =
		ssl ? SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)) : NULL;

	if (!ok && c && !c->tls_error)
		c->tls_error = X509_STORE_CTX_get_error(x);
	return ok;
}

/*
 * Makes s (an amqp_ssl_socket) verify the broker: TLS 1.2 or later, a
 * chain to amqp_cafile's CAs (or the system's store: librabbitmq 0.11
 * loads none by itself), and amqp_host in the certificate, all checked by
 * OpenSSL during the handshake, which fails otherwise. librabbitmq's own
 * checks after the handshake stay on as well; its name check knows only
 * DNS names, so for an IP address the OpenSSL check (IP SANs) is the one.
 * There is no way to turn verification off. Returns 0; FIKS_EKEY (the CA
 * file); BV_ENOMEM.
 */
static int
tls_setup(struct fiks_client *c, amqp_socket_t *s)
{
	SSL_CTX *ctx = amqp_ssl_socket_get_context(s);
	X509_VERIFY_PARAM *vp = SSL_CTX_get0_param(ctx);
	const char *host = c->cfg.amqp_host;
	unsigned char ip[16];
	int is_ip, ok;

	is_ip = inet_pton(AF_INET, host, ip) == 1 ||
		inet_pton(AF_INET6, host, ip) == 1;
	amqp_ssl_socket_set_verify_peer(s, 1);
	amqp_ssl_socket_set_verify_hostname(s, !is_ip);
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
		return BV_ENOMEM;
	if (c->cfg.amqp_cafile)
		ok = amqp_ssl_socket_set_cacert(s, c->cfg.amqp_cafile) ==
		     AMQP_STATUS_OK;
	else
		ok = SSL_CTX_set_default_verify_paths(ctx) == 1;
	if (!ok) {
		ERR_clear_error();
		bv_log(BV_LOG_ERR, "fiks: AMQP TLS: cannot load %s",
		       c->cfg.amqp_cafile ? c->cfg.amqp_cafile
					  : "the system's CA store");
		return FIKS_EKEY;
	}
	X509_VERIFY_PARAM_set_hostflags(vp,
					X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, host)
		   : X509_VERIFY_PARAM_set1_host(vp, host, 0);
	if (ok != 1)
		return BV_ENOMEM;
	SSL_CTX_set_app_data(ctx, c);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, tls_verify_cb);
	return 0;
}

/*
 * One attempt to connect and consume, with a token as fresh as asked.
 * Returns 0; FIKS_EUNAUTHORIZED (refused); FIKS_ETLS (the broker's
 * certificate); FIKS_EAMQP; FIKS_EKEY; or what token_get() returns.
 */
static int
amqp_connect(struct fiks_client *c, int fresh, int timeout_ms)
{
	char q[sizeof(QUEUE_PREFIX) + FIKS_UUID_LEN], *pw = NULL;
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	amqp_connection_state_t a = NULL;
	amqp_socket_t *s;
	amqp_rpc_reply_t r;
	size_t l;
	int rc, st;

	rc = token_get(c, fresh);
	if (rc < 0)
		return rc;
	rc = BV_ENOMEM;
	a = amqp_new_connection();
	if (!a)
		goto out;
	s = c->cfg.amqp_tls ? amqp_ssl_socket_new(a) : amqp_tcp_socket_new(a);
	if (!s)
		goto out;
	if (c->cfg.amqp_tls) {
		rc = tls_setup(c, s);
		if (rc < 0)
			goto out;
	}
	amqp_set_handshake_timeout(a, &tv);
	amqp_set_rpc_timeout(a, &tv);
	c->tls_error = 0;
	st = amqp_socket_open_noblock(s, c->cfg.amqp_host, c->cfg.amqp_port,
				      &tv);
	if (st != AMQP_STATUS_OK) {
		rc = FIKS_EAMQP;
		if (c->tls_error || st == AMQP_STATUS_SSL_PEER_VERIFY_FAILED ||
		    st == AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED) {
			rc = FIKS_ETLS;
			bv_log(BV_LOG_ERR,
			       "fiks: AMQP TLS: %s:%d is not trusted: %s",
			       c->cfg.amqp_host, c->cfg.amqp_port,
			       c->tls_error ? X509_verify_cert_error_string(
						      c->tls_error)
					    : amqp_error_string2(st));
		}
		ERR_clear_error();
		goto out;
	}
	l = strlen(c->cfg.integration_password) + 1 + strlen(c->token) + 1;
	pw = bv_malloc(l);
	if (!pw) {
		rc = BV_ENOMEM;
		goto out;
	}
	/* FIKS IO's AMQP password: "<integrasjonPassord> <access token>".
	 * The heartbeat we ask for; a broker that wants a shorter one gets
	 * it. From here librabbitmq sends one when we have sent nothing for
	 * an interval and reports a connection that brought nothing for two
	 * as AMQP_STATUS_HEARTBEAT_TIMEOUT (read_delivery()). */
	snprintf(pw, l, "%s %s", c->cfg.integration_password, c->token);
	r = amqp_login(a, c->cfg.amqp_vhost ? c->cfg.amqp_vhost : "/", 0,
		       131072,
		       c->cfg.amqp_heartbeat == FIKS_HEARTBEAT_OFF
			       ? 0
			       : c->cfg.amqp_heartbeat,
		       AMQP_SASL_METHOD_PLAIN, c->cfg.integration_id, pw);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		rc = reply_refused(r) ? FIKS_EUNAUTHORIZED : FIKS_EAMQP;
		goto out;
	}
	amqp_channel_open(a, 1);
	if (amqp_get_rpc_reply(a).reply_type != AMQP_RESPONSE_NORMAL)
		goto out;
	amqp_basic_qos(a, 1, 0, (uint16_t)c->cfg.prefetch, 0);
	if (amqp_get_rpc_reply(a).reply_type != AMQP_RESPONSE_NORMAL)
		goto out;
	snprintf(q, sizeof(q), QUEUE_PREFIX "%s", c->cfg.account_id);
	/* Consume, never declare: the queue is Fiks IO's. */
	amqp_basic_consume(a, 1, amqp_cstring_bytes(q), amqp_empty_bytes, 0, 0,
			   0, amqp_empty_table);
	r = amqp_get_rpc_reply(a);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		rc = reply_refused(r) ? FIKS_EUNAUTHORIZED : FIKS_EAMQP;
		goto out;
	}
	c->amqp = a;
	a = NULL;
	/* Unique in the process, so that no client takes another's (or an
	 * older connection's) delivery for one of its own. */
	c->epoch = atomic_fetch_add(&epochs, 1) + 1;
	rc = 0;
out:
	free_secret(pw);
	if (a)
		amqp_destroy_connection(a);
	return rc;
}

static int64_t
mono_ms(void)
{
	return (int64_t)bv_mono_ms();
}

static void
sleep_ms(int64_t ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Connects unless connected, retrying with backoff until deadline. */
static int
amqp_ensure(struct fiks_client *c, int64_t deadline)
{
	int rc = FIKS_EAMQP, refused = 0;

	while (!c->amqp) {
		int64_t left = deadline - mono_ms();

		if (left <= 0)
			return rc;
		/* A reconnect always takes a fresh token: the old one may be
		 * what the broker no longer accepts. */
		rc = amqp_connect(c, c->epoch > 0 || refused,
				  (int)(left < c->cfg.timeout_ms
						? left
						: c->cfg.timeout_ms));
		if (rc == 0) {
			c->backoff_ms = BACKOFF_MIN_MS;
			return 0;
		}
		if (rc == FIKS_EUNAUTHORIZED) {
			if (refused++)
				return rc;
			continue;
		}
		if (rc != FIKS_EAMQP && rc != FIKS_EHTTP)
			return rc;
		left = deadline - mono_ms();
		sleep_ms(c->backoff_ms < left ? c->backoff_ms : left);
		c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS
					? BACKOFF_MAX_MS
					: c->backoff_ms * 2;
		rc = FIKS_EAMQP;
	}
	return 0;
}

int
fiks_connect(struct fiks_client *c, int timeout_ms)
{
	if (!c || timeout_ms < 1 || timeout_ms > 60000)
		return BV_EINVAL;
	return amqp_ensure(c, mono_ms() + timeout_ms);
}

int
fiks_connected(const struct fiks_client *c)
{
	return c && c->amqp != NULL;
}

/* A longstr header value, or NULL. */
static const amqp_bytes_t *
hdr_str(const amqp_field_value_t *v)
{
	if (v->kind == AMQP_FIELD_KIND_UTF8 || v->kind == AMQP_FIELD_KIND_BYTES)
		return &v->value.bytes;
	return NULL;
}

static int
copy_str(const amqp_bytes_t *b, char *out, size_t cap)
{
	if (!b || b->len >= cap || memchr(b->bytes, '\0', b->len))
		return -1;
	memcpy(out, b->bytes, b->len);
	out[b->len] = '\0';
	return 0;
}

static int
copy_uuid(const amqp_bytes_t *b, char out[FIKS_UUID_LEN + 1])
{
	size_t i;

	if (copy_str(b, out, FIKS_UUID_LEN + 1) < 0 || !uuid_ok(out))
		return -1;
	for (i = 0; out[i]; i++)
		out[i] = (char)tolower((unsigned char)out[i]);
	return 0;
}

#define EGEN "egendefinert-header."

/*
 * Fills m from a delivery's properties and routing key. Returns 0;
 * FIKS_EHEADER (a required header missing, not a longstr, or malformed);
 * FIKS_ELIMIT (too many or too long custom headers); BV_ENOMEM.
 */
static int
melding_parse(struct fiks_client *c, struct melding_impl *mi,
	      const amqp_basic_properties_t *p, const amqp_bytes_t *rk)
{
	struct fiks_melding *m = &mi->m;
	char *strings = NULL;
	size_t used = 0, el = strlen(EGEN), pl = strlen(QUEUE_PREFIX);
	int have = 0, i;

	m->ttl_ms = -1;
	if (p->_flags & AMQP_BASIC_EXPIRATION_FLAG) {
		char exp[24];

		if (copy_str(&p->expiration, exp, sizeof(exp)) == 0)
			m->ttl_ms = strtoll(exp, NULL, 10);
	}
	if (rk->len == pl + FIKS_UUID_LEN &&
	    memcmp(rk->bytes, QUEUE_PREFIX, pl) == 0) {
		amqp_bytes_t k = {FIKS_UUID_LEN, (char *)rk->bytes + pl};

		if (copy_uuid(&k, m->mottaker) < 0)
			m->mottaker[0] = '\0';
	}
	if (!m->mottaker[0])
		snprintf(m->mottaker, sizeof(m->mottaker), "%s",
			 c->cfg.account_id);
	if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG))
		return FIKS_EHEADER;
	for (i = 0; i < p->headers.num_entries; i++) {
		const amqp_table_entry_t *e = &p->headers.entries[i];
		const amqp_bytes_t *v = hdr_str(&e->value);
		const char *k = e->key.bytes;
		size_t kl = e->key.len;

#define IS(name) (kl == strlen(name) && memcmp(k, name, kl) == 0)
		if (IS("melding-id")) {
			if (copy_uuid(v, m->melding_id) < 0)
				return FIKS_EHEADER;
			have |= 1;
		} else if (IS("type")) {
			if (copy_str(v, m->type, sizeof(m->type)) < 0 ||
			    !m->type[0])
				return FIKS_EHEADER;
			have |= 2;
		} else if (IS("avsender-id")) {
			if (copy_uuid(v, m->avsender) < 0)
				return FIKS_EHEADER;
			have |= 4;
		} else if (IS("svar-til")) {
			if (copy_uuid(v, m->svar_til) < 0)
				m->svar_til[0] = '\0';
		} else if (IS("svar-til-type")) {
			if (copy_str(v, m->svar_til_type,
				     sizeof(m->svar_til_type)) < 0)
				m->svar_til_type[0] = '\0';
		} else if (IS("dokumentlager-id")) {
			if (copy_uuid(v, m->dokumentlager_id) < 0)
				return FIKS_EHEADER;
		} else if (kl > el && memcmp(k, EGEN, el) == 0) {
			const char *name = k + el;
			size_t nl = kl - el;

			if (!v || nl > FIKS_HEADER_NAME_MAX ||
			    v->len > FIKS_HEADER_VALUE_MAX ||
			    memchr(name, '\0', nl) ||
			    memchr(v->bytes, '\0', v->len))
				return FIKS_ELIMIT;
			if (nl == 15 &&
			    memcmp(name, "klientMeldingId", 15) == 0) {
				copy_str(v, m->klient_melding_id,
					 sizeof(m->klient_melding_id));
				continue;
			}
			if ((nl == 20 &&
			     memcmp(name, "klientKorrelasjonsId", 20) == 0) ||
			    (nl == 19 &&
			     memcmp(name, "klientKorrelasjonId", 19) == 0)) {
				copy_str(v, m->klient_korrelasjons_id,
					 sizeof(m->klient_korrelasjons_id));
				continue;
			}
			if (m->n_headers == FIKS_HEADERS_MAX)
				return FIKS_ELIMIT;
			if (!strings) {
				strings = bv_malloc(HEADER_BYTES_MAX);
				if (!strings)
					return BV_ENOMEM;
				mi->strings = strings;
			}
			memcpy(strings + used, name, nl);
			strings[used + nl] = '\0';
			m->headers[m->n_headers].name = strings + used;
			used += nl + 1;
			memcpy(strings + used, v->bytes, v->len);
			strings[used + v->len] = '\0';
			m->headers[m->n_headers].value = strings + used;
			used += v->len + 1;
			m->n_headers++;
		}
#undef IS
	}
	return have == 7 ? 0 : FIKS_EHEADER;
}

void
fiks_melding_free(struct fiks_melding *m)
{
	struct melding_impl *mi = (struct melding_impl *)m;

	if (!m)
		return;
	bv_free(mi->strings);
	bv_free(m->body);
	bv_free(mi);
}

/* Logs why the connection is taken for lost; returns FIKS_EAMQP. */
static int
lost(int st, const char *what)
{
	bv_log(BV_LOG_WARN, "fiks: AMQP connection lost: %s (%s)", what,
	       st == AMQP_STATUS_HEARTBEAT_TIMEOUT
		       ? "nothing from the broker for two heartbeats"
	       : st == AMQP_STATUS_OK ? "an unexpected frame"
				      : amqp_error_string2(st));
	return FIKS_EAMQP;
}

/*
 * Reads one delivery with the body bounded by FIKS_BODY_MAX (a larger one
 * is read to its end and dropped, *over set). Returns 0 with *env's
 * fields set; FIKS_ETIMEOUT; FIKS_EAMQP (connection gone, closed by the
 * broker, or silent for two heartbeat intervals); BV_ENOMEM.
 * On 0 the caller owns env->message.body (bv_free()) and must release the
 * connection's buffers after using env->message.properties.
 *
 * Heartbeats are serviced inside librabbitmq's waits: it sends one when
 * due and never sleeps past the moment the broker's silence becomes a
 * heartbeat timeout, so waiting here is always bounded by that too.
 */
static int
read_delivery(struct fiks_client *c, int64_t deadline, amqp_envelope_t *env,
	      int *over)
{
	amqp_frame_t f;
	uint64_t size, got = 0;
	unsigned char *body = NULL;
	int st;

	memset(env, 0, sizeof(*env));
	*over = 0;
	for (;;) {
		int64_t left = deadline - mono_ms();
		struct timeval tv;

		if (left < 0)
			left = 0;
		tv.tv_sec = (time_t)(left / 1000);
		tv.tv_usec = (suseconds_t)(left % 1000) * 1000;
		st = amqp_simple_wait_frame_noblock(c->amqp, &f, &tv);
		if (st == AMQP_STATUS_TIMEOUT)
			return FIKS_ETIMEOUT;
		if (st != AMQP_STATUS_OK)
			return lost(st, "waiting");
		if (f.frame_type != AMQP_FRAME_METHOD)
			continue; /* a stray frame (heartbeats never come up) */
		if (f.payload.method.id == AMQP_BASIC_DELIVER_METHOD)
			break;
		if (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
		    f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD ||
		    f.payload.method.id == AMQP_BASIC_CANCEL_METHOD)
			return lost(AMQP_STATUS_CONNECTION_CLOSED,
				    "the broker closed or cancelled");
	}
	{
		amqp_basic_deliver_t *d = f.payload.method.decoded;

		env->channel = f.channel;
		env->delivery_tag = d->delivery_tag;
		env->redelivered = d->redelivered;
		/* The routing key lives in the connection's pool until the
		 * next release; copied before the body can be large. */
		env->routing_key = amqp_bytes_malloc_dup(d->routing_key);
		if (d->routing_key.len && !env->routing_key.bytes)
			return BV_ENOMEM;
	}
	/* The header frame follows at once; the rest of the message has
	 * no deadline but the heartbeat's (none with heartbeats off). */
	st = amqp_simple_wait_frame(c->amqp, &f);
	if (st != AMQP_STATUS_OK || f.frame_type != AMQP_FRAME_HEADER) {
		amqp_bytes_free(env->routing_key);
		return lost(st, "reading a message");
	}
	env->message.properties =
		*(amqp_basic_properties_t *)f.payload.properties.decoded;
	size = f.payload.properties.body_size;
	if (size > FIKS_BODY_MAX)
		*over = 1;
	else if (size > 0 && !(body = bv_malloc((size_t)size))) {
		amqp_bytes_free(env->routing_key);
		return BV_ENOMEM;
	}
	while (got < size) {
		st = amqp_simple_wait_frame(c->amqp, &f);
		if (st != AMQP_STATUS_OK || f.frame_type != AMQP_FRAME_BODY ||
		    got + f.payload.body_fragment.len > size) {
			bv_free(body);
			amqp_bytes_free(env->routing_key);
			return lost(st, "reading a message");
		}
		if (body)
			memcpy(body + got, f.payload.body_fragment.bytes,
			       f.payload.body_fragment.len);
		got += f.payload.body_fragment.len;
	}
	env->message.body.bytes = body;
	env->message.body.len = body ? (size_t)size : 0;
	return 0;
}

int
fiks_receive(struct fiks_client *c, int timeout_ms, struct fiks_melding **out)
{
	int64_t deadline = mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	struct melding_impl *mi = NULL;
	amqp_envelope_t env;
	int rc, over;

	if (!c || !out)
		return BV_EINVAL;
	for (;;) {
		rc = amqp_ensure(c, deadline);
		if (rc < 0)
			return rc;
		amqp_maybe_release_buffers(c->amqp);
		rc = read_delivery(c, deadline, &env, &over);
		if (rc == FIKS_EAMQP || rc == BV_ENOMEM) {
			/* Mid-frame either way: the connection cannot be
			 * used again. Unacked messages come back redelivered
			 * on the next one, which this call may make. */
			amqp_drop(c, 1);
			if (rc == BV_ENOMEM)
				return rc;
			continue;
		}
		if (rc < 0)
			return rc;
		break;
	}
	mi = bv_calloc(1, sizeof(*mi));
	if (!mi) {
		rc = BV_ENOMEM;
		goto reject;
	}
	mi->m.delivery_tag = env.delivery_tag;
	mi->m.channel_epoch = c->epoch;
	mi->m.redelivered = env.redelivered != 0;
	rc = over ? FIKS_ELIMIT
		  : melding_parse(c, mi, &env.message.properties,
				  &env.routing_key);
	if (rc < 0)
		goto reject;
	mi->m.body = env.message.body.bytes;
	mi->m.body_len = env.message.body.len;
	env.message.body.bytes = NULL;
	amqp_bytes_free(env.routing_key);
	amqp_maybe_release_buffers(c->amqp);
	*out = &mi->m;
	return 0;
reject:
	/* A message we cannot represent must not block the queue: nack
	 * without requeue (Fiks IO drops it; no receipt to its sender). */
	bv_log(BV_LOG_WARN, "fiks: dropping a message: %s", fiks_strerror(rc));
	if (amqp_basic_nack(c->amqp, env.channel, env.delivery_tag, 0, 0) !=
	    AMQP_STATUS_OK)
		amqp_drop(c, 1);
	else
		amqp_maybe_release_buffers(c->amqp);
	if (mi)
		fiks_melding_free(&mi->m);
	bv_free(env.message.body.bytes);
	amqp_bytes_free(env.routing_key);
	return rc;
}

static int
settle(struct fiks_client *c, const struct fiks_melding *m, int ack)
{
	int st;

	if (!c || !m)
		return BV_EINVAL;
	if (!c->amqp || m->channel_epoch != c->epoch)
		return FIKS_EAMQP;
	st = ack ? amqp_basic_ack(c->amqp, 1, m->delivery_tag, 0)
		 : amqp_basic_nack(c->amqp, 1, m->delivery_tag, 0, 1);
	if (st != AMQP_STATUS_OK) {
		amqp_drop(c, 1);
		return lost(st, ack ? "ack" : "nack");
	}
	return 0;
}

int
fiks_ack(struct fiks_client *c, const struct fiks_melding *m)
{
	return settle(c, m, 1);
}

int
fiks_nack_requeue(struct fiks_client *c, const struct fiks_melding *m)
{
	return settle(c, m, 0);
}

/* ------------------------------------------------------------------ */
/* Messages with packages                                               */
/* ------------------------------------------------------------------ */

int
fiks_send(struct fiks_client *c, const struct fiks_send_req *req,
	  const struct fiks_file *files, size_t n,
	  const char *recipient_cert_pem, char melding_id[FIKS_UUID_LEN + 1])
{
	unsigned char *zip = NULL, *enc = NULL;
	size_t zip_len = 0, enc_len = 0;
	char *pem = NULL;
	int rc;

	if (!c || !req || (n && !files))
		return BV_EINVAL;
	if (n == 0)
		return fiks_send_raw(c, req, NULL, 0, melding_id);
	if (!recipient_cert_pem) {
		rc = fiks_katalog_cert(c, req->mottaker, &pem);
		if (rc < 0)
			goto out;
		recipient_cert_pem = pem;
	}
	rc = fiks_asice_build(files, n, signer(c), &zip, &zip_len);
	if (rc < 0)
		goto out;
	rc = fiks_cms_encrypt(zip, zip_len, recipient_cert_pem,
			      strlen(recipient_cert_pem), &enc, &enc_len);
	if (rc < 0)
		goto out;
	rc = fiks_send_raw(c, req, enc, enc_len, melding_id);
out:
	if (zip) {
		bv_wipe(zip, zip_len);
		free(zip);
	}
	free(enc);
	free(pem);
	return rc;
}

int
fiks_reply(struct fiks_client *c, const struct fiks_melding *m,
	   const char *type, const struct fiks_file *files, size_t n,
	   const char *klient_melding_id, char melding_id[FIKS_UUID_LEN + 1])
{
	struct fiks_send_req req;

	if (!c || !m || !type)
		return BV_EINVAL;
	memset(&req, 0, sizeof(req));
	req.mottaker = m->avsender;
	req.type = type;
	req.svar_paa = m->melding_id;
	req.klient_melding_id = klient_melding_id;
	req.klient_korrelasjons_id =
		m->klient_korrelasjons_id[0] ? m->klient_korrelasjons_id : NULL;
	return fiks_send(c, &req, files, n, NULL, melding_id);
}

int
fiks_open(struct fiks_client *c, const struct fiks_melding *m,
	  const char *expect_cert_pem, struct fiks_asice **out, char *err,
	  size_t errcap)
{
	unsigned char *dl = NULL, *zip = NULL;
	const unsigned char *ct;
	size_t dl_len = 0, ct_len, zip_len = 0;
	int rc;

	if (err && errcap)
		err[0] = '\0';
	if (!c || !m || !out)
		return BV_EINVAL;
	if (m->dokumentlager_id[0]) {
		rc = fiks_dokumentlager_get(c, m->dokumentlager_id, &dl,
					    &dl_len);
		if (rc < 0)
			return rc;
		ct = dl;
		ct_len = dl_len;
	} else {
		ct = m->body;
		ct_len = m->body_len;
	}
	if (ct_len == 0) {
		rc = BV_EINVAL;
		goto out;
	}
	rc = fiks_cms_decrypt(ct, ct_len, c->me, &zip, &zip_len);
	if (rc < 0)
		goto out;
	rc = fiks_asice_read(zip, zip_len, expect_cert_pem, out, err, errcap);
out:
	if (zip) {
		bv_wipe(zip, zip_len);
		free(zip);
	}
	bv_free(dl);
	return rc;
}
