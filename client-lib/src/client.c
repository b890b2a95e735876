/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * client.c: libbvchat's public API (bvchat.h) on the internal modules:
 * enrollment and prekey upload, fan-out sends with the BV_EDEVICES and
 * BV_ESTALE repairs, durable receive before the ack, receipts, resend
 * requests (asking for and honouring them), messages held while a changed
 * identity key waits for the user, unsent messages sent again after a
 * restart, and the callbacks. It does not speak the wire or touch libsignal
 * itself (conn.c, wire.c, session.c do).
 *
 * Every send is a struct send_op: one content in one case conversation,
 * fanned out to every device of its accounts and of our own. A text's
 * accounts are the conversation's members in the case view, corrected by
 * the relay's 409 (a member who joined is added, one who left dropped);
 * receipts and resend requests are "partial": for one account, plus the
 * conversation's archive and our own. The user's texts have a history
 * entry whose state follows the op, internal ones (receipts, resend
 * requests, resends) are quiet: no bv_sent_cb. Receipts and resend
 * requests are gathered per peer for one tick, then sent as one content of
 * up to BV_CONTENT_IDS_MAX ids.
 *
 * The case view (the relay's `cases`) is kept in memory and in the store,
 * fetched after each connect, per case on cases_changed, and whenever a
 * send meets a conversation or a member the view does not know; one
 * request at a time.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "bv_error.h"
#include "bv_util.h"
#include "conn.h"
#include "content.h"
#include "crypto.h"
#include "http_transport.h"
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
/* The signed prekey is replaced when older than this (opts: 0). */
#define SIGNED_MAX_AGE_MS (7LL * 24 * 3600 * 1000)
/* How often a long-lived connection checks that age, at most. */
#define ROTATE_CHECK_MS (3600LL * 1000)
#define TICK_MS		100
#define RETRY_MS	500
/* Only used to generate the identity before the relay gives an account. */
#define NO_ACCOUNT "00000000-0000-4000-8000-000000000000"
/* The history's sender of notices from the service: never an account. */
#define NOTICE_SENDER "service"

struct send_op {
	struct bv_client *c;
	struct send_op *next;
	char mid[BV_MESSAGE_ID_MAX + 1];
	struct bv_content *content;
	char conversation[BV_UUID_LEN + 1];
	/* Receipts, resend requests: for target only (and the archive's and
	 * our own devices, which every send must reach). */
	int partial;
	char target[BV_UUID_LEN + 1];
	int resolved; /* the view's members were added */
	/* Waits for the full view refresh of this number (one that started
	 * after the op asked) to end; 0: not waiting. */
	uint64_t wait_gen;
	char (*accounts)[BV_UUID_LEN + 1]; /* [0] is our own */
	int *prefetched;
	size_t n_accounts, cap_accounts;
	int64_t seq; /* history entry whose state follows; 0: none */
	int quiet;   /* internal: no bv_sent_cb */
	/* A resend request: fetch this device's bundle first, so that the
	 * request goes over a fresh session (device 0: none). */
	char fresh_account[BV_UUID_LEN + 1];
	uint32_t fresh_device;
	int held; /* a recipient's key changed: waits for acceptance */
	unsigned attempts;
	unsigned inflight; /* requests not answered yet */
	uint64_t retry_at; /* mono ms; 0: none */
	int fatal;	   /* a fetch failed for good */
};

/*
 * Receipt or resend request ids gathered for one peer until the next tick.
 * Receipts: per (conversation, account, type). Resend requests: per
 * (account, device); wait_trust ones (the sender's key changed) wait for
 * bv_client_accept_identity().
 */
struct pending {
	struct pending *next;
	enum bv_content_kind kind; /* RECEIPT or RESEND_REQUEST */
	enum bv_receipt_type receipt;
	char conversation[BV_UUID_LEN + 1];
	char account[BV_UUID_LEN + 1];
	uint32_t device;
	int wait_trust;
	size_t n;
	char ids[BV_CONTENT_IDS_MAX][BV_MESSAGE_ID_MAX + 1];
};

/* One case of the view, and its dump (what the store holds). */
struct vcase {
	struct bv_wire_case c;
	char *json;
};

/* One conversation_create. */
struct create_req {
	struct bv_client *c;
	bv_conversation_created_cb cb;
	void *arg;
	char case_id[BV_UUID_LEN + 1];
};

/* One notify_set. */
struct notify_req {
	struct bv_client *c;
	bv_notify_set_cb cb;
	void *arg;
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
	uv_timer_t kick; /* runs new sends on the next loop turn */
	int kick_init;
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
	int64_t signed_max_age_ms;
	uint64_t rotate_check_at; /* mono ms */
	int rotating;		  /* a new signed prekey is being uploaded */
	int rotate_again;	  /* the last one was not confirmed */
	int refilling;		  /* a refill's keys_put is on its way */
	int refill_again;	  /* prekeys_low came meanwhile */
	struct send_op *ops;
	struct pending *pending;
	/* The case view, ordered by case id. */
	struct vcase *view;
	size_t n_view;
	/* Its refreshes: one cases request at a time. A full refresh pages
	 * through every case (pages gathered in acc); single ones follow
	 * cases_changed. */
	int cv_inflight;
	int cv_want_full;
	int cv_full_running;
	struct vcase *cv_acc;
	size_t cv_n_acc;
	char (*cv_queue)[BV_UUID_LEN + 1];
	size_t cv_n_queue;
	uint64_t cv_started; /* full refreshes started (numbers them) */
	uint64_t cv_running; /* the number of the one on its way */
	uint64_t cv_gen;     /* the number of the last one that ended */
	int cv_rc;	     /* how it ended */
	/* Attachments: messages whose files are being uploaded, fetches on
	 * their way, the spool (store_path + ".spool") and the HTTP base. */
	struct att_up *att_ups;
	struct att_fetch *att_fetches;
	char *spool_dir;
	char *http_base;
};

/*
 * For tests only (not in bvchat.h, not exported by libbvchat.so): called
 * with each content just before it is encrypted, so that a test can make a
 * client misbehave as a modified one would (21-client-cases: content that
 * claims another conversation than the one it is sent in).
 */
void (*client__test_content)(struct bv_content *ct);

static void op_advance(struct send_op *op);
static void att_pump(struct bv_client *c);
struct att_rows;
static int entry_content(struct bv_client *c, const struct bv_history_entry *e,
			 struct bv_content **out);
static size_t att_out(const struct bv_content *ct, int outgoing,
		      const struct att_rows *r,
		      struct bv_client_attachment *out);
static int att_resume(struct bv_client *c, struct bv_content *ct, int64_t seq);
static int view_is_staff(const struct bv_client *c, const char *conversation,
			 int *days);
static int64_t add_working_days(int64_t now_ms, int days);
static int op_start(struct bv_client *c, struct bv_content *content,
		    const char *target, int64_t seq, int quiet,
		    struct send_op **out);
static void cases_want_full(struct bv_client *c);
static void cases_want_one(struct bv_client *c, const char *case_id);
static void cases_pump(struct bv_client *c);
static int op_index(const struct send_op *op, const char *account);
static int op_add_account(struct send_op *op, const char *account);
static void op_drop_account(struct send_op *op, size_t i);
static void op_record(struct send_op *op);
static void op_view_stale(struct send_op *op);
static int op_resolve(struct send_op *op);
static int pending_add(struct bv_client *c, enum bv_content_kind kind,
		       enum bv_receipt_type receipt, const char *conversation,
		       const char *account, uint32_t device, int wait_trust,
		       const char *id);
static void pending_flush(struct bv_client *c);
static void on_kick(uv_timer_t *t);

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

/* One keys_put; signed_id: the signed prekey in it, 0 for a refill (one-time
 * prekeys only, after prekeys_low). */
struct upload {
	struct bv_client *c;
	uint32_t signed_id;
};

static int upload_prekeys(struct bv_client *c, size_t n, int with_signed);

/* A refill answered: keys taken while it was on its way are topped up
 * once more, from the stock the relay reports. */
static void
refill_done(struct bv_client *c, int rc, const struct bv_wire_msg *m)
{
	int again = c->refill_again;

	c->refilling = 0;
	c->refill_again = 0;
	if (rc < 0 || !again || !m ||
	    !(m->u.ok.fields & BV_WIRE_OK_ONE_TIME_COUNT) ||
	    m->u.ok.one_time_count >= PREKEY_TARGET)
		return;
	rc = upload_prekeys(c, PREKEY_TARGET - m->u.ok.one_time_count, 0);
	if (rc < 0)
		report(c, rc, NULL, "prekey refill failed");
}

static void
on_keys_put(void *arg, int rc, const struct bv_wire_msg *m)
{
	struct upload *u = arg;
	struct bv_client *c = u->c;
	uint32_t signed_id = u->signed_id;
	int first = c->enrolling, r;

	bv_free(u);
	c->inflight--;
	if (signed_id)
		c->rotating = 0;
	if (c->closed)
		return;
	if (!signed_id)
		refill_done(c, rc, m);
	if (rc < 0) {
		if (signed_id && !first)
			c->rotate_again = 1;
		report(c, rc, NULL, "prekey upload failed");
		return;
	}
	if (signed_id) {
		/* The relay hands out the new one now: older ones can go. */
		r = bv_session_signed_confirmed(c->session, signed_id);
		if (r < 0)
			report(c, r, NULL, "cannot record the signed prekey");
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
	struct upload *u = NULL;
	char *frame = NULL;
	int64_t id;
	int rc;

	u = bv_calloc(1, sizeof(*u));
	if (!u)
		return BV_ENOMEM;
	u->c = c;
	rc = bv_session_keys_new(c->session, n, with_signed, &k);
	if (rc < 0)
		goto out;
	u->signed_id = k->has_signed_prekey ? k->signed_prekey.id : 0;
	id = conn__next_id(c->conn);
	rc = bv_wire_build_keys_put(
		id, k->has_signed_prekey ? &k->signed_prekey : NULL,
		k->has_signed_prekey ? k->signed_prekey_signature : NULL,
		k->one_time, k->n_one_time, &frame);
	if (rc < 0)
		goto out;
	rc = conn__request(c->conn, id, frame, on_keys_put, u);
	if (rc == 0) {
		c->inflight++;
		if (!with_signed)
			c->refilling = 1;
		u = NULL;
	}
out:
	bv_free(u);
	bv_free(frame);
	bv_session_keys_free(k);
	return rc;
}

/* Replaces the signed prekey when it is old, or the last new one was not
 * confirmed by the relay. */
static void
maybe_rotate(struct bv_client *c)
{
	int64_t age = 0;
	int rc;

	if (!c->session || c->enrolling || c->rotating || !conn__ready(c->conn))
		return;
	if (!c->rotate_again) {
		rc = bv_session_signed_age(c->session, bv_now_ms(), &age);
		if (rc < 0 || age < c->signed_max_age_ms)
			return;
	}
	c->rotate_again = 0;
	rc = upload_prekeys(c, 0, 1);
	if (rc == 0) {
		c->rotating = 1;
	} else {
		c->rotate_again = 1;
		report(c, rc, NULL, "signed prekey rotation failed");
	}
}

/* ---- the case view ---- */

static void
vcases_free(struct vcase *v, size_t n)
{
	size_t i;

	for (i = 0; v && i < n; i++) {
		bv_wire_case_cleanup(&v[i].c);
		bv_free(v[i].json);
	}
	bv_free(v);
}

static int
view_load_cb(const char *case_id, const char *view, size_t len, void *arg)
{
	struct bv_client *c = arg;
	struct vcase *v;
	int rc;

	(void)case_id;
	v = bv_realloc(c->view, (c->n_view + 1) * sizeof(*v));
	if (!v)
		return BV_ENOMEM;
	c->view = v;
	v = &c->view[c->n_view];
	memset(v, 0, sizeof(*v));
	rc = bv_wire_case_parse(view, len, &v->c);
	if (rc == 0)
		rc = bv_wire_case_dump(&v->c, &v->json);
	if (rc < 0) {
		bv_wire_case_cleanup(&v->c);
		bv_free(v->json);
		/* A row we cannot read is dropped: the relay sends it again. */
		bv_log(BV_LOG_WARN, "bvchat: stored case %s unreadable: %s",
		       case_id, bv_errname(rc));
		return rc == BV_ENOMEM ? rc : 0;
	}
	c->n_view++;
	return 0;
}

/* The conversation in the view, or NULL. */
static const struct bv_wire_conv *
view_conv(const struct bv_client *c, const char *conversation)
{
	size_t i, j;

	for (i = 0; i < c->n_view; i++)
		for (j = 0; j < c->view[i].c.n_conversations; j++)
			if (!strcmp(c->view[i].c.conversations[j].conversation,
				    conversation))
				return &c->view[i].c.conversations[j];
	return NULL;
}

/* 1 when account is a member of conversation in the view. */
static int
view_has_member(const struct bv_client *c, const char *conversation,
		const char *account)
{
	const struct bv_wire_conv *cv = view_conv(c, conversation);
	size_t i;

	for (i = 0; cv && i < cv->n_members; i++)
		if (!strcmp(cv->members[i].account, account))
			return 1;
	return 0;
}

/* Moves a case answered by the relay into v (its dump made). */
static int
vcase_take(struct vcase *v, struct bv_wire_case *from)
{
	memset(v, 0, sizeof(*v));
	v->c = *from;
	memset(from, 0, sizeof(*from));
	return bv_wire_case_dump(&v->c, &v->json);
}

static int
vcase_same(const struct vcase *a, const struct vcase *b)
{
	return !strcmp(a->json, b->json);
}

/*
 * Ops that waited for the view try again: the conversation is there now,
 * or the refresh ended and it is not (then they fail).
 */
static void
view_release(struct bv_client *c)
{
	struct send_op *op;

	for (op = c->ops; op; op = op->next)
		if (op->wait_gen && op->wait_gen <= c->cv_gen &&
		    !op->inflight) {
			op->retry_at = bv_mono_ms();
			if (c->kick_init)
				uv_timer_start(&c->kick, on_kick, 0, 0);
		}
}

static void
cases_report(struct bv_client *c, int changed, int rc)
{
	if (c->o.on_cases)
		c->o.on_cases(c, c->o.user, changed, rc);
}

/* A full refresh ended with every page in c->cv_acc: store, then swap. */
static void
cases_full_done(struct bv_client *c)
{
	struct vcase *acc = c->cv_acc;
	size_t n = c->cv_n_acc, i;
	int changed = n != c->n_view, rc;

	c->cv_acc = NULL;
	c->cv_n_acc = 0;
	rc = bv_store_begin(c->store);
	if (rc == 0)
		rc = bv_store_case_delete(c->store, NULL);
	for (i = 0; rc == 0 && i < n; i++)
		rc = bv_store_case_put(c->store, acc[i].c.case_id, acc[i].json,
				       strlen(acc[i].json));
	if (rc == 0)
		rc = bv_store_commit(c->store);
	else
		bv_store_rollback(c->store);
	if (rc < 0) {
		/* Kept in memory anyway: sends need the relay's view. */
		report(c, rc, NULL, "cannot store the case view");
	}
	for (i = 0; !changed && i < n; i++)
		changed = !vcase_same(&acc[i], &c->view[i]);
	vcases_free(c->view, c->n_view);
	c->view = acc;
	c->n_view = n;
	c->cv_rc = 0;
	c->cv_gen = c->cv_running;
	view_release(c);
	cases_report(c, changed, 0);
}

/* One case answered (or not: it is gone from our view). */
static void
cases_one_done(struct bv_client *c, const char *case_id,
	       struct bv_wire_case *answer)
{
	struct vcase v, *nv;
	size_t i;
	int changed = 1, rc = 0;

	memset(&v, 0, sizeof(v));
	if (answer) {
		rc = vcase_take(&v, answer);
		if (rc < 0) {
			cases_report(c, 0, rc);
			goto out;
		}
	}
	for (i = 0; i < c->n_view; i++)
		if (strcmp(c->view[i].c.case_id, case_id) >= 0)
			break;
	if (i < c->n_view && !strcmp(c->view[i].c.case_id, case_id)) {
		if (answer && vcase_same(&v, &c->view[i]))
			changed = 0;
		bv_wire_case_cleanup(&c->view[i].c);
		bv_free(c->view[i].json);
		if (answer) {
			c->view[i] = v;
			memset(&v, 0, sizeof(v));
		} else {
			memmove(&c->view[i], &c->view[i + 1],
				(c->n_view - i - 1) * sizeof(*c->view));
			c->n_view--;
		}
	} else if (answer) {
		nv = bv_realloc(c->view, (c->n_view + 1) * sizeof(*nv));
		if (!nv) {
			cases_report(c, 0, BV_ENOMEM);
			goto out;
		}
		c->view = nv;
		memmove(&c->view[i + 1], &c->view[i],
			(c->n_view - i) * sizeof(*c->view));
		c->view[i] = v;
		c->n_view++;
		memset(&v, 0, sizeof(v));
	} else {
		changed = 0;
	}
	if (changed) {
		rc = answer ? bv_store_case_put(c->store, case_id,
						c->view[i].json,
						strlen(c->view[i].json))
			    : bv_store_case_delete(c->store, case_id);
		if (rc < 0)
			report(c, rc, NULL, "cannot store the case view");
	}
	view_release(c);
	cases_report(c, changed, 0);
out:
	bv_wire_case_cleanup(&v.c);
	bv_free(v.json);
}

struct cases_req {
	struct bv_client *c;
	int full;
	char case_id[BV_UUID_LEN + 1]; /* single */
};

static void
on_cases_answer(void *arg, int rc, const struct bv_wire_msg *m)
{
	struct cases_req *q = arg;
	struct bv_client *c = q->c;
	struct bv_wire_msg *mm = (struct bv_wire_msg *)m;
	struct vcase *acc;
	size_t i, n;

	c->cv_inflight = 0;
	if (c->closed)
		goto out;
	if (rc == 0 && !(m->u.ok.fields & BV_WIRE_OK_CASES))
		rc = BV_EFIELD;
	if (rc < 0) {
		if (q->full) {
			c->cv_full_running = 0;
			vcases_free(c->cv_acc, c->cv_n_acc);
			c->cv_acc = NULL;
			c->cv_n_acc = 0;
			/* Offline: the next connect asks again; ops wait. */
			if (!bv_err_retryable(rc)) {
				c->cv_rc = rc;
				c->cv_gen = c->cv_running;
				view_release(c);
			} else {
				c->cv_want_full = 1;
			}
		}
		report(c, rc, NULL, "cannot fetch the case view");
		cases_report(c, 0, rc);
		goto out;
	}
	n = m->u.ok.n_cases;
	if (!q->full) {
		for (i = 0; i < n; i++)
			if (!strcmp(mm->u.ok.cases[i].case_id, q->case_id))
				break;
		cases_one_done(c, q->case_id,
			       i < n ? &mm->u.ok.cases[i] : NULL);
		goto out;
	}
	acc = bv_realloc(c->cv_acc, (c->cv_n_acc + n + 1) * sizeof(*acc));
	if (!acc) {
		rc = BV_ENOMEM;
		goto fail_full;
	}
	c->cv_acc = acc;
	for (i = 0; i < n; i++) {
		rc = vcase_take(&c->cv_acc[c->cv_n_acc++], &mm->u.ok.cases[i]);
		if (rc < 0)
			goto fail_full;
	}
	if (m->u.ok.more && n > 0) {
		/* The next page, after the last case of this one. */
		c->cv_full_running = 2;
		goto out;
	}
	c->cv_full_running = 0;
	cases_full_done(c);
	goto out;
fail_full:
	c->cv_full_running = 0;
	vcases_free(c->cv_acc, c->cv_n_acc);
	c->cv_acc = NULL;
	c->cv_n_acc = 0;
	c->cv_rc = rc;
	c->cv_gen = c->cv_running;
	view_release(c);
	report(c, rc, NULL, "cannot keep the case view");
	cases_report(c, 0, rc);
out:
	bv_free(q);
	if (!c->closed)
		cases_pump(c);
}

/* Starts the next cases request when connected and none is on its way. */
static void
cases_pump(struct bv_client *c)
{
	struct cases_req *q;
	const char *one = NULL, *after = NULL;
	char *frame = NULL;
	int64_t id;
	int rc;

	if (c->closed || c->cv_inflight || !c->session || !conn__ready(c->conn))
		return;
	if (c->cv_full_running == 2) {
		after = c->cv_acc[c->cv_n_acc - 1].c.case_id;
	} else if (c->cv_want_full) {
		c->cv_want_full = 0;
		c->cv_full_running = 1;
		c->cv_running = ++c->cv_started;
		vcases_free(c->cv_acc, c->cv_n_acc);
		c->cv_acc = NULL;
		c->cv_n_acc = 0;
		/* A full refresh covers the single ones asked so far. */
		c->cv_n_queue = 0;
	} else if (c->cv_n_queue) {
		one = c->cv_queue[0];
	} else {
		return;
	}
	q = bv_calloc(1, sizeof(*q));
	if (!q) {
		rc = BV_ENOMEM;
		goto fail;
	}
	q->c = c;
	q->full = !one;
	if (one) {
		memcpy(q->case_id, one, BV_UUID_LEN + 1);
		memmove(&c->cv_queue[0], &c->cv_queue[1],
			(c->cv_n_queue - 1) * sizeof(*c->cv_queue));
		c->cv_n_queue--;
	}
	id = conn__next_id(c->conn);
	rc = bv_wire_build_cases(id, one ? q->case_id : NULL, after, &frame);
	if (rc == 0)
		rc = conn__request(c->conn, id, frame, on_cases_answer, q);
	bv_free(frame);
	if (rc == 0) {
		c->cv_inflight = 1;
		return;
	}
	bv_free(q);
fail:
	/* Asked again on the next connect. */
	if (!one) {
		c->cv_full_running = 0;
		c->cv_want_full = 1;
	}
	report(c, rc, NULL, "cannot ask for the case view");
}

static void
cases_want_full(struct bv_client *c)
{
	c->cv_want_full = 1;
	cases_pump(c);
}

static void
cases_want_one(struct bv_client *c, const char *case_id)
{
	void *p;
	size_t i;

	if (c->cv_want_full)
		return;
	for (i = 0; i < c->cv_n_queue; i++)
		if (!strcmp(c->cv_queue[i], case_id))
			return;
	if (c->cv_n_queue >= 64) {
		/* Many changes at once: one full refresh is cheaper. */
		cases_want_full(c);
		return;
	}
	p = bv_realloc(c->cv_queue, (c->cv_n_queue + 1) * sizeof(*c->cv_queue));
	if (!p) {
		cases_want_full(c);
		return;
	}
	c->cv_queue = p;
	snprintf(c->cv_queue[c->cv_n_queue++], BV_UUID_LEN + 1, "%s", case_id);
	cases_pump(c);
}

static void
on_cases_changed(void *ud, const char *case_id)
{
	struct bv_client *c = ud;

	if (c->closed)
		return;
	if (case_id[0])
		cases_want_one(c, case_id);
	else
		cases_want_full(c);
}

int
bv_client_refresh_cases(struct bv_client *c)
{
	if (!c || c->closed)
		return BV_EINVAL;
	if (!c->session || !conn__ready(c->conn))
		return BV_EUNAVAILABLE;
	cases_want_full(c);
	return 0;
}

static int
people_out(const struct bv_wire_person *in, size_t n,
	   struct bv_client_person **out)
{
	size_t i;

	*out = NULL;
	if (!n)
		return 0;
	*out = bv_calloc(n, sizeof(**out));
	if (!*out)
		return BV_ENOMEM;
	for (i = 0; i < n; i++) {
		(*out)[i].account = in[i].account;
		(*out)[i].role = in[i].role;
		(*out)[i].name = in[i].name;
	}
	return 0;
}

int
bv_client_cases(struct bv_client *c, bv_client_case_cb cb, void *arg)
{
	struct bv_client_case_conversation *convs = NULL;
	struct bv_client_person *people = NULL;
	struct bv_client_case cs;
	size_t i, j, k;
	int rc = 0;

	if (!c || !cb)
		return BV_EINVAL;
	for (i = 0; rc == 0 && i < c->n_view; i++) {
		const struct bv_wire_case *w = &c->view[i].c;

		memset(&cs, 0, sizeof(cs));
		cs.case_id = w->case_id;
		cs.case_number = w->case_number;
		cs.municipality = w->municipality;
		cs.answer_days = w->answer_days;
		cs.role = w->role;
		rc = people_out(w->people, w->n_people, &people);
		if (rc == 0 && w->n_conversations) {
			convs = bv_calloc(w->n_conversations, sizeof(*convs));
			rc = convs ? 0 : BV_ENOMEM;
		}
		for (j = 0; rc == 0 && j < w->n_conversations; j++) {
			struct bv_client_person *m = NULL;

			convs[j].conversation =
				w->conversations[j].conversation;
			convs[j].kind = w->conversations[j].kind;
			convs[j].closed = w->conversations[j].closed;
			convs[j].created_ms = w->conversations[j].created;
			convs[j].n_members = w->conversations[j].n_members;
			rc = people_out(w->conversations[j].members,
					w->conversations[j].n_members, &m);
			convs[j].members = m;
		}
		cs.people = people;
		cs.n_people = w->n_people;
		cs.conversations = convs;
		cs.n_conversations = w->n_conversations;
		if (rc == 0)
			rc = cb(arg, &cs);
		for (k = 0; convs && k < w->n_conversations; k++)
			bv_free((void *)convs[k].members);
		bv_free(convs);
		bv_free(people);
		convs = NULL;
		people = NULL;
	}
	return rc;
}

static void
on_created(void *arg, int rc, const struct bv_wire_msg *m)
{
	struct create_req *q = arg;
	struct bv_client *c = q->c;

	c->inflight--;
	if (!c->closed) {
		if (rc == 0 && !(m->u.ok.fields & BV_WIRE_OK_CONVERSATION))
			rc = BV_EFIELD;
		if (rc == 0)
			cases_want_one(c, q->case_id);
		if (q->cb)
			q->cb(c, q->arg, rc == 0 ? m->u.ok.conversation : NULL,
			      rc);
	}
	bv_free(q);
}

/*
 * The end of a public call that asks the relay once: sends frame (built
 * with rc) as request id, answered through done(q), and counts it in
 * flight. Frees frame, and q when the request could not go. rc or 0.
 */
static int
ask_relay(struct bv_client *c, int64_t id, int rc, char *frame,
	  bv_conn_response_cb done, void *q)
{
	if (rc == 0)
		rc = conn__request(c->conn, id, frame, done, q);
	bv_free(frame);
	if (rc < 0) {
		bv_free(q);
		return rc;
	}
	c->inflight++;
	return 0;
}

int
bv_client_conversation_create(struct bv_client *c, const char *case_id,
			      const char *kind, const char *const *members,
			      size_t n, bv_conversation_created_cb cb,
			      void *arg)
{
	struct create_req *q;
	char *frame = NULL;
	int64_t id;
	int rc;

	if (!c || c->closed || !case_id || !bv_uuid_valid(case_id) || !kind ||
	    (n && !members) || n > 20)
		return BV_EINVAL;
	if (!c->enrolled || !c->session)
		return BV_ENOAUTH;
	if (!conn__ready(c->conn))
		return BV_EUNAVAILABLE;
	q = bv_calloc(1, sizeof(*q));
	if (!q)
		return BV_ENOMEM;
	q->c = c;
	q->cb = cb;
	q->arg = arg;
	snprintf(q->case_id, sizeof(q->case_id), "%s", case_id);
	id = conn__next_id(c->conn);
	rc = bv_wire_build_conversation_create(id, case_id, kind, members, n,
					       &frame);
	return ask_relay(c, id, rc, frame, on_created, q);
}

static void
on_notify_set(void *arg, int rc, const struct bv_wire_msg *m)
{
	struct notify_req *q = arg;
	struct bv_client *c = q->c;

	const char *key = NULL;

	c->inflight--;
	/* The key from the answer, else the one the relay's challenge
	 * gave (docs/protocol.md: either may carry it). */
	if (rc == 0)
		key = (m->u.ok.fields & BV_WIRE_OK_VAPID)
			      ? m->u.ok.vapid_public_key
			      : conn__webpush_key(c->conn);
	if (!c->closed && q->cb)
		q->cb(c, q->arg, key, rc);
	bv_free(q);
}

int
bv_client_notify_set(struct bv_client *c, const char *channel,
		     const char *language, const char *endpoint,
		     const char *p256dh, const char *auth, bv_notify_set_cb cb,
		     void *arg)
{
	struct notify_req *q;
	char *frame = NULL;
	int64_t id;
	int rc;

	if (!c || c->closed)
		return BV_EINVAL;
	/* The arguments are checked before anything else is. */
	rc = bv_wire_build_notify_set(1, channel, language, endpoint, p256dh,
				      auth, &frame);
	bv_free(frame);
	frame = NULL;
	if (rc < 0)
		return rc;
	if (!c->enrolled || !c->session)
		return BV_ENOAUTH;
	if (!conn__ready(c->conn))
		return BV_EUNAVAILABLE;
	q = bv_calloc(1, sizeof(*q));
	if (!q)
		return BV_ENOMEM;
	q->c = c;
	q->cb = cb;
	q->arg = arg;
	id = conn__next_id(c->conn);
	rc = bv_wire_build_notify_set(id, channel, language, endpoint, p256dh,
				      auth, &frame);
	return ask_relay(c, id, rc, frame, on_notify_set, q);
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
		maybe_rotate(c);
		/* Roster changes while we were away: the view again. */
		if (!c->closed && c->session)
			cases_want_full(c);
		/* What waited for the connection goes now. */
		if (c->kick_init)
			uv_timer_start(&c->kick, on_kick, 0, 0);
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
	/* The relay says so after every fetch below its mark: while the
	 * first upload or a refill is on its way the count is stale. */
	if (c->enrolling)
		return;
	if (c->refilling) {
		c->refill_again = 1;
		return;
	}
	rc = upload_prekeys(c, PREKEY_TARGET - count, 0);
	if (rc < 0)
		report(c, rc, NULL, "prekey refill failed");
}

/* ---- receiving ---- */

struct state_update {
	struct bv_client *c;
	const char *conversation; /* only messages of it; NULL: any */
	enum bv_msg_direction direction;
	enum bv_msg_state state;
};

/* Moves a message of ours forward (SENT → DELIVERED → READ), never back;
 * a read sync from our other device marks a received message READ. */
static int
state_update_cb(const struct bv_history_entry *e, void *arg)
{
	struct state_update *u = arg;
	int fwd;

	if (e->direction != u->direction ||
	    (u->conversation && strcmp(e->conversation, u->conversation)))
		return 0;
	if (e->direction == BV_MSG_OUT)
		fwd = (e->state == BV_MSG_SENDING || e->state == BV_MSG_SENT ||
		       e->state == BV_MSG_DELIVERED) &&
		      e->state < u->state;
	else
		fwd = e->state == BV_MSG_RECEIVED;
	if (fwd && bv_store_history_set_state(u->c->store, e->seq, u->state))
		return 1;
	return 0;
}

/* 1 when account is the archive (the case file) of conversation in the
 * stored case view. */
static int
is_case_archive(struct bv_client *c, const char *conversation,
		const char *account)
{
	const struct bv_wire_conv *cv = view_conv(c, conversation);
	size_t i;

	for (i = 0; cv && i < cv->n_members; i++)
		if (!strcmp(cv->members[i].account, account))
			return !strcmp(cv->members[i].role,
				       BV_CLIENT_ROLE_ARCHIVE);
	return 0;
}

/*
 * The case file has these messages. Believed only from the conversation's
 * archive account as the case view names it: anyone else claiming it would
 * tell a family something untrue about their case file.
 */
static void
on_journaled(struct bv_client *c, const struct bv_wire_msg *m,
	     const struct bv_content *ct)
{
	const char *ids[BV_CONTENT_IDS_MAX];
	size_t i;

	if (strcmp(m->u.deliver.conversation, ct->conversation) ||
	    !is_case_archive(c, ct->conversation, m->u.deliver.sender)) {
		report(c, BV_EFIELD, m->u.deliver.message_id,
		       "journaled receipt not from the case file: ignored");
		return;
	}
	for (i = 0; i < ct->n_ids && i < BV_CONTENT_IDS_MAX; i++) {
		ids[i] = ct->ids[i];
		if (bv_store_journaled_put(c->store, ct->ids[i], ct->journal,
					   m->u.deliver.timestamp) < 0)
			report(c, BV_EIO, ct->ids[i],
			       "cannot record a journaled receipt");
	}
	if (c->o.on_receipt)
		c->o.on_receipt(c, c->o.user, ct->conversation,
				m->u.deliver.sender, m->u.deliver.sender_device,
				BV_CLIENT_RECEIPT_JOURNALED, ids, i);
}

static void
on_receipt_content(struct bv_client *c, const struct bv_wire_msg *m,
		   const struct bv_content *ct)
{
	const char *ids[BV_CONTENT_IDS_MAX];
	struct state_update u;
	int own = !strcmp(m->u.deliver.sender, c->account);
	size_t i;

	if (own && ct->receipt == BV_RECEIPT_DELIVERED)
		return; /* our other device got a peer's message: not news */
	if (ct->receipt == BV_RECEIPT_JOURNALED) {
		on_journaled(c, m, ct);
		return;
	}
	u.c = c;
	u.conversation = ct->conversation;
	u.direction = own ? BV_MSG_IN : BV_MSG_OUT;
	u.state =
		ct->receipt == BV_RECEIPT_READ ? BV_MSG_READ : BV_MSG_DELIVERED;
	for (i = 0; i < ct->n_ids && i < BV_CONTENT_IDS_MAX; i++) {
		ids[i] = ct->ids[i];
		if (bv_store_history_find(c->store, ct->ids[i], state_update_cb,
					  &u) < 0)
			report(c, BV_EIO, ct->ids[i],
			       "cannot record a receipt");
	}
	if (c->o.on_receipt)
		c->o.on_receipt(c, c->o.user, ct->conversation,
				m->u.deliver.sender, m->u.deliver.sender_device,
				ct->receipt == BV_RECEIPT_READ
					? BV_CLIENT_RECEIPT_READ
					: BV_CLIENT_RECEIPT_DELIVERED,
				ids, i);
}

/*
 * Our outgoing messages in the history: a plain text is stored as its text
 * (as before issue 7); anything richer (an e-post) as a NUL byte and then
 * its unpadded content JSON. A text never starts with NUL (content.c), so
 * the two cannot be confused and old stores read as they did.
 */
static int
out_body_dump(const struct bv_content *ct, uint8_t **out, size_t *len)
{
	uint8_t *padded = NULL, *b;
	size_t plen = 0, n = 0;
	int rc;

	rc = bv_content_encode(ct, &padded, &plen);
	if (rc == 0)
		rc = bv_content_unpad(padded, plen, &n);
	if (rc == 0) {
		b = bv_malloc(n + 1);
		if (!b) {
			rc = BV_ENOMEM;
		} else {
			b[0] = 0;
			memcpy(b + 1, padded, n);
			*out = b;
			*len = n + 1;
		}
	}
	if (padded) {
		bv_wipe(padded, plen);
		bv_free(padded);
	}
	return rc;
}

/* The content of one of our outgoing history entries. */
static int
out_body_content(const struct bv_history_entry *e, struct bv_content **out)
{
	uint8_t *padded = NULL;
	size_t plen = 0;
	int rc;

	if (e->body_len == 0 || e->body[0] != 0)
		return bv_content_text_new(
			e->conversation, e->message_id, e->timestamp_ms,
			(const char *)e->body, e->body_len, out);
	rc = bv_content_pad(e->body + 1, e->body_len - 1, &padded, &plen);
	if (rc == 0)
		rc = bv_content_decode(padded, plen, out);
	if (padded) {
		bv_wipe(padded, plen);
		bv_free(padded);
	}
	return rc;
}

/* Finds the text this device sent under a message id. */
struct own_text {
	struct bv_client *c;
	int64_t seq;
	struct bv_content *content;
	int rc;
};

static int
own_text_cb(const struct bv_history_entry *e, void *arg)
{
	struct own_text *t = arg;

	if (e->direction != BV_MSG_OUT || strcmp(e->sender, t->c->account) ||
	    (uint32_t)e->sender_device != t->c->device)
		return 0;
	t->seq = e->seq;
	/* With its files' real blob ids and capabilities. */
	t->rc = entry_content(t->c, e, &t->content);
	return 1;
}

/* 1 when account was a recipient of our message seq (or is our own). */
static int
was_recipient(struct bv_client *c, int64_t seq, const char *account)
{
	char(*a)[BV_UUID_LEN + 1] = NULL;
	size_t i, n = 0;
	int yes = !strcmp(account, c->account);

	if (!yes && bv_store_out_recipients_get(c->store, seq, &a, &n) == 0)
		for (i = 0; i < n && !yes; i++)
			yes = !strcmp(a[i], account);
	bv_free(a);
	return yes;
}

/*
 * A peer device could not decrypt messages of ours: it has already built a
 * fresh session with us (the request came as a PreKey message), so each
 * listed text we sent is encrypted again and sent with its own id, to the
 * requester's account only. Only to an account the message was for.
 */
static void
honour_resend(struct bv_client *c, const struct bv_wire_msg *m,
	      const struct bv_content *ct)
{
	struct own_text t;
	size_t i;
	int rc;

	for (i = 0; i < ct->n_ids; i++) {
		memset(&t, 0, sizeof(t));
		t.c = c;
		rc = bv_store_history_find(c->store, ct->ids[i], own_text_cb,
					   &t);
		/* Only within the conversation it was asked in. */
		if (rc < 0 || !t.seq ||
		    (t.content && strcmp(t.content->conversation,
					 m->u.deliver.conversation)) ||
		    !was_recipient(c, t.seq, m->u.deliver.sender)) {
			/* Not ours, not theirs, or gone: nothing to resend. */
			bv_log(BV_LOG_INFO,
			       "bvchat: resend of %s not possible (%s)",
			       ct->ids[i], rc < 0 ? bv_errname(rc) : "unknown");
			bv_content_free(t.content);
			continue;
		}
		if (t.rc < 0) {
			report(c, t.rc, ct->ids[i], "cannot resend a message");
			continue;
		}
		rc = op_start(c, t.content, m->u.deliver.sender, 0, 1, NULL);
		if (rc < 0)
			report(c, rc, ct->ids[i], "cannot resend a message");
	}
}

/* The text and e-post members of a message as the API shows them;
 * pointers into ct. */
static void
message_fields(const struct bv_content *ct, struct bv_client_message *m)
{
	m->text = ct->text ? ct->text : "";
	m->text_len = ct->text_len;
	if (ct->kind != BV_CONTENT_EMAIL)
		return;
	m->subject = ct->subject;
	/* The first e-post of a thread is its own thread. */
	m->thread = ct->thread[0] ? ct->thread : ct->message_id;
	m->answer_by_ms = ct->answer_by_ms;
}

static void
deliver_content(struct bv_client *c, const struct bv_wire_msg *m,
		const struct bv_content *ct)
{
	struct bv_client_attachment atts[BV_CONTENT_ATTACHMENTS_MAX];
	int rc = 0;

	switch (ct->kind) {
	case BV_CONTENT_TEXT:
	case BV_CONTENT_EMAIL:
		if (strcmp(m->u.deliver.sender, c->account) &&
		    !c->o.no_delivery_receipts)
			rc = pending_add(c, BV_CONTENT_RECEIPT,
					 BV_RECEIPT_DELIVERED, ct->conversation,
					 m->u.deliver.sender, 0, 0,
					 m->u.deliver.message_id);
		if (rc < 0)
			report(c, rc, m->u.deliver.message_id,
			       "cannot send a delivery receipt");
		if (c->o.on_message_ex) {
			struct bv_client_message x;

			memset(&x, 0, sizeof(x));
			x.conversation = ct->conversation;
			x.sender = m->u.deliver.sender;
			x.sender_device = m->u.deliver.sender_device;
			x.message_id = m->u.deliver.message_id;
			x.time_ms = m->u.deliver.timestamp;
			x.state = BV_CLIENT_MSG_RECEIVED;
			message_fields(ct, &x);
			x.n_attachments = att_out(ct, 0, NULL, atts);
			x.attachments = x.n_attachments ? atts : NULL;
			c->o.on_message_ex(c, c->o.user, &x);
		} else if (c->o.on_message) {
			c->o.on_message(
				c, c->o.user, ct->conversation,
				m->u.deliver.sender, m->u.deliver.sender_device,
				m->u.deliver.message_id, m->u.deliver.timestamp,
				ct->text, ct->text_len);
		}
		break;
	case BV_CONTENT_RECEIPT:
		on_receipt_content(c, m, ct);
		break;
	case BV_CONTENT_RESEND_REQUEST:
		honour_resend(c, m, ct);
		break;
	default:
		report(c, BV_EFIELD, m->u.deliver.message_id,
		       "message of a kind this version cannot show");
		break;
	}
}

/* A notice as the API shows it; pointers into m. */
static void
notice_out(const struct bv_wire_msg *m, struct bv_client_notice *n)
{
	memset(n, 0, sizeof(*n));
	n->conversation = m->u.deliver.conversation;
	n->message_id = m->u.deliver.message_id;
	n->kind = m->u.deliver.notice_kind;
	n->time_ms = m->u.deliver.timestamp;
	n->municipality = m->u.deliver.municipality;
	n->phone = m->u.deliver.phone[0] ? m->u.deliver.phone : NULL;
	n->emergency_phone = m->u.deliver.emergency_phone;
}

/*
 * A notice from the service: stored in the history under NOTICE_SENDER
 * (not an account: no person said it), deduplicated by conversation and
 * message id, then shown; acknowledged after that like an envelope.
 */
static int
deliver_notice(struct bv_client *c, const struct bv_wire_msg *m)
{
	struct bv_client_notice n;
	char key[sizeof(NOTICE_SENDER) + BV_UUID_LEN + 1];
	char *json = NULL;
	int seen = 0, rc;

	/* The relay's notice ids are unique per conversation only. */
	snprintf(key, sizeof(key), "%s/%s", NOTICE_SENDER,
		 m->u.deliver.conversation);
	rc = bv_wire_notice_dump(m, &json);
	if (rc < 0)
		return rc;
	rc = bv_store_begin(c->store);
	if (rc < 0)
		goto out;
	rc = bv_store_seen(c->store, key, 0, m->u.deliver.message_id, &seen);
	if (rc == 0 && !seen)
		rc = bv_store_history_append(
			c->store, m->u.deliver.conversation, BV_MSG_IN,
			NOTICE_SENDER, 0, m->u.deliver.message_id,
			m->u.deliver.timestamp, (const uint8_t *)json,
			strlen(json), BV_MSG_RECEIVED, NULL);
	if (rc == 0)
		rc = bv_store_commit(c->store);
	else
		bv_store_rollback(c->store);
	if (rc < 0) {
		bv_log(BV_LOG_ERR, "bvchat: cannot store notice %s: %s",
		       m->u.deliver.message_id, bv_errname(rc));
		goto out; /* not acked: it comes again */
	}
	if (!seen && c->o.on_notice) {
		notice_out(m, &n);
		c->o.on_notice(c, c->o.user, &n);
	}
out:
	bv_free(json);
	return rc;
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
	if (m->u.deliver.notice)
		return deliver_notice(c, m);
	memset(&env, 0, sizeof(env));
	env.sender = m->u.deliver.sender;
	env.sender_device = m->u.deliver.sender_device;
	env.conversation = m->u.deliver.conversation;
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
		/* Asked for again once the user accepts the new key. */
		rc = pending_add(c, BV_CONTENT_RESEND_REQUEST, 0,
				 m->u.deliver.conversation, m->u.deliver.sender,
				 m->u.deliver.sender_device, 1,
				 m->u.deliver.message_id);
		if (c->o.on_key_changed)
			c->o.on_key_changed(c, c->o.user, m->u.deliver.sender,
					    m->u.deliver.sender_device);
		report(c, rc < 0 ? rc : BV_EUNTRUSTED, m->u.deliver.message_id,
		       "message under a changed identity key not read");
		break;
	case BV_SESSION_UNDECRYPTABLE:
		rc = pending_add(c, BV_CONTENT_RESEND_REQUEST, 0,
				 m->u.deliver.conversation, m->u.deliver.sender,
				 m->u.deliver.sender_device, 0,
				 m->u.deliver.message_id);
		report(c, rc < 0 ? rc : BV_EUNDECRYPTABLE,
		       m->u.deliver.message_id,
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
	int quiet;

	memcpy(mid, op->mid, sizeof(mid));
	if (op->seq > 0)
		bv_store_history_set_state(c->store, op->seq,
					   rc == 0 ? BV_MSG_SENT
						   : BV_MSG_FAILED);
	quiet = op->quiet;
	op_free(op);
	if (rc < 0)
		report(c, rc, mid, what);
	if (!quiet && c->o.on_sent)
		c->o.on_sent(c, c->o.user, mid, rc);
}

/* Parks op until bv_client_accept_identity() (said once per op). */
static void
op_hold(struct send_op *op)
{
	if (op->held == 1) {
		op->held = 2;
		report(op->c, BV_EUNTRUSTED, op->quiet ? NULL : op->mid,
		       "message held until the changed key is accepted");
	}
}

/* After an accepted key: held sends go on, waiting resend requests too. */
static void
release_held(struct bv_client *c, const char *account, uint32_t device)
{
	struct send_op *op, *next;
	struct pending *p;

	for (p = c->pending; p; p = p->next)
		if (p->wait_trust && p->device == device &&
		    !strcmp(p->account, account))
			p->wait_trust = 0;
	for (op = c->ops; op; op = next) {
		next = op->next;
		if (!op->held)
			continue;
		op->held = 0;
		if (!op->inflight)
			op->retry_at = bv_mono_ms();
	}
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
	if (rc == BV_ENOACCOUNT && op && !f->accept &&
	    op_index(op, f->account) > 0) {
		/* Not reachable (any more): not a member now. The relay's
		 * 409 says so if it is wrong. */
		bv_log(BV_LOG_INFO, "bvchat: %s: a member left the view",
		       op->mid);
		op_drop_account(op, (size_t)op_index(op, f->account));
		op_view_stale(op);
		rc = 0;
	}
	n = rc == 0 && m ? m->u.ok.n_bundles : 0;
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
	for (i = 0; i < n; i++) {
		if (trust[i] != BV_TRUST_CHANGED)
			continue;
		if (op && !op->held)
			op->held = 1;
		if (c->o.on_key_changed)
			c->o.on_key_changed(c, c->o.user, f->account,
					    m->u.ok.bundles[i].device);
	}
out:
	if (f->accept && !c->closed) {
		if (rc == 0)
			release_held(c, f->account, f->device);
		if (c->o.on_identity_accepted)
			c->o.on_identity_accepted(c, c->o.user, f->account,
						  f->device, rc);
	}
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
		else if (op->held)
			op_hold(op);
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

/* 1 when l names account. */
static int
devlists_has(const struct bv_wire_devlists *l, const char *account)
{
	size_t i;

	for (i = 0; l && i < l->n; i++)
		if (!strcmp(l->items[i].account, account))
			return 1;
	return 0;
}

/* 1 when every device we have a session with for x's account is in x:
 * everything we sent that account was refused. */
static int
devlist_covers(struct bv_client *c, const struct bv_wire_devlist *x)
{
	int32_t *ids = NULL;
	size_t nd = 0, i, j;
	int all = 1;

	if (bv_store_session_devices(c->store, x->account, &ids, &nd) < 0)
		return 0;
	for (i = 0; i < nd && all; i++) {
		for (j = 0; j < x->n_devices; j++)
			if ((uint32_t)ids[i] == x->devices[j])
				break;
		all = j < x->n_devices;
	}
	bv_free(ids);
	return all && nd > 0;
}

/*
 * Repairs after BV_EDEVICES/BV_ESTALE. drop: devices whose sessions go
 * (removed devices), except that an account all of whose devices are
 * refused, and that is not missing any, is no longer a recipient (a
 * caseworker who left the case): it is left out. get: devices to fetch;
 * an account we did not send to (a caseworker who joined) is added. The
 * case view is fetched again when the relay's set differs from it.
 */
static int
op_repair(struct send_op *op, const struct bv_wire_devlists *drop,
	  const struct bv_wire_devlists *get, int devices)
{
	struct bv_client *c = op->c;
	int stale = 0, rc, k;
	size_t i, j;

	for (i = 0; drop && i < drop->n; i++) {
		const struct bv_wire_devlist *x = &drop->items[i];

		k = op_index(op, x->account);
		if (devices && k > 0 && !devlists_has(get, x->account) &&
		    devlist_covers(c, x)) {
			op_drop_account(op, (size_t)k);
			stale = 1;
			continue;
		}
		for (j = 0; j < x->n_devices; j++) {
			rc = bv_store_session_delete(c->store, x->account,
						     (int32_t)x->devices[j],
						     NULL);
			if (rc < 0)
				return rc;
		}
	}
	for (i = 0; get && i < get->n; i++) {
		const struct bv_wire_devlist *y = &get->items[i];

		if (op_index(op, y->account) < 0) {
			k = op_add_account(op, y->account);
			if (k < 0)
				return k;
			op->prefetched[k] = 1; /* its devices follow */
			if (!op->partial && op->seq > 0) {
				const char *to[1] = {y->account};

				bv_store_out_recipients_put(c->store, op->seq,
							    to, 1);
			}
			if (!view_has_member(c, op->conversation, y->account))
				stale = 1;
		}
		for (j = 0; j < y->n_devices; j++) {
			rc = fetch(c, op, y->account, y->devices[j], 0);
			if (rc < 0)
				return rc;
		}
	}
	if (stale && !op->partial)
		op_view_stale(op);
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
		r = op_repair(op, &m->u.error.extra, &m->u.error.missing, 1);
	} else if (rc == BV_ESTALE && m) {
		/* A reinstall: the old sessions are useless. */
		r = op_repair(op, &m->u.error.stale, &m->u.error.stale, 0);
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
	if (n == 0 && op->n_accounts == 1) {
		/* Nobody else is left: a text's conversation is not ours
		 * (every member refused us); a receipt's target left. */
		op_finish(op, op->partial ? 0 : BV_ENOACCOUNT,
			  "no member of the conversation is reachable");
		goto out;
	}
	if (n == 0 || n > BV_WIRE_MAX_ITEMS) {
		rc = n ? BV_ETOOMANY : BV_ENOKEYS;
		goto out;
	}
	if (client__test_content)
		client__test_content(op->content);
	rc = bv_session_encrypt(c->session, op->content, r, n, &o);
	if (rc < 0)
		goto out;
	id = conn__next_id(c->conn);
	rc = bv_wire_build_send(id, op->conversation, op->partial, op->mid,
				o->envs, o->n, &frame);
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

	if (op->held) {
		op_hold(op);
		return;
	}
	if (!op->resolved) {
		rc = op_resolve(op);
		if (rc == 1)
			return; /* view_release() runs it again */
		if (rc < 0) {
			op_finish(op, rc, "conversation unknown or closed");
			return;
		}
	}
	if (op->partial && op_index(op, op->target) < 0) {
		/* Its one recipient left the conversation. */
		bv_log(BV_LOG_INFO, "bvchat: %s: recipient left", op->mid);
		op_finish(op, 0, NULL);
		return;
	}
	/* A resend request goes over a new session with that device. */
	if (op->fresh_device) {
		rc = fetch(c, op, op->fresh_account, op->fresh_device, 0);
		if (rc == 0)
			op->fresh_device = 0;
	}
	/* Accounts we have no session with at all: fetch every device. */
	for (i = 1; rc == 0 && i < op->n_accounts; i++) {
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

/* Sends that are due and have nothing in flight take their next step. */
static void
run_due(struct bv_client *c)
{
	struct send_op *op, *next;
	uint64_t now = bv_mono_ms();

	for (op = c->ops; op; op = next) {
		next = op->next;
		if (op->retry_at && op->retry_at <= now && !op->inflight) {
			op->retry_at = 0;
			op_advance(op);
		}
	}
}

static void
on_kick(uv_timer_t *t)
{
	struct bv_client *c = t->data;

	att_pump(c);
	if (conn__ready(c->conn))
		run_due(c);
}

static void
on_tick(uv_timer_t *t)
{
	struct bv_client *c = t->data;
	uint64_t now = bv_mono_ms();

	pending_flush(c);
	att_pump(c);
	/* Offline sends wait for the connection without using attempts. */
	if (!conn__ready(c->conn))
		return;
	if (now >= c->rotate_check_at) {
		int64_t every = c->signed_max_age_ms / 4;

		if (every > ROTATE_CHECK_MS)
			every = ROTATE_CHECK_MS;
		c->rotate_check_at =
			now + (uint64_t)(every > TICK_MS ? every : TICK_MS);
		maybe_rotate(c);
	}
	run_due(c);
}

/* Index of account in op, or -1. */
static int
op_index(const struct send_op *op, const char *account)
{
	size_t i;

	for (i = 0; i < op->n_accounts; i++)
		if (!strcmp(op->accounts[i], account))
			return (int)i;
	return -1;
}

/* Adds account to op once; returns its index or BV_ENOMEM. */
static int
op_add_account(struct send_op *op, const char *account)
{
	size_t cap;
	void *p;
	int i = op_index(op, account);

	if (i >= 0)
		return i;
	if (op->n_accounts == op->cap_accounts) {
		cap = op->cap_accounts ? op->cap_accounts * 2 : 8;
		p = bv_realloc(op->accounts, cap * sizeof(*op->accounts));
		if (!p)
			return BV_ENOMEM;
		op->accounts = p;
		p = bv_realloc(op->prefetched, cap * sizeof(*op->prefetched));
		if (!p)
			return BV_ENOMEM;
		op->prefetched = p;
		op->cap_accounts = cap;
	}
	memcpy(op->accounts[op->n_accounts], account, BV_UUID_LEN + 1);
	op->prefetched[op->n_accounts] = 0;
	return (int)op->n_accounts++;
}

/* Leaves account i (not our own) out of op. */
static void
op_drop_account(struct send_op *op, size_t i)
{
	if (i == 0 || i >= op->n_accounts)
		return;
	memmove(&op->accounts[i], &op->accounts[i + 1],
		(op->n_accounts - i - 1) * sizeof(*op->accounts));
	memmove(&op->prefetched[i], &op->prefetched[i + 1],
		(op->n_accounts - i - 1) * sizeof(*op->prefetched));
	op->n_accounts--;
}

/* Records op's accounts as the recipients of its text (what a resend
 * request is checked against). */
static void
op_record(struct send_op *op)
{
	const char **to;
	size_t i;
	int rc;

	if (op->seq <= 0 || op->n_accounts < 2)
		return;
	to = bv_calloc(op->n_accounts, sizeof(*to));
	if (!to) {
		report(op->c, BV_ENOMEM, op->mid, "cannot record recipients");
		return;
	}
	for (i = 1; i < op->n_accounts; i++)
		to[i - 1] = op->accounts[i];
	rc = bv_store_out_recipients_put(op->c->store, op->seq, to,
					 op->n_accounts - 1);
	if (rc < 0)
		report(op->c, rc, op->mid, "cannot record recipients");
	bv_free(to);
}

/* The view changed under op's conversation: fetch that case again. */
static void
op_view_stale(struct send_op *op)
{
	struct bv_client *c = op->c;
	size_t i, j;

	for (i = 0; i < c->n_view; i++)
		for (j = 0; j < c->view[i].c.n_conversations; j++)
			if (!strcmp(c->view[i].c.conversations[j].conversation,
				    op->conversation)) {
				cases_want_one(c, c->view[i].c.case_id);
				return;
			}
	cases_want_full(c);
}

/*
 * Adds the conversation's members from the case view (a partial op: its
 * archive accounts only). Returns 0 when done, 1 while it waits for a
 * refresh of the view (the conversation is not in it yet), or the BV_E*
 * code to give up with (BV_ENOACCOUNT: the relay's view has no such
 * conversation for us).
 */
static int
op_resolve(struct send_op *op)
{
	struct bv_client *c = op->c;
	const struct bv_wire_conv *cv = view_conv(c, op->conversation);
	size_t i;
	int rc;

	if (!cv && !op->partial) {
		if (!op->wait_gen) {
			/* Ask the relay once: it may be new. A refresh on its
			 * way may have been answered before it was made. */
			op->wait_gen = c->cv_started + 1;
			cases_want_full(c);
			return 1;
		}
		if (c->cv_gen < op->wait_gen)
			return 1;
		return c->cv_rc < 0 ? c->cv_rc : BV_ENOACCOUNT;
	}
	/* Without the view a partial op learns the archive from a 409. */
	for (i = 0; cv && i < cv->n_members; i++) {
		if (op->partial &&
		    strcmp(cv->members[i].role, BV_CLIENT_ROLE_ARCHIVE))
			continue;
		rc = op_add_account(op, cv->members[i].account);
		if (rc < 0)
			return rc;
	}
	op->wait_gen = 0;
	op->resolved = 1;
	if (!op->partial)
		op_record(op);
	return 0;
}

/*
 * Starts a send of content (owned from here on, also on error) in its
 * conversation: target NULL for a text to every member, else a partial
 * send for target (plus the archive and our own devices). seq: the
 * history entry whose state follows the send (0: none); quiet: no
 * bv_sent_cb. The first attempt is made on the next tick, in the order
 * ops were started: a callback never runs inside the call that started it.
 */
static int
op_start(struct bv_client *c, struct bv_content *content, const char *target,
	 int64_t seq, int quiet, struct send_op **out)
{
	struct send_op *op, **pp;

	op = bv_calloc(1, sizeof(*op));
	if (!op) {
		bv_content_free(content);
		return BV_ENOMEM;
	}
	op->c = c;
	op->content = content;
	op->seq = seq;
	op->quiet = quiet;
	snprintf(op->mid, sizeof(op->mid), "%s", content->message_id);
	snprintf(op->conversation, sizeof(op->conversation), "%s",
		 content->conversation);
	if (!bv_uuid_valid(op->conversation)) {
		op_free(op);
		return BV_EINVAL;
	}
	if (op_add_account(op, c->account) < 0 ||
	    (target && op_add_account(op, target) < 0)) {
		op_free(op);
		return BV_ENOMEM;
	}
	if (target) {
		op->partial = 1;
		snprintf(op->target, sizeof(op->target), "%s", target);
	}
	for (pp = &c->ops; *pp; pp = &(*pp)->next)
		;
	*pp = op;
	op->retry_at = bv_mono_ms();
	/* Not inside this call, but without waiting for the tick. */
	if (c->kick_init)
		uv_timer_start(&c->kick, on_kick, 0, 0);
	if (out)
		*out = op;
	return 0;
}

/* Adds id to the receipt or resend request gathered for a peer. */
static int
pending_add(struct bv_client *c, enum bv_content_kind kind,
	    enum bv_receipt_type receipt, const char *conversation,
	    const char *account, uint32_t device, int wait_trust,
	    const char *id)
{
	struct pending *p, **pp;
	size_t i;

	for (pp = &c->pending; (p = *pp); pp = &p->next) {
		if (p->kind != kind || p->receipt != receipt ||
		    p->device != device || p->wait_trust != wait_trust ||
		    strcmp(p->account, account) ||
		    (conversation && strcmp(p->conversation, conversation)))
			continue;
		for (i = 0; i < p->n; i++)
			if (!strcmp(p->ids[i], id))
				return 0;
		if (p->n < BV_CONTENT_IDS_MAX)
			break;
	}
	if (!p) {
		p = bv_calloc(1, sizeof(*p));
		if (!p)
			return BV_ENOMEM;
		p->kind = kind;
		p->receipt = receipt;
		p->device = device;
		p->wait_trust = wait_trust;
		snprintf(p->account, sizeof(p->account), "%s", account);
		if (conversation)
			snprintf(p->conversation, sizeof(p->conversation), "%s",
				 conversation);
		*pp = p;
	}
	snprintf(p->ids[p->n++], sizeof(p->ids[0]), "%s", id);
	return 0;
}

/* Sends what pending_add() gathered (not what waits for trust). */
static void
pending_flush(struct bv_client *c)
{
	const char *ids[BV_CONTENT_IDS_MAX];
	struct pending *p, **pp = &c->pending;
	struct bv_content *ct = NULL;
	char mid[BV_UUID_LEN + 1];
	struct send_op *op = NULL;
	size_t i;
	int rc;

	while ((p = *pp)) {
		if (p->wait_trust || !c->session) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		for (i = 0; i < p->n; i++)
			ids[i] = p->ids[i];
		bv_uuid_generate(mid);
		if (p->kind == BV_CONTENT_RECEIPT)
			rc = bv_content_receipt_new(p->conversation, mid,
						    bv_now_ms(), p->receipt,
						    ids, p->n, &ct);
		else
			rc = bv_content_resend_new(
				p->conversation, mid, bv_now_ms(),
				BV_RESEND_DECRYPT_FAILED, ids, p->n, &ct);
		if (rc == 0)
			rc = op_start(c, ct, p->account, 0, 1, &op);
		if (rc == 0 && p->kind == BV_CONTENT_RESEND_REQUEST) {
			memcpy(op->fresh_account, p->account, BV_UUID_LEN + 1);
			op->fresh_device = p->device;
		}
		if (rc < 0)
			report(c, rc, NULL,
			       p->kind == BV_CONTENT_RECEIPT
				       ? "cannot send a receipt"
				       : "cannot ask for a resend");
		bv_free(p);
	}
}

int
bv_client_send_text(struct bv_client *c, const char *conversation,
		    const char *text,
		    char message_id_out[BV_CLIENT_MESSAGE_ID_LEN + 1])
{
	struct bv_content *ct = NULL;
	char mid[BV_UUID_LEN + 1];
	int64_t seq = 0, now;
	int rc;

	if (!c || !conversation || !bv_uuid_valid(conversation) || !text ||
	    !message_id_out || c->closed)
		return BV_EINVAL;
	if (!c->enrolled || !c->session)
		return BV_ENOAUTH;
	bv_uuid_generate(mid);
	now = bv_now_ms();
	if (bv_content_text_new(conversation, mid, now, text, strlen(text),
				&ct) < 0)
		return BV_EINVAL;
	/* The text, durably: sent again after a crash. Its recipients are
	 * the conversation's members when it goes out. */
	rc = bv_store_history_append(c->store, conversation, BV_MSG_OUT,
				     c->account, (int32_t)c->device, mid, now,
				     (const uint8_t *)text, strlen(text),
				     BV_MSG_SENDING, &seq);
	if (rc < 0) {
		bv_content_free(ct);
		return rc;
	}
	rc = op_start(c, ct, NULL, seq, 0, NULL);
	if (rc < 0) {
		bv_store_history_set_state(c->store, seq, BV_MSG_FAILED);
		return rc;
	}
	memcpy(message_id_out, mid, BV_CLIENT_MESSAGE_ID_LEN + 1);
	return 0;
}

/* 1 when this account is staff (or the archive) on the case of
 * conversation in the view; *days: the case's answer_days (0: unknown). */
static int
view_is_staff(const struct bv_client *c, const char *conversation, int *days)
{
	static const char *const staff[] = {"caseworker", "team_lead",
					    "service_leader", "archive"};
	size_t i, j, k;

	*days = 0;
	for (i = 0; i < c->n_view; i++)
		for (j = 0; j < c->view[i].c.n_conversations; j++) {
			if (strcmp(c->view[i].c.conversations[j].conversation,
				   conversation))
				continue;
			*days = c->view[i].c.answer_days;
			for (k = 0; k < sizeof(staff) / sizeof(staff[0]); k++)
				if (!strcmp(c->view[i].c.role, staff[k]))
					return 1;
			return 0;
		}
	return 0;
}

/* now plus days working days (Monday–Friday, UTC weekdays), same time. */
static int64_t
add_working_days(int64_t now_ms, int days)
{
	int64_t t = now_ms;
	int wday;

	while (days > 0) {
		t += 86400000LL;
		/* 1970-01-01 was a Thursday (4). */
		wday = (int)((t / 86400000LL + 4) % 7);
		if (wday != 0 && wday != 6)
			days--;
	}
	return t;
}

int
bv_client_send_email(struct bv_client *c, const char *conversation,
		     const char *subject, const char *text, const char *thread,
		     int64_t answer_by_ms,
		     char message_id_out[BV_CLIENT_MESSAGE_ID_LEN + 1])
{
	struct bv_content_msg msg;
	struct bv_content *ct = NULL;
	char mid[BV_UUID_LEN + 1];
	uint8_t *body = NULL;
	size_t body_len = 0;
	int64_t seq = 0, now;
	int rc, days = 0;

	if (!c || !conversation || !bv_uuid_valid(conversation) || !subject ||
	    !text || !message_id_out || answer_by_ms < -1 || c->closed)
		return BV_EINVAL;
	if (!c->enrolled || !c->session)
		return BV_ENOAUTH;
	bv_uuid_generate(mid);
	now = bv_now_ms();
	if (answer_by_ms == 0) {
		/* A citizen's promise is the municipality's, not the app's. */
		if (!view_is_staff(c, conversation, &days))
			answer_by_ms = add_working_days(
				now, days ? days : BV_CLIENT_ANSWER_DAYS);
	} else if (answer_by_ms == -1) {
		answer_by_ms = 0;
	}
	memset(&msg, 0, sizeof(msg));
	msg.text = text;
	msg.text_len = strlen(text);
	msg.subject = subject;
	msg.subject_len = strlen(subject);
	msg.thread = thread && *thread ? thread : NULL;
	msg.answer_by_ms = answer_by_ms;
	rc = bv_content_message_new(conversation, mid, now, &msg, &ct);
	if (rc == BV_ENOMEM)
		return rc;
	if (rc < 0)
		return BV_EINVAL;
	rc = out_body_dump(ct, &body, &body_len);
	if (rc < 0) {
		bv_content_free(ct);
		return rc;
	}
	rc = bv_store_history_append(c->store, conversation, BV_MSG_OUT,
				     c->account, (int32_t)c->device, mid, now,
				     body, body_len, BV_MSG_SENDING, &seq);
	bv_wipe(body, body_len);
	bv_free(body);
	if (rc < 0) {
		bv_content_free(ct);
		return rc;
	}
	rc = op_start(c, ct, NULL, seq, 0, NULL);
	if (rc < 0) {
		bv_store_history_set_state(c->store, seq, BV_MSG_FAILED);
		return rc;
	}
	memcpy(message_id_out, mid, BV_CLIENT_MESSAGE_ID_LEN + 1);
	return 0;
}

/* ---- attachments (docs/protocol.md "Attachments") ---- */

/*
 * The store's attachments rows (bv_store_attachment_put) of a history
 * entry: ours are SPOOLED (no rec) until the relay has the file, then
 * UPLOADED with rec = blob id and download capability (ATT_REC_LEN
 * bytes); any is DOWNLOADED once bv_client_attachment_fetch() wrote it to
 * a file (rec kept). Theirs have no row until then. Our outgoing history
 * body holds the content with a placeholder blob and capability (the key,
 * digest, size, type and name are real): the real ones come from the rows
 * when the message goes out and when the history is read.
 */
enum { ATT_SPOOLED = 0, ATT_UPLOADED = 1, ATT_DOWNLOADED = 2 };
#define ATT_REC_LEN	    (BV_UUID_LEN + BV_CONTENT_CAP_LEN)
#define ATT_PLACEHOLDER_CAP "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

/* One message of ours whose files are on their way to the relay. */
struct att_up {
	struct bv_client *c; /* NULL: the client closed, free when idle */
	struct att_up *next;
	int64_t seq;
	char mid[BV_MESSAGE_ID_MAX + 1];
	struct bv_content *ct; /* owned; blob/download set when uploaded */
	int uploaded[BV_CONTENT_ATTACHMENTS_MAX];
	int created[BV_CONTENT_ATTACHMENTS_MAX]; /* upload[i] is good */
	char upload[BV_CONTENT_ATTACHMENTS_MAX][BV_CONTENT_CAP_LEN + 1];
	int busy; /* a blob_create or a PUT on its way */
	int cur;  /* its index */
	struct bv_http *http;
	unsigned attempts; /* failed uploads or retryable refusals */
	uint64_t retry_at; /* mono ms */
};

/* One bv_client_attachment_fetch(). */
struct att_fetch {
	struct bv_client *c; /* NULL: the client closed */
	struct att_fetch *next;
	struct bv_http *http;
	int64_t seq;
	int idx;
	int outgoing;
	char mid[BV_MESSAGE_ID_MAX + 1];
	struct bv_content_attachment a;
	char *dest;
	bv_attachment_fetched_cb cb;
	void *arg;
};

static void att_pump(struct bv_client *c);

static void
spool_path(const struct bv_client *c, const char *mid, int i, char *out,
	   size_t cap)
{
	snprintf(out, cap, "%s/%s.%d", c->spool_dir, mid, i);
}

static void
spool_remove(const struct bv_client *c, const char *mid, size_t n)
{
	char p[PATH_MAX];
	size_t i;

	for (i = 0; i < n; i++) {
		spool_path(c, mid, (int)i, p, sizeof(p));
		unlink(p);
	}
}

/* Writes len bytes to path through path.tmp, fsync and rename (mode
 * 0600): a reader sees the whole file or none. */
static int
file_write_atomic(const char *path, const uint8_t *buf, size_t len)
{
	char tmp[PATH_MAX];
	size_t off = 0;
	ssize_t w;
	int fd, rc = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.bvpart", path) >= (int)sizeof(tmp))
		return BV_EINVAL;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return BV_EIO;
	while (off < len) {
		w = write(fd, buf + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			rc = BV_EIO;
			break;
		}
		off += (size_t)w;
	}
	if (rc == 0 && fsync(fd) < 0)
		rc = BV_EIO;
	if (close(fd) < 0)
		rc = BV_EIO;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = BV_EIO;
	if (rc < 0)
		unlink(tmp);
	return rc;
}

/* Reads a whole regular file of at most max bytes. */
static int
file_read(const char *path, uint64_t max, uint8_t **out, size_t *len)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t off = 0, n;
	ssize_t r;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return BV_EINVAL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return BV_EINVAL;
	}
	if ((uint64_t)st.st_size > max) {
		close(fd);
		return BV_EBLOB_SIZE;
	}
	n = (size_t)st.st_size;
	buf = bv_malloc(n ? n : 1);
	if (!buf) {
		close(fd);
		return BV_ENOMEM;
	}
	while (off < n) {
		r = read(fd, buf + off, n - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = BV_EIO;
			break;
		}
		off += (size_t)r;
	}
	close(fd);
	if (rc < 0) {
		bv_wipe(buf, n);
		bv_free(buf);
		return rc;
	}
	*out = buf;
	*len = n;
	return 0;
}

static void
hex_encode(const uint8_t *in, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = d[in[i] >> 4];
		out[2 * i + 1] = d[in[i] & 15];
	}
	out[2 * n] = 0;
}

static int
hex_decode32(const char *hex, uint8_t out[32])
{
	size_t i;
	int hi, lo;

	for (i = 0; i < 32; i++) {
		hi = hex[2 * i];
		lo = hex[2 * i + 1];
		hi = hi >= '0' && hi <= '9'   ? hi - '0'
		     : hi >= 'a' && hi <= 'f' ? hi - 'a' + 10
					      : -1;
		lo = lo >= '0' && lo <= '9'   ? lo - '0'
		     : lo >= 'a' && lo <= 'f' ? lo - 'a' + 10
					      : -1;
		if (hi < 0 || lo < 0)
			return BV_EFIELD;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

/* The rows of one entry, gathered. */
struct att_rows {
	int have[BV_CONTENT_ATTACHMENTS_MAX];
	int state[BV_CONTENT_ATTACHMENTS_MAX];
	char blob[BV_CONTENT_ATTACHMENTS_MAX][BV_UUID_LEN + 1];
	char download[BV_CONTENT_ATTACHMENTS_MAX][BV_CONTENT_CAP_LEN + 1];
};

static int
att_rows_cb(int64_t seq, int idx, int state, const uint8_t *rec, size_t len,
	    void *arg)
{
	struct att_rows *r = arg;

	(void)seq;
	if (idx < 0 || idx >= BV_CONTENT_ATTACHMENTS_MAX)
		return 0;
	r->have[idx] = 1;
	r->state[idx] = state;
	if (len == ATT_REC_LEN) {
		memcpy(r->blob[idx], rec, BV_UUID_LEN);
		r->blob[idx][BV_UUID_LEN] = 0;
		memcpy(r->download[idx], rec + BV_UUID_LEN, BV_CONTENT_CAP_LEN);
		r->download[idx][BV_CONTENT_CAP_LEN] = 0;
	}
	return 0;
}

static int
att_rows_load(struct bv_client *c, int64_t seq, struct att_rows *r)
{
	memset(r, 0, sizeof(*r));
	return seq > 0 ? bv_store_attachments(c->store, seq, att_rows_cb, r)
		       : 0;
}

/* Our own entry's attachments: the real blob and capability where the
 * rows have them; uploaded[i] says which. */
static void
att_patch(struct bv_content *ct, const struct att_rows *r, int *uploaded)
{
	size_t i;

	for (i = 0; i < ct->n_att && i < BV_CONTENT_ATTACHMENTS_MAX; i++) {
		int up = r->have[i] && r->state[i] != ATT_SPOOLED &&
			 r->blob[i][0];

		if (up) {
			memcpy(ct->att[i].blob, r->blob[i], BV_UUID_LEN + 1);
			memcpy(ct->att[i].download, r->download[i],
			       BV_CONTENT_CAP_LEN + 1);
		}
		if (uploaded)
			uploaded[i] = up;
	}
}

/* The content of any history entry (ours patched from its rows). */
static int
entry_content(struct bv_client *c, const struct bv_history_entry *e,
	      struct bv_content **out)
{
	struct att_rows r;
	uint8_t *padded = NULL;
	size_t plen = 0;
	int rc;

	if (e->direction == BV_MSG_OUT) {
		rc = out_body_content(e, out);
		if (rc == 0 && (*out)->n_att) {
			rc = att_rows_load(c, e->seq, &r);
			if (rc == 0)
				att_patch(*out, &r, NULL);
			if (rc < 0) {
				bv_content_free(*out);
				*out = NULL;
			}
		}
		return rc;
	}
	if (!strcmp(e->sender, NOTICE_SENDER) || !e->body_len)
		return BV_EINVAL;
	rc = bv_content_pad(e->body, e->body_len, &padded, &plen);
	if (rc == 0)
		rc = bv_content_decode(padded, plen, out);
	if (padded) {
		bv_wipe(padded, plen);
		bv_free(padded);
	}
	return rc;
}

/* The API's view of ct's attachments into out (pointers into ct). */
static size_t
att_out(const struct bv_content *ct, int outgoing, const struct att_rows *r,
	struct bv_client_attachment *out)
{
	size_t i;

	for (i = 0; i < ct->n_att && i < BV_CONTENT_ATTACHMENTS_MAX; i++) {
		int up = !outgoing ||
			 (r && r->have[i] && r->state[i] != ATT_SPOOLED);

		out[i].name = ct->att[i].name;
		out[i].type = ct->att[i].type;
		out[i].size = ct->att[i].size;
		out[i].blob = up ? ct->att[i].blob : "";
		out[i].state =
			!up ? BV_CLIENT_ATT_UPLOADING
			: (r && r->have[i] && r->state[i] == ATT_DOWNLOADED)
				? BV_CLIENT_ATT_DOWNLOADED
				: BV_CLIENT_ATT_AVAILABLE;
	}
	return i;
}

static void
att_up_free(struct att_up *u)
{
	if (!u)
		return;
	bv_wipe(u->upload, sizeof(u->upload));
	bv_content_free(u->ct);
	bv_free(u);
}

static void
att_up_unlink(struct bv_client *c, struct att_up *u)
{
	struct att_up **pp;

	for (pp = &c->att_ups; *pp; pp = &(*pp)->next)
		if (*pp == u) {
			*pp = u->next;
			break;
		}
}

/* The message is given up: FAILED in the history, the spool removed, the
 * app told (no blob stays reserved longer than its upload window). */
static void
att_up_fail(struct att_up *u, int rc, const char *what)
{
	struct bv_client *c = u->c;
	char mid[BV_MESSAGE_ID_MAX + 1];

	memcpy(mid, u->mid, sizeof(mid));
	att_up_unlink(c, u);
	bv_store_history_set_state(c->store, u->seq, BV_MSG_FAILED);
	spool_remove(c, u->mid, u->ct->n_att);
	att_up_free(u);
	report(c, rc, mid, what);
	if (c->o.on_sent)
		c->o.on_sent(c, c->o.user, mid, rc);
}

/* Every file is on the relay: the message goes out as any other. */
static void
att_up_done(struct att_up *u)
{
	struct bv_client *c = u->c;
	struct bv_content *ct = u->ct;
	size_t n = ct->n_att;
	int rc;

	att_up_unlink(c, u);
	u->ct = NULL;
	rc = op_start(c, ct, NULL, u->seq, 0, NULL);
	if (rc < 0) {
		bv_store_history_set_state(c->store, u->seq, BV_MSG_FAILED);
		report(c, rc, u->mid, "cannot send a message");
		if (c->o.on_sent)
			c->o.on_sent(c, c->o.user, u->mid, rc);
	}
	spool_remove(c, u->mid, n);
	att_up_free(u);
}

/* A refusal that may pass: try again later, within the attempts. */
static void
att_up_retry(struct att_up *u, int rc, const char *what)
{
	if (++u->attempts >= BV_CLIENT_SEND_ATTEMPTS) {
		att_up_fail(u, rc, what);
		return;
	}
	u->retry_at = bv_mono_ms() + (uint64_t)RETRY_MS * u->attempts;
}

static void
on_blob_created(void *arg, int rc, const struct bv_wire_msg *m)
{
	struct att_up *u = arg;
	struct bv_client *c = u->c;
	int i = u->cur;

	u->busy = 0;
	if (!c || c->closed) {
		if (!c)
			att_up_free(u);
		return;
	}
	if (rc == 0 && !(m->u.ok.fields & BV_WIRE_OK_BLOB))
		rc = BV_EFIELD;
	if (rc == 0) {
		memcpy(u->ct->att[i].blob, m->u.ok.blob, BV_UUID_LEN + 1);
		memcpy(u->ct->att[i].download, m->u.ok.download,
		       BV_CONTENT_CAP_LEN + 1);
		memcpy(u->upload[i], m->u.ok.upload, BV_CONTENT_CAP_LEN + 1);
		u->created[i] = 1;
	} else if (rc == BV_EUNAVAILABLE) {
		/* The connection dropped: no attempt used. */
		u->retry_at = bv_mono_ms() + RETRY_MS;
	} else if (bv_err_retryable(rc)) {
		att_up_retry(u, rc, "attachment not accepted by the relay");
		return;
	} else {
		/* EBLOB_SIZE, EQUOTA, ENOACCOUNT…: nothing was uploaded. */
		att_up_fail(u, rc, "attachment not accepted by the relay");
		return;
	}
	att_pump(c);
}

/* The BV_E* code of a blob answer that is not a success. */
static int
http_error_code(long status, const uint8_t *body, size_t len)
{
	const char *p, *q;
	long v;

	/* {"error":{"code":"BV_E…","errno":-n,…}}: the errno, if sane. */
	p = body && len ? strstr((const char *)body, "\"errno\":") : NULL;
	if (p) {
		v = strtol(p + 8, (char **)&q, 10);
		if (q != p + 8 && v < 0 && v > -100)
			return (int)v;
	}
	switch (status) {
	case 404:
		return BV_ENOBLOB;
	case 411:
	case 413:
		return BV_EBLOB_SIZE;
	case 400:
	case 422:
		return BV_EBLOB;
	case 503:
		return BV_EUNAVAILABLE;
	default:
		return BV_EIO;
	}
}

static void
on_put(void *arg, int rc, long status, uint8_t *body, size_t len)
{
	struct att_up *u = arg;
	struct bv_client *c = u->c;
	uint8_t rec[ATT_REC_LEN];
	int i = u->cur;

	u->busy = 0;
	u->http = NULL;
	if (rc == 0 && status != 201)
		rc = http_error_code(status, body, len);
	if (body) {
		bv_wipe(body, len);
		bv_free(body);
	}
	if (!c) {
		att_up_free(u);
		return;
	}
	if (c->closed)
		return;
	/* The capability is used up whatever happened. */
	u->created[i] = 0;
	bv_wipe(u->upload[i], sizeof(u->upload[i]));
	if (rc == 0) {
		memcpy(rec, u->ct->att[i].blob, BV_UUID_LEN);
		memcpy(rec + BV_UUID_LEN, u->ct->att[i].download,
		       BV_CONTENT_CAP_LEN);
		rc = bv_store_attachment_put(c->store, u->seq, i, ATT_UPLOADED,
					     rec, sizeof(rec));
		if (rc < 0) {
			att_up_fail(u, rc, "cannot record an upload");
			return;
		}
		u->uploaded[i] = 1;
	} else if (rc == BV_EBLOB_SIZE) {
		att_up_fail(u, rc, "attachment upload refused");
		return;
	} else {
		/* Cut short, busy, expired: a new blob_create. */
		att_up_retry(u, rc, "attachment upload failed");
		return;
	}
	att_pump(c);
}

static void
att_up_step(struct att_up *u)
{
	struct bv_client *c = u->c;
	struct bv_http_req r;
	char url[512], path[PATH_MAX], *frame = NULL;
	uint8_t sha[32];
	int64_t id;
	size_t i, n = u->ct->n_att;
	int rc;

	/* Every file announced before any is uploaded. */
	for (i = 0; i < n; i++)
		if (!u->uploaded[i] && !u->created[i])
			break;
	if (i < n) {
		if (!conn__ready(c->conn))
			return;
		if (hex_decode32(u->ct->att[i].sha256, sha) < 0) {
			att_up_fail(u, BV_EINTERNAL, "attachment digest");
			return;
		}
		id = conn__next_id(c->conn);
		rc = bv_wire_build_blob_create(
			id, u->ct->conversation,
			bv_blob_sealed_size((uint64_t)u->ct->att[i].size), sha,
			&frame);
		if (rc == 0)
			rc = conn__request(c->conn, id, frame, on_blob_created,
					   u);
		bv_free(frame);
		if (rc == 0) {
			u->busy = 1;
			u->cur = (int)i;
		} else if (rc == BV_EUNAVAILABLE || rc == BV_EBUSY) {
			u->retry_at = bv_mono_ms() + RETRY_MS;
		} else {
			att_up_fail(u, rc, "cannot announce an attachment");
		}
		return;
	}
	for (i = 0; i < n; i++)
		if (!u->uploaded[i])
			break;
	if (i == n) {
		att_up_done(u);
		return;
	}
	spool_path(c, u->mid, (int)i, path, sizeof(path));
	snprintf(url, sizeof(url), "%s/v1/blobs/%s", c->http_base,
		 u->ct->att[i].blob);
	memset(&r, 0, sizeof(r));
	r.method = "PUT";
	r.url = url;
	r.bearer = u->upload[i];
	r.body_path = path;
	r.body_len = bv_blob_sealed_size((uint64_t)u->ct->att[i].size);
	r.max_answer = 4096;
	rc = http__start(c->loop, &r, on_put, u, &u->http);
	if (rc < 0) {
		att_up_retry(u, rc, "cannot upload an attachment");
		return;
	}
	u->busy = 1;
	u->cur = (int)i;
}

/* Moves every idle upload on by one step. */
static void
att_pump(struct bv_client *c)
{
	struct att_up *u, *next;
	uint64_t now = bv_mono_ms();

	if (c->closed)
		return;
	for (u = c->att_ups; u; u = next) {
		next = u->next;
		if (!u->busy && now >= u->retry_at)
			att_up_step(u);
	}
}

/* Takes ct (ours, with its rows' state) into the upload queue; or sends
 * it at once when every file is on the relay. */
static int
att_up_start(struct bv_client *c, struct bv_content *ct, int64_t seq,
	     const int *uploaded)
{
	struct att_up *u, **pp;
	size_t i;

	u = bv_calloc(1, sizeof(*u));
	if (!u) {
		bv_content_free(ct);
		return BV_ENOMEM;
	}
	u->c = c;
	u->seq = seq;
	u->ct = ct;
	snprintf(u->mid, sizeof(u->mid), "%s", ct->message_id);
	for (i = 0; i < ct->n_att; i++)
		u->uploaded[i] = uploaded ? uploaded[i] : 0;
	for (pp = &c->att_ups; *pp; pp = &(*pp)->next)
		;
	*pp = u;
	if (c->kick_init)
		uv_timer_start(&c->kick, on_kick, 0, 0);
	return 0;
}

/* After a restart: our message with files, as far as its rows say. */
static int
att_resume(struct bv_client *c, struct bv_content *ct, int64_t seq)
{
	int uploaded[BV_CONTENT_ATTACHMENTS_MAX] = {0};
	char p[PATH_MAX];
	struct att_rows r;
	size_t i;
	int rc;

	rc = att_rows_load(c, seq, &r);
	if (rc < 0) {
		bv_content_free(ct);
		return rc;
	}
	att_patch(ct, &r, uploaded);
	for (i = 0; i < ct->n_att; i++) {
		spool_path(c, ct->message_id, (int)i, p, sizeof(p));
		if (!uploaded[i] && access(p, R_OK) < 0) {
			bv_content_free(ct);
			return BV_EIO;
		}
	}
	return att_up_start(c, ct, seq, uploaded);
}

/* answer_by of an e-post as bv_client_send_email() documents it. */
static int64_t
email_answer_by(struct bv_client *c, const char *conversation,
		int64_t answer_by_ms, int64_t now)
{
	int days = 0;

	if (answer_by_ms == 0) {
		/* A citizen's promise is the municipality's, not the app's. */
		if (!view_is_staff(c, conversation, &days))
			return add_working_days(
				now, days ? days : BV_CLIENT_ANSWER_DAYS);
		return 0;
	}
	return answer_by_ms == -1 ? 0 : answer_by_ms;
}

static const char *
base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

int
bv_client_send_attachments(struct bv_client *c, const char *conversation,
			   const char *text, const char *subject,
			   const char *thread, int64_t answer_by_ms,
			   const struct bv_client_file *files, size_t n,
			   char message_id_out[BV_CLIENT_MESSAGE_ID_LEN + 1])
{
	struct bv_content_attachment att[BV_CONTENT_ATTACHMENTS_MAX];
	struct bv_content_msg msg;
	struct bv_content *ct = NULL;
	char mid[BV_UUID_LEN + 1], p[PATH_MAX];
	uint8_t *data = NULL, *sealed = NULL, sha[32], *body = NULL;
	size_t i, len = 0, sealed_len = 0, body_len = 0, spooled = 0;
	const char *name;
	int64_t seq = 0, now;
	int rc = 0;

	if (!c || !conversation || !bv_uuid_valid(conversation) || !text ||
	    !files || n == 0 || n > BV_CONTENT_ATTACHMENTS_MAX ||
	    !message_id_out || answer_by_ms < -1 || c->closed)
		return BV_EINVAL;
	if (!c->enrolled || !c->session)
		return BV_ENOAUTH;
	memset(att, 0, sizeof(att));
	for (i = 0; i < n; i++) {
		name = files[i].name   ? files[i].name
		       : files[i].path ? base_name(files[i].path)
				       : NULL;
		if (!name || !files[i].type ||
		    !bv_content_type_allowed(files[i].type) ||
		    !bv_content_name_valid(name, strlen(name)) ||
		    (!files[i].path && !files[i].data && files[i].len))
			return BV_EINVAL;
		if (!files[i].path &&
		    (uint64_t)files[i].len > BV_CLIENT_ATTACHMENT_MAX)
			return BV_EBLOB_SIZE;
		snprintf(att[i].name, sizeof(att[i].name), "%s", name);
		snprintf(att[i].type, sizeof(att[i].type), "%s", files[i].type);
	}
	if (mkdir(c->spool_dir, 0700) < 0 && errno != EEXIST)
		return BV_EIO;
	bv_uuid_generate(mid);
	now = bv_now_ms();
	/* Encrypted and spooled, one file at a time. */
	for (i = 0; i < n && rc == 0; i++) {
		data = NULL;
		len = 0;
		if (files[i].path)
			rc = file_read(files[i].path,
				       (uint64_t)BV_CLIENT_ATTACHMENT_MAX,
				       &data, &len);
		if (rc < 0)
			break;
		rc = bv_blob_seal(files[i].path ? data : files[i].data,
				  files[i].path ? len : files[i].len,
				  att[i].key, &sealed, &sealed_len, sha);
		att[i].size = (int64_t)(files[i].path ? len : files[i].len);
		if (data) {
			bv_wipe(data, len);
			bv_free(data);
		}
		if (rc < 0)
			break;
		hex_encode(sha, sizeof(sha), att[i].sha256);
		snprintf(att[i].blob, sizeof(att[i].blob), "%s", NO_ACCOUNT);
		snprintf(att[i].download, sizeof(att[i].download), "%s",
			 ATT_PLACEHOLDER_CAP);
		spool_path(c, mid, (int)i, p, sizeof(p));
		rc = file_write_atomic(p, sealed, sealed_len);
		bv_free(sealed);
		sealed = NULL;
		if (rc == 0)
			spooled = i + 1;
	}
	if (rc == 0) {
		memset(&msg, 0, sizeof(msg));
		msg.text = text;
		msg.text_len = strlen(text);
		if (subject) {
			msg.subject = subject;
			msg.subject_len = strlen(subject);
			msg.thread = thread && *thread ? thread : NULL;
			msg.answer_by_ms = email_answer_by(c, conversation,
							   answer_by_ms, now);
		}
		msg.att = att;
		msg.n_att = n;
		rc = bv_content_message_new(conversation, mid, now, &msg, &ct);
		if (rc < 0 && rc != BV_ENOMEM)
			rc = BV_EINVAL;
	}
	if (rc == 0)
		rc = out_body_dump(ct, &body, &body_len);
	/* The message and its rows in one transaction: a restart finds
	 * both or neither. */
	if (rc == 0)
		rc = bv_store_begin(c->store);
	if (rc == 0) {
		rc = bv_store_history_append(c->store, conversation, BV_MSG_OUT,
					     c->account, (int32_t)c->device,
					     mid, now, body, body_len,
					     BV_MSG_SENDING, &seq);
		for (i = 0; i < n && rc == 0; i++)
			rc = bv_store_attachment_put(c->store, seq, (int)i,
						     ATT_SPOOLED, NULL, 0);
		if (rc == 0)
			rc = bv_store_commit(c->store);
		else
			bv_store_rollback(c->store);
	}
	if (body) {
		bv_wipe(body, body_len);
		bv_free(body);
	}
	sodium_memzero(att, sizeof(att));
	if (rc == 0) {
		rc = att_up_start(c, ct, seq, NULL);
		ct = NULL;
		if (rc < 0)
			bv_store_history_set_state(c->store, seq,
						   BV_MSG_FAILED);
	}
	if (rc < 0) {
		bv_content_free(ct);
		spool_remove(c, mid, spooled);
		return rc;
	}
	memcpy(message_id_out, mid, BV_CLIENT_MESSAGE_ID_LEN + 1);
	return 0;
}

/* ---- fetching ---- */

struct att_find {
	struct bv_client *c;
	int idx;
	struct att_fetch *f;
	int rc;
};

static int
att_find_cb(const struct bv_history_entry *e, void *arg)
{
	struct att_find *q = arg;
	struct bv_content *ct = NULL;
	struct att_rows r;
	int rc;

	rc = entry_content(q->c, e, &ct);
	if (rc == BV_ENOMEM) {
		q->rc = rc;
		return 1;
	}
	if (rc < 0 ||
	    (ct->kind != BV_CONTENT_TEXT && ct->kind != BV_CONTENT_EMAIL) ||
	    (size_t)q->idx >= ct->n_att) {
		bv_content_free(ct);
		return 0;
	}
	if (e->direction == BV_MSG_OUT) {
		rc = att_rows_load(q->c, e->seq, &r);
		if (rc < 0 || !r.have[q->idx] ||
		    r.state[q->idx] == ATT_SPOOLED) {
			bv_content_free(ct);
			q->rc = rc < 0 ? rc : BV_EINVAL;
			return 1;
		}
	}
	q->f->seq = e->seq;
	q->f->outgoing = e->direction == BV_MSG_OUT;
	q->f->a = ct->att[q->idx];
	bv_content_free(ct);
	q->rc = 0;
	return 1;
}

static void
att_fetch_free(struct att_fetch *f)
{
	sodium_memzero(&f->a, sizeof(f->a));
	bv_free(f->dest);
	bv_free(f);
}

static void
on_get(void *arg, int rc, long status, uint8_t *body, size_t len)
{
	struct att_fetch *f = arg, **pp;
	struct bv_client *c = f->c;
	uint8_t sha[32], rec[ATT_REC_LEN], *pt = NULL;
	size_t size = (size_t)f->a.size;

	f->http = NULL;
	if (rc == BV_EFRAME)
		rc = BV_ETAMPERED; /* longer than it can be */
	else if (rc == 0 && status != 200)
		rc = http_error_code(status, body, len);
	if (rc == 0 && hex_decode32(f->a.sha256, sha) < 0)
		rc = BV_EFIELD;
	if (rc == 0)
		rc = bv_blob_open(body, len, f->a.key, sha, (uint64_t)size,
				  &pt);
	if (body) {
		bv_wipe(body, len);
		bv_free(body);
	}
	if (c && !c->closed) {
		for (pp = &c->att_fetches; *pp; pp = &(*pp)->next)
			if (*pp == f) {
				*pp = f->next;
				break;
			}
		if (rc == 0 && f->dest)
			rc = file_write_atomic(f->dest, pt, size);
		if (rc == 0 && f->dest) {
			memcpy(rec, f->a.blob, BV_UUID_LEN);
			memcpy(rec + BV_UUID_LEN, f->a.download,
			       BV_CONTENT_CAP_LEN);
			/* Ours keep their record; theirs get one too. */
			rc = bv_store_attachment_put(c->store, f->seq, f->idx,
						     ATT_DOWNLOADED, rec,
						     sizeof(rec));
		}
		if (rc < 0)
			report(c, rc, f->mid, "attachment not fetched");
		if (f->cb)
			f->cb(c, f->arg, f->mid, f->idx, rc,
			      rc == 0 ? f->dest : NULL,
			      rc == 0 && !f->dest ? pt : NULL,
			      rc == 0 && !f->dest ? size : 0);
	}
	if (pt) {
		bv_wipe(pt, size);
		bv_free(pt);
	}
	att_fetch_free(f);
}

int
bv_client_attachment_fetch(struct bv_client *c, const char *message_id,
			   int index, const char *dest_path,
			   bv_attachment_fetched_cb cb, void *arg)
{
	struct att_fetch *f;
	struct att_find q;
	struct bv_http_req r;
	char url[512];
	int rc;

	if (!c || c->closed || !message_id ||
	    !bv_message_id_valid(message_id) || index < 0 ||
	    index >= BV_CONTENT_ATTACHMENTS_MAX || (dest_path && !*dest_path))
		return BV_EINVAL;
	f = bv_calloc(1, sizeof(*f));
	if (!f)
		return BV_ENOMEM;
	f->c = c;
	f->idx = index;
	f->cb = cb;
	f->arg = arg;
	snprintf(f->mid, sizeof(f->mid), "%s", message_id);
	if (dest_path && !(f->dest = bv_strdup(dest_path))) {
		att_fetch_free(f);
		return BV_ENOMEM;
	}
	memset(&q, 0, sizeof(q));
	q.c = c;
	q.idx = index;
	q.f = f;
	q.rc = BV_EINVAL;
	rc = bv_store_history_find(c->store, message_id, att_find_cb, &q);
	if (rc >= 0)
		rc = q.rc;
	if (rc < 0) {
		att_fetch_free(f);
		return rc;
	}
	snprintf(url, sizeof(url), "%s/v1/blobs/%s", c->http_base, f->a.blob);
	memset(&r, 0, sizeof(r));
	r.method = "GET";
	r.url = url;
	r.bearer = f->a.download;
	/* One byte more than it can be: longer is tampering. */
	r.max_answer = (size_t)bv_blob_sealed_size((uint64_t)f->a.size);
	rc = http__start(c->loop, &r, on_get, f, &f->http);
	if (rc < 0) {
		att_fetch_free(f);
		return rc;
	}
	f->next = c->att_fetches;
	c->att_fetches = f;
	return 0;
}

struct journaled_req {
	struct bv_client *c;
	bv_blobs_journaled_cb cb;
	void *arg;
};

static void
on_blobs_journaled(void *arg, int rc, const struct bv_wire_msg *m)
{
	struct journaled_req *q = arg;
	struct bv_client *c = q->c;

	(void)m;
	c->inflight--;
	if (!c->closed && q->cb)
		q->cb(c, q->arg, rc);
	bv_free(q);
}

int
bv_client_blobs_journaled(struct bv_client *c, const char *const *blobs,
			  size_t n, bv_blobs_journaled_cb cb, void *arg)
{
	struct journaled_req *q;
	char *frame = NULL;
	int64_t id;
	int rc;

	if (!c || c->closed || !blobs || n == 0 || n > 100)
		return BV_EINVAL;
	if (!conn__ready(c->conn))
		return BV_EUNAVAILABLE;
	q = bv_calloc(1, sizeof(*q));
	if (!q)
		return BV_ENOMEM;
	q->c = c;
	q->cb = cb;
	q->arg = arg;
	id = conn__next_id(c->conn);
	rc = bv_wire_build_blobs_journaled(id, blobs, n, &frame);
	return ask_relay(c, id, rc, frame, on_blobs_journaled, q);
}

int
bv_client_mark_read(struct bv_client *c, const char *conversation,
		    const char *sender_account, const char *const *message_ids,
		    size_t n)
{
	struct state_update u = {c, conversation, BV_MSG_IN, BV_MSG_READ};
	struct bv_content *ct = NULL;
	char mid[BV_UUID_LEN + 1];
	size_t i;
	int rc;

	if (!c || !conversation || !bv_uuid_valid(conversation) ||
	    !sender_account || !bv_uuid_valid(sender_account) || !message_ids ||
	    n == 0 || n > BV_CONTENT_IDS_MAX || c->closed)
		return BV_EINVAL;
	if (!c->enrolled || !c->session)
		return BV_ENOAUTH;
	bv_uuid_generate(mid);
	rc = bv_content_receipt_new(conversation, mid, bv_now_ms(),
				    BV_RECEIPT_READ, message_ids, n, &ct);
	if (rc < 0)
		return BV_EINVAL;
	for (i = 0; i < n; i++) {
		rc = bv_store_history_find(c->store, message_ids[i],
					   state_update_cb, &u);
		if (rc < 0)
			break;
	}
	if (rc < 0 || !strcmp(sender_account, c->account)) {
		/* Our own messages: nobody needs to hear we read them. */
		bv_content_free(ct);
		return rc;
	}
	/* To the sender's devices, the case file's and ours: read on one,
	 * read on all. */
	return op_start(c, ct, sender_account, 0, 1, NULL);
}

int
bv_client_mark_journaled(struct bv_client *c, const char *conversation,
			 const char *const *message_ids, size_t n,
			 const char *journal,
			 char message_id_out[BV_CLIENT_MESSAGE_ID_LEN + 1])
{
	struct bv_content *ct = NULL;
	char mid[BV_UUID_LEN + 1];
	size_t i;
	int rc;

	if (!c || !conversation || !bv_uuid_valid(conversation) ||
	    !message_ids || n == 0 || n > BV_CONTENT_IDS_MAX || !journal ||
	    c->closed)
		return BV_EINVAL;
	if (!c->enrolled || !c->session)
		return BV_ENOAUTH;
	bv_uuid_generate(mid);
	rc = bv_content_journaled_new(conversation, mid, bv_now_ms(), journal,
				      message_ids, n, &ct);
	if (rc < 0)
		return BV_EINVAL;
	for (i = 0; i < n; i++) {
		rc = bv_store_journaled_put(c->store, message_ids[i], journal,
					    bv_now_ms());
		if (rc < 0) {
			bv_content_free(ct);
			return rc;
		}
	}
	/* To every member of the conversation, like a text; reported
	 * (bv_sent_cb) so that the archive knows when the relay has it. */
	rc = op_start(c, ct, NULL, 0, 0, NULL);
	if (rc == 0 && message_id_out)
		memcpy(message_id_out, mid, sizeof(mid));
	return rc;
}

/* After a restart: what was written but not taken by the relay goes out
 * again, with its id (receivers drop a copy they already have). */
static int
resume_cb(const struct bv_history_entry *e, void *arg)
{
	struct bv_client *c = arg;
	struct bv_content *ct = NULL;
	int rc;

	if (strcmp(e->sender, c->account) ||
	    (uint32_t)e->sender_device != c->device)
		return 0;
	rc = out_body_content(e, &ct);
	if (rc == 0 && ct->n_att)
		rc = att_resume(c, ct, e->seq); /* uploads first */
	else if (rc == 0)
		rc = op_start(c, ct, NULL, e->seq, 0, NULL);
	if (rc < 0) {
		/* Logged only: no callback inside bv_client_new(). */
		bv_store_history_set_state(c->store, e->seq, BV_MSG_FAILED);
		bv_log(BV_LOG_WARN, "bvchat: unsent message %s given up: %s",
		       e->message_id, bv_errname(rc));
	}
	return 0;
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

int
bv_client_safety_number(struct bv_client *c, const char *account,
			uint32_t device,
			char out[BV_CLIENT_SAFETY_NUMBER_LEN + 1])
{
	if (!c || !c->session || !out)
		return BV_EINVAL;
	return bv_session_safety_number(c->session, account, device, out);
}

/* ---- the local history ---- */

struct history_walk {
	struct bv_client *c;
	bv_client_message_cb cb;
	void *arg;
};

static int
history_walk_cb(const struct bv_history_entry *e, void *arg)
{
	struct history_walk *w = arg;
	struct bv_client_attachment atts[BV_CONTENT_ATTACHMENTS_MAX];
	struct att_rows rows;
	struct bv_client_message m;
	struct bv_client_notice notice;
	struct bv_wire_msg *nm = NULL;
	struct bv_content *ct = NULL;
	uint8_t *padded = NULL;
	size_t plen = 0;
	char *text = NULL;
	int rc;

	memset(&m, 0, sizeof(m));
	m.seq = e->seq;
	m.conversation = e->conversation;
	m.outgoing = e->direction == BV_MSG_OUT;
	m.sender = e->sender;
	m.sender_device = (uint32_t)e->sender_device;
	m.message_id = e->message_id;
	m.time_ms = e->timestamp_ms;
	m.state = (enum bv_client_msg_state)e->state;
	m.journal = e->journal;
	m.text = "";
	if (m.outgoing && e->body_len && e->body[0] == 0) {
		/* Ours, an e-post or files: its content. */
		rc = entry_content(w->c, e, &ct);
		if (rc == BV_ENOMEM)
			return rc;
		if (rc < 0)
			m.unsupported = 1;
		else
			message_fields(ct, &m);
	} else if (m.outgoing) {
		/* Ours: the text itself. */
		text = bv_malloc(e->body_len + 1);
		if (!text)
			return BV_ENOMEM;
		memcpy(text, e->body, e->body_len);
		text[e->body_len] = '\0';
		m.text = text;
		m.text_len = e->body_len;
	} else if (!strcmp(e->sender, NOTICE_SENDER)) {
		rc = bv_wire_notice_parse((const char *)e->body, e->body_len,
					  &nm);
		if (rc == BV_ENOMEM)
			return rc;
		if (rc < 0) {
			m.unsupported = 1;
		} else {
			notice_out(nm, &notice);
			m.notice = &notice;
		}
		m.sender = "";
		m.sender_device = 0;
	} else if (e->body_len) {
		/* Theirs: the decrypted content, as it came. */
		rc = bv_content_pad(e->body, e->body_len, &padded, &plen);
		if (rc == 0)
			rc = bv_content_decode(padded, plen, &ct);
		if (rc < 0)
			m.unsupported = 1;
		else if (ct->kind == BV_CONTENT_TEXT ||
			 ct->kind == BV_CONTENT_EMAIL) {
			message_fields(ct, &m);
		} else {
			m.unsupported = 1;
		}
	}
	if (ct && ct->n_att && !m.unsupported &&
	    (ct->kind == BV_CONTENT_TEXT || ct->kind == BV_CONTENT_EMAIL)) {
		rc = att_rows_load(w->c, e->seq, &rows);
		if (rc < 0) {
			bv_content_free(ct);
			bv_free(padded);
			return rc;
		}
		m.n_attachments = att_out(ct, m.outgoing, &rows, atts);
		m.attachments = atts;
	}
	rc = w->cb(w->arg, &m);
	if (text) {
		bv_wipe(text, e->body_len);
		bv_free(text);
	}
	if (padded)
		bv_wipe(padded, plen);
	bv_free(padded);
	bv_content_free(ct);
	bv_wire_msg_free(nm);
	return rc;
}

int
bv_client_history(struct bv_client *c, const char *conversation,
		  int64_t after_seq, bv_client_message_cb cb, void *arg)
{
	struct history_walk w = {c, cb, arg};

	if (!c || !conversation || !cb || !c->store)
		return BV_EINVAL;
	return bv_store_history_list(c->store, conversation, after_seq,
				     history_walk_cb, &w);
}

struct conversation_walk {
	bv_client_conversation_cb cb;
	void *arg;
};

static int
conversation_walk_cb(const struct bv_conversation_entry *e, void *arg)
{
	struct conversation_walk *w = arg;
	struct bv_client_conversation cv;

	cv.conversation = e->conversation;
	cv.last_seq = e->last_seq;
	cv.last_time_ms = e->last_timestamp_ms;
	cv.n_messages = e->n_messages;
	return w->cb(w->arg, &cv);
}

int
bv_client_conversations(struct bv_client *c, bv_client_conversation_cb cb,
			void *arg)
{
	struct conversation_walk w = {cb, arg};

	if (!c || !cb || !c->store)
		return BV_EINVAL;
	return bv_store_conversations(c->store, conversation_walk_cb, &w);
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
	c->signed_max_age_ms = opts->signed_prekey_max_age_ms > 0
				       ? opts->signed_prekey_max_age_ms
				       : SIGNED_MAX_AGE_MS;
	c->o.store_path = NULL;
	c->o.store_key = NULL;
	c->o.relay_host = NULL;
	c->o.http_base = NULL;
	c->spool_dir = bv_malloc(strlen(opts->store_path) + 7);
	c->http_base =
		bv_malloc(opts->http_base ? strlen(opts->http_base) + 1
					  : strlen(opts->relay_host) + 16);
	if (!c->spool_dir || !c->http_base) {
		bv_free(c->spool_dir);
		bv_free(c->http_base);
		bv_free(c);
		return BV_ENOMEM;
	}
	sprintf(c->spool_dir, "%s.spool", opts->store_path);
	if (opts->http_base)
		strcpy(c->http_base, opts->http_base);
	else
		sprintf(c->http_base, "http://%s:%d", opts->relay_host,
			opts->relay_port);
	/* "https://relay.example/" and "…/" alike. */
	if (*c->http_base && c->http_base[strlen(c->http_base) - 1] == '/')
		c->http_base[strlen(c->http_base) - 1] = 0;
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
	uv_timer_init(c->loop, &c->kick);
	c->kick.data = c;
	c->kick_init = 1;

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
		if (rc == 0)
			rc = bv_store_cases(c->store, view_load_cb, c);
		if (rc == 0)
			rc = bv_store_history_unsent(c->store, resume_cb, c);
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
	cbs.on_cases_changed = on_cases_changed;
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
	struct att_up *u;
	struct att_fetch *f;

	if (!c || c->closed)
		return;
	c->closed = 1;
	/* Uploads and fetches under way end on their own (the loop runs
	 * their last callback, which frees them); idle uploads go now. The
	 * spool stays: the next start resumes. */
	while ((u = c->att_ups)) {
		c->att_ups = u->next;
		if (u->busy) {
			u->c = NULL;
			http__abort(u->http);
		} else {
			att_up_free(u);
		}
	}
	while ((f = c->att_fetches)) {
		c->att_fetches = f->next;
		f->c = NULL;
		http__abort(f->http);
	}
	if (c->conn)
		conn__close(c->conn);
	if (c->tick_init) {
		uv_timer_stop(&c->tick);
		uv_close((uv_handle_t *)&c->tick, NULL);
		c->tick_init = 0;
	}
	if (c->kick_init) {
		uv_timer_stop(&c->kick);
		uv_close((uv_handle_t *)&c->kick, NULL);
		c->kick_init = 0;
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
	while (c->pending) {
		struct pending *p = c->pending;

		c->pending = p->next;
		bv_free(p);
	}
	vcases_free(c->view, c->n_view);
	vcases_free(c->cv_acc, c->cv_n_acc);
	bv_free(c->cv_queue);
	bv_session_free(c->session);
	if (c->sctx)
		signal_context_destroy(c->sctx);
	bv_store_close(c->store);
	bv_wipe(c->sk, sizeof(c->sk));
	bv_free(c->spool_dir);
	bv_free(c->http_base);
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
