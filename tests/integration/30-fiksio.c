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
 * requests. Every wait is bounded. Set BVT_TEST_FILTER (a
 * cmocka pattern) to run some tests only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <cmocka.h>

#include "bvtest.h"
#include "bv_error.h"
#include "bvtest_fiks.h"
#include "fiks_asice.h"
#include "fiks_error.h"
#include "fiks_io.h"

enum { A, B, B2, C, D, E, B3, B4, B5, B6, D2, N_ACCTS };

static struct bvt_fiks F;
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

/*
 * The next message on c for which svar_til (when not NULL) or melding_id
 * (when not NULL) matches; others are acked and skipped. Bounded.
 */
static struct fiks_melding *
recv_match(struct fiks_client *c, const char *melding_id, const char *svar_til,
	   int timeout_ms)
{
	int64_t deadline = bvt_now_ms() + bvt_ms(timeout_ms);

	while (bvt_now_ms() < deadline) {
		struct fiks_melding *m = NULL;
		int left = (int)(deadline - bvt_now_ms());
		int rc = fiks_receive(c, left > 0 ? left : 1, &m);

		if (rc == FIKS_ETIMEOUT || rc == FIKS_EAMQP)
			continue;
		if (rc < 0)
			fail_msg("fiks_receive: %s", fiks_errname(rc));
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
	};
	const char *filter = getenv("BVT_TEST_FILTER");
	int failures;

	if (filter)
		cmocka_set_test_filter(filter);
	failures = cmocka_run_group_tests_name("30-fiksio", tests, setup, NULL);
	/* The logs before the directory goes (kept on failure). */
	if (failures)
		bvt_fiks_print_logs(&F);
	if (bvt_fiks_stop(&F) < 0 && !failures)
		failures = 1;
	return bvt_done(failures);
}
