/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * db.c: one libpq connection in pipeline mode on the relay's libuv loop:
 * asynchronous connect and reconnect with backoff, prepared statements,
 * LISTEN, and jobs run in rounds with group commit (see db.h).
 *
 * It does not retry a job that failed or whose outcome is unknown (callers
 * decide), does not resolve host names without blocking (use hostaddr or a
 * socket path), and never logs parameters or the connection string.
 */
#include <stdint.h>
#include <string.h>

#include "bv_error.h"
#include "bv_util.h"
#include "db.h"

#define DB_DEFAULT_JOBS_PER_ROUND 256
#define DB_DEFAULT_RECONNECT_MIN  100
#define DB_DEFAULT_RECONNECT_MAX  5000
/* libpq only enforces connect_timeout in its blocking calls. */
#define DB_CONNECT_TIMEOUT_MS 10000
#define DB_MAX_PARAMS	      65535

/*
 * DOWN: no connection, the timer counts down to the next attempt.
 * CONNECTING: PQconnectPoll() in progress. SETUP: PREPAREs and LISTENs sent,
 * waiting for their Sync. UP: jobs run. CLOSING: inside db_free().
 */
enum db_state { DB_DOWN, DB_CONNECTING, DB_SETUP, DB_UP, DB_CLOSING };

/* One statement of a job; everything but res lives in one block. */
struct db_call {
	void *block;
	const char *stmt;
	int nparams;
	const char *const *values;
	const int *lengths;
	const int *formats; /* NULL: all text */
	int binary_result;
	PGresult *res;
};

struct db_job {
	struct db_job *next; /* queue, failure list or grouped transaction */
	struct db_call *calls;
	int n, cap;
	int transactional;
	int solo;    /* retried alone after its group failed */
	int grouped; /* in flight inside the round's BEGIN … COMMIT */
	int failed;
	char sqlstate[6];
	db_done_cb cb;
	void *arg;
};

struct db_list {
	struct db_job *head, *tail;
};

/* What the next result belongs to. The Sync kinds come last: on_result(). */
enum db_ent_kind {
	ENT_STMT,	  /* job->calls[idx] */
	ENT_BEGIN,	  /* the group's BEGIN */
	ENT_COMMIT,	  /* the group's COMMIT */
	ENT_ROLLBACK,	  /* after a failed group */
	ENT_PREPARE,	  /* db->stmts[idx] */
	ENT_LISTEN,	  /* db->listen[idx] */
	ENT_SYNC_JOB,	  /* end of job's own transaction */
	ENT_SYNC_GROUP,	  /* end of the grouped transaction */
	ENT_SYNC_SETUP,	  /* end of PREPAREs / LISTENs */
	ENT_SYNC_ROLLBACK /* end of the ROLLBACK */
};

struct db_ent {
	enum db_ent_kind kind;
	int idx;
	struct db_job *job;
};

struct db_stmt_def {
	char *name;
	char *sql;
	int nparams;
};

struct db {
	uv_loop_t *loop;
	enum db_state state;
	PGconn *conn;
	uv_poll_t *poll; /* heap; freed by its close callback */
	int poll_events;
	uv_timer_t *timer; /* reconnect backoff and connect timeout */
	uv_idle_t *idle;   /* runs deferred failures and starts rounds */
	int want_write;	   /* PQflush() returned 1 */

	char *conninfo;
	char *session_sql; /* run first on every connection, or NULL */
	char **listen;
	int nlisten;
	db_notify_cb on_notify;
	db_state_cb on_state;
	void *arg;
	unsigned max_jobs;
	unsigned reconnect_min, reconnect_max;

	struct db_stmt_def *stmts;
	int nstmts, stmts_cap;
	int nprepared; /* statements prepared on this connection */

	struct db_list queue; /* waiting for a round */
	struct db_list failq; /* to be failed with BV_EUNAVAILABLE */
	struct db_list group; /* the round's grouped transaction */
	int group_n;
	int group_failed;
	char group_sqlstate[6];
	int setup_failed;

	/* Expected results, oldest first: ent[head … len-1]. */
	struct db_ent *ent;
	size_t ent_head, ent_len, ent_cap;
	int head_got; /* the head query already gave its result */

	size_t pending;
	unsigned backoff_n;
	int ever_up;
	uint64_t rng;
	struct db_stats stats;
};

static void on_poll(uv_poll_t *h, int status, int events);
static void on_timer(uv_timer_t *h);
static void on_idle(uv_idle_t *h);
static int conn_start(struct db *db);
static void on_notice(void *arg, const PGresult *res);

/* ------------------------------------------------------------------ */
/* Jobs                                                                 */
/* ------------------------------------------------------------------ */

struct db_job *
db_job_new(int transactional)
{
	struct db_job *job = bv_calloc(1, sizeof(*job));

	if (job)
		job->transactional = transactional ? 1 : 0;
	return job;
}

/* Drops results and error state, as before the job first ran. */
static void
job_reset(struct db_job *job)
{
	int i;

	for (i = 0; i < job->n; i++) {
		PQclear(job->calls[i].res);
		job->calls[i].res = NULL;
	}
	job->failed = 0;
	job->sqlstate[0] = '\0';
}

void
db_job_free(struct db_job *job)
{
	int i;

	if (!job)
		return;
	for (i = 0; i < job->n; i++) {
		PQclear(job->calls[i].res);
		bv_free(job->calls[i].block);
	}
	bv_free(job->calls);
	bv_free(job);
}

int
db_job_add(struct db_job *job, const char *stmt, int nparams,
	   const char *const *values, const int *lengths, const int *formats,
	   int binary_result)
{
	struct db_call *c, *calls;
	size_t total, namelen, off;
	char **v;
	int *len, *fmt, i;
	char *p;

	if (!job || !stmt || nparams < 0 || nparams > DB_MAX_PARAMS ||
	    (nparams > 0 && !values))
		return BV_EINVAL;
	if (job->n == job->cap) {
		int cap = job->cap ? job->cap * 2 : 2;

		calls = bv_realloc(job->calls, (size_t)cap * sizeof(*calls));
		if (!calls)
			return BV_ENOMEM;
		job->calls = calls;
		job->cap = cap;
	}
	/*
	 * One block: value pointers, lengths, formats, then the bytes of each
	 * value (NUL-terminated, so text values stay C strings) and the name.
	 */
	namelen = strlen(stmt);
	total = (size_t)nparams * (sizeof(char *) + 2 * sizeof(int));
	for (i = 0; i < nparams; i++) {
		int binary = formats && formats[i];

		if (!values[i])
			continue;
		if (binary && (!lengths || lengths[i] < 0))
			return BV_EINVAL;
		total += (binary ? (size_t)lengths[i] : strlen(values[i])) + 1;
	}
	total += namelen + 1;
	p = bv_malloc(total);
	if (!p)
		return BV_ENOMEM;
	v = (char **)(void *)p;
	len = (int *)(void *)(p + (size_t)nparams * sizeof(char *));
	fmt = len + nparams;
	off = (size_t)nparams * (sizeof(char *) + 2 * sizeof(int));
	for (i = 0; i < nparams; i++) {
		int binary = formats && formats[i];
		size_t n;

		fmt[i] = binary;
		len[i] = 0;
		v[i] = NULL;
		if (!values[i])
			continue;
		n = binary ? (size_t)lengths[i] : strlen(values[i]);
		v[i] = p + off;
		memcpy(v[i], values[i], n);
		v[i][n] = '\0';
		len[i] = (int)n;
		off += n + 1;
	}
	memcpy(p + off, stmt, namelen + 1);

	c = &job->calls[job->n++];
	c->block = p;
	c->stmt = p + off;
	c->nparams = nparams;
	c->values = (const char *const *)v;
	c->lengths = len;
	c->formats = formats ? fmt : NULL;
	c->binary_result = binary_result ? 1 : 0;
	c->res = NULL;
	return 0;
}

int
db_job_count(const struct db_job *job)
{
	return job ? job->n : 0;
}

PGresult *
db_job_result(struct db_job *job, int i)
{
	if (!job || i < 0 || i >= job->n)
		return NULL;
	return job->calls[i].res;
}

const char *
db_job_sqlstate(const struct db_job *job)
{
	return job ? job->sqlstate : "";
}

/* ------------------------------------------------------------------ */
/* Lists and expected results                                           */
/* ------------------------------------------------------------------ */

static void
list_append(struct db_list *l, struct db_job *job)
{
	job->next = NULL;
	if (l->tail)
		l->tail->next = job;
	else
		l->head = job;
	l->tail = job;
}

static struct db_job *
list_pop(struct db_list *l)
{
	struct db_job *job = l->head;

	if (job) {
		l->head = job->next;
		if (!l->head)
			l->tail = NULL;
		job->next = NULL;
	}
	return job;
}

/* Moves all of src to the end of dst, keeping order. */
static void
list_concat(struct db_list *dst, struct db_list *src)
{
	if (!src->head)
		return;
	if (dst->tail)
		dst->tail->next = src->head;
	else
		dst->head = src->head;
	dst->tail = src->tail;
	src->head = src->tail = NULL;
}

/* Makes room for n more expected results; only called with none left. */
static int
ent_reserve(struct db *db, size_t n)
{
	struct db_ent *e;

	if (db->ent_len + n <= db->ent_cap)
		return 0;
	e = bv_realloc(db->ent, (db->ent_len + n) * sizeof(*e));
	if (!e)
		return BV_ENOMEM;
	db->ent = e;
	db->ent_cap = db->ent_len + n;
	return 0;
}

/* Capacity was reserved by the caller. */
static void
ent_push(struct db *db, enum db_ent_kind kind, int idx, struct db_job *job)
{
	struct db_ent *e = &db->ent[db->ent_len++];

	e->kind = kind;
	e->idx = idx;
	e->job = job;
}

static void
ent_pop(struct db *db)
{
	db->head_got = 0;
	if (++db->ent_head == db->ent_len)
		db->ent_head = db->ent_len = 0;
}

static int
round_in_flight(const struct db *db)
{
	return db->ent_len > 0;
}

/*
 * Moves every job of the round in flight to the end of dst, in the order
 * they were sent, and forgets the expected results.
 */
static void
take_in_flight(struct db *db, struct db_list *dst)
{
	size_t i;

	for (i = db->ent_head; i < db->ent_len; i++) {
		if (db->ent[i].kind == ENT_SYNC_JOB) {
			job_reset(db->ent[i].job);
			list_append(dst, db->ent[i].job);
		}
	}
	db->ent_head = db->ent_len = 0;
	db->head_got = 0;
	while (db->group.head) {
		struct db_job *job = list_pop(&db->group);

		job->grouped = 0;
		job_reset(job);
		list_append(dst, job);
	}
	db->group_n = 0;
}

/* Runs job's callback with rc and frees the job. */
static void
job_complete(struct db *db, struct db_job *job, int rc)
{
	db->pending--;
	if (rc != 0)
		db->stats.failures++;
	if (job->cb)
		job->cb(job, rc, job->arg);
	db_job_free(job);
}

static void
kick(struct db *db)
{
	if (db->idle && !uv_is_active((uv_handle_t *)db->idle))
		uv_idle_start(db->idle, on_idle);
}

/* ------------------------------------------------------------------ */
/* Connection                                                           */
/* ------------------------------------------------------------------ */

static void
free_handle(uv_handle_t *h)
{
	bv_free(h);
}

static void
poll_close(struct db *db)
{
	if (db->poll) {
		uv_close((uv_handle_t *)db->poll, free_handle);
		db->poll = NULL;
	}
	db->poll_events = 0;
}

/* Logs the first line of a libpq message (they end in newlines). */
static void
log_pq(int level, const char *what, const char *msg)
{
	size_t n = msg ? strcspn(msg, "\n") : 0;

	bv_log(level, "db: %s: %.*s", what, (int)n, msg ? msg : "");
}

static unsigned
backoff_ms(struct db *db)
{
	uint64_t base = db->reconnect_min, lo, x;

	if (db->backoff_n < 20)
		base <<= db->backoff_n;
	else
		base = db->reconnect_max;
	if (base > db->reconnect_max)
		base = db->reconnect_max;
	db->backoff_n++;
	/* xorshift64: jitter only spreads relays out, it guards nothing. */
	x = db->rng;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	db->rng = x;
	/* Between half the step and the step, never below the minimum. */
	lo = base / 2 < db->reconnect_min ? db->reconnect_min : base / 2;
	return (unsigned)(lo + x % (base - lo + 1));
}

/*
 * Drops the connection: jobs in flight and queued are failed with
 * BV_EUNAVAILABLE from the idle handle, on_state(0) runs if it was up, and
 * the next attempt is scheduled. Always returns BV_EUNAVAILABLE so callers
 * can return it and stop touching the connection.
 */
static int
conn_fail(struct db *db, const char *why, const char *detail)
{
	int was_up = db->state == DB_UP;
	unsigned delay;

	log_pq(was_up ? BV_LOG_WARN : BV_LOG_NOTICE, why, detail);
	poll_close(db);
	PQfinish(db->conn);
	db->conn = NULL;
	db->want_write = 0;
	db->nprepared = 0;
	take_in_flight(db, &db->failq);
	list_concat(&db->failq, &db->queue);
	if (db->failq.head)
		kick(db);
	db->state = DB_DOWN;
	delay = backoff_ms(db);
	uv_timer_stop(db->timer);
	uv_timer_start(db->timer, on_timer, delay, 0);
	bv_log(BV_LOG_INFO, "db: reconnecting in %u ms", delay);
	if (was_up && db->on_state)
		db->on_state(0, db->arg);
	return BV_EUNAVAILABLE;
}

/* Watches the socket for events; a new handle when recreate is set. */
static int
poll_watch(struct db *db, int events, int recreate)
{
	int fd = PQsocket(db->conn);

	if (fd < 0)
		return conn_fail(db, "no socket", PQerrorMessage(db->conn));
	if (recreate)
		poll_close(db);
	if (!db->poll) {
		db->poll = bv_malloc(sizeof(*db->poll));
		if (!db->poll)
			return conn_fail(db, "poll handle", "out of memory");
		if (uv_poll_init_socket(db->loop, db->poll, fd) != 0) {
			bv_free(db->poll);
			db->poll = NULL;
			return conn_fail(db, "poll handle", "uv_poll_init");
		}
		db->poll->data = db;
		db->poll_events = 0;
	}
	if (events != db->poll_events) {
		if (uv_poll_start(db->poll, events, on_poll) != 0)
			return conn_fail(db, "poll handle", "uv_poll_start");
		db->poll_events = events;
	}
	return 0;
}

/* Sends what libpq buffered; watches writability only while needed. */
static int
conn_flush(struct db *db)
{
	int r = PQflush(db->conn);

	if (r < 0)
		return conn_fail(db, "send failed", PQerrorMessage(db->conn));
	db->want_write = r == 1;
	return poll_watch(db, UV_READABLE | (db->want_write ? UV_WRITABLE : 0),
			  0);
}

/* Queues PREPARE for every statement this connection does not have yet. */
static int
send_prepares(struct db *db)
{
	for (; db->nprepared < db->nstmts; db->nprepared++) {
		struct db_stmt_def *s = &db->stmts[db->nprepared];

		if (!PQsendPrepare(db->conn, s->name, s->sql, s->nparams, NULL))
			return BV_EIO;
		ent_push(db, ENT_PREPARE, db->nprepared, NULL);
	}
	return 0;
}

/* Connected: pipeline mode, then PREPAREs and LISTENs in one Sync. */
static int
conn_setup(struct db *db)
{
	int i;

	if (PQsetnonblocking(db->conn, 1) != 0 ||
	    !PQenterPipelineMode(db->conn))
		return conn_fail(db, "pipeline mode", PQerrorMessage(db->conn));
	if (ent_reserve(db, (size_t)db->nstmts + (size_t)db->nlisten + 2) < 0)
		return conn_fail(db, "setup", "out of memory");
	db->nprepared = 0;
	db->setup_failed = 0;
	if (db->session_sql) {
		/* Reported like a failed LISTEN: the connection stays down. */
		if (!PQsendQueryParams(db->conn, db->session_sql, 0, NULL, NULL,
				       NULL, NULL, 0))
			return conn_fail(db, "session setup",
					 PQerrorMessage(db->conn));
		ent_push(db, ENT_LISTEN, -1, NULL);
	}
	if (send_prepares(db) < 0)
		return conn_fail(db, "prepare", PQerrorMessage(db->conn));
	for (i = 0; i < db->nlisten; i++) {
		const char *l = db->listen[i];
		char *id = PQescapeIdentifier(db->conn, l, strlen(l));
		char *sql;
		int ok;

		if (!id)
			return conn_fail(db, "listen",
					 PQerrorMessage(db->conn));
		sql = bv_malloc(strlen(id) + sizeof("LISTEN "));
		if (!sql) {
			PQfreemem(id);
			return conn_fail(db, "listen", "out of memory");
		}
		strcpy(sql, "LISTEN ");
		strcat(sql, id);
		PQfreemem(id);
		ok = PQsendQueryParams(db->conn, sql, 0, NULL, NULL, NULL, NULL,
				       0);
		bv_free(sql);
		if (!ok)
			return conn_fail(db, "listen",
					 PQerrorMessage(db->conn));
		ent_push(db, ENT_LISTEN, i, NULL);
	}
	if (!PQpipelineSync(db->conn))
		return conn_fail(db, "sync", PQerrorMessage(db->conn));
	ent_push(db, ENT_SYNC_SETUP, 0, NULL);
	db->state = DB_SETUP;
	return conn_flush(db);
}

/* Advances PQconnectPoll() one step. */
static int
conn_poll(struct db *db)
{
	PostgresPollingStatusType st = PQconnectPoll(db->conn);

	switch (st) {
	case PGRES_POLLING_READING:
		return poll_watch(db, UV_READABLE, 1);
	case PGRES_POLLING_WRITING:
		return poll_watch(db, UV_WRITABLE, 1);
	case PGRES_POLLING_OK:
		/* The socket is final now; watch it with a fresh handle. */
		poll_close(db);
		return conn_setup(db);
	default:
		return conn_fail(db, "connect failed",
				 PQerrorMessage(db->conn));
	}
}

/*
 * Starts connecting. libpq may replace its socket between PQconnectPoll()
 * steps (another address, SSL retry) and a new one can reuse the old
 * number, so each step gets a new poll handle.
 */
static int
conn_start(struct db *db)
{
	const char *keys[] = {"dbname", NULL};
	const char *vals[] = {db->conninfo, NULL};

	db->conn = PQconnectStartParams(keys, vals, 1);
	if (!db->conn)
		return conn_fail(db, "connect failed", "out of memory");
	if (PQstatus(db->conn) == CONNECTION_BAD)
		return conn_fail(db, "connect failed",
				 PQerrorMessage(db->conn));
	PQsetNoticeReceiver(db->conn, on_notice, db);
	db->state = DB_CONNECTING;
	uv_timer_stop(db->timer);
	uv_timer_start(db->timer, on_timer, DB_CONNECT_TIMEOUT_MS, 0);
	/* As if PQconnectPoll() had returned PGRES_POLLING_WRITING. */
	return poll_watch(db, UV_WRITABLE, 1);
}

static void
on_timer(uv_timer_t *h)
{
	struct db *db = h->data;

	if (db->state == DB_DOWN)
		conn_start(db);
	else if (db->state == DB_CONNECTING || db->state == DB_SETUP)
		conn_fail(db, "connect failed", "timed out");
}

/* ------------------------------------------------------------------ */
/* Rounds                                                               */
/* ------------------------------------------------------------------ */

static int
send_job(struct db *db, struct db_job *job)
{
	int i;

	for (i = 0; i < job->n; i++) {
		struct db_call *c = &job->calls[i];

		if (!PQsendQueryPrepared(db->conn, c->stmt, c->nparams,
					 c->values, c->lengths, c->formats,
					 c->binary_result))
			return BV_EIO;
	}
	return 0;
}

static int
send_simple(struct db *db, const char *sql)
{
	return PQsendQueryParams(db->conn, sql, 0, NULL, NULL, NULL, NULL, 0)
		       ? 0
		       : BV_EIO;
}

/*
 * Starts a round with up to max_jobs queued jobs, oldest first. Each job
 * that is not transactional, or is a solo retry, runs between two Syncs:
 * PostgreSQL runs such a span as one implicit transaction, rolled back by
 * the Sync if it fails. The other transactional jobs share one BEGIN …
 * COMMIT, sent last: a failed explicit block stays aborted past its Sync
 * (until ROLLBACK), which would fail whatever followed it in the pipeline.
 * Statements registered since the connection came up are prepared first.
 */
static int
round_start(struct db *db)
{
	struct db_job *job, *singles = NULL, **stail = &singles;
	size_t need = 0;
	unsigned taken;
	int nsingles = 0;

	/* Count first, so that running out of memory changes nothing. */
	if (db->nprepared < db->nstmts)
		need += (size_t)(db->nstmts - db->nprepared) + 1;
	for (job = db->queue.head, taken = 0; job && taken < db->max_jobs;
	     job = job->next, taken++)
		need += (size_t)job->n + 1;
	need += 4; /* BEGIN, COMMIT; ROLLBACK and its Sync after a failure */
	if (ent_reserve(db, need) < 0)
		return conn_fail(db, "round", "out of memory");

	if (db->nprepared < db->nstmts) {
		db->setup_failed = 0;
		if (send_prepares(db) < 0 || !PQpipelineSync(db->conn))
			return conn_fail(db, "prepare",
					 PQerrorMessage(db->conn));
		ent_push(db, ENT_SYNC_SETUP, 0, NULL);
	}

	/* Split first and push every expected result: a send error below
	 * fails exactly the jobs that were taken. */
	db->group_failed = 0;
	db->group_sqlstate[0] = '\0';
	db->group_n = 0;
	while (taken-- > 0) {
		job = list_pop(&db->queue);
		if (job->transactional && !job->solo) {
			job->grouped = 1;
			list_append(&db->group, job);
			db->group_n++;
		} else {
			*stail = job;
			stail = &job->next;
			nsingles++;
		}
	}
	for (job = singles; job; job = job->next) {
		int i;

		for (i = 0; i < job->n; i++)
			ent_push(db, ENT_STMT, i, job);
		ent_push(db, ENT_SYNC_JOB, 0, job);
	}
	if (db->group_n > 0) {
		ent_push(db, ENT_BEGIN, 0, NULL);
		for (job = db->group.head; job; job = job->next) {
			int i;

			for (i = 0; i < job->n; i++)
				ent_push(db, ENT_STMT, i, job);
		}
		ent_push(db, ENT_COMMIT, 0, NULL);
		ent_push(db, ENT_SYNC_GROUP, 0, NULL);
	}

	db->stats.rounds++;
	db->stats.transactions += (unsigned)nsingles + (db->group_n > 0);
	while (singles) {
		job = singles;
		singles = job->next;
		job->next = NULL;
		if (send_job(db, job) < 0 || !PQpipelineSync(db->conn))
			goto fail;
	}
	if (db->group_n > 0) {
		if (send_simple(db, "BEGIN") < 0)
			goto fail;
		for (job = db->group.head; job; job = job->next)
			if (send_job(db, job) < 0)
				goto fail;
		if (send_simple(db, "COMMIT") < 0 || !PQpipelineSync(db->conn))
			goto fail;
	}
	return conn_flush(db);
fail:
	return conn_fail(db, "send failed", PQerrorMessage(db->conn));
}

/*
 * Logs a failed statement or a notice without parameters. Data exceptions
 * (class 22) quote the offending input in their message, so only their
 * SQLSTATE is logged; DETAIL (which shows key values) never is.
 */
static void
log_sql_error(const char *what, const PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *cons = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
	const char *sev =
		PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);

	if (!state)
		state = "";
	if (!msg || strncmp(state, "22", 2) == 0)
		msg = "";
	bv_log(BV_LOG_INFO, "db: %s: %s SQLSTATE %s%s%s", what,
	       sev ? sev : "ERROR", state, cons ? " constraint " : "",
	       cons ? cons : "");
	if (*msg)
		bv_log(BV_LOG_DEBUG, "db: %s: %s", what, msg);
}

/*
 * Server notices (warnings, and the FATAL of a backend terminated while
 * idle) go to our log, filtered as errors are, not to libpq's stderr.
 */
static void
on_notice(void *arg, const PGresult *res)
{
	(void)arg;
	log_sql_error("server notice", res);
}

static void
copy_sqlstate(char dst[6], const PGresult *res)
{
	const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	size_t n = s ? strnlen(s, 5) : 0;

	memcpy(dst, s ? s : "", n);
	dst[n] = '\0';
}

static int
status_failed(ExecStatusType st)
{
	return st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK &&
	       st != PGRES_EMPTY_QUERY;
}

/* The grouped transaction ended: commit, retry alone, or fail its job. */
static int
group_done(struct db *db)
{
	struct db_list jobs = db->group;
	struct db_job *job;
	PGTransactionStatusType ts;

	db->group.head = db->group.tail = NULL;
	for (job = jobs.head; job; job = job->next)
		job->grouped = 0;
	if (!db->group_failed) {
		while ((job = list_pop(&jobs)))
			job_complete(db, job, 0);
		return 0;
	}
	/* An explicit block that failed before COMMIT stays aborted. */
	ts = PQtransactionStatus(db->conn);
	if (ts == PQTRANS_INERROR || ts == PQTRANS_INTRANS) {
		if (send_simple(db, "ROLLBACK") < 0 ||
		    !PQpipelineSync(db->conn))
			return conn_fail(db, "send failed",
					 PQerrorMessage(db->conn));
		ent_push(db, ENT_ROLLBACK, 0, NULL);
		ent_push(db, ENT_SYNC_ROLLBACK, 0, NULL);
		if (conn_flush(db) < 0)
			return BV_EUNAVAILABLE;
	}
	if (db->group_n > 1) {
		/* Not one of them is known to be bad: all go again, alone,
		 * ahead of everything queued meanwhile. */
		for (job = jobs.head; job; job = job->next) {
			job_reset(job);
			job->solo = 1;
			db->stats.solo_retries++;
		}
		list_concat(&jobs, &db->queue);
		db->queue = jobs;
		return 0;
	}
	job = list_pop(&jobs);
	if (!job->sqlstate[0])
		memcpy(job->sqlstate, db->group_sqlstate, 6);
	job_complete(db, job, BV_EINTERNAL);
	return 0;
}

/* A Sync arrived: the transaction before it is over. */
static int
on_sync(struct db *db, enum db_ent_kind kind, struct db_job *job)
{
	switch (kind) {
	case ENT_SYNC_JOB:
		job_complete(db, job, job->failed ? BV_EINTERNAL : 0);
		return 0;
	case ENT_SYNC_GROUP:
		return group_done(db);
	case ENT_SYNC_SETUP:
		if (db->setup_failed)
			return conn_fail(db, "setup failed",
					 "see the log lines above");
		if (db->state == DB_SETUP) {
			uv_timer_stop(db->timer);
			db->state = DB_UP;
			db->backoff_n = 0;
			if (db->ever_up)
				db->stats.reconnects++;
			db->ever_up = 1;
			bv_log(BV_LOG_NOTICE, "db: connected");
			if (db->on_state)
				db->on_state(1, db->arg);
		}
		return 0;
	default:
		return 0;
	}
}

/* Files one result (taking ownership) under the query it belongs to. */
static int
on_result(struct db *db, PGresult *res)
{
	struct db_ent *e = &db->ent[db->ent_head];
	ExecStatusType st = PQresultStatus(res);
	int failed = status_failed(st);
	struct db_job *job = e->job;
	enum db_ent_kind kind = e->kind;

	if (kind >= ENT_SYNC_JOB || st == PGRES_PIPELINE_SYNC) {
		PQclear(res);
		if (kind < ENT_SYNC_JOB || st != PGRES_PIPELINE_SYNC)
			return conn_fail(db, "protocol", "results out of step");
		ent_pop(db);
		return on_sync(db, kind, job);
	}
	db->head_got = 1;
	if (failed && st != PGRES_PIPELINE_ABORTED) {
		switch (kind) {
		case ENT_STMT:
			log_sql_error(job->calls[e->idx].stmt, res);
			break;
		case ENT_PREPARE:
			/* No parameters here; the message is the SQL's. */
			log_pq(BV_LOG_ERR, db->stmts[e->idx].name,
			       PQresultErrorMessage(res));
			break;
		case ENT_LISTEN:
			log_pq(BV_LOG_ERR, "LISTEN", PQresultErrorMessage(res));
			break;
		default:
			log_sql_error(kind == ENT_BEGIN	   ? "BEGIN"
				      : kind == ENT_COMMIT ? "COMMIT"
							   : "ROLLBACK",
				      res);
			break;
		}
	}
	switch (kind) {
	case ENT_STMT:
		if (failed) {
			if (!job->failed && st != PGRES_PIPELINE_ABORTED)
				copy_sqlstate(job->sqlstate, res);
			job->failed = 1;
			if (job->grouped)
				db->group_failed = 1;
		}
		/* A second result for one query only replaces on error. */
		if (!job->calls[e->idx].res || failed) {
			PQclear(job->calls[e->idx].res);
			job->calls[e->idx].res = res;
			res = NULL;
		}
		break;
	case ENT_BEGIN:
	case ENT_COMMIT:
		/* COMMIT of an aborted block succeeds saying ROLLBACK. */
		if (failed || strcmp(PQcmdStatus(res), "ROLLBACK") == 0) {
			if (!db->group_sqlstate[0] &&
			    st != PGRES_PIPELINE_ABORTED)
				copy_sqlstate(db->group_sqlstate, res);
			db->group_failed = 1;
		}
		break;
	case ENT_PREPARE:
	case ENT_LISTEN:
		if (failed)
			db->setup_failed = 1;
		break;
	default:
		break;
	}
	PQclear(res);
	return 0;
}

static void
drain_notifies(struct db *db)
{
	PGnotify *n;

	while (db->conn && (n = PQnotifies(db->conn))) {
		if (db->on_notify)
			db->on_notify(n->relname, n->extra ? n->extra : "",
				      db->arg);
		PQfreemem(n);
	}
}

/*
 * Reads what arrived and hands out every complete result. PQgetResult()
 * returns NULL after each query's results (not after a Sync's) and also
 * when nothing is ready; head_got tells the two apart.
 */
static int
conn_read(struct db *db)
{
	PGresult *res;
	int rc;

	if (!PQconsumeInput(db->conn))
		return conn_fail(db, "connection lost",
				 PQerrorMessage(db->conn));
	while (round_in_flight(db) && !PQisBusy(db->conn)) {
		res = PQgetResult(db->conn);
		if (!res) {
			if (!db->head_got)
				break;
			ent_pop(db);
			continue;
		}
		rc = on_result(db, res);
		if (rc < 0)
			return rc;
	}
	drain_notifies(db);
	if (PQstatus(db->conn) == CONNECTION_BAD)
		return conn_fail(db, "connection lost",
				 PQerrorMessage(db->conn));
	if (db->state == DB_UP && !round_in_flight(db) && db->queue.head)
		kick(db);
	return 0;
}

static void
on_poll(uv_poll_t *h, int status, int events)
{
	struct db *db = h->data;

	if (status < 0) {
		conn_fail(db, "socket error", uv_strerror(status));
		return;
	}
	if (db->state == DB_CONNECTING) {
		conn_poll(db);
		return;
	}
	if ((events & UV_WRITABLE) && conn_flush(db) < 0)
		return;
	if (events & UV_READABLE) {
		if (conn_read(db) < 0)
			return;
		/* Reading can let libpq send more; keep flushing. */
		if (db->want_write)
			conn_flush(db);
	}
}

/*
 * Fails the jobs set aside while down (the ones queued meanwhile wait for
 * the next iteration, so a callback that resubmits cannot spin here) and
 * starts a round when one is due.
 */
static void
on_idle(uv_idle_t *h)
{
	struct db *db = h->data;
	struct db_list fl = db->failq;
	struct db_job *job;

	db->failq.head = db->failq.tail = NULL;
	while ((job = list_pop(&fl)))
		job_complete(db, job, BV_EUNAVAILABLE);
	if (db->state == DB_UP && !round_in_flight(db) && db->queue.head)
		round_start(db);
	if (!db->failq.head &&
	    !(db->state == DB_UP && !round_in_flight(db) && db->queue.head))
		uv_idle_stop(h);
}

/* ------------------------------------------------------------------ */
/* Public                                                               */
/* ------------------------------------------------------------------ */

static void
db_destroy(struct db *db)
{
	int i;

	for (i = 0; i < db->nstmts; i++) {
		bv_free(db->stmts[i].name);
		bv_free(db->stmts[i].sql);
	}
	bv_free(db->stmts);
	for (i = 0; i < db->nlisten; i++)
		bv_free(db->listen[i]);
	bv_free(db->listen);
	bv_free(db->conninfo);
	bv_free(db->session_sql);
	bv_free(db->ent);
	bv_free(db->timer);
	bv_free(db->idle);
	bv_free(db);
}

struct db *
db_new(uv_loop_t *loop, const struct db_opts *opts)
{
	struct db *db;
	int n = 0;

	if (!loop || !opts)
		return NULL;
	db = bv_calloc(1, sizeof(*db));
	if (!db)
		return NULL;
	db->loop = loop;
	db->state = DB_DOWN;
	db->on_notify = opts->on_notify;
	db->on_state = opts->on_state;
	db->arg = opts->arg;
	db->max_jobs = opts->max_jobs_per_round ? opts->max_jobs_per_round
						: DB_DEFAULT_JOBS_PER_ROUND;
	db->reconnect_min = opts->reconnect_min_ms ? opts->reconnect_min_ms
						   : DB_DEFAULT_RECONNECT_MIN;
	db->reconnect_max = opts->reconnect_max_ms ? opts->reconnect_max_ms
						   : DB_DEFAULT_RECONNECT_MAX;
	if (db->reconnect_max < db->reconnect_min)
		db->reconnect_max = db->reconnect_min;
	db->rng = uv_hrtime() ^ (uint64_t)(uintptr_t)db;
	if (!db->rng)
		db->rng = 1;
	db->conninfo = bv_strdup(opts->conninfo ? opts->conninfo : "");
	if (opts->session_sql) {
		db->session_sql = bv_strdup(opts->session_sql);
		if (!db->session_sql)
			goto fail;
	}
	while (opts->listen && opts->listen[n])
		n++;
	db->listen = bv_calloc((size_t)n + 1, sizeof(char *));
	db->timer = bv_malloc(sizeof(*db->timer));
	db->idle = bv_malloc(sizeof(*db->idle));
	if (!db->conninfo || !db->listen || !db->timer || !db->idle)
		goto fail;
	for (db->nlisten = 0; db->nlisten < n; db->nlisten++) {
		db->listen[db->nlisten] = bv_strdup(opts->listen[db->nlisten]);
		if (!db->listen[db->nlisten])
			goto fail;
	}
	uv_timer_init(loop, db->timer);
	uv_idle_init(loop, db->idle);
	db->timer->data = db;
	db->idle->data = db;
	/* A failure here only schedules the next attempt. */
	conn_start(db);
	return db;
fail:
	db_destroy(db);
	return NULL;
}

int
db_prepare(struct db *db, const char *name, const char *sql, int nparams)
{
	struct db_stmt_def *s;
	char *n, *q;

	if (!db || !name || !sql || nparams < 0)
		return BV_EINVAL;
	if (db->nstmts == db->stmts_cap) {
		int cap = db->stmts_cap ? db->stmts_cap * 2 : 8;

		s = bv_realloc(db->stmts, (size_t)cap * sizeof(*s));
		if (!s)
			return BV_ENOMEM;
		db->stmts = s;
		db->stmts_cap = cap;
	}
	n = bv_strdup(name);
	q = bv_strdup(sql);
	if (!n || !q) {
		bv_free(n);
		bv_free(q);
		return BV_ENOMEM;
	}
	s = &db->stmts[db->nstmts++];
	s->name = n;
	s->sql = q;
	s->nparams = nparams;
	/* Already connected: prepared at the start of the next round. */
	return 0;
}

int
db_is_up(const struct db *db)
{
	return db && db->state == DB_UP;
}

size_t
db_pending(const struct db *db)
{
	return db ? db->pending : 0;
}

/*
 * Jobs are failed (still from the loop) while the connection is not up,
 * including while it is being established. Inside db_free() nothing can be
 * queued: the job is freed and BV_ESHUTDOWN returned, cb never called.
 */
int
db_submit(struct db *db, struct db_job *job, db_done_cb cb, void *arg)
{
	if (!job)
		return BV_EINVAL;
	if (!db || job->n == 0) {
		db_job_free(job);
		return BV_EINVAL;
	}
	if (db->state == DB_CLOSING) {
		db_job_free(job);
		return BV_ESHUTDOWN;
	}
	job->cb = cb;
	job->arg = arg;
	job->solo = 0;
	job->grouped = 0;
	job_reset(job);
	db->pending++;
	db->stats.jobs++;
	if (db->state != DB_UP) {
		list_append(&db->failq, job);
		kick(db);
		return 0;
	}
	list_append(&db->queue, job);
	if (!round_in_flight(db))
		kick(db);
	return 0;
}

/*
 * Pending jobs get BV_EUNAVAILABLE synchronously, in submission order as
 * far as it is known. Callbacks must not call db_free(). The handles close
 * asynchronously and free themselves: the caller runs the loop afterwards
 * (uv_run() until it has no active handles) before uv_loop_close().
 * on_state is not called.
 */
void
db_free(struct db *db)
{
	struct db_list all = {NULL, NULL};
	struct db_job *job;

	if (!db)
		return;
	db->state = DB_CLOSING;
	take_in_flight(db, &all);
	list_concat(&all, &db->failq);
	list_concat(&all, &db->queue);
	poll_close(db);
	PQfinish(db->conn);
	db->conn = NULL;
	while ((job = list_pop(&all))) {
		job_reset(job);
		job_complete(db, job, BV_EUNAVAILABLE);
	}
	uv_close((uv_handle_t *)db->timer, free_handle);
	uv_close((uv_handle_t *)db->idle, free_handle);
	db->timer = NULL;
	db->idle = NULL;
	db_destroy(db);
}

/*
 * rounds: rounds sent. transactions: transactions sent (a group counts
 * once, each job run alone once). jobs: jobs accepted by db_submit().
 * solo_retries: jobs run again alone after their group failed. reconnects:
 * connections that came up after the first. failures: callbacks with a
 * non-zero rc.
 */
void
db_get_stats(const struct db *db, struct db_stats *out)
{
	if (!out)
		return;
	if (db)
		*out = db->stats;
	else
		memset(out, 0, sizeof(*out));
}
