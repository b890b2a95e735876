/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * client_peer.h: what the libbvchat integration tests (11, 13, …) share: a
 * "peer" (one bv_client with counters of what its callbacks saw), one loop
 * for all peers, a throwaway relay environment per test, a case the peers
 * are put on (`bvchat-relay admin`) with its conversations, and bounded
 * waits. Only bvchat.h is used for the peers, as an application would.
 */
#ifndef BV_TESTS_CLIENT_PEER_H
#define BV_TESTS_CLIENT_PEER_H

#include <stdint.h>
#include <uv.h>

#include "bvchat.h"
#include "bvtest.h"

#define MAX_RX 32
#define MAX_RC 64

struct rx {
	char mid[BV_CLIENT_MESSAGE_ID_LEN + 1];
	char conversation[BV_CLIENT_ACCOUNT_LEN + 1];
	char sender[BV_CLIENT_ACCOUNT_LEN + 1];
	uint32_t device;
	char text[64];
};

/* One message id of a receipt a peer got. */
struct rc {
	enum bv_client_receipt type;
	char mid[BV_CLIENT_MESSAGE_ID_LEN + 1];
	char sender[BV_CLIENT_ACCOUNT_LEN + 1];
	uint32_t device;
};

/* The last notice a peer got. */
struct notice {
	char conversation[BV_CLIENT_ACCOUNT_LEN + 1];
	char mid[BV_CLIENT_MESSAGE_ID_LEN + 1];
	char kind[40];
	char phone[40];
	char emergency[40];
};

struct peer {
	const char *name;
	char store[512];
	struct bv_client *c;
	unsigned online, enrolled, caught_up, refused, errors, key_changed;
	char kc_account[BV_CLIENT_ACCOUNT_LEN + 1];
	uint32_t kc_device;
	unsigned sent;
	int sent_rc;
	char sent_mid[BV_CLIENT_MESSAGE_ID_LEN + 1];
	unsigned n_rx;
	struct rx rx[MAX_RX];
	unsigned n_rc;
	struct rc rc[MAX_RC];
	unsigned accepted;
	int accepted_rc;
	int last_error;
	unsigned cases; /* on_cases calls */
	int cases_rc;
	unsigned notices;
	struct notice notice;
};

extern struct bvt_env env;
extern uv_loop_t loop;
extern char dir[256];
extern const uint8_t store_key[BV_CLIENT_STORE_KEY_LEN];
/* The conversation the peers of a test write in (case_team()). */
extern char conv[BV_CLIENT_ACCOUNT_LEN + 1];
/* The test's case (case_new()). */
extern char case_id[BV_CLIENT_ACCOUNT_LEN + 1];
/* bv_client_opts.signed_prekey_max_age_ms of the peers opened next. */
extern int64_t peer_signed_max_age_ms;
/* bv_client_opts.no_delivery_receipts of the peers opened next. */
extern int peer_no_delivery_receipts;

/* Runs the shared loop until *counter >= want or ms passed; 1 if reached. */
int run_until(const unsigned *counter, unsigned want, int ms);
void run_for(int ms);
void peer_open(struct peer *p, const char *name);
void peer_close(struct peer *p);
/* replaces 0: a new device (or account); else a reinstall of that device. */
void enroll(struct peer *p, const char *name, const char *account,
	    uint32_t replaces);
unsigned got(const struct peer *p, const char *mid);
/* How many receipts of type for mid p got from (account, device 0: any). */
unsigned got_receipt(const struct peer *p, enum bv_client_receipt type,
		     const char *mid, const char *account, uint32_t device);
const struct rx *find(const struct peer *p, const char *mid);
/* from sends text in conv and waits for the relay's answer (rc 0). */
void say(struct peer *from, const char *text, char *mid);
/* As say() in conversation; returns the outcome's code. */
int say_in(struct peer *from, const char *conversation, const char *text,
	   char *mid);
void expect(struct peer *p, const char *mid, const struct peer *from,
	    const char *text);
/* The callbacks peer_open() installs, for tests that build their own
 * bv_client_opts (user must be a struct peer). */
void peer_on_status(struct bv_client *c, void *user, enum bv_client_status st,
		    int code);
void peer_on_error(struct bv_client *c, void *user, int code,
		   const char *message_id, const char *what);
/*
 * `bvchat-relay --database DB admin ARGS…` (NULL-terminated); returns the
 * exit status and the first line of its output into out (may be NULL).
 */
int admin(char *out, size_t cap, const char *const *args);
/* A new case in the test's tenant: case_id. */
void case_new(void);
/* Puts p's account on the case as role with a display name. */
void case_add(const struct peer *p, const char *role, const char *name);
/* The team conversation of citizen p (started by p): sets conv. */
void case_team(const struct peer *citizen);
/* p's archive account is the tenant's case file. */
void case_archive(const struct peer *p);
/* Refreshes p's case view and waits until it ends (rc 0). */
void peer_cases(struct peer *p);
/* 1 when p's case view has account as a member of conversation. */
int view_has(struct peer *p, const char *conversation, const char *account);
/* The usual pair: a case with staff (caseworker) and citizen (child),
 * the citizen's team conversation in conv; both views current. */
void case_pair(struct peer *staff, struct peer *citizen);
int setup(void **state);
/* As setup(), with these arguments for the relay (NULL-terminated). */
int setup_relay(void **state, const char *const *relay_args);
int teardown(void **state);

#endif
