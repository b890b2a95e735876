/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 22-case-rules: the relay enforcing docs/cases.md on the wire, against a
 * real PostgreSQL and relays:
 * - the authorisation matrix: every role of a case × every operation
 *   (cases, conversation_create team/citizens, keys_get, send, receive) ×
 *   own case / another case of the municipality / another municipality;
 * - the archive as a required recipient of every send;
 * - a person protected from another (Randi from Marthe) over every surface
 *   Marthe has: case views, conversation members, keys, 409 details,
 *   deliveries queued before the protection, errors, events, notices;
 * - the handover from Camilla to Kari on live connections;
 * - the out-of-hours notice with the relay's clock shifted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "bvtest.h"

#define GHOST "00000000-0000-4000-8000-0000000000ee"

static struct bvt_env env;
static struct bvt_tenant other;

/* Case A of the municipality: one account per role (two foster parents),
 * then Kari (joins later), the archive; case B of the same municipality;
 * case U of another. */
enum {
	ELISA,
	MARTHE,
	RANDI,
	ARVID,
	VERA,
	TOR,
	STINE,
	CAMILLA,
	TOVE,
	SIRI,
	N_ROSTER, /* the accounts on case A from the start */
	KARI = N_ROSTER,
	ARCHIVE,
	B_CHILD,
	B_CW,
	U_CHILD,
	U_CW,
	N
};
static const char *const role[N] = {
	"child",     "parent",	       "foster_parent",	  "foster_parent",
	"guardian",  "supervisor",     "support_contact", "caseworker",
	"team_lead", "service_leader", "caseworker",	  "archive",
	"child",     "caseworker",     "child",		  "caseworker"};
static const char *const name[N] = {
	"Elisa",	"Marthe",  "Randi", "Arvid", "Vera Verge", "Tor Tilsyn",
	"Stine Stotte", "Camilla", "Tove",  "Siri",  "Kari",	   "",
	"Ola",		"Bent",	   "Una",   "Ulf"};
static struct bvt_dev dev[N];
static struct bvt_conn *conn[N];
static char case_a[64], case_b[64], case_u[64];
static char conv_b[64], conv_u[64]; /* team conversations of B and U */
static char conv_mr[64];	    /* Marthe, Randi, Elisa: closed later */

static int
staff(int who)
{
	return !strcmp(role[who], "caseworker") ||
	       !strcmp(role[who], "team_lead") ||
	       !strcmp(role[who], "service_leader");
}

static int
admin(char *out, size_t cap, const char *const *args)
{
	return bvt_admin(env.db, out, cap, args);
}

static long long
sql_int(const char *sql, const char *p1)
{
	const char *params[1] = {p1};

	return bvt_sql_int(env.db, sql, p1 ? 1 : 0, params);
}

/* Everything Marthe's connection was told, for the leak checks. */
static char *marthe_saw;
static size_t marthe_saw_len;

static void
saw(int who, const json_t *frame)
{
	char *s;
	size_t n;

	if (who != MARTHE || !frame)
		return;
	s = json_dumps(frame, JSON_COMPACT);
	n = s ? strlen(s) : 0;
	marthe_saw = realloc(marthe_saw, marthe_saw_len + n + 2);
	assert_non_null(marthe_saw);
	memcpy(marthe_saw + marthe_saw_len, s, n);
	marthe_saw_len += n;
	marthe_saw[marthe_saw_len++] = '\n';
	marthe_saw[marthe_saw_len] = '\0';
	free(s);
}

static struct bvt_conn *
online(int who)
{
	json_t *ev;

	if (!conn[who]) {
		conn[who] = bvt_online(env.relay.port, &dev[who]);
		assert_non_null(conn[who]);
		ev = bvt_conn_next(conn[who], "queue_empty",
				   bvt_ms(BVT_TIMEOUT));
		assert_non_null(ev);
		json_decref(ev);
	}
	return conn[who];
}

static void
offline(int who)
{
	bvt_conn_free(conn[who]);
	conn[who] = NULL;
}

/* A request as who; every answer to Marthe is recorded. */
static json_t *
ask(int who, json_t *req)
{
	json_t *r = bvt_request(online(who), req);

	saw(who, r);
	return r;
}

static json_t *
cases(int who, const char *case_id)
{
	return ask(who, case_id ? json_pack("{s:s, s:s}", "op", "cases", "case",
					    case_id)
				: json_pack("{s:s}", "op", "cases"));
}

/* conversation_create as who; members: up to three indexes, -1 ends. */
static json_t *
create(int who, const char *case_id, const char *kind, int m1, int m2, int m3)
{
	json_t *req = json_pack("{s:s, s:s, s:s}", "op", "conversation_create",
				"case", case_id, "kind", kind);
	int m[3] = {m1, m2, m3}, i;

	if (m1 >= 0) {
		json_t *a = json_array();

		for (i = 0; i < 3 && m[i] >= 0; i++)
			json_array_append_new(a,
					      json_string(dev[m[i]].account));
		json_object_set_new(req, "members", a);
	}
	return ask(who, req);
}

static void
conv_id(const json_t *resp, char out[64])
{
	const char *s = json_string_value(
		json_object_get(bvt_ok(resp), "conversation"));

	if (!s)
		fail_msg("no conversation in %s", bvt_js(resp));
	snprintf(out, 64, "%s", s);
}

/* The index of account, or -1. */
static int
who_is(const char *account)
{
	int i;

	for (i = 0; i < N; i++)
		if (account && !strcmp(dev[i].account, account))
			return i;
	return -1;
}

/* The required accounts of conv as the database has them for sender (a
 * participant), as a bit set of indexes. */
static unsigned
required(const char *conv, int sender)
{
	unsigned set = 0;
	int i;

	for (i = 0; i < N; i++) {
		const char *p[3] = {conv, dev[sender].account, dev[i].account};

		if (bvt_sql_int(
			    env.db,
			    "SELECT count(*) FROM bv_conversation_recipients("
			    "$1::uuid, $2::uuid) r WHERE r = $3::uuid",
			    3, p) == 1)
			set |= 1u << i;
	}
	return set;
}

/* A send as who to conv with one envelope for each account in set (but
 * not who's own device); partial as asked. */
static json_t *
send_set(int who, const char *conv, unsigned set, int partial, const char *mid)
{
	json_t *envs = json_array(), *req;
	int i;

	for (i = 0; i < N; i++)
		if ((set & (1u << i)) && i != who)
			json_array_append_new(
				envs,
				bvt_envelope(&dev[i], 3, mid, strlen(mid)));
	req = json_pack("{s:s, s:s, s:s, s:o, s:b}", "op", "send",
			"conversation", conv, "message_id", mid, "envelopes",
			envs, "partial", partial);
	return ask(who, req);
}

/* The next deliver to who, acknowledged; NULL after timeout_ms. */
static json_t *
next_deliver(int who, int timeout_ms)
{
	json_t *d = bvt_next_deliver(online(who), timeout_ms);

	if (d) {
		saw(who, d);
		assert_int_equal(bvt_ack(conn[who], d), 0);
	}
	return d;
}

/* Waits for the delivery of mid to who in conv. */
static void
expect_delivered(int who, const char *conv, const char *mid)
{
	int64_t deadline = bvt_now_ms() + bvt_ms(BVT_TIMEOUT);

	while (bvt_now_ms() < deadline) {
		json_t *d = next_deliver(who, 500), *e;

		if (!d)
			continue;
		e = json_object_get(d, "envelope");
		if (e &&
		    !strcmp(json_string_value(json_object_get(e, "message_id")),
			    mid)) {
			assert_string_equal(json_string_value(json_object_get(
						    e, "conversation")),
					    conv);
			json_decref(d);
			return;
		}
		json_decref(d);
	}
	fail_msg("%s never got %s", name[who], mid);
}

/* The people of the one case in a cases answer, as a bit set. */
static unsigned
people(const json_t *resp, const char *key_conv)
{
	json_t *list = json_object_get(bvt_ok(resp), "cases"), *cs, *p;
	unsigned set = 0;
	size_t i, j;

	assert_int_equal(json_array_size(list), 1);
	cs = json_array_get(list, 0);
	if (!key_conv) {
		json_array_foreach(json_object_get(cs, "people"), i, p)
		{
			int w = who_is(json_string_value(
				json_object_get(p, "account")));

			assert_true(w >= 0);
			set |= 1u << w;
		}
		return set;
	}
	json_array_foreach(json_object_get(cs, "conversations"), i, p)
	{
		json_t *m;

		if (strcmp(json_string_value(
				   json_object_get(p, "conversation")),
			   key_conv))
			continue;
		json_array_foreach(json_object_get(p, "members"), j, m) set |=
			1u << who_is(json_string_value(
				json_object_get(m, "account")));
	}
	return set;
}

static unsigned
staff_of_a(void)
{
	return 1u << CAMILLA | 1u << TOVE | 1u << SIRI;
}

/* ------------------------------------------------------------------ */

static void
roster_add(const char *case_id, int who)
{
	const char *args[] = {"roster-add", "--case",	      case_id,
			      "--account",  dev[who].account, "--role",
			      role[who],    "--name",	      name[who],
			      NULL};

	assert_int_equal(admin(NULL, 0, args), 0);
}

static int
group_setup(void **state)
{
	const char *tset[] = {"tenant-set",
			      "--tenant",
			      NULL,
			      "--office-days",
			      "mon-fri",
			      "--open",
			      "08:00",
			      "--close",
			      "15:30",
			      "--out-of-hours-phone",
			      "+47 800 00 000",
			      NULL};
	int i;

	(void)state;
	if (bvt_env_init(&env, NULL) < 0 ||
	    bvt_tenant_create(env.db, "Annen kommune", &other) < 0)
		return -1;
	for (i = 0; i < N; i++) {
		struct bvt_conn *c;
		json_t *r;

		if (bvt_new_account(env.relay.port,
				    i >= U_CHILD ? &other : &env.tenant,
				    &dev[i]) < 0)
			return -1;
		c = bvt_online(env.relay.port, &dev[i]);
		if (!c)
			return -1;
		r = bvt_keys_put(c, 1, 1, 20);
		if (!bvt_ok(r))
			return -1;
		json_decref(r);
		bvt_conn_free(c);
	}
	tset[2] = env.tenant.id;
	return admin(NULL, 0, tset);
}

static int
group_teardown(void **state)
{
	int i;

	(void)state;
	for (i = 0; i < N; i++)
		offline(i);
	free(marthe_saw);
	bvt_env_cleanup(&env);
	return 0;
}

/* The cases, rosters, archive and conversations every test below uses. */
static void
t_setup_cases(void **state)
{
	const char *ca[] = {"case-create",   "--tenant",  env.tenant.id,
			    "--case-number", "2026/0417", NULL};
	const char *cb[] = {"case-create",   "--tenant",  env.tenant.id,
			    "--case-number", "2026/0999", NULL};
	const char *cu[] = {"case-create",   "--tenant",  other.id,
			    "--case-number", "2026/0001", NULL};
	const char *arch[] = {"archive-set",	    "--tenant",
			      env.tenant.id,	    "--account",
			      dev[ARCHIVE].account, NULL};
	json_t *r;
	int i;

	(void)state;
	assert_int_equal(admin(case_a, sizeof(case_a), ca), 0);
	assert_int_equal(admin(case_b, sizeof(case_b), cb), 0);
	assert_int_equal(admin(case_u, sizeof(case_u), cu), 0);
	assert_int_equal(admin(NULL, 0, arch), 0);
	for (i = 0; i < N_ROSTER; i++)
		roster_add(case_a, i);
	roster_add(case_b, B_CHILD);
	roster_add(case_b, B_CW);
	roster_add(case_u, U_CHILD);
	roster_add(case_u, U_CW);
	r = create(B_CW, case_b, "team", B_CHILD, -1, -1);
	conv_id(r, conv_b);
	json_decref(r);
	r = create(U_CW, case_u, "team", U_CHILD, -1, -1);
	conv_id(r, conv_u);
	json_decref(r);
	/* Before any protection: Marthe, Randi and Elisa together. */
	r = create(CAMILLA, case_a, "citizens", MARTHE, RANDI, ELISA);
	conv_id(r, conv_mr);
	json_decref(r);
	/* The new conversation's conversation_create was audited with its
	 * device as the actor. */
	assert_int_equal(sql_int("SELECT count(*) FROM audit_log WHERE "
				 "action = 'conversation.create' AND actor = "
				 "'device:' || $1 || '/1'",
				 dev[CAMILLA].account),
			 1);
}

/*
 * Every role of case A × every operation × own case / case B / tenant U.
 */
static void
t_matrix(void **state)
{
	char elisa_team[64], conv[64], mid[64];
	json_t *r, *r2;
	int w, n = 0;

	(void)state;
	r = create(CAMILLA, case_a, "team", ELISA, -1, -1);
	conv_id(r, elisa_team);
	json_decref(r);
	for (w = 0; w < N_ROSTER; w++) {
		unsigned all = (1u << N_ROSTER) - 1, want;

		/* cases: only case A, as the role, seeing what it may. */
		r = cases(w, NULL);
		bvt_assert_ok(r);
		assert_string_equal(
			json_string_value(json_object_get(
				json_array_get(
					json_object_get(bvt_ok(r), "cases"), 0),
				"role")),
			role[w]);
		want = (staff(w) ? all : 1u << w | staff_of_a()) |
		       1u << ARCHIVE;
		assert_int_equal(people(r, NULL), want);
		json_decref(r);
		r = cases(w, case_b);
		assert_int_equal(
			json_array_size(json_object_get(bvt_ok(r), "cases")),
			0);
		json_decref(r);
		r = cases(w, case_u);
		assert_int_equal(
			json_array_size(json_object_get(bvt_ok(r), "cases")),
			0);
		json_decref(r);

		/* conversation_create team: own (a citizen only for
		 * themselves, staff for a citizen); other case; other
		 * tenant. */
		if (staff(w)) {
			r = create(w, case_a, "team", ELISA, -1, -1);
			conv_id(r, conv);
			assert_string_equal(conv, elisa_team);
		} else {
			r = create(w, case_a, "team", -1, -1, -1);
			conv_id(r, conv);
			json_decref(r);
			r = create(w, case_a, "team", ELISA, -1, -1);
			if (w == ELISA)
				bvt_assert_ok(r);
			else
				bvt_assert_err(r, "BV_ENOACCOUNT");
		}
		json_decref(r);
		BVT_ERR(create(w, case_b, "team", B_CHILD, -1, -1),
			"BV_ENOACCOUNT");
		BVT_ERR(create(w, case_u, "team", U_CHILD, -1, -1),
			"BV_ENOACCOUNT");
		/* citizens: staff of the case only. */
		r = create(w, case_a, "citizens", ELISA, VERA, -1);
		if (staff(w))
			bvt_assert_ok(r);
		else
			bvt_assert_err(r, "BV_ENOACCOUNT");
		json_decref(r);
		BVT_ERR(create(w, case_b, "citizens", B_CHILD, ELISA, -1),
			"BV_ENOACCOUNT");

		/* send: own conversation with its required accounts,
		 * received by a member; another case's and tenant's are
		 * refused whatever is addressed. */
		snprintf(mid, sizeof(mid), "matrix-%d", w);
		BVT_OK(send_set(w, conv, required(conv, w), 0, mid));
		expect_delivered(w == CAMILLA ? ELISA : CAMILLA, conv, mid);
		expect_delivered(ARCHIVE, conv, mid);
		snprintf(mid, sizeof(mid), "matrix-b-%d", w);
		BVT_ERR(send_set(w, conv_b, required(conv_b, B_CW), 0, mid),
			"BV_ENOACCOUNT");
		snprintf(mid, sizeof(mid), "matrix-u-%d", w);
		BVT_ERR(send_set(w, conv_u, required(conv_u, U_CW), 0, mid),
			"BV_ENOACCOUNT");

		/* keys_get: a member of a shared conversation; nobody of
		 * another case or tenant, the same answer as for nobody. */
		BVT_OK(ask(
			w,
			json_pack(
				"{s:s, s:s}", "op", "keys_get", "account",
				dev[w == CAMILLA ? ELISA : CAMILLA].account)));
		r = ask(w, json_pack("{s:s, s:s}", "op", "keys_get", "account",
				     dev[B_CHILD].account));
		r2 = ask(w, json_pack("{s:s, s:s}", "op", "keys_get", "account",
				      GHOST));
		bvt_assert_err(r, "BV_ENOACCOUNT");
		assert_true(json_equal(bvt_err(r), bvt_err(r2)));
		json_decref(r);
		json_decref(r2);
		BVT_ERR(ask(w, json_pack("{s:s, s:s}", "op", "keys_get",
					 "account", dev[B_CW].account)),
			"BV_ENOACCOUNT");
		BVT_ERR(ask(w, json_pack("{s:s, s:s}", "op", "keys_get",
					 "account", dev[U_CW].account)),
			"BV_ENOACCOUNT");
		n++;
	}
	assert_int_equal(n, N_ROSTER);
	/* No staff directory: a citizen cannot reach staff of case B even
	 * knowing the account. Nothing of B or U was queued for case A. */
	assert_int_equal(sql_int("SELECT count(*) FROM queue q JOIN devices d "
				 "ON d.id = q.device JOIN accounts a ON a.id = "
				 "d.account_id WHERE a.id = $1::uuid",
				 dev[B_CHILD].account),
			 0);

	/* The archive: every case of its tenant, never another tenant's;
	 * it may send (journaling marks) but creates nothing. */
	r = cases(ARCHIVE, NULL);
	assert_int_equal(json_array_size(json_object_get(bvt_ok(r), "cases")),
			 2);
	json_decref(r);
	BVT_ERR(create(ARCHIVE, case_a, "team", ELISA, -1, -1),
		"BV_ENOACCOUNT");
	BVT_OK(send_set(ARCHIVE, elisa_team, required(elisa_team, ARCHIVE), 0,
			"archive-1"));
	BVT_ERR(send_set(ARCHIVE, conv_u, required(conv_u, U_CW), 0,
			 "archive-u"),
		"BV_ENOACCOUNT");
}

/* The relay refuses a send that leaves the archive out, partial or not. */
static void
t_archive_required(void **state)
{
	char team[64];
	unsigned req;
	json_t *r, *miss;

	(void)state;
	r = create(CAMILLA, case_a, "team", ELISA, -1, -1);
	conv_id(r, team);
	json_decref(r);
	req = required(team, CAMILLA);
	assert_true(req & 1u << ARCHIVE);
	r = send_set(CAMILLA, team, req & ~(1u << ARCHIVE), 0, "no-archive");
	bvt_assert_err(r, "BV_EDEVICES");
	miss = json_pack("[{s:s, s:[i]}]", "account", dev[ARCHIVE].account,
			 "devices", 1);
	assert_true(json_equal(json_object_get(bvt_err(r), "missing"), miss));
	json_decref(r);
	r = send_set(CAMILLA, team, 1u << ELISA, 1, "no-archive-partial");
	bvt_assert_err(r, "BV_EDEVICES");
	assert_true(json_equal(json_object_get(bvt_err(r), "missing"), miss));
	json_decref(r);
	json_decref(miss);
	/* A partial send with the archive and one member is fine; one
	 * leaving out a member is a plain send's 409 too. */
	BVT_OK(send_set(CAMILLA, team, 1u << ELISA | 1u << ARCHIVE, 1,
			"receipt-like"));
	BVT_ERR(send_set(CAMILLA, team, 1u << ELISA | 1u << ARCHIVE, 0,
			 "text-missing-staff"),
		"BV_EDEVICES");
	assert_int_equal(sql_int("SELECT count(*) FROM queue WHERE "
				 "message_id LIKE 'no-archive%' OR message_id "
				 "= $1",
				 "text-missing-staff"),
			 0);
}

/*
 * Randi is protected from Marthe. Randi wrote in their shared
 * conversation while Marthe was offline; then the protection came.
 */
static void
t_protected(void **state)
{
	char with_arvid[64];
	const char *prot[] = {"protect",
			      "--case",
			      case_a,
			      "--person",
			      dev[RANDI].account,
			      "--from",
			      dev[MARTHE].account,
			      NULL};
	json_t *r, *r2, *d;
	unsigned req_mr;

	(void)state;
	offline(MARTHE);
	req_mr = required(conv_mr, RANDI);
	BVT_OK(send_set(RANDI, conv_mr, req_mr, 0, "randi-before"));
	assert_int_equal(admin(NULL, 0, prot), 0);
	/* What Randi had queued for Marthe is gone, the rest stays. */
	assert_int_equal(sql_int("SELECT count(*) FROM queue q JOIN devices d "
				 "ON d.id = q.device WHERE d.account_id = "
				 "$1::uuid AND q.message_id = 'randi-before'",
				 dev[MARTHE].account),
			 0);
	assert_int_equal(sql_int("SELECT count(*) FROM queue q JOIN devices d "
				 "ON d.id = q.device WHERE d.account_id = "
				 "$1::uuid AND q.message_id = 'randi-before'",
				 dev[ELISA].account),
			 1);
	/* Before the protection Marthe knew Randi from conv_mr; from now on
	 * she must learn nothing of her. */
	marthe_saw_len = 0;
	online(MARTHE);
	while ((d = next_deliver(MARTHE, 300)))
		json_decref(d);

	/* Views: Randi is in none of Marthe's, the closed one included. */
	r = cases(MARTHE, NULL);
	assert_int_equal(people(r, NULL) & 1u << RANDI, 0);
	assert_int_equal(people(r, conv_mr) & 1u << RANDI, 0);
	assert_true(people(r, conv_mr) & 1u << ELISA);
	json_decref(r);
	/* Randi still sees the conversation as it was (she is not hidden
	 * from herself, and Marthe is not protected). */
	r = cases(RANDI, NULL);
	assert_true(people(r, conv_mr) & 1u << MARTHE);
	json_decref(r);
	/* Staff see the protection. */
	r = cases(CAMILLA, NULL);
	assert_non_null(strstr(bvt_js(r), "protected_from"));
	json_decref(r);

	/* Keys: the same answer as for an account that does not exist. */
	r = ask(MARTHE, json_pack("{s:s, s:s}", "op", "keys_get", "account",
				  dev[RANDI].account));
	r2 = ask(MARTHE,
		 json_pack("{s:s, s:s}", "op", "keys_get", "account", GHOST));
	bvt_assert_err(r, "BV_ENOACCOUNT");
	assert_true(json_equal(bvt_err(r), bvt_err(r2)));
	json_decref(r);
	json_decref(r2);
	/* The closed conversation takes no sends, from either side. */
	BVT_ERR(send_set(MARTHE, conv_mr, req_mr, 0, "m-1"), "BV_ENOACCOUNT");
	BVT_ERR(send_set(RANDI, conv_mr, 1u << ELISA, 1, "r-1"),
		"BV_ENOACCOUNT");
	/* Staff cannot put them together again; the answer is the one for
	 * a ghost member. */
	r = create(CAMILLA, case_a, "citizens", MARTHE, RANDI, -1);
	bvt_assert_err(r, "BV_ENOACCOUNT");
	json_decref(r);
	/* A conversation with Arvid is fine; a send that leaves everyone
	 * out lists the required accounts, never Randi. */
	r = create(CAMILLA, case_a, "citizens", MARTHE, ARVID, ELISA);
	conv_id(r, with_arvid);
	json_decref(r);
	/* Naming Randi's account (as if Marthe knew it) is answered like
	 * naming one that does not exist: the answer only repeats it. It is
	 * the one answer kept out of the leak check below. */
	{
		size_t keep = marthe_saw_len;
		struct bvt_dev ghost = dev[RANDI];
		json_t *ex1, *ex2;

		r = send_set(MARTHE, with_arvid, 1u << RANDI, 0, "m-2");
		marthe_saw_len = keep;
		snprintf(ghost.account, sizeof(ghost.account), "%s", GHOST);
		r2 = ask(MARTHE, json_pack("{s:s, s:s, s:s, s:[o]}", "op",
					   "send", "conversation", with_arvid,
					   "message_id", "m-2", "envelopes",
					   bvt_envelope(&ghost, 3, "m-2", 3)));
		bvt_assert_err(r, "BV_EDEVICES");
		bvt_assert_err(r2, "BV_EDEVICES");
		assert_true(
			json_equal(json_object_get(bvt_err(r), "missing"),
				   json_object_get(bvt_err(r2), "missing")));
		ex1 = json_array_get(json_object_get(bvt_err(r), "extra"), 0);
		ex2 = json_array_get(json_object_get(bvt_err(r2), "extra"), 0);
		assert_string_equal(
			json_string_value(json_object_get(ex1, "account")),
			dev[RANDI].account);
		assert_true(json_equal(json_object_get(ex1, "devices"),
				       json_object_get(ex2, "devices")));
		json_decref(r);
		json_decref(r2);
	}
	BVT_OK(send_set(MARTHE, with_arvid, required(with_arvid, MARTHE), 0,
			"m-3"));
	expect_delivered(ARVID, with_arvid, "m-3");
	BVT_OK(send_set(ARVID, with_arvid, required(with_arvid, ARVID), 0,
			"a-1"));
	expect_delivered(MARTHE, with_arvid, "a-1");

	/* Nothing Marthe was told names Randi or her account. */
	{
		json_t *ev;

		while ((ev = bvt_conn_next(conn[MARTHE], NULL, 300))) {
			saw(MARTHE, ev);
			json_decref(ev);
		}
	}
	assert_non_null(marthe_saw);
	if (strstr(marthe_saw, dev[RANDI].account))
		fail_msg("Marthe learnt Randi's account: %s",
			 strstr(marthe_saw, dev[RANDI].account) - 300);
	assert_null(strstr(marthe_saw, "Randi"));
	assert_null(strstr(marthe_saw, "randi-before"));
	/* …while the check itself would see them: Arvid is there. */
	assert_non_null(strstr(marthe_saw, dev[ARVID].account));
}

/* Camilla hands the case over to Kari while everyone is connected. */
static void
t_handover(void **state)
{
	const char *rm[] = {"roster-remove",	  "--case", case_a, "--account",
			    dev[CAMILLA].account, NULL};
	char team[64];
	unsigned before, after;
	json_t *r, *ev, *want;

	(void)state;
	r = create(ELISA, case_a, "team", -1, -1, -1);
	conv_id(r, team);
	json_decref(r);
	before = required(team, ELISA);
	BVT_OK(send_set(ELISA, team, before, 0, "h-1"));
	expect_delivered(CAMILLA, team, "h-1");
	offline(CAMILLA);
	BVT_OK(send_set(ELISA, team, before, 0, "h-2")); /* queued */
	online(ELISA);
	while ((ev = bvt_conn_next(conn[ELISA], "cases_changed", 300)))
		json_decref(ev); /* earlier changes */
	assert_int_equal(admin(NULL, 0, rm), 0);
	roster_add(case_a, KARI);
	/* Elisa's connection is told at once. */
	ev = bvt_conn_next(conn[ELISA], "cases_changed", bvt_ms(BVT_TIMEOUT));
	assert_non_null(ev);
	assert_string_equal(json_string_value(json_object_get(ev, "case")),
			    case_a);
	json_decref(ev);
	/* What waited for Camilla is gone. */
	assert_int_equal(sql_int("SELECT count(*) FROM queue q JOIN devices d "
				 "ON d.id = q.device WHERE d.account_id = "
				 "$1::uuid",
				 dev[CAMILLA].account),
			 0);
	/* Elisa's old set: Camilla extra, Kari missing. */
	r = send_set(ELISA, team, before, 0, "h-3");
	bvt_assert_err(r, "BV_EDEVICES");
	want = json_pack("[{s:s, s:[i]}]", "account", dev[CAMILLA].account,
			 "devices", 1);
	assert_true(json_equal(json_object_get(bvt_err(r), "extra"), want));
	json_decref(want);
	want = json_pack("[{s:s, s:[i]}]", "account", dev[KARI].account,
			 "devices", 1);
	assert_true(json_equal(json_object_get(bvt_err(r), "missing"), want));
	json_decref(want);
	json_decref(r);
	after = required(team, ELISA);
	assert_int_equal(after, (before & ~(1u << CAMILLA)) | 1u << KARI);
	BVT_OK(send_set(ELISA, team, after, 0, "h-4"));
	expect_delivered(KARI, team, "h-4");
	/* Kari sees the conversation and answers in it. */
	r = cases(KARI, NULL);
	assert_true(people(r, team) & 1u << ELISA);
	json_decref(r);
	BVT_OK(send_set(KARI, team, required(team, KARI), 0, "h-5"));
	expect_delivered(ELISA, team, "h-5");
	/* Camilla gets nothing more, and may do nothing more. */
	online(CAMILLA);
	r = next_deliver(CAMILLA, 500);
	assert_null(r);
	BVT_ERR(send_set(CAMILLA, team, after, 0, "h-6"), "BV_ENOACCOUNT");
	BVT_ERR(ask(CAMILLA, json_pack("{s:s, s:s}", "op", "keys_get",
				       "account", dev[ELISA].account)),
		"BV_ENOACCOUNT");
	r = cases(CAMILLA, NULL);
	assert_int_equal(json_array_size(json_object_get(bvt_ok(r), "cases")),
			 0);
	json_decref(r);
	/* The history continues for the case: the archive has all of it. */
	expect_delivered(ARCHIVE, team, "h-5");
	assert_int_equal(sql_int("SELECT count(*) FROM audit_log WHERE action "
				 "= 'team.leave' AND subject = $1",
				 dev[CAMILLA].account),
			 1);
	assert_int_equal(sql_int("SELECT count(*) FROM audit_log WHERE action "
				 "= 'team.join' AND subject = $1",
				 dev[KARI].account),
			 1);
}

/* Seconds from now to the next weekday wday (0 Sunday) at hour:00 in
 * Oslo, plus weeks. */
static long
offset_to(int wday, int hour, int weeks)
{
	time_t now = time(NULL), t;
	struct tm tm;
	char *old = getenv("TZ") ? strdup(getenv("TZ")) : NULL;

	setenv("TZ", "Europe/Oslo", 1);
	tzset();
	localtime_r(&now, &tm);
	tm.tm_mday += (wday - tm.tm_wday + 7) % 7 + 7 * weeks;
	tm.tm_hour = hour;
	tm.tm_min = tm.tm_sec = 0;
	tm.tm_isdst = -1;
	t = mktime(&tm);
	if (t <= now)
		t += 7 * 86400;
	if (old) {
		setenv("TZ", old, 1);
		free(old);
	} else {
		unsetenv("TZ");
	}
	tzset();
	return (long)(t - now);
}

/* Opens who on relay port; returns the connection (queue drained). */
static struct bvt_conn *
on_relay(int port, int who)
{
	struct bvt_conn *c;
	json_t *d;

	offline(who);
	c = bvt_online(port, &dev[who]);
	assert_non_null(c);
	while ((d = bvt_conn_next(c, NULL, 300))) {
		if (json_object_get(d, "id"))
			bvt_ack(c, d);
		json_decref(d);
	}
	return c;
}

/* Sends as Elisa on c; returns the notice she got, or NULL. */
static json_t *
elisa_writes(struct bvt_conn *c, const char *team, const char *mid)
{
	json_t *envs = json_array(), *d, *notice = NULL;
	int i;

	for (i = 0; i < N; i++)
		if ((required(team, ELISA) & 1u << i) && i != ELISA)
			json_array_append_new(
				envs,
				bvt_envelope(&dev[i], 3, mid, strlen(mid)));
	BVT_OK(bvt_request(c, json_pack("{s:s, s:s, s:s, s:o}", "op", "send",
					"conversation", team, "message_id", mid,
					"envelopes", envs)));
	while ((d = bvt_next_deliver(c, 700))) {
		bvt_ack(c, d);
		if (json_object_get(d, "notice") && !notice)
			notice = json_incref(json_object_get(d, "notice"));
		json_decref(d);
	}
	return notice;
}

static void
t_out_of_hours(void **state)
{
	struct bvt_relay sat, wed, sat2;
	char a1[64], a2[64], a3[64], team[64];
	const char *args[2] = {NULL, NULL};
	struct bvt_conn *c, *k;
	json_t *n, *d;
	int i;

	(void)state;
	snprintf(a1, sizeof(a1), "--office_clock_offset_s=%ld",
		 offset_to(6, 12, 0));
	snprintf(a2, sizeof(a2), "--office_clock_offset_s=%ld",
		 offset_to(3, 10, 0));
	snprintf(a3, sizeof(a3), "--office_clock_offset_s=%ld",
		 offset_to(6, 12, 1));
	args[0] = a1;
	assert_int_equal(bvt_relay_start(&sat, env.db, args), 0);
	args[0] = a2;
	assert_int_equal(bvt_relay_start(&wed, env.db, args), 0);
	args[0] = a3;
	assert_int_equal(bvt_relay_start(&sat2, env.db, args), 0);
	{
		json_t *r = create(ELISA, case_a, "team", -1, -1, -1);

		conv_id(r, team);
		json_decref(r);
	}
	/* Saturday noon: Elisa's first message gets the notice, on her own
	 * device and Kari's, naming nobody. */
	k = on_relay(sat.port, KARI);
	c = on_relay(sat.port, ELISA);
	n = elisa_writes(c, team, "oh-sat-1");
	assert_non_null(n);
	assert_string_equal(json_string_value(json_object_get(n, "kind")),
			    "out_of_hours");
	assert_string_equal(
		json_string_value(json_object_get(n, "conversation")), team);
	assert_string_equal(json_string_value(json_object_get(n, "phone")),
			    "+47 800 00 000");
	assert_string_equal(
		json_string_value(json_object_get(n, "emergency_phone")),
		"116 111");
	for (i = 0; i < N; i++)
		if (name[i][0])
			assert_null(strstr(bvt_js(n), name[i]));
	json_decref(n);
	for (;;) {
		d = bvt_next_deliver(k, bvt_ms(BVT_TIMEOUT));
		assert_non_null(d);
		bvt_ack(k, d);
		if (json_object_get(d, "notice"))
			break;
		json_decref(d);
	}
	json_decref(d);
	/* Her second message in the same closed period: no notice. */
	assert_null(elisa_writes(c, team, "oh-sat-2"));
	bvt_conn_free(c);
	bvt_conn_free(k);
	/* Wednesday 10:00: open, none. */
	c = on_relay(wed.port, ELISA);
	assert_null(elisa_writes(c, team, "oh-wed-1"));
	bvt_conn_free(c);
	/* A week later the office has been open since: a notice again. */
	c = on_relay(sat2.port, ELISA);
	n = elisa_writes(c, team, "oh-sat2-1");
	assert_non_null(n);
	json_decref(n);
	bvt_conn_free(c);
	assert_int_equal(sql_int("SELECT count(DISTINCT message_id) FROM queue "
				 "WHERE sender_device = 0 AND conversation = "
				 "$1::uuid",
				 team) >= 1,
			 1);
	bvt_relay_term(&sat, bvt_ms(BVT_TIMEOUT));
	bvt_relay_term(&wed, bvt_ms(BVT_TIMEOUT));
	bvt_relay_term(&sat2, bvt_ms(BVT_TIMEOUT));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_setup_cases),
		cmocka_unit_test(t_matrix),
		cmocka_unit_test(t_archive_required),
		cmocka_unit_test(t_protected),
		cmocka_unit_test(t_handover),
		cmocka_unit_test(t_out_of_hours),
	};

	return bvt_done(cmocka_run_group_tests_name(
		"22-case-rules", tests, group_setup, group_teardown));
}
