/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * blob.c: attachments (docs/protocol.md "Attachments"). blob_create
 * reserves quota and hands out two capabilities; PUT streams the body into
 * blob_chunks as it arrives (256 KiB rows, at most BLOB_WRITES_MAX writes
 * in flight, then lws stops reading the socket), hashing it on the way, and
 * keeps it only when the length and the SHA-256 match; GET streams the
 * chunks back out as the connection drains. Nothing is ever held whole in
 * memory, and nothing waits: every statement is a job on the relay's libuv
 * loop (db.c). Transfers use a database connection of their own (r->dbb),
 * so that megabytes of chunks never sit in front of a send's commit.
 *
 * A failed upload is deleted at once; one whose relay died is found by its
 * heartbeat (alive_until) running out and deleted by any relay's sweep. It
 * does not resume uploads, answer ranges, or log or store a capability.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/evp.h>
#include <sodium.h>

#include "blob.h"
#include "bv_error.h"
#include "bv_util.h"
#include "relay.h"

#define PIECE_BYTES 32768 /* written to a download per writeable callback */

struct blobs {
	struct relay *r;
	uv_timer_t *sweep, *beat;
	struct blob_http *uploads; /* claimed, not finished: the heartbeat */
	int sweeping, beating;
};

/* A chunk of a download, LWS_PRE bytes of headroom in front. */
struct piece {
	uint8_t *buf;
	size_t len, off;
	int ready;
};

struct blob_http {
	struct relay *r;
	struct lws *wsi; /* NULL once the connection is gone */
	int is_put;
	char id[37];
	uint8_t cap[32]; /* SHA-256 of the capability */
	int jobs;	 /* database jobs in flight */
	int busy;	 /* of which one is not a chunk's */

	/* The answer: JSON, or a download's head and pieces. */
	int answered, head_sent, close_after;
	unsigned status;
	char *reply;
	size_t reply_len;

	/* Upload. */
	uint64_t length; /* Content-Length; has_length */
	int has_length, chunked;
	int claimed, stored, deleted, failed, body_done, paused;
	int fail_code;
	unsigned fail_status;
	uint64_t size, received;
	uint8_t want[32];
	EVP_MD_CTX *md;
	uint8_t *chunk;
	size_t chunk_len;
	int next_n;
	unsigned writes;
	struct blob_http *up_prev, *up_next; /* b->uploads */
	int listed;

	/* Download. */
	int n_chunks, next_fetch, next_write, fetching;
	struct piece q[2];
};

static const struct relay_stmt main_statements[] = {
	{"blob_create",
	 "SELECT blob::text, expires FROM bv_blob_create($1::uuid, $2::uuid, "
	 "$3::bigint, $4::uuid, $5::bigint, $6::bytea, $7::bytea, $8::bytea, "
	 "$9::int)",
	 9},
	/* Only the tenant's archive account marks; anything else, unknown
	 * ids and other tenants' blobs change nothing, silently. */
	{"blobs_journaled",
	 "UPDATE blobs b SET journaled_at = now(), delete_after = now() + "
	 "make_interval(days => t.blob_retention_days) FROM accounts a, "
	 "tenants t WHERE a.id = $1::uuid AND a.kind = 'archive' AND "
	 "b.tenant_id = a.tenant_id AND t.id = a.tenant_id AND b.id = ANY "
	 "($2::uuid[]) AND b.state = 'complete' AND b.journaled_at IS NULL",
	 2},
};

static const struct relay_stmt blob_statements[] = {
	/* The capability is used up by the first attempt (upload_hash goes),
	 * and the heartbeat starts. */
	{"blob_claim",
	 "UPDATE blobs SET upload_hash = NULL, alive_until = now() + "
	 "make_interval(secs => $3::int) WHERE id = $1::uuid AND upload_hash "
	 "= $2::bytea AND state = 'pending' AND expires_at > now() RETURNING "
	 "size, encode(sha256, 'hex')",
	 3},
	{"blob_chunk_put",
	 "INSERT INTO blob_chunks (blob_id, n, data) VALUES ($1::uuid, "
	 "$2::int, $3::bytea)",
	 3},
	{"blob_finish",
	 "UPDATE blobs SET state = 'complete', completed_at = now(), "
	 "alive_until = NULL WHERE id = $1::uuid AND state = 'pending' AND "
	 "(SELECT count(*) FROM blob_chunks WHERE blob_id = $1::uuid) = "
	 "$2::int RETURNING 1",
	 2},
	{"blob_delete",
	 "DELETE FROM blobs WHERE id = $1::uuid AND state = 'pending'", 1},
	{"blob_lookup",
	 "SELECT size FROM blobs WHERE id = $1::uuid AND download_hash = "
	 "$2::bytea AND state = 'complete'",
	 2},
	{"blob_chunk_get",
	 "SELECT data FROM blob_chunks WHERE blob_id = $1::uuid AND n = "
	 "$2::int",
	 2},
	{"blob_alive",
	 "UPDATE blobs SET alive_until = now() + make_interval(secs => "
	 "$2::int) WHERE id = ANY ($1::uuid[]) AND state = 'pending'",
	 2},
	/* Pending past their deadline or abandoned by their relay, and
	 * journaled past their retention; a batch at a time. */
	{"blob_sweep_pending",
	 "WITH d AS (DELETE FROM blobs WHERE id = ANY (ARRAY(SELECT id FROM "
	 "blobs WHERE state = 'pending' AND expires_at < now() LIMIT 100) || "
	 "ARRAY(SELECT id FROM blobs WHERE state = 'pending' AND alive_until "
	 "< now() LIMIT 100)) RETURNING 1) SELECT count(*) FROM d",
	 0},
	{"blob_sweep_journaled",
	 "WITH d AS (DELETE FROM blobs WHERE id = ANY (ARRAY(SELECT id FROM "
	 "blobs WHERE delete_after < now() ORDER BY delete_after LIMIT 100)) "
	 "RETURNING 1) SELECT count(*) FROM d",
	 0},
	/* For /metrics: one pass over blobs (not chunks) a sweep. */
	{"blob_stats",
	 "SELECT count(*), coalesce(sum(size), 0), count(*) FILTER (WHERE "
	 "state = 'complete' AND journaled_at IS NULL), coalesce(floor("
	 "extract(epoch FROM now() - min(completed_at) FILTER (WHERE state = "
	 "'complete' AND journaled_at IS NULL))), 0)::bigint FROM blobs",
	 0},
};

/* ---------------------------------------------------------------- parsers */

int
blob_match(const char *path)
{
	return path &&
	       !strncmp(path, BLOB_PATH_PREFIX, sizeof(BLOB_PATH_PREFIX) - 1);
}

int
blob_path_id(const char *path, char id[37])
{
	const char *s;

	if (!blob_match(path))
		return -1;
	s = path + sizeof(BLOB_PATH_PREFIX) - 1;
	if (strlen(s) != BV_UUID_LEN || !bv_uuid_valid(s))
		return -1;
	memcpy(id, s, BV_UUID_LEN + 1);
	return 0;
}

static void
sha256(const uint8_t *in, size_t len, uint8_t out[32])
{
	unsigned n = 32;

	if (EVP_Digest(in, len, out, &n, EVP_sha256(), NULL) != 1 || n != 32)
		randombytes_buf(out, 32); /* matches nothing stored */
}

int
blob_bearer(const char *value, size_t len, uint8_t hash[32])
{
	static const char scheme[] = "Bearer ";
	uint8_t cap[BLOB_CAP_BYTES + 1];
	size_t n = 0, i;
	int rc;

	if (!value || len != sizeof(scheme) - 1 + BLOB_CAP_LEN ||
	    strncasecmp(value, scheme, sizeof(scheme) - 1))
		return -1;
	value += sizeof(scheme) - 1;
	for (i = 0; i < BLOB_CAP_LEN; i++) {
		char c = value[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return -1;
	}
	rc = bv_b64url_decode(value, BLOB_CAP_LEN, cap, sizeof(cap), &n);
	if (rc < 0 || n != BLOB_CAP_BYTES) {
		bv_wipe(cap, sizeof(cap));
		return -1;
	}
	sha256(cap, n, hash);
	bv_wipe(cap, sizeof(cap));
	return 0;
}

int
blob_length(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (!s || !*s)
		return -1;
	for (i = 0; s[i]; i++) {
		if (i >= 19 || s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

/* ---------------------------------------------------------------- helpers */

static void
hex32(const uint8_t in[32], char out[67])
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	out[0] = '\\';
	out[1] = 'x';
	for (i = 0; i < 32; i++) {
		out[2 + 2 * i] = digits[in[i] >> 4];
		out[3 + 2 * i] = digits[in[i] & 15];
	}
	out[66] = '\0';
}

static void
upload_unlist(struct blob_http *h)
{
	struct blobs *b = h->r->blobs;

	if (!h->listed)
		return;
	if (h->up_prev)
		h->up_prev->up_next = h->up_next;
	else
		b->uploads = h->up_next;
	if (h->up_next)
		h->up_next->up_prev = h->up_prev;
	h->up_prev = h->up_next = NULL;
	h->listed = 0;
}

static void
upload_list(struct blob_http *h)
{
	struct blobs *b = h->r->blobs;

	h->up_prev = NULL;
	h->up_next = b->uploads;
	if (b->uploads)
		b->uploads->up_prev = h;
	b->uploads = h;
	h->listed = 1;
}

static void
bh_free(struct blob_http *h)
{
	int i;

	upload_unlist(h);
	h->r->bs.transfers--;
	EVP_MD_CTX_free(h->md);
	bv_free(h->chunk);
	bv_free(h->reply);
	for (i = 0; i < 2; i++)
		bv_free(h->q[i].buf);
	bv_wipe(h->cap, sizeof(h->cap));
	bv_free(h);
}

/* Sets the JSON answer and asks lws for a chance to write it. */
static void
answer(struct blob_http *h, unsigned status, char *body)
{
	if (h->answered) {
		bv_free(body);
		return;
	}
	h->answered = 1;
	h->status = body ? status : 500;
	h->reply = body ? body
			: bv_strdup("{\"error\":{\"code\":\"BV_ENOMEM\"}}\n");
	h->reply_len = h->reply ? strlen(h->reply) : 0;
	if (!h->reply)
		h->close_after = 1;
	bv_log(BV_LOG_INFO, "blob: %s %s: %u", h->is_put ? "PUT" : "GET",
	       h->id[0] ? h->id : "-", h->status);
	if (h->wsi) {
		/* lws gives no writeable callback while reading is off. */
		if (h->paused) {
			h->paused = 0;
			lws_rx_flow_control(h->wsi, 1);
		}
		lws_callback_on_writable(h->wsi);
	}
}

static void
answer_error(struct blob_http *h, int code, unsigned status)
{
	json_t *j = json_pack("{s:{s:s, s:i, s:s}}", "error", "code",
			      bv_errname(code), "errno", code, "message",
			      bv_strerror(code));
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	char *body = s ? bv_malloc(strlen(s) + 2) : NULL;

	if (body)
		sprintf(body, "%s\n", s);
	free(s);
	json_decref(j);
	if (code < 0 && -code < 64)
		h->r->m.errors[-code]++;
	answer(h, status, body);
}

static int
submit(struct blob_http *h, struct db_job *job, db_done_cb cb, int busy)
{
	if (!job)
		return BV_ENOMEM;
	if (db_submit(h->r->dbb, job, cb, h) < 0)
		return BV_EINTERNAL;
	h->jobs++;
	h->busy += busy;
	return 0;
}

/* A job of one statement, or NULL (ENOMEM). */
static struct db_job *
job1(const char *stmt, int n, const char *const *v, const int *len,
     const int *fmt, int binary_result)
{
	struct db_job *job = db_job_new(0);

	if (job && db_job_add(job, stmt, n, v, len, fmt, binary_result) < 0) {
		db_job_free(job);
		job = NULL;
	}
	return job;
}

/* ---------------------------------------------------------------- upload */

static void up_step(struct blob_http *h);

/* Something went wrong: remembered, then acted on by up_step(). */
static void
up_fail(struct blob_http *h, int code, unsigned status)
{
	if (h->failed)
		return;
	h->failed = 1;
	h->fail_code = code;
	h->fail_status = status;
}

static void
resume_rx(struct blob_http *h)
{
	if (h->paused && h->wsi) {
		h->paused = 0;
		lws_rx_flow_control(h->wsi, 1);
	}
}

static void
pause_rx(struct blob_http *h)
{
	if (!h->paused && h->wsi) {
		h->paused = 1;
		lws_rx_flow_control(h->wsi, 0);
	}
}

static void
delete_done(struct db_job *job, int rc, void *arg)
{
	struct blob_http *h = arg;

	(void)job;
	h->jobs--;
	h->busy--;
	/* When it failed, the sweep deletes the row once alive_until has
	 * passed: nothing heartbeats it any more. */
	if (rc < 0)
		bv_log(BV_LOG_WARN, "blob %s: delete failed, left to the sweep",
		       h->id);
	h->deleted = 1;
	upload_unlist(h);
	up_step(h);
}

static void
finish_done(struct db_job *job, int rc, void *arg)
{
	struct blob_http *h = arg;
	PGresult *res = db_job_result(job, 0);
	char body[128];

	h->jobs--;
	h->busy--;
	if (rc < 0) {
		up_fail(h, rc == BV_EUNAVAILABLE ? rc : BV_EINTERNAL,
			rc == BV_EUNAVAILABLE ? 503 : 500);
	} else if (!res || PQntuples(res) != 1) {
		/* Swept meanwhile (past its deadline). */
		h->deleted = 1;
		up_fail(h, BV_ENOBLOB, 404);
	} else {
		h->stored = 1;
		upload_unlist(h);
		h->r->bs.uploads_ok++;
		snprintf(body, sizeof(body),
			 "{\"blob\":\"%s\",\"size\":%" PRIu64 "}\n", h->id,
			 h->size);
		answer(h, 201, bv_strdup(body));
	}
	up_step(h);
}

static void
chunk_done(struct db_job *job, int rc, void *arg)
{
	struct blob_http *h = arg;

	(void)job;
	h->jobs--;
	h->writes--;
	if (rc < 0)
		up_fail(h, rc == BV_EUNAVAILABLE ? rc : BV_EINTERNAL,
			rc == BV_EUNAVAILABLE ? 503 : 500);
	up_step(h);
}

/* Writes the chunk buffer as row next_n. */
static int
chunk_flush(struct blob_http *h)
{
	char n[16];
	const char *v[3] = {h->id, n, (const char *)h->chunk};
	const int len[3] = {0, 0, (int)h->chunk_len}, fmt[3] = {0, 0, 1};
	int rc;

	if (!h->chunk_len)
		return 0;
	snprintf(n, sizeof(n), "%d", h->next_n);
	rc = submit(h, job1("blob_chunk_put", 3, v, len, fmt, 0), chunk_done,
		    0);
	if (rc < 0)
		return rc;
	h->writes++;
	h->next_n++;
	h->chunk_len = 0;
	return 0;
}

/*
 * Decides what comes next after any event: flushes, pauses or resumes the
 * socket, checks the digest, stores, or deletes and answers; frees h once
 * the connection is gone and nothing is in flight.
 */
static void
up_step(struct blob_http *h)
{
	uint8_t got[32];
	unsigned n = 0;

	if (!h->wsi && !h->failed && !h->stored)
		up_fail(h, BV_EBLOB, 400); /* cut short: nobody to answer */
	if (h->busy)
		return;
	if (h->failed) {
		pause_rx(h);
		if (h->writes)
			return; /* then delete, so no chunk comes after */
		if (h->claimed && !h->deleted && !h->stored) {
			const char *v[1] = {h->id};

			if (submit(h, job1("blob_delete", 1, v, NULL, NULL, 0),
				   delete_done, 1) == 0)
				return;
			h->deleted = 1; /* left to the sweep */
			upload_unlist(h);
		}
		/*
		 * A body of an acceptable length is read (and dropped) to its
		 * end before the answer: closing on unread bytes makes the
		 * kernel reset the connection, and the client may lose the
		 * answer with it.
		 */
		if (h->wsi && !h->answered && !h->body_done && h->has_length &&
		    !h->chunked && h->length <= h->r->cfg->max_blob_bytes) {
			resume_rx(h);
			return;
		}
		if (!h->answered) {
			h->r->bs.uploads_failed++;
			if (h->fail_code == BV_EBLOB && h->fail_status == 400)
				bv_log(BV_LOG_INFO, "blob %s: upload cut short",
				       h->id);
			h->close_after = 1;
			answer_error(h, h->fail_code, h->fail_status);
		}
		if (!h->wsi && !h->jobs)
			bh_free(h);
		return;
	}
	if (h->stored) {
		if (!h->wsi && !h->jobs)
			bh_free(h);
		return;
	}
	if (!h->claimed)
		return;
	if (h->chunk_len == BLOB_CHUNK_BYTES ||
	    (h->body_done && h->chunk_len)) {
		if (chunk_flush(h) < 0) {
			up_fail(h, BV_ENOMEM, 500);
			up_step(h);
			return;
		}
	}
	if (h->writes >= BLOB_WRITES_MAX)
		pause_rx(h);
	else if (!h->body_done)
		resume_rx(h);
	if (!h->body_done || h->writes)
		return;
	if (h->received != h->size) {
		up_fail(h, BV_EBLOB, 400);
		up_step(h);
		return;
	}
	if (EVP_DigestFinal_ex(h->md, got, &n) != 1 || n != 32) {
		up_fail(h, BV_EINTERNAL, 500);
		up_step(h);
		return;
	}
	if (sodium_memcmp(got, h->want, 32) != 0) {
		bv_log(BV_LOG_INFO, "blob %s: digest does not match", h->id);
		up_fail(h, BV_EBLOB, 422);
		up_step(h);
		return;
	}
	{
		char nc[16];
		const char *v[2] = {h->id, nc};

		snprintf(nc, sizeof(nc), "%d", h->next_n);
		if (submit(h, job1("blob_finish", 2, v, NULL, NULL, 0),
			   finish_done, 1) < 0) {
			up_fail(h, BV_ENOMEM, 500);
			up_step(h);
		}
	}
}

static int
hex_byte(const char *s)
{
	int v = 0, i;

	for (i = 0; i < 2; i++) {
		char c = s[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else
			return -1;
	}
	return v;
}

static void
claim_done(struct db_job *job, int rc, void *arg)
{
	struct blob_http *h = arg;
	PGresult *res = db_job_result(job, 0);
	const char *hex;
	int i;

	h->jobs--;
	h->busy--;
	if (rc < 0) {
		up_fail(h, rc == BV_EUNAVAILABLE ? rc : BV_EINTERNAL,
			rc == BV_EUNAVAILABLE ? 503 : 500);
		up_step(h);
		return;
	}
	if (!res || PQntuples(res) != 1) {
		/* Unknown, wrong capability, used, expired: one answer. */
		up_fail(h, BV_ENOBLOB, 404);
		up_step(h);
		return;
	}
	h->claimed = 1;
	upload_list(h);
	h->size = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	hex = PQgetvalue(res, 0, 1);
	for (i = 0; i < 32 && strlen(hex) == 64; i++) {
		int v = hex_byte(hex + 2 * i);

		if (v < 0)
			break;
		h->want[i] = (uint8_t)v;
	}
	if (i != 32)
		up_fail(h, BV_EINTERNAL, 500);
	else if (h->chunked || !h->has_length)
		up_fail(h, BV_EBLOB_SIZE, 411);
	else if (h->length != h->size)
		up_fail(h, BV_EBLOB_SIZE, 413);
	else if (h->received > h->size)
		up_fail(h, BV_EBLOB_SIZE, 413);
	up_step(h);
}

static void
put_begin(struct blob_http *h)
{
	struct relay *r = h->r;
	char num[24], ttl[16], caph[67];
	const char *v[3] = {h->id, caph, ttl};
	int n;

	if (lws_hdr_total_length(h->wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0)
		h->chunked = 1;
	n = lws_hdr_copy(h->wsi, num, sizeof(num),
			 WSI_TOKEN_HTTP_CONTENT_LENGTH);
	if (n > 0 && blob_length(num, &h->length) == 0)
		h->has_length = 1;
	/* lws announces no completion of a body that has no bytes. */
	if (h->has_length && h->length == 0)
		h->body_done = 1;
	h->md = EVP_MD_CTX_new();
	h->chunk = bv_malloc(BLOB_CHUNK_BYTES);
	if (!h->md || !h->chunk ||
	    EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) != 1) {
		up_fail(h, BV_ENOMEM, 500);
		up_step(h);
		return;
	}
	/* Nothing is read before the capability is checked. */
	pause_rx(h);
	if (h->has_length && h->length > r->cfg->max_blob_bytes)
		h->close_after = 1; /* 413 after the claim, not reading */
	hex32(h->cap, caph);
	snprintf(ttl, sizeof(ttl), "%u", r->cfg->blob_stall_timeout_s);
	if (submit(h, job1("blob_claim", 3, v, NULL, NULL, 0), claim_done, 1) <
	    0) {
		up_fail(h, BV_ENOMEM, 500);
		up_step(h);
	}
}

int
blob_body(struct blob_http *h, const void *in, size_t len)
{
	const uint8_t *p = in;

	if (!h || !h->is_put || h->failed || h->body_done)
		return 0; /* read and dropped */
	if (h->received + len > (h->claimed ? h->size : BLOB_CHUNK_BYTES))
		return -1; /* more than announced: lws gave too much */
	h->received += len;
	if (EVP_DigestUpdate(h->md, p, len) != 1) {
		up_fail(h, BV_EINTERNAL, 500);
		up_step(h);
		return 0;
	}
	while (len) {
		size_t take = BLOB_CHUNK_BYTES - h->chunk_len;

		if (take > len)
			take = len;
		memcpy(h->chunk + h->chunk_len, p, take);
		h->chunk_len += take;
		p += take;
		len -= take;
		if (h->chunk_len == BLOB_CHUNK_BYTES) {
			if (!h->claimed)
				return len ? -1 : 0;
			if (chunk_flush(h) < 0) {
				up_fail(h, BV_ENOMEM, 500);
				break;
			}
		}
	}
	up_step(h);
	return 0;
}

int
blob_body_done(struct blob_http *h)
{
	if (!h || h->body_done)
		return 0;
	h->body_done = 1;
	if (h->is_put)
		up_step(h);
	return 0;
}

/* ---------------------------------------------------------------- download */

static void get_fetch(struct blob_http *h);

static void
get_step_free(struct blob_http *h)
{
	if (!h->wsi && !h->jobs)
		bh_free(h);
}

static void
fetch_done(struct db_job *job, int rc, void *arg)
{
	struct blob_http *h = arg;
	PGresult *res = db_job_result(job, 0);
	int n = h->fetching;
	struct piece *pc = &h->q[n % 2];
	size_t want, len;

	h->jobs--;
	h->busy--;
	if (!h->wsi) {
		get_step_free(h);
		return;
	}
	want = h->size - (uint64_t)n * BLOB_CHUNK_BYTES > BLOB_CHUNK_BYTES
		       ? BLOB_CHUNK_BYTES
		       : (size_t)(h->size - (uint64_t)n * BLOB_CHUNK_BYTES);
	len = res && PQntuples(res) == 1 ? (size_t)PQgetlength(res, 0, 0) : 0;
	if (rc < 0 || len != want) {
		/* Deleted meanwhile, or the database went away: the head is
		 * out, so the only signal left is hanging up. */
		bv_log(BV_LOG_NOTICE,
		       "blob %s: chunk %d unreadable, hanging up", h->id, n);
		h->close_after = 2;
		lws_callback_on_writable(h->wsi);
		return;
	}
	pc->buf = bv_malloc(LWS_PRE + len);
	if (!pc->buf) {
		h->close_after = 2;
		lws_callback_on_writable(h->wsi);
		return;
	}
	memcpy(pc->buf + LWS_PRE, PQgetvalue(res, 0, 0), len);
	pc->len = len;
	pc->off = 0;
	pc->ready = 1;
	h->next_fetch++;
	lws_callback_on_writable(h->wsi);
	get_fetch(h);
}

/* Keeps the next two chunks coming, one statement at a time. */
static void
get_fetch(struct blob_http *h)
{
	char n[16];
	const char *v[2] = {h->id, n};

	if (h->busy || h->next_fetch >= h->n_chunks ||
	    h->next_fetch >= h->next_write + 2 || h->q[h->next_fetch % 2].buf)
		return;
	h->fetching = h->next_fetch;
	snprintf(n, sizeof(n), "%d", h->next_fetch);
	if (submit(h, job1("blob_chunk_get", 2, v, NULL, NULL, 1), fetch_done,
		   1) < 0) {
		h->close_after = 2;
		lws_callback_on_writable(h->wsi);
	}
}

static void
lookup_done(struct db_job *job, int rc, void *arg)
{
	struct blob_http *h = arg;
	PGresult *res = db_job_result(job, 0);

	h->jobs--;
	h->busy--;
	if (!h->wsi) {
		get_step_free(h);
		return;
	}
	if (rc < 0) {
		answer_error(h, rc == BV_EUNAVAILABLE ? rc : BV_EINTERNAL,
			     rc == BV_EUNAVAILABLE ? 503 : 500);
		return;
	}
	if (!res || PQntuples(res) != 1) {
		answer_error(h, BV_ENOBLOB, 404);
		return;
	}
	h->size = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	h->n_chunks =
		(int)((h->size + BLOB_CHUNK_BYTES - 1) / BLOB_CHUNK_BYTES);
	h->answered = 1;
	h->status = 200;
	bv_log(BV_LOG_INFO, "blob: GET %s: 200", h->id);
	h->r->bs.downloads++;
	lws_callback_on_writable(h->wsi);
	get_fetch(h);
}

/* The download's head, then its pieces as they come. */
static int
get_write(struct blob_http *h)
{
	struct piece *pc;
	size_t n;
	int last;

	if (!h->head_sent) {
		if (server_http_head(h->wsi, 200, "application/octet-stream",
				     h->size) < 0)
			return -1;
		h->head_sent = 1;
		lws_callback_on_writable(h->wsi);
		return 0;
	}
	pc = &h->q[h->next_write % 2];
	if (!pc->ready)
		return 0; /* fetch_done asks again */
	n = pc->len - pc->off;
	if (n > PIECE_BYTES)
		n = PIECE_BYTES;
	last = h->next_write == h->n_chunks - 1 && pc->off + n == pc->len;
	/* lws_write() may write into the LWS_PRE bytes in front; those of a
	 * later piece are bytes already sent. */
	if (lws_write(h->wsi, pc->buf + LWS_PRE + pc->off, n,
		      last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < (int)n)
		return -1;
	pc->off += n;
	if (pc->off == pc->len) {
		bv_free(pc->buf);
		memset(pc, 0, sizeof(*pc));
		h->next_write++;
		get_fetch(h);
	}
	if (last)
		return 1;
	lws_callback_on_writable(h->wsi);
	return 0;
}

/* ---------------------------------------------------------------- HTTP */

int
blob_begin(struct relay *r, struct lws *wsi, const char *path,
	   struct blob_http **out)
{
	struct blob_http *h;
	char auth[128];
	int is_get, n, code = 0;

	h = bv_calloc(1, sizeof(*h));
	if (!h)
		return -1;
	h->r = r;
	h->wsi = wsi;
	r->bs.transfers++;
	*out = h;
	is_get = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0;
	h->is_put = lws_hdr_total_length(wsi, WSI_TOKEN_PUT_URI) > 0;
	n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
	if ((!is_get && !h->is_put) || blob_path_id(path, h->id) < 0 ||
	    lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS) > 0 || n <= 0 ||
	    n >= (int)sizeof(auth) ||
	    lws_hdr_copy(wsi, auth, sizeof(auth),
			 WSI_TOKEN_HTTP_AUTHORIZATION) != n ||
	    blob_bearer(auth, (size_t)n, h->cap) < 0)
		code = BV_ENOBLOB;
	else if (r->draining)
		code = BV_ESHUTDOWN;
	else if (r->bs.transfers > BLOB_MAX_TRANSFERS)
		code = BV_EBUSY;
	bv_wipe(auth, sizeof(auth));
	if (code) {
		/* Whatever body follows is not read. */
		h->close_after = 1;
		h->is_put = 0;
		answer_error(h, code, code == BV_ENOBLOB ? 404 : 503);
		return 0;
	}
	if (h->is_put) {
		put_begin(h);
	} else {
		const char *v[2] = {h->id, NULL};
		char caph[67];

		hex32(h->cap, caph);
		v[1] = caph;
		if (submit(h, job1("blob_lookup", 2, v, NULL, NULL, 0),
			   lookup_done, 1) < 0)
			answer_error(h, BV_ENOMEM, 500);
	}
	return 0;
}

int
blob_write(struct blob_http **hp)
{
	struct blob_http *h = *hp;
	int rc;

	if (h->close_after == 2)
		goto hangup;
	if (!h->answered)
		return 0; /* not yet */
	if (h->status == 200 && !h->reply) {
		rc = get_write(h);
		if (rc < 0)
			goto hangup;
		if (rc == 0)
			return 0;
		{
			struct lws *wsi = h->wsi;

			*hp = NULL;
			blob_detach(h);
			return lws_http_transaction_completed(wsi) ? -1 : 0;
		}
	}
	if (!h->reply)
		goto hangup;
	if (!h->head_sent) {
		if (server_http_head(h->wsi, h->status, "application/json",
				     h->reply_len) < 0)
			goto hangup;
		h->head_sent = 1;
		lws_callback_on_writable(h->wsi);
		return 0;
	}
	{
		struct lws *wsi = h->wsi;
		uint8_t *buf = bv_malloc(LWS_PRE + h->reply_len);
		int close_after = h->close_after;

		if (!buf)
			goto hangup;
		memcpy(buf + LWS_PRE, h->reply, h->reply_len);
		rc = lws_write(wsi, buf + LWS_PRE, h->reply_len,
			       LWS_WRITE_HTTP_FINAL);
		bv_free(buf);
		if (rc < (int)h->reply_len)
			goto hangup;
		/* An upload is over once answered: detach (an error answer
		 * closes; the body may still be coming). */
		*hp = NULL;
		blob_detach(h);
		if (close_after)
			return -1;
		return lws_http_transaction_completed(wsi) ? -1 : 0;
	}
hangup:
	*hp = NULL;
	blob_detach(h);
	return -1;
}

void
blob_detach(struct blob_http *h)
{
	if (!h)
		return;
	h->wsi = NULL;
	if (h->is_put)
		up_step(h);
	else
		get_step_free(h);
}

/* ---------------------------------------------------------------- ops */

/* A blob_create in flight: the capabilities until they are answered. */
struct create_op {
	struct opctx *o;
	char up[BLOB_CAP_LEN + 1], down[BLOB_CAP_LEN + 1];
};

static void
create_free(struct create_op *k)
{
	opctx_free(k->o);
	bv_wipe(k, sizeof(*k));
	bv_free(k);
}

static void
create_done(struct db_job *job, int rc, void *arg)
{
	struct create_op *k = arg;
	struct opctx *o = k->o;
	PGresult *res = db_job_result(job, 0);
	const char *st = db_job_sqlstate(job);
	char *out;
	size_t cap = 256;

	if (rc == BV_EINTERNAL && !strcmp(st, "BV038"))
		rc = BV_EQUOTA;
	else if (rc < 0)
		rc = db_rc(job, rc);
	else if (!res || PQntuples(res) != 1)
		rc = BV_EINTERNAL;
	if (rc < 0) {
		ops_reply_error(o->c, o->id, rc, NULL);
		create_free(k);
		return;
	}
	/* Written by hand so that every copy of a capability is wiped. */
	out = bv_malloc(cap);
	if (!out) {
		ops_reply_error(o->c, o->id, BV_ENOMEM, NULL);
		create_free(k);
		return;
	}
	snprintf(out, cap,
		 "{\"id\":%lld,\"ok\":{\"blob\":\"%.36s\",\"upload\":\"%s\","
		 "\"download\":\"%s\",\"expires\":%.20s}}",
		 (long long)o->id, PQgetvalue(res, 0, 0), k->up, k->down,
		 PQgetvalue(res, 0, 1));
	conn_send_str(o->c, bv_strdup(out));
	bv_wipe(out, cap);
	bv_free(out);
	create_free(k);
}

/* A new capability: its text into out, its SHA-256 as "\x…" into hex. */
static int
new_cap(char out[BLOB_CAP_LEN + 1], char hex[67])
{
	uint8_t cap[BLOB_CAP_BYTES], h[32];
	char *s;

	randombytes_buf(cap, sizeof(cap));
	s = bv_b64url_encode(cap, sizeof(cap));
	sha256(cap, sizeof(cap), h);
	bv_wipe(cap, sizeof(cap));
	if (!s || strlen(s) != BLOB_CAP_LEN) {
		bv_free(s);
		return BV_ENOMEM;
	}
	memcpy(out, s, BLOB_CAP_LEN + 1);
	bv_wipe(s, BLOB_CAP_LEN);
	bv_free(s);
	hex32(h, hex);
	return 0;
}

void
op_blob_create(struct conn *c, struct bv_request *req)
{
	struct relay *r = c->r;
	struct create_op *k = NULL;
	char dev[24], size[24], ttl[16], sum[67], uph[67], downh[67];
	const char *v[9] = {
		c->tenant, c->account, dev, req->u.blob_create.conversation,
		size,	   sum,	       uph, downh,
		ttl};
	struct db_job *job;
	uint64_t retry = 0;

	if (ratelimit_take(&c->rl, bv_mono_ms(), &retry) < 0) {
		ops_reply_error(
			c, req->id, BV_ERATE,
			json_pack("{sI}", "retry_after_ms", (json_int_t)retry));
		bv_request_free(req);
		return;
	}
	if (req->u.blob_create.size < 1 ||
	    (uint64_t)req->u.blob_create.size > r->cfg->max_blob_bytes) {
		ops_reply_error(c, req->id, BV_EBLOB_SIZE,
				json_pack("{sI}", "max_blob_bytes",
					  (json_int_t)r->cfg->max_blob_bytes));
		bv_request_free(req);
		return;
	}
	k = bv_calloc(1, sizeof(*k));
	if (!k || !(k->o = opctx_new(c, req))) {
		bv_free(k);
		ops_reply_error(c, req->id, BV_ENOMEM, NULL);
		bv_request_free(req);
		return;
	}
	snprintf(dev, sizeof(dev), "%lld", (long long)c->device);
	snprintf(size, sizeof(size), "%lld",
		 (long long)req->u.blob_create.size);
	snprintf(ttl, sizeof(ttl), "%u", r->cfg->blob_upload_ttl_s);
	hex32(req->u.blob_create.sha256, sum);
	job = NULL;
	if (new_cap(k->up, uph) == 0 && new_cap(k->down, downh) == 0)
		job = job1("blob_create", 9, v, NULL, NULL, 0);
	bv_wipe(uph, sizeof(uph));
	bv_wipe(downh, sizeof(downh));
	/* Its own transaction on the write connection (not a group
	 * commit's): bv_blob_create locks the tenant's row. */
	if (!job || db_submit(r->dbw, job, create_done, k) < 0) {
		ops_reply_error(c, req->id, BV_ENOMEM, NULL);
		create_free(k);
	}
}

static void
journaled_done(struct db_job *job, int rc, void *arg)
{
	struct opctx *o = arg;

	if (rc < 0)
		opctx_fail(o, db_rc(job, rc), NULL);
	else {
		ops_reply_ok(o->c, o->id, NULL);
		opctx_free(o);
	}
}

void
op_blobs_journaled(struct conn *c, struct bv_request *req)
{
	size_t i, n = req->u.blobs_journaled.n;
	struct opctx *o;
	char *arr;
	const char *v[2];
	int rc;

	o = opctx_new(c, req);
	arr = bv_malloc(n * 37 + 3);
	if (!o || !arr) {
		bv_free(arr);
		ops_reply_error(c, req->id, BV_ENOMEM, NULL);
		if (o)
			opctx_free(o);
		else
			bv_request_free(req);
		return;
	}
	arr[0] = '{';
	for (i = 0; i < n; i++) {
		memcpy(arr + 1 + 37 * i, req->u.blobs_journaled.blobs[i], 36);
		arr[1 + 37 * i + 36] = i + 1 < n ? ',' : '}';
	}
	arr[1 + 37 * n] = '\0';
	v[0] = c->account;
	v[1] = arr;
	rc = run1(c->r, RELAY_TXN, "blobs_journaled", 2, v, NULL, NULL,
		  journaled_done, o);
	bv_free(arr);
	if (rc < 0)
		opctx_fail(o, BV_ENOMEM, NULL);
}

/* ---------------------------------------------------------------- sweep */

static void sweep_tick(uv_timer_t *t);

static void
sweep_done(struct db_job *job, int rc, void *arg)
{
	struct blobs *b = arg;
	struct relay *r = b->r;
	unsigned long long gone = 0;
	PGresult *res;
	int i;

	b->sweeping = 0;
	if (rc < 0) {
		bv_log(BV_LOG_WARN, "blob sweep failed (%s)", bv_errname(rc));
		return;
	}
	for (i = 0; i < 2; i++) {
		res = db_job_result(job, i);
		if (res && PQntuples(res) == 1)
			gone += strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	}
	r->bs.swept += gone;
	res = db_job_result(job, 2);
	if (res && PQntuples(res) == 1 && PQnfields(res) == 4) {
		r->bs.count = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
		r->bs.bytes = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
		r->bs.unjournaled = strtoull(PQgetvalue(res, 0, 2), NULL, 10);
		r->bs.oldest_unjournaled_s =
			strtoull(PQgetvalue(res, 0, 3), NULL, 10);
		r->bs.valid = 1;
	}
	if (gone)
		bv_log(BV_LOG_INFO, "blob sweep: %llu deleted", gone);
	/* A full batch: more may be due; go again soon, not at once. */
	if (gone >= BLOB_SWEEP_BATCH && b->sweep)
		uv_timer_start(b->sweep, sweep_tick, 1000,
			       (uint64_t)r->cfg->blob_sweep_interval_s * 1000);
}

static void
sweep_tick(uv_timer_t *t)
{
	struct blobs *b = t->data;
	struct db_job *job;

	if (b->sweeping || !db_is_up(b->r->dbb))
		return;
	job = db_job_new(0);
	if (!job ||
	    db_job_add(job, "blob_sweep_pending", 0, NULL, NULL, NULL, 0) < 0 ||
	    db_job_add(job, "blob_sweep_journaled", 0, NULL, NULL, NULL, 0) <
		    0 ||
	    db_job_add(job, "blob_stats", 0, NULL, NULL, NULL, 0) < 0) {
		db_job_free(job);
		return;
	}
	if (db_submit(b->r->dbb, job, sweep_done, b) == 0)
		b->sweeping = 1;
}

static void
beat_done(struct db_job *job, int rc, void *arg)
{
	struct blobs *b = arg;

	(void)job;
	b->beating = 0;
	if (rc < 0)
		bv_log(BV_LOG_WARN, "blob heartbeat failed (%s)",
		       bv_errname(rc));
}

/* Moves alive_until of every upload running here forward. */
static void
beat_tick(uv_timer_t *t)
{
	struct blobs *b = t->data;
	struct blob_http *h;
	char *arr, ttl[16];
	const char *v[2];
	size_t n = 0, len;

	if (b->beating || !b->uploads)
		return;
	for (h = b->uploads; h; h = h->up_next)
		n++;
	arr = bv_malloc(n * 37 + 3);
	if (!arr)
		return;
	len = 0;
	arr[len++] = '{';
	for (h = b->uploads; h; h = h->up_next) {
		memcpy(arr + len, h->id, 36);
		len += 36;
		arr[len++] = h->up_next ? ',' : '}';
	}
	arr[len] = '\0';
	snprintf(ttl, sizeof(ttl), "%u", b->r->cfg->blob_stall_timeout_s);
	v[0] = arr;
	v[1] = ttl;
	{
		struct db_job *job = job1("blob_alive", 2, v, NULL, NULL, 0);

		if (job && db_submit(b->r->dbb, job, beat_done, b) == 0)
			b->beating = 1;
	}
	bv_free(arr);
}

static void
handle_free(uv_handle_t *h)
{
	bv_free(h);
}

int
blob_start(struct relay *r)
{
	struct db_opts o;
	struct blobs *b;
	size_t i;
	int rc;
	uint64_t beat_ms;

	rc = relay_prepare(r, main_statements,
			   sizeof(main_statements) /
				   sizeof(main_statements[0]));
	if (rc < 0)
		return rc;
	memset(&o, 0, sizeof(o));
	o.conninfo = r->cfg->database;
	/* As the other relay connections (main.c): no JIT for look-ups. */
	o.session_sql = "SELECT set_config('jit', 'off', false)";
	r->dbb = db_new(r->loop, &o);
	b = bv_calloc(1, sizeof(*b));
	if (!r->dbb || !b) {
		bv_free(b);
		return BV_ENOMEM;
	}
	r->blobs = b;
	b->r = r;
	for (i = 0; i < sizeof(blob_statements) / sizeof(blob_statements[0]);
	     i++) {
		rc = db_prepare(r->dbb, blob_statements[i].name,
				blob_statements[i].sql,
				blob_statements[i].nparams);
		if (rc < 0)
			return rc;
	}
	b->sweep = bv_malloc(sizeof(*b->sweep));
	b->beat = bv_malloc(sizeof(*b->beat));
	if (!b->sweep || !b->beat) {
		bv_free(b->sweep);
		bv_free(b->beat);
		b->sweep = b->beat = NULL;
		return BV_ENOMEM;
	}
	uv_timer_init(r->loop, b->sweep);
	uv_timer_init(r->loop, b->beat);
	b->sweep->data = b;
	b->beat->data = b;
	/* The first sweep soon after the connection is up: a relay killed
	 * mid-upload left rows behind. */
	uv_timer_start(b->sweep, sweep_tick, 500,
		       (uint64_t)r->cfg->blob_sweep_interval_s * 1000);
	beat_ms = (uint64_t)r->cfg->blob_stall_timeout_s * 1000 / 3;
	uv_timer_start(b->beat, beat_tick, beat_ms, beat_ms);
	return 0;
}

void
blob_stop(struct relay *r)
{
	struct blobs *b = r->blobs;

	if (b) {
		if (b->sweep)
			uv_close((uv_handle_t *)b->sweep, handle_free);
		if (b->beat)
			uv_close((uv_handle_t *)b->beat, handle_free);
		b->sweep = b->beat = NULL;
	}
	db_free(r->dbb);
	r->dbb = NULL;
}

void
blob_free(struct relay *r)
{
	bv_free(r->blobs);
	r->blobs = NULL;
}
