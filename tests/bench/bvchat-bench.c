/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * bvchat-bench.c: load generator for bvchat-relay. Enrolls N sender/receiver
 * device pairs (fresh accounts, tokens minted from the tenant key file),
 * sends opaque envelopes at a fixed rate or with K sends in flight, and
 * reports acknowledged deliveries/s, latency from send to the receiver's
 * acknowledgement, and the relay's CPU and RSS read from /proc. It can also
 * hold many idle authenticated connections. One thread: lws client
 * connections on a libuv loop. It measures; it asserts nothing.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <libwebsockets.h>
#include <sodium.h>
#include <uv.h>

#include "bench_util.h"
#include "bv_error.h"
#include "bv_proto.h"
#include "bv_token.h"
#include "bv_util.h"

#define NS_PER_MS     1000000ull
#define NS_PER_S      1000000000ull
#define HDR_BYTES     16 /* send time (ns) and sequence, little-endian */
#define HDR_B64_BYTES 18 /* 18 bytes = 24 base64 characters, no padding */
#define HDR_B64_CHARS 24
#define SEND_RING     1024  /* send times by sequence, > any in-flight cap */
#define BACKLOG_CAP   65536 /* due sends waiting for an in-flight slot */
#define ENROLL_ID     1	    /* request id of enroll; sends use 2 + seq */
#define DRAIN_NS      (10 * NS_PER_S)
#define SETTLE_NS     (1 * NS_PER_S)
#define MAX_ERRS      48
#define TOKEN_TTL_S   600

enum role { ROLE_IDLE, ROLE_RECEIVER, ROLE_SENDER };

enum dev_state {
	DS_NEW,
	DS_CONNECTING, /* TCP + WebSocket handshake, then the challenge */
	DS_ENROLLING,
	DS_READY,
	DS_FAILED, /* never got ready */
	DS_CLOSED, /* was ready, then the connection went away */
};

enum phase {
	PH_SETUP,  /* connecting and enrolling */
	PH_SETTLE, /* everything enrolled; let the relay's RSS settle */
	PH_HOLD,   /* idle connections only: hold them */
	PH_WARMUP, /* sending, not measured */
	PH_MEASURE,
	PH_DRAIN, /* no new sends; wait for the last deliveries */
	PH_DONE,
};

struct opts {
	char host[256];
	int port;
	const char *key;
	const char *database; /* libpq conninfo: the pairs' cases */
	unsigned pairs;
	size_t size;
	double rate;	   /* total sends/s; 0 = as fast as in-flight allows */
	unsigned inflight; /* per sender; 0 = 10 (max) or 64 (rate) */
	double duration;   /* measured seconds */
	unsigned long long messages; /* measured messages; 0 = by duration */
	double warmup;
	unsigned idle;
	double hold;
	unsigned concurrency; /* connections being set up at once */
	double setup_timeout;
	pid_t relay_pid;
	pid_t db_pid;
	int json;
	int progress;
	const char *label;
};

/* A frame waiting to be written. */
struct outmsg {
	struct outmsg *next;
	uint64_t ack_of; /* an ack: the acknowledged message's send time */
	int is_ack;
	size_t len;
	unsigned char buf[]; /* LWS_PRE bytes of headroom, then len bytes */
};

struct dev {
	struct bench *b;
	struct lws *wsi;
	enum role role;
	enum dev_state state;
	unsigned index; /* pair number for senders and receivers */
	struct dev *peer;
	char account[37];
	char conversation[37]; /* sender: the pair's team conversation */
	uint32_t device_id;
	uint32_t regid;
	uint8_t pk[crypto_sign_PUBLICKEYBYTES];
	uint8_t sk[crypto_sign_SECRETKEYBYTES];
	int close_code;

	struct outmsg *out_head, *out_tail;
	char *rx;
	size_t rx_len, rx_cap;

	/* Sender. */
	uint8_t *raw; /* the payload, size bytes */
	char *b64;    /* its base64, prefix patched per send */
	size_t b64_len;
	uint64_t seq; /* next sequence number */
	unsigned inflight;
	uint64_t *sent_at; /* SEND_RING, by seq */
	uint64_t *backlog; /* BACKLOG_CAP due times (rate mode) */
	size_t bl_head, bl_n;
	uint64_t sends_ok;

	/* Receiver. */
	uint8_t *seen; /* one bit per sequence number */
	size_t seen_bytes;
	uint64_t unique;
};

struct counters {
	uint64_t sends, sends_ok, send_errors, delivered, duplicates, acked,
		bad;
};

struct errcount {
	char name[40];
	uint64_t n;
};

struct cpu_snap {
	int ok;
	unsigned long long ticks;
};

struct bench {
	struct opts o;
	uv_loop_t *loop;
	struct lws_context *ctx;
	uv_timer_t tick;
	uv_signal_t sigint;
	char tenant[37];
	uint8_t tsk[crypto_sign_SECRETKEYBYTES];
	size_t b64_len; /* of one body */

	struct dev *devs;
	size_t n_devs, n_opened, n_pending, n_ready, n_failed;
	size_t n_pair_failed, n_closed;
	enum phase phase;
	uint64_t t_setup0, t_ready, t_phase, t_send0, t_meas0, t_meas1;
	uint64_t t_progress, progress_acked, progress_sends_ok;
	uint64_t sched_k; /* sends scheduled so far (rate mode) */
	uint64_t sched_overflow;
	unsigned cap; /* in-flight cap per sender */

	struct counters c, c0, c1; /* now, measure start, measure end */
	struct bench_samples lat, commit;
	struct errcount errs[MAX_ERRS];
	size_t n_errs;

	struct cpu_snap relay0, relay1, db0, db1, busy0, busy1, all0, all1;
	struct rusage self0, self1;
	long rss_base_kb, rss_idle_kb, rss_end_kb, hwm_end_kb;
	int interrupted;
	int fatal;
	char fatal_msg[256];
};

/* ------------------------------------------------------------ utilities */

static void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p) {
		fprintf(stderr, "bvchat-bench: out of memory\n");
		exit(1);
	}
	return p;
}

static void
put_le64(uint8_t *p, uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t
get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void fatal(struct bench *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
fatal(struct bench *b, const char *fmt, ...)
{
	va_list ap;

	if (b->fatal)
		return;
	b->fatal = 1;
	va_start(ap, fmt);
	vsnprintf(b->fatal_msg, sizeof(b->fatal_msg), fmt, ap);
	va_end(ap);
	b->phase = PH_DONE;
	uv_stop(b->loop);
}

static void
count_error(struct bench *b, const char *name)
{
	size_t i;

	for (i = 0; i < b->n_errs; i++)
		if (!strcmp(b->errs[i].name, name)) {
			b->errs[i].n++;
			return;
		}
	if (b->n_errs == MAX_ERRS) {
		/* The last slot takes the rest. */
		i = MAX_ERRS - 1;
		name = "other_errors";
	} else {
		b->n_errs++;
	}
	snprintf(b->errs[i].name, sizeof(b->errs[i].name), "%s", name);
	b->errs[i].n++;
}

/* ------------------------------------------------------------ /proc */

/* CPU of pid alone, or (tree) of pid and its direct children. */
static struct cpu_snap
cpu_of(pid_t pid, int tree)
{
	struct cpu_snap s = {0, 0};

	s.ok = bench_proc_ticks(pid, tree, &s.ticks) == 0;
	return s;
}

/* A "Name:   123 kB" line of /proc/pid/status, in kB; -1 if unknown. */
static long
proc_status_kb(pid_t pid, const char *name)
{
	char path[64], line[256];
	size_t n = strlen(name);
	long v = -1;
	FILE *f;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, name, n) && line[n] == ':') {
			v = strtol(line + n + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/* Busy and total clock ticks of the whole machine (all cores). */
static void
machine_cpu(struct cpu_snap *busy, struct cpu_snap *all)
{
	unsigned long long v[8] = {0};
	FILE *f = fopen("/proc/stat", "r");
	int n = 0;

	busy->ok = all->ok = 0;
	if (!f)
		return;
	n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
		   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	if (n != 8)
		return;
	/* user nice system idle iowait irq softirq steal */
	busy->ticks = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
	all->ticks = busy->ticks + v[3] + v[4];
	busy->ok = all->ok = 1;
}

static double
cpu_seconds(const struct cpu_snap *a, const struct cpu_snap *z)
{
	if (!a->ok || !z->ok)
		return -1;
	return (double)(z->ticks - a->ticks) / (double)sysconf(_SC_CLK_TCK);
}

static double
self_cpu_seconds(const struct rusage *a, const struct rusage *z)
{
	return bench_tv_s(&z->ru_utime) + bench_tv_s(&z->ru_stime) -
	       bench_tv_s(&a->ru_utime) - bench_tv_s(&a->ru_stime);
}

/* ------------------------------------------------------------ output */

static void
dev_kick(struct dev *d)
{
	if (d->wsi)
		lws_callback_on_writable(d->wsi);
}

static struct outmsg *
outmsg_new(size_t len)
{
	struct outmsg *m = malloc(sizeof(*m) + LWS_PRE + len + 1);

	if (!m)
		return NULL;
	m->next = NULL;
	m->ack_of = 0;
	m->is_ack = 0;
	m->len = len;
	return m;
}

static void
dev_queue(struct dev *d, struct outmsg *m)
{
	if (d->out_tail)
		d->out_tail->next = m;
	else
		d->out_head = m;
	d->out_tail = m;
	dev_kick(d);
}

static void
dev_queue_str(struct dev *d, const char *s)
{
	size_t len = strlen(s);
	struct outmsg *m = outmsg_new(len);

	if (!m) {
		count_error(d->b, "bench_enomem");
		return;
	}
	memcpy(m->buf + LWS_PRE, s, len);
	dev_queue(d, m);
}

static void
out_free_all(struct dev *d)
{
	struct outmsg *m, *n;

	for (m = d->out_head; m; m = n) {
		n = m->next;
		free(m);
	}
	d->out_head = d->out_tail = NULL;
}

/* Called when an ack frame has been handed to the socket. */
static void
ack_written(struct bench *b, const struct outmsg *m, uint64_t now)
{
	b->c.acked++;
	if (b->phase == PH_MEASURE && m->ack_of && now > m->ack_of)
		bench_sample_add(&b->lat, now - m->ack_of);
}

static int
dev_write(struct dev *d)
{
	struct bench *b = d->b;
	struct outmsg *m;
	int n = 0, w;

	while ((m = d->out_head) && n < 64) {
		if (n && lws_send_pipe_choked(d->wsi))
			break;
		w = lws_write(d->wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
		if (w < (int)m->len)
			return -1;
		d->out_head = m->next;
		if (!d->out_head)
			d->out_tail = NULL;
		if (m->is_ack)
			ack_written(b, m, bench_now_ns());
		free(m);
		n++;
	}
	if (d->out_head)
		lws_callback_on_writable(d->wsi);
	return 0;
}

/* ------------------------------------------------------------ sending */

static int
sending(const struct bench *b)
{
	return b->phase == PH_WARMUP || b->phase == PH_MEASURE;
}

/* One send to the peer's device 1; t is the send time that the payload
 * carries (now, or when it fell due in rate mode). */
static void
send_one(struct dev *d, uint64_t t)
{
	static const char fmt_head[] =
		"{\"id\":%" PRIu64 ",\"op\":\"send\",\"conversation\":\"%s\","
		"\"message_id\":\"m%" PRIu64
		"\",\"envelopes\":[{\"account\":\"%s\",\"device\":%u,"
		"\"registration_id\":%u,\"type\":1,\"body\":\"";
	static const char tail[] = "\"}]}";
	struct bench *b = d->b;
	struct dev *p = d->peer;
	char head[320];
	struct outmsg *m;
	uint64_t seq = d->seq;
	int hn;

	put_le64(d->raw, t);
	put_le64(d->raw + 8, seq);
	if (b->o.size > HDR_B64_BYTES) {
		char *pre = bv_b64_encode(d->raw, HDR_B64_BYTES);

		if (!pre) {
			count_error(b, "bench_enomem");
			return;
		}
		memcpy(d->b64, pre, HDR_B64_CHARS);
		bv_free(pre);
	} else {
		char *all = bv_b64_encode(d->raw, b->o.size);

		if (!all) {
			count_error(b, "bench_enomem");
			return;
		}
		memcpy(d->b64, all, d->b64_len);
		bv_free(all);
	}
	hn = snprintf(head, sizeof(head), fmt_head, ENROLL_ID + 1 + seq,
		      d->conversation, seq, p->account, p->device_id, p->regid);
	if (hn < 0 || (size_t)hn >= sizeof(head))
		return;
	m = outmsg_new((size_t)hn + d->b64_len + sizeof(tail) - 1);
	if (!m) {
		count_error(b, "bench_enomem");
		return;
	}
	memcpy(m->buf + LWS_PRE, head, (size_t)hn);
	memcpy(m->buf + LWS_PRE + hn, d->b64, d->b64_len);
	memcpy(m->buf + LWS_PRE + hn + d->b64_len, tail, sizeof(tail) - 1);
	d->sent_at[seq % SEND_RING] = t;
	d->seq++;
	d->inflight++;
	b->c.sends++;
	dev_queue(d, m);
}

/* Sends what this sender may: up to the in-flight cap, and in rate mode
 * only what has fallen due. */
static void
sender_pump(struct dev *d)
{
	struct bench *b = d->b;

	if (d->state != DS_READY)
		return;
	while (sending(b) && d->inflight < b->cap) {
		uint64_t t;

		if (b->o.rate > 0) {
			if (!d->bl_n)
				break;
			t = d->backlog[d->bl_head];
			d->bl_head = (d->bl_head + 1) % BACKLOG_CAP;
			d->bl_n--;
		} else {
			t = bench_now_ns();
		}
		send_one(d, t);
	}
}

/* Rate mode: hands every send due by now to its sender (round robin). */
static void
schedule(struct bench *b, uint64_t now)
{
	double elapsed = (double)(now - b->t_send0) / (double)NS_PER_S;
	uint64_t due = (uint64_t)(elapsed * b->o.rate);
	unsigned i;

	for (; b->sched_k < due; b->sched_k++) {
		struct dev *d =
			&b->devs[b->o.idle + 2 * (b->sched_k % b->o.pairs) + 1];

		if (d->bl_n == BACKLOG_CAP) {
			b->sched_overflow++;
			continue;
		}
		d->backlog[(d->bl_head + d->bl_n) % BACKLOG_CAP] = now;
		d->bl_n++;
	}
	for (i = 0; i < b->o.pairs; i++)
		sender_pump(&b->devs[b->o.idle + 2 * i + 1]);
}

/* ------------------------------------------------------------ frames */

static void dev_failed(struct dev *d, const char *why);

static void
on_challenge(struct dev *d, json_t *j)
{
	struct bench *b = d->b;
	const char *nonce = json_string_value(json_object_get(j, "nonce"));
	uint8_t ik[BV_KEY_LEN], sig[BV_SIG_LEN];
	char *tok = NULL, *msg = NULL, *pk64 = NULL, *ik64 = NULL;
	char *sig64 = NULL, *s = NULL;
	struct bv_token t;
	json_t *req = NULL;

	if (d->state != DS_CONNECTING || !nonce) {
		count_error(b, "unexpected_challenge");
		return;
	}
	memset(&t, 0, sizeof(t));
	memcpy(t.tenant, b->tenant, sizeof(t.tenant));
	randombytes_buf(t.jti, sizeof(t.jti));
	t.exp = bv_now_s() + TOKEN_TTL_S;
	if (bv_token_sign(&t, b->tsk, &tok) < 0)
		goto fail;
	msg = bv_enroll_message(nonce, tok);
	if (!msg)
		goto fail;
	crypto_sign_keypair(d->pk, d->sk);
	crypto_sign_detached(sig, NULL, (const uint8_t *)msg, strlen(msg),
			     d->sk);
	ik[0] = 0x05;
	randombytes_buf(ik + 1, sizeof(ik) - 1);
	d->regid = 1 + randombytes_uniform(16380);
	pk64 = bv_b64_encode(d->pk, sizeof(d->pk));
	ik64 = bv_b64_encode(ik, sizeof(ik));
	sig64 = bv_b64_encode(sig, sizeof(sig));
	if (!pk64 || !ik64 || !sig64)
		goto fail;
	req = json_pack("{si ss ss si ss ss ss}", "id", ENROLL_ID, "op",
			"enroll", "token", tok, "registration_id",
			(int)d->regid, "identity_key", ik64, "auth_key", pk64,
			"signature", sig64);
	s = req ? json_dumps(req, JSON_COMPACT) : NULL;
	if (!s)
		goto fail;
	dev_queue_str(d, s);
	d->state = DS_ENROLLING;
	goto out;
fail:
	dev_failed(d, "bench_enroll_build");
out:
	free(s);
	json_decref(req);
	if (tok) {
		bv_wipe(tok, strlen(tok));
		bv_free(tok);
	}
	bv_free(msg);
	bv_free(pk64);
	bv_free(ik64);
	bv_free(sig64);
}

static const char *
error_name(json_t *err)
{
	const char *code = json_string_value(json_object_get(err, "code"));

	return code ? code : "error_without_code";
}

static void
on_enrolled(struct dev *d, json_t *ok, json_t *err)
{
	struct bench *b = d->b;
	const char *acct = json_string_value(json_object_get(ok, "account"));
	json_t *dev = json_object_get(ok, "device");

	if (d->state != DS_ENROLLING) {
		count_error(b, "unexpected_enroll_answer");
		return;
	}
	if (err || !acct || !bv_uuid_valid(acct) || !json_is_integer(dev)) {
		char why[64];

		snprintf(why, sizeof(why), "enroll_%s",
			 err ? error_name(err) : "bad_answer");
		dev_failed(d, why);
		return;
	}
	memcpy(d->account, acct, sizeof(d->account));
	d->device_id = (uint32_t)json_integer_value(dev);
	d->state = DS_READY;
	b->n_pending--;
	b->n_ready++;
}

static void
on_send_answer(struct dev *d, int64_t id, json_t *ok, json_t *err)
{
	struct bench *b = d->b;
	uint64_t seq = (uint64_t)(id - ENROLL_ID - 1), now = bench_now_ns();

	if (d->role != ROLE_SENDER || id <= ENROLL_ID || seq >= d->seq ||
	    !d->inflight) {
		count_error(b, "unexpected_answer");
		return;
	}
	d->inflight--;
	if (ok) {
		b->c.sends_ok++;
		d->sends_ok++;
		if (b->phase == PH_MEASURE)
			bench_sample_add(&b->commit,
					 now - d->sent_at[seq % SEND_RING]);
	} else {
		b->c.send_errors++;
		count_error(b, error_name(err));
	}
	sender_pump(d);
}

static void
on_deliver(struct dev *d, int64_t id, json_t *env)
{
	struct bench *b = d->b;
	const char *body = json_string_value(json_object_get(env, "body"));
	const char *sender = json_string_value(json_object_get(env, "sender"));
	uint8_t hdr[HDR_B64_BYTES];
	struct outmsg *m;
	size_t blen, hl;
	uint64_t t, seq;
	int dup = 0, n;

	n = snprintf(NULL, 0, "{\"id\":%" PRId64 ",\"ok\":{}}", id);
	m = outmsg_new((size_t)n);
	if (!m) {
		count_error(b, "bench_enomem");
		return;
	}
	snprintf((char *)m->buf + LWS_PRE, (size_t)n + 1,
		 "{\"id\":%" PRId64 ",\"ok\":{}}", id);
	m->is_ack = 1;
	blen = body ? strlen(body) : 0;
	hl = blen < HDR_B64_CHARS ? blen : HDR_B64_CHARS;
	if (d->role != ROLE_RECEIVER || !body || blen != b->b64_len ||
	    !sender || strcmp(sender, d->peer->account) ||
	    bv_b64_decode(body, hl, hdr, sizeof(hdr), &hl) < 0 ||
	    hl < HDR_BYTES) {
		/* Acknowledge it anyway: it must not come back. */
		b->c.bad++;
		count_error(b, "bad_delivery");
		dev_queue(d, m);
		return;
	}
	t = get_le64(hdr);
	seq = get_le64(hdr + 8);
	if (seq >= 8 * (uint64_t)d->seen_bytes) {
		size_t nb = d->seen_bytes ? d->seen_bytes : 4096;
		uint8_t *s;

		while (seq >= 8 * (uint64_t)nb)
			nb *= 2;
		s = realloc(d->seen, nb);
		if (!s) {
			count_error(b, "bench_enomem");
			free(m);
			return;
		}
		memset(s + d->seen_bytes, 0, nb - d->seen_bytes);
		d->seen = s;
		d->seen_bytes = nb;
	}
	if (d->seen[seq / 8] & (1u << (seq % 8))) {
		dup = 1;
	} else {
		d->seen[seq / 8] |= (uint8_t)(1u << (seq % 8));
		d->unique++;
	}
	if (dup) {
		b->c.duplicates++;
	} else {
		b->c.delivered++;
		m->ack_of = t;
	}
	dev_queue(d, m);
}

static void
dev_frame(struct dev *d, const char *buf, size_t len)
{
	struct bench *b = d->b;
	json_t *j = json_loadb(buf, len, 0, NULL), *id, *ok, *err;
	const char *op;

	if (!json_is_object(j)) {
		count_error(b, "bad_frame");
		goto out;
	}
	op = json_string_value(json_object_get(j, "op"));
	id = json_object_get(j, "id");
	if (op) {
		if (!strcmp(op, "challenge"))
			on_challenge(d, j);
		else if (!strcmp(op, "deliver") && json_is_integer(id))
			on_deliver(d, json_integer_value(id),
				   json_object_get(j, "envelope"));
		else if (!strcmp(op, "displaced"))
			count_error(b, "displaced");
		else if (strcmp(op, "queue_empty") &&
			 strcmp(op, "prekeys_low") &&
			 strcmp(op, "cases_changed")) /* its case set-up */
			count_error(b, "unknown_op");
		goto out;
	}
	if (!json_is_integer(id)) {
		/* e.g. an error answer to a frame the relay could not read. */
		count_error(b, json_is_object(json_object_get(j, "error"))
				       ? error_name(json_object_get(j, "error"))
				       : "bad_frame");
		goto out;
	}
	ok = json_object_get(j, "ok");
	err = json_object_get(j, "error");
	if (!json_is_object(ok))
		ok = NULL;
	if (!json_is_object(err))
		err = NULL;
	if (json_integer_value(id) == ENROLL_ID)
		on_enrolled(d, ok, err);
	else
		on_send_answer(d, json_integer_value(id), ok, err);
out:
	json_decref(j);
}

/* ------------------------------------------------------------ lws */

static void
dev_failed(struct dev *d, const char *why)
{
	struct bench *b = d->b;

	if (d->state != DS_CONNECTING && d->state != DS_ENROLLING)
		return;
	d->state = DS_FAILED;
	b->n_pending--;
	b->n_failed++;
	if (d->role != ROLE_IDLE)
		b->n_pair_failed++;
	count_error(b, why);
	if (d->wsi)
		lws_set_timeout(d->wsi, PENDING_TIMEOUT_CLOSE_SEND,
				LWS_TO_KILL_ASYNC);
}

static void
dev_gone(struct dev *d)
{
	struct bench *b = d->b;

	d->wsi = NULL;
	out_free_all(d);
	if (d->state == DS_CONNECTING || d->state == DS_ENROLLING) {
		dev_failed(d, "closed_during_setup");
		return;
	}
	if (d->state != DS_READY)
		return;
	d->state = DS_CLOSED;
	b->n_closed++;
	if (b->phase != PH_DONE) {
		char why[48];

		snprintf(why, sizeof(why), "closed_by_relay_%d", d->close_code);
		count_error(b, why);
		fatal(b, "a %s connection was closed (code %d) during the run",
		      d->role == ROLE_IDLE ? "idle" : "pair", d->close_code);
	}
}

static int
rx_append(struct dev *d, const void *in, size_t len)
{
	if (d->rx_len + len + 1 > d->rx_cap) {
		size_t want = d->rx_cap ? d->rx_cap : 4096;
		char *n;

		while (want < d->rx_len + len + 1)
			want *= 2;
		n = realloc(d->rx, want);
		if (!n)
			return -1;
		d->rx = n;
		d->rx_cap = want;
	}
	memcpy(d->rx + d->rx_len, in, len);
	d->rx_len += len;
	return 0;
}

static int
ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
	    void *in, size_t len)
{
	struct dev *d = lws_get_opaque_user_data(wsi);

	(void)user;
	switch (reason) {
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		if (d) {
			d->wsi = NULL;
			dev_failed(d, "connect_failed");
		}
		return 0;

	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		if (d && d->out_head)
			lws_callback_on_writable(wsi);
		return 0;

	case LWS_CALLBACK_CLIENT_RECEIVE:
		if (!d)
			return -1;
		if (lws_is_first_fragment(wsi))
			d->rx_len = 0;
		if (rx_append(d, in, len) < 0)
			return -1;
		if (!lws_is_final_fragment(wsi) ||
		    lws_remaining_packet_payload(wsi))
			return 0;
		dev_frame(d, d->rx, d->rx_len);
		d->rx_len = 0;
		return 0;

	case LWS_CALLBACK_CLIENT_WRITEABLE:
		if (!d || d->state == DS_FAILED)
			return -1;
		return dev_write(d);

	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (d && in && len >= 2)
			d->close_code = ((const uint8_t *)in)[0] << 8 |
					((const uint8_t *)in)[1];
		return 0;

	case LWS_CALLBACK_CLIENT_CLOSED:
	case LWS_CALLBACK_WSI_DESTROY:
		if (d && d->wsi == wsi)
			dev_gone(d);
		return 0;

	default:
		return 0;
	}
}

static const struct lws_protocols protocols[] = {
	{BV_SUBPROTOCOL, ws_callback, 0, 65536, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0}};

static void
dev_open(struct bench *b, struct dev *d)
{
	struct lws_client_connect_info i;

	memset(&i, 0, sizeof(i));
	i.context = b->ctx;
	i.address = b->o.host;
	i.port = b->o.port;
	i.path = BV_WS_PATH;
	i.host = b->o.host;
	/* No origin: a native client, not a browser (docs/protocol.md). */
	i.protocol = BV_SUBPROTOCOL;
	i.opaque_user_data = d;
	i.pwsi = &d->wsi;
	d->state = DS_CONNECTING;
	b->n_pending++;
	b->n_opened++;
	if (!lws_client_connect_via_info(&i)) {
		d->wsi = NULL;
		dev_failed(d, "connect_failed");
	}
}

/* ------------------------------------------------------------ phases */

static void
take_snapshot(struct bench *b, int end)
{
	if (end) {
		b->relay1 = cpu_of(b->o.relay_pid, 0);
		b->db1 = cpu_of(b->o.db_pid, 1);
		getrusage(RUSAGE_SELF, &b->self1);
		machine_cpu(&b->busy1, &b->all1);
	} else {
		machine_cpu(&b->busy0, &b->all0);
		b->relay0 = cpu_of(b->o.relay_pid, 0);
		b->db0 = cpu_of(b->o.db_pid, 1);
		getrusage(RUSAGE_SELF, &b->self0);
	}
}

static void
start_sending(struct bench *b, uint64_t now)
{
	unsigned i;

	b->phase = b->o.warmup > 0 ? PH_WARMUP : PH_MEASURE;
	b->t_send0 = now;
	if (b->phase == PH_MEASURE) {
		b->t_meas0 = now;
		b->c0 = b->c;
		take_snapshot(b, 0);
	}
	if (b->o.rate == 0)
		for (i = 0; i < b->o.pairs; i++)
			sender_pump(&b->devs[b->o.idle + 2 * i + 1]);
}

static int
drained(const struct bench *b)
{
	size_t i;

	if (b->c.sends_ok + b->c.send_errors < b->c.sends)
		return 0;
	for (i = 0; i < b->o.pairs; i++) {
		const struct dev *s = &b->devs[b->o.idle + 2 * i + 1];
		const struct dev *r = &b->devs[b->o.idle + 2 * i];

		if (r->unique < s->sends_ok || r->out_head)
			return 0;
	}
	return 1;
}

static void
finish(struct bench *b)
{
	b->phase = PH_DONE;
	uv_stop(b->loop);
}

static void
open_more(struct bench *b)
{
	while (b->n_opened < b->n_devs && b->n_pending < b->o.concurrency)
		dev_open(b, &b->devs[b->n_opened]);
}

/* --progress: one line a second on stderr while sending. */
static void
progress(struct bench *b, uint64_t now)
{
	double dt;

	if (!b->o.progress || b->phase < PH_WARMUP || b->phase > PH_DRAIN)
		return;
	if (!b->t_progress) {
		b->t_progress = now;
		return;
	}
	if (now - b->t_progress < NS_PER_S)
		return;
	dt = (double)(now - b->t_progress) / (double)NS_PER_S;
	fprintf(stderr,
		"bvchat-bench: %6.1f s %-7s acked %7.0f/s  sends ok %7.0f/s\n",
		(double)(now - b->t_send0) / (double)NS_PER_S,
		b->phase == PH_WARMUP	 ? "warmup"
		: b->phase == PH_MEASURE ? "measure"
					 : "drain",
		(double)(b->c.acked - b->progress_acked) / dt,
		(double)(b->c.sends_ok - b->progress_sends_ok) / dt);
	b->t_progress = now;
	b->progress_acked = b->c.acked;
	b->progress_sends_ok = b->c.sends_ok;
}

/*
 * Every send belongs to a case conversation (docs/cases.md): each pair
 * becomes a case of the bench tenant with the receiver as the child and the
 * sender as its caseworker, talking in the child's team conversation, whose
 * required accounts are exactly the two. Set up once through the database
 * before sending (the fagsystem would do it in production); not measured.
 */
static int
pairs_into_cases(struct bench *b)
{
	static const char sql[] =
		"WITH k AS (INSERT INTO cases (id, tenant_id, case_number) "
		"VALUES (gen_random_uuid(), $1::uuid, 'BENCH-' || "
		"substr(md5(random()::text), 1, 12)) RETURNING id), "
		"r AS (INSERT INTO case_roster (case_id, account_id, role, "
		"display_name) SELECT k.id, a.id, a.role, a.role FROM k, "
		"(VALUES ($2::uuid, 'child'), ($3::uuid, 'caseworker')) "
		"AS a(id, role) RETURNING 1), "
		"c AS (INSERT INTO conversations (id, case_id, kind, "
		"team_citizen, created_by) SELECT $4::uuid, k.id, 'team', "
		"$2::uuid, $3::uuid FROM k RETURNING id), "
		"m AS (INSERT INTO conversation_members SELECT c.id, $2::uuid "
		"FROM c RETURNING 1) "
		"SELECT (SELECT count(*) FROM r) + (SELECT count(*) FROM m)";
	PGconn *pg;
	PGresult *res;
	size_t i;
	int ok = 1;

	if (!b->o.pairs)
		return 0;
	pg = PQconnectdb(b->o.database);
	if (PQstatus(pg) != CONNECTION_OK) {
		fatal(b, "--database: %s", PQerrorMessage(pg));
		PQfinish(pg);
		return -1;
	}
	PQclear(PQexec(pg, "BEGIN"));
	for (i = 0; ok && i < b->n_devs; i++) {
		struct dev *d = &b->devs[i];
		const char *v[4];

		if (d->role != ROLE_SENDER)
			continue;
		bv_uuid_generate(d->conversation);
		v[0] = b->tenant;
		v[1] = d->peer->account;
		v[2] = d->account;
		v[3] = d->conversation;
		res = PQexecParams(pg, sql, 4, NULL, v, NULL, NULL, 0);
		ok = PQresultStatus(res) == PGRES_TUPLES_OK &&
		     !strcmp(PQgetvalue(res, 0, 0), "3");
		if (!ok)
			fatal(b, "cannot put a pair on a case: %s",
			      PQresultErrorMessage(res));
		PQclear(res);
	}
	res = PQexec(pg, ok ? "COMMIT" : "ROLLBACK");
	ok = ok && PQresultStatus(res) == PGRES_COMMAND_OK;
	PQclear(res);
	PQfinish(pg);
	return ok ? 0 : -1;
}

static void
tick(uv_timer_t *t)
{
	struct bench *b = t->data;
	uint64_t now = bench_now_ns();

	progress(b, now);
	switch (b->phase) {
	case PH_SETUP:
		open_more(b);
		if (b->n_ready + b->n_failed < b->n_devs) {
			if (now - b->t_setup0 >
			    (uint64_t)(b->o.setup_timeout * NS_PER_S))
				fatal(b,
				      "setup timed out: %zu of %zu devices "
				      "enrolled",
				      b->n_ready, b->n_devs);
			return;
		}
		b->t_ready = now;
		if (b->n_pair_failed) {
			fatal(b, "%zu pair devices failed to enroll",
			      b->n_pair_failed);
			return;
		}
		if (pairs_into_cases(b) < 0)
			return;
		if (b->o.idle) {
			b->phase = PH_SETTLE;
			b->t_phase = now;
			return;
		}
		start_sending(b, now);
		return;
	case PH_SETTLE:
		if (now - b->t_phase < SETTLE_NS)
			return;
		b->rss_idle_kb = proc_status_kb(b->o.relay_pid, "VmRSS");
		if (b->o.pairs) {
			start_sending(b, now);
		} else {
			b->phase = PH_HOLD;
			b->t_phase = now;
		}
		return;
	case PH_HOLD:
		if (now - b->t_phase >= (uint64_t)(b->o.hold * NS_PER_S))
			finish(b);
		return;
	case PH_WARMUP:
	case PH_MEASURE:
		if (b->phase == PH_WARMUP &&
		    now - b->t_send0 >= (uint64_t)(b->o.warmup * NS_PER_S)) {
			b->phase = PH_MEASURE;
			b->t_meas0 = now;
			b->c0 = b->c;
			take_snapshot(b, 0);
		}
		if (b->phase == PH_MEASURE &&
		    (now - b->t_meas0 >= (uint64_t)(b->o.duration * NS_PER_S) ||
		     (b->o.messages &&
		      b->c.acked - b->c0.acked >= b->o.messages))) {
			b->phase = PH_DRAIN;
			b->t_meas1 = now;
			b->c1 = b->c;
			take_snapshot(b, 1);
			b->t_phase = now;
			return;
		}
		if (b->o.rate > 0)
			schedule(b, now);
		return;
	case PH_DRAIN:
		if (drained(b) || now - b->t_phase > DRAIN_NS)
			finish(b);
		return;
	case PH_DONE:
		uv_stop(b->loop);
		return;
	}
}

static void
on_sigint(uv_signal_t *h, int signum)
{
	struct bench *b = h->data;

	(void)signum;
	b->interrupted = 1;
	fatal(b, "interrupted");
}

/* ------------------------------------------------------------ report */

static void
print_report(struct bench *b)
{
	const struct opts *o = &b->o;
	double win = (double)(b->t_meas1 - b->t_meas0) / (double)NS_PER_S;
	uint64_t acked = b->c1.acked - b->c0.acked;
	double mps = win > 0 ? (double)acked / win : 0;
	double rcpu = cpu_seconds(&b->relay0, &b->relay1);
	double dcpu = cpu_seconds(&b->db0, &b->db1);
	double scpu = self_cpu_seconds(&b->self0, &b->self1);
	double setup = (double)(b->t_ready - b->t_setup0) / (double)NS_PER_S;
	double rcpu_us = rcpu >= 0 && acked ? rcpu * 1e6 / (double)acked : -1;
	double dcpu_us = dcpu >= 0 && acked ? dcpu * 1e6 / (double)acked : -1;
	double scpu_us = acked ? scpu * 1e6 / (double)acked : -1;
	double idle_kb_conn = -1;
	double ncpu = (double)sysconf(_SC_NPROCESSORS_ONLN);
	double mbusy = cpu_seconds(&b->busy0, &b->busy1);
	double mall = cpu_seconds(&b->all0, &b->all1);
	double others = -1;
	uint64_t lost = 0;
	int measured = b->t_meas1 > b->t_meas0;
	size_t i;

	bench_samples_sort(&b->lat);
	bench_samples_sort(&b->commit);
	for (i = 0; i < o->pairs; i++) {
		const struct dev *s = &b->devs[o->idle + 2 * i + 1];
		const struct dev *r = &b->devs[o->idle + 2 * i];

		if (s->sends_ok > r->unique)
			lost += s->sends_ok - r->unique;
	}
	/* CPU used by processes that are not ours (other work on the host). */
	if (mbusy >= 0 && mall > 0) {
		others = mbusy - scpu - (rcpu > 0 ? rcpu : 0) -
			 (dcpu > 0 ? dcpu : 0);
		if (others < 0)
			others = 0;
	}
	if (o->idle && b->rss_idle_kb > 0 && b->rss_base_kb > 0)
		idle_kb_conn = (double)(b->rss_idle_kb - b->rss_base_kb) /
			       (double)o->idle;

	printf("bvchat-bench%s%s: %u pairs, %zu-byte bodies, ",
	       o->label ? " " : "", o->label ? o->label : "", o->pairs,
	       o->size);
	if (o->rate > 0)
		printf("%.0f msg/s offered (%u in flight max per sender)",
		       o->rate, b->cap);
	else
		printf("as fast as possible (%u in flight per sender)", b->cap);
	printf(", %u idle connections\n", o->idle);
	printf("  setup            %zu devices enrolled in %.2f s (%.0f/s)",
	       b->n_ready, setup, setup > 0 ? (double)b->n_ready / setup : 0);
	if (b->n_failed)
		printf(", %zu failed", b->n_failed);
	printf("\n");
	if (o->idle)
		printf("  relay RSS idle   %.1f MB with %u idle connections "
		       "(%.1f MB before; %.1f KB per connection)\n",
		       b->rss_idle_kb / 1024.0, o->idle,
		       b->rss_base_kb / 1024.0, idle_kb_conn);
	if (o->pairs && measured) {
		printf("  window           %.2f s measured after %.1f s "
		       "warm-up\n",
		       win, o->warmup);
		printf("  messages/s       %.0f (acknowledged deliveries)\n",
		       mps);
		printf("  latency ms       p50 %.3f  p99 %.3f  max %.3f  "
		       "(send -> receiver's ack, %zu samples)\n",
		       bench_pct_ms(&b->lat, 50), bench_pct_ms(&b->lat, 99),
		       bench_pct_ms(&b->lat, 100), b->lat.n);
		printf("  commit ms        p50 %.3f  p99 %.3f  max %.3f  "
		       "(send -> relay's ok)\n",
		       bench_pct_ms(&b->commit, 50),
		       bench_pct_ms(&b->commit, 99),
		       bench_pct_ms(&b->commit, 100));
		if (rcpu >= 0)
			printf("  relay CPU        %.1f us/message, %.0f%% of "
			       "one core\n",
			       rcpu_us, 100 * rcpu / win);
		if (dcpu >= 0)
			printf("  PostgreSQL CPU   %.1f us/message, %.0f%% of "
			       "one core\n",
			       dcpu_us, 100 * dcpu / win);
		printf("  bench CPU        %.1f us/message, %.0f%% of one "
		       "core\n",
		       scpu_us, 100 * scpu / win);
		if (others >= 0)
			printf("  machine CPU      %.0f%% of %.0f cores busy; "
			       "other processes %.0f%% of one core\n",
			       100 * mbusy / mall, ncpu, 100 * others / win);
	}
	if (o->relay_pid > 0)
		printf("  relay RSS        peak %.1f MB, now %.1f MB\n",
		       b->hwm_end_kb / 1024.0, b->rss_end_kb / 1024.0);
	printf("  totals           sends %" PRIu64 ", ok %" PRIu64
	       ", refused %" PRIu64 ", delivered %" PRIu64
	       ", duplicates %" PRIu64 ", lost %" PRIu64 "\n",
	       b->c.sends, b->c.sends_ok, b->c.send_errors, b->c.delivered,
	       b->c.duplicates, lost);
	if (b->sched_overflow)
		printf("  behind schedule  %" PRIu64
		       " due sends dropped (backlog full)\n",
		       b->sched_overflow);
	printf("  errors          ");
	if (!b->n_errs)
		printf(" none");
	for (i = 0; i < b->n_errs; i++)
		printf(" %s=%" PRIu64, b->errs[i].name, b->errs[i].n);
	printf("\n");
	if (b->fatal)
		printf("  RUN FAILED       %s\n", b->fatal_msg);

	if (!o->json)
		return;
	printf("{\"label\":\"%s\",\"ok\":%s,\"pairs\":%u,\"size\":%zu,"
	       "\"rate\":%.0f,\"inflight\":%u,\"idle\":%u,"
	       "\"devices_enrolled\":%zu,\"setup_s\":%.3f,"
	       "\"window_s\":%.3f,\"msgs_per_s\":%.1f,"
	       "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,"
	       "\"commit_p50_ms\":%.3f,\"commit_p99_ms\":%.3f,"
	       "\"relay_cpu_us_per_msg\":%.2f,\"db_cpu_us_per_msg\":%.2f,"
	       "\"bench_cpu_us_per_msg\":%.2f,"
	       "\"relay_cpu_pct\":%.1f,\"db_cpu_pct\":%.1f,"
	       "\"bench_cpu_pct\":%.1f,\"machine_busy_pct\":%.1f,"
	       "\"others_cpu_pct\":%.1f,\"ncpu\":%.0f,"
	       "\"relay_rss_base_kb\":%ld,\"relay_rss_idle_kb\":%ld,"
	       "\"relay_kb_per_idle_conn\":%.2f,"
	       "\"relay_rss_peak_kb\":%ld,\"relay_rss_end_kb\":%ld,"
	       "\"sends\":%" PRIu64 ",\"sends_ok\":%" PRIu64
	       ",\"refused\":%" PRIu64 ",\"delivered\":%" PRIu64
	       ",\"duplicates\":%" PRIu64 ",\"lost\":%" PRIu64
	       ",\"behind\":%" PRIu64 ",\"errors\":{",
	       o->label ? o->label : "", b->fatal ? "false" : "true", o->pairs,
	       o->size, o->rate, b->cap, o->idle, b->n_ready, setup, win, mps,
	       bench_pct_ms(&b->lat, 50), bench_pct_ms(&b->lat, 99),
	       bench_pct_ms(&b->lat, 100), bench_pct_ms(&b->commit, 50),
	       bench_pct_ms(&b->commit, 99), rcpu_us, dcpu_us, scpu_us,
	       win > 0 ? 100 * rcpu / win : -1, win > 0 ? 100 * dcpu / win : -1,
	       win > 0 ? 100 * scpu / win : -1,
	       mall > 0 ? 100 * mbusy / mall : -1,
	       others >= 0 && win > 0 ? 100 * others / win : -1, ncpu,
	       b->rss_base_kb, b->rss_idle_kb, idle_kb_conn, b->hwm_end_kb,
	       b->rss_end_kb, b->c.sends, b->c.sends_ok, b->c.send_errors,
	       b->c.delivered, b->c.duplicates, lost, b->sched_overflow);
	for (i = 0; i < b->n_errs; i++)
		printf("%s\"%s\":%" PRIu64, i ? "," : "", b->errs[i].name,
		       b->errs[i].n);
	printf("}}\n");
}

/* ------------------------------------------------------------ setup */

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: bvchat-bench --url HOST:PORT --key FILE --database "
		"CONNINFO\n"
		"                    [options]\n"
		"\n"
		"Drives sender/receiver device pairs through a bvchat-relay "
		"and\n"
		"reports acknowledged deliveries/s, latency from send to the\n"
		"receiver's acknowledgement, and the relay's CPU and RSS. "
		"Every\n"
		"run enrolls new devices: it creates 2 x pairs + idle "
		"accounts\n"
		"in the relay's database. Start the relay with\n"
		"--sends_per_minute 0 (no rate limit) for a meaningful run.\n"
		"\n"
		"  --url HOST:PORT     the relay (ws://, plain; "
		"127.0.0.1:8480)\n"
		"  --key FILE          tenant key file from admin "
		"tenant-create\n"
		"  --database CONNINFO the relay's database: each pair is put "
		"on\n"
		"                      a case with a team conversation "
		"(needed\n"
		"                      with --pairs)\n"
		"  --pairs N           sender/receiver pairs (10)\n"
		"  --size BYTES        opaque body size, >= 16 (300)\n"
		"  --rate MSG/S        total offered rate; 0 = as fast as\n"
		"                      --inflight allows (0)\n"
		"  --inflight K        sends in flight per sender (10; with\n"
		"                      --rate: the cap, 64)\n"
		"  --duration S        measured seconds (10, at most 600)\n"
		"  --messages M        stop measuring after M acknowledged\n"
		"                      deliveries (duration still caps)\n"
		"  --warmup S          unmeasured seconds first (2)\n"
		"  --idle N            also hold N idle enrolled connections\n"
		"  --hold S            with --pairs 0: hold idle ones S s (2)\n"
		"  --concurrency C     connections set up at once (200)\n"
		"  --setup-timeout S   give up enrolling after S s (180)\n"
		"  --relay-pid PID     read the relay's CPU and RSS from "
		"/proc\n"
		"  --db-pid PID        postmaster: add PostgreSQL's CPU (it "
		"and\n"
		"                      its children)\n"
		"  --label TEXT        name of the run in the report\n"
		"  --json              also print one JSON result line\n"
		"  --progress          print messages/s every second "
		"(stderr)\n");
}

static int
parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{"url", required_argument, NULL, 'u'},
		{"key", required_argument, NULL, 'k'},
		{"database", required_argument, NULL, 'B'},
		{"pairs", required_argument, NULL, 'p'},
		{"size", required_argument, NULL, 's'},
		{"rate", required_argument, NULL, 'r'},
		{"inflight", required_argument, NULL, 'i'},
		{"duration", required_argument, NULL, 'd'},
		{"messages", required_argument, NULL, 'm'},
		{"warmup", required_argument, NULL, 'w'},
		{"idle", required_argument, NULL, 'I'},
		{"hold", required_argument, NULL, 'H'},
		{"concurrency", required_argument, NULL, 'c'},
		{"setup-timeout", required_argument, NULL, 'T'},
		{"relay-pid", required_argument, NULL, 'P'},
		{"db-pid", required_argument, NULL, 'D'},
		{"label", required_argument, NULL, 'l'},
		{"json", no_argument, NULL, 'j'},
		{"progress", no_argument, NULL, 'g'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	double v;
	int ch, li = 0;

	memset(o, 0, sizeof(*o));
	snprintf(o->host, sizeof(o->host), "127.0.0.1");
	o->port = 8480;
	o->pairs = 10;
	o->size = 300;
	o->duration = 10;
	o->warmup = 2;
	o->hold = 2;
	o->concurrency = 200;
	o->setup_timeout = 180;
	while ((ch = getopt_long(argc, argv, "", lo, &li)) != -1) {
		int bad = 0;

		switch (ch) {
		case 'u':
			bad = bench_parse_url(optarg, o->host, sizeof(o->host),
					      &o->port);
			break;
		case 'k':
			o->key = optarg;
			break;
		case 'B':
			o->database = optarg;
			break;
		case 'p':
			bad = bench_num(optarg, 0, 100000, &v);
			o->pairs = (unsigned)v;
			break;
		case 's':
			bad = bench_num(optarg, HDR_BYTES, 16 << 20, &v);
			o->size = (size_t)v;
			break;
		case 'r':
			bad = bench_num(optarg, 0, 1e7, &o->rate);
			break;
		case 'i':
			bad = bench_num(optarg, 1, SEND_RING - 1, &v);
			o->inflight = (unsigned)v;
			break;
		case 'd':
			bad = bench_num(optarg, 0.1, 600, &o->duration);
			break;
		case 'm':
			bad = bench_num(optarg, 1, 1e12, &v);
			o->messages = (unsigned long long)v;
			break;
		case 'w':
			bad = bench_num(optarg, 0, 600, &o->warmup);
			break;
		case 'I':
			bad = bench_num(optarg, 0, 1000000, &v);
			o->idle = (unsigned)v;
			break;
		case 'H':
			bad = bench_num(optarg, 0, 3600, &o->hold);
			break;
		case 'c':
			bad = bench_num(optarg, 1, 100000, &v);
			o->concurrency = (unsigned)v;
			break;
		case 'T':
			bad = bench_num(optarg, 1, 3600, &o->setup_timeout);
			break;
		case 'P':
			bad = bench_num(optarg, 1, 1e9, &v);
			o->relay_pid = (pid_t)v;
			break;
		case 'D':
			bad = bench_num(optarg, 1, 1e9, &v);
			o->db_pid = (pid_t)v;
			break;
		case 'l':
			o->label = optarg;
			break;
		case 'j':
			o->json = 1;
			break;
		case 'g':
			o->progress = 1;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -1;
		}
		if (bad) {
			fprintf(stderr,
				"bvchat-bench: bad value for --%s: %s\n",
				lo[li].name, optarg);
			return -1;
		}
	}
	if (optind != argc || !o->key) {
		fprintf(stderr, "bvchat-bench: --key is required\n");
		return -1;
	}
	if (o->pairs && !o->database) {
		fprintf(stderr, "bvchat-bench: --database is required with "
				"--pairs (sends belong to a case "
				"conversation)\n");
		return -1;
	}
	if (!o->pairs && !o->idle) {
		fprintf(stderr, "bvchat-bench: nothing to do (--pairs 0, no "
				"--idle)\n");
		return -1;
	}
	return 0;
}

static void
raise_nofile(unsigned want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < (rlim_t)want + 64)
		fprintf(stderr,
			"bvchat-bench: warning: RLIMIT_NOFILE is %llu, fewer "
			"than the %u connections asked for\n",
			(unsigned long long)rl.rlim_cur, want);
}

static void
lws_log_emit(int level, const char *line)
{
	(void)level;
	fprintf(stderr, "bvchat-bench: lws: %s", line);
}

static int
setup_devices(struct bench *b)
{
	const struct opts *o = &b->o;
	size_t i;

	b->n_devs = (size_t)o->idle + 2 * (size_t)o->pairs;
	b->devs = xcalloc(b->n_devs, sizeof(*b->devs));
	b->b64_len = 4 * ((o->size + 2) / 3);
	for (i = 0; i < b->n_devs; i++) {
		struct dev *d = &b->devs[i];
		char *b64;

		d->b = b;
		if (i < o->idle) {
			d->role = ROLE_IDLE;
			continue;
		}
		d->index = (unsigned)((i - o->idle) / 2);
		if ((i - o->idle) % 2 == 0) {
			d->role = ROLE_RECEIVER;
			d->peer = d + 1;
			continue;
		}
		d->role = ROLE_SENDER;
		d->peer = d - 1;
		d->raw = xcalloc(1, o->size);
		randombytes_buf(d->raw, o->size);
		b64 = bv_b64_encode(d->raw, o->size);
		if (!b64 || strlen(b64) != b->b64_len)
			return -1;
		d->b64 = xcalloc(1, b->b64_len + 1);
		memcpy(d->b64, b64, b->b64_len);
		bv_free(b64);
		d->b64_len = b->b64_len;
		d->sent_at = xcalloc(SEND_RING, sizeof(*d->sent_at));
		if (o->rate > 0)
			d->backlog = xcalloc(BACKLOG_CAP, sizeof(*d->backlog));
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct lws_context_creation_info info;
	struct bench *b;
	uv_loop_t loop;
	void *loops[1] = {&loop};
	size_t i;
	int status;

	b = xcalloc(1, sizeof(*b));
	if (parse_args(argc, argv, &b->o) < 0) {
		usage(stderr);
		return 2;
	}
	if (sodium_init() < 0 ||
	    bench_read_key("bvchat-bench", b->o.key, b->tenant, b->tsk) < 0)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	raise_nofile(b->o.idle + 2 * b->o.pairs);
	b->cap = b->o.inflight ? b->o.inflight : b->o.rate > 0 ? 64 : 10;
	if (setup_devices(b) < 0) {
		fprintf(stderr, "bvchat-bench: out of memory\n");
		return 1;
	}
	b->rss_base_kb = proc_status_kb(b->o.relay_pid, "VmRSS");

	uv_loop_init(&loop);
	b->loop = &loop;
	lws_set_log_level(LLL_ERR, lws_log_emit);
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.options = LWS_SERVER_OPTION_LIBUV;
	info.foreign_loops = loops;
	info.user = b;
	info.timeout_secs = 30;
	info.connect_timeout_secs = 20;
	b->ctx = lws_create_context(&info);
	if (!b->ctx) {
		fprintf(stderr, "bvchat-bench: cannot create the lws context "
				"(is libwebsockets-evlib-uv installed?)\n");
		return 1;
	}
	uv_timer_init(&loop, &b->tick);
	b->tick.data = b;
	uv_signal_init(&loop, &b->sigint);
	b->sigint.data = b;
	uv_signal_start(&b->sigint, on_sigint, SIGINT);
	b->t_setup0 = bench_now_ns();
	uv_timer_start(&b->tick, tick, 0, 1);

	uv_run(&loop, UV_RUN_DEFAULT);

	if (b->phase != PH_DRAIN && b->t_meas0 && !b->t_meas1) {
		/* Stopped early: report what was measured so far. */
		b->t_meas1 = bench_now_ns();
		b->c1 = b->c;
		take_snapshot(b, 1);
	}
	b->rss_end_kb = proc_status_kb(b->o.relay_pid, "VmRSS");
	b->hwm_end_kb = proc_status_kb(b->o.relay_pid, "VmHWM");
	print_report(b);
	fflush(stdout);
	status = b->fatal ? 1 : 0;

	b->phase = PH_DONE;
	uv_timer_stop(&b->tick);
	uv_close((uv_handle_t *)&b->tick, NULL);
	uv_signal_stop(&b->sigint);
	uv_close((uv_handle_t *)&b->sigint, NULL);
	/* On a foreign loop lws finishes closing its handles while the loop
	 * runs; the second call then frees the context itself. */
	lws_context_destroy(b->ctx);
	uv_run(&loop, UV_RUN_DEFAULT);
	lws_context_destroy(b->ctx);
	uv_loop_close(&loop);
	for (i = 0; i < b->n_devs; i++) {
		struct dev *d = &b->devs[i];

		out_free_all(d);
		free(d->rx);
		free(d->raw);
		free(d->b64);
		free(d->sent_at);
		free(d->backlog);
		free(d->seen);
		sodium_memzero(d->sk, sizeof(d->sk));
	}
	free(b->devs);
	free(b->lat.v);
	free(b->commit.v);
	sodium_memzero(b->tsk, sizeof(b->tsk));
	free(b);
	return status;
}
