/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * two_identities.h: the fixture of the fiks package tests (test_asice.c,
 * test_cms.c): two fresh 2048-bit identities, A and B, in a temporary
 * directory made once per program (key generation is the slow part).
 * Included by one test source each; not a library.
 */
#ifndef BV_TEST_TWO_IDENTITIES_H
#define BV_TEST_TWO_IDENTITIES_H

#include <stdio.h>
#include <stdlib.h>

#include "fiks_identity.h"

static char dir[] = "/tmp/test_fiks.XXXXXX";
static struct fiks_identity *ida, *idb;

/* One identity named "<what> <letter>" as dir/<letter>.key and .crt. */
static int
identity_make(const char *what, char letter, struct fiks_identity **out)
{
	char k[256], c[256], cn[64];

	snprintf(k, sizeof(k), "%s/%c.key", dir, letter);
	snprintf(c, sizeof(c), "%s/%c.crt", dir, letter);
	snprintf(cn, sizeof(cn), "%s %c", what, letter - 'a' + 'A');
	return fiks_identity_generate(k, c, cn, 2048, 1) ||
			       fiks_identity_load(k, c, out)
		       ? -1
		       : 0;
}

static int
two_identities_setup(const char *what)
{
	if (!mkdtemp(dir))
		return -1;
	return identity_make(what, 'a', &ida) || identity_make(what, 'b', &idb)
		       ? -1
		       : 0;
}

static int
two_identities_teardown(void)
{
	char cmd[300];

	fiks_identity_free(ida);
	fiks_identity_free(idb);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

#endif /* BV_TEST_TWO_IDENTITIES_H */
