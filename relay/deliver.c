/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * deliver.c: moves a device's queue to its connection. On authentication
 * the backlog is read in order (deliver_window rows at a time) and pushed,
 * then "queue_empty"; afterwards envelopes committed by this relay are
 * pushed straight from memory and those committed elsewhere are fetched
 * when a NOTIFY pokes the device. A row is deleted only after the device
 * answered its push, and stays in c->pushes until the delete commits, so a
 * fetch never pushes an envelope twice on one connection.
 */
#include <stdlib.h>
#include <string.h>

#include "bv_error.h"
#include "bv_util.h"
#include "relay.h"

int
deliver_prepare(struct relay *r)
{
	static const char fetch_sql[] =
		"SELECT seq, sender_account::text, sender_device, message_id, "
		"type, ts, body, coalesce(conversation::text, '') FROM queue "
		"WHERE device = $1::bigint AND seq "
		"<> ALL($2::bigint[]) ORDER BY seq LIMIT $3::int";
	static const char ack_sql[] =
		"DELETE FROM queue WHERE device = $1::bigint AND seq = "
		"$2::bigint";
	int rc;

	rc = db_prepare(r->dbr, "fetch", fetch_sql, 3);
	if (rc == 0)
		rc = db_prepare(r->dbw, "ack", ack_sql, 2);
	return rc;
}

int
deliver_init(struct conn *c)
{
	c->pushes = bv_calloc(c->r->cfg->deliver_window, sizeof(*c->pushes));
	if (!c->pushes)
		return BV_ENOMEM;
	c->next_push_id = 1;
	return 0;
}

static struct push *
push_by_seq(struct conn *c, int64_t seq)
{
	unsigned i;

	for (i = 0; i < c->n_pushes; i++)
		if (c->pushes[i].seq == seq)
			return &c->pushes[i];
	return NULL;
}

static int
can_push(const struct conn *c)
{
	return c->authed && conn_alive(c) && !c->r->draining;
}

static void
push(struct conn *c, const struct delivery *d)
{
	struct push *p = &c->pushes[c->n_pushes];
	char *body = bv_b64_encode(d->body, d->body_len);
	json_t *j;

	if (!body) {
		conn_close(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION);
		return;
	}
	p->seq = d->seq;
	p->push_id = c->next_push_id;
	p->state = PUSH_SENT;
	c->next_push_id =
		c->next_push_id == BV_ID_MAX ? 1 : c->next_push_id + 1;
	c->n_pushes++;
	if (d->sender_device == 0) {
		/* Relay content: its body is the notice object itself. */
		json_t *notice = json_loadb((const char *)d->body, d->body_len,
					    JSON_REJECT_DUPLICATES, NULL);

		if (!json_is_object(notice)) {
			json_decref(notice);
			notice = json_pack("{ss ss sI}", "kind", "unknown",
					   "message_id", d->message_id,
					   "timestamp", (json_int_t)d->ts);
		}
		j = json_pack("{si ss so}", "id", (int)p->push_id, "op",
			      "deliver", "notice", notice);
	} else {
		j = json_pack("{si ss s{ss si ss? ss si sI ss}}", "id",
			      (int)p->push_id, "op", "deliver", "envelope",
			      "sender", d->sender, "sender_device",
			      (int)d->sender_device, "conversation",
			      d->conversation[0] ? d->conversation : NULL,
			      "message_id", d->message_id, "type", (int)d->type,
			      "timestamp", (json_int_t)d->ts, "body", body);
	}
	bv_free(body);
	c->r->m.pushes++;
	conn_send_json(c, j);
}

static void fetch(struct conn *c);

static void
fetch_done(struct db_job *job, int rc, void *arg)
{
	struct conn *c = arg;
	PGresult *res;
	struct delivery d;
	int i, n = 0;
	unsigned limit = c->r->cfg->deliver_window;

	c->fetching = 0;
	if (rc < 0 || !can_push(c)) {
		c->more = 1; /* try again when the database is back */
		goto out;
	}
	res = db_job_result(job, 0);
	n = PQntuples(res);
	for (i = 0; i < n; i++) {
		unsigned char *body;
		size_t blen = 0;

		memset(&d, 0, sizeof(d));
		d.seq = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		if (push_by_seq(c, d.seq) || c->n_pushes >= limit)
			continue;
		snprintf(d.sender, sizeof(d.sender), "%s",
			 PQgetvalue(res, i, 1));
		d.sender_device =
			(uint32_t)strtoul(PQgetvalue(res, i, 2), NULL, 10);
		d.message_id = PQgetvalue(res, i, 3);
		d.type = (uint8_t)atoi(PQgetvalue(res, i, 4));
		d.ts = strtoll(PQgetvalue(res, i, 5), NULL, 10);
		body = PQunescapeBytea(
			(const unsigned char *)PQgetvalue(res, i, 6), &blen);
		if (!body) {
			c->more = 1;
			break;
		}
		snprintf(d.conversation, sizeof(d.conversation), "%s",
			 PQgetvalue(res, i, 7));
		d.body = body;
		d.body_len = blen;
		push(c, &d);
		PQfreemem(body);
	}
	/* A full page means there may be more; so does a poke meanwhile. */
	if ((unsigned)n >= c->fetch_limit)
		c->more = 1;
	if (!c->queue_empty_sent && (unsigned)n < c->fetch_limit) {
		c->queue_empty_sent = 1;
		conn_send_json(c, json_pack("{ss}", "op", "queue_empty"));
	}
	if (c->more)
		fetch(c);
out:
	conn_unref(c);
}

/* Reads envelopes not yet pushed, up to the free window slots. */
static void
fetch(struct conn *c)
{
	struct db_job *job = NULL;
	char dev[24], lim[16], *seqs = NULL;
	const char *v[3];
	unsigned free_slots, i;
	size_t len = 0;

	if (!can_push(c) || c->fetching)
		return;
	free_slots = c->r->cfg->deliver_window - c->n_pushes;
	if (!free_slots || !db_is_up(c->r->dbr))
		return; /* c->more stays set: an ack or reconnect resumes */
	seqs = bv_malloc((size_t)c->n_pushes * 22 + 3);
	if (!seqs)
		return;
	seqs[len++] = '{';
	for (i = 0; i < c->n_pushes; i++)
		len += (size_t)sprintf(seqs + len, "%s%lld", i ? "," : "",
				       (long long)c->pushes[i].seq);
	seqs[len++] = '}';
	seqs[len] = '\0';
	snprintf(dev, sizeof(dev), "%lld", (long long)c->device);
	snprintf(lim, sizeof(lim), "%u", free_slots);
	v[0] = dev;
	v[1] = seqs;
	v[2] = lim;
	job = db_job_new(0);
	if (!job || db_job_add(job, "fetch", 3, v, NULL, NULL, 0) < 0) {
		db_job_free(job);
		bv_free(seqs);
		return;
	}
	bv_free(seqs);
	c->more = 0;
	c->fetching = 1;
	c->fetch_limit = free_slots;
	c->r->m.fetches++;
	conn_ref(c);
	db_submit(c->r->dbr, job, fetch_done, c);
}

void
deliver_start(struct conn *c)
{
	c->more = 1;
	fetch(c);
}

void
deliver_poke(struct conn *c)
{
	c->more = 1;
	fetch(c);
}

void
deliver_committed(struct conn *c, const struct delivery *d)
{
	if (!can_push(c) || push_by_seq(c, d->seq))
		return;
	if (c->fetching || c->more ||
	    c->n_pushes >= c->r->cfg->deliver_window) {
		/* Keep queue order: let a fetch pick it up behind the rest. */
		deliver_poke(c);
		return;
	}
	push(c, d);
}

struct ack_ctx {
	struct conn *c;
	int64_t seq;
};

static void
push_remove(struct conn *c, struct push *p)
{
	*p = c->pushes[--c->n_pushes];
}

static void
ack_done(struct db_job *job, int rc, void *arg)
{
	struct ack_ctx *a = arg;
	struct conn *c = a->c;
	struct push *p = push_by_seq(c, a->seq);

	(void)job;
	if (p && rc == 0)
		push_remove(c, p);
	else if (p)
		p->state = PUSH_ACKED; /* deleted again on reconnect */
	if (c->more)
		fetch(c);
	conn_unref(c);
	bv_free(a);
}

static void
delete_acked(struct conn *c, struct push *p)
{
	struct ack_ctx *a = bv_malloc(sizeof(*a));
	struct db_job *job = db_job_new(1);
	char dev[24], seq[24];
	const char *v[2] = {dev, seq};

	if (!a || !job)
		goto fail;
	snprintf(dev, sizeof(dev), "%lld", (long long)c->device);
	snprintf(seq, sizeof(seq), "%lld", (long long)p->seq);
	if (db_job_add(job, "ack", 2, v, NULL, NULL, 0) < 0)
		goto fail;
	a->c = c;
	a->seq = p->seq;
	p->state = PUSH_DELETING;
	conn_ref(c);
	db_submit(c->r->dbw, job, ack_done, a);
	return;
fail:
	bv_free(a);
	db_job_free(job);
}

int
deliver_answer(struct conn *c, int64_t id, int is_error)
{
	unsigned i;

	for (i = 0; i < c->n_pushes; i++) {
		struct push *p = &c->pushes[i];

		if (p->push_id != id || p->state != PUSH_SENT)
			continue;
		if (is_error) {
			/* Stays queued; pushed again on the next connection. */
			p->state = PUSH_REJECTED;
			return 0;
		}
		c->r->m.acks++;
		p->state = PUSH_ACKED;
		delete_acked(c, p);
		return 0;
	}
	return -1;
}

void
deliver_db_up(struct relay *r)
{
	struct conn *c;
	unsigned i;

	for (c = r->conns; c; c = c->next) {
		if (!c->authed)
			continue;
		for (i = 0; i < c->n_pushes; i++)
			if (c->pushes[i].state == PUSH_ACKED)
				delete_acked(c, &c->pushes[i]);
		deliver_poke(c);
	}
}

void
deliver_cleanup(struct conn *c)
{
	/* Unanswered pushes stay queued in the database; nothing to undo. */
	(void)c;
}
