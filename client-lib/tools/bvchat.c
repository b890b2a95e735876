/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * bvchat.c: the bvchat command-line client (issues 3 and 4), using only
 * bvchat.h: `enroll`, `cases`, `conversation-create`, `send`, `listen` and
 * an interactive `chat` in a case conversation, so that people on a case
 * can chat from terminals against a relay. One profile directory holds the
 * store and its key. It keeps no contacts (who is in a conversation is the
 * relay's case view) and draws nothing; every network wait is bounded
 * except an open-ended `listen` or `chat`.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <bvchat.h>

#include "attach.h"
#include "invite.h"
#include "profile.h"

#define MAX_MEMBERS	   20
#define ENROLL_TIMEOUT_MS  30000
#define SEND_TIMEOUT_MS	   15000
#define CHAT_QUEUE_MAX	   256 /* typed lines waiting for their turn */
#define CONNECT_TIMEOUT_MS 15000
/* Sends with files: the uploads come first; a fetch to save one. */
#define ATTACH_TIMEOUT_MS 120000
/* Bytes of an attachment's name shown; longer ones end in "…". */
#define SHOW_NAME_MAX 80

/* A file to send, checked when it was named. */
struct out_file {
	char *path;
	const char *type;
	int64_t size;
	char name[ATTACH_NAME_CAP];
};

/* An attachment being saved: path holds our empty placeholder (made with
 * O_EXCL) until the fetch replaces it; removed again if it fails. */
struct save {
	struct save *next;
	struct cli *s;
	int done;
	int rc;
	char path[4096];
};

struct chat_line {
	struct chat_line *next;
	char subject[BV_CLIENT_SUBJECT_MAX + 1]; /* "": a chat text */
	char thread[BV_CLIENT_MESSAGE_ID_LEN + 1];
	size_t n_files;
	struct out_file files[BV_CLIENT_ATTACHMENTS_MAX];
	char text[];
};

struct cli {
	uv_loop_t loop;
	uv_timer_t timer;
	int timer_on;
	int timed_out;
	/* SIGINT, SIGTERM, SIGHUP: end the command, close the store and the
	 * connection properly, exit 128 + the signal's number. */
	uv_signal_t sig[3];
	int n_sig;
	int interrupted; /* the signal's number, 0 when none came */
	struct bv_client *c;
	int online;   /* BV_CLIENT_CAUGHT_UP or BV_CLIENT_ENROLLED seen */
	int enrolled; /* BV_CLIENT_ENROLLED seen */
	int refused;  /* BV_CLIENT_REFUSED code, 0 when none */
	int sent;     /* on_sent calls */
	int sent_rc;  /* the first failed send's code */
	int last_err; /* the last bv_error_cb code */
	int held;     /* a send waits for a changed key to be accepted */
	int accepted; /* on_identity_accepted calls */
	int accept_rc;
	int cases;    /* on_cases calls */
	int cases_rc; /* the last one's rc */
	int created;  /* conversation_create answered */
	int created_rc;
	char created_id[BV_CLIENT_ACCOUNT_LEN + 1];
	int mark_read; /* chat: what is printed is read; tell the sender */
	unsigned rx;   /* messages printed */
	FILE *rx_out;  /* where incoming messages go */
	/* chat */
	union {
		uv_tty_t tty;
		uv_pipe_t pipe;
	} in;
	int in_open;
	int in_eof;
	int pending;	      /* chat sends without an outcome yet (0 or 1) */
	size_t pending_files; /* files on that send */
	int hinted;	      /* chat: how to save was said */
	struct save *saves;   /* fetches without an outcome yet */
	/* Lines typed but not yet handed to the library: one send at a time,
	 * so lines arrive in the order they were typed. */
	struct chat_line *q_head, *q_tail;
	unsigned q_len;
	const char *conversation;
	/* chat: /epost SUBJECT waits for its body; the last thread shown. */
	char subject[BV_CLIENT_SUBJECT_MAX + 1];
	int want_body;
	char thread[BV_CLIENT_MESSAGE_ID_LEN + 1];
	char thread_subject[BV_CLIENT_SUBJECT_MAX + 1];
	char line[BV_CLIENT_TEXT_MAX + 1];
	size_t line_len;
	int line_long; /* the current line is over BV_CLIENT_TEXT_MAX */
};

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: bvchat [--profile DIR] [--relay HOST:PORT] COMMAND "
		"...\n"
		"\n"
		"  enroll --token TOKEN [--replaces DEVICE]\n"
		"  enroll --invite CODE [--replaces DEVICE]\n"
		"        first start of this device: prints the account uuid "
		"and device id;\n"
		"        --invite: with the code from the caseworker "
		"(XXXXX-XXXXX) instead\n"
		"        of a token, redeemed at the relay first; "
		"--replaces: a reinstall\n"
		"        that takes over DEVICE of the token's account\n"
		"  cases\n"
		"        the cases this account is on, with your role, the "
		"people you may see\n"
		"        and the conversations with who is in them (from the "
		"relay)\n"
		"  conversation-create --case CASE [--kind team|citizens] "
		"[--member ACCOUNT]...\n"
		"        starts a conversation in the case and prints its "
		"uuid (kind team\n"
		"        by default: a citizen names nobody, staff name the "
		"citizen)\n"
		"  send [--conversation UUID] [--subject S [--thread ID]] "
		"[--attach PATH]... TEXT\n"
		"        sends TEXT to everyone in the conversation, waits (at "
		"most 15 s) until\n"
		"        the relay stored it, prints its id; with --subject a "
		"secure e-post\n"
		"        (a new thread, or with --thread the id of its first "
		"e-post a reply;\n"
		"        a citizen's carries the municipality's expected "
		"answer "
		"time); --attach\n"
		"        (up to 10) sends files with it, TEXT then optional "
		"without --subject:\n"
		"        JPEG, PNG, HEIC, WebP, PDF, MP3, M4A, Ogg, WebM audio "
		"or UTF-8 text,\n"
		"        the type read from the content (at most 2 min)\n"
		"  save --conversation UUID N [DIR]\n"
		"  save --message ID N [DIR]\n"
		"        saves attachment N as `history`, `listen` and `chat` "
		"number it\n"
		"        ([vedlegg N]), or the Nth of message ID, into DIR "
		"(default .) under\n"
		"        its name made safe (never replacing a file: \"name "
		"(2).pdf\"), mode\n"
		"        0600; prints the path\n"
		"  listen [--count N] [--timeout S]\n"
		"        prints each message as `time sender: text`, "
		"exits after N\n"
		"        messages or S seconds (exit 1 when S passes before "
		"N)\n"
		"  chat [--conversation UUID]\n"
		"        sends each line read from standard input, prints "
		"incoming messages\n"
		"        (and tells their senders they were read). A line "
		"/epost SUBJECT makes\n"
		"        the next line an e-post starting a thread; /reply "
		"TEXT answers the\n"
		"        last e-post thread shown; /attach PATH [PATH...] "
		"[-- TEXT] sends\n"
		"        files (\"...\" around a path with spaces) with "
		"an optional text;\n"
		"        /save N [DIR] saves [vedlegg N]; //TEXT sends /TEXT\n"
		"        send and chat without --conversation: your only open "
		"conversation\n"
		"  whoami\n"
		"        prints this profile's account uuid and device id "
		"(no network)\n"
		"  conversations\n"
		"        lists the conversations this profile has messages "
		"in (no network)\n"
		"  history --conversation UUID\n"
		"        prints its messages as `time sender [state]: "
		"text` (no network)\n"
		"  safety --peer ACCOUNT [--device N]\n"
		"        prints the safety number of this device and that one "
		"(no network);\n"
		"        compare it with the other person to know nobody is "
		"in between\n"
		"  accept --peer ACCOUNT [--device N]\n"
		"        after \"identity key changed\": trusts the new key "
		"and prints the new\n"
		"        safety number; held messages to that device then go "
		"out\n"
		"\n"
		"  --profile DIR     default ./bvchat-profile; the store is "
		"DIR/store.db, its\n"
		"                    32-byte key DIR/store.key (created 0600 "
		"by enroll).\n"
		"                    The key sits next to the store, so it "
		"protects the store\n"
		"                    at rest only as well as the directory's "
		"permissions do.\n"
		"  --relay HOST:PORT default 127.0.0.1:8480\n"
		"  --help            this text\n"
		"\n"
		"Everything written in a conversation goes to the case file "
		"(the municipality's\n"
		"archive) too. Options may come before or after the command. "
		"Exit status: 0\n"
		"on success, 1 on a failure (the reason on standard error), "
		"2 on bad usage,\n"
		"128 + N when ended by signal N (130: Ctrl-C); messages not "
		"yet sent are kept\n"
		"and sent on the next start.\n");
}

/* ---------------------------------------------------------------- */
/* Loop helpers                                                       */
/* ---------------------------------------------------------------- */

static void
on_timer(uv_timer_t *t)
{
	struct cli *s = t->data;

	s->timed_out = 1;
}

/* Ctrl-C on a terminal (or SIGTERM, or the terminal going away): without
 * this the process would die where it stands, in the middle of a store
 * transaction or a send, and leave its peer a dropped connection. */
static void
on_signal(uv_signal_t *h, int signum)
{
	struct cli *s = h->data;

	if (!s->interrupted)
		s->interrupted = signum;
}

static int
signals_start(struct cli *s)
{
	static const int nums[] = {SIGINT, SIGTERM, SIGHUP};
	size_t i;

	for (i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		if (uv_signal_init(&s->loop, &s->sig[i]) != 0)
			return -1;
		s->sig[i].data = s;
		s->n_sig++;
		if (uv_signal_start(&s->sig[i], on_signal, nums[i]) != 0)
			return -1;
	}
	return 0;
}

/* Runs the loop until *flag is set, ms passed (ms < 0: no bound), the relay
 * refused us or a signal came. Returns 1 when *flag was set. */
static int
run_until(struct cli *s, const int *flag, int ms)
{
	s->timed_out = 0;
	if (ms >= 0)
		uv_timer_start(&s->timer, on_timer, (uint64_t)ms, 0);
	while (!*flag && !s->timed_out && !s->refused && !s->interrupted)
		uv_run(&s->loop, UV_RUN_ONCE);
	uv_timer_stop(&s->timer);
	return *flag != 0;
}

/* ---------------------------------------------------------------- */
/* Callbacks                                                          */
/* ---------------------------------------------------------------- */

static void
on_status(struct bv_client *c, void *user, enum bv_client_status st, int code)
{
	struct cli *s = user;

	(void)c;
	switch (st) {
	case BV_CLIENT_ENROLLED:
		s->enrolled = 1;
		s->online = 1;
		break;
	case BV_CLIENT_CAUGHT_UP:
		s->online = 1;
		break;
	case BV_CLIENT_REFUSED:
		s->refused = code < 0 ? code : BV_EAUTH;
		break;
	case BV_CLIENT_DISPLACED:
		fprintf(stderr, "bvchat: another install of this device "
				"took over\n");
		s->refused = BV_EAUTH;
		break;
	default:
		break;
	}
}

/* Writes text with control characters (C0, DEL, C1 and the bidi
 * overrides and isolates) replaced by '?', so a peer cannot move the
 * cursor, clear the screen or fake a line from someone else. */
static void
put_sanitised(FILE *f, const char *text, size_t len)
{
	const unsigned char *p = (const unsigned char *)text;
	size_t i;

	for (i = 0; i < len; i++) {
		if (p[i] < 0x20 || p[i] == 0x7f) {
			fputc('?', f);
		} else if (p[i] == 0xc2 && i + 1 < len && p[i + 1] >= 0x80 &&
			   p[i + 1] <= 0x9f) {
			fputc('?', f);
			i++;
		} else if (p[i] == 0xe2 && i + 2 < len &&
			   ((p[i + 1] == 0x80 && p[i + 2] >= 0xaa &&
			     p[i + 2] <= 0xae) ||
			    (p[i + 1] == 0x81 && p[i + 2] >= 0xa6 &&
			     p[i + 2] <= 0xa9))) {
			fputc('?', f);
			i += 2;
		} else {
			fputc(p[i], f);
		}
	}
}

static void
put_time(FILE *f, int64_t time_ms)
{
	char when[32] = "?";
	time_t t = (time_t)(time_ms / 1000);
	struct tm tm;

	if (localtime_r(&t, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	fputs(when, f);
}

/* ---------------------------------------------------------------- */
/* The case view                                                      */
/* ---------------------------------------------------------------- */

/* Looks a person up in the stored case view: the roster's name. */
struct who {
	const char *account;
	char name[256];
	char role[40];
	int found;
};

static void
who_match(struct who *w, const struct bv_client_person *p, size_t n)
{
	size_t i;

	for (i = 0; i < n && !w->found; i++) {
		if (strcmp(p[i].account, w->account) != 0)
			continue;
		snprintf(w->name, sizeof(w->name), "%s",
			 p[i].name ? p[i].name : "the case file");
		snprintf(w->role, sizeof(w->role), "%s", p[i].role);
		w->found = 1;
	}
}

static int
who_cb(void *arg, const struct bv_client_case *cs)
{
	struct who *w = arg;
	size_t i;

	who_match(w, cs->people, cs->n_people);
	for (i = 0; i < cs->n_conversations && !w->found; i++)
		who_match(w, cs->conversations[i].members,
			  cs->conversations[i].n_members);
	return w->found;
}

/* "Name (role)" from the case view, else "account/device". */
static void
put_sender(struct bv_client *c, FILE *f, const char *account, uint32_t device)
{
	struct who w;

	memset(&w, 0, sizeof(w));
	w.account = account;
	bv_client_cases(c, who_cb, &w);
	if (w.found) {
		put_sanitised(f, w.name, strlen(w.name));
		fputs(" (", f);
		put_sanitised(f, w.role, strlen(w.role));
		fputc(')', f);
	} else {
		put_sanitised(f, account, strlen(account));
		fprintf(f, "/%u", (unsigned)device);
	}
}

/* A notice from the service, in plain bokmål: it is for the citizen. */
static void
put_notice(FILE *f, const struct bv_client_notice *n)
{
	const char *em = n->emergency_phone && n->emergency_phone[0]
				 ? n->emergency_phone
				 : "116 111";

	fputs("[Tjenesten] ", f);
	if (n->municipality && n->municipality[0]) {
		put_sanitised(f, n->municipality, strlen(n->municipality));
		fputs(": ", f);
	}
	if (strcmp(n->kind, "out_of_hours") != 0) {
		fputs("Melding fra tjenesten.", f);
		return;
	}
	fputs("Kontoret er stengt nå. Meldingen din er tatt imot og blir "
	      "lest når vi åpner igjen. Haster det, ring ",
	      f);
	if (n->phone) {
		fputs("barnevernvakten på ", f);
		put_sanitised(f, n->phone, strlen(n->phone));
		fputs(" eller ", f);
	}
	fputs("Alarmtelefonen for barn og unge på ", f);
	put_sanitised(f, em, strlen(em));
	fputc('.', f);
}

static void
on_notice(struct bv_client *c, void *user, const struct bv_client_notice *n)
{
	struct cli *s = user;

	(void)c;
	put_time(s->rx_out, n->time_ms);
	fputc(' ', s->rx_out);
	put_notice(s->rx_out, n);
	fputc('\n', s->rx_out);
	fflush(s->rx_out);
	s->rx++;
}

static void
on_cases(struct bv_client *c, void *user, int changed, int rc)
{
	struct cli *s = user;

	(void)c;
	(void)changed;
	s->cases++;
	s->cases_rc = rc;
}

static void
on_created(struct bv_client *c, void *arg, const char *conversation, int rc)
{
	struct cli *s = arg;

	(void)c;
	s->created = 1;
	s->created_rc = rc;
	if (conversation)
		snprintf(s->created_id, sizeof(s->created_id), "%s",
			 conversation);
}

static void
print_people(const struct bv_client_person *p, size_t n, const char *sep)
{
	size_t i;

	for (i = 0; i < n; i++) {
		fputs(i ? sep : "", stdout);
		if (!strcmp(p[i].role, BV_CLIENT_ROLE_ARCHIVE)) {
			fputs("the case file (journaled)", stdout);
		} else {
			put_sanitised(stdout, p[i].name ? p[i].name : "?",
				      p[i].name ? strlen(p[i].name) : 1);
			fputs(" (", stdout);
			put_sanitised(stdout, p[i].role, strlen(p[i].role));
			fputc(')', stdout);
		}
		if (!strcmp(sep, "\n    "))
			printf(" %s", p[i].account);
	}
}

static int
print_case(void *arg, const struct bv_client_case *cs)
{
	size_t i;

	(void)arg;
	fputs("case ", stdout);
	put_sanitised(stdout, cs->case_number, strlen(cs->case_number));
	if (cs->municipality[0]) {
		fputs(", ", stdout);
		put_sanitised(stdout, cs->municipality,
			      strlen(cs->municipality));
	}
	printf(" (%s): you are ", cs->case_id);
	put_sanitised(stdout, cs->role, strlen(cs->role));
	fputs("\n  people:\n    ", stdout);
	print_people(cs->people, cs->n_people, "\n    ");
	fputs("\n  conversations:\n", stdout);
	if (!cs->n_conversations)
		fputs("    (none)\n", stdout);
	for (i = 0; i < cs->n_conversations; i++) {
		const struct bv_client_case_conversation *cv =
			&cs->conversations[i];

		printf("    conversation %s ", cv->conversation);
		put_sanitised(stdout, cv->kind, strlen(cv->kind));
		if (cv->closed)
			fputs(" [closed]", stdout);
		fputs(": ", stdout);
		print_people(cv->members, cv->n_members, ", ");
		putchar('\n');
	}
	return 0;
}

/* The one open conversation of the view, for send and chat without
 * --conversation. */
struct only {
	int n;
	char id[BV_CLIENT_ACCOUNT_LEN + 1];
};

static int
only_cb(void *arg, const struct bv_client_case *cs)
{
	struct only *o = arg;
	size_t i;

	for (i = 0; i < cs->n_conversations; i++)
		if (!cs->conversations[i].closed && o->n++ == 0)
			snprintf(o->id, sizeof(o->id), "%s",
				 cs->conversations[i].conversation);
	return 0;
}

/* An e-post's head: `[e-post "SUBJECT", thread ID, answer by TIME] `. */
static void
put_email(FILE *f, const struct bv_client_message *m)
{
	if (!m->subject)
		return;
	fputs("[e-post \"", f);
	put_sanitised(f, m->subject, strlen(m->subject));
	fputs("\", thread ", f);
	put_sanitised(f, m->thread, strlen(m->thread));
	if (m->answer_by_ms > 0) {
		fputs(", answer expected by ", f);
		put_time(f, m->answer_by_ms);
	}
	fputs("] ", f);
}

/* ---------------------------------------------------------------- */
/* Attachments                                                        */
/* ---------------------------------------------------------------- */

/* What a failed send or fetch of files means, for the person. */
static const char *
att_strerror(int rc)
{
	switch (rc) {
	case BV_EBLOB_SIZE:
		return "a file is larger than the relay takes; nothing was "
		       "sent (BV_EBLOB_SIZE)";
	case BV_EQUOTA:
		return "the municipality's attachment storage is full; "
		       "nothing was sent, tell the municipality (BV_EQUOTA)";
	case BV_ETAMPERED:
		return "the attachment failed its check: changed or cut short "
		       "on the way; nothing was saved (BV_ETAMPERED)";
	case BV_ENOBLOB:
		return "the relay does not have this attachment: deleted "
		       "after its retention, or never uploaded (BV_ENOBLOB)";
	case BV_EBLOB:
		return "the upload did not arrive whole; nothing was sent "
		       "(BV_EBLOB)";
	default:
		return bv_client_strerror(rc);
	}
}

/* An attachment's name as shown: neutralised by put_sanitised(), cut on
 * a character boundary with "…" when over SHOW_NAME_MAX bytes. */
static void
put_att_name(FILE *f, const char *name)
{
	size_t len = strlen(name);

	if (len <= SHOW_NAME_MAX) {
		put_sanitised(f, name, len);
		return;
	}
	len = SHOW_NAME_MAX - 3;
	while (len > 0 && ((unsigned char)name[len] & 0xc0) == 0x80)
		len--;
	put_sanitised(f, name, len);
	fputs("\xe2\x80\xa6", f);
}

/* One line per attachment: `  [vedlegg N] NAME (TYPE, SIZE)`, N counted
 * from base + 1 (base < 0: not known, no number); with states, whether
 * ours failed or is still uploading, or the file was saved here. */
static void
put_attachments(FILE *f, const struct bv_client_message *m, long base,
		int states)
{
	size_t i;

	for (i = 0; i < m->n_attachments; i++) {
		const struct bv_client_attachment *a = &m->attachments[i];
		char size[32];

		attach_size_str(a->size, size, sizeof(size));
		if (base >= 0)
			fprintf(f, "  [vedlegg %ld] ", base + (long)i + 1);
		else
			fputs("  [vedlegg] ", f);
		put_att_name(f, a->name);
		fputs(" (", f);
		put_sanitised(f, a->type, strlen(a->type));
		fprintf(f, ", %s", size);
		if (states && m->state == BV_CLIENT_MSG_FAILED)
			fputs(", not sent", f);
		else if (states && a->state == BV_CLIENT_ATT_UPLOADING)
			fputs(", uploading", f);
		else if (states && a->state == BV_CLIENT_ATT_DOWNLOADED)
			fputs(", saved", f);
		fputs(")\n", f);
	}
}

/*
 * An attachment of the local history. Numbers are those shown: a
 * conversation's attachments counted from 1 in the history's order (ours
 * too), the same in `history`, `listen` and `chat`. Looked up by number n
 * (mid NULL), by message mid and n (1 …) within it, or, with mid and n 0,
 * only the count of the attachments before mid.
 */
struct att_at {
	const char *mid;
	long n;
	long count; /* attachments before the message looked at */
	int found;
	char message_id[BV_CLIENT_MESSAGE_ID_LEN + 1];
	int index;
	char name[BV_CLIENT_FILE_NAME_MAX + 1];
	char type[64];
};

static int
att_at_cb(void *arg, const struct bv_client_message *m)
{
	struct att_at *q = arg;
	const struct bv_client_attachment *a;
	long k = -1;

	if (q->mid && !strcmp(m->message_id, q->mid)) {
		if (q->n == 0) {
			q->found = 1;
			return 1;
		}
		if (q->n > (long)m->n_attachments)
			return 1;
		k = q->n - 1;
	} else if (!q->mid && q->n > q->count &&
		   q->n <= q->count + (long)m->n_attachments) {
		k = q->n - q->count - 1;
	}
	if (k < 0) {
		q->count += (long)m->n_attachments;
		return 0;
	}
	a = &m->attachments[k];
	snprintf(q->message_id, sizeof(q->message_id), "%s", m->message_id);
	snprintf(q->name, sizeof(q->name), "%s", a->name);
	snprintf(q->type, sizeof(q->type), "%s", a->type);
	q->index = (int)k;
	q->found = 1;
	return 1;
}

/* att_at over every conversation (a message id without one). */
struct att_all {
	struct bv_client *c;
	struct att_at *q;
	int rc;
};

static int
att_all_cb(void *arg, const struct bv_client_conversation *cv)
{
	struct att_all *w = arg;

	w->q->count = 0;
	w->rc = bv_client_history(w->c, cv->conversation, 0, att_at_cb, w->q);
	return w->rc < 0 || w->q->found;
}

/* Fills q (mid, n set) from conversation's history or, NULL, from all.
 * Returns 0 (q->found says whether it is there) or a BV_E* code. */
static int
att_lookup(struct bv_client *c, const char *conversation, struct att_at *q)
{
	struct att_all w;
	int r;

	if (conversation) {
		r = bv_client_history(c, conversation, 0, att_at_cb, q);
		return r < 0 ? r : 0;
	}
	w.c = c;
	w.q = q;
	w.rc = 0;
	r = bv_client_conversations(c, att_all_cb, &w);
	if (w.rc < 0)
		return w.rc;
	return r < 0 ? r : 0;
}

static void
on_saved(struct bv_client *c, void *arg, const char *message_id, int index,
	 int rc, const char *path, const uint8_t *data, size_t len)
{
	struct save *v = arg;
	struct cli *s = v->s;
	struct save **pp;

	(void)c;
	(void)message_id;
	(void)index;
	(void)path;
	(void)data;
	(void)len;
	v->done = 1;
	v->rc = rc;
	if (rc < 0)
		unlink(v->path); /* our empty placeholder: nothing was written */
	for (pp = &s->saves; *pp; pp = &(*pp)->next)
		if (*pp == v) {
			*pp = v->next;
			break;
		}
	if (!s->mark_read)
		return; /* `bvchat save` reports and frees it */
	/* chat: said here, and done with. */
	if (rc < 0) {
		fprintf(stderr, "bvchat: not saved: %s\n", att_strerror(rc));
	} else {
		fputs("bvchat: saved ", stderr);
		put_sanitised(stderr, v->path, strlen(v->path));
		fputc('\n', stderr);
	}
	free(v);
}

/* Fetches attachment q into a new file in dir named after it (sanitised,
 * never replacing one). Returns the save, finished later by on_saved(),
 * or NULL after saying why on standard error. */
static struct save *
save_start(struct cli *s, const struct att_at *q, const char *dir)
{
	char fname[ATTACH_NAME_CAP];
	struct save *v;
	int r;

	v = calloc(1, sizeof(*v));
	if (!v) {
		fprintf(stderr, "bvchat: save: out of memory\n");
		return NULL;
	}
	v->s = s;
	attach_file_name(q->name, q->type, fname);
	if (attach_reserve(dir, fname, v->path, sizeof(v->path)) < 0) {
		fputs("bvchat: save: cannot create a new file in ", stderr);
		put_sanitised(stderr, dir, strlen(dir));
		fprintf(stderr, ": %s\n", strerror(errno));
		free(v);
		return NULL;
	}
	r = bv_client_attachment_fetch(s->c, q->message_id, q->index, v->path,
				       on_saved, v);
	if (r < 0) {
		unlink(v->path);
		fprintf(stderr, "bvchat: save: %s\n",
			r == BV_EINVAL ? "not available (ours, still "
					 "uploading?)"
				       : att_strerror(r));
		free(v);
		return NULL;
	}
	v->next = s->saves;
	s->saves = v;
	return v;
}

/* ~/ at the start of a path typed in chat is the home directory. */
static int
expand_home(const char *in, size_t len, char *out, size_t cap)
{
	const char *home = getenv("HOME");
	int n;

	if (len >= 2 && in[0] == '~' && in[1] == '/' && home && home[0])
		n = snprintf(out, cap, "%s%.*s", home, (int)len - 1, in + 1);
	else
		n = snprintf(out, cap, "%.*s", (int)len, in);
	return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* Checks the file at path and fills f to send it (f->path malloc'd).
 * Returns 0, or -1 after saying why. */
static int
out_file_init(struct out_file *f, const char *path)
{
	const char *base = strrchr(path, '/');
	char why[200];

	memset(f, 0, sizeof(*f));
	if (attach_sniff(path, &f->type, &f->size, why, sizeof(why)) < 0) {
		fputs("bvchat: ", stderr);
		put_sanitised(stderr, path, strlen(path));
		fprintf(stderr, ": %s\n", why);
		return -1;
	}
	f->path = strdup(path);
	if (!f->path) {
		fprintf(stderr, "bvchat: out of memory\n");
		return -1;
	}
	attach_file_name(base ? base + 1 : path, f->type, f->name);
	return 0;
}

static void
out_files_free(struct out_file *f, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(f[i].path);
		f[i].path = NULL;
	}
}

/* "sending 2 files (3.1 MB)…" */
static void
say_sending(const struct out_file *f, size_t n)
{
	char size[32];
	int64_t total = 0;
	size_t i;

	for (i = 0; i < n; i++)
		total += f[i].size;
	attach_size_str(total, size, sizeof(size));
	fprintf(stderr, "bvchat: sending %zu file%s (%s)\xe2\x80\xa6\n", n,
		n == 1 ? "" : "s", size);
}

/* Sends text (subject NULL) or an e-post with the files. */
static int
send_files(struct cli *s, const char *conversation, const char *text,
	   const char *subject, const char *thread,
	   const struct out_file *files, size_t n,
	   char mid[BV_CLIENT_MESSAGE_ID_LEN + 1])
{
	struct bv_client_file f[BV_CLIENT_ATTACHMENTS_MAX];
	size_t i;

	memset(f, 0, sizeof(f));
	for (i = 0; i < n; i++) {
		f[i].path = files[i].path;
		f[i].type = files[i].type;
		f[i].name = files[i].name;
	}
	say_sending(files, n);
	return bv_client_send_attachments(s->c, conversation, text, subject,
					  thread, 0, f, n, mid);
}

static void
on_message(struct bv_client *c, void *user, const struct bv_client_message *m)
{
	struct cli *s = user;
	const char *mid = m->message_id;

	put_time(s->rx_out, m->time_ms);
	fputc(' ', s->rx_out);
	put_sender(c, s->rx_out, m->sender, m->sender_device);
	fputs(": ", s->rx_out);
	put_email(s->rx_out, m);
	put_sanitised(s->rx_out, m->text, m->text_len);
	fputc('\n', s->rx_out);
	if (m->n_attachments) {
		struct att_at q;

		/* Numbered as the history numbers them: it is stored. */
		memset(&q, 0, sizeof(q));
		q.mid = mid;
		if (bv_client_history(c, m->conversation, 0, att_at_cb, &q) <
			    0 ||
		    !q.found)
			q.count = -1;
		put_attachments(s->rx_out, m, q.count, 0);
		if (s->mark_read && q.count >= 0 && !s->hinted) {
			s->hinted = 1;
			fprintf(stderr, "bvchat: /save N [DIR] saves [vedlegg "
					"N] (in the current directory when "
					"no DIR)\n");
		}
	}
	fflush(s->rx_out);
	s->rx++;
	if (m->subject) {
		/* /reply answers the last thread shown. */
		snprintf(s->thread, sizeof(s->thread), "%s", m->thread);
		snprintf(s->thread_subject, sizeof(s->thread_subject), "%s",
			 m->subject);
	}
	if (s->mark_read &&
	    bv_client_mark_read(c, m->conversation, m->sender, &mid, 1) < 0)
		fprintf(stderr, "bvchat: could not send a read receipt\n");
}

/* Only the case file's word is shown: receipts of delivery and reading
 * are in the history. */
static void
on_receipt(struct bv_client *c, void *user, const char *conversation,
	   const char *sender, uint32_t sender_device,
	   enum bv_client_receipt type, const char *const *message_ids,
	   size_t n)
{
	struct cli *s = user;

	(void)c;
	(void)conversation;
	(void)sender;
	(void)sender_device;
	(void)message_ids;
	if (type != BV_CLIENT_RECEIPT_JOURNALED)
		return;
	fprintf(s->rx_out, "* %zu message%s journaled in the case file\n", n,
		n == 1 ? "" : "s");
	fflush(s->rx_out);
}

static void
on_accepted(struct bv_client *c, void *user, const char *account,
	    uint32_t device, int rc)
{
	struct cli *s = user;

	(void)c;
	(void)account;
	(void)device;
	s->accepted++;
	s->accept_rc = rc;
}

static const char *
state_name(enum bv_client_msg_state st)
{
	static const char *const names[] = {
		"sending", "sent",	    "delivered", "read",
		"failed",  "undecryptable", "received",
	};

	return (unsigned)st < sizeof(names) / sizeof(names[0]) ? names[st]
							       : "?";
}

/* history: the client, and the attachments printed so far. */
struct hist {
	struct bv_client *c;
	long n_att;
};

static int
print_message(void *arg, const struct bv_client_message *m)
{
	struct hist *h = arg;
	struct bv_client *c = h->c;

	put_time(stdout, m->time_ms);
	putchar(' ');
	if (m->notice) {
		put_notice(stdout, m->notice);
		putchar('\n');
		return 0;
	}
	put_sender(c, stdout, m->sender, m->sender_device);
	if (m->journal) {
		printf(" [%s, journaled ", state_name(m->state));
		put_sanitised(stdout, m->journal, strlen(m->journal));
		fputs("]: ", stdout);
	} else {
		printf(" [%s]: ", state_name(m->state));
	}
	if (m->state == BV_CLIENT_MSG_UNDECRYPTABLE)
		fputs("(could not be decrypted; it was asked for again)",
		      stdout);
	else if (m->unsupported)
		fputs("(a kind of message this version cannot show)", stdout);
	else {
		put_email(stdout, m);
		put_sanitised(stdout, m->text, m->text_len);
	}
	putchar('\n');
	put_attachments(stdout, m, h->n_att, 1);
	h->n_att += (long)m->n_attachments;
	return 0;
}

static int
print_conversation(void *arg, const struct bv_client_conversation *cv)
{
	(void)arg;
	printf("%s %lld message%s, last ", cv->conversation,
	       (long long)cv->n_messages, cv->n_messages == 1 ? "" : "s");
	put_time(stdout, cv->last_time_ms);
	putchar('\n');
	return 0;
}

/* The safety number in groups of five, as people read it out. */
static int
print_safety(struct bv_client *c, const char *peer, uint32_t device)
{
	char sn[BV_CLIENT_SAFETY_NUMBER_LEN + 1];
	int r, i;

	r = bv_client_safety_number(c, peer, device, sn);
	if (r < 0) {
		fprintf(stderr, "bvchat: safety number: %s\n",
			r == BV_EINVAL ? "no key is trusted for that device"
				       : bv_client_strerror(r));
		return -1;
	}
	for (i = 0; i < BV_CLIENT_SAFETY_NUMBER_LEN; i += 5)
		printf("%.5s%c", sn + i,
		       i + 5 < BV_CLIENT_SAFETY_NUMBER_LEN ? ' ' : '\n');
	return 0;
}

static void
on_key_changed(struct bv_client *c, void *user, const char *account,
	       uint32_t device)
{
	(void)c;
	(void)user;
	fprintf(stderr,
		"bvchat: the identity key of %s/%u changed; nothing is "
		"exchanged with that device until you accept it (bvchat "
		"accept --peer %s --device %u) and compare safety numbers\n",
		account, (unsigned)device, account, (unsigned)device);
}

static void
on_error(struct bv_client *c, void *user, int code, const char *message_id,
	 const char *what)
{
	struct cli *s = user;

	(void)c;
	s->last_err = code;
	if (code == BV_EUNTRUSTED)
		s->held = 1;
	fprintf(stderr, "bvchat: %s%s%s (%s)\n", message_id ? message_id : "",
		message_id ? ": " : "", what ? what : "error",
		bv_client_strerror(code));
}

static void
chat_line_free(struct chat_line *l)
{
	if (l) {
		out_files_free(l->files, l->n_files);
		free(l);
	}
}

/* Hands the oldest typed line to the library once the previous one has
 * its outcome. */
static void
chat_pump(struct cli *s)
{
	char mid[BV_CLIENT_MESSAGE_ID_LEN + 1];
	struct chat_line *l;
	int rc;

	while (!s->pending && s->q_head) {
		l = s->q_head;
		s->q_head = l->next;
		if (!s->q_head)
			s->q_tail = NULL;
		s->q_len--;
		if (l->n_files)
			rc = send_files(s, s->conversation, l->text,
					l->subject[0] ? l->subject : NULL,
					l->thread[0] ? l->thread : NULL,
					l->files, l->n_files, mid);
		else if (l->subject[0])
			rc = bv_client_send_email(s->c, s->conversation,
						  l->subject, l->text,
						  l->thread, 0, mid);
		else
			rc = bv_client_send_text(s->c, s->conversation, l->text,
						 mid);
		if (rc == 0 && l->subject[0] && !l->thread[0]) {
			/* Our new thread is the one /reply answers. */
			memcpy(s->thread, mid, sizeof(s->thread));
			snprintf(s->thread_subject, sizeof(s->thread_subject),
				 "%s", l->subject);
		}
		if (rc < 0) {
			fprintf(stderr, "bvchat: not sent: %s\n",
				att_strerror(rc));
		} else {
			s->pending++;
			s->pending_files = l->n_files;
		}
		chat_line_free(l);
	}
}

static void
on_sent(struct bv_client *c, void *user, const char *message_id, int rc)
{
	struct cli *s = user;

	(void)c;
	s->sent++;
	if (rc < 0 && !s->sent_rc)
		s->sent_rc = rc;
	if (s->pending > 0) {
		s->pending--;
		if (rc < 0)
			fprintf(stderr, "bvchat: %s not sent: %s\n", message_id,
				att_strerror(rc));
		else if (s->pending_files)
			fprintf(stderr, "bvchat: %zu file%s sent\n",
				s->pending_files,
				s->pending_files == 1 ? "" : "s");
		s->pending_files = 0;
		chat_pump(s);
	}
}

/* ---------------------------------------------------------------- */
/* Profile                                                            */
/* ---------------------------------------------------------------- */

/* ---------------------------------------------------------------- */
/* chat: standard input on the loop                                   */
/* ---------------------------------------------------------------- */

static void
on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	static char space[4096];

	(void)h;
	(void)hint;
	*buf = uv_buf_init(space, sizeof(space));
}

/*
 * "/attach PATH [PATH…] [-- TEXT]" after "/attach": PATHs split at spaces
 * ("…" around one with spaces in it, ~/ the home directory), checked now.
 * Fills files (paths malloc'd), *n and *text ("" without one). Returns 0,
 * or -1 after saying why (nothing kept).
 */
static int
parse_attach(const char *p, struct out_file *files, size_t *n,
	     const char **text)
{
	char path[4096];
	size_t len;

	*n = 0;
	*text = "";
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		if (p[0] == '-' && p[1] == '-' && (p[2] == ' ' || !p[2])) {
			p += 2;
			while (*p == ' ')
				p++;
			*text = p;
			break;
		}
		if (*n == BV_CLIENT_ATTACHMENTS_MAX) {
			fprintf(stderr,
				"bvchat: at most %d files on one "
				"message\n",
				BV_CLIENT_ATTACHMENTS_MAX);
			goto fail;
		}
		if (*p == '"') {
			const char *e = strchr(p + 1, '"');

			if (!e) {
				fprintf(stderr, "bvchat: a \" without its "
						"end\n");
				goto fail;
			}
			len = (size_t)(e - p - 1);
			if (expand_home(p + 1, len, path, sizeof(path)) < 0)
				goto toolong;
			p = e + 1;
		} else {
			len = strcspn(p, " \t");
			if (expand_home(p, len, path, sizeof(path)) < 0)
				goto toolong;
			p += len;
		}
		if (out_file_init(&files[*n], path) < 0)
			goto fail;
		(*n)++;
	}
	if (*n == 0) {
		fprintf(stderr, "bvchat: /attach PATH [PATH...] [-- TEXT]\n");
		return -1;
	}
	return 0;
toolong:
	fprintf(stderr, "bvchat: path too long\n");
fail:
	out_files_free(files, *n);
	*n = 0;
	return -1;
}

/* "/save N [DIR]" after "/save". */
static void
chat_save(struct cli *s, const char *p)
{
	char dir[4096];
	struct att_at q;
	char *end;
	size_t len;
	long n;
	int r;

	errno = 0;
	n = strtol(p, &end, 10);
	if (errno || end == p || n < 1 || (*end && *end != ' ')) {
		fprintf(stderr, "bvchat: /save N [DIR], N as shown in "
				"[vedlegg N]\n");
		return;
	}
	p = end + strspn(end, " ");
	len = strlen(p);
	while (len > 0 && p[len - 1] == ' ')
		len--;
	if (!len) {
		p = ".";
		len = 1;
	}
	if (expand_home(p, len, dir, sizeof(dir)) < 0) {
		fprintf(stderr, "bvchat: path too long\n");
		return;
	}
	memset(&q, 0, sizeof(q));
	q.n = n;
	r = att_lookup(s->c, s->conversation, &q);
	if (r < 0) {
		fprintf(stderr, "bvchat: save: %s\n", bv_client_strerror(r));
		return;
	}
	if (!q.found) {
		fprintf(stderr,
			"bvchat: no [vedlegg %ld] in this "
			"conversation\n",
			n);
		return;
	}
	if (save_start(s, &q, dir)) {
		fprintf(stderr, "bvchat: fetching [vedlegg %ld]\xe2\x80\xa6\n",
			n);
	}
}

/*
 * The chat's commands. Sets what the typed line sends: text, and subject
 * ("" for a chat text) and thread ("" for a new one) of an e-post, and the
 * files (*n_files of them, /attach). Returns 0 to send, 1 when nothing is
 * to be sent (a command done or refused, said on standard error).
 */
static int
chat_command(struct cli *s, const char **text, const char **subject,
	     const char **thread, struct out_file *files, size_t *n_files)
{
	static char reply_subject[BV_CLIENT_SUBJECT_MAX + 1];
	const char *l = s->line;

	*text = l;
	*subject = "";
	*thread = "";
	*n_files = 0;
	if (s->want_body) {
		/* The body of the e-post /epost announced. */
		s->want_body = 0;
		*subject = s->subject;
		return 0;
	}
	if (l[0] != '/')
		return 0;
	if (l[1] == '/') {
		*text = l + 1;
		return 0;
	}
	if (!strncmp(l, "/epost ", 7) && l[7]) {
		if (strlen(l + 7) > BV_CLIENT_SUBJECT_MAX) {
			fprintf(stderr, "bvchat: subject over %d bytes\n",
				BV_CLIENT_SUBJECT_MAX);
			return 1;
		}
		snprintf(s->subject, sizeof(s->subject), "%s", l + 7);
		s->want_body = 1;
		fprintf(stderr,
			"bvchat: e-post \"%s\": type its text on "
			"one line\n",
			s->subject);
		return 1;
	}
	if (!strncmp(l, "/reply ", 7) && l[7]) {
		if (!s->thread[0]) {
			fprintf(stderr, "bvchat: no e-post thread to reply "
					"to yet\n");
			return 1;
		}
		if (!strncmp(s->thread_subject, "Sv: ", 4))
			snprintf(reply_subject, sizeof(reply_subject), "%s",
				 s->thread_subject);
		else
			snprintf(reply_subject, sizeof(reply_subject),
				 "Sv: %.*s", BV_CLIENT_SUBJECT_MAX - 4,
				 s->thread_subject);
		*text = l + 7;
		*subject = reply_subject;
		*thread = s->thread;
		return 0;
	}
	if (!strncmp(l, "/attach", 7) && (l[7] == ' ' || !l[7]))
		return parse_attach(l + 7, files, n_files, text) < 0 ? 1 : 0;
	if (!strncmp(l, "/save", 5) && (l[5] == ' ' || !l[5])) {
		chat_save(s, l + 5);
		return 1;
	}
	fprintf(stderr, "bvchat: commands: /epost SUBJECT, /reply TEXT, "
			"/attach PATH [PATH...] [-- TEXT], /save N [DIR], "
			"//TEXT for a line starting with /\n");
	return 1;
}

static void
chat_send_line(struct cli *s)
{
	const char *text, *subject, *thread;
	struct out_file files[BV_CLIENT_ATTACHMENTS_MAX];
	struct chat_line *l;
	size_t len, n_files;

	if (s->line_long) {
		fprintf(stderr, "bvchat: line over %d bytes, not sent\n",
			BV_CLIENT_TEXT_MAX);
		return;
	}
	if (s->line_len && s->line[s->line_len - 1] == '\r')
		s->line_len--;
	if (!s->line_len)
		return;
	if (s->q_len >= CHAT_QUEUE_MAX) {
		fprintf(stderr,
			"bvchat: %u lines are waiting; this one is not "
			"sent\n",
			s->q_len);
		return;
	}
	s->line[s->line_len] = '\0';
	if (chat_command(s, &text, &subject, &thread, files, &n_files) != 0)
		return;
	len = strlen(text);
	l = malloc(sizeof(*l) + len + 1);
	if (!l) {
		fprintf(stderr, "bvchat: out of memory; line not sent\n");
		out_files_free(files, n_files);
		return;
	}
	l->n_files = n_files;
	memcpy(l->files, files, n_files * sizeof(files[0]));
	memcpy(l->text, text, len + 1);
	snprintf(l->subject, sizeof(l->subject), "%s", subject);
	snprintf(l->thread, sizeof(l->thread), "%s", thread);
	l->next = NULL;
	if (s->q_tail)
		s->q_tail->next = l;
	else
		s->q_head = l;
	s->q_tail = l;
	s->q_len++;
	chat_pump(s);
}

static void
on_stdin(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	struct cli *s = st->data;
	ssize_t i;

	if (n < 0) {
		/* EOF or an error: a last line without a newline counts. */
		if (s->line_len || s->line_long)
			chat_send_line(s);
		s->line_len = 0;
		s->line_long = 0;
		uv_read_stop(st);
		s->in_eof = 1;
		return;
	}
	for (i = 0; i < n; i++) {
		if (buf->base[i] == '\n') {
			chat_send_line(s);
			s->line_len = 0;
			s->line_long = 0;
		} else if (s->line_len < BV_CLIENT_TEXT_MAX) {
			s->line[s->line_len++] = buf->base[i];
		} else {
			s->line_long = 1;
		}
	}
}

static int
stdin_open(struct cli *s)
{
	uv_handle_type t = uv_guess_handle(0);
	int rc;

	if (t == UV_TTY)
		rc = uv_tty_init(&s->loop, &s->in.tty, 0, 1);
	else if (t == UV_NAMED_PIPE) {
		rc = uv_pipe_init(&s->loop, &s->in.pipe, 0);
		if (rc == 0) {
			rc = uv_pipe_open(&s->in.pipe, 0);
			if (rc < 0)
				uv_close((uv_handle_t *)&s->in.pipe, NULL);
		}
	} else {
		fprintf(stderr, "bvchat: chat reads a terminal or a pipe on "
				"standard input\n");
		return -1;
	}
	if (rc < 0) {
		fprintf(stderr, "bvchat: standard input: %s\n",
			uv_strerror(rc));
		return -1;
	}
	s->in_open = 1;
	s->in.pipe.data = s;
	rc = uv_read_start((uv_stream_t *)&s->in, on_alloc, on_stdin);
	if (rc < 0) {
		fprintf(stderr, "bvchat: standard input: %s\n",
			uv_strerror(rc));
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- */
/* main                                                               */
/* ---------------------------------------------------------------- */

static int
parse_uint(const char *arg, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (errno || *end || end == arg || v < 0 || v > max)
		return -1;
	*out = v;
	return 0;
}

int
main(int argc, char **argv)
{
	struct cli s;
	struct bv_client_opts o;
	uint8_t key[BV_CLIENT_STORE_KEY_LEN];
	char store[4096], host[256] = "127.0.0.1";
	char mid[BV_CLIENT_MESSAGE_ID_LEN + 1];
	const char *profile = "bvchat-profile", *cmd = NULL, *token = NULL;
	const char *invite = NULL;
	char ticket[INVITE_TICKET_CAP] = "", why[160];
	const char *conversation = NULL, *text = NULL, *peer = NULL;
	const char *case_id = NULL, *kind = "team";
	const char *subject = NULL, *thread = NULL;
	const char *members[MAX_MEMBERS];
	const char *attach[BV_CLIENT_ATTACHMENTS_MAX];
	struct out_file files[BV_CLIENT_ATTACHMENTS_MAX];
	const char *save_n = NULL, *save_dir = NULL, *message = NULL;
	struct save *sv = NULL;
	struct hist hist;
	size_t nmembers = 0, nattach = 0, nfiles = 0;
	struct only only;
	long count = -1, timeout_s = -1, device = 1, replaces = 0;
	int port = 8480, loop_ok = 0, rc = 1, r, i;

	memset(&s, 0, sizeof(s));
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		int has = i + 1 < argc;

		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(a, "--profile") && has) {
			profile = argv[++i];
		} else if (!strcmp(a, "--relay") && has) {
			if (profile_relay(argv[++i], host, sizeof(host),
					  &port) < 0) {
				fprintf(stderr, "bvchat: --relay wants "
						"HOST:PORT\n");
				return 2;
			}
		} else if (!strcmp(a, "--token") && has) {
			token = argv[++i];
		} else if (!strcmp(a, "--invite") && has) {
			invite = argv[++i];
		} else if (!strcmp(a, "--to")) {
			fprintf(stderr,
				"bvchat: --to is gone: messages go to a case "
				"conversation, to everyone in it (see `bvchat "
				"cases`, then --conversation UUID)\n");
			return 2;
		} else if (!strcmp(a, "--member") && has) {
			if (nmembers == MAX_MEMBERS) {
				fprintf(stderr, "bvchat: at most %d --member\n",
					MAX_MEMBERS);
				return 2;
			}
			members[nmembers++] = argv[++i];
		} else if (!strcmp(a, "--attach") && has) {
			if (nattach == BV_CLIENT_ATTACHMENTS_MAX) {
				fprintf(stderr, "bvchat: at most %d --attach\n",
					BV_CLIENT_ATTACHMENTS_MAX);
				return 2;
			}
			attach[nattach++] = argv[++i];
		} else if (!strcmp(a, "--message") && has) {
			message = argv[++i];
		} else if (!strcmp(a, "--case") && has) {
			case_id = argv[++i];
		} else if (!strcmp(a, "--kind") && has) {
			kind = argv[++i];
			if (strcmp(kind, "team") && strcmp(kind, "citizens")) {
				fprintf(stderr, "bvchat: --kind is team or "
						"citizens\n");
				return 2;
			}
		} else if (!strcmp(a, "--conversation") && has) {
			conversation = argv[++i];
		} else if (!strcmp(a, "--subject") && has) {
			subject = argv[++i];
		} else if (!strcmp(a, "--thread") && has) {
			thread = argv[++i];
		} else if (!strcmp(a, "--peer") && has) {
			peer = argv[++i];
		} else if ((!strcmp(a, "--device") ||
			    !strcmp(a, "--replaces")) &&
			   has) {
			long *v = a[2] == 'd' ? &device : &replaces;

			if (parse_uint(argv[++i], 2147483647, v) < 0 ||
			    *v == 0) {
				fprintf(stderr, "bvchat: bad %s\n", a);
				return 2;
			}
		} else if (!strcmp(a, "--count") && has) {
			if (parse_uint(argv[++i], 1000000, &count) < 0 ||
			    count == 0) {
				fprintf(stderr, "bvchat: bad --count\n");
				return 2;
			}
		} else if (!strcmp(a, "--timeout") && has) {
			if (parse_uint(argv[++i], 86400 * 365, &timeout_s) <
			    0) {
				fprintf(stderr, "bvchat: bad --timeout\n");
				return 2;
			}
		} else if (a[0] == '-' && a[1] == '-') {
			fprintf(stderr,
				"bvchat: unknown option or missing "
				"value: %s\n",
				a);
			usage(stderr);
			return 2;
		} else if (!cmd) {
			cmd = a;
		} else if (!strcmp(cmd, "send") && !text) {
			text = a;
		} else if (!strcmp(cmd, "save") && (!save_n || !save_dir)) {
			*(save_n ? &save_dir : &save_n) = a;
		} else {
			fprintf(stderr, "bvchat: unexpected argument: %s\n", a);
			return 2;
		}
	}
	if (!cmd) {
		usage(stderr);
		return 2;
	}
	if (nattach && strcmp(cmd, "send") != 0) {
		fprintf(stderr, "bvchat: --attach is for send\n");
		return 2;
	}
	if (!strcmp(cmd, "enroll")) {
		if (!token == !invite) {
			fprintf(stderr, "bvchat: enroll needs --token or "
					"--invite\n");
			return 2;
		}
	} else if (!strcmp(cmd, "send")) {
		if (!text && (!nattach || subject)) {
			fprintf(stderr, "bvchat: send needs TEXT\n");
			return 2;
		}
		if (!text)
			text = "";
		/* Checked before anything else happens. */
		for (nfiles = 0; nfiles < nattach; nfiles++)
			if (out_file_init(&files[nfiles], attach[nfiles]) < 0) {
				out_files_free(files, nfiles);
				return 1;
			}
	} else if (!strcmp(cmd, "save")) {
		if (!save_n || parse_uint(save_n, 1000000, &count) < 0 ||
		    count == 0 || (!conversation && !message)) {
			fprintf(stderr, "bvchat: save needs --conversation "
					"UUID N, or --message ID N (and "
					"may take DIR)\n");
			return 2;
		}
	} else if (!strcmp(cmd, "conversation-create")) {
		if (!case_id) {
			fprintf(stderr,
				"bvchat: conversation-create needs --case\n");
			return 2;
		}
	} else if (!strcmp(cmd, "history")) {
		if (!conversation) {
			fprintf(stderr,
				"bvchat: history needs --conversation\n");
			return 2;
		}
	} else if (!strcmp(cmd, "safety") || !strcmp(cmd, "accept")) {
		if (!peer) {
			fprintf(stderr, "bvchat: %s needs --peer\n", cmd);
			return 2;
		}
	} else if (strcmp(cmd, "listen") != 0 && strcmp(cmd, "chat") != 0 &&
		   strcmp(cmd, "cases") != 0 &&
		   strcmp(cmd, "conversations") != 0 &&
		   strcmp(cmd, "whoami") != 0) {
		fprintf(stderr, "bvchat: unknown command: %s\n", cmd);
		usage(stderr);
		return 2;
	}
	if (profile_key("bvchat", profile, !strcmp(cmd, "enroll"), key) < 0) {
		out_files_free(files, nfiles);
		return 1;
	}
	snprintf(store, sizeof(store), "%s/store.db", profile);
	if (uv_loop_init(&s.loop) != 0 ||
	    uv_timer_init(&s.loop, &s.timer) != 0) {
		fprintf(stderr, "bvchat: cannot start an event loop\n");
		goto out;
	}
	loop_ok = 1;
	s.timer.data = &s;
	s.timer_on = 1;
	if (signals_start(&s) < 0) {
		fprintf(stderr, "bvchat: cannot handle signals\n");
		goto out;
	}
	s.rx_out = (!strcmp(cmd, "listen") || !strcmp(cmd, "chat")) ? stdout
								    : stderr;
	memset(&o, 0, sizeof(o));
	o.store_path = store;
	o.store_key = key;
	o.relay_host = host;
	o.relay_port = port;
	o.loop = &s.loop;
	o.on_status = on_status;
	o.on_message_ex = on_message;
	o.on_receipt = on_receipt;
	o.on_key_changed = on_key_changed;
	o.on_error = on_error;
	o.on_sent = on_sent;
	o.on_identity_accepted = on_accepted;
	o.on_notice = on_notice;
	o.on_cases = on_cases;
	o.user = &s;
	r = bv_client_new(&o, &s.c);
	memset(key, 0, sizeof(key));
	if (r < 0) {
		fprintf(stderr, "bvchat: cannot open %s: %s\n", store,
			bv_client_strerror(r));
		goto out;
	}

	/* What the local store answers, without the network. */
	if (!strcmp(cmd, "conversations") || !strcmp(cmd, "history") ||
	    !strcmp(cmd, "safety") || !strcmp(cmd, "whoami")) {
		if (!bv_client_account(s.c)[0]) {
			fprintf(stderr, "bvchat: this profile is not "
					"enrolled\n");
			goto out;
		}
		if (!strcmp(cmd, "whoami"))
			r = printf("account %s\ndevice %u\n",
				   bv_client_account(s.c),
				   (unsigned)bv_client_device(s.c)) < 0
				    ? BV_EIO
				    : 0;
		else if (!strcmp(cmd, "conversations"))
			r = bv_client_conversations(s.c, print_conversation,
						    NULL);
		else if (!strcmp(cmd, "history")) {
			hist.c = s.c;
			hist.n_att = 0;
			r = bv_client_history(s.c, conversation, 0,
					      print_message, &hist);
		} else
			r = print_safety(s.c, peer, (uint32_t)device) < 0
				    ? BV_EINVAL
				    : 0;
		if (r < 0 && strcmp(cmd, "safety") != 0)
			fprintf(stderr, "bvchat: %s: %s\n", cmd,
				bv_client_strerror(r));
		rc = r < 0 ? 1 : 0;
		goto out;
	}

	if (!strcmp(cmd, "enroll")) {
		/* A code redeems once: not for a profile that cannot use it. */
		if (invite && bv_client_account(s.c)[0]) {
			fprintf(stderr, "bvchat: enroll: this profile is "
					"already enrolled\n");
			goto out;
		}
		if (invite) {
			if (invite_redeem(host, port, invite,
					  CONNECT_TIMEOUT_MS, ticket, why,
					  sizeof(why)) < 0) {
				fprintf(stderr, "bvchat: enroll: %s\n", why);
				goto out;
			}
			token = ticket;
		}
		r = replaces ? bv_client_enroll_replacing(s.c, token,
							  (uint32_t)replaces)
			     : bv_client_enroll(s.c, token);
		if (r < 0) {
			fprintf(stderr, "bvchat: enroll: %s\n",
				r == BV_EALREADY
					? "this profile is already enrolled"
					: bv_client_strerror(r));
			goto out;
		}
		if (!run_until(&s, &s.enrolled, ENROLL_TIMEOUT_MS)) {
			fprintf(stderr, "bvchat: enroll: %s\n",
				bv_client_strerror(s.refused
							   ? s.refused
							   : BV_EUNAVAILABLE));
			goto out;
		}
		printf("account %s\ndevice %u\n", bv_client_account(s.c),
		       (unsigned)bv_client_device(s.c));
		rc = 0;
		goto out;
	}

	/* save: the history says where, the relay's HTTP side has it. */
	if (!strcmp(cmd, "save")) {
		struct att_at q;

		memset(&q, 0, sizeof(q));
		q.mid = message;
		q.n = count;
		r = att_lookup(s.c, conversation, &q);
		if (r < 0) {
			fprintf(stderr, "bvchat: save: %s\n",
				bv_client_strerror(r));
			goto out;
		}
		if (!q.found) {
			fprintf(stderr, "bvchat: save: no attachment %ld %s\n",
				count,
				message ? "in that message"
					: "in that conversation (bvchat "
					  "history shows them as [vedlegg N])");
			goto out;
		}
		sv = save_start(&s, &q, save_dir ? save_dir : ".");
		if (!sv)
			goto out;
		if (!run_until(&s, &sv->done, ATTACH_TIMEOUT_MS)) {
			if (!s.interrupted)
				fprintf(stderr, "bvchat: save: no answer from "
						"the relay in time\n");
			goto out; /* the placeholder goes at out */
		}
		if (sv->rc < 0) {
			fprintf(stderr, "bvchat: save: %s\n",
				att_strerror(sv->rc));
			goto out;
		}
		printf("%s\n", sv->path);
		rc = 0;
		goto out;
	}

	r = bv_client_connect(s.c);
	if (r < 0) {
		fprintf(stderr, "bvchat: connect: %s\n",
			r == BV_EINVAL ? "this profile is not enrolled"
				       : bv_client_strerror(r));
		goto out;
	}

	/* The case view is fetched after every connect: wait for it. */
	if (!strcmp(cmd, "cases") || !strcmp(cmd, "conversation-create") ||
	    (!conversation && (!strcmp(cmd, "send") || !strcmp(cmd, "chat")))) {
		if (!run_until(&s, &s.cases, CONNECT_TIMEOUT_MS) ||
		    s.cases_rc < 0) {
			fprintf(stderr, "bvchat: %s: the case view: %s\n", cmd,
				bv_client_strerror(s.refused ? s.refused
						   : s.cases
							   ? s.cases_rc
							   : BV_EUNAVAILABLE));
			goto out;
		}
	}
	if (!strcmp(cmd, "cases")) {
		r = bv_client_cases(s.c, print_case, NULL);
		if (r < 0)
			fprintf(stderr, "bvchat: cases: %s\n",
				bv_client_strerror(r));
		rc = r < 0 ? 1 : 0;
		goto out;
	}
	if (!strcmp(cmd, "conversation-create")) {
		r = bv_client_conversation_create(s.c, case_id, kind, members,
						  nmembers, on_created, &s);
		if (r == 0 && !run_until(&s, &s.created, SEND_TIMEOUT_MS))
			r = s.refused ? s.refused : BV_EUNAVAILABLE;
		if (r == 0)
			r = s.created_rc;
		if (r < 0) {
			fprintf(stderr, "bvchat: conversation-create: %s\n",
				r == BV_ENOACCOUNT ? "not found or not allowed"
						   : bv_client_strerror(r));
			goto out;
		}
		printf("%s\n", s.created_id);
		rc = 0;
		goto out;
	}
	if (!conversation && (!strcmp(cmd, "send") || !strcmp(cmd, "chat"))) {
		memset(&only, 0, sizeof(only));
		bv_client_cases(s.c, only_cb, &only);
		if (only.n != 1) {
			fprintf(stderr,
				"bvchat: %s: you have %d open conversations; "
				"name one with --conversation (bvchat "
				"cases)\n",
				cmd, only.n);
			rc = 2;
			goto out;
		}
		conversation = only.id;
	}

	if (!strcmp(cmd, "send")) {
		int64_t t0 = (int64_t)uv_now(&s.loop);
		int left;

		if (!run_until(&s, &s.online, SEND_TIMEOUT_MS)) {
			fprintf(stderr, "bvchat: send: %s\n",
				bv_client_strerror(s.refused
							   ? s.refused
							   : BV_EUNAVAILABLE));
			goto out;
		}
		if (nfiles)
			r = send_files(&s, conversation, text, subject,
				       subject ? thread : NULL, files, nfiles,
				       mid);
		else if (subject)
			r = bv_client_send_email(s.c, conversation, subject,
						 text, thread, 0, mid);
		else
			r = bv_client_send_text(s.c, conversation, text, mid);
		if (r < 0) {
			fprintf(stderr, "bvchat: send: %s\n", att_strerror(r));
			goto out;
		}
		do {
			uv_update_time(&s.loop);
			left = (nfiles ? ATTACH_TIMEOUT_MS : SEND_TIMEOUT_MS) -
			       (int)((int64_t)uv_now(&s.loop) - t0);
			run_until(&s, &s.sent, 200);
		} while (!s.sent && !s.held && !s.refused && !s.interrupted &&
			 left > 0);
		if (!s.sent && s.held) {
			fprintf(stderr,
				"bvchat: send: %s is held until the changed "
				"key is accepted (bvchat accept); it is kept "
				"and sent then\n",
				mid);
			goto out;
		}
		if (!s.sent) {
			fprintf(stderr,
				"bvchat: send: %s: no answer from the relay in "
				"time (it is kept and sent on the next "
				"start)\n",
				mid);
			goto out;
		}
		if (s.sent_rc < 0) {
			fprintf(stderr, "bvchat: send failed: %s\n",
				s.sent_rc == BV_ENOACCOUNT
					? "no such conversation, or it is "
					  "closed or not yours to write to"
					: att_strerror(s.sent_rc));
			goto out;
		}
		printf("%s\n", mid);
		rc = 0;
		goto out;
	}

	if (!strcmp(cmd, "accept")) {
		if (!run_until(&s, &s.online, CONNECT_TIMEOUT_MS)) {
			fprintf(stderr, "bvchat: accept: %s\n",
				bv_client_strerror(s.refused
							   ? s.refused
							   : BV_EUNAVAILABLE));
			goto out;
		}
		r = bv_client_accept_identity(s.c, peer, (uint32_t)device);
		if (r == 0 && !run_until(&s, &s.accepted, SEND_TIMEOUT_MS))
			r = BV_EUNAVAILABLE;
		if (r == 0)
			r = s.accept_rc;
		if (r < 0) {
			fprintf(stderr, "bvchat: accept: %s\n",
				bv_client_strerror(r));
			goto out;
		}
		fprintf(stderr,
			"bvchat: the new key of %s/%ld is trusted; compare "
			"this safety number with the other person:\n",
			peer, device);
		rc = print_safety(s.c, peer, (uint32_t)device) < 0 ? 1 : 0;
		/* Held messages to that device go out now. */
		run_until(&s, &s.refused, 1000);
		goto out;
	}

	if (!strcmp(cmd, "listen")) {
		int done = 0;
		int64_t deadline = -1;

		if (timeout_s >= 0)
			deadline = (int64_t)uv_now(&s.loop) + timeout_s * 1000;
		/* Re-armed each turn so that the count is checked as soon
		 * as a message arrives. */
		while (!done) {
			int ms = -1;

			uv_update_time(&s.loop);
			if (deadline >= 0) {
				ms = (int)(deadline - (int64_t)uv_now(&s.loop));
				if (ms <= 0)
					break;
			}
			run_until(&s, &done, ms < 0 || ms > 200 ? 200 : ms);
			if (s.refused || s.interrupted)
				break;
			if (count > 0 && s.rx >= (unsigned long)count)
				done = 1;
		}
		if (s.refused) {
			fprintf(stderr, "bvchat: listen: %s\n",
				bv_client_strerror(s.refused));
			goto out;
		}
		if (s.interrupted)
			goto out;
		if (count > 0 && s.rx < (unsigned long)count) {
			fprintf(stderr,
				"bvchat: listen: %u of %ld messages in %ld s\n",
				s.rx, count, timeout_s);
			goto out;
		}
		rc = 0;
		goto out;
	}

	/* chat */
	s.mark_read = 1;
	s.conversation = conversation;
	if (!run_until(&s, &s.online, CONNECT_TIMEOUT_MS)) {
		fprintf(stderr, "bvchat: chat: %s\n",
			bv_client_strerror(s.refused ? s.refused
						     : BV_EUNAVAILABLE));
		goto out;
	}
	fprintf(stderr,
		"bvchat: connected as %s/%u in conversation %s; everything "
		"you write goes to the case file too; type a line and press "
		"Enter to send, end with Ctrl-D\n",
		bv_client_account(s.c), (unsigned)bv_client_device(s.c),
		conversation);
	if (stdin_open(&s) < 0)
		goto out;
	run_until(&s, &s.in_eof, -1);
	if (s.interrupted)
		goto out;
	if (s.refused) {
		fprintf(stderr, "bvchat: chat: %s\n",
			bv_client_strerror(s.refused));
		goto out;
	}
	/* Standard input ended: give the last sends and saves their
	 * outcome. */
	{
		int64_t deadline = (int64_t)uv_now(&s.loop) + SEND_TIMEOUT_MS;
		struct chat_line *l;

		for (l = s.q_head; l; l = l->next)
			if (l->n_files)
				break;
		if (l || s.pending_files || s.saves)
			deadline += ATTACH_TIMEOUT_MS - SEND_TIMEOUT_MS;
		while ((s.pending > 0 || s.q_len > 0 || s.saves) &&
		       !s.refused && !s.interrupted &&
		       (int64_t)uv_now(&s.loop) < deadline)
			run_until(&s, &s.refused, 200);
	}
	if (s.interrupted)
		goto out;
	if (s.q_len > 0)
		fprintf(stderr, "bvchat: %u line(s) not sent\n", s.q_len);
	while (s.q_head) {
		struct chat_line *l = s.q_head;

		s.q_head = l->next;
		chat_line_free(l);
	}
	if (s.pending > 0) {
		fprintf(stderr,
			"bvchat: %d message(s) without an answer from "
			"the relay (kept, sent on the next start)\n",
			s.pending);
		goto out;
	}
	rc = s.sent_rc < 0 ? 1 : 0;
out:
	memset(ticket, 0, sizeof(ticket));
	fflush(stdout);
	if (s.interrupted) {
		/* Whatever the command had reached, a signal ends it. */
		fprintf(stderr, "bvchat: interrupted (signal %d)",
			s.interrupted);
		if (s.q_len)
			fprintf(stderr, "; %u typed line(s) not sent", s.q_len);
		if (s.pending)
			fprintf(stderr,
				"; %d message(s) kept, sent on the next "
				"start",
				s.pending);
		fputc('\n', stderr);
		rc = 128 + s.interrupted;
	}
	while (s.q_head) {
		struct chat_line *l = s.q_head;

		s.q_head = l->next;
		chat_line_free(l);
	}
	out_files_free(files, nfiles);
	if (s.c)
		bv_client_close(s.c);
	/* Fetches cut off by the end: their callbacks no longer come, and
	 * their empty placeholders go. */
	while (s.saves) {
		struct save *v = s.saves;

		s.saves = v->next;
		unlink(v->path);
		fputs("bvchat: not saved (ended first): ", stderr);
		put_sanitised(stderr, v->path, strlen(v->path));
		fputc('\n', stderr);
		if (v != sv)
			free(v);
	}
	free(sv);
	if (loop_ok) {
		if (s.in_open && !uv_is_closing((uv_handle_t *)&s.in))
			uv_close((uv_handle_t *)&s.in, NULL);
		if (s.timer_on)
			uv_close((uv_handle_t *)&s.timer, NULL);
		for (i = 0; i < s.n_sig; i++)
			uv_close((uv_handle_t *)&s.sig[i], NULL);
		uv_run(&s.loop, UV_RUN_DEFAULT);
	}
	bv_client_free(s.c);
	if (loop_ok)
		uv_loop_close(&s.loop);
	return rc;
}
