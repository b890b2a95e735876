/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * bvtest_fiks.h: a local FIKS IO per test program (tools/fiksio.sh:
 * RabbitMQ and bvfiks-devserver) in its own /tmp/bvt-fiks-XXXXXX on free
 * loopback ports, with accounts (keys, a devserver accounts file and one
 * fiks_config file each). Stopped by PID at exit, and by a watchdog when
 * the program dies by a signal. Not for production code.
 */
#ifndef BVTEST_FIKS_H
#define BVTEST_FIKS_H

#include <stddef.h>

#define BVT_FIKS_ACCOUNTS_MAX 16

struct bvt_fiks_account {
	char konto[37];
	char integration_id[37];
	char password[40];
	char client_id[48];
	char key[300];	  /* PKCS#8 PEM */
	char cert[300];	  /* self-signed PEM, what the katalog publishes */
	char config[300]; /* a fiks_config_load() file for this account */
};

struct bvt_fiks {
	char dir[64];
	int amqp_port, http_port, epmd_port, dist_port;
	size_t n;
	struct bvt_fiks_account acct[BVT_FIKS_ACCOUNTS_MAX];
	int running;
	long start_ms; /* how long the last start took */
	/* The broker's TLS listener (tools/fiksio.sh --amqps-port) and the
	 * CA that signed its certificate (for localhost and 127.0.0.1). */
	int amqps_port;
	char amqps_ca[96];
};

/*
 * Makes n accounts (n ≤ BVT_FIKS_ACCOUNTS_MAX) and starts the broker and
 * the development server, waiting until both answer (bounded). Returns 0,
 * or -1 after printing why (everything started is stopped again).
 */
int bvt_fiks_start(struct bvt_fiks *f, size_t n);

/* Stops the development server and the broker (by PID file). 0 or -1. */
int bvt_fiks_stop(struct bvt_fiks *f);

/* Stops or starts only the broker, same ports and data (a restart). */
int bvt_fiks_broker_stop(struct bvt_fiks *f);
int bvt_fiks_broker_start(struct bvt_fiks *f);

/*
 * Writes a fiks_config file for account i to path, with pairs of
 * overrides ("key", "value", …, NULL; a NULL value drops the key).
 * 0 or -1.
 */
int bvt_fiks_write_config(const struct bvt_fiks *f, size_t i, const char *path,
			  const char *const *overrides);

/* The PID of the broker's Erlang VM (beam.smp), e.g. to SIGSTOP it, or
 * -1 when it does not run. Whoever stops it must SIGCONT it again;
 * bvt_fiks_stop() and the watchdog do (tools/fiksio.sh stop). */
int bvt_fiks_broker_pid(const struct bvt_fiks *f);

/*
 * Writes to path a self-signed CA certificate (EC P-256, two days) with
 * the same subject as f's amqps_ca but another key: a CA that must not be
 * trusted for the broker. 0 or -1.
 */
int bvt_fiks_other_ca(const struct bvt_fiks *f, const char *path);

/* The broker's administrator password (DIR/admin.secret; static). */
const char *bvt_fiks_admin_secret(const struct bvt_fiks *f);

/* Makes a new RSA key (PKCS#8) and self-signed certificate for two days
 * (fiks_identity_generate). 0 or -1. */
int bvt_fiks_keypair(const char *key, const char *cert, const char *cn);

/* Prints the tails of the devserver's and RabbitMQ's logs to stderr and
 * keeps the directory (call on failure). */
void bvt_fiks_print_logs(const struct bvt_fiks *f);

#endif
