/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 11-client-chat: libbvchat's public API (bvchat.h) against a real relay.
 * Camilla (two devices) and Elisa enroll through bv_client_enroll() and
 * chat both ways: each device gets each message exactly once, the sender's
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

#include "bvtest.h"
#include "bvchat.h"

#define MAX_RX 32

static struct bvt_env env;
static uv_loop_t loop;
static char dir[256];

struct rx {
	char mid[BV_CLIENT_MESSAGE_ID_LEN + 1];
	char conversation[BV_CLIENT_ACCOUNT_LEN + 1];
	char sender[BV_CLIENT_ACCOUNT_LEN + 1];
	uint32_t device;
	char text[64];
};

struct peer {
	const char *name;
	char store[512];
	struct bv_client *c;
	unsigned online, enrolled, caught_up, refused, errors, key_changed;
	unsigned sent;
	int sent_rc;
	char sent_mid[BV_CLIENT_MESSAGE_ID_LEN + 1];
	unsigned n_rx;
	struct rx rx[MAX_RX];
};

static const uint8_t store_key[BV_CLIENT_STORE_KEY_LEN] = {7, 7, 7};
static const char conv[] = "5b0f7d3e-9c1a-4e2b-8f6d-2a4c6e8b0d1f";

static void
on_status(struct bv_client *c, void *user, enum bv_client_status st, int code)
{
	struct peer *p = user;

	(void)c;
	(void)code;
	switch (st) {
	case BV_CLIENT_ONLINE:
		p->online++;
		break;
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
	struct rx *r;

	(void)c;
	assert_true(time_ms > 0);
	assert_int_equal(strlen(text), text_len);
	assert_true(p->n_rx < MAX_RX);
	r = &p->rx[p->n_rx++];
	snprintf(r->mid, sizeof(r->mid), "%s", message_id);
	snprintf(r->conversation, sizeof(r->conversation), "%s", conversation);
	snprintf(r->sender, sizeof(r->sender), "%s", sender);
	r->device = sender_device;
	snprintf(r->text, sizeof(r->text), "%s", text);
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

/* Runs the shared loop until *counter >= want or ms passed. */
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
	/* Other clients keep the loop busy: give lws time to close ours. */
	run_for(300);
	bv_client_free(p->c);
	p->c = NULL;
	run_for(50);
}

static void
enroll(struct peer *p, const char *name, const char *account)
{
	char *token = bvt_token(&env.tenant, account);

	assert_non_null(token);
	peer_open(p, name);
	assert_int_equal(bv_client_enroll(p->c, token), 0);
	assert_int_equal(bv_client_enroll(p->c, token), BV_EALREADY);
	free(token);
	if (!run_until(&p->enrolled, 1, BVT_TIMEOUT))
		fail_msg("%s not enrolled (refused %u)", name, p->refused);
	assert_int_equal(strlen(bv_client_account(p->c)),
			 BV_CLIENT_ACCOUNT_LEN);
	assert_true(bv_client_device(p->c) >= 1);
}

/* How often p got message mid. */
static unsigned
got(const struct peer *p, const char *mid)
{
	unsigned i, n = 0;

	for (i = 0; i < p->n_rx; i++)
		n += !strcmp(p->rx[i].mid, mid);
	return n;
}

static const struct rx *
find(const struct peer *p, const char *mid)
{
	unsigned i;

	for (i = 0; i < p->n_rx; i++)
		if (!strcmp(p->rx[i].mid, mid))
			return &p->rx[i];
	return NULL;
}

/* from sends text to account to; waits for the relay's answer. */
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

/* Waits until p got mid once, then checks who sent it. */
static void
expect(struct peer *p, const char *mid, const struct peer *from,
       const char *text)
{
	int64_t deadline = bvt_now_ms() + bvt_ms(BVT_TIMEOUT);
	const struct rx *r;

	while (!got(p, mid) && bvt_now_ms() < deadline)
		uv_run(&loop, UV_RUN_ONCE);
	r = find(p, mid);
	if (!r)
		fail_msg("%s did not get %s", p->name, mid);
	assert_string_equal(r->sender, bv_client_account(from->c));
	assert_int_equal(r->device, bv_client_device(from->c));
	assert_string_equal(r->conversation, conv);
	assert_string_equal(r->text, text);
}

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/bvt-11-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	if (uv_loop_init(&loop) != 0)
		return -1;
	return bvt_env_init(&env, NULL);
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
t_chat(void **state)
{
	struct peer cam1, cam2, eli, eli2;
	char m1[BV_CLIENT_MESSAGE_ID_LEN + 1], m2[BV_CLIENT_MESSAGE_ID_LEN + 1];
	char m3[BV_CLIENT_MESSAGE_ID_LEN + 1], m4[BV_CLIENT_MESSAGE_ID_LEN + 1];
	char m5[BV_CLIENT_MESSAGE_ID_LEN + 1], m6[BV_CLIENT_MESSAGE_ID_LEN + 1];
	char camilla[BV_CLIENT_ACCOUNT_LEN + 1],
		elisa[BV_CLIENT_ACCOUNT_LEN + 1];
	const char *bad[1] = {"not-a-uuid"};

	(void)state;
	memset(&cam1, 0, sizeof(cam1));
	memset(&cam2, 0, sizeof(cam2));
	memset(&eli, 0, sizeof(eli));
	enroll(&cam1, "camilla-1", NULL);
	snprintf(camilla, sizeof(camilla), "%s", bv_client_account(cam1.c));
	enroll(&eli, "elisa", NULL);
	snprintf(elisa, sizeof(elisa), "%s", bv_client_account(eli.c));
	enroll(&cam2, "camilla-2", camilla);
	assert_string_equal(bv_client_account(cam2.c), camilla);
	assert_int_equal(bv_client_device(cam2.c), 2);

	/* Bad arguments are refused at once, without a callback. */
	assert_int_equal(bv_client_send_text(cam1.c, conv, bad, 1, "x", m1),
			 BV_EINVAL);
	assert_int_equal(bv_client_send_text(cam1.c, "c", bad, 0, "x", m1),
			 BV_EINVAL);

	/* Camilla → Elisa: Elisa and Camilla's other device. */
	say(&cam1, elisa, "Hei Elisa!", m1);
	expect(&eli, m1, &cam1, "Hei Elisa!");
	expect(&cam2, m1, &cam1, "Hei Elisa!");

	/* Elisa answers: both of Camilla's devices. */
	say(&eli, camilla, "Hei Camilla", m2);
	expect(&cam1, m2, &eli, "Hei Camilla");
	expect(&cam2, m2, &eli, "Hei Camilla");

	/* From Camilla's second device. */
	say(&cam2, elisa, "Fra mobilen", m3);
	expect(&eli, m3, &cam2, "Fra mobilen");
	expect(&cam1, m3, &cam2, "Fra mobilen");

	/* Camilla's second device goes offline; Elisa writes meanwhile. */
	peer_close(&cam2);
	say(&eli, camilla, "Er du der?", m4);
	expect(&cam1, m4, &eli, "Er du der?");
	say(&cam1, elisa, "Ja", m5);
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
	enroll(&eli2, "elisa-2", elisa);
	say(&cam1, elisa, "Velkommen", m6);
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
	o.on_status = on_status;
	o.on_error = on_error;
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
