/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * send_hello.c: the smallest libbvchat program, using only bvchat.h:
 * enrolls with a token on first start (or connects with the stored
 * credentials), sends "hello" to a case conversation (its members come
 * from the relay's case view) and waits for the outcome.
 * The store key here is a fixed demo key: a real app keeps it in the
 * platform keystore.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bvchat.h>

struct state {
	int online;
	int done;
	int rc;
};

static void
on_status(struct bv_client *c, void *user, enum bv_client_status st, int code)
{
	struct state *s = user;

	(void)c;
	if (st == BV_CLIENT_ENROLLED || st == BV_CLIENT_CAUGHT_UP)
		s->online = 1;
	if (st == BV_CLIENT_REFUSED) {
		s->rc = code;
		s->done = 1;
	}
}

static void
on_sent(struct bv_client *c, void *user, const char *message_id, int rc)
{
	struct state *s = user;

	(void)c;
	printf("%s: %s\n", message_id, rc ? bv_client_strerror(rc) : "sent");
	s->rc = rc;
	s->done = 1;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: bvchat-send-hello STORE HOST PORT CONVERSATION "
		   "[TOKEN]\n"
		   "  sends \"hello\" to the case conversation; TOKEN "
		   "enrolls on first start\n");
}

int
main(int argc, char **argv)
{
	static const uint8_t demo_key[BV_CLIENT_STORE_KEY_LEN] = {1};
	struct bv_client_opts o;
	struct bv_client *c = NULL;
	struct state s = {0, 0, 0};
	char mid[BV_CLIENT_MESSAGE_ID_LEN + 1];
	int rc, sent = 0, i;

	if (argc == 2 && !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	if (argc < 5 || argc > 6) {
		usage(stderr);
		return 2;
	}
	memset(&o, 0, sizeof(o));
	o.store_path = argv[1];
	o.store_key = demo_key;
	o.relay_host = argv[2];
	o.relay_port = atoi(argv[3]);
	o.on_status = on_status;
	o.on_sent = on_sent;
	o.user = &s;
	rc = bv_client_new(&o, &c);
	if (rc < 0) {
		fprintf(stderr, "bv_client_new: %s\n", bv_client_strerror(rc));
		return 1;
	}
	rc = argc == 6 ? bv_client_enroll(c, argv[5]) : bv_client_connect(c);
	/* At most a minute in all: 600 turns of at most 100 ms. */
	for (i = 0; rc == 0 && !s.done && i < 600; i++) {
		bv_client_run_once(c);
		if (s.online && !sent) {
			rc = bv_client_send_text(c, argv[4], "hello", mid);
			sent = 1;
		}
	}
	if (rc == 0 && !s.done)
		rc = BV_EUNAVAILABLE;
	if (rc == 0)
		rc = s.rc;
	if (rc < 0)
		fprintf(stderr, "failed: %s\n", bv_client_strerror(rc));
	bv_client_free(c);
	return rc < 0;
}
