/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 24-invites: invite codes for a person without eID (docs/protocol.md
 * "Invites", docs/fagsystem-api.md, `admin invite`) against a real
 * PostgreSQL and relays. Codes are made through the fagsystem API and by
 * the operator; a code is redeemed for a ticket and a real libbvchat
 * device enrolls with it into the citizen's account and writes to the case
 * team. Then every refusal: a second redemption, an expired code, unknown
 * and malformed codes (all the same bytes), another tenant's, a staff
 * member's and an archive account, a used and an expired ticket, a foreign
 * Origin; the failure limit per client address (also behind a proxy's
 * X-Forwarded-For, and an IPv6 /64 as one address); a relay without the
 * key. Last, the relays' debug logs and a pg_dump are searched for every
 * code and ticket, and the audit chain is verified.
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
#include <sodium.h>

#include "client_peer.h"

#define SUB	"kari.nordmann"
#define ORIGIN	"https://chat.kommune.example"
#define REDEEM	"/v1/invites/redeem"
#define INVITES "/v1/fagsystem/invites"

static char keyfile[512];
static struct bvt_relay tight; /* 3 failures an hour, behind a "proxy" */
static struct bvt_relay nokey; /* no invite_key_file */
static struct bvt_tenant other;
static char *einvite; /* the bytes of every BV_EINVITE answer */

/* Codes and tickets seen, searched for in logs and the dump at the end. */
#define MAXSECRETS 64
static char *secrets[MAXSECRETS];
static int nsecrets;

static void
keep_secret(const char *s)
{
	assert_true(nsecrets < MAXSECRETS);
	secrets[nsecrets++] = strdup(s);
}

/* ------------------------------------------------------------ helpers */

/* A fagsystem API request of tenant t with a fresh token; the answer's
 * JSON in *out. Returns the status. */
static int
api(const struct bvt_tenant *t, int port, const char *path, const char *body,
    json_t **out)
{
	char *tok = bvt_apitoken_make(t->id, t->sk, SUB, time(NULL) + 60,
				      "POST", path, body, strlen(body));
	char hdr[2048], *resp = NULL;
	int st;

	assert_non_null(tok);
	snprintf(hdr, sizeof(hdr), "Authorization: Bvchat-Fagsystem %s\r\n",
		 tok);
	st = bvt_http_request(port, "POST", path, hdr, body, strlen(body),
			      bvt_ms(BVT_TIMEOUT), &resp);
	free(tok);
	*out = resp ? json_loads(resp, 0, NULL) : NULL;
	free(resp);
	return st;
}

static const char *
code_of(const json_t *j)
{
	const char *c = json_string_value(
		json_object_get(json_object_get(j, "error"), "code"));

	return c ? c : "";
}

static void
new_account(const struct bvt_tenant *t, char out[64])
{
	json_t *a = NULL;

	assert_int_equal(
		api(t, env.relay.port, "/v1/fagsystem/accounts", "{}", &a),
		200);
	snprintf(out, 64, "%s",
		 json_string_value(json_object_get(a, "account")));
	assert_int_equal(strlen(out), 36);
	json_decref(a);
}

/* An invite through the fagsystem API: status, and the code in code. */
static int
invite_api(const struct bvt_tenant *t, const char *account, const char *ttl,
	   char code[32], json_t **ans)
{
	char body[256];
	json_t *a = NULL;
	int st;

	snprintf(body, sizeof(body), "{\"account\": \"%s\"%s%s}", account,
		 ttl ? ", \"ttl_s\": " : "", ttl ? ttl : "");
	st = api(t, env.relay.port, INVITES, body, &a);
	if (code)
		code[0] = '\0';
	if (st == 200) {
		const char *c = json_string_value(json_object_get(a, "code"));

		assert_non_null(c);
		snprintf(code, 32, "%s", c);
		keep_secret(code);
	}
	if (ans)
		*ans = a;
	else
		json_decref(a);
	return st;
}

/* 1 when code looks as documented: XXXXX-XXXXX of 0-9 A-Z without ILOU. */
static int
code_format_ok(const char *c)
{
	size_t i;

	if (strlen(c) != 11 || c[5] != '-')
		return 0;
	for (i = 0; i < 11; i++)
		if (i != 5 && !strchr("0123456789ABCDEFGHJKMNPQRSTVWXYZ", c[i]))
			return 0;
	return 1;
}

/* POST /v1/invites/redeem on port with a raw body; the answer's bytes in
 * *body (free()). */
static int
redeem_raw(int port, const char *json, const char *headers, char **body)
{
	return bvt_http_request(port, "POST", REDEEM, headers, json,
				strlen(json), bvt_ms(BVT_TIMEOUT), body);
}

/* Redeems code (as a person typed it); the ticket into ticket on 200. */
static int
redeem(int port, const char *code, const char *headers, char ticket[64],
       char **raw)
{
	char body[256], *resp = NULL;
	json_t *a;
	int st;

	snprintf(body, sizeof(body), "{\"code\": \"%s\"}", code);
	st = redeem_raw(port, body, headers, &resp);
	if (ticket)
		ticket[0] = '\0';
	if (st == 200) {
		a = json_loads(resp, 0, NULL);
		assert_non_null(a);
		assert_true(json_integer_value(json_object_get(a, "expires")) >
			    time(NULL));
		snprintf(ticket, 64, "%s",
			 json_string_value(json_object_get(a, "token")));
		assert_int_equal(strncmp(ticket, "bvi1.", 5), 0);
		assert_int_equal(strlen(ticket), 48);
		keep_secret(ticket);
		json_decref(a);
	}
	if (raw)
		*raw = resp;
	else
		free(resp);
	return st;
}

/* The answer must be the one BV_EINVITE answer, byte for byte. */
static void
expect_einvite(int port, const char *code, const char *headers)
{
	char *raw = NULL;
	int st = redeem(port, code, headers, NULL, &raw);

	if (st != 404 || !raw || strcmp(raw, einvite) != 0)
		fail_msg("\"%s\": %d %s, want 404 %s", code, st,
			 raw ? raw : "-", einvite);
	free(raw);
}

static long long
sql1(const char *sql, const char *p1)
{
	const char *params[1] = {p1};

	return bvt_sql_int(env.db, sql, p1 ? 1 : 0, params);
}

/* An enroll with ticket on a raw connection; the response. */
static json_t *
enroll_raw(int port, const char *ticket, struct bvt_dev *d)
{
	struct bvt_conn *c = bvt_conn_open(port);
	json_t *r;

	assert_non_null(c);
	bvt_dev_keygen(d);
	r = bvt_enroll(c, d, ticket, 0);
	bvt_conn_free(c);
	return r;
}

/* `bvchat-relay --invite_key_file K --database DB admin invite ARGS…`:
 * exit status; stdout's first two lines in code and expires. */
static int
admin_invite(const char *key, const char *account, const char *ttl,
	     char code[32], char expires[64])
{
	const char *args[12];
	char *out = NULL;
	int n = 0, rc;

	if (key) {
		args[n++] = "--invite_key_file";
		args[n++] = key;
	}
	args[n++] = "--database";
	args[n++] = env.db;
	args[n++] = "admin";
	args[n++] = "invite";
	args[n++] = "--account";
	args[n++] = account;
	if (ttl) {
		args[n++] = "--ttl";
		args[n++] = ttl;
	}
	args[n] = NULL;
	rc = bvt_relay_cmd(&out, args);
	code[0] = expires[0] = '\0';
	if (rc == 0 && out) {
		assert_int_equal(
			sscanf(out, "%31s\nexpires %63s", code, expires), 2);
		keep_secret(code);
	}
	free(out);
	return rc;
}

/* ------------------------------------------------------------- fixture */

static int
group_setup(void **state)
{
	unsigned char key[32];
	char hex[65];
	const char *args[] = {"--invite_key_file",
			      keyfile,
			      "--widget_origins",
			      ORIGIN,
			      "--invite_failures_per_hour",
			      "1000",
			      "--log_level",
			      "debug",
			      NULL};
	const char *tight_args[] = {"--invite_key_file",
				    keyfile,
				    "--invite_failures_per_hour",
				    "3",
				    "--client_ip_header",
				    "X-Forwarded-For",
				    "--log_level",
				    "debug",
				    NULL};
	FILE *f;

	if (sodium_init() < 0)
		return -1;
	snprintf(keyfile, sizeof(keyfile), "%s/invite.key", bvt_tmpdir());
	randombytes_buf(key, sizeof(key));
	sodium_bin2hex(hex, sizeof(hex), key, sizeof(key));
	f = fopen(keyfile, "w");
	if (!f)
		return -1;
	fprintf(f, "%s\n", hex);
	fclose(f);
	chmod(keyfile, 0600);
	if (setup_relay(state, args) < 0)
		return -1;
	if (bvt_tenant_create(env.db, "B kommune", &other) < 0)
		return -1;
	if (bvt_relay_start(&tight, env.db, tight_args) < 0)
		return -1;
	return bvt_relay_start(&nokey, env.db, NULL);
}

static int
group_teardown(void **state)
{
	int i;

	bvt_relay_term(&tight, bvt_ms(30000));
	bvt_relay_term(&nokey, bvt_ms(30000));
	for (i = 0; i < nsecrets; i++)
		free(secrets[i]);
	free(einvite);
	return teardown(state);
}

/* -------------------------------------------------------------- tests */

static char child[64], worker[64], archive[64], b_person[64];
static char case_a[64];

/* Invites through the fagsystem API and the operator's command. */
static void
t_create(void **state)
{
	char code[32], body[512], expires[64];
	json_t *a = NULL;
	long long exp;

	(void)state;
	new_account(&env.tenant, child);
	new_account(&env.tenant, worker);
	new_account(&env.tenant, archive);
	new_account(&other, b_person);
	{
		const char *ca[] = {"case-create",   "--tenant",  env.tenant.id,
				    "--case-number", "2026/0006", NULL};
		const char *ar[] = {"archive-set", "--tenant", env.tenant.id,
				    "--account",   archive,    NULL};

		assert_int_equal(admin(case_a, sizeof(case_a), ca), 0);
		assert_int_equal(admin(NULL, 0, ar), 0);
	}
	snprintf(body, sizeof(body),
		 "{\"case\": \"%s\", \"account\": \"%s\", \"role\": \"child\", "
		 "\"name\": \"Feysal\"}",
		 case_a, child);
	assert_int_equal(api(&env.tenant, env.relay.port,
			     "/v1/fagsystem/roster", body, &a),
			 200);
	json_decref(a);
	snprintf(body, sizeof(body),
		 "{\"case\": \"%s\", \"account\": \"%s\", \"role\": "
		 "\"caseworker\", \"name\": \"Camilla\"}",
		 case_a, worker);
	assert_int_equal(api(&env.tenant, env.relay.port,
			     "/v1/fagsystem/roster", body, &a),
			 200);
	json_decref(a);

	/* 72 hours by default; the answer names the invite. */
	assert_int_equal(invite_api(&env.tenant, child, NULL, code, &a), 200);
	assert_true(code_format_ok(code));
	exp = json_integer_value(json_object_get(a, "expires"));
	assert_true(exp >= time(NULL) + 259200 - 60 &&
		    exp <= time(NULL) + 259200 + 5);
	assert_int_equal(
		strlen(json_string_value(json_object_get(a, "invite"))), 36);
	json_decref(a);
	assert_int_equal(invite_api(&env.tenant, child, "600", code, &a), 200);
	exp = json_integer_value(json_object_get(a, "expires"));
	assert_true(exp >= time(NULL) + 600 - 60 && exp <= time(NULL) + 605);
	json_decref(a);
	/* Lifetimes out of range, accounts not to be invited. */
	assert_int_equal(invite_api(&env.tenant, child, "59", code, &a), 400);
	assert_string_equal(code_of(a), "BV_EFIELD");
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(a, "error"), "field")),
			    "ttl_s");
	json_decref(a);
	assert_int_equal(invite_api(&env.tenant, child, "259201", code, NULL),
			 400);
	assert_int_equal(invite_api(&env.tenant, child, "\"600\"", code, NULL),
			 400);
	assert_int_equal(invite_api(&env.tenant, "nope", NULL, code, &a), 400);
	assert_string_equal(code_of(a), "BV_EFIELD");
	json_decref(a);
	{
		const char *refused[] = {
			worker, archive, b_person,
			"00000000-0000-4000-8000-000000000000"};
		size_t i;

		for (i = 0; i < 4; i++) {
			assert_int_equal(invite_api(&env.tenant, refused[i],
						    NULL, code, &a),
					 404);
			assert_string_equal(code_of(a), "BV_ENOACCOUNT");
			json_decref(a);
		}
	}
	/* Tenant B may not invite A's child either. */
	assert_int_equal(invite_api(&other, child, NULL, code, NULL), 404);
	assert_int_equal(sql1("SELECT count(*) FROM invites", NULL), 2);
	/* Audited, by the API's user, with the invite and never the code. */
	assert_int_equal(sql1("SELECT count(*) FROM audit_log WHERE action = "
			      "'invite.create' AND actor = 'fagsystem:" SUB
			      "' AND subject = $1 AND detail ? 'invite'",
			      child),
			 2);
	/* The database has a keyed hash: not even SHA-256 of the code. */
	{
		char canon[16];

		snprintf(canon, sizeof(canon), "%.5s%.5s", code, code + 6);
		assert_int_equal(sql1("SELECT count(*) FROM invites WHERE "
				      "code_hash = sha256(convert_to($1, "
				      "'UTF8'))",
				      canon),
				 0);
		assert_int_equal(sql1("SELECT count(*) FROM invites WHERE "
				      "code_hash = sha256(convert_to($1, "
				      "'UTF8'))",
				      code),
				 0);
	}

	/* The operator: the code and its expiry on stdout. */
	assert_int_equal(admin_invite(keyfile, child, "3600", code, expires),
			 0);
	assert_true(code_format_ok(code));
	assert_int_equal(strlen(expires), 20); /* 2026-11-23T05:55:10Z */
	assert_int_equal(sql1("SELECT count(*) FROM audit_log WHERE action = "
			      "'invite.create' AND actor LIKE 'admin:%' AND "
			      "subject = $1",
			      child),
			 1);
	assert_int_equal(admin_invite(keyfile, worker, NULL, code, expires), 1);
	assert_int_equal(admin_invite(keyfile, child, "30", code, expires), 2);
	assert_int_equal(admin_invite(NULL, child, NULL, code, expires), 2);
	assert_int_equal(sql1("SELECT count(*) FROM invites", NULL), 3);
}

/* A code through the API, redeemed as a person types it, enrolls a real
 * device that then talks to the case team. */
static void
t_redeem_enroll(void **state)
{
	struct peer kid, camilla;
	char code[32], typed[32], ticket[64], mid[BV_CLIENT_MESSAGE_ID_LEN + 1];
	char hdr[128], *raw = NULL;
	struct bvt_dev d;
	json_t *r;
	size_t i;

	(void)state;
	assert_int_equal(invite_api(&env.tenant, child, NULL, code, NULL), 200);
	/* Lower case, a space for the hyphen, spaces around. */
	for (i = 0; code[i]; i++)
		typed[i] = code[i] == '-' ? ' ' : (char)(code[i] | 0x20);
	typed[i] = '\0';
	snprintf(hdr, sizeof(hdr), "Origin: %s\r\n", ORIGIN);
	assert_int_equal(redeem(env.relay.port, typed, hdr, ticket, NULL), 200);
	assert_int_equal(sql1("SELECT count(*) FROM audit_log WHERE action = "
			      "'invite.redeem' AND actor LIKE 'invite:%' AND "
			      "subject = $1",
			      child),
			 1);

	/* libbvchat enrolls with the ticket as with any token. */
	memset(&kid, 0, sizeof(kid));
	peer_open(&kid, "kid");
	assert_int_equal(bv_client_enroll(kid.c, ticket), 0);
	if (!run_until(&kid.enrolled, 1, BVT_TIMEOUT))
		fail_msg("not enrolled (refused %u)", kid.refused);
	assert_string_equal(bv_client_account(kid.c), child);
	assert_int_equal(bv_client_device(kid.c), 1);
	assert_int_equal(sql1("SELECT count(*) FROM devices WHERE account_id = "
			      "$1::uuid",
			      child),
			 1);
	assert_int_equal(sql1("SELECT count(*) FROM audit_log WHERE action = "
			      "'device.enroll' AND actor LIKE 'invite:%' AND "
			      "subject = $1 || '/1'",
			      child),
			 1);

	/* The device is the child's on the case: it writes to the team. */
	memset(&camilla, 0, sizeof(camilla));
	enroll(&camilla, "camilla", worker, 0);
	assert_int_equal(sql1("SELECT count(*) FROM devices WHERE account_id = "
			      "$1::uuid",
			      worker),
			 1);
	snprintf(case_id, sizeof(case_id), "%.36s", case_a);
	case_team(&kid);
	peer_cases(&camilla);
	peer_cases(&kid);
	say(&kid, "Hei Camilla", mid);
	expect(&camilla, mid, &kid, "Hei Camilla");

	/* Used: the code again is refused, the ticket again too. */
	assert_int_equal(redeem(env.relay.port, code, NULL, NULL, &raw), 404);
	einvite = raw;
	print_message("refusal: %s", einvite);
	assert_non_null(strstr(einvite, "\"BV_EINVITE\""));
	assert_int_equal(sql1("SELECT attempts FROM invites WHERE used_at IS "
			      "NOT NULL AND account_id = $1::uuid",
			      child),
			 2);
	r = enroll_raw(env.relay.port, ticket, &d);
	bvt_assert_err(r, "BV_ETOKEN_USED");
	json_decref(r);
	/* A ticket nobody was given, and garbage that looks like one. */
	r = enroll_raw(env.relay.port,
		       "bvi1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &d);
	bvt_assert_err(r, "BV_ETOKEN");
	json_decref(r);
	r = enroll_raw(env.relay.port, "bvi1.short", &d);
	bvt_assert_err(r, "BV_ETOKEN");
	json_decref(r);
	peer_close(&camilla);
	peer_close(&kid);
}

/* Every refused code gets the same bytes; tickets expire. */
static void
t_refusals(void **state)
{
	static const char *const malformed[] = {
		"",
		"ABCDE",
		"ABCDE-FGHJKM",
		"ABCDE-FGHJU",
		"ABCDE_FGHJK",
		"ABCDE-FGHJ\\u00c5",
		"01234567890123456789012345678901234567890123456789012345678901"
		"23"
		"45",
	};
	char code[32], ticket[64], body[512], hdr[128], *raw = NULL;
	char fresh[64];
	struct bvt_dev d;
	json_t *r, *a = NULL;
	size_t i;

	(void)state;
	assert_non_null(einvite);
	/* Unknown and malformed. */
	expect_einvite(env.relay.port, "ABCDE-FGHJK", NULL);
	expect_einvite(env.relay.port, "00000-00000", NULL);
	for (i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++)
		expect_einvite(env.relay.port, malformed[i], NULL);
	/* Expired. */
	assert_int_equal(invite_api(&env.tenant, child, NULL, code, NULL), 200);
	assert_int_equal(bvt_sql_exec(env.db,
				      "UPDATE invites SET created_at = now() - "
				      "interval '2 hours', expires_at = now() "
				      "- interval '1 hour' WHERE used_at IS "
				      "NULL"),
			 0);
	expect_einvite(env.relay.port, code, NULL);
	/* An account that became staff after its invite was made. */
	new_account(&env.tenant, fresh);
	assert_int_equal(invite_api(&env.tenant, fresh, NULL, code, NULL), 200);
	snprintf(body, sizeof(body),
		 "{\"case\": \"%s\", \"account\": \"%s\", \"role\": "
		 "\"team_lead\", \"name\": \"Ny\"}",
		 case_a, fresh);
	assert_int_equal(api(&env.tenant, env.relay.port,
			     "/v1/fagsystem/roster", body, &a),
			 200);
	json_decref(a);
	expect_einvite(env.relay.port, code, NULL);

	/* Not a code at all: the request's own errors. */
	assert_int_equal(
		redeem_raw(env.relay.port, "{\"code\": 5}", NULL, &raw), 400);
	assert_non_null(strstr(raw, "BV_EFIELD"));
	free(raw);
	assert_int_equal(redeem_raw(env.relay.port, "code=ABCDE", NULL, &raw),
			 400);
	assert_non_null(strstr(raw, "BV_EJSON"));
	free(raw);
	assert_int_equal(bvt_http_request(env.relay.port, "GET", REDEEM, NULL,
					  NULL, 0, bvt_ms(BVT_TIMEOUT), &raw),
			 404);
	assert_non_null(strstr(raw, "BV_EOP"));
	free(raw);

	/* A page of another site: 403, and nothing is used up. */
	new_account(&env.tenant, fresh);
	assert_int_equal(invite_api(&env.tenant, fresh, NULL, code, NULL), 200);
	assert_int_equal(redeem(env.relay.port, code,
				"Origin: https://evil.example\r\n", NULL, &raw),
			 403);
	assert_non_null(strstr(raw, "BV_EORIGIN"));
	free(raw);
	assert_int_equal(sql1("SELECT attempts FROM invites WHERE account_id = "
			      "$1::uuid",
			      fresh),
			 0);
	snprintf(hdr, sizeof(hdr), "Origin: %s\r\n", ORIGIN);
	assert_int_equal(redeem(env.relay.port, code, hdr, ticket, NULL), 200);

	/* A ticket expires (15 minutes); then it enrolls nothing. */
	assert_int_equal(bvt_sql_exec(env.db,
				      "UPDATE invites SET ticket_expires_at = "
				      "now() - interval '1 second' WHERE "
				      "ticket_hash IS NOT NULL"),
			 0);
	r = enroll_raw(env.relay.port, ticket, &d);
	bvt_assert_err(r, "BV_ETOKEN_EXPIRED");
	json_decref(r);
	assert_int_equal(sql1("SELECT count(*) FROM devices WHERE account_id = "
			      "$1::uuid",
			      fresh),
			 0);
}

/* An admin's code redeemed on a raw connection: the device is there. */
static void
t_admin_code(void **state)
{
	char code[32], expires[64], ticket[64], other_child[64];
	struct bvt_dev d;
	json_t *r;

	(void)state;
	new_account(&env.tenant, other_child);
	assert_int_equal(
		admin_invite(keyfile, other_child, NULL, code, expires), 0);
	assert_int_equal(redeem(env.relay.port, code, NULL, ticket, NULL), 200);
	r = enroll_raw(env.relay.port, ticket, &d);
	bvt_assert_ok(r);
	json_decref(r);
	assert_string_equal(d.account, other_child);
	assert_string_equal(d.tenant, env.tenant.id);
	/* Another device of the same account needs another code. */
	expect_einvite(env.relay.port, code, NULL);
}

/* Failures per address: 3 an hour on the "proxied" relay. */
static void
t_rate_limit(void **state)
{
	char code[32], ticket[64], *raw = NULL, acc[64];
	const char *a = "X-Forwarded-For: 198.51.100.7, 10.0.0.1\r\n";
	const char *b = "X-Forwarded-For: 10.0.0.2\r\n";
	const char *v6a = "X-Forwarded-For: 2001:db8::1\r\n";
	const char *v6b = "X-Forwarded-For: 2001:db8::2\r\n";
	const char *v6c = "X-Forwarded-For: 2001:db8:0:1::1\r\n";
	json_t *j;
	int i;

	(void)state;
	new_account(&env.tenant, acc);
	assert_int_equal(invite_api(&env.tenant, acc, NULL, code, NULL), 200);
	/* 10.0.0.1 (the entry the nearest proxy added) fails three times;
	 * the fourth attempt, even with the right code, is 429. */
	for (i = 0; i < 3; i++)
		expect_einvite(tight.port, "ABCDE-FGHJK", a);
	assert_int_equal(redeem(tight.port, code, a, NULL, &raw), 429);
	j = json_loads(raw, 0, NULL);
	assert_string_equal(code_of(j), "BV_ERATE");
	assert_true(json_integer_value(json_object_get(
			    json_object_get(j, "error"), "retry_after_ms")) >
		    1000000);
	json_decref(j);
	free(raw);
	/* Malformed codes count too: the same address stays limited. */
	assert_int_equal(redeem(tight.port, "x", a, NULL, NULL), 429);
	/* The code is not used up: another address redeems it. */
	assert_int_equal(redeem(tight.port, code, b, ticket, NULL), 200);
	/* Successes do not count: b has all its failures left. */
	for (i = 0; i < 3; i++)
		expect_einvite(tight.port, "ABCDE-FGHJK", b);
	assert_int_equal(redeem(tight.port, "ABCDE-FGHJK", b, NULL, NULL), 429);
	/* One /64 is one address. */
	for (i = 0; i < 3; i++)
		expect_einvite(tight.port, "ABCDE-FGHJK", i % 2 ? v6a : v6b);
	assert_int_equal(redeem(tight.port, "ABCDE-FGHJK", v6a, NULL, NULL),
			 429);
	expect_einvite(tight.port, "ABCDE-FGHJK", v6c);
	/* The main relay has its own count (per relay process). */
	expect_einvite(env.relay.port, "ABCDE-FGHJK", a);
	{
		char *m = NULL;

		assert_int_equal(bvt_http_get(tight.port, "/metrics",
					      bvt_ms(BVT_TIMEOUT), &m),
				 200);
		assert_non_null(strstr(
			m, "bvchat_invite_redeems_total{result=\"ok\"} 1\n"));
		assert_non_null(strstr(
			m,
			"bvchat_invite_redeems_total{result=\"limited\"} 4\n"));
		free(m);
	}
}

/* Without invite_key_file there are no invites, not even their paths. */
static void
t_no_key(void **state)
{
	char *raw = NULL, body[128];
	json_t *a = NULL;

	(void)state;
	assert_int_equal(redeem_raw(nokey.port, "{\"code\": \"ABCDE-FGHJK\"}",
				    NULL, &raw),
			 404);
	assert_non_null(strstr(raw, "BV_EOP"));
	free(raw);
	snprintf(body, sizeof(body), "{\"account\": \"%s\"}", child);
	assert_int_equal(api(&env.tenant, nokey.port, INVITES, body, &a), 404);
	assert_string_equal(code_of(a), "BV_EOP");
	json_decref(a);
}

/* No code or ticket in any log or in the database; the audit chain holds. */
static void
t_canary(void **state)
{
	const struct bvt_relay *relays[] = {&env.relay, &tight, &nokey};
	size_t dlen, llen, r;
	char *dump, *log;
	int i;

	(void)state;
	assert_true(nsecrets >= 8);
	dump = bvt_pg_dump(env.db, &dlen);
	assert_non_null(dump);
	/* The search finds what is there. */
	assert_true(bvt_mem_contains(dump, dlen, child, strlen(child)));
	for (i = 0; i < nsecrets; i++) {
		const char *s = secrets[i];
		char canon[16];

		if (!strncmp(s, "bvi1.", 5)) {
			if (bvt_mem_contains(dump, dlen, s + 5, strlen(s + 5)))
				fail_msg("a ticket is in the dump");
		} else {
			snprintf(canon, sizeof(canon), "%.5s%.5s", s, s + 6);
			if (bvt_mem_contains(dump, dlen, s, strlen(s)) ||
			    bvt_mem_contains(dump, dlen, canon, 10))
				fail_msg("a code is in the dump");
		}
		for (r = 0; r < sizeof(relays) / sizeof(relays[0]); r++) {
			log = bvt_file_read(relays[r]->log, &llen);
			assert_non_null(log);
			if (bvt_mem_contains(log, llen, s, strlen(s)) ||
			    (!strncmp(s, "bvi1.", 5) &&
			     bvt_mem_contains(log, llen, s + 5, strlen(s + 5))))
				fail_msg(
					"a code or ticket is in a relay's log");
			free(log);
		}
	}
	free(dump);
	{
		const char *args[] = {"--database", env.db, "audit", "verify",
				      NULL};

		assert_int_equal(bvt_relay_cmd(NULL, args), 0);
	}
}

int
main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_create),
		cmocka_unit_test(t_redeem_enroll),
		cmocka_unit_test(t_refusals),
		cmocka_unit_test(t_admin_code),
		cmocka_unit_test(t_rate_limit),
		cmocka_unit_test(t_no_key),
		cmocka_unit_test(t_canary),
	};
	/* clang-format on */

	return bvt_done(
		cmocka_run_group_tests(tests, group_setup, group_teardown));
}
