/* SPDX-License-Identifier: GPL-3.0-or-later */
/* bv_error.c: names, messages and retry flags generated from BV_ERR_MAP. */
#include <string.h>

#include "bv_error.h"

struct err_row {
	int code;
	int retryable;
	const char *name;
	const char *msg;
};

static const struct err_row err_rows[] = {
#define BV_ERR_ROW(name, num, retry, msg) {num, retry, "BV_" #name, msg},
	BV_ERR_MAP(BV_ERR_ROW)
#undef BV_ERR_ROW
};

static const struct err_row *
err_find(int code)
{
	size_t i;

	for (i = 0; i < sizeof(err_rows) / sizeof(err_rows[0]); i++)
		if (err_rows[i].code == code)
			return &err_rows[i];
	return NULL;
}

const char *
bv_strerror(int code)
{
	const struct err_row *r = err_find(code);

	if (code == 0)
		return "success";
	return r ? r->msg : "unknown error";
}

const char *
bv_errname(int code)
{
	const struct err_row *r = err_find(code);

	if (code == 0)
		return "BV_OK";
	return r ? r->name : "BV_EUNKNOWN";
}

int
bv_err_retryable(int code)
{
	const struct err_row *r = err_find(code);

	return r ? r->retryable : 0;
}

int
bv_err_from_name(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(err_rows) / sizeof(err_rows[0]); i++)
		if (strcmp(err_rows[i].name, name) == 0)
			return err_rows[i].code;
	return 0;
}
