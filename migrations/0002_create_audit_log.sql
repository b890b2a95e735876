-- SPDX-License-Identifier: GPL-3.0-or-later
-- 0002: the audit log (DOMAIN.md rule 10): an append-only, hash-chained record of enrollments,
-- reinstalls and device removals here, and of roster changes and exports in later migrations,
-- which append with bv_audit_append(). `bvchat-relay audit verify` recomputes the chain.
-- Nothing in it is secret: ids, actions and small JSON details; never plaintext, keys or tokens.

-- seq runs 1, 2, 3, … without gaps (assigned under a lock, not by a sequence, so a rolled-back
-- append leaves no hole and a deleted entry always shows as one). tenant_id NULL: relay-wide.
-- No foreign key to tenants: the log outlives what it names.
CREATE TABLE audit_log (
	seq		bigint PRIMARY KEY CHECK (seq > 0),
	at		timestamptz NOT NULL,
	tenant_id	uuid,
	actor		text NOT NULL CHECK (octet_length(actor) BETWEEN 1 AND 200),
	action		text NOT NULL CHECK (action ~ '^[a-z][a-z0-9_.-]{0,63}$'),
	subject		text CHECK (octet_length(subject) <= 500),
	detail		jsonb CHECK (octet_length(detail::text) <= 8192),
	prev_hash	bytea NOT NULL CHECK (length(prev_hash) = 32),
	hash		bytea NOT NULL CHECK (length(hash) = 32)
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, seq);

-- One field of the canonical encoding: a 4-byte big-endian length and the bytes, or ff ff ff ff
-- for NULL (as PostgreSQL's own wire protocol does), so no two field lists encode alike.
CREATE FUNCTION bv_audit_field(p bytea) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT CASE WHEN p IS NULL THEN '\xffffffff'::bytea
		ELSE int4send(length(p)) || p END
$$;

-- The hash of an entry: SHA-256 over
--   "bvchat-audit-v1" (15 bytes)
--   seq                       8 bytes, big-endian
--   at                        8 bytes, big-endian: microseconds since 1970-01-01 00:00 UTC
--   tenant_id                 field: its 16 bytes, or NULL
--   actor, action, subject    field each: UTF-8 bytes, or NULL
--   detail                    field: UTF-8 bytes of detail::text (jsonb's text form is
--                             canonical: keys sorted, duplicates gone, fixed spacing), or NULL
--   prev_hash                 32 bytes
-- relay/audit.c computes the same in C; tests pin one vector on both sides.
CREATE FUNCTION bv_audit_hash(p_seq bigint, p_at timestamptz, p_tenant uuid, p_actor text,
			      p_action text, p_subject text, p_detail jsonb, p_prev bytea)
RETURNS bytea LANGUAGE sql STABLE PARALLEL SAFE AS $$
	SELECT sha256('bvchat-audit-v1'::bytea
		|| int8send(p_seq)
		|| int8send((extract(epoch FROM p_at) * 1000000)::bigint)
		|| bv_audit_field(uuid_send(p_tenant))
		|| bv_audit_field(convert_to(p_actor, 'UTF8'))
		|| bv_audit_field(convert_to(p_action, 'UTF8'))
		|| bv_audit_field(convert_to(p_subject, 'UTF8'))
		|| bv_audit_field(convert_to(p_detail::text, 'UTF8'))
		|| p_prev)
$$;

-- Chains every new row, whoever inserts it and whatever it says: seq, at, actor, prev_hash and
-- hash are always set here, so a plain INSERT cannot forge a link. Appends are serialised by a
-- transaction-level advisory lock on one fixed key ("bvchatau" as a big-endian 64-bit number):
-- the next appender, on any relay, waits until this transaction commits or rolls back and then
-- reads the newest row, so the chain never forks and seq has no gaps. The cost: transactions
-- that append are serialised from their append to their COMMIT; append last in a transaction.
-- In REPEATABLE READ or SERIALIZABLE the waiter's snapshot may predate the row it waited for;
-- the primary key then refuses the duplicate seq (the transaction fails, the chain stays whole).
-- at is clock_timestamp() taken under the lock, so it follows seq unless the clock steps back.
CREATE FUNCTION bv_audit_chain() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	last_seq bigint;
	last_hash bytea;
BEGIN
	PERFORM pg_advisory_xact_lock(7094967562931560821);
	SELECT a.seq, a.hash INTO last_seq, last_hash FROM audit_log a
		ORDER BY a.seq DESC LIMIT 1;
	IF NOT FOUND THEN
		last_seq := 0;
		last_hash := decode(repeat('00', 32), 'hex');
	END IF;
	NEW.seq := last_seq + 1;
	NEW.at := clock_timestamp();
	NEW.actor := coalesce(nullif(current_setting('bvchat.actor', true), ''), 'system');
	NEW.prev_hash := last_hash;
	NEW.hash := bv_audit_hash(NEW.seq, NEW.at, NEW.tenant_id, NEW.actor, NEW.action,
				  NEW.subject, NEW.detail, NEW.prev_hash);
	RETURN NEW;
END
$$;
CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log
	FOR EACH ROW EXECUTE FUNCTION bv_audit_chain();

-- Append-only. Statement-level, so even a DELETE that matches nothing is refused. The table's
-- owner and superusers can still disable these triggers (ALTER TABLE … DISABLE TRIGGER,
-- session_replication_role): that is what `bvchat-relay audit verify` is for.
CREATE FUNCTION bv_audit_refuse() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
		USING ERRCODE = 'BV040';
END
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
	FOR EACH STATEMENT EXECUTE FUNCTION bv_audit_refuse();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
	FOR EACH STATEMENT EXECUTE FUNCTION bv_audit_refuse();
-- Also the privileges, for roles that are neither owner nor superuser; the owner keeps INSERT
-- and SELECT (the chaining trigger makes a plain INSERT safe) and could grant itself the rest
-- back, which the triggers and verify still stand behind.
REVOKE ALL ON audit_log FROM PUBLIC;
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM CURRENT_USER;

-- The interface for every other part of the schema: appends one entry in the caller's
-- transaction and returns its seq. The actor is the transaction's
-- set_config('bvchat.actor', …, true), 'system' when unset or empty.
CREATE FUNCTION bv_audit_append(p_tenant uuid, p_action text, p_subject text, p_detail jsonb)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	s bigint;
BEGIN
	INSERT INTO audit_log (tenant_id, action, subject, detail)
		VALUES (p_tenant, p_action, p_subject, p_detail)
		RETURNING seq INTO s;
	RETURN s;
END
$$;

-- Devices are audited by a trigger rather than by rewriting bv_enroll(): every path that adds,
-- re-keys or removes a device is covered (bv_enroll, later admin commands, an operator's SQL),
-- and 0001's functions stay as they are. An UPDATE that changes the keys or the registration id
-- is a reinstall (bv_enroll with a device to replace); other UPDATEs are not audited. The keys
-- themselves stay out of the log: identity_changed says only whether the identity key changed.
-- bv_enroll's failure paths never touch devices, so only successful enrollments are logged.
CREATE FUNCTION bv_audit_devices() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	t uuid;
	r devices;
BEGIN
	IF TG_OP = 'DELETE' THEN
		r := OLD;
	ELSE
		r := NEW;
	END IF;
	SELECT a.tenant_id INTO t FROM accounts a WHERE a.id = r.account_id;
	IF TG_OP = 'INSERT' THEN
		PERFORM bv_audit_append(t, 'device.enroll', r.account_id || '/' || r.device_id,
			jsonb_build_object('account', r.account_id, 'device', r.device_id));
	ELSIF TG_OP = 'DELETE' THEN
		PERFORM bv_audit_append(t, 'device.remove', r.account_id || '/' || r.device_id,
			jsonb_build_object('account', r.account_id, 'device', r.device_id));
	ELSIF NEW.identity_key IS DISTINCT FROM OLD.identity_key
	   OR NEW.auth_key IS DISTINCT FROM OLD.auth_key
	   OR NEW.registration_id IS DISTINCT FROM OLD.registration_id THEN
		PERFORM bv_audit_append(t, 'device.reinstall', r.account_id || '/' || r.device_id,
			jsonb_build_object('account', r.account_id, 'device', r.device_id,
				'identity_changed',
				NEW.identity_key IS DISTINCT FROM OLD.identity_key));
	END IF;
	RETURN NULL;
END
$$;
CREATE TRIGGER devices_audit AFTER INSERT OR UPDATE OR DELETE ON devices
	FOR EACH ROW EXECUTE FUNCTION bv_audit_devices();
