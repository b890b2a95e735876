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
	size_t i;

	for (i = 0; i < p->n; i++) {
		bv_free((void *)p->m[i].message_id);
		bv_free((void *)p->m[i].sender);
		bv_free((void *)p->m[i].subject);
		bv_free((void *)p->m[i].thread);
		bv_free((void *)p->m[i].thread_subject);
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

/*
 * Builds the documents of the first n pending messages of conversation
 * and records the batch. Returns 0, 1 when the conversation is not in the
 * case view (yet), or a code.
 */
static int
cut_batch(struct arch *a, const char *conversation, struct pending *p, size_t n)
{
	struct fiks_arkiv_part parts[64];
	struct fiks_arkiv_dokument doc;
	struct fiks_arkiv_journalpost jp;
	struct fiks_file files[2];
	struct conv_case k;
	struct tinfo info;
	struct jbatch b;
	const char *ids[BATCH_MAX];
	char *text = NULL, *xml = NULL, title[512], date[16], err[256];
	char subject[TRANSCRIPT_SUBJECT_MAX + 4], public_title[160];
	const char *thread;
	int all_email;
	char names[64][80];
	size_t text_len = 0, xml_len = 0, i, j, n_parts = 0;
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
	memset(&b, 0, sizeof(b));
	bv_uuid_generate(b.id);
	snprintf(b.conversation, sizeof(b.conversation), "%s", conversation);
	snprintf(b.case_id, sizeof(b.case_id), "%s", k.case_id);
	b.first_seq = p->seq[0];
	b.last_seq = p->seq[n - 1];
	b.n_messages = (int)n;
	b.created_ms = bv_now_ms();
	b.next_try_ms = b.created_ms;

	memset(&info, 0, sizeof(info));
	info.municipality = k.municipality;
	info.case_number = k.case_number;
	info.conversation = conversation;
	info.kind = k.kind;
	info.batch_id = b.id;
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
	memset(&doc, 0, sizeof(doc));
	doc.tittel = public_title;
	doc.filnavn = "samtale.txt";
	doc.format = "TXT";
	doc.mime = "text/plain";
	doc.hoveddokument = 1;
	memset(&jp, 0, sizeof(jp));
	jp.system = "bvchat";
	jp.fagsystem = a->fagsystem;
	jp.mappe_noekkel = k.case_id;
	jp.noekkel = b.id;
	jp.tittel = title;
	if (strcmp(title, public_title))
		jp.offentlig_tittel = public_title;
	/* Compiled by the municipality from both sides of a conversation:
	 * an internal document, not a letter in or out. */
	jp.journalposttype = "X";
	jp.dokumentets_dato = date;
	jp.tilgangsrestriksjon = "13";
	jp.skjermingshjemmel = "Offl. § 13, jf. bvl. § 13-1";
	jp.parter = parts;
	jp.n_parter = n_parts;
	jp.dokumenter = &doc;
	jp.n_dokumenter = 1;
	rc = fiks_arkiv_arkivmelding(&jp, &xml, &xml_len, err, sizeof(err));
	if (rc < 0) {
		log_err("batch of conversation %s: arkivmelding: %s (%s)",
			conversation, fiks_strerror(rc), err);
		goto out;
	}
	files[0] = (struct fiks_file){FIKS_ARKIV_ARKIVMELDING_FILE,
				      "application/xml",
				      (const unsigned char *)xml, xml_len};
	files[1] = (struct fiks_file){"samtale.txt", "text/plain",
				      (const unsigned char *)text, text_len};
	for (i = 0; i < n; i++)
		ids[i] = p->m[i].message_id;
	rc = jstore_batch_create(a->j, &b, ids, n, files, 2);
	if (rc == 0)
		log_info("batch %s: %zu message%s of conversation %s "
			 "(history %" PRId64 "…%" PRId64 ")",
			 b.id, n, n == 1 ? "" : "s", conversation, b.first_seq,
			 b.last_seq);
out:
	if (text)
		bv_wipe(text, text_len);
	free(text);
	free(xml);
	conv_case_free(&k);
	return rc;
}

static int
cut_conversation(void *arg, const struct bv_client_conversation *cv)
{
	struct arch *a = arg;
	struct pending *p;
	int64_t cursor, now = bv_now_ms();
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

static int
announce_cb(const struct jbatch *b, void *arg)
{
	struct arch *a = arg;
	struct jbatch u = *b;
	char **ids = NULL;
	size_t n = 0, off;
	int rc;

	if (!a->online)
		return 1;
	rc = jstore_batch_messages(a->j, b->id, &ids, &n);
	for (off = 0; rc == 0 && off < n; off += 100)
		rc = bv_client_mark_journaled(
			a->c, b->conversation, (const char *const *)ids + off,
			n - off > 100 ? 100 : n - off, b->journal);
	jstore_ids_free(ids, n);
	if (rc < 0) {
		log_err("batch %s: cannot tell the conversation (%s)", b->id,
			bv_client_strerror(rc));
		return 0;
	}
	u.state = JS_ANNOUNCED;
	if (jstore_batch_update(a->j, &u) < 0)
		log_err("batch %s: cannot record its state", b->id);
	return 0;
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

/* ------------------------------------------------------------ the loop */

static void
on_tick(uv_timer_t *t)
{
	struct arch *a = t->data;

	if (a->busy || a->stopping)
		return;
	a->busy = 1;
	poll_fiks(a);
	if (bv_client_conversations(a->c, cut_conversation, a) < 0)
		log_err("cannot read the history");
	drive_batches(a);
	jstore_batches(a->j, JS_JOURNALED, announce_cb, a);
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
	      "  status   list the batches and where each is; exit 1 when "
	      "one has failed\n"
	      "  retry --batch ID   send a failed batch again (same key: "
	      "never twice)\n"
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
	uint8_t key[BV_CLIENT_STORE_KEY_LEN];
	struct bv_client_opts o;
	struct arch a;
	char host[256], path[4096], err[256];
	int64_t quiet = 7200, by_day = 1, retry = 60, attempts = 8, reply = 900,
		v;
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
	     strcmp(cmd, "retry")) ||
	    (!strcmp(cmd, "retry") && !batch) ||
	    (!strcmp(cmd, "run") && (!fiks || !a.archive_account))) {
		fprintf(stderr, "bvchat-archiver: %s\n",
			!cmd	   ? "which command? (run, status, retry)"
			: !profile ? "--profile is required"
				   : "run needs --fiks and --archive-account; "
				     "retry needs --batch");
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
		jstore_close(a.j);
		return rc < 0 || failed ? EXIT_FAIL : EXIT_OK;
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
	uv_loop_close(&a.loop);
	fiks_client_free(a.fiks);
	fiks_config_free(&a.fcfg);
	jstore_close(a.j);
	bv_free(a.archive_cert);
	return a.exit_code;
}
