// The account's identity key and its signed device list, as client/identity.py has them
// (docs/protocol.md "Device lists"). Pure: inputs in, results out; WebCrypto only computes.
//
// The identity key (ECDSA P-256, private half not extractable) is made by the account's
// first device and signs the list of devices that speak for the user. Every other user's
// list is trusted only as judge() says: the identity key first seen is pinned, and a later
// list is used only if that key signed it with a version not older than the pinned one.

import { b64u, canonicalBytes, concat, unb64u, utf8 } from './codec.js';
import { ECDSA_P256, fingerprint, importSigPublic, sha256, sha512, sign, sigIsCanonical, verify } from './crypto.js';

export const LIST_PREFIX = 'duet-devicelist-v1\n';
export const LINK_PREFIX = 'duet-link-v1\n';
export const SAFETY_PREFIX = 'duet-safety-v2\n';

export class IdentityError extends Error {}

/** A new identity key: {key: the private CryptoKey (not extractable), spki: base64url DER}. */
export async function generateIdentity() {
  const pair = await globalThis.crypto.subtle.generateKey(ECDSA_P256, false, ['sign', 'verify']);
  const spki = new Uint8Array(await globalThis.crypto.subtle.exportKey('spki', pair.publicKey));
  return { key: pair.privateKey, spki: b64u(spki) };
}

export function listSigningInput(list) {
  return concat(utf8(LIST_PREFIX), canonicalBytes(list));
}

/** {list, sig}: the list signed by the identity key (low-s r||s, as envelope v2's). */
export async function signList(identityKey, list) {
  return { list, sig: b64u(await sign(identityKey, listSigningInput(list))) };
}

const DEVICE_FIELDS = ['kid', 'sid', 'enc', 'sig'];

function devicesOk(devices) {
  return Array.isArray(devices) && devices.every((d) => d && DEVICE_FIELDS.every((f) => typeof d[f] === 'string'));
}

/** What the rest of the client relies on: a version, and devices with their keys. */
function wellFormed(list) {
  return Number.isSafeInteger(list.version) && list.version >= 1 && typeof list.identity === 'string'
    && devicesOk(list.devices) && devicesOk(list.revoked)
    && list.revoked.every((d) => Number.isSafeInteger(d.revoked_at));
}

/** The list inside `signed` if its own identity key signed it for `user`; else throws. */
export async function verifyList(signed, user) {
  const list = signed && typeof signed === 'object' ? signed.list : null;
  const sig = signed && typeof signed === 'object' ? signed.sig : null;
  if (!list || typeof list !== 'object' || typeof sig !== 'string') throw new IdentityError('not a signed device list');
  if (list.v !== 1 || list.user !== user) throw new IdentityError('a device list of another user or version');
  if (!wellFormed(list)) throw new IdentityError('the device list is out of shape');
  if (!sigIsCanonical(sig)) throw new IdentityError('the device list’s signature is not canonical');
  let key;
  let input;
  try {
    input = listSigningInput(list);
  } catch {
    throw new IdentityError('the device list is out of shape'); // a float, say: no canonical JSON
  }
  try {
    key = await importSigPublic(String(list.identity ?? ''));
  } catch {
    throw new IdentityError('the device list names no usable identity key');
  }
  if (!(await verify(key, input, unb64u(sig)))) throw new IdentityError('the device list is not signed by its identity key');
  return list;
}

/**
 * What a fetched list means against the pin ({list, verified} or null): {use, alert,
 * changedTo}. Pin on first use; afterwards only a list by the pinned key, not older.
 */
export async function judge(pin, signed, user) {
  if (!signed) {
    if (!pin) return { use: null, alert: null, changedTo: null };
    return {
      use: pin.list, changedTo: null,
      alert: { kind: 'bad_device_list', detail: 'the server no longer serves this user’s signed device list; the pinned one is used' },
    };
  }
  let list;
  try {
    list = await verifyList(signed, user);
  } catch (err) {
    return { use: pin ? pin.list : null, changedTo: null, alert: { kind: 'bad_device_list', detail: err.message } };
  }
  if (!pin) return { use: list, alert: null, changedTo: null };
  if (list.identity !== pin.list.identity) {
    return {
      use: pin.list, changedTo: list,
      alert: { kind: 'identity_changed', detail: 'this user’s identity key changed: compare safety numbers, then accept the new key to send again' },
    };
  }
  if (list.version < pin.list.version) {
    return {
      use: pin.list, changedTo: null,
      alert: { kind: 'bad_device_list', detail: `the server served version ${list.version} of the device list after version ${pin.list.version}` },
    };
  }
  return { use: list, alert: null, changedTo: null };
}

/** A device of the directory (GET /api/users) as a list names it. */
export function listed(key, added = Date.now()) {
  return { kid: key.kid, sid: key.sid, enc: key.enc, sig: key.sig, label: key.label ?? null, added };
}

/** The first list: this device alone, version 1. */
export function firstList(user, identitySpki, key, now = Date.now()) {
  return { v: 1, user, identity: identitySpki, version: 1, devices: [listed(key, now)], revoked: [] };
}

/** The next version with `key` (a directory device) approved. */
export function withDevice(list, key, now = Date.now()) {
  return {
    ...list, version: list.version + 1,
    devices: [...list.devices.filter((d) => d.kid !== key.kid), listed(key, now)],
  };
}

/** The next version with device `kid` moved to the revoked ones, as of `now`. */
export function withRevoked(list, kid, now = Date.now()) {
  const device = list.devices.find((d) => d.kid === kid);
  if (!device) throw new IdentityError('that device is not in the list');
  return {
    ...list, version: list.version + 1,
    devices: list.devices.filter((d) => d.kid !== kid),
    revoked: [...list.revoked, { ...device, revoked_at: now }],
  };
}

function digits(bytes, count) {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return (n % 10n ** BigInt(count)).toString().padStart(count, '0');
}

/**
 * The code a device waiting for approval shows and the approving device compares: 12
 * digits from the first 8 bytes of SHA-256("duet-link-v1\n" kid "\n" sid), in groups of 4.
 */
export async function linkCode(kid, sid) {
  const code = digits((await sha256(utf8(`${LINK_PREFIX}${kid}\n${sid}`))).subarray(0, 8), 12);
  return `${code.slice(0, 4)} ${code.slice(4, 8)} ${code.slice(8)}`;
}

/** An identity key's fingerprint: base64url SHA-256 of its DER SPKI. */
export function identityFingerprint(spki) {
  return fingerprint(unb64u(spki));
}

/**
 * Twelve groups of five digits over two users' identity fingerprints, the same whichever
 * friend computes it: SHA-512 of "duet-safety-v2\n" + canonical JSON {user id: fingerprint},
 * each 5-byte big-endian chunk of the first 60 bytes mod 100000.
 */
export async function safetyNumber(a, aFingerprint, b, bFingerprint) {
  const digest = await sha512(concat(utf8(SAFETY_PREFIX), canonicalBytes({ [a]: aFingerprint, [b]: bFingerprint })));
  const groups = [];
  for (let i = 0; i < 60; i += 5) groups.push(digits(digest.subarray(i, i + 5), 5));
  return groups.join(' ');
}
