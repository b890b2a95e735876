/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 14-client-canary: the relay never sees a plaintext. Two libbvchat clients
 * (public API only, bvchat.h) chat both ways with texts that are distinct
 * canary strings; once every message arrived, the relay's debug log and a
 * pg_dump of its database are searched for each canary, raw, in base64 and
 * in hex (pg_dump's bytea). Unlike 09-canary (which sends opaque bodies),
 * the body is end-to-end encrypted: even a dump taken while a message to an
 * offline device is still queued must not contain its canary. Every wait is
 * bounded by a deadline.
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
#include <sodium.h>
#include <uv.h>

#include "client_peer.h"

#define MAX_CANARIES 16
#define CANARY_LEN   64

/* The texts sent; none may reach the relay's log or database. */
static char canaries[MAX_CANARIES][CANARY_LEN];
static int ncanaries;

/* A new canary "CANARY-<24 random hex>-n", remembered. */
static const char *
canary(void)
{
	uint8_t r[12];
	char h[25];

	assert_true(ncanaries < MAX_CANARIES);
	randombytes_buf(r, sizeof(r));
	sodium_bin2hex(h, sizeof(h), r, sizeof(r));
	snprintf(canaries[ncanaries], CANARY_LEN, "CANARY-%s-%d", h, ncanaries);
	return canaries[ncanaries++];
}

static char *
hex(const void *buf, size_t len)
{
	char *s = malloc(len * 2 + 1);

	assert_non_null(s);
	sodium_bin2hex(s, len * 2 + 1, buf, len);
	return s;
}

/* Counts the canaries (first n) found in hay, raw, base64 or hex. */
static int
leaks_in(const char *where, const char *hay, size_t len, int n)
{
	int i, leaks = 0;

	for (i = 0; i < n; i++) {
		const char *c = canaries[i];
		char *b = bvt_b64(c, strlen(c)), *h = hex(c, strlen(c));

		assert_non_null(b);
		if (bvt_mem_contains(hay, len, c, strlen(c))) {
			print_error("LEAK: %s contains canary %d raw\n", where,
				    i);
			leaks++;
		}
		if (bvt_mem_contains(hay, len, b, strlen(b))) {
			print_error("LEAK: %s contains canary %d in base64\n",
				    where, i);
			leaks++;
		}
		if (bvt_mem_contains(hay, len, h, strlen(h))) {
			print_error("LEAK: %s contains canary %d in hex\n",
				    where, i);
			leaks++;
		}
		free(b);
		free(h);
	}
	return leaks;
}

static long long
queued(void)
{
	return bvt_sql_int(env.db, "SELECT count(*) FROM queue", 0, NULL);
}

/* The relay logs at debug level: the log searched must be the fullest. */
static int
setup_debug(void **state)
{
	static const char *const args[] = {"--log_level", "debug", NULL};

	ncanaries = 0;
	return setup_relay(state, args);
}

static void
t_canaries(void **state)
{
	struct peer ann, ben;
	char mid[MAX_CANARIES][BV_CLIENT_MESSAGE_ID_LEN + 1];
	char anna[BV_CLIENT_ACCOUNT_LEN + 1], benn[BV_CLIENT_ACCOUNT_LEN + 1];
	const char *t;
	char *dump, *log;
	size_t dlen, llen;
	int i, k, leaks = 0;
	int64_t deadline;

	(void)state;
	memset(&ann, 0, sizeof(ann));
	memset(&ben, 0, sizeof(ben));
	enroll(&ann, "ann", NULL, 0);
	snprintf(anna, sizeof(anna), "%s", bv_client_account(ann.c));
	enroll(&ben, "ben", NULL, 0);
	snprintf(benn, sizeof(benn), "%s", bv_client_account(ben.c));
	case_pair(&ann, &ben);

	/* Both ways, both online. */
	for (i = 0; i < 3; i++) {
		t = canary();
		k = ncanaries - 1;
		say(&ann, t, mid[k]);
		expect(&ben, mid[k], &ann, t);
		t = canary();
		k = ncanaries - 1;
		say(&ben, t, mid[k]);
		expect(&ann, mid[k], &ben, t);
	}

	/* Everything acknowledged: the queue empties. */
	deadline = bvt_now_ms() + bvt_ms(BVT_TIMEOUT);
	while (queued() != 0 && bvt_now_ms() < deadline)
		run_for(20);
	assert_int_equal(queued(), 0);

	/* Ben goes offline; Ann's message waits in the relay's queue. */
	peer_close(&ben);
	t = canary();
	k = ncanaries - 1;
	say(&ann, t, mid[k]);
	assert_true(queued() >= 1);
	dump = bvt_pg_dump(env.db, &dlen);
	assert_non_null(dump);
	/* The queued envelope is in the dump, its text is not. */
	assert_true(bvt_mem_contains(dump, dlen, benn, strlen(benn)));
	leaks += leaks_in("the dump with a queued message", dump, dlen,
			  ncanaries);
	free(dump);

	/* Ben comes back, catches up and answers. */
	peer_open(&ben, "ben");
	assert_int_equal(bv_client_connect(ben.c), 0);
	assert_true(run_until(&ben.caught_up, ben.caught_up + 1, BVT_TIMEOUT));
	expect(&ben, mid[k], &ann, t);
	t = canary();
	k = ncanaries - 1;
	say(&ben, t, mid[k]);
	expect(&ann, mid[k], &ben, t);

	run_for(300);
	assert_int_equal(ann.n_rx, 4);
	assert_int_equal(ben.n_rx, 4);
	assert_int_equal(ann.errors + ben.errors, 0);
	assert_int_equal(ann.key_changed + ben.key_changed, 0);
	deadline = bvt_now_ms() + bvt_ms(BVT_TIMEOUT);
	while (queued() != 0 && bvt_now_ms() < deadline)
		run_for(20);
	assert_int_equal(queued(), 0);
	peer_close(&ann);
	peer_close(&ben);

	/* Stop the relay so its log is complete, then search. */
	assert_int_equal(bvt_relay_term(&env.relay, bvt_ms(30000)), 0);
	dump = bvt_pg_dump(env.db, &dlen);
	assert_non_null(dump);
	log = bvt_file_read(env.relay.log, &llen);
	assert_non_null(log);
	/* Debug logging ran and the dump holds the accounts. */
	assert_true(llen > 200);
	assert_true(bvt_mem_contains(dump, dlen, anna, strlen(anna)));
	leaks += leaks_in("the relay log", log, llen, ncanaries);
	leaks += leaks_in("the final dump", dump, dlen, ncanaries);
	print_message("searched %d canaries in %zu bytes of log and %zu of "
		      "dump\n",
		      ncanaries, llen, dlen);
	free(dump);
	free(log);
	assert_int_equal(leaks, 0);
}

static int
group_setup(void **state)
{
	(void)state;
	if (sodium_init() < 0)
		return -1;
	return bvt_pg_start();
}

int
main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(t_canaries, setup_debug,
						teardown),
	};
	/* clang-format on */

	return bvt_done(cmocka_run_group_tests_name("14-client-canary", tests,
						    group_setup, NULL));
}
