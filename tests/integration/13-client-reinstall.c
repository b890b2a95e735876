/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 13-client-reinstall: a reinstall through libbvchat's public API against a
 * real relay. Camilla and Elisa chat; Elisa reinstalls (a new, empty store
 * re-enrolled with bv_client_enroll_replacing() as device 1 of her
 * account). Camilla's next send hits BV_ESTALE, the client drops the stale
 * session and fetches the new bundle, raises "key changed" for Elisa/1 and
 * holds the message (BV_EUNTRUSTED) instead of sending it to the new key;
 * bv_client_accept_identity() ends in bv_accepted_cb, and the held message
 * and a new one each reach the new install exactly once. Every wait is
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

static void
t_reinstall(void **state)
{
	struct peer cam, eli, eli_new;
	char m1[BV_CLIENT_MESSAGE_ID_LEN + 1], m2[BV_CLIENT_MESSAGE_ID_LEN + 1];
	char m3[BV_CLIENT_MESSAGE_ID_LEN + 1], m4[BV_CLIENT_MESSAGE_ID_LEN + 1];
	char elisa[BV_CLIENT_ACCOUNT_LEN + 1];
	char sn_c[BV_CLIENT_SAFETY_NUMBER_LEN + 1];
	char sn_e[BV_CLIENT_SAFETY_NUMBER_LEN + 1];
	unsigned n;

	(void)state;
	memset(&cam, 0, sizeof(cam));
	memset(&eli, 0, sizeof(eli));
	memset(&eli_new, 0, sizeof(eli_new));
	enroll(&cam, "camilla", NULL, 0);
	enroll(&eli, "elisa", NULL, 0);
	snprintf(elisa, sizeof(elisa), "%s", bv_client_account(eli.c));
	assert_int_equal(bv_client_device(eli.c), 1);
	case_pair(&cam, &eli);

	/* They chat: Camilla has a session with Elisa/1. */
	say(&cam, "Hei Elisa!", m1);
	expect(&eli, m1, &cam, "Hei Elisa!");
	say(&eli, "Hei Camilla", m2);
	expect(&cam, m2, &eli, "Hei Camilla");

	/* Elisa reinstalls: the old install is gone, a new empty store takes
	 * over device 1 of her account. */
	peer_close(&eli);
	enroll(&eli_new, "elisa-new", elisa, 1);
	assert_string_equal(bv_client_account(eli_new.c), elisa);
	assert_int_equal(bv_client_device(eli_new.c), 1);

	/* Camilla's next send: BV_ESTALE, repair, "key changed", and the
	 * message is held, not sent to the untrusted new key (nor to anyone:
	 * the relay takes a message only for every device). */
	n = cam.sent;
	assert_int_equal(bv_client_send_text(cam.c, conv, "Er du der?", m3), 0);
	if (!run_until(&cam.key_changed, 1, BVT_TIMEOUT))
		fail_msg("camilla: no key change for elisa");
	assert_string_equal(cam.kc_account, elisa);
	assert_int_equal(cam.kc_device, 1);
	run_for(1000);
	assert_int_equal(cam.sent, n); /* held: no outcome yet */
	assert_int_equal(cam.last_error, BV_EUNTRUSTED);
	assert_int_equal(got(&eli_new, m3), 0);
	assert_int_equal(eli_new.n_rx, 0);

	/* The user accepts the new key: the held message goes out, once. */
	assert_int_equal(bv_client_accept_identity(cam.c, elisa, 1), 0);
	if (!run_until(&cam.accepted, 1, BVT_TIMEOUT))
		fail_msg("camilla: acceptance did not finish");
	assert_int_equal(cam.accepted_rc, 0);
	if (!run_until(&cam.sent, n + 1, BVT_TIMEOUT))
		fail_msg("camilla: held %s not sent after acceptance", m3);
	assert_string_equal(cam.sent_mid, m3);
	assert_int_equal(cam.sent_rc, 0);
	expect(&eli_new, m3, &cam, "Er du der?");
	cam.errors = 0;
	say(&cam, "Velkommen tilbake", m4);
	expect(&eli_new, m4, &cam, "Velkommen tilbake");
	run_for(500);
	assert_int_equal(got(&eli_new, m4), 1);
	assert_int_equal(got(&eli_new, m3), 1);
	assert_int_equal(eli_new.n_rx, 2);
	assert_int_equal(cam.key_changed, 1);
	assert_int_equal(cam.errors + eli_new.errors, 0);

	/* Both ends now show the same safety number for the new key. */
	assert_int_equal(bv_client_safety_number(cam.c, elisa, 1, sn_c), 0);
	assert_int_equal(bv_client_safety_number(eli_new.c,
						 bv_client_account(cam.c),
						 bv_client_device(cam.c), sn_e),
			 0);
	assert_string_equal(sn_c, sn_e);

	/* And back, under the accepted key. */
	say(&eli_new, "Takk", m1);
	expect(&cam, m1, &eli_new, "Takk");
	assert_int_equal(cam.key_changed + eli_new.key_changed, 1);

	peer_close(&cam);
	peer_close(&eli_new);
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
		T(t_reinstall),
	};
	/* clang-format on */

	return bvt_done(cmocka_run_group_tests_name("13-client-reinstall",
						    tests, group_setup, NULL));
}
