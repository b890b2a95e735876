/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 34-tasks: staff tasks end to end (migrations/0011, docs/fagsystem-api.md
 * "Tasks over FIKS IO"): a real relay and PostgreSQL, a real
 * bvchat-notifier with a stepped clock (--clock-file), a local FIKS IO
 * (RabbitMQ and the development server). A citizen writes to a case
 * conversation; past the tenant's limit exactly one task arrives on the
 * fagsystem's account, decrypts, matches docs/schemas/
 * oppgave-ubesvart.v1.schema.json and carries none of the message's
 * canaries; a staff reply in time raises none; a citizen message after an
 * answer raises a new one; a notifier killed between its send and its
 * record sends the same task (same klientMeldingId) again and records one.
 */
#define _GNU_SOURCE
#include <regex.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>

#include <libpq-fe.h>

#include "bv_util.h"
#include "bvtest.h"
#include "bvtest_fiks.h"
#include "fiks_error.h"
#include "fiks_io.h"
#include "internal.h"

#ifndef BV_NOTIFIER_BIN
#define BV_NOTIFIER_BIN "bvchat-notifier"
#endif
#ifndef BV_SCHEMA_DIR
#define BV_SCHEMA_DIR "docs/schemas"
#endif

#define MIN	  (60 * 1000LL)
#define CANARY	  "CANARY-task-Vb8q"
#define TASK_TYPE "no.bvchat.oppgave.ubesvart.v1"
#define LINK	  "https://fag.example/bvchat/{case}/{conversation}"

enum { SENDER, FAGSYSTEM }; /* the FIKS IO accounts */

static struct bvt_env env;
static struct bvt_fiks fk;
static struct fiks_client *fag; /* the fagsystem, reading its queue */
static char dir[64], clock_path[128], kase[64];
static struct bvt_dev cw; /* the caseworker */
static pid_t notifier;
static json_t *schema;

/* ------------------------------------------------------------ processes */

static int
write_text(const char *path, const char *s)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -1;
	fputs(s, f);
	return fclose(f);
}

/* The wall clock: the relay stamps sends with it. */
static int64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
set_clock(int64_t ms)
{
	char tmp[160], s[32];

	snprintf(tmp, sizeof(tmp), "%s.tmp", clock_path);
	snprintf(s, sizeof(s), "%lld\n", (long long)ms);
	assert_int_equal(write_text(tmp, s), 0);
	assert_int_equal(rename(tmp, clock_path), 0);
}

static int
start_notifier(void)
{
	char conf[128], log[128], text[2048];
	char *argv[] = {BV_NOTIFIER_BIN, "-c",	     conf,
			"--clock-file",	 clock_path, NULL};
	pid_t pid;

	snprintf(conf, sizeof(conf), "%s/notifier.conf", dir);
	snprintf(log, sizeof(log), "%s/notifier.log", dir);
	snprintf(text, sizeof(text),
		 "database \"%s\"\nlog_level info\nnotify_poll_ms 50\n"
		 "notify_backoff_s 1\nnotify_backoff_max_s 5\n"
		 "notify_lease_s 10\nnotify_timeout_ms 10000\n"
		 "task_fiks_config %s\ntask_link %s\n",
		 env.db, fk.acct[SENDER].config, LINK);
	if (write_text(conf, text) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		FILE *f = fopen(log, "a");

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (f) {
			dup2(fileno(f), 1);
			dup2(fileno(f), 2);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	notifier = pid;
	return pid > 0 ? 0 : -1;
}

static void
stop_notifier(int sig)
{
	int st;

	if (notifier <= 0)
		return;
	kill(notifier, sig);
	if (bvt__reap(notifier, bvt_ms(10000), &st) != 0) {
		kill(notifier, SIGKILL);
		bvt__reap(notifier, bvt_ms(10000), &st);
	}
	notifier = 0;
}

static void
print_log(void)
{
	char path[160];
	char *s;

	snprintf(path, sizeof(path), "%s/notifier.log", dir);
	s = bvt_file_read(path, NULL);
	if (s) {
		size_t n = strlen(s);

		fprintf(stderr, "----- notifier.log -----\n%s\n",
			n > 6000 ? s + n - 6000 : s);
		free(s);
	}
}

static int
admin(char *out, size_t cap, const char *const *args)
{
	return bvt_admin(env.db, out, cap, args);
}

static long long
sql_int(const char *sql, const char *p1)
{
	const char *params[1] = {p1};

	return bvt_sql_int(env.db, sql, p1 ? 1 : 0, params);
}

static int
setup(void **state)
{
	struct fiks_config fc;
	char err[256], path[160];
	const char *cc[] = {"case-create",   "--tenant",  env.tenant.id,
			    "--case-number", "2026/0734", NULL};
	const char *tt[] = {
		"task-tenant", "--tenant",     env.tenant.id, "--after-minutes",
		"60",	       "--fiks-konto", NULL,	      NULL};
	const char *ra[] = {
		"roster-add", "--case",	    "",	      "--account",     "",
		"--role",     "caseworker", "--name", "Saksbehandler", NULL};

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/bvt-tasks-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	bvt__watchdog("D %s", dir);
	snprintf(clock_path, sizeof(clock_path), "%s/clock", dir);
	snprintf(path, sizeof(path), "%s/oppgave-ubesvart.v1.schema.json",
		 BV_SCHEMA_DIR);
	schema = json_load_file(path, 0, NULL);
	if (!schema)
		return -1;
	if (bvt_env_init(&env, NULL) < 0 || bvt_fiks_start(&fk, 2) != 0)
		return -1;
	cc[2] = env.tenant.id;
	tt[2] = env.tenant.id;
	tt[6] = fk.acct[FAGSYSTEM].konto;
	if (admin(kase, sizeof(kase), cc) != 0 || admin(NULL, 0, tt) != 0)
		return -1;
	if (bvt_new_account(env.relay.port, &env.tenant, &cw) < 0)
		return -1;
	ra[2] = kase;
	ra[4] = cw.account;
	if (admin(NULL, 0, ra) != 0)
		return -1;
	if (fiks_config_load(fk.acct[FAGSYSTEM].config, &fc, err, sizeof(err)) <
		    0 ||
	    fiks_client_new(&fc, &fag) < 0) {
		fprintf(stderr, "fagsystem client: %s\n", err);
		return -1;
	}
	fiks_config_free(&fc);
	set_clock(wall_ms());
	return start_notifier();
}

static int
teardown(void **state)
{
	(void)state;
	if (getenv("BVT_TASK_LOGS"))
		print_log();
	stop_notifier(SIGTERM);
	fiks_client_free(fag);
	bvt_fiks_stop(&fk);
	bvt_env_cleanup(&env);
	json_decref(schema);
	return 0;
}

/* ----------------------------------------------------------------- world */

/* A citizen of the case (a child) and the team conversation with them. */
struct world {
	struct bvt_dev citizen;
	char conv[64];
};

static void
make_world(struct world *w)
{
	const char *ra[] = {"roster-add", "--case", kase,    "--account",
			    NULL,	  "--role", "child", "--name",
			    "Barn",	  NULL};
	const char *cc[] = {"conversation-create",
			    "--case",
			    kase,
			    "--by",
			    cw.account,
			    "--kind",
			    "team",
			    "--members",
			    NULL,
			    NULL};

	memset(w, 0, sizeof(*w));
	assert_int_equal(
		bvt_new_account(env.relay.port, &env.tenant, &w->citizen), 0);
	ra[4] = w->citizen.account;
	assert_int_equal(admin(NULL, 0, ra), 0);
	cc[8] = w->citizen.account;
	assert_int_equal(admin(w->conv, sizeof(w->conv), cc), 0);
	assert_true(bv_uuid_valid(w->conv));
}

/* from writes one message (not partial) to the other side; returns when
 * the relay has committed it. */
static void
say(const struct world *w, int staff, const char *mid)
{
	const struct bvt_dev *from = staff ? &cw : &w->citizen;
	const struct bvt_dev *to = staff ? &w->citizen : &cw;
	struct bvt_conn *c = bvt_online(env.relay.port, from);
	char body[128];
	json_t *envs = json_array(), *r;

	assert_non_null(c);
	snprintf(body, sizeof(body), "%s %s", CANARY, mid);
	json_array_append_new(envs, bvt_envelope(to, 3, body, strlen(body)));
	r = bvt_request(c, json_pack("{s:s, s:s, s:s, s:o, s:b}", "op", "send",
				     "conversation", w->conv, "message_id", mid,
				     "envelopes", envs, "partial", 0));
	if (!bvt_ok(r))
		fail_msg("send: %s", bvt_js(r));
	json_decref(r);
	bvt_conn_free(c);
}

static void
settle(void)
{
	bvt_sleep_ms(500);
}

/* --------------------------------------------------------------- schema */

/*
 * value against schema: the subset of JSON Schema 2020-12 our schema uses
 * (type object/string/integer, properties, required, additionalProperties
 * false, pattern as POSIX extended regex, minLength, maxLength, minimum,
 * maximum; format and the annotations are not checked). A keyword outside
 * it fails, so the schema cannot drift past what is checked. 0 or -1 with
 * why in err.
 */
static int
validate(const json_t *s, const json_t *v, const char *at, char *err,
	 size_t cap)
{
	const char *k;
	json_t *sv;

	json_object_foreach((json_t *)s, k, sv)
	{
		if (!strcmp(k, "$schema") || !strcmp(k, "$id") ||
		    !strcmp(k, "title") || !strcmp(k, "description") ||
		    !strcmp(k, "format") || !strcmp(k, "properties") ||
		    !strcmp(k, "required"))
			continue;
		if (!strcmp(k, "type")) {
			const char *t = json_string_value(sv);
			int ok = !strcmp(t, "object")	 ? json_is_object(v)
				 : !strcmp(t, "string")	 ? json_is_string(v)
				 : !strcmp(t, "integer") ? json_is_integer(v)
							 : 0;

			if (!ok) {
				snprintf(err, cap, "%s: not %s", at, t);
				return -1;
			}
		} else if (!strcmp(k, "additionalProperties")) {
			const char *m;
			json_t *x;

			assert_true(json_is_false(sv));
			json_object_foreach((json_t *)v, m, x)
			{
				(void)x;
				if (!json_object_get(
					    json_object_get(s, "properties"),
					    m)) {
					snprintf(err, cap, "%s: extra %s", at,
						 m);
					return -1;
				}
			}
		} else if (!strcmp(k, "pattern")) {
			regex_t re;
			int rc;

			assert_int_equal(regcomp(&re, json_string_value(sv),
						 REG_EXTENDED | REG_NOSUB),
					 0);
			rc = regexec(&re, json_string_value(v), 0, NULL, 0);
			regfree(&re);
			if (rc != 0) {
				snprintf(err, cap, "%s: does not match", at);
				return -1;
			}
		} else if (!strcmp(k, "minLength") || !strcmp(k, "maxLength")) {
			size_t n = strlen(json_string_value(v));
			json_int_t lim = json_integer_value(sv);

			if (k[1] == 'i' ? (json_int_t)n < lim
					: (json_int_t)n > lim) {
				snprintf(err, cap, "%s: %s", at, k);
				return -1;
			}
		} else if (!strcmp(k, "minimum") || !strcmp(k, "maximum")) {
			json_int_t n = json_integer_value(v);
			json_int_t lim = json_integer_value(sv);

			if (k[1] == 'i' ? n < lim : n > lim) {
				snprintf(err, cap, "%s: %s", at, k);
				return -1;
			}
		} else {
			fail_msg("schema keyword %s is not checked here", k);
		}
	}
	{
		size_t i;
		json_t *r;

		json_array_foreach(json_object_get(s, "required"), i, r)
		{
			if (!json_object_get(v, json_string_value(r))) {
				snprintf(err, cap, "%s: no %s", at,
					 json_string_value(r));
				return -1;
			}
		}
	}
	json_object_foreach(json_object_get(s, "properties"), k, sv)
	{
		json_t *x = json_object_get(v, k);
		char sub[64];

		snprintf(sub, sizeof(sub), "%s.%s", at, k);
		if (x && validate(sv, x, sub, err, cap) < 0)
			return -1;
	}
	return 0;
}

/* ------------------------------------------------------------- the queue */

struct got {
	char klient_melding_id[FIKS_HEADER_VALUE_MAX + 1];
	char melding_id[FIKS_UUID_LEN + 1];
	json_t *task; /* oppgave.json */
};

/* The next message on the fagsystem's queue within timeout_ms: checked
 * (type, sender, package, schema, no canary), acknowledged. 0, or -1 when
 * none came. */
static int
next_task(int timeout_ms, struct got *g)
{
	struct fiks_melding *m = NULL;
	struct fiks_asice *a = NULL;
	const struct fiks_file *f;
	char err[256];
	int rc;

	memset(g, 0, sizeof(*g));
	rc = fiks_receive(fag, timeout_ms, &m);
	if (rc == FIKS_ETIMEOUT)
		return -1;
	if (rc != 0)
		fail_msg("fiks_receive: %s", fiks_errname(rc));
	assert_string_equal(m->type, TASK_TYPE);
	assert_string_equal(m->avsender, fk.acct[SENDER].konto);
	assert_string_equal(m->mottaker, fk.acct[FAGSYSTEM].konto);
	/* Encrypted on the wire: no canary, no case number in clear. */
	assert_false(
		bvt_mem_contains(m->body, m->body_len, CANARY, strlen(CANARY)));
	assert_false(bvt_mem_contains(m->body, m->body_len, "2026/0734", 9));
	rc = fiks_open(fag, m, NULL, &a, err, sizeof(err));
	if (rc != 0)
		fail_msg("fiks_open: %s %s", fiks_errname(rc), err);
	assert_int_equal(fiks_asice_count(a), 1);
	f = fiks_asice_find(a, "oppgave.json");
	assert_non_null(f);
	assert_string_equal(f->mime, "application/json");
	assert_false(bvt_mem_contains(f->data, f->len, CANARY, strlen(CANARY)));
	assert_false(bvt_mem_contains(f->data, f->len, "Barn", 4));
	assert_false(bvt_mem_contains(f->data, f->len, "Saksbehandler", 13));
	g->task = json_loadb((const char *)f->data, f->len,
			     JSON_REJECT_DUPLICATES, NULL);
	assert_non_null(g->task);
	if (validate(schema, g->task, "$", err, sizeof(err)) < 0)
		fail_msg("schema: %s in %s", err, bvt_js(g->task));
	assert_string_equal(
		m->klient_melding_id,
		json_string_value(json_object_get(g->task, "task")));
	snprintf(g->klient_melding_id, sizeof(g->klient_melding_id), "%s",
		 m->klient_melding_id);
	snprintf(g->melding_id, sizeof(g->melding_id), "%s", m->melding_id);
	assert_int_equal(fiks_ack(fag, m), 0);
	fiks_asice_free(a);
	fiks_melding_free(m);
	return 0;
}

static void
must_get(struct got *g)
{
	if (next_task(bvt_ms(BVT_TIMEOUT), g) < 0) {
		print_log();
		fail_msg("no task arrived");
	}
}

static void
nothing_more(void)
{
	struct got g;

	if (next_task(bvt_ms(1000), &g) == 0)
		fail_msg("an unexpected task: %s", bvt_js(g.task));
}

static const char *
member(const struct got *g, const char *k)
{
	return json_string_value(json_object_get(g->task, k));
}

static void
rfc3339(int64_t ms, char out[32])
{
	char buf[96];
	time_t s = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&s, &tm);
	snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (int)(ms % 1000));
	snprintf(out, 32, "%.31s", buf);
}

/* ----------------------------------------------------------------- tests */

static void
t_task_raised(void **state)
{
	struct world w;
	struct got g;
	char since[32], link[200];
	int64_t t0, since_ms;

	(void)state;
	make_world(&w);
	t0 = wall_ms();
	set_clock(t0);
	say(&w, 0, "m1");
	say(&w, 0, "m2");
	assert_int_equal(sql_int("SELECT messages FROM task_unanswered WHERE "
				 "conversation_id = $1::uuid",
				 w.conv),
			 2);
	since_ms = sql_int("SELECT since_ms FROM task_unanswered WHERE "
			   "conversation_id = $1::uuid",
			   w.conv);
	assert_true(since_ms >= t0 - 1000);
	/* Within the hour: nothing. */
	set_clock(t0 + 30 * MIN);
	nothing_more();
	set_clock(t0 + 61 * MIN);
	must_get(&g);
	assert_string_equal(member(&g, "conversation"), w.conv);
	assert_string_equal(member(&g, "case"), kase);
	assert_string_equal(member(&g, "case_number"), "2026/0734");
	assert_string_equal(member(&g, "tenant"), env.tenant.id);
	rfc3339(since_ms, since);
	assert_string_equal(member(&g, "since"), since);
	assert_int_equal(
		json_integer_value(json_object_get(g.task, "unanswered")), 2);
	assert_int_equal(
		json_integer_value(json_object_get(g.task, "after_minutes")),
		60);
	snprintf(link, sizeof(link), "https://fag.example/bvchat/%s/%s", kase,
		 w.conv);
	assert_string_equal(member(&g, "link"), link);
	json_decref(g.task);
	/* Exactly one: later rounds, a later citizen message in the same
	 * stretch, nothing new. */
	say(&w, 0, "m3");
	set_clock(t0 + 300 * MIN);
	nothing_more();
	assert_int_equal(sql_int("SELECT count(*) FROM tasks_raised WHERE "
				 "conversation_id = $1::uuid AND answered_at "
				 "IS NULL",
				 w.conv),
			 1);
	/* The reply answers it. */
	say(&w, 1, "r1");
	assert_int_equal(sql_int("SELECT count(*) FROM task_unanswered WHERE "
				 "conversation_id = $1::uuid",
				 w.conv),
			 0);
	assert_int_equal(sql_int("SELECT count(*) FROM tasks_raised WHERE "
				 "conversation_id = $1::uuid AND answered_at "
				 "IS NOT NULL",
				 w.conv),
			 1);
}

static void
t_answered_in_time(void **state)
{
	struct world w;
	int64_t t0;

	(void)state;
	make_world(&w);
	t0 = wall_ms();
	set_clock(t0);
	say(&w, 0, "q1");
	say(&w, 1, "a1");
	set_clock(t0 + 61 * MIN);
	nothing_more();
	set_clock(t0 + 600 * MIN);
	nothing_more();
	assert_int_equal(sql_int("SELECT count(*) FROM tasks_raised WHERE "
				 "conversation_id = $1::uuid",
				 w.conv),
			 0);
	/* Staff writing first opens nothing either. */
	say(&w, 1, "a2");
	assert_int_equal(sql_int("SELECT count(*) FROM task_unanswered WHERE "
				 "conversation_id = $1::uuid",
				 w.conv),
			 0);
}

static void
t_new_stretch(void **state)
{
	struct world w;
	struct got g1, g2;
	int64_t t0, s2;

	(void)state;
	make_world(&w);
	t0 = wall_ms();
	set_clock(t0);
	say(&w, 0, "s1");
	set_clock(t0 + 61 * MIN);
	must_get(&g1);
	/* Back to the send times, so the new stretch is not due at once. */
	set_clock(t0);
	settle();
	say(&w, 1, "s1-answer");
	bvt_sleep_ms(5); /* a later send time */
	say(&w, 0, "s2");
	s2 = sql_int("SELECT since_ms FROM task_unanswered WHERE "
		     "conversation_id = $1::uuid",
		     w.conv);
	assert_true(s2 > t0);
	/* The new stretch waits its own hour. */
	set_clock(s2 + 59 * MIN);
	nothing_more();
	set_clock(s2 + 61 * MIN);
	must_get(&g2);
	assert_string_equal(member(&g2, "conversation"), w.conv);
	assert_string_not_equal(g1.klient_melding_id, g2.klient_melding_id);
	assert_int_equal(
		json_integer_value(json_object_get(g2.task, "unanswered")), 1);
	assert_true(strcmp(member(&g2, "since"), member(&g1, "since")) > 0);
	json_decref(g1.task);
	json_decref(g2.task);
	assert_int_equal(sql_int("SELECT count(*) FROM tasks_raised WHERE "
				 "conversation_id = $1::uuid",
				 w.conv),
			 2);
	nothing_more();
}

/* Killed after the send, before the record: the same task again. */
static void
t_crash_resend(void **state)
{
	struct world w;
	struct got g1, g2;
	PGconn *lock;
	PGresult *res;
	int64_t t0;

	(void)state;
	make_world(&w);
	t0 = wall_ms();
	set_clock(t0);
	say(&w, 0, "k1");
	/* The notifier's record waits on this lock; its send does not. */
	lock = PQconnectdb(env.db);
	assert_int_equal(PQstatus(lock), CONNECTION_OK);
	res = PQexec(lock, "BEGIN; LOCK TABLE tasks_raised IN SHARE MODE");
	assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
	PQclear(res);
	set_clock(t0 + 61 * MIN);
	must_get(&g1);
	settle(); /* now waiting in its record */
	stop_notifier(SIGKILL);
	res = PQexec(lock, "COMMIT");
	PQclear(res);
	PQfinish(lock);
	assert_int_equal(sql_int("SELECT count(*) FROM tasks_raised WHERE "
				 "conversation_id = $1::uuid",
				 w.conv),
			 0);
	assert_int_equal(start_notifier(), 0);
	/* Leased: not before notify_lease_s (10 s). */
	nothing_more();
	set_clock(t0 + 61 * MIN + 11000);
	must_get(&g2);
	assert_string_equal(g1.klient_melding_id, g2.klient_melding_id);
	assert_string_equal(member(&g1, "task"), member(&g2, "task"));
	assert_string_not_equal(g1.melding_id, g2.melding_id);
	json_decref(g1.task);
	json_decref(g2.task);
	{
		int64_t deadline = bvt_now_ms() + bvt_ms(BVT_TIMEOUT);

		while (sql_int("SELECT count(*) FROM tasks_raised WHERE "
			       "conversation_id = $1::uuid",
			       w.conv) != 1 &&
		       bvt_now_ms() < deadline)
			bvt_sleep_ms(50);
	}
	assert_int_equal(sql_int("SELECT attempts FROM tasks_raised WHERE "
				 "conversation_id = $1::uuid",
				 w.conv),
			 2);
	set_clock(t0 + 200 * MIN);
	nothing_more();
}

/* Nothing of the messages in the database's task tables or the log. */
static void
t_no_canary(void **state)
{
	char path[160];
	size_t len;
	char *s;

	(void)state;
	snprintf(path, sizeof(path), "%s/notifier.log", dir);
	s = bvt_file_read(path, &len);
	assert_non_null(s);
	assert_false(bvt_mem_contains(s, len, CANARY, strlen(CANARY)));
	free(s);
	s = bvt_pg_dump(env.db, &len);
	assert_non_null(s);
	assert_false(bvt_mem_contains(s, len, CANARY, strlen(CANARY)));
	free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_task_raised),
		cmocka_unit_test(t_answered_in_time),
		cmocka_unit_test(t_new_stretch),
		cmocka_unit_test(t_crash_resend),
		cmocka_unit_test(t_no_canary),
	};
	int failures;

	failures =
		cmocka_run_group_tests_name("34-tasks", tests, setup, teardown);
	return bvt_done(failures);
}
