/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * bv_proto.c: parses and validates one client frame (docs/protocol.md) and
 * builds the signed-message texts and error frames of bvchat.v1.
 *
 * Everything a peer sends is checked here: types, ranges, lengths, base64
 * and the per-request limits. Nothing here knows accounts, devices or the
 * database; the relay's operations do the checks that need state.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bv_error.h"
#include "bv_proto.h"
#include "bv_token.h"
#include "bv_util.h"

void
bv_limits_default(struct bv_limits *l)
{
	l->max_frame_bytes = 262144;
	l->max_envelope_bytes = 65536;
	l->max_envelopes_per_send = 100;
	l->max_prekeys_per_upload = 100;
}

int
bv_message_id_valid(const char *s)
{
	size_t i;

	if (!s)
		return 0;
	for (i = 0; s[i]; i++) {
		char c = s[i];

		if (i >= BV_MESSAGE_ID_MAX)
			return 0;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return 0;
	}
	return i > 0;
}

/* The parser's state: the limits and where a failure is reported. */
struct parse {
	const struct bv_limits *lim;
	struct bv_parse_error *err;
};

static int fail(struct parse *p, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Records code and the field path (printf-style); returns code. */
static int
fail(struct parse *p, int code, const char *fmt, ...)
{
	va_list ap;

	p->err->code = code;
	p->err->field[0] = '\0';
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(p->err->field, sizeof(p->err->field), fmt, ap);
		va_end(ap);
	}
	return code;
}

/*
 * The getters below take the object, the member name and the path prefix
 * of the object ("" at the top, "envelopes[3]." inside an envelope), so a
 * failure names the full path of the member.
 */

/* An integer member in lo … hi. optional: absent or null leaves *out. */
static int
get_int(struct parse *p, json_t *obj, const char *pre, const char *key,
	json_int_t lo, json_int_t hi, int optional, json_int_t *out)
{
	json_t *v = json_object_get(obj, key);
	json_int_t n;

	if (optional && (!v || json_is_null(v)))
		return 0;
	if (!json_is_integer(v))
		return fail(p, BV_EFIELD, "%s%s", pre, key);
	n = json_integer_value(v);
	if (n < lo || n > hi)
		return fail(p, BV_EFIELD, "%s%s", pre, key);
	*out = n;
	return 0;
}

static int
get_id32(struct parse *p, json_t *obj, const char *pre, const char *key,
	 json_int_t lo, int optional, uint32_t *out)
{
	json_int_t n = -1; /* stays -1 when an optional member is absent */
	int rc;

	rc = get_int(p, obj, pre, key, lo, BV_ID_MAX, optional, &n);
	if (rc == 0 && n >= 0)
		*out = (uint32_t)n;
	return rc;
}

/* A string member of 1 … max bytes; *len gets its length. */
static int
get_str(struct parse *p, json_t *obj, const char *pre, const char *key,
	size_t max, const char **out, size_t *len)
{
	json_t *v = json_object_get(obj, key);
	size_t n;

	if (!json_is_string(v))
		return fail(p, BV_EFIELD, "%s%s", pre, key);
	n = json_string_length(v);
	if (n == 0 || n > max)
		return fail(p, BV_EFIELD, "%s%s", pre, key);
	*out = json_string_value(v);
	*len = n;
	return 0;
}

static int
get_uuid(struct parse *p, json_t *obj, const char *pre, const char *key,
	 char out[BV_UUID_LEN + 1])
{
	const char *s;
	size_t n;
	int rc;

	rc = get_str(p, obj, pre, key, BV_UUID_LEN, &s, &n);
	if (rc < 0)
		return rc;
	if (n != BV_UUID_LEN || !bv_uuid_valid(s))
		return fail(p, BV_EFIELD, "%s%s", pre, key);
	memcpy(out, s, BV_UUID_LEN + 1);
	return 0;
}

/* An optional UUID member: absent or null leaves out "". */
static int
get_uuid_opt(struct parse *p, json_t *obj, const char *pre, const char *key,
	     char out[BV_UUID_LEN + 1])
{
	json_t *v = json_object_get(obj, key);

	out[0] = '\0';
	if (!v || json_is_null(v))
		return 0;
	return get_uuid(p, obj, pre, key, out);
}

/* An optional boolean member: absent or null is false. */
static int
get_bool(struct parse *p, json_t *obj, const char *pre, const char *key,
	 int *out)
{
	json_t *v = json_object_get(obj, key);

	*out = 0;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return fail(p, BV_EFIELD, "%s%s", pre, key);
	*out = json_is_true(v);
	return 0;
}

/* A base64 member decoding to exactly len bytes. */
static int
get_b64_fixed(struct parse *p, json_t *obj, const char *pre, const char *key,
	      uint8_t *out, size_t len)
{
	json_t *v = json_object_get(obj, key);
	size_t n = 0;
	int rc;

	if (!json_is_string(v))
		return fail(p, BV_EFIELD, "%s%s", pre, key);
	rc = bv_b64_decode(json_string_value(v), json_string_length(v), out,
			   len, &n);
	if (rc == BV_EBASE64)
		return fail(p, BV_EBASE64, "%s%s", pre, key);
	if (rc < 0 || n != len)
		return fail(p, BV_EFIELD, "%s%s", pre, key);
	return 0;
}

static int
get_object(struct parse *p, json_t *obj, const char *pre, const char *key,
	   int optional, json_t **out)
{
	json_t *v = json_object_get(obj, key);

	if (optional && (!v || json_is_null(v))) {
		*out = NULL;
		return 0;
	}
	if (!json_is_object(v))
		return fail(p, BV_EFIELD, "%s%s", pre, key);
	*out = v;
	return 0;
}

static int
parse_auth(struct parse *p, json_t *root, struct bv_request *r)
{
	int rc;

	rc = get_uuid(p, root, "", "account", r->u.auth.account);
	if (rc < 0)
		return rc;
	rc = get_id32(p, root, "", "device", 1, 0, &r->u.auth.device);
	if (rc < 0)
		return rc;
	return get_b64_fixed(p, root, "", "signature", r->u.auth.signature,
			     BV_SIG_LEN);
}

static int
parse_enroll(struct parse *p, json_t *root, struct bv_request *r)
{
	const char *token;
	size_t len;
	int rc;

	rc = get_str(p, root, "", "token", BV_TOKEN_MAX, &token, &len);
	if (rc < 0)
		return rc;
	rc = get_id32(p, root, "", "registration_id", 1, 0,
		      &r->u.enroll.registration_id);
	if (rc < 0)
		return rc;
	rc = get_b64_fixed(p, root, "", "identity_key",
			   r->u.enroll.identity_key, BV_KEY_LEN);
	if (rc < 0)
		return rc;
	rc = get_b64_fixed(p, root, "", "auth_key", r->u.enroll.auth_key,
			   BV_AUTH_KEY_LEN);
	if (rc < 0)
		return rc;
	rc = get_b64_fixed(p, root, "", "signature", r->u.enroll.signature,
			   BV_SIG_LEN);
	if (rc < 0)
		return rc;
	r->u.enroll.replaces = 0;
	rc = get_id32(p, root, "", "replaces", 1, 1, &r->u.enroll.replaces);
	if (rc < 0)
		return rc;
	/* Last, so that a failure above never leaves a copy to wipe. */
	r->u.enroll.token = bv_strndup(token, len);
	if (!r->u.enroll.token)
		return fail(p, BV_ENOMEM, NULL);
	return 0;
}

/*
 * Prekey ids: the protocol does not bound them; the database stores a
 * signed 32-bit integer, so 0 … BV_ID_MAX.
 */
static int
parse_prekey(struct parse *p, json_t *obj, const char *pre, struct bv_prekey *k)
{
	uint32_t id = 0;
	int rc;

	rc = get_id32(p, obj, pre, "id", 0, 0, &id);
	if (rc < 0)
		return rc;
	k->id = id;
	return get_b64_fixed(p, obj, pre, "key", k->key, BV_KEY_LEN);
}

static int
parse_keys_put(struct parse *p, json_t *root, struct bv_request *r)
{
	char pre[48];
	json_t *spk = NULL, *otks = NULL, *item;
	size_t i, n;
	int rc;

	rc = get_object(p, root, "", "signed_prekey", 1, &spk);
	if (rc < 0)
		return rc;
	if (spk) {
		rc = parse_prekey(p, spk, "signed_prekey.",
				  &r->u.keys_put.signed_prekey);
		if (rc < 0)
			return rc;
		rc = get_b64_fixed(p, spk, "signed_prekey.", "signature",
				   r->u.keys_put.signed_prekey_signature,
				   BV_SIG_LEN);
		if (rc < 0)
			return rc;
		r->u.keys_put.has_signed_prekey = 1;
	}

	otks = json_object_get(root, "one_time_prekeys");
	if (!otks || json_is_null(otks))
		return 0;
	if (!json_is_array(otks))
		return fail(p, BV_EFIELD, "one_time_prekeys");
	n = json_array_size(otks);
	if (n > p->lim->max_prekeys_per_upload)
		return fail(p, BV_ETOOMANY, "one_time_prekeys");
	if (n == 0)
		return 0;
	r->u.keys_put.one_time = bv_calloc(n, sizeof(struct bv_prekey));
	if (!r->u.keys_put.one_time)
		return fail(p, BV_ENOMEM, NULL);
	json_array_foreach(otks, i, item)
	{
		snprintf(pre, sizeof(pre), "one_time_prekeys[%zu]", i);
		if (!json_is_object(item))
			return fail(p, BV_EFIELD, "%s", pre);
		strcat(pre, ".");
		rc = parse_prekey(p, item, pre, &r->u.keys_put.one_time[i]);
		if (rc < 0)
			return rc;
		r->u.keys_put.n_one_time = i + 1;
	}
	return 0;
}

static int
parse_keys_get(struct parse *p, json_t *root, struct bv_request *r)
{
	int rc;

	rc = get_uuid(p, root, "", "account", r->u.keys_get.account);
	if (rc < 0)
		return rc;
	r->u.keys_get.device = 0;
	return get_id32(p, root, "", "device", 1, 1, &r->u.keys_get.device);
}

static int
parse_envelope(struct parse *p, json_t *e, size_t i, struct bv_envelope_in *env)
{
	char pre[48];
	json_int_t type = 0;
	json_t *body;
	size_t cap, n = 0;
	int rc;

	snprintf(pre, sizeof(pre), "envelopes[%zu]", i);
	if (!json_is_object(e))
		return fail(p, BV_EFIELD, "%s", pre);
	strcat(pre, ".");
	rc = get_uuid(p, e, pre, "account", env->account);
	if (rc < 0)
		return rc;
	rc = get_id32(p, e, pre, "device", 1, 0, &env->device);
	if (rc < 0)
		return rc;
	rc = get_id32(p, e, pre, "registration_id", 1, 0,
		      &env->registration_id);
	if (rc < 0)
		return rc;
	rc = get_int(p, e, pre, "type", 0, 255, 0, &type);
	if (rc < 0)
		return rc;
	env->type = (uint8_t)type;

	body = json_object_get(e, "body");
	if (!json_is_string(body))
		return fail(p, BV_EFIELD, "%sbody", pre);
	/* The frame limit bounds this; the envelope limit bounds it again. */
	cap = bv_b64_decoded_max(json_string_length(body));
	if (cap > p->lim->max_envelope_bytes)
		cap = p->lim->max_envelope_bytes;
	env->body = bv_malloc(cap);
	if (!env->body)
		return fail(p, BV_ENOMEM, NULL);
	rc = bv_b64_decode(json_string_value(body), json_string_length(body),
			   env->body, cap, &n);
	if (rc == BV_EBASE64)
		return fail(p, BV_EBASE64, "%sbody", pre);
	if (rc < 0 || n == 0)
		return fail(p, BV_EENVELOPE, "%sbody", pre);
	env->body_len = n;
	return 0;
}

/* Orders by (account, device), then by position in the request. */
static int
dup_cmp(const void *a, const void *b)
{
	const struct bv_envelope_in *x =
		*(const struct bv_envelope_in *const *)a;
	const struct bv_envelope_in *y =
		*(const struct bv_envelope_in *const *)b;
	int c = strcmp(x->account, y->account);

	if (c)
		return c;
	if (x->device != y->device)
		return x->device < y->device ? -1 : 1;
	return x < y ? -1 : (x > y);
}

/*
 * Finds two envelopes for the same (account, device) in O(n log n) and
 * reports the lowest index that repeats an earlier one.
 */
static int
check_duplicates(struct parse *p, const struct bv_envelope_in *envs, size_t n)
{
	const struct bv_envelope_in **sorted;
	size_t i, worst = SIZE_MAX;

	if (n < 2)
		return 0;
	sorted = bv_calloc(n, sizeof(*sorted));
	if (!sorted)
		return fail(p, BV_ENOMEM, NULL);
	for (i = 0; i < n; i++)
		sorted[i] = &envs[i];
	qsort(sorted, n, sizeof(*sorted), dup_cmp);
	for (i = 1; i < n; i++) {
		const struct bv_envelope_in *a = sorted[i - 1], *b = sorted[i];

		if (a->device == b->device &&
		    strcmp(a->account, b->account) == 0 &&
		    (size_t)(b - envs) < worst)
			worst = (size_t)(b - envs);
	}
	bv_free(sorted);
	if (worst != SIZE_MAX)
		return fail(p, BV_EFIELD, "envelopes[%zu].device", worst);
	return 0;
}

static int
parse_send(struct parse *p, json_t *root, struct bv_request *r)
{
	const char *mid;
	json_t *envs, *e;
	size_t i, n, len;
	int rc;

	rc = get_uuid(p, root, "", "conversation", r->u.send.conversation);
	if (rc < 0)
		return rc;
	rc = get_bool(p, root, "", "partial", &r->u.send.partial);
	if (rc < 0)
		return rc;
	rc = get_str(p, root, "", "message_id", BV_MESSAGE_ID_MAX, &mid, &len);
	if (rc < 0)
		return rc;
	if (!bv_message_id_valid(mid))
		return fail(p, BV_EFIELD, "message_id");
	memcpy(r->u.send.message_id, mid, len + 1);

	envs = json_object_get(root, "envelopes");
	if (!json_is_array(envs))
		return fail(p, BV_EFIELD, "envelopes");
	n = json_array_size(envs);
	if (n == 0)
		return fail(p, BV_EFIELD, "envelopes");
	if (n > p->lim->max_envelopes_per_send)
		return fail(p, BV_ETOOMANY, "envelopes");
	r->u.send.envelopes = bv_calloc(n, sizeof(struct bv_envelope_in));
	if (!r->u.send.envelopes)
		return fail(p, BV_ENOMEM, NULL);
	json_array_foreach(envs, i, e)
	{
		r->u.send.n_envelopes = i + 1; /* so a failure frees body */
		rc = parse_envelope(p, e, i, &r->u.send.envelopes[i]);
		if (rc < 0)
			return rc;
	}
	return check_duplicates(p, r->u.send.envelopes, n);
}

static int
parse_cases(struct parse *p, json_t *root, struct bv_request *r)
{
	int rc;

	rc = get_uuid_opt(p, root, "", "case", r->u.cases.case_id);
	if (rc == 0)
		rc = get_uuid_opt(p, root, "", "after", r->u.cases.after);
	return rc;
}

static int
parse_conversation_create(struct parse *p, json_t *root, struct bv_request *r)
{
	const char *kind;
	json_t *members, *m;
	size_t i, j, n, len;
	int rc;

	rc = get_uuid(p, root, "", "case", r->u.conversation_create.case_id);
	if (rc < 0)
		return rc;
	rc = get_str(p, root, "", "kind", 8, &kind, &len);
	if (rc < 0)
		return rc;
	if (strcmp(kind, "team") && strcmp(kind, "citizens"))
		return fail(p, BV_EFIELD, "kind");
	memcpy(r->u.conversation_create.kind, kind, len + 1);
	members = json_object_get(root, "members");
	if (!members || json_is_null(members))
		return 0; /* a citizen's own team conversation */
	if (!json_is_array(members))
		return fail(p, BV_EFIELD, "members");
	n = json_array_size(members);
	if (n > BV_CONVERSATION_MEMBERS_MAX)
		return fail(p, BV_EFIELD, "members");
	json_array_foreach(members, i, m)
	{
		char *out = r->u.conversation_create.members[i];

		if (!json_is_string(m) ||
		    json_string_length(m) != BV_UUID_LEN ||
		    !bv_uuid_valid(json_string_value(m)))
			return fail(p, BV_EFIELD, "members[%zu]", i);
		memcpy(out, json_string_value(m), BV_UUID_LEN + 1);
		for (j = 0; j < i; j++)
			if (!strcmp(r->u.conversation_create.members[j], out))
				return fail(p, BV_EFIELD, "members[%zu]", i);
	}
	r->u.conversation_create.n_members = n;
	return 0;
}

/* One of the words in a NULL-terminated list, copied into out. */
static int
get_word(struct parse *p, json_t *obj, const char *key,
	 const char *const *words, char *out, size_t cap)
{
	const char *s;
	size_t len, i;
	int rc = get_str(p, obj, "", key, cap - 1, &s, &len);

	if (rc < 0)
		return rc;
	for (i = 0; words[i]; i++)
		if (!strcmp(s, words[i])) {
			memcpy(out, s, len + 1);
			return 0;
		}
	return fail(p, BV_EFIELD, "%s", key);
}

/* A base64url member (padding optional) decoding to exactly len bytes. */
static int
get_b64url_fixed(struct parse *p, json_t *obj, const char *pre, const char *key,
		 uint8_t *out, size_t len)
{
	json_t *v = json_object_get(obj, key);
	size_t n = 0, sl;
	const char *s;

	if (!json_is_string(v))
		return fail(p, BV_EFIELD, "%s%s", pre, key);
	s = json_string_value(v);
	sl = json_string_length(v);
	while (sl > 0 && s[sl - 1] == '=')
		sl--;
	if (bv_b64url_decode(s, sl, out, len, &n) < 0)
		return fail(p, BV_EBASE64, "%s%s", pre, key);
	if (n != len)
		return fail(p, BV_EFIELD, "%s%s", pre, key);
	return 0;
}

/*
 * notify_set: every member optional, at least one given. The endpoint is
 * an https:// URL (or http://, which the relay takes only for loopback
 * when its config says so) of printable ASCII without spaces.
 */
static int
parse_notify_set(struct parse *p, json_t *root, struct bv_request *r)
{
	static const char *const channels[] = {"webpush", "sms", "email",
					       "none", NULL};
	static const char *const languages[] = {"nb", "nn", "en", "se", NULL};
	json_t *wp = NULL, *keys = NULL, *v;
	const char *ep;
	size_t len, i;
	int rc, any = 0;

	r->u.notify_set.mention_service = -1;
	if (json_object_get(root, "channel")) {
		rc = get_word(p, root, "channel", channels,
			      r->u.notify_set.channel,
			      sizeof(r->u.notify_set.channel));
		if (rc < 0)
			return rc;
		any = 1;
	}
	if (json_object_get(root, "language")) {
		rc = get_word(p, root, "language", languages,
			      r->u.notify_set.language,
			      sizeof(r->u.notify_set.language));
		if (rc < 0)
			return rc;
		any = 1;
	}
	v = json_object_get(root, "mention_service");
	if (v) {
		if (!json_is_boolean(v))
			return fail(p, BV_EFIELD, "mention_service");
		r->u.notify_set.mention_service = json_is_true(v);
		any = 1;
	}
	if (json_object_get(root, "webpush")) {
		any = 1;
		rc = get_object(p, root, "", "webpush", 1, &wp);
		if (rc < 0)
			return rc;
		if (!wp) {
			r->u.notify_set.webpush = -1;
			return 0;
		}
		rc = get_str(p, wp, "webpush.", "endpoint",
			     BV_WEBPUSH_ENDPOINT_MAX, &ep, &len);
		if (rc < 0)
			return rc;
		if (strncmp(ep, "https://", 8) && strncmp(ep, "http://", 7))
			return fail(p, BV_EFIELD, "webpush.endpoint");
		for (i = 0; i < len; i++)
			if (ep[i] <= ' ' || ep[i] > '~')
				return fail(p, BV_EFIELD, "webpush.endpoint");
		memcpy(r->u.notify_set.endpoint, ep, len + 1);
		rc = get_object(p, wp, "webpush.", "keys", 0, &keys);
		if (rc == 0)
			rc = get_b64url_fixed(p, keys, "webpush.keys.",
					      "p256dh", r->u.notify_set.p256dh,
					      BV_WEBPUSH_P256DH_LEN);
		if (rc == 0)
			rc = get_b64url_fixed(p, keys, "webpush.keys.", "auth",
					      r->u.notify_set.auth,
					      BV_WEBPUSH_AUTH_LEN);
		if (rc < 0)
			return rc;
		if (r->u.notify_set.p256dh[0] != 0x04)
			return fail(p, BV_EFIELD, "webpush.keys.p256dh");
		r->u.notify_set.webpush = 1;
	}
	if (!any)
		return fail(p, BV_EFIELD, "channel");
	return 0;
}

/* A digit or a lower-case hex letter's value, or -1. */
static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static int
parse_blob_create(struct parse *p, json_t *root, struct bv_request *r)
{
	json_int_t size;
	const char *hex;
	size_t i, len;
	int rc;

	rc = get_uuid(p, root, "", "conversation",
		      r->u.blob_create.conversation);
	if (rc < 0)
		return rc;
	/* Any integer: the relay answers BV_EBLOB_SIZE outside 1 … max. */
	rc = get_int(p, root, "", "size", INT64_MIN, INT64_MAX, 0, &size);
	if (rc < 0)
		return rc;
	r->u.blob_create.size = size;
	rc = get_str(p, root, "", "sha256", 64, &hex, &len);
	if (rc < 0)
		return rc;
	if (len != 64)
		return fail(p, BV_EFIELD, "sha256");
	for (i = 0; i < 32; i++) {
		int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return fail(p, BV_EFIELD, "sha256");
		r->u.blob_create.sha256[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static int
parse_blobs_journaled(struct parse *p, json_t *root, struct bv_request *r)
{
	json_t *arr = json_object_get(root, "blobs"), *b;
	size_t i, n;

	if (!json_is_array(arr) || json_array_size(arr) == 0)
		return fail(p, BV_EFIELD, "blobs");
	n = json_array_size(arr);
	if (n > BV_BLOBS_JOURNALED_MAX)
		return fail(p, BV_ETOOMANY, "blobs");
	r->u.blobs_journaled.blobs =
		bv_calloc(n, sizeof(*r->u.blobs_journaled.blobs));
	if (!r->u.blobs_journaled.blobs)
		return fail(p, BV_ENOMEM, NULL);
	json_array_foreach(arr, i, b)
	{
		if (!json_is_string(b) ||
		    json_string_length(b) != BV_UUID_LEN ||
		    !bv_uuid_valid(json_string_value(b)))
			return fail(p, BV_EFIELD, "blobs[%zu]", i);
		memcpy(r->u.blobs_journaled.blobs[i], json_string_value(b),
		       BV_UUID_LEN + 1);
	}
	r->u.blobs_journaled.n = n;
	return 0;
}

static int
parse_response(struct parse *p, json_t *root, struct bv_request *r)
{
	json_t *ok = json_object_get(root, "ok");
	json_t *error = json_object_get(root, "error");

	if (ok && error)
		return fail(p, BV_EFIELD, "error");
	if (ok && !json_is_object(ok))
		return fail(p, BV_EFIELD, "ok");
	if (error && !json_is_object(error))
		return fail(p, BV_EFIELD, "error");
	r->op = BV_OP_RESPONSE;
	r->u.response.is_error = error != NULL;
	return 0;
}

/*
 * jansson sets no error text when an allocation fails in most of its
 * parser (and reports a few as syntax errors, which we cannot tell apart);
 * every syntax error sets one.
 */
static int
json_oom(const json_error_t *jerr)
{
	return jerr->text[0] == '\0' ||
	       json_error_code(jerr) == json_error_out_of_memory;
}

static const struct {
	const char *name;
	enum bv_op op;
	int (*parse)(struct parse *p, json_t *root, struct bv_request *r);
} ops[] = {
	{"auth", BV_OP_AUTH, parse_auth},
	{"enroll", BV_OP_ENROLL, parse_enroll},
	{"keys_put", BV_OP_KEYS_PUT, parse_keys_put},
	{"keys_get", BV_OP_KEYS_GET, parse_keys_get},
	{"keys_count", BV_OP_KEYS_COUNT, NULL},
	{"send", BV_OP_SEND, parse_send},
	{"ping", BV_OP_PING, NULL},
	{"cases", BV_OP_CASES, parse_cases},
	{"conversation_create", BV_OP_CONVERSATION_CREATE,
	 parse_conversation_create},
	{"notify_set", BV_OP_NOTIFY_SET, parse_notify_set},
	{"blob_create", BV_OP_BLOB_CREATE, parse_blob_create},
	{"blobs_journaled", BV_OP_BLOBS_JOURNALED, parse_blobs_journaled},
};

static int
parse_root(struct parse *p, json_t *root, struct bv_request *r)
{
	json_int_t id;
	json_t *op;
	size_t i;
	int rc;

	rc = get_int(p, root, "", "id", 1, BV_ID_MAX, 0, &id);
	if (rc < 0)
		return rc;
	r->id = id;
	p->err->id = id;

	if (json_object_get(root, "ok") || json_object_get(root, "error"))
		return parse_response(p, root, r);

	op = json_object_get(root, "op");
	if (!json_is_string(op))
		return fail(p, BV_EFIELD, "op");
	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		if (strcmp(json_string_value(op), ops[i].name) != 0)
			continue;
		r->op = ops[i].op;
		return ops[i].parse ? ops[i].parse(p, root, r) : 0;
	}
	return fail(p, BV_EOP, "op");
}

int
bv_request_parse(const char *buf, size_t len, const struct bv_limits *lim,
		 struct bv_request **out, struct bv_parse_error *err)
{
	struct bv_parse_error local;
	struct bv_limits defaults;
	struct bv_request *r = NULL;
	struct parse p;
	json_error_t jerr;
	json_t *root = NULL;
	int rc;

	if (!err)
		err = &local;
	err->code = 0;
	err->id = -1;
	err->field[0] = '\0';
	if (!lim) {
		bv_limits_default(&defaults);
		lim = &defaults;
	}
	p.lim = lim;
	p.err = err;

	if (!buf || !out) {
		rc = fail(&p, BV_EINVAL, NULL);
		goto out;
	}
	/* Before parsing, so an oversized frame costs nothing. */
	if (len > lim->max_frame_bytes) {
		rc = fail(&p, BV_EFRAME, NULL);
		goto out;
	}
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		rc = fail(&p, json_oom(&jerr) ? BV_ENOMEM : BV_EJSON, NULL);
		goto out;
	}
	if (!json_is_object(root)) {
		rc = fail(&p, BV_EJSON, NULL);
		goto out;
	}
	r = bv_calloc(1, sizeof(*r));
	if (!r) {
		rc = fail(&p, BV_ENOMEM, NULL);
		goto out;
	}
	rc = parse_root(&p, root, r);
	if (rc < 0)
		goto out;
	*out = r;
	r = NULL;
out:
	bv_request_free(r);
	json_decref(root);
	return rc;
}

void
bv_request_free(struct bv_request *r)
{
	size_t i;

	if (!r)
		return;
	switch (r->op) {
	case BV_OP_ENROLL:
		if (r->u.enroll.token) {
			bv_wipe(r->u.enroll.token, strlen(r->u.enroll.token));
			bv_free(r->u.enroll.token);
		}
		break;
	case BV_OP_KEYS_PUT:
		bv_free(r->u.keys_put.one_time);
		break;
	case BV_OP_BLOBS_JOURNALED:
		bv_free(r->u.blobs_journaled.blobs);
		break;
	case BV_OP_SEND:
		for (i = 0; i < r->u.send.n_envelopes; i++)
			bv_free(r->u.send.envelopes[i].body);
		bv_free(r->u.send.envelopes);
		break;
	default:
		break;
	}
	bv_free(r);
}

/* Joins "bvchat.v1 <what>" and the lines with single newlines. */
static char *
join_lines(const char *what, const char *a, const char *b, const char *c)
{
	size_t n;
	char *s;

	n = strlen("bvchat.v1 ") + strlen(what) + 1 + strlen(a) + 1 +
	    strlen(b) + (c ? 1 + strlen(c) : 0) + 1;
	s = bv_malloc(n);
	if (!s)
		return NULL;
	if (c)
		snprintf(s, n, "bvchat.v1 %s\n%s\n%s\n%s", what, a, b, c);
	else
		snprintf(s, n, "bvchat.v1 %s\n%s\n%s", what, a, b);
	return s;
}

char *
bv_auth_message(const char *nonce_b64, const char *account, uint32_t device)
{
	char dev[16];

	if (!nonce_b64 || !account)
		return NULL;
	snprintf(dev, sizeof(dev), "%u", (unsigned)device);
	return join_lines("auth", nonce_b64, account, dev);
}

char *
bv_enroll_message(const char *nonce_b64, const char *token)
{
	if (!nonce_b64 || !token)
		return NULL;
	return join_lines("enroll", nonce_b64, token, NULL);
}

char *
bv_error_frame(int64_t id, int code, void *details)
{
	json_t *root = NULL, *error = NULL, *det = details;
	char *dump = NULL, *s = NULL;
	void (*jfree)(void *) = NULL;

	if (det && !json_is_object(det))
		goto out;
	error = json_pack("{s:s, s:i, s:b, s:s}", "code", bv_errname(code),
			  "errno", code, "retryable", bv_err_retryable(code),
			  "message", bv_strerror(code));
	if (!error)
		goto out;
	/* Details add members; they can never overwrite code or errno. */
	if (det && json_object_update_missing(error, det) < 0)
		goto out;
	root = json_object();
	if (!root ||
	    json_object_set_new(root, "id",
				id < 0 ? json_null() : json_integer(id)) < 0 ||
	    json_object_set(root, "error", error) < 0)
		goto out;
	dump = json_dumps(root, JSON_COMPACT);
	if (!dump)
		goto out;
	/* A copy from our allocator, whatever jansson was told to use. */
	s = bv_strdup(dump);
	json_get_alloc_funcs(NULL, &jfree);
	jfree(dump);
out:
	json_decref(error);
	json_decref(root);
	return s;
}
