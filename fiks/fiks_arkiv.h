/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * fiks_arkiv.h: the Fiks Arkiv v1 messages bvchat exchanges with a
 * municipality's archive (docs/fiks.md, "Journaling"): arkivmelding.xml for
 * no.ks.fiks.arkiv.v1.arkivering.arkivmelding.opprett (one journalpost in
 * the case's saksmappe, found by its referanseEksternNoekkel), the archive's
 * arkivmelding-kvittering.xml, and the feilmelding of serverfeil and
 * ugyldigforespoersel. Built and read with libxml2 and validated against
 * the official XSDs (fiks/schemas/fiks-arkiv-v1, MIT, KS) before anything
 * is sent or believed.
 */
#ifndef FIKS_ARKIV_H
#define FIKS_ARKIV_H

#include <stddef.h>

#define FIKS_ARKIV_OPPRETT    "no.ks.fiks.arkiv.v1.arkivering.arkivmelding.opprett"
#define FIKS_ARKIV_MOTTATT    FIKS_ARKIV_OPPRETT ".mottatt"
#define FIKS_ARKIV_KVITTERING FIKS_ARKIV_OPPRETT ".kvittering"
#define FIKS_ARKIV_SERVERFEIL "no.ks.fiks.arkiv.v1.feilmelding.serverfeil"
#define FIKS_ARKIV_UGYLDIG    "no.ks.fiks.arkiv.v1.feilmelding.ugyldigforespoersel"
#define FIKS_ARKIV_IKKEFUNNET "no.ks.fiks.arkiv.v1.feilmelding.ikkefunnet"
/* Payload file names of those messages. */
#define FIKS_ARKIV_ARKIVMELDING_FILE "arkivmelding.xml"
#define FIKS_ARKIV_KVITTERING_FILE   "arkivmelding-kvittering.xml"
#define FIKS_ARKIV_FEILMELDING_FILE  "feilmelding.xml"

/* Largest XML document any parse or validate call reads (FIKS_ELIMIT). */
#define FIKS_ARKIV_XML_MAX (1u << 20)
/* Most documents and korrespondanseparter of one journalpost. */
#define FIKS_ARKIV_DOKUMENTER_MAX 64
#define FIKS_ARKIV_PARTER_MAX	  64

/*
 * Every string below is UTF-8 without control characters (tab, CR and LF
 * excepted); anything else is BV_EINVAL, never an ill-formed document.
 * Names come from case rosters and may hold any character XML escapes.
 */

/* A korrespondansepart of the journalpost. */
struct fiks_arkiv_part {
	const char
		*type; /* korrespondanseparttype: "EA", "EM", "IA", "IM", … */
	const char *navn; /* as the case file may show it */
	/* Free text after the name, e.g. "barn", or NULL: the part is
	 * journaled as korrespondansepartNavn "navn (rolle)", since Fiks
	 * Arkiv v1's korrespondansepart has no role of its own. */
	const char *rolle;
	/* 1: the name is skjermet. Fiks Arkiv v1's skjerming has no
	 * skjermingMetadata, so Noark's skjermingKorrespondansepartNavn is
	 * expressed as korrespondansepart/erSkjermet true. */
	int skjermet;
};

/* A document of the journalpost: one file of the package. */
struct fiks_arkiv_dokument {
	const char *tittel;
	const char *filnavn; /* referanseDokumentfil: the file in the package */
	const char *format;  /* dokumentobjekt/format, e.g. "TXT", "PDF" */
	const char *mime;    /* e.g. "text/plain; charset=UTF-8" */
	int hoveddokument;   /* 1: tilknyttetRegistreringSom H, else V */
	/* dokumenttype code ("KORR", "NOTAT", …), or NULL: none. */
	const char *dokumenttype;
	/* The file's name in the package (referanseDokumentfil) when filnavn
	 * is a display name (a sender's, clean UTF-8 that need not be a
	 * package name); NULL: filnavn is both. */
	const char *referanse;
	/* variantformat code; NULL: "A" (arkivformat). */
	const char *variantformat;
	/* SHA-256 of the file as 64 lower-case hex digits (sjekksum, with
	 * sjekksumAlgoritme "SHA256") and its size in bytes (filstoerrelse),
	 * or NULL and 0: not given. */
	const char *sha256;
	long long size;
};

struct fiks_arkiv_journalpost {
	const char *system;	   /* arkivmelding/system: "bvchat" */
	const char *fagsystem;	   /* referanseEksternNoekkel/fagsystem */
	const char *mappe_noekkel; /* the saksmappe's key: the case id */
	const char *noekkel;	   /* this journalpost's key (idempotent) */
	const char *tittel;
	const char *journalposttype;  /* "X", "N", "I", "U" */
	const char *journalstatus;    /* NULL: "F", ferdigstilt */
	const char *dokumentets_dato; /* "YYYY-MM-DD" */
	/* The title the public journal may show, or NULL: none. */
	const char *offentlig_tittel;
	/* Skjerming for child-welfare records: tilgangsrestriksjon code and
	 * skjermingshjemmel, e.g. "13" and "Offl. § 13, jf. bvl. § 13-1";
	 * NULL: not skjermet. */
	const char *tilgangsrestriksjon;
	const char *skjermingshjemmel;
	const struct fiks_arkiv_part *parter;
	size_t n_parter;
	const struct fiks_arkiv_dokument *dokumenter; /* 1 … 64 */
	size_t n_dokumenter;
};

/*
 * Builds arkivmelding.xml (UTF-8) for jp: antallFiler n_dokumenter, one
 * registrering xsi:type journalpost with referanseForelderMappe/
 * referanseEksternNoekkel {fagsystem, mappe_noekkel} and its own
 * referanseEksternNoekkel {fagsystem, noekkel}, and one dokumentbeskrivelse
 * (dokumentnummer i + 1, dokumentstatus F) with one dokumentobjekt
 * (versjonsnummer 1, variantformat A) per document; then validates it
 * against the XSD and the code lists, as a receiver would.
 * Returns 0 and sets *xml (free(), NUL-terminated) and *len; BV_EINVAL (a
 * required field NULL or empty, a string that is not clean UTF-8, no
 * hoveddokument or more than one, counts out of range); FIKS_ESCHEMA (e.g.
 * a date that is not one, a code not in its list: the validator's first
 * message in err); BV_EIO (schemas unreadable); BV_ENOMEM. err (may be
 * NULL) gets one line on every error.
 */
int fiks_arkiv_arkivmelding(const struct fiks_arkiv_journalpost *jp, char **xml,
			    size_t *len, char *err, size_t errcap);

/* A korrespondansepart as read back. */
struct fiks_arkiv_melding_part {
	char *type, *navn; /* navn as journaled: "navn (rolle)" */
	int skjermet;	   /* erSkjermet true */
};

/* A dokumentbeskrivelse's first dokumentobjekt as read back. */
struct fiks_arkiv_melding_dok {
	char *tittel, *filnavn, *referanse; /* referanse: the package file */
	char *format, *mime, *variantformat, *dokumenttype; /* or NULL */
	char *sjekksum;					    /* or NULL */
	long long filstoerrelse;			    /* -1: not given */
	int hoveddokument; /* tilknyttetRegistreringSom H */
};

/*
 * What the archive peer needs of a received arkivmelding; owned by it.
 * Optional elements that are absent are NULL. mappe_noekkel is the
 * registrering's referanseForelderMappe/referanseEksternNoekkel/noekkel, or
 * else the noekkel of a mappe sent along in the same arkivmelding.
 */
struct fiks_arkiv_melding {
	char *system, *mappe_noekkel, *noekkel, *tittel, *journalposttype;
	int antall_filer;
	char **filnavn; /* referanseDokumentfil of each dokumentobjekt */
	size_t n_filnavn;
	int skjermet;		/* the registrering has a skjerming */
	char *fagsystem;	/* of the journalpost's own key */
	char *journalstatus;	/* code */
	char *dokumentets_dato; /* as sent, "YYYY-MM-DD" */
	char *offentlig_tittel;
	char *tilgangsrestriksjon; /* code of the skjerming */
	char *skjermingshjemmel;
	struct fiks_arkiv_melding_part *parter;
	size_t n_parter;
	struct fiks_arkiv_melding_dok *dokumenter;
	size_t n_dokumenter;
};

/*
 * Validates and reads an arkivmelding whose registrering is a journalpost.
 * Returns 0 and fills *out (zeroed first; fiks_arkiv_melding_free());
 * FIKS_ELIMIT (over FIKS_ARKIV_XML_MAX); FIKS_EXML (not well-formed, a
 * DOCTYPE or entity declaration, not UTF-8, no journalpost in it);
 * FIKS_ESCHEMA (not valid against the XSD, a code not in its list);
 * BV_EIO (schemas unreadable); BV_EINVAL; BV_ENOMEM. On error *out holds
 * nothing to free and err (may be NULL) gets one line.
 */
int fiks_arkiv_arkivmelding_parse(const char *xml, size_t len,
				  struct fiks_arkiv_melding *out, char *err,
				  size_t errcap);
/* Frees what m holds (not m itself) and zeroes it; NULL is fine. */
void fiks_arkiv_melding_free(struct fiks_arkiv_melding *m);

/*
 * A journalpost's kvittering: arkivmeldingKvittering with one
 * registreringKvittering xsi:type journalpostKvittering and no
 * mappeKvittering (the XSD lets both choices be empty, and we create no
 * mappe: the saksmappe is the fagsystem's).
 */
struct fiks_arkiv_kvittering {
	char system_id[64]; /* the archive's id of the journalpost: a UUID */
	/* referanseEksternNoekkel echoed, or "": it is written only when
	 * both fagsystem and noekkel are set. */
	char fagsystem[128];
	char noekkel[128];
	int journalaar;
	int journalsekvensnummer;
	int journalpostnummer;
	int eksisterende; /* 1: "Eksisterende" (a retry), 0: "Opprettet" */
};

/*
 * Builds and validates arkivmelding-kvittering.xml. Journal numbers that are
 * 0 or less are left out. Returns 0 and sets *xml (free(), NUL-terminated)
 * and *len; BV_EINVAL (NULL, or strings that are not clean UTF-8);
 * FIKS_ESCHEMA (e.g. system_id not a UUID); BV_EIO; BV_ENOMEM.
 */
int fiks_arkiv_kvittering_build(const struct fiks_arkiv_kvittering *k,
				char **xml, size_t *len);
/*
 * Validates and reads a kvittering into *out (zeroed first). Returns 0;
 * FIKS_ELIMIT; FIKS_ESCHEMA; FIKS_EXML (also when it has no
 * journalpostKvittering, e.g. a registreringFeilet, whose feilmelding is
 * then in err, or a value too long for out); BV_EIO; BV_ENOMEM.
 */
int fiks_arkiv_kvittering_parse(const char *xml, size_t len,
				struct fiks_arkiv_kvittering *out, char *err,
				size_t errcap);

/*
 * Builds and validates feilmelding.xml for type FIKS_ARKIV_SERVERFEIL,
 * FIKS_ARKIV_UGYLDIG or FIKS_ARKIV_IKKEFUNNET: the root element of that
 * type's XSD with feilmeldingBase {feilId, feilmelding}. Returns 0 and sets
 * *xml (free(), NUL-terminated) and *len; BV_EINVAL (unknown type, empty
 * feil_id or melding, not clean UTF-8); FIKS_ESCHEMA; BV_EIO; BV_ENOMEM.
 */
int fiks_arkiv_feilmelding_build(const char *type, const char *feil_id,
				 const char *melding, char **xml, size_t *len);
/*
 * Validates a feilmelding of type against its XSD and copies its
 * feilmelding text into msg (cap bytes, NUL-terminated, cut at a UTF-8
 * character boundary when longer). Returns 0; BV_EINVAL (unknown type,
 * cap 0); FIKS_ELIMIT; FIKS_EXML; FIKS_ESCHEMA; BV_EIO; BV_ENOMEM.
 */
int fiks_arkiv_feilmelding_parse(const char *type, const char *xml, size_t len,
				 char *msg, size_t cap);

/*
 * Validates xml against xsd_name (a file of the schema directory: the
 * compiled-in source tree's fiks/schemas/fiks-arkiv-v1, or
 * $BVFIKS_SCHEMA_DIR), then checks the codes of the closed code lists
 * (kodelister/: journalposttype, journalstatus, korrespondanseparttype,
 * tilknyttetRegistreringSom, variantformat, dokumentstatus) wherever they
 * occur. The parse is libxml2's with no network, no DTD and no entities: a
 * DOCTYPE is refused. Parsed schemas and code lists are cached for the
 * process (thread-safe). Returns 0; BV_EINVAL (xsd_name not a plain file
 * name); FIKS_ELIMIT (len over FIKS_ARKIV_XML_MAX); FIKS_EXML;
 * FIKS_ESCHEMA; BV_EIO (schema missing or unreadable); BV_ENOMEM; one line
 * in err (may be NULL) on error.
 */
int fiks_arkiv_validate(const char *xsd_name, const char *xml, size_t len,
			char *err, size_t errcap);

/* Frees the cached schemas and code lists (at exit, for leak checkers; no
 * other thread may be using this module). */
void fiks_arkiv_cleanup(void);

#endif /* FIKS_ARKIV_H */
