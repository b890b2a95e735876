// SPDX-License-Identifier: GPL-3.0-or-later
// notify.js: "notify me" — a Web Push subscription for this browser, kept by
// the relay (notify_set through libbvchat: the bvweb op "notify_set"), so
// bvchat-notifier can say "you have a new message" while no device of the
// person has picked it up. The service worker (sw.js) shows what arrives.
//
// A cross-site frame is refused notification permission by browsers: then
// the state is "frame" and the app offers the chat as a page of its own.
// The subscription is made with the relay's VAPID public key, which the
// relay gives in notify_set's answer; without it nothing is subscribed.

const SW = 'sw.js';
const FLAG = 'bvchat.notify';

function supported() {
	return 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;
}

function framed() {
	return window.parent !== window;
}

function remember(on) {
	try {
		if (on) localStorage.setItem(FLAG, 'on');
		else localStorage.removeItem(FLAG);
	} catch {
		/* no storage: the state is read from the subscription */
	}
}

async function subscription() {
	const reg = await navigator.serviceWorker.getRegistration(SW);
	return reg ? reg.pushManager.getSubscription() : null;
}

// "unsupported", "frame" (a cross-site frame: permission is refused
// there), "denied", "on" or "off".
export async function notifyStatus() {
	if (!supported()) return 'unsupported';
	if (Notification.permission === 'denied') return framed() ? 'frame' : 'denied';
	if (framed() && Notification.permission !== 'granted') return 'frame';
	try {
		return (await subscription()) && localStorage.getItem(FLAG) === 'on' ? 'on' : 'off';
	} catch {
		return 'off';
	}
}

function b64url(buf) {
	let s = '';
	for (const b of new Uint8Array(buf)) s += String.fromCharCode(b);
	return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function fromB64url(s) {
	const b = atob(s.replace(/-/g, '+').replace(/_/g, '/'));
	return Uint8Array.from(b, (c) => c.charCodeAt(0));
}

// One notify_set at a time (the button is off meanwhile): its answer comes
// as the library's event {ev: "notify_set", rc, vapid_public_key}, which
// app.js hands to notifyAnswered().
let pending = null;

export function notifyAnswered(ev) {
	const p = pending;
	pending = null;
	if (p) p(ev);
}

function notifySet(client, req) {
	return new Promise((resolve) => {
		const timer = setTimeout(() => notifyAnswered({ rc: -1 }), 30000);
		pending = (ev) => {
			clearTimeout(timer);
			resolve(ev);
		};
		const r = client.call({ op: 'notify_set', ...req });
		if (r.rc !== 0) notifyAnswered({ rc: r.rc });
	});
}

// Turns notifications on; call from a click (permission needs a user
// gesture). Returns "ok", "denied" or "failed".
export async function notifyOn(client, language) {
	if (!supported()) return 'failed';
	const perm = await Notification.requestPermission();
	if (perm !== 'granted') return 'denied';
	const reg = await navigator.serviceWorker.register(SW, { scope: './' });
	await navigator.serviceWorker.ready;
	// First ask for the relay's key (and set the language of the text);
	// then subscribe with it, then hand the subscription over.
	const first = await notifySet(client, { language });
	if (first.rc !== 0 || !first.vapid_public_key) return 'failed';
	let sub = await reg.pushManager.getSubscription();
	if (sub) await sub.unsubscribe(); // its key may be an older one
	sub = await reg.pushManager.subscribe({
		userVisibleOnly: true,
		applicationServerKey: fromB64url(first.vapid_public_key),
	});
	const done = await notifySet(client, {
		channel: 'webpush', language,
		endpoint: sub.endpoint,
		p256dh: b64url(sub.getKey('p256dh')),
		auth: b64url(sub.getKey('auth')),
	});
	if (done.rc !== 0) {
		await sub.unsubscribe().catch(() => {});
		return 'failed';
	}
	remember(true);
	return 'ok';
}

// Turns them off: the relay forgets the subscription, the browser drops it.
export async function notifyOff(client) {
	const done = await notifySet(client, { channel: 'none', endpoint: '' });
	if (done.rc !== 0) return 'failed';
	remember(false);
	const sub = supported() ? await subscription().catch(() => null) : null;
	if (sub) await sub.unsubscribe().catch(() => {});
	return 'ok';
}
