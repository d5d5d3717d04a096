// Secrets at rest in IndexedDB (docs/sessions.md "History a device keeps"): this browser's
// ratchet sessions, prekey private halves and kept messages are stored sealed with
// AES-256-GCM under one key made once per browser profile, a non-extractable CryptoKey in
// IndexedDB (store.js `atrest`). No script of the page can export it, so what the
// records hold is readable only through this module, inside the page; the record's name is
// the additional data, so a record moved to another name does not open.
//
//   sealed record  {v: 1, iv: 12 bytes, ct: AES-256-GCM of the value's JSON, tag appended}

import { fromUtf8, utf8 } from './codec.js';
import { randomBytes } from './crypto.js';
import * as store from './store.js';

const KEY_NAME = 'key';
const subtle = globalThis.crypto.subtle;

let loading = null;

function withLock(name, fn) {
  return navigator.locks ? navigator.locks.request(name, fn) : fn();
}

/** The profile's at-rest key, made on first use (under a lock: two tabs make one). */
export function atRestKey() {
  if (!loading) {
    loading = (async () => {
      const held = await store.get('atrest', KEY_NAME);
      if (held) return held;
      return withLock('duet-atrest', async () => {
        const again = await store.get('atrest', KEY_NAME);
        if (again) return again;
        const key = await subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
        await store.put('atrest', KEY_NAME, key);
        return key;
      });
    })();
    loading.catch(() => { loading = null; });
  }
  return loading;
}

/** `value` (JSON-able) sealed for the record `name`. */
export async function seal(name, value) {
  const iv = randomBytes(12);
  const params = { name: 'AES-GCM', iv, additionalData: utf8(name) };
  const ct = new Uint8Array(await subtle.encrypt(params, await atRestKey(), utf8(JSON.stringify(value))));
  return { v: 1, iv, ct };
}

/** The value of the sealed record `name`; throws if it does not open (damaged, moved). */
export async function open(name, record) {
  const params = { name: 'AES-GCM', iv: record.iv, additionalData: utf8(name) };
  let plain;
  try {
    plain = await subtle.decrypt(params, await atRestKey(), record.ct);
  } catch {
    throw new Error(`the stored record ${name} does not open`);
  }
  return JSON.parse(fromUtf8(new Uint8Array(plain)));
}

/** The value kept under `name` in `storeName`, or null. */
export async function read(storeName, name) {
  const record = await store.get(storeName, name);
  return record ? open(name, record) : null;
}

/** A write entry for store.write(): `value` sealed under `name`. */
export async function entry(storeName, name, value) {
  return [storeName, name, await seal(name, value)];
}
