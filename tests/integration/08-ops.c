/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 08-ops: what an operator relies on: /healthz, /metrics in Prometheus text
 * format, a clean stop on SIGTERM while sends are in flight (every answered
 * send stored, exit 0, connections closed with 1001), refusing to start on
 * an unmigrated database, and --migrate being repeatable.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "bvtest.h"

static struct bvt_env env;

static long long
count(const char *table)
{
	char sql[128];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
	return bvt_sql_int(env.db, sql, 0, NULL);
}

static int
setup(void **state)
{
	(void)state;
	return bvt_env_init(&env, NULL);
}

static int
teardown(void **state)
{
	(void)state;
	bvt_env_cleanup(&env);
	return 0;
}

static void
t_healthz(void **state)
{
	char *body = NULL;

	(void)state;
	assert_int_equal(bvt_http_get(env.relay.port, "/healthz",
				      bvt_ms(BVT_TIMEOUT), &body),
			 200);
	assert_non_null(body);
	assert_int_equal(strncmp(body, "ok", 2), 0);
	free(body);
}

/* The value of an unlabelled sample, or -1. */
static double
sample(const char *text, const char *name)
{
	const char *p = text;
	size_t n = strlen(name);

	while ((p = strstr(p, name))) {
		if ((p == text || p[-1] == '\n') && p[n] == ' ')
			return strtod(p + n + 1, NULL);
		p += n;
	}
	return -1;
}

static void
check_exposition(const char *text)
{
	const char *line = text;
	int types = 0, samples = 0;

	while (*line) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		char buf[512];

		if (len >= sizeof(buf))
			fail_msg("metrics line too long");
		memcpy(buf, line, len);
		buf[len] = '\0';
		if (!strncmp(buf, "# TYPE ", 7)) {
			char name[200], type[32];

			if (sscanf(buf + 7, "%199s %31s", name, type) != 2)
				fail_msg("bad TYPE line: %s", buf);
			if (strncmp(name, "bvchat_", 7) != 0)
				fail_msg("metric without bvchat_: %s", buf);
			if (strcmp(type, "counter") && strcmp(type, "gauge") &&
			    strcmp(type, "histogram") &&
			    strcmp(type, "summary") && strcmp(type, "untyped"))
				fail_msg("bad metric type: %s", buf);
			types++;
		} else if (buf[0] == '#' || buf[0] == '\0') {
			/* HELP or comment */
		} else {
			char *sp = strrchr(buf, ' ');
			char *endp;

			if (strncmp(buf, "bvchat_", 7) != 0 || !sp)
				fail_msg("bad sample line: %s", buf);
			strtod(sp + 1, &endp);
			if (endp == sp + 1 || *endp)
				fail_msg("bad sample value: %s", buf);
			samples++;
		}
		line += len + (end ? 1 : 0);
	}
	assert_true(types >= 5);
	assert_true(samples >= types);
}

static void
t_metrics(void **state)
{
	struct bvt_dev a, b;
	struct bvt_conn *c;
	const struct bvt_dev *to[] = {&b};
	char *text = NULL;
	double sends0, sends1;

	(void)state;
	assert_int_equal(bvt_http_get(env.relay.port, "/metrics",
				      bvt_ms(BVT_TIMEOUT), &text),
			 200);
	check_exposition(text);
	/* Names the relay exports (relay/metrics.c). */
	assert_non_null(strstr(text, "# TYPE bvchat_connections gauge\n"));
	assert_non_null(strstr(text, "# TYPE bvchat_sends_total counter\n"));
	assert_non_null(strstr(text, "# TYPE bvchat_requests_total counter\n"));
	assert_non_null(strstr(text, "# TYPE bvchat_db_up gauge\n"));
	assert_true(sample(text, "bvchat_db_up") == 1);
	sends0 = sample(text, "bvchat_sends_total");
	assert_true(sends0 >= 0);
	free(text);

	assert_int_equal(bvt_new_account(env.relay.port, &env.tenant, &a), 0);
	assert_int_equal(bvt_new_account(env.relay.port, &env.tenant, &b), 0);
	c = bvt_online(env.relay.port, &a);
	assert_non_null(c);
	BVT_OK(bvt_send(c, "m1", bvt_envelopes_to(to, 1, "m1")));
	text = NULL;
	assert_int_equal(bvt_http_get(env.relay.port, "/metrics",
				      bvt_ms(BVT_TIMEOUT), &text),
			 200);
	check_exposition(text);
	sends1 = sample(text, "bvchat_sends_total");
	assert_true(sends1 >= sends0 + 1);
	assert_true(sample(text, "bvchat_connections") >= 1);
	assert_non_null(strstr(text, "bvchat_requests_total{op=\"send\"} "));
	free(text);
	bvt_conn_free(c);
}

#define NSEND  4
#define PIPE   4
#define MAXMSG 400

static void
t_sigterm_in_flight(void **state)
{
	struct bvt_dev rcpt, d[NSEND];
	struct bvt_conn *c[NSEND];
	int64_t ids[NSEND][MAXMSG];
	int sent[NSEND], got[NSEND], codes[NSEND], i, j, ok = 0, shutdown = 0,
							 other = 0;
	const struct bvt_dev *to[] = {&rcpt};
	char *arr, mid[32];
	size_t alen = 0;
	int st;

	(void)state;
	assert_int_equal(bvt_new_account(env.relay.port, &env.tenant, &rcpt),
			 0);
	arr = calloc(1, NSEND * MAXMSG * 16 + 4);
	assert_non_null(arr);
	arr[alen++] = '{';
	for (i = 0; i < NSEND; i++) {
		assert_int_equal(
			bvt_new_account(env.relay.port, &env.tenant, &d[i]), 0);
		c[i] = bvt_online(env.relay.port, &d[i]);
		assert_non_null(c[i]);
		sent[i] = got[i] = 0;
	}
	/* Warm up: 50 rounds with PIPE in flight each. */
	for (j = 0; j < 50 + 1; j++) {
		for (i = 0; i < NSEND; i++) {
			while (sent[i] - got[i] < PIPE && sent[i] < MAXMSG) {
				snprintf(mid, sizeof(mid), "t%d-%d", i,
					 sent[i]);
				ids[i][sent[i]] = bvt_conn_submit(
					c[i],
					bvt_send_req(mid, bvt_envelopes_to(
								  to, 1, mid)));
				sent[i]++;
			}
		}
		if (j == 50)
			break; /* the last top-up stays in flight */
		for (i = 0; i < NSEND; i++) {
			json_t *r = bvt_conn_wait(c[i], ids[i][got[i]],
						  bvt_ms(BVT_TIMEOUT));

			assert_non_null(r);
			bvt_assert_ok(r);
			snprintf(mid, sizeof(mid), "t%d-%d", i, got[i]);
			alen += (size_t)sprintf(arr + alen, "%s%s",
						alen > 1 ? "," : "", mid);
			ok++;
			got[i]++;
			json_decref(r);
		}
	}
	kill(env.relay.pid, SIGTERM);
	/* Every request is answered (ok or BV_ESHUTDOWN) before the close. */
	for (i = 0; i < NSEND; i++) {
		while (got[i] < sent[i]) {
			json_t *r = bvt_conn_wait(c[i], ids[i][got[i]],
						  bvt_ms(30000));
			const char *code;

			if (!r)
				fail_msg("sender %d: request %d unanswered at "
					 "shutdown",
					 i, got[i]);
			code = bvt_err_code(r);
			if (!code) {
				snprintf(mid, sizeof(mid), "t%d-%d", i, got[i]);
				alen += (size_t)sprintf(arr + alen, "%s%s",
							alen > 1 ? "," : "",
							mid);
				ok++;
			} else if (!strcmp(code, "BV_ESHUTDOWN")) {
				assert_true(json_is_true(json_object_get(
					bvt_err(r), "retryable")));
				shutdown++;
			} else {
				other++;
				print_error("answer at shutdown: %s\n",
					    bvt_js(r));
			}
			json_decref(r);
			got[i]++;
		}
		codes[i] = bvt_conn_wait_closed(c[i], bvt_ms(30000));
		bvt_conn_free(c[i]);
	}
	arr[alen++] = '}';
	arr[alen] = '\0';
	/* shutdown_timeout_ms is 10000: exit 0 well within a generous
	 * bound. */
	st = bvt_relay_wait_exit(&env.relay, bvt_ms(60000));
	assert_int_equal(st, 0);
	print_message("SIGTERM: %d ok, %d BV_ESHUTDOWN, %d other\n", ok,
		      shutdown, other);
	assert_int_equal(other, 0);
	{
		const char *p[1] = {arr};

		assert_int_equal(
			bvt_sql_int(
				env.db,
				"SELECT count(DISTINCT message_id) FROM queue"
				" WHERE message_id = ANY($1::text[])",
				1, p),
			ok);
	}
	assert_int_equal(count("queue"), ok);
	free(arr);
	/* Last, so a wrong close code does not hide the rest. */
	for (i = 0; i < NSEND; i++)
		if (codes[i] != 1001)
			fail_msg("connection %d closed with %d, not 1001", i,
				 codes[i]);
}

/* An idle authenticated connection is closed with 1001 on SIGTERM. */
static void
t_sigterm_idle(void **state)
{
	struct bvt_dev a;
	struct bvt_conn *c;
	int code;

	(void)state;
	assert_int_equal(bvt_new_account(env.relay.port, &env.tenant, &a), 0);
	c = bvt_online(env.relay.port, &a);
	assert_non_null(c);
	kill(env.relay.pid, SIGTERM);
	code = bvt_conn_wait_closed(c, bvt_ms(30000));
	assert_int_equal(bvt_relay_wait_exit(&env.relay, bvt_ms(60000)), 0);
	bvt_conn_free(c);
	if (code != 1001)
		fail_msg("closed with %d, not 1001", code);
}

static void
t_unmigrated_refused(void **state)
{
	char db[512];
	struct bvt_relay r;
	int st;

	(void)state;
	assert_int_equal(bvt_pg_create_db(db, sizeof(db)), 0);
	assert_int_equal(bvt_relay_spawn(&r, db, NULL), 0);
	st = bvt_relay_wait_exit(&r, bvt_ms(30000));
	if (st == -2) {
		bvt_relay_kill(&r);
		fail_msg("the relay kept running on an unmigrated database");
	}
	assert_true(st != 0);
	assert_int_equal(bvt_sql_int(db,
				     "SELECT count(*) FROM pg_tables"
				     " WHERE schemaname = 'public'",
				     0, NULL),
			 0);
}

static void
t_migrate_twice(void **state)
{
	(void)state;
	/* env's database is migrated already: again is a no-op. */
	assert_int_equal(bvt_migrate(env.db), 0);
	assert_int_equal(bvt_migrate(env.db), 0);
	assert_int_equal(bvt_relay_term(&env.relay, bvt_ms(30000)), 0);
	assert_int_equal(bvt_relay_start(&env.relay, env.db, NULL), 0);
}

static int
group_setup(void **state)
{
	(void)state;
	return bvt_pg_start();
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int
main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		T(t_healthz),
		T(t_metrics),
		T(t_sigterm_in_flight),
		T(t_sigterm_idle),
		T(t_unmigrated_refused),
		T(t_migrate_twice),
	};
	/* clang-format on */

	bvt_open_case = 1; /* not about cases: any two accounts may talk */

	return bvt_done(cmocka_run_group_tests_name("08-ops", tests,
						    group_setup, NULL));
}
