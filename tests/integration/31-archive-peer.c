/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 31-archive-peer: bvfiks-archive-peer on a local FIKS IO (RabbitMQ and
 * bvfiks-devserver, tests/support/bvtest_fiks.h), driven by a plain
 * fiks_client as the fagsystem's sender: a valid arkivmelding is journaled
 * and answered mottatt + kvittering; the same key again is Eksisterende
 * with the same numbers and one row in the store; every fault mode; and
 * packages that must be refused with ugyldigforespoersel naming the check:
 * a tampered document (digest), a signer other than the pinned one, a CMS
 * for another account, an arkivmelding the XSD refuses, a missing file.
 * Every wait is bounded. BVT_TEST_FILTER (a cmocka pattern) picks tests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <zip.h>

#include "bv_error.h"
#include "bv_util.h"
#include "bvtest.h"
#include "bvtest_fiks.h"
#include "fiks_arkiv.h"
#include "fiks_asice.h"
#include "fiks_cms.h"
#include "fiks_error.h"
#include "fiks_identity.h"
#include "fiks_io.h"

enum { PEER, SENDER, OTHER, N_ACCTS };

static struct bvt_fiks F;
static struct fiks_client *snd;		/* the fagsystem's sender */
static struct fiks_identity *sender_id; /* the pinned signer */
static char *peer_cert, *other_cert;	/* PEM */
static pid_t peer_pid = -1;
static char db[PATH_MAX], control[PATH_MAX], peer_log[PATH_MAX];
static int fault_gen; /* makes every control file text new */

/* ---- the peer process ---------------------------------------------------- */

/* The peer next to us in the build tree, or $BVT_ARCHIVE_PEER_BIN. */
static const char *
peer_bin(void)
{
	static char path[PATH_MAX + 64];
	const char *e = getenv("BVT_ARCHIVE_PEER_BIN");
	char exe[PATH_MAX];
	ssize_t n;
	char *slash;

#ifdef BV_ARCHIVE_PEER_BIN
	if (e == NULL || *e == '\0')
		e = BV_ARCHIVE_PEER_BIN;
#endif
	if (e != NULL && *e != '\0')
		return e;
	/* <build>/tests/integration/test-31-… → <build>/fiks/… */
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return "bvfiks-archive-peer";
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (slash != NULL)
		*slash = '\0';
	snprintf(path, sizeof(path), "%s/../../fiks/bvfiks-archive-peer", exe);
	return path;
}

static int
log_has(const char *needle)
{
	size_t len = 0;
	char *s = bvt_file_read(peer_log, &len);
	int has = s != NULL && bvt_mem_contains(s, len, needle, strlen(needle));

	free(s);
	return has;
}

static void
peer_stop(void)
{
	int64_t deadline;
	int status;

	if (peer_pid <= 0)
		return;
	kill(peer_pid, SIGTERM);
	deadline = bvt_now_ms() + bvt_ms(5000);
	while (bvt_now_ms() < deadline) {
		if (waitpid(peer_pid, &status, WNOHANG) == peer_pid) {
			peer_pid = -1;
			if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
				fprintf(stderr, "archive peer exited badly\n");
			return;
		}
		bvt_sleep_ms(20);
	}
	fprintf(stderr, "archive peer did not stop in time: killed\n");
	kill(peer_pid, SIGKILL);
	waitpid(peer_pid, &status, 0);
	peer_pid = -1;
}

static int
peer_start(void)
{
	const char *bin = peer_bin();
	int64_t deadline;
	pid_t pid;

	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open(peer_log, O_WRONLY | O_CREAT | O_APPEND, 0600);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		execl(bin, bin, "--config", F.acct[PEER].config, "--db", db,
		      "--sender-cert", F.acct[SENDER].cert, "--control",
		      control, "--log-level", "info", (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	peer_pid = pid;
	deadline = bvt_now_ms() + bvt_ms(BVT_TIMEOUT);
	while (bvt_now_ms() < deadline) {
		int status;

		if (log_has("archive-peer: ready"))
			return 0;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			peer_pid = -1;
			fprintf(stderr, "archive peer exited at start\n");
			return -1;
		}
		bvt_sleep_ms(20);
	}
	fprintf(stderr, "archive peer not ready in time\n");
	return -1;
}

/* Arms a fault for the peer's next messages through its control file. */
static void
set_fault(const char *mode)
{
	char tmp[PATH_MAX + 8];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", control);
	f = fopen(tmp, "w");
	assert_non_null(f);
	fprintf(f, "# generation %d\n%s\n", ++fault_gen, mode);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(rename(tmp, control), 0);
}

/* The store as `bvfiks-archive-peer --db DB list --json` prints it. */
static json_t *
store_list(void)
{
	char *argv[] = {(char *)peer_bin(), "--db", db, "list", "--json", NULL};
	char *out = NULL;
	size_t len = 0;
	json_t *j;

	assert_int_equal(bvt_run(argv, 0, bvt_ms(BVT_TIMEOUT), &out, &len), 0);
	j = json_loadb(out, len, 0, NULL);
	free(out);
	assert_true(json_is_array(j));
	return j;
}

/* How many journalposts the store has under noekkel. */
static int
store_count(const char *noekkel)
{
	json_t *arr = store_list(), *o;
	size_t i;
	int n = 0;

	json_array_foreach(arr, i, o)
	{
		const char *k =
			json_string_value(json_object_get(o, "noekkel"));

		if (k != NULL && strcmp(k, noekkel) == 0)
			n++;
	}
	json_decref(arr);
	return n;
}

/* ---- sending ------------------------------------------------------------- */

static const char transcript[] =
	"Samtale i sak 2026/17\n10:01 Saksbehandler: Hei Åse, hvordan går det?"
	"\n10:02 Åse: Bra <3 & takk\n";

/* arkivmelding.xml for one document samtale.txt under key noekkel. */
static char *
arkivmelding(const char *noekkel, size_t *len)
{
	struct fiks_arkiv_part p[] = {
		{.type = "EA",
		 .navn = "Åse <Øyvor> & \"Lille\"",
		 .skjermet = 1},
		{.type = "IA", .navn = "Kåre Ødegård"},
	};
	struct fiks_arkiv_dokument d = {
		.tittel = "Samtale",
		.filnavn = "samtale.txt",
		.format = "TXT",
		.mime = "text/plain; charset=UTF-8",
		.hoveddokument = 1,
	};
	struct fiks_arkiv_journalpost jp = {
		.system = "bvchat",
		.fagsystem = "bvchat-test",
		.mappe_noekkel = "case-31",
		.noekkel = noekkel,
		.tittel = "Chat i sak 2026/17, 2026-11-20",
		.journalposttype = "X",
		.dokumentets_dato = "2026-11-20",
		.tilgangsrestriksjon = "13",
		.skjermingshjemmel = "Offl. § 13, jf. bvl. § 13-1",
		.parter = p,
		.n_parter = 2,
		.dokumenter = &d,
		.n_dokumenter = 1,
	};
	char err[256] = "", *xml = NULL;

	if (fiks_arkiv_arkivmelding(&jp, &xml, len, err, sizeof(err)) < 0)
		fail_msg("arkivmelding: %s", err);
	return xml;
}

static void
files_of(struct fiks_file files[2], const char *xml, size_t len)
{
	files[0] = (struct fiks_file){FIKS_ARKIV_ARKIVMELDING_FILE,
				      "application/xml",
				      (const unsigned char *)xml, len};
	files[1] = (struct fiks_file){"samtale.txt", "text/plain",
				      (const unsigned char *)transcript,
				      strlen(transcript)};
}

/* Sends files to the peer the ordinary way (signed with our account). */
static void
send_files(const struct fiks_file *files, size_t n, const char *klient_id,
	   char id[FIKS_UUID_LEN + 1])
{
	struct fiks_send_req req = {0};
	int rc;

	req.mottaker = F.acct[PEER].konto;
	req.type = FIKS_ARKIV_OPPRETT;
	req.ttl_ms = 120000;
	req.klient_melding_id = klient_id;
	req.klient_korrelasjons_id = klient_id;
	rc = fiks_send(snd, &req, files, n, peer_cert, id);
	if (rc < 0)
		fail_msg("fiks_send: %s", fiks_errname(rc));
}

static void
send_arkiv(const char *noekkel, char id[FIKS_UUID_LEN + 1])
{
	struct fiks_file files[2];
	size_t len = 0;
	char *xml = arkivmelding(noekkel, &len);

	files_of(files, xml, len);
	send_files(files, 2, noekkel, id);
	free(xml);
}

/* Encrypts a ready package for cert_pem and sends it as is. */
static void
send_package(const unsigned char *zip, size_t zip_len, const char *cert_pem,
	     char id[FIKS_UUID_LEN + 1])
{
	struct fiks_send_req req = {0};
	unsigned char *der = NULL;
	size_t der_len = 0;
	int rc;

	assert_int_equal(fiks_cms_encrypt(zip, zip_len, cert_pem,
					  strlen(cert_pem), &der, &der_len),
			 0);
	req.mottaker = F.acct[PEER].konto;
	req.type = FIKS_ARKIV_OPPRETT;
	req.ttl_ms = 120000;
	rc = fiks_send_raw(snd, &req, der, der_len, id);
	free(der);
	if (rc < 0)
		fail_msg("fiks_send_raw: %s", fiks_errname(rc));
}

/* A copy of the zip with entry name's bytes replaced (CRC made right, so
 * only the manifest digest can tell). */
static unsigned char *
pkg_replace(const unsigned char *zip, size_t len, const char *name,
	    const void *data, size_t dlen, size_t *out_len)
{
	zip_error_t ze;
	zip_source_t *src, *rep;
	zip_t *z;
	zip_int64_t idx, size;
	unsigned char *out;

	zip_error_init(&ze);
	src = zip_source_buffer_create(zip, len, 0, &ze);
	assert_non_null(src);
	zip_source_keep(src);
	z = zip_open_from_source(src, 0, &ze);
	assert_non_null(z);
	idx = zip_name_locate(z, name, 0);
	assert_true(idx >= 0);
	rep = zip_source_buffer(z, data, dlen, 0);
	assert_non_null(rep);
	assert_int_equal(zip_file_replace(z, (zip_uint64_t)idx, rep, 0), 0);
	assert_int_equal(zip_close(z), 0);
	assert_int_equal(zip_source_open(src), 0);
	assert_int_equal(zip_source_seek(src, 0, SEEK_END), 0);
	size = zip_source_tell(src);
	assert_true(size > 0);
	assert_int_equal(zip_source_seek(src, 0, SEEK_SET), 0);
	out = malloc((size_t)size);
	assert_non_null(out);
	assert_int_equal(zip_source_read(src, out, (zip_uint64_t)size), size);
	zip_source_close(src);
	zip_source_free(src);
	*out_len = (size_t)size;
	return out;
}

/* ---- replies ------------------------------------------------------------- */

/* The next message answering id (others are acked and skipped). */
static struct fiks_melding *
reply_to(const char *id, int timeout_ms)
{
	int64_t deadline = bvt_now_ms() + bvt_ms(timeout_ms);

	while (bvt_now_ms() < deadline) {
		struct fiks_melding *m = NULL;
		int left = (int)(deadline - bvt_now_ms());
		int rc = fiks_receive(snd, left > 0 ? left : 1, &m);

		if (rc == FIKS_ETIMEOUT || rc == FIKS_EAMQP)
			continue;
		if (rc < 0)
			fail_msg("fiks_receive: %s", fiks_errname(rc));
		assert_int_equal(fiks_ack(snd, m), 0);
		if (strcmp(m->svar_til, id) == 0)
			return m;
		fiks_melding_free(m);
	}
	fail_msg("no reply to %s within %d ms (peer log: %s)", id, timeout_ms,
		 peer_log);
	return NULL;
}

/* Nothing answers id for ms. */
static void
no_reply_to(const char *id, int ms)
{
	int64_t deadline = bvt_now_ms() + bvt_ms(ms);

	while (bvt_now_ms() < deadline) {
		struct fiks_melding *m = NULL;
		int rc = fiks_receive(snd, 200, &m);

		if (rc == FIKS_ETIMEOUT || rc == FIKS_EAMQP)
			continue;
		assert_int_equal(rc, 0);
		fiks_ack(snd, m);
		if (strcmp(m->svar_til, id) == 0)
			fail_msg("unexpected %s answering %s", m->type, id);
		fiks_melding_free(m);
	}
}

/* The payload file name of m, opened with the peer's pinned cert. */
static char *
payload(const struct fiks_melding *m, const char *name, size_t *len)
{
	struct fiks_asice *a = NULL;
	const struct fiks_file *f;
	char err[256] = "", *out;

	if (fiks_open(snd, m, peer_cert, &a, err, sizeof(err)) < 0)
		fail_msg("fiks_open %s: %s", m->type, err);
	f = fiks_asice_find(a, name);
	assert_non_null(f);
	out = malloc(f->len + 1);
	assert_non_null(out);
	memcpy(out, f->data, f->len);
	out[f->len] = '\0';
	*len = f->len;
	fiks_asice_free(a);
	return out;
}

static void
expect_type(const char *id, const char *type)
{
	struct fiks_melding *m = reply_to(id, 20000);

	if (strcmp(m->type, type) != 0)
		fail_msg("answer to %s: %s, not %s", id, m->type, type);
	if (strcmp(type, FIKS_ARKIV_MOTTATT) == 0)
		assert_int_equal(m->body_len, 0);
	fiks_melding_free(m);
}

/* Expects mottatt, then a kvittering; returns it. */
static void
expect_kvittering(const char *id, struct fiks_arkiv_kvittering *k)
{
	struct fiks_melding *m;
	char err[256] = "", *xml;
	size_t len = 0;

	expect_type(id, FIKS_ARKIV_MOTTATT);
	m = reply_to(id, 20000);
	assert_string_equal(m->type, FIKS_ARKIV_KVITTERING);
	xml = payload(m, FIKS_ARKIV_KVITTERING_FILE, &len);
	if (fiks_arkiv_kvittering_parse(xml, len, k, err, sizeof(err)) < 0)
		fail_msg("kvittering: %s", err);
	free(xml);
	fiks_melding_free(m);
}

/* Expects a feilmelding of type whose text contains each of the words. */
static void
expect_feil(const char *id, const char *type, const char *w1, const char *w2)
{
	struct fiks_melding *m = reply_to(id, 20000);
	char msg[600] = "", *xml;
	size_t len = 0;

	if (strcmp(m->type, type) != 0)
		fail_msg("answer to %s: %s, not %s", id, m->type, type);
	xml = payload(m, FIKS_ARKIV_FEILMELDING_FILE, &len);
	assert_int_equal(
		fiks_arkiv_feilmelding_parse(type, xml, len, msg, sizeof(msg)),
		0);
	if ((w1 != NULL && strstr(msg, w1) == NULL) ||
	    (w2 != NULL && strstr(msg, w2) == NULL))
		fail_msg("feilmelding '%s' does not name %s %s", msg,
			 w1 ? w1 : "", w2 ? w2 : "");
	free(xml);
	fiks_melding_free(m);
	no_reply_to(id, 300);
}

/* ---- tests ---------------------------------------------------------------- */

static void
t_journal_and_repeat(void **state)
{
	struct fiks_arkiv_kvittering k1, k2, k3;
	char id[FIKS_UUID_LEN + 1], key[BV_UUID_LEN + 1], key2[64];
	json_t *arr, *o, *docs;
	size_t i;

	(void)state;
	bv_uuid_generate(key);
	send_arkiv(key, id);
	expect_kvittering(id, &k1);
	assert_false(k1.eksisterende);
	assert_true(k1.journalaar >= 2025);
	assert_true(k1.journalsekvensnummer > 0);
	assert_true(k1.journalpostnummer > 0);
	assert_string_equal(k1.noekkel, key);
	assert_string_equal(k1.fagsystem, "bvchat-test");
	assert_true(bv_uuid_valid(k1.system_id));

	/* The same key again (a retry): the same journalpost. */
	send_arkiv(key, id);
	expect_kvittering(id, &k2);
	assert_true(k2.eksisterende);
	assert_string_equal(k2.system_id, k1.system_id);
	assert_int_equal(k2.journalaar, k1.journalaar);
	assert_int_equal(k2.journalsekvensnummer, k1.journalsekvensnummer);
	assert_int_equal(k2.journalpostnummer, k1.journalpostnummer);
	assert_int_equal(store_count(key), 1);

	/* A new key in the same mappe: the next numbers. */
	snprintf(key2, sizeof(key2), "%s-2", key);
	send_arkiv(key2, id);
	expect_kvittering(id, &k3);
	assert_false(k3.eksisterende);
	assert_int_equal(k3.journalsekvensnummer, k1.journalsekvensnummer + 1);
	assert_int_equal(k3.journalpostnummer, k1.journalpostnummer + 1);

	/* The store keeps the document and its digest, never a copy of the
	 * transcript in the log. */
	arr = store_list();
	json_array_foreach(arr, i, o)
	{
		const char *k =
			json_string_value(json_object_get(o, "noekkel"));

		if (k == NULL || strcmp(k, key) != 0)
			continue;
		assert_int_equal(
			json_integer_value(json_object_get(o, "replays")), 1);
		assert_string_equal(
			json_string_value(json_object_get(o, "mappe_noekkel")),
			"case-31");
		docs = json_object_get(o, "dokumenter");
		assert_int_equal(json_array_size(docs), 1);
		assert_string_equal(
			json_string_value(json_object_get(
				json_array_get(docs, 0), "filnavn")),
			"samtale.txt");
		assert_int_equal(json_integer_value(json_object_get(
					 json_array_get(docs, 0), "bytes")),
				 strlen(transcript));
	}
	json_decref(arr);
	assert_false(log_has("Hei Åse"));
	assert_false(log_has("Øyvor"));
}

/* klientMeldingId alone identifies a retry too. */
static void
t_repeat_by_klient_melding_id(void **state)
{
	struct fiks_arkiv_kvittering k1, k2;
	struct fiks_file files[2];
	char id[FIKS_UUID_LEN + 1], key[BV_UUID_LEN + 1], kmi[BV_UUID_LEN + 1];
	char key2[64], *xml;
	size_t len = 0;

	(void)state;
	bv_uuid_generate(key);
	bv_uuid_generate(kmi);
	xml = arkivmelding(key, &len);
	files_of(files, xml, len);
	send_files(files, 2, kmi, id);
	free(xml);
	expect_kvittering(id, &k1);
	snprintf(key2, sizeof(key2), "%s-other", key);
	xml = arkivmelding(key2, &len);
	files_of(files, xml, len);
	send_files(files, 2, kmi, id);
	free(xml);
	expect_kvittering(id, &k2);
	assert_true(k2.eksisterende);
	assert_int_equal(k2.journalsekvensnummer, k1.journalsekvensnummer);
	assert_int_equal(store_count(key2), 0);
}

static void
t_fault_serverfeil_ugyldig(void **state)
{
	struct fiks_arkiv_kvittering k;
	char id[FIKS_UUID_LEN + 1], key[BV_UUID_LEN + 1];

	(void)state;
	bv_uuid_generate(key);
	set_fault("serverfeil:1");
	send_arkiv(key, id);
	expect_feil(id, FIKS_ARKIV_SERVERFEIL, "serverfeil", NULL);
	assert_int_equal(store_count(key), 0);

	set_fault("ugyldig:2");
	send_arkiv(key, id);
	expect_feil(id, FIKS_ARKIV_UGYLDIG, "ugyldig", NULL);
	send_arkiv(key, id);
	expect_feil(id, FIKS_ARKIV_UGYLDIG, "ugyldig", NULL);
	assert_int_equal(store_count(key), 0);

	/* The fault is used up: the retry is journaled, once. */
	send_arkiv(key, id);
	expect_kvittering(id, &k);
	assert_false(k.eksisterende);
	assert_int_equal(store_count(key), 1);
}

static void
t_fault_silence(void **state)
{
	struct fiks_arkiv_kvittering k;
	char id[FIKS_UUID_LEN + 1], key[BV_UUID_LEN + 1];

	(void)state;
	bv_uuid_generate(key);
	set_fault("silence:1");
	send_arkiv(key, id);
	no_reply_to(id, 3000);
	assert_true(log_has("fault silence"));
	assert_int_equal(store_count(key), 0);
	send_arkiv(key, id);
	expect_kvittering(id, &k);
	assert_false(k.eksisterende);
}

static void
t_fault_duplicate(void **state)
{
	struct fiks_arkiv_kvittering k1, k2;
	struct fiks_melding *m;
	char id[FIKS_UUID_LEN + 1], key[BV_UUID_LEN + 1], err[256], *xml;
	size_t len;

	(void)state;
	bv_uuid_generate(key);
	set_fault("duplicate:1");
	send_arkiv(key, id);
	expect_type(id, FIKS_ARKIV_MOTTATT);
	expect_type(id, FIKS_ARKIV_MOTTATT);
	m = reply_to(id, 20000);
	assert_string_equal(m->type, FIKS_ARKIV_KVITTERING);
	xml = payload(m, FIKS_ARKIV_KVITTERING_FILE, &len);
	assert_int_equal(
		fiks_arkiv_kvittering_parse(xml, len, &k1, err, sizeof(err)),
		0);
	free(xml);
	fiks_melding_free(m);
	m = reply_to(id, 20000);
	assert_string_equal(m->type, FIKS_ARKIV_KVITTERING);
	xml = payload(m, FIKS_ARKIV_KVITTERING_FILE, &len);
	assert_int_equal(
		fiks_arkiv_kvittering_parse(xml, len, &k2, err, sizeof(err)),
		0);
	free(xml);
	fiks_melding_free(m);
	assert_memory_equal(&k1, &k2, sizeof(k1));
	no_reply_to(id, 500);
	assert_int_equal(store_count(key), 1);
}

/* noack: FIKS IO redelivers and, after 3 deliveries, dead-letters the
 * message and tells the sender no.ks.fiks.kvittering.serverfeil.v1. */
static void
t_fault_noack(void **state)
{
	struct fiks_melding *m;
	char id[FIKS_UUID_LEN + 1], key[BV_UUID_LEN + 1];

	(void)state;
	bv_uuid_generate(key);
	set_fault("noack:3");
	send_arkiv(key, id);
	m = reply_to(id, 30000);
	assert_string_equal(m->type, FIKS_TYPE_SERVERFEIL);
	assert_string_equal(m->avsender, F.acct[PEER].konto);
	fiks_melding_free(m);
	assert_int_equal(store_count(key), 0);
	assert_true(log_has("(redelivered): fault noack"));
	set_fault("none");
}

static void
t_refused_digest(void **state)
{
	struct fiks_file files[2];
	unsigned char *zip = NULL, *bad;
	char id[FIKS_UUID_LEN + 1], key[BV_UUID_LEN + 1], *xml, *t;
	size_t len = 0, zip_len = 0, bad_len = 0;

	(void)state;
	bv_uuid_generate(key);
	xml = arkivmelding(key, &len);
	files_of(files, xml, len);
	assert_int_equal(fiks_asice_build(files, 2, sender_id, &zip, &zip_len),
			 0);
	t = strdup(transcript);
	assert_non_null(t);
	t[5] ^= 1; /* one byte of the document flipped */
	bad = pkg_replace(zip, zip_len, "samtale.txt", t, strlen(t), &bad_len);
	send_package(bad, bad_len, peer_cert, id);
	expect_feil(id, FIKS_ARKIV_UGYLDIG, "FIKS_EDIGEST", "samtale.txt");
	assert_int_equal(store_count(key), 0);
	free(bad);
	free(t);
	free(zip);
	free(xml);
}

static void
t_refused_signer(void **state)
{
	struct fiks_identity *other = NULL;
	struct fiks_file files[2];
	unsigned char *zip = NULL;
	char id[FIKS_UUID_LEN + 1], key[BV_UUID_LEN + 1], *xml;
	char k[PATH_MAX], c[PATH_MAX];
	size_t len = 0, zip_len = 0;

	(void)state;
	bv_uuid_generate(key);
	snprintf(k, sizeof(k), "%s/stranger.key", bvt_tmpdir());
	snprintf(c, sizeof(c), "%s/stranger.pem", bvt_tmpdir());
	assert_int_equal(bvt_fiks_keypair(k, c, "Fremmed Fagsystem"), 0);
	assert_int_equal(fiks_identity_load(k, c, &other), 0);
	xml = arkivmelding(key, &len);
	files_of(files, xml, len);
	assert_int_equal(fiks_asice_build(files, 2, other, &zip, &zip_len), 0);
	send_package(zip, zip_len, peer_cert, id);
	expect_feil(id, FIKS_ARKIV_UGYLDIG, "FIKS_ESIGNATURE", NULL);
	assert_int_equal(store_count(key), 0);
	fiks_identity_free(other);
	free(zip);
	free(xml);
}

static void
t_refused_cms(void **state)
{
	struct fiks_file files[2];
	unsigned char *zip = NULL;
	char id[FIKS_UUID_LEN + 1], key[BV_UUID_LEN + 1], *xml;
	size_t len = 0, zip_len = 0;

	(void)state;
	bv_uuid_generate(key);
	xml = arkivmelding(key, &len);
	files_of(files, xml, len);
	assert_int_equal(fiks_asice_build(files, 2, sender_id, &zip, &zip_len),
			 0);
	/* Encrypted for another account, delivered to the peer. */
	send_package(zip, zip_len, other_cert, id);
	expect_feil(id, FIKS_ARKIV_UGYLDIG, "FIKS_ECMS", NULL);
	assert_int_equal(store_count(key), 0);
	free(zip);
	free(xml);
}

static void
t_refused_arkivmelding(void **state)
{
	struct fiks_file files[2];
	char id[FIKS_UUID_LEN + 1], key[BV_UUID_LEN + 1], *xml, *at;
	size_t len = 0;

	(void)state;
	bv_uuid_generate(key);
	/* Not valid against the XSD: a date that is none. */
	xml = arkivmelding(key, &len);
	at = strstr(xml, "2026-11-20</dokumentetsDato>");
	assert_non_null(at);
	memcpy(at, "2026-13-45", 10);
	files_of(files, xml, len);
	send_files(files, 2, NULL, id);
	expect_feil(id, FIKS_ARKIV_UGYLDIG, "FIKS_ESCHEMA", "dokumentetsDato");
	free(xml);

	/* Valid, but the document it names is not in the package. */
	xml = arkivmelding(key, &len);
	files_of(files, xml, len);
	files[1].name = "annet.txt";
	send_files(files, 2, NULL, id);
	expect_feil(id, FIKS_ARKIV_UGYLDIG, "referanseDokumentfil", NULL);
	free(xml);

	/* antallFiler says 1, the package holds 2 documents. */
	{
		struct fiks_file three[3];

		xml = arkivmelding(key, &len);
		files_of(three, xml, len);
		three[2] = (struct fiks_file){"ekstra.txt", "text/plain",
					      (const unsigned char *)"x", 1};
		send_files(three, 3, NULL, id);
		expect_feil(id, FIKS_ARKIV_UGYLDIG, "antallFiler", NULL);
		free(xml);
	}

	/* No arkivmelding.xml at all. */
	files[0] = (struct fiks_file){"samtale.txt", "text/plain",
				      (const unsigned char *)transcript,
				      strlen(transcript)};
	send_files(files, 1, NULL, id);
	expect_feil(id, FIKS_ARKIV_UGYLDIG, FIKS_ARKIV_ARKIVMELDING_FILE, NULL);
	assert_int_equal(store_count(key), 0);
}

/* ---- setup ---------------------------------------------------------------- */

static int
group_setup(void **state)
{
	struct fiks_config cfg;
	char err[256];
	size_t len;

	(void)state;
	if (bvt_fiks_start(&F, N_ACCTS) < 0)
		return -1;
	snprintf(db, sizeof(db), "%s/peer.db", bvt_tmpdir());
	snprintf(control, sizeof(control), "%s/peer.fault", bvt_tmpdir());
	snprintf(peer_log, sizeof(peer_log), "%s/peer.log", bvt_tmpdir());
	peer_cert = bvt_file_read(F.acct[PEER].cert, &len);
	other_cert = bvt_file_read(F.acct[OTHER].cert, &len);
	if (peer_cert == NULL || other_cert == NULL)
		return -1;
	if (fiks_identity_load(F.acct[SENDER].key, F.acct[SENDER].cert,
			       &sender_id) < 0)
		return -1;
	if (fiks_config_load(F.acct[SENDER].config, &cfg, err, sizeof(err)) <
	    0) {
		fprintf(stderr, "config: %s\n", err);
		return -1;
	}
	if (fiks_client_new(&cfg, &snd) < 0) {
		fiks_config_free(&cfg);
		return -1;
	}
	fiks_config_free(&cfg);
	if (peer_start() < 0) {
		bvt_fiks_print_logs(&F);
		return -1;
	}
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	peer_stop();
	fiks_client_free(snd);
	fiks_identity_free(sender_id);
	free(peer_cert);
	free(other_cert);
	bvt_fiks_stop(&F);
	fiks_arkiv_cleanup();
	return 0;
}

/* On failure the peer's log is the first thing to read. */
static int
dump_log_on_failure(int failures)
{
	if (failures > 0) {
		size_t len = 0;
		char *s = bvt_file_read(peer_log, &len);

		fprintf(stderr, "---- %s\n%s\n", peer_log, s ? s : "");
		free(s);
		bvt_fiks_print_logs(&F);
	}
	return failures;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_journal_and_repeat),
		cmocka_unit_test(t_repeat_by_klient_melding_id),
		cmocka_unit_test(t_fault_serverfeil_ugyldig),
		cmocka_unit_test(t_fault_silence),
		cmocka_unit_test(t_fault_duplicate),
		cmocka_unit_test(t_fault_noack),
		cmocka_unit_test(t_refused_digest),
		cmocka_unit_test(t_refused_signer),
		cmocka_unit_test(t_refused_cms),
		cmocka_unit_test(t_refused_arkivmelding),
	};
	const char *filter = getenv("BVT_TEST_FILTER");
	int failures;

	if (filter != NULL && *filter != '\0')
		cmocka_set_test_filter(filter);
	failures = cmocka_run_group_tests(tests, group_setup, group_teardown);
	return bvt_done(dump_log_on_failure(failures));
}
