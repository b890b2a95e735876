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

struct fiks_identity;

/*
 * Loads key_path (PKCS#8 PEM, unencrypted) and cert_path (PEM) and checks
 * that they belong together. Returns 0 and sets *out; FIKS_EKEY (unreadable,
 * PKCS#1, not RSA, or not a pair); BV_EIO; BV_ENOMEM.
 */
int fiks_identity_load(const char *key_path, const char *cert_path,
		       struct fiks_identity **out);

/*
 * Makes a fresh RSA-bits key and a self-signed certificate for subject
 * common name cn, valid for days, and writes them to key_path (mode 0600)
 * and cert_path. For the development set-up and tests only.
 * Returns 0; BV_EINVAL; BV_EIO; FIKS_EKEY; BV_ENOMEM.
 */
int fiks_identity_generate(const char *key_path, const char *cert_path,
			   const char *cn, int bits, int days);

/* The certificate as PEM, NUL-terminated, owned by the identity. */
const char *fiks_identity_cert_pem(const struct fiks_identity *id);

void fiks_identity_free(struct fiks_identity *id);

#endif /* FIKS_IDENTITY_H */
