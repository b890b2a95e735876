-- SPDX-License-Identifier: GPL-3.0-or-later
-- 0007: invite codes for people without eID (issue 6; ARCHITECTURE decision 8, DOMAIN rule 4). A
-- caseworker's fagsystem (POST /v1/fagsystem/invites) or an operator (`admin invite`) asks for a
-- short single-use code for an existing citizen account; the person types it into the widget,
-- which redeems it (POST /v1/invites/redeem) for an enrollment ticket and enrolls a device with
-- the ticket through the ordinary enroll op (docs/protocol.md, "Invites").
--
-- Neither the code nor the ticket is stored. code_hash is HMAC-SHA-256 of the code under the
-- relays' invite key, which is a file on the relays' hosts and never in the database: a code has
-- only 50 bits, and a dump searched with a plain hash would give up every live code in about a
-- day of one GPU. ticket_hash is SHA-256 of the ticket's 256 random bits, which need no key.
-- Errors: BV030 not found or not allowed (one code for a missing account, another tenant's, an
-- archive and a staff member), BV002 a lifetime out of range. Redemption and enrollment return
-- a status instead of raising, so that what they count and record survives a refusal.

CREATE TABLE invites (
	id			uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	tenant_id		uuid NOT NULL REFERENCES tenants(id),
	account_id		uuid NOT NULL REFERENCES accounts(id),
	code_hash		bytea NOT NULL UNIQUE CHECK (length(code_hash) = 32),
	created_at		timestamptz NOT NULL DEFAULT now(),
	expires_at		timestamptz NOT NULL,
	-- Redeemed: the code is used up, the ticket handed out, in one statement.
	used_at			timestamptz,
	-- Redemption requests that named this code, the successful one included: more than one
	-- after used_at means the code was typed again (by its owner, or by someone who saw it).
	attempts		integer NOT NULL DEFAULT 0,
	ticket_hash		bytea UNIQUE CHECK (length(ticket_hash) = 32),
	ticket_expires_at	timestamptz,
	CHECK (expires_at > created_at),
	CHECK ((used_at IS NULL) = (ticket_hash IS NULL)),
	CHECK ((ticket_hash IS NULL) = (ticket_expires_at IS NULL))
);
CREATE INDEX invites_expiry ON invites (expires_at);
CREATE INDEX invites_account ON invites (account_id);

-- Whether an invite may be for p_account: a person account of p_tenant that holds no staff role
-- on any case. Staff enroll through the municipality's own login; a code handed over on paper
-- must not open a caseworker's account. Checked again at redemption and at enrollment, so an
-- account that became staff meanwhile is refused.
CREATE FUNCTION bv_invite_target(p_tenant uuid, p_account uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
	SELECT EXISTS (SELECT 1 FROM accounts a WHERE a.id = p_account
			AND a.tenant_id = p_tenant AND a.kind = 'person')
	   AND NOT EXISTS (SELECT 1 FROM case_roster r WHERE r.account_id = p_account
			AND bv_role_is_staff(r.role))
$$;

-- A new invite for p_account of p_tenant, its code given as p_code_hash, valid p_ttl_s seconds
-- (INVITE_TTL_MIN = 60 … p_max_ttl_s, the relay's invite_max_ttl_s). Returns its id and expiry
-- (unix seconds). Appends invite.create (the account as subject; the invite and its expiry as
-- detail, never the code) with the transaction's actor. Invites that expired 30 days ago go,
-- a few at a time, as new ones come.
CREATE FUNCTION bv_invite_create(p_tenant uuid, p_account uuid, p_code_hash bytea,
				 p_ttl_s integer, p_max_ttl_s integer,
				 OUT invite uuid, OUT expires bigint)
LANGUAGE plpgsql AS $$
DECLARE
	e timestamptz;
BEGIN
	IF p_ttl_s IS NULL OR p_ttl_s < 60 OR p_ttl_s > p_max_ttl_s THEN
		RAISE EXCEPTION 'lifetime out of range' USING ERRCODE = 'BV002';
	END IF;
	IF p_tenant IS NULL OR NOT bv_invite_target(p_tenant, p_account) THEN
		RAISE EXCEPTION 'no such account' USING ERRCODE = 'BV030';
	END IF;
	DELETE FROM invites WHERE id = ANY (ARRAY(SELECT i.id FROM invites i
		WHERE i.expires_at < now() - interval '30 days' ORDER BY i.expires_at LIMIT 100));
	e := now() + make_interval(secs => p_ttl_s);
	INSERT INTO invites (tenant_id, account_id, code_hash, expires_at)
		VALUES (p_tenant, p_account, p_code_hash, e) RETURNING id INTO invite;
	expires := floor(extract(epoch FROM e))::bigint;
	PERFORM bv_audit_append(p_tenant, 'invite.create', p_account::text,
		jsonb_build_object('invite', invite, 'expires', expires));
END;
$$;

-- Redeems the invite whose code hashes to p_code_hash: in this one statement the code is used
-- up and the ticket recorded (p_ticket_hash, valid p_ticket_ttl_s seconds), so a code hands out
-- one ticket, ever. Returns status 0 and the ticket's expiry (unix seconds), or status -28
-- (BV_EINVITE) for every refusal alike: no such code, used, expired, the account no longer one
-- an invite may be for. Every request naming an existing code counts in attempts, refused or
-- not. A redemption appends invite.redeem with the actor invite:<id>.
CREATE FUNCTION bv_invite_redeem(p_code_hash bytea, p_ticket_hash bytea, p_ticket_ttl_s integer,
				 OUT status integer, OUT ticket_expires bigint)
LANGUAGE plpgsql AS $$
DECLARE
	inv invites;
	e timestamptz := now() + make_interval(secs => p_ticket_ttl_s);
BEGIN
	status := -28;
	UPDATE invites i SET attempts = i.attempts + 1 WHERE i.code_hash = p_code_hash
		RETURNING * INTO inv;
	IF NOT FOUND OR inv.used_at IS NOT NULL OR inv.expires_at <= now()
	   OR NOT bv_invite_target(inv.tenant_id, inv.account_id) THEN
		RETURN;
	END IF;
	UPDATE invites i SET used_at = now(), ticket_hash = p_ticket_hash, ticket_expires_at = e
		WHERE i.id = inv.id;
	PERFORM set_config('bvchat.actor', 'invite:' || inv.id, true);
	PERFORM bv_audit_append(inv.tenant_id, 'invite.redeem', inv.account_id::text,
		jsonb_build_object('invite', inv.id));
	status := 0;
	ticket_expires := floor(extract(epoch FROM e))::bigint;
END;
$$;

-- Enrolls a device with a ticket (the enroll op with a "bvi1." token): bv_enroll() for the
-- invite's tenant and account, the ticket standing in for a token whose jti is the first 16
-- bytes of ticket_hash and whose expiry is the ticket's. So a ticket enrolls once, a failed
-- enrollment does not use it up, and "replaces" works as with a token. Returns bv_enroll()'s
-- status and device, and the tenant; -23 (BV_ETOKEN) for no such ticket or an account that is no
-- longer one an invite may be for, -24 (BV_ETOKEN_EXPIRED) for an expired one. The device is
-- audited by 0002's trigger with the actor invite:<id>.
CREATE FUNCTION bv_invite_enroll(p_ticket_hash bytea, p_regid integer, p_identity bytea,
				 p_auth bytea, p_replaces integer, p_max_devices integer,
				 OUT status integer, OUT account uuid, OUT device_id integer,
				 OUT device bigint, OUT tenant uuid)
LANGUAGE plpgsql AS $$
DECLARE
	inv invites;
	r record;
BEGIN
	SELECT * INTO inv FROM invites i WHERE i.ticket_hash = p_ticket_hash;
	IF NOT FOUND OR NOT bv_invite_target(inv.tenant_id, inv.account_id) THEN
		status := -23;
		RETURN;
	END IF;
	IF inv.ticket_expires_at <= now() THEN
		status := -24;
		RETURN;
	END IF;
	PERFORM set_config('bvchat.actor', 'invite:' || inv.id, true);
	SELECT * INTO r FROM bv_enroll(inv.tenant_id, inv.account_id,
		substring(p_ticket_hash FROM 1 FOR 16),
		floor(extract(epoch FROM inv.ticket_expires_at))::bigint, p_regid, p_identity,
		p_auth, p_replaces, p_max_devices);
	status := r.status;
	account := r.account;
	device_id := r.device_id;
	device := r.device;
	IF status = 0 THEN
		tenant := inv.tenant_id;
	END IF;
END;
$$;
