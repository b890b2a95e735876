-- SPDX-License-Identifier: GPL-3.0-or-later
-- 0006: every export of a case is audited (DOMAIN.md rule 10). The case's contents as JSON are
-- built here, once, for every way out of the relay (GET /v1/fagsystem/cases/<id>,
-- `bvchat-relay admin case-show` and `case-export`), and the export is appended to the audit
-- log in the same transaction: what was read out and its entry commit together or not at all.

-- The case p_case as JSON text (docs/fagsystem-api.md, "GET /v1/fagsystem/cases/<id>"), or NULL
-- when there is no such case in p_tenant (p_tenant NULL: in any tenant, for the operator).
-- p_form says how the caller shows it: 'json' as it is, 'text' rendered for a person; BV002
-- for anything else. Appends case.export (the case's tenant, the case as subject, the form as
-- detail: ids and the form only, nothing of the case itself) with the transaction's actor.
-- Only a case that is returned is audited: a probe for a case that does not exist or belongs
-- to another tenant leaves no entry and gets the same NULL, so neither answer nor log tells
-- the two apart. The append comes last (0002: appends serialise until COMMIT).
CREATE FUNCTION bv_case_export(p_tenant uuid, p_case uuid, p_form text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	t uuid;
	j text;
BEGIN
	IF p_form IS NULL OR p_form NOT IN ('json', 'text') THEN
		RAISE EXCEPTION 'form must be json or text' USING ERRCODE = 'BV002';
	END IF;
	SELECT c.tenant_id, json_build_object(
		'case', c.id,
		'case_number', c.case_number,
		'created_at', to_char(c.created_at AT TIME ZONE 'UTC',
				      'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
		'roster', coalesce((
			SELECT json_agg(json_build_object(
					'account', r.account_id,
					'role', r.role,
					'name', r.display_name,
					'staff', bv_role_is_staff(r.role))
				ORDER BY bv_role_is_staff(r.role) DESC, r.added_at,
					 r.account_id)
			FROM case_roster r WHERE r.case_id = c.id), '[]'::json),
		'protections', coalesce((
			SELECT json_agg(json_build_object(
					'protected', p.protected_id,
					'from', p.from_id)
				ORDER BY p.created_at, p.protected_id, p.from_id)
			FROM case_protections p WHERE p.case_id = c.id), '[]'::json),
		'conversations', coalesce((
			SELECT json_agg(json_build_object(
					'conversation', v.id,
					'kind', v.kind,
					'state', CASE WHEN v.closed_at IS NULL THEN 'open'
						 ELSE 'closed' END,
					'created_by', v.created_by,
					'members', coalesce((
						SELECT json_agg(m.account_id
								ORDER BY m.account_id)
						FROM conversation_members m
						WHERE m.conversation_id = v.id), '[]'::json))
				ORDER BY v.created_at, v.id)
			FROM conversations v WHERE v.case_id = c.id), '[]'::json))::text
	INTO t, j
	FROM cases c
	WHERE c.id = p_case AND (p_tenant IS NULL OR c.tenant_id = p_tenant);
	IF NOT FOUND THEN
		RETURN NULL;
	END IF;
	PERFORM bv_audit_append(t, 'case.export', p_case::text,
		jsonb_build_object('form', p_form));
	RETURN j;
END;
$$;
