/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_cms.c: unit tests of fiks/fiks_cms.c. Our envelope is parsed back
 * with OpenSSL (one OAEP-SHA-256/MGF1-SHA-256 recipient, AES-256-CBC), and
 * envelopes built here with OpenSSL's CMS API the way the other senders
 * build them are decrypted: PKCS#1 v1.5 only (as `openssl cms -encrypt`),
 * the .NET client's two recipient infos in both orders and with either
 * one broken, and the ones we must refuse (AES-128, another certificate,
 * tampered, truncated, too large).
 */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "bv_error.h"
#include "fiks_cms.h"
#include "fiks_error.h"
#include "fiks_identity.h"
#include "two_identities.h"

static int
setup(void **state)
{
	(void)state;
	return two_identities_setup("cms");
}

static int
teardown(void **state)
{
	(void)state;
	return two_identities_teardown();
}

static unsigned char *
encrypt_a(const unsigned char *in, size_t len, size_t *out_len)
{
	const char *pem = fiks_identity_cert_pem(ida);
	unsigned char *out = NULL;

	assert_int_equal(
		fiks_cms_encrypt(in, len, pem, strlen(pem), &out, out_len), 0);
	return out;
}

static void
assert_decrypts(const unsigned char *der, size_t der_len,
		const struct fiks_identity *id, const void *want,
		size_t want_len)
{
	unsigned char *out = NULL;
	size_t out_len = 0;

	assert_int_equal(fiks_cms_decrypt(der, der_len, id, &out, &out_len), 0);
	assert_int_equal(out_len, want_len);
	assert_memory_equal(out, want, want_len);
	free(out);
}

static void
assert_refused(const unsigned char *der, size_t der_len, int want)
{
	unsigned char *out = NULL;
	size_t out_len = 0;

	assert_int_equal(fiks_cms_decrypt(der, der_len, ida, &out, &out_len),
			 want);
	assert_null(out);
}

static void
test_roundtrip(void **state)
{
	static const char msg[] = "arkivmelding.xml, zipped and signed";
	unsigned char *der, *big;
	size_t len, n = 1000003;

	(void)state;
	der = encrypt_a((const unsigned char *)msg, sizeof(msg), &len);
	assert_decrypts(der, len, ida, msg, sizeof(msg));
	/* For A only: B's key finds no recipient info. */
	{
		unsigned char *out = NULL;
		size_t out_len;

		assert_int_equal(
			fiks_cms_decrypt(der, len, idb, &out, &out_len),
			FIKS_ECMS);
		assert_null(out);
	}
	free(der);

	der = encrypt_a((const unsigned char *)"", 0, &len);
	assert_decrypts(der, len, ida, "", 0);
	free(der);

	big = malloc(n);
	assert_non_null(big);
	assert_int_equal(RAND_bytes(big, (int)n), 1);
	der = encrypt_a(big, n, &len);
	assert_true(len > n);
	assert_decrypts(der, len, ida, big, n);
	free(der);
	free(big);
}

/* The OID of AlgorithmIdentifier alg's parameter, itself one, or NID_undef. */
static int
param_alg_nid(const X509_ALGOR *alg)
{
	const ASN1_OBJECT *obj;
	const void *pval;
	int ptype, nid;
	X509_ALGOR *inner;

	X509_ALGOR_get0(&obj, &ptype, &pval, alg);
	if (ptype != V_ASN1_SEQUENCE)
		return NID_undef;
	inner = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(X509_ALGOR),
					  alg->parameter);
	if (!inner)
		return NID_undef;
	X509_ALGOR_get0(&obj, NULL, NULL, inner);
	nid = OBJ_obj2nid(obj);
	X509_ALGOR_free(inner);
	return nid;
}

static const unsigned char oid_aes256cbc[] = {
	0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a};
static const unsigned char oid_aes128cbc[] = {
	0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02};

static int
contains(const unsigned char *h, size_t hl, const unsigned char *n, size_t nl)
{
	size_t i;

	for (i = 0; i + nl <= hl; i++)
		if (memcmp(h + i, n, nl) == 0)
			return 1;
	return 0;
}

/* What KS's Java client sends, parsed back with OpenSSL, not with us. */
static void
test_encrypt_structure(void **state)
{
	unsigned char *der;
	const unsigned char *p;
	size_t len;
	CMS_ContentInfo *cms;
	STACK_OF(CMS_RecipientInfo) * ris;
	CMS_RecipientInfo *ri;
	X509_ALGOR *alg = NULL;
	const ASN1_OBJECT *obj;
	const void *pval;
	int ptype;
	RSA_OAEP_PARAMS *oaep;

	(void)state;
	der = encrypt_a((const unsigned char *)"x", 1, &len);
	p = der;
	cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
	assert_non_null(cms);
	assert_ptr_equal(p, der + len);
	assert_int_equal(OBJ_obj2nid(CMS_get0_type(cms)), NID_pkcs7_enveloped);
	ris = CMS_get0_RecipientInfos(cms);
	assert_int_equal(sk_CMS_RecipientInfo_num(ris), 1);
	ri = sk_CMS_RecipientInfo_value(ris, 0);
	assert_int_equal(CMS_RecipientInfo_type(ri), CMS_RECIPINFO_TRANS);
	assert_int_equal(
		CMS_RecipientInfo_ktri_cert_cmp(ri, fiks_identity_cert(ida)),
		0);
	assert_int_equal(CMS_RecipientInfo_ktri_get0_algs(ri, NULL, NULL, &alg),
			 1);
	X509_ALGOR_get0(&obj, &ptype, &pval, alg);
	assert_int_equal(OBJ_obj2nid(obj), NID_rsaesOaep);
	assert_int_equal(ptype, V_ASN1_SEQUENCE);
	oaep = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(RSA_OAEP_PARAMS),
					 alg->parameter);
	assert_non_null(oaep);
	assert_non_null(oaep->hashFunc);
	X509_ALGOR_get0(&obj, NULL, NULL, oaep->hashFunc);
	assert_int_equal(OBJ_obj2nid(obj), NID_sha256);
	assert_non_null(oaep->maskGenFunc);
	X509_ALGOR_get0(&obj, NULL, NULL, oaep->maskGenFunc);
	assert_int_equal(OBJ_obj2nid(obj), NID_mgf1);
	assert_int_equal(param_alg_nid(oaep->maskGenFunc), NID_sha256);
	/* pSourceFunc absent: the default, an empty label. */
	assert_null(oaep->pSourceFunc);
	RSA_OAEP_PARAMS_free(oaep);
	assert_true(contains(der, len, oid_aes256cbc, sizeof(oid_aes256cbc)));
	assert_false(contains(der, len, oid_aes128cbc, sizeof(oid_aes128cbc)));
	CMS_ContentInfo_free(cms);
	free(der);
}

enum ktri { V15, OAEP };

/*
 * An EnvelopedData for cert with cipher and one recipient info per kinds[]
 * entry, built with OpenSSL alone as the other senders would.
 */
static unsigned char *
envelope(X509 *cert, const EVP_CIPHER *cipher, const enum ktri *kinds, size_t n,
	 const void *msg, size_t msg_len, size_t *out_len)
{
	CMS_ContentInfo *cms;
	BIO *in;
	unsigned char *der = NULL;
	size_t i;
	int len;

	cms = CMS_encrypt(NULL, NULL, cipher, CMS_PARTIAL | CMS_BINARY);
	assert_non_null(cms);
	for (i = 0; i < n; i++) {
		CMS_RecipientInfo *ri;

		ri = CMS_add1_recipient_cert(
			cms, cert, kinds[i] == OAEP ? CMS_KEY_PARAM : 0);
		assert_non_null(ri);
		if (kinds[i] == OAEP) {
			EVP_PKEY_CTX *pctx =
				CMS_RecipientInfo_get0_pkey_ctx(ri);

			assert_true(EVP_PKEY_CTX_set_rsa_padding(
					    pctx, RSA_PKCS1_OAEP_PADDING) > 0);
			assert_true(EVP_PKEY_CTX_set_rsa_oaep_md(
					    pctx, EVP_sha256()) > 0);
			assert_true(EVP_PKEY_CTX_set_rsa_mgf1_md(
					    pctx, EVP_sha256()) > 0);
		}
	}
	in = BIO_new_mem_buf(msg, (int)msg_len);
	assert_int_equal(CMS_final(cms, in, NULL, CMS_BINARY), 1);
	len = i2d_CMS_ContentInfo(cms, &der);
	assert_true(len > 0);
	BIO_free(in);
	CMS_ContentInfo_free(cms);
	*out_len = (size_t)len;
	return der;
}

/*
 * Flips a byte inside the nth (from 0) 256-byte encryptedKey: an OCTET
 * STRING with header 04 82 01 00, which in an EnvelopedData without
 * certificates appears nowhere else.
 */
static void
break_ktri(unsigned char *der, size_t len, int nth)
{
	static const unsigned char hdr[] = {0x04, 0x82, 0x01, 0x00};
	size_t i;

	for (i = 0; i + sizeof(hdr) + 256 <= len; i++) {
		if (memcmp(der + i, hdr, sizeof(hdr)) != 0)
			continue;
		if (nth-- == 0) {
			der[i + sizeof(hdr) + 100] ^= 0x40;
			return;
		}
	}
	fail_msg("no encryptedKey %d", nth);
}

static const char msg32[] = "sixteen bytes!!!and sixteen more";

static void
test_pkcs1_v15_only(void **state)
{
	static const enum ktri k[] = {V15};
	X509 *cert = fiks_identity_cert(ida);
	unsigned char *der;
	size_t len;

	(void)state;
	der = envelope(cert, EVP_aes_256_cbc(), k, 1, msg32, 32, &len);
	assert_decrypts(der, len, ida, msg32, 32);
	/* A broken v1.5 key must be an error, never garbage accepted. */
	break_ktri(der, len, 0);
	assert_refused(der, len, FIKS_ECMS);
	OPENSSL_free(der);
}

static void
test_dotnet_two_ktris(void **state)
{
	static const enum ktri v15_first[] = {V15, OAEP};
	static const enum ktri oaep_first[] = {OAEP, V15};
	X509 *cert = fiks_identity_cert(ida);
	unsigned char *der;
	size_t len;
	int broken;

	(void)state;
	der = envelope(cert, EVP_aes_256_cbc(), v15_first, 2, msg32, 32, &len);
	assert_decrypts(der, len, ida, msg32, 32);
	OPENSSL_free(der);
	der = envelope(cert, EVP_aes_256_cbc(), oaep_first, 2, msg32, 32, &len);
	assert_decrypts(der, len, ida, msg32, 32);
	OPENSSL_free(der);

	/* Either recipient info alone must be enough, whichever is first. */
	for (broken = 0; broken < 2; broken++) {
		der = envelope(cert, EVP_aes_256_cbc(), v15_first, 2, msg32, 32,
			       &len);
		break_ktri(der, len, broken);
		assert_decrypts(der, len, ida, msg32, 32);
		OPENSSL_free(der);
		der = envelope(cert, EVP_aes_256_cbc(), oaep_first, 2, msg32,
			       32, &len);
		break_ktri(der, len, broken);
		assert_decrypts(der, len, ida, msg32, 32);
		OPENSSL_free(der);
	}
	/* Both broken: refused. */
	der = envelope(cert, EVP_aes_256_cbc(), oaep_first, 2, msg32, 32, &len);
	break_ktri(der, len, 0);
	break_ktri(der, len, 1);
	assert_refused(der, len, FIKS_ECMS);
	OPENSSL_free(der);
}

static void
test_wrong_cipher(void **state)
{
	static const enum ktri k[] = {OAEP};
	static const enum ktri k15[] = {V15};
	X509 *cert = fiks_identity_cert(ida);
	unsigned char *der;
	size_t len;

	(void)state;
	der = envelope(cert, EVP_aes_128_cbc(), k, 1, msg32, 32, &len);
	assert_true(contains(der, len, oid_aes128cbc, sizeof(oid_aes128cbc)));
	assert_refused(der, len, FIKS_ECMS);
	OPENSSL_free(der);
	der = envelope(cert, EVP_aes_192_cbc(), k15, 1, msg32, 32, &len);
	assert_refused(der, len, FIKS_ECMS);
	OPENSSL_free(der);
	der = envelope(cert, EVP_des_ede3_cbc(), k15, 1, msg32, 32, &len);
	assert_refused(der, len, FIKS_ECMS);
	OPENSSL_free(der);
}

static void
test_other_cert(void **state)
{
	static const enum ktri k[] = {OAEP, V15};
	unsigned char *der;
	size_t len;

	(void)state;
	der = envelope(fiks_identity_cert(idb), EVP_aes_256_cbc(), k, 2, msg32,
		       32, &len);
	assert_refused(der, len, FIKS_ECMS);
	assert_decrypts(der, len, idb, msg32, 32);
	OPENSSL_free(der);
}

static void
test_tampered(void **state)
{
	unsigned char *der, *copy;
	size_t len, i;

	(void)state;
	/*
	 * 32 bytes of plaintext end in a whole block of padding (16 × 0x10).
	 * Flipping the last bit of the second-to-last ciphertext block turns
	 * the last padding byte into 0x11: a padding error every time.
	 */
	der = encrypt_a((const unsigned char *)msg32, 32, &len);
	copy = malloc(len + 1);
	assert_non_null(copy);
	memcpy(copy, der, len);
	copy[len - 17] ^= 0x01;
	assert_refused(copy, len, FIKS_ECMS);

	memcpy(copy, der, len);
	for (i = 0; i < len; i += 97) /* truncated anywhere */
		assert_refused(copy, i, FIKS_ECMS);
	copy[len] = 0; /* trailing byte */
	assert_refused(copy, len + 1, FIKS_ECMS);
	memset(copy, 0x30, len); /* not CMS */
	assert_refused(copy, len, FIKS_ECMS);
	free(copy);
	free(der);
}

static void
test_limits_and_args(void **state)
{
	const char *pem = fiks_identity_cert_pem(ida);
	unsigned char *huge, *out = NULL;
	size_t out_len;

	(void)state;
	/* calloc'd pages stay untouched: the limit comes before parsing. */
	huge = calloc(1, (size_t)FIKS_CMS_BYTES_MAX + 1);
	assert_non_null(huge);
	assert_int_equal(fiks_cms_decrypt(huge, (size_t)FIKS_CMS_BYTES_MAX + 1,
					  ida, &out, &out_len),
			 FIKS_ELIMIT);
	assert_int_equal(fiks_cms_encrypt(huge, (size_t)FIKS_CMS_BYTES_MAX, pem,
					  strlen(pem), &out, &out_len),
			 BV_EINVAL);
	free(huge);

	assert_int_equal(fiks_cms_encrypt((const unsigned char *)"x", 1,
					  "not a certificate", 17, &out,
					  &out_len),
			 FIKS_EKEY);
	assert_int_equal(fiks_cms_encrypt((const unsigned char *)"x", 1, NULL,
					  0, &out, &out_len),
			 BV_EINVAL);
	assert_int_equal(
		fiks_cms_encrypt(NULL, 1, pem, strlen(pem), &out, &out_len),
		BV_EINVAL);
	assert_int_equal(fiks_cms_decrypt((const unsigned char *)"x", 1, NULL,
					  &out, &out_len),
			 BV_EINVAL);
	assert_null(out);
}

/* An EC certificate cannot take an RSA key transport: FIKS_EKEY. */
static void
test_ec_cert(void **state)
{
	EVP_PKEY *ec = EVP_EC_gen("P-256");
	X509 *cert = X509_new();
	X509_NAME *name = X509_NAME_new();
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem;
	long n;
	unsigned char *out = NULL;
	size_t out_len;

	(void)state;
	assert_non_null(ec);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
						    (const unsigned char *)"ec",
						    -1, -1, 0),
			 1);
	X509_set_version(cert, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
	X509_set_subject_name(cert, name);
	X509_set_issuer_name(cert, name);
	X509_gmtime_adj(X509_getm_notBefore(cert), 0);
	X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
	X509_set_pubkey(cert, ec);
	assert_true(X509_sign(cert, ec, EVP_sha256()) > 0);
	assert_int_equal(PEM_write_bio_X509(bio, cert), 1);
	n = BIO_get_mem_data(bio, &pem);
	assert_int_equal(fiks_cms_encrypt((const unsigned char *)"x", 1, pem,
					  (size_t)n, &out, &out_len),
			 FIKS_EKEY);
	assert_null(out);
	BIO_free(bio);
	X509_NAME_free(name);
	X509_free(cert);
	EVP_PKEY_free(ec);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_encrypt_structure),
		cmocka_unit_test(test_pkcs1_v15_only),
		cmocka_unit_test(test_dotnet_two_ktris),
		cmocka_unit_test(test_wrong_cipher),
		cmocka_unit_test(test_other_cert),
		cmocka_unit_test(test_tampered),
		cmocka_unit_test(test_limits_and_args),
		cmocka_unit_test(test_ec_cert),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
