/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * fiks_arkiv.c: Fiks Arkiv v1 arkivmelding, kvittering and feilmelding,
 * written with libxml2's tree API (which escapes every text) and read back
 * through one hardened parse (size cap, UTF-8 only, no network, no DTD, no
 * entities) followed by XSD validation against the vendored schemas and a
 * check of the closed code lists, both cached per process. It knows
 * nothing of FIKS IO or packages: callers move the bytes.
 */
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlschemas.h>

#include "bv_error.h"
#include "bv_util.h"
#include "fiks_arkiv.h"
#include "fiks_error.h"

#ifndef BV_FIKS_SCHEMA_DIR
#error "BV_FIKS_SCHEMA_DIR must name the vendored fiks-arkiv-v1 directory"
#endif

#define NS_BASE "https://ks-no.github.io/standarder/fiks-protokoll/fiks-arkiv/"
#define NS_AM	NS_BASE "arkivmelding/opprett/v1"
#define NS_KV	NS_BASE "arkivmelding/opprett/kvittering/v1"
#define NS_MDK	NS_BASE "metadatakatalog/v1"
#define NS_FEIL NS_BASE "feil/feilmelding/v1"
#define NS_XSI	"http://www.w3.org/2001/XMLSchema-instance"

#define XSD_ARKIVMELDING FIKS_ARKIV_OPPRETT ".xsd"
#define XSD_KVITTERING	 FIKS_ARKIV_KVITTERING ".xsd"

/* The three feilmelding types: each its own root element and namespace
 * around the shared feilmeldingBase. */
static const struct feil_type {
	const char *type, *root, *ns;
} feil_types[] = {
	{FIKS_ARKIV_SERVERFEIL, "serverfeil", NS_BASE "feil/serverfeil/v1"},
	{FIKS_ARKIV_UGYLDIG, "ugyldigforespoersel",
	 NS_BASE "feil/ugyldigforespoersel/v1"},
	{FIKS_ARKIV_IKKEFUNNET, "ikkefunnet", NS_BASE "feil/ikkefunnet/v1"},
};

/*
 * The code lists Noark closes (a value outside them means nothing to an
 * archive). dokumenttype and format are open lists that archives extend,
 * and tilgangsrestriksjon codes are each archive's own: not checked.
 */
static const struct coded {
	const char *elem, *list;
} coded[] = {
	{"journalposttype", "journalposttype"},
	{"journalstatus", "journalstatus"},
	{"korrespondanseparttype", "korrespondanseparttype"},
	{"tilknyttetRegistreringSom", "tilknyttetregistreringsom"},
	{"variantformat", "variantformat"},
	{"dokumentstatus", "dokumentstatus"},
};

static int fail(char *err, size_t cap, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Writes one line to err (control characters blanked: reasons may quote
 * peer data and end up in logs). Returns rc. */
static int
fail(char *err, size_t cap, int rc, const char *fmt, ...)
{
	va_list ap;
	char *p;

	if (err == NULL || cap == 0)
		return rc;
	va_start(ap, fmt);
	vsnprintf(err, cap, fmt, ap);
	va_end(ap);
	for (p = err; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	return rc;
}

/* ---- process-wide state: libxml2, schemas and code lists ------------- */

struct schema_entry {
	char *path;
	xmlSchemaPtr schema;
};

struct codelist {
	char *path;
	char **codes;
	size_t n;
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct schema_entry *schemas;
static size_t n_schemas;
static struct codelist *codelists;
static size_t n_codelists;

static void
arkiv_init(void)
{
	xmlInitParser();
}

static const char *
schema_dir(void)
{
	const char *d = getenv("BVFIKS_SCHEMA_DIR");

	return d != NULL && *d != '\0' ? d : BV_FIKS_SCHEMA_DIR;
}

/* Collects the first libxml2 error of a parse or validation. */
struct errbuf {
	char msg[400];
	int seen;
	int oom;
};

/*
 * Copies a libxml2 message, dropping "{namespace}" prefixes and replacing
 * every quoted value after the element name by "…": a schema error may
 * quote a title or a name, and reasons are logged.
 */
static void
scrub(char *dst, size_t cap, const char *src)
{
	size_t o = 0;
	int quotes = 0, inquote = 0;

	for (; *src != '\0' && o + 4 < cap; src++) {
		if (*src == '{') {
			const char *e = strchr(src, '}');

			if (e != NULL) {
				src = e;
				continue;
			}
		}
		if (*src == '\'') {
			inquote = !inquote;
			if (inquote)
				quotes++;
			else if (quotes > 1) {
				memcpy(dst + o, "...", 3);
				o += 3;
			}
			dst[o++] = '\'';
			continue;
		}
		if (inquote && quotes > 1)
			continue;
		dst[o++] = *src == '\n' ? ' ' : *src;
	}
	while (o > 0 && dst[o - 1] == ' ')
		o--;
	dst[o] = '\0';
}

#if LIBXML_VERSION >= 21200
static void
errbuf_cb(void *ctx, const xmlError *e)
#else
static void
errbuf_cb(void *ctx, xmlErrorPtr e)
#endif
{
	struct errbuf *eb = ctx;
	char m[sizeof(eb->msg) - 40];

	if (e->code == XML_ERR_NO_MEMORY)
		eb->oom = 1;
	if (eb->seen++)
		return;
	scrub(m, sizeof(m), e->message != NULL ? e->message : "error");
	if (e->line > 0)
		snprintf(eb->msg, sizeof(eb->msg), "line %d: %s", e->line, m);
	else
		snprintf(eb->msg, sizeof(eb->msg), "%s", m);
}

/* Plain file names only: the schema directory is the only place read. */
static int
plain_name(const char *name)
{
	return name != NULL && *name != '\0' && strchr(name, '/') == NULL &&
	       strcmp(name, "..") != 0 && strcmp(name, ".") != 0;
}

/* The parsed schema of xsd_name, parsed on first use. Caller holds no
 * lock; the cache is searched and filled under cache_lock. */
static int
schema_get(const char *xsd_name, xmlSchemaPtr *out, char *err, size_t cap)
{
	xmlSchemaParserCtxtPtr pctxt = NULL;
	xmlSchemaPtr s = NULL;
	struct schema_entry *grown;
	struct errbuf eb = {0};
	char path[PATH_MAX];
	size_t i;
	int rc;

	if (!plain_name(xsd_name))
		return fail(err, cap, BV_EINVAL, "bad schema name");
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", schema_dir(),
			     xsd_name) >= sizeof(path))
		return fail(err, cap, BV_EINVAL, "schema path too long");
	pthread_once(&init_once, arkiv_init);
	pthread_mutex_lock(&cache_lock);
	for (i = 0; i < n_schemas; i++)
		if (strcmp(schemas[i].path, path) == 0) {
			*out = schemas[i].schema;
			rc = 0;
			goto out;
		}
	if (access(path, R_OK) != 0) {
		rc = fail(err, cap, BV_EIO, "schema %s cannot be read",
			  xsd_name);
		goto out;
	}
	pctxt = xmlSchemaNewParserCtxt(path);
	if (pctxt == NULL) {
		rc = fail(err, cap, BV_ENOMEM, "out of memory");
		goto out;
	}
	xmlSchemaSetParserStructuredErrors(pctxt, errbuf_cb, &eb);
	s = xmlSchemaParse(pctxt);
	if (s == NULL) {
		rc = eb.oom ? fail(err, cap, BV_ENOMEM, "out of memory")
			    : fail(err, cap, BV_EIO, "schema %s: %s", xsd_name,
				   eb.msg);
		goto out;
	}
	grown = bv_realloc(schemas, (n_schemas + 1) * sizeof(*schemas));
	if (grown == NULL) {
		rc = fail(err, cap, BV_ENOMEM, "out of memory");
		goto out;
	}
	schemas = grown;
	schemas[n_schemas].path = bv_strdup(path);
	if (schemas[n_schemas].path == NULL) {
		rc = fail(err, cap, BV_ENOMEM, "out of memory");
		goto out;
	}
	schemas[n_schemas].schema = s;
	n_schemas++;
	*out = s;
	s = NULL;
	rc = 0;
out:
	pthread_mutex_unlock(&cache_lock);
	xmlSchemaFree(s);
	xmlSchemaFreeParserCtxt(pctxt);
	return rc;
}

static void
codelist_cleanup(struct codelist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		bv_free(l->codes[i]);
	bv_free(l->codes);
	bv_free(l->path);
}

/* Reads kodelister/no.ks.fiks.arkiv.v1.kodelister.<name>.json into l. */
static int
codelist_load(const char *path, struct codelist *l)
{
	json_t *root, *list, *row;
	json_error_t jerr;
	size_t i;
	int rc = BV_EIO;

	memset(l, 0, sizeof(*l));
	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return BV_EIO;
	list = json_object_get(root, "kodeliste");
	if (!json_is_array(list) || json_array_size(list) == 0)
		goto out;
	l->codes = bv_calloc(json_array_size(list), sizeof(*l->codes));
	l->path = bv_strdup(path);
	if (l->codes == NULL || l->path == NULL) {
		rc = BV_ENOMEM;
		goto out;
	}
	json_array_foreach(list, i, row)
	{
		const char *v =
			json_string_value(json_object_get(row, "kodeverdi"));

		if (v == NULL)
			goto out;
		l->codes[l->n] = bv_strdup(v);
		if (l->codes[l->n] == NULL) {
			rc = BV_ENOMEM;
			goto out;
		}
		l->n++;
	}
	rc = 0;
out:
	if (rc < 0)
		codelist_cleanup(l);
	json_decref(root);
	return rc;
}

/* 1 when code is in list, 0 when not; BV_EIO, BV_ENOMEM. */
static int
codelist_has(const char *list, const char *code)
{
	struct codelist l, *grown;
	char path[PATH_MAX];
	size_t i, j;
	int rc;

	if ((size_t)snprintf(path, sizeof(path),
			     "%s/kodelister/no.ks.fiks.arkiv.v1.kodelister.%s"
			     ".json",
			     schema_dir(), list) >= sizeof(path))
		return BV_EIO;
	pthread_mutex_lock(&cache_lock);
	for (i = 0; i < n_codelists; i++)
		if (strcmp(codelists[i].path, path) == 0)
			break;
	if (i == n_codelists) {
		rc = codelist_load(path, &l);
		if (rc < 0)
			goto out;
		grown = bv_realloc(codelists,
				   (n_codelists + 1) * sizeof(*codelists));
		if (grown == NULL) {
			codelist_cleanup(&l);
			rc = BV_ENOMEM;
			goto out;
		}
		codelists = grown;
		codelists[n_codelists++] = l;
	}
	rc = 0;
	for (j = 0; j < codelists[i].n; j++)
		if (strcmp(codelists[i].codes[j], code) == 0) {
			rc = 1;
			break;
		}
out:
	pthread_mutex_unlock(&cache_lock);
	return rc;
}

void
fiks_arkiv_cleanup(void)
{
	size_t i;

	pthread_mutex_lock(&cache_lock);
	for (i = 0; i < n_schemas; i++) {
		xmlSchemaFree(schemas[i].schema);
		bv_free(schemas[i].path);
	}
	bv_free(schemas);
	schemas = NULL;
	n_schemas = 0;
	for (i = 0; i < n_codelists; i++)
		codelist_cleanup(&codelists[i]);
	bv_free(codelists);
	codelists = NULL;
	n_codelists = 0;
	pthread_mutex_unlock(&cache_lock);
}

/* ---- strings ---------------------------------------------------------- */

/*
 * 1 when s is UTF-8 that XML 1.0 can carry as text: shortest forms only,
 * no surrogates, nothing above U+10FFFF, no U+FFFE/U+FFFF and no control
 * characters but tab, LF and CR. Serialising anything else would give an
 * ill-formed document (libxml2 writes &#1; for U+0001).
 */
static int
xml_clean(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p != '\0') {
		unsigned long cp;
		int n, i;

		if (*p < 0x80) {
			if (*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r')
				return 0;
			p++;
			continue;
		}
		if ((*p & 0xe0) == 0xc0) {
			n = 1;
			cp = *p & 0x1f;
		} else if ((*p & 0xf0) == 0xe0) {
			n = 2;
			cp = *p & 0x0f;
		} else if ((*p & 0xf8) == 0xf0) {
			n = 3;
			cp = *p & 0x07;
		} else
			return 0;
		for (i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
		    (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp == 0xfffe ||
		    cp == 0xffff)
			return 0;
		p += n + 1;
	}
	return 1;
}

/* A required string: set, not empty, clean. */
static int
req(const char *s)
{
	return s != NULL && *s != '\0' && xml_clean(s);
}

/* An optional string: NULL, or non-empty and clean. */
static int
opt(const char *s)
{
	return s == NULL || req(s);
}

/* A file name inside the package, as fiks_asice.h allows them. */
static int
package_name(const char *s)
{
	size_t n;

	if (!req(s))
		return 0;
	n = strlen(s);
	if (n > 200 || strchr(s, '/') != NULL || strchr(s, '\\') != NULL ||
	    strncmp(s, "META-INF", 8) == 0 || strcmp(s, "mimetype") == 0 ||
	    strcmp(s, ".") == 0 || strcmp(s, "..") == 0 ||
	    strcmp(s, FIKS_ARKIV_ARKIVMELDING_FILE) == 0)
		return 0;
	return 1;
}

/* The document's file in the package. */
static const char *
dok_ref(const struct fiks_arkiv_dokument *d)
{
	return d->referanse != NULL ? d->referanse : d->filnavn;
}

/* 64 lower-case hex digits. */
static int
hex64(const char *s)
{
	size_t i;

	for (i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return s[64] == '\0';
}

/* Copies src into dst (cap > 0), cut at a UTF-8 character boundary. */
static void
copy_utf8(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);

	if (n >= cap) {
		n = cap - 1;
		while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* ---- reading: one hardened parse ------------------------------------- */

static void
refuse_subset(void *ctx, const xmlChar *name, const xmlChar *ext,
	      const xmlChar *sys)
{
	xmlParserCtxtPtr ctxt = ctx;

	(void)name;
	(void)ext;
	(void)sys;
	*(int *)ctxt->_private = 1;
	xmlStopParser(ctxt);
}

static void
refuse_entity(void *ctx, const xmlChar *name, int type, const xmlChar *pub,
	      const xmlChar *sys, xmlChar *content)
{
	xmlParserCtxtPtr ctxt = ctx;

	(void)name;
	(void)type;
	(void)pub;
	(void)sys;
	(void)content;
	*(int *)ctxt->_private = 1;
	xmlStopParser(ctxt);
}

/* 1 when the bytes hold a markup declaration ("<!DOCTYPE", "<!ENTITY"). */
static int
has_declaration(const char *xml, size_t len)
{
	size_t i;

	for (i = 0; i + 9 <= len; i++)
		if (xml[i] == '<' && xml[i + 1] == '!' &&
		    (memcmp(xml + i + 2, "DOCTYPE", 7) == 0 ||
		     memcmp(xml + i + 2, "ENTITY", 6) == 0))
			return 1;
	return 0;
}

/*
 * Parses xml into *out. No network (XML_PARSE_NONET), no DTD loaded or
 * kept, no entity substituted: a DOCTYPE or entity declaration stops the
 * parse, so neither an external entity nor an exponential expansion can
 * happen. UTF-8 only (a NUL byte or another declared encoding is refused).
 */
static int
xml_read(const char *xml, size_t len, xmlDocPtr *out, char *err, size_t cap)
{
	xmlParserCtxtPtr ctxt = NULL;
	xmlDocPtr doc = NULL;
	const xmlError *e;
	int refused = 0, rc;

	if (xml == NULL)
		return fail(err, cap, BV_EINVAL, "no XML");
	if (len > FIKS_ARKIV_XML_MAX)
		return fail(err, cap, FIKS_ELIMIT,
			    "XML of %zu bytes is over the limit of %u", len,
			    FIKS_ARKIV_XML_MAX);
	if (len == 0)
		return fail(err, cap, FIKS_EXML, "empty XML document");
	if (memchr(xml, '\0', len) != NULL)
		return fail(err, cap, FIKS_EXML,
			    "XML is not UTF-8 (holds a NUL byte)");
	if (has_declaration(xml, len))
		return fail(err, cap, FIKS_EXML,
			    "DOCTYPE and ENTITY declarations are refused");
	pthread_once(&init_once, arkiv_init);
	/* Not xmlCtxtReadMemory(): it resets the context, hooks and all. */
	ctxt = xmlCreateMemoryParserCtxt(xml, (int)len);
	if (ctxt == NULL)
		return fail(err, cap, BV_ENOMEM, "out of memory");
	xmlCtxtUseOptions(ctxt, XML_PARSE_NONET | XML_PARSE_NOERROR |
					XML_PARSE_NOWARNING);
	ctxt->_private = &refused;
	ctxt->sax->internalSubset = refuse_subset;
	ctxt->sax->externalSubset = refuse_subset;
	ctxt->sax->entityDecl = refuse_entity;
	xmlParseDocument(ctxt);
	doc = ctxt->myDoc;
	ctxt->myDoc = NULL;
	if (refused) {
		rc = fail(err, cap, FIKS_EXML,
			  "DOCTYPE and ENTITY declarations are refused");
		goto out;
	}
	if (doc == NULL || !ctxt->wellFormed) {
		char m[300];

		e = xmlCtxtGetLastError(ctxt);
		if (e != NULL && e->code == XML_ERR_NO_MEMORY) {
			rc = fail(err, cap, BV_ENOMEM, "out of memory");
			goto out;
		}
		scrub(m, sizeof(m),
		      e != NULL && e->message != NULL ? e->message : "error");
		rc = fail(err, cap, FIKS_EXML,
			  "XML not well-formed: line %d: %s",
			  e != NULL ? e->line : 0, m);
		goto out;
	}
	if (doc->intSubset != NULL || doc->extSubset != NULL) {
		rc = fail(err, cap, FIKS_EXML,
			  "DOCTYPE and ENTITY declarations are refused");
		goto out;
	}
	if (doc->encoding != NULL &&
	    xmlStrcasecmp(doc->encoding, BAD_CAST "UTF-8") != 0) {
		rc = fail(err, cap, FIKS_EXML, "XML is not UTF-8");
		goto out;
	}
	if (xmlDocGetRootElement(doc) == NULL) {
		rc = fail(err, cap, FIKS_EXML, "XML has no root element");
		goto out;
	}
	*out = doc;
	doc = NULL;
	rc = 0;
out:
	xmlFreeDoc(doc);
	xmlFreeParserCtxt(ctxt);
	return rc;
}

static int
is_el(const xmlNode *n, const char *ns, const char *name)
{
	return n != NULL && n->type == XML_ELEMENT_NODE &&
	       xmlStrcmp(n->name, BAD_CAST name) == 0 && n->ns != NULL &&
	       xmlStrcmp(n->ns->href, BAD_CAST ns) == 0;
}

/* The first child element of parent named {ns}name, or NULL. */
static xmlNodePtr
child(const xmlNode *parent, const char *ns, const char *name)
{
	xmlNodePtr c;

	if (parent == NULL)
		return NULL;
	for (c = parent->children; c != NULL; c = c->next)
		if (is_el(c, ns, name))
			return c;
	return NULL;
}

/* Checks every coded element under n against its closed code list. */
static int
check_codes(const xmlNode *n, char *err, size_t cap)
{
	const xmlNode *c;
	size_t i;
	int rc;

	for (c = n->children; c != NULL; c = c->next) {
		if (c->type != XML_ELEMENT_NODE)
			continue;
		for (i = 0; i < sizeof(coded) / sizeof(coded[0]); i++) {
			xmlNodePtr k;
			xmlChar *v;

			if (xmlStrcmp(c->name, BAD_CAST coded[i].elem) != 0)
				continue;
			k = child(c, NS_MDK, "kode");
			if (k == NULL)
				break;
			v = xmlNodeGetContent(k);
			if (v == NULL)
				return fail(err, cap, BV_ENOMEM,
					    "out of memory");
			rc = codelist_has(coded[i].list, (const char *)v);
			if (rc == 0)
				fail(err, cap, FIKS_ESCHEMA,
				     "%s code '%.16s' is not in the Fiks "
				     "Arkiv v1 code list",
				     coded[i].elem, (const char *)v);
			else if (rc < 0)
				fail(err, cap, rc, "code list %s: %s",
				     coded[i].list,
				     rc == BV_EIO ? "cannot be read"
						  : "out of memory");
			xmlFree(v);
			if (rc == 0)
				return FIKS_ESCHEMA;
			if (rc < 0)
				return rc;
			break;
		}
		rc = check_codes(c, err, cap);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Validates doc against xsd_name and the code lists. */
static int
doc_validate(xmlDocPtr doc, const char *xsd_name, char *err, size_t cap)
{
	xmlSchemaValidCtxtPtr vctxt;
	xmlSchemaPtr s;
	struct errbuf eb = {0};
	int rc, r;

	rc = schema_get(xsd_name, &s, err, cap);
	if (rc < 0)
		return rc;
	vctxt = xmlSchemaNewValidCtxt(s);
	if (vctxt == NULL)
		return fail(err, cap, BV_ENOMEM, "out of memory");
	xmlSchemaSetValidStructuredErrors(vctxt, errbuf_cb, &eb);
	r = xmlSchemaValidateDoc(vctxt, doc);
	xmlSchemaFreeValidCtxt(vctxt);
	if (eb.oom)
		return fail(err, cap, BV_ENOMEM, "out of memory");
	if (r != 0)
		return fail(err, cap, FIKS_ESCHEMA, "not valid against %s: %s",
			    xsd_name, eb.seen ? eb.msg : "validator error");
	return check_codes((const xmlNode *)doc, err, cap);
}

static int
read_valid(const char *xsd_name, const char *xml, size_t len, xmlDocPtr *out,
	   char *err, size_t cap)
{
	xmlDocPtr doc = NULL;
	int rc;

	rc = xml_read(xml, len, &doc, err, cap);
	if (rc < 0)
		return rc;
	rc = doc_validate(doc, xsd_name, err, cap);
	if (rc < 0) {
		xmlFreeDoc(doc);
		return rc;
	}
	*out = doc;
	return 0;
}

int
fiks_arkiv_validate(const char *xsd_name, const char *xml, size_t len,
		    char *err, size_t errcap)
{
	xmlDocPtr doc = NULL;
	int rc;

	if (!plain_name(xsd_name))
		return fail(err, errcap, BV_EINVAL, "bad schema name");
	rc = read_valid(xsd_name, xml, len, &doc, err, errcap);
	xmlFreeDoc(doc);
	return rc;
}

/* ---- writing ----------------------------------------------------------- */

/* A document being built: after the first failed call every later one is
 * a no-op, so builders check oom once at the end. */
struct bld {
	xmlDocPtr doc;
	xmlNodePtr root;
	xmlNsPtr ns, mdk, xsi;
	int oom;
};

static int
bld_init(struct bld *b, const char *root, const char *ns, int with_mdk)
{
	memset(b, 0, sizeof(*b));
	pthread_once(&init_once, arkiv_init);
	b->doc = xmlNewDoc(BAD_CAST "1.0");
	if (b->doc == NULL)
		return BV_ENOMEM;
	b->root = xmlNewDocNode(b->doc, NULL, BAD_CAST root, NULL);
	if (b->root == NULL)
		return BV_ENOMEM;
	xmlDocSetRootElement(b->doc, b->root);
	b->ns = xmlNewNs(b->root, BAD_CAST ns, NULL);
	b->xsi = xmlNewNs(b->root, BAD_CAST NS_XSI, BAD_CAST "xsi");
	if (with_mdk)
		b->mdk = xmlNewNs(b->root, BAD_CAST NS_MDK, BAD_CAST "mdk");
	if (b->ns == NULL || b->xsi == NULL || (with_mdk && b->mdk == NULL))
		return BV_ENOMEM;
	xmlSetNs(b->root, b->ns);
	return 0;
}

/* Appends <ns:name>text</ns:name> (text escaped on output; NULL: empty). */
static xmlNodePtr
el(struct bld *b, xmlNodePtr parent, xmlNsPtr ns, const char *name,
   const char *text)
{
	xmlNodePtr n;

	if (b->oom || parent == NULL)
		return NULL;
	n = xmlNewTextChild(parent, ns, BAD_CAST name, BAD_CAST text);
	if (n == NULL)
		b->oom = 1;
	return n;
}

static xmlNodePtr
el_int(struct bld *b, xmlNodePtr parent, xmlNsPtr ns, const char *name, long v)
{
	char num[24];

	snprintf(num, sizeof(num), "%ld", v);
	return el(b, parent, ns, name, num);
}

/* <name><mdk:kode>code</mdk:kode></name>: the M800 kode type. */
static void
el_kode(struct bld *b, xmlNodePtr parent, xmlNsPtr ns, const char *name,
	const char *code)
{
	el(b, el(b, parent, ns, name, NULL), b->mdk, "kode", code);
}

/* <name><mdk:fagsystem/><mdk:noekkel/></name>: an eksternNoekkel. */
static void
el_noekkel(struct bld *b, xmlNodePtr parent, xmlNsPtr ns, const char *name,
	   const char *fagsystem, const char *noekkel)
{
	xmlNodePtr n = el(b, parent, ns, name, NULL);

	el(b, n, b->mdk, "fagsystem", fagsystem);
	el(b, n, b->mdk, "noekkel", noekkel);
}

static void
set_xsi_type(struct bld *b, xmlNodePtr n, const char *type)
{
	if (b->oom || n == NULL)
		return;
	if (xmlNewNsProp(n, b->xsi, BAD_CAST "type", BAD_CAST type) == NULL)
		b->oom = 1;
}

/*
 * Serialises b's document, then reads the bytes back through the same
 * parse and validation a receiver uses: what is returned is exactly what
 * was validated.
 */
static int
bld_finish(struct bld *b, const char *xsd_name, char **xml, size_t *len,
	   char *err, size_t cap)
{
	xmlChar *mem = NULL;
	xmlDocPtr back = NULL;
	char *copy = NULL;
	int size = 0, rc;

	if (b->oom)
		return fail(err, cap, BV_ENOMEM, "out of memory");
	xmlDocDumpFormatMemoryEnc(b->doc, &mem, &size, "UTF-8", 1);
	if (mem == NULL || size <= 0) {
		rc = fail(err, cap, BV_ENOMEM, "out of memory");
		goto out;
	}
	rc = read_valid(xsd_name, (const char *)mem, (size_t)size, &back, err,
			cap);
	if (rc < 0)
		goto out;
	copy = bv_malloc((size_t)size + 1);
	if (copy == NULL) {
		rc = fail(err, cap, BV_ENOMEM, "out of memory");
		goto out;
	}
	memcpy(copy, mem, (size_t)size);
	copy[size] = '\0';
	*xml = copy;
	*len = (size_t)size;
	rc = 0;
out:
	xmlFreeDoc(back);
	xmlFree(mem);
	return rc;
}

static int
check_journalpost(const struct fiks_arkiv_journalpost *jp, char *err,
		  size_t cap)
{
	size_t i, j, n_h = 0;

	if (!req(jp->system) || !req(jp->fagsystem) ||
	    !req(jp->mappe_noekkel) || !req(jp->noekkel) || !req(jp->tittel) ||
	    !req(jp->journalposttype))
		return fail(err, cap, BV_EINVAL,
			    "system, fagsystem, mappe_noekkel, noekkel, tittel "
			    "and journalposttype are required clean UTF-8");
	if (!opt(jp->journalstatus) || !opt(jp->dokumentets_dato) ||
	    !opt(jp->offentlig_tittel) || !opt(jp->tilgangsrestriksjon) ||
	    !opt(jp->skjermingshjemmel))
		return fail(err, cap, BV_EINVAL,
			    "an optional journalpost field is empty or not "
			    "clean UTF-8");
	if ((jp->tilgangsrestriksjon == NULL) !=
	    (jp->skjermingshjemmel == NULL))
		return fail(err, cap, BV_EINVAL,
			    "skjerming needs both tilgangsrestriksjon and "
			    "skjermingshjemmel");
	if (jp->n_dokumenter == 0 ||
	    jp->n_dokumenter > FIKS_ARKIV_DOKUMENTER_MAX ||
	    jp->dokumenter == NULL)
		return fail(err, cap, BV_EINVAL, "1 to %d documents, not %zu",
			    FIKS_ARKIV_DOKUMENTER_MAX, jp->n_dokumenter);
	if (jp->n_parter > FIKS_ARKIV_PARTER_MAX ||
	    (jp->n_parter > 0 && jp->parter == NULL))
		return fail(err, cap, BV_EINVAL,
			    "at most %d korrespondanseparter",
			    FIKS_ARKIV_PARTER_MAX);
	for (i = 0; i < jp->n_dokumenter; i++) {
		const struct fiks_arkiv_dokument *d = &jp->dokumenter[i];

		if (!req(d->tittel) || !package_name(dok_ref(d)) ||
		    !req(d->filnavn) || !opt(d->format) || !opt(d->mime) ||
		    !opt(d->dokumenttype) || !opt(d->variantformat) ||
		    (d->sha256 != NULL && !hex64(d->sha256)) || d->size < 0 ||
		    d->size > INT_MAX)
			return fail(err, cap, BV_EINVAL,
				    "document %zu: tittel and a plain package "
				    "file name are required, other fields "
				    "clean UTF-8, sha256 64 hex digits, size "
				    "an int",
				    i + 1);
		for (j = 0; j < i; j++)
			if (strcmp(dok_ref(&jp->dokumenter[j]), dok_ref(d)) ==
			    0)
				return fail(err, cap, BV_EINVAL,
					    "documents %zu and %zu share a "
					    "file name",
					    j + 1, i + 1);
		if (d->hoveddokument)
			n_h++;
	}
	if (n_h > 1)
		return fail(err, cap, BV_EINVAL, "more than one hoveddokument");
	for (i = 0; i < jp->n_parter; i++) {
		const struct fiks_arkiv_part *p = &jp->parter[i];

		if (!req(p->type) || !req(p->navn) || !opt(p->rolle))
			return fail(err, cap, BV_EINVAL,
				    "korrespondansepart %zu: type and navn are "
				    "required clean UTF-8",
				    i + 1);
	}
	return 0;
}

static void
add_dokument(struct bld *b, xmlNodePtr reg, const struct fiks_arkiv_dokument *d,
	     int hoved, long nummer)
{
	xmlNodePtr db, dobj;

	db = el(b, reg, b->ns, "dokumentbeskrivelse", NULL);
	if (d->dokumenttype != NULL)
		el_kode(b, db, b->ns, "dokumenttype", d->dokumenttype);
	el_kode(b, db, b->ns, "dokumentstatus", "F");
	el(b, db, b->ns, "tittel", d->tittel);
	el_kode(b, db, b->ns, "tilknyttetRegistreringSom", hoved ? "H" : "V");
	el_int(b, db, b->ns, "dokumentnummer", nummer);
	dobj = el(b, db, b->ns, "dokumentobjekt", NULL);
	el(b, dobj, b->ns, "versjonsnummer", "1");
	/* Arkivformat unless the caller says otherwise: the transcript is
	 * UTF-8 text, a format the Riksarkivar accepts for deposit; a
	 * citizen's file may be a production format the archive converts. */
	el_kode(b, dobj, b->ns, "variantformat",
		d->variantformat != NULL ? d->variantformat : "A");
	if (d->format != NULL)
		el_kode(b, dobj, b->ns, "format", d->format);
	if (d->mime != NULL)
		el(b, dobj, b->ns, "mimeType", d->mime);
	el(b, dobj, b->ns, "filnavn", d->filnavn);
	el(b, dobj, b->ns, "referanseDokumentfil", dok_ref(d));
	if (d->sha256 != NULL) {
		el(b, dobj, b->ns, "sjekksum", d->sha256);
		el(b, dobj, b->ns, "sjekksumAlgoritme", "SHA256");
	}
	if (d->size > 0)
		el_int(b, dobj, b->ns, "filstoerrelse", (long)d->size);
}

int
fiks_arkiv_arkivmelding(const struct fiks_arkiv_journalpost *jp, char **xml,
			size_t *len, char *err, size_t errcap)
{
	struct bld b = {0};
	xmlNodePtr reg, ref, skj;
	size_t i, hoved = 0;
	long nummer = 1;
	int rc;

	if (jp == NULL || xml == NULL || len == NULL)
		return fail(err, errcap, BV_EINVAL, "NULL argument");
	rc = check_journalpost(jp, err, errcap);
	if (rc < 0)
		return rc;
	for (i = 0; i < jp->n_dokumenter; i++)
		if (jp->dokumenter[i].hoveddokument) {
			hoved = i;
			break;
		}
	rc = bld_init(&b, "arkivmelding", NS_AM, 1);
	if (rc < 0) {
		fail(err, errcap, rc, "out of memory");
		goto out;
	}
	el(&b, b.root, b.ns, "system", jp->system);
	el_int(&b, b.root, b.ns, "antallFiler", (long)jp->n_dokumenter);
	reg = el(&b, b.root, b.ns, "registrering", NULL);
	set_xsi_type(&b, reg, "journalpost");
	/* The saksmappe is the fagsystem's case, found by its key. */
	ref = el(&b, reg, b.ns, "referanseForelderMappe", NULL);
	el_noekkel(&b, ref, b.mdk, "referanseEksternNoekkel", jp->fagsystem,
		   jp->mappe_noekkel);
	if (jp->tilgangsrestriksjon != NULL) {
		skj = el(&b, reg, b.ns, "skjerming", NULL);
		el_kode(&b, skj, b.ns, "tilgangsrestriksjon",
			jp->tilgangsrestriksjon);
		el(&b, skj, b.ns, "skjermingshjemmel", jp->skjermingshjemmel);
	}
	/* The hoveddokument first, as dokumentnummer 1; vedlegg after it in
	 * the caller's order. */
	add_dokument(&b, reg, &jp->dokumenter[hoved], 1, nummer++);
	for (i = 0; i < jp->n_dokumenter; i++)
		if (i != hoved)
			add_dokument(&b, reg, &jp->dokumenter[i], 0, nummer++);
	el(&b, reg, b.ns, "tittel", jp->tittel);
	if (jp->offentlig_tittel != NULL)
		el(&b, reg, b.ns, "offentligTittel", jp->offentlig_tittel);
	for (i = 0; i < jp->n_parter; i++) {
		const struct fiks_arkiv_part *p = &jp->parter[i];
		xmlNodePtr kp = el(&b, reg, b.ns, "korrespondansepart", NULL);
		char *navn = NULL;

		el_kode(&b, kp, b.ns, "korrespondanseparttype", p->type);
		if (p->rolle != NULL) {
			size_t n = strlen(p->navn) + strlen(p->rolle) + 4;

			navn = bv_malloc(n);
			if (navn == NULL) {
				b.oom = 1;
				break;
			}
			snprintf(navn, n, "%s (%s)", p->navn, p->rolle);
		}
		el(&b, kp, b.ns, "korrespondansepartNavn",
		   navn != NULL ? navn : p->navn);
		bv_free(navn);
		if (p->skjermet)
			el(&b, kp, b.ns, "erSkjermet", "true");
		/* Every part of a bvchat conversation is a person: lets the
		 * archive keep the name out of the public journal. */
		el(&b, kp, b.ns, "erPersonnavn", "true");
	}
	el_noekkel(&b, reg, b.ns, "referanseEksternNoekkel", jp->fagsystem,
		   jp->noekkel);
	el_kode(&b, reg, b.ns, "journalposttype", jp->journalposttype);
	el_kode(&b, reg, b.ns, "journalstatus",
		jp->journalstatus != NULL ? jp->journalstatus : "F");
	if (jp->dokumentets_dato != NULL)
		el(&b, reg, b.ns, "dokumentetsDato", jp->dokumentets_dato);
	rc = bld_finish(&b, XSD_ARKIVMELDING, xml, len, err, errcap);
out:
	xmlFreeDoc(b.doc);
	return rc;
}

int
fiks_arkiv_kvittering_build(const struct fiks_arkiv_kvittering *k, char **xml,
			    size_t *len)
{
	struct bld b = {0};
	xmlNodePtr reg;
	int rc;

	if (k == NULL || xml == NULL || len == NULL ||
	    memchr(k->system_id, '\0', sizeof(k->system_id)) == NULL ||
	    memchr(k->fagsystem, '\0', sizeof(k->fagsystem)) == NULL ||
	    memchr(k->noekkel, '\0', sizeof(k->noekkel)) == NULL ||
	    !req(k->system_id) || !xml_clean(k->fagsystem) ||
	    !xml_clean(k->noekkel))
		return BV_EINVAL;
	rc = bld_init(&b, "arkivmeldingKvittering", NS_KV, 1);
	if (rc < 0)
		goto out;
	reg = el(&b, b.root, b.ns, "registreringKvittering", NULL);
	set_xsi_type(&b, reg, "journalpostKvittering");
	el(&b, reg, b.ns, "systemID", k->system_id);
	if (k->fagsystem[0] != '\0' && k->noekkel[0] != '\0')
		el_noekkel(&b, reg, b.ns, "referanseEksternNoekkel",
			   k->fagsystem, k->noekkel);
	el(&b, reg, b.ns, "opprettetEllerEksisterende",
	   k->eksisterende ? "Eksisterende" : "Opprettet");
	if (k->journalaar > 0)
		el_int(&b, reg, b.ns, "journalaar", k->journalaar);
	if (k->journalsekvensnummer > 0)
		el_int(&b, reg, b.ns, "journalsekvensnummer",
		       k->journalsekvensnummer);
	if (k->journalpostnummer > 0)
		el_int(&b, reg, b.ns, "journalpostnummer",
		       k->journalpostnummer);
	rc = bld_finish(&b, XSD_KVITTERING, xml, len, NULL, 0);
out:
	xmlFreeDoc(b.doc);
	return rc;
}

static const struct feil_type *
feil_find(const char *type)
{
	size_t i;

	if (type == NULL)
		return NULL;
	for (i = 0; i < sizeof(feil_types) / sizeof(feil_types[0]); i++)
		if (strcmp(feil_types[i].type, type) == 0)
			return &feil_types[i];
	return NULL;
}

int
fiks_arkiv_feilmelding_build(const char *type, const char *feil_id,
			     const char *melding, char **xml, size_t *len)
{
	const struct feil_type *ft = feil_find(type);
	struct bld b = {0};
	xmlNsPtr fns;
	char xsd[128];
	int rc;

	if (ft == NULL || !req(feil_id) || !req(melding) || xml == NULL ||
	    len == NULL)
		return BV_EINVAL;
	snprintf(xsd, sizeof(xsd), "%s.xsd", ft->type);
	rc = bld_init(&b, ft->root, ft->ns, 0);
	if (rc < 0)
		goto out;
	/* feilmeldingBase's elements live in its own namespace. */
	fns = xmlNewNs(b.root, BAD_CAST NS_FEIL, BAD_CAST "feil");
	if (fns == NULL) {
		rc = BV_ENOMEM;
		goto out;
	}
	el(&b, b.root, fns, "feilId", feil_id);
	el(&b, b.root, fns, "feilmelding", melding);
	rc = bld_finish(&b, xsd, xml, len, NULL, 0);
out:
	xmlFreeDoc(b.doc);
	return rc;
}

/* ---- parsing ----------------------------------------------------------- */

/* A reader: strings are copied with bv_strdup; oom is sticky. */
struct rd {
	int oom;
};

/* The text of n (NULL when n is), copied. */
static char *
txt(struct rd *r, const xmlNode *n)
{
	xmlChar *v;
	char *s;

	if (n == NULL)
		return NULL;
	v = xmlNodeGetContent(n);
	if (v == NULL) {
		r->oom = 1;
		return NULL;
	}
	s = bv_strdup((const char *)v);
	xmlFree(v);
	if (s == NULL)
		r->oom = 1;
	return s;
}

/* The text of parent's {ns}name, copied, or NULL. */
static char *
ctxt_of(struct rd *r, const xmlNode *parent, const char *ns, const char *name)
{
	return txt(r, child(parent, ns, name));
}

/* The kode of parent's {ns}name, copied, or NULL. */
static char *
kode_of(struct rd *r, const xmlNode *parent, const char *ns, const char *name)
{
	return txt(r, child(child(parent, ns, name), NS_MDK, "kode"));
}

/* 1 when n's xsi:type names type (any prefix). */
static int
has_xsi_type(const xmlNode *n, const char *type)
{
	xmlChar *v = xmlGetNsProp(n, BAD_CAST "type", BAD_CAST NS_XSI);
	const char *local;
	int match;

	if (v == NULL)
		return 0;
	local = strchr((const char *)v, ':');
	local = local != NULL ? local + 1 : (const char *)v;
	match = strcmp(local, type) == 0;
	xmlFree(v);
	return match;
}

/* A validated xs:int/xs:boolean-like number; 0 when absent. */
static long
num_of(const xmlNode *parent, const char *ns, const char *name)
{
	xmlNodePtr n = child(parent, ns, name);
	xmlChar *v;
	long x;

	if (n == NULL)
		return 0;
	v = xmlNodeGetContent(n);
	if (v == NULL)
		return 0;
	x = strtol((const char *)v, NULL, 10);
	xmlFree(v);
	return x;
}

static int
is_true(const xmlNode *parent, const char *ns, const char *name)
{
	xmlNodePtr n = child(parent, ns, name);
	xmlChar *v;
	int t;

	if (n == NULL)
		return 0;
	v = xmlNodeGetContent(n);
	if (v == NULL)
		return 0;
	/* xs:boolean, whitespace collapsed: "true" or "1". */
	t = strstr((const char *)v, "true") != NULL ||
	    strstr((const char *)v, "1") != NULL;
	xmlFree(v);
	return t;
}

void
fiks_arkiv_melding_free(struct fiks_arkiv_melding *m)
{
	size_t i;

	if (m == NULL)
		return;
	bv_free(m->system);
	bv_free(m->mappe_noekkel);
	bv_free(m->noekkel);
	bv_free(m->tittel);
	bv_free(m->journalposttype);
	for (i = 0; i < m->n_filnavn; i++)
		bv_free(m->filnavn[i]);
	bv_free(m->filnavn);
	bv_free(m->fagsystem);
	bv_free(m->journalstatus);
	bv_free(m->dokumentets_dato);
	bv_free(m->offentlig_tittel);
	bv_free(m->tilgangsrestriksjon);
	bv_free(m->skjermingshjemmel);
	for (i = 0; i < m->n_parter; i++) {
		bv_free(m->parter[i].type);
		bv_free(m->parter[i].navn);
	}
	bv_free(m->parter);
	for (i = 0; i < m->n_dokumenter; i++) {
		struct fiks_arkiv_melding_dok *d = &m->dokumenter[i];

		bv_free(d->tittel);
		bv_free(d->filnavn);
		bv_free(d->referanse);
		bv_free(d->format);
		bv_free(d->mime);
		bv_free(d->variantformat);
		bv_free(d->sjekksum);
		bv_free(d->dokumenttype);
	}
	bv_free(m->dokumenter);
	memset(m, 0, sizeof(*m));
}

static size_t
count_children(const xmlNode *parent, const char *ns, const char *name)
{
	const xmlNode *c;
	size_t n = 0;

	for (c = parent->children; c != NULL; c = c->next)
		if (is_el(c, ns, name))
			n++;
	return n;
}

/* Reads the journalpost reg's parts and documents into m. */
static void
read_lists(struct rd *r, const xmlNode *reg, struct fiks_arkiv_melding *m)
{
	const xmlNode *c, *o;
	size_t n_parter = count_children(reg, NS_AM, "korrespondansepart");
	size_t n_dok = count_children(reg, NS_AM, "dokumentbeskrivelse");
	size_t n_obj = 0;

	for (c = reg->children; c != NULL; c = c->next)
		if (is_el(c, NS_AM, "dokumentbeskrivelse"))
			n_obj += count_children(c, NS_AM, "dokumentobjekt");
	m->parter = bv_calloc(n_parter, sizeof(*m->parter));
	m->dokumenter = bv_calloc(n_dok, sizeof(*m->dokumenter));
	m->filnavn = bv_calloc(n_obj, sizeof(*m->filnavn));
	if (m->parter == NULL || m->dokumenter == NULL || m->filnavn == NULL) {
		r->oom = 1;
		return;
	}
	for (c = reg->children; c != NULL && !r->oom; c = c->next) {
		if (is_el(c, NS_AM, "korrespondansepart")) {
			struct fiks_arkiv_melding_part *p =
				&m->parter[m->n_parter++];

			p->type =
				kode_of(r, c, NS_AM, "korrespondanseparttype");
			p->navn =
				ctxt_of(r, c, NS_AM, "korrespondansepartNavn");
			p->skjermet = is_true(c, NS_AM, "erSkjermet");
		} else if (is_el(c, NS_AM, "dokumentbeskrivelse")) {
			struct fiks_arkiv_melding_dok *d =
				&m->dokumenter[m->n_dokumenter++];
			char *som;

			d->tittel = ctxt_of(r, c, NS_AM, "tittel");
			d->dokumenttype = kode_of(r, c, NS_AM, "dokumenttype");
			som = kode_of(r, c, NS_AM, "tilknyttetRegistreringSom");
			d->hoveddokument = som != NULL && strcmp(som, "H") == 0;
			bv_free(som);
			o = child(c, NS_AM, "dokumentobjekt");
			d->filnavn = ctxt_of(r, o, NS_AM, "filnavn");
			d->referanse =
				ctxt_of(r, o, NS_AM, "referanseDokumentfil");
			d->format = kode_of(r, o, NS_AM, "format");
			d->mime = ctxt_of(r, o, NS_AM, "mimeType");
			d->variantformat =
				kode_of(r, o, NS_AM, "variantformat");
			d->sjekksum = ctxt_of(r, o, NS_AM, "sjekksum");
			{
				char *fs =
					ctxt_of(r, o, NS_AM, "filstoerrelse");

				d->filstoerrelse =
					fs != NULL ? strtoll(fs, NULL, 10) : -1;
				bv_free(fs);
			}
			for (o = c->children; o != NULL && !r->oom; o = o->next)
				if (is_el(o, NS_AM, "dokumentobjekt"))
					m->filnavn[m->n_filnavn++] =
						ctxt_of(r, o, NS_AM,
							"referanseDokumentfil");
		}
	}
}

int
fiks_arkiv_arkivmelding_parse(const char *xml, size_t len,
			      struct fiks_arkiv_melding *out, char *err,
			      size_t errcap)
{
	struct fiks_arkiv_melding m = {0};
	struct rd r = {0};
	xmlDocPtr doc = NULL;
	xmlNodePtr root, reg, ref, skj;
	long antall;
	int rc;

	if (out == NULL)
		return fail(err, errcap, BV_EINVAL, "NULL argument");
	memset(out, 0, sizeof(*out));
	rc = read_valid(XSD_ARKIVMELDING, xml, len, &doc, err, errcap);
	if (rc < 0)
		return rc;
	root = xmlDocGetRootElement(doc);
	reg = child(root, NS_AM, "registrering");
	if (reg == NULL || !has_xsi_type(reg, "journalpost")) {
		rc = fail(err, errcap, FIKS_EXML,
			  "the arkivmelding has no registrering of type "
			  "journalpost");
		goto out;
	}
	antall = num_of(root, NS_AM, "antallFiler");
	m.antall_filer = antall < 0 || antall > INT_MAX ? -1 : (int)antall;
	m.system = ctxt_of(&r, root, NS_AM, "system");
	ref = child(child(reg, NS_AM, "referanseForelderMappe"), NS_MDK,
		    "referanseEksternNoekkel");
	if (ref == NULL)
		ref = child(child(root, NS_AM, "mappe"), NS_AM,
			    "referanseEksternNoekkel");
	m.mappe_noekkel = ctxt_of(&r, ref, NS_MDK, "noekkel");
	ref = child(reg, NS_AM, "referanseEksternNoekkel");
	m.fagsystem = ctxt_of(&r, ref, NS_MDK, "fagsystem");
	m.noekkel = ctxt_of(&r, ref, NS_MDK, "noekkel");
	m.tittel = ctxt_of(&r, reg, NS_AM, "tittel");
	m.offentlig_tittel = ctxt_of(&r, reg, NS_AM, "offentligTittel");
	m.journalposttype = kode_of(&r, reg, NS_AM, "journalposttype");
	m.journalstatus = kode_of(&r, reg, NS_AM, "journalstatus");
	m.dokumentets_dato = ctxt_of(&r, reg, NS_AM, "dokumentetsDato");
	skj = child(reg, NS_AM, "skjerming");
	m.skjermet = skj != NULL;
	m.tilgangsrestriksjon = kode_of(&r, skj, NS_AM, "tilgangsrestriksjon");
	m.skjermingshjemmel = ctxt_of(&r, skj, NS_AM, "skjermingshjemmel");
	read_lists(&r, reg, &m);
	if (r.oom) {
		rc = fail(err, errcap, BV_ENOMEM, "out of memory");
		goto out;
	}
	*out = m;
	memset(&m, 0, sizeof(m));
	rc = 0;
out:
	fiks_arkiv_melding_free(&m);
	xmlFreeDoc(doc);
	return rc;
}

/* Copies parent's {ns}name text into dst[cap]; FIKS_EXML when too long. */
static int
copy_field(const xmlNode *parent, const char *ns, const char *name, char *dst,
	   size_t cap, char *err, size_t errcap)
{
	xmlNodePtr n = child(parent, ns, name);
	xmlChar *v;
	int rc = 0;

	dst[0] = '\0';
	if (n == NULL)
		return 0;
	v = xmlNodeGetContent(n);
	if (v == NULL)
		return fail(err, errcap, BV_ENOMEM, "out of memory");
	if (strlen((const char *)v) >= cap)
		rc = fail(err, errcap, FIKS_EXML, "%s longer than %zu bytes",
			  name, cap - 1);
	else
		memcpy(dst, v, strlen((const char *)v) + 1);
	xmlFree(v);
	return rc;
}

int
fiks_arkiv_kvittering_parse(const char *xml, size_t len,
			    struct fiks_arkiv_kvittering *out, char *err,
			    size_t errcap)
{
	struct fiks_arkiv_kvittering k;
	xmlDocPtr doc = NULL;
	xmlNodePtr root, reg, ref;
	char state[16];
	int rc;

	if (out == NULL)
		return fail(err, errcap, BV_EINVAL, "NULL argument");
	memset(out, 0, sizeof(*out));
	memset(&k, 0, sizeof(k));
	rc = read_valid(XSD_KVITTERING, xml, len, &doc, err, errcap);
	if (rc < 0)
		return rc;
	root = xmlDocGetRootElement(doc);
	reg = child(root, NS_KV, "registreringKvittering");
	if (reg == NULL) {
		xmlNodePtr f = child(root, NS_KV, "registreringFeilet");
		char msg[200];

		if (f != NULL && copy_field(f, NS_FEIL, "feilmelding", msg,
					    sizeof(msg), NULL, 0) == 0)
			rc = fail(err, errcap, FIKS_EXML,
				  "the archive reports registreringFeilet: %s",
				  msg);
		else
			rc = fail(err, errcap, FIKS_EXML,
				  "the kvittering has no "
				  "registreringKvittering");
		goto out;
	}
	rc = copy_field(reg, NS_KV, "systemID", k.system_id,
			sizeof(k.system_id), err, errcap);
	if (rc < 0)
		goto out;
	ref = child(reg, NS_KV, "referanseEksternNoekkel");
	rc = copy_field(ref, NS_MDK, "fagsystem", k.fagsystem,
			sizeof(k.fagsystem), err, errcap);
	if (rc == 0 && ref != NULL)
		rc = copy_field(ref, NS_MDK, "noekkel", k.noekkel,
				sizeof(k.noekkel), err, errcap);
	if (rc == 0)
		rc = copy_field(reg, NS_KV, "opprettetEllerEksisterende", state,
				sizeof(state), err, errcap);
	if (rc < 0)
		goto out;
	k.eksisterende = strcmp(state, "Eksisterende") == 0;
	k.journalaar = (int)num_of(reg, NS_KV, "journalaar");
	k.journalsekvensnummer =
		(int)num_of(reg, NS_KV, "journalsekvensnummer");
	k.journalpostnummer = (int)num_of(reg, NS_KV, "journalpostnummer");
	*out = k;
	rc = 0;
out:
	xmlFreeDoc(doc);
	return rc;
}

int
fiks_arkiv_feilmelding_parse(const char *type, const char *xml, size_t len,
			     char *msg, size_t cap)
{
	const struct feil_type *ft = feil_find(type);
	xmlDocPtr doc = NULL;
	xmlNodePtr n;
	xmlChar *v;
	char xsd[128];
	int rc;

	if (ft == NULL || msg == NULL || cap == 0)
		return BV_EINVAL;
	msg[0] = '\0';
	snprintf(xsd, sizeof(xsd), "%s.xsd", ft->type);
	rc = read_valid(xsd, xml, len, &doc, NULL, 0);
	if (rc < 0)
		return rc;
	n = child(xmlDocGetRootElement(doc), NS_FEIL, "feilmelding");
	v = n != NULL ? xmlNodeGetContent(n) : NULL;
	if (v == NULL) {
		rc = n != NULL ? BV_ENOMEM : FIKS_EXML;
		goto out;
	}
	copy_utf8(msg, cap, (const char *)v);
	xmlFree(v);
	rc = 0;
out:
	xmlFreeDoc(doc);
	return rc;
}
