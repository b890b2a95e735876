// SPDX-License-Identifier: GPL-3.0-or-later
// widget.test.mjs: the web widget in real Chromium (Debian's, driven by
// playwright-core) against a real relay and PostgreSQL, with a caseworker
// on libbvchat (the bvchat command-line client). Run by ctest through
// with-pg (tests/web/CMakeLists.txt), which gives BV_TEST_DB.
//
// Environment: BV_TEST_DB, BV_RELAY (bvchat-relay), BV_CLI (bvchat),
// BV_WIDGET_DIR (the built widget), BV_SHOTS (where screenshots go),
// BV_WEB_DIR (scratch directory).
//
// One story, in order, at a phone's viewport (390 × 844): Elisa opens the
// municipality's page (another origin than the relay), enrolls with an
// invite code, sees her conversation and who is in it, writes; Camilla
// (caseworker, bvchat) gets it and answers; Elisa sees the answer and the
// delivery states; she writes a request (e-post) with a subject, sees when
// she will get an answer, Camilla answers in its thread, Elisa replies in
// it. She sends Camilla a photo, which arrives byte for byte; Camilla's
// photo back is shown and its decrypted bytes are the ones sent; a file
// over the relay's cap is refused before anything is uploaded. Then:
// reload keeps history and session; a message
// written while the relay is down goes out when it is back; languages;
// the case file's device (test_archive_peer) comes online, marks what it
// has journaled, and the widget and Camilla's bvchat show the references;
// a second tab gives way; axe-core finds no WCAG 2.1 AA violation on each
// screen; sizes are within the budget.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import net from 'node:net';
import zlib from 'node:zlib';
import crypto from 'node:crypto';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const here = path.dirname(new URL(import.meta.url).pathname);
const { chromium } = require(path.join(here, '../../web-widget/node_modules/playwright-core'));
const axeSource = fs.readFileSync(
	path.join(here, '../../web-widget/node_modules/axe-core/axe.min.js'), 'utf8');

const env = (k) => {
	const v = process.env[k];
	assert.ok(v, `${k} is not set`);
	return v;
};
const DB = env('BV_TEST_DB');
const RELAY = env('BV_RELAY');
const CLI = env('BV_CLI');
const ATT_PEER = env('BV_ATT_PEER');
const ARCHIVE_PEER = env('BV_ARCHIVE_PEER');
const WIDGET = env('BV_WIDGET_DIR');
const SHOTS = process.env.BV_SHOTS || path.join(process.cwd(), 'web-shots');
const WORK = fs.mkdtempSync(path.join(process.env.BV_WEB_DIR || '/tmp', 'bvweb-'));
const CANARY = 'CANARY-widget-' + Math.random().toString(36).slice(2);
const WAIT = 30000; // ms for anything that crosses the network

fs.mkdirSync(SHOTS, { recursive: true });

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

// The key invite codes are hashed with (invite_key_file: 64 hex digits).
const inviteKey = path.join(WORK, 'invite.key');
fs.writeFileSync(inviteKey, crypto.randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
const admin = (...args) =>
	execFileSync(RELAY, ['--database', DB, '--invite_key_file', inviteKey, 'admin', ...args],
		{ encoding: 'utf8' }).trim();
const cli = (profile, ...args) =>
	execFileSync(CLI, ['--profile', path.join(WORK, profile), '--relay', `127.0.0.1:${port}`, ...args],
		{ encoding: 'utf8', timeout: WAIT }).trim();

let port;
let relay = null;
let relayLog = '';

async function startRelay() {
	relay = spawn(RELAY, ['--database', DB, '--listen', '127.0.0.1', '--port', String(port),
		'--widget_dir', WIDGET,
		'--widget_origins', `http://127.0.0.1:${port}`,
		'--widget_embed_origins', `http://localhost:${port}`,
		'--invite_key_file', inviteKey], { stdio: ['ignore', 'pipe', 'pipe'] });
	relay.stdout.on('data', (d) => { relayLog += d; });
	relay.stderr.on('data', (d) => { relayLog += d; });
	for (let i = 0; i < 100; i++) {
		try {
			const r = await fetch(`http://127.0.0.1:${port}/healthz`);
			if (r.ok) return;
		} catch { /* not yet */ }
		await new Promise((r) => setTimeout(r, 100));
	}
	throw new Error('relay did not start:\n' + relayLog);
}

async function stopRelay() {
	if (!relay) return;
	const p = relay;
	relay = null;
	const done = new Promise((r) => p.on('exit', r));
	p.kill('SIGTERM');
	const t = setTimeout(() => p.kill('SIGKILL'), 15000);
	await done;
	clearTimeout(t);
}

// A program kept running beside the story: heard(re) waits until what it
// printed matches re and gives the match; stop() ends its input and waits
// for it to exit, giving its exit code.
function watch(p, what) {
	let out = '';
	p.stdout.on('data', (d) => { out += d; });
	p.stderr.on('data', (d) => { out += d; });
	const exited = new Promise((r) => p.on('exit', (code) => r(code)));
	return {
		get out() { return out; },
		say: (line) => p.stdin.write(line + '\n'),
		async heard(re) {
			for (let i = 0; i < WAIT / 100 && !re.test(out); i++)
				await new Promise((r) => setTimeout(r, 100));
			assert.match(out, re, `${what} printed:\n` + out);
			return out.match(re);
		},
		async stop() {
			p.stdin.end();
			const k = setTimeout(() => p.kill('SIGTERM'), 5000);
			const code = await exited;
			clearTimeout(k);
			return code;
		},
	};
}

// Camilla at her terminal: `bvchat chat` in the conversation, kept running
// (it reconnects by itself while the relay is away).
function chat(profile, conversation) {
	return watch(spawn(CLI, ['--profile', path.join(WORK, profile), '--relay', `127.0.0.1:${port}`,
		'chat', '--conversation', conversation], { stdio: ['pipe', 'pipe', 'pipe'] }), 'bvchat chat');
}

// The municipality's archive device (test_archive_peer): marks every
// message it gets journaled under "2026/<n>", n from 1.
function archive(profile) {
	return watch(spawn(ARCHIVE_PEER, [path.join(WORK, profile), `127.0.0.1:${port}`, '1'],
		{ stdio: ['pipe', 'pipe', 'pipe'] }), 'test_archive_peer');
}

async function axeCheck(frame, name) {
	await frame.evaluate(axeSource);
	const r = await frame.evaluate(() => window.axe.run(document, {
		runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
	}));
	const v = r.violations.map((x) => `${x.id}: ${x.nodes.map((n) => n.target.join(' ')).join(', ')}`);
	assert.deepEqual(v, [], `axe violations on ${name}`);
	return r.passes.length;
}

function gz(file) {
	return zlib.gzipSync(fs.readFileSync(file), { level: 9 }).length;
}

test('the widget, end to end in Chromium', { timeout: 600000 }, async (t) => {
	port = await freePort();
	// Tenant, closed office (so the out-of-hours notice shows), people, case.
	execFileSync(RELAY, ['--database', DB, '--migrate']);
	const keyFile = path.join(WORK, 'tenant.key');
	const tenant = admin('tenant-create', '--name', 'Demo kommune', '--key-out', keyFile);
	admin('tenant-set', '--tenant', tenant, '--office-days', 'mon-fri', '--open', '08:00',
		'--close', '08:01', '--out-of-hours-phone', '+47 800 00 000');
	await startRelay();
	const enroll = (who) => cli(who, 'enroll', '--token', admin('issue-token', '--key', keyFile))
		.match(/^account (\S+)/m)[1];
	const elisa = enroll('elisa');
	const camilla = enroll('camilla');
	const arkiv = enroll('arkiv');
	admin('archive-set', '--tenant', tenant, '--account', arkiv);
	const kase = admin('case-create', '--tenant', tenant, '--case-number', '2026/0417');
	admin('roster-add', '--case', kase, '--account', elisa, '--role', 'child', '--name', 'Elisa (17)');
	admin('roster-add', '--case', kase, '--account', camilla, '--role', 'caseworker', '--name', 'Camilla');
	const conv = admin('conversation-create', '--case', kase, '--by', elisa, '--kind', 'team',
		'--members', elisa);
	const invite = admin('invite', '--account', elisa).split('\n')[0];
	let camillaChat = chat('camilla', conv);
	let arkivDevice = null;
	assert.match(invite, /^[0-9A-Z]{5}-[0-9A-Z]{5}$/);

	// A phone's browser in its normal mode: a profile of its own (a
	// persistent context) with Chrome for Android's default cookie setting
	// (third-party cookies allowed; a frame's storage partitioned by the
	// top-level site). Debian's chromium blocks third-party cookies, and
	// with them a cross-site frame's storage; so do private windows
	// (Playwright's other contexts). The widget's answer to that (open the
	// chat as a page of its own) is tested below with one.
	const launch = {
		executablePath: '/usr/bin/chromium',
		args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
			'--disable-component-update', '--disable-sync', '--no-first-run'],
	};
	const phone = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, hasTouch: true, locale: 'nb-NO' };
	const profile = path.join(WORK, 'chromium');
	fs.mkdirSync(path.join(profile, 'Default'), { recursive: true });
	fs.writeFileSync(path.join(profile, 'Default', 'Preferences'), JSON.stringify({
		profile: { cookie_controls_mode: 0, block_third_party_cookies: false },
	}));
	const context = await chromium.launchPersistentContext(profile, { ...launch, ...phone });
	const page = await context.newPage();
	const errors = [];
	page.on('pageerror', (e) => errors.push(String(e)));
	// The relay's Content-Security-Policy must let the app and the demo
	// page do everything they do.
	context.on('console', (m) => {
		if (/Content Security Policy/.test(m.text())) errors.push(m.text());
	});
	const host = `http://localhost:${port}/widget/demo/`;
	const shot = (name) => page.screenshot({ path: path.join(SHOTS, `widget-${name}.png`) });
	const widget = () => page.frameLocator('iframe[title]');
	// The widget's buttons are pressed with the keyboard (focus, Enter), as
	// a keyboard or switch user does. Mouse clicks into the frame at this
	// emulated phone viewport landed about 100 px above their target in
	// some runs (Playwright reported the case-file note or the back button
	// "intercepts pointer events" for 30 s, with no overlap on screen), so
	// half of the runs failed at the first screen change.

	try {
		await t.test('enroll with an invite code from another origin', async () => {
			await page.goto(host);
			await page.getByRole('button', { name: 'Chat' }).click();
			const w = widget();
			await w.getByRole('heading', { name: 'Kom i gang' }).waitFor({ timeout: WAIT });
			await w.getByText('blir en del av saken din').waitFor();
			await shot('enroll');
			await axeCheck(page.frames().find((f) => f.url().includes(`127.0.0.1:${port}/widget/`)), 'enroll');
			await w.getByLabel('Kode').fill(invite.toLowerCase().replace('-', ' '));
			await w.getByRole('button', { name: 'Koble til' }).press('Enter');
			await w.getByRole('heading', { name: 'Samtalene dine' }).waitFor({ timeout: WAIT });
			await w.getByText('Camilla (saksbehandler)').waitFor({ timeout: WAIT });
			await shot('conversations');
		});

		await t.test('a private window gets a way to open the chat as its own page', async () => {
			const browser = await chromium.launch(launch);
			try {
				const priv = await (await browser.newContext(phone)).newPage();
				await priv.goto(host);
				await priv.getByRole('button', { name: 'Chat' }).click();
				const w = priv.frameLocator('iframe[title]');
				await w.getByText('Nettleseren lar ikke chatten lagre noe her').waitFor({ timeout: WAIT });
				const link = w.getByRole('link', { name: 'Åpne chatten i en ny fane' });
				assert.match(await link.getAttribute('href'), new RegExp(`^http://127\\.0\\.0\\.1:${port}/widget/index\\.html\\?lang=nb$`));
				const [own] = await Promise.all([priv.waitForEvent('popup'), link.click()]);
				await own.getByRole('heading', { name: 'Kom i gang' }).waitFor({ timeout: WAIT });
			} finally {
				await browser.close();
			}
		});

		const frame = () => page.frames().find((f) => f.url().includes(`127.0.0.1:${port}/widget/`));

		await t.test('a youth and a caseworker exchange messages both ways', async () => {
			const w = widget();
			await w.getByRole('button', { name: /Camilla/ }).first().press('Enter');
			await w.getByRole('log').waitFor();
			await w.getByLabel('Skriv en melding').fill(`Hei Camilla ${CANARY}`);
			await w.getByRole('button', { name: 'Send' }).press('Enter');
			await camillaChat.heard(new RegExp(`Hei Camilla ${CANARY}`));
			// The out-of-hours notice with its numbers.
			await w.getByText('Ingen leser chatten nå').waitFor({ timeout: WAIT });
			await w.getByRole('link', { name: '+47 800 00 000' }).waitFor();
			await w.getByRole('link', { name: '116 111' }).waitFor();
			// Camilla's chat has it and has read it.
			await w.getByText('Lest').first().waitFor({ timeout: WAIT });
			camillaChat.say('Hei Elisa, jeg leser dette i morgen tidlig.');
			await w.getByText('Hei Elisa, jeg leser dette i morgen tidlig.').waitFor({ timeout: WAIT });
			await shot('chat');
			await axeCheck(frame(), 'chat');
		});

		await t.test('a written request (e-post): subject, answer time, replies in its thread', async () => {
			const w = widget();
			await w.getByRole('button', { name: 'Skriv en henvendelse' }).press('Enter');
			await w.getByRole('heading', { name: 'Ny henvendelse' }).waitFor({ timeout: WAIT });
			assert.equal(await frame().evaluate(() => document.activeElement.tagName), 'H2');
			// When, plainly: "Du får svar innen fredag 27. november."
			const when = /^Du får svar innen (mandag|tirsdag|onsdag|torsdag|fredag) \d{1,2}\. [a-zæøå]+\.$/;
			await w.getByText(when).waitFor();
			// Nothing is sent without a subject; the field says so.
			await w.getByRole('button', { name: 'Send henvendelsen' }).press('Enter');
			await w.getByText('Skriv både emne og tekst.').waitFor();
			assert.equal(await w.getByLabel('Emne').getAttribute('aria-invalid'), 'true');
			await shot('epost');
			await axeCheck(frame(), 'e-post');
			await w.getByLabel('Emne').fill('Samvær i sommer');
			await w.getByLabel('Hva vil du si?').fill(`Kan jeg være hos mamma i juli? ${CANARY}`);
			await w.getByRole('button', { name: 'Send henvendelsen' }).press('Enter');
			// Camilla's terminal: the subject, its thread and the answer time.
			const head = /\[e-post "Samvær i sommer", thread ([0-9a-f-]{36}), answer expected by [^\]]+\] Kan jeg være hos mamma i juli/;
			await camillaChat.heard(head);
			const thread = camillaChat.out.match(head)[1];
			// Back in the conversation: the thread with its subject as a heading.
			const th = w.locator(`li.thread[data-thread="${thread}"]`);
			await th.getByRole('heading', { name: 'Samvær i sommer' }).waitFor({ timeout: WAIT });
			await th.getByText(when).waitFor();
			camillaChat.say('/reply Ja, det går fint. Vi ringer deg før ferien.');
			await th.getByText('Ja, det går fint. Vi ringer deg før ferien.').waitFor({ timeout: WAIT });
			await th.getByText('Besvart').waitFor();
			// Elisa answers in the thread.
			await th.getByRole('button', { name: 'Svar på henvendelsen' }).press('Enter');
			await w.getByRole('heading', { name: 'Svar: Samvær i sommer' }).waitFor();
			await w.getByLabel('Ditt svar').fill('Takk! Da kommer jeg.');
			await w.getByRole('button', { name: 'Send svaret' }).press('Enter');
			await camillaChat.heard(new RegExp(`\\[e-post "Sv: Samvær i sommer", thread ${thread}.*\\] Takk! Da kommer jeg\\.`));
			await th.getByText('Takk! Da kommer jeg.').waitFor({ timeout: WAIT });
			assert.equal(await th.locator('.thread-list > li').count(), 3);
			// The chat texts stay outside it.
			assert.equal(await th.getByText('Hei Elisa, jeg leser dette i morgen tidlig.').count(), 0);
			await shot('thread');
			await axeCheck(frame(), 'e-post thread');
		});

		await t.test('attachments: a photo each way, end to end encrypted; too large is refused first', async () => {
			const w = widget();
			const puts = [];
			context.on('request', (r) => {
				if (r.method() === 'PUT' && r.url().includes('/v1/blobs/')) puts.push(r.url());
			});
			// A real PNG, made by the browser: Elisa's photo.
			const photo = await page.screenshot({ clip: { x: 0, y: 0, width: 48, height: 32 } });
			await w.getByRole('log').waitFor();
			const input = w.locator('input[type=file]');
			assert.equal(await input.getAttribute('accept'), 'image/*,application/pdf,audio/*');
			await w.getByText('Opptil 25 MB per fil').waitFor();
			// Chosen, then removed, then chosen again: the chips follow.
			await input.setInputFiles({ name: 'feil.png', mimeType: 'image/png', buffer: photo });
			await w.getByRole('button', { name: 'Fjern feil.png' }).press('Enter');
			assert.equal(await w.getByRole('list', { name: 'Valgte filer' }).locator('li').count(), 0);
			await input.setInputFiles({ name: 'rommet mitt.png', mimeType: 'image/png', buffer: photo });
			await w.getByRole('list', { name: 'Valgte filer' }).getByText('rommet mitt.png').waitFor();
			await shot('attach-chosen');
			await axeCheck(frame(), 'chat with a chosen file');
			await w.getByLabel('Skriv en melding').fill(`Her er bildet ${CANARY}`);
			const t0 = Date.now();
			await w.getByRole('button', { name: 'Send' }).press('Enter');
			await camillaChat.heard(new RegExp(`Her er bildet ${CANARY}`));
			console.log(`# small photo: chosen to Camilla's terminal in ${Date.now() - t0} ms`);
			assert.equal(puts.length, 1, 'one upload');
			// Elisa's own photo, from the relay, decrypted, as a thumbnail.
			await w.getByRole('img', { name: 'Bilde: rommet mitt.png' }).waitFor({ timeout: WAIT });

			// Camilla's side on libbvchat (bvchat has no attachment
			// commands): what arrived, written to files, is the photo.
			await camillaChat.stop();
			const out = path.join(WORK, 'att-out');
			fs.mkdirSync(out);
			execFileSync(ATT_PEER, [path.join(WORK, 'camilla'), `127.0.0.1:${port}`, 'fetch', out],
				{ encoding: 'utf8', timeout: WAIT + 5000 });
			assert.ok(fs.readFileSync(path.join(out, 'rommet mitt.png')).equals(photo), 'the photo as sent');
			// And one back.
			const back = await page.screenshot({ clip: { x: 0, y: 40, width: 64, height: 48 } });
			const backFile = path.join(WORK, 'svar.png');
			fs.writeFileSync(backFile, back);
			execFileSync(ATT_PEER, [path.join(WORK, 'camilla'), `127.0.0.1:${port}`, 'send', conv,
				backFile, 'image/png', 'svar.png', 'Takk! Her er et bilde tilbake.'],
				{ encoding: 'utf8', timeout: WAIT + 5000 });
			camillaChat = chat('camilla', conv);
			await w.getByText('Takk! Her er et bilde tilbake.').waitFor({ timeout: WAIT });
			const img = w.getByRole('img', { name: 'Bilde: svar.png' });
			await img.waitFor({ timeout: WAIT });
			// Decoded: as wide as the PNG says (the phone's 2× pixels).
			assert.equal(await img.evaluate((i) => i.complete && i.naturalWidth), back.readUInt32BE(16));
			assert.match(await img.getAttribute('src'), /^blob:/);
			// Its link downloads the decrypted bytes: the ones Camilla sent.
			const [dl] = await Promise.all([page.waitForEvent('download'),
				w.getByRole('link', { name: /^svar\.png \(/ }).click()]);
			assert.equal(dl.suggestedFilename(), 'svar.png');
			assert.ok(fs.readFileSync(await dl.path()).equals(back), 'the photo Camilla sent');
			await shot('attach-received');
			await axeCheck(frame(), 'chat with photos');

			// Over the relay's 25 MiB: said at once, nothing encrypted or sent.
			const before = puts.length;
			await input.setInputFiles({ name: 'stor.pdf', mimeType: 'application/pdf',
				buffer: Buffer.alloc(25 * 1048576 + 1) });
			await w.getByText('stor.pdf er for stor. En fil kan være opptil 25 MB.').waitFor();
			assert.equal(await w.getByRole('list', { name: 'Valgte filer' }).locator('li').count(), 0);
			// A type the library does not take: said too.
			await input.setInputFiles({ name: 'anim.gif', mimeType: 'image/gif', buffer: Buffer.from('GIF89a') });
			await w.getByText('anim.gif kan ikke sendes.', { exact: false }).waitFor();
			assert.equal(puts.length, before, 'no upload for refused files');
			await shot('attach-too-large');
			await axeCheck(frame(), 'chat with a refused file');

			// 3 MiB (a phone photo's size; random bytes, so as audio, not
			// drawn): encrypted and uploaded from the widget, timed.
			const big = crypto.randomBytes(3 * 1048576);
			await input.setInputFiles({ name: 'opptak.ogg', mimeType: 'audio/ogg', buffer: big });
			const stored = page.waitForResponse((r) => r.request().method() === 'PUT' &&
				r.status() === 201, { timeout: WAIT });
			const t1 = Date.now();
			await w.getByRole('button', { name: 'Send' }).press('Enter');
			await stored;
			console.log(`# 3 MiB file: read, encrypted and uploaded in Chromium in ${Date.now() - t1} ms`);
			await w.getByRole('button', { name: /^Hent opptak\.ogg \(3 MB\)$/ }).waitFor({ timeout: WAIT });
		});

		await t.test('notify me: a cross-site frame offers the chat as its own page', async () => {
			// Browsers refuse notification permission to a cross-site
			// frame; the setting says so and links to the chat as a page.
			const w = widget();
			await w.getByRole('button', { name: /Tilbake til samtalene/ }).press('Enter');
			await w.getByRole('heading', { name: 'Varsle meg' }).waitFor({ timeout: WAIT });
			await w.getByText('Varsler kan ikke slås på inne i en annen nettside').waitFor();
			const link = w.locator('#notify').getByRole('link', { name: 'Åpne chatten i en ny fane' });
			assert.match(await link.getAttribute('href'), new RegExp(`^http://127\\.0\\.0\\.1:${port}/widget/index\\.html\\?lang=nb$`));
			await axeCheck(frame(), 'conversations with notify me');
			// The service worker is served under /widget/ as JavaScript.
			const sw = await fetch(`http://127.0.0.1:${port}/widget/sw.js`);
			assert.equal(sw.status, 200);
			assert.match(sw.headers.get('content-type'), /^text\/javascript/);
		});

		await t.test('reload keeps history and session', async () => {
			await page.reload();
			await page.getByRole('button', { name: 'Chat' }).click();
			const w = widget();
			await w.getByRole('heading', { name: 'Samtalene dine' }).waitFor({ timeout: WAIT });
			await w.getByRole('button', { name: /Camilla/ }).first().press('Enter');
			await w.getByText(`Hei Camilla ${CANARY}`).waitFor({ timeout: WAIT });
			await w.getByText('Hei Elisa, jeg leser dette i morgen tidlig.').waitFor();
			await w.locator('li.thread').getByText('Takk! Da kommer jeg.').waitFor();
		});

		await t.test('a message written offline goes out after reconnect', async () => {
			const w = widget();
			await stopRelay();
			await w.getByText('Du er ikke på nett').waitFor({ timeout: WAIT });
			await w.getByLabel('Skriv en melding').fill('Skrevet uten nett');
			await w.getByRole('button', { name: 'Send' }).press('Enter');
			await w.getByText('Sender …').waitFor({ timeout: WAIT });
			await shot('offline');
			await startRelay();
			await camillaChat.heard(/Skrevet uten nett/);
			await w.getByText('Tilkoblet').waitFor({ timeout: WAIT });
		});

		await t.test('languages: nynorsk, English, Northern Sami', async () => {
			const w = widget();
			for (const [l, casefile, send, epost, reply, by] of [
				['nn', 'blir ein del av saka di', 'Send', 'Skriv ein førespurnad', 'Svar på førespurnaden', 'Du får svar innan '],
				['en', 'becomes part of your case file', 'Send', 'Write a request', 'Reply to the request', 'You will get an answer by '],
				['se', 'šaddá oassin du áššis', 'Sádde', 'Čális jearaldaga', 'Vástit jearaldahkii', 'Oaččut vástádusa ovdal '],
				['nb', 'blir en del av saken din', 'Send', 'Skriv en henvendelse', 'Svar på henvendelsen', 'Du får svar innen '],
			]) {
				await w.getByLabel(/Språk|Language|Giella/).selectOption(l);
				await w.getByText(casefile).waitFor();
				await w.getByRole('button', { name: send, exact: true }).waitFor();
				await w.getByRole('button', { name: epost, exact: true }).waitFor();
				await w.getByRole('button', { name: reply, exact: true }).waitFor();
				await w.getByText(by).first().waitFor();
				assert.equal(await frame().evaluate(() => document.documentElement.lang), l);
				if (l === 'se') {
					await shot('chat-se');
					await axeCheck(frame(), 'chat in Sami');
				}
			}
		});

		await t.test('keyboard only, text at 200 %, reduced motion', async () => {
			const w = widget();
			// Write and send with the keyboard alone: Enter sends.
			await w.getByLabel('Skriv en melding').focus();
			await page.keyboard.type('Skrevet med tastaturet');
			await page.keyboard.press('Enter');
			await camillaChat.heard(/Skrevet med tastaturet/);
			// Tab from the field reaches the send button.
			await w.getByLabel('Skriv en melding').focus();
			await page.keyboard.press('Tab');
			assert.equal(await frame().evaluate(() => document.activeElement.textContent), 'Send');
			// Text at 200 %: nothing needs scrolling sideways, the field stays usable.
			await frame().evaluate(() => { document.documentElement.style.fontSize = '200%'; });
			assert.ok(await frame().evaluate(() =>
				document.documentElement.scrollWidth <= window.innerWidth + 1), 'sideways scrolling at 200 %');
			await w.getByLabel('Skriv en melding').waitFor();
			assert.ok(await w.getByLabel('Skriv en melding').isVisible());
			await frame().evaluate(() => { document.documentElement.style.fontSize = ''; });
			// Less motion asked for: messages appear without animation.
			await page.emulateMedia({ reducedMotion: 'reduce' });
			assert.equal(await frame().evaluate(() =>
				getComputedStyle(document.querySelector('.msg')).animationName), 'none');
			await page.emulateMedia({ reducedMotion: 'no-preference' });
		});

		await t.test('the case file says what it has, and the widget shows it', async () => {
			// The archive account was the tenant's case file from the
			// start, so every send of the story had to include its
			// device (the relay refuses one that leaves it out); its
			// device (bvchat's profile "arkiv") comes online only now,
			// finds all of it waiting and marks each message journaled,
			// as bvchat-archiver does once the archive has it.
			arkivDevice = archive('arkiv');
			await arkivDevice.heard(/^caught up$/m);
			const w = widget();
			// Elisa's first message of the story: marked in the widget.
			const first = w.locator('li.msg', { hasText: `Hei Camilla ${CANARY}` });
			const firstRef = (await arkivDevice.heard(
				new RegExp(`^journaled ${await first.getAttribute('data-id')} (2026/\\d+)$`, 'm')))[1];
			await first.locator('.meta').getByText(new RegExp(`Lagt i saken ${firstRef}$`)).waitFor({ timeout: WAIT });
			// One she writes now reaches the case file's device, which
			// could read it, and comes back marked.
			const text = `Dette er til saken ${CANARY}`;
			await w.getByLabel('Skriv en melding').fill(text);
			await w.getByRole('button', { name: 'Send' }).press('Enter');
			const li = w.locator('li.msg', { hasText: text });
			await li.waitFor({ timeout: WAIT });
			const id = await li.getAttribute('data-id');
			const ref = (await arkivDevice.heard(new RegExp(`^journaled ${id} (2026/\\d+)$`, 'm')))[1];
			assert.notEqual(ref, firstRef);
			await li.locator('.meta').getByText(new RegExp(`Lagt i saken ${ref}$`)).waitFor({ timeout: WAIT });
			// Screen readers get it as text of that message.
			assert.match(await li.ariaSnapshot(), new RegExp(`Lagt i saken ${ref}`));
			await shot('journaled');
			await axeCheck(frame(), 'chat with journaled messages');
			// Camilla's terminal is told of every mark (one per message
			// here), and then her history shows this one.
			const told = () => [...camillaChat.out.matchAll(/^\* (\d+) messages? journaled in the case file$/gm)]
				.reduce((n, m) => n + Number(m[1]), 0);
			const marked = [...arkivDevice.out.matchAll(/^journaled /gm)].length;
			for (let i = 0; i < WAIT / 100 && told() < marked; i++)
				await new Promise((r) => setTimeout(r, 100));
			assert.equal(told(), marked, 'bvchat chat printed:\n' + camillaChat.out);
			await camillaChat.stop();
			assert.match(cli('camilla', 'history', '--conversation', conv),
				new RegExp(`, journaled ${ref}\\]: ${text}$`, 'm'));
			camillaChat = chat('camilla', conv);
			// Offline again: a case file that saw a member's key change
			// would hold its receipts (below, Camilla's reinstall).
			assert.equal(await arkivDevice.stop(), 0, 'test_archive_peer:\n' + arkivDevice.out);
			arkivDevice = null;
		});

		await t.test('a key change is told plainly and waits for a decision', async () => {
			// Camilla reinstalls: device 1 of her account with a new key.
			await camillaChat.stop();
			cli('camilla2', 'enroll', '--token', admin('issue-token', '--key', keyFile,
				'--account', camilla), '--replaces', '1');
			cli('camilla2', 'send', '--conversation', conv, 'Ny telefon, samme Camilla.');
			camillaChat = chat('camilla2', conv);
			const w = widget();
			await w.getByText('Sikkerhetskoden til Camilla er endret').waitFor({ timeout: WAIT });
			assert.equal(await w.getByText('Ny telefon, samme Camilla.').count(), 0);
			await shot('keychange');
			await axeCheck(frame(), 'key change');
			// By keyboard: the decision must not need a pointer.
			await w.getByRole('button', { name: 'Fortsett og vis den nye koden' }).focus();
			await page.keyboard.press('Enter');
			await w.getByRole('dialog').waitFor({ timeout: WAIT });
			assert.match(await w.getByRole('dialog').innerText(), /(\d{5}\s+){11}\d{5}/);
			await shot('safety');
			await axeCheck(frame(), 'safety code');
			// Closed by keyboard (Escape), as a modal dialog must allow.
			await page.keyboard.press('Escape');
			await w.getByRole('dialog').waitFor({ state: 'detached' });
			await w.getByText('Ny telefon, samme Camilla.').waitFor({ timeout: WAIT });
		});

		await t.test('a second tab gives way, and can take over', async () => {
			const page2 = await context.newPage();
			await page2.goto(host);
			await page2.getByRole('button', { name: 'Chat' }).click();
			const w2 = page2.frameLocator('iframe[title]');
			await w2.getByText('Chatten er åpen i en annen fane.').waitFor({ timeout: WAIT });
			await w2.getByRole('button', { name: 'Bruk den her' }).press('Enter');
			await w2.getByRole('heading', { name: 'Samtalene dine' }).waitFor({ timeout: WAIT });
			await widget().getByText('Chatten er åpen i en annen fane.').waitFor({ timeout: WAIT });
			await page2.close();
		});

		await t.test('sizes within the budget', async () => {
			const loader = gz(path.join(WIDGET, 'loader.js'));
			let app = 0;
			for (const f of fs.readdirSync(WIDGET))
				if (/\.(js|css|html|wasm)$/.test(f) && f !== 'loader.js') app += gz(path.join(WIDGET, f));
			fs.writeFileSync(path.join(SHOTS, 'sizes.json'), JSON.stringify({ loader, app }) + '\n');
			console.log(`# sizes gzipped: loader ${loader} B, app + wasm ${app} B`);
			assert.ok(loader <= 5 * 1024, `loader is ${loader} B gzipped`);
			assert.ok(app <= 300 * 1024, `app + wasm is ${app} B gzipped`);
		});

		assert.deepEqual(errors, [], 'no uncaught errors in the page');
		// Nothing of the conversation on the relay's side.
		assert.ok(!relayLog.includes(CANARY), 'canary in the relay log');
	} finally {
		await camillaChat.stop();
		if (arkivDevice) await arkivDevice.stop();
		await context.close();
		await stopRelay();
		fs.rmSync(WORK, { recursive: true, force: true });
	}
});
