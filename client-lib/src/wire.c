/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * wire.c: parses the frames the relay sends and builds the frames a client
 * sends (docs/protocol.md), as strings; no sockets, no crypto.
 *
 * The relay is untrusted input like any peer: types, ranges, lengths,
 * base64 and counts are checked before anything reaches the caller.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bv_error.h"
#include "bv_proto.h"
#include "bv_token.h"
#include "bv_util.h"
#include "wire.h"

#define DEFAULT_MAX_FRAME 262144
#define ERRNO_MIN	  -9999 /* errno values are small negatives */
#define TIMESTAMP_MAX	  ((json_int_t)1 << 53)

/* ---- Parsing ---------------------------------------------------------- */

/* The getters return 0 or BV_EFIELD / BV_EBASE64 / BV_ENOMEM. */

/* An integer member in lo … hi; optional: absent or null leaves *out. */
static int
get_int(json_t *obj, const char *key, json_int_t lo, json_int_t hi,
	int optional, json_int_t *out)
{
	json_t *v = json_object_get(obj, key);
	json_int_t n;

	if (optional && (!v || json_is_null(v)))
		return 0;
	if (!json_is_integer(v))
		return BV_EFIELD;
	n = json_integer_value(v);
	if (n < lo || n > hi)
		return BV_EFIELD;
	*out = n;
	return 0;
}

static int
get_u32(json_t *obj, const char *key, json_int_t lo, uint32_t *out)
{
	json_int_t n = 0;
	int rc;

	rc = get_int(obj, key, lo, BV_ID_MAX, 0, &n);
	if (rc == 0)
		*out = (uint32_t)n;
	return rc;
}

/* A string member of 1 … max bytes without NUL, copied into out[max+1]. */
static int
get_str(json_t *obj, const char *key, size_t max, char *out)
{
	json_t *v = json_object_get(obj, key);
	size_t n;

	if (!json_is_string(v))
		return BV_EFIELD;
	n = json_string_length(v);
	if (n == 0 || n > max || strlen(json_string_value(v)) != n)
		return BV_EFIELD;
	memcpy(out, json_string_value(v), n + 1);
	return 0;
}

/*
 * No control characters: these strings end up in logs, where a newline or
 * an escape sequence from the relay could forge lines. UTF-8 is fine
 * (jansson has checked it).
 */
static int
get_printable(json_t *obj, const char *key, size_t max, char *out)
{
	const unsigned char *c = (const unsigned char *)out;
	size_t i;
	int rc;

	rc = get_str(obj, key, max, out);
	if (rc < 0)
		return rc;
	for (i = 0; c[i]; i++)
		if (c[i] < 0x20 || c[i] == 0x7f)
			return BV_EFIELD;
	return 0;
}

static int
get_uuid(json_t *obj, const char *key, char out[BV_UUID_LEN + 1])
{
	int rc;

	rc = get_str(obj, key, BV_UUID_LEN, out);
	if (rc < 0)
		return rc;
	if (strlen(out) != BV_UUID_LEN || !bv_uuid_valid(out))
		return BV_EFIELD;
	return 0;
}

/* A base64 member decoding to exactly len bytes. */
static int
get_b64_fixed(json_t *obj, const char *key, uint8_t *out, size_t len)
{
	json_t *v = json_object_get(obj, key);
	size_t n = 0;
	int rc;

	if (!json_is_string(v))
		return BV_EFIELD;
	rc = bv_b64_decode(json_string_value(v), json_string_length(v), out,
			   len, &n);
	if (rc == BV_EBASE64)
		return BV_EBASE64;
	if (rc < 0 || n != len)
		return BV_EFIELD;
	return 0;
}

/* An optional object member: absent or null gives *out = NULL. */
static int
get_object(json_t *obj, const char *key, int optional, json_t **out)
{
	json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (optional && (!v || json_is_null(v)))
		return 0;
	if (!json_is_object(v))
		return BV_EFIELD;
	*out = v;
	return 0;
}

/* An array member of at most BV_WIRE_MAX_ITEMS; absent/null when optional
 * gives *out = NULL. */
static int
get_array(json_t *obj, const char *key, int optional, json_t **out)
{
	json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (optional && (!v || json_is_null(v)))
		return 0;
	if (!json_is_array(v) || json_array_size(v) > BV_WIRE_MAX_ITEMS)
		return BV_EFIELD;
	*out = v;
	return 0;
}

/* docs/protocol.md: an optional member set to null counts as absent. */
static int
present(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return v && !json_is_null(v);
}

/*
 * 1 when s is base64url (padding optional) of exactly len bytes, the first
 * first (when not 0): a web push key.
 */
static int
key_ok(const char *s, size_t len, uint8_t first)
{
	uint8_t buf[72];
	size_t n = s ? strlen(s) : 0, got = 0;

	while (n && s[n - 1] == '=')
		n--;
	if (!n || len > sizeof(buf) ||
	    bv_b64url_decode(s, n, buf, sizeof(buf), &got) != 0 || got != len)
		return 0;
	return !first || buf[0] == first;
}

static int
parse_challenge(json_t *root, struct bv_wire_msg *m)
{
	static const struct {
		const char *name;
		size_t off;
	} lims[] = {
#define LIM(f) {#f, offsetof(struct bv_wire_limits, f)}
		LIM(max_frame_bytes),	      LIM(max_envelope_bytes),
		LIM(max_envelopes_per_send),  LIM(max_prekeys_per_upload),
		LIM(max_devices_per_account), LIM(sends_per_minute),
		LIM(deliver_window),
#undef LIM
	};
	uint8_t nonce[BV_NONCE_LEN];
	json_t *limits;
	size_t i;
	int rc;

	rc = get_str(root, "nonce", BV_WIRE_NONCE_B64, m->u.challenge.nonce);
	if (rc < 0)
		return rc;
	rc = get_b64_fixed(root, "nonce", nonce, sizeof(nonce));
	if (rc < 0)
		return rc;
	rc = get_printable(root, "relay", BV_WIRE_RELAY_MAX,
			   m->u.challenge.relay);
	if (rc < 0)
		return rc;
	rc = get_object(root, "limits", 1, &limits);
	if (rc < 0)
		return rc;
	for (i = 0; i < sizeof(lims) / sizeof(lims[0]); i++) {
		int64_t *dst = (int64_t *)((char *)&m->u.challenge.limits +
					   lims[i].off);
		json_int_t n = -1;

		if (limits) {
			rc = get_int(limits, lims[i].name, 0, BV_ID_MAX, 1, &n);
			if (rc < 0)
				return rc;
		}
		*dst = n;
	}
	/* The relay's VAPID public key for web push (docs/protocol.md): a
	 * key that is not one is left out rather than refusing the
	 * connection over a notification setting. */
	if (present(root, "webpush_key") &&
	    (get_str(root, "webpush_key", BV_WIRE_VAPID_MAX,
		     m->u.challenge.webpush_key) < 0 ||
	     !key_ok(m->u.challenge.webpush_key, 65, 0x04)))
		m->u.challenge.webpush_key[0] = '\0';
	return 0;
}

static int
parse_prekeys_low(json_t *root, struct bv_wire_msg *m)
{
	return get_u32(root, "one_time_count", 0,
		       &m->u.prekeys_low.one_time_count);
}

/* A word: 1 … BV_WIRE_WORD_MAX of [a-z0-9_] (roles, kinds). */
static int
get_word(json_t *obj, const char *key, char out[BV_WIRE_WORD_MAX + 1])
{
	size_t i;
	int rc;

	rc = get_str(obj, key, BV_WIRE_WORD_MAX, out);
	if (rc < 0)
		return rc;
	for (i = 0; out[i]; i++)
		if (!((out[i] >= 'a' && out[i] <= 'z') ||
		      (out[i] >= '0' && out[i] <= '9') || out[i] == '_'))
			return BV_EFIELD;
	return 0;
}

/* As get_printable(), but absent or null leaves out "". */
static int
get_opt_printable(json_t *obj, const char *key, size_t max, char *out)
{
	json_t *v = json_object_get(obj, key);

	out[0] = '\0';
	if (!v || json_is_null(v))
		return 0;
	return get_printable(obj, key, max, out);
}

static int
get_message_id(json_t *obj, char out[BV_MESSAGE_ID_MAX + 1])
{
	int rc;

	rc = get_str(obj, "message_id", BV_MESSAGE_ID_MAX, out);
	if (rc == 0 && !bv_message_id_valid(out))
		rc = BV_EFIELD;
	return rc;
}

/* A notice from the service: relay content, nothing secret in it. */
static int
parse_notice(json_t *n, struct bv_wire_msg *m)
{
	json_int_t t = 0;
	int rc;

	m->u.deliver.notice = 1;
	rc = get_word(n, "kind", m->u.deliver.notice_kind);
	if (rc == 0)
		rc = get_uuid(n, "conversation", m->u.deliver.conversation);
	if (rc == 0)
		rc = get_message_id(n, m->u.deliver.message_id);
	if (rc == 0)
		rc = get_int(n, "timestamp", 0, TIMESTAMP_MAX, 0, &t);
	if (rc == 0)
		rc = get_opt_printable(n, "municipality", BV_WIRE_TEXT_MAX,
				       m->u.deliver.municipality);
	if (rc == 0)
		rc = get_opt_printable(n, "phone", BV_WIRE_PHONE_MAX,
				       m->u.deliver.phone);
	if (rc == 0)
		rc = get_opt_printable(n, "emergency_phone", BV_WIRE_PHONE_MAX,
				       m->u.deliver.emergency_phone);
	m->u.deliver.timestamp = t;
	return rc;
}

static int
parse_deliver(json_t *root, struct bv_wire_msg *m)
{
	json_int_t n = 0;
	json_t *env, *notice, *body;
	size_t cap, blen = 0;
	int rc;

	rc = get_object(root, "notice", 1, &notice);
	if (rc < 0)
		return rc;
	rc = get_object(root, "envelope", notice != NULL, &env);
	if (rc < 0)
		return rc;
	if (notice && env)
		return BV_EFIELD; /* one or the other */
	if (notice)
		return parse_notice(notice, m);
	rc = get_uuid(env, "sender", m->u.deliver.sender);
	if (rc < 0)
		return rc;
	rc = get_u32(env, "sender_device", 1, &m->u.deliver.sender_device);
	if (rc < 0)
		return rc;
	rc = get_uuid(env, "conversation", m->u.deliver.conversation);
	if (rc < 0)
		return rc;
	rc = get_message_id(env, m->u.deliver.message_id);
	if (rc < 0)
		return rc;
	rc = get_int(env, "type", 0, 255, 0, &n);
	if (rc < 0)
		return rc;
	m->u.deliver.type = (uint8_t)n;
	rc = get_int(env, "timestamp", 0, TIMESTAMP_MAX, 0, &n);
	if (rc < 0)
		return rc;
	m->u.deliver.timestamp = n;

	body = json_object_get(env, "body");
	if (!json_is_string(body) || json_string_length(body) == 0)
		return BV_EFIELD;
	/* The frame limit bounds the body. */
	cap = bv_b64_decoded_max(json_string_length(body));
	m->u.deliver.body = bv_malloc(cap);
	if (!m->u.deliver.body)
		return BV_ENOMEM;
	rc = bv_b64_decode(json_string_value(body), json_string_length(body),
			   m->u.deliver.body, cap, &blen);
	if (rc == BV_EBASE64)
		return BV_EBASE64;
	if (rc < 0 || blen == 0)
		return BV_EFIELD;
	m->u.deliver.body_len = blen;
	return 0;
}

static int
parse_cases_changed(json_t *root, struct bv_wire_msg *m)
{
	if (!present(root, "case"))
		return 0;
	return get_uuid(root, "case", m->u.cases_changed.case_id);
}

/* ---- the case view ---- */

static int
parse_person(json_t *obj, struct bv_wire_person *p)
{
	char name[BV_WIRE_TEXT_MAX + 1];
	int rc;

	if (!json_is_object(obj))
		return BV_EFIELD;
	rc = get_uuid(obj, "account", p->account);
	if (rc == 0)
		rc = get_word(obj, "role", p->role);
	if (rc == 0)
		rc = get_opt_printable(obj, "name", BV_WIRE_TEXT_MAX, name);
	if (rc == 0 && name[0]) {
		p->name = bv_strdup(name);
		if (!p->name)
			rc = BV_ENOMEM;
	}
	return rc;
}

/* A people or members array into *out (n set as items are filled, so
 * that a failure frees what was made). */
static int
parse_people(json_t *obj, const char *key, struct bv_wire_person **out,
	     size_t *n)
{
	json_t *arr, *item;
	size_t i;
	int rc;

	rc = get_array(obj, key, 1, &arr);
	if (rc < 0 || !arr || json_array_size(arr) == 0)
		return rc;
	*out = bv_calloc(json_array_size(arr), sizeof(**out));
	if (!*out)
		return BV_ENOMEM;
	json_array_foreach(arr, i, item)
	{
		*n = i + 1;
		rc = parse_person(item, &(*out)[i]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int
parse_conv(json_t *obj, struct bv_wire_conv *cv)
{
	json_int_t t = 0;
	json_t *v;
	int rc;

	if (!json_is_object(obj))
		return BV_EFIELD;
	rc = get_uuid(obj, "conversation", cv->conversation);
	if (rc == 0)
		rc = get_word(obj, "kind", cv->kind);
	if (rc < 0)
		return rc;
	v = json_object_get(obj, "closed");
	if (v && !json_is_null(v) && !json_is_boolean(v))
		return BV_EFIELD;
	cv->closed = v && json_is_true(v);
	rc = get_int(obj, "created", 0, TIMESTAMP_MAX, 1, &t);
	if (rc < 0)
		return rc;
	cv->created = t;
	return parse_people(obj, "members", &cv->members, &cv->n_members);
}

static int
parse_case(json_t *obj, struct bv_wire_case *c)
{
	json_t *arr = NULL, *item;
	size_t i;
	int rc;

	if (!json_is_object(obj))
		return BV_EFIELD;
	rc = get_uuid(obj, "case", c->case_id);
	if (rc == 0)
		rc = get_printable(obj, "case_number", BV_WIRE_CASE_NUMBER_MAX,
				   c->case_number);
	if (rc == 0)
		rc = get_opt_printable(obj, "municipality", BV_WIRE_TEXT_MAX,
				       c->municipality);
	if (rc == 0)
		rc = get_word(obj, "role", c->role);
	if (rc == 0) {
		json_int_t days = 0;

		rc = get_int(obj, "answer_days", 1, 60, 1, &days);
		c->answer_days = (int)days;
	}
	if (rc == 0)
		rc = parse_people(obj, "people", &c->people, &c->n_people);
	if (rc == 0)
		rc = get_array(obj, "conversations", 1, &arr);
	if (rc < 0 || !arr || json_array_size(arr) == 0)
		return rc;
	c->conversations =
		bv_calloc(json_array_size(arr), sizeof(*c->conversations));
	if (!c->conversations)
		return BV_ENOMEM;
	json_array_foreach(arr, i, item)
	{
		c->n_conversations = i + 1;
		rc = parse_conv(item, &c->conversations[i]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static void
people_free(struct bv_wire_person *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		bv_free(p[i].name);
	bv_free(p);
}

void
bv_wire_case_cleanup(struct bv_wire_case *c)
{
	size_t i;

	if (!c)
		return;
	people_free(c->people, c->n_people);
	for (i = 0; i < c->n_conversations; i++)
		people_free(c->conversations[i].members,
			    c->conversations[i].n_members);
	bv_free(c->conversations);
	memset(c, 0, sizeof(*c));
}

static void
cases_free(struct bv_wire_case *c, size_t n)
{
	size_t i;

	for (i = 0; c && i < n; i++)
		bv_wire_case_cleanup(&c[i]);
	bv_free(c);
}

static int
parse_cases(json_t *ok, struct bv_wire_msg *m)
{
	json_t *arr, *item, *more;
	size_t i;
	int rc;

	rc = get_array(ok, "cases", 0, &arr);
	if (rc < 0)
		return rc;
	more = json_object_get(ok, "more");
	if (more && !json_is_null(more) && !json_is_boolean(more))
		return BV_EFIELD;
	m->u.ok.more = more && json_is_true(more);
	if (json_array_size(arr) > 0) {
		m->u.ok.cases =
			bv_calloc(json_array_size(arr), sizeof(*m->u.ok.cases));
		if (!m->u.ok.cases)
			return BV_ENOMEM;
	}
	json_array_foreach(arr, i, item)
	{
		m->u.ok.n_cases = i + 1;
		rc = parse_case(item, &m->u.ok.cases[i]);
		if (rc < 0)
			return rc;
	}
	m->u.ok.fields |= BV_WIRE_OK_CASES;
	return 0;
}

static int
parse_prekey(json_t *obj, struct bv_prekey *k)
{
	int rc;

	rc = get_u32(obj, "id", 0, &k->id);
	if (rc < 0)
		return rc;
	return get_b64_fixed(obj, "key", k->key, BV_KEY_LEN);
}

static int
parse_bundle(json_t *obj, struct bv_wire_bundle *b)
{
	json_t *spk, *otk;
	int rc;

	if (!json_is_object(obj))
		return BV_EFIELD;
	rc = get_u32(obj, "device", 1, &b->device);
	if (rc < 0)
		return rc;
	rc = get_u32(obj, "registration_id", 1, &b->registration_id);
	if (rc < 0)
		return rc;
	rc = get_b64_fixed(obj, "identity_key", b->identity_key, BV_KEY_LEN);
	if (rc < 0)
		return rc;
	rc = get_object(obj, "signed_prekey", 0, &spk);
	if (rc < 0)
		return rc;
	rc = parse_prekey(spk, &b->signed_prekey);
	if (rc < 0)
		return rc;
	rc = get_b64_fixed(spk, "signature", b->signed_prekey_signature,
			   BV_SIG_LEN);
	if (rc < 0)
		return rc;
	rc = get_object(obj, "one_time_prekey", 1, &otk);
	if (rc < 0 || !otk)
		return rc;
	rc = parse_prekey(otk, &b->one_time_prekey);
	if (rc < 0)
		return rc;
	b->has_one_time_prekey = 1;
	return 0;
}

/* A capability: exactly BV_WIRE_CAP_LEN characters of base64url. */
static int
get_cap(json_t *obj, const char *key, char out[BV_WIRE_CAP_LEN + 1])
{
	size_t i;
	int rc;

	rc = get_str(obj, key, BV_WIRE_CAP_LEN, out);
	if (rc < 0)
		return rc;
	if (strlen(out) != BV_WIRE_CAP_LEN)
		return BV_EFIELD;
	for (i = 0; i < BV_WIRE_CAP_LEN; i++)
		if (!isalnum((unsigned char)out[i]) && out[i] != '-' &&
		    out[i] != '_')
			return BV_EFIELD;
	return 0;
}

/* blob_create's answer: blob, upload, download and expires, all four. */
static int
parse_blob(json_t *ok, struct bv_wire_msg *m)
{
	json_int_t n = 0;
	int rc;

	rc = get_uuid(ok, "blob", m->u.ok.blob);
	if (rc == 0)
		rc = get_cap(ok, "upload", m->u.ok.upload);
	if (rc == 0)
		rc = get_cap(ok, "download", m->u.ok.download);
	if (rc == 0)
		rc = get_int(ok, "expires", 0, TIMESTAMP_MAX, 0, &n);
	if (rc < 0)
		return rc;
	m->u.ok.expires = n;
	m->u.ok.fields |= BV_WIRE_OK_BLOB;
	return 0;
}

static int
parse_ok(json_t *ok, struct bv_wire_msg *m)
{
	json_int_t n = -1;
	json_t *devs, *item;
	size_t i;
	int rc;

	if (present(ok, "account")) {
		rc = get_uuid(ok, "account", m->u.ok.account);
		if (rc < 0)
			return rc;
		m->u.ok.fields |= BV_WIRE_OK_ACCOUNT;
	}
	if (present(ok, "device")) {
		rc = get_u32(ok, "device", 1, &m->u.ok.device);
		if (rc < 0)
			return rc;
		m->u.ok.fields |= BV_WIRE_OK_DEVICE;
	}
	if (present(ok, "tenant")) {
		rc = get_uuid(ok, "tenant", m->u.ok.tenant);
		if (rc < 0)
			return rc;
		m->u.ok.fields |= BV_WIRE_OK_TENANT;
	}
	if (present(ok, "timestamp")) {
		rc = get_int(ok, "timestamp", 0, TIMESTAMP_MAX, 0, &n);
		if (rc < 0)
			return rc;
		m->u.ok.timestamp = n;
		m->u.ok.fields |= BV_WIRE_OK_TIMESTAMP;
	}
	if (present(ok, "one_time_count")) {
		rc = get_u32(ok, "one_time_count", 0, &m->u.ok.one_time_count);
		if (rc < 0)
			return rc;
		m->u.ok.fields |= BV_WIRE_OK_ONE_TIME_COUNT;
	}
	if (present(ok, "conversation")) {
		rc = get_uuid(ok, "conversation", m->u.ok.conversation);
		if (rc < 0)
			return rc;
		m->u.ok.fields |= BV_WIRE_OK_CONVERSATION;
	}
	if (present(ok, "blob")) {
		rc = parse_blob(ok, m);
		if (rc < 0)
			return rc;
	}
	if (present(ok, "vapid_public_key")) {
		rc = get_str(ok, "vapid_public_key", BV_WIRE_VAPID_MAX,
			     m->u.ok.vapid_public_key);
		if (rc < 0)
			return rc;
		if (!key_ok(m->u.ok.vapid_public_key, 65, 0x04))
			return BV_EFIELD;
		m->u.ok.fields |= BV_WIRE_OK_VAPID;
	}
	if (present(ok, "cases")) {
		rc = parse_cases(ok, m);
		if (rc < 0)
			return rc;
	}
	if (!present(ok, "devices"))
		return 0;
	rc = get_array(ok, "devices", 0, &devs);
	if (rc < 0)
		return rc;
	if (json_array_size(devs) > 0) {
		m->u.ok.bundles = bv_calloc(json_array_size(devs),
					    sizeof(struct bv_wire_bundle));
		if (!m->u.ok.bundles)
			return BV_ENOMEM;
	}
	json_array_foreach(devs, i, item)
	{
		rc = parse_bundle(item, &m->u.ok.bundles[i]);
		if (rc < 0)
			return rc;
		m->u.ok.n_bundles = i + 1;
	}
	m->u.ok.fields |= BV_WIRE_OK_DEVICES;
	return 0;
}

static int
parse_devlist(json_t *obj, struct bv_wire_devlist *d)
{
	json_t *devs, *v;
	size_t i;
	int rc;

	if (!json_is_object(obj))
		return BV_EFIELD;
	rc = get_uuid(obj, "account", d->account);
	if (rc < 0)
		return rc;
	rc = get_array(obj, "devices", 0, &devs);
	if (rc < 0)
		return rc;
	if (json_array_size(devs) == 0)
		return BV_EFIELD;
	d->devices = bv_calloc(json_array_size(devs), sizeof(uint32_t));
	if (!d->devices)
		return BV_ENOMEM;
	json_array_foreach(devs, i, v)
	{
		json_int_t n;

		if (!json_is_integer(v))
			return BV_EFIELD;
		n = json_integer_value(v);
		if (n < 1 || n > BV_ID_MAX)
			return BV_EFIELD;
		d->devices[i] = (uint32_t)n;
		d->n_devices = i + 1;
	}
	return 0;
}

static int
parse_devlists(json_t *err, const char *key, struct bv_wire_devlists *l)
{
	json_t *arr, *item;
	size_t i;
	int rc;

	rc = get_array(err, key, 1, &arr);
	if (rc < 0 || !arr || json_array_size(arr) == 0)
		return rc;
	l->items =
		bv_calloc(json_array_size(arr), sizeof(struct bv_wire_devlist));
	if (!l->items)
		return BV_ENOMEM;
	json_array_foreach(arr, i, item)
	{
		l->n = i + 1; /* so a failure frees the devices */
		rc = parse_devlist(item, &l->items[i]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int
parse_error(json_t *err, struct bv_wire_msg *m)
{
	json_int_t n = 0;
	json_t *v;
	size_t i;
	int known, rc;

	rc = get_str(err, "code", BV_WIRE_NAME_MAX, m->u.error.name);
	if (rc < 0)
		return rc;
	/* A later relay may add codes: accept any well-formed name. */
	for (i = 0; m->u.error.name[i]; i++) {
		char c = m->u.error.name[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_'))
			return BV_EFIELD;
	}
	rc = get_int(err, "errno", ERRNO_MIN, -1, 0, &n);
	if (rc < 0)
		return rc;
	m->u.error.code = (int)n;
	/* A known name must come with its own number. */
	known = bv_err_from_name(m->u.error.name);
	if (known != 0 && known != m->u.error.code)
		return BV_EFIELD;
	v = json_object_get(err, "retryable");
	if (!json_is_boolean(v))
		return BV_EFIELD;
	m->u.error.retryable = json_is_true(v);
	rc = get_printable(err, "message", BV_WIRE_MESSAGE_MAX,
			   m->u.error.message);
	if (rc < 0)
		return rc;

	m->u.error.retry_after_ms = -1;
	rc = get_int(err, "retry_after_ms", 0, TIMESTAMP_MAX, 1, &n);
	if (rc < 0)
		return rc;
	if (present(err, "retry_after_ms"))
		m->u.error.retry_after_ms = n;
	if (present(err, "field")) {
		rc = get_printable(err, "field", BV_WIRE_FIELD_MAX,
				   m->u.error.field);
		if (rc < 0)
			return rc;
	}
	rc = parse_devlists(err, "missing", &m->u.error.missing);
	if (rc < 0)
		return rc;
	rc = parse_devlists(err, "extra", &m->u.error.extra);
	if (rc < 0)
		return rc;
	return parse_devlists(err, "stale", &m->u.error.stale);
}

static int
parse_response(json_t *root, struct bv_wire_msg *m)
{
	json_t *id = json_object_get(root, "id");
	json_t *ok = json_object_get(root, "ok");
	json_t *error = json_object_get(root, "error");
	json_int_t n = -1;
	int rc;

	if (ok && error)
		return BV_EFIELD;
	/* Only an error may answer a frame whose id the relay could not read. */
	if (!(error && json_is_null(id))) {
		rc = get_int(root, "id", 1, BV_ID_MAX, 0, &n);
		if (rc < 0)
			return rc;
	}
	m->id = n;
	if (ok) {
		if (!json_is_object(ok))
			return BV_EFIELD;
		m->kind = BV_WIRE_OK;
		return parse_ok(ok, m);
	}
	if (!json_is_object(error))
		return BV_EFIELD;
	m->kind = BV_WIRE_ERROR;
	return parse_error(error, m);
}

static const struct {
	const char *name;
	enum bv_wire_kind kind;
	int is_request; /* carries an id */
	int (*parse)(json_t *root, struct bv_wire_msg *m);
} ops[] = {
	{"challenge", BV_WIRE_CHALLENGE, 0, parse_challenge},
	{"queue_empty", BV_WIRE_QUEUE_EMPTY, 0, NULL},
	{"prekeys_low", BV_WIRE_PREKEYS_LOW, 0, parse_prekeys_low},
	{"displaced", BV_WIRE_DISPLACED, 0, NULL},
	{"deliver", BV_WIRE_DELIVER, 1, parse_deliver},
	{"cases_changed", BV_WIRE_CASES_CHANGED, 0, parse_cases_changed},
};

static int
parse_root(json_t *root, struct bv_wire_msg *m)
{
	json_t *op, *id;
	json_int_t n = -1;
	size_t i;
	int rc;

	if (json_object_get(root, "ok") || json_object_get(root, "error"))
		return parse_response(root, m);

	op = json_object_get(root, "op");
	if (!json_is_string(op))
		return BV_EFIELD;
	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		if (strcmp(json_string_value(op), ops[i].name) == 0)
			break;
	}
	if (i == sizeof(ops) / sizeof(ops[0]))
		return BV_EOP;
	id = json_object_get(root, "id");
	if (ops[i].is_request) {
		rc = get_int(root, "id", 1, BV_ID_MAX, 0, &n);
		if (rc < 0)
			return rc;
	} else if (id && !json_is_null(id)) {
		/* An event has no id; one that does is not what it claims. */
		return BV_EFIELD;
	}
	m->id = n;
	m->kind = ops[i].kind;
	return ops[i].parse ? ops[i].parse(root, m) : 0;
}

/* See bv_proto.c: jansson reports most allocation failures without text. */
static int
json_oom(const json_error_t *jerr)
{
	return jerr->text[0] == '\0' ||
	       json_error_code(jerr) == json_error_out_of_memory;
}

int
bv_wire_parse(const char *buf, size_t len, size_t max_frame,
	      struct bv_wire_msg **out)
{
	struct bv_wire_msg *m = NULL;
	json_error_t jerr;
	json_t *root = NULL;
	int rc;

	if (!buf || !out) {
		rc = BV_EINVAL;
		goto out;
	}
	if (max_frame == 0)
		max_frame = DEFAULT_MAX_FRAME;
	/* Before parsing, so an oversized frame costs nothing. */
	if (len > max_frame) {
		rc = BV_EFRAME;
		goto out;
	}
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		rc = json_oom(&jerr) ? BV_ENOMEM : BV_EJSON;
		goto out;
	}
	if (!json_is_object(root)) {
		rc = BV_EJSON;
		goto out;
	}
	m = bv_calloc(1, sizeof(*m));
	if (!m) {
		rc = BV_ENOMEM;
		goto out;
	}
	rc = parse_root(root, m);
	if (rc < 0)
		goto out;
	*out = m;
	m = NULL;
out:
	bv_wire_msg_free(m);
	json_decref(root);
	return rc;
}

static void
devlists_free(struct bv_wire_devlists *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		bv_free(l->items[i].devices);
	bv_free(l->items);
}

void
bv_wire_msg_free(struct bv_wire_msg *m)
{
	if (!m)
		return;
	switch (m->kind) {
	case BV_WIRE_DELIVER:
		if (m->u.deliver.body) {
			bv_wipe(m->u.deliver.body, m->u.deliver.body_len);
			bv_free(m->u.deliver.body);
		}
		break;
	case BV_WIRE_OK:
		bv_free(m->u.ok.bundles);
		cases_free(m->u.ok.cases, m->u.ok.n_cases);
		break;
	case BV_WIRE_ERROR:
		devlists_free(&m->u.error.missing);
		devlists_free(&m->u.error.extra);
		devlists_free(&m->u.error.stale);
		break;
	default:
		break;
	}
	bv_free(m);
}

/* ---- Building --------------------------------------------------------- */

static int
id_valid(int64_t id)
{
	return id >= 1 && id <= BV_ID_MAX;
}

/* What the relay takes as a token: 1 … BV_TOKEN_MAX printable bytes. */
static int
token_valid(const char *t)
{
	size_t i;

	if (!t || !t[0])
		return 0;
	for (i = 0; t[i]; i++)
		if (i >= BV_TOKEN_MAX || t[i] < 0x21 || t[i] > 0x7e)
			return 0;
	return 1;
}

static int
dev_valid(uint32_t d)
{
	return d >= 1 && d <= BV_ID_MAX;
}

/* Adds key: base64(buf) to obj. */
static int
set_b64(json_t *obj, const char *key, const uint8_t *buf, size_t len)
{
	char *s;
	int rc;

	s = bv_b64_encode(buf, len);
	if (!s)
		return BV_ENOMEM;
	rc = json_object_set_new(obj, key, json_string(s)) < 0 ? BV_ENOMEM : 0;
	bv_free(s);
	return rc;
}

/*
 * Starts {"id": id, "op": op}: returns the object or NULL (out of memory).
 */
static json_t *
request_new(int64_t id, const char *op)
{
	return json_pack("{s:I, s:s}", "id", (json_int_t)id, "op", op);
}

/*
 * Dumps root compactly into a string from our allocator and drops root.
 * jansson's copy is wiped: an enroll frame carries the token.
 */
static int
finish(json_t *root, char **out)
{
	void (*jfree)(void *) = NULL;
	char *dump, *s = NULL;
	int rc = BV_ENOMEM;

	if (!root)
		return BV_ENOMEM;
	dump = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	if (!dump)
		return BV_ENOMEM;
	s = bv_strdup(dump);
	bv_wipe(dump, strlen(dump));
	json_get_alloc_funcs(NULL, &jfree);
	jfree(dump);
	if (s) {
		*out = s;
		rc = 0;
	}
	return rc;
}

int
bv_wire_build_auth(int64_t id, const char *account, uint32_t device,
		   const uint8_t signature[BV_SIG_LEN], char **out)
{
	json_t *root = NULL;
	int rc;

	if (!out || !id_valid(id) || !bv_uuid_valid(account) ||
	    strlen(account) != BV_UUID_LEN || !dev_valid(device) || !signature)
		return BV_EINVAL;
	root = request_new(id, "auth");
	if (!root ||
	    json_object_set_new(root, "account", json_string(account)) ||
	    json_object_set_new(root, "device", json_integer(device))) {
		rc = BV_ENOMEM;
		goto out;
	}
	rc = set_b64(root, "signature", signature, BV_SIG_LEN);
	if (rc < 0)
		goto out;
	rc = finish(root, out);
	root = NULL;
out:
	json_decref(root);
	return rc;
}

int
bv_wire_build_enroll(int64_t id, const char *token, uint32_t registration_id,
		     const uint8_t identity_key[BV_KEY_LEN],
		     const uint8_t auth_key[BV_AUTH_KEY_LEN],
		     const uint8_t signature[BV_SIG_LEN], uint32_t replaces,
		     char **out)
{
	json_t *root = NULL;
	int rc;

	if (!out || !id_valid(id) || !token_valid(token) ||
	    !dev_valid(registration_id) || !identity_key || !auth_key ||
	    !signature || replaces > BV_ID_MAX)
		return BV_EINVAL;
	root = request_new(id, "enroll");
	if (!root || json_object_set_new(root, "token", json_string(token)) ||
	    json_object_set_new(root, "registration_id",
				json_integer(registration_id)) ||
	    (replaces &&
	     json_object_set_new(root, "replaces", json_integer(replaces)))) {
		rc = BV_ENOMEM;
		goto out;
	}
	rc = set_b64(root, "identity_key", identity_key, BV_KEY_LEN);
	if (rc == 0)
		rc = set_b64(root, "auth_key", auth_key, BV_AUTH_KEY_LEN);
	if (rc == 0)
		rc = set_b64(root, "signature", signature, BV_SIG_LEN);
	if (rc < 0)
		goto out;
	rc = finish(root, out);
	root = NULL;
out:
	json_decref(root);
	return rc;
}

/* {"id": k->id, "key": base64(k->key)} */
static json_t *
prekey_new(const struct bv_prekey *k)
{
	json_t *o = json_pack("{s:I}", "id", (json_int_t)k->id);

	if (o && set_b64(o, "key", k->key, BV_KEY_LEN) < 0) {
		json_decref(o);
		o = NULL;
	}
	return o;
}

int
bv_wire_build_keys_put(int64_t id, const struct bv_prekey *signed_prekey,
		       const uint8_t *signed_prekey_signature,
		       const struct bv_prekey *one_time, size_t n_one_time,
		       char **out)
{
	json_t *root = NULL, *spk, *arr, *k;
	size_t i;
	int rc = BV_ENOMEM;

	if (!out || !id_valid(id) ||
	    !signed_prekey != !signed_prekey_signature ||
	    (n_one_time && !one_time) ||
	    (signed_prekey && signed_prekey->id > BV_ID_MAX))
		return BV_EINVAL;
	for (i = 0; i < n_one_time; i++)
		if (one_time[i].id > BV_ID_MAX)
			return BV_EINVAL;
	root = request_new(id, "keys_put");
	if (!root)
		goto out;
	if (signed_prekey) {
		spk = prekey_new(signed_prekey);
		if (!spk || json_object_set_new(root, "signed_prekey", spk) < 0)
			goto out;
		rc = set_b64(spk, "signature", signed_prekey_signature,
			     BV_SIG_LEN);
		if (rc < 0)
			goto out;
		rc = BV_ENOMEM;
	}
	if (n_one_time) {
		arr = json_array();
		if (!arr ||
		    json_object_set_new(root, "one_time_prekeys", arr) < 0)
			goto out;
		for (i = 0; i < n_one_time; i++) {
			k = prekey_new(&one_time[i]);
			if (!k || json_array_append_new(arr, k) < 0)
				goto out;
		}
	}
	rc = finish(root, out);
	root = NULL;
out:
	json_decref(root);
	return rc;
}

int
bv_wire_build_keys_get(int64_t id, const char *account, uint32_t device,
		       char **out)
{
	json_t *root;

	if (!out || !id_valid(id) || !bv_uuid_valid(account) ||
	    strlen(account) != BV_UUID_LEN || device > BV_ID_MAX)
		return BV_EINVAL;
	root = request_new(id, "keys_get");
	if (root &&
	    (json_object_set_new(root, "account", json_string(account)) ||
	     (device &&
	      json_object_set_new(root, "device", json_integer(device))))) {
		json_decref(root);
		return BV_ENOMEM;
	}
	return finish(root, out);
}

int
bv_wire_build_keys_count(int64_t id, char **out)
{
	if (!out || !id_valid(id))
		return BV_EINVAL;
	return finish(request_new(id, "keys_count"), out);
}

int
bv_wire_build_ping(int64_t id, char **out)
{
	if (!out || !id_valid(id))
		return BV_EINVAL;
	return finish(request_new(id, "ping"), out);
}

static json_t *
envelope_new(const struct bv_wire_envelope *e)
{
	json_t *o;

	o = json_pack("{s:s, s:I, s:I, s:I}", "account", e->account, "device",
		      (json_int_t)e->device, "registration_id",
		      (json_int_t)e->registration_id, "type",
		      (json_int_t)e->type);
	if (o && set_b64(o, "body", e->body, e->body_len) < 0) {
		json_decref(o);
		o = NULL;
	}
	return o;
}

static int
uuid_ok(const char *u)
{
	return u && strlen(u) == BV_UUID_LEN && bv_uuid_valid(u);
}

int
bv_wire_build_send(int64_t id, const char *conversation, int partial,
		   const char *message_id, const struct bv_wire_envelope *envs,
		   size_t n_envs, char **out)
{
	json_t *root = NULL, *arr, *e;
	size_t i;
	int rc = BV_ENOMEM;

	if (!out || !id_valid(id) || !uuid_ok(conversation) ||
	    !bv_message_id_valid(message_id) || !envs || n_envs == 0)
		return BV_EINVAL;
	for (i = 0; i < n_envs; i++) {
		const struct bv_wire_envelope *x = &envs[i];

		if (!bv_uuid_valid(x->account) ||
		    strlen(x->account) != BV_UUID_LEN ||
		    !dev_valid(x->device) || !dev_valid(x->registration_id) ||
		    !x->body || x->body_len == 0)
			return BV_EINVAL;
	}
	root = request_new(id, "send");
	arr = json_array();
	if (!root || !arr) {
		json_decref(arr);
		goto out;
	}
	if (json_object_set_new(root, "conversation",
				json_string(conversation)) ||
	    (partial && json_object_set_new(root, "partial", json_true())) ||
	    json_object_set_new(root, "message_id", json_string(message_id)) ||
	    json_object_set_new(root, "envelopes", arr))
		goto out;
	for (i = 0; i < n_envs; i++) {
		e = envelope_new(&envs[i]);
		if (!e || json_array_append_new(arr, e) < 0)
			goto out;
	}
	rc = finish(root, out);
	root = NULL;
out:
	json_decref(root);
	return rc;
}

int
bv_wire_build_cases(int64_t id, const char *case_id, const char *after,
		    char **out)
{
	json_t *root;

	if (!out || !id_valid(id) || (case_id && !uuid_ok(case_id)) ||
	    (after && !uuid_ok(after)))
		return BV_EINVAL;
	root = request_new(id, "cases");
	if (root && ((case_id && json_object_set_new(root, "case",
						     json_string(case_id))) ||
		     (after && json_object_set_new(root, "after",
						   json_string(after))))) {
		json_decref(root);
		return BV_ENOMEM;
	}
	return finish(root, out);
}

int
bv_wire_build_conversation_create(int64_t id, const char *case_id,
				  const char *kind, const char *const *members,
				  size_t n, char **out)
{
	json_t *root = NULL, *arr = NULL;
	size_t i;

	if (!out || !id_valid(id) || !uuid_ok(case_id) || !kind ||
	    (strcmp(kind, "team") && strcmp(kind, "citizens")) ||
	    (n && !members) || n > 20)
		return BV_EINVAL;
	for (i = 0; i < n; i++)
		if (!uuid_ok(members[i]))
			return BV_EINVAL;
	root = request_new(id, "conversation_create");
	if (!root || json_object_set_new(root, "case", json_string(case_id)) ||
	    json_object_set_new(root, "kind", json_string(kind)))
		goto oom;
	if (n) {
		arr = json_array();
		if (!arr || json_object_set_new(root, "members", arr) < 0)
			goto oom;
		for (i = 0; i < n; i++)
			if (json_array_append_new(arr, json_string(members[i])))
				goto oom;
	}
	return finish(root, out);
oom:
	json_decref(root);
	return BV_ENOMEM;
}

int
bv_wire_build_blob_create(int64_t id, const char *conversation, uint64_t size,
			  const uint8_t sha256[32], char **out)
{
	char hex[65];
	size_t i;

	if (!out || !id_valid(id) || !uuid_ok(conversation) || !sha256 ||
	    size == 0 || size > (uint64_t)INT64_MAX)
		return BV_EINVAL;
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", sha256[i]);
	return finish(json_pack("{s:I, s:s, s:s, s:I, s:s}", "id",
				(json_int_t)id, "op", "blob_create",
				"conversation", conversation, "size",
				(json_int_t)size, "sha256", hex),
		      out);
}

int
bv_wire_build_blobs_journaled(int64_t id, const char *const *blobs, size_t n,
			      char **out)
{
	json_t *root = NULL, *arr = NULL;
	size_t i;

	if (!out || !id_valid(id) || !blobs || n == 0 || n > 100)
		return BV_EINVAL;
	for (i = 0; i < n; i++)
		if (!uuid_ok(blobs[i]))
			return BV_EINVAL;
	root = request_new(id, "blobs_journaled");
	arr = json_array();
	if (!root || !arr || json_object_set(root, "blobs", arr) < 0)
		goto oom;
	for (i = 0; i < n; i++)
		if (json_array_append_new(arr, json_string(blobs[i])))
			goto oom;
	json_decref(arr);
	return finish(root, out);
oom:
	json_decref(arr);
	json_decref(root);
	return BV_ENOMEM;
}

static int
word_in(const char *s, const char *const *set)
{
	for (; *set; set++)
		if (!strcmp(s, *set))
			return 1;
	return 0;
}

int
bv_wire_build_notify_set(int64_t id, const char *channel, const char *language,
			 const char *endpoint, const char *p256dh,
			 const char *auth, char **out)
{
	static const char *const channels[] = {"webpush", "sms", "email",
					       "none", NULL};
	static const char *const languages[] = {"nb", "nn", "en", "se", NULL};
	json_t *root = NULL, *push = NULL;
	size_t i;

	if (!out || !id_valid(id) || (!channel && !language && !endpoint) ||
	    (channel && !word_in(channel, channels)) ||
	    (language && !word_in(language, languages)))
		return BV_EINVAL;
	if (endpoint && *endpoint) {
		if (strlen(endpoint) > BV_WIRE_ENDPOINT_MAX ||
		    !key_ok(p256dh, 65, 0x04) || !key_ok(auth, 16, 0))
			return BV_EINVAL;
		for (i = 0; endpoint[i]; i++)
			if (endpoint[i] <= 0x20 || endpoint[i] >= 0x7f)
				return BV_EINVAL;
	}
	root = request_new(id, "notify_set");
	if (!root ||
	    (channel &&
	     json_object_set_new(root, "channel", json_string(channel))) ||
	    (language &&
	     json_object_set_new(root, "language", json_string(language))))
		goto oom;
	if (endpoint && !*endpoint) {
		if (json_object_set_new(root, "webpush", json_null()))
			goto oom;
	} else if (endpoint) {
		push = json_pack("{s:s, s:{s:s, s:s}}", "endpoint", endpoint,
				 "keys", "p256dh", p256dh, "auth", auth);
		if (!push || json_object_set_new(root, "webpush", push))
			goto oom;
	}
	return finish(root, out);
oom:
	json_decref(root);
	return BV_ENOMEM;
}

/* ---- The case view as JSON, for the local store ---- */

static json_t *
person_json(const struct bv_wire_person *p)
{
	return json_pack("{s:s, s:s, s:s?}", "account", p->account, "role",
			 p->role, "name", p->name);
}

static json_t *
people_json(const struct bv_wire_person *p, size_t n)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; arr && i < n; i++)
		if (json_array_append_new(arr, person_json(&p[i])) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	return arr;
}

int
bv_wire_case_dump(const struct bv_wire_case *c, char **out)
{
	void (*jfree)(void *) = NULL;
	json_t *root, *convs, *cv;
	size_t i;
	char *dump;

	if (!c || !out)
		return BV_EINVAL;
	root = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o}", "case", c->case_id,
			 "case_number", c->case_number, "municipality",
			 c->municipality, "role", c->role, "people",
			 people_json(c->people, c->n_people), "conversations",
			 json_array());
	if (!root)
		return BV_ENOMEM;
	if (c->answer_days &&
	    json_object_set_new(root, "answer_days",
				json_integer(c->answer_days))) {
		json_decref(root);
		return BV_ENOMEM;
	}
	convs = json_object_get(root, "conversations");
	for (i = 0; i < c->n_conversations; i++) {
		const struct bv_wire_conv *x = &c->conversations[i];

		cv = json_pack("{s:s, s:s, s:b, s:I, s:o}", "conversation",
			       x->conversation, "kind", x->kind, "closed",
			       x->closed, "created", (json_int_t)x->created,
			       "members",
			       people_json(x->members, x->n_members));
		if (!cv || json_array_append_new(convs, cv) < 0) {
			json_decref(root);
			return BV_ENOMEM;
		}
	}
	dump = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(root);
	if (!dump)
		return BV_ENOMEM;
	*out = bv_strdup(dump);
	json_get_alloc_funcs(NULL, &jfree);
	jfree(dump);
	return *out ? 0 : BV_ENOMEM;
}

int
bv_wire_case_parse(const char *json, size_t len, struct bv_wire_case *out)
{
	json_error_t jerr;
	json_t *root;
	int rc;

	if (!json || !out)
		return BV_EINVAL;
	memset(out, 0, sizeof(*out));
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return json_oom(&jerr) ? BV_ENOMEM : BV_EJSON;
	rc = parse_case(root, out);
	json_decref(root);
	return rc;
}

int
bv_wire_notice_dump(const struct bv_wire_msg *m, char **out)
{
	const char *phone;
	json_t *root;

	if (!m || !out || m->kind != BV_WIRE_DELIVER || !m->u.deliver.notice)
		return BV_EINVAL;
	phone = m->u.deliver.phone[0] ? m->u.deliver.phone : NULL;
	root = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s?, s:s}", "kind",
			 m->u.deliver.notice_kind, "conversation",
			 m->u.deliver.conversation, "message_id",
			 m->u.deliver.message_id, "timestamp",
			 (json_int_t)m->u.deliver.timestamp, "municipality",
			 m->u.deliver.municipality, "phone", phone,
			 "emergency_phone", m->u.deliver.emergency_phone);
	return finish(root, out);
}

int
bv_wire_notice_parse(const char *json, size_t len, struct bv_wire_msg **out)
{
	struct bv_wire_msg *m = NULL;
	json_error_t jerr;
	json_t *root;
	int rc;

	if (!json || !out)
		return BV_EINVAL;
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return json_oom(&jerr) ? BV_ENOMEM : BV_EJSON;
	m = bv_calloc(1, sizeof(*m));
	if (!m) {
		rc = BV_ENOMEM;
		goto out;
	}
	m->kind = BV_WIRE_DELIVER;
	m->id = -1;
	rc = json_is_object(root) ? parse_notice(root, m) : BV_EJSON;
	if (rc < 0)
		goto out;
	*out = m;
	m = NULL;
out:
	bv_wire_msg_free(m);
	json_decref(root);
	return rc;
}

int
bv_wire_build_ack(int64_t id, char **out)
{
	if (!out || !id_valid(id))
		return BV_EINVAL;
	return finish(json_pack("{s:I, s:{}}", "id", (json_int_t)id, "ok"),
		      out);
}

int
bv_wire_build_error(int64_t id, int code, char **out)
{
	char *s;

	if (!out || !id_valid(id) || code >= 0)
		return BV_EINVAL;
	s = bv_error_frame(id, code, NULL);
	if (!s)
		return BV_ENOMEM;
	*out = s;
	return 0;
}
