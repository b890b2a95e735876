/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * fuzz_wire.c: libFuzzer driver for bv_wire_parse(), libbvchat's parser of
 * relay frames, with the default frame limit.
 *
 * Beyond "no crash, no leak" it aborts when a parsed message breaks a
 * promise of wire.h (ranges, lengths, caps) or a refusal uses a code the
 * contract does not list, and it runs what the client runs next: the
 * acknowledgement of a deliver, checked by the relay's own parser.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bv_error.h"
#include "bv_proto.h"
#include "bv_util.h"
#include "wire.h"
#include "fuzz.h"

static void
check_devlists(const struct bv_wire_devlists *l)
{
	size_t i, j;

	CHECK(l->n <= BV_WIRE_MAX_ITEMS);
	CHECK((l->n == 0) == (l->items == NULL));
	for (i = 0; i < l->n; i++) {
		CHECK(bv_uuid_valid(l->items[i].account));
		CHECK(l->items[i].n_devices >= 1 &&
		      l->items[i].n_devices <= BV_WIRE_MAX_ITEMS);
		for (j = 0; j < l->items[i].n_devices; j++)
			CHECK(l->items[i].devices[j] >= 1 &&
			      l->items[i].devices[j] <= BV_ID_MAX);
	}
}

static void
check_ack(int64_t id)
{
	struct bv_request *r = NULL;
	char *s = NULL;

	CHECK(bv_wire_build_ack(id, &s) == 0);
	CHECK(bv_request_parse(s, strlen(s), NULL, &r, NULL) == 0);
	CHECK(r->op == BV_OP_RESPONSE && r->id == id);
	bv_request_free(r);
	bv_free(s);
}

static void
check_msg(const struct bv_wire_msg *m)
{
	size_t i;

	switch (m->kind) {
	case BV_WIRE_CHALLENGE:
		CHECK(m->id == -1);
		CHECK(strlen(m->u.challenge.nonce) == BV_WIRE_NONCE_B64);
		CHECK(m->u.challenge.relay[0] != '\0');
		break;
	case BV_WIRE_QUEUE_EMPTY:
	case BV_WIRE_DISPLACED:
		CHECK(m->id == -1);
		break;
	case BV_WIRE_PREKEYS_LOW:
		CHECK(m->id == -1);
		CHECK(m->u.prekeys_low.one_time_count <= BV_ID_MAX);
		break;
	case BV_WIRE_DELIVER:
		CHECK(m->id >= 1 && m->id <= BV_ID_MAX);
		CHECK(bv_uuid_valid(m->u.deliver.sender));
		CHECK(m->u.deliver.sender_device >= 1);
		CHECK(bv_message_id_valid(m->u.deliver.message_id));
		CHECK(m->u.deliver.timestamp >= 0);
		CHECK(m->u.deliver.body && m->u.deliver.body_len >= 1);
		check_ack(m->id);
		break;
	case BV_WIRE_OK:
		CHECK(m->id >= 1 && m->id <= BV_ID_MAX);
		CHECK(m->u.ok.n_bundles <= BV_WIRE_MAX_ITEMS);
		for (i = 0; i < m->u.ok.n_bundles; i++) {
			CHECK(m->u.ok.bundles[i].device >= 1);
			CHECK(m->u.ok.bundles[i].registration_id >= 1);
		}
		if (m->u.ok.fields & BV_WIRE_OK_ACCOUNT)
			CHECK(bv_uuid_valid(m->u.ok.account));
		if (m->u.ok.fields & BV_WIRE_OK_TENANT)
			CHECK(bv_uuid_valid(m->u.ok.tenant));
		break;
	case BV_WIRE_ERROR:
		CHECK(m->id == -1 || (m->id >= 1 && m->id <= BV_ID_MAX));
		CHECK(m->u.error.code < 0);
		CHECK(m->u.error.name[0] != '\0');
		CHECK(m->u.error.retryable == 0 || m->u.error.retryable == 1);
		check_devlists(&m->u.error.missing);
		check_devlists(&m->u.error.extra);
		check_devlists(&m->u.error.stale);
		break;
	default:
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bv_wire_msg *m = NULL;
	int rc;

	rc = bv_wire_parse((const char *)data, size, 0, &m);
	if (rc == 0) {
		CHECK(m);
		check_msg(m);
		bv_wire_msg_free(m);
		return 0;
	}
	CHECK(m == NULL);
	CHECK(rc == BV_EJSON || rc == BV_EFIELD || rc == BV_EOP ||
	      rc == BV_EFRAME || rc == BV_EBASE64 || rc == BV_ENOMEM);
	return 0;
}
