/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 19-cases: the case model of docs/cases.md through `bvchat-relay admin`
 * and its SQL functions, against a real PostgreSQL: a municipality's
 * details, a case and its roster, protected persons, the contact rules of
 * conversation-create, the required recipients of a conversation as the
 * team changes, and an audit entry for every change. The Elisa case:
 * Elisa (child), her mother Marthe, foster parents Randi and Arvid
 * (protected from Marthe), caseworkers Camilla and Kari.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "bvtest.h"

static struct bvt_env env;

enum { ELISA, MARTHE, RANDI, ARVID, CAMILLA, KARI, ARCHIVE, N_PEOPLE };
static char acc[N_PEOPLE][37];
static char case_id[64];

/* Runs `bvchat-relay --database DB admin ARGS…`; returns the exit status
 * and, when out is not NULL, stdout without its newline. */
static int
admin(char *out, size_t cap, const char *const *args)
{
	return bvt_admin(env.db, out, cap, args);
}

static long long
sql_int(const char *sql, const char *p1, const char *p2)
{
	const char *params[2] = {p1, p2};

	return bvt_sql_int(env.db, sql, p2 ? 2 : p1 ? 1 : 0, params);
}

static long long
audit_count(const char *action)
{
	return sql_int("SELECT count(*) FROM audit_log WHERE action = $1",
		       action, NULL);
}

/* 1 when account is among the required recipients of conv for sender;
 * -1 when sender may not send to it at all. */
static long long
recipient(const char *conv, const char *sender, const char *account)
{
	char sql[256];
	const char *params[3] = {conv, sender, account};

	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM bv_conversation_recipients($1::uuid, "
		 "$2::uuid) AS r WHERE r = $3::uuid");
	return bvt_sql_int(env.db, sql, 3, params);
}

/* 1 when the tenant's office is open at the given time, else 0. */
static long long
open_at(const char *when)
{
	return sql_int("SELECT bv_tenant_open_at($1::uuid, $2::timestamptz)"
		       "::int",
		       env.tenant.id, when);
}

static void
roster_add(int who, const char *role, const char *name)
{
	const char *args[] = {"roster-add", "--case", case_id, "--account",
			      acc[who],	    "--role", role,    "--name",
			      name,	    NULL};

	assert_int_equal(admin(NULL, 0, args), 0);
}

static void
t_elisa_case(void **state)
{
	struct bvt_dev d;
	struct bvt_tenant other;
	char out[256], team_m[64], team_e[64], cit[64], members[128];
	long long n0;
	int i;

	(void)state;
	for (i = 0; i < N_PEOPLE; i++) {
		assert_int_equal(
			bvt_new_account(env.relay.port, &env.tenant, &d), 0);
		snprintf(acc[i], sizeof(acc[i]), "%s", d.account);
	}

	/* The municipality's details; nonsense refused. */
	{
		const char *ok[] = {
			"tenant-set",	  "--tenant",  env.tenant.id,
			"--org-number",	  "964338531", "--office-days",
			"mon-fri",	  "--open",    "08:00",
			"--close",	  "15:30",     "--out-of-hours-phone",
			"+47 800 00 000", NULL};
		const char *bad_days[] = {"tenant-set",	 "--tenant",
					  env.tenant.id, "--office-days",
					  "someday",	 NULL};
		const char *bad_hours[] = {"tenant-set",  "--tenant",
					   env.tenant.id, "--open",
					   "16:00",	  NULL};
		const char *no_tenant[] = {"tenant-set", "--open", "08:00",
					   NULL};

		assert_int_equal(admin(NULL, 0, ok), 0);
		assert_int_equal(admin(NULL, 0, bad_days), 1);
		assert_int_equal(admin(NULL, 0, bad_hours), 1);
		assert_int_equal(admin(NULL, 0, no_tenant), 2);
		assert_int_equal(
			sql_int("SELECT office_days FROM tenants WHERE id = "
				"$1::uuid",
				env.tenant.id, NULL),
			31);
		assert_int_equal(audit_count("tenant.update"), 1);
		/* The e-post answer time (migration 0010): 5 working days
		 * unless set; 1 … 60. */
		{
			const char *days[] = {
				"tenant-set",  "--tenant",
				env.tenant.id, "--email-answer-days",
				"7",	       NULL};
			const char *bad[] = {
				"tenant-set",  "--tenant",
				env.tenant.id, "--email-answer-days",
				"0",	       NULL};
			const char *sql = "SELECT email_answer_days FROM "
					  "tenants WHERE id = $1::uuid";

			assert_int_equal(sql_int(sql, env.tenant.id, NULL), 5);
			assert_int_equal(admin(NULL, 0, days), 0);
			assert_int_equal(sql_int(sql, env.tenant.id, NULL), 7);
			assert_int_equal(admin(NULL, 0, bad), 1);
			assert_int_equal(sql_int(sql, env.tenant.id, NULL), 7);
			assert_int_equal(audit_count("tenant.update"), 3);
		}
		/* Open: Monday 2026-11-23 10:00 in Oslo (09:00 UTC, winter
		 * time); 30 March 2026, 09:30 in Oslo is 07:30 UTC (summer
		 * time). Closed: 16:00, a Saturday, 07:59. */
		assert_int_equal(open_at("2026-11-23 09:00+00"), 1);
		assert_int_equal(open_at("2026-03-30 07:30+00"), 1);
		assert_int_equal(open_at("2026-03-30 05:59+00"), 0);
		assert_int_equal(open_at("2026-11-23 15:00+00"), 0);
		assert_int_equal(open_at("2026-11-23 14:29+00"), 1);
		assert_int_equal(open_at("2026-11-28 10:00+00"), 0);
		assert_int_equal(open_at("2026-11-23 06:59+00"), 0);
	}

	/* The case, once per case number. */
	{
		const char *args[] = {"case-create", "--tenant",
				      env.tenant.id, "--case-number",
				      "2026/0417",   NULL};

		assert_int_equal(admin(case_id, sizeof(case_id), args), 0);
		assert_int_equal(strlen(case_id), 36);
		assert_int_equal(admin(NULL, 0, args), 1);
		assert_int_equal(audit_count("case.create"), 1);
	}

	/* The roster. */
	roster_add(ELISA, "child", "Elisa");
	roster_add(MARTHE, "parent", "Marthe");
	roster_add(RANDI, "foster_parent", "Randi");
	roster_add(ARVID, "foster_parent", "Arvid");
	roster_add(CAMILLA, "caseworker", "Camilla");
	assert_int_equal(audit_count("roster.add"), 4);
	assert_int_equal(audit_count("team.join"), 1);
	{
		const char *again[] = {"roster-add", "--case",	 case_id,
				       "--account",  acc[ELISA], "--role",
				       "child",	     "--name",	 "Elisa",
				       NULL};
		const char *bad_role[] = {"roster-add", "--case",  case_id,
					  "--account",	acc[KARI], "--role",
					  "boss",	"--name",  "Kari",
					  NULL};
		const char *ctrl[] = {"roster-add", "--case",  case_id,
				      "--account",  acc[KARI], "--role",
				      "caseworker", "--name",  "Ka\033[2Jri",
				      NULL};
		const char *archive[] = {"archive-set", "--tenant",
					 env.tenant.id, "--account",
					 acc[ARCHIVE],	NULL};
		const char *archive_on_roster[] = {"archive-set", "--tenant",
						   env.tenant.id, "--account",
						   acc[ELISA],	  NULL};

		assert_int_equal(admin(NULL, 0, again), 1);
		assert_int_equal(admin(NULL, 0, bad_role), 1);
		assert_int_equal(admin(NULL, 0, ctrl), 1);
		assert_int_equal(admin(NULL, 0, archive), 0);
		assert_int_equal(admin(NULL, 0, archive_on_roster), 1);
	}

	/* An account of another municipality cannot be put on the case:
	 * the same answer as an unknown one. */
	assert_int_equal(bvt_tenant_create(env.db, "Annen kommune", &other), 0);
	assert_int_equal(bvt_new_account(env.relay.port, &other, &d), 0);
	{
		const char *args[] = {"roster-add", "--case",  case_id,
				      "--account",  d.account, "--role",
				      "parent",	    "--name",  "X",
				      NULL};
		const char *unknown[] = {"roster-add",
					 "--case",
					 case_id,
					 "--account",
					 "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9",
					 "--role",
					 "parent",
					 "--name",
					 "X",
					 NULL};

		assert_int_equal(admin(NULL, 0, args), 1);
		assert_int_equal(admin(NULL, 0, unknown), 1);
	}

	/* Elisa and Randi in a citizens' conversation, made by Camilla;
	 * then Randi and Arvid are protected from Marthe. */
	{
		const char *args[] = {"conversation-create",
				      "--case",
				      case_id,
				      "--by",
				      acc[CAMILLA],
				      "--kind",
				      "citizens",
				      "--members",
				      members,
				      NULL};
		const char *by_citizen[] = {"conversation-create",
					    "--case",
					    case_id,
					    "--by",
					    acc[ELISA],
					    "--kind",
					    "citizens",
					    "--members",
					    members,
					    NULL};

		snprintf(members, sizeof(members), "%s,%s", acc[ELISA],
			 acc[RANDI]);
		assert_int_equal(admin(cit, sizeof(cit), args), 0);
		/* Only staff joins citizens. */
		assert_int_equal(admin(NULL, 0, by_citizen), 1);
	}
	{
		const char *p1[] = {"protect",	 "--case",   case_id,
				    "--person",	 acc[RANDI], "--from",
				    acc[MARTHE], NULL};
		const char *p2[] = {"protect",	 "--case",   case_id,
				    "--person",	 acc[ARVID], "--from",
				    acc[MARTHE], NULL};
		const char *staff[] = {"protect",    "--case",	 case_id,
				       "--person",   acc[RANDI], "--from",
				       acc[CAMILLA], NULL};
		const char *args[] = {"conversation-create",
				      "--case",
				      case_id,
				      "--by",
				      acc[CAMILLA],
				      "--kind",
				      "citizens",
				      "--members",
				      members,
				      NULL};

		assert_int_equal(admin(NULL, 0, p1), 0);
		assert_int_equal(admin(NULL, 0, p2), 0);
		assert_int_equal(admin(NULL, 0, staff), 1);
		assert_int_equal(audit_count("protection.add"), 2);
		/* Never a conversation with Marthe and Randi in it. */
		snprintf(members, sizeof(members), "%s,%s", acc[MARTHE],
			 acc[RANDI]);
		assert_int_equal(admin(out, sizeof(out), args), 1);
		snprintf(members, sizeof(members), "%s,%s,%s", acc[ELISA],
			 acc[MARTHE], acc[ARVID]);
		assert_int_equal(admin(out, sizeof(out), args), 1);
	}
	/* The existing Elisa + Randi conversation is unaffected. */
	assert_int_equal(recipient(cit, acc[ELISA], acc[RANDI]), 1);

	/* Team conversations: a citizen with their own team only. */
	{
		const char *own[] = {
			"conversation-create", "--case", case_id, "--by",
			acc[MARTHE],	       "--kind", "team",  "--members",
			acc[MARTHE],	       NULL};
		const char *not_own[] = {"conversation-create",
					 "--case",
					 case_id,
					 "--by",
					 acc[MARTHE],
					 "--kind",
					 "team",
					 "--members",
					 acc[ELISA],
					 NULL};
		const char *staff_only[] = {"conversation-create",
					    "--case",
					    case_id,
					    "--by",
					    acc[CAMILLA],
					    "--kind",
					    "team",
					    "--members",
					    acc[KARI],
					    NULL};
		const char *by_staff[] = {"conversation-create",
					  "--case",
					  case_id,
					  "--by",
					  acc[CAMILLA],
					  "--kind",
					  "team",
					  "--members",
					  acc[ELISA],
					  NULL};
		char again[64];

		assert_int_equal(admin(team_m, sizeof(team_m), own), 0);
		assert_int_equal(admin(again, sizeof(again), own), 0);
		assert_string_equal(team_m, again); /* one per citizen */
		assert_int_equal(admin(NULL, 0, not_own), 1);
		assert_int_equal(admin(NULL, 0, staff_only), 1);
		assert_int_equal(admin(team_e, sizeof(team_e), by_staff), 0);
	}

	/* Required recipients: the citizen, the team, the archive, the
	 * sender; nobody else. */
	assert_int_equal(recipient(team_m, acc[MARTHE], acc[MARTHE]), 1);
	assert_int_equal(recipient(team_m, acc[MARTHE], acc[CAMILLA]), 1);
	assert_int_equal(recipient(team_m, acc[MARTHE], acc[ARCHIVE]), 1);
	assert_int_equal(recipient(team_m, acc[MARTHE], acc[ELISA]), 0);
	assert_int_equal(recipient(team_m, acc[MARTHE], acc[RANDI]), 0);
	assert_int_equal(recipient(team_m, acc[CAMILLA], acc[MARTHE]), 1);
	assert_int_equal(recipient(team_m, acc[ARCHIVE], acc[MARTHE]), 1);
	/* Not a member, not on the team: refused (SQL error). */
	assert_int_equal(recipient(team_m, acc[ELISA], acc[MARTHE]), -1);
	assert_int_equal(recipient(team_m, acc[KARI], acc[MARTHE]), -1);

	/* Handover: Kari joins, Camilla leaves; access follows at once. */
	roster_add(KARI, "caseworker", "Kari");
	assert_int_equal(recipient(team_m, acc[MARTHE], acc[KARI]), 1);
	assert_int_equal(recipient(team_m, acc[KARI], acc[MARTHE]), 1);
	{
		const char *args[] = {"roster-remove", "--case",     case_id,
				      "--account",     acc[CAMILLA], NULL};

		n0 = audit_count("team.leave");
		assert_int_equal(admin(NULL, 0, args), 0);
		assert_int_equal(audit_count("team.leave"), n0 + 1);
		assert_int_equal(admin(NULL, 0, args), 1);
	}
	assert_int_equal(recipient(team_m, acc[MARTHE], acc[CAMILLA]), 0);
	assert_int_equal(recipient(team_m, acc[CAMILLA], acc[MARTHE]), -1);
	assert_int_equal(recipient(team_e, acc[ELISA], acc[KARI]), 1);

	/* A citizen who leaves the case: their conversations close. */
	{
		const char *args[] = {"roster-remove", "--case",   case_id,
				      "--account",     acc[RANDI], NULL};

		assert_int_equal(admin(NULL, 0, args), 0);
	}
	assert_int_equal(recipient(cit, acc[ELISA], acc[ELISA]), -1);

	/* case-show prints the roster with roles and names. */
	{
		const char *args[] = {"case-show", "--case", case_id, NULL};
		const char *argv[8] = {"--database", env.db, "admin"};
		char *o = NULL;

		for (i = 0; args[i]; i++)
			argv[3 + i] = args[i];
		argv[3 + i] = NULL;
		assert_int_equal(bvt_relay_cmd(&o, argv), 0);
		assert_non_null(o);
		print_message("%s", o);
		assert_non_null(strstr(o, "caseworker Kari"));
		assert_non_null(strstr(o, "child Elisa"));
		assert_null(strstr(o, "Camilla"));
		free(o);
	}

	/* Every change has its audit entry, with the admin as actor. */
	assert_int_equal(audit_count("conversation.create"), 3);
	assert_int_equal(sql_int("SELECT count(*) FROM audit_log WHERE "
				 "actor NOT LIKE 'admin:%' AND action IN "
				 "('roster.add', 'team.join', 'team.leave', "
				 "'protection.add', 'case.create')",
				 NULL, NULL),
			 0);
	/* And the chain they are in is whole. */
	{
		const char *args[] = {"--database", env.db, "audit", "verify",
				      NULL};

		assert_int_equal(bvt_relay_cmd(NULL, args), 0);
	}
}

static int
setup(void **state)
{
	(void)state;
	if (bvt_pg_start() < 0)
		return -1;
	return bvt_env_init(&env, NULL);
}

static int
teardown(void **state)
{
	(void)state;
	bvt_env_cleanup(&env);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_elisa_case),
	};

	return bvt_done(cmocka_run_group_tests_name("19-cases", tests, setup,
						    teardown));
}
