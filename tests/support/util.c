/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * util.c: libbvtest's process housekeeping: the scratch directory, running
 * commands with a time limit, and the watchdog that cleans up after a test
 * program that died without running its atexit handlers (SIGKILL from a
 * ctest timeout, a crash outside cmocka's handlers). The watchdog is not our
 * child (double fork, own session) so process-tree kills miss it; it learns
 * the postmaster's PID and the directories to remove over a pipe and acts
 * when that pipe reaches EOF, i.e. when every copy of our end is closed.
 */
#define _GNU_SOURCE /* setgroups() */
#include <dirent.h>
#include <grp.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "bvtest.h"
#include "internal.h"

static char tmpdir[256];
static int keep_tmpdir;
static int wd_fd = -1;

int
bvt_ms(int ms)
{
	const char *s = getenv("BVT_TIMEOUT_SCALE");
	int k = s ? atoi(s) : 1;

	return k > 1 ? ms * k : ms;
}

int64_t
bvt_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
bvt_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int
bvt_mem_contains(const void *hay, size_t haylen, const void *needle,
		 size_t nlen)
{
	const unsigned char *h = hay;
	size_t i;

	if (nlen == 0)
		return 1;
	if (!hay || haylen < nlen)
		return 0;
	for (i = 0; i + nlen <= haylen; i++) {
		if (h[i] == *(const unsigned char *)needle &&
		    memcmp(h + i, needle, nlen) == 0)
			return 1;
	}
	return 0;
}

char *
bvt_file_read(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0, r;

	if (!f)
		return NULL;
	for (;;) {
		if (cap - n < 65536) {
			char *nb = realloc(buf, cap + 65536 + 1);

			if (!nb) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
			cap += 65536;
		}
		r = fread(buf + n, 1, cap - n, f);
		if (r == 0)
			break;
		n += r;
	}
	fclose(f);
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

int
bvt_free_port(void)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int fd, port = -1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

/* ---- watchdog ---- */

static int
proc_is_postgres(pid_t pid)
{
	char path[64], comm[64] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(comm, sizeof(comm), f))
		comm[0] = '\0';
	fclose(f);
	return strncmp(comm, "postgres", 8) == 0;
}

static void
rm_rf(const char *path)
{
	pid_t pid;
	int st;

	if (!path[0] || strncmp(path, "/tmp/bvt-", 9) != 0)
		return; /* never remove anything we did not make */
	pid = fork();
	if (pid == 0) {
		execl("/bin/rm", "rm", "-rf", "--", path, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
}

#define WD_MAXDIRS 8

/* Runs `fiksio.sh stop dir` (a local FIKS IO of tests/support/fiks.c). */
static void
fiks_stop(const char *dir)
{
#ifdef BV_FIKSIO_SH
	pid_t pid = fork();

	if (pid == 0) {
		execl("/bin/bash", "bash", BV_FIKSIO_SH, "stop", dir,
		      (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
#else
	(void)dir;
#endif
}

/* Puts name into the first free slot of set, or takes it out. */
static void
wd_set(char set[][256], const char *name, int add)
{
	int i;

	for (i = 0; i < WD_MAXDIRS; i++) {
		if (add && !set[i][0]) {
			snprintf(set[i], sizeof(set[i]), "%.*s",
				 (int)sizeof(set[i]) - 1, name);
			return;
		}
		if (!add && strcmp(set[i], name) == 0)
			set[i][0] = '\0';
	}
}

/*
 * Lines: "P pid" the postmaster, "D dir"/"d dir" a directory to remove,
 * "F dir"/"f dir" a local FIKS IO to stop (and its directory to remove).
 */
static void
watchdog_run(int rd)
{
	char buf[4096], dirs[WD_MAXDIRS][256], fiks[WD_MAXDIRS][256];
	size_t used = 0;
	pid_t pm = 0;
	int i;

	memset(dirs, 0, sizeof(dirs));
	memset(fiks, 0, sizeof(fiks));
	for (;;) {
		ssize_t n = read(rd, buf + used, sizeof(buf) - 1 - used);
		char *nl;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		used += (size_t)n;
		buf[used] = '\0';
		while ((nl = strchr(buf, '\n'))) {
			*nl = '\0';
			if (buf[0] == 'P')
				pm = (pid_t)atoi(buf + 2);
			else if (buf[0] == 'D' || buf[0] == 'd')
				wd_set(dirs, buf + 2, buf[0] == 'D');
			else if (buf[0] == 'F' || buf[0] == 'f')
				wd_set(fiks, buf + 2, buf[0] == 'F');
			used -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, used);
			buf[used] = '\0';
		}
	}
	/* Our program is gone. An immediate shutdown: SIGQUIT. */
	if (pm > 0 && proc_is_postgres(pm)) {
		kill(pm, SIGQUIT);
		for (i = 0; i < 200 && kill(pm, 0) == 0 && proc_is_postgres(pm);
		     i++)
			bvt_sleep_ms(50);
		if (kill(pm, 0) == 0 && proc_is_postgres(pm))
			kill(pm, SIGKILL);
		bvt_sleep_ms(200);
	}
	for (i = 0; i < WD_MAXDIRS; i++)
		if (fiks[i][0] && strncmp(fiks[i], "/tmp/bvt-fiks-", 14) == 0) {
			fiks_stop(fiks[i]);
			rm_rf(fiks[i]);
		}
	for (i = 0; i < WD_MAXDIRS; i++)
		if (dirs[i][0])
			rm_rf(dirs[i]);
}

static void
watchdog_start(void)
{
	int p[2];
	pid_t pid;

	if (wd_fd >= 0)
		return;
	if (pipe(p) < 0)
		return;
	fcntl(p[1], F_SETFD, FD_CLOEXEC);
	fcntl(p[0], F_SETFD, FD_CLOEXEC);
	pid = fork();
	if (pid == 0) {
		long fd, max = sysconf(_SC_OPEN_MAX);
		int nul;

		if (fork() != 0)
			_exit(0);
		setsid();
		signal(SIGINT, SIG_IGN);
		signal(SIGTERM, SIG_IGN);
		signal(SIGHUP, SIG_IGN);
		signal(SIGPIPE, SIG_IGN);
		if (max < 0 || max > 65536)
			max = 65536;
		/* Hold nothing of the parent's: ctest waits for EOF on the
		 * output pipes, and our end of the pipe must close. */
		for (fd = 0; fd < max; fd++)
			if (fd != p[0])
				close((int)fd);
		nul = open("/dev/null", O_RDWR);
		if (nul >= 0) {
			dup2(nul, 0);
			dup2(nul, 1);
			dup2(nul, 2);
			if (nul > 2)
				close(nul);
		}
		watchdog_run(p[0]);
		_exit(0);
	}
	close(p[0]);
	if (pid < 0) {
		close(p[1]);
		return;
	}
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	signal(SIGPIPE, SIG_IGN);
	wd_fd = p[1];
}

void
bvt__watchdog(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	watchdog_start();
	if (wd_fd < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= (int)sizeof(line) - 1)
		return;
	line[n++] = '\n';
	if (write(wd_fd, line, (size_t)n) < 0)
		perror("bvtest: watchdog");
}

/* ---- scratch directory ---- */

static void
tmpdir_atexit(void)
{
	if (!tmpdir[0])
		return;
	if (keep_tmpdir || getenv("BVT_KEEP")) {
		fprintf(stderr, "bvtest: kept %s\n", tmpdir);
		bvt__watchdog("d %s", tmpdir);
		return;
	}
	rm_rf(tmpdir);
	bvt__watchdog("d %s", tmpdir);
}

const char *
bvt_tmpdir(void)
{
	char comm[32] = "prog";
	FILE *f;
	size_t i;

	if (tmpdir[0])
		return tmpdir;
	f = fopen("/proc/self/comm", "r");
	if (f) {
		if (!fgets(comm, sizeof(comm), f))
			strcpy(comm, "prog");
		fclose(f);
	}
	for (i = 0; comm[i]; i++)
		if (comm[i] == '\n' || comm[i] == '/' || comm[i] == ' ')
			comm[i] = comm[i] == '\n' ? '\0' : '_';
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/bvt-%s-XXXXXX", comm);
	if (!mkdtemp(tmpdir)) {
		perror("bvtest: mkdtemp");
		snprintf(tmpdir, sizeof(tmpdir), "/tmp");
		return tmpdir;
	}
	bvt__watchdog("D %s", tmpdir);
	atexit(tmpdir_atexit);
	return tmpdir;
}

static void
print_tail(const char *path, int lines)
{
	size_t len;
	char *s = bvt_file_read(path, &len);
	size_t i;
	int n = 0;

	if (!s)
		return;
	for (i = len; i > 0; i--) {
		if (s[i - 1] == '\n' && ++n > lines)
			break;
	}
	fprintf(stderr, "----- last %d lines of %s -----\n%s", lines, path,
		s + i);
	if (len && s[len - 1] != '\n')
		fputc('\n', stderr);
	free(s);
}

/* qsort() on log names: relay-NN-… sort by start order. */
static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
bvt_done(int failures)
{
	DIR *d;
	struct dirent *de;
	char path[600], *names[256];
	size_t n = 0, i;

	if (failures <= 0 || !tmpdir[0])
		return failures;
	keep_tmpdir = 1;
	d = opendir(tmpdir);
	while (d && (de = readdir(d)) && n < 256) {
		size_t l = strlen(de->d_name);

		if (l > 4 && strcmp(de->d_name + l - 4, ".log") == 0)
			names[n++] = strdup(de->d_name);
	}
	if (d)
		closedir(d);
	qsort(names, n, sizeof(names[0]), cmp_names);
	/* The last relays started are the likeliest witnesses; the rest
	 * stay in the kept directory. */
	for (i = 0; i < n; i++) {
		if (i + 3 >= n && names[i]) {
			snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
			print_tail(path, 25);
		}
		free(names[i]);
	}
	bvt__pg_print_log();
	fprintf(stderr, "bvtest: all %zu relay logs are in %s\n", n, tmpdir);
	return failures;
}

/* ---- running commands ---- */

static int
reap(pid_t pid, int64_t deadline, int *status)
{
	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);

		if (r == pid)
			return 0;
		if (r < 0 && errno != EINTR)
			return -1;
		if (bvt_now_ms() >= deadline)
			return -2;
		bvt_sleep_ms(5);
	}
}

int
bvt__reap(pid_t pid, int timeout_ms, int *status)
{
	return reap(pid, bvt_now_ms() + timeout_ms, status);
}

int
bvt__run_as(char *const argv[], uid_t uid, gid_t gid, int switch_user,
	    int timeout_ms, char **out, size_t *outlen)
{
	int64_t deadline = bvt_now_ms() + timeout_ms;
	int p[2] = {-1, -1}, st = 0, rc;
	char *buf = NULL;
	size_t n = 0, cap = 0;
	pid_t pid;

	if (out && pipe(p) < 0)
		return -1;
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		if (out) {
			close(p[0]);
			close(p[1]);
		}
		return -1;
	}
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);

		if (nul >= 0)
			dup2(nul, 0);
		dup2(out ? p[1] : 2, 1);
		if (switch_user) {
			if (chdir("/tmp") < 0 || setgid(gid) < 0 ||
			    setgroups(0, NULL) < 0 || setuid(uid) < 0) {
				perror("bvtest: switching user");
				_exit(126);
			}
		}
		execv(argv[0], argv);
		fprintf(stderr, "bvtest: exec %s: %s\n", argv[0],
			strerror(errno));
		_exit(127);
	}
	if (out) {
		close(p[1]);
		for (;;) {
			struct pollfd pfd = {p[0], POLLIN, 0};
			int64_t left = deadline - bvt_now_ms();
			ssize_t r;

			if (left <= 0)
				break;
			if (poll(&pfd, 1, (int)left) <= 0)
				continue;
			if (cap - n < 65536) {
				char *nb = realloc(buf, cap + 65536 + 1);

				if (!nb)
					break;
				buf = nb;
				cap += 65536;
			}
			r = read(p[0], buf + n, cap - n);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			n += (size_t)r;
		}
		close(p[0]);
	}
	rc = reap(pid, deadline, &st);
	if (rc == -2) {
		fprintf(stderr, "bvtest: %s timed out after %d ms\n", argv[0],
			timeout_ms);
		kill(pid, SIGKILL);
		reap(pid, bvt_now_ms() + 10000, &st);
		free(buf);
		return -1;
	}
	if (rc < 0 || !WIFEXITED(st)) {
		free(buf);
		return -1;
	}
	if (out) {
		if (!buf)
			buf = calloc(1, 1);
		else
			buf[n] = '\0';
		*out = buf;
		if (outlen)
			*outlen = n;
	}
	return WEXITSTATUS(st);
}

int
bvt_run(char *const argv[], int run_as_pg, int timeout_ms, char **out,
	size_t *outlen)
{
	struct passwd *pw;

	if (run_as_pg && geteuid() == 0) {
		pw = getpwnam("postgres");
		if (!pw) {
			fprintf(stderr, "bvtest: no user postgres\n");
			return -1;
		}
		return bvt__run_as(argv, pw->pw_uid, pw->pw_gid, 1, timeout_ms,
				   out, outlen);
	}
	return bvt__run_as(argv, 0, 0, 0, timeout_ms, out, outlen);
}
