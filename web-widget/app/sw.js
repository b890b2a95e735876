// SPDX-License-Identifier: GPL-3.0-or-later
// sw.js: the widget's service worker (scope /widget/), for Web Push only:
// it shows the title and text a push brings — bvchat-notifier's neutral
// template, no content and no sender — and a click on it opens the chat (focuses a
// window of it when one is open). It caches nothing and reads no storage.
const TITLE = 'bvchat';

// What a push brings (docs/protocol.md, notify_set): JSON {"title", "body"},
// the tenant's neutral subject and text. Anything else is shown as the
// title alone, cut to a notification's length.
function message(data) {
	let text = '';
	try {
		text = data ? data.text() : '';
	} catch {
		return { title: TITLE, body: '' };
	}
	try {
		const m = JSON.parse(text);
		if (m && typeof m.title === 'string' && typeof m.body === 'string')
			return { title: m.title.slice(0, 200) || TITLE, body: m.body.slice(0, 1000) };
	} catch {
		/* not JSON: below */
	}
	return { title: text.slice(0, 200) || TITLE, body: '' };
}

self.addEventListener('push', (event) => {
	const m = message(event.data);
	// Always show something: a push without a notification costs the
	// subscription in some browsers (userVisibleOnly).
	event.waitUntil(self.registration.showNotification(m.title, {
		body: m.body,
		tag: 'bvchat',
		renotify: false,
	}));
});

self.addEventListener('notificationclick', (event) => {
	event.notification.close();
	const url = new URL('index.html', self.registration.scope).href;
	event.waitUntil((async () => {
		const wins = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
		for (const w of wins)
			if (w.url.startsWith(self.registration.scope) && 'focus' in w) return w.focus();
		return self.clients.openWindow(url);
	})());
});
