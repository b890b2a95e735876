/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * conn.h: libbvchat's connection to one relay (docs/protocol.md): a
 * WebSocket client on a libuv loop, device auth or enrollment on each
 * challenge, reconnects with bounded exponential backoff and jitter, request
 * ids matched to responses, deliver answered only after the caller stored
 * the envelope. conn.c is the logic; the WebSocket is conn_lws.c natively and
 * conn_web.c in the browser, whose loop is web-widget/compat's uv shim
 * (conn_transport.h). It does not encrypt, decrypt or build requests (wire.c
 * and the session layer do). One thread: the loop's.
 */
#ifndef BV_CONN_H
#define BV_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "bv_proto.h"
#include "wire.h"

struct bv_conn;

/* What conn__cbs.on_event reports. */
enum bv_conn_event {
	BV_CONN_CONNECTED = 1, /* socket up, challenge awaited; code 0 */
	BV_CONN_AUTHED,	       /* auth or enroll ok; code 0 */
	/* Connection gone or could not be made; code is the relay's close
	 * code or -1. A reconnect is scheduled. */
	BV_CONN_DISCONNECTED,
	/* Another install of this device took over (4001). No reconnect
	 * until conn__start() is called again. */
	BV_CONN_DISPLACED,
	/* auth or enroll refused for good (code BV_EAUTH, BV_ETOKEN…). No
	 * reconnect until new credentials and conn__start(). */
	BV_CONN_AUTH_FAILED,
};

struct bv_conn_cbs {
	void *ud; /* passed to every callback */
	void (*on_event)(void *ud, enum bv_conn_event ev, int code);
	/*
	 * One deliver request. Return 0 only once the envelope is stored
	 * durably: then it is acknowledged and the relay deletes it. Any
	 * other value (a BV_E* code) answers with an error; the envelope
	 * stays queued and comes again on the next connection. m is borrowed
	 * for the call. Without this callback every deliver is refused.
	 */
	int (*on_deliver)(void *ud, const struct bv_wire_msg *m);
	void (*on_queue_empty)(void *ud);
	void (*on_prekeys_low)(void *ud, uint32_t one_time_count);
	/* cases_changed: case_id the case, "" when the relay named none. */
	void (*on_cases_changed)(void *ud, const char *case_id);
};

struct bv_conn_cfg {
	const char *host; /* relay address, e.g. "127.0.0.1" */
	int port;
	/* NULL: the connection owns a loop (conn__loop()); else borrowed. */
	uv_loop_t *loop;
	uint32_t backoff_min_ms;    /* 0: 500 */
	uint32_t backoff_max_ms;    /* 0: 60000; at least backoff_min_ms */
	size_t max_output_bytes;    /* queued, unwritten frames; 0: 1 MiB */
	unsigned max_in_flight;	    /* unanswered requests; 0: 64 */
	size_t max_frame_bytes;	    /* until the challenge says; 0: 262144 */
	unsigned connect_timeout_s; /* 0: 10 */
};

/* Counters for tests and diagnostics. */
struct bv_conn_stats {
	unsigned connects;   /* connection attempts made */
	unsigned authed;     /* successful auth/enroll */
	unsigned attempt;    /* failed attempts since the last auth */
	uint32_t last_delay; /* the last backoff delay chosen, ms */
	unsigned acks;	     /* deliver acknowledged */
	unsigned refused;    /* deliver answered with an error */
};

/*
 * The response to one request: rc 0 and the BV_WIRE_OK message, or the
 * error's code and the BV_WIRE_ERROR message, or BV_EUNAVAILABLE (retryable)
 * and m NULL when the connection dropped before the answer came (a send may
 * have been stored: retry with the same message_id). m is borrowed.
 */
typedef void (*bv_conn_response_cb)(void *arg, int rc,
				    const struct bv_wire_msg *m);

/*
 * Makes a connection object; nothing happens until conn__start(). cfg and
 * cbs are copied. Returns 0 and sets *out, or BV_EINVAL (missing host,
 * port or on_event), BV_ENOMEM, BV_EIO (the transport: lws context).
 */
int conn__new(const struct bv_conn_cfg *cfg, const struct bv_conn_cbs *cbs,
	      struct bv_conn **out);

/* The loop the connection runs on (its own, or the caller's). */
uv_loop_t *conn__loop(struct bv_conn *c);

/*
 * Credentials for the next challenge. conn__set_auth: an enrolled device;
 * sk is its Ed25519 secret key (64 bytes, libsodium layout), copied and
 * wiped on free. conn__set_enroll: a first start; after the relay accepts,
 * the connection switches to auth with the account and device it got (the
 * token is wiped then). replaces 0 adds a device. Both return 0 or
 * BV_EINVAL (bad uuid, device, token) or BV_ENOMEM.
 */
int conn__set_auth(struct bv_conn *c, const char *account, uint32_t device,
		   const uint8_t sk[64]);
int conn__set_enroll(struct bv_conn *c, const char *token,
		     uint32_t registration_id,
		     const uint8_t identity_key[BV_KEY_LEN],
		     const uint8_t sk[64], uint32_t replaces);

/* The account and device ("" and 0 before the first success). */
const char *conn__account(const struct bv_conn *c);
/* The relay's VAPID public key from its last challenge (base64url of a
 * 65-byte point), or NULL when it gave none. */
const char *conn__webpush_key(const struct bv_conn *c);
uint32_t conn__device(const struct bv_conn *c);

/* Points later connections at another relay. 0 or BV_EINVAL/BV_ENOMEM. */
int conn__set_relay(struct bv_conn *c, const char *host, int port);

/*
 * Connects now (also after displaced or auth failure). Returns 0,
 * BV_EINVAL when no credentials were set, BV_EALREADY when running.
 */
int conn__start(struct bv_conn *c);

/* Closes the connection (1000) and stops reconnecting; outstanding
 * requests fail with BV_EUNAVAILABLE. */
void conn__stop(struct bv_conn *c);

/* 1 when authenticated (requests may be sent), else 0. */
int conn__ready(const struct bv_conn *c);

/* A fresh request id (1 … BV_ID_MAX, not outstanding) for a wire builder. */
int64_t conn__next_id(struct bv_conn *c);

/*
 * Sends a request made by a wire.c builder with an id from conn__next_id();
 * frame is borrowed and copied. cb (may be NULL) gets exactly one answer.
 * Returns 0, or: BV_EINVAL (NULL frame, bad or duplicate id), BV_EUNAVAILABLE
 * (not authenticated now; retryable), BV_EBUSY (max_in_flight requests or
 * max_output_bytes queued; retryable), BV_EFRAME (larger than the relay's
 * max_frame_bytes), BV_ENOMEM. On an error cb is never called.
 */
int conn__request(struct bv_conn *c, int64_t id, const char *frame,
		  bv_conn_response_cb cb, void *arg);

/* Copies the counters. */
void conn__stats(const struct bv_conn *c, struct bv_conn_stats *out);

/*
 * Shutting down takes two steps on a foreign loop (the transport frees its
 * handles through the loop): conn__close() stops, then the caller runs the loop
 * until uv_run() returns, then conn__free(). With the connection's own
 * loop, conn__free() does all of it. No callbacks after conn__close()
 * except failed requests. Neither may be called from a callback.
 */
void conn__close(struct bv_conn *c);
void conn__free(struct bv_conn *c);

#endif
