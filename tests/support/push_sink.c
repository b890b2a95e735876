/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * push_sink.c: the local push service of the tests (push_sink.h): an
 * HTTP/1.1 server on 127.0.0.1 in libmicrohttpd's own thread that checks
 * each POST /push/<id> as RFC 8030 and RFC 8292 ask (VAPID, Content-Encoding,
 * TTL, size), keeps what it accepts and answers 201, or what the mode says.
 * Bodies are bounded (4096 bytes, RFC 8030 section 7.2); a longer one gets
 * 413. Everything it records is behind one mutex.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#include "push_sink.h"

/* RFC 8030 section 7.2: a push service must take 4096 bytes. */
#define SINK_BODY_MAX 4096
/* Kept pushes and answered statuses; tests send a handful. */
#define SINK_MSGS_MAX	256
#define SINK_STATUS_MAX 8

struct sink_status {
	unsigned status;
	size_t n;
};

struct push_sink {
	struct MHD_Daemon *d;
	char origin[64];
	pthread_mutex_t mu;
	unsigned mode;
	long retry_after;
	struct push_msg msgs[SINK_MSGS_MAX];
	size_t nmsgs;
	struct sink_status answered[SINK_STATUS_MAX];
	size_t refused;
	char last_refusal[256];
};

/* One request's body as it arrives. */
struct req {
	uint8_t buf[SINK_BODY_MAX];
	size_t len;
	int too_long;
};

static enum MHD_Result
reply(struct MHD_Connection *c, unsigned status, long retry_after,
      const char *location)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
		0, NULL, MHD_RESPMEM_PERSISTENT);
	enum MHD_Result rc;
	char ra[32];

	if (!r)
		return MHD_NO;
	if (retry_after > 0) {
		snprintf(ra, sizeof(ra), "%ld", retry_after);
		MHD_add_response_header(r, "Retry-After", ra);
	}
	if (location)
		MHD_add_response_header(r, "Location", location);
	rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result
refuse(struct push_sink *s, struct MHD_Connection *c, unsigned status,
       const char *why)
{
	pthread_mutex_lock(&s->mu);
	s->refused++;
	snprintf(s->last_refusal, sizeof(s->last_refusal), "%u: %s", status,
		 why);
	pthread_mutex_unlock(&s->mu);
	return reply(c, status, 0, NULL);
}

static int
id_ok(const char *id)
{
	size_t n = 0;

	for (; id[n]; n++)
		if (!((id[n] >= 'a' && id[n] <= 'z') ||
		      (id[n] >= 'A' && id[n] <= 'Z') ||
		      (id[n] >= '0' && id[n] <= '9') || id[n] == '-' ||
		      id[n] == '_') ||
		    n >= 64)
			return 0;
	return n > 0;
}

static enum MHD_Result
handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
       const char *version, const char *upload, size_t *upload_size,
       void **con_cls)
{
	struct push_sink *s = cls;
	struct req *q = *con_cls;
	const char *enc, *ttl, *auth, *urg, *id;
	char why[200], k[100], *end, location[96];
	struct push_msg *m;
	unsigned status;
	long ttl_v, retry_after;
	size_t i;

	(void)version;
	if (!q) {
		q = calloc(1, sizeof(*q));
		if (!q)
			return MHD_NO;
		*con_cls = q;
		return MHD_YES;
	}
	if (*upload_size) {
		if (*upload_size > SINK_BODY_MAX - q->len)
			q->too_long = 1;
		else
			memcpy(q->buf + q->len, upload, *upload_size);
		if (!q->too_long)
			q->len += *upload_size;
		*upload_size = 0;
		return MHD_YES;
	}

	if (strcmp(method, "POST") != 0)
		return refuse(s, c, 405, "not POST");
	if (strncmp(url, "/push/", 6) != 0 || !id_ok(url + 6))
		return refuse(s, c, 404, "no such subscription path");
	id = url + 6;
	if (q->too_long)
		return refuse(s, c, 413, "body over 4096 bytes");
	if (q->len == 0)
		return refuse(s, c, 400, "empty body");
	enc = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
					  "Content-Encoding");
	if (!enc || strcmp(enc, "aes128gcm") != 0)
		return refuse(s, c, 415, "Content-Encoding is not aes128gcm");
	ttl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "TTL");
	if (!ttl || !*ttl || *ttl < '0' || *ttl > '9')
		return refuse(s, c, 400, "no TTL");
	ttl_v = strtol(ttl, &end, 10);
	if (*end || ttl_v < 0)
		return refuse(s, c, 400, "TTL not a number");
	auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	if (push_vapid_verify(auth, s->origin, (int64_t)time(NULL), k, why,
			      sizeof(why)) != 0)
		return refuse(s, c, 401, why);
	urg = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Urgency");

	pthread_mutex_lock(&s->mu);
	status = s->mode;
	retry_after = s->retry_after;
	if (status != 201) {
		for (i = 0; i < SINK_STATUS_MAX; i++) {
			if (s->answered[i].status == status ||
			    s->answered[i].status == 0) {
				s->answered[i].status = status;
				s->answered[i].n++;
				break;
			}
		}
		pthread_mutex_unlock(&s->mu);
		return reply(c, status, retry_after, NULL);
	}
	if (s->nmsgs == SINK_MSGS_MAX) {
		pthread_mutex_unlock(&s->mu);
		return refuse(s, c, 507, "sink full");
	}
	m = &s->msgs[s->nmsgs];
	memset(m, 0, sizeof(*m));
	m->body = malloc(q->len);
	if (!m->body) {
		pthread_mutex_unlock(&s->mu);
		return MHD_NO;
	}
	memcpy(m->body, q->buf, q->len);
	m->len = q->len;
	snprintf(m->id, sizeof(m->id), "%s", id);
	m->ttl = ttl_v;
	snprintf(m->urgency, sizeof(m->urgency), "%s", urg ? urg : "");
	snprintf(m->k, sizeof(m->k), "%s", k);
	snprintf(m->authorization, sizeof(m->authorization), "%s", auth);
	m->status = 201;
	snprintf(location, sizeof(location), "/message/%zu", s->nmsgs);
	s->nmsgs++;
	pthread_mutex_unlock(&s->mu);
	return reply(c, 201, 0, location);
}

static void
done(void *cls, struct MHD_Connection *c, void **con_cls,
     enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	free(*con_cls);
	*con_cls = NULL;
}

struct push_sink *
push_sink_start(void)
{
	struct push_sink *s = calloc(1, sizeof(*s));
	struct sockaddr_in sin;
	const union MHD_DaemonInfo *info;

	if (!s)
		return NULL;
	pthread_mutex_init(&s->mu, NULL);
	s->mode = 201;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = 0;
	s->d = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL,
		NULL, handle, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
		MHD_OPTION_NOTIFY_COMPLETED, done, s,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_END);
	if (!s->d) {
		push_sink_stop(s);
		return NULL;
	}
	info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	if (!info || !info->port) {
		push_sink_stop(s);
		return NULL;
	}
	snprintf(s->origin, sizeof(s->origin), "http://127.0.0.1:%u",
		 (unsigned)info->port);
	return s;
}

void
push_sink_stop(struct push_sink *s)
{
	size_t i;

	if (!s)
		return;
	if (s->d)
		MHD_stop_daemon(s->d);
	for (i = 0; i < s->nmsgs; i++)
		free(s->msgs[i].body);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

const char *
push_sink_origin(const struct push_sink *s)
{
	return s->origin;
}

void
push_sink_endpoint(const struct push_sink *s, const char *id, char *out,
		   size_t cap)
{
	snprintf(out, cap, "%s/push/%s", s->origin, id);
}

void
push_sink_set_mode(struct push_sink *s, unsigned status, long retry_after_s)
{
	pthread_mutex_lock(&s->mu);
	s->mode = status;
	s->retry_after = retry_after_s;
	pthread_mutex_unlock(&s->mu);
}

size_t
push_sink_count(const struct push_sink *s)
{
	struct push_sink *m = (struct push_sink *)s;
	size_t n;

	pthread_mutex_lock(&m->mu);
	n = m->nmsgs;
	pthread_mutex_unlock(&m->mu);
	return n;
}

size_t
push_sink_answered(const struct push_sink *s, unsigned status)
{
	struct push_sink *m = (struct push_sink *)s;
	size_t i, n = 0;

	pthread_mutex_lock(&m->mu);
	for (i = 0; i < SINK_STATUS_MAX; i++)
		if (m->answered[i].status == status)
			n = m->answered[i].n;
	pthread_mutex_unlock(&m->mu);
	return n;
}

size_t
push_sink_refused(const struct push_sink *s)
{
	struct push_sink *m = (struct push_sink *)s;
	size_t n;

	pthread_mutex_lock(&m->mu);
	n = m->refused;
	pthread_mutex_unlock(&m->mu);
	return n;
}

void
push_sink_last_refusal(const struct push_sink *s, char *out, size_t cap)
{
	struct push_sink *m = (struct push_sink *)s;

	pthread_mutex_lock(&m->mu);
	snprintf(out, cap, "%s", m->last_refusal);
	pthread_mutex_unlock(&m->mu);
}

int
push_sink_get(const struct push_sink *s, size_t i, struct push_msg *out)
{
	struct push_sink *m = (struct push_sink *)s;
	int rc = -1;

	pthread_mutex_lock(&m->mu);
	if (i < m->nmsgs) {
		*out = m->msgs[i];
		out->body = malloc(m->msgs[i].len);
		if (out->body) {
			memcpy(out->body, m->msgs[i].body, m->msgs[i].len);
			rc = 0;
		}
	}
	pthread_mutex_unlock(&m->mu);
	return rc;
}

int
push_sink_wait(const struct push_sink *s, size_t n, int timeout_ms)
{
	struct timespec ts = {0, 10 * 1000 * 1000};
	int waited;

	for (waited = 0; waited <= timeout_ms; waited += 10) {
		if (push_sink_count(s) >= n)
			return 0;
		nanosleep(&ts, NULL);
	}
	return -1;
}
