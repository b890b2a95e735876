/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * bench_util.c: the pieces of bench_util.h.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "bench_util.h"
#include "bv_proto.h"
#include "bv_util.h"

#define SAMPLES_FIRST_CAP 4096

uint64_t
bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void
bench_sample_add(struct bench_samples *s, uint64_t ns)
{
	uint64_t us = ns / 1000;

	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : SAMPLES_FIRST_CAP;
		uint32_t *v = realloc(s->v, cap * sizeof(*v));

		if (!v)
			return;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

void
bench_samples_sort(struct bench_samples *s)
{
	if (s->n)
		qsort(s->v, s->n, sizeof(*s->v), cmp_u32);
}

size_t
bench_rank(size_t n, double p)
{
	size_t k = (size_t)(p / 100.0 * (double)n + 0.999999);

	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return k - 1;
}

double
bench_pct_ms(const struct bench_samples *s, double p)
{
	if (!s->n)
		return -1;
	return s->v[bench_rank(s->n, p)] / 1000.0;
}

void
bench_samples_free(struct bench_samples *s)
{
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}

int
bench_proc_stat(pid_t pid, unsigned long long *ticks, pid_t *ppid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	FILE *f;
	size_t n;
	int pp;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* comm may hold spaces and parentheses: parse after the last ')'. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2,
			 "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu "
			 "%llu",
			 &pp, &ut, &st) != 3)
		return -1;
	*ticks = ut + st;
	if (ppid)
		*ppid = pp;
	return 0;
}

int
bench_proc_ticks(pid_t pid, int tree, unsigned long long *out)
{
	unsigned long long t;
	struct dirent *e;
	pid_t pp;
	DIR *d;

	if (pid <= 0 || bench_proc_stat(pid, out, NULL) < 0)
		return -1;
	if (!tree || !(d = opendir("/proc")))
		return 0;
	while ((e = readdir(d))) {
		char *end;
		long child = strtol(e->d_name, &end, 10);

		if (*end || child <= 0 || child == pid)
			continue;
		if (bench_proc_stat((pid_t)child, &t, &pp) == 0 && pp == pid)
			*out += t;
	}
	closedir(d);
	return 0;
}

double
bench_ticks_s(unsigned long long a, unsigned long long z)
{
	return (double)(z - a) / (double)sysconf(_SC_CLK_TCK);
}

double
bench_tv_s(const struct timeval *tv)
{
	return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

int
bench_parse_url(const char *s, char *host, size_t cap, int *port)
{
	const char *colon;
	char *end;
	long p;

	if (!strncmp(s, "ws://", 5))
		s += 5;
	colon = strrchr(s, ':');
	if (!colon || colon == s || (size_t)(colon - s) >= cap)
		return -1;
	p = strtol(colon + 1, &end, 10);
	if ((*end && strcmp(end, "/") && strcmp(end, BV_WS_PATH)) || p <= 0 ||
	    p > 65535)
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	*port = (int)p;
	return 0;
}

int
bench_num(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

int
bench_read_key(const char *prog, const char *path, char tenant[37],
	       uint8_t sk[64])
{
	json_t *j = json_load_file(path, 0, NULL);
	const char *t = json_string_value(json_object_get(j, "tenant"));
	const char *k = json_string_value(json_object_get(j, "secret_key"));
	size_t n = 0;
	int rc = -1;

	if (!t || !k || !bv_uuid_valid(t) ||
	    bv_b64_decode(k, strlen(k), sk, 64, &n) < 0 || n != 64) {
		fprintf(stderr,
			"%s: %s is not a tenant key file "
			"({\"tenant\", \"secret_key\"})\n",
			prog, path);
		goto out;
	}
	memcpy(tenant, t, 37);
	rc = 0;
out:
	if (k)
		bv_wipe((void *)k, strlen(k));
	json_decref(j);
	return rc;
}

void
bench_remove_dir(const char *dir)
{
	char path[1024];
	struct dirent *d;
	DIR *dp = opendir(dir);

	while (dp && (d = readdir(dp))) {
		if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
		unlink(path);
	}
	if (dp)
		closedir(dp);
	rmdir(dir);
}
