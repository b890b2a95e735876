-- 0005: what the fagsystem's HTTP API on the relay needs (docs/fagsystem-api.md): the used
-- API-token ids (each token is good for one request), and the tenant checks that confine every
-- call to the tenant whose key signed it. Changes themselves go through 0003's functions, which
-- audit them with the actor the relay sets (fagsystem:<sub>).

-- jti of every API token a relay accepted, kept until it expires (a token past its exp is
-- refused anyway). Separate from enrollment_tokens_used: the two kinds of token never share a
-- namespace, so an id seen as one kind can never use up or stand in for the other.
CREATE TABLE fagsystem_tokens_used (
	jti		bytea PRIMARY KEY CHECK (length(jti) = 16),
	tenant_id	uuid NOT NULL,
	expires_at	timestamptz NOT NULL,
	used_at		timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX fagsystem_tokens_used_expiry ON fagsystem_tokens_used (expires_at);

-- p_case when it is a case of p_tenant, else BV030 (the same answer as for no such case: a
-- tenant never learns that another tenant's case exists).
CREATE FUNCTION bv_case_of(p_tenant uuid, p_case uuid) RETURNS uuid
LANGUAGE plpgsql STABLE AS $$
BEGIN
	PERFORM 1 FROM cases WHERE id = p_case AND tenant_id = p_tenant;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'no such case' USING ERRCODE = 'BV030';
	END IF;
	RETURN p_case;
END;
$$;

-- p_case when p_by is on its roster in a staff role, else BV030: the fagsystem creates
-- conversations on behalf of a member of the case team.
CREATE FUNCTION bv_case_staff(p_case uuid, p_by uuid) RETURNS uuid
LANGUAGE plpgsql STABLE AS $$
BEGIN
	PERFORM 1 FROM case_roster WHERE case_id = p_case AND account_id = p_by
		AND bv_role_is_staff(role);
	IF NOT FOUND THEN
		RAISE EXCEPTION 'not on the case team' USING ERRCODE = 'BV030';
	END IF;
	RETURN p_case;
END;
$$;

-- A new person account of p_tenant, without devices: the fagsystem puts it on a roster and
-- issues an enrollment token for it (`bvchat-relay admin issue-token --account`).
CREATE FUNCTION bv_account_create(p_tenant uuid) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
	a uuid := gen_random_uuid();
BEGIN
	PERFORM 1 FROM tenants WHERE id = p_tenant;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'no such tenant' USING ERRCODE = 'BV030';
	END IF;
	INSERT INTO accounts (id, tenant_id, kind) VALUES (a, p_tenant, 'person');
	PERFORM bv_audit_append(p_tenant, 'account.create', a::text, '{}');
	RETURN a;
END;
$$;
