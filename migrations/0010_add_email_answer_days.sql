-- SPDX-License-Identifier: GPL-3.0-or-later
-- 0010: the time a municipality promises to answer a secure e-post in (issue 7). Citizens'
-- clients set an e-post's expected answer time (`answer_by`, end-to-end content) to this many
-- working days (Monday–Friday) after sending; the `cases` answer carries it per case as
-- `answer_days` (docs/cases.md). Set per tenant by the operator (1 … 60, default 5).

ALTER TABLE tenants
	ADD COLUMN email_answer_days integer NOT NULL DEFAULT 5
		CHECK (email_answer_days BETWEEN 1 AND 60);

-- As in 0004, with the case's tenant's answer_days.
CREATE OR REPLACE FUNCTION bv_cases_view(p_viewer uuid, p_case uuid, p_after uuid) RETURNS jsonb
LANGUAGE sql STABLE AS $$
	WITH v AS (SELECT id, tenant_id, kind FROM accounts WHERE id = p_viewer),
	k AS (SELECT k.id, k.case_number, t.name AS municipality,
		     t.email_answer_days AS answer_days,
		     coalesce(r.role, 'archive') AS role,
		     r.role IS NULL OR bv_role_is_staff(r.role) AS staff_view
	      FROM cases k JOIN tenants t ON t.id = k.tenant_id CROSS JOIN v
	      LEFT JOIN case_roster r ON r.case_id = k.id AND r.account_id = v.id
	      WHERE (r.account_id IS NOT NULL OR (v.kind = 'archive' AND k.tenant_id = v.tenant_id))
		AND (p_case IS NULL OR k.id = p_case)
		AND (p_after IS NULL OR k.id > p_after)
	      ORDER BY k.id LIMIT 101),
	page AS (SELECT * FROM k ORDER BY id LIMIT 100)
	SELECT jsonb_build_object('more', (SELECT count(*) FROM k) > 100,
		'cases', coalesce(jsonb_agg(jsonb_build_object(
			'case', page.id, 'case_number', page.case_number,
			'municipality', page.municipality, 'answer_days', page.answer_days,
			'role', page.role,
			'people', (SELECT coalesce(jsonb_agg(x.v ORDER BY bv_role_rank(x.v->>'role'),
							    x.v->>'name', x.v->>'account'), '[]')
				   FROM (SELECT bv_person_view(page.id, r.account_id, page.staff_view) AS v
					 FROM case_roster r
					 WHERE r.case_id = page.id
					   AND (page.staff_view OR bv_role_is_staff(r.role)
						OR r.account_id = p_viewer)
					 UNION ALL
					 SELECT bv_person_view(page.id, a.id, page.staff_view)
					 FROM accounts a JOIN cases kk ON kk.tenant_id = a.tenant_id
					 WHERE kk.id = page.id AND a.kind = 'archive') x),
			'conversations', (SELECT coalesce(jsonb_agg(
						bv_conversation_view(c.id, p_viewer, page.staff_view)
						ORDER BY c.created_at, c.id), '[]')
					  FROM conversations c
					  WHERE c.case_id = page.id
					    AND (page.staff_view OR EXISTS (
						SELECT 1 FROM conversation_members m
						WHERE m.conversation_id = c.id
						  AND m.account_id = p_viewer))))
			ORDER BY page.id), '[]'))
	FROM page
$$;

-- `bvchat-relay admin tenant-set --email-answer-days N`: sets it (NULL keeps it), audited like
-- the rest of tenant-set.
CREATE FUNCTION bv_tenant_set_answer_days(p_tenant uuid, p_days integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	IF p_days IS NULL THEN
		RETURN;
	END IF;
	UPDATE tenants SET email_answer_days = p_days WHERE id = p_tenant;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'no such tenant' USING ERRCODE = 'BV030';
	END IF;
	PERFORM bv_audit_append(p_tenant, 'tenant.update', p_tenant::text,
		jsonb_build_object('email_answer_days', p_days));
END;
$$;
