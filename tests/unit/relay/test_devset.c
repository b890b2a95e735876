/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_devset.c: unit tests of relay/devset.c: exact matches, 409 (missing,
 * extra, both), 410 (stale), the sender's own device, empty sets, order
 * independence and allocation failures.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "bv_error.h"
#include "bv_util.h"
#include "devset.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void
assert_list(const uint32_t *got, size_t n_got, const uint32_t *want,
	    size_t n_want)
{
	size_t i;

	assert_int_equal(n_got, n_want);
	for (i = 0; i < n_want; i++)
		assert_int_equal(got[i], want[i]);
	if (n_want == 0)
		assert_null(got);
}

static const struct devset_entry cur3[] = {{1, 101}, {2, 102}, {3, 103}};

static void
test_match(void **state)
{
	const struct devset_entry addr[] = {{3, 103}, {1, 101}, {2, 102}};
	struct devset_diff d;

	(void)state;
	memset(&d, 0xff, sizeof(d));
	assert_int_equal(devset_compare(addr, N(addr), cur3, N(cur3), 0, &d),
			 0);
	assert_null(d.missing);
	assert_null(d.extra);
	assert_null(d.stale);
	assert_int_equal(d.n_missing + d.n_extra + d.n_stale, 0);
	devset_diff_cleanup(&d);
}

static void
test_missing(void **state)
{
	const struct devset_entry addr[] = {{3, 103}, {1, 101}};
	const uint32_t want[] = {2};
	struct devset_diff d;

	(void)state;
	assert_int_equal(devset_compare(addr, N(addr), cur3, N(cur3), 0, &d),
			 BV_EDEVICES);
	assert_list(d.missing, d.n_missing, want, N(want));
	assert_list(d.extra, d.n_extra, NULL, 0);
	assert_list(d.stale, d.n_stale, NULL, 0);
	devset_diff_cleanup(&d);
	assert_null(d.missing);
	devset_diff_cleanup(&d); /* twice is fine */
}

static void
test_extra(void **state)
{
	const struct devset_entry addr[] = {
		{9, 1}, {1, 101}, {2, 102}, {3, 103}, {7, 1}};
	const uint32_t want[] = {7, 9};
	struct devset_diff d;

	(void)state;
	assert_int_equal(devset_compare(addr, N(addr), cur3, N(cur3), 0, &d),
			 BV_EDEVICES);
	assert_list(d.missing, d.n_missing, NULL, 0);
	assert_list(d.extra, d.n_extra, want, N(want));
	devset_diff_cleanup(&d);
}

static void
test_missing_and_extra(void **state)
{
	/* 2 is stale too: reported alongside the 409, the 409 wins. */
	const struct devset_entry addr[] = {{4, 1}, {2, 999}, {0, 1}};
	const uint32_t missing[] = {1, 3}, extra[] = {0, 4}, stale[] = {2};
	struct devset_diff d;

	(void)state;
	assert_int_equal(devset_compare(addr, N(addr), cur3, N(cur3), 0, &d),
			 BV_EDEVICES);
	assert_list(d.missing, d.n_missing, missing, N(missing));
	assert_list(d.extra, d.n_extra, extra, N(extra));
	assert_list(d.stale, d.n_stale, stale, N(stale));
	devset_diff_cleanup(&d);
}

static void
test_stale(void **state)
{
	const struct devset_entry addr[] = {{1, 101}, {3, 7}, {2, 8}};
	const uint32_t want[] = {2, 3};
	struct devset_diff d;

	(void)state;
	assert_int_equal(devset_compare(addr, N(addr), cur3, N(cur3), 0, &d),
			 BV_ESTALE);
	assert_list(d.missing, d.n_missing, NULL, 0);
	assert_list(d.extra, d.n_extra, NULL, 0);
	assert_list(d.stale, d.n_stale, want, N(want));
	devset_diff_cleanup(&d);
}

static void
test_skip_own_device(void **state)
{
	const struct devset_entry others[] = {{1, 101}, {3, 103}};
	const struct devset_entry with_own[] = {{1, 101}, {2, 102}, {3, 103}};
	const struct devset_entry own_stale[] = {{1, 101}, {3, 103}, {2, 5}};
	const uint32_t want[] = {2};
	struct devset_diff d;

	(void)state;
	/* The sender's own device 2 is not required... */
	assert_int_equal(
		devset_compare(others, N(others), cur3, N(cur3), 2, &d), 0);
	/* ... and may not be addressed (Signal: "extra"). */
	assert_int_equal(
		devset_compare(with_own, N(with_own), cur3, N(cur3), 2, &d),
		BV_EDEVICES);
	assert_list(d.extra, d.n_extra, want, N(want));
	assert_list(d.missing, d.n_missing, NULL, 0);
	assert_list(d.stale, d.n_stale, NULL, 0); /* not compared */
	devset_diff_cleanup(&d);
	assert_int_equal(
		devset_compare(own_stale, N(own_stale), cur3, N(cur3), 2, &d),
		BV_EDEVICES);
	devset_diff_cleanup(&d);
	/* Skipping a device the account does not have changes nothing. */
	assert_int_equal(
		devset_compare(with_own, N(with_own), cur3, N(cur3), 42, &d),
		0);
	/* Without skip, leaving 2 out is a 409. */
	assert_int_equal(
		devset_compare(others, N(others), cur3, N(cur3), 0, &d),
		BV_EDEVICES);
	assert_list(d.missing, d.n_missing, want, N(want));
	devset_diff_cleanup(&d);
}

static void
test_empty(void **state)
{
	const struct devset_entry one[] = {{1, 101}};
	const struct devset_entry own[] = {{5, 1}};
	const uint32_t want[] = {1};
	struct devset_diff d;

	(void)state;
	assert_int_equal(devset_compare(NULL, 0, NULL, 0, 0, &d), 0);
	assert_int_equal(devset_compare(NULL, 0, one, 1, 0, &d), BV_EDEVICES);
	assert_list(d.missing, d.n_missing, want, N(want));
	devset_diff_cleanup(&d);
	assert_int_equal(devset_compare(one, 1, NULL, 0, 0, &d), BV_EDEVICES);
	assert_list(d.extra, d.n_extra, want, N(want));
	devset_diff_cleanup(&d);
	/* The sender is the account's only device: nothing to address. */
	assert_int_equal(devset_compare(NULL, 0, own, 1, 5, &d), 0);
}

static void
test_large_unsorted(void **state)
{
	struct devset_entry addr[200], cur[200];
	struct devset_diff d;
	size_t i;

	(void)state;
	for (i = 0; i < 200; i++) {
		cur[i].device = (uint32_t)(i * 7919 % 200) + 1;
		cur[i].registration_id = cur[i].device;
		addr[i].device = (uint32_t)(i * 104729 % 200) + 1;
		addr[i].registration_id = addr[i].device;
	}
	addr[17].registration_id = 0; /* device addr[17].device is stale */
	assert_int_equal(devset_compare(addr, 200, cur, 200, 0, &d), BV_ESTALE);
	assert_int_equal(d.n_stale, 1);
	assert_int_equal(d.stale[0], addr[17].device);
	devset_diff_cleanup(&d);
}

static void
test_alloc_torture(void **state)
{
	const struct devset_entry addr[] = {{4, 1}, {2, 999}, {0, 1}};
	struct devset_diff d;
	long n;
	int rc;

	(void)state;
	for (n = 1;; n++) {
		bv_alloc_fail_at(n);
		rc = devset_compare(addr, N(addr), cur3, N(cur3), 0, &d);
		bv_alloc_fail_at(0);
		if (rc == BV_EDEVICES)
			break;
		assert_int_equal(rc, BV_ENOMEM);
		assert_null(d.missing);
		assert_null(d.extra);
		assert_null(d.stale);
	}
	assert_true(n > 1);
	devset_diff_cleanup(&d);
	devset_diff_cleanup(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_missing),
		cmocka_unit_test(test_extra),
		cmocka_unit_test(test_missing_and_extra),
		cmocka_unit_test(test_stale),
		cmocka_unit_test(test_skip_own_device),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_large_unsorted),
		cmocka_unit_test(test_alloc_torture),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
