-- 0004: the relay enforces case conversations (issue 4; docs/cases.md, docs/protocol.md
-- `send`, `keys_get`, `cases`, `conversation_create`, `deliver` notices, `cases_changed`).
--
-- Sends and roster changes meet at one lock per case: a send checks its required accounts at
-- the end of its transaction under the case's lock in shared mode (bv_check_recipients), a
-- roster or protection change takes it exclusively before it drops what was queued for the
-- person who lost access. So a send either commits before the change, and its envelopes are
-- dropped by it, or sees the change and is refused: a caseworker removed from a case never
-- receives another message of it.

-- The conversation of each queued envelope (NULL for rows queued before this migration).
ALTER TABLE queue ADD COLUMN conversation uuid;

-- When the last out-of-hours notice went out in the conversation.
ALTER TABLE conversations ADD COLUMN last_notice_at timestamptz;

-- The case's lock (see the top of this file); exclusive for changes.
CREATE FUNCTION bv_case_lock(p_case uuid, p_shared boolean) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	IF p_shared THEN
		PERFORM pg_advisory_xact_lock_shared(1651926899, hashtext(p_case::text));
	ELSE
		PERFORM pg_advisory_xact_lock(1651926899, hashtext(p_case::text));
	END IF;
END;
$$;

-- Whether p_account takes part in p_conversation: a citizen member, on the case team now, or
-- an archive account of the case's tenant (the accounts bv_conversation_recipients returns).
CREATE FUNCTION bv_participant(p_conversation uuid, p_account uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
	SELECT EXISTS (SELECT 1 FROM conversation_members
		       WHERE conversation_id = p_conversation AND account_id = p_account)
	    OR EXISTS (SELECT 1 FROM conversations c JOIN case_roster r ON r.case_id = c.case_id
		       WHERE c.id = p_conversation AND r.account_id = p_account
			 AND bv_role_is_staff(r.role))
	    OR EXISTS (SELECT 1 FROM conversations c JOIN cases k ON k.id = c.case_id
		       JOIN accounts a ON a.tenant_id = k.tenant_id
		       WHERE c.id = p_conversation AND a.id = p_account AND a.kind = 'archive')
$$;

-- Whether p_from may fetch keys of p_to: its own account, or both take part in one open
-- conversation (docs/protocol.md, Reachability). No directory: nothing else.
CREATE FUNCTION bv_may_reach(p_from uuid, p_to uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
	SELECT p_from = p_to
	    OR EXISTS (SELECT 1 FROM accounts a JOIN accounts b ON b.tenant_id = a.tenant_id
		       WHERE a.id = p_from AND b.id = p_to
			 AND a.kind = 'archive' AND b.kind = 'archive')
	    OR EXISTS (SELECT 1 FROM conversations c
		       WHERE c.closed_at IS NULL
			 AND c.case_id IN (SELECT case_id FROM case_roster
					   WHERE account_id IN (p_from, p_to))
			 AND bv_participant(c.id, p_from) AND bv_participant(c.id, p_to))
$$;

-- The required accounts of a send of p_sender to p_conversation, each with whether it is an
-- archive account; BV030 when p_sender may not send to it (bv_conversation_recipients).
CREATE FUNCTION bv_send_accounts(p_conversation uuid, p_sender uuid)
RETURNS TABLE (account uuid, archive boolean)
LANGUAGE sql STABLE AS $$
	SELECT r, a.kind = 'archive'
	FROM bv_conversation_recipients(p_conversation, p_sender) AS r
	JOIN accounts a ON a.id = r
$$;

-- At the end of a send's transaction: the required accounts the relay checked the envelopes
-- against (p_accounts) are still the required ones. BV032 when they changed (the relay reads
-- them again and compares again), BV030 when the sender may no longer send at all.
CREATE FUNCTION bv_check_recipients(p_conversation uuid, p_sender uuid, p_accounts uuid[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	k uuid;
	now_required uuid[];
BEGIN
	SELECT case_id INTO k FROM conversations WHERE id = p_conversation;
	IF k IS NULL THEN
		RAISE EXCEPTION 'no such conversation' USING ERRCODE = 'BV030';
	END IF;
	PERFORM bv_case_lock(k, true);
	SELECT array_agg(r ORDER BY r) INTO now_required
		FROM bv_conversation_recipients(p_conversation, p_sender) AS r;
	IF now_required IS DISTINCT FROM
	   (SELECT array_agg(DISTINCT a ORDER BY a) FROM unnest(p_accounts) AS a) THEN
		RAISE EXCEPTION 'required accounts changed' USING ERRCODE = 'BV032';
	END IF;
END;
$$;

-- Whether the tenant's office was open at some moment in [p_from, p_to).
CREATE FUNCTION bv_tenant_open_between(p_tenant uuid, p_from timestamptz, p_to timestamptz)
RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE
	t tenants%ROWTYPE;
	d date;
BEGIN
	SELECT * INTO t FROM tenants WHERE id = p_tenant;
	IF t.id IS NULL OR t.office_days = 0 OR p_to <= p_from THEN
		RETURN false;
	END IF;
	IF p_to - p_from > interval '8 days' THEN
		RETURN true;
	END IF;
	d := (p_from AT TIME ZONE t.time_zone)::date;
	WHILE d <= (p_to AT TIME ZONE t.time_zone)::date LOOP
		IF (t.office_days & (1 << (extract(isodow FROM d)::int - 1))) <> 0
		   AND ((d + t.office_open) AT TIME ZONE t.time_zone) < p_to
		   AND ((d + t.office_close) AT TIME ZONE t.time_zone) > p_from THEN
			RETURN true;
		END IF;
		d := d + 1;
	END LOOP;
	RETURN false;
END;
$$;

-- After a citizen's send to p_conversation at p_at (the relay's clock, which tests may shift):
-- when the office is closed and no notice went out since it was last open, queues the
-- out-of-hours notice for every device of the conversation's required accounts (the sender's
-- devices included) and wakes the relays. Returns how many devices it went to.
CREATE FUNCTION bv_out_of_hours_notice(p_conversation uuid, p_sender uuid, p_at timestamptz,
				       p_ts bigint)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
	c conversations%ROWTYPE;
	t tenants%ROWTYPE;
	body jsonb;
	n integer;
	devs text;
BEGIN
	SELECT * INTO c FROM conversations WHERE id = p_conversation;
	SELECT tn.* INTO t FROM tenants tn JOIN cases k ON k.tenant_id = tn.id
		WHERE k.id = c.case_id;
	IF t.id IS NULL OR bv_tenant_open_at(t.id, p_at) OR NOT EXISTS (
		SELECT 1 FROM case_roster WHERE case_id = c.case_id AND account_id = p_sender
			AND NOT bv_role_is_staff(role)) THEN
		RETURN 0;
	END IF;
	-- Only now the row lock: two sends at night must not both notify.
	SELECT * INTO c FROM conversations WHERE id = p_conversation FOR UPDATE;
	IF c.last_notice_at IS NOT NULL
	   AND NOT bv_tenant_open_between(t.id, c.last_notice_at, p_at) THEN
		RETURN 0;
	END IF;
	UPDATE conversations SET last_notice_at = p_at WHERE id = c.id;
	body := jsonb_build_object('kind', 'out_of_hours', 'conversation', c.id,
		'message_id', 'oh-' || p_ts, 'timestamp', p_ts, 'municipality', t.name,
		'phone', t.out_of_hours_phone, 'emergency_phone', '116 111');
	-- sender_device 0 marks relay content (devices are numbered from 1);
	-- sender_account is the tenant.
	WITH ins AS (
		INSERT INTO queue (device, sender_account, sender_device, message_id, type, ts,
				   body, conversation)
		SELECT d.id, t.id, 0, 'oh-' || p_ts, 0, p_ts,
		       convert_to(body::text, 'UTF8'), c.id
		FROM devices d
		WHERE d.account_id IN (SELECT r FROM bv_conversation_recipients(c.id, p_sender) r)
		RETURNING device)
	SELECT count(*), string_agg(device::text, ',') INTO n, devs FROM ins;
	IF n > 0 THEN
		PERFORM pg_notify('bv_deliver', devs);
	END IF;
	RETURN n;
END;
$$;

-- ------------------------------------------------------------------ what a viewer may see

-- A person of a case as a viewer may see them: {account, role, name}; the archive has role
-- "archive" and no name. Staff and archive viewers also get protected_from (skjerming).
CREATE FUNCTION bv_person_view(p_case uuid, p_account uuid, p_staff_view boolean)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
	SELECT CASE
		WHEN r.account_id IS NOT NULL THEN
			jsonb_build_object('account', r.account_id, 'role', r.role,
					   'name', r.display_name)
			|| CASE WHEN p_staff_view THEN jsonb_build_object('protected_from',
				(SELECT coalesce(jsonb_agg(x.from_id ORDER BY x.from_id), '[]')
				 FROM case_protections x
				 WHERE x.case_id = p_case AND x.protected_id = r.account_id))
			   ELSE '{}' END
		ELSE jsonb_build_object('account', p_account, 'role', 'archive', 'name', NULL)
	END
	FROM (SELECT p_case AS case_id, p_account AS account_id) q
	LEFT JOIN case_roster r USING (case_id, account_id)
$$;

-- Ordering of people in views: citizens by role, then staff, then the archive.
CREATE FUNCTION bv_role_rank(p_role text) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
	SELECT coalesce(array_position(ARRAY['child', 'parent', 'foster_parent', 'guardian',
		'supervisor', 'support_contact', 'caseworker', 'team_lead', 'service_leader',
		'archive'], p_role), 99)
$$;

-- The members of a conversation as p_viewer may see them: its participants still on the
-- case (and the archive), never anyone protected from p_viewer.
CREATE FUNCTION bv_conversation_view(p_conversation uuid, p_viewer uuid, p_staff_view boolean)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
	WITH c AS (SELECT c.id, c.case_id, k.tenant_id FROM conversations c
		   JOIN cases k ON k.id = c.case_id WHERE c.id = p_conversation),
	p AS (SELECT m.account_id AS account FROM conversation_members m, c
	      WHERE m.conversation_id = c.id
		AND EXISTS (SELECT 1 FROM case_roster r WHERE r.case_id = c.case_id
			    AND r.account_id = m.account_id)
	      UNION
	      SELECT r.account_id FROM case_roster r, c
	      WHERE r.case_id = c.case_id AND bv_role_is_staff(r.role)
	      UNION
	      SELECT a.id FROM accounts a, c WHERE a.tenant_id = c.tenant_id AND a.kind = 'archive')
	SELECT jsonb_build_object('conversation', c.id, 'kind', cv.kind,
		'closed', cv.closed_at IS NOT NULL,
		'created', (extract(epoch FROM cv.created_at) * 1000)::bigint,
		'members', (SELECT coalesce(jsonb_agg(v ORDER BY bv_role_rank(v->>'role'),
						       v->>'name', v->>'account'), '[]')
			    FROM (SELECT bv_person_view(c.case_id, p.account, p_staff_view) AS v
				  FROM p
				  WHERE NOT EXISTS (SELECT 1 FROM case_protections x
						    WHERE x.case_id = c.case_id
						      AND x.protected_id = p.account
						      AND x.from_id = p_viewer)) m))
	FROM c JOIN conversations cv ON cv.id = c.id
$$;

-- The `cases` answer for p_viewer (docs/protocol.md): at most 100 cases after p_after (or
-- just p_case), ordered by id, with `more`.
CREATE FUNCTION bv_cases_view(p_viewer uuid, p_case uuid, p_after uuid) RETURNS jsonb
LANGUAGE sql STABLE AS $$
	WITH v AS (SELECT id, tenant_id, kind FROM accounts WHERE id = p_viewer),
	k AS (SELECT k.id, k.case_number, t.name AS municipality,
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
			'municipality', page.municipality, 'role', page.role,
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

-- ----------------------------------------------------- roster changes reach live connections

-- NOTIFY bv_roster "<case> <account>" for each account whose view of the case changed (the
-- relay sends it `cases_changed`); PostgreSQL folds identical notifications of one
-- transaction into one. p_everyone: everybody on the case; else staff. Archive accounts always,
-- and p_also.
CREATE FUNCTION bv_tell_case(p_case uuid, p_everyone boolean, p_also uuid[]) RETURNS void
LANGUAGE sql AS $$
	SELECT pg_notify('bv_roster', p_case || ' ' || a)
	FROM (SELECT account_id AS a FROM case_roster
	      WHERE case_id = p_case AND (p_everyone OR bv_role_is_staff(role))
	      UNION
	      SELECT x.id FROM accounts x JOIN cases k ON k.tenant_id = x.tenant_id
	      WHERE k.id = p_case AND x.kind = 'archive'
	      UNION
	      SELECT unnest(p_also)) q
$$;

-- Someone joined or left a case. Leaving takes effect at once: under the case's lock, what
-- was still queued for their devices in the case's conversations is dropped.
CREATE FUNCTION bv_roster_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	r case_roster%ROWTYPE;
BEGIN
	IF TG_OP = 'DELETE' THEN
		r := OLD;
	ELSE
		r := NEW;
	END IF;
	PERFORM bv_case_lock(r.case_id, false);
	IF TG_OP = 'DELETE' THEN
		DELETE FROM queue q USING devices d
		WHERE d.account_id = r.account_id AND q.device = d.id
		  AND q.conversation IN (SELECT id FROM conversations WHERE case_id = r.case_id);
	END IF;
	PERFORM bv_tell_case(r.case_id, bv_role_is_staff(r.role), ARRAY[r.account_id]);
	RETURN NULL;
END;
$$;
CREATE TRIGGER case_roster_changed AFTER INSERT OR DELETE ON case_roster
	FOR EACH ROW EXECUTE FUNCTION bv_roster_changed();

-- A protection: under the case's lock, nothing still queued between the two in the
-- conversations it closes is delivered; staff and the archive are told (members of those
-- conversations learn of the closing from conversation_changed).
CREATE FUNCTION bv_protection_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM bv_case_lock(NEW.case_id, false);
	DELETE FROM queue q USING devices d
	WHERE q.device = d.id
	  AND ((d.account_id = NEW.from_id AND q.sender_account = NEW.protected_id)
	       OR (d.account_id = NEW.protected_id AND q.sender_account = NEW.from_id))
	  AND q.conversation IN (
		SELECT c.id FROM conversations c WHERE c.case_id = NEW.case_id AND c.kind = 'citizens'
		  AND EXISTS (SELECT 1 FROM conversation_members m WHERE m.conversation_id = c.id
			      AND m.account_id = NEW.protected_id)
		  AND EXISTS (SELECT 1 FROM conversation_members m WHERE m.conversation_id = c.id
			      AND m.account_id = NEW.from_id));
	PERFORM bv_tell_case(NEW.case_id, false, '{}');
	RETURN NULL;
END;
$$;
CREATE TRIGGER case_protections_changed AFTER INSERT ON case_protections
	FOR EACH ROW EXECUTE FUNCTION bv_protection_changed();

-- A conversation was closed, or got a member: its members, staff and the archive are told.
CREATE FUNCTION bv_conversation_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	conv uuid;
	k uuid;
BEGIN
	IF TG_TABLE_NAME = 'conversations' THEN
		conv := NEW.id;
		k := NEW.case_id;
	ELSE
		conv := NEW.conversation_id;
		SELECT case_id INTO k FROM conversations WHERE id = conv;
	END IF;
	PERFORM bv_tell_case(k, false, ARRAY(SELECT account_id FROM conversation_members
					     WHERE conversation_id = conv));
	RETURN NULL;
END;
$$;
CREATE TRIGGER conversations_closed AFTER UPDATE OF closed_at ON conversations
	FOR EACH ROW WHEN (OLD.closed_at IS NULL AND NEW.closed_at IS NOT NULL)
	EXECUTE FUNCTION bv_conversation_changed();
CREATE TRIGGER conversation_members_added AFTER INSERT ON conversation_members
	FOR EACH ROW EXECUTE FUNCTION bv_conversation_changed();
