/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * fiks_io.h: a FIKS IO account (konto) in C (docs/fiks.md). Sending goes
 * over HTTP (libcurl): POST <api>/fiks-io/api/v1/send as multipart
 * `metadata` (JSON) + `data` (the encrypted ASiC-E), 202 and a JSON reply;
 * the katalog gives a recipient's certificate; payloads over 5 MB are
 * fetched from the dokumentlager. Receiving is from the account's AMQP
 * queue fiksio.konto.<uuid> (librabbitmq): manual ack, prefetch, headers as
 * longstr, per-message TTL (`expiration`), redelivery flag, reconnect.
 * Every call authenticates with a Maskinporten-style access token (JWT
 * bearer grant signed with the identity, cached until shortly before it
 * expires) and the integration id and password.
 *
 * One client is one account used from one thread; calls block, each for at
 * most the timeouts of its config.
 */
#ifndef FIKS_IO_H
#define FIKS_IO_H

#include <stddef.h>
#include <stdint.h>

#include "fiks_asice.h"
#include "fiks_identity.h"

#define FIKS_UUID_LEN 36
/* Bytes of a message type name (e.g. "no.ks.fiks.arkiv.v1.arkivering.
 * arkivmelding.opprett.kvittering"), of a custom header's name and value. */
#define FIKS_TYPE_MAX	      200
#define FIKS_HEADER_NAME_MAX  100
#define FIKS_HEADER_VALUE_MAX 1000
#define FIKS_HEADERS_MAX      32
/* Payloads larger than this go through the dokumentlager. */
#define FIKS_DOKUMENTLAGER_THRESHOLD (5u << 20)

/* Fiks IO's own message types (docs/fiks.md). */
#define FIKS_TYPE_TIDSAVBRUDD "no.ks.fiks.kvittering.tidsavbrudd"
#define FIKS_TYPE_SERVERFEIL  "no.ks.fiks.kvittering.serverfeil.v1"

/*
 * Where the account is and who we are. Read from a file with
 * fiks_config_load() (one "key value" per line, # comments; the keys are
 * the field names) or filled in by the caller. Strings are owned by the
 * config when loaded.
 */
struct fiks_config {
	char *api_url;	      /* "http://127.0.0.1:8089", no trailing / */
	char *token_url;      /* the token endpoint (JWT bearer grant) */
	char *amqp_host;      /* "127.0.0.1" */
	int amqp_port;	      /* 5672 */
	char *amqp_vhost;     /* "/" when NULL */
	char *integration_id; /* UUID */
	char *integration_password;
	char *client_id;      /* the Maskinporten client id (iss) */
	char *account_id;     /* our konto UUID */
	char *key_path;	      /* our account key, PKCS#8 PEM */
	char *cert_path;      /* our account certificate, PEM */
	char *sign_key_path;  /* the virksomhetssertifikat's key; */
	char *sign_cert_path; /* NULL: the account's pair signs */
	int prefetch;	      /* unacked deliveries at once; 0: 10 */
	int timeout_ms;	      /* one HTTP request or AMQP call; 0: 30000 */
	int amqp_tls;	      /* 1: AMQP over TLS (production, port 5671) */
	/* PEM file of the CAs that may vouch for the broker's certificate
	 * (amqp_tls only); NULL: the system's store. The certificate and
	 * its name (amqp_host) are always verified. */
	char *amqp_cafile;
	/* AMQP heartbeat in seconds, 1 … FIKS_HEARTBEAT_MAX; 0: the
	 * default; FIKS_HEARTBEAT_OFF: none ("amqp_heartbeat 0" in a file). */
	int amqp_heartbeat;
};

#define FIKS_HEARTBEAT_DEFAULT 30
#define FIKS_HEARTBEAT_MAX     600
#define FIKS_HEARTBEAT_OFF     (-1)

/* Loads path into *cfg (zeroed first). Required keys: api_url, token_url,
 * amqp_host, integration_id, integration_password, client_id, account_id,
 * key_path, cert_path; amqp_port defaults to 5671 with amqp_tls 1, else
 * 5672; amqp_heartbeat is 0 (off) … FIKS_HEARTBEAT_MAX, 30 when absent;
 * amqp_cafile needs amqp_tls 1. Returns 0; BV_ECONFIG with a sentence in
 * err (line number, key; never a value); BV_EIO; BV_ENOMEM. On error *cfg
 * holds nothing. */
int fiks_config_load(const char *path, struct fiks_config *cfg, char *err,
		     size_t errcap);
void fiks_config_free(struct fiks_config *cfg);

struct fiks_header {
	const char *name; /* without "egendefinert-header." */
	const char *value;
};

/* A message received from our queue; everything owned by the message. */
struct fiks_melding {
	char melding_id[FIKS_UUID_LEN + 1];
	char type[FIKS_TYPE_MAX + 1];
	char avsender[FIKS_UUID_LEN + 1];      /* avsender-id */
	char mottaker[FIKS_UUID_LEN + 1];      /* from the routing key */
	char svar_til[FIKS_UUID_LEN + 1];      /* "" when not a reply */
	char svar_til_type[FIKS_TYPE_MAX + 1]; /* on tidsavbrudd, else "" */
	char klient_melding_id[FIKS_HEADER_VALUE_MAX + 1];	/* or "" */
	char klient_korrelasjons_id[FIKS_HEADER_VALUE_MAX + 1]; /* or "" */
	char dokumentlager_id[FIKS_UUID_LEN + 1];		/* or "" */
	struct fiks_header headers[FIKS_HEADERS_MAX]; /* custom, unprefixed */
	size_t n_headers;
	int64_t ttl_ms;	     /* -1 when the message has none */
	int redelivered;     /* the broker delivered it before */
	unsigned char *body; /* as received: encrypted, or empty */
	size_t body_len;
	uint64_t delivery_tag;	/* for fiks_ack()/fiks_nack_requeue() */
	uint64_t channel_epoch; /* the connection it came on (internal) */
};

void fiks_melding_free(struct fiks_melding *m);

/* What to send. */
struct fiks_send_req {
	const char *mottaker; /* the recipient konto UUID */
	const char *type;     /* meldingType */
	const char *svar_paa; /* the melding-id answered, or NULL */
	int64_t ttl_ms;	      /* 0: the server's default (7 days) */
	/* Our own id for this message, the same on every retry of it
	 * (egendefinert-header.klientMeldingId), or NULL. */
	const char *klient_melding_id;
	/* Copied into every reply (klientKorrelasjonsId), or NULL. */
	const char *klient_korrelasjons_id;
	const struct fiks_header *headers; /* more custom headers */
	size_t n_headers;
};

struct fiks_client;

/* Loads the identities named by cfg (copied) and checks that amqp_cafile,
 * when given, holds at least one certificate. Returns 0; FIKS_EKEY;
 * BV_EINVAL (a required field missing, amqp_heartbeat out of range);
 * BV_ENOMEM. No network until the first call that needs it. */
int fiks_client_new(const struct fiks_config *cfg, struct fiks_client **out);
void fiks_client_free(struct fiks_client *c);

/* Our account id. */
const char *fiks_client_account(const struct fiks_client *c);

/* The client's copy of its configuration. */
const struct fiks_config *fiks_client_config(const struct fiks_client *c);

/* Replies larger than these are refused with FIKS_ELIMIT: a JSON answer
 * of the API or the token endpoint, and a message body from AMQP or the
 * dokumentlager (the largest ciphertext fiks_cms_decrypt() takes). */
#define FIKS_HTTP_REPLY_MAX (1u << 20)
#define FIKS_BODY_MAX	    ((64u << 20) + 4096u)

/*
 * The certificate (PEM) the katalog publishes for account konto, cached
 * for the client's lifetime. Returns 0 and sets *pem (free()); FIKS_ENOTFOUND
 * (no such account or no key); FIKS_EHTTP; FIKS_EUNAUTHORIZED; BV_ENOMEM.
 */
int fiks_katalog_cert(struct fiks_client *c, const char *konto, char **pem);

/* Fiks Varsling (docs/fiks.md, FIKS.md §4): the longest SMS text. */
#define FIKS_VARSLING_TEKST_MAX 1600

/*
 * Sends one SMS through Fiks Varsling: POST <api>/varsling/api/v1/sms/
 * <konto>/sms {tekst, telefonnummer}, authenticated as every other call.
 * tekst is 1 … FIKS_VARSLING_TEKST_MAX characters of UTF-8. Returns 0 and
 * the SMS's id; BV_EINVAL; FIKS_EUNAUTHORIZED; FIKS_EREFUSED (4xx: the
 * request itself is wrong, a retry will not help); FIKS_EHTTP (5xx, no
 * answer: try again later); BV_ENOMEM. Neither text nor number is logged.
 */
int fiks_varsling_sms(struct fiks_client *c, const char *konto,
		      const char *tekst, const char *telefonnummer,
		      char id[FIKS_UUID_LEN + 1]);

/*
 * Downloads the dokumentlager document id (a message's dokumentlager-id)
 * with our credentials. Returns 0 and sets *out (free()) and *len;
 * FIKS_ENOTFOUND; FIKS_ELIMIT (over FIKS_BODY_MAX); FIKS_EHTTP;
 * FIKS_EUNAUTHORIZED; BV_EINVAL; BV_ENOMEM.
 */
int fiks_dokumentlager_get(struct fiks_client *c, const char *id,
			   unsigned char **out, size_t *len);

/*
 * Sends an already encrypted body (NULL, 0: a message without payload).
 * Bodies over FIKS_DOKUMENTLAGER_THRESHOLD are the server's to put in the
 * dokumentlager. Sets melding_id (the id Fiks IO gave it) on 202.
 * Returns 0; FIKS_EHTTP (no answer, 5xx: retry later with the same
 * klient_melding_id); FIKS_EREFUSED (4xx); FIKS_EUNAUTHORIZED (401/403);
 * BV_EINVAL; BV_ENOMEM.
 */
int fiks_send_raw(struct fiks_client *c, const struct fiks_send_req *req,
		  const unsigned char *body, size_t body_len,
		  char melding_id[FIKS_UUID_LEN + 1]);

/*
 * Builds the ASiC-E of files (fiks_asice_build), signs it with our signing
 * identity, encrypts it for the recipient's katalog certificate (or
 * recipient_cert_pem when not NULL: pinned out of band) and sends it.
 * n == 0 sends no payload. Returns what fiks_send_raw and the builders do.
 */
int fiks_send(struct fiks_client *c, const struct fiks_send_req *req,
	      const struct fiks_file *files, size_t n,
	      const char *recipient_cert_pem,
	      char melding_id[FIKS_UUID_LEN + 1]);

/*
 * Sends a reply to m: svarPaMelding m's id, to m's sender, with m's
 * klientKorrelasjonsId copied. klient_melding_id may be NULL.
 */
int fiks_reply(struct fiks_client *c, const struct fiks_melding *m,
	       const char *type, const struct fiks_file *files, size_t n,
	       const char *klient_melding_id,
	       char melding_id[FIKS_UUID_LEN + 1]);

/*
 * Waits up to timeout_ms for the next message of our queue (connecting,
 * declaring nothing, and consuming with manual ack and the prefetch on the
 * first call; after a lost connection it reconnects with a fresh token,
 * and messages not acked on the old one come again, flagged redelivered).
 * Returns 0 and sets *out (fiks_melding_free()); FIKS_ETIMEOUT (connected,
 * nothing came); FIKS_EAMQP (the broker could not be reached or was lost
 * within timeout_ms, however often it was tried: call again later; a
 * connection from which nothing came for two heartbeat intervals counts
 * as lost); FIKS_ETLS (amqp_tls: the broker's certificate is not trusted
 * or does not name amqp_host; returned at once, the log says why);
 * FIKS_EKEY (amqp_cafile or the system's CA store cannot be read);
 * FIKS_EHEADER (a message without melding-id, type or avsender-id, or
 * with one of them not a longstr or malformed) and FIKS_ELIMIT (a body
 * over FIKS_BODY_MAX, or custom headers over FIKS_HEADERS_MAX or their
 * lengths): either has been nacked without requeue so it cannot block the
 * queue; FIKS_EUNAUTHORIZED (the broker refused our login or the queue,
 * also with a fresh token); BV_ENOMEM. Reconnection attempts back off
 * from 100 ms to 2 s, never past timeout_ms.
 *
 * Heartbeats are sent and checked only inside fiks_receive, fiks_ack and
 * fiks_nack_requeue (librabbitmq has no thread of its own): a caller that
 * does not call in for more than about two heartbeat intervals may find
 * the connection closed by the broker, its unacked messages redelivered.
 */
int fiks_receive(struct fiks_client *c, int timeout_ms,
		 struct fiks_melding **out);

/*
 * Connects to the account's queue unless connected, trying (with
 * fiks_receive()'s backoff) until timeout_ms has passed; 1 … 60000. For a
 * caller that polls fiks_receive() with a timeout too short for a token,
 * TCP, TLS and AMQP handshakes to a remote broker. Returns 0 when
 * connected, else what fiks_receive() returns when it cannot connect.
 */
int fiks_connect(struct fiks_client *c, int timeout_ms);

/* 1 while an AMQP connection is up (as far as is known), else 0. */
int fiks_connected(const struct fiks_client *c);

/* Acknowledges m: the broker forgets it. Returns 0; FIKS_EAMQP (the
 * connection it came on is gone: it will be redelivered). */
int fiks_ack(struct fiks_client *c, const struct fiks_melding *m);

/* Gives m back to the queue (it counts towards the 3 deliveries after
 * which Fiks IO dead-letters it and tells the sender serverfeil). */
int fiks_nack_requeue(struct fiks_client *c, const struct fiks_melding *m);

/*
 * Opens m's payload: fetches it from the dokumentlager when m names one,
 * decrypts it with our account key and reads the ASiC-E (every check of
 * fiks_asice_read; expect_cert_pem as there). Returns 0 and sets *out;
 * FIKS_ECMS, FIKS_EZIP, FIKS_EMANIFEST, FIKS_EDIGEST, FIKS_ESIGNATURE,
 * FIKS_ELIMIT, FIKS_EHTTP, BV_EINVAL (no payload), BV_ENOMEM; err as there.
 */
int fiks_open(struct fiks_client *c, const struct fiks_melding *m,
	      const char *expect_cert_pem, struct fiks_asice **out, char *err,
	      size_t errcap);

#endif /* FIKS_IO_H */
