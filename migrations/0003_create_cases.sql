-- 0003: municipalities' details, cases, rosters, protections and case conversations (issue 4,
-- docs/cases.md). Every change goes through the functions below, which check the rules and
-- append to the audit log (bv_audit_append, 0002) in the same transaction. Errors are raised
-- with bvchat's codes as SQLSTATE: BV002 invalid argument, BV030 not found or not allowed (one
-- code for both, so an answer never tells whether someone exists), BV022 already so.

ALTER TABLE tenants
	ADD CONSTRAINT tenants_org_number CHECK (org_number ~ '^[0-9]{9}$'),
	-- Office hours in the tenant's time zone: bit 0 Monday … bit 6 Sunday.
	ADD COLUMN office_days smallint NOT NULL DEFAULT 31
		CHECK (office_days BETWEEN 0 AND 127),
	ADD COLUMN office_open time NOT NULL DEFAULT '08:00',
	ADD COLUMN office_close time NOT NULL DEFAULT '15:30',
	ADD COLUMN time_zone text NOT NULL DEFAULT 'Europe/Oslo',
	-- The barnevernvakt's number, told to citizens outside office hours.
	ADD COLUMN out_of_hours_phone text CHECK (out_of_hours_phone ~ '^\+?[0-9][0-9 ]{2,19}$'),
	ADD CONSTRAINT tenants_office_hours CHECK (office_open < office_close);

-- An archive account is the tenant's case file device (docs/architecture.md decision 2).
ALTER TABLE accounts
	ADD COLUMN kind text NOT NULL DEFAULT 'person' CHECK (kind IN ('person', 'archive'));

CREATE TABLE cases (
	id		uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	tenant_id	uuid NOT NULL REFERENCES tenants(id),
	case_number	text NOT NULL CHECK (case_number ~ '^[A-Za-z0-9][A-Za-z0-9/._-]{0,39}$'),
	created_at	timestamptz NOT NULL DEFAULT now(),
	UNIQUE (tenant_id, case_number)
);

CREATE TABLE case_roster (
	case_id		uuid NOT NULL REFERENCES cases(id),
	account_id	uuid NOT NULL REFERENCES accounts(id),
	role		text NOT NULL CHECK (role IN ('child', 'parent', 'foster_parent',
					'guardian', 'supervisor', 'support_contact',
					'caseworker', 'team_lead', 'service_leader')),
	display_name	text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 100
					AND display_name !~ '[[:cntrl:]]'),
	added_at	timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (case_id, account_id)
);
CREATE INDEX case_roster_by_account ON case_roster (account_id);

CREATE TABLE case_protections (
	case_id		uuid NOT NULL,
	protected_id	uuid NOT NULL,
	from_id		uuid NOT NULL,
	created_at	timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (case_id, protected_id, from_id),
	FOREIGN KEY (case_id, protected_id) REFERENCES case_roster ON DELETE CASCADE,
	FOREIGN KEY (case_id, from_id) REFERENCES case_roster ON DELETE CASCADE,
	CHECK (protected_id <> from_id)
);

CREATE TABLE conversations (
	id		uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	case_id		uuid NOT NULL REFERENCES cases(id),
	kind		text NOT NULL CHECK (kind IN ('team', 'citizens')),
	-- team: the one citizen who talks with the case team.
	team_citizen	uuid REFERENCES accounts(id),
	created_by	uuid NOT NULL REFERENCES accounts(id),
	created_at	timestamptz NOT NULL DEFAULT now(),
	-- Closed to new sends (a member left the case, or a protection now
	-- forbids the set); the history stays.
	closed_at	timestamptz,
	CHECK ((kind = 'team') = (team_citizen IS NOT NULL))
);
CREATE UNIQUE INDEX conversations_one_team_per_citizen
	ON conversations (case_id, team_citizen) WHERE kind = 'team' AND closed_at IS NULL;

-- The citizens of a conversation; the staff side is the case team at each send.
CREATE TABLE conversation_members (
	conversation_id	uuid NOT NULL REFERENCES conversations(id),
	account_id	uuid NOT NULL REFERENCES accounts(id),
	PRIMARY KEY (conversation_id, account_id)
);
CREATE INDEX conversation_members_by_account ON conversation_members (account_id);

CREATE FUNCTION bv_role_is_staff(p_role text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
	SELECT p_role IN ('caseworker', 'team_lead', 'service_leader')
$$;

-- The tenant of a case, or BV030.
CREATE FUNCTION bv_case_tenant(p_case uuid) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
	t uuid;
BEGIN
	SELECT tenant_id INTO t FROM cases WHERE id = p_case;
	IF t IS NULL THEN
		RAISE EXCEPTION 'no such case' USING ERRCODE = 'BV030';
	END IF;
	RETURN t;
END;
$$;

-- Office days as a bit set from "mon-fri", "mon,wed-fri", "sat": bit 0
-- Monday … bit 6 Sunday; NULL for NULL; BV002 for anything else.
CREATE FUNCTION bv_office_days(p text) RETURNS smallint
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
	days constant text[] := ARRAY['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
	part text;
	a integer;
	b integer;
	bits integer := 0;
BEGIN
	IF p IS NULL THEN
		RETURN NULL;
	END IF;
	FOREACH part IN ARRAY string_to_array(lower(p), ',') LOOP
		a := array_position(days, split_part(part, '-', 1));
		b := array_position(days, coalesce(nullif(split_part(part, '-', 2), ''),
						   split_part(part, '-', 1)));
		IF a IS NULL OR b IS NULL OR a > b OR part ~ '-.*-' THEN
			RAISE EXCEPTION 'office days are like mon-fri or mon,wed-fri'
				USING ERRCODE = 'BV002';
		END IF;
		FOR i IN a .. b LOOP
			bits := bits | (1 << (i - 1));
		END LOOP;
	END LOOP;
	RETURN bits;
END;
$$;

CREATE FUNCTION bv_tenant_set(p_tenant uuid, p_org_number text, p_office_days smallint,
			      p_office_open time, p_office_close time, p_phone text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	UPDATE tenants SET
		org_number = coalesce(p_org_number, org_number),
		office_days = coalesce(p_office_days, office_days),
		office_open = coalesce(p_office_open, office_open),
		office_close = coalesce(p_office_close, office_close),
		out_of_hours_phone = coalesce(p_phone, out_of_hours_phone)
	WHERE id = p_tenant;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'no such tenant' USING ERRCODE = 'BV030';
	END IF;
	PERFORM bv_audit_append(p_tenant, 'tenant.update', p_tenant::text,
		jsonb_strip_nulls(jsonb_build_object('org_number', p_org_number,
			'office_days', p_office_days, 'office_open', p_office_open,
			'office_close', p_office_close, 'out_of_hours_phone', p_phone)));
END;
$$;

-- Whether the tenant's office is open at p_at (its office days and hours
-- in its time zone, daylight saving included); NULL for no such tenant.
-- Public holidays are not known here yet: they count as open days.
CREATE FUNCTION bv_tenant_open_at(p_tenant uuid, p_at timestamptz) RETURNS boolean
LANGUAGE sql STABLE AS $$
	SELECT (office_days & (1 << (extract(isodow FROM p_at AT TIME ZONE time_zone)::int - 1))) <> 0
	   AND (p_at AT TIME ZONE time_zone)::time >= office_open
	   AND (p_at AT TIME ZONE time_zone)::time < office_close
	FROM tenants WHERE id = p_tenant
$$;

CREATE FUNCTION bv_case_create(p_tenant uuid, p_case_number text) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
	c uuid;
BEGIN
	PERFORM 1 FROM tenants WHERE id = p_tenant;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'no such tenant' USING ERRCODE = 'BV030';
	END IF;
	INSERT INTO cases (tenant_id, case_number) VALUES (p_tenant, p_case_number)
		ON CONFLICT DO NOTHING RETURNING id INTO c;
	IF c IS NULL THEN
		RAISE EXCEPTION 'case number already in use' USING ERRCODE = 'BV022';
	END IF;
	PERFORM bv_audit_append(p_tenant, 'case.create', c::text,
		jsonb_build_object('case_number', p_case_number));
	RETURN c;
END;
$$;

-- Marks an account of the tenant as its archive account (no devices may
-- be on a roster, the archive is in every conversation of the tenant).
CREATE FUNCTION bv_archive_set(p_tenant uuid, p_account uuid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	UPDATE accounts SET kind = 'archive' WHERE id = p_account AND tenant_id = p_tenant
		AND NOT EXISTS (SELECT 1 FROM case_roster WHERE account_id = p_account);
	IF NOT FOUND THEN
		RAISE EXCEPTION 'no such account, or it is on a roster' USING ERRCODE = 'BV030';
	END IF;
	PERFORM bv_audit_append(p_tenant, 'archive.set', p_account::text, '{}');
END;
$$;

CREATE FUNCTION bv_roster_add(p_case uuid, p_account uuid, p_role text, p_name text)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	t uuid := bv_case_tenant(p_case);
BEGIN
	PERFORM 1 FROM accounts WHERE id = p_account AND tenant_id = t AND kind = 'person';
	IF NOT FOUND THEN
		RAISE EXCEPTION 'no such account' USING ERRCODE = 'BV030';
	END IF;
	BEGIN
		INSERT INTO case_roster (case_id, account_id, role, display_name)
			VALUES (p_case, p_account, p_role, p_name);
	EXCEPTION
		WHEN unique_violation THEN
			RAISE EXCEPTION 'already on the case' USING ERRCODE = 'BV022';
		WHEN check_violation THEN
			RAISE EXCEPTION 'invalid role or name' USING ERRCODE = 'BV002';
	END;
	PERFORM bv_audit_append(t,
		CASE WHEN bv_role_is_staff(p_role) THEN 'team.join' ELSE 'roster.add' END,
		p_account::text, jsonb_build_object('case', p_case, 'role', p_role));
	PERFORM pg_notify('bv_roster', p_case::text);
END;
$$;

-- Removes an account from a case: a staff member leaves the team (their
-- sends and keys stop at once); a citizen's conversations of the case close.
CREATE FUNCTION bv_roster_remove(p_case uuid, p_account uuid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	t uuid := bv_case_tenant(p_case);
	r text;
BEGIN
	DELETE FROM case_roster WHERE case_id = p_case AND account_id = p_account
		RETURNING role INTO r;
	IF r IS NULL THEN
		RAISE EXCEPTION 'not on the case' USING ERRCODE = 'BV030';
	END IF;
	UPDATE conversations c SET closed_at = now()
	WHERE c.case_id = p_case AND c.closed_at IS NULL
	  AND EXISTS (SELECT 1 FROM conversation_members m
		      WHERE m.conversation_id = c.id AND m.account_id = p_account);
	PERFORM bv_audit_append(t,
		CASE WHEN bv_role_is_staff(r) THEN 'team.leave' ELSE 'roster.remove' END,
		p_account::text, jsonb_build_object('case', p_case, 'role', r));
	PERFORM pg_notify('bv_roster', p_case::text);
END;
$$;

-- p_protected is never revealed to p_from: both citizens on the case;
-- citizens' conversations holding both close.
CREATE FUNCTION bv_protect(p_case uuid, p_protected uuid, p_from uuid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	t uuid := bv_case_tenant(p_case);
	n integer;
BEGIN
	SELECT count(*) INTO n FROM case_roster
	WHERE case_id = p_case AND account_id IN (p_protected, p_from)
	  AND NOT bv_role_is_staff(role);
	IF n <> 2 OR p_protected = p_from THEN
		RAISE EXCEPTION 'both must be citizens on the case' USING ERRCODE = 'BV030';
	END IF;
	INSERT INTO case_protections (case_id, protected_id, from_id)
		VALUES (p_case, p_protected, p_from) ON CONFLICT DO NOTHING;
	UPDATE conversations c SET closed_at = now()
	WHERE c.case_id = p_case AND c.kind = 'citizens' AND c.closed_at IS NULL
	  AND EXISTS (SELECT 1 FROM conversation_members m
		      WHERE m.conversation_id = c.id AND m.account_id = p_protected)
	  AND EXISTS (SELECT 1 FROM conversation_members m
		      WHERE m.conversation_id = c.id AND m.account_id = p_from);
	PERFORM bv_audit_append(t, 'protection.add', p_protected::text,
		jsonb_build_object('case', p_case, 'from', p_from));
	PERFORM pg_notify('bv_roster', p_case::text);
END;
$$;

-- Creates a conversation of a case on p_by's request, by the contact rules
-- of docs/cases.md. team: p_members is the one citizen (a citizen may only
-- name themselves); an open team conversation of that citizen is returned
-- as it is. citizens: only staff may create one, of two or more citizens
-- of the case of whom nobody is protected from another.
CREATE FUNCTION bv_conversation_create(p_case uuid, p_by uuid, p_kind text,
				       p_members uuid[]) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
	t uuid := bv_case_tenant(p_case);
	by_role text;
	conv uuid;
	n integer;
	total integer;
BEGIN
	SELECT role INTO by_role FROM case_roster WHERE case_id = p_case AND account_id = p_by;
	IF by_role IS NULL THEN
		RAISE EXCEPTION 'not on the case' USING ERRCODE = 'BV030';
	END IF;
	SELECT count(DISTINCT m) INTO total FROM unnest(p_members) AS m;
	SELECT count(DISTINCT m) INTO n FROM unnest(p_members) AS m
	WHERE EXISTS (SELECT 1 FROM case_roster r WHERE r.case_id = p_case
		      AND r.account_id = m AND NOT bv_role_is_staff(r.role));
	IF total = 0 OR n <> total THEN
		RAISE EXCEPTION 'members must be citizens on the case' USING ERRCODE = 'BV030';
	END IF;
	IF p_kind = 'team' THEN
		IF n <> 1 OR (NOT bv_role_is_staff(by_role) AND p_members[1] <> p_by) THEN
			RAISE EXCEPTION 'a team conversation has one citizen' USING ERRCODE = 'BV030';
		END IF;
		SELECT id INTO conv FROM conversations WHERE case_id = p_case AND kind = 'team'
			AND team_citizen = p_members[1] AND closed_at IS NULL;
		IF conv IS NOT NULL THEN
			RETURN conv;
		END IF;
		INSERT INTO conversations (case_id, kind, team_citizen, created_by)
			VALUES (p_case, 'team', p_members[1], p_by) RETURNING id INTO conv;
	ELSIF p_kind = 'citizens' THEN
		IF NOT bv_role_is_staff(by_role) OR n < 2 THEN
			RAISE EXCEPTION 'only staff may join citizens' USING ERRCODE = 'BV030';
		END IF;
		PERFORM 1 FROM case_protections
		WHERE case_id = p_case AND protected_id = ANY (p_members) AND from_id = ANY (p_members);
		IF FOUND THEN
			-- The same answer as for anything else not allowed: the
			-- reason would reveal a protection.
			RAISE EXCEPTION 'not allowed' USING ERRCODE = 'BV030';
		END IF;
		INSERT INTO conversations (case_id, kind, created_by)
			VALUES (p_case, 'citizens', p_by) RETURNING id INTO conv;
	ELSE
		RAISE EXCEPTION 'kind is team or citizens' USING ERRCODE = 'BV002';
	END IF;
	INSERT INTO conversation_members (conversation_id, account_id)
		SELECT DISTINCT conv, m FROM unnest(p_members) AS m;
	PERFORM bv_audit_append(t, 'conversation.create', conv::text,
		jsonb_build_object('case', p_case, 'kind', p_kind, 'by', p_by,
				   'members', to_jsonb(p_members)));
	RETURN conv;
END;
$$;

-- The accounts every send of p_sender to p_conversation must reach (the
-- required recipients of docs/cases.md), or BV030 when p_sender may not
-- send to it (not a member, not on the team now, the conversation closed,
-- or no such conversation: one answer for all).
CREATE FUNCTION bv_conversation_recipients(p_conversation uuid, p_sender uuid)
RETURNS SETOF uuid
LANGUAGE plpgsql STABLE AS $$
DECLARE
	c conversations%ROWTYPE;
	t uuid;
BEGIN
	SELECT * INTO c FROM conversations WHERE id = p_conversation AND closed_at IS NULL;
	IF c.id IS NOT NULL THEN
		t := bv_case_tenant(c.case_id);
	END IF;
	IF c.id IS NULL OR NOT (
		EXISTS (SELECT 1 FROM conversation_members
			WHERE conversation_id = c.id AND account_id = p_sender)
		OR EXISTS (SELECT 1 FROM case_roster WHERE case_id = c.case_id
			   AND account_id = p_sender AND bv_role_is_staff(role))
		OR EXISTS (SELECT 1 FROM accounts WHERE id = p_sender
			   AND tenant_id = t AND kind = 'archive')) THEN
		RAISE EXCEPTION 'no such conversation' USING ERRCODE = 'BV030';
	END IF;
	RETURN QUERY
		SELECT account_id FROM conversation_members WHERE conversation_id = c.id
		UNION
		SELECT account_id FROM case_roster WHERE case_id = c.case_id
			AND bv_role_is_staff(role)
		UNION
		SELECT id FROM accounts WHERE tenant_id = t AND kind = 'archive'
		UNION
		SELECT p_sender;
END;
$$;
