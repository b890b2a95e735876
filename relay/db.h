/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * db.h: one PostgreSQL connection driven without blocking from the relay's
 * libuv loop, with group commit.
 *
 * Callers build jobs (one or more statements) and submit them. The
 * connection works in rounds: all transactional jobs waiting when a round
 * starts share one BEGIN … COMMIT (group commit), then each other job runs
 * in its own implicit transaction; every statement goes out in libpq's
 * pipeline mode, so a round costs one round trip and one fsync. A new round
 * starts when every result of the previous one is in. If a grouped
 * transaction fails, each of its jobs is run again alone, so one bad job
 * cannot fail its neighbours.
 *
 * A job's callback runs exactly once, from the loop, never from inside
 * db_submit(). It is the only place results can be read. Nothing here
 * blocks: connecting, reconnecting (with backoff) and LISTEN are async.
 */
#ifndef BV_RELAY_DB_H
#define BV_RELAY_DB_H

#include <stddef.h>
#include <libpq-fe.h>
#include <uv.h>

struct db;
struct db_job;

/*
 * Called once per job. rc is 0 when every statement succeeded (and, for a
 * transactional job, its transaction committed); BV_EUNAVAILABLE when the
 * connection was down or was lost before the outcome was known (a commit
 * may or may not have happened); BV_EINTERNAL when a statement failed: then
 * db_job_sqlstate() says why. The job is freed after the callback returns.
 */
typedef void (*db_done_cb)(struct db_job *job, int rc, void *arg);

/* Called for every NOTIFY on a channel listed in db_opts. */
typedef void (*db_notify_cb)(const char *channel, const char *payload,
			     void *arg);

/* Called when the connection comes up (up = 1) or goes down (up = 0). */
typedef void (*db_state_cb)(int up, void *arg);

struct db_opts {
	const char *conninfo;	     /* libpq connection string */
	const char *const *listen;   /* NULL-terminated channel names */
	db_notify_cb on_notify;	     /* may be NULL */
	db_state_cb on_state;	     /* may be NULL */
	void *arg;		     /* passed to on_notify / on_state */
	unsigned max_jobs_per_round; /* 0 = 256 */
	unsigned reconnect_min_ms;   /* 0 = 100 */
	unsigned reconnect_max_ms;   /* 0 = 5000 */
	const char *session_sql;     /* run on every (re)connect; NULL */
};

/*
 * Creates the connection object and starts connecting. Copies opts and its
 * strings. Returns NULL on ENOMEM.
 */
struct db *db_new(uv_loop_t *loop, const struct db_opts *opts);

/*
 * Registers a prepared statement, prepared on every (re)connect before any
 * job runs. Call before the first db_submit(). Returns 0 or BV_ENOMEM.
 */
int db_prepare(struct db *db, const char *name, const char *sql, int nparams);

/* 1 when connected and prepared, else 0. */
int db_is_up(const struct db *db);

/* Jobs submitted whose callbacks have not run yet. */
size_t db_pending(const struct db *db);

/*
 * Closes the connection and frees db. Jobs still pending get their callback
 * with BV_EUNAVAILABLE first, synchronously. Safe with NULL. Must not be
 * called from a db callback. Handles close asynchronously: run the loop
 * afterwards until it has no active handles, before uv_loop_close().
 */
void db_free(struct db *db);

/* A new job; transactional jobs may share one transaction (group commit). */
struct db_job *db_job_new(int transactional);

/* Frees a job that was never submitted (after db_job_add() failed). */
void db_job_free(struct db_job *job);

/*
 * Appends a statement: stmt is the name of a statement registered with
 * db_prepare(). values/lengths/formats follow PQexecParams (lengths and
 * formats may be NULL for all-text); they are copied. Results come in
 * binary when binary_result is 1. Returns 0 or BV_ENOMEM.
 */
int db_job_add(struct db_job *job, const char *stmt, int nparams,
	       const char *const *values, const int *lengths,
	       const int *formats, int binary_result);

/* Statement count of a job. */
int db_job_count(const struct db_job *job);

/*
 * Queues job (ownership passes to db) and arranges for cb to be called.
 * When the connection is down cb is called with BV_EUNAVAILABLE on the next
 * loop iteration. Returns 0, or BV_EINVAL for an empty job (then the job is
 * freed and cb is never called).
 */
int db_submit(struct db *db, struct db_job *job, db_done_cb cb, void *arg);

/* Result of statement i (0-based) of job, valid only inside its callback. */
PGresult *db_job_result(struct db_job *job, int i);

/* SQLSTATE of the first failed statement ("" if none), inside callback. */
const char *db_job_sqlstate(const struct db_job *job);

/* Counters for /metrics. */
struct db_stats {
	unsigned long long rounds;
	unsigned long long transactions;
	unsigned long long jobs;
	unsigned long long solo_retries;
	unsigned long long reconnects;
	unsigned long long failures;
};
void db_get_stats(const struct db *db, struct db_stats *out);

#endif
