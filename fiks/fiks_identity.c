/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * fiks_identity.c: loads an RSA key (PKCS#8 PEM only) and its certificate,
 * checks that they are a pair, and makes self-signed pairs for development.
 * It does not check certificate chains or validity dates: FIKS IO trusts
 * the certificate the katalog publishes, and a virksomhetssertifikat's
 * chain is Maskinporten's business.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "bv_error.h"
#include "bv_util.h"
#include "fiks_error.h"
#include "fiks_identity.h"

/* A PEM key or certificate is a few KiB; anything bigger is not one. */
#define PEM_FILE_MAX (256 * 1024)
/* X.509's upper bound for a common name (RFC 5280, ub-common-name). */
#define CN_MAX 64

struct fiks_identity {
	EVP_PKEY *key;
	X509 *cert;
	char *cert_pem;
};

/*
 * Reads a whole small file into a NUL-terminated buffer. Returns 0; BV_EIO
 * (cannot open or read); FIKS_EKEY (larger than PEM_FILE_MAX); BV_ENOMEM.
 */
static int
read_small_file(const char *path, char **out, size_t *out_len)
{
	FILE *f = NULL;
	char *buf = NULL;
	size_t len = 0, got;
	int rc;

	f = fopen(path, "rb");
	if (!f) {
		rc = BV_EIO;
		goto out;
	}
	buf = bv_malloc(PEM_FILE_MAX + 1);
	if (!buf) {
		rc = BV_ENOMEM;
		goto out;
	}
	while ((got = fread(buf + len, 1, PEM_FILE_MAX + 1 - len, f)) > 0) {
		len += got;
		if (len > PEM_FILE_MAX)
			break;
	}
	if (ferror(f)) {
		rc = BV_EIO;
		goto out;
	}
	if (len > PEM_FILE_MAX) {
		rc = FIKS_EKEY;
		goto out;
	}
	buf[len] = '\0';
	*out = buf;
	*out_len = len;
	buf = NULL;
	rc = 0;
out:
	if (buf) {
		bv_wipe(buf, PEM_FILE_MAX + 1);
		bv_free(buf);
	}
	if (f)
		fclose(f);
	return rc;
}

/*
 * Parses the first PEM block of pem, which must be an unencrypted PKCS#8
 * "PRIVATE KEY": KS's clients take nothing else, and accepting PKCS#1 here
 * would let a key work with bvchat that fails with the official clients.
 */
static int
parse_pkcs8_rsa(const char *pem, size_t len, EVP_PKEY **out)
{
	BIO *bio = NULL;
	char *name = NULL, *header = NULL;
	unsigned char *der = NULL;
	const unsigned char *p;
	long der_len = 0;
	PKCS8_PRIV_KEY_INFO *p8 = NULL;
	EVP_PKEY *key = NULL;
	int rc = FIKS_EKEY;

	bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio) {
		rc = BV_ENOMEM;
		goto out;
	}
	if (!PEM_read_bio(bio, &name, &header, &der, &der_len))
		goto out;
	/* "RSA PRIVATE KEY" (PKCS#1) and "ENCRYPTED PRIVATE KEY" end here. */
	if (strcmp(name, PEM_STRING_PKCS8INF) != 0)
		goto out;
	p = der;
	p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, der_len);
	if (!p8 || p != der + der_len)
		goto out;
	key = EVP_PKCS82PKEY(p8);
	if (!key || !EVP_PKEY_is_a(key, "RSA"))
		goto out;
	*out = key;
	key = NULL;
	rc = 0;
out:
	EVP_PKEY_free(key);
	PKCS8_PRIV_KEY_INFO_free(p8);
	if (der) {
		OPENSSL_cleanse(der, (size_t)der_len);
		OPENSSL_free(der);
	}
	OPENSSL_free(name);
	OPENSSL_free(header);
	BIO_free(bio);
	return rc;
}

/* The certificate of pem; FIKS_EKEY unless it is one with an RSA key. */
static int
parse_rsa_cert(const char *pem, size_t len, X509 **out)
{
	BIO *bio;
	X509 *cert;
	EVP_PKEY *pub;

	bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio)
		return BV_ENOMEM;
	cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (!cert)
		return FIKS_EKEY;
	pub = X509_get0_pubkey(cert);
	if (!pub || !EVP_PKEY_is_a(pub, "RSA")) {
		X509_free(cert);
		return FIKS_EKEY;
	}
	*out = cert;
	return 0;
}

/* The certificate as PEM in a new NUL-terminated string. */
static int
cert_to_pem(X509 *cert, char **out)
{
	BIO *bio;
	char *data, *s;
	long n;

	bio = BIO_new(BIO_s_mem());
	if (!bio)
		return BV_ENOMEM;
	if (!PEM_write_bio_X509(bio, cert)) {
		BIO_free(bio);
		return BV_ENOMEM;
	}
	n = BIO_get_mem_data(bio, &data);
	s = n > 0 ? bv_strndup(data, (size_t)n) : NULL;
	BIO_free(bio);
	if (!s)
		return BV_ENOMEM;
	*out = s;
	return 0;
}

int
fiks_identity_load(const char *key_path, const char *cert_path,
		   struct fiks_identity **out)
{
	struct fiks_identity *id = NULL;
	char *key_pem = NULL, *cert_pem = NULL;
	size_t key_len = 0, cert_len = 0;
	int rc;

	if (!key_path || !cert_path || !out)
		return BV_EINVAL;
	id = bv_calloc(1, sizeof(*id));
	if (!id) {
		rc = BV_ENOMEM;
		goto out;
	}
	rc = read_small_file(key_path, &key_pem, &key_len);
	if (rc < 0)
		goto out;
	rc = read_small_file(cert_path, &cert_pem, &cert_len);
	if (rc < 0)
		goto out;
	rc = parse_pkcs8_rsa(key_pem, key_len, &id->key);
	if (rc < 0)
		goto out;
	rc = parse_rsa_cert(cert_pem, cert_len, &id->cert);
	if (rc < 0)
		goto out;
	/* A key that decrypts nothing sent to its certificate is useless. */
	if (X509_check_private_key(id->cert, id->key) != 1) {
		rc = FIKS_EKEY;
		goto out;
	}
	rc = cert_to_pem(id->cert, &id->cert_pem);
	if (rc < 0)
		goto out;
	*out = id;
	id = NULL;
out:
	if (key_pem) {
		bv_wipe(key_pem, key_len);
		bv_free(key_pem);
	}
	bv_free(cert_pem);
	fiks_identity_free(id);
	ERR_clear_error();
	return rc;
}

static int
make_rsa_key(int bits, EVP_PKEY **out)
{
	EVP_PKEY_CTX *ctx;
	EVP_PKEY *key = NULL;
	int ok;

	ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	if (!ctx)
		return BV_ENOMEM;
	ok = EVP_PKEY_keygen_init(ctx) == 1 &&
	     EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, bits) == 1 &&
	     EVP_PKEY_generate(ctx, &key) == 1;
	EVP_PKEY_CTX_free(ctx);
	if (!ok)
		return FIKS_EKEY;
	*out = key;
	return 0;
}

static int
add_ext(X509 *cert, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&v3, cert, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (!ext)
		return 0;
	ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok;
}

/*
 * A self-signed end-entity certificate: a random 127-bit serial (RFC 5280
 * wants it positive and unique), CN only, and key usages for both things
 * FIKS IO does with it: sign packages and receive encrypted keys.
 */
static int
make_cert(EVP_PKEY *key, const char *cn, int days, X509 **out)
{
	X509 *cert = NULL;
	X509_NAME *name = NULL;
	BIGNUM *bn = NULL;
	ASN1_INTEGER *serial = NULL;
	int rc = FIKS_EKEY;

	cert = X509_new();
	name = X509_NAME_new();
	bn = BN_new();
	if (!cert || !name || !bn) {
		rc = BV_ENOMEM;
		goto out;
	}
	if (!BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY))
		goto out;
	serial = BN_to_ASN1_INTEGER(bn, NULL);
	if (!serial)
		goto out;
	if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
					(const unsigned char *)cn, -1, -1, 0))
		goto out;
	if (!X509_set_version(cert, X509_VERSION_3) ||
	    !X509_set_serialNumber(cert, serial) ||
	    !X509_set_subject_name(cert, name) ||
	    !X509_set_issuer_name(cert, name) ||
	    !X509_gmtime_adj(X509_getm_notBefore(cert), 0) ||
	    !X509_time_adj_ex(X509_getm_notAfter(cert), days, 0, NULL) ||
	    !X509_set_pubkey(cert, key))
		goto out;
	if (!add_ext(cert, NID_basic_constraints, "critical,CA:FALSE") ||
	    !add_ext(cert, NID_key_usage,
		     "critical,digitalSignature,keyEncipherment") ||
	    !add_ext(cert, NID_subject_key_identifier, "hash"))
		goto out;
	if (X509_sign(cert, key, EVP_sha256()) <= 0)
		goto out;
	*out = cert;
	cert = NULL;
	rc = 0;
out:
	ASN1_INTEGER_free(serial);
	BN_free(bn);
	X509_NAME_free(name);
	X509_free(cert);
	return rc;
}

/*
 * Writes len bytes to path, created or truncated with mode; an existing
 * file's mode is set too, so a key never stays world-readable.
 */
static int
write_file(const char *path, const char *data, size_t len, mode_t mode)
{
	int fd;
	ssize_t n;
	size_t off = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		  mode);
	if (fd < 0)
		return BV_EIO;
	if (fchmod(fd, mode) != 0)
		goto fail;
	while (off < len) {
		n = write(fd, data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto fail;
		off += (size_t)n;
	}
	if (fsync(fd) != 0)
		goto fail;
	if (close(fd) != 0)
		return BV_EIO;
	return 0;
fail:
	close(fd);
	return BV_EIO;
}

int
fiks_identity_generate(const char *key_path, const char *cert_path,
		       const char *cn, int bits, int days)
{
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	BIO *kbio = NULL;
	char *cert_pem = NULL, *kdata;
	long klen;
	int rc;

	if (!key_path || !cert_path || !cn || !*cn || strlen(cn) > CN_MAX ||
	    bits < FIKS_IDENTITY_BITS_MIN || bits > FIKS_IDENTITY_BITS_MAX ||
	    days < 1 || days > FIKS_IDENTITY_DAYS_MAX)
		return BV_EINVAL;
	rc = make_rsa_key(bits, &key);
	if (rc < 0)
		goto out;
	rc = make_cert(key, cn, days, &cert);
	if (rc < 0)
		goto out;
	rc = cert_to_pem(cert, &cert_pem);
	if (rc < 0)
		goto out;
	kbio = BIO_new(BIO_s_mem());
	if (!kbio) {
		rc = BV_ENOMEM;
		goto out;
	}
	/* PKCS#8 "BEGIN PRIVATE KEY", the one form fiks_identity_load takes. */
	if (!PEM_write_bio_PKCS8PrivateKey(kbio, key, NULL, NULL, 0, NULL,
					   NULL)) {
		rc = FIKS_EKEY;
		goto out;
	}
	klen = BIO_get_mem_data(kbio, &kdata);
	rc = write_file(key_path, kdata, (size_t)klen, 0600);
	if (rc < 0)
		goto out;
	rc = write_file(cert_path, cert_pem, strlen(cert_pem), 0644);
out:
	if (kbio) {
		klen = BIO_get_mem_data(kbio, &kdata);
		if (klen > 0)
			OPENSSL_cleanse(kdata, (size_t)klen);
		BIO_free(kbio);
	}
	bv_free(cert_pem);
	X509_free(cert);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return rc;
}

const char *
fiks_identity_cert_pem(const struct fiks_identity *id)
{
	return id ? id->cert_pem : NULL;
}

EVP_PKEY *
fiks_identity_key(const struct fiks_identity *id)
{
	return id ? id->key : NULL;
}

X509 *
fiks_identity_cert(const struct fiks_identity *id)
{
	return id ? id->cert : NULL;
}

void
fiks_identity_free(struct fiks_identity *id)
{
	if (!id)
		return;
	EVP_PKEY_free(id->key);
	X509_free(id->cert);
	bv_free(id->cert_pem);
	bv_free(id);
}
