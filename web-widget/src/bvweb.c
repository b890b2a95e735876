/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * bvweb.c: libbvchat's face to JavaScript inside the widget's frame (the
 * WebAssembly build only). One client per page.
 *
 * Calls: JavaScript calls bvw_call() with one JSON request {"op": …} and
 * gets one JSON answer {"rc": 0, …} or {"rc": BV_E…, "error": "…"}; the
 * answer lives in a buffer that the next call replaces. Ops: open, enroll,
 * connect, whoami, cases, conversations, history, send, send_email,
 * send_files, fetch_attachment, notify_set, read, accept, safety, create,
 * refresh, close (see app/client.js, the one caller).
 * Events: everything the library reports through its callbacks goes to
 * Module.bvwEvent(json) as {"ev": …}; never inside bvw_call(). A fetched
 * attachment goes to Module.bvwAttachment(json, bytes) instead, the
 * decrypted bytes copied out of the heap (and wiped there) in that call.
 * Storage: the store is libbvchat's in-memory store (store_mem.c). Before
 * "open", bvw_preload() gives it the sealed image saved last time; after
 * every change Module.bvwStoreChanged(generation) is called, and the page
 * saves bvw_image() and tells the transport which generation is durable
 * (conn_web.lib.js holds frames until then: nothing is acknowledged or sent
 * that a reload could forget).
 * Threads: one, the browser's; the loop is the uv shim over browser timers.
 */
#include <emscripten.h>
#include <jansson.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "bvchat.h"
#include "bvweb.h"
#include "store.h"

/* The store's name in the memory store's registry (one per page). */
#define STORE_PATH "bvchat"
/* History entries in one answer (the UI pages with after_seq). */
#define HISTORY_MAX 500

static struct bv_client *client;
static uv_loop_t loop;
static char *answer; /* the last bvw_call() answer */

EM_JS(void, emit_js, (const char *json),
      { Module.bvwEvent(UTF8ToString(json)); });
EM_JS(void, store_changed_js, (double generation),
      { Module.bvwStoreChanged(generation); });
/* clang-format off */
EM_JS(void, attachment_js, (const char *json, const uint8_t *p, double n), {
	Module.bvwAttachment(UTF8ToString(json),
			     n > 0 ? HEAPU8.slice(p, p + n) : null);
});
/* clang-format on */

/* Sends ev to JavaScript and frees it. */
static void
emit(json_t *ev)
{
	char *s;

	if (!ev)
		return;
	s = json_dumps(ev, JSON_COMPACT);
	json_decref(ev);
	if (s) {
		emit_js(s);
		free(s);
	}
}

static json_t *
str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* ---- events --------------------------------------------------------- */

static void
on_status(struct bv_client *c, void *user, enum bv_client_status st, int code)
{
	static const char *const names[] = {
		[BV_CLIENT_ONLINE] = "online",
		[BV_CLIENT_ENROLLED] = "enrolled",
		[BV_CLIENT_CAUGHT_UP] = "caught_up",
		[BV_CLIENT_OFFLINE] = "offline",
		[BV_CLIENT_DISPLACED] = "displaced",
		[BV_CLIENT_REFUSED] = "refused",
	};
	const char *name = st >= BV_CLIENT_ONLINE && st <= BV_CLIENT_REFUSED
				   ? names[st]
				   : "unknown";

	(void)c;
	(void)user;
	emit(json_pack("{s:s, s:s, s:i}", "ev", "status", "status", name,
		       "code", code));
}

static const char *
att_state_name(enum bv_client_att_state st)
{
	switch (st) {
	case BV_CLIENT_ATT_UPLOADING:
		return "uploading";
	case BV_CLIENT_ATT_DOWNLOADED:
		return "downloaded";
	default:
		return "available";
	}
}

/* A message's e-post members (subject, thread, answer_by_ms) into o, when
 * it is one (a chat text gets none of them); and its files as
 * "attachments": [{"name", "type", "size", "state"}] (index = position,
 * for fetch_attachment), when it has any. The blob's id and capability
 * stay in the library. */
static json_t *
with_email(json_t *o, const struct bv_client_message *m)
{
	json_t *a;
	size_t i;

	if (o && m->subject) {
		json_object_set_new(o, "subject", json_string(m->subject));
		json_object_set_new(o, "thread", str_or_null(m->thread));
		json_object_set_new(o, "answer_by_ms",
				    json_integer(m->answer_by_ms));
	}
	if (o && m->n_attachments) {
		a = json_array();
		for (i = 0; a && i < m->n_attachments; i++) {
			const struct bv_client_attachment *x =
				&m->attachments[i];

			json_array_append_new(
				a, json_pack("{s:s, s:s, s:I, s:s}", "name",
					     x->name, "type", x->type, "size",
					     (json_int_t)x->size, "state",
					     att_state_name(x->state)));
		}
		json_object_set_new(o, "attachments", a ? a : json_null());
	}
	return o;
}

static void
on_message(struct bv_client *c, void *user, const struct bv_client_message *m)
{
	(void)c;
	(void)user;
	emit(with_email(json_pack("{s:s, s:s, s:s, s:I, s:s, s:I, s:s%}", "ev",
				  "message", "conversation", m->conversation,
				  "sender", m->sender, "sender_device",
				  (json_int_t)m->sender_device, "message_id",
				  m->message_id, "time_ms",
				  (json_int_t)m->time_ms, "text", m->text,
				  m->text_len),
			m));
}

static void
on_receipt(struct bv_client *c, void *user, const char *conversation,
	   const char *sender, uint32_t sender_device,
	   enum bv_client_receipt type, const char *const *ids, size_t n)
{
	json_t *a = json_array();
	size_t i;

	(void)c;
	(void)user;
	for (i = 0; a && i < n; i++)
		json_array_append_new(a, json_string(ids[i]));
	emit(json_pack("{s:s, s:s, s:s, s:I, s:s, s:o*}", "ev", "receipt",
		       "conversation", conversation, "sender", sender,
		       "sender_device", (json_int_t)sender_device, "type",
		       type == BV_CLIENT_RECEIPT_READ	     ? "read"
		       : type == BV_CLIENT_RECEIPT_JOURNALED ? "journaled"
							     : "delivered",
		       "message_ids", a));
}

static void
on_key_changed(struct bv_client *c, void *user, const char *account,
	       uint32_t device)
{
	(void)c;
	(void)user;
	emit(json_pack("{s:s, s:s, s:I}", "ev", "key_changed", "account",
		       account, "device", (json_int_t)device));
}

static void
on_error(struct bv_client *c, void *user, int code, const char *message_id,
	 const char *what)
{
	(void)c;
	(void)user;
	emit(json_pack("{s:s, s:i, s:o, s:s}", "ev", "error", "code", code,
		       "message_id", str_or_null(message_id), "what",
		       what ? what : ""));
}

static void
on_sent(struct bv_client *c, void *user, const char *message_id, int rc)
{
	(void)c;
	(void)user;
	emit(json_pack("{s:s, s:s, s:i}", "ev", "sent", "message_id",
		       message_id, "rc", rc));
}

static void
on_accepted(struct bv_client *c, void *user, const char *account,
	    uint32_t device, int rc)
{
	(void)c;
	(void)user;
	emit(json_pack("{s:s, s:s, s:I, s:i}", "ev", "identity_accepted",
		       "account", account, "device", (json_int_t)device, "rc",
		       rc));
}

static json_t *
notice_json(const struct bv_client_notice *n)
{
	return json_pack("{s:s, s:s, s:s, s:I, s:s, s:o, s:s}", "conversation",
			 n->conversation, "message_id", n->message_id, "kind",
			 n->kind, "time_ms", (json_int_t)n->time_ms,
			 "municipality", n->municipality ? n->municipality : "",
			 "phone", str_or_null(n->phone), "emergency_phone",
			 n->emergency_phone ? n->emergency_phone : "");
}

static void
on_notice(struct bv_client *c, void *user, const struct bv_client_notice *n)
{
	(void)c;
	(void)user;
	emit(json_pack("{s:s, s:o*}", "ev", "notice", "notice",
		       notice_json(n)));
}

static void
on_cases(struct bv_client *c, void *user, int changed, int rc)
{
	(void)c;
	(void)user;
	emit(json_pack("{s:s, s:b, s:i}", "ev", "cases", "changed", changed,
		       "rc", rc));
}

static void
on_created(struct bv_client *c, void *arg, const char *conversation, int rc)
{
	(void)c;
	(void)arg;
	emit(json_pack("{s:s, s:o, s:i}", "ev", "conversation_created",
		       "conversation", str_or_null(conversation), "rc", rc));
}

static void
on_store_change(void *ud, const char *path, uint64_t generation)
{
	(void)ud;
	(void)path;
	store_changed_js((double)generation);
}

/* ---- calls ------------------------------------------------------------ */

/* The answer for rc: {"rc": rc} plus the fields of extra (stolen). */
static json_t *
result(int rc, json_t *extra)
{
	json_t *r = extra ? extra : json_object();

	if (!r)
		return NULL;
	json_object_set_new(r, "rc", json_integer(rc));
	if (rc != 0)
		json_object_set_new(r, "error",
				    json_string(bv_client_strerror(rc)));
	return r;
}

static const char *
arg_str(json_t *req, const char *key)
{
	return json_string_value(json_object_get(req, key));
}

/* A device number from the request, or 0 when missing or out of range. */
static uint32_t
arg_device(json_t *req)
{
	json_int_t d = json_integer_value(json_object_get(req, "device"));

	return d >= 1 && d <= 2147483647 ? (uint32_t)d : 0;
}

static json_t *
op_open(json_t *req)
{
	struct bv_client_opts o;
	const char *key64 = arg_str(req, "key");
	const char *host = arg_str(req, "host");
	json_int_t port = json_integer_value(json_object_get(req, "port"));
	uint8_t key[BV_CLIENT_STORE_KEY_LEN];
	size_t key_len = 0;
	int rc;

	if (client)
		return result(BV_EALREADY, NULL);
	if (!key64 || !host || port < 1 || port > 65535 ||
	    sodium_base642bin(key, sizeof(key), key64, strlen(key64), NULL,
			      &key_len, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    key_len != sizeof(key))
		return result(BV_EINVAL, NULL);
	memset(&o, 0, sizeof(o));
	o.store_path = STORE_PATH;
	o.store_key = key;
	/* The page's own origin ("https://relay.example"): attachments go
	 * where the frame came from, over TLS when it did. */
	o.http_base = arg_str(req, "http_base");
	o.relay_host = host;
	o.relay_port = (int)port;
	o.loop = &loop;
	o.on_status = on_status;
	o.on_message_ex = on_message;
	o.on_receipt = on_receipt;
	o.on_key_changed = on_key_changed;
	o.on_error = on_error;
	o.on_sent = on_sent;
	o.on_identity_accepted = on_accepted;
	o.on_notice = on_notice;
	o.on_cases = on_cases;
	bv_store_mem_set_hook(on_store_change, NULL);
	rc = bv_client_new(&o, &client);
	sodium_memzero(key, sizeof(key));
	/* The image is in the store now (or was refused): forget the copy. */
	bv_store_mem_preload(STORE_PATH, NULL, 0);
	if (rc != 0)
		client = NULL;
	return result(rc, NULL);
}

static json_t *
op_whoami(void)
{
	return result(0, json_pack("{s:s, s:I}", "account",
				   bv_client_account(client), "device",
				   (json_int_t)bv_client_device(client)));
}

static json_t *
person_json(const struct bv_client_person *p)
{
	return json_pack("{s:s, s:s, s:o}", "account", p->account, "role",
			 p->role, "name", str_or_null(p->name));
}

static json_t *
people_json(const struct bv_client_person *p, size_t n)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; a && i < n; i++)
		json_array_append_new(a, person_json(&p[i]));
	return a;
}

static int
case_cb(void *arg, const struct bv_client_case *cs)
{
	json_t *convs = json_array(), *one;
	size_t i;

	for (i = 0; convs && i < cs->n_conversations; i++) {
		const struct bv_client_case_conversation *cv =
			&cs->conversations[i];

		one = json_pack("{s:s, s:s, s:b, s:I, s:o*}", "conversation",
				cv->conversation, "kind", cv->kind, "closed",
				cv->closed, "created_ms",
				(json_int_t)cv->created_ms, "members",
				people_json(cv->members, cv->n_members));
		json_array_append_new(convs, one);
	}
	one = json_pack("{s:s, s:s, s:s, s:s, s:i, s:o*, s:o*}", "case_id",
			cs->case_id, "case_number", cs->case_number,
			"municipality", cs->municipality, "role", cs->role,
			"answer_days", cs->answer_days, "people",
			people_json(cs->people, cs->n_people), "conversations",
			convs);
	return one ? json_array_append_new(arg, one) : BV_ENOMEM;
}

static json_t *
op_cases(void)
{
	json_t *a = json_array();
	int rc = a ? bv_client_cases(client, case_cb, a) : BV_ENOMEM;

	return result(rc, json_pack("{s:o*}", "cases", a));
}

static int
conversation_cb(void *arg, const struct bv_client_conversation *cv)
{
	return json_array_append_new(
		arg, json_pack("{s:s, s:I, s:I, s:I}", "conversation",
			       cv->conversation, "last_seq",
			       (json_int_t)cv->last_seq, "last_time_ms",
			       (json_int_t)cv->last_time_ms, "n_messages",
			       (json_int_t)cv->n_messages));
}

static json_t *
op_conversations(void)
{
	json_t *a = json_array();
	int rc = a ? bv_client_conversations(client, conversation_cb, a)
		   : BV_ENOMEM;

	return result(rc, json_pack("{s:o*}", "conversations", a));
}

static const char *
state_name(enum bv_client_msg_state st)
{
	switch (st) {
	case BV_CLIENT_MSG_SENDING:
		return "sending";
	case BV_CLIENT_MSG_SENT:
		return "sent";
	case BV_CLIENT_MSG_DELIVERED:
		return "delivered";
	case BV_CLIENT_MSG_READ:
		return "read";
	case BV_CLIENT_MSG_FAILED:
		return "failed";
	case BV_CLIENT_MSG_UNDECRYPTABLE:
		return "undecryptable";
	default:
		return "received";
	}
}

static int
history_cb(void *arg, const struct bv_client_message *m)
{
	json_t *one;

	if (json_array_size(arg) >= HISTORY_MAX)
		return 1; /* the rest on the next page */
	one = json_pack("{s:I, s:b, s:s, s:I, s:s, s:I, s:s, s:b, s:o, s:s%}",
			"seq", (json_int_t)m->seq, "outgoing", m->outgoing,
			"sender", m->sender, "sender_device",
			(json_int_t)m->sender_device, "message_id",
			m->message_id, "time_ms", (json_int_t)m->time_ms,
			"state", state_name(m->state), "unsupported",
			m->unsupported, "journal", str_or_null(m->journal),
			"text", m->text, m->text_len);
	if (one && m->notice)
		json_object_set_new(one, "notice", notice_json(m->notice));
	with_email(one, m);
	return one ? json_array_append_new(arg, one) : BV_ENOMEM;
}

static json_t *
op_history(json_t *req)
{
	const char *conv = arg_str(req, "conversation");
	json_int_t after =
		json_integer_value(json_object_get(req, "after_seq"));
	json_t *a = json_array();
	int rc, more = 0;

	if (!conv || after < 0)
		return result(BV_EINVAL, NULL);
	rc = a ? bv_client_history(client, conv, after, history_cb, a)
	       : BV_ENOMEM;
	if (rc == 1) {
		more = 1;
		rc = 0;
	}
	return result(rc,
		      json_pack("{s:o*, s:b}", "messages", a, "more", more));
}

static json_t *
op_send(json_t *req)
{
	char id[BV_CLIENT_MESSAGE_ID_LEN + 1] = "";
	const char *conv = arg_str(req, "conversation");
	const char *text = arg_str(req, "text");
	int rc;

	if (!conv || !text)
		return result(BV_EINVAL, NULL);
	rc = bv_client_send_text(client, conv, text, id);
	return result(rc,
		      rc == 0 ? json_pack("{s:s}", "message_id", id) : NULL);
}

/*
 * An e-post: {"conversation", "subject", "text", "thread"?, "answer_by_ms"?}
 * (no thread: a new one; no answer_by_ms: the library decides from the case
 * view's answer_days). Answers the message id.
 */
static json_t *
op_send_email(json_t *req)
{
	char id[BV_CLIENT_MESSAGE_ID_LEN + 1] = "";
	const char *conv = arg_str(req, "conversation");
	const char *subject = arg_str(req, "subject");
	const char *text = arg_str(req, "text");
	const char *thread = arg_str(req, "thread");
	json_t *by = json_object_get(req, "answer_by_ms");
	int rc;

	if (!conv || !subject || !text || (by && !json_is_integer(by)))
		return result(BV_EINVAL, NULL);
	rc = bv_client_send_email(client, conv, subject, text, thread,
				  by ? (int64_t)json_integer_value(by) : 0, id);
	return result(rc,
		      rc == 0 ? json_pack("{s:s}", "message_id", id) : NULL);
}

/*
 * Files, with a text or an e-post: {"conversation", "text", "subject"?,
 * "thread"?, "answer_by_ms"?, "files": [{"name", "type", "ptr", "len"}]}
 * where ptr is len bytes the caller put in the heap (and frees after the
 * call: the library encrypts and spools them before it returns). Answers
 * the message id; the outcome comes as the "sent" event (rc BV_EBLOB_SIZE,
 * BV_EQUOTA, … when the relay refused a file before any was uploaded).
 */
static json_t *
op_send_files(json_t *req)
{
	struct bv_client_file f[BV_CLIENT_ATTACHMENTS_MAX];
	char id[BV_CLIENT_MESSAGE_ID_LEN + 1] = "";
	const char *conv = arg_str(req, "conversation");
	const char *text = arg_str(req, "text");
	const char *subject = arg_str(req, "subject");
	json_t *files = json_object_get(req, "files"), *x, *by;
	size_t i, n = json_array_size(files);
	json_int_t ptr, len;
	int rc;

	by = json_object_get(req, "answer_by_ms");
	if (!conv || !text || n == 0 || n > BV_CLIENT_ATTACHMENTS_MAX ||
	    (by && !json_is_integer(by)))
		return result(BV_EINVAL, NULL);
	memset(f, 0, sizeof(f));
	for (i = 0; i < n; i++) {
		x = json_array_get(files, i);
		ptr = json_integer_value(json_object_get(x, "ptr"));
		len = json_integer_value(json_object_get(x, "len"));
		f[i].name = arg_str(x, "name");
		f[i].type = arg_str(x, "type");
		if (!f[i].name || !f[i].type || len < 0 || ptr < 0 ||
		    (len > 0 && ptr == 0) || (json_int_t)(size_t)len != len ||
		    (json_int_t)(uintptr_t)ptr != ptr)
			return result(BV_EINVAL, NULL);
		f[i].data = (const uint8_t *)(uintptr_t)ptr;
		f[i].len = (size_t)len;
	}
	rc = bv_client_send_attachments(
		client, conv, text, subject,
		subject ? arg_str(req, "thread") : NULL,
		by ? (int64_t)json_integer_value(by) : 0, f, n, id);
	return result(rc,
		      rc == 0 ? json_pack("{s:s}", "message_id", id) : NULL);
}

static void
on_fetched(struct bv_client *c, void *arg, const char *message_id, int index,
	   int rc, const char *path, const uint8_t *data, size_t len)
{
	json_t *ev;
	char *s;

	(void)c;
	(void)path;
	ev = json_pack("{s:s, s:I, s:s, s:i, s:i}", "ev", "attachment", "tag",
		       (json_int_t)(uintptr_t)arg, "message_id", message_id,
		       "index", index, "rc", rc);
	s = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
	json_decref(ev);
	/* The library wipes data after this call; JavaScript has its copy. */
	if (s) {
		attachment_js(s, data, rc == 0 ? (double)len : 0);
		free(s);
	}
}

/*
 * One attachment into memory: {"message_id", "index", "tag"} (tag: an
 * integer > 0 the caller matches the answer with). Answers at once; the
 * bytes come through Module.bvwAttachment(json, bytes) with json
 * {"ev": "attachment", "tag", "message_id", "index", "rc"} (rc 0 and the
 * decrypted bytes, or BV_ETAMPERED, BV_ENOBLOB, BV_EIO and null).
 */
static json_t *
op_fetch_attachment(json_t *req)
{
	const char *mid = arg_str(req, "message_id");
	json_int_t index = json_integer_value(json_object_get(req, "index"));
	json_int_t tag = json_integer_value(json_object_get(req, "tag"));

	if (!mid || index < 0 || index >= BV_CLIENT_ATTACHMENTS_MAX ||
	    tag < 1 || tag > 0x7fffffff)
		return result(BV_EINVAL, NULL);
	return result(bv_client_attachment_fetch(client, mid, (int)index, NULL,
						 on_fetched,
						 (void *)(uintptr_t)tag),
		      NULL);
}

static void
on_notify_set(struct bv_client *c, void *arg, const char *vapid_public_key,
	      int rc)
{
	(void)c;
	(void)arg;
	emit(json_pack("{s:s, s:i, s:o}", "ev", "notify_set", "rc", rc,
		       "vapid_public_key", str_or_null(vapid_public_key)));
}

/*
 * "Notify me": {"channel"?, "language"?, "endpoint"?, "p256dh"?, "auth"?}
 * as bv_client_notify_set() takes them (endpoint "": remove the web push
 * subscription). The relay's answer comes as the event
 * {"ev": "notify_set", "rc", "vapid_public_key"} (the key or null).
 */
static json_t *
op_notify_set(json_t *req)
{
	return result(bv_client_notify_set(
			      client, arg_str(req, "channel"),
			      arg_str(req, "language"),
			      arg_str(req, "endpoint"), arg_str(req, "p256dh"),
			      arg_str(req, "auth"), on_notify_set, NULL),
		      NULL);
}

static json_t *
op_read(json_t *req)
{
	const char *conv = arg_str(req, "conversation");
	const char *sender = arg_str(req, "sender");
	json_t *ids = json_object_get(req, "message_ids");
	const char *v[100];
	size_t i, n = json_array_size(ids);

	if (!conv || !sender || n == 0 || n > 100)
		return result(BV_EINVAL, NULL);
	for (i = 0; i < n; i++)
		if (!(v[i] = json_string_value(json_array_get(ids, i))))
			return result(BV_EINVAL, NULL);
	return result(bv_client_mark_read(client, conv, sender, v, n), NULL);
}

static json_t *
op_safety(json_t *req)
{
	char out[BV_CLIENT_SAFETY_NUMBER_LEN + 1];
	const char *account = arg_str(req, "account");
	int rc;

	if (!account)
		return result(BV_EINVAL, NULL);
	rc = bv_client_safety_number(client, account, arg_device(req), out);
	return result(rc, rc == 0 ? json_pack("{s:s}", "number", out) : NULL);
}

static json_t *
op_create(json_t *req)
{
	const char *case_id = arg_str(req, "case_id");
	const char *me = bv_client_account(client);

	if (!case_id)
		return result(BV_EINVAL, NULL);
	/* A citizen starts a team conversation naming only themselves. */
	return result(bv_client_conversation_create(client, case_id, "team",
						    &me, 1, on_created, NULL),
		      NULL);
}

static json_t *
dispatch(json_t *req)
{
	const char *op = arg_str(req, "op");

	if (!op)
		return result(BV_EINVAL, NULL);
	if (strcmp(op, "open") == 0)
		return op_open(req);
	if (!client)
		return result(BV_EINVAL, NULL);
	if (strcmp(op, "enroll") == 0) {
		const char *token = arg_str(req, "token");

		return result(token ? bv_client_enroll(client, token)
				    : BV_EINVAL,
			      NULL);
	}
	if (strcmp(op, "connect") == 0)
		return result(bv_client_connect(client), NULL);
	if (strcmp(op, "whoami") == 0)
		return op_whoami();
	if (strcmp(op, "cases") == 0)
		return op_cases();
	if (strcmp(op, "refresh") == 0)
		return result(bv_client_refresh_cases(client), NULL);
	if (strcmp(op, "conversations") == 0)
		return op_conversations();
	if (strcmp(op, "history") == 0)
		return op_history(req);
	if (strcmp(op, "send") == 0)
		return op_send(req);
	if (strcmp(op, "send_email") == 0)
		return op_send_email(req);
	if (strcmp(op, "send_files") == 0)
		return op_send_files(req);
	if (strcmp(op, "fetch_attachment") == 0)
		return op_fetch_attachment(req);
	if (strcmp(op, "notify_set") == 0)
		return op_notify_set(req);
	if (strcmp(op, "read") == 0)
		return op_read(req);
	if (strcmp(op, "accept") == 0) {
		const char *account = arg_str(req, "account");

		return result(
			account ? bv_client_accept_identity(client, account,
							    arg_device(req))
				: BV_EINVAL,
			NULL);
	}
	if (strcmp(op, "safety") == 0)
		return op_safety(req);
	if (strcmp(op, "create") == 0)
		return op_create(req);
	if (strcmp(op, "close") == 0) {
		/* A borrowed loop: close, let the loop run what closing
		 * left (the shim's uv_run), then free. */
		bv_client_close(client);
		uv_run(&loop, UV_RUN_DEFAULT);
		bv_client_free(client);
		client = NULL;
		return result(0, NULL);
	}
	return result(BV_EINVAL, NULL);
}

/*
 * Once, before the first call does anything: the loop (the shim's: browser
 * timers) for every client of the page; and, before the first JSON, jansson
 * seeds its hash tables from
 * /dev/urandom, which the web build has no file system for, and otherwise
 * from the clock; libsodium's randombytes is crypto.getRandomValues().
 */
static void
init_once(void)
{
	static int done;
	uint32_t seed = 0;

	if (done)
		return;
	done = 1;
	uv_loop_init(&loop);
	if (sodium_init() >= 0)
		randombytes_buf(&seed, sizeof(seed));
	json_object_seed(seed ? seed : 1);
}

EMSCRIPTEN_KEEPALIVE const char *
bvw_call(const char *request)
{
	json_error_t err;
	json_t *req;

	init_once();
	req = json_loads(request ? request : "", JSON_REJECT_DUPLICATES, &err);
	json_t *r =
		json_is_object(req) ? dispatch(req) : result(BV_EJSON, NULL);

	json_decref(req);
	free(answer);
	answer = r ? json_dumps(r, JSON_COMPACT) : NULL;
	json_decref(r);
	return answer ? answer : "{\"rc\":-1,\"error\":\"out of memory\"}";
}

EMSCRIPTEN_KEEPALIVE int
bvw_preload(const uint8_t *img, size_t len)
{
	return bv_store_mem_preload(STORE_PATH, len ? img : NULL, len);
}

EMSCRIPTEN_KEEPALIVE double
bvw_generation(void)
{
	return (double)bv_store_mem_generation(STORE_PATH);
}

EMSCRIPTEN_KEEPALIVE uint8_t *
bvw_image(size_t *len)
{
	uint8_t *img = NULL;

	*len = 0;
	if (bv_store_mem_image(STORE_PATH, &img, len) != 0)
		return NULL;
	return img;
}
