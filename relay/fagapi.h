/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * fagapi.h: the fagsystem's HTTP API on the relay (docs/fagsystem-api.md):
 * /v1/fagsystem/… on the relay's own port, each request authenticated by a
 * token signed with its tenant's key and confined to that tenant; and
 * POST /v1/invites/redeem, the widget's one request without credentials
 * (docs/protocol.md, "Invites").
 *
 * server.c owns the lws side (reading the body, writing the answer); this
 * module owns everything else. A request object lives until both its
 * connection and its database work are done with it.
 */
#ifndef BV_RELAY_FAGAPI_H
#define BV_RELAY_FAGAPI_H

#include <stddef.h>
#include <libwebsockets.h>

#define FAGAPI_PATH_PREFIX  "/v1/fagsystem/"
#define INVITES_PATH_PREFIX "/v1/invites/"
#define INVITES_REDEEM_PATH "/v1/invites/redeem"
#define INVITE_MAX_PENDING  64	       /* redemptions at once per relay; 503 */
#define FAGAPI_MAX_BODY	    16384      /* bytes; more is 413 */
#define FAGAPI_MAX_DISCARD  (1u << 20) /* larger bodies: hang up, no answer */
#define FAGAPI_MAX_TTL_S    300	       /* how far ahead a token's exp may lie */
#define FAGAPI_MAX_MEMBERS  32	       /* of one conversation */
#define FAGAPI_MAX_PENDING  64	       /* requests at once per relay; 503 */

struct relay;
struct fagapi_req;

/* Registers the API's statements on both connections. 0 or BV_ENOMEM. */
int fagapi_prepare(struct relay *r);

/* 1 when path belongs to the API. */
int fagapi_match(const char *path);

/*
 * Starts a request from LWS_CALLBACK_HTTP. Returns 0 with the request in
 * *out (the body, if any, is then fed by fagapi_body() and ended by
 * fagapi_body_done(); the answer is announced by lws_callback_on_writable),
 * or -1 when the connection should be closed without an answer.
 */
int fagapi_begin(struct relay *r, struct lws *wsi, const char *path,
		 struct fagapi_req **out);

/* A piece of the body (LWS_CALLBACK_HTTP_BODY). 0, or -1 to hang up. */
int fagapi_body(struct fagapi_req *q, const void *in, size_t len);

/* The body is complete (LWS_CALLBACK_HTTP_BODY_COMPLETION). */
void fagapi_body_done(struct fagapi_req *q);

/*
 * The answer, once there is one: returns 1 with the HTTP status, a
 * bv_malloc'd JSON body (the caller frees it) and whether to close the
 * connection after it; 0 while the request is still being worked on.
 */
int fagapi_reply_take(struct fagapi_req *q, unsigned *status, char **body,
		      int *close_after);

/* The connection is done with q (answered or gone); q is freed when its
 * database work, if any, has finished too. NULL is fine. */
void fagapi_detach(struct fagapi_req *q);

#endif
