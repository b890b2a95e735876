/* SPDX-License-Identifier: GPL-3.0-or-later */
/* transcript.c: a batch as readable text (transcript.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bv_error.h"
#include "transcript.h"

static const struct {
	const char *wire, *nb;
} roles[] = {
	{"child", "barn"},
	{"parent", "forelder"},
	{"foster_parent", "fosterforelder"},
	{"guardian", "verge"},
	{"supervisor", "tilsynsfører"},
	{"support_contact", "støttekontakt"},
	{"caseworker", "saksbehandler"},
	{"team_lead", "teamleder"},
	{"service_leader", "barnevernleder"},
	{"archive", "arkiv"},
};

const char *
transcript_role(const char *role)
{
	size_t i;

	for (i = 0; role && i < sizeof(roles) / sizeof(roles[0]); i++)
		if (!strcmp(roles[i].wire, role))
			return roles[i].nb;
	return "ukjent rolle";
}

void
transcript_time(int64_t ms, char *buf, size_t cap)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (!localtime_r(&t, &tm) ||
	    strftime(buf, cap, "%d.%m.%Y %H:%M:%S", &tm) == 0)
		snprintf(buf, cap, "%lld ms", (long long)ms);
}

/*
 * The UTF-8 character at s (left bytes): its length and code point, or 0
 * when the bytes are not UTF-8 (overlong, surrogate, cut short, too big).
 */
static size_t
utf8_next(const unsigned char *s, size_t left, uint32_t *cp)
{
	size_t n, i;
	uint32_t c;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if ((s[0] & 0xe0) == 0xc0) {
		n = 2;
		c = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		n = 3;
		c = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		n = 4;
		c = s[0] & 0x07;
	} else {
		return 0;
	}
	if (left < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if ((n == 2 && c < 0x80) || (n == 3 && c < 0x800) ||
	    (n == 4 && c < 0x10000) || c > 0x10ffff ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

/* C0, DEL and C1: nothing a reader of the archive should be shown. */
static int
is_control(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

#define REPLACEMENT "\xef\xbf\xbd" /* U+FFFD */

size_t
transcript_line(const char *s, size_t len, size_t max, char *out, size_t cap)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, o = 0, n;
	uint32_t cp;

	if (!out || cap == 0)
		return 0;
	if (cap < max + 4)
		max = cap >= 4 ? cap - 4 : 0;
	while (s && i < len) {
		const char *piece;
		size_t plen;

		n = utf8_next(p + i, len - i, &cp);
		if (n == 0 || is_control(cp)) {
			piece = REPLACEMENT;
			plen = 3;
			i += n ? n : 1;
		} else {
			piece = s + i;
			plen = n;
			i += n;
		}
		if (o + plen > max) {
			memcpy(out + o, "\xe2\x80\xa6", 3); /* … */
			o += 3;
			break;
		}
		memcpy(out + o, piece, plen);
		o += plen;
	}
	out[o] = '\0';
	return o;
}

/* open_memstream grows the text; every write is checked once at the end. */
static void
put_text(FILE *f, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, n;
	uint32_t cp;

	fputs("    ", f);
	while (i < len) {
		n = utf8_next(p + i, len - i, &cp);
		if (n == 1 && cp == '\n') {
			fputs("\n    ", f);
		} else if (n == 0 || is_control(cp)) {
			fputs(REPLACEMENT, f);
			n = n ? n : 1;
		} else {
			fwrite(p + i, 1, n, f);
		}
		i += n;
	}
	fputc('\n', f);
}

/* "    Label: value" on one line, value cleaned and bounded. */
static void
put_field(FILE *f, const char *label, const char *value)
{
	char line[TRANSCRIPT_SUBJECT_MAX + 4];

	transcript_line(value, strlen(value), TRANSCRIPT_SUBJECT_MAX, line,
			sizeof(line));
	fprintf(f, "    %s: %s\n", label, line);
}

static void
transcript_date(int64_t ms, char *buf, size_t cap)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (!localtime_r(&t, &tm) || strftime(buf, cap, "%d.%m.%Y", &tm) == 0)
		snprintf(buf, cap, "%lld ms", (long long)ms);
}

/* An e-post's head: its subject, the thread it answers, its answer time. */
static void
put_email_head(FILE *f, const struct tmsg *m)
{
	char when[40];

	put_field(f, "Henvendelse", m->subject);
	if (m->thread && m->thread[0] && strcmp(m->thread, m->message_id)) {
		if (m->thread_subject)
			put_field(f, "Svar på", m->thread_subject);
		else
			fprintf(f, "    Svar på: henvendelsen i melding %s\n",
				m->thread);
	}
	if (m->answer_by_ms > 0) {
		transcript_date(m->answer_by_ms, when, sizeof(when));
		fprintf(f, "    Svarfrist: %s\n", when);
	}
}

static void
put_str(FILE *f, const char *s)
{
	put_text(f, s, strlen(s));
}

/* A notice from the service: what the citizen was shown, with the
 * numbers it gave (each cleaned to one bounded line). */
static void
put_notice(FILE *f, const struct tmsg *m)
{
	char kind[TRANSCRIPT_SUBJECT_MAX + 4],
		phone[TRANSCRIPT_SUBJECT_MAX + 4],
		em[TRANSCRIPT_SUBJECT_MAX + 4];
	const char *k = m->notice_kind ? m->notice_kind : "";

	if (strcmp(k, "out_of_hours") != 0) {
		transcript_line(k, strlen(k), 64, kind, sizeof(kind));
		fprintf(f,
			"    [Melding fra tjenesten av en type denne "
			"versjonen ikke kan vise: %s.]\n",
			kind[0] ? kind : "uten type");
		return;
	}
	fputs("    Kontoret var stengt. Innbyggeren fikk vite at ingen leser "
	      "chatten før\n    kontoret åpner igjen",
	      f);
	if (m->notice_phone && m->notice_phone[0]) {
		transcript_line(m->notice_phone, strlen(m->notice_phone), 64,
				phone, sizeof(phone));
		fprintf(f, ", og ble vist barnevernvaktens nummer, %s", phone);
	}
	if (m->notice_emergency && m->notice_emergency[0]) {
		transcript_line(m->notice_emergency,
				strlen(m->notice_emergency), 64, em,
				sizeof(em));
		fprintf(f, ",\n    og Alarmtelefonen for barn og unge, %s", em);
	}
	fputs(".\n", f);
}

/* "1,2 MB", "340 kB", "12 byte". */
static void
human_size(int64_t n, char *buf, size_t cap)
{
	if (n >= 1000000)
		snprintf(buf, cap, "%lld,%lld MB", (long long)(n / 1000000),
			 (long long)(n % 1000000 / 100000));
	else if (n >= 1000)
		snprintf(buf, cap, "%lld kB", (long long)((n + 500) / 1000));
	else
		snprintf(buf, cap, "%lld byte", (long long)n);
}

/* The files of a message: what each is and where the case file has it. */
static void
put_attachments(FILE *f, const struct tmsg *m)
{
	char name[TRANSCRIPT_SUBJECT_MAX + 4], type[80], size[32];
	size_t i;

	for (i = 0; i < m->n_atts; i++) {
		const struct tatt *a = &m->atts[i];

		transcript_line(a->name ? a->name : "",
				a->name ? strlen(a->name) : 0,
				TRANSCRIPT_SUBJECT_MAX, name, sizeof(name));
		transcript_line(a->type ? a->type : "",
				a->type ? strlen(a->type) : 0, 60, type,
				sizeof(type));
		human_size(a->size, size, sizeof(size));
		fprintf(f, "    Vedlegg: %s (%s, %s)", name, type, size);
		if (a->failure)
			fprintf(f, "\n    [Vedlegget er ikke arkivert: %s]\n",
				a->failure);
		else if (a->parts > 1 && a->part > 1)
			fprintf(f,
				" – dokument %d i journalpost %d av %d for "
				"denne perioden\n",
				a->docnr, a->part, a->parts);
		else
			fprintf(f, " – dokument %d i journalposten\n",
				a->docnr);
	}
}

static const struct tperson *
find_person(const struct tperson *people, size_t n, const char *account)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(people[i].account, account))
			return &people[i];
	return NULL;
}

static void
put_sender(FILE *f, const struct tperson *people, size_t n_people,
	   const char *account)
{
	const struct tperson *p = find_person(people, n_people, account);

	if (p && p->name)
		fprintf(f, "%s (%s)", p->name, transcript_role(p->role));
	else if (p)
		fprintf(f, "Saksmappen (%s)", transcript_role(p->role));
	else
		fprintf(f, "Ukjent avsender (konto %s)", account);
}

/* The changed keys the archive accepted: the trust it gave, on record. */
static void
put_keychanges(FILE *f, const struct tperson *people, size_t n_people,
	       const struct tkeychange *k, size_t n)
{
	char when[40];
	size_t i;

	fputs("Endrede sikkerhetsnøkler som arkivet godtok:\n", f);
	for (i = 0; i < n; i++) {
		transcript_time(k[i].accepted_ms, when, sizeof(when));
		fprintf(f, "%s  ", when);
		put_sender(f, people, n_people, k[i].account);
		fprintf(f, ", enhet %u:\n", (unsigned)k[i].device);
		put_str(f, "Enheten har fått en ny sikkerhetsnøkkel, slik den "
			   "får når appen\ninstalleres på nytt eller tas i "
			   "bruk på en ny telefon. Arkivet godtok\nnøkkelen "
			   "for å kunne journalføre meldingene fra enheten "
			   "videre.\nDeltakernes egne apper spør brukerne "
			   "selv.");
		fputc('\n', f);
	}
}

int
transcript_render(const struct tinfo *info, const struct tperson *people,
		  size_t n_people, const struct tmsg *msgs, size_t n,
		  char **out, size_t *len)
{
	char t0[40], t1[40], when[40];
	char *buf = NULL;
	size_t blen = 0, i, j;
	FILE *f;
	int bad;

	if (!info || !msgs || n == 0 || !out || !len)
		return BV_EINVAL;
	f = open_memstream(&buf, &blen);
	if (!f)
		return BV_ENOMEM;
	transcript_time(msgs[0].time_ms, t0, sizeof(t0));
	transcript_time(msgs[n - 1].time_ms, t1, sizeof(t1));
	fprintf(f,
		"Utskrift av samtale i bvchat\n"
		"Kommune: %s\n"
		"Sak: %s\n"
		"Samtale: %s (%s)\n"
		"Periode: %s – %s\n"
		"Antall meldinger: %zu\n"
		"Journalføringsnøkkel: %s\n"
		"\nDeltakere som skrev i perioden:\n",
		info->municipality ? info->municipality : "",
		info->case_number ? info->case_number : "", info->conversation,
		info->kind && !strcmp(info->kind, "citizens")
			? "samtale mellom innbyggere, opprettet av "
			  "saksbehandler"
			: "samtale med saksteamet",
		t0, t1, n, info->batch_id);
	for (i = 0; i < n; i++) {
		if (!msgs[i].sender[0])
			continue;
		for (j = 0; j < i; j++)
			if (!strcmp(msgs[j].sender, msgs[i].sender))
				break;
		if (j < i)
			continue;
		fputs("  ", f);
		put_sender(f, people, n_people, msgs[i].sender);
		fputc('\n', f);
	}
	fputc('\n', f);
	for (i = 0; i < n; i++) {
		transcript_time(msgs[i].time_ms, when, sizeof(when));
		fprintf(f, "%s  ", when);
		if (msgs[i].notice)
			fputs("Melding fra tjenesten (automatisk)", f);
		else
			put_sender(f, people, n_people, msgs[i].sender);
		fputs(":\n", f);
		if (msgs[i].undecryptable)
			put_str(f, "[Meldingen kunne ikke leses da utskriften "
				   "ble laget; den er bedt sendt på nytt og "
				   "journalføres da for seg.]");
		else if (msgs[i].unsupported)
			put_str(f, "[En meldingstype denne versjonen ikke kan "
				   "vise.]");
		else if (msgs[i].notice)
			put_notice(f, &msgs[i]);
		else {
			if (msgs[i].subject)
				put_email_head(f, &msgs[i]);
			if (msgs[i].text_len || !msgs[i].n_atts)
				put_text(f, msgs[i].text, msgs[i].text_len);
			put_attachments(f, &msgs[i]);
		}
		fprintf(f, "    (melding %s)\n\n", msgs[i].message_id);
	}
	if (info->n_keychanges && info->keychanges)
		put_keychanges(f, people, n_people, info->keychanges,
			       info->n_keychanges);
	bad = ferror(f);
	if (fclose(f) != 0 || bad || !buf) {
		free(buf);
		return BV_ENOMEM;
	}
	*out = buf;
	*len = blen;
	return 0;
}
