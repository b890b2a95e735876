/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 11-client-chat: libbvchat's public API (bvchat.h) against a real relay.
 * Camilla (two devices, caseworker) and Elisa (child) enroll through
 * bv_client_enroll(), are put on a case, and chat both ways in Elisa's team
 * conversation: each device gets each message exactly once, the sender's
 * other device a copy; an offline device catches up from its store; a
 * device added later is found through BV_EDEVICES. Clients share one loop
 * (and one runs its own); every wait is bounded by a deadline.
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

static void
t_chat(void **state)
{
	struct peer cam1, cam2, eli, eli2;
	char m1[BV_CLIENT_MESSAGE_ID_LEN + 1], m2[BV_CLIENT_MESSAGE_ID_LEN + 1];
	char m3[BV_CLIENT_MESSAGE_ID_LEN + 1], m4[BV_CLIENT_MESSAGE_ID_LEN + 1];
	char m5[BV_CLIENT_MESSAGE_ID_LEN + 1], m6[BV_CLIENT_MESSAGE_ID_LEN + 1];
	char camilla[BV_CLIENT_ACCOUNT_LEN + 1],
		elisa[BV_CLIENT_ACCOUNT_LEN + 1];
	(void)state;
	memset(&cam1, 0, sizeof(cam1));
	memset(&cam2, 0, sizeof(cam2));
	memset(&eli, 0, sizeof(eli));
	enroll(&cam1, "camilla-1", NULL, 0);
	snprintf(camilla, sizeof(camilla), "%s", bv_client_account(cam1.c));
	enroll(&eli, "elisa", NULL, 0);
	snprintf(elisa, sizeof(elisa), "%s", bv_client_account(eli.c));
	enroll(&cam2, "camilla-2", camilla, 0);
	assert_string_equal(bv_client_account(cam2.c), camilla);
	assert_int_equal(bv_client_device(cam2.c), 2);
	case_pair(&cam1, &eli);

	/* Bad arguments are refused at once, without a callback. */
	assert_int_equal(bv_client_send_text(cam1.c, "c", "x", m1), BV_EINVAL);
	assert_int_equal(bv_client_send_text(cam1.c, conv, "", m1), BV_EINVAL);
	assert_int_equal(bv_client_send_text(cam1.c, NULL, "x", m1), BV_EINVAL);

	/* Camilla → Elisa: Elisa and Camilla's other device. */
	say(&cam1, "Hei Elisa!", m1);
	expect(&eli, m1, &cam1, "Hei Elisa!");
	expect(&cam2, m1, &cam1, "Hei Elisa!");

	/* Elisa answers: both of Camilla's devices. */
	say(&eli, "Hei Camilla", m2);
	expect(&cam1, m2, &eli, "Hei Camilla");
	expect(&cam2, m2, &eli, "Hei Camilla");

	/* From Camilla's second device. */
	say(&cam2, "Fra mobilen", m3);
	expect(&eli, m3, &cam2, "Fra mobilen");
	expect(&cam1, m3, &cam2, "Fra mobilen");

	/* Camilla's second device goes offline; Elisa writes meanwhile. */
	peer_close(&cam2);
	say(&eli, "Er du der?", m4);
	expect(&cam1, m4, &eli, "Er du der?");
	say(&cam1, "Ja", m5);
	expect(&eli, m5, &cam1, "Ja");

	/* It comes back from its store and catches up. */
	peer_open(&cam2, "camilla-2");
	assert_string_equal(bv_client_account(cam2.c), camilla);
	assert_int_equal(bv_client_connect(cam2.c), 0);
	assert_true(run_until(&cam2.caught_up, 2, BVT_TIMEOUT));
	expect(&cam2, m4, &eli, "Er du der?");
	expect(&cam2, m5, &cam1, "Ja");

	/* Exactly once everywhere, nothing to the sending device. */
	run_for(500);
	assert_int_equal(got(&eli, m1), 1);
	assert_int_equal(got(&eli, m3), 1);
	assert_int_equal(got(&eli, m5), 1);
	assert_int_equal(got(&eli, m2), 0);
	assert_int_equal(got(&eli, m4), 0);
	assert_int_equal(eli.n_rx, 3);
	assert_int_equal(got(&cam1, m2), 1);
	assert_int_equal(got(&cam1, m3), 1);
	assert_int_equal(got(&cam1, m4), 1);
	assert_int_equal(cam1.n_rx, 3);
	assert_int_equal(got(&cam2, m1), 1);
	assert_int_equal(got(&cam2, m2), 1);
	assert_int_equal(got(&cam2, m4), 1);
	assert_int_equal(got(&cam2, m5), 1);
	assert_int_equal(cam2.n_rx, 4);
	assert_int_equal(cam1.key_changed + cam2.key_changed + eli.key_changed,
			 0);
	assert_int_equal(cam1.errors + cam2.errors + eli.errors, 0);

	/* Elisa adds a device: Camilla's next send learns of it from the
	 * relay (BV_EDEVICES), fetches its keys and sends again. */
	memset(&eli2, 0, sizeof(eli2));
	enroll(&eli2, "elisa-2", elisa, 0);
	say(&cam1, "Velkommen", m6);
	expect(&eli2, m6, &cam1, "Velkommen");
	expect(&eli, m6, &cam1, "Velkommen");
	expect(&cam2, m6, &cam1, "Velkommen");
	run_for(300);
	assert_int_equal(got(&eli2, m6), 1);
	assert_int_equal(got(&eli, m6), 1);
	assert_int_equal(eli2.n_rx, 1);
	assert_int_equal(cam1.errors + eli2.errors, 0);

	peer_close(&eli2);
	peer_close(&cam1);
	peer_close(&cam2);
	peer_close(&eli);
}

/* A client on its own loop, driven by bv_client_run_once() only. */
static void
t_own_loop(void **state)
{
	struct peer p;
	struct bv_client_opts o;
	char *token = bvt_token(&env.tenant, NULL);
	int64_t deadline = bvt_now_ms() + bvt_ms(BVT_TIMEOUT);

	(void)state;
	assert_non_null(token);
	memset(&p, 0, sizeof(p));
	p.name = "own";
	snprintf(p.store, sizeof(p.store), "%s/own.db", dir);
	memset(&o, 0, sizeof(o));
	o.store_path = p.store;
	o.store_key = store_key;
	o.relay_host = "127.0.0.1";
	o.relay_port = env.relay.port;
	o.on_status = peer_on_status;
	o.on_error = peer_on_error;
	o.user = &p;
	assert_int_equal(bv_client_new(&o, &p.c), 0);
	assert_int_equal(bv_client_connect(p.c), BV_EINVAL); /* not enrolled */
	assert_int_equal(bv_client_enroll(p.c, token), 0);
	free(token);
	while (!p.enrolled && bvt_now_ms() < deadline)
		assert_int_equal(bv_client_run_once(p.c), 0);
	assert_int_equal(p.enrolled, 1);
	assert_int_equal(bv_client_device(p.c), 1);
	bv_client_free(p.c);

	/* A wrong store key opens nothing. */
	o.store_key = (const uint8_t *)"0123456789abcdef0123456789abcdef";
	assert_int_equal(bv_client_new(&o, &p.c), BV_EINVAL);
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
		T(t_chat),
		T(t_own_loop),
	};
	/* clang-format on */

	return bvt_done(cmocka_run_group_tests_name("11-client-chat", tests,
						    group_setup, NULL));
}
