/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * metrics.c: GET /metrics in Prometheus text format 0.0.4. Counters only
 * count; they never carry accounts, ids or anything a message said.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bv_error.h"
#include "bv_util.h"
#include "relay.h"

struct buf {
	char *s;
	size_t len, cap;
	int failed;
};

static void put(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
put(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->failed)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->failed = 1;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		char *ns = bv_realloc(b->s, b->cap * 2 + (size_t)n);
		if (!ns) {
			b->failed = 1;
			return;
		}
		b->s = ns;
		b->cap = b->cap * 2 + (size_t)n;
	}
}

static void
metric(struct buf *b, const char *name, const char *type, const char *help,
       unsigned long long v)
{
	put(b, "# HELP bvchat_%s %s\n# TYPE bvchat_%s %s\nbvchat_%s %llu\n",
	    name, help, name, type, name, v);
}

char *
metrics_render(struct relay *r)
{
	static const char *const ops[] = {
		"response",	  "auth",
		"enroll",	  "keys_put",
		"keys_get",	  "keys_count",
		"send",		  "ping",
		"cases",	  "conversation_create",
		"notify_set",	  "blob_create",
		"blobs_journaled"};
	struct buf b = {bv_malloc(4096), 0, 4096, 0};
	const struct relay_metrics *m = &r->m;
	struct db_stats w, rd;
	size_t i;

	if (!b.s)
		return NULL;
	db_get_stats(r->dbw, &w);
	db_get_stats(r->dbr, &rd);
	metric(&b, "connections", "gauge", "Open WebSocket connections.",
	       r->n_conns);
	metric(&b, "connections_authenticated", "gauge",
	       "Connections authenticated as a device.", r->n_authed);
	metric(&b, "connections_total", "counter",
	       "WebSocket connections accepted.", m->connections_total);
	metric(&b, "frames_received_total", "counter",
	       "Complete frames received.", m->frames_in);
	put(&b, "# HELP bvchat_requests_total Requests by operation.\n"
		"# TYPE bvchat_requests_total counter\n");
	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		put(&b, "bvchat_requests_total{op=\"%s\"} %llu\n", ops[i],
		    m->requests[i]);
	put(&b, "# HELP bvchat_errors_total Error answers by code.\n"
		"# TYPE bvchat_errors_total counter\n");
	for (i = 1; i < 64; i++)
		if (m->errors[i])
			put(&b, "bvchat_errors_total{code=\"%s\"} %llu\n",
			    bv_errname(-(int)i), m->errors[i]);
	metric(&b, "sends_total", "counter", "Sends committed.", m->sends);
	metric(&b, "envelopes_stored_total", "counter",
	       "Envelopes committed to device queues.", m->envelopes_stored);
	metric(&b, "send_commit_microseconds_total", "counter",
	       "Sum of accept-to-commit times of committed sends.",
	       m->send_latency_us_sum);
	metric(&b, "deliveries_pushed_total", "counter",
	       "Envelopes pushed to devices.", m->pushes);
	metric(&b, "deliveries_acked_total", "counter",
	       "Pushes acknowledged by devices.", m->acks);
	metric(&b, "queue_fetches_total", "counter",
	       "Queue reads for connected devices.", m->fetches);
	metric(&b, "displaced_total", "counter",
	       "Connections displaced by a newer one of the same device.",
	       m->displaced);
	metric(&b, "slow_consumers_total", "counter",
	       "Connections closed because their output buffer filled.",
	       m->slow_consumers);
	metric(&b, "notifications_total", "counter",
	       "PostgreSQL notifications received.", m->notifies);
	put(&b,
	    "# HELP bvchat_invite_redeems_total Invite code redemptions "
	    "by result.\n# TYPE bvchat_invite_redeems_total counter\n"
	    "bvchat_invite_redeems_total{result=\"ok\"} %llu\n"
	    "bvchat_invite_redeems_total{result=\"refused\"} %llu\n"
	    "bvchat_invite_redeems_total{result=\"limited\"} %llu\n",
	    m->invite_redeemed, m->invite_refused, m->invite_limited);
	metric(&b, "blobs", "gauge",
	       "Attachments stored, pending ones included (last sweep).",
	       r->bs.count);
	metric(&b, "blob_bytes", "gauge",
	       "Bytes of attachments stored, pending included (last sweep).",
	       r->bs.bytes);
	metric(&b, "blobs_unjournaled", "gauge",
	       "Uploaded attachments not yet journaled (last sweep).",
	       r->bs.unjournaled);
	metric(&b, "blob_unjournaled_oldest_seconds", "gauge",
	       "Age of the oldest attachment not yet journaled (last sweep).",
	       r->bs.oldest_unjournaled_s);
	put(&b,
	    "# HELP bvchat_blob_uploads_total Attachment uploads by result.\n"
	    "# TYPE bvchat_blob_uploads_total counter\n"
	    "bvchat_blob_uploads_total{result=\"ok\"} %llu\n"
	    "bvchat_blob_uploads_total{result=\"failed\"} %llu\n",
	    r->bs.uploads_ok, r->bs.uploads_failed);
	metric(&b, "blob_downloads_total", "counter",
	       "Attachment downloads started.", r->bs.downloads);
	metric(&b, "blob_swept_total", "counter",
	       "Attachments deleted by this relay's sweeps.", r->bs.swept);
	metric(&b, "blob_transfers", "gauge",
	       "Attachment uploads and downloads running.", r->bs.transfers);
	metric(&b, "db_up", "gauge", "1 when both database connections work.",
	       (unsigned long long)(db_is_up(r->dbw) && db_is_up(r->dbr)));
	metric(&b, "db_commit_rounds_total", "counter",
	       "Round trips on the write connection.", w.rounds);
	metric(&b, "db_transactions_total", "counter",
	       "Transactions committed on the write connection (group commit: "
	       "many jobs share one).",
	       w.transactions);
	metric(&b, "db_jobs_total", "counter", "Jobs run on both connections.",
	       w.jobs + rd.jobs);
	metric(&b, "db_solo_retries_total", "counter",
	       "Jobs re-run alone after their group transaction failed.",
	       w.solo_retries);
	metric(&b, "db_reconnects_total", "counter", "Database reconnections.",
	       w.reconnects + rd.reconnects);
	metric(&b, "db_failures_total", "counter",
	       "Jobs failed because the database was unavailable.",
	       w.failures + rd.failures);
	metric(&b, "draining", "gauge", "1 while the relay is stopping.",
	       (unsigned long long)r->draining);
	if (b.failed) {
		bv_free(b.s);
		return NULL;
	}
	return b.s;
}
