/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * bvtest-smtp-sink: a small real SMTP server on 127.0.0.1 for the tests of
 * bvchat-notifier's e-mail channel (and make run). Each message accepted
 * is written to DIR/NNNNNN.eml as received (dot-unstuffed), after two
 * lines X-Sink-Mail-From and X-Sink-Rcpt-To. While DIR/fail holds a
 * three-digit code (e.g. 451), every MAIL FROM is answered with it, so
 * tests can make the server fail and recover. While DIR/hold exists, a
 * MAIL FROM gets no answer (at most HOLD_MAX_S seconds) and DIR/held
 * exists meanwhile, so a test can keep a sender stuck in the middle of a
 * conversation for as long as it needs. One connection at a time;
 * lines, messages and idle time are bounded. Not for production.
 * usage: bvtest-smtp-sink --port N --dir DIR (port 0: any; printed on
 * stdout as "port N" once listening).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#define LINE_MAX_  1000
#define MSG_MAX	   (1u << 20)
#define RCPT_MAX   16
#define HOLD_MAX_S 60

struct session {
	int fd;
	char buf[4096];
	size_t len, off;
};

static int
say(struct session *s, const char *line)
{
	size_t n = strlen(line);

	return write(s->fd, line, n) == (ssize_t)n ? 0 : -1;
}

/* One line without its CRLF into out; -1 on EOF, timeout or a long line. */
static int
get_line(struct session *s, char *out, size_t cap)
{
	size_t n = 0;

	for (;;) {
		char ch;

		if (s->off == s->len) {
			ssize_t r = read(s->fd, s->buf, sizeof(s->buf));

			if (r <= 0)
				return -1;
			s->len = (size_t)r;
			s->off = 0;
		}
		ch = s->buf[s->off++];
		if (ch == '\n') {
			if (n > 0 && out[n - 1] == '\r')
				n--;
			out[n] = '\0';
			return (int)n;
		}
		if (n + 1 >= cap)
			return -1;
		out[n++] = ch;
	}
}

/* The code in DIR/fail, or 0. */
static int
fail_code(const char *dir)
{
	char path[4200];
	FILE *f;
	int code = 0;

	snprintf(path, sizeof(path), "%s/fail", dir);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fscanf(f, "%3d", &code) != 1 || code < 400 || code > 599)
		code = 0;
	fclose(f);
	return code;
}

/* While DIR/hold exists (at most HOLD_MAX_S), DIR/held does. */
static void
hold(const char *dir)
{
	char path[4200], held[4200];
	FILE *f;
	int i;

	snprintf(path, sizeof(path), "%s/hold", dir);
	snprintf(held, sizeof(held), "%s/held", dir);
	if (access(path, F_OK) != 0)
		return;
	f = fopen(held, "w");
	if (f)
		fclose(f);
	for (i = 0; i < HOLD_MAX_S * 50 && access(path, F_OK) == 0; i++)
		usleep(20 * 1000);
	unlink(held);
}

static void
serve(int fd, const char *dir, unsigned *seq)
{
	struct session s = {.fd = fd};
	char line[LINE_MAX_ + 2], from[LINE_MAX_ + 1] = "", reply[64];
	char rcpt[RCPT_MAX][LINE_MAX_ + 1];
	size_t nrcpt = 0;
	int code;

	if (say(&s, "220 bvtest-smtp-sink ESMTP\r\n") < 0)
		return;
	while (get_line(&s, line, sizeof(line)) >= 0) {
		if (!strncasecmp(line, "EHLO", 4)) {
			say(&s, "250-bvtest-smtp-sink\r\n250-8BITMIME\r\n"
				"250 SIZE 1048576\r\n");
		} else if (!strncasecmp(line, "HELO", 4)) {
			say(&s, "250 bvtest-smtp-sink\r\n");
		} else if (!strncasecmp(line, "MAIL FROM:", 10)) {
			hold(dir);
			code = fail_code(dir);
			if (code) {
				snprintf(reply, sizeof(reply),
					 "%d try again later\r\n", code);
				say(&s, reply);
				continue;
			}
			snprintf(from, sizeof(from), "%s", line + 10);
			nrcpt = 0;
			say(&s, "250 OK\r\n");
		} else if (!strncasecmp(line, "RCPT TO:", 8)) {
			if (!from[0] || nrcpt == RCPT_MAX) {
				say(&s, "503 bad sequence\r\n");
				continue;
			}
			snprintf(rcpt[nrcpt++], sizeof(rcpt[0]), "%s",
				 line + 8);
			say(&s, "250 OK\r\n");
		} else if (!strcasecmp(line, "DATA")) {
			char path[4200], tmp[4300];
			size_t total = 0, i;
			FILE *f;
			int n, ok = 1;

			if (!from[0] || !nrcpt) {
				say(&s, "503 bad sequence\r\n");
				continue;
			}
			say(&s, "354 go ahead\r\n");
			snprintf(path, sizeof(path), "%s/%06u.eml", dir,
				 ++*seq);
			snprintf(tmp, sizeof(tmp), "%s.tmp", path);
			f = fopen(tmp, "w");
			if (!f)
				return;
			fprintf(f, "X-Sink-Mail-From: %s\r\n", from);
			for (i = 0; i < nrcpt; i++)
				fprintf(f, "X-Sink-Rcpt-To: %s\r\n", rcpt[i]);
			while ((n = get_line(&s, line, sizeof(line))) >= 0) {
				const char *l = line;

				if (!strcmp(line, "."))
					break;
				if (line[0] == '.')
					l++; /* dot-stuffing */
				total += strlen(l) + 2;
				if (total > MSG_MAX)
					ok = 0;
				if (ok)
					fprintf(f, "%s\r\n", l);
			}
			fclose(f);
			if (n < 0 || !ok) {
				unlink(tmp);
				if (n < 0)
					return;
				say(&s, "552 too large\r\n");
				continue;
			}
			rename(tmp, path);
			from[0] = '\0';
			nrcpt = 0;
			say(&s, "250 OK queued\r\n");
		} else if (!strcasecmp(line, "RSET")) {
			from[0] = '\0';
			nrcpt = 0;
			say(&s, "250 OK\r\n");
		} else if (!strcasecmp(line, "NOOP")) {
			say(&s, "250 OK\r\n");
		} else if (!strcasecmp(line, "QUIT")) {
			say(&s, "221 bye\r\n");
			return;
		} else {
			say(&s, "502 not implemented\r\n");
		}
	}
}

int
main(int argc, char **argv)
{
	const char *dir = NULL;
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	struct timeval tv = {10, 0};
	unsigned seq = 0;
	int port = -1, lfd, one = 1, i;

	for (i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--port"))
			port = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--dir"))
			dir = argv[i + 1];
	}
	if (port < 0 || port > 65535 || !dir || strlen(dir) > 4000) {
		fprintf(stderr, "usage: bvtest-smtp-sink --port N --dir DIR\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd < 0 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(lfd, 16) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0) {
		perror("bvtest-smtp-sink");
		return 1;
	}
	printf("port %u\n", ntohs(sa.sin_port));
	fflush(stdout);
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR)
				continue;
			perror("accept");
			return 1;
		}
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		serve(fd, dir, &seq);
		close(fd);
	}
}
