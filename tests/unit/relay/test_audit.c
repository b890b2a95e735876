/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_audit.c: unit tests of relay/audit.c's pure half: the canonical
 * encoding and hash of an entry (two pinned vectors, which
 * tests/integration/18-audit.c also checks against SQL's bv_audit_hash())
 * and the chain walk: a good chain, an edited entry, a deleted one, a
 * broken link, --from anchors and the noted head. The database half runs
 * in 18-audit.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <sodium.h>

#include "audit.h"
#include "bv_error.h"

/* Stub: audit.c checks the schema before its commands; not used here. */
int migrate_check(const char *conninfo);

int
migrate_check(const char *conninfo)
{
	(void)conninfo;
	return BV_EINTERNAL;
}

static const uint8_t tenant1[AUDIT_UUID_LEN] = {
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x41, 0x11,
	0x81, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11};

/* Pinned: the same values give the same hash in SQL (18-audit). */
#define VEC1_HEX                                                               \
	"75e7c25b19291ec8843e1a3a369dc73a08d5b8ad0d3c0fa1b8bec1466289f272"
#define VEC2_HEX                                                               \
	"faa5bbd2a070e0eb594e4ffa96efc566e722c3e78ea7613ae5b36b67e03d0194"

static void
vec1(struct audit_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->seq = 1;
	e->at_us = 1767323045678901LL; /* 2026-01-02T03:04:05.678901Z */
	e->tenant = tenant1;
	e->actor = "system";
	e->action = "device.enroll";
	e->subject = "abc";
	e->detail = "{\"device\": 1, \"account\": \"x\"}";
}

static void
vec2(struct audit_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->seq = 2;
	e->at_us = 946684799999999LL; /* 1999-12-31T23:59:59.999999Z */
	e->actor = "ops:\xc3\xa5se";  /* "ops:åse" in UTF-8 */
	e->action = "x.y";
	memset(e->prev_hash, 0xab, sizeof(e->prev_hash));
}

static void
assert_hex(const uint8_t h[AUDIT_HASH_LEN], const char *want)
{
	char hex[2 * AUDIT_HASH_LEN + 1];

	sodium_bin2hex(hex, sizeof(hex), h, AUDIT_HASH_LEN);
	assert_string_equal(hex, want);
}

static void
test_vectors(void **state)
{
	struct audit_entry e;
	uint8_t h[AUDIT_HASH_LEN];

	(void)state;
	vec1(&e);
	audit__hash(&e, h);
	assert_hex(h, VEC1_HEX);
	vec2(&e);
	audit__hash(&e, h);
	assert_hex(h, VEC2_HEX);
}

/* The bytes hashed, written out by hand from migrations/0002's comment. */
static void
test_encoding(void **state)
{
	static const uint8_t enc[] = {
		'b', 'v', 'c', 'h', 'a', 't', '-', 'a', 'u', 'd', 'i', 't',
		/* the tag, then seq 2 */
		'-', 'v', '1', 0, 0, 0, 0, 0, 0, 0, 2,
		/* at: 946684799999999 = 0x00035d013b37dfff */
		0x00, 0x03, 0x5d, 0x01, 0x3b, 0x37, 0xdf, 0xff,
		/* tenant NULL */
		0xff, 0xff, 0xff, 0xff,
		/* actor */
		0, 0, 0, 8, 'o', 'p', 's', ':', 0xc3, 0xa5, 's', 'e',
		/* action */
		0, 0, 0, 3, 'x', '.', 'y',
		/* subject NULL, detail NULL */
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	uint8_t buf[sizeof(enc) + AUDIT_HASH_LEN], want[AUDIT_HASH_LEN];
	uint8_t got[AUDIT_HASH_LEN];
	struct audit_entry e;

	(void)state;
	memcpy(buf, enc, sizeof(enc));
	memset(buf + sizeof(enc), 0xab, AUDIT_HASH_LEN);
	crypto_hash_sha256(want, buf, sizeof(buf));
	vec2(&e);
	audit__hash(&e, got);
	assert_memory_equal(got, want, AUDIT_HASH_LEN);
}

/* Every field counts, and NULL differs from empty. */
static void
test_fields_matter(void **state)
{
	struct audit_entry e;
	uint8_t base[AUDIT_HASH_LEN], h[AUDIT_HASH_LEN];
	uint8_t t2[AUDIT_UUID_LEN];

	(void)state;
	vec1(&e);
	audit__hash(&e, base);
#define CHANGED(stmt)                                                          \
	do {                                                                   \
		vec1(&e);                                                      \
		stmt;                                                          \
		audit__hash(&e, h);                                            \
		assert_memory_not_equal(h, base, AUDIT_HASH_LEN);              \
	} while (0)
	CHANGED(e.seq = 2);
	CHANGED(e.at_us++);
	CHANGED(e.tenant = NULL);
	memcpy(t2, tenant1, sizeof(t2));
	t2[15] ^= 1;
	CHANGED(e.tenant = t2);
	CHANGED(e.actor = "systen");
	CHANGED(e.action = "device.remove");
	CHANGED(e.subject = NULL);
	CHANGED(e.subject = "");
	CHANGED(e.detail = NULL);
	CHANGED(e.detail = "{\"device\": 2, \"account\": \"x\"}");
	CHANGED(e.prev_hash[31] = 1);
	/* Moving bytes between fields changes the hash: lengths are in it. */
	CHANGED((e.actor = "systemdevice.", e.action = "enroll"));
	/* The stored hash is not part of what is hashed. */
	vec1(&e);
	e.hash[0] = 0x55;
	audit__hash(&e, h);
	assert_memory_equal(h, base, AUDIT_HASH_LEN);
#undef CHANGED
}

#define NCHAIN 5

static char details[NCHAIN][32];
static struct audit_entry chain[NCHAIN];

/* A valid chain of NCHAIN entries, seq 1…NCHAIN. */
static void
make_chain(void)
{
	int i;

	for (i = 0; i < NCHAIN; i++) {
		struct audit_entry *e = &chain[i];

		memset(e, 0, sizeof(*e));
		snprintf(details[i], sizeof(details[i]), "{\"n\": %d}", i);
		e->seq = i + 1;
		e->at_us = 1767323045000000LL + i;
		e->tenant = i % 2 ? tenant1 : NULL;
		e->actor = "system";
		e->action = "test.entry";
		e->subject = "s";
		e->detail = details[i];
		if (i > 0)
			memcpy(e->prev_hash, chain[i - 1].hash, AUDIT_HASH_LEN);
		audit__hash(e, e->hash);
	}
}

static const uint8_t zero[AUDIT_HASH_LEN];

/* Walks entries [from, to) of chain; returns the failing index or -1. */
static int
walk(struct audit_check *c, int from, int to, const int *skip)
{
	int i;

	for (i = from; i < to; i++) {
		if (skip != NULL && i == *skip)
			continue;
		if (audit__check_entry(c, &chain[i]) < 0)
			return i;
	}
	return -1;
}

static void
test_chain_ok(void **state)
{
	struct audit_check c;

	(void)state;
	make_chain();
	audit__check_init(&c, 1, zero, NULL);
	assert_int_equal(walk(&c, 0, NCHAIN, NULL), -1);
	assert_int_equal(c.count, NCHAIN);
	assert_int_equal(c.next_seq, NCHAIN + 1);
	assert_memory_equal(c.last, chain[NCHAIN - 1].hash, AUDIT_HASH_LEN);
	assert_int_equal(c.head_seq, -1);
	assert_int_equal(c.bad_seq, -1);
}

static void
test_chain_edited(void **state)
{
	struct audit_check c;

	(void)state;
	make_chain();
	chain[2].detail = "{\"n\": 99}";
	audit__check_init(&c, 1, zero, NULL);
	assert_int_equal(walk(&c, 0, NCHAIN, NULL), 2);
	assert_int_equal(c.bad_seq, 3);
	assert_non_null(strstr(c.why, "edited"));
}

/* Edited and rehashed: the next entry's link gives it away. */
static void
test_chain_rehashed(void **state)
{
	struct audit_check c;

	(void)state;
	make_chain();
	chain[2].detail = "{\"n\": 99}";
	audit__hash(&chain[2], chain[2].hash);
	audit__check_init(&c, 1, zero, NULL);
	assert_int_equal(walk(&c, 0, NCHAIN, NULL), 3);
	assert_int_equal(c.bad_seq, 4);
	assert_non_null(strstr(c.why, "link"));
}

static void
test_chain_deleted(void **state)
{
	struct audit_check c;
	int skip = 1;

	(void)state;
	make_chain();
	audit__check_init(&c, 1, zero, NULL);
	assert_int_equal(walk(&c, 0, NCHAIN, &skip), 2);
	assert_int_equal(c.bad_seq, 2);
	assert_non_null(strstr(c.why, "missing"));
	/* The first entry deleted: the walk starts at seq 1. */
	skip = 0;
	audit__check_init(&c, 1, zero, NULL);
	assert_int_equal(walk(&c, 0, NCHAIN, &skip), 1);
	assert_int_equal(c.bad_seq, 1);
}

/* Deleted and the rest renumbered: the link breaks. */
static void
test_chain_renumbered(void **state)
{
	struct audit_check c;

	(void)state;
	make_chain();
	chain[2].seq = 2;
	audit__hash(&chain[2], chain[2].hash);
	audit__check_init(&c, 1, zero, NULL);
	assert_int_equal(walk(&c, 0, 1, NULL), -1);
	assert_int_equal(walk(&c, 2, 3, NULL), 2);
	assert_int_equal(c.bad_seq, 2);
	assert_non_null(strstr(c.why, "link"));
}

static void
test_from_anchor(void **state)
{
	struct audit_check c;

	(void)state;
	make_chain();
	audit__check_init(&c, 3, chain[1].hash, NULL);
	assert_int_equal(walk(&c, 2, NCHAIN, NULL), -1);
	assert_int_equal(c.count, NCHAIN - 2);
	/* A wrong anchor fails the first entry. */
	audit__check_init(&c, 3, chain[0].hash, NULL);
	assert_int_equal(walk(&c, 2, NCHAIN, NULL), 2);
	assert_int_equal(c.bad_seq, 3);
}

static void
test_expect_head(void **state)
{
	struct audit_check c;
	uint8_t other[AUDIT_HASH_LEN];

	(void)state;
	make_chain();
	/* The newest. */
	audit__check_init(&c, 1, zero, chain[NCHAIN - 1].hash);
	assert_int_equal(walk(&c, 0, NCHAIN, NULL), -1);
	assert_int_equal(c.head_seq, NCHAIN);
	/* An older head: entries appended since are fine. */
	audit__check_init(&c, 1, zero, chain[2].hash);
	assert_int_equal(walk(&c, 0, NCHAIN, NULL), -1);
	assert_int_equal(c.head_seq, 3);
	/* The tail up to the noted head removed: not found. */
	audit__check_init(&c, 1, zero, chain[NCHAIN - 1].hash);
	assert_int_equal(walk(&c, 0, NCHAIN - 1, NULL), -1);
	assert_int_equal(c.head_seq, -1);
	/* Another log's head. */
	memset(other, 0x42, sizeof(other));
	audit__check_init(&c, 1, zero, other);
	assert_int_equal(walk(&c, 0, NCHAIN, NULL), -1);
	assert_int_equal(c.head_seq, -1);
	/* The anchor of --from counts. */
	audit__check_init(&c, 3, chain[1].hash, chain[1].hash);
	assert_int_equal(c.head_seq, 2);
	/* An empty log's head is 32 zero bytes. */
	audit__check_init(&c, 1, zero, zero);
	assert_int_equal(c.head_seq, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_encoding),
		cmocka_unit_test(test_fields_matter),
		cmocka_unit_test(test_chain_ok),
		cmocka_unit_test(test_chain_edited),
		cmocka_unit_test(test_chain_rehashed),
		cmocka_unit_test(test_chain_deleted),
		cmocka_unit_test(test_chain_renumbered),
		cmocka_unit_test(test_from_anchor),
		cmocka_unit_test(test_expect_head),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests_name("relay/audit", tests, NULL, NULL);
}
