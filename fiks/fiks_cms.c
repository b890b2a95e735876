/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * fiks_cms.c: CMS EnvelopedData as FIKS IO uses it (docs/fiks.md,
 * "Packages"). Encryption writes what KS's Java client writes: AES-256-CBC
 * and one RSAES-OAEP (SHA-256, MGF1-SHA-256) recipient. Decryption takes
 * that and the .NET client's extra PKCS#1 v1.5 recipient, in either order.
 * Nothing here looks inside the plaintext; the ASiC-E layer checks it.
 */
#include <limits.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "bv_error.h"
#include "bv_util.h"
#include "fiks_cms.h"
#include "fiks_error.h"

/*
 * Largest plaintext we encrypt: what a receiver takes (FIKS_CMS_BYTES_MAX)
 * less room for the recipient info, the DER headers and the CBC padding.
 */
#define CMS_PLAIN_MAX (FIKS_CMS_BYTES_MAX - 4096u)
/* Nesting a well-formed EnvelopedData never comes near. */
#define DER_DEPTH_MAX 16

int
fiks_cms_encrypt(const unsigned char *in, size_t len, const char *cert_pem,
		 size_t cert_len, unsigned char **out, size_t *out_len)
{
	BIO *cbio = NULL, *dbio = NULL;
	X509 *cert = NULL;
	EVP_PKEY *pub;
	CMS_ContentInfo *cms = NULL;
	CMS_RecipientInfo *ri;
	EVP_PKEY_CTX *pctx;
	unsigned char *der = NULL, *p;
	int n, rc;

	if ((!in && len) || !cert_pem || !cert_len || cert_len > INT_MAX ||
	    !out || !out_len || len > CMS_PLAIN_MAX)
		return BV_EINVAL;
	cbio = BIO_new_mem_buf(cert_pem, (int)cert_len);
	if (!cbio) {
		rc = BV_ENOMEM;
		goto out;
	}
	cert = PEM_read_bio_X509(cbio, NULL, NULL, NULL);
	pub = cert ? X509_get0_pubkey(cert) : NULL;
	if (!pub || !EVP_PKEY_is_a(pub, "RSA")) {
		rc = FIKS_EKEY;
		goto out;
	}
	/* CMS_PARTIAL: the recipient is added by hand to set OAEP on it. */
	cms = CMS_encrypt(NULL, NULL, EVP_aes_256_cbc(),
			  CMS_PARTIAL | CMS_BINARY);
	if (!cms) {
		rc = BV_ENOMEM;
		goto out;
	}
	ri = CMS_add1_recipient_cert(cms, cert, CMS_KEY_PARAM);
	pctx = ri ? CMS_RecipientInfo_get0_pkey_ctx(ri) : NULL;
	if (!pctx ||
	    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(pctx, EVP_sha256()) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) <= 0) {
		rc = FIKS_EKEY;
		goto out;
	}
	dbio = BIO_new_mem_buf(len ? (const void *)in : "", (int)len);
	if (!dbio) {
		rc = BV_ENOMEM;
		goto out;
	}
	if (CMS_final(cms, dbio, NULL, CMS_BINARY) != 1) {
		rc = FIKS_EKEY;
		goto out;
	}
	n = i2d_CMS_ContentInfo(cms, NULL);
	if (n <= 0) {
		rc = BV_ENOMEM;
		goto out;
	}
	der = bv_malloc((size_t)n);
	if (!der) {
		rc = BV_ENOMEM;
		goto out;
	}
	p = der;
	if (i2d_CMS_ContentInfo(cms, &p) != n) {
		rc = BV_ENOMEM;
		goto out;
	}
	*out = der;
	*out_len = (size_t)n;
	der = NULL;
	rc = 0;
out:
	bv_free(der);
	CMS_ContentInfo_free(cms);
	BIO_free(dbio);
	X509_free(cert);
	BIO_free(cbio);
	ERR_clear_error();
	return rc;
}

/*
 * One BER header at *p (before end). Sets *tag, *cls, *cons and *len (-1
 * when indefinite) and moves *p to the contents. Returns 0 or -1.
 */
static int
ber_header(const unsigned char **p, const unsigned char *end, int *tag,
	   int *cls, int *cons, long *len)
{
	long l;
	int r;

	if (*p >= end)
		return -1;
	r = ASN1_get_object(p, &l, tag, cls, end - *p);
	if (r & 0x80)
		return -1;
	*cons = (r & V_ASN1_CONSTRUCTED) != 0;
	*len = (r & 1) ? -1 : l;
	if (*len < 0 && !*cons)
		return -1;
	return 0;
}

/* Moves *p past one whole element, indefinite lengths included. */
static int
ber_skip(const unsigned char **p, const unsigned char *end, int depth)
{
	int tag, cls, cons;
	long len;

	if (depth > DER_DEPTH_MAX ||
	    ber_header(p, end, &tag, &cls, &cons, &len))
		return -1;
	if (len >= 0) {
		*p += len;
		return 0;
	}
	for (;;) {
		if (end - *p >= 2 && (*p)[0] == 0 && (*p)[1] == 0) {
			*p += 2;
			return 0;
		}
		if (ber_skip(p, end, depth + 1))
			return -1;
	}
}

/* Enters the element at *p, which must have tag and class. */
static int
ber_enter(const unsigned char **p, const unsigned char *end, int want_tag,
	  int want_cls)
{
	int tag, cls, cons;
	long len;

	if (ber_header(p, end, &tag, &cls, &cons, &len) || tag != want_tag ||
	    cls != want_cls)
		return -1;
	return 0;
}

/*
 * The NID of an EnvelopedData's contentEncryptionAlgorithm, or NID_undef.
 * OpenSSL 3.0 has no accessor for it, and the .NET client refuses any
 * cipher but AES-256-CBC, so we do too: walk ContentInfo → [0] →
 * EnvelopedData → (version, originatorInfo?, recipientInfos) →
 * EncryptedContentInfo → AlgorithmIdentifier. The walk takes BER, as Java
 * senders stream with indefinite lengths.
 */
static int
content_cipher_nid(const unsigned char *der, size_t len)
{
	const unsigned char *p = der, *end = der + len;
	const unsigned char *q;
	ASN1_OBJECT *obj;
	int tag, cls, cons, nid;
	long l;

	if (ber_enter(&p, end, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL) ||
	    ber_skip(&p, end, 0) || /* contentType */
	    ber_enter(&p, end, 0, V_ASN1_CONTEXT_SPECIFIC) ||
	    ber_enter(&p, end, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL) ||
	    ber_skip(&p, end, 0)) /* version */
		return NID_undef;
	q = p;
	if (ber_header(&q, end, &tag, &cls, &cons, &l))
		return NID_undef;
	if (tag == 0 && cls == V_ASN1_CONTEXT_SPECIFIC &&
	    ber_skip(&p, end, 0)) /* originatorInfo */
		return NID_undef;
	if (ber_skip(&p, end, 0) || /* recipientInfos */
	    ber_enter(&p, end, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL) ||
	    ber_skip(&p, end, 0) || /* contentType */
	    ber_enter(&p, end, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL))
		return NID_undef;
	obj = d2i_ASN1_OBJECT(NULL, &p, end - p);
	if (!obj)
		return NID_undef;
	nid = OBJ_obj2nid(obj);
	ASN1_OBJECT_free(obj);
	return nid;
}

/* 1 when ri is a key transport recipient info for cert we can use. */
static int
usable_ktri(CMS_RecipientInfo *ri, X509 *cert)
{
	X509_ALGOR *alg = NULL;
	const ASN1_OBJECT *obj;
	int nid;

	if (CMS_RecipientInfo_type(ri) != CMS_RECIPINFO_TRANS ||
	    CMS_RecipientInfo_ktri_cert_cmp(ri, cert) != 0 ||
	    CMS_RecipientInfo_ktri_get0_algs(ri, NULL, NULL, &alg) != 1 || !alg)
		return 0;
	X509_ALGOR_get0(&obj, NULL, NULL, alg);
	nid = OBJ_obj2nid(obj);
	return nid == NID_rsaEncryption || nid == NID_rsaesOaep;
}

static void
wipe_bio_free(BIO *bio)
{
	char *data;
	long n;

	if (!bio)
		return;
	n = BIO_get_mem_data(bio, &data);
	if (n > 0)
		OPENSSL_cleanse(data, (size_t)n);
	BIO_free(bio);
}

/*
 * Unwraps the content key with ri and decrypts the content into a new
 * memory BIO. Fails (-1) when the key does not unwrap or when the content
 * does not decrypt with it, which is how a wrong PKCS#1 v1.5 key shows up
 * when the provider answers a bad padding with a random key.
 */
static int
try_recipient(CMS_ContentInfo *cms, CMS_RecipientInfo *ri, EVP_PKEY *key,
	      BIO **out)
{
	BIO *bio;
	int ok;

	/*
	 * set0 hands the recipient info a reference it frees when the next
	 * key (NULL here) is set, so it gets one of its own.
	 */
	if (EVP_PKEY_up_ref(key) != 1)
		return -1;
	if (CMS_RecipientInfo_set0_pkey(ri, key) != 1) {
		EVP_PKEY_free(key);
		return -1;
	}
	ok = CMS_RecipientInfo_decrypt(cms, ri) == 1;
	CMS_RecipientInfo_set0_pkey(ri, NULL);
	if (!ok)
		return -1;
	bio = BIO_new(BIO_s_mem());
	if (!bio)
		return -1;
	/* NULL key and cert: use the content key the recipient info set. */
	if (CMS_decrypt(cms, NULL, NULL, NULL, bio, CMS_BINARY) != 1) {
		wipe_bio_free(bio);
		return -1;
	}
	*out = bio;
	return 0;
}

int
fiks_cms_decrypt(const unsigned char *in, size_t len,
		 const struct fiks_identity *id, unsigned char **out,
		 size_t *out_len)
{
	CMS_ContentInfo *cms = NULL;
	STACK_OF(CMS_RecipientInfo) * ris;
	const unsigned char *p;
	BIO *plain = NULL;
	EVP_PKEY *key;
	X509 *cert;
	unsigned char *buf = NULL;
	char *data;
	long n;
	int i, rc;

	if (!in || !id || !out || !out_len)
		return BV_EINVAL;
	key = fiks_identity_key(id);
	cert = fiks_identity_cert(id);
	if (!key || !cert)
		return BV_EINVAL;
	if (len > FIKS_CMS_BYTES_MAX)
		return FIKS_ELIMIT;
	rc = FIKS_ECMS;
	p = in;
	cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
	if (!cms || p != in + len)
		goto out;
	if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_enveloped)
		goto out;
	if (content_cipher_nid(in, len) != NID_aes_256_cbc)
		goto out;
	ris = CMS_get0_RecipientInfos(cms);
	/*
	 * Every recipient info for our certificate, in order: the .NET client
	 * sends a PKCS#1 v1.5 and an OAEP one for the same certificate, and
	 * we must not depend on which comes first or on either working.
	 */
	for (i = 0; i < sk_CMS_RecipientInfo_num(ris) && !plain; i++) {
		CMS_RecipientInfo *ri = sk_CMS_RecipientInfo_value(ris, i);

		if (usable_ktri(ri, cert))
			(void)try_recipient(cms, ri, key, &plain);
	}
	if (!plain)
		goto out;
	n = BIO_get_mem_data(plain, &data);
	if (n < 0)
		goto out;
	buf = bv_malloc((size_t)n);
	if (!buf) {
		rc = BV_ENOMEM;
		goto out;
	}
	if (n > 0)
		memcpy(buf, data, (size_t)n);
	*out = buf;
	*out_len = (size_t)n;
	rc = 0;
out:
	wipe_bio_free(plain);
	CMS_ContentInfo_free(cms);
	ERR_clear_error();
	return rc;
}
