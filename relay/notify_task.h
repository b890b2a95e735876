/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * notify_task.h: staff tasks (migrations/0011, docs/fagsystem-api.md
 * "Tasks over FIKS IO"): bvchat-notifier raises one FIKS IO message of
 * type no.bvchat.oppgave.ubesvart.v1 per conversation whose citizen side
 * has waited longer than the tenant's limit for an answer. Pure helpers
 * here (the task id, the message) so tests need neither database nor
 * network; the round itself is in notifier.c.
 */
#ifndef BV_RELAY_NOTIFY_TASK_H
#define BV_RELAY_NOTIFY_TASK_H

#include <stdint.h>

#define TASK_TYPE	 "no.bvchat.oppgave.ubesvart.v1"
#define TASK_FILE	 "oppgave.json"
#define TASK_LINK_MAX	 512
#define TASK_CASE_NO_MAX 40 /* cases.case_number */

/* One overdue stretch, as claimed. */
struct task_info {
	char tenant[37];
	char kase[37];
	char case_number[TASK_CASE_NO_MAX + 1];
	char conversation[37];
	int64_t since_ms;  /* the first unanswered citizen message */
	int messages;	   /* citizen messages in the stretch so far */
	int after_minutes; /* the tenant's limit */
};

/*
 * The task's id, also its klientMeldingId: the first 16 bytes of SHA-256
 * over "no.bvchat.oppgave.ubesvart.v1\n" conversation "\n" since_ms (in
 * decimal), as a UUID with version 8 and the RFC 9562 variant, lower
 * case. The same stretch always gets the same id, so a resend after a
 * crash is recognisably the same task. Returns 0 or BV_EINVAL.
 */
int task_id(const char *conversation, int64_t since_ms, char out[37]);

/*
 * The message (docs/schemas/oppgave-ubesvart.v1.schema.json), one line of
 * compact JSON with members in a fixed order: task, tenant, case,
 * case_number, conversation, since, unanswered, after_minutes, raised and,
 * when link_template is not empty, link (with "{case}" and
 * "{conversation}" replaced). raised_ms: now. Returns a string to free
 * with bv_free(), or NULL (no memory, or a link over TASK_LINK_MAX).
 */
char *task_message(const struct task_info *t, const char *link_template,
		   int64_t raised_ms);

/* "2026-05-04T10:15:30.123Z" for ms since the epoch; 0 or BV_EINVAL. */
int task_rfc3339(int64_t ms, char out[32]);

#endif
