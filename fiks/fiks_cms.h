/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * fiks_cms.h: the CMS EnvelopedData around every FIKS IO payload. We send
 * what KS's Java client sends: AES-256-CBC content encryption and exactly
 * one KeyTransRecipientInfo with RSAES-OAEP (SHA-256, MGF1-SHA-256, empty
 * label) for the recipient account's certificate. We read both that and
 * what the .NET client sends (an rsaEncryption PKCS#1 v1.5 recipient info
 * as well, possibly first), and refuse any content cipher but AES-256-CBC.
 */
#ifndef FIKS_CMS_H
#define FIKS_CMS_H

#include <stddef.h>

#include "fiks_identity.h"

/* Largest ciphertext fiks_cms_decrypt() takes (FIKS_ELIMIT beyond). */
#define FIKS_CMS_BYTES_MAX ((64u << 20) + 4096u)

/*
 * Encrypts len bytes for the certificate cert_pem (cert_len bytes, PEM).
 * Returns 0 and sets *out (free()) and *out_len to the DER; FIKS_EKEY (not
 * an RSA certificate); BV_EINVAL; BV_ENOMEM.
 */
int fiks_cms_encrypt(const unsigned char *in, size_t len, const char *cert_pem,
		     size_t cert_len, unsigned char **out, size_t *out_len);

/*
 * Decrypts DER EnvelopedData with id's private key, trying every
 * KeyTransRecipientInfo (OAEP-SHA-256 or PKCS#1 v1.5) that names id's
 * certificate. Returns 0 and sets *out (free()) and *out_len; FIKS_ECMS
 * (not CMS, not for us, wrong cipher, tampered); FIKS_ELIMIT; BV_ENOMEM.
 */
int fiks_cms_decrypt(const unsigned char *in, size_t len,
		     const struct fiks_identity *id, unsigned char **out,
		     size_t *out_len);

#endif /* FIKS_CMS_H */
