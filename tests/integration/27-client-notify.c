/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 27-client-notify: bv_client_notify_set() (libbvchat's notify_set, what
 * the widget's "notify me" calls) against a real relay and PostgreSQL:
 * - a web push subscription (keys made as a browser makes them), the
 *   channel and the language reach notify_settings, byte for byte;
 * - "" as the endpoint removes the subscription, channel "none" sticks;
 * - the relay's refusal (an http:// endpoint off loopback) comes back
 *   through the callback as BV_EFIELD, and nothing is stored;
 * - bad arguments are refused before anything is sent.
 * Every wait is bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <uv.h>

#include "bv_util.h"
#include "client_peer.h"
#include "push_sink.h"

struct answer {
	unsigned n;
	int rc;
	char vapid[100];
};

static void
on_notify(struct bv_client *c, void *arg, const char *vapid, int rc)
{
	struct answer *a = arg;

	(void)c;
	a->rc = rc;
	snprintf(a->vapid, sizeof(a->vapid), "%s", vapid ? vapid : "");
	a->n++;
}

/* notify_set through the library; waits for its answer and returns rc. */
static int
notify(struct peer *p, const char *channel, const char *language,
       const char *endpoint, const char *p256dh, const char *auth)
{
	struct answer a;

	memset(&a, 0, sizeof(a));
	assert_int_equal(bv_client_notify_set(p->c, channel, language, endpoint,
					      p256dh, auth, on_notify, &a),
			 0);
	if (!run_until(&a.n, 1, BVT_TIMEOUT))
		fail_msg("%s: no answer to notify_set", p->name);
	assert_int_equal(a.n, 1);
	/* A key when the relay gives one (87 characters of base64url). */
	if (a.vapid[0])
		assert_int_equal(strlen(a.vapid), 87);
	return a.rc;
}

static long long
sql_int(const char *sql, const char *account)
{
	const char *prm[1] = {account};

	return bvt_sql_int(env.db, sql, 1, prm);
}

static void
t_notify_set(void **state)
{
	struct peer eli;
	struct push_ua ua;
	char *p256dh, *auth, endpoint[128];
	const char *me;
	const char *p[4];
	long long n;

	(void)state;
	memset(&eli, 0, sizeof(eli));
	enroll(&eli, "Elisa", NULL, 0);
	me = bv_client_account(eli.c);
	assert_int_equal(push_ua_new(&ua), 0);
	p256dh = bv_b64url_encode(ua.p256dh, sizeof(ua.p256dh));
	auth = bv_b64url_encode(ua.auth, sizeof(ua.auth));
	assert_non_null(p256dh);
	assert_non_null(auth);
	snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d/push/elisa",
		 env.relay.port);

	assert_int_equal(notify(&eli, "webpush", "se", endpoint, p256dh, auth),
			 0);
	p[0] = me;
	p[1] = endpoint;
	p[2] = p256dh;
	p[3] = auth;
	n = bvt_sql_int(env.db,
			"SELECT count(*) FROM notify_settings WHERE "
			"account_id = $1::uuid AND channel = 'webpush' AND "
			"language = 'se' AND webpush_endpoint = $2 AND "
			"replace(encode(webpush_p256dh, 'base64'), E'\\n', '') "
			"= translate($3, '-_', '+/') || '=' AND "
			"rtrim(encode(webpush_auth, 'base64'), '=') = "
			"translate($4, '-_', '+/')",
			4, p);
	assert_int_equal(n, 1);

	/* The language alone: the subscription stays. */
	assert_int_equal(notify(&eli, NULL, "nn", NULL, NULL, NULL), 0);
	assert_int_equal(sql_int("SELECT count(*) FROM notify_settings WHERE "
				 "account_id = $1::uuid AND language = 'nn' "
				 "AND webpush_endpoint IS NOT NULL",
				 me),
			 1);

	/* The relay refuses http:// off loopback: BV_EFIELD, nothing kept. */
	assert_int_equal(
		notify(&eli, NULL, NULL, "http://push.example/x", p256dh, auth),
		BV_EFIELD);
	assert_int_equal(sql_int("SELECT count(*) FROM notify_settings WHERE "
				 "account_id = $1::uuid AND webpush_endpoint "
				 "LIKE 'http://push.example%'",
				 me),
			 0);

	/* Off: no channel, no subscription. */
	assert_int_equal(notify(&eli, "none", NULL, "", NULL, NULL), 0);
	assert_int_equal(sql_int("SELECT count(*) FROM notify_settings WHERE "
				 "account_id = $1::uuid AND channel = 'none' "
				 "AND webpush_endpoint IS NULL AND "
				 "webpush_p256dh IS NULL",
				 me),
			 1);

	/* Refused before anything is sent. */
	assert_int_equal(bv_client_notify_set(eli.c, NULL, NULL, NULL, NULL,
					      NULL, on_notify, NULL),
			 BV_EINVAL);
	assert_int_equal(bv_client_notify_set(eli.c, "pigeon", NULL, NULL, NULL,
					      NULL, on_notify, NULL),
			 BV_EINVAL);
	assert_int_equal(bv_client_notify_set(eli.c, NULL, "sv", NULL, NULL,
					      NULL, on_notify, NULL),
			 BV_EINVAL);
	/* The keys swapped: wrong lengths. */
	assert_int_equal(bv_client_notify_set(eli.c, NULL, NULL, endpoint, auth,
					      p256dh, on_notify, NULL),
			 BV_EINVAL);
	assert_int_equal(bv_client_notify_set(eli.c, NULL, NULL,
					      "http://127.0.0.1:1/a b", p256dh,
					      auth, on_notify, NULL),
			 BV_EINVAL);
	assert_int_equal(eli.errors, 0);
	bv_free(p256dh);
	bv_free(auth);
	peer_close(&eli);
}

static int
setup_push(void **state)
{
	const char *args[] = {"--webpush_allow_loopback_http", "1", NULL};

	return setup_relay(state, args);
}

static int
group_setup(void **state)
{
	(void)state;
	return bvt_pg_start();
}

int
main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(t_notify_set, setup_push,
						teardown),
	};
	/* clang-format on */

	return bvt_done(cmocka_run_group_tests_name("27-client-notify", tests,
						    group_setup, NULL));
}
