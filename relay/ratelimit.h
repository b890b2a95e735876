/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * ratelimit.h: a token bucket per connection, driven by a caller-supplied
 * monotonic clock so tests control time. Pure.
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

/*
 * Takes one token. Returns 0 when allowed; otherwise BV_ERATE and sets
 * *retry_after_ms (if not NULL) to when one token will be there.
 * per_minute = 0 means unlimited.
 */
int ratelimit_take(struct ratelimit *r, uint64_t now_ms,
		   uint64_t *retry_after_ms);

#endif
