/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * relay.h: the relay process's shared state and the calls between its
 * modules: server.c (libwebsockets, connections, HTTP), ops.c (requests),
 * deliver.c (per-device queues to connections), metrics.c.
 *
 * Everything runs on one libuv loop in one thread; nothing here locks.
 * Connections are reference-counted heap objects because database callbacks
 * can outlive the WebSocket they were made for (c->wsi is then NULL).
 */
#ifndef BV_RELAY_RELAY_H
#define BV_RELAY_RELAY_H

#include <stdint.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <uthash.h>
#include <uv.h>

#include "bv_proto.h"
#include "bv_token.h"
#include "bv_util.h"
#include "config.h"
#include "db.h"
#include "ratelimit.h"

#define RELAY_VERSION "bvchat-relay/0.1"

/* One envelope as it is pushed to a device. */
struct delivery {
	int64_t seq;
	char sender[37];
	uint32_t
		sender_device; /* 0: a notice from the service (relay content) */
	char conversation[37]; /* "" for rows older than conversations */
	const char *message_id;
	uint8_t type;
	int64_t ts;
	const uint8_t *body;
	size_t body_len;
};

/* A push the device has not yet acknowledged (or whose delete is not yet
 * committed). Kept so a re-fetch never pushes the same envelope twice. */
struct push {
	int64_t seq;
	int32_t push_id;
	uint8_t state; /* PUSH_SENT, PUSH_ACKED, PUSH_DELETING, PUSH_REJECTED */
};

enum { PUSH_SENT, PUSH_ACKED, PUSH_DELETING, PUSH_REJECTED };

struct outframe {
	struct outframe *next;
	size_t len;
	unsigned char buf[]; /* LWS_PRE bytes of headroom, then len bytes */
};

struct conn {
	struct relay *r;
	struct lws *wsi; /* NULL once the WebSocket is gone */
	int refs;
	struct conn *prev, *next; /* r->conns */

	/* Receiving: a frame is reassembled here up to max_frame_bytes. */
	struct bv_msg rx;
	int rx_binary;

	/* Sending: bounded by max_output_bytes, then close 4003. */
	struct outframe *out_head, *out_tail;
	size_t out_bytes;
	int close_code; /* non-zero: close after the queue drains */

	/* Authentication. */
	char nonce_b64[48];
	uv_timer_t *auth_timer;
	int auth_busy; /* an auth/enroll is waiting for the database */
	int authed;
	char account[37];
	char tenant[37];
	uint32_t device_id;
	int64_t device;		/* devices.id */
	int64_t auth_order;	/* increases with every authentication */
	UT_hash_handle hh;	/* r->by_device, when authed */
	struct conn *acct_next; /* r->accounts' list, when authed */

	unsigned requests_in_flight;
	struct ratelimit rl;

	/* Delivery (deliver.c). */
	struct push *pushes; /* deliver_window slots */
	unsigned n_pushes;
	int32_t next_push_id;
	int fetching;	      /* a fetch is at the database */
	unsigned fetch_limit; /* rows that fetch asked for */
	int more;	      /* the queue may hold envelopes not yet pushed */
	int queue_empty_sent;
};

/* Devices of one account as last read from the database. */
struct devcache_entry {
	char account[37];
	char tenant[37]; /* "" = no such account */
	size_t n;
	struct devcache_dev {
		uint32_t device_id;
		uint32_t registration_id;
		int64_t id;
	} * devs;
	UT_hash_handle hh;
};

/* The required accounts of a send (docs/protocol.md `send`). */
struct required {
	size_t n;
	char (*accounts)[37];
	uint8_t *archive; /* per account: an archive account */
};

/* One cached answer of bv_send_accounts() for (conversation, sender). */
struct reqcache_entry {
	char key[74]; /* conversation ":" sender */
	int rc;	      /* 0, or BV_ENOACCOUNT: may not send */
	struct required req;
	UT_hash_handle hh;
};

/* The authenticated connections of one account on this relay. */
struct acct_count {
	char account[37];
	unsigned n;
	struct conn *conns; /* linked by conn.acct_next */
	UT_hash_handle hh;
};

struct relay_metrics {
	unsigned long long connections_total;
	unsigned long long frames_in;
	unsigned long long requests[BV_OP__COUNT];
	unsigned long long errors[64]; /* by -code */
	unsigned long long sends;
	unsigned long long envelopes_stored;
	unsigned long long pushes;
	unsigned long long acks;
	unsigned long long fetches;
	unsigned long long displaced;
	unsigned long long notifies;
	unsigned long long slow_consumers;
	unsigned long long send_latency_us_sum; /* accept to commit */
	unsigned long long invite_redeemed; /* codes exchanged for tickets */
	unsigned long long invite_refused;  /* BV_EINVITE answers */
	unsigned long long invite_limited;  /* refused by the failure limit */
};

/* Attachments (blob.c): the last sweep's look at the table, and counters. */
struct blob_stats {
	int valid;			 /* a sweep has read the figures */
	unsigned long long count, bytes; /* blobs stored (pending too) */
	unsigned long long unjournaled;	 /* complete, not yet journaled */
	unsigned long long oldest_unjournaled_s;
	unsigned long long uploads_ok, uploads_failed, downloads;
	unsigned long long swept; /* blobs deleted by this relay's sweeps */
	unsigned transfers;	  /* uploads and downloads running here */
};

struct widget;
struct invite_limits;
struct blobs;

struct relay {
	struct relay_config *cfg;
	uv_loop_t *loop;
	struct lws_context *lws;
	struct widget *widget; /* NULL: no widget_dir */
	int invites;	       /* invite_key_file was read: invites on */
	uint8_t invite_key[32];
	struct invite_limits *invite_limits; /* failures per address */
	struct db *dbw;			     /* writes: group commit */
	struct db *dbr;			     /* reads, LISTEN */
	struct db *dbb;			     /* attachments' bytes (blob.c) */
	struct blobs *blobs;
	struct blob_stats bs;
	char instance[37];
	struct conn *conns; /* every open connection */
	unsigned n_conns, n_authed;
	struct conn *by_device;
	struct acct_count *accounts;
	struct devcache_entry *cache;
	unsigned cache_n;
	unsigned long cache_gen;
	struct reqcache_entry *reqcache;
	unsigned reqcache_n;
	unsigned long reqcache_gen; /* bumped whenever it is cleared */
	struct relay_metrics m;
	int draining;
	int stopped;
	uv_signal_t *sig_term, *sig_int;
	uv_timer_t *drain_timer;
	uint64_t drain_deadline;
};

/* server.c */
int server_start(struct relay *r);
void server_drain(struct relay *r);
void server_destroy(struct relay *r);
void server_finish(struct relay *r);
void conn_ref(struct conn *c);
void conn_unref(struct conn *c);
int conn_alive(const struct conn *c);
/* Queues a frame (takes ownership of s, a bv_malloc'd string). */
void conn_send_str(struct conn *c, char *s);
/* Queues a frame from j (takes the reference). */
void conn_send_json(struct conn *c, json_t *j);
/* Closes after pending frames are written. */
void conn_close(struct conn *c, int code);
/*
 * Writes the head of an HTTP answer with the API's security headers
 * (no-store, nosniff, …): status, type, Content-Length len. 0 or -1.
 */
int server_http_head(struct lws *wsi, unsigned status, const char *ctype,
		     uint64_t len);

/* ops.c */
/* A prepared statement of the relay (on both database connections). */
struct relay_stmt {
	const char *name, *sql;
	int nparams;
};
int relay_prepare(struct relay *r, const struct relay_stmt *st, size_t n);
int ops_prepare(struct relay *r);
void ops_on_connect(struct conn *c);
void ops_frame(struct conn *c, const char *buf, size_t len);
void ops_frame_error(struct conn *c, int code);
void ops_on_close(struct conn *c);
void ops_on_notify(const char *channel, const char *payload, void *arg);
void ops_on_db_state(int up, void *arg);
void ops_reply_error(struct conn *c, int64_t id, int code, json_t *details);
void ops_reply_ok(struct conn *c, int64_t id, json_t *result);
struct conn *ops_find_device(struct relay *r, int64_t device);
/* The first authenticated connection of account here (then acct_next). */
struct conn *ops_account_conns(struct relay *r, const char *account);
void devcache_invalidate(struct relay *r, const char *account);
void devcache_clear(struct relay *r);

/*
 * Request context shared by the asynchronous operations (ops.c, cases.c):
 * opctx_new() counts the request in flight and holds the connection;
 * opctx_free() or opctx_fail() (answers with an error) end it.
 */
struct opctx {
	struct conn *c;
	int64_t id;
	struct bv_request *req;
	int retried;
	int64_t ts;
	uint64_t t0;
	struct bv_token token;
	char (*accounts)[37];
	size_t n_accounts;
	int64_t *dev; /* per envelope or per requested device */
	size_t n_dev;
	struct required required; /* send: its required accounts */
	uint8_t *check; /* send: per account, checked in the transaction */
};
struct opctx *opctx_new(struct conn *c, struct bv_request *req);
void opctx_free(struct opctx *o);
void opctx_fail(struct opctx *o, int code, json_t *details);
/* One prepared statement as a job (txn: on the write connection). */
int run1(struct relay *r, int txn, const char *stmt, int nparams,
	 const char *const *v, const int *len, const int *fmt, db_done_cb cb,
	 void *arg);
/* The same with the audit log's actor set (bvchat.actor); its result is
 * result 1 of the job. */
int run_as(struct relay *r, const char *actor, const char *stmt, int nparams,
	   const char *const *v, const int *len, const int *fmt, db_done_cb cb,
	   void *arg);
/* A failed job's outcome as the client sees it (SQLSTATE mapped). */
int db_rc(struct db_job *job, int rc);
int64_t get_i64(const PGresult *res, int row, int col);

/* cases.c */
#define CH_ROSTER "bv_roster"
typedef void (*required_cb)(struct opctx *o, int rc);
int cases_prepare(struct relay *r);
/* Fills o->required for (conversation, o's account) from the cache or the
 * database, then calls cb (synchronously on a hit) with 0 or BV_ENOACCOUNT
 * (may not send), BV_ENOMEM or a database error. */
void cases_required(struct opctx *o, const char *conversation, required_cb cb);
void cases_forget(struct relay *r, const char *conversation,
		  const char *sender);
void cases_clear(struct relay *r);
void cases_on_notify(struct relay *r, const char *payload);
void required_free(struct required *q);
/* Index of account in q, or -1. */
int required_find(const struct required *q, const char *account);
void op_cases(struct conn *c, struct bv_request *req);
void op_conversation_create(struct conn *c, struct bv_request *req);

/* deliver.c */
int deliver_prepare(struct relay *r);
int deliver_init(struct conn *c);
void deliver_start(struct conn *c);
int deliver_answer(struct conn *c, int64_t id, int is_error);
void deliver_committed(struct conn *c, const struct delivery *d);
void deliver_poke(struct conn *c);
void deliver_db_up(struct relay *r);
void deliver_cleanup(struct conn *c);

/* notifyset.c */
int notifyset_prepare(struct relay *r);
void op_notify_set(struct conn *c, struct bv_request *req);

/* metrics.c */
char *metrics_render(struct relay *r);

/* Adds a transactional or plain job; on failure to build, calls nothing. */
#define RELAY_TXN  1
#define RELAY_READ 0

#endif
