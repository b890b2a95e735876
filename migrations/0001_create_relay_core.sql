-- SPDX-License-Identifier: GPL-3.0-or-later
-- 0001: tenants, accounts, devices, prekeys, per-device queues and enrollment tokens.
-- Applied by `bvchat-relay --migrate` in one transaction; recorded in schema_migrations.
-- Nothing here holds plaintext: queue.body is an end-to-end encrypted envelope.

CREATE TABLE tenants (
	id		uuid PRIMARY KEY,
	name		text NOT NULL,
	org_number	text,
	token_key	bytea NOT NULL CHECK (length(token_key) = 32),	-- Ed25519 public key
	created_at	timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE accounts (
	id		uuid PRIMARY KEY,
	tenant_id	uuid NOT NULL REFERENCES tenants(id),
	created_at	timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX accounts_tenant ON accounts(tenant_id);

-- id is the relay-internal handle of a device (queues, notifications); (account_id, device_id)
-- is its name on the wire.
CREATE TABLE devices (
	id		bigserial PRIMARY KEY,
	account_id	uuid NOT NULL REFERENCES accounts(id),
	device_id	integer NOT NULL CHECK (device_id > 0),
	registration_id	integer NOT NULL CHECK (registration_id > 0),
	identity_key	bytea NOT NULL CHECK (length(identity_key) = 33),
	auth_key	bytea NOT NULL UNIQUE CHECK (length(auth_key) = 32),
	created_at	timestamptz NOT NULL DEFAULT now(),
	UNIQUE (account_id, device_id)
);

CREATE TABLE signed_prekeys (
	device		bigint PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
	key_id		integer NOT NULL,
	public_key	bytea NOT NULL CHECK (length(public_key) = 33),
	signature	bytea NOT NULL CHECK (length(signature) = 64)
);

CREATE TABLE one_time_prekeys (
	device		bigint NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
	key_id		integer NOT NULL,
	public_key	bytea NOT NULL CHECK (length(public_key) = 33),
	PRIMARY KEY (device, key_id)
);

-- One queue per device, ordered by seq. A row is deleted when the device acknowledges it.
-- No foreign key: the send path checks the device in bv_check_send() and replacing a device
-- clears its queue in the same transaction; this keeps inserts cheap.
CREATE SEQUENCE queue_seq;
CREATE TABLE queue (
	device		bigint NOT NULL,
	seq		bigint NOT NULL DEFAULT nextval('queue_seq'),
	sender_account	uuid NOT NULL,
	sender_device	integer NOT NULL,
	message_id	text NOT NULL,
	type		smallint NOT NULL,
	ts		bigint NOT NULL,
	body		bytea NOT NULL,
	PRIMARY KEY (device, seq)
);

CREATE TABLE enrollment_tokens_used (
	jti		bytea PRIMARY KEY,
	tenant_id	uuid NOT NULL,
	expires_at	timestamptz NOT NULL,
	used_at		timestamptz NOT NULL DEFAULT now()
);

-- Checks a send before its envelopes are inserted in the same transaction, against what the
-- relay's device cache promised: each addressed device exists with that registration id, and
-- each account has exactly p_counts[i] devices (so none was added since the cache was read).
-- Raises SQLSTATE BV032 when not (the relay then re-reads the devices and compares again) and
-- BV033 when a queue holds p_max_queue rows. Counting stops at p_max_queue, so the cost is
-- bounded by the queue length.
CREATE FUNCTION bv_check_send(p_devices bigint[], p_regids integer[], p_max_queue integer,
			      p_accounts uuid[], p_counts integer[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	i integer;
	n integer;
BEGIN
	FOR i IN 1 .. coalesce(array_length(p_accounts, 1), 0) LOOP
		SELECT count(*) INTO n FROM devices WHERE account_id = p_accounts[i];
		IF n <> p_counts[i] THEN
			RAISE EXCEPTION 'device list changed' USING ERRCODE = 'BV032';
		END IF;
	END LOOP;
	FOR i IN 1 .. coalesce(array_length(p_devices, 1), 0) LOOP
		PERFORM 1 FROM devices WHERE id = p_devices[i]
			AND registration_id = p_regids[i];
		IF NOT FOUND THEN
			RAISE EXCEPTION 'stale device' USING ERRCODE = 'BV032';
		END IF;
		SELECT count(*) INTO n FROM (SELECT 1 FROM queue
			WHERE device = p_devices[i] LIMIT p_max_queue) q;
		IF n >= p_max_queue THEN
			RAISE EXCEPTION 'queue full' USING ERRCODE = 'BV033';
		END IF;
	END LOOP;
END
$$;

-- Enrolls a device with a verified token. Returns status 0 and the device, or a negative
-- bvchat error code with nothing changed: -25 token used, -23 token names an account outside
-- its tenant or a device to replace that does not exist, -26 too many devices.
CREATE FUNCTION bv_enroll(p_tenant uuid, p_account uuid, p_jti bytea, p_exp bigint,
			  p_regid integer, p_identity bytea, p_auth bytea,
			  p_replaces integer, p_max_devices integer,
			  OUT status integer, OUT account uuid, OUT device_id integer,
			  OUT device bigint)
LANGUAGE plpgsql AS $$
DECLARE
	n integer;
BEGIN
	status := 0;
	INSERT INTO enrollment_tokens_used (jti, tenant_id, expires_at)
		VALUES (p_jti, p_tenant, to_timestamp(p_exp))
		ON CONFLICT DO NOTHING;
	IF NOT FOUND THEN
		status := -25;
		RETURN;
	END IF;
	IF p_account IS NULL THEN
		account := gen_random_uuid();
		INSERT INTO accounts (id, tenant_id) VALUES (account, p_tenant);
	ELSE
		account := p_account;
		PERFORM 1 FROM accounts a WHERE a.id = p_account
			AND a.tenant_id = p_tenant FOR UPDATE;
		IF NOT FOUND THEN
			status := -23;
		END IF;
	END IF;
	IF status = 0 AND p_replaces > 0 THEN
		SELECT d.id INTO device FROM devices d
			WHERE d.account_id = account AND d.device_id = p_replaces;
		IF NOT FOUND THEN
			status := -23;
		ELSE
			DELETE FROM queue q WHERE q.device = bv_enroll.device;
			DELETE FROM signed_prekeys s WHERE s.device = bv_enroll.device;
			DELETE FROM one_time_prekeys o WHERE o.device = bv_enroll.device;
			UPDATE devices d SET registration_id = p_regid,
				identity_key = p_identity, auth_key = p_auth,
				created_at = now()
				WHERE d.id = bv_enroll.device;
			device_id := p_replaces;
		END IF;
	ELSIF status = 0 THEN
		SELECT count(*), coalesce(max(d.device_id), 0) + 1
			INTO n, device_id FROM devices d
			WHERE d.account_id = account;
		IF n >= p_max_devices THEN
			status := -26;
		ELSE
			INSERT INTO devices (account_id, device_id,
				registration_id, identity_key, auth_key)
				VALUES (account, device_id, p_regid, p_identity,
					p_auth)
				RETURNING id INTO device;
		END IF;
	END IF;
	IF status <> 0 THEN
		DELETE FROM enrollment_tokens_used WHERE jti = p_jti;
		IF p_account IS NULL THEN
			DELETE FROM accounts a WHERE a.id = account;
		END IF;
		account := NULL;
		device_id := NULL;
		device := NULL;
		RETURN;
	END IF;
	PERFORM pg_notify('bv_devices', account::text);
END
$$;

-- Hands out a prekey bundle for each named device (one-time prekeys exactly once: the row is
-- deleted under FOR UPDATE SKIP LOCKED, so two concurrent fetches never get the same key).
-- left_count is the device's remaining one-time stock. If any named device has no signed
-- prekey, every row comes back and none of the one-time prekeys is taken (the relay answers
-- BV_ENOKEYS and nothing is used up).
CREATE FUNCTION bv_take_bundles(p_devices bigint[])
RETURNS TABLE (device bigint, device_id integer, registration_id integer,
	       identity_key bytea, spk_id integer, spk_key bytea,
	       spk_signature bytea, otpk_id integer, otpk_key bytea,
	       left_count integer)
LANGUAGE plpgsql AS $$
DECLARE
	i integer;
	take boolean;
BEGIN
	take := NOT EXISTS (SELECT 1 FROM unnest(p_devices) AS u(id)
		LEFT JOIN signed_prekeys s ON s.device = u.id
		WHERE s.device IS NULL);
	FOR i IN 1 .. coalesce(array_length(p_devices, 1), 0) LOOP
		device := p_devices[i];
		SELECT d.device_id, d.registration_id, d.identity_key,
		       s.key_id, s.public_key, s.signature
			INTO device_id, registration_id, identity_key,
			     spk_id, spk_key, spk_signature
			FROM devices d LEFT JOIN signed_prekeys s
				ON s.device = d.id
			WHERE d.id = p_devices[i];
		IF NOT FOUND THEN
			CONTINUE;
		END IF;
		otpk_id := NULL;
		otpk_key := NULL;
		IF take THEN
			DELETE FROM one_time_prekeys o
				WHERE (o.device, o.key_id) = (
					SELECT o2.device, o2.key_id
					FROM one_time_prekeys o2
					WHERE o2.device = p_devices[i]
					ORDER BY o2.key_id LIMIT 1
					FOR UPDATE SKIP LOCKED)
				RETURNING o.key_id, o.public_key
				INTO otpk_id, otpk_key;
		END IF;
		SELECT count(*) INTO left_count FROM one_time_prekeys o
			WHERE o.device = p_devices[i];
		RETURN NEXT;
	END LOOP;
END
$$;

-- Stores one-time prekeys; ids the device already has are ignored. Raises SQLSTATE BV036 when
-- the stock would exceed p_max (so the whole upload, signed prekey included, rolls back).
-- Returns the stock afterwards.
CREATE FUNCTION bv_put_prekeys(p_device bigint, p_ids integer[], p_keys bytea[], p_max integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
	n integer;
BEGIN
	INSERT INTO one_time_prekeys (device, key_id, public_key)
		SELECT p_device, k, p FROM unnest(p_ids, p_keys) AS u(k, p)
		ON CONFLICT DO NOTHING;
	SELECT count(*) INTO n FROM one_time_prekeys WHERE device = p_device;
	IF n > p_max THEN
		RAISE EXCEPTION 'prekey stock above limit' USING ERRCODE = 'BV036';
	END IF;
	RETURN n;
END
$$;
