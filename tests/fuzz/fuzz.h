/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * fuzz.h: what the fuzz drivers here share. LLVMFuzzerTestOneInput is the
 * entry point libFuzzer calls, and replay.c too (the corpora in every
 * normal test run); CHECK(cond) is a driver's invariant: it aborts, which
 * libFuzzer and the replay both report with the input that broke it.
 */
#ifndef BV_FUZZ_H
#define BV_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond))                                                   \
			abort();                                               \
	} while (0)

#endif /* BV_FUZZ_H */
