/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 33-notify: notifications that say nothing, end to end: a real relay, a
 * real bvchat-notifier with a stepped clock (--clock-file), SMS through
 * the development server's Fiks Varsling endpoint, e-mail into a real SMTP
 * sink, web push into the local push service (tests/support/push_sink.c).
 * Checked: the texts carry no message content, no sender and no
 * mention of the service; nothing for a message acknowledged in time; one
 * notification per window; quiet hours defer to their end; the template
 * in each language; failures retried with backoff while messages flow; a
 * push subscription the push service calls gone (410) is deleted.
 */
#define _GNU_SOURCE
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
#include <dirent.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "bv_util.h"
#include "bvtest.h"
#include "bvtest_fiks.h"
#include "internal.h"
#include "push_sink.h"
#include "webpush.h"

#ifndef BV_NOTIFIER_BIN
#define BV_NOTIFIER_BIN "bvchat-notifier"
#endif
#ifndef BV_SMTP_SINK_BIN
#define BV_SMTP_SINK_BIN "bvtest-smtp-sink"
#endif
#ifndef BV_DEVSERVER_BIN
#define BV_DEVSERVER_BIN "bvfiks-devserver"
#endif

#define MIN	(60 * 1000LL)
#define CANARY	"CANARY-notify-7Qz"
#define NB_TEXT "Du har en ny melding. Logg inn for å lese den."

static struct bvt_env env;
static char dir[64], clock_path[128], mail_dir[128];
static int fiks_port, smtp_port;
static pid_t devserver, sink, notifier;
static struct bvt_fiks fk; /* only its account and port are used */
static struct push_sink *push;
static char vapid_path[128], vapid_public[100];
static int64_t clock_ms; /* what the notifier's clock file says */

/* ------------------------------------------------------------ processes */

static pid_t
spawn(char *const argv[], const char *log)
{
	pid_t pid = fork();

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
	return pid;
}

static void
stop(pid_t *pid)
{
	int st;

	if (*pid <= 0)
		return;
	kill(*pid, SIGTERM);
	if (bvt__reap(*pid, bvt_ms(10000), &st) != 0) {
		kill(*pid, SIGKILL);
		bvt__reap(*pid, bvt_ms(10000), &st);
	}
	*pid = 0;
}

/* The wall clock (bvt_now_ms() is monotonic): message times are. */
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
	char tmp[160];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", clock_path);
	f = fopen(tmp, "w");
	assert_non_null(f);
	fprintf(f, "%lld\n", (long long)ms);
	fclose(f);
	assert_int_equal(rename(tmp, clock_path), 0);
	clock_ms = ms;
}

static int
write_text(const char *path, const char *s)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -1;
	fputs(s, f);
	return fclose(f);
}

static int
start_devserver(void)
{
	struct bvt_fiks_account *a = &fk.acct[0];
	char accounts[128], secret[128], dl[128], log[128], sms[128], port[16],
		aport[16], json[2048];
	char *argv[] = {BV_DEVSERVER_BIN,
			"--accounts",
			accounts,
			"--port",
			port,
			"--amqp-port",
			aport,
			"--amqp-secret-file",
			secret,
			"--dokumentlager",
			dl,
			"--sms-log",
			sms,
			NULL};
	char *body = NULL;
	int i;

	fk.http_port = fiks_port;
	fk.amqp_port = bvt_free_port(); /* nothing listens: no broker here */
	snprintf(a->konto, sizeof(a->konto), "%s",
		 "3b0c5d0e-1a2b-4c3d-8e4f-5a6b7c8d9e0f");
	snprintf(a->integration_id, sizeof(a->integration_id), "%s",
		 "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a");
	snprintf(a->password, sizeof(a->password), "notifier-test-pw");
	snprintf(a->client_id, sizeof(a->client_id), "bvt-notifier");
	snprintf(a->key, sizeof(a->key), "%s/varsling.key", dir);
	snprintf(a->cert, sizeof(a->cert), "%s/varsling.crt", dir);
	snprintf(a->config, sizeof(a->config), "%s/varsling.conf", dir);
	if (bvt_fiks_keypair(a->key, a->cert, a->client_id) < 0 ||
	    bvt_fiks_write_config(&fk, 0, a->config, NULL) < 0)
		return -1;
	snprintf(accounts, sizeof(accounts), "%s/accounts.json", dir);
	snprintf(json, sizeof(json),
		 "{\"accounts\":[{\"konto\":\"%s\",\"navn\":\"varsling\","
		 "\"integration_id\":\"%s\",\"integration_password\":\"%s\","
		 "\"client_id\":\"%s\",\"cert\":\"%s\"}]}\n",
		 a->konto, a->integration_id, a->password, a->client_id,
		 a->cert);
	snprintf(secret, sizeof(secret), "%s/admin.secret", dir);
	snprintf(dl, sizeof(dl), "%s/dokumentlager", dir);
	snprintf(log, sizeof(log), "%s/devserver.log", dir);
	snprintf(sms, sizeof(sms), "%s/sms.jsonl", dir);
	snprintf(port, sizeof(port), "%d", fiks_port);
	snprintf(aport, sizeof(aport), "%d", fk.amqp_port);
	if (write_text(accounts, json) < 0 ||
	    write_text(secret, "not-used\n") < 0 || mkdir(dl, 0700) < 0)
		return -1;
	if (getenv("BV_FIKS_DEVSERVER_BIN"))
		argv[0] = getenv("BV_FIKS_DEVSERVER_BIN");
	devserver = spawn(argv, log);
	for (i = 0; i < 200; i++) {
		if (bvt_http_get(fiks_port, "/healthz", 1000, &body) == 200) {
			free(body);
			return 0;
		}
		free(body);
		body = NULL;
		bvt_sleep_ms(50);
	}
	return -1;
}

static int
start_notifier(void)
{
	char conf[128], log[128], text[2048];
	char *argv[] = {BV_NOTIFIER_BIN, "-c",	     conf,
			"--clock-file",	 clock_path, NULL};

	snprintf(conf, sizeof(conf), "%s/notifier.conf", dir);
	snprintf(log, sizeof(log), "%s/notifier.log", dir);
	snprintf(text, sizeof(text),
		 "database \"%s\"\nlog_level info\nnotify_poll_ms 50\n"
		 "notify_backoff_s 30\nnotify_backoff_max_s 600\n"
		 "notify_max_attempts 5\nnotify_timeout_ms 100000\n"
		 "notify_lease_s 86400\n"
		 "varsling_fiks_config %s\nvarsling_konto %s\n"
		 "smtp_url smtp://127.0.0.1:%d\n"
		 "smtp_from varsel@kommune.example\n"
		 "webpush_vapid_key %s\nwebpush_subject "
		 "mailto:drift@kommune.example\n"
		 "webpush_vapid_public %s\n"
		 "webpush_allow_loopback_http 1\n",
		 env.db, fk.acct[0].config, fk.acct[0].konto, smtp_port,
		 vapid_path, vapid_public);
	/* A claim is leased for a day, so that in_send() can tell a
	 * notification being sent from one whose outcome is recorded; and
	 * one send may take long: t_failures_retried holds an SMTP
	 * conversation open on purpose. */
	if (write_text(conf, text) < 0)
		return -1;
	set_clock(wall_ms());
	notifier = spawn(argv, log);
	return notifier > 0 ? 0 : -1;
}

/* A VAPID key for this run, as operators make theirs; its public half
 * for the relay's webpush_vapid_public. */
static int
make_vapid(void)
{
	struct webpush_vapid_key *k = NULL;
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	FILE *f;
	int ok;

	snprintf(vapid_path, sizeof(vapid_path), "%s/vapid.pem", dir);
	f = fopen(vapid_path, "w");
	ok = pkey && f &&
	     PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) == 1;
	if (f)
		fclose(f);
	EVP_PKEY_free(pkey);
	if (!ok || webpush_vapid_key_load(vapid_path, &k) < 0)
		return -1;
	snprintf(vapid_public, sizeof(vapid_public), "%s",
		 webpush_vapid_key_public(k));
	webpush_vapid_key_free(k);
	return 0;
}

static int
setup(void **state)
{
	const char *args[] = {"--webpush_allow_loopback_http", "1",
			      "--webpush_vapid_public", vapid_public, NULL};
	char port[16], log[128];
	char *sargv[] = {BV_SMTP_SINK_BIN, "--port", port,
			 "--dir",	   mail_dir, NULL};

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/bvt-notify-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	bvt__watchdog("D %s", dir);
	snprintf(clock_path, sizeof(clock_path), "%s/clock", dir);
	snprintf(mail_dir, sizeof(mail_dir), "%s/mail", dir);
	if (mkdir(mail_dir, 0700) < 0 || make_vapid() < 0)
		return -1;
	push = push_sink_start();
	if (!push)
		return -1;
	if (bvt_env_init(&env, args) < 0)
		return -1;
	fiks_port = bvt_free_port();
	if (start_devserver() < 0)
		return -1;
	smtp_port = bvt_free_port();
	snprintf(port, sizeof(port), "%d", smtp_port);
	snprintf(log, sizeof(log), "%s/smtp.log", dir);
	sink = spawn(sargv, log);
	bvt_sleep_ms(100);
	return start_notifier();
}

static void
print_log(const char *name)
{
	char path[160];
	char *s;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	s = bvt_file_read(path, NULL);
	if (s) {
		size_t n = strlen(s);

		fprintf(stderr, "----- %s -----\n%s\n", name,
			n > 6000 ? s + n - 6000 : s);
		free(s);
	}
}

static int
teardown(void **state)
{
	(void)state;
	if (getenv("BVT_NOTIFY_LOGS"))
		print_log("notifier.log");
	stop(&notifier);
	stop(&sink);
	stop(&devserver);
	push_sink_stop(push);
	bvt_env_cleanup(&env);
	return 0;
}

/* ----------------------------------------------------------------- world */

struct world {
	struct bvt_tenant t;
	struct bvt_dev a, b[4]; /* a writes, b[] read */
	size_t nb;
	struct bvt_dev b0b; /* b[0]'s second device, when has_b0b */
	int has_b0b;
	char phone[4][20];
	char email[4][64];
};

/* A tenant of its own (its own test case), without quiet hours unless
 * asked, wait 15 and window 60 minutes; a sender and nb recipients. */
static void
make_world(struct world *w, size_t nb, const char *quiet_start,
	   const char *quiet_end)
{
	static unsigned n;
	char name[32], out[256];
	size_t i;

	memset(w, 0, sizeof(*w));
	snprintf(name, sizeof(name), "notify kommune %u", ++n);
	assert_int_equal(bvt_tenant_create(env.db, name, &w->t), 0);
	{
		const char *args[] = {"notify-tenant",
				      "--tenant",
				      w->t.id,
				      "--wait-minutes",
				      "15",
				      "--window-minutes",
				      "60",
				      "--quiet-start",
				      quiet_start,
				      "--quiet-end",
				      quiet_end,
				      NULL};

		assert_int_equal(bvt_admin(env.db, out, sizeof(out), args), 0);
	}
	assert_int_equal(bvt_new_account(env.relay.port, &w->t, &w->a), 0);
	w->nb = nb;
	for (i = 0; i < nb; i++) {
		assert_int_equal(
			bvt_new_account(env.relay.port, &w->t, &w->b[i]), 0);
		snprintf(w->phone[i], sizeof(w->phone[i]), "+47%08u",
			 (unsigned)(10000000 +
				    (bvt_now_ms() + n * 7 + i) % 89999999));
		snprintf(w->email[i], sizeof(w->email[i]),
			 "person%u.%zu@example.no", n, i);
	}
}

static void
contact(const struct world *w, size_t i, int phone, int email)
{
	const char *args[] = {"notify-contact",
			      "--account",
			      w->b[i].account,
			      phone ? "--phone" : "--email",
			      phone ? w->phone[i] : w->email[i],
			      phone && email ? "--email" : NULL,
			      w->email[i],
			      NULL};
	char out[256];

	assert_int_equal(bvt_admin(env.db, out, sizeof(out), args), 0);
}

/* notify_set from one of the person's own devices. */
static void
notify_set(const struct bvt_dev *d, json_t *req)
{
	struct bvt_conn *c = bvt_online(env.relay.port, d);
	json_t *r;

	assert_non_null(c);
	r = bvt_request(c, req);
	if (!bvt_ok(r))
		fail_msg("notify_set: %s", bvt_js(r));
	json_decref(r);
	bvt_conn_free(c);
}

/* a sends one message (not partial) to every recipient; returns when the
 * relay has committed it. */
static void
send_all(struct world *w, const char *mid)
{
	const struct bvt_dev *to[5];
	struct bvt_conn *c = bvt_online(env.relay.port, &w->a);
	json_t *req, *r;
	size_t i;

	assert_non_null(c);
	for (i = 0; i < w->nb; i++)
		to[i] = &w->b[i];
	if (w->has_b0b)
		to[i++] = &w->b0b;
	req = bvt_send_req(mid, bvt_envelopes_to(to, i, mid));
	json_object_set_new(req, "partial", json_false());
	r = bvt_request(c, req);
	if (!bvt_ok(r))
		fail_msg("send: %s", bvt_js(r));
	json_decref(r);
	bvt_conn_free(c);
}

/* SMS the devserver got for phone. */
static json_t *
sms_for(const char *phone)
{
	json_t *all, *out = json_array(), *m;
	char *body = NULL;
	size_t i;

	assert_int_equal(bvt_http_get(fiks_port, "/varsling/dev/sms",
				      bvt_ms(5000), &body),
			 200);
	all = json_loads(body, 0, NULL);
	free(body);
	json_array_foreach(json_object_get(all, "sms"), i, m)
	{
		const char *p =
			json_string_value(json_object_get(m, "telefonnummer"));

		if (p && !strcmp(p, phone))
			json_array_append(out, m);
	}
	json_decref(all);
	return out;
}

static long long
sql_int(const char *sql, const char *account)
{
	const char *p[1] = {account};

	return bvt_sql_int(env.db, sql, 1, p);
}

/* Whether the notifier is in the middle of sending account's notification:
 * claimed (leased for a day, see start_notifier) and not yet recorded. */
static int
in_send(const char *account)
{
	char now[24];
	const char *p[2] = {account, now};

	snprintf(now, sizeof(now), "%lld", (long long)clock_ms);
	return bvt_sql_int(env.db,
			   "SELECT count(*) FROM notify_pending WHERE "
			   "account_id = $1::uuid AND not_before > "
			   "to_timestamp($2::double precision / 1000) + "
			   "interval '12 hours'",
			   2, p) != 0;
}

/*
 * Waits (bounded) until sql (of $1, the account; NULL: no condition) is at
 * least want and the notifier has recorded the outcome of its latest send to account. Only
 * then may the test move the clock: the outcome is recorded at the
 * notifier's time, and a step taken during a send would move the next
 * window or retry.
 */
static void
wait_recorded(const char *account, const char *sql, long long want)
{
	int64_t deadline = bvt_now_ms() + bvt_ms(BVT_TIMEOUT);

	while (((sql && sql_int(sql, account) < want) || in_send(account)) &&
	       bvt_now_ms() < deadline)
		bvt_sleep_ms(50);
	if ((sql && sql_int(sql, account) < want) || in_send(account)) {
		long long ahead =
			sql_int("SELECT extract(epoch FROM not_before)::bigint "
				"FROM notify_pending WHERE account_id = "
				"$1::uuid",
				account) -
			clock_ms / 1000;

		print_log("notifier.log");
		fail_msg("not recorded for %s (%s %lld; not_before %+lld s "
			 "from the clock)",
			 account, sql ? sql : "-", want, ahead);
	}
}

/* Waits until account's notification was tried n times, the last try
 * recorded. */
static void
wait_tried(const char *account, long long n)
{
	wait_recorded(account,
		      "SELECT attempts FROM notify_pending WHERE account_id = "
		      "$1::uuid",
		      n);
}

/* Waits until account has been sent n notifications, all recorded. */
static void
wait_sent(const char *account, long long n)
{
	wait_recorded(account,
		      "SELECT sent_count FROM notify_state WHERE account_id = "
		      "$1::uuid",
		      n);
}

/* The development server's next n SMS fail with 503. */
static void
sms_fail(unsigned n)
{
	char req[64], *body = NULL;

	snprintf(req, sizeof(req), "{\"count\":%u,\"status\":503}", n);
	assert_int_equal(bvt_http_request(fiks_port, "POST",
					  "/varsling/dev/fail", NULL, req,
					  strlen(req), bvt_ms(5000), &body),
			 200);
	free(body);
}

/* Waits (bounded) until w's recipient i has n SMS, the last one recorded;
 * returns the list. */
static json_t *
wait_sms(const struct world *w, size_t i, size_t n)
{
	const char *phone = w->phone[i];
	int64_t deadline = bvt_now_ms() + bvt_ms(BVT_TIMEOUT);
	json_t *l;

	for (;;) {
		l = sms_for(phone);
		if (json_array_size(l) >= n || bvt_now_ms() > deadline)
			break;
		json_decref(l);
		bvt_sleep_ms(50);
	}
	if (json_array_size(l) != n) {
		print_log("notifier.log");
		fail_msg("%zu SMS for %s, want %zu", json_array_size(l), phone,
			 n);
	}
	wait_sent(w->b[i].account, (long long)n);
	return l;
}

/* Lets the notifier run a few rounds at the current clock. */
static void
settle(void)
{
	bvt_sleep_ms(400);
}

/* The text says nothing: none of the canaries, no sender, no service. */
static void
says_nothing(const char *text)
{
	assert_null(strstr(text, CANARY));
	assert_null(strstr(text, "Test")); /* everyone's display name */
	assert_null(strcasestr(text, "barnevern"));
	assert_null(strcasestr(text, "kommune"));
}

/* ---------------------------------------------------------------- tests */

static void
t_sms(void **state)
{
	struct world w;
	int64_t t0;
	json_t *l;
	const char *text;

	(void)state;
	make_world(&w, 1, "00:00", "00:00");
	contact(&w, 0, 1, 0);
	t0 = wall_ms();
	set_clock(t0);
	send_all(&w, CANARY "-sms");
	/* Written by the send itself. */
	assert_int_equal(sql_int("SELECT count(*) FROM notify_pending WHERE "
				 "account_id = $1::uuid",
				 w.b[0].account),
			 1);
	assert_int_equal(sql_int("SELECT count(*) FROM notify_pending WHERE "
				 "account_id = $1::uuid",
				 w.a.account),
			 0);
	set_clock(t0 + 5 * MIN);
	settle();
	l = sms_for(w.phone[0]);
	assert_int_equal(json_array_size(l), 0);
	json_decref(l);
	set_clock(t0 + 16 * MIN);
	l = wait_sms(&w, 0, 1);
	text = json_string_value(
		json_object_get(json_array_get(l, 0), "tekst"));
	assert_string_equal(text, NB_TEXT);
	says_nothing(text);
	json_decref(l);
	/* Told once; later rounds find nothing new. */
	set_clock(t0 + 200 * MIN);
	settle();
	l = sms_for(w.phone[0]);
	assert_int_equal(json_array_size(l), 1);
	json_decref(l);
	assert_int_equal(sql_int("SELECT sent_count FROM notify_state WHERE "
				 "account_id = $1::uuid",
				 w.b[0].account),
			 1);
}

static void
t_acked_in_time(void **state)
{
	struct world w;
	struct bvt_conn *b;
	json_t *dv, *l;
	int64_t t0;

	(void)state;
	make_world(&w, 1, "00:00", "00:00");
	contact(&w, 0, 1, 0);
	/* Two devices; one acknowledging is enough. */
	assert_int_equal(
		bvt_new_device(env.relay.port, &w.t, w.b[0].account, &w.b0b),
		0);
	w.has_b0b = 1;
	b = bvt_online(env.relay.port, &w.b[0]);
	assert_non_null(b);
	t0 = wall_ms();
	set_clock(t0);
	send_all(&w, CANARY "-acked");
	dv = bvt_next_deliver(b, bvt_ms(BVT_TIMEOUT));
	while (dv && !json_object_get(dv, "envelope")) {
		json_decref(dv);
		dv = bvt_next_deliver(b, bvt_ms(BVT_TIMEOUT));
	}
	assert_non_null(dv);
	assert_int_equal(bvt_ack(b, dv), 0);
	json_decref(dv);
	/* The ack's delete is committed before the notifier looks. */
	{
		int64_t deadline = bvt_now_ms() + bvt_ms(BVT_TIMEOUT);

		while (sql_int("SELECT count(*) FROM queue q JOIN devices d ON "
			       "d.id = q.device WHERE d.account_id = $1::uuid",
			       w.b[0].account) != 1 &&
		       bvt_now_ms() < deadline)
			bvt_sleep_ms(20);
	}
	set_clock(t0 + 16 * MIN);
	settle();
	set_clock(t0 + 100 * MIN);
	settle();
	l = sms_for(w.phone[0]);
	assert_int_equal(json_array_size(l), 0);
	json_decref(l);
	/* And the mark is gone. */
	assert_int_equal(sql_int("SELECT count(*) FROM notify_pending WHERE "
				 "account_id = $1::uuid",
				 w.b[0].account),
			 0);
	bvt_conn_free(b);
}

static void
t_coalesce(void **state)
{
	struct world w;
	int64_t t0;
	json_t *l;

	(void)state;
	make_world(&w, 1, "00:00", "00:00");
	contact(&w, 0, 1, 0);
	t0 = wall_ms();
	set_clock(t0);
	send_all(&w, CANARY "-c1");
	send_all(&w, CANARY "-c2");
	set_clock(t0 + 16 * MIN);
	l = wait_sms(&w, 0, 1);
	json_decref(l);
	settle();
	/* A third message within the window: nothing yet. */
	send_all(&w, CANARY "-c3");
	set_clock(t0 + 40 * MIN);
	settle();
	l = sms_for(w.phone[0]);
	assert_int_equal(json_array_size(l), 1);
	json_decref(l);
	/* The window (60 minutes from the first) is over: one more. */
	set_clock(t0 + 77 * MIN);
	l = wait_sms(&w, 0, 2);
	json_decref(l);
	set_clock(t0 + 300 * MIN);
	settle();
	l = sms_for(w.phone[0]);
	assert_int_equal(json_array_size(l), 2);
	json_decref(l);
}

/* Local time in Europe/Oslo shifted by offset, as HH:MM. */
static void
local_hhmm(const char *offset, char out[8])
{
	char sql[200];
	unsigned n;

	snprintf(sql, sizeof(sql),
		 "SELECT to_char((now() AT TIME ZONE 'Europe/Oslo') + "
		 "'%s'::interval, 'HH24MI')::int",
		 offset);
	n = (unsigned)bvt_sql_int(env.db, sql, 0, NULL) % 2400;
	snprintf(out, 8, "%02u:%02u", n / 100, n % 100);
}

static void
t_quiet_hours(void **state)
{
	struct world w;
	char start[8], end[8];
	int64_t t0, end_ms;
	json_t *l;

	(void)state;
	/* Quiet from an hour ago until two hours from now, local time. */
	local_hhmm("-1 hour", start);
	local_hhmm("2 hours", end);
	make_world(&w, 1, start, end);
	contact(&w, 0, 1, 0);
	t0 = wall_ms();
	set_clock(t0);
	send_all(&w, CANARY "-quiet");
	set_clock(t0 + 16 * MIN);
	settle();
	l = sms_for(w.phone[0]);
	assert_int_equal(json_array_size(l), 0);
	json_decref(l);
	/* Deferred to the end of the quiet hours (within the minute). */
	end_ms = sql_int("SELECT (extract(epoch FROM not_before) * 1000)::"
			 "bigint FROM notify_pending WHERE account_id = "
			 "$1::uuid",
			 w.b[0].account);
	assert_true(end_ms > t0 + 119 * MIN && end_ms <= t0 + 121 * MIN);
	set_clock(end_ms - MIN);
	settle();
	l = sms_for(w.phone[0]);
	assert_int_equal(json_array_size(l), 0);
	json_decref(l);
	set_clock(end_ms + 1000);
	l = wait_sms(&w, 0, 1);
	json_decref(l);
}

/* The decoded body of an e-mail file, and its headers in *head. */
static char *
mail_body(const char *path, char **head)
{
	char *raw = bvt_file_read(path, NULL), *sep, *b64, *o;
	uint8_t out[4096];
	size_t n = 0;

	assert_non_null(raw);
	sep = strstr(raw, "\r\n\r\n");
	assert_non_null(sep);
	*sep = '\0';
	b64 = sep + 4;
	for (o = b64; *b64; b64++)
		if (*b64 != '\r' && *b64 != '\n')
			*o++ = *b64;
	*o = '\0';
	assert_int_equal(bvt_unb64(sep + 4, out, sizeof(out) - 1, &n), 0);
	out[n] = '\0';
	*head = raw;
	return strdup((char *)out);
}

/* The file in the sink for address, or NULL. */
static char *
mail_for(const char *address)
{
	DIR *d = opendir(mail_dir);
	struct dirent *e;
	char want[128], path[512], *found = NULL;

	snprintf(want, sizeof(want), "X-Sink-Rcpt-To: <%s>", address);
	while (d && (e = readdir(d)) && !found) {
		char *s;

		if (!strstr(e->d_name, ".eml") || strstr(e->d_name, ".tmp"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", mail_dir, e->d_name);
		s = bvt_file_read(path, NULL);
		if (s && strstr(s, want))
			found = strdup(path);
		free(s);
	}
	if (d)
		closedir(d);
	return found;
}

/* Waits (bounded) for the e-mail to w's recipient i, recorded as sent;
 * returns its file. */
static char *
wait_mail(const struct world *w, size_t i)
{
	const char *address = w->email[i];
	int64_t deadline = bvt_now_ms() + bvt_ms(BVT_TIMEOUT);
	char *p;

	while (!(p = mail_for(address)) && bvt_now_ms() < deadline)
		bvt_sleep_ms(50);
	if (!p) {
		print_log("notifier.log");
		fail_msg("no e-mail for %s", address);
	}
	wait_sent(w->b[i].account, 1);
	return p;
}

static void
t_email_languages(void **state)
{
	static const char *const lang[4] = {"nb", "nn", "en", "se"};
	static const char *const text[4] = {
		NB_TEXT, "Du har ei ny melding. Logg inn for å lese ho.",
		"You have a new message. Log in to read it.",
		"Dus lea ođđa dieđáhus. Čálit sisa lohkat dan."};
	struct world w;
	int64_t t0;
	size_t i;

	(void)state;
	make_world(&w, 4, "00:00", "00:00");
	for (i = 0; i < 4; i++) {
		contact(&w, i, 1, 1); /* both: the choice decides */
		notify_set(&w.b[i],
			   json_pack("{ss ss ss}", "op", "notify_set",
				     "channel", "email", "language", lang[i]));
	}
	t0 = wall_ms();
	set_clock(t0);
	send_all(&w, CANARY "-mail");
	set_clock(t0 + 16 * MIN);
	for (i = 0; i < 4; i++) {
		char *path = wait_mail(&w, i), *head = NULL;
		char *body = mail_body(path, &head);

		assert_string_equal(body, text[i]);
		says_nothing(body);
		assert_null(strstr(head, CANARY));
		assert_null(strcasestr(head, "barnevern"));
		assert_non_null(strstr(head, "\r\nDate: "));
		assert_non_null(strstr(head, "\r\nMessage-ID: <"));
		assert_non_null(strstr(head, "@kommune.example>"));
		assert_non_null(strstr(
			head, "Content-Type: text/plain; charset=utf-8"));
		assert_non_null(strstr(head, "Subject: =?UTF-8?B?"));
		assert_non_null(strstr(head, "X-Sink-Mail-From: "
					     "<varsel@kommune.example>"));
		free(body);
		free(head);
		free(path);
	}
	/* Nobody got an SMS: the choice was e-mail. */
	for (i = 0; i < 4; i++) {
		json_t *l = sms_for(w.phone[i]);

		assert_int_equal(json_array_size(l), 0);
		json_decref(l);
	}
}

/* Whether the SMTP sink is holding a conversation (smtp_sink.c: hold). */
static int
mail_held(void)
{
	char held[160];

	snprintf(held, sizeof(held), "%s/held", mail_dir);
	return access(held, F_OK) == 0;
}

/*
 * Failing channels are retried with backoff, and never hold up messages:
 * while the notifier is stuck in the middle of an SMTP conversation, a
 * message to the very person it is trying to tell is accepted and
 * delivered.
 */
static void
t_failures_retried(void **state)
{
	struct world w;
	struct bvt_dev c;
	struct bvt_conn *cc;
	char fail[160], hold[160];
	int64_t t0, deadline;
	json_t *l, *dv;

	(void)state;
	make_world(&w, 2, "00:00", "00:00");
	contact(&w, 0, 1, 0);
	contact(&w, 1, 0, 1);
	/* The next two SMS fail with 503; the SMTP server refuses too. */
	sms_fail(2);
	snprintf(fail, sizeof(fail), "%s/fail", mail_dir);
	snprintf(hold, sizeof(hold), "%s/hold", mail_dir);
	assert_int_equal(write_text(fail, "451\n"), 0);
	t0 = wall_ms();
	set_clock(t0);
	send_all(&w, CANARY "-fail");
	set_clock(t0 + 16 * MIN);
	wait_tried(w.b[0].account, 1);
	wait_tried(w.b[1].account, 1);
	/* The error is a code, never the number or address. */
	assert_int_equal(sql_int("SELECT count(*) FROM notify_pending WHERE "
				 "account_id = $1::uuid AND last_error LIKE "
				 "'varsling: FIKS_EHTTP%'",
				 w.b[0].account),
			 1);
	assert_int_equal(sql_int("SELECT count(*) FROM notify_pending WHERE "
				 "account_id = $1::uuid AND last_error LIKE "
				 "'smtp:%' AND last_error NOT LIKE '%@%'",
				 w.b[1].account),
			 1);
	/* Backoff: 30 s, then 60 s. The second tries fail too; the e-mail
	 * one is held in the middle of its conversation meanwhile. */
	assert_int_equal(write_text(hold, "\n"), 0);
	set_clock(t0 + 16 * MIN + 31 * 1000);
	deadline = bvt_now_ms() + bvt_ms(BVT_TIMEOUT);
	while (!mail_held() && bvt_now_ms() < deadline)
		bvt_sleep_ms(20);
	assert_true(mail_held());
	assert_true(in_send(w.b[1].account));
	/* Messages flow meanwhile, to the person being told too. */
	assert_int_equal(
		bvt_new_device(env.relay.port, &w.t, w.b[1].account, &c), 0);
	cc = bvt_online(env.relay.port, &c);
	assert_non_null(cc);
	{
		const struct bvt_dev *to[3] = {&w.b[0], &w.b[1], &c};
		struct bvt_conn *a = bvt_online(env.relay.port, &w.a);
		json_t *req =
			bvt_send_req(CANARY "-flow",
				     bvt_envelopes_to(to, 3, CANARY "-flow"));
		json_t *r;

		json_object_set_new(req, "partial", json_false());
		r = bvt_request(a, req);
		assert_non_null(bvt_ok(r));
		json_decref(r);
		do {
			dv = bvt_next_deliver(cc, bvt_ms(BVT_TIMEOUT));
		} while (dv && !json_object_get(dv, "envelope") &&
			 (json_decref(dv), 1));
		assert_non_null(dv);
		json_decref(dv);
		bvt_conn_free(a);
	}
	bvt_conn_free(cc);
	/* Sent, delivered, and the notifier still stuck. */
	assert_true(mail_held());
	assert_true(in_send(w.b[1].account));
	unlink(hold);
	wait_tried(w.b[0].account, 2);
	wait_tried(w.b[1].account, 2);
	l = sms_for(w.phone[0]);
	assert_int_equal(json_array_size(l), 0);
	json_decref(l);
	assert_null(mail_for(w.email[1]));
	unlink(fail);
	/* Not before the backoff is over. */
	set_clock(t0 + 16 * MIN + 80 * 1000);
	settle();
	l = sms_for(w.phone[0]);
	assert_int_equal(json_array_size(l), 0);
	json_decref(l);
	assert_null(mail_for(w.email[1]));
	set_clock(t0 + 16 * MIN + 92 * 1000);
	l = wait_sms(&w, 0, 1);
	json_decref(l);
	free(wait_mail(&w, 1));
}

/*
 * A channel that keeps failing is given up after notify_max_attempts (5)
 * tries, 30, 60, 120 and 240 s apart: counted in notify_state, never tried
 * again for the messages it was about; a later message is told.
 */
static void
t_given_up(void **state)
{
	struct world w;
	int64_t t0, at;
	json_t *l;
	int i;

	(void)state;
	make_world(&w, 1, "00:00", "00:00");
	contact(&w, 0, 1, 0);
	sms_fail(5);
	t0 = wall_ms();
	set_clock(t0);
	send_all(&w, CANARY "-given-up");
	at = t0 + 16 * MIN;
	for (i = 1; i <= 4; i++) {
		set_clock(at);
		wait_tried(w.b[0].account, i);
		at += (30 * 1000LL << (i - 1)) + 1000;
	}
	set_clock(at);
	wait_recorded(w.b[0].account,
		      "SELECT failed_count FROM notify_state WHERE account_id "
		      "= $1::uuid",
		      1);
	assert_int_equal(sql_int("SELECT count(*) FROM notify_state WHERE "
				 "account_id = $1::uuid AND sent_count = 0 "
				 "AND last_error LIKE 'varsling: FIKS_EHTTP%'",
				 w.b[0].account),
			 1);
	/* Not tried again, however long nobody reads. */
	set_clock(t0 + 600 * MIN);
	settle();
	assert_int_equal(sql_int("SELECT failed_count FROM notify_state WHERE "
				 "account_id = $1::uuid",
				 w.b[0].account),
			 1);
	l = sms_for(w.phone[0]);
	assert_int_equal(json_array_size(l), 0);
	json_decref(l);
	/* A new message is told (the SMS service works again). */
	send_all(&w, CANARY "-given-up-2");
	set_clock(t0 + 620 * MIN);
	l = wait_sms(&w, 0, 1);
	json_decref(l);
}

static void
t_notify_set_checks(void **state)
{
	struct world w;
	struct bvt_conn *c;
	json_t *r;
	char p256dh[100], auth[40];
	uint8_t key[65] = {4}, sec[16] = {1};
	char *s;

	(void)state;
	make_world(&w, 1, "00:00", "00:00");
	s = bvt_b64(key, sizeof(key));
	snprintf(p256dh, sizeof(p256dh), "%s", s);
	free(s);
	s = bvt_b64(sec, sizeof(sec));
	snprintf(auth, sizeof(auth), "%s", s);
	free(s);
	/* base64url: the test keys have no + or /. */
	c = bvt_online(env.relay.port, &w.b[0]);
	assert_non_null(c);
	r = bvt_request(c, json_pack("{ss ss ss s{ss s{ss ss}}}", "op",
				     "notify_set", "channel", "webpush",
				     "language", "nn", "webpush", "endpoint",
				     "https://push.example/abc", "keys",
				     "p256dh", p256dh, "auth", auth));
	assert_non_null(bvt_ok(r));
	json_decref(r);
	assert_int_equal(sql_int("SELECT count(*) FROM notify_settings WHERE "
				 "account_id = $1::uuid AND channel = "
				 "'webpush' AND language = 'nn' AND "
				 "length(webpush_p256dh) = 65",
				 w.b[0].account),
			 1);
	/* http:// only on loopback (and only because this relay allows it). */
	r = bvt_request(c, json_pack("{ss s{ss s{ss ss}}}", "op", "notify_set",
				     "webpush", "endpoint",
				     "http://push.example/abc", "keys",
				     "p256dh", p256dh, "auth", auth));
	assert_string_equal(bvt_err_code(r), "BV_EFIELD");
	json_decref(r);
	r = bvt_request(c, json_pack("{ss s{ss s{ss ss}}}", "op", "notify_set",
				     "webpush", "endpoint",
				     "http://127.0.0.1:9/push", "keys",
				     "p256dh", p256dh, "auth", auth));
	assert_non_null(bvt_ok(r));
	json_decref(r);
	/* Wrong key lengths, unknown channel, a phone number: refused. */
	r = bvt_request(c, json_pack("{ss s{ss s{ss ss}}}", "op", "notify_set",
				     "webpush", "endpoint",
				     "https://push.example/x", "keys", "p256dh",
				     auth, "auth", auth));
	assert_string_equal(bvt_err_code(r), "BV_EFIELD");
	json_decref(r);
	r = bvt_request(c, json_pack("{ss ss}", "op", "notify_set", "channel",
				     "pigeon"));
	assert_string_equal(bvt_err_code(r), "BV_EFIELD");
	json_decref(r);
	r = bvt_request(c, json_pack("{ss}", "op", "notify_set"));
	assert_string_equal(bvt_err_code(r), "BV_EFIELD");
	json_decref(r);
	r = bvt_request(c, json_pack("{ss ss ss}", "op", "notify_set",
				     "channel", "sms", "phone", "+4712345678"));
	assert_non_null(bvt_ok(r)); /* the phone member is ignored */
	json_decref(r);
	assert_int_equal(sql_int("SELECT count(*) FROM notify_settings WHERE "
				 "account_id = $1::uuid AND phone IS NULL",
				 w.b[0].account),
			 1);
	/* Removing the subscription. */
	r = bvt_request(c, json_pack("{ss sn}", "op", "notify_set", "webpush"));
	assert_non_null(bvt_ok(r));
	json_decref(r);
	assert_int_equal(sql_int("SELECT count(*) FROM notify_settings WHERE "
				 "account_id = $1::uuid AND webpush_endpoint "
				 "IS NULL",
				 w.b[0].account),
			 1);
	bvt_conn_free(c);
}

/* The relay hands the VAPID public key to every client in the
 * challenge, before authentication: the widget subscribes with it. */
static void
t_challenge_webpush_key(void **state)
{
	struct bvt_conn *c = bvt_conn_open(env.relay.port);

	(void)state;
	assert_non_null(c);
	assert_string_equal(
		json_string_value(json_object_get(c->challenge, "webpush_key")),
		vapid_public);
	bvt_conn_free(c);
}

/* The person subscribes from their device with ua's keys at /push/id. */
static void
subscribe(const struct bvt_dev *d, const struct push_ua *ua, const char *id,
	  const char *language)
{
	char endpoint[160], *p256dh, *auth;

	push_sink_endpoint(push, id, endpoint, sizeof(endpoint));
	p256dh = bv_b64url_encode(ua->p256dh, sizeof(ua->p256dh));
	auth = bv_b64url_encode(ua->auth, sizeof(ua->auth));
	assert_non_null(p256dh);
	assert_non_null(auth);
	notify_set(d, json_pack("{ss ss ss s{ss s{ss ss}}}", "op", "notify_set",
				"channel", "webpush", "language", language,
				"webpush", "endpoint", endpoint, "keys",
				"p256dh", p256dh, "auth", auth));
	bv_free(p256dh);
	bv_free(auth);
}

/* Waits (bounded) until the sink has answered n pushes with status. */
static void
wait_answered(unsigned status, size_t n)
{
	int64_t deadline = bvt_now_ms() + bvt_ms(BVT_TIMEOUT);

	while (push_sink_answered(push, status) < n && bvt_now_ms() < deadline)
		bvt_sleep_ms(50);
	if (push_sink_answered(push, status) != n) {
		print_log("notifier.log");
		fail_msg("%zu pushes answered %u, want %zu",
			 push_sink_answered(push, status), status, n);
	}
}

static void
t_webpush(void **state)
{
	static const char nn_text[] =
		"Du har ei ny melding. Logg inn for å lese ho.";
	struct world w;
	struct push_ua ua;
	struct push_msg m;
	size_t before = push_sink_count(push);
	uint8_t *pt = NULL;
	size_t pt_len = 0;
	char why[200];
	json_t *j;
	int64_t t0;

	(void)state;
	make_world(&w, 1, "00:00", "00:00");
	/* A phone number too: the choice, web push, decides. */
	contact(&w, 0, 1, 0);
	assert_int_equal(push_ua_new(&ua), 0);
	subscribe(&w.b[0], &ua, "elisa-1", "nn");
	t0 = wall_ms();
	set_clock(t0);
	send_all(&w, CANARY "-push1");
	send_all(&w, CANARY "-push2");
	set_clock(t0 + 16 * MIN);
	if (push_sink_wait(push, before + 1, bvt_ms(BVT_TIMEOUT)) != 0) {
		push_sink_last_refusal(push, why, sizeof(why));
		print_log("notifier.log");
		fail_msg("no push (sink: %s)", why);
	}
	assert_int_equal(push_sink_get(push, before, &m), 0);
	assert_string_equal(m.id, "elisa-1");
	assert_string_equal(m.k, vapid_public);
	if (push_ua_decrypt(&ua, m.body, m.len, &pt, &pt_len, why,
			    sizeof(why)) != 0)
		fail_msg("the browser cannot read the push: %s", why);
	assert_false(bvt_mem_contains(pt, pt_len, CANARY, strlen(CANARY)));
	j = json_loads((const char *)pt, 0, NULL);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "body")),
			    nn_text);
	assert_string_equal(json_string_value(json_object_get(j, "title")),
			    "Ny melding");
	assert_int_equal(json_object_size(j), 2);
	says_nothing((const char *)pt);
	json_decref(j);
	free(pt);
	free(m.body);
	wait_sent(w.b[0].account, 1);
	/* Exactly one, and no SMS. */
	set_clock(t0 + 200 * MIN);
	settle();
	assert_int_equal(push_sink_count(push), before + 1);
	j = sms_for(w.phone[0]);
	assert_int_equal(json_array_size(j), 0);
	json_decref(j);
}

static void
t_webpush_gone(void **state)
{
	struct world w;
	struct push_ua ua;
	size_t before = push_sink_count(push),
	       gone = push_sink_answered(push, 410);
	int64_t t0;
	json_t *l;

	(void)state;
	make_world(&w, 1, "00:00", "00:00");
	contact(&w, 0, 1, 0);
	assert_int_equal(push_ua_new(&ua), 0);
	subscribe(&w.b[0], &ua, "gone-1", "en");
	push_sink_set_mode(push, 410, 0);
	t0 = wall_ms();
	set_clock(t0);
	send_all(&w, CANARY "-gone1");
	set_clock(t0 + 16 * MIN);
	wait_answered(410, gone + 1);
	/* The subscription is deleted, the failure not retried. */
	{
		int64_t deadline = bvt_now_ms() + bvt_ms(BVT_TIMEOUT);

		while (sql_int("SELECT count(*) FROM notify_settings WHERE "
			       "account_id = $1::uuid AND webpush_endpoint "
			       "IS NULL AND webpush_p256dh IS NULL AND "
			       "webpush_auth IS NULL",
			       w.b[0].account) != 1 &&
		       bvt_now_ms() < deadline)
			bvt_sleep_ms(50);
	}
	assert_int_equal(sql_int("SELECT count(*) FROM notify_settings WHERE "
				 "account_id = $1::uuid AND webpush_endpoint "
				 "IS NULL AND channel = 'webpush'",
				 w.b[0].account),
			 1);
	wait_recorded(w.b[0].account, NULL, 0);
	push_sink_set_mode(push, 201, 0);
	/* Nothing more through web push until the widget subscribes
	 * again, and no fallback to SMS: the person chose web push. */
	set_clock(t0 + 30 * MIN);
	send_all(&w, CANARY "-gone2");
	set_clock(t0 + 200 * MIN);
	settle();
	set_clock(t0 + 400 * MIN);
	settle();
	assert_int_equal(push_sink_answered(push, 410), gone + 1);
	assert_int_equal(push_sink_count(push), before);
	l = sms_for(w.phone[0]);
	assert_int_equal(json_array_size(l), 0);
	json_decref(l);
	/* Subscribed again: pushes come again. */
	subscribe(&w.b[0], &ua, "gone-2", "en");
	set_clock(t0 + 401 * MIN);
	send_all(&w, CANARY "-gone3");
	set_clock(t0 + 420 * MIN);
	assert_int_equal(push_sink_wait(push, before + 1, bvt_ms(BVT_TIMEOUT)),
			 0);
}

static void
t_webpush_retry_after(void **state)
{
	struct world w;
	struct push_ua ua;
	size_t before = push_sink_count(push),
	       busy = push_sink_answered(push, 429);
	int64_t t0;

	(void)state;
	make_world(&w, 1, "00:00", "00:00");
	assert_int_equal(push_ua_new(&ua), 0);
	subscribe(&w.b[0], &ua, "busy-1", "nb");
	/* Busy, come back in 5 minutes (the backoff alone says 30 s). */
	push_sink_set_mode(push, 429, 300);
	t0 = wall_ms();
	set_clock(t0);
	send_all(&w, CANARY "-busy");
	set_clock(t0 + 16 * MIN);
	wait_answered(429, busy + 1);
	wait_tried(w.b[0].account, 1);
	push_sink_set_mode(push, 201, 0);
	set_clock(t0 + 16 * MIN + 60 * 1000);
	settle();
	assert_int_equal(push_sink_count(push), before);
	assert_int_equal(push_sink_answered(push, 429), busy + 1);
	set_clock(t0 + 16 * MIN + 302 * 1000);
	assert_int_equal(push_sink_wait(push, before + 1, bvt_ms(BVT_TIMEOUT)),
			 0);
}

/* Nothing the notifier or the relay stored or logged holds a canary. */
static void
t_no_canary_anywhere(void **state)
{
	size_t len = 0;
	char *dump = bvt_pg_dump(env.db, &len), path[160], *s;
	static const char *const logs[] = {"notifier.log", "devserver.log",
					   "sms.jsonl"};
	size_t i;

	(void)state;
	assert_non_null(dump);
	/* Queue bodies are the test's plain "ciphertext": only the
	 * notification tables must be clean. */
	{
		char *n = strstr(dump, "COPY public.notify_");

		while (n) {
			char *end = strstr(n, "\n\\.\n");

			assert_non_null(end);
			assert_false(bvt_mem_contains(n, (size_t)(end - n),
						      CANARY, strlen(CANARY)));
			n = strstr(end, "COPY public.notify_");
		}
	}
	free(dump);
	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, logs[i]);
		s = bvt_file_read(path, &len);
		if (!s)
			continue;
		assert_false(bvt_mem_contains(s, len, CANARY, strlen(CANARY)));
		if (i == 0) /* no number or address in the notifier's log */
			assert_false(
				bvt_mem_contains(s, len, "+47", 3) ||
				bvt_mem_contains(s, len, "@example.no", 11));
		free(s);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_notify_set_checks),
		cmocka_unit_test(t_sms),
		cmocka_unit_test(t_acked_in_time),
		cmocka_unit_test(t_coalesce),
		cmocka_unit_test(t_quiet_hours),
		cmocka_unit_test(t_email_languages),
		cmocka_unit_test(t_failures_retried),
		cmocka_unit_test(t_given_up),
		cmocka_unit_test(t_challenge_webpush_key),
		cmocka_unit_test(t_webpush),
		cmocka_unit_test(t_webpush_gone),
		cmocka_unit_test(t_webpush_retry_after),
		cmocka_unit_test(t_no_canary_anywhere),
	};
	int failures;

	bvt_open_case = 1;
	failures = cmocka_run_group_tests_name("33-notify", tests, setup,
					       teardown);
	return bvt_done(failures);
}
