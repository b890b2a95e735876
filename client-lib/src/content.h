/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * content.h: bvchat's end-to-end content message, the plaintext inside a
 * Signal ciphertext (docs/protocol.md, "End-to-end content"): chat text,
 * e-post (subject, thread, expected answer time), the attachments' keys,
 * delivery/read receipts and resend requests, JSON, padded to 160 bytes.
 *
 * Internal to libbvchat. No I/O and no crypto:
 * the session layer encrypts what bv_content_encode() returns and decodes
 * what it decrypted with bv_content_decode().
 */
#ifndef BV_CONTENT_H
#define BV_CONTENT_H

#include <stddef.h>
#include <stdint.h>

#include "bv_proto.h"
#include "bv_util.h"

#define BV_CONTENT_VERSION 1
/* Padding bucket: padded plaintexts are a multiple of this (as Signal). */
#define BV_CONTENT_PAD_BLOCK 160
/*
 * Largest padded content either side accepts; leaves room under the relay's
 * max_envelope_bytes (65536) for the Signal PreKey/whisper overhead.
 */
#define BV_CONTENT_MAX_BYTES 61440
/* Text bytes (UTF-8, no NUL); even fully \u-escaped it fits the above. */
#define BV_CONTENT_TEXT_MAX 8192
/* Message ids in one receipt or resend request. */
#define BV_CONTENT_IDS_MAX 100
/* Bytes of a journaled receipt's journal reference ("2026/000123"). */
#define BV_CONTENT_JOURNAL_MAX 64
/* Longest kind name kept for an unknown kind ("[a-z0-9_]", 1 … 32). */
#define BV_CONTENT_KIND_NAME_MAX 32
/* Latest sent timestamp accepted: 9999-12-31T23:59:59.999Z in ms. */
#define BV_CONTENT_SENT_MAX 253402300799999LL
/* An e-post's subject: UTF-8 without control characters, 1 … this. */
#define BV_CONTENT_SUBJECT_MAX 200
/* Attachments on one text or e-post. */
#define BV_CONTENT_ATTACHMENTS_MAX 10
/* An attachment's file name: UTF-8, no '/', '\\' or controls, 1 … this. */
#define BV_CONTENT_NAME_MAX 255
/* Longest MIME type of the allow list (bv_content_type_allowed()). */
#define BV_CONTENT_TYPE_MAX 32
/* A capability: 32 bytes in base64url without padding. */
#define BV_CONTENT_CAP_LEN 43
/* An attachment's key (crypto_secretstream_xchacha20poly1305). */
#define BV_CONTENT_BLOB_KEY_LEN 32
/* Largest plaintext size an attachment may claim (2^31 - 1 bytes). */
#define BV_CONTENT_BLOB_SIZE_MAX 2147483647LL

/*
 * UNKNOWN is what the decoder yields for a kind or a version this build does
 * not know (including the reserved ones): the app shows "update the app"
 * instead of dropping the message. Numbers are local, not on the wire.
 */
enum bv_content_kind {
	BV_CONTENT_UNKNOWN = 0,
	BV_CONTENT_TEXT = 1,
	BV_CONTENT_RECEIPT = 2,
	BV_CONTENT_RESEND_REQUEST = 3,
	BV_CONTENT_EMAIL = 4,	   /* "email": subject, thread, answer_by */
	BV_CONTENT_ATTACHMENT = 5, /* reserved: "attachment", as UNKNOWN */
};

enum bv_receipt_type {
	BV_RECEIPT_DELIVERED = 1, /* "delivered" */
	BV_RECEIPT_READ = 2,	  /* "read" */
	/* "journaled": the case file has the messages (sent by the
	 * municipality's archive device only; carries `journal`). */
	BV_RECEIPT_JOURNALED = 3,
};

/* Why a resend is asked for; unknown reasons decode as OTHER. */
enum bv_resend_reason {
	BV_RESEND_OTHER = 0,	      /* "other" */
	BV_RESEND_NO_SESSION = 1,     /* "no_session" */
	BV_RESEND_DECRYPT_FAILED = 2, /* "decrypt_failed" */
	BV_RESEND_UNKNOWN_TYPE = 3,   /* "unknown_type" */
};

/* One attachment: where the ciphertext is and how to open it. */
struct bv_content_attachment {
	char blob[BV_UUID_LEN + 1];	       /* the relay's id */
	char download[BV_CONTENT_CAP_LEN + 1]; /* download capability */
	uint8_t key[BV_CONTENT_BLOB_KEY_LEN];  /* secretstream key */
	char sha256[64 + 1];		       /* of the ciphertext, hex */
	int64_t size;			       /* plaintext bytes */
	char type[BV_CONTENT_TYPE_MAX + 1];    /* from the allow list */
	char name[BV_CONTENT_NAME_MAX + 1];    /* the file's name */
};

struct bv_content {
	enum bv_content_kind kind;
	int version; /* as received; BV_CONTENT_VERSION when built here */
	/* The wire name of the kind, also for UNKNOWN ("email", "poll"). */
	char kind_name[BV_CONTENT_KIND_NAME_MAX + 1];
	/* "" only in a resend request, which may not know the conversation. */
	char conversation[BV_UUID_LEN + 1];
	char message_id[BV_MESSAGE_ID_MAX + 1];
	int64_t sent_ms; /* sender's clock, ms since the epoch, 1 … SENT_MAX */

	/* TEXT and EMAIL: valid UTF-8 without NUL, 1 … TEXT_MAX bytes,
	 * NUL-terminated; "" (0) on a TEXT with attachments. */
	char *text;
	size_t text_len;

	/* EMAIL: subject (1 … SUBJECT_MAX, no control characters); thread:
	 * the message id of the thread's first e-post, or "" when this one
	 * starts it; answer_by: ms since the epoch, 0 when not given. */
	char subject[BV_CONTENT_SUBJECT_MAX + 1];
	char thread[BV_MESSAGE_ID_MAX + 1];
	int64_t answer_by_ms;

	/* TEXT and EMAIL: 0 … ATTACHMENTS_MAX attachments. */
	struct bv_content_attachment *att;
	size_t n_att;

	/* RECEIPT and RESEND_REQUEST: 1 … IDS_MAX distinct message ids. */
	char (*ids)[BV_MESSAGE_ID_MAX + 1];
	size_t n_ids;
	enum bv_receipt_type receipt; /* RECEIPT only */
	enum bv_resend_reason reason; /* RESEND_REQUEST only */
	/* RECEIPT JOURNALED only: the archive's reference to the
	 * journalpost, 1 … JOURNAL_MAX bytes of printable UTF-8; else "". */
	char journal[BV_CONTENT_JOURNAL_MAX + 1];
};

/*
 * Constructors. Each checks its arguments by the rules above and copies them.
 * conversation may be NULL only for bv_content_resend_new().
 * Returns 0 and sets *out; BV_EINVAL for a NULL out/required pointer or an
 * unknown enum value; BV_EFIELD for an invalid uuid, message id, timestamp,
 * text (empty, invalid UTF-8, NUL, over TEXT_MAX) or a duplicate or invalid
 * id; BV_ETOOMANY for more than IDS_MAX ids (none is BV_EFIELD); BV_ENOMEM.
 */
int bv_content_text_new(const char *conversation, const char *message_id,
			int64_t sent_ms, const char *text, size_t text_len,
			struct bv_content **out);
int bv_content_receipt_new(const char *conversation, const char *message_id,
			   int64_t sent_ms, enum bv_receipt_type type,
			   const char *const *ids, size_t n_ids,
			   struct bv_content **out);
/*
 * A text (subject NULL) or an e-post (subject given) with n_att (0 …
 * ATTACHMENTS_MAX) attachments, all copied. thread (NULL or "": none) and
 * answer_by_ms (0: none) only on an e-post. text may be empty (len 0) on a
 * text with attachments. Returns as the others; BV_ETOOMANY for more than
 * ATTACHMENTS_MAX attachments; BV_EFIELD for a subject, thread, answer_by or
 * attachment that breaks its rule (docs/protocol.md) or thread/answer_by on a
 * text.
 */
struct bv_content_msg {
	const char *text;
	size_t text_len;
	const char *subject; /* NULL: a text */
	size_t subject_len;
	const char *thread;
	int64_t answer_by_ms;
	const struct bv_content_attachment *att;
	size_t n_att;
};
int bv_content_message_new(const char *conversation, const char *message_id,
			   int64_t sent_ms, const struct bv_content_msg *m,
			   struct bv_content **out);

/* 1 when type is on the attachment allow list, else 0. */
int bv_content_type_allowed(const char *type);

/* 1 when name is a valid attachment file name (rule above), else 0. */
int bv_content_name_valid(const char *name, size_t len);

/* A JOURNALED receipt: as bv_content_receipt_new() plus its journal. */
int bv_content_journaled_new(const char *conversation, const char *message_id,
			     int64_t sent_ms, const char *journal,
			     const char *const *ids, size_t n_ids,
			     struct bv_content **out);
int bv_content_resend_new(const char *conversation, const char *message_id,
			  int64_t sent_ms, enum bv_resend_reason reason,
			  const char *const *ids, size_t n_ids,
			  struct bv_content **out);

/* Frees c (NULL is fine), wiping the text, ids and keys first. */
void bv_content_free(struct bv_content *c);

/*
 * Encodes c as compact JSON and pads it (bv_content_pad) into a new buffer,
 * *out (free with bv_free after bv_wipe), *out_len a multiple of PAD_BLOCK.
 * Returns 0; BV_EINVAL for NULL arguments or a kind this build cannot send
 * (UNKNOWN and the reserved "attachment") or a result over MAX_BYTES; BV_EFIELD,
 * BV_ETOOMANY as the constructors when c breaks a rule; BV_ENOMEM.
 */
int bv_content_encode(const struct bv_content *c, uint8_t **out,
		      size_t *out_len);

/*
 * Strips the padding of buf and decodes the content in it into a new
 * *out. Returns 0; BV_EINVAL for NULL arguments, len over MAX_BYTES, or
 * padding that is not 0x80 followed by zeros; BV_EJSON when the rest is not
 * one JSON object (invalid UTF-8 and duplicate members included); BV_EFIELD
 * when a member is missing, of the wrong type or out of range; BV_ETOOMANY
 * for more than IDS_MAX ids or ATTACHMENTS_MAX attachments; BV_ENOMEM. A kind or version this build does
 * not know is not an error: it is returned as BV_CONTENT_UNKNOWN, with
 * the common members (kind, message_id, sent, conversation) checked.
 */
int bv_content_decode(const uint8_t *buf, size_t len, struct bv_content **out);

/*
 * Padding: buf, then 0x80, then zeros up to the next multiple of PAD_BLOCK
 * (always at least one byte added). bv_content_pad() returns a new buffer
 * in *out; bv_content_unpad() sets *unpadded_len to where the 0x80 is.
 * Return 0, BV_EINVAL for NULL arguments or (unpad) no 0x80 before the
 * trailing zeros, BV_ENOMEM.
 */
int bv_content_pad(const uint8_t *buf, size_t len, uint8_t **out,
		   size_t *out_len);
int bv_content_unpad(const uint8_t *buf, size_t len, size_t *unpadded_len);

#endif
