/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * conn.c: the client's connection logic, the same for every transport: a
 * bounded output queue, the cap on relay messages, auth/enroll on each
 * challenge, backoff reconnects, request ids matched to responses, deliver
 * acknowledged after the caller stored the envelope. The WebSocket itself
 * is conn_lws.c or conn_web.c (conn_transport.h). It never looks inside
 * envelope bodies and never logs keys or tokens. Not thread-safe:
 * everything runs on the loop's thread.
 */
#include <string.h>
#include <sodium.h>
#include <uv.h>

#include "bv_error.h"
#include "bv_util.h"
#include "conn.h"
#include "conn_transport.h"

#define CLOSE_NORMAL	 1000
#define CLOSE_PROTOCOL	 1002
#define CLOSE_UNEXPECTED 1011
#define CLOSE_DISPLACED	 4001
#define DEFAULT_FRAME	 262144
#define FRAME_FLOOR	 4096
#define FRAME_CEIL	 (16u * 1024 * 1024)

struct outframe {
	struct outframe *next;
	size_t len;
	int secret; /* holds a token: wiped before free */
	unsigned char buf[];
};

struct pending {
	struct pending *next;
	int64_t id;
	bv_conn_response_cb cb;
	void *arg;
	int internal; /* our own auth or enroll */
};

enum cred { CRED_NONE = 0, CRED_AUTH, CRED_ENROLL };

struct bv_conn {
	struct bv_conn_cfg cfg;
	struct bv_conn_cbs cbs;
	char *host;
	uv_loop_t *loop;
	uv_loop_t own_loop;
	int owns_loop;
	struct bv_conn_transport *t;
	uv_timer_t timer; /* reconnect backoff */
	int timer_init;

	/* credentials */
	enum cred cred;
	char account[BV_UUID_LEN + 1];
	/* The last challenge's web push key ("" when none). */
	char webpush_key[BV_WIRE_VAPID_MAX + 1];
	uint32_t device;
	uint8_t sk[64];
	char *token;
	uint32_t regid;
	uint8_t identity[BV_KEY_LEN];
	uint32_t replaces;

	/* state */
	int running; /* reconnects wanted */
	int closing; /* conn__close() called */
	/* A connection attempt is in progress or up: from transport__open()
	 * to conn__t_closed() (or conn__close()). */
	int live;
	int authed;
	int close_code;	  /* we are closing with this code */
	int displaced;	  /* reported for this connection */
	int auth_failed;  /* code, or 0 */
	size_t max_frame; /* current cap for frames both ways */
	struct outframe *out_head, *out_tail;
	size_t out_bytes;
	struct pending *pend;
	unsigned n_pend;
	int64_t next_id;
	struct bv_conn_stats st;
};

static void schedule_reconnect(struct bv_conn *c);

static void
event(struct bv_conn *c, enum bv_conn_event ev, int code)
{
	if (!c->closing && c->cbs.on_event)
		c->cbs.on_event(c->cbs.ud, ev, code);
}

static void
out_free_all(struct bv_conn *c)
{
	struct outframe *f, *n;

	for (f = c->out_head; f; f = n) {
		n = f->next;
		if (f->secret)
			bv_wipe(f->buf, transport__headroom() + f->len);
		bv_free(f);
	}
	c->out_head = c->out_tail = NULL;
	c->out_bytes = 0;
}

/* Fails every outstanding request (the connection is gone). */
static void
pending_fail_all(struct bv_conn *c)
{
	struct pending *p;

	while ((p = c->pend) != NULL) {
		c->pend = p->next;
		c->n_pend--;
		if (p->cb)
			p->cb(p->arg, BV_EUNAVAILABLE, NULL);
		bv_free(p);
	}
}

static struct pending *
pending_take(struct bv_conn *c, int64_t id)
{
	struct pending **pp, *p;

	for (pp = &c->pend; (p = *pp) != NULL; pp = &p->next) {
		if (p->id == id) {
			*pp = p->next;
			c->n_pend--;
			return p;
		}
	}
	return NULL;
}

static int
pending_has(const struct bv_conn *c, int64_t id)
{
	const struct pending *p;

	for (p = c->pend; p; p = p->next)
		if (p->id == id)
			return 1;
	return 0;
}

/* Starts closing our side with code; conn__t_closed() follows. */
static void
close_with(struct bv_conn *c, int code)
{
	if (!c->live || c->close_code)
		return;
	c->close_code = code;
	transport__close(c->t, code);
}

/*
 * Queues one frame. answer: a small answer to a relay request, which the
 * relay's deliver_window already bounds, so it may go over the cap (a
 * refused ack would stall the connection). The cap counts our queue and
 * what the transport still holds (the browser's gate and socket buffer).
 * Returns 0, BV_EBUSY when the output cap would be exceeded, BV_EFRAME over
 * max_frame, BV_EUNAVAILABLE without a connection, BV_ENOMEM. The browser
 * transport writes the frame before this returns.
 */
static int
out_queue(struct bv_conn *c, const char *s, size_t len, int secret, int answer)
{
	struct outframe *f;
	size_t pre = transport__headroom();

	if (!c->live || c->close_code)
		return BV_EUNAVAILABLE;
	if (len > c->max_frame)
		return BV_EFRAME;
	if (!answer && c->out_bytes + transport__buffered(c->t) + len >
			       c->cfg.max_output_bytes)
		return BV_EBUSY;
	f = bv_malloc(sizeof(*f) + pre + len);
	if (!f)
		return BV_ENOMEM;
	f->next = NULL;
	f->len = len;
	f->secret = secret;
	memcpy(f->buf + pre, s, len);
	if (c->out_tail)
		c->out_tail->next = f;
	else
		c->out_head = f;
	c->out_tail = f;
	c->out_bytes += len;
	transport__want_write(c->t);
	return 0;
}

/* Writes the oldest queued frame; 0, or -1 when the transport failed. */
static int
write_one(struct bv_conn *c)
{
	struct outframe *f = c->out_head;
	size_t pre = transport__headroom();

	if (!f)
		return 0;
	if (transport__write(c->t, f->buf + pre, f->len) < 0)
		return -1;
	c->out_head = f->next;
	if (!c->out_head)
		c->out_tail = NULL;
	c->out_bytes -= f->len;
	if (f->secret)
		bv_wipe(f->buf, pre + f->len);
	bv_free(f);
	if (c->out_head)
		transport__want_write(c->t);
	return 0;
}

int64_t
conn__next_id(struct bv_conn *c)
{
	int64_t id;

	do {
		id = c->next_id++;
		if (c->next_id > BV_ID_MAX)
			c->next_id = 1;
	} while (pending_has(c, id));
	return id;
}

static int
request_add(struct bv_conn *c, int64_t id, const char *frame, int secret,
	    bv_conn_response_cb cb, void *arg, int internal)
{
	struct pending *p;
	int rc;

	if (id < 1 || id > BV_ID_MAX || pending_has(c, id))
		return BV_EINVAL;
	if (c->n_pend >= c->cfg.max_in_flight)
		return BV_EBUSY;
	p = bv_calloc(1, sizeof(*p));
	if (!p)
		return BV_ENOMEM;
	rc = out_queue(c, frame, strlen(frame), secret, 0);
	if (rc < 0) {
		bv_free(p);
		return rc;
	}
	p->id = id;
	p->cb = cb;
	p->arg = arg;
	p->internal = internal;
	p->next = c->pend;
	c->pend = p;
	c->n_pend++;
	return 0;
}

int
conn__request(struct bv_conn *c, int64_t id, const char *frame,
	      bv_conn_response_cb cb, void *arg)
{
	if (!c || !frame)
		return BV_EINVAL;
	if (!c->authed || !c->live || c->close_code)
		return BV_EUNAVAILABLE;
	return request_add(c, id, frame, 0, cb, arg, 0);
}

/* The answer to our auth or enroll. */
static void
auth_answer(void *arg, int rc, const struct bv_wire_msg *m)
{
	struct bv_conn *c = arg;

	if (!m)
		return; /* connection gone; the reconnect retries */
	if (rc == 0) {
		if (c->cred == CRED_ENROLL) {
			if (!(m->u.ok.fields & BV_WIRE_OK_ACCOUNT) ||
			    !(m->u.ok.fields & BV_WIRE_OK_DEVICE)) {
				bv_log(BV_LOG_WARN, "conn: enroll answer "
						    "without account/device");
				close_with(c, CLOSE_PROTOCOL);
				return;
			}
			memcpy(c->account, m->u.ok.account, sizeof(c->account));
			c->device = m->u.ok.device;
			bv_wipe(c->token, strlen(c->token));
			bv_free(c->token);
			c->token = NULL;
			c->cred = CRED_AUTH;
		}
		c->authed = 1;
		c->st.authed++;
		c->st.attempt = 0;
		bv_log(BV_LOG_INFO, "conn: authenticated as %s/%u", c->account,
		       c->device);
		event(c, BV_CONN_AUTHED, 0);
		return;
	}
	bv_log(BV_LOG_NOTICE, "conn: %s refused: %s",
	       c->cred == CRED_ENROLL ? "enroll" : "auth", bv_errname(rc));
	if (bv_err_retryable(rc)) {
		close_with(c, CLOSE_NORMAL); /* and reconnect later */
		return;
	}
	c->auth_failed = rc;
	c->running = 0;
	close_with(c, CLOSE_NORMAL);
	event(c, BV_CONN_AUTH_FAILED, rc);
}

static int
auth_in_flight(const struct bv_conn *c)
{
	const struct pending *p;

	for (p = c->pend; p; p = p->next)
		if (p->internal)
			return 1;
	return 0;
}

static void
on_challenge(struct bv_conn *c, const struct bv_wire_msg *m)
{
	uint8_t sig[BV_SIG_LEN];
	char *msg = NULL, *frame = NULL;
	int64_t id, mf = m->u.challenge.limits.max_frame_bytes;
	int rc;

	if (c->authed || auth_in_flight(c))
		return;
	memcpy(c->webpush_key, m->u.challenge.webpush_key,
	       sizeof(c->webpush_key));
	if (mf > 0) {
		if (mf < FRAME_FLOOR)
			mf = FRAME_FLOOR;
		if ((uint64_t)mf > FRAME_CEIL)
			mf = FRAME_CEIL;
		c->max_frame = (size_t)mf;
	}
	id = conn__next_id(c);
	if (c->cred == CRED_ENROLL)
		msg = bv_enroll_message(m->u.challenge.nonce, c->token);
	else
		msg = bv_auth_message(m->u.challenge.nonce, c->account,
				      c->device);
	if (!msg) {
		rc = BV_ENOMEM;
		goto out;
	}
	crypto_sign_detached(sig, NULL, (const uint8_t *)msg, strlen(msg),
			     c->sk);
	if (c->cred == CRED_ENROLL)
		rc = bv_wire_build_enroll(id, c->token, c->regid, c->identity,
					  c->sk + 32, sig, c->replaces, &frame);
	else
		rc = bv_wire_build_auth(id, c->account, c->device, sig, &frame);
	if (rc < 0)
		goto out;
	rc = request_add(c, id, frame, 1, auth_answer, c, 1);
out:
	bv_wipe(sig, sizeof(sig));
	if (msg) {
		bv_wipe(msg, strlen(msg));
		bv_free(msg);
	}
	if (frame) {
		bv_wipe(frame, strlen(frame));
		bv_free(frame);
	}
	if (rc < 0) {
		bv_log(BV_LOG_WARN, "conn: cannot answer challenge: %s",
		       bv_errname(rc));
		close_with(c, CLOSE_UNEXPECTED);
	}
}

static void
on_deliver(struct bv_conn *c, const struct bv_wire_msg *m)
{
	char *frame = NULL;
	int rc = BV_EINTERNAL, acked = 0;

	if (c->cbs.on_deliver && !c->closing)
		rc = c->cbs.on_deliver(c->cbs.ud, m);
	if (rc == 0) {
		rc = bv_wire_build_ack(m->id, &frame);
		acked = 1;
	} else {
		/* Only a BV_E* code goes on the wire. */
		if (rc > 0 || !strcmp(bv_errname(rc), "BV_EUNKNOWN"))
			rc = BV_EINTERNAL;
		rc = bv_wire_build_error(m->id, rc, &frame);
	}
	/*
	 * An answer that cannot be queued leaves the envelope unacknowledged
	 * on a connection that would stall the deliver window: start over.
	 */
	if (rc == 0)
		rc = out_queue(c, frame, strlen(frame), 0, 1);
	if (rc == 0 && acked)
		c->st.acks++;
	else if (rc == 0)
		c->st.refused++;
	bv_free(frame);
	if (rc < 0 && !c->closing) {
		bv_log(BV_LOG_WARN, "conn: cannot answer deliver: %s",
		       bv_errname(rc));
		close_with(c, CLOSE_UNEXPECTED);
	}
}

static void
on_frame(struct bv_conn *c, const char *buf, size_t len)
{
	struct bv_wire_msg *m = NULL;
	struct pending *p;
	int rc;

	rc = bv_wire_parse(buf, len, c->max_frame, &m);
	if (rc < 0) {
		/* Newer relays may add ops; a broken frame is not fatal. */
		bv_log(BV_LOG_NOTICE, "conn: relay frame ignored: %s",
		       bv_errname(rc));
		return;
	}
	switch (m->kind) {
	case BV_WIRE_CHALLENGE:
		on_challenge(c, m);
		break;
	case BV_WIRE_QUEUE_EMPTY:
		if (c->cbs.on_queue_empty && !c->closing)
			c->cbs.on_queue_empty(c->cbs.ud);
		break;
	case BV_WIRE_PREKEYS_LOW:
		if (c->cbs.on_prekeys_low && !c->closing)
			c->cbs.on_prekeys_low(c->cbs.ud,
					      m->u.prekeys_low.one_time_count);
		break;
	case BV_WIRE_CASES_CHANGED:
		if (c->cbs.on_cases_changed && c->authed && !c->closing)
			c->cbs.on_cases_changed(c->cbs.ud,
						m->u.cases_changed.case_id);
		break;
	case BV_WIRE_DISPLACED:
		if (!c->displaced) {
			c->displaced = 1;
			c->running = 0;
			event(c, BV_CONN_DISPLACED, CLOSE_DISPLACED);
		}
		break;
	case BV_WIRE_DELIVER:
		if (c->authed)
			on_deliver(c, m);
		break;
	case BV_WIRE_OK:
	case BV_WIRE_ERROR:
		p = m->id > 0 ? pending_take(c, m->id) : NULL;
		if (!p) {
			bv_log(BV_LOG_NOTICE, "conn: response to unknown id");
			break;
		}
		if (p->cb)
			p->cb(p->arg,
			      m->kind == BV_WIRE_OK ? 0 : m->u.error.code, m);
		bv_free(p);
		break;
	}
	bv_wire_msg_free(m);
}

/* The connection (or the attempt) ended: clean up, maybe reconnect. */
static void
gone(struct bv_conn *c, int code)
{
	if (!c->live)
		return;
	c->live = 0;
	c->authed = 0;
	c->close_code = 0;
	out_free_all(c);
	pending_fail_all(c);
	if (code == CLOSE_DISPLACED && !c->displaced) {
		c->displaced = 1;
		c->running = 0;
		event(c, BV_CONN_DISPLACED, code);
	}
	if (c->displaced || c->auth_failed || c->closing)
		return;
	event(c, BV_CONN_DISCONNECTED, code);
	if (c->running)
		schedule_reconnect(c);
}

void
conn__t_opened(struct bv_conn *c)
{
	if (!c->live)
		return;
	bv_log(BV_LOG_INFO, "conn: connected to %s:%d", c->host, c->cfg.port);
	event(c, BV_CONN_CONNECTED, 0);
}

void
conn__t_dropped(struct bv_conn *c)
{
	if (!c->live || c->close_code)
		return;
	bv_log(BV_LOG_NOTICE, "conn: relay frame too large or binary, dropped");
}

void
conn__t_frame(struct bv_conn *c, const char *buf, size_t len)
{
	/* After close_with() nothing more is read: we are giving up. */
	if (!c->live || c->close_code)
		return;
	/* conn_lws.c assembles no more and conn_web.c asks before it copies;
	 * checked here as well so that no transport gets past the cap. */
	if (len > c->max_frame) {
		conn__t_dropped(c);
		return;
	}
	on_frame(c, buf, len);
}

int
conn__t_writable(struct bv_conn *c)
{
	if (!c->live || c->close_code)
		return 0;
	return write_one(c);
}

void
conn__t_closed(struct bv_conn *c, int code)
{
	gone(c, code);
}

size_t
conn__t_max_frame(const struct bv_conn *c)
{
	return c->max_frame;
}

static void
connect_now(struct bv_conn *c)
{
	if (c->live || !c->running || c->closing)
		return;
	c->displaced = 0;
	c->auth_failed = 0;
	c->close_code = 0;
	c->max_frame = c->cfg.max_frame_bytes;
	c->live = 1;
	c->st.connects++;
	/* May end the attempt (conn__t_closed()) before it returns. */
	transport__open(c->t, c->host, c->cfg.port);
}

static void
reconnect_timer(uv_timer_t *t)
{
	connect_now(t->data);
}

/* Full jitter over [min, min(max, min * 2^attempt)]. */
static void
schedule_reconnect(struct bv_conn *c)
{
	uint64_t cap = c->cfg.backoff_min_ms;
	uint32_t delay;
	unsigned i;

	if (uv_is_active((uv_handle_t *)&c->timer))
		return;
	for (i = 0; i < c->st.attempt && cap < c->cfg.backoff_max_ms; i++)
		cap *= 2;
	if (cap > c->cfg.backoff_max_ms)
		cap = c->cfg.backoff_max_ms;
	delay = c->cfg.backoff_min_ms +
		randombytes_uniform(
			(uint32_t)(cap - c->cfg.backoff_min_ms + 1));
	c->st.attempt++;
	c->st.last_delay = delay;
	bv_log(BV_LOG_INFO, "conn: reconnecting in %u ms", delay);
	uv_timer_start(&c->timer, reconnect_timer, delay, 0);
}

int
conn__new(const struct bv_conn_cfg *cfg, const struct bv_conn_cbs *cbs,
	  struct bv_conn **out)
{
	struct bv_conn *c = NULL;
	int rc = BV_EINVAL;

	if (!cfg || !cbs || !out || !cfg->host || cfg->port <= 0 ||
	    cfg->port > 65535 || !cbs->on_event)
		goto out;
	rc = BV_ENOMEM;
	c = bv_calloc(1, sizeof(*c));
	if (!c)
		goto out;
	c->cfg = *cfg;
	c->cbs = *cbs;
	c->host = bv_strdup(cfg->host);
	if (!c->host)
		goto out;
	c->cfg.host = NULL;
	if (!c->cfg.backoff_min_ms)
		c->cfg.backoff_min_ms = 500;
	if (!c->cfg.backoff_max_ms)
		c->cfg.backoff_max_ms = 60000;
	if (c->cfg.backoff_max_ms < c->cfg.backoff_min_ms)
		c->cfg.backoff_max_ms = c->cfg.backoff_min_ms;
	if (!c->cfg.max_output_bytes)
		c->cfg.max_output_bytes = 1024 * 1024;
	if (!c->cfg.max_in_flight)
		c->cfg.max_in_flight = 64;
	if (!c->cfg.max_frame_bytes)
		c->cfg.max_frame_bytes = DEFAULT_FRAME;
	if (!c->cfg.connect_timeout_s)
		c->cfg.connect_timeout_s = 10;
	c->max_frame = c->cfg.max_frame_bytes;
	c->next_id = 1;
	if (cfg->loop) {
		c->loop = cfg->loop;
	} else {
		rc = BV_EIO;
		if (uv_loop_init(&c->own_loop) != 0)
			goto out;
		c->owns_loop = 1;
		c->loop = &c->own_loop;
	}
	uv_timer_init(c->loop, &c->timer);
	c->timer.data = c;
	c->timer_init = 1;
	rc = transport__new(c, c->loop, &c->cfg, &c->t);
	if (rc < 0)
		goto out;
	*out = c;
	c = NULL;
	rc = 0;
out:
	if (c) {
		if (c->timer_init) {
			uv_close((uv_handle_t *)&c->timer, NULL);
			uv_run(c->loop, UV_RUN_NOWAIT);
		}
		if (c->owns_loop)
			uv_loop_close(&c->own_loop);
		bv_free(c->host);
		bv_free(c);
	}
	return rc;
}

uv_loop_t *
conn__loop(struct bv_conn *c)
{
	return c->loop;
}

static void
cred_clear(struct bv_conn *c)
{
	bv_wipe(c->sk, sizeof(c->sk));
	if (c->token) {
		bv_wipe(c->token, strlen(c->token));
		bv_free(c->token);
		c->token = NULL;
	}
	c->cred = CRED_NONE;
}

int
conn__set_auth(struct bv_conn *c, const char *account, uint32_t device,
	       const uint8_t sk[64])
{
	if (!c || !account || !bv_uuid_valid(account) || device < 1 ||
	    device > BV_ID_MAX || !sk)
		return BV_EINVAL;
	cred_clear(c);
	memcpy(c->account, account, sizeof(c->account));
	c->device = device;
	memcpy(c->sk, sk, sizeof(c->sk));
	c->cred = CRED_AUTH;
	return 0;
}

int
conn__set_enroll(struct bv_conn *c, const char *token, uint32_t registration_id,
		 const uint8_t identity_key[BV_KEY_LEN], const uint8_t sk[64],
		 uint32_t replaces)
{
	char *t;

	if (!c || !token || !*token || !identity_key || !sk ||
	    registration_id < 1 || registration_id > BV_ID_MAX ||
	    replaces > BV_ID_MAX)
		return BV_EINVAL;
	t = bv_strdup(token);
	if (!t)
		return BV_ENOMEM;
	cred_clear(c);
	c->token = t;
	c->regid = registration_id;
	memcpy(c->identity, identity_key, sizeof(c->identity));
	memcpy(c->sk, sk, sizeof(c->sk));
	c->replaces = replaces;
	c->cred = CRED_ENROLL;
	return 0;
}

const char *
conn__account(const struct bv_conn *c)
{
	return c->account;
}

const char *
conn__webpush_key(const struct bv_conn *c)
{
	return c->webpush_key[0] ? c->webpush_key : NULL;
}

uint32_t
conn__device(const struct bv_conn *c)
{
	return c->device;
}

int
conn__set_relay(struct bv_conn *c, const char *host, int port)
{
	char *h;

	if (!c || !host || port <= 0 || port > 65535)
		return BV_EINVAL;
	h = bv_strdup(host);
	if (!h)
		return BV_ENOMEM;
	bv_free(c->host);
	c->host = h;
	c->cfg.port = port;
	return 0;
}

int
conn__start(struct bv_conn *c)
{
	if (!c || c->cred == CRED_NONE || c->closing)
		return BV_EINVAL;
	if (c->running)
		return BV_EALREADY;
	c->running = 1;
	c->st.attempt = 0;
	if (!c->live) {
		uv_timer_stop(&c->timer);
		connect_now(c);
	}
	return 0;
}

void
conn__stop(struct bv_conn *c)
{
	if (!c)
		return;
	c->running = 0;
	uv_timer_stop(&c->timer);
	pending_fail_all(c);
	close_with(c, CLOSE_NORMAL);
}

int
conn__ready(const struct bv_conn *c)
{
	return c && c->authed && c->live && !c->close_code;
}

void
conn__stats(const struct bv_conn *c, struct bv_conn_stats *out)
{
	*out = c->st;
}

void
conn__close(struct bv_conn *c)
{
	if (!c || c->closing)
		return;
	conn__stop(c);
	c->closing = 1;
	if (c->timer_init) {
		uv_close((uv_handle_t *)&c->timer, NULL);
		c->timer_init = 0;
	}
	/* The transport drops the connection (possibly reporting it: gone())
	 * and starts closing its handles. */
	if (c->t)
		transport__shutdown(c->t);
	gone(c, -1);
}

void
conn__free(struct bv_conn *c)
{
	if (!c)
		return;
	conn__close(c);
	if (c->owns_loop)
		uv_run(c->loop, UV_RUN_DEFAULT);
	transport__free(c->t);
	c->t = NULL;
	if (c->owns_loop) {
		uv_run(c->loop, UV_RUN_DEFAULT);
		uv_loop_close(&c->own_loop);
	}
	cred_clear(c);
	out_free_all(c);
	bv_free(c->host);
	bv_free(c);
}
