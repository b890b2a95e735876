/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * bvchat-notifier: tells people that they have messages no device of
 * theirs has picked up (docs/architecture.md decision 10, docs/operations.md
 * "Notifications"), by SMS through Fiks Varsling, by e-mail over SMTP, or
 * by web push, so that nothing on the message path ever waits for them.
 * It reads the relay's config file and database: the relay's send marks
 * accounts in notify_pending; this process claims due ones (FOR UPDATE SKIP
 * LOCKED, so several may run), finds in the queue what is really still
 * undelivered, applies wait, window and quiet hours (notify_sched.c),
 * renders the tenant's text in the person's language, sends outside any
 * transaction and records the outcome, retrying with backoff. A web push
 * subscription the push service says is gone is deleted. It also raises
 * the staff tasks (migrations/0011): a FIKS IO message to the tenant's
 * fagsystem account for each conversation whose citizen side has waited
 * too long for an answer.
 *
 * It never logs a phone number, an address, a text or a token. Blocking
 * libpq and libcurl are fine here: this process serves no connections.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "bv_error.h"
#include "bv_util.h"
#include "config.h"
#include "fiks_error.h"
#include "fiks_io.h"
#include "migrate.h"
#include "notify_sched.h"
#include "notify_task.h"
#include "webpush.h"

#define EMAIL_MAX 254
#define TEXT_MAX  1000 /* notify_templates.body */

/* Whom to tell, through what. Owned by the claim that read it. */
struct target {
	char account[37];
	char tenant[37];
	char channel[8];
	char *phone, *email, *endpoint;
	uint8_t p256dh[65], auth[16];
	char *subject, *body;
	int attempts;	    /* this one included */
	int64_t covered_ms; /* messages up to here are told about */
	int64_t window_ms;
};

struct notifier;

/*
 * A channel: ready() says whether this notifier can use it (configured);
 * send() delivers one text and returns 0, or a negative code with a short
 * reason in err (never an address or the text): retryable or not is
 * fiks_error_retryable()/bv_error_retryable()'s business, except that
 * every failure is retried up to notify_max_attempts.
 */
struct channel {
	const char *name;
	int (*ready)(struct notifier *n);
	int (*send)(struct notifier *n, const struct target *t, char *err,
		    size_t errcap);
};

struct notifier {
	struct relay_config cfg;
	PGconn *db;
	const char *clock_file;
	int64_t last_clock;
	struct fiks_client *fiks;      /* NULL: no SMS */
	struct fiks_client *task_fiks; /* NULL: no staff tasks */
	char *smtp_user, *smtp_pass;
	struct webpush_vapid_key *vapid; /* NULL: no web push */
	/* Set by a send: the failure is final (no retry), and the earliest
	 * retry the far end asked for (Retry-After), in ms. */
	int final;
	int64_t retry_after_ms;
	volatile sig_atomic_t stop;
};

static struct notifier *the_notifier;

static int exec_ok(struct notifier *n, const char *what, const char *sql,
		   int np, const char *const *v);

/* -------------------------------------------------------------- clock */

/* Now, in ms since the epoch: the clock file's number when one is given
 * (tests step it), else the real clock. */
static int64_t
clock_now(struct notifier *n)
{
	char buf[32];
	FILE *f;
	long long v;

	if (!n->clock_file)
		return bv_now_ms();
	f = fopen(n->clock_file, "r");
	if (f && fgets(buf, sizeof(buf), f) && sscanf(buf, "%lld", &v) == 1 &&
	    v > 0)
		n->last_clock = v;
	else
		bv_log(BV_LOG_WARN, "notifier: cannot read the clock file");
	if (f)
		fclose(f);
	return n->last_clock;
}

/* ----------------------------------------------------------------- SMS */

static int
sms_ready(struct notifier *n)
{
	return n->fiks != NULL;
}

static int
sms_send(struct notifier *n, const struct target *t, char *err, size_t errcap)
{
	char id[FIKS_UUID_LEN + 1];
	int rc;

	if (!t->phone) {
		snprintf(err, errcap, "no phone number");
		return BV_EINVAL;
	}
	rc = fiks_varsling_sms(n->fiks, n->cfg.varsling_konto, t->body,
			       t->phone, id);
	if (rc < 0)
		snprintf(err, errcap, "varsling: %s", fiks_errname(rc));
	return rc;
}

/* -------------------------------------------------------------- e-mail */

static int
email_ready(struct notifier *n)
{
	return n->cfg.smtp_url[0] != '\0';
}

struct upload {
	const char *s;
	size_t len, off;
};

static size_t
upload_read(char *buf, size_t size, size_t nmemb, void *arg)
{
	struct upload *u = arg;
	size_t n = size * nmemb;

	if (n > u->len - u->off)
		n = u->len - u->off;
	memcpy(buf, u->s + u->off, n);
	u->off += n;
	return n;
}

/* Appends s to *buf (grown as needed); -1 when out of memory. */
static int
cat(char **buf, size_t *len, size_t *cap, const char *s)
{
	size_t n = strlen(s);

	if (*len + n + 1 > *cap) {
		size_t c = (*len + n + 1) * 2;
		char *b = bv_realloc(*buf, c);

		if (!b)
			return -1;
		*buf = b;
		*cap = c;
	}
	memcpy(*buf + *len, s, n + 1);
	*len += n;
	return 0;
}

/* RFC 2047 encoded words of at most 45 bytes of UTF-8 each (never split
 * inside a character), folded: "=?UTF-8?B?…?=\r\n =?UTF-8?B?…?=". */
static int
header_encode(char **buf, size_t *len, size_t *cap, const char *s)
{
	size_t n = strlen(s), off = 0;

	while (off < n) {
		size_t k = n - off > 45 ? 45 : n - off;
		char *b64;
		int rc;

		while (off + k < n &&
		       ((unsigned char)s[off + k] & 0xc0) == 0x80)
			k--;
		b64 = bv_b64_encode((const uint8_t *)s + off, k);
		if (!b64)
			return -1;
		rc = cat(buf, len, cap, off ? "\r\n =?UTF-8?B?" : "=?UTF-8?B?");
		if (rc == 0)
			rc = cat(buf, len, cap, b64);
		if (rc == 0)
			rc = cat(buf, len, cap, "?=");
		bv_free(b64);
		if (rc < 0)
			return -1;
		off += k;
	}
	return 0;
}

/*
 * The RFC 5322 message: Date, From, To, Subject (encoded words), a
 * Message-ID under the From address's domain, MIME text/plain in UTF-8,
 * the body in base64 lines of 76 (safe through any server).
 */
static char *
email_message(const struct notifier *n, const struct target *t, int64_t now)
{
	char line[512], uuid[BV_UUID_LEN + 1], *b64 = NULL, *msg = NULL;
	const char *domain = strchr(n->cfg.smtp_from, '@');
	size_t len = 0, cap = 0, i, blen;
	time_t secs = (time_t)(now / 1000);
	struct tm tm;
	int ok = 1;

	gmtime_r(&secs, &tm);
	strftime(line, sizeof(line), "Date: %a, %d %b %Y %H:%M:%S +0000\r\n",
		 &tm);
	ok = cat(&msg, &len, &cap, line) == 0;
	snprintf(line, sizeof(line),
		 "From: <%s>\r\nTo: <%s>\r\nSubject: ", n->cfg.smtp_from,
		 t->email);
	ok = ok && cat(&msg, &len, &cap, line) == 0;
	ok = ok &&
	     header_encode(&msg, &len, &cap,
			   t->subject && *t->subject ? t->subject : "-") == 0;
	bv_uuid_generate(uuid);
	snprintf(line, sizeof(line),
		 "\r\nMessage-ID: <%s@%s>\r\nMIME-Version: 1.0\r\n"
		 "Content-Type: text/plain; charset=utf-8\r\n"
		 "Content-Transfer-Encoding: base64\r\n"
		 "Auto-Submitted: auto-generated\r\n\r\n",
		 uuid, domain ? domain + 1 : "bvchat.invalid");
	ok = ok && cat(&msg, &len, &cap, line) == 0;
	b64 = ok ? bv_b64_encode((const uint8_t *)t->body, strlen(t->body))
		 : NULL;
	if (!b64) {
		bv_free(msg);
		return NULL;
	}
	blen = strlen(b64);
	for (i = 0; ok && i < blen; i += 76) {
		snprintf(line, sizeof(line), "%.76s\r\n", b64 + i);
		ok = cat(&msg, &len, &cap, line) == 0;
	}
	bv_free(b64);
	if (!ok) {
		bv_free(msg);
		return NULL;
	}
	return msg;
}

static int
email_send(struct notifier *n, const struct target *t, char *err, size_t errcap)
{
	struct curl_slist *rcpt = NULL;
	char from[EMAIL_MAX + 3], to[EMAIL_MAX + 3];
	char *msg;
	struct upload u;
	CURLcode cc;
	CURL *curl;
	long code = 0;
	int rc = 0, loopback;

	if (!t->email) {
		snprintf(err, errcap, "no e-mail address");
		return BV_EINVAL;
	}
	msg = email_message(n, t, clock_now(n));
	curl = curl_easy_init();
	snprintf(from, sizeof(from), "<%s>", n->cfg.smtp_from);
	snprintf(to, sizeof(to), "<%s>", t->email);
	rcpt = curl_slist_append(NULL, to);
	if (!msg || !curl || !rcpt) {
		rc = BV_ENOMEM;
		snprintf(err, errcap, "out of memory");
		goto out;
	}
	u.s = msg;
	u.len = strlen(msg);
	u.off = 0;
	loopback = !strncmp(n->cfg.smtp_url, "smtp://127.0.0.1", 16) ||
		   !strncmp(n->cfg.smtp_url, "smtp://localhost", 16);
	curl_easy_setopt(curl, CURLOPT_URL, n->cfg.smtp_url);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	/* Anywhere but loopback, the mail goes over TLS or not at all. */
	curl_easy_setopt(curl, CURLOPT_USE_SSL,
			 loopback ? CURLUSESSL_NONE : CURLUSESSL_ALL);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS,
			 (long)n->cfg.notify_timeout_ms);
	curl_easy_setopt(curl, CURLOPT_MAIL_FROM, from);
	curl_easy_setopt(curl, CURLOPT_MAIL_RCPT, rcpt);
	curl_easy_setopt(curl, CURLOPT_READFUNCTION, upload_read);
	curl_easy_setopt(curl, CURLOPT_READDATA, &u);
	curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)u.len);
	if (n->smtp_user) {
		curl_easy_setopt(curl, CURLOPT_USERNAME, n->smtp_user);
		curl_easy_setopt(curl, CURLOPT_PASSWORD, n->smtp_pass);
	}
	cc = curl_easy_perform(curl);
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
	if (cc != CURLE_OK) {
		snprintf(err, errcap, "smtp: %s (%ld)", curl_easy_strerror(cc),
			 code);
		rc = BV_EIO;
	}
out:
	curl_slist_free_all(rcpt);
	curl_easy_cleanup(curl);
	bv_free(msg);
	return rc;
}

/* ------------------------------------------------------------ web push */

static int
webpush_ready(struct notifier *n)
{
	return n->vapid != NULL;
}

/* The subscription is gone (404/410) or names an inside address: it is
 * deleted, unless the widget has meanwhile stored another one; the person
 * gets no push until the widget subscribes again (notify_set). */
static void
webpush_forget(struct notifier *n, const struct target *t)
{
	const char *v[2] = {t->account, t->endpoint};

	exec_ok(n, "forget subscription",
		"UPDATE notify_settings SET webpush_endpoint = NULL, "
		"webpush_p256dh = NULL, webpush_auth = NULL, updated_at = "
		"now() "
		"WHERE account_id = $1::uuid AND webpush_endpoint = $2",
		2, v);
}

/*
 * The push's payload is JSON {"title": subject, "body": text}
 * (docs/protocol.md "Web push"), which the widget's service worker shows
 * as it is. Retry-After is honoured through n->retry_after_ms; gone,
 * refused and malformed subscriptions are final, not retried.
 */
static int
webpush_deliver(struct notifier *n, const struct target *t, char *err,
		size_t errcap)
{
	struct webpush_send_opts opts = {0};
	struct webpush_subscription sub;
	struct webpush_result res = {0};
	json_t *j;
	char *payload;
	int rc;

	if (!t->endpoint) {
		snprintf(err, errcap, "no push subscription");
		return BV_EINVAL;
	}
	j = json_pack("{ss ss}", "title",
		      t->subject && *t->subject ? t->subject : "-", "body",
		      t->body);
	payload = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!payload) {
		snprintf(err, errcap, "out of memory");
		return BV_ENOMEM;
	}
	sub.endpoint = t->endpoint;
	memcpy(sub.p256dh, t->p256dh, sizeof(sub.p256dh));
	memcpy(sub.auth, t->auth, sizeof(sub.auth));
	opts.timeout_ms = (long)n->cfg.notify_timeout_ms;
	opts.allow_http = n->cfg.webpush_allow_loopback_http != 0;
	rc = webpush_send(n->vapid, n->cfg.webpush_subject, &sub,
			  (const uint8_t *)payload, strlen(payload), &opts,
			  clock_now(n) / 1000, &res);
	free(payload);
	if (rc == 0)
		return 0;
	snprintf(err, errcap, "webpush: %s (%ld)", webpush_errname(rc),
		 res.status);
	if (rc == WEBPUSH_EGONE || rc == WEBPUSH_EENDPOINT ||
	    rc == WEBPUSH_EKEY)
		webpush_forget(n, t);
	if (webpush_retryable(rc))
		n->retry_after_ms = res.retry_after_s * 1000;
	else
		n->final = 1;
	return rc;
}

static const struct channel channels[] = {
	{"sms", sms_ready, sms_send},
	{"email", email_ready, email_send},
	{"webpush", webpush_ready, webpush_deliver},
};

static const struct channel *
channel_find(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(channels) / sizeof(channels[0]); i++)
		if (!strcmp(channels[i].name, name))
			return &channels[i];
	return NULL;
}

/* ------------------------------------------------------------ database */

static PGresult *
exec(struct notifier *n, const char *sql, int np, const char *const *v,
     const int *len, const int *fmt)
{
	return PQexecParams(n->db, sql, np, NULL, v, len, fmt, 0);
}

static int
exec_ok(struct notifier *n, const char *what, const char *sql, int np,
	const char *const *v)
{
	PGresult *res = exec(n, sql, np, v, NULL, NULL);
	ExecStatusType st = PQresultStatus(res);
	int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;

	if (!ok)
		bv_log(BV_LOG_ERR, "notifier: %s: %s", what,
		       PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
			       ? PQresultErrorField(res,
						    PG_DIAG_MESSAGE_PRIMARY)
			       : "failed");
	PQclear(res);
	return ok ? 0 : BV_EUNAVAILABLE;
}

static void
target_cleanup(struct target *t)
{
	bv_free(t->phone);
	bv_free(t->email);
	bv_free(t->endpoint);
	bv_free(t->subject);
	bv_free(t->body);
	memset(t, 0, sizeof(*t));
}

static char *
dup_or_null(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col)
		       ? NULL
		       : bv_strdup(PQgetvalue(res, row, col));
}

/* The channel a person gets: their choice, else the first set up. */
static const char *
resolve_channel(const PGresult *res, int row)
{
	if (!PQgetisnull(res, row, 11))
		return PQgetvalue(res, row, 11);
	if (!PQgetisnull(res, row, 15))
		return "webpush";
	if (!PQgetisnull(res, row, 13))
		return "sms";
	if (!PQgetisnull(res, row, 14))
		return "email";
	return "none";
}

static const char claim_sql[] =
	"SELECT p.account_id::text, a.tenant_id::text, p.attempts, "
	"coalesce(s.covered_until, 0), "
	"coalesce((extract(epoch FROM s.last_sent_at) * 1000)::bigint, 0), "
	"u.oldest, "
	"t.notify_wait_minutes, t.notify_window_minutes, "
	"(extract(epoch FROM t.notify_quiet_start) / 60)::int, "
	"(extract(epoch FROM t.notify_quiet_end) / 60)::int, t.time_zone, "
	"n.channel, coalesce(n.language, 'nb'), n.phone, n.email, "
	"n.webpush_endpoint, n.webpush_p256dh, n.webpush_auth, "
	"coalesce(n.mention_service, false), u.newest "
	"FROM notify_pending p JOIN accounts a ON a.id = p.account_id "
	"JOIN tenants t ON t.id = a.tenant_id "
	"LEFT JOIN notify_settings n ON n.account_id = p.account_id "
	"LEFT JOIN notify_state s ON s.account_id = p.account_id "
	"CROSS JOIN LATERAL bv_notify_undelivered(p.account_id, "
	"coalesce(s.covered_until, 0)) u "
	"WHERE coalesce(p.not_before, p.since + make_interval(mins => "
	"t.notify_wait_minutes)) <= to_timestamp($1::double precision / 1000) "
	"ORDER BY coalesce(p.not_before, p.since) LIMIT $2::int "
	"FOR UPDATE OF p SKIP LOCKED";

/* Dropped: nothing to tell now. The snapshot taken after the delete says
 * which sends may have found the row still there; recheck() waits for
 * them, then reads the queue again. covered: messages up to then are
 * never counted again (no channel, or given up). */
static int
drop(struct notifier *n, const char *account, int64_t covered)
{
	char cov[24];
	const char *v[2] = {account, cov};

	snprintf(cov, sizeof(cov), "%lld", (long long)covered);
	if (exec_ok(n, "drop",
		    "DELETE FROM notify_pending WHERE account_id = "
		    "$1::uuid",
		    1, v) < 0)
		return BV_EUNAVAILABLE;
	return exec_ok(
		n, "drop",
		"INSERT INTO notify_state (account_id, covered_until, recheck, "
		"recheck_at) VALUES ($1::uuid, $2::bigint, "
		"pg_current_snapshot(), "
		"now()) ON CONFLICT (account_id) DO UPDATE SET covered_until = "
		"greatest(notify_state.covered_until, EXCLUDED.covered_until), "
		"recheck = EXCLUDED.recheck, recheck_at = EXCLUDED.recheck_at",
		2, v);
}

static int
defer(struct notifier *n, const char *account, int64_t since, int64_t at)
{
	char s[24], a[24];
	const char *v[3] = {account, s, a};

	snprintf(s, sizeof(s), "%lld", (long long)since);
	snprintf(a, sizeof(a), "%lld", (long long)at);
	return exec_ok(n, "defer",
		       "UPDATE notify_pending SET since = to_timestamp("
		       "$2::double precision / 1000), not_before = "
		       "to_timestamp($3::double precision / 1000) WHERE "
		       "account_id = $1::uuid",
		       3, v);
}

/* Reads the claimed row into t with its text; 0, or 1 when the row
 * should be dropped (no channel, or one this notifier cannot use). */
static int
target_fill(struct notifier *n, const PGresult *res, int row, struct target *t,
	    const char **why)
{
	const char *ch = resolve_channel(res, row);
	const struct channel *c = channel_find(ch);
	const char *v[4];
	PGresult *tr;
	size_t len = 0;
	unsigned char *raw;

	snprintf(t->account, sizeof(t->account), "%s", PQgetvalue(res, row, 0));
	snprintf(t->tenant, sizeof(t->tenant), "%s", PQgetvalue(res, row, 1));
	snprintf(t->channel, sizeof(t->channel), "%s", ch);
	if (!c) {
		*why = "no channel";
		return 1;
	}
	if (!c->send || !c->ready(n)) {
		*why = "channel not available";
		return 1;
	}
	t->phone = dup_or_null(res, row, 13);
	t->email = dup_or_null(res, row, 14);
	t->endpoint = dup_or_null(res, row, 15);
	if ((!strcmp(ch, "sms") && !t->phone) ||
	    (!strcmp(ch, "email") && !t->email) ||
	    (!strcmp(ch, "webpush") && !t->endpoint)) {
		*why = "no address for the channel";
		return 1;
	}
	if (t->endpoint) {
		raw = PQunescapeBytea(
			(const unsigned char *)PQgetvalue(res, row, 16), &len);
		if (raw && len == sizeof(t->p256dh))
			memcpy(t->p256dh, raw, len);
		PQfreemem(raw);
		raw = PQunescapeBytea(
			(const unsigned char *)PQgetvalue(res, row, 17), &len);
		if (raw && len == sizeof(t->auth))
			memcpy(t->auth, raw, len);
		PQfreemem(raw);
	}
	v[0] = t->tenant;
	v[1] = PQgetvalue(res, row, 12);
	v[2] = ch;
	v[3] = PQgetvalue(res, row, 18);
	tr = exec(n,
		  "SELECT subject, body FROM bv_notify_template($1::uuid, $2, "
		  "$3, $4::boolean)",
		  4, v, NULL, NULL);
	if (PQresultStatus(tr) != PGRES_TUPLES_OK || PQntuples(tr) != 1 ||
	    PQgetisnull(tr, 0, 1)) {
		PQclear(tr);
		*why = "no template";
		return 1;
	}
	t->subject = dup_or_null(tr, 0, 0);
	t->body = dup_or_null(tr, 0, 1);
	PQclear(tr);
	return 0;
}

/*
 * One claim: due rows locked, each dropped, deferred or leased for a send
 * (not_before moved past the lease, so a notifier that dies mid-send is
 * replaced after notify_lease_s), in one short transaction. The sends
 * happen after COMMIT. Returns how many targets are in *out (≥ 0) or
 * BV_EUNAVAILABLE.
 */
static int
claim(struct notifier *n, int64_t now, struct target **out)
{
	char nowb[24], lim[16], lease[24], att[16];
	const char *v[3];
	struct target *ts = NULL;
	PGresult *res = NULL;
	int i, rows, k = 0, rc = BV_EUNAVAILABLE;

	*out = NULL;
	snprintf(nowb, sizeof(nowb), "%lld", (long long)now);
	snprintf(lim, sizeof(lim), "%u", n->cfg.notify_batch);
	if (exec_ok(n, "begin", "BEGIN", 0, NULL) < 0)
		return BV_EUNAVAILABLE;
	v[0] = nowb;
	v[1] = lim;
	res = exec(n, claim_sql, 2, v, NULL, NULL);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		bv_log(BV_LOG_ERR, "notifier: claim: %s",
		       PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
			       ? PQresultErrorField(res,
						    PG_DIAG_MESSAGE_PRIMARY)
			       : "failed");
		goto fail;
	}
	rows = PQntuples(res);
	ts = bv_calloc((size_t)rows + 1, sizeof(*ts));
	if (!ts)
		goto fail;
	for (i = 0; i < rows; i++) {
		const char *account = PQgetvalue(res, i, 0);
		struct notify_rules r;
		struct target *t = &ts[k];
		const char *why = NULL;
		int64_t u, next, last;
		int bad_tz = 0, d;

		if (PQgetisnull(res, i, 5)) {
			/* Every message was picked up in time. */
			if (drop(n, account, 0) < 0)
				goto fail;
			continue;
		}
		u = strtoll(PQgetvalue(res, i, 5), NULL, 10);
		last = strtoll(PQgetvalue(res, i, 4), NULL, 10);
		r.wait_ms = strtoll(PQgetvalue(res, i, 6), NULL, 10) * 60000;
		r.window_ms = strtoll(PQgetvalue(res, i, 7), NULL, 10) * 60000;
		r.quiet_start_min = atoi(PQgetvalue(res, i, 8));
		r.quiet_end_min = atoi(PQgetvalue(res, i, 9));
		r.tz = PQgetvalue(res, i, 10);
		next = notify_next(&r, u, last, now, &bad_tz);
		if (bad_tz)
			bv_log(BV_LOG_WARN,
			       "notifier: tenant %s: unknown time zone, no "
			       "quiet hours",
			       PQgetvalue(res, i, 1));
		if (next > now) {
			if (defer(n, account, u, next) < 0)
				goto fail;
			continue;
		}
		d = target_fill(n, res, i, t, &why);
		if (d) {
			if (strcmp(t->channel, "none"))
				bv_log(BV_LOG_NOTICE,
				       "notifier: account %s: %s (%s)", account,
				       why, t->channel);
			target_cleanup(t);
			if (drop(n, account,
				 strtoll(PQgetvalue(res, i, 19), NULL, 10)) < 0)
				goto fail;
			continue;
		}
		t->attempts = atoi(PQgetvalue(res, i, 2)) + 1;
		/* What this notification tells about: up to the newest
		 * undelivered message (by the relays' clocks, not ours). */
		t->covered_ms = strtoll(PQgetvalue(res, i, 19), NULL, 10);
		t->window_ms = r.window_ms;
		snprintf(lease, sizeof(lease), "%lld",
			 (long long)(now +
				     (int64_t)n->cfg.notify_lease_s * 1000));
		snprintf(att, sizeof(att), "%d", t->attempts);
		v[0] = account;
		v[1] = lease;
		v[2] = att;
		if (exec_ok(n, "lease",
			    "UPDATE notify_pending SET not_before = "
			    "to_timestamp("
			    "$2::double precision / 1000), attempts = $3::int "
			    "WHERE account_id = $1::uuid",
			    3, v) < 0) {
			k++;
			goto fail;
		}
		k++;
	}
	PQclear(res);
	res = NULL;
	if (exec_ok(n, "commit", "COMMIT", 0, NULL) < 0)
		goto fail;
	*out = ts;
	return k;
fail:
	PQclear(res);
	PQclear(PQexec(n->db, "ROLLBACK"));
	for (i = 0; i < k; i++)
		target_cleanup(&ts[i]);
	bv_free(ts);
	return rc;
}

/* Records a send's outcome in its own short transaction. */
static void
record(struct notifier *n, const struct target *t, int rc, const char *err,
       int64_t now)
{
	char cov[24], at[24], next[24];
	const char *v[4];
	int give_up =
		rc < 0 && (n->final ||
			   (unsigned)t->attempts >= n->cfg.notify_max_attempts);
	int64_t wait;

	snprintf(cov, sizeof(cov), "%lld", (long long)t->covered_ms);
	snprintf(at, sizeof(at), "%lld", (long long)now);
	v[0] = t->account;
	v[1] = cov;
	v[2] = at;
	v[3] = t->channel;
	if (exec_ok(n, "record", "BEGIN", 0, NULL) < 0)
		return;
	if (rc == 0) {
		/* Looked at again at once: what came meanwhile waits for
		 * the window (notify_next). */
		if (exec_ok(n, "record",
			    "UPDATE notify_pending SET attempts = 0, "
			    "last_error = "
			    "NULL, not_before = to_timestamp($2::double "
			    "precision / 1000) WHERE account_id = $1::uuid",
			    2, (const char *const[]){t->account, at}) < 0 ||
		    exec_ok(n, "record",
			    "INSERT INTO notify_state (account_id, "
			    "covered_until, "
			    "last_sent_at, last_channel, sent_count) VALUES "
			    "($1::uuid, $2::bigint, to_timestamp($3::double "
			    "precision / 1000), $4, 1) ON CONFLICT "
			    "(account_id) "
			    "DO UPDATE SET covered_until = greatest("
			    "notify_state.covered_until, "
			    "EXCLUDED.covered_until), "
			    "last_sent_at = EXCLUDED.last_sent_at, "
			    "last_channel = "
			    "EXCLUDED.last_channel, sent_count = "
			    "notify_state.sent_count + 1, last_error = NULL",
			    4, v) < 0)
			goto fail;
	} else if (give_up) {
		if (exec_ok(n, "record",
			    "UPDATE notify_pending SET attempts = 0, "
			    "last_error = "
			    "$2, not_before = to_timestamp($3::double "
			    "precision "
			    "/ 1000) WHERE account_id = $1::uuid",
			    3,
			    (const char *const[]){t->account, err, at}) < 0 ||
		    exec_ok(n, "record",
			    "INSERT INTO notify_state (account_id, "
			    "covered_until, "
			    "failed_count, last_error) VALUES ($1::uuid, "
			    "$2::bigint, 1, $3) ON CONFLICT (account_id) DO "
			    "UPDATE "
			    "SET covered_until = greatest(notify_state."
			    "covered_until, EXCLUDED.covered_until), "
			    "failed_count "
			    "= notify_state.failed_count + 1, last_error = "
			    "EXCLUDED.last_error",
			    3, (const char *const[]){t->account, cov, err}) < 0)
			goto fail;
	} else {
		wait = notify_backoff_ms(
			(unsigned)t->attempts,
			(int64_t)n->cfg.notify_backoff_s * 1000,
			(int64_t)n->cfg.notify_backoff_max_s * 1000);
		/* Never sooner than the far end asked (Retry-After), nor
		 * later than the longest backoff. */
		if (n->retry_after_ms > wait)
			wait = n->retry_after_ms;
		if (wait > (int64_t)n->cfg.notify_backoff_max_s * 1000)
			wait = (int64_t)n->cfg.notify_backoff_max_s * 1000;
		snprintf(next, sizeof(next), "%lld", (long long)(now + wait));
		if (exec_ok(n, "record",
			    "UPDATE notify_pending SET last_error = $2, "
			    "not_before = to_timestamp($3::double precision / "
			    "1000) WHERE account_id = $1::uuid",
			    3,
			    (const char *const[]){t->account, err, next}) < 0)
			goto fail;
	}
	exec_ok(n, "record", "COMMIT", 0, NULL);
	return;
fail:
	PQclear(PQexec(n->db, "ROLLBACK"));
}

/*
 * Accounts whose pending row was dropped: once the transactions in
 * progress right after the drop have ended (or a minute has passed, then
 * again each minute), the queue is read again and the row made anew if a
 * message is still undelivered.
 */
static int
recheck(struct notifier *n, int64_t now)
{
	char nowb[24], lim[16];
	const char *v[2] = {nowb, lim};

	snprintf(nowb, sizeof(nowb), "%lld", (long long)now);
	snprintf(lim, sizeof(lim), "%u", n->cfg.notify_batch);
	return exec_ok(
		n, "recheck",
		"WITH r AS (SELECT s.account_id, s.covered_until, "
		"s.recheck_at, "
		"NOT EXISTS (SELECT 1 FROM pg_snapshot_xip(s.recheck) x WHERE "
		"pg_xact_status(x) = 'in progress') AS settled FROM "
		"notify_state s "
		"WHERE s.recheck IS NOT NULL LIMIT $2::int FOR UPDATE SKIP "
		"LOCKED), g AS (SELECT * FROM r WHERE settled OR recheck_at < "
		"to_timestamp($1::double precision / 1000) - interval '1 "
		"minute'), "
		"i AS (INSERT INTO notify_pending (account_id, since) SELECT "
		"account_id, to_timestamp(u::double precision / 1000) FROM "
		"(SELECT account_id, (bv_notify_undelivered(account_id, "
		"covered_until)).oldest AS u FROM g) x WHERE u IS NOT NULL ON "
		"CONFLICT "
		"DO NOTHING) UPDATE notify_state s SET recheck = CASE WHEN "
		"g.settled THEN NULL ELSE s.recheck END, recheck_at = "
		"to_timestamp($1::double precision / 1000) FROM g WHERE "
		"s.account_id = g.account_id",
		2, v);
}

/* --------------------------------------------------------- staff tasks */

/*
 * Staff tasks (migrations/0011, docs/fagsystem-api.md "Tasks over FIKS
 * IO"): conversations whose citizen side has waited longer than the
 * tenant's task_after_minutes, and whose stretch has no task yet, are
 * claimed and leased in one short transaction; each task is then sent
 * over FIKS IO with its deterministic klientMeldingId, and recorded in
 * tasks_raised. A notifier that dies after the send and before the record
 * sends the same task again (same id) once the lease has run out. Tasks
 * are never given up: a failure is retried with the notifications'
 * backoff, at most notify_backoff_max_s apart, and its code kept in
 * last_error (and the log) for the operator.
 */
struct task {
	struct task_info info;
	char konto[37];
	int attempts; /* this one included */
};

static const char task_claim_sql[] =
	"SELECT u.conversation_id::text, u.since_ms, u.messages, u.attempts, "
	"t.id::text, t.task_fiks_konto::text, t.task_after_minutes, "
	"k.id::text, k.case_number "
	"FROM task_unanswered u JOIN conversations c ON c.id = "
	"u.conversation_id JOIN cases k ON k.id = c.case_id "
	"JOIN tenants t ON t.id = k.tenant_id "
	"WHERE u.raised_at IS NULL AND u.since_ms <= $1::bigint - 60000 "
	"AND t.task_fiks_konto IS NOT NULL "
	"AND u.since_ms + t.task_after_minutes * 60000::bigint <= $1::bigint "
	"AND (u.not_before IS NULL OR u.not_before <= to_timestamp("
	"$1::double precision / 1000)) "
	"ORDER BY u.since_ms LIMIT $2::int FOR UPDATE OF u SKIP LOCKED";

/* Claims due stretches and leases them. Returns how many are in *out
 * (≥ 0) or BV_EUNAVAILABLE. */
static int
task_claim(struct notifier *n, int64_t now, struct task **out)
{
	char nowb[24], lim[16], lease[24];
	struct task *ts = NULL;
	PGresult *res = NULL;
	int i, rows, k = 0;

	*out = NULL;
	snprintf(nowb, sizeof(nowb), "%lld", (long long)now);
	snprintf(lim, sizeof(lim), "%u", n->cfg.notify_batch);
	snprintf(lease, sizeof(lease), "%lld",
		 (long long)(now + (int64_t)n->cfg.notify_lease_s * 1000));
	if (exec_ok(n, "task begin", "BEGIN", 0, NULL) < 0)
		return BV_EUNAVAILABLE;
	res = exec(n, task_claim_sql, 2, (const char *const[]){nowb, lim}, NULL,
		   NULL);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		bv_log(BV_LOG_ERR, "notifier: task claim: %s",
		       PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
			       ? PQresultErrorField(res,
						    PG_DIAG_MESSAGE_PRIMARY)
			       : "failed");
		goto fail;
	}
	rows = PQntuples(res);
	ts = bv_calloc((size_t)rows + 1, sizeof(*ts));
	if (!ts)
		goto fail;
	for (i = 0; i < rows; i++) {
		struct task *t = &ts[k];
		const char *conv = PQgetvalue(res, i, 0);

		snprintf(t->info.conversation, sizeof(t->info.conversation),
			 "%s", conv);
		t->info.since_ms = strtoll(PQgetvalue(res, i, 1), NULL, 10);
		t->info.messages = atoi(PQgetvalue(res, i, 2));
		t->attempts = atoi(PQgetvalue(res, i, 3)) + 1;
		snprintf(t->info.tenant, sizeof(t->info.tenant), "%s",
			 PQgetvalue(res, i, 4));
		snprintf(t->konto, sizeof(t->konto), "%s",
			 PQgetvalue(res, i, 5));
		t->info.after_minutes = atoi(PQgetvalue(res, i, 6));
		snprintf(t->info.kase, sizeof(t->info.kase), "%s",
			 PQgetvalue(res, i, 7));
		snprintf(t->info.case_number, sizeof(t->info.case_number), "%s",
			 PQgetvalue(res, i, 8));
		if (exec_ok(n, "task lease",
			    "UPDATE task_unanswered SET not_before = "
			    "to_timestamp($2::double precision / 1000), "
			    "attempts = attempts + 1 WHERE conversation_id = "
			    "$1::uuid",
			    2, (const char *const[]){conv, lease}) < 0)
			goto fail;
		k++;
	}
	PQclear(res);
	res = NULL;
	if (exec_ok(n, "task commit", "COMMIT", 0, NULL) < 0)
		goto fail;
	*out = ts;
	return k;
fail:
	PQclear(res);
	PQclear(PQexec(n->db, "ROLLBACK"));
	bv_free(ts);
	return BV_EUNAVAILABLE;
}

/* Sends one task; 0, or a negative code with a short reason in err. */
static int
task_send(struct notifier *n, const struct task *t, const char *id, int64_t now,
	  char melding_id[FIKS_UUID_LEN + 1], char *err, size_t errcap)
{
	struct fiks_send_req req;
	struct fiks_file f;
	char *json = task_message(&t->info, n->cfg.task_link, now);
	int rc;

	if (!json) {
		snprintf(err, errcap, "cannot build the message");
		return BV_ENOMEM;
	}
	memset(&req, 0, sizeof(req));
	req.mottaker = t->konto;
	req.type = TASK_TYPE;
	req.klient_melding_id = id;
	req.klient_korrelasjons_id = id;
	f.name = TASK_FILE;
	f.mime = "application/json";
	f.data = (const unsigned char *)json;
	f.len = strlen(json);
	rc = fiks_send(n->task_fiks, &req, &f, 1, NULL, melding_id);
	if (rc < 0)
		snprintf(err, errcap, "fiks: %s", fiks_errname(rc));
	bv_free(json);
	return rc;
}

/* Records the outcome of one task's send in its own transaction. */
static void
task_record(struct notifier *n, const struct task *t, const char *id,
	    const char *melding_id, int rc, const char *err, int64_t now)
{
	char since[24], at[24], next[24], msgs[16], att[16];
	int64_t wait;

	snprintf(since, sizeof(since), "%lld", (long long)t->info.since_ms);
	snprintf(at, sizeof(at), "%lld", (long long)now);
	if (rc < 0) {
		wait = notify_backoff_ms(
			(unsigned)t->attempts,
			(int64_t)n->cfg.notify_backoff_s * 1000,
			(int64_t)n->cfg.notify_backoff_max_s * 1000);
		snprintf(next, sizeof(next), "%lld", (long long)(now + wait));
		exec_ok(n, "task record",
			"UPDATE task_unanswered SET last_error = $3, "
			"not_before = to_timestamp($4::double precision / "
			"1000) WHERE conversation_id = $1::uuid AND since_ms "
			"= $2::bigint",
			4,
			(const char *const[]){t->info.conversation, since, err,
					      next});
		return;
	}
	snprintf(msgs, sizeof(msgs), "%d", t->info.messages);
	snprintf(att, sizeof(att), "%d", t->attempts);
	if (exec_ok(n, "task record", "BEGIN", 0, NULL) < 0)
		return;
	/* Raised, even if a staff reply ended the stretch meanwhile: it is
	 * then answered already. */
	if (exec_ok(n, "task record",
		    "INSERT INTO tasks_raised (conversation_id, since_ms, "
		    "tenant_id, task, melding_id, messages, attempts, "
		    "raised_at, answered_at) SELECT $1::uuid, $2::bigint, "
		    "$3::uuid, $4::uuid, $5::uuid, $6::int, $7::int, "
		    "to_timestamp($8::double precision / 1000), CASE WHEN "
		    "EXISTS (SELECT 1 FROM task_unanswered WHERE "
		    "conversation_id = $1::uuid AND since_ms = $2::bigint) "
		    "THEN NULL ELSE now() END ON CONFLICT DO NOTHING",
		    8,
		    (const char *const[]){t->info.conversation, since,
					  t->info.tenant, id, melding_id, msgs,
					  att, at}) < 0 ||
	    exec_ok(n, "task record",
		    "UPDATE task_unanswered SET raised_at = to_timestamp("
		    "$3::double precision / 1000), not_before = NULL, "
		    "last_error = NULL WHERE conversation_id = $1::uuid AND "
		    "since_ms = $2::bigint",
		    3, (const char *const[]){t->info.conversation, since, at}) <
		    0 ||
	    exec_ok(n, "task record", "COMMIT", 0, NULL) < 0)
		PQclear(PQexec(n->db, "ROLLBACK"));
}

/* One round of tasks: claim, send, record. The number sent or tried, or
 * BV_EUNAVAILABLE. */
static int
task_round(struct notifier *n, int64_t now)
{
	struct task *ts = NULL;
	char id[37], mid[FIKS_UUID_LEN + 1], err[160];
	int i, k, rc;

	if (!n->task_fiks)
		return 0;
	k = task_claim(n, now, &ts);
	if (k < 0)
		return k;
	for (i = 0; i < k; i++) {
		err[0] = mid[0] = '\0';
		rc = task_id(ts[i].info.conversation, ts[i].info.since_ms, id);
		if (rc == 0)
			rc = task_send(n, &ts[i], id, now, mid, err,
				       sizeof(err));
		else
			snprintf(err, sizeof(err), "bad conversation id");
		if (rc == 0)
			bv_log(BV_LOG_INFO,
			       "notifier: task %s raised for conversation %s",
			       id, ts[i].info.conversation);
		else
			bv_log(BV_LOG_WARN,
			       "notifier: task for conversation %s, try %d: "
			       "%s",
			       ts[i].info.conversation, ts[i].attempts, err);
		task_record(n, &ts[i], id, mid, rc, err, clock_now(n));
	}
	bv_free(ts);
	return k;
}

/* One round: rechecks, a claim, its sends, then the staff tasks. Returns
 * the number of sends (so the loop goes on at once while there is work) or
 * BV_EUNAVAILABLE. */
static int
round_once(struct notifier *n)
{
	struct target *ts = NULL;
	int64_t now = clock_now(n);
	char err[160];
	int i, k, rc;

	if (recheck(n, now) < 0)
		return BV_EUNAVAILABLE;
	k = claim(n, now, &ts);
	if (k < 0)
		return k;
	for (i = 0; i < k; i++) {
		const struct channel *c = channel_find(ts[i].channel);

		err[0] = '\0';
		n->final = 0;
		n->retry_after_ms = 0;
		rc = c->send(n, &ts[i], err, sizeof(err));
		if (rc == 0)
			bv_log(BV_LOG_INFO, "notifier: account %s told by %s",
			       ts[i].account, ts[i].channel);
		else
			bv_log(BV_LOG_WARN,
			       "notifier: account %s by %s, try %d: %s",
			       ts[i].account, ts[i].channel, ts[i].attempts,
			       err);
		record(n, &ts[i], rc, err, clock_now(n));
		target_cleanup(&ts[i]);
	}
	bv_free(ts);
	/* Staff tasks after the notifications, in the same round. */
	rc = task_round(n, clock_now(n));
	return rc < 0 ? rc : k + rc;
}

/* ------------------------------------------------------------- process */

static void
on_signal(int sig)
{
	(void)sig;
	if (the_notifier)
		the_notifier->stop = 1;
}

static int
db_connect(struct notifier *n)
{
	int rc;

	PQfinish(n->db);
	n->db = NULL;
	/* The schema must be the one this build knows, as for the relay. */
	rc = migrate_check(n->cfg.database);
	if (rc < 0)
		return rc;
	n->db = PQconnectdb(n->cfg.database);
	if (PQstatus(n->db) != CONNECTION_OK) {
		bv_log(BV_LOG_ERR, "notifier: cannot connect to the database");
		return BV_EUNAVAILABLE;
	}
	return 0;
}

static int
smtp_credentials(struct notifier *n)
{
	char buf[1024], *colon;
	FILE *f;

	if (!n->cfg.smtp_credentials_file[0])
		return 0;
	f = fopen(n->cfg.smtp_credentials_file, "r");
	if (!f || !fgets(buf, sizeof(buf), f)) {
		if (f)
			fclose(f);
		fprintf(stderr, "%s: cannot read\n",
			n->cfg.smtp_credentials_file);
		return BV_ECONFIG;
	}
	fclose(f);
	buf[strcspn(buf, "\r\n")] = '\0';
	colon = strchr(buf, ':');
	if (!colon) {
		bv_wipe(buf, sizeof(buf));
		fprintf(stderr, "%s: not user:password\n",
			n->cfg.smtp_credentials_file);
		return BV_ECONFIG;
	}
	*colon = '\0';
	n->smtp_user = bv_strdup(buf);
	n->smtp_pass = bv_strdup(colon + 1);
	bv_wipe(buf, sizeof(buf));
	return n->smtp_user && n->smtp_pass ? 0 : BV_ENOMEM;
}

/*
 * The VAPID key and subject. When the relay's webpush_vapid_public is set
 * too (the same file serves both), it must be this key's public half:
 * browsers would otherwise subscribe with a key whose pushes the push
 * services refuse.
 */
static int
webpush_vapid_open(struct notifier *n)
{
	const char *pub;
	int rc;

	rc = webpush_vapid_key_load(n->cfg.webpush_vapid_key, &n->vapid);
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", n->cfg.webpush_vapid_key,
			webpush_strerror(rc));
		return BV_ECONFIG;
	}
	if (strncmp(n->cfg.webpush_subject, "mailto:", 7) &&
	    strncmp(n->cfg.webpush_subject, "https:", 6)) {
		fprintf(stderr, "webpush_subject: %s\n",
			webpush_strerror(WEBPUSH_ESUBJECT));
		return BV_ECONFIG;
	}
	pub = webpush_vapid_key_public(n->vapid);
	if (n->cfg.webpush_vapid_public[0] &&
	    strcmp(n->cfg.webpush_vapid_public, pub)) {
		fprintf(stderr, "webpush_vapid_public is not the public key of "
				"webpush_vapid_key\n");
		return BV_ECONFIG;
	}
	return 0;
}

static int
channels_open(struct notifier *n)
{
	struct fiks_config fc;
	char err[256];
	const char *f = n->cfg.smtp_from;
	int rc;

	if (n->cfg.varsling_fiks_config[0]) {
		if (!bv_uuid_valid(n->cfg.varsling_konto)) {
			fprintf(stderr, "varsling_konto must be a UUID\n");
			return BV_ECONFIG;
		}
		rc = fiks_config_load(n->cfg.varsling_fiks_config, &fc, err,
				      sizeof(err));
		if (rc < 0) {
			fprintf(stderr, "%s\n", err);
			return BV_ECONFIG;
		}
		if (!fc.timeout_ms ||
		    fc.timeout_ms > (int)n->cfg.notify_timeout_ms)
			fc.timeout_ms = (int)n->cfg.notify_timeout_ms;
		rc = fiks_client_new(&fc, &n->fiks);
		fiks_config_free(&fc);
		if (rc < 0) {
			fprintf(stderr, "varsling: %s\n", fiks_strerror(rc));
			return BV_ECONFIG;
		}
	}
	if (n->cfg.task_fiks_config[0]) {
		rc = fiks_config_load(n->cfg.task_fiks_config, &fc, err,
				      sizeof(err));
		if (rc < 0) {
			fprintf(stderr, "%s\n", err);
			return BV_ECONFIG;
		}
		if (!fc.timeout_ms ||
		    fc.timeout_ms > (int)n->cfg.notify_timeout_ms)
			fc.timeout_ms = (int)n->cfg.notify_timeout_ms;
		rc = fiks_client_new(&fc, &n->task_fiks);
		fiks_config_free(&fc);
		if (rc < 0) {
			fprintf(stderr, "task_fiks_config: %s\n",
				fiks_strerror(rc));
			return BV_ECONFIG;
		}
	}
	if (n->cfg.task_link[0] && strncmp(n->cfg.task_link, "https://", 8) &&
	    strncmp(n->cfg.task_link, "http://", 7)) {
		fprintf(stderr, "task_link must be an http(s) URL\n");
		return BV_ECONFIG;
	}
	if (n->cfg.webpush_vapid_key[0]) {
		rc = webpush_vapid_open(n);
		if (rc < 0)
			return rc;
	}
	if (n->cfg.smtp_url[0]) {
		if (strncmp(n->cfg.smtp_url, "smtp://", 7) &&
		    strncmp(n->cfg.smtp_url, "smtps://", 8)) {
			fprintf(stderr,
				"smtp_url must be smtp:// or smtps://\n");
			return BV_ECONFIG;
		}
		if (!strchr(f, '@') || strpbrk(f, "<>\r\n \t\"")) {
			fprintf(stderr, "smtp_from must be an address\n");
			return BV_ECONFIG;
		}
		rc = smtp_credentials(n);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static void
usage(FILE *f)
{
	fputs("usage: bvchat-notifier [-c FILE] [--database CONNINFO]\n"
	      "           [--clock-file PATH] [--once] [--print-vapid-public]\n"
	      "Reads the relay's config file (notify_*, varsling_*, smtp_*,\n"
	      "webpush_*, task_* directives; docs/operations.md\n"
	      "\"Notifications\", \"Staff tasks\") and database.\n"
	      "  --clock-file PATH  tests only: now is the number of ms in "
	      "PATH\n"
	      "  --once             one round, then exit\n"
	      "  --print-vapid-public  print the relay's webpush_vapid_public\n"
	      "                     line for webpush_vapid_key, then exit\n",
	      f);
}

int
main(int argc, char **argv)
{
	struct notifier n;
	struct sigaction sa;
	const char *conf = NULL, *database = NULL;
	int i, once = 0, print_public = 0, rc, status = 1;

	memset(&n, 0, sizeof(n));
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--once")) {
			once = 1;
		} else if (!strcmp(a, "--print-vapid-public")) {
			print_public = 1;
		} else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 0;
		} else if (i + 1 < argc &&
			   (!strcmp(a, "-c") || !strcmp(a, "--config"))) {
			conf = argv[++i];
		} else if (i + 1 < argc && !strcmp(a, "--database")) {
			database = argv[++i];
		} else if (i + 1 < argc && !strcmp(a, "--clock-file")) {
			n.clock_file = argv[++i];
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (config_defaults(&n.cfg) < 0)
		return 1;
	if (conf && config_load_file(&n.cfg, conf) < 0)
		goto out;
	if (database) {
		char err[128];

		if (config_set(&n.cfg, "database", database, err, sizeof(err)) <
		    0) {
			fprintf(stderr, "%s\n", err);
			goto out;
		}
	}
	bv_log_set_level(bv_log_level_from_name(n.cfg.log_level));
	if (n.clock_file)
		n.last_clock = bv_now_ms();
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		goto out;
	if (channels_open(&n) < 0)
		goto out;
	if (print_public) {
		/* For webpush_vapid_public: the line the relay needs. */
		if (!n.vapid) {
			fprintf(stderr, "no webpush_vapid_key\n");
			goto out;
		}
		printf("webpush_vapid_public %s\n",
		       webpush_vapid_key_public(n.vapid));
		status = 0;
		goto out;
	}
	the_notifier = &n;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	rc = db_connect(&n);
	if (rc == BV_ECONFIG)
		goto out;
	bv_log(BV_LOG_NOTICE,
	       "notifier: running (sms %s, e-mail %s, web "
	       "push %s, staff tasks %s)",
	       sms_ready(&n) ? "on" : "off", email_ready(&n) ? "on" : "off",
	       webpush_ready(&n) ? "on" : "off", n.task_fiks ? "on" : "off");
	if (n.cfg.webpush_allow_loopback_http)
		bv_log(BV_LOG_WARN, "notifier: webpush_allow_loopback_http is "
				    "on: pushes go to loopback push services "
				    "too (tests and development only)");
	while (!n.stop) {
		if ((!n.db || PQstatus(n.db) != CONNECTION_OK) &&
		    db_connect(&n) < 0) {
			rc = BV_EUNAVAILABLE;
		} else {
			rc = round_once(&n);
			if (rc == BV_EUNAVAILABLE &&
			    PQstatus(n.db) != CONNECTION_OK)
				bv_log(BV_LOG_WARN,
				       "notifier: database connection lost");
		}
		if (once)
			break;
		/* Straight on while a full batch came; else the poll. */
		if (rc < (int)n.cfg.notify_batch) {
			unsigned ms = rc == BV_EUNAVAILABLE
					      ? 1000
					      : n.cfg.notify_poll_ms;
			struct timespec ts = {(time_t)(ms / 1000),
					      (long)(ms % 1000) * 1000000L};

			while (nanosleep(&ts, &ts) < 0 && errno == EINTR &&
			       !n.stop)
				;
		}
	}
	bv_log(BV_LOG_NOTICE, "notifier: stopped");
	status = 0;
out:
	PQfinish(n.db);
	fiks_client_free(n.fiks);
	fiks_client_free(n.task_fiks);
	webpush_vapid_key_free(n.vapid);
	if (n.smtp_pass)
		bv_wipe(n.smtp_pass, strlen(n.smtp_pass));
	bv_free(n.smtp_user);
	bv_free(n.smtp_pass);
	config_cleanup(&n.cfg);
	curl_global_cleanup();
	return status;
}
