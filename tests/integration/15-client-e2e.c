/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 15-client-e2e: what libbvchat does end to end by itself, through its
 * public API against a real relay and PostgreSQL:
 * - two accounts with two devices each converse: every message reaches
 *   every other device exactly once, delivery receipts reach the sender's
 *   devices, a read receipt reaches them too and marks the message read on
 *   the reader's other device, and the local history shows each state;
 * - a message that cannot be decrypted (the receiver lost its session) is
 *   kept as a placeholder, asked for again and recovered exactly once;
 * - a message written while offline and not sent before the app stopped
 *   goes out after a restart, with its id, exactly once;
 * - the signed prekey is replaced when old, the relay hands out the new
 *   one, and sessions built from it work.
 * Every wait is bounded.
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
#include "store.h"

/* What bv_client_history() listed. */
struct hist {
	int n;
	char mid[16][BV_CLIENT_MESSAGE_ID_LEN + 1];
	enum bv_client_msg_state state[16];
	int outgoing[16];
	char text[16][64];
};

static int
hist_cb(void *arg, const struct bv_client_message *m)
{
	struct hist *h = arg;

	/* Out of office hours the service's notice is in the history too;
	 * these tests are about messages. */
	if (m->notice)
		return 0;
	if (h->n >= 16)
		return 1;
	assert_int_equal(strlen(m->text), m->text_len);
	snprintf(h->mid[h->n], sizeof(h->mid[0]), "%s", m->message_id);
	h->state[h->n] = m->state;
	h->outgoing[h->n] = m->outgoing;
	snprintf(h->text[h->n], sizeof(h->text[0]), "%s", m->text);
	h->n++;
	return 0;
}

static void
history(struct peer *p, const char *conversation, struct hist *h)
{
	memset(h, 0, sizeof(*h));
	assert_int_equal(bv_client_history(p->c, conversation, 0, hist_cb, h),
			 0);
}

/* The state of mid in p's history of conversation; -1 when absent. */
static int
state_of(struct peer *p, const char *conversation, const char *mid)
{
	struct hist h;
	int i;

	history(p, conversation, &h);
	for (i = 0; i < h.n; i++)
		if (!strcmp(h.mid[i], mid))
			return (int)h.state[i];
	return -1;
}

/* Runs the loop until p has n receipts of type for mid, or time is up. */
static int
wait_receipts(struct peer *p, enum bv_client_receipt type, const char *mid,
	      const char *from, unsigned n)
{
	int64_t deadline = bvt_now_ms() + bvt_ms(BVT_TIMEOUT);

	while (got_receipt(p, type, mid, from, 0) < n &&
	       bvt_now_ms() < deadline)
		uv_run(&loop, UV_RUN_ONCE);
	return got_receipt(p, type, mid, from, 0) >= n;
}

static int
conv_cb(void *arg, const struct bv_client_conversation *cv)
{
	int *n = arg;

	assert_string_equal(cv->conversation, conv);
	assert_true(cv->n_messages >= 2 && cv->last_seq > 0 &&
		    cv->last_time_ms > 0);
	(*n)++;
	return 0;
}

static void
t_two_by_two(void **state)
{
	struct peer a1, a2, b1, b2;
	char m1[BV_CLIENT_MESSAGE_ID_LEN + 1], m2[BV_CLIENT_MESSAGE_ID_LEN + 1];
	char A[BV_CLIENT_ACCOUNT_LEN + 1], B[BV_CLIENT_ACCOUNT_LEN + 1];
	const char *ids[1];
	struct hist h;
	int n = 0;

	(void)state;
	memset(&a1, 0, sizeof(a1));
	memset(&a2, 0, sizeof(a2));
	memset(&b1, 0, sizeof(b1));
	memset(&b2, 0, sizeof(b2));
	enroll(&a1, "a1", NULL, 0);
	snprintf(A, sizeof(A), "%s", bv_client_account(a1.c));
	enroll(&a2, "a2", A, 0);
	enroll(&b1, "b1", NULL, 0);
	snprintf(B, sizeof(B), "%s", bv_client_account(b1.c));
	enroll(&b2, "b2", B, 0);
	assert_string_equal(bv_client_account(a2.c), A);
	assert_string_equal(bv_client_account(b2.c), B);
	assert_int_not_equal(bv_client_device(a1.c), bv_client_device(a2.c));
	case_pair(&a1, &b1);

	/* a1 → B: both of B's devices and a1's own other device. */
	say(&a1, "Hei fra a1", m1);
	expect(&b1, m1, &a1, "Hei fra a1");
	expect(&b2, m1, &a1, "Hei fra a1");
	expect(&a2, m1, &a1, "Hei fra a1");

	/* Delivery receipts from each of B's devices reach both of A's,
	 * end-to-end encrypted; none for A's own copy. */
	if (!wait_receipts(&a1, BV_CLIENT_RECEIPT_DELIVERED, m1, B, 2))
		fail_msg("a1: %u delivery receipts for m1",
			 got_receipt(&a1, BV_CLIENT_RECEIPT_DELIVERED, m1, B,
				     0));
	assert_int_equal(got_receipt(&a1, BV_CLIENT_RECEIPT_DELIVERED, m1, B,
				     bv_client_device(b1.c)),
			 1);
	assert_int_equal(got_receipt(&a1, BV_CLIENT_RECEIPT_DELIVERED, m1, B,
				     bv_client_device(b2.c)),
			 1);
	if (!wait_receipts(&a2, BV_CLIENT_RECEIPT_DELIVERED, m1, B, 2))
		fail_msg("a2: no delivery receipts for m1");
	assert_int_equal(
		got_receipt(&a1, BV_CLIENT_RECEIPT_DELIVERED, m1, A, 0), 0);
	assert_int_equal(state_of(&a1, conv, m1), BV_CLIENT_MSG_DELIVERED);

	/* b2 → A: both of A's devices and b1. */
	say(&b2, "Svar fra b2", m2);
	expect(&a1, m2, &b2, "Svar fra b2");
	expect(&a2, m2, &b2, "Svar fra b2");
	expect(&b1, m2, &b2, "Svar fra b2");

	/* b1 reads m1: A's devices hear it, and b2 marks it read too. */
	ids[0] = m1;
	assert_int_equal(bv_client_mark_read(b1.c, conv, A, ids, 1), 0);
	assert_int_equal(bv_client_mark_read(b1.c, conv, A, ids, 0), BV_EINVAL);
	assert_int_equal(bv_client_mark_read(b1.c, "x", A, ids, 1), BV_EINVAL);
	if (!wait_receipts(&a1, BV_CLIENT_RECEIPT_READ, m1, B, 1))
		fail_msg("a1: no read receipt for m1");
	if (!wait_receipts(&a2, BV_CLIENT_RECEIPT_READ, m1, B, 1))
		fail_msg("a2: no read receipt for m1");
	if (!wait_receipts(&b2, BV_CLIENT_RECEIPT_READ, m1, B, 1))
		fail_msg("b2: no read sync for m1");
	assert_int_equal(state_of(&a1, conv, m1), BV_CLIENT_MSG_READ);
	assert_int_equal(state_of(&b1, conv, m1), BV_CLIENT_MSG_READ);
	assert_int_equal(state_of(&b2, conv, m1), BV_CLIENT_MSG_READ);

	/* Exactly once everywhere, and nothing went wrong. */
	run_for(500);
	assert_int_equal(got(&b1, m1) + got(&b2, m1) + got(&a2, m1), 3);
	assert_int_equal(got(&a1, m2) + got(&a2, m2) + got(&b1, m2), 3);
	assert_int_equal(got(&a1, m1) + got(&b2, m2), 0);
	assert_int_equal(a1.n_rx + a2.n_rx + b1.n_rx + b2.n_rx, 6);
	assert_int_equal(a1.errors + a2.errors + b1.errors + b2.errors, 0);

	/* The history, as the app lists it. */
	history(&a1, conv, &h);
	assert_int_equal(h.n, 2);
	assert_string_equal(h.mid[0], m1);
	assert_int_equal(h.outgoing[0], 1);
	assert_string_equal(h.text[0], "Hei fra a1");
	assert_string_equal(h.mid[1], m2);
	assert_int_equal(h.outgoing[1], 0);
	assert_int_equal(h.state[1], BV_CLIENT_MSG_RECEIVED);
	assert_string_equal(h.text[1], "Svar fra b2");
	assert_int_equal(bv_client_conversations(a1.c, conv_cb, &n), 0);
	assert_int_equal(n, 1);

	peer_close(&a1);
	peer_close(&a2);
	peer_close(&b1);
	peer_close(&b2);
}

/* Deletes the session p's store has with (account, device), as a lost or
 * corrupted session would leave it. p must be closed. */
static void
lose_session(struct peer *p, const char *account, uint32_t device)
{
	struct bv_store *s = NULL;
	int deleted = 0;

	assert_null(p->c);
	assert_int_equal(bv_store_open(p->store, store_key, &s), 0);
	assert_int_equal(
		bv_store_session_delete(s, account, (int32_t)device, &deleted),
		0);
	assert_int_equal(deleted, 1);
	bv_store_close(s);
}

static void
t_resend_recovers(void **state)
{
	struct peer cam, eli;
	char m1[BV_CLIENT_MESSAGE_ID_LEN + 1], m2[BV_CLIENT_MESSAGE_ID_LEN + 1];
	char m3[BV_CLIENT_MESSAGE_ID_LEN + 1];
	char C[BV_CLIENT_ACCOUNT_LEN + 1], E[BV_CLIENT_ACCOUNT_LEN + 1];
	struct hist h;
	unsigned before, online;
	int i, placeholders = 0, received = 0;

	(void)state;
	memset(&cam, 0, sizeof(cam));
	memset(&eli, 0, sizeof(eli));
	enroll(&cam, "camilla", NULL, 0);
	enroll(&eli, "elisa", NULL, 0);
	snprintf(C, sizeof(C), "%s", bv_client_account(cam.c));
	snprintf(E, sizeof(E), "%s", bv_client_account(eli.c));
	case_pair(&cam, &eli);
	say(&cam, "Hei Elisa", m1);
	expect(&eli, m1, &cam, "Hei Elisa");
	say(&eli, "Hei", m2);
	expect(&cam, m2, &eli, "Hei");

	/* Elisa's session with Camilla's device is lost. */
	peer_close(&eli);
	lose_session(&eli, C, bv_client_device(cam.c));
	peer_open(&eli, "elisa");
	online = eli.online;
	assert_int_equal(bv_client_connect(eli.c), 0);
	if (!run_until(&eli.online, online + 1, BVT_TIMEOUT))
		fail_msg("elisa did not come back online");

	/* Camilla's next message is a Signal message in the old session:
	 * undecryptable. Elisa keeps a placeholder, asks for a resend, and
	 * gets the message exactly once. */
	before = eli.n_rx;
	say(&cam, "Kan du lese dette?", m3);
	expect(&eli, m3, &cam, "Kan du lese dette?");
	run_for(1000);
	assert_int_equal(got(&eli, m3), 1);
	assert_int_equal(eli.n_rx, before + 1);
	assert_int_equal(eli.last_error, BV_EUNDECRYPTABLE);
	/* The placeholder stays in the conversation it was sent in, next to
	 * the recovered message. */
	history(&eli, conv, &h);
	for (i = 0; i < h.n; i++) {
		placeholders += !strcmp(h.mid[i], m3) &&
				h.state[i] == BV_CLIENT_MSG_UNDECRYPTABLE &&
				h.text[i][0] == '\0';
		received += !strcmp(h.mid[i], m3) &&
			    h.state[i] == BV_CLIENT_MSG_RECEIVED &&
			    !strcmp(h.text[i], "Kan du lese dette?");
	}
	assert_int_equal(placeholders, 1);
	assert_int_equal(received, 1);

	/* The new session works both ways afterwards. */
	eli.errors = 0;
	say(&eli, "Ja, nå går det", m1);
	expect(&cam, m1, &eli, "Ja, nå går det");
	say(&cam, "Fint", m2);
	expect(&eli, m2, &cam, "Fint");
	assert_int_equal(cam.errors + eli.errors, 0);

	peer_close(&cam);
	peer_close(&eli);
}

static void
t_unsent_after_restart(void **state)
{
	struct peer cam, eli;
	char m1[BV_CLIENT_MESSAGE_ID_LEN + 1], m2[BV_CLIENT_MESSAGE_ID_LEN + 1];
	char E[BV_CLIENT_ACCOUNT_LEN + 1];
	unsigned n;

	(void)state;
	memset(&cam, 0, sizeof(cam));
	memset(&eli, 0, sizeof(eli));
	enroll(&cam, "camilla", NULL, 0);
	enroll(&eli, "elisa", NULL, 0);
	snprintf(E, sizeof(E), "%s", bv_client_account(eli.c));
	case_pair(&cam, &eli);
	say(&cam, "Før", m1);
	expect(&eli, m1, &cam, "Før");

	/* Camilla writes while offline, and the app stops before it could
	 * send (the client never connected). */
	peer_close(&cam);
	peer_open(&cam, "camilla");
	n = cam.sent;
	assert_int_equal(
		bv_client_send_text(cam.c, conv, "Skrevet uten nett", m2), 0);
	run_for(300);
	assert_int_equal(cam.sent, n);
	assert_int_equal(state_of(&cam, conv, m2), BV_CLIENT_MSG_SENDING);
	peer_close(&cam);

	/* The next start sends it, with its id, exactly once. */
	peer_open(&cam, "camilla");
	assert_int_equal(bv_client_connect(cam.c), 0);
	if (!run_until(&cam.sent, n + 1, BVT_TIMEOUT))
		fail_msg("camilla: unsent message not sent after restart");
	assert_string_equal(cam.sent_mid, m2);
	assert_int_equal(cam.sent_rc, 0);
	expect(&eli, m2, &cam, "Skrevet uten nett");
	run_for(500);
	assert_int_equal(got(&eli, m2), 1);
	assert_int_equal(state_of(&cam, conv, m2) >= BV_CLIENT_MSG_SENT, 1);

	/* Another restart sends nothing again. */
	peer_close(&cam);
	peer_open(&cam, "camilla");
	assert_int_equal(bv_client_connect(cam.c), 0);
	run_for(1000);
	assert_int_equal(cam.sent, n + 1);
	assert_int_equal(got(&eli, m2), 1);
	assert_int_equal(cam.errors + eli.errors, 0);

	peer_close(&cam);
	peer_close(&eli);
}

/* The id of the signed prekey the relay holds for p's device; -1: none. */
static long long
relay_signed_id(const struct peer *p)
{
	char dev[16];
	const char *params[2] = {bv_client_account(p->c), dev};

	snprintf(dev, sizeof(dev), "%u", bv_client_device(p->c));
	return bvt_sql_int(env.db,
			   "SELECT coalesce(max(s.key_id), -1) FROM"
			   " signed_prekeys s JOIN devices d ON d.id = s.device"
			   " WHERE d.account_id = $1::uuid"
			   " AND d.device_id = $2::int",
			   2, params);
}

/* Runs the loop until the relay holds a signed prekey id above id. */
static long long
wait_signed_above(const struct peer *p, long long id)
{
	int64_t deadline = bvt_now_ms() + bvt_ms(BVT_TIMEOUT);
	long long now = relay_signed_id(p);

	while (now <= id && bvt_now_ms() < deadline) {
		run_for(200);
		now = relay_signed_id(p);
	}
	return now;
}

static void
t_signed_prekey_rotation(void **state)
{
	struct peer cam, eli, ola;
	char m1[BV_CLIENT_MESSAGE_ID_LEN + 1], m2[BV_CLIENT_MESSAGE_ID_LEN + 1];
	char C[BV_CLIENT_ACCOUNT_LEN + 1];
	long long id1, id2, id3;

	(void)state;
	memset(&cam, 0, sizeof(cam));
	memset(&eli, 0, sizeof(eli));
	memset(&ola, 0, sizeof(ola));
	peer_signed_max_age_ms = 1500;
	enroll(&cam, "camilla", NULL, 0);
	peer_signed_max_age_ms = 0;
	snprintf(C, sizeof(C), "%s", bv_client_account(cam.c));
	id1 = relay_signed_id(&cam);
	assert_int_equal(id1, 1);
	case_new();
	case_add(&cam, "caseworker", "Camilla");

	/* Older than its maximum age: replaced, while connected. */
	id2 = wait_signed_above(&cam, id1);
	if (id2 <= id1)
		fail_msg("the signed prekey was not replaced (relay has %lld)",
			 id2);
	enroll(&eli, "elisa", NULL, 0);
	case_add(&eli, "child", "Elisa");
	case_team(&eli);
	say(&eli, "Hei", m1); /* X3DH with the new signed prekey */
	expect(&cam, m1, &eli, "Hei");

	/* And again, after a restart too; the one before stays usable. */
	peer_close(&cam);
	run_for(1600);
	peer_signed_max_age_ms = 1500;
	peer_open(&cam, "camilla");
	peer_signed_max_age_ms = 0;
	assert_int_equal(bv_client_connect(cam.c), 0);
	id3 = wait_signed_above(&cam, id2);
	if (id3 <= id2)
		fail_msg("no rotation after restart (relay has %lld)", id3);
	enroll(&ola, "ola", NULL, 0);
	case_add(&ola, "child", "Ola");
	case_team(&ola);
	say(&ola, "Hallo", m2);
	expect(&cam, m2, &ola, "Hallo");
	assert_int_equal(cam.errors + eli.errors + ola.errors, 0);

	peer_close(&cam);
	peer_close(&eli);
	peer_close(&ola);
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
		T(t_two_by_two),
		T(t_resend_recovers),
		T(t_unsent_after_restart),
		T(t_signed_prekey_rotation),
	};
	/* clang-format on */

	return bvt_done(cmocka_run_group_tests_name("15-client-e2e", tests,
						    group_setup, NULL));
}
