/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * invite.c: invite codes and tickets (invite.h). A code is 10 symbols of
 * Crockford's base32, 50 bits from randombytes_uniform(); the database
 * keeps only HMAC-SHA-256 of it under a key that lives in a file on the
 * relays' hosts, never in the database, so a dump or a backup alone cannot
 * be searched for codes (2^50 SHA-256 guesses take about a day on one
 * GPU, well within an invite's 72 hours). Tickets are 256 random bits and
 * need no key. Nothing here logs a code, a ticket or the key.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sodium.h>
#include <uthash.h>

#include "bv_error.h"
#include "bv_util.h"
#include "invite.h"
#include "ratelimit.h"

#define CODE_DOMAIN "bvchat invite v1\n"
#define HOUR_MS	    3600000u

static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

void
invite_code_new(char out[INVITE_CODE_LEN + 1])
{
	size_t i, o = 0;

	for (i = 0; i < INVITE_SYMBOLS; i++) {
		if (i == INVITE_SYMBOLS / 2)
			out[o++] = '-';
		out[o++] = alphabet[randombytes_uniform(32)];
	}
	out[o] = '\0';
}

/* The symbol c stands for, upper case, or 0 when none. */
static char
symbol(char c)
{
	if (c >= 'a' && c <= 'z')
		c = (char)(c - 'a' + 'A');
	if (c == 'I' || c == 'L')
		return '1';
	if (c == 'O')
		return '0';
	if (c == 'U' || !c)
		return 0;
	return strchr(alphabet, c) ? c : 0;
}

int
invite_code_normalize(const char *in, char out[INVITE_SYMBOLS + 1])
{
	size_t n = 0;
	const char *p;

	if (!in || strlen(in) > 64)
		return BV_EINVITE;
	for (p = in; *p; p++) {
		char s;

		if (*p == '-' || *p == ' ')
			continue;
		s = symbol(*p);
		if (!s || n == INVITE_SYMBOLS)
			return BV_EINVITE;
		out[n++] = s;
	}
	if (n != INVITE_SYMBOLS)
		return BV_EINVITE;
	out[n] = '\0';
	return 0;
}

void
invite_code_hash(const uint8_t key[INVITE_KEY_LEN],
		 const char canon[INVITE_SYMBOLS + 1],
		 uint8_t out[INVITE_HASH_LEN])
{
	crypto_auth_hmacsha256_state st;

	crypto_auth_hmacsha256_init(&st, key, INVITE_KEY_LEN);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)CODE_DOMAIN,
				      sizeof(CODE_DOMAIN) - 1);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)canon,
				      INVITE_SYMBOLS);
	crypto_auth_hmacsha256_final(&st, out);
	bv_wipe(&st, sizeof(st));
}

int
invite_key_load(const char *path, uint8_t key[INVITE_KEY_LEN], char *err,
		size_t errlen)
{
	char buf[130];
	size_t len = 0, bin = 0;
	struct stat st;
	int fd, rc = BV_ECONFIG;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return BV_EIO;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s is not a regular file", path);
		goto out;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO))
		fprintf(stderr,
			"warning: %s is readable by others; it should be mode "
			"0600\n",
			path);
	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			rc = BV_EIO;
			goto out;
		}
		if (n == 0 || (len += (size_t)n) == sizeof(buf) - 1)
			break;
	}
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	buf[len] = '\0';
	if (len != 2 * INVITE_KEY_LEN ||
	    sodium_hex2bin(key, INVITE_KEY_LEN, buf, len, NULL, &bin, NULL) !=
		    0 ||
	    bin != INVITE_KEY_LEN) {
		snprintf(err, errlen,
			 "%s must hold 64 hexadecimal digits (openssl rand "
			 "-hex 32)",
			 path);
		goto out;
	}
	rc = 0;
out:
	bv_wipe(buf, sizeof(buf));
	close(fd);
	return rc;
}

int
invite_ticket_new(char out[INVITE_TICKET_LEN + 1],
		  uint8_t hash[INVITE_HASH_LEN])
{
	uint8_t raw[32];
	size_t p = sizeof(INVITE_TICKET_PREFIX) - 1;

	randombytes_buf(raw, sizeof(raw));
	memcpy(out, INVITE_TICKET_PREFIX, p);
	sodium_bin2base64(out + p, INVITE_TICKET_LEN + 1 - p, raw, sizeof(raw),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	crypto_hash_sha256(hash, raw, sizeof(raw));
	bv_wipe(raw, sizeof(raw));
	return strlen(out) == INVITE_TICKET_LEN ? 0 : BV_EINTERNAL;
}

int
invite_is_ticket(const char *token)
{
	return token && !strncmp(token, INVITE_TICKET_PREFIX,
				 sizeof(INVITE_TICKET_PREFIX) - 1);
}

int
invite_ticket_hash(const char *ticket, uint8_t hash[INVITE_HASH_LEN])
{
	size_t p = sizeof(INVITE_TICKET_PREFIX) - 1, bin = 0;
	uint8_t raw[32];
	const char *end = NULL;

	if (!invite_is_ticket(ticket) || strlen(ticket) != INVITE_TICKET_LEN)
		return BV_ETOKEN;
	if (sodium_base642bin(raw, sizeof(raw), ticket + p,
			      INVITE_TICKET_LEN - p, NULL, &bin, &end,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    bin != sizeof(raw) || !end || *end) {
		bv_wipe(raw, sizeof(raw));
		return BV_ETOKEN;
	}
	crypto_hash_sha256(hash, raw, sizeof(raw));
	bv_wipe(raw, sizeof(raw));
	return 0;
}

int
invite_addr_key(const char *addr, char *out, size_t cap)
{
	unsigned char a[16];
	struct in_addr v4;

	if (!addr || cap < INET6_ADDRSTRLEN + 4)
		return -1;
	if (inet_pton(AF_INET, addr, &v4) == 1)
		return inet_ntop(AF_INET, &v4, out, (socklen_t)cap) ? 0 : -1;
	if (inet_pton(AF_INET6, addr, a) != 1)
		return -1;
	/* ::ffff:a.b.c.d is an IPv4 client on a dual-stack socket. */
	if (!memcmp(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12)) {
		memcpy(&v4, a + 12, 4);
		return inet_ntop(AF_INET, &v4, out, (socklen_t)cap) ? 0 : -1;
	}
	memset(a + 8, 0, 8);
	if (!inet_ntop(AF_INET6, a, out, (socklen_t)cap))
		return -1;
	strcat(out, "/64");
	return 0;
}

struct addr_entry {
	char key[INET6_ADDRSTRLEN + 4];
	struct ratelimit rl;
	UT_hash_handle hh;
};

struct invite_limits {
	unsigned per_hour;
	struct addr_entry *by_key;
	size_t n;
	uint64_t swept_ms; /* when a full table was last swept */
};

struct invite_limits *
invite_limits_new(unsigned per_hour)
{
	struct invite_limits *l = bv_calloc(1, sizeof(*l));

	if (l)
		l->per_hour = per_hour;
	return l;
}

void
invite_limits_free(struct invite_limits *l)
{
	struct addr_entry *e, *tmp;

	if (!l)
		return;
	HASH_ITER(hh, l->by_key, e, tmp)
	{
		HASH_DEL(l->by_key, e);
		bv_free(e);
	}
	bv_free(l);
}

/* Forgets addresses whose buckets have refilled: they hold nothing. */
static void
sweep(struct invite_limits *l, uint64_t now_ms)
{
	struct addr_entry *e, *tmp;

	HASH_ITER(hh, l->by_key, e, tmp)
	{
		if (!ratelimit_full(&e->rl, now_ms))
			continue;
		HASH_DEL(l->by_key, e);
		bv_free(e);
		l->n--;
	}
}

int
invite_limits_take(struct invite_limits *l, const char *key, uint64_t now_ms,
		   uint64_t *retry_after_ms)
{
	struct addr_entry *e = NULL;

	HASH_FIND_STR(l->by_key, key, e);
	if (!e) {
		if (strlen(key) >= sizeof(e->key))
			return BV_EBUSY;
		/* At most one sweep a second: under a flood of new
		 * addresses each would find nothing to forget. */
		if (l->n >= INVITE_ADDRS_MAX && now_ms >= l->swept_ms + 1000) {
			sweep(l, now_ms);
			l->swept_ms = now_ms;
		}
		if (l->n >= INVITE_ADDRS_MAX)
			return BV_EBUSY;
		e = bv_calloc(1, sizeof(*e));
		if (!e)
			return BV_ENOMEM;
		strcpy(e->key, key);
		ratelimit_init_period(&e->rl, l->per_hour, HOUR_MS, l->per_hour,
				      now_ms);
		HASH_ADD_STR(l->by_key, key, e);
		l->n++;
	}
	return ratelimit_take(&e->rl, now_ms, retry_after_ms);
}

void
invite_limits_refund(struct invite_limits *l, const char *key)
{
	struct addr_entry *e = NULL;

	HASH_FIND_STR(l->by_key, key, e);
	if (e)
		ratelimit_refund(&e->rl);
}

size_t
invite_limits_count(const struct invite_limits *l)
{
	return l->n;
}
