/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_notify_sched: bvchat-notifier's timing rules with a fake clock:
 * quiet hours inside a day and across midnight, on both daylight saving
 * time changes in Europe/Oslo, wait and window, and the retry backoff.
 */
#define _DEFAULT_SOURCE /* timegm() */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "bv_error.h"
#include "notify_sched.h"

#define MIN (60 * 1000LL)
#define H   (60 * MIN)

/* ms since the epoch of a UTC date and time. */
static int64_t
utc(int y, int mo, int d, int h, int mi)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	return (int64_t)timegm(&tm) * 1000;
}

static void
t_quiet_across_midnight(void **state)
{
	int64_t until = 0;

	(void)state;
	/* Winter (CET, UTC+1), quiet 22:00-07:00. 21:59 local: not quiet. */
	assert_int_equal(notify_quiet_until("Europe/Oslo", 22 * 60, 7 * 60,
					    utc(2025, 1, 15, 20, 59), &until),
			 0);
	/* 22:00 local: quiet until 07:00 local tomorrow = 06:00 UTC. */
	assert_int_equal(notify_quiet_until("Europe/Oslo", 22 * 60, 7 * 60,
					    utc(2025, 1, 15, 21, 0), &until),
			 1);
	assert_true(until == utc(2025, 1, 16, 6, 0));
	/* 03:00 local: the same morning. */
	assert_int_equal(notify_quiet_until("Europe/Oslo", 22 * 60, 7 * 60,
					    utc(2025, 1, 16, 2, 0), &until),
			 1);
	assert_true(until == utc(2025, 1, 16, 6, 0));
	/* 07:00 local: over. */
	assert_int_equal(notify_quiet_until("Europe/Oslo", 22 * 60, 7 * 60,
					    utc(2025, 1, 16, 6, 0), &until),
			 0);
	/* Summer (CEST, UTC+2): 07:00 local is 05:00 UTC. */
	assert_int_equal(notify_quiet_until("Europe/Oslo", 22 * 60, 7 * 60,
					    utc(2025, 6, 30, 21, 30), &until),
			 1);
	assert_true(until == utc(2025, 7, 1, 5, 0));
}

static void
t_quiet_within_day(void **state)
{
	int64_t until = 0;

	(void)state;
	/* 12:00-13:00 local (CET). */
	assert_int_equal(notify_quiet_until("Europe/Oslo", 12 * 60, 13 * 60,
					    utc(2025, 2, 3, 11, 30), &until),
			 1);
	assert_true(until == utc(2025, 2, 3, 12, 0));
	assert_int_equal(notify_quiet_until("Europe/Oslo", 12 * 60, 13 * 60,
					    utc(2025, 2, 3, 10, 59), &until),
			 0);
	/* Equal start and end: never quiet. */
	assert_int_equal(notify_quiet_until("Europe/Oslo", 600, 600,
					    utc(2025, 2, 3, 9, 0), &until),
			 0);
}

static void
t_quiet_dst(void **state)
{
	int64_t until = 0;

	(void)state;
	/* Spring: 2025-03-30 02:00 CET became 03:00 CEST. At 00:30 CET
	 * (23:30 UTC the day before) the night ends at 07:00 CEST = 05:00
	 * UTC: 5.5 hours later, not 6.5. */
	assert_int_equal(notify_quiet_until("Europe/Oslo", 22 * 60, 7 * 60,
					    utc(2025, 3, 29, 23, 30), &until),
			 1);
	assert_true(until == utc(2025, 3, 30, 5, 0));
	/* Started before the change (22:30 CET = 21:30 UTC). */
	assert_int_equal(notify_quiet_until("Europe/Oslo", 22 * 60, 7 * 60,
					    utc(2025, 3, 29, 21, 30), &until),
			 1);
	assert_true(until == utc(2025, 3, 30, 5, 0));
	/* Autumn: 2025-10-26 03:00 CEST became 02:00 CET; 07:00 CET is
	 * 06:00 UTC. */
	assert_int_equal(notify_quiet_until("Europe/Oslo", 22 * 60, 7 * 60,
					    utc(2025, 10, 25, 20, 30), &until),
			 1);
	assert_true(until == utc(2025, 10, 26, 6, 0));
	/* 02:30 happens twice that night; both are quiet. */
	assert_int_equal(notify_quiet_until("Europe/Oslo", 22 * 60, 7 * 60,
					    utc(2025, 10, 26, 0, 30), &until),
			 1);
	assert_true(until == utc(2025, 10, 26, 6, 0));
	assert_int_equal(notify_quiet_until("Europe/Oslo", 22 * 60, 7 * 60,
					    utc(2025, 10, 26, 1, 30), &until),
			 1);
	assert_true(until == utc(2025, 10, 26, 6, 0));
	/* A quiet end inside the spring gap (02:30 does not exist). */
	assert_int_equal(notify_quiet_until("Europe/Oslo", 23 * 60, 150,
					    utc(2025, 3, 29, 23, 30), &until),
			 1);
	assert_true(until > utc(2025, 3, 29, 23, 30));
	assert_true(until <= utc(2025, 3, 30, 1, 30));
}

static void
t_quiet_bad(void **state)
{
	int64_t until = 0;

	(void)state;
	assert_int_equal(
		notify_quiet_until("Nowhere/Atlantis", 60, 120, 0, &until),
		BV_EINVAL);
	assert_int_equal(
		notify_quiet_until("../etc/passwd", 60, 120, 0, &until),
		BV_EINVAL);
	assert_int_equal(
		notify_quiet_until("Europe/Oslo", 1440, 120, 0, &until),
		BV_EINVAL);
	/* TZ is put back. */
	setenv("TZ", "UTC", 1);
	assert_int_equal(notify_quiet_until("Europe/Oslo", 0, 1439,
					    utc(2025, 1, 1, 12, 0), &until),
			 1);
	assert_string_equal(getenv("TZ"), "UTC");
	unsetenv("TZ");
}

static void
t_next(void **state)
{
	struct notify_rules r = {15 * MIN, 60 * MIN, 22 * 60, 7 * 60,
				 "Europe/Oslo"};
	int64_t since = utc(2025, 1, 15, 10, 0); /* 11:00 local */
	int bad = -1;

	(void)state;
	/* Not yet: the wait. */
	assert_true(notify_next(&r, since, 0, since + 5 * MIN, &bad) ==
		    since + 15 * MIN);
	assert_int_equal(bad, 0);
	/* Now, exactly, and later (late processing). */
	assert_true(notify_next(&r, since, 0, since + 15 * MIN, NULL) ==
		    since + 15 * MIN);
	assert_true(notify_next(&r, since, 0, since + 40 * MIN, NULL) ==
		    since + 40 * MIN);
	/* The window: the last one 10 minutes before the message. */
	assert_true(notify_next(&r, since, since - 10 * MIN, since + 20 * MIN,
				NULL) == since + 50 * MIN);
	/* Due at 22:10 local: at 07:00 local (06:00 UTC). */
	since = utc(2025, 1, 15, 20, 55);
	assert_true(notify_next(&r, since, 0, since + 15 * MIN, NULL) ==
		    utc(2025, 1, 16, 6, 0));
	/* A bad zone: quiet hours ignored, said so. */
	r.tz = "Nowhere/Atlantis";
	assert_true(notify_next(&r, since, 0, since + 15 * MIN, &bad) ==
		    since + 15 * MIN);
	assert_int_equal(bad, 1);
}

static void
t_backoff(void **state)
{
	(void)state;
	assert_true(notify_backoff_ms(1, 30000, 3600000) == 30000);
	assert_true(notify_backoff_ms(2, 30000, 3600000) == 60000);
	assert_true(notify_backoff_ms(5, 30000, 3600000) == 480000);
	assert_true(notify_backoff_ms(8, 30000, 3600000) == 3600000);
	assert_true(notify_backoff_ms(4000000000u, 30000, 3600000) == 3600000);
	assert_true(notify_backoff_ms(0, 30000, 3600000) == 30000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_quiet_across_midnight),
		cmocka_unit_test(t_quiet_within_day),
		cmocka_unit_test(t_quiet_dst),
		cmocka_unit_test(t_quiet_bad),
		cmocka_unit_test(t_next),
		cmocka_unit_test(t_backoff),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
