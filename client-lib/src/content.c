/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * content.c: encodes and decodes bvchat's end-to-end content message (the
 * plaintext of a Signal ciphertext) and its 160-byte padding.
 *
 * Every member a peer sends is checked here: types, lengths, UTF-8, caps.
 * It does no I/O and no crypto, and knows nothing of sessions or stores.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bv_error.h"
#include "bv_proto.h"
#include "bv_util.h"
#include "content.h"

/*
 * Design (docs/protocol.md, "End-to-end content (inside the envelope body)"):
 *
 * JSON (jansson), not TLV: the wire protocol is already JSON, jansson
 * already rejects invalid UTF-8, NUL escapes and duplicate members, and
 * named members let a later version add fields that older clients ignore.
 * The size cost is hidden by the padding anyway.
 *
 * No plaintext resend request. A device that cannot decrypt asks for a
 * resend by first building a fresh session from the sender device's prekey
 * bundle (keys_get; the signed prekey is always there) and sending the
 * resend_request as a Signal PreKey message (type 3). So the relay never
 * learns which messages failed, and the request is authenticated: nobody
 * but the peer device can make a sender re-send or reset a session. That is
 * why no envelope type carries plaintext.
 *
 * A kind or a version this build does not know decodes as UNKNOWN, never
 * as an error, so the app can show "update the app" instead of losing it.
 * Every version keeps v, kind, message_id, sent and conversation as here.
 */

static const char *const kind_names[] = {
	[BV_CONTENT_TEXT] = "text",
	[BV_CONTENT_RECEIPT] = "receipt",
	[BV_CONTENT_RESEND_REQUEST] = "resend_request",
	[BV_CONTENT_EMAIL] = "email",
	[BV_CONTENT_ATTACHMENT] = "attachment",
};

static const char *const receipt_names[] = {
	[BV_RECEIPT_DELIVERED] = "delivered",
	[BV_RECEIPT_READ] = "read",
	[BV_RECEIPT_JOURNALED] = "journaled",
};

/* The attachment types a client sends and accepts (docs/protocol.md). */
static const char *const allowed_types[] = {
	"image/jpeg",	   "image/png",	 "image/heic", "image/webp",
	"application/pdf", "audio/mpeg", "audio/mp4",  "audio/ogg",
	"audio/webm",	   "text/plain",
};

static const char *const reason_names[] = {
	[BV_RESEND_OTHER] = "other",
	[BV_RESEND_NO_SESSION] = "no_session",
	[BV_RESEND_DECRYPT_FAILED] = "decrypt_failed",
	[BV_RESEND_UNKNOWN_TYPE] = "unknown_type",
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Returns 1 if s[0 … len) is well-formed UTF-8 (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF) without NUL, else 0.
 */
static int
utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n, k;
		uint32_t cp;

		if (c == 0)
			return 0;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (len - i - 1 < n)
			return 0;
		for (k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return 0;
		i += n + 1;
	}
	return 1;
}

/* Returns 1 for a kind name of 1 … KIND_NAME_MAX of [a-z0-9_]. */
static int
kind_name_valid(const char *s, size_t len)
{
	size_t i;

	if (len < 1 || len > BV_CONTENT_KIND_NAME_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_'))
			return 0;
	}
	return 1;
}

static int
sent_valid(int64_t ms)
{
	return ms >= 1 && ms <= BV_CONTENT_SENT_MAX;
}

/* A journal reference: UTF-8 without control characters ("" passes: the
 * callers check presence and length). */
static int
journal_valid(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return utf8_valid(s, len);
}

static int
mid_valid(const char *s)
{
	return s && strlen(s) <= BV_MESSAGE_ID_MAX && bv_message_id_valid(s);
}

/* A subject: 1 … SUBJECT_MAX bytes of UTF-8 without control characters. */
static int
subject_valid(const char *s, size_t len)
{
	return len >= 1 && len <= BV_CONTENT_SUBJECT_MAX &&
	       journal_valid(s, len);
}

int
bv_content_type_allowed(const char *type)
{
	size_t i;

	if (!type)
		return 0;
	for (i = 0; i < N_OF(allowed_types); i++)
		if (!strcmp(type, allowed_types[i]))
			return 1;
	return 0;
}

int
bv_content_name_valid(const char *name, size_t len)
{
	size_t i;

	if (!name || len < 1 || len > BV_CONTENT_NAME_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if (name[i] == '/' || name[i] == '\\')
			return 0;
	/* Not "." or "..": a name that a careless saver would walk with. */
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return 0;
	return journal_valid(name, len);
}

/* 64 lower-case hex digits. */
static int
sha_hex_valid(const char *s)
{
	size_t i;

	for (i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return s[64] == '\0';
}

/* A capability: BV_CONTENT_CAP_LEN characters of base64url. */
static int
cap_valid(const char *s)
{
	size_t i;

	for (i = 0; i < BV_CONTENT_CAP_LEN; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
		      s[i] == '_'))
			return 0;
	return s[BV_CONTENT_CAP_LEN] == '\0';
}

static int
attachment_valid(const struct bv_content_attachment *a)
{
	const char *end = memchr(a->name, '\0', sizeof(a->name));

	if (!end || !memchr(a->blob, '\0', sizeof(a->blob)) ||
	    !memchr(a->download, '\0', sizeof(a->download)) ||
	    !memchr(a->sha256, '\0', sizeof(a->sha256)) ||
	    !memchr(a->type, '\0', sizeof(a->type)))
		return 0;
	return bv_uuid_valid(a->blob) && strlen(a->blob) == BV_UUID_LEN &&
	       cap_valid(a->download) && sha_hex_valid(a->sha256) &&
	       a->size >= 0 && a->size <= BV_CONTENT_BLOB_SIZE_MAX &&
	       bv_content_type_allowed(a->type) &&
	       bv_content_name_valid(a->name, (size_t)(end - a->name));
}

/* The text, e-post and attachment rules of content_check(). */
static int
message_check(const struct bv_content *c)
{
	size_t i;

	if (c->conversation[0] == '\0' || !c->text ||
	    c->text_len > BV_CONTENT_TEXT_MAX ||
	    !utf8_valid(c->text, c->text_len))
		return BV_EFIELD;
	if (c->n_att > BV_CONTENT_ATTACHMENTS_MAX)
		return BV_ETOOMANY;
	if (c->n_att && !c->att)
		return BV_EFIELD;
	for (i = 0; i < c->n_att; i++)
		if (!attachment_valid(&c->att[i]))
			return BV_EFIELD;
	if (c->kind == BV_CONTENT_TEXT) {
		/* A text says something, or carries something. */
		if ((c->text_len < 1 && c->n_att == 0) ||
		    c->subject[0] != '\0' || c->thread[0] != '\0' ||
		    c->answer_by_ms != 0)
			return BV_EFIELD;
		return 0;
	}
	if (c->text_len < 1 || !subject_valid(c->subject, strlen(c->subject)) ||
	    (c->thread[0] != '\0' && !mid_valid(c->thread)) ||
	    (c->answer_by_ms != 0 && !sent_valid(c->answer_by_ms)))
		return BV_EFIELD;
	return 0;
}

/*
 * Checks the rules of content.h that the constructors, the encoder and the
 * decoder share, for a content of a kind this build knows.
 */
static int
content_check(const struct bv_content *c)
{
	size_t i, j;

	if (!mid_valid(c->message_id) || !sent_valid(c->sent_ms))
		return BV_EFIELD;
	if (c->conversation[0] != '\0' && !bv_uuid_valid(c->conversation))
		return BV_EFIELD;
	switch (c->kind) {
	case BV_CONTENT_TEXT:
	case BV_CONTENT_EMAIL:
		return message_check(c);
	case BV_CONTENT_RECEIPT:
		if (c->conversation[0] == '\0')
			return BV_EFIELD;
		if (c->receipt != BV_RECEIPT_DELIVERED &&
		    c->receipt != BV_RECEIPT_READ &&
		    c->receipt != BV_RECEIPT_JOURNALED)
			return BV_EFIELD;
		/* A journal reference on journaled receipts, and only there. */
		if ((c->receipt == BV_RECEIPT_JOURNALED) !=
			    (c->journal[0] != '\0') ||
		    !journal_valid(c->journal, strlen(c->journal)))
			return BV_EFIELD;
		break;
	case BV_CONTENT_RESEND_REQUEST:
		if ((unsigned int)c->reason >= N_OF(reason_names))
			return BV_EFIELD;
		break;
	default:
		return BV_EINVAL;
	}
	if (c->n_ids > BV_CONTENT_IDS_MAX)
		return BV_ETOOMANY;
	if (c->n_ids < 1 || !c->ids)
		return BV_EFIELD;
	for (i = 0; i < c->n_ids; i++) {
		if (!mid_valid(c->ids[i]))
			return BV_EFIELD;
		for (j = 0; j < i; j++)
			if (strcmp(c->ids[i], c->ids[j]) == 0)
				return BV_EFIELD;
	}
	return 0;
}

void
bv_content_free(struct bv_content *c)
{
	if (!c)
		return;
	if (c->text) {
		bv_wipe(c->text, c->text_len);
		bv_free(c->text);
	}
	if (c->ids) {
		bv_wipe(c->ids, c->n_ids * sizeof(*c->ids));
		bv_free(c->ids);
	}
	if (c->att) {
		bv_wipe(c->att, c->n_att * sizeof(*c->att));
		bv_free(c->att);
	}
	bv_wipe(c, sizeof(*c));
	bv_free(c);
}

/* A new content with the common members copied (unchecked) in. */
static int
content_new(enum bv_content_kind kind, const char *conversation,
	    const char *message_id, int64_t sent_ms, struct bv_content **out)
{
	struct bv_content *c;

	if (!message_id)
		return BV_EINVAL;
	if ((conversation && strlen(conversation) > BV_UUID_LEN) ||
	    strlen(message_id) > BV_MESSAGE_ID_MAX)
		return BV_EFIELD;
	c = bv_calloc(1, sizeof(*c));
	if (!c)
		return BV_ENOMEM;
	c->kind = kind;
	c->version = BV_CONTENT_VERSION;
	strcpy(c->kind_name, kind_names[kind]);
	if (conversation)
		strcpy(c->conversation, conversation);
	strcpy(c->message_id, message_id);
	c->sent_ms = sent_ms;
	*out = c;
	return 0;
}

/* Copies ids[0 … n) into c; lengths are checked, the rest by the caller. */
static int
copy_ids(struct bv_content *c, const char *const *ids, size_t n)
{
	size_t i;

	if (n > BV_CONTENT_IDS_MAX)
		return BV_ETOOMANY;
	if (n < 1)
		return BV_EFIELD;
	if (!ids)
		return BV_EINVAL;
	for (i = 0; i < n; i++) {
		if (!ids[i])
			return BV_EINVAL;
		if (strlen(ids[i]) > BV_MESSAGE_ID_MAX)
			return BV_EFIELD;
	}
	c->ids = bv_calloc(n, sizeof(*c->ids));
	if (!c->ids)
		return BV_ENOMEM;
	for (i = 0; i < n; i++)
		strcpy(c->ids[i], ids[i]);
	c->n_ids = n;
	return 0;
}

int
bv_content_message_new(const char *conversation, const char *message_id,
		       int64_t sent_ms, const struct bv_content_msg *m,
		       struct bv_content **out)
{
	struct bv_content *c = NULL;
	int rc;

	if (!conversation || !m || !m->text || (m->n_att && !m->att) ||
	    (m->subject == NULL && m->subject_len) || !out) {
		rc = BV_EINVAL;
		goto out;
	}
	if (m->n_att > BV_CONTENT_ATTACHMENTS_MAX) {
		rc = BV_ETOOMANY;
		goto out;
	}
	if (m->text_len > BV_CONTENT_TEXT_MAX ||
	    m->subject_len > BV_CONTENT_SUBJECT_MAX ||
	    (m->thread && strlen(m->thread) > BV_MESSAGE_ID_MAX) ||
	    (!m->subject && ((m->thread && m->thread[0]) || m->answer_by_ms))) {
		rc = BV_EFIELD;
		goto out;
	}
	rc = content_new(m->subject ? BV_CONTENT_EMAIL : BV_CONTENT_TEXT,
			 conversation, message_id, sent_ms, &c);
	if (rc < 0)
		goto out;
	c->text = bv_malloc(m->text_len + 1);
	if (!c->text) {
		rc = BV_ENOMEM;
		goto out;
	}
	if (m->text_len)
		memcpy(c->text, m->text, m->text_len);
	c->text[m->text_len] = '\0';
	c->text_len = m->text_len;
	if (m->subject) {
		if (memchr(m->subject, '\0', m->subject_len)) {
			rc = BV_EFIELD;
			goto out;
		}
		memcpy(c->subject, m->subject, m->subject_len);
		c->subject[m->subject_len] = '\0';
	}
	if (m->thread)
		strcpy(c->thread, m->thread);
	c->answer_by_ms = m->answer_by_ms;
	if (m->n_att) {
		c->att = bv_calloc(m->n_att, sizeof(*c->att));
		if (!c->att) {
			rc = BV_ENOMEM;
			goto out;
		}
		memcpy(c->att, m->att, m->n_att * sizeof(*c->att));
		c->n_att = m->n_att;
	}
	rc = content_check(c);
	if (rc < 0)
		goto out;
	*out = c;
	c = NULL;
out:
	bv_content_free(c);
	return rc;
}

int
bv_content_text_new(const char *conversation, const char *message_id,
		    int64_t sent_ms, const char *text, size_t text_len,
		    struct bv_content **out)
{
	struct bv_content_msg m;

	memset(&m, 0, sizeof(m));
	m.text = text;
	m.text_len = text_len;
	if (!text)
		return BV_EINVAL;
	if (text_len < 1)
		return BV_EFIELD;
	return bv_content_message_new(conversation, message_id, sent_ms, &m,
				      out);
}

static int
receipt_new(const char *conversation, const char *message_id, int64_t sent_ms,
	    enum bv_receipt_type type, const char *journal,
	    const char *const *ids, size_t n_ids, struct bv_content **out)
{
	struct bv_content *c = NULL;
	int rc;

	if (!conversation || !out ||
	    (type != BV_RECEIPT_DELIVERED && type != BV_RECEIPT_READ &&
	     type != BV_RECEIPT_JOURNALED) ||
	    (type == BV_RECEIPT_JOURNALED) != (journal != NULL)) {
		rc = BV_EINVAL;
		goto out;
	}
	if (journal && strlen(journal) > BV_CONTENT_JOURNAL_MAX) {
		rc = BV_EFIELD;
		goto out;
	}
	rc = content_new(BV_CONTENT_RECEIPT, conversation, message_id, sent_ms,
			 &c);
	if (rc < 0)
		goto out;
	c->receipt = type;
	if (journal)
		snprintf(c->journal, sizeof(c->journal), "%s", journal);
	rc = copy_ids(c, ids, n_ids);
	if (rc < 0)
		goto out;
	rc = content_check(c);
	if (rc < 0)
		goto out;
	*out = c;
	c = NULL;
out:
	bv_content_free(c);
	return rc;
}

int
bv_content_receipt_new(const char *conversation, const char *message_id,
		       int64_t sent_ms, enum bv_receipt_type type,
		       const char *const *ids, size_t n_ids,
		       struct bv_content **out)
{
	if (type == BV_RECEIPT_JOURNALED)
		return BV_EINVAL; /* needs its journal */
	return receipt_new(conversation, message_id, sent_ms, type, NULL, ids,
			   n_ids, out);
}

int
bv_content_journaled_new(const char *conversation, const char *message_id,
			 int64_t sent_ms, const char *journal,
			 const char *const *ids, size_t n_ids,
			 struct bv_content **out)
{
	if (!journal)
		return BV_EINVAL;
	return receipt_new(conversation, message_id, sent_ms,
			   BV_RECEIPT_JOURNALED, journal, ids, n_ids, out);
}

int
bv_content_resend_new(const char *conversation, const char *message_id,
		      int64_t sent_ms, enum bv_resend_reason reason,
		      const char *const *ids, size_t n_ids,
		      struct bv_content **out)
{
	struct bv_content *c = NULL;
	int rc;

	if (!out || (unsigned int)reason >= N_OF(reason_names)) {
		rc = BV_EINVAL;
		goto out;
	}
	rc = content_new(BV_CONTENT_RESEND_REQUEST, conversation, message_id,
			 sent_ms, &c);
	if (rc < 0)
		goto out;
	c->reason = reason;
	rc = copy_ids(c, ids, n_ids);
	if (rc < 0)
		goto out;
	rc = content_check(c);
	if (rc < 0)
		goto out;
	*out = c;
	c = NULL;
out:
	bv_content_free(c);
	return rc;
}

int
bv_content_pad(const uint8_t *buf, size_t len, uint8_t **out, size_t *out_len)
{
	size_t padded;
	uint8_t *p;

	if ((!buf && len) || !out || !out_len ||
	    len > SIZE_MAX - BV_CONTENT_PAD_BLOCK)
		return BV_EINVAL;
	padded = (len / BV_CONTENT_PAD_BLOCK + 1) * BV_CONTENT_PAD_BLOCK;
	p = bv_calloc(1, padded);
	if (!p)
		return BV_ENOMEM;
	if (len)
		memcpy(p, buf, len);
	p[len] = 0x80;
	*out = p;
	*out_len = padded;
	return 0;
}

int
bv_content_unpad(const uint8_t *buf, size_t len, size_t *unpadded_len)
{
	size_t i = len;

	if (!buf || !unpadded_len)
		return BV_EINVAL;
	/*
	 * Lenient about the bucket size, so a later version may change it;
	 * strict about the terminator, so truncation is noticed.
	 */
	while (i > 0 && buf[i - 1] == 0)
		i--;
	if (i == 0 || buf[i - 1] != 0x80)
		return BV_EINVAL;
	*unpadded_len = i - 1;
	return 0;
}

/* One attachment as its JSON object, or NULL (ENOMEM). */
static json_t *
attachment_json(const struct bv_content_attachment *a)
{
	json_t *o = NULL;
	char *key;

	key = bv_b64_encode(a->key, sizeof(a->key));
	if (key)
		o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:s}", "blob",
			      a->blob, "download", a->download, "key", key,
			      "sha256", a->sha256, "size", (json_int_t)a->size,
			      "type", a->type, "name", a->name);
	if (key) {
		bv_wipe(key, strlen(key));
		bv_free(key);
	}
	return o;
}

/* The members of a text or an e-post. */
static int
build_message(const struct bv_content *c, json_t *obj)
{
	json_t *arr;
	size_t i;

	/* Checked UTF-8 above, so NULL here can only be ENOMEM. */
	if (json_object_set_new(obj, "text",
				json_stringn(c->text, c->text_len)))
		return BV_ENOMEM;
	if (c->kind == BV_CONTENT_EMAIL &&
	    (json_object_set_new(obj, "subject", json_string(c->subject)) ||
	     (c->thread[0] &&
	      json_object_set_new(obj, "thread", json_string(c->thread))) ||
	     (c->answer_by_ms &&
	      json_object_set_new(obj, "answer_by",
				  json_integer(c->answer_by_ms)))))
		return BV_ENOMEM;
	if (!c->n_att)
		return 0;
	arr = json_array();
	if (!arr || json_object_set_new(obj, "attachments", arr))
		return BV_ENOMEM;
	for (i = 0; i < c->n_att; i++)
		if (json_array_append_new(arr, attachment_json(&c->att[i])))
			return BV_ENOMEM;
	return 0;
}

/* Adds the members of c to obj. */
static int
build_json(const struct bv_content *c, json_t *obj)
{
	json_t *ids = NULL;
	size_t i;
	int rc = BV_ENOMEM;

	if (json_object_set_new(obj, "v", json_integer(BV_CONTENT_VERSION)) ||
	    json_object_set_new(obj, "kind",
				json_string(kind_names[c->kind])) ||
	    json_object_set_new(obj, "message_id",
				json_string(c->message_id)) ||
	    json_object_set_new(obj, "sent", json_integer(c->sent_ms)))
		goto out;
	if (c->conversation[0] != '\0' &&
	    json_object_set_new(obj, "conversation",
				json_string(c->conversation)))
		goto out;
	if (c->kind == BV_CONTENT_TEXT || c->kind == BV_CONTENT_EMAIL) {
		rc = build_message(c, obj);
		goto out;
	}
	if (c->kind == BV_CONTENT_RECEIPT &&
	    json_object_set_new(obj, "receipt",
				json_string(receipt_names[c->receipt])))
		goto out;
	if (c->kind == BV_CONTENT_RECEIPT && c->journal[0] != '\0' &&
	    json_object_set_new(obj, "journal", json_string(c->journal)))
		goto out;
	if (c->kind == BV_CONTENT_RESEND_REQUEST &&
	    json_object_set_new(obj, "reason",
				json_string(reason_names[c->reason])))
		goto out;
	ids = json_array();
	if (!ids)
		goto out;
	for (i = 0; i < c->n_ids; i++)
		if (json_array_append_new(ids, json_string(c->ids[i])))
			goto out;
	rc = json_object_set(obj, "ids", ids) ? BV_ENOMEM : 0;
out:
	json_decref(ids);
	return rc;
}

int
bv_content_encode(const struct bv_content *c, uint8_t **out, size_t *out_len)
{
	json_t *obj = NULL;
	char *txt = NULL;
	size_t txt_len = 0;
	int rc;

	if (!c || !out || !out_len) {
		rc = BV_EINVAL;
		goto out;
	}
	rc = content_check(c);
	if (rc < 0)
		goto out;
	obj = json_object();
	if (!obj) {
		rc = BV_ENOMEM;
		goto out;
	}
	rc = build_json(c, obj);
	if (rc < 0)
		goto out;
	txt = json_dumps(obj, JSON_COMPACT);
	if (!txt) {
		rc = BV_ENOMEM;
		goto out;
	}
	txt_len = strlen(txt);
	/* The limits make this unreachable; it guards later changes. */
	if (txt_len >= BV_CONTENT_MAX_BYTES) {
		rc = BV_EINVAL;
		goto out;
	}
	rc = bv_content_pad((const uint8_t *)txt, txt_len, out, out_len);
out:
	if (txt) {
		bv_wipe(txt, txt_len);
		free(txt); /* jansson's allocator */
	}
	json_decref(obj);
	return rc;
}

/* A string member: sets *s and *len, or returns BV_EFIELD. */
static int
get_str(json_t *obj, const char *key, const char **s, size_t *len)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_string(v))
		return BV_EFIELD;
	*s = json_string_value(v);
	*len = json_string_length(v);
	return 0;
}

/* Looks s up in names[0 … n); returns its index or -1. */
static int
name_index(const char *const *names, size_t n, const char *s)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (names[i] && strcmp(names[i], s) == 0)
			return (int)i;
	return -1;
}

/* The members every version has: v, kind, message_id, sent, conversation. */
static int
decode_common(json_t *root, struct bv_content *c)
{
	json_t *v;
	const char *s;
	size_t len;
	json_int_t n;

	v = json_object_get(root, "v");
	if (!json_is_integer(v))
		return BV_EFIELD;
	n = json_integer_value(v);
	if (n < 1 || n > 255)
		return BV_EFIELD;
	c->version = (int)n;

	if (get_str(root, "kind", &s, &len) < 0 || !kind_name_valid(s, len))
		return BV_EFIELD;
	memcpy(c->kind_name, s, len + 1);

	if (get_str(root, "message_id", &s, &len) < 0 ||
	    len > BV_MESSAGE_ID_MAX || !bv_message_id_valid(s))
		return BV_EFIELD;
	memcpy(c->message_id, s, len + 1);

	v = json_object_get(root, "sent");
	if (!json_is_integer(v) || !sent_valid(json_integer_value(v)))
		return BV_EFIELD;
	c->sent_ms = json_integer_value(v);

	v = json_object_get(root, "conversation");
	if (v) {
		if (!json_is_string(v))
			return BV_EFIELD;
		s = json_string_value(v);
		if (json_string_length(v) != BV_UUID_LEN || !bv_uuid_valid(s))
			return BV_EFIELD;
		memcpy(c->conversation, s, BV_UUID_LEN + 1);
	}
	return 0;
}

static int
decode_ids(json_t *root, struct bv_content *c)
{
	json_t *arr = json_object_get(root, "ids"), *item;
	size_t i, n;

	if (!json_is_array(arr))
		return BV_EFIELD;
	n = json_array_size(arr);
	if (n > BV_CONTENT_IDS_MAX)
		return BV_ETOOMANY;
	if (n < 1)
		return BV_EFIELD;
	c->ids = bv_calloc(n, sizeof(*c->ids));
	if (!c->ids)
		return BV_ENOMEM;
	c->n_ids = n;
	json_array_foreach(arr, i, item)
	{
		if (!json_is_string(item) ||
		    json_string_length(item) > BV_MESSAGE_ID_MAX)
			return BV_EFIELD;
		/* Validity and duplicates: content_check(). */
		strcpy(c->ids[i], json_string_value(item));
	}
	return 0;
}

/* A fixed-size string member of 1 … max bytes into out[max + 1]. */
static int
get_fixed(json_t *obj, const char *key, size_t max, char *out)
{
	const char *s;
	size_t len;

	if (get_str(obj, key, &s, &len) < 0 || len < 1 || len > max)
		return BV_EFIELD;
	memcpy(out, s, len + 1);
	return 0;
}

static int
decode_attachment(json_t *o, struct bv_content_attachment *a)
{
	const char *s;
	size_t len, n = 0;
	json_t *v;

	if (!json_is_object(o) ||
	    get_fixed(o, "blob", BV_UUID_LEN, a->blob) < 0 ||
	    get_fixed(o, "download", BV_CONTENT_CAP_LEN, a->download) < 0 ||
	    get_fixed(o, "sha256", 64, a->sha256) < 0 ||
	    get_fixed(o, "type", BV_CONTENT_TYPE_MAX, a->type) < 0 ||
	    get_fixed(o, "name", BV_CONTENT_NAME_MAX, a->name) < 0 ||
	    get_str(o, "key", &s, &len) < 0)
		return BV_EFIELD;
	/* 44 characters: base64 of 32 bytes, padded. */
	if (len != 44 ||
	    bv_b64_decode(s, len, a->key, sizeof(a->key), &n) < 0 ||
	    n != sizeof(a->key))
		return BV_EFIELD;
	bv_wipe((void *)(uintptr_t)s, len);
	v = json_object_get(o, "size");
	if (!json_is_integer(v))
		return BV_EFIELD;
	a->size = json_integer_value(v);
	/* The rest (uuid, hex, caps, range, type list, name): check. */
	return 0;
}

/* text, and for an e-post subject, thread, answer_by; attachments. */
static int
decode_message(json_t *root, struct bv_content *c)
{
	json_t *arr, *item, *v;
	const char *s;
	size_t len, i;
	int rc;

	if (get_str(root, "text", &s, &len) < 0 || len > BV_CONTENT_TEXT_MAX ||
	    !utf8_valid(s, len))
		return BV_EFIELD;
	c->text = bv_malloc(len + 1);
	if (!c->text)
		return BV_ENOMEM;
	memcpy(c->text, s, len + 1);
	c->text_len = len;
	/* jansson's copy is ours until json_decref(): wipe it too. */
	bv_wipe((void *)(uintptr_t)s, len);
	if (c->kind == BV_CONTENT_EMAIL) {
		if (get_fixed(root, "subject", BV_CONTENT_SUBJECT_MAX,
			      c->subject) < 0)
			return BV_EFIELD;
		v = json_object_get(root, "thread");
		if (v &&
		    get_fixed(root, "thread", BV_MESSAGE_ID_MAX, c->thread) < 0)
			return BV_EFIELD;
		v = json_object_get(root, "answer_by");
		if (v) {
			if (!json_is_integer(v) ||
			    !sent_valid(json_integer_value(v)))
				return BV_EFIELD;
			c->answer_by_ms = json_integer_value(v);
		}
	}
	arr = json_object_get(root, "attachments");
	if (!arr)
		return 0;
	if (!json_is_array(arr))
		return BV_EFIELD;
	if (json_array_size(arr) > BV_CONTENT_ATTACHMENTS_MAX)
		return BV_ETOOMANY;
	if (json_array_size(arr) < 1)
		return BV_EFIELD;
	c->att = bv_calloc(json_array_size(arr), sizeof(*c->att));
	if (!c->att)
		return BV_ENOMEM;
	json_array_foreach(arr, i, item)
	{
		rc = decode_attachment(item, &c->att[i]);
		if (rc < 0)
			return rc;
		c->n_att = i + 1;
	}
	return 0;
}

/* The kind-specific members of a version-1 content of a known kind. */
static int
decode_kind(json_t *root, struct bv_content *c)
{
	const char *s;
	size_t len;
	int i;

	switch (c->kind) {
	case BV_CONTENT_TEXT:
	case BV_CONTENT_EMAIL: {
		int rc = decode_message(root, c);

		if (rc < 0)
			return rc;
		return content_check(c);
	}
	case BV_CONTENT_RECEIPT:
		if (get_str(root, "receipt", &s, &len) < 0)
			return BV_EFIELD;
		i = name_index(receipt_names, N_OF(receipt_names), s);
		if (i < 0)
			return BV_EFIELD;
		c->receipt = (enum bv_receipt_type)i;
		if (c->receipt == BV_RECEIPT_JOURNALED) {
			if (get_str(root, "journal", &s, &len) < 0 || len < 1 ||
			    len > BV_CONTENT_JOURNAL_MAX ||
			    !journal_valid(s, len))
				return BV_EFIELD;
			memcpy(c->journal, s, len + 1);
		} else if (json_object_get(root, "journal")) {
			return BV_EFIELD;
		}
		break;
	case BV_CONTENT_RESEND_REQUEST:
		if (get_str(root, "reason", &s, &len) < 0 ||
		    !kind_name_valid(s, len))
			return BV_EFIELD;
		/* An unknown reason is still a resend request: honour it. */
		i = name_index(reason_names, N_OF(reason_names), s);
		c->reason = i < 0 ? BV_RESEND_OTHER : (enum bv_resend_reason)i;
		break;
	default:
		return BV_EINTERNAL;
	}
	{
		int rc = decode_ids(root, c);

		if (rc < 0)
			return rc;
	}
	return content_check(c);
}

int
bv_content_decode(const uint8_t *buf, size_t len, struct bv_content **out)
{
	struct bv_content *c = NULL;
	json_error_t jerr;
	json_t *root = NULL;
	size_t plain_len;
	int rc, k;

	if (!buf || !out || len > BV_CONTENT_MAX_BYTES) {
		rc = BV_EINVAL;
		goto out;
	}
	rc = bv_content_unpad(buf, len, &plain_len);
	if (rc < 0)
		goto out;
	root = json_loadb((const char *)buf, plain_len, JSON_REJECT_DUPLICATES,
			  &jerr);
	if (!root) {
		rc = json_error_code(&jerr) == json_error_out_of_memory
			     ? BV_ENOMEM
			     : BV_EJSON;
		goto out;
	}
	if (!json_is_object(root)) {
		rc = BV_EJSON;
		goto out;
	}
	c = bv_calloc(1, sizeof(*c));
	if (!c) {
		rc = BV_ENOMEM;
		goto out;
	}
	rc = decode_common(root, c);
	if (rc < 0)
		goto out;
	k = name_index(kind_names, N_OF(kind_names), c->kind_name);
	if (c->version == BV_CONTENT_VERSION &&
	    (k == BV_CONTENT_TEXT || k == BV_CONTENT_EMAIL ||
	     k == BV_CONTENT_RECEIPT || k == BV_CONTENT_RESEND_REQUEST)) {
		c->kind = (enum bv_content_kind)k;
		rc = decode_kind(root, c);
		if (rc < 0)
			goto out;
	} else {
		c->kind = BV_CONTENT_UNKNOWN;
	}
	*out = c;
	c = NULL;
out:
	bv_content_free(c);
	json_decref(root);
	return rc;
}
