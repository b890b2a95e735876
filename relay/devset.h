/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * devset.h: compares the devices a send addresses with an account's current
 * devices (Signal's 409/410). Pure: no I/O, no allocation beyond the result.
 */
#ifndef BV_RELAY_DEVSET_H
#define BV_RELAY_DEVSET_H

#include <stddef.h>
#include <stdint.h>

struct devset_entry {
	uint32_t device;
	uint32_t registration_id;
};

/* The difference for one account; arrays are sorted ascending. */
struct devset_diff {
	uint32_t *missing; /* current devices the send left out */
	size_t n_missing;
	uint32_t *extra; /* addressed devices that do not exist */
	size_t n_extra;
	uint32_t *stale; /* addressed with an old registration id */
	size_t n_stale;
};

/*
 * Compares addressed[] (n_addr entries, any order, no duplicate devices)
 * with current[] (n_cur entries), ignoring device skip (the sender's own
 * device when the account is the sender's; 0 = none). A registration id is
 * only checked for devices in both sets.
 * Returns 0 when the sets match exactly and all ids are current (diff is
 * zeroed); BV_EDEVICES when missing or extra is non-empty; BV_ESTALE when
 * only stale is non-empty; BV_ENOMEM. On BV_EDEVICES/BV_ESTALE, diff holds
 * the lists (free with devset_diff_cleanup).
 */
int devset_compare(const struct devset_entry *addressed, size_t n_addr,
		   const struct devset_entry *current, size_t n_cur,
		   uint32_t skip, struct devset_diff *diff);

void devset_diff_cleanup(struct devset_diff *diff);

#endif
