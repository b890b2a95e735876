// SPDX-License-Identifier: GPL-3.0-or-later
// push.test.mjs: Web Push end to end, from the widget's "Varsle meg" in
// real Chromium (Debian's, driven by playwright-core) through the relay and
// bvchat-notifier to a local push service (bvtest-push-sink), and back into
// the widget's service worker. Run by ctest (web.push) through with-pg,
// which gives BV_TEST_DB.
//
// Environment: BV_TEST_DB, BV_RELAY (bvchat-relay), BV_CLI (bvchat),
// BV_NOTIFIER (bvchat-notifier), BV_PUSH_SINK (bvtest-push-sink),
// BV_WIDGET_DIR (the built widget), BV_WEB_DIR (scratch directory).
//
// Chromium here cannot reach a push service (no internet; its own
// PushManager.subscribe brings the headless browser down), so the page's
// PushManager is replaced before the widget loads by a stand-in that does
// what a browser does for a subscription: a fresh P-256 key pair and auth
// secret made in the page (WebCrypto), an endpoint on the push service —
// here the local sink — and the applicationServerKey it was asked for
// recorded. Everything else is real: the relay's VAPID key in the
// challenge, notify_set stored, the notifier's RFC 8291 encryption and RFC
// 8292 signature, the sink's checks. The test then decrypts the push as
// the user agent would, with the page's private key and auth secret, and
// hands the plaintext to the registered service worker (sw.js) through
// DevTools' ServiceWorker.deliverPushMessage (the push event a browser
// fires after decrypting), and reads the notification it showed back with
// registration.getNotifications().
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import net from 'node:net';
import crypto from 'node:crypto';
import readline from 'node:readline';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const here = path.dirname(new URL(import.meta.url).pathname);
const { chromium } = require(path.join(here, '../../web-widget/node_modules/playwright-core'));

const env = (k) => {
	const v = process.env[k];
	assert.ok(v, `${k} is not set`);
	return v;
};
const DB = env('BV_TEST_DB');
const RELAY = env('BV_RELAY');
const CLI = env('BV_CLI');
const NOTIFIER = env('BV_NOTIFIER');
const SINK = env('BV_PUSH_SINK');
const WIDGET = env('BV_WIDGET_DIR');
const WORK = fs.mkdtempSync(path.join(process.env.BV_WEB_DIR || '/tmp', 'bvpush-'));
const CANARY = 'CANARY-push-' + Math.random().toString(36).slice(2);
const SUBJECT = 'mailto:drift@kommune.example';
const WAIT = 30000; // ms for anything that crosses the network
// The built-in bokmål template without mention of the service
// (migrations/0009_create_notifications.sql): what Elisa must see.
const NEUTRAL = { title: 'Ny melding', body: 'Du har en ny melding. Logg inn for å lese den.' };

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const b64u = (buf) => Buffer.from(buf).toString('base64url');
const unb64u = (s) => Buffer.from(s, 'base64url');

function freePort() {
	return new Promise((resolve, reject) => {
		const s = net.createServer();
		s.listen(0, '127.0.0.1', () => {
			const { port } = s.address();
			s.close(() => resolve(port));
		});
		s.on('error', reject);
	});
}

// A child whose output is kept for failure messages; stop() ends it by
// its own PID.
function start(cmd, args) {
	const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
	const c = { p, log: '' };
	p.stderr.on('data', (d) => { c.log += d; });
	return c;
}
async function stop(c) {
	if (!c || c.p.exitCode !== null || c.p.signalCode !== null) return;
	const done = new Promise((r) => c.p.on('exit', r));
	c.p.kill('SIGTERM');
	const t = setTimeout(() => c.p.kill('SIGKILL'), 10000);
	await done;
	clearTimeout(t);
}

// RFC 8291 section 3.4 and RFC 8188, as a user agent decrypts: the
// header (salt, rs, the application server's public key), ECDH with the
// subscription's private key, HKDF with the auth secret, AES-128-GCM, one
// record whose padding ends in the last-record delimiter 0x02.
function decryptPush(body, jwk, uaPublic, auth) {
	assert.ok(body.length > 16 + 4 + 1 + 65 + 16, `push body of ${body.length} bytes`);
	const salt = body.subarray(0, 16);
	const rs = body.readUInt32BE(16);
	const idlen = body[20];
	assert.equal(idlen, 65, 'keyid is the application server key');
	const asPublic = body.subarray(21, 21 + 65);
	assert.equal(asPublic[0], 4);
	const ct = body.subarray(21 + 65);
	assert.ok(ct.length <= rs, 'one record');
	const priv = crypto.createPrivateKey({ key: jwk, format: 'jwk' });
	const pub = crypto.createPublicKey({
		key: { kty: 'EC', crv: 'P-256', x: b64u(asPublic.subarray(1, 33)), y: b64u(asPublic.subarray(33)) },
		format: 'jwk',
	});
	const ecdh = crypto.diffieHellman({ privateKey: priv, publicKey: pub });
	const keyInfo = Buffer.concat([Buffer.from('WebPush: info\0'), uaPublic, asPublic]);
	const ikm = Buffer.from(crypto.hkdfSync('sha256', ecdh, auth, keyInfo, 32));
	const cek = Buffer.from(crypto.hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: aes128gcm\0'), 16));
	const nonce = Buffer.from(crypto.hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: nonce\0'), 12));
	const d = crypto.createDecipheriv('aes-128-gcm', cek, nonce);
	d.setAuthTag(ct.subarray(ct.length - 16));
	const padded = Buffer.concat([d.update(ct.subarray(0, ct.length - 16)), d.final()]);
	let end = padded.length - 1;
	while (end >= 0 && padded[end] === 0) end--;
	assert.equal(padded[end], 2, 'the last record ends in delimiter 0x02');
	return padded.subarray(0, end).toString('utf8');
}

// RFC 8292: "vapid t=<JWT>, k=<key>", the JWT ES256-signed with k's key.
function verifyVapid(authorization, wantKey, aud) {
	const m = /^vapid t=([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+), k=([A-Za-z0-9_-]+)$/.exec(authorization);
	assert.ok(m, `Authorization: ${authorization}`);
	const [, jwt, k] = m;
	assert.equal(k, wantKey, 'k is the relay\'s webpush_key');
	const [h, p, s] = jwt.split('.');
	const point = unb64u(k);
	const key = crypto.createPublicKey({
		key: { kty: 'EC', crv: 'P-256', x: b64u(point.subarray(1, 33)), y: b64u(point.subarray(33)) },
		format: 'jwk',
	});
	assert.ok(crypto.verify('sha256', Buffer.from(`${h}.${p}`), { key, dsaEncoding: 'ieee-p1363' }, unb64u(s)),
		'the JWT\'s ES256 signature verifies with the relay\'s public key');
	assert.deepEqual(JSON.parse(unb64u(h)), { typ: 'JWT', alg: 'ES256' });
	const claims = JSON.parse(unb64u(p));
	assert.equal(claims.aud, aud);
	assert.equal(claims.sub, SUBJECT);
	const now = Date.now() / 1000;
	assert.ok(claims.exp > now && claims.exp <= now + 86400 + 600, `exp ${claims.exp}`);
}

// Put in every page before its scripts: the browser's side of a push
// subscription, on the local sink (see the top of this file).
function pushStandIn(sinkOrigin) {
	const b64 = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)))
		.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
	let current = null;
	PushManager.prototype.getSubscription = async function getSubscription() { return current; };
	PushManager.prototype.subscribe = async function subscribe(opts) {
		const pair = await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, true, ['deriveBits']);
		const p256dh = await crypto.subtle.exportKey('raw', pair.publicKey);
		const auth = crypto.getRandomValues(new Uint8Array(16)).buffer;
		const id = b64(crypto.getRandomValues(new Uint8Array(12)));
		const endpoint = `${sinkOrigin}/push/${id}`;
		const sub = {
			endpoint,
			expirationTime: null,
			options: opts,
			getKey: (name) => (name === 'p256dh' ? p256dh.slice(0) : name === 'auth' ? auth.slice(0) : null),
			unsubscribe: async () => { if (current === sub) current = null; return true; },
			toJSON: () => ({ endpoint, expirationTime: null, keys: { p256dh: b64(p256dh), auth: b64(auth) } }),
		};
		current = sub;
		window.__bvPush = {
			endpoint,
			p256dh: b64(p256dh),
			auth: b64(auth),
			jwk: await crypto.subtle.exportKey('jwk', pair.privateKey),
			applicationServerKey: b64(opts.applicationServerKey),
			userVisibleOnly: opts.userVisibleOnly,
		};
		return sub;
	};
}

const pushes = (dir) => fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort();

test('web push: the widget subscribes, the notifier pushes, the service worker shows it', { timeout: 300000 }, async (t) => {
	const port = await freePort();
	const sinkDir = path.join(WORK, 'push');
	const clockFile = path.join(WORK, 'clock');
	fs.mkdirSync(sinkDir);
	const setClock = (ms) => fs.writeFileSync(clockFile, `${Math.floor(ms)}\n`);
	setClock(Date.now());

	// The operator's VAPID key (docs/operations.md "Web Push keys").
	const vapidPem = path.join(WORK, 'vapid.pem');
	execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', vapidPem]);
	fs.chmodSync(vapidPem, 0o600);
	const conf = path.join(WORK, 'notifier.conf');
	fs.writeFileSync(conf, [
		'log_level info', 'notify_poll_ms 50', 'notify_timeout_ms 5000',
		`webpush_vapid_key ${vapidPem}`, `webpush_subject ${SUBJECT}`,
		'webpush_allow_loopback_http 1', ''].join('\n'));
	const vapidPublic = execFileSync(NOTIFIER, ['-c', conf, '--print-vapid-public'], { encoding: 'utf8' })
		.match(/^webpush_vapid_public (\S+)$/m)[1];
	fs.appendFileSync(conf, `webpush_vapid_public ${vapidPublic}\n`);

	// The key invite codes are hashed with.
	const inviteKey = path.join(WORK, 'invite.key');
	fs.writeFileSync(inviteKey, crypto.randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
	const admin = (...args) =>
		execFileSync(RELAY, ['--database', DB, '--invite_key_file', inviteKey, 'admin', ...args],
			{ encoding: 'utf8' }).trim();
	const cli = (profile, ...args) =>
		execFileSync(CLI, ['--profile', path.join(WORK, profile), '--relay', `127.0.0.1:${port}`, ...args],
			{ encoding: 'utf8', timeout: WAIT }).trim();

	let sink = null;
	let relay = null;
	let notifier = null;
	let context = null;
	const logs = () => `--- relay ---\n${relay?.log.slice(-4000)}\n--- notifier ---\n${notifier?.log.slice(-4000)}` +
		`\n--- sink ---\n${sink?.log}${fs.existsSync(path.join(sinkDir, 'refused.log')) ?
			fs.readFileSync(path.join(sinkDir, 'refused.log'), 'utf8') : ''}`;
	try {
		// The local push service.
		sink = start(SINK, ['--dir', sinkDir]);
		const sinkOrigin = await new Promise((resolve, reject) => {
			const rl = readline.createInterface({ input: sink.p.stdout });
			rl.on('line', (l) => { const m = /^origin (http:\/\/127\.0\.0\.1:\d+)$/.exec(l); if (m) resolve(m[1]); });
			sink.p.on('exit', (c) => reject(new Error(`bvtest-push-sink exited ${c}: ${sink.log}`)));
		});

		// Relay with the VAPID public key and the loopback allowance.
		execFileSync(RELAY, ['--database', DB, '--migrate']);
		const keyFile = path.join(WORK, 'tenant.key');
		const tenant = admin('tenant-create', '--name', 'Demo kommune', '--key-out', keyFile);
		relay = start(RELAY, ['--database', DB, '--listen', '127.0.0.1', '--port', String(port),
			'--widget_dir', WIDGET, '--widget_origins', `http://127.0.0.1:${port}`,
			'--invite_key_file', inviteKey, '--webpush_vapid_public', vapidPublic,
			'--webpush_allow_loopback_http', '1']);
		relay.p.stdout.on('data', (d) => { relay.log += d; });
		for (let i = 0; ; i++) {
			try {
				if ((await fetch(`http://127.0.0.1:${port}/healthz`)).ok) break;
			} catch { /* not yet */ }
			assert.ok(i < 100, 'relay did not start:\n' + relay.log);
			await sleep(100);
		}
		assert.match(relay.log, /webpush_allow_loopback_http is on/, 'the relay warns about the test option');

		// Elisa, Camilla, their case and conversation; a minute's wait
		// before a notice, no quiet hours.
		const enroll = (who) => cli(who, 'enroll', '--token', admin('issue-token', '--key', keyFile))
			.match(/^account (\S+)/m)[1];
		const elisa = enroll('elisa');
		const camilla = enroll('camilla');
		const kase = admin('case-create', '--tenant', tenant, '--case-number', '2026/0417');
		admin('roster-add', '--case', kase, '--account', elisa, '--role', 'child', '--name', 'Elisa (17)');
		admin('roster-add', '--case', kase, '--account', camilla, '--role', 'caseworker', '--name', 'Camilla');
		const conv = admin('conversation-create', '--case', kase, '--by', elisa, '--kind', 'team',
			'--members', elisa);
		admin('notify-tenant', '--tenant', tenant, '--wait-minutes', '1', '--window-minutes', '1',
			'--quiet-start', '00:00', '--quiet-end', '00:00');
		const invite = admin('invite', '--account', elisa).split('\n')[0];

		notifier = start(NOTIFIER, ['-c', conf, '--database', DB, '--clock-file', clockFile]);
		notifier.p.stdout.on('data', (d) => { notifier.log += d; });

		// Elisa's phone: the chat as a page of its own (a cross-site frame
		// gets no notification permission), notifications allowed.
		const widgetOrigin = `http://127.0.0.1:${port}`;
		const profile = path.join(WORK, 'chromium');
		context = await chromium.launchPersistentContext(profile, {
			executablePath: '/usr/bin/chromium',
			args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
				'--disable-component-update', '--disable-sync', '--no-first-run'],
			viewport: { width: 390, height: 844 }, locale: 'nb-NO',
		});
		await context.grantPermissions(['notifications'], { origin: widgetOrigin });
		await context.addInitScript(pushStandIn, sinkOrigin);
		const page = await context.newPage();
		const errors = [];
		page.on('pageerror', (e) => errors.push(String(e)));
		let sub;

		await t.test('"Varsle meg" subscribes with the relay\'s key and notify_set stores it', async () => {
			await page.goto(`${widgetOrigin}/widget/index.html?lang=nb`);
			await page.getByRole('heading', { name: 'Kom i gang' }).waitFor({ timeout: WAIT });
			await page.getByLabel('Kode').fill(invite);
			await page.getByRole('button', { name: 'Koble til' }).click();
			await page.getByRole('heading', { name: 'Samtalene dine' }).waitFor({ timeout: WAIT });
			await page.getByRole('heading', { name: 'Varsle meg' }).waitFor();
			await page.locator('#notify-state').getByText('Varsler er av.').waitFor({ timeout: WAIT });
			await page.getByRole('button', { name: 'Slå på varsler' }).click();
			await page.locator('#notify-state').getByText('Varsler er på.').waitFor({ timeout: WAIT });
			sub = await page.evaluate(() => window.__bvPush);
			assert.ok(sub, 'the widget called PushManager.subscribe');
			// The key the widget subscribed with came from the relay's
			// challenge (webpush_key), and is the notifier's.
			assert.equal(sub.applicationServerKey, vapidPublic);
			assert.equal(sub.userVisibleOnly, true);
			const row = execFileSync('psql', [DB, '-XAtF', '|', '-c',
				`SELECT channel, language, webpush_endpoint, encode(webpush_p256dh, 'hex'), encode(webpush_auth, 'hex') FROM notify_settings WHERE account_id = '${elisa}'`],
			{ encoding: 'utf8' }).trim().split('|');
			assert.deepEqual(row, ['webpush', 'nb', sub.endpoint,
				unb64u(sub.p256dh).toString('hex'), unb64u(sub.auth).toString('hex')]);
		});

		await t.test('nothing is pushed for a message the widget picked up in time', async () => {
			cli('camilla', 'send', '--conversation', conv, `Hei Elisa ${CANARY}-1`);
			await page.getByRole('button', { name: /Camilla/ }).first().click();
			await page.getByText(`Hei Elisa ${CANARY}-1`).waitFor({ timeout: WAIT });
			// Past the wait (one minute) on the notifier's clock; it looks
			// every 50 ms.
			setClock(Date.now() + 2 * 60000);
			await sleep(1500);
			assert.deepEqual(pushes(sinkDir), [], 'pushed for a delivered message\n' + logs());
		});

		let text;
		await t.test('Elisa offline: Camilla writes, the notifier pushes to the subscription', async () => {
			// The widget is closed: no device of Elisa's is connected.
			await page.goto(`${widgetOrigin}/healthz`);
			cli('camilla', 'send', '--conversation', conv, `Svar fra Camilla ${CANARY}-2`);
			setClock(Date.now() + 4 * 60000);
			for (let i = 0; pushes(sinkDir).length === 0; i++) {
				assert.ok(i < WAIT / 100, 'no push reached the sink\n' + logs());
				await sleep(100);
			}
			await sleep(500); // a second one would be a coalescing bug
			const got = pushes(sinkDir);
			assert.equal(got.length, 1, 'one push for Elisa');
			const meta = JSON.parse(fs.readFileSync(path.join(sinkDir, got[0]), 'utf8'));
			const body = fs.readFileSync(path.join(sinkDir, got[0].replace('.json', '.body')));
			assert.equal(`${sinkOrigin}/push/${meta.id}`, sub.endpoint);
			assert.equal(meta.content_encoding, 'aes128gcm');
			assert.equal(meta.urgency, 'normal');
			assert.ok(meta.ttl > 0);
			assert.equal(meta.k, vapidPublic);
			verifyVapid(meta.authorization, vapidPublic, sinkOrigin);
			text = decryptPush(body, sub.jwk, unb64u(sub.p256dh), unb64u(sub.auth));
			// Exactly the neutral template: no content, no sender, no case.
			assert.deepEqual(JSON.parse(text), NEUTRAL);
			for (const bad of [CANARY, 'Camilla', 'Elisa', '2026/0417', 'barnevern', 'Demo kommune'])
				assert.ok(!text.includes(bad), `"${bad}" in the push`);
			// Nor anything of the conversation in the relay's or notifier's logs.
			assert.ok(!relay.log.includes(CANARY) && !notifier.log.includes(CANARY), 'canary in a log');
			assert.match(notifier.log, /webpush_allow_loopback_http is on/, 'the notifier warns about the test option');
		});

		await t.test('the service worker shows the push as a notification', async () => {
			// The push event a browser fires once it has decrypted the
			// message: DevTools hands the same plaintext to sw.js.
			const cdp = await context.newCDPSession(page);
			const regs = [];
			cdp.on('ServiceWorker.workerRegistrationUpdated', (e) => regs.push(...e.registrations));
			await cdp.send('ServiceWorker.enable');
			for (let i = 0; !regs.some((r) => r.scopeURL === `${widgetOrigin}/widget/` && !r.isDeleted); i++) {
				assert.ok(i < 50, 'no service worker registered for /widget/: ' + JSON.stringify(regs));
				await sleep(100);
			}
			const reg = regs.find((r) => r.scopeURL === `${widgetOrigin}/widget/` && !r.isDeleted);
			await cdp.send('ServiceWorker.deliverPushMessage', {
				origin: widgetOrigin, registrationId: reg.registrationId, data: text,
			});
			let shown = [];
			for (let i = 0; shown.length === 0 && i < 50; i++) {
				await sleep(100);
				shown = await page.evaluate(async (scope) => {
					const r = await navigator.serviceWorker.getRegistration(scope);
					return r ? (await r.getNotifications()).map((n) => ({ title: n.title, body: n.body, tag: n.tag })) : [];
				}, `${widgetOrigin}/widget/`);
			}
			assert.deepEqual(shown, [{ ...NEUTRAL, tag: 'bvchat' }]);
			await cdp.detach();
		});

		assert.deepEqual(errors, [], 'no uncaught errors in the page');
	} finally {
		if (context) await context.close();
		await stop(notifier);
		await stop(relay);
		await stop(sink);
		fs.rmSync(WORK, { recursive: true, force: true });
	}
});
