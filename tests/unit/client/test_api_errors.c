/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_api_errors.c: holds the error enum that client-lib/include/bvchat.h
 * mirrors for library users to the one error table (BV_ERR_MAP): every
 * "BV_NAME = N," line of its enum bv_error must name a code of the table with the
 * same number, and every code of the table must be in the header.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "bv_error.h"

static const int all_codes[] = {
#define BV_ERR_CODE(name, num, retry, msg) num,
	BV_ERR_MAP(BV_ERR_CODE)
#undef BV_ERR_CODE
};

static void
test_header_matches_table(void **state)
{
	char line[256], name[64];
	int seen[sizeof(all_codes) / sizeof(all_codes[0])] = {0};
	size_t i, n = 0;
	FILE *f;
	int num, in_enum = 0;

	(void)state;
	f = fopen(BV_SOURCE_DIR "/client-lib/include/bvchat.h", "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		/* Only the lines of "enum bv_error { … };". */
		if (strstr(line, "enum bv_error {"))
			in_enum = 1;
		else if (in_enum && strstr(line, "};"))
			in_enum = 0;
		if (!in_enum ||
		    sscanf(line, " BV_%63[A-Z0-9_] = %d,", name, &num) != 2 ||
		    !strcmp(name, "OK"))
			continue;
		char full[80];

		snprintf(full, sizeof(full), "BV_%s", name);
		if (bv_err_from_name(full) != num)
			fail_msg("bvchat.h has %s = %d; the table says %d",
				 full, num, bv_err_from_name(full));
		for (i = 0; i < sizeof(all_codes) / sizeof(all_codes[0]); i++)
			if (all_codes[i] == num)
				seen[i] = 1;
		n++;
	}
	fclose(f);
	assert_true(n > 0);
	for (i = 0; i < sizeof(all_codes) / sizeof(all_codes[0]); i++)
		if (!seen[i])
			fail_msg("bvchat.h lacks %s", bv_errname(all_codes[i]));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_matches_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
