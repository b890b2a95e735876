/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * bvtest-push-sink: the tests' local Web Push service (libbvpushsink,
 * push_sink.h) as a program of its own, for tests that are not C (the
 * widget's web push test, tests/web/push.test.mjs). It listens on
 * 127.0.0.1 on a free port, checks every POST /push/<id> as a push
 * service must (RFC 8030; RFC 8292 VAPID verified with its k; Content-
 * Encoding aes128gcm; TTL; at most 4096 bytes) and writes each push it
 * accepted (201) into DIR as NNNNNN.body (the encrypted body as received)
 * and then NNNNNN.json ({"id", "ttl", "urgency", "k", "authorization",
 * "content_encoding", "length"}), each made under a temporary name and
 * renamed, so a reader that sees the .json finds the body complete.
 * Refused pushes are appended to DIR/refused.log with the reason. It
 * decrypts nothing: the key is the browser's. Not for production.
 *
 * usage: bvtest-push-sink --dir DIR
 * Prints "origin http://127.0.0.1:PORT" on stdout once listening (the
 * endpoint of subscription ID is ORIGIN/push/ID); SIGTERM or SIGINT stop
 * it. Runs at most 24 hours.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "push_sink.h"

#define POLL_MS	   20
#define RUN_MAX_MS (24L * 3600 * 1000)

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* Writes len bytes to dir/name through dir/name.tmp and a rename. */
static int
write_file(const char *dir, const char *name, const void *data, size_t len)
{
	char path[4200], tmp[4300];
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "wb");
	if (!f)
		return -1;
	ok = fwrite(data, 1, len, f) == len;
	ok = fclose(f) == 0 && ok;
	if (!ok || rename(tmp, path) != 0) {
		remove(tmp);
		return -1;
	}
	return 0;
}

/* The i-th kept push as NNNNNN.body and NNNNNN.json. */
static int
save(const struct push_sink *s, const char *dir, size_t i)
{
	struct push_msg m;
	char name[32], *text;
	json_t *j;
	int rc = -1;

	if (push_sink_get(s, i, &m) < 0)
		return -1;
	snprintf(name, sizeof(name), "%06zu.body", i);
	if (write_file(dir, name, m.body, m.len) < 0)
		goto out;
	j = json_pack("{ss sI ss ss ss ss sI}", "id", m.id, "ttl",
		      (json_int_t)m.ttl, "urgency", m.urgency, "k", m.k,
		      "authorization", m.authorization, "content_encoding",
		      "aes128gcm", "length", (json_int_t)m.len);
	text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!text)
		goto out;
	snprintf(name, sizeof(name), "%06zu.json", i);
	rc = write_file(dir, name, text, strlen(text));
	free(text);
out:
	free(m.body);
	return rc;
}

static void
log_refusal(const struct push_sink *s, const char *dir)
{
	char path[4200], why[256];
	FILE *f;

	push_sink_last_refusal(s, why, sizeof(why));
	snprintf(path, sizeof(path), "%s/refused.log", dir);
	f = fopen(path, "a");
	if (!f)
		return;
	fprintf(f, "%s\n", why);
	fclose(f);
}

int
main(int argc, char **argv)
{
	const char *dir = NULL;
	struct push_sink *s;
	struct sigaction sa;
	struct stat st;
	struct timespec ts = {0, POLL_MS * 1000L * 1000L};
	size_t saved = 0, refused = 0, n;
	long waited;
	int i, status = 0;

	for (i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--dir"))
			dir = argv[i + 1];
		else
			break;
	}
	if (!dir || i != argc) {
		fprintf(stderr, "usage: bvtest-push-sink --dir DIR\n");
		return 2;
	}
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "bvtest-push-sink: %s is not a directory\n",
			dir);
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	s = push_sink_start();
	if (!s) {
		fprintf(stderr, "bvtest-push-sink: cannot listen\n");
		return 1;
	}
	printf("origin %s\n", push_sink_origin(s));
	fflush(stdout);
	for (waited = 0; !stop && waited < RUN_MAX_MS; waited += POLL_MS) {
		for (n = push_sink_count(s); saved < n; saved++) {
			if (save(s, dir, saved) < 0) {
				fprintf(stderr,
					"bvtest-push-sink: cannot write "
					"into %s\n",
					dir);
				status = 1;
				stop = 1;
				break;
			}
		}
		n = push_sink_refused(s);
		if (n != refused) {
			refused = n;
			log_refusal(s, dir);
		}
		if (!stop)
			while (nanosleep(&ts, NULL) < 0 && errno == EINTR &&
			       !stop)
				;
	}
	push_sink_stop(s);
	return status;
}
