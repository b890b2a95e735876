/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * ws.c: a blocking RFC 6455 client over plain POSIX sockets, for tests.
 *
 * Client side only: frames we send are masked, frames we receive are
 * expected unmasked (a masked one is still accepted). Handles fragmented
 * and 64-bit-length frames both ways, answers pings, counts pongs and
 * answers a close. Every read waits in poll() with a deadline. Not a
 * general-purpose client: no TLS, no extensions, no redirects.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sodium.h>

#include "bvtest.h"
#include "internal.h"

#define MAX_MESSAGE (64u << 20)

struct bvt_ws {
	int fd;
	unsigned char *rbuf;
	size_t rlen, rcap;
	unsigned char *msg; /* message being assembled */
	size_t msglen;
	int msgop; /* 0 when none in progress */
	int close_code;
	int closed;
	unsigned pongs;
};

/* ---- SHA-1 (RFC 3174), only for Sec-WebSocket-Accept ---- */

#define ROL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))

static void
sha1_block(uint32_t h[5], const unsigned char *p)
{
	uint32_t w[80], a, b, c, d, e, t;
	int i;

	for (i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (i = 16; i < 80; i++)
		w[i] = ROL(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
	a = h[0];
	b = h[1];
	c = h[2];
	d = h[3];
	e = h[4];
	for (i = 0; i < 80; i++) {
		uint32_t f, k;

		if (i < 20) {
			f = (b & c) | (~b & d);
			k = 0x5a827999;
		} else if (i < 40) {
			f = b ^ c ^ d;
			k = 0x6ed9eba1;
		} else if (i < 60) {
			f = (b & c) | (b & d) | (c & d);
			k = 0x8f1bbcdc;
		} else {
			f = b ^ c ^ d;
			k = 0xca62c1d6;
		}
		t = ROL(a, 5) + f + e + k + w[i];
		e = d;
		d = c;
		c = ROL(b, 30);
		b = a;
		a = t;
	}
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
	h[4] += e;
}

static void
sha1(const void *data, size_t len, unsigned char out[20])
{
	uint32_t h[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476,
			 0xc3d2e1f0};
	const unsigned char *p = data;
	unsigned char blk[64];
	uint64_t bits = (uint64_t)len * 8;
	size_t i, r;

	for (i = 0; i + 64 <= len; i += 64)
		sha1_block(h, p + i);
	r = len - i;
	memset(blk, 0, sizeof(blk));
	memcpy(blk, p + i, r);
	blk[r] = 0x80;
	if (r >= 56) {
		sha1_block(h, blk);
		memset(blk, 0, sizeof(blk));
	}
	for (i = 0; i < 8; i++)
		blk[63 - i] = (unsigned char)(bits >> (8 * i));
	sha1_block(h, blk);
	for (i = 0; i < 5; i++) {
		out[4 * i] = (unsigned char)(h[i] >> 24);
		out[4 * i + 1] = (unsigned char)(h[i] >> 16);
		out[4 * i + 2] = (unsigned char)(h[i] >> 8);
		out[4 * i + 3] = (unsigned char)h[i];
	}
}

/* ---- sockets ---- */

int
bvt__tcp_connect(int port, int timeout_ms)
{
	struct sockaddr_in sa;
	int fd, one = 1;

	(void)timeout_ms; /* loopback connects at once or is refused */
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

int
bvt__write_all(int fd, const void *buf, size_t len, int timeout_ms)
{
	int64_t deadline = bvt_now_ms() + timeout_ms;
	const unsigned char *p = buf;

	while (len > 0) {
		struct pollfd pfd = {fd, POLLOUT, 0};
		int64_t left = deadline - bvt_now_ms();
		ssize_t n;

		if (left <= 0) {
			fprintf(stderr, "bvtest: write timed out\n");
			return -1;
		}
		if (poll(&pfd, 1, (int)left) <= 0)
			continue;
		n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads more into rbuf until the deadline: 1 got bytes, 0 timeout, -1 EOF
 * or error. */
static int
fill(struct bvt_ws *ws, int64_t deadline)
{
	for (;;) {
		struct pollfd pfd = {ws->fd, POLLIN, 0};
		int64_t left = deadline - bvt_now_ms();
		ssize_t n;
		int pr;

		if (left < 0)
			left = 0;
		pr = poll(&pfd, 1, (int)left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr == 0)
			return 0;
		if (ws->rcap - ws->rlen < 65536) {
			unsigned char *nb =
				realloc(ws->rbuf, ws->rcap + 131072);

			if (!nb)
				return -1;
			ws->rbuf = nb;
			ws->rcap += 131072;
		}
		n = recv(ws->fd, ws->rbuf + ws->rlen, ws->rcap - ws->rlen - 1,
			 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return -1;
		ws->rlen += (size_t)n;
		return 1;
	}
}

static void
consume(struct bvt_ws *ws, size_t n)
{
	memmove(ws->rbuf, ws->rbuf + n, ws->rlen - n);
	ws->rlen -= n;
}

struct bvt_ws *
bvt_ws_connect(int port, const char *path, const char *subprotocol,
	       int timeout_ms, int *http_status)
{
	return bvt_ws_connect_hdr(port, path, subprotocol, NULL, timeout_ms,
				  http_status);
}

struct bvt_ws *
bvt_ws_connect_hdr(int port, const char *path, const char *subprotocol,
		   const char *headers, int timeout_ms, int *http_status)
{
	int64_t deadline = bvt_now_ms() + timeout_ms;
	unsigned char nonce[16], digest[20];
	char key[32], accept[40], expect[40], req[1024], cat[128];
	struct bvt_ws *ws;
	char *end, *line;
	int status = 0;

	if (http_status)
		*http_status = 0;
	if (sodium_init() < 0)
		return NULL;
	ws = calloc(1, sizeof(*ws));
	if (!ws)
		return NULL;
	ws->close_code = -1;
	ws->fd = bvt__tcp_connect(port, timeout_ms);
	if (ws->fd < 0) {
		free(ws);
		return NULL;
	}
	randombytes_buf(nonce, sizeof(nonce));
	sodium_bin2base64(key, sizeof(key), nonce, sizeof(nonce),
			  sodium_base64_VARIANT_ORIGINAL);
	snprintf(req, sizeof(req),
		 "GET %s HTTP/1.1\r\n"
		 "Host: 127.0.0.1:%d\r\n"
		 "Upgrade: websocket\r\n"
		 "Connection: Upgrade\r\n"
		 "Sec-WebSocket-Key: %s\r\n"
		 "Sec-WebSocket-Version: 13\r\n"
		 "%s%s%s%s"
		 "\r\n",
		 path, port, key, subprotocol ? "Sec-WebSocket-Protocol: " : "",
		 subprotocol ? subprotocol : "", subprotocol ? "\r\n" : "",
		 headers ? headers : "");
	if (bvt__write_all(ws->fd, req, strlen(req), timeout_ms) < 0)
		goto fail;
	/* Read the response head; bytes after it are the first frames. */
	for (;;) {
		if (ws->rlen > 0) {
			ws->rbuf[ws->rlen] = 0; /* fill() leaves room */
			end = strstr((char *)ws->rbuf, "\r\n\r\n");
			if (end)
				break;
		}
		if (ws->rlen > 16384 || fill(ws, deadline) <= 0)
			goto fail;
	}
	{
		size_t head = (size_t)(end + 4 - (char *)ws->rbuf);
		char *h = malloc(head + 1);
		int got_accept = 0, got_proto = 0;

		if (!h)
			goto fail;
		memcpy(h, ws->rbuf, head);
		h[head] = '\0';
		consume(ws, head);
		if (sscanf(h, "HTTP/1.%*d %d", &status) != 1)
			status = 0;
		if (http_status)
			*http_status = status;
		snprintf(cat, sizeof(cat),
			 "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
		sha1(cat, strlen(cat), digest);
		sodium_bin2base64(expect, sizeof(expect), digest, 20,
				  sodium_base64_VARIANT_ORIGINAL);
		for (line = strtok(h, "\r\n"); line;
		     line = strtok(NULL, "\r\n")) {
			if (strncasecmp(line, "Sec-WebSocket-Accept:", 21) ==
			    0) {
				sscanf(line + 21, " %39s", accept);
				got_accept = strcmp(accept, expect) == 0;
			} else if (strncasecmp(line, "Sec-WebSocket-Protocol:",
					       23) == 0) {
				char *v = line + 23;

				while (*v == ' ')
					v++;
				got_proto = subprotocol &&
					    strcmp(v, subprotocol) == 0;
			}
		}
		free(h);
		if (status != 101 || !got_accept || (subprotocol && !got_proto))
			goto fail;
	}
	return ws;
fail:
	bvt_ws_free(ws);
	return NULL;
}

/* Writes one masked frame of len bytes at f (room: 14 + len); returns its
 * size. */
static size_t
build_frame(unsigned char *f, int opcode, int fin, const void *buf, size_t len)
{
	unsigned char mask[4];
	size_t h = 2, i;

	f[0] = (unsigned char)((fin ? 0x80 : 0) | (opcode & 0x0f));
	if (len < 126) {
		f[1] = (unsigned char)(0x80 | len);
	} else if (len <= 0xffff) {
		f[1] = 0x80 | 126;
		f[2] = (unsigned char)(len >> 8);
		f[3] = (unsigned char)len;
		h = 4;
	} else {
		f[1] = 0x80 | 127;
		for (i = 0; i < 8; i++)
			f[2 + i] =
				(unsigned char)((uint64_t)len >> (56 - 8 * i));
		h = 10;
	}
	randombytes_buf(mask, 4);
	memcpy(f + h, mask, 4);
	h += 4;
	for (i = 0; i < len; i++)
		f[h + i] = ((const unsigned char *)buf)[i] ^ mask[i & 3];
	return h + len;
}

int
bvt_ws_send_frame(struct bvt_ws *ws, int opcode, int fin, const void *buf,
		  size_t len)
{
	unsigned char *f;
	size_t n;
	int rc;

	if (!ws || ws->fd < 0)
		return -1;
	f = malloc(14 + len);
	if (!f)
		return -1;
	n = build_frame(f, opcode, fin, buf, len);
	rc = bvt__write_all(ws->fd, f, n, bvt_ms(BVT_TIMEOUT));
	free(f);
	return rc;
}

int
bvt_ws_send_batch(struct bvt_ws *ws, const char *const *msgs,
		  const size_t *lens, size_t n)
{
	unsigned char *all;
	size_t total = 0, off = 0, i;
	int rc;

	if (!ws || ws->fd < 0)
		return -1;
	for (i = 0; i < n; i++)
		total += 14 + lens[i];
	all = malloc(total ? total : 1);
	if (!all)
		return -1;
	for (i = 0; i < n; i++)
		off += build_frame(all + off, BVT_WS_TEXT, 1, msgs[i], lens[i]);
	rc = bvt__write_all(ws->fd, all, off, bvt_ms(BVT_TIMEOUT));
	free(all);
	return rc;
}

int
bvt_ws_send(struct bvt_ws *ws, int opcode, const void *buf, size_t len)
{
	return bvt_ws_send_frame(ws, opcode, 1, buf, len);
}

int
bvt_ws_send_fragmented(struct bvt_ws *ws, int opcode, const void *buf,
		       size_t len, size_t frag)
{
	const unsigned char *p = buf;
	size_t off = 0;
	int first = 1;

	if (frag == 0)
		frag = len ? len : 1;
	do {
		size_t n = len - off < frag ? len - off : frag;
		int fin = off + n >= len;

		if (bvt_ws_send_frame(ws, first ? opcode : BVT_WS_CONT, fin,
				      p + off, n) < 0)
			return -1;
		off += n;
		first = 0;
	} while (off < len);
	return 0;
}

int
bvt_ws_close(struct bvt_ws *ws, int code)
{
	unsigned char b[2] = {(unsigned char)(code >> 8), (unsigned char)code};

	return bvt_ws_send_frame(ws, BVT_WS_CLOSE, 1, b, 2);
}

int
bvt_ws_close_code(const struct bvt_ws *ws)
{
	return ws ? ws->close_code : -1;
}

unsigned
bvt_ws_pongs(const struct bvt_ws *ws)
{
	return ws ? ws->pongs : 0;
}

void
bvt_ws_free(struct bvt_ws *ws)
{
	if (!ws)
		return;
	if (ws->fd >= 0)
		close(ws->fd);
	free(ws->rbuf);
	free(ws->msg);
	free(ws);
}

/*
 * Takes one whole frame from rbuf if there is one: 1 (frame handled, maybe
 * a message completed: *done), 0 (need more bytes), -1 (protocol error).
 */
static int
take_frame(struct bvt_ws *ws, int *done, int *closed)
{
	unsigned char *b = ws->rbuf;
	size_t h = 2, plen, i;
	int fin, op, masked;
	unsigned char mask[4] = {0, 0, 0, 0};

	*done = 0;
	*closed = 0;
	if (ws->rlen < 2)
		return 0;
	fin = b[0] & 0x80;
	op = b[0] & 0x0f;
	masked = b[1] & 0x80;
	plen = b[1] & 0x7f;
	if (plen == 126) {
		if (ws->rlen < 4)
			return 0;
		plen = (size_t)b[2] << 8 | b[3];
		h = 4;
	} else if (plen == 127) {
		uint64_t v = 0;

		if (ws->rlen < 10)
			return 0;
		for (i = 0; i < 8; i++)
			v = v << 8 | b[2 + i];
		if (v > MAX_MESSAGE)
			return -1;
		plen = (size_t)v;
		h = 10;
	}
	if (masked) {
		if (ws->rlen < h + 4)
			return 0;
		memcpy(mask, b + h, 4);
		h += 4;
	}
	if (ws->rlen < h + plen)
		return 0;
	if (masked)
		for (i = 0; i < plen; i++)
			b[h + i] ^= mask[i & 3];
	if (op >= 0x8) {
		if (!fin || plen > 125)
			return -1;
		if (op == BVT_WS_PING) {
			bvt_ws_send_frame(ws, BVT_WS_PONG, 1, b + h, plen);
		} else if (op == BVT_WS_PONG) {
			ws->pongs++;
		} else if (op == BVT_WS_CLOSE) {
			ws->close_code =
				plen >= 2 ? (int)(b[h] << 8 | b[h + 1]) : 1005;
			if (!ws->closed) {
				if (plen >= 2)
					bvt_ws_send_frame(ws, BVT_WS_CLOSE, 1,
							  b + h, 2);
				else
					bvt_ws_send_frame(ws, BVT_WS_CLOSE, 1,
							  NULL, 0);
			}
			ws->closed = 1;
			*closed = 1;
		} else {
			return -1;
		}
		consume(ws, h + plen);
		return 1;
	}
	if (op == BVT_WS_CONT) {
		if (!ws->msgop)
			return -1;
	} else if (op == BVT_WS_TEXT || op == BVT_WS_BINARY) {
		if (ws->msgop)
			return -1;
		ws->msgop = op;
		ws->msglen = 0;
	} else {
		return -1;
	}
	if (ws->msglen + plen > MAX_MESSAGE)
		return -1;
	{
		unsigned char *nm = realloc(ws->msg, ws->msglen + plen + 1);

		if (!nm)
			return -1;
		ws->msg = nm;
	}
	memcpy(ws->msg + ws->msglen, b + h, plen);
	ws->msglen += plen;
	ws->msg[ws->msglen] = '\0';
	consume(ws, h + plen);
	if (fin)
		*done = 1;
	return 1;
}

int
bvt_ws_recv(struct bvt_ws *ws, int timeout_ms, int *opcode, char **buf,
	    size_t *len)
{
	int64_t deadline = bvt_now_ms() + timeout_ms;

	if (!ws)
		return BVT_WS_ERROR;
	if (ws->closed)
		return BVT_WS_CLOSED;
	for (;;) {
		int done, closed, r;

		while ((r = take_frame(ws, &done, &closed)) == 1) {
			if (closed)
				return BVT_WS_CLOSED;
			if (done) {
				if (opcode)
					*opcode = ws->msgop;
				if (len)
					*len = ws->msglen;
				if (buf) {
					*buf = (char *)ws->msg;
					if (!*buf)
						*buf = calloc(1, 1);
				} else {
					free(ws->msg);
				}
				ws->msg = NULL;
				ws->msglen = 0;
				ws->msgop = 0;
				return BVT_WS_MSG;
			}
		}
		if (r < 0) {
			fprintf(stderr, "bvtest: websocket protocol error\n");
			return BVT_WS_ERROR;
		}
		r = fill(ws, deadline);
		if (r == 0)
			return BVT_WS_TIMEOUT;
		if (r < 0)
			return BVT_WS_ERROR;
	}
}
