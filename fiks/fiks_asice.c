/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * fiks_asice.c: builds and reads ASiC-E packages (docs/fiks.md, "Packages")
 * in memory with libzip, libxml2 and OpenSSL's CMS. The reader treats every
 * byte as hostile: limits come from the zip's directory before anything is
 * inflated and are enforced again while reading, names are checked before
 * use, and nothing a manifest says is believed before its signature is.
 * Certificate chains are not checked here: the caller pins the sender's
 * certificate or decides what the signer's subject is worth.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <zip.h>

#include "bv_error.h"
#include "bv_util.h"
#include "fiks_asice.h"
#include "fiks_cms.h"
#include "fiks_error.h"

#define ASICE_MIMETYPE "application/vnd.etsi.asic-e+zip"
#define SIG_MIMETYPE   "application/x-pkcs7-signature"
#define MANIFEST_NAME  "META-INF/asicmanifest.xml"
#define ODF_NAME       "META-INF/manifest.xml"
#define META_DIR       "META-INF/"
#define META_DIR_LEN   9
/* What .NET writes; difi/Java writes 02918. Both readers take both. */
#define NS_ASIC "http://uri.etsi.org/2918/v1.2.1#"
#define NS_DS	"http://www.w3.org/2000/09/xmldsig#"
#define NS_ODF	"urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"
/* The URI difi/asic and fiks-asice-dotnet both write for SHA-256. */
#define DIGEST_SHA256 "http://www.w3.org/2001/04/xmlenc#sha256"

/* A manifest, signature or ODF manifest: KiB in practice. */
#define META_PART_MAX (1u << 20)
/* Entries beyond the payload: mimetype, META-INF/ and its files. */
#define ENTRIES_MAX (FIKS_ASICE_FILES_MAX + 8)
/* Longest MIME type we write or keep (RFC 6838 allows 127 + 1 + 127). */
#define MIME_MAX 255
/* How much of an offending name an error message shows. */
#define ERR_NAME_MAX 60

/* ---- names ---------------------------------------------------------- */

/* 1 when s (len bytes) is well-formed UTF-8 without overlongs. */
static int
utf8_ok(const unsigned char *s, size_t len)
{
	size_t i = 0, k, n;
	unsigned int c;

	while (i < len) {
		c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 1;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3;
		else
			return 0;
		if (len - i <= n)
			return 0;
		c &= 0x3fu >> n;
		for (k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			c = (c << 6) | (s[i + k] & 0x3fu);
		}
		if ((n == 2 && c < 0x800) || (n == 3 && c < 0x10000) ||
		    (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
			return 0;
		i += n + 1;
	}
	return 1;
}

/*
 * 1 when name is a payload file name we write and accept: 1 …
 * FIKS_ASICE_NAME_MAX bytes of UTF-8 without control characters, no path
 * ("/", "\\", ":" for drive letters), not "." or "..", and not "mimetype",
 * which would collide with the package's own first entry.
 */
static int
payload_name_ok(const char *name)
{
	size_t len = strlen(name), i;

	if (len == 0 || len > FIKS_ASICE_NAME_MAX || !strcmp(name, ".") ||
	    !strcmp(name, "..") || !strcmp(name, "mimetype"))
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c < 0x20 || c == 0x7f || c == '/' || c == '\\' || c == ':')
			return 0;
	}
	return utf8_ok((const unsigned char *)name, len);
}

/* 1 when mime is a printable ASCII MIME type ("text/plain; charset=…"). */
static int
mime_ok(const char *mime)
{
	size_t len = strlen(mime), i;

	if (len == 0 || len > MIME_MAX || !strchr(mime, '/') || mime[0] == ' ')
		return 0;
	for (i = 0; i < len; i++)
		if (mime[i] < 0x20 || mime[i] >= 0x7f)
			return 0;
	return 1;
}

/*
 * Copies the start of an untrusted name into out for an error message,
 * printable ASCII only, so a name cannot forge log lines.
 */
static void
show_name(char out[ERR_NAME_MAX + 4], const char *name)
{
	size_t i;

	for (i = 0; name[i] && i < ERR_NAME_MAX; i++)
		out[i] = (name[i] >= 0x20 && name[i] < 0x7f) ? name[i] : '?';
	if (name[i])
		out[i++] = '.', out[i++] = '.', out[i++] = '.';
	out[i] = '\0';
}

static void set_err(char *err, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
set_err(char *err, size_t cap, const char *fmt, ...)
{
	va_list ap;

	if (!err || !cap)
		return;
	va_start(ap, fmt);
	vsnprintf(err, cap, fmt, ap);
	va_end(ap);
}

/* ---- building ------------------------------------------------------- */

static int
digest_b64(const EVP_MD *md, const unsigned char *data, size_t len, char **out)
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dlen;

	if (EVP_Digest(len ? (const void *)data : "", len, d, &dlen, md,
		       NULL) != 1)
		return BV_ENOMEM;
	*out = bv_b64_encode(d, dlen);
	return *out ? 0 : BV_ENOMEM;
}

/* Serialises doc as UTF-8 with an XML declaration into *out. */
static int
dump_xml(xmlDocPtr doc, xmlChar **out, int *out_len)
{
	*out = NULL;
	xmlDocDumpFormatMemoryEnc(doc, out, out_len, "UTF-8", 1);
	return *out && *out_len > 0 ? 0 : BV_ENOMEM;
}

/*
 * The ASiCManifest. libxml2 escapes attribute values on output (xmlNewProp
 * takes them raw, unlike xmlNewDocProp), so a name with & or " stays a
 * name; names were checked for control characters before.
 */
static int
build_manifest(const struct fiks_file *files, size_t n, char *const *b64,
	       const char *sig_name, xmlChar **out, int *out_len)
{
	xmlDocPtr doc;
	xmlNodePtr root, node, ref;
	xmlNsPtr asic, ds;
	size_t i;
	int ok, rc;

	doc = xmlNewDoc((const xmlChar *)"1.0");
	if (!doc)
		return BV_ENOMEM;
	doc->standalone = 1;
	root = xmlNewDocNode(doc, NULL, (const xmlChar *)"ASiCManifest", NULL);
	ok = root != NULL;
	if (ok) {
		xmlDocSetRootElement(doc, root);
		asic = xmlNewNs(root, (const xmlChar *)NS_ASIC,
				(const xmlChar *)"asic");
		ds = xmlNewNs(root, (const xmlChar *)NS_DS,
			      (const xmlChar *)"ds");
		ok = asic && ds;
	}
	if (ok) {
		xmlSetNs(root, asic);
		node = xmlNewChild(root, asic, (const xmlChar *)"SigReference",
				   NULL);
		ok = node &&
		     xmlNewProp(node, (const xmlChar *)"URI",
				(const xmlChar *)sig_name) &&
		     xmlNewProp(node, (const xmlChar *)"MimeType",
				(const xmlChar *)SIG_MIMETYPE);
	}
	for (i = 0; ok && i < n; i++) {
		ref = xmlNewChild(root, asic,
				  (const xmlChar *)"DataObjectReference", NULL);
		ok = ref &&
		     xmlNewProp(ref, (const xmlChar *)"URI",
				(const xmlChar *)files[i].name) &&
		     xmlNewProp(ref, (const xmlChar *)"MimeType",
				(const xmlChar *)files[i].mime);
		if (ok && i == 0)
			ok = xmlNewProp(ref, (const xmlChar *)"Rootfile",
					(const xmlChar *)"true") != NULL;
		if (ok) {
			node = xmlNewChild(
				ref, ds, (const xmlChar *)"DigestMethod", NULL);
			ok = node &&
			     xmlNewProp(node, (const xmlChar *)"Algorithm",
					(const xmlChar *)DIGEST_SHA256);
		}
		if (ok)
			ok = xmlNewTextChild(ref, ds,
					     (const xmlChar *)"DigestValue",
					     (const xmlChar *)b64[i]) != NULL;
	}
	rc = ok ? dump_xml(doc, out, out_len) : BV_ENOMEM;
	xmlFreeDoc(doc);
	return rc;
}

/* The OASIS ODF manifest difi writes last; readers ignore it. */
static int
build_odf(const struct fiks_file *files, size_t n, xmlChar **out, int *out_len)
{
	xmlDocPtr doc;
	xmlNodePtr root, node;
	xmlNsPtr ns = NULL;
	size_t i;
	int ok, rc;

	doc = xmlNewDoc((const xmlChar *)"1.0");
	if (!doc)
		return BV_ENOMEM;
	doc->standalone = 1;
	root = xmlNewDocNode(doc, NULL, (const xmlChar *)"manifest", NULL);
	ok = root != NULL;
	if (ok) {
		xmlDocSetRootElement(doc, root);
		ns = xmlNewNs(root, (const xmlChar *)NS_ODF,
			      (const xmlChar *)"manifest");
		ok = ns != NULL;
	}
	if (ok)
		xmlSetNs(root, ns);
	for (i = 0; ok && i <= n; i++) {
		node = xmlNewChild(root, ns, (const xmlChar *)"file-entry",
				   NULL);
		ok = node &&
		     xmlNewNsProp(
			     node, ns, (const xmlChar *)"full-path",
			     (const xmlChar *)(i ? files[i - 1].name : "/")) &&
		     xmlNewNsProp(node, ns, (const xmlChar *)"media-type",
				  (const xmlChar *)(i ? files[i - 1].mime
						      : ASICE_MIMETYPE));
	}
	rc = ok ? dump_xml(doc, out, out_len) : BV_ENOMEM;
	xmlFreeDoc(doc);
	return rc;
}

/* DER CMS SignedData over data: detached, SHA-256, RSA, cert included. */
static int
sign_detached(const struct fiks_identity *signer, const unsigned char *data,
	      size_t len, unsigned char **out, size_t *out_len)
{
	CMS_ContentInfo *cms = NULL;
	BIO *bio = NULL;
	unsigned char *der = NULL, *p;
	int n, rc = FIKS_EKEY;
	const unsigned int flags = CMS_DETACHED | CMS_BINARY;

	bio = BIO_new_mem_buf(data, (int)len);
	cms = CMS_sign(NULL, NULL, NULL, NULL, flags | CMS_PARTIAL);
	if (!bio || !cms) {
		rc = BV_ENOMEM;
		goto out;
	}
	/*
	 * CMS_CADES adds the ESS signing-certificate-v2 attribute that
	 * CAdES-BES asks for; S/MIME capabilities mean nothing for files.
	 */
	if (!CMS_add1_signer(cms, fiks_identity_cert(signer),
			     fiks_identity_key(signer), EVP_sha256(),
			     flags | CMS_CADES | CMS_NOSMIMECAP))
		goto out;
	if (CMS_final(cms, bio, NULL, flags) != 1)
		goto out;
	n = i2d_CMS_ContentInfo(cms, NULL);
	if (n <= 0)
		goto out;
	der = bv_malloc((size_t)n);
	if (!der) {
		rc = BV_ENOMEM;
		goto out;
	}
	p = der;
	if (i2d_CMS_ContentInfo(cms, &p) != n)
		goto out;
	*out = der;
	*out_len = (size_t)n;
	der = NULL;
	rc = 0;
out:
	bv_free(der);
	CMS_ContentInfo_free(cms);
	BIO_free(bio);
	return rc;
}

/* Adds a borrowed buffer as entry name with compression method. */
static int
add_part(zip_t *za, const char *name, const void *data, size_t len,
	 zip_int32_t method)
{
	zip_source_t *src;
	zip_int64_t idx;

	src = zip_source_buffer(za, len ? data : NULL, len, 0);
	if (!src)
		return BV_ENOMEM;
	idx = zip_file_add(za, name, src, ZIP_FL_ENC_UTF_8);
	if (idx < 0) {
		zip_source_free(src);
		return BV_ENOMEM;
	}
	if (zip_set_file_compression(za, (zip_uint64_t)idx, method, 0) < 0)
		return BV_ENOMEM;
	return 0;
}

struct part {
	const char *name;
	const void *data;
	size_t len;
	zip_int32_t method;
};

/* Writes parts in order into a new in-memory zip. */
static int
write_zip(const struct part *parts, size_t n, unsigned char **out,
	  size_t *out_len)
{
	zip_error_t ze;
	zip_source_t *src;
	zip_t *za;
	zip_stat_t st;
	unsigned char *buf = NULL;
	zip_int64_t got;
	size_t i;
	int rc = 0;

	zip_error_init(&ze);
	src = zip_source_buffer_create(NULL, 0, 0, &ze);
	za = src ? zip_open_from_source(src, ZIP_TRUNCATE, &ze) : NULL;
	zip_error_fini(&ze);
	if (!za) {
		zip_source_free(src); /* NULL-safe */
		return BV_ENOMEM;
	}
	/* Keep the buffer source alive past zip_close, which writes it. */
	zip_source_keep(src);
	for (i = 0; i < n && rc == 0; i++)
		rc = add_part(za, parts[i].name, parts[i].data, parts[i].len,
			      parts[i].method);
	if (rc < 0) {
		zip_discard(za);
		goto out;
	}
	if (zip_close(za) < 0) {
		zip_discard(za);
		rc = BV_ENOMEM;
		goto out;
	}
	zip_stat_init(&st);
	if (zip_source_stat(src, &st) < 0 || !(st.valid & ZIP_STAT_SIZE) ||
	    zip_source_open(src) < 0) {
		rc = BV_ENOMEM;
		goto out;
	}
	buf = bv_malloc(st.size);
	got = buf ? zip_source_read(src, buf, st.size) : -1;
	zip_source_close(src);
	if (got < 0 || (zip_uint64_t)got != st.size) {
		rc = BV_ENOMEM;
		goto out;
	}
	*out = buf;
	*out_len = st.size;
	buf = NULL;
out:
	bv_free(buf);
	zip_source_free(src);
	return rc;
}

int
fiks_asice_build(const struct fiks_file *files, size_t n,
		 const struct fiks_identity *signer, unsigned char **zip,
		 size_t *zip_len)
{
	char *b64[FIKS_ASICE_FILES_MAX] = {NULL};
	char uuid[BV_UUID_LEN + 1], sig_name[64];
	struct part parts[FIKS_ASICE_FILES_MAX + 4];
	xmlChar *manifest = NULL, *odf = NULL;
	int manifest_len = 0, odf_len = 0;
	unsigned char *sig = NULL;
	size_t sig_len = 0, total = 0, i, j, np = 0;
	int rc;

	if (!files || n == 0 || n > FIKS_ASICE_FILES_MAX || !signer || !zip ||
	    !zip_len || !fiks_identity_key(signer) ||
	    !fiks_identity_cert(signer))
		return BV_EINVAL;
	for (i = 0; i < n; i++) {
		if (!files[i].name || !files[i].mime ||
		    !payload_name_ok(files[i].name) ||
		    !mime_ok(files[i].mime) || (!files[i].data && files[i].len))
			return BV_EINVAL;
		for (j = 0; j < i; j++)
			if (!strcmp(files[i].name, files[j].name))
				return BV_EINVAL;
		if (files[i].len > FIKS_ASICE_BYTES_MAX - total)
			return FIKS_ELIMIT;
		total += files[i].len;
	}
	xmlInitParser();
	for (i = 0; i < n; i++) {
		rc = digest_b64(EVP_sha256(), files[i].data, files[i].len,
				&b64[i]);
		if (rc < 0)
			goto out;
	}
	bv_uuid_generate(uuid);
	snprintf(sig_name, sizeof(sig_name), META_DIR "signature-%s.p7s", uuid);
	rc = build_manifest(files, n, b64, sig_name, &manifest, &manifest_len);
	if (rc < 0)
		goto out;
	rc = sign_detached(signer, manifest, (size_t)manifest_len, &sig,
			   &sig_len);
	if (rc < 0)
		goto out;
	rc = build_odf(files, n, &odf, &odf_len);
	if (rc < 0)
		goto out;
	/* mimetype first and stored, so `file` and ASiC readers see it. */
	parts[np++] = (struct part){"mimetype", ASICE_MIMETYPE,
				    strlen(ASICE_MIMETYPE), ZIP_CM_STORE};
	for (i = 0; i < n; i++)
		parts[np++] = (struct part){files[i].name, files[i].data,
					    files[i].len, ZIP_CM_DEFLATE};
	parts[np++] = (struct part){MANIFEST_NAME, manifest,
				    (size_t)manifest_len, ZIP_CM_DEFLATE};
	parts[np++] = (struct part){sig_name, sig, sig_len, ZIP_CM_DEFLATE};
	parts[np++] =
		(struct part){ODF_NAME, odf, (size_t)odf_len, ZIP_CM_DEFLATE};
	rc = write_zip(parts, np, zip, zip_len);
out:
	for (i = 0; i < n; i++)
		bv_free(b64[i]);
	xmlFree(manifest);
	xmlFree(odf);
	bv_free(sig);
	ERR_clear_error();
	return rc;
}

/* ---- reading -------------------------------------------------------- */

struct fiks_asice {
	size_t n;
	struct fiks_file files[FIKS_ASICE_FILES_MAX];
	char *signer;
};

/* A zip entry as the central directory describes it. */
struct entry {
	zip_uint64_t idx;
	const char *name; /* libzip's, valid while the archive is open */
	zip_uint64_t size;
	zip_uint16_t method;
	int payload;
	int listed; /* named by a DataObjectReference */
};

/* A DataObjectReference. */
struct ref {
	char *uri;
	char *mime;
	const EVP_MD *md;
	unsigned char digest[EVP_MAX_MD_SIZE];
	size_t digest_len;
	int root;
	struct entry *entry;
};

struct reader {
	zip_t *za;
	char *err;
	size_t errcap;
	struct entry entries[ENTRIES_MAX];
	size_t nentries;
	struct ref refs[FIKS_ASICE_FILES_MAX];
	size_t nrefs;
	char *sig_uri;
	unsigned char *manifest, *sig;
	size_t manifest_len, sig_len;
};

static int fail(struct reader *r, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
fail(struct reader *r, int code, const char *fmt, ...)
{
	va_list ap;

	if (r->err && r->errcap) {
		va_start(ap, fmt);
		vsnprintf(r->err, r->errcap, fmt, ap);
		va_end(ap);
	}
	return code;
}

static struct entry *
find_entry(struct reader *r, const char *name)
{
	size_t i;

	for (i = 0; i < r->nentries; i++)
		if (!strcmp(r->entries[i].name, name))
			return &r->entries[i];
	return NULL;
}

/*
 * Reads entry e whole into a new buffer. The central directory's size was
 * checked against the limits before; here at most that many bytes are
 * inflated, plus one to catch a directory that lies about the size (a zip
 * bomb's favourite trick): more data than declared is FIKS_EZIP.
 */
static int
read_entry(struct reader *r, const struct entry *e, unsigned char **out)
{
	zip_file_t *zf;
	unsigned char *buf, extra;
	zip_uint64_t got = 0;
	zip_int64_t k;
	char shown[ERR_NAME_MAX + 4];
	int rc = 0;

	show_name(shown, e->name);
	zf = zip_fopen_index(r->za, e->idx, 0);
	if (!zf)
		return fail(r, FIKS_EZIP, "%s cannot be opened", shown);
	buf = bv_malloc(e->size ? e->size : 1);
	if (!buf) {
		zip_fclose(zf);
		return BV_ENOMEM;
	}
	while (got < e->size) {
		k = zip_fread(zf, buf + got, e->size - got);
		if (k <= 0)
			break;
		got += (zip_uint64_t)k;
	}
	if (got != e->size)
		rc = fail(r, FIKS_EZIP,
			  "%s is damaged or shorter than its size", shown);
	else if (zip_fread(zf, &extra, 1) != 0)
		rc = fail(r, FIKS_EZIP,
			  "%s is damaged or longer than its declared size",
			  shown);
	if (zip_fclose(zf) != 0 && rc == 0)
		rc = fail(r, FIKS_EZIP, "%s fails its CRC check", shown);
	if (rc < 0) {
		bv_wipe(buf, e->size);
		bv_free(buf);
		return rc;
	}
	*out = buf;
	return 0;
}

/*
 * Step 1: the central directory. Every name is checked and classified,
 * and the sizes it declares are held to the limits, before one byte is
 * inflated.
 */
static int
check_directory(struct reader *r)
{
	zip_int64_t n;
	zip_uint64_t i, payload_bytes = 0;
	size_t npayload = 0, j;
	zip_stat_t st;
	char shown[ERR_NAME_MAX + 4];

	n = zip_get_num_entries(r->za, 0);
	if (n <= 0)
		return fail(r, FIKS_EZIP, "the package is an empty zip");
	if (n > ENTRIES_MAX)
		return fail(r, FIKS_ELIMIT,
			    "the package has more than %d entries",
			    ENTRIES_MAX);
	for (i = 0; i < (zip_uint64_t)n; i++) {
		struct entry *e = &r->entries[r->nentries];
		const char *name;

		zip_stat_init(&st);
		/*
		 * Raw names: the manifest names files in UTF-8, and libzip's
		 * guess would turn a name without the UTF-8 flag into
		 * something else from CP437 behind our back.
		 */
		if (zip_stat_index(r->za, i, ZIP_FL_ENC_RAW, &st) < 0 ||
		    !(st.valid & ZIP_STAT_NAME) || !(st.valid & ZIP_STAT_SIZE))
			return fail(r, FIKS_EZIP, "zip entry %d is unreadable",
				    (int)i);
		name = st.name;
		show_name(shown, name);
		if (strlen(strncmp(name, META_DIR, META_DIR_LEN)
				   ? name
				   : name + META_DIR_LEN) > FIKS_ASICE_NAME_MAX)
			return fail(r, FIKS_ELIMIT,
				    "a file name is longer than %d bytes",
				    FIKS_ASICE_NAME_MAX);
		if ((st.valid & ZIP_STAT_ENCRYPTION_METHOD) &&
		    st.encryption_method != ZIP_EM_NONE)
			return fail(r, FIKS_EZIP, "%s is encrypted", shown);
		if (!(st.valid & ZIP_STAT_COMP_METHOD) ||
		    (st.comp_method != ZIP_CM_STORE &&
		     st.comp_method != ZIP_CM_DEFLATE))
			return fail(r, FIKS_EZIP,
				    "%s uses an unknown compression", shown);
		for (j = 0; j < r->nentries; j++)
			if (!strcmp(r->entries[j].name, name))
				return fail(r, FIKS_EZIP,
					    "%s is in the zip twice", shown);
		if (i == 0 && strcmp(name, "mimetype"))
			return fail(r, FIKS_EZIP,
				    "mimetype is not the first zip entry");
		if (!strcmp(name, META_DIR) && st.size == 0)
			continue; /* a directory entry some zippers write */
		e->idx = i;
		e->name = name;
		e->size = st.size;
		e->method = st.comp_method;
		if (i == 0) {
			/* mimetype */
		} else if (!strncmp(name, META_DIR, META_DIR_LEN)) {
			if (!payload_name_ok(name + META_DIR_LEN))
				return fail(r, FIKS_EZIP,
					    "%s is an unsafe name", shown);
			if (st.size > META_PART_MAX)
				return fail(r, FIKS_ELIMIT,
					    "%s is larger than %u bytes", shown,
					    META_PART_MAX);
		} else {
			if (!payload_name_ok(name))
				return fail(r, FIKS_EZIP,
					    "%s is an unsafe name", shown);
			if (++npayload > FIKS_ASICE_FILES_MAX)
				return fail(
					r, FIKS_ELIMIT,
					"the package has more than %d files",
					FIKS_ASICE_FILES_MAX);
			if (st.size > FIKS_ASICE_BYTES_MAX - payload_bytes)
				return fail(
					r, FIKS_ELIMIT,
					"the files are larger than %u bytes "
					"uncompressed",
					FIKS_ASICE_BYTES_MAX);
			payload_bytes += st.size;
			e->payload = 1;
		}
		r->nentries++;
	}
	return 0;
}

/* Step 2: `mimetype`, stored, saying ASiC-E. */
static int
check_mimetype(struct reader *r)
{
	const struct entry *e = &r->entries[0];
	const size_t want = strlen(ASICE_MIMETYPE);
	unsigned char *buf = NULL;
	int rc;

	if (e->method != ZIP_CM_STORE)
		return fail(r, FIKS_EZIP, "mimetype is compressed");
	if (e->size != want)
		return fail(r, FIKS_EZIP, "mimetype is not " ASICE_MIMETYPE);
	rc = read_entry(r, e, &buf);
	if (rc < 0)
		return rc;
	if (memcmp(buf, ASICE_MIMETYPE, want) != 0)
		rc = fail(r, FIKS_EZIP, "mimetype is not " ASICE_MIMETYPE);
	bv_free(buf);
	return rc;
}

static int
ns_is(const xmlNode *node, const char *const *hrefs)
{
	size_t i;

	if (!node->ns || !node->ns->href)
		return 0;
	for (i = 0; hrefs[i]; i++)
		if (!strcmp((const char *)node->ns->href, hrefs[i]))
			return 1;
	return 0;
}

static const char *const asic_ns[] = {
	NS_ASIC, "http://uri.etsi.org/02918/v1.2.1#",
	"http://uri.etsi.org/02918/v1.1.1#", NULL};
static const char *const ds_ns[] = {NS_DS, NULL};

static int
is_elem(const xmlNode *node, const char *name, const char *const *hrefs)
{
	return node->type == XML_ELEMENT_NODE &&
	       !strcmp((const char *)node->name, name) && ns_is(node, hrefs);
}

/*
 * The digest algorithms the KS and difi writers can be configured with.
 * difi's reader maps xmldsig#sha… to xmlenc#sha…, so both spellings
 * appear in the wild.
 */
static const EVP_MD *
digest_by_uri(const char *uri)
{
	if (!strcmp(uri, DIGEST_SHA256) ||
	    !strcmp(uri, "http://www.w3.org/2000/09/xmldsig#sha256"))
		return EVP_sha256();
	if (!strcmp(uri, "http://www.w3.org/2001/04/xmldsig-more#sha384") ||
	    !strcmp(uri, "http://www.w3.org/2001/04/xmlenc#sha384"))
		return EVP_sha384();
	if (!strcmp(uri, "http://www.w3.org/2001/04/xmlenc#sha512") ||
	    !strcmp(uri, "http://www.w3.org/2001/04/xmldsig-more#sha512"))
		return EVP_sha512();
	return NULL;
}

static char *
get_attr(const xmlNode *node, const char *name)
{
	xmlChar *v = xmlGetNoNsProp(node, (const xmlChar *)name);
	char *s;

	if (!v)
		return NULL;
	s = bv_strdup((const char *)v);
	xmlFree(v);
	return s;
}

/* Decodes a DigestValue's text, surrounding white space allowed. */
static int
decode_digest(const xmlNode *node, struct ref *ref)
{
	xmlChar *text = xmlNodeGetContent(node);
	const char *s, *e;
	size_t len;
	int rc;

	if (!text)
		return -1;
	s = (const char *)text;
	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' ||
			 e[-1] == '\n'))
		e--;
	rc = bv_b64_decode(s, (size_t)(e - s), ref->digest, sizeof(ref->digest),
			   &len);
	xmlFree(text);
	if (rc < 0)
		return -1;
	ref->digest_len = len;
	return 0;
}

static int
parse_ref(struct reader *r, const xmlNode *node, struct ref *ref)
{
	const xmlNode *c;
	char shown[ERR_NAME_MAX + 4];
	char *alg;
	int have_value = 0;

	ref->uri = get_attr(node, "URI");
	ref->mime = get_attr(node, "MimeType");
	if (!ref->uri)
		return fail(r, FIKS_EMANIFEST,
			    "a DataObjectReference in " MANIFEST_NAME
			    " has no URI");
	show_name(shown, ref->uri);
	if (!payload_name_ok(ref->uri))
		return fail(r, FIKS_EMANIFEST,
			    MANIFEST_NAME " names %s, not a payload file",
			    shown);
	if (ref->mime && !mime_ok(ref->mime)) {
		bv_free(ref->mime);
		ref->mime = NULL;
	}
	if (!ref->mime) {
		ref->mime = bv_strdup("application/octet-stream");
		if (!ref->mime)
			return BV_ENOMEM;
	}
	alg = get_attr(node, "Rootfile");
	ref->root = alg && (!strcmp(alg, "true") || !strcmp(alg, "1"));
	bv_free(alg);
	for (c = node->children; c; c = c->next) {
		if (is_elem(c, "DigestMethod", ds_ns)) {
			alg = get_attr(c, "Algorithm");
			ref->md = alg ? digest_by_uri(alg) : NULL;
			bv_free(alg);
			if (!ref->md)
				return fail(
					r, FIKS_EMANIFEST,
					MANIFEST_NAME
					" gives %s an unknown digest method",
					shown);
		} else if (is_elem(c, "DigestValue", ds_ns)) {
			if (have_value++ || decode_digest(c, ref) < 0)
				return fail(r, FIKS_EMANIFEST,
					    MANIFEST_NAME
					    " has a bad digest value for %s",
					    shown);
		}
	}
	if (!ref->md || !have_value ||
	    ref->digest_len != (size_t)EVP_MD_get_size(ref->md))
		return fail(r, FIKS_EMANIFEST,
			    MANIFEST_NAME " lacks a digest for %s", shown);
	return 0;
}

/*
 * Step 3: the ASiCManifest, parsed without network, DTDs or entity
 * expansion: a document with a DTD is refused outright, which rules out
 * entity bombs and external entities whatever libxml2's defaults are.
 */
static int
parse_manifest(struct reader *r)
{
	xmlDocPtr doc;
	const xmlNode *root, *c;
	size_t i, j;
	int rc = 0, nroot = 0;

	if (r->manifest_len > META_PART_MAX)
		return fail(r, FIKS_ELIMIT, MANIFEST_NAME " is too large");
	doc = xmlReadMemory((const char *)r->manifest, (int)r->manifest_len,
			    "asicmanifest.xml", NULL,
			    XML_PARSE_NONET | XML_PARSE_NOERROR |
				    XML_PARSE_NOWARNING);
	if (!doc)
		return fail(r, FIKS_EMANIFEST,
			    MANIFEST_NAME " is not well-formed XML");
	root = xmlDocGetRootElement(doc);
	if (doc->intSubset || doc->extSubset) {
		rc = fail(r, FIKS_EMANIFEST, MANIFEST_NAME " has a DTD");
		goto out;
	}
	if (!root || !is_elem(root, "ASiCManifest", asic_ns)) {
		rc = fail(r, FIKS_EMANIFEST,
			  MANIFEST_NAME " is not an ASiCManifest");
		goto out;
	}
	for (c = root->children; c && rc == 0; c = c->next) {
		if (is_elem(c, "SigReference", asic_ns)) {
			if (r->sig_uri) {
				rc = fail(r, FIKS_EMANIFEST,
					  MANIFEST_NAME
					  " has two SigReferences");
				break;
			}
			r->sig_uri = get_attr(c, "URI");
			if (!r->sig_uri)
				rc = fail(r, FIKS_EMANIFEST,
					  MANIFEST_NAME
					  " has a SigReference without URI");
		} else if (is_elem(c, "DataObjectReference", asic_ns)) {
			if (r->nrefs == FIKS_ASICE_FILES_MAX) {
				rc = fail(r, FIKS_ELIMIT,
					  MANIFEST_NAME
					  " lists more than %d files",
					  FIKS_ASICE_FILES_MAX);
				break;
			}
			rc = parse_ref(r, c, &r->refs[r->nrefs++]);
			if (rc == 0 && r->refs[r->nrefs - 1].root)
				nroot++;
		}
	}
	if (rc < 0)
		goto out;
	if (!r->sig_uri) {
		rc = fail(r, FIKS_EMANIFEST,
			  MANIFEST_NAME " has no SigReference");
		goto out;
	}
	if (r->nrefs == 0) {
		rc = fail(r, FIKS_EMANIFEST, MANIFEST_NAME " lists no files");
		goto out;
	}
	if (nroot > 1) {
		rc = fail(r, FIKS_EMANIFEST,
			  MANIFEST_NAME " flags more than one root file");
		goto out;
	}
	for (i = 0; i < r->nrefs; i++)
		for (j = 0; j < i; j++)
			if (!strcmp(r->refs[i].uri, r->refs[j].uri)) {
				char shown[ERR_NAME_MAX + 4];

				show_name(shown, r->refs[i].uri);
				rc = fail(r, FIKS_EMANIFEST,
					  MANIFEST_NAME " lists %s twice",
					  shown);
				goto out;
			}
out:
	xmlFreeDoc(doc);
	return rc;
}

/* The subject of cert, RFC 2253, UTF-8 kept readable. */
static char *
subject_line(X509 *cert)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *s = NULL;
	long n;

	if (!bio)
		return NULL;
	if (X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0,
			       XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
		n = BIO_get_mem_data(bio, &data);
		s = bv_strndup(n > 0 ? data : "", n > 0 ? (size_t)n : 0);
	}
	BIO_free(bio);
	return s;
}

/*
 * Step 4: the detached signature over the manifest's exact bytes. With a
 * pinned certificate only that certificate may verify it (CMS_NOINTERN:
 * a certificate inside the signature is not even considered); without,
 * the certificate inside is used as it is, chain unchecked.
 */
static int
verify_signature(struct reader *r, X509 *pinned, char **signer)
{
	CMS_ContentInfo *cms = NULL;
	STACK_OF(X509) *certs = NULL, *signers = NULL;
	BIO *bio = NULL;
	const unsigned char *p = r->sig;
	char shown[ERR_NAME_MAX + 4];
	unsigned int flags = CMS_BINARY | CMS_NO_SIGNER_CERT_VERIFY;
	int rc;

	show_name(shown, r->sig_uri);
	cms = d2i_CMS_ContentInfo(NULL, &p, (long)r->sig_len);
	if (!cms || p != r->sig + r->sig_len ||
	    OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed ||
	    CMS_is_detached(cms) != 1) {
		rc = fail(r, FIKS_ESIGNATURE,
			  "%s is not a detached CMS signature", shown);
		goto out;
	}
	if (sk_CMS_SignerInfo_num(CMS_get0_SignerInfos(cms)) != 1) {
		rc = fail(r, FIKS_ESIGNATURE, "%s does not have one signer",
			  shown);
		goto out;
	}
	bio = BIO_new_mem_buf(r->manifest, (int)r->manifest_len);
	if (!bio) {
		rc = BV_ENOMEM;
		goto out;
	}
	if (pinned) {
		certs = sk_X509_new_null();
		if (!certs || !sk_X509_push(certs, pinned)) {
			rc = BV_ENOMEM;
			goto out;
		}
		flags |= CMS_NOINTERN;
	}
	if (CMS_verify(cms, certs, NULL, bio, NULL, flags) != 1) {
		rc = fail(r, FIKS_ESIGNATURE,
			  pinned ? "%s is not a signature of " MANIFEST_NAME
				   " by the expected certificate"
				 : "%s is not a valid signature "
				   "of " MANIFEST_NAME,
			  shown);
		goto out;
	}
	signers = CMS_get0_signers(cms);
	if (!signers || sk_X509_num(signers) != 1 ||
	    (pinned && X509_cmp(sk_X509_value(signers, 0), pinned) != 0)) {
		rc = fail(r, FIKS_ESIGNATURE,
			  "%s is signed by another certificate", shown);
		goto out;
	}
	*signer = subject_line(sk_X509_value(signers, 0));
	rc = *signer ? 0 : BV_ENOMEM;
out:
	sk_X509_free(signers);
	sk_X509_free(certs);
	BIO_free(bio);
	CMS_ContentInfo_free(cms);
	return rc;
}

/* Step 5: the manifest and the zip's payload files agree both ways. */
static int
match_files(struct reader *r)
{
	char shown[ERR_NAME_MAX + 4];
	size_t i;

	for (i = 0; i < r->nrefs; i++) {
		struct entry *e = find_entry(r, r->refs[i].uri);

		if (!e || !e->payload) {
			show_name(shown, r->refs[i].uri);
			return fail(r, FIKS_EMANIFEST,
				    MANIFEST_NAME
				    " lists %s, which is not in the package",
				    shown);
		}
		e->listed = 1;
		r->refs[i].entry = e;
	}
	for (i = 0; i < r->nentries; i++) {
		if (r->entries[i].payload && !r->entries[i].listed) {
			show_name(shown, r->entries[i].name);
			return fail(r, FIKS_EMANIFEST,
				    "%s is not in " MANIFEST_NAME, shown);
		}
	}
	return 0;
}

/* Step 6: each file, read within its declared size, against its digest. */
static int
read_files(struct reader *r, struct fiks_asice *a)
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dlen;
	char shown[ERR_NAME_MAX + 4];
	size_t i, k, root = 0;
	int rc;

	for (i = 0; i < r->nrefs; i++)
		if (r->refs[i].root)
			root = i;
	/* Root file first, the others in manifest order. */
	for (k = 0; k < r->nrefs; k++) {
		struct ref *ref =
			&r->refs[k == 0 ? root : (k <= root ? k - 1 : k)];
		struct fiks_file *f = &a->files[k];
		unsigned char *data = NULL;

		rc = read_entry(r, ref->entry, &data);
		if (rc < 0)
			return rc;
		f->data = data;
		f->len = ref->entry->size;
		a->n = k + 1;
		if (EVP_Digest(f->len ? (const void *)data : "", f->len, d,
			       &dlen, ref->md, NULL) != 1)
			return BV_ENOMEM;
		if (dlen != ref->digest_len ||
		    CRYPTO_memcmp(d, ref->digest, dlen) != 0) {
			show_name(shown, ref->uri);
			return fail(r, FIKS_EDIGEST,
				    "%s does not match its digest "
				    "in " MANIFEST_NAME,
				    shown);
		}
		f->name = ref->uri;
		f->mime = ref->mime;
		ref->uri = NULL;
		ref->mime = NULL;
	}
	return 0;
}

int
fiks_asice_read(const unsigned char *zip, size_t zip_len,
		const char *expect_cert_pem, struct fiks_asice **out, char *err,
		size_t errcap)
{
	struct reader *r = NULL;
	struct fiks_asice *a = NULL;
	zip_source_t *src = NULL;
	zip_error_t ze;
	X509 *pinned = NULL;
	struct entry *e;
	char shown[ERR_NAME_MAX + 4];
	size_t i;
	int rc;

	set_err(err, errcap, "%s", "");
	if (!zip || !out)
		return BV_EINVAL;
	/* A package is a CMS plaintext, so no larger than one. */
	if (zip_len > FIKS_CMS_BYTES_MAX)
		return FIKS_ELIMIT;
	r = bv_calloc(1, sizeof(*r));
	a = bv_calloc(1, sizeof(*a));
	if (!r || !a) {
		rc = BV_ENOMEM;
		goto out;
	}
	r->err = err;
	r->errcap = errcap;
	if (expect_cert_pem) {
		BIO *bio = BIO_new_mem_buf(expect_cert_pem, -1);

		pinned = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
		BIO_free(bio);
		if (!pinned) {
			rc = fail(r, BV_EINVAL,
				  "the expected certificate is not PEM");
			goto out;
		}
	}
	xmlInitParser();
	zip_error_init(&ze);
	src = zip_source_buffer_create(zip, zip_len, 0, &ze);
	if (src)
		r->za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS,
					     &ze);
	if (!r->za) {
		rc = zip_error_code_zip(&ze) == ZIP_ER_MEMORY
			     ? BV_ENOMEM
			     : fail(r, FIKS_EZIP,
				    "the package is not a zip (%s)",
				    zip_error_strerror(&ze));
		zip_error_fini(&ze);
		zip_source_free(src); /* NULL-safe; not ours once opened */
		goto out;
	}
	zip_error_fini(&ze);
	rc = check_directory(r);
	if (rc < 0)
		goto out;
	rc = check_mimetype(r);
	if (rc < 0)
		goto out;
	e = find_entry(r, MANIFEST_NAME);
	if (!e) {
		rc = fail(r, FIKS_EMANIFEST, MANIFEST_NAME " is missing");
		goto out;
	}
	rc = read_entry(r, e, &r->manifest);
	if (rc < 0)
		goto out;
	r->manifest_len = e->size;
	rc = parse_manifest(r);
	if (rc < 0)
		goto out;
	show_name(shown, r->sig_uri);
	e = find_entry(r, r->sig_uri);
	if (strncmp(r->sig_uri, META_DIR, META_DIR_LEN) || !e) {
		rc = fail(r, FIKS_EZIP,
			  "%s, the signature named by " MANIFEST_NAME
			  ", is not in META-INF/",
			  shown);
		goto out;
	}
	rc = read_entry(r, e, &r->sig);
	if (rc < 0)
		goto out;
	r->sig_len = e->size;
	rc = verify_signature(r, pinned, &a->signer);
	if (rc < 0)
		goto out;
	rc = match_files(r);
	if (rc < 0)
		goto out;
	rc = read_files(r, a);
	if (rc < 0)
		goto out;
	*out = a;
	a = NULL;
out:
	fiks_asice_free(a);
	if (r) {
		if (r->za)
			zip_discard(r->za); /* also frees src */
		for (i = 0; i < r->nrefs; i++) {
			bv_free(r->refs[i].uri);
			bv_free(r->refs[i].mime);
		}
		bv_free(r->sig_uri);
		bv_free(r->manifest);
		bv_free(r->sig);
		bv_free(r);
	}
	X509_free(pinned);
	ERR_clear_error();
	return rc;
}

size_t
fiks_asice_count(const struct fiks_asice *a)
{
	return a ? a->n : 0;
}

const struct fiks_file *
fiks_asice_file(const struct fiks_asice *a, size_t i)
{
	return a && i < a->n ? &a->files[i] : NULL;
}

const struct fiks_file *
fiks_asice_find(const struct fiks_asice *a, const char *name)
{
	size_t i;

	if (!a || !name)
		return NULL;
	for (i = 0; i < a->n; i++)
		if (a->files[i].name && !strcmp(a->files[i].name, name))
			return &a->files[i];
	return NULL;
}

const char *
fiks_asice_signer(const struct fiks_asice *a)
{
	return a ? a->signer : NULL;
}

void
fiks_asice_free(struct fiks_asice *a)
{
	size_t i;

	if (!a)
		return;
	for (i = 0; i < a->n; i++) {
		/* Payloads are case documents: wiped, not just freed. */
		if (a->files[i].data)
			bv_wipe((void *)a->files[i].data, a->files[i].len);
		bv_free((void *)a->files[i].data);
		bv_free((void *)a->files[i].name);
		bv_free((void *)a->files[i].mime);
	}
	bv_free(a->signer);
	bv_free(a);
}
