/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_config.c: unit tests of relay/config.c: defaults, file parsing
 * (comments, blank lines, CRLF, quotes), refusals with their line number,
 * ranges, --help output, and contract checks that the example config and
 * the limits table of docs/protocol.md agree with the directive table.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bv_error.h"
#include "bv_util.h"
#include "config.h"

/* Every directive and its default, as documented. */
static const struct {
	const char *name, *def;
} expected[] = {
	{"listen", "127.0.0.1"},
	{"port", "8480"},
	{"database", "dbname=bvchat"},
	{"log_level", "notice"},
	{"max_frame_bytes", "262144"},
	{"max_envelope_bytes", "65536"},
	{"max_envelopes_per_send", "100"},
	{"max_prekeys_per_upload", "100"},
	{"max_prekeys_stock", "1000"},
	{"prekeys_low_watermark", "20"},
	{"max_devices_per_account", "10"},
	{"max_queue_per_device", "10000"},
	{"sends_per_minute", "600"},
	{"max_connections_per_account", "10"},
	{"max_requests_in_flight", "64"},
	{"deliver_window", "64"},
	{"auth_timeout_ms", "10000"},
	{"enrollment_token_max_ttl_s", "86400"},
	{"max_output_bytes", "1048576"},
	{"shutdown_timeout_ms", "10000"},
	{"max_commit_batch", "256"},
	{"office_clock_offset_s", "0"},
	{"widget_dir", ""},
	{"widget_origins", ""},
	{"widget_embed_origins", ""},
	{"widget_max_file_bytes", "16777216"},
	{"invite_key_file", ""},
	{"invite_max_ttl_s", "259200"},
	{"invite_failures_per_hour", "10"},
	{"client_ip_header", ""},
	{"webpush_allow_loopback_http", "0"},
	{"notify_poll_ms", "1000"},
	{"notify_batch", "32"},
	{"notify_max_attempts", "8"},
	{"notify_backoff_s", "30"},
	{"notify_backoff_max_s", "3600"},
	{"notify_lease_s", "300"},
	{"notify_timeout_ms", "10000"},
	{"varsling_fiks_config", ""},
	{"varsling_konto", ""},
	{"task_fiks_config", ""},
	{"task_link", ""},
	{"smtp_url", ""},
	{"smtp_from", ""},
	{"smtp_credentials_file", ""},
	{"max_blob_bytes", "26214400"},
	{"blob_upload_ttl_s", "3600"},
	{"blob_sweep_interval_s", "60"},
	{"blob_stall_timeout_s", "30"},
	{"webpush_vapid_key", ""},
	{"webpush_subject", ""},
	{"webpush_vapid_public", ""},
};
#define N_EXPECTED (sizeof(expected) / sizeof(expected[0]))

static char tmpdir[] = "/tmp/bv_test_config_XXXXXX";
static char stderr_buf[8192];

static int
setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Writes text to a file in tmpdir and returns its path (static). */
static const char *
write_file(const char *name, const char *text)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

/* Loads path with stderr captured into stderr_buf. */
static int
load_captured(struct relay_config *c, const char *path)
{
	char errpath[300];
	int fd, saved, rc;
	ssize_t n;

	snprintf(errpath, sizeof(errpath), "%s/stderr", tmpdir);
	fd = open(errpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	fflush(stderr);
	saved = dup(2);
	dup2(fd, 2);
	rc = config_load_file(c, path);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	lseek(fd, 0, SEEK_SET);
	n = read(fd, stderr_buf, sizeof(stderr_buf) - 1);
	close(fd);
	stderr_buf[n > 0 ? n : 0] = '\0';
	return rc;
}

static void
test_defaults(void **state)
{
	struct relay_config c;

	(void)state;
	assert_int_equal(config_defaults(&c), 0);
	assert_string_equal(c.listen, "127.0.0.1");
	assert_int_equal(c.port, 8480);
	assert_string_equal(c.database, "dbname=bvchat");
	assert_string_equal(c.log_level, "notice");
	assert_int_equal(c.limits.max_frame_bytes, 262144);
	assert_int_equal(c.limits.max_envelope_bytes, 65536);
	assert_int_equal(c.limits.max_envelopes_per_send, 100);
	assert_int_equal(c.limits.max_prekeys_per_upload, 100);
	assert_int_equal(c.max_prekeys_stock, 1000);
	assert_int_equal(c.prekeys_low_watermark, 20);
	assert_int_equal(c.max_devices_per_account, 10);
	assert_int_equal(c.max_queue_per_device, 10000);
	assert_int_equal(c.sends_per_minute, 600);
	assert_int_equal(c.max_connections_per_account, 10);
	assert_int_equal(c.max_requests_in_flight, 64);
	assert_int_equal(c.deliver_window, 64);
	assert_int_equal(c.auth_timeout_ms, 10000);
	assert_int_equal(c.enrollment_token_max_ttl_s, 86400);
	assert_int_equal(c.max_output_bytes, 1048576);
	assert_int_equal(c.shutdown_timeout_ms, 10000);
	assert_int_equal(c.max_commit_batch, 256);
	config_cleanup(&c);
	assert_null(c.listen);
	config_cleanup(&c);
	config_cleanup(NULL);
}

static void
test_defaults_match_bv_limits(void **state)
{
	struct relay_config c;
	struct bv_limits l;

	(void)state;
	assert_int_equal(config_defaults(&c), 0);
	bv_limits_default(&l);
	assert_memory_equal(&c.limits, &l, sizeof(l));
	config_cleanup(&c);
}

static void
test_load_file(void **state)
{
	struct relay_config c;
	const char *path;

	(void)state;
	path = write_file("good.conf",
			  "# bvchat-relay test configuration\n"
			  "\n"
			  "   # an indented comment\n"
			  "listen 0.0.0.0\n"
			  "port\t9000\r\n"
			  "  database host=/run/postgresql dbname=x "
			  "password=a#b  \n"
			  "log_level \"debug\"\n"
			  "max_frame_bytes 1024\n"
			  "max_envelope_bytes 16777216\n"
			  "sends_per_minute 0\n"
			  "port 9001\n"
			  "\t\n");
	assert_int_equal(config_defaults(&c), 0);
	assert_int_equal(load_captured(&c, path), 0);
	assert_string_equal(stderr_buf, "");
	assert_string_equal(c.listen, "0.0.0.0");
	assert_int_equal(c.port, 9001); /* later wins */
	assert_string_equal(c.database,
			    "host=/run/postgresql dbname=x password=a#b");
	assert_string_equal(c.log_level, "debug");
	assert_int_equal(c.limits.max_frame_bytes, 1024);
	assert_int_equal(c.limits.max_envelope_bytes, 16777216);
	assert_int_equal(c.sends_per_minute, 0);
	assert_int_equal(c.deliver_window, 64); /* untouched */
	config_cleanup(&c);

	path = write_file("empty.conf", "");
	assert_int_equal(config_defaults(&c), 0);
	assert_int_equal(load_captured(&c, path), 0);
	assert_int_equal(c.port, 8480);
	config_cleanup(&c);
}

static void
expect_load_error_at(int line, const char *text, const char *msg)
{
	struct relay_config c;
	const char *path;
	char want[512];

	assert_int_equal(config_defaults(&c), 0);
	path = write_file("bad.conf", text);
	snprintf(want, sizeof(want), "%s:%s\n", path, msg);
	if (load_captured(&c, path) != BV_ECONFIG ||
	    strcmp(stderr_buf, want) != 0)
		fail_msg("line %d: stderr \"%s\", want \"%s\"", line,
			 stderr_buf, want);
	/* A failed load changes nothing. */
	assert_int_equal(c.port, 8480);
	assert_string_equal(c.listen, "127.0.0.1");
	config_cleanup(&c);
}

#define EXPECT_LOAD_ERROR(text, msg) expect_load_error_at(__LINE__, text, msg)

static void
test_load_errors(void **state)
{
	(void)state;
	EXPECT_LOAD_ERROR("port 9000\nlisten ::1\n# x\nmax_frames 5\n",
			  "4: unknown directive \"max_frames\"");
	EXPECT_LOAD_ERROR("port 9000\nport 70000\n",
			  "2: port must be 1 to 65535");
	EXPECT_LOAD_ERROR("\n\n\nport 0\n", "4: port must be 1 to 65535");
	EXPECT_LOAD_ERROR("max_frame_bytes 1023\n",
			  "1: max_frame_bytes must be 1024 to 67108864 bytes");
	EXPECT_LOAD_ERROR("auth_timeout_ms 99\n",
			  "1: auth_timeout_ms must be 100 to 3600000 ms");
	EXPECT_LOAD_ERROR("port -1\n", "1: port: \"-1\" is not a number");
	EXPECT_LOAD_ERROR("port 12abc\n", "1: port: \"12abc\" is not a number");
	EXPECT_LOAD_ERROR("port 0x10\n", "1: port: \"0x10\" is not a number");
	EXPECT_LOAD_ERROR("port 99999999999999999999999\n",
			  "1: port: \"99999999999999999999999\" is not a "
			  "number");
	EXPECT_LOAD_ERROR("port 8480 # http\n",
			  "1: port: \"8480 # http\" is not a number");
	EXPECT_LOAD_ERROR("port\n", "1: port needs a value");
	EXPECT_LOAD_ERROR("listen 0.0.0.0\nport  \n", "2: port needs a value");
	EXPECT_LOAD_ERROR("nonsense\n", "1: unknown directive \"nonsense\"");
	EXPECT_LOAD_ERROR("log_level verbose\n",
			  "1: log_level must be err, warn, notice, info or "
			  "debug");
	EXPECT_LOAD_ERROR("listen \"\"\n",
			  "1: listen must be 1 to 255 characters");
	EXPECT_LOAD_ERROR("Port 1\n", "1: unknown directive \"Port\"");
}

/* Origin lists: what a browser writes in its Origin header, nothing else. */
static void
test_origins(void **state)
{
	static const char *const good[] = {
		"",
		"http://127.0.0.1:8480",
		"https://kommune.example  http://localhost:8480",
		" https://a.example ",
		"http://[::1]:8480",
		"https://x-y.example.no:65535",
	};
	static const char *const bad[] = {
		"http://Kommune.example",
		"https://a.example/",
		"https://a.example/path",
		"ftp://a.example",
		"https://",
		"http://a:0",
		"http://a:65536",
		"http://a:",
		"http://a:123456",
		"*",
		"'self'",
		"https://a.example;",
		"https://a.example,https://b.example",
		"https://a b",
		"http://[]:80",
		"http://[::1",
		"https://a.example\t",
	};
	struct relay_config c;
	char err[160];
	size_t i;

	(void)state;
	assert_int_equal(config_defaults(&c), 0);
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (config_set(&c, "widget_origins", good[i], err,
			       sizeof(err)) != 0)
			fail_msg("\"%s\": %s", good[i], err);
	assert_string_equal(c.widget_origins, "https://x-y.example.no:65535");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (config_set(&c, "widget_embed_origins", bad[i], err,
			       sizeof(err)) != BV_ECONFIG)
			fail_msg("\"%s\" accepted", bad[i]);
		assert_non_null(strstr(err, "widget_embed_origins: origins"));
	}
	assert_string_equal(c.widget_embed_origins, "");
	config_cleanup(&c);
}

static void
test_load_io(void **state)
{
	struct relay_config c;
	char path[300];

	(void)state;
	assert_int_equal(config_defaults(&c), 0);
	snprintf(path, sizeof(path), "%s/missing.conf", tmpdir);
	assert_int_equal(load_captured(&c, path), BV_EIO);
	assert_non_null(strstr(stderr_buf, "missing.conf: "));
	config_cleanup(&c);
}

static void
test_set(void **state)
{
	struct relay_config c;
	char err[128];

	(void)state;
	assert_int_equal(config_defaults(&c), 0);
	assert_int_equal(config_set(&c, "port", "1", err, sizeof(err)), 0);
	assert_int_equal(c.port, 1);
	assert_int_equal(config_set(&c, "port", "65535", err, sizeof(err)), 0);
	assert_int_equal(config_set(&c, "port", "65536", err, sizeof(err)),
			 BV_ECONFIG);
	assert_string_equal(err, "port must be 1 to 65535");
	assert_int_equal(c.port, 65535);
	assert_int_equal(config_set(&c, "port", "", err, sizeof(err)),
			 BV_ECONFIG);
	assert_int_equal(config_set(&c, "port", NULL, err, sizeof(err)),
			 BV_ECONFIG);
	assert_int_equal(config_set(&c, "bogus", "1", err, sizeof(err)),
			 BV_ECONFIG);
	assert_string_equal(err, "unknown directive \"bogus\"");
	assert_int_equal(config_set(&c, NULL, "1", err, sizeof(err)),
			 BV_ECONFIG);
	/* err is optional. */
	assert_int_equal(config_set(&c, "bogus", "1", NULL, 0), BV_ECONFIG);

	assert_int_equal(
		config_set(&c, "max_envelope_bytes", "1", err, sizeof(err)), 0);
	assert_int_equal(c.limits.max_envelope_bytes, 1);
	assert_int_equal(
		config_set(&c, "max_envelope_bytes", "0", err, sizeof(err)),
		BV_ECONFIG);
	assert_int_equal(
		config_set(&c, "prekeys_low_watermark", "0", err, sizeof(err)),
		0);
	assert_int_equal(config_set(&c, "max_envelopes_per_send", "10000", err,
				    sizeof(err)),
			 0);
	assert_int_equal(c.limits.max_envelopes_per_send, 10000);
	assert_int_equal(config_set(&c, "max_envelopes_per_send", "10001", err,
				    sizeof(err)),
			 BV_ECONFIG);
	assert_int_equal(config_set(&c, "database", "", err, sizeof(err)), 0);
	assert_string_equal(c.database, "");
	assert_int_equal(config_set(&c, "log_level", "err", err, sizeof(err)),
			 0);
	assert_string_equal(c.log_level, "err");

	/* A password in a bad database value is never echoed. */
	{
		char big[5000];

		memset(big, 'p', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		memcpy(big, "password=", 9);
		assert_int_equal(
			config_set(&c, "database", big, err, sizeof(err)),
			BV_ECONFIG);
		assert_null(strstr(err, "ppp"));
	}
	config_cleanup(&c);
}

static void
test_every_directive_settable(void **state)
{
	struct relay_config c;
	char err[128];
	size_t i;

	(void)state;
	assert_int_equal(config_defaults(&c), 0);
	for (i = 0; i < N_EXPECTED; i++)
		if (config_set(&c, expected[i].name, expected[i].def, err,
			       sizeof(err)) != 0)
			fail_msg("%s: %s", expected[i].name, err);
	config_cleanup(&c);
}

static char *
help_text(void)
{
	static char buf[8192];
	FILE *f;
	size_t n;

	f = tmpfile();
	assert_non_null(f);
	config_print_help(f);
	rewind(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void
test_help(void **state)
{
	char *help, want[128], *line, *save = NULL;
	size_t i, lines = 0;

	(void)state;
	help = help_text();
	for (i = 0; i < N_EXPECTED; i++) {
		snprintf(want, sizeof(want), "\n  %s ", expected[i].name);
		if (!strstr(help, want))
			fail_msg("help does not list %s", expected[i].name);
		snprintf(want, sizeof(want), " %s ", expected[i].def);
		assert_non_null(strstr(help, want));
	}
	assert_non_null(strstr(help, "262144 bytes"));
	assert_non_null(strstr(help, "10000 ms"));
	for (line = strtok_r(help, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		assert_true(strlen(line) <= 80);
		lines++;
	}
	assert_int_equal(lines, N_EXPECTED + 1);
}

/* Each directive is in the example as "# name default", and nothing else. */
static void
test_example_documents_every_directive(void **state)
{
	char line[512], name[64], value[128];
	int found[N_EXPECTED] = {0};
	size_t i;
	FILE *f;

	(void)state;
	f = fopen(BV_SOURCE_DIR "/relay/bvchat-relay.conf.example", "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0] != '#' && line[0] != '\0')
			fail_msg("example sets something: \"%s\"", line);
		if (sscanf(line, "# %63[a-z_] %127[^\n]", name, value) != 2)
			continue;
		for (i = 0; i < N_EXPECTED; i++) {
			const char *def = expected[i].def;
			size_t n = strlen(value);

			if (strcmp(name, expected[i].name) != 0)
				continue;
			/* Strings with spaces, and empty ones, are quoted. */
			if (n >= 2 && value[0] == '"' && value[n - 1] == '"') {
				memmove(value, value + 1, n - 2);
				value[n - 2] = '\0';
			}
			if (strcmp(value, def) != 0)
				fail_msg("example: %s %s, default %s", name,
					 value, def);
			found[i]++;
		}
	}
	fclose(f);
	for (i = 0; i < N_EXPECTED; i++)
		if (found[i] != 1)
			fail_msg("example has %s %d times", expected[i].name,
				 found[i]);
}

/* The Limits table of docs/protocol.md states the same defaults. */
static void
test_protocol_limits(void **state)
{
	char line[512], name[64];
	unsigned long long def;
	int rows = 0;
	size_t i;
	FILE *f;

	(void)state;
	f = fopen(BV_SOURCE_DIR "/docs/protocol.md", "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "| `%63[a-z_]` | %llu", name, &def) != 2)
			continue;
		for (i = 0; i < N_EXPECTED; i++) {
			if (strcmp(name, expected[i].name) != 0)
				continue;
			if (strtoull(expected[i].def, NULL, 10) != def)
				fail_msg("protocol.md: %s %llu, config %s",
					 name, def, expected[i].def);
			rows++;
		}
	}
	fclose(f);
	assert_int_equal(rows, 17);
}

static void
test_alloc_torture(void **state)
{
	struct relay_config c;
	const char *path;
	long n;
	int rc;

	(void)state;
	for (n = 1;; n++) {
		bv_alloc_fail_at(n);
		rc = config_defaults(&c);
		bv_alloc_fail_at(0);
		if (rc == 0)
			break;
		assert_int_equal(rc, BV_ENOMEM);
	}
	path = write_file("torture.conf", "listen ::\ndatabase dbname=t\n");
	for (n = 1;; n++) {
		bv_alloc_fail_at(n);
		rc = load_captured(&c, path);
		bv_alloc_fail_at(0);
		if (rc == 0)
			break;
		assert_int_equal(rc, BV_ENOMEM);
		assert_string_equal(c.listen, "127.0.0.1");
	}
	assert_string_equal(c.listen, "::");
	config_cleanup(&c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_defaults_match_bv_limits),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_load_errors),
		cmocka_unit_test(test_load_io),
		cmocka_unit_test(test_origins),
		cmocka_unit_test(test_set),
		cmocka_unit_test(test_every_directive_settable),
		cmocka_unit_test(test_help),
		cmocka_unit_test(test_example_documents_every_directive),
		cmocka_unit_test(test_protocol_limits),
		cmocka_unit_test(test_alloc_torture),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
