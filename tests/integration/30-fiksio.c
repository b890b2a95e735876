/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 30-fiksio: libbvfiks's transport (fiks_io.h) against a real RabbitMQ and
 * bvfiks-devserver (tools/fiksio.sh, tests/support/fiks.c): send and
 * receive with headers and ids, replies, the katalog, manual ack and
 * redelivery, Fiks IO's dead-lettering (serverfeil after 3 deliveries,
 * tidsavbrudd after the TTL, only at the head of the queue), a malformed message that must not block its
 * queue, a broker restart under a consumer, refused credentials, a
 * payload through the dokumentlager, packages end to end (fiks_send,
 * fiks_open, fiks_reply: signed, encrypted, pinned, also through the
 * dokumentlager), and the development server's answers to hostile
 * requests; AMQP heartbeats (an idle consumer stays connected, a broker
 * stopped with SIGSTOP is noticed and the consumer comes back after
 * SIGCONT) and AMQP over TLS (consuming, and refusing a broker whose
 * certificate another CA vouches for or that names another address).
 * Every wait is bounded. Set BVT_TEST_FILTER (a cmocka pattern) to run
 * some tests only.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <cmocka.h>

#include "bvtest.h"
#include "bv_error.h"
#include "bvtest_fiks.h"
#include "fiks_asice.h"
#include "fiks_error.h"
#include "fiks_io.h"

enum { A, B, B2, C, D, E, B3, B4, B5, B6, D2, H1, H2, T1, N_ACCTS };

static struct bvt_fiks F;
/* The broker while a test has it stopped (SIGSTOP); teardown and the
 * end of main continue it, whatever failed. */
static int stopped_pid = -1;

static void
broker_cont(void)
{
	if (stopped_pid > 0)
		kill(stopped_pid, SIGCONT);
	stopped_pid = -1;
}
/* Every client a test makes, freed by teardown even when it fails. */
static struct fiks_client *clients[16];

static struct fiks_client *
track(struct fiks_client *c)
{
	size_t i;

	for (i = 0; i < sizeof(clients) / sizeof(clients[0]); i++) {
		if (!clients[i]) {
			clients[i] = c;
			return c;
		}
	}
	fail_msg("too many clients");
	return c;
}

static void
release(struct fiks_client *c)
{
	size_t i;

	for (i = 0; i < sizeof(clients) / sizeof(clients[0]); i++)
		if (clients[i] == c)
			clients[i] = NULL;
	fiks_client_free(c);
}

static int
teardown(void **state)
{
	size_t i;

	(void)state;
	broker_cont();
	for (i = 0; i < sizeof(clients) / sizeof(clients[0]); i++) {
		fiks_client_free(clients[i]);
		clients[i] = NULL;
	}
	return 0;
}

static struct fiks_client *
client(size_t i)
{
	struct fiks_config cfg;
	struct fiks_client *c = NULL;
	char err[256];
	int rc;

	rc = fiks_config_load(F.acct[i].config, &cfg, err, sizeof(err));
	if (rc < 0)
		fail_msg("config: %s", err);
	rc = fiks_client_new(&cfg, &c);
	fiks_config_free(&cfg);
	if (rc < 0)
		fail_msg("fiks_client_new: %s", fiks_errname(rc));
	return track(c);
}

static struct fiks_client *
client_with(size_t i, const char *const *ov)
{
	char path[160], err[256];
	struct fiks_config cfg;
	struct fiks_client *c = NULL;
	int rc;

	snprintf(path, sizeof(path), "%s/override.conf", F.dir);
	assert_int_equal(bvt_fiks_write_config(&F, i, path, ov), 0);
	rc = fiks_config_load(path, &cfg, err, sizeof(err));
	if (rc < 0)
		fail_msg("config: %s", err);
	rc = fiks_client_new(&cfg, &c);
	fiks_config_free(&cfg);
	if (rc < 0)
		fail_msg("fiks_client_new: %s", fiks_errname(rc));
	return track(c);
}

static void
send_plain(struct fiks_client *c, size_t to, const char *type, int64_t ttl_ms,
	   const char *body, char id[FIKS_UUID_LEN + 1])
{
	struct fiks_send_req req = {0};
	int rc;

	req.mottaker = F.acct[to].konto;
	req.type = type;
	req.ttl_ms = ttl_ms;
	rc = fiks_send_raw(c, &req, (const unsigned char *)body,
			   body ? strlen(body) : 0, id);
	if (rc < 0)
		fail_msg("fiks_send_raw: %s", fiks_errname(rc));
}

/* The next message on c before deadline (bvt_now_ms()), or NULL; a lost
 * connection is waited out, any other error fails the test. */
static struct fiks_melding *
recv_until(struct fiks_client *c, int64_t deadline)
{
	while (bvt_now_ms() < deadline) {
		struct fiks_melding *m = NULL;
		int left = (int)(deadline - bvt_now_ms());
		int rc = fiks_receive(c, left > 0 ? left : 1, &m);

		if (rc == FIKS_ETIMEOUT || rc == FIKS_EAMQP)
			continue;
		if (rc < 0)
			fail_msg("fiks_receive: %s", fiks_errname(rc));
		return m;
	}
	return NULL;
}

/*
 * The next message on c for which svar_til (when not NULL) or melding_id
 * (when not NULL) matches; others are acked and skipped. Bounded.
 */
static struct fiks_melding *
recv_match(struct fiks_client *c, const char *melding_id, const char *svar_til,
	   int timeout_ms)
{
	int64_t deadline = bvt_now_ms() + bvt_ms(timeout_ms);
	struct fiks_melding *m;

	while ((m = recv_until(c, deadline)) != NULL) {
		if ((!melding_id || strcmp(m->melding_id, melding_id) == 0) &&
		    (!svar_til || strcmp(m->svar_til, svar_til) == 0))
			return m;
		fiks_ack(c, m);
		fiks_melding_free(m);
	}
	fail_msg("no message %s%s within %d ms", melding_id ? melding_id : "",
		 svar_til ? svar_til : "", timeout_ms);
	return NULL;
}

static void
expect_empty(struct fiks_client *c, int ms)
{
	struct fiks_melding *m = NULL;
	int rc = fiks_receive(c, ms, &m);

	if (rc == 0) {
		fail_msg("unexpected message %s (%s)", m->melding_id, m->type);
		fiks_melding_free(m);
	}
	assert_int_equal(rc, FIKS_ETIMEOUT);
}

static const char *
header(const struct fiks_melding *m, const char *name)
{
	size_t i;

	for (i = 0; i < m->n_headers; i++)
		if (strcmp(m->headers[i].name, name) == 0)
			return m->headers[i].value;
	return NULL;
}

/* ------------------------------------------------------------------ */

static void
t_send_receive_reply(void **state)
{
	struct fiks_client *a = client(A), *b = client(B);
	struct fiks_header h[] = {{"saksnummer", "2026/42"}, {"x-ende", "æøå"}};
	struct fiks_send_req req = {0};
	struct fiks_melding *m, *r;
	char id[FIKS_UUID_LEN + 1], rid[FIKS_UUID_LEN + 1];

	(void)state;
	req.mottaker = F.acct[B].konto;
	req.type = "no.ks.fiks.bvchat.test.v1.hei";
	req.ttl_ms = 60000;
	req.klient_melding_id = "kmi-1";
	req.klient_korrelasjons_id = "korr-1";
	req.headers = h;
	req.n_headers = 2;
	assert_int_equal(
		fiks_send_raw(a, &req, (const unsigned char *)"hei", 3, id), 0);
	m = recv_match(b, id, NULL, 15000);
	assert_string_equal(m->type, "no.ks.fiks.bvchat.test.v1.hei");
	assert_string_equal(m->avsender, F.acct[A].konto);
	assert_string_equal(m->mottaker, F.acct[B].konto);
	assert_string_equal(m->svar_til, "");
	assert_string_equal(m->klient_melding_id, "kmi-1");
	assert_string_equal(m->klient_korrelasjons_id, "korr-1");
	assert_int_equal(m->n_headers, 2);
	assert_string_equal(header(m, "saksnummer"), "2026/42");
	assert_string_equal(header(m, "x-ende"), "æøå");
	assert_int_equal(m->ttl_ms, 60000);
	assert_int_equal(m->redelivered, 0);
	assert_string_equal(m->dokumentlager_id, "");
	assert_int_equal(m->body_len, 3);
	assert_memory_equal(m->body, "hei", 3);

	/* The reply goes back with svarPaMelding and the correlation id. */
	memset(&req, 0, sizeof(req));
	req.mottaker = m->avsender;
	req.type = "no.ks.fiks.bvchat.test.v1.hei.svar";
	req.svar_paa = m->melding_id;
	req.klient_korrelasjons_id = m->klient_korrelasjons_id;
	assert_int_equal(fiks_send_raw(b, &req, NULL, 0, rid), 0);
	assert_int_equal(fiks_ack(b, m), 0);
	r = recv_match(a, rid, NULL, 15000);
	assert_string_equal(r->svar_til, id);
	assert_string_equal(r->avsender, F.acct[B].konto);
	assert_string_equal(r->klient_korrelasjons_id, "korr-1");
	assert_int_equal(r->body_len, 0);
	assert_int_equal(r->ttl_ms, 604800000); /* the server's default */
	assert_int_equal(fiks_ack(a, r), 0);
	fiks_melding_free(r);
	fiks_melding_free(m);
	expect_empty(b, 500);
	release(a);
	release(b);
}

static void
t_katalog(void **state)
{
	struct fiks_client *a = client(A);
	char *pem = NULL, *want = NULL, unknown[37];

	(void)state;
	assert_int_equal(fiks_katalog_cert(a, F.acct[B].konto, &pem), 0);
	want = bvt_file_read(F.acct[B].cert, NULL);
	assert_non_null(want);
	assert_string_equal(pem, want);
	free(pem);
	/* From the cache the second time: the same. */
	assert_int_equal(fiks_katalog_cert(a, F.acct[B].konto, &pem), 0);
	assert_string_equal(pem, want);
	free(pem);
	free(want);
	snprintf(unknown, sizeof(unknown), "%s", F.acct[B].konto);
	memcpy(unknown, "00000000", 8);
	assert_int_equal(fiks_katalog_cert(a, unknown, &pem), FIKS_ENOTFOUND);
	assert_int_equal(fiks_katalog_cert(a, "not-a-uuid", &pem), BV_EINVAL);
	release(a);
}

/* An unacked message comes back, flagged, on the next connection. */
static void
t_redelivery(void **state)
{
	struct fiks_client *a = client(A), *b = client(B2);
	struct fiks_melding *m, *m2;
	char id[FIKS_UUID_LEN + 1];

	(void)state;
	send_plain(a, B2, "no.ks.fiks.bvchat.test.v1.igjen", 0, "x", id);
	m = recv_match(b, id, NULL, 15000);
	assert_int_equal(m->redelivered, 0);
	release(b); /* the connection goes without an ack */
	b = client(B2);
	m2 = recv_match(b, id, NULL, 15000);
	assert_int_equal(m2->redelivered, 1);
	/* The first delivery's tag belongs to a connection that is gone. */
	assert_int_equal(fiks_ack(b, m), FIKS_EAMQP);
	assert_int_equal(fiks_ack(b, m2), 0);
	expect_empty(b, 500);
	fiks_melding_free(m);
	fiks_melding_free(m2);
	release(a);
	release(b);
}

/* Three deliveries without an ack: dead-lettered, and the sender gets
 * serverfeil.v1 naming the message. */
static void
t_serverfeil(void **state)
{
	struct fiks_client *a = client(A), *c = client(C);
	struct fiks_melding *m, *e;
	char id[FIKS_UUID_LEN + 1];
	json_t *j;
	int i;

	(void)state;
	send_plain(a, C, "no.ks.fiks.bvchat.test.v1.tung", 0, "x", id);
	m = recv_match(c, id, NULL, 15000);
	fiks_melding_free(m);
	release(c); /* delivery 1: lost with its connection */
	c = client(C);
	for (i = 0; i < 2; i++) { /* deliveries 2 and 3: given back */
		m = recv_match(c, id, NULL, 15000);
		assert_int_equal(m->redelivered, 1);
		assert_int_equal(fiks_nack_requeue(c, m), 0);
		fiks_melding_free(m);
	}
	expect_empty(c, 1500);
	e = recv_match(a, NULL, id, 20000);
	assert_string_equal(e->type, FIKS_TYPE_SERVERFEIL);
	assert_string_equal(e->avsender, F.acct[C].konto);
	j = json_loadb((const char *)e->body, e->body_len, 0, NULL);
	assert_non_null(j);
	assert_string_equal(
		json_string_value(json_object_get(j, "correlationId")), id);
	assert_non_null(json_string_value(json_object_get(j, "errorId")));
	assert_non_null(json_string_value(json_object_get(j, "feilmelding")));
	json_decref(j);
	assert_int_equal(fiks_ack(a, e), 0);
	fiks_melding_free(e);
	release(a);
	release(c);
}

/* The TTL runs out in a queue nobody reads: tidsavbrudd to the sender. */
static void
t_tidsavbrudd(void **state)
{
	struct fiks_client *a = client(A);
	struct fiks_melding *e;
	char id[FIKS_UUID_LEN + 1];

	(void)state;
	send_plain(a, D, "no.ks.fiks.bvchat.test.v1.kort", 1000, "x", id);
	e = recv_match(a, NULL, id, 20000);
	assert_string_equal(e->type, FIKS_TYPE_TIDSAVBRUDD);
	assert_string_equal(e->svar_til_type, "no.ks.fiks.bvchat.test.v1.kort");
	assert_int_equal(e->body_len, 0);
	assert_int_equal(fiks_ack(a, e), 0);
	fiks_melding_free(e);
	release(a);
}

/* Fiks IO's documented quirk: an expired message is dead-lettered only
 * when it reaches the head of its queue. RabbitMQ's quorum queues do the
 * same: behind a message without TTL, an expired one waits. */
static void
t_tidsavbrudd_at_head(void **state)
{
	struct fiks_client *a = client(A), *d = NULL;
	struct fiks_melding *m, *e = NULL;
	char id1[FIKS_UUID_LEN + 1], id2[FIKS_UUID_LEN + 1];
	int rc;

	(void)state;
	send_plain(a, D2, "no.ks.fiks.bvchat.test.v1.lang", 0, "1", id1);
	send_plain(a, D2, "no.ks.fiks.bvchat.test.v1.kort", 1000, "2", id2);
	/* Well past the TTL: no receipt while the first one blocks it. */
	rc = fiks_receive(a, bvt_ms(3000), &e);
	if (rc == 0) {
		fail_msg("early %s for %s", e->type, e->svar_til);
		fiks_melding_free(e);
	}
	assert_int_equal(rc, FIKS_ETIMEOUT);
	d = client(D2);
	m = recv_match(d, id1, NULL, 15000);
	assert_int_equal(fiks_ack(d, m), 0);
	fiks_melding_free(m);
	e = recv_match(a, NULL, id2, 20000);
	assert_string_equal(e->type, FIKS_TYPE_TIDSAVBRUDD);
	assert_int_equal(fiks_ack(a, e), 0);
	fiks_melding_free(e);
	expect_empty(d, 500);
	release(a);
	release(d);
}

/* Publishes straight to E's queue as the broker's administrator. */
static void
publish_raw(const amqp_table_entry_t *e, int n)
{
	amqp_connection_state_t c = amqp_new_connection();
	amqp_socket_t *s = amqp_tcp_socket_new(c);
	amqp_basic_properties_t p;
	char q[64];

	assert_non_null(s);
	assert_int_equal(amqp_socket_open(s, "127.0.0.1", F.amqp_port), 0);
	assert_int_equal(amqp_login(c, "/", 0, 131072, 0,
				    AMQP_SASL_METHOD_PLAIN, "fiksio-admin",
				    bvt_fiks_admin_secret(&F))
				 .reply_type,
			 AMQP_RESPONSE_NORMAL);
	amqp_channel_open(c, 1);
	memset(&p, 0, sizeof(p));
	p._flags = AMQP_BASIC_HEADERS_FLAG;
	p.headers.num_entries = n;
	p.headers.entries = (amqp_table_entry_t *)e;
	snprintf(q, sizeof(q), "fiksio.konto.%s", F.acct[E].konto);
	assert_int_equal(amqp_basic_publish(
				 c, 1, amqp_cstring_bytes("fiks-io.meldinger"),
				 amqp_cstring_bytes(q), 0, 0, &p,
				 amqp_cstring_bytes("junk")),
			 0);
	amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
	amqp_connection_close(c, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(c);
}

static amqp_table_entry_t
str_entry(const char *k, const char *v)
{
	amqp_table_entry_t e;

	e.key = amqp_cstring_bytes(k);
	e.value.kind = AMQP_FIELD_KIND_UTF8;
	e.value.value.bytes = amqp_cstring_bytes(v);
	return e;
}

/* Messages without avsender-id, or with melding-id not a longstr, are
 * dropped with FIKS_EHEADER and do not block the good one behind them. */
static void
t_missing_header(void **state)
{
	struct fiks_client *a = client(A), *e = client(E);
	struct fiks_melding *m = NULL;
	amqp_table_entry_t h[3];
	char id[FIKS_UUID_LEN + 1];

	(void)state;
	h[0] = str_entry("melding-id", "6f1c1a8e-5d1e-4c1a-9a61-3c1f7c0e9d11");
	h[1] = str_entry("type", "no.ks.fiks.bvchat.test.v1.uten");
	publish_raw(h, 2); /* no avsender-id */
	h[0].value.kind = AMQP_FIELD_KIND_I32;
	h[0].value.value.i32 = 7;
	h[2] = str_entry("avsender-id", F.acct[A].konto);
	publish_raw(h, 3); /* melding-id an integer */
	send_plain(a, E, "no.ks.fiks.bvchat.test.v1.god", 0, "ok", id);
	assert_int_equal(fiks_receive(e, bvt_ms(15000), &m), FIKS_EHEADER);
	assert_int_equal(fiks_receive(e, bvt_ms(15000), &m), FIKS_EHEADER);
	m = recv_match(e, id, NULL, 15000);
	assert_int_equal(m->redelivered, 0);
	assert_int_equal(fiks_ack(e, m), 0);
	fiks_melding_free(m);
	expect_empty(e, 1000);
	release(a);
	release(e);
}

/* The broker goes away under a consumer and comes back: the client
 * reconnects by itself with a fresh token, the unacked message comes back
 * redelivered, and the old delivery tag is refused. */
static void
t_broker_restart(void **state)
{
	struct fiks_client *a = client(A), *b = client(B3);
	struct fiks_melding *m, *m2, *m3 = NULL;
	struct fiks_send_req req = {0};
	char id[FIKS_UUID_LEN + 1], id2[FIKS_UUID_LEN + 1];
	int64_t t0;

	(void)state;
	send_plain(a, B3, "no.ks.fiks.bvchat.test.v1.omstart", 0, "1", id);
	m = recv_match(b, id, NULL, 15000);
	t0 = bvt_now_ms();
	assert_int_equal(bvt_fiks_broker_stop(&F), 0);
	fprintf(stderr, "# broker stop: %lld ms\n",
		(long long)(bvt_now_ms() - t0));
	assert_int_equal(fiks_receive(b, 1000, &m3), FIKS_EAMQP);
	req.mottaker = F.acct[B3].konto;
	req.type = "no.ks.fiks.bvchat.test.v1.omstart";
	assert_int_equal(fiks_send_raw(a, &req, NULL, 0, id2), FIKS_EHTTP);
	t0 = bvt_now_ms();
	assert_int_equal(bvt_fiks_broker_start(&F), 0);
	fprintf(stderr, "# broker start: %lld ms\n",
		(long long)(bvt_now_ms() - t0));
	m2 = recv_match(b, id, NULL, 30000);
	assert_int_equal(m2->redelivered, 1);
	assert_int_equal(fiks_ack(b, m), FIKS_EAMQP);
	assert_int_equal(fiks_ack(b, m2), 0);
	send_plain(a, B3, "no.ks.fiks.bvchat.test.v1.omstart", 0, "2", id2);
	m3 = recv_match(b, id2, NULL, 15000);
	assert_int_equal(fiks_ack(b, m3), 0);
	fiks_melding_free(m);
	fiks_melding_free(m2);
	fiks_melding_free(m3);
	release(a);
	release(b);
}

static void
t_unauthorized(void **state)
{
	const char *bad_pw[] = {"integration_password", "feil", NULL};
	char key[160], cert[160], id[FIKS_UUID_LEN + 1];
	struct fiks_client *c;
	struct fiks_melding *m = NULL;
	struct fiks_send_req req = {0};

	(void)state;
	req.mottaker = F.acct[B].konto;
	req.type = "no.ks.fiks.bvchat.test.v1.nei";
	/* A wrong integration password: HTTP 401, AMQP login denied. */
	c = client_with(A, bad_pw);
	assert_int_equal(fiks_send_raw(c, &req, NULL, 0, id),
			 FIKS_EUNAUTHORIZED);
	assert_int_equal(fiks_receive(c, bvt_ms(10000), &m),
			 FIKS_EUNAUTHORIZED);
	release(c);
	/* A key the token endpoint does not know: no token at all. */
	snprintf(key, sizeof(key), "%s/stranger.key", F.dir);
	snprintf(cert, sizeof(cert), "%s/stranger.crt", F.dir);
	assert_int_equal(bvt_fiks_keypair(key, cert, "stranger"), 0);
	{
		const char *ov[] = {"key_path", key, "cert_path", cert, NULL};

		c = client_with(A, ov);
	}
	assert_int_equal(fiks_send_raw(c, &req, NULL, 0, id),
			 FIKS_EUNAUTHORIZED);
	assert_int_equal(fiks_receive(c, bvt_ms(10000), &m),
			 FIKS_EUNAUTHORIZED);
	release(c);
	/* Another integration's account as sender: 403. */
	{
		const char *ov[] = {"account_id", F.acct[B].konto, NULL};

		c = client_with(A, ov);
	}
	assert_int_equal(fiks_send_raw(c, &req, NULL, 0, id),
			 FIKS_EUNAUTHORIZED);
	/* ... and its queue is not ours to read. */
	assert_int_equal(fiks_receive(c, bvt_ms(10000), &m),
			 FIKS_EUNAUTHORIZED);
	release(c);
}

/* Over 5 MB: an empty body and a dokumentlager-id to download. */
static void
t_dokumentlager(void **state)
{
	struct fiks_client *a = client(A), *b = client(B4);
	size_t n = FIKS_DOKUMENTLAGER_THRESHOLD + 12345, i, got_len = 0;
	unsigned char *big = malloc(n), *got = NULL;
	struct fiks_send_req req = {0};
	struct fiks_melding *m;
	char id[FIKS_UUID_LEN + 1];

	(void)state;
	assert_non_null(big);
	for (i = 0; i < n; i++)
		big[i] = (unsigned char)(i * 7 + (i >> 13));
	req.mottaker = F.acct[B4].konto;
	req.type = "no.ks.fiks.bvchat.test.v1.stor";
	assert_int_equal(fiks_send_raw(a, &req, big, n, id), 0);
	m = recv_match(b, id, NULL, 15000);
	assert_int_equal(m->body_len, 0);
	assert_true(m->dokumentlager_id[0] != '\0');
	assert_int_equal(
		fiks_dokumentlager_get(b, m->dokumentlager_id, &got, &got_len),
		0);
	assert_int_equal(got_len, n);
	assert_memory_equal(got, big, n);
	free(got);
	/* Not the sender's document to fetch. */
	assert_int_equal(
		fiks_dokumentlager_get(a, m->dokumentlager_id, &got, &got_len),
		FIKS_ENOTFOUND);
	assert_int_equal(fiks_ack(b, m), 0);
	fiks_melding_free(m);
	free(big);
	release(a);
	release(b);
}

/* fiks_send → fiks_open: ASiC-E signed by A, encrypted for B5's katalog
 * certificate, opened with A's certificate pinned; then fiks_reply. */
static void
t_package_roundtrip(void **state)
{
	static const char xml[] = "<arkivmelding>test</arkivmelding>";
	static const unsigned char pdf[] = {'%', 'P', 'D', 'F', 0, 1, 2, 3};
	struct fiks_client *a = client(A), *b = client(B5);
	struct fiks_file files[2] = {
		{"arkivmelding.xml", "application/xml",
		 (const unsigned char *)xml, sizeof(xml) - 1},
		{"vedlegg.pdf", "application/pdf", pdf, sizeof(pdf)}};
	struct fiks_send_req req = {0};
	struct fiks_melding *m, *r;
	struct fiks_asice *pkg = NULL;
	char id[FIKS_UUID_LEN + 1], rid[FIKS_UUID_LEN + 1], err[256];
	char *a_cert = bvt_file_read(F.acct[A].cert, NULL);
	char *b6_cert = bvt_file_read(F.acct[B6].cert, NULL);
	const struct fiks_file *f;

	(void)state;
	assert_non_null(a_cert);
	assert_non_null(b6_cert);
	req.mottaker = F.acct[B5].konto;
	req.type = "no.ks.fiks.arkiv.v1.arkivering.arkivmelding.opprett";
	req.klient_korrelasjons_id = "korr-pkg";
	assert_int_equal(fiks_send(a, &req, files, 2, NULL, id), 0);
	m = recv_match(b, id, NULL, 15000);
	assert_true(m->body_len > sizeof(xml));
	assert_int_equal(fiks_open(b, m, a_cert, &pkg, err, sizeof(err)), 0);
	assert_int_equal(fiks_asice_count(pkg), 2);
	f = fiks_asice_file(pkg, 0);
	assert_string_equal(f->name, "arkivmelding.xml");
	assert_int_equal(f->len, sizeof(xml) - 1);
	assert_memory_equal(f->data, xml, f->len);
	f = fiks_asice_find(pkg, "vedlegg.pdf");
	assert_non_null(f);
	assert_memory_equal(f->data, pdf, sizeof(pdf));
	fiks_asice_free(pkg);
	pkg = NULL;
	/* Pinned to someone else: the signature is not theirs. */
	assert_int_equal(fiks_open(b, m, b6_cert, &pkg, err, sizeof(err)),
			 FIKS_ESIGNATURE);
	/* The reply carries the correlation id back. */
	assert_int_equal(fiks_reply(b, m,
				    "no.ks.fiks.arkiv.v1.arkivering."
				    "arkivmelding.opprett.mottatt",
				    NULL, 0, "kmi-svar", rid),
			 0);
	assert_int_equal(fiks_ack(b, m), 0);
	fiks_melding_free(m);
	r = recv_match(a, rid, NULL, 15000);
	assert_string_equal(r->svar_til, id);
	assert_string_equal(r->klient_korrelasjons_id, "korr-pkg");
	assert_string_equal(r->klient_melding_id, "kmi-svar");
	assert_int_equal(fiks_open(a, r, NULL, &pkg, err, sizeof(err)),
			 BV_EINVAL);
	assert_int_equal(fiks_ack(a, r), 0);
	fiks_melding_free(r);
	/* Encrypted for B6's certificate: B5 cannot open it. */
	assert_int_equal(fiks_send(a, &req, files, 1, b6_cert, id), 0);
	m = recv_match(b, id, NULL, 15000);
	assert_int_equal(fiks_open(b, m, NULL, &pkg, err, sizeof(err)),
			 FIKS_ECMS);
	assert_int_equal(fiks_ack(b, m), 0);
	fiks_melding_free(m);
	free(a_cert);
	free(b6_cert);
	release(a);
	release(b);
}

/* A package over 5 MB goes through the dokumentlager and opens the same. */
static void
t_package_dokumentlager(void **state)
{
	struct fiks_client *a = client(A), *b = client(B6);
	size_t n = FIKS_DOKUMENTLAGER_THRESHOLD + 4096, i;
	unsigned char *big = malloc(n);
	uint32_t x = 2463534242u;
	struct fiks_file file = {"stor.bin", "application/octet-stream", NULL,
				 n};
	struct fiks_send_req req = {0};
	struct fiks_melding *m;
	struct fiks_asice *pkg = NULL;
	char id[FIKS_UUID_LEN + 1], err[256];

	(void)state;
	assert_non_null(big);
	for (i = 0; i < n; i++) { /* xorshift32: nothing to compress */
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		big[i] = (unsigned char)x;
	}
	file.data = big;
	req.mottaker = F.acct[B6].konto;
	req.type = "no.ks.fiks.bvchat.test.v1.stor";
	assert_int_equal(fiks_send(a, &req, &file, 1, NULL, id), 0);
	m = recv_match(b, id, NULL, 20000);
	assert_int_equal(m->body_len, 0);
	assert_true(m->dokumentlager_id[0] != '\0');
	assert_int_equal(fiks_open(b, m, NULL, &pkg, err, sizeof(err)), 0);
	assert_int_equal(fiks_asice_file(pkg, 0)->len, n);
	assert_memory_equal(fiks_asice_file(pkg, 0)->data, big, n);
	fiks_asice_free(pkg);
	assert_int_equal(fiks_ack(b, m), 0);
	fiks_melding_free(m);
	free(big);
	release(a);
	release(b);
}

/* The development server refuses hostile requests with 4xx and JSON. */
static void
t_devserver_hostile(void **state)
{
	char *body = NULL, *big;
	json_t *j;

	(void)state;
	assert_int_equal(bvt_http_request(F.http_port, "POST",
					  "/fiks-io/api/v1/send",
					  "Content-Type: multipart/form-data; "
					  "boundary=x\r\n",
					  "--x--", 5, bvt_ms(5000), &body),
			 401);
	j = json_loads(body, 0, NULL);
	assert_non_null(json_object_get(j, "errorCode"));
	json_decref(j);
	free(body);
	assert_int_equal(bvt_http_request(F.http_port, "POST", "/token",
					  "Content-Type: application/"
					  "x-www-form-urlencoded\r\n",
					  "grant_type=x&assertion=a.b.c", 28,
					  bvt_ms(5000), NULL),
			 400);
	big = malloc(200000);
	assert_non_null(big);
	memset(big, 'a', 200000);
	assert_int_equal(bvt_http_request(F.http_port, "POST", "/token", NULL,
					  big, 200000, bvt_ms(5000), NULL),
			 413);
	free(big);
	assert_int_equal(bvt_http_get(F.http_port,
				      "/fiks-io/katalog/api/v1/kontoer/"
				      "../../../etc/passwd",
				      bvt_ms(5000), NULL),
			 404);
	assert_int_equal(bvt_http_get(F.http_port,
				      "/dokumentlager/nedlasting/x",
				      bvt_ms(5000), NULL),
			 401);
	/* Still serving. */
	assert_int_equal(
		bvt_http_get(F.http_port, "/healthz", bvt_ms(5000), NULL), 200);
}

/* The AMQP keys of a config file: the heartbeat's range, 0 for off and
 * 30 s when absent; amqp_cafile only with TLS, checked by
 * fiks_client_new. */
static void
t_amqp_config(void **state)
{
	const char *off[] = {"amqp_heartbeat", "0", NULL};
	const char *big[] = {"amqp_heartbeat", "601", NULL};
	const char *ca_no_tls[] = {"amqp_cafile", F.amqps_ca, NULL};
	const char *ca_key[] = {"amqp_tls", "1", "amqp_cafile", F.acct[A].key,
				NULL};
	const char *ca_none[] = {"amqp_tls", "1", "amqp_cafile",
				 "/nonexistent/ca.crt", NULL};
	struct fiks_config cfg;
	struct fiks_client *c = NULL;
	char path[160], err[256];

	(void)state;
	snprintf(path, sizeof(path), "%s/amqp.conf", F.dir);
	assert_int_equal(
		fiks_config_load(F.acct[A].config, &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.amqp_heartbeat, 0);
	assert_null(cfg.amqp_cafile);
	assert_int_equal(fiks_client_new(&cfg, &c), 0);
	assert_int_equal(fiks_client_config(c)->amqp_heartbeat,
			 FIKS_HEARTBEAT_DEFAULT);
	fiks_client_free(c);
	c = NULL;
	cfg.amqp_heartbeat = FIKS_HEARTBEAT_MAX + 1;
	assert_int_equal(fiks_client_new(&cfg, &c), BV_EINVAL);
	cfg.amqp_heartbeat = -2;
	assert_int_equal(fiks_client_new(&cfg, &c), BV_EINVAL);
	fiks_config_free(&cfg);

	assert_int_equal(bvt_fiks_write_config(&F, A, path, off), 0);
	assert_int_equal(fiks_config_load(path, &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.amqp_heartbeat, FIKS_HEARTBEAT_OFF);
	assert_int_equal(fiks_client_new(&cfg, &c), 0);
	assert_int_equal(fiks_client_config(c)->amqp_heartbeat,
			 FIKS_HEARTBEAT_OFF);
	fiks_client_free(c);
	c = NULL;
	fiks_config_free(&cfg);

	assert_int_equal(bvt_fiks_write_config(&F, A, path, big), 0);
	assert_int_equal(fiks_config_load(path, &cfg, err, sizeof(err)),
			 BV_ECONFIG);
	assert_non_null(strstr(err, "'amqp_heartbeat' must be a number 0…600"));
	assert_int_equal(bvt_fiks_write_config(&F, A, path, ca_no_tls), 0);
	assert_int_equal(fiks_config_load(path, &cfg, err, sizeof(err)),
			 BV_ECONFIG);
	assert_non_null(strstr(err, "amqp_cafile is for amqp_tls 1 only"));

	/* A CA file without a certificate fails when the client is made. */
	assert_int_equal(bvt_fiks_write_config(&F, A, path, ca_key), 0);
	assert_int_equal(fiks_config_load(path, &cfg, err, sizeof(err)), 0);
	assert_int_equal(fiks_client_new(&cfg, &c), FIKS_EKEY);
	fiks_config_free(&cfg);
	assert_int_equal(bvt_fiks_write_config(&F, A, path, ca_none), 0);
	assert_int_equal(fiks_config_load(path, &cfg, err, sizeof(err)), 0);
	assert_int_equal(fiks_client_new(&cfg, &c), FIKS_EKEY);
	fiks_config_free(&cfg);
}

/*
 * Heartbeat 2 s. A consumer that waits in fiks_receive for 3.5 heartbeats
 * with nothing to read stays on its connection (librabbitmq sends and
 * reads heartbeats inside the wait) and gets the next message on it. One
 * that does not call in at all for as long is cut off by the broker: the
 * next call reconnects and the message it had not acked comes again.
 */
static void
t_heartbeat_idle(void **state)
{
	const char *hb[] = {"amqp_heartbeat", "2", NULL};
	struct fiks_client *a = client(A), *h = client_with(H1, hb);
	struct fiks_melding *m = NULL, *m2;
	char id[FIKS_UUID_LEN + 1];
	uint64_t epoch;
	int64_t t0;

	(void)state;
	send_plain(a, H1, "no.ks.fiks.bvchat.test.v1.puls", 0, "1", id);
	m = recv_match(h, id, NULL, 15000);
	epoch = m->channel_epoch;
	assert_int_equal(fiks_ack(h, m), 0);
	fiks_melding_free(m);
	m = NULL;
	t0 = bvt_now_ms();
	assert_int_equal(fiks_receive(h, 7000, &m), FIKS_ETIMEOUT);
	assert_true(bvt_now_ms() - t0 >= 6900);
	send_plain(a, H1, "no.ks.fiks.bvchat.test.v1.puls", 0, "2", id);
	m = recv_match(h, id, NULL, 15000);
	/* The same connection: never lost, never remade. */
	assert_int_equal(m->channel_epoch, epoch);
	assert_int_equal(m->redelivered, 0);

	/* Now silent for as long, m unacked. */
	sleep(7);
	m2 = recv_match(h, id, NULL, 15000);
	assert_true(m2->channel_epoch != epoch);
	assert_int_equal(m2->redelivered, 1);
	assert_int_equal(fiks_ack(h, m), FIKS_EAMQP);
	assert_int_equal(fiks_ack(h, m2), 0);
	fiks_melding_free(m);
	fiks_melding_free(m2);
	expect_empty(h, 300);
	release(a);
	release(h);
}

/*
 * Receives the messages with ids want[0..n) in any order within
 * timeout_ms, acking each; fails on anything else. Sets got[i].
 */
static void
recv_all(struct fiks_client *c, const char *const *want, size_t n,
	 struct fiks_melding **got, int timeout_ms)
{
	int64_t deadline = bvt_now_ms() + bvt_ms(timeout_ms);
	struct fiks_melding *m;
	size_t have = 0, i;

	memset(got, 0, n * sizeof(*got));
	while (have < n && (m = recv_until(c, deadline)) != NULL) {
		for (i = 0; i < n; i++)
			if (!got[i] && strcmp(m->melding_id, want[i]) == 0)
				break;
		if (i == n)
			fail_msg("unexpected message %s", m->melding_id);
		assert_int_equal(fiks_ack(c, m), 0);
		got[i] = m;
		have++;
	}
	if (have < n)
		fail_msg("%zu of %zu messages within %d ms", have, n,
			 timeout_ms);
}

/*
 * Heartbeat 2 s, and the broker stopped (SIGSTOP) under a consumer that
 * holds an unacked message: the socket stays open and says nothing, so
 * only the heartbeat tells. The consumer must report FIKS_EAMQP within
 * about two heartbeats, and after SIGCONT reconnect by itself, get the
 * held message again (redelivered) and one sent afterwards.
 */
static void
t_heartbeat_broker_stopped(void **state)
{
	const char *hb[] = {"amqp_heartbeat", "2", "timeout_ms", "2000", NULL};
	struct fiks_client *a = client(A), *h = client_with(H2, hb);
	struct fiks_melding *m, *m2 = NULL, *got[2];
	char id[FIKS_UUID_LEN + 1], id2[FIKS_UUID_LEN + 1];
	const char *want[2] = {id, id2};
	int64_t t0, noticed = -1;
	int pid, rc;

	(void)state;
	send_plain(a, H2, "no.ks.fiks.bvchat.test.v1.stans", 0, "1", id);
	m = recv_match(h, id, NULL, 15000);
	pid = bvt_fiks_broker_pid(&F);
	assert_true(pid > 0);
	assert_int_equal(kill(pid, SIGSTOP), 0);
	stopped_pid = pid;
	t0 = bvt_now_ms();
	while (bvt_now_ms() - t0 < bvt_ms(20000)) {
		rc = fiks_receive(h, 250, &m2);
		if (rc == FIKS_EAMQP) {
			noticed = bvt_now_ms() - t0;
			break;
		}
		assert_int_equal(rc, FIKS_ETIMEOUT);
	}
	fprintf(stderr,
		"# stopped broker noticed after %lld ms "
		"(heartbeat 2 s)\n",
		(long long)noticed);
	assert_true(noticed >= 0);
	/* Two heartbeats after the last frame from the broker, which came
	 * at most one heartbeat before the stop; plus the last poll. */
	assert_true(noticed <= 6500);
	/* Its delivery went with the connection. */
	assert_int_equal(fiks_ack(h, m), FIKS_EAMQP);
	broker_cont();
	t0 = bvt_now_ms();
	send_plain(a, H2, "no.ks.fiks.bvchat.test.v1.stans", 0, "2", id2);
	recv_all(h, want, 2, got, 30000);
	fprintf(stderr, "# both messages %lld ms after SIGCONT\n",
		(long long)(bvt_now_ms() - t0));
	assert_int_equal(got[0]->redelivered, 1);
	assert_true(got[0]->channel_epoch != m->channel_epoch);
	/* got[1] may be flagged too: sent just after SIGCONT, it can go to
	 * the old consumer before the broker has read that its connection
	 * is closed, and come back from there. */
	fiks_melding_free(got[0]);
	fiks_melding_free(got[1]);
	fiks_melding_free(m);
	expect_empty(h, 300);
	release(a);
	release(h);
}

static const char *
amqps_port(void)
{
	static char p[16];

	snprintf(p, sizeof(p), "%d", F.amqps_port);
	return p;
}

/* AMQP over TLS, the broker verified against the test CA: by address
 * (its IP SAN) and by name (its DNS SAN). */
static void
t_tls_consume(void **state)
{
	const char *by_ip[] = {"amqp_tls",   "1",	    "amqp_port",
			       amqps_port(), "amqp_cafile", F.amqps_ca,
			       NULL};
	const char *by_name[] = {"amqp_tls",   "1",	      "amqp_port",
				 amqps_port(), "amqp_cafile", F.amqps_ca,
				 "amqp_host",  "localhost",   NULL};
	struct fiks_client *a = client(A), *t = client_with(T1, by_ip);
	struct fiks_melding *m;
	char id[FIKS_UUID_LEN + 1];

	(void)state;
	send_plain(a, T1, "no.ks.fiks.bvchat.test.v1.tls", 0, "over tls", id);
	m = recv_match(t, id, NULL, 15000);
	assert_int_equal(m->body_len, 8);
	assert_memory_equal(m->body, "over tls", 8);
	assert_string_equal(m->avsender, F.acct[A].konto);
	assert_int_equal(fiks_ack(t, m), 0);
	fiks_melding_free(m);
	release(t);
	t = client_with(T1, by_name);
	send_plain(a, T1, "no.ks.fiks.bvchat.test.v1.tls", 0, "by name", id);
	m = recv_match(t, id, NULL, 15000);
	assert_int_equal(fiks_ack(t, m), 0);
	fiks_melding_free(m);
	expect_empty(t, 300);
	release(a);
	release(t);
}

/* 1 when an IPv6 socket reaches 127.0.0.1:port as ::ffff:127.0.0.1. */
static int
v4mapped_works(int port)
{
	struct sockaddr_in6 sa;
	int fd = socket(AF_INET6, SOCK_STREAM, 0), ok;

	if (fd < 0)
		return 0;
	memset(&sa, 0, sizeof(sa));
	sa.sin6_family = AF_INET6;
	sa.sin6_port = htons((uint16_t)port);
	inet_pton(AF_INET6, "::ffff:127.0.0.1", &sa.sin6_addr);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/* Expects fiks_receive on a client with ov to fail with want, quickly. */
static void
expect_refused(const char *const *ov, int want, int timeout_ms,
	       const char *what)
{
	struct fiks_client *c = client_with(T1, ov);
	struct fiks_melding *m = NULL;
	int64_t t0 = bvt_now_ms(), took;
	int rc = fiks_receive(c, timeout_ms, &m);

	took = bvt_now_ms() - t0;
	fprintf(stderr, "# %s: %s after %lld ms\n", what, fiks_errname(rc),
		(long long)took);
	if (rc == 0)
		fiks_melding_free(m);
	assert_int_equal(rc, want);
	assert_true(took < (want == FIKS_ETLS ? bvt_ms(3000)
					      : timeout_ms + bvt_ms(1500)));
	release(c);
}

/*
 * A broker whose certificate does not verify is refused at once with
 * FIKS_ETLS, never retried until the timeout: a CA of the same name with
 * another key, the system's store (which does not hold the test CA), an
 * address the certificate does not name. TLS to the plain port is a
 * failed connection (FIKS_EAMQP), bounded by the timeout.
 */
static void
t_tls_refused(void **state)
{
	char other[160], plain[16];
	const char *other_ca[] = {"amqp_tls",	"1",	       "amqp_port",
				  amqps_port(), "amqp_cafile", other,
				  NULL};
	const char *system_ca[] = {"amqp_tls", "1", "amqp_port", amqps_port(),
				   NULL};
	const char *wrong_name[] = {
		"amqp_tls",    "1",	   "amqp_port", amqps_port(),
		"amqp_cafile", F.amqps_ca, "amqp_host", "::ffff:127.0.0.1",
		NULL};
	const char *plain_port[] = {"amqp_tls", "1",	       "amqp_port",
				    plain,	"amqp_cafile", F.amqps_ca,
				    NULL};

	(void)state;
	snprintf(other, sizeof(other), "%s/other-ca.crt", F.dir);
	snprintf(plain, sizeof(plain), "%d", F.amqp_port);
	assert_int_equal(bvt_fiks_other_ca(&F, other), 0);
	expect_refused(other_ca, FIKS_ETLS, bvt_ms(10000), "another CA");
	expect_refused(system_ca, FIKS_ETLS, bvt_ms(10000), "system CAs");
	if (v4mapped_works(F.amqps_port))
		expect_refused(wrong_name, FIKS_ETLS, bvt_ms(10000),
			       "a name not in the certificate");
	else
		fprintf(stderr, "# no IPv4-mapped IPv6 here: the name "
				"mismatch is not tried\n");
	expect_refused(plain_port, FIKS_EAMQP, 1500, "TLS to the plain port");
}

static int
setup(void **state)
{
	(void)state;
	if (bvt_fiks_start(&F, N_ACCTS) < 0)
		return -1;
	fprintf(stderr, "# local FIKS IO up in %ld ms\n", F.start_ms);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(t_send_receive_reply, teardown),
		cmocka_unit_test_teardown(t_katalog, teardown),
		cmocka_unit_test_teardown(t_redelivery, teardown),
		cmocka_unit_test_teardown(t_serverfeil, teardown),
		cmocka_unit_test_teardown(t_tidsavbrudd, teardown),
		cmocka_unit_test_teardown(t_tidsavbrudd_at_head, teardown),
		cmocka_unit_test_teardown(t_missing_header, teardown),
		cmocka_unit_test_teardown(t_dokumentlager, teardown),
		cmocka_unit_test_teardown(t_unauthorized, teardown),
		cmocka_unit_test_teardown(t_package_roundtrip, teardown),
		cmocka_unit_test_teardown(t_package_dokumentlager, teardown),
		cmocka_unit_test_teardown(t_devserver_hostile, teardown),
		cmocka_unit_test_teardown(t_broker_restart, teardown),
		cmocka_unit_test_teardown(t_amqp_config, teardown),
		cmocka_unit_test_teardown(t_tls_consume, teardown),
		cmocka_unit_test_teardown(t_tls_refused, teardown),
		cmocka_unit_test_teardown(t_heartbeat_idle, teardown),
		cmocka_unit_test_teardown(t_heartbeat_broker_stopped, teardown),
	};
	const char *filter = getenv("BVT_TEST_FILTER");
	int failures;

	if (filter)
		cmocka_set_test_filter(filter);
	failures = cmocka_run_group_tests_name("30-fiksio", tests, setup, NULL);
	broker_cont();
	/* The logs before the directory goes (kept on failure). */
	if (failures)
		bvt_fiks_print_logs(&F);
	if (bvt_fiks_stop(&F) < 0 && !failures)
		failures = 1;
	return bvt_done(failures);
}
