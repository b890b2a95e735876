/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * invite.h: invite codes for people without eID (docs/protocol.md,
 * "Invites"; ARCHITECTURE decision 8, DOMAIN rule 4): their format, the
 * keyed hash the database keeps instead of them, the enrollment tickets a
 * redeemed code is exchanged for, and the per-address count of failed
 * redemptions. Pure apart from reading the key file; the HTTP side is in
 * fagapi.c, the SQL in migrations/0007_create_invites.sql.
 */
#ifndef BV_RELAY_INVITE_H
#define BV_RELAY_INVITE_H

#include <stddef.h>
#include <stdint.h>

#define INVITE_SYMBOLS	   10 /* Crockford base32: 50 bits */
#define INVITE_CODE_LEN	   11 /* as shown: XXXXX-XXXXX */
#define INVITE_KEY_LEN	   32
#define INVITE_HASH_LEN	   32
#define INVITE_TTL_DEFAULT 259200 /* s: 72 h, at most invite_max_ttl_s */
#define INVITE_TTL_MIN	   60	  /* s */
/* What redeeming gives: "bvi1." and 32 random bytes in base64url. */
#define INVITE_TICKET_PREFIX "bvi1."
#define INVITE_TICKET_LEN    48
#define INVITE_TICKET_TTL_S  900   /* to enroll with it */
#define INVITE_ADDRS_MAX     65536 /* addresses with failures remembered */

/* A new code, "XXXXX-XXXXX" from the 32 symbols 0-9 A-Z without I L O U. */
void invite_code_new(char out[INVITE_CODE_LEN + 1]);

/*
 * The canonical form of a code as a person typed it: case does not
 * matter, hyphens and spaces are skipped, I and L read as 1 and O as 0
 * (Crockford). Returns 0 with the 10 symbols in out, or BV_EINVITE when
 * what is left is not exactly 10 symbols (U included) or in is longer
 * than 64 bytes.
 */
int invite_code_normalize(const char *in, char out[INVITE_SYMBOLS + 1]);

/* HMAC-SHA-256 under key over "bvchat invite v1\n" and the canonical code:
 * what the database keeps. */
void invite_code_hash(const uint8_t key[INVITE_KEY_LEN],
		      const char canon[INVITE_SYMBOLS + 1],
		      uint8_t out[INVITE_HASH_LEN]);

/*
 * Reads the relays' invite key: a file holding 64 hexadecimal digits (32
 * bytes) and optionally a newline (`openssl rand -hex 32`). Returns 0, or
 * BV_ECONFIG with the reason in err (never the key), BV_EIO. Warns on
 * stderr when the file is readable by group or others.
 */
int invite_key_load(const char *path, uint8_t key[INVITE_KEY_LEN], char *err,
		    size_t errlen);

/* A new ticket (a secret: wipe it) and the SHA-256 of its random bytes. */
int invite_ticket_new(char out[INVITE_TICKET_LEN + 1],
		      uint8_t hash[INVITE_HASH_LEN]);

/* 1 when token starts like a ticket (an enroll op then takes that path). */
int invite_is_ticket(const char *token);

/* The SHA-256 a ticket is stored under. 0, or BV_ETOKEN when malformed. */
int invite_ticket_hash(const char *ticket, uint8_t hash[INVITE_HASH_LEN]);

/*
 * The part of a client address that failures are counted by: an IPv4
 * address as it is (also when written IPv4-mapped), an IPv6 address's /64,
 * since one subscriber has a whole /64 to choose from. Returns 0, or -1
 * for something that is not an address.
 */
int invite_addr_key(const char *addr, char *out, size_t cap);

struct invite_limits;

/* failures per hour and address (also the burst). NULL on ENOMEM. */
struct invite_limits *invite_limits_new(unsigned per_hour);
void invite_limits_free(struct invite_limits *l);

/*
 * Takes one of key's tokens before a redemption is tried. Returns 0;
 * BV_ERATE with *retry_after_ms when key has used up its failures; BV_EBUSY
 * when INVITE_ADDRS_MAX addresses are being counted and none can be
 * forgotten yet (then every new address is refused: failing closed).
 */
int invite_limits_take(struct invite_limits *l, const char *key,
		       uint64_t now_ms, uint64_t *retry_after_ms);

/* The redemption succeeded (or failed through no fault of the client):
 * gives key's token back. */
void invite_limits_refund(struct invite_limits *l, const char *key);

/* Addresses being counted (for tests and metrics). */
size_t invite_limits_count(const struct invite_limits *l);

#endif
