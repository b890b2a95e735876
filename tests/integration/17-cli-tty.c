/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 17-cli-tty: `bvchat chat` (BV_CLI_BIN) on a pseudo-terminal, as a person
 * uses it, against a real relay: lines typed on the terminal reach the
 * peer, the peer's lines appear on it with terminal control sequences
 * neutralised, and chat ends cleanly on Ctrl-D (EOF, exit 0, the last line
 * still sent) and on Ctrl-C (exit 130, no death by signal), leaving the
 * terminal's modes as they were. The peer is a second profile driven by
 * `bvchat send` and `bvchat listen` through pipes (12-cli tests those).
 */
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
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#include <cmocka.h>

#include "bvtest.h"

#define TTY_CAP (256 * 1024)

static struct bvt_env env;

/* `bvchat-relay --database DB admin ARGS…`: exit status; the first line of
 * its output into out (may be NULL). */
static int
admin(char *out, size_t cap, const char *const *args)
{
	return bvt_admin(env.db, out, cap, args);
}

/* A case with staff as caseworker Camilla and citizen as child Elisa, and
 * Elisa's team conversation into conv; case_id into case_out. */
static void
case_of(const char *staff, const char *citizen, char conv[37],
	char case_out[37])
{
	static unsigned n;
	char number[32];
	const char *cc[] = {"case-create",   "--tenant", env.tenant.id,
			    "--case-number", number,	 NULL};
	const char *r1[] = {"roster-add", "--case", case_out, "--account",
			    citizen,	  "--role", "child",  "--name",
			    "Elisa",	  NULL};
	const char *r2[] = {"roster-add", "--case", case_out,	  "--account",
			    staff,	  "--role", "caseworker", "--name",
			    "Camilla",	  NULL};
	const char *cv[] = {"conversation-create",
			    "--case",
			    case_out,
			    "--by",
			    citizen,
			    "--kind",
			    "team",
			    "--members",
			    citizen,
			    NULL};

	snprintf(number, sizeof(number), "2026/%04u", ++n);
	assert_int_equal(admin(case_out, 37, cc), 0);
	assert_int_equal(strlen(case_out), 36);
	assert_int_equal(admin(NULL, 0, r1), 0);
	assert_int_equal(admin(NULL, 0, r2), 0);
	assert_int_equal(admin(conv, 37, cv), 0);
	assert_int_equal(strlen(conv), 36);
}

/* One `bvchat chat` on the master side of a pseudo-terminal. */
struct tty {
	pid_t pid;
	int master;
	struct termios before;
	char *buf; /* everything the terminal showed, NUL-terminated */
	size_t len;
	int status; /* waitpid status once ended */
	int ended;
};

/* The CLI through /bin/sh, stdout into *out, stderr into err_path, with
 * in (a shell command) piped to it when not NULL. Exit status or -1. */
static int
cli_in(const char *in, char **out, const char *err_path, const char *args)
{
	char cmd[4096];
	char *argv[] = {"/bin/sh", "-c", cmd, NULL};
	size_t len;

	snprintf(cmd, sizeof(cmd), "%s%s'%s' --relay 127.0.0.1:%d %s 2>'%s'",
		 in ? in : "", in ? " | " : "", BV_CLI_BIN, env.relay.port,
		 args, err_path);
	return bvt_run(argv, 0, bvt_ms(60000), out, &len);
}

static void
enroll(const char *profile, char account[37])
{
	char args[2048], err[600], *out = NULL, *token;
	unsigned dev = 0;

	token = bvt_token(&env.tenant, NULL);
	assert_non_null(token);
	snprintf(args, sizeof(args), "--profile '%s' enroll --token '%s'",
		 profile, token);
	snprintf(err, sizeof(err), "%s.err", profile);
	assert_int_equal(cli_in(NULL, &out, err, args), 0);
	assert_int_equal(sscanf(out, "account %36s\ndevice %u", account, &dev),
			 2);
	free(out);
	free(token);
}

/* Reads what the terminal shows for at most ms (0: what is there now). */
static void
tty_pump(struct tty *t, int ms)
{
	int64_t deadline = bvt_now_ms() + ms;
	struct pollfd p;
	ssize_t n;

	do {
		p.fd = t->master;
		p.events = POLLIN;
		p.revents = 0;
		if (poll(&p, 1, ms > 0 ? 20 : 0) <= 0)
			continue;
		if (t->len + 1 >= TTY_CAP)
			fail_msg("the terminal shows more than %d bytes",
				 TTY_CAP);
		n = read(t->master, t->buf + t->len, TTY_CAP - 1 - t->len);
		if (n <= 0) {
			/* EIO: no process has the terminal open any more. */
			if (n < 0 && errno == EINTR)
				continue;
			break;
		}
		t->len += (size_t)n;
		t->buf[t->len] = '\0';
	} while (bvt_now_ms() < deadline);
}

/* Waits until the terminal showed needle after offset from; 1 when it did. */
static int
tty_wait(struct tty *t, size_t from, const char *needle, int ms)
{
	int64_t deadline = bvt_now_ms() + bvt_ms(ms);

	for (;;) {
		if (t->len >= from && strstr(t->buf + from, needle))
			return 1;
		if (bvt_now_ms() >= deadline)
			return 0;
		tty_pump(t, 50);
	}
}

/* Starts `bvchat --profile profile chat --conversation conv` on a new
 * terminal. */
static void
tty_start(struct tty *t, const char *profile, const char *conv)
{
	char relay[64];
	struct winsize ws = {.ws_row = 24, .ws_col = 80};
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
	assert_int_equal(tcgetattr(t->master, &t->before), 0);
	/* A terminal as a shell leaves it: line editing, echo, signals. */
	assert_true(t->before.c_lflag & ICANON);
	assert_true(t->before.c_lflag & ECHO);
	assert_true(t->before.c_lflag & ISIG);
}

/* Types s on the keyboard. */
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

/* Waits for the program to end (reading the terminal meanwhile); kills it
 * and fails after ms. */
static void
tty_wait_exit(struct tty *t, int ms)
{
	int64_t deadline = bvt_now_ms() + bvt_ms(ms);
	pid_t r;

	while (!t->ended) {
		r = waitpid(t->pid, &t->status, WNOHANG);
		if (r == t->pid) {
			t->ended = 1;
			break;
		}
		if (bvt_now_ms() >= deadline) {
			kill(t->pid, SIGKILL);
			waitpid(t->pid, &t->status, 0);
			t->ended = 1;
			print_message("terminal: %s\n", t->buf);
			fail_msg("bvchat chat did not end in time");
		}
		tty_pump(t, 50);
	}
	tty_pump(t, 0);
}

/* The terminal's modes are still those it had before bvchat ran. */
static void
tty_check_modes(struct tty *t)
{
	struct termios now;

	assert_int_equal(tcgetattr(t->master, &now), 0);
	assert_int_equal(now.c_lflag, t->before.c_lflag);
	assert_int_equal(now.c_iflag, t->before.c_iflag);
	assert_int_equal(now.c_oflag, t->before.c_oflag);
}

static void
tty_free(struct tty *t)
{
	if (t->pid > 0 && !t->ended) {
		kill(t->pid, SIGKILL);
		waitpid(t->pid, &t->status, 0);
	}
	if (t->master >= 0)
		close(t->master);
	free(t->buf);
}

/* Runs `listen` on profile until it printed n messages (20 s at most). */
static char *
listen_n(const char *profile, int n)
{
	char args[1024], err[600], *out = NULL;

	snprintf(args, sizeof(args),
		 "--profile '%s' listen --count %d --timeout %d", profile, n,
		 bvt_ms(20000) / 1000);
	snprintf(err, sizeof(err), "%s/listen.err", bvt_tmpdir());
	assert_int_equal(cli_in(NULL, &out, err, args), 0);
	assert_non_null(out);
	return out;
}

static void
t_tty(void **state)
{
	char cam[512], eli[512], camilla[37], elisa[37];
	char conv[37], case_id[37];
	char args[2048], err[600], want[256], *out = NULL;
	struct tty t;
	size_t mark;
	const char *p1, *p2;

	(void)state;
	snprintf(cam, sizeof(cam), "%s/camilla", bvt_tmpdir());
	snprintf(eli, sizeof(eli), "%s/elisa", bvt_tmpdir());
	enroll(cam, camilla);
	enroll(eli, elisa);
	case_of(camilla, elisa, conv, case_id);
	snprintf(err, sizeof(err), "%s/cases.err", bvt_tmpdir());
	/* Both know the case (and so each other's names) from now on. */
	snprintf(args, sizeof(args), "--profile '%s' cases", cam);
	assert_int_equal(cli_in(NULL, &out, err, args), 0);
	free(out);
	snprintf(args, sizeof(args), "--profile '%s' cases", eli);
	assert_int_equal(cli_in(NULL, &out, err, args), 0);
	free(out);
	out = NULL;

	tty_start(&t, cam, conv);
	if (!tty_wait(&t, 0, "type a line", BVT_TIMEOUT)) {
		print_message("terminal: %s\n", t.buf);
		fail_msg("bvchat chat did not connect");
	}

	/* Camilla types; Elisa gets the line. */
	tty_type(&t, "hei fra terminalen\n");
	out = listen_n(eli, 1);
	snprintf(want, sizeof(want),
		 "Camilla (caseworker): hei fra "
		 "terminalen\n");
	assert_non_null(strstr(out, want));
	free(out);

	/* Elisa answers with control sequences: clear screen, a window
	 * title, a bell, an 8-bit CSI (U+009B), a right-to-left override
	 * (U+202E) and a carriage return that would overwrite the line. */
	mark = t.len;
	snprintf(err, sizeof(err), "%s/send.err", bvt_tmpdir());
	snprintf(args, sizeof(args),
		 "--profile '%s' send --conversation %s \"$(printf "
		 "'a\\033[2J\\033]0;pwned\\007b\\302\\23331mc\\342\\200\\256d"
		 "\\rfake')\"",
		 eli, conv);
	assert_int_equal(cli_in(NULL, &out, err, args), 0);
	free(out);
	out = NULL;
	snprintf(want, sizeof(want),
		 "Elisa (child): a?[2J?]0;pwned?b?31mc?d?fake");
	if (!tty_wait(&t, mark, want, BVT_TIMEOUT)) {
		print_message("terminal: %s\n", t.buf);
		fail_msg("the answer did not appear neutralised");
	}
	/* Nothing that a terminal would act on reached it. */
	assert_null(memchr(t.buf, '\033', t.len));
	assert_null(memchr(t.buf, '\007', t.len));
	assert_false(bvt_mem_contains(t.buf, t.len, "\xc2\x9b", 2));
	assert_false(bvt_mem_contains(t.buf, t.len, "\xe2\x80\xae", 3));

	/* A last line, then Ctrl-D on an empty line: sent, exit 0. */
	tty_type(&t, "ses i morgen\n\004");
	tty_wait_exit(&t, 30000);
	if (!WIFEXITED(t.status) || WEXITSTATUS(t.status) != 0) {
		print_message("terminal: %s\n", t.buf);
		fail_msg("Ctrl-D: status %#x, not exit 0", t.status);
	}
	tty_check_modes(&t);
	tty_free(&t);
	out = listen_n(eli, 1);
	snprintf(want, sizeof(want), "Camilla (caseworker): ses i morgen\n");
	assert_non_null(strstr(out, want));
	free(out);

	/* Ctrl-C in the middle of a line: the partial line is not sent, the
	 * program says so and exits 130 instead of dying by SIGINT. */
	tty_start(&t, cam, conv);
	assert_true(tty_wait(&t, 0, "type a line", BVT_TIMEOUT));
	tty_type(&t, "halv linj");
	tty_pump(&t, 200);
	tty_type(&t, "\003");
	tty_wait_exit(&t, 30000);
	if (WIFSIGNALED(t.status))
		fail_msg("Ctrl-C killed bvchat chat (signal %d) instead of "
			 "ending it",
			 WTERMSIG(t.status));
	assert_true(WIFEXITED(t.status));
	assert_int_equal(WEXITSTATUS(t.status), 130);
	assert_non_null(strstr(t.buf, "interrupted"));
	tty_check_modes(&t);
	tty_free(&t);

	/* The profile still works after that, and nothing half-typed was
	 * sent: Elisa's next message is Camilla's next line. */
	snprintf(args, sizeof(args), "--profile '%s' chat --conversation %s",
		 cam, conv);
	assert_int_equal(cli_in("printf 'etter avbruddet\\n'", &out, err, args),
			 0);
	free(out);
	out = listen_n(eli, 1);
	snprintf(want, sizeof(want),
		 "Camilla (caseworker): etter "
		 "avbruddet\n");
	p1 = strstr(out, want);
	p2 = strstr(out, "halv");
	assert_non_null(p1);
	assert_null(p2);
	free(out);
}

static int
setup(void **state)
{
	(void)state;
	if (bvt_pg_start() < 0)
		return -1;
	return bvt_env_init(&env, NULL);
}

static int
teardown(void **state)
{
	(void)state;
	bvt_env_cleanup(&env);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_tty),
	};

	return bvt_done(cmocka_run_group_tests_name("17-cli-tty", tests, setup,
						    teardown));
}
