/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_io: the parts of fiks_io.c that need no server: the config file
 * (every refusal with its line and key, never a value), fiks_client_new's
 * key checks, fiks_send_raw's refusal of bad requests before any network,
 * and that fiks_receive gives up within its timeout when nothing answers.
 * The transport itself is tests/integration/30-fiksio.c's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/pem.h>

#include "bv_error.h"
#include "bv_util.h"
#include "fiks_error.h"
#include "fiks_identity.h"
#include "fiks_io.h"

static char dir[64];
static char key[128], cert[128], key2[128], cert2[128], pkcs1[128];

static void
write_text(const char *path, const char *s)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_true(fputs(s, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

/* A complete config for the keys made in setup, plus extra lines. */
static void
write_config(const char *path, const char *extra)
{
	char buf[4096];

	snprintf(buf, sizeof(buf),
		 "# a comment\n"
		 "\n"
		 "api_url   http://127.0.0.1:1/  \n"
		 "token_url http://127.0.0.1:1/token\n"
		 "amqp_host 127.0.0.1\n"
		 "integration_id 0b6f2b0e-9a7c-4a53-8a8e-2f2b1b0c4d11\n"
		 "integration_password s3cret-value\n"
		 "client_id bvtest\n"
		 "account_id 5c1d2e3f-4a5b-4c6d-8e7f-0a1b2c3d4e5f\n"
		 "key_path %s\n"
		 "cert_path %s\n"
		 "%s",
		 key, cert, extra ? extra : "");
	write_text(path, buf);
}

static int
setup(void **state)
{
	EVP_PKEY *k = NULL;
	BIO *out;
	FILE *f;
	int ok;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/bvt-test_io-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(key, sizeof(key), "%s/a.key", dir);
	snprintf(cert, sizeof(cert), "%s/a.crt", dir);
	snprintf(key2, sizeof(key2), "%s/b.key", dir);
	snprintf(cert2, sizeof(cert2), "%s/b.crt", dir);
	snprintf(pkcs1, sizeof(pkcs1), "%s/a-pkcs1.key", dir);
	if (fiks_identity_generate(key, cert, "a", 2048, 1) < 0 ||
	    fiks_identity_generate(key2, cert2, "b", 2048, 1) < 0)
		return -1;
	/* The same key as a, in the PKCS#1 form FIKS IO refuses. */
	f = fopen(key, "r");
	if (!f)
		return -1;
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	out = BIO_new_file(pkcs1, "w");
	ok = k && out &&
	     PEM_write_bio_PrivateKey_traditional(out, k, NULL, NULL, 0, NULL,
						  NULL) == 1;
	BIO_free(out);
	EVP_PKEY_free(k);
	if (!ok)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
t_config_ok(void **state)
{
	struct fiks_config cfg;
	char path[128], err[256];

	(void)state;
	snprintf(path, sizeof(path), "%s/ok.conf", dir);
	write_config(path, "amqp_tls 1\nprefetch 3\n# end\n");
	assert_int_equal(fiks_config_load(path, &cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg.api_url, "http://127.0.0.1:1");
	assert_string_equal(cfg.integration_password, "s3cret-value");
	assert_string_equal(cfg.account_id,
			    "5c1d2e3f-4a5b-4c6d-8e7f-0a1b2c3d4e5f");
	assert_int_equal(cfg.amqp_tls, 1);
	assert_int_equal(cfg.prefetch, 3);
	assert_int_equal(cfg.amqp_port, 0); /* the client's default */
	assert_null(cfg.amqp_vhost);
	assert_null(cfg.sign_key_path);
	fiks_config_free(&cfg);
	fiks_config_free(&cfg); /* twice is harmless */
}

static void
t_config_refusals(void **state)
{
	static const struct {
		const char *extra;
		const char *says;
	} cases[] = {
		{"colour blue\n", "unknown key 'colour'"},
		{"client_id again\n", "'client_id' given twice"},
		{"integration_password other-secret\n",
		 "'integration_password' given twice"},
		{"prefetch\n", "'prefetch' needs a value"},
		{"prefetch ten\n", "'prefetch' must be a number"},
		{"amqp_port 70000\n", "'amqp_port' must be a number"},
		{"timeout_ms 0\n", "'timeout_ms' must be a number"},
		{"amqp_tls 2\n", "'amqp_tls' must be a number"},
	};
	struct fiks_config cfg;
	char path[128], err[256];
	size_t i;

	(void)state;
	snprintf(path, sizeof(path), "%s/bad.conf", dir);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		write_config(path, cases[i].extra);
		assert_int_equal(fiks_config_load(path, &cfg, err, sizeof(err)),
				 BV_ECONFIG);
		if (!strstr(err, cases[i].says))
			fail_msg("case %zu: '%s' does not say '%s'", i, err,
				 cases[i].says);
		/* The line number is there; the secret never is. */
		assert_non_null(strstr(err, ":1"));
		assert_null(strstr(err, "secret"));
		assert_null(cfg.api_url);
	}
}

static void
t_config_missing_and_malformed(void **state)
{
	struct fiks_config cfg;
	char path[128], err[256], buf[6000];

	(void)state;
	snprintf(path, sizeof(path), "%s/bad.conf", dir);
	write_text(path, "api_url http://x\n");
	assert_int_equal(fiks_config_load(path, &cfg, err, sizeof(err)),
			 BV_ECONFIG);
	assert_non_null(strstr(err, "'token_url' is missing"));

	write_text(path, "api_url http://x\ntoken_url http://x/t\n"
			 "amqp_host h\nintegration_id nope\n"
			 "integration_password p\nclient_id c\n"
			 "account_id 5c1d2e3f-4a5b-4c6d-8e7f-0a1b2c3d4e5f\n"
			 "key_path k\ncert_path c\n");
	assert_int_equal(fiks_config_load(path, &cfg, err, sizeof(err)),
			 BV_ECONFIG);
	assert_non_null(strstr(err, "integration_id is not a UUID"));

	write_text(path, "api_url ftp://x\ntoken_url http://x/t\n"
			 "amqp_host h\n"
			 "integration_id 0b6f2b0e-9a7c-4a53-8a8e-2f2b1b0c4d11\n"
			 "integration_password p\nclient_id c\n"
			 "account_id 5c1d2e3f-4a5b-4c6d-8e7f-0a1b2c3d4e5f\n"
			 "key_path k\ncert_path c\n");
	assert_int_equal(fiks_config_load(path, &cfg, err, sizeof(err)),
			 BV_ECONFIG);
	assert_non_null(strstr(err, "api_url must be http(s)"));

	/* A line longer than the parser holds is an error, not two lines. */
	memset(buf, 'x', sizeof(buf) - 2);
	memcpy(buf, "client_id ", 10);
	buf[sizeof(buf) - 2] = '\n';
	buf[sizeof(buf) - 1] = '\0';
	write_text(path, buf);
	assert_int_equal(fiks_config_load(path, &cfg, err, sizeof(err)),
			 BV_ECONFIG);
	assert_non_null(strstr(err, "line too long"));

	snprintf(path, sizeof(path), "%s/none.conf", dir);
	assert_int_equal(fiks_config_load(path, &cfg, err, sizeof(err)),
			 BV_EIO);
}

static void
load(const char *extra, struct fiks_config *cfg)
{
	char path[128], err[256];

	snprintf(path, sizeof(path), "%s/c.conf", dir);
	write_config(path, extra);
	if (fiks_config_load(path, cfg, err, sizeof(err)) != 0)
		fail_msg("%s", err);
}

static void
t_client_keys(void **state)
{
	struct fiks_config cfg;
	struct fiks_client *c = NULL;
	char *saved;

	(void)state;
	load(NULL, &cfg);
	assert_int_equal(fiks_client_new(&cfg, &c), 0);
	assert_string_equal(fiks_client_account(c),
			    "5c1d2e3f-4a5b-4c6d-8e7f-0a1b2c3d4e5f");
	/* Defaults filled in on the client's copy. */
	assert_int_equal(fiks_client_config(c)->prefetch, 10);
	assert_int_equal(fiks_client_config(c)->timeout_ms, 30000);
	assert_int_equal(fiks_client_config(c)->amqp_port, 5672);
	fiks_client_free(c);
	c = NULL;

	saved = cfg.key_path;
	cfg.key_path = pkcs1; /* PKCS#1: refused */
	assert_int_equal(fiks_client_new(&cfg, &c), FIKS_EKEY);
	cfg.key_path = key2; /* not the certificate's key */
	assert_int_equal(fiks_client_new(&cfg, &c), FIKS_EKEY);
	cfg.key_path = NULL;
	assert_int_equal(fiks_client_new(&cfg, &c), BV_EINVAL);
	cfg.key_path = saved;
	/* A signing key needs its certificate. */
	cfg.sign_key_path = key2;
	assert_int_equal(fiks_client_new(&cfg, &c), BV_EINVAL);
	cfg.sign_cert_path = cert2;
	assert_int_equal(fiks_client_new(&cfg, &c), 0);
	fiks_client_free(c);
	cfg.sign_key_path = NULL;
	cfg.sign_cert_path = NULL;
	fiks_config_free(&cfg);
	fiks_client_free(NULL);
}

static void
t_send_refuses_bad_requests(void **state)
{
	static const struct fiks_header reserved[] = {{"klientMeldingId", "x"}};
	static const struct fiks_header badname[] = {{"a b", "x"}};
	static const struct fiks_header twice[] = {{"a", "1"}, {"a", "2"}};
	struct fiks_header many[FIKS_HEADERS_MAX];
	char longtype[FIKS_TYPE_MAX + 2], longval[FIKS_HEADER_VALUE_MAX + 2];
	struct fiks_send_req ok = {"5c1d2e3f-4a5b-4c6d-8e7f-0a1b2c3d4e5f",
				   "no.ks.test",
				   NULL,
				   0,
				   NULL,
				   NULL,
				   NULL,
				   0};
	struct fiks_send_req r;
	struct fiks_config cfg;
	struct fiks_client *c = NULL;
	char id[FIKS_UUID_LEN + 1];
	size_t i;

	(void)state;
	load(NULL, &cfg);
	assert_int_equal(fiks_client_new(&cfg, &c), 0);
	fiks_config_free(&cfg);
	memset(longtype, 't', sizeof(longtype) - 1);
	longtype[sizeof(longtype) - 1] = '\0';
	memset(longval, 'v', sizeof(longval) - 1);
	longval[sizeof(longval) - 1] = '\0';
	for (i = 0; i < FIKS_HEADERS_MAX; i++) {
		many[i].name = "h";
		many[i].value = "v";
	}
	/* Each of these is refused before anything is sent (the URLs
	 * point at a closed port: a request would say FIKS_EHTTP). */
	r = ok;
	r.mottaker = "not-a-uuid";
	assert_int_equal(fiks_send_raw(c, &r, NULL, 0, id), BV_EINVAL);
	r = ok;
	r.type = longtype;
	assert_int_equal(fiks_send_raw(c, &r, NULL, 0, id), BV_EINVAL);
	r = ok;
	r.type = "";
	assert_int_equal(fiks_send_raw(c, &r, NULL, 0, id), BV_EINVAL);
	r = ok;
	r.ttl_ms = 500; /* Fiks IO's minimum is 1 s */
	assert_int_equal(fiks_send_raw(c, &r, NULL, 0, id), BV_EINVAL);
	r = ok;
	r.svar_paa = "x";
	assert_int_equal(fiks_send_raw(c, &r, NULL, 0, id), BV_EINVAL);
	r = ok;
	r.klient_melding_id = longval;
	assert_int_equal(fiks_send_raw(c, &r, NULL, 0, id), BV_EINVAL);
	r = ok;
	r.headers = reserved;
	r.n_headers = 1;
	assert_int_equal(fiks_send_raw(c, &r, NULL, 0, id), BV_EINVAL);
	r.headers = badname;
	assert_int_equal(fiks_send_raw(c, &r, NULL, 0, id), BV_EINVAL);
	r.headers = twice;
	r.n_headers = 2;
	assert_int_equal(fiks_send_raw(c, &r, NULL, 0, id), BV_EINVAL);
	r.headers = many;
	r.n_headers = FIKS_HEADERS_MAX;
	assert_int_equal(fiks_send_raw(c, &r, NULL, 0, id), BV_EINVAL);
	r = ok;
	assert_int_equal(fiks_send_raw(c, &r, NULL, 5, id), BV_EINVAL);
	/* A good request reaches the (absent) server. */
	assert_int_equal(fiks_send_raw(c, &ok, NULL, 0, id), FIKS_EHTTP);
	assert_int_equal(fiks_katalog_cert(c, "nope", NULL), BV_EINVAL);
	fiks_client_free(c);
}

/* Nothing answers: fiks_receive retries with backoff and returns
 * FIKS_EAMQP once its timeout is spent, not much later. */
static void
t_receive_gives_up_in_time(void **state)
{
	struct fiks_config cfg;
	struct fiks_client *c = NULL;
	struct fiks_melding *m = NULL;
	struct timespec t0, t1;
	long ms;

	(void)state;
	load("amqp_port 1\ntimeout_ms 1000\n", &cfg);
	assert_int_equal(fiks_client_new(&cfg, &c), 0);
	fiks_config_free(&cfg);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(fiks_receive(c, 700, &m), FIKS_EAMQP);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 +
	     (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(ms >= 600);
	assert_true(ms < 3000);
	assert_null(m);
	fiks_client_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_config_ok),
		cmocka_unit_test(t_config_refusals),
		cmocka_unit_test(t_config_missing_and_malformed),
		cmocka_unit_test(t_client_keys),
		cmocka_unit_test(t_send_refuses_bad_requests),
		cmocka_unit_test(t_receive_gives_up_in_time),
	};

	return cmocka_run_group_tests_name("fiks_io", tests, setup, teardown);
}
