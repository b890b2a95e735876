/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * signal_ctx.c: the signal_context of libbvchat, on whichever crypto
 * provider the build links (crypto.c natively, crypto_web.c in the
 * WebAssembly build), with libsignal's log sent to bv_log().
 *
 * It holds no crypto of its own and includes no crypto library's headers.
 */
#include <limits.h>
#include <stddef.h>

#include "bv_error.h"
#include "bv_util.h"
#include "crypto.h"

/*
 * libsignal's levels (SG_LOG_ERROR 0 .. SG_LOG_DEBUG 4) have the same
 * numbers as ours. Its messages name failures, never key material.
 */
static void
signal_log(int level, const char *message, size_t len, void *user_data)
{
	(void)user_data;
	if (level < BV_LOG_ERR)
		level = BV_LOG_ERR;
	if (level > BV_LOG_DEBUG)
		level = BV_LOG_DEBUG;
	if (len > INT_MAX)
		len = INT_MAX;
	bv_log(level, "libsignal: %.*s", (int)len, message);
}

int
bv_signal_context_new(signal_context **out)
{
	signal_crypto_provider provider;
	signal_context *ctx = NULL;
	int result;

	if (!out)
		return BV_EINVAL;
	bv_crypto_provider_init(&provider);
	if (signal_context_create(&ctx, NULL) != SG_SUCCESS) {
		/* Its only failure is a failed allocation. */
		result = BV_ENOMEM;
		goto out;
	}
	/*
	 * No signal_context_set_locking_functions(): libsignal skips locking
	 * when none are set, which is right for one thread per context.
	 */
	if (signal_context_set_crypto_provider(ctx, &provider) != SG_SUCCESS ||
	    signal_context_set_log_function(ctx, signal_log) != SG_SUCCESS) {
		result = BV_EINTERNAL;
		goto out;
	}
	*out = ctx;
	ctx = NULL;
	result = 0;
out:
	if (ctx)
		signal_context_destroy(ctx);
	return result;
}
