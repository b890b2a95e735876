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

#include "bvtest.h"
#include "bvchat.h"

#define MAX_RX	     32
#define MAX_CANARIES 16
#define CANARY_LEN   64

static struct bvt_env env;
static uv_loop_t loop;
static char dir[256];

struct peer {
	const char *name;
	char store[512];
	struct bv_client *c;
	unsigned enrolled, caught_up, refused, errors, key_changed;
	unsigned sent;
	int sent_rc;
	char sent_mid[BV_CLIENT_MESSAGE_ID_LEN + 1];
	unsigned n_rx;
	struct {
		char mid[BV_CLIENT_MESSAGE_ID_LEN + 1];
		char sender[BV_CLIENT_ACCOUNT_LEN + 1];
		char text[CANARY_LEN];
	} rx[MAX_RX];
};

static const uint8_t store_key[BV_CLIENT_STORE_KEY_LEN] = {14, 14, 14};
static const char conv[] = "0c5e2a7b-3d1f-4a6c-9e8b-7f2d4c6a8e01";

/* The texts sent; none may reach the relay's log or database. */
static char canaries[MAX_CANARIES][CANARY_LEN];
static int ncanaries;

static void
on_status(struct bv_client *c, void *user, enum bv_client_status st, int code)
{
	struct peer *p = user;

	(void)c;
	(void)code;
	switch (st) {
	case BV_CLIENT_ENROLLED:
		p->enrolled++;
		break;
	case BV_CLIENT_CAUGHT_UP:
		p->caught_up++;
		break;
	case BV_CLIENT_REFUSED:
		p->refused++;
		break;
	default:
		break;
	}
}

static void
on_message(struct bv_client *c, void *user, const char *conversation,
	   const char *sender, uint32_t sender_device, const char *message_id,
	   int64_t time_ms, const char *text, size_t text_len)
{
	struct peer *p = user;

	(void)c;
	(void)conversation;
	(void)sender_device;
	(void)time_ms;
	assert_int_equal(strlen(text), text_len);
	assert_true(p->n_rx < MAX_RX);
	snprintf(p->rx[p->n_rx].mid, sizeof(p->rx[p->n_rx].mid), "%s",
		 message_id);
	snprintf(p->rx[p->n_rx].sender, sizeof(p->rx[p->n_rx].sender), "%s",
		 sender);
	snprintf(p->rx[p->n_rx].text, sizeof(p->rx[p->n_rx].text), "%s", text);
	p->n_rx++;
}

static void
on_key_changed(struct bv_client *c, void *user, const char *account,
	       uint32_t device)
{
	(void)c;
	(void)account;
	(void)device;
	((struct peer *)user)->key_changed++;
}

static void
on_error(struct bv_client *c, void *user, int code, const char *message_id,
	 const char *what)
{
	struct peer *p = user;

	(void)c;
	p->errors++;
	print_message("%s: error %d (%s) %s: %s\n", p->name, code,
		      bv_client_strerror(code), message_id ? message_id : "-",
		      what);
}

static void
on_sent(struct bv_client *c, void *user, const char *message_id, int rc)
{
	struct peer *p = user;

	(void)c;
	p->sent++;
	p->sent_rc = rc;
	snprintf(p->sent_mid, sizeof(p->sent_mid), "%s", message_id);
}

/* Runs the loop until *counter >= want or ms passed. */
static int
run_until(const unsigned *counter, unsigned want, int ms)
{
	int64_t deadline = bvt_now_ms() + bvt_ms(ms);

	while (*counter < want && bvt_now_ms() < deadline)
		uv_run(&loop, UV_RUN_ONCE);
	return *counter >= want;
}

static void
run_for(int ms)
{
	int64_t deadline = bvt_now_ms() + ms;

	while (bvt_now_ms() < deadline)
		uv_run(&loop, UV_RUN_ONCE);
}

static void
peer_open(struct peer *p, const char *name)
{
	struct bv_client_opts o;

	if (!p->store[0]) {
		memset(p, 0, sizeof(*p));
		snprintf(p->store, sizeof(p->store), "%s/%s.db", dir, name);
	}
	p->name = name;
	memset(&o, 0, sizeof(o));
	o.store_path = p->store;
	o.store_key = store_key;
	o.relay_host = "127.0.0.1";
	o.relay_port = env.relay.port;
	o.loop = &loop;
	o.on_status = on_status;
	o.on_message = on_message;
	o.on_key_changed = on_key_changed;
	o.on_error = on_error;
	o.on_sent = on_sent;
	o.user = p;
	assert_int_equal(bv_client_new(&o, &p->c), 0);
}

static void
peer_close(struct peer *p)
{
	if (!p->c)
		return;
	bv_client_close(p->c);
	run_for(300);
	bv_client_free(p->c);
	p->c = NULL;
	run_for(50);
}

static void
enroll(struct peer *p, const char *name)
{
	char *token = bvt_token(&env.tenant, NULL);

	assert_non_null(token);
	memset(p, 0, sizeof(*p));
	peer_open(p, name);
	assert_int_equal(bv_client_enroll(p->c, token), 0);
	free(token);
	if (!run_until(&p->enrolled, 1, BVT_TIMEOUT))
		fail_msg("%s not enrolled (refused %u)", name, p->refused);
}

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

/* from sends text to account to; waits until the relay stored it. */
static void
say(struct peer *from, const char *to, const char *text, char *mid)
{
	const char *rcpt[1] = {to};
	unsigned n = from->sent;

	assert_int_equal(bv_client_send_text(from->c, conv, rcpt, 1, text, mid),
			 0);
	if (!run_until(&from->sent, n + 1, BVT_TIMEOUT))
		fail_msg("%s: no outcome for %s", from->name, mid);
	assert_string_equal(from->sent_mid, mid);
	assert_int_equal(from->sent_rc, 0);
}

/* Waits until p got mid from from, with text. */
static void
expect(struct peer *p, const char *mid, const struct peer *from,
       const char *text)
{
	int64_t deadline = bvt_now_ms() + bvt_ms(BVT_TIMEOUT);
	unsigned i;

	for (;;) {
		for (i = 0; i < p->n_rx; i++) {
			if (strcmp(p->rx[i].mid, mid))
				continue;
			assert_string_equal(p->rx[i].sender,
					    bv_client_account(from->c));
			assert_string_equal(p->rx[i].text, text);
			return;
		}
		if (bvt_now_ms() >= deadline)
			fail_msg("%s did not get %s", p->name, mid);
		uv_run(&loop, UV_RUN_ONCE);
	}
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

static int
setup(void **state)
{
	const char *args[] = {"--log_level", "debug", NULL};

	(void)state;
	ncanaries = 0;
	snprintf(dir, sizeof(dir), "/tmp/bvt-14-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	if (uv_loop_init(&loop) != 0)
		return -1;
	return bvt_env_init(&env, args);
}

static int
teardown(void **state)
{
	char cmd[300];

	(void)state;
	run_for(10);
	uv_run(&loop, UV_RUN_NOWAIT);
	assert_int_equal(uv_loop_close(&loop), 0);
	bvt_env_cleanup(&env);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
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
	enroll(&ann, "ann");
	snprintf(anna, sizeof(anna), "%s", bv_client_account(ann.c));
	enroll(&ben, "ben");
	snprintf(benn, sizeof(benn), "%s", bv_client_account(ben.c));

	/* Both ways, both online. */
	for (i = 0; i < 3; i++) {
		t = canary();
		k = ncanaries - 1;
		say(&ann, benn, t, mid[k]);
		expect(&ben, mid[k], &ann, t);
		t = canary();
		k = ncanaries - 1;
		say(&ben, anna, t, mid[k]);
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
	say(&ann, benn, t, mid[k]);
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
	say(&ben, anna, t, mid[k]);
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
		cmocka_unit_test_setup_teardown(t_canaries, setup, teardown),
	};
	/* clang-format on */

	return bvt_done(cmocka_run_group_tests_name("14-client-canary", tests,
						    group_setup, NULL));
}
