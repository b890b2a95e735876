/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * store.h: the client's local store (internal to libbvchat): our identity,
 * prekeys, Signal sessions, trusted peer identities, processed message ids
 * and the message history, sealed under a key the application supplies.
 * Two implementations: store.c (one SQLite file; see it for what is and is
 * not encrypted) and store_mem.c (in memory, for the WebAssembly build; see
 * the end of this file); store_signal.c adapts either one to libsignal
 * through the functions below. Not thread-safe: one struct bv_store is used
 * from one thread at a time. There is no way to delete history: it is part of
 * the case file.
 */
#ifndef BV_STORE_H
#define BV_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <signal_protocol.h>

#include "bv_util.h"

#define BV_STORE_KEY_LEN 32

struct bv_store;

/*
 * Opens (creating if needed, mode 0600) the store at path, sealed under key.
 * Returns 0 and sets *out; BV_EINVAL when an argument is NULL or key is not
 * the key the store was created with (nothing is read with a wrong key);
 * BV_EIO when the file cannot be opened, is not a store or has a newer
 * schema than this code knows; BV_ENOMEM.
 */
int bv_store_open(const char *path, const uint8_t key[BV_STORE_KEY_LEN],
		  struct bv_store **out);

/* Closes s (NULL is fine); an open transaction is rolled back. */
void bv_store_close(struct bv_store *s);

/*
 * Transactions, for "store message + mark seen" before acknowledging. Every
 * other function is atomic on its own and joins an open transaction.
 * bv_store_commit() returns only once the commit is durable
 * (synchronous=FULL). Returns 0; BV_EINVAL when begin is called inside a
 * transaction or commit/rollback outside one; BV_EIO.
 */
int bv_store_begin(struct bv_store *s);
int bv_store_commit(struct bv_store *s);
int bv_store_rollback(struct bv_store *s);

/*
 * Our identity key pair (serialized public and private key) and
 * registration id. put replaces. get returns new buffers (free with
 * bv_free; wipe priv first) and 0; BV_EINVAL when none is stored; BV_EIO
 * when a sealed value fails to open.
 */
int bv_store_identity_put(struct bv_store *s, const uint8_t *pub,
			  size_t pub_len, const uint8_t *priv, size_t priv_len,
			  uint32_t registration_id);
int bv_store_identity_get(struct bv_store *s, uint8_t **pub, size_t *pub_len,
			  uint8_t **priv, size_t *priv_len,
			  uint32_t *registration_id);

/*
 * One-time prekeys (signed = 0) and signed prekeys (signed = 1), as
 * serialized records. get returns a new buffer (wipe and bv_free) and 0,
 * or BV_EINVAL when there is no record with id. contains sets *found.
 * remove of a missing id is not an error.
 */
int bv_store_prekey_put(struct bv_store *s, int is_signed, uint32_t id,
			const uint8_t *rec, size_t len);
int bv_store_prekey_get(struct bv_store *s, int is_signed, uint32_t id,
			uint8_t **rec, size_t *len);
int bv_store_prekey_contains(struct bv_store *s, int is_signed, uint32_t id,
			     int *found);
int bv_store_prekey_remove(struct bv_store *s, int is_signed, uint32_t id);
/* Removes every prekey (one-time or signed) with an id below id. */
int bv_store_prekey_remove_below(struct bv_store *s, int is_signed,
				 uint32_t id);

/*
 * Signal sessions by (name, device_id). load sets *found = 0 and leaves
 * the outputs alone when there is none; otherwise *found = 1 and new
 * buffers in *rec and *user (*user NULL, *user_len 0 when none was
 * stored). delete sets *deleted to the number of sessions removed (may be
 * NULL). devices returns a new array (bv_free, NULL when *n is 0) of the
 * device ids with a session for name, in ascending order.
 */
int bv_store_session_store(struct bv_store *s, const char *name,
			   int32_t device_id, const uint8_t *rec, size_t len,
			   const uint8_t *user, size_t user_len);
int bv_store_session_load(struct bv_store *s, const char *name,
			  int32_t device_id, uint8_t **rec, size_t *len,
			  uint8_t **user, size_t *user_len, int *found);
int bv_store_session_contains(struct bv_store *s, const char *name,
			      int32_t device_id, int *found);
int bv_store_session_delete(struct bv_store *s, const char *name,
			    int32_t device_id, int *deleted);
int bv_store_session_delete_all(struct bv_store *s, const char *name,
				int *deleted);
int bv_store_session_devices(struct bv_store *s, const char *name,
			     int32_t **ids, size_t *n);

/* What we know of a peer device's identity key. */
enum bv_trust {
	BV_TRUST_NEW = 0,     /* nothing stored for this device yet */
	BV_TRUST_SAME = 1,    /* equals the stored (trusted) key */
	BV_TRUST_CHANGED = 2, /* differs: never trusted until accepted */
};

/*
 * Peer identity keys by (name, device_id): trust on first use, and a
 * changed key is never saved silently. check sets *trust. save stores key
 * when nothing is stored and sets *trust to what check would have said
 * before the call; on BV_TRUST_CHANGED nothing is written and the caller
 * raises a "key changed" event. accept replaces the stored key: call it
 * only on an explicit user decision. All return 0, BV_EINVAL, BV_EIO or
 * BV_ENOMEM.
 */
int bv_store_identity_check(struct bv_store *s, const char *name,
			    int32_t device_id, const uint8_t *key, size_t len,
			    enum bv_trust *trust);
int bv_store_identity_save(struct bv_store *s, const char *name,
			   int32_t device_id, const uint8_t *key, size_t len,
			   enum bv_trust *trust);
/* The trusted key of (name, device_id): *key (free with bv_free) and *len,
 * *found 0 when none. Returns 0, BV_EINVAL, BV_EIO or BV_ENOMEM. */
int bv_store_identity_peer(struct bv_store *s, const char *name,
			   int32_t device_id, uint8_t **key, size_t *len,
			   int *found);
int bv_store_identity_accept(struct bv_store *s, const char *name,
			     int32_t device_id, const uint8_t *key, size_t len);

/*
 * Records that message_id from (sender, sender_device) has been processed.
 * Sets *was_seen to 1 when it already was (a duplicate: drop it but ack
 * it), else 0. Run it in the same transaction as bv_store_history_append()
 * so that suppression survives a crash between storing and acking.
 */
int bv_store_seen(struct bv_store *s, const char *sender, int32_t sender_device,
		  const char *message_id, int *was_seen);

enum bv_msg_direction {
	BV_MSG_IN = 0,
	BV_MSG_OUT = 1,
};

enum bv_msg_state {
	BV_MSG_SENDING = 0,
	BV_MSG_SENT = 1,
	BV_MSG_DELIVERED = 2,
	BV_MSG_READ = 3,
	BV_MSG_FAILED = 4,
	BV_MSG_UNDECRYPTABLE = 5, /* placeholder: body is empty */
	BV_MSG_RECEIVED = 6,
};

struct bv_history_entry {
	int64_t seq; /* order of appending, ascending */
	const char *conversation;
	enum bv_msg_direction direction;
	const char *sender;
	int32_t sender_device;
	const char *message_id;
	int64_t timestamp_ms;
	enum bv_msg_state state;
	const uint8_t *body; /* valid only during the callback */
	size_t body_len;
	/* The case file's reference when the archive journaled it, or NULL. */
	const char *journal;
};

/* Returns 0 to go on, anything else to stop (returned by the list call). */
typedef int (*bv_history_cb)(const struct bv_history_entry *e, void *arg);

/*
 * Appends a message to the history of conversation and sets *seq (may be
 * NULL). body may be NULL when body_len is 0. Returns 0, BV_EINVAL, BV_EIO
 * or BV_ENOMEM.
 */
int bv_store_history_append(struct bv_store *s, const char *conversation,
			    enum bv_msg_direction direction, const char *sender,
			    int32_t sender_device, const char *message_id,
			    int64_t timestamp_ms, const uint8_t *body,
			    size_t body_len, enum bv_msg_state state,
			    int64_t *seq);

/*
 * Calls cb for each message of conversation with seq > after_seq, in
 * append order. The body is wiped after each call. Returns 0, cb's nonzero
 * value, BV_EIO (also when a body fails to open) or BV_ENOMEM.
 */
int bv_store_history_list(struct bv_store *s, const char *conversation,
			  int64_t after_seq, bv_history_cb cb, void *arg);

/* One conversation of the history, as bv_store_conversations() lists it. */
struct bv_conversation_entry {
	const char *conversation;
	int64_t last_seq;	   /* seq of its newest message */
	int64_t last_timestamp_ms; /* timestamp of that message */
	int64_t n_messages;
};

typedef int (*bv_conversation_cb)(const struct bv_conversation_entry *e,
				  void *arg);

/*
 * Calls cb for each conversation that has messages, newest activity first.
 * Returns 0, cb's nonzero value, BV_EINVAL, BV_EIO or BV_ENOMEM.
 */
int bv_store_conversations(struct bv_store *s, bv_conversation_cb cb,
			   void *arg);

/*
 * Calls cb for each message whose message_id is message_id (in any
 * conversation, either direction: a copy from our other device has the same
 * id), in append order. Returns as bv_store_history_list().
 */
int bv_store_history_find(struct bv_store *s, const char *message_id,
			  bv_history_cb cb, void *arg);

/*
 * Calls cb for each outgoing message still in state BV_MSG_SENDING (not
 * yet taken by the relay), in append order: what a restart sends again.
 * Returns as bv_store_history_list().
 */
int bv_store_history_unsent(struct bv_store *s, bv_history_cb cb, void *arg);

/*
 * The recipient accounts (uuids) of our outgoing message seq: put records
 * them (call it in the transaction of the history append; duplicates are
 * ignored), get sets *accounts (free with bv_free; NULL when none) to the
 * *n recorded, in uuid order. Return 0, BV_EINVAL (a NULL argument, an
 * invalid uuid, or seq not in the history), BV_EIO or BV_ENOMEM.
 */
int bv_store_out_recipients_put(struct bv_store *s, int64_t seq,
				const char *const *accounts, size_t n);
int bv_store_out_recipients_get(struct bv_store *s, int64_t seq,
				char (**accounts)[BV_UUID_LEN + 1], size_t *n);

/*
 * The case view (docs/protocol.md `cases`), one sealed row per case:
 * view is the case as bv_wire_case_dump() wrote it (len bytes, no NUL).
 * put replaces the case's row; delete removes one case, or every case
 * when case_id is NULL (a full refresh: in one transaction with the puts).
 * bv_store_cases() calls cb for each case in case_id order, view
 * NUL-terminated and wiped after the call. Return 0, cb's nonzero value,
 * BV_EINVAL, BV_EIO or BV_ENOMEM.
 */
int bv_store_case_put(struct bv_store *s, const char *case_id, const char *view,
		      size_t len);
int bv_store_case_delete(struct bv_store *s, const char *case_id);
typedef int (*bv_case_cb)(const char *case_id, const char *view, size_t len,
			  void *arg);
int bv_store_cases(struct bv_store *s, bv_case_cb cb, void *arg);

/*
 * Records that the case file has message_id under journal (the archive's
 * reference, non-empty); a second record for the same id is ignored.
 * Returns 0, BV_EINVAL, BV_EIO or BV_ENOMEM.
 */
int bv_store_journaled_put(struct bv_store *s, const char *message_id,
			   const char *journal, int64_t at_ms);

/*
 * The attachments of history entry seq, by index 0 … ATTACHMENTS_MAX - 1:
 * state is the caller's (>= 0; an upload's progress, downloaded), rec a
 * record sealed like the history (len may be 0). put inserts or replaces.
 * bv_store_attachments() calls cb for each row of seq (seq 0: of every
 * entry) in (seq, index) order, rec wiped after the call. Return 0, cb's
 * nonzero value, BV_EINVAL (a NULL argument, index or state out of range,
 * seq not in the history), BV_EIO or BV_ENOMEM.
 */
#define BV_STORE_ATTACHMENTS_MAX 10
int bv_store_attachment_put(struct bv_store *s, int64_t seq, int idx, int state,
			    const uint8_t *rec, size_t len);
typedef int (*bv_attachment_cb)(int64_t seq, int idx, int state,
				const uint8_t *rec, size_t len, void *arg);
int bv_store_attachments(struct bv_store *s, int64_t seq, bv_attachment_cb cb,
			 void *arg);

/*
 * Sets the delivery state of message seq. Returns 0; BV_EINVAL when there
 * is no such message or state is out of range; BV_EIO.
 */
int bv_store_history_set_state(struct bv_store *s, int64_t seq,
			       enum bv_msg_state state);

/*
 * Fill libsignal's store structs with callbacks on s (user_data = s,
 * destroy_func = NULL: s outlives the store context and is closed by its
 * owner). The callbacks return libsignal's codes. In store_signal.c, on the
 * functions above only, so one copy serves both backends.
 */
void bv_store_signal_session_store(struct bv_store *s,
				   signal_protocol_session_store *out);
void bv_store_signal_pre_key_store(struct bv_store *s,
				   signal_protocol_pre_key_store *out);
void
bv_store_signal_signed_pre_key_store(struct bv_store *s,
				     signal_protocol_signed_pre_key_store *out);
void
bv_store_signal_identity_key_store(struct bv_store *s,
				   signal_protocol_identity_key_store *out);

/*
 * --- The memory backend (store_mem.c only) -------------------------------
 *
 * The WebAssembly build has no SQLite and browser storage is asynchronous,
 * so store_mem.c keeps the whole store in memory behind the same functions
 * and the JavaScript side keeps a sealed image of it: it saves
 * bv_store_mem_image() after each change (the hook says when) and hands the
 * saved image back with bv_store_mem_preload() before the next open.
 * Differences from store.c: a path names a store in this process, not a
 * file; bv_store_open() of a path that is open returns BV_EINVAL (one open
 * store per path); bv_store_commit() is durable only once the application
 * has saved the image; names and ids longer than 16 MiB are BV_EINVAL (an
 * image field has a limit). bv_store_open() starts from the image of path
 * (preloaded, or kept by the last bv_store_close() of path in this process)
 * or, when there is none, from a new store: BV_EINVAL when the image was
 * sealed under another key, BV_EIO when it is damaged, truncated, too large
 * (over 256 MiB) or of an unknown version (nothing is loaded), or when the
 * last close of path could not keep its image (preload the saved one).
 * bv_store_close() keeps the final state as the image of path, so that a
 * reopen in the same process finds what was there, as with a file.
 * Values are plaintext in process memory only; keys are wiped on close.
 */

/*
 * The image a later bv_store_open() of path starts from: a sealed image
 * from bv_store_mem_image(); copied. img NULL: forget it (a new store).
 * Returns 0, BV_EINVAL (path NULL, or path is open), BV_ENOMEM.
 */
int bv_store_mem_preload(const char *path, const uint8_t *img, size_t len);

/*
 * The open store of path as a sealed image (malloc'd, caller frees): every
 * table, sealed with the store key (libsodium secretbox, fresh nonce, a
 * version byte and a magic in front). Committed state only. Returns 0;
 * BV_EINVAL when an argument is NULL, no store of path is open or it is in
 * a transaction (take the image from the hook); BV_ENOMEM, also when the
 * image would be larger than bv_store_open() accepts.
 */
int bv_store_mem_image(const char *path, uint8_t **out, size_t *len);

/*
 * Counts committed changes of the open store of path (0 when none is open);
 * grows by one per commit that wrote something and per write outside a
 * transaction. Starts at 0 at each open. A call that changed nothing (a
 * duplicate seen, removing what is not there, a failed call) does not count.
 */
uint64_t bv_store_mem_generation(const char *path);

/*
 * Called after each such change (generation as above); one hook for the
 * process, fn NULL for none. The hook may call bv_store_mem_image() and
 * bv_store_mem_generation(); it must not close the store or write to it.
 */
typedef void (*bv_store_mem_hook)(void *ud, const char *path,
				  uint64_t generation);
void bv_store_mem_set_hook(bv_store_mem_hook fn, void *ud);

#endif
