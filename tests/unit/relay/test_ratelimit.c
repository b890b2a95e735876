/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_ratelimit.c: unit tests of relay/ratelimit.c with a clock the test
 * drives: burst, refill, retry_after_ms, the cap, "unlimited", a clock
 * that goes back, other periods than a minute, refunds and fullness.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "bv_error.h"
#include "ratelimit.h"

#define T0 1000000u

static void
test_burst_then_refill(void **state)
{
	struct ratelimit r;
	uint64_t retry = 0;
	int i;

	(void)state;
	ratelimit_init(&r, 600, 600, T0);
	for (i = 0; i < 600; i++)
		assert_int_equal(ratelimit_take(&r, T0, &retry), 0);
	assert_int_equal(ratelimit_take(&r, T0, &retry), BV_ERATE);
	assert_int_equal(retry, 100); /* 600 a minute: one per 100 ms */
	assert_int_equal(ratelimit_take(&r, T0 + 99, &retry), BV_ERATE);
	assert_int_equal(retry, 1);
	assert_int_equal(ratelimit_take(&r, T0 + 100, &retry), 0);
	assert_int_equal(ratelimit_take(&r, T0 + 100, &retry), BV_ERATE);
	assert_int_equal(retry, 100);
	/* Steady state: one every 100 ms, for a long time, never drifts. */
	for (i = 2; i < 5000; i++) {
		assert_int_equal(
			ratelimit_take(&r, T0 + 100 * (uint64_t)i, &retry), 0);
		assert_int_equal(
			ratelimit_take(&r, T0 + 100 * (uint64_t)i, &retry),
			BV_ERATE);
		assert_int_equal(retry, 100);
	}
}

static void
test_retry_after_is_enough(void **state)
{
	struct ratelimit r;
	uint64_t now = T0, retry = 0;
	int i, refused = 0;

	(void)state;
	/* 7 a minute does not divide a minute evenly. */
	ratelimit_init(&r, 7, 3, now);
	for (i = 0; i < 200; i++) {
		if (ratelimit_take(&r, now, &retry) == 0)
			continue;
		refused++;
		assert_true(retry >= 1 && retry <= 60000 / 7 + 1);
		now += retry;
		assert_int_equal(ratelimit_take(&r, now, &retry), 0);
	}
	assert_true(refused > 150);
}

static void
test_cap(void **state)
{
	struct ratelimit r;
	uint64_t retry;
	int i;

	(void)state;
	ratelimit_init(&r, 60, 5, T0);
	/* A long idle time refills no more than the burst. */
	for (i = 0; i < 5; i++)
		assert_int_equal(ratelimit_take(&r, T0 + 3600000, &retry), 0);
	assert_int_equal(ratelimit_take(&r, T0 + 3600000, &retry), BV_ERATE);
	assert_int_equal(retry, 1000);
	assert_int_equal(ratelimit_take(&r, T0 + 3600000, NULL), BV_ERATE);
}

static void
test_slow(void **state)
{
	struct ratelimit r;
	uint64_t retry;

	(void)state;
	ratelimit_init(&r, 1, 1, T0);
	assert_int_equal(ratelimit_take(&r, T0, &retry), 0);
	assert_int_equal(ratelimit_take(&r, T0, &retry), BV_ERATE);
	assert_int_equal(retry, 60000);
	assert_int_equal(ratelimit_take(&r, T0 + 59999, &retry), BV_ERATE);
	assert_int_equal(retry, 1);
	assert_int_equal(ratelimit_take(&r, T0 + 60000, &retry), 0);
}

static void
test_unlimited_and_edge_cases(void **state)
{
	struct ratelimit r;
	uint64_t retry = 77;
	int i;

	(void)state;
	ratelimit_init(&r, 0, 0, T0);
	for (i = 0; i < 100000; i++)
		assert_int_equal(ratelimit_take(&r, T0, &retry), 0);
	assert_int_equal(retry, 77);

	/* A zero burst still lets one through. */
	ratelimit_init(&r, 60, 0, T0);
	assert_int_equal(ratelimit_take(&r, T0, &retry), 0);
	assert_int_equal(ratelimit_take(&r, T0, &retry), BV_ERATE);

	/* A clock that goes back refills nothing and breaks nothing. */
	ratelimit_init(&r, 60, 1, T0);
	assert_int_equal(ratelimit_take(&r, T0, &retry), 0);
	assert_int_equal(ratelimit_take(&r, T0 - 5000, &retry), BV_ERATE);
	assert_int_equal(retry, 1000);
	assert_int_equal(ratelimit_take(&r, T0 + 1000, &retry), 0);

	/* Faster than one a millisecond. */
	ratelimit_init(&r, 600000, 1, T0);
	assert_int_equal(ratelimit_take(&r, T0, &retry), 0);
	assert_int_equal(ratelimit_take(&r, T0, &retry), BV_ERATE);
	assert_int_equal(retry, 1);
	assert_int_equal(ratelimit_take(&r, T0 + 1, &retry), 0);
}

/* 10 an hour: the invite redemption limit's shape. */
static void
test_period_refund_full(void **state)
{
	struct ratelimit r;
	uint64_t retry;
	int i;

	(void)state;
	ratelimit_init_period(&r, 10, 3600000, 10, T0);
	assert_int_equal(ratelimit_full(&r, T0), 1);
	for (i = 0; i < 10; i++)
		assert_int_equal(ratelimit_take(&r, T0, &retry), 0);
	assert_int_equal(ratelimit_take(&r, T0, &retry), BV_ERATE);
	assert_int_equal(retry, 360000); /* one per six minutes */
	assert_int_equal(ratelimit_full(&r, T0), 0);
	/* A success gives its token back. */
	ratelimit_refund(&r);
	assert_int_equal(ratelimit_take(&r, T0, &retry), 0);
	assert_int_equal(ratelimit_take(&r, T0, &retry), BV_ERATE);
	/* Refunds never fill the bucket beyond burst. */
	for (i = 0; i < 50; i++)
		ratelimit_refund(&r);
	assert_int_equal(ratelimit_full(&r, T0), 1);
	for (i = 0; i < 10; i++)
		assert_int_equal(ratelimit_take(&r, T0, &retry), 0);
	assert_int_equal(ratelimit_take(&r, T0, &retry), BV_ERATE);
	/* Full again after an hour, not before. */
	assert_int_equal(ratelimit_full(&r, T0 + 3599999), 0);
	assert_int_equal(ratelimit_full(&r, T0 + 3600000), 1);
	/* Unlimited buckets are always full. */
	ratelimit_init_period(&r, 0, 3600000, 10, T0);
	assert_int_equal(ratelimit_full(&r, T0), 1);
	ratelimit_init_period(&r, 10, 0, 10, T0);
	assert_int_equal(ratelimit_take(&r, T0, &retry), 0);
	assert_int_equal(ratelimit_full(&r, T0), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_then_refill),
		cmocka_unit_test(test_retry_after_is_enough),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_slow),
		cmocka_unit_test(test_unlimited_and_edge_cases),
		cmocka_unit_test(test_period_refund_full),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
