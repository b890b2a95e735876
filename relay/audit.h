/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * audit.h: `bvchat-relay audit …`, reading and verifying the hash-chained
 * audit log of migrations/0002 (blocking libpq, never in the event loop).
 * The canonical encoding and the chain check are pure, for unit tests.
 */
#ifndef BV_RELAY_AUDIT_H
#define BV_RELAY_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define AUDIT_HASH_LEN 32
#define AUDIT_UUID_LEN 16

/* One row of audit_log as the hash sees it. Strings are UTF-8, NUL-free. */
struct audit_entry {
	int64_t seq;
	int64_t at_us;	       /* microseconds since 1970-01-01 00:00 UTC */
	const uint8_t *tenant; /* AUDIT_UUID_LEN bytes; NULL: relay-wide */
	const char *actor;     /* NULL only when the row lacks it */
	const char *action;
	const char *subject; /* NULL for SQL NULL */
	const char *detail;  /* jsonb's text form; NULL for SQL NULL */
	uint8_t prev_hash[AUDIT_HASH_LEN];
	uint8_t hash[AUDIT_HASH_LEN];
};

/*
 * SHA-256 of e's canonical encoding (prev_hash included, hash ignored), as
 * migrations/0002's bv_audit_hash() computes it in SQL.
 */
void audit__hash(const struct audit_entry *e, uint8_t out[AUDIT_HASH_LEN]);

/* Walks a chain one entry at a time, in seq order. */
struct audit_check {
	int64_t next_seq;	      /* the seq the next entry must have */
	uint8_t last[AUDIT_HASH_LEN]; /* hash the next prev_hash must be */
	int64_t count;		      /* entries checked */
	const uint8_t *expect_head;   /* noted head to find, or NULL */
	int64_t head_seq;	      /* where it was found; -1: not yet */
	int64_t bad_seq;	      /* first bad seq after a failure */
	char why[160];		      /* what is wrong with it */
};

/*
 * Starts a walk at seq from (>= 1) whose predecessor has hash anchor (32
 * zero bytes for from == 1). expect_head (borrowed for the walk) may be
 * NULL; it matches the anchor too.
 */
void audit__check_init(struct audit_check *c, int64_t from,
		       const uint8_t anchor[AUDIT_HASH_LEN],
		       const uint8_t *expect_head);

/*
 * Checks the next entry. Returns 0 when it is the next seq, links to the
 * entry before it and its hash matches its contents; -1 otherwise, with
 * c->bad_seq (a missing seq when there is a gap) and c->why set.
 */
int audit__check_entry(struct audit_check *c, const struct audit_entry *e);

/*
 * argv[0] is "audit", argv[1] the subcommand ("verify", "list"). Prints
 * results on stdout, errors on stderr. Returns 0, 1 (failure, including a
 * chain that does not verify) or 2 (usage).
 */
int audit_main(const struct relay_config *c, int argc, char **argv);

#endif
