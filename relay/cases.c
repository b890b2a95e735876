/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * cases.c: the relay's side of case conversations (docs/cases.md): the
 * cache of each send's required accounts, the `cases` and
 * `conversation_create` requests, and roster changes reaching live
 * connections (NOTIFY bv_roster → the cache is dropped, `cases_changed`
 * goes to the accounts whose view changed). The rules themselves live in
 * the database (migrations 0003 and 0004); what this file caches is checked
 * again inside every send's transaction.
 */
#include <stdlib.h>
#include <string.h>

#include "bv_error.h"
#include "bv_util.h"
#include "relay.h"

#define REQCACHE_MAX 100000

static const struct relay_stmt statements[] = {
	{"send_accounts",
	 "SELECT account::text, archive FROM bv_send_accounts($1::uuid, "
	 "$2::uuid)",
	 2},
	{"cases_view",
	 "SELECT bv_cases_view($1::uuid, $2::uuid, $3::uuid)::text", 3},
	{"conversation_create",
	 "SELECT jsonb_build_object('conversation', bv_conversation_create("
	 "$1::uuid, $2::uuid, $3, $4::uuid[]))::text",
	 4},
};

int
cases_prepare(struct relay *r)
{
	return relay_prepare(r, statements,
			     sizeof(statements) / sizeof(statements[0]));
}

/* ------------------------------------------------- required accounts cache */

void
required_free(struct required *q)
{
	bv_free(q->accounts);
	bv_free(q->archive);
	memset(q, 0, sizeof(*q));
}

int
required_find(const struct required *q, const char *account)
{
	size_t i;

	for (i = 0; i < q->n; i++)
		if (!strcmp(q->accounts[i], account))
			return (int)i;
	return -1;
}

static int
required_copy(struct required *dst, const struct required *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->accounts = bv_calloc(src->n + 1, sizeof(*dst->accounts));
	dst->archive = bv_calloc(src->n + 1, 1);
	if (!dst->accounts || !dst->archive) {
		required_free(dst);
		return BV_ENOMEM;
	}
	memcpy(dst->accounts, src->accounts, src->n * sizeof(*dst->accounts));
	memcpy(dst->archive, src->archive, src->n);
	dst->n = src->n;
	return 0;
}

static void
reqcache_key(char key[74], const char *conversation, const char *sender)
{
	snprintf(key, 74, "%s:%s", conversation, sender);
}

static void
reqcache_drop(struct relay *r, struct reqcache_entry *e)
{
	HASH_DEL(r->reqcache, e);
	r->reqcache_n--;
	required_free(&e->req);
	bv_free(e);
}

void
cases_clear(struct relay *r)
{
	struct reqcache_entry *e, *tmp;

	HASH_ITER(hh, r->reqcache, e, tmp)
	reqcache_drop(r, e);
	r->reqcache_gen++;
}

void
cases_forget(struct relay *r, const char *conversation, const char *sender)
{
	struct reqcache_entry *e = NULL;
	char key[74];

	reqcache_key(key, conversation, sender);
	HASH_FIND_STR(r->reqcache, key, e);
	if (e)
		reqcache_drop(r, e);
	r->reqcache_gen++;
}

/* A look-up at the database in flight. */
struct reqload {
	struct opctx *o;
	required_cb cb;
	unsigned long gen; /* r->reqcache_gen when it started */
	char key[74];
};

/* Keeps the answer unless the cache was cleared meanwhile (the answer may
 * predate the change that cleared it). */
static void
reqcache_put(struct relay *r, const struct reqload *l, int rc,
	     const struct required *q)
{
	struct reqcache_entry *e = NULL;

	if (l->gen != r->reqcache_gen)
		return;
	if (r->reqcache_n >= REQCACHE_MAX)
		cases_clear(r);
	HASH_FIND_STR(r->reqcache, l->key, e);
	if (e)
		reqcache_drop(r, e);
	e = bv_calloc(1, sizeof(*e));
	if (!e || (rc == 0 && required_copy(&e->req, q) < 0)) {
		bv_free(e);
		return;
	}
	memcpy(e->key, l->key, sizeof(e->key));
	e->rc = rc;
	HASH_ADD_STR(r->reqcache, key, e);
	r->reqcache_n++;
}

static void
required_loaded(struct db_job *job, int rc, void *arg)
{
	struct reqload *l = arg;
	struct opctx *o = l->o;
	struct relay *r = o->c->r;
	struct required *q = &o->required;
	PGresult *res;
	int i, n;

	if (rc < 0) {
		rc = db_rc(job, rc);
		if (rc == BV_ENOACCOUNT)
			reqcache_put(r, l, rc, NULL);
		goto out;
	}
	res = db_job_result(job, 0);
	n = PQntuples(res);
	required_free(q);
	q->accounts = bv_calloc((size_t)n + 1, sizeof(*q->accounts));
	q->archive = bv_calloc((size_t)n + 1, 1);
	if (!q->accounts || !q->archive) {
		required_free(q);
		rc = BV_ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		snprintf(q->accounts[i], sizeof(q->accounts[i]), "%s",
			 PQgetvalue(res, i, 0));
		q->archive[i] = PQgetvalue(res, i, 1)[0] == 't';
	}
	q->n = (size_t)n;
	reqcache_put(r, l, 0, q);
out:
	l->cb(o, rc);
	bv_free(l);
}

void
cases_required(struct opctx *o, const char *conversation, required_cb cb)
{
	struct relay *r = o->c->r;
	struct reqcache_entry *e = NULL;
	struct reqload *l;
	const char *v[2] = {conversation, o->c->account};
	char key[74];

	required_free(&o->required);
	reqcache_key(key, conversation, o->c->account);
	HASH_FIND_STR(r->reqcache, key, e);
	if (e) {
		cb(o, e->rc ? e->rc : required_copy(&o->required, &e->req));
		return;
	}
	l = bv_calloc(1, sizeof(*l));
	if (!l) {
		cb(o, BV_ENOMEM);
		return;
	}
	l->o = o;
	l->cb = cb;
	l->gen = r->reqcache_gen;
	memcpy(l->key, key, sizeof(key));
	if (run1(r, 0, "send_accounts", 2, v, NULL, NULL, required_loaded, l) <
	    0) {
		bv_free(l);
		cb(o, BV_ENOMEM);
	}
}

/* ------------------------------------------------------------ roster events */

void
cases_on_notify(struct relay *r, const char *payload)
{
	char case_id[37], account[37];
	struct conn *c;

	/* Any change to a case may change required accounts anywhere. */
	cases_clear(r);
	/* "<case> <account>": that account's view changed. */
	if (strlen(payload) != 73 || payload[36] != ' ')
		return;
	memcpy(case_id, payload, 36);
	case_id[36] = '\0';
	memcpy(account, payload + 37, 37);
	if (!bv_uuid_valid(case_id) || !bv_uuid_valid(account))
		return;
	for (c = ops_account_conns(r, account); c; c = c->acct_next)
		conn_send_json(c, json_pack("{ss ss}", "op", "cases_changed",
					    "case", case_id));
}

/* ------------------------------------------------------------------- cases */

/* Answers with the JSON the database built in result idx of the job. */
static void
answer_json(struct opctx *o, struct db_job *job, int rc, int idx)
{
	PGresult *res;
	json_t *j = NULL;

	if (rc < 0) {
		opctx_fail(o, db_rc(job, rc), NULL);
		return;
	}
	res = db_job_result(job, idx);
	if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
		j = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
	if (!j) {
		opctx_fail(o, BV_EINTERNAL, NULL);
		return;
	}
	ops_reply_ok(o->c, o->id, j);
	opctx_free(o);
}

static void
cases_done(struct db_job *job, int rc, void *arg)
{
	answer_json(arg, job, rc, 0);
}

static void
created_done(struct db_job *job, int rc, void *arg)
{
	answer_json(arg, job, rc, 1); /* after set_actor */
}

void
op_cases(struct conn *c, struct bv_request *req)
{
	struct opctx *o = opctx_new(c, req);
	const char *v[3];

	if (!o) {
		ops_reply_error(c, req->id, BV_ENOMEM, NULL);
		bv_request_free(req);
		return;
	}
	v[0] = c->account;
	v[1] = req->u.cases.case_id[0] ? req->u.cases.case_id : NULL;
	v[2] = req->u.cases.after[0] ? req->u.cases.after : NULL;
	if (run1(c->r, 0, "cases_view", 3, v, NULL, NULL, cases_done, o) < 0)
		opctx_fail(o, BV_ENOMEM, NULL);
}

/* -------------------------------------------------------------- create */

void
op_conversation_create(struct conn *c, struct bv_request *req)
{
	struct opctx *o = opctx_new(c, req);
	char actor[64], *members = NULL;
	const char *v[4];
	size_t i, n, len = 0;

	if (!o) {
		ops_reply_error(c, req->id, BV_ENOMEM, NULL);
		bv_request_free(req);
		return;
	}
	n = req->u.conversation_create.n_members;
	members = bv_malloc((n ? n : 1) * 38 + 3);
	if (!members) {
		opctx_fail(o, BV_ENOMEM, NULL);
		return;
	}
	members[len++] = '{';
	if (n == 0) /* a citizen's own team conversation */
		len += (size_t)sprintf(members + len, "%s", c->account);
	for (i = 0; i < n; i++)
		len += (size_t)sprintf(members + len, "%s%s", i ? "," : "",
				       req->u.conversation_create.members[i]);
	members[len++] = '}';
	members[len] = '\0';
	/* The audit log names the device that asked. */
	snprintf(actor, sizeof(actor), "device:%s/%u", c->account,
		 c->device_id);
	v[0] = req->u.conversation_create.case_id;
	v[1] = c->account;
	v[2] = req->u.conversation_create.kind;
	v[3] = members;
	if (run_as(c->r, actor, "conversation_create", 4, v, NULL, NULL,
		   created_done, o) < 0)
		opctx_fail(o, BV_ENOMEM, NULL);
	bv_free(members);
}
