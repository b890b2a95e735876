/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 25-client-epost: secure e-post through libbvchat's public API against a
 * real relay and PostgreSQL (issue 7):
 * - a citizen starts a thread to the case team: it carries the
 *   municipality's expected answer time (the case view's answer_days
 *   working days), the caseworker's reply is threaded under it and carries
 *   none, and both histories show subject, thread and answer_by;
 * - staff start a thread to a citizen with an answer time they set; the
 *   citizen's reply is threaded and carries the municipality's;
 * - an e-post written while offline goes out after a restart, subject and
 *   thread intact;
 * - bad subjects and threads are refused before anything is stored.
 * Every wait is bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include <uv.h>

#include "client_peer.h"

#define DAY_MS (86400000LL)

struct mail {
	char mid[BV_CLIENT_MESSAGE_ID_LEN + 1];
	char subject[BV_CLIENT_SUBJECT_MAX + 1]; /* "" for a text */
	char thread[BV_CLIENT_MESSAGE_ID_LEN + 1];
	char text[64];
	int64_t answer_by_ms;
	int outgoing;
	enum bv_client_msg_state state;
};

struct mails {
	int n;
	struct mail m[16];
};

static int
mail_cb(void *arg, const struct bv_client_message *m)
{
	struct mails *h = arg;
	struct mail *x;

	if (m->notice || h->n >= 16)
		return 0;
	x = &h->m[h->n++];
	snprintf(x->mid, sizeof(x->mid), "%s", m->message_id);
	snprintf(x->subject, sizeof(x->subject), "%s",
		 m->subject ? m->subject : "");
	snprintf(x->thread, sizeof(x->thread), "%s",
		 m->thread ? m->thread : "");
	snprintf(x->text, sizeof(x->text), "%s", m->text);
	x->answer_by_ms = m->answer_by_ms;
	x->outgoing = m->outgoing;
	x->state = m->state;
	/* Texts have neither. */
	if (!m->subject)
		assert_null(m->thread);
	return 0;
}

/* The entry of mid in p's history, failing when it is not there. */
static struct mail
mail_of(struct peer *p, const char *mid)
{
	struct mails h;
	int i;

	memset(&h, 0, sizeof(h));
	assert_int_equal(bv_client_history(p->c, conv, 0, mail_cb, &h), 0);
	for (i = 0; i < h.n; i++)
		if (!strcmp(h.m[i].mid, mid))
			return h.m[i];
	fail_msg("%s has no %s in its history", p->name, mid);
	return h.m[0];
}

/* Sends an e-post and waits until the relay stored it. */
static void
mail(struct peer *from, const char *subject, const char *text,
     const char *thread, int64_t answer_by, char *mid)
{
	unsigned before = from->sent;

	assert_int_equal(bv_client_send_email(from->c, conv, subject, text,
					      thread, answer_by, mid),
			 0);
	if (!run_until(&from->sent, before + 1, bvt_ms(BVT_TIMEOUT)))
		fail_msg("%s: e-post not sent", from->name);
	assert_int_equal(from->sent_rc, 0);
}

/* The wall clock (the library's), ms. */
static int64_t
wall_ms(void)
{
	return (int64_t)time(NULL) * 1000;
}

/* 5 working days after t0 is 7 calendar days later from a weekday, 6 from
 * a Saturday, 5 from a Sunday (same time of day); the clock moves while
 * the test runs. */
static void
assert_answer_in_5_working_days(int64_t t0, int64_t answer_by)
{
	if (answer_by < t0 + 5 * DAY_MS - 1000 ||
	    answer_by > t0 + 7 * DAY_MS + 120000)
		fail_msg("answer_by %lld is not 5 working days after %lld",
			 (long long)answer_by, (long long)t0);
}

static void
t_citizen_starts(void **state)
{
	char m1[BV_CLIENT_MESSAGE_ID_LEN + 1], m2[BV_CLIENT_MESSAGE_ID_LEN + 1];
	struct peer cam, eli;
	struct mail x;
	int64_t t0;

	(void)state;
	memset(&cam, 0, sizeof(cam));
	memset(&eli, 0, sizeof(eli));
	enroll(&cam, "Camilla", NULL, 0);
	enroll(&eli, "Elisa", NULL, 0);
	case_pair(&cam, &eli);

	t0 = wall_ms();
	mail(&eli, "Samvær i sommer", "Kan jeg være hos mamma i juli?", NULL, 0,
	     m1);
	expect(&cam, m1, &eli, "Kan jeg være hos mamma i juli?");
	x = mail_of(&cam, m1);
	assert_string_equal(x.subject, "Samvær i sommer");
	assert_string_equal(x.thread, m1); /* it starts its thread */
	assert_answer_in_5_working_days(t0, x.answer_by_ms);
	x = mail_of(&eli, m1);
	assert_int_equal(x.outgoing, 1);
	assert_string_equal(x.subject, "Samvær i sommer");
	assert_answer_in_5_working_days(t0, x.answer_by_ms);

	/* Camilla answers in the thread: no promise from staff by default. */
	mail(&cam, "Sv: Samvær i sommer", "Vi ser på det og svarer deg.", m1, 0,
	     m2);
	expect(&eli, m2, &cam, "Vi ser på det og svarer deg.");
	x = mail_of(&eli, m2);
	assert_string_equal(x.thread, m1);
	assert_string_equal(x.subject, "Sv: Samvær i sommer");
	assert_int_equal(x.answer_by_ms, 0);
	x = mail_of(&cam, m2);
	assert_string_equal(x.thread, m1);

	/* A chat text in the same conversation is still a text. */
	say(&eli, "Takk!", m2);
	expect(&cam, m2, &eli, "Takk!");
	x = mail_of(&cam, m2);
	assert_string_equal(x.subject, "");

	assert_int_equal(cam.errors + eli.errors, 0);
	peer_close(&cam);
	peer_close(&eli);
}

static void
t_staff_starts(void **state)
{
	char m1[BV_CLIENT_MESSAGE_ID_LEN + 1], m2[BV_CLIENT_MESSAGE_ID_LEN + 1];
	struct peer cam, eli;
	struct mail x;
	int64_t by = wall_ms() + 3 * DAY_MS, t0;

	(void)state;
	memset(&cam, 0, sizeof(cam));
	memset(&eli, 0, sizeof(eli));
	enroll(&cam, "Camilla", NULL, 0);
	enroll(&eli, "Elisa", NULL, 0);
	case_pair(&cam, &eli);

	mail(&cam, "Møte neste uke", "Passer tirsdag kl. 10?", "", by, m1);
	expect(&eli, m1, &cam, "Passer tirsdag kl. 10?");
	x = mail_of(&eli, m1);
	assert_string_equal(x.subject, "Møte neste uke");
	assert_string_equal(x.thread, m1);
	assert_int_equal(x.answer_by_ms, by);

	t0 = wall_ms();
	mail(&eli, "Sv: Møte neste uke", "Ja, det passer.", m1, 0, m2);
	expect(&cam, m2, &eli, "Ja, det passer.");
	x = mail_of(&cam, m2);
	assert_string_equal(x.thread, m1);
	assert_answer_in_5_working_days(t0, x.answer_by_ms);

	/* -1: no answer time at all, also from a citizen. */
	mail(&eli, "Sv: Møte neste uke", "Kommer med mamma.", m1, -1, m2);
	expect(&cam, m2, &eli, "Kommer med mamma.");
	assert_int_equal(mail_of(&cam, m2).answer_by_ms, 0);

	/* Refused before anything is stored. */
	assert_int_equal(
		bv_client_send_email(eli.c, conv, "", "x", NULL, 0, m2),
		BV_EINVAL);
	assert_int_equal(bv_client_send_email(eli.c, conv, "a\033[2Jb", "x",
					      NULL, 0, m2),
			 BV_EINVAL);
	assert_int_equal(
		bv_client_send_email(eli.c, conv, "S", "", NULL, 0, m2),
		BV_EINVAL);
	assert_int_equal(bv_client_send_email(eli.c, conv, "S", "x",
					      "not a message id", 0, m2),
			 BV_EINVAL);
	assert_int_equal(
		bv_client_send_email(eli.c, conv, "S", "x", NULL, -2, m2),
		BV_EINVAL);

	assert_int_equal(cam.errors + eli.errors, 0);
	peer_close(&cam);
	peer_close(&eli);
}

static void
t_epost_after_restart(void **state)
{
	char m1[BV_CLIENT_MESSAGE_ID_LEN + 1];
	struct peer cam, eli;
	struct mail x;

	(void)state;
	memset(&cam, 0, sizeof(cam));
	memset(&eli, 0, sizeof(eli));
	enroll(&cam, "Camilla", NULL, 0);
	enroll(&eli, "Elisa", NULL, 0);
	case_pair(&cam, &eli);

	/* Written offline (the client never connected), then the app stops
	 * before the relay took it. */
	peer_close(&eli);
	peer_open(&eli, "Elisa");
	assert_int_equal(bv_client_send_email(eli.c, conv, "Klage",
					      "Jeg klager på vedtaket.", NULL,
					      0, m1),
			 0);
	peer_close(&eli);
	peer_open(&eli, "Elisa");
	assert_int_equal(bv_client_connect(eli.c), 0);
	expect(&cam, m1, &eli, "Jeg klager på vedtaket.");
	x = mail_of(&cam, m1);
	assert_string_equal(x.subject, "Klage");
	assert_string_equal(x.thread, m1);
	assert_true(x.answer_by_ms > 0);
	run_for(300);
	assert_int_equal(got(&cam, m1), 1);
	x = mail_of(&eli, m1);
	assert_int_equal(x.state >= BV_CLIENT_MSG_SENT, 1);
	peer_close(&cam);
	peer_close(&eli);
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
		T(t_citizen_starts),
		T(t_staff_starts),
		T(t_epost_after_restart),
	};
	/* clang-format on */

	return bvt_done(cmocka_run_group_tests_name("25-client-epost", tests,
						    group_setup, NULL));
}
