/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * loader.js: the one <script> tag a municipality puts on its page:
 *
 *   <script src="https://RELAY/widget/loader.js" data-lang="nb" async></script>
 *
 * It draws a "Chat" button (or, with data-target="ID", fills that element)
 * and opens the chat in a frame served from the relay's origin, so keys,
 * sessions and storage live only there; this page cannot reach into it.
 * Messages with the frame are versioned ({bvchat: 1, type}), posted to the
 * frame's origin only and taken only from it. No framework, no cookies.
 * Attributes: data-lang (nb, nn, en, se), data-target, data-label,
 * data-title. window.bvchat = {open(), close(), setLang(lang)}.
 */
(function () {
	'use strict';
	var me = document.currentScript;
	if (!me || window.bvchat) return;
	var src = new URL(me.src, location.href);
	var origin = src.origin;
	var lang = me.getAttribute('data-lang') || '';
	var target = me.getAttribute('data-target');
	var frame = document.createElement('iframe');
	var button = null, panel, unread = 0;

	frame.src = new URL('index.html', src).href + '?origin=' +
		encodeURIComponent(location.origin) +
		(lang ? '&lang=' + encodeURIComponent(lang) : '');
	frame.title = me.getAttribute('data-title') || 'Sikker chat';
	// allow-downloads: a received attachment is saved from the frame.
	frame.setAttribute('sandbox', 'allow-scripts allow-same-origin ' +
		'allow-forms allow-popups allow-popups-to-escape-sandbox ' +
		'allow-downloads');
	frame.setAttribute('referrerpolicy', 'no-referrer');
	frame.style.cssText = 'border:0;width:100%;height:100%;display:block';

	function post(msg) {
		msg.bvchat = 1;
		if (frame.contentWindow) frame.contentWindow.postMessage(msg, origin);
	}

	function label() {
		var text = me.getAttribute('data-label') || 'Chat';
		button.textContent = unread ? text + ' (' + unread + ')' : text;
	}

	function open() {
		if (!button) return;
		panel.style.display = 'block';
		button.setAttribute('aria-expanded', 'true');
		unread = 0;
		label();
		frame.focus();
	}

	function close() {
		if (!button) return;
		panel.style.display = 'none';
		button.setAttribute('aria-expanded', 'false');
		button.focus();
	}

	window.addEventListener('message', function (e) {
		if (e.origin !== origin || e.source !== frame.contentWindow) return;
		var d = e.data;
		if (!d || d.bvchat !== 1) return;
		if (d.type === 'message' && button &&
		    panel.style.display === 'none') {
			unread++;
			label();
		}
	});

	function mount() {
		var holder = target && document.getElementById(target);
		if (holder) {
			holder.appendChild(frame);
			return;
		}
		/* The panel sits above the button, which stays to close it. */
		panel = document.createElement('div');
		panel.id = 'bvchat-panel';
		panel.style.cssText = 'display:none;position:fixed;z-index:2147483646;' +
			'right:0;bottom:4.25rem;width:min(100vw,26rem);' +
			'height:min(calc(100vh - 4.25rem),48rem);background:#fff;' +
			'box-shadow:0 0 0 1px #555,0 4px 24px rgba(0,0,0,.3)';
		panel.appendChild(frame);
		button = document.createElement('button');
		button.type = 'button';
		button.setAttribute('aria-controls', panel.id);
		button.setAttribute('aria-expanded', 'false');
		button.style.cssText = 'position:fixed;z-index:2147483647;right:1rem;' +
			'bottom:1rem;min-height:2.75rem;padding:.5rem 1.25rem;font:inherit;' +
			'font-weight:600;color:#fff;background:#0b5394;border:2px solid #fff;' +
			'border-radius:1.5rem;box-shadow:0 0 0 2px #0b5394;cursor:pointer';
		label();
		button.addEventListener('click', function () {
			if (panel.style.display === 'none') open();
			else close();
		});
		document.addEventListener('keydown', function (e) {
			if (e.key === 'Escape' && panel.style.display !== 'none')
				close();
		});
		document.body.appendChild(panel);
		document.body.appendChild(button);
	}

	window.bvchat = {
		open: open,
		close: close,
		setLang: function (l) { post({ type: 'lang', lang: String(l) }); }
	};
	if (document.body) mount();
	else document.addEventListener('DOMContentLoaded', mount);
})();
