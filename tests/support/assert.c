/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * assert.c: cmocka assertions on bvchat.v1 responses that print the whole
 * frame when they fail.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "bvtest.h"

void
bvt__assert_ok(const json_t *resp, const char *expr, const char *file, int line)
{
	if (json_is_object(bvt_ok(resp)))
		return;
	print_error("%s: expected an ok response, got %s\n", expr,
		    bvt_js(resp));
	_fail(file, line);
}

void
bvt__assert_err(const json_t *resp, const char *code, const char *expr,
		const char *file, int line)
{
	const char *got = bvt_err_code(resp);

	if (got && strcmp(got, code) == 0)
		return;
	print_error("%s: expected %s, got %s\n", expr, code, bvt_js(resp));
	_fail(file, line);
}
