-- SPDX-License-Identifier: GPL-3.0-or-later
-- 0009: notifications that say nothing (docs/architecture.md decision 10, docs/operations.md
-- "Notifications"). The relay's send marks, in its own transaction, each person account that
-- got a message (notify_pending, one cheap insert that usually finds the row already there);
-- bvchat-notifier alone reads the queue to find what no device of the account has
-- acknowledged, and sends one neutral text per person per window through the chosen channel.
-- No message content, sender or conversation is ever stored here.

-- What a person chose (notify_set) and what the municipality registered (fagsystem API,
-- `admin notify-contact`): the phone number and e-mail address never come from a client.
CREATE TABLE notify_settings (
	account_id	uuid PRIMARY KEY REFERENCES accounts(id),
	-- NULL: not chosen; the first of webpush, sms, email that is set up is used.
	channel		text CHECK (channel IN ('webpush', 'sms', 'email', 'none')),
	language	text NOT NULL DEFAULT 'nb' CHECK (language IN ('nb', 'nn', 'en', 'se')),
	-- Whether the text may say that it is the child welfare service; by default it does not.
	mention_service	boolean NOT NULL DEFAULT false,
	phone		text CHECK (phone ~ '^\+?[0-9]{8,15}$'),
	email		text CHECK (length(email) <= 254
				    AND email ~ '^[A-Za-z0-9.!#$%&''*+/=?^_`{|}~-]+@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$'),
	webpush_endpoint text CHECK (length(webpush_endpoint) <= 1024),
	webpush_p256dh	bytea CHECK (length(webpush_p256dh) = 65),
	webpush_auth	bytea CHECK (length(webpush_auth) = 16),
	updated_at	timestamptz NOT NULL DEFAULT now(),
	CHECK ((webpush_endpoint IS NULL) = (webpush_p256dh IS NULL)
	       AND (webpush_endpoint IS NULL) = (webpush_auth IS NULL))
);

-- The municipality's rules, in its own time zone (tenants.time_zone). Quiet hours from
-- notify_quiet_start to notify_quiet_end (across midnight when start > end; none when equal):
-- a notification falling due then is sent when they end.
ALTER TABLE tenants
	ADD COLUMN notify_wait_minutes integer NOT NULL DEFAULT 15
		CHECK (notify_wait_minutes BETWEEN 0 AND 10080),
	ADD COLUMN notify_window_minutes integer NOT NULL DEFAULT 60
		CHECK (notify_window_minutes BETWEEN 0 AND 10080),
	ADD COLUMN notify_quiet_start time NOT NULL DEFAULT '22:00',
	ADD COLUMN notify_quiet_end time NOT NULL DEFAULT '07:00';

-- Texts per language and channel; tenant_id NULL holds the built-in defaults, a tenant's own
-- row wins. subject: the e-mail's Subject and the push title (NULL for SMS). Neither may
-- carry content or a sender: there is none to put in. {kommune} is replaced by the tenant's
-- name.
CREATE TABLE notify_templates (
	tenant_id	uuid REFERENCES tenants(id),
	language	text NOT NULL CHECK (language IN ('nb', 'nn', 'en', 'se')),
	channel		text NOT NULL CHECK (channel IN ('sms', 'email', 'webpush')),
	mention_service	boolean NOT NULL,
	subject		text CHECK (length(subject) BETWEEN 1 AND 200 AND subject !~ '[[:cntrl:]]'),
	body		text NOT NULL CHECK (length(body) BETWEEN 1 AND 1000),
	UNIQUE NULLS NOT DISTINCT (tenant_id, language, channel, mention_service)
);

INSERT INTO notify_templates (tenant_id, language, channel, mention_service, subject, body)
SELECT NULL, t.language, c.channel, t.mention_service,
       CASE WHEN c.channel = 'sms' THEN NULL ELSE t.subject END, t.body
FROM (VALUES
	('nb', false, 'Ny melding', 'Du har en ny melding. Logg inn for å lese den.'),
	('nn', false, 'Ny melding', 'Du har ei ny melding. Logg inn for å lese ho.'),
	('en', false, 'New message', 'You have a new message. Log in to read it.'),
	('se', false, 'Ođđa dieđáhus', 'Dus lea ođđa dieđáhus. Čálit sisa lohkat dan.'),
	('nb', true, 'Ny melding fra barnevernstjenesten',
	 'Du har en ny melding fra barnevernstjenesten. Logg inn for å lese den.'),
	('nn', true, 'Ny melding frå barnevernstenesta',
	 'Du har ei ny melding frå barnevernstenesta. Logg inn for å lese ho.'),
	('en', true, 'New message from the child welfare service',
	 'You have a new message from the child welfare service. Log in to read it.'),
	('se', true, 'Ođđa dieđáhus mánáidsuodjalusas',
	 'Dus lea ođđa dieđáhus mánáidsuodjalusas. Čálit sisa lohkat dan.')
) AS t(language, mention_service, subject, body),
(VALUES ('sms'), ('email'), ('webpush')) AS c(channel);

-- Accounts that got a message since `since` (the send's time) that may still be undelivered.
-- Written by the send's transaction with INSERT … ON CONFLICT DO NOTHING, so a busy account
-- costs one index probe per send; no foreign key, for the same reason as queue's. The notifier
-- owns the other columns: when to look again, tries and the last error (a short code, never
-- an address).
CREATE TABLE notify_pending (
	account_id	uuid PRIMARY KEY,
	since		timestamptz NOT NULL,
	not_before	timestamptz,
	attempts	integer NOT NULL DEFAULT 0,
	last_error	text CHECK (length(last_error) <= 200)
);

-- The notifier's memory per account. covered_until: messages sent up to then (ms since the
-- epoch; the newest undelivered one when a notification went) were notified about, or given up
-- on, and never count again. recheck: the snapshot
-- right after the notifier dropped the account's pending row; once every transaction in
-- progress then has ended, the queue is read again, so a send that found the row still there
-- (and so wrote nothing) is never missed.
CREATE TABLE notify_state (
	account_id	uuid PRIMARY KEY REFERENCES accounts(id),
	covered_until	bigint NOT NULL DEFAULT 0,
	last_sent_at	timestamptz,
	last_channel	text,
	sent_count	bigint NOT NULL DEFAULT 0,
	failed_count	bigint NOT NULL DEFAULT 0,
	last_error	text CHECK (length(last_error) <= 200),
	recheck		pg_snapshot,
	recheck_at	timestamptz
);
CREATE INDEX notify_state_recheck ON notify_state (account_id) WHERE recheck IS NOT NULL;

-- The send times (ms since the epoch) of the oldest and the newest message to p_account sent
-- after p_after that none of its devices has acknowledged (each device still holds its
-- envelope), or NULLs. Notices of the service (sender_device 0) and the account's own messages
-- do not count. Reads only the account's devices' queues, through queue's primary key.
CREATE FUNCTION bv_notify_undelivered(p_account uuid, p_after bigint,
				      OUT oldest bigint, OUT newest bigint)
LANGUAGE sql STABLE AS $$
	SELECT min(m.ts), max(m.ts) FROM (
		SELECT min(q.ts) AS ts FROM devices d JOIN queue q ON q.device = d.id
		WHERE d.account_id = p_account AND q.sender_device <> 0
		  AND q.sender_account <> p_account AND q.ts > p_after
		GROUP BY q.message_id
		HAVING count(DISTINCT q.device) =
			(SELECT count(*) FROM devices d2 WHERE d2.account_id = p_account)
	) m
$$;

-- The text for one notification: the tenant's own template, else the default.
CREATE FUNCTION bv_notify_template(p_tenant uuid, p_language text, p_channel text,
				   p_mention boolean, OUT subject text, OUT body text)
LANGUAGE sql STABLE AS $$
	SELECT replace(coalesce(t.subject, ''), '{kommune}', n.name),
	       replace(t.body, '{kommune}', n.name)
	FROM notify_templates t, tenants n
	WHERE n.id = p_tenant AND (t.tenant_id = p_tenant OR t.tenant_id IS NULL)
	  AND t.language = p_language AND t.channel = p_channel
	  AND t.mention_service = p_mention
	ORDER BY t.tenant_id NULLS LAST LIMIT 1
$$;

-- The citizen's own choice (notify_set): channel, language, whether the service may be named,
-- and a web push subscription (NULL endpoint: keep the one stored; '' removes it).
CREATE FUNCTION bv_notify_choose(p_account uuid, p_channel text, p_language text,
				 p_mention boolean, p_endpoint text, p_p256dh bytea,
				 p_auth bytea) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO notify_settings (account_id) VALUES (p_account) ON CONFLICT DO NOTHING;
	UPDATE notify_settings SET
		channel = coalesce(p_channel, channel),
		language = coalesce(p_language, language),
		mention_service = coalesce(p_mention, mention_service),
		webpush_endpoint = CASE WHEN p_endpoint IS NULL THEN webpush_endpoint
					WHEN p_endpoint = '' THEN NULL ELSE p_endpoint END,
		webpush_p256dh = CASE WHEN p_endpoint IS NULL THEN webpush_p256dh
				      WHEN p_endpoint = '' THEN NULL ELSE p_p256dh END,
		webpush_auth = CASE WHEN p_endpoint IS NULL THEN webpush_auth
				    WHEN p_endpoint = '' THEN NULL ELSE p_auth END,
		updated_at = now()
	WHERE account_id = p_account;
END;
$$;

-- The municipality registers a person's phone number and e-mail address (NULL: unchanged,
-- '': removed). BV030 when the account is not a person of p_tenant; BV002 for a malformed
-- value. Audited without the values.
CREATE FUNCTION bv_notify_contact(p_tenant uuid, p_account uuid, p_phone text, p_email text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM 1 FROM accounts WHERE id = p_account AND tenant_id = p_tenant AND kind = 'person';
	IF NOT FOUND THEN
		RAISE EXCEPTION 'no such account' USING ERRCODE = 'BV030';
	END IF;
	IF (p_phone IS NOT NULL AND p_phone <> '' AND p_phone !~ '^\+?[0-9]{8,15}$')
	   OR (p_email IS NOT NULL AND p_email <> '' AND (length(p_email) > 254 OR p_email !~
	       '^[A-Za-z0-9.!#$%&''*+/=?^_`{|}~-]+@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$'))
	THEN
		RAISE EXCEPTION 'malformed phone number or e-mail address' USING ERRCODE = 'BV002';
	END IF;
	INSERT INTO notify_settings (account_id) VALUES (p_account) ON CONFLICT DO NOTHING;
	UPDATE notify_settings SET
		phone = CASE WHEN p_phone IS NULL THEN phone ELSE nullif(p_phone, '') END,
		email = CASE WHEN p_email IS NULL THEN email ELSE nullif(p_email, '') END,
		updated_at = now()
	WHERE account_id = p_account;
	PERFORM bv_audit_append(p_tenant, 'notify.contact', p_account::text,
		jsonb_strip_nulls(jsonb_build_object(
			'phone', CASE WHEN p_phone IS NULL THEN NULL
				      WHEN p_phone = '' THEN 'removed' ELSE 'set' END,
			'email', CASE WHEN p_email IS NULL THEN NULL
				      WHEN p_email = '' THEN 'removed' ELSE 'set' END)));
END;
$$;

-- The municipality's rules (NULL: unchanged). Audited.
CREATE FUNCTION bv_notify_tenant_set(p_tenant uuid, p_wait integer, p_window integer,
				     p_quiet_start time, p_quiet_end time) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	UPDATE tenants SET
		notify_wait_minutes = coalesce(p_wait, notify_wait_minutes),
		notify_window_minutes = coalesce(p_window, notify_window_minutes),
		notify_quiet_start = coalesce(p_quiet_start, notify_quiet_start),
		notify_quiet_end = coalesce(p_quiet_end, notify_quiet_end)
	WHERE id = p_tenant;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'no such tenant' USING ERRCODE = 'BV030';
	END IF;
	PERFORM bv_audit_append(p_tenant, 'notify.tenant', p_tenant::text,
		jsonb_strip_nulls(jsonb_build_object('wait_minutes', p_wait,
			'window_minutes', p_window, 'quiet_start', p_quiet_start,
			'quiet_end', p_quiet_end)));
END;
$$;

-- A tenant's own text for one language, channel and variant (NULL body: back to the default).
-- Audited.
CREATE FUNCTION bv_notify_template_set(p_tenant uuid, p_language text, p_channel text,
				       p_mention boolean, p_subject text, p_body text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM 1 FROM tenants WHERE id = p_tenant;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'no such tenant' USING ERRCODE = 'BV030';
	END IF;
	DELETE FROM notify_templates WHERE tenant_id = p_tenant AND language = p_language
		AND channel = p_channel AND mention_service = coalesce(p_mention, false);
	IF p_body IS NOT NULL THEN
		INSERT INTO notify_templates (tenant_id, language, channel, mention_service,
					      subject, body)
		VALUES (p_tenant, p_language, p_channel, coalesce(p_mention, false),
			CASE WHEN p_channel = 'sms' THEN NULL ELSE p_subject END, p_body);
	END IF;
	PERFORM bv_audit_append(p_tenant, 'notify.template', p_tenant::text,
		jsonb_build_object('language', p_language, 'channel', p_channel,
			'mention_service', coalesce(p_mention, false),
			'reset', p_body IS NULL));
END;
$$;
