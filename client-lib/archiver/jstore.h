/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * jstore.h: the archiver's journal state (docs/fiks.md, "bvchat-archiver"),
 * a SQLite file next to the device's libbvchat store. libbvchat keeps the
 * messages (durably, before the relay is told); this keeps how far each
 * conversation has been cut into batches and where each batch is on its way
 * into the case file:
 *
 *   ready → sent → received → journaled → announced
 *     ↑      │        │
 *     └──────┴────────┘  serverfeil, tidsavbrudd, silence: again, same id
 *   any → failed         ugyldigforespoersel, or too many attempts
 *
 * A batch is created, its messages listed and the conversation's cursor
 * moved past them in one transaction, so a message is in exactly one batch
 * whatever crashes when; its id is the journalpost's key, the
 * klientMeldingId and the klientKorrelasjonsId of every attempt, so the
 * archive recognises a retry. The documents of a batch are kept sealed
 * (XSalsa20-Poly1305 with a key derived from the device's store key): every
 * attempt sends the same words.
 */
#ifndef BV_ARCHIVER_JSTORE_H
#define BV_ARCHIVER_JSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "fiks_asice.h"

#define JSTORE_KEY_LEN	   32
#define JSTORE_ID_LEN	   36
#define JSTORE_JOURNAL_MAX 64
#define JSTORE_ERROR_MAX   300

enum jstate {
	JS_READY = 0,
	JS_SENT,
	JS_RECEIVED,
	JS_JOURNALED,
	JS_ANNOUNCED,
	JS_FAILED,
};

struct jbatch {
	int64_t seq; /* creation order */
	char id[JSTORE_ID_LEN + 1];
	char conversation[JSTORE_ID_LEN + 1];
	char case_id[JSTORE_ID_LEN + 1];
	int64_t first_seq, last_seq; /* libbvchat history seqs, inclusive */
	int n_messages;
	enum jstate state;
	int attempts;			      /* sends made */
	int64_t next_try_ms;		      /* READY: not before */
	int64_t sent_ms;		      /* SENT/RECEIVED: last send */
	char fiks_id[JSTORE_ID_LEN + 1];      /* melding-id of the last send */
	char journal[JSTORE_JOURNAL_MAX + 1]; /* "2026/17" once journaled */
	char error[JSTORE_ERROR_MAX + 1];     /* why it failed or retries */
	int64_t created_ms, updated_ms;
};

struct jstore;

/* Opens (creating) path. Returns 0; BV_EIO; BV_ENOMEM. */
int jstore_open(const char *path, const uint8_t key[JSTORE_KEY_LEN],
		struct jstore **out);
void jstore_close(struct jstore *j);

/* The last history seq of conversation that is in a batch (0: none), or a
 * BV_E* code. */
int64_t jstore_cursor(struct jstore *j, const char *conversation);

/*
 * Creates batch b (state READY) with its n message ids and files, and
 * moves the conversation's cursor to b->last_seq, in one transaction.
 * BV_EINVAL when b->first_seq is not past the cursor (never twice).
 */
int jstore_batch_create(struct jstore *j, const struct jbatch *b,
			const char *const *message_ids, size_t n,
			const struct fiks_file *files, size_t n_files);

/* Writes state, attempts, times, fiks_id, journal and error of b. */
int jstore_batch_update(struct jstore *j, const struct jbatch *b);

/* Finds a batch by id or by the melding-id of its last send: 1 and *out,
 * 0 when none, or a BV_E* code. */
int jstore_batch_get(struct jstore *j, const char *id, struct jbatch *out);
int jstore_batch_by_fiks(struct jstore *j, const char *fiks_id,
			 struct jbatch *out);

/* Calls cb for every batch (state < 0) or those in state, oldest first;
 * stops at cb's nonzero return, which is returned. */
typedef int (*jbatch_cb)(const struct jbatch *b, void *arg);
int jstore_batches(struct jstore *j, int state, jbatch_cb cb, void *arg);

/* The message ids of batch id, in history order, into *ids (free with
 * jstore_ids_free). */
int jstore_batch_messages(struct jstore *j, const char *id, char ***ids,
			  size_t *n);
void jstore_ids_free(char **ids, size_t n);

/* The documents of batch id, unsealed (free with jstore_files_free). */
int jstore_batch_files(struct jstore *j, const char *id,
		       struct fiks_file **files, size_t *n);
void jstore_files_free(struct fiks_file *files, size_t n);

/* 1 when conversation has a FAILED batch (its later batches wait). */
int jstore_blocked(struct jstore *j, const char *conversation);

const char *jstate_name(enum jstate s);

#endif /* BV_ARCHIVER_JSTORE_H */
