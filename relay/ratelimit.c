/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * ratelimit.c: a token bucket refilled continuously at per_minute / 60000
 * tokens per millisecond, up to burst. The caller passes the monotonic
 * time, so tests drive the clock; a clock that goes back refills nothing.
 */
#include "bv_error.h"
#include "ratelimit.h"

/*
 * Refill sums products of a rate that is not exact in binary; without a
 * little slack a bucket refilled for exactly one token could hold
 * 0.999999… and refuse.
 */
#define SLACK 1e-9

void
ratelimit_init_period(struct ratelimit *r, unsigned count, uint64_t period_ms,
		      unsigned burst, uint64_t now_ms)
{
	r->per_ms = period_ms ? (double)count / (double)period_ms : 0;
	r->burst = burst ? burst : 1;
	r->tokens = r->burst;
	r->last_ms = now_ms;
}

void
ratelimit_init(struct ratelimit *r, unsigned per_minute, unsigned burst,
	       uint64_t now_ms)
{
	ratelimit_init_period(r, per_minute, 60000, burst, now_ms);
}

/* Adds what the time since the last refill earned, up to burst. */
static void
refill(struct ratelimit *r, uint64_t now_ms)
{
	if (now_ms > r->last_ms) {
		r->tokens += (double)(now_ms - r->last_ms) * r->per_ms;
		if (r->tokens > r->burst)
			r->tokens = r->burst;
		r->last_ms = now_ms;
	}
}

int
ratelimit_take(struct ratelimit *r, uint64_t now_ms, uint64_t *retry_after_ms)
{
	double wait;
	uint64_t ms;

	if (r->per_ms <= 0)
		return 0;
	refill(r, now_ms);
	if (r->tokens + SLACK >= 1.0) {
		r->tokens -= 1.0;
		if (r->tokens < 0)
			r->tokens = 0;
		return 0;
	}
	if (retry_after_ms) {
		/* Rounded up, so a retry at that time is never refused. */
		wait = (1.0 - SLACK - r->tokens) / r->per_ms;
		ms = (uint64_t)wait;
		if ((double)ms < wait)
			ms++;
		*retry_after_ms = ms ? ms : 1;
	}
	return BV_ERATE;
}

void
ratelimit_refund(struct ratelimit *r)
{
	r->tokens += 1.0;
	if (r->tokens > r->burst)
		r->tokens = r->burst;
}

int
ratelimit_full(struct ratelimit *r, uint64_t now_ms)
{
	if (r->per_ms <= 0)
		return 1;
	refill(r, now_ms);
	return r->tokens + SLACK >= r->burst;
}
