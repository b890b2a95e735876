/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * http.c: a tiny blocking HTTP/1.1 client for /healthz, /metrics and the
 * fagsystem API: GET or POST with extra headers. Reads a Content-Length
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

int
bvt_http_request(int port, const char *method, const char *path,
		 const char *headers, const void *req_body, size_t req_len,
		 int timeout_ms, char **body)
{
	int64_t deadline = bvt_now_ms() + timeout_ms;
	char *req = NULL, *buf = NULL, *hend = NULL;
	size_t len = 0, cap = 0, hlen = 0, rlen;
	long clen = -1;
	int fd, status = -1, chunked = 0, hn;

	if (body)
		*body = NULL;
	fd = bvt__tcp_connect(port, timeout_ms);
	if (fd < 0)
		return -1;
	rlen = strlen(path) + (headers ? strlen(headers) : 0) + 256;
	req = malloc(rlen);
	if (!req)
		goto out;
	hn = snprintf(req, rlen,
		      "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
		      "Connection: close\r\n%s",
		      method, path, port, headers ? headers : "");
	if (req_body || strcmp(method, "POST") == 0)
		hn += snprintf(req + hn, rlen - (size_t)hn,
			       "Content-Length: %zu\r\n", req_len);
	snprintf(req + hn, rlen - (size_t)hn, "\r\n");
	if (bvt__write_all(fd, req, strlen(req), timeout_ms) < 0)
		goto out;
	if (req_len && bvt__write_all(fd, req_body, req_len, timeout_ms) < 0)
		goto out;
	for (;;) {
		struct pollfd pfd = {fd, POLLIN, 0};
		int64_t left = deadline - bvt_now_ms();
		ssize_t n;

		if (hend) {
			if (clen >= 0 && len - hlen >= (size_t)clen)
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
		if (cap - len < 8192) {
			char *nb;

			if (cap > MAX_RESPONSE)
				goto out;
			nb = realloc(buf, cap + 65536 + 1);
			if (!nb)
				goto out;
			buf = nb;
			cap += 65536;
		}
		n = recv(fd, buf + len, cap - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
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
	if (body) {
		size_t blen = len - hlen;

		if (clen >= 0 && (size_t)clen < blen)
			blen = (size_t)clen;
		*body = malloc(blen + 1);
		if (*body) {
			memcpy(*body, buf + hlen, blen);
			(*body)[blen] = '\0';
			if (chunked) {
				long d = dechunk(*body, blen);

				(*body)[d >= 0 ? (size_t)d : blen] = '\0';
			}
		}
	}
out:
	close(fd);
	free(req);
	free(buf);
	return status;
}
