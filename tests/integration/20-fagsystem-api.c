/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 20-fagsystem-api: the fagsystem's HTTP API of docs/fagsystem-api.md
 * against a real PostgreSQL and relay: every endpoint with a valid token
 * (its effect in the database and in the audit log as fagsystem:<sub>,
 * the GET of a case as an export), and every refusal (credentials, request
 * binding, replay, another tenant's case or account, limits, bad bodies)
 * with its documented status and code and nothing changed or logged.
 * Tokens are made here from the document (bvt_apitoken_make) and once by
 * `bvchat-relay admin api-token`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "bvtest.h"

#define SUB "kari.nordmann"

static struct bvt_env env;
static struct bvt_tenant other; /* tenant B */
static char *last_answer;	/* the body of the last answer, as sent */

/* One request with a token as given (NULL: no Authorization header). The
 * answer's JSON goes to *out (may be NULL), its bytes to last_answer.
 * Returns the HTTP status. */
static int
call_tok(const char *token, const char *method, const char *path,
	 const char *body, json_t **out)
{
	char hdr[2048], *resp = NULL;
	int st;

	if (token)
		snprintf(hdr, sizeof(hdr),
			 "Authorization: Bvchat-Fagsystem %s\r\n", token);
	st = bvt_http_request(env.relay.port, method, path, token ? hdr : NULL,
			      body, body ? strlen(body) : 0,
			      bvt_ms(BVT_TIMEOUT), &resp);
	if (out)
		*out = resp ? json_loads(resp, 0, NULL) : NULL;
	free(last_answer);
	last_answer = resp;
	return st;
}

/* A copy of last_answer (free()). */
static char *
answer_copy(void)
{
	char *s = strdup(last_answer ? last_answer : "");

	assert_non_null(s);
	return s;
}

/* With a fresh, valid token of t for exactly this request. */
static int
call(const struct bvt_tenant *t, const char *method, const char *path,
     const char *body, json_t **out)
{
	char *tok =
		bvt_apitoken_make(t->id, t->sk, SUB, time(NULL) + 60, method,
				  path, body, body ? strlen(body) : 0);
	int st;

	assert_non_null(tok);
	st = call_tok(tok, method, path, body, out);
	free(tok);
	return st;
}

/* The error code of an answer, "" when none. */
static const char *
code_of(const json_t *j)
{
	const char *c = json_string_value(
		json_object_get(json_object_get(j, "error"), "code"));

	return c ? c : "";
}

/* Asserts status and error code and frees the answer. */
static void
expect(int st, json_t **pans, int status, const char *code)
{
	json_t *ans = *pans;

	*pans = NULL;
	if (st != status || strcmp(code_of(ans), code) != 0)
		print_message("got %d %s, want %d %s\n", st, bvt_js(ans),
			      status, code);
	assert_int_equal(st, status);
	assert_string_equal(code_of(ans), code);
	json_decref(ans);
}

static long long
sql_int(const char *sql, const char *p1, const char *p2)
{
	const char *params[2] = {p1, p2};

	return bvt_sql_int(env.db, sql, p2 ? 2 : p1 ? 1 : 0, params);
}

/* A string member of an ok answer, copied into out. */
static void
take(json_t *ans, const char *name, char out[64])
{
	const char *v = json_string_value(json_object_get(ans, name));

	if (!v)
		print_message("no %s in %s\n", name, bvt_js(ans));
	assert_non_null(v);
	snprintf(out, 64, "%s", v);
	json_decref(ans);
}

static void
new_account(const struct bvt_tenant *t, char out[64])
{
	json_t *a = NULL;

	assert_int_equal(call(t, "POST", "/v1/fagsystem/accounts", "{}", &a),
			 200);
	take(a, "account", out);
}

static void
new_case(const struct bvt_tenant *t, const char *number, char out[64])
{
	char body[128];
	json_t *a = NULL;

	snprintf(body, sizeof(body), "{\"case_number\": \"%s\"}", number);
	assert_int_equal(call(t, "POST", "/v1/fagsystem/cases", body, &a), 200);
	take(a, "case", out);
}

static int
roster_add(const struct bvt_tenant *t, const char *c, const char *acc,
	   const char *role, const char *name, json_t **out)
{
	char body[512];

	snprintf(body, sizeof(body),
		 "{\"case\": \"%s\", \"account\": \"%s\", \"role\": \"%s\", "
		 "\"name\": \"%s\"}",
		 c, acc, role, name);
	return call(t, "POST", "/v1/fagsystem/roster", body, out);
}

static long long
audit_by_api(const char *action)
{
	return sql_int("SELECT count(*) FROM audit_log WHERE action = $1 AND "
		       "actor = 'fagsystem:" SUB "'",
		       action, NULL);
}

/* Everything a refused request could have changed, as one number. */
static long long
state_sum(void)
{
	return sql_int("SELECT (SELECT count(*) FROM audit_log) + "
		       "(SELECT count(*) FROM cases) * 1000 + "
		       "(SELECT count(*) FROM case_roster) * 100000 + "
		       "(SELECT count(*) FROM case_protections) * 10000000 + "
		       "(SELECT count(*) FROM conversations) * 1000000000 + "
		       "(SELECT count(*) FROM accounts) * 100000000000",
		       NULL, NULL);
}

/* Shared by the tests: A's Elisa case, and B's case and account. */
static char a_case[64], elisa[64], marthe[64], randi[64], camilla[64], kari[64];
static char b_case[64], b_person[64];

static void
t_endpoints(void **state)
{
	char path[128], body[512], conv[64], conv2[64];
	json_t *a = NULL, *v;
	struct bvt_dev d;

	(void)state;
	new_account(&env.tenant, elisa);
	new_account(&env.tenant, marthe);
	new_account(&env.tenant, randi);
	new_account(&env.tenant, camilla);
	new_account(&env.tenant, kari);
	assert_int_equal(sql_int("SELECT count(*) FROM accounts WHERE "
				 "tenant_id = $1::uuid AND kind = 'person'",
				 env.tenant.id, NULL),
			 5);
	assert_int_equal(audit_by_api("account.create"), 5);
	/* The account is a real one: a device enrolls into it. */
	assert_int_equal(bvt_new_device(env.relay.port, &env.tenant, elisa, &d),
			 0);
	assert_string_equal(d.account, elisa);

	new_case(&env.tenant, "2026/0417", a_case);
	assert_int_equal(sql_int("SELECT count(*) FROM cases WHERE id = "
				 "$1::uuid AND tenant_id = $2::uuid AND "
				 "case_number = '2026/0417'",
				 a_case, env.tenant.id),
			 1);
	assert_int_equal(audit_by_api("case.create"), 1);
	/* The same case number again: 409. */
	assert_int_equal(call(&env.tenant, "POST", "/v1/fagsystem/cases",
			      "{\"case_number\": \"2026/0417\"}", &a),
			 409);
	expect(409, &a, 409, "BV_EALREADY");

	assert_int_equal(
		roster_add(&env.tenant, a_case, elisa, "child", "Elisa", &a),
		200);
	json_decref(a);
	assert_int_equal(
		roster_add(&env.tenant, a_case, marthe, "parent", "Marthe", &a),
		200);
	json_decref(a);
	assert_int_equal(roster_add(&env.tenant, a_case, randi, "foster_parent",
				    "Randi", &a),
			 200);
	json_decref(a);
	assert_int_equal(roster_add(&env.tenant, a_case, camilla, "caseworker",
				    "Camilla", &a),
			 200);
	json_decref(a);
	assert_int_equal(
		roster_add(&env.tenant, a_case, kari, "caseworker", "Kari", &a),
		200);
	json_decref(a);
	assert_int_equal(sql_int("SELECT count(*) FROM case_roster WHERE "
				 "case_id = $1::uuid",
				 a_case, NULL),
			 5);
	assert_int_equal(audit_by_api("roster.add"), 3);
	assert_int_equal(audit_by_api("team.join"), 2);
	/* Twice: 409; a role that does not exist: 400 BV_EINVAL. */
	expect(roster_add(&env.tenant, a_case, elisa, "child", "Elisa", &a), &a,
	       409, "BV_EALREADY");
	{
		char extra[64];

		new_account(&env.tenant, extra);
		expect(roster_add(&env.tenant, a_case, extra, "king", "X", &a),
		       &a, 400, "BV_EINVAL");
	}

	/* Randi is protected from Marthe. */
	snprintf(body, sizeof(body),
		 "{\"case\": \"%s\", \"protected\": \"%s\", \"from\": \"%s\"}",
		 a_case, randi, marthe);
	assert_int_equal(call(&env.tenant, "POST", "/v1/fagsystem/protections",
			      body, &a),
			 200);
	json_decref(a);
	assert_int_equal(sql_int("SELECT count(*) FROM case_protections WHERE "
				 "protected_id = $1::uuid AND from_id = "
				 "$2::uuid",
				 randi, marthe),
			 1);
	assert_int_equal(audit_by_api("protection.add"), 1);

	/* Conversations: a team one for Elisa by Camilla; citizens
	 * Elisa + Randi; Marthe + Randi refused (protected, 404). */
	snprintf(body, sizeof(body),
		 "{\"case\": \"%s\", \"by\": \"%s\", \"kind\": \"team\", "
		 "\"members\": [\"%s\"]}",
		 a_case, camilla, elisa);
	assert_int_equal(call(&env.tenant, "POST",
			      "/v1/fagsystem/conversations", body, &a),
			 200);
	take(a, "conversation", conv);
	snprintf(body, sizeof(body),
		 "{\"case\": \"%s\", \"by\": \"%s\", \"kind\": \"citizens\", "
		 "\"members\": [\"%s\", \"%s\"]}",
		 a_case, camilla, elisa, randi);
	assert_int_equal(call(&env.tenant, "POST",
			      "/v1/fagsystem/conversations", body, &a),
			 200);
	take(a, "conversation", conv2);
	snprintf(body, sizeof(body),
		 "{\"case\": \"%s\", \"by\": \"%s\", \"kind\": \"citizens\", "
		 "\"members\": [\"%s\", \"%s\"]}",
		 a_case, camilla, marthe, randi);
	expect(call(&env.tenant, "POST", "/v1/fagsystem/conversations", body,
		    &a),
	       &a, 404, "BV_ENOACCOUNT");
	/* by must be staff: Elisa asking for her own team conversation
	 * through the fagsystem is refused. */
	snprintf(body, sizeof(body),
		 "{\"case\": \"%s\", \"by\": \"%s\", \"kind\": \"team\", "
		 "\"members\": [\"%s\"]}",
		 a_case, elisa, elisa);
	expect(call(&env.tenant, "POST", "/v1/fagsystem/conversations", body,
		    &a),
	       &a, 404, "BV_ENOACCOUNT");
	assert_int_equal(sql_int("SELECT count(*) FROM conversations WHERE "
				 "case_id = $1::uuid",
				 a_case, NULL),
			 2);
	assert_int_equal(audit_by_api("conversation.create"), 2);

	/* Camilla leaves the case. */
	snprintf(body, sizeof(body), "{\"case\": \"%s\", \"account\": \"%s\"}",
		 a_case, camilla);
	assert_int_equal(call(&env.tenant, "POST",
			      "/v1/fagsystem/roster/remove", body, &a),
			 200);
	json_decref(a);
	expect(call(&env.tenant, "POST", "/v1/fagsystem/roster/remove", body,
		    &a),
	       &a, 404, "BV_ENOACCOUNT");
	assert_int_equal(sql_int("SELECT count(*) FROM case_roster WHERE "
				 "case_id = $1::uuid AND account_id = $2::uuid",
				 a_case, camilla),
			 0);
	assert_int_equal(audit_by_api("team.leave"), 1);

	/* The case as JSON. */
	snprintf(path, sizeof(path), "/v1/fagsystem/cases/%s", a_case);
	assert_int_equal(call(&env.tenant, "GET", path, NULL, &a), 200);
	assert_non_null(a);
	print_message("%s\n", bvt_js(a));
	assert_string_equal(json_string_value(json_object_get(a, "case")),
			    a_case);
	assert_string_equal(
		json_string_value(json_object_get(a, "case_number")),
		"2026/0417");
	assert_int_equal(json_array_size(json_object_get(a, "roster")), 4);
	v = json_array_get(json_object_get(a, "roster"), 0);
	assert_string_equal(json_string_value(json_object_get(v, "account")),
			    kari);
	assert_string_equal(json_string_value(json_object_get(v, "role")),
			    "caseworker");
	assert_true(json_is_true(json_object_get(v, "staff")));
	v = json_array_get(json_object_get(a, "protections"), 0);
	assert_string_equal(json_string_value(json_object_get(v, "protected")),
			    randi);
	assert_string_equal(json_string_value(json_object_get(v, "from")),
			    marthe);
	assert_int_equal(json_array_size(json_object_get(a, "conversations")),
			 2);
	v = json_array_get(json_object_get(a, "conversations"), 0);
	assert_string_equal(
		json_string_value(json_object_get(v, "conversation")), conv);
	assert_string_equal(json_string_value(json_object_get(v, "kind")),
			    "team");
	assert_string_equal(json_string_value(json_object_get(v, "created_by")),
			    camilla);
	assert_int_equal(json_array_size(json_object_get(v, "members")), 1);
	json_decref(a);
	/* The GET is an export: exactly one case.export entry, by the API,
	 * in the case's tenant with the case as subject, and nothing of the
	 * case (names, people) in its detail. */
	assert_int_equal(audit_by_api("case.export"), 1);
	assert_int_equal(sql_int("SELECT count(*) FROM audit_log WHERE action "
				 "= 'case.export' AND actor = 'fagsystem:" SUB
				 "' AND tenant_id = $1::uuid AND subject = $2 "
				 "AND detail = '{\"form\": \"json\"}'",
				 env.tenant.id, a_case),
			 1);
	assert_int_equal(sql_int("SELECT count(*) FROM audit_log WHERE action "
				 "= 'case.export'",
				 NULL, NULL),
			 1);
	/* `admin case-export` prints the same bytes as the API answers. */
	{
		const char *args[] = {"--database",  env.db,   "admin",
				      "case-export", "--case", a_case,
				      NULL};
		char *o = NULL, *api = answer_copy();

		assert_int_equal(bvt_relay_cmd(&o, args), 0);
		assert_non_null(o);
		assert_string_equal(o, api);
		free(o);
		free(api);
	}

	/* The actor stays with the API's own transactions: enrollments on
	 * the same database connection name their token, not the API. */
	assert_int_equal(sql_int("SELECT count(*) FROM audit_log WHERE action "
				 "LIKE 'device.%' AND actor NOT LIKE 'token:%'",
				 NULL, NULL),
			 0);
	assert_true(sql_int("SELECT count(*) FROM audit_log WHERE action = "
			    "'device.enroll'",
			    NULL, NULL) >= 1);
	/* Nothing the API did is in the log under another actor. */
	assert_int_equal(
		sql_int("SELECT count(*) FROM audit_log WHERE actor LIKE "
			"'fagsystem:%' AND actor <> 'fagsystem:" SUB "'",
			NULL, NULL),
		0);
	{
		const char *args[] = {"--database", env.db, "audit", "verify",
				      NULL};

		assert_int_equal(bvt_relay_cmd(NULL, args), 0);
	}
}

/* Tenant B: a case and a person of its own. */
static void
other_tenant(void)
{
	json_t *a = NULL;

	if (b_case[0])
		return;
	new_account(&other, b_person);
	new_case(&other, "2026/0417", b_case); /* the same number: fine */
	assert_int_equal(
		roster_add(&other, b_case, b_person, "child", "Berit", &a),
		200);
	json_decref(a);
}

static void
t_other_tenant(void **state)
{
	char path[128], body[512], *probe;
	json_t *a = NULL;
	long long before, exports;

	(void)state;
	other_tenant();
	exports = sql_int("SELECT count(*) FROM audit_log WHERE action = "
			  "'case.export'",
			  NULL, NULL);
	before = state_sum();
	/* A on B's case: roster, remove, protect, conversation, show. */
	expect(roster_add(&env.tenant, b_case, elisa, "child", "Elisa", &a), &a,
	       404, "BV_ENOACCOUNT");
	snprintf(body, sizeof(body), "{\"case\": \"%s\", \"account\": \"%s\"}",
		 b_case, b_person);
	expect(call(&env.tenant, "POST", "/v1/fagsystem/roster/remove", body,
		    &a),
	       &a, 404, "BV_ENOACCOUNT");
	snprintf(body, sizeof(body),
		 "{\"case\": \"%s\", \"protected\": \"%s\", \"from\": \"%s\"}",
		 b_case, b_person, b_person);
	expect(call(&env.tenant, "POST", "/v1/fagsystem/protections", body, &a),
	       &a, 404, "BV_ENOACCOUNT");
	snprintf(body, sizeof(body),
		 "{\"case\": \"%s\", \"by\": \"%s\", \"kind\": \"team\", "
		 "\"members\": [\"%s\"]}",
		 b_case, kari, b_person);
	expect(call(&env.tenant, "POST", "/v1/fagsystem/conversations", body,
		    &a),
	       &a, 404, "BV_ENOACCOUNT");
	snprintf(path, sizeof(path), "/v1/fagsystem/cases/%s", b_case);
	expect(call(&env.tenant, "GET", path, NULL, &a), &a, 404,
	       "BV_ENOACCOUNT");
	probe = answer_copy();
	/* A's case with B's person. */
	expect(roster_add(&env.tenant, a_case, b_person, "child", "Berit", &a),
	       &a, 404, "BV_ENOACCOUNT");
	/* B on A's case, and a case that does not exist at all: the same. */
	expect(roster_add(&other, a_case, b_person, "child", "Berit", &a), &a,
	       404, "BV_ENOACCOUNT");
	snprintf(path, sizeof(path), "/v1/fagsystem/cases/%s", a_case);
	expect(call(&other, "GET", path, NULL, &a), &a, 404, "BV_ENOACCOUNT");
	assert_string_equal(last_answer, probe);
	expect(call(&other, "GET",
		    "/v1/fagsystem/cases/00000000-0000-4000-8000-000000000000",
		    NULL, &a),
	       &a, 404, "BV_ENOACCOUNT");
	/* Other tenants' cases and none at all: the same bytes, and no
	 * export in the log (state_sum counts its entries). */
	assert_string_equal(last_answer, probe);
	free(probe);
	assert_int_equal(state_sum(), before);
	/* B's own case still answers B. */
	snprintf(path, sizeof(path), "/v1/fagsystem/cases/%s", b_case);
	assert_int_equal(call(&other, "GET", path, NULL, &a), 200);
	assert_int_equal(json_array_size(json_object_get(a, "roster")), 1);
	json_decref(a);
	/* Its export is B's, the only one since the probes. */
	assert_int_equal(sql_int("SELECT count(*) FROM audit_log WHERE action "
				 "= 'case.export'",
				 NULL, NULL),
			 exports + 1);
	assert_int_equal(sql_int("SELECT count(*) FROM audit_log WHERE action "
				 "= 'case.export' AND tenant_id = $1::uuid AND "
				 "subject = $2",
				 other.id, b_case),
			 1);
}

static void
t_credentials(void **state)
{
	const char *path = "/v1/fagsystem/cases";
	const char *body = "{\"case_number\": \"2026/9999\"}";
	char *tok, *enr, hdr[2048], *swapped;
	json_t *a = NULL;
	long long before;
	time_t now = time(NULL);
	struct bvt_conn *c;
	struct bvt_dev d;

	(void)state;
	before = state_sum();
	/* No Authorization; another scheme; garbage. */
	expect(call_tok(NULL, "POST", path, body, &a), &a, 401, "BV_EAUTH");
	snprintf(hdr, sizeof(hdr), "Authorization: Bearer x\r\n");
	{
		char *resp = NULL;

		assert_int_equal(bvt_http_request(env.relay.port, "POST", path,
						  hdr, body, strlen(body),
						  bvt_ms(BVT_TIMEOUT), &resp),
				 401);
		free(resp);
	}
	expect(call_tok("bvf1.garbage.garbage", "POST", path, body, &a), &a,
	       401, "BV_EAUTH");
	/* Signed by B's key but naming A. */
	tok = bvt_apitoken_make(env.tenant.id, other.sk, SUB, now + 60, "POST",
				path, body, strlen(body));
	expect(call_tok(tok, "POST", path, body, &a), &a, 401, "BV_EAUTH");
	free(tok);
	/* A tenant that does not exist. */
	tok = bvt_apitoken_make("00000000-0000-4000-8000-000000000000",
				env.tenant.sk, SUB, now + 60, "POST", path,
				body, strlen(body));
	expect(call_tok(tok, "POST", path, body, &a), &a, 401, "BV_EAUTH");
	free(tok);
	/* An enrollment token, as it is and with the API's prefix. */
	enr = bvt_token(&env.tenant, NULL);
	expect(call_tok(enr, "POST", path, body, &a), &a, 401, "BV_EAUTH");
	memcpy(enr, "bvf1", 4);
	expect(call_tok(enr, "POST", path, body, &a), &a, 401, "BV_EAUTH");
	free(enr);
	/* Expired; exp too far ahead. */
	tok = bvt_apitoken_make(env.tenant.id, env.tenant.sk, SUB, now - 5,
				"POST", path, body, strlen(body));
	expect(call_tok(tok, "POST", path, body, &a), &a, 401, "BV_EAUTH");
	free(tok);
	tok = bvt_apitoken_make(env.tenant.id, env.tenant.sk, SUB, now + 400,
				"POST", path, body, strlen(body));
	expect(call_tok(tok, "POST", path, body, &a), &a, 401, "BV_EAUTH");
	free(tok);
	/* Body, path and method changed after signing. */
	tok = bvt_apitoken_make(env.tenant.id, env.tenant.sk, SUB, now + 60,
				"POST", path, body, strlen(body));
	expect(call_tok(tok, "POST", path, "{\"case_number\": \"2026/9998\"}",
			&a),
	       &a, 401, "BV_EAUTH");
	expect(call_tok(tok, "POST", "/v1/fagsystem/accounts", body, &a), &a,
	       401, "BV_EAUTH");
	free(tok);
	tok = bvt_apitoken_make(env.tenant.id, env.tenant.sk, SUB, now + 60,
				"GET", "/v1/fagsystem/accounts", NULL, 0);
	expect(call_tok(tok, "POST", "/v1/fagsystem/accounts", "", &a), &a, 401,
	       "BV_EAUTH");
	free(tok);
	assert_int_equal(state_sum(), before);

	/* An API token is no enrollment token, with either prefix. */
	tok = bvt_apitoken_make(env.tenant.id, env.tenant.sk, SUB, now + 60,
				"POST", path, body, strlen(body));
	memset(&d, 0, sizeof(d));
	bvt_dev_keygen(&d);
	c = bvt_conn_open(env.relay.port);
	assert_non_null(c);
	BVT_ERR(bvt_enroll(c, &d, tok, 0), "BV_ETOKEN");
	bvt_conn_free(c);
	swapped = strdup(tok);
	assert_non_null(swapped);
	memcpy(swapped, "bvt1", 4);
	c = bvt_conn_open(env.relay.port);
	assert_non_null(c);
	BVT_ERR(bvt_enroll(c, &d, swapped, 0), "BV_ETOKEN");
	bvt_conn_free(c);
	free(swapped);
	assert_int_equal(state_sum(), before);

	/* Used once: the same token again is refused, nothing doubles. */
	assert_int_equal(call_tok(tok, "POST", path, body, &a), 200);
	json_decref(a);
	before = state_sum();
	expect(call_tok(tok, "POST", path, body, &a), &a, 401, "BV_EAUTH");
	assert_int_equal(state_sum(), before);
	free(tok);
	/* A token whose request failed is used up all the same. */
	tok = bvt_apitoken_make(env.tenant.id, env.tenant.sk, SUB, now + 60,
				"POST", path, body, strlen(body));
	expect(call_tok(tok, "POST", path, body, &a), &a, 409, "BV_EALREADY");
	expect(call_tok(tok, "POST", path, body, &a), &a, 401, "BV_EAUTH");
	free(tok);
	assert_int_equal(state_sum(), before);
}

static void
t_bodies_and_limits(void **state)
{
	char *big, body[4096], *resp = NULL;
	json_t *a = NULL;
	long long before;
	size_t i;
	int n;

	(void)state;
	before = state_sum();
	expect(call(&env.tenant, "POST", "/v1/fagsystem/cases", "{\"case_nu",
		    &a),
	       &a, 400, "BV_EJSON");
	expect(call(&env.tenant, "POST", "/v1/fagsystem/cases", "[1]", &a), &a,
	       400, "BV_EJSON");
	assert_int_equal(call(&env.tenant, "POST", "/v1/fagsystem/cases",
			      "{\"case\": 1}", &a),
			 400);
	assert_string_equal(code_of(a), "BV_EFIELD");
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(a, "error"), "field")),
			    "case_number");
	json_decref(a);
	expect(call(&env.tenant, "POST", "/v1/fagsystem/roster",
		    "{\"case\": \"not-a-uuid\"}", &a),
	       &a, 400, "BV_EFIELD");
	/* A case number the schema refuses. */
	expect(call(&env.tenant, "POST", "/v1/fagsystem/cases",
		    "{\"case_number\": \"/bad\"}", &a),
	       &a, 400, "BV_EINVAL");
	/* More members than allowed. */
	n = snprintf(body, sizeof(body),
		     "{\"case\": \"%s\", \"by\": \"%s\", \"kind\": "
		     "\"citizens\", \"members\": [",
		     a_case, kari);
	for (i = 0; i < 33; i++)
		n += snprintf(body + n, sizeof(body) - (size_t)n, "%s\"%s\"",
			      i ? ", " : "", elisa);
	snprintf(body + n, sizeof(body) - (size_t)n, "]}");
	expect(call(&env.tenant, "POST", "/v1/fagsystem/conversations", body,
		    &a),
	       &a, 400, "BV_ETOOMANY");
	/* No such endpoint, wrong method, a query string. */
	expect(call(&env.tenant, "POST", "/v1/fagsystem/nothing", "{}", &a), &a,
	       404, "BV_EOP");
	expect(call(&env.tenant, "GET", "/v1/fagsystem/cases", NULL, &a), &a,
	       404, "BV_EOP");
	expect(call(&env.tenant, "POST", "/v1/fagsystem/accounts?x=1", "{}",
		    &a),
	       &a, 404, "BV_EOP");
	assert_int_equal(state_sum(), before);

	/* 16 KiB + 1: 413, and the relay goes on. */
	big = malloc(1u << 21);
	assert_non_null(big);
	memset(big, ' ', 1u << 21);
	big[0] = '{';
	big[16384] = '}';
	big[16385] = '\0';
	expect(call(&env.tenant, "POST", "/v1/fagsystem/accounts", big, &a), &a,
	       413, "BV_EFRAME");
	/* Exactly 16 KiB is fine. */
	big[16383] = '}';
	big[16384] = '\0';
	assert_int_equal(
		call(&env.tenant, "POST", "/v1/fagsystem/accounts", big, &a),
		200);
	json_decref(a);
	before = state_sum();
	/* Above 1 MiB the relay hangs up without reading it. */
	assert_int_equal(bvt_http_request(env.relay.port, "POST",
					  "/v1/fagsystem/accounts", NULL, big,
					  (1u << 21) - 1, bvt_ms(BVT_TIMEOUT),
					  &resp),
			 -1);
	free(resp);
	free(big);
	assert_int_equal(bvt_http_get(env.relay.port, "/healthz",
				      bvt_ms(BVT_TIMEOUT), NULL),
			 200);
	assert_int_equal(state_sum(), before);
	{
		char acc[64];

		new_account(&env.tenant, acc);
	}
}

/* `bvchat-relay admin api-token`, as an operator would use it with curl. */
static void
t_admin_api_token(void **state)
{
	char key[512], bodyf[512], kj[512], *b64, *tok = NULL;
	const char *body = "{\"case_number\": \"2026/0500\"}";
	json_t *a = NULL;
	FILE *f;
	size_t n;

	(void)state;
	snprintf(key, sizeof(key), "%s/tenant.key", bvt_tmpdir());
	snprintf(bodyf, sizeof(bodyf), "%s/body.json", bvt_tmpdir());
	b64 = bvt_b64(env.tenant.sk, 64);
	snprintf(kj, sizeof(kj), "{\"tenant\": \"%s\", \"secret_key\": \"%s\"}",
		 env.tenant.id, b64);
	free(b64);
	f = fopen(key, "w");
	assert_non_null(f);
	fputs(kj, f);
	fclose(f);
	assert_int_equal(chmod(key, 0600), 0);
	f = fopen(bodyf, "w");
	assert_non_null(f);
	fputs(body, f);
	fclose(f);
	{
		const char *args[] = {"admin",	     "api-token",
				      "--key",	     key,
				      "--method",    "POST",
				      "--path",	     "/v1/fagsystem/cases",
				      "--body-file", bodyf,
				      "--sub",	     "ola@kommune.no",
				      NULL};

		assert_int_equal(bvt_relay_cmd(&tok, args), 0);
	}
	assert_non_null(tok);
	n = strcspn(tok, "\n");
	tok[n] = '\0';
	assert_int_equal(call_tok(tok, "POST", "/v1/fagsystem/cases", body, &a),
			 200);
	json_decref(a);
	free(tok);
	assert_int_equal(sql_int("SELECT count(*) FROM audit_log WHERE "
				 "action = 'case.create' AND actor = "
				 "'fagsystem:ola@kommune.no'",
				 NULL, NULL),
			 1);
	{
		const char *args[] = {"admin",	  "api-token", "--key",	 key,
				      "--method", "PUT",       "--path", "/x",
				      "--sub",	  "a",	       NULL};

		assert_int_equal(bvt_relay_cmd(NULL, args), 2);
	}
}

static int
setup(void **state)
{
	(void)state;
	if (bvt_pg_start() < 0)
		return -1;
	if (bvt_env_init(&env, NULL) < 0)
		return -1;
	return bvt_tenant_create(env.db, "annen kommune", &other);
}

static int
teardown(void **state)
{
	(void)state;
	bvt_env_cleanup(&env);
	free(last_answer);
	last_answer = NULL;
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_endpoints),
		cmocka_unit_test(t_other_tenant),
		cmocka_unit_test(t_credentials),
		cmocka_unit_test(t_bodies_and_limits),
		cmocka_unit_test(t_admin_api_token),
	};

	return bvt_done(cmocka_run_group_tests_name("20-fagsystem-api", tests,
						    setup, teardown));
}
