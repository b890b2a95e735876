/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * fiks.c: a local FIKS IO per test program (bvtest_fiks.h), started and
 * stopped through tools/fiksio.sh so the tests exercise what make run
 * uses. Each instance lives in a private /tmp/bvt-fiks-XXXXXX on free
 * ports; atexit stops every running one by PID, and util.c's watchdog
 * process (the one that also ends PostgreSQL) does the same if the
 * program dies by a signal ("F dir" / "f dir").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "bv_util.h"
#include "bvtest.h"
#include "bvtest_fiks.h"
#include "fiks_error.h"
#include "fiks_identity.h"
#include "internal.h"

#ifndef BV_FIKSIO_SH
#define BV_FIKSIO_SH "tools/fiksio.sh"
#endif
#ifndef BV_FIKS_DEVSERVER_BIN
#define BV_FIKS_DEVSERVER_BIN "bvfiks-devserver"
#endif

#define INSTANCES_MAX 4

static struct bvt_fiks *instances[INSTANCES_MAX];

static const char *
devserver_bin(void)
{
	const char *e = getenv("BV_FIKS_DEVSERVER_BIN");

	return e && *e ? e : BV_FIKS_DEVSERVER_BIN;
}

static int
fiksio(const struct bvt_fiks *f, const char *cmd, int with_ports)
{
	char amqp[16], http[16], epmd[16], dist[16], tmo[16], amqps[16];
	char *argv[26];
	int n = 0, rc;

	snprintf(amqp, sizeof(amqp), "%d", f->amqp_port);
	snprintf(http, sizeof(http), "%d", f->http_port);
	snprintf(epmd, sizeof(epmd), "%d", f->epmd_port);
	snprintf(dist, sizeof(dist), "%d", f->dist_port);
	snprintf(amqps, sizeof(amqps), "%d", f->amqps_port);
	snprintf(tmo, sizeof(tmo), "%d", bvt_ms(90000) / 1000);
	argv[n++] = "/bin/bash";
	argv[n++] = BV_FIKSIO_SH;
	argv[n++] = (char *)cmd;
	argv[n++] = (char *)f->dir;
	if (with_ports) {
		argv[n++] = "--amqp-port";
		argv[n++] = amqp;
		argv[n++] = "--http-port";
		argv[n++] = http;
		argv[n++] = "--epmd-port";
		argv[n++] = epmd;
		argv[n++] = "--dist-port";
		argv[n++] = dist;
		argv[n++] = "--amqps-port";
		argv[n++] = amqps;
		argv[n++] = "--devserver";
		argv[n++] = (char *)devserver_bin();
		argv[n++] = "--timeout";
		argv[n++] = tmo;
	}
	argv[n] = NULL;
	rc = bvt_run(argv, 0, bvt_ms(150000), NULL, NULL);
	if (rc != 0)
		fprintf(stderr, "bvtest: fiksio.sh %s %s failed (%d)\n", cmd,
			f->dir, rc);
	return rc == 0 ? 0 : -1;
}

static void
fiks_atexit(void)
{
	int i;

	for (i = 0; i < INSTANCES_MAX; i++)
		if (instances[i])
			bvt_fiks_stop(instances[i]);
}

/* ---- accounts ---- */

int
bvt_fiks_keypair(const char *key, const char *cert, const char *cn)
{
	int rc = fiks_identity_generate(key, cert, cn, 2048, 2);

	if (rc < 0)
		fprintf(stderr, "bvtest: fiks_identity_generate: %s\n",
			fiks_strerror(rc));
	return rc < 0 ? -1 : 0;
}

static int
write_file(const char *path, const char *s)
{
	FILE *f = fopen(path, "w");
	int ok;

	if (!f) {
		perror(path);
		return -1;
	}
	ok = fputs(s, f) >= 0;
	ok = fclose(f) == 0 && ok;
	return ok ? 0 : -1;
}

int
bvt_fiks_write_config(const struct bvt_fiks *f, size_t i, const char *path,
		      const char *const *ov)
{
	const struct bvt_fiks_account *a = &f->acct[i];
	char api[64], amqp_port[16];
	const char *kv[] = {"api_url",
			    api,
			    "token_url",
			    NULL,
			    "amqp_host",
			    "127.0.0.1",
			    "amqp_port",
			    amqp_port,
			    "integration_id",
			    a->integration_id,
			    "integration_password",
			    a->password,
			    "client_id",
			    a->client_id,
			    "account_id",
			    a->konto,
			    "key_path",
			    a->key,
			    "cert_path",
			    a->cert,
			    "timeout_ms",
			    "10000"};
	char token[80], buf[8192];
	size_t k, len = 0, j;

	snprintf(api, sizeof(api), "http://127.0.0.1:%d", f->http_port);
	snprintf(token, sizeof(token), "%s/token", api);
	kv[3] = token;
	snprintf(amqp_port, sizeof(amqp_port), "%d", f->amqp_port);
	len += (size_t)snprintf(buf, sizeof(buf), "# bvtest account %zu\n", i);
	for (k = 0; k < sizeof(kv) / sizeof(kv[0]); k += 2) {
		const char *v = kv[k + 1];

		for (j = 0; ov && ov[j]; j += 2)
			if (strcmp(ov[j], kv[k]) == 0)
				v = ov[j + 1];
		if (v && len < sizeof(buf))
			len += (size_t)snprintf(buf + len, sizeof(buf) - len,
						"%s %s\n", kv[k], v);
	}
	/* Overrides of keys not above are added. */
	for (j = 0; ov && ov[j]; j += 2) {
		int known = 0;

		for (k = 0; k < sizeof(kv) / sizeof(kv[0]); k += 2)
			known |= strcmp(ov[j], kv[k]) == 0;
		if (!known && ov[j + 1] && len < sizeof(buf))
			len += (size_t)snprintf(buf + len, sizeof(buf) - len,
						"%s %s\n", ov[j], ov[j + 1]);
	}
	if (len >= sizeof(buf))
		return -1;
	return write_file(path, buf);
}

static int
make_accounts(struct bvt_fiks *f, size_t n)
{
	char path[128], *json = NULL;
	size_t i, len = 0, cap = 16384;
	int rc = -1;

	json = malloc(cap);
	if (!json)
		return -1;
	len += (size_t)snprintf(json, cap, "{\"accounts\":[");
	for (i = 0; i < n; i++) {
		struct bvt_fiks_account *a = &f->acct[i];
		unsigned char pw[16];
		char *p64;
		int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

		bv_uuid_generate(a->konto);
		bv_uuid_generate(a->integration_id);
		if (fd < 0 || read(fd, pw, sizeof(pw)) != sizeof(pw)) {
			if (fd >= 0)
				close(fd);
			goto out;
		}
		close(fd);
		p64 = bv_b64url_encode(pw, sizeof(pw));
		if (!p64)
			goto out;
		snprintf(a->password, sizeof(a->password), "%s", p64);
		bv_free(p64);
		snprintf(a->client_id, sizeof(a->client_id), "bvt-client-%zu",
			 i);
		snprintf(a->key, sizeof(a->key), "%s/acct%zu.key", f->dir, i);
		snprintf(a->cert, sizeof(a->cert), "%s/acct%zu.crt", f->dir, i);
		snprintf(a->config, sizeof(a->config), "%s/acct%zu.conf",
			 f->dir, i);
		if (bvt_fiks_keypair(a->key, a->cert, a->client_id) < 0)
			goto out;
		len += (size_t)snprintf(
			json + len, cap - len,
			"%s{\"konto\":\"%s\",\"navn\":\"bvtest %zu\","
			"\"integration_id\":\"%s\","
			"\"integration_password\":\"%s\","
			"\"client_id\":\"%s\",\"cert\":\"%s\"}",
			i ? "," : "", a->konto, i, a->integration_id,
			a->password, a->client_id, a->cert);
		if (len >= cap ||
		    bvt_fiks_write_config(f, i, a->config, NULL) < 0)
			goto out;
	}
	len += (size_t)snprintf(json + len, cap - len, "]}\n");
	if (len >= cap)
		goto out;
	snprintf(path, sizeof(path), "%s/accounts.json", f->dir);
	rc = write_file(path, json);
	f->n = n;
out:
	free(json);
	return rc;
}

/* Five distinct free ports. */
static int
pick_ports(struct bvt_fiks *f)
{
	int p[5], i, j;

	for (i = 0; i < 5; i++) {
		int tries = 0;

		do {
			p[i] = bvt_free_port();
			for (j = 0; j < i && p[i] > 0; j++)
				if (p[j] == p[i])
					p[i] = 0;
		} while (p[i] <= 0 && ++tries < 20);
		if (p[i] <= 0)
			return -1;
	}
	f->amqp_port = p[0];
	f->http_port = p[1];
	f->epmd_port = p[2];
	f->dist_port = p[3];
	f->amqps_port = p[4];
	return 0;
}

static void
instance_track(struct bvt_fiks *f, int on)
{
	static int registered;
	int i;

	for (i = 0; i < INSTANCES_MAX; i++) {
		if (on && !instances[i]) {
			instances[i] = f;
			break;
		}
		if (!on && instances[i] == f)
			instances[i] = NULL;
	}
	if (on && !registered) {
		registered = 1;
		atexit(fiks_atexit);
	}
}

int
bvt_fiks_start(struct bvt_fiks *f, size_t n)
{
	int64_t t0 = bvt_now_ms();

	memset(f, 0, sizeof(*f));
	if (n > BVT_FIKS_ACCOUNTS_MAX)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/bvt-fiks-XXXXXX");
	if (!mkdtemp(f->dir)) {
		perror("bvtest: mkdtemp");
		return -1;
	}
	bvt__watchdog("F %s", f->dir);
	if (pick_ports(f) < 0 || make_accounts(f, n) < 0)
		return -1;
	snprintf(f->amqps_ca, sizeof(f->amqps_ca), "%s/amqps-ca.crt", f->dir);
	instance_track(f, 1);
	f->running = 1;
	if (fiksio(f, "start", 1) < 0) {
		bvt_fiks_print_logs(f);
		bvt_fiks_stop(f);
		return -1;
	}
	f->start_ms = (long)(bvt_now_ms() - t0);
	return 0;
}

int
bvt_fiks_stop(struct bvt_fiks *f)
{
	int rc;

	if (!f->running)
		return 0;
	rc = fiksio(f, "stop", 0);
	f->running = 0;
	instance_track(f, 0);
	if (rc == 0 && !getenv("BVT_KEEP") &&
	    strncmp(f->dir, "/tmp/bvt-fiks-", 14) == 0) {
		char *argv[] = {"/bin/rm", "-rf", "--", f->dir, NULL};

		bvt_run(argv, 0, bvt_ms(30000), NULL, NULL);
		bvt__watchdog("f %s", f->dir);
	} else if (rc == 0) {
		fprintf(stderr, "bvtest: kept %s\n", f->dir);
		bvt__watchdog("f %s", f->dir);
	}
	return rc;
}

int
bvt_fiks_broker_stop(struct bvt_fiks *f)
{
	return fiksio(f, "broker-stop", 0);
}

int
bvt_fiks_broker_start(struct bvt_fiks *f)
{
	return fiksio(f, "broker-start", 0);
}

int
bvt_fiks_broker_pid(const struct bvt_fiks *f)
{
	char path[128], *s, *comm;
	long pid;

	snprintf(path, sizeof(path), "%s/rabbitmq/beam.pid", f->dir);
	s = bvt_file_read(path, NULL);
	if (!s)
		return -1;
	pid = strtol(s, NULL, 10);
	free(s);
	if (pid <= 1 || pid > 1L << 22)
		return -1;
	/* Never a recycled PID: it must still be the Erlang VM. */
	snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
	comm = bvt_file_read(path, NULL);
	if (!comm)
		return -1;
	if (strncmp(comm, "beam", 4) != 0)
		pid = -1;
	free(comm);
	return (int)pid;
}

/* basicConstraints CA:TRUE, critical: a CA in every respect but its key. */
static int
ca_ext(X509 *x)
{
	BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
	int ok;

	if (!bc)
		return 0;
	bc->ca = 1;
	ok = X509_add1_ext_i2d(x, NID_basic_constraints, bc, 1,
			       X509V3_ADD_DEFAULT) == 1;
	BASIC_CONSTRAINTS_free(bc);
	return ok;
}

int
bvt_fiks_other_ca(const struct bvt_fiks *f, const char *path)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *real = NULL, *x = X509_new();
	FILE *in = fopen(f->amqps_ca, "r"), *out = NULL;
	int ok = 0;

	if (in)
		real = PEM_read_X509(in, NULL, NULL, NULL);
	if (!k || !x || !real)
		goto out;
	ok = X509_set_version(x, 2) &&
	     ASN1_INTEGER_set(X509_get_serialNumber(x), 4711) &&
	     X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
	     X509_gmtime_adj(X509_getm_notAfter(x), 2 * 86400) &&
	     X509_set_subject_name(x, X509_get_subject_name(real)) &&
	     X509_set_issuer_name(x, X509_get_subject_name(real)) &&
	     X509_set_pubkey(x, k) && ca_ext(x) &&
	     X509_sign(x, k, EVP_sha256()) > 0;
	if (ok) {
		out = fopen(path, "w");
		ok = out && PEM_write_X509(out, x);
		ok = out && fclose(out) == 0 && ok;
	}
out:
	if (in)
		fclose(in);
	X509_free(real);
	X509_free(x);
	EVP_PKEY_free(k);
	if (!ok)
		fprintf(stderr, "bvtest: cannot make another CA at %s\n", path);
	return ok ? 0 : -1;
}

const char *
bvt_fiks_admin_secret(const struct bvt_fiks *f)
{
	static char secret[128];
	char path[128];
	char *s;

	snprintf(path, sizeof(path), "%s/admin.secret", f->dir);
	s = bvt_file_read(path, NULL);
	if (!s)
		return "";
	s[strcspn(s, "\r\n")] = '\0';
	snprintf(secret, sizeof(secret), "%s", s);
	free(s);
	return secret;
}

static void
tail(const char *path, int lines)
{
	size_t len, i;
	char *s = bvt_file_read(path, &len);
	int n = 0;

	if (!s)
		return;
	for (i = len; i > 0; i--)
		if (s[i - 1] == '\n' && ++n > lines)
			break;
	fprintf(stderr, "----- last %d lines of %s -----\n%s\n", lines, path,
		s + i);
	free(s);
}

void
bvt_fiks_print_logs(const struct bvt_fiks *f)
{
	char path[160];

	snprintf(path, sizeof(path), "%s/devserver.log", f->dir);
	tail(path, 40);
	snprintf(path, sizeof(path), "%s/rabbitmq/log/server.out", f->dir);
	tail(path, 20);
	setenv("BVT_KEEP", "1", 1);
}
