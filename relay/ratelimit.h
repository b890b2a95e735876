/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * ratelimit.h: a token bucket (per connection, per client address),
 * driven by a caller-supplied monotonic clock so tests control time. Pure.
 */
#ifndef BV_RELAY_RATELIMIT_H
#define BV_RELAY_RATELIMIT_H

#include <stdint.h>

struct ratelimit {
	double tokens;
	double per_ms; /* refill rate */
	double burst;
	uint64_t last_ms;
};

/* per_minute tokens per minute, bucket size burst, starting full at now. */
void ratelimit_init(struct ratelimit *r, unsigned per_minute, unsigned burst,
		    uint64_t now_ms);

/* count tokens per period_ms (e.g. 10 an hour), bucket size burst,
 * starting full at now. count 0 or period_ms 0 means unlimited. */
void ratelimit_init_period(struct ratelimit *r, unsigned count,
			   uint64_t period_ms, unsigned burst, uint64_t now_ms);

/*
 * Takes one token. Returns 0 when allowed; otherwise BV_ERATE and sets
 * *retry_after_ms (if not NULL) to when one token will be there.
 * per_minute = 0 means unlimited.
 */
int ratelimit_take(struct ratelimit *r, uint64_t now_ms,
		   uint64_t *retry_after_ms);

/* Gives back one token taken by ratelimit_take() (the bucket never holds
 * more than burst): for limits that count only failures, taken up front
 * so that requests in flight at once cannot pass the limit together. */
void ratelimit_refund(struct ratelimit *r);

/* 1 when the bucket has refilled to burst by now_ms (it holds nothing that
 * a fresh bucket would not), else 0. */
int ratelimit_full(struct ratelimit *r, uint64_t now_ms);

#endif
