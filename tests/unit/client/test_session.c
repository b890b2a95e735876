/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_session.c: unit tests of client-lib/src/session.c with three parties
 * in one process (Alice with two devices, Bob with one), each on a real
 * SQLite store in its own mkdtemp directory and real libsignal: fan-out,
 * replies, duplicates, undecryptable envelopes and resend requests, changed
 * identity keys, prekey ids, and sessions surviving a reopen. No relay.
 * Built twice: test_session on store.c (SQLite) and test_session_mem
 * (BV_TEST_STORE_MEM) on store_mem.c, the memory backend of the
 * WebAssembly build, under the libsignal adapters both share
 * (store_signal.c), which it so proves on each.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bv_error.h"
#include "bv_util.h"
#include "crypto.h"
#include "session.h"

#define ALICE "11111111-1111-4111-8111-111111111111"
#define BOB   "22222222-2222-4222-8222-222222222222"
#define CONV  "33333333-3333-4333-8333-333333333333"

struct party {
	char dir[64];
	char path[96];
	uint8_t key[BV_STORE_KEY_LEN];
	const char *account;
	uint32_t device;
	struct bv_store *st;
	struct bv_session *s;
};

struct world {
	signal_context *ctx;
	struct party a1, a2, b;
};

static void
party_open(struct world *w, struct party *p)
{
	assert_int_equal(bv_store_open(p->path, p->key, &p->st), 0);
	assert_int_equal(
		bv_session_new(p->st, w->ctx, p->account, p->device, &p->s), 0);
}

static void
party_close(struct party *p)
{
	bv_session_free(p->s);
	bv_store_close(p->st);
	p->s = NULL;
	p->st = NULL;
}

static void
party_init(struct world *w, struct party *p, const char *account,
	   uint32_t device, uint8_t seed)
{
	size_t i;

	strcpy(p->dir, "/tmp/bv_session_XXXXXX");
	assert_non_null(mkdtemp(p->dir));
	snprintf(p->path, sizeof(p->path), "%s/store.db", p->dir);
	for (i = 0; i < sizeof(p->key); i++)
		p->key[i] = (uint8_t)(i * 5 + seed);
	p->account = account;
	p->device = device;
	party_open(w, p);
#ifdef BV_TEST_STORE_MEM
	/* The memory store is the one linked in: it counts the writes of
	 * bv_session_new(). */
	assert_true(bv_store_mem_generation(p->path) > 0);
#endif
}

static void
party_remove(struct party *p)
{
	char path[512];
	struct dirent *d;
	DIR *dir;

	party_close(p);
#ifdef BV_TEST_STORE_MEM
	/* The image the memory store kept at close goes with the files. */
	assert_int_equal(bv_store_mem_preload(p->path, NULL, 0), 0);
#endif
	dir = opendir(p->dir);
	while (dir && (d = readdir(dir))) {
		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", p->dir, d->d_name);
		unlink(path);
	}
	if (dir)
		closedir(dir);
	rmdir(p->dir);
}

static int
setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));

	if (!w || bv_signal_context_new(&w->ctx) != 0)
		return -1;
	party_init(w, &w->a1, ALICE, 1, 1);
	party_init(w, &w->a2, ALICE, 2, 2);
	party_init(w, &w->b, BOB, 1, 3);
	*state = w;
	return 0;
}

static int
teardown(void **state)
{
	struct world *w = *state;

	party_remove(&w->a1);
	party_remove(&w->a2);
	party_remove(&w->b);
	signal_context_destroy(w->ctx);
	free(w);
	return 0;
}

/* What the relay would hand out for p: fresh keys, one one-time prekey. */
static void
bundle_of(struct party *p, int with_one_time, struct bv_wire_bundle *b)
{
	struct bv_session_keys *k = NULL;

	memset(b, 0, sizeof(*b));
	assert_int_equal(
		bv_session_keys_new(p->s, with_one_time ? 1 : 0, 1, &k), 0);
	assert_true(k->has_signed_prekey);
	b->device = p->device;
	assert_int_equal(
		bv_session_identity(p->s, b->identity_key, &b->registration_id),
		0);
	b->signed_prekey = k->signed_prekey;
	memcpy(b->signed_prekey_signature, k->signed_prekey_signature,
	       BV_SIG_LEN);
	if (with_one_time) {
		assert_int_equal(k->n_one_time, 1);
		b->has_one_time_prekey = 1;
		b->one_time_prekey = k->one_time[0];
	}
	bv_session_keys_free(k);
}

static void
link_to(struct party *from, struct party *to, enum bv_trust expect)
{
	struct bv_wire_bundle b;
	enum bv_trust t = BV_TRUST_CHANGED;

	bundle_of(to, 1, &b);
	assert_int_equal(
		bv_session_process_bundles(from->s, to->account, &b, 1, &t), 0);
	assert_int_equal(t, expect);
}

static struct bv_session_outgoing *
send_text(struct party *from, const char *id, const char *text,
	  struct party **to, size_t n)
{
	struct bv_session_recipient r[4];
	struct bv_session_outgoing *o = NULL;
	struct bv_content *c = NULL;
	size_t i;

	assert_true(n <= 4);
	for (i = 0; i < n; i++) {
		r[i].account = to[i]->account;
		r[i].device = to[i]->device;
		r[i].registration_id = 0;
	}
	assert_int_equal(bv_content_text_new(CONV, id, 1795431296123, text,
					     strlen(text), &c),
			 0);
	assert_int_equal(bv_session_encrypt(from->s, c, r, n, &o), 0);
	bv_content_free(c);
	assert_int_equal(o->n, n);
	return o;
}

static struct bv_session_envelope
env_of(struct party *from, const char *id, const struct bv_wire_envelope *e)
{
	struct bv_session_envelope v;

	memset(&v, 0, sizeof(v)); /* conversation NULL: not known */
	v.sender = from->account;
	v.sender_device = from->device;
	v.message_id = id;
	v.type = e->type;
	v.timestamp_ms = 1795431297000;
	v.body = e->body;
	v.body_len = e->body_len;
	return v;
}

/* Receives e at to and checks the result; returns *seq. */
static int64_t
recv_expect(struct party *to, const struct bv_session_envelope *v,
	    enum bv_session_result expect, const char *text)
{
	enum bv_session_result r = BV_SESSION_OK;
	struct bv_content *c = NULL;
	int64_t seq = -2;

	assert_int_equal(bv_session_receive(to->s, v, &r, &c, &seq), 0);
	assert_int_equal(r, expect);
	if (expect == BV_SESSION_OK) {
		assert_non_null(c);
		if (text) {
			assert_int_equal(c->kind, BV_CONTENT_TEXT);
			assert_string_equal(c->text, text);
			assert_true(seq >= 0);
		}
	} else {
		assert_null(c);
	}
	bv_content_free(c);
	return seq;
}

struct hist {
	int n;
	int placeholders;
	int received;
};

static int
hist_cb(const struct bv_history_entry *e, void *arg)
{
	struct hist *h = arg;

	h->n++;
	if (e->state == BV_MSG_UNDECRYPTABLE)
		h->placeholders++;
	if (e->state == BV_MSG_RECEIVED)
		h->received++;
	return 0;
}

static void
test_fanout_reply_reopen(void **state)
{
	struct world *w = *state;
	struct party *to_a[2] = {&w->b, &w->a2};
	struct party *to_b[2] = {&w->a1, &w->a2};
	struct party *one[1];
	struct bv_session_outgoing *o;
	struct bv_session_envelope v;
	struct hist h = {0};
	int found = -1;

	/* Alice 1 fans out to Bob and to her other device. */
	link_to(&w->a1, &w->b, BV_TRUST_NEW);
	link_to(&w->a1, &w->a2, BV_TRUST_NEW);
	assert_int_equal(bv_session_has(w->a1.s, BOB, 1, &found), 0);
	assert_int_equal(found, 1);
	o = send_text(&w->a1, "m1", "Hei Bob!", to_a, 2);
	assert_int_equal(o->envs[0].type, 3);
	assert_int_equal(o->envs[1].type, 3);
	assert_string_equal(o->envs[0].account, BOB);
	assert_int_equal(o->envs[1].device, 2);
	assert_int_not_equal(o->envs[0].registration_id, 0);
	v = env_of(&w->a1, "m1", &o->envs[0]);
	recv_expect(&w->b, &v, BV_SESSION_OK, "Hei Bob!");
	recv_expect(&w->b, &v, BV_SESSION_DUPLICATE, NULL);
	v = env_of(&w->a1, "m1", &o->envs[1]);
	recv_expect(&w->a2, &v, BV_SESSION_OK, "Hei Bob!");
	recv_expect(&w->a2, &v, BV_SESSION_DUPLICATE, NULL);
	bv_session_outgoing_free(o);

	/* Bob replies to both Alice devices: a2 needs a bundle first. */
	link_to(&w->b, &w->a2, BV_TRUST_NEW);
	o = send_text(&w->b, "r1", "Hei Alice", to_b, 2);
	assert_int_equal(o->envs[0].type, 2);
	assert_int_equal(o->envs[1].type, 3);
	v = env_of(&w->b, "r1", &o->envs[0]);
	recv_expect(&w->a1, &v, BV_SESSION_OK, "Hei Alice");
	v = env_of(&w->b, "r1", &o->envs[1]);
	recv_expect(&w->a2, &v, BV_SESSION_OK, "Hei Alice");
	bv_session_outgoing_free(o);

	/* Alice 1 got an answer: no more PreKey messages to Bob. */
	one[0] = &w->b;
	o = send_text(&w->a1, "m2", "Fint", one, 1);
	assert_int_equal(o->envs[0].type, 2);
	v = env_of(&w->a1, "m2", &o->envs[0]);
	recv_expect(&w->b, &v, BV_SESSION_OK, "Fint");
	bv_session_outgoing_free(o);

	/* Everything survives closing and reopening the stores. */
	party_close(&w->a1);
	party_close(&w->b);
	party_open(w, &w->a1);
	party_open(w, &w->b);
	one[0] = &w->a1;
	o = send_text(&w->b, "r2", "Etter omstart", one, 1);
	assert_int_equal(o->envs[0].type, 2);
	v = env_of(&w->b, "r2", &o->envs[0]);
	recv_expect(&w->a1, &v, BV_SESSION_OK, "Etter omstart");
	recv_expect(&w->a1, &v, BV_SESSION_DUPLICATE, NULL);
	bv_session_outgoing_free(o);
	v = env_of(&w->a1, "m1",
		   &(struct bv_wire_envelope){.type = 3,
					      .body = (const uint8_t *)"x",
					      .body_len = 1});
	recv_expect(&w->b, &v, BV_SESSION_DUPLICATE, NULL);

	assert_int_equal(bv_store_history_list(w->b.st, CONV, 0, hist_cb, &h),
			 0);
	assert_int_equal(h.received, 2);
	assert_int_equal(h.placeholders, 0);
}

static void
test_send_refusals(void **state)
{
	struct world *w = *state;
	struct bv_session_recipient r = {BOB, 1, 0};
	struct bv_session_outgoing *o = NULL;
	struct bv_content *c = NULL;
	struct bv_wire_bundle b;
	enum bv_trust t;

	assert_int_equal(bv_content_text_new(CONV, "m1", 1, "x", 1, &c), 0);
	/* No session yet. */
	assert_int_equal(bv_session_encrypt(w->a1.s, c, &r, 1, &o), BV_EINVAL);
	/* Ourselves. */
	r.account = ALICE;
	assert_int_equal(bv_session_encrypt(w->a1.s, c, &r, 1, &o), BV_EINVAL);
	assert_null(o);
	bv_content_free(c);

	/* A bundle whose signed prekey signature does not verify. */
	bundle_of(&w->b, 0, &b);
	b.signed_prekey_signature[3] ^= 0x40;
	assert_int_equal(bv_session_process_bundles(w->a1.s, BOB, &b, 1, &t),
			 BV_EFIELD);
	/* Our own device's bundle. */
	bundle_of(&w->a1, 0, &b);
	assert_int_equal(bv_session_process_bundles(w->a1.s, ALICE, &b, 1, &t),
			 BV_EINVAL);
}

static void
test_undecryptable_and_resend(void **state)
{
	struct world *w = *state;
	struct party *to_b[1] = {&w->b};
	struct party *to_a[1] = {&w->a1};
	struct bv_session_recipient r = {ALICE, 1, 0};
	struct bv_session_outgoing *o;
	struct bv_session_envelope v;
	enum bv_session_result res;
	struct bv_content *c = NULL;
	const char *ids[1] = {"m2"};
	struct hist h = {0};
	uint8_t *bad;
	int64_t seq;

	link_to(&w->a1, &w->b, BV_TRUST_NEW);
	o = send_text(&w->a1, "m1", "en", to_b, 1);
	v = env_of(&w->a1, "m1", &o->envs[0]);
	recv_expect(&w->b, &v, BV_SESSION_OK, "en");
	bv_session_outgoing_free(o);

	/* m2 is corrupted in transit. */
	o = send_text(&w->a1, "m2", "to", to_b, 1);
	bad = malloc(o->envs[0].body_len);
	assert_non_null(bad);
	memcpy(bad, o->envs[0].body, o->envs[0].body_len);
	bad[o->envs[0].body_len - 12] ^= 0x01;
	v = env_of(&w->a1, "m2", &o->envs[0]);
	v.body = bad;
	/* bv_session_decrypt() alone reports it and stores nothing. */
	assert_int_equal(bv_session_decrypt(w->b.s, &v, &res, &c), 0);
	assert_int_equal(res, BV_SESSION_UNDECRYPTABLE);
	assert_null(c);
	seq = recv_expect(&w->b, &v, BV_SESSION_UNDECRYPTABLE, NULL);
	assert_true(seq >= 0);
	recv_expect(&w->b, &v, BV_SESSION_DUPLICATE, NULL);
	/* An unknown envelope type is undecryptable too. */
	v = env_of(&w->a1, "m9", &o->envs[0]);
	v.type = 1;
	recv_expect(&w->b, &v, BV_SESSION_UNDECRYPTABLE, NULL);
	free(bad);
	bv_session_outgoing_free(o);

	/* The session goes on. */
	o = send_text(&w->a1, "m3", "tre", to_b, 1);
	v = env_of(&w->a1, "m3", &o->envs[0]);
	recv_expect(&w->b, &v, BV_SESSION_OK, "tre");
	bv_session_outgoing_free(o);

	/* Bob asks for m2 again over a fresh session from Alice's bundle. */
	link_to(&w->b, &w->a1, BV_TRUST_SAME);
	assert_int_equal(bv_content_resend_new(NULL, "rr1", 1795431300000,
					       BV_RESEND_DECRYPT_FAILED, ids, 1,
					       &c),
			 0);
	assert_int_equal(bv_session_encrypt(w->b.s, c, &r, 1, &o), 0);
	bv_content_free(c);
	c = NULL;
	assert_int_equal(o->envs[0].type, 3);
	v = env_of(&w->b, "rr1", &o->envs[0]);
	assert_int_equal(bv_session_receive(w->a1.s, &v, &res, &c, &seq), 0);
	assert_int_equal(res, BV_SESSION_OK);
	assert_int_equal(c->kind, BV_CONTENT_RESEND_REQUEST);
	assert_int_equal(c->n_ids, 1);
	assert_string_equal(c->ids[0], "m2");
	assert_int_equal(seq, -1);
	bv_content_free(c);
	bv_session_outgoing_free(o);

	/* Alice resends m2 with the same id: accepted, not a duplicate. */
	o = send_text(&w->a1, "m2", "to", to_b, 1);
	v = env_of(&w->a1, "m2", &o->envs[0]);
	recv_expect(&w->b, &v, BV_SESSION_OK, "to");
	recv_expect(&w->b, &v, BV_SESSION_DUPLICATE, NULL);
	bv_session_outgoing_free(o);

	/* And Bob's replies reach Alice. */
	o = send_text(&w->b, "r1", "takk", to_a, 1);
	v = env_of(&w->b, "r1", &o->envs[0]);
	recv_expect(&w->a1, &v, BV_SESSION_OK, "takk");
	bv_session_outgoing_free(o);

	assert_int_equal(bv_store_history_list(w->b.st, CONV, 0, hist_cb, &h),
			 0);
	assert_int_equal(h.received, 3);
	memset(&h, 0, sizeof(h));
	assert_int_equal(bv_store_history_list(w->b.st, ALICE, 0, hist_cb, &h),
			 0);
	assert_int_equal(h.placeholders, 2);
}

static void
test_malformed_content(void **state)
{
	struct world *w = *state;
	struct party *to_b[1] = {&w->b};
	struct bv_session_outgoing *o;
	struct bv_session_envelope v;
	struct hist h = {0};

	link_to(&w->a1, &w->b, BV_TRUST_NEW);
	/* The content's message_id is not the envelope's. */
	o = send_text(&w->a1, "m1", "en", to_b, 1);
	v = env_of(&w->a1, "other", &o->envs[0]);
	recv_expect(&w->b, &v, BV_SESSION_MALFORMED, NULL);
	recv_expect(&w->b, &v, BV_SESSION_DUPLICATE, NULL);
	bv_session_outgoing_free(o);
	assert_int_equal(bv_store_history_list(w->b.st, ALICE, 0, hist_cb, &h),
			 0);
	assert_int_equal(h.placeholders, 1);
}

/* A member of one conversation cannot put words into another: content
 * that claims another conversation than its envelope is refused. */
static void
test_conversation_mismatch(void **state)
{
	static const char other[] = "44444444-4444-4444-8444-444444444444";
	struct world *w = *state;
	struct party *to_b[1] = {&w->b};
	struct bv_session_outgoing *o;
	struct bv_session_envelope v;
	struct hist h = {0};

	link_to(&w->a1, &w->b, BV_TRUST_NEW);
	o = send_text(&w->a1, "m1", "riktig", to_b, 1);
	v = env_of(&w->a1, "m1", &o->envs[0]);
	v.conversation = CONV;
	recv_expect(&w->b, &v, BV_SESSION_OK, "riktig");
	bv_session_outgoing_free(o);

	/* Sent to the relay as a message of `other`; the content says CONV. */
	o = send_text(&w->a1, "m2", "injisert", to_b, 1);
	v = env_of(&w->a1, "m2", &o->envs[0]);
	v.conversation = other;
	recv_expect(&w->b, &v, BV_SESSION_MALFORMED, NULL);
	recv_expect(&w->b, &v, BV_SESSION_DUPLICATE, NULL);
	bv_session_outgoing_free(o);
	/* CONV has only the real text; the placeholder is where it was sent. */
	assert_int_equal(bv_store_history_list(w->b.st, CONV, 0, hist_cb, &h),
			 0);
	assert_int_equal(h.n, 1);
	assert_int_equal(h.received, 1);
	memset(&h, 0, sizeof(h));
	assert_int_equal(bv_store_history_list(w->b.st, other, 0, hist_cb, &h),
			 0);
	assert_int_equal(h.n, 1);
	assert_int_equal(h.placeholders, 1);
}

static void
test_identity_changed(void **state)
{
	struct world *w = *state;
	struct party *to_b[1] = {&w->b};
	struct party *to_a[1] = {&w->a1};
	struct bv_session_outgoing *o;
	struct bv_session_envelope v;
	struct bv_wire_bundle b;
	enum bv_trust t;
	uint8_t old_key[BV_KEY_LEN];
	uint32_t reg;

	link_to(&w->a1, &w->b, BV_TRUST_NEW);
	o = send_text(&w->a1, "m1", "en", to_b, 1);
	v = env_of(&w->a1, "m1", &o->envs[0]);
	recv_expect(&w->b, &v, BV_SESSION_OK, "en");
	bv_session_outgoing_free(o);
	assert_int_equal(bv_session_identity(w->b.s, old_key, &reg), 0);

	/* Bob reinstalls: a new store, so a new identity key. */
	party_remove(&w->b);
	party_init(w, &w->b, BOB, 1, 9);
	bundle_of(&w->b, 1, &b);
	assert_memory_not_equal(b.identity_key, old_key, BV_KEY_LEN);
	assert_int_equal(bv_session_process_bundles(w->a1.s, BOB, &b, 1, &t),
			 0);
	assert_int_equal(t, BV_TRUST_CHANGED);
	/* Still not trusted when asked again. */
	assert_int_equal(bv_session_process_bundles(w->a1.s, BOB, &b, 1, &t),
			 0);
	assert_int_equal(t, BV_TRUST_CHANGED);

	/* New Bob writes first: Alice refuses his PreKey message. */
	link_to(&w->b, &w->a1, BV_TRUST_NEW);
	o = send_text(&w->b, "r1", "ny telefon", to_a, 1);
	assert_int_equal(o->envs[0].type, 3);
	v = env_of(&w->b, "r1", &o->envs[0]);
	recv_expect(&w->a1, &v, BV_SESSION_UNTRUSTED, NULL);
	recv_expect(&w->a1, &v, BV_SESSION_DUPLICATE, NULL);

	/* The user accepts the new key; the resent message gets through. */
	assert_int_equal(
		bv_session_accept_identity(w->a1.s, BOB, 1, b.identity_key), 0);
	recv_expect(&w->a1, &v, BV_SESSION_OK, "ny telefon");
	bv_session_outgoing_free(o);
	assert_int_equal(bv_session_process_bundles(w->a1.s, BOB, &b, 1, &t),
			 0);
	assert_int_equal(t, BV_TRUST_SAME);
	o = send_text(&w->a1, "m2", "velkommen tilbake", to_b, 1);
	v = env_of(&w->a1, "m2", &o->envs[0]);
	recv_expect(&w->b, &v, BV_SESSION_OK, "velkommen tilbake");
	bv_session_outgoing_free(o);
}

/* A receipt decrypts to RECEIPT, is marked seen (a redelivery is a
 * duplicate) and is not a message of the history. */
static void
test_receipt_handling(void **state)
{
	struct world *w = *state;
	struct party *to_b[1] = {&w->b};
	struct bv_session_recipient r = {ALICE, 1, 0};
	struct bv_session_outgoing *o;
	struct bv_session_envelope v;
	enum bv_session_result res;
	struct bv_content *c = NULL;
	const char *ids[2] = {"m1", "m2"};
	char sn_a[BV_SESSION_SAFETY_LEN + 1], sn_b[BV_SESSION_SAFETY_LEN + 1];
	struct hist h = {0};
	int64_t seq = 0;

	link_to(&w->a1, &w->b, BV_TRUST_NEW);
	o = send_text(&w->a1, "m1", "en", to_b, 1);
	v = env_of(&w->a1, "m1", &o->envs[0]);
	recv_expect(&w->b, &v, BV_SESSION_OK, "en");
	bv_session_outgoing_free(o);

	assert_int_equal(bv_content_receipt_new(CONV, "rc1", 1795431300000,
						BV_RECEIPT_READ, ids, 2, &c),
			 0);
	assert_int_equal(bv_session_encrypt(w->b.s, c, &r, 1, &o), 0);
	bv_content_free(c);
	c = NULL;
	v = env_of(&w->b, "rc1", &o->envs[0]);
	assert_int_equal(bv_session_receive(w->a1.s, &v, &res, &c, &seq), 0);
	assert_int_equal(res, BV_SESSION_OK);
	assert_int_equal(c->kind, BV_CONTENT_RECEIPT);
	assert_int_equal(c->receipt, BV_RECEIPT_READ);
	assert_string_equal(c->conversation, CONV);
	assert_int_equal(c->n_ids, 2);
	assert_string_equal(c->ids[0], "m1");
	assert_string_equal(c->ids[1], "m2");
	assert_int_equal(seq, -1);
	bv_content_free(c);
	c = NULL;
	assert_int_equal(bv_session_receive(w->a1.s, &v, &res, &c, &seq), 0);
	assert_int_equal(res, BV_SESSION_DUPLICATE);
	assert_null(c);
	bv_session_outgoing_free(o);
	assert_int_equal(bv_store_history_list(w->a1.st, CONV, 0, hist_cb, &h),
			 0);
	assert_int_equal(h.received + h.placeholders, 0);
	assert_int_equal(bv_store_history_list(w->a1.st, BOB, 0, hist_cb, &h),
			 0);
	assert_int_equal(h.received + h.placeholders, 0);

	/* Both ends compute the same safety number; another pair not. */
	assert_int_equal(bv_session_safety_number(w->a1.s, BOB, 1, sn_a), 0);
	assert_int_equal(bv_session_safety_number(w->b.s, ALICE, 1, sn_b), 0);
	assert_int_equal(strlen(sn_a), BV_SESSION_SAFETY_LEN);
	assert_int_equal(strspn(sn_a, "0123456789"), BV_SESSION_SAFETY_LEN);
	assert_string_equal(sn_a, sn_b);
	link_to(&w->a2, &w->b, BV_TRUST_NEW);
	assert_int_equal(bv_session_safety_number(w->a2.s, BOB, 1, sn_b), 0);
	assert_string_not_equal(sn_a, sn_b);
	/* No trusted key for that device: nothing to compare. */
	assert_int_equal(bv_session_safety_number(w->a1.s, BOB, 7, sn_b),
			 BV_EINVAL);
}

static void
test_prekey_ids(void **state)
{
	struct world *w = *state;
	struct bv_session_keys *k = NULL;
	uint8_t key1[BV_KEY_LEN], key2[BV_KEY_LEN];
	uint32_t reg1, reg2, last;
	int64_t age;
	size_t i;
	int found;

	assert_int_equal(bv_session_keys_new(w->a1.s, 0, 0, &k), BV_EINVAL);
	assert_int_equal(bv_session_keys_new(w->a1.s, 5, 1, &k), 0);
	assert_int_equal(k->n_one_time, 5);
	assert_int_equal(k->signed_prekey.id, 1);
	for (i = 0; i < 5; i++)
		assert_int_equal(k->one_time[i].id, i + 1);
	assert_int_equal(k->one_time[0].key[0], 0x05);
	bv_session_keys_free(k);
	assert_int_equal(bv_session_identity(w->a1.s, key1, &reg1), 0);

	party_close(&w->a1);
	party_open(w, &w->a1);
	assert_int_equal(bv_session_identity(w->a1.s, key2, &reg2), 0);
	assert_memory_equal(key1, key2, BV_KEY_LEN);
	assert_int_equal(reg1, reg2);
	assert_int_equal(bv_session_keys_new(w->a1.s, 3, 0, &k), 0);
	assert_false(k->has_signed_prekey);
	last = 5;
	for (i = 0; i < 3; i++) {
		assert_true(k->one_time[i].id > last);
		last = k->one_time[i].id;
	}
	bv_session_keys_free(k);
	assert_int_equal(
		bv_session_signed_age(w->a1.s, bv_now_ms() + 5000, &age), 0);
	assert_true(age >= 5000 && age < 60000);
	assert_int_equal(bv_session_keys_new(w->a1.s, 0, 1, &k), 0);
	assert_int_equal(k->signed_prekey.id, 2);
	assert_int_equal(k->n_one_time, 0);
	bv_session_keys_free(k);

	/* Rotation: nothing is removed until the relay confirmed a new one;
	 * then what is older than the previously confirmed one goes. */
	assert_int_equal(bv_session_signed_confirmed(w->a1.s, 1), 0);
	assert_int_equal(bv_session_keys_new(w->a1.s, 0, 1, &k), 0);
	assert_int_equal(k->signed_prekey.id, 3);
	bv_session_keys_free(k);
	assert_int_equal(bv_store_prekey_contains(w->a1.st, 1, 1, &found), 0);
	assert_int_equal(found, 1);
	assert_int_equal(bv_session_signed_confirmed(w->a1.s, 3), 0);
	assert_int_equal(bv_store_prekey_contains(w->a1.st, 1, 1, &found), 0);
	assert_int_equal(found, 1); /* the relay's previous one */
	assert_int_equal(bv_session_keys_new(w->a1.s, 0, 1, &k), 0);
	assert_int_equal(k->signed_prekey.id, 4);
	bv_session_keys_free(k);
	assert_int_equal(bv_session_signed_confirmed(w->a1.s, 4), 0);
	assert_int_equal(bv_store_prekey_contains(w->a1.st, 1, 1, &found), 0);
	assert_int_equal(found, 0);
	assert_int_equal(bv_store_prekey_contains(w->a1.st, 1, 2, &found), 0);
	assert_int_equal(found, 0);
	assert_int_equal(bv_store_prekey_contains(w->a1.st, 1, 3, &found), 0);
	assert_int_equal(found, 1);
	assert_int_equal(bv_store_prekey_contains(w->a1.st, 1, 4, &found), 0);
	assert_int_equal(found, 1);
	assert_int_equal(bv_session_signed_confirmed(w->a1.s, 0), BV_EINVAL);
	party_close(&w->a1);
	party_open(w, &w->a1);
	assert_int_equal(bv_session_signed_age(w->a1.s, bv_now_ms(), &age), 0);
	assert_true(age >= 0 && age < 60000);
	/* A device that never made one is due at once. */
	assert_int_equal(bv_session_signed_age(w->b.s, bv_now_ms(), &age), 0);
	assert_true(age == INT64_MAX);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fanout_reply_reopen, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_send_refusals, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_undecryptable_and_resend,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_conversation_mismatch,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_content, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_identity_changed, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_receipt_handling, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_prekey_ids, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
