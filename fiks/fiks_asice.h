/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * fiks_asice.h: ASiC-E packages as FIKS IO carries them (docs/fiks.md,
 * "Packages"): a zip holding `mimetype` (stored first, uncompressed,
 * "application/vnd.etsi.asic-e+zip"), the payload files,
 * META-INF/asicmanifest.xml (ETSI ASiCManifest: one DataObjectReference per
 * file with its SHA-256 digest, the first flagged Rootfile), a detached
 * CMS SignedData over the manifest's bytes with the signer's certificate
 * (META-INF/signature-<uuid>.p7s, SHA-256 with RSA), and
 * META-INF/manifest.xml (OASIS ODF) written last. Built and read with
 * libzip and OpenSSL.
 */
#ifndef FIKS_ASICE_H
#define FIKS_ASICE_H

#include <stddef.h>

#include "fiks_identity.h"

/* Limits a reader enforces (FIKS_ELIMIT beyond them). */
#define FIKS_ASICE_FILES_MAX 64		 /* payload files per package */
#define FIKS_ASICE_NAME_MAX  200	 /* bytes of one file name */
#define FIKS_ASICE_BYTES_MAX (64u << 20) /* uncompressed, all files */

/* One payload file; a reader's are owned by the package. */
struct fiks_file {
	const char *name; /* no "META-INF/" prefix, no "/" or ".." parts */
	const char *mime; /* e.g. "application/xml" */
	const unsigned char *data;
	size_t len;
};

/*
 * Builds a signed package of n (1 … FIKS_ASICE_FILES_MAX) files, the first
 * the root file, signed by signer. Returns 0 and sets *zip (free()) and
 * *zip_len; BV_EINVAL (bad or duplicate name, n out of range); FIKS_EKEY;
 * FIKS_ELIMIT; BV_ENOMEM.
 */
int fiks_asice_build(const struct fiks_file *files, size_t n,
		     const struct fiks_identity *signer, unsigned char **zip,
		     size_t *zip_len);

struct fiks_asice;

/*
 * Reads and checks a package: the zip and its mimetype, the manifest, every
 * file's digest (and that every payload file is in the manifest and every
 * manifest entry is a file), and the signature over the manifest. When
 * expect_cert_pem is not NULL, the signing certificate must be that one
 * (the sender pinned out of band); else any certificate that verifies the
 * signature is accepted and can be read with fiks_asice_signer().
 * Returns 0 and sets *out; FIKS_EZIP, FIKS_EMANIFEST, FIKS_EDIGEST,
 * FIKS_ESIGNATURE, FIKS_ELIMIT (docs/fiks.md gives the order of the checks
 * and which code each one returns); BV_EINVAL (zip or out NULL,
 * expect_cert_pem not a PEM certificate); BV_ENOMEM. On error, when err is
 * not NULL, a sentence naming the file or part at fault is written to it
 * (errcap bytes, NUL-terminated; never file contents).
 */
int fiks_asice_read(const unsigned char *zip, size_t zip_len,
		    const char *expect_cert_pem, struct fiks_asice **out,
		    char *err, size_t errcap);

size_t fiks_asice_count(const struct fiks_asice *a);
/* The i-th payload file in manifest order (0 is the root file). */
const struct fiks_file *fiks_asice_file(const struct fiks_asice *a, size_t i);
/* The payload file named name, or NULL. */
const struct fiks_file *fiks_asice_find(const struct fiks_asice *a,
					const char *name);
/* The signer certificate's subject, one line (RFC 2253). */
const char *fiks_asice_signer(const struct fiks_asice *a);

void fiks_asice_free(struct fiks_asice *a);

#endif /* FIKS_ASICE_H */
