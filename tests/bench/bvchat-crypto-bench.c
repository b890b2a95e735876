/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * bvchat-crypto-bench.c: what libbvchat's end-to-end layer costs one device,
 * without a relay: session set-up (bundle, first PreKey message, its
 * decryption), per-message encrypt and decrypt by text size, fan-out to N
 * devices, and the durable receive path (seen + decrypt + history, one
 * fsynced transaction). Real SQLite stores in a temporary directory that is
 * removed afterwards, real libsignal. Wall and CPU time per operation, so
 * disk waits show. It measures; it asserts nothing (docs/performance.md).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/statfs.h>
#include <sodium.h>

#include "bench_util.h"
#include "bv_error.h"
#include "bv_util.h"
#include "content.h"
#include "crypto.h"
#include "session.h"
#include "store.h"

#define SENDER	     "11111111-1111-4111-8111-111111111111"
#define CONV	     "33333333-3333-4333-8333-333333333333"
#define MAX_LIST     8	/* sizes or fan-outs given on the command line */
#define MAX_SERIES   64 /* rows of the report */
#define MAX_DEVICES  100
#define DISK_SAMPLES 50
#define DISK_BYTES   4096
#define SETUP_TEXT   100 /* bytes of the first (PreKey) message */

struct opts {
	const char *dir; /* parent of the scratch directory */
	unsigned setups;
	unsigned messages; /* per size, per series */
	unsigned fan_messages;
	size_t sizes[MAX_LIST];
	size_t n_sizes;
	size_t fanouts[MAX_LIST];
	size_t n_fanouts;
	const char *label;
	int json;
};

/* Wall and CPU time of one kind of operation, in ns per sample. */
struct series {
	char name[32];
	unsigned per; /* devices per operation (fan-out), else 1 */
	size_t n, cap;
	uint64_t *wall;
	uint64_t *cpu;
};

struct stamp {
	uint64_t wall;
	uint64_t cpu;
};

/* One device with its own store, as a separate install would have. */
struct party {
	char account[BV_UUID_LEN + 1];
	uint32_t device;
	char path[600];
	struct bv_store *st;
	struct bv_session *s;
};

struct bench {
	struct opts o;
	char dir[512];
	char fstype[16];
	signal_context *ctx;
	struct party sender;
	struct party *rcpt;
	size_t n_rcpt;
	unsigned long long next_id;
	char *text; /* the largest size, of which prefixes are sent */
	struct series series[MAX_SERIES];
	size_t n_series;
};

/* ------------------------------------------------------------ samples */

static uint64_t
clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void
stamp_now(struct stamp *s)
{
	s->wall = clock_ns(CLOCK_MONOTONIC);
	s->cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

static struct series *
series_get(struct bench *b, const char *name, unsigned per)
{
	size_t i;

	for (i = 0; i < b->n_series; i++)
		if (!strcmp(b->series[i].name, name))
			return &b->series[i];
	if (b->n_series == MAX_SERIES)
		return NULL;
	i = b->n_series++;
	snprintf(b->series[i].name, sizeof(b->series[i].name), "%s", name);
	b->series[i].per = per;
	return &b->series[i];
}

/* Adds the time since a (or wall, cpu when a is NULL) to the series. */
static int
series_add(struct series *s, const struct stamp *a, uint64_t wall, uint64_t cpu)
{
	struct stamp z;

	if (!s)
		return BV_ENOMEM;
	if (a) {
		stamp_now(&z);
		wall = z.wall - a->wall;
		cpu = z.cpu - a->cpu;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		uint64_t *w = realloc(s->wall, cap * sizeof(*w));
		uint64_t *c;

		if (!w)
			return BV_ENOMEM;
		s->wall = w;
		c = realloc(s->cpu, cap * sizeof(*c));
		if (!c)
			return BV_ENOMEM;
		s->cpu = c;
		s->cap = cap;
	}
	s->wall[s->n] = wall;
	s->cpu[s->n] = cpu;
	s->n++;
	return 0;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v (n > 0), in µs. */
static double
pct_us(const uint64_t *v, size_t n, double p)
{
	return (double)v[bench_rank(n, p)] / 1000.0;
}

/* ------------------------------------------------------------ parties */

static int
party_open(struct bench *b, struct party *p, const char *account,
	   uint32_t device, unsigned n)
{
	uint8_t key[BV_STORE_KEY_LEN];
	int rc;

	snprintf(p->account, sizeof(p->account), "%s", account);
	p->device = device;
	snprintf(p->path, sizeof(p->path), "%s/device-%u.db", b->dir, n);
	randombytes_buf(key, sizeof(key));
	rc = bv_store_open(p->path, key, &p->st);
	bv_wipe(key, sizeof(key));
	if (rc < 0)
		return rc;
	return bv_session_new(p->st, b->ctx, p->account, p->device, &p->s);
}

static void
party_close(struct party *p)
{
	bv_session_free(p->s);
	bv_store_close(p->st);
	p->s = NULL;
	p->st = NULL;
}

/* What the relay would hand out for p: a fresh signed prekey and one
 * one-time prekey, stored by p as its upload would have. */
static int
bundle_of(struct party *p, struct bv_wire_bundle *bd)
{
	struct bv_session_keys *k = NULL;
	int rc;

	memset(bd, 0, sizeof(*bd));
	rc = bv_session_keys_new(p->s, 1, 1, &k);
	if (rc < 0)
		return rc;
	bd->device = p->device;
	rc = bv_session_identity(p->s, bd->identity_key, &bd->registration_id);
	if (rc == 0) {
		bd->signed_prekey = k->signed_prekey;
		memcpy(bd->signed_prekey_signature, k->signed_prekey_signature,
		       BV_SIG_LEN);
		bd->has_one_time_prekey = 1;
		bd->one_time_prekey = k->one_time[0];
	}
	bv_session_keys_free(k);
	return rc;
}

static int
text_new(struct bench *b, size_t len, struct bv_content **out)
{
	char mid[32];

	snprintf(mid, sizeof(mid), "b%llu", ++b->next_id);
	return bv_content_text_new(CONV, mid, bv_now_ms(), b->text, len, out);
}

/* The envelope as delivered to the recipient (message id from content). */
static struct bv_session_envelope
env_of(const struct party *from, const struct bv_content *c,
       const struct bv_wire_envelope *e)
{
	struct bv_session_envelope v;

	memset(&v, 0, sizeof(v));
	v.sender = from->account;
	v.sender_device = from->device;
	v.message_id = c->message_id;
	v.type = e->type;
	v.timestamp_ms = bv_now_ms();
	v.body = e->body;
	v.body_len = e->body_len;
	return v;
}

/* Encrypts c from `from` to the n devices of to (timed into enc, may be
 * NULL); *out on success. */
static int
encrypt_to(struct party *from, struct party *const *to, size_t n,
	   const struct bv_content *c, struct series *enc,
	   struct bv_session_outgoing **out)
{
	struct bv_session_recipient r[MAX_DEVICES];
	struct stamp a;
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		r[i].account = to[i]->account;
		r[i].device = to[i]->device;
		r[i].registration_id = 0;
	}
	stamp_now(&a);
	rc = bv_session_encrypt(from->s, c, r, n, out);
	if (rc == 0 && enc)
		rc = series_add(enc, &a, 0, 0);
	return rc;
}

/* Decrypts (durable: bv_session_receive) at to, timed into dec. */
static int
decrypt_at(struct party *to, const struct bv_session_envelope *v, int durable,
	   struct series *dec)
{
	enum bv_session_result res = BV_SESSION_UNDECRYPTABLE;
	struct bv_content *c = NULL;
	struct stamp a;
	int rc;

	stamp_now(&a);
	if (durable)
		rc = bv_session_receive(to->s, v, &res, &c, NULL);
	else
		rc = bv_session_decrypt(to->s, v, &res, &c);
	if (rc == 0 && dec)
		rc = series_add(dec, &a, 0, 0);
	bv_content_free(c);
	if (rc == 0 && res != BV_SESSION_OK) {
		fprintf(stderr, "bvchat-crypto-bench: %s not decrypted (%d)\n",
			v->message_id, (int)res);
		rc = BV_EINTERNAL;
	}
	return rc;
}

/* ------------------------------------------------------------ phases */

/* write + fdatasync of one page in the scratch directory: the floor of
 * every durable store operation. */
static int
disk_probe(struct bench *b)
{
	struct series *s = series_get(b, "disk.fdatasync_4k", 1);
	char path[600];
	uint8_t page[DISK_BYTES];
	struct stamp a;
	int fd, i, rc = 0;

	snprintf(path, sizeof(path), "%s/probe", b->dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return BV_EIO;
	memset(page, 0x5a, sizeof(page));
	for (i = 0; i < DISK_SAMPLES && rc == 0; i++) {
		stamp_now(&a);
		if (pwrite(fd, page, sizeof(page), 0) !=
			    (ssize_t)sizeof(page) ||
		    fdatasync(fd) < 0)
			rc = BV_EIO;
		else
			rc = series_add(s, &a, 0, 0);
	}
	close(fd);
	unlink(path);
	return rc;
}

/*
 * One session set-up with r: the sender processes r's bundle (X3DH),
 * encrypts the first (PreKey) message and r decrypts it. r's key generation
 * is its upload, made before, and is not counted. Timed when timed is set.
 */
static int
setup_one(struct bench *b, struct party *r, int timed)
{
	struct series *sb = NULL, *se = NULL, *sd = NULL, *st = NULL;
	struct bv_session_outgoing *o = NULL;
	struct bv_content *c = NULL;
	struct bv_session_envelope v;
	struct bv_wire_bundle bd;
	enum bv_trust trust;
	struct stamp a;
	int rc;

	if (timed) {
		sb = series_get(b, "setup.bundle", 1);
		se = series_get(b, "setup.encrypt_prekey", 1);
		sd = series_get(b, "setup.decrypt_prekey", 1);
		st = series_get(b, "setup.total", 1);
		if (!sb || !se || !sd || !st)
			return BV_ENOMEM;
	}
	rc = bundle_of(r, &bd);
	if (rc < 0)
		return rc;
	stamp_now(&a);
	rc = bv_session_process_bundles(b->sender.s, r->account, &bd, 1,
					&trust);
	if (rc == 0 && trust == BV_TRUST_CHANGED)
		rc = BV_EINTERNAL;
	if (rc == 0 && sb)
		rc = series_add(sb, &a, 0, 0);
	if (rc == 0)
		rc = text_new(b, SETUP_TEXT, &c);
	if (rc == 0)
		rc = encrypt_to(&b->sender, &r, 1, c, se, &o);
	if (rc == 0 && o->envs[0].type != 3)
		rc = BV_EINTERNAL;
	if (rc == 0) {
		v = env_of(&b->sender, c, &o->envs[0]);
		rc = decrypt_at(r, &v, 0, sd);
	}
	if (rc == 0 && st)
		rc = series_add(st, NULL,
				sb->wall[sb->n - 1] + se->wall[se->n - 1] +
					sd->wall[sd->n - 1],
				sb->cpu[sb->n - 1] + se->cpu[se->n - 1] +
					sd->cpu[sd->n - 1]);
	bv_session_outgoing_free(o);
	bv_content_free(c);
	return rc;
}

/*
 * o.setups timed set-ups over the recipients in turn (a repeated set-up
 * with the same recipient replaces the session, as a reinstall's bundle
 * does), then untimed ones for recipients not reached yet.
 */
static int
phase_setup(struct bench *b)
{
	size_t k;
	int rc = 0;

	for (k = 0; k < b->o.setups && rc == 0; k++)
		rc = setup_one(b, &b->rcpt[k % b->n_rcpt], 1);
	for (k = b->o.setups; k < b->n_rcpt && rc == 0; k++)
		rc = setup_one(b, &b->rcpt[k], 0);
	return rc;
}

/* Every recipient answers once, so the sender's sessions leave the PreKey
 * state and later messages are plain Signal messages (type 2). */
static int
phase_answer(struct bench *b)
{
	struct bv_session_outgoing *o = NULL;
	struct bv_content *c = NULL;
	struct bv_session_envelope v;
	struct party *to = &b->sender;
	size_t i;
	int rc = 0;

	for (i = 0; i < b->n_rcpt && rc == 0; i++) {
		rc = text_new(b, SETUP_TEXT, &c);
		if (rc == 0)
			rc = encrypt_to(&b->rcpt[i], &to, 1, c, NULL, &o);
		if (rc == 0) {
			v = env_of(&b->rcpt[i], c, &o->envs[0]);
			rc = decrypt_at(&b->sender, &v, 0, NULL);
		}
		bv_session_outgoing_free(o);
		bv_content_free(c);
		o = NULL;
		c = NULL;
	}
	return rc;
}

/*
 * Per-message cost by size, in the established session with the first
 * recipient: o.messages times encrypt + decrypt (bv_session_decrypt, what
 * the ratchet costs), then o.messages times encrypt + the durable receive.
 */
static int
phase_messages(struct bench *b, size_t size)
{
	struct bv_session_outgoing *o = NULL;
	struct bv_content *c = NULL;
	struct bv_session_envelope v;
	struct series *se, *sd, *sr;
	struct party *r = &b->rcpt[0];
	char name[32];
	unsigned k;
	int rc = 0;

	snprintf(name, sizeof(name), "encrypt.%zu", size);
	se = series_get(b, name, 1);
	snprintf(name, sizeof(name), "decrypt.%zu", size);
	sd = series_get(b, name, 1);
	snprintf(name, sizeof(name), "receive.%zu", size);
	sr = series_get(b, name, 1);
	if (!se || !sd || !sr)
		return BV_ENOMEM;
	for (k = 0; k < 2 * b->o.messages && rc == 0; k++) {
		rc = text_new(b, size, &c);
		if (rc == 0)
			rc = encrypt_to(&b->sender, &r, 1, c, se, &o);
		if (rc == 0 && o->envs[0].type != 2)
			rc = BV_EINTERNAL;
		if (rc == 0) {
			v = env_of(&b->sender, c, &o->envs[0]);
			if (k < b->o.messages)
				rc = decrypt_at(r, &v, 0, sd);
			else
				rc = decrypt_at(r, &v, 1, sr);
		}
		bv_session_outgoing_free(o);
		bv_content_free(c);
		o = NULL;
		c = NULL;
	}
	return rc;
}

/*
 * One 100-byte message to n devices: bv_session_encrypt as the library
 * calls it, then the same inside one store transaction (what the cost
 * would be if the library grouped a fan-out's session updates). Nobody
 * decrypts these; the recipients' sessions simply skip them.
 */
static int
phase_fanout(struct bench *b, size_t n)
{
	struct party *to[MAX_DEVICES];
	struct bv_session_outgoing *o = NULL;
	struct bv_content *c = NULL;
	struct series *sf, *sx;
	struct stamp a;
	char name[32];
	unsigned k;
	size_t i;
	int rc = 0, tx;

	for (i = 0; i < n; i++)
		to[i] = &b->rcpt[i];
	snprintf(name, sizeof(name), "fanout.%zu", n);
	sf = series_get(b, name, (unsigned)n);
	snprintf(name, sizeof(name), "fanout_in_tx.%zu", n);
	sx = series_get(b, name, (unsigned)n);
	if (!sf || !sx)
		return BV_ENOMEM;
	for (k = 0; k < 2 * b->o.fan_messages && rc == 0; k++) {
		tx = k >= b->o.fan_messages;
		rc = text_new(b, SETUP_TEXT, &c);
		if (rc < 0)
			break;
		stamp_now(&a);
		if (tx)
			rc = bv_store_begin(b->sender.st);
		if (rc == 0)
			rc = encrypt_to(&b->sender, to, n, c, NULL, &o);
		if (tx && rc == 0)
			rc = bv_store_commit(b->sender.st);
		else if (tx)
			bv_store_rollback(b->sender.st);
		if (rc == 0)
			rc = series_add(tx ? sx : sf, &a, 0, 0);
		bv_session_outgoing_free(o);
		bv_content_free(c);
		o = NULL;
		c = NULL;
	}
	return rc;
}

/* ------------------------------------------------------------ report */

static void
report(struct bench *b, double elapsed_s)
{
	struct series *s;
	size_t i;
	double p50, p90, p99, cpu;

	printf("bvchat-crypto-bench %s: %zu recipient devices, %u set-ups, "
	       "%u messages per size and kind, %u per fan-out\n",
	       b->o.label, b->n_rcpt, b->o.setups, b->o.messages,
	       b->o.fan_messages);
	printf("  stores           SQLite (WAL, synchronous=FULL) on %s in "
	       "%s\n",
	       b->fstype, b->o.dir);
	printf("  %-24s %7s %9s %9s %9s %9s %11s\n", "operation (us)", "n",
	       "p50", "p90", "p99", "cpu p50", "p50/device");
	for (i = 0; i < b->n_series; i++) {
		s = &b->series[i];
		if (!s->n)
			continue;
		qsort(s->wall, s->n, sizeof(*s->wall), cmp_u64);
		qsort(s->cpu, s->n, sizeof(*s->cpu), cmp_u64);
		p50 = pct_us(s->wall, s->n, 50);
		p90 = pct_us(s->wall, s->n, 90);
		p99 = pct_us(s->wall, s->n, 99);
		cpu = pct_us(s->cpu, s->n, 50);
		printf("  %-24s %7zu %9.1f %9.1f %9.1f %9.1f", s->name, s->n,
		       p50, p90, p99, cpu);
		if (s->per > 1)
			printf(" %11.1f", p50 / s->per);
		printf("\n");
	}
	printf("  elapsed          %.1f s\n", elapsed_s);
	if (!b->o.json)
		return;
	printf("{\"label\":\"%s\",\"ok\":true,\"fs\":\"%s\",\"elapsed_s\":%.3f,"
	       "\"ops\":{",
	       b->o.label, b->fstype, elapsed_s);
	for (i = 0; i < b->n_series; i++) {
		s = &b->series[i];
		if (!s->n)
			continue;
		printf("%s\"%s\":{\"n\":%zu,\"devices\":%u,\"p50_us\":%.1f,"
		       "\"p90_us\":%.1f,\"p99_us\":%.1f,\"cpu_p50_us\":%.1f}",
		       i ? "," : "", s->name, s->n, s->per,
		       pct_us(s->wall, s->n, 50), pct_us(s->wall, s->n, 90),
		       pct_us(s->wall, s->n, 99), pct_us(s->cpu, s->n, 50));
	}
	printf("}}\n");
}

/* ------------------------------------------------------------ setup */

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: bvchat-crypto-bench [options]\n"
		"\n"
		"Measures libbvchat's end-to-end layer on real SQLite stores\n"
		"in a temporary directory (removed afterwards), no relay:\n"
		"session set-up, encrypt/decrypt per size, fan-out, and the\n"
		"durable receive. Medians and p90/p99 in microseconds.\n"
		"\n"
		"  --dir DIR           where to make the scratch directory\n"
		"                      ($TMPDIR or /tmp): its disk is timed\n"
		"  --setups N          session set-ups (50)\n"
		"  --messages N        messages per size and kind (500)\n"
		"  --sizes A,B,...     text sizes in bytes, <= 8192\n"
		"                      (100,1024,8192)\n"
		"  --fanout A,B,...    devices per fan-out message, <= 100\n"
		"                      (1,5,20)\n"
		"  --fanout-messages N messages per fan-out (100)\n"
		"  --label TEXT        name of the run in the report\n"
		"  --json              also print one JSON result line\n");
}

static int
num_u(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* "1,5,20" into v (at most MAX_LIST values in lo … hi). */
static int
num_list(const char *s, unsigned long lo, unsigned long hi, size_t *v,
	 size_t *n)
{
	char buf[128], *tok, *save = NULL;
	unsigned long x;

	if (strlen(s) >= sizeof(buf))
		return -1;
	snprintf(buf, sizeof(buf), "%s", s);
	*n = 0;
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (*n == MAX_LIST || num_u(tok, lo, hi, &x) < 0)
			return -1;
		v[(*n)++] = x;
	}
	return *n ? 0 : -1;
}

static int
parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{"dir", required_argument, NULL, 'D'},
		{"setups", required_argument, NULL, 's'},
		{"messages", required_argument, NULL, 'm'},
		{"sizes", required_argument, NULL, 'z'},
		{"fanout", required_argument, NULL, 'f'},
		{"fanout-messages", required_argument, NULL, 'F'},
		{"label", required_argument, NULL, 'l'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	unsigned long v;
	int ch;

	memset(o, 0, sizeof(*o));
	o->dir = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR")
						       : "/tmp";
	o->setups = 50;
	o->messages = 500;
	o->fan_messages = 100;
	o->sizes[0] = 100;
	o->sizes[1] = 1024;
	o->sizes[2] = 8192;
	o->n_sizes = 3;
	o->fanouts[0] = 1;
	o->fanouts[1] = 5;
	o->fanouts[2] = 20;
	o->n_fanouts = 3;
	o->label = "crypto";
	while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (ch) {
		case 'D':
			o->dir = optarg;
			break;
		case 's':
			if (num_u(optarg, 1, 1000000, &v) < 0)
				goto bad;
			o->setups = (unsigned)v;
			break;
		case 'm':
			if (num_u(optarg, 1, 10000000, &v) < 0)
				goto bad;
			o->messages = (unsigned)v;
			break;
		case 'F':
			if (num_u(optarg, 1, 10000000, &v) < 0)
				goto bad;
			o->fan_messages = (unsigned)v;
			break;
		case 'z':
			if (num_list(optarg, 1, BV_CONTENT_TEXT_MAX, o->sizes,
				     &o->n_sizes) < 0)
				goto bad;
			break;
		case 'f':
			if (num_list(optarg, 1, MAX_DEVICES, o->fanouts,
				     &o->n_fanouts) < 0)
				goto bad;
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
		case 'h':
			usage(stdout);
			exit(0);
		default:
			goto bad;
		}
	}
	if (optind != argc)
		goto bad;
	return 0;
bad:
	usage(stderr);
	return -1;
}

static void
fs_name(const char *dir, char *out, size_t cap)
{
	struct statfs sf;

	if (statfs(dir, &sf) < 0) {
		snprintf(out, cap, "unknown");
		return;
	}
	switch ((unsigned long)sf.f_type) {
	case 0xEF53:
		snprintf(out, cap, "ext4");
		break;
	case 0x01021994:
		snprintf(out, cap, "tmpfs");
		break;
	case 0x58465342:
		snprintf(out, cap, "xfs");
		break;
	case 0x9123683E:
		snprintf(out, cap, "btrfs");
		break;
	case 0x794c7630:
		snprintf(out, cap, "overlayfs");
		break;
	default:
		snprintf(out, cap, "0x%lx", (unsigned long)sf.f_type);
		break;
	}
}

static int
run(struct bench *b)
{
	size_t i, max_size = 1;
	char account[BV_UUID_LEN + 1];
	int rc;

	rc = bv_signal_context_new(&b->ctx);
	if (rc < 0)
		return rc;
	b->n_rcpt = 1;
	for (i = 0; i < b->o.n_fanouts; i++)
		if (b->o.fanouts[i] > b->n_rcpt)
			b->n_rcpt = b->o.fanouts[i];
	for (i = 0; i < b->o.n_sizes; i++)
		if (b->o.sizes[i] > max_size)
			max_size = b->o.sizes[i];
	b->text = malloc(max_size + 1);
	b->rcpt = calloc(b->n_rcpt, sizeof(*b->rcpt));
	if (!b->text || !b->rcpt)
		return BV_ENOMEM;
	for (i = 0; i < max_size; i++)
		b->text[i] = (char)('a' + i % 26);
	b->text[max_size] = '\0';
	rc = party_open(b, &b->sender, SENDER, 1, 0);
	/* One account per recipient device: a conversation's parties. */
	for (i = 0; i < b->n_rcpt && rc == 0; i++) {
		snprintf(account, sizeof(account),
			 "22222222-2222-4222-8222-%012x", (unsigned)i + 1);
		rc = party_open(b, &b->rcpt[i], account, 1, (unsigned)i + 1);
	}
	if (rc == 0)
		rc = disk_probe(b);
	if (rc == 0)
		rc = phase_setup(b);
	if (rc == 0)
		rc = phase_answer(b);
	for (i = 0; i < b->o.n_sizes && rc == 0; i++)
		rc = phase_messages(b, b->o.sizes[i]);
	for (i = 0; i < b->o.n_fanouts && rc == 0; i++)
		rc = phase_fanout(b, b->o.fanouts[i]);
	return rc;
}

int
main(int argc, char **argv)
{
	struct bench b;
	struct stamp t0, t1;
	size_t i;
	int rc;

	memset(&b, 0, sizeof(b));
	if (parse_args(argc, argv, &b.o) < 0)
		return 2;
	if (sodium_init() < 0)
		return 1;
	snprintf(b.dir, sizeof(b.dir), "%s/bvchat-crypto-bench.XXXXXX",
		 b.o.dir);
	if (!mkdtemp(b.dir)) {
		fprintf(stderr, "bvchat-crypto-bench: cannot create %s: %s\n",
			b.dir, strerror(errno));
		return 1;
	}
	fs_name(b.dir, b.fstype, sizeof(b.fstype));
	stamp_now(&t0);
	rc = run(&b);
	stamp_now(&t1);

	party_close(&b.sender);
	for (i = 0; b.rcpt && i < b.n_rcpt; i++)
		party_close(&b.rcpt[i]);
	if (b.ctx)
		signal_context_destroy(b.ctx);
	bench_remove_dir(b.dir);
	if (rc == 0)
		report(&b, (double)(t1.wall - t0.wall) / 1e9);
	else
		fprintf(stderr, "bvchat-crypto-bench: failed: %s\n",
			bv_strerror(rc));
	for (i = 0; i < b.n_series; i++) {
		free(b.series[i].wall);
		free(b.series[i].cpu);
	}
	free(b.rcpt);
	free(b.text);
	return rc == 0 ? 0 : 1;
}
