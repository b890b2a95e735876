/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * attach.c: the file side of attachments in bvchat (attach.h). The type
 * comes from the content because a name is only a claim; the saved name
 * from a peer is cleaned so that it can be neither a path nor a trick.
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bvchat.h>

#include "attach.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* The contract's allow list, each with the extensions that fit it; the
 * first is the one appended. */
static const struct {
	const char *type;
	const char *ext[5];
} types[] = {
	{"image/jpeg", {"jpg", "jpeg", "jpe"}},
	{"image/png", {"png"}},
	{"image/heic", {"heic", "heif"}},
	{"image/webp", {"webp"}},
	{"application/pdf", {"pdf"}},
	{"audio/mpeg", {"mp3"}},
	{"audio/mp4", {"m4a", "mp4", "m4b", "aac"}},
	{"audio/ogg", {"ogg", "oga", "opus"}},
	{"audio/webm", {"webm", "weba"}},
	{"text/plain", {"txt", "text", "log", "csv", "md"}},
};

/* ---------------------------------------------------------------- */
/* Type from content                                                  */
/* ---------------------------------------------------------------- */

/* An ISO base media file (HEIC, MP4): the brands of its ftyp box. */
static const char *
sniff_ftyp(const unsigned char *b, size_t n)
{
	static const char *const heic[] = {"heic", "heix", "hevc",
					   "hevx", "heim", "heis"};
	static const char *const mp4[] = {"M4A ", "M4B ", "mp41", "mp42",
					  "isom", "iso2", "iso5", "iso6",
					  "dash", "M4P "};
	size_t box, off, i;

	if (n < 16 || memcmp(b + 4, "ftyp", 4) != 0)
		return NULL;
	box = ((size_t)b[0] << 24) | ((size_t)b[1] << 16) |
	      ((size_t)b[2] << 8) | b[3];
	if (box < 16 || box > n)
		box = n;
	/* The major brand at 8, then compatible brands from 16. */
	for (off = 8; off + 4 <= box; off += off == 8 ? 8 : 4) {
		for (i = 0; i < N_OF(heic); i++)
			if (!memcmp(b + off, heic[i], 4))
				return "image/heic";
		if (off == 8)
			for (i = 0; i < N_OF(mp4); i++)
				if (!memcmp(b + off, mp4[i], 4))
					return "audio/mp4";
	}
	/* mif1 without a HEIF brand may be AVIF, which is not on the list. */
	return NULL;
}

static const char *
sniff_magic(const unsigned char *b, size_t n)
{
	if (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff)
		return "image/jpeg";
	if (n >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8))
		return "image/png";
	if (n >= 5 && !memcmp(b, "%PDF-", 5))
		return "application/pdf";
	if (n >= 12 && !memcmp(b, "RIFF", 4) && !memcmp(b + 8, "WEBP", 4))
		return "image/webp";
	if (n >= 4 && !memcmp(b, "OggS", 4))
		return "audio/ogg";
	if (n >= 3 && !memcmp(b, "ID3", 3))
		return "audio/mpeg";
	/* An MPEG audio frame: sync, a version that exists, layer III. */
	if (n >= 2 && b[0] == 0xff && (b[1] & 0xe0) == 0xe0 &&
	    ((b[1] >> 3) & 3) != 1 && ((b[1] >> 1) & 3) == 1)
		return "audio/mpeg";
	if (n >= 4 && !memcmp(b, "\x1a\x45\xdf\xa3", 4)) {
		/* EBML: WebM only, not any Matroska. */
		size_t i;

		for (i = 4; i + 4 <= n; i++)
			if (!memcmp(b + i, "webm", 4))
				return "audio/webm";
		return NULL;
	}
	return sniff_ftyp(b, n);
}

/* UTF-8 checked a piece at a time: need continuation bytes still to come,
 * lo … hi the range of the next one (overlongs and surrogates out). */
struct utf8 {
	int need;
	unsigned char lo, hi;
};

static int
utf8_feed(struct utf8 *u, const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = p[i];

		if (u->need) {
			if (c < u->lo || c > u->hi)
				return -1;
			u->lo = 0x80;
			u->hi = 0xbf;
			u->need--;
			continue;
		}
		u->lo = 0x80;
		u->hi = 0xbf;
		if (c == 0)
			return -1;
		if (c < 0x80)
			continue;
		if (c >= 0xc2 && c <= 0xdf) {
			u->need = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			u->need = 2;
			if (c == 0xe0)
				u->lo = 0xa0;
			else if (c == 0xed)
				u->hi = 0x9f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			u->need = 3;
			if (c == 0xf0)
				u->lo = 0x90;
			else if (c == 0xf4)
				u->hi = 0x8f;
		} else {
			return -1;
		}
	}
	return 0;
}

/* read() past EINTR; -1 with why set on an error. */
static ssize_t
read_some(int fd, unsigned char *buf, size_t len, char *why, size_t cap)
{
	ssize_t n;

	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		snprintf(why, cap, "cannot read it: %s", strerror(errno));
	return n;
}

int
attach_sniff(const char *path, const char **type, int64_t *size, char *why,
	     size_t cap)
{
	unsigned char buf[65536];
	struct utf8 u = {0, 0x80, 0xbf};
	const char *t;
	struct stat st;
	ssize_t n;
	size_t head = 0;
	int fd, rc = -1;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		snprintf(why, cap, "cannot open it: %s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(why, cap, "not a regular file");
		goto out;
	}
	if (st.st_size == 0) {
		snprintf(why, cap, "the file is empty");
		goto out;
	}
	if ((long long)st.st_size > (long long)BV_CLIENT_ATTACHMENT_MAX) {
		snprintf(why, cap,
			 "larger than %lld MiB, the most that can "
			 "be sent",
			 (long long)(BV_CLIENT_ATTACHMENT_MAX >> 20));
		goto out;
	}
	while (head < 64) {
		n = read_some(fd, buf + head, sizeof(buf) - head, why, cap);
		if (n < 0)
			goto out;
		if (n == 0)
			break;
		head += (size_t)n;
	}
	t = sniff_magic(buf, head);
	if (!t) {
		/* Text: the whole file valid UTF-8, no NUL. */
		int ok = utf8_feed(&u, buf, head) == 0;

		while (ok) {
			n = read_some(fd, buf, sizeof(buf), why, cap);
			if (n < 0)
				goto out;
			if (n == 0)
				break;
			ok = utf8_feed(&u, buf, (size_t)n) == 0;
		}
		if (ok && u.need == 0)
			t = "text/plain";
	}
	if (!t) {
		snprintf(why, cap,
			 "not a type that can be sent (JPEG, PNG, HEIC, WebP, "
			 "PDF, MP3, M4A, Ogg or WebM audio, UTF-8 text)");
		goto out;
	}
	*type = t;
	*size = (int64_t)st.st_size;
	rc = 0;
out:
	close(fd);
	return rc;
}

/* ---------------------------------------------------------------- */
/* The saved name                                                     */
/* ---------------------------------------------------------------- */

/* Decodes one UTF-8 character at p (n bytes left) into *cp; returns its
 * length, 0 when p does not start a valid one. */
static size_t
utf8_one(const unsigned char *p, size_t n, unsigned *cp)
{
	struct utf8 u = {0, 0x80, 0xbf};
	size_t len, i;

	if (p[0] < 0x80) {
		*cp = p[0];
		return p[0] ? 1 : 0;
	}
	len = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : 2;
	if (len > n || utf8_feed(&u, p, len) < 0 || u.need)
		return 0;
	*cp = p[0] & (len == 2 ? 0x1f : len == 3 ? 0x0f : 0x07);
	for (i = 1; i < len; i++)
		*cp = (*cp << 6) | (p[i] & 0x3f);
	return len;
}

/* Characters a terminal or a reader would be fooled by: dropped. */
static int
invisible(unsigned cp)
{
	return cp == 0x061c || (cp >= 0x200b && cp <= 0x200f) ||
	       (cp >= 0x202a && cp <= 0x202e) ||
	       (cp >= 0x2060 && cp <= 0x2069) || cp == 0xfeff;
}

/* Replaced by '_': controls, separators, what other systems reserve. */
static int
unsafe(unsigned cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) ||
	       (cp < 0x80 && strchr("/\\:*?\"<>|", (int)cp)) || cp == 0x2028 ||
	       cp == 0x2029;
}

static int
reserved_device(const char *stem)
{
	static const char *const dev[] = {"CON", "PRN", "AUX", "NUL", "CLOCK$"};
	size_t len = strcspn(stem, "."), i;

	for (i = 0; i < N_OF(dev); i++)
		if (len == strlen(dev[i]) && !strncasecmp(stem, dev[i], len))
			return 1;
	return len == 4 &&
	       (!strncasecmp(stem, "COM", 3) || !strncasecmp(stem, "LPT", 3)) &&
	       isdigit((unsigned char)stem[3]);
}

/* Cuts s to at most max bytes on a character boundary, then its trailing
 * dots and spaces. */
static void
cut(char *s, size_t max)
{
	size_t len = strlen(s);

	if (len > max) {
		len = max;
		while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
			len--;
		s[len] = '\0';
	}
	while (len > 0 && (s[len - 1] == '.' || s[len - 1] == ' '))
		s[--len] = '\0';
}

void
attach_file_name(const char *name, const char *type, char *out)
{
	const unsigned char *p = (const unsigned char *)(name ? name : "");
	char clean[4 * 256 + 1], stem[ATTACH_NAME_CAP];
	const char *ext = NULL, *dot, *keep = NULL;
	char *lead;
	size_t n = strlen((const char *)p), i = 0, o = 0, k, t;
	unsigned cp;

	/* Cleaned, character by character (at most 255 of them). */
	while (i < n && o + 4 < sizeof(clean)) {
		k = utf8_one(p + i, n - i, &cp);
		if (!k) {
			clean[o++] = '_';
			i++;
			continue;
		}
		if (invisible(cp)) {
			/* dropped */
		} else if (unsafe(cp)) {
			clean[o++] = '_';
		} else {
			memcpy(clean + o, p + i, k);
			o += k;
		}
		i += k;
	}
	clean[o] = '\0';
	lead = clean + strspn(clean, ". -");
	cut((char *)lead, sizeof(clean));

	for (t = 0; t < N_OF(types); t++)
		if (type && !strcmp(type, types[t].type))
			break;
	if (t == N_OF(types))
		t = N_OF(types) - 1; /* cannot be: the list is checked */
	ext = types[t].ext[0];
	/* The name's own extension stays when it fits the type. */
	dot = strrchr(lead, '.');
	if (dot && dot > lead)
		for (k = 0; k < N_OF(types[t].ext) && types[t].ext[k]; k++)
			if (!strcasecmp(dot + 1, types[t].ext[k])) {
				ext = dot + 1;
				keep = dot;
				break;
			}
	k = keep ? (size_t)(keep - lead) : strlen(lead);
	if (k > sizeof(stem) - 1)
		k = sizeof(stem) - 1; /* cut() below ends it on a boundary */
	memcpy(stem, lead, k);
	stem[k] = '\0';
	cut(stem, ATTACH_NAME_MAX - 1 - strlen(ext));
	if (!stem[0])
		snprintf(stem, sizeof(stem), "vedlegg");
	/* cut() left room: at most ATTACH_NAME_MAX bytes with "_" and ext.
	 * The check is for the compiler, which cannot see that. */
	if (snprintf(out, ATTACH_NAME_CAP, "%s%s.%s",
		     reserved_device(stem) ? "_" : "", stem,
		     ext) >= ATTACH_NAME_CAP)
		snprintf(out, ATTACH_NAME_CAP, "vedlegg.%s", types[t].ext[0]);
}

int
attach_reserve(const char *dir, const char *fname, char *path, size_t cap)
{
	const char *dot = strrchr(fname, '.');
	int stem = dot ? (int)(dot - fname) : (int)strlen(fname);
	int i, fd, len;

	for (i = 1; i <= 99; i++) {
		if (i == 1)
			len = snprintf(path, cap, "%s/%s", dir, fname);
		else
			len = snprintf(path, cap, "%s/%.*s (%d)%s", dir, stem,
				       fname, i, dot ? dot : "");
		if (len < 0 || (size_t)len >= cap) {
			errno = ENAMETOOLONG;
			return -1;
		}
		fd = open(path,
			  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			  0600);
		if (fd >= 0) {
			close(fd);
			return 0;
		}
		if (errno != EEXIST)
			return -1;
	}
	errno = EEXIST;
	return -1;
}

void
attach_size_str(int64_t size, char *out, size_t cap)
{
	if (size < 1000)
		snprintf(out, cap, "%lld B", (long long)size);
	else if (size < 1000000)
		snprintf(out, cap, "%.1f kB", (double)size / 1e3);
	else
		snprintf(out, cap, "%.1f MB", (double)size / 1e6);
}
