/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_session_order.c: issue 3, "1,000 messages delivered in random order
 * all decrypt exactly once". Alice (one device) and Bob (one device), each
 * on a real SQLite store in its own mkdtemp directory with real libsignal,
 * no relay: Alice sends 1,000 PreKey messages that Bob receives shuffled
 * through bv_session_receive(), then Bob replies with 300 Signal messages
 * that Alice receives shuffled; redelivered envelopes are duplicates.
 * The shuffle seed is printed; set BV_TEST_SEED to replay one.
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
#include <time.h>
#include <unistd.h>

#include "bv_error.h"
#include "bv_util.h"
#include "crypto.h"
#include "session.h"

#define ALICE "11111111-1111-4111-8111-111111111111"
#define BOB   "22222222-2222-4222-8222-222222222222"
#define CONV  "33333333-3333-4333-8333-333333333333"

#define N_FORWARD   1000
#define N_REPLY	    300
#define N_REDELIVER 50

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
	struct party a, b;
	uint64_t rng;
};

/* One kept envelope: what the relay would store and deliver. */
struct kept {
	char id[BV_MESSAGE_ID_MAX + 1];
	char text[32];
	uint8_t type;
	uint8_t *body;
	size_t body_len;
};

/* splitmix64: small, seedable and the same everywhere. */
static uint64_t
rng_next(uint64_t *x)
{
	uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

/* Uniform in [0, n), n > 0 (the modulo bias is irrelevant here). */
static size_t
rng_below(uint64_t *x, size_t n)
{
	return (size_t)(rng_next(x) % n);
}

static void
shuffle(uint64_t *x, size_t *order, size_t n)
{
	size_t i, j, t;

	for (i = 0; i < n; i++)
		order[i] = i;
	for (i = n; i > 1; i--) {
		j = rng_below(x, i);
		t = order[i - 1];
		order[i - 1] = order[j];
		order[j] = t;
	}
}

static void
party_init(struct world *w, struct party *p, const char *account, uint8_t seed)
{
	size_t i;

	strcpy(p->dir, "/tmp/bv_order_XXXXXX");
	assert_non_null(mkdtemp(p->dir));
	snprintf(p->path, sizeof(p->path), "%s/store.db", p->dir);
	for (i = 0; i < sizeof(p->key); i++)
		p->key[i] = (uint8_t)(i * 7 + seed);
	p->account = account;
	p->device = 1;
	assert_int_equal(bv_store_open(p->path, p->key, &p->st), 0);
	assert_int_equal(
		bv_session_new(p->st, w->ctx, p->account, p->device, &p->s), 0);
}

static void
party_remove(struct party *p)
{
	char path[512];
	struct dirent *d;
	DIR *dir;

	bv_session_free(p->s);
	bv_store_close(p->st);
	p->s = NULL;
	p->st = NULL;
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
	const char *env = getenv("BV_TEST_SEED");
	uint64_t seed;

	if (!w || bv_signal_context_new(&w->ctx) != 0) {
		free(w);
		return -1;
	}
	if (env && *env)
		seed = strtoull(env, NULL, 0);
	else
		seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	printf("test_session_order: BV_TEST_SEED=%llu\n",
	       (unsigned long long)seed);
	fflush(stdout);
	w->rng = seed;
	party_init(w, &w->a, ALICE, 1);
	party_init(w, &w->b, BOB, 2);
	*state = w;
	return 0;
}

static int
teardown(void **state)
{
	struct world *w = *state;

	party_remove(&w->a);
	party_remove(&w->b);
	signal_context_destroy(w->ctx);
	free(w);
	return 0;
}

/* from builds a session with to from a fresh bundle (one one-time prekey). */
static void
link_to(struct party *from, struct party *to)
{
	struct bv_session_keys *k = NULL;
	struct bv_wire_bundle b;
	enum bv_trust t = BV_TRUST_CHANGED;

	memset(&b, 0, sizeof(b));
	assert_int_equal(bv_session_keys_new(to->s, 1, 1, &k), 0);
	assert_true(k->has_signed_prekey);
	assert_int_equal(k->n_one_time, 1);
	b.device = to->device;
	assert_int_equal(
		bv_session_identity(to->s, b.identity_key, &b.registration_id),
		0);
	b.signed_prekey = k->signed_prekey;
	memcpy(b.signed_prekey_signature, k->signed_prekey_signature,
	       BV_SIG_LEN);
	b.has_one_time_prekey = 1;
	b.one_time_prekey = k->one_time[0];
	bv_session_keys_free(k);
	assert_int_equal(
		bv_session_process_bundles(from->s, to->account, &b, 1, &t), 0);
	assert_int_equal(t, BV_TRUST_NEW);
}

/* from encrypts n texts to to, in order, keeping type and body of each. */
static struct kept *
send_many(struct party *from, struct party *to, const char *prefix, size_t n,
	  uint8_t want_type)
{
	struct kept *k = calloc(n, sizeof(*k));
	struct bv_session_recipient r;
	size_t i;

	assert_non_null(k);
	r.account = to->account;
	r.device = to->device;
	r.registration_id = 0;
	for (i = 0; i < n; i++) {
		struct bv_session_outgoing *o = NULL;
		struct bv_content *c = NULL;

		snprintf(k[i].id, sizeof(k[i].id), "%s-%04zu", prefix, i);
		snprintf(k[i].text, sizeof(k[i].text), "text %s %zu", prefix,
			 i);
		assert_int_equal(bv_content_text_new(CONV, k[i].id,
						     1795431296123 + (int64_t)i,
						     k[i].text,
						     strlen(k[i].text), &c),
				 0);
		assert_int_equal(bv_session_encrypt(from->s, c, &r, 1, &o), 0);
		bv_content_free(c);
		assert_int_equal(o->n, 1);
		assert_int_equal(o->envs[0].type, want_type);
		k[i].type = o->envs[0].type;
		k[i].body_len = o->envs[0].body_len;
		k[i].body = malloc(k[i].body_len);
		assert_non_null(k[i].body);
		memcpy(k[i].body, o->envs[0].body, k[i].body_len);
		bv_session_outgoing_free(o);
	}
	return k;
}

static void
kept_free(struct kept *k, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(k[i].body);
	free(k);
}

static enum bv_session_result
deliver(struct party *from, struct party *to, const struct kept *k,
	struct bv_content **c)
{
	struct bv_session_envelope v;
	enum bv_session_result r = BV_SESSION_MALFORMED;
	int64_t seq = -2;

	memset(&v, 0, sizeof(v));
	v.sender = from->account;
	v.sender_device = from->device;
	v.message_id = k->id;
	v.type = k->type;
	v.timestamp_ms = 1795431297000;
	v.body = k->body;
	v.body_len = k->body_len;
	*c = NULL;
	assert_int_equal(bv_session_receive(to->s, &v, &r, c, &seq), 0);
	if (r == BV_SESSION_OK)
		assert_true(seq >= 0);
	else
		assert_null(*c);
	return r;
}

/*
 * Delivers k[0 … n) to `to` in a seeded random order: each must decrypt to
 * its own text, exactly once; then N_REDELIVER random ones again must each
 * be a duplicate.
 */
static void
deliver_shuffled(struct world *w, struct party *from, struct party *to,
		 const struct kept *k, size_t n)
{
	size_t *order = calloc(n, sizeof(*order));
	unsigned char *seen = calloc(n, 1);
	size_t i, j, failed = 0;

	assert_non_null(order);
	assert_non_null(seen);
	shuffle(&w->rng, order, n);
	for (i = 0; i < n; i++) {
		struct bv_content *c = NULL;
		enum bv_session_result r;

		j = order[i];
		r = deliver(from, to, &k[j], &c);
		if (r != BV_SESSION_OK) {
			if (failed++ < 5)
				print_error("delivery %zu of %zu (%s, type %u) "
					    "gave result %d\n",
					    i, n, k[j].id, k[j].type, (int)r);
			continue;
		}
		assert_int_equal(c->kind, BV_CONTENT_TEXT);
		assert_string_equal(c->message_id, k[j].id);
		assert_string_equal(c->text, k[j].text);
		assert_int_equal(seen[j], 0);
		seen[j] = 1;
		bv_content_free(c);
	}
	assert_int_equal(failed, 0);
	for (j = 0; j < n; j++)
		assert_int_equal(seen[j], 1);

	for (i = 0; i < N_REDELIVER; i++) {
		struct bv_content *c = NULL;

		j = rng_below(&w->rng, n);
		assert_int_equal(deliver(from, to, &k[j], &c),
				 BV_SESSION_DUPLICATE);
	}
	free(seen);
	free(order);
}

static void
test_random_order(void **state)
{
	struct world *w = *state;
	struct kept *k;

	/* Alice → Bob: all PreKey messages, as Bob has not answered yet. */
	link_to(&w->a, &w->b);
	k = send_many(&w->a, &w->b, "a", N_FORWARD, 3);
	deliver_shuffled(w, &w->a, &w->b, k, N_FORWARD);
	kept_free(k, N_FORWARD);

	/* Bob → Alice on the session Alice's messages built: Signal messages. */
	k = send_many(&w->b, &w->a, "b", N_REPLY, 2);
	deliver_shuffled(w, &w->b, &w->a, k, N_REPLY);
	kept_free(k, N_REPLY);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_random_order, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
