/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * fuzz_fiks.c: libFuzzer driver for the parsers of libbvfiks that read what
 * comes in over FIKS IO (docs/fiks.md): what the archive answers
 * (kvittering, the three feilmeldinger), what the test archive peer reads
 * (arkivmelding), the ASiC-E package and the CMS envelope around it.
 *
 * The first input byte chooses the parser, the rest is its input. Beyond
 * "no crash, no leak" it aborts when a parser reports success and breaks
 * a promise of its header: NUL-terminated strings within their arrays,
 * journal numbers in range, files that are where the package says.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fiks_arkiv.h"
#include "fiks_asice.h"
#include "fiks_cms.h"
#include "fiks_identity.h"
#include "fuzz.h"

enum target {
	T_KVITTERING,
	T_SERVERFEIL,
	T_UGYLDIG,
	T_IKKEFUNNET,
	T_ARKIVMELDING,
	T_ASICE,
	T_CMS,
	T__COUNT
};

/* A string member of a struct that must end within its array. */
#define TERMINATED(s) CHECK(memchr((s), '\0', sizeof(s)) != NULL)

/* The CMS target's recipient: one RSA key for the whole run, made in a
 * temporary directory that is removed again at once. */
static struct fiks_identity *
identity(void)
{
	static struct fiks_identity *id;
	static int tried;
	char dir[] = "/tmp/bv-fuzz-fiks.XXXXXX", key[64], cert[64];

	if (tried)
		return id;
	tried = 1;
	if (!mkdtemp(dir))
		return NULL;
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
	if (fiks_identity_generate(key, cert, "bvchat fuzz", 2048, 1) < 0 ||
	    fiks_identity_load(key, cert, &id) < 0)
		id = NULL;
	unlink(key);
	unlink(cert);
	rmdir(dir);
	return id;
}

static void
kvittering(const char *xml, size_t len)
{
	struct fiks_arkiv_kvittering k;
	char err[256];

	if (fiks_arkiv_kvittering_parse(xml, len, &k, err, sizeof(err)) < 0) {
		TERMINATED(err);
		return;
	}
	TERMINATED(k.system_id);
	TERMINATED(k.fagsystem);
	TERMINATED(k.noekkel);
	CHECK(k.system_id[0] != '\0');
	CHECK(k.eksisterende == 0 || k.eksisterende == 1);
}

static void
feilmelding(const char *type, const char *xml, size_t len)
{
	char msg[64];

	memset(msg, 'x', sizeof(msg));
	if (fiks_arkiv_feilmelding_parse(type, xml, len, msg, sizeof(msg)) < 0)
		return;
	TERMINATED(msg);
}

static void
arkivmelding(const char *xml, size_t len)
{
	struct fiks_arkiv_melding m;
	char err[256];

	if (fiks_arkiv_arkivmelding_parse(xml, len, &m, err, sizeof(err)) < 0) {
		TERMINATED(err);
		return;
	}
	fiks_arkiv_melding_free(&m);
}

static void
asice(const uint8_t *zip, size_t len)
{
	struct fiks_asice *a = NULL;
	const struct fiks_file *f;
	char err[256];
	size_t i, n;

	if (fiks_asice_read(zip, len, NULL, &a, err, sizeof(err)) < 0) {
		TERMINATED(err);
		CHECK(a == NULL);
		return;
	}
	n = fiks_asice_count(a);
	for (i = 0; i < n; i++) {
		f = fiks_asice_file(a, i);
		CHECK(f != NULL && f->name != NULL);
		CHECK(fiks_asice_find(a, f->name) != NULL);
	}
	CHECK(fiks_asice_file(a, n) == NULL);
	CHECK(fiks_asice_signer(a) != NULL);
	fiks_asice_free(a);
}

static void
cms(const uint8_t *der, size_t len)
{
	struct fiks_identity *id = identity();
	unsigned char *out = NULL;
	size_t out_len = 0;

	if (!id)
		abort();
	if (fiks_cms_decrypt(der, len, id, &out, &out_len) == 0)
		CHECK(out != NULL || out_len == 0);
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *xml;

	if (size < 1)
		return 0;
	xml = (const char *)data + 1;
	switch (data[0] % T__COUNT) {
	case T_KVITTERING:
		kvittering(xml, size - 1);
		break;
	case T_SERVERFEIL:
		feilmelding(FIKS_ARKIV_SERVERFEIL, xml, size - 1);
		break;
	case T_UGYLDIG:
		feilmelding(FIKS_ARKIV_UGYLDIG, xml, size - 1);
		break;
	case T_IKKEFUNNET:
		feilmelding(FIKS_ARKIV_IKKEFUNNET, xml, size - 1);
		break;
	case T_ARKIVMELDING:
		arkivmelding(xml, size - 1);
		break;
	case T_ASICE:
		asice(data + 1, size - 1);
		break;
	case T_CMS:
		cms(data + 1, size - 1);
		break;
	}
	return 0;
}
