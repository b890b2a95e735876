/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * devserver_http.c: bvfiks-devserver's parsers of request bodies
 * (devserver_http.h). Everything here reads bytes from the network.
 */
#define _GNU_SOURCE /* memmem() */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "devserver_http.h"

/* RFC 9110 5.6.2: a token's characters. */
static int
tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int
ows(unsigned char c)
{
	return c == ' ' || c == '\t';
}

int
header_param(const char *line, size_t len, const char *key, char *out,
	     size_t cap)
{
	const unsigned char *p = (const unsigned char *)line, *end = p + len;
	size_t kl = strlen(key);
	int rc = HP_ABSENT;

	/* The parameters start after the first ';' (before it is the
	 * media or disposition type, which has none). */
	p = memchr(p, ';', len);
	if (!p)
		return HP_ABSENT;
	while (p < end) {
		const unsigned char *name;
		size_t nl, n = 0;
		int mine;

		for (p++; p < end && ows(*p); p++)
			;
		if (p == end)
			break; /* a trailing ';' */
		for (name = p; p < end && tchar(*p); p++)
			;
		nl = (size_t)(p - name);
		if (nl == 0 || p == end || *p != '=')
			return HP_MALFORMED;
		p++;
		mine = nl == kl &&
		       strncasecmp((const char *)name, key, kl) == 0;
		if (mine && rc != HP_ABSENT)
			return HP_MALFORMED; /* given twice */
		if (mine)
			rc = 0;
		if (p < end && *p == '"') {
			/* quoted-string: qdtext and quoted-pair, no CTLs
			 * but HTAB (and so no NUL, CR or LF). */
			for (p++;; p++) {
				if (p == end)
					return HP_MALFORMED;
				if (*p == '"')
					break;
				if (*p == '\\' && ++p == end)
					return HP_MALFORMED;
				if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
					return HP_MALFORMED;
				if (mine && n + 1 < cap)
					out[n++] = (char)*p;
				else if (mine)
					rc = HP_TOO_LONG;
			}
			p++;
		} else {
			const unsigned char *v = p;

			for (; p < end && tchar(*p); p++) {
				if (mine && n + 1 < cap)
					out[n++] = (char)*p;
				else if (mine)
					rc = HP_TOO_LONG;
			}
			if (p == v)
				return HP_MALFORMED;
		}
		if (mine && cap)
			out[n] = '\0';
		for (; p < end && ows(*p); p++)
			;
		if (p < end && *p != ';')
			return HP_MALFORMED;
	}
	return rc;
}

#define SEEN_CD 1u
#define SEEN_CT 2u

/* Reads one header line of a part (without its CRLF): Content-Disposition
 * and Content-Type into pt, others only checked. -1 with why. */
static int
part_header(const unsigned char *line, size_t ll, struct part *pt,
	    unsigned *seen, const char **why)
{
	const unsigned char *colon = memchr(line, ':', ll), *v, *ve;
	size_t i;

	/* RFC 5322 2.2: no NUL, no CR or LF but the line's end, no other
	 * control character but HTAB. */
	*why = "a control character, NUL or bare CR or LF in a part header";
	for (i = 0; i < ll; i++)
		if ((line[i] < 0x20 && line[i] != '\t') || line[i] == 0x7f)
			return -1;
	/* Folded lines (obs-fold) start with a space and have no name. */
	*why = "a part header line is not 'Name: value'";
	if (!colon || colon == line)
		return -1;
	for (i = 0; line + i < colon; i++)
		if (!tchar(line[i]))
			return -1;
	for (v = colon + 1; v < line + ll && ows(*v); v++)
		;
	for (ve = line + ll; ve > v && ows(ve[-1]); ve--)
		;
	if (i == 19 &&
	    strncasecmp((const char *)line, "Content-Disposition", 19) == 0) {
		size_t tl = 0;
		int rc;

		*why = "a header given twice in a part";
		if (*seen & SEEN_CD)
			return -1;
		*seen |= SEEN_CD;
		while (v + tl < ve && tchar(v[tl]))
			tl++;
		rc = header_param((const char *)v, (size_t)(ve - v), "name",
				  pt->name, sizeof(pt->name));
		*why = "Content-Disposition has malformed parameters";
		if (rc == HP_MALFORMED)
			return -1;
		*why = "a part name longer than 31 bytes";
		if (rc == HP_TOO_LONG)
			return -1;
		*why = "a part without Content-Disposition: form-data; name";
		if (rc < 0 || tl != 9 ||
		    strncasecmp((const char *)v, "form-data", 9) != 0 ||
		    !pt->name[0])
			return -1;
	} else if (i == 12 &&
		   strncasecmp((const char *)line, "Content-Type", 12) == 0) {
		*why = "a header given twice in a part";
		if (*seen & SEEN_CT)
			return -1;
		*seen |= SEEN_CT;
		*why = "a part's Content-Type is too long";
		if ((size_t)(ve - v) >= sizeof(pt->ctype))
			return -1;
		memcpy(pt->ctype, v, (size_t)(ve - v));
	}
	return 0;
}

/* RFC 2046 5.1.1: bchars. */
static int
bchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || (c && strchr("'()+_,-./:=? ", c));
}

/* p is just after "--boundary" at the start of a line: returns where the
 * next part's headers begin, after transport padding (spaces, tabs) and
 * CRLF; or just after "--" of the close delimiter, with *close set (the
 * rest is epilogue). NULL when the line goes on otherwise. */
static const unsigned char *
delimiter_end(const unsigned char *p, const unsigned char *end, int *close)
{
	if (end - p >= 2 && p[0] == '-' && p[1] == '-') {
		*close = 1;
		return p + 2;
	}
	while (p < end && ows(*p))
		p++;
	if (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
		return p + 2;
	return NULL;
}

int
multipart_parse(const unsigned char *body, size_t len, const char *ctype,
		struct part *parts, const char **why)
{
	char boundary[BOUNDARY_MAX + 2], delim[BOUNDARY_MAX + 2];
	const unsigned char *p, *end = body + len;
	size_t dl, i;
	int n = 0, close = 0, rc;

	/* The media type, then nothing, white space or parameters. */
	*why = "Content-Type is not multipart/form-data";
	if (!ctype || strncasecmp(ctype, "multipart/form-data", 19) != 0 ||
	    (ctype[19] && ctype[19] != ';' && !ows((unsigned char)ctype[19])))
		return -1;
	rc = header_param(ctype, strlen(ctype), "boundary", boundary,
			  sizeof(boundary));
	*why = "Content-Type has malformed parameters";
	if (rc == HP_MALFORMED)
		return -1;
	*why = "no boundary parameter";
	if (rc == HP_ABSENT || !boundary[0])
		return -1;
	/* RFC 2046 5.1.1: 1 … 70 bchars, not ending in a space. */
	*why = "boundary longer than 70 characters";
	if (rc == HP_TOO_LONG || strlen(boundary) > BOUNDARY_MAX)
		return -1;
	*why = "boundary has characters RFC 2046 does not allow";
	for (i = 0; boundary[i]; i++)
		if (!bchar((unsigned char)boundary[i]))
			return -1;
	if (boundary[i - 1] == ' ')
		return -1;
	delim[0] = delim[1] = '-';
	memcpy(delim + 2, boundary, i);
	dl = i + 2;
	/* The first boundary line: at the start of the body or of a line
	 * of the preamble. */
	for (p = body;; p++) {
		p = memmem(p, (size_t)(end - p), delim, dl);
		*why = "the body has no boundary";
		if (!p)
			return -1;
		if (p == body ||
		    (p - body >= 2 && p[-2] == '\r' && p[-1] == '\n'))
			break;
	}
	*why = "a line begins with the boundary but is not a boundary line";
	p = delimiter_end(p + dl, end, &close);
	if (!p)
		return -1;
	for (;;) {
		const unsigned char *hstart, *next;
		int nh = 0;
		unsigned seen = 0;

		if (close)
			return n;
		*why = "more than 8 parts";
		if (n == PARTS_MAX)
			return -1;
		memset(&parts[n], 0, sizeof(parts[n]));
		/* Header lines up to the empty line, which may be the first
		 * (a part without headers, RFC 2046 5.1.1). */
		for (hstart = p;;) {
			const unsigned char *eol;
			size_t room = (size_t)(end - p),
			       left = PART_HDRS_BYTES + 2 -
				      (size_t)(p - hstart);

			eol = memmem(p, room < left ? room : left, "\r\n", 2);
			*why = room > left ? "part headers longer than 8 KiB"
					   : "part headers not ended by an "
					     "empty line";
			if (!eol)
				return -1;
			if (eol == p) {
				p += 2;
				break;
			}
			*why = "part headers longer than 8 KiB";
			if (eol + 2 - hstart > PART_HDRS_BYTES)
				return -1;
			*why = "more than 16 header lines in a part";
			if (++nh > PART_HDRS_MAX)
				return -1;
			if (part_header(p, (size_t)(eol - p), &parts[n], &seen,
					why) < 0)
				return -1;
			p = eol + 2;
		}
		*why = "a part without Content-Disposition: form-data; name";
		if (!(seen & SEEN_CD))
			return -1;
		next = NULL;
		{
			/* From the empty line's CRLF, which is the boundary
			 * line's when the part ends with its headers
			 * (RFC 2046: body-part := headers [CRLF *OCTET]). */
			const unsigned char *s = p - 2;

			while (s < end) {
				const unsigned char *cr =
					memmem(s, (size_t)(end - s), "\r\n", 2);

				if (!cr)
					break;
				if ((size_t)(end - cr - 2) >= dl &&
				    memcmp(cr + 2, delim, dl) == 0) {
					next = cr;
					break;
				}
				s = cr + 2;
			}
		}
		*why = "no closing boundary";
		if (!next)
			return -1;
		parts[n].data = p;
		parts[n].len = next < p ? 0 : (size_t)(next - p);
		n++;
		/* RFC 2046 5.1.1: a boundary may not begin a line in a
		 * part; the sender must choose another. */
		*why = "a line in a part begins with the boundary but is not "
		       "a boundary line";
		p = delimiter_end(next + 2 + dl, end, &close);
		if (!p)
			return -1;
	}
}

static int
hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* url-decodes in place; -1 on a bad escape or an embedded NUL. */
int
url_decode(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (*s == '+') {
			*o++ = ' ';
		} else if (*s == '%') {
			int hi = hex(s[1]), lo = hi < 0 ? -1 : hex(s[2]);

			/* Two hex digits, exactly (sscanf's %2x took signs
			 * and white space: "%-1" was 0xff). */
			if (lo < 0 || (hi == 0 && lo == 0))
				return -1;
			*o++ = (char)(hi << 4 | lo);
			s += 2;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
	return 0;
}

/* Looks up key in an application/x-www-form-urlencoded body (a NUL-
 * terminated copy). Returns a malloc'd decoded value or NULL. */
char *
form_get(const char *body, const char *key)
{
	size_t kl = strlen(key);
	const char *p = body;

	while (p && *p) {
		const char *amp = strchr(p, '&');
		size_t len = amp ? (size_t)(amp - p) : strlen(p);

		if (len > kl && p[kl] == '=' && strncmp(p, key, kl) == 0) {
			char *v = strndup(p + kl + 1, len - kl - 1);

			if (v && url_decode(v) < 0) {
				free(v);
				return NULL;
			}
			return v;
		}
		p = amp ? amp + 1 : NULL;
	}
	return NULL;
}
