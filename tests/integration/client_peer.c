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
char conv[BV_CLIENT_ACCOUNT_LEN + 1];
char case_id[BV_CLIENT_ACCOUNT_LEN + 1];
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
	assert_int_equal(strlen(conversation), BV_CLIENT_ACCOUNT_LEN);
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
on_notice(struct bv_client *c, void *user, const struct bv_client_notice *n)
{
	struct peer *p = user;

	(void)c;
	p->notices++;
	snprintf(p->notice.conversation, sizeof(p->notice.conversation), "%s",
		 n->conversation);
	snprintf(p->notice.mid, sizeof(p->notice.mid), "%s", n->message_id);
	snprintf(p->notice.kind, sizeof(p->notice.kind), "%s", n->kind);
	snprintf(p->notice.phone, sizeof(p->notice.phone), "%s",
		 n->phone ? n->phone : "");
	snprintf(p->notice.emergency, sizeof(p->notice.emergency), "%s",
		 n->emergency_phone);
}

static void
on_cases(struct bv_client *c, void *user, int changed, int rc)
{
	struct peer *p = user;

	(void)c;
	(void)changed;
	p->cases++;
	p->cases_rc = rc;
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
	o.on_notice = on_notice;
	o.on_cases = on_cases;
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

int
say_in(struct peer *from, const char *conversation, const char *text, char *mid)
{
	unsigned n = from->sent;

	assert_int_equal(bv_client_send_text(from->c, conversation, text, mid),
			 0);
	if (!run_until(&from->sent, n + 1, BVT_TIMEOUT))
		fail_msg("%s: no outcome for %s", from->name, mid);
	assert_string_equal(from->sent_mid, mid);
	return from->sent_rc;
}

void
say(struct peer *from, const char *text, char *mid)
{
	assert_int_equal(say_in(from, conv, text, mid), 0);
}

int
admin(char *out, size_t cap, const char *const *args)
{
	return bvt_admin(env.db, out, cap, args);
}

void
case_new(void)
{
	static unsigned n;
	char number[32];
	const char *args[] = {"case-create",   "--tenant", env.tenant.id,
			      "--case-number", number,	   NULL};

	snprintf(number, sizeof(number), "2026/%04u", ++n);
	assert_int_equal(admin(case_id, sizeof(case_id), args), 0);
	assert_int_equal(strlen(case_id), BV_CLIENT_ACCOUNT_LEN);
}

void
case_add(const struct peer *p, const char *role, const char *name)
{
	const char *args[] = {"roster-add",
			      "--case",
			      case_id,
			      "--account",
			      bv_client_account(p->c),
			      "--role",
			      role,
			      "--name",
			      name,
			      NULL};

	assert_int_equal(admin(NULL, 0, args), 0);
}

void
case_team(const struct peer *citizen)
{
	const char *a = bv_client_account(citizen->c);
	const char *args[] = {"conversation-create",
			      "--case",
			      case_id,
			      "--by",
			      a,
			      "--kind",
			      "team",
			      "--members",
			      a,
			      NULL};

	assert_int_equal(admin(conv, sizeof(conv), args), 0);
	assert_int_equal(strlen(conv), BV_CLIENT_ACCOUNT_LEN);
}

void
case_archive(const struct peer *p)
{
	const char *args[] = {"archive-set",	       "--tenant",
			      env.tenant.id,	       "--account",
			      bv_client_account(p->c), NULL};

	assert_int_equal(admin(NULL, 0, args), 0);
}

void
peer_cases(struct peer *p)
{
	unsigned n = p->cases;

	assert_int_equal(bv_client_refresh_cases(p->c), 0);
	if (!run_until(&p->cases, n + 1, BVT_TIMEOUT))
		fail_msg("%s: the case view did not come", p->name);
	assert_int_equal(p->cases_rc, 0);
}

struct view_find {
	const char *conversation, *account;
	int found;
};

static int
view_find_cb(void *arg, const struct bv_client_case *cs)
{
	struct view_find *f = arg;
	size_t i, j;

	for (i = 0; i < cs->n_conversations; i++) {
		const struct bv_client_case_conversation *cv =
			&cs->conversations[i];

		if (strcmp(cv->conversation, f->conversation))
			continue;
		for (j = 0; j < cv->n_members; j++)
			f->found |= !strcmp(cv->members[j].account, f->account);
	}
	return 0;
}

int
view_has(struct peer *p, const char *conversation, const char *account)
{
	struct view_find f = {conversation, account, 0};

	assert_int_equal(bv_client_cases(p->c, view_find_cb, &f), 0);
	return f.found;
}

void
case_pair(struct peer *staff, struct peer *citizen)
{
	case_new();
	case_add(citizen, "child", citizen->name);
	case_add(staff, "caseworker", staff->name);
	case_team(citizen);
	peer_cases(staff);
	peer_cases(citizen);
	assert_true(view_has(staff, conv, bv_client_account(citizen->c)));
	assert_true(view_has(citizen, conv, bv_client_account(staff->c)));
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
