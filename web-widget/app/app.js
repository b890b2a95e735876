// SPDX-License-Identifier: GPL-3.0-or-later
// app.js: the citizen's screens in the widget's frame: enroll, my
// conversations, a conversation (history as role="log", delivery states,
// the out-of-hours notice, key changes and safety codes), e-post threads
// (a written request with a subject, replies grouped under it, the expected
// answer time), attachments (photos, PDF, audio: chosen, checked against
// the relay's size cap before anything is encrypted, sent; received ones
// decrypted into object URLs, shown or offered for download), web push
// notifications ("notify me"), language. All
// state lives in libbvchat (client.js); this file draws it and never keeps
// a second copy of the history (it asks the library again when told).
//
// One tab at a time runs the client (Web Locks): a second tab of the same
// person says so and offers to take over; the first then lets go.
import { LANGS, STRINGS, lang, setLang, t } from './i18n.js';
import { startClient, redeemInvite, hostOrigin } from './client.js';
import { notifyStatus, notifyOn, notifyOff, notifyAnswered } from './notify.js';

const $ = (id) => document.getElementById(id);
const main = $('main');
const LOCK = 'bvchat-client';

let client = null;
let me = { account: '', device: 0 };
let cases = [];
let online = false;
let view = { name: 'loading' };
let keyChanges = []; // {account, device} waiting for the user's decision

// ---- attachments: limits and the files' object URLs -----------------------

// The relay's cap on one blob (max_blob_bytes, 25 MiB by default; the case
// view does not tell another), of ciphertext: the plaintext may be a
// little less (crypto_secretstream: a 24-byte header, 17 bytes per 64 KiB
// piece). A relay set lower answers BV_EBLOB_SIZE before any upload.
const BLOB_MAX = 26214400;
const FILES_MAX = 10;
const sealedSize = (n) => 24 + n + 17 * (Math.floor(n / 65536) + 1);
const FILE_MAX = (() => {
	let n = BLOB_MAX - 24 - 17 * (Math.floor(BLOB_MAX / 65536) + 1);
	while (sealedSize(n + 1) <= BLOB_MAX) n++;
	while (sealedSize(n) > BLOB_MAX) n--;
	return n;
})();
// libbvchat's allow list (docs/protocol.md); a few names browsers give
// for the same formats.
const TYPES = new Set(['image/jpeg', 'image/png', 'image/heic', 'image/webp',
	'application/pdf', 'audio/mpeg', 'audio/mp4', 'audio/ogg', 'audio/webm', 'text/plain']);
const TYPE_ALIAS = { 'image/jpg': 'image/jpeg', 'image/heif': 'image/heic',
	'audio/x-m4a': 'audio/mp4', 'audio/m4a': 'audio/mp4', 'audio/aac': 'audio/mp4', 'audio/mp3': 'audio/mpeg' };
// Shown inline (HEIC is not, in most browsers: offered as a file).
const INLINE = new Set(['image/jpeg', 'image/png', 'image/webp']);
const E = { BLOB_SIZE: -37, EQUOTA: -38, ENOBLOB: -43, ETAMPERED: -52 };

function fileType(f) {
	const ty = (f.type || '').toLowerCase();
	return TYPES.has(ty) ? ty : TYPE_ALIAS[ty] || null;
}

// A name the library takes: 1 … 255 bytes of UTF-8, no '/', '\\' or
// control characters.
function fileName(name) {
	let n = (name || '').replace(/[\/\\\u0000-\u001f\u007f]/g, '_').trim() || 'fil';
	const enc = new TextEncoder();
	while (enc.encode(n).length > 255) n = n.slice(0, -1);
	return n;
}

function sizeText(n) {
	const nf = (v, d) => new Intl.NumberFormat(locale(), { maximumFractionDigits: d }).format(v);
	if (n < 1024) return nf(n, 0) + ' B';
	if (n < 1048576) return nf(n / 1024, 0) + ' kB';
	return nf(n / 1048576, n < 10485760 ? 1 : 0) + ' MB';
}

// Decrypted files of the conversation on screen as object URLs
// ("mid/index" -> {url, type} or {error}); revoked when the screen goes.
const urls = new Map();
let urlsFor = null;

function dropUrls() {
	for (const u of urls.values()) if (u.url) URL.revokeObjectURL(u.url);
	urls.clear();
	urlsFor = null;
}

// The object URL of attachment index of message m: fetched and decrypted
// once per screen. Resolves to {url} or {error: i18n key}.
function attachmentUrl(m, index) {
	const key = m.message_id + '/' + index;
	let u = urls.get(key);
	if (u) return u.p;
	const a = m.attachments[index];
	u = {};
	u.p = client.fetchAttachment(m.message_id, index).then(({ rc, bytes }) => {
		if (rc !== 0 || !bytes) {
			urls.delete(key); // a later look may try again
			return { error: rc === E.ETAMPERED ? 'fileTampered' : rc === E.ENOBLOB ? 'fileGone' : 'fileFailed' };
		}
		if (urls.get(key) !== u) return { error: 'fileFailed' }; // screen gone
		u.url = URL.createObjectURL(new Blob([bytes], { type: a.type }));
		return { url: u.url };
	});
	urls.set(key, u);
	return u.p;
}

// ---- small helpers ------------------------------------------------------

function el(tag, attrs = {}, ...kids) {
	const e = document.createElement(tag);
	for (const [k, v] of Object.entries(attrs)) {
		if (v === undefined || v === null || v === false) continue;
		if (k === 'class') e.className = v;
		else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
		else if (k === 'text') e.textContent = v;
		else e.setAttribute(k, v === true ? '' : v);
	}
	for (const kid of kids.flat())
		if (kid !== null && kid !== undefined && kid !== false)
			e.append(kid instanceof Node ? kid : String(kid));
	return e;
}

// Puts a screen's parts in <main>; arrays (lists of parts) are spread,
// null and false left out.
function show(...nodes) {
	if (view.name !== 'chat' || view.conversation !== urlsFor) dropUrls();
	if (view.name === 'chat') urlsFor = view.conversation;
	main.className = view.name;
	main.replaceChildren(...nodes.flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false));
}

// Moves focus to a view's heading so screen readers hear the new screen.
function focusHeading() {
	const h = main.querySelector('h2');
	if (h) {
		h.setAttribute('tabindex', '-1');
		h.focus();
	}
}

function people() {
	const m = new Map();
	for (const cs of cases)
		for (const p of cs.people) m.set(p.account, p);
	return m;
}

function personLabel(p) {
	if (!p) return '?';
	const role = t('role.' + p.role);
	return p.name ? `${p.name} (${role})` : role;
}

function nameOf(account) {
	if (account === me.account) return t('you');
	const p = people().get(account);
	return p ? (p.name || t('role.' + p.role)) : account.slice(0, 8);
}

function timeText(ms) {
	const loc = { nb: 'nb-NO', nn: 'nn-NO', en: 'en-GB', se: 'se-NO' }[lang()];
	let f;
	try {
		f = new Intl.DateTimeFormat(loc, { dateStyle: 'short', timeStyle: 'short' });
	} catch {
		f = new Intl.DateTimeFormat('nb-NO', { dateStyle: 'short', timeStyle: 'short' });
	}
	return f.format(new Date(ms));
}

function locale() {
	return { nb: 'nb-NO', nn: 'nn-NO', en: 'en-GB', se: 'se-NO' }[lang()];
}

// "fredag 27. november": a day as people say it. A browser without the
// language's calendar words (Northern Sami in some) says it in bokmål
// rather than in English.
function dayText(ms) {
	const opts = { weekday: 'long', day: 'numeric', month: 'long' };
	let f = null;
	try {
		f = new Intl.DateTimeFormat(locale(), opts);
		if (!f.resolvedOptions().locale.startsWith(lang())) f = null;
	} catch {
		f = null;
	}
	return (f || new Intl.DateTimeFormat('nb-NO', opts)).format(new Date(ms));
}

// now plus days working days (Monday–Friday, UTC weekdays): what
// libbvchat will set as answer_by (client.c add_working_days), shown
// before sending.
function answerByFrom(now, days) {
	let t = now;
	while (days > 0) {
		t += 86400000;
		const wday = (Math.floor(t / 86400000) + 4) % 7;
		if (wday !== 0 && wday !== 6) days--;
	}
	return t;
}

function telLink(number) {
	return el('a', { href: 'tel:' + number.replace(/[^+0-9]/g, '') }, number);
}

// ---- the host page ------------------------------------------------------

function tellHost(msg) {
	const origin = hostOrigin();
	if (origin && window.parent !== window)
		window.parent.postMessage({ bvchat: 1, ...msg }, origin);
}

window.addEventListener('message', (e) => {
	// Only the page that embeds us, only our protocol version.
	if (e.source !== window.parent || e.origin !== hostOrigin()) return;
	const d = e.data;
	if (!d || d.bvchat !== 1) return;
	if (d.type === 'lang' && STRINGS[d.lang]) chooseLang(d.lang);
});

// ---- language -----------------------------------------------------------

function chooseLang(l) {
	setLang(l);
	try {
		localStorage.setItem('bvchat.lang', lang());
	} catch {
		/* storage may be off: the choice lasts for this page */
	}
	document.documentElement.lang = lang();
	document.title = t('title');
	$('title').textContent = t('title');
	$('lang-label').textContent = t('language');
	$('casefile').textContent = t('caseFile');
	$('lang').value = lang();
	drawConn();
	redraw();
}

function initLang() {
	const sel = $('lang');
	for (const [code, name] of Object.entries(LANGS))
		sel.append(el('option', { value: code, lang: code }, name));
	sel.addEventListener('change', () => chooseLang(sel.value));
	let l = new URLSearchParams(location.search).get('lang');
	try {
		l = localStorage.getItem('bvchat.lang') || l;
	} catch {
		/* no storage: the page's choice */
	}
	if (!l) {
		const nav = (navigator.language || '').toLowerCase();
		l = nav.startsWith('nn') ? 'nn' : nav.startsWith('se') ? 'se'
			: nav.startsWith('en') ? 'en' : 'nb';
	}
	chooseLang(l);
}

// ---- connection state ---------------------------------------------------

function drawConn() {
	const c = $('conn');
	if (!client || view.name === 'enroll' || view.name === 'loading') {
		c.textContent = '';
		c.className = 'conn';
		return;
	}
	c.textContent = online ? t('online') : t('offline');
	c.className = online ? 'conn' : 'conn offline';
}

// ---- views --------------------------------------------------------------

function redraw() {
	switch (view.name) {
	case 'enroll': return drawEnroll(false);
	case 'list': return drawList(false);
	case 'chat': return drawChat(false);
	case 'epost': return drawEpost(false);
	case 'message': return show(el('p', { role: 'alert' }, t(view.key)));
	case 'othertab': return otherTab();
	case 'nostorage': return noStorage();
	default: return show(el('p', {}, t('loading')));
	}
}

function drawEnroll(focus = true) {
	view = { name: 'enroll', busy: view.busy, error: view.error };
	const input = el('input', {
		type: 'text', id: 'code', name: 'code', autocomplete: 'one-time-code',
		autocapitalize: 'characters', spellcheck: 'false',
		'aria-describedby': 'code-help' + (view.error ? ' code-error' : ''),
		'aria-invalid': view.error ? 'true' : null,
	});
	const form = el('form', { class: 'field', onsubmit: (e) => { e.preventDefault(); enroll(input.value); } },
		el('label', { for: 'code' }, t('codeLabel')),
		el('p', { class: 'help', id: 'code-help' }, t('codeHelp')),
		input,
		view.error ? el('p', { class: 'error', id: 'code-error', role: 'alert' }, t(view.error)) : null,
		el('button', { type: 'submit', disabled: view.busy }, view.busy ? t('enrolling') : t('connect')));
	show(el('h2', {}, t('enrollHeading')), el('p', {}, t('enrollIntro')), form);
	if (focus) input.focus();
}

async function enroll(code) {
	code = code.trim();
	if (!code || view.busy) return;
	view.busy = true;
	view.error = null;
	drawEnroll(false);
	let token = code;
	if (!code.startsWith('bvt1.')) {
		try {
			token = await redeemInvite(code);
		} catch (e) {
			view.busy = false;
			view.error = e.network ? 'enrollNetwork' : 'enrollFailed';
			drawEnroll();
			return;
		}
	}
	const r = client.call({ op: 'enroll', token });
	if (r.rc !== 0) {
		view.busy = false;
		view.error = 'enrollFailed';
		drawEnroll();
	}
	// The outcome comes as status "enrolled" or "refused".
}

function conversationsOf() {
	const out = [];
	for (const cs of cases)
		for (const cv of cs.conversations)
			out.push({ cs, cv });
	return out;
}

function membersText(cv) {
	return cv.members.filter((p) => p.account !== me.account && p.role !== 'archive')
		.map(personLabel).join(', ');
}

function drawList(focus = true) {
	view = { name: 'list' };
	const convs = conversationsOf();
	const last = new Map();
	const r = client.call({ op: 'conversations' });
	for (const c of r.conversations || []) last.set(c.conversation, c);
	const items = convs.map(({ cs, cv }) => {
		const l = last.get(cv.conversation);
		return el('li', {}, el('button', { type: 'button', onclick: () => openChat(cv.conversation) },
			el('span', { class: 'who' }, membersText(cv) || cs.municipality),
			el('span', { class: 'when' }, cs.municipality,
				l ? ' · ' + timeText(l.last_time_ms) : '')));
	});
	const startable = cases.filter((cs) => !cs.conversations.some((cv) => cv.kind === 'team' && !cv.closed));
	show(el('h2', {}, t('conversations')),
		items.length ? el('ul', { class: 'list' }, items) : el('p', {}, t('noConversations')),
		startable.map((cs) => el('button', { type: 'button', onclick: () => client.call({ op: 'create', case_id: cs.case_id }) }, t('start'))),
		notifySection());
	if (focus) focusHeading();
	drawNotify();
}

// ---- "notify me" (web push) ----------------------------------------------

let notifyBusy = false;
let notifyError = null;

function notifySection() {
	return el('section', { class: 'settings', 'aria-labelledby': 'notify-h' },
		el('h3', { id: 'notify-h' }, t('notify')),
		el('p', { class: 'help', id: 'notify-help' }, t('notifyHelp')),
		el('div', { id: 'notify' }));
}

// The setting's state and its one button, drawn again when it changes.
async function drawNotify() {
	const box = $('notify');
	if (!box) return;
	const st = await notifyStatus();
	if (!$('notify')) return;
	const kids = [];
	if (st === 'unsupported') {
		kids.push(el('p', {}, t('notifyUnsupported')));
	} else if (st === 'frame') {
		// A cross-site frame is refused notifications: the chat as a
		// page of its own can have them.
		const own = new URL(location.href);
		own.searchParams.delete('origin');
		kids.push(el('p', {}, t('notifyFrame')),
			el('a', { class: 'button', href: own.href, target: '_blank', rel: 'noopener' }, t('openOwn')));
	} else if (st === 'denied') {
		kids.push(el('p', {}, t('notifyDenied')));
	} else {
		kids.push(el('p', { role: 'status', id: 'notify-state' }, st === 'on' ? t('notifyOn') : t('notifyOff')),
			el('button', {
				type: 'button', disabled: notifyBusy, 'aria-describedby': 'notify-help',
				onclick: () => toggleNotify(st !== 'on'),
			}, st === 'on' ? t('notifyTurnOff') : t('notifyTurnOn')));
	}
	if (notifyError) kids.push(el('p', { class: 'error', role: 'alert' }, t(notifyError)));
	box.replaceChildren(...kids);
}

async function toggleNotify(on) {
	if (notifyBusy) return;
	notifyBusy = true;
	notifyError = null;
	try {
		const r = on ? await notifyOn(client, lang()) : await notifyOff(client);
		if (r !== 'ok') notifyError = r === 'denied' ? null : 'notifyFailed';
	} catch {
		notifyError = 'notifyFailed';
	}
	notifyBusy = false;
	await drawNotify();
	main.querySelector('#notify button')?.focus();
}

function findConversation(id) {
	return conversationsOf().find(({ cv }) => cv.conversation === id);
}

function openChat(id) {
	view = { name: 'chat', conversation: id, items: new Map(), threads: new Map() };
	drawChat(true);
}

function stateText(m) {
	if (!m.outgoing) return '';
	return t(m.state);
}

function messageItem(m) {
	if (m.notice) {
		const n = m.notice;
		const kids = [el('p', { class: 'text' }, n.kind === 'out_of_hours' ? t('outOfHours') : t('serviceNotice'))];
		if (n.kind === 'out_of_hours' && n.phone)
			kids.push(el('p', { class: 'text' }, t('callNow') + ' ', telLink(n.phone)));
		if (n.kind === 'out_of_hours' && n.emergency_phone)
			kids.push(el('p', { class: 'text' }, t('emergency') + ' ', telLink(n.emergency_phone)));
		return el('li', { class: 'msg notice', 'data-id': m.message_id },
			el('p', { class: 'from' }, n.municipality || t('serviceNotice')), kids,
			el('p', { class: 'meta' }, timeText(m.time_ms)));
	}
	const mine = m.sender === me.account;
	const meta = [timeText(m.time_ms)];
	if (mine) meta.push(stateText(m));
	if (m.journal) meta.push(t('journaled') + ' ' + m.journal);
	return el('li', { class: 'msg' + (mine ? ' mine' : '') + (m.state === 'failed' ? ' failed' : ''), 'data-id': m.message_id },
		el('p', { class: 'from' }, nameOf(m.sender)),
		el('p', { class: 'text' }, m.unsupported ? t('unsupported')
			: m.state === 'undecryptable' ? t('undecryptable') : m.text),
		// The promise the service made for our own e-post, plainly.
		m.subject && mine && m.answer_by_ms > 0
			? el('p', { class: 'answer-by' }, t('answerBy', { date: dayText(m.answer_by_ms) })) : null,
		m.attachments && m.state !== 'undecryptable' ? attachmentList(m) : null,
		el('p', { class: 'meta' }, meta.join(' · ')));
}

// A message's files: a photo as a thumbnail (fetched and decrypted at
// once) with a link to the file; anything else as a button that fetches
// it, then a link to download it, with its name and size.
function attachmentList(m) {
	return el('ul', { class: 'files' }, m.attachments.map((a, i) => {
		const li = el('li', { class: 'file' });
		const label = `${a.name} (${sizeText(a.size)})`;
		if (a.state === 'uploading') {
			li.append(el('span', {}, label), ' ', el('span', { class: 'meta' }, m.state === 'failed' ? t('failed') : t('uploading')));
			return li;
		}
		const done = (r) => {
			if (r.error) {
				li.replaceChildren(el('span', {}, label), ' ', el('span', { class: 'error' }, t(r.error)));
				return;
			}
			const link = el('a', { href: r.url, download: a.name, class: 'download' }, label);
			li.replaceChildren(INLINE.has(a.type)
				? el('img', { src: r.url, alt: t('imageAlt', { name: a.name }), class: 'thumb' }) : null, link);
		};
		if (INLINE.has(a.type)) {
			li.append(el('span', { class: 'meta' }, label + ' · ' + t('fetching')));
			attachmentUrl(m, i).then(done);
		} else {
			li.append(el('button', {
				type: 'button', class: 'plain',
				onclick: (e) => {
					e.currentTarget.disabled = true;
					attachmentUrl(m, i).then((r) => {
						done(r);
						// Asked for by a click: download it now too.
						li.querySelector('a.download')?.click();
					});
				},
			}, t('getFile', { name: a.name, size: sizeText(a.size) })));
		}
		return li;
	}));
}

function keyBanner(cv) {
	const members = new Set(cv.members.map((p) => p.account));
	const mine = keyChanges.filter((k) => members.has(k.account));
	return mine.map((k) => el('div', { class: 'banner', role: 'alert' },
		el('p', {}, t('keyChanged', { name: nameOf(k.account) })),
		el('button', { type: 'button', onclick: () => client.call({ op: 'accept', account: k.account, device: k.device }) }, t('accept'))));
}

// Draws the key-change warnings again, and nothing else of the screen (so
// the history, the draft and the focus stay where they are).
function drawBanners() {
	const box = $('banners');
	const found = findConversation(view.conversation);
	if (box && found) box.replaceChildren(...keyBanner(found.cv));
}

function drawChat(focus = true) {
	const found = findConversation(view.conversation);
	if (!found) return drawList(focus);
	const { cv } = found;
	// role="log" on a wrapper: on the list itself it would hide the
	// list's items from assistive technology.
	const log = el('ol', { class: 'log-list', id: 'log' });
	const logBox = el('div', { class: 'log', role: 'log', 'aria-live': 'polite', 'aria-label': t('history') }, log);
	const text = el('textarea', { id: 'text', rows: '2', maxlength: '8192', 'aria-describedby': 'casefile' });
	text.addEventListener('keydown', (e) => {
		if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
			e.preventDefault();
			sendNow(text);
		}
	});
	const draft = view.draft || '';
	text.value = draft;
	text.addEventListener('input', () => { view.draft = text.value; });
	const others = cv.members.filter((p) => p.account !== me.account && p.role !== 'archive');
	const files = el('input', {
		type: 'file', id: 'files', class: 'sr-only', multiple: true,
		accept: 'image/*,application/pdf,audio/*', 'aria-describedby': 'files-help',
		onchange: (e) => { addFiles([...e.target.files]); e.target.value = ''; },
	});
	show(el('button', { type: 'button', class: 'plain', onclick: () => drawList() }, '← ' + t('back')),
		el('h2', {}, membersText(cv)),
		el('p', { class: 'members' }, t('safety') + ': ',
			others.map((p) => el('button', { type: 'button', class: 'plain', onclick: () => showSafety(p.account) }, p.name || t('role.' + p.role)))),
		el('div', { id: 'banners' }, keyBanner(cv)),
		el('button', { type: 'button', class: 'plain', onclick: () => drawEpost(true, null) }, t('epostStart')),
		logBox,
		el('form', { class: 'composer', onsubmit: (e) => { e.preventDefault(); sendNow(text); } },
			el('div', { class: 'attach' }, files,
				el('label', { for: 'files', class: 'button plain' }, t('attach')),
				el('p', { class: 'help', id: 'files-help' },
					t('attachHelp', { max: sizeText(FILE_MAX), n: FILES_MAX })),
				el('ul', { class: 'chips', id: 'chips', 'aria-label': t('chosenFiles') }),
				el('p', { class: 'error', id: 'compose-error', role: 'alert' })),
			el('div', { class: 'field' }, el('label', { for: 'text' }, t('message')), text),
			el('button', { type: 'submit', id: 'send' }, t('send'))));
	drawChips();
	view.items = new Map();
	view.threads = new Map();
	fillLog(true);
	if (focus) focusHeading();
}

// Adds what is new to the log and updates what changed, without drawing
// the rest again (a screen reader then reads only the new messages).
function fillLog(first = false) {
	const log = $('log');
	if (!log) return;
	const r = client.call({ op: 'history', conversation: view.conversation, after_seq: 0 });
	const unread = new Map(); // sender -> ids to mark read
	const last = new Map(); // thread -> its newest message
	for (const m of r.messages || []) {
		if (m.subject) last.set(m.thread, m);
		const old = view.items.get(m.message_id);
		const key = m.state + '|' + (m.journal || '') + '|' + m.text.length + '|' +
			(m.attachments || []).map((a) => a.state).join();
		if (old && old.key === key) continue;
		const li = messageItem(m);
		if (old) old.li.replaceWith(li);
		else if (m.subject) threadOf(m, log).list.append(li);
		else log.append(li);
		view.items.set(m.message_id, { li, key });
		if (!m.notice && !m.outgoing && m.sender !== me.account && m.state !== 'read') {
			if (!unread.has(m.sender)) unread.set(m.sender, []);
			unread.get(m.sender).push(m.message_id);
		}
	}
	for (const [id, m] of last) threadStatus(view.threads.get(id), m);
	if (!view.items.size && !log.querySelector('.empty'))
		log.append(el('li', { class: 'empty' }, t('noMessages')));
	else if (view.items.size) log.querySelector('.empty')?.remove();
	if (document.visibilityState === 'visible' && online) markRead(unread);
	// Follow the newest message when the reader is at the end; only the
	// history scrolls (scrollIntoView would move the whole screen).
	const box = log.parentElement;
	if (first || box.scrollHeight - box.scrollTop - box.clientHeight < 200)
		box.scrollTop = box.scrollHeight;
}

// An e-post thread in the log: its subject as a heading, the expected
// answer time, its messages in order, and a reply button. Made where its
// first message comes (the subject of that message; a reply's "Sv: …" when
// the start is not here).
function threadOf(m, log) {
	let th = view.threads.get(m.thread);
	if (th) return th;
	const hid = 'th-' + m.thread;
	const subject = m.subject.replace(/^(Sv|Re|SV|RE): /, '');
	const head = el('h3', { id: hid }, subject);
	const status = el('p', { class: 'answer-by' });
	const list = el('ol', { class: 'thread-list', 'aria-labelledby': hid });
	const li = el('li', { class: 'thread', 'data-thread': m.thread },
		el('p', { class: 'kind' }, t('epost')), head, status, list,
		el('button', {
			type: 'button', class: 'plain', 'aria-describedby': hid,
			onclick: () => drawEpost(true, { thread: m.thread, subject }),
		}, t('reply')));
	log.append(li);
	th = { li, list, status, subject, shown: '' };
	view.threads.set(m.thread, th);
	return th;
}

// "Answered" on a thread once the service has written after our own
// e-post (the answer time stays on that e-post).
function threadStatus(th, m) {
	if (!th) return;
	const mine = m.sender === me.account;
	let s = '';
	if (!mine && [...th.list.children].some((li) => li.classList.contains('mine'))) s = t('answered');
	if (s !== th.shown) {
		th.status.textContent = s;
		th.shown = s;
	}
}

// The e-post screen: a new written request (subject and text), or a reply
// in a thread (text only; the subject is the thread's, "Sv: " before it).
function drawEpost(focus = true, reply) {
	if (reply !== undefined)
		view = { name: 'epost', conversation: view.conversation, reply, subject: '', text: '', error: null };
	const found = findConversation(view.conversation);
	if (!found) return drawList(focus);
	const days = found.cs.answer_days || 5;
	const r = view.reply;
	const subject = r ? null : el('input', {
		type: 'text', id: 'subject', name: 'subject', maxlength: '200', autocomplete: 'off',
		'aria-describedby': 'subject-help' + (view.error ? ' epost-error' : ''),
		'aria-invalid': view.error === 'epostMissing' && !view.subject.trim() ? 'true' : null,
	});
	if (subject) {
		subject.value = view.subject;
		subject.addEventListener('input', () => { view.subject = subject.value; });
	}
	const text = el('textarea', {
		id: 'epost-text', rows: '6', maxlength: '8192', 'aria-describedby': 'answer-by casefile',
		'aria-invalid': view.error === 'epostMissing' && !view.text.trim() ? 'true' : null,
	});
	text.value = view.text;
	text.addEventListener('input', () => { view.text = text.value; });
	const back = () => { const id = view.conversation; openChat(id); };
	show(el('button', { type: 'button', class: 'plain', onclick: back }, '← ' + t('cancel')),
		el('h2', {}, r ? t('replyHeading', { subject: r.subject }) : t('epostHeading')),
		r ? null : el('p', {}, t('epostIntro')),
		el('form', { class: 'epost', onsubmit: (e) => { e.preventDefault(); sendEpost(); } },
			subject ? el('div', { class: 'field' },
				el('label', { for: 'subject' }, t('subject')),
				el('p', { class: 'help', id: 'subject-help' }, t('subjectHelp')),
				subject) : null,
			el('div', { class: 'field' },
				el('label', { for: 'epost-text' }, r ? t('replyText') : t('epostText')), text),
			el('p', { class: 'answer-by', id: 'answer-by' },
				t('answerBy', { date: dayText(answerByFrom(Date.now(), days)) })),
			view.error ? el('p', { class: 'error', id: 'epost-error', role: 'alert' }, t(view.error)) : null,
			el('button', { type: 'submit' }, r ? t('sendReply') : t('sendEpost'))));
	if (focus) focusHeading();
}

function sendEpost() {
	const r = view.reply;
	const subject = r ? 'Sv: ' + r.subject.slice(0, 196) : view.subject.trim();
	const text = view.text.trim();
	if (!subject || !text) {
		view.error = 'epostMissing';
		drawEpost(false);
		main.querySelector('[aria-invalid="true"]')?.focus();
		return;
	}
	const req = { op: 'send_email', conversation: view.conversation, subject, text };
	if (r) req.thread = r.thread;
	const res = client.call(req);
	if (res.rc !== 0) {
		view.error = 'epostFailed';
		drawEpost(false);
		return;
	}
	openChat(view.conversation);
}

function markRead(unread) {
	for (const [sender, ids] of unread) {
		for (let i = 0; i < ids.length; i += 100) {
			const part = ids.slice(i, i + 100);
			// The library marks them read in the history at once, so
			// the next look at it does not ask again.
			client.call({ op: 'read', conversation: view.conversation, sender, message_ids: part });
		}
	}
}

// The chosen files (File objects, read only when sent) and the composer's
// error, drawn in place.
function addFiles(list) {
	view.files = view.files || [];
	view.fileError = null;
	for (const f of list) {
		if (view.files.length >= FILES_MAX) {
			view.fileError = t('fileTooMany', { n: FILES_MAX });
			break;
		}
		if (!fileType(f)) view.fileError = t('fileType', { name: fileName(f.name) });
		else if (f.size > FILE_MAX) view.fileError = t('fileTooBig', { name: fileName(f.name), max: sizeText(FILE_MAX) });
		else view.files.push(f);
	}
	drawChips();
}

function drawChips() {
	const ul = $('chips');
	if (!ul) return;
	ul.replaceChildren(...(view.files || []).map((f, i) => el('li', { class: 'chip' },
		el('span', {}, `${fileName(f.name)} (${sizeText(f.size)})`),
		el('button', {
			type: 'button', class: 'plain', 'aria-label': t('removeFile', { name: fileName(f.name) }),
			onclick: () => {
				view.files.splice(i, 1);
				drawChips();
				$('files')?.focus();
			},
		}, '×'))));
	ul.hidden = !ul.children.length;
	const err = $('compose-error');
	if (err) err.textContent = view.fileError || '';
	const send = $('send');
	if (send) {
		send.disabled = !!view.busy;
		send.textContent = view.busy ? t('sending') : t('send');
	}
}

async function sendNow(text) {
	const s = text.value.trim();
	const chosen = view.files || [];
	if ((!s && !chosen.length) || view.busy) return;
	let r;
	if (chosen.length) {
		const conversation = view.conversation;
		view.busy = true;
		view.fileError = null;
		drawChips();
		const files = [];
		for (const f of chosen) {
			try {
				files.push({ name: fileName(f.name), type: fileType(f), bytes: new Uint8Array(await f.arrayBuffer()) });
			} catch {
				view.busy = false;
				view.fileError = t('fileRead', { name: fileName(f.name) });
				drawChips();
				return;
			}
		}
		if (view.name !== 'chat' || view.conversation !== conversation) return;
		r = client.sendFiles({ conversation, text: s }, files);
		for (const f of files) f.bytes.fill(0);
		view.busy = false;
		if (r.rc === 0) view.files = [];
		else view.fileError = sendError(r.rc);
		drawChips();
	} else {
		r = client.call({ op: 'send', conversation: view.conversation, text: s });
	}
	if (r.rc === 0) {
		text.value = '';
		view.draft = '';
		fillLog(true);
	}
	text.focus();
}

function sendError(rc) {
	if (rc === E.BLOB_SIZE) return t('relayTooBig');
	if (rc === E.EQUOTA) return t('quotaFull');
	return t('sendFailed');
}

// The safety code dialog: one code per device of the person we know of.
function showSafety(account, devices) {
	if (!devices) {
		devices = new Set();
		for (const { cv } of conversationsOf()) {
			const r = client.call({ op: 'history', conversation: cv.conversation, after_seq: 0 });
			for (const m of r.messages || [])
				if (m.sender === account && m.sender_device) devices.add(m.sender_device);
		}
		if (!devices.size) devices.add(1);
	}
	const codes = [];
	for (const d of devices) {
		const r = client.call({ op: 'safety', account, device: d });
		if (r.rc === 0) codes.push(r.number);
	}
	const close = el('button', { type: 'button', onclick: () => dlg.close() }, t('close'));
	const dlg = el('dialog', { 'aria-labelledby': 'safety-h' },
		el('h2', { id: 'safety-h' }, t('safetyFor', { name: nameOf(account) })),
		codes.length ? codes.map((c) => el('p', { class: 'digits', 'aria-label': c.match(/.{5}/g).join(' ') },
			c.match(/.{5}/g).map((g) => el('span', {}, g))))
			: el('p', {}, t('safetyNone')),
		el('p', { class: 'help' }, t('safetyHelp')),
		close);
	// One code on the screen at a time: a new one (another accepted key)
	// takes the place of the one open, and focus goes back where it was
	// before the first.
	const open = document.querySelector('dialog[open]');
	const back = open ? open.bvBack : document.activeElement;
	if (open) {
		open.bvBack = null;
		open.close();
	}
	dlg.bvBack = back;
	dlg.addEventListener('close', () => { dlg.remove(); dlg.bvBack?.focus?.(); });
	document.body.append(dlg);
	dlg.showModal();
	close.focus();
}

// ---- library events -----------------------------------------------------

function loadCases() {
	const r = client.call({ op: 'cases' });
	if (r.rc === 0) cases = r.cases;
}

function onEvent(ev) {
	switch (ev.ev) {
	case 'status':
		if (ev.status === 'online' || ev.status === 'caught_up') online = true;
		if (ev.status === 'offline') online = false;
		if (ev.status === 'enrolled') {
			me = client.call({ op: 'whoami' });
			online = true;
			loadCases();
			drawList();
		}
		if (ev.status === 'refused') {
			if (view.name === 'enroll') {
				view.busy = false;
				view.error = 'enrollFailed';
				drawEnroll();
			} else {
				view = { name: 'message', key: 'refused' };
				redraw();
			}
		}
		if (ev.status === 'displaced') {
			view = { name: 'message', key: 'displaced' };
			redraw();
		}
		drawConn();
		if (view.name === 'chat' && ev.status === 'caught_up') fillLog();
		break;
	case 'cases':
		if (ev.rc === 0) {
			loadCases();
			if (view.name === 'list') drawList(false);
			// Who is in it may have changed: the screen again, the
			// draft kept (view.draft), the reader's place in the history
			// not.
			if (view.name === 'chat' && ev.changed) drawChat(false);
		}
		break;
	case 'conversation_created':
		if (ev.rc === 0 && ev.conversation) {
			loadCases();
			openChat(ev.conversation);
		}
		break;
	case 'message':
	case 'notice':
	case 'receipt':
	case 'sent':
		// A file the relay refused (too large, no room): said in the
		// composer too, not only as "failed" on the message.
		if (ev.ev === 'sent' && ev.rc < 0 && view.name === 'chat') {
			view.fileError = sendError(ev.rc);
			drawChips();
		}
		if (view.name === 'chat') fillLog();
		else if (view.name === 'list') drawList(false);
		if (ev.ev === 'message' && ev.sender !== me.account) tellHost({ type: 'message' });
		break;
	case 'key_changed':
		if (keyChanges.some((k) => k.account === ev.account && k.device === ev.device))
			break; // already told
		keyChanges.push({ account: ev.account, device: ev.device });
		if (view.name === 'chat') drawBanners();
		break;
	case 'identity_accepted':
		if (ev.rc === 0) {
			keyChanges = keyChanges.filter((k) => !(k.account === ev.account && k.device === ev.device));
			if (view.name === 'chat') drawBanners();
			// The new key is trusted now: its code is the one to compare.
			showSafety(ev.account, [ev.device]);
		}
		break;
	case 'notify_set':
		notifyAnswered(ev);
		break;
	case 'storage_error':
		$('conn').textContent = t('storageError');
		break;
	default:
		break;
	}
}

document.addEventListener('visibilitychange', () => {
	if (document.visibilityState === 'visible' && view.name === 'chat') fillLog();
});

// ---- start --------------------------------------------------------------

async function run() {
	client = await startClient(onEvent);
	me = client.call({ op: 'whoami' });
	if (!me.account) {
		view = { name: 'enroll' };
		drawEnroll();
	} else {
		loadCases();
		client.call({ op: 'connect' });
		drawList();
	}
	drawConn();
	tellHost({ type: 'ready' });
}

// The browser keeps this frame from storage (third-party storage blocked,
// as in a private window): the chat cannot keep keys here, but works as a
// page of its own.
function noStorage() {
	view = { name: 'nostorage' };
	const own = new URL(location.href);
	own.searchParams.delete('origin');
	show(el('p', { role: 'alert' }, t('noStorage')),
		el('a', { class: 'button', href: own.href, target: '_blank', rel: 'noopener' }, t('openOwn')));
}

async function storageOk() {
	try {
		await navigator.locks.query();
		return true;
	} catch {
		return false;
	}
}

function otherTab() {
	view = { name: 'othertab' };
	show(el('p', { role: 'alert' }, t('otherTab')),
		el('button', { type: 'button', onclick: () => take(true) }, t('useHere')));
}

// Runs the client while this tab holds the lock; a tab that takes it over
// (steal) makes ours end: the client closes and this tab says so.
function take(steal) {
	navigator.locks.request(LOCK, steal ? { steal: true } : { ifAvailable: true }, async (lock) => {
		if (!lock) {
			otherTab();
			return;
		}
		await run();
		await new Promise(() => {}); // held until stolen or the tab closes
	}).catch(() => {
		if (client) {
			client.close();
			client = null;
		}
		otherTab();
	});
}

initLang();
storageOk().then((ok) => (ok ? take(false) : noStorage()));
