/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * transcript.h: the readable transcript of one batch of a conversation, the
 * journalpost's main document (docs/fiks.md, "bvchat-archiver"): UTF-8
 * text, because it is an archival format a person can read in fifty years
 * without software (Noark 5 accepts text; PDF/A is a later option), with
 * the municipality, case number and conversation, the period, who took
 * part (names and roles as the case file shows them), and every message
 * with its time (in the municipality's time zone), sender and id.
 */
#ifndef BV_ARCHIVER_TRANSCRIPT_H
#define BV_ARCHIVER_TRANSCRIPT_H

#include <stddef.h>
#include <stdint.h>

/* A person on the case as the archive's case view names them. */
struct tperson {
	const char *account;
	const char *name; /* NULL for the archive */
	const char *role; /* the wire role name ("child", …) */
};

/* One message of the batch. */
struct tmsg {
	const char *message_id;
	const char *sender; /* "" for a notice from the service */
	int64_t time_ms;
	const char *text; /* UTF-8 */
	size_t text_len;
	int undecryptable; /* a placeholder: could not be read (yet) */
	int unsupported;   /* a kind this version cannot show */
	int notice;	   /* from the service: out-of-hours notice */
};

struct tinfo {
	const char *municipality;
	const char *case_number;
	const char *conversation;
	const char *kind; /* "team" or "citizens" */
	const char *batch_id;
};

/* The role in bokmål as the case file writes it ("saksbehandler"). */
const char *transcript_role(const char *role);

/* "23.11.2026 09:12:03" in the process's time zone (TZ). */
void transcript_time(int64_t ms, char *buf, size_t cap);

/*
 * Renders the transcript into *out (free()), *len bytes, NUL-terminated.
 * A sender not among people is named by account. Control characters of a
 * text other than newline are shown as U+FFFD; continuation lines are
 * indented. Returns 0; BV_EINVAL; BV_ENOMEM.
 */
int transcript_render(const struct tinfo *info, const struct tperson *people,
		      size_t n_people, const struct tmsg *msgs, size_t n,
		      char **out, size_t *len);

#endif /* BV_ARCHIVER_TRANSCRIPT_H */
