/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * ops.c: what the relay does with each request of docs/protocol.md: auth,
 * enroll, keys_put/get/count, send, ping; the device cache that send checks
 * recipients against; and the NOTIFY channels that tie relays together.
 * Parsing is bv_request_parse()'s job, pushing envelopes deliver.c's. No
 * body, key or token is ever logged: log lines carry accounts and codes.
 */
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "bv_error.h"
#include "bv_token.h"
#include "blob.h"
#include "bv_util.h"
#include "devset.h"
#include "invite.h"
#include "relay.h"

#define CH_DEVICES   "bv_devices"
#define CH_DELIVER   "bv_deliver"
#define CH_CONNECT   "bv_connect"
#define CH_PREKEYS   "bv_prekeys"
#define DEVCACHE_MAX 100000

static const struct relay_stmt statements[] = {
	{"auth_lookup",
	 "SELECT d.id, d.auth_key, a.tenant_id::text, (SELECT count(*) FROM "
	 "one_time_prekeys o WHERE o.device = d.id)::int, "
	 "nextval('queue_seq') FROM devices d JOIN "
	 "accounts a ON a.id = d.account_id WHERE d.account_id = $1::uuid "
	 "AND d.device_id = $2::int",
	 2},
	{"tenant_key", "SELECT token_key FROM tenants WHERE id = $1::uuid", 1},
	{"enroll",
	 "SELECT status, account::text, device_id, device, "
	 "nextval('queue_seq') "
	 "FROM bv_enroll("
	 "$1::uuid, $2::uuid, $3::bytea, $4::bigint, $5::int, $6::bytea, "
	 "$7::bytea, $8::int, $9::int)",
	 9},
	/* An invite's ticket standing in for a token (0007): the same
	 * columns as "enroll", then the tenant. */
	{"invite_enroll",
	 "SELECT status, account::text, device_id, device, "
	 "nextval('queue_seq'), "
	 "tenant::text FROM "
	 "bv_invite_enroll($1::bytea, $2::int, $3::bytea, $4::bytea, $5::int, "
	 "$6::int)",
	 6},
	{"devices_load",
	 "SELECT a.id::text, a.tenant_id::text, d.device_id, "
	 "d.registration_id, d.id FROM accounts a LEFT JOIN devices d ON "
	 "d.account_id = a.id WHERE a.id = ANY($1::uuid[])",
	 1},
	{"check_send",
	 "SELECT bv_check_send($1::bigint[], $2::int[], $3::int, $4::uuid[], "
	 "$5::int[])",
	 5},
	{"enqueue",
	 "INSERT INTO queue (device, sender_account, sender_device, "
	 "message_id, type, ts, body, conversation) VALUES ($1::bigint, "
	 "$2::uuid, $3::int, $4, $5::smallint, $6::bigint, $7::bytea, "
	 "$8::uuid) RETURNING seq",
	 8},
	/* The accounts that got a message may be notified if no device of
	 * theirs acknowledges it in time (0009, bvchat-notifier). One index
	 * probe per account when the row is already there; accounts sorted,
	 * so two sends never wait on each other's new rows in opposite
	 * order. */
	{"notify_mark",
	 "INSERT INTO notify_pending (account_id, since) SELECT a, "
	 "to_timestamp($2::double precision / 1000) FROM unnest($1::uuid[]) "
	 "AS u(a) ORDER BY a ON CONFLICT DO NOTHING",
	 2},
	{"check_recipients",
	 "SELECT bv_check_recipients($1::uuid, $2::uuid, $3::uuid[])", 3},
	{"out_of_hours",
	 "SELECT bv_out_of_hours_notice($1::uuid, $2::uuid, "
	 "to_timestamp($3::double precision / 1000), $4::bigint)",
	 4},
	/* A citizen's message opens or extends the conversation's
	 * unanswered stretch, a staff reply ends it (0011, staff tasks
	 * raised by bvchat-notifier). After out_of_hours, which may lock
	 * the conversation's row first: one order for every send. */
	{"task_mark", "SELECT bv_task_mark($1::uuid, $2::uuid, $3::bigint)", 3},
	{"set_actor", "SELECT set_config('bvchat.actor', $1, true)", 1},
	{"may_reach", "SELECT bv_may_reach($1::uuid, $2::uuid)", 2},
	{"notify", "SELECT pg_notify($1, $2)", 2},
	{"spk_put",
	 "INSERT INTO signed_prekeys (device, key_id, public_key, signature) "
	 "VALUES ($1::bigint, $2::int, $3::bytea, $4::bytea) ON CONFLICT "
	 "(device) DO UPDATE SET key_id = EXCLUDED.key_id, public_key = "
	 "EXCLUDED.public_key, signature = EXCLUDED.signature",
	 4},
	{"otpk_put",
	 "SELECT bv_put_prekeys($1::bigint, $2::int[], $3::bytea[], $4::int)",
	 4},
	{"otpk_count",
	 "SELECT count(*)::int FROM one_time_prekeys WHERE device = $1::bigint",
	 1},
	{"take_bundles",
	 "SELECT device, device_id, registration_id, identity_key, spk_id, "
	 "spk_key, spk_signature, otpk_id, otpk_key, left_count FROM "
	 "bv_take_bundles(CASE WHEN bv_may_reach($2::uuid, $3::uuid) THEN "
	 "$1::bigint[] ELSE '{}'::bigint[] END)",
	 3},
};

int
relay_prepare(struct relay *r, const struct relay_stmt *st, size_t n)
{
	size_t i;
	int rc = 0;

	for (i = 0; rc == 0 && i < n; i++) {
		rc = db_prepare(r->dbw, st[i].name, st[i].sql, st[i].nparams);
		if (rc == 0)
			rc = db_prepare(r->dbr, st[i].name, st[i].sql,
					st[i].nparams);
	}
	return rc;
}

int
ops_prepare(struct relay *r)
{
	return relay_prepare(r, statements,
			     sizeof(statements) / sizeof(statements[0]));
}

/* ---------------------------------------------------------------- replies */

void
ops_reply_error(struct conn *c, int64_t id, int code, json_t *details)
{
	if (code < 0 && -code < 64)
		c->r->m.errors[-code]++;
	conn_send_str(c, bv_error_frame(id, code, details));
	json_decref(details);
}

void
ops_reply_ok(struct conn *c, int64_t id, json_t *result)
{
	conn_send_json(c, json_pack("{sI so}", "id", (json_int_t)id, "ok",
				    result ? result : json_object()));
}

void
ops_frame_error(struct conn *c, int code)
{
	ops_reply_error(c, -1, code, NULL);
}

static void
send_event(struct conn *c, json_t *ev)
{
	conn_send_json(c, ev);
}

/* A database outcome as the client sees it. */
int
db_rc(struct db_job *job, int rc)
{
	const char *st;

	if (rc != BV_EINTERNAL)
		return rc;
	st = db_job_sqlstate(job);
	if (!strcmp(st, "BV033"))
		return BV_EQUEUE_FULL;
	if (!strcmp(st, "BV036"))
		return BV_EPREKEY_LIMIT;
	if (!strcmp(st, "BV030"))
		return BV_ENOACCOUNT;
	bv_log(BV_LOG_ERR, "database statement failed: SQLSTATE %s", st);
	return BV_EINTERNAL;
}

struct opctx *
opctx_new(struct conn *c, struct bv_request *req)
{
	struct opctx *o = bv_calloc(1, sizeof(*o));

	if (!o)
		return NULL;
	o->c = c;
	o->id = req->id;
	o->req = req;
	conn_ref(c);
	c->requests_in_flight++;
	return o;
}

void
opctx_free(struct opctx *o)
{
	if (!o)
		return;
	o->c->requests_in_flight--;
	conn_unref(o->c);
	bv_request_free(o->req);
	bv_free(o->accounts);
	bv_free(o->dev);
	bv_free(o->check);
	required_free(&o->required);
	bv_wipe(&o->token, sizeof(o->token));
	bv_free(o);
}

/* Ends an operation with an error answer. */
void
opctx_fail(struct opctx *o, int code, json_t *details)
{
	ops_reply_error(o->c, o->id, code, details);
	opctx_free(o);
}

static void
ignore_done(struct db_job *job, int rc, void *arg)
{
	(void)job;
	(void)rc;
	(void)arg;
}

/*
 * Runs one prepared statement as a job: on the write connection, group
 * committed, when txn is 1; on the read connection otherwise. Returns 0
 * once submitted (cb will be called), or BV_ENOMEM (cb will not be).
 */
int
run1(struct relay *r, int txn, const char *stmt, int nparams,
     const char *const *v, const int *len, const int *fmt, db_done_cb cb,
     void *arg)
{
	struct db_job *job = db_job_new(txn);

	if (!job || db_job_add(job, stmt, nparams, v, len, fmt, 0) < 0) {
		db_job_free(job);
		return BV_ENOMEM;
	}
	return db_submit(txn ? r->dbw : r->dbr, job, cb, arg);
}

/*
 * Runs one prepared statement as a transactional job with the audit log's
 * actor set for it (bvchat.actor; its result is result 1) and reset after,
 * for the jobs that share the group commit's transaction.
 */
int
run_as(struct relay *r, const char *actor, const char *stmt, int nparams,
       const char *const *v, const int *len, const int *fmt, db_done_cb cb,
       void *arg)
{
	struct db_job *job = db_job_new(1);
	const char *a[1] = {actor}, *none[1] = {""};

	if (!job || db_job_add(job, "set_actor", 1, a, NULL, NULL, 0) < 0 ||
	    db_job_add(job, stmt, nparams, v, len, fmt, 0) < 0 ||
	    db_job_add(job, "set_actor", 1, none, NULL, NULL, 0) < 0) {
		db_job_free(job);
		return BV_ENOMEM;
	}
	return db_submit(r->dbw, job, cb, arg);
}

/* Sends NOTIFY channel payload through the read connection. */
static void
notify(struct relay *r, const char *channel, const char *payload)
{
	const char *v[2] = {channel, payload};

	run1(r, 0, "notify", 2, v, NULL, NULL, ignore_done, NULL);
}

/* Text of a bytea column, unescaped into exactly want bytes. */
static int
get_bytea(const PGresult *res, int row, int col, uint8_t *out, size_t want)
{
	size_t n = 0;
	unsigned char *b;

	if (PQgetisnull(res, row, col))
		return BV_EINTERNAL;
	b = PQunescapeBytea((const unsigned char *)PQgetvalue(res, row, col),
			    &n);
	if (!b)
		return BV_ENOMEM;
	if (n != want) {
		PQfreemem(b);
		return BV_EINTERNAL;
	}
	memcpy(out, b, n);
	PQfreemem(b);
	return 0;
}

int64_t
get_i64(const PGresult *res, int row, int col)
{
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* ----------------------------------------------------------- device cache */

struct conn *
ops_find_device(struct relay *r, int64_t device)
{
	struct conn *c = NULL;

	HASH_FIND(hh, r->by_device, &device, sizeof(device), c);
	return c;
}

static void
devcache_entry_free(struct devcache_entry *e)
{
	bv_free(e->devs);
	bv_free(e);
}

void
devcache_invalidate(struct relay *r, const char *account)
{
	struct devcache_entry *e = NULL;

	HASH_FIND_STR(r->cache, account, e);
	if (!e)
		return;
	HASH_DEL(r->cache, e);
	r->cache_n--;
	devcache_entry_free(e);
}

void
devcache_clear(struct relay *r)
{
	struct devcache_entry *e, *tmp;

	HASH_ITER(hh, r->cache, e, tmp)
	{
		HASH_DEL(r->cache, e);
		devcache_entry_free(e);
	}
	r->cache_n = 0;
}

static struct devcache_entry *
devcache_get(struct relay *r, const char *account)
{
	struct devcache_entry *e = NULL;

	HASH_FIND_STR(r->cache, account, e);
	return e;
}

static struct devcache_entry *
devcache_put(struct relay *r, const char *account)
{
	struct devcache_entry *e = devcache_get(r, account);

	if (e)
		return e;
	if (r->cache_n >= DEVCACHE_MAX)
		devcache_clear(r);
	e = bv_calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	memcpy(e->account, account, sizeof(e->account));
	HASH_ADD_STR(r->cache, account, e);
	r->cache_n++;
	return e;
}

typedef void (*resolved_cb)(struct opctx *o, int rc);

struct resolve {
	struct opctx *o;
	resolved_cb cb;
	size_t n;
	char (*accounts)[37];
};

static void
resolve_done(struct db_job *job, int rc, void *arg)
{
	struct resolve *rs = arg;
	struct relay *r = rs->o->c->r;
	PGresult *res;
	size_t i;
	int row, n;

	if (rc < 0)
		goto out;
	res = db_job_result(job, 0);
	n = PQntuples(res);
	/* Accounts not in the result do not exist: cache that too. */
	for (i = 0; i < rs->n; i++) {
		struct devcache_entry *e = devcache_put(r, rs->accounts[i]);

		if (!e) {
			rc = BV_ENOMEM;
			goto out;
		}
		e->n = 0;
		e->tenant[0] = '\0';
		bv_free(e->devs);
		e->devs = bv_calloc((size_t)n + 1, sizeof(*e->devs));
		if (!e->devs) {
			devcache_invalidate(r, rs->accounts[i]);
			rc = BV_ENOMEM;
			goto out;
		}
		for (row = 0; row < n; row++) {
			if (strcmp(PQgetvalue(res, row, 0), e->account))
				continue;
			snprintf(e->tenant, sizeof(e->tenant), "%s",
				 PQgetvalue(res, row, 1));
			if (PQgetisnull(res, row, 2))
				continue;
			e->devs[e->n].device_id =
				(uint32_t)get_i64(res, row, 2);
			e->devs[e->n].registration_id =
				(uint32_t)get_i64(res, row, 3);
			e->devs[e->n].id = get_i64(res, row, 4);
			e->n++;
		}
	}
out:
	rs->cb(rs->o, rc);
	bv_free(rs->accounts);
	bv_free(rs);
}

/*
 * Makes sure every account in o->accounts is in the cache, then calls cb
 * (synchronously when all are cached already). cb gets 0 or an error code.
 */
static void
resolve_accounts(struct opctx *o, resolved_cb cb)
{
	struct relay *r = o->c->r;
	struct resolve *rs = NULL;
	char *arr = NULL;
	const char *v[1];
	size_t i, len = 2;

	rs = bv_calloc(1, sizeof(*rs));
	if (!rs)
		goto fail;
	rs->accounts = bv_calloc(o->n_accounts, sizeof(*rs->accounts));
	if (!rs->accounts)
		goto fail;
	for (i = 0; i < o->n_accounts; i++)
		if (!devcache_get(r, o->accounts[i]))
			memcpy(rs->accounts[rs->n++], o->accounts[i], 37);
	if (rs->n == 0) {
		bv_free(rs->accounts);
		bv_free(rs);
		cb(o, 0);
		return;
	}
	arr = bv_malloc(rs->n * 38 + 2);
	if (!arr)
		goto fail;
	arr[0] = '{';
	for (i = 0; i < rs->n; i++) {
		memcpy(arr + len - 1, rs->accounts[i], 36);
		len += 36;
		arr[len - 1] = i + 1 < rs->n ? ',' : '}';
		len++;
	}
	arr[len - 1] = '\0';
	rs->o = o;
	rs->cb = cb;
	v[0] = arr;
	if (run1(r, 0, "devices_load", 1, v, NULL, NULL, resolve_done, rs) < 0)
		goto fail;
	bv_free(arr);
	return;
fail:
	bv_free(arr);
	if (rs)
		bv_free(rs->accounts);
	bv_free(rs);
	cb(o, BV_ENOMEM);
}

/* Adds account to o->accounts unless already there. */
static int
add_account(struct opctx *o, const char *account, size_t cap)
{
	size_t i;

	for (i = 0; i < o->n_accounts; i++)
		if (!strcmp(o->accounts[i], account))
			return 0;
	if (!o->accounts) {
		o->accounts = bv_calloc(cap, sizeof(*o->accounts));
		if (!o->accounts)
			return BV_ENOMEM;
	}
	memcpy(o->accounts[o->n_accounts++], account, 37);
	return 0;
}

/* An account this connection may reach (same tenant, for now). */
static struct devcache_entry *
reachable(struct conn *c, const char *account)
{
	struct devcache_entry *e = devcache_get(c->r, account);

	if (!e || !e->tenant[0] || strcmp(e->tenant, c->tenant))
		return NULL;
	return e;
}

/* ------------------------------------------------------- authentication */

/* Puts authenticated c into the index of connections by account. */
static void
acct_join(struct conn *c)
{
	struct relay *r = c->r;
	struct acct_count *a = NULL;

	HASH_FIND_STR(r->accounts, c->account, a);
	if (!a) {
		a = bv_calloc(1, sizeof(*a));
		if (!a)
			return;
		memcpy(a->account, c->account, 37);
		HASH_ADD_STR(r->accounts, account, a);
	}
	c->acct_next = a->conns;
	a->conns = c;
	a->n++;
}

static void
acct_leave(struct conn *c)
{
	struct relay *r = c->r;
	struct acct_count *a = NULL;
	struct conn **pp;

	HASH_FIND_STR(r->accounts, c->account, a);
	if (!a)
		return;
	for (pp = &a->conns; *pp; pp = &(*pp)->acct_next)
		if (*pp == c) {
			*pp = c->acct_next;
			a->n--;
			break;
		}
	if (a->n == 0) {
		HASH_DEL(r->accounts, a);
		bv_free(a);
	}
}

struct conn *
ops_account_conns(struct relay *r, const char *account)
{
	struct acct_count *a = NULL;

	HASH_FIND_STR(r->accounts, account, a);
	return a ? a->conns : NULL;
}

static unsigned
acct_conns(struct relay *r, const char *account)
{
	struct acct_count *a = NULL;

	HASH_FIND_STR(r->accounts, account, a);
	return a ? a->n : 0;
}

/* Takes c out of the maps of authenticated connections. */
static void
unregister(struct conn *c)
{
	if (!c->authed)
		return;
	HASH_DEL(c->r->by_device, c);
	acct_leave(c);
	c->r->n_authed--;
	c->authed = 0;
}

static void
displace(struct conn *c)
{
	bv_log(BV_LOG_INFO, "device %s/%u displaced by a newer connection",
	       c->account, c->device_id);
	c->r->m.displaced++;
	unregister(c);
	send_event(c, json_pack("{ss}", "op", "displaced"));
	conn_close(c, 4001);
}

static void
send_prekeys_low(struct conn *c, int count)
{
	send_event(c, json_pack("{ss si}", "op", "prekeys_low",
				"one_time_count", count));
}

/*
 * The device proved itself: make the connection its own and start pushing.
 * order: a number from queue_seq taken in the same query as the proof,
 * increasing across every relay of the database, so that of two
 * connections of one device the later one always stays, whichever relay's
 * notification arrives last (gaps in queue.seq are harmless).
 */
static void
auth_complete(struct opctx *o, const char *account, uint32_t device_id,
	      int64_t device, const char *tenant, int otpk_count, int64_t order)
{
	struct conn *c = o->c, *old;
	struct relay *r = c->r;
	char payload[80];

	if (!conn_alive(c))
		return;
	old = ops_find_device(r, device);
	if (old && old->auth_order > order) {
		/* Two proofs of one device crossed here: this one is older. */
		send_event(c, json_pack("{ss}", "op", "displaced"));
		conn_close(c, 4001);
		return;
	}
	if (old)
		displace(old);
	if (acct_conns(r, account) >= r->cfg->max_connections_per_account) {
		ops_reply_error(c, o->id, BV_ECONN_LIMIT, NULL);
		return;
	}
	snprintf(c->account, sizeof(c->account), "%s", account);
	snprintf(c->tenant, sizeof(c->tenant), "%s", tenant);
	c->device_id = device_id;
	c->device = device;
	c->auth_order = order;
	c->authed = 1;
	HASH_ADD(hh, r->by_device, device, sizeof(c->device), c);
	acct_join(c);
	r->n_authed++;
	ratelimit_init(&c->rl, r->cfg->sends_per_minute,
		       r->cfg->sends_per_minute, bv_mono_ms());
	ops_reply_ok(c, o->id,
		     json_pack("{ss si ss}", "account", account, "device",
			       (int)device_id, "tenant", tenant));
	snprintf(payload, sizeof(payload), "%lld %s %lld", (long long)device,
		 r->instance, (long long)order);
	notify(r, CH_CONNECT, payload);
	if ((unsigned)otpk_count < r->cfg->prekeys_low_watermark)
		send_prekeys_low(c, otpk_count);
	bv_log(BV_LOG_INFO, "device %s/%u authenticated", account, device_id);
	deliver_start(c);
}

static void
auth_done(struct db_job *job, int rc, void *arg)
{
	struct opctx *o = arg;
	struct conn *c = o->c;
	PGresult *res;
	uint8_t key[BV_AUTH_KEY_LEN];
	char *msg = NULL;
	char tenant[37];

	c->auth_busy = 0;
	if (rc < 0) {
		opctx_fail(o, db_rc(job, rc), NULL);
		return;
	}
	res = db_job_result(job, 0);
	if (PQntuples(res) != 1 || get_bytea(res, 0, 1, key, sizeof(key)) < 0) {
		opctx_fail(o, BV_EAUTH, NULL);
		return;
	}
	msg = bv_auth_message(c->nonce_b64, o->req->u.auth.account,
			      o->req->u.auth.device);
	if (!msg) {
		opctx_fail(o, BV_ENOMEM, NULL);
		return;
	}
	if (crypto_sign_verify_detached(o->req->u.auth.signature,
					(const unsigned char *)msg, strlen(msg),
					key) != 0) {
		bv_free(msg);
		opctx_fail(o, BV_EAUTH, NULL);
		return;
	}
	bv_free(msg);
	/* A nonce is good for one authentication only. */
	c->nonce_b64[0] = '\0';
	snprintf(tenant, sizeof(tenant), "%s", PQgetvalue(res, 0, 2));
	auth_complete(o, o->req->u.auth.account, o->req->u.auth.device,
		      get_i64(res, 0, 0), tenant, (int)get_i64(res, 0, 3),
		      get_i64(res, 0, 4));
	opctx_free(o);
}

static int
check_unauthed(struct conn *c, int64_t id)
{
	if (c->authed) {
		ops_reply_error(c, id, BV_EALREADY, NULL);
		return -1;
	}
	if (c->auth_busy) {
		ops_reply_error(c, id, BV_EBUSY, NULL);
		return -1;
	}
	if (!c->nonce_b64[0]) {
		/* The nonce was used by a failed attempt's success path. */
		ops_reply_error(c, id, BV_EAUTH, NULL);
		return -1;
	}
	return 0;
}

static void
op_auth(struct conn *c, struct bv_request *req)
{
	struct opctx *o;
	char dev[16];
	const char *v[2];

	if (check_unauthed(c, req->id) < 0) {
		bv_request_free(req);
		return;
	}
	o = opctx_new(c, req);
	if (!o) {
		ops_reply_error(c, req->id, BV_ENOMEM, NULL);
		bv_request_free(req);
		return;
	}
	snprintf(dev, sizeof(dev), "%u", req->u.auth.device);
	v[0] = req->u.auth.account;
	v[1] = dev;
	c->auth_busy = 1;
	if (run1(c->r, 0, "auth_lookup", 2, v, NULL, NULL, auth_done, o) < 0) {
		c->auth_busy = 0;
		opctx_fail(o, BV_ENOMEM, NULL);
	}
}

static void
enroll_stored(struct db_job *job, int rc, void *arg)
{
	struct opctx *o = arg;
	struct conn *c = o->c;
	PGresult *res;
	int status;
	char account[37];

	c->auth_busy = 0;
	if (rc < 0) {
		if (!strcmp(db_job_sqlstate(job), "23505")) {
			/* The auth key belongs to another device already. */
			opctx_fail(o, BV_EFIELD,
				   json_pack("{ss}", "field", "auth_key"));
			return;
		}
		opctx_fail(o, db_rc(job, rc), NULL);
		return;
	}
	res = db_job_result(job, 1); /* after set_actor */
	status = (int)get_i64(res, 0, 0);
	if (status != 0) {
		opctx_fail(o, status, NULL);
		return;
	}
	snprintf(account, sizeof(account), "%s", PQgetvalue(res, 0, 1));
	/* A ticket's tenant comes from its invite. */
	if (PQnfields(res) > 5)
		snprintf(o->token.tenant, sizeof(o->token.tenant), "%s",
			 PQgetvalue(res, 0, 5));
	bv_log(BV_LOG_NOTICE, "device %s/%lld enrolled%s%s", account,
	       (long long)get_i64(res, 0, 2),
	       PQnfields(res) > 5 ? " with an invite" : "",
	       o->req->u.enroll.replaces ? " (replacing the old install)" : "");
	devcache_invalidate(c->r, account);
	c->nonce_b64[0] = '\0';
	auth_complete(o, account, (uint32_t)get_i64(res, 0, 2),
		      get_i64(res, 0, 3), o->token.tenant, 0,
		      get_i64(res, 0, 4));
	opctx_free(o);
}

static void
enroll_have_key(struct db_job *job, int rc, void *arg)
{
	struct opctx *o = arg;
	struct conn *c = o->c;
	struct relay *r = c->r;
	struct bv_request *q = o->req;
	uint8_t pk[32];
	char *msg = NULL;
	char exp[24], regid[16], repl[16], maxdev[16], actor[40];
	const char *v[9];
	int len[9] = {0}, fmt[9] = {0};

	if (rc < 0) {
		c->auth_busy = 0;
		opctx_fail(o, db_rc(job, rc), NULL);
		return;
	}
	if (PQntuples(db_job_result(job, 0)) != 1 ||
	    get_bytea(db_job_result(job, 0), 0, 0, pk, sizeof(pk)) < 0) {
		c->auth_busy = 0;
		opctx_fail(o, BV_ETOKEN, NULL);
		return;
	}
	rc = bv_token_verify(q->u.enroll.token, pk, bv_now_s(),
			     r->cfg->enrollment_token_max_ttl_s, &o->token);
	if (rc < 0) {
		c->auth_busy = 0;
		opctx_fail(o, rc, NULL);
		return;
	}
	msg = bv_enroll_message(c->nonce_b64, q->u.enroll.token);
	if (!msg || crypto_sign_verify_detached(
			    q->u.enroll.signature, (const unsigned char *)msg,
			    strlen(msg), q->u.enroll.auth_key) != 0) {
		bv_free(msg);
		c->auth_busy = 0;
		opctx_fail(o, msg ? BV_EAUTH : BV_ENOMEM, NULL);
		return;
	}
	bv_free(msg);
	/* The audit log names the token that allowed the enrollment. */
	memcpy(actor, "token:", 6);
	sodium_bin2base64(actor + 6, sizeof(actor) - 6, o->token.jti,
			  BV_JTI_LEN, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	snprintf(exp, sizeof(exp), "%lld", (long long)o->token.exp);
	snprintf(regid, sizeof(regid), "%u", q->u.enroll.registration_id);
	snprintf(repl, sizeof(repl), "%u", q->u.enroll.replaces);
	snprintf(maxdev, sizeof(maxdev), "%u", r->cfg->max_devices_per_account);
	v[0] = o->token.tenant;
	v[1] = o->token.account[0] ? o->token.account : NULL;
	v[2] = (const char *)o->token.jti;
	len[2] = BV_JTI_LEN;
	fmt[2] = 1;
	v[3] = exp;
	v[4] = regid;
	v[5] = (const char *)q->u.enroll.identity_key;
	len[5] = BV_KEY_LEN;
	fmt[5] = 1;
	v[6] = (const char *)q->u.enroll.auth_key;
	len[6] = BV_AUTH_KEY_LEN;
	fmt[6] = 1;
	v[7] = repl;
	v[8] = maxdev;
	if (run_as(r, actor, "enroll", 9, v, len, fmt, enroll_stored, o) < 0) {
		c->auth_busy = 0;
		opctx_fail(o, BV_ENOMEM, NULL);
	}
}

/*
 * enroll with an invite's ticket ("bvi1.…", docs/protocol.md "Invites")
 * instead of a token: no tenant key is involved, the database knows the
 * ticket's invite, tenant and account. The device proves its auth key over
 * the same string as with a token.
 */
static void
enroll_ticket(struct opctx *o)
{
	struct conn *c = o->c;
	struct relay *r = c->r;
	struct bv_request *q = o->req;
	uint8_t hash[INVITE_HASH_LEN];
	char regid[16], repl[16], maxdev[16];
	const char *v[6];
	int len[6] = {0}, fmt[6] = {0};
	char *msg;
	int rc;

	rc = invite_ticket_hash(q->u.enroll.token, hash);
	if (rc < 0) {
		opctx_fail(o, rc, NULL);
		return;
	}
	msg = bv_enroll_message(c->nonce_b64, q->u.enroll.token);
	if (!msg || crypto_sign_verify_detached(
			    q->u.enroll.signature, (const unsigned char *)msg,
			    strlen(msg), q->u.enroll.auth_key) != 0) {
		bv_free(msg);
		opctx_fail(o, msg ? BV_EAUTH : BV_ENOMEM, NULL);
		return;
	}
	bv_free(msg);
	snprintf(regid, sizeof(regid), "%u", q->u.enroll.registration_id);
	snprintf(repl, sizeof(repl), "%u", q->u.enroll.replaces);
	snprintf(maxdev, sizeof(maxdev), "%u", r->cfg->max_devices_per_account);
	v[0] = (const char *)hash;
	len[0] = INVITE_HASH_LEN;
	fmt[0] = 1;
	v[1] = regid;
	v[2] = (const char *)q->u.enroll.identity_key;
	len[2] = BV_KEY_LEN;
	fmt[2] = 1;
	v[3] = (const char *)q->u.enroll.auth_key;
	len[3] = BV_AUTH_KEY_LEN;
	fmt[3] = 1;
	v[4] = repl;
	v[5] = maxdev;
	/* bv_invite_enroll() names the invite as the actor itself. */
	c->auth_busy = 1;
	if (run_as(r, "invite", "invite_enroll", 6, v, len, fmt, enroll_stored,
		   o) < 0) {
		c->auth_busy = 0;
		opctx_fail(o, BV_ENOMEM, NULL);
	}
}

static void
op_enroll(struct conn *c, struct bv_request *req)
{
	struct opctx *o;
	const char *v[1];
	int rc;

	if (check_unauthed(c, req->id) < 0) {
		bv_request_free(req);
		return;
	}
	o = opctx_new(c, req);
	if (!o) {
		ops_reply_error(c, req->id, BV_ENOMEM, NULL);
		bv_request_free(req);
		return;
	}
	if (invite_is_ticket(req->u.enroll.token)) {
		enroll_ticket(o);
		return;
	}
	rc = bv_token_peek(req->u.enroll.token, &o->token);
	if (rc < 0) {
		opctx_fail(o, rc, NULL);
		return;
	}
	v[0] = o->token.tenant;
	c->auth_busy = 1;
	if (run1(c->r, 0, "tenant_key", 1, v, NULL, NULL, enroll_have_key, o) <
	    0) {
		c->auth_busy = 0;
		opctx_fail(o, BV_ENOMEM, NULL);
	}
}

/* ----------------------------------------------------------------- prekeys */

static void
keys_put_done(struct db_job *job, int rc, void *arg)
{
	struct opctx *o = arg;
	PGresult *res;

	if (rc < 0) {
		opctx_fail(o, db_rc(job, rc), NULL);
		return;
	}
	res = db_job_result(job, db_job_count(job) - 1);
	ops_reply_ok(o->c, o->id,
		     json_pack("{sI}", "one_time_count",
			       (json_int_t)get_i64(res, 0, 0)));
	opctx_free(o);
}

static char *
prekey_arrays(const struct bv_request *q, char **keys_out)
{
	size_t i, n = q->u.keys_put.n_one_time;
	char *ids = bv_malloc(n * 12 + 3);
	char *keys = bv_malloc(n * (BV_KEY_LEN * 2 + 8) + 3);
	size_t a = 0, b = 0;

	if (!ids || !keys) {
		bv_free(ids);
		bv_free(keys);
		return NULL;
	}
	ids[a++] = '{';
	keys[b++] = '{';
	for (i = 0; i < n; i++) {
		const struct bv_prekey *k = &q->u.keys_put.one_time[i];

		a += (size_t)sprintf(ids + a, "%s%u", i ? "," : "", k->id);
		b += (size_t)sprintf(keys + b, "%s\"\\\\x", i ? "," : "");
		sodium_bin2hex(keys + b, BV_KEY_LEN * 2 + 1, k->key,
			       BV_KEY_LEN);
		b += BV_KEY_LEN * 2;
		keys[b++] = '"';
	}
	ids[a++] = '}';
	ids[a] = '\0';
	keys[b++] = '}';
	keys[b] = '\0';
	*keys_out = keys;
	return ids;
}

static void
op_keys_put(struct conn *c, struct bv_request *req)
{
	struct opctx *o = opctx_new(c, req);
	struct bv_request *q = req;
	struct db_job *job = NULL;
	char dev[24], spk_id[16], maxs[16];
	char *ids = NULL, *keys = NULL;
	const char *v[4];
	int len[4] = {0}, fmt[4] = {0};
	int rc = BV_ENOMEM;

	if (!o) {
		ops_reply_error(c, req->id, BV_ENOMEM, NULL);
		bv_request_free(req);
		return;
	}
	snprintf(dev, sizeof(dev), "%lld", (long long)c->device);
	job = db_job_new(1);
	if (!job)
		goto fail;
	if (q->u.keys_put.has_signed_prekey) {
		snprintf(spk_id, sizeof(spk_id), "%u",
			 q->u.keys_put.signed_prekey.id);
		v[0] = dev;
		v[1] = spk_id;
		v[2] = (const char *)q->u.keys_put.signed_prekey.key;
		len[2] = BV_KEY_LEN;
		fmt[2] = 1;
		v[3] = (const char *)q->u.keys_put.signed_prekey_signature;
		len[3] = BV_SIG_LEN;
		fmt[3] = 1;
		if (db_job_add(job, "spk_put", 4, v, len, fmt, 0) < 0)
			goto fail;
	}
	if (q->u.keys_put.n_one_time) {
		ids = prekey_arrays(q, &keys);
		if (!ids)
			goto fail;
		snprintf(maxs, sizeof(maxs), "%u",
			 c->r->cfg->max_prekeys_stock);
		v[0] = dev;
		v[1] = ids;
		v[2] = keys;
		v[3] = maxs;
		if (db_job_add(job, "otpk_put", 4, v, NULL, NULL, 0) < 0)
			goto fail;
	} else {
		v[0] = dev;
		if (db_job_add(job, "otpk_count", 1, v, NULL, NULL, 0) < 0)
			goto fail;
	}
	bv_free(ids);
	bv_free(keys);
	db_submit(c->r->dbw, job, keys_put_done, o);
	return;
fail:
	bv_free(ids);
	bv_free(keys);
	db_job_free(job);
	opctx_fail(o, rc, NULL);
}

static void
keys_count_done(struct db_job *job, int rc, void *arg)
{
	struct opctx *o = arg;

	if (rc < 0) {
		opctx_fail(o, db_rc(job, rc), NULL);
		return;
	}
	ops_reply_ok(
		o->c, o->id,
		json_pack("{sI}", "one_time_count",
			  (json_int_t)get_i64(db_job_result(job, 0), 0, 0)));
	opctx_free(o);
}

static void
op_keys_count(struct conn *c, struct bv_request *req)
{
	struct opctx *o = opctx_new(c, req);
	char dev[24];
	const char *v[1] = {dev};

	if (!o) {
		ops_reply_error(c, req->id, BV_ENOMEM, NULL);
		bv_request_free(req);
		return;
	}
	snprintf(dev, sizeof(dev), "%lld", (long long)c->device);
	if (run1(c->r, 0, "otpk_count", 1, v, NULL, NULL, keys_count_done, o) <
	    0)
		opctx_fail(o, BV_ENOMEM, NULL);
}

static json_t *
key_b64(const PGresult *res, int row, int col, size_t want)
{
	uint8_t buf[BV_SIG_LEN];
	char *s;
	json_t *j;

	if (want > sizeof(buf) || get_bytea(res, row, col, buf, want) < 0)
		return NULL;
	s = bv_b64_encode(buf, want);
	if (!s)
		return NULL;
	j = json_string(s);
	bv_free(s);
	return j;
}

/* Tells a device, here or on another relay, that its stock is low. */
static void
prekeys_low(struct relay *r, int64_t device, int count)
{
	struct conn *owner = ops_find_device(r, device);
	char payload[48];

	if (owner) {
		send_prekeys_low(owner, count);
		return;
	}
	snprintf(payload, sizeof(payload), "%lld %d", (long long)device, count);
	notify(r, CH_PREKEYS, payload);
}

static void
keys_get_done(struct db_job *job, int rc, void *arg)
{
	struct opctx *o = arg;
	struct relay *r = o->c->r;
	PGresult *res;
	json_t *devs = NULL, *d;
	int i, n;

	if (rc < 0) {
		opctx_fail(o, db_rc(job, rc), NULL);
		return;
	}
	res = db_job_result(job, 0);
	if (PQntuples(res) != 1 || PQgetvalue(res, 0, 0)[0] != 't') {
		/* Not one of the caller's conversations: as if unknown. */
		opctx_fail(o, BV_ENOACCOUNT, NULL);
		return;
	}
	res = db_job_result(job, 1);
	n = PQntuples(res);
	for (i = 0; i < n; i++)
		if (PQgetisnull(res, i, 4)) {
			/* bv_take_bundles() took no one-time prekey then. */
			opctx_fail(o, BV_ENOKEYS, NULL);
			return;
		}
	devs = json_array();
	for (i = 0; i < n; i++) {
		json_t *otpk = json_null();

		if (!PQgetisnull(res, i, 7))
			otpk = json_pack("{sI so*}", "id",
					 (json_int_t)get_i64(res, i, 7), "key",
					 key_b64(res, i, 8, BV_KEY_LEN));
		d = json_pack("{sI sI so* s{sI so* so*} so*}", "device",
			      (json_int_t)get_i64(res, i, 1), "registration_id",
			      (json_int_t)get_i64(res, i, 2), "identity_key",
			      key_b64(res, i, 3, BV_KEY_LEN), "signed_prekey",
			      "id", (json_int_t)get_i64(res, i, 4), "key",
			      key_b64(res, i, 5, BV_KEY_LEN), "signature",
			      key_b64(res, i, 6, BV_SIG_LEN), "one_time_prekey",
			      otpk);
		json_array_append_new(devs, d);
		if ((unsigned)get_i64(res, i, 9) <
		    r->cfg->prekeys_low_watermark)
			prekeys_low(r, get_i64(res, i, 0),
				    (int)get_i64(res, i, 9));
	}
	ops_reply_ok(o->c, o->id,
		     json_pack("{ss so}", "account", o->accounts[0], "devices",
			       devs));
	opctx_free(o);
}

static void
keys_get_resolved(struct opctx *o, int rc)
{
	struct conn *c = o->c;
	struct devcache_entry *e;
	struct db_job *job = NULL;
	char *arr = NULL;
	const char *v[3];
	size_t i, len = 0;
	uint32_t want = o->req->u.keys_get.device;
	int own;

	if (rc < 0) {
		opctx_fail(o, rc, NULL);
		return;
	}
	e = reachable(c, o->accounts[0]);
	if (!e) {
		opctx_fail(o, BV_ENOACCOUNT, NULL);
		return;
	}
	own = !strcmp(e->account, c->account);
	arr = bv_malloc(e->n * 22 + 3);
	if (!arr) {
		opctx_fail(o, BV_ENOMEM, NULL);
		return;
	}
	arr[len++] = '{';
	for (i = 0; i < e->n; i++) {
		if (want ? e->devs[i].device_id != want
			 : own && e->devs[i].device_id == c->device_id)
			continue;
		len += (size_t)sprintf(arr + len, "%s%lld", len > 1 ? "," : "",
				       (long long)e->devs[i].id);
	}
	arr[len++] = '}';
	arr[len] = '\0';
	if (want && len == 2) {
		bv_free(arr);
		opctx_fail(o, BV_ENOACCOUNT, NULL);
		return;
	}
	/* One transaction: no prekey is taken unless the caller may reach
	 * the account (checked again inside take_bundles). */
	job = db_job_new(1);
	v[0] = c->account;
	v[1] = e->account;
	v[2] = arr;
	if (!job || db_job_add(job, "may_reach", 2, v, NULL, NULL, 0) < 0)
		goto nomem;
	v[0] = arr;
	v[1] = c->account;
	v[2] = e->account;
	if (db_job_add(job, "take_bundles", 3, v, NULL, NULL, 0) < 0)
		goto nomem;
	bv_free(arr);
	if (db_submit(c->r->dbw, job, keys_get_done, o) < 0)
		opctx_fail(o, BV_ENOMEM, NULL);
	return;
nomem:
	bv_free(arr);
	db_job_free(job);
	opctx_fail(o, BV_ENOMEM, NULL);
}

static void
op_keys_get(struct conn *c, struct bv_request *req)
{
	struct opctx *o = opctx_new(c, req);

	if (!o || add_account(o, req->u.keys_get.account, 1) < 0) {
		if (o)
			opctx_fail(o, BV_ENOMEM, NULL);
		else {
			ops_reply_error(c, req->id, BV_ENOMEM, NULL);
			bv_request_free(req);
		}
		return;
	}
	resolve_accounts(o, keys_get_resolved);
}

/* -------------------------------------------------------------------- send */

static void send_start(struct opctx *o);

static void
send_done(struct db_job *job, int rc, void *arg)
{
	struct opctx *o = arg;
	struct conn *c = o->c;
	struct relay *r = c->r;
	struct bv_request *q = o->req;
	struct delivery d;
	size_t i;

	if (rc < 0 && !strcmp(db_job_sqlstate(job), "BV032") && !o->retried) {
		/* A cache was stale: read the required accounts and their
		 * devices again and compare again. */
		for (i = 0; i < o->n_accounts; i++)
			devcache_invalidate(r, o->accounts[i]);
		cases_forget(r, q->u.send.conversation, c->account);
		o->retried = 1;
		send_start(o);
		return;
	}
	if (rc < 0) {
		opctx_fail(o, db_rc(job, rc), NULL);
		return;
	}
	r->m.sends++;
	r->m.envelopes_stored += q->u.send.n_envelopes;
	r->m.send_latency_us_sum += (bv_mono_ms() - o->t0) * 1000;
	ops_reply_ok(c, o->id,
		     json_pack("{sI}", "timestamp", (json_int_t)o->ts));
	memset(&d, 0, sizeof(d));
	snprintf(d.sender, sizeof(d.sender), "%s", c->account);
	d.sender_device = c->device_id;
	snprintf(d.conversation, sizeof(d.conversation), "%s",
		 q->u.send.conversation);
	d.message_id = q->u.send.message_id;
	d.ts = o->ts;
	for (i = 0; i < q->u.send.n_envelopes; i++) {
		struct conn *dc = ops_find_device(r, o->dev[i]);

		if (!dc)
			continue;
		d.seq = get_i64(db_job_result(job, (int)i + 1), 0, 0);
		d.type = q->u.send.envelopes[i].type;
		d.body = q->u.send.envelopes[i].body;
		d.body_len = q->u.send.envelopes[i].body_len;
		deliver_committed(dc, &d);
	}
	opctx_free(o);
}

/* {"account": a, "devices": [..]} appended to arr when n > 0. */
static void
diff_add(json_t *arr, const char *account, const uint32_t *devs, size_t n)
{
	json_t *list;
	size_t i;

	if (!n)
		return;
	list = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(list, json_integer(devs[i]));
	json_array_append_new(
		arr, json_pack("{ss so}", "account", account, "devices", list));
}

/* Devices addressed to account in the send, into addr; returns how many. */
static size_t
addressed(struct opctx *o, const struct devcache_entry *e, const char *account,
	  struct devset_entry *addr, uint32_t *ids)
{
	struct bv_request *q = o->req;
	size_t i, k, n = 0;

	for (i = 0; i < q->u.send.n_envelopes; i++) {
		const struct bv_envelope_in *env = &q->u.send.envelopes[i];

		if (strcmp(env->account, account))
			continue;
		if (addr) {
			addr[n].device = env->device;
			addr[n].registration_id = env->registration_id;
		}
		if (ids)
			ids[n] = env->device;
		n++;
		for (k = 0; e && k < e->n; k++)
			if (e->devs[k].device_id == env->device)
				o->dev[i] = e->devs[k].id;
	}
	return n;
}

/*
 * Compares the send with its required accounts (o->required) and each
 * account's addressed devices with its current ones (docs/protocol.md
 * `send`). Marks in o->check the accounts the transaction checks again.
 */
static int
send_compare(struct opctx *o, json_t **details)
{
	struct conn *c = o->c;
	struct bv_request *q = o->req;
	json_t *missing = json_array(), *extra = json_array(),
	       *stale = json_array();
	struct devset_entry *addr = NULL, *cur = NULL;
	uint32_t *ids = NULL;
	size_t a, i, n;
	int rc = 0, worst = 0;

	addr = bv_calloc(q->u.send.n_envelopes, sizeof(*addr));
	ids = bv_calloc(q->u.send.n_envelopes, sizeof(*ids));
	if (!addr || !ids) {
		rc = BV_ENOMEM;
		goto out;
	}
	for (a = 0; a < o->n_accounts; a++) {
		const char *account = o->accounts[a];
		int ri = required_find(&o->required, account);
		struct devcache_entry *e;
		struct devset_diff diff;

		o->check[a] = 0;
		if (ri < 0) {
			/* Not required: every device addressed is extra. */
			n = addressed(o, NULL, account, NULL, ids);
			diff_add(extra, account, ids, n);
			worst = BV_EDEVICES;
			continue;
		}
		e = reachable(c, account);
		if (!e) {
			rc = BV_ENOACCOUNT;
			goto out;
		}
		n = addressed(o, e, account, addr, NULL);
		if (n == 0 && q->u.send.partial && !o->required.archive[ri] &&
		    strcmp(account, c->account))
			continue; /* partial: this member is left out */
		o->check[a] = 1;
		bv_free(cur);
		cur = bv_calloc(e->n + 1, sizeof(*cur));
		if (!cur) {
			rc = BV_ENOMEM;
			goto out;
		}
		for (i = 0; i < e->n; i++) {
			cur[i].device = e->devs[i].device_id;
			cur[i].registration_id = e->devs[i].registration_id;
		}
		memset(&diff, 0, sizeof(diff));
		rc = devset_compare(
			addr, n, cur, e->n,
			strcmp(e->account, c->account) ? 0 : c->device_id,
			&diff);
		if (rc == BV_ENOMEM)
			goto out;
		diff_add(missing, e->account, diff.missing, diff.n_missing);
		diff_add(extra, e->account, diff.extra, diff.n_extra);
		diff_add(stale, e->account, diff.stale, diff.n_stale);
		devset_diff_cleanup(&diff);
		if (rc == BV_EDEVICES || (rc == BV_ESTALE && !worst))
			worst = rc;
	}
	rc = worst;
	if (rc == BV_EDEVICES)
		*details = json_pack("{sO sO}", "missing", missing, "extra",
				     extra);
	else if (rc == BV_ESTALE)
		*details = json_pack("{sO}", "stale", stale);
out:
	json_decref(missing);
	json_decref(extra);
	json_decref(stale);
	bv_free(addr);
	bv_free(ids);
	bv_free(cur);
	return rc;
}

/*
 * The accounts of the send that a notification may be due for, as a
 * Postgres array literal in *out (NULL when none): every account with an
 * envelope but the sender's own and archive accounts. A partial send
 * (receipts, resend requests) is nobody's news. 0 or BV_ENOMEM.
 */
static int
notify_accounts(struct opctx *o, char **out)
{
	struct bv_request *q = o->req;
	size_t i, k, n = q->u.send.n_envelopes, len = 1;
	char *s;

	*out = NULL;
	if (q->u.send.partial)
		return 0;
	s = bv_malloc(n * 38 + 3);
	if (!s)
		return BV_ENOMEM;
	s[0] = '{';
	for (i = 0; i < n; i++) {
		const char *a = q->u.send.envelopes[i].account;
		int ri = required_find(&o->required, a);

		if (!strcmp(a, o->c->account) ||
		    (ri >= 0 && o->required.archive[ri]))
			continue;
		for (k = 0; k < i; k++)
			if (!strcmp(q->u.send.envelopes[k].account, a))
				break;
		if (k < i)
			continue; /* already listed */
		len += (size_t)sprintf(s + len, "%s%s", len > 1 ? "," : "", a);
	}
	if (len == 1) {
		bv_free(s);
		return 0;
	}
	strcpy(s + len, "}");
	*out = s;
	return 0;
}

static struct db_job *
send_job(struct opctx *o)
{
	struct conn *c = o->c;
	struct bv_request *q = o->req;
	size_t n = q->u.send.n_envelopes, i, a = 1, b = 1, p = 0;
	char *devs = bv_malloc(n * 22 + 3), *regs = bv_malloc(n * 12 + 3);
	char *remote = bv_malloc(n * 22 + 1), *accts = NULL, *counts = NULL;
	char *reqd = NULL, *marks = NULL;
	char maxq[16], dev[24], sdev[16], type[8], ts[24], at[24];
	const char *v[8];
	int len[8] = {0}, fmt[8] = {0};
	struct db_job *job = db_job_new(1);

	if (!devs || !regs || !remote || !job)
		goto fail;
	devs[0] = regs[0] = '{';
	remote[0] = '\0';
	for (i = 0; i < n; i++) {
		a += (size_t)sprintf(devs + a, "%s%lld", i ? "," : "",
				     (long long)o->dev[i]);
		b += (size_t)sprintf(regs + b, "%s%u", i ? "," : "",
				     q->u.send.envelopes[i].registration_id);
		if (!ops_find_device(c->r, o->dev[i]))
			p += (size_t)sprintf(remote + p, "%s%lld", p ? "," : "",
					     (long long)o->dev[i]);
	}
	strcpy(devs + a, "}");
	strcpy(regs + b, "}");
	snprintf(maxq, sizeof(maxq), "%u", c->r->cfg->max_queue_per_device);
	accts = bv_malloc(o->n_accounts * 38 + 3);
	counts = bv_malloc(o->n_accounts * 12 + 3);
	if (!accts || !counts)
		goto fail;
	accts[0] = counts[0] = '{';
	for (i = 0, a = 1, b = 1; i < o->n_accounts; i++) {
		const struct devcache_entry *e =
			devcache_get(c->r, o->accounts[i]);

		if (!o->check[i])
			continue;
		a += (size_t)sprintf(accts + a, "%s%s", a > 1 ? "," : "",
				     o->accounts[i]);
		b += (size_t)sprintf(counts + b, "%s%zu", b > 1 ? "," : "",
				     e ? e->n : 0);
	}
	strcpy(accts + a, "}");
	strcpy(counts + b, "}");
	v[0] = devs;
	v[1] = regs;
	v[2] = maxq;
	v[3] = accts;
	v[4] = counts;
	if (db_job_add(job, "check_send", 5, v, NULL, NULL, 0) < 0)
		goto fail;
	snprintf(sdev, sizeof(sdev), "%u", c->device_id);
	snprintf(ts, sizeof(ts), "%lld", (long long)o->ts);
	for (i = 0; i < n; i++) {
		const struct bv_envelope_in *env = &q->u.send.envelopes[i];

		snprintf(dev, sizeof(dev), "%lld", (long long)o->dev[i]);
		snprintf(type, sizeof(type), "%u", env->type);
		v[0] = dev;
		v[1] = c->account;
		v[2] = sdev;
		v[3] = q->u.send.message_id;
		v[4] = type;
		v[5] = ts;
		v[6] = (const char *)env->body;
		len[6] = (int)env->body_len;
		fmt[6] = 1;
		v[7] = q->u.send.conversation;
		if (db_job_add(job, "enqueue", 8, v, len, fmt, 0) < 0)
			goto fail;
	}
	if (notify_accounts(o, &marks) < 0)
		goto fail;
	if (marks) {
		v[0] = marks;
		v[1] = ts;
		if (db_job_add(job, "notify_mark", 2, v, NULL, NULL, 0) < 0)
			goto fail;
	}
	if (p) {
		/* Wake the relays where these devices may be connected. */
		v[0] = CH_DELIVER;
		v[1] = remote;
		if (db_job_add(job, "notify", 2, v, NULL, NULL, 0) < 0)
			goto fail;
	}
	/* Last, under the case's lock: the required accounts still hold. */
	reqd = bv_malloc(o->required.n * 38 + 3);
	if (!reqd)
		goto fail;
	reqd[0] = '{';
	for (i = 0, a = 1; i < o->required.n; i++)
		a += (size_t)sprintf(reqd + a, "%s%s", i ? "," : "",
				     o->required.accounts[i]);
	strcpy(reqd + a, "}");
	v[0] = q->u.send.conversation;
	v[1] = c->account;
	v[2] = reqd;
	if (db_job_add(job, "check_recipients", 3, v, NULL, NULL, 0) < 0)
		goto fail;
	if (!q->u.send.partial) {
		/* A citizen writing while the office is closed is told so. */
		snprintf(at, sizeof(at), "%lld",
			 (long long)o->ts +
				 (long long)c->r->cfg->office_clock_offset_s *
					 1000);
		v[2] = at;
		v[3] = ts;
		if (db_job_add(job, "out_of_hours", 4, v, NULL, NULL, 0) < 0)
			goto fail;
		v[2] = ts;
		if (db_job_add(job, "task_mark", 3, v, NULL, NULL, 0) < 0)
			goto fail;
	}
	bv_free(reqd);
	bv_free(marks);
	bv_free(devs);
	bv_free(regs);
	bv_free(remote);
	bv_free(accts);
	bv_free(counts);
	return job;
fail:
	bv_free(reqd);
	bv_free(marks);
	bv_free(devs);
	bv_free(regs);
	bv_free(remote);
	bv_free(accts);
	bv_free(counts);
	db_job_free(job);
	return NULL;
}

static void
send_resolved(struct opctx *o, int rc)
{
	json_t *details = NULL;
	struct db_job *job;

	if (rc < 0) {
		opctx_fail(o, rc, NULL);
		return;
	}
	rc = send_compare(o, &details);
	if (rc < 0) {
		opctx_fail(o, rc, details);
		return;
	}
	if (o->c->r->draining) {
		opctx_fail(o, BV_ESHUTDOWN, NULL);
		return;
	}
	job = send_job(o);
	if (!job) {
		opctx_fail(o, BV_ENOMEM, NULL);
		return;
	}
	db_submit(o->c->r->dbw, job, send_done, o);
}

static void
op_send(struct conn *c, struct bv_request *req)
{
	struct opctx *o;
	uint64_t retry = 0;
	size_t n = req->u.send.n_envelopes;

	if (ratelimit_take(&c->rl, bv_mono_ms(), &retry) < 0) {
		ops_reply_error(
			c, req->id, BV_ERATE,
			json_pack("{sI}", "retry_after_ms", (json_int_t)retry));
		bv_request_free(req);
		return;
	}
	o = opctx_new(c, req);
	if (!o) {
		ops_reply_error(c, req->id, BV_ENOMEM, NULL);
		bv_request_free(req);
		return;
	}
	o->ts = bv_now_ms();
	o->t0 = bv_mono_ms();
	o->dev = bv_calloc(n, sizeof(*o->dev));
	if (!o->dev) {
		opctx_fail(o, BV_ENOMEM, NULL);
		return;
	}
	send_start(o);
}

/* The required accounts are known: add every named one, read devices. */
static void
send_required(struct opctx *o, int rc)
{
	struct bv_request *q = o->req;
	size_t i, cap = o->required.n + q->u.send.n_envelopes + 1;

	if (rc < 0) {
		opctx_fail(o, rc, NULL);
		return;
	}
	bv_free(o->accounts);
	o->accounts = NULL;
	o->n_accounts = 0;
	bv_free(o->check);
	o->check = bv_calloc(cap, 1);
	if (!o->check || add_account(o, o->c->account, cap) < 0)
		goto nomem;
	for (i = 0; i < o->required.n; i++)
		if (add_account(o, o->required.accounts[i], cap) < 0)
			goto nomem;
	for (i = 0; i < q->u.send.n_envelopes; i++)
		if (add_account(o, q->u.send.envelopes[i].account, cap) < 0)
			goto nomem;
	resolve_accounts(o, send_resolved);
	return;
nomem:
	opctx_fail(o, BV_ENOMEM, NULL);
}

/* First step of a send (again after a stale cache): who must get it. */
static void
send_start(struct opctx *o)
{
	cases_required(o, o->req->u.send.conversation, send_required);
}

/* ------------------------------------------------------------ dispatching */

void
ops_on_connect(struct conn *c)
{
	const struct relay_config *cfg = c->r->cfg;
	uint8_t nonce[BV_NONCE_LEN];
	json_t *ev;
	char *b64;

	randombytes_buf(nonce, sizeof(nonce));
	b64 = bv_b64_encode(nonce, sizeof(nonce));
	if (!b64) {
		conn_close(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION);
		return;
	}
	snprintf(c->nonce_b64, sizeof(c->nonce_b64), "%s", b64);
	bv_free(b64);
	ev = json_pack(
		"{ss ss ss s{sI sI si si si si si}}", "op", "challenge",
		"nonce", c->nonce_b64, "relay", RELAY_VERSION, "limits",
		"max_frame_bytes", (json_int_t)cfg->limits.max_frame_bytes,
		"max_envelope_bytes",
		(json_int_t)cfg->limits.max_envelope_bytes,
		"max_envelopes_per_send",
		(int)cfg->limits.max_envelopes_per_send,
		"max_prekeys_per_upload",
		(int)cfg->limits.max_prekeys_per_upload,
		"max_devices_per_account", (int)cfg->max_devices_per_account,
		"sends_per_minute", (int)cfg->sends_per_minute,
		"deliver_window", (int)cfg->deliver_window);
	/* The widget subscribes to web push with this key (checked at
	 * start); without it there is no web push to subscribe to. */
	if (ev && cfg->webpush_vapid_public && *cfg->webpush_vapid_public)
		json_object_set_new(ev, "webpush_key",
				    json_string(cfg->webpush_vapid_public));
	send_event(c, ev);
}

void
ops_frame(struct conn *c, const char *buf, size_t len)
{
	struct relay *r = c->r;
	struct bv_request *req = NULL;
	struct bv_parse_error err;
	int rc;

	memset(&err, 0, sizeof(err));
	rc = bv_request_parse(buf, len, &r->cfg->limits, &req, &err);
	if (rc < 0) {
		ops_reply_error(c, err.id, rc,
				err.field[0]
					? json_pack("{ss}", "field", err.field)
					: NULL);
		return;
	}
	r->m.requests[req->op]++;
	if (req->op == BV_OP_RESPONSE) {
		if (deliver_answer(c, req->id, req->u.response.is_error) < 0)
			bv_log(BV_LOG_DEBUG, "answer to unknown id ignored");
		bv_request_free(req);
		return;
	}
	if (req->op == BV_OP_PING) {
		ops_reply_ok(c, req->id, NULL);
		bv_request_free(req);
		return;
	}
	if (r->draining) {
		ops_reply_error(c, req->id, BV_ESHUTDOWN, NULL);
		bv_request_free(req);
		return;
	}
	if (c->requests_in_flight >= r->cfg->max_requests_in_flight) {
		ops_reply_error(c, req->id, BV_EBUSY, NULL);
		bv_request_free(req);
		return;
	}
	if (req->op == BV_OP_AUTH) {
		op_auth(c, req);
		return;
	}
	if (req->op == BV_OP_ENROLL) {
		op_enroll(c, req);
		return;
	}
	if (!c->authed) {
		ops_reply_error(c, req->id, BV_ENOAUTH, NULL);
		bv_request_free(req);
		return;
	}
	switch (req->op) {
	case BV_OP_KEYS_PUT:
		op_keys_put(c, req);
		break;
	case BV_OP_KEYS_GET:
		op_keys_get(c, req);
		break;
	case BV_OP_KEYS_COUNT:
		op_keys_count(c, req);
		break;
	case BV_OP_SEND:
		op_send(c, req);
		break;
	case BV_OP_CASES:
		op_cases(c, req);
		break;
	case BV_OP_CONVERSATION_CREATE:
		op_conversation_create(c, req);
		break;
	case BV_OP_NOTIFY_SET:
		op_notify_set(c, req);
		break;
	case BV_OP_BLOB_CREATE:
		op_blob_create(c, req);
		break;
	case BV_OP_BLOBS_JOURNALED:
		op_blobs_journaled(c, req);
		break;
	default:
		ops_reply_error(c, req->id, BV_EOP, NULL);
		bv_request_free(req);
		break;
	}
}

void
ops_on_close(struct conn *c)
{
	unregister(c);
}

/* Parses "<device> <rest>"; returns the device and points *rest past it. */
static int64_t
notify_device(const char *payload, const char **rest)
{
	char *end;
	long long d = strtoll(payload, &end, 10);
	size_t n = (size_t)(end - payload);

	/* An offset, not end itself: GCC 12 at -O2 otherwise takes *rest
	 * for a pointer to the local end (-Wdangling-pointer). */
	while (payload[n] == ' ')
		n++;
	*rest = payload + n;
	return d;
}

/*
 * Whether a bv_connect notification's rest ("<instance> <order>") is about
 * a later connection than ours of order mine. A notification can arrive
 * after a newer connection of the device was made here, so the order
 * decides, not the arrival. Without an order (a relay of an older version)
 * any other instance's connection counts as newer, as it used to.
 */
static int
connect_is_newer(const char *rest, const char *instance, int64_t mine)
{
	const char *sp = strchr(rest, ' ');
	char *end;
	long long order;

	if (!sp)
		return strcmp(rest, instance) != 0;
	order = strtoll(sp + 1, &end, 10);
	if (end == sp + 1)
		return strncmp(rest, instance, (size_t)(sp - rest)) != 0;
	return order > mine;
}

void
ops_on_notify(const char *channel, const char *payload, void *arg)
{
	struct relay *r = arg;
	struct conn *c;
	const char *rest;
	int64_t dev;

	r->m.notifies++;
	if (!strcmp(channel, CH_DEVICES)) {
		devcache_invalidate(r, payload);
	} else if (!strcmp(channel, CH_DELIVER)) {
		const char *p = payload;

		while (*p) {
			char *end;

			dev = strtoll(p, &end, 10);
			if (end == p)
				break;
			c = ops_find_device(r, dev);
			if (c)
				deliver_poke(c);
			p = *end == ',' ? end + 1 : end;
		}
	} else if (!strcmp(channel, CH_CONNECT)) {
		dev = notify_device(payload, &rest);
		c = ops_find_device(r, dev);
		if (c && connect_is_newer(rest, r->instance, c->auth_order))
			displace(c);
	} else if (!strcmp(channel, CH_ROSTER)) {
		cases_on_notify(r, payload);
	} else if (!strcmp(channel, CH_PREKEYS)) {
		dev = notify_device(payload, &rest);
		c = ops_find_device(r, dev);
		if (c)
			send_prekeys_low(c, atoi(rest));
	}
}

void
ops_on_db_state(int up, void *arg)
{
	struct relay *r = arg;

	/* Notifications may have been missed while down: forget the caches. */
	devcache_clear(r);
	cases_clear(r);
	if (up)
		deliver_db_up(r);
	bv_log(up ? BV_LOG_NOTICE : BV_LOG_WARN, "database %s",
	       up ? "connected" : "unavailable");
}
