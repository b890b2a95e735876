/* SPDX-License-Identifier: GPL-3.0-or-later */
/* fiks_error.c: names, messages and retry flags generated from FIKS_ERR_MAP,
 * falling back to common/bv_error.c's table for BV_E* codes. */
#include <stddef.h>

#include "bv_error.h"
#include "fiks_error.h"

struct fiks_err_row {
	int code;
	int retryable;
	const char *name;
	const char *msg;
};

static const struct fiks_err_row fiks_err_rows[] = {
#define FIKS_ERR_ROW(name, num, retry, msg) {num, retry, "FIKS_" #name, msg},
	FIKS_ERR_MAP(FIKS_ERR_ROW)
#undef FIKS_ERR_ROW
};

static const struct fiks_err_row *
fiks_err_find(int code)
{
	size_t i;

	for (i = 0; i < sizeof(fiks_err_rows) / sizeof(fiks_err_rows[0]); i++)
		if (fiks_err_rows[i].code == code)
			return &fiks_err_rows[i];
	return NULL;
}

const char *
fiks_strerror(int code)
{
	const struct fiks_err_row *r = fiks_err_find(code);

	return r ? r->msg : bv_strerror(code);
}

const char *
fiks_errname(int code)
{
	const struct fiks_err_row *r = fiks_err_find(code);

	return r ? r->name : bv_errname(code);
}

int
fiks_retryable(int code)
{
	const struct fiks_err_row *r = fiks_err_find(code);

	return r ? r->retryable : bv_err_retryable(code);
}
