/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * notify_sched.c: the notifier's timing rules (notify_sched.h). Local
 * time is the C library's: TZ is set to the tenant's zone for the call and
 * put back after, which is fine in bvchat-notifier (one thread) and in the
 * unit tests; the relay, with its threads, never calls this.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bv_error.h"
#include "notify_sched.h"

#define TZ_MAX 64

/* Sets TZ to tz, keeping the old value in old (old[0] = 0: was unset). */
static int
tz_push(const char *tz, char old[TZ_MAX + 2])
{
	const char *cur = getenv("TZ");
	char path[TZ_MAX + 32];
	FILE *f;

	if (!tz || !*tz || strlen(tz) > TZ_MAX || strstr(tz, "..") ||
	    tz[0] == '/')
		return BV_EINVAL;
	/* glibc silently falls back to UTC for a zone it lacks. */
	snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", tz);
	f = fopen(path, "rb");
	if (!f)
		return BV_EINVAL;
	fclose(f);
	old[0] = '\0';
	if (cur && strlen(cur) <= TZ_MAX)
		snprintf(old, TZ_MAX + 2, "=%s", cur);
	if (setenv("TZ", tz, 1) < 0)
		return BV_ENOMEM;
	tzset();
	return 0;
}

static void
tz_pop(const char old[TZ_MAX + 2])
{
	if (old[0])
		setenv("TZ", old + 1, 1);
	else
		unsetenv("TZ");
	tzset();
}

int
notify_quiet_until(const char *tz, int start_min, int end_min, int64_t at_ms,
		   int64_t *until_ms)
{
	char old[TZ_MAX + 2];
	time_t at = (time_t)(at_ms / 1000), end;
	struct tm tm;
	int m, quiet, rc;

	if (start_min < 0 || start_min > 1439 || end_min < 0 || end_min > 1439)
		return BV_EINVAL;
	if (start_min == end_min)
		return 0;
	rc = tz_push(tz, old);
	if (rc < 0)
		return rc;
	if (!localtime_r(&at, &tm)) {
		tz_pop(old);
		return BV_EINVAL;
	}
	m = tm.tm_hour * 60 + tm.tm_min;
	quiet = start_min < end_min ? m >= start_min && m < end_min
				    : m >= start_min || m < end_min;
	if (!quiet) {
		tz_pop(old);
		return 0;
	}
	/* Across midnight and after it began: the end is tomorrow. */
	if (start_min > end_min && m >= start_min)
		tm.tm_mday++;
	tm.tm_hour = end_min / 60;
	tm.tm_min = end_min % 60;
	tm.tm_sec = 0;
	tm.tm_isdst = -1; /* whichever is in force then */
	end = mktime(&tm);
	tz_pop(old);
	if (end == (time_t)-1)
		return BV_EINVAL;
	*until_ms = (int64_t)end * 1000;
	if (*until_ms <= at_ms) /* an end inside a DST gap, moved back */
		*until_ms = at_ms + 1;
	return 1;
}

int64_t
notify_next(const struct notify_rules *r, int64_t since_ms,
	    int64_t last_sent_ms, int64_t now_ms, int *bad_tz)
{
	int64_t t = since_ms + r->wait_ms, until;
	int rc;

	if (last_sent_ms > 0 && last_sent_ms + r->window_ms > t)
		t = last_sent_ms + r->window_ms;
	if (t < now_ms)
		t = now_ms;
	rc = notify_quiet_until(r->tz, r->quiet_start_min, r->quiet_end_min, t,
				&until);
	if (rc == 1)
		t = until;
	if (bad_tz)
		*bad_tz = rc < 0;
	return t;
}

int64_t
notify_backoff_ms(unsigned attempts, int64_t base_ms, int64_t max_ms)
{
	int64_t t = base_ms;
	unsigned i;

	for (i = 1; i < attempts && t < max_ms; i++)
		t *= 2;
	return t < max_ms ? t : max_ms;
}
