/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * bvtest.h: libbvtest, the support library of bvchat's integration tests.
 *
 * A throwaway PostgreSQL cluster per test program, relay processes, a
 * blocking RFC 6455 client over POSIX sockets, bvchat.v1 helpers written
 * against docs/protocol.md (not against the relay's code), HTTP GET and libpq
 * helpers. Every wait is bounded by a timeout. Not for production code.
 */
#ifndef BVTEST_H
#define BVTEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>

/* The default bound of every wait, in ms (BVT_TIMEOUT_SCALE multiplies). */
#define BVT_TIMEOUT 10000
/* Scales a timeout by the environment's BVT_TIMEOUT_SCALE (default 1). */
int bvt_ms(int ms);

/* ------------------------------------------------------------------ */
/* Process housekeeping                                                 */
/* ------------------------------------------------------------------ */

/*
 * The program's scratch directory (/tmp/bvt-<program>-XXXXXX), made on first
 * use, removed at exit unless BVT_KEEP is set or bvt_done() saw failures.
 */
const char *bvt_tmpdir(void);

/*
 * Call with cmocka_run_group_tests()'s result and return what it returns.
 * On failures it prints the tail of every relay log to stderr and keeps the
 * scratch directory.
 */
int bvt_done(int failures);

/*
 * Runs argv[0] (a path) with argv, as the cluster's owner when run_as_pg is
 * set and we are root. When out is not NULL stdout is captured (NUL-
 * terminated, *outlen bytes; free()), else it goes to stderr. stderr goes
 * to ours. After timeout_ms the child is killed. Returns the exit status
 * 0…255, or -1 (could not run, killed by a signal, or timed out).
 */
int bvt_run(char *const argv[], int run_as_pg, int timeout_ms, char **out,
	    size_t *outlen);

/* Reads a whole file (NUL-terminated; free()). NULL on error. */
char *bvt_file_read(const char *path, size_t *len);

/* Returns 1 when needle occurs in hay (binary-safe). */
int bvt_mem_contains(const void *hay, size_t haylen, const void *needle,
		     size_t nlen);

/* A free TCP port on 127.0.0.1 (bound then released), or -1. */
int bvt_free_port(void);

/* Milliseconds from a monotonic clock. */
int64_t bvt_now_ms(void);
void bvt_sleep_ms(int ms);

/* ------------------------------------------------------------------ */
/* PostgreSQL                                                           */
/* ------------------------------------------------------------------ */

/*
 * Starts this program's cluster: initdb once (trust, fsync and
 * synchronous_commit on, listening only on a unix socket in a private mkdtemp
 * directory), then pg_ctl start. As root the cluster runs as "postgres".
 * The cluster is destroyed at exit; a watchdog process (outside our process
 * tree) also stops it when this program dies by a signal, SIGKILL
 * included. Returns 0, or -1 after printing why. Calling it again while
 * running is a no-op; after bvt_pg_stop() it starts the cluster again.
 */
int bvt_pg_start(void);

/* pg_ctl stop -m mode ("fast", "immediate", "smart"); 0 or -1. */
int bvt_pg_stop(const char *mode);

/* bvt_pg_stop(mode), then bvt_pg_start(); 0 or -1. */
int bvt_pg_restart(const char *mode);

/* Stops and removes the cluster (also run at exit). */
void bvt_pg_destroy(void);

/* Conninfo of the maintenance database "postgres". */
const char *bvt_pg_admin_conninfo(void);

/*
 * Creates a new, empty database and writes its conninfo into buf. Starts
 * the cluster if needed. Returns 0 or -1.
 */
int bvt_pg_create_db(char *buf, size_t cap);

/* pg_dump of the database (plain SQL; free()), or NULL. */
char *bvt_pg_dump(const char *conninfo, size_t *len);

/* Runs one statement; returns 0 or -1 (error printed). */
int bvt_sql_exec(const char *conninfo, const char *sql);

/*
 * Runs a query with text parameters that returns one integer (first row,
 * first column). Returns it, or -1 on error.
 */
long long bvt_sql_int(const char *conninfo, const char *sql, int nparams,
		      const char *const *params);

/* ------------------------------------------------------------------ */
/* Relay processes                                                      */
/* ------------------------------------------------------------------ */

struct bvt_relay {
	pid_t pid; /* 0 when not running */
	int port;
	int status; /* exit status after it ended, -1 when by signal */
	char log[512];
};

/* The relay binary (BV_RELAY_BIN, overridden by the environment's). */
const char *bvt_relay_bin(void);

/*
 * Starts `bvchat-relay --database conninfo --listen 127.0.0.1 --port P`
 * plus args (NULL-terminated, "--name", "value", …; args may be NULL) with
 * stderr and stdout appended to a new log file, and waits until GET
 * /healthz answers 200. Returns 0, or -1 (the relay is then stopped).
 */
int bvt_relay_start(struct bvt_relay *r, const char *conninfo,
		    const char *const *args);

/* The same without waiting for /healthz. */
int bvt_relay_spawn(struct bvt_relay *r, const char *conninfo,
		    const char *const *args);

/* Waits until /healthz answers 200; 0, or -1 when the relay exited first
 * or timeout_ms passed. */
int bvt_relay_wait_healthy(struct bvt_relay *r, int timeout_ms);

/*
 * Waits for the relay to exit by itself. Returns its exit status, -1 when
 * killed by a signal, -2 on timeout (still running).
 */
int bvt_relay_wait_exit(struct bvt_relay *r, int timeout_ms);

/* SIGTERM, then waits; on timeout SIGKILL. Returns the exit status, -1 when
 * killed by a signal, -2 when it had to be killed after timeout_ms. */
int bvt_relay_term(struct bvt_relay *r, int timeout_ms);

/* SIGKILL and reap. */
void bvt_relay_kill(struct bvt_relay *r);

/* 1 when the relay's log contains needle (binary-safe), 0 when not. */
int bvt_relay_log_contains(const struct bvt_relay *r, const void *needle,
			   size_t len);

/* `bvchat-relay --migrate --database conninfo`; exit status or -1. */
int bvt_migrate(const char *conninfo);

/*
 * Runs `bvchat-relay` with the given NULL-terminated arguments, stdout
 * captured into *out (may be NULL). Returns the exit status or -1.
 */
int bvt_relay_cmd(char **out, const char *const *args);

/*
 * Runs `bvchat-relay --database db admin ARGS…` (args NULL-terminated, at
 * most 20); returns the exit status and, when out is not NULL, the first
 * line of stdout (cap bytes).
 */
int bvt_admin(const char *db, char *out, size_t cap, const char *const *args);

/* ------------------------------------------------------------------ */
/* HTTP and WebSocket                                                   */
/* ------------------------------------------------------------------ */

/*
 * GET path on 127.0.0.1:port (HTTP/1.1, Connection: close). Returns the
 * status code and, when body is not NULL, the body (free()); -1 on error.
 */
int bvt_http_get(int port, const char *path, int timeout_ms, char **body);

/*
 * method path on 127.0.0.1:port with headers (each "Name: value\r\n", may
 * be NULL) and, when req_body is not NULL or method is POST, req_len bytes
 * of body with their Content-Length. Connection: close. Returns the status
 * and, when body is not NULL, the answer's body (free()); -1 on error
 * (also when the relay hung up without an answer).
 */
int bvt_http_request(int port, const char *method, const char *path,
		     const char *headers, const void *req_body, size_t req_len,
		     int timeout_ms, char **body);

/*
 * bvt_http_request() that also returns the answer's head (status line and
 * headers, ending in an empty line; free()) when head is not NULL.
 */
int bvt_http_request_head(int port, const char *method, const char *path,
			  const char *headers, const void *req_body,
			  size_t req_len, int timeout_ms, char **head,
			  char **body);

/*
 * Sends the len bytes of req as they are (a request line that no client
 * would write) on a new connection to 127.0.0.1:port and reads one answer:
 * its status, head and body as bvt_http_request_head(). The answer to a
 * request starting "HEAD " is read up to EOF, and everything after its
 * head, which should be nothing, is the body (ask for Connection: close).
 * -1 when no answer came (the relay hung up or timeout_ms passed).
 */
int bvt_http_raw(int port, const void *req, size_t len, int timeout_ms,
		 char **head, char **body);

/*
 * The value of header name (case does not matter) in head, trimmed, copied
 * into buf; NULL when head has no such header. The first one when repeated.
 */
const char *bvt_http_header(const char *head, const char *name, char *buf,
			    size_t cap);

#define BVT_WS_TEXT   0x1
#define BVT_WS_BINARY 0x2
#define BVT_WS_CONT   0x0
#define BVT_WS_CLOSE  0x8
#define BVT_WS_PING   0x9
#define BVT_WS_PONG   0xa

/* bvt_ws_recv() results. */
#define BVT_WS_MSG     1
#define BVT_WS_TIMEOUT 0
#define BVT_WS_CLOSED  (-2)
#define BVT_WS_ERROR   (-1)

struct bvt_ws;

/*
 * Opens ws://127.0.0.1:port/path asking for subprotocol (none when NULL).
 * Returns the socket after a 101 with a correct Sec-WebSocket-Accept (and
 * the protocol echoed), else NULL; *http_status (may be NULL) gets the
 * status line's code, 0 when none was read.
 */
struct bvt_ws *bvt_ws_connect(int port, const char *path,
			      const char *subprotocol, int timeout_ms,
			      int *http_status);

/* bvt_ws_connect() with extra request headers (each "Name: value\r\n";
 * may be NULL), e.g. a browser's Origin. */
struct bvt_ws *bvt_ws_connect_hdr(int port, const char *path,
				  const char *subprotocol, const char *headers,
				  int timeout_ms, int *http_status);

/* Sends one masked frame. Returns 0 or -1. */
int bvt_ws_send_frame(struct bvt_ws *ws, int opcode, int fin, const void *buf,
		      size_t len);

/* n text messages, one frame each, in a single write (so they arrive
 * together). 0 or -1. */
int bvt_ws_send_batch(struct bvt_ws *ws, const char *const *msgs,
		      const size_t *lens, size_t n);

/* One complete message as one frame (0 or -1). */
int bvt_ws_send(struct bvt_ws *ws, int opcode, const void *buf, size_t len);

/* One message in frames of at most frag bytes (0 or -1). */
int bvt_ws_send_fragmented(struct bvt_ws *ws, int opcode, const void *buf,
			   size_t len, size_t frag);

/*
 * Waits at most timeout_ms for the next complete data message (fragments
 * joined; pings answered; pongs counted). Returns BVT_WS_MSG with *buf
 * (NUL-terminated, free()), *len, *opcode; BVT_WS_TIMEOUT; BVT_WS_CLOSED
 * when a close frame came (answered; see bvt_ws_close_code()); BVT_WS_ERROR
 * on EOF without close, a protocol error, or a socket error.
 */
int bvt_ws_recv(struct bvt_ws *ws, int timeout_ms, int *opcode, char **buf,
		size_t *len);

/* The code of the peer's close frame; 1005 when it had none; -1 when no
 * close frame was received. */
int bvt_ws_close_code(const struct bvt_ws *ws);

/* Pongs received so far. */
unsigned bvt_ws_pongs(const struct bvt_ws *ws);

/* Sends a close frame with code (no wait). 0 or -1. */
int bvt_ws_close(struct bvt_ws *ws, int code);

/* Closes the socket and frees; NULL is fine. */
void bvt_ws_free(struct bvt_ws *ws);

/* ------------------------------------------------------------------ */
/* bvchat.v1                                                            */
/* ------------------------------------------------------------------ */

/* A tenant whose token key the test holds. */
struct bvt_tenant {
	char id[37];
	uint8_t pk[32];
	uint8_t sk[64];
};

/*
 * Set to 1 (before creating tenants) by tests of the relay's transport that
 * are not about cases: each tenant then gets a case TEST with one
 * conversation, every account enrolled through this harness joins its case
 * team, and a send without "conversation" is sent as a partial send to it
 * (docs/protocol.md `send`), so any two accounts of a tenant may talk.
 */
extern int bvt_open_case;

/* Generates a key pair and inserts the tenant into the database (SQL, as
 * `admin tenant-create` would). Returns 0 or -1. */
int bvt_tenant_create(const char *conninfo, const char *name,
		      struct bvt_tenant *t);

/*
 * An enrollment token (docs/protocol.md) for tenant_id signed with sk:
 * account NULL asks for a new account; exp in unix seconds. free().
 */
char *bvt_token_make(const char *tenant_id, const uint8_t sk[64],
		     const char *account, int64_t exp);

/* A token of t, valid for an hour. free(). */
char *bvt_token(const struct bvt_tenant *t, const char *account);

/*
 * A fagsystem API token (docs/fagsystem-api.md) for tenant_id signed with
 * sk: "bvf1." b64url(payload) "." b64url(Ed25519 over "bvchat.v1
 * fagsystem\n" + payload), the payload naming aud, tenant, sub, a random
 * jti, exp and req, the hex SHA-256 of method "\n" path "\n" body. Written
 * from the document, not from the relay's code. free().
 */
char *bvt_apitoken_make(const char *tenant_id, const uint8_t sk[64],
			const char *sub, int64_t exp, const char *method,
			const char *path, const void *body, size_t len);

/* A device: what its owner knows. */
struct bvt_dev {
	char tenant[37];
	char account[37];
	uint32_t device;
	uint32_t regid;
	uint8_t auth_pk[32];
	uint8_t auth_sk[64];
	uint8_t identity[33];
};

/* New random auth key pair, 0x05-prefixed identity key and registration
 * id; keeps account and device. */
void bvt_dev_keygen(struct bvt_dev *d);

struct bvt_conn {
	struct bvt_ws *ws;
	json_t *challenge; /* the challenge event */
	char nonce[128];
	int64_t next_id;
	json_t *pending;       /* pushes received while waiting for responses */
	int closed;	       /* connection ended (close frame or error) */
	char conversation[37]; /* the open test case's, or "" */
};

/* Opens a connection to the relay on port and reads its challenge. NULL
 * on failure (printed). */
struct bvt_conn *bvt_conn_open(int port);
void bvt_conn_free(struct bvt_conn *c);

/* Sends a frame as is (borrowed). 0 or -1. */
int bvt_conn_send_json(struct bvt_conn *c, const json_t *frame);
/* Sends bytes as one text frame. 0 or -1. */
int bvt_conn_send_raw(struct bvt_conn *c, const char *buf, size_t len);

/* Gives req (stolen) the next id and sends it. Returns the id, or -1. */
int64_t bvt_conn_submit(struct bvt_conn *c, json_t *req);

/* Gives each of n requests (stolen) the next id, writes them all at once
 * and stores the ids in ids. 0 or -1. */
int bvt_conn_submit_batch(struct bvt_conn *c, json_t **reqs, size_t n,
			  int64_t *ids);

/*
 * Waits for the response with id (id < 0: "id": null), queueing requests
 * and events that arrive meanwhile. Returns the response (new reference) or
 * NULL on timeout/close (printed).
 */
json_t *bvt_conn_wait(struct bvt_conn *c, int64_t id, int timeout_ms);

/* submit + wait(BVT_TIMEOUT). req is stolen. */
json_t *bvt_request(struct bvt_conn *c, json_t *req);

/*
 * Next pushed frame (a relay request or an event, not a response) whose
 * "op" is op (any when NULL): from the queue first, then from the wire,
 * queueing others. NULL on timeout or close.
 */
json_t *bvt_conn_next(struct bvt_conn *c, const char *op, int timeout_ms);

/* bvt_conn_next(c, "deliver", timeout_ms). */
json_t *bvt_next_deliver(struct bvt_conn *c, int timeout_ms);

/* Answers a deliver request with {"id": …, "ok": {}}. 0 or -1. */
int bvt_ack(struct bvt_conn *c, const json_t *deliver);

/*
 * Reads until the relay closes the connection; returns its close code
 * (1005 without one, -1 for a connection that ended without a close frame),
 * or -2 on timeout. Frames read meanwhile are queued.
 */
int bvt_conn_wait_closed(struct bvt_conn *c, int timeout_ms);

/* Response helpers: the error's code ("BV_E…") or NULL for an ok. */
const char *bvt_err_code(const json_t *resp);
/* The "ok" object, or NULL. Borrowed. */
json_t *bvt_ok(const json_t *resp);
/* The "error" object, or NULL. Borrowed. */
json_t *bvt_err(const json_t *resp);

/*
 * enroll: signs "bvchat.v1 enroll\n<nonce>\n<token>" with d's auth key.
 * replaces 0 adds a device. On ok fills d->account, device, tenant.
 */
json_t *bvt_enroll(struct bvt_conn *c, struct bvt_dev *d, const char *token,
		   uint32_t replaces);
/* auth as d. */
json_t *bvt_auth(struct bvt_conn *c, const struct bvt_dev *d);
/* The auth signature of d over nonce (base64; free()). */
char *bvt_auth_signature(const struct bvt_dev *d, const char *nonce);

/* keys_put: a signed prekey with id spk_id (none when 0) and count one-time
 * prekeys with ids first … first+count-1 (keys derived from the ids). */
json_t *bvt_keys_put(struct bvt_conn *c, uint32_t spk_id, uint32_t first,
		     uint32_t count);
/* The public key keys_put uploads for one-time prekey id (33 bytes). */
void bvt_prekey_for(uint32_t id, uint8_t out[33]);
/* keys_get; device 0 omits the member. */
json_t *bvt_keys_get(struct bvt_conn *c, const char *account, uint32_t device);

/* An envelope for device d carrying body. */
json_t *bvt_envelope(const struct bvt_dev *to, int type, const void *body,
		     size_t len);
/* send with envelopes (stolen). */
json_t *bvt_send(struct bvt_conn *c, const char *message_id, json_t *envelopes);
/* The send request itself (for bvt_conn_submit). */
json_t *bvt_send_req(const char *message_id, json_t *envelopes);
/* Envelopes with body "<message_id>/<account>/<device>" for each of n. */
json_t *bvt_envelopes_to(const struct bvt_dev *const *to, size_t n,
			 const char *message_id);

/* Standard base64 (free()), and decoding (-1 when invalid). */
char *bvt_b64(const void *buf, size_t len);
int bvt_unb64(const char *s, uint8_t *out, size_t cap, size_t *outlen);

/* Compact JSON of j for messages (static buffer, truncated). */
const char *bvt_js(const json_t *j);

/* ------------------------------------------------------------------ */
/* Fixtures                                                             */
/* ------------------------------------------------------------------ */

/* A fresh migrated database, a tenant and one relay. */
struct bvt_env {
	char db[512];
	struct bvt_tenant tenant;
	struct bvt_relay relay;
};

/* Creates the database, migrates it, creates the tenant and starts the
 * relay with args. Returns 0 or -1. */
int bvt_env_init(struct bvt_env *e, const char *const *relay_args);
/* Stops the relay (SIGTERM, then SIGKILL). */
void bvt_env_cleanup(struct bvt_env *e);

/* Enrolls a new account (d fresh, keys generated) through the relay on
 * port; the connection is closed. 0 or -1. */
int bvt_new_account(int port, const struct bvt_tenant *t, struct bvt_dev *d);
/* Enrolls another device of account. 0 or -1. */
int bvt_new_device(int port, const struct bvt_tenant *t, const char *account,
		   struct bvt_dev *d);
/* Opens a connection and authenticates as d; NULL on failure. The
 * queue_empty event stays queued. */
struct bvt_conn *bvt_online(int port, const struct bvt_dev *d);

/* ------------------------------------------------------------------ */
/* cmocka assertions (need <cmocka.h> included before this header)     */
/* ------------------------------------------------------------------ */

void bvt__assert_ok(const json_t *resp, const char *expr, const char *file,
		    int line);
void bvt__assert_err(const json_t *resp, const char *code, const char *expr,
		     const char *file, int line);

/* Fails the test unless resp is an ok response. */
#define bvt_assert_ok(resp) bvt__assert_ok((resp), #resp, __FILE__, __LINE__)
/* Fails the test unless resp is an error with that code. */
#define bvt_assert_err(resp, code)                                             \
	bvt__assert_err((resp), (code), #resp, __FILE__, __LINE__)
/* Evaluates expr (a response), asserts ok and frees it. */
#define BVT_OK(expr)                                                           \
	do {                                                                   \
		json_t *bvt__r = (expr);                                       \
		bvt__assert_ok(bvt__r, #expr, __FILE__, __LINE__);             \
		json_decref(bvt__r);                                           \
	} while (0)
/* Evaluates expr, asserts the error code and frees it. */
#define BVT_ERR(expr, code)                                                    \
	do {                                                                   \
		json_t *bvt__r = (expr);                                       \
		bvt__assert_err(bvt__r, (code), #expr, __FILE__, __LINE__);    \
		json_decref(bvt__r);                                           \
	} while (0)

#endif
