/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * test_notify_task: the pure parts of staff tasks (relay/notify_task.h):
 * the task id against a vector computed independently (Python's hashlib
 * over the same input), its UUID version and variant, that it depends on
 * exactly the stretch; RFC 3339 times; the message byte for byte, with
 * and without a link, and a link too long to send.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "bv_error.h"
#include "bv_util.h"
#include "notify_task.h"

#define CONV  "12dbaebf-273d-4963-aab0-5430166ff62d"
#define SINCE 1795436536691LL

static void
t_id_vector(void **state)
{
	char id[37];

	(void)state;
	assert_int_equal(task_id(CONV, SINCE, id), 0);
	/* sha256("no.bvchat.oppgave.ubesvart.v1\n" CONV "\n1795436536691"),
	 * first 16 bytes, version 8, RFC 9562 variant. */
	assert_string_equal(id, "6da13367-7be8-8ce9-84b4-49d5ff68cadb");
}

static void
t_id_depends_on_the_stretch(void **state)
{
	char a[37], b[37], c[37], again[37];

	(void)state;
	assert_int_equal(task_id(CONV, SINCE, a), 0);
	assert_int_equal(task_id(CONV, SINCE, again), 0);
	assert_string_equal(a, again);
	assert_int_equal(task_id(CONV, SINCE + 1, b), 0);
	assert_string_not_equal(a, b);
	assert_int_equal(
		task_id("12dbaebf-273d-4963-aab0-5430166ff62e", SINCE, c), 0);
	assert_string_not_equal(a, c);
	assert_true(bv_uuid_valid(b));
	assert_int_equal(b[14], '8');
	assert_non_null(strchr("89ab", b[19]));
	assert_int_equal(task_id("not-a-uuid", SINCE, a), BV_EINVAL);
	assert_int_equal(task_id(NULL, SINCE, a), BV_EINVAL);
}

static void
t_rfc3339(void **state)
{
	char s[32];

	(void)state;
	assert_int_equal(task_rfc3339(0, s), 0);
	assert_string_equal(s, "1970-01-01T00:00:00.000Z");
	assert_int_equal(task_rfc3339(SINCE, s), 0);
	assert_string_equal(s, "2026-11-23T12:22:16.691Z");
	assert_int_equal(task_rfc3339(-1, s), BV_EINVAL);
	/* Year 10000 does not fit the schema's four digits. */
	assert_int_equal(task_rfc3339(253402300800000LL, s), BV_EINVAL);
}

static const struct task_info info = {
	.tenant = "0b7e3c1a-5d2f-4e8a-9c6b-1f2e3d4c5b6a",
	.kase = "7c9d2e4f-1a3b-4c5d-8e6f-a0b1c2d3e4f5",
	.case_number = "2026/17",
	.conversation = CONV,
	.since_ms = SINCE,
	.messages = 3,
	.after_minutes = 1440,
};

static void
t_message(void **state)
{
	char *m;

	(void)state;
	m = task_message(&info, "", SINCE + 86400000LL);
	assert_non_null(m);
	assert_string_equal(
		m, "{\"task\":\"6da13367-7be8-8ce9-84b4-49d5ff68cadb\","
		   "\"tenant\":\"0b7e3c1a-5d2f-4e8a-9c6b-1f2e3d4c5b6a\","
		   "\"case\":\"7c9d2e4f-1a3b-4c5d-8e6f-a0b1c2d3e4f5\","
		   "\"case_number\":\"2026/17\","
		   "\"conversation\":\"" CONV "\","
		   "\"since\":\"2026-11-23T12:22:16.691Z\","
		   "\"unanswered\":3,\"after_minutes\":1440,"
		   "\"raised\":\"2026-11-24T12:22:16.691Z\"}");
	bv_free(m);
	m = task_message(&info,
			 "https://fag.example/sak/{case}?c={conversation}",
			 SINCE);
	assert_non_null(m);
	assert_non_null(strstr(m, ",\"link\":\"https://fag.example/sak/"
				  "7c9d2e4f-1a3b-4c5d-8e6f-a0b1c2d3e4f5?c=" CONV
				  "\"}"));
	bv_free(m);
}

static void
t_link_too_long(void **state)
{
	char tmpl[TASK_LINK_MAX + 2];
	char *m;

	(void)state;
	memset(tmpl, 'a', sizeof(tmpl) - 1);
	tmpl[sizeof(tmpl) - 1] = '\0';
	assert_null(task_message(&info, tmpl, SINCE));
	/* Exactly the cap fits. */
	tmpl[TASK_LINK_MAX] = '\0';
	m = task_message(&info, tmpl, SINCE);
	assert_non_null(m);
	bv_free(m);
	/* Filled in, it grows past the cap: refused, not cut. */
	memcpy(tmpl + TASK_LINK_MAX - 6, "{case}", 6);
	assert_null(task_message(&info, tmpl, SINCE));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_id_vector),
		cmocka_unit_test(t_id_depends_on_the_stretch),
		cmocka_unit_test(t_rfc3339),
		cmocka_unit_test(t_message),
		cmocka_unit_test(t_link_too_long),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
