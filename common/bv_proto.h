/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * bv_proto.h: the bvchat.v1 wire protocol (docs/protocol.md) as C types.
 *
 * bv_request_parse() turns one client frame into a validated struct
 * bv_request: every field is type-, range- and size-checked, base64 is
 * decoded, limits are applied. It is the relay's only parser of client
 * input and the target of tests/fuzz/fuzz_request.c. It does not touch the
 * database and knows nothing about accounts.
 */
#ifndef BV_PROTO_H
#define BV_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define BV_SUBPROTOCOL	  "bvchat.v1"
#define BV_WS_PATH	  "/v1"
#define BV_KEY_LEN	  33 /* Signal public key: 0x05 || Curve25519 */
#define BV_AUTH_KEY_LEN	  32 /* Ed25519 public key */
#define BV_SIG_LEN	  64
#define BV_NONCE_LEN	  32
#define BV_MESSAGE_ID_MAX 64
#define BV_ID_MAX	  2147483647

/* Limits that bound what a client may send (relay config; docs/protocol.md). */
struct bv_limits {
	size_t max_frame_bytes;
	size_t max_envelope_bytes;
	unsigned max_envelopes_per_send;
	unsigned max_prekeys_per_upload;
};

/* Fills in the documented defaults. */
void bv_limits_default(struct bv_limits *l);

enum bv_op {
	BV_OP_RESPONSE = 0, /* a client's answer to a relay request */
	BV_OP_AUTH,
	BV_OP_ENROLL,
	BV_OP_KEYS_PUT,
	BV_OP_KEYS_GET,
	BV_OP_KEYS_COUNT,
	BV_OP_SEND,
	BV_OP_PING,
	BV_OP_CASES,
	BV_OP_CONVERSATION_CREATE,
	BV_OP_NOTIFY_SET,
	BV_OP_BLOB_CREATE,
	BV_OP_BLOBS_JOURNALED,
	BV_OP__COUNT, /* not an op: the number of them */
};

#define BV_CONVERSATION_MEMBERS_MAX 20 /* citizens in one conversation_create */
#define BV_WEBPUSH_ENDPOINT_MAX	    1024 /* bytes of a push subscription URL */
#define BV_WEBPUSH_P256DH_LEN	    65	 /* uncompressed P-256 point */
#define BV_WEBPUSH_AUTH_LEN	    16
#define BV_BLOBS_JOURNALED_MAX	    100 /* blob ids in one blobs_journaled */

struct bv_prekey {
	uint32_t id;
	uint8_t key[BV_KEY_LEN];
};

struct bv_envelope_in {
	char account[37];
	uint32_t device;
	uint32_t registration_id;
	uint8_t type;
	uint8_t *body; /* decoded; owned by the request */
	size_t body_len;
};

struct bv_request {
	enum bv_op op;
	int64_t id; /* 1 … BV_ID_MAX */
	union {
		struct {
			int is_error; /* response carried "error", not "ok" */
		} response;
		struct {
			char account[37];
			uint32_t device;
			uint8_t signature[BV_SIG_LEN];
		} auth;
		struct {
			char *token; /* owned by the request */
			uint32_t registration_id;
			uint8_t identity_key[BV_KEY_LEN];
			uint8_t auth_key[BV_AUTH_KEY_LEN];
			uint8_t signature[BV_SIG_LEN];
			uint32_t replaces; /* 0 = add a device */
		} enroll;
		struct {
			int has_signed_prekey;
			struct bv_prekey signed_prekey;
			uint8_t signed_prekey_signature[BV_SIG_LEN];
			size_t n_one_time;
			struct bv_prekey *one_time; /* owned by the request */
		} keys_put;
		struct {
			char account[37];
			uint32_t device; /* 0 = every device */
		} keys_get;
		struct {
			char conversation[37];
			int partial; /* some members only (receipts, resends) */
			char message_id[BV_MESSAGE_ID_MAX + 1];
			size_t n_envelopes;
			struct bv_envelope_in *envelopes; /* owned */
		} send;
		struct {
			char case_id[37]; /* "" = every case */
			char after[37];	  /* "" = from the first */
		} cases;
		struct {
			char case_id[37];
			char kind[9]; /* "team" or "citizens" */
			size_t n_members;
			char members[BV_CONVERSATION_MEMBERS_MAX][37];
		} conversation_create;
		struct {
			char channel[8];     /* "" = unchanged */
			char language[3];    /* "" = unchanged */
			int mention_service; /* -1 = unchanged, 0, 1 */
			int webpush;	     /* 0 unchanged, 1 set, -1 remove */
			char endpoint[BV_WEBPUSH_ENDPOINT_MAX + 1];
			uint8_t p256dh[BV_WEBPUSH_P256DH_LEN];
			uint8_t auth[BV_WEBPUSH_AUTH_LEN];
		} notify_set;
		struct {
			char conversation[37];
			int64_t size; /* as sent; the relay checks the range */
			uint8_t sha256[32];
		} blob_create;
		struct {
			size_t n;
			char (*blobs)[37]; /* owned by the request */
		} blobs_journaled;
	} u;
};

/* Why a frame was refused: the code, the request id if one could be read
 * (else -1), and the offending field's name ("" if none). */
struct bv_parse_error {
	int code;
	int64_t id;
	char field[48];
};

/*
 * Parses one text frame of len bytes. Returns 0 and sets *out (free with
 * bv_request_free) on success. Otherwise returns a negative BV_E* code
 * (BV_EJSON, BV_EFIELD, BV_EOP, BV_EFRAME, BV_EBASE64, BV_EENVELOPE,
 * BV_ETOOMANY, BV_ENOMEM), fills *err, and *out is untouched.
 */
int bv_request_parse(const char *buf, size_t len, const struct bv_limits *lim,
		     struct bv_request **out, struct bv_parse_error *err);
/* Frees a request and wipes its token; NULL is fine. */
void bv_request_free(struct bv_request *r);

/*
 * The bytes a device signs with its Ed25519 auth key (docs/protocol.md,
 * "auth" and "enroll"). Both return a new NUL-terminated string or NULL.
 */
char *bv_auth_message(const char *nonce_b64, const char *account,
		      uint32_t device);
char *bv_enroll_message(const char *nonce_b64, const char *token);

/* Returns 1 when s is a valid message_id (1..64 of [A-Za-z0-9_-]). */
int bv_message_id_valid(const char *s);

/*
 * Builds {"id":id,"error":{"code","errno","retryable","message"}} and, when
 * details is not NULL, merges its members into "error" (details is a
 * json_t *, borrowed). id < 0 writes "id": null. Returns a new string or
 * NULL.
 */
char *bv_error_frame(int64_t id, int code, void *details);

#endif
