/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * session.h: the Signal session layer of libbvchat (internal): our identity
 * and prekeys, sessions built from keys_get bundles, fan-out encryption of
 * one bv_content to every recipient device, and decryption of delivered
 * envelopes with duplicate suppression and "could not decrypt" placeholders.
 *
 * No network I/O: the caller moves the structs below through wire.h. The only
 * file that calls libsignal's session API and translates its error codes.
 */
#ifndef BV_SESSION_H
#define BV_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include <signal_protocol.h>

#include "bv_proto.h"
#include "content.h"
#include "store.h"
#include "wire.h"

/* Largest number of one-time prekeys made by one bv_session_keys_new(). */
#define BV_SESSION_PREKEYS_MAX 1000

struct bv_session;

/*
 * Creates the session layer on store and ctx (both borrowed: they must
 * outlive it). On first use it generates our identity key pair and
 * registration id and stores them. own_account is our account uuid and
 * own_device our device id (1 … 2147483647).
 * Returns 0 and sets *out; BV_EINVAL for a NULL or invalid argument;
 * BV_EIO when the store fails; BV_ENOMEM; BV_EINTERNAL when libsignal
 * refuses.
 */
int bv_session_new(struct bv_store *store, signal_context *ctx,
		   const char *own_account, uint32_t own_device,
		   struct bv_session **out);

/* Frees s (NULL is fine). The store and context are not touched. */
void bv_session_free(struct bv_session *s);

/*
 * Our public identity key (0x05 || Curve25519) and registration id, as
 * enroll needs them. Returns 0, BV_EINVAL, BV_EIO or BV_ENOMEM.
 */
int bv_session_identity(struct bv_session *s, uint8_t key[BV_KEY_LEN],
			uint32_t *registration_id);

/* What a keys_put sends: pass the members to bv_wire_build_keys_put(). */
struct bv_session_keys {
	int has_signed_prekey; /* 0: pass NULL, NULL to keys_put */
	struct bv_prekey signed_prekey;
	uint8_t signed_prekey_signature[BV_SIG_LEN];
	size_t n_one_time;
	struct bv_prekey *one_time; /* owned */
};

/*
 * Generates n_one_time one-time prekeys (0 … BV_SESSION_PREKEYS_MAX) and,
 * when with_signed, a new signed prekey, and stores their private halves
 * in one transaction. Ids are persisted and increase (one-time and signed
 * each count on their own, 1 … 0xFFFFFF, then wrap to 1); older signed
 * prekeys stay until bv_session_signed_confirmed(). Must not be
 * called inside a store transaction.
 * Returns 0 and sets *out (free with bv_session_keys_free); BV_EINVAL for
 * bad arguments or nothing to generate; BV_EIO; BV_ENOMEM; BV_EINTERNAL.
 */
int bv_session_keys_new(struct bv_session *s, size_t n_one_time,
			int with_signed, struct bv_session_keys **out);
void bv_session_keys_free(struct bv_session_keys *k);

/*
 * How long ago (at now_ms) our newest signed prekey was made: INT64_MAX
 * when none was, or before this was recorded. Rotation: make a new one
 * with bv_session_keys_new(s, 0, 1, …), upload it, and once the relay
 * confirmed it call bv_session_signed_confirmed(s, its id): that removes
 * the signed prekeys older than the one confirmed before (which peers may
 * still be using). Ids are taken as increasing (they wrap after 16 million
 * rotations). Return 0, BV_EINVAL, BV_EIO or BV_ENOMEM.
 */
int bv_session_signed_age(struct bv_session *s, int64_t now_ms,
			  int64_t *age_ms);
int bv_session_signed_confirmed(struct bv_session *s, uint32_t id);

/*
 * Builds a session with each device of account from its keys_get bundle
 * and sets trust[i] (n entries) to what was known of bundles[i]'s identity
 * key: BV_TRUST_NEW (first use: trusted and saved), BV_TRUST_SAME, or
 * BV_TRUST_CHANGED: then no session is built or replaced for that device
 * and the key is not trusted until bv_session_accept_identity(); raise a
 * "key changed" event. A built session replaces the device's old one, so
 * the next message to it is a PreKey message (type 3).
 * Returns 0 (also when some trust[i] are CHANGED); BV_EINVAL for bad
 * arguments (NULL, an own-device bundle, device 0); BV_EFIELD when a
 * bundle's key does not decode or its signed prekey signature does not
 * verify (devices before it keep their new sessions); BV_EIO; BV_ENOMEM;
 * BV_EINTERNAL.
 */
int bv_session_process_bundles(struct bv_session *s, const char *account,
			       const struct bv_wire_bundle *bundles, size_t n,
			       enum bv_trust *trust);

/*
 * Replaces the trusted identity key of (account, device) with key, on an
 * explicit user decision only; then process that device's bundle again.
 * Returns 0, BV_EINVAL, BV_EIO or BV_ENOMEM.
 */
int bv_session_accept_identity(struct bv_session *s, const char *account,
			       uint32_t device, const uint8_t key[BV_KEY_LEN]);

/* Digits of a safety number (Signal's displayable fingerprint). */
#define BV_SESSION_SAFETY_LEN 60

/*
 * The safety number of our device and (account, device) under the key we
 * trust for it: 60 digits and a NUL in out, the same on both devices, to
 * compare in person or on the phone. Returns 0; BV_EINVAL for bad
 * arguments or when no key is trusted for that device yet; BV_EIO;
 * BV_ENOMEM; BV_EINTERNAL.
 */
int bv_session_safety_number(struct bv_session *s, const char *account,
			     uint32_t device,
			     char out[BV_SESSION_SAFETY_LEN + 1]);

/* Sets *found to 1 when there is a session with (account, device). */
int bv_session_has(struct bv_session *s, const char *account, uint32_t device,
		   int *found);

/* One recipient device; registration_id 0 takes the one the session has. */
struct bv_session_recipient {
	const char *account;
	uint32_t device;
	uint32_t registration_id;
};

/* One envelope per recipient, in recipient order, ready for send. */
struct bv_session_outgoing {
	size_t n;
	struct bv_wire_envelope *envs; /* accounts and bodies owned */
};

/*
 * Encodes and pads c once and encrypts it for each of the n recipients
 * (1 … BV_WIRE_MAX_ITEMS), advancing each session. envs[i].type is 2
 * (Signal message) or 3 (PreKey message, until the peer has answered).
 * Returns 0 and sets *out (free with bv_session_outgoing_free); BV_EINVAL
 * for bad arguments, our own device as a recipient, a recipient without a
 * session (build one from its bundle first) or content that cannot be
 * encoded; BV_EFIELD or BV_ETOOMANY when c breaks content.h's rules;
 * BV_EIO; BV_ENOMEM; BV_EINTERNAL. The session updates are one store
 * transaction (one commit for the fan-out, or part of the caller's open
 * one); on error no envelope is returned and no session advanced (inside
 * a caller's transaction: roll it back).
 */
int bv_session_encrypt(struct bv_session *s, const struct bv_content *c,
		       const struct bv_session_recipient *rcpts, size_t n,
		       struct bv_session_outgoing **out);
void bv_session_outgoing_free(struct bv_session_outgoing *o);

/* A delivered envelope; everything borrowed. */
struct bv_session_envelope {
	const char *sender;
	uint32_t sender_device;
	/* The conversation the sender named on the wire (the relay checked
	 * the sender may send to it); NULL when unknown. Content that claims
	 * another conversation is MALFORMED. */
	const char *conversation;
	const char *message_id;
	uint8_t type;
	int64_t timestamp_ms; /* the relay's */
	const uint8_t *body;
	size_t body_len;
};

/* What became of a delivered envelope. */
enum bv_session_result {
	/* Decrypted and decoded: *content is set (kind may be UNKNOWN). */
	BV_SESSION_OK = 0,
	/* Already processed: ack it and do nothing else. */
	BV_SESSION_DUPLICATE = 1,
	/*
	 * Could not decrypt (no session, bad MAC, broken ratchet, unknown
	 * type): keep a placeholder and send a resend_request
	 * (bv_content_resend_new) to the sender device over a fresh session
	 * from its bundle.
	 */
	BV_SESSION_UNDECRYPTABLE = 2,
	/*
	 * A PreKey message under an identity key that differs from the
	 * trusted one: not decrypted; placeholder and "key changed" event.
	 */
	BV_SESSION_UNTRUSTED = 3,
	/*
	 * Decrypted (so from the peer device) but the content is invalid, or
	 * its message_id or conversation is not the envelope's: placeholder,
	 * no resend.
	 */
	BV_SESSION_MALFORMED = 4,
};

/*
 * Decrypts env (type 2 or 3; any other type is UNDECRYPTABLE), storing the
 * advanced session, and decodes the content. Neither marks it seen nor
 * stores it: the connection layer uses bv_session_receive().
 * Returns 0 and sets *result, and *content (free with bv_content_free) only
 * when *result is BV_SESSION_OK (DUPLICATE here means libsignal had
 * already used this message's key). Returns BV_EINVAL for bad arguments,
 * BV_ENOMEM, BV_EIO or BV_EINTERNAL for a local failure: do not ack.
 */
int bv_session_decrypt(struct bv_session *s,
		       const struct bv_session_envelope *env,
		       enum bv_session_result *result,
		       struct bv_content **content);

/*
 * What the connection layer calls for a delivered envelope before acking
 * it: in one store transaction, marks it seen, decrypts it (session update
 * included) and appends it to the history, so a crash leaves either all of
 * it or nothing (then the relay delivers it again).
 * - OK: *content is set. TEXT and UNKNOWN kinds are appended to the
 *   content's conversation (UNKNOWN without one: the envelope's, else the
 *   sender's account) as
 *   BV_MSG_RECEIVED with the JSON plaintext as body, *seq set; RECEIPT and
 *   RESEND_REQUEST are only marked seen (*seq = -1): the caller acts on
 *   them.
 * - DUPLICATE: nothing stored, *seq = -1; ack it.
 * - UNDECRYPTABLE, UNTRUSTED, MALFORMED: a BV_MSG_UNDECRYPTABLE placeholder
 *   with an empty body is appended (conversation: the envelope's, or the
 *   sender's account uuid when that is unknown) and *seq set. MALFORMED
 *   includes content whose conversation is not the envelope's: a member
 *   of one conversation cannot put words into another. Only MALFORMED marks
 *   the message_id seen: the resent message, with the same id, must still
 *   be accepted (undecryptable placeholders are deduplicated on their own).
 * seq may be NULL. Must not be called inside a store transaction.
 * Returns 0, or as bv_session_decrypt(); on error nothing is stored.
 */
int bv_session_receive(struct bv_session *s,
		       const struct bv_session_envelope *env,
		       enum bv_session_result *result,
		       struct bv_content **content, int64_t *seq);

#endif
