/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 28-cli-attach: attachments in the `bvchat` command-line client
 * (BV_CLI_BIN) against a real relay and PostgreSQL. Camilla is a CLI
 * profile, Elisa a libbvchat peer (client_peer.c). `send --attach` sends
 * a photo and a text file that Elisa fetches byte for byte with the types
 * read from their content; a file of no allowed type and one over the
 * relay's max_blob_bytes fail with clear messages. Elisa's files with
 * hostile names arrive live in `bvchat chat` on a pseudo-terminal,
 * numbered and neutralised; `/save N DIR` writes them under sanitised
 * names, mode 0600, never over an existing file; `/attach PATH -- TEXT`
 * sends one. `bvchat save` does the same without a terminal, `history`
 * shows them saved, and a blob tampered with in the database is refused
 * (BV_ETAMPERED) with no file left. The name rules (tools/attach.c) are
 * checked on names libbvchat would never let through, too.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "attach.h"
#include "client_peer.h"

#define TTY_CAP (256 * 1024)

/* The test's relays take 1 MiB files at most. */
static const char *const relay_args[] = {"--max_blob_bytes", "1048576", NULL};

/* ---------------------------------------------------------------- */
/* The CLI                                                            */
/* ---------------------------------------------------------------- */

/* The CLI through /bin/sh: stdout into *out, stderr into err_path. */
static int
cli(char **out, const char *err_path, const char *args)
{
	char cmd[4096];
	char *argv[] = {"/bin/sh", "-c", cmd, NULL};
	size_t len;

	snprintf(cmd, sizeof(cmd), "'%s' --relay 127.0.0.1:%d %s 2>'%s'",
		 BV_CLI_BIN, env.relay.port, args, err_path);
	return bvt_run(argv, 0, bvt_ms(60000), out, &len);
}

/* Runs the CLI, wants exit status want; returns stdout, *err stderr. */
static char *
cli_want(int want, char **err, const char *fmt, ...)
{
	char args[3072], errp[600], *out = NULL;
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(errp, sizeof(errp), "%s/cli.err", dir);
	r = cli(&out, errp, args);
	*err = bvt_file_read(errp, NULL);
	if (r != want)
		fail_msg("bvchat %s: exit %d, not %d: %s", args, r, want,
			 *err ? *err : "?");
	if (!out)
		out = calloc(1, 1);
	return out;
}

/* ---------------------------------------------------------------- */
/* Files                                                              */
/* ---------------------------------------------------------------- */

static void
file_put(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* A "photo": JPEG's magic, then len - 3 bytes of a pattern. */
static uint8_t *
photo_new(size_t len, unsigned seed)
{
	uint8_t *p = malloc(len);
	size_t i;

	assert_non_null(p);
	for (i = 0; i < len; i++)
		p[i] = (uint8_t)((i * 131u + seed) ^ (i >> 7));
	p[0] = 0xff;
	p[1] = 0xd8;
	p[2] = 0xff;
	return p;
}

/* path holds exactly len bytes of data, mode 0600. */
static void
file_is(const char *path, const void *data, size_t len)
{
	struct stat st;
	size_t n = 0;
	char *got;

	if (stat(path, &st) != 0)
		fail_msg("%s: %s", path, strerror(errno));
	assert_int_equal(st.st_mode & 0777, 0600);
	got = bvt_file_read(path, &n);
	assert_non_null(got);
	assert_int_equal(n, len);
	assert_memory_equal(got, data, len);
	free(got);
}

/* Entries of directory d (not . and ..). */
static int
dir_count(const char *d)
{
	DIR *h = opendir(d);
	struct dirent *e;
	int n = 0;

	assert_non_null(h);
	while ((e = readdir(h)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(h);
	return n;
}

/* ---------------------------------------------------------------- */
/* The peer's side                                                    */
/* ---------------------------------------------------------------- */

/* One message of p's history, attachments copied. */
struct msg {
	int found;
	size_t n;
	char name[BV_CLIENT_ATTACHMENTS_MAX][BV_CLIENT_FILE_NAME_MAX + 1];
	char type[BV_CLIENT_ATTACHMENTS_MAX][64];
	char blob[BV_CLIENT_ATTACHMENTS_MAX][40];
	char text[256];
	const char *mid;
};

static int
msg_cb(void *arg, const struct bv_client_message *m)
{
	struct msg *q = arg;
	size_t i;

	if (strcmp(m->message_id, q->mid) != 0)
		return 0;
	q->found = 1;
	q->n = m->n_attachments;
	snprintf(q->text, sizeof(q->text), "%s", m->text);
	for (i = 0; i < m->n_attachments; i++) {
		snprintf(q->name[i], sizeof(q->name[i]), "%s",
			 m->attachments[i].name);
		snprintf(q->type[i], sizeof(q->type[i]), "%s",
			 m->attachments[i].type);
		snprintf(q->blob[i], sizeof(q->blob[i]), "%s",
			 m->attachments[i].blob);
	}
	return 1;
}

static struct msg
msg_of(struct peer *p, const char *mid)
{
	struct msg q;

	memset(&q, 0, sizeof(q));
	q.mid = mid;
	assert_true(bv_client_history(p->c, conv, 0, msg_cb, &q) >= 0);
	assert_true(q.found);
	return q;
}

struct fetched {
	unsigned done;
	int rc;
	uint8_t *data;
	size_t len;
};

static void
on_fetched(struct bv_client *c, void *arg, const char *message_id, int index,
	   int rc, const char *path, const uint8_t *data, size_t len)
{
	struct fetched *f = arg;

	(void)c;
	(void)message_id;
	(void)index;
	(void)path;
	f->rc = rc;
	if (rc == 0) {
		f->data = malloc(len ? len : 1);
		assert_non_null(f->data);
		memcpy(f->data, data, len);
		f->len = len;
	}
	f->done = 1;
}

/* ---------------------------------------------------------------- */
/* The terminal                                                       */
/* ---------------------------------------------------------------- */

struct tty {
	pid_t pid;
	int master;
	char *buf;
	size_t len;
	int status;
	int ended;
};

/* Reads the terminal for about ms, the peers' loop turning meanwhile. */
static void
tty_pump(struct tty *t, int ms)
{
	int64_t deadline = bvt_now_ms() + ms;
	struct pollfd p;
	ssize_t n;

	do {
		uv_run(&loop, UV_RUN_NOWAIT);
		p.fd = t->master;
		p.events = POLLIN;
		p.revents = 0;
		if (poll(&p, 1, 10) <= 0)
			continue;
		if (t->len + 1 >= TTY_CAP)
			fail_msg("the terminal shows more than %d bytes",
				 TTY_CAP);
		n = read(t->master, t->buf + t->len, TTY_CAP - 1 - t->len);
		if (n <= 0) {
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			break;
		}
		t->len += (size_t)n;
		t->buf[t->len] = '\0';
	} while (bvt_now_ms() < deadline);
}

static void
tty_wait(struct tty *t, size_t from, const char *needle)
{
	int64_t deadline = bvt_now_ms() + bvt_ms(BVT_TIMEOUT);

	while (!(t->len >= from && strstr(t->buf + from, needle))) {
		if (bvt_now_ms() >= deadline) {
			print_message("terminal: %s\n", t->buf);
			fail_msg("the terminal did not show \"%s\"", needle);
		}
		tty_pump(t, 50);
	}
}

static void
tty_start(struct tty *t, const char *profile)
{
	char relay[64];
	struct winsize ws = {.ws_row = 24, .ws_col = 200};
	int flags;

	memset(t, 0, sizeof(*t));
	t->buf = calloc(1, TTY_CAP);
	assert_non_null(t->buf);
	snprintf(relay, sizeof(relay), "127.0.0.1:%d", env.relay.port);
	t->pid = forkpty(&t->master, NULL, NULL, &ws);
	assert_true(t->pid >= 0);
	if (t->pid == 0) {
		execl(BV_CLI_BIN, BV_CLI_BIN, "--relay", relay, "--profile",
		      profile, "chat", "--conversation", conv, (char *)NULL);
		_exit(127);
	}
	flags = fcntl(t->master, F_GETFL);
	assert_int_equal(fcntl(t->master, F_SETFL, flags | O_NONBLOCK), 0);
}

static void
tty_type(struct tty *t, const char *s)
{
	size_t len = strlen(s), off = 0;
	ssize_t n;

	while (off < len) {
		n = write(t->master, s + off, len - off);
		if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
			tty_pump(t, 10);
			continue;
		}
		assert_true(n > 0);
		off += (size_t)n;
	}
}

static void
tty_end(struct tty *t)
{
	int64_t deadline = bvt_now_ms() + bvt_ms(30000);

	tty_type(t, "\004");
	while (!t->ended) {
		if (waitpid(t->pid, &t->status, WNOHANG) == t->pid) {
			t->ended = 1;
			break;
		}
		if (bvt_now_ms() >= deadline) {
			kill(t->pid, SIGKILL);
			waitpid(t->pid, &t->status, 0);
			t->ended = 1;
			print_message("terminal: %s\n", t->buf);
			fail_msg("bvchat chat did not end");
		}
		tty_pump(t, 50);
	}
	tty_pump(t, 0);
	close(t->master);
	if (!WIFEXITED(t->status) || WEXITSTATUS(t->status) != 0) {
		print_message("terminal: %s\n", t->buf);
		fail_msg("chat: status %#x, not exit 0", t->status);
	}
}

/* ---------------------------------------------------------------- */
/* Tests                                                              */
/* ---------------------------------------------------------------- */

/* The name rules on what libbvchat never lets through, and more. */
static void
t_names(void **state)
{
	char out[ATTACH_NAME_CAP], longname[600];
	size_t i;
	static const struct {
		const char *in, *type, *want;
	} cases[] = {
		{"../../etc/passwd", "text/plain", "_.._etc_passwd.txt"},
		{"\x1b[2J.jpg", "image/jpeg", "_[2J.jpg"},
		{"\xc2\x9b"
		 "31m.png",
		 "image/png", "_31m.png"},
		{"\xe2\x80\xae"
		 "fdp.exe",
		 "application/pdf", "fdp.exe.pdf"},
		{".bashrc", "text/plain", "bashrc.txt"},
		{"..", "image/jpeg", "vedlegg.jpg"},
		{"", "image/jpeg", "vedlegg.jpg"},
		{"-rf .pdf", "application/pdf", "rf.pdf"},
		{"CON.jpg", "image/jpeg", "_CON.jpg"},
		{"lpt1", "audio/mpeg", "_lpt1.mp3"},
		{"Rapport.PDF", "application/pdf", "Rapport.PDF"},
		{"a:b*c?.txt", "text/plain", "a_b_c_.txt"},
		{"bilde.jpeg", "image/jpeg", "bilde.jpeg"},
		{"lyd.m4a", "audio/mp4", "lyd.m4a"},
		{"bad\xff\xfe.txt", "text/plain", "bad__.txt"},
		{"\xc3\xa6\xc3\xb8\xc3\xa5.txt", "text/plain",
		 "\xc3\xa6\xc3\xb8\xc3\xa5.txt"},
	};

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		attach_file_name(cases[i].in, cases[i].type, out);
		if (strcmp(out, cases[i].want) != 0)
			fail_msg("name %zu: \"%s\", not \"%s\"", i, out,
				 cases[i].want);
	}
	/* Long: cut to ATTACH_NAME_MAX on a character boundary, the
	 * extension kept. */
	for (i = 0; i + 2 < 500; i += 2)
		memcpy(longname + i, "\xc3\xa5", 2);
	memcpy(longname + i, ".jpg", 5);
	attach_file_name(longname, "image/jpeg", out);
	assert_true(strlen(out) <= ATTACH_NAME_MAX);
	assert_true(strlen(out) > 90);
	assert_string_equal(out + strlen(out) - 6, "\xc3\xa5.jpg");
}

static void
t_cli_attach(void **state)
{
	struct peer eli;
	char cam[512], camilla[37], args[1024], path[1024], save[600];
	char save2[600], photo_p[600], notes_p[600], bad_p[600], big_p[600];
	char longname[260], *out, *err, *tok;
	const char *roster[] = {
		"roster-add", "--case",	    case_id,  "--account", camilla,
		"--role",     "caseworker", "--name", "Camilla",   NULL};
	static const char notes[] = "Møte tirsdag kl. 10.\nHilsen Elisa\n";
	uint8_t *photo, *small, *big, bad[300];
	struct bv_client_file f[6];
	struct fetched fe;
	struct msg m;
	struct tty t;
	char mid[BV_CLIENT_MESSAGE_ID_LEN + 1],
		mid2[BV_CLIENT_MESSAGE_ID_LEN + 1];
	size_t i, mark;
	unsigned sent;

	(void)state;
	/* Camilla enrolls with the CLI, Elisa with libbvchat; a case. */
	snprintf(cam, sizeof(cam), "%s/camilla", dir);
	tok = bvt_token(&env.tenant, NULL);
	assert_non_null(tok);
	out = cli_want(0, &err, "--profile '%s' enroll --token '%s'", cam, tok);
	assert_int_equal(sscanf(out, "account %36s", camilla), 1);
	free(out);
	free(err);
	free(tok);
	enroll(&eli, "elisa", NULL, 0);
	case_new();
	case_add(&eli, "child", "Elisa");
	assert_int_equal(admin(NULL, 0, roster), 0);
	case_team(&eli);
	peer_cases(&eli);
	free(cli_want(0, &err, "--profile '%s' cases", cam));
	free(err);

	/* Files: a photo, a text, no type, too large. */
	photo = photo_new(300000, 7);
	snprintf(photo_p, sizeof(photo_p), "%s/photo.jpg", dir);
	file_put(photo_p, photo, 300000);
	snprintf(notes_p, sizeof(notes_p), "%s/notes", dir);
	file_put(notes_p, notes, strlen(notes));
	for (i = 0; i < sizeof(bad); i++)
		bad[i] = (uint8_t)(i * 7 + 128);
	bad[0] = 0;
	snprintf(bad_p, sizeof(bad_p), "%s/bad.jpg", dir);
	file_put(bad_p, bad, sizeof(bad));
	big = malloc(1200000);
	assert_non_null(big);
	memset(big, 'x', 1200000);
	memcpy(big, "%PDF-1.7\n", 9);
	snprintf(big_p, sizeof(big_p), "%s/big.pdf", dir);
	file_put(big_p, big, 1200000);
	free(big);

	/* send --attach: both arrive, types from the content (the text
	 * file has no extension: it gets one). */
	out = cli_want(0, &err,
		       "--profile '%s' send --conversation %s --attach '%s' "
		       "--attach '%s' 'Bildet og notatet'",
		       cam, conv, photo_p, notes_p);
	assert_non_null(strstr(err, "sending 2 files"));
	free(err);
	assert_int_equal(sscanf(out, "%36s", mid), 1);
	free(out);
	if (!run_until(&eli.n_rx, 1, BVT_TIMEOUT))
		fail_msg("Elisa did not get the message");
	m = msg_of(&eli, mid);
	assert_string_equal(m.text, "Bildet og notatet");
	assert_int_equal(m.n, 2);
	assert_string_equal(m.name[0], "photo.jpg");
	assert_string_equal(m.type[0], "image/jpeg");
	assert_string_equal(m.name[1], "notes.txt");
	assert_string_equal(m.type[1], "text/plain");
	memset(&fe, 0, sizeof(fe));
	assert_int_equal(bv_client_attachment_fetch(eli.c, mid, 0, NULL,
						    on_fetched, &fe),
			 0);
	assert_true(run_until(&fe.done, 1, BVT_TIMEOUT));
	assert_int_equal(fe.rc, 0);
	assert_int_equal(fe.len, 300000);
	assert_memory_equal(fe.data, photo, 300000);
	free(fe.data);

	/* A type not on the list. */
	free(cli_want(1, &err,
		      "--profile '%s' send --conversation %s --attach '%s' x",
		      cam, conv, bad_p));
	assert_non_null(strstr(err, "not a type that can be sent"));
	free(err);
	/* Eleven is too many. */
	snprintf(args, sizeof(args), "--profile '%s' send x", cam);
	for (i = 0; i < 11; i++) {
		strcat(args, " --attach '");
		strcat(args, photo_p);
		strcat(args, "'");
	}
	free(cli_want(2, &err, "%s", args));
	free(err);

	/* libbvchat refuses the worst names itself: they cannot arrive. */
	small = photo_new(2000, 1);
	memset(f, 0, sizeof(f));
	f[0].data = small;
	f[0].len = 2000;
	f[0].type = "image/jpeg";
	f[0].name = "../../etc/passwd";
	assert_int_equal(bv_client_send_attachments(eli.c, conv, "", NULL, NULL,
						    0, f, 1, mid2),
			 BV_EINVAL);
	f[0].name = "\x1b[2J.jpg";
	assert_int_equal(bv_client_send_attachments(eli.c, conv, "", NULL, NULL,
						    0, f, 1, mid2),
			 BV_EINVAL);

	/* Live in chat: Elisa's files with names it does let through. */
	tty_start(&t, cam);
	tty_wait(&t, 0, "type a line");
	memset(longname, 'L', 250);
	memcpy(longname + 250, ".jpg", 5);
	for (i = 0; i < 5; i++) {
		f[i].data = small;
		f[i].len = 2000;
		f[i].type = "image/jpeg";
	}
	f[0].name = "\xc2\x9b"
		    "2J.jpg";
	f[1].name = "\xe2\x80\xae"
		    "gpj.exe";
	f[2].name = ".bashrc";
	f[3].name = "CON.jpg";
	f[4].name = longname;
	sent = eli.sent;
	mark = t.len;
	assert_int_equal(bv_client_send_attachments(eli.c, conv, "Se her", NULL,
						    NULL, 0, f, 5, mid2),
			 0);
	if (!run_until(&eli.sent, sent + 1, BVT_TIMEOUT) || eli.sent_rc)
		fail_msg("Elisa's files were not sent (%d)", eli.sent_rc);
	tty_wait(&t, mark, "Elisa (child): Se her");
	tty_wait(&t, mark, "  [vedlegg 3] ?2J.jpg (image/jpeg, 2.0 kB)\r\n");
	tty_wait(&t, mark, "  [vedlegg 4] ?gpj.exe (image/jpeg, 2.0 kB)\r\n");
	tty_wait(&t, mark, "  [vedlegg 5] .bashrc (image/jpeg, 2.0 kB)\r\n");
	tty_wait(&t, mark, "  [vedlegg 7] LLLLLLLLLL");
	tty_wait(&t, mark, "L\xe2\x80\xa6 (image/jpeg, 2.0 kB)\r\n");
	assert_null(memchr(t.buf, '\033', t.len));
	assert_false(bvt_mem_contains(t.buf, t.len, "\xc2\x9b", 2));
	assert_false(bvt_mem_contains(t.buf, t.len, "\xe2\x80\xae", 3));

	/* /save: sanitised names, the bytes, 0600, never over a file. */
	snprintf(save, sizeof(save), "%s/saved", dir);
	assert_int_equal(mkdir(save, 0700), 0);
	for (i = 3; i <= 7; i++) {
		snprintf(args, sizeof(args), "/save %zu %s\n", i, save);
		mark = t.len;
		tty_type(&t, args);
		tty_wait(&t, mark, "bvchat: saved ");
	}
	mark = t.len;
	snprintf(args, sizeof(args), "/save 3 %s\n", save);
	tty_type(&t, args);
	tty_wait(&t, mark, "bvchat: saved ");
	tty_wait(&t, mark, "_2J (2).jpg");
	snprintf(path, sizeof(path), "%s/_2J.jpg", save);
	file_is(path, small, 2000);
	snprintf(path, sizeof(path), "%s/_2J (2).jpg", save);
	file_is(path, small, 2000);
	snprintf(path, sizeof(path), "%s/gpj.exe.jpg", save);
	file_is(path, small, 2000);
	snprintf(path, sizeof(path), "%s/bashrc.jpg", save);
	file_is(path, small, 2000);
	snprintf(path, sizeof(path), "%s/_CON.jpg", save);
	file_is(path, small, 2000);
	snprintf(path, sizeof(path), "%s/%.*s.jpg", save, ATTACH_NAME_MAX - 4,
		 longname);
	file_is(path, small, 2000);
	assert_int_equal(dir_count(save), 6);
	/* An unknown number, no file. */
	mark = t.len;
	snprintf(args, sizeof(args), "/save 99 %s\n", save);
	tty_type(&t, args);
	tty_wait(&t, mark, "no [vedlegg 99]");
	assert_int_equal(dir_count(save), 6);

	/* /attach PATH -- TEXT sends from the chat. */
	sent = eli.n_rx;
	mark = t.len;
	snprintf(args, sizeof(args), "/attach %s -- med vedlegg\n", notes_p);
	tty_type(&t, args);
	tty_wait(&t, mark, "1 file sent");
	if (!run_until(&eli.n_rx, sent + 1, BVT_TIMEOUT))
		fail_msg("Elisa did not get the /attach");
	m = msg_of(&eli, eli.rx[eli.n_rx - 1].mid);
	assert_string_equal(m.text, "med vedlegg");
	assert_int_equal(m.n, 1);
	assert_string_equal(m.type[0], "text/plain");
	tty_end(&t);
	free(t.buf);

	/* bvchat save: the same without a terminal. */
	snprintf(save2, sizeof(save2), "%s/saved2", dir);
	assert_int_equal(mkdir(save2, 0700), 0);
	out = cli_want(0, &err, "--profile '%s' save --conversation %s 1 '%s'",
		       cam, conv, save2);
	snprintf(path, sizeof(path), "%s/photo.jpg\n", save2);
	assert_string_equal(out, path);
	free(out);
	free(err);
	snprintf(path, sizeof(path), "%s/photo.jpg", save2);
	file_is(path, photo, 300000);
	out = cli_want(0, &err, "--profile '%s' save --conversation %s 1 '%s'",
		       cam, conv, save2);
	snprintf(path, sizeof(path), "%s/photo (2).jpg\n", save2);
	assert_string_equal(out, path);
	free(out);
	free(err);
	snprintf(path, sizeof(path), "%s/photo.jpg", save2);
	file_is(path, photo, 300000);
	out = cli_want(0, &err, "--profile '%s' save --message %s 2 '%s'", cam,
		       mid, save2);
	snprintf(path, sizeof(path), "%s/notes.txt\n", save2);
	assert_string_equal(out, path);
	free(out);
	free(err);
	snprintf(path, sizeof(path), "%s/notes.txt", save2);
	file_is(path, notes, strlen(notes));
	free(cli_want(1, &err, "--profile '%s' save --message %s 3 '%s'", cam,
		      mid, save2));
	free(err);
	free(cli_want(2, &err, "--profile '%s' save 1", cam));
	free(err);

	/* history: numbered, sizes, what was saved. */
	out = cli_want(0, &err, "--profile '%s' history --conversation %s", cam,
		       conv);
	free(err);
	assert_non_null(strstr(out, "  [vedlegg 1] photo.jpg (image/jpeg, "
				    "300.0 kB, saved)\n"));
	assert_non_null(strstr(out, "  [vedlegg 2] notes.txt (text/plain, "));
	assert_non_null(strstr(out, "  [vedlegg 6] CON.jpg (image/jpeg, "));
	free(out);

	/* Over the relay's cap: refused by the relay, said clearly; listed
	 * in the history as not sent. */
	free(cli_want(1, &err,
		      "--profile '%s' send --conversation %s --attach '%s' x",
		      cam, conv, big_p));
	assert_non_null(strstr(err, "BV_EBLOB_SIZE"));
	assert_non_null(strstr(err, "larger than the relay takes"));
	free(err);
	out = cli_want(0, &err, "--profile '%s' history --conversation %s", cam,
		       conv);
	free(err);
	assert_non_null(strstr(out, "  [vedlegg 9] big.pdf (application/pdf, "
				    "1.2 MB, not sent)\n"));
	free(out);

	/* Tampered with in the database: BV_ETAMPERED, no file left. */
	{
		char sql[300];

		snprintf(sql, sizeof(sql),
			 "UPDATE blob_chunks SET data = set_byte(data, 100, "
			 "(get_byte(data, 100) + 1) %% 256) WHERE blob_id = "
			 "'%s' AND n = 0",
			 msg_of(&eli, mid).blob[0]);
		assert_int_equal(bvt_sql_exec(env.db, sql), 0);
	}
	free(cli_want(1, &err, "--profile '%s' save --conversation %s 1 '%s'",
		      cam, conv, save2));
	assert_non_null(strstr(err, "BV_ETAMPERED"));
	free(err);
	assert_int_equal(dir_count(save2), 3);

	free(photo);
	free(small);
	peer_close(&eli);
}

static int
setup_28(void **state)
{
	return setup_relay(state, relay_args);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_names),
		cmocka_unit_test_setup_teardown(t_cli_attach, setup_28,
						teardown),
	};

	return bvt_done(cmocka_run_group_tests_name("28-cli-attach", tests,
						    NULL, NULL));
}
