/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_error.c: unit tests of fiks/fiks_error.c and of the "Error codes"
 * table in docs/fiks.md: every FIKS_ERR_MAP code is a row there with its
 * number and retry flag, every FIKS_ row there is in the map, names and
 * messages are unique, and BV_E* codes fall through to bvchat's table.
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

#include "bv_error.h"
#include "fiks_error.h"

struct row {
	const char *name;
	int code;
	int retryable;
	const char *msg;
};

static const struct row rows[] = {
#define ROW(name, num, retry, msg) {"FIKS_" #name, num, retry, msg},
	FIKS_ERR_MAP(ROW)
#undef ROW
};
#define NROWS (sizeof(rows) / sizeof(rows[0]))

/* A row of the docs table: | `FIKS_EZIP` | -100 | no | … | */
struct doc_row {
	char name[64];
	int code;
	int retryable;
};

#define DOC_MAX 64

/* Parses the table under "## Error codes" of docs/fiks.md. */
static size_t
read_doc_table(struct doc_row *out)
{
	FILE *f = fopen(BV_SOURCE_DIR "/docs/fiks.md", "r");
	char line[2048];
	int in_section = 0;
	size_t n = 0;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		char name[64], retry[16];
		int code;

		if (!strncmp(line, "## ", 3)) {
			in_section = !strncmp(line, "## Error codes", 14);
			continue;
		}
		if (!in_section || line[0] != '|')
			continue;
		if (sscanf(line, "| `%63[A-Z_]` | %d | %15[a-z] |", name, &code,
			   retry) != 3)
			continue; /* header and separator rows */
		assert_true(n < DOC_MAX);
		assert_true(!strcmp(retry, "yes") || !strcmp(retry, "no"));
		strcpy(out[n].name, name);
		out[n].code = code;
		out[n].retryable = !strcmp(retry, "yes");
		n++;
	}
	fclose(f);
	return n;
}

static void
test_doc_table(void **state)
{
	struct doc_row doc[DOC_MAX];
	size_t n, i, j;
	int found;

	(void)state;
	n = read_doc_table(doc);
	assert_int_equal(n, NROWS);
	for (i = 0; i < NROWS; i++) {
		found = 0;
		for (j = 0; j < n; j++) {
			if (strcmp(doc[j].name, rows[i].name))
				continue;
			found++;
			assert_int_equal(doc[j].code, rows[i].code);
			assert_int_equal(doc[j].retryable, rows[i].retryable);
		}
		if (found != 1)
			fail_msg("%s appears %d times in docs/fiks.md",
				 rows[i].name, found);
	}
	for (j = 0; j < n; j++) {
		found = 0;
		for (i = 0; i < NROWS; i++)
			found += !strcmp(doc[j].name, rows[i].name);
		if (found != 1)
			fail_msg("docs/fiks.md lists %s, not in FIKS_ERR_MAP",
				 doc[j].name);
	}
}

static void
test_table_unique(void **state)
{
	size_t i, j;

	(void)state;
	for (i = 0; i < NROWS; i++) {
		/* Our range, clear of bvchat's -1 … -99. */
		assert_true(rows[i].code <= -100 && rows[i].code >= -149);
		assert_true(strlen(rows[i].msg) > 0);
		for (j = 0; j < i; j++) {
			assert_int_not_equal(rows[i].code, rows[j].code);
			assert_string_not_equal(rows[i].name, rows[j].name);
			assert_string_not_equal(rows[i].msg, rows[j].msg);
		}
	}
}

static void
test_lookups(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < NROWS; i++) {
		assert_string_equal(fiks_errname(rows[i].code), rows[i].name);
		assert_string_equal(fiks_strerror(rows[i].code), rows[i].msg);
		assert_int_equal(fiks_retryable(rows[i].code),
				 rows[i].retryable);
	}
	assert_string_equal(fiks_errname(FIKS_EDIGEST), "FIKS_EDIGEST");
	assert_int_equal(fiks_retryable(FIKS_EAMQP), 1);
	assert_int_equal(fiks_retryable(FIKS_ESIGNATURE), 0);
	/* BV_E* codes the library also returns. */
	assert_string_equal(fiks_errname(BV_ENOMEM), "BV_ENOMEM");
	assert_string_equal(fiks_strerror(BV_EIO), bv_strerror(BV_EIO));
	assert_int_equal(fiks_retryable(BV_EINVAL), 0);
	assert_string_equal(fiks_errname(-149), bv_errname(-149));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_doc_table),
		cmocka_unit_test(test_table_unique),
		cmocka_unit_test(test_lookups),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
