-- SPDX-License-Identifier: GPL-3.0-or-later
-- 0011: staff tasks, so that no citizen message waits unseen (issue 7; docs/fagsystem-api.md
-- "Tasks over FIKS IO", docs/operations.md "Staff tasks"). The relay's send marks, in its own
-- transaction, a case conversation whose citizen side wrote and whose staff side has not
-- answered since (task_unanswered, one row per conversation); a staff-side send clears it.
-- bvchat-notifier raises one task per such unanswered stretch, once it is older than the
-- tenant's task_after_minutes, as a FIKS IO message of type no.bvchat.oppgave.ubesvart.v1 to
-- the tenant's fagsystem account, and records it in tasks_raised. No message content, sender
-- or name is ever stored here.

-- task_fiks_konto: the fagsystem's FIKS IO account (kontoId) that receives the tasks; NULL
-- turns the feature off for the tenant (the marks are still kept, at most one row per
-- conversation, so turning it on later raises what is then overdue).
ALTER TABLE tenants
	ADD COLUMN task_after_minutes integer NOT NULL DEFAULT 1440
		CHECK (task_after_minutes BETWEEN 1 AND 43200),
	ADD COLUMN task_fiks_konto uuid;

-- The open unanswered stretch of a conversation: since_ms, the relay's send time (ms since the
-- epoch) of the first citizen message after the last staff answer; messages, how many citizen
-- messages came in the stretch. Written by the send with one upsert; no foreign key, for the
-- same reason as queue's and notify_pending's. The notifier owns the other columns: raised_at
-- (the stretch's task went: never again for it), not_before (lease or backoff), attempts and
-- last_error (a short code, never content).
CREATE TABLE task_unanswered (
	conversation_id	uuid PRIMARY KEY,
	since_ms	bigint NOT NULL,
	last_ms		bigint NOT NULL,
	messages	integer NOT NULL DEFAULT 1,
	raised_at	timestamptz,
	not_before	timestamptz,
	attempts	integer NOT NULL DEFAULT 0,
	last_error	text CHECK (length(last_error) <= 200)
);
CREATE INDEX task_unanswered_due ON task_unanswered (since_ms) WHERE raised_at IS NULL;

-- Every task raised, one per stretch (conversation, since_ms). task is the message's
-- klientMeldingId, derived from the two (the same on every resend of it); melding_id the id
-- FIKS IO gave the send that was recorded. answered_at: when a staff-side send ended the
-- stretch.
CREATE TABLE tasks_raised (
	conversation_id	uuid NOT NULL,
	since_ms	bigint NOT NULL,
	tenant_id	uuid NOT NULL,
	task		uuid NOT NULL UNIQUE,
	melding_id	uuid,
	messages	integer NOT NULL,
	attempts	integer NOT NULL,
	raised_at	timestamptz NOT NULL DEFAULT now(),
	answered_at	timestamptz,
	PRIMARY KEY (conversation_id, since_ms)
);

-- In a non-partial send's transaction (relay/ops.c): a citizen member of p_conversation opens
-- or extends the unanswered stretch; a staff-side account of the case answers it (the row
-- goes, and a task raised for it is marked answered). Anyone else (the archive) changes
-- nothing. Two index probes and one upsert or delete.
CREATE FUNCTION bv_task_mark(p_conversation uuid, p_sender uuid, p_ts bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	s bigint;
	r timestamptz;
BEGIN
	PERFORM 1 FROM conversation_members
		WHERE conversation_id = p_conversation AND account_id = p_sender;
	IF FOUND THEN
		INSERT INTO task_unanswered (conversation_id, since_ms, last_ms)
		VALUES (p_conversation, p_ts, p_ts)
		ON CONFLICT (conversation_id) DO UPDATE SET
			messages = task_unanswered.messages + 1,
			last_ms = greatest(task_unanswered.last_ms, EXCLUDED.last_ms);
		RETURN;
	END IF;
	PERFORM 1 FROM conversations c JOIN case_roster k ON k.case_id = c.case_id
		WHERE c.id = p_conversation AND k.account_id = p_sender
		  AND bv_role_is_staff(k.role);
	IF NOT FOUND THEN
		RETURN;
	END IF;
	DELETE FROM task_unanswered WHERE conversation_id = p_conversation
		RETURNING since_ms, raised_at INTO s, r;
	IF r IS NOT NULL THEN
		UPDATE tasks_raised SET answered_at = now()
			WHERE conversation_id = p_conversation AND since_ms = s
			  AND answered_at IS NULL;
	END IF;
END;
$$;

-- `bvchat-relay admin task-tenant`: the time a citizen message may stay unanswered (NULL
-- keeps it) and the fagsystem's FIKS IO account (NULL keeps it, '' turns tasks off). Audited.
CREATE FUNCTION bv_task_tenant_set(p_tenant uuid, p_after integer, p_konto text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	IF p_konto IS NOT NULL AND p_konto <> '' AND p_konto !~
	   '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
		RAISE EXCEPTION 'the FIKS IO account is a lower-case UUID'
			USING ERRCODE = 'BV002';
	END IF;
	IF p_after IS NOT NULL AND (p_after < 1 OR p_after > 43200) THEN
		RAISE EXCEPTION 'after-minutes is 1 … 43200' USING ERRCODE = 'BV002';
	END IF;
	UPDATE tenants SET
		task_after_minutes = coalesce(p_after, task_after_minutes),
		task_fiks_konto = CASE WHEN p_konto IS NULL THEN task_fiks_konto
				       ELSE nullif(p_konto, '')::uuid END
	WHERE id = p_tenant;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'no such tenant' USING ERRCODE = 'BV030';
	END IF;
	PERFORM bv_audit_append(p_tenant, 'task.tenant', p_tenant::text,
		jsonb_strip_nulls(jsonb_build_object('after_minutes', p_after,
			'fiks_konto', CASE WHEN p_konto IS NULL THEN NULL
					   WHEN p_konto = '' THEN 'removed'
					   ELSE p_konto END)));
END;
$$;
