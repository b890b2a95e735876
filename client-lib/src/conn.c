/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * conn.c: the client's WebSocket to the relay (lws 4.1 on libuv, as
 * relay/server.c): frame reassembly capped at max_frame_bytes, a bounded
 * output queue, auth/enroll on each challenge, backoff reconnects, request
 * ids matched to responses, deliver acknowledged after the caller stored the
 * envelope. It never looks inside envelope bodies and never logs keys or
 * tokens. Not thread-safe: everything runs on the loop's thread.
 */
#include <string.h>
#include <libwebsockets.h>
#include <sodium.h>
#include <uv.h>

#include "bv_error.h"
#include "bv_util.h"
#include "conn.h"

#define CLOSE_NORMAL	1000
#define CLOSE_DISPLACED 4001
/* LWS_WRITE_CLOSE of lws 4.1's private-lib-roles-ws.h (see server.c). */
#define WRITE_CLOSE   ((enum lws_write_protocol)4)
#define DEFAULT_FRAME 262144
#define FRAME_FLOOR   4096
#define FRAME_CEIL    (16u * 1024 * 1024)

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
	struct lws_context *lws;
	uv_timer_t timer; /* reconnect backoff */
	int timer_init;

	/* credentials */
	enum cred cred;
	char account[BV_UUID_LEN + 1];
	uint32_t device;
	uint8_t sk[64];
	char *token;
	uint32_t regid;
	uint8_t identity[BV_KEY_LEN];
	uint32_t replaces;

	/* state */
	int running; /* reconnects wanted */
	int closing; /* conn__close() called */
	struct lws *wsi;
	int live; /* a connection attempt is in progress or up */
	int authed;
	int close_code;	  /* we are closing with this code */
	int peer_close;	  /* the relay's close code, 0 if none */
	int displaced;	  /* reported for this connection */
	int auth_failed;  /* code, or 0 */
	size_t max_frame; /* current cap for frames both ways */
	char *rx;
	size_t rx_len, rx_cap;
	int rx_overflow;
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
			bv_wipe(f->buf, LWS_PRE + f->len);
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

/* Starts closing our side with code; the frame goes out when writable. */
static void
close_with(struct bv_conn *c, int code)
{
	if (!c->wsi || c->close_code)
		return;
	c->close_code = code;
	lws_callback_on_writable(c->wsi);
}

/*
 * Queues one frame. answer: a small answer to a relay request, which the
 * relay's deliver_window already bounds, so it may go over the cap (a
 * refused ack would stall the connection). Returns 0, BV_EBUSY when the
 * output cap would be exceeded, BV_EFRAME over max_frame, BV_EUNAVAILABLE
 * without a connection, BV_ENOMEM.
 */
static int
out_queue(struct bv_conn *c, const char *s, size_t len, int secret, int answer)
{
	struct outframe *f;

	if (!c->wsi || c->close_code)
		return BV_EUNAVAILABLE;
	if (len > c->max_frame)
		return BV_EFRAME;
	if (!answer && c->out_bytes + len > c->cfg.max_output_bytes)
		return BV_EBUSY;
	f = bv_malloc(sizeof(*f) + LWS_PRE + len);
	if (!f)
		return BV_ENOMEM;
	f->next = NULL;
	f->len = len;
	f->secret = secret;
	memcpy(f->buf + LWS_PRE, s, len);
	if (c->out_tail)
		c->out_tail->next = f;
	else
		c->out_head = f;
	c->out_tail = f;
	c->out_bytes += len;
	lws_callback_on_writable(c->wsi);
	return 0;
}

static int
write_one(struct bv_conn *c)
{
	struct outframe *f = c->out_head;
	int n;

	if (!f)
		return 0;
	n = lws_write(c->wsi, f->buf + LWS_PRE, f->len, LWS_WRITE_TEXT);
	if (n < (int)f->len)
		return -1;
	c->out_head = f->next;
	if (!c->out_head)
		c->out_tail = NULL;
	c->out_bytes -= f->len;
	if (f->secret)
		bv_wipe(f->buf, LWS_PRE + f->len);
	bv_free(f);
	if (c->out_head)
		lws_callback_on_writable(c->wsi);
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
	if (!c->authed || !c->wsi || c->close_code)
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
				close_with(c, LWS_CLOSE_STATUS_PROTOCOL_ERR);
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
		close_with(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION);
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
		close_with(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION);
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

static int
rx_append(struct bv_conn *c, const void *in, size_t len)
{
	char *n;

	if (c->rx_overflow)
		return 0;
	if (c->rx_len + len > c->max_frame) {
		c->rx_overflow = 1;
		c->rx_len = 0;
		return 0;
	}
	if (c->rx_len + len + 1 > c->rx_cap) {
		size_t want = c->rx_cap ? c->rx_cap : 4096;

		while (want < c->rx_len + len + 1)
			want *= 2;
		if (want > c->max_frame + 1)
			want = c->max_frame + 1;
		n = bv_realloc(c->rx, want);
		if (!n)
			return BV_ENOMEM;
		c->rx = n;
		c->rx_cap = want;
	}
	memcpy(c->rx + c->rx_len, in, len);
	c->rx_len += len;
	return 0;
}

/* The connection (or the attempt) ended: clean up, maybe reconnect. */
static void
gone(struct bv_conn *c)
{
	int code = c->peer_close ? c->peer_close : -1;

	if (!c->live)
		return;
	c->live = 0;
	c->wsi = NULL;
	c->authed = 0;
	c->close_code = 0;
	out_free_all(c);
	c->rx_len = 0;
	c->rx_overflow = 0;
	bv_free(c->rx);
	c->rx = NULL;
	c->rx_cap = 0;
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

/* Whether wsi is our current attempt (NULL wsi: lws_client_connect_via_info
 * has not returned yet). */
static int
mine(const struct bv_conn *c, const struct lws *wsi)
{
	return c->live && (c->wsi == wsi || c->wsi == NULL);
}

static int
ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
	    void *in, size_t len)
{
	struct lws_context *ctx = lws_get_context(wsi);
	struct bv_conn *c = ctx ? lws_context_user(ctx) : NULL;
	const unsigned char *p = in;

	(void)user;
	if (!c)
		return 0;
	switch (reason) {
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		if (wsi != c->wsi)
			return -1;
		bv_log(BV_LOG_INFO, "conn: connected to %s:%d", c->host,
		       c->cfg.port);
		event(c, BV_CONN_CONNECTED, 0);
		return 0;

	case LWS_CALLBACK_CLIENT_RECEIVE:
		if (wsi != c->wsi || c->close_code)
			return 0;
		if (lws_is_first_fragment(wsi)) {
			c->rx_len = 0;
			c->rx_overflow = lws_frame_is_binary(wsi);
		}
		if (rx_append(c, in, len) < 0)
			return -1;
		if (!lws_is_final_fragment(wsi) ||
		    lws_remaining_packet_payload(wsi))
			return 0;
		if (c->rx_overflow)
			bv_log(BV_LOG_NOTICE, "conn: relay frame too large or "
					      "binary, dropped");
		else
			on_frame(c, c->rx, c->rx_len);
		c->rx_len = 0;
		c->rx_overflow = 0;
		if (c->rx_cap > 65536) {
			bv_free(c->rx);
			c->rx = NULL;
			c->rx_cap = 0;
		}
		return 0;

	case LWS_CALLBACK_CLIENT_WRITEABLE:
		if (wsi != c->wsi)
			return -1;
		if (c->close_code) {
			unsigned char cf[LWS_PRE + 2];

			/* As server.c: lws 4.1 on libuv would hang up
			 * without the close frame. */
			cf[LWS_PRE] = (unsigned char)(c->close_code >> 8);
			cf[LWS_PRE + 1] = (unsigned char)(c->close_code & 0xff);
			lws_write(wsi, cf + LWS_PRE, 2, WRITE_CLOSE);
			return -1;
		}
		return write_one(c) < 0 ? -1 : 0;

	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (wsi == c->wsi && len >= 2)
			c->peer_close = (p[0] << 8) | p[1];
		return 0;

	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		bv_log(BV_LOG_INFO, "conn: cannot connect to %s:%d: %s",
		       c->host, c->cfg.port, in ? (const char *)in : "-");
		/* fall through */
	case LWS_CALLBACK_CLIENT_CLOSED:
		if (mine(c, wsi))
			gone(c);
		return 0;

	default:
		return 0;
	}
}

static const struct lws_protocols protocols[] = {
	{BV_SUBPROTOCOL, ws_callback, 0, 65536, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0}};

static void
connect_now(struct bv_conn *c)
{
	struct lws_client_connect_info ci;
	struct lws *w;

	if (c->live || !c->running || c->closing)
		return;
	memset(&ci, 0, sizeof(ci));
	ci.context = c->lws;
	ci.address = c->host;
	ci.port = c->cfg.port;
	ci.path = BV_WS_PATH;
	ci.host = c->host;
	/* No ci.origin: lws would send "Origin: http://<host>", which is
	 * what a browser page sends, and the relay refuses browser origins
	 * it does not serve the widget under (docs/protocol.md). */
	ci.protocol = BV_SUBPROTOCOL;
	ci.local_protocol_name = BV_SUBPROTOCOL;
	ci.ietf_version_or_minus_one = -1;
	c->peer_close = 0;
	c->displaced = 0;
	c->auth_failed = 0;
	c->close_code = 0;
	c->max_frame = c->cfg.max_frame_bytes;
	c->wsi = NULL;
	c->live = 1;
	c->st.connects++;
	w = lws_client_connect_via_info(&ci);
	/* lws may already have reported CONNECTION_ERROR (then !live). */
	if (!w && c->live)
		gone(c);
	else if (w && c->live)
		c->wsi = w;
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

static void
lws_log_emit(int level, const char *line)
{
	size_t n = strlen(line);

	while (n && line[n - 1] == '\n')
		n--;
	bv_log(level == LLL_ERR ? BV_LOG_ERR : BV_LOG_WARN, "lws: %.*s", (int)n,
	       line);
}

int
conn__new(const struct bv_conn_cfg *cfg, const struct bv_conn_cbs *cbs,
	  struct bv_conn **out)
{
	struct lws_context_creation_info info;
	struct bv_conn *c = NULL;
	void *loops[1];
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

	lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);
	memset(&info, 0, sizeof(info));
	loops[0] = c->loop;
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.options = LWS_SERVER_OPTION_LIBUV;
	info.foreign_loops = loops;
	info.user = c;
	info.timeout_secs = c->cfg.connect_timeout_s;
	info.connect_timeout_secs = c->cfg.connect_timeout_s;
	info.ka_time = 60;
	info.ka_probes = 3;
	info.ka_interval = 10;
	c->lws = lws_create_context(&info);
	rc = BV_EIO;
	if (!c->lws)
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
	return c && c->authed && c->wsi && !c->close_code;
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
	/* lws closes the connection (CLIENT_CLOSED: gone()) and its handles. */
	if (c->lws)
		lws_context_destroy(c->lws);
	gone(c);
}

void
conn__free(struct bv_conn *c)
{
	if (!c)
		return;
	conn__close(c);
	if (c->owns_loop)
		uv_run(c->loop, UV_RUN_DEFAULT);
	if (c->lws) {
		lws_context_destroy(c->lws);
		c->lws = NULL;
	}
	if (c->owns_loop) {
		uv_run(c->loop, UV_RUN_DEFAULT);
		uv_loop_close(&c->own_loop);
	}
	cred_clear(c);
	out_free_all(c);
	bv_free(c->rx);
	bv_free(c->host);
	bv_free(c);
}
