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

/* open_memstream grows the text; every write is checked once at the end. */
static void
put_text(FILE *f, const char *s, size_t len)
{
	size_t i;

	fputs("    ", f);
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '\n')
			fputs("\n    ", f);
		else if (ch < 0x20 || ch == 0x7f)
			fputs("\xef\xbf\xbd", f); /* U+FFFD */
		else
			fputc(ch, f);
	}
	fputc('\n', f);
}

static void
put_str(FILE *f, const char *s)
{
	put_text(f, s, strlen(s));
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
			put_str(f, "Kontoret er stengt. Meldingen leses når vi "
				   "åpner igjen; innbyggeren ble vist "
				   "barnevernvaktens nummer og Alarmtelefonen "
				   "for barn og unge, 116 111.");
		else
			put_text(f, msgs[i].text, msgs[i].text_len);
		fprintf(f, "    (melding %s)\n\n", msgs[i].message_id);
	}
	bad = ferror(f);
	if (fclose(f) != 0 || bad || !buf) {
		free(buf);
		return BV_ENOMEM;
	}
	*out = buf;
	*len = blen;
	return 0;
}
