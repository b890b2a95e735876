/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * bench_util.h: what the benchmark programs (bvchat-bench, bvchat-e2e-bench,
 * bvchat-crypto-bench) share: the clock, latency samples with nearest-rank
 * percentiles, CPU time from /proc, argument parsing and the tenant key
 * file. They measure; nothing here asserts a timing.
 */
#ifndef BV_BENCH_UTIL_H
#define BV_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>
#include <sys/types.h>

/* CLOCK_MONOTONIC in ns. */
uint64_t bench_now_ns(void);

/* Latency samples, stored in µs (saturating at UINT32_MAX). */
struct bench_samples {
	uint32_t *v;
	size_t n, cap;
};

/* Adds ns; a sample that cannot be stored (out of memory) is dropped:
 * a lost sample beats a lost run. */
void bench_sample_add(struct bench_samples *s, uint64_t ns);
/* Sorts the samples; call before bench_pct_ms(). */
void bench_samples_sort(struct bench_samples *s);
/* Nearest-rank percentile p (0 … 100) of sorted samples, in ms; -1 when
 * there are none. */
double bench_pct_ms(const struct bench_samples *s, double p);
void bench_samples_free(struct bench_samples *s);

/* Nearest-rank index (0-based) of percentile p in n sorted values (n > 0). */
size_t bench_rank(size_t n, double p);

/* utime + stime of pid in clock ticks, and its parent (ppid may be NULL).
 * Returns 0, or -1 when pid is gone or /proc cannot be read. */
int bench_proc_stat(pid_t pid, unsigned long long *ticks, pid_t *ppid);
/* CPU ticks of pid, plus (tree) those of its direct children; -1 when pid
 * is unknown. */
int bench_proc_ticks(pid_t pid, int tree, unsigned long long *out);
/* Clock ticks as seconds; a timeval as seconds. */
double bench_ticks_s(unsigned long long a, unsigned long long z);
double bench_tv_s(const struct timeval *tv);

/* "HOST:PORT", optionally "ws://" before and "/" or "/v1" after. Returns 0
 * with host (cap bytes, NUL-terminated) and *port set, or -1. */
int bench_parse_url(const char *s, char *host, size_t cap, int *port);
/* A number in [lo, hi]; 0 or -1. */
int bench_num(const char *s, double lo, double hi, double *out);

/* Reads the key file `bvchat-relay admin tenant-create` writes: the tenant
 * uuid and its 64-byte Ed25519 secret key. Prints why not (as prog) and
 * returns -1 when it is not one. */
int bench_read_key(const char *prog, const char *path, char tenant[37],
		   uint8_t sk[64]);

/* Removes the files of a flat scratch directory, then the directory. */
void bench_remove_dir(const char *dir);

#endif
