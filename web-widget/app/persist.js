// SPDX-License-Identifier: GPL-3.0-or-later
// persist.js: the widget's storage in the frame's IndexedDB, and nothing
// else (no localStorage for secrets, no cookies).
//
// What is kept, in database "bvchat", object store "vault":
//   "wrap"  a non-extractable AES-GCM CryptoKey made here once; the page's
//           script can use it but never read it out;
//   "key"   the 32-byte store key sealed with "wrap" ({iv, ct});
//   "image" the library's store as the sealed image libbvchat makes
//           (store_mem.c: secretbox under the store key) and its generation.
// So what lies on disk is ciphertext twice over; the keys of the Signal
// sessions never leave the WebAssembly memory except inside the image.
//
// Saving: the library says after each change that the store moved on
// (generation); save() coalesces those into one write at a time, each with
// the newest image, in a transaction with durability "strict", and then
// reports the generation that is durable. The transport sends no frame that
// was made at a later generation (transport.js), so a reload or crash never
// forgets something the relay was told.

const DB = 'bvchat';
const STORE = 'vault';

function req(r) {
	return new Promise((resolve, reject) => {
		r.onsuccess = () => resolve(r.result);
		r.onerror = () => reject(r.error);
	});
}

function openDb() {
	const r = indexedDB.open(DB, 1);
	r.onupgradeneeded = () => r.result.createObjectStore(STORE);
	return req(r);
}

function tx(db, mode, fn) {
	return new Promise((resolve, reject) => {
		const t = db.transaction(STORE, mode,
			mode === 'readwrite' ? { durability: 'strict' } : undefined);
		const out = fn(t.objectStore(STORE));
		t.oncomplete = () => resolve(out);
		t.onerror = () => reject(t.error);
		t.onabort = () => reject(t.error || new Error('aborted'));
	});
}

function b64(bytes) {
	let s = '';
	for (const b of bytes) s += String.fromCharCode(b);
	return btoa(s);
}

// Opens the vault: the store key (base64, for bvw_call "open") and the
// image saved last (Uint8Array or null). Makes the keys on first use.
export async function openVault() {
	const db = await openDb();
	const got = {};
	await tx(db, 'readonly', (s) => {
		for (const k of ['wrap', 'key', 'image'])
			s.get(k).onsuccess = (e) => { got[k] = e.target.result; };
	});
	let { wrap, key } = got;
	let raw;
	if (wrap && key) {
		raw = new Uint8Array(await crypto.subtle.decrypt(
			{ name: 'AES-GCM', iv: key.iv }, wrap, key.ct));
	} else {
		wrap = await crypto.subtle.generateKey(
			{ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
		raw = crypto.getRandomValues(new Uint8Array(32));
		const iv = crypto.getRandomValues(new Uint8Array(12));
		const ct = await crypto.subtle.encrypt({ name: 'AES-GCM', iv }, wrap, raw);
		await tx(db, 'readwrite', (s) => {
			s.put(wrap, 'wrap');
			s.put({ iv, ct }, 'key');
			s.delete('image');
		});
		got.image = undefined;
	}
	const keyB64 = b64(raw);
	raw.fill(0);
	const image = got.image ? new Uint8Array(got.image.bytes) : null;
	return new Vault(db, keyB64, image, got.image ? got.image.gen : 0);
}

class Vault {
	constructor(db, keyB64, image, gen) {
		this.db = db;
		this.keyB64 = keyB64;
		this.image = image;
		this.durable = gen;
		this.saving = false;
		this.again = false;
		this.onDurable = () => {};
		this.onError = () => {};
	}

	// The library changed its store: save the newest image. take() gives
	// {gen, bytes} at the moment of writing (never an older one).
	changed(take) {
		this.take = take;
		if (this.saving) {
			this.again = true;
			return;
		}
		this.saving = true;
		this.loop();
	}

	async loop() {
		try {
			do {
				this.again = false;
				const { gen, bytes } = this.take();
				if (!bytes) break;
				await tx(this.db, 'readwrite',
					(s) => s.put({ gen, bytes }, 'image'));
				this.durable = gen;
				this.onDurable(gen);
			} while (this.again);
		} catch (e) {
			// Storage refused (quota, private mode): frames stay held,
			// the user is told; the next change tries again.
			this.onError(e);
		} finally {
			this.saving = false;
		}
	}

	// Forgets everything (a new enrollment after the relay refused us).
	async wipe() {
		await tx(this.db, 'readwrite', (s) => s.clear());
	}
}
