/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_att_peer: the caseworker's side of the widget's attachments in
 * widget.test.mjs, on libbvchat with a bvchat profile (DIR/store.db and
 * DIR/store.key, while bvchat itself is not running on it):
 *   test_att_peer DIR HOST:PORT fetch OUTDIR
 *     connects, waits until caught up, and writes every attachment of
 *     every received message to OUTDIR/<name> (bv_client_attachment_fetch:
 *     digest and authentication checked); prints "fetched <name> <size>".
 *   test_att_peer DIR HOST:PORT send CONVERSATION FILE TYPE NAME TEXT
 *     sends FILE as NAME with TEXT and waits for the outcome.
 * Exits 0 on success, 1 with the reason on stderr. Bounded: 30 s.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bvchat.h>
#include <uv.h>

#include "profile.h"

static uv_loop_t loop;
static uv_timer_t timer;
static int caught_up, refused, timed_out, sent_rc = 1, pending, failures;
static const char *outdir;

static void
on_status(struct bv_client *c, void *user, enum bv_client_status st, int code)
{
	(void)c;
	(void)user;
	(void)code;
	if (st == BV_CLIENT_CAUGHT_UP)
		caught_up = 1;
	if (st == BV_CLIENT_REFUSED || st == BV_CLIENT_DISPLACED)
		refused = 1;
}

static void
on_sent(struct bv_client *c, void *user, const char *message_id, int rc)
{
	(void)c;
	(void)user;
	(void)message_id;
	sent_rc = rc;
}

static void
on_timer(uv_timer_t *t)
{
	(void)t;
	timed_out = 1;
}

/* Runs the loop until *flag > 0 (the one 30 s timer bounds it all). */
static void
run_until(const int *flag)
{
	while (*flag <= 0 && !timed_out && !refused)
		uv_run(&loop, UV_RUN_ONCE);
}

static void
on_fetched(struct bv_client *c, void *arg, const char *message_id, int index,
	   int rc, const char *path, const uint8_t *data, size_t len)
{
	(void)c;
	(void)arg;
	(void)data;
	(void)len;
	pending--;
	if (rc < 0) {
		fprintf(stderr, "fetch %s/%d: %s\n", message_id, index,
			bv_client_strerror(rc));
		failures++;
	} else {
		printf("fetched %s\n", path);
	}
}

struct walk {
	struct bv_client *c;
};

static int
on_history(void *arg, const struct bv_client_message *m)
{
	struct walk *w = arg;
	char path[4096];
	size_t i;
	int rc;

	if (m->outgoing)
		return 0;
	for (i = 0; i < m->n_attachments; i++) {
		snprintf(path, sizeof(path), "%s/%s", outdir,
			 m->attachments[i].name);
		rc = bv_client_attachment_fetch(w->c, m->message_id, (int)i,
						path, on_fetched, NULL);
		if (rc < 0) {
			fprintf(stderr, "fetch: %s\n", bv_client_strerror(rc));
			failures++;
		} else {
			pending++;
		}
	}
	return 0;
}

static int
on_conversation(void *arg, const struct bv_client_conversation *cv)
{
	struct walk *w = arg;

	return bv_client_history(w->c, cv->conversation, 0, on_history, w);
}

static int
read_file(const char *path, uint8_t **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	long n;

	if (!f || fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) < 0) {
		if (f)
			fclose(f);
		return -1;
	}
	*out = malloc((size_t)n + 1);
	if (!*out || fread(*out, 1, (size_t)n, f) != (size_t)n) {
		fclose(f);
		return -1;
	}
	fclose(f);
	*len = (size_t)n;
	return 0;
}

int
main(int argc, char **argv)
{
	uint8_t key[BV_CLIENT_STORE_KEY_LEN], *data = NULL;
	char store[4096], host[256], mid[BV_CLIENT_MESSAGE_ID_LEN + 1];
	struct bv_client_opts o;
	struct bv_client *c = NULL;
	struct bv_client_file file;
	struct walk w;
	size_t len = 0;
	int port, rc, ok = 0;

	if (argc < 5 || profile_key("test_att_peer", argv[1], 0, key) < 0 ||
	    profile_relay(argv[2], host, sizeof(host), &port) < 0) {
		fprintf(stderr, "usage: test_att_peer DIR HOST:PORT fetch "
				"OUTDIR | send CONV FILE TYPE NAME TEXT\n");
		return 1;
	}
	snprintf(store, sizeof(store), "%s/store.db", argv[1]);
	uv_loop_init(&loop);
	uv_timer_init(&loop, &timer);
	uv_timer_start(&timer, on_timer, 30000, 0);
	memset(&o, 0, sizeof(o));
	o.store_path = store;
	o.store_key = key;
	o.relay_host = host;
	o.relay_port = port;
	o.loop = &loop;
	o.on_status = on_status;
	o.on_sent = on_sent;
	rc = bv_client_new(&o, &c);
	if (rc < 0 || (rc = bv_client_connect(c)) < 0) {
		fprintf(stderr, "open: %s\n", bv_client_strerror(rc));
		return 1;
	}
	run_until(&caught_up);
	if (!caught_up) {
		fprintf(stderr, "not caught up\n");
	} else if (!strcmp(argv[3], "fetch")) {
		outdir = argv[4];
		w.c = c;
		rc = bv_client_conversations(c, on_conversation, &w);
		if (rc < 0)
			fprintf(stderr, "history: %s\n",
				bv_client_strerror(rc));
		while (rc >= 0 && pending > 0 && !timed_out)
			uv_run(&loop, UV_RUN_ONCE);
		ok = rc >= 0 && pending == 0 && failures == 0;
	} else if (!strcmp(argv[3], "send") && argc == 9 &&
		   read_file(argv[5], &data, &len) == 0) {
		memset(&file, 0, sizeof(file));
		file.data = data;
		file.len = len;
		file.type = argv[6];
		file.name = argv[7];
		rc = bv_client_send_attachments(c, argv[4], argv[8], NULL, NULL,
						0, &file, 1, mid);
		if (rc < 0) {
			fprintf(stderr, "send: %s\n", bv_client_strerror(rc));
		} else {
			sent_rc = 1;
			while (sent_rc == 1 && !timed_out && !refused)
				uv_run(&loop, UV_RUN_ONCE);
			ok = sent_rc == 0;
			if (!ok)
				fprintf(stderr, "sent: %s\n",
					sent_rc == 1
						? "no outcome"
						: bv_client_strerror(sent_rc));
		}
	} else {
		fprintf(stderr, "bad command\n");
	}
	free(data);
	uv_timer_stop(&timer);
	bv_client_close(c);
	uv_run(&loop, UV_RUN_DEFAULT);
	bv_client_free(c);
	return ok ? 0 : 1;
}
