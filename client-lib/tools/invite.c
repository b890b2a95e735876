/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * invite.c: redeeming an invite code for `bvchat enroll --invite` (see
 * invite.h). One POST with Connection: close, the answer read to EOF
 * (at most 16 KiB) under a deadline; the two answers that matter are
 * fixed by docs/protocol.md, so a few string searches read them and the
 * tool needs no JSON library. The code and the ticket are wiped after use.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include <bvchat.h>

#include "invite.h"

#define ANSWER_MAX 16384

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
dial(const char *host, int port)
{
	struct addrinfo hints, *ai = NULL, *a;
	char service[16];
	int fd = -1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(service, sizeof(service), "%d", port);
	if (getaddrinfo(host, service, &hints, &ai) != 0)
		return -1;
	for (a = ai; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC,
			    a->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

/* The JSON string member name of s (no escapes expected), into out. */
static int
member(const char *s, const char *name, char *out, size_t cap)
{
	char key[32];
	const char *p, *e;

	snprintf(key, sizeof(key), "\"%s\":\"", name);
	p = strstr(s, key);
	if (!p)
		return -1;
	p += strlen(key);
	e = strchr(p, '"');
	if (!e || (size_t)(e - p) >= cap)
		return -1;
	memcpy(out, p, (size_t)(e - p));
	out[e - p] = '\0';
	return 0;
}

int
invite_redeem(const char *host, int port, const char *code, int timeout_ms,
	      char ticket[INVITE_TICKET_CAP], char *why, size_t whylen)
{
	char req[512], ans[ANSWER_MAX + 1], name[64];
	long long deadline = now_ms() + timeout_ms;
	size_t len = 0, i;
	int fd = -1, status = 0, n, rc = -1;
	const char *body;

	/* Nothing that would need escaping in JSON goes out. */
	for (i = 0; code[i]; i++)
		if (i >= 64 || !strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklm"
				       "nopqrstuvwxyz"
				       "0123456789- ",
				       code[i])) {
			snprintf(why, whylen, "%s",
				 bv_client_strerror(BV_EINVITE));
			return -1;
		}
	n = snprintf(req, sizeof(req),
		     "POST /v1/invites/redeem HTTP/1.1\r\nHost: %s:%d\r\n"
		     "Content-Type: application/json\r\nContent-Length: %zu"
		     "\r\nConnection: close\r\n\r\n{\"code\":\"%s\"}",
		     host, port, strlen(code) + 11, code);
	if (n < 0 || (size_t)n >= sizeof(req)) {
		snprintf(why, whylen, "host name too long");
		return -1;
	}
	fd = dial(host, port);
	if (fd < 0) {
		snprintf(why, whylen, "cannot reach %s:%d", host, port);
		goto out;
	}
	if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
		snprintf(why, whylen, "cannot send to the relay: %s",
			 strerror(errno));
		goto out;
	}
	for (;;) {
		struct pollfd pfd = {fd, POLLIN, 0};
		long long left = deadline - now_ms();
		ssize_t r;

		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) {
			snprintf(why, whylen, "the relay did not answer");
			goto out;
		}
		r = recv(fd, ans + len, ANSWER_MAX - len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
		if (len == ANSWER_MAX)
			break;
	}
	ans[len] = '\0';
	body = strstr(ans, "\r\n\r\n");
	if (sscanf(ans, "HTTP/1.%*d %d", &status) != 1 || !body) {
		snprintf(why, whylen, "the relay's answer is not HTTP");
		goto out;
	}
	if (status == 200 &&
	    member(body, "token", ticket, INVITE_TICKET_CAP) == 0 &&
	    !strncmp(ticket, "bvi1.", 5)) {
		rc = 0;
		goto out;
	}
	/* The refusal: its code's sentence, as bv_client_strerror says it. */
	if (member(body, "code", name, sizeof(name)) == 0 &&
	    !strcmp(name, "BV_EINVITE"))
		snprintf(why, whylen, "%s", bv_client_strerror(BV_EINVITE));
	else if (member(body, "message", name, sizeof(name)) == 0)
		snprintf(why, whylen, "%s (HTTP %d)", name, status);
	else
		snprintf(why, whylen, "the relay answered HTTP %d", status);
out:
	memset(req, 0, sizeof(req));
	memset(ans, 0, sizeof(ans));
	if (fd >= 0)
		close(fd);
	return rc;
}
