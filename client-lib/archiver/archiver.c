/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * bvchat-archiver: the municipality's archive device (docs/fiks.md,
 * "bvchat-archiver"). A libbvchat device on the tenant's archive account,
 * so it is a required recipient of every case conversation: libbvchat
 * stores each message durably before the relay lets it go. This program
 * cuts each conversation's history into batches (a day, or a quiet spell),
 * turns each batch into one journalpost — a readable transcript and an
 * arkivmelding.xml validated against Fiks Arkiv v1 — sends it over FIKS IO
 * to the archive's account, follows mottatt and kvittering, retries with
 * the same key on silence, serverfeil or tidsavbrudd, stops a conversation
 * on ugyldigforespoersel until an operator says retry, and finally tells
 * the conversation which messages the case file has (journaled receipts).
 *
 * One thread: libbvchat's libuv loop, with a timer that does the FIKS IO
 * work in short steps (each call bounded by the FIKS config's timeout).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "bv_util.h"
#include "bvchat.h"
#include "fiks_arkiv.h"
#include "fiks_error.h"
#include "fiks_io.h"
#include "jstore.h"
#include "profile.h"
#include "transcript.h"

#define EXIT_OK	   0
#define EXIT_FAIL  1
#define EXIT_USAGE 2

/* Messages in one journalpost at most; a longer quiet spell is split. */
#define BATCH_MAX 500
#define TICK_MS	  250
/* The time a connection to FIKS IO's broker may take (token, TCP, TLS,
 * AMQP); polls while connected wait 10 ms. */
#define FIKS_CONNECT_MS 5000
/* Changed identity keys waiting to be accepted, at most; accepted ones
 * one transcript records, at most (the rest go into the next). */
#define KEYCHANGES_MAX	   16
#define CUT_KEYCHANGES_MAX 16

/* Attachments (docs/fiks.md, "Attachments"): files being fetched at once,
 * tries before a tampered or missing file is given up, the longest wait
 * between tries, and how many files and bytes of them one journalpost's
 * package carries (the rest of FIKS_ASICE_FILES_MAX and _BYTES_MAX is for
 * the arkivmelding, the transcript and the package's own files). */
#define FETCH_SLOTS	   2
#define ATT_FINAL_TRIES	   3
#define ATT_WAIT_MAX_MS	   600000
#define ATT_FILES_PER_PART 60
#define ATT_BYTES_PER_PART (48LL << 20)
#define ATT_PARTS_MAX	   64

struct arch;

/* One attachment download under way. */
struct fetch {
	struct arch *a;
	int busy;
	char message_id[BV_CLIENT_MESSAGE_ID_LEN + 1];
	int idx;
	int tries; /* before this one */
	char blob[BV_CLIENT_ACCOUNT_LEN + 1];
};

struct arch {
	uv_loop_t loop;
	uv_timer_t tick;
	uv_signal_t sigterm, sigint;
	struct bv_client *c;
	struct jstore *j;
	struct fiks_client *fiks;
	struct fiks_config fcfg;

	/* Settings. */
	const char *archive_account; /* the archive's FIKS IO konto */
	char *archive_cert;	     /* pinned certificate (PEM) or NULL */
	const char *fagsystem;
	int64_t quiet_ms;	  /* cut after this long without messages */
	int by_day;		  /* and/or at the end of each local day */
	int64_t retry_ms;	  /* first wait after a failed attempt */
	int max_attempts;	  /* then FAILED */
	int64_t reply_timeout_ms; /* silence after a send */
	int64_t ttl_ms;		  /* of each arkivmelding */

	int online, stopping, busy;
	int exit_code;
	int64_t amqp_logged_ms;
	int64_t fiks_wait_ms, fiks_retry_ms; /* after a failed connect */

	struct fetch fetches[FETCH_SLOTS];
	int reporting;		 /* a blobs_journaled is under way */
	int64_t report_after_ms; /* after a failed one */

	/* Journaled receipts on their way to the relay, one per batch. */
	struct announce *announcing;

	/* Changed identity keys to accept (see on_key_changed()). */
	struct keychange {
		char account[BV_CLIENT_ACCOUNT_LEN + 1];
		uint32_t device;
		int64_t not_before_ms;
	} keychanges[KEYCHANGES_MAX];
	size_t n_keychanges;
};

/*
 * The journaled receipts of one batch that the relay has not taken yet
 * (bv_client_mark_journaled() keeps them in memory only). The batch is
 * recorded ANNOUNCED when every one is taken (bv_sent_cb rc 0); after a
 * failure, or a crash before that, it is still JOURNALED and is announced
 * again, which changes nothing for a receiver that has it.
 */
struct announce {
	struct announce *next;
	char batch[JSTORE_ID_LEN + 1];
	char (*mids)[BV_CLIENT_MESSAGE_ID_LEN + 1]; /* the sends' ids */
	size_t n, left;				    /* started, not answered */
	int failed;
	int tries;	     /* failed rounds so far */
	int64_t retry_at_ms; /* after a failed round: not before */
};

/* bv_log()'s lines, named for this program; the format comes first. */
#define log_info(...) bv_log(BV_LOG_INFO, "archiver: " __VA_ARGS__)
#define log_err(...)  bv_log(BV_LOG_ERR, "archiver: " __VA_ARGS__)

/* ------------------------------------------------------- the case view */

/* The case a conversation belongs to, with the people the case file
 * shows, copied out of bv_client_cases(). */
struct conv_case {
	const char *conversation; /* in */
	int found;
	char case_id[BV_CLIENT_ACCOUNT_LEN + 1];
	char case_number[64];
	char municipality[128];
	char kind[16];
	struct tperson people[64];
	size_t n_people;
};

static int
conv_case_cb(void *arg, const struct bv_client_case *cs)
{
	struct conv_case *k = arg;
	size_t i;

	for (i = 0; i < cs->n_conversations; i++)
		if (!strcmp(cs->conversations[i].conversation, k->conversation))
			break;
	if (i == cs->n_conversations)
		return 0;
	k->found = 1;
	snprintf(k->case_id, sizeof(k->case_id), "%s", cs->case_id);
	snprintf(k->case_number, sizeof(k->case_number), "%s",
		 cs->case_number ? cs->case_number : "");
	snprintf(k->municipality, sizeof(k->municipality), "%s",
		 cs->municipality ? cs->municipality : "");
	snprintf(k->kind, sizeof(k->kind), "%s",
		 cs->conversations[i].kind ? cs->conversations[i].kind : "");
	for (i = 0; i < cs->n_people &&
		    k->n_people < sizeof(k->people) / sizeof(k->people[0]);
	     i++) {
		struct tperson *p = &k->people[k->n_people++];

		p->account = bv_strdup(cs->people[i].account);
		p->name = bv_strdup(cs->people[i].name);
		p->role = bv_strdup(cs->people[i].role);
	}
	return 1;
}

static void
conv_case_free(struct conv_case *k)
{
	size_t i;

	for (i = 0; i < k->n_people; i++) {
		bv_free((void *)k->people[i].account);
		bv_free((void *)k->people[i].name);
		bv_free((void *)k->people[i].role);
	}
	k->n_people = 0;
}

static int
is_staff(const char *role)
{
	return role &&
	       (!strcmp(role, "caseworker") || !strcmp(role, "team_lead") ||
		!strcmp(role, "service_leader"));
}

/* ------------------------------------------------------ cutting batches */

/* The messages after a conversation's cursor, copied. */
struct pending {
	struct tmsg m[BATCH_MAX];
	int64_t seq[BATCH_MAX];
	size_t n;
	int more; /* there were more than BATCH_MAX */
};

static int
pending_cb(void *arg, const struct bv_client_message *m)
{
	struct pending *p = arg;
	struct tmsg *t;
	char *text;

	if (p->n == BATCH_MAX) {
		p->more = 1;
		return 1;
	}
	text = bv_malloc(m->text_len + 1);
	if (!text)
		return BV_ENOMEM;
	memcpy(text, m->text, m->text_len);
	text[m->text_len] = '\0';
	t = &p->m[p->n];
	memset(t, 0, sizeof(*t));
	t->message_id = bv_strdup(m->message_id);
	t->sender = bv_strdup(m->sender);
	t->time_ms = m->time_ms;
	t->text = text;
	t->text_len = m->text_len;
	t->undecryptable = m->state == BV_CLIENT_MSG_UNDECRYPTABLE;
	t->unsupported = m->unsupported;
	t->notice = m->notice != NULL;
	if (m->notice) {
		t->notice_kind =
			bv_strdup(m->notice->kind ? m->notice->kind : "");
		t->notice_phone =
			bv_strdup(m->notice->phone ? m->notice->phone : "");
		t->notice_emergency = bv_strdup(
			m->notice->emergency_phone ? m->notice->emergency_phone
						   : "");
		if (!t->notice_kind || !t->notice_phone || !t->notice_emergency)
			return BV_ENOMEM;
	}
	t->answer_by_ms = m->answer_by_ms > 0 ? m->answer_by_ms : 0;
	p->seq[p->n] = m->seq;
	p->n++;
	if (!t->message_id || !t->sender)
		return BV_ENOMEM;
	if (m->subject) {
		t->subject = bv_strdup(m->subject);
		t->thread = bv_strdup(m->thread ? m->thread : m->message_id);
		if (!t->subject || !t->thread)
			return BV_ENOMEM;
	}
	if (m->n_attachments > 0) {
		size_t i;

		t->atts = bv_calloc(m->n_attachments, sizeof(*t->atts));
		if (!t->atts)
			return BV_ENOMEM;
		t->n_atts = m->n_attachments;
		for (i = 0; i < m->n_attachments; i++) {
			const struct bv_client_attachment *x =
				&m->attachments[i];
			struct tatt *y = &t->atts[i];

			y->name = bv_strdup(x->name ? x->name : "");
			y->type = bv_strdup(x->type ? x->type : "");
			y->blob = bv_strdup(x->blob ? x->blob : "");
			y->size = x->size;
			if (!y->name || !y->type || !y->blob)
				return BV_ENOMEM;
		}
	}
	return 0;
}

/* The subjects of the threads the batch's replies answer whose first
 * e-post is in an earlier batch: one pass over the older history. */
struct thread_find {
	struct pending *p;
	size_t n;	    /* of the batch */
	int64_t before_seq; /* the batch's first */
	size_t missing;
};

static int
thread_find_cb(void *arg, const struct bv_client_message *m)
{
	struct thread_find *tf = arg;
	size_t i;

	if (m->seq >= tf->before_seq)
		return 1;
	if (!m->subject)
		return 0;
	for (i = 0; i < tf->n; i++) {
		struct tmsg *t = &tf->p->m[i];

		if (t->subject && !t->thread_subject &&
		    !strcmp(t->thread, m->message_id)) {
			t->thread_subject = bv_strdup(m->subject);
			if (!t->thread_subject)
				return BV_ENOMEM;
			tf->missing--;
		}
	}
	return tf->missing == 0;
}

/*
 * Sets thread_subject of each reply among the first n pending messages:
 * from the batch when the thread starts in it, else from the history.
 * One that is nowhere (the first e-post could not be read) keeps NULL and
 * the transcript names its thread by id. Returns 0 or a code.
 */
static int
thread_subjects(struct arch *a, const char *conversation, struct pending *p,
		size_t n)
{
	struct thread_find tf = {p, n, p->seq[0], 0};
	size_t i, j;
	int rc;

	for (i = 0; i < n; i++) {
		struct tmsg *t = &p->m[i];

		if (!t->subject || !strcmp(t->thread, t->message_id))
			continue;
		for (j = 0; j < n; j++)
			if (p->m[j].subject &&
			    !strcmp(p->m[j].message_id, t->thread))
				break;
		if (j < n) {
			t->thread_subject = bv_strdup(p->m[j].subject);
			if (!t->thread_subject)
				return BV_ENOMEM;
		} else {
			tf.missing++;
		}
	}
	if (tf.missing == 0)
		return 0;
	rc = bv_client_history(a->c, conversation, 0, thread_find_cb, &tf);
	return rc < 0 ? rc : 0;
}

static void
pending_free(struct pending *p)
{
	size_t i, j;

	for (i = 0; i < p->n; i++) {
		bv_free((void *)p->m[i].message_id);
		bv_free((void *)p->m[i].sender);
		bv_free((void *)p->m[i].subject);
		bv_free((void *)p->m[i].thread);
		bv_free((void *)p->m[i].thread_subject);
		bv_free((void *)p->m[i].notice_kind);
		bv_free((void *)p->m[i].notice_phone);
		bv_free((void *)p->m[i].notice_emergency);
		for (j = 0; p->m[i].atts && j < p->m[i].n_atts; j++) {
			bv_free((void *)p->m[i].atts[j].name);
			bv_free((void *)p->m[i].atts[j].type);
			bv_free((void *)p->m[i].atts[j].blob);
		}
		bv_free(p->m[i].atts);
		if (p->m[i].text)
			bv_wipe((void *)p->m[i].text, p->m[i].text_len);
		bv_free((void *)p->m[i].text);
	}
	p->n = 0;
}

/* The local calendar day of ms as yyyymmdd. */
static int
local_day(int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (!localtime_r(&t, &tm))
		return 0;
	return (tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
}

/*
 * How many of the first n pending messages make a batch now (0: none yet):
 * a quiet spell closes everything; the end of a day closes that day's
 * messages. A full page is always due.
 */
static size_t
due_count(const struct arch *a, const struct pending *p, int64_t now)
{
	size_t k;
	int d0;

	if (p->n == 0)
		return 0;
	if (p->more)
		return p->n;
	if (a->quiet_ms > 0 && now - p->m[p->n - 1].time_ms >= a->quiet_ms)
		return p->n;
	if (!a->by_day)
		return 0;
	d0 = local_day(p->m[0].time_ms);
	if (d0 >= local_day(now))
		return 0;
	for (k = 0; k < p->n && local_day(p->m[k].time_ms) == d0; k++)
		;
	return k;
}

static void
iso_date(int64_t ms, char *buf, size_t cap)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (!localtime_r(&t, &tm) || !strftime(buf, cap, "%Y-%m-%d", &tm))
		snprintf(buf, cap, "1970-01-01");
}

/* ---------------------------------------------------------- attachments */

/* Why a file is not in the case file, for the transcript (bokmål). */
static const char *
att_failure(int code)
{
	switch (code) {
	case BV_ETAMPERED:
		return "filen hos tjenesten besto ikke ekthetskontrollen "
		       "(endret eller avkortet etter at den ble sendt), så den "
		       "kunne ikke hentes";
	case BV_ENOBLOB:
		return "filen finnes ikke hos tjenesten (aldri ferdig lastet "
		       "opp, eller slettet), så den kunne ikke hentes";
	default:
		return "filen kunne ikke hentes";
	}
}

/*
 * A file's Noark format (the Fiks Arkiv v1 code list "format": RA-TEKST,
 * RA-TIFF6, RA-PDF, RA-XML, RA-JPG, RA-MPEG-2, RA-MP3), its variantformat
 * and the package file's extension. JPEG and MP3 are archival formats as
 * they come (A). Plain text from a citizen is RA-TEKST, but in an encoding
 * nobody checked, so P. A PDF is "PDF", as KS's own examples write it:
 * RA-PDF means PDF/A, which a citizen's PDF rarely is, so P for the
 * archive to convert. The other allowed types have no code on the list:
 * no format element (never a made-up code), the MIME type says what it
 * is, P.
 */
static void
att_format(const char *type, const char **format, const char **variant,
	   const char **ext)
{
	static const struct {
		const char *type, *format, *variant, *ext;
	} map[] = {
		{"image/jpeg", "RA-JPG", "A", "jpg"},
		{"audio/mpeg", "RA-MP3", "A", "mp3"},
		{"text/plain", "RA-TEKST", "P", "txt"},
		{"application/pdf", "PDF", "P", "pdf"},
		{"image/png", NULL, "P", "png"},
		{"image/heic", NULL, "P", "heic"},
		{"image/webp", NULL, "P", "webp"},
		{"audio/mp4", NULL, "P", "m4a"},
		{"audio/ogg", NULL, "P", "ogg"},
		{"audio/webm", NULL, "P", "webm"},
	};
	size_t i;

	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (type && !strcmp(type, map[i].type)) {
			*format = map[i].format;
			*variant = map[i].variant;
			*ext = map[i].ext;
			return;
		}
	*format = NULL;
	*variant = "P";
	*ext = "bin";
}

static void
on_fetched(struct bv_client *c, void *arg, const char *message_id, int index,
	   int rc, const char *path, const uint8_t *data, size_t len)
{
	struct fetch *f = arg;
	struct arch *a = f->a;
	int tries = f->tries + 1, final, r;
	int64_t wait = 1000;

	(void)c;
	(void)message_id;
	(void)index;
	(void)path;
	f->busy = 0;
	if (rc == 0) {
		r = jstore_att_fetched(a->j, f->message_id, f->idx, f->blob,
				       data, len);
		if (r < 0)
			log_err("attachment %d of message %s: fetched but not "
				"stored (%s); fetched again later",
				f->idx, f->message_id, bv_client_strerror(r));
		else
			log_info("attachment %d of message %s: fetched (%zu "
				 "bytes)",
				 f->idx, f->message_id, len);
		return;
	}
	/* A tampered or missing file is a fact about the file, asked a few
	 * times to rule out a hiccup; anything else (the network, the relay
	 * away) is tried again without end: the relay keeps the blob. */
	final = (rc == BV_ETAMPERED || rc == BV_ENOBLOB || rc == BV_EINVAL) &&
		tries >= ATT_FINAL_TRIES;
	while (wait < ATT_WAIT_MAX_MS && wait < (1000LL << (tries - 1)) &&
	       tries < 30)
		wait *= 2;
	if (wait > ATT_WAIT_MAX_MS)
		wait = ATT_WAIT_MAX_MS;
	r = jstore_att_failed(a->j, f->message_id, f->idx, f->blob, rc, tries,
			      bv_now_ms() + wait, final);
	if (r < 0)
		log_err("attachment %d of message %s: cannot record its state",
			f->idx, f->message_id);
	if (final)
		log_err("attachment %d of message %s cannot be fetched (%s): "
			"journaled as missing, with the reason in the "
			"transcript; `bvchat-archiver status` lists it",
			f->idx, f->message_id, bv_client_strerror(rc));
	else
		log_info("attachment %d of message %s: %s; try %d in %" PRId64
			 " ms",
			 f->idx, f->message_id, bv_client_strerror(rc),
			 tries + 1, wait);
}

static int
fetching(const struct arch *a, const char *message_id, int idx)
{
	size_t i;

	for (i = 0; i < FETCH_SLOTS; i++)
		if (a->fetches[i].busy && a->fetches[i].idx == idx &&
		    !strcmp(a->fetches[i].message_id, message_id))
			return 1;
	return 0;
}

static void
fetch_start(struct arch *a, const char *message_id, int idx, const char *blob,
	    int tries)
{
	struct fetch *f = NULL;
	size_t i;
	int rc;

	for (i = 0; i < FETCH_SLOTS && !f; i++)
		if (!a->fetches[i].busy)
			f = &a->fetches[i];
	if (!f)
		return;
	memset(f, 0, sizeof(*f));
	f->a = a;
	snprintf(f->message_id, sizeof(f->message_id), "%s", message_id);
	snprintf(f->blob, sizeof(f->blob), "%s", blob);
	f->idx = idx;
	f->tries = tries;
	f->busy = 1;
	/* Into memory: the plaintext is sealed before it touches the disk. */
	rc = bv_client_attachment_fetch(a->c, message_id, idx, NULL, on_fetched,
					f);
	if (rc < 0)
		on_fetched(a->c, f, message_id, idx, rc, NULL, NULL, 0);
}

/*
 * Fetches what the pending messages' files still need (FETCH_SLOTS at a
 * time). Returns how many of the first messages have every file settled
 * (fetched, or given up): a batch is cut only up to there, so every retry
 * of it sends the same documents. A code on a store failure.
 */
static int64_t
settle_attachments(struct arch *a, struct pending *p)
{
	int64_t now = bv_now_ms();
	size_t i, k, ready = p->n;
	struct jatt st;
	int rc;

	for (i = 0; i < p->n; i++) {
		for (k = 0; k < p->m[i].n_atts; k++) {
			const struct tatt *t = &p->m[i].atts[k];

			rc = jstore_att_get(a->j, p->m[i].message_id, (int)k,
					    &st);
			if (rc < 0)
				return rc;
			if (rc == 1 && st.state != JA_RETRY)
				continue;
			if (!t->blob[0]) {
				/* Not on the relay (only a sender's own
				 * upload looks like this): nothing to get. */
				jstore_att_failed(a->j, p->m[i].message_id,
						  (int)k, "", BV_ENOBLOB, 1, 0,
						  1);
				continue;
			}
			if (ready > i)
				ready = i;
			if (!a->stopping &&
			    (rc == 0 || st.next_try_ms <= now) &&
			    !fetching(a, p->m[i].message_id, (int)k))
				fetch_start(a, p->m[i].message_id, (int)k,
					    t->blob, rc == 1 ? st.tries : 0);
		}
	}
	return (int64_t)ready;
}

/* The journalposts of one cut: the first with the transcript, then as
 * many more as the files need (ATT_FILES_PER_PART, ATT_BYTES_PER_PART). */
struct cut {
	size_t n_parts;
	struct jbatch b[ATT_PARTS_MAX];
	char *xml[ATT_PARTS_MAX];
	size_t xml_len[ATT_PARTS_MAX];
	struct fiks_file files[ATT_PARTS_MAX][2];
	struct jpart jparts[ATT_PARTS_MAX];
	struct jatt_ref *refs;
	size_t n_refs;
	/* The documents of the part being built. */
	struct fiks_arkiv_dokument docs[ATT_FILES_PER_PART + 1];
	char titles[ATT_FILES_PER_PART + 1][TRANSCRIPT_SUBJECT_MAX + 4];
	char shas[ATT_FILES_PER_PART + 1][65];
	/* The key changes its transcript records (cut_keychange()). */
	const struct conv_case *k;
	struct tkeychange keys[CUT_KEYCHANGES_MAX];
	char key_accounts[CUT_KEYCHANGES_MAX][BV_CLIENT_ACCOUNT_LEN + 1];
	int64_t key_ids[CUT_KEYCHANGES_MAX];
	size_t n_keys;
};

/* A key change of one of the case's people goes into the cut's transcript;
 * others wait for their own case, and beyond CUT_KEYCHANGES_MAX for the
 * next cut. */
static int
cut_keychange(void *arg, const struct jkeychange *kc)
{
	struct cut *ct = arg;
	size_t i;

	if (ct->n_keys == CUT_KEYCHANGES_MAX)
		return 1;
	for (i = 0; i < ct->k->n_people; i++)
		if (!strcmp(ct->k->people[i].account, kc->account))
			break;
	if (i == ct->k->n_people)
		return 0;
	snprintf(ct->key_accounts[ct->n_keys], sizeof(ct->key_accounts[0]),
		 "%s", kc->account);
	ct->keys[ct->n_keys] = (struct tkeychange){ct->key_accounts[ct->n_keys],
						   kc->device, kc->accepted_ms};
	ct->key_ids[ct->n_keys++] = kc->id;
	return 0;
}

/*
 * Gives each settled file of the first n pending messages its place: a
 * part, a dokumentnummer and a package name (vedlegg-<k>.<ext>, k counting
 * the cut's files: never the sender's name, which is a peer's words), or
 * the reason it is missing; fills the cut's attachment refs. Returns the
 * number of parts, or a code (FIKS_ELIMIT: more than ATT_PARTS_MAX).
 */
static int
place_attachments(struct arch *a, struct pending *p, size_t n, struct cut *ct)
{
	size_t i, k, total = 0, part = 0, in_part = 1, n_vedlegg = 0;
	int64_t bytes = 0;
	struct jatt st;
	int rc;

	for (i = 0; i < n; i++)
		total += p->m[i].n_atts;
	ct->refs = total ? bv_calloc(total, sizeof(*ct->refs)) : NULL;
	if (total && !ct->refs)
		return BV_ENOMEM;
	for (i = 0; i < n; i++) {
		for (k = 0; k < p->m[i].n_atts; k++) {
			struct tatt *t = &p->m[i].atts[k];
			struct jatt_ref *r = &ct->refs[ct->n_refs++];
			const char *format, *variant, *ext;

			rc = jstore_att_get(a->j, p->m[i].message_id, (int)k,
					    &st);
			if (rc < 0)
				return rc;
			if (rc == 0 || st.state == JA_RETRY)
				return BV_EINTERNAL; /* not settled */
			r->message_id = p->m[i].message_id;
			r->idx = (int)k;
			if (st.state == JA_FAILED) {
				t->failure = att_failure(st.code);
				continue;
			}
			/* The first part also holds the transcript. */
			if (in_part - (part == 0) > 0 &&
			    (in_part - (part == 0) >= ATT_FILES_PER_PART ||
			     bytes + st.len > ATT_BYTES_PER_PART)) {
				part++;
				in_part = 0;
				bytes = 0;
			}
			if (part >= ATT_PARTS_MAX)
				return FIKS_ELIMIT;
			att_format(t->type, &format, &variant, &ext);
			snprintf(t->pkg, sizeof(t->pkg), "vedlegg-%zu.%s",
				 ++n_vedlegg, ext);
			t->part = (int)part + 1;
			t->docnr = (int)++in_part;
			bytes += st.len;
			r->part = part;
			r->pkg = t->pkg;
			r->mime = t->type;
		}
	}
	for (i = 0; i < n; i++)
		for (k = 0; k < p->m[i].n_atts; k++)
			p->m[i].atts[k].parts = (int)part + 1;
	return (int)part + 1;
}

/* The documents of part (0 …) of the cut, its files in order, into
 * ct->docs from start on; returns how many. */
static size_t
part_documents(struct arch *a, struct pending *p, size_t n, size_t part,
	       struct cut *ct, size_t start)
{
	size_t i, k, nd = start;
	struct jatt st;

	for (i = 0; i < n; i++) {
		for (k = 0; k < p->m[i].n_atts; k++) {
			const struct tatt *t = &p->m[i].atts[k];
			struct fiks_arkiv_dokument *d = &ct->docs[nd];
			const char *format, *variant, *ext;

			if (t->failure || t->part != (int)part + 1 ||
			    nd >= ATT_FILES_PER_PART + 1 ||
			    jstore_att_get(a->j, p->m[i].message_id, (int)k,
					   &st) != 1)
				continue;
			att_format(t->type, &format, &variant, &ext);
			memset(d, 0, sizeof(*d));
			/* The sender's name, cleaned as a subject is, for the
			 * title and the name shown; the package's own name
			 * is ours. */
			transcript_line(t->name, strlen(t->name),
					TRANSCRIPT_SUBJECT_MAX, ct->titles[nd],
					sizeof(ct->titles[nd]));
			if (!ct->titles[nd][0])
				snprintf(ct->titles[nd], sizeof(ct->titles[nd]),
					 "%s", t->pkg);
			snprintf(ct->shas[nd], sizeof(ct->shas[nd]), "%s",
				 st.sha256);
			d->tittel = ct->titles[nd];
			d->filnavn = ct->titles[nd];
			d->referanse = t->pkg;
			d->format = format;
			d->variantformat = variant;
			d->mime = t->type;
			d->sha256 = ct->shas[nd][0] ? ct->shas[nd] : NULL;
			d->size = st.len;
			nd++;
		}
	}
	return nd - start;
}

/*
 * Builds the documents of the first n pending messages of conversation
 * (their files settled) and records the batch: one journalpost, or more
 * when the files do not fit one package. Returns 0, 1 when the
 * conversation is not in the case view (yet), or a code.
 */
static int
cut_batch(struct arch *a, const char *conversation, struct pending *p, size_t n)
{
	struct fiks_arkiv_part parts[64];
	struct fiks_arkiv_journalpost jp;
	struct conv_case k;
	struct tinfo info;
	struct cut *ct;
	struct jbatch *b;
	const char *ids[BATCH_MAX];
	char *text = NULL, title[512], date[16], err[256];
	char part_title[600], part_public[240];
	char subject[TRANSCRIPT_SUBJECT_MAX + 4], public_title[160];
	const char *thread;
	int all_email;
	char names[64][80];
	size_t text_len = 0, i, j, n_parts = 0, q, nd;
	int rc;

	memset(&k, 0, sizeof(k));
	k.conversation = conversation;
	rc = bv_client_cases(a->c, conv_case_cb, &k);
	if (rc < 0)
		return rc;
	if (!k.found) {
		conv_case_free(&k);
		return 1;
	}
	ct = bv_calloc(1, sizeof(*ct));
	if (!ct) {
		conv_case_free(&k);
		return BV_ENOMEM;
	}
	rc = place_attachments(a, p, n, ct);
	if (rc < 0) {
		log_err("batch of conversation %s: its files cannot be placed "
			"(%s)",
			conversation, fiks_strerror(rc));
		goto out;
	}
	ct->n_parts = (size_t)rc;
	for (q = 0; q < ct->n_parts; q++) {
		struct jbatch *x = &ct->b[q];

		bv_uuid_generate(x->id);
		snprintf(x->conversation, sizeof(x->conversation), "%s",
			 conversation);
		snprintf(x->case_id, sizeof(x->case_id), "%s", k.case_id);
		x->first_seq = p->seq[0];
		x->last_seq = p->seq[n - 1];
		x->n_messages = q == 0 ? (int)n : 0;
		x->created_ms = bv_now_ms();
		x->next_try_ms = x->created_ms;
	}
	b = &ct->b[0];

	memset(&info, 0, sizeof(info));
	info.municipality = k.municipality;
	info.case_number = k.case_number;
	info.conversation = conversation;
	info.kind = k.kind;
	info.batch_id = b->id;
	ct->k = &k;
	rc = jstore_keychanges_unnoted(a->j, conversation, cut_keychange, ct);
	if (rc < 0)
		goto out;
	info.keychanges = ct->keys;
	info.n_keychanges = ct->n_keys;
	ct->jparts[0].keychanges = ct->key_ids;
	ct->jparts[0].n_keychanges = ct->n_keys;
	rc = thread_subjects(a, conversation, p, n);
	if (rc < 0)
		goto out;
	rc = transcript_render(&info, k.people, k.n_people, p->m, n, &text,
			       &text_len);
	if (rc < 0)
		goto out;

	/* Korrespondanseparter: who wrote, citizens external (their names
	 * screened, as everything in a child-welfare case is), staff
	 * internal. */
	for (i = 0; i < n && n_parts < sizeof(parts) / sizeof(parts[0]); i++) {
		const struct tperson *who = NULL;

		if (!p->m[i].sender[0])
			continue;
		for (j = 0; j < i; j++)
			if (!strcmp(p->m[j].sender, p->m[i].sender))
				break;
		if (j < i)
			continue;
		for (j = 0; j < k.n_people; j++)
			if (!strcmp(k.people[j].account, p->m[i].sender))
				who = &k.people[j];
		memset(&parts[n_parts], 0, sizeof(parts[0]));
		/* The name as the roster has it (never cut: a cut could
		 * split a character); an unknown sender by account. */
		snprintf(names[n_parts], sizeof(names[0]), "Ukjent (konto %s)",
			 p->m[i].sender);
		parts[n_parts].navn =
			who && who->name ? who->name : names[n_parts];
		parts[n_parts].rolle = who ? transcript_role(who->role) : NULL;
		parts[n_parts].type = who && is_staff(who->role) ? "IA" : "EA";
		parts[n_parts].skjermet = !(who && is_staff(who->role));
		n_parts++;
	}
	iso_date(p->m[0].time_ms, date, sizeof(date));
	/* A batch that is one e-post thread (notices aside) is titled by the
	 * thread's subject, so the case file lists the request by what it is
	 * about; the public title (offentligTittel, what a postjournal may
	 * show) leaves the citizen's words out. Anything else is a chat of
	 * that day, a title without names. */
	thread = NULL;
	all_email = 0;
	for (i = 0; i < n; i++) {
		if (p->m[i].notice)
			continue;
		if (!p->m[i].subject) {
			all_email = 0;
			thread = NULL;
			break;
		}
		if (all_email && thread && strcmp(thread, p->m[i].thread))
			thread = NULL; /* several threads */
		else if (!all_email)
			thread = p->m[i].thread;
		all_email = 1;
	}
	subject[0] = '\0';
	for (i = 0; thread && i < n && !subject[0]; i++) {
		const char *s = NULL;

		if (!p->m[i].subject)
			continue;
		s = !strcmp(thread, p->m[i].message_id)
			    ? p->m[i].subject
			    : p->m[i].thread_subject;
		if (s)
			transcript_line(s, strlen(s), TRANSCRIPT_SUBJECT_MAX,
					subject, sizeof(subject));
	}
	snprintf(public_title, sizeof(public_title), "%s i sak %s, %s",
		 all_email ? "E-post" : "Chat",
		 k.case_number[0] ? k.case_number : k.case_id, date);
	if (subject[0])
		snprintf(title, sizeof(title), "%s: %s", public_title, subject);
	else
		snprintf(title, sizeof(title), "%s", public_title);
	for (q = 0; q < ct->n_parts; q++) {
		nd = 0;
		if (q == 0) {
			struct fiks_arkiv_dokument *d = &ct->docs[nd++];

			memset(d, 0, sizeof(*d));
			d->tittel = public_title;
			d->filnavn = "samtale.txt";
			/* Plain UTF-8 text: RA-TEKST on Fiks Arkiv's format
			 * list, an archival format as it is. */
			d->format = "RA-TEKST";
			d->mime = "text/plain";
			d->hoveddokument = 1;
		}
		nd += part_documents(a, p, n, q, ct, nd);
		memset(&jp, 0, sizeof(jp));
		jp.system = "bvchat";
		jp.fagsystem = a->fagsystem;
		jp.mappe_noekkel = k.case_id;
		jp.noekkel = ct->b[q].id;
		if (q == 0) {
			jp.tittel = title;
			if (strcmp(title, public_title))
				jp.offentlig_tittel = public_title;
		} else {
			/* The files that did not fit the first package. */
			snprintf(part_title, sizeof(part_title),
				 "%s – vedlegg, del %zu av %zu", title, q + 1,
				 ct->n_parts);
			snprintf(part_public, sizeof(part_public),
				 "%s – vedlegg, del %zu av %zu", public_title,
				 q + 1, ct->n_parts);
			jp.tittel = part_title;
			jp.offentlig_tittel = part_public;
		}
		/* Compiled by the municipality from both sides of a
		 * conversation: an internal document, not a letter in or
		 * out. */
		jp.journalposttype = "X";
		jp.dokumentets_dato = date;
		jp.tilgangsrestriksjon = "13";
		jp.skjermingshjemmel = "Offl. § 13, jf. bvl. § 13-1";
		jp.parter = parts;
		jp.n_parter = n_parts;
		jp.dokumenter = ct->docs;
		jp.n_dokumenter = nd;
		rc = fiks_arkiv_arkivmelding(&jp, &ct->xml[q], &ct->xml_len[q],
					     err, sizeof(err));
		if (rc < 0) {
			log_err("batch of conversation %s: arkivmelding: %s "
				"(%s)",
				conversation, fiks_strerror(rc), err);
			goto out;
		}
		ct->files[q][0] = (struct fiks_file){
			FIKS_ARKIV_ARKIVMELDING_FILE, "application/xml",
			(const unsigned char *)ct->xml[q], ct->xml_len[q]};
		ct->files[q][1] = (struct fiks_file){
			"samtale.txt", "text/plain",
			(const unsigned char *)text, text_len};
		ct->jparts[q].b = &ct->b[q];
		ct->jparts[q].files = ct->files[q];
		ct->jparts[q].n_files = q == 0 ? 2 : 1;
	}
	for (i = 0; i < n; i++)
		ids[i] = p->m[i].message_id;
	rc = jstore_batch_create(a->j, ct->jparts, ct->n_parts, ids, n,
				 ct->refs, ct->n_refs);
	if (rc == 0)
		log_info("batch %s: %zu message%s, %zu file%s, %zu "
			 "journalpost%s of conversation %s (history %" PRId64
			 "…%" PRId64 ")",
			 b->id, n, n == 1 ? "" : "s", ct->n_refs,
			 ct->n_refs == 1 ? "" : "s", ct->n_parts,
			 ct->n_parts == 1 ? "" : "s", conversation,
			 b->first_seq, b->last_seq);
out:
	if (text)
		bv_wipe(text, text_len);
	free(text);
	for (q = 0; q < ATT_PARTS_MAX; q++)
		free(ct->xml[q]);
	bv_free(ct->refs);
	bv_free(ct);
	conv_case_free(&k);
	return rc;
}

static int
cut_conversation(void *arg, const struct bv_client_conversation *cv)
{
	struct arch *a = arg;
	struct pending *p;
	int64_t cursor, settled, now = bv_now_ms();
	size_t n;
	int rc = 0, rounds;

	p = bv_calloc(1, sizeof(*p));
	if (!p)
		return BV_ENOMEM;
	/* A few pages per tick at most: the loop has other work. */
	for (rounds = 0; rounds < 4; rounds++) {
		cursor = jstore_cursor(a->j, cv->conversation);
		if (cursor < 0) {
			rc = (int)cursor;
			break;
		}
		if (cursor >= cv->last_seq)
			break;
		p->more = 0;
		rc = bv_client_history(a->c, cv->conversation, cursor,
				       pending_cb, p);
		if (rc < 0)
			break;
		rc = 0;
		n = due_count(a, p, now);
		/* Only up to the first message whose files are not all
		 * settled: fetched (durably) or given up. */
		settled = settle_attachments(a, p);
		if (settled < 0) {
			rc = (int)settled;
			break;
		}
		if (n > (size_t)settled)
			n = (size_t)settled;
		if (n == 0)
			break;
		rc = cut_batch(a, cv->conversation, p, n);
		pending_free(p);
		if (rc != 0)
			break;
	}
	pending_free(p);
	bv_free(p);
	/* One conversation's trouble does not stop the others. */
	return rc == BV_ENOMEM ? rc : 0;
}

/* ------------------------------------------------------------ sending */

/* Sets b up for another attempt later, or FAILED after too many. */
static void
retry_later(struct arch *a, struct jbatch *b, const char *why)
{
	int64_t wait = a->retry_ms;
	int i;

	snprintf(b->error, sizeof(b->error), "%s", why);
	if (b->attempts >= a->max_attempts) {
		b->state = JS_FAILED;
		log_err("batch %s: given up after %d attempts (%s); later "
			"batches of conversation %s wait: fix the cause, then "
			"`bvchat-archiver retry --batch %s`",
			b->id, b->attempts, why, b->conversation, b->id);
	} else {
		for (i = 1; i < b->attempts && wait < 3600000; i++)
			wait *= 2;
		b->state = JS_READY;
		b->next_try_ms = bv_now_ms() + wait;
		log_info("batch %s: %s; attempt %d in %" PRId64 " ms", b->id,
			 why, b->attempts + 1, wait);
	}
	if (jstore_batch_update(a->j, b) < 0)
		log_err("batch %s: cannot record its state", b->id);
}

static void
send_batch(struct arch *a, struct jbatch *b)
{
	struct fiks_file *files = NULL;
	struct fiks_send_req req;
	char mid[FIKS_UUID_LEN + 1];
	size_t n = 0;
	int rc;

	rc = jstore_batch_files(a->j, b->id, &files, &n);
	if (rc < 0) {
		b->state = JS_FAILED;
		snprintf(b->error, sizeof(b->error),
			 "its documents cannot be read back (%s)",
			 fiks_errname(rc));
		jstore_batch_update(a->j, b);
		log_err("batch %s: %s", b->id, b->error);
		return;
	}
	memset(&req, 0, sizeof(req));
	req.mottaker = a->archive_account;
	req.type = FIKS_ARKIV_OPPRETT;
	req.ttl_ms = a->ttl_ms;
	/* The same on every attempt: the archive knows a retry. */
	req.klient_melding_id = b->id;
	req.klient_korrelasjons_id = b->id;
	rc = fiks_send(a->fiks, &req, files, n, a->archive_cert, mid);
	jstore_files_free(files, n);
	b->attempts++;
	if (rc == 0) {
		b->state = JS_SENT;
		b->sent_ms = bv_now_ms();
		snprintf(b->fiks_id, sizeof(b->fiks_id), "%s", mid);
		b->error[0] = '\0';
		if (jstore_batch_update(a->j, b) < 0)
			log_err("batch %s: sent, but its state was not "
				"recorded (a restart sends it again)",
				b->id);
		log_info("batch %s: sent as %s (attempt %d)", b->id, mid,
			 b->attempts);
		return;
	}
	if (fiks_retryable(rc)) {
		char why[160];

		snprintf(why, sizeof(why), "send failed: %s",
			 fiks_strerror(rc));
		retry_later(a, b, why);
		return;
	}
	b->state = JS_FAILED;
	snprintf(b->error, sizeof(b->error), "FIKS IO refused the send: %s",
		 fiks_strerror(rc));
	jstore_batch_update(a->j, b);
	log_err("batch %s: %s; later batches of conversation %s wait", b->id,
		b->error, b->conversation);
}

struct due {
	struct jbatch b[16];
	size_t n;
};

static int
due_cb(const struct jbatch *b, void *arg)
{
	struct due *d = arg;
	size_t i;

	/* One batch in flight per conversation, in order. */
	for (i = 0; i < d->n; i++)
		if (!strcmp(d->b[i].conversation, b->conversation))
			return 0;
	/* Journaled ones are in the case file: only the announcement is
	 * left, and that waits for the relay, not for the archive. */
	if (b->state == JS_READY || b->state == JS_SENT ||
	    b->state == JS_RECEIVED || b->state == JS_FAILED) {
		if (d->n == sizeof(d->b) / sizeof(d->b[0]))
			return 1;
		d->b[d->n++] = *b;
	}
	return 0;
}

/* Sends what is due, notices silence, announces what is journaled. */
static void
drive_batches(struct arch *a)
{
	struct due d;
	size_t i;
	int64_t now = bv_now_ms();

	memset(&d, 0, sizeof(d));
	/* The oldest unfinished batch of each conversation. */
	if (jstore_batches(a->j, -1, due_cb, &d) < 0)
		return;
	for (i = 0; i < d.n && !a->stopping; i++) {
		struct jbatch *b = &d.b[i];

		switch (b->state) {
		case JS_READY:
			if (b->next_try_ms <= now)
				send_batch(a, b);
			break;
		case JS_SENT:
		case JS_RECEIVED:
			if (now - b->sent_ms >= a->reply_timeout_ms)
				retry_later(a, b,
					    "no kvittering from the archive "
					    "in time");
			break;
		default:
			break; /* FAILED waits for an operator */
		}
	}
}

static void
announce_free(struct arch *a, struct announce *an)
{
	struct announce **pp;

	for (pp = &a->announcing; *pp; pp = &(*pp)->next)
		if (*pp == an) {
			*pp = an->next;
			break;
		}
	bv_free(an->mids);
	bv_free(an);
}

static struct announce *
announce_find(struct arch *a, const char *batch)
{
	struct announce *an;

	for (an = a->announcing; an; an = an->next)
		if (!strcmp(an->batch, batch))
			return an;
	return NULL;
}

/* A round of receipts failed: the next after --retry-seconds, doubling
 * up to an hour (the batch stays JOURNALED meanwhile). */
static void
announce_failed(struct arch *a, struct announce *an)
{
	int64_t wait = a->retry_ms;
	int i;

	for (i = 0; i < an->tries && wait < 3600000; i++)
		wait *= 2;
	if (wait > 3600000)
		wait = 3600000;
	an->tries++;
	an->retry_at_ms = bv_now_ms() + wait;
	log_err("batch %s: the conversation was not told it is journaled; "
		"again in %lld s",
		an->batch, (long long)(wait / 1000));
}

/* Tells the conversation what batch b put in the case file, in receipts
 * of up to 100 ids; ANNOUNCED follows in on_sent(). */
static int
announce_cb(const struct jbatch *b, void *arg)
{
	struct arch *a = arg;
	struct announce *an;
	char **ids = NULL;
	size_t n = 0, off;
	int rc;

	if (!a->online)
		return 1;
	an = announce_find(a, b->id);
	if (an && (an->left > 0 || bv_now_ms() < an->retry_at_ms))
		return 0; /* on its way, or waiting after a failure */
	rc = jstore_batch_messages(a->j, b->id, &ids, &n);
	if (rc == 0 && n == 0) {
		struct jbatch u = *b; /* nothing to tell */

		u.state = JS_ANNOUNCED;
		if (jstore_batch_update(a->j, &u) < 0)
			log_err("batch %s: cannot record its state", b->id);
	}
	if (rc < 0 || n == 0) {
		jstore_ids_free(ids, n);
		return 0;
	}
	if (!an && (an = bv_calloc(1, sizeof(*an))) != NULL) {
		snprintf(an->batch, sizeof(an->batch), "%s", b->id);
		an->next = a->announcing;
		a->announcing = an;
	}
	if (an) {
		bv_free(an->mids);
		an->mids = bv_calloc(n / 100 + 1, sizeof(*an->mids));
		an->n = an->left = 0;
		an->failed = 0;
	}
	if (!an || !an->mids) {
		jstore_ids_free(ids, n);
		log_err("batch %s: cannot tell the conversation (%s)", b->id,
			bv_client_strerror(BV_ENOMEM));
		if (an)
			announce_free(a, an);
		return 0;
	}
	for (off = 0; rc == 0 && off < n; off += 100) {
		rc = bv_client_mark_journaled(a->c, b->conversation,
					      (const char *const *)ids + off,
					      n - off > 100 ? 100 : n - off,
					      b->journal, an->mids[an->n]);
		if (rc == 0)
			an->n++;
	}
	jstore_ids_free(ids, n);
	an->left = an->n;
	if (rc < 0) {
		log_err("batch %s: cannot tell the conversation (%s)", b->id,
			bv_client_strerror(rc));
		an->failed = 1;
		if (an->n == 0)
			announce_failed(a, an);
	}
	return 0;
}

/* The relay took one of the journaled receipts (rc 0), or it was given
 * up: when the last of its batch is answered, the batch is ANNOUNCED or
 * waits for the next tick to be told again. */
static void
on_sent(struct bv_client *c, void *user, const char *message_id, int rc)
{
	struct arch *a = user;
	struct announce *an;
	struct jbatch b;
	size_t i;

	(void)c;
	for (an = a->announcing; an; an = an->next) {
		for (i = 0; i < an->n; i++)
			if (!strcmp(an->mids[i], message_id))
				break;
		if (i < an->n)
			break;
	}
	if (!an)
		return;
	if (rc < 0)
		an->failed = 1;
	if (an->left == 0 || --an->left > 0)
		return;
	if (an->failed) {
		announce_failed(a, an);
		return;
	}
	if (jstore_batch_get(a->j, an->batch, &b) == 1 &&
	    b.state == JS_JOURNALED) {
		b.state = JS_ANNOUNCED;
		if (jstore_batch_update(a->j, &b) < 0)
			log_err("batch %s: cannot record its state", b.id);
		else
			log_info("batch %s: the conversation knows it is "
				 "journaled as %s",
				 b.id, b.journal);
	}
	announce_free(a, an);
}

/* ------------------------------------------------------------ replies */

static void
on_kvittering(struct arch *a, struct jbatch *b, const struct fiks_melding *m)
{
	struct fiks_arkiv_kvittering k;
	const struct fiks_file *f;
	struct fiks_asice *pkg = NULL;
	char err[256] = "";
	int rc;

	if (b->state == JS_JOURNALED || b->state == JS_ANNOUNCED)
		return; /* a duplicate: nothing new */
	rc = fiks_open(a->fiks, m, a->archive_cert, &pkg, err, sizeof(err));
	f = rc == 0 ? fiks_asice_find(pkg, FIKS_ARKIV_KVITTERING_FILE) : NULL;
	if (rc == 0 && !f)
		snprintf(err, sizeof(err), "no %s in the package",
			 FIKS_ARKIV_KVITTERING_FILE);
	if (f)
		rc = fiks_arkiv_kvittering_parse((const char *)f->data, f->len,
						 &k, err, sizeof(err));
	fiks_asice_free(pkg);
	if (!f || rc < 0) {
		/* Not believed; silence will bring another attempt. */
		log_err("batch %s: unreadable kvittering %s: %s", b->id,
			m->melding_id, err);
		return;
	}
	b->state = JS_JOURNALED;
	snprintf(b->journal, sizeof(b->journal), "%d/%d", k.journalaar,
		 k.journalsekvensnummer);
	b->error[0] = '\0';
	if (jstore_batch_update(a->j, b) < 0)
		log_err("batch %s: cannot record its kvittering", b->id);
	log_info("batch %s: journaled as %s%s", b->id, b->journal,
		 k.eksisterende ? " (already there: a retry)" : "");
}

static void
on_ugyldig(struct arch *a, struct jbatch *b, const struct fiks_melding *m)
{
	struct fiks_asice *pkg = NULL;
	const struct fiks_file *f;
	char msg[200] = "", err[200];

	if (b->state == JS_JOURNALED || b->state == JS_ANNOUNCED)
		return;
	if (fiks_open(a->fiks, m, a->archive_cert, &pkg, err, sizeof(err)) ==
		    0 &&
	    (f = fiks_asice_find(pkg, FIKS_ARKIV_FEILMELDING_FILE)) != NULL)
		fiks_arkiv_feilmelding_parse(FIKS_ARKIV_UGYLDIG,
					     (const char *)f->data, f->len, msg,
					     sizeof(msg));
	fiks_asice_free(pkg);
	b->state = JS_FAILED;
	snprintf(b->error, sizeof(b->error),
		 "the archive refused it (ugyldigforespoersel): %s",
		 msg[0] ? msg : "no reason given");
	if (jstore_batch_update(a->j, b) < 0)
		log_err("batch %s: cannot record its state", b->id);
	log_err("batch %s: %s; later batches of conversation %s wait: fix "
		"the cause, then `bvchat-archiver retry --batch %s`",
		b->id, b->error, b->conversation, b->id);
}

/* Handles one message from our FIKS IO queue; it is acked after. */
static void
on_fiks_message(struct arch *a, const struct fiks_melding *m)
{
	struct jbatch b;
	int rc = 0;

	if (m->klient_korrelasjons_id[0])
		rc = jstore_batch_get(a->j, m->klient_korrelasjons_id, &b);
	if (rc == 0)
		rc = jstore_batch_by_fiks(a->j, m->svar_til, &b);
	if (rc <= 0) {
		log_info("%s %s answers nothing we sent: ignored", m->type,
			 m->melding_id);
		return;
	}
	if (!strcmp(m->type, FIKS_ARKIV_MOTTATT)) {
		if (b.state == JS_SENT) {
			b.state = JS_RECEIVED;
			jstore_batch_update(a->j, &b);
			log_info("batch %s: the archive has it (mottatt)",
				 b.id);
		}
	} else if (!strcmp(m->type, FIKS_ARKIV_KVITTERING)) {
		on_kvittering(a, &b, m);
	} else if (!strcmp(m->type, FIKS_ARKIV_UGYLDIG)) {
		on_ugyldig(a, &b, m);
	} else if (!strcmp(m->type, FIKS_ARKIV_SERVERFEIL) ||
		   !strcmp(m->type, FIKS_TYPE_SERVERFEIL) ||
		   !strcmp(m->type, FIKS_TYPE_TIDSAVBRUDD)) {
		/* Only about the attempt in flight: an old attempt's error
		 * after a later success changes nothing. */
		if ((b.state == JS_SENT || b.state == JS_RECEIVED) &&
		    (!m->svar_til[0] || !strcmp(m->svar_til, b.fiks_id)))
			retry_later(a, &b, m->type);
	} else {
		log_info("batch %s: unexpected %s: ignored", b.id, m->type);
	}
}

static void
poll_fiks(struct arch *a)
{
	struct fiks_melding *m;
	int i, rc;

	/* Connecting gets its own time (a remote broker needs more than a
	 * poll's 10 ms); when it fails, the next try waits, doubling. */
	if (!fiks_connected(a->fiks)) {
		int64_t now = bv_now_ms();

		if (now < a->fiks_retry_ms)
			return;
		rc = fiks_connect(a->fiks, FIKS_CONNECT_MS);
		if (rc < 0) {
			a->fiks_wait_ms =
				a->fiks_wait_ms ? a->fiks_wait_ms * 2 : 1000;
			if (a->fiks_wait_ms > 60000)
				a->fiks_wait_ms = 60000;
			a->fiks_retry_ms = bv_now_ms() + a->fiks_wait_ms;
			if (now - a->amqp_logged_ms > 60000) {
				log_err("FIKS IO: %s; again in %lld s",
					fiks_strerror(rc),
					(long long)(a->fiks_wait_ms / 1000));
				a->amqp_logged_ms = now;
			}
			return;
		}
		a->fiks_wait_ms = 0;
		log_info("FIKS IO: receiving");
	}
	for (i = 0; i < 20 && !a->stopping; i++) {
		rc = fiks_receive(a->fiks, 10, &m);
		if (rc == FIKS_ETIMEOUT)
			return;
		if (rc == FIKS_EHEADER)
			continue;
		if (rc < 0) {
			/* Logged once a minute: it reconnects by itself. */
			if (bv_now_ms() - a->amqp_logged_ms > 60000) {
				log_err("FIKS IO: %s", fiks_strerror(rc));
				a->amqp_logged_ms = bv_now_ms();
			}
			return;
		}
		on_fiks_message(a, m);
		/* After the state is recorded: a crash before means the
		 * reply comes again, and replies are idempotent here. */
		if (fiks_ack(a->fiks, m) < 0)
			log_info("ack of %s lost: it will come again",
				 m->melding_id);
		fiks_melding_free(m);
	}
}

/* ------------------------------------------------------ blobs_journaled */

/* One blobs_journaled under way: the ids asked about. */
struct report {
	struct arch *a;
	char **blobs;
	size_t n;
};

static void
on_reported(struct bv_client *c, void *arg, int rc)
{
	struct report *r = arg;
	struct arch *a = r->a;

	(void)c;
	a->reporting = 0;
	if (rc == 0)
		rc = jstore_blobs_reported(a->j, (const char *const *)r->blobs,
					   r->n);
	if (rc == 0) {
		log_info("told the relay %zu attachment%s journaled", r->n,
			 r->n == 1 ? " is" : "s are");
	} else {
		/* The relay keeps them; asked again later (a repeat is a
		 * no-op there). */
		log_err("blobs_journaled: %s; asked again later",
			bv_client_strerror(rc));
		a->report_after_ms = bv_now_ms() + a->retry_ms;
	}
	jstore_ids_free(r->blobs, r->n);
	bv_free(r);
}

/*
 * Tells the relay which attachments the case file holds, once their
 * journalpost has its kvittering (100 a call): only then may its
 * retention clock start. What was told is recorded, so a restart tells
 * the rest.
 */
static void
report_blobs(struct arch *a)
{
	struct report *r;
	int rc;

	if (!a->online || a->reporting || bv_now_ms() < a->report_after_ms)
		return;
	r = bv_calloc(1, sizeof(*r));
	if (!r)
		return;
	r->a = a;
	rc = jstore_blobs_unreported(a->j, 100, &r->blobs, &r->n);
	if (rc < 0 || r->n == 0) {
		jstore_ids_free(r->blobs, r->n);
		bv_free(r);
		return;
	}
	rc = bv_client_blobs_journaled(a->c, (const char *const *)r->blobs,
				       r->n, on_reported, r);
	if (rc < 0) {
		log_info("blobs_journaled: %s; asked again later",
			 bv_client_strerror(rc));
		a->report_after_ms = bv_now_ms() + a->retry_ms;
		jstore_ids_free(r->blobs, r->n);
		bv_free(r);
		return;
	}
	a->reporting = 1;
}

/* ------------------------------------------------------- changed keys */

/*
 * A participant's device has a new identity key: a reinstall, a new phone
 * (or, if the relay lied, someone else). A person decides that by comparing
 * safety numbers; the case file cannot, and until the key is accepted the
 * device's messages stay unreadable here (never journaled) and every
 * journaled receipt to the conversation is held. So the archive accepts it
 * at the next tick and says so in its log: the participants' own apps
 * still ask their users, and the case file only records what was said.
 *
 * Puts (account, device) on the list to accept, not before not_before_ms;
 * 1 when added, 0 when it is there already, or -1 when the list is full
 * (the next message from it brings it back).
 */
static int
keychange_add(struct arch *a, const char *account, uint32_t device,
	      int64_t not_before_ms)
{
	struct keychange *k;
	size_t i;

	for (i = 0; i < a->n_keychanges; i++)
		if (a->keychanges[i].device == device &&
		    !strcmp(a->keychanges[i].account, account))
			return 0;
	if (a->n_keychanges == KEYCHANGES_MAX)
		return -1;
	k = &a->keychanges[a->n_keychanges++];
	snprintf(k->account, sizeof(k->account), "%s", account);
	k->device = device;
	k->not_before_ms = not_before_ms;
	return 1;
}

static void
on_key_changed(struct bv_client *c, void *user, const char *account,
	       uint32_t device)
{
	struct arch *a = user;

	(void)c;
	/* Said once, not for every message that comes under the key. */
	switch (keychange_add(a, account, device, 0)) {
	case 1:
		bv_log(BV_LOG_WARN,
		       "archiver: identity key of %s/%u changed (a reinstall "
		       "or a new phone); the archive accepts it to go on "
		       "journaling",
		       account, (unsigned)device);
		break;
	case -1:
		log_err("too many key changes at once; %s/%u is accepted when "
			"it is seen again",
			account, (unsigned)device);
		break;
	default:
		break;
	}
}

/* Asks libbvchat to trust the changed keys seen (one try per tick). */
static void
accept_keys(struct arch *a)
{
	int64_t now = bv_now_ms();
	size_t i = 0;
	int rc;

	while (a->online && i < a->n_keychanges) {
		struct keychange *k = &a->keychanges[i];

		if (k->not_before_ms > now) {
			i++;
			continue;
		}
		rc = bv_client_accept_identity(a->c, k->account, k->device);
		if (rc == BV_EUNAVAILABLE)
			return; /* offline: next tick */
		if (rc < 0)
			log_err("cannot accept the key of %s/%u: %s",
				k->account, (unsigned)k->device,
				bv_client_strerror(rc));
		/* Under way (or hopeless until seen again): off the list. */
		a->keychanges[i] = a->keychanges[--a->n_keychanges];
	}
}

static void
on_accepted(struct bv_client *c, void *user, const char *account,
	    uint32_t device, int rc)
{
	struct arch *a = user;

	(void)c;
	if (rc == 0) {
		log_info("accepted the new identity key of %s/%u; its held "
			 "and unreadable messages are asked for again",
			 account, (unsigned)device);
		/* On record in the case file: the next transcript of each
		 * of the person's conversations says so. */
		rc = jstore_keychange_add(a->j, account, device, bv_now_ms());
		if (rc < 0)
			log_err("cannot record the accepted key of %s/%u for "
				"the transcripts: %s",
				account, (unsigned)device,
				bv_client_strerror(rc));
		return;
	}
	log_err("accepting the key of %s/%u failed (%s); again in a minute",
		account, (unsigned)device, bv_client_strerror(rc));
	keychange_add(a, account, device, bv_now_ms() + 60000);
}

/* ------------------------------------------------------------ the loop */

static void
on_tick(uv_timer_t *t)
{
	struct arch *a = t->data;

	if (a->busy || a->stopping)
		return;
	a->busy = 1;
	accept_keys(a);
	poll_fiks(a);
	if (bv_client_conversations(a->c, cut_conversation, a) < 0)
		log_err("cannot read the history");
	drive_batches(a);
	jstore_batches(a->j, JS_JOURNALED, announce_cb, a);
	report_blobs(a);
	a->busy = 0;
}

static void
on_status(struct bv_client *c, void *user, enum bv_client_status st, int code)
{
	struct arch *a = user;

	(void)c;
	switch (st) {
	case BV_CLIENT_ONLINE:
		a->online = 1;
		log_info("online");
		break;
	case BV_CLIENT_OFFLINE:
		a->online = 0;
		break;
	case BV_CLIENT_REFUSED:
	case BV_CLIENT_DISPLACED:
		log_err("the relay refused this device (%s): stopping",
			bv_client_strerror(code));
		a->exit_code = EXIT_FAIL;
		a->stopping = 1;
		uv_stop(&a->loop);
		break;
	default:
		break;
	}
}

static void
on_error(struct bv_client *c, void *user, int code, const char *message_id,
	 const char *what)
{
	(void)c;
	(void)user;
	log_err("%s (%s)%s%s", what, bv_client_strerror(code),
		message_id ? " message " : "", message_id ? message_id : "");
}

static void
on_signal(uv_signal_t *s, int signum)
{
	struct arch *a = s->data;

	log_info("signal %d: stopping", signum);
	a->stopping = 1;
	uv_stop(&a->loop);
}

/* ------------------------------------------------------------ commands */

static void
usage(FILE *f)
{
	fputs("usage: bvchat-archiver [options] run | status | retry "
	      "--batch ID\n"
	      "       | acknowledge --message ID --attachment N [--note "
	      "TEXT]\n"
	      "\n"
	      "The municipality's archive device: journals every case "
	      "conversation into the\n"
	      "case file over FIKS IO (docs/fiks.md). Enroll the profile "
	      "first with\n"
	      "`bvchat --profile DIR enroll --token T` and make its account "
	      "the tenant's\n"
	      "archive (`bvchat-relay admin archive-set`).\n"
	      "\n"
	      "  run      receive, journal and announce until SIGTERM or "
	      "SIGINT\n"
	      "  status   list the batches and where each is, and the "
	      "attachments that\n"
	      "           could not be fetched; exit 1 when one has failed\n"
	      "  retry --batch ID   send a failed batch again (same key: "
	      "never twice)\n"
	      "  acknowledge --message ID --attachment N [--note TEXT]\n"
	      "           an operator has seen that file N (from 0) of "
	      "message ID could\n"
	      "           not be archived; status lists it, no longer as "
	      "a failure\n"
	      "\n"
	      "  --profile DIR          the device (DIR/store.db, "
	      "DIR/store.key); the\n"
	      "                         journal state is DIR/journal.db\n"
	      "  --relay HOST:PORT      default 127.0.0.1:8480\n"
	      "  --fiks FILE            FIKS IO account configuration "
	      "(docs/fiks.md)\n"
	      "  --archive-account UUID the archive's FIKS IO konto\n"
	      "  --archive-cert PEM     pin the archive's certificate "
	      "(else the katalog's)\n"
	      "  --fagsystem NAME       referanseEksternNoekkel/fagsystem of "
	      "the saksmappe\n"
	      "                         (default bvchat; its noekkel is the "
	      "case id)\n"
	      "  --quiet-seconds N      a journalpost after N s without "
	      "messages (default 7200)\n"
	      "  --by-day 0|1           and at the end of each day (default "
	      "1)\n"
	      "  --retry-seconds N      first wait after a failed attempt, "
	      "doubling (default 60)\n"
	      "  --max-attempts N       then failed (default 8)\n"
	      "  --reply-timeout N      seconds without kvittering before "
	      "trying again\n"
	      "                         (default 900)\n"
	      "  --timezone TZ          of the transcripts (default "
	      "Europe/Oslo)\n"
	      "\n"
	      "Exit status: 0 success, 1 failure, 2 bad usage.\n",
	      f);
}

static int
status_cb(const struct jbatch *b, void *arg)
{
	int *failed = arg;

	printf("%s %-9s attempts=%d messages=%d journal=%s conversation=%s",
	       b->id, jstate_name(b->state), b->attempts, b->n_messages,
	       b->journal[0] ? b->journal : "-", b->conversation);
	if (b->error[0])
		printf(" error=\"%s\"", b->error);
	putchar('\n');
	*failed += b->state == JS_FAILED;
	return 0;
}

/* A file staff must know is not in the case file. */
static int
att_status_cb(void *arg, const struct jatt_failure *fl)
{
	char when[40], note[TRANSCRIPT_SUBJECT_MAX + 4];
	int *failed = arg;

	printf("attachment %d of message %s failed: %s (%s); batch=%s", fl->idx,
	       fl->message_id, att_failure(fl->code),
	       bv_client_strerror(fl->code), fl->batch_id ? fl->batch_id : "-");
	if (fl->acknowledged_ms > 0) {
		/* Seen by an operator: listed, no longer a failure. */
		transcript_time(fl->acknowledged_ms, when, sizeof(when));
		transcript_line(fl->note ? fl->note : "",
				fl->note ? strlen(fl->note) : 0,
				TRANSCRIPT_SUBJECT_MAX, note, sizeof(note));
		printf("; acknowledged %s%s%s", when, note[0] ? ": " : "",
		       note);
	} else {
		(*failed)++;
	}
	putchar('\n');
	return 0;
}

static char *
read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	long len;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) > 0 && len < 65536 &&
	    fseek(f, 0, SEEK_SET) == 0) {
		buf = bv_malloc((size_t)len + 1);
		if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
			bv_free(buf);
			buf = NULL;
		} else if (buf) {
			buf[len] = '\0';
		}
	}
	fclose(f);
	return buf;
}

static int
parse_num(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

int
main(int argc, char **argv)
{
	const char *profile = NULL, *relay = "127.0.0.1:8480", *fiks = NULL;
	const char *cmd = NULL, *batch = NULL, *cert = NULL, *tz = NULL;
	const char *att_mid = NULL, *note = NULL;
	uint8_t key[BV_CLIENT_STORE_KEY_LEN];
	struct bv_client_opts o;
	struct arch a;
	char host[256], path[4096], err[256];
	int64_t quiet = 7200, by_day = 1, retry = 60, attempts = 8, reply = 900,
		att_idx = -1, v;
	int i, port = 8480, rc, failed = 0;

	memset(&a, 0, sizeof(a));
	a.fagsystem = "bvchat";
	for (i = 1; i < argc; i++) {
		const char *opt = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
		int64_t *num = NULL;

		if (!strcmp(opt, "--help") || !strcmp(opt, "-h")) {
			usage(stdout);
			return EXIT_OK;
		}
		if (opt[0] != '-') {
			if (cmd) {
				usage(stderr);
				return EXIT_USAGE;
			}
			cmd = opt;
			continue;
		}
		if (!val) {
			fprintf(stderr, "bvchat-archiver: %s needs a value\n",
				opt);
			return EXIT_USAGE;
		}
		i++;
		if (!strcmp(opt, "--profile"))
			profile = val;
		else if (!strcmp(opt, "--relay"))
			relay = val;
		else if (!strcmp(opt, "--fiks"))
			fiks = val;
		else if (!strcmp(opt, "--archive-account"))
			a.archive_account = val;
		else if (!strcmp(opt, "--archive-cert"))
			cert = val;
		else if (!strcmp(opt, "--fagsystem"))
			a.fagsystem = val;
		else if (!strcmp(opt, "--batch"))
			batch = val;
		else if (!strcmp(opt, "--message"))
			att_mid = val;
		else if (!strcmp(opt, "--attachment"))
			num = &att_idx;
		else if (!strcmp(opt, "--note"))
			note = val;
		else if (!strcmp(opt, "--timezone"))
			tz = val;
		else if (!strcmp(opt, "--quiet-seconds"))
			num = &quiet;
		else if (!strcmp(opt, "--by-day"))
			num = &by_day;
		else if (!strcmp(opt, "--retry-seconds"))
			num = &retry;
		else if (!strcmp(opt, "--max-attempts"))
			num = &attempts;
		else if (!strcmp(opt, "--reply-timeout"))
			num = &reply;
		else {
			fprintf(stderr, "bvchat-archiver: unknown option %s\n",
				opt);
			return EXIT_USAGE;
		}
		if (num) {
			if (parse_num(val, 0, 31536000, &v) < 0) {
				fprintf(stderr,
					"bvchat-archiver: %s: not a number of "
					"0 … 31536000\n",
					opt);
				return EXIT_USAGE;
			}
			*num = v;
		}
	}
	if (!cmd || !profile ||
	    (strcmp(cmd, "run") && strcmp(cmd, "status") &&
	     strcmp(cmd, "retry") && strcmp(cmd, "acknowledge")) ||
	    (!strcmp(cmd, "retry") && !batch) ||
	    (!strcmp(cmd, "acknowledge") &&
	     (!att_mid || att_idx < 0 || (note && strlen(note) > 200))) ||
	    (!strcmp(cmd, "run") && (!fiks || !a.archive_account))) {
		fprintf(stderr, "bvchat-archiver: %s\n",
			!cmd	   ? "which command? (run, status, retry, "
				     "acknowledge)"
			: !profile ? "--profile is required"
				   : "run needs --fiks and --archive-account; "
				     "retry needs --batch; acknowledge needs "
				     "--message and --attachment (and a --note "
				     "of at most 200 bytes)");
		return EXIT_USAGE;
	}
	if (attempts < 1 || (quiet == 0 && !by_day)) {
		fprintf(stderr, "bvchat-archiver: --max-attempts must be at "
				"least 1, and batches need --quiet-seconds or "
				"--by-day\n");
		return EXIT_USAGE;
	}
	bv_log_set_level(BV_LOG_INFO);
	setenv("TZ", tz ? tz : (getenv("TZ") ? getenv("TZ") : "Europe/Oslo"),
	       1);
	tzset();
	a.quiet_ms = quiet * 1000;
	a.by_day = by_day != 0;
	a.retry_ms = retry * 1000 > 0 ? retry * 1000 : 100;
	a.max_attempts = (int)attempts;
	a.reply_timeout_ms = reply * 1000;
	a.ttl_ms = a.reply_timeout_ms > 3600000 ? a.reply_timeout_ms : 0;

	if (profile_key("bvchat-archiver", profile, 0, key) < 0)
		return EXIT_FAIL;
	snprintf(path, sizeof(path), "%s/journal.db", profile);
	rc = jstore_open(path, key, &a.j);
	if (rc < 0) {
		fprintf(stderr, "bvchat-archiver: cannot open %s: %s\n", path,
			bv_client_strerror(rc));
		bv_wipe(key, sizeof(key));
		return EXIT_FAIL;
	}
	if (!strcmp(cmd, "status")) {
		bv_wipe(key, sizeof(key));
		rc = jstore_batches(a.j, -1, status_cb, &failed);
		if (rc == 0)
			rc = jstore_att_failures(a.j, att_status_cb, &failed);
		jstore_close(a.j);
		return rc < 0 || failed ? EXIT_FAIL : EXIT_OK;
	}
	if (!strcmp(cmd, "acknowledge")) {
		bv_wipe(key, sizeof(key));
		rc = jstore_att_acknowledge(a.j, att_mid, (int)att_idx,
					    note ? note : "", bv_now_ms());
		if (rc == 0)
			fprintf(stderr,
				"bvchat-archiver: attachment %d of message %s "
				"has not failed\n",
				(int)att_idx, att_mid);
		jstore_close(a.j);
		return rc == 1 ? EXIT_OK : EXIT_FAIL;
	}
	if (!strcmp(cmd, "retry")) {
		struct jbatch b;

		bv_wipe(key, sizeof(key));
		rc = jstore_batch_get(a.j, batch, &b);
		if (rc == 1 && b.state == JS_FAILED) {
			b.state = JS_READY;
			b.attempts = 0;
			b.next_try_ms = bv_now_ms();
			snprintf(b.error, sizeof(b.error),
				 "retried by an operator");
			rc = jstore_batch_update(a.j, &b);
		} else if (rc >= 0) {
			fprintf(stderr, "bvchat-archiver: no failed batch %s\n",
				batch);
			rc = -1;
		}
		jstore_close(a.j);
		return rc < 0 ? EXIT_FAIL : EXIT_OK;
	}

	/* run */
	if (profile_relay(relay, host, sizeof(host), &port) < 0) {
		fprintf(stderr, "bvchat-archiver: --relay HOST:PORT\n");
		return EXIT_USAGE;
	}
	if (cert && !(a.archive_cert = read_file(cert))) {
		fprintf(stderr, "bvchat-archiver: cannot read %s\n", cert);
		return EXIT_FAIL;
	}
	rc = fiks_config_load(fiks, &a.fcfg, err, sizeof(err));
	if (rc == 0)
		rc = fiks_client_new(&a.fcfg, &a.fiks);
	if (rc < 0) {
		fprintf(stderr, "bvchat-archiver: %s: %s %s\n", fiks,
			fiks_strerror(rc), rc == BV_ECONFIG ? err : "");
		return EXIT_FAIL;
	}
	uv_loop_init(&a.loop);
	memset(&o, 0, sizeof(o));
	snprintf(path, sizeof(path), "%s/store.db", profile);
	o.store_path = path;
	o.store_key = key;
	o.relay_host = host;
	o.relay_port = port;
	o.loop = &a.loop;
	o.on_status = on_status;
	o.on_error = on_error;
	o.on_sent = on_sent;
	o.on_key_changed = on_key_changed;
	o.on_identity_accepted = on_accepted;
	o.user = &a;
	/* The case file reads nobody's messages. */
	o.no_delivery_receipts = 1;
	rc = bv_client_new(&o, &a.c);
	bv_wipe(key, sizeof(key));
	if (rc == 0)
		rc = bv_client_connect(a.c);
	if (rc < 0) {
		fprintf(stderr, "bvchat-archiver: %s\n",
			bv_client_strerror(rc));
		return EXIT_FAIL;
	}
	uv_timer_init(&a.loop, &a.tick);
	a.tick.data = &a;
	uv_timer_start(&a.tick, on_tick, TICK_MS, TICK_MS);
	uv_signal_init(&a.loop, &a.sigterm);
	uv_signal_init(&a.loop, &a.sigint);
	a.sigterm.data = a.sigint.data = &a;
	uv_signal_start(&a.sigterm, on_signal, SIGTERM);
	uv_signal_start(&a.sigint, on_signal, SIGINT);
	log_info("running: account %s, archive %s", bv_client_account(a.c),
		 a.archive_account);
	uv_run(&a.loop, UV_RUN_DEFAULT);

	/* bvchat.h's order for a borrowed loop: close, run it dry, free. */
	uv_timer_stop(&a.tick);
	uv_close((uv_handle_t *)&a.tick, NULL);
	uv_close((uv_handle_t *)&a.sigterm, NULL);
	uv_close((uv_handle_t *)&a.sigint, NULL);
	bv_client_close(a.c);
	uv_run(&a.loop, UV_RUN_DEFAULT);
	bv_client_free(a.c);
	while (a.announcing) /* still JOURNALED: told at the next start */
		announce_free(&a, a.announcing);
	uv_loop_close(&a.loop);
	fiks_client_free(a.fiks);
	fiks_config_free(&a.fcfg);
	jstore_close(a.j);
	bv_free(a.archive_cert);
	return a.exit_code;
}
