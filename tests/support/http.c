/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * http.c: a tiny blocking HTTP/1.1 client for /healthz, /metrics, the
 * fagsystem API and the widget's files: GET, HEAD or POST with extra
 * headers, or a request written out byte for byte. Reads a Content-Length
 * body, a chunked body, or up to EOF; every read is bounded.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/socket.h>

#include "bvtest.h"
#include "internal.h"

#define MAX_RESPONSE (16u << 20)

/* Decodes a chunked body in place; returns its length or -1 if incomplete. */
static long
dechunk(char *b, size_t len)
{
	size_t in = 0, out = 0;

	for (;;) {
		char *end;
		unsigned long n;
		char *crlf;

		if (in >= len)
			return -1;
		crlf = strstr(b + in, "\r\n");
		if (!crlf)
			return -1;
		n = strtoul(b + in, &end, 16);
		in = (size_t)(crlf - b) + 2;
		if (n == 0)
			return (long)out;
		if (in + n + 2 > len)
			return -1;
		memmove(b + out, b + in, n);
		out += n;
		in += n + 2;
	}
}

int
bvt_http_get(int port, const char *path, int timeout_ms, char **body)
{
	return bvt_http_request(port, "GET", path, NULL, NULL, 0, timeout_ms,
				body);
}

/* Sends req (len bytes) and reads one answer; see bvt_http_raw(). */
static int
exchange(int port, const char *req, size_t len, int timeout_ms, char **head,
	 char **body)
{
	int64_t deadline = bvt_now_ms() + timeout_ms;
	char *buf = NULL, *hend = NULL;
	size_t blen = 0, cap = 0, hlen = 0;
	long clen = -1;
	int fd, status = -1, chunked = 0, no_body;

	if (head)
		*head = NULL;
	if (body)
		*body = NULL;
	/* A HEAD's answer has a Content-Length but no body. */
	no_body = len >= 5 && strncmp(req, "HEAD ", 5) == 0;
	fd = bvt__tcp_connect(port, timeout_ms);
	if (fd < 0)
		return -1;
	if (bvt__write_all(fd, req, len, timeout_ms) < 0)
		goto out;
	for (;;) {
		struct pollfd pfd = {fd, POLLIN, 0};
		int64_t left = deadline - bvt_now_ms();
		ssize_t n;

		/* After a HEAD's answer: read to EOF, so that whatever else
		 * the relay sent is seen (it should be nothing, or the
		 * answer to a request sent after it). */
		if (hend && !no_body) {
			if (status == 304 || status == 204)
				break;
			if (clen >= 0 && blen - hlen >= (size_t)clen)
				break;
			if (chunked && strstr(buf + hlen, "\r\n0\r\n\r\n"))
				break;
			if (chunked && strncmp(buf + hlen, "0\r\n\r\n", 5) == 0)
				break;
		}
		if (left <= 0)
			goto out;
		if (poll(&pfd, 1, (int)left) <= 0)
			continue;
		if (cap - blen < 8192) {
			char *nb;

			if (cap > MAX_RESPONSE)
				goto out;
			nb = realloc(buf, cap + 65536 + 1);
			if (!nb)
				goto out;
			buf = nb;
			cap += 65536;
		}
		n = recv(fd, buf + blen, cap - blen, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		blen += (size_t)n;
		buf[blen] = '\0';
		if (!hend && (hend = strstr(buf, "\r\n\r\n"))) {
			char *l;

			hlen = (size_t)(hend - buf) + 4;
			if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
				status = -1;
			for (l = buf; l && l < hend; l = strstr(l, "\r\n")) {
				l += 2;
				if (strncasecmp(l, "Content-Length:", 15) == 0)
					clen = strtol(l + 15, NULL, 10);
				if (strncasecmp(l, "Transfer-Encoding:", 18) ==
					    0 &&
				    strstr(l, "chunked") &&
				    strstr(l, "chunked") < strstr(l, "\r\n"))
					chunked = 1;
			}
		}
	}
	if (!hend) {
		status = -1;
		goto out;
	}
	if (head) {
		*head = malloc(hlen + 1);
		if (*head) {
			memcpy(*head, buf, hlen);
			(*head)[hlen] = '\0';
		}
	}
	if (body) {
		size_t bl = blen - hlen;

		if (!no_body && clen >= 0 && (size_t)clen < bl)
			bl = (size_t)clen;
		*body = malloc(bl + 1);
		if (*body) {
			memcpy(*body, buf + hlen, bl);
			(*body)[bl] = '\0';
			if (chunked && !no_body) {
				long d = dechunk(*body, bl);

				(*body)[d >= 0 ? (size_t)d : bl] = '\0';
			}
		}
	}
out:
	close(fd);
	free(buf);
	return status;
}

int
bvt_http_raw(int port, const void *req, size_t len, int timeout_ms, char **head,
	     char **body)
{
	return exchange(port, req, len, timeout_ms, head, body);
}

int
bvt_http_request(int port, const char *method, const char *path,
		 const char *headers, const void *req_body, size_t req_len,
		 int timeout_ms, char **body)
{
	return bvt_http_request_head(port, method, path, headers, req_body,
				     req_len, timeout_ms, NULL, body);
}

int
bvt_http_request_head(int port, const char *method, const char *path,
		      const char *headers, const void *req_body, size_t req_len,
		      int timeout_ms, char **head, char **body)
{
	char *req;
	size_t rlen, hn;
	int status;

	if (head)
		*head = NULL;
	if (body)
		*body = NULL;
	rlen = strlen(path) + (headers ? strlen(headers) : 0) + 256 + req_len;
	req = malloc(rlen);
	if (!req)
		return -1;
	hn = (size_t)snprintf(req, rlen,
			      "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
			      "Connection: close\r\n%s",
			      method, path, port, headers ? headers : "");
	if (req_body || strcmp(method, "POST") == 0)
		hn += (size_t)snprintf(req + hn, rlen - hn,
				       "Content-Length: %zu\r\n", req_len);
	hn += (size_t)snprintf(req + hn, rlen - hn, "\r\n");
	if (req_len)
		memcpy(req + hn, req_body, req_len);
	status = exchange(port, req, hn + req_len, timeout_ms, head, body);
	free(req);
	return status;
}

const char *
bvt_http_header(const char *head, const char *name, char *buf, size_t cap)
{
	size_t n = strlen(name);
	const char *l;

	for (l = head ? strstr(head, "\r\n") : NULL; l; l = strstr(l, "\r\n")) {
		const char *v, *e;

		l += 2;
		if (strncasecmp(l, name, n) != 0 || l[n] != ':')
			continue;
		v = l + n + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		e = strstr(v, "\r\n");
		if (!e)
			return NULL;
		while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		snprintf(buf, cap, "%.*s", (int)(e - v), v);
		return buf;
	}
	return NULL;
}
