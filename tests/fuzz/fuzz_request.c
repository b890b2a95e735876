/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * fuzz_request.c: libFuzzer driver for bv_request_parse(), the relay's only
 * parser of client frames, with the default limits.
 *
 * Beyond "no crash, no leak" it aborts when a parsed request breaks a
 * promise of bv_proto.h (ranges, lengths, limits, no duplicate envelopes)
 * or a refusal is inconsistent, and it runs what the relay runs next: the
 * error frame, and bv_token_peek() on an enrollment token.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bv_error.h"
#include "bv_proto.h"
#include "bv_token.h"
#include "bv_util.h"
#include "fuzz.h"

static void
check_send(const struct bv_request *r, const struct bv_limits *lim)
{
	size_t i, j, n = r->u.send.n_envelopes;

	CHECK(bv_uuid_valid(r->u.send.conversation));
	CHECK(r->u.send.partial == 0 || r->u.send.partial == 1);
	CHECK(bv_message_id_valid(r->u.send.message_id));
	CHECK(n >= 1 && n <= lim->max_envelopes_per_send);
	for (i = 0; i < n; i++) {
		const struct bv_envelope_in *e = &r->u.send.envelopes[i];

		CHECK(bv_uuid_valid(e->account));
		CHECK(e->device >= 1 && e->device <= BV_ID_MAX);
		CHECK(e->registration_id >= 1 &&
		      e->registration_id <= BV_ID_MAX);
		CHECK(e->body && e->body_len >= 1 &&
		      e->body_len <= lim->max_envelope_bytes);
		for (j = 0; j < i; j++)
			CHECK(e->device != r->u.send.envelopes[j].device ||
			      strcmp(e->account,
				     r->u.send.envelopes[j].account) != 0);
	}
}

/* One of the words in list (NULL-terminated). */
static int
one_of(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (!strcmp(s, *list))
			return 1;
	return 0;
}

static void
check_notify_set(const struct bv_request *r)
{
	static const char *const channels[] = {"",	"webpush", "sms",
					       "email", "none",	   NULL};
	static const char *const languages[] = {"",   "nb", "nn",
						"en", "se", NULL};
	const char *ep = r->u.notify_set.endpoint;
	size_t len = strnlen(ep, sizeof(r->u.notify_set.endpoint));

	CHECK(one_of(r->u.notify_set.channel, channels));
	CHECK(one_of(r->u.notify_set.language, languages));
	CHECK(r->u.notify_set.mention_service >= -1 &&
	      r->u.notify_set.mention_service <= 1);
	CHECK(r->u.notify_set.webpush >= -1 && r->u.notify_set.webpush <= 1);
	/* At least one member was given. */
	CHECK(r->u.notify_set.channel[0] || r->u.notify_set.language[0] ||
	      r->u.notify_set.mention_service >= 0 ||
	      r->u.notify_set.webpush != 0);
	CHECK(len <= BV_WEBPUSH_ENDPOINT_MAX);
	if (r->u.notify_set.webpush > 0) {
		CHECK(len > 0);
		CHECK(r->u.notify_set.p256dh[0] == 0x04);
	}
}

static void
check_request(const struct bv_request *r, const struct bv_limits *lim)
{
	struct bv_token t;
	size_t len;

	CHECK(r->id >= 1 && r->id <= BV_ID_MAX);
	switch (r->op) {
	case BV_OP_RESPONSE:
		CHECK(r->u.response.is_error == 0 ||
		      r->u.response.is_error == 1);
		break;
	case BV_OP_AUTH:
		CHECK(bv_uuid_valid(r->u.auth.account));
		CHECK(r->u.auth.device >= 1 && r->u.auth.device <= BV_ID_MAX);
		break;
	case BV_OP_ENROLL:
		CHECK(r->u.enroll.token);
		len = strlen(r->u.enroll.token);
		CHECK(len >= 1 && len <= BV_TOKEN_MAX);
		CHECK(r->u.enroll.registration_id >= 1 &&
		      r->u.enroll.registration_id <= BV_ID_MAX);
		CHECK(r->u.enroll.replaces <= BV_ID_MAX);
		(void)bv_token_peek(r->u.enroll.token, &t);
		break;
	case BV_OP_KEYS_PUT:
		CHECK(r->u.keys_put.n_one_time <= lim->max_prekeys_per_upload);
		CHECK((r->u.keys_put.n_one_time == 0) ==
		      (r->u.keys_put.one_time == NULL));
		break;
	case BV_OP_KEYS_GET:
		CHECK(bv_uuid_valid(r->u.keys_get.account));
		CHECK(r->u.keys_get.device <= BV_ID_MAX);
		break;
	case BV_OP_SEND:
		check_send(r, lim);
		break;
	case BV_OP_CASES:
		CHECK(!r->u.cases.case_id[0] ||
		      bv_uuid_valid(r->u.cases.case_id));
		CHECK(!r->u.cases.after[0] || bv_uuid_valid(r->u.cases.after));
		break;
	case BV_OP_CONVERSATION_CREATE:
		CHECK(bv_uuid_valid(r->u.conversation_create.case_id));
		CHECK(r->u.conversation_create.n_members <=
		      BV_CONVERSATION_MEMBERS_MAX);
		break;
	case BV_OP_BLOB_CREATE:
		CHECK(bv_uuid_valid(r->u.blob_create.conversation));
		break;
	case BV_OP_BLOBS_JOURNALED:
		CHECK(r->u.blobs_journaled.n >= 1 &&
		      r->u.blobs_journaled.n <= BV_BLOBS_JOURNALED_MAX);
		for (len = 0; len < r->u.blobs_journaled.n; len++)
			CHECK(bv_uuid_valid(r->u.blobs_journaled.blobs[len]));
		break;
	case BV_OP_NOTIFY_SET:
		check_notify_set(r);
		break;
	case BV_OP_KEYS_COUNT:
	case BV_OP_PING:
		break;
	default:
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bv_request *r = NULL;
	struct bv_parse_error err;
	struct bv_limits lim;
	char *frame;
	int rc;

	bv_limits_default(&lim);
	rc = bv_request_parse((const char *)data, size, &lim, &r, &err);
	if (rc == 0) {
		CHECK(r);
		check_request(r, &lim);
		bv_request_free(r);
		return 0;
	}
	CHECK(r == NULL);
	CHECK(rc == err.code);
	CHECK(rc == BV_EJSON || rc == BV_EFIELD || rc == BV_EOP ||
	      rc == BV_EFRAME || rc == BV_EBASE64 || rc == BV_EENVELOPE ||
	      rc == BV_ETOOMANY || rc == BV_ENOMEM);
	CHECK(err.id == -1 || (err.id >= 1 && err.id <= BV_ID_MAX));
	CHECK(memchr(err.field, '\0', sizeof(err.field)) != NULL);
	/* Codes that name a field always do. */
	CHECK((rc != BV_EFIELD && rc != BV_EBASE64) || err.field[0] != '\0');
	frame = bv_error_frame(err.id, rc, NULL);
	CHECK(frame);
	bv_free(frame);
	return 0;
}
