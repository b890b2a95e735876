/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * replay.c: a main() for any fuzz driver. Feeds every file in the
 * directories (or the files) named on the command line, in name order,
 * through LLVMFuzzerTestOneInput, so a corpus is replayed by gcc builds in
 * every normal test run. It does not mutate or search; libFuzzer does.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* Runs one input, in a buffer of exactly its size so ASan sees overreads. */
static int
run_file(const char *path)
{
	uint8_t *buf = NULL;
	struct stat st;
	size_t n = 0;
	FILE *f;
	int rc = -1;

	f = fopen(path, "rb");
	if (!f || fstat(fileno(f), &st) < 0 || st.st_size < 0)
		goto out;
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf)
		goto out;
	n = fread(buf, 1, (size_t)st.st_size, f);
	if (n != (size_t)st.st_size || ferror(f))
		goto out;
	LLVMFuzzerTestOneInput(buf, n);
	rc = 0;
out:
	if (rc < 0)
		fprintf(stderr, "replay: cannot read %s\n", path);
	free(buf);
	if (f)
		fclose(f);
	return rc;
}

static int
skip_hidden(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

int
main(int argc, char **argv)
{
	struct dirent **names;
	char path[4096];
	struct stat st;
	int i, j, n, runs = 0, failed = 0;

	for (i = 1; i < argc; i++) {
		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "replay: no such file %s\n", argv[i]);
			failed++;
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			failed += run_file(argv[i]) < 0;
			runs++;
			continue;
		}
		n = scandir(argv[i], &names, skip_hidden, alphasort);
		if (n < 0) {
			fprintf(stderr, "replay: cannot list %s\n", argv[i]);
			failed++;
			continue;
		}
		for (j = 0; j < n; j++) {
			snprintf(path, sizeof(path), "%s/%s", argv[i],
				 names[j]->d_name);
			if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
				failed += run_file(path) < 0;
				runs++;
			}
			free(names[j]);
		}
		free(names);
	}
	printf("replay: %d inputs, %d unreadable\n", runs, failed);
	/* An empty corpus is a broken test, not a passing one. */
	return failed || runs == 0 ? 1 : 0;
}
