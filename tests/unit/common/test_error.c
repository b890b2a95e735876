/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_error.c: unit tests of common/bv_error.c, and a contract test that
 * the error table of docs/protocol.md matches BV_ERR_MAP (name, number,
 * retryable) row by row.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bv_error.h"

struct row {
	const char *name;
	int code;
	int retryable;
	const char *msg;
};

static const struct row rows[] = {
#define ROW(name, num, retry, msg) {"BV_" #name, num, retry, msg},
	BV_ERR_MAP(ROW)
#undef ROW
};
#define N_ROWS (sizeof(rows) / sizeof(rows[0]))

static void
test_table_roundtrip(void **state)
{
	size_t i, j;

	(void)state;
	for (i = 0; i < N_ROWS; i++) {
		assert_true(rows[i].code < 0);
		assert_string_equal(bv_errname(rows[i].code), rows[i].name);
		assert_string_equal(bv_strerror(rows[i].code), rows[i].msg);
		assert_int_equal(bv_err_retryable(rows[i].code),
				 rows[i].retryable);
		assert_int_equal(bv_err_from_name(rows[i].name), rows[i].code);
		/* Numbers and names are never reused. */
		for (j = i + 1; j < N_ROWS; j++) {
			assert_int_not_equal(rows[i].code, rows[j].code);
			assert_string_not_equal(rows[i].name, rows[j].name);
		}
	}
}

static void
test_unknown(void **state)
{
	(void)state;
	assert_string_equal(bv_errname(0), "BV_OK");
	assert_string_equal(bv_strerror(0), "success");
	assert_int_equal(bv_err_retryable(0), 0);
	assert_string_equal(bv_errname(-9999), "BV_EUNKNOWN");
	assert_string_equal(bv_strerror(-9999), "unknown error");
	assert_string_equal(bv_errname(7), "BV_EUNKNOWN");
	assert_int_equal(bv_err_retryable(-9999), 0);
	assert_int_equal(bv_err_from_name("BV_ENOPE"), 0);
	assert_int_equal(bv_err_from_name(""), 0);
	assert_int_equal(bv_err_from_name("bv_eop"), 0);
}

static void
test_known_values(void **state)
{
	(void)state;
	/* The wire numbers clients already rely on. */
	assert_int_equal(BV_ENOMEM, -1);
	assert_int_equal(BV_EJSON, -10);
	assert_int_equal(BV_EDEVICES, -31);
	assert_int_equal(BV_ESTALE, -32);
	assert_int_equal(BV_EBUSY, -42);
	assert_true(bv_err_retryable(BV_ERATE));
	assert_true(bv_err_retryable(BV_EUNAVAILABLE));
	assert_false(bv_err_retryable(BV_EDEVICES));
	assert_false(bv_err_retryable(BV_ENOMEM));
}

/*
 * Every "| `BV_X` | -N | yes/no |" row of the protocol's error table names
 * a code of BV_ERR_MAP with that number and retry flag, and every wire code
 * (-10 and below) has a row.
 */
static void
test_protocol_table(void **state)
{
	char line[512], name[64], retry[8];
	int seen[N_ROWS] = {0};
	int num, code, n_rows = 0;
	size_t i;
	FILE *f;

	(void)state;
	f = fopen(BV_SOURCE_DIR "/docs/protocol.md", "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "| `%63[A-Z0-9_]` | %d | %7[a-z] |", name,
			   &num, retry) != 3)
			continue;
		code = bv_err_from_name(name);
		if (code != num)
			fail_msg("%s: protocol.md says %d, table %d", name, num,
				 code);
		assert_int_equal(bv_err_retryable(code),
				 strcmp(retry, "yes") == 0);
		for (i = 0; i < N_ROWS; i++)
			if (rows[i].code == code)
				seen[i] = 1;
		n_rows++;
	}
	fclose(f);
	assert_true(n_rows > 0);
	for (i = 0; i < N_ROWS; i++)
		if (rows[i].code <= -10 && !seen[i])
			fail_msg("%s is missing from protocol.md",
				 rows[i].name);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_roundtrip),
		cmocka_unit_test(test_unknown),
		cmocka_unit_test(test_known_values),
		cmocka_unit_test(test_protocol_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
