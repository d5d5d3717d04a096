// This browser profile's storage (IndexedDB): the device keys (CryptoKey objects, the
// private ones not extractable) and, on the account's first device, the identity key; each
// (device, room) sending chain; the outbox of sent but unacknowledged envelopes; the newest
// chain links seen; and each user's pinned device list (identity.js judge()).
//
//   devices  <user id>                      {kid, sid, encSpki, sigSpki, enc, sig, created,
//                                            identity?, identitySpki?}
//   chains   <device kid>/<room>            {seq, hash}
//   outbox   <user id>/<room>/<message id>  {frame, created}
//   heads    <user id>/<room>               {<device kid>: {seq, hash}}
//   pins     <user id>/<other user id>      {list, verified}
//   atrest   key                            the AES-256-GCM CryptoKey (not extractable)
//                                           that seals the two stores below (atrest.js)
//   sessions <device kid>/prekeys           sealed: the device's X25519 private keys
//            <device kid>/peer/<peer kid>   sealed: its ratchet sessions with that device
//   history  <user id>/<room>/<env. hash>   sealed: a message kept, {frame, key}
//
// Version 2 pins identity keys; version 1's `peers` (device sets trusted on first use)
// means nothing under them and goes. Version 3 adds forward-secret sessions (sessionstore.js)
// and what a device keeps of what it read and sent (localhistory.js).

const NAME = 'duet';
const VERSION = 3;
const STORES = ['devices', 'chains', 'outbox', 'heads', 'pins', 'atrest', 'sessions', 'history'];
const DROPPED = ['peers'];

let opening = null;

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function database() {
  if (!opening) {
    opening = new Promise((resolve, reject) => {
      const req = indexedDB.open(NAME, VERSION);
      req.onupgradeneeded = () => {
        for (const store of STORES) {
          if (!req.result.objectStoreNames.contains(store)) req.result.createObjectStore(store);
        }
        for (const store of DROPPED) {
          if (req.result.objectStoreNames.contains(store)) req.result.deleteObjectStore(store);
        }
      };
      req.onsuccess = () => {
        // A newer page upgrades the schema: let it rather than block it.
        req.result.onversionchange = () => {
          req.result.close();
          opening = null;
        };
        resolve(req.result);
      };
      req.onerror = () => reject(req.error);
      req.onblocked = () => reject(new Error('the local database is blocked by another tab'));
    });
    opening.catch(() => { opening = null; });
  }
  return opening;
}

function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new Error('transaction aborted'));
  });
}

export async function get(store, key) {
  const db = await database();
  return request(db.transaction(store).objectStore(store).get(key));
}

export async function put(store, key, value) {
  await write([[store, key, value]]);
}

export async function remove(store, key) {
  await write([[store, key, undefined]]);
}

/** Several puts (value) and deletes (undefined) in one transaction: all or nothing. */
export async function write(entries) {
  const db = await database();
  const tx = db.transaction([...new Set(entries.map((e) => e[0]))], 'readwrite');
  for (const [store, key, value] of entries) {
    if (value === undefined) tx.objectStore(store).delete(key);
    else tx.objectStore(store).put(value, key);
  }
  await done(tx);
}

function prefixRange(prefix) {
  return IDBKeyRange.bound(prefix, `${prefix}\uffff`);
}

/** Values whose key starts with `prefix`, in key order. */
export async function withPrefix(store, prefix) {
  const db = await database();
  return request(db.transaction(store).objectStore(store).getAll(prefixRange(prefix)));
}

/** [key, value] of every entry whose key starts with `prefix`, in key order. */
export async function entriesWithPrefix(store, prefix) {
  const db = await database();
  const os = db.transaction(store).objectStore(store);
  const [keys, values] = await Promise.all([request(os.getAllKeys(prefixRange(prefix))),
    request(os.getAll(prefixRange(prefix)))]);
  return keys.map((key, i) => [key, values[i]]);
}
