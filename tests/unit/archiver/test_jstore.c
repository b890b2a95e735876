/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_jstore.c: the archiver's journal state and transcript
 * (client-lib/archiver): a message goes into exactly one batch, a batch's
 * documents come back as they went in and are not on disk in clear, the
 * state machine's rows survive a reopen, and the transcript shows what the
 * case file needs and nothing a sender could smuggle in.
 */
#define _GNU_SOURCE /* memmem */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bv_error.h"
#include "jstore.h"
#include "transcript.h"

#define CONV "3f0c8a52-1b7e-4c1e-9a53-6d2f0e8b7c41"
#define CASE "9b1d6a3e-0c4f-4b8a-9e2d-5f7a1c3b8d60"

static const uint8_t key[JSTORE_KEY_LEN] = {1, 2, 3};
static char dir[64], path[128];

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/bv-jstore-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/journal.db", dir);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[200];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static struct jbatch
batch(const char *id, int64_t first, int64_t last)
{
	struct jbatch b;

	memset(&b, 0, sizeof(b));
	snprintf(b.id, sizeof(b.id), "%s", id);
	snprintf(b.conversation, sizeof(b.conversation), CONV);
	snprintf(b.case_id, sizeof(b.case_id), CASE);
	b.first_seq = first;
	b.last_seq = last;
	b.n_messages = (int)(last - first + 1);
	b.created_ms = b.next_try_ms = 1000;
	return b;
}

/* One journalpost, no attachments. */
static int
create1(struct jstore *j, const struct jbatch *b, const char *const *ids,
	size_t n, const struct fiks_file *files, size_t n_files)
{
	struct jpart part = {.b = b, .files = files, .n_files = n_files};

	return jstore_batch_create(j, &part, 1, ids, n, NULL, 0);
}

static const char secret[] = "Kan jeg flytte hjem til jul? CANARY-7311";

static void
test_never_twice_and_files(void **state)
{
	const struct fiks_file files[2] = {
		{"arkivmelding.xml", "application/xml",
		 (const unsigned char *)"<a/>", 4},
		{"samtale.txt", "text/plain", (const unsigned char *)secret,
		 sizeof(secret) - 1},
	};
	const char *ids[3] = {"m1", "m2", "m3"};
	struct fiks_file *got = NULL;
	struct jstore *j = NULL;
	struct jbatch b, r;
	char **mids = NULL, buf[8192];
	size_t n = 0, len;
	FILE *f;

	(void)state;
	assert_int_equal(jstore_open(path, key, &j), 0);
	assert_int_equal(jstore_cursor(j, CONV), 0);
	b = batch("11111111-1111-4111-8111-111111111111", 1, 3);
	assert_int_equal(create1(j, &b, ids, 3, files, 2), 0);
	assert_int_equal(jstore_cursor(j, CONV), 3);
	/* The same messages again, or overlapping: refused. */
	b = batch("22222222-2222-4222-8222-222222222222", 3, 4);
	assert_int_equal(create1(j, &b, ids, 2, files, 2), BV_EINVAL);
	b = batch("22222222-2222-4222-8222-222222222222", 2, 2);
	assert_int_equal(create1(j, &b, ids, 1, files, 2), BV_EINVAL);
	assert_int_equal(jstore_cursor(j, CONV), 3);
	b = batch("22222222-2222-4222-8222-222222222222", 4, 4);
	assert_int_equal(create1(j, &b, ids + 2, 1, files, 2), 0);
	assert_int_equal(jstore_cursor(j, CONV), 4);
	/* A message that could not be read and its resent copy in one
	 * batch: its id is told once. */
	{
		const char *again[3] = {"m4", "m5", "m4"};

		b = batch("66666666-6666-4666-8666-666666666666", 5, 7);
		assert_int_equal(create1(j, &b, again, 3, files, 2), 0);
		assert_int_equal(jstore_batch_messages(j, b.id, &mids, &n), 0);
		assert_int_equal(n, 2);
		assert_string_equal(mids[0], "m4");
		assert_string_equal(mids[1], "m5");
		jstore_ids_free(mids, n);
		mids = NULL;
	}
	jstore_close(j);

	/* After a reopen: the batch, its messages and documents. */
	assert_int_equal(jstore_open(path, key, &j), 0);
	assert_int_equal(
		jstore_batch_get(j, "11111111-1111-4111-8111-111111111111", &r),
		1);
	assert_int_equal(r.state, JS_READY);
	assert_int_equal(r.first_seq, 1);
	assert_int_equal(r.last_seq, 3);
	assert_int_equal(jstore_batch_messages(j, r.id, &mids, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(mids[0], "m1");
	assert_string_equal(mids[2], "m3");
	jstore_ids_free(mids, n);
	assert_int_equal(jstore_batch_files(j, r.id, &got, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(got[1].name, "samtale.txt");
	assert_string_equal(got[1].mime, "text/plain");
	assert_int_equal(got[1].len, sizeof(secret) - 1);
	assert_memory_equal(got[1].data, secret, sizeof(secret) - 1);
	jstore_files_free(got, n);
	jstore_close(j);

	/* Sealed: the words are nowhere in the file. */
	f = fopen(path, "rb");
	assert_non_null(f);
	while ((len = fread(buf, 1, sizeof(buf), f)) > 0)
		assert_null(memmem(buf, len, "CANARY-7311", 11));
	fclose(f);

	/* Another store key cannot open them. */
	{
		uint8_t other[JSTORE_KEY_LEN] = {9};

		assert_int_equal(jstore_open(path, other, &j), 0);
		assert_int_equal(jstore_batch_files(
					 j,
					 "11111111-1111-4111-8111-111111111111",
					 &got, &n),
				 BV_EIO);
		jstore_close(j);
	}
}

static int
count_cb(const struct jbatch *b, void *arg)
{
	int *n = arg;

	(void)b;
	(*n)++;
	return 0;
}

static void
test_states(void **state)
{
	const struct fiks_file file = {"a.xml", "application/xml",
				       (const unsigned char *)"<a/>", 4};
	const char *ids[1] = {"m1"};
	struct jstore *j = NULL;
	struct jbatch b, r;
	int n = 0;

	(void)state;
	assert_int_equal(jstore_open(path, key, &j), 0);
	b = batch("33333333-3333-4333-8333-333333333333", 1, 1);
	assert_int_equal(create1(j, &b, ids, 1, &file, 1), 0);
	assert_int_equal(jstore_blocked(j, CONV), 0);
	b.state = JS_SENT;
	b.attempts = 1;
	snprintf(b.fiks_id, sizeof(b.fiks_id),
		 "44444444-4444-4444-8444-444444444444");
	assert_int_equal(jstore_batch_update(j, &b), 0);
	assert_int_equal(jstore_batch_by_fiks(
				 j, "44444444-4444-4444-8444-444444444444", &r),
			 1);
	assert_string_equal(r.id, b.id);
	assert_int_equal(jstore_batch_by_fiks(j, "", &r), 0);
	b.state = JS_FAILED;
	snprintf(b.error, sizeof(b.error), "ugyldigforespoersel");
	assert_int_equal(jstore_batch_update(j, &b), 0);
	assert_int_equal(jstore_blocked(j, CONV), 1);
	assert_int_equal(jstore_batches(j, JS_FAILED, count_cb, &n), 0);
	assert_int_equal(n, 1);
	n = 0;
	assert_int_equal(jstore_batches(j, JS_READY, count_cb, &n), 0);
	assert_int_equal(n, 0);
	b = batch("55555555-5555-4555-8555-555555555555", 1, 1);
	assert_int_equal(jstore_batch_update(j, &b), BV_EINVAL);
	jstore_close(j);
}

static int failures_seen;
static int64_t last_failure_ack;
static char last_failure_note[16];

static int
failure_cb(void *arg, const struct jatt_failure *f)
{
	(void)arg;
	failures_seen++;
	assert_string_equal(f->message_id, "m1");
	assert_int_equal(f->idx, 1);
	assert_int_equal(f->code, BV_ETAMPERED);
	last_failure_ack = f->acknowledged_ms;
	snprintf(last_failure_note, sizeof(last_failure_note), "%s",
		 f->note ? f->note : "");
	return 0;
}

/* Attachments: sealed when fetched, handed to exactly one journalpost of
 * a cut, read back with it, dropped once the relay is told. */
static void
test_attachments(void **state)
{
	static const char photo[] = "JPEG-bytes CANARY-ATT-5521";
	const struct fiks_file files[1] = {
		{"arkivmelding.xml", "application/xml",
		 (const unsigned char *)"<a/>", 4},
	};
	const char *ids[1] = {"m1"};
	struct jbatch b0, b1;
	struct jpart parts[2];
	struct jatt_ref refs[2] = {
		{"m1", 0, 1, "vedlegg-1.jpg", "image/jpeg"},
		{"m1", 1, 0, NULL, NULL},
	};
	struct fiks_file *got = NULL;
	struct jstore *j = NULL;
	struct jatt st;
	char **blobs = NULL;
	size_t n = 0;

	(void)state;
	unlink(path);
	assert_int_equal(jstore_open(path, key, &j), 0);
	assert_int_equal(jstore_att_get(j, "m1", 0, &st), 0);
	assert_int_equal(
		jstore_att_failed(j, "m1", 0, "blob-0", BV_EIO, 1, 5000, 0), 0);
	assert_int_equal(jstore_att_get(j, "m1", 0, &st), 1);
	assert_int_equal(st.state, JA_RETRY);
	assert_int_equal(st.next_try_ms, 5000);
	assert_int_equal(jstore_att_fetched(j, "m1", 0, "blob-0",
					    (const uint8_t *)photo,
					    sizeof(photo) - 1),
			 0);
	assert_int_equal(jstore_att_get(j, "m1", 0, &st), 1);
	assert_int_equal(st.state, JA_FETCHED);
	assert_int_equal(st.len, sizeof(photo) - 1);
	assert_int_equal(strlen(st.sha256), 64);
	/* A tampered one, given up. */
	assert_int_equal(
		jstore_att_failed(j, "m1", 1, "blob-1", BV_ETAMPERED, 3, 0, 1),
		0);
	/* A late failure report changes nothing that is settled. */
	assert_int_equal(
		jstore_att_failed(j, "m1", 0, "blob-0", BV_EIO, 9, 0, 1), 0);
	assert_int_equal(jstore_att_get(j, "m1", 0, &st), 1);
	assert_int_equal(st.state, JA_FETCHED);

	b0 = batch("33333333-3333-4333-8333-333333333333", 1, 1);
	b1 = batch("44444444-4444-4444-8444-444444444444", 1, 1);
	b1.n_messages = 0;
	parts[0] = (struct jpart){.b = &b0, .files = files, .n_files = 1};
	parts[1] = (struct jpart){.b = &b1, .files = files, .n_files = 1};
	assert_int_equal(jstore_batch_create(j, parts, 2, ids, 1, refs, 2), 0);
	/* Never in two batches. */
	b0 = batch("55555555-5555-4555-8555-555555555555", 2, 2);
	parts[0] = (struct jpart){.b = &b0, .files = files, .n_files = 1};
	assert_int_equal(jstore_batch_create(j, parts, 1, ids, 1, refs, 1),
			 BV_EINVAL);
	assert_int_equal(jstore_cursor(j, CONV), 1);

	assert_int_equal(
		jstore_batch_files(j, "44444444-4444-4444-8444-444444444444",
				   &got, &n),
		0);
	assert_int_equal(n, 2);
	assert_string_equal(got[1].name, "vedlegg-1.jpg");
	assert_string_equal(got[1].mime, "image/jpeg");
	assert_memory_equal(got[1].data, photo, sizeof(photo) - 1);
	jstore_files_free(got, n);
	assert_int_equal(
		jstore_batch_files(j, "33333333-3333-4333-8333-333333333333",
				   &got, &n),
		0);
	assert_int_equal(n, 1);
	jstore_files_free(got, n);

	/* Nothing to tell the relay before the kvittering. */
	assert_int_equal(jstore_blobs_unreported(j, 100, &blobs, &n), 0);
	assert_int_equal(n, 0);
	jstore_ids_free(blobs, n);
	assert_int_equal(
		jstore_batch_get(j, "44444444-4444-4444-8444-444444444444",
				 &b1),
		1);
	b1.state = JS_JOURNALED;
	assert_int_equal(jstore_batch_update(j, &b1), 0);
	assert_int_equal(
		jstore_batch_get(j, "33333333-3333-4333-8333-333333333333",
				 &b0),
		1);
	b0.state = JS_ANNOUNCED;
	assert_int_equal(jstore_batch_update(j, &b0), 0);
	jstore_close(j);
	/* After a reopen: both blobs (the tampered one too) still owed. */
	assert_int_equal(jstore_open(path, key, &j), 0);
	assert_int_equal(jstore_blobs_unreported(j, 100, &blobs, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(
		jstore_blobs_reported(j, (const char *const *)blobs, n), 0);
	jstore_ids_free(blobs, n);
	assert_int_equal(jstore_blobs_unreported(j, 100, &blobs, &n), 0);
	assert_int_equal(n, 0);
	jstore_ids_free(blobs, n);

	/* An operator acknowledges the failed one; a fetched or unknown file
	 * cannot be; the first note stays. */
	assert_int_equal(jstore_att_acknowledge(j, "m1", 0, "x", 7), 0);
	assert_int_equal(jstore_att_acknowledge(j, "m9", 0, "x", 7), 0);
	failures_seen = 0;
	assert_int_equal(jstore_att_failures(j, failure_cb, NULL), 0);
	assert_int_equal(failures_seen, 1);
	assert_int_equal(last_failure_ack, 0);
	assert_int_equal(jstore_att_acknowledge(j, "m1", 1, "sett", 1234), 1);
	assert_int_equal(jstore_att_acknowledge(j, "m1", 1, "igjen", 5678), 1);
	failures_seen = 0;
	assert_int_equal(jstore_att_failures(j, failure_cb, NULL), 0);
	assert_int_equal(failures_seen, 1);
	assert_int_equal(last_failure_ack, 1234);
	assert_string_equal(last_failure_note, "sett");
	jstore_close(j);
}

static void
test_transcript(void **state)
{
	const struct tperson people[] = {
		{"a-elisa", "Elisa (17)", "child"},
		{"a-camilla", "Camilla Berg", "caseworker"},
		{"a-arkiv", NULL, "archive"},
	};
	const char evil[] = "Hei\nFalsk linje\x1b[2J\r\x07slutt";
	static struct tatt files[] = {
		{"IMG_1.jpg\nFalsk: linje", "image/jpeg", 345678, 2, 1, 1, NULL,
		 "b1", "vedlegg-1.jpg"},
		{"brev.pdf", "application/pdf", 1234567, 1, 2, 2, NULL, "b2",
		 "vedlegg-2.pdf"},
		{"x.png", "image/png", 999, 0, 0, 0,
		 "filen besto ikke ekthetskontrollen", "b3", ""},
	};
	const struct tmsg msgs[] = {
		{"m1", "a-elisa", 1795431296123, evil, sizeof(evil) - 1, 0, 0,
		 0, NULL, NULL, NULL, 0, NULL, 0, NULL, NULL, NULL},
		{"m2", "a-camilla", 1795431396123, "Vi ses ✓", 10, 0, 0, 0,
		 NULL, NULL, NULL, 0, files, 3, NULL, NULL, NULL},
		{"m3", "a-ghost", 1795431496123, "", 0, 1, 0, 0, NULL, NULL,
		 NULL, 0, NULL, 0, NULL, NULL, NULL},
		{"m4", "", 1795431596123, "", 0, 0, 0, 1, NULL, NULL, NULL, 0,
		 NULL, 0, "out_of_hours", "+47 22 11 22 33\nFalsk: linje",
		 "116 111"},
		{"m5", "", 1795431696123, "", 0, 0, 0, 1, NULL, NULL, NULL, 0,
		 NULL, 0, "out_of_hours", "", ""},
		{"m6", "", 1795431796123, "", 0, 0, 0, 1, NULL, NULL, NULL, 0,
		 NULL, 0, "maintenance\x1b[2J", NULL, NULL},
	};
	const struct tinfo info = {.municipality = "Testkommune",
				   .case_number = "2026/0417",
				   .conversation = CONV,
				   .kind = "team",
				   .batch_id = "b-1"};
	char *out = NULL;
	size_t len = 0;

	(void)state;
	setenv("TZ", "Europe/Oslo", 1);
	tzset();
	assert_int_equal(
		transcript_render(&info, people, 3, msgs, 6, &out, &len), 0);
	assert_int_equal(strlen(out), len);
	assert_non_null(strstr(out, "Sak: 2026/0417"));
	assert_non_null(strstr(out, "Kommune: Testkommune"));
	assert_non_null(strstr(out, "Elisa (17) (barn)"));
	assert_non_null(strstr(out, "Camilla Berg (saksbehandler)"));
	assert_non_null(strstr(out, "Vi ses ✓"));
	/* A newline in a text stays inside the message, indented; escape
	 * codes and bells do not reach the archive. */
	assert_non_null(strstr(out, "    Hei\n    Falsk linje"));
	assert_null(strchr(out, '\x1b'));
	assert_null(strchr(out, '\x07'));
	assert_null(strchr(out, '\r'));
	assert_non_null(strstr(out, "Ukjent avsender (konto a-ghost)"));
	assert_non_null(strstr(out, "kunne ikke leses"));
	/* A notice as the citizen saw it: the numbers it gave, each on a
	 * clean line; without numbers none is made up; an unknown kind named. */
	assert_non_null(strstr(out, "Melding fra tjenesten (automatisk):\n"
				    "    Kontoret var stengt."));
	assert_non_null(strstr(out,
			       "barnevernvaktens nummer, +47 22 11 22 "
			       "33\xef\xbf\xbd"
			       "Falsk: linje,\n    og Alarmtelefonen for "
			       "barn og unge, 116 111.\n    (melding m4)"));
	assert_non_null(strstr(out, "kontoret åpner igjen.\n    (melding m5)"));
	assert_non_null(strstr(out, "ikke kan vise: maintenance\xef\xbf\xbd"
				    "[2J.]\n    (melding m6)"));
	assert_non_null(strstr(out, "(melding m1)"));
	assert_non_null(strstr(out, "(melding m4)"));
	/* Files under their message: a name is one clean line; where each
	 * is, or why it is not archived. */
	assert_non_null(strstr(out, "    Vedlegg: IMG_1.jpg\xef\xbf\xbd"
				    "Falsk: linje (image/jpeg, 346 kB) – "
				    "dokument 2 i journalposten\n"));
	assert_non_null(strstr(out, "    Vedlegg: brev.pdf (application/pdf, "
				    "1,2 MB) – dokument 1 i journalpost 2 av "
				    "2"));
	assert_non_null(strstr(out, "    Vedlegg: x.png (image/png, 999 byte)"
				    "\n    [Vedlegget er ikke arkivert: filen "
				    "besto ikke ekthetskontrollen]\n"));
	assert_null(strstr(out, "\nFalsk: linje"));
	/* Local time: 2026-11-23 10:54:56 UTC is 11:54:56 in Oslo. */
	assert_non_null(strstr(out, "23.11.2026 11:54:56"));
	free(out);
	assert_int_equal(
		transcript_render(&info, people, 3, msgs, 0, &out, &len),
		BV_EINVAL);
	assert_string_equal(transcript_role("foster_parent"), "fosterforelder");
	assert_string_equal(transcript_role("nonsense"), "ukjent rolle");
}

static void
test_transcript_email(void **state)
{
	const struct tperson people[] = {
		{"a-elisa", "Elisa (17)", "child"},
		{"a-camilla", "Camilla Berg", "caseworker"},
	};
	/* A hostile subject: a newline that would forge a line, an escape
	 * code, a C1 control, a byte that is not UTF-8. */
	const char evil[] = "Klage\nSvarfrist: aldri\x1b[2J\xc2\x85x\xff";
	char long_subject[400];
	struct tmsg msgs[4];
	const struct tinfo info = {.municipality = "Testkommune",
				   .case_number = "2026/0417",
				   .conversation = CONV,
				   .kind = "team",
				   .batch_id = "b-2"};
	char *out = NULL, line[TRANSCRIPT_SUBJECT_MAX + 4];
	const char *at;
	size_t len = 0;

	(void)state;
	setenv("TZ", "Europe/Oslo", 1);
	tzset();
	memset(long_subject, 0, sizeof(long_subject));
	for (len = 0; len + 2 < 300; len += 2)
		memcpy(long_subject + len, "æ", 2);
	memset(msgs, 0, sizeof(msgs));
	msgs[0] = (struct tmsg){.message_id = "m1",
				.sender = "a-elisa",
				.time_ms = 1795431296123,
				.text = "Brødtekst",
				.text_len = 10};
	msgs[0].subject = "Søknad om samvær";
	msgs[0].thread = "m1";
	msgs[0].answer_by_ms = 1795949696123; /* 29.11.2026 */
	msgs[1] = (struct tmsg){.message_id = "m2",
				.sender = "a-camilla",
				.time_ms = 1795431396123,
				.text = "Svar",
				.text_len = 4};
	msgs[1].subject = "Re: Søknad om samvær";
	msgs[1].thread = "m1";
	msgs[1].thread_subject = "Søknad om samvær";
	msgs[2] = (struct tmsg){.message_id = "m3",
				.sender = "a-elisa",
				.time_ms = 1795431496123,
				.text = "Hei",
				.text_len = 3};
	msgs[2].subject = evil;
	msgs[2].thread = "m0-older";
	msgs[3] = (struct tmsg){.message_id = "m4",
				.sender = "a-elisa",
				.time_ms = 1795431596123,
				.text = "Lang",
				.text_len = 4};
	msgs[3].subject = long_subject;
	msgs[3].thread = "m4";
	assert_int_equal(
		transcript_render(&info, people, 2, msgs, 4, &out, &len), 0);
	assert_non_null(strstr(out, "    Henvendelse: Søknad om samvær\n"
				    "    Svarfrist: 29.11.2026\n"
				    "    Brødtekst\n"));
	/* The first e-post of a thread answers nothing. */
	at = strstr(out, "(melding m1)");
	assert_non_null(at);
	assert_null(memmem(out, (size_t)(at - out), "Svar på", 7));
	assert_non_null(strstr(out, "    Henvendelse: Re: Søknad om samvær\n"
				    "    Svar på: Søknad om samvær\n"
				    "    Svar\n"));
	/* The hostile subject stays on its one line. */
	assert_non_null(strstr(out,
			       "    Henvendelse: Klage\xef\xbf\xbdSvarfrist: "
			       "aldri\xef\xbf\xbd[2J\xef\xbf\xbdx"
			       "\xef\xbf\xbd\n"));
	assert_null(strstr(out, "\n    Svarfrist: aldri"));
	assert_null(strchr(out, '\x1b'));
	assert_null(strstr(out, "\xc2\x85"));
	assert_null(strchr(out, '\xff'));
	/* A reply whose thread is not known by subject: named by id. */
	assert_non_null(
		strstr(out, "    Svar på: henvendelsen i melding m0-older\n"));
	/* A subject longer than any client sends is cut at a character. */
	at = strstr(out, "    Henvendelse: æ");
	assert_non_null(at);
	assert_int_equal(strchr(at, '\n') - at,
			 strlen("    Henvendelse: ") + 200 + 3);
	assert_memory_equal(strchr(at, '\n') - 3, "…", 3);
	free(out);

	/* transcript_line() alone: odd cut points never split a character. */
	assert_int_equal(transcript_line("æøå", 6, 5, line, sizeof(line)), 7);
	assert_string_equal(line, "æø…");
	assert_int_equal(transcript_line("a\tb", 3, 200, line, sizeof(line)),
			 5);
	assert_string_equal(line, "a\xef\xbf\xbd"
				  "b");
	assert_int_equal(
		transcript_line("\xe2\x82", 2, 200, line, sizeof(line)), 6);
}

/* Collects key changes for test_keychanges. */
struct kcs {
	int64_t ids[8];
	char accounts[8][40];
	uint32_t devices[8];
	size_t n;
};

static int
kc_cb(void *arg, const struct jkeychange *k)
{
	struct kcs *c = arg;

	if (c->n == 8)
		return 1;
	c->ids[c->n] = k->id;
	snprintf(c->accounts[c->n], sizeof(c->accounts[0]), "%s", k->account);
	c->devices[c->n++] = k->device;
	return 0;
}

/*
 * An accepted key change is recorded by the next cut of each conversation,
 * once per conversation, in the same transaction as the batch; the
 * transcript says who, which device and when.
 */
static void
test_keychanges(void **state)
{
	static const char other[] = "7e2b9c14-5d3a-4f6e-8b1c-2a9d0e4f6b83";
	const char *ids[1] = {"m1"};
	const struct fiks_file files[1] = {
		{"samtale.txt", "text/plain", (const unsigned char *)"x", 1}};
	const struct tperson people[2] = {
		{"a-elisa", "Elisa (17)", "child"},
		{"a-camilla", "Camilla Berg", "caseworker"},
	};
	const struct tmsg msg = {.message_id = "m1",
				 .sender = "a-camilla",
				 .time_ms = 1795431296123,
				 .text = "Ny telefon",
				 .text_len = 10};
	const struct tkeychange tk[1] = {{"a-camilla", 2, 1795431196123}};
	const struct tinfo info = {.municipality = "Testkommune",
				   .case_number = "2026/0417",
				   .conversation = CONV,
				   .kind = "team",
				   .batch_id = "b-3",
				   .keychanges = tk,
				   .n_keychanges = 1};
	struct jstore *j = NULL;
	struct jbatch b;
	struct jpart part;
	struct kcs c;
	char *out = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(jstore_open(path, key, &j), 0);
	assert_int_equal(jstore_keychange_add(j, "a-camilla", 2, 1000), 0);
	assert_int_equal(jstore_keychange_add(j, NULL, 2, 1000), BV_EINVAL);
	memset(&c, 0, sizeof(c));
	assert_int_equal(jstore_keychanges_unnoted(j, CONV, kc_cb, &c), 0);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.accounts[0], "a-camilla");
	assert_int_equal(c.devices[0], 2);
	/* A cut that fails records nothing: the key change stays due. */
	b = batch("66666666-6666-4666-8666-666666666666", 0, 0);
	part = (struct jpart){.b = &b,
			      .files = files,
			      .n_files = 1,
			      .keychanges = c.ids,
			      .n_keychanges = 1};
	assert_int_equal(jstore_batch_create(j, &part, 1, ids, 1, NULL, 0),
			 BV_EINVAL);
	memset(&c, 0, sizeof(c));
	assert_int_equal(jstore_keychanges_unnoted(j, CONV, kc_cb, &c), 0);
	assert_int_equal(c.n, 1);
	/* The cut that records it notes it for its conversation only. */
	b = batch("66666666-6666-4666-8666-666666666666", 1, 1);
	assert_int_equal(jstore_batch_create(j, &part, 1, ids, 1, NULL, 0), 0);
	memset(&c, 0, sizeof(c));
	assert_int_equal(jstore_keychanges_unnoted(j, CONV, kc_cb, &c), 0);
	assert_int_equal(c.n, 0);
	assert_int_equal(jstore_keychanges_unnoted(j, other, kc_cb, &c), 0);
	assert_int_equal(c.n, 1);
	/* Kept across a restart. */
	jstore_close(j);
	assert_int_equal(jstore_open(path, key, &j), 0);
	memset(&c, 0, sizeof(c));
	assert_int_equal(jstore_keychanges_unnoted(j, CONV, kc_cb, &c), 0);
	assert_int_equal(c.n, 0);
	jstore_close(j);

	setenv("TZ", "Europe/Oslo", 1);
	tzset();
	assert_int_equal(
		transcript_render(&info, people, 2, &msg, 1, &out, &len), 0);
	/* 2026-11-23 10:53:16 UTC is 11:53:16 in Oslo. */
	assert_non_null(strstr(out,
			       "Endrede sikkerhetsnøkler som arkivet godtok:\n"
			       "23.11.2026 11:53:16  Camilla Berg "
			       "(saksbehandler), enhet 2:\n"
			       "    Enheten har fått en ny sikkerhetsnøkkel"));
	assert_non_null(strstr(out, "Arkivet godtok\n    nøkkelen"));
	free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_never_twice_and_files,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_states, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attachments, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_transcript, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_transcript_email, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_keychanges, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
