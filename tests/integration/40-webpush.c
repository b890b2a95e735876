/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 40-webpush.c: relay/webpush.c's webpush_send over real HTTP against the
 * local push service (tests/support/push_sink.c), no relay or database:
 * a push arrives with its headers and VAPID checked by the service and
 * decrypts to the text on the user agent's side; 404/410 are "gone",
 * 429/5xx "retry" with Retry-After, other refusals permanent; a dead port
 * and a silent server are "retry" within the timeout; nothing is sent for
 * bad input. The sink's own checks are driven with plain libcurl, so a
 * sink that took anything could not make these tests pass.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "bv_error.h"
#include "bv_util.h"
#include "bvtest.h"
#include "push_sink.h"
#include "webpush.h"

#define SUBJECT "mailto:drift@kommune.example"
#define TEXT	"Du har en ny melding i Barnevernet Chat."

static struct push_sink *sink;
static struct webpush_vapid_key *vapid;
static struct push_ua ua;

static const struct webpush_send_opts local = {.allow_http = 1};

/* sub for /push/<id> on the sink, with ua's keys. */
static void
subscription(const char *id, char *endpoint, size_t cap,
	     struct webpush_subscription *sub)
{
	push_sink_endpoint(sink, id, endpoint, cap);
	sub->endpoint = endpoint;
	memcpy(sub->p256dh, ua.p256dh, 65);
	memcpy(sub->auth, ua.auth, 16);
}

static int
send_text(const char *id, const char *text,
	  const struct webpush_send_opts *opts, int64_t now_s,
	  struct webpush_result *res)
{
	struct webpush_subscription sub;
	char endpoint[128];

	subscription(id, endpoint, sizeof(endpoint), &sub);
	return webpush_send(vapid, SUBJECT, &sub, (const uint8_t *)text,
			    strlen(text), opts, now_s, res);
}

static void
t_delivered(void **state)
{
	struct webpush_result res;
	struct push_msg m;
	uint8_t *pt = NULL;
	size_t pt_len = 0, before = push_sink_count(sink);
	char why[200];
	int rc;

	(void)state;
	rc = send_text("sub-1", TEXT, &local, time(NULL), &res);
	if (rc != 0) {
		push_sink_last_refusal(sink, why, sizeof(why));
		fail_msg("webpush_send: %s (%ld), sink: %s",
			 webpush_errname(rc), res.status, why);
	}
	assert_int_equal(res.status, 201);
	assert_int_equal(push_sink_count(sink), before + 1);
	assert_int_equal(push_sink_get(sink, before, &m), 0);
	assert_string_equal(m.id, "sub-1");
	assert_int_equal(m.ttl, 86400);
	assert_string_equal(m.urgency, "normal");
	assert_string_equal(m.k, webpush_vapid_key_public(vapid));
	assert_int_equal(m.len, 86 + strlen(TEXT) + 17);
	if (push_ua_decrypt(&ua, m.body, m.len, &pt, &pt_len, why,
			    sizeof(why)) != 0)
		fail_msg("user agent cannot read the push: %s", why);
	assert_int_equal(pt_len, strlen(TEXT));
	assert_string_equal((char *)pt, TEXT);
	free(pt);
	free(m.body);
}

static void
t_ttl_and_largest(void **state)
{
	struct webpush_send_opts opts = {.ttl_s = 600, .allow_http = 1};
	char big[WEBPUSH_PAYLOAD_MAX + 1], why[200];
	struct webpush_result res;
	struct push_msg m;
	uint8_t *pt = NULL;
	size_t pt_len = 0, before = push_sink_count(sink);

	(void)state;
	memset(big, 'x', WEBPUSH_PAYLOAD_MAX);
	big[WEBPUSH_PAYLOAD_MAX] = '\0';
	assert_int_equal(send_text("sub-2", big, &opts, time(NULL), &res), 0);
	assert_int_equal(push_sink_get(sink, before, &m), 0);
	assert_int_equal(m.ttl, 600);
	assert_int_equal(m.len, 4096);
	assert_int_equal(push_ua_decrypt(&ua, m.body, m.len, &pt, &pt_len, why,
					 sizeof(why)),
			 0);
	assert_int_equal(pt_len, WEBPUSH_PAYLOAD_MAX);
	assert_memory_equal(pt, big, pt_len);
	free(pt);
	free(m.body);
}

static void
t_gone(void **state)
{
	struct webpush_result res;
	size_t before = push_sink_count(sink);

	(void)state;
	push_sink_set_mode(sink, 410, 0);
	assert_int_equal(send_text("sub-3", TEXT, &local, time(NULL), &res),
			 WEBPUSH_EGONE);
	assert_int_equal(res.status, 410);
	push_sink_set_mode(sink, 404, 0);
	assert_int_equal(send_text("sub-3", TEXT, &local, time(NULL), &res),
			 WEBPUSH_EGONE);
	assert_int_equal(res.status, 404);
	assert_int_equal(push_sink_answered(sink, 410), 1);
	assert_int_equal(push_sink_answered(sink, 404), 1);
	assert_int_equal(push_sink_count(sink), before);
	assert_int_equal(webpush_retryable(WEBPUSH_EGONE), 0);
}

static void
t_retry(void **state)
{
	struct webpush_result res;

	(void)state;
	push_sink_set_mode(sink, 429, 120);
	assert_int_equal(send_text("sub-4", TEXT, &local, time(NULL), &res),
			 WEBPUSH_ERETRY);
	assert_int_equal(res.status, 429);
	assert_int_equal(res.retry_after_s, 120);
	push_sink_set_mode(sink, 500, 0);
	assert_int_equal(send_text("sub-4", TEXT, &local, time(NULL), &res),
			 WEBPUSH_ERETRY);
	assert_int_equal(res.status, 500);
	assert_int_equal(res.retry_after_s, 0);
	push_sink_set_mode(sink, 503, 30);
	assert_int_equal(send_text("sub-4", TEXT, &local, time(NULL), &res),
			 WEBPUSH_ERETRY);
	assert_int_equal(res.retry_after_s, 30);
	assert_int_equal(webpush_retryable(WEBPUSH_ERETRY), 1);
	/* A push after the service recovers goes through. */
	push_sink_set_mode(sink, 201, 0);
	assert_int_equal(send_text("sub-4", TEXT, &local, time(NULL), &res), 0);
}

static void
t_rejected(void **state)
{
	struct webpush_result res;
	size_t refused = push_sink_refused(sink);
	char why[200];

	(void)state;
	/* A JWT from a clock two days behind has expired: 401. */
	assert_int_equal(
		send_text("sub-5", TEXT, &local, time(NULL) - 2 * 86400, &res),
		WEBPUSH_EREJECTED);
	assert_int_equal(res.status, 401);
	assert_int_equal(push_sink_refused(sink), refused + 1);
	push_sink_last_refusal(sink, why, sizeof(why));
	assert_non_null(strstr(why, "exp"));
	push_sink_set_mode(sink, 403, 0);
	assert_int_equal(send_text("sub-5", TEXT, &local, time(NULL), &res),
			 WEBPUSH_EREJECTED);
	assert_int_equal(res.status, 403);
	push_sink_set_mode(sink, 201, 0);
}

/* A loopback port with a listening socket that never answers (listen)
 * or with nothing on it (closed). */
static int
loopback_port(int do_listen, int *fd_out)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	if (do_listen)
		assert_int_equal(listen(fd, 4), 0);
	*fd_out = fd;
	return ntohs(sin.sin_port);
}

static void
t_unreachable(void **state)
{
	struct webpush_send_opts opts = {.timeout_ms = 500, .allow_http = 1};
	struct webpush_subscription sub;
	struct webpush_result res;
	char endpoint[128];
	uint64_t t0;
	int fd, port;

	(void)state;
	memcpy(sub.p256dh, ua.p256dh, 65);
	memcpy(sub.auth, ua.auth, 16);
	sub.endpoint = endpoint;

	/* Nothing listens: connection refused at once. */
	port = loopback_port(0, &fd);
	close(fd);
	snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d/push/x",
		 port);
	assert_int_equal(webpush_send(vapid, SUBJECT, &sub,
				      (const uint8_t *)TEXT, strlen(TEXT),
				      &opts, time(NULL), &res),
			 WEBPUSH_ERETRY);
	assert_int_equal(res.status, 0);

	/* A server that accepts and never answers: the timeout ends it. */
	port = loopback_port(1, &fd);
	snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d/push/x",
		 port);
	t0 = bv_mono_ms();
	assert_int_equal(webpush_send(vapid, SUBJECT, &sub,
				      (const uint8_t *)TEXT, strlen(TEXT),
				      &opts, time(NULL), &res),
			 WEBPUSH_ERETRY);
	assert_int_equal(res.status, 0);
	assert_true(bv_mono_ms() - t0 < 5000);
	close(fd);
}

static void
t_bad_input(void **state)
{
	char big[WEBPUSH_PAYLOAD_MAX + 2], endpoint[128];
	struct webpush_subscription sub;
	struct webpush_result res;
	size_t before = push_sink_count(sink),
	       refused = push_sink_refused(sink);

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(send_text("sub-6", big, &local, time(NULL), &res),
			 WEBPUSH_ESIZE);
	/* http:// only when the caller allows it (tests). */
	assert_int_equal(send_text("sub-6", TEXT, NULL, time(NULL), &res),
			 WEBPUSH_EENDPOINT);
	subscription("sub-6", endpoint, sizeof(endpoint), &sub);
	assert_int_equal(webpush_send(vapid, "drift@kommune.example", &sub,
				      (const uint8_t *)TEXT, strlen(TEXT),
				      &local, time(NULL), &res),
			 WEBPUSH_ESUBJECT);
	sub.p256dh[0] = 0x03;
	assert_int_equal(webpush_send(vapid, SUBJECT, &sub,
				      (const uint8_t *)TEXT, strlen(TEXT),
				      &local, time(NULL), &res),
			 WEBPUSH_EKEY);
	assert_int_equal(res.status, 0);
	/* Nothing reached the service. */
	assert_int_equal(push_sink_count(sink), before);
	assert_int_equal(push_sink_refused(sink), refused);
}

/* Without allow_http no inside address is dialled, by literal or name. */
static void
t_internal(void **state)
{
	static const char *const hosts[] = {"127.0.0.1", "localhost", "[::1]"};
	const char *port = strrchr(push_sink_origin(sink), ':') + 1;
	struct webpush_subscription sub;
	struct webpush_result res;
	size_t before = push_sink_count(sink),
	       refused = push_sink_refused(sink), i;
	char endpoint[128];

	(void)state;
	memcpy(sub.p256dh, ua.p256dh, 65);
	memcpy(sub.auth, ua.auth, 16);
	sub.endpoint = endpoint;
	for (i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
		snprintf(endpoint, sizeof(endpoint), "https://%s:%s/push/x",
			 hosts[i], port);
		assert_int_equal(webpush_send(vapid, SUBJECT, &sub,
					      (const uint8_t *)TEXT,
					      strlen(TEXT), NULL, time(NULL),
					      &res),
				 WEBPUSH_EENDPOINT);
		assert_int_equal(res.status, 0);
	}
	assert_int_equal(push_sink_count(sink), before);
	assert_int_equal(push_sink_refused(sink), refused);
}

/*
 * With allow_http (webpush_allow_loopback_http) loopback is allowed and
 * nothing else inside: no private or link-local address, and plain http://
 * to nothing but loopback (192.0.2.1 is an outside address, TEST-NET-1).
 * All refused before a socket is opened.
 */
static void
t_loopback_only(void **state)
{
	static const char *const endpoints[] = {
		"http://10.1.2.3:8443/push/x",
		"https://10.1.2.3:8443/push/x",
		"http://192.168.1.1:8443/push/x",
		"http://169.254.1.1/push/x",
		"http://[fd00::1]:8443/push/x",
		"http://192.0.2.1:8443/push/x",
	};
	const struct webpush_send_opts opts = {.allow_http = 1};
	struct webpush_subscription sub;
	struct webpush_result res;
	size_t before = push_sink_count(sink), i;
	char endpoint[128];

	(void)state;
	memcpy(sub.p256dh, ua.p256dh, 65);
	memcpy(sub.auth, ua.auth, 16);
	for (i = 0; i < sizeof(endpoints) / sizeof(endpoints[0]); i++) {
		sub.endpoint = endpoints[i];
		assert_int_equal(webpush_send(vapid, SUBJECT, &sub,
					      (const uint8_t *)TEXT,
					      strlen(TEXT), &opts, time(NULL),
					      &res),
				 WEBPUSH_EENDPOINT);
		assert_int_equal(res.status, 0);
	}
	/* Loopback by name is dialled: the sink answers (401, as the JWT's
	 * aud is http://localhost:…, not its origin). */
	snprintf(endpoint, sizeof(endpoint), "http://localhost:%s/push/lo",
		 strrchr(push_sink_origin(sink), ':') + 1);
	sub.endpoint = endpoint;
	assert_int_equal(webpush_send(vapid, SUBJECT, &sub,
				      (const uint8_t *)TEXT, strlen(TEXT),
				      &opts, time(NULL), &res),
			 WEBPUSH_EREJECTED);
	assert_int_equal(res.status, 401);
	assert_int_equal(push_sink_count(sink), before);
}

/* POSTs body to /push/<id> with the given extra headers; the status. */
static long
raw_post(const char *id, const char *const *headers, const void *body,
	 size_t len)
{
	char endpoint[128];
	struct curl_slist *h = NULL;
	CURL *c = curl_easy_init();
	long status = 0;

	assert_non_null(c);
	push_sink_endpoint(sink, id, endpoint, sizeof(endpoint));
	for (; *headers; headers++)
		h = curl_slist_append(h, *headers);
	curl_easy_setopt(c, CURLOPT_URL, endpoint);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	return status;
}

static void
t_sink_checks(void **state)
{
	char *good = NULL, *other = NULL, endpoint[128], auth[1024],
	     auth_other[1024], *dot;
	uint8_t *body = NULL, big[5000] = {0};
	size_t len = 0, before = push_sink_count(sink);

	(void)state;
	push_sink_endpoint(sink, "sub-7", endpoint, sizeof(endpoint));
	assert_int_equal(
		webpush_vapid(vapid, endpoint, SUBJECT, time(NULL), &good), 0);
	assert_int_equal(webpush_vapid(vapid, "https://push.example/x", SUBJECT,
				       time(NULL), &other),
			 0);
	snprintf(auth, sizeof(auth), "Authorization: %s", good);
	snprintf(auth_other, sizeof(auth_other), "Authorization: %s", other);
	assert_int_equal(webpush_encrypt(ua.p256dh, ua.auth,
					 (const uint8_t *)TEXT, strlen(TEXT),
					 &body, &len),
			 0);
	{
		const char *ok[] = {auth, "TTL: 5",
				    "Content-Encoding: aes128gcm", NULL};
		const char *no_ttl[] = {auth, "Content-Encoding: aes128gcm",
					NULL};
		const char *aesgcm[] = {auth, "TTL: 5",
					"Content-Encoding: aesgcm", NULL};
		const char *no_auth[] = {"TTL: 5",
					 "Content-Encoding: aes128gcm", NULL};
		const char *wrong_aud[] = {auth_other, "TTL: 5",
					   "Content-Encoding: aes128gcm", NULL};

		assert_int_equal(raw_post("sub-7", no_ttl, body, len), 400);
		assert_int_equal(raw_post("sub-7", aesgcm, body, len), 415);
		assert_int_equal(raw_post("sub-7", no_auth, body, len), 401);
		assert_int_equal(raw_post("sub-7", wrong_aud, body, len), 401);
		assert_int_equal(raw_post("sub-7", ok, big, sizeof(big)), 413);
		assert_int_equal(raw_post("a/b", ok, body, len), 404);
		/* A signature that does not match: one character changed. */
		dot = strrchr(auth, '.');
		assert_non_null(dot);
		dot[2] = dot[2] == 'A' ? 'B' : 'A';
		assert_int_equal(raw_post("sub-7", ok, body, len), 401);
		snprintf(auth, sizeof(auth), "Authorization: %s", good);
		assert_int_equal(push_sink_count(sink), before);
		assert_int_equal(raw_post("sub-7", ok, body, len), 201);
		assert_int_equal(push_sink_count(sink), before + 1);
	}
	bv_free(body);
	bv_free(good);
	bv_free(other);
}

static int
setup(void **state)
{
	char path[512];
	EVP_PKEY *pkey;
	FILE *f;
	int rc;

	(void)state;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
		return -1;
	sink = push_sink_start();
	if (!sink || push_ua_new(&ua) != 0)
		return -1;
	/* A VAPID key made for this run, as operators make theirs. */
	snprintf(path, sizeof(path), "%s/vapid.pem", bvt_tmpdir());
	pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	f = fopen(path, "w");
	if (!pkey || !f ||
	    PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) != 1)
		return -1;
	fclose(f);
	EVP_PKEY_free(pkey);
	rc = webpush_vapid_key_load(path, &vapid);
	return rc == 0 ? 0 : -1;
}

static int
teardown(void **state)
{
	(void)state;
	push_sink_stop(sink);
	webpush_vapid_key_free(vapid);
	curl_global_cleanup();
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_delivered),
		cmocka_unit_test(t_ttl_and_largest),
		cmocka_unit_test(t_gone),
		cmocka_unit_test(t_retry),
		cmocka_unit_test(t_rejected),
		cmocka_unit_test(t_unreachable),
		cmocka_unit_test(t_bad_input),
		cmocka_unit_test(t_internal),
		cmocka_unit_test(t_loopback_only),
		cmocka_unit_test(t_sink_checks),
	};

	return bvt_done(cmocka_run_group_tests_name("40-webpush", tests, setup,
						    teardown));
}
