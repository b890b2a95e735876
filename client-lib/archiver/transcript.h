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

/* One file of a message, and where the case file has it. */
struct tatt {
	const char *name; /* the sender's name for it (a peer's words) */
	const char *type; /* MIME type */
	int64_t size;	  /* bytes */
	/* Archived: its dokumentnummer in journalpost part (1 … parts) of
	 * this cut, 0 when not archived. */
	int docnr, part, parts;
	/* Not archived: why, a sentence in bokmål (NULL when archived). */
	const char *failure;
	/* The archiver's own: the relay's blob id and package file name. */
	const char *blob;
	char pkg[32];
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
	int notice;	   /* from the service: see notice_kind */
	/* A secure e-post: its subject, else NULL (a chat text). */
	const char *subject;
	/* An e-post's thread: the message id of the thread's first e-post
	 * (its own id when it starts the thread). */
	const char *thread;
	/* The subject of that first e-post when known, else NULL (then the
	 * thread is named by its id). */
	const char *thread_subject;
	int64_t answer_by_ms; /* when the service will have answered; 0 */
	struct tatt *atts;    /* its files, listed under its text */
	size_t n_atts;
	/* A notice: what the service showed, as bv_client_notice has it
	 * (kind "out_of_hours", phone and emergency_phone NULL or ""). */
	const char *notice_kind;
	const char *notice_phone;
	const char *notice_emergency;
};

/* A participant's changed identity key the archive accepted (a reinstall
 * or a new phone), and when. */
struct tkeychange {
	const char *account;
	uint32_t device;
	int64_t accepted_ms;
};

struct tinfo {
	const char *municipality;
	const char *case_number;
	const char *conversation;
	const char *kind; /* "team" or "citizens" */
	const char *batch_id;
	/* Key changes accepted since the conversation's last transcript. */
	const struct tkeychange *keychanges;
	size_t n_keychanges;
};

/* The role in bokmål as the case file writes it ("saksbehandler"). */
const char *transcript_role(const char *role);

/* Bytes of a subject shown (libbvchat's BV_CLIENT_SUBJECT_MAX): a longer
 * one (only a hostile or newer client) is cut, with "…". */
#define TRANSCRIPT_SUBJECT_MAX 200

/*
 * s (len bytes of a peer's words) as one clean line for a label or a
 * title, NUL-terminated in out: control characters (C0 with newline and
 * tab, DEL, C1) and bytes that are not UTF-8 become U+FFFD, and after max
 * bytes of output it is cut at a character boundary and ends in "…".
 * cap must be at least max + 4. Returns the length written.
 */
size_t transcript_line(const char *s, size_t len, size_t max, char *out,
		       size_t cap);

/* "23.11.2026 09:12:03" in the process's time zone (TZ). */
void transcript_time(int64_t ms, char *buf, size_t cap);

/*
 * Renders the transcript into *out (free()), *len bytes, NUL-terminated.
 * A sender not among people is named by account. Control characters of a
 * text other than newline, and bytes that are not UTF-8, are shown as
 * U+FFFD; continuation lines are indented. An e-post shows its subject
 * ("Henvendelse: …"), the thread it answers ("Svar på: …", the first
 * e-post's subject or the thread's id) and its answer time ("Svarfrist:
 * …") before its body, each line cleaned by transcript_line(). Each file
 * follows as "Vedlegg: <name> (<type>, <size>)" and where the journalpost
 * has it, or why it is not archived. The key changes of info follow the
 * messages, each with its time, person and device, and what accepting it
 * means.
 * Returns 0; BV_EINVAL; BV_ENOMEM.
 */
int transcript_render(const struct tinfo *info, const struct tperson *people,
		      size_t n_people, const struct tmsg *msgs, size_t n,
		      char **out, size_t *len);

#endif /* BV_ARCHIVER_TRANSCRIPT_H */
