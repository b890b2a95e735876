/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * devset.c: the 409/410 check of a send, for one recipient account: which
 * current devices the send left out, which addressed devices do not exist
 * and which were addressed with an old registration id.
 *
 * As in Signal's server, the skipped device (the sender's own) is left out
 * of the current set only: addressing it is "extra", never a delivery to
 * oneself. No I/O; the caller fetches the current devices.
 */
#include <stdlib.h>
#include <string.h>

#include "bv_error.h"
#include "bv_util.h"
#include "devset.h"

static int
entry_cmp(const void *a, const void *b)
{
	const struct devset_entry *x = a, *y = b;

	return x->device < y->device ? -1 : (x->device > y->device);
}

/* Returns a sorted copy of n entries, without device skip when skip != 0. */
static int
sorted_copy(const struct devset_entry *in, size_t n, uint32_t skip,
	    struct devset_entry **out, size_t *n_out)
{
	struct devset_entry *c;
	size_t i, m = 0;

	c = bv_calloc(n ? n : 1, sizeof(*c));
	if (!c)
		return BV_ENOMEM;
	for (i = 0; i < n; i++)
		if (skip == 0 || in[i].device != skip)
			c[m++] = in[i];
	qsort(c, m, sizeof(*c), entry_cmp);
	*out = c;
	*n_out = m;
	return 0;
}

/*
 * One merge walk over both sorted sets. With lists NULL it only counts;
 * otherwise it fills them. Duplicate addressed devices (the caller
 * promises none) are counted once.
 */
static void
walk(const struct devset_entry *a, size_t na, const struct devset_entry *c,
     size_t nc, struct devset_diff *d, int fill)
{
	size_t i = 0, j = 0;

	d->n_missing = d->n_extra = d->n_stale = 0;
	while (i < na || j < nc) {
		if (i > 0 && i < na && a[i].device == a[i - 1].device) {
			i++;
		} else if (j >= nc || (i < na && a[i].device < c[j].device)) {
			if (fill)
				d->extra[d->n_extra] = a[i].device;
			d->n_extra++;
			i++;
		} else if (i >= na || c[j].device < a[i].device) {
			if (fill)
				d->missing[d->n_missing] = c[j].device;
			d->n_missing++;
			j++;
		} else {
			if (a[i].registration_id != c[j].registration_id) {
				if (fill)
					d->stale[d->n_stale] = a[i].device;
				d->n_stale++;
			}
			i++;
			j++;
		}
	}
}

static uint32_t *
list_new(size_t n)
{
	return n ? bv_calloc(n, sizeof(uint32_t)) : NULL;
}

int
devset_compare(const struct devset_entry *addressed, size_t n_addr,
	       const struct devset_entry *current, size_t n_cur, uint32_t skip,
	       struct devset_diff *diff)
{
	struct devset_entry *a = NULL, *c = NULL;
	struct devset_diff d = {0};
	size_t na = 0, nc = 0;
	int rc;

	memset(diff, 0, sizeof(*diff));
	rc = sorted_copy(addressed, n_addr, 0, &a, &na);
	if (rc < 0)
		goto out;
	rc = sorted_copy(current, n_cur, skip, &c, &nc);
	if (rc < 0)
		goto out;
	walk(a, na, c, nc, &d, 0);
	if (d.n_missing == 0 && d.n_extra == 0 && d.n_stale == 0) {
		rc = 0;
		goto out;
	}
	rc = BV_ENOMEM;
	d.missing = list_new(d.n_missing);
	d.extra = list_new(d.n_extra);
	d.stale = list_new(d.n_stale);
	if ((d.n_missing && !d.missing) || (d.n_extra && !d.extra) ||
	    (d.n_stale && !d.stale))
		goto out;
	walk(a, na, c, nc, &d, 1);
	rc = d.n_missing || d.n_extra ? BV_EDEVICES : BV_ESTALE;
	*diff = d;
	memset(&d, 0, sizeof(d));
out:
	devset_diff_cleanup(&d);
	bv_free(a);
	bv_free(c);
	return rc;
}

void
devset_diff_cleanup(struct devset_diff *diff)
{
	if (!diff)
		return;
	bv_free(diff->missing);
	bv_free(diff->extra);
	bv_free(diff->stale);
	memset(diff, 0, sizeof(*diff));
}
