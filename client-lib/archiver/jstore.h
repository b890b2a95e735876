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

/* ------------------------------------------------------ attachments
 *
 * Each file of a stored message, fetched from the relay before the batch
 * with its message is cut (docs/fiks.md, "Attachments"): a row per
 * (message id, index) holding the plaintext sealed like a batch's
 * documents, or why it could not be had. Cutting a batch hands each row to
 * one of its journalposts (never two: the row names it); once that one is
 * journaled and the relay told (blobs_journaled) the bytes are dropped.
 */
enum jatt_state {
	JA_RETRY = 0,	/* not fetched yet: again at next_try_ms */
	JA_FETCHED = 1, /* the plaintext is here */
	JA_FAILED = 2,	/* permanently not to be had: code says why */
};

struct jatt {
	enum jatt_state state;
	int tries;
	int64_t next_try_ms;
	int code;	 /* BV_E* of the last failure, 0 */
	int64_t len;	 /* FETCHED: plaintext bytes */
	int assigned;	 /* in a batch already */
	char sha256[65]; /* FETCHED: of the plaintext, hex */
};

/* The state of attachment idx of message_id: 1 and *out, 0 when there is
 * no row yet (never tried), or a BV_E* code. */
int jstore_att_get(struct jstore *j, const char *message_id, int idx,
		   struct jatt *out);

/* Records the fetched plaintext (sealed) of attachment idx of message_id
 * (blob: the relay's id), replacing a RETRY row. 0 or a code. */
int jstore_att_fetched(struct jstore *j, const char *message_id, int idx,
		       const char *blob, const uint8_t *data, size_t len);

/* Records a failed try: RETRY at next_try_ms, or FAILED (final). */
int jstore_att_failed(struct jstore *j, const char *message_id, int idx,
		      const char *blob, int code, int tries,
		      int64_t next_try_ms, int final);

/* A FAILED attachment as jstore_att_failures() shows it. */
struct jatt_failure {
	const char *message_id;
	int idx;
	int code;		 /* BV_E* */
	const char *batch_id;	 /* the batch that records it, or NULL */
	int64_t acknowledged_ms; /* when an operator did, else 0 */
	const char *note;	 /* theirs, or NULL */
};

/* Calls cb for every FAILED attachment (staff must see them). */
typedef int (*jatt_failed_cb)(void *arg, const struct jatt_failure *f);
int jstore_att_failures(struct jstore *j, jatt_failed_cb cb, void *arg);

/* An operator has seen FAILED attachment idx of message_id and says why
 * it may rest (note, may be ""). Returns 1 when it is acknowledged (now or
 * before: the first note stays), 0 when there is no such failure, or a
 * BV_E* code. */
int jstore_att_acknowledge(struct jstore *j, const char *message_id, int idx,
			   const char *note, int64_t at_ms);

/*
 * Changed identity keys the archive accepted (a participant's reinstall or
 * new phone): a trust decision the case file records. Each goes into the
 * transcript of the next cut of every conversation of the person's case,
 * once per conversation.
 */
struct jkeychange {
	int64_t id;
	const char *account;
	uint32_t device;
	int64_t accepted_ms;
};

/* The archive accepted the changed key of (account, device) at
 * accepted_ms. 0 or a BV_E* code. */
int jstore_keychange_add(struct jstore *j, const char *account, uint32_t device,
			 int64_t accepted_ms);

/* Calls cb for each key change no batch of conversation has recorded,
 * oldest first; stops at cb's nonzero return, which is returned. */
typedef int (*jkeychange_cb)(void *arg, const struct jkeychange *k);
int jstore_keychanges_unnoted(struct jstore *j, const char *conversation,
			      jkeychange_cb cb, void *arg);

/* One journalpost of a cut: the batch row and its own files (the
 * arkivmelding, and the transcript in the first), and the key changes
 * (jkeychange ids) its transcript records. */
struct jpart {
	const struct jbatch *b;
	const struct fiks_file *files;
	size_t n_files;
	const int64_t *keychanges;
	size_t n_keychanges;
};

/* An attachment handed to part (index into the parts) under package file
 * name pkg (NULL for a FAILED one: only its blob is the batch's). */
struct jatt_ref {
	const char *message_id;
	int idx;
	size_t part;
	const char *pkg;
	const char *mime;
};

/*
 * Creates the journalposts of one cut (state READY, in order): parts[0]
 * with the n message ids, and each attachment ref'd to its part, notes
 * each part's key changes as recorded for the conversation, and moves the
 * conversation's cursor to parts[0].b->last_seq, in one transaction. BV_EINVAL when first_seq is not past the cursor (never
 * twice) or an attachment is not there or already in a batch.
 */
int jstore_batch_create(struct jstore *j, const struct jpart *parts,
			size_t n_parts, const char *const *message_ids,
			size_t n, const struct jatt_ref *atts, size_t n_atts);

/* Up to max (≤ 100) blob ids of attachments whose journalpost is
 * journaled but the relay not told yet, into *blobs (jstore_ids_free). */
int jstore_blobs_unreported(struct jstore *j, size_t max, char ***blobs,
			    size_t *n);

/* The relay has been told: marks them and drops their bytes. */
int jstore_blobs_reported(struct jstore *j, const char *const *blobs, size_t n);

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

/* The message ids of batch id, in history order, each once (a message
 * that could not be read and its resent copy share one), into *ids (free
 * with jstore_ids_free). */
int jstore_batch_messages(struct jstore *j, const char *id, char ***ids,
			  size_t *n);
void jstore_ids_free(char **ids, size_t n);

/* The documents of batch id, unsealed, its attachments after its own
 * files (free with jstore_files_free). */
int jstore_batch_files(struct jstore *j, const char *id,
		       struct fiks_file **files, size_t *n);
void jstore_files_free(struct fiks_file *files, size_t n);

/* 1 when conversation has a FAILED batch (its later batches wait). */
int jstore_blocked(struct jstore *j, const char *conversation);

const char *jstate_name(enum jstate s);

#endif /* BV_ARCHIVER_JSTORE_H */
