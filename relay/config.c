/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * config.c: the relay's settings. One table of directives gives every
 * name, type, default, range, unit and help line; defaults, the config
 * file, config_set() (the command-line flags) and --help all read it.
 *
 * It does not parse argv (main.c does) and does not check how settings
 * relate to each other. Values are never echoed for string directives,
 * since the database conninfo may hold a password.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "bv_error.h"
#include "bv_util.h"
#include "config.h"

enum cfg_type {
	CFG_UINT,    /* unsigned */
	CFG_SIZE,    /* size_t */
	CFG_STRING,  /* char *, allocated; min/max bound its length */
	CFG_LEVEL,   /* char *, one of bv_log_level_from_name()'s names */
	CFG_ORIGINS, /* char *, web origins separated by spaces; max bounds
		      * the length */
};

struct directive {
	const char *name;
	enum cfg_type type;
	size_t offset;
	const char *def; /* as it would be written in the file */
	unsigned long long min, max;
	const char *unit;
	const char *help;
};

/*
 * offsetof(), plus a compile-time check that the member has type T: a
 * comparison of distinct pointer types is a diagnostic.
 */
#define FIELD(member, T)                                                       \
	(offsetof(struct relay_config, member) +                               \
	 0 * sizeof((T *)NULL == &((struct relay_config *)NULL)->member))
#define UINT(m)	   CFG_UINT, FIELD(m, unsigned)
#define SIZE(m)	   CFG_SIZE, FIELD(m, size_t)
#define STR(m)	   CFG_STRING, FIELD(m, char *)
#define LEVEL(m)   CFG_LEVEL, FIELD(m, char *)
#define ORIGINS(m) CFG_ORIGINS, FIELD(m, char *)

static const struct directive directives[] = {
	{"listen", STR(listen), "127.0.0.1", 1, 255, "", "address to bind"},
	{"port", UINT(port), "8480", 1, 65535, "", "TCP port"},
	{"database", STR(database), "dbname=bvchat", 0, 4096, "",
	 "libpq connection string"},
	{"log_level", LEVEL(log_level), "notice", 0, 0, "",
	 "err, warn, notice, info or debug"},
	{"max_frame_bytes", SIZE(limits.max_frame_bytes), "262144", 1024,
	 67108864, "bytes", "largest frame a client may send"},
	{"max_envelope_bytes", SIZE(limits.max_envelope_bytes), "65536", 1,
	 16777216, "bytes", "largest decoded envelope body"},
	{"max_envelopes_per_send", UINT(limits.max_envelopes_per_send), "100",
	 1, 10000, "", "envelopes in one send"},
	{"max_prekeys_per_upload", UINT(limits.max_prekeys_per_upload), "100",
	 1, 10000, "", "one-time prekeys in one keys_put"},
	{"max_prekeys_stock", UINT(max_prekeys_stock), "1000", 1, 1000000, "",
	 "one-time prekeys stored per device"},
	{"prekeys_low_watermark", UINT(prekeys_low_watermark), "20", 0, 1000000,
	 "", "send prekeys_low below this stock"},
	{"max_devices_per_account", UINT(max_devices_per_account), "10", 1,
	 1000, "", "devices per account"},
	{"max_queue_per_device", UINT(max_queue_per_device), "10000", 1,
	 100000000, "", "undelivered envelopes per device"},
	{"sends_per_minute", UINT(sends_per_minute), "600", 0, 1000000, "",
	 "sends per device a minute, 0 = off"},
	{"max_connections_per_account", UINT(max_connections_per_account), "10",
	 1, 100000, "", "connections per account and relay"},
	{"max_requests_in_flight", UINT(max_requests_in_flight), "64", 1, 65536,
	 "", "unanswered requests per connection"},
	{"deliver_window", UINT(deliver_window), "64", 1, 65536, "",
	 "unacked deliveries per connection"},
	{"auth_timeout_ms", UINT(auth_timeout_ms), "10000", 100, 3600000, "ms",
	 "time to authenticate"},
	{"enrollment_token_max_ttl_s", UINT(enrollment_token_max_ttl_s),
	 "86400", 1, 31536000, "s", "how far ahead a token may expire"},
	{"max_output_bytes", UINT(max_output_bytes), "1048576", 4096,
	 1073741824, "bytes", "output buffered per connection"},
	{"shutdown_timeout_ms", UINT(shutdown_timeout_ms), "10000", 0, 3600000,
	 "ms", "time to finish when stopping"},
	{"max_commit_batch", UINT(max_commit_batch), "256", 1, 100000, "",
	 "operations per transaction"},
	{"office_clock_offset_s", UINT(office_clock_offset_s), "0", 0, 31536000,
	 "s", "tests only: shift office hours"},
	{"widget_dir", STR(widget_dir), "", 0, 4096, "",
	 "files served at /widget/; \"\" = none"},
	{"widget_origins", ORIGINS(widget_origins), "", 0, 1024, "",
	 "origins the widget is served under"},
	{"widget_embed_origins", ORIGINS(widget_embed_origins), "", 0, 1024, "",
	 "origins whose pages may embed it"},
	{"widget_max_file_bytes", UINT(widget_max_file_bytes), "16777216", 1024,
	 1073741824, "bytes", "largest widget file served"},
	{"invite_key_file", STR(invite_key_file), "", 0, 4096, "",
	 "key of invite codes; \"\" = none"},
	{"invite_max_ttl_s", UINT(invite_max_ttl_s), "259200", 60, 2592000, "s",
	 "longest lifetime of an invite"},
	{"invite_failures_per_hour", UINT(invite_failures_per_hour), "10", 1,
	 100000, "", "failed redeems per address an hour"},
	{"client_ip_header", STR(client_ip_header), "", 0, 64, "",
	 "header with the client (TLS proxy)"},
	{"webpush_allow_loopback_http", UINT(webpush_allow_loopback_http), "0",
	 0, 1, "", "tests: take http://127.0.0.1 push"},
	{"notify_poll_ms", UINT(notify_poll_ms), "1000", 10, 600000, "ms",
	 "notifier: how often it looks"},
	{"notify_batch", UINT(notify_batch), "32", 1, 10000, "",
	 "notifier: accounts claimed at once"},
	{"notify_max_attempts", UINT(notify_max_attempts), "8", 1, 100, "",
	 "notifier: tries of one notice"},
	{"notify_backoff_s", UINT(notify_backoff_s), "30", 1, 86400, "s",
	 "notifier: first retry after"},
	{"notify_backoff_max_s", UINT(notify_backoff_max_s), "3600", 1, 604800,
	 "s", "notifier: longest retry wait"},
	{"notify_lease_s", UINT(notify_lease_s), "300", 10, 86400, "s",
	 "notifier: a lost send retried after"},
	{"notify_timeout_ms", UINT(notify_timeout_ms), "10000", 100, 300000,
	 "ms", "notifier: one SMS, e-mail, push"},
	{"varsling_fiks_config", STR(varsling_fiks_config), "", 0, 4096, "",
	 "notifier: FIKS account; \"\" = no SMS"},
	{"varsling_konto", STR(varsling_konto), "", 0, 36, "",
	 "notifier: Fiks Varsling kontoId"},
	{"task_fiks_config", STR(task_fiks_config), "", 0, 4096, "",
	 "notifier: tasks' FIKS account"},
	{"task_link", STR(task_link), "", 0, 512, "",
	 "notifier: a task's link for staff"},
	{"smtp_url", STR(smtp_url), "", 0, 1024, "",
	 "notifier: smtp(s)://host:port"},
	{"smtp_from", STR(smtp_from), "", 0, 254, "",
	 "notifier: the e-mails' From"},
	{"smtp_credentials_file", STR(smtp_credentials_file), "", 0, 4096, "",
	 "notifier: file with user:password"},
	{"max_blob_bytes", UINT(max_blob_bytes), "26214400", 1, 1073741824,
	 "bytes", "largest attachment (ciphertext)"},
	{"blob_upload_ttl_s", UINT(blob_upload_ttl_s), "3600", 10, 86400, "s",
	 "time to upload an attachment"},
	{"blob_sweep_interval_s", UINT(blob_sweep_interval_s), "60", 1, 3600,
	 "s", "how often expired attachments go"},
	{"blob_stall_timeout_s", UINT(blob_stall_timeout_s), "30", 3, 3600, "s",
	 "silent upload presumed dead"},
	{"webpush_vapid_key", STR(webpush_vapid_key), "", 0, 4096, "",
	 "notifier: VAPID key; \"\" = no push"},
	{"webpush_subject", STR(webpush_subject), "", 0, 256, "",
	 "notifier: VAPID mailto: or https:"},
	{"webpush_vapid_public", STR(webpush_vapid_public), "", 0, 87, "",
	 "relay: VAPID public key for clients"},
};

#define N_DIRECTIVES (sizeof(directives) / sizeof(directives[0]))
/* The char * member of c that string directive d names. */
#define STRP(c, d) ((char **)(void *)((char *)(c) + (d)->offset))

static const struct directive *
directive_find(const char *name)
{
	size_t i;

	for (i = 0; i < N_DIRECTIVES; i++)
		if (strcmp(directives[i].name, name) == 0)
			return &directives[i];
	return NULL;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/*
 * One web origin as browsers write it in an Origin header (RFC 6454):
 * "http" or "https", "://", a lower-case host name, IPv4 address or
 * bracketed IPv6 address, an optional port; no path, no trailing slash.
 * Lower case only, so that the exact comparison with a browser's header
 * holds; nothing that could end a Content-Security-Policy directive.
 */
static int
origin_valid(const char *s, size_t len)
{
	size_t i = 0, host;
	unsigned long port = 0;

	if (len > 8 && !strncmp(s, "https://", 8))
		i = 8;
	else if (len > 7 && !strncmp(s, "http://", 7))
		i = 7;
	else
		return 0;
	host = i;
	if (s[i] == '[') {
		for (i++; i < len && s[i] != ']'; i++)
			if (!strchr("0123456789abcdef:.", s[i]))
				return 0;
		if (i >= len || i == host + 1)
			return 0;
		i++;
	} else {
		for (; i < len && s[i] != ':'; i++)
			if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789.-",
				    s[i]))
				return 0;
		if (i == host)
			return 0;
	}
	if (i == len)
		return 1;
	if (s[i++] != ':' || i == len || len - i > 5)
		return 0;
	for (; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		port = port * 10 + (unsigned long)(s[i] - '0');
	}
	return port >= 1 && port <= 65535;
}

/* Origins separated by single or repeated spaces; empty is allowed. */
static int
origins_valid(const char *s)
{
	size_t n;

	for (;;) {
		s += strspn(s, " ");
		if (!*s)
			return 1;
		n = strcspn(s, " ");
		if (!origin_valid(s, n))
			return 0;
		s += n;
	}
}

/* Plain decimal digits only: no sign, no spaces, no suffix. */
static int
parse_number(const char *s, unsigned long long *out)
{
	unsigned long long n = 0;
	unsigned d;

	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		d = (unsigned)(*s - '0');
		if (n > (ULLONG_MAX - d) / 10)
			return -1;
		n = n * 10 + d;
	}
	*out = n;
	return 0;
}

static int
directive_set(struct relay_config *c, const struct directive *d,
	      const char *value, char *err, size_t errlen)
{
	char *field = (char *)c + d->offset;
	unsigned long long n;
	size_t len;
	char *s;

	switch (d->type) {
	case CFG_UINT:
	case CFG_SIZE:
		if (parse_number(value, &n) < 0) {
			set_err(err, errlen, "%s: \"%.32s\" is not a number",
				d->name, value);
			return BV_ECONFIG;
		}
		if (n < d->min || n > d->max) {
			set_err(err, errlen, "%s must be %llu to %llu%s%s",
				d->name, d->min, d->max, *d->unit ? " " : "",
				d->unit);
			return BV_ECONFIG;
		}
		if (d->type == CFG_UINT)
			*(unsigned *)(void *)field = (unsigned)n;
		else
			*(size_t *)(void *)field = (size_t)n;
		return 0;
	case CFG_LEVEL:
		if (bv_log_level_from_name(value) < 0) {
			set_err(err, errlen,
				"%s must be err, warn, notice, info or debug",
				d->name);
			return BV_ECONFIG;
		}
		break;
	case CFG_STRING:
	case CFG_ORIGINS:
		len = strlen(value);
		if (len < d->min || len > d->max) {
			set_err(err, errlen,
				"%s must be %llu to %llu characters", d->name,
				d->min, d->max);
			return BV_ECONFIG;
		}
		if (d->type == CFG_ORIGINS && !origins_valid(value)) {
			set_err(err, errlen,
				"%s: origins are like https://host or "
				"http://host:port, lower case, separated by "
				"spaces",
				d->name);
			return BV_ECONFIG;
		}
		break;
	}
	s = bv_strdup(value);
	if (!s) {
		set_err(err, errlen, "out of memory");
		return BV_ENOMEM;
	}
	bv_free(*STRP(c, d));
	*STRP(c, d) = s;
	return 0;
}

int
config_set(struct relay_config *c, const char *name, const char *value,
	   char *err, size_t errlen)
{
	const struct directive *d;

	if (err && errlen)
		err[0] = '\0';
	d = name ? directive_find(name) : NULL;
	if (!d) {
		set_err(err, errlen, "unknown directive \"%.40s\"",
			name ? name : "");
		return BV_ECONFIG;
	}
	if (!value) {
		set_err(err, errlen, "%s needs a value", d->name);
		return BV_ECONFIG;
	}
	return directive_set(c, d, value, err, errlen);
}

static int
is_string(const struct directive *d)
{
	return d->type == CFG_STRING || d->type == CFG_LEVEL ||
	       d->type == CFG_ORIGINS;
}

void
config_cleanup(struct relay_config *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; i < N_DIRECTIVES; i++) {
		if (is_string(&directives[i])) {
			bv_free(*STRP(c, &directives[i]));
			*STRP(c, &directives[i]) = NULL;
		}
	}
}

int
config_defaults(struct relay_config *c)
{
	struct relay_config tmp;
	char err[128];
	size_t i;
	int rc = 0;

	memset(&tmp, 0, sizeof(tmp));
	for (i = 0; i < N_DIRECTIVES; i++) {
		rc = directive_set(&tmp, &directives[i], directives[i].def, err,
				   sizeof(err));
		if (rc < 0)
			goto out;
	}
	*c = tmp;
	memset(&tmp, 0, sizeof(tmp));
out:
	config_cleanup(&tmp);
	return rc;
}

/* Copies c with its own strings, so a failed load leaves c as it was. */
static int
config_copy(struct relay_config *dst, const struct relay_config *src)
{
	size_t i;

	*dst = *src;
	for (i = 0; i < N_DIRECTIVES; i++)
		if (is_string(&directives[i]))
			*STRP(dst, &directives[i]) = NULL;
	for (i = 0; i < N_DIRECTIVES; i++) {
		const char *s;

		if (!is_string(&directives[i]))
			continue;
		s = *STRP(src, &directives[i]);
		if (!s)
			continue;
		*STRP(dst, &directives[i]) = bv_strdup(s);
		if (!*STRP(dst, &directives[i])) {
			config_cleanup(dst);
			return BV_ENOMEM;
		}
	}
	return 0;
}

/* Trims trailing white space, including the \r of CRLF files. */
static void
rtrim(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' ||
			 s[n - 1] == '\r' || s[n - 1] == '\n'))
		s[--n] = '\0';
}

/*
 * Applies one line. Only whole-line comments exist: a value may contain
 * '#' (a conninfo password may), and a trailing comment on a number
 * line is refused loudly rather than read.
 */
static int
apply_line(struct relay_config *c, char *line, char *err, size_t errlen)
{
	char *name, *value;
	size_t n;

	rtrim(line);
	name = line + strspn(line, " \t");
	if (*name == '\0' || *name == '#')
		return 0;
	value = name + strcspn(name, " \t");
	if (*value == '\0') {
		if (!directive_find(name)) {
			set_err(err, errlen, "unknown directive \"%.40s\"",
				name);
			return BV_ECONFIG;
		}
		set_err(err, errlen, "%s needs a value", name);
		return BV_ECONFIG;
	}
	*value++ = '\0';
	value += strspn(value, " \t");
	n = strlen(value);
	if (n >= 2 && value[0] == '"' && value[n - 1] == '"') {
		value[n - 1] = '\0';
		value++;
	}
	return config_set(c, name, value, err, errlen);
}

int
config_load_file(struct relay_config *c, const char *path)
{
	struct relay_config tmp;
	char *line = NULL, err[160];
	size_t cap = 0;
	unsigned lineno = 0;
	ssize_t len;
	FILE *f;
	int rc;

	f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return BV_EIO;
	}
	rc = config_copy(&tmp, c);
	if (rc < 0) {
		fclose(f);
		return rc;
	}
	while ((len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		if (strlen(line) != (size_t)len) {
			snprintf(err, sizeof(err), "NUL byte in line");
			rc = BV_ECONFIG;
		} else {
			rc = apply_line(&tmp, line, err, sizeof(err));
		}
		if (rc < 0) {
			fprintf(stderr, "%s:%u: %s\n", path, lineno, err);
			goto out;
		}
	}
	if (ferror(f)) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		rc = BV_EIO;
		goto out;
	}
	config_cleanup(c);
	*c = tmp;
	memset(&tmp, 0, sizeof(tmp));
	rc = 0;
out:
	config_cleanup(&tmp);
	free(line); /* from getline(), not bv_malloc() */
	fclose(f);
	return rc;
}

void
config_print_help(FILE *f)
{
	char def[40];
	size_t i;

	fprintf(f, "  %-27s %-14s %s\n", "directive", "default", "meaning");
	for (i = 0; i < N_DIRECTIVES; i++) {
		const struct directive *d = &directives[i];

		snprintf(def, sizeof(def), "%s%s%s", *d->def ? d->def : "\"\"",
			 *d->unit ? " " : "", d->unit);
		fprintf(f, "  %-27s %-14s %s\n", d->name, def, d->help);
	}
}
