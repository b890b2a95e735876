/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * fuzz_content.c: libFuzzer driver for bv_content_decode(), the client's
 * parser of decrypted end-to-end content (client-lib/src/content.c).
 *
 * Beyond "no crash, no leak" it aborts when a decoded content breaks a
 * promise of content.h (lengths, caps, UTF-8, no duplicate ids), and it
 * re-encodes every known kind and checks that the result decodes the same.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bv_error.h"
#include "bv_util.h"
#include "content.h"
#include "fuzz.h"

static void
check_content(const struct bv_content *c)
{
	size_t i, j;

	CHECK(c->version >= 1 && c->version <= 255);
	CHECK(strlen(c->kind_name) >= 1);
	CHECK(bv_message_id_valid(c->message_id));
	CHECK(c->sent_ms >= 1 && c->sent_ms <= BV_CONTENT_SENT_MAX);
	CHECK(c->conversation[0] == '\0' || bv_uuid_valid(c->conversation));
	switch (c->kind) {
	case BV_CONTENT_TEXT:
	case BV_CONTENT_EMAIL:
		CHECK(c->conversation[0] != '\0');
		CHECK(c->text && c->text_len <= BV_CONTENT_TEXT_MAX);
		CHECK(c->text_len >= 1 ||
		      (c->kind == BV_CONTENT_TEXT && c->n_att >= 1));
		CHECK(strlen(c->text) == c->text_len);
		CHECK(!c->ids);
		CHECK(c->n_att <= BV_CONTENT_ATTACHMENTS_MAX);
		CHECK(c->kind == BV_CONTENT_EMAIL ||
		      (!c->subject[0] && !c->thread[0] && !c->answer_by_ms));
		CHECK(c->kind == BV_CONTENT_TEXT ||
		      (strlen(c->subject) >= 1 &&
		       strlen(c->subject) <= BV_CONTENT_SUBJECT_MAX));
		for (i = 0; i < c->n_att; i++) {
			const struct bv_content_attachment *a = &c->att[i];

			CHECK(bv_uuid_valid(a->blob));
			CHECK(strlen(a->download) == BV_CONTENT_CAP_LEN);
			CHECK(strlen(a->sha256) == 64);
			CHECK(a->size >= 0 &&
			      a->size <= BV_CONTENT_BLOB_SIZE_MAX);
			CHECK(bv_content_type_allowed(a->type));
			CHECK(bv_content_name_valid(a->name, strlen(a->name)));
			CHECK(!strchr(a->name, '/') && !strchr(a->name, '\\'));
		}
		break;
	case BV_CONTENT_RECEIPT:
	case BV_CONTENT_RESEND_REQUEST:
		CHECK(!c->text);
		CHECK(c->n_ids >= 1 && c->n_ids <= BV_CONTENT_IDS_MAX);
		for (i = 0; i < c->n_ids; i++) {
			CHECK(bv_message_id_valid(c->ids[i]));
			for (j = 0; j < i; j++)
				CHECK(strcmp(c->ids[i], c->ids[j]) != 0);
		}
		break;
	case BV_CONTENT_UNKNOWN:
		CHECK(!c->text && !c->ids);
		break;
	default:
		abort();
	}
}

static void
check_round_trip(const struct bv_content *c)
{
	struct bv_content *d = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;

	if (c->kind == BV_CONTENT_UNKNOWN)
		return;
	if (bv_content_encode(c, &buf, &len) < 0)
		return; /* only BV_ENOMEM is possible here */
	CHECK(len % BV_CONTENT_PAD_BLOCK == 0 && len <= BV_CONTENT_MAX_BYTES);
	CHECK(bv_content_decode(buf, len, &d) == 0);
	CHECK(d->kind == c->kind && d->sent_ms == c->sent_ms);
	CHECK(strcmp(d->message_id, c->message_id) == 0);
	CHECK(strcmp(d->conversation, c->conversation) == 0);
	CHECK(d->text_len == c->text_len && d->n_ids == c->n_ids);
	CHECK(d->n_att == c->n_att && strcmp(d->subject, c->subject) == 0 &&
	      strcmp(d->thread, c->thread) == 0 &&
	      d->answer_by_ms == c->answer_by_ms);
	if (c->n_att)
		CHECK(memcmp(d->att, c->att, c->n_att * sizeof(*c->att)) == 0);
	if (c->text)
		CHECK(memcmp(d->text, c->text, c->text_len) == 0);
	if (c->ids)
		CHECK(memcmp(d->ids, c->ids, c->n_ids * sizeof(*c->ids)) == 0);
	bv_content_free(d);
	bv_free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bv_content *c = NULL;
	int rc;

	rc = bv_content_decode(data, size, &c);
	if (rc < 0) {
		CHECK(c == NULL);
		CHECK(rc == BV_EINVAL || rc == BV_EJSON || rc == BV_EFIELD ||
		      rc == BV_ETOOMANY || rc == BV_ENOMEM);
		return 0;
	}
	CHECK(c != NULL);
	check_content(c);
	check_round_trip(c);
	bv_content_free(c);
	return 0;
}
