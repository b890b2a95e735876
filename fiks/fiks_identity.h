/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * fiks_identity.h: an RSA key pair with its X.509 certificate, the way FIKS
 * IO uses them: the account's key decrypts what is sent to the account
 * (its certificate is what the katalog publishes), and the sender's
 * virksomhetssertifikat signs ASiC-E packages and Maskinporten grants. The
 * private key is PKCS#8 PEM (a PKCS#1 key is refused, as KS's clients do);
 * the certificate PEM.
 */
#ifndef FIKS_IDENTITY_H
#define FIKS_IDENTITY_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

struct fiks_identity;

/*
 * Loads key_path (PKCS#8 PEM, unencrypted) and cert_path (PEM) and checks
 * that they belong together. Returns 0 and sets *out; FIKS_EKEY (not PEM,
 * PKCS#1, encrypted, not RSA, or not a pair); BV_EIO (a file cannot be
 * opened or read); BV_EINVAL; BV_ENOMEM.
 */
int fiks_identity_load(const char *key_path, const char *cert_path,
		       struct fiks_identity **out);

/*
 * Makes a fresh RSA-bits key and a self-signed certificate for subject
 * common name cn, valid for days, and writes them to key_path (mode 0600)
 * and cert_path, replacing files that exist. For the development set-up and
 * tests only. Returns 0; BV_EINVAL (bits outside FIKS_IDENTITY_BITS_MIN …
 * _MAX, days outside 1 … FIKS_IDENTITY_DAYS_MAX, cn empty or longer than 64
 * bytes); BV_EIO; FIKS_EKEY; BV_ENOMEM.
 */
int fiks_identity_generate(const char *key_path, const char *cert_path,
			   const char *cn, int bits, int days);

#define FIKS_IDENTITY_BITS_MIN 2048
#define FIKS_IDENTITY_BITS_MAX 8192
#define FIKS_IDENTITY_DAYS_MAX 36500

/* The certificate as PEM, NUL-terminated, owned by the identity. */
const char *fiks_identity_cert_pem(const struct fiks_identity *id);

void fiks_identity_free(struct fiks_identity *id);

/*
 * For libbvfiks's own use (fiks_asice.c, fiks_cms.c, fiks_io.c): the
 * identity's private key and certificate, owned by the identity and valid
 * until fiks_identity_free(). Callers must not free or change them.
 */
EVP_PKEY *fiks_identity_key(const struct fiks_identity *id);
X509 *fiks_identity_cert(const struct fiks_identity *id);

#endif /* FIKS_IDENTITY_H */
