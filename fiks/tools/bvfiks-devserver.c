/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * bvfiks-devserver: the HTTP half of a local FIKS IO (docs/fiks.md "Local
 * FIKS IO"), next to the RabbitMQ that tools/fiksio.sh starts: send,
 * katalog, dokumentlager, a Maskinporten-style token endpoint, the
 * RabbitMQ HTTP auth backend's endpoints, a dead-letter consumer that
 * turns dead letters into Fiks IO's tidsavbrudd and serverfeil receipts,
 * and Fiks Varsling's single SMS (kept, not sent: GET /varsling/dev/sms
 * lists what came, POST /varsling/dev/fail makes the next ones fail).
 * For development and tests only: one process, accounts from a JSON file,
 * tokens in memory. It never logs payloads, passwords or tokens.
 */
#define _GNU_SOURCE /* memmem() */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <jansson.h>
#include <microhttpd.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "bv_util.h"
#include "devserver_http.h"
#include "fiks_io.h"

#define EXCHANGE       "fiks-io.meldinger"
#define DLX	       "fiks-io.dlx"
#define DLQ	       "fiks-io.dlq"
#define QUEUE_PREFIX   "fiksio.konto."
#define ADMIN_USER     "fiksio-admin"
#define ACCOUNTS_MAX   256
#define TOKENS_MAX     4096
#define TOKEN_LEN      43 /* 32 random bytes, base64url */
#define SMALL_BODY_MAX (64u << 10)
#define DEFAULT_TTL_MS 604800000LL /* 7 days, as Fiks IO */
#define JWT_MAX	       16384
/* Request bodies held at once, all connections together: 64 connections
 * of 65 MiB each would be 4 GiB. */
#define BUFFERED_MAX (256u << 20)
/* Fiks IO's limit of deliveries before the dead-letter queue; RabbitMQ's
 * x-delivery-limit counts returns, so it is one less (docs/fiks.md). */
#define DELIVERY_LIMIT 2
/* SMS kept for GET /varsling/dev/sms; the oldest are dropped after. */
#define SMS_KEPT_MAX 1000

struct account {
	char konto[FIKS_UUID_LEN + 1];
	char integration_id[FIKS_UUID_LEN + 1];
	char *navn;
	char *password;
	char *client_id;
	char *cert_pem; /* NULL: no public key registered */
	EVP_PKEY *pub;
	int declared; /* its queue exists on the broker */
};

struct token {
	char tok[TOKEN_LEN + 1];
	int64_t exp; /* unix seconds */
};

static struct {
	int port;
	char amqp_host[64];
	int amqp_port;
	char secret[128];
	const char *accounts_path;
	const char *doklager;
	int64_t token_ttl;
	size_t max_body;

	struct account accounts[ACCOUNTS_MAX];
	size_t n_accounts;
	struct timespec accounts_mtime;

	struct token tokens[TOKENS_MAX];
	size_t next_token;

	/* Fiks Varsling (HTTP thread only). */
	json_t *sms;	     /* what came, oldest first */
	const char *sms_log; /* also appended here as JSON lines, or NULL */
	int sms_fail_left;   /* answer the next ones with sms_fail_status */
	unsigned sms_fail_status;

	amqp_connection_state_t pub; /* the HTTP thread's connection */
	size_t buffered;	     /* bytes in request bodies (HTTP thread) */
	atomic_int stop;
} S;

static void logf_(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
logf_(int level, const char *fmt, ...)
{
	char buf[900];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	bv_log(level, "fiks-devserver: %s", buf);
}

static int pub_ready(void);

/* ------------------------------------------------------------------ */
/* Accounts                                                             */
/* ------------------------------------------------------------------ */

static void
account_cleanup(struct account *a)
{
	free(a->navn);
	if (a->password) {
		bv_wipe(a->password, strlen(a->password));
		free(a->password);
	}
	free(a->client_id);
	free(a->cert_pem);
	EVP_PKEY_free(a->pub);
	memset(a, 0, sizeof(*a));
}

static char *
read_small_file(const char *path, size_t max)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;

	if (!f)
		return NULL;
	buf = malloc(max + 1);
	if (!buf) {
		fclose(f);
		return NULL;
	}
	n = fread(buf, 1, max + 1, f);
	fclose(f);
	if (n > max) {
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

static int
account_from_json(json_t *o, struct account *a)
{
	const char *konto = json_string_value(json_object_get(o, "konto"));
	const char *iid =
		json_string_value(json_object_get(o, "integration_id"));
	const char *pw =
		json_string_value(json_object_get(o, "integration_password"));
	const char *cid = json_string_value(json_object_get(o, "client_id"));
	const char *cert = json_string_value(json_object_get(o, "cert"));
	const char *navn = json_string_value(json_object_get(o, "navn"));

	memset(a, 0, sizeof(*a));
	if (!konto || !bv_uuid_valid(konto) || !iid || !bv_uuid_valid(iid) ||
	    !pw || !*pw || strchr(pw, ' ') || !cid || !*cid)
		return -1;
	snprintf(a->konto, sizeof(a->konto), "%s", konto);
	snprintf(a->integration_id, sizeof(a->integration_id), "%s", iid);
	a->navn = strdup(navn ? navn : konto);
	a->password = strdup(pw);
	a->client_id = strdup(cid);
	if (!a->navn || !a->password || !a->client_id)
		return -1;
	if (cert && *cert) {
		BIO *b;
		X509 *x;

		a->cert_pem = read_small_file(cert, 64 << 10);
		if (!a->cert_pem) {
			logf_(BV_LOG_ERR, "account %s: cannot read %s", konto,
			      cert);
			return -1;
		}
		b = BIO_new_mem_buf(a->cert_pem, -1);
		x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
		BIO_free(b);
		a->pub = x ? X509_get_pubkey(x) : NULL;
		X509_free(x);
		if (!a->pub) {
			logf_(BV_LOG_ERR,
			      "account %s: %s is not a PEM "
			      "certificate",
			      konto, cert);
			return -1;
		}
	}
	return 0;
}

static int
accounts_load(void)
{
	struct account tmp[ACCOUNTS_MAX];
	json_error_t jerr;
	json_t *root, *arr, *o;
	struct stat st;
	size_t i, n = 0;

	if (stat(S.accounts_path, &st) < 0) {
		logf_(BV_LOG_ERR, "%s: %s", S.accounts_path, strerror(errno));
		return -1;
	}
	root = json_load_file(S.accounts_path, 0, &jerr);
	if (!root) {
		logf_(BV_LOG_ERR, "%s:%d: %s", S.accounts_path, jerr.line,
		      jerr.text);
		return -1;
	}
	arr = json_object_get(root, "accounts");
	if (!json_is_array(arr) || json_array_size(arr) > ACCOUNTS_MAX) {
		logf_(BV_LOG_ERR, "%s: no \"accounts\" array of at most %d",
		      S.accounts_path, ACCOUNTS_MAX);
		json_decref(root);
		return -1;
	}
	json_array_foreach(arr, i, o)
	{
		if (account_from_json(o, &tmp[n]) < 0) {
			logf_(BV_LOG_ERR, "%s: account %zu is incomplete",
			      S.accounts_path, i);
			account_cleanup(&tmp[n]);
			while (n > 0)
				account_cleanup(&tmp[--n]);
			json_decref(root);
			return -1;
		}
		n++;
	}
	json_decref(root);
	for (i = 0; i < S.n_accounts; i++)
		account_cleanup(&S.accounts[i]);
	memcpy(S.accounts, tmp, n * sizeof(tmp[0]));
	S.n_accounts = n;
	S.accounts_mtime = st.st_mtim;
	logf_(BV_LOG_INFO, "%zu accounts from %s", n, S.accounts_path);
	return 0;
}

/* Reloads the accounts file when it changed since the last load. */
static void
accounts_refresh(void)
{
	struct stat st;

	if (stat(S.accounts_path, &st) < 0)
		return;
	if (st.st_mtim.tv_sec == S.accounts_mtime.tv_sec &&
	    st.st_mtim.tv_nsec == S.accounts_mtime.tv_nsec)
		return;
	/* New accounts' queues at once: a receiver may connect before
	 * anything is sent to it. */
	if (accounts_load() == 0)
		pub_ready();
}

static struct account *
account_find(const char *konto)
{
	size_t i;

	if (!konto)
		return NULL;
	for (i = 0; i < S.n_accounts; i++)
		if (strcmp(S.accounts[i].konto, konto) == 0)
			return &S.accounts[i];
	return NULL;
}

/* 1 when id/pw is an integration that owns at least one account. */
static int
integration_ok(const char *id, const char *pw)
{
	size_t i;

	if (!id || !pw)
		return 0;
	for (i = 0; i < S.n_accounts; i++)
		if (strcmp(S.accounts[i].integration_id, id) == 0 &&
		    strlen(S.accounts[i].password) == strlen(pw) &&
		    CRYPTO_memcmp(S.accounts[i].password, pw, strlen(pw)) == 0)
			return 1;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Tokens                                                               */
/* ------------------------------------------------------------------ */

static int
token_issue(char out[TOKEN_LEN + 1])
{
	unsigned char r[32];
	char *s;

	if (RAND_bytes(r, sizeof(r)) != 1)
		return -1;
	s = bv_b64url_encode(r, sizeof(r));
	if (!s)
		return -1;
	snprintf(out, TOKEN_LEN + 1, "%s", s);
	bv_wipe(s, strlen(s));
	bv_free(s);
	snprintf(S.tokens[S.next_token].tok, sizeof(S.tokens[0].tok), "%s",
		 out);
	S.tokens[S.next_token].exp = bv_now_s() + S.token_ttl;
	S.next_token = (S.next_token + 1) % TOKENS_MAX;
	return 0;
}

static int
token_ok(const char *tok)
{
	int64_t now = bv_now_s();
	size_t i;

	if (!tok || strlen(tok) != TOKEN_LEN)
		return 0;
	for (i = 0; i < TOKENS_MAX; i++)
		if (S.tokens[i].exp > now &&
		    CRYPTO_memcmp(S.tokens[i].tok, tok, TOKEN_LEN) == 0)
			return 1;
	return 0;
}

/* ------------------------------------------------------------------ */
/* AMQP                                                                 */
/* ------------------------------------------------------------------ */

static int
rpc_ok(amqp_connection_state_t c, const char *what)
{
	amqp_rpc_reply_t r = amqp_get_rpc_reply(c);

	if (r.reply_type == AMQP_RESPONSE_NORMAL)
		return 0;
	logf_(BV_LOG_WARN, "amqp %s failed (reply %d, library %d)", what,
	      (int)r.reply_type, r.library_error);
	return -1;
}

static void
amqp_drop(amqp_connection_state_t *c)
{
	if (!*c)
		return;
	amqp_connection_close(*c, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(*c);
	*c = NULL;
}

static amqp_connection_state_t
amqp_open_admin(int confirms)
{
	amqp_connection_state_t c = amqp_new_connection();
	amqp_socket_t *s = c ? amqp_tcp_socket_new(c) : NULL;
	struct timeval tv = {5, 0};
	amqp_rpc_reply_t r;

	if (!s)
		goto fail;
	amqp_set_handshake_timeout(c, &tv);
	amqp_set_rpc_timeout(c, &tv);
	if (amqp_socket_open_noblock(s, S.amqp_host, S.amqp_port, &tv) != 0)
		goto fail;
	r = amqp_login(c, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, ADMIN_USER,
		       S.secret);
	if (r.reply_type != AMQP_RESPONSE_NORMAL)
		goto fail;
	amqp_channel_open(c, 1);
	if (rpc_ok(c, "channel.open") < 0)
		goto fail;
	if (confirms) {
		amqp_confirm_select(c, 1);
		if (rpc_ok(c, "confirm.select") < 0)
			goto fail;
	}
	return c;
fail:
	if (c)
		amqp_destroy_connection(c);
	return NULL;
}

static int
queue_declare(amqp_connection_state_t c, const char *konto)
{
	char q[sizeof(QUEUE_PREFIX) + FIKS_UUID_LEN];
	amqp_table_entry_t e[3];
	amqp_table_t args = {3, e};

	snprintf(q, sizeof(q), QUEUE_PREFIX "%s", konto);
	e[0].key = amqp_cstring_bytes("x-queue-type");
	e[0].value.kind = AMQP_FIELD_KIND_UTF8;
	e[0].value.value.bytes = amqp_cstring_bytes("quorum");
	e[1].key = amqp_cstring_bytes("x-delivery-limit");
	e[1].value.kind = AMQP_FIELD_KIND_I64;
	e[1].value.value.i64 = DELIVERY_LIMIT;
	e[2].key = amqp_cstring_bytes("x-dead-letter-exchange");
	e[2].value.kind = AMQP_FIELD_KIND_UTF8;
	e[2].value.value.bytes = amqp_cstring_bytes(DLX);
	amqp_queue_declare(c, 1, amqp_cstring_bytes(q), 0, 1, 0, 0, args);
	if (rpc_ok(c, "queue.declare") < 0)
		return -1;
	amqp_queue_bind(c, 1, amqp_cstring_bytes(q),
			amqp_cstring_bytes(EXCHANGE), amqp_cstring_bytes(q),
			amqp_empty_table);
	return rpc_ok(c, "queue.bind");
}

/* The publishing connection, (re)opened on demand, with every account's
 * queue declared. 0 or -1. */
static int
pub_ready(void)
{
	size_t i;

	if (!S.pub) {
		S.pub = amqp_open_admin(1);
		if (!S.pub)
			return -1;
		for (i = 0; i < S.n_accounts; i++)
			S.accounts[i].declared = 0;
	}
	for (i = 0; i < S.n_accounts; i++) {
		if (S.accounts[i].declared)
			continue;
		if (queue_declare(S.pub, S.accounts[i].konto) < 0) {
			amqp_drop(&S.pub);
			return -1;
		}
		S.accounts[i].declared = 1;
	}
	return 0;
}

struct hdrs {
	amqp_table_entry_t e[FIKS_HEADERS_MAX + 8];
	char *owned[FIKS_HEADERS_MAX + 8];
	int n;
};

static int
hdr_add(struct hdrs *h, const char *prefix, const char *k, const char *v)
{
	size_t nl = strlen(prefix) + strlen(k), vl = strlen(v);
	char *name;

	if (h->n >= (int)(sizeof(h->e) / sizeof(h->e[0])))
		return -1;
	/* Name and value in one block: the caller's strings may change
	 * before the message is published. */
	name = malloc(nl + 1 + vl + 1);
	if (!name)
		return -1;
	snprintf(name, nl + 1, "%s%s", prefix, k);
	memcpy(name + nl + 1, v, vl + 1);
	h->owned[h->n] = name;
	h->e[h->n].key = amqp_cstring_bytes(name);
	h->e[h->n].value.kind = AMQP_FIELD_KIND_UTF8;
	h->e[h->n].value.value.bytes = amqp_cstring_bytes(name + nl + 1);
	h->n++;
	return 0;
}

static void
hdrs_free(struct hdrs *h)
{
	int i;

	for (i = 0; i < h->n; i++)
		free(h->owned[i]);
	h->n = 0;
}

/*
 * Publishes to the exchange with a publisher confirm, mandatory so that a
 * missing queue is an error. 0, or -1 (the connection is dropped).
 */
static int
publish_confirmed(const char *konto, struct hdrs *h, int64_t ttl_ms,
		  const void *body, size_t len)
{
	char rk[sizeof(QUEUE_PREFIX) + FIKS_UUID_LEN], exp[24];
	amqp_basic_properties_t p;
	amqp_bytes_t b = {len, (void *)body};
	int returned = 0, attempt;

	snprintf(rk, sizeof(rk), QUEUE_PREFIX "%s", konto);
	snprintf(exp, sizeof(exp), "%lld", (long long)ttl_ms);
	memset(&p, 0, sizeof(p));
	p._flags = AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
		   AMQP_BASIC_EXPIRATION_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
	p.headers.num_entries = h->n;
	p.headers.entries = h->e;
	p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
	p.expiration = amqp_cstring_bytes(exp);
	p.content_type = amqp_cstring_bytes("application/octet-stream");
	for (attempt = 0; attempt < 2; attempt++) {
		if (pub_ready() < 0)
			continue;
		if (amqp_basic_publish(S.pub, 1, amqp_cstring_bytes(EXCHANGE),
				       amqp_cstring_bytes(rk), 1, 0, &p,
				       b) != AMQP_STATUS_OK) {
			amqp_drop(&S.pub);
			continue;
		}
		for (;;) {
			struct timeval tv = {10, 0};
			amqp_frame_t f;
			amqp_message_t m;

			if (amqp_simple_wait_frame_noblock(S.pub, &f, &tv) !=
			    AMQP_STATUS_OK) {
				/* A connection the broker dropped while we
				 * were idle: once more on a new one. */
				amqp_drop(&S.pub);
				break;
			}
			if (f.frame_type != AMQP_FRAME_METHOD)
				continue;
			if (f.payload.method.id ==
				    AMQP_CONNECTION_CLOSE_METHOD ||
			    f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD) {
				amqp_drop(&S.pub);
				break;
			}
			switch (f.payload.method.id) {
			case AMQP_BASIC_ACK_METHOD:
				return returned ? -1 : 0;
			case AMQP_BASIC_RETURN_METHOD:
				returned = 1;
				if (amqp_read_message(S.pub, f.channel, &m, 0)
					    .reply_type !=
				    AMQP_RESPONSE_NORMAL) {
					amqp_drop(&S.pub);
					return -1;
				}
				amqp_destroy_message(&m);
				break;
			default:
				/* nack, channel or connection close */
				amqp_drop(&S.pub);
				return -1;
			}
		}
	}
	return -1;
}

/* ------------------------------------------------------------------ */
/* The dead-letter consumer                                             */
/* ------------------------------------------------------------------ */

static const amqp_field_value_t *
table_get(const amqp_table_t *t, const char *key)
{
	size_t kl = strlen(key);
	int i;

	for (i = 0; i < t->num_entries; i++)
		if (t->entries[i].key.len == kl &&
		    memcmp(t->entries[i].key.bytes, key, kl) == 0)
			return &t->entries[i].value;
	return NULL;
}

/* A longstr header as a C string in buf, or "" . */
static const char *
table_str(const amqp_table_t *t, const char *key, char *buf, size_t cap)
{
	const amqp_field_value_t *v = table_get(t, key);

	buf[0] = '\0';
	if (v &&
	    (v->kind == AMQP_FIELD_KIND_UTF8 ||
	     v->kind == AMQP_FIELD_KIND_BYTES) &&
	    v->value.bytes.len < cap) {
		memcpy(buf, v->value.bytes.bytes, v->value.bytes.len);
		buf[v->value.bytes.len] = '\0';
		if (memchr(buf, '\0', v->value.bytes.len))
			buf[0] = '\0';
	}
	return buf;
}

/*
 * Turns one dead letter into the receipt Fiks IO sends its sender:
 * x-first-death-reason `expired` → tidsavbrudd (no body, svar-til,
 * svar-til-type), `delivery_limit` → serverfeil.v1. A message a receiver
 * rejected (a plain nack) and Fiks IO's own receipts are dropped.
 */
static void
dead_letter(amqp_connection_state_t c, const amqp_envelope_t *env)
{
	const amqp_table_t *t = &env->message.properties.headers;
	char reason[32], mid[64], type[FIKS_TYPE_MAX + 1], avs[64], rk[128],
		korr[FIKS_HEADER_VALUE_MAX + 1], id[FIKS_UUID_LEN + 1],
		err[FIKS_UUID_LEN + 1], *body = NULL;
	const char *mottaker = "";
	struct hdrs h = {0};
	amqp_basic_properties_t p;
	json_t *j;

	if (!(env->message.properties._flags & AMQP_BASIC_HEADERS_FLAG))
		return;
	table_str(t, "x-first-death-reason", reason, sizeof(reason));
	table_str(t, "melding-id", mid, sizeof(mid));
	table_str(t, "type", type, sizeof(type));
	table_str(t, "avsender-id", avs, sizeof(avs));
	table_str(t, "x-first-death-queue", rk, sizeof(rk));
	table_str(t, "egendefinert-header.klientKorrelasjonsId", korr,
		  sizeof(korr));
	if (strncmp(rk, QUEUE_PREFIX, strlen(QUEUE_PREFIX)) == 0)
		mottaker = rk + strlen(QUEUE_PREFIX);
	if (!bv_uuid_valid(avs) || !bv_uuid_valid(mid) ||
	    strncmp(type, "no.ks.fiks.kvittering.", 22) == 0) {
		logf_(BV_LOG_INFO, "dead letter (%s) dropped", reason);
		return;
	}
	bv_uuid_generate(id);
	if (hdr_add(&h, "", "melding-id", id) < 0 ||
	    hdr_add(&h, "", "avsender-id",
		    bv_uuid_valid(mottaker) ? mottaker : avs) < 0 ||
	    hdr_add(&h, "", "svar-til", mid) < 0 ||
	    (korr[0] && hdr_add(&h, "egendefinert-header.",
				"klientKorrelasjonsId", korr) < 0))
		goto out;
	if (strcmp(reason, "expired") == 0) {
		if (hdr_add(&h, "", "type", FIKS_TYPE_TIDSAVBRUDD) < 0 ||
		    hdr_add(&h, "", "svar-til-type", type) < 0)
			goto out;
	} else if (strcmp(reason, "delivery_limit") == 0) {
		bv_uuid_generate(err);
		j = json_pack("{s:s, s:s, s:s}", "errorId", err, "feilmelding",
			      "Meldingen ble ikke kvittert ut etter 3 "
			      "leveringsforsøk og er lagt i feilkøen",
			      "correlationId", mid);
		body = j ? json_dumps(j, JSON_COMPACT) : NULL;
		json_decref(j);
		if (!body || hdr_add(&h, "", "type", FIKS_TYPE_SERVERFEIL) < 0)
			goto out;
	} else {
		logf_(BV_LOG_INFO, "dead letter (%s) dropped", reason);
		goto out;
	}
	snprintf(rk, sizeof(rk), QUEUE_PREFIX "%s", avs);
	memset(&p, 0, sizeof(p));
	p._flags = AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
		   AMQP_BASIC_EXPIRATION_FLAG;
	p.headers.num_entries = h.n;
	p.headers.entries = h.e;
	p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
	p.expiration = amqp_cstring_bytes("604800000");
	amqp_basic_publish(c, 1, amqp_cstring_bytes(EXCHANGE),
			   amqp_cstring_bytes(rk), 0, 0, &p,
			   body ? amqp_cstring_bytes(body) : amqp_empty_bytes);
	logf_(BV_LOG_NOTICE, "dead letter %s (%s) → %s to %s", mid, reason,
	      strcmp(reason, "expired") == 0 ? "tidsavbrudd" : "serverfeil",
	      avs);
out:
	free(body);
	hdrs_free(&h);
}

static void *
dlq_thread(void *arg)
{
	amqp_connection_state_t c = NULL;
	int backoff = 100;

	(void)arg;
	while (!atomic_load(&S.stop)) {
		struct timeval tv = {0, 500000};
		amqp_envelope_t env;
		amqp_rpc_reply_t r;

		if (!c) {
			c = amqp_open_admin(0);
			if (c) {
				amqp_basic_qos(c, 1, 0, 10, 0);
				amqp_basic_consume(c, 1,
						   amqp_cstring_bytes(DLQ),
						   amqp_empty_bytes, 0, 0, 0,
						   amqp_empty_table);
				if (rpc_ok(c, "basic.consume dlq") < 0)
					amqp_drop(&c);
			}
			if (!c) {
				usleep((useconds_t)backoff * 1000);
				backoff = backoff < 2000 ? backoff * 2 : 2000;
				continue;
			}
			backoff = 100;
		}
		amqp_maybe_release_buffers(c);
		r = amqp_consume_message(c, &env, &tv, 0);
		if (r.reply_type == AMQP_RESPONSE_NORMAL) {
			dead_letter(c, &env);
			amqp_basic_ack(c, 1, env.delivery_tag, 0);
			amqp_destroy_envelope(&env);
			continue;
		}
		if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
		    r.library_error == AMQP_STATUS_TIMEOUT)
			continue;
		if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
		    r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
			amqp_frame_t f;

			if (amqp_simple_wait_frame_noblock(c, &f, &tv) ==
				    AMQP_STATUS_OK &&
			    f.frame_type == AMQP_FRAME_METHOD &&
			    f.payload.method.id == AMQP_BASIC_ACK_METHOD)
				continue;
		}
		amqp_drop(&c);
	}
	amqp_drop(&c);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* HTTP                                                                 */
/* ------------------------------------------------------------------ */

struct req {
	unsigned char *buf;
	size_t len, cap, max;
	int too_big;
};

static enum MHD_Result
reply(struct MHD_Connection *c, unsigned status, const char *ctype,
      const void *body, size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
		len, (void *)body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result rc;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", ctype);
	rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result
reply_json(struct MHD_Connection *c, unsigned status, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	enum MHD_Result rc;

	json_decref(j);
	if (!s)
		return reply(c, 500, "text/plain", "", 0);
	rc = reply(c, status, "application/json", s, strlen(s));
	free(s);
	return rc;
}

static enum MHD_Result
reply_err(struct MHD_Connection *c, unsigned status, const char *code,
	  const char *msg)
{
	return reply_json(c, status,
			  json_pack("{s:i, s:s, s:s}", "status", (int)status,
				    "errorCode", code, "message", msg));
}

static const char *
hdr(struct MHD_Connection *c, const char *name)
{
	return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

/* Bearer token and integration headers. 0, or an HTTP status. */
static unsigned
check_auth(struct MHD_Connection *c, const char **iid)
{
	const char *a = hdr(c, "Authorization");

	*iid = hdr(c, "IntegrasjonId");
	if (!a || strncmp(a, "Bearer ", 7) != 0 || !token_ok(a + 7))
		return 401;
	if (!integration_ok(*iid, hdr(c, "IntegrasjonPassord")))
		return 401;
	return 0;
}

static void
free_secret(char *s)
{
	if (s) {
		bv_wipe(s, strlen(s));
		free(s);
	}
}

/* POST /fiks-io/authorization/api/v1/{user,vhost,resource,topic}: the
 * RabbitMQ HTTP auth backend. Answers "allow" or "deny". */
static enum MHD_Result
handle_authz(struct MHD_Connection *c, const char *what, struct req *q)
{
	char *user = form_get((char *)q->buf, "username");
	const char *ans = "deny";
	size_t i;

	if (!user)
		goto out;
	if (strcmp(what, "user") == 0) {
		char *pw = form_get((char *)q->buf, "password");
		char *sp = pw ? strrchr(pw, ' ') : NULL;

		if (sp) {
			*sp = '\0';
			if (integration_ok(user, pw) && token_ok(sp + 1))
				ans = "allow";
			*sp = ' ';
		}
		free_secret(pw);
		logf_(BV_LOG_INFO, "amqp login of %s: %s", user, ans);
	} else if (strcmp(what, "vhost") == 0) {
		char *vh = form_get((char *)q->buf, "vhost");

		if (vh && strcmp(vh, "/") == 0)
			ans = "allow";
		free(vh);
	} else if (strcmp(what, "resource") == 0) {
		char *res = form_get((char *)q->buf, "resource");
		char *name = form_get((char *)q->buf, "name");
		char *perm = form_get((char *)q->buf, "permission");

		/* An integration may read (consume) its accounts' queues
		 * and nothing else. */
		if (res && name && perm && strcmp(res, "queue") == 0 &&
		    strcmp(perm, "read") == 0 &&
		    strncmp(name, QUEUE_PREFIX, strlen(QUEUE_PREFIX)) == 0) {
			for (i = 0; i < S.n_accounts; i++)
				if (strcmp(S.accounts[i].integration_id,
					   user) == 0 &&
				    strcmp(S.accounts[i].konto,
					   name + strlen(QUEUE_PREFIX)) == 0)
					ans = "allow";
		}
		if (strcmp(ans, "allow") != 0)
			logf_(BV_LOG_NOTICE, "amqp %s %s of %s by %s: deny",
			      perm ? perm : "?", res ? res : "?",
			      name ? name : "?", user);
		free(res);
		free(name);
		free(perm);
	}
out:
	free(user);
	return reply(c, 200, "text/plain", ans, strlen(ans));
}

static int
b64url_json(const char *s, size_t len, json_t **out)
{
	unsigned char buf[JWT_MAX];
	size_t n;

	if (bv_b64url_decode(s, len, buf, sizeof(buf), &n) < 0)
		return -1;
	*out = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, NULL);
	return *out ? 0 : -1;
}

/* Verifies a JWT-bearer grant's assertion; returns the account whose
 * client id issued it, or NULL with why. */
static const struct account *
jwt_verify(const char *jwt, const char **why)
{
	const char *d1 = strchr(jwt, '.'),
		   *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	json_t *h = NULL, *p = NULL;
	const struct account *who = NULL;
	unsigned char sig[1024];
	size_t siglen, i;
	int64_t now = bv_now_s(), iat, exp;
	const char *iss, *scope, *aud;
	char want_aud[64];

	*why = "malformed assertion";
	if (!d1 || !d2 || strchr(d2 + 1, '.'))
		return NULL;
	if (b64url_json(jwt, (size_t)(d1 - jwt), &h) < 0 ||
	    b64url_json(d1 + 1, (size_t)(d2 - d1 - 1), &p) < 0)
		goto out;
	if (bv_b64url_decode(d2 + 1, strlen(d2 + 1), sig, sizeof(sig),
			     &siglen) < 0)
		goto out;
	*why = "unsupported alg";
	if (!json_is_string(json_object_get(h, "alg")) ||
	    strcmp(json_string_value(json_object_get(h, "alg")), "RS256") != 0)
		goto out;
	iss = json_string_value(json_object_get(p, "iss"));
	scope = json_string_value(json_object_get(p, "scope"));
	aud = json_string_value(json_object_get(p, "aud"));
	iat = json_integer_value(json_object_get(p, "iat"));
	exp = json_integer_value(json_object_get(p, "exp"));
	*why = "claims";
	snprintf(want_aud, sizeof(want_aud), ":%d/", S.port);
	if (!iss || !scope || !aud ||
	    !json_is_string(json_object_get(p, "jti")))
		goto out;
	if (strlen(aud) < strlen(want_aud) ||
	    strcmp(aud + strlen(aud) - strlen(want_aud), want_aud) != 0) {
		*why = "audience";
		goto out;
	}
	if (strcmp(scope, "ks:fiks") != 0 && !strstr(scope, "ks:fiks ") &&
	    !strstr(scope, " ks:fiks")) {
		*why = "scope";
		goto out;
	}
	if (exp <= now || iat > now + 10 || exp - iat > 130) {
		*why = "expired or too long-lived";
		goto out;
	}
	*why = "unknown client or bad signature";
	for (i = 0; i < S.n_accounts && !who; i++) {
		const struct account *a = &S.accounts[i];
		EVP_MD_CTX *ctx;

		if (!a->pub || strcmp(a->client_id, iss) != 0)
			continue;
		ctx = EVP_MD_CTX_new();
		if (ctx &&
		    EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL,
					 a->pub) == 1 &&
		    EVP_DigestVerify(ctx, sig, siglen,
				     (const unsigned char *)jwt,
				     (size_t)(d2 - jwt)) == 1)
			who = a;
		EVP_MD_CTX_free(ctx);
	}
out:
	json_decref(h);
	json_decref(p);
	return who;
}

static enum MHD_Result
handle_token(struct MHD_Connection *c, struct req *q)
{
	char *grant = form_get((char *)q->buf, "grant_type");
	char *jwt = form_get((char *)q->buf, "assertion");
	char tok[TOKEN_LEN + 1];
	const struct account *who;
	const char *why = "missing grant_type or assertion";
	enum MHD_Result rc;

	if (!grant || !jwt ||
	    strcmp(grant, "urn:ietf:params:oauth:grant-type:jwt-bearer") != 0 ||
	    !(who = jwt_verify(jwt, &why))) {
		logf_(BV_LOG_NOTICE, "token refused: %s", why);
		rc = reply_json(c, 400,
				json_pack("{s:s, s:s}", "error",
					  "invalid_grant", "error_description",
					  why));
	} else if (token_issue(tok) < 0) {
		rc = reply_err(c, 500, "INTERNAL", "no randomness");
	} else {
		logf_(BV_LOG_INFO, "token issued to client %s", who->client_id);
		rc = reply_json(
			c, 200,
			json_pack("{s:s, s:s, s:I, s:s}", "access_token", tok,
				  "token_type", "Bearer", "expires_in",
				  (json_int_t)S.token_ttl, "scope", "ks:fiks"));
		bv_wipe(tok, sizeof(tok));
	}
	free(grant);
	free_secret(jwt);
	return rc;
}

static int
valid_header_name(const char *k)
{
	size_t i, l = strlen(k);

	if (l == 0 || l > FIKS_HEADER_NAME_MAX)
		return 0;
	for (i = 0; i < l; i++)
		if (!((k[i] >= 'a' && k[i] <= 'z') ||
		      (k[i] >= 'A' && k[i] <= 'Z') ||
		      (k[i] >= '0' && k[i] <= '9') || strchr("-_.", k[i])))
			return 0;
	return 1;
}

static int
doklager_store(const char *id, const char *konto, const void *data, size_t len)
{
	char path[PATH_MAX];
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "%s/%s.owner", S.doklager, id);
	f = fopen(path, "w");
	if (!f)
		return -1;
	ok = fputs(konto, f) >= 0;
	ok = (fclose(f) == 0) && ok;
	snprintf(path, sizeof(path), "%s/%s", S.doklager, id);
	f = fopen(path, "wb");
	if (!f)
		return -1;
	ok = fwrite(data, 1, len, f) == len && ok;
	ok = (fclose(f) == 0) && ok;
	return ok ? 0 : -1;
}

static enum MHD_Result
handle_send(struct MHD_Connection *c, struct req *q)
{
	struct part parts[PARTS_MAX];
	const struct part *meta = NULL, *data = NULL;
	const char *iid, *avs, *mot, *type, *svar, *k, *why;
	struct account *a_avs, *a_mot;
	char id[FIKS_UUID_LEN + 1], dok[FIKS_UUID_LEN + 1] = "";
	json_t *m = NULL, *headere, *v, *ttlj, *out;
	struct hdrs h = {0};
	int64_t ttl = DEFAULT_TTL_MS;
	enum MHD_Result rc;
	unsigned st;
	int n, i;

	st = check_auth(c, &iid);
	if (st)
		return reply_err(c, st, "UNAUTHORIZED",
				 "token or integration refused");
	n = multipart_parse(q->buf, q->len, hdr(c, "Content-Type"), parts,
			    &why);
	if (n < 0)
		return reply_err(c, 400, "BAD_MULTIPART", why);
	for (i = 0; i < n; i++) {
		if (strcmp(parts[i].name, "metadata") == 0 && !meta)
			meta = &parts[i];
		else if (strcmp(parts[i].name, "data") == 0 && !data)
			data = &parts[i];
		else
			return reply_err(c, 400, "BAD_MULTIPART",
					 "unexpected or repeated part");
	}
	if (!meta)
		return reply_err(c, 400, "BAD_METADATA", "no metadata part");
	if (meta->len > SMALL_BODY_MAX)
		return reply_err(c, 400, "BAD_METADATA",
				 "metadata part over 64 KiB");
	m = json_loadb((const char *)meta->data, meta->len,
		       JSON_REJECT_DUPLICATES, NULL);
	avs = json_string_value(json_object_get(m, "avsenderKontoId"));
	mot = json_string_value(json_object_get(m, "mottakerKontoId"));
	type = json_string_value(json_object_get(m, "meldingType"));
	v = json_object_get(m, "svarPaMelding");
	svar = json_string_value(v);
	headere = json_object_get(m, "headere");
	ttlj = json_object_get(m, "ttl");
	if (!json_is_object(m) || !avs || !mot || !bv_uuid_valid(avs) ||
	    !bv_uuid_valid(mot) || !type || !*type ||
	    strlen(type) > FIKS_TYPE_MAX || (v && !json_is_null(v) && !svar) ||
	    (svar && !bv_uuid_valid(svar)) ||
	    (headere && !json_is_null(headere) && !json_is_object(headere)) ||
	    (ttlj && !json_is_null(ttlj) && !json_is_integer(ttlj))) {
		rc = reply_err(c, 400, "BAD_METADATA",
			       "metadata lacks a field or has a bad one");
		goto out;
	}
	if (json_is_integer(ttlj)) {
		ttl = json_integer_value(ttlj);
		if (ttl < 1000 || ttl > 30LL * 86400 * 1000) {
			rc = reply_err(c, 400, "BAD_TTL",
				       "ttl must be 1 s … 30 days in ms");
			goto out;
		}
	}
	accounts_refresh();
	a_avs = account_find(avs);
	a_mot = account_find(mot);
	if (!a_avs || strcmp(a_avs->integration_id, iid) != 0) {
		rc = reply_err(c, 403, "FORBIDDEN",
			       "the sender account is not the integration's");
		goto out;
	}
	if (!a_mot) {
		rc = reply_err(c, 404, "NOT_FOUND", "no such recipient");
		goto out;
	}
	bv_uuid_generate(id);
	if (hdr_add(&h, "", "melding-id", id) < 0 ||
	    hdr_add(&h, "", "type", type) < 0 ||
	    hdr_add(&h, "", "avsender-id", avs) < 0 ||
	    (svar && hdr_add(&h, "", "svar-til", svar) < 0))
		goto oom;
	if (json_is_object(headere) &&
	    json_object_size(headere) > FIKS_HEADERS_MAX) {
		rc = reply_err(c, 400, "BAD_HEADERS", "too many headere");
		goto out;
	}
	if (json_is_object(headere))
		json_object_foreach(headere, k, v)
		{
			const char *s = json_string_value(v);

			if (!valid_header_name(k) || !s ||
			    strlen(s) > FIKS_HEADER_VALUE_MAX) {
				rc = reply_err(c, 400, "BAD_HEADERS",
					       "a header name or value");
				goto out;
			}
			if (hdr_add(&h, "egendefinert-header.", k, s) < 0)
				goto oom;
		}
	/* The .NET client sends klientMeldingID beside the headere. */
	{
		const char *kmi = json_string_value(
			json_object_get(m, "klientMeldingId"));

		if (!kmi)
			kmi = json_string_value(
				json_object_get(m, "klientMeldingID"));
		if (kmi && !(json_is_object(headere) &&
			     json_object_get(headere, "klientMeldingId"))) {
			if (strlen(kmi) > FIKS_HEADER_VALUE_MAX) {
				rc = reply_err(c, 400, "BAD_HEADERS",
					       "klientMeldingId");
				goto out;
			}
			if (hdr_add(&h, "egendefinert-header.",
				    "klientMeldingId", kmi) < 0)
				goto oom;
		}
	}
	if (data && data->len > FIKS_DOKUMENTLAGER_THRESHOLD) {
		bv_uuid_generate(dok);
		if (doklager_store(dok, mot, data->data, data->len) < 0) {
			rc = reply_err(c, 500, "DOKUMENTLAGER",
				       "cannot store the payload");
			goto out;
		}
		if (hdr_add(&h, "", "dokumentlager-id", dok) < 0)
			goto oom;
	}
	if (publish_confirmed(mot, &h, ttl, dok[0] || !data ? NULL : data->data,
			      dok[0] || !data ? 0 : data->len) < 0) {
		rc = reply_err(c, 503, "UNAVAILABLE",
			       "the message broker did not take the message");
		goto out;
	}
	out = json_pack(
		"{s:s, s:s, s:s, s:s, s:I, s:o, s:o, s:o}", "meldingId", id,
		"meldingType", type, "avsenderKontoId", avs, "mottakerKontoId",
		mot, "ttl", (json_int_t)ttl, "dokumentlagerId",
		dok[0] ? json_string(dok) : json_null(), "svarPaMelding",
		svar ? json_string(svar) : json_null(), "headere",
		json_is_object(headere) ? json_incref(headere) : json_object());
	logf_(BV_LOG_INFO, "sent %s (%s, %zu bytes%s) %s → %s", id, type,
	      data ? data->len : 0, dok[0] ? ", dokumentlager" : "", avs, mot);
	rc = reply_json(c, 202, out);
	goto out;
oom:
	rc = reply_err(c, 500, "INTERNAL", "out of memory");
out:
	hdrs_free(&h);
	json_decref(m);
	return rc;
}

static int
asn1_time_iso(const ASN1_TIME *t, char *buf, size_t cap)
{
	struct tm tm;

	if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
		return -1;
	strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return 0;
}

static enum MHD_Result
handle_katalog(struct MHD_Connection *c, const char *rest)
{
	char konto[FIKS_UUID_LEN + 1];
	const struct account *a;
	size_t n = strcspn(rest, "/");

	if (n != FIKS_UUID_LEN)
		return reply_err(c, 404, "NOT_FOUND", "no such account");
	memcpy(konto, rest, n);
	konto[n] = '\0';
	accounts_refresh();
	a = account_find(konto);
	if (!a)
		return reply_err(c, 404, "NOT_FOUND", "no such account");
	if (rest[n] == '\0')
		return reply_json(
			c, 200,
			json_pack("{s:s, s:s, s:s, s:s, s:{s:b, s:b, s:n}}",
				  "fiksOrgId",
				  "00000000-0000-4000-8000-000000000000",
				  "fiksOrgNavn", "bvchat development",
				  "kontoId", a->konto, "kontoNavn", a->navn,
				  "status", "gyldigAvsender", 1,
				  "gyldigMottaker", 1, "melding"));
	if (strcmp(rest + n, "/offentligNokkel") == 0) {
		char from[32] = "", to[32] = "", subj[512] = "", iss[512] = "";
		BIO *b;
		X509 *x;
		char *serial = NULL;
		BIGNUM *bn;
		json_t *j;

		if (!a->cert_pem)
			return reply_err(c, 404, "NOT_FOUND",
					 "the account has no public key");
		b = BIO_new_mem_buf(a->cert_pem, -1);
		x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
		BIO_free(b);
		if (!x)
			return reply_err(c, 500, "INTERNAL", "bad certificate");
		asn1_time_iso(X509_get0_notBefore(x), from, sizeof(from));
		asn1_time_iso(X509_get0_notAfter(x), to, sizeof(to));
		X509_NAME_oneline(X509_get_subject_name(x), subj, sizeof(subj));
		X509_NAME_oneline(X509_get_issuer_name(x), iss, sizeof(iss));
		bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
		serial = bn ? BN_bn2dec(bn) : NULL;
		BN_free(bn);
		X509_free(x);
		j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "nokkel",
			      a->cert_pem, "validFrom", from, "validTo", to,
			      "serial", serial ? serial : "", "subjectDN", subj,
			      "issuerDN", iss);
		OPENSSL_free(serial);
		return reply_json(c, 200, j);
	}
	return reply_err(c, 404, "NOT_FOUND", "no such resource");
}

static ssize_t
file_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	FILE *f = cls;
	size_t n;

	if (fseeko(f, (off_t)pos, SEEK_SET) < 0)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	n = fread(buf, 1, max, f);
	if (n == 0)
		return ferror(f) ? MHD_CONTENT_READER_END_WITH_ERROR
				 : MHD_CONTENT_READER_END_OF_STREAM;
	return (ssize_t)n;
}

static void
file_free(void *cls)
{
	fclose(cls);
}

static enum MHD_Result
handle_doklager(struct MHD_Connection *c, const char *id)
{
	char path[PATH_MAX], owner[FIKS_UUID_LEN + 2] = "";
	const struct account *a;
	const char *iid;
	struct MHD_Response *r;
	struct stat st;
	enum MHD_Result rc;
	unsigned status;
	FILE *f;

	status = check_auth(c, &iid);
	if (status)
		return reply_err(c, status, "UNAUTHORIZED",
				 "token or integration refused");
	if (!bv_uuid_valid(id))
		return reply_err(c, 404, "NOT_FOUND", "no such document");
	snprintf(path, sizeof(path), "%s/%s.owner", S.doklager, id);
	f = fopen(path, "r");
	if (!f)
		return reply_err(c, 404, "NOT_FOUND", "no such document");
	if (!fgets(owner, sizeof(owner), f))
		owner[0] = '\0';
	fclose(f);
	a = account_find(owner);
	if (!a || strcmp(a->integration_id, iid) != 0)
		return reply_err(c, 404, "NOT_FOUND", "no such document");
	snprintf(path, sizeof(path), "%s/%s", S.doklager, id);
	f = fopen(path, "rb");
	if (!f || fstat(fileno(f), &st) < 0) {
		if (f)
			fclose(f);
		return reply_err(c, 404, "NOT_FOUND", "no such document");
	}
	r = MHD_create_response_from_callback((uint64_t)st.st_size, 65536,
					      file_reader, f, file_free);
	if (!r) {
		fclose(f);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", "application/octet-stream");
	rc = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return rc;
}

static void
req_done(void *cls, struct MHD_Connection *c, void **con_cls,
	 enum MHD_RequestTerminationCode toe)
{
	struct req *q = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (q) {
		S.buffered -= q->len;
		if (q->buf) {
			bv_wipe(q->buf, q->len);
			free(q->buf);
		}
		free(q);
	}
	*con_cls = NULL;
}

/* ------------------------------------------------------------------ */
/* Fiks Varsling                                                        */
/* ------------------------------------------------------------------ */

#define VARSLING "/varsling/api/v1/sms/"

/* Characters of UTF-8 text; -1 when it is not UTF-8. */
static long
utf8_chars(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	long n = 0;

	while (*p) {
		int k = *p < 0x80	      ? 0
			: (*p & 0xe0) == 0xc0 ? 1
			: (*p & 0xf0) == 0xe0 ? 2
			: (*p & 0xf8) == 0xf0 ? 3
					      : -1;

		if (k < 0)
			return -1;
		for (p++; k > 0; k--, p++)
			if ((*p & 0xc0) != 0x80)
				return -1;
		n++;
	}
	return n;
}

static int
all_digits(const char *s, size_t min, size_t max)
{
	size_t n = strlen(s), i;

	if (n < min || n > max)
		return 0;
	for (i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

/* POST /varsling/api/v1/sms/{kontoId}/sms: SmsMeldingRequest{tekst
 * (required, ≤1600 characters), fnr (^[0-9]{11}$) | telefonnummer} →
 * {id}. The konto must be one of the calling integration's accounts. */
static enum MHD_Result
handle_sms(struct MHD_Connection *c, const char *rest, struct req *q)
{
	char konto[FIKS_UUID_LEN + 1], id[FIKS_UUID_LEN + 1];
	const struct account *a;
	const char *iid, *tekst, *tlf, *fnr;
	json_t *in, *rec;
	long chars;
	size_t n = strcspn(rest, "/");
	unsigned st;

	if (n != FIKS_UUID_LEN || strcmp(rest + n, "/sms") != 0)
		return reply_err(c, 404, "NOT_FOUND", "no such endpoint");
	memcpy(konto, rest, n);
	konto[n] = '\0';
	accounts_refresh();
	st = check_auth(c, &iid);
	if (st)
		return reply_err(c, st, "UNAUTHORIZED", "bad credentials");
	a = account_find(konto);
	if (!a || strcmp(a->integration_id, iid) != 0)
		return reply_err(c, 403, "FORBIDDEN", "not your konto");
	if (S.sms_fail_left > 0) {
		S.sms_fail_left--;
		return reply_err(c, S.sms_fail_status, "INJECTED",
				 "failing on request (/varsling/dev/fail)");
	}
	in = json_loadb((const char *)q->buf, q->len, JSON_REJECT_DUPLICATES,
			NULL);
	tekst = json_string_value(json_object_get(in, "tekst"));
	tlf = json_string_value(json_object_get(in, "telefonnummer"));
	fnr = json_string_value(json_object_get(in, "fnr"));
	chars = tekst ? utf8_chars(tekst) : -1;
	if (!json_is_object(in) || chars < 1 || chars > 1600 ||
	    (!tlf == !fnr) || (fnr && !all_digits(fnr, 11, 11)) ||
	    (tlf && !all_digits(tlf + (tlf[0] == '+'), 8, 15))) {
		json_decref(in);
		return reply_err(c, 400, "BAD_REQUEST",
				 "tekst 1-1600 characters and one of fnr "
				 "(11 digits) or telefonnummer");
	}
	bv_uuid_generate(id);
	rec = json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:I}", "id", id, "konto",
			konto, "tekst", tekst, "telefonnummer", tlf, "fnr", fnr,
			"received", (json_int_t)bv_now_ms());
	json_decref(in);
	if (!rec)
		return reply_err(c, 500, "INTERNAL", "out of memory");
	if (S.sms_log) {
		FILE *f = fopen(S.sms_log, "a");

		if (f) {
			json_dumpf(rec, f, JSON_COMPACT);
			fputc('\n', f);
			fclose(f);
		}
	}
	if (json_array_size(S.sms) >= SMS_KEPT_MAX)
		json_array_remove(S.sms, 0);
	json_array_append_new(S.sms, rec);
	logf_(BV_LOG_INFO, "sms %s for konto %s", id, konto);
	return reply_json(c, 200, json_pack("{s:s}", "id", id));
}

/* GET /varsling/api/v1/sms/{kontoId}/sms/{smsId} → {id, status}. */
static enum MHD_Result
handle_sms_status(struct MHD_Connection *c, const char *rest)
{
	const char *iid, *sid = strrchr(rest, '/');
	unsigned st = check_auth(c, &iid);
	json_t *rec;
	size_t i;

	if (st)
		return reply_err(c, st, "UNAUTHORIZED", "bad credentials");
	json_array_foreach(S.sms, i, rec)
	{
		if (sid &&
		    strcmp(json_string_value(json_object_get(rec, "id")),
			   sid + 1) == 0 &&
		    strncmp(rest,
			    json_string_value(json_object_get(rec, "konto")),
			    FIKS_UUID_LEN) == 0)
			return reply_json(c, 200,
					  json_pack("{s:s, s:s}", "id", sid + 1,
						    "status", "SENDT"));
	}
	return reply_err(c, 404, "NOT_FOUND", "no such sms");
}

/* POST /varsling/dev/fail {"count": n, "status": s}: the next n SMS
 * requests are answered with HTTP status s (tests of retries). */
static enum MHD_Result
handle_sms_fail(struct MHD_Connection *c, struct req *q)
{
	json_t *in = json_loadb((const char *)q->buf, q->len, 0, NULL);
	json_int_t n = json_integer_value(json_object_get(in, "count"));
	json_int_t st = json_integer_value(json_object_get(in, "status"));

	json_decref(in);
	if (n < 0 || n > 1000 || st < 400 || st > 599)
		return reply_err(c, 400, "BAD_REQUEST",
				 "count 0-1000, status 400-599");
	S.sms_fail_left = (int)n;
	S.sms_fail_status = (unsigned)st;
	return reply_json(c, 200, json_pack("{s:b}", "ok", 1));
}

#define AUTHZ	 "/fiks-io/authorization/api/v1/"
#define KATALOG	 "/fiks-io/katalog/api/v1/kontoer/"
#define DOKLAGER "/dokumentlager/nedlasting/"

static enum MHD_Result
dispatch(struct MHD_Connection *c, const char *url, const char *method,
	 struct req *q)
{
	int post = strcmp(method, "POST") == 0;
	int get = strcmp(method, "GET") == 0;

	if (q->too_big)
		return reply_err(c, 413, "TOO_LARGE", "request body too large");
	if (post && q->buf)
		q->buf[q->len] = '\0';
	if (get && strcmp(url, "/healthz") == 0)
		return reply(c, 200, "application/json", "{\"ok\":true}", 11);
	if (post && strcmp(url, "/fiks-io/api/v1/send") == 0)
		return handle_send(c, q);
	if (post && strncmp(url, VARSLING, strlen(VARSLING)) == 0)
		return handle_sms(c, url + strlen(VARSLING), q);
	if (get && strncmp(url, VARSLING, strlen(VARSLING)) == 0)
		return handle_sms_status(c, url + strlen(VARSLING));
	if (get && strcmp(url, "/varsling/dev/sms") == 0)
		return reply_json(c, 200, json_pack("{s:O}", "sms", S.sms));
	if (post && strcmp(url, "/varsling/dev/fail") == 0)
		return handle_sms_fail(c, q);
	if (post && strcmp(url, "/token") == 0) {
		accounts_refresh();
		return handle_token(c, q);
	}
	if (post && strncmp(url, AUTHZ, strlen(AUTHZ)) == 0) {
		accounts_refresh();
		return handle_authz(c, url + strlen(AUTHZ), q);
	}
	if (get && strncmp(url, KATALOG, strlen(KATALOG)) == 0)
		return handle_katalog(c, url + strlen(KATALOG));
	if (get && strncmp(url, DOKLAGER, strlen(DOKLAGER)) == 0) {
		accounts_refresh();
		return handle_doklager(c, url + strlen(DOKLAGER));
	}
	return reply_err(c, 404, "NOT_FOUND", "no such endpoint");
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url,
	   const char *method, const char *version, const char *upload,
	   size_t *upload_size, void **con_cls)
{
	struct req *q = *con_cls;
	enum MHD_Result rc;

	(void)cls;
	(void)version;
	if (!q) {
		q = calloc(1, sizeof(*q));
		if (!q)
			return MHD_NO;
		q->max = strcmp(url, "/fiks-io/api/v1/send") == 0
				 ? S.max_body
				 : SMALL_BODY_MAX;
		*con_cls = q;
		return MHD_YES;
	}
	if (*upload_size) {
		size_t n = *upload_size;

		*upload_size = 0;
		if (q->too_big || q->len + n > q->max ||
		    S.buffered + n > BUFFERED_MAX) {
			q->too_big = 1;
			return MHD_YES;
		}
		if (q->len + n + 1 > q->cap) {
			size_t cap = q->cap ? q->cap : 65536;
			unsigned char *nb;

			while (cap < q->len + n + 1)
				cap *= 2;
			nb = realloc(q->buf, cap);
			if (!nb)
				return MHD_NO;
			q->buf = nb;
			q->cap = cap;
		}
		memcpy(q->buf + q->len, upload, n);
		q->len += n;
		S.buffered += n;
		return MHD_YES;
	}
	if (!q->buf) {
		q->buf = calloc(1, 1);
		if (!q->buf)
			return MHD_NO;
	}
	rc = dispatch(c, url, method, q);
	/* The request line only: ids, never bodies or headers. */
	logf_(BV_LOG_DEBUG, "%s %.120s", method, url);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Setup                                                                */
/* ------------------------------------------------------------------ */

static int
add_account(const char *path, const char *const *kv)
{
	json_t *root, *arr, *o = json_object();
	char tmp[PATH_MAX];
	size_t i;

	root = json_load_file(path, 0, NULL);
	if (!root)
		root = json_pack("{s:[]}", "accounts");
	arr = json_object_get(root, "accounts");
	if (!o || !json_is_array(arr)) {
		fprintf(stderr, "%s: not an accounts file\n", path);
		return 1;
	}
	for (i = 0; kv[i]; i += 2)
		json_object_set_new(o, kv[i], json_string(kv[i + 1]));
	{
		struct account a;
		int bad = account_from_json(o, &a);

		account_cleanup(&a);
		if (bad) {
			fprintf(stderr, "--add-account needs --konto UUID "
					"--integration-id UUID "
					"--integration-password PW "
					"--client-id ID [--cert PEM] "
					"[--navn NAME]\n");
			return 2;
		}
	}
	json_array_append_new(arr, o);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (json_dump_file(root, tmp, JSON_INDENT(1)) < 0 ||
	    rename(tmp, path) < 0) {
		perror(path);
		return 1;
	}
	json_decref(root);
	return 0;
}

static void
usage(void)
{
	fprintf(stderr,
		"usage: bvfiks-devserver --accounts FILE --port N --amqp-port "
		"M\n"
		"         --amqp-secret-file F --dokumentlager DIR\n"
		"         [--token-ttl S] [--max-body BYTES] [--log-level L]\n"
		"         [--sms-log FILE]\n"
		"       bvfiks-devserver --accounts FILE --add-account --konto "
		"UUID\n"
		"         --integration-id UUID --integration-password PW\n"
		"         --client-id ID [--cert PEM] [--navn NAME]\n"
		"docs/fiks.md \"Local FIKS IO\"; tools/fiksio.sh starts it.\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *kv[16] = {0}, *secret_file = NULL;
	struct MHD_Daemon *d;
	struct sockaddr_in sa;
	pthread_t dlq;
	sigset_t sigs;
	int i, nkv = 0, adding = 0, sig;
	char *sec;

	S.amqp_port = 5672;
	snprintf(S.amqp_host, sizeof(S.amqp_host), "127.0.0.1");
	S.token_ttl = 3600;
	S.max_body = (64u << 20) + (1u << 20);
	for (i = 1; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(o, "--add-account") == 0) {
			adding = 1;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (strcmp(o, "--accounts") == 0)
			S.accounts_path = v;
		else if (strcmp(o, "--port") == 0)
			S.port = atoi(v);
		else if (strcmp(o, "--amqp-port") == 0)
			S.amqp_port = atoi(v);
		else if (strcmp(o, "--amqp-secret-file") == 0)
			secret_file = v;
		else if (strcmp(o, "--dokumentlager") == 0)
			S.doklager = v;
		else if (strcmp(o, "--token-ttl") == 0)
			S.token_ttl = atoll(v);
		else if (strcmp(o, "--max-body") == 0)
			S.max_body = (size_t)strtoull(v, NULL, 10);
		else if (strcmp(o, "--log-level") == 0)
			bv_log_set_level(bv_log_level_from_name(v));
		else if (strcmp(o, "--sms-log") == 0)
			S.sms_log = v;
		else if (nkv < 14 && strncmp(o, "--", 2) == 0) {
			static char keys[7][32];
			char *key = keys[nkv / 2];
			size_t k;

			snprintf(key, sizeof(keys[0]), "%s", o + 2);
			for (k = 0; key[k]; k++)
				if (key[k] == '-')
					key[k] = '_';
			kv[nkv++] = key;
			kv[nkv++] = v;
		} else
			usage();
	}
	if (!S.accounts_path)
		usage();
	if (adding)
		return add_account(S.accounts_path, kv);
	if (nkv || !secret_file || !S.doklager || S.port <= 0 ||
	    S.port > 65535 || S.token_ttl < 1 || S.max_body < 1024)
		usage();
	sec = read_small_file(secret_file, sizeof(S.secret) - 1);
	if (!sec) {
		perror(secret_file);
		return 1;
	}
	sec[strcspn(sec, "\r\n")] = '\0';
	snprintf(S.secret, sizeof(S.secret), "%s", sec);
	free_secret(sec);
	if (accounts_load() < 0)
		return 1;
	S.sms = json_array();
	if (!S.sms)
		return 1;

	/* Signals are taken by sigwait() below, in every thread. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (pub_ready() < 0)
		logf_(BV_LOG_WARN, "broker on %s:%d not reachable yet",
		      S.amqp_host, S.amqp_port);
	if (pthread_create(&dlq, NULL, dlq_thread, NULL) != 0)
		return 1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)S.port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	d = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
		(uint16_t)S.port, NULL, NULL, on_request, NULL,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
		MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_CONNECTION_TIMEOUT,
		30u, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64u << 10),
		MHD_OPTION_NOTIFY_COMPLETED, req_done, NULL, MHD_OPTION_END);
	if (!d) {
		logf_(BV_LOG_ERR, "cannot listen on 127.0.0.1:%d", S.port);
		atomic_store(&S.stop, 1);
		pthread_join(dlq, NULL);
		return 1;
	}
	logf_(BV_LOG_NOTICE, "listening on 127.0.0.1:%d, broker %s:%d", S.port,
	      S.amqp_host, S.amqp_port);
	while (sigwait(&sigs, &sig) != 0)
		;
	logf_(BV_LOG_NOTICE, "stopping on signal %d", sig);
	MHD_stop_daemon(d);
	atomic_store(&S.stop, 1);
	pthread_join(dlq, NULL);
	amqp_drop(&S.pub);
	for (i = 0; i < (int)S.n_accounts; i++)
		account_cleanup(&S.accounts[i]);
	bv_wipe(S.secret, sizeof(S.secret));
	return 0;
}
