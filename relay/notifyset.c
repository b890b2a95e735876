/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * notifyset.c: the notify_set op (docs/protocol.md): a person chooses how
 * they are told about messages no device of theirs has picked up (channel,
 * language, whether the service may be named) and stores a web push
 * subscription. Phone numbers and e-mail addresses are never taken from a
 * client: the municipality sets them (fagapi.c, admin.c). Sending is
 * bvchat-notifier's (notifier.c), never the relay's.
 */
#include <stdio.h>
#include <string.h>

#include "bv_error.h"
#include "bv_util.h"
#include "relay.h"

static const struct relay_stmt statements[] = {
	{"notify_choose",
	 "SELECT bv_notify_choose($1::uuid, $2, $3, $4::boolean, $5, "
	 "$6::bytea, $7::bytea)",
	 7},
};

int
notifyset_prepare(struct relay *r)
{
	return relay_prepare(r, statements,
			     sizeof(statements) / sizeof(statements[0]));
}

/* An http:// endpoint is taken only on loopback, and only when the config
 * says so (tests and make run with a local push service). */
static int
endpoint_ok(const struct relay *r, const char *ep)
{
	static const char lo[] = "http://127.0.0.1:";

	if (!strncmp(ep, "https://", 8))
		return strlen(ep) > 8 && ep[8] != '/';
	return r->cfg->webpush_allow_loopback_http &&
	       !strncmp(ep, lo, sizeof(lo) - 1);
}

static void
choose_done(struct db_job *job, int rc, void *arg)
{
	struct opctx *o = arg;

	if (rc < 0) {
		opctx_fail(o, db_rc(job, rc), NULL);
		return;
	}
	ops_reply_ok(o->c, o->id, json_object());
	opctx_free(o);
}

void
op_notify_set(struct conn *c, struct bv_request *req)
{
	struct opctx *o;
	const char *v[7];
	int len[7] = {0}, fmt[7] = {0};

	if (req->u.notify_set.webpush > 0 &&
	    !endpoint_ok(c->r, req->u.notify_set.endpoint)) {
		ops_reply_error(c, req->id, BV_EFIELD,
				json_pack("{ss}", "field", "webpush.endpoint"));
		bv_request_free(req);
		return;
	}
	o = opctx_new(c, req);
	if (!o) {
		ops_reply_error(c, req->id, BV_ENOMEM, NULL);
		bv_request_free(req);
		return;
	}
	v[0] = c->account;
	v[1] = req->u.notify_set.channel[0] ? req->u.notify_set.channel : NULL;
	v[2] = req->u.notify_set.language[0] ? req->u.notify_set.language
					     : NULL;
	v[3] = req->u.notify_set.mention_service < 0
		       ? NULL
		       : (req->u.notify_set.mention_service ? "true" : "false");
	v[4] = v[5] = v[6] = NULL;
	if (req->u.notify_set.webpush < 0) {
		v[4] = "";
	} else if (req->u.notify_set.webpush > 0) {
		v[4] = req->u.notify_set.endpoint;
		v[5] = (const char *)req->u.notify_set.p256dh;
		len[5] = BV_WEBPUSH_P256DH_LEN;
		fmt[5] = 1;
		v[6] = (const char *)req->u.notify_set.auth;
		len[6] = BV_WEBPUSH_AUTH_LEN;
		fmt[6] = 1;
	}
	if (run1(c->r, RELAY_TXN, "notify_choose", 7, v, len, fmt, choose_done,
		 o) < 0)
		opctx_fail(o, BV_ENOMEM, NULL);
}
