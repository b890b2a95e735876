/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * wire.h: the client side of bvchat.v1 (docs/protocol.md), without I/O.
 *
 * bv_wire_parse() turns one relay frame into a validated struct bv_wire_msg
 * (the relay is untrusted input: every type, range and length is checked);
 * the bv_wire_build_*() functions make the frames a client sends, which the
 * relay's bv_request_parse() accepts. Sockets and crypto live elsewhere.
 */
#ifndef BV_WIRE_H
#define BV_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "bv_proto.h"
#include "bv_util.h"

#define BV_WIRE_MAX_ITEMS	1000 /* bundles, detail entries, devices each */
#define BV_WIRE_NONCE_B64	44   /* base64 of BV_NONCE_LEN bytes */
#define BV_WIRE_RELAY_MAX	64   /* "bvchat-relay/0.1" */
#define BV_WIRE_NAME_MAX	47   /* "BV_EDEVICES" */
#define BV_WIRE_FIELD_MAX	63   /* detail "field" */
#define BV_WIRE_MESSAGE_MAX	1024 /* error "message" */
#define BV_WIRE_WORD_MAX	32   /* roles, conversation and notice kinds */
#define BV_WIRE_TEXT_MAX	200  /* display names, municipality names */
#define BV_WIRE_CASE_NUMBER_MAX 64
#define BV_WIRE_PHONE_MAX	32
/* A web push endpoint (docs/protocol.md notify_set), and the relay's VAPID
 * public key: base64url of a 65-byte P-256 point (87 characters, 88 with
 * its padding). */
#define BV_WIRE_ENDPOINT_MAX 1024
#define BV_WIRE_VAPID_MAX    88

enum bv_wire_kind {
	BV_WIRE_CHALLENGE = 1, /* event */
	BV_WIRE_QUEUE_EMPTY,   /* event */
	BV_WIRE_PREKEYS_LOW,   /* event */
	BV_WIRE_DISPLACED,     /* event */
	BV_WIRE_DELIVER, /* relay request: answer with bv_wire_build_ack */
	BV_WIRE_OK,	 /* response {"ok": {...}} */
	BV_WIRE_ERROR,	 /* response {"error": {...}} */
	BV_WIRE_CASES_CHANGED, /* event */
};

/* The relay's limits from the challenge; -1 for a limit it did not send. */
struct bv_wire_limits {
	int64_t max_frame_bytes;
	int64_t max_envelope_bytes;
	int64_t max_envelopes_per_send;
	int64_t max_prekeys_per_upload;
	int64_t max_devices_per_account;
	int64_t sends_per_minute;
	int64_t deliver_window;
};

/* One device's keys from keys_get. */
struct bv_wire_bundle {
	uint32_t device;
	uint32_t registration_id;
	uint8_t identity_key[BV_KEY_LEN];
	struct bv_prekey signed_prekey;
	uint8_t signed_prekey_signature[BV_SIG_LEN];
	int has_one_time_prekey; /* 0 when the relay sent null or nothing */
	struct bv_prekey one_time_prekey;
};

/* One {"account", "devices": [...]} entry of missing/extra/stale. */
struct bv_wire_devlist {
	char account[BV_UUID_LEN + 1];
	size_t n_devices;
	uint32_t *devices; /* owned by the message */
};

struct bv_wire_devlists {
	size_t n;
	struct bv_wire_devlist *items; /* owned by the message */
};

/*
 * The case view of the `cases` answer (docs/protocol.md). Words (roles,
 * kinds) are 1 … BV_WIRE_WORD_MAX of [a-z0-9_]: a later relay may add
 * roles and kinds, so they are not limited to the ones known today.
 */
struct bv_wire_person {
	char account[BV_UUID_LEN + 1];
	char role[BV_WIRE_WORD_MAX + 1];
	char *name; /* owned; NULL when the relay sent null (the archive) */
};

struct bv_wire_conv {
	char conversation[BV_UUID_LEN + 1];
	char kind[BV_WIRE_WORD_MAX + 1]; /* "team", "citizens" */
	int closed;
	int64_t created; /* ms since the epoch; 0 when not sent */
	size_t n_members;
	struct bv_wire_person *members; /* owned */
};

struct bv_wire_case {
	char case_id[BV_UUID_LEN + 1];
	char case_number[BV_WIRE_CASE_NUMBER_MAX + 1];
	char municipality[BV_WIRE_TEXT_MAX + 1]; /* "" when not sent */
	char role[BV_WIRE_WORD_MAX + 1];	 /* the caller's */
	/* Working days the municipality answers an e-post in (1 … 60);
	 * 0 when not sent (a relay before migration 0010). */
	int answer_days;
	size_t n_people;
	struct bv_wire_person *people; /* owned */
	size_t n_conversations;
	struct bv_wire_conv *conversations; /* owned */
};

/* Which members of an "ok" object were present (and valid). */
#define BV_WIRE_OK_ACCOUNT	  0x01u
#define BV_WIRE_OK_DEVICE	  0x02u
#define BV_WIRE_OK_TENANT	  0x04u
#define BV_WIRE_OK_TIMESTAMP	  0x08u
#define BV_WIRE_OK_ONE_TIME_COUNT 0x10u
#define BV_WIRE_OK_DEVICES	  0x20u
#define BV_WIRE_OK_CASES	  0x40u /* cases and more */
#define BV_WIRE_OK_CONVERSATION	  0x80u
#define BV_WIRE_OK_BLOB		  0x100u /* blob_create: blob, caps, expires */
/* A capability (docs/protocol.md "Attachments"): 32 bytes, base64url. */
#define BV_WIRE_CAP_LEN	 43
#define BV_WIRE_OK_VAPID 0x200u

struct bv_wire_msg {
	enum bv_wire_kind kind;
	int64_t id; /* requests and responses; -1 for events and "id": null */
	union {
		struct {
			/* As sent: it is part of the signed auth message. */
			char nonce[BV_WIRE_NONCE_B64 + 1];
			char relay[BV_WIRE_RELAY_MAX + 1];
			struct bv_wire_limits limits;
			/* The relay's VAPID public key, "" when not given
			 * (or not a 65-byte point). */
			char webpush_key[BV_WIRE_VAPID_MAX + 1];
		} challenge;
		struct {
			uint32_t one_time_count;
		} prekeys_low;
		struct {
			/*
			 * 1: a notice from the service ("notice" instead of
			 * "envelope"): relay content, no sender, type or
			 * body; the notice_* members are set. 0: an
			 * envelope.
			 */
			int notice;
			char sender[BV_UUID_LEN + 1];
			uint32_t sender_device;
			/* The conversation the sender named (both kinds). */
			char conversation[BV_UUID_LEN + 1];
			char message_id[BV_MESSAGE_ID_MAX + 1];
			uint8_t type;
			int64_t timestamp;
			uint8_t *body; /* decoded, owned, wiped on free */
			size_t body_len;
			char notice_kind[BV_WIRE_WORD_MAX + 1];
			char municipality[BV_WIRE_TEXT_MAX + 1]; /* or "" */
			char phone[BV_WIRE_PHONE_MAX + 1];	 /* or "" */
			char emergency_phone[BV_WIRE_PHONE_MAX + 1];
		} deliver;
		struct {
			char case_id[BV_UUID_LEN + 1]; /* "" when not sent */
		} cases_changed;
		struct {
			/*
			 * The relay does not say which request it answers, so
			 * every known member is parsed when present: auth and
			 * enroll give account/device/tenant, send timestamp,
			 * keys_put/keys_count one_time_count, keys_get account
			 * and devices.
			 */
			unsigned fields; /* BV_WIRE_OK_* */
			char account[BV_UUID_LEN + 1];
			uint32_t device;
			char tenant[BV_UUID_LEN + 1];
			int64_t timestamp;
			uint32_t one_time_count;
			size_t n_bundles;
			struct bv_wire_bundle *bundles; /* owned */
			/* cases: the page, and whether more follow. */
			size_t n_cases;
			struct bv_wire_case *cases; /* owned */
			int more;
			/* conversation_create */
			char conversation[BV_UUID_LEN + 1];
			/* blob_create: all four or none (BV_WIRE_OK_BLOB) */
			char blob[BV_UUID_LEN + 1];
			char upload[BV_WIRE_CAP_LEN + 1];
			char download[BV_WIRE_CAP_LEN + 1];
			int64_t expires;
			/* notify_set: the relay's VAPID public key, checked to
			 * be a 65-byte uncompressed point (BV_WIRE_OK_VAPID). */
			char vapid_public_key[BV_WIRE_VAPID_MAX + 1];
		} ok;
		struct {
			int code; /* the errno as sent, e.g. BV_EDEVICES */
			char name[BV_WIRE_NAME_MAX + 1];
			int retryable;
			char message[BV_WIRE_MESSAGE_MAX + 1];
			char field[BV_WIRE_FIELD_MAX + 1]; /* "" if absent */
			int64_t retry_after_ms;		   /* -1 if absent */
			struct bv_wire_devlists missing;   /* BV_EDEVICES */
			struct bv_wire_devlists extra;	   /* BV_EDEVICES */
			struct bv_wire_devlists stale;	   /* BV_ESTALE */
		} error;
	} u;
};

/*
 * Parses one relay frame of len bytes. max_frame is the largest frame
 * accepted (0: the default 262144). Returns 0 and sets *out (free with
 * bv_wire_msg_free) on success; otherwise *out is untouched and it returns
 * BV_EINVAL (NULL buf or out), BV_EFRAME (len > max_frame), BV_EJSON (not a
 * JSON object), BV_EFIELD (a member missing, of the wrong type, out of
 * range, too long or too many), BV_EBASE64 (bad base64), BV_EOP (unknown
 * op) or BV_ENOMEM. Unknown members are ignored.
 */
int bv_wire_parse(const char *buf, size_t len, size_t max_frame,
		  struct bv_wire_msg **out);
/* Frees a message and wipes a delivered body; NULL is fine. */
void bv_wire_msg_free(struct bv_wire_msg *m);

/*
 * One case of the view as compact JSON in the answer's own shape (sorted
 * members), for the local store: *out from bv_malloc. bv_wire_case_parse()
 * reads it back (or one case object of an answer) with the checks of
 * bv_wire_parse() into *out, which the caller cleans up with
 * bv_wire_case_cleanup() (also after a failure). Return 0, BV_EINVAL,
 * BV_EJSON, BV_EFIELD or BV_ENOMEM.
 */
int bv_wire_case_dump(const struct bv_wire_case *c, char **out);
int bv_wire_case_parse(const char *json, size_t len, struct bv_wire_case *out);
void bv_wire_case_cleanup(struct bv_wire_case *c);

/*
 * A notice (a BV_WIRE_DELIVER message with notice set) as compact JSON in
 * the wire's shape, for the history: *out from bv_malloc. The parser reads
 * it back into a new message (free with bv_wire_msg_free). Return 0,
 * BV_EINVAL, BV_EJSON, BV_EFIELD or BV_ENOMEM.
 */
int bv_wire_notice_dump(const struct bv_wire_msg *m, char **out);
int bv_wire_notice_parse(const char *json, size_t len,
			 struct bv_wire_msg **out);

/* One envelope of a send request; everything borrowed. */
struct bv_wire_envelope {
	const char *account;
	uint32_t device;
	uint32_t registration_id;
	uint8_t type;
	const uint8_t *body;
	size_t body_len;
};

/*
 * The builders below make one compact JSON frame. id is the request id,
 * 1 … BV_ID_MAX, chosen by the caller. Each returns 0 and sets *out to a
 * new string (free with bv_free) on success, BV_EINVAL when an argument
 * breaks docs/protocol.md (id, uuid, device or registration id out of
 * range, bad message_id, empty body or token, NULL pointer), BV_ENOMEM.
 * They do not know the relay's per-request limits (max_envelopes_per_send,
 * max_prekeys_per_upload, max_envelope_bytes): the caller keeps to those.
 */
int bv_wire_build_auth(int64_t id, const char *account, uint32_t device,
		       const uint8_t signature[BV_SIG_LEN], char **out);
/* token: 1 … BV_TOKEN_MAX printable ASCII bytes, as the relay requires.
 * replaces: 0 adds a device, N takes over device N. The frame holds the
 * token: the caller should bv_wipe it before bv_free. */
int bv_wire_build_enroll(int64_t id, const char *token,
			 uint32_t registration_id,
			 const uint8_t identity_key[BV_KEY_LEN],
			 const uint8_t auth_key[BV_AUTH_KEY_LEN],
			 const uint8_t signature[BV_SIG_LEN], uint32_t replaces,
			 char **out);
/* signed_prekey and its signature may both be NULL; n_one_time may be 0. */
int bv_wire_build_keys_put(int64_t id, const struct bv_prekey *signed_prekey,
			   const uint8_t *signed_prekey_signature,
			   const struct bv_prekey *one_time, size_t n_one_time,
			   char **out);
/* device 0 asks for every device of the account. */
int bv_wire_build_keys_get(int64_t id, const char *account, uint32_t device,
			   char **out);
int bv_wire_build_keys_count(int64_t id, char **out);
/* conversation: the case conversation (uuid); partial: 1 for a message
 * meant for some members only (receipts, resend requests). */
int bv_wire_build_send(int64_t id, const char *conversation, int partial,
		       const char *message_id,
		       const struct bv_wire_envelope *envs, size_t n_envs,
		       char **out);
/* case_id: one case, after: the page after that case; either may be NULL. */
int bv_wire_build_cases(int64_t id, const char *case_id, const char *after,
			char **out);
/* kind: "team" or "citizens"; members: 0 … 20 uuids. */
int bv_wire_build_conversation_create(int64_t id, const char *case_id,
				      const char *kind,
				      const char *const *members, size_t n,
				      char **out);
/* size: ciphertext bytes (>= 1); sha256: its digest (32 bytes). */
int bv_wire_build_blob_create(int64_t id, const char *conversation,
			      uint64_t size, const uint8_t sha256[32],
			      char **out);
/* blobs: 1 … 100 uuids. */
int bv_wire_build_blobs_journaled(int64_t id, const char *const *blobs,
				  size_t n, char **out);
/*
 * notify_set (docs/protocol.md): each of channel ("webpush", "sms",
 * "email", "none"), language ("nb", "nn", "en", "se") and endpoint may be
 * NULL (not sent), at least one given. endpoint "" sends "webpush": null
 * (remove the subscription); any other endpoint needs p256dh (base64url of
 * a 65-byte point starting 0x04) and auth (of 16 bytes), padding optional,
 * and is 1 … BV_WIRE_ENDPOINT_MAX printable ASCII characters. BV_EINVAL
 * for anything else.
 */
int bv_wire_build_notify_set(int64_t id, const char *channel,
			     const char *language, const char *endpoint,
			     const char *p256dh, const char *auth, char **out);
int bv_wire_build_ping(int64_t id, char **out);
/* {"id":id,"ok":{}}: acknowledges a deliver once the envelope is stored. */
int bv_wire_build_ack(int64_t id, char **out);
/* {"id":id,"error":{...}} for a relay request the client refuses (code is
 * a BV_E* code); the relay keeps the envelope queued. */
int bv_wire_build_error(int64_t id, int code, char **out);

#endif
