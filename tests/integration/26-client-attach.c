/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 26-client-attach: encrypted attachments through libbvchat's public API
 * against a real relay and PostgreSQL (issue 7):
 * - a citizen sends a photo-sized file (3 MiB of random bytes, image/jpeg)
 *   with a text to the case team: the caseworker's history lists it
 *   (name, type, size), bv_client_attachment_fetch() writes the very
 *   bytes and marks it downloaded; the archive device got the reference;
 *   the database holds no plaintext of it;
 * - a chunk changed in the database: BV_ETAMPERED and no file left;
 * - a file over max_blob_bytes: BV_EBLOB_SIZE, nothing stored by the relay;
 * - a tenant quota too small: BV_EQUOTA;
 * - the sender closed while its upload was under way: after a restart the
 *   upload starts again and the message arrives once;
 * - bad files are refused before anything is stored.
 * Every wait is bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <sodium.h>
#include <uv.h>

#include "client_peer.h"

#define PHOTO (3 * 1024 * 1024)
/* max_blob_bytes of the test's relays: the photo fits, 5 MiB does not. */
static const char *const relay_args[] = {"--max_blob_bytes", "4194304", NULL};

struct att {
	char name[256];
	char type[40];
	char blob[40];
	int64_t size;
	enum bv_client_att_state state;
};

struct msg {
	int found;
	char text[64];
	size_t n;
	struct att a[BV_CLIENT_ATTACHMENTS_MAX];
	enum bv_client_msg_state state;
};

struct find_msg {
	const char *mid;
	struct msg m;
};

static int
find_cb(void *arg, const struct bv_client_message *m)
{
	struct find_msg *f = arg;
	size_t i;

	if (strcmp(m->message_id, f->mid))
		return 0;
	f->m.found++;
	f->m.state = m->state;
	snprintf(f->m.text, sizeof(f->m.text), "%s", m->text);
	f->m.n = m->n_attachments;
	for (i = 0; i < m->n_attachments && i < BV_CLIENT_ATTACHMENTS_MAX;
	     i++) {
		snprintf(f->m.a[i].name, sizeof(f->m.a[i].name), "%s",
			 m->attachments[i].name);
		snprintf(f->m.a[i].type, sizeof(f->m.a[i].type), "%s",
			 m->attachments[i].type);
		snprintf(f->m.a[i].blob, sizeof(f->m.a[i].blob), "%s",
			 m->attachments[i].blob);
		f->m.a[i].size = m->attachments[i].size;
		f->m.a[i].state = m->attachments[i].state;
	}
	return 0;
}

/* mid in p's history (found counts the entries). */
static struct msg
msg_of(struct peer *p, const char *mid)
{
	struct find_msg f;

	memset(&f, 0, sizeof(f));
	f.mid = mid;
	assert_int_equal(bv_client_history(p->c, conv, 0, find_cb, &f), 0);
	return f.m;
}

struct fetched {
	unsigned n;
	int rc;
	char path[512];
	size_t len;
};

static void
on_fetched(struct bv_client *c, void *arg, const char *mid, int index, int rc,
	   const char *path, const uint8_t *data, size_t len)
{
	struct fetched *f = arg;

	(void)c;
	(void)mid;
	(void)index;
	(void)data;
	f->rc = rc;
	snprintf(f->path, sizeof(f->path), "%s", path ? path : "");
	f->len = len;
	f->n++;
}

static int
fetch(struct peer *p, const char *mid, const char *dest)
{
	struct fetched f;

	memset(&f, 0, sizeof(f));
	assert_int_equal(
		bv_client_attachment_fetch(p->c, mid, 0, dest, on_fetched, &f),
		0);
	if (!run_until(&f.n, 1, bvt_ms(BVT_TIMEOUT)))
		fail_msg("%s: fetch did not end", p->name);
	return f.rc;
}

/* Sends files and waits for the outcome; returns its code. */
static int
send_files(struct peer *from, const char *text,
	   const struct bv_client_file *files, size_t n, char *mid)
{
	unsigned before = from->sent;

	assert_int_equal(bv_client_send_attachments(from->c, conv, text, NULL,
						    NULL, 0, files, n, mid),
			 0);
	if (!run_until(&from->sent, before + 1, bvt_ms(BVT_TIMEOUT)))
		fail_msg("%s: attachment message did not end", from->name);
	return from->sent_rc;
}

static long long
blobs_rows(void)
{
	return bvt_sql_int(env.db, "SELECT count(*) FROM blobs", 0, NULL);
}

static void
t_photo_round_trip(void **state)
{
	char mid[BV_CLIENT_MESSAGE_ID_LEN + 1], path[600], out[600];
	struct bv_client_file f;
	struct peer cam, eli, arc;
	uint8_t *photo;
	struct msg m;
	size_t len = 0;
	char *back;
	char *dump;
	size_t dump_len = 0;

	(void)state;
	memset(&cam, 0, sizeof(cam));
	memset(&eli, 0, sizeof(eli));
	memset(&arc, 0, sizeof(arc));
	enroll(&cam, "Camilla", NULL, 0);
	enroll(&eli, "Elisa", NULL, 0);
	peer_no_delivery_receipts = 1;
	enroll(&arc, "Archive", NULL, 0);
	peer_no_delivery_receipts = 0;
	case_pair(&cam, &eli);
	case_archive(&arc);
	peer_cases(&eli);

	photo = malloc(PHOTO);
	assert_non_null(photo);
	randombytes_buf(photo, PHOTO);
	/* A canary the database must never show. */
	memcpy(photo + 1000, "CANARY-PHOTO-26", 15);
	snprintf(path, sizeof(path), "%s/IMG_0042.jpg", dir);
	{
		FILE *fp = fopen(path, "wb");

		assert_non_null(fp);
		assert_int_equal(fwrite(photo, 1, PHOTO, fp), PHOTO);
		fclose(fp);
	}
	memset(&f, 0, sizeof(f));
	f.path = path;
	f.type = "image/jpeg";
	assert_int_equal(send_files(&eli, "Her er bildet.", &f, 1, mid), 0);
	expect(&cam, mid, &eli, "Her er bildet.");

	m = msg_of(&cam, mid);
	assert_int_equal(m.n, 1);
	assert_string_equal(m.a[0].name, "IMG_0042.jpg");
	assert_string_equal(m.a[0].type, "image/jpeg");
	assert_int_equal(m.a[0].size, PHOTO);
	assert_int_equal(m.a[0].state, BV_CLIENT_ATT_AVAILABLE);
	assert_int_equal(strlen(m.a[0].blob), 36);
	/* The sender's own history: uploaded, the same blob. */
	assert_string_equal(msg_of(&eli, mid).a[0].blob, m.a[0].blob);

	snprintf(out, sizeof(out), "%s/saved.jpg", dir);
	assert_int_equal(fetch(&cam, mid, out), 0);
	back = bvt_file_read(out, &len);
	assert_non_null(back);
	assert_int_equal(len, PHOTO);
	assert_memory_equal(back, photo, PHOTO);
	free(back);
	assert_int_equal(msg_of(&cam, mid).a[0].state,
			 BV_CLIENT_ATT_DOWNLOADED);

	/* The archive device has the reference and can fetch it too. */
	if (!run_until(&arc.n_rx, 1, bvt_ms(BVT_TIMEOUT)))
		fail_msg("the archive got nothing");
	m = msg_of(&arc, mid);
	assert_int_equal(m.found, 1);
	assert_int_equal(m.n, 1);
	assert_string_equal(m.a[0].blob, msg_of(&cam, mid).a[0].blob);
	assert_int_equal(fetch(&arc, mid, NULL), 0);

	/* Ciphertext only in the database. */
	dump = bvt_pg_dump(env.db, &dump_len);
	assert_non_null(dump);
	assert_false(bvt_mem_contains(dump, dump_len, "CANARY-PHOTO-26", 15));
	free(dump);

	/* Tampered in the database: refused, nothing written. */
	{
		char sql[300];

		snprintf(sql, sizeof(sql),
			 "UPDATE blob_chunks SET data = set_byte(data, 100, "
			 "(get_byte(data, 100) + 1) %% 256) WHERE blob_id = "
			 "'%s' AND n = 3",
			 m.a[0].blob);
		assert_int_equal(bvt_sql_exec(env.db, sql), 0);
	}
	snprintf(out, sizeof(out), "%s/tampered.jpg", dir);
	assert_int_equal(fetch(&cam, mid, out), BV_ETAMPERED);
	assert_int_equal(access(out, F_OK), -1);
	{
		char part[700];

		snprintf(part, sizeof(part), "%s.bvpart", out);
		assert_int_equal(access(part, F_OK), -1);
	}
	cam.errors = 0; /* the tamper was reported, as it should be */

	free(photo);
	assert_int_equal(eli.errors, 0);
	peer_close(&arc);
	peer_close(&cam);
	peer_close(&eli);
}

static void
t_oversize_and_quota(void **state)
{
	char mid[BV_CLIENT_MESSAGE_ID_LEN + 1], spool[600];
	const char *const quota[] = {"tenant-blobs",  "--tenant", env.tenant.id,
				     "--quota-bytes", "100000",	  NULL};
	struct bv_client_file f[2];
	struct peer cam, eli;
	uint8_t *big;

	(void)state;
	memset(&cam, 0, sizeof(cam));
	memset(&eli, 0, sizeof(eli));
	enroll(&cam, "Camilla", NULL, 0);
	enroll(&eli, "Elisa", NULL, 0);
	case_pair(&cam, &eli);

	big = calloc(1, 5 * 1024 * 1024);
	assert_non_null(big);
	memset(f, 0, sizeof(f));
	f[0].data = (const uint8_t *)"%PDF-1.4 small";
	f[0].len = 14;
	f[0].type = "application/pdf";
	f[0].name = "vedtak.pdf";
	f[1].data = big;
	f[1].len = 5 * 1024 * 1024;
	f[1].type = "audio/mpeg";
	f[1].name = "opptak.mp3";
	/* The small one is announced first, the big one refused: nothing
	 * was uploaded. */
	assert_int_equal(send_files(&eli, "", f, 2, mid), BV_EBLOB_SIZE);
	assert_int_equal(eli.last_error, BV_EBLOB_SIZE);
	assert_int_equal(msg_of(&eli, mid).state, BV_CLIENT_MSG_FAILED);
	assert_int_equal(bvt_sql_int(env.db, "SELECT count(*) FROM blob_chunks",
				     0, NULL),
			 0);
	snprintf(spool, sizeof(spool), "%s.spool/%s.1", eli.store, mid);
	assert_int_equal(access(spool, F_OK), -1);
	run_for(200);
	assert_int_equal(got(&cam, mid), 0);

	/* A quota of 100 kB and a 200 kB file. */
	assert_int_equal(admin(NULL, 0, quota), 0);
	f[1].len = 200000;
	assert_int_equal(send_files(&eli, "kvote", &f[1], 1, mid), BV_EQUOTA);
	assert_int_equal(eli.last_error, BV_EQUOTA);

	/* Refused before anything is stored. */
	f[0].type = "application/x-msdownload";
	assert_int_equal(bv_client_send_attachments(eli.c, conv, "x", NULL,
						    NULL, 0, f, 1, mid),
			 BV_EINVAL);
	f[0].type = "application/pdf";
	f[0].name = "../../etc/passwd";
	assert_int_equal(bv_client_send_attachments(eli.c, conv, "x", NULL,
						    NULL, 0, f, 1, mid),
			 BV_EINVAL);
	f[0].name = NULL;
	f[0].path = "/nonexistent/file.pdf";
	assert_int_equal(bv_client_send_attachments(eli.c, conv, "x", NULL,
						    NULL, 0, f, 1, mid),
			 BV_EINVAL);
	free(big);
	peer_close(&cam);
	peer_close(&eli);
	(void)blobs_rows;
}

static void
t_resume_after_restart(void **state)
{
	char mid[BV_CLIENT_MESSAGE_ID_LEN + 1], out[600];
	struct bv_client_file f;
	struct peer cam, eli;
	uint8_t *pdf;
	size_t len = 0;
	char *back;
	int i;

	(void)state;
	memset(&cam, 0, sizeof(cam));
	memset(&eli, 0, sizeof(eli));
	enroll(&cam, "Camilla", NULL, 0);
	enroll(&eli, "Elisa", NULL, 0);
	case_pair(&cam, &eli);

	pdf = malloc(PHOTO);
	assert_non_null(pdf);
	randombytes_buf(pdf, PHOTO);
	memset(&f, 0, sizeof(f));
	f.data = pdf;
	f.len = PHOTO;
	f.type = "application/pdf";
	f.name = "søknad.pdf";
	assert_int_equal(bv_client_send_attachments(eli.c, conv, "Søknaden",
						    NULL, NULL, 0, &f, 1, mid),
			 0);
	/* Until blob_create was answered and the PUT started, then stop. */
	for (i = 0; i < 2000 &&
		    !bvt_sql_int(env.db, "SELECT count(*) FROM blobs", 0, NULL);
	     i++)
		uv_run(&loop, UV_RUN_NOWAIT);
	assert_true(i < 2000);
	peer_close(&eli);
	assert_int_equal(got(&cam, mid), 0);

	peer_open(&eli, "Elisa");
	assert_int_equal(bv_client_connect(eli.c), 0);
	expect(&cam, mid, &eli, "Søknaden");
	run_for(300);
	assert_int_equal(got(&cam, mid), 1);
	assert_int_equal(msg_of(&cam, mid).found, 1);
	snprintf(out, sizeof(out), "%s/soknad.pdf", dir);
	assert_int_equal(fetch(&cam, mid, out), 0);
	back = bvt_file_read(out, &len);
	assert_non_null(back);
	assert_int_equal(len, PHOTO);
	assert_memory_equal(back, pdf, PHOTO);
	free(back);
	free(pdf);
	peer_close(&cam);
	peer_close(&eli);
}

static int
group_setup(void **state)
{
	(void)state;
	if (sodium_init() < 0)
		return -1;
	return bvt_pg_start();
}

static int
setup_attach(void **state)
{
	return setup_relay(state, relay_args);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup_attach, teardown)

int
main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		T(t_photo_round_trip),
		T(t_oversize_and_quota),
		T(t_resume_after_restart),
	};
	/* clang-format on */

	return bvt_done(cmocka_run_group_tests_name("26-client-attach", tests,
						    group_setup, NULL));
}
