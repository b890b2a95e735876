/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * bvfiks-keygen: makes an RSA key (PKCS#8 PEM, mode 0600) and a self-signed
 * certificate for a FIKS IO account of the development set-up and tests
 * (fiks_identity_generate). Production keys and virksomhetssertifikater
 * come from their issuers, never from here. It refuses to overwrite an
 * existing key, so a slip cannot destroy the key an account depends on.
 * Exit status: 0 done, 1 failed, 2 usage.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bv_error.h"
#include "fiks_error.h"
#include "fiks_identity.h"

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: bvfiks-keygen --key KEY.pem --cert CERT.pem --cn NAME "
		"[--bits N] [--days N]\n"
		"\n"
		"Writes a new RSA key (PKCS#8 PEM, mode 0600) to KEY.pem and a "
		"self-signed\n"
		"certificate for common name NAME to CERT.pem, for development "
		"and tests.\n"
		"\n"
		"  --bits N  key size, %d to %d (default 2048)\n"
		"  --days N  certificate validity, 1 to %d days (default 365)\n"
		"  --help    this text\n",
		FIKS_IDENTITY_BITS_MIN, FIKS_IDENTITY_BITS_MAX,
		FIKS_IDENTITY_DAYS_MAX);
}

/* Parses a decimal int in [min, max]; -1 when it is not one. */
static int
parse_int(const char *s, int min, int max, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -1;
	*out = (int)v;
	return 0;
}

int
main(int argc, char **argv)
{
	const char *key = NULL, *cert = NULL, *cn = NULL;
	int bits = 2048, days = 365, i, rc;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 0;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "bvfiks-keygen: %s needs a value\n", a);
			usage(stderr);
			return 2;
		}
		if (!strcmp(a, "--key")) {
			key = argv[++i];
		} else if (!strcmp(a, "--cert")) {
			cert = argv[++i];
		} else if (!strcmp(a, "--cn")) {
			cn = argv[++i];
		} else if (!strcmp(a, "--bits")) {
			if (parse_int(argv[++i], FIKS_IDENTITY_BITS_MIN,
				      FIKS_IDENTITY_BITS_MAX, &bits) < 0) {
				fprintf(stderr,
					"bvfiks-keygen: --bits must be %d to "
					"%d\n",
					FIKS_IDENTITY_BITS_MIN,
					FIKS_IDENTITY_BITS_MAX);
				return 2;
			}
		} else if (!strcmp(a, "--days")) {
			if (parse_int(argv[++i], 1, FIKS_IDENTITY_DAYS_MAX,
				      &days) < 0) {
				fprintf(stderr,
					"bvfiks-keygen: --days must be 1 to "
					"%d\n",
					FIKS_IDENTITY_DAYS_MAX);
				return 2;
			}
		} else {
			fprintf(stderr, "bvfiks-keygen: unknown option %s\n",
				a);
			usage(stderr);
			return 2;
		}
	}
	if (!key || !cert || !cn || !*key || !*cert) {
		fprintf(stderr, "bvfiks-keygen: --key, --cert and --cn are "
				"required\n");
		usage(stderr);
		return 2;
	}
	if (!*cn || strlen(cn) > 64) {
		fprintf(stderr, "bvfiks-keygen: --cn must be 1 to 64 bytes\n");
		return 2;
	}
	if (!strcmp(key, cert)) {
		fprintf(stderr, "bvfiks-keygen: --key and --cert must be "
				"different files\n");
		return 2;
	}
	if (access(key, F_OK) == 0) {
		fprintf(stderr,
			"bvfiks-keygen: %s exists; remove it first if it "
			"really is to be replaced\n",
			key);
		return 1;
	}
	errno = 0;
	rc = fiks_identity_generate(key, cert, cn, bits, days);
	if (rc == BV_EIO) {
		fprintf(stderr, "bvfiks-keygen: cannot write %s or %s: %s\n",
			key, cert, errno ? strerror(errno) : "I/O error");
		return 1;
	}
	if (rc < 0) {
		fprintf(stderr, "bvfiks-keygen: %s (%s)\n", fiks_strerror(rc),
			fiks_errname(rc));
		return 1;
	}
	printf("bvfiks-keygen: wrote %s and %s (CN=%s, %d bits, %d days)\n",
	       key, cert, cn, bits, days);
	return 0;
}
