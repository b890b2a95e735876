/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * profile.c: what the command-line programs on libbvchat share about a
 * profile directory (profile.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "profile.h"

static int
read_full(int fd, uint8_t *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = read(fd, buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

int
profile_key(const char *prog, const char *dir, int create,
	    uint8_t key[BV_CLIENT_STORE_KEY_LEN])
{
	char path[4096];
	uint8_t extra;
	int fd = -1, rfd = -1, rc = -1;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/store.key", dir);
	if (create) {
		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			fprintf(stderr, "%s: cannot create %s: %s\n", prog, dir,
				strerror(errno));
			goto out;
		}
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
		if (fd < 0 && errno != EEXIST) {
			fprintf(stderr, "%s: cannot create %s: %s\n", prog,
				path, strerror(errno));
			goto out;
		}
		if (fd >= 0) {
			rfd = open("/dev/urandom", O_RDONLY);
			if (rfd < 0 ||
			    read_full(rfd, key, BV_CLIENT_STORE_KEY_LEN) < 0 ||
			    write(fd, key, BV_CLIENT_STORE_KEY_LEN) !=
				    BV_CLIENT_STORE_KEY_LEN ||
			    fsync(fd) < 0) {
				fprintf(stderr, "%s: cannot write %s\n", prog,
					path);
				close(fd);
				fd = -1;
				unlink(path);
				goto out;
			}
			rc = 0;
			goto out;
		}
	}
	fd = open(path, O_RDONLY);
	if (fd < 0) {
		fprintf(stderr,
			"%s: cannot open %s: %s (run `bvchat enroll` "
			"first)\n",
			prog, path, strerror(errno));
		goto out;
	}
	if (read_full(fd, key, BV_CLIENT_STORE_KEY_LEN) < 0 ||
	    (n = read(fd, &extra, 1)) != 0) {
		fprintf(stderr, "%s: %s is not a %d-byte key\n", prog, path,
			BV_CLIENT_STORE_KEY_LEN);
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (rfd >= 0)
		close(rfd);
	return rc;
}

int
profile_relay(const char *arg, char *host, size_t cap, int *port)
{
	const char *colon = strrchr(arg, ':');
	char *end;
	long p;

	if (!colon || colon == arg || (size_t)(colon - arg) >= cap)
		return -1;
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || p < 1 || p > 65535)
		return -1;
	memcpy(host, arg, (size_t)(colon - arg));
	host[colon - arg] = '\0';
	*port = (int)p;
	return 0;
}
