/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * client.c: libbvchat's public API (bvchat.h) on the internal modules:
 * enrollment and prekey upload, fan-out sends with the BV_EDEVICES and
 * BV_ESTALE repairs, durable receive before the ack, and the callbacks.
 * It does not speak the wire or touch libsignal itself (conn.c, wire.c,
 * session.c do). Not yet: resend requests, sending receipts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <uv.h>

#include "bv_error.h"
#include "bv_util.h"
#include "conn.h"
#include "content.h"
#include "crypto.h"
#include "session.h"
#include "store.h"
#include "wire.h"

#include "bvchat.h"

/* The credentials live in the sealed session table under a name that is
 * never a uuid (store.h has no key-value API). */
#define CRED_NAME     "bvchat.credentials"
#define CRED_DEVICE   1
#define CRED_LEN      (BV_UUID_LEN + 4 + crypto_sign_SECRETKEYBYTES)
#define PREKEY_TARGET 100
#define TICK_MS	      100
#define RETRY_MS      500
/* Only used to generate the identity before the relay gives an account. */
#define NO_ACCOUNT "00000000-0000-4000-8000-000000000000"

struct send_op {
	struct bv_client *c;
	struct send_op *next;
	char mid[BV_MESSAGE_ID_MAX + 1];
	struct bv_content *content;
	char (*accounts)[BV_UUID_LEN + 1]; /* [0] is our own */
	int *prefetched;
	size_t n_accounts;
	int64_t seq;
	unsigned attempts;
	unsigned inflight; /* requests not answered yet */
	uint64_t retry_at; /* mono ms; 0: none */
	int fatal;	   /* a fetch failed for good */
};

/* One keys_get. */
struct fetch {
	struct bv_client *c;
	struct send_op *op; /* NULL for accept_identity */
	int accept;
	char account[BV_UUID_LEN + 1];
	uint32_t device;
};

struct bv_client {
	struct bv_client_opts o;
	uv_loop_t own_loop;
	uv_loop_t *loop;
	int own;
	uv_timer_t tick;
	int tick_init;
	struct bv_store *store;
	signal_context *sctx;
	struct bv_session *session;
	struct bv_conn *conn;
	char account[BV_UUID_LEN + 1];
	uint32_t device;
	uint8_t sk[crypto_sign_SECRETKEYBYTES];
	int enrolled;  /* credentials stored */
	int enrolling; /* enroll sent, not yet authed */
	int closed;
	unsigned inflight; /* requests of the client itself (keys_put…) */
	struct send_op *ops;
};

static void op_advance(struct send_op *op);

static void
report(struct bv_client *c, int code, const char *mid, const char *what)
{
	bv_log(BV_LOG_WARN, "bvchat: %s%s%s: %s", what, mid ? " " : "",
	       mid ? mid : "", bv_errname(code));
	if (c->o.on_error)
		c->o.on_error(c, c->o.user, code, mid, what);
}

static void
status(struct bv_client *c, enum bv_client_status st, int code)
{
	if (c->o.on_status)
		c->o.on_status(c, c->o.user, st, code);
}

const char *
bv_client_strerror(int code)
{
	return bv_strerror(code);
}

/* ---- credentials ---- */

static int
cred_save(struct bv_client *c)
{
	uint8_t rec[CRED_LEN];
	int rc;

	memcpy(rec, c->account, BV_UUID_LEN);
	rec[BV_UUID_LEN] = (uint8_t)(c->device >> 24);
	rec[BV_UUID_LEN + 1] = (uint8_t)(c->device >> 16);
	rec[BV_UUID_LEN + 2] = (uint8_t)(c->device >> 8);
	rec[BV_UUID_LEN + 3] = (uint8_t)c->device;
	memcpy(rec + BV_UUID_LEN + 4, c->sk, sizeof(c->sk));
	rc = bv_store_session_store(c->store, CRED_NAME, CRED_DEVICE, rec,
				    sizeof(rec), NULL, 0);
	bv_wipe(rec, sizeof(rec));
	return rc;
}

/* Loads stored credentials; 0 with c->enrolled set or left 0. */
static int
cred_load(struct bv_client *c)
{
	uint8_t *rec = NULL, *user = NULL;
	size_t len = 0, ulen = 0;
	int found = 0, rc;

	rc = bv_store_session_load(c->store, CRED_NAME, CRED_DEVICE, &rec, &len,
				   &user, &ulen, &found);
	if (rc < 0 || !found)
		goto out;
	if (len != CRED_LEN) {
		rc = BV_EIO;
		goto out;
	}
	memcpy(c->account, rec, BV_UUID_LEN);
	c->account[BV_UUID_LEN] = '\0';
	c->device = (uint32_t)rec[BV_UUID_LEN] << 24 |
		    (uint32_t)rec[BV_UUID_LEN + 1] << 16 |
		    (uint32_t)rec[BV_UUID_LEN + 2] << 8 |
		    (uint32_t)rec[BV_UUID_LEN + 3];
	memcpy(c->sk, rec + BV_UUID_LEN + 4, sizeof(c->sk));
	if (!bv_uuid_valid(c->account)) {
		rc = BV_EIO;
		goto out;
	}
	c->enrolled = 1;
out:
	if (rec)
		bv_wipe(rec, len);
	bv_free(rec);
	bv_free(user);
	return rc;
}

/* ---- prekeys ---- */

static void
on_keys_put(void *arg, int rc, const struct bv_wire_msg *m)
{
	struct bv_client *c = arg;
	int first = c->enrolling;

	(void)m;
	c->inflight--;
	if (c->closed)
		return;
	if (rc < 0) {
		report(c, rc, NULL, "prekey upload failed");
		return;
	}
	if (first) {
		c->enrolling = 0;
		status(c, BV_CLIENT_ENROLLED, 0);
	}
}

static int
upload_prekeys(struct bv_client *c, size_t n, int with_signed)
{
	struct bv_session_keys *k = NULL;
	char *frame = NULL;
	int64_t id;
	int rc;

	rc = bv_session_keys_new(c->session, n, with_signed, &k);
	if (rc < 0)
		goto out;
	id = conn__next_id(c->conn);
	rc = bv_wire_build_keys_put(
		id, k->has_signed_prekey ? &k->signed_prekey : NULL,
		k->has_signed_prekey ? k->signed_prekey_signature : NULL,
		k->one_time, k->n_one_time, &frame);
	if (rc < 0)
		goto out;
	rc = conn__request(c->conn, id, frame, on_keys_put, c);
	if (rc == 0)
		c->inflight++;
out:
	bv_free(frame);
	bv_session_keys_free(k);
	return rc;
}

/* ---- connection events ---- */

static int
finish_enroll(struct bv_client *c)
{
	int rc;

	snprintf(c->account, sizeof(c->account), "%s", conn__account(c->conn));
	c->device = conn__device(c->conn);
	rc = bv_session_new(c->store, c->sctx, c->account, c->device,
			    &c->session);
	if (rc < 0)
		return rc;
	rc = cred_save(c);
	if (rc < 0)
		return rc;
	c->enrolled = 1;
	return upload_prekeys(c, PREKEY_TARGET, 1);
}

static void
on_event(void *ud, enum bv_conn_event ev, int code)
{
	struct bv_client *c = ud;
	int rc;

	if (c->closed)
		return;
	switch (ev) {
	case BV_CONN_CONNECTED:
		break;
	case BV_CONN_AUTHED:
		if (c->enrolling && !c->enrolled) {
			rc = finish_enroll(c);
		} else if (c->enrolling && !c->inflight) {
			/* The first upload was lost with the connection. */
			rc = upload_prekeys(c, PREKEY_TARGET, 1);
		} else {
			rc = 0;
		}
		if (rc < 0)
			report(c, rc, NULL, "enrollment not finished");
		status(c, BV_CLIENT_ONLINE, 0);
		break;
	case BV_CONN_DISCONNECTED:
		status(c, BV_CLIENT_OFFLINE, code);
		break;
	case BV_CONN_DISPLACED:
		status(c, BV_CLIENT_DISPLACED, code);
		break;
	case BV_CONN_AUTH_FAILED:
		c->enrolling = 0;
		report(c, code, NULL, "relay refused the credentials");
		status(c, BV_CLIENT_REFUSED, code);
		break;
	}
}

static void
on_queue_empty(void *ud)
{
	struct bv_client *c = ud;

	if (!c->closed)
		status(c, BV_CLIENT_CAUGHT_UP, 0);
}

static void
on_prekeys_low(void *ud, uint32_t count)
{
	struct bv_client *c = ud;
	int rc;

	if (c->closed || !c->session || count >= PREKEY_TARGET)
		return;
	rc = upload_prekeys(c, PREKEY_TARGET - count, 0);
	if (rc < 0)
		report(c, rc, NULL, "prekey refill failed");
}

static void
deliver_content(struct bv_client *c, const struct bv_wire_msg *m,
		const struct bv_content *ct)
{
	const char *ids[BV_CONTENT_IDS_MAX];
	size_t i;

	switch (ct->kind) {
	case BV_CONTENT_TEXT:
		if (c->o.on_message)
			c->o.on_message(
				c, c->o.user, ct->conversation,
				m->u.deliver.sender, m->u.deliver.sender_device,
				m->u.deliver.message_id, m->u.deliver.timestamp,
				ct->text, ct->text_len);
		break;
	case BV_CONTENT_RECEIPT:
		for (i = 0; i < ct->n_ids && i < BV_CONTENT_IDS_MAX; i++)
			ids[i] = ct->ids[i];
		if (c->o.on_receipt)
			c->o.on_receipt(c, c->o.user, ct->conversation,
					m->u.deliver.sender,
					m->u.deliver.sender_device,
					ct->receipt == BV_RECEIPT_READ
						? BV_CLIENT_RECEIPT_READ
						: BV_CLIENT_RECEIPT_DELIVERED,
					ids, i);
		break;
	case BV_CONTENT_RESEND_REQUEST:
		/* Not implemented yet: logged, the sender may try again. */
		report(c, BV_EINTERNAL, m->u.deliver.message_id,
		       "resend request ignored (not supported yet)");
		break;
	default:
		report(c, BV_EFIELD, m->u.deliver.message_id,
		       "message of a kind this version cannot show");
		break;
	}
}

static int
on_deliver(void *ud, const struct bv_wire_msg *m)
{
	struct bv_client *c = ud;
	struct bv_session_envelope env;
	enum bv_session_result res;
	struct bv_content *ct = NULL;
	int rc;

	if (c->closed || !c->session)
		return BV_EUNAVAILABLE;
	memset(&env, 0, sizeof(env));
	env.sender = m->u.deliver.sender;
	env.sender_device = m->u.deliver.sender_device;
	env.message_id = m->u.deliver.message_id;
	env.type = m->u.deliver.type;
	env.timestamp_ms = m->u.deliver.timestamp;
	env.body = m->u.deliver.body;
	env.body_len = m->u.deliver.body_len;
	rc = bv_session_receive(c->session, &env, &res, &ct, NULL);
	if (rc < 0) {
		bv_log(BV_LOG_ERR, "bvchat: cannot store %s: %s",
		       m->u.deliver.message_id, bv_errname(rc));
		return rc; /* not acked: it comes again */
	}
	switch (res) {
	case BV_SESSION_OK:
		deliver_content(c, m, ct);
		break;
	case BV_SESSION_DUPLICATE:
		break;
	case BV_SESSION_UNTRUSTED:
		if (c->o.on_key_changed)
			c->o.on_key_changed(c, c->o.user, m->u.deliver.sender,
					    m->u.deliver.sender_device);
		report(c, BV_EAUTH, m->u.deliver.message_id,
		       "message under a changed identity key not read");
		break;
	case BV_SESSION_UNDECRYPTABLE:
		report(c, BV_EINTERNAL, m->u.deliver.message_id,
		       "message could not be decrypted");
		break;
	case BV_SESSION_MALFORMED:
		report(c, BV_EFIELD, m->u.deliver.message_id,
		       "message content is malformed");
		break;
	}
	bv_content_free(ct);
	return 0;
}

/* ---- sending ---- */

static void
op_free(struct send_op *op)
{
	struct send_op **pp;

	if (!op)
		return;
	for (pp = &op->c->ops; *pp; pp = &(*pp)->next)
		if (*pp == op) {
			*pp = op->next;
			break;
		}
	bv_content_free(op->content);
	bv_free(op->accounts);
	bv_free(op->prefetched);
	bv_free(op);
}

static void
op_finish(struct send_op *op, int rc, const char *what)
{
	struct bv_client *c = op->c;
	char mid[BV_MESSAGE_ID_MAX + 1];

	memcpy(mid, op->mid, sizeof(mid));
	if (op->seq > 0)
		bv_store_history_set_state(c->store, op->seq,
					   rc == 0 ? BV_MSG_SENT
						   : BV_MSG_FAILED);
	op_free(op);
	if (rc < 0)
		report(c, rc, mid, what);
	if (c->o.on_sent)
		c->o.on_sent(c, c->o.user, mid, rc);
}

static void
on_fetch(void *arg, int rc, const struct bv_wire_msg *m)
{
	struct fetch *f = arg;
	struct bv_client *c = f->c;
	struct send_op *op = f->op;
	enum bv_trust *trust = NULL;
	size_t i, n;

	if (op)
		op->inflight--;
	else
		c->inflight--;
	if (c->closed)
		goto out;
	if (rc == 0 && f->accept) {
		if (m->u.ok.n_bundles != 1 ||
		    m->u.ok.bundles[0].device != f->device)
			rc = BV_EFIELD;
		if (rc == 0)
			rc = bv_session_accept_identity(
				c->session, f->account, f->device,
				m->u.ok.bundles[0].identity_key);
	}
	n = rc == 0 ? m->u.ok.n_bundles : 0;
	if (n) {
		trust = bv_calloc(n, sizeof(*trust));
		rc = trust ? bv_session_process_bundles(c->session, f->account,
							m->u.ok.bundles, n,
							trust)
			   : BV_ENOMEM;
	}
	if (rc < 0) {
		report(c, rc, op ? op->mid : NULL, "fetching keys failed");
		if (op)
			op->fatal = rc;
		goto out;
	}
	for (i = 0; i < n; i++)
		if (trust[i] == BV_TRUST_CHANGED && c->o.on_key_changed)
			c->o.on_key_changed(c, c->o.user, f->account,
					    m->u.ok.bundles[i].device);
out:
	bv_free(trust);
	bv_free(f);
	if (!op)
		return;
	if (c->closed) {
		if (!op->inflight)
			op_free(op);
		return;
	}
	if (!op->inflight) {
		if (op->fatal)
			op_finish(op, op->fatal, "recipient keys unavailable");
		else
			op_advance(op);
	}
}

/* Starts a keys_get of account (device 0: all). */
static int
fetch(struct bv_client *c, struct send_op *op, const char *account,
      uint32_t device, int accept)
{
	struct fetch *f;
	char *frame = NULL;
	int64_t id;
	int rc;

	f = bv_calloc(1, sizeof(*f));
	if (!f)
		return BV_ENOMEM;
	f->c = c;
	f->op = op;
	f->accept = accept;
	f->device = device;
	snprintf(f->account, sizeof(f->account), "%s", account);
	id = conn__next_id(c->conn);
	rc = bv_wire_build_keys_get(id, account, device, &frame);
	if (rc == 0)
		rc = conn__request(c->conn, id, frame, on_fetch, f);
	bv_free(frame);
	if (rc < 0) {
		bv_free(f);
		return rc;
	}
	if (op)
		op->inflight++;
	else
		c->inflight++;
	return 0;
}

static void
op_retry_later(struct send_op *op, int64_t after_ms)
{
	if (after_ms < RETRY_MS)
		after_ms = RETRY_MS;
	if (after_ms > 10000)
		after_ms = 10000;
	op->retry_at = bv_mono_ms() + (uint64_t)after_ms;
}

/* Repairs after BV_EDEVICES/BV_ESTALE: drops sessions, fetches bundles. */
static int
op_repair(struct send_op *op, const struct bv_wire_devlists *drop,
	  const struct bv_wire_devlists *get)
{
	struct bv_client *c = op->c;
	size_t i, j;
	int rc;

	for (i = 0; drop && i < drop->n; i++)
		for (j = 0; j < drop->items[i].n_devices; j++) {
			rc = bv_store_session_delete(
				c->store, drop->items[i].account,
				(int32_t)drop->items[i].devices[j], NULL);
			if (rc < 0)
				return rc;
		}
	for (i = 0; get && i < get->n; i++)
		for (j = 0; j < get->items[i].n_devices; j++) {
			rc = fetch(c, op, get->items[i].account,
				   get->items[i].devices[j], 0);
			if (rc < 0)
				return rc;
		}
	return 0;
}

static void
on_send(void *arg, int rc, const struct bv_wire_msg *m)
{
	struct send_op *op = arg;
	struct bv_client *c = op->c;
	int r;

	op->inflight--;
	if (c->closed) {
		if (!op->inflight)
			op_free(op);
		return;
	}
	if (rc == 0) {
		op_finish(op, 0, NULL);
		return;
	}
	op->attempts++;
	if (op->attempts >= BV_CLIENT_SEND_ATTEMPTS) {
		op_finish(op, rc, "message given up after repeated attempts");
		return;
	}
	if (rc == BV_EDEVICES && m) {
		r = op_repair(op, &m->u.error.extra, &m->u.error.missing);
	} else if (rc == BV_ESTALE && m) {
		/* A reinstall: the old sessions are useless. */
		r = op_repair(op, &m->u.error.stale, &m->u.error.stale);
	} else if (bv_err_retryable(rc)) {
		op_retry_later(op, m ? m->u.error.retry_after_ms : 0);
		return;
	} else {
		op_finish(op, rc, "relay refused the message");
		return;
	}
	if (r < 0 && !op->inflight) {
		if (bv_err_retryable(r)) {
			op_retry_later(op, 0);
			return;
		}
		op_finish(op, r, "cannot fetch recipient keys");
		return;
	}
	if (r < 0)
		op->fatal = r;
	if (!op->inflight)
		op_advance(op);
}

/* Encrypts for every device we have a session with and sends. */
static int
op_send(struct send_op *op)
{
	struct bv_client *c = op->c;
	struct bv_session_recipient *r = NULL;
	struct bv_session_outgoing *o = NULL;
	int32_t *ids = NULL;
	size_t n = 0, cap = 0, i, j, nd;
	char *frame = NULL;
	int64_t id;
	int rc = 0;

	for (i = 0; i < op->n_accounts; i++) {
		rc = bv_store_session_devices(c->store, op->accounts[i], &ids,
					      &nd);
		if (rc < 0)
			goto out;
		for (j = 0; j < nd; j++) {
			if (i == 0 && (uint32_t)ids[j] == c->device)
				continue;
			if (n == cap) {
				void *p;

				cap = cap ? cap * 2 : 8;
				p = bv_realloc(r, cap * sizeof(*r));
				if (!p) {
					rc = BV_ENOMEM;
					goto out;
				}
				r = p;
			}
			r[n].account = op->accounts[i];
			r[n].device = (uint32_t)ids[j];
			r[n].registration_id = 0;
			n++;
		}
		bv_free(ids);
		ids = NULL;
	}
	if (n == 0 || n > BV_WIRE_MAX_ITEMS) {
		rc = n ? BV_ETOOMANY : BV_ENOKEYS;
		goto out;
	}
	rc = bv_session_encrypt(c->session, op->content, r, n, &o);
	if (rc < 0)
		goto out;
	id = conn__next_id(c->conn);
	rc = bv_wire_build_send(id, op->mid, o->envs, o->n, &frame);
	if (rc < 0)
		goto out;
	rc = conn__request(c->conn, id, frame, on_send, op);
	if (rc == 0)
		op->inflight++;
out:
	bv_free(frame);
	bv_session_outgoing_free(o);
	bv_free(ids);
	bv_free(r);
	return rc;
}

/* Next step of a send with nothing in flight: fetch keys, or send. */
static void
op_advance(struct send_op *op)
{
	struct bv_client *c = op->c;
	int32_t *ids = NULL;
	size_t i, nd = 0;
	int rc = 0;

	/* Accounts we have no session with at all: fetch every device. */
	for (i = 1; i < op->n_accounts; i++) {
		if (op->prefetched[i])
			continue;
		op->prefetched[i] = 1;
		rc = bv_store_session_devices(c->store, op->accounts[i], &ids,
					      &nd);
		bv_free(ids);
		ids = NULL;
		if (rc == 0 && nd == 0)
			rc = fetch(c, op, op->accounts[i], 0, 0);
		if (rc < 0)
			break;
	}
	if (rc == 0 && !op->inflight)
		rc = op_send(op);
	if (rc == 0)
		return;
	if (bv_err_retryable(rc) &&
	    op->attempts + 1 < BV_CLIENT_SEND_ATTEMPTS) {
		op->attempts++;
		if (!op->inflight)
			op_retry_later(op, 0);
		return;
	}
	if (op->inflight)
		op->fatal = rc;
	else
		op_finish(op, rc, "message could not be sent");
}

static void
on_tick(uv_timer_t *t)
{
	struct bv_client *c = t->data;
	struct send_op *op, *next;
	uint64_t now = bv_mono_ms();

	/* Offline sends wait for the connection without using attempts. */
	if (!conn__ready(c->conn))
		return;
	for (op = c->ops; op; op = next) {
		next = op->next;
		if (op->retry_at && op->retry_at <= now && !op->inflight) {
			op->retry_at = 0;
			op_advance(op);
		}
	}
}

int
bv_client_send_text(struct bv_client *c, const char *conversation,
		    const char *const *recipient_accounts, size_t n,
		    const char *text,
		    char message_id_out[BV_CLIENT_MESSAGE_ID_LEN + 1])
{
	struct send_op *op = NULL;
	size_t i, j, k;
	int rc;

	if (!c || !conversation || !recipient_accounts || !text ||
	    !message_id_out || n == 0 || n > 100 || c->closed)
		return BV_EINVAL;
	if (!c->enrolled || !c->session)
		return BV_ENOAUTH;
	for (i = 0; i < n; i++)
		if (!recipient_accounts[i] ||
		    !bv_uuid_valid(recipient_accounts[i]))
			return BV_EINVAL;
	op = bv_calloc(1, sizeof(*op));
	if (!op)
		return BV_ENOMEM;
	op->c = c;
	op->accounts = bv_calloc(n + 1, sizeof(*op->accounts));
	op->prefetched = bv_calloc(n + 1, sizeof(*op->prefetched));
	if (!op->accounts || !op->prefetched) {
		rc = BV_ENOMEM;
		goto out;
	}
	memcpy(op->accounts[0], c->account, BV_UUID_LEN + 1);
	k = 1;
	for (i = 0; i < n; i++) {
		for (j = 0; j < k; j++)
			if (!strcmp(op->accounts[j], recipient_accounts[i]))
				break;
		if (j == k)
			memcpy(op->accounts[k++], recipient_accounts[i],
			       BV_UUID_LEN + 1);
	}
	op->n_accounts = k;
	bv_uuid_generate(op->mid);
	rc = bv_content_text_new(conversation, op->mid, bv_now_ms(), text,
				 strlen(text), &op->content);
	if (rc < 0) {
		rc = BV_EINVAL;
		goto out;
	}
	rc = bv_store_history_append(c->store, conversation, BV_MSG_OUT,
				     c->account, (int32_t)c->device, op->mid,
				     bv_now_ms(), (const uint8_t *)text,
				     strlen(text), BV_MSG_SENDING, &op->seq);
	if (rc < 0)
		goto out;
	memcpy(message_id_out, op->mid, BV_CLIENT_MESSAGE_ID_LEN + 1);
	op->next = c->ops;
	c->ops = op;
	/* Failures from here on are reported through the callbacks, later:
	 * a callback never runs inside the call that started it. */
	op->retry_at = bv_mono_ms();
	return 0;
out:
	bv_content_free(op->content);
	bv_free(op->accounts);
	bv_free(op->prefetched);
	bv_free(op);
	return rc;
}

int
bv_client_accept_identity(struct bv_client *c, const char *account,
			  uint32_t device)
{
	if (!c || !account || !bv_uuid_valid(account) || device == 0 ||
	    device > 2147483647u || !c->session || c->closed)
		return BV_EINVAL;
	if (!conn__ready(c->conn))
		return BV_EUNAVAILABLE;
	return fetch(c, NULL, account, device, 1);
}

/* ---- life cycle ---- */

int
bv_client_new(const struct bv_client_opts *opts, struct bv_client **out)
{
	struct bv_client *c = NULL;
	struct bv_conn_cfg cfg;
	struct bv_conn_cbs cbs;
	int rc;

	if (!opts || !out || !opts->store_path || !opts->store_key ||
	    !opts->relay_host || opts->relay_port <= 0 ||
	    opts->relay_port > 65535)
		return BV_EINVAL;
	if (sodium_init() < 0)
		return BV_EINTERNAL;
	c = bv_calloc(1, sizeof(*c));
	if (!c)
		return BV_ENOMEM;
	c->o = *opts;
	c->o.store_path = NULL;
	c->o.store_key = NULL;
	c->o.relay_host = NULL;
	if (opts->loop) {
		c->loop = opts->loop;
	} else {
		if (uv_loop_init(&c->own_loop) != 0) {
			bv_free(c);
			return BV_EINTERNAL;
		}
		c->loop = &c->own_loop;
		c->own = 1;
	}
	uv_timer_init(c->loop, &c->tick);
	c->tick.data = c;
	c->tick_init = 1;
	uv_timer_start(&c->tick, on_tick, TICK_MS, TICK_MS);

	rc = bv_store_open(opts->store_path, opts->store_key, &c->store);
	if (rc < 0)
		goto out;
	rc = bv_signal_context_new(&c->sctx);
	if (rc < 0)
		goto out;
	rc = cred_load(c);
	if (rc < 0)
		goto out;
	if (c->enrolled) {
		rc = bv_session_new(c->store, c->sctx, c->account, c->device,
				    &c->session);
		if (rc < 0)
			goto out;
	}
	memset(&cfg, 0, sizeof(cfg));
	cfg.host = opts->relay_host;
	cfg.port = opts->relay_port;
	cfg.loop = c->loop;
	cfg.backoff_min_ms = 200;
	cfg.backoff_max_ms = 30000;
	cfg.connect_timeout_s = 10;
	memset(&cbs, 0, sizeof(cbs));
	cbs.ud = c;
	cbs.on_event = on_event;
	cbs.on_deliver = on_deliver;
	cbs.on_queue_empty = on_queue_empty;
	cbs.on_prekeys_low = on_prekeys_low;
	rc = conn__new(&cfg, &cbs, &c->conn);
	if (rc < 0)
		goto out;
	*out = c;
	c = NULL;
out:
	bv_client_free(c);
	return rc;
}

void
bv_client_close(struct bv_client *c)
{
	if (!c || c->closed)
		return;
	c->closed = 1;
	if (c->conn)
		conn__close(c->conn);
	if (c->tick_init) {
		uv_timer_stop(&c->tick);
		uv_close((uv_handle_t *)&c->tick, NULL);
		c->tick_init = 0;
	}
}

/* Runs the own loop until its handles are closed, bounded. */
static void
drain(struct bv_client *c)
{
	uint64_t deadline = bv_mono_ms() + 5000;

	while (uv_run(c->loop, UV_RUN_NOWAIT) && bv_mono_ms() < deadline)
		;
}

void
bv_client_free(struct bv_client *c)
{
	if (!c)
		return;
	bv_client_close(c);
	if (c->own)
		drain(c);
	conn__free(c->conn);
	if (c->own) {
		drain(c);
		uv_loop_close(&c->own_loop);
	}
	while (c->ops)
		op_free(c->ops);
	bv_session_free(c->session);
	if (c->sctx)
		signal_context_destroy(c->sctx);
	bv_store_close(c->store);
	bv_wipe(c->sk, sizeof(c->sk));
	bv_free(c);
}

/* Enrolls this store's device; replaces 0 adds a device, else re-enrolls
 * that device of the token's account (a reinstall). */
static int
enroll_start(struct bv_client *c, const char *token, uint32_t replaces)
{
	struct bv_session *tmp = NULL;
	uint8_t key[BV_KEY_LEN], pk[crypto_sign_PUBLICKEYBYTES];
	uint32_t reg = 0;
	int rc;

	if (!c || !token || !*token || c->closed)
		return BV_EINVAL;
	if (c->enrolled || c->enrolling)
		return BV_EALREADY;
	/* The identity is made (and stored) on first use of the session
	 * layer; the account is not known yet, so a stand-in is used. */
	rc = bv_session_new(c->store, c->sctx, NO_ACCOUNT, 1, &tmp);
	if (rc == 0)
		rc = bv_session_identity(tmp, key, &reg);
	bv_session_free(tmp);
	if (rc < 0)
		return rc;
	crypto_sign_keypair(pk, c->sk);
	rc = conn__set_enroll(c->conn, token, reg, key, c->sk, replaces);
	if (rc < 0)
		return rc;
	rc = conn__start(c->conn);
	if (rc < 0)
		return rc;
	c->enrolling = 1;
	return 0;
}

int
bv_client_enroll(struct bv_client *c, const char *token)
{
	return enroll_start(c, token, 0);
}

int
bv_client_enroll_replacing(struct bv_client *c, const char *token,
			   uint32_t device)
{
	if (device == 0 || device > 2147483647u)
		return BV_EINVAL;
	return enroll_start(c, token, device);
}

int
bv_client_connect(struct bv_client *c)
{
	int rc;

	if (!c || c->closed || !c->enrolled)
		return BV_EINVAL;
	rc = conn__set_auth(c->conn, c->account, c->device, c->sk);
	if (rc < 0)
		return rc;
	return conn__start(c->conn);
}

const char *
bv_client_account(const struct bv_client *c)
{
	return c && c->enrolled ? c->account : "";
}

uint32_t
bv_client_device(const struct bv_client *c)
{
	return c && c->enrolled ? c->device : 0;
}

int
bv_client_run_once(struct bv_client *c)
{
	if (!c)
		return BV_EINVAL;
	uv_run(c->loop, UV_RUN_ONCE);
	return 0;
}
