/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_arkiv.c: unit tests of fiks/fiks_arkiv.c against the vendored
 * Fiks Arkiv v1 XSDs and code lists: KS's two validator examples (and
 * broken copies of them), arkivmelding built for a chat transcript with
 * hostile and Norwegian/Sami names and read back, kvittering and
 * feilmelding round trips, and every refused input: malformed XML, DOCTYPE
 * and entity attacks, oversize documents, unclean strings.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bv_error.h"
#include "bv_util.h"
#include "fiks_arkiv.h"
#include "fiks_error.h"

#define EXAMPLES BV_SOURCE_DIR "/fiks/schemas/fiks-arkiv-v1/examples/"
#define XSD_AM	 FIKS_ARKIV_OPPRETT ".xsd"
#define XSD_KV	 FIKS_ARKIV_KVITTERING ".xsd"

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n > 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* Replaces the first occurrence of from in *s by to (a new string). */
static void
edit(char **s, size_t *len, const char *from, const char *to)
{
	char *at = strstr(*s, from), *out;
	size_t fl = strlen(from), tl = strlen(to), head;

	assert_non_null(at);
	head = (size_t)(at - *s);
	out = malloc(*len - fl + tl + 1);
	assert_non_null(out);
	memcpy(out, *s, head);
	memcpy(out + head, to, tl);
	memcpy(out + head + tl, at + fl, *len - head - fl + 1);
	free(*s);
	*s = out;
	*len = *len - fl + tl;
}

/* ---- KS's examples ----------------------------------------------------- */

static void
t_examples_validate(void **state)
{
	struct fiks_arkiv_melding m;
	char err[256] = "";
	size_t len;
	char *xml;

	(void)state;
	xml = slurp(EXAMPLES "NyMappeMedJournalpostN1/arkivmelding.xml", &len);
	assert_int_equal(
		fiks_arkiv_validate(XSD_AM, xml, len, err, sizeof(err)), 0);
	assert_int_equal(
		fiks_arkiv_arkivmelding_parse(xml, len, &m, err, sizeof(err)),
		0);
	assert_string_equal(m.system, "Fiks protokoll validator");
	assert_int_equal(m.antall_filer, 1);
	assert_string_equal(m.mappe_noekkel,
			    "45d947ed-8455-46e2-a04f-ee18da433fe0");
	assert_string_equal(m.noekkel, "e4712424-883c-4068-9cb7-97ac679d7232");
	assert_string_equal(m.fagsystem, "Fiks protokoll validator");
	assert_string_equal(m.tittel, "Internt notat");
	assert_string_equal(m.journalposttype, "X");
	assert_string_equal(m.journalstatus, "F");
	assert_string_equal(m.dokumentets_dato, "2021-03-20");
	assert_int_equal(m.n_filnavn, 1);
	assert_string_equal(m.filnavn[0], "rekvisisjon.pdf");
	assert_int_equal(m.n_dokumenter, 1);
	assert_true(m.dokumenter[0].hoveddokument);
	assert_string_equal(m.dokumenter[0].variantformat, "P");
	assert_string_equal(m.dokumenter[0].format, "PDF");
	assert_string_equal(m.dokumenter[0].dokumenttype, "SØKNAD");
	assert_int_equal(m.n_parter, 2);
	assert_string_equal(m.parter[0].type, "IM");
	assert_string_equal(m.parter[1].type, "IA");
	assert_string_equal(m.parter[0].navn, "Oppmålingsetaten");
	assert_false(m.skjermet);
	fiks_arkiv_melding_free(&m);
	free(xml);

	/* A journalpost into a mappe named by systemID: no mappe key. */
	xml = slurp(EXAMPLES "NyJournalpostN1/arkivmelding.xml", &len);
	assert_int_equal(
		fiks_arkiv_validate(XSD_AM, xml, len, err, sizeof(err)), 0);
	assert_int_equal(
		fiks_arkiv_arkivmelding_parse(xml, len, &m, err, sizeof(err)),
		0);
	assert_null(m.mappe_noekkel);
	assert_string_equal(m.noekkel, "e4712424-883c-4068-9cb7-97ac679d7232");
	fiks_arkiv_melding_free(&m);
	fiks_arkiv_melding_free(&m); /* zeroed: twice is fine */
	free(xml);
}

/* Each broken copy of the example fails with FIKS_ESCHEMA and a reason
 * naming the element at fault. */
static void
t_examples_broken(void **state)
{
	static const struct {
		const char *from, *to, *reason;
	} cases[] = {
		/* a code outside its closed list */
		{">X</kode>", ">Q</kode>", "journalposttype"},
		{">IM</kode>", ">ZZ</kode>", "korrespondanseparttype"},
		{">H</kode>", ">Z</kode>", "tilknyttetRegistreringSom"},
		/* a value of the wrong type */
		{"2021-03-20", "2021-13-45", "dokumentetsDato"},
		{"<antallFiler>1<", "<antallFiler>one<", "antallFiler"},
		/* a required element missing */
		{"<tittel>Internt notat</tittel>", "", "korrespondansepart"},
		{"<korrespondansepartNavn>Oppmålingsetaten"
		 "</korrespondansepartNavn>",
		 "", "korrespondansepartNavn"},
		/* an element out of order (system after antallFiler) */
		{"<system>Fiks protokoll validator</system>", "", "system"},
	};
	struct fiks_arkiv_melding m;
	size_t i, len;
	char err[256];
	char *xml;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		xml = slurp(EXAMPLES "NyMappeMedJournalpostN1/arkivmelding.xml",
			    &len);
		edit(&xml, &len, cases[i].from, cases[i].to);
		if (strcmp(cases[i].reason, "system") == 0)
			edit(&xml, &len, "<antallFiler>1</antallFiler>",
			     "<antallFiler>1</antallFiler><system>x</system>");
		err[0] = '\0';
		assert_int_equal(
			fiks_arkiv_validate(XSD_AM, xml, len, err, sizeof(err)),
			FIKS_ESCHEMA);
		if (strstr(err, cases[i].reason) == NULL)
			fail_msg("case %zu: '%s' does not name %s", i, err,
				 cases[i].reason);
		assert_int_equal(fiks_arkiv_arkivmelding_parse(
					 xml, len, &m, err, sizeof(err)),
				 FIKS_ESCHEMA);
		assert_null(m.system);
		free(xml);
	}
}

/* ---- arkivmelding for a transcript ------------------------------------- */

/* Names as case rosters may hold them: markup characters, quotes, and
 * Norwegian and Sami letters. */
#define NAVN_BARN "Åse <Øyvor> & \"Lille\" O'Brien-Ærø"
#define NAVN_MOR  "Máret Ŋuolja Đuoddar </korrespondansepartNavn>"
#define NAVN_SB	  "Saksbehandler Kåre Ødegård"
#define TITTEL	  "Samtale i bvchat 2025-11-20 – sak 2025/1234 <&> \"æøå ŋđ\""
#define HJEMMEL	  "Offl. § 13, jf. bvl. § 13-1"
#define MAPPE_KEY "case-7f3c2b1e-5a44-4c1d-9a0e-0f8b6c1d2e3f"
#define JP_KEY	  "transcript-7f3c2b1e-2025-11-20T10:00:00Z-1"
#define FAGSYSTEM "bvchat"

static const struct fiks_arkiv_part parter[] = {
	{.type = "EA", .navn = NAVN_BARN, .rolle = "barn", .skjermet = 1},
	{.type = "EA", .navn = NAVN_MOR, .rolle = "mor", .skjermet = 1},
	{.type = "IA", .navn = NAVN_SB, .rolle = NULL, .skjermet = 0},
};

static const struct fiks_arkiv_dokument dokumenter[] = {
	{.tittel = "Vedlegg: samtalen som PDF/A",
	 .filnavn = "samtale.pdf",
	 .format = "PDF",
	 .mime = "application/pdf",
	 .hoveddokument = 0},
	{.tittel = "Samtalelogg \"" NAVN_BARN "\"",
	 .filnavn = "samtale.txt",
	 .format = "TXT",
	 .mime = "text/plain; charset=UTF-8",
	 .hoveddokument = 1,
	 .dokumenttype = "KORR"},
};

static struct fiks_arkiv_journalpost
transcript(void)
{
	struct fiks_arkiv_journalpost jp = {
		.system = "bvchat",
		.fagsystem = FAGSYSTEM,
		.mappe_noekkel = MAPPE_KEY,
		.noekkel = JP_KEY,
		.tittel = TITTEL,
		.journalposttype = "X",
		.dokumentets_dato = "2025-11-20",
		.offentlig_tittel = "Samtale i barnevernssak",
		.tilgangsrestriksjon = "13",
		.skjermingshjemmel = HJEMMEL,
		.parter = parter,
		.n_parter = 3,
		.dokumenter = dokumenter,
		.n_dokumenter = 2,
	};

	return jp;
}

static void
t_arkivmelding_roundtrip(void **state)
{
	struct fiks_arkiv_journalpost jp = transcript();
	struct fiks_arkiv_melding m;
	char err[256] = "";
	char *xml = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(
		fiks_arkiv_arkivmelding(&jp, &xml, &len, err, sizeof(err)), 0);
	assert_int_equal(strlen(xml), len);
	/* Escaped, never markup: the names cannot close or open elements. */
	assert_null(strstr(xml, "<Øyvor>"));
	assert_non_null(strstr(xml, "&lt;Øyvor&gt; &amp;"));
	assert_non_null(strstr(xml, "Đuoddar &lt;/korrespondansepartNavn&gt;"));
	assert_non_null(strstr(xml, "ŋđ"));
	assert_non_null(strstr(xml, "<registrering xsi:type=\"journalpost\">"));
	assert_non_null(strstr(xml, "<skjerming>"));
	assert_non_null(strstr(xml, "<erSkjermet>true</erSkjermet>"));
	assert_int_equal(
		fiks_arkiv_validate(XSD_AM, xml, len, err, sizeof(err)), 0);

	assert_int_equal(
		fiks_arkiv_arkivmelding_parse(xml, len, &m, err, sizeof(err)),
		0);
	assert_string_equal(m.system, "bvchat");
	assert_string_equal(m.fagsystem, FAGSYSTEM);
	assert_string_equal(m.mappe_noekkel, MAPPE_KEY);
	assert_string_equal(m.noekkel, JP_KEY);
	assert_string_equal(m.tittel, TITTEL);
	assert_string_equal(m.offentlig_tittel, "Samtale i barnevernssak");
	assert_string_equal(m.journalposttype, "X");
	assert_string_equal(m.journalstatus, "F");
	assert_string_equal(m.dokumentets_dato, "2025-11-20");
	assert_int_equal(m.antall_filer, 2);
	assert_true(m.skjermet);
	assert_string_equal(m.tilgangsrestriksjon, "13");
	assert_string_equal(m.skjermingshjemmel, HJEMMEL);

	assert_int_equal(m.n_parter, 3);
	assert_string_equal(m.parter[0].type, "EA");
	assert_string_equal(m.parter[0].navn, NAVN_BARN " (barn)");
	assert_true(m.parter[0].skjermet);
	assert_string_equal(m.parter[1].navn, NAVN_MOR " (mor)");
	assert_true(m.parter[1].skjermet);
	assert_string_equal(m.parter[2].type, "IA");
	assert_string_equal(m.parter[2].navn, NAVN_SB);
	assert_false(m.parter[2].skjermet);

	/* The hoveddokument comes first, as dokumentnummer 1. */
	assert_int_equal(m.n_dokumenter, 2);
	assert_true(m.dokumenter[0].hoveddokument);
	assert_string_equal(m.dokumenter[0].tittel, dokumenter[1].tittel);
	assert_string_equal(m.dokumenter[0].referanse, "samtale.txt");
	assert_string_equal(m.dokumenter[0].filnavn, "samtale.txt");
	assert_string_equal(m.dokumenter[0].format, "TXT");
	assert_string_equal(m.dokumenter[0].mime, "text/plain; charset=UTF-8");
	assert_string_equal(m.dokumenter[0].variantformat, "A");
	assert_string_equal(m.dokumenter[0].dokumenttype, "KORR");
	assert_false(m.dokumenter[1].hoveddokument);
	assert_string_equal(m.dokumenter[1].referanse, "samtale.pdf");
	assert_null(m.dokumenter[1].dokumenttype);
	assert_int_equal(m.n_filnavn, 2);
	assert_string_equal(m.filnavn[0], "samtale.txt");
	assert_string_equal(m.filnavn[1], "samtale.pdf");
	fiks_arkiv_melding_free(&m);
	free(xml);

	/* No skjerming asked: none written; no hoveddokument flagged: the
	 * first document is H. */
	jp.tilgangsrestriksjon = NULL;
	jp.skjermingshjemmel = NULL;
	jp.dokumenter = &dokumenter[0];
	jp.n_dokumenter = 1;
	assert_int_equal(
		fiks_arkiv_arkivmelding(&jp, &xml, &len, err, sizeof(err)), 0);
	assert_null(strstr(xml, "<skjerming>"));
	assert_int_equal(
		fiks_arkiv_arkivmelding_parse(xml, len, &m, err, sizeof(err)),
		0);
	assert_false(m.skjermet);
	assert_null(m.tilgangsrestriksjon);
	assert_true(m.dokumenter[0].hoveddokument);
	assert_int_equal(m.antall_filer, 1);
	fiks_arkiv_melding_free(&m);
	free(xml);
}

static void
expect_build(struct fiks_arkiv_journalpost *jp, int rc, const char *why)
{
	char err[256] = "";
	char *xml = (char *)"untouched";
	size_t len = 7;

	assert_int_equal(
		fiks_arkiv_arkivmelding(jp, &xml, &len, err, sizeof(err)), rc);
	assert_string_equal(xml, "untouched");
	assert_int_equal(len, 7);
	if (strstr(err, why) == NULL)
		fail_msg("'%s' does not say %s", err, why);
}

static void
t_arkivmelding_refused(void **state)
{
	struct fiks_arkiv_journalpost jp;
	struct fiks_arkiv_part p[2];
	struct fiks_arkiv_dokument d[2];

	(void)state;
	jp = transcript();
	jp.noekkel = NULL;
	expect_build(&jp, BV_EINVAL, "required");
	jp = transcript();
	jp.mappe_noekkel = "";
	expect_build(&jp, BV_EINVAL, "required");
	jp = transcript();
	jp.tilgangsrestriksjon = NULL;
	expect_build(&jp, BV_EINVAL, "skjerming");
	jp = transcript();
	jp.n_dokumenter = 0;
	expect_build(&jp, BV_EINVAL, "documents");
	jp = transcript();
	jp.n_dokumenter = FIKS_ARKIV_DOKUMENTER_MAX + 1;
	expect_build(&jp, BV_EINVAL, "documents");

	/* Strings XML cannot carry are refused, not written as &#1;. */
	memcpy(p, parter, sizeof(p));
	jp = transcript();
	jp.parter = p;
	jp.n_parter = 2;
	p[1].navn = "Ola\x01Nordmann";
	expect_build(&jp, BV_EINVAL, "korrespondansepart 2");
	p[1].navn = "Ola \xc0\x80 overlong";
	expect_build(&jp, BV_EINVAL, "korrespondansepart 2");
	p[1].navn = "surrogate \xed\xa0\x80";
	expect_build(&jp, BV_EINVAL, "korrespondansepart 2");
	p[1].navn = "cut \xc3";
	expect_build(&jp, BV_EINVAL, "korrespondansepart 2");
	p[1].navn = "nonchar \xef\xbf\xbe";
	expect_build(&jp, BV_EINVAL, "korrespondansepart 2");
	p[1].navn = NAVN_MOR;
	p[1].type = NULL;
	expect_build(&jp, BV_EINVAL, "korrespondansepart 2");

	memcpy(d, dokumenter, sizeof(d));
	jp = transcript();
	jp.dokumenter = d;
	d[0].hoveddokument = 1;
	expect_build(&jp, BV_EINVAL, "hoveddokument");
	d[0].hoveddokument = 0;
	d[0].filnavn = "samtale.txt";
	expect_build(&jp, BV_EINVAL, "share");
	d[0].filnavn = "../etc/passwd";
	expect_build(&jp, BV_EINVAL, "document 1");
	d[0].filnavn = "META-INF/manifest.xml";
	expect_build(&jp, BV_EINVAL, "document 1");
	d[0].filnavn = FIKS_ARKIV_ARKIVMELDING_FILE;
	expect_build(&jp, BV_EINVAL, "document 1");

	/* What only the schema or the code lists know. */
	jp = transcript();
	jp.dokumentets_dato = "20. november 2025";
	expect_build(&jp, FIKS_ESCHEMA, "dokumentetsDato");
	jp = transcript();
	jp.journalposttype = "Q";
	expect_build(&jp, FIKS_ESCHEMA, "journalposttype");
	jp = transcript();
	jp.journalstatus = "?";
	expect_build(&jp, FIKS_ESCHEMA, "journalstatus");
	memcpy(p, parter, sizeof(p));
	jp = transcript();
	jp.parter = p;
	jp.n_parter = 2;
	p[0].type = "XX";
	expect_build(&jp, FIKS_ESCHEMA, "korrespondanseparttype");
}

/* Every allocation of ours failing in turn gives BV_ENOMEM and no leak
 * (checked under ASan), never a crash or a half-filled result. */
static void
t_arkivmelding_alloc_failures(void **state)
{
	struct fiks_arkiv_journalpost jp = transcript();
	struct fiks_arkiv_melding m;
	char *xml = NULL, *good;
	size_t len = 0, good_len;
	long n;
	int rc;

	(void)state;
	assert_int_equal(
		fiks_arkiv_arkivmelding(&jp, &good, &good_len, NULL, 0), 0);
	for (n = 1; n < 1000; n++) {
		bv_alloc_fail_at(n);
		rc = fiks_arkiv_arkivmelding(&jp, &xml, &len, NULL, 0);
		bv_alloc_fail_at(0);
		if (rc == 0)
			break;
		assert_int_equal(rc, BV_ENOMEM);
	}
	assert_int_equal(rc, 0);
	free(xml);
	for (n = 1; n < 1000; n++) {
		bv_alloc_fail_at(n);
		rc = fiks_arkiv_arkivmelding_parse(good, good_len, &m, NULL, 0);
		bv_alloc_fail_at(0);
		if (rc == 0)
			break;
		assert_int_equal(rc, BV_ENOMEM);
		assert_null(m.system);
		assert_int_equal(m.n_parter, 0);
	}
	assert_int_equal(rc, 0);
	fiks_arkiv_melding_free(&m);
	free(good);
}

/* ---- kvittering and feilmelding ---------------------------------------- */

static void
t_kvittering_roundtrip(void **state)
{
	struct fiks_arkiv_kvittering k = {0}, back;
	char err[256] = "";
	char *xml;
	size_t len;
	int eks;

	(void)state;
	for (eks = 0; eks <= 1; eks++) {
		memset(&k, 0, sizeof(k));
		strcpy(k.system_id, "0b8a2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d");
		strcpy(k.fagsystem, FAGSYSTEM);
		strcpy(k.noekkel, JP_KEY);
		k.journalaar = 2025;
		k.journalsekvensnummer = 4711;
		k.journalpostnummer = 3;
		k.eksisterende = eks;
		assert_int_equal(fiks_arkiv_kvittering_build(&k, &xml, &len),
				 0);
		/* No mappeKvittering: the XSD's choice may be empty. */
		assert_null(strstr(xml, "mappeKvittering"));
		assert_non_null(
			strstr(xml, "xsi:type=\"journalpostKvittering\""));
		assert_int_equal(
			fiks_arkiv_validate(XSD_KV, xml, len, err, sizeof(err)),
			0);
		assert_int_equal(fiks_arkiv_kvittering_parse(xml, len, &back,
							     err, sizeof(err)),
				 0);
		assert_memory_equal(&k, &back, sizeof(k));
		free(xml);
	}

	/* Without a key and numbers: the minimal kvittering. */
	memset(&k, 0, sizeof(k));
	strcpy(k.system_id, "0b8a2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d");
	assert_int_equal(fiks_arkiv_kvittering_build(&k, &xml, &len), 0);
	assert_int_equal(
		fiks_arkiv_kvittering_parse(xml, len, &back, err, sizeof(err)),
		0);
	assert_memory_equal(&k, &back, sizeof(k));
	free(xml);

	/* systemID must be a UUID (n5mdk:ID). */
	strcpy(k.system_id, "journalpost-1");
	assert_int_equal(fiks_arkiv_kvittering_build(&k, &xml, &len),
			 FIKS_ESCHEMA);
	k.system_id[0] = '\0';
	assert_int_equal(fiks_arkiv_kvittering_build(&k, &xml, &len),
			 BV_EINVAL);
	assert_int_equal(fiks_arkiv_kvittering_build(NULL, &xml, &len),
			 BV_EINVAL);
}

static void
t_kvittering_feilet(void **state)
{
	static const char feilet[] =
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<arkivmeldingKvittering xmlns=\"https://ks-no.github.io/"
		"standarder/fiks-protokoll/fiks-arkiv/arkivmelding/opprett/"
		"kvittering/v1\" xmlns:f=\"https://ks-no.github.io/standarder/"
		"fiks-protokoll/fiks-arkiv/feil/feilmelding/v1\">"
		"<registreringFeilet><f:feilId>e-1</f:feilId>"
		"<f:feilmelding>Mappen finnes ikke</f:feilmelding>"
		"</registreringFeilet></arkivmeldingKvittering>";
	struct fiks_arkiv_kvittering k;
	char err[256] = "";

	(void)state;
	assert_int_equal(fiks_arkiv_kvittering_parse(feilet, strlen(feilet), &k,
						     err, sizeof(err)),
			 FIKS_EXML);
	assert_non_null(strstr(err, "registreringFeilet: Mappen finnes ikke"));
	/* An arkivmelding is not a kvittering. */
	{
		size_t len;
		char *xml = slurp(EXAMPLES "NyJournalpostN1/arkivmelding.xml",
				  &len);

		assert_int_equal(fiks_arkiv_kvittering_parse(xml, len, &k, err,
							     sizeof(err)),
				 FIKS_ESCHEMA);
		free(xml);
	}
}

static void
t_feilmelding_roundtrip(void **state)
{
	static const char *types[] = {FIKS_ARKIV_SERVERFEIL, FIKS_ARKIV_UGYLDIG,
				      FIKS_ARKIV_IKKEFUNNET};
	const char *melding = "Pakken mangler «samtale.txt» <&> \"ŋđæøå\"";
	char msg[256];
	char *xml;
	size_t len, i;

	(void)state;
	for (i = 0; i < 3; i++) {
		assert_int_equal(fiks_arkiv_feilmelding_build(types[i],
							      "feil-1", melding,
							      &xml, &len),
				 0);
		assert_int_equal(fiks_arkiv_feilmelding_parse(
					 types[i], xml, len, msg, sizeof(msg)),
				 0);
		assert_string_equal(msg, melding);
		/* Each type has its own root element. */
		assert_int_equal(
			fiks_arkiv_feilmelding_parse(types[(i + 1) % 3], xml,
						     len, msg, sizeof(msg)),
			FIKS_ESCHEMA);
		free(xml);
	}
	/* Cut at a character boundary: "æ" is two bytes. */
	assert_int_equal(fiks_arkiv_feilmelding_build(FIKS_ARKIV_UGYLDIG, "f",
						      "æææ", &xml, &len),
			 0);
	assert_int_equal(fiks_arkiv_feilmelding_parse(FIKS_ARKIV_UGYLDIG, xml,
						      len, msg, 4),
			 0);
	assert_string_equal(msg, "æ");
	free(xml);

	assert_int_equal(fiks_arkiv_feilmelding_build("no.such.type", "f", "m",
						      &xml, &len),
			 BV_EINVAL);
	assert_int_equal(fiks_arkiv_feilmelding_build(FIKS_ARKIV_SERVERFEIL, "",
						      "m", &xml, &len),
			 BV_EINVAL);
	assert_int_equal(fiks_arkiv_feilmelding_build(FIKS_ARKIV_SERVERFEIL,
						      "f", "bell\a", &xml,
						      &len),
			 BV_EINVAL);
	assert_int_equal(fiks_arkiv_feilmelding_parse(FIKS_ARKIV_OPPRETT,
						      "<a/>", 4, msg,
						      sizeof(msg)),
			 BV_EINVAL);
}

/* ---- refused input ------------------------------------------------------ */

static void
expect_refused(const char *xml, size_t len, int rc, const char *why)
{
	struct fiks_arkiv_melding m;
	char err[256] = "";

	assert_int_equal(
		fiks_arkiv_validate(XSD_AM, xml, len, err, sizeof(err)), rc);
	if (why != NULL && strstr(err, why) == NULL)
		fail_msg("'%s' does not say %s", err, why);
	assert_int_equal(
		fiks_arkiv_arkivmelding_parse(xml, len, &m, err, sizeof(err)),
		rc);
	fiks_arkiv_melding_free(&m);
}

static void
t_malformed(void **state)
{
	static const char *docs[] = {
		"",
		"<",
		"not xml at all",
		"<arkivmelding><system>x</arkivmelding>",
		"<?xml version=\"1.0\"?><a></b>",
		"<a>&undeclared;</a>",
		"<a/><b/>",
		"<a>\xc3\x28</a>",
	};
	size_t i, len;
	char *xml;

	(void)state;
	for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
		expect_refused(docs[i], strlen(docs[i]), FIKS_EXML, NULL);
	/* Well-formed, but not an arkivmelding. */
	expect_refused("<a/>", 4, FIKS_ESCHEMA, NULL);
	/* A NUL byte, and UTF-16: not UTF-8. */
	expect_refused("<a>\0</a>", 8, FIKS_EXML, "UTF-8");
	expect_refused("\xff\xfe<\0a\0/\0>\0", 10, FIKS_EXML, "UTF-8");
	expect_refused("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a/>",
		       47, FIKS_EXML, "UTF-8");
	/* The example cut short. */
	xml = slurp(EXAMPLES "NyJournalpostN1/arkivmelding.xml", &len);
	expect_refused(xml, len / 2, FIKS_EXML, "not well-formed");
	free(xml);
	/* Not a plain schema file name. */
	assert_int_equal(fiks_arkiv_validate("../fiks-arkiv-v1/x.xsd", "<a/>",
					     4, NULL, 0),
			 BV_EINVAL);
	assert_int_equal(fiks_arkiv_validate("no-such.xsd", "<a/>", 4, NULL, 0),
			 BV_EIO);
}

static void
t_entity_attacks(void **state)
{
	static const char *docs[] = {
		/* billion laughs */
		"<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n"
		" <!ENTITY lol \"lol\">\n"
		" <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
		" <!ENTITY lol3 "
		"\"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
		" <!ENTITY lol4 "
		"\"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
		" <!ENTITY lol5 "
		"\"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n"
		" <!ENTITY lol6 "
		"\"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">\n"
		" <!ENTITY lol7 "
		"\"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">\n"
		" <!ENTITY lol8 "
		"\"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">\n"
		" <!ENTITY lol9 "
		"\"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">\n"
		"]>\n<arkivmelding>&lol9;</arkivmelding>",
		/* external entity: a local file */
		"<?xml version=\"1.0\"?>\n<!DOCTYPE a [ <!ENTITY xxe SYSTEM "
		"\"file:///etc/passwd\"> ]>\n<arkivmelding><system>&xxe;"
		"</system></arkivmelding>",
		/* external entity: the network */
		"<!DOCTYPE a [ <!ENTITY xxe SYSTEM "
		"\"http://127.0.0.1:9/x\"> ]><a>&xxe;</a>",
		/* external DTD and parameter entities */
		"<!DOCTYPE a SYSTEM \"http://127.0.0.1:9/evil.dtd\"><a/>",
		"<!DOCTYPE a [ <!ENTITY % p SYSTEM \"file:///etc/passwd\"> %p; "
		"]><a/>",
		/* a DOCTYPE alone */
		"<!DOCTYPE arkivmelding><arkivmelding/>",
	};
	struct timespec t0, t1;
	size_t i;

	(void)state;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
		expect_refused(docs[i], strlen(docs[i]), FIKS_EXML, "DOCTYPE");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* Refused before any expansion: well under a second. */
	assert_true(t1.tv_sec - t0.tv_sec < 2);
}

static void
t_oversize(void **state)
{
	size_t len, big = FIKS_ARKIV_XML_MAX + 1;
	char *xml, *pad;
	struct fiks_arkiv_kvittering k;
	char msg[64];

	(void)state;
	/* A valid example padded with whitespace past the limit. */
	xml = slurp(EXAMPLES "NyJournalpostN1/arkivmelding.xml", &len);
	pad = malloc(big + 1);
	assert_non_null(pad);
	memcpy(pad, xml, len);
	memset(pad + len, ' ', big - len);
	pad[big] = '\0';
	expect_refused(pad, big, FIKS_ELIMIT, "limit");
	/* At the limit it is still read. */
	expect_refused(pad, big - 1, 0, NULL);
	assert_int_equal(fiks_arkiv_kvittering_parse(pad, big, &k, NULL, 0),
			 FIKS_ELIMIT);
	assert_int_equal(fiks_arkiv_feilmelding_parse(FIKS_ARKIV_SERVERFEIL,
						      pad, big, msg,
						      sizeof(msg)),
			 FIKS_ELIMIT);
	free(pad);
	free(xml);
}

static void
t_schema_dir_env(void **state)
{
	char err[256] = "";

	(void)state;
	assert_int_equal(setenv("BVFIKS_SCHEMA_DIR", "/nonexistent/schemas", 1),
			 0);
	assert_int_equal(
		fiks_arkiv_validate(XSD_AM, "<a/>", 4, err, sizeof(err)),
		BV_EIO);
	assert_non_null(strstr(err, XSD_AM));
	assert_int_equal(unsetenv("BVFIKS_SCHEMA_DIR"), 0);
	assert_int_equal(
		fiks_arkiv_validate(XSD_AM, "<a/>", 4, err, sizeof(err)),
		FIKS_ESCHEMA);
}

static int
teardown(void **state)
{
	(void)state;
	fiks_arkiv_cleanup();
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_examples_validate),
		cmocka_unit_test(t_examples_broken),
		cmocka_unit_test(t_arkivmelding_roundtrip),
		cmocka_unit_test(t_arkivmelding_refused),
		cmocka_unit_test(t_arkivmelding_alloc_failures),
		cmocka_unit_test(t_kvittering_roundtrip),
		cmocka_unit_test(t_kvittering_feilet),
		cmocka_unit_test(t_feilmelding_roundtrip),
		cmocka_unit_test(t_malformed),
		cmocka_unit_test(t_entity_attacks),
		cmocka_unit_test(t_oversize),
		cmocka_unit_test(t_schema_dir_env),
	};

	return cmocka_run_group_tests(tests, NULL, teardown);
}
