/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * bvchat-e2e-bench.c: end-to-end load through libbvchat with real
 * encryption on both ends. N sender/receiver pairs of bv_clients, each
 * enrolled afresh on its own store, on one borrowed libuv loop against a
 * real relay; each sender keeps K texts in flight (sent until bv_sent_cb),
 * or (--rate) texts go out at a fixed total rate, round-robin.
 * Reports texts/s delivered and decrypted, latency from
 * bv_client_send_text() to the receiver's on_message, and CPU per text.
 * With --attach BYTES every text after the first carries a file of that
 * size (bv_client_send_attachments(): encrypted, spooled, uploaded over
 * HTTP, then sent) and counts as arrived when the receiver has fetched
 * and decrypted it (bv_client_attachment_fetch() into memory).
 * Only bvchat.h drives the clients; tokens are signed with the tenant key
 * as the municipality would (bv_token.h). Each pair is a case of its own
 * (receiver a child, sender its caseworker) with one team conversation,
 * set up with `bvchat-relay admin` (--database). It measures; it asserts
 * nothing.
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
#include <sys/wait.h>
#include <jansson.h>
#include <sodium.h>
#include <uv.h>

#include "bench_util.h"
#include "bvchat.h"
#include "bv_token.h"
#include "bv_util.h"

#define NS_PER_MS    1000000ull
#define NS_PER_S     1000000000ull
#define HDR_FMT	     "%020" PRIu64 " %010" PRIu32 " " /* send ns, seq */
#define HDR_LEN	     32
#define TOKEN_TTL_S  600
#define TICK_MS	     5
#define DRAIN_NS     (10 * NS_PER_S)
#define MAX_ERRS     16
#define MAX_INFLIGHT 64 /* the relay answers 64 requests per connection */

enum phase {
	PH_ENROLL,
	PH_PRIME, /* one text per pair: the session set-up */
	PH_WARMUP,
	PH_MEASURE,
	PH_DRAIN,
	PH_DONE,
};

struct opts {
	char host[256];
	int port;
	const char *key;
	const char *dir;
	unsigned pairs;
	unsigned inflight;
	double rate; /* texts/s over all senders; 0: K in flight */
	size_t size;
	size_t attach; /* bytes of the file each text carries; 0: none */
	double warmup;
	double duration;
	double setup_timeout;
	pid_t relay_pid;
	pid_t db_pid;
	const char *label;
	int json;
	int no_prime;
	const char *database;  /* conninfo for `bvchat-relay admin` */
	const char *relay_bin; /* bvchat-relay */
};

struct bench;

struct pair {
	struct bench *b;
	unsigned idx;
	struct bv_client *snd, *rcv;
	char snd_path[600], rcv_path[600];
	char conv[BV_CLIENT_ACCOUNT_LEN + 1];
	int snd_enrolled, rcv_enrolled;
	unsigned inflight;
	struct {
		char mid[BV_CLIENT_MESSAGE_ID_LEN + 1];
		uint64_t t0; /* 0: free */
	} slot[MAX_INFLIGHT];
	uint32_t next_seq;
	uint32_t max_seq_seen; /* 0: none yet */
	uint8_t *seen;	       /* by seq, grows */
	size_t seen_cap;
	uint64_t accepted; /* bv_sent_cb with rc 0 */
	uint64_t received;
};

struct bench {
	struct opts o;
	uv_loop_t loop;
	uv_timer_t tick;
	uv_signal_t sigint;
	enum phase phase;
	int failed;
	int loop_ok;
	char fail_msg[256];
	char dir[512];
	char tenant[37];
	uint8_t tsk[64];
	struct pair *p;
	uint8_t *file; /* --attach: the random file every sender sends */
	unsigned enrolled;
	unsigned primed;
	uint64_t t_phase; /* when the phase began */
	uint64_t t_measure, t_measure_end;
	uint64_t next_due; /* rate mode: when the next text is due */
	unsigned rr;	   /* rate mode: the next sender */
	/* Counted in the measured window only. */
	uint64_t win_received;
	struct bench_samples lat;  /* send -> receiver's on_message */
	struct bench_samples sent; /* send -> bv_sent_cb */
	struct bench_samples prime;
	/* Whole run. */
	uint64_t sends, send_refused, accepted, failed_sends, received;
	uint64_t duplicates, reordered;
	uint64_t capped; /* rate mode: due while the sender had 64 in flight */
	struct rusage ru0, ru1;
	unsigned long long relay0, relay1, db0, db1;
	int relay_ok, db_ok;
	struct {
		int code;
		unsigned long n;
	} errs[MAX_ERRS];
	size_t n_errs;
};

/* ------------------------------------------------------------ utilities */

static void fail(struct bench *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
fail(struct bench *b, const char *fmt, ...)
{
	va_list ap;

	if (b->failed)
		return;
	b->failed = 1;
	va_start(ap, fmt);
	vsnprintf(b->fail_msg, sizeof(b->fail_msg), fmt, ap);
	va_end(ap);
	b->phase = PH_DONE;
	uv_stop(&b->loop);
}

static void
count_error(struct bench *b, int code)
{
	size_t i;

	for (i = 0; i < b->n_errs; i++)
		if (b->errs[i].code == code) {
			b->errs[i].n++;
			return;
		}
	if (b->n_errs < MAX_ERRS) {
		b->errs[b->n_errs].code = code;
		b->errs[b->n_errs++].n = 1;
	}
}

/* ------------------------------------------------------------ sending */

static void
send_one(struct pair *p)
{
	struct bench *b = p->b;
	char mid[BV_CLIENT_MESSAGE_ID_LEN + 1];
	char *text;
	uint32_t seq = ++p->next_seq;
	uint64_t t0 = bench_now_ns();
	unsigned i;
	int rc;

	text = malloc(b->o.size + 1);
	if (!text) {
		fail(b, "out of memory");
		return;
	}
	memset(text, 'x', b->o.size);
	snprintf(text, HDR_LEN + 1, HDR_FMT, t0, seq);
	text[HDR_LEN] = 'x'; /* snprintf's NUL */
	text[b->o.size] = '\0';
	b->sends++;
	if (b->o.attach && b->phase != PH_PRIME) {
		struct bv_client_file f = {.data = b->file,
					   .len = b->o.attach,
					   .type = "application/pdf",
					   .name = "bench.pdf"};

		rc = bv_client_send_attachments(p->snd, p->conv, text, NULL,
						NULL, -1, &f, 1, mid);
	} else {
		rc = bv_client_send_text(p->snd, p->conv, text, mid);
	}
	free(text);
	if (rc < 0) {
		b->send_refused++;
		count_error(b, rc);
		return;
	}
	p->inflight++;
	for (i = 0; i < MAX_INFLIGHT; i++)
		if (!p->slot[i].t0) {
			memcpy(p->slot[i].mid, mid, sizeof(mid));
			p->slot[i].t0 = t0;
			break;
		}
}

static int
sending(const struct bench *b)
{
	return b->phase == PH_WARMUP || b->phase == PH_MEASURE;
}

/* 1 when a text sent at t0 was sent inside the measured window. */
static int
in_window(const struct bench *b, uint64_t t0)
{
	if (b->phase == PH_MEASURE)
		return t0 >= b->t_measure;
	if (b->phase == PH_DRAIN)
		return t0 >= b->t_measure && t0 < b->t_measure_end;
	return 0;
}

/* Keeps K texts in flight (not in rate mode). */
static void
pump(struct pair *p)
{
	if (p->b->o.rate > 0)
		return;
	while (!p->b->failed && sending(p->b) && p->inflight < p->b->o.inflight)
		send_one(p);
}

/* Rate mode: sends every text that has fallen due, round-robin over the
 * senders. A text due while its sender has MAX_INFLIGHT outstanding is
 * counted and skipped (the relay would refuse more). */
static void
pace(struct bench *b, uint64_t now)
{
	uint64_t step = (uint64_t)((double)NS_PER_S / b->o.rate);
	struct pair *p;

	while (!b->failed && sending(b) && b->next_due <= now) {
		p = &b->p[b->rr++ % b->o.pairs];
		if (p->inflight < MAX_INFLIGHT)
			send_one(p);
		else
			b->capped++;
		b->next_due += step;
	}
}

/* ------------------------------------------------------------ callbacks */

static void
on_status(struct bv_client *c, void *user, enum bv_client_status st, int code)
{
	struct pair *p = user;
	struct bench *b = p->b;

	switch (st) {
	case BV_CLIENT_ENROLLED:
		if (c == p->snd && !p->snd_enrolled++)
			b->enrolled++;
		if (c == p->rcv && !p->rcv_enrolled++)
			b->enrolled++;
		break;
	case BV_CLIENT_OFFLINE:
		if (b->phase != PH_DONE)
			fail(b, "pair %u: a client went offline (%d)", p->idx,
			     code);
		break;
	case BV_CLIENT_REFUSED:
	case BV_CLIENT_DISPLACED:
		fail(b, "pair %u: %s (%s)", p->idx,
		     st == BV_CLIENT_REFUSED ? "enrollment refused"
					     : "displaced",
		     bv_client_strerror(code));
		break;
	default:
		break;
	}
}

static void
on_error(struct bv_client *c, void *user, int code, const char *message_id,
	 const char *what)
{
	struct pair *p = user;

	(void)c;
	(void)message_id;
	(void)what;
	count_error(p->b, code);
}

static void
on_sent(struct bv_client *c, void *user, const char *message_id, int rc)
{
	struct pair *p = user;
	struct bench *b = p->b;
	unsigned i;

	(void)c;
	for (i = 0; i < MAX_INFLIGHT; i++)
		if (p->slot[i].t0 && !strcmp(p->slot[i].mid, message_id)) {
			if (rc == 0 && in_window(b, p->slot[i].t0))
				bench_sample_add(&b->sent,
						 bench_now_ns() -
							 p->slot[i].t0);
			p->slot[i].t0 = 0;
			break;
		}
	if (p->inflight)
		p->inflight--;
	if (rc == 0) {
		p->accepted++;
		b->accepted++;
	} else {
		b->failed_sends++;
	}
	pump(p);
}

static int
seen_mark(struct pair *p, uint32_t seq)
{
	size_t cap;
	uint8_t *v;

	if (seq >= p->seen_cap) {
		cap = p->seen_cap ? p->seen_cap : 1024;
		while (cap <= seq)
			cap *= 2;
		v = realloc(p->seen, cap);
		if (!v)
			return -1;
		memset(v + p->seen_cap, 0, cap - p->seen_cap);
		p->seen = v;
		p->seen_cap = cap;
	}
	if (p->seen[seq])
		return 1;
	p->seen[seq] = 1;
	return 0;
}

/* A text (or its file) sent at t0 with sequence seq arrived at now. */
static void
arrived(struct pair *p, uint64_t t0, uint32_t seq, uint64_t now)
{
	struct bench *b = p->b;

	if (seen_mark(p, seq)) {
		b->duplicates++;
		return;
	}
	p->received++;
	b->received++;
	if (seq < p->max_seq_seen)
		b->reordered++;
	else
		p->max_seq_seen = seq;
	if (b->phase == PH_PRIME && seq == 1) {
		bench_sample_add(&b->prime, now - t0);
		b->primed++;
		return;
	}
	/* Throughput: what arrives in the window. Latency: every text
	 * sent in the window, also when it arrives during the drain. */
	if (b->phase == PH_MEASURE)
		b->win_received++;
	if (in_window(b, t0))
		bench_sample_add(&b->lat, now - t0);
}

/* The header of a text: its send time and sequence; -1 when not ours. */
static int
header(struct bench *b, const char *text, size_t len, uint64_t *t0,
       uint32_t *seq)
{
	if (len < HDR_LEN ||
	    sscanf(text, "%20" SCNu64 " %10" SCNu32, t0, seq) != 2) {
		count_error(b, BV_EFIELD);
		return -1;
	}
	return 0;
}

static void
on_message(struct bv_client *c, void *user, const char *conversation,
	   const char *sender, uint32_t sender_device, const char *message_id,
	   int64_t time_ms, const char *text, size_t text_len)
{
	struct pair *p = user;
	uint64_t now = bench_now_ns(), t0;
	uint32_t seq;

	(void)c;
	(void)conversation;
	(void)sender;
	(void)sender_device;
	(void)message_id;
	(void)time_ms;
	if (header(p->b, text, text_len, &t0, &seq) == 0)
		arrived(p, t0, seq, now);
}

/* --attach: what a fetch needs to account for its text when it ends. */
struct fetch {
	struct pair *p;
	uint64_t t0;
	uint32_t seq;
};

static void
on_fetched(struct bv_client *c, void *arg, const char *message_id, int index,
	   int rc, const char *path, const uint8_t *data, size_t len)
{
	struct fetch *f = arg;

	(void)c;
	(void)message_id;
	(void)index;
	(void)path;
	(void)data;
	if (rc < 0)
		count_error(f->p->b, rc);
	else if (len != f->p->b->o.attach)
		count_error(f->p->b, BV_EFIELD);
	else
		arrived(f->p, f->t0, f->seq, bench_now_ns());
	free(f);
}

/* --attach: a text with its file arrives when the file is fetched. */
static void
on_message_ex(struct bv_client *c, void *user,
	      const struct bv_client_message *m)
{
	struct pair *p = user;
	struct fetch *f;
	uint64_t t0;
	uint32_t seq;
	int rc;

	if (m->outgoing || header(p->b, m->text, m->text_len, &t0, &seq) < 0)
		return;
	if (!m->n_attachments) {
		arrived(p, t0, seq, bench_now_ns());
		return;
	}
	f = malloc(sizeof(*f));
	if (!f) {
		fail(p->b, "out of memory");
		return;
	}
	*f = (struct fetch){p, t0, seq};
	rc = bv_client_attachment_fetch(c, m->message_id, 0, NULL, on_fetched,
					f);
	if (rc < 0) {
		count_error(p->b, rc);
		free(f);
	}
}

/* ------------------------------------------------------------ phases */

static void
snapshot(struct bench *b, int end)
{
	unsigned long long t;

	getrusage(RUSAGE_SELF, end ? &b->ru1 : &b->ru0);
	if (bench_proc_ticks(b->o.relay_pid, 0, &t) == 0) {
		*(end ? &b->relay1 : &b->relay0) = t;
		b->relay_ok = end ? b->relay_ok : 1;
	} else {
		b->relay_ok = 0;
	}
	if (bench_proc_ticks(b->o.db_pid, 1, &t) == 0) {
		*(end ? &b->db1 : &b->db0) = t;
		b->db_ok = end ? b->db_ok : 1;
	} else {
		b->db_ok = 0;
	}
}

static int
drained(const struct bench *b)
{
	unsigned i;

	for (i = 0; i < b->o.pairs; i++)
		if (b->p[i].inflight || b->p[i].received < b->p[i].accepted)
			return 0;
	return 1;
}

static void
enter(struct bench *b, enum phase ph, uint64_t now)
{
	unsigned i;

	b->phase = ph;
	b->t_phase = now;
	switch (ph) {
	case PH_PRIME:
		for (i = 0; i < b->o.pairs; i++)
			send_one(&b->p[i]);
		break;
	case PH_WARMUP:
		b->next_due = now;
		for (i = 0; i < b->o.pairs; i++)
			pump(&b->p[i]);
		break;
	case PH_MEASURE:
		b->t_measure = now;
		snapshot(b, 0);
		break;
	case PH_DRAIN:
		b->t_measure_end = now;
		snapshot(b, 1);
		break;
	case PH_DONE:
		uv_stop(&b->loop);
		break;
	default:
		break;
	}
}

/* `bvchat-relay --database DB admin ARGS…`; its first line of output
 * into out. Returns 0 or -1. Blocking: only while setting up. */
static int
admin(struct bench *b, char *out, size_t cap, const char *const *args)
{
	const char *argv[24] = {b->o.relay_bin, "--database", b->o.database,
				"admin"};
	int fd[2], status = 0, n = 4, i;
	ssize_t got = 0, r;
	pid_t pid;

	for (i = 0; args[i] && n < 23; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	if (pipe(fd) < 0)
		return -1;
	pid = fork();
	if (pid < 0) {
		close(fd[0]);
		close(fd[1]);
		return -1;
	}
	if (pid == 0) {
		dup2(fd[1], 1);
		close(fd[0]);
		close(fd[1]);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(fd[1]);
	while (cap && (size_t)got < cap - 1 &&
	       (r = read(fd[0], out + got, cap - 1 - (size_t)got)) > 0)
		got += r;
	close(fd[0]);
	if (cap) {
		out[got] = '\0';
		out[strcspn(out, "\n")] = '\0';
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* Each pair a case: the receiver a child, the sender its caseworker,
 * one team conversation (once, when every device is enrolled). */
static int
cases_setup(struct bench *b)
{
	static int done;
	char case_id[64], number[32];
	unsigned i;

	if (done)
		return 0;
	for (i = 0; i < b->o.pairs; i++) {
		struct pair *p = &b->p[i];
		const char *snd = bv_client_account(p->snd);
		const char *rcv = bv_client_account(p->rcv);
		const char *cc[] = {"case-create",   "--tenant", b->tenant,
				    "--case-number", number,	 NULL};
		const char *r1[] = {
			"roster-add", "--case", case_id,  "--account", rcv,
			"--role",     "child",	"--name", "Barn",      NULL};
		const char *r2[] = {"roster-add", "--case", case_id,
				    "--account",  snd,	    "--role",
				    "caseworker", "--name", "Saksbehandler",
				    NULL};
		const char *cv[] = {"conversation-create",
				    "--case",
				    case_id,
				    "--by",
				    rcv,
				    "--kind",
				    "team",
				    "--members",
				    rcv,
				    NULL};

		snprintf(number, sizeof(number), "bench/%u-%u",
			 (unsigned)getpid(), i);
		if (admin(b, case_id, sizeof(case_id), cc) < 0 ||
		    admin(b, NULL, 0, r1) < 0 || admin(b, NULL, 0, r2) < 0 ||
		    admin(b, p->conv, sizeof(p->conv), cv) < 0) {
			fail(b, "pair %u: cannot set up its case (%s admin)", i,
			     b->o.relay_bin);
			return -1;
		}
	}
	done = 1;
	return 0;
}

static void
tick(uv_timer_t *t)
{
	struct bench *b = t->data;
	uint64_t now = bench_now_ns(), in = now - b->t_phase;

	if (b->o.rate > 0)
		pace(b, now);

	switch (b->phase) {
	case PH_ENROLL:
		if (b->enrolled == 2 * b->o.pairs && cases_setup(b) == 0)
			enter(b, b->o.no_prime ? PH_WARMUP : PH_PRIME, now);
		else if (in > (uint64_t)(b->o.setup_timeout * NS_PER_S))
			fail(b, "%u of %u devices enrolled in %.0f s",
			     b->enrolled, 2 * b->o.pairs, b->o.setup_timeout);
		break;
	case PH_PRIME:
		if (b->primed == b->o.pairs && drained(b))
			enter(b, PH_WARMUP, now);
		else if (in > (uint64_t)(b->o.setup_timeout * NS_PER_S))
			fail(b, "%u of %u first texts arrived", b->primed,
			     b->o.pairs);
		break;
	case PH_WARMUP:
		if (in >= (uint64_t)(b->o.warmup * NS_PER_S))
			enter(b, PH_MEASURE, now);
		break;
	case PH_MEASURE:
		if (in >= (uint64_t)(b->o.duration * NS_PER_S))
			enter(b, PH_DRAIN, now);
		break;
	case PH_DRAIN:
		if (drained(b) || in > DRAIN_NS)
			enter(b, PH_DONE, now);
		break;
	case PH_DONE:
		uv_stop(&b->loop);
		break;
	}
}

static void
on_sigint(uv_signal_t *h, int signum)
{
	struct bench *b = h->data;

	(void)signum;
	fail(b, "interrupted");
}

/* ------------------------------------------------------------ report */

static void
report(struct bench *b)
{
	double win = (double)(b->t_measure_end - b->t_measure) / 1e9;
	double rate = win > 0 ? (double)b->win_received / win : 0;
	double n = b->win_received ? (double)b->win_received : 1;
	double self =
		bench_tv_s(&b->ru1.ru_utime) + bench_tv_s(&b->ru1.ru_stime) -
		bench_tv_s(&b->ru0.ru_utime) - bench_tv_s(&b->ru0.ru_stime);
	double relay = b->relay_ok ? bench_ticks_s(b->relay0, b->relay1) : -1;
	double db = b->db_ok ? bench_ticks_s(b->db0, b->db1) : -1;
	uint64_t lost =
		b->accepted > b->received ? b->accepted - b->received : 0;
	size_t i;

	bench_samples_sort(&b->lat);
	bench_samples_sort(&b->prime);
	bench_samples_sort(&b->sent);
	printf("bvchat-e2e-bench %s: %u pairs of bv_clients, %zu-byte texts, ",
	       b->o.label, b->o.pairs, b->o.size);
	if (b->o.attach)
		printf("each with a %zu-byte file, ", b->o.attach);
	if (b->o.rate > 0)
		printf("%.0f texts/s in all (at most %u in flight per "
		       "sender)\n",
		       b->o.rate, MAX_INFLIGHT);
	else
		printf("%u in flight per sender\n", b->o.inflight);
	printf("  stores           %s\n", b->o.dir);
	if (b->prime.n)
		printf("  first text ms    p50 %.3f  max %.3f  (keys_get, "
		       "X3DH, PreKey message; %zu pairs)\n",
		       bench_pct_ms(&b->prime, 50),
		       bench_pct_ms(&b->prime, 100), b->prime.n);
	printf("  window           %.2f s measured after %.1f s warm-up\n", win,
	       b->o.warmup);
	printf("  texts/s          %.0f (delivered and decrypted)\n", rate);
	if (b->o.attach)
		printf("  files            %.1f MB/s (uploaded, sent, fetched "
		       "and decrypted; latency below is send -> fetched)\n",
		       rate * (double)b->o.attach / 1e6);
	printf("  latency ms       p50 %.3f  p90 %.3f  p99 %.3f  max %.3f  "
	       "(send_text -> on_message, %zu samples)\n",
	       bench_pct_ms(&b->lat, 50), bench_pct_ms(&b->lat, 90),
	       bench_pct_ms(&b->lat, 99), bench_pct_ms(&b->lat, 100), b->lat.n);
	printf("  sent ms          p50 %.3f  p99 %.3f  (send_text -> "
	       "bv_sent_cb: stored by the relay)\n",
	       bench_pct_ms(&b->sent, 50), bench_pct_ms(&b->sent, 99));
	printf("  bench CPU        %.1f us/text (both ends, %.0f%% of one "
	       "core)\n",
	       self * 1e6 / n, win > 0 ? 100 * self / win : 0);
	if (relay >= 0)
		printf("  relay CPU        %.1f us/text\n", relay * 1e6 / n);
	if (db >= 0)
		printf("  PostgreSQL CPU   %.1f us/text\n", db * 1e6 / n);
	printf("  totals           sends %" PRIu64 ", refused %" PRIu64
	       ", accepted %" PRIu64 ", failed %" PRIu64 ", received %" PRIu64
	       ", duplicates %" PRIu64 ", lost %" PRIu64
	       ", out of order %" PRIu64 ", skipped %" PRIu64 "\n",
	       b->sends, b->send_refused, b->accepted, b->failed_sends,
	       b->received, b->duplicates, lost, b->reordered, b->capped);
	printf("  errors          ");
	for (i = 0; i < b->n_errs; i++)
		printf(" %s %lu", bv_client_strerror(b->errs[i].code),
		       b->errs[i].n);
	printf("%s\n", b->n_errs ? "" : " none");
	if (!b->o.json)
		return;
	printf("{\"label\":\"%s\",\"ok\":%s,\"pairs\":%u,\"inflight\":%u,"
	       "\"rate\":%.1f,"
	       "\"size\":%zu,\"attach\":%zu,\"att_mb_per_s\":%.2f,"
	       "\"window_s\":%.3f,\"msgs_per_s\":%.1f,"
	       "\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,"
	       "\"max_ms\":%.3f,\"sent_p50_ms\":%.3f,\"sent_p99_ms\":%.3f,"
	       "\"first_text_p50_ms\":%.3f,"
	       "\"bench_cpu_us_per_msg\":%.1f,\"relay_cpu_us_per_msg\":%.1f,"
	       "\"db_cpu_us_per_msg\":%.1f,\"sends\":%" PRIu64
	       ",\"accepted\":%" PRIu64 ",\"received\":%" PRIu64
	       ",\"lost\":%" PRIu64 ",\"duplicates\":%" PRIu64
	       ",\"out_of_order\":%" PRIu64 ",\"errors\":%zu}\n",
	       b->o.label, b->failed || lost ? "false" : "true", b->o.pairs,
	       b->o.inflight, b->o.rate, b->o.size, b->o.attach,
	       rate * (double)b->o.attach / 1e6, win, rate,
	       bench_pct_ms(&b->lat, 50), bench_pct_ms(&b->lat, 90),
	       bench_pct_ms(&b->lat, 99), bench_pct_ms(&b->lat, 100),
	       bench_pct_ms(&b->sent, 50), bench_pct_ms(&b->sent, 99),
	       bench_pct_ms(&b->prime, 50), self * 1e6 / n,
	       relay >= 0 ? relay * 1e6 / n : -1, db >= 0 ? db * 1e6 / n : -1,
	       b->sends, b->accepted, b->received, lost, b->duplicates,
	       b->reordered, b->n_errs);
}

/* ------------------------------------------------------------ setup */

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: bvchat-e2e-bench --url HOST:PORT --key FILE "
		"[options]\n"
		"\n"
		"Drives sender/receiver pairs of libbvchat clients through a\n"
		"bvchat-relay with real end-to-end encryption and reports\n"
		"texts/s delivered and decrypted and the latency from\n"
		"bv_client_send_text() to the receiver's on_message. Every "
		"run\n"
		"enrolls 2 x pairs new accounts in the relay's database. "
		"Start\n"
		"the relay with --sends_per_minute 0.\n"
		"\n"
		"  --url HOST:PORT     the relay (127.0.0.1:8480)\n"
		"  --key FILE          tenant key file from admin "
		"tenant-create\n"
		"  --database CONNINFO the relay's database: each pair "
		"becomes a case\n"
		"                      (bvchat-relay admin)\n"
		"  --relay-bin PATH    bvchat-relay (found in PATH)\n"
		"  --pairs N           sender/receiver pairs (10)\n"
		"  --inflight K        texts in flight per sender (10)\n"
		"  --rate R            instead: R texts/s in all, round-robin\n"
		"                      over the senders (latency at a given\n"
		"                      load)\n"
		"  --size BYTES        text size, 32 ... 8192 (100)\n"
		"  --attach BYTES      every text after the first carries a\n"
		"                      random file of BYTES, uploaded, then\n"
		"                      fetched and decrypted by the receiver\n"
		"                      (arrival counts once it is fetched)\n"
		"  --duration S        measured seconds (10)\n"
		"  --warmup S          unmeasured seconds first (2)\n"
		"  --setup-timeout S   give up enrolling after S s (60)\n"
		"  --dir DIR           where the stores go ($TMPDIR or /tmp);\n"
		"                      removed afterwards\n"
		"  --no-prime          start with K texts in flight, without\n"
		"                      one first text per pair\n"
		"  --relay-pid PID     read the relay's CPU from /proc\n"
		"  --db-pid PID        postmaster: PostgreSQL's CPU (and its\n"
		"                      children's)\n"
		"  --label TEXT        name of the run in the report\n"
		"  --json              also print one JSON result line\n");
}

static int
parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{"url", required_argument, NULL, 'u'},
		{"key", required_argument, NULL, 'k'},
		{"pairs", required_argument, NULL, 'p'},
		{"inflight", required_argument, NULL, 'i'},
		{"rate", required_argument, NULL, 'r'},
		{"size", required_argument, NULL, 's'},
		{"attach", required_argument, NULL, 'a'},
		{"duration", required_argument, NULL, 'd'},
		{"warmup", required_argument, NULL, 'w'},
		{"setup-timeout", required_argument, NULL, 'T'},
		{"dir", required_argument, NULL, 'D'},
		{"no-prime", no_argument, NULL, 'P'},
		{"relay-pid", required_argument, NULL, 'R'},
		{"db-pid", required_argument, NULL, 'B'},
		{"label", required_argument, NULL, 'l'},
		{"json", no_argument, NULL, 'j'},
		{"database", required_argument, NULL, 'b'},
		{"relay-bin", required_argument, NULL, 'x'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	double v;
	int ch;

	memset(o, 0, sizeof(*o));
	snprintf(o->host, sizeof(o->host), "127.0.0.1");
	o->port = 8480;
	o->dir = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR")
						       : "/tmp";
	o->pairs = 10;
	o->inflight = 10;
	o->size = 100;
	o->duration = 10;
	o->warmup = 2;
	o->setup_timeout = 60;
	o->label = "e2e";
	o->relay_bin = "bvchat-relay";
	while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (ch) {
		case 'u':
			if (bench_parse_url(optarg, o->host, sizeof(o->host),
					    &o->port) < 0)
				goto bad;
			break;
		case 'k':
			o->key = optarg;
			break;
		case 'p':
			if (bench_num(optarg, 1, 1000, &v) < 0)
				goto bad;
			o->pairs = (unsigned)v;
			break;
		case 'i':
			if (bench_num(optarg, 1, MAX_INFLIGHT, &v) < 0)
				goto bad;
			o->inflight = (unsigned)v;
			break;
		case 'r':
			if (bench_num(optarg, 0.1, 100000, &o->rate) < 0)
				goto bad;
			break;
		case 's':
			if (bench_num(optarg, HDR_LEN, BV_CLIENT_TEXT_MAX, &v) <
			    0)
				goto bad;
			o->size = (size_t)v;
			break;
		case 'a':
			if (bench_num(optarg, 1, BV_CLIENT_ATTACHMENT_MAX, &v) <
			    0)
				goto bad;
			o->attach = (size_t)v;
			break;
		case 'd':
			if (bench_num(optarg, 0.1, 600, &o->duration) < 0)
				goto bad;
			break;
		case 'w':
			if (bench_num(optarg, 0, 600, &o->warmup) < 0)
				goto bad;
			break;
		case 'T':
			if (bench_num(optarg, 1, 3600, &o->setup_timeout) < 0)
				goto bad;
			break;
		case 'D':
			o->dir = optarg;
			break;
		case 'P':
			o->no_prime = 1;
			break;
		case 'R':
			if (bench_num(optarg, 1, 4194304, &v) < 0)
				goto bad;
			o->relay_pid = (pid_t)v;
			break;
		case 'B':
			if (bench_num(optarg, 1, 4194304, &v) < 0)
				goto bad;
			o->db_pid = (pid_t)v;
			break;
		case 'l':
			/* It goes into JSON unescaped: keep it plain. */
			if (strpbrk(optarg, "\"\\") || strlen(optarg) > 64)
				goto bad;
			o->label = optarg;
			break;
		case 'j':
			o->json = 1;
			break;
		case 'b':
			o->database = optarg;
			break;
		case 'x':
			o->relay_bin = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			goto bad;
		}
	}
	if (optind != argc || !o->key || !o->database)
		goto bad;
	return 0;
bad:
	usage(stderr);
	return -1;
}

/* A new client on the bench's loop, enrolling with a fresh token for a
 * new account. */
static int
client_start(struct bench *b, struct pair *p, const char *path,
	     struct bv_client **out)
{
	struct bv_client_opts o;
	uint8_t key[BV_CLIENT_STORE_KEY_LEN];
	struct bv_token t;
	char *tok = NULL;
	int rc;

	randombytes_buf(key, sizeof(key));
	memset(&o, 0, sizeof(o));
	o.store_path = path;
	o.store_key = key;
	o.relay_host = b->o.host;
	o.relay_port = b->o.port;
	o.loop = &b->loop;
	o.on_status = on_status;
	if (b->o.attach)
		o.on_message_ex = on_message_ex;
	else
		o.on_message = on_message;
	o.on_error = on_error;
	o.on_sent = on_sent;
	o.user = p;
	rc = bv_client_new(&o, out);
	bv_wipe(key, sizeof(key));
	if (rc < 0)
		return rc;
	memset(&t, 0, sizeof(t));
	memcpy(t.tenant, b->tenant, sizeof(t.tenant));
	randombytes_buf(t.jti, sizeof(t.jti));
	t.exp = bv_now_s() + TOKEN_TTL_S;
	rc = bv_token_sign(&t, b->tsk, &tok);
	if (rc == 0)
		rc = bv_client_enroll(*out, tok);
	if (tok) {
		bv_wipe(tok, strlen(tok));
		bv_free(tok);
	}
	return rc;
}

/* Runs the loop until nothing is left to run, at most 5 s. */
static void
run_down(struct bench *b)
{
	uint64_t deadline = bench_now_ns() + 5 * NS_PER_S;

	while (uv_run(&b->loop, UV_RUN_NOWAIT) && bench_now_ns() < deadline)
		;
}

int
main(int argc, char **argv)
{
	struct bench *b = calloc(1, sizeof(*b));
	unsigned i;
	int rc = 1;

	if (!b)
		return 1;
	if (parse_args(argc, argv, &b->o) < 0) {
		free(b);
		return 2;
	}
	if (sodium_init() < 0 || bench_read_key("bvchat-e2e-bench", b->o.key,
						b->tenant, b->tsk) < 0) {
		free(b);
		return 1;
	}
	snprintf(b->dir, sizeof(b->dir), "%s/bvchat-e2e-bench.XXXXXX",
		 b->o.dir);
	if (!mkdtemp(b->dir)) {
		fprintf(stderr, "bvchat-e2e-bench: cannot create %s: %s\n",
			b->dir, strerror(errno));
		free(b);
		return 1;
	}
	b->p = calloc(b->o.pairs, sizeof(*b->p));
	if (b->o.attach) {
		b->file = malloc(b->o.attach);
		if (b->file)
			randombytes_buf(b->file, b->o.attach);
	}
	if (!b->p || (b->o.attach && !b->file) || uv_loop_init(&b->loop) != 0)
		goto out;
	b->loop_ok = 1;
	signal(SIGPIPE, SIG_IGN);
	uv_timer_init(&b->loop, &b->tick);
	b->tick.data = b;
	uv_signal_init(&b->loop, &b->sigint);
	b->sigint.data = b;
	uv_signal_start(&b->sigint, on_sigint, SIGINT);
	b->t_phase = bench_now_ns();
	for (i = 0; i < b->o.pairs && !b->failed; i++) {
		struct pair *p = &b->p[i];

		p->b = b;
		p->idx = i;
		snprintf(p->snd_path, sizeof(p->snd_path), "%s/s%u.db", b->dir,
			 i);
		snprintf(p->rcv_path, sizeof(p->rcv_path), "%s/r%u.db", b->dir,
			 i);
		rc = client_start(b, p, p->rcv_path, &p->rcv);
		if (rc == 0)
			rc = client_start(b, p, p->snd_path, &p->snd);
		if (rc < 0)
			fail(b, "pair %u: cannot start a client: %s", i,
			     bv_client_strerror(rc));
	}
	if (!b->failed) {
		uv_timer_start(&b->tick, tick, TICK_MS, TICK_MS);
		uv_run(&b->loop, UV_RUN_DEFAULT);
	}
	if (!b->failed && b->phase == PH_DONE)
		report(b);
	if (b->failed)
		fprintf(stderr, "bvchat-e2e-bench: %s\n", b->fail_msg);
	rc = b->failed ? 1 : 0;
out:
	/*
	 * As bvchat.h asks for a borrowed loop: close every client, run the
	 * loop until their handles are closed, then free them. Only our own
	 * handles are closed here; the clients close theirs.
	 */
	for (i = 0; b->p && i < b->o.pairs; i++) {
		bv_client_close(b->p[i].snd);
		bv_client_close(b->p[i].rcv);
	}
	if (b->loop_ok) {
		uv_close((uv_handle_t *)&b->tick, NULL);
		uv_close((uv_handle_t *)&b->sigint, NULL);
		run_down(b);
	}
	for (i = 0; b->p && i < b->o.pairs; i++) {
		bv_client_free(b->p[i].snd);
		bv_client_free(b->p[i].rcv);
		free(b->p[i].seen);
	}
	if (b->loop_ok)
		run_down(b);
	if (b->loop_ok)
		uv_loop_close(&b->loop);
	bench_remove_dir(b->dir);
	bv_wipe(b->tsk, sizeof(b->tsk));
	free(b->lat.v);
	free(b->sent.v);
	free(b->prime.v);
	free(b->p);
	free(b->file);
	free(b);
	return rc;
}
