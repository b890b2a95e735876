/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * notify_sched.h: when bvchat-notifier may tell a person about messages no
 * device of theirs has picked up: the tenant's wait, one notification a
 * window, quiet hours in the tenant's time zone, and the backoff between
 * failed tries. Pure functions of their arguments and the clock value
 * given (no database, no network), so tests step time freely.
 */
#ifndef BV_RELAY_NOTIFY_SCHED_H
#define BV_RELAY_NOTIFY_SCHED_H

#include <stdint.h>

struct notify_rules {
	int64_t wait_ms;     /* undelivered this long before telling */
	int64_t window_ms;   /* at most one notification this often */
	int quiet_start_min; /* minutes after local midnight; */
	int quiet_end_min;   /* equal: no quiet hours */
	const char *tz;	     /* IANA zone, "Europe/Oslo" */
};

/*
 * Whether at_ms falls in the quiet hours [start, end) of local time in tz
 * (across midnight when start > end). Returns 1 and sets *until_ms to the
 * instant they end (local end time that day or the next, daylight saving
 * time changes included), 0 when not quiet, BV_EINVAL for minutes out of
 * 0 … 1439 or a zone the system does not know.
 */
int notify_quiet_until(const char *tz, int start_min, int end_min,
		       int64_t at_ms, int64_t *until_ms);

/*
 * The earliest instant, not before now_ms, at which a notification may go
 * for an account whose oldest untold undelivered message was sent at
 * since_ms, when the last one went at last_sent_ms (0: never): since +
 * wait, not before last + window, and moved to the end of quiet hours.
 * Returns now_ms when it may go now. On a bad zone it ignores quiet hours
 * (the rest still holds) and sets *bad_tz, when given.
 */
int64_t notify_next(const struct notify_rules *r, int64_t since_ms,
		    int64_t last_sent_ms, int64_t now_ms, int *bad_tz);

/* Wait before try attempts + 1 after attempts failed ones (attempts ≥ 1):
 * base, 2 × base, 4 × base … at most max. */
int64_t notify_backoff_ms(unsigned attempts, int64_t base_ms, int64_t max_ms);

#endif
