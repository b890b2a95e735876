/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 12-cli: the `bvchat` command-line client (client-lib/tools/bvchat.c,
 * BV_CLI_BIN) against a real relay: two profiles enroll and are put on a
 * case (`bvchat-relay admin`); `cases` shows it with roles and the team
 * conversation; one sends in it, `listen` prints the line with the
 * sender's name from the case; a send to an unknown conversation fails
 * with a clear message and a non-zero exit; `conversation-create` gives
 * the citizen's team conversation; `history`, `conversations` and `safety`
 * read the profile; after a reinstall a send is held until `accept`, which
 * prints the new safety number and lets it go out; `enroll --invite`
 * redeems an operator's invite code and enrolls with the ticket, once.
 * Every run is bounded by bvt_run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "bvtest.h"

static struct bvt_env env;
static char keyfile[512]; /* the relay's invite_key_file */

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

/* Runs the CLI through /bin/sh with stderr into err_path, stdout into
 * *out and, when in is not NULL, the output of the shell command in on
 * its standard input. Returns the exit status (or -1). */
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

static int
cli(char **out, const char *err_path, const char *args)
{
	return cli_in(NULL, out, err_path, args);
}

/* Enrolls profile as a new account, or (replaces) a reinstall of device 1
 * of account. */
static void
enroll_as(const char *profile, char account[37], int replaces)
{
	char args[2048], err[512], *out = NULL, *token;
	unsigned dev = 0;
	struct stat st;

	token = bvt_token(&env.tenant, replaces ? account : NULL);
	assert_non_null(token);
	snprintf(args, sizeof(args), "--profile '%s' enroll --token '%s'%s",
		 profile, token, replaces ? " --replaces 1" : "");
	snprintf(err, sizeof(err), "%s.err", profile);
	assert_int_equal(cli(&out, err, args), 0);
	assert_int_equal(sscanf(out, "account %36s\ndevice %u", account, &dev),
			 2);
	assert_int_equal(strlen(account), 36);
	assert_int_equal(dev, 1);
	free(out);
	free(token);
	snprintf(args, sizeof(args), "%s/store.key", profile);
	assert_int_equal(stat(args, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, 32);
}

static void
enroll(const char *profile, char account[37])
{
	enroll_as(profile, account, 0);
}

/* Runs the CLI and returns its standard output (0 exit required). */
static char *
cli_ok(const char *args)
{
	char err[512], *out = NULL;

	snprintf(err, sizeof(err), "%s/ok.err", bvt_tmpdir());
	if (cli(&out, err, args) != 0) {
		char *msg = bvt_file_read(err, NULL);

		fail_msg("bvchat %s failed: %s", args, msg ? msg : "?");
	}
	assert_non_null(out);
	return out;
}

/* History, conversations, safety numbers, and a reinstall whose new key
 * is accepted with `bvchat accept`: the held message then goes out. */
static void
t_cli_history_keys(void **state)
{
	char c1[37], case_id[37];
	char a[512], b[512], b2[512], alice[37], bob[37], args[2048];
	char err[512], *out, *sn_a, *sn_b;
	size_t len;

	(void)state;
	snprintf(a, sizeof(a), "%s/hk-camilla", bvt_tmpdir());
	snprintf(b, sizeof(b), "%s/hk-elisa", bvt_tmpdir());
	snprintf(b2, sizeof(b2), "%s/hk-elisa-new", bvt_tmpdir());
	enroll(a, alice);
	enroll(b, bob);
	case_of(alice, bob, c1, case_id);
	snprintf(args, sizeof(args), "--profile '%s' cases", b);
	free(cli_ok(args));

	snprintf(args, sizeof(args),
		 "--profile '%s' send --conversation %s 'Hei!'", a, c1);
	free(cli_ok(args));
	snprintf(args, sizeof(args),
		 "--profile '%s' listen --count 1 --timeout 20", b);
	free(cli_ok(args));

	/* The history: sent on one side, received on the other. */
	snprintf(args, sizeof(args), "--profile '%s' history --conversation %s",
		 b, c1);
	out = cli_ok(args);
	print_message("history: %s", out);
	assert_non_null(strstr(out, "Camilla (caseworker) [received]: Hei!\n"));
	free(out);
	snprintf(args, sizeof(args), "--profile '%s' history --conversation %s",
		 a, c1);
	out = cli_ok(args);
	/* delivered once Camilla's client has been online again */
	assert_true(strstr(out, "Camilla (caseworker) [sent]: Hei!\n") ||
		    strstr(out, "Camilla (caseworker) [delivered]: Hei!\n"));
	free(out);
	snprintf(args, sizeof(args), "--profile '%s' conversations", a);
	out = cli_ok(args);
	snprintf(args, sizeof(args), "%s 1 message, last ", c1);
	assert_non_null(strstr(out, args));
	free(out);

	/* whoami: the profile's own account, without the network. */
	snprintf(args, sizeof(args), "--profile '%s' whoami", a);
	out = cli_ok(args);
	snprintf(err, sizeof(err), "account %s\ndevice 1\n", alice);
	assert_string_equal(out, err);
	free(out);

	/* Both ends show the same safety number, in 12 groups of five. */
	snprintf(args, sizeof(args), "--profile '%s' safety --peer %s", a, bob);
	sn_a = cli_ok(args);
	snprintf(args, sizeof(args), "--profile '%s' safety --peer %s", b,
		 alice);
	sn_b = cli_ok(args);
	assert_string_equal(sn_a, sn_b);
	assert_int_equal(strlen(sn_a), 72);
	free(sn_b);

	/* Elisa reinstalls. Camilla's next message is held, not sent. */
	enroll_as(b2, bob, 1);
	snprintf(err, sizeof(err), "%s/held.err", bvt_tmpdir());
	snprintf(args, sizeof(args),
		 "--profile '%s' send --conversation %s 'Igjen?'", a, c1);
	out = NULL;
	assert_int_equal(cli(&out, err, args), 1);
	free(out);
	out = bvt_file_read(err, &len);
	assert_non_null(out);
	print_message("held: %s", out);
	assert_non_null(strstr(out, "identity key of"));
	assert_non_null(strstr(out, "held until the changed key is accepted"));
	free(out);

	/* She accepts: a new safety number, the held message goes out. */
	snprintf(args, sizeof(args),
		 "--profile '%s' accept --peer %s --device 1", a, bob);
	out = cli_ok(args);
	assert_int_equal(strlen(out), 72);
	assert_string_not_equal(out, sn_a);
	free(sn_a);
	sn_a = out;
	snprintf(args, sizeof(args),
		 "--profile '%s' listen --count 1 --timeout 20", b2);
	out = cli_ok(args);
	assert_non_null(strstr(out, ": Igjen?\n"));
	free(out);
	snprintf(args, sizeof(args), "--profile '%s' safety --peer %s", b2,
		 alice);
	sn_b = cli_ok(args);
	assert_string_equal(sn_a, sn_b);
	free(sn_a);
	free(sn_b);
}

static void
t_cli(void **state)
{
	char a[512], b[512], alice[37], bob[37], args[2048], err[512];
	char conv[37], case_id[37];
	char *out = NULL, *msg;
	size_t len;

	(void)state;
	snprintf(a, sizeof(a), "%s/camilla", bvt_tmpdir());
	snprintf(b, sizeof(b), "%s/elisa", bvt_tmpdir());
	enroll(a, alice);
	enroll(b, bob);
	assert_string_not_equal(alice, bob);
	case_of(alice, bob, conv, case_id);

	/* The case as each of them sees it: roles, names, the case file,
	 * the team conversation and who is in it. */
	snprintf(args, sizeof(args), "--profile '%s' cases", a);
	out = cli_ok(args);
	print_message("cases: %s", out);
	snprintf(err, sizeof(err), "(%s): you are caseworker\n", case_id);
	assert_non_null(strstr(out, err));
	snprintf(err, sizeof(err), "    Elisa (child) %s\n", bob);
	assert_non_null(strstr(out, err));
	snprintf(err, sizeof(err), "    conversation %s team: ", conv);
	assert_non_null(strstr(out, err));
	free(out);
	snprintf(args, sizeof(args), "--profile '%s' cases", b);
	out = cli_ok(args);
	assert_non_null(strstr(out, "you are child\n"));
	snprintf(err, sizeof(err), "    Camilla (caseworker) %s\n", alice);
	assert_non_null(strstr(out, err));
	free(out);
	out = NULL;

	/* Elisa asks for her team conversation: she already has it. */
	snprintf(args, sizeof(args),
		 "--profile '%s' conversation-create --case %s", b, case_id);
	out = cli_ok(args);
	snprintf(err, sizeof(err), "%s\n", conv);
	assert_string_equal(out, err);
	free(out);
	out = NULL;
	/* Not a case of hers: the one answer for everything not allowed. */
	snprintf(err, sizeof(err), "%s/create.err", bvt_tmpdir());
	snprintf(args, sizeof(args),
		 "--profile '%s' conversation-create --case "
		 "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9",
		 b);
	assert_int_equal(cli(&out, err, args), 1);
	free(out);
	out = NULL;
	msg = bvt_file_read(err, &len);
	assert_non_null(msg);
	assert_non_null(strstr(msg, "not found or not allowed"));
	free(msg);

	/* Enrolling the same profile again is refused. */
	snprintf(err, sizeof(err), "%s/again.err", bvt_tmpdir());
	snprintf(args, sizeof(args), "--profile '%s' enroll --token x", a);
	assert_int_not_equal(cli(&out, err, args), 0);
	free(out);
	out = NULL;

	/* Camilla sends; the id comes back once the relay stored it. */
	snprintf(err, sizeof(err), "%s/send.err", bvt_tmpdir());
	snprintf(args, sizeof(args),
		 "--profile '%s' send --conversation %s 'hei Elisa, kl 14 i "
		 "morgen?'",
		 a, conv);
	assert_int_equal(cli(&out, err, args), 0);
	assert_non_null(out);
	assert_int_equal(strlen(out), 37); /* the uuid and a newline */
	free(out);
	out = NULL;

	/* A control character in the text is not passed to the terminal. */
	snprintf(args, sizeof(args),
		 "--profile '%s' send --conversation %s \"$(printf "
		 "'x\\033[2Jy')\"",
		 a, conv);
	assert_int_equal(cli(&out, err, args), 0);
	free(out);
	out = NULL;

	/* Elisa listens and sees both lines. */
	snprintf(err, sizeof(err), "%s/listen.err", bvt_tmpdir());
	snprintf(args, sizeof(args),
		 "--profile '%s' listen --count 2 --timeout 20", b);
	assert_int_equal(cli(&out, err, args), 0);
	assert_non_null(out);
	print_message("listen: %s", out);
	assert_non_null(strstr(
		out, "Camilla (caseworker): hei Elisa, kl 14 i morgen?\n"));
	assert_non_null(strstr(out, "Camilla (caseworker): x?[2Jy\n"));
	assert_null(strchr(out, '\033'));
	free(out);
	out = NULL;

	/* Nothing more: listen times out, non-zero with --count. */
	snprintf(args, sizeof(args),
		 "--profile '%s' listen --count 1 --timeout 2", b);
	assert_int_not_equal(cli(&out, err, args), 0);
	free(out);
	out = NULL;

	/* An unknown conversation: non-zero, a clear reason, no id. */
	snprintf(err, sizeof(err), "%s/unknown.err", bvt_tmpdir());
	snprintf(args, sizeof(args),
		 "--profile '%s' send --conversation "
		 "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9 hallo",
		 a);
	assert_int_not_equal(cli(&out, err, args), 0);
	assert_true(out == NULL || out[0] == '\0');
	free(out);
	out = NULL;
	msg = bvt_file_read(err, &len);
	assert_non_null(msg);
	print_message("unknown: %s", msg);
	assert_non_null(strstr(msg, "send failed: no such conversation"));
	free(msg);

	/* Elisa answers with chat, reading lines from a pipe, in her only
	 * conversation. */
	snprintf(err, sizeof(err), "%s/chat.err", bvt_tmpdir());
	snprintf(args, sizeof(args), "--profile '%s' chat", b);
	assert_int_equal(cli_in("printf 'ja\\nses da\\n'", &out, err, args), 0);
	free(out);
	out = NULL;
	snprintf(args, sizeof(args),
		 "--profile '%s' listen --count 2 --timeout 20", a);
	assert_int_equal(cli(&out, err, args), 0);
	print_message("chat: %s", out);
	{
		/* Lines arrive in the order they were typed. */
		char first[128];
		const char *p1, *p2;

		snprintf(first, sizeof(first), "Elisa (child): ja\n");
		snprintf(args, sizeof(args), "Elisa (child): ses da\n");
		p1 = strstr(out, first);
		p2 = strstr(out, args);
		assert_non_null(p1);
		assert_non_null(p2);
		assert_true(p1 < p2);
	}
	free(out);
	out = NULL;

	/* An unenrolled profile and a bad argument: clear refusals. */
	snprintf(args, sizeof(args), "--profile '%s/none' listen",
		 bvt_tmpdir());
	assert_int_equal(cli(&out, err, args), 1);
	free(out);
	out = NULL;
	snprintf(args, sizeof(args), "--profile '%s' send --to %s hei", a, bob);
	assert_int_equal(cli(&out, err, args), 2);
	free(out);
	out = NULL;
	snprintf(args, sizeof(args), "--profile '%s' send --conversation %s", a,
		 conv);
	assert_int_equal(cli(&out, err, args), 2);
	free(out);
	out = NULL;
	/* Camilla has one conversation here too, but send needs TEXT. */
	snprintf(args, sizeof(args), "--profile '%s' conversation-create", a);
	assert_int_equal(cli(&out, err, args), 2);
	free(out);
}

/* enroll --invite: the code from `admin invite`, as the person types it. */
static void
t_cli_invite(void **state)
{
	char args[1024], err[512], code[32], account[64], *out = NULL, *msg;
	const char *acc = "5a1e0000-0000-4000-8000-00000000c0de";
	const char *inv[] = {"--invite_key_file",
			     keyfile,
			     "--database",
			     env.db,
			     "admin",
			     "invite",
			     "--account",
			     acc,
			     NULL};
	const char *params[2] = {acc, env.tenant.id};
	size_t i;

	(void)state;
	assert_int_equal(bvt_sql_int(env.db,
				     "WITH i AS (INSERT INTO accounts (id, "
				     "tenant_id) VALUES ($1::uuid, $2::uuid) "
				     "RETURNING 1) SELECT count(*) FROM i",
				     2, params),
			 1);
	assert_int_equal(bvt_relay_cmd(&out, inv), 0);
	assert_int_equal(sscanf(out, "%31s", code), 1);
	free(out);
	out = NULL;
	for (i = 0; code[i]; i++)
		code[i] = code[i] == '-' ? ' ' : (char)(code[i] | 0x20);
	snprintf(err, sizeof(err), "%s/invite.err", bvt_tmpdir());
	snprintf(args, sizeof(args), "--profile '%s/inv' enroll --invite '%s'",
		 bvt_tmpdir(), code);
	assert_int_equal(cli(&out, err, args), 0);
	assert_int_equal(sscanf(out, "account %36s", account), 1);
	assert_string_equal(account, acc);
	free(out);
	out = NULL;
	/* The same profile again: refused here, the relay never asked. */
	assert_int_equal(cli(&out, err, args), 1);
	free(out);
	out = NULL;
	msg = bvt_file_read(err, NULL);
	assert_non_null(strstr(msg, "already enrolled"));
	free(msg);
	assert_int_equal(bvt_sql_int(env.db,
				     "SELECT attempts FROM invites WHERE "
				     "account_id = $1::uuid",
				     1, params),
			 1);
	/* Another profile with the used code. */
	snprintf(args, sizeof(args), "--profile '%s/inv2' enroll --invite '%s'",
		 bvt_tmpdir(), code);
	assert_int_equal(cli(&out, err, args), 1);
	free(out);
	out = NULL;
	msg = bvt_file_read(err, NULL);
	assert_non_null(
		strstr(msg, "bvchat: enroll: invite code is not valid"));
	free(msg);
	/* Not both, not neither. */
	snprintf(args, sizeof(args),
		 "--profile '%s/inv3' enroll --invite X --token Y",
		 bvt_tmpdir());
	assert_int_equal(cli(&out, err, args), 2);
	free(out);
}

static int
setup(void **state)
{
	const char *args[] = {"--invite_key_file", keyfile, NULL};
	FILE *f;

	(void)state;
	if (bvt_pg_start() < 0)
		return -1;
	snprintf(keyfile, sizeof(keyfile), "%s/invite.key", bvt_tmpdir());
	f = fopen(keyfile, "w");
	if (!f)
		return -1;
	fputs("c0ffee0000000000000000000000000000000000000000000000000000"
	      "c0ffee\n",
	      f);
	fclose(f);
	chmod(keyfile, 0600);
	return bvt_env_init(&env, args);
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
		cmocka_unit_test(t_cli),
		cmocka_unit_test(t_cli_history_keys),
		cmocka_unit_test(t_cli_invite),
	};

	return bvt_done(
		cmocka_run_group_tests_name("12-cli", tests, setup, teardown));
}
