/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * notify_task.c: the pure parts of staff tasks (notify_task.h): the task's
 * deterministic id and its JSON message. Neither database nor network; the
 * claim, send and record are notifier.c's.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "bv_error.h"
#include "bv_util.h"
#include "notify_task.h"

int
task_id(const char *conversation, int64_t since_ms, char out[37])
{
	char in[128];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	int len;

	if (!conversation || !bv_uuid_valid(conversation))
		return BV_EINVAL;
	len = snprintf(in, sizeof(in), TASK_TYPE "\n%s\n%lld", conversation,
		       (long long)since_ms);
	if (len < 0 || (size_t)len >= sizeof(in) ||
	    EVP_Digest(in, (size_t)len, md, &n, EVP_sha256(), NULL) != 1 ||
	    n != 32)
		return BV_EINVAL;
	md[6] = (unsigned char)((md[6] & 0x0f) | 0x80); /* version 8 */
	md[8] = (unsigned char)((md[8] & 0x3f) | 0x80); /* RFC 9562 */
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
		 "%02x%02x%02x%02x%02x%02x",
		 md[0], md[1], md[2], md[3], md[4], md[5], md[6], md[7], md[8],
		 md[9], md[10], md[11], md[12], md[13], md[14], md[15]);
	return 0;
}

int
task_rfc3339(int64_t ms, char out[32])
{
	char buf[96];
	time_t s;
	struct tm tm;
	int n;

	if (ms < 0)
		return BV_EINVAL;
	s = (time_t)(ms / 1000);
	if (!gmtime_r(&s, &tm) || tm.tm_year + 1900 > 9999)
		return BV_EINVAL;
	n = snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec, (int)(ms % 1000));
	if (n != 24)
		return BV_EINVAL;
	memcpy(out, buf, 25);
	return 0;
}

/* template with {case} and {conversation} replaced, into out (cap bytes);
 * 0, or -1 when it does not fit. */
static int
link_fill(const char *tmpl, const struct task_info *t, char *out, size_t cap)
{
	size_t o = 0;

	while (*tmpl) {
		const char *v = NULL;
		size_t skip = 1, n;

		if (!strncmp(tmpl, "{case}", 6)) {
			v = t->kase;
			skip = 6;
		} else if (!strncmp(tmpl, "{conversation}", 14)) {
			v = t->conversation;
			skip = 14;
		}
		n = v ? strlen(v) : 1;
		if (o + n >= cap)
			return -1;
		memcpy(out + o, v ? v : tmpl, n);
		o += n;
		tmpl += skip;
	}
	out[o] = '\0';
	return 0;
}

char *
task_message(const struct task_info *t, const char *link_template,
	     int64_t raised_ms)
{
	char id[37], since[32], raised[32], link[TASK_LINK_MAX + 1];
	json_t *m = NULL;
	char *s = NULL, *out = NULL;

	if (task_id(t->conversation, t->since_ms, id) < 0 ||
	    task_rfc3339(t->since_ms, since) < 0 ||
	    task_rfc3339(raised_ms, raised) < 0)
		return NULL;
	m = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:s}", "task",
		      id, "tenant", t->tenant, "case", t->kase, "case_number",
		      t->case_number, "conversation", t->conversation, "since",
		      since, "unanswered", t->messages, "after_minutes",
		      t->after_minutes, "raised", raised);
	if (!m)
		goto out;
	if (link_template && *link_template) {
		if (link_fill(link_template, t, link, sizeof(link)) < 0 ||
		    json_object_set_new(m, "link", json_string(link)) < 0)
			goto out;
	}
	s = json_dumps(m, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (s)
		out = bv_strdup(s);
out:
	free(s);
	json_decref(m);
	return out;
}
