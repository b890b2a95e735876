/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 21-client-cases: libbvchat's case conversations (docs/cases.md) against a
 * real relay, the Elisa case set up with `bvchat-relay admin`: the case
 * view each person gets (Elisa sees herself, the team and the case file,
 * never Marthe or the foster parents; Marthe never sees Randi, who is
 * protected from her; Camilla sees the whole roster); a handover while
 * everyone is connected (Camilla leaves, Kari joins: Elisa's next message
 * reaches Kari and not Camilla, Camilla's send is refused, Kari answers in
 * the same conversation); the case file (the archive account's device)
 * gets every text and the receipts; content that claims another
 * conversation than the one it was sent in is refused; and the notice the
 * service sends out of office hours is shown and stored. Every wait is
 * bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <uv.h>

#include "client_peer.h"
#include "content.h"

/* client.c's test hook: each content just before it is encrypted. */
extern void (*client__test_content)(struct bv_content *ct);

enum { ELISA, CAMILLA, KARI, MARTHE, RANDI, ARCHIVE, N };
static struct peer p[N];
static const char *const names[N] = {"elisa",  "camilla", "kari",
				     "marthe", "randi",	  "archive"};

#define MID(x) char x[BV_CLIENT_MESSAGE_ID_LEN + 1]

static const char *
acc(int who)
{
	return bv_client_account(p[who].c);
}

struct people_find {
	const char *account;
	const char *role;
	int found;
};

static int
people_cb(void *arg, const struct bv_client_case *cs)
{
	struct people_find *f = arg;
	size_t i;

	/* The municipality's e-post answer time, default 5 (0010). */
	assert_int_equal(cs->answer_days, 5);
	for (i = 0; i < cs->n_people; i++)
		if (!strcmp(cs->people[i].account, f->account)) {
			f->found++;
			f->role = cs->people[i].role;
			/* The case file is not a person: no name. */
			if (!strcmp(cs->people[i].role, BV_CLIENT_ROLE_ARCHIVE))
				assert_null(cs->people[i].name);
			else
				assert_non_null(cs->people[i].name);
		}
	return 0;
}

/* 1 when viewer's case view lists account among the people. */
static int
sees(int viewer, int who)
{
	struct people_find f = {acc(who), NULL, 0};

	assert_int_equal(bv_client_cases(p[viewer].c, people_cb, &f), 0);
	return f.found;
}

/* Waits until viewer's view has (or, want 0, no longer has) who as a
 * member of conversation. */
static int
wait_member(int viewer, const char *conversation, int who, int want)
{
	int64_t deadline = bvt_now_ms() + bvt_ms(BVT_TIMEOUT);

	while (view_has(&p[viewer], conversation, acc(who)) != want &&
	       bvt_now_ms() < deadline)
		uv_run(&loop, UV_RUN_ONCE);
	return view_has(&p[viewer], conversation, acc(who)) == want;
}

/* What bv_client_history() listed. */
struct hist {
	int n;
	char mid[32][BV_CLIENT_MESSAGE_ID_LEN + 1];
	enum bv_client_msg_state state[32];
	char journal[32][BV_CLIENT_MESSAGE_ID_LEN + 1]; /* "" when none */
	int notice;
};

static int
hist_cb(void *arg, const struct bv_client_message *m)
{
	struct hist *h = arg;

	if (m->notice) {
		assert_string_equal(m->sender, "");
		assert_string_equal(m->notice->kind, "out_of_hours");
		h->notice++;
	}
	if (h->n >= 32)
		return 1;
	snprintf(h->mid[h->n], sizeof(h->mid[0]), "%s", m->message_id);
	h->state[h->n] = m->state;
	snprintf(h->journal[h->n], sizeof(h->journal[0]), "%s",
		 m->journal ? m->journal : "");
	h->n++;
	return 0;
}

static void
history(int who, const char *conversation, struct hist *h)
{
	memset(h, 0, sizeof(*h));
	assert_int_equal(
		bv_client_history(p[who].c, conversation, 0, hist_cb, h), 0);
}

static int
hist_index(const struct hist *h, const char *mid)
{
	int i;

	for (i = 0; i < h->n; i++)
		if (!strcmp(h->mid[i], mid))
			return i;
	return -1;
}

/* Enrolls everyone, sets the case up and waits for the views. */
static void
elisa_case(void)
{
	const char *prot[] = {"protect",  "--case", case_id,	 "--person",
			      acc(RANDI), "--from", acc(MARTHE), NULL};
	int i;

	memset(p, 0, sizeof(p));
	for (i = 0; i < N; i++) {
		/* The case file reads nobody's messages: no receipts. */
		peer_no_delivery_receipts = i == ARCHIVE;
		enroll(&p[i], names[i], NULL, 0);
	}
	peer_no_delivery_receipts = 0;
	case_archive(&p[ARCHIVE]);
	case_new();
	case_add(&p[ELISA], "child", "Elisa (17)");
	case_add(&p[MARTHE], "parent", "Marthe");
	case_add(&p[RANDI], "foster_parent", "Randi");
	case_add(&p[CAMILLA], "caseworker", "Camilla");
	prot[4] = acc(RANDI);
	prot[6] = acc(MARTHE);
	assert_int_equal(admin(NULL, 0, prot), 0);
	case_team(&p[ELISA]);
	for (i = 0; i < N; i++)
		if (i != KARI)
			peer_cases(&p[i]);
}

static void
t_views(void **state)
{
	(void)state;
	elisa_case();

	/* Elisa: herself, her team and the case file; not her mother nor
	 * her foster mother. */
	assert_int_equal(sees(ELISA, ELISA), 1);
	assert_int_equal(sees(ELISA, CAMILLA), 1);
	assert_int_equal(sees(ELISA, ARCHIVE), 1);
	assert_int_equal(sees(ELISA, MARTHE), 0);
	assert_int_equal(sees(ELISA, RANDI), 0);
	assert_int_equal(sees(ELISA, KARI), 0);
	assert_true(view_has(&p[ELISA], conv, acc(ELISA)));
	assert_true(view_has(&p[ELISA], conv, acc(CAMILLA)));
	assert_true(view_has(&p[ELISA], conv, acc(ARCHIVE)));
	assert_false(view_has(&p[ELISA], conv, acc(MARTHE)));

	/* Camilla (staff): the whole roster, and the conversation. */
	assert_int_equal(sees(CAMILLA, ELISA), 1);
	assert_int_equal(sees(CAMILLA, MARTHE), 1);
	assert_int_equal(sees(CAMILLA, RANDI), 1);
	assert_int_equal(sees(CAMILLA, CAMILLA), 1);
	assert_int_equal(sees(CAMILLA, ARCHIVE), 1);
	assert_true(view_has(&p[CAMILLA], conv, acc(ELISA)));

	/* Marthe never learns of Randi, who is protected from her; nor of
	 * Elisa's conversation. */
	assert_int_equal(sees(MARTHE, MARTHE), 1);
	assert_int_equal(sees(MARTHE, RANDI), 0);
	assert_int_equal(sees(MARTHE, ELISA), 0);
	assert_false(view_has(&p[MARTHE], conv, acc(ELISA)));

	/* Kari is on no case yet. */
	peer_cases(&p[KARI]);
	assert_int_equal(sees(KARI, KARI), 0);

	/* The view survives a restart (the store keeps it). */
	peer_close(&p[ELISA]);
	peer_open(&p[ELISA], names[ELISA]);
	assert_true(view_has(&p[ELISA], conv, acc(CAMILLA)));
	assert_int_equal(sees(ELISA, MARTHE), 0);

	for (int i = 0; i < N; i++)
		peer_close(&p[i]);
}

static void
t_handover_and_archive(void **state)
{
	MID(m1);
	MID(m2);
	MID(m3);
	MID(m4);
	MID(m5);
	const char *rm[] = {"roster-remove", "--case", case_id,
			    "--account",     NULL,     NULL};
	const char *ids[1];
	struct hist h;
	int i, i1, i2, i3, i5;

	(void)state;
	elisa_case();

	/* Camilla and Elisa chat; the case file gets both texts. */
	say(&p[CAMILLA], "Hei Elisa, hvordan går det?", m1);
	expect(&p[ELISA], m1, &p[CAMILLA], "Hei Elisa, hvordan går det?");
	say(&p[ELISA], "Bra, takk", m2);
	expect(&p[CAMILLA], m2, &p[ELISA], "Bra, takk");
	expect(&p[ARCHIVE], m1, &p[CAMILLA], "Hei Elisa, hvordan går det?");
	expect(&p[ARCHIVE], m2, &p[ELISA], "Bra, takk");

	/* Receipts are journaled too: Elisa's delivery receipt for m1 and
	 * the read receipt reach the case file, end-to-end encrypted. */
	ids[0] = m1;
	assert_int_equal(
		bv_client_mark_read(p[ELISA].c, conv, acc(CAMILLA), ids, 1), 0);
	{
		int64_t deadline = bvt_now_ms() + bvt_ms(BVT_TIMEOUT);

		while ((!got_receipt(&p[ARCHIVE], BV_CLIENT_RECEIPT_DELIVERED,
				     m1, acc(ELISA), 0) ||
			!got_receipt(&p[ARCHIVE], BV_CLIENT_RECEIPT_READ, m1,
				     acc(ELISA), 0) ||
			!got_receipt(&p[CAMILLA], BV_CLIENT_RECEIPT_READ, m1,
				     acc(ELISA), 0)) &&
		       bvt_now_ms() < deadline)
			uv_run(&loop, UV_RUN_ONCE);
	}
	assert_true(got_receipt(&p[ARCHIVE], BV_CLIENT_RECEIPT_DELIVERED, m1,
				acc(ELISA), 0));
	assert_true(got_receipt(&p[ARCHIVE], BV_CLIENT_RECEIPT_READ, m1,
				acc(ELISA), 0));
	assert_true(got_receipt(&p[CAMILLA], BV_CLIENT_RECEIPT_READ, m1,
				acc(ELISA), 0));
	/* The case file sends no delivery receipts of its own. */
	assert_int_equal(got_receipt(&p[CAMILLA], BV_CLIENT_RECEIPT_DELIVERED,
				     m1, acc(ARCHIVE), 0),
			 0);

	/* Handover while everyone is connected: Camilla leaves the case,
	 * Kari joins it. */
	rm[4] = acc(CAMILLA);
	assert_int_equal(admin(NULL, 0, rm), 0);
	case_add(&p[KARI], "caseworker", "Kari");

	/* Elisa's next message reaches Kari, not Camilla, whatever Elisa's
	 * view knew when she wrote it. */
	say(&p[ELISA], "Er det noen der?", m3);
	expect(&p[KARI], m3, &p[ELISA], "Er det noen der?");
	expect(&p[ARCHIVE], m3, &p[ELISA], "Er det noen der?");
	run_for(bvt_ms(500));
	assert_int_equal(got(&p[CAMILLA], m3), 0);

	/* Camilla's send is refused as if the conversation did not exist. */
	p[CAMILLA].errors = 0;
	assert_int_equal(say_in(&p[CAMILLA], conv, "Jeg er her fortsatt", m4),
			 BV_ENOACCOUNT);
	run_for(bvt_ms(300));
	assert_int_equal(got(&p[ELISA], m4), 0);
	assert_int_equal(got(&p[KARI], m4), 0);
	assert_int_equal(got(&p[ARCHIVE], m4), 0);

	/* Views follow: Kari has the conversation, Elisa sees Kari and no
	 * longer Camilla; Camilla's view loses the conversation. */
	assert_true(wait_member(KARI, conv, ELISA, 1));
	assert_true(wait_member(ELISA, conv, KARI, 1));
	assert_true(wait_member(ELISA, conv, CAMILLA, 0));
	assert_int_equal(sees(ELISA, CAMILLA), 0);
	assert_true(wait_member(CAMILLA, conv, ELISA, 0));

	/* Kari answers in the same conversation. */
	say(&p[KARI], "Hei Elisa, jeg er Kari og har tatt over saken", m5);
	expect(&p[ELISA], m5, &p[KARI],
	       "Hei Elisa, jeg er Kari og har tatt over saken");
	expect(&p[ARCHIVE], m5, &p[KARI],
	       "Hei Elisa, jeg er Kari og har tatt over saken");
	run_for(bvt_ms(300));
	assert_int_equal(got(&p[CAMILLA], m5), 0);

	/* Elisa's history: one conversation that goes on. */
	history(ELISA, conv, &h);
	i1 = hist_index(&h, m1);
	i2 = hist_index(&h, m2);
	i3 = hist_index(&h, m3);
	i5 = hist_index(&h, m5);
	assert_true(i1 >= 0 && i1 < i2 && i2 < i3 && i3 < i5);
	assert_int_equal(hist_index(&h, m4), -1);
	assert_int_equal(h.state[i5], BV_CLIENT_MSG_RECEIVED);
	/* Every text exactly once in the case file. */
	assert_int_equal(got(&p[ARCHIVE], m1) + got(&p[ARCHIVE], m2) +
				 got(&p[ARCHIVE], m3) + got(&p[ARCHIVE], m5),
			 4);
	assert_int_equal(p[ELISA].errors + p[KARI].errors, 0);

	for (i = 0; i < N; i++)
		peer_close(&p[i]);
}

/* The misbehaving client's rewrite: the text says it belongs to Elisa's
 * conversation while it is sent in Marthe's. */
static char inject_into[BV_CLIENT_ACCOUNT_LEN + 1];

static void
inject(struct bv_content *ct)
{
	if (ct->kind == BV_CONTENT_TEXT && !strcmp(ct->text, "injisert"))
		snprintf(ct->conversation, sizeof(ct->conversation), "%s",
			 inject_into);
}

static void
t_conversation_mismatch(void **state)
{
	char elisa_conv[BV_CLIENT_ACCOUNT_LEN + 1];
	MID(m1);
	MID(m2);
	struct hist h;
	int i;

	(void)state;
	elisa_case();
	snprintf(elisa_conv, sizeof(elisa_conv), "%s", conv);
	/* Marthe's own team conversation: Camilla is in both. */
	case_team(&p[MARTHE]);
	peer_cases(&p[MARTHE]);
	peer_cases(&p[CAMILLA]);

	/* Marthe's client claims Elisa's conversation inside a message it
	 * sends in her own: the relay takes it (the envelopes are fine). */
	snprintf(inject_into, sizeof(inject_into), "%s", elisa_conv);
	client__test_content = inject;
	p[CAMILLA].errors = 0;
	i = say_in(&p[MARTHE], conv, "injisert", m1);
	client__test_content = NULL;
	assert_int_equal(i, 0);

	/* Camilla's client refuses it: no message, an error, and nothing in
	 * Elisa's conversation; a placeholder where it was really sent. */
	if (!run_until(&p[CAMILLA].errors, 1, BVT_TIMEOUT))
		fail_msg("camilla: the injected message was not refused");
	assert_int_equal(p[CAMILLA].last_error, BV_EFIELD);
	run_for(bvt_ms(300));
	assert_int_equal(got(&p[CAMILLA], m1), 0);
	assert_int_equal(got(&p[ARCHIVE], m1), 0);
	history(CAMILLA, elisa_conv, &h);
	assert_int_equal(hist_index(&h, m1), -1);
	history(CAMILLA, conv, &h);
	i = hist_index(&h, m1);
	assert_true(i >= 0);
	assert_int_equal(h.state[i], BV_CLIENT_MSG_UNDECRYPTABLE);
	history(ARCHIVE, elisa_conv, &h);
	assert_int_equal(hist_index(&h, m1), -1);

	/* An honest message in Marthe's conversation still goes through. */
	say(&p[MARTHE], "Kan vi snakke i morgen?", m2);
	expect(&p[CAMILLA], m2, &p[MARTHE], "Kan vi snakke i morgen?");

	for (i = 0; i < N; i++)
		peer_close(&p[i]);
}

static void
t_out_of_hours(void **state)
{
	/* Open one minute a day, at midnight: closed now (the one minute
	 * aside; the test then says so and passes without a notice). */
	const char *closed[] = {"tenant-set",	  "--tenant",
				env.tenant.id,	  "--office-days",
				"mon-sun",	  "--open",
				"00:00",	  "--close",
				"00:01",	  "--out-of-hours-phone",
				"+47 800 00 000", NULL};
	const char *tenant[1] = {env.tenant.id};
	MID(m1);
	MID(m2);
	struct hist h;
	unsigned cu;
	int i;

	(void)state;
	elisa_case();
	assert_int_equal(admin(NULL, 0, closed), 0);
	if (bvt_sql_int(env.db,
			"SELECT bv_tenant_open_at($1::uuid, now())::int", 1,
			tenant) != 0) {
		print_message("the office is open this minute: skipped\n");
		goto out;
	}

	/* Elisa writes while the office is closed: at once a notice from
	 * the service, to her and to the team, with the numbers to call. */
	say(&p[ELISA], "Hei, er det noen der nå?", m1);
	expect(&p[CAMILLA], m1, &p[ELISA], "Hei, er det noen der nå?");
	if (!run_until(&p[ELISA].notices, 1, BVT_TIMEOUT))
		fail_msg("elisa: no out-of-hours notice");
	assert_true(run_until(&p[CAMILLA].notices, 1, BVT_TIMEOUT));
	assert_true(run_until(&p[ARCHIVE].notices, 1, BVT_TIMEOUT));
	assert_string_equal(p[ELISA].notice.conversation, conv);
	assert_string_equal(p[ELISA].notice.kind, "out_of_hours");
	assert_string_equal(p[ELISA].notice.phone, "+47 800 00 000");
	assert_string_equal(p[ELISA].notice.emergency, "116 111");

	/* Once per closed period; stored, from the service. */
	say(&p[ELISA], "Hallo?", m2);
	expect(&p[CAMILLA], m2, &p[ELISA], "Hallo?");
	run_for(bvt_ms(500));
	assert_int_equal(p[ELISA].notices, 1);
	history(ELISA, conv, &h);
	assert_int_equal(h.notice, 1);
	i = hist_index(&h, p[ELISA].notice.mid);
	assert_true(i >= 0);
	assert_int_equal(h.state[i], BV_CLIENT_MSG_RECEIVED);
	/* After a restart it is still there, and not shown again. */
	peer_close(&p[ELISA]);
	peer_open(&p[ELISA], names[ELISA]);
	cu = p[ELISA].caught_up;
	assert_int_equal(bv_client_connect(p[ELISA].c), 0);
	assert_true(run_until(&p[ELISA].caught_up, cu + 1, BVT_TIMEOUT));
	history(ELISA, conv, &h);
	assert_int_equal(h.notice, 1);
	assert_int_equal(p[ELISA].notices, 1);
out:
	for (i = 0; i < N; i++)
		peer_close(&p[i]);
}

/*
 * The case file says which messages it has journaled: everyone in the
 * conversation sees it in their history; the same claim from anyone but
 * the conversation's archive is refused.
 */
static void
t_journaled(void **state)
{
	const char *ids[2];
	MID(m1);
	MID(m2);
	MID(m3);
	struct hist h;
	unsigned errs;
	int i;

	(void)state;
	elisa_case();
	say(&p[ELISA], "Kan jeg flytte hjem til jul?", m1);
	expect(&p[ARCHIVE], m1, &p[ELISA], "Kan jeg flytte hjem til jul?");
	say(&p[CAMILLA], "Det skal vi snakke om på torsdag.", m2);
	expect(&p[ARCHIVE], m2, &p[CAMILLA],
	       "Det skal vi snakke om på torsdag.");
	expect(&p[ELISA], m2, &p[CAMILLA], "Det skal vi snakke om på torsdag.");

	ids[0] = m1;
	ids[1] = m2;
	assert_int_equal(bv_client_mark_journaled(p[ARCHIVE].c, conv, ids, 2,
						  "2026/000017", NULL),
			 0);
	for (i = ELISA; i <= CAMILLA; i++) {
		int64_t deadline = bvt_now_ms() + bvt_ms(BVT_TIMEOUT);

		while (got_receipt(&p[i], BV_CLIENT_RECEIPT_JOURNALED, m2,
				   acc(ARCHIVE), 0) == 0 &&
		       bvt_now_ms() < deadline)
			uv_run(&loop, UV_RUN_ONCE);
		assert_int_equal(got_receipt(&p[i], BV_CLIENT_RECEIPT_JOURNALED,
					     m1, acc(ARCHIVE), 0),
				 1);
		history(i, conv, &h);
		assert_string_equal(h.journal[hist_index(&h, m1)],
				    "2026/000017");
		assert_string_equal(h.journal[hist_index(&h, m2)],
				    "2026/000017");
	}
	history(ARCHIVE, conv, &h);
	assert_string_equal(h.journal[hist_index(&h, m1)], "2026/000017");

	/* Camilla is staff, not the case file: Elisa's client refuses her
	 * claim and keeps m3 unjournaled. */
	say(&p[ELISA], "Ok", m3);
	expect(&p[CAMILLA], m3, &p[ELISA], "Ok");
	errs = p[ELISA].errors;
	ids[0] = m3;
	assert_int_equal(bv_client_mark_journaled(p[CAMILLA].c, conv, ids, 1,
						  "2026/000018", NULL),
			 0);
	if (!run_until(&p[ELISA].errors, errs + 1, BVT_TIMEOUT))
		fail_msg("elisa: a journaled claim from staff was believed");
	assert_int_equal(p[ELISA].last_error, BV_EFIELD);
	assert_int_equal(got_receipt(&p[ELISA], BV_CLIENT_RECEIPT_JOURNALED, m3,
				     NULL, 0),
			 0);
	history(ELISA, conv, &h);
	assert_string_equal(h.journal[hist_index(&h, m3)], "");

	for (i = 0; i < N; i++)
		peer_close(&p[i]);
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
		T(t_views),
		T(t_handover_and_archive),
		T(t_journaled),
		T(t_conversation_mismatch),
		T(t_out_of_hours),
	};
	/* clang-format on */

	return bvt_done(cmocka_run_group_tests_name("21-client-cases", tests,
						    group_setup, NULL));
}
