/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * blob.h: encrypted attachments on the relay (docs/protocol.md
 * "Attachments"): the blob_create and blobs_journaled ops, PUT and GET of
 * /v1/blobs/<id> on the relay's own port, streamed to and from PostgreSQL
 * in 256 KiB chunks on a database connection of their own, and the sweep
 * that deletes what is expired, abandoned or past its retention.
 *
 * server.c owns the lws callbacks and calls in here, as for fagapi.c. The
 * relay never sees an attachment's plaintext or key; capabilities are never
 * logged or stored (only their SHA-256).
 */
#ifndef BV_RELAY_BLOB_H
#define BV_RELAY_BLOB_H

#include <stddef.h>
#include <stdint.h>
#include <libwebsockets.h>

#define BLOB_PATH_PREFIX   "/v1/blobs/"
#define BLOB_CHUNK_BYTES   262144 /* one blob_chunks row */
#define BLOB_CAP_BYTES	   32	  /* random bytes of a capability */
#define BLOB_CAP_LEN	   43	  /* their base64url, no padding */
#define BLOB_MAX_TRANSFERS 64	  /* uploads and downloads per relay; 503 */
#define BLOB_WRITES_MAX	   4	  /* chunk writes in flight per upload */
#define BLOB_SWEEP_BATCH   100	  /* blobs one sweep statement deletes */

struct relay;
struct conn;
struct bv_request;
struct blob_http;

/*
 * Registers the statements (blob_create, blobs_journaled on both main
 * connections; the transfers' and the sweep's on a third connection, made
 * here) and starts the sweep and heartbeat timers; the first sweep runs at
 * once. 0, BV_ENOMEM.
 */
int blob_start(struct relay *r);

/* Stops the timers and closes the third connection (transfers still
 * running fail). Safe after a failed or no blob_start(). */
void blob_stop(struct relay *r);

/* Frees what is left, once lws has closed every connection. */
void blob_free(struct relay *r);

/* 1 when path is below /v1/blobs/. */
int blob_match(const char *path);

/*
 * Starts a request from LWS_CALLBACK_HTTP. Returns 0 with the request in
 * *out (the body, if any, is fed by blob_body() and ended by
 * blob_body_done(); blob_write() runs on every LWS_CALLBACK_HTTP_WRITEABLE
 * until it sets *out to NULL), or -1 to hang up without an answer.
 */
int blob_begin(struct relay *r, struct lws *wsi, const char *path,
	       struct blob_http **out);

/* A piece of the body (LWS_CALLBACK_HTTP_BODY). 0, or -1 to hang up. */
int blob_body(struct blob_http *h, const void *in, size_t len);

/* The body is complete (LWS_CALLBACK_HTTP_BODY_COMPLETION). 0. */
int blob_body_done(struct blob_http *h);

/*
 * LWS_CALLBACK_HTTP_WRITEABLE: writes what is ready (an answer's head and
 * body, a download's next piece). When the transaction is over *hp is set
 * to NULL (the request detached) and the result says whether to keep the
 * connection (0) or hang up (-1). Returns 0 or -1.
 */
int blob_write(struct blob_http **hp);

/* The connection is gone (or done with h): an upload not yet stored is
 * deleted; h is freed once its database work is over. NULL is fine. */
void blob_detach(struct blob_http *h);

/* The WebSocket ops (ops.c dispatches; they take ownership of req). */
void op_blob_create(struct conn *c, struct bv_request *req);
void op_blobs_journaled(struct conn *c, struct bv_request *req);

/*
 * The parsers of the HTTP side, exposed for tests/unit/relay/test_blob.c:
 * blob_path_id(): path is exactly BLOB_PATH_PREFIX and a lower-case UUID;
 * copies it to id. blob_bearer(): value (len bytes, no NUL needed) is
 * "Bearer " (scheme in any case) and exactly BLOB_CAP_LEN characters of
 * base64url that decode to BLOB_CAP_BYTES; writes the capability's SHA-256.
 * blob_length(): 1 to 19 decimal digits, nothing else. Each returns 0, or
 * -1 when the input is not so.
 */
int blob_path_id(const char *path, char id[37]);
int blob_bearer(const char *value, size_t len, uint8_t hash[32]);
int blob_length(const char *s, uint64_t *out);

#endif
