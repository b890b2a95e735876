/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * webpush.h: the sending side of Web Push for bvchat-notifier: RFC 8291
 * message encryption (content coding aes128gcm, RFC 8188), RFC 8292 VAPID
 * and one blocking delivery over libcurl (RFC 8030). OpenSSL 3 EVP only.
 * It decides nothing: which text, when, and what to do with a gone
 * subscription are the notifier's. Nothing here logs a key, an auth secret,
 * a payload or a JWT.
 */
#ifndef WEBPUSH_H
#define WEBPUSH_H

#include <stddef.h>
#include <stdint.h>

/*
 * Error codes of this module, in their own range (-150 … -159) next to
 * common/bv_error.h's BV_E* codes, which it also returns (BV_ENOMEM,
 * BV_EINVAL for a NULL argument, BV_EINTERNAL when OpenSSL or libcurl
 * fails where it should not). docs/operations.md lists them.
 * XX(name, number, retryable, message)
 */
#define WEBPUSH_ERR_MAP(XX)                                                    \
	XX(EKEY, -150, 0,                                                      \
	   "push subscription key is not a P-256 point or the auth secret "    \
	   "is not 16 bytes")                                                  \
	XX(ESIZE, -151, 0, "push message text larger than 3993 bytes")         \
	XX(EENDPOINT, -152, 0,                                                 \
	   "push endpoint is not an https URL (http only in tests)")           \
	XX(ESUBJECT, -153, 0, "VAPID subject is not a mailto: or https: URL")  \
	XX(EVAPIDKEY, -154, 0,                                                 \
	   "VAPID key file is not a PEM EC P-256 private key")                 \
	XX(EGONE, -155, 0,                                                     \
	   "push subscription no longer exists (404/410): delete it")          \
	XX(ERETRY, -156, 1,                                                    \
	   "push service busy or unreachable (429, 5xx, network): retry")      \
	XX(EREJECTED, -157, 0, "push service refused the message (4xx)")

enum webpush_error {
#define WEBPUSH_ERR_ENUM(name, num, retry, msg) WEBPUSH_##name = (num),
	WEBPUSH_ERR_MAP(WEBPUSH_ERR_ENUM)
#undef WEBPUSH_ERR_ENUM
};

/* A static English sentence for a WEBPUSH_E* or BV_E* code. */
const char *webpush_strerror(int code);
/* The static name ("WEBPUSH_EGONE", "BV_ENOMEM") of a code. */
const char *webpush_errname(int code);
/* 1 when the same push may succeed later (WEBPUSH_ERETRY), else 0. */
int webpush_retryable(int code);

/* RFC 8291 section 4: 4096-byte records, one record per message. */
#define WEBPUSH_RS 4096
/* salt (16) ‖ rs (4) ‖ idlen (1) ‖ keyid (the 65-byte as_public). */
#define WEBPUSH_HEADER_LEN 86
/* The largest plaintext: header + text + delimiter + tag = 4096. */
#define WEBPUSH_PAYLOAD_MAX 3993
#define WEBPUSH_BODY_MAX    (WEBPUSH_HEADER_LEN + WEBPUSH_PAYLOAD_MAX + 1 + 16)
/* Bounds on what the notifier hands in (a client chose the endpoint). */
#define WEBPUSH_ENDPOINT_MAX 2048
#define WEBPUSH_SUBJECT_MAX  256
/* JWT lifetime: RFC 8292 allows at most 24 hours; we sign for 12. */
#define WEBPUSH_JWT_LIFETIME_S (12 * 3600)

/*
 * RFC 8291 aes128gcm body for one push message (rs 4096, one record):
 * a fresh ephemeral P-256 key and a fresh 16-byte salt for every call.
 * ua_public is the subscription's p256dh (uncompressed point, 0x04 ‖ x ‖ y),
 * auth_secret its auth. On success *body (free with bv_free) holds
 * WEBPUSH_HEADER_LEN + len + 17 bytes. Returns 0; WEBPUSH_EKEY when
 * ua_public is not a point on P-256; WEBPUSH_ESIZE when len >
 * WEBPUSH_PAYLOAD_MAX; BV_EINVAL for NULL arguments; BV_ENOMEM;
 * BV_EINTERNAL.
 */
int webpush_encrypt(const uint8_t ua_public[65], const uint8_t auth_secret[16],
		    const uint8_t *plaintext, size_t len, uint8_t **body,
		    size_t *body_len);

/* The application server's VAPID key (opaque; one per deployment). */
struct webpush_vapid_key;

/*
 * Loads the VAPID key: a PEM file holding an EC P-256 private key
 * (SEC 1 "EC PRIVATE KEY" or PKCS#8 "PRIVATE KEY", unencrypted), as made by
 * `openssl ecparam -genkey -name prime256v1 -noout -out vapid.pem`.
 * Returns 0 and *out; BV_EIO when the file cannot be read;
 * WEBPUSH_EVAPIDKEY when it holds no such key; BV_ENOMEM.
 */
int webpush_vapid_key_load(const char *pem_path,
			   struct webpush_vapid_key **out);
/* Wipes and frees the key; NULL is fine. */
void webpush_vapid_key_free(struct webpush_vapid_key *key);
/*
 * The public key as base64url without padding of its 65-byte uncompressed
 * point: the widget's applicationServerKey for pushManager.subscribe() and
 * the k= of the header. Valid as long as key.
 */
const char *webpush_vapid_key_public(const struct webpush_vapid_key *key);

/*
 * RFC 8292 header value "vapid t=<jwt>, k=<b64url public key>" for the
 * endpoint's origin: the JWT is ES256 over {"typ":"JWT","alg":"ES256"} and
 * {"aud":"<origin>","exp":now_s + WEBPUSH_JWT_LIFETIME_S,"sub":"<subject>"}.
 * subject: "mailto:…" or "https:…", printable ASCII without '"' or '\',
 * at most WEBPUSH_SUBJECT_MAX bytes. Returns 0 and *header_out (free with
 * bv_free); WEBPUSH_EENDPOINT, WEBPUSH_ESUBJECT, BV_EINVAL, BV_ENOMEM,
 * BV_EINTERNAL.
 */
int webpush_vapid(const struct webpush_vapid_key *key, const char *endpoint,
		  const char *subject, int64_t now_s, char **header_out);

/*
 * Writes the origin of endpoint ("https://host" or "https://host:port",
 * scheme and host in lower case, default port left out) with a NUL into
 * out. The endpoint must be an absolute https:// URL, or http:// when
 * allow_http (tests), no longer than WEBPUSH_ENDPOINT_MAX, with a host, no
 * user information, no spaces or control characters. Returns 0,
 * WEBPUSH_EENDPOINT, or BV_EINVAL when out is too small (cap ≥
 * WEBPUSH_ENDPOINT_MAX + 1 always suffices).
 */
int webpush_origin(const char *endpoint, int allow_http, char *out, size_t cap);

/* A subscription as the browser's PushSubscription.toJSON() gives it. */
struct webpush_subscription {
	const char *endpoint; /* borrowed */
	uint8_t p256dh[65];
	uint8_t auth[16];
};

/*
 * Fills sub from the subscription's endpoint and its base64url keys (with
 * or without padding, as browsers differ): checks that the endpoint is an
 * https (allow_http: or http) URL and that p256dh is a P-256 point and auth
 * 16 bytes. sub->endpoint points at endpoint. Returns 0,
 * WEBPUSH_EENDPOINT, WEBPUSH_EKEY, BV_EINVAL.
 */
int webpush_subscription_parse(const char *endpoint, const char *p256dh,
			       const char *auth, int allow_http,
			       struct webpush_subscription *sub);

/* How to send; zero-initialised (or NULL) means the defaults. */
struct webpush_send_opts {
	long ttl_s;	 /* TTL header; 0: 86400 (one day) */
	long timeout_ms; /* the whole request; 0: 10000 */
	int allow_http;	 /* tests only: accept http:// endpoints on
			    loopback, and loopback addresses (never
			    private ones) */
};

/* What the push service answered, for logs and the retry schedule. */
struct webpush_result {
	long status;	       /* HTTP status; 0 when none came */
	int64_t retry_after_s; /* Retry-After in seconds, 0 if none */
};

/*
 * Encrypts payload for sub and POSTs it to sub->endpoint with TTL,
 * Urgency: normal, Content-Encoding: aes128gcm, Content-Type:
 * application/octet-stream and Authorization: vapid (now_s: the JWT's
 * clock). Blocking, bounded by opts->timeout_ms; no redirects followed;
 * the answer's body is read and dropped. It connects to no loopback,
 * private, link-local or multicast address, whatever the endpoint's name
 * resolves to (the endpoint came from a client); opts->allow_http (tests,
 * development) lets it connect to loopback and nothing else inside, and an
 * http:// endpoint only to loopback. The caller calls
 * curl_global_init() once at start-up. Fills *res when res is not NULL.
 * Returns:
 *   0                   2xx (201 Created, 202 Accepted): delivered;
 *   WEBPUSH_EGONE       404 or 410: the subscription is gone, delete it;
 *   WEBPUSH_ERETRY      429, 5xx, or no answer (connection, timeout):
 *                       try again, not before res->retry_after_s;
 *   WEBPUSH_EREJECTED   any other status (400, 401, 403, 413, …);
 *   WEBPUSH_EENDPOINT   also when the endpoint's address is internal;
 *   WEBPUSH_ESIZE, WEBPUSH_EKEY, WEBPUSH_EENDPOINT, WEBPUSH_ESUBJECT,
 *   BV_EINVAL, BV_ENOMEM, BV_EINTERNAL before anything was sent.
 */
int webpush_send(const struct webpush_vapid_key *key, const char *subject,
		 const struct webpush_subscription *sub, const uint8_t *payload,
		 size_t len, const struct webpush_send_opts *opts,
		 int64_t now_s, struct webpush_result *res);

/*
 * For tests: webpush_encrypt with a given ephemeral key pair (as_private:
 * the 32-byte scalar, as_public: its uncompressed point) and salt, so RFC
 * 8291 Appendix A can be reproduced byte for byte.
 */
int webpush__encrypt_with(const uint8_t ua_public[65],
			  const uint8_t auth_secret[16],
			  const uint8_t *plaintext, size_t len,
			  const uint8_t as_private[32],
			  const uint8_t as_public[65], const uint8_t salt[16],
			  uint8_t **body, size_t *body_len);

struct sockaddr;
/* For tests: 1 when webpush_send would refuse to connect to sa. */
int webpush__addr_internal(const struct sockaddr *sa);

#endif /* WEBPUSH_H */
