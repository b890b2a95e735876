/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * client_peer.c: the peer helpers of client_peer.h, driving bv_client
 * through its public callbacks on one shared loop; every wait has a
 * deadline (BVT_TIMEOUT scaled by bvt_ms()).
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

#include "client_peer.h"

struct bvt_env env;
uv_loop_t loop;
char dir[256];

const uint8_t store_key[BV_CLIENT_STORE_KEY_LEN] = {7, 7, 7};
const char conv[] = "5b0f7d3e-9c1a-4e2b-8f6d-2a4c6e8b0d1f";
int64_t peer_signed_max_age_ms;
int peer_no_delivery_receipts;

void
peer_on_status(struct bv_client *c, void *user, enum bv_client_status st,
	       int code)
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
	struct peer *p = user;

	(void)c;
	p->key_changed++;
	snprintf(p->kc_account, sizeof(p->kc_account), "%s", account);
	p->kc_device = device;
}

void
peer_on_error(struct bv_client *c, void *user, int code, const char *message_id,
	      const char *what)
{
	struct peer *p = user;

	(void)c;
	p->errors++;
	p->last_error = code;
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

static void
on_receipt(struct bv_client *c, void *user, const char *conversation,
	   const char *sender, uint32_t sender_device,
	   enum bv_client_receipt type, const char *const *message_ids,
	   size_t n)
{
	struct peer *p = user;
	struct rc *r;
	size_t i;

	(void)c;
	assert_string_equal(conversation, conv);
	assert_true(n >= 1 && n <= 100);
	for (i = 0; i < n; i++) {
		assert_true(p->n_rc < MAX_RC);
		r = &p->rc[p->n_rc++];
		r->type = type;
		snprintf(r->mid, sizeof(r->mid), "%s", message_ids[i]);
		snprintf(r->sender, sizeof(r->sender), "%s", sender);
		r->device = sender_device;
	}
}

static void
on_accepted(struct bv_client *c, void *user, const char *account,
	    uint32_t device, int rc)
{
	struct peer *p = user;

	(void)c;
	(void)account;
	(void)device;
	p->accepted++;
	p->accepted_rc = rc;
}

unsigned
got_receipt(const struct peer *p, enum bv_client_receipt type, const char *mid,
	    const char *account, uint32_t device)
{
	unsigned i, n = 0;

	for (i = 0; i < p->n_rc; i++)
		n += p->rc[i].type == type && !strcmp(p->rc[i].mid, mid) &&
		     (!account || !strcmp(p->rc[i].sender, account)) &&
		     (!device || p->rc[i].device == device);
	return n;
}

/* Runs the shared loop until *counter >= want or ms passed. */
int
run_until(const unsigned *counter, unsigned want, int ms)
{
	int64_t deadline = bvt_now_ms() + bvt_ms(ms);

	while (*counter < want && bvt_now_ms() < deadline)
		uv_run(&loop, UV_RUN_ONCE);
	return *counter >= want;
}

void
run_for(int ms)
{
	int64_t deadline = bvt_now_ms() + ms;

	while (bvt_now_ms() < deadline)
		uv_run(&loop, UV_RUN_ONCE);
}

void
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
	o.on_status = peer_on_status;
	o.on_message = on_message;
	o.on_key_changed = on_key_changed;
	o.on_error = peer_on_error;
	o.on_sent = on_sent;
	o.on_receipt = on_receipt;
	o.on_identity_accepted = on_accepted;
	o.user = p;
	o.signed_prekey_max_age_ms = peer_signed_max_age_ms;
	o.no_delivery_receipts = peer_no_delivery_receipts;
	assert_int_equal(bv_client_new(&o, &p->c), 0);
}

void
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

/* replaces 0: a new device (or account); else a reinstall of that device. */
void
enroll(struct peer *p, const char *name, const char *account, uint32_t replaces)
{
	char *token = bvt_token(&env.tenant, account);

	assert_non_null(token);
	peer_open(p, name);
	if (replaces) {
		assert_int_equal(bv_client_enroll_replacing(p->c, token, 0),
				 BV_EINVAL);
		assert_int_equal(
			bv_client_enroll_replacing(p->c, token, replaces), 0);
	} else {
		assert_int_equal(bv_client_enroll(p->c, token), 0);
	}
	assert_int_equal(bv_client_enroll(p->c, token), BV_EALREADY);
	free(token);
	if (!run_until(&p->enrolled, 1, BVT_TIMEOUT))
		fail_msg("%s not enrolled (refused %u)", name, p->refused);
	assert_int_equal(strlen(bv_client_account(p->c)),
			 BV_CLIENT_ACCOUNT_LEN);
	assert_true(bv_client_device(p->c) >= 1);
}

/* How often p got message mid. */
unsigned
got(const struct peer *p, const char *mid)
{
	unsigned i, n = 0;

	for (i = 0; i < p->n_rx; i++)
		n += !strcmp(p->rx[i].mid, mid);
	return n;
}

const struct rx *
find(const struct peer *p, const char *mid)
{
	unsigned i;

	for (i = 0; i < p->n_rx; i++)
		if (!strcmp(p->rx[i].mid, mid))
			return &p->rx[i];
	return NULL;
}

/* from sends text to account to; waits for the relay's answer. */
void
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
void
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

int
setup_relay(void **state, const char *const *relay_args)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/bvt-client-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	if (uv_loop_init(&loop) != 0)
		return -1;
	return bvt_env_init(&env, relay_args);
}

int
setup(void **state)
{
	return setup_relay(state, NULL);
}

int
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
