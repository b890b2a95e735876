/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_identity.c: unit tests of fiks/fiks_identity.c: generated pairs load
 * back and are what FIKS IO expects (PKCS#8, mode 0600, self-signed RSA
 * certificate), and every key KS's clients refuse is refused here too:
 * PKCS#1, encrypted PKCS#8, EC, a key of another certificate.
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
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/encoder.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "bv_error.h"
#include "fiks_error.h"
#include "fiks_identity.h"

static char dir[] = "/tmp/test_identity.XXXXXX";
static char key_a[256], cert_a[256], key_b[256], cert_b[256];

static void
path(char *out, const char *name)
{
	snprintf(out, 256, "%s/%s", dir, name);
}

static int
setup(void **state)
{
	FILE *f;

	(void)state;
	if (!mkdtemp(dir))
		return -1;
	path(key_a, "a.key");
	path(cert_a, "a.crt");
	path(key_b, "b.key");
	path(cert_b, "b.crt");
	/* b.key exists world-readable: generate must tighten it to 0600. */
	f = fopen(key_b, "w");
	if (!f)
		return -1;
	fputs("old\n", f);
	fclose(f);
	if (chmod(key_b, 0644) != 0)
		return -1;
	if (fiks_identity_generate(key_a, cert_a, "bvchat test A", 2048, 30))
		return -1;
	if (fiks_identity_generate(key_b, cert_b, "bvchat test B", 2048, 30))
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static char *
slurp(const char *p)
{
	static char buf[16384];
	FILE *f = fopen(p, "rb");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

static void
spit(const char *p, const char *data, size_t len)
{
	FILE *f = fopen(p, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
}

static EVP_PKEY *
read_key(const char *p)
{
	FILE *f = fopen(p, "rb");
	EVP_PKEY *k;

	assert_non_null(f);
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(k);
	return k;
}

/* Writes key in the encoder's structure ("PrivateKeyInfo", …) to p. */
static void
write_key(const char *p, EVP_PKEY *key, const char *structure,
	  const char *cipher)
{
	OSSL_ENCODER_CTX *ctx;
	BIO *bio = BIO_new_file(p, "wb");

	assert_non_null(bio);
	ctx = OSSL_ENCODER_CTX_new_for_pkey(key, EVP_PKEY_KEYPAIR, "PEM",
					    structure, NULL);
	assert_non_null(ctx);
	if (cipher) {
		assert_int_equal(OSSL_ENCODER_CTX_set_cipher(ctx, cipher, NULL),
				 1);
		assert_int_equal(OSSL_ENCODER_CTX_set_passphrase(
					 ctx, (const unsigned char *)"pw", 2),
				 1);
	}
	assert_int_equal(OSSL_ENCODER_to_bio(ctx, bio), 1);
	OSSL_ENCODER_CTX_free(ctx);
	BIO_free(bio);
}

static void
test_generate_load(void **state)
{
	struct fiks_identity *id = NULL;
	struct stat st;
	const char *pem;
	X509 *cert;
	EVP_PKEY *pub;
	char cn[64];

	(void)state;
	assert_int_equal(stat(key_a, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(key_b, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_non_null(strstr(slurp(key_a), "-----BEGIN PRIVATE KEY-----"));

	assert_int_equal(fiks_identity_load(key_a, cert_a, &id), 0);
	pem = fiks_identity_cert_pem(id);
	assert_non_null(pem);
	assert_int_equal(strncmp(pem, "-----BEGIN CERTIFICATE-----", 27), 0);
	assert_string_equal(pem, slurp(cert_a));

	cert = fiks_identity_cert(id);
	assert_non_null(cert);
	assert_non_null(fiks_identity_key(id));
	pub = X509_get0_pubkey(cert);
	assert_true(EVP_PKEY_is_a(pub, "RSA"));
	assert_int_equal(EVP_PKEY_get_bits(pub), 2048);
	assert_int_equal(X509_verify(cert, pub), 1); /* self-signed */
	assert_int_equal(X509_NAME_get_text_by_NID(X509_get_subject_name(cert),
						   NID_commonName, cn,
						   sizeof(cn)),
			 13);
	assert_string_equal(cn, "bvchat test A");
	assert_int_equal(X509_get_signature_nid(cert),
			 NID_sha256WithRSAEncryption);
	assert_true(X509_cmp_current_time(X509_get0_notAfter(cert)) > 0);
	assert_int_equal(X509_get_version(cert), X509_VERSION_3);
	fiks_identity_free(id);
	fiks_identity_free(NULL);
}

static void
test_pkcs1_refused(void **state)
{
	struct fiks_identity *id = NULL;
	EVP_PKEY *k = read_key(key_a);
	char p[256];

	(void)state;
	path(p, "pkcs1.key");
	write_key(p, k, "type-specific", NULL);
	assert_non_null(strstr(slurp(p), "BEGIN RSA PRIVATE KEY"));
	assert_int_equal(fiks_identity_load(p, cert_a, &id), FIKS_EKEY);
	assert_null(id);

	/* The same key as PKCS#8 loads: only the form was at fault. */
	path(p, "pkcs8.key");
	write_key(p, k, "PrivateKeyInfo", NULL);
	assert_int_equal(fiks_identity_load(p, cert_a, &id), 0);
	fiks_identity_free(id);
	id = NULL;

	path(p, "enc.key");
	write_key(p, k, "EncryptedPrivateKeyInfo", "AES-256-CBC");
	assert_non_null(strstr(slurp(p), "BEGIN ENCRYPTED PRIVATE KEY"));
	assert_int_equal(fiks_identity_load(p, cert_a, &id), FIKS_EKEY);
	EVP_PKEY_free(k);
}

static void
test_not_a_pair(void **state)
{
	static const char garbage[] = "-----BEGIN PRIVATE KEY-----\nAAAA\n"
				      "-----END PRIVATE KEY-----\n";
	struct fiks_identity *id = NULL;
	EVP_PKEY *ec;
	char p[256];

	(void)state;
	assert_int_equal(fiks_identity_load(key_a, cert_b, &id), FIKS_EKEY);
	assert_int_equal(fiks_identity_load(key_b, cert_a, &id), FIKS_EKEY);
	assert_int_equal(fiks_identity_load(cert_a, cert_a, &id), FIKS_EKEY);
	assert_int_equal(fiks_identity_load(key_a, key_a, &id), FIKS_EKEY);

	ec = EVP_EC_gen("P-256");
	assert_non_null(ec);
	path(p, "ec.key");
	write_key(p, ec, "PrivateKeyInfo", NULL);
	assert_int_equal(fiks_identity_load(p, cert_a, &id), FIKS_EKEY);
	EVP_PKEY_free(ec);

	path(p, "garbage.pem");
	spit(p, garbage, strlen(garbage));
	assert_int_equal(fiks_identity_load(p, cert_a, &id), FIKS_EKEY);
	spit(p, "", 0);
	assert_int_equal(fiks_identity_load(key_a, p, &id), FIKS_EKEY);
	assert_null(id);
}

static void
test_io_errors(void **state)
{
	struct fiks_identity *id = NULL;
	char p[256];

	(void)state;
	path(p, "missing.key");
	assert_int_equal(fiks_identity_load(p, cert_a, &id), BV_EIO);
	assert_int_equal(fiks_identity_load(key_a, p, &id), BV_EIO);
	assert_int_equal(fiks_identity_load(NULL, cert_a, &id), BV_EINVAL);
	assert_int_equal(fiks_identity_load(key_a, cert_a, NULL), BV_EINVAL);
	path(p, "no/such/dir/x.key");
	assert_int_equal(fiks_identity_generate(p, cert_a, "x", 2048, 1),
			 BV_EIO);
	assert_null(id);
}

static void
test_generate_invalid(void **state)
{
	char p[256], q[256];
	char longcn[66];

	(void)state;
	path(p, "never.key");
	path(q, "never.crt");
	memset(longcn, 'x', 65);
	longcn[65] = '\0';
	assert_int_equal(fiks_identity_generate(p, q, "x", 1024, 1), BV_EINVAL);
	assert_int_equal(fiks_identity_generate(p, q, "x", 16384, 1),
			 BV_EINVAL);
	assert_int_equal(fiks_identity_generate(p, q, "x", 2048, 0), BV_EINVAL);
	assert_int_equal(fiks_identity_generate(p, q, "x", 2048, 36501),
			 BV_EINVAL);
	assert_int_equal(fiks_identity_generate(p, q, "", 2048, 1), BV_EINVAL);
	assert_int_equal(fiks_identity_generate(p, q, longcn, 2048, 1),
			 BV_EINVAL);
	assert_int_equal(fiks_identity_generate(p, q, NULL, 2048, 1),
			 BV_EINVAL);
	assert_int_equal(access(p, F_OK), -1);
	assert_int_equal(access(q, F_OK), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_generate_load),
		cmocka_unit_test(test_pkcs1_refused),
		cmocka_unit_test(test_not_a_pair),
		cmocka_unit_test(test_io_errors),
		cmocka_unit_test(test_generate_invalid),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
