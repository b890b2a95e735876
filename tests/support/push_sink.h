/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * push_sink.h: a local Web Push service for the tests (libbvpushsink), and
 * the user agent's side of RFC 8291 to read what it received.
 *
 * The sink is a real HTTP/1.1 server on 127.0.0.1 (libmicrohttpd, its own
 * thread) that takes POST /push/<id> the way a push service must: it checks
 * the VAPID header (RFC 8292: ES256 JWT verified with k, aud its own origin,
 * exp in the future and at most 24 hours ahead, sub mailto: or https:),
 * Content-Encoding aes128gcm and TTL, answers 201 and keeps the body. A
 * mode makes it answer 404, 410, 429 or 500 instead, for the notifier's
 * retries. Written from the RFCs, not from relay/webpush.c. Not for
 * production code.
 */
#ifndef PUSH_SINK_H
#define PUSH_SINK_H

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------ */
/* The user agent (the browser's side of RFC 8291)                      */
/* ------------------------------------------------------------------ */

/* A subscription's keys as a browser holds them. */
struct push_ua {
	uint8_t priv[32];   /* P-256 private scalar */
	uint8_t p256dh[65]; /* its uncompressed public point */
	uint8_t auth[16];   /* auth secret */
};

/* A fresh subscription key pair and auth secret. Returns 0 or -1. */
int push_ua_new(struct push_ua *ua);

/*
 * Decrypts an aes128gcm push message body (RFC 8188 header, one record
 * ending in the 0x02 delimiter) with ua's private key and auth secret.
 * On success *out (free with free()) holds the *out_len plaintext bytes
 * and a NUL after them. Returns 0, or -1 with a reason in why (cap
 * whylen) when the body is malformed or does not authenticate.
 */
int push_ua_decrypt(const struct push_ua *ua, const uint8_t *body, size_t len,
		    uint8_t **out, size_t *out_len, char *why, size_t whylen);

/*
 * Verifies an RFC 8292 Authorization value ("vapid t=<jwt>, k=<key>"):
 * the ES256 signature over the JWT's first two parts with k, the header
 * {"typ":"JWT","alg":"ES256"}, aud equal to origin, now_s < exp ≤ now_s +
 * 86400, sub starting mailto: or https:. On success copies k (the
 * base64url public key) into k_out when not NULL (cap 100). Returns 0, or
 * -1 with a reason in why.
 */
int push_vapid_verify(const char *authorization, const char *origin,
		      int64_t now_s, char *k_out, char *why, size_t whylen);

/* ------------------------------------------------------------------ */
/* The push service                                                     */
/* ------------------------------------------------------------------ */

struct push_sink;

/* One request the sink accepted (answered 201) or answered with a mode. */
struct push_msg {
	char id[65];   /* the <id> of /push/<id> */
	uint8_t *body; /* the encrypted body as received */
	size_t len;
	long ttl;		  /* the TTL header */
	char urgency[16];	  /* the Urgency header, "" if none */
	char k[100];		  /* the VAPID public key it was signed with */
	char authorization[1024]; /* the Authorization header as received */
	unsigned status;	  /* what the sink answered */
};

/* Starts a sink on 127.0.0.1 on a free port. Returns NULL on failure. */
struct push_sink *push_sink_start(void);
/* Stops the server and frees everything; NULL is fine. */
void push_sink_stop(struct push_sink *s);

/* "http://127.0.0.1:<port>", the aud the sink expects. */
const char *push_sink_origin(const struct push_sink *s);
/* Writes "<origin>/push/<id>" into out (cap). */
void push_sink_endpoint(const struct push_sink *s, const char *id, char *out,
			size_t cap);

/*
 * From now on answer every well-formed push with status (201 the default;
 * 404, 410, 429, 500, …) and, when retry_after_s > 0, a Retry-After header.
 * Pushes answered with anything but 201 are counted, not kept.
 */
void push_sink_set_mode(struct push_sink *s, unsigned status,
			long retry_after_s);

/* How many pushes were kept (201), answered otherwise, or refused. */
size_t push_sink_count(const struct push_sink *s);
size_t push_sink_answered(const struct push_sink *s, unsigned status);
size_t push_sink_refused(const struct push_sink *s);
/* Why the last push was refused ("" if none), for failing tests' output. */
void push_sink_last_refusal(const struct push_sink *s, char *out, size_t cap);

/*
 * A copy of the i-th kept push (0 = first); free its body with free().
 * Returns 0, or -1 when there is no such push.
 */
int push_sink_get(const struct push_sink *s, size_t i, struct push_msg *out);

/*
 * Waits up to timeout_ms until at least n pushes were kept. Returns 0, or
 * -1 on timeout.
 */
int push_sink_wait(const struct push_sink *s, size_t n, int timeout_ms);

#endif /* PUSH_SINK_H */
