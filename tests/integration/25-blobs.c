/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 25-blobs: attachments on the relay (docs/protocol.md "Attachments")
 * against a real PostgreSQL and real relays, spoken in plain HTTP over
 * sockets as the document says, not through the relay's code. A 25 MiB
 * round trip (timed, with a 1 KB send timed while the upload runs); every
 * 404 (wrong or the other capability, a second PUT); digest mismatch and
 * wrong lengths leave nothing; the quota, refused and freed again; an
 * upload cut off halfway, and one whose relay is killed mid-body, leave
 * nothing after the sweep; blobs_journaled from a person and from the
 * archive; a download from a second relay; and no capability in the relay
 * logs or a pg_dump.
 */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <cmocka.h>
#include <sodium.h>

#include "bvtest.h"

#define MIB	 (1024 * 1024)
#define BIG	 (25 * MIB)
#define NIL_UUID "00000000-0000-4000-8000-000000000000"

static struct bvt_env env;
static struct bvt_relay second; /* the same database */
static struct bvt_dev alice, bob;
static struct bvt_conn *ac; /* alice online */

/* Capabilities seen, searched for in logs and the dump at the end. */
#define MAXCAPS 128
static char *caps[MAXCAPS];
static int ncaps;

static const char *const relay_args[] = {"--log_level",
					 "debug",
					 "--blob_sweep_interval_s",
					 "1",
					 "--blob_stall_timeout_s",
					 "3",
					 NULL};

/* ------------------------------------------------------------ HTTP */

static int
tcp_open(int port)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int
send_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* One answer read to EOF (the requests say Connection: close). */
struct answer {
	int status;
	char *head;
	uint8_t *body;
	size_t len;
};

static void
answer_free(struct answer *a)
{
	free(a->head);
	free(a->body);
	memset(a, 0, sizeof(*a));
}

static int
read_answer(int fd, int timeout_ms, struct answer *out)
{
	size_t cap = 65536, len = 0;
	uint8_t *buf = malloc(cap);
	int64_t deadline = bvt_now_ms() + timeout_ms;
	char *end;

	memset(out, 0, sizeof(*out));
	assert_non_null(buf);
	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		int left = (int)(deadline - bvt_now_ms());
		ssize_t n;

		if (left <= 0 || poll(&p, 1, left) <= 0)
			break;
		if (len + 65536 > cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		n = recv(fd, buf + len, cap - len - 1, 0);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	end = len ? strstr((char *)buf, "\r\n\r\n") : NULL;
	if (!end || sscanf((char *)buf, "HTTP/1.%*d %d", &out->status) != 1) {
		free(buf);
		return -1;
	}
	out->head = strndup((char *)buf, (size_t)(end - (char *)buf) + 4);
	out->len = len - (size_t)(end + 4 - (char *)buf);
	out->body = malloc(out->len + 1);
	memcpy(out->body, end + 4, out->len);
	out->body[out->len] = '\0';
	free(buf);
	return out->status;
}

/*
 * method /v1/blobs/id with "Authorization: Bearer cap" (none when NULL),
 * extra header lines, and send of the len bytes of body (all of them
 * when send < 0). keep_open: return the socket instead of reading an
 * answer (-1 on error). Otherwise returns the status (-1: none came).
 */
static int
blob_http(int port, const char *method, const char *id, const char *cap,
	  const char *extra, const void *body, size_t len, long long send,
	  int keep_open, struct answer *out)
{
	char head[1024];
	int fd, st;

	snprintf(head, sizeof(head),
		 "%s /v1/blobs/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		 "Connection: close\r\n%s%s%s%s\r\n",
		 method, id, cap ? "Authorization: Bearer " : "",
		 cap ? cap : "", cap ? "\r\n" : "", extra ? extra : "");
	fd = tcp_open(port);
	if (fd < 0)
		return -1;
	if (send_all(fd, head, strlen(head)) < 0) {
		close(fd);
		return -1;
	}
	if (body && send_all(fd, body, send < 0 ? len : (size_t)send) < 0 &&
	    !out) {
		close(fd);
		return -1;
	}
	if (keep_open)
		return fd;
	if (out) {
		st = read_answer(fd, bvt_ms(BVT_TIMEOUT), out);
	} else {
		struct answer a;

		st = read_answer(fd, bvt_ms(BVT_TIMEOUT), &a);
		answer_free(&a);
	}
	close(fd);
	return st;
}

static int
put(int port, const char *id, const char *cap, const void *body, size_t len,
    struct answer *out)
{
	char cl[64];

	snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", len);
	return blob_http(port, "PUT", id, cap, cl, body, len, -1, 0, out);
}

static int
get(int port, const char *id, const char *cap, struct answer *out)
{
	return blob_http(port, "GET", id, cap, NULL, NULL, 0, -1, 0, out);
}

/* The error code of a JSON error answer, "" if none. */
static const char *
code_of(const struct answer *a)
{
	static char code[32];
	json_t *j = json_loads((const char *)a->body, 0, NULL);
	const char *c = json_string_value(
		json_object_get(json_object_get(j, "error"), "code"));

	snprintf(code, sizeof(code), "%s", c ? c : "");
	json_decref(j);
	return code;
}

/* ------------------------------------------------------------ blobs */

struct blob {
	char id[37], up[64], down[64];
};

static void
keep_cap(const char *s)
{
	assert_true(ncaps < MAXCAPS);
	caps[ncaps++] = strdup(s);
}

static void
sha_hex(const void *buf, size_t len, char out[65])
{
	uint8_t h[32];

	crypto_hash_sha256(h, buf, len);
	sodium_bin2hex(out, 65, h, 32);
}

static json_t *
create_req(struct bvt_conn *c, const char *conversation, long long size,
	   const char *hex)
{
	return bvt_request(c, json_pack("{s:s, s:s, s:I, s:s}", "op",
					"blob_create", "conversation",
					conversation, "size", (json_int_t)size,
					"sha256", hex));
}

/* blob_create for buf (its real digest unless hex is given). */
static void
create(struct bvt_conn *c, const void *buf, size_t len, const char *hex,
       struct blob *b)
{
	char h[65];
	json_t *r, *ok;

	if (!hex) {
		sha_hex(buf, len, h);
		hex = h;
	}
	r = create_req(c, c->conversation, (long long)len, hex);
	bvt_assert_ok(r);
	ok = bvt_ok(r);
	snprintf(b->id, sizeof(b->id), "%s",
		 json_string_value(json_object_get(ok, "blob")));
	snprintf(b->up, sizeof(b->up), "%s",
		 json_string_value(json_object_get(ok, "upload")));
	snprintf(b->down, sizeof(b->down), "%s",
		 json_string_value(json_object_get(ok, "download")));
	assert_int_equal(strlen(b->up), 43);
	assert_int_equal(strlen(b->down), 43);
	assert_true(json_integer_value(json_object_get(ok, "expires")) >
		    (json_int_t)time(NULL) * 1000);
	keep_cap(b->up);
	keep_cap(b->down);
	json_decref(r);
}

static long long
rows(const char *sql, const char *id)
{
	const char *v[1] = {id};

	return bvt_sql_int(env.db, sql, id ? 1 : 0, id ? v : NULL);
}

static long long
blob_rows(const char *id)
{
	return rows("SELECT (SELECT count(*) FROM blobs WHERE id = $1::uuid) "
		    "+ (SELECT count(*) FROM blob_chunks WHERE blob_id = "
		    "$1::uuid)",
		    id);
}

/* Waits until the blob and its chunks are gone (the sweep). */
static void
wait_gone(const char *id, int ms)
{
	int64_t deadline = bvt_now_ms() + bvt_ms(ms);

	while (blob_rows(id) != 0 && bvt_now_ms() < deadline)
		bvt_sleep_ms(100);
	if (blob_rows(id) != 0)
		fail_msg("blob %s still has %lld rows", id, blob_rows(id));
}

static uint8_t *
random_bytes(size_t len)
{
	uint8_t *b = malloc(len);

	assert_non_null(b);
	randombytes_buf(b, len);
	return b;
}

/* ------------------------------------------------------------ tests */

/* The 25 MiB upload in a thread, while the test sends messages. */
struct upload_job {
	int port;
	struct blob *b;
	const uint8_t *buf;
	size_t len;
	int status;
	int64_t ms;
};

static void *
upload_thread(void *arg)
{
	struct upload_job *j = arg;
	char cl[64];
	int64_t t0 = bvt_now_ms();

	snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", j->len);
	j->status = blob_http(j->port, "PUT", j->b->id, j->b->up, cl, j->buf,
			      j->len, -1, 0, NULL);
	j->ms = bvt_now_ms() - t0;
	return NULL;
}

/* One 1 KB send alice → bob; its round trip in ms. */
static int64_t
timed_send(int i)
{
	uint8_t body[1024];
	char mid[32];
	const struct bvt_dev *to[] = {&bob};
	json_t *envs = json_array(), *r;
	int64_t t0;

	randombytes_buf(body, sizeof(body));
	snprintf(mid, sizeof(mid), "m-%d-%ld", i, (long)time(NULL));
	json_decref(envs);
	envs = json_array();
	json_array_append_new(envs, bvt_envelope(to[0], 1, body, sizeof(body)));
	t0 = bvt_now_ms();
	r = bvt_send(ac, mid, envs);
	bvt_assert_ok(r);
	json_decref(r);
	return bvt_now_ms() - t0;
}

static void
t_round_trip(void **state)
{
	uint8_t *buf = random_bytes(BIG);
	struct upload_job j;
	struct answer a;
	struct blob b;
	pthread_t th;
	int64_t idle_max = 0, idle_sum = 0, busy_max = 0, busy_sum = 0, t0,
		dl_ms;
	int n_busy = 0, i;

	(void)state;
	/* Sends with nothing else going on. */
	for (i = 0; i < 10; i++) {
		int64_t t = timed_send(i);

		if (i > 0)
			idle_sum += t; /* the first one warms caches up */
		if (t > idle_max)
			idle_max = t;
	}
	create(ac, buf, BIG, NULL, &b);
	j.port = env.relay.port;
	j.b = &b;
	j.buf = buf;
	j.len = BIG;
	j.status = -1;
	assert_int_equal(pthread_create(&th, NULL, upload_thread, &j), 0);
	/* Sends while the upload runs. */
	bvt_sleep_ms(50);
	for (i = 100; i < 1000; i++) {
		int64_t t = timed_send(i);

		busy_sum += t;
		n_busy++;
		if (t > busy_max)
			busy_max = t;
		if (rows("SELECT count(*) FROM blobs WHERE state = 'complete' "
			 "AND id = $1::uuid",
			 b.id) == 1)
			break;
	}
	pthread_join(th, NULL);
	assert_int_equal(j.status, 201);
	assert_int_equal(rows("SELECT count(*) FROM blob_chunks WHERE blob_id "
			      "= $1::uuid",
			      b.id),
			 (BIG + 262143) / 262144);

	t0 = bvt_now_ms();
	assert_int_equal(get(env.relay.port, b.id, b.down, &a), 200);
	dl_ms = bvt_now_ms() - t0;
	assert_int_equal(a.len, BIG);
	assert_memory_equal(a.body, buf, BIG);
	for (i = 0; a.head[i]; i++)
		a.head[i] = (char)tolower((unsigned char)a.head[i]);
	assert_non_null(strstr(a.head, "cache-control: no-store"));
	assert_non_null(
		strstr(a.head, "content-type: application/octet-stream"));
	answer_free(&a);
	printf("# 25 MiB: upload %lld ms (%.1f MB/s), download %lld ms "
	       "(%.1f MB/s)\n",
	       (long long)j.ms, BIG / 1e6 / (j.ms ? j.ms : 1) * 1000,
	       (long long)dl_ms, BIG / 1e6 / (dl_ms ? dl_ms : 1) * 1000);
	printf("# 1 KB send: idle mean %.1f ms, max %lld ms; during the "
	       "upload %d sends, mean %.1f ms, max %lld ms\n",
	       idle_sum / 9.0, (long long)idle_max, n_busy,
	       n_busy ? (double)busy_sum / n_busy : 0.0, (long long)busy_max);
	/* Gone again, so that the final pg_dump stays small. */
	assert_int_equal(rows("WITH d AS (DELETE FROM blobs WHERE id = "
			      "$1::uuid RETURNING 1) SELECT count(*) - 1 "
			      "FROM d",
			      b.id),
			 0);
	assert_int_equal(blob_rows(b.id), 0);
	free(buf);
}

static void
t_capabilities(void **state)
{
	uint8_t body[1000];
	struct answer a;
	struct blob b, other;
	char wrong[44];
	uint8_t r[32];
	char *s;

	(void)state;
	randombytes_buf(body, sizeof(body));
	create(ac, body, sizeof(body), NULL, &b);
	/* Before the upload nothing can be fetched. */
	assert_int_equal(get(env.relay.port, b.id, b.down, NULL), 404);
	/* The download capability does not upload. */
	assert_int_equal(
		put(env.relay.port, b.id, b.down, body, sizeof(body), &a), 404);
	assert_string_equal(code_of(&a), "BV_ENOBLOB");
	answer_free(&a);
	assert_int_equal(
		put(env.relay.port, b.id, b.up, body, sizeof(body), &a), 201);
	assert_non_null(strstr((char *)a.body, b.id));
	answer_free(&a);
	/* A second PUT: the capability is used up. */
	assert_int_equal(
		put(env.relay.port, b.id, b.up, body, sizeof(body), &a), 404);
	assert_string_equal(code_of(&a), "BV_ENOBLOB");
	answer_free(&a);
	/* Wrong, the upload one, another blob's, none, malformed. */
	randombytes_buf(r, sizeof(r));
	s = bvt_b64(r, sizeof(r));
	for (size_t i = 0; i < 43; i++)
		wrong[i] = s[i] == '+' ? '-' : s[i] == '/' ? '_' : s[i];
	wrong[43] = '\0';
	free(s);
	assert_int_equal(get(env.relay.port, b.id, wrong, &a), 404);
	assert_string_equal(code_of(&a), "BV_ENOBLOB");
	answer_free(&a);
	assert_int_equal(get(env.relay.port, b.id, b.up, NULL), 404);
	create(ac, body, sizeof(body), NULL, &other);
	assert_int_equal(get(env.relay.port, b.id, other.down, NULL), 404);
	assert_int_equal(get(env.relay.port, b.id, NULL, NULL), 404);
	assert_int_equal(get(env.relay.port, b.id, "short", NULL), 404);
	assert_int_equal(get(env.relay.port, NIL_UUID, b.down, NULL), 404);
	assert_int_equal(get(env.relay.port, "not-a-uuid", b.down, NULL), 404);
	/* The right one, again and again. */
	assert_int_equal(get(env.relay.port, b.id, b.down, &a), 200);
	assert_int_equal(a.len, sizeof(body));
	assert_memory_equal(a.body, body, sizeof(body));
	answer_free(&a);
	/* From a second relay of the same database. */
	assert_int_equal(get(second.port, b.id, b.down, &a), 200);
	assert_int_equal(a.len, sizeof(body));
	assert_memory_equal(a.body, body, sizeof(body));
	answer_free(&a);
}

static void
t_create_refused(void **state)
{
	char h[65];

	(void)state;
	memset(h, 'a', 64);
	h[64] = '\0';
	BVT_ERR(create_req(ac, ac->conversation, 0, h), "BV_EBLOB_SIZE");
	BVT_ERR(create_req(ac, ac->conversation, -5, h), "BV_EBLOB_SIZE");
	BVT_ERR(create_req(ac, ac->conversation, BIG + 1, h), "BV_EBLOB_SIZE");
	BVT_ERR(create_req(ac, NIL_UUID, 10, h), "BV_ENOACCOUNT");
	BVT_ERR(create_req(ac, ac->conversation, 10, "ABC"), "BV_EFIELD");
	h[0] = 'A';
	BVT_ERR(create_req(ac, ac->conversation, 10, h), "BV_EFIELD");
}

static void
t_bad_uploads(void **state)
{
	uint8_t *body = random_bytes(600000);
	struct answer a;
	struct blob b;
	char hex[65], cl[64];

	(void)state;
	/* Digest mismatch: 422, nothing left (three chunks were written). */
	memset(hex, '0', 64);
	hex[64] = '\0';
	create(ac, body, 600000, hex, &b);
	assert_int_equal(put(env.relay.port, b.id, b.up, body, 600000, &a),
			 422);
	assert_string_equal(code_of(&a), "BV_EBLOB");
	answer_free(&a);
	assert_int_equal(blob_rows(b.id), 0);

	/* Content-Length larger than announced: 413, nothing left. */
	create(ac, body, 1000, NULL, &b);
	assert_int_equal(put(env.relay.port, b.id, b.up, body, 2000, &a), 413);
	assert_string_equal(code_of(&a), "BV_EBLOB_SIZE");
	answer_free(&a);
	assert_int_equal(blob_rows(b.id), 0);

	/* Larger than max_blob_bytes: answered from the head alone. */
	create(ac, body, 1000, NULL, &b);
	snprintf(cl, sizeof(cl), "Content-Length: %d\r\n", BIG + 1);
	assert_int_equal(blob_http(env.relay.port, "PUT", b.id, b.up, cl, NULL,
				   0, -1, 0, &a),
			 413);
	assert_string_equal(code_of(&a), "BV_EBLOB_SIZE");
	answer_free(&a);
	assert_int_equal(blob_rows(b.id), 0);

	/* An empty body: 413 at once, nothing left. */
	create(ac, body, 1000, NULL, &b);
	assert_int_equal(put(env.relay.port, b.id, b.up, body, 0, &a), 413);
	answer_free(&a);
	assert_int_equal(blob_rows(b.id), 0);

	/* A chunked body: 411, nothing left. */
	create(ac, body, 1000, NULL, &b);
	assert_int_equal(blob_http(env.relay.port, "PUT", b.id, b.up,
				   "Transfer-Encoding: chunked\r\n",
				   "0\r\n\r\n", 5, -1, 0, &a),
			 411);
	answer_free(&a);
	assert_int_equal(blob_rows(b.id), 0);

	/* Cut off halfway: the relay deletes what it wrote at once. */
	create(ac, body, 600000, NULL, &b);
	snprintf(cl, sizeof(cl), "Content-Length: %d\r\n", 600000);
	{
		int fd = blob_http(env.relay.port, "PUT", b.id, b.up, cl, body,
				   600000, 300000, 1, NULL);

		assert_true(fd >= 0);
		/* Wait until a chunk is in, so the cut is mid-upload. */
		for (int i = 0; i < 100 && rows("SELECT count(*) FROM "
						"blob_chunks WHERE blob_id = "
						"$1::uuid",
						b.id) == 0;
		     i++)
			bvt_sleep_ms(50);
		assert_int_equal(rows("SELECT count(*) FROM blob_chunks WHERE "
				      "blob_id = $1::uuid",
				      b.id),
				 1);
		close(fd);
	}
	wait_gone(b.id, 5000);
	free(body);
}

static void
t_quota(void **state)
{
	const char *const set[] = {"tenant-blobs",  "--tenant", env.tenant.id,
				   "--quota-bytes", "1000000",	NULL};
	const char *const reset[] = {"tenant-blobs", "--tenant",
				     env.tenant.id,  "--quota-bytes",
				     "21474836480",  NULL};
	uint8_t *body = random_bytes(600000);
	char hex[65], used[32];
	struct answer a;
	struct blob b;
	long long before;

	(void)state;
	/* What earlier tests stored counts: the quota is set above it. */
	before = rows("SELECT coalesce(sum(size), 0) FROM blobs", NULL);
	snprintf(used, sizeof(used), "%lld", before + 1000000);
	{
		const char *const s2[] = {"tenant-blobs", "--tenant",
					  env.tenant.id,  "--quota-bytes",
					  used,		  NULL};

		(void)set;
		assert_int_equal(bvt_admin(env.db, NULL, 0, s2), 0);
	}
	memset(hex, '0', 64);
	hex[64] = '\0';
	create(ac, body, 600000, hex, &b); /* a wrong digest: it fails */
	BVT_ERR(create_req(ac, ac->conversation, 600000, hex), "BV_EQUOTA");
	assert_int_equal(put(env.relay.port, b.id, b.up, body, 600000, &a),
			 422);
	answer_free(&a);
	/* The failed upload gave its quota back. */
	create(ac, body, 600000, NULL, &b);
	assert_int_equal(put(env.relay.port, b.id, b.up, body, 600000, &a),
			 201);
	answer_free(&a);
	BVT_ERR(create_req(ac, ac->conversation, 600000, hex), "BV_EQUOTA");
	assert_int_equal(bvt_admin(env.db, NULL, 0, reset), 0);
	free(body);
}

static void
t_relay_killed(void **state)
{
	uint8_t *body = random_bytes(1000000);
	struct bvt_relay doomed;
	struct blob b;
	char cl[64];
	int fd, i;

	(void)state;
	assert_int_equal(bvt_relay_start(&doomed, env.db, relay_args), 0);
	create(ac, body, 1000000, NULL, &b);
	snprintf(cl, sizeof(cl), "Content-Length: %d\r\n", 1000000);
	fd = blob_http(doomed.port, "PUT", b.id, b.up, cl, body, 1000000,
		       600000, 1, NULL);
	assert_true(fd >= 0);
	for (i = 0; i < 100 && rows("SELECT count(*) FROM blob_chunks WHERE "
				    "blob_id = $1::uuid",
				    b.id) < 2;
	     i++)
		bvt_sleep_ms(50);
	assert_int_equal(rows("SELECT count(*) FROM blob_chunks WHERE blob_id "
			      "= $1::uuid",
			      b.id),
			 2);
	bvt_relay_kill(&doomed);
	close(fd);
	/* Still there right after: nobody has deleted it yet. */
	assert_true(blob_rows(b.id) > 0);
	/* Restarted; its heartbeat has stopped, so a sweep deletes it
	 * (stall timeout 3 s, sweeps every second). */
	assert_int_equal(bvt_relay_start(&doomed, env.db, relay_args), 0);
	wait_gone(b.id, 15000);
	bvt_relay_term(&doomed, bvt_ms(10000));
	free(body);
}

static void
t_journaled(void **state)
{
	struct bvt_dev arch;
	struct bvt_conn *xc;
	uint8_t body[100];
	struct blob b;
	char req[128];
	const char *v[2];

	(void)state;
	randombytes_buf(body, sizeof(body));
	create(ac, body, sizeof(body), NULL, &b);
	assert_int_equal(
		put(env.relay.port, b.id, b.up, body, sizeof(body), NULL), 201);
	/* A person (alice herself) marks it: ignored. */
	snprintf(req, sizeof(req), "%s", b.id);
	BVT_OK(bvt_request(ac,
			   json_pack("{s:s, s:[s, s]}", "op", "blobs_journaled",
				     "blobs", b.id, NIL_UUID)));
	assert_int_equal(rows("SELECT count(*) FROM blobs WHERE id = $1::uuid "
			      "AND journaled_at IS NULL AND delete_after IS "
			      "NULL",
			      b.id),
			 1);
	BVT_ERR(bvt_request(ac, json_pack("{s:s, s:[]}", "op",
					  "blobs_journaled", "blobs")),
		"BV_EFIELD");
	/* The archive: its account is the tenant's archive. */
	assert_int_equal(bvt_new_account(env.relay.port, &env.tenant, &arch),
			 0);
	v[0] = arch.account;
	v[1] = env.tenant.id;
	assert_int_equal(bvt_sql_int(env.db,
				     "WITH d AS (DELETE FROM case_roster WHERE "
				     "account_id = $1::uuid) SELECT 0",
				     1, v),
			 0);
	assert_int_equal(bvt_sql_int(env.db,
				     "SELECT 0 FROM bv_archive_set($2::uuid, "
				     "$1::uuid)",
				     2, v),
			 0);
	xc = bvt_online(env.relay.port, &arch);
	assert_non_null(xc);
	BVT_OK(bvt_request(xc, json_pack("{s:s, s:[s]}", "op",
					 "blobs_journaled", "blobs", b.id)));
	assert_int_equal(rows("SELECT count(*) FROM blobs WHERE id = $1::uuid "
			      "AND delete_after BETWEEN now() + interval "
			      "'29 days' AND now() + interval '31 days'",
			      b.id),
			 1);
	/* Still served until its retention ends; then the sweep. */
	assert_int_equal(get(env.relay.port, b.id, b.down, NULL), 200);
	assert_int_equal(rows("UPDATE blobs SET delete_after = now() - "
			      "interval '1 second' WHERE id = $1::uuid "
			      "RETURNING 0",
			      b.id),
			 0);
	wait_gone(b.id, 10000);
	bvt_conn_free(xc);
}

static void
t_metrics(void **state)
{
	char *m = NULL;

	(void)state;
	assert_int_equal(bvt_http_get(env.relay.port, "/metrics",
				      bvt_ms(BVT_TIMEOUT), &m),
			 200);
	assert_non_null(strstr(m, "\nbvchat_blobs "));
	assert_non_null(strstr(m, "\nbvchat_blob_bytes "));
	assert_non_null(strstr(m, "\nbvchat_blobs_unjournaled "));
	assert_non_null(strstr(m, "\nbvchat_blob_unjournaled_oldest_seconds "));
	assert_non_null(strstr(m, "bvchat_requests_total{op=\"blob_create\"}"));
	free(m);
}

/* Last: no capability anywhere it should not be. */
static void
t_canary(void **state)
{
	size_t dlen = 0;
	char *dump = bvt_pg_dump(env.db, &dlen);
	int i;

	(void)state;
	assert_non_null(dump);
	assert_true(ncaps > 10);
	for (i = 0; i < ncaps; i++) {
		if (bvt_mem_contains(dump, dlen, caps[i], strlen(caps[i])))
			fail_msg("capability %d in the dump", i);
		if (bvt_relay_log_contains(&env.relay, caps[i],
					   strlen(caps[i])) ||
		    bvt_relay_log_contains(&second, caps[i], strlen(caps[i])))
			fail_msg("capability %d in a relay log", i);
	}
	/* The search finds what is there: the blob ids are logged. */
	assert_true(bvt_relay_log_contains(&env.relay, "blob", 4));
	free(dump);
}

static int
setup(void **state)
{
	(void)state;
	if (bvt_env_init(&env, relay_args) < 0 ||
	    bvt_relay_start(&second, env.db, relay_args) < 0 ||
	    bvt_new_account(env.relay.port, &env.tenant, &alice) < 0 ||
	    bvt_new_account(env.relay.port, &env.tenant, &bob) < 0)
		return -1;
	ac = bvt_online(env.relay.port, &alice);
	return ac ? 0 : -1;
}

static int
teardown(void **state)
{
	(void)state;
	bvt_conn_free(ac);
	bvt_relay_term(&second, bvt_ms(30000));
	bvt_env_cleanup(&env);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_round_trip),
		cmocka_unit_test(t_capabilities),
		cmocka_unit_test(t_create_refused),
		cmocka_unit_test(t_bad_uploads),
		cmocka_unit_test(t_quota),
		cmocka_unit_test(t_relay_killed),
		cmocka_unit_test(t_journaled),
		cmocka_unit_test(t_metrics),
		cmocka_unit_test(t_canary),
	};

	bvt_open_case = 1; /* not about cases: alice and bob may talk */
	if (sodium_init() < 0)
		return 1;
	return bvt_done(cmocka_run_group_tests_name("25-blobs", tests, setup,
						    teardown));
}
