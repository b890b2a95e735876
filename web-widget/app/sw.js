// SPDX-License-Identifier: GPL-3.0-or-later
// sw.js: the widget's service worker (scope /widget/), for Web Push only:
// it shows the text a push brings — bvchat-notifier's neutral template,
// no content and no sender — and a click on it opens the chat (focuses a
// window of it when one is open). It caches nothing and reads no storage.
const TITLE = 'bvchat';

self.addEventListener('push', (event) => {
	let text = '';
	try {
		text = event.data ? event.data.text() : '';
	} catch {
		text = '';
	}
	// Always show something: a push without a notification costs the
	// subscription in some browsers (userVisibleOnly).
	event.waitUntil(self.registration.showNotification(text || TITLE, {
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
