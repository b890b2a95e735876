/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * main.c: bvchat-relay's command line. Reads the config file and flags,
 * then either applies migrations (--migrate), runs an admin command
 * (admin …) or an audit-log command (audit …), or runs the relay: checks the schema, connects to PostgreSQL,
 * listens, and on SIGTERM/SIGINT drains and exits 0.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sodium.h>

#include "admin.h"
#include "audit.h"
#include "bv_error.h"
#include "bv_util.h"
#include "blob.h"
#include "fagapi.h"
#include "invite.h"
#include "migrate.h"
#include "relay.h"

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: bvchat-relay [-c FILE] [--DIRECTIVE VALUE]... "
		"[--migrate]\n"
		"       bvchat-relay [-c FILE] [--DIRECTIVE VALUE]... admin "
		"COMMAND [ARGS]\n"
		"       bvchat-relay [-c FILE] [--DIRECTIVE VALUE]... audit "
		"verify|list [ARGS]\n"
		"\n"
		"Runs the bvchat relay: a durable store-and-forward server "
		"for\n"
		"end-to-end encrypted envelopes (WebSocket subprotocol %s).\n"
		"\n"
		"  -c, --config FILE  read directives from FILE first\n"
		"  --migrate          apply database migrations and exit\n"
		"  --help             show this text\n"
		"  --version          show the version\n"
		"  admin --help       list the operator's commands\n"
		"  audit --help       verify or list the audit log\n"
		"\n"
		"Every directive of the config file is also a flag, as\n"
		"--name value or --name=value (flags win over the file):\n\n",
		BV_SUBPROTOCOL);
	config_print_help(f);
}

static void
on_signal(uv_signal_t *h, int signum)
{
	struct relay *r = h->data;

	bv_log(BV_LOG_NOTICE, "signal %d: draining", signum);
	server_drain(r);
}

static uv_signal_t *
watch_signal(struct relay *r, int signum)
{
	uv_signal_t *h = bv_malloc(sizeof(*h));

	if (!h)
		return NULL;
	uv_signal_init(r->loop, h);
	h->data = r;
	uv_signal_start(h, on_signal, signum);
	return h;
}

static void
handle_free(uv_handle_t *h)
{
	bv_free(h);
}

static void
raise_nofile(void)
{
	struct rlimit rl;

	/* Idle connections are cheap; file descriptors must not be the cap. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/*
 * Invites need the key their codes are hashed with; without
 * invite_key_file there are none (their paths answer 404). Returns 0, or
 * BV_ECONFIG / BV_EIO / BV_ENOMEM after logging why.
 */
static int
invites_start(struct relay *r)
{
	char err[256];
	int rc;

	r->invite_limits = invite_limits_new(r->cfg->invite_failures_per_hour);
	if (!r->invite_limits)
		return BV_ENOMEM;
	if (!r->cfg->invite_key_file || !*r->cfg->invite_key_file) {
		bv_log(BV_LOG_NOTICE, "invites: off (no invite_key_file)");
		return 0;
	}
	rc = invite_key_load(r->cfg->invite_key_file, r->invite_key, err,
			     sizeof(err));
	if (rc < 0) {
		bv_log(BV_LOG_ERR, "invite_key_file: %s", err);
		return rc;
	}
	r->invites = 1;
	bv_log(BV_LOG_NOTICE, "invites: on");
	return 0;
}

/*
 * The VAPID public key the relay hands to clients in the challenge (the
 * widget's applicationServerKey): only the public half, so the relay never
 * holds the notifier's signing key. Returns 0, or BV_ECONFIG after logging
 * why when it is not the base64url of an uncompressed P-256 point.
 */
static int
vapid_public_check(const struct relay *r)
{
	const char *k = r->cfg->webpush_vapid_public;
	uint8_t point[66];
	size_t n = 0;

	if (r->cfg->webpush_allow_loopback_http)
		bv_log(BV_LOG_WARN,
		       "webpush_allow_loopback_http is on: notify_set takes "
		       "http://127.0.0.1 push endpoints (tests and development "
		       "only, never in production)");
	if (!k || !*k) {
		bv_log(BV_LOG_NOTICE, "web push: no webpush_vapid_public");
		return 0;
	}
	if (bv_b64url_decode(k, strlen(k), point, sizeof(point), &n) < 0 ||
	    n != 65 || point[0] != 0x04) {
		bv_log(BV_LOG_ERR, "webpush_vapid_public: not the base64url "
				   "of a 65-byte uncompressed P-256 point");
		return BV_ECONFIG;
	}
	return 0;
}

static int
run_relay(struct relay_config *cfg)
{
	static const char *const channels[] = {"bv_devices", "bv_deliver",
					       "bv_connect", "bv_prekeys",
					       CH_ROSTER,    NULL};
	struct relay r;
	struct db_opts o;
	uv_loop_t loop;
	int rc;

	memset(&r, 0, sizeof(r));
	r.cfg = cfg;
	r.loop = &loop;
	bv_uuid_generate(r.instance);
	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	uv_loop_init(&loop);

	memset(&o, 0, sizeof(o));
	o.conninfo = cfg->database;
	o.on_state = ops_on_db_state;
	o.arg = &r;
	o.max_jobs_per_round = cfg->max_commit_batch;
	/*
	 * The queue is nearly empty whenever it is analysed, so the planner
	 * prices a sequential or bitmap scan as cheap, while churn leaves the
	 * index full of entries of deleted rows. Only a plain index scan marks
	 * those dead as it passes (a bitmap scan never does), so later scans
	 * skip them. Every relay query is an index look-up: say so.
	 * Those settings price every other plan at 10^10, which is far above
	 * jit_above_cost: PostgreSQL then JIT-compiles short look-ups (the
	 * case view's SQL function, bv_may_reach) at 1-4 s each on a loaded
	 * machine, for queries that run in milliseconds. No relay query is
	 * long enough for JIT to pay off: it is off on every relay
	 * connection (blob.c's too).
	 */
	o.session_sql = "SELECT set_config('enable_seqscan', 'off', false), "
			"set_config('enable_bitmapscan', 'off', false), "
			"set_config('jit', 'off', false)";
	r.dbw = db_new(&loop, &o);
	o.listen = channels;
	o.on_notify = ops_on_notify;
	r.dbr = db_new(&loop, &o);
	rc = BV_ENOMEM;
	if (!r.dbw || !r.dbr)
		goto out;
	rc = ops_prepare(&r);
	if (rc == 0)
		rc = deliver_prepare(&r);
	if (rc == 0)
		rc = cases_prepare(&r);
	if (rc == 0)
		rc = fagapi_prepare(&r);
	if (rc == 0)
		rc = notifyset_prepare(&r);
	if (rc == 0)
		rc = blob_start(&r);
	if (rc == 0)
		rc = invites_start(&r);
	if (rc == 0)
		rc = vapid_public_check(&r);
	if (rc == 0)
		rc = server_start(&r);
	if (rc < 0)
		goto out;
	r.sig_term = watch_signal(&r, SIGTERM);
	r.sig_int = watch_signal(&r, SIGINT);
	bv_log(BV_LOG_NOTICE, "%s running (instance %s)", RELAY_VERSION,
	       r.instance);
	uv_run(&loop, UV_RUN_DEFAULT);
	bv_log(BV_LOG_NOTICE, "stopped");
out:
	server_destroy(&r);
	blob_stop(&r);
	db_free(r.dbw);
	db_free(r.dbr);
	devcache_clear(&r);
	cases_clear(&r);
	invite_limits_free(r.invite_limits);
	bv_wipe(r.invite_key, sizeof(r.invite_key));
	if (r.sig_term)
		uv_close((uv_handle_t *)r.sig_term, handle_free);
	if (r.sig_int)
		uv_close((uv_handle_t *)r.sig_int, handle_free);
	uv_run(&loop, UV_RUN_DEFAULT);
	server_finish(&r);
	uv_run(&loop, UV_RUN_DEFAULT);
	blob_free(&r);
	uv_loop_close(&loop);
	return rc < 0 ? 1 : 0;
}

/* Returns 1 for the words that start a subcommand: "admin", "audit". */
static int
is_subcommand(const char *a)
{
	return !strcmp(a, "admin") || !strcmp(a, "audit");
}

/*
 * Applies "--name value" / "--name=value" flags; stops at a subcommand,
 * whose index goes to *sub_at.
 */
static int
apply_flags(struct relay_config *cfg, int argc, char **argv, int *migrate,
	    int *sub_at)
{
	char err[256], name[64];
	int i;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *val, *eq;

		if (is_subcommand(a)) {
			*sub_at = i;
			return 0;
		}
		if (!strcmp(a, "--migrate")) {
			*migrate = 1;
			continue;
		}
		if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
			i++; /* loaded already */
			continue;
		}
		if (strncmp(a, "--", 2) != 0) {
			fprintf(stderr, "bvchat-relay: unexpected '%s'\n", a);
			return BV_ECONFIG;
		}
		a += 2;
		eq = strchr(a, '=');
		if (eq) {
			snprintf(name, sizeof(name), "%.*s", (int)(eq - a), a);
			val = eq + 1;
		} else {
			snprintf(name, sizeof(name), "%s", a);
			if (i + 1 >= argc) {
				fprintf(stderr,
					"bvchat-relay: --%s needs a value\n",
					name);
				return BV_ECONFIG;
			}
			val = argv[++i];
		}
		if (config_set(cfg, name, val, err, sizeof(err)) < 0) {
			fprintf(stderr, "bvchat-relay: --%s: %s\n", name, err);
			return BV_ECONFIG;
		}
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct relay_config cfg;
	int i, migrate = 0, sub_at = 0, level, status = 1;

	if (sodium_init() < 0)
		return 1;
	for (i = 1; i < argc && !is_subcommand(argv[i]); i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			if (config_defaults(&cfg) == 0) {
				usage(stdout);
				config_cleanup(&cfg);
			}
			return 0;
		}
		if (!strcmp(argv[i], "--version")) {
			printf("%s\n", RELAY_VERSION);
			return 0;
		}
	}
	if (config_defaults(&cfg) < 0)
		return 1;
	for (i = 1; i + 1 < argc && !is_subcommand(argv[i]); i++)
		if ((!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) &&
		    config_load_file(&cfg, argv[i + 1]) < 0)
			goto out;
	if (apply_flags(&cfg, argc, argv, &migrate, &sub_at) < 0) {
		status = 2;
		goto out;
	}
	level = bv_log_level_from_name(cfg.log_level);
	bv_log_set_level(level < 0 ? BV_LOG_NOTICE : level);
	if (sub_at && !strcmp(argv[sub_at], "admin")) {
		status = admin_main(&cfg, argc - sub_at - 1, argv + sub_at + 1);
		goto out;
	}
	if (sub_at) {
		status = audit_main(&cfg, argc - sub_at, argv + sub_at);
		goto out;
	}
	if (migrate) {
		status = migrate_apply(cfg.database) < 0 ? 1 : 0;
		goto out;
	}
	if (migrate_check(cfg.database) < 0)
		goto out;
	status = run_relay(&cfg);
out:
	config_cleanup(&cfg);
	return status;
}
