/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_archive_peer: the municipality's archive device in widget.test.mjs,
 * on libbvchat with a bvchat profile of the tenant's archive account. As
 * bvchat-archiver does, but without FIKS IO: it sends no delivery receipts,
 * reads what arrived from its local history and tells each conversation
 * with bv_client_mark_journaled() that the case file has it, one message
 * per reference ("2026/<n>", n counting from FIRST):
 *   test_archive_peer DIR HOST:PORT FIRST
 * Prints "caught up", then "journaled <message id> <reference>" for each
 * message and "key changed <account> <device>" when a member's key changes.
 * Runs until its standard input ends; bounded: 120 s. Exits 0, or 1 with
 * the reason on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bvchat.h>
#include <uv.h>

#include "profile.h"

#define TICK_MS	    200
#define LIFETIME_MS 120000
#define BATCH_MAX   64

static uv_loop_t loop;
static uv_timer_t timer, tick;
static uv_pipe_t in;
static struct bv_client *client;
static int caught_up, failed, stopped;
static long next_ref;

/* The messages of one conversation the case file has not told about yet. */
struct batch {
	const char *conversation;
	char ids[BATCH_MAX][BV_CLIENT_MESSAGE_ID_LEN + 1];
	size_t n;
};

static void
stop(void)
{
	if (stopped++)
		return;
	uv_timer_stop(&timer);
	uv_timer_stop(&tick);
	if (!uv_is_closing((uv_handle_t *)&in))
		uv_close((uv_handle_t *)&in, NULL);
	bv_client_close(client);
}

static void
on_status(struct bv_client *c, void *user, enum bv_client_status st, int code)
{
	(void)c;
	(void)user;
	(void)code;
	if (st == BV_CLIENT_CAUGHT_UP && !caught_up) {
		caught_up = 1;
		printf("caught up\n");
		fflush(stdout);
	}
	if (st == BV_CLIENT_REFUSED || st == BV_CLIENT_DISPLACED) {
		fprintf(stderr, "test_archive_peer: refused by the relay\n");
		failed = 1;
		stop();
	}
}

static void
on_key_changed(struct bv_client *c, void *user, const char *account,
	       uint32_t device)
{
	(void)c;
	(void)user;
	printf("key changed %s %u\n", account, device);
	fflush(stdout);
}

static void
on_error(struct bv_client *c, void *user, int code, const char *message_id,
	 const char *what)
{
	(void)c;
	(void)user;
	fprintf(stderr, "test_archive_peer: %s: %s (%s)\n",
		message_id ? message_id : "-", what, bv_client_strerror(code));
}

/* Texts, e-posts and files that arrived and are readable; not the
 * service's notices, not placeholders, not what is already marked. */
static int
on_history(void *arg, const struct bv_client_message *m)
{
	struct batch *b = arg;

	if (m->notice || m->outgoing || m->journal ||
	    m->state == BV_CLIENT_MSG_UNDECRYPTABLE || b->n == BATCH_MAX)
		return 0;
	snprintf(b->ids[b->n], sizeof(b->ids[0]), "%s", m->message_id);
	b->n++;
	return 0;
}

static int
on_conversation(void *arg, const struct bv_client_conversation *cv)
{
	struct batch *b = arg;
	char ref[32];
	const char *id;
	size_t i;
	int rc;

	b->conversation = cv->conversation;
	b->n = 0;
	rc = bv_client_history(client, cv->conversation, 0, on_history, b);
	for (i = 0; rc >= 0 && i < b->n; i++) {
		snprintf(ref, sizeof(ref), "2026/%ld", next_ref);
		id = b->ids[i];
		rc = bv_client_mark_journaled(client, cv->conversation, &id, 1,
					      ref, NULL);
		if (rc >= 0) {
			next_ref++;
			printf("journaled %s %s\n", id, ref);
		}
	}
	fflush(stdout);
	if (rc < 0) {
		fprintf(stderr, "test_archive_peer: journal: %s\n",
			bv_client_strerror(rc));
		failed = 1;
	}
	return rc < 0 ? rc : 0;
}

static void
on_tick(uv_timer_t *t)
{
	static struct batch b;

	(void)t;
	if (caught_up && !failed &&
	    bv_client_conversations(client, on_conversation, &b) < 0)
		stop();
}

static void
on_timer(uv_timer_t *t)
{
	(void)t;
	fprintf(stderr, "test_archive_peer: still running after %d s\n",
		LIFETIME_MS / 1000);
	failed = 1;
	stop();
}

static void
on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
	static char space[256];

	(void)h;
	(void)size;
	*buf = uv_buf_init(space, sizeof(space));
}

/* Anything read is ignored; the end of standard input ends the run. */
static void
on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	(void)s;
	(void)buf;
	if (n < 0)
		stop();
}

int
main(int argc, char **argv)
{
	uint8_t key[BV_CLIENT_STORE_KEY_LEN];
	char store[4096], host[256], *end;
	struct bv_client_opts o;
	int port, rc;

	if (argc != 4 ||
	    profile_key("test_archive_peer", argv[1], 0, key) < 0 ||
	    profile_relay(argv[2], host, sizeof(host), &port) < 0 ||
	    (next_ref = strtol(argv[3], &end, 10)) < 1 || *end) {
		fprintf(stderr,
			"usage: test_archive_peer DIR HOST:PORT FIRST\n");
		return 1;
	}
	snprintf(store, sizeof(store), "%s/store.db", argv[1]);
	uv_loop_init(&loop);
	memset(&o, 0, sizeof(o));
	o.store_path = store;
	o.store_key = key;
	o.relay_host = host;
	o.relay_port = port;
	o.loop = &loop;
	o.on_status = on_status;
	o.on_key_changed = on_key_changed;
	o.on_error = on_error;
	/* The case file reads nobody's messages (bvchat-archiver too). */
	o.no_delivery_receipts = 1;
	rc = bv_client_new(&o, &client);
	if (rc < 0 || (rc = bv_client_connect(client)) < 0) {
		fprintf(stderr, "test_archive_peer: %s\n",
			bv_client_strerror(rc));
		return 1;
	}
	uv_timer_init(&loop, &timer);
	uv_timer_start(&timer, on_timer, LIFETIME_MS, 0);
	uv_timer_init(&loop, &tick);
	uv_timer_start(&tick, on_tick, TICK_MS, TICK_MS);
	if (uv_pipe_init(&loop, &in, 0) < 0 || uv_pipe_open(&in, 0) < 0 ||
	    uv_read_start((uv_stream_t *)&in, on_alloc, on_read) < 0) {
		fprintf(stderr, "test_archive_peer: cannot read stdin\n");
		failed = 1;
		stop();
	}
	/* bvchat.h's order for a borrowed loop: close, run it dry, free. */
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_close((uv_handle_t *)&timer, NULL);
	uv_close((uv_handle_t *)&tick, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	bv_client_free(client);
	uv_loop_close(&loop);
	return failed ? 1 : 0;
}
