// SPDX-License-Identifier: GPL-3.0-or-later
// client.js: libbvchat (WebAssembly) in the frame, its storage and its
// WebSocket. The one place that talks to the module:
//   call(req)   -> bvw_call(JSON) -> answer object (src/bvweb.c lists ops)
//   events      <- Module.bvwEvent(json)
//   attachments -> sendFiles(), fetchAttachment(): the bytes through the
//                  heap, never through JSON; a fetched file comes back by
//                  Module.bvwAttachment(json, bytes)
//   storage     <- Module.bvwStoreChanged(generation): persist.js saves the
//                  sealed image; frames wait until their generation is saved
//   WebSocket   <- Module.bvwTransport (contract in src/conn_web.lib.js)
import createBvchat from './bvchat.js';
import { openVault } from './persist.js';

// The origin of the page that embeds us: given by the loader in the URL and
// believed only if the browser agrees (ancestorOrigins) — messages go to it
// and are taken from it only.
let host = null;
export function hostOrigin() {
	if (host !== null) return host;
	host = '';
	const given = new URLSearchParams(location.search).get('origin');
	const anc = location.ancestorOrigins;
	if (given && window.parent !== window &&
	    (!anc || (anc.length && anc[0] === given)))
		host = given;
	return host;
}

// An invite code for an enrollment token (POST /v1/invites/redeem on our
// own origin). Throws {network: true} when the relay cannot be reached.
export async function redeemInvite(code) {
	let res;
	try {
		res = await fetch('/v1/invites/redeem', {
			method: 'POST',
			headers: { 'Content-Type': 'application/json' },
			body: JSON.stringify({ code }),
			credentials: 'omit',
			cache: 'no-store',
		});
	} catch {
		throw { network: true };
	}
	const body = await res.json().catch(() => ({}));
	if (!res.ok || typeof body.token !== 'string') throw { network: res.status >= 500 };
	return body.token;
}

// Starts the library on the saved store and returns {call, sendFiles,
// fetchAttachment, close}.
// onEvent gets every library event (and {ev: "storage_error"}).
export async function startClient(onEvent) {
	const vault = await openVault();
	const sockets = new Map(); // handle -> WebSocket
	const held = []; // frames in order: {gen, handle, data}
	let M = null;

	const release = () => {
		while (held.length && held[0].gen <= vault.durable) {
			const f = held.shift();
			const ws = sockets.get(f.handle);
			if (ws && ws.readyState === WebSocket.OPEN) ws.send(f.data);
		}
	};
	vault.onDurable = release;
	vault.onError = () => onEvent({ ev: 'storage_error' });

	const enc = new TextEncoder();
	// The contract is in src/conn_web.lib.js; reports go through
	// Module.bvwReport, which copies into the module and ignores stale
	// handles.
	const transport = {
		open(handle, url) {
			const ws = new WebSocket(url, 'bvchat.v1');
			sockets.set(handle, ws);
			ws.onopen = () => M.bvwReport.opened(handle);
			ws.onmessage = (e) => M.bvwReport.message(handle, e.data);
			ws.onclose = (e) => {
				if (sockets.get(handle) === ws) sockets.delete(handle);
				for (let i = held.length - 1; i >= 0; i--)
					if (held[i].handle === handle) held.splice(i, 1);
				M.bvwReport.closed(handle, e.code || 1006);
			};
		},
		send(handle, data) {
			const ws = sockets.get(handle);
			if (!ws || ws.readyState > WebSocket.OPEN) throw new Error('closed');
			held.push({ gen: M._bvw_generation(), handle, data, n: enc.encode(data).length });
			release();
		},
		close(handle, code) {
			const ws = sockets.get(handle);
			if (ws) ws.close(code);
		},
		buffered(handle) {
			const ws = sockets.get(handle);
			let n = ws ? ws.bufferedAmount : 0;
			for (const f of held) if (f.handle === handle) n += f.n;
			return n;
		},
	};

	let saveQueued = false;
	const fetching = new Map(); // tag -> resolve
	let nextTag = 1;
	M = await createBvchat({
		// A fetched attachment: the bytes are already a copy of ours.
		bvwAttachment: (json, bytes) => {
			let ev;
			try {
				ev = JSON.parse(json);
			} catch {
				return;
			}
			const done = fetching.get(ev.tag);
			fetching.delete(ev.tag);
			if (done) queueMicrotask(() => done({ rc: ev.rc, bytes }));
		},
		bvwTransport: transport,
		bvwEvent: (json) => {
			let ev;
			try {
				ev = JSON.parse(json);
			} catch {
				return;
			}
			// Never inside the library's call stack.
			queueMicrotask(() => onEvent(ev));
		},
		// Called from inside a store commit: the image is taken after
		// the library's call has returned (a microtask), once for any
		// number of changes in that call; persist.js coalesces the rest.
		bvwStoreChanged: () => {
			if (saveQueued) return;
			saveQueued = true;
			queueMicrotask(() => {
				saveQueued = false;
				vault.changed(() => {
					const gen = M._bvw_generation();
					const lp = M._malloc(4);
					const p = M._bvw_image(lp);
					const n = M.HEAPU32[lp >> 2];
					M._free(lp);
					if (!p) return { gen, bytes: null };
					const bytes = M.HEAPU8.slice(p, p + n);
					M.HEAPU8.fill(0, p, p + n);
					M._free(p);
					return { gen, bytes };
				});
			});
		},
	});

	const call = (req) => {
		const p = M.ccall('bvw_call', 'number', ['string'], [JSON.stringify(req)]);
		return JSON.parse(M.UTF8ToString(p));
	};

	if (vault.image) {
		const p = M._malloc(vault.image.length);
		M.HEAPU8.set(vault.image, p);
		M._bvw_preload(p, vault.image.length);
		M._free(p);
	}
	const r = call({
		op: 'open',
		key: vault.keyB64,
		host: location.hostname,
		port: Number(location.port) || (location.protocol === 'https:' ? 443 : 80),
		http_base: location.origin,
	});
	vault.keyB64 = null;
	if (r.rc !== 0) throw new Error('bvchat: ' + r.error);

	// Files [{name, type, bytes: Uint8Array}] with a text (or an e-post:
	// subject, thread): the bytes are copied into the module for the one
	// call (it encrypts and spools them before it returns) and wiped there.
	const sendFiles = (req, files) => {
		const held = [];
		try {
			const list = files.map((f) => {
				const p = M._malloc(Math.max(1, f.bytes.length));
				if (!p) throw new Error('out of memory');
				held.push([p, f.bytes.length]);
				M.HEAPU8.set(f.bytes, p);
				return { name: f.name, type: f.type, ptr: p, len: f.bytes.length };
			});
			return call({ ...req, op: 'send_files', files: list });
		} catch {
			return { rc: -1, error: 'out of memory' };
		} finally {
			for (const [p, n] of held) {
				M.HEAPU8.fill(0, p, p + n);
				M._free(p);
			}
		}
	};

	// One attachment of a message into memory: {rc, bytes} (bytes null
	// unless rc is 0).
	const fetchAttachment = (messageId, index) => new Promise((resolve) => {
		const tag = nextTag;
		nextTag = nextTag >= 0x7fffffff ? 1 : nextTag + 1;
		fetching.set(tag, resolve);
		const r = call({ op: 'fetch_attachment', message_id: messageId, index, tag });
		if (r.rc !== 0) {
			fetching.delete(tag);
			resolve({ rc: r.rc, bytes: null });
		}
	});

	return {
		call,
		sendFiles,
		fetchAttachment,
		close() {
			call({ op: 'close' });
			for (const ws of sockets.values()) ws.close(1000);
			sockets.clear();
			held.length = 0;
		},
	};
}
