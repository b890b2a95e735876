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
/* Payload file names of those messages. */
#define FIKS_ARKIV_ARKIVMELDING_FILE "arkivmelding.xml"
#define FIKS_ARKIV_KVITTERING_FILE   "arkivmelding-kvittering.xml"
#define FIKS_ARKIV_FEILMELDING_FILE  "feilmelding.xml"

/* A korrespondansepart of the journalpost. */
struct fiks_arkiv_part {
	const char
		*type; /* korrespondanseparttype: "EA", "EM", "IA", "IM", … */
	const char *navn;  /* as the case file may show it */
	const char *rolle; /* free text after the name, e.g. "barn", or NULL */
	int skjermet;	   /* 1: skjermingKorrespondansepartNavn */
};

/* A document of the journalpost: one file of the package. */
struct fiks_arkiv_dokument {
	const char *tittel;
	const char *filnavn; /* referanseDokumentfil: the file in the package */
	const char *format;  /* dokumentobjekt/format, e.g. "TXT", "PDF" */
	const char *mime;    /* e.g. "text/plain; charset=UTF-8" */
	int hoveddokument;   /* 1: tilknyttetRegistreringSom H, else V */
};

struct fiks_arkiv_journalpost {
	const char *system;	   /* arkivmelding/system: "bvchat" */
	const char *fagsystem;	   /* referanseEksternNoekkel/fagsystem */
	const char *mappe_noekkel; /* the saksmappe's key: the case id */
	const char *noekkel;	   /* this journalpost's key (idempotent) */
	const char *tittel;
	const char *journalposttype;  /* "X", "N", "I", "U" */
	const char *dokumentets_dato; /* "YYYY-MM-DD" */
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
 * Builds arkivmelding.xml (UTF-8) for jp and validates it against the XSD.
 * Returns 0 and sets *xml (free(), NUL-terminated) and *len; BV_EINVAL;
 * FIKS_ESCHEMA (with the validator's first message in err); BV_ENOMEM.
 */
int fiks_arkiv_arkivmelding(const struct fiks_arkiv_journalpost *jp, char **xml,
			    size_t *len, char *err, size_t errcap);

/* What the archive peer needs of a received arkivmelding; owned by it. */
struct fiks_arkiv_melding {
	char *system, *mappe_noekkel, *noekkel, *tittel, *journalposttype;
	int antall_filer;
	char **filnavn; /* referanseDokumentfil of each dokumentobjekt */
	size_t n_filnavn;
	int skjermet;
};

/* Validates (FIKS_ESCHEMA) and reads an arkivmelding. */
int fiks_arkiv_arkivmelding_parse(const char *xml, size_t len,
				  struct fiks_arkiv_melding *out, char *err,
				  size_t errcap);
void fiks_arkiv_melding_free(struct fiks_arkiv_melding *m);

/* A journalpost's kvittering. */
struct fiks_arkiv_kvittering {
	char system_id[64]; /* the archive's id of the journalpost */
	char noekkel[128];  /* referanseEksternNoekkel echoed, or "" */
	int journalaar;
	int journalsekvensnummer;
	int journalpostnummer;
	int eksisterende; /* 1: "Eksisterende" (a retry), 0: "Opprettet" */
};

int fiks_arkiv_kvittering_build(const struct fiks_arkiv_kvittering *k,
				char **xml, size_t *len);
/* Validates and reads. Returns 0; FIKS_ESCHEMA; FIKS_EXML; BV_ENOMEM. */
int fiks_arkiv_kvittering_parse(const char *xml, size_t len,
				struct fiks_arkiv_kvittering *out, char *err,
				size_t errcap);

/* type: FIKS_ARKIV_SERVERFEIL or FIKS_ARKIV_UGYLDIG. */
int fiks_arkiv_feilmelding_build(const char *type, const char *feil_id,
				 const char *melding, char **xml, size_t *len);
/* Reads feilmelding (text) into msg (cap bytes). */
int fiks_arkiv_feilmelding_parse(const char *type, const char *xml, size_t len,
				 char *msg, size_t cap);

/*
 * Validates xml against xsd_name (a file of the schema directory: the
 * compiled-in source tree's fiks/schemas/fiks-arkiv-v1, or
 * $BVFIKS_SCHEMA_DIR). Returns 0; FIKS_ESCHEMA; FIKS_EXML; BV_EIO.
 */
int fiks_arkiv_validate(const char *xsd_name, const char *xml, size_t len,
			char *err, size_t errcap);

#endif /* FIKS_ARKIV_H */
