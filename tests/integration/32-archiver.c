/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * 32-archiver: the case file end to end (issue 5). A real relay and
 * PostgreSQL; a real local FIKS IO (RabbitMQ and the development server);
 * bvchat-archiver as the tenant's archive device; bvfiks-archive-peer as the
 * municipality's archive. Elisa (child) and Camilla (caseworker) chat
 * through libbvchat; the test then reads what the archive journaled (its
 * store and the transcripts in it) and what the participants were told.
 *
 * - a conversation from first message to kvittering, and the journaled
 *   marks in both participants' histories;
 * - the archiver killed (SIGKILL) while a batch is on its way and messages
 *   keep coming: after a restart every message is in exactly one
 *   journalpost; killed after the kvittering together with a stopped
 *   relay that never read the journaled receipts: after both restart the
 *   participants are told; a participant who reinstalls is journaled
 *   and told as before (the archive accepts the new key by itself);
 * - each fault of the archive: serverfeil and silence are retried with the
 *   same key, duplicate answers change nothing, a message never acked is
 *   dead-lettered by FIKS IO and retried, ugyldigforespoersel stops the
 *   conversation visibly until an operator retries;
 * - e-post: subject, thread and answer time in the transcript, the
 *   thread's subject in the journalpost's tittel;
 * - the relay refuses a send that leaves out the running archiver's
 *   device (a raw client), and journals it once the device is in;
 * - attachments: a photo and a PDF as their own documents with exactly
 *   their bytes and formats, the relay's blobs marked journaled only after
 *   the kvittering, the archiver killed between fetch and kvittering
 *   doubling and losing nothing; a tampered file journaled as a line that
 *   says so, a failure in status until an operator acknowledges it, the
 *   conversation going on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "bvtest_fiks.h"
#include "client_peer.h"

enum { ELISA, CAMILLA, N };
static struct peer p[N];
static const char *const names[N] = {"elisa", "camilla"};

#define MID(x) char x[BV_CLIENT_MESSAGE_ID_LEN + 1]

/* The FIKS IO of one test: account 0 the archiver's, 1 the archive's. */
static struct bvt_fiks fk;
static char profile[300], peer_db[300], peer_ctl[300], arch_log[300],
	peer_log[300];
static char archive_account[BV_CLIENT_ACCOUNT_LEN + 1];
static pid_t arch_pid, peer_pid;

/* ------------------------------------------------------------ processes */

static pid_t
spawn(char *const argv[], const char *log)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

/* Sends sig and waits (bounded) for pid; SIGKILL when it lingers. */
static int
stop(pid_t *pid, int sig)
{
	int64_t deadline = bvt_now_ms() + bvt_ms(15000);
	int status = -1;

	if (*pid <= 0)
		return 0;
	kill(*pid, sig);
	while (waitpid(*pid, &status, WNOHANG) == 0) {
		if (bvt_now_ms() > deadline) {
			kill(*pid, SIGKILL);
			waitpid(*pid, &status, 0);
			break;
		}
		run_for(20);
	}
	*pid = 0;
	return status;
}

static void
print_log(const char *what, const char *path)
{
	char *s = bvt_file_read(path, NULL);

	if (s) {
		size_t len = strlen(s);

		fprintf(stderr, "---- %s (last 4000 bytes)\n%s\n", what,
			len > 4000 ? s + len - 4000 : s);
		free(s);
	}
}

static void
start_archiver(void)
{
	char relay[32];
	char *const argv[] = {BV_ARCHIVER_BIN,
			      "--profile",
			      profile,
			      "--relay",
			      relay,
			      "--fiks",
			      fk.acct[0].config,
			      "--archive-account",
			      fk.acct[1].konto,
			      "--archive-cert",
			      fk.acct[1].cert,
			      "--quiet-seconds",
			      "1",
			      "--by-day",
			      "0",
			      "--retry-seconds",
			      "1",
			      "--reply-timeout",
			      "5",
			      "--max-attempts",
			      "6",
			      "run",
			      NULL};

	snprintf(relay, sizeof(relay), "127.0.0.1:%d", env.relay.port);
	arch_pid = spawn(argv, arch_log);
}

static void
start_peer(void)
{
	char *const argv[] = {BV_ARCHIVE_PEER_BIN,
			      "--config",
			      fk.acct[1].config,
			      "--db",
			      peer_db,
			      "--sender-cert",
			      fk.acct[0].cert,
			      "--control",
			      peer_ctl,
			      "--log-level",
			      "info",
			      NULL};

	peer_pid = spawn(argv, peer_log);
}

/* Tells the archive peer how to misbehave next ("none" to stop). */
static void
fault(const char *mode)
{
	FILE *f = fopen(peer_ctl, "w");

	assert_non_null(f);
	fprintf(f, "%s\n", mode);
	assert_int_equal(fclose(f), 0);
	/* The peer reads the file before every message; no SIGUSR1, which
	 * would end a peer that has not installed its handler yet. */
}

/* ---------------------------------------------------- what was journaled */

/* The peer's journalposts (list --json), or NULL. */
static json_t *
journalposts(void)
{
	char *const argv[] = {
		BV_ARCHIVE_PEER_BIN, "--db", peer_db, "list", "--json", NULL};
	char *out = NULL;
	size_t len = 0;
	json_t *j = NULL;

	if (bvt_run(argv, 0, bvt_ms(20000), &out, &len) == 0)
		j = json_loadb(out, len, 0, NULL);
	free(out);
	return j;
}

/* How many stored transcripts name message mid (each names a message once). */
static int
times_journaled(json_t *jps, const char *mid)
{
	char needle[80], path[600];
	size_t i, k;
	json_t *jp, *d;
	int n = 0;

	snprintf(needle, sizeof(needle), "(melding %s)", mid);
	json_array_foreach(jps, i, jp)
	{
		json_array_foreach(json_object_get(jp, "dokumenter"), k, d)
		{
			const char *sha =
				json_string_value(json_object_get(d, "sha256"));
			char *text;

			if (!sha || strcmp(json_string_value(json_object_get(
						   d, "filnavn")),
					   "samtale.txt"))
				continue;
			snprintf(path, sizeof(path), "%s.d/%s", peer_db, sha);
			text = bvt_file_read(path, NULL);
			assert_non_null(text);
			n += strstr(text, needle) != NULL;
			free(text);
		}
	}
	return n;
}

/* The first stored transcript holding needle (free()), or NULL; its
 * journalpost's tittel in *tittel (borrowed from jps); in *n how many
 * hold it. */
static char *
transcripts_with(json_t *jps, const char *needle, const char **tittel,
		 size_t *n)
{
	char path[600], *first = NULL;
	size_t i, k;
	json_t *jp, *d;

	*n = 0;
	json_array_foreach(jps, i, jp)
	{
		json_array_foreach(json_object_get(jp, "dokumenter"), k, d)
		{
			const char *sha =
				json_string_value(json_object_get(d, "sha256"));
			char *doc;

			if (!sha || strcmp(json_string_value(json_object_get(
						   d, "filnavn")),
					   "samtale.txt"))
				continue;
			snprintf(path, sizeof(path), "%s.d/%s", peer_db, sha);
			doc = bvt_file_read(path, NULL);
			assert_non_null(doc);
			if (strstr(doc, needle) && (*n)++ == 0) {
				*tittel = json_string_value(
					json_object_get(jp, "tittel"));
				first = doc;
				continue;
			}
			free(doc);
		}
	}
	return first;
}

/* The stored transcript that names mid (free()), and its journalpost's
 * tittel in *tittel (borrowed from jps); NULL when none. */
static char *
transcript_of(json_t *jps, const char *mid, const char **tittel)
{
	char needle[80];
	size_t n;

	snprintf(needle, sizeof(needle), "(melding %s)", mid);
	return transcripts_with(jps, needle, tittel, &n);
}

static int
wait_journaled(const char *const *mids, size_t n, int ms)
{
	int64_t deadline = bvt_now_ms() + bvt_ms(ms);
	json_t *jps;
	size_t i;

	for (;;) {
		jps = journalposts();
		for (i = 0; jps && i < n; i++)
			if (times_journaled(jps, mids[i]) < 1)
				break;
		json_decref(jps);
		if (jps && i == n)
			return 1;
		if (bvt_now_ms() > deadline)
			return 0;
		run_for(300);
	}
}

/* The journal reference of mid in who's history ("" when none). */
struct jfind {
	const char *mid;
	char journal[80];
};

static int
jfind_cb(void *arg, const struct bv_client_message *m)
{
	struct jfind *f = arg;

	if (!strcmp(m->message_id, f->mid) && m->journal)
		snprintf(f->journal, sizeof(f->journal), "%s", m->journal);
	return 0;
}

static int
wait_marked(int who, const char *mid, char *journal, size_t cap)
{
	int64_t deadline = bvt_now_ms() + bvt_ms(BVT_TIMEOUT);
	struct jfind f;

	do {
		memset(&f, 0, sizeof(f));
		f.mid = mid;
		assert_int_equal(
			bv_client_history(p[who].c, conv, 0, jfind_cb, &f), 0);
		if (f.journal[0]) {
			snprintf(journal, cap, "%s", f.journal);
			return 1;
		}
		run_for(100);
	} while (bvt_now_ms() < deadline);
	return 0;
}

/* bvchat-archiver status: its exit code, its output in out. */
static int
status(char **out)
{
	char *const argv[] = {BV_ARCHIVER_BIN, "--profile", profile, "status",
			      NULL};
	size_t len;

	*out = NULL;
	return bvt_run(argv, 0, bvt_ms(20000), out, &len);
}

/* Waits until status prints needle; 1 when it did. */
static int
wait_status(const char *needle, int ms)
{
	int64_t deadline = bvt_now_ms() + bvt_ms(ms);
	char *out;
	int found;

	do {
		status(&out);
		found = out && strstr(out, needle);
		free(out);
		if (found)
			return 1;
		run_for(200);
	} while (bvt_now_ms() < deadline);
	return 0;
}

/* Waits until every batch is journaled (to_announced 0) or announced
 * (1): none ready, sent or received (or journaled); 1 when so. */
static int
wait_settled(int to_announced, int ms)
{
	static const char *const busy[] = {" ready ", " sent ", " received ",
					   " journaled "};
	size_t n = to_announced ? 4 : 3;
	int64_t deadline = bvt_now_ms() + bvt_ms(ms);
	char *out;
	size_t i;
	int settled;

	do {
		status(&out);
		for (i = 0; out && i < n; i++)
			if (strstr(out, busy[i]))
				break;
		settled = out && i == n;
		free(out);
		if (settled)
			return 1;
		run_for(200);
	} while (bvt_now_ms() < deadline);
	return 0;
}

/* ---------------------------------------------------------------- setup */

static int
setup_all(void **state)
{
	char relay[32], *token, *out = NULL;
	const char *archive_set[] = {"archive-set",   "--tenant",
				     env.tenant.id,   "--account",
				     archive_account, NULL};
	size_t len;
	int i;

	if (setup(state) != 0)
		return -1;
	if (bvt_fiks_start(&fk, 2) != 0)
		return -1;
	snprintf(profile, sizeof(profile), "%s/arkiv", dir);
	snprintf(peer_db, sizeof(peer_db), "%s/peer.db", dir);
	snprintf(peer_ctl, sizeof(peer_ctl), "%s/peer.fault", dir);
	snprintf(arch_log, sizeof(arch_log), "%s/archiver.log", dir);
	snprintf(peer_log, sizeof(peer_log), "%s/peer.log", dir);

	/* The archive device: a bvchat profile enrolled like any other,
	 * made the tenant's archive. */
	token = bvt_token(&env.tenant, NULL);
	snprintf(relay, sizeof(relay), "127.0.0.1:%d", env.relay.port);
	{
		char *const argv[] = {BV_CLI_BIN, "--profile", profile,
				      "--relay",  relay,       "enroll",
				      "--token",  token,       NULL};

		i = bvt_run(argv, 0, bvt_ms(30000), &out, &len);
	}
	free(token);
	if (i != 0 || !out || sscanf(out, "account %36s", archive_account) != 1)
		return -1;
	free(out);
	assert_int_equal(admin(NULL, 0, archive_set), 0);

	memset(p, 0, sizeof(p));
	for (i = 0; i < N; i++)
		enroll(&p[i], names[i], NULL, 0);
	case_new();
	case_add(&p[ELISA], "child", "Elisa (17)");
	case_add(&p[CAMILLA], "caseworker", "Camilla Berg");
	case_team(&p[ELISA]);
	for (i = 0; i < N; i++)
		peer_cases(&p[i]);
	fault("none");
	start_peer();
	start_archiver();
	return 0;
}

static int
teardown_all(void **state)
{
	int i;

	stop(&arch_pid, SIGTERM);
	stop(&peer_pid, SIGTERM);
	for (i = 0; i < N; i++)
		if (p[i].c)
			peer_close(&p[i]);
	bvt_fiks_stop(&fk);
	return teardown(state);
}

/* On failure: what the archiver and the peer said. */
static void
dump_logs(void)
{
	print_log("bvchat-archiver", arch_log);
	print_log("bvfiks-archive-peer", peer_log);
	bvt_fiks_print_logs(&fk);
}

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			dump_logs();                                           \
			fail_msg(__VA_ARGS__);                                 \
		}                                                              \
	} while (0)

/* ---------------------------------------------------------------- tests */

/* Sends an e-post; its id in mid. */
static void
mail(struct peer *from, const char *subject, const char *text,
     const char *thread, int64_t answer_by, char *mid)
{
	unsigned n = from->sent;

	assert_int_equal(bv_client_send_email(from->c, conv, subject, text,
					      thread, answer_by, mid),
			 0);
	if (!run_until(&from->sent, n + 1, BVT_TIMEOUT))
		fail_msg("%s: no outcome for %s", from->name, mid);
	assert_int_equal(from->sent_rc, 0);
}

/* An e-post thread across two batches: subject, thread and answer time
 * in the transcript, the thread's subject in the tittel. */
static void
email_thread(void)
{
	const char *subject = "Søknad om samvær i jula";
	const char *ids[1], *tittel = NULL;
	MID(e1);
	MID(e2);
	json_t *jps;
	char *text, want[300];

	/* Elisa starts a thread; her client sets the answer time. */
	mail(&p[ELISA], subject, "Kan jeg være hos mamma på julaften?", NULL, 0,
	     e1);
	ids[0] = e1;
	CHECK(wait_journaled(ids, 1, 60000), "the e-post was not journaled");
	/* Camilla answers in a later batch: the thread's subject comes from
	 * the history. */
	mail(&p[CAMILLA], "Re: samvær", "Ja, fra klokka 12.", e1, -1, e2);
	ids[0] = e2;
	CHECK(wait_journaled(ids, 1, 60000), "the reply was not journaled");

	jps = journalposts();
	assert_non_null(jps);
	text = transcript_of(jps, e1, &tittel);
	assert_non_null(text);
	snprintf(want, sizeof(want),
		 "    Henvendelse: %s\n    Svarfrist: ", subject);
	CHECK(strstr(text, want), "no subject and answer time in:\n%s", text);
	assert_non_null(
		strstr(text, "    Kan jeg være hos mamma på julaften?"));
	assert_null(strstr(text, "Svar på"));
	/* A batch that is one e-post thread is titled by its subject. */
	assert_non_null(tittel);
	assert_non_null(strstr(tittel, "E-post i sak 2026/"));
	CHECK(strstr(tittel, subject), "tittel %s", tittel);
	free(text);

	text = transcript_of(jps, e2, &tittel);
	assert_non_null(text);
	snprintf(want, sizeof(want),
		 "    Henvendelse: Re: samvær\n    Svar på: %s\n    Ja, fra "
		 "klokka 12.\n",
		 subject);
	CHECK(strstr(text, want), "no thread in:\n%s", text);
	assert_null(strstr(text, "Svarfrist"));
	CHECK(strstr(tittel, subject), "tittel %s", tittel);
	free(text);
	json_decref(jps);
}

static void
t_end_to_end(void **state)
{
	const char *texts[] = {"Hei Camilla, kan vi snakkes?",
			       "Ja, i morgen klokka ti?", "Fint, ses da",
			       "Bra. Jeg sender et brev også."};
	char mids[4][BV_CLIENT_MESSAGE_ID_LEN + 1], j0[80], j1[80];
	const char *ids[4];
	json_t *jps;
	char *out;
	int i;

	(void)state;
	for (i = 0; i < 4; i++) {
		say(&p[i % 2 ? CAMILLA : ELISA], texts[i], mids[i]);
		ids[i] = mids[i];
	}
	CHECK(wait_journaled(ids, 4, 60000),
	      "the conversation did not reach the archive");
	jps = journalposts();
	assert_non_null(jps);
	for (i = 0; i < 4; i++)
		assert_int_equal(times_journaled(jps, mids[i]), 1);
	/* In the case's saksmappe, with its own key, screened. */
	{
		json_t *jp = json_array_get(jps, 0);

		assert_string_equal(
			json_string_value(json_object_get(jp, "mappe_noekkel")),
			case_id);
		assert_string_equal(json_string_value(json_object_get(
					    jp, "journalposttype")),
				    "X");
		assert_true(json_is_true(json_object_get(jp, "skjermet")));
	}
	json_decref(jps);

	/* Both participants see it in their history, with the reference. */
	for (i = 0; i < 4; i++) {
		CHECK(wait_marked(ELISA, mids[i], j0, sizeof(j0)),
		      "elisa: %s not marked journaled", mids[i]);
		CHECK(wait_marked(CAMILLA, mids[i], j1, sizeof(j1)),
		      "camilla: %s not marked journaled", mids[i]);
		assert_string_equal(j0, j1);
		assert_non_null(strchr(j0, '/'));
	}
	CHECK(wait_status("announced", 20000), "no batch announced");
	assert_int_equal(status(&out), 0);
	assert_null(strstr(out, "failed"));
	free(out);

	email_thread();

	/* Connecting to FIKS IO got the time it needs: no failed attempt. */
	{
		char *log = bvt_file_read(arch_log, NULL);

		CHECK(log && strstr(log, "FIKS IO: receiving") &&
			      !strstr(log, "err archiver: FIKS IO"),
		      "the archiver's connection to FIKS IO failed");
		free(log);
	}

	/* SIGTERM ends it cleanly. */
	i = stop(&arch_pid, SIGTERM);
	CHECK(WIFEXITED(i) && WEXITSTATUS(i) == 0,
	      "bvchat-archiver did not exit 0 on SIGTERM (status %d)", i);
}

/*
 * The archiver dies after the kvittering, and the relay with what it had
 * not read yet: the journaled receipts were never taken. After both
 * restart the conversation is told all the same.
 */
static void
announce_after_crash(void)
{
	const char *ids[1];
	char j[80];
	MID(m);
	int ok, i;

	CHECK(wait_settled(1, 30000), "earlier batches were not announced");
	/* The batch waits in the archive's silence while the relay still
	 * runs: the archiver has the message. */
	fault("silence");
	say(&p[ELISA], "Kan du ringe meg i morgen?", m);
	ids[0] = m;
	CHECK(wait_status(" sent ", 30000), "no batch was sent");

	/* The relay stops reading; the archive answers the next attempt, so
	 * the batch is journaled while its receipts wait in the relay's
	 * socket. */
	assert_int_equal(kill(env.relay.pid, SIGSTOP), 0);
	fault("none");
	ok = wait_settled(0, 30000);
	if (ok)
		run_for(1500); /* ticks that try to tell the conversation */
	stop(&arch_pid, SIGKILL);
	bvt_relay_kill(&env.relay); /* unread frames die with it */
	CHECK(ok, "the batch was not journaled while the relay was stopped");

	/* Everything comes back (the relay on a new port). */
	assert_int_equal(bvt_relay_start(&env.relay, env.db, NULL), 0);
	for (i = 0; i < N; i++) {
		peer_close(&p[i]);
		peer_open(&p[i], names[i]);
		assert_int_equal(bv_client_connect(p[i].c), 0);
	}
	start_archiver();
	CHECK(wait_marked(ELISA, m, j, sizeof(j)),
	      "elisa was never told %s is journaled", m);
	CHECK(wait_marked(CAMILLA, m, j, sizeof(j)),
	      "camilla was never told %s is journaled", m);
	CHECK(wait_journaled(ids, 1, 1000), "not in the archive");
	CHECK(wait_settled(1, 20000), "the batch was not announced");
}

/*
 * Camilla reinstalls (a new phone, a new identity key on the same device):
 * her people's apps ask them, the archive accepts the key by itself, so
 * her next message is journaled and everyone gets its mark.
 */
static void
reinstall(void)
{
	char account[BV_CLIENT_ACCOUNT_LEN + 1], j[80];
	const char *ids[2];
	unsigned kc = p[ELISA].key_changed;
	uint32_t device;
	MID(m1);
	MID(m2);

	CHECK(wait_settled(1, 30000), "earlier batches were not announced");
	snprintf(account, sizeof(account), "%s",
		 bv_client_account(p[CAMILLA].c));
	device = bv_client_device(p[CAMILLA].c);
	peer_close(&p[CAMILLA]);
	memset(&p[CAMILLA], 0, sizeof(p[CAMILLA]));
	enroll(&p[CAMILLA], "camilla-ny", account, device);
	peer_cases(&p[CAMILLA]);

	say(&p[CAMILLA], "Ny telefon, samme Camilla", m1);
	/* Elisa is asked, and says yes. */
	if (!run_until(&p[ELISA].key_changed, kc + 1, BVT_TIMEOUT))
		fail_msg("elisa: no key change for camilla");
	assert_int_equal(bv_client_accept_identity(p[ELISA].c, account, device),
			 0);
	say(&p[ELISA], "Hei igjen", m2);
	ids[0] = m1;
	ids[1] = m2;
	CHECK(wait_journaled(ids, 2, 90000),
	      "after the reinstall the archive lacks messages");
	CHECK(wait_marked(ELISA, m1, j, sizeof(j)), "elisa: %s not marked", m1);
	CHECK(wait_marked(CAMILLA, m2, j, sizeof(j)), "camilla: %s not marked",
	      m2);
	{
		char *log = bvt_file_read(arch_log, NULL);

		CHECK(log && strstr(log, "accepted the new identity key of"),
		      "the archiver did not log the key it accepted");
		free(log);
	}
	/* And the case file has it, once: who, which device, when. */
	{
		char needle[120], *text = NULL;
		const char *tittel = NULL;
		json_t *jps = journalposts();
		size_t n;

		assert_non_null(jps);
		snprintf(needle, sizeof(needle),
			 "Camilla Berg (saksbehandler), enhet %u:\n    Enheten "
			 "har fått en ny sikkerhetsnøkkel",
			 (unsigned)device);
		text = transcripts_with(jps, needle, &tittel, &n);
		CHECK(n == 1, "%zu transcripts record the accepted key", n);
		assert_non_null(strstr(text, "Endrede sikkerhetsnøkler som "
					     "arkivet godtok:\n"));
		free(text);
		json_decref(jps);
	}
}

static void
t_kill_mid_batch(void **state)
{
	const char *ids[6];
	MID(m0);
	MID(m1);
	MID(m2);
	MID(m3);
	MID(m4);
	MID(m5);
	json_t *jps;
	int i;

	(void)state;
	ids[0] = m0, ids[1] = m1, ids[2] = m2, ids[3] = m3, ids[4] = m4,
	ids[5] = m5;
	/* The archive says nothing: the batch stays on its way. */
	fault("silence");
	say(&p[ELISA], "Første", m0);
	say(&p[CAMILLA], "Andre", m1);
	say(&p[ELISA], "Tredje", m2);
	CHECK(wait_status(" sent ", 30000), "no batch was sent");

	/* The archive device dies mid-batch; the conversation goes on. */
	stop(&arch_pid, SIGKILL);
	say(&p[CAMILLA], "Fjerde", m3);
	say(&p[ELISA], "Femte", m4);
	fault("none");
	start_archiver();
	say(&p[ELISA], "Sjette", m5);

	CHECK(wait_journaled(ids, 6, 90000),
	      "after the restart the archive lacks messages");
	jps = journalposts();
	assert_non_null(jps);
	/* Never skipped, never twice; the silent attempt's retry was not a
	 * second journalpost. */
	for (i = 0; i < 6; i++)
		CHECK(times_journaled(jps, ids[i]) == 1,
		      "message %d journaled %d times", i,
		      times_journaled(jps, ids[i]));
	{
		size_t k, x;
		json_t *a, *b;

		json_array_foreach(jps, k, a)
			json_array_foreach(jps, x, b) if (k < x)
				assert_string_not_equal(
					json_string_value(
						json_object_get(a, "noekkel")),
					json_string_value(
						json_object_get(b, "noekkel")));
	}
	json_decref(jps);

	announce_after_crash();
	reinstall();
}

/* One message through one fault; returns after it is journaled. */
static void
through(const char *mode, const char *text, char *mid)
{
	const char *ids[1] = {mid};

	fault(mode);
	say(&p[ELISA], text, mid);
	CHECK(wait_journaled(ids, 1, 90000), "%s: not journaled", mode);
}

static void
t_faults(void **state)
{
	MID(m1);
	MID(m2);
	MID(m3);
	MID(m4);
	MID(m5);
	MID(m6);
	const char *ids[1];
	json_t *jps;
	char *out, batch[40];
	const char *line;

	(void)state;
	/* serverfeil once: the same batch again, journaled once. */
	through("serverfeil:1", "Serverfeil først", m1);
	/* silence once: the reply timeout brings the retry. */
	through("silence:1", "Stille først", m2);
	/* mottatt and kvittering twice: nothing changes. */
	through("duplicate:1", "Dobbelt svar", m3);
	/* never acked: FIKS IO dead-letters it after 3 deliveries and tells
	 * the archiver serverfeil.v1. */
	through("noack:1", "Aldri kvittert", m4);
	jps = journalposts();
	assert_int_equal(times_journaled(jps, m1), 1);
	assert_int_equal(times_journaled(jps, m2), 1);
	assert_int_equal(times_journaled(jps, m3), 1);
	assert_int_equal(times_journaled(jps, m4), 1);
	json_decref(jps);

	/* ugyldigforespoersel: stopped, visible, held until an operator
	 * retries; later messages wait behind it. */
	fault("ugyldig:1");
	say(&p[ELISA], "Ugyldig", m5);
	CHECK(wait_status("failed", 60000), "no failed batch");
	assert_int_equal(status(&out), 1);
	line = strstr(out, "failed");
	assert_non_null(line);
	assert_non_null(strstr(out, "ugyldigforespoersel"));
	while (line > out && line[-1] != '\n')
		line--;
	assert_int_equal(sscanf(line, "%36s", batch), 1);
	free(out);
	say(&p[ELISA], "Etter feilen", m6);
	run_for(bvt_ms(4000));
	jps = journalposts();
	assert_int_equal(times_journaled(jps, m5), 0);
	assert_int_equal(times_journaled(jps, m6), 0);
	json_decref(jps);
	{
		char *const argv[] = {
			BV_ARCHIVER_BIN, "--profile", profile, "retry",
			"--batch",	 batch,	      NULL};

		assert_int_equal(bvt_run(argv, 0, bvt_ms(20000), NULL, NULL),
				 0);
	}
	ids[0] = m5;
	CHECK(wait_journaled(ids, 1, 60000), "not journaled after retry");
	ids[0] = m6;
	CHECK(wait_journaled(ids, 1, 60000), "the next batch stayed held");
	assert_int_equal(status(&out), 0);
	free(out);
}

/* d's registration id as keys_get tells it (envelopes carry it). */
static void
regid_of(struct bvt_conn *c, struct bvt_dev *d)
{
	json_t *r = bvt_keys_get(c, d->account, d->device), *dv;
	size_t i;

	bvt_assert_ok(r);
	json_array_foreach(
		json_object_get(bvt_ok(r), "devices"), i,
		dv) if (json_integer_value(json_object_get(dv, "device")) ==
			(json_int_t)d->device) d->regid =
		(uint32_t)json_integer_value(
			json_object_get(dv, "registration_id"));
	json_decref(r);
	assert_true(d->regid > 0);
}

/*
 * Issue 5's rule with the real archive device: a raw client on the case
 * team (tests/support, no libbvchat: it chooses its envelopes itself)
 * leaves the running archiver's device out and is refused with exactly
 * that device missing; with it the send is accepted and the archiver
 * journals the message — as unreadable, since the raw client speaks no
 * Signal, but under its id, so nothing the relay took escapes the file.
 */
static void
t_archive_required(void **state)
{
	const char *roster[] = {
		"roster-add", "--case",	    case_id,  "--account",  NULL,
		"--role",     "caseworker", "--name", "Kari Vikar", NULL};
	struct bvt_dev raw, to[3];
	const struct bvt_dev *set[3];
	struct bvt_conn *c;
	json_t *r, *miss, *envs, *devs;
	const char *ids[1];
	const char *mid = "raw-archive-1";
	char *text;
	const char *tittel;
	size_t i;

	(void)state;
	memset(&raw, 0, sizeof(raw));
	memset(to, 0, sizeof(to));
	assert_int_equal(bvt_new_account(env.relay.port, &env.tenant, &raw), 0);
	roster[4] = raw.account;
	assert_int_equal(admin(NULL, 0, roster), 0);
	c = bvt_online(env.relay.port, &raw);
	assert_non_null(c);
	BVT_OK(bvt_keys_put(c, 1, 1, 5));
	for (i = 0; i < 2; i++) {
		snprintf(to[i].account, sizeof(to[i].account), "%s",
			 bv_client_account(p[i].c));
		to[i].device = bv_client_device(p[i].c);
		regid_of(c, &to[i]);
		set[i] = &to[i];
	}

	/* Everyone but the case file. */
	envs = bvt_envelopes_to(set, 2, mid);
	r = bvt_request(c, json_pack("{s:s, s:s, s:s, s:o}", "op", "send",
				     "conversation", conv, "message_id", mid,
				     "envelopes", envs));
	bvt_assert_err(r, "BV_EDEVICES");
	miss = json_object_get(bvt_err(r), "missing");
	CHECK(json_array_size(miss) == 1, "missing: %s", bvt_js(miss));
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(miss, 0), "account")),
			    archive_account);
	devs = json_object_get(json_array_get(miss, 0), "devices");
	assert_int_equal(json_array_size(devs), 1);
	snprintf(to[2].account, sizeof(to[2].account), "%s", archive_account);
	to[2].device = (uint32_t)json_integer_value(json_array_get(devs, 0));
	assert_true(to[2].device > 0);
	regid_of(c, &to[2]);
	/* Nothing extra: only the case file is left out. */
	assert_int_equal(json_array_size(json_object_get(bvt_err(r), "extra")),
			 0);
	json_decref(r);

	/* With the archive device: accepted, and in the case file. */
	set[2] = &to[2];
	envs = bvt_envelopes_to(set, 3, mid);
	BVT_OK(bvt_request(c, json_pack("{s:s, s:s, s:s, s:o}", "op", "send",
					"conversation", conv, "message_id", mid,
					"envelopes", envs)));
	ids[0] = mid;
	CHECK(wait_journaled(ids, 1, 60000),
	      "the archiver did not journal the raw client's message");
	r = journalposts();
	text = transcript_of(r, mid, &tittel);
	assert_non_null(text);
	assert_non_null(strstr(text, "kunne ikke leses"));
	free(text);
	json_decref(r);
	bvt_conn_free(c);
}

/* ------------------------------------------------------------ attachments */

/* Sends text with files from who; the message id in mid. */
static void
send_files(struct peer *from, const char *text,
	   const struct bv_client_file *files, size_t n, char *mid)
{
	unsigned before = from->sent;

	assert_int_equal(bv_client_send_attachments(from->c, conv, text, NULL,
						    NULL, 0, files, n, mid),
			 0);
	if (!run_until(&from->sent, before + 1, bvt_ms(BVT_TIMEOUT)))
		fail_msg("%s: attachment message did not end", from->name);
	assert_int_equal(from->sent_rc, 0);
}

struct blob_find {
	const char *mid;
	char blobs[BV_CLIENT_ATTACHMENTS_MAX][BV_CLIENT_ACCOUNT_LEN + 1];
	size_t n;
};

static int
blob_find_cb(void *arg, const struct bv_client_message *m)
{
	struct blob_find *f = arg;
	size_t i;

	if (strcmp(m->message_id, f->mid))
		return 0;
	for (i = 0; i < m->n_attachments && i < BV_CLIENT_ATTACHMENTS_MAX; i++)
		snprintf(f->blobs[i], sizeof(f->blobs[i]), "%s",
			 m->attachments[i].blob);
	f->n = m->n_attachments;
	return 1;
}

/* The relay's blobs among ids marked journaled. */
static long long
journaled_blobs(const struct blob_find *f)
{
	char sql[400];
	size_t i;
	long long n = 0;

	for (i = 0; i < f->n; i++) {
		snprintf(sql, sizeof(sql),
			 "SELECT count(*) FROM blobs WHERE id = '%s' AND "
			 "journaled_at IS NOT NULL",
			 f->blobs[i]);
		n += bvt_sql_int(env.db, sql, 0, NULL);
	}
	return n;
}

static int
wait_blobs_journaled(const struct blob_find *f, int ms)
{
	int64_t deadline = bvt_now_ms() + bvt_ms(ms);

	do {
		if (journaled_blobs(f) == (long long)f->n)
			return 1;
		run_for(200);
	} while (bvt_now_ms() < deadline);
	return 0;
}

static void
sha_hex(const uint8_t *data, size_t len, char hex[65])
{
	uint8_t md[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(md, data, len);
	sodium_bin2hex(hex, 65, md, sizeof(md));
}

/* The document of the journalposts whose stored sha256 is hex, and how
 * many there are. */
static json_t *
doc_by_sha(json_t *jps, const char *hex, int *count)
{
	size_t i, k;
	json_t *jp, *d, *found = NULL;

	*count = 0;
	json_array_foreach(jps, i, jp)
	{
		json_array_foreach(json_object_get(jp, "dokumenter"), k, d)
		{
			const char *sha =
				json_string_value(json_object_get(d, "sha256"));

			if (sha && !strcmp(sha, hex)) {
				(*count)++;
				found = d;
			}
		}
	}
	return found;
}

static void
check_doc(json_t *jps, const uint8_t *data, size_t len, const char *pkg,
	  const char *name, const char *format, const char *mime, int nummer)
{
	char hex[65], path[600];
	json_t *d;
	char *stored;
	size_t got = 0;
	int count;

	sha_hex(data, len, hex);
	d = doc_by_sha(jps, hex, &count);
	CHECK(count == 1, "%s is in the archive %d times", pkg, count);
	assert_string_equal(json_string_value(json_object_get(d, "filnavn")),
			    pkg);
	assert_string_equal(
		json_string_value(json_object_get(d, "visningsnavn")), name);
	assert_string_equal(json_string_value(json_object_get(d, "tittel")),
			    name);
	if (format)
		assert_string_equal(
			json_string_value(json_object_get(d, "format")),
			format);
	assert_string_equal(json_string_value(json_object_get(d, "mime")),
			    mime);
	assert_string_equal(json_string_value(json_object_get(d, "rolle")),
			    "V");
	assert_int_equal(json_integer_value(json_object_get(d, "nummer")),
			 nummer);
	assert_int_equal(json_integer_value(json_object_get(d, "bytes")), len);
	/* Exactly the bytes the citizen sent. */
	snprintf(path, sizeof(path), "%s.d/%s", peer_db, hex);
	stored = bvt_file_read(path, &got);
	assert_non_null(stored);
	assert_int_equal(got, len);
	assert_memory_equal(stored, data, len);
	free(stored);
}

#define PHOTO (300 * 1024)
#define PDF   (40 * 1024)
#define PNG   (20 * 1024)

static void
t_attachments(void **state)
{
	struct bv_client_file f[2];
	struct blob_find bf, tf;
	const char *ids[2], *tittel = NULL;
	uint8_t *photo, *pdf, *png;
	MID(m1);
	MID(m2);
	MID(m3);
	json_t *jps;
	char *text, *out, sql[300], want[200];
	int64_t t0 = bvt_now_ms();

	(void)state;
	photo = malloc(PHOTO);
	pdf = malloc(PDF);
	png = malloc(PNG);
	assert_true(photo && pdf && png);
	randombytes_buf(photo, PHOTO);
	randombytes_buf(pdf, PDF);
	memcpy(pdf, "%PDF-1.7\n", 9);
	randombytes_buf(png, PNG);
	memset(f, 0, sizeof(f));
	f[0].data = photo;
	f[0].len = PHOTO;
	f[0].type = "image/jpeg";
	f[0].name = "IMG 0042.jpg";
	f[1].data = pdf;
	f[1].len = PDF;
	f[1].type = "application/pdf";
	f[1].name = "..brev til barnevernet.pdf";

	/* The archive is silent: the archiver fetches, cuts and sends, and
	 * is killed before any kvittering. */
	fault("silence");
	send_files(&p[ELISA], "Her er bildet og brevet.", f, 2, m1);
	memset(&bf, 0, sizeof(bf));
	bf.mid = m1;
	assert_int_equal(
		bv_client_history(p[ELISA].c, conv, 0, blob_find_cb, &bf), 1);
	assert_int_equal(bf.n, 2);
	CHECK(wait_status(" sent ", 30000), "no batch was sent");
	/* Not before the kvittering. */
	assert_int_equal(journaled_blobs(&bf), 0);
	stop(&arch_pid, SIGKILL);
	fault("none");
	start_archiver();

	ids[0] = m1;
	CHECK(wait_journaled(ids, 1, 90000), "the files' message was not "
					     "journaled");
	jps = journalposts();
	assert_non_null(jps);
	assert_int_equal(times_journaled(jps, m1), 1);
	/* Each file its own document, after the transcript, with exactly
	 * its bytes, once. */
	check_doc(jps, photo, PHOTO, "vedlegg-1.jpg", "IMG 0042.jpg", "RA-JPG",
		  "image/jpeg", 2);
	check_doc(jps, pdf, PDF, "vedlegg-2.pdf", "..brev til barnevernet.pdf",
		  "PDF", "application/pdf", 3);
	text = transcript_of(jps, m1, &tittel);
	assert_non_null(text);
	CHECK(strstr(text, "    Vedlegg: IMG 0042.jpg (image/jpeg, 307 kB) – "
			   "dokument 2 i journalposten\n"),
	      "no file line in:\n%s", text);
	assert_non_null(strstr(text, "    Vedlegg: ..brev til barnevernet.pdf "
				     "(application/pdf, 41 kB) – dokument 3"));
	free(text);
	json_decref(jps);
	CHECK(wait_blobs_journaled(&bf, 30000),
	      "the relay's blobs were not marked journaled");

	/* A file tampered with on the relay before the archiver fetched it:
	 * the transcript says so, status shows it, later messages go on. */
	stop(&arch_pid, SIGTERM);
	f[0].data = png;
	f[0].len = PNG;
	f[0].type = "image/png";
	f[0].name = "skjerm.png";
	send_files(&p[ELISA], "", f, 1, m2);
	memset(&tf, 0, sizeof(tf));
	tf.mid = m2;
	assert_int_equal(
		bv_client_history(p[ELISA].c, conv, 0, blob_find_cb, &tf), 1);
	snprintf(sql, sizeof(sql),
		 "UPDATE blob_chunks SET data = set_byte(data, 100, "
		 "(get_byte(data, 100) + 1) %% 256) WHERE blob_id = '%s' AND "
		 "n = 0",
		 tf.blobs[0]);
	assert_int_equal(bvt_sql_exec(env.db, sql), 0);
	say(&p[CAMILLA], "Takk, vi ser på det.", m3);
	start_archiver();
	ids[0] = m2;
	ids[1] = m3;
	CHECK(wait_journaled(ids, 2, 90000),
	      "the tampered file's message or a later one was not journaled");
	jps = journalposts();
	text = transcript_of(jps, m2, &tittel);
	assert_non_null(text);
	CHECK(strstr(text, "    Vedlegg: skjerm.png (image/png, 20 kB)\n    "
			   "[Vedlegget er ikke arkivert: filen hos tjenesten "
			   "besto ikke ekthetskontrollen"),
	      "no tamper line in:\n%s", text);
	free(text);
	{
		char hex[65];
		int count;

		sha_hex(png, PNG, hex);
		doc_by_sha(jps, hex, &count);
		assert_int_equal(count, 0);
	}
	json_decref(jps);
	snprintf(want, sizeof(want), "attachment 0 of message %s failed", m2);
	CHECK(wait_status(want, 20000), "status does not show the tampered "
					"file");
	assert_int_equal(status(&out), 1);
	assert_non_null(strstr(out, "ekthetskontrollen"));
	free(out);
	/* An operator who has seen it says so: still listed, no longer a
	 * failure. Only a failed file can be acknowledged. */
	{
		char *const ack[] = {BV_ARCHIVER_BIN,
				     "--profile",
				     profile,
				     "acknowledge",
				     "--message",
				     m2,
				     "--attachment",
				     "0",
				     "--note",
				     "Sett av arkivet, ny kopi bedt om",
				     NULL};
		char *const wrong[] = {BV_ARCHIVER_BIN, "--profile", profile,
				       "acknowledge",	"--message", m2,
				       "--attachment",	"1",	     NULL};
		size_t len;
		char *o = NULL;

		assert_int_equal(bvt_run(wrong, 0, bvt_ms(20000), &o, &len), 1);
		free(o);
		o = NULL;
		assert_int_equal(bvt_run(ack, 0, bvt_ms(20000), &o, &len), 0);
		free(o);
	}
	assert_int_equal(status(&out), 0);
	CHECK(strstr(out, want) && strstr(out, "; acknowledged ") &&
		      strstr(out, ": Sett av arkivet, ny kopi bedt om\n"),
	      "status after acknowledge:\n%s", out);
	free(out);
	/* The relay may let it go: the case file recorded what happened. */
	CHECK(wait_blobs_journaled(&tf, 30000),
	      "the tampered blob was never marked journaled");
	fprintf(stderr, "t_attachments: %lld ms\n",
		(long long)(bvt_now_ms() - t0));
	free(photo);
	free(pdf);
	free(png);
}

static int
group_setup(void **state)
{
	(void)state;
	return bvt_pg_start();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(t_end_to_end, setup_all,
						teardown_all),
		cmocka_unit_test_setup_teardown(t_kill_mid_batch, setup_all,
						teardown_all),
		cmocka_unit_test_setup_teardown(t_faults, setup_all,
						teardown_all),
		cmocka_unit_test_setup_teardown(t_archive_required, setup_all,
						teardown_all),
		cmocka_unit_test_setup_teardown(t_attachments, setup_all,
						teardown_all),
	};

	return bvt_done(cmocka_run_group_tests_name("32-archiver", tests,
						    group_setup, NULL));
}
