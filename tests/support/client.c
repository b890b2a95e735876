/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * client.c: bvchat.v1 from the client's side, written from docs/protocol.md:
 * the challenge, requests matched to responses by id while pushes (deliver
 * requests, events) queue up, and the operations' payloads and signatures.
 * Keys are random; prekeys are derived from their ids so tests can check
 * what comes back. No Signal sessions: bodies are whatever the test says.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sodium.h>

#include "bvtest.h"
#include "internal.h"

char *
bvt_b64(const void *buf, size_t len)
{
	size_t cap =
		sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
	char *s = malloc(cap);

	if (s)
		sodium_bin2base64(s, cap, buf, len,
				  sodium_base64_VARIANT_ORIGINAL);
	return s;
}

int
bvt_unb64(const char *s, uint8_t *out, size_t cap, size_t *outlen)
{
	size_t n = 0;

	if (sodium_base642bin(out, cap, s, strlen(s), NULL, &n, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0)
		return -1;
	if (outlen)
		*outlen = n;
	return 0;
}

static char *
b64url(const void *buf, size_t len)
{
	size_t cap = sodium_base64_encoded_len(
		len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char *s = malloc(cap);

	if (s)
		sodium_bin2base64(s, cap, buf, len,
				  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return s;
}

const char *
bvt_js(const json_t *j)
{
	static char buf[4096];
	char *s;

	if (!j)
		return "(null)";
	s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!s)
		return "(unprintable)";
	snprintf(buf, sizeof(buf), "%s", s);
	if (strlen(s) >= sizeof(buf))
		memcpy(buf + sizeof(buf) - 5, "...", 4);
	free(s);
	return buf;
}

/* ---- tokens and tenants ---- */

char *
bvt_token_make(const char *tenant_id, const uint8_t sk[64], const char *account,
	       int64_t exp)
{
	uint8_t jti[16], sig[64];
	char *jti_s, *payload, *p64, *s64, *tok = NULL;
	json_t *j;

	randombytes_buf(jti, sizeof(jti));
	jti_s = b64url(jti, sizeof(jti));
	j = json_pack("{s:s, s:o, s:s, s:I}", "tenant", tenant_id, "account",
		      account ? json_string(account) : json_null(), "jti",
		      jti_s, "exp", (json_int_t)exp);
	free(jti_s);
	payload = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!payload)
		return NULL;
	crypto_sign_detached(sig, NULL, (const unsigned char *)payload,
			     strlen(payload), sk);
	p64 = b64url(payload, strlen(payload));
	s64 = b64url(sig, sizeof(sig));
	if (p64 && s64) {
		size_t n = strlen(p64) + strlen(s64) + 8;

		tok = malloc(n);
		if (tok)
			snprintf(tok, n, "bvt1.%s.%s", p64, s64);
	}
	free(payload);
	free(p64);
	free(s64);
	return tok;
}

char *
bvt_token(const struct bvt_tenant *t, const char *account)
{
	return bvt_token_make(t->id, t->sk, account,
			      (int64_t)time(NULL) + 3600);
}

char *
bvt_apitoken_make(const char *tenant_id, const uint8_t sk[64], const char *sub,
		  int64_t exp, const char *method, const char *path,
		  const void *body, size_t len)
{
	static const char domain[] = "bvchat.v1 fagsystem\n";
	crypto_hash_sha256_state st;
	uint8_t jti[16], sig[64], h[32];
	char req[65], *jti_s, *payload, *msg, *p64, *s64, *tok = NULL;
	size_t plen, i;
	json_t *j;

	if (sodium_init() < 0)
		return NULL;
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const uint8_t *)method, strlen(method));
	crypto_hash_sha256_update(&st, (const uint8_t *)"\n", 1);
	crypto_hash_sha256_update(&st, (const uint8_t *)path, strlen(path));
	crypto_hash_sha256_update(&st, (const uint8_t *)"\n", 1);
	if (len)
		crypto_hash_sha256_update(&st, body, len);
	crypto_hash_sha256_final(&st, h);
	for (i = 0; i < 32; i++)
		snprintf(req + 2 * i, 3, "%02x", h[i]);
	randombytes_buf(jti, sizeof(jti));
	jti_s = b64url(jti, sizeof(jti));
	j = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "aud",
		      "bvchat-fagsystem", "tenant", tenant_id, "sub", sub,
		      "jti", jti_s, "exp", (json_int_t)exp, "req", req);
	free(jti_s);
	payload = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!payload)
		return NULL;
	plen = strlen(payload);
	msg = malloc(sizeof(domain) - 1 + plen);
	if (!msg) {
		free(payload);
		return NULL;
	}
	memcpy(msg, domain, sizeof(domain) - 1);
	memcpy(msg + sizeof(domain) - 1, payload, plen);
	crypto_sign_detached(sig, NULL, (const unsigned char *)msg,
			     sizeof(domain) - 1 + plen, sk);
	free(msg);
	p64 = b64url(payload, plen);
	s64 = b64url(sig, sizeof(sig));
	if (p64 && s64) {
		size_t n = strlen(p64) + strlen(s64) + 8;

		tok = malloc(n);
		if (tok)
			snprintf(tok, n, "bvf1.%s.%s", p64, s64);
	}
	free(payload);
	free(p64);
	free(s64);
	return tok;
}

static void
uuid4(char out[37])
{
	uint8_t b[16];
	int i, o = 0;

	randombytes_buf(b, sizeof(b));
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	for (i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		o += snprintf(out + o, 3, "%02x", b[i]);
	}
	out[36] = '\0';
}

/* ---- the open test case (bvt_open_case) ---- */

int bvt_open_case;

static struct open_case {
	char tenant[37];
	char db[512];
	char conversation[37];
} open_cases[64];
static size_t n_open_cases;

static const struct open_case *
open_case_of(const char *tenant)
{
	size_t i;

	for (i = 0; i < n_open_cases; i++)
		if (!strcmp(open_cases[i].tenant, tenant))
			return &open_cases[i];
	return NULL;
}

/* The tenant's case TEST with one conversation (no citizens) whose staff
 * side every account enrolled through this harness joins. */
static int
open_case_create(const char *conninfo, const char *tenant)
{
	struct open_case *oc;
	char kase[37], staff[37];
	const char *v[4];

	if (n_open_cases == sizeof(open_cases) / sizeof(open_cases[0]))
		return -1;
	oc = &open_cases[n_open_cases];
	snprintf(oc->tenant, sizeof(oc->tenant), "%s", tenant);
	snprintf(oc->db, sizeof(oc->db), "%s", conninfo);
	uuid4(kase);
	uuid4(staff);
	uuid4(oc->conversation);
	v[0] = tenant;
	v[1] = staff;
	v[2] = kase;
	v[3] = oc->conversation;
	if (bvt_sql_int(conninfo,
			"WITH a AS (INSERT INTO accounts (id, tenant_id) VALUES"
			" ($2::uuid, $1::uuid) RETURNING id),"
			" k AS (INSERT INTO cases (id, tenant_id, case_number)"
			" VALUES ($3::uuid, $1::uuid, 'TEST') RETURNING id),"
			" r AS (INSERT INTO case_roster (case_id, account_id,"
			" role, display_name) SELECT k.id, a.id, 'caseworker',"
			" 'Test' FROM k, a RETURNING 1),"
			" c AS (INSERT INTO conversations (id, case_id, kind,"
			" created_by) SELECT $4::uuid, k.id, 'citizens', a.id"
			" FROM k, a RETURNING 1)"
			" SELECT (SELECT count(*) FROM r) + (SELECT count(*)"
			" FROM c)",
			4, v) != 2)
		return -1;
	n_open_cases++;
	return 0;
}

/* After an enrollment: the account is on the case team of TEST. */
static void
open_case_join(struct bvt_conn *c, const struct bvt_dev *d)
{
	const struct open_case *oc = open_case_of(d->tenant);
	const char *v[2];

	if (!oc)
		return;
	snprintf(c->conversation, sizeof(c->conversation), "%s",
		 oc->conversation);
	v[0] = d->account;
	v[1] = oc->conversation;
	if (bvt_sql_int(
		    oc->db,
		    "WITH i AS (INSERT INTO case_roster (case_id, "
		    "account_id, role, display_name) SELECT case_id, "
		    "$1::uuid, 'caseworker', 'Test' FROM conversations "
		    "WHERE id = $2::uuid ON CONFLICT DO NOTHING RETURNING 1)"
		    " SELECT 0",
		    2, v) != 0)
		fprintf(stderr, "bvtest: cannot put %s on the test case\n",
			d->account);
}

/* A send without "conversation" goes to the open test case's. */
static void
open_case_fill(const struct bvt_conn *c, json_t *req)
{
	const char *op = json_string_value(json_object_get(req, "op"));

	if (!bvt_open_case || !op || strcmp(op, "send") ||
	    json_object_get(req, "conversation"))
		return;
	/* Before authentication: one that exists nowhere. */
	json_object_set_new(req, "conversation",
			    json_string(c->conversation[0]
						? c->conversation
						: "00000000-0000-4000-8000-"
						  "000000000000"));
	if (!json_object_get(req, "partial"))
		json_object_set_new(req, "partial", json_true());
}

int
bvt_tenant_create(const char *conninfo, const char *name, struct bvt_tenant *t)
{
	char hex[65];
	const char *params[3];
	int i;

	if (sodium_init() < 0)
		return -1;
	uuid4(t->id);
	crypto_sign_keypair(t->pk, t->sk);
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", t->pk[i]);
	params[0] = t->id;
	params[1] = name;
	params[2] = hex;
	return bvt_sql_int(
		       conninfo,
		       "WITH i AS (INSERT INTO tenants (id, name, token_key)"
		       " VALUES ($1, $2, decode($3, 'hex')) RETURNING 1)"
		       " SELECT count(*) FROM i",
		       3, params) == 1 &&
			       (!bvt_open_case ||
				open_case_create(conninfo, t->id) == 0)
		       ? 0
		       : -1;
}

/* ---- devices ---- */

void
bvt_dev_keygen(struct bvt_dev *d)
{
	if (sodium_init() < 0)
		abort();
	crypto_sign_keypair(d->auth_pk, d->auth_sk);
	d->identity[0] = 0x05;
	randombytes_buf(d->identity + 1, 32);
	d->regid = 1 + randombytes_uniform(16380);
}

void
bvt_prekey_for(uint32_t id, uint8_t out[33])
{
	uint8_t in[12] = {'b', 'v', 't', ' ', 'o', 't', 'p', 'k'};

	in[8] = (uint8_t)id;
	in[9] = (uint8_t)(id >> 8);
	in[10] = (uint8_t)(id >> 16);
	in[11] = (uint8_t)(id >> 24);
	out[0] = 0x05;
	crypto_generichash(out + 1, 32, in, sizeof(in), NULL, 0);
}

/* ---- connection ---- */

static int
is_response(const json_t *f)
{
	return json_object_get(f, "ok") || json_object_get(f, "error");
}

static int
is_push(const json_t *f, const char *op)
{
	const char *o = json_string_value(json_object_get(f, "op"));

	if (!o || is_response(f))
		return 0;
	return !op || strcmp(o, op) == 0;
}

/* Reads one frame into c->pending: 1, 0 timeout, -1 closed/error. */
static int
read_frame(struct bvt_conn *c, int64_t deadline)
{
	int64_t left = deadline - bvt_now_ms();
	char *buf = NULL;
	size_t len;
	int op, r;
	json_t *f;
	json_error_t e;

	if (c->closed)
		return -1;
	r = bvt_ws_recv(c->ws, left > 0 ? (int)left : 0, &op, &buf, &len);
	if (r == BVT_WS_TIMEOUT)
		return 0;
	if (r != BVT_WS_MSG) {
		c->closed = 1;
		return -1;
	}
	f = json_loadb(buf, len, 0, &e);
	if (!f || !json_is_object(f) || op != BVT_WS_TEXT) {
		fprintf(stderr,
			"bvtest: relay sent a bad frame (op %d): %.200s\n", op,
			buf);
		json_decref(f);
		free(buf);
		return 1;
	}
	free(buf);
	json_array_append_new(c->pending, f);
	return 1;
}

struct bvt_conn *
bvt_conn_open(int port)
{
	struct bvt_conn *c = calloc(1, sizeof(*c));
	json_t *ch;
	const char *nonce;
	int status;

	if (!c)
		return NULL;
	c->pending = json_array();
	c->next_id = 1;
	c->ws = bvt_ws_connect(port, "/v1", "bvchat.v1", bvt_ms(BVT_TIMEOUT),
			       &status);
	if (!c->ws) {
		fprintf(stderr,
			"bvtest: websocket to port %d failed (HTTP %d)\n", port,
			status);
		bvt_conn_free(c);
		return NULL;
	}
	ch = bvt_conn_next(c, "challenge", bvt_ms(BVT_TIMEOUT));
	nonce = json_string_value(json_object_get(ch, "nonce"));
	if (!nonce) {
		fprintf(stderr, "bvtest: no challenge: %s\n", bvt_js(ch));
		json_decref(ch);
		bvt_conn_free(c);
		return NULL;
	}
	snprintf(c->nonce, sizeof(c->nonce), "%s", nonce);
	c->challenge = ch;
	return c;
}

void
bvt_conn_free(struct bvt_conn *c)
{
	if (!c)
		return;
	if (c->ws && !c->closed && bvt_ws_close(c->ws, 1000) == 0) {
		/* A graceful close: read until the relay's close frame (or
		 * EOF), so frames we sent last are not lost to the RST that
		 * closing with unread input would cause. */
		int64_t deadline = bvt_now_ms() + bvt_ms(2000);
		char *buf;
		size_t len;
		int op, r;

		while ((r = bvt_ws_recv(c->ws, (int)(deadline - bvt_now_ms()),
					&op, &buf, &len)) == BVT_WS_MSG &&
		       bvt_now_ms() < deadline)
			free(buf);
		if (r == BVT_WS_MSG)
			free(buf);
	}
	bvt_ws_free(c->ws);
	json_decref(c->challenge);
	json_decref(c->pending);
	free(c);
}

int
bvt_conn_send_raw(struct bvt_conn *c, const char *buf, size_t len)
{
	return bvt_ws_send(c->ws, BVT_WS_TEXT, buf, len);
}

int
bvt_conn_send_json(struct bvt_conn *c, const json_t *frame)
{
	char *s = json_dumps(frame, JSON_COMPACT);
	int rc;

	if (!s)
		return -1;
	rc = bvt_conn_send_raw(c, s, strlen(s));
	free(s);
	return rc;
}

int64_t
bvt_conn_submit(struct bvt_conn *c, json_t *req)
{
	int64_t id = c->next_id++;
	int rc;

	if (!req)
		return -1;
	open_case_fill(c, req);
	json_object_set_new(req, "id", json_integer(id));
	rc = bvt_conn_send_json(c, req);
	json_decref(req);
	return rc < 0 ? -1 : id;
}

int
bvt_conn_submit_batch(struct bvt_conn *c, json_t **reqs, size_t n, int64_t *ids)
{
	char **msgs = calloc(n ? n : 1, sizeof(char *));
	size_t *lens = calloc(n ? n : 1, sizeof(size_t)), i;
	int rc = -1;

	if (!msgs || !lens)
		goto out;
	for (i = 0; i < n; i++) {
		ids[i] = c->next_id++;
		open_case_fill(c, reqs[i]);
		json_object_set_new(reqs[i], "id", json_integer(ids[i]));
		msgs[i] = json_dumps(reqs[i], JSON_COMPACT);
		if (!msgs[i])
			goto out;
		lens[i] = strlen(msgs[i]);
	}
	rc = bvt_ws_send_batch(c->ws, (const char *const *)msgs, lens, n);
out:
	for (i = 0; i < n; i++) {
		json_decref(reqs[i]);
		if (msgs)
			free(msgs[i]);
	}
	free(msgs);
	free(lens);
	return rc;
}

static int
id_matches(const json_t *f, int64_t id)
{
	json_t *v = json_object_get(f, "id");

	if (id < 0)
		return !v || json_is_null(v);
	return json_is_integer(v) && json_integer_value(v) == id;
}

json_t *
bvt_conn_wait(struct bvt_conn *c, int64_t id, int timeout_ms)
{
	int64_t deadline = bvt_now_ms() + timeout_ms;
	size_t i = 0;

	for (;;) {
		for (; i < json_array_size(c->pending); i++) {
			json_t *f = json_array_get(c->pending, i);

			if (is_response(f) && id_matches(f, id)) {
				json_incref(f);
				json_array_remove(c->pending, i);
				return f;
			}
		}
		if (read_frame(c, deadline) <= 0) {
			fprintf(stderr, "bvtest: no response to id %lld (%s)\n",
				(long long)id,
				c->closed ? "connection closed" : "timeout");
			return NULL;
		}
	}
}

json_t *
bvt_request(struct bvt_conn *c, json_t *req)
{
	int64_t id = bvt_conn_submit(c, req);

	if (id < 0)
		return NULL;
	return bvt_conn_wait(c, id, bvt_ms(BVT_TIMEOUT));
}

json_t *
bvt_conn_next(struct bvt_conn *c, const char *op, int timeout_ms)
{
	int64_t deadline = bvt_now_ms() + timeout_ms;
	size_t i = 0;

	for (;;) {
		for (; i < json_array_size(c->pending); i++) {
			json_t *f = json_array_get(c->pending, i);

			if (is_push(f, op)) {
				json_incref(f);
				json_array_remove(c->pending, i);
				return f;
			}
		}
		if (read_frame(c, deadline) <= 0)
			return NULL;
	}
}

json_t *
bvt_next_deliver(struct bvt_conn *c, int timeout_ms)
{
	return bvt_conn_next(c, "deliver", timeout_ms);
}

int
bvt_ack(struct bvt_conn *c, const json_t *deliver)
{
	json_t *a = json_pack("{s:O, s:{}}", "id",
			      json_object_get(deliver, "id"), "ok");
	int rc = bvt_conn_send_json(c, a);

	json_decref(a);
	return rc;
}

int
bvt_conn_wait_closed(struct bvt_conn *c, int timeout_ms)
{
	int64_t deadline = bvt_now_ms() + timeout_ms;

	while (!c->closed) {
		if (read_frame(c, deadline) == 0)
			return -2;
	}
	return bvt_ws_close_code(c->ws);
}

const char *
bvt_err_code(const json_t *resp)
{
	return json_string_value(
		json_object_get(json_object_get(resp, "error"), "code"));
}

json_t *
bvt_ok(const json_t *resp)
{
	return json_object_get(resp, "ok");
}

json_t *
bvt_err(const json_t *resp)
{
	return json_object_get(resp, "error");
}

/* ---- operations ---- */

static json_t *
b64j(const void *buf, size_t len)
{
	char *s = bvt_b64(buf, len);
	json_t *j = json_string(s);

	free(s);
	return j;
}

json_t *
bvt_enroll(struct bvt_conn *c, struct bvt_dev *d, const char *token,
	   uint32_t replaces)
{
	size_t n = strlen(c->nonce) + strlen(token) + 32;
	char *msg = malloc(n);
	uint8_t sig[64];
	json_t *req, *resp;

	if (!msg)
		return NULL;
	snprintf(msg, n, "bvchat.v1 enroll\n%s\n%s", c->nonce, token);
	crypto_sign_detached(sig, NULL, (unsigned char *)msg, strlen(msg),
			     d->auth_sk);
	free(msg);
	req = json_pack("{s:s, s:s, s:i, s:o, s:o, s:o}", "op", "enroll",
			"token", token, "registration_id", (int)d->regid,
			"identity_key", b64j(d->identity, 33), "auth_key",
			b64j(d->auth_pk, 32), "signature", b64j(sig, 64));
	if (replaces)
		json_object_set_new(req, "replaces", json_integer(replaces));
	resp = bvt_request(c, req);
	if (bvt_ok(resp)) {
		json_t *ok = bvt_ok(resp);
		const char *a =
			json_string_value(json_object_get(ok, "account"));
		const char *t =
			json_string_value(json_object_get(ok, "tenant"));

		snprintf(d->account, sizeof(d->account), "%s", a ? a : "");
		snprintf(d->tenant, sizeof(d->tenant), "%s", t ? t : "");
		d->device = (uint32_t)json_integer_value(
			json_object_get(ok, "device"));
		open_case_join(c, d);
	}
	return resp;
}

char *
bvt_auth_signature(const struct bvt_dev *d, const char *nonce)
{
	char msg[512];
	uint8_t sig[64];

	snprintf(msg, sizeof(msg), "bvchat.v1 auth\n%s\n%s\n%u", nonce,
		 d->account, d->device);
	crypto_sign_detached(sig, NULL, (unsigned char *)msg, strlen(msg),
			     d->auth_sk);
	return bvt_b64(sig, sizeof(sig));
}

json_t *
bvt_auth(struct bvt_conn *c, const struct bvt_dev *d)
{
	char *sig = bvt_auth_signature(d, c->nonce);
	json_t *req = json_pack("{s:s, s:s, s:i, s:s}", "op", "auth", "account",
				d->account, "device", (int)d->device,
				"signature", sig);
	const struct open_case *oc = open_case_of(d->tenant);

	free(sig);
	if (oc)
		snprintf(c->conversation, sizeof(c->conversation), "%s",
			 oc->conversation);
	return bvt_request(c, req);
}

json_t *
bvt_keys_put(struct bvt_conn *c, uint32_t spk_id, uint32_t first,
	     uint32_t count)
{
	json_t *req = json_pack("{s:s}", "op", "keys_put");
	uint32_t i;

	if (spk_id) {
		uint8_t key[33], sig[64];

		key[0] = 0x05;
		randombytes_buf(key + 1, 32);
		randombytes_buf(sig, sizeof(sig));
		json_object_set_new(req, "signed_prekey",
				    json_pack("{s:i, s:o, s:o}", "id",
					      (int)spk_id, "key", b64j(key, 33),
					      "signature", b64j(sig, 64)));
	}
	if (count) {
		json_t *a = json_array();

		for (i = 0; i < count; i++) {
			uint8_t key[33];

			bvt_prekey_for(first + i, key);
			json_array_append_new(a,
					      json_pack("{s:i, s:o}", "id",
							(int)(first + i), "key",
							b64j(key, 33)));
		}
		json_object_set_new(req, "one_time_prekeys", a);
	}
	return bvt_request(c, req);
}

json_t *
bvt_keys_get(struct bvt_conn *c, const char *account, uint32_t device)
{
	json_t *req =
		json_pack("{s:s, s:s}", "op", "keys_get", "account", account);

	if (device)
		json_object_set_new(req, "device", json_integer(device));
	return bvt_request(c, req);
}

json_t *
bvt_envelope(const struct bvt_dev *to, int type, const void *body, size_t len)
{
	return json_pack("{s:s, s:i, s:i, s:i, s:o}", "account", to->account,
			 "device", (int)to->device, "registration_id",
			 (int)to->regid, "type", type, "body", b64j(body, len));
}

json_t *
bvt_send_req(const char *message_id, json_t *envelopes)
{
	return json_pack("{s:s, s:s, s:o}", "op", "send", "message_id",
			 message_id, "envelopes", envelopes);
}

json_t *
bvt_send(struct bvt_conn *c, const char *message_id, json_t *envelopes)
{
	return bvt_request(c, bvt_send_req(message_id, envelopes));
}

json_t *
bvt_envelopes_to(const struct bvt_dev *const *to, size_t n,
		 const char *message_id)
{
	json_t *a = json_array();
	char body[256];
	size_t i;

	for (i = 0; i < n; i++) {
		snprintf(body, sizeof(body), "%s/%s/%u", message_id,
			 to[i]->account, to[i]->device);
		json_array_append_new(
			a, bvt_envelope(to[i], 1, body, strlen(body)));
	}
	return a;
}

/* ---- fixtures ---- */

int
bvt_env_init(struct bvt_env *e, const char *const *relay_args)
{
	int rc;

	memset(e, 0, sizeof(*e));
	if (bvt_pg_create_db(e->db, sizeof(e->db)) < 0)
		return -1;
	rc = bvt_migrate(e->db);
	if (rc != 0) {
		fprintf(stderr, "bvtest: --migrate exited with %d\n", rc);
		return -1;
	}
	if (bvt_tenant_create(e->db, "bvtest kommune", &e->tenant) < 0)
		return -1;
	return bvt_relay_start(&e->relay, e->db, relay_args);
}

void
bvt_env_cleanup(struct bvt_env *e)
{
	bvt_relay_term(&e->relay, bvt_ms(30000));
}

static int
enroll_with(int port, const char *token, struct bvt_dev *d)
{
	struct bvt_conn *c = bvt_conn_open(port);
	json_t *r;
	int rc = -1;

	if (!c)
		return -1;
	bvt_dev_keygen(d);
	r = bvt_enroll(c, d, token, 0);
	if (bvt_ok(r))
		rc = 0;
	else
		fprintf(stderr, "bvtest: enroll failed: %s\n", bvt_js(r));
	json_decref(r);
	bvt_conn_free(c);
	return rc;
}

int
bvt_new_account(int port, const struct bvt_tenant *t, struct bvt_dev *d)
{
	char *tok = bvt_token(t, NULL);
	int rc;

	memset(d, 0, sizeof(*d));
	rc = tok ? enroll_with(port, tok, d) : -1;
	free(tok);
	return rc;
}

int
bvt_new_device(int port, const struct bvt_tenant *t, const char *account,
	       struct bvt_dev *d)
{
	char *tok = bvt_token(t, account);
	int rc;

	memset(d, 0, sizeof(*d));
	rc = tok ? enroll_with(port, tok, d) : -1;
	free(tok);
	return rc;
}

struct bvt_conn *
bvt_online(int port, const struct bvt_dev *d)
{
	struct bvt_conn *c = bvt_conn_open(port);
	json_t *r;

	if (!c)
		return NULL;
	r = bvt_auth(c, d);
	if (!bvt_ok(r)) {
		fprintf(stderr, "bvtest: auth as %s/%u failed: %s\n",
			d->account, d->device, bvt_js(r));
		json_decref(r);
		bvt_conn_free(c);
		return NULL;
	}
	json_decref(r);
	return c;
}
