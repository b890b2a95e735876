/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_asice.c: unit tests of fiks/fiks_asice.c. Round trips and the exact
 * layout (checked with libzip and OpenSSL directly), then hostile packages
 * made by unpacking a good one, changing it and zipping it again, re-signed
 * with OpenSSL where the signature must stay valid so that the check under
 * test is the one that fires: tampered files and manifests, files missing
 * or unlisted, bad mimetype, unsafe and duplicate names, limits, zip bombs
 * (honest and lying about their size), DTDs, and a pinned certificate.
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

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <zip.h>

#include "bv_error.h"
#include "bv_util.h"
#include "fiks_asice.h"
#include "fiks_error.h"
#include "fiks_identity.h"
#include "two_identities.h"

static int
setup(void **state)
{
	(void)state;
	return two_identities_setup("asice");
}

static int
teardown(void **state)
{
	(void)state;
	return two_identities_teardown();
}

/* ---- a package as a list of entries, to take apart and remake ---- */

#define PKG_MAX 80

struct pkg {
	size_t n;
	char *name[PKG_MAX];
	unsigned char *data[PKG_MAX];
	size_t len[PKG_MAX];
	zip_int32_t method[PKG_MAX];
};

static void
pkg_unpack(const unsigned char *zip, size_t len, struct pkg *p)
{
	zip_error_t ze;
	zip_source_t *src;
	zip_t *za;
	zip_int64_t n, i;

	memset(p, 0, sizeof(*p));
	zip_error_init(&ze);
	src = zip_source_buffer_create(zip, len, 0, &ze);
	assert_non_null(src);
	za = zip_open_from_source(src, ZIP_RDONLY, &ze);
	assert_non_null(za);
	n = zip_get_num_entries(za, 0);
	assert_true(n > 0 && n <= PKG_MAX);
	for (i = 0; i < n; i++) {
		zip_stat_t st;
		zip_file_t *zf;

		assert_int_equal(zip_stat_index(za, (zip_uint64_t)i, 0, &st),
				 0);
		p->name[i] = strdup(st.name);
		p->len[i] = st.size;
		p->method[i] = st.comp_method;
		p->data[i] = malloc(st.size + 1);
		zf = zip_fopen_index(za, (zip_uint64_t)i, 0);
		assert_non_null(zf);
		assert_int_equal(zip_fread(zf, p->data[i], st.size),
				 (zip_int64_t)st.size);
		zip_fclose(zf);
	}
	p->n = (size_t)n;
	zip_discard(za);
	zip_error_fini(&ze);
}

static unsigned char *
pkg_pack(const struct pkg *p, size_t *out_len)
{
	zip_error_t ze;
	zip_source_t *src, *s;
	zip_t *za;
	zip_stat_t st;
	unsigned char *buf;
	size_t i;

	zip_error_init(&ze);
	src = zip_source_buffer_create(NULL, 0, 0, &ze);
	assert_non_null(src);
	za = zip_open_from_source(src, ZIP_TRUNCATE, &ze);
	assert_non_null(za);
	zip_source_keep(src);
	for (i = 0; i < p->n; i++) {
		zip_int64_t idx;

		s = zip_source_buffer(za, p->data[i], p->len[i], 0);
		assert_non_null(s);
		idx = zip_file_add(za, p->name[i], s, ZIP_FL_ENC_UTF_8);
		assert_true(idx >= 0);
		/* Level 1: the 100 MB bomb compresses in a blink. */
		assert_int_equal(zip_set_file_compression(za, (zip_uint64_t)idx,
							  p->method[i], 1),
				 0);
	}
	assert_int_equal(zip_close(za), 0);
	assert_int_equal(zip_source_stat(src, &st), 0);
	assert_int_equal(zip_source_open(src), 0);
	buf = malloc(st.size);
	assert_non_null(buf);
	assert_int_equal(zip_source_read(src, buf, st.size),
			 (zip_int64_t)st.size);
	zip_source_close(src);
	zip_source_free(src);
	zip_error_fini(&ze);
	*out_len = st.size;
	return buf;
}

static void
pkg_free(struct pkg *p)
{
	size_t i;

	for (i = 0; i < p->n; i++) {
		free(p->name[i]);
		free(p->data[i]);
	}
	p->n = 0;
}

static int
pkg_find(const struct pkg *p, const char *name)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		if (!strcmp(p->name[i], name))
			return (int)i;
	return -1;
}

/* The index of META-INF/signature-<uuid>.p7s. */
static int
pkg_sig(const struct pkg *p)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		if (!strncmp(p->name[i], "META-INF/signature-", 19))
			return (int)i;
	fail_msg("no signature");
	return -1;
}

static void
pkg_insert(struct pkg *p, size_t at, const char *name, const void *data,
	   size_t len, zip_int32_t method)
{
	assert_true(p->n < PKG_MAX && at <= p->n);
	memmove(&p->name[at + 1], &p->name[at],
		(p->n - at) * sizeof(p->name[0]));
	memmove(&p->data[at + 1], &p->data[at],
		(p->n - at) * sizeof(p->data[0]));
	memmove(&p->len[at + 1], &p->len[at], (p->n - at) * sizeof(p->len[0]));
	memmove(&p->method[at + 1], &p->method[at],
		(p->n - at) * sizeof(p->method[0]));
	p->name[at] = strdup(name);
	p->data[at] = malloc(len + 1);
	memcpy(p->data[at], data, len);
	p->len[at] = len;
	p->method[at] = method;
	p->n++;
}

static void
pkg_remove(struct pkg *p, int i)
{
	assert_true(i >= 0 && (size_t)i < p->n);
	free(p->name[i]);
	free(p->data[i]);
	p->n--;
	memmove(&p->name[i], &p->name[i + 1],
		(p->n - (size_t)i) * sizeof(p->name[0]));
	memmove(&p->data[i], &p->data[i + 1],
		(p->n - (size_t)i) * sizeof(p->data[0]));
	memmove(&p->len[i], &p->len[i + 1],
		(p->n - (size_t)i) * sizeof(p->len[0]));
	memmove(&p->method[i], &p->method[i + 1],
		(p->n - (size_t)i) * sizeof(p->method[0]));
}

static void
pkg_set(struct pkg *p, int i, const void *data, size_t len)
{
	assert_true(i >= 0 && (size_t)i < p->n);
	free(p->data[i]);
	p->data[i] = malloc(len + 1);
	memcpy(p->data[i], data, len);
	p->len[i] = len;
}

/* Replaces the first from in entry i's data with to (same or any length). */
static void
pkg_edit(struct pkg *p, int i, const char *from, const char *to)
{
	char *s = malloc(p->len[i] + 1), *hit, *out;
	size_t fl = strlen(from), tl = strlen(to), off;

	memcpy(s, p->data[i], p->len[i]);
	s[p->len[i]] = '\0';
	hit = strstr(s, from);
	assert_non_null(hit);
	off = (size_t)(hit - s);
	out = malloc(p->len[i] - fl + tl + 1);
	memcpy(out, s, off);
	memcpy(out + off, to, tl);
	memcpy(out + off + tl, hit + fl, p->len[i] - off - fl);
	pkg_set(p, i, out, p->len[i] - fl + tl);
	free(out);
	free(s);
}

/* Signs the manifest again as id would, with OpenSSL alone. */
static void
pkg_resign(struct pkg *p, const struct fiks_identity *id)
{
	int m = pkg_find(p, "META-INF/asicmanifest.xml");
	CMS_ContentInfo *cms;
	BIO *bio;
	unsigned char *der = NULL;
	int len;

	assert_true(m >= 0);
	bio = BIO_new_mem_buf(p->data[m], (int)p->len[m]);
	cms = CMS_sign(fiks_identity_cert(id), fiks_identity_key(id), NULL, bio,
		       CMS_DETACHED | CMS_BINARY);
	assert_non_null(cms);
	len = i2d_CMS_ContentInfo(cms, &der);
	assert_true(len > 0);
	pkg_set(p, pkg_sig(p), der, (size_t)len);
	OPENSSL_free(der);
	CMS_ContentInfo_free(cms);
	BIO_free(bio);
}

static int
pkg_read(const struct pkg *p, const char *pin, char *err, size_t errcap)
{
	struct fiks_asice *a = NULL;
	unsigned char *zip;
	size_t len;
	int rc;

	zip = pkg_pack(p, &len);
	rc = fiks_asice_read(zip, len, pin, &a, err, errcap);
	if (rc == 0)
		fiks_asice_free(a);
	else
		assert_null(a);
	free(zip);
	return rc;
}

/* ---- fixtures -------------------------------------------------------- */

#define SECRET "Barnet fortalte om"

static const char xml1[] = "<arkivmelding>" SECRET "</arkivmelding>";
static const char pdf1[] = "%PDF-1.7 vedlegg";

static const struct fiks_file sample[] = {
	{"arkivmelding.xml", "application/xml", (const unsigned char *)xml1,
	 sizeof(xml1) - 1},
	{"vedlegg.pdf", "application/pdf", (const unsigned char *)pdf1,
	 sizeof(pdf1) - 1},
};

static void
build_sample(struct pkg *p)
{
	unsigned char *zip = NULL;
	size_t len = 0;

	assert_int_equal(fiks_asice_build(sample, 2, ida, &zip, &len), 0);
	pkg_unpack(zip, len, p);
	free(zip);
}

/* ---- tests ----------------------------------------------------------- */

static void
test_roundtrip(void **state)
{
	static const char odd[] = "a&b<c>\"d'e \xc3\xb8\xc3\xa6\xc3\xa5.txt";
	struct fiks_file files[4];
	struct fiks_asice *a = NULL;
	const struct fiks_file *f;
	unsigned char *zip = NULL;
	size_t len = 0;
	char err[200];

	(void)state;
	memcpy(files, sample, sizeof(sample));
	files[2] = (struct fiks_file){odd, "text/plain; charset=utf-8",
				      (const unsigned char *)"odd", 3};
	files[3] = (struct fiks_file){"empty.bin", "application/octet-stream",
				      NULL, 0};
	assert_int_equal(fiks_asice_build(files, 4, ida, &zip, &len), 0);

	/* Pinned to A, and unpinned. */
	assert_int_equal(fiks_asice_read(zip, len, fiks_identity_cert_pem(ida),
					 &a, err, sizeof(err)),
			 0);
	assert_string_equal(err, "");
	assert_int_equal(fiks_asice_count(a), 4);
	f = fiks_asice_file(a, 0);
	assert_string_equal(f->name, "arkivmelding.xml");
	assert_string_equal(f->mime, "application/xml");
	assert_int_equal(f->len, sizeof(xml1) - 1);
	assert_memory_equal(f->data, xml1, f->len);
	assert_string_equal(fiks_asice_file(a, 1)->name, "vedlegg.pdf");
	f = fiks_asice_find(a, odd);
	assert_non_null(f);
	assert_ptr_equal(f, fiks_asice_file(a, 2));
	assert_string_equal(f->mime, "text/plain; charset=utf-8");
	assert_memory_equal(f->data, "odd", 3);
	assert_int_equal(fiks_asice_find(a, "empty.bin")->len, 0);
	assert_null(fiks_asice_find(a, "nope"));
	assert_null(fiks_asice_file(a, 4));
	assert_string_equal(fiks_asice_signer(a), "CN=asice A");
	fiks_asice_free(a);
	a = NULL;
	assert_int_equal(fiks_asice_read(zip, len, NULL, &a, NULL, 0), 0);
	assert_int_equal(fiks_asice_count(a), 4);
	fiks_asice_free(a);
	fiks_asice_free(NULL);
	free(zip);
}

/* The layout of FIKS.md 1.5, checked with libzip and OpenSSL directly. */
static void
test_layout(void **state)
{
	unsigned char *zip = NULL;
	size_t len = 0;
	zip_error_t ze;
	zip_source_t *src;
	zip_t *za;
	zip_stat_t st;
	struct pkg p;
	char *man;
	int m, s;
	CMS_ContentInfo *cms;
	const unsigned char *q;
	BIO *bio;
	X509_ALGOR *dig = NULL, *sig = NULL;
	const ASN1_OBJECT *obj;

	(void)state;
	assert_int_equal(fiks_asice_build(sample, 2, ida, &zip, &len), 0);
	zip_error_init(&ze);
	src = zip_source_buffer_create(zip, len, 0, &ze);
	za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
	assert_non_null(za);
	assert_int_equal(zip_get_num_entries(za, 0), 6);
	assert_int_equal(zip_stat_index(za, 0, 0, &st), 0);
	assert_string_equal(st.name, "mimetype");
	assert_int_equal(st.comp_method, ZIP_CM_STORE);
	/* ASiC wants no extra field on mimetype. */
	assert_int_equal(zip_file_extra_fields_count(za, 0, ZIP_FL_LOCAL), 0);
	zip_discard(za);
	zip_error_fini(&ze);
	/* The local header of entry 0 starts the file, name and data next. */
	assert_memory_equal(zip + 30, "mimetype", 8);
	assert_memory_equal(zip + 38, "application/vnd.etsi.asic-e+zip", 31);

	pkg_unpack(zip, len, &p);
	assert_string_equal(p.name[1], "arkivmelding.xml");
	assert_string_equal(p.name[2], "vedlegg.pdf");
	assert_string_equal(p.name[3], "META-INF/asicmanifest.xml");
	assert_int_equal(strncmp(p.name[4], "META-INF/signature-", 19), 0);
	assert_int_equal(strlen(p.name[4]), 19 + 36 + 4);
	assert_string_equal(p.name[4] + 19 + 36, ".p7s");
	{
		char uuid[37];

		memcpy(uuid, p.name[4] + 19, 36);
		uuid[36] = '\0';
		assert_true(bv_uuid_valid(uuid));
	}
	assert_string_equal(p.name[5], "META-INF/manifest.xml");
	assert_non_null(strstr((char *)p.data[5],
			       "urn:oasis:names:tc:"
			       "opendocument:xmlns:manifest:1.0"));

	m = 3;
	s = 4;
	man = strndup((char *)p.data[m], p.len[m]);
	assert_non_null(strstr(man, "xmlns:asic=\"http://uri.etsi.org/2918/"
				    "v1.2.1#\""));
	assert_non_null(strstr(man, "<asic:ASiCManifest"));
	assert_non_null(strstr(man, "MimeType=\"application/x-pkcs7-"
				    "signature\""));
	assert_non_null(strstr(man, p.name[s]));
	assert_non_null(strstr(
		man, "<asic:DataObjectReference URI=\"arkivmelding.xml\" "
		     "MimeType=\"application/xml\" Rootfile=\"true\">"));
	assert_non_null(strstr(man, "<asic:DataObjectReference "
				    "URI=\"vedlegg.pdf\" "
				    "MimeType=\"application/pdf\">"));
	assert_non_null(strstr(man, "<ds:DigestMethod Algorithm=\"http://"
				    "www.w3.org/2001/04/xmlenc#sha256\"/>"));
	{
		unsigned char d[32];
		char *b64, want[80];

		SHA256((const unsigned char *)xml1, sizeof(xml1) - 1, d);
		b64 = bv_b64_encode(d, 32);
		snprintf(want, sizeof(want), "<ds:DigestValue>%s<", b64);
		assert_non_null(strstr(man, want));
		bv_free(b64);
	}

	/* Detached, DER, SHA-256 with RSA, signer certificate included. */
	q = p.data[s];
	cms = d2i_CMS_ContentInfo(NULL, &q, (long)p.len[s]);
	assert_non_null(cms);
	assert_ptr_equal(q, p.data[s] + p.len[s]);
	assert_int_equal(OBJ_obj2nid(CMS_get0_type(cms)), NID_pkcs7_signed);
	assert_int_equal(CMS_is_detached(cms), 1);
	CMS_SignerInfo_get0_algs(
		sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(cms), 0), NULL,
		NULL, &dig, &sig);
	X509_ALGOR_get0(&obj, NULL, NULL, dig);
	assert_int_equal(OBJ_obj2nid(obj), NID_sha256);
	X509_ALGOR_get0(&obj, NULL, NULL, sig);
	assert_true(OBJ_obj2nid(obj) == NID_rsaEncryption ||
		    OBJ_obj2nid(obj) == NID_sha256WithRSAEncryption);
	{
		STACK_OF(X509) *certs = CMS_get1_certs(cms);

		assert_int_equal(sk_X509_num(certs), 1);
		assert_int_equal(X509_cmp(sk_X509_value(certs, 0),
					  fiks_identity_cert(ida)),
				 0);
		sk_X509_pop_free(certs, X509_free);
	}
	bio = BIO_new_mem_buf(p.data[m], (int)p.len[m]);
	assert_int_equal(CMS_verify(cms, NULL, NULL, bio, NULL,
				    CMS_BINARY | CMS_NO_SIGNER_CERT_VERIFY),
			 1);
	BIO_free(bio);
	CMS_ContentInfo_free(cms);
	free(man);
	pkg_free(&p);
	free(zip);
}

static void
test_tampered_file(void **state)
{
	struct pkg p;
	char err[200];
	int i;

	(void)state;
	build_sample(&p);
	i = pkg_find(&p, "vedlegg.pdf");
	p.data[i][3] ^= 1;
	assert_int_equal(pkg_read(&p, NULL, err, sizeof(err)), FIKS_EDIGEST);
	assert_non_null(strstr(err, "vedlegg.pdf"));
	pkg_free(&p);

	build_sample(&p);
	pkg_edit(&p, 1, SECRET, "Barnet fortalte at");
	assert_int_equal(pkg_read(&p, NULL, err, sizeof(err)), FIKS_EDIGEST);
	assert_non_null(strstr(err, "arkivmelding.xml"));
	assert_null(strstr(err, "Barnet")); /* names, never contents */
	pkg_free(&p);
}

static void
test_tampered_manifest(void **state)
{
	struct pkg p;
	char err[200];

	(void)state;
	build_sample(&p);
	pkg_edit(&p, pkg_find(&p, "META-INF/asicmanifest.xml"),
		 "application/pdf", "application/pdx");
	assert_int_equal(pkg_read(&p, NULL, err, sizeof(err)), FIKS_ESIGNATURE);
	assert_non_null(strstr(err, "META-INF/signature-"));
	pkg_free(&p);

	/* A file replaced with another: its digest no longer matches. */
	build_sample(&p);
	pkg_set(&p, 2, "%PDF-1.7 other", 14);
	assert_int_equal(pkg_read(&p, NULL, err, sizeof(err)), FIKS_EDIGEST);
	pkg_free(&p);

	/* A signature byte flipped. */
	build_sample(&p);
	p.data[pkg_sig(&p)][p.len[pkg_sig(&p)] - 5] ^= 1;
	assert_int_equal(pkg_read(&p, NULL, err, sizeof(err)), FIKS_ESIGNATURE);
	pkg_free(&p);

	/* Not CMS at all; and a signature file that is missing. */
	build_sample(&p);
	pkg_set(&p, pkg_sig(&p), "junk", 4);
	assert_int_equal(pkg_read(&p, NULL, err, sizeof(err)), FIKS_ESIGNATURE);
	pkg_remove(&p, pkg_sig(&p));
	assert_int_equal(pkg_read(&p, NULL, err, sizeof(err)), FIKS_EZIP);
	assert_non_null(strstr(err, "META-INF/signature-"));
	pkg_free(&p);
}

static void
test_pinned(void **state)
{
	struct pkg p;
	char err[200];

	(void)state;
	build_sample(&p);
	assert_int_equal(
		pkg_read(&p, fiks_identity_cert_pem(ida), err, sizeof(err)), 0);
	assert_int_equal(
		pkg_read(&p, fiks_identity_cert_pem(idb), err, sizeof(err)),
		FIKS_ESIGNATURE);
	/* Signed again by B: valid, but not by the pinned A. */
	pkg_resign(&p, idb);
	assert_int_equal(pkg_read(&p, NULL, err, sizeof(err)), 0);
	assert_int_equal(
		pkg_read(&p, fiks_identity_cert_pem(ida), err, sizeof(err)),
		FIKS_ESIGNATURE);
	assert_int_equal(
		pkg_read(&p, fiks_identity_cert_pem(idb), err, sizeof(err)), 0);
	assert_int_equal(pkg_read(&p, "not a certificate", err, sizeof(err)),
			 BV_EINVAL);
	pkg_free(&p);
}

static void
test_manifest_and_zip_disagree(void **state)
{
	struct pkg p;
	char err[200];

	(void)state;
	build_sample(&p);
	pkg_insert(&p, 3, "extra.txt", "x", 1, ZIP_CM_DEFLATE);
	assert_int_equal(pkg_read(&p, NULL, err, sizeof(err)), FIKS_EMANIFEST);
	assert_non_null(strstr(err, "extra.txt"));
	pkg_free(&p);

	build_sample(&p);
	pkg_remove(&p, pkg_find(&p, "vedlegg.pdf"));
	assert_int_equal(pkg_read(&p, NULL, err, sizeof(err)), FIKS_EMANIFEST);
	assert_non_null(strstr(err, "vedlegg.pdf"));
	pkg_free(&p);

	/* Manifest missing; manifest listing a META-INF file, re-signed. */
	build_sample(&p);
	pkg_remove(&p, pkg_find(&p, "META-INF/asicmanifest.xml"));
	assert_int_equal(pkg_read(&p, NULL, err, sizeof(err)), FIKS_EMANIFEST);
	pkg_free(&p);
	build_sample(&p);
	pkg_edit(&p, 3, "URI=\"vedlegg.pdf\"", "URI=\"../vedlegg.pdf\"");
	pkg_resign(&p, ida);
	assert_int_equal(pkg_read(&p, NULL, err, sizeof(err)), FIKS_EMANIFEST);
	pkg_free(&p);
	build_sample(&p);
	pkg_edit(&p, 3, "URI=\"vedlegg.pdf\"", "URI=\"arkivmelding.xml\"");
	pkg_resign(&p, ida);
	assert_int_equal(pkg_read(&p, NULL, err, sizeof(err)), FIKS_EMANIFEST);
	pkg_free(&p);
}

/* What Java (difi) writes and KS's readers accept, re-signed. */
static void
test_manifest_dialects(void **state)
{
	struct pkg p;
	struct fiks_asice *a = NULL;
	unsigned char *zip;
	size_t len;
	char err[200];

	(void)state;
	build_sample(&p);
	pkg_edit(&p, 3, "http://uri.etsi.org/2918/v1.2.1#",
		 "http://uri.etsi.org/02918/v1.2.1#");
	pkg_edit(&p, 3, "http://www.w3.org/2001/04/xmlenc#sha256",
		 "http://www.w3.org/2000/09/xmldsig#sha256");
	/* Root file flag moved to the second file: it becomes file 0. */
	pkg_edit(&p, 3, " Rootfile=\"true\"", "");
	pkg_edit(&p, 3, "MimeType=\"application/pdf\"",
		 "MimeType=\"application/pdf\" Rootfile=\"true\"");
	pkg_resign(&p, ida);
	zip = pkg_pack(&p, &len);
	assert_int_equal(fiks_asice_read(zip, len, NULL, &a, err, sizeof(err)),
			 0);
	assert_string_equal(fiks_asice_file(a, 0)->name, "vedlegg.pdf");
	assert_string_equal(fiks_asice_file(a, 1)->name, "arkivmelding.xml");
	fiks_asice_free(a);
	free(zip);

	/* An unknown digest method and an unknown namespace are refused. */
	pkg_edit(&p, 3, "xmldsig#sha256", "xmldsig#sha1");
	pkg_resign(&p, ida);
	assert_int_equal(pkg_read(&p, NULL, err, sizeof(err)), FIKS_EMANIFEST);
	pkg_free(&p);
	build_sample(&p);
	pkg_edit(&p, 3, "uri.etsi.org/2918", "uri.etsi.org/9999");
	pkg_resign(&p, ida);
	assert_int_equal(pkg_read(&p, NULL, err, sizeof(err)), FIKS_EMANIFEST);
	pkg_free(&p);
}

static void
test_manifest_dtd(void **state)
{
	struct pkg p;
	char err[200];

	(void)state;
	build_sample(&p);
	pkg_edit(&p, 3, "?>\n",
		 "?>\n<!DOCTYPE a [<!ENTITY e \"vedlegg.pdf\">]>\n");
	pkg_edit(&p, 3, "URI=\"vedlegg.pdf\"", "URI=\"&e;\"");
	pkg_resign(&p, ida);
	assert_int_equal(pkg_read(&p, NULL, err, sizeof(err)), FIKS_EMANIFEST);
	assert_non_null(strstr(err, "DTD"));
	pkg_free(&p);

	build_sample(&p);
	pkg_edit(&p, 3, "</asic:ASiCManifest>", "");
	pkg_resign(&p, ida);
	assert_int_equal(pkg_read(&p, NULL, err, sizeof(err)), FIKS_EMANIFEST);
	pkg_free(&p);
}

static void
test_mimetype(void **state)
{
	struct pkg p;
	char err[200];

	(void)state;
	build_sample(&p);
	pkg_set(&p, 0, "application/zip", 15);
	assert_int_equal(pkg_read(&p, NULL, err, sizeof(err)), FIKS_EZIP);
	assert_non_null(strstr(err, "mimetype"));
	pkg_free(&p);

	build_sample(&p);
	p.method[0] = ZIP_CM_DEFLATE;
	assert_int_equal(pkg_read(&p, NULL, err, sizeof(err)), FIKS_EZIP);
	pkg_free(&p);

	build_sample(&p);
	pkg_insert(&p, 0, "vedlegg2.pdf", "x", 1, ZIP_CM_STORE);
	assert_int_equal(pkg_read(&p, NULL, err, sizeof(err)), FIKS_EZIP);
	pkg_remove(&p, 0);
	pkg_remove(&p, 0);
	assert_int_equal(pkg_read(&p, NULL, err, sizeof(err)), FIKS_EZIP);
	pkg_free(&p);
}

/*
 * Renames entry from to to (same length) in its local header and central
 * directory record, for names libzip would not write.
 */
static void
patch_name(unsigned char *zip, size_t len, const char *from, const char *to)
{
	size_t i, nl = strlen(from);
	int hits = 0;

	assert_int_equal(strlen(to), nl);
	for (i = 0; i + 46 + nl <= len; i++) {
		if (!memcmp(zip + i, "PK\3\4", 4) && zip[i + 26] == nl &&
		    zip[i + 27] == 0 && !memcmp(zip + i + 30, from, nl)) {
			memcpy(zip + i + 30, to, nl);
			hits++;
		} else if (!memcmp(zip + i, "PK\1\2", 4) && zip[i + 28] == nl &&
			   zip[i + 29] == 0 &&
			   !memcmp(zip + i + 46, from, nl)) {
			memcpy(zip + i + 46, to, nl);
			hits++;
		}
	}
	assert_int_equal(hits, 2);
}

static void
test_unsafe_names(void **state)
{
	static const char *const bad[] = {
		"../evil.txt",
		"/etc/passwd",
		"dir\\evil.txt",
		"a/b.txt",
		"..",
		"META-INF/../x.txt",
		"META-INF/a/b.xml",
		"C:evil.txt",
		"bell\a.txt",
		"bad\xff.txt",
		"over\xc0\xaf.txt",
		"nul\x01.txt",
	};
	struct pkg p;
	struct fiks_asice *a = NULL;
	unsigned char *zip;
	size_t len, i;
	char err[200], placeholder[64];

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		build_sample(&p);
		memset(placeholder, 'q', strlen(bad[i]));
		placeholder[strlen(bad[i])] = '\0';
		pkg_insert(&p, 2, placeholder, "x", 1, ZIP_CM_DEFLATE);
		zip = pkg_pack(&p, &len);
		patch_name(zip, len, placeholder, bad[i]);
		assert_int_equal(
			fiks_asice_read(zip, len, NULL, &a, err, sizeof(err)),
			FIKS_EZIP);
		assert_non_null(strstr(err, "unsafe"));
		assert_null(strchr(err, '\a'));
		free(zip);
		pkg_free(&p);
	}
}

static void
test_duplicate_names(void **state)
{
	struct pkg p;
	struct fiks_asice *a = NULL;
	unsigned char *zip;
	size_t len;
	char err[200];

	(void)state;
	/* libzip will not write a duplicate: write dupe2, patch to dupe1. */
	build_sample(&p);
	pkg_insert(&p, 2, "vedlegg.pdx", "x", 1, ZIP_CM_DEFLATE);
	zip = pkg_pack(&p, &len);
	patch_name(zip, len, "vedlegg.pdx", "vedlegg.pdf");
	assert_int_equal(fiks_asice_read(zip, len, NULL, &a, err, sizeof(err)),
			 FIKS_EZIP);
	/* libzip itself calls this inconsistent; either way, not a zip. */
	assert_non_null(strstr(err, "not a zip"));
	free(zip);
	pkg_free(&p);

	/* Listed twice in a (re-signed) manifest. */
	build_sample(&p);
	pkg_edit(&p, 3, "URI=\"vedlegg.pdf\"", "URI=\"arkivmelding.xml\"");
	pkg_resign(&p, ida);
	pkg_remove(&p, 2);
	assert_int_equal(pkg_read(&p, NULL, err, sizeof(err)), FIKS_EMANIFEST);
	assert_non_null(strstr(err, "twice"));
	pkg_free(&p);
}

static void
test_limits(void **state)
{
	struct pkg p;
	char err[200], name[300];
	size_t i;

	(void)state;
	/* One payload file too many. */
	build_sample(&p);
	for (i = 2; i < FIKS_ASICE_FILES_MAX + 1; i++) {
		snprintf(name, sizeof(name), "f%zu.txt", i);
		pkg_insert(&p, 1, name, "x", 1, ZIP_CM_DEFLATE);
	}
	assert_int_equal(pkg_read(&p, NULL, err, sizeof(err)), FIKS_ELIMIT);
	pkg_remove(&p, 1);
	/* At the limit, the count passes; unlisted files fail later. */
	assert_int_equal(pkg_read(&p, NULL, err, sizeof(err)), FIKS_EMANIFEST);
	pkg_free(&p);

	/* A name one byte too long. */
	build_sample(&p);
	memset(name, 'n', FIKS_ASICE_NAME_MAX + 1);
	name[FIKS_ASICE_NAME_MAX + 1] = '\0';
	pkg_insert(&p, 1, name, "x", 1, ZIP_CM_DEFLATE);
	assert_int_equal(pkg_read(&p, NULL, err, sizeof(err)), FIKS_ELIMIT);
	pkg_free(&p);

	/* A short error buffer is truncated, not overrun. */
	build_sample(&p);
	pkg_set(&p, 0, "application/zip", 15);
	memset(err, 'Z', sizeof(err));
	assert_int_equal(pkg_read(&p, NULL, err, 8), FIKS_EZIP);
	assert_int_equal(strlen(err), 7);
	assert_int_equal(err[8], 'Z');
	pkg_free(&p);

	/* Not a zip; too large to be one we take. */
	{
		struct fiks_asice *a = NULL;

		assert_int_equal(
			fiks_asice_read((const unsigned char *)"PK\3\4", 4,
					NULL, &a, err, sizeof(err)),
			FIKS_EZIP);
		assert_int_equal(fiks_asice_read((const unsigned char *)"", 0,
						 NULL, &a, err, sizeof(err)),
				 FIKS_EZIP);
		assert_int_equal(
			fiks_asice_read(NULL, 0, NULL, &a, err, sizeof(err)),
			BV_EINVAL);
		assert_null(a);
	}
}

/*
 * Sets the uncompressed size of entry name to size in both its local
 * header (offset 22) and its central directory record (offset 24).
 */
static void
patch_size(unsigned char *zip, size_t len, const char *name, uint32_t size)
{
	size_t i, nl = strlen(name);
	int hits = 0;
	unsigned char le[4] = {size & 0xff, (size >> 8) & 0xff,
			       (size >> 16) & 0xff, (size >> 24) & 0xff};

	for (i = 0; i + 46 + nl <= len; i++) {
		if (!memcmp(zip + i, "PK\3\4", 4) &&
		    zip[i + 26] == (nl & 0xff) && zip[i + 27] == 0 &&
		    !memcmp(zip + i + 30, name, nl)) {
			memcpy(zip + i + 22, le, 4);
			hits++;
		} else if (!memcmp(zip + i, "PK\1\2", 4) &&
			   zip[i + 28] == (nl & 0xff) && zip[i + 29] == 0 &&
			   !memcmp(zip + i + 46, name, nl)) {
			memcpy(zip + i + 24, le, 4);
			hits++;
		}
	}
	assert_int_equal(hits, 2);
}

static void
test_zip_bomb(void **state)
{
	const size_t big = 100u << 20;
	unsigned char *zeros, *zip;
	struct fiks_file f[1] = {{"bomb.bin", "application/octet-stream",
				  (const unsigned char *)"", 0}};
	struct fiks_asice *a = NULL;
	struct pkg p;
	size_t len;
	char err[200];
	unsigned char *small = NULL;
	size_t small_len;

	(void)state;
	zeros = calloc(1, big);
	assert_non_null(zeros);
	/* A real package with a small bomb.bin, then the bomb swapped in. */
	f[0].data = zeros;
	f[0].len = 1000;
	assert_int_equal(fiks_asice_build(f, 1, ida, &small, &small_len), 0);
	pkg_unpack(small, small_len, &p);
	free(small);
	pkg_set(&p, 1, zeros, big);
	free(zeros);
	zip = pkg_pack(&p, &len);
	assert_true(len < big / 100); /* 100 MB of zeros deflate to ~100 KB */

	/* Honest about its size: refused from the directory alone. */
	assert_int_equal(fiks_asice_read(zip, len, NULL, &a, err, sizeof(err)),
			 FIKS_ELIMIT);
	assert_non_null(strstr(err, "larger than"));

	/*
	 * Lying (1000 bytes, which the manifest's digest also says): at most
	 * 1001 bytes are inflated before the lie shows.
	 */
	patch_size(zip, len, "bomb.bin", 1000);
	assert_int_equal(fiks_asice_read(zip, len, NULL, &a, err, sizeof(err)),
			 FIKS_EZIP);
	assert_non_null(strstr(err, "bomb.bin"));
	assert_null(a);
	free(zip);
	pkg_free(&p);
}

static void
test_build_invalid(void **state)
{
	static const char *const bad[] = {"",	       "../x",	   "a/b",
					  "a\\b",      "mimetype", "..",
					  "tab\t.txt", "c:x",	   "\xc3"};
	struct fiks_file f[FIKS_ASICE_FILES_MAX + 1];
	unsigned char *zip = NULL, *huge;
	size_t len = 0, i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		f[0] = sample[0];
		f[0].name = bad[i];
		assert_int_equal(fiks_asice_build(f, 1, ida, &zip, &len),
				 BV_EINVAL);
	}
	f[0] = sample[0];
	f[0].mime = "no slash";
	assert_int_equal(fiks_asice_build(f, 1, ida, &zip, &len), BV_EINVAL);
	f[0] = sample[0];
	f[1] = sample[0];
	assert_int_equal(fiks_asice_build(f, 2, ida, &zip, &len), BV_EINVAL);
	assert_int_equal(fiks_asice_build(f, 0, ida, &zip, &len), BV_EINVAL);
	assert_int_equal(fiks_asice_build(f, 1, NULL, &zip, &len), BV_EINVAL);
	for (i = 0; i < FIKS_ASICE_FILES_MAX + 1; i++) {
		char *name = malloc(16);

		snprintf(name, 16, "f%zu", i);
		f[i] = sample[0];
		f[i].name = name;
	}
	assert_int_equal(
		fiks_asice_build(f, FIKS_ASICE_FILES_MAX + 1, ida, &zip, &len),
		BV_EINVAL);
	for (i = 0; i < FIKS_ASICE_FILES_MAX + 1; i++)
		free((char *)f[i].name);

	/* Two halves of the limit and one byte: never read, so calloc. */
	huge = calloc(1, FIKS_ASICE_BYTES_MAX / 2 + 1);
	assert_non_null(huge);
	f[0] = sample[0];
	f[1] = sample[1];
	f[0].data = f[1].data = huge;
	f[0].len = f[1].len = FIKS_ASICE_BYTES_MAX / 2;
	f[1].len++;
	assert_int_equal(fiks_asice_build(f, 2, ida, &zip, &len), FIKS_ELIMIT);
	free(huge);
	assert_null(zip);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_tampered_file),
		cmocka_unit_test(test_tampered_manifest),
		cmocka_unit_test(test_pinned),
		cmocka_unit_test(test_manifest_and_zip_disagree),
		cmocka_unit_test(test_manifest_dialects),
		cmocka_unit_test(test_manifest_dtd),
		cmocka_unit_test(test_mimetype),
		cmocka_unit_test(test_unsafe_names),
		cmocka_unit_test(test_duplicate_names),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_zip_bomb),
		cmocka_unit_test(test_build_invalid),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
