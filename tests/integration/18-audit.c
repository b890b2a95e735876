/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 18-audit: the audit log of migrations/0002 against a real cluster and
 * relay. Enrollments, a reinstall and a device removal are logged with the
 * right actions, tenant and subject and without keys; SQL's bv_audit_hash()
 * gives the vectors pinned in tests/unit/relay/test_audit.c; UPDATE, DELETE
 * and TRUNCATE are refused; `audit verify` passes, and fails naming the seq
 * once the database superuser edits or deletes an entry behind the
 * triggers; a removed tail is caught only by --expect-head; `admin
 * case-show` and `case-export` each log one case.export by the admin, none
 * for a case that does not exist, and an edited export entry is caught;
 * concurrent appends from several connections never fork the chain or
 * leave a gap.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <cmocka.h>
#include <libpq-fe.h>

#include "bvtest.h"

/* The vector of test_audit.c's vec1(), which audit.c hashes in C. */
#define VEC1_HEX                                                               \
	"75e7c25b19291ec8843e1a3a369dc73a08d5b8ad0d3c0fa1b8bec1466289f272"

/* Set by the disabling superuser session: the triggers do not fire. */
#define BEHIND_TRIGGERS "SET session_replication_role = replica; "

static struct bvt_env env;

static int
setup(void **state)
{
	(void)state;
	return bvt_env_init(&env, NULL);
}

static int
teardown(void **state)
{
	(void)state;
	bvt_env_cleanup(&env);
	return 0;
}

static long long
q1(const char *sql)
{
	return bvt_sql_int(env.db, sql, 0, NULL);
}

/*
 * Runs `bvchat-relay --database DB audit ARGS…`; returns the exit status
 * and the output in *out (free()).
 */
static int
audit(char **out, const char *a1, const char *a2, const char *a3,
      const char *a4)
{
	const char *args[] = {
		"--database", env.db, "--log_level", "warn", "audit", a1, a2,
		a3,	      a4,     NULL};

	*out = NULL;
	return bvt_relay_cmd(out, args);
}

/* verify must pass; returns the head hash it printed (static). */
static const char *
verify_ok(void)
{
	static char head[65];
	char *out = NULL, *p;
	int st = audit(&out, "verify", NULL, NULL, NULL);

	if (st != 0 || out == NULL || strncmp(out, "audit: ok: ", 11) != 0)
		fail_msg("verify: exit %d: %s", st, out ? out : "(nothing)");
	p = strstr(out, "; head ");
	assert_non_null(p);
	p = strchr(p + 7, ' ');
	assert_non_null(p);
	assert_true(strlen(p + 1) >= 64);
	memcpy(head, p + 1, 64);
	head[64] = '\0';
	free(out);
	return head;
}

/* verify with args must fail with exit 1 and a line containing want. */
static void
verify_fails(const char *a1, const char *a2, const char *want)
{
	char *out = NULL;
	int st = audit(&out, "verify", a1, a2, NULL);

	if (st != 1 || out == NULL || strstr(out, want) == NULL)
		fail_msg("verify %s %s: exit %d, wanted 1 and \"%s\": %s",
			 a1 ? a1 : "", a2 ? a2 : "", st, want,
			 out ? out : "(nothing)");
	print_message("as expected: %s", out);
	free(out);
}

/* 1 when entry seq has that action, tenant and subject. */
static int
entry_is(long long seq, const char *action, const char *tenant,
	 const char *subject)
{
	char s[24];
	const char *p[4] = {s, action, tenant, subject};

	snprintf(s, sizeof(s), "%lld", seq);
	return bvt_sql_int(env.db,
			   "SELECT count(*) FROM audit_log WHERE seq = $1 "
			   "AND action = $2 AND tenant_id = $3::uuid "
			   "AND subject = $4",
			   4, p) == 1;
}

static void
subject_of(const struct bvt_dev *d, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s/%u", d->account, d->device);
}

/* Two enrollments, a second device, a reinstall, a removal. */
static void
make_history(struct bvt_dev *a, struct bvt_dev *b, struct bvt_dev *b2)
{
	struct bvt_dev fresh;
	struct bvt_conn *c;
	char *tok, sql[256];

	assert_int_equal(bvt_new_account(env.relay.port, &env.tenant, a), 0);
	assert_int_equal(bvt_new_account(env.relay.port, &env.tenant, b), 0);
	assert_int_equal(
		bvt_new_device(env.relay.port, &env.tenant, b->account, b2), 0);
	memset(&fresh, 0, sizeof(fresh));
	bvt_dev_keygen(&fresh);
	tok = bvt_token(&env.tenant, a->account);
	c = bvt_conn_open(env.relay.port);
	assert_non_null(c);
	BVT_OK(bvt_enroll(c, &fresh, tok, a->device));
	bvt_conn_free(c);
	free(tok);
	/* No relay path removes a device yet: an operator's SQL does. */
	snprintf(sql, sizeof(sql),
		 "BEGIN; SELECT set_config('bvchat.actor', 'ops:test', true); "
		 "DELETE FROM devices WHERE account_id = '%s' "
		 "AND device_id = %u; COMMIT",
		 b2->account, b2->device);
	assert_int_equal(bvt_sql_exec(env.db, sql), 0);
}

static void
t_devices_logged(void **state)
{
	struct bvt_dev a, b, b2;
	char sa[64], sb[64], sb2[64];
	const char *t = env.tenant.id;

	(void)state;
	assert_int_equal(q1("SELECT count(*) FROM audit_log"), 0);
	make_history(&a, &b, &b2);
	subject_of(&a, sa, sizeof(sa));
	subject_of(&b, sb, sizeof(sb));
	subject_of(&b2, sb2, sizeof(sb2));
	assert_int_equal(q1("SELECT count(*) FROM audit_log"), 5);
	assert_true(entry_is(1, "device.enroll", t, sa));
	assert_true(entry_is(2, "device.enroll", t, sb));
	assert_true(entry_is(3, "device.enroll", t, sb2));
	assert_true(entry_is(4, "device.reinstall", t, sa));
	assert_true(entry_is(5, "device.remove", t, sb2));
	assert_int_equal(q1("SELECT count(*) FROM audit_log WHERE seq = 4 "
			    "AND detail->>'identity_changed' = 'true'"),
			 1);
	/* Enrollments name the token (its jti, base64url) that allowed
	 * them; the removal, the operator's transaction. */
	assert_int_equal(q1("SELECT count(*) FROM audit_log WHERE seq <= 4 "
			    "AND actor ~ '^token:[A-Za-z0-9_-]{22}$'"),
			 4);
	assert_int_equal(q1("SELECT count(DISTINCT actor) FROM audit_log "
			    "WHERE seq <= 4"),
			 4);
	assert_int_equal(q1("SELECT count(*) FROM audit_log "
			    "WHERE seq = 5 AND actor = 'ops:test'"),
			 1);
	/* Ids only: no other keys in detail, no key bytes anywhere. */
	assert_int_equal(q1("SELECT count(*) FROM audit_log, "
			    "jsonb_object_keys(detail) k WHERE k NOT IN "
			    "('account', 'device', 'identity_changed')"),
			 0);
	assert_int_equal(q1("SELECT count(*) FROM audit_log l, devices d "
			    "WHERE strpos(l::text, encode(d.identity_key, "
			    "'hex')) > 0 OR strpos(l::text, "
			    "encode(d.auth_key, 'base64')) > 0"),
			 0);
	/* A failed enrollment (a used token) adds nothing. */
	{
		struct bvt_dev x;
		struct bvt_conn *c;
		char *tok = bvt_token(&env.tenant, NULL);

		memset(&x, 0, sizeof(x));
		bvt_dev_keygen(&x);
		c = bvt_conn_open(env.relay.port);
		assert_non_null(c);
		BVT_OK(bvt_enroll(c, &x, tok, 0));
		bvt_conn_free(c);
		bvt_dev_keygen(&x);
		c = bvt_conn_open(env.relay.port);
		assert_non_null(c);
		BVT_ERR(bvt_enroll(c, &x, tok, 0), "BV_ETOKEN_USED");
		bvt_conn_free(c);
		free(tok);
	}
	assert_int_equal(q1("SELECT count(*) FROM audit_log"), 6);
	verify_ok();
}

static void
t_sql_agrees(void **state)
{
	(void)state;
	/* vec1 of test_audit.c, hashed by SQL. */
	assert_int_equal(q1("SELECT count(*) WHERE bv_audit_hash(1, "
			    "'2026-01-02 03:04:05.678901+00', "
			    "'11111111-1111-4111-8111-111111111111', 'system', "
			    "'device.enroll', 'abc', "
			    "'{\"device\": 1, \"account\": \"x\"}', "
			    "decode(repeat('00', 32), 'hex')) = "
			    "decode('" VEC1_HEX "', 'hex')"),
			 1);
	/* Entries with every kind of field, verified in C. */
	assert_int_equal(
		bvt_sql_exec(env.db,
			     "BEGIN; SELECT set_config('bvchat.actor', "
			     "'ops:\xc3\xa5se', true); "
			     "SELECT bv_audit_append(NULL, 'test.null', NULL, "
			     "NULL); SELECT bv_audit_append("
			     "'00000000-0000-0000-0000-000000000000', "
			     "'test.all', 'x\ty', '{\"b\": [1, 2.50, null], "
			     "\"a\": \"\xc3\xb8\\n\", \"a\": 1}'); "
			     "SELECT bv_audit_append(NULL, 'test.empty', '', "
			     "'{}'); COMMIT"),
		0);
	assert_int_equal(q1("SELECT count(*) FROM audit_log "
			    "WHERE actor = 'ops:\xc3\xa5se'"),
			 3);
	verify_ok();
}

static void
t_refused(void **state)
{
	(void)state;
	assert_true(q1("SELECT bv_audit_append(NULL, 'test.x', 's', NULL)") ==
		    1);
	assert_int_equal(bvt_sql_exec(env.db, "UPDATE audit_log "
					      "SET subject = 't'"),
			 -1);
	assert_int_equal(bvt_sql_exec(env.db, "DELETE FROM audit_log"), -1);
	assert_int_equal(bvt_sql_exec(env.db, "TRUNCATE audit_log"), -1);
	/* A plain INSERT is chained by the trigger, whatever it claims. */
	assert_int_equal(
		bvt_sql_exec(env.db,
			     "INSERT INTO audit_log (seq, at, actor, action, "
			     "prev_hash, hash) VALUES (7, now(), 'forged', "
			     "'test.y', decode(repeat('00', 32), 'hex'), "
			     "decode(repeat('00', 32), 'hex'))"),
		0);
	assert_int_equal(q1("SELECT count(*) FROM audit_log WHERE seq = 2 "
			    "AND actor = 'system'"),
			 1);
	/* A rolled-back append leaves no gap. */
	assert_int_equal(bvt_sql_exec(env.db,
				      "BEGIN; SELECT bv_audit_append(NULL, "
				      "'test.z', NULL, NULL); ROLLBACK"),
			 0);
	assert_true(q1("SELECT bv_audit_append(NULL, 'test.x', 's', NULL)") ==
		    3);
	verify_ok();
}

static void
append_n(int n)
{
	char sql[128];
	int i;

	for (i = 0; i < n; i++) {
		snprintf(sql, sizeof(sql),
			 "SELECT bv_audit_append(NULL, 'test.n', '%d', "
			 "'{\"i\": %d}')",
			 i, i);
		assert_int_equal(bvt_sql_exec(env.db, sql), 0);
	}
}

static void
t_edited(void **state)
{
	(void)state;
	append_n(5);
	verify_ok();
	assert_int_equal(bvt_sql_exec(env.db, BEHIND_TRIGGERS
				      "UPDATE audit_log SET detail = "
				      "'{\"i\": 9}' WHERE seq = 3"),
			 0);
	verify_fails(NULL, NULL, "FAILED at seq 3: hash does not match");
	/* Rehashed as SQL would: the next link breaks instead. */
	assert_int_equal(
		bvt_sql_exec(env.db, BEHIND_TRIGGERS
			     "UPDATE audit_log SET hash = bv_audit_hash(seq, "
			     "at, tenant_id, actor, action, subject, detail, "
			     "prev_hash) WHERE seq = 3"),
		0);
	verify_fails(NULL, NULL, "FAILED at seq 4: broken link");
	/* --from past the damage trusts it; --from at it does not. */
	verify_fails("--from", "4", "FAILED at seq 4");
	{
		char *out = NULL;

		assert_int_equal(audit(&out, "verify", "--from", "5", NULL), 0);
		free(out);
	}
}

static void
t_deleted_middle(void **state)
{
	(void)state;
	append_n(5);
	verify_ok();
	assert_int_equal(bvt_sql_exec(env.db, BEHIND_TRIGGERS
				      "DELETE FROM audit_log WHERE seq = 2"),
			 0);
	verify_fails(NULL, NULL, "FAILED at seq 2: missing");
}

static void
t_deleted_tail(void **state)
{
	char head[65], older[65], *out = NULL;

	(void)state;
	append_n(3);
	snprintf(older, sizeof(older), "%s", verify_ok());
	append_n(2);
	snprintf(head, sizeof(head), "%s", verify_ok());
	/* An older noted head is fine: entries after it are new ones. */
	assert_int_equal(audit(&out, "verify", "--expect-head", older, NULL),
			 0);
	assert_non_null(strstr(out, "noted head at seq 3"));
	free(out);
	assert_int_equal(audit(&out, "verify", "--expect-head", head, NULL), 0);
	free(out);
	assert_int_equal(bvt_sql_exec(env.db, BEHIND_TRIGGERS
				      "DELETE FROM audit_log WHERE seq = 5"),
			 0);
	/* Plain verify cannot see it: what is left is a valid chain. */
	verify_ok();
	verify_fails("--expect-head", head, "is not in the chain");
	assert_int_equal(audit(&out, "verify", "--expect-head", older, NULL),
			 0);
	free(out);
}

static void
t_usage(void **state)
{
	char *out = NULL;

	(void)state;
	assert_int_equal(audit(&out, "verify", "--expect-head", "abc", NULL),
			 2);
	free(out);
	assert_int_equal(audit(&out, "verify", "--from", "0", NULL), 2);
	free(out);
	assert_int_equal(audit(&out, "verify", "--tenant", "x", NULL), 2);
	free(out);
	assert_int_equal(audit(&out, "verify", "--limit", "3", NULL), 2);
	free(out);
	assert_int_equal(audit(&out, "frobnicate", NULL, NULL, NULL), 2);
	free(out);
	assert_int_equal(audit(&out, "list", "--limit", "0", NULL), 2);
	free(out);
	/* An empty log verifies; its head is 32 zero bytes. */
	assert_string_equal(verify_ok(), "00000000000000000000000000000000"
					 "00000000000000000000000000000000");
}

static void
t_list(void **state)
{
	struct bvt_dev a, b, b2;
	char *out = NULL;
	size_t lines = 0;
	const char *p;

	(void)state;
	make_history(&a, &b, &b2);
	append_n(3);
	assert_int_equal(audit(&out, "list", "--limit", "2", NULL), 0);
	assert_non_null(out);
	for (p = out; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 2);
	assert_int_equal(strncmp(out, "7 ", 2), 0);
	free(out);
	assert_int_equal(audit(&out, "list", "--tenant", env.tenant.id, NULL),
			 0);
	assert_int_equal(strncmp(out, "1 ", 2), 0);
	assert_non_null(strstr(out, "device.reinstall"));
	assert_null(strstr(out, "test.n"));
	free(out);
	assert_int_equal(audit(&out, "verify", "--tenant", env.tenant.id, NULL),
			 0);
	assert_non_null(strstr(out, "5 of tenant"));
	free(out);
}

/* Runs `bvchat-relay --database DB admin A1 --case C`; returns the exit
 * status and stdout in *out (free()). */
static int
admin_case(char **out, const char *a1, const char *c)
{
	const char *args[] = {"--database", env.db, "admin", a1,
			      "--case",	    c,	    NULL};

	*out = NULL;
	return bvt_relay_cmd(out, args);
}

/* The number of case.export entries of case c by an admin in form f. */
static long long
admin_exports(const char *c, const char *f)
{
	const char *p[3] = {env.tenant.id, c, f};

	return bvt_sql_int(env.db,
			   "SELECT count(*) FROM audit_log WHERE action = "
			   "'case.export' AND actor LIKE 'admin:_%' AND "
			   "tenant_id = $1::uuid AND subject = $2 AND "
			   "detail = jsonb_build_object('form', $3::text)",
			   3, p);
}

static void
t_case_export(void **state)
{
	const char *none = "00000000-0000-4000-8000-000000000000";
	char case_id[64], seq[24], sql[256], *out = NULL;
	struct bvt_dev a;
	json_t *e;
	long long n;

	(void)state;
	{
		const char *args[] = {"case-create", "--tenant",
				      env.tenant.id, "--case-number",
				      "2026/0001",   NULL};

		assert_int_equal(
			bvt_admin(env.db, case_id, sizeof(case_id), args), 0);
	}
	assert_int_equal(bvt_new_account(env.relay.port, &env.tenant, &a), 0);
	{
		const char *args[] = {"roster-add", "--case",  case_id,
				      "--account",  a.account, "--role",
				      "child",	    "--name",  "Elisa",
				      NULL};

		assert_int_equal(bvt_admin(env.db, NULL, 0, args), 0);
	}
	n = q1("SELECT count(*) FROM audit_log");

	/* case-show: one export in text form, committed before it printed. */
	assert_int_equal(admin_case(&out, "case-show", case_id), 0);
	assert_non_null(out);
	assert_non_null(strstr(out, "child Elisa"));
	free(out);
	assert_int_equal(admin_exports(case_id, "text"), 1);
	/* case-export: one line of JSON, one export in json form. */
	assert_int_equal(admin_case(&out, "case-export", case_id), 0);
	assert_non_null(out);
	assert_non_null(strchr(out, '\n'));
	assert_int_equal(strchr(out, '\n') - out + 1, strlen(out));
	e = json_loads(out, 0, NULL);
	assert_non_null(e);
	assert_string_equal(json_string_value(json_object_get(e, "case")),
			    case_id);
	assert_int_equal(json_array_size(json_object_get(e, "roster")), 1);
	json_decref(e);
	free(out);
	assert_int_equal(admin_exports(case_id, "json"), 1);
	assert_int_equal(q1("SELECT count(*) FROM audit_log"), n + 2);
	/* Nothing of the case in the entries: the form is all they say. */
	assert_int_equal(q1("SELECT count(*) FROM audit_log WHERE action = "
			    "'case.export' AND (detail::text LIKE '%Elisa%' "
			    "OR detail::text LIKE '%2026/0001%')"),
			 0);

	/* No such case: refused by both, and nothing logged. */
	assert_int_equal(admin_case(&out, "case-show", none), 1);
	free(out);
	assert_int_equal(admin_case(&out, "case-export", none), 1);
	free(out);
	assert_int_equal(q1("SELECT count(*) FROM audit_log"), n + 2);
	verify_ok();

	/* Hiding who exported, behind the triggers: verify names the entry. */
	snprintf(seq, sizeof(seq), "%lld",
		 q1("SELECT max(seq) FROM audit_log WHERE action = "
		    "'case.export'"));
	snprintf(sql, sizeof(sql),
		 BEHIND_TRIGGERS "UPDATE audit_log SET actor = 'system' "
				 "WHERE seq = %s",
		 seq);
	assert_int_equal(bvt_sql_exec(env.db, sql), 0);
	snprintf(sql, sizeof(sql), "FAILED at seq %s: hash does not match",
		 seq);
	verify_fails(NULL, NULL, sql);
}

#define NPROC	4
#define PERPROC 50

/* Each child appends PERPROC entries, half of them in two-entry
 * transactions, on its own connection. */
static void
child_appends(int k)
{
	PGconn *c = PQconnectdb(env.db);
	char sql[256];
	int i, bad = 0;

	if (PQstatus(c) != CONNECTION_OK)
		_exit(3);
	for (i = 0; i < PERPROC; i += 2) {
		PGresult *r;

		snprintf(sql, sizeof(sql),
			 "BEGIN; SELECT set_config('bvchat.actor', 'p%d', "
			 "true); SELECT bv_audit_append(NULL, 'test.c', "
			 "'%d', NULL); SELECT bv_audit_append(NULL, "
			 "'test.c', '%d', NULL); COMMIT",
			 k, i, i + 1);
		r = PQexec(c, sql);
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			bad++;
		PQclear(r);
	}
	PQfinish(c);
	_exit(bad ? 1 : 0);
}

static void
t_concurrent(void **state)
{
	pid_t pids[NPROC];
	int i, st;
	PGconn *a, *b;
	PGresult *r;
	int64_t t0;

	(void)state;
	/* One append waits for another transaction's to commit. */
	a = PQconnectdb(env.db);
	b = PQconnectdb(env.db);
	assert_int_equal(PQstatus(a), CONNECTION_OK);
	assert_int_equal(PQstatus(b), CONNECTION_OK);
	r = PQexec(a, "BEGIN; SELECT bv_audit_append(NULL, 'test.a', NULL, "
		      "NULL)");
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	PQclear(r);
	assert_int_equal(PQsendQuery(b, "SELECT bv_audit_append(NULL, "
					"'test.b', NULL, NULL)"),
			 1);
	t0 = bvt_now_ms();
	while (bvt_now_ms() - t0 < 300) {
		assert_int_equal(PQconsumeInput(b), 1);
		assert_int_equal(PQisBusy(b), 1);
		bvt_sleep_ms(20);
	}
	r = PQexec(a, "COMMIT");
	assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	r = PQgetResult(b);
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	assert_string_equal(PQgetvalue(r, 0, 0), "2");
	PQclear(r);
	assert_null(PQgetResult(b));
	PQfinish(a);
	PQfinish(b);

	/* Several processes at once. */
	for (i = 0; i < NPROC; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0)
			child_appends(i);
	}
	for (i = 0; i < NPROC; i++) {
		assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
	assert_int_equal(q1("SELECT count(*) FROM audit_log"),
			 2 + NPROC * PERPROC);
	assert_int_equal(q1("SELECT max(seq) FROM audit_log"),
			 2 + NPROC * PERPROC);
	/* A transaction's two entries are adjacent: it held the lock. */
	assert_int_equal(q1("SELECT count(*) FROM audit_log x JOIN audit_log y "
			    "ON y.seq = x.seq + 1 WHERE x.action = 'test.c' "
			    "AND x.subject::int % 2 = 0 "
			    "AND (y.actor <> x.actor "
			    "OR y.subject::int <> x.subject::int + 1)"),
			 0);
	verify_ok();
}

static int
group_setup(void **state)
{
	(void)state;
	return bvt_pg_start();
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int
main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		T(t_devices_logged),
		T(t_sql_agrees),
		T(t_refused),
		T(t_edited),
		T(t_deleted_middle),
		T(t_deleted_tail),
		T(t_usage),
		T(t_list),
		T(t_case_export),
		T(t_concurrent),
	};
	/* clang-format on */

	return bvt_done(cmocka_run_group_tests_name("18-audit", tests,
						    group_setup, NULL));
}
