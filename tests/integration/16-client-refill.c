/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 16-client-refill: two promises of libbvchat that only show against a real
 * relay, checked through bvchat.h. (i) One-time prekeys: another device
 * takes them with keys_get (the blocking client of tests/support) until
 * the relay sends prekeys_low; the library uploads new ones, online and
 * when it comes back, real ones (a session built on one works), and a
 * burst of fetches does not make it flood the relay. (ii) The send retry
 * limit: a relay that allows one send a minute refuses the next with
 * BV_ERATE; the message is given up after BV_CLIENT_SEND_ATTEMPTS sends,
 * through bv_error_cb and then bv_sent_cb.
 * Set BVT_TEST_FILTER (a cmocka pattern) to run some tests only.
 */
#include <inttypes.h>
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

/* client-lib/src/client.c keeps this many one-time prekeys on the relay;
 * the relay's default prekeys_low_watermark (docs/protocol.md). */
#define PREKEY_TARGET 100
#define WATERMARK     20
#define MAX_FETCHES   512

/* Ids of every one-time prekey handed out, to check none repeats. */
static uint32_t taken[MAX_FETCHES];
static unsigned n_taken;

/* The one-time prekeys the relay holds for (account, device 1). */
static long long
stock(const char *account)
{
	const char *params[1] = {account};
	long long n;

	n = bvt_sql_int(env.db,
			"SELECT count(*) FROM one_time_prekeys o "
			"JOIN devices d ON d.id = o.device "
			"WHERE d.account_id = $1::uuid AND d.device_id = 1",
			1, params);
	assert_true(n >= 0);
	return n;
}

/* keys_get of (account, 1) by the blocking device c; returns the one-time
 * prekey's id, or 0 when the relay had none left. */
static uint32_t
take_one(struct bvt_conn *c, const char *account)
{
	json_t *r = bvt_keys_get(c, account, 1), *devs, *otpk;
	uint32_t id = 0;
	unsigned i;

	bvt_assert_ok(r);
	devs = json_object_get(bvt_ok(r), "devices");
	assert_int_equal(json_array_size(devs), 1);
	otpk = json_object_get(json_array_get(devs, 0), "one_time_prekey");
	if (json_is_object(otpk)) {
		id = (uint32_t)json_integer_value(json_object_get(otpk, "id"));
		assert_true(id > 0);
		for (i = 0; i < n_taken; i++)
			if (taken[i] == id)
				fail_msg("one-time prekey %u handed out twice",
					 id);
		assert_true(n_taken < MAX_FETCHES);
		taken[n_taken++] = id;
	}
	json_decref(r);
	return id;
}

/* Runs the shared loop until the stock of account is at least min (or ms
 * passed); returns the stock. */
static long long
wait_stock(const char *account, long long min, int ms)
{
	int64_t deadline = bvt_now_ms() + bvt_ms(ms);
	long long n;

	while ((n = stock(account)) < min && bvt_now_ms() < deadline)
		run_for(50);
	return n;
}

/* Runs the shared loop until the stock has not changed for a second (not
 * scaled: the client handles an event in milliseconds, even under
 * valgrind), at most ms (scaled); returns it. */
static long long
wait_stock_settled(const char *account, int ms)
{
	int64_t deadline = bvt_now_ms() + bvt_ms(ms), since = bvt_now_ms();
	long long n = stock(account), m;

	while (bvt_now_ms() < deadline && bvt_now_ms() - since < 1000) {
		run_for(100);
		m = stock(account);
		if (m != n) {
			n = m;
			since = bvt_now_ms();
		}
	}
	return n;
}

static void
t_refill(void **state)
{
	struct peer ida, jon;
	struct bvt_dev fetcher;
	struct bvt_conn *fc;
	char m1[BV_CLIENT_MESSAGE_ID_LEN + 1];
	char account[BV_CLIENT_ACCOUNT_LEN + 1];
	const char *params[1];
	long long n, initial, left;
	uint32_t id, before_refill = 0;
	unsigned i, refills = 0, errors;

	(void)state;
	memset(&ida, 0, sizeof(ida));
	memset(&jon, 0, sizeof(jon));
	n_taken = 0;
	enroll(&ida, "ida", NULL, 0);
	snprintf(account, sizeof(account), "%s", bv_client_account(ida.c));
	initial = wait_stock(account, PREKEY_TARGET, BVT_TIMEOUT);
	assert_true(initial >= PREKEY_TARGET);
	initial = wait_stock_settled(account, BVT_TIMEOUT);
	/* Enrollment uploads PREKEY_TARGET keys, and the relay's
	 * prekeys_low 0 at the first login (the upload still on its way) is
	 * not answered with more. */
	assert_int_equal(initial, PREKEY_TARGET);
	memset(&fetcher, 0, sizeof(fetcher));
	assert_int_equal(bvt_new_account(env.relay.port, &env.tenant, &fetcher),
			 0);
	/* Keys are handed out only to those who may write to Ida: the
	 * fetcher is a caseworker on her case. */
	case_new();
	case_add(&ida, "child", "Ida");
	{
		const char *args[] = {"roster-add", "--case",	     case_id,
				      "--account",  fetcher.account, "--role",
				      "caseworker", "--name",	     "Fetcher",
				      NULL};

		assert_int_equal(admin(NULL, 0, args), 0);
	}
	case_team(&ida);
	fc = bvt_online(env.relay.port, &fetcher);
	assert_non_null(fc);
	left = initial;

	/* (i) Online, one fetch at a time: the fetch that takes the stock
	 * below the watermark makes the relay send prekeys_low, the library
	 * tops the stock up to its target, and fetching never runs dry:
	 * 50 more fetches than there were keys all get a one-time prekey. */
	for (i = 0; i < initial + 50; i++) {
		id = take_one(fc, account);
		if (!id)
			fail_msg("fetch %u found no one-time prekey: no refill",
				 i + 1);
		if (!refills && id > before_refill)
			before_refill = id;
		uv_run(&loop, UV_RUN_NOWAIT);
		/* Only this fetcher takes keys: the stock is known without
		 * asking the database each time. */
		if (--left >= WATERMARK)
			continue;
		n = wait_stock(account, WATERMARK, BVT_TIMEOUT);
		if (n < WATERMARK)
			fail_msg("stock %lld after fetch %u: prekeys_low not "
				 "answered",
				 n, i + 1);
		/* Topped up to the target, not merely above the mark. */
		left = wait_stock_settled(account, BVT_TIMEOUT);
		assert_int_equal(left, PREKEY_TARGET);
		refills++;
	}
	assert_int_equal(refills, 1);
	assert_int_equal(n_taken, initial + 50);
	assert_int_equal(ida.errors, 0);

	/* The new keys are real: every key left came with the refill, and a
	 * session built on one of them carries a message. */
	params[0] = account;
	assert_true(bvt_sql_int(env.db,
				"SELECT min(o.key_id) FROM one_time_prekeys o "
				"JOIN devices d ON d.id = o.device "
				"WHERE d.account_id = $1::uuid",
				1, params) > (long long)before_refill);
	enroll(&jon, "jon", NULL, 0);
	case_pair(&ida, &jon);
	say(&jon, "Hei Ida", m1);
	expect(&ida, m1, &jon, "Hei Ida");

	/* Offline: the fetches run the stock low while Ida is away; the
	 * relay tells her when she comes back, and she refills. */
	peer_close(&ida);
	for (n = stock(account); n >= WATERMARK / 2; n--)
		assert_true(take_one(fc, account) > 0);
	peer_open(&ida, "ida");
	assert_int_equal(bv_client_connect(ida.c), 0);
	assert_true(run_until(&ida.online, 1, BVT_TIMEOUT));
	if (wait_stock(account, PREKEY_TARGET, BVT_TIMEOUT) != PREKEY_TARGET)
		fail_msg("no refill after reconnecting (stock %lld)",
			 stock(account));
	assert_int_equal(wait_stock_settled(account, BVT_TIMEOUT),
			 PREKEY_TARGET);
	assert_int_equal(ida.errors, 0);

	/* A burst: 110 fetches while Ida's loop is busy elsewhere (many
	 * peers fetching at once, a slow phone). The relay sends one
	 * prekeys_low per fetch below the watermark, 30 in all, before Ida
	 * handles the first. */
	for (i = 0; i < 110; i++)
		take_one(fc, account);
	assert_int_equal(stock(account), 0);
	errors = ida.errors;
	if (wait_stock(account, WATERMARK, BVT_TIMEOUT) < WATERMARK)
		fail_msg("no refill after a burst of fetches");
	n = wait_stock_settled(account, 3 * BVT_TIMEOUT);
	print_message("stock after the burst: %lld, failed uploads: %u\n", n,
		      ida.errors - errors);
	/* One refill at a time: a burst of prekeys_low (one per fetch below
	 * the mark) does not overfill the stock or hit BV_EPREKEY_LIMIT. */
	assert_true(n >= WATERMARK && n <= PREKEY_TARGET);
	assert_int_equal(ida.errors, errors);

	bvt_conn_free(fc);
	peer_close(&jon);
	peer_close(&ida);
}

/* ------------------------------------------------------------------ */
/* (ii) The retry limit                                                  */
/* ------------------------------------------------------------------ */

struct sender {
	struct peer p; /* first: the peer callbacks take it as user */
	unsigned sent;
	int sent_rc;
	char sent_mid[BV_CLIENT_MESSAGE_ID_LEN + 1];
	unsigned errors_at_sent; /* bv_error_cb calls before bv_sent_cb */
	int err_code;
	char err_mid[BV_CLIENT_MESSAGE_ID_LEN + 1];
};

static void
sender_on_error(struct bv_client *c, void *user, int code,
		const char *message_id, const char *what)
{
	struct sender *s = user;

	peer_on_error(c, user, code, message_id, what);
	s->err_code = code;
	snprintf(s->err_mid, sizeof(s->err_mid), "%s",
		 message_id ? message_id : "");
}

static void
sender_on_sent(struct bv_client *c, void *user, const char *message_id, int rc)
{
	struct sender *s = user;

	(void)c;
	s->sent++;
	s->sent_rc = rc;
	s->errors_at_sent = s->p.errors;
	snprintf(s->sent_mid, sizeof(s->sent_mid), "%s", message_id);
}

/* A counter of the relay's /metrics, e.g. `bvchat_requests_total{op=
 * "send"}`; 0 when absent. */
static unsigned long long
metric(const char *name)
{
	char *body = NULL, *p;
	unsigned long long v = 0;
	size_t len = strlen(name);

	assert_int_equal(bvt_http_get(env.relay.port, "/metrics",
				      bvt_ms(BVT_TIMEOUT), &body),
			 200);
	for (p = body; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, name, len) && p[len] == ' ') {
			v = strtoull(p + len + 1, NULL, 10);
			break;
		}
	free(body);
	return v;
}

static void
t_retry_limit(void **state)
{
	static const char sends[] = "bvchat_requests_total{op=\"send\"}";
	static const char rate[] = "bvchat_errors_total{code=\"BV_ERATE\"}";
	struct sender s;
	struct peer jon;
	struct bv_client_opts o;
	char m1[BV_CLIENT_MESSAGE_ID_LEN + 1], m2[BV_CLIENT_MESSAGE_ID_LEN + 1];
	char *token;
	unsigned long long sends0, rate0;
	int64_t t0;

	(void)state;
	memset(&s, 0, sizeof(s));
	memset(&jon, 0, sizeof(jon));
	/* Jon's delivery receipts would be sends of their own. */
	peer_no_delivery_receipts = 1;
	enroll(&jon, "jon", NULL, 0);
	peer_no_delivery_receipts = 0;
	s.p.name = "ida";
	snprintf(s.p.store, sizeof(s.p.store), "%s/ida.db", dir);
	memset(&o, 0, sizeof(o));
	o.store_path = s.p.store;
	o.store_key = store_key;
	o.relay_host = "127.0.0.1";
	o.relay_port = env.relay.port;
	o.loop = &loop;
	o.on_status = peer_on_status;
	o.on_error = sender_on_error;
	o.on_sent = sender_on_sent;
	o.user = &s;
	assert_int_equal(bv_client_new(&o, &s.p.c), 0);
	token = bvt_token(&env.tenant, NULL);
	assert_non_null(token);
	assert_int_equal(bv_client_enroll(s.p.c, token), 0);
	free(token);
	assert_true(run_until(&s.p.enrolled, 1, BVT_TIMEOUT));
	case_new();
	case_add(&jon, "child", "Jon");
	case_add(&s.p, "caseworker", "Ida");
	case_team(&jon);

	/* The one send this minute allows goes through. */
	assert_int_equal(bv_client_send_text(s.p.c, conv, "første", m1), 0);
	assert_true(run_until(&s.sent, 1, BVT_TIMEOUT));
	assert_string_equal(s.sent_mid, m1);
	assert_int_equal(s.sent_rc, 0);
	expect(&jon, m1, &s.p, "første");

	/* The next is refused with BV_ERATE each time: after
	 * BV_CLIENT_SEND_ATTEMPTS sends it is given up. The relay asks for a
	 * minute; the library waits at most 10 s between attempts. */
	sends0 = metric(sends);
	rate0 = metric(rate);
	t0 = bvt_now_ms();
	assert_int_equal(bv_client_send_text(s.p.c, conv, "andre", m2), 0);
	if (!run_until(&s.sent, 2, 4 * BVT_TIMEOUT + 20000))
		fail_msg("no outcome for %s after %" PRId64 " ms", m2,
			 bvt_now_ms() - t0);
	print_message("given up after %" PRId64 " ms\n", bvt_now_ms() - t0);
	assert_string_equal(s.sent_mid, m2);
	assert_int_equal(s.sent_rc, BV_ERATE);
	assert_int_equal(metric(sends) - sends0, BV_CLIENT_SEND_ATTEMPTS);
	assert_int_equal(metric(rate) - rate0, BV_CLIENT_SEND_ATTEMPTS);
	/* bv_error_cb first, for that message, with that code. */
	assert_int_equal(s.errors_at_sent, 1);
	assert_int_equal(s.err_code, BV_ERATE);
	assert_string_equal(s.err_mid, m2);

	/* Nothing more is tried, and Jon never got it. */
	run_for(bvt_ms(1000));
	assert_int_equal(s.sent, 2);
	assert_int_equal(metric(sends) - sends0, BV_CLIENT_SEND_ATTEMPTS);
	assert_int_equal(got(&jon, m2), 0);

	peer_close(&jon);
	peer_close(&s.p);
}

/* The retry test's relay allows one send a minute per connection. */
static int
setup_slow_sends(void **state)
{
	static const char *const args[] = {"--sends_per_minute", "1", NULL};

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/bvt-client-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	if (uv_loop_init(&loop) != 0)
		return -1;
	return bvt_env_init(&env, args);
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
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(t_refill, setup, teardown),
		cmocka_unit_test_setup_teardown(t_retry_limit, setup_slow_sends,
						teardown),
	};
	const char *filter = getenv("BVT_TEST_FILTER");

	if (filter && *filter)
		cmocka_set_test_filter(filter);
	return bvt_done(cmocka_run_group_tests_name("16-client-refill", tests,
						    group_setup, NULL));
}
