-- SPDX-License-Identifier: GPL-3.0-or-later
-- 0008: encrypted attachments (issue 7; docs/protocol.md "Attachments"). A device announces a
-- blob with the blob_create op, uploads its ciphertext with PUT /v1/blobs/<id> and the recipients
-- fetch it with GET; the archive device marks it journaled (blobs_journaled), and it is deleted
-- blob_retention_days after that. Blobs live here, not on a relay's disk, so that any relay of
-- the database serves any blob (ARCHITECTURE decision 5).
--
-- The relay sees only ciphertext: the key travels inside the end-to-end message. Neither
-- capability is stored: upload_hash and download_hash are SHA-256 of 32 random bytes, which need
-- no key (a dump gives nobody a capability). Errors: BV030 the sender may not send to the
-- conversation (bv_send_accounts), BV038 the tenant's quota would be exceeded.

ALTER TABLE tenants
	-- Bytes of blobs (pending ones included) a tenant may hold at once: BV_EQUOTA beyond.
	ADD COLUMN blob_quota_bytes bigint NOT NULL DEFAULT 21474836480
		CHECK (blob_quota_bytes >= 0),
	-- Days a journaled blob is kept: the archive holds the document from then on.
	ADD COLUMN blob_retention_days integer NOT NULL DEFAULT 30
		CHECK (blob_retention_days BETWEEN 0 AND 36500);

CREATE TABLE blobs (
	id		uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	tenant_id	uuid NOT NULL REFERENCES tenants(id),
	conversation_id	uuid NOT NULL REFERENCES conversations(id),
	-- devices.id of the uploader. No foreign key: a device may be replaced while the blobs it
	-- sent must stay until they are journaled.
	device		bigint NOT NULL,
	size		bigint NOT NULL CHECK (size > 0),
	sha256		bytea NOT NULL CHECK (length(sha256) = 32),
	-- NULL once an upload has started: the capability is good for one attempt, so two uploads
	-- can never write the same blob and a failed one cannot be resumed into a mixture.
	upload_hash	bytea UNIQUE CHECK (length(upload_hash) = 32),
	download_hash	bytea NOT NULL UNIQUE CHECK (length(download_hash) = 32),
	state		text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'complete')),
	created_at	timestamptz NOT NULL DEFAULT now(),
	-- The upload must be complete by then; a pending blob after it is swept.
	expires_at	timestamptz NOT NULL,
	-- While an upload runs, the relay receiving it moves this forward (a heartbeat). A pending
	-- blob whose alive_until passed lost its relay (killed mid-upload) and is swept at once,
	-- rather than holding quota until expires_at.
	alive_until	timestamptz,
	completed_at	timestamptz,
	journaled_at	timestamptz,
	delete_after	timestamptz,
	CHECK ((state = 'complete') = (completed_at IS NOT NULL)),
	CHECK (state = 'pending' OR upload_hash IS NULL),
	CHECK ((journaled_at IS NULL) = (delete_after IS NULL)),
	CHECK (journaled_at IS NULL OR state = 'complete')
);
-- The quota's sum (index-only with the size), and the sweep's two look-ups.
CREATE INDEX blobs_tenant ON blobs (tenant_id) INCLUDE (size);
CREATE INDEX blobs_pending ON blobs (expires_at) WHERE state = 'pending';
CREATE INDEX blobs_alive ON blobs (alive_until) WHERE state = 'pending';
CREATE INDEX blobs_delete_after ON blobs (delete_after) WHERE delete_after IS NOT NULL;

-- The ciphertext in pieces of at most 256 KiB, numbered from 0; every piece but the last is
-- full, so piece n starts at n * 262144. Deleting the blob deletes them.
CREATE TABLE blob_chunks (
	blob_id		uuid NOT NULL REFERENCES blobs(id) ON DELETE CASCADE,
	n		integer NOT NULL CHECK (n >= 0),
	data		bytea NOT NULL CHECK (length(data) BETWEEN 1 AND 262144),
	PRIMARY KEY (blob_id, n)
);
-- Ciphertext does not compress: storing it out of line uncompressed saves the attempt.
ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

-- A new pending blob of p_size bytes in p_conversation, announced by p_device of p_account (of
-- p_tenant), its upload due in p_ttl_s seconds. BV030 when p_account may not send to the
-- conversation (the rule of send), BV038 when the tenant's blobs and this one would exceed its
-- quota. The tenant's row is locked so that two announcements cannot both squeeze under it; run
-- it in a transaction of its own (not a group commit's), so locks of several tenants are never
-- held at once. Returns the blob's id and expiry (ms since the epoch).
CREATE FUNCTION bv_blob_create(p_tenant uuid, p_account uuid, p_device bigint,
			       p_conversation uuid, p_size bigint, p_sha256 bytea,
			       p_upload_hash bytea, p_download_hash bytea, p_ttl_s integer,
			       OUT blob uuid, OUT expires bigint)
LANGUAGE plpgsql AS $$
DECLARE
	quota bigint;
	used bigint;
	e timestamptz;
BEGIN
	PERFORM 1 FROM conversations c JOIN cases k ON k.id = c.case_id
		WHERE c.id = p_conversation AND k.tenant_id = p_tenant;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'no such conversation' USING ERRCODE = 'BV030';
	END IF;
	-- Raises BV030 itself when the sender may not send there.
	PERFORM 1 FROM bv_send_accounts(p_conversation, p_account) LIMIT 1;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'may not send' USING ERRCODE = 'BV030';
	END IF;
	SELECT blob_quota_bytes INTO quota FROM tenants WHERE id = p_tenant FOR UPDATE;
	SELECT coalesce(sum(size), 0) INTO used FROM blobs WHERE tenant_id = p_tenant;
	IF quota IS NULL OR used + p_size > quota THEN
		RAISE EXCEPTION 'attachment quota' USING ERRCODE = 'BV038';
	END IF;
	e := now() + make_interval(secs => p_ttl_s);
	INSERT INTO blobs (tenant_id, conversation_id, device, size, sha256, upload_hash,
			   download_hash, expires_at)
		VALUES (p_tenant, p_conversation, p_device, p_size, p_sha256, p_upload_hash,
			p_download_hash, e)
		RETURNING id INTO blob;
	expires := floor(extract(epoch FROM e) * 1000)::bigint;
END;
$$;

-- The operator's settings of a tenant's attachments (`admin tenant-blobs`); NULL keeps a value.
-- A lower quota deletes nothing: new announcements are refused until enough is deleted.
-- Appends tenant.update with the transaction's actor.
CREATE FUNCTION bv_tenant_blobs_set(p_tenant uuid, p_quota_bytes bigint, p_retention_days integer)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	UPDATE tenants SET
		blob_quota_bytes = coalesce(p_quota_bytes, blob_quota_bytes),
		blob_retention_days = coalesce(p_retention_days, blob_retention_days)
	WHERE id = p_tenant;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'no such tenant' USING ERRCODE = 'BV030';
	END IF;
	PERFORM bv_audit_append(p_tenant, 'tenant.update', p_tenant::text,
		jsonb_strip_nulls(jsonb_build_object('blob_quota_bytes', p_quota_bytes,
			'blob_retention_days', p_retention_days)));
END;
$$;
