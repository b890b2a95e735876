/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * fagapi.c: the fagsystem's HTTP API (docs/fagsystem-api.md): routing,
 * the per-request token check (signature by the tenant's key, audience,
 * expiry, request hash, single-use jti), the calls into 0003's, 0006's and
 * 0007's functions confined to the token's tenant, and JSON answers. Also
 * the one request without credentials that shares this plumbing: redeeming
 * an invite code (POST /v1/invites/redeem, docs/protocol.md "Invites"),
 * limited by failures per client address. It does not speak lws beyond
 * reading headers (server.c writes) and it does not apply roster changes
 * to live connections: the SQL functions NOTIFY, ops.c listens. Tokens,
 * codes, tickets and bodies are never logged, and wiped when freed.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sodium.h>

#include "bv_error.h"
#include "bv_token.h"
#include "bv_util.h"
#include "fagapi.h"
#include "invite.h"
#include "relay.h"
#include "widget.h"

#define AUTH_SCHEME	"Bvchat-Fagsystem "
#define AUTH_SCHEME_LEN (sizeof(AUTH_SCHEME) - 1)
#define AUTH_MAX	(AUTH_SCHEME_LEN + BV_TOKEN_MAX + 8)
#define ACTOR_PREFIX	"fagsystem:"

enum endpoint {
	EP_ACCOUNTS,
	EP_CASES,
	EP_ROSTER,
	EP_ROSTER_REMOVE,
	EP_PROTECT,
	EP_CONVERSATIONS,
	EP_CASE_SHOW,
	EP_INVITES,
	EP_NOTIFY_CONTACT,
	EP_REDEEM, /* no credentials: an invite code */
};

struct fagapi_req {
	struct relay *r;
	struct lws *wsi; /* NULL once the connection is done with us */
	int busy;	 /* a database job is in flight */
	int body_done;
	int ep;
	const char *method; /* "GET" or "POST" */
	char path[96];
	char case_id[37]; /* EP_CASE_SHOW */
	char *auth;	  /* the Authorization header, or NULL */
	uint8_t *body;
	size_t body_len, content_length;
	int too_big;
	int early_code; /* an answer decided before the body was read */
	char addr[64];	/* EP_REDEEM: the client address's key */
	char code[INVITE_CODE_LEN + 1];	    /* EP_INVITES: the new code */
	char ticket[INVITE_TICKET_LEN + 1]; /* EP_REDEEM: handed out */
	struct bv_apitoken tok;
	uint8_t pk[32];
	char actor[sizeof(ACTOR_PREFIX) + BV_APITOKEN_SUB_MAX];
	/* The answer. */
	int answered;
	unsigned status;
	char *reply;
	int close_after;
};

static unsigned n_pending, n_redeem;

static const struct relay_stmt statements[] = {
	{"fa_key", "SELECT token_key FROM tenants WHERE id = $1::uuid", 1},
	/* Ids of expired tokens go, a few at a time, as new ones come. */
	{"fa_jti_gc",
	 "DELETE FROM fagsystem_tokens_used WHERE jti = ANY (ARRAY(SELECT "
	 "jti FROM fagsystem_tokens_used WHERE expires_at < now() - "
	 "interval '10 minutes' ORDER BY expires_at LIMIT 100))",
	 0},
	{"fa_jti",
	 "INSERT INTO fagsystem_tokens_used (jti, tenant_id, expires_at) "
	 "VALUES ($1::bytea, $2::uuid, to_timestamp($3::bigint)) ON CONFLICT "
	 "DO NOTHING RETURNING 1",
	 3},
	/* Local to the job's transaction: nobody else's change is
	 * attributed to the fagsystem. */
	{"fa_actor", "SELECT set_config('bvchat.actor', $1, true)", 1},
	{"fa_account", "SELECT bv_account_create($1::uuid)::text", 1},
	{"fa_notify_contact",
	 "SELECT bv_notify_contact($1::uuid, $2::uuid, $3, $4)", 4},
	{"fa_case", "SELECT bv_case_create($1::uuid, $2)::text", 2},
	{"fa_roster_add",
	 "SELECT bv_roster_add(bv_case_of($1::uuid, $2::uuid), $3::uuid, $4, "
	 "$5)",
	 5},
	{"fa_roster_remove",
	 "SELECT bv_roster_remove(bv_case_of($1::uuid, $2::uuid), $3::uuid)",
	 3},
	{"fa_protect",
	 "SELECT bv_protect(bv_case_of($1::uuid, $2::uuid), $3::uuid, "
	 "$4::uuid)",
	 4},
	{"fa_conversation",
	 "SELECT bv_conversation_create(bv_case_staff(bv_case_of($1::uuid, "
	 "$2::uuid), $3::uuid), $3::uuid, $4, $5::uuid[])::text",
	 5},
	/* The case as JSON, audited as an export in the same transaction
	 * (migrations/0006); NULL when it is not a case of the tenant. */
	{"fa_case_export", "SELECT bv_case_export($1::uuid, $2::uuid, 'json')",
	 2},
	{"fa_invite",
	 "SELECT invite::text, expires FROM bv_invite_create($1::uuid, "
	 "$2::uuid, $3::bytea, $4::int, $5::int)",
	 5},
	{"inv_redeem",
	 "SELECT status, ticket_expires FROM bv_invite_redeem($1::bytea, "
	 "$2::bytea, $3::int)",
	 3},
};

int
fagapi_prepare(struct relay *r)
{
	return relay_prepare(r, statements,
			     sizeof(statements) / sizeof(statements[0]));
}

int
fagapi_match(const char *path)
{
	return path && (!strncmp(path, FAGAPI_PATH_PREFIX,
				 sizeof(FAGAPI_PATH_PREFIX) - 1) ||
			!strncmp(path, INVITES_PATH_PREFIX,
				 sizeof(INVITES_PATH_PREFIX) - 1));
}

/* ---------------------------------------------------------------- answers */

static void
req_free(struct fagapi_req *q)
{
	if (q->auth) {
		bv_wipe(q->auth, strlen(q->auth));
		bv_free(q->auth);
	}
	/* A body or an answer may hold a code or a ticket. */
	if (q->body)
		bv_wipe(q->body, q->body_len);
	bv_free(q->body);
	if (q->reply)
		bv_wipe(q->reply, strlen(q->reply));
	bv_free(q->reply);
	bv_wipe(&q->tok, sizeof(q->tok));
	bv_wipe(q->code, sizeof(q->code));
	bv_wipe(q->ticket, sizeof(q->ticket));
	if (q->ep == EP_REDEEM)
		n_redeem--;
	bv_free(q);
	n_pending--;
}

static char *
json_text(json_t *j)
{
	char *s = NULL;
	size_t n = j ? json_dumpb(j, NULL, 0, JSON_COMPACT) : 0;

	if (n) {
		s = bv_malloc(n + 2);
		if (s) {
			json_dumpb(j, s, n, JSON_COMPACT);
			s[n] = '\n';
			s[n + 1] = '\0';
		}
	}
	json_decref(j);
	return s;
}

static unsigned
status_of(int code)
{
	switch (code) {
	case BV_EJSON:
	case BV_EFIELD:
	case BV_EINVAL:
	case BV_ETOOMANY:
		return 400;
	case BV_EAUTH:
		return 401;
	case BV_EORIGIN:
		return 403;
	case BV_EOP:
	case BV_EINVITE:
		return 404;
	case BV_ENOACCOUNT:
		return 404;
	case BV_EALREADY:
		return 409;
	case BV_EFRAME:
		return 413;
	case BV_ERATE:
		return 429;
	case BV_EUNAVAILABLE:
	case BV_ESHUTDOWN:
	case BV_EBUSY:
		return 503;
	default:
		return 500;
	}
}

/* The API's own words where the protocol table's would mislead. */
static const char *
message_of(int code)
{
	switch (code) {
	case BV_EJSON:
		return "body is not a JSON object";
	case BV_EAUTH:
		return "authentication failed";
	case BV_EOP:
		return "no such endpoint";
	case BV_ENOACCOUNT:
		return "not found or not allowed";
	case BV_EALREADY:
		return "already so";
	case BV_EFRAME:
		return "body larger than 16384 bytes";
	case BV_ETOOMANY:
		return "too many members";
	default:
		return bv_strerror(code);
	}
}

/* Sets the answer and asks lws for a chance to write it. */
static void
answer(struct fagapi_req *q, unsigned status, char *body)
{
	if (q->answered) {
		bv_free(body);
		return;
	}
	q->answered = 1;
	q->status = body ? status : 500;
	q->reply = body ? body
			: bv_strdup("{\"error\": {\"code\": \"BV_ENOMEM\"}}\n");
	if (!q->reply)
		q->close_after = 1;
	bv_log(BV_LOG_INFO, "fagapi: %s %s tenant %s sub %s: %u", q->method,
	       q->path, q->tok.tenant[0] ? q->tok.tenant : "-",
	       q->tok.sub[0] ? q->tok.sub : "-", q->status);
	if (q->wsi)
		lws_callback_on_writable(q->wsi);
}

static void
answer_error(struct fagapi_req *q, int code, const char *field)
{
	json_t *e = json_pack("{s:s, s:i, s:s}", "code", bv_errname(code),
			      "errno", code, "message", message_of(code));

	if (e && field)
		json_object_set_new(e, "field", json_string(field));
	if (code < 0 && -code < 64)
		q->r->m.errors[-code]++;
	answer(q, status_of(code), json_text(json_pack("{s:o}", "error", e)));
}

static void
answer_ok(struct fagapi_req *q, json_t *result)
{
	answer(q, 200, json_text(result ? result : json_object()));
}

/* 429 with the time after which the address may try again. */
static void
answer_rate(struct fagapi_req *q, uint64_t retry_after_ms)
{
	json_t *e =
		json_pack("{s:s, s:i, s:s, s:I}", "code", bv_errname(BV_ERATE),
			  "errno", BV_ERATE, "message", bv_strerror(BV_ERATE),
			  "retry_after_ms", (json_int_t)retry_after_ms);

	q->r->m.errors[-BV_ERATE]++;
	answer(q, 429, json_text(json_pack("{s:o}", "error", e)));
}

int
fagapi_reply_take(struct fagapi_req *q, unsigned *status, char **body,
		  int *close_after)
{
	if (!q || !q->answered || !q->reply)
		return 0;
	*status = q->status;
	*body = q->reply;
	*close_after = q->close_after;
	q->reply = NULL;
	return 1;
}

void
fagapi_detach(struct fagapi_req *q)
{
	if (!q)
		return;
	q->wsi = NULL;
	if (!q->busy)
		req_free(q);
}

/*
 * A database callback's prologue: the job is over; when the connection
 * went away meanwhile, q is freed and 0 returned (stop), else 1.
 */
static int
job_over(struct fagapi_req *q)
{
	q->busy = 0;
	if (!q->wsi) {
		req_free(q);
		return 0;
	}
	return 1;
}

/* What a failed statement means to the caller (docs/fagsystem-api.md). */
static int
sql_code(struct db_job *job, int rc)
{
	const char *st;

	if (rc != BV_EINTERNAL)
		return rc;
	st = db_job_sqlstate(job);
	if (!strcmp(st, "BV030") || !strcmp(st, "23503"))
		return BV_ENOACCOUNT;
	if (!strcmp(st, "BV022") || !strcmp(st, "23505"))
		return BV_EALREADY;
	/* Invalid values: ours, data exceptions, check constraints. */
	if (!strcmp(st, "BV002") || !strncmp(st, "22", 2) ||
	    !strcmp(st, "23514") || !strcmp(st, "23502"))
		return BV_EINVAL;
	bv_log(BV_LOG_ERR, "fagapi: statement failed: SQLSTATE %s", st);
	return BV_EINTERNAL;
}

static int
submit(struct fagapi_req *q, struct db *db, struct db_job *job, db_done_cb cb)
{
	if (db_submit(db, job, cb, q) < 0)
		return BV_EINTERNAL;
	q->busy = 1;
	return 0;
}

/* ------------------------------------------------------------- operations */

static int
field_uuid(json_t *in, const char *name, const char **out)
{
	json_t *v = json_object_get(in, name);

	if (!json_is_string(v) || !bv_uuid_valid(json_string_value(v)))
		return BV_EFIELD;
	*out = json_string_value(v);
	return 0;
}

static int
field_str(json_t *in, const char *name, size_t max, const char **out)
{
	json_t *v = json_object_get(in, name);

	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    json_string_length(v) > max ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return BV_EFIELD;
	*out = json_string_value(v);
	return 0;
}

/* An optional string: absent or null leaves *out NULL; "" is kept (it
 * removes what is stored). */
static int
field_opt_str(json_t *in, const char *name, size_t max, const char **out)
{
	json_t *v = json_object_get(in, name);

	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v) || json_string_length(v) > max ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return BV_EFIELD;
	*out = json_string_value(v);
	return 0;
}

static void
op_done(struct db_job *job, int rc, void *arg)
{
	struct fagapi_req *q = arg;
	PGresult *res;
	const char *v = NULL;
	json_t *shown;

	if (!job_over(q))
		return;
	if (rc < 0) {
		answer_error(q, sql_code(job, rc), NULL);
		return;
	}
	/* The operation is the job's last statement. */
	res = db_job_result(job, db_job_count(job) - 1);
	if (res && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
		v = PQgetvalue(res, 0, 0);
	switch (q->ep) {
	case EP_ACCOUNTS:
		if (!v)
			goto internal;
		answer_ok(q, json_pack("{s:s}", "account", v));
		return;
	case EP_CASES:
		if (!v)
			goto internal;
		answer_ok(q, json_pack("{s:s}", "case", v));
		return;
	case EP_CONVERSATIONS:
		if (!v)
			goto internal;
		answer_ok(q, json_pack("{s:s}", "conversation", v));
		return;
	case EP_INVITES: {
		/* Written by hand: jansson's copy of the code could not be
		 * wiped. The code and the uuid need no escaping. */
		char *out = bv_malloc(160);

		if (!v || PQnfields(res) != 2 || PQgetisnull(res, 0, 1) ||
		    !out) {
			bv_free(out);
			goto internal;
		}
		snprintf(out, 160,
			 "{\"code\":\"%s\",\"expires\":%s,\"invite\":\"%s\"}\n",
			 q->code, PQgetvalue(res, 0, 1), v);
		bv_wipe(q->code, sizeof(q->code));
		answer(q, 200, out);
		return;
	}
	case EP_CASE_SHOW:
		/* No such case and another tenant's: one answer. */
		if (!v) {
			answer_error(q, BV_ENOACCOUNT, NULL);
			return;
		}
		/* Compact, like every other answer. */
		shown = json_loads(v, 0, NULL);
		if (!shown)
			goto internal;
		answer_ok(q, shown);
		return;
	default:
		answer_ok(q, NULL);
		return;
	}
internal:
	answer_error(q, BV_EINTERNAL, NULL);
}

/* "{a,b,c}" of validated UUIDs, a PostgreSQL array literal. */
static char *
uuid_array(json_t *arr)
{
	size_t i, n = json_array_size(arr);
	char *s = bv_malloc(n * (BV_UUID_LEN + 1) + 3), *p;

	if (!s)
		return NULL;
	p = s;
	*p++ = '{';
	for (i = 0; i < n; i++) {
		if (i)
			*p++ = ',';
		memcpy(p, json_string_value(json_array_get(arr, i)),
		       BV_UUID_LEN);
		p += BV_UUID_LEN;
	}
	*p++ = '}';
	*p = '\0';
	return s;
}

/*
 * Checks the body of an operation (in; NULL for the GET, which has none)
 * and builds its job: the actor first, then the call, in one transaction
 * on the write pool. Returns 0, or the error to answer with; *bad names
 * the offending field.
 */
static int
op_build(struct fagapi_req *q, json_t *in, struct db_job **out,
	 const char **bad)
{
	const char *p[5] = {q->tok.tenant, NULL, NULL, NULL, NULL};
	const char *stmt = NULL;
	char *members = NULL;
	char hash_hex[2 + 2 * INVITE_HASH_LEN + 1], ttl[16], max_ttl[16];
	char canon[INVITE_SYMBOLS + 1];
	uint8_t hash[INVITE_HASH_LEN];
	struct db_job *job = NULL;
	json_t *m;
	int n = 1, rc = BV_EFIELD;
	size_t i;

	switch (q->ep) {
	case EP_ACCOUNTS:
		stmt = "fa_account";
		break;
	case EP_CASES:
		stmt = "fa_case";
		*bad = "case_number";
		if (field_str(in, "case_number", 40, &p[1]) < 0)
			goto out;
		n = 2;
		break;
	case EP_ROSTER:
		stmt = "fa_roster_add";
		if (field_uuid(in, *bad = "case", &p[1]) < 0 ||
		    field_uuid(in, *bad = "account", &p[2]) < 0 ||
		    field_str(in, *bad = "role", 32, &p[3]) < 0 ||
		    field_str(in, *bad = "name", 400, &p[4]) < 0)
			goto out;
		n = 5;
		break;
	case EP_NOTIFY_CONTACT:
		stmt = "fa_notify_contact";
		if (field_uuid(in, *bad = "account", &p[1]) < 0 ||
		    field_opt_str(in, *bad = "phone", 16, &p[2]) < 0 ||
		    field_opt_str(in, *bad = "email", 254, &p[3]) < 0)
			goto out;
		n = 4;
		break;
	case EP_ROSTER_REMOVE:
		stmt = "fa_roster_remove";
		if (field_uuid(in, *bad = "case", &p[1]) < 0 ||
		    field_uuid(in, *bad = "account", &p[2]) < 0)
			goto out;
		n = 3;
		break;
	case EP_PROTECT:
		stmt = "fa_protect";
		if (field_uuid(in, *bad = "case", &p[1]) < 0 ||
		    field_uuid(in, *bad = "protected", &p[2]) < 0 ||
		    field_uuid(in, *bad = "from", &p[3]) < 0)
			goto out;
		n = 4;
		break;
	case EP_INVITES: {
		unsigned max = q->r->cfg->invite_max_ttl_s;
		json_int_t t =
			max < INVITE_TTL_DEFAULT ? max : INVITE_TTL_DEFAULT;
		json_t *v;

		stmt = "fa_invite";
		if (field_uuid(in, *bad = "account", &p[1]) < 0)
			goto out;
		*bad = "ttl_s";
		v = json_object_get(in, "ttl_s");
		if (v && !json_is_null(v)) {
			if (!json_is_integer(v) ||
			    json_integer_value(v) < INVITE_TTL_MIN ||
			    json_integer_value(v) > (json_int_t)max)
				goto out;
			t = json_integer_value(v);
		}
		/* The code is made here; only its keyed hash goes on. */
		invite_code_new(q->code);
		if (invite_code_normalize(q->code, canon) < 0) {
			rc = BV_EINTERNAL;
			goto out;
		}
		invite_code_hash(q->r->invite_key, canon, hash);
		memcpy(hash_hex, "\\x", 2);
		sodium_bin2hex(hash_hex + 2, sizeof(hash_hex) - 2, hash,
			       sizeof(hash));
		snprintf(ttl, sizeof(ttl), "%lld", (long long)t);
		snprintf(max_ttl, sizeof(max_ttl), "%u", max);
		p[2] = hash_hex;
		p[3] = ttl;
		p[4] = max_ttl;
		n = 5;
		break;
	}
	case EP_CASE_SHOW:
		/* Validated by route(); the body (there is none) is not read. */
		stmt = "fa_case_export";
		p[1] = q->case_id;
		n = 2;
		break;
	case EP_CONVERSATIONS:
		stmt = "fa_conversation";
		if (field_uuid(in, *bad = "case", &p[1]) < 0 ||
		    field_uuid(in, *bad = "by", &p[2]) < 0 ||
		    field_str(in, *bad = "kind", 16, &p[3]) < 0)
			goto out;
		*bad = "members";
		m = json_object_get(in, "members");
		if (!json_is_array(m) || json_array_size(m) == 0)
			goto out;
		if (json_array_size(m) > FAGAPI_MAX_MEMBERS) {
			rc = BV_ETOOMANY;
			goto out;
		}
		for (i = 0; i < json_array_size(m); i++) {
			json_t *v = json_array_get(m, i);

			if (!json_is_string(v) ||
			    !bv_uuid_valid(json_string_value(v)))
				goto out;
		}
		rc = BV_ENOMEM;
		members = uuid_array(m);
		if (!members)
			goto out;
		p[4] = members;
		n = 5;
		break;
	default:
		rc = BV_EINTERNAL;
		goto out;
	}
	*bad = NULL;
	rc = BV_ENOMEM;
	job = db_job_new(RELAY_READ);
	if (!job)
		goto out;
	{
		const char *actor[1] = {q->actor};

		if (db_job_add(job, "fa_actor", 1, actor, NULL, NULL, 0) < 0 ||
		    db_job_add(job, stmt, n, p, NULL, NULL, 0) < 0)
			goto out;
	}
	*out = job;
	job = NULL;
	rc = 0;
out:
	if (job)
		db_job_free(job);
	bv_free(members);
	bv_wipe(canon, sizeof(canon));
	bv_wipe(hash, sizeof(hash));
	return rc;
}

/* The token is good and now used up: do what the request asks. */
static void
run(struct fagapi_req *q)
{
	struct db_job *job = NULL;
	json_t *in = NULL;
	json_error_t jerr;
	const char *bad = NULL;
	int rc;

	/* A GET has no body: its case is in the path. */
	if (q->ep != EP_CASE_SHOW) {
		in = json_loadb((const char *)q->body, q->body_len,
				JSON_REJECT_DUPLICATES, &jerr);
		if (!json_is_object(in)) {
			rc = BV_EJSON;
			goto fail;
		}
	}
	rc = op_build(q, in, &job, &bad);
	if (rc < 0)
		goto fail;
	rc = submit(q, q->r->dbw, job, op_done);
	job = NULL;
	if (rc < 0)
		goto fail;
	json_decref(in);
	return;
fail:
	if (job)
		db_job_free(job);
	json_decref(in);
	answer_error(q, rc, bad);
}

/* ------------------------------------------------------------ redeeming */

static void
redeem_done(struct db_job *job, int rc, void *arg)
{
	struct fagapi_req *q = arg;
	struct relay *r = q->r;
	PGresult *res;
	char *out;

	if (!job_over(q))
		return;
	if (rc < 0) {
		/* Not the client's failure: its token goes back. */
		invite_limits_refund(r->invite_limits, q->addr);
		answer_error(q, sql_code(job, rc), NULL);
		return;
	}
	res = db_job_result(job, 0);
	if (!res || PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
		answer_error(q, BV_EINTERNAL, NULL);
		return;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "0") != 0) {
		/* Unknown, used, expired: one answer, and a failure. */
		r->m.invite_refused++;
		answer_error(q, BV_EINVITE, NULL);
		return;
	}
	invite_limits_refund(r->invite_limits, q->addr);
	r->m.invite_redeemed++;
	/* By hand, so that no copy of the ticket stays unwiped. */
	out = bv_malloc(128);
	if (!out) {
		answer_error(q, BV_ENOMEM, NULL);
		return;
	}
	snprintf(out, 128, "{\"token\":\"%s\",\"expires\":%s}\n", q->ticket,
		 PQgetvalue(res, 0, 1));
	bv_wipe(q->ticket, sizeof(q->ticket));
	answer(q, 200, out);
}

/*
 * POST /v1/invites/redeem: the whole body is in. Every request takes one
 * of its address's failure tokens first and gives it back only when it
 * redeems a code (or the database failed): a malformed body, a malformed
 * code and a refused code all count. The answer for every refused code is
 * the same BV_EINVITE.
 */
static void
redeem(struct fagapi_req *q)
{
	struct relay *r = q->r;
	char canon[INVITE_SYMBOLS + 1];
	char code_hex[2 + 2 * INVITE_HASH_LEN + 1];
	char ticket_hex[2 + 2 * INVITE_HASH_LEN + 1], ttl[16];
	const char *p[3] = {code_hex, ticket_hex, ttl};
	uint8_t code_hash[INVITE_HASH_LEN], ticket_hash[INVITE_HASH_LEN];
	struct db_job *job = NULL;
	uint64_t retry = 0;
	json_error_t jerr;
	json_t *in = NULL, *v;
	const char *field = NULL;
	int rc;

	rc = invite_limits_take(r->invite_limits, q->addr, bv_mono_ms(),
				&retry);
	if (rc == BV_ERATE) {
		r->m.invite_limited++;
		bv_log(BV_LOG_INFO, "invite: %s has used up its failures",
		       q->addr);
		answer_rate(q, retry);
		return;
	}
	if (rc < 0) {
		answer_error(q, rc, NULL);
		return;
	}
	in = json_loadb((const char *)q->body, q->body_len,
			JSON_REJECT_DUPLICATES, &jerr);
	rc = BV_EJSON;
	if (!json_is_object(in))
		goto fail;
	v = json_object_get(in, "code");
	rc = BV_EFIELD;
	field = "code";
	if (!json_is_string(v))
		goto fail;
	field = NULL;
	rc = invite_code_normalize(json_string_value(v), canon);
	/* jansson's copy of the code. */
	bv_wipe((char *)json_string_value(v), json_string_length(v));
	if (rc < 0) {
		r->m.invite_refused++;
		goto fail;
	}
	invite_code_hash(r->invite_key, canon, code_hash);
	bv_wipe(canon, sizeof(canon));
	rc = invite_ticket_new(q->ticket, ticket_hash);
	if (rc < 0)
		goto fail;
	memcpy(code_hex, "\\x", 2);
	sodium_bin2hex(code_hex + 2, sizeof(code_hex) - 2, code_hash,
		       sizeof(code_hash));
	memcpy(ticket_hex, "\\x", 2);
	sodium_bin2hex(ticket_hex + 2, sizeof(ticket_hex) - 2, ticket_hash,
		       sizeof(ticket_hash));
	snprintf(ttl, sizeof(ttl), "%d", INVITE_TICKET_TTL_S);
	rc = BV_ENOMEM;
	job = db_job_new(RELAY_READ);
	if (!job || db_job_add(job, "inv_redeem", 3, p, NULL, NULL, 0) < 0)
		goto fail;
	rc = submit(q, r->dbw, job, redeem_done);
	job = NULL;
	if (rc < 0)
		goto fail;
	json_decref(in);
	return;
fail:
	if (job)
		db_job_free(job);
	json_decref(in);
	/* Our failures are not the client's. */
	if (rc == BV_ENOMEM || rc == BV_EINTERNAL)
		invite_limits_refund(r->invite_limits, q->addr);
	answer_error(q, rc, field);
}

/*
 * The client's address as failures are counted: the TCP peer, or behind a
 * TLS proxy the header client_ip_header names (X-Forwarded-For: its last
 * entry, the one the nearest proxy added). Something unreadable counts as
 * one address, "?".
 */
static void
client_addr(struct relay *r, struct lws *wsi, char *key, size_t cap)
{
	const char *name = r->cfg->client_ip_header;
	char buf[256], lname[80], *a = buf;
	size_t i;
	int n = -1;

	buf[0] = '\0';
	if (name && *name && !strcasecmp(name, "X-Forwarded-For")) {
		n = lws_hdr_copy(wsi, buf, sizeof(buf),
				 WSI_TOKEN_X_FORWARDED_FOR);
		if (n > 0 && strrchr(buf, ','))
			a = strrchr(buf, ',') + 1;
	} else if (name && *name) {
		for (i = 0; name[i] && i < sizeof(lname) - 2; i++)
			lname[i] = (char)tolower((unsigned char)name[i]);
		lname[i++] = ':';
		lname[i] = '\0';
		n = lws_hdr_custom_copy(wsi, buf, sizeof(buf), lname,
					(int)strlen(lname));
	}
	if (n <= 0) {
		a = buf;
		lws_get_peer_simple(wsi, buf, sizeof(buf));
	}
	a += strspn(a, " \t");
	a[strcspn(a, " \t")] = '\0';
	if (invite_addr_key(a, key, cap) < 0)
		snprintf(key, cap, "?");
}

/* ------------------------------------------------------- authentication */

static void
jti_done(struct db_job *job, int rc, void *arg)
{
	struct fagapi_req *q = arg;
	PGresult *res;

	if (!job_over(q))
		return;
	if (rc < 0) {
		answer_error(q, sql_code(job, rc), NULL);
		return;
	}
	res = db_job_result(job, 1);
	if (!res || PQntuples(res) != 1) {
		bv_log(BV_LOG_INFO, "fagapi: refused: token used before");
		answer_error(q, BV_EAUTH, NULL);
		return;
	}
	run(q);
}

/* Records the jti, before anything else: a token is used up by the first
 * request that gets this far, whatever then becomes of it. */
static void
use_jti(struct fagapi_req *q)
{
	char jti_hex[2 + 2 * BV_JTI_LEN + 1], exp[24];
	const char *p[3] = {jti_hex, q->tok.tenant, exp};
	struct db_job *job;
	size_t i;

	memcpy(jti_hex, "\\x", 2);
	for (i = 0; i < BV_JTI_LEN; i++)
		snprintf(jti_hex + 2 + 2 * i, 3, "%02x", q->tok.jti[i]);
	snprintf(exp, sizeof(exp), "%lld", (long long)q->tok.exp);
	job = db_job_new(RELAY_READ);
	if (!job || db_job_add(job, "fa_jti_gc", 0, NULL, NULL, NULL, 0) < 0 ||
	    db_job_add(job, "fa_jti", 3, p, NULL, NULL, 0) < 0) {
		if (job)
			db_job_free(job);
		answer_error(q, BV_ENOMEM, NULL);
		return;
	}
	if (submit(q, q->r->dbw, job, jti_done) < 0)
		answer_error(q, BV_EINTERNAL, NULL);
}

static void
key_done(struct db_job *job, int rc, void *arg)
{
	struct fagapi_req *q = arg;
	struct bv_apitoken t;
	uint8_t want[32];
	PGresult *res;
	const char *why = NULL;
	int vrc;

	if (!job_over(q))
		return;
	if (rc < 0) {
		answer_error(q, sql_code(job, rc), NULL);
		return;
	}
	res = db_job_result(job, 0);
	if (!res || PQntuples(res) != 1 || PQgetlength(res, 0, 0) != 32) {
		why = "unknown tenant";
		goto refuse;
	}
	memcpy(q->pk, PQgetvalue(res, 0, 0), 32);
	vrc = bv_apitoken_verify(q->auth + AUTH_SCHEME_LEN, q->pk, bv_now_s(),
				 FAGAPI_MAX_TTL_S, &t);
	if (vrc == BV_ENOMEM) {
		answer_error(q, BV_ENOMEM, NULL);
		return;
	}
	if (vrc < 0) {
		why = vrc == BV_ETOKEN_EXPIRED ? "expired"
					       : "bad signature or exp";
		goto refuse;
	}
	if (bv_apitoken_request_hash(q->method, q->path, q->body, q->body_len,
				     want) < 0 ||
	    sodium_memcmp(want, t.req, sizeof(want)) != 0) {
		why = "signed for another request";
		goto refuse;
	}
	q->tok = t;
	snprintf(q->actor, sizeof(q->actor), "%s%s", ACTOR_PREFIX, t.sub);
	use_jti(q);
	return;
refuse:
	bv_log(BV_LOG_INFO, "fagapi: refused: %s", why);
	answer_error(q, BV_EAUTH, NULL);
}

/* The whole request is in: check its credentials. */
static void
authenticate(struct fagapi_req *q)
{
	struct bv_apitoken t;
	struct db_job *job;
	const char *p[1];
	int rc;

	if (!q->auth || strncasecmp(q->auth, AUTH_SCHEME, AUTH_SCHEME_LEN)) {
		bv_log(BV_LOG_INFO, "fagapi: refused: no credentials");
		answer_error(q, BV_EAUTH, NULL);
		return;
	}
	rc = bv_apitoken_peek(q->auth + AUTH_SCHEME_LEN, &t);
	if (rc == BV_ENOMEM) {
		answer_error(q, rc, NULL);
		return;
	}
	if (rc < 0) {
		bv_log(BV_LOG_INFO, "fagapi: refused: malformed token");
		answer_error(q, BV_EAUTH, NULL);
		return;
	}
	p[0] = t.tenant;
	job = db_job_new(RELAY_READ);
	if (!job || db_job_add(job, "fa_key", 1, p, NULL, NULL, 1) < 0) {
		if (job)
			db_job_free(job);
		answer_error(q, BV_ENOMEM, NULL);
		return;
	}
	if (submit(q, q->r->dbr, job, key_done) < 0)
		answer_error(q, BV_EINTERNAL, NULL);
}

/* ---------------------------------------------------------------- routing */

/* Sets q->ep from method and path; 0, or BV_EOP (404). */
static int
route(struct fagapi_req *q, int is_get, int is_post)
{
	static const struct {
		const char *path;
		int ep;
	} posts[] = {
		{FAGAPI_PATH_PREFIX "accounts", EP_ACCOUNTS},
		{FAGAPI_PATH_PREFIX "cases", EP_CASES},
		{FAGAPI_PATH_PREFIX "roster", EP_ROSTER},
		{FAGAPI_PATH_PREFIX "roster/remove", EP_ROSTER_REMOVE},
		{FAGAPI_PATH_PREFIX "protections", EP_PROTECT},
		{FAGAPI_PATH_PREFIX "conversations", EP_CONVERSATIONS},
		{FAGAPI_PATH_PREFIX "notify/contact", EP_NOTIFY_CONTACT},
	};
	const char *show = FAGAPI_PATH_PREFIX "cases/";
	size_t i;

	/* Without the key there are no invites: not even the paths. */
	if (!strcmp(q->path, INVITES_REDEEM_PATH)) {
		q->ep = EP_REDEEM;
		return is_post && q->r->invites ? 0 : BV_EOP;
	}
	if (!strcmp(q->path, FAGAPI_PATH_PREFIX "invites")) {
		q->ep = EP_INVITES;
		return is_post && q->r->invites ? 0 : BV_EOP;
	}
	for (i = 0; i < sizeof(posts) / sizeof(posts[0]); i++)
		if (!strcmp(q->path, posts[i].path)) {
			q->ep = posts[i].ep;
			return is_post ? 0 : BV_EOP;
		}
	if (!strncmp(q->path, show, strlen(show)) &&
	    bv_uuid_valid(q->path + strlen(show))) {
		memcpy(q->case_id, q->path + strlen(show), BV_UUID_LEN + 1);
		q->ep = EP_CASE_SHOW;
		return is_get ? 0 : BV_EOP;
	}
	return BV_EOP;
}

int
fagapi_begin(struct relay *r, struct lws *wsi, const char *path,
	     struct fagapi_req **out)
{
	struct fagapi_req *q;
	char num[24];
	int is_get, is_post, n;

	q = bv_calloc(1, sizeof(*q));
	if (!q)
		return -1;
	n_pending++;
	q->r = r;
	q->wsi = wsi;
	is_get = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0;
	is_post = lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0;
	q->method = is_post ? "POST" : "GET";
	if (strlen(path) >= sizeof(q->path) ||
	    lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS) > 0)
		q->early_code = BV_EOP;
	else
		snprintf(q->path, sizeof(q->path), "%s", path);
	if (!q->early_code)
		q->early_code = route(q, is_get, is_post);
	if (q->ep == EP_REDEEM)
		n_redeem++;
	if (!q->early_code && r->draining)
		q->early_code = BV_ESHUTDOWN;
	if (!q->early_code && q->ep != EP_REDEEM &&
	    n_pending - n_redeem > FAGAPI_MAX_PENDING)
		q->early_code = BV_EBUSY;
	if (!q->early_code && q->ep == EP_REDEEM) {
		char origin[256];

		/* A browser page of another site may not redeem (the Origin
		 * rule of docs/protocol.md). */
		n = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);
		if (n > 0 &&
		    (n >= (int)sizeof(origin) ||
		     lws_hdr_copy(wsi, origin, sizeof(origin),
				  WSI_TOKEN_ORIGIN) != n ||
		     !widget_origin_allowed(r->cfg->widget_origins, origin)))
			q->early_code = BV_EORIGIN;
		else if (n_redeem > INVITE_MAX_PENDING)
			q->early_code = BV_EBUSY;
		client_addr(r, wsi, q->addr, sizeof(q->addr));
	}

	n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
	if (n > 0 && (size_t)n < AUTH_MAX) {
		q->auth = bv_malloc((size_t)n + 1);
		if (!q->auth ||
		    lws_hdr_copy(wsi, q->auth, n + 1,
				 WSI_TOKEN_HTTP_AUTHORIZATION) != n) {
			fagapi_detach(q);
			return -1;
		}
	}

	/* The body: only POST has one; lws reads Content-Length bytes. */
	if (is_post &&
	    lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
		/* Not read by this API: answer, then hang up, since the
		 * rest of the connection is that body. */
		q->early_code = BV_EFIELD;
		q->close_after = 1;
	}
	if (is_post && lws_hdr_copy(wsi, num, sizeof(num),
				    WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0) {
		char *end;
		unsigned long long v = strtoull(num, &end, 10);

		if (*end || end == num || v > FAGAPI_MAX_DISCARD) {
			bv_log(BV_LOG_INFO,
			       "fagapi: body too large to read, hanging up");
			fagapi_detach(q);
			return -1;
		}
		q->content_length = (size_t)v;
		if (v > FAGAPI_MAX_BODY)
			q->too_big = 1;
	}
	*out = q;
	if (q->content_length == 0)
		fagapi_body_done(q);
	return 0;
}

int
fagapi_body(struct fagapi_req *q, const void *in, size_t len)
{
	if (!q || q->body_done)
		return 0;
	if (q->too_big || q->early_code)
		return 0; /* read and dropped */
	if (q->body_len + len > q->content_length ||
	    q->body_len + len > FAGAPI_MAX_BODY)
		return -1; /* lws gave more than Content-Length */
	if (!q->body) {
		q->body = bv_malloc(q->content_length);
		if (!q->body)
			return -1;
	}
	memcpy(q->body + q->body_len, in, len);
	q->body_len += len;
	return 0;
}

void
fagapi_body_done(struct fagapi_req *q)
{
	if (!q || q->body_done)
		return;
	q->body_done = 1;
	if (q->early_code) {
		answer_error(q, q->early_code,
			     q->early_code == BV_EFIELD ? "Transfer-Encoding"
							: NULL);
		return;
	}
	if (q->too_big) {
		answer_error(q, BV_EFRAME, NULL);
		return;
	}
	if (q->ep == EP_REDEEM)
		redeem(q);
	else
		authenticate(q);
}
