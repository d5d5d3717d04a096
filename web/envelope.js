// Envelope v2 and v3 (and v1, which stays readable): build one, and open one (verify,
// unwrap, decrypt), exactly as client/envelope.py does; and a device's proof of possession.
// No I/O. docs/protocol.md documents the formats byte by byte, docs/sessions.md v3's
// ratchet entries (sealed and opened by sessionstore.js).
//
// Everything a conformance test needs is exported from here (also the codec and crypto
// helpers), so a page can `await import('/envelope.js')` and check the test vectors.

import { b64u, canonical, canonicalBytes, compareCodePoints, concat, fromUtf8, unb64u, utf8 } from './codec.js';
import * as crypto from './crypto.js';

export { b64u, canonical, canonicalBytes, compareCodePoints, concat, fromUtf8, unb64u, utf8 };
export {
  fingerprint, generateDevice, importDevice, importEncPublic, importSigPublic, safetyNumber,
  sigIsCanonical, verify,
} from './crypto.js';

export const ALG = 'RSA-OAEP-256+A256GCM+ES256';
export const ALG_V3 = 'X25519-DR+A256GCM+ES256';
export const SIGNING_PREFIX = { 1: 'duet-envelope-v1\n', 2: 'duet-envelope-v2\n', 3: 'duet-envelope-v3\n' };
export const VERSION = 2; // what sealEnvelope writes (sealEnvelopeV3: v3); v1 stays readable
export const TEXT_MIME = 'text/plain;charset=utf-8';

export class EnvelopeError extends Error {
  constructor(code, detail) {
    super(detail);
    this.code = code;
  }
}

/** Plaintext: uint32 big-endian length of the canonical meta JSON, the JSON, the payload. */
export function encodePlaintext(meta, data) {
  const m = canonicalBytes(meta);
  const out = new Uint8Array(4 + m.length + data.length);
  new DataView(out.buffer).setUint32(0, m.length, false);
  out.set(m, 4);
  out.set(data, 4 + m.length);
  return out;
}

export function decodePlaintext(raw) {
  if (raw.length < 4) throw new EnvelopeError('undecryptable', 'plaintext too short');
  const n = new DataView(raw.buffer, raw.byteOffset, raw.byteLength).getUint32(0, false);
  if (n > raw.length - 4) {
    throw new EnvelopeError('undecryptable', 'plaintext metadata length out of range');
  }
  let meta;
  try {
    meta = JSON.parse(fromUtf8(raw.subarray(4, 4 + n)));
  } catch {
    throw new EnvelopeError('undecryptable', 'plaintext metadata is not JSON');
  }
  if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) {
    throw new EnvelopeError('undecryptable', 'plaintext metadata is not an object');
  }
  return { meta, data: raw.slice(4 + n) };
}

/**
 * What a device's proof of possession signs (contracts/keys.py device_proof_input): that
 * this user publishes these keys and label. PUT /api/keys takes the device's own signature
 * over it, low-s as in envelope v2.
 */
export function deviceProofInput(user, enc, sig, label) {
  return concat(utf8('duet-device-v1\n'), canonicalBytes({ user, enc, sig, label }));
}

/** The upload PUT /api/keys takes for this device ({encSpki, sigSpki, sig: private key}). */
export async function deviceUpload(device, user, label) {
  const proof = await crypto.sign(device.sig, deviceProofInput(user, device.encSpki, device.sigSpki, label));
  return { enc: device.encSpki, sig: device.sigSpki, label, proof: b64u(proof) };
}

/** What the signature covers: the version's prefix + canonical JSON of all but `sig`. */
export function signingInput(envelope) {
  const prefix = Object.hasOwn(SIGNING_PREFIX, envelope.v) ? SIGNING_PREFIX[envelope.v] : null;
  if (prefix === null) throw new EnvelopeError('malformed', 'not an envelope v1, v2 or v3');
  const unsigned = {};
  for (const [k, v] of Object.entries(envelope)) if (k !== 'sig') unsigned[k] = v;
  return concat(utf8(prefix), canonicalBytes(unsigned));
}

/**
 * The chain link, base64url SHA-256: in v2 of the signing input (what no one but the
 * signer can vary), in v1 of the whole envelope's canonical JSON.
 */
export async function envelopeHash(envelope) {
  const signed = envelope.v === 1 ? canonicalBytes(envelope) : signingInput(envelope);
  return b64u(await crypto.sha256(signed));
}

/**
 * Encrypt for every recipient device ({kid, key: RSA-OAEP public CryptoKey}) and sign with
 * the sending device ({kid, sig: ECDSA private CryptoKey}).
 */
export async function sealEnvelope({ room, sender, device, seq, prev, kind, meta, data, recipients }) {
  if (!recipients.length) throw new EnvelopeError('no_recipients', 'no recipient keys');
  const contentKey = crypto.randomBytes(32);
  const iv = crypto.randomBytes(12);
  const sorted = [...recipients].sort((x, y) => compareCodePoints(x.kid, y.kid));
  const keys = [];
  for (const r of sorted) keys.push({ kid: r.kid, wk: b64u(await crypto.wrap(r.key, contentKey)) });
  const envelope = {
    v: VERSION, alg: ALG, room, sender, from: device.kid, seq, prev, kind, keys,
    iv: b64u(iv),
    ct: b64u(await crypto.seal(contentKey, iv, encodePlaintext(meta, data))),
  };
  envelope.sig = b64u(await crypto.sign(device.sig, signingInput(envelope)));
  return envelope;
}

/**
 * Envelope v3: encrypt the content, let `keys(contentKey)` seal the content key to each
 * device (a ratchet message, or RSA-OAEP where there is no session: sessionstore.js), sign.
 * {envelope, contentKey}: the sending device keeps the key in its own history.
 */
export async function sealEnvelopeV3({ room, sender, device, seq, prev, kind, meta, data, keys }) {
  const contentKey = crypto.randomBytes(32);
  const iv = crypto.randomBytes(12);
  const entries = await keys(contentKey);
  if (!entries.length) throw new EnvelopeError('no_recipients', 'no recipient devices');
  const envelope = {
    v: 3, alg: ALG_V3, room, sender, from: device.kid, seq, prev, kind, keys: entries,
    iv: b64u(iv),
    ct: b64u(await crypto.seal(contentKey, iv, encodePlaintext(meta, data))),
  };
  envelope.sig = b64u(await crypto.sign(device.sig, signingInput(envelope)));
  return { envelope, contentKey };
}

/** This device's entry in the envelope's `keys`, or null. */
export function ownEntry(envelope, kid) {
  return (Array.isArray(envelope.keys) ? envelope.keys : []).find((k) => k && typeof k === 'object' && k.kid === kid) ?? null;
}

/** True when `sig` is the sending device's signature over the envelope (in v2, in its
 * one canonical low-s form). */
export async function verifySignature(envelope, sigPublic) {
  let signature;
  let input;
  if (envelope.v !== 1 && !crypto.sigIsCanonical(envelope.sig)) return false;
  try {
    signature = unb64u(String(envelope.sig ?? ''));
    input = signingInput(envelope);
  } catch {
    return false;
  }
  return crypto.verify(sigPublic, input, signature);
}

/** This device's content key of the envelope, unwrapped (RSA-OAEP). */
export async function unwrapContentKey(envelope, device) {
  const entry = ownEntry(envelope, device.kid);
  if (!entry) throw new EnvelopeError('undecryptable', 'the message holds no key for this device');
  if (entry.h !== undefined) {
    throw new EnvelopeError('undecryptable', 'a ratchet entry opens with the device’s session');
  }
  try {
    return await crypto.unwrap(device.enc, unb64u(entry.wk));
  } catch {
    throw new EnvelopeError('undecryptable', 'cannot unwrap the content key');
  }
}

/**
 * Decrypt with this device's content key, or with `key` (from a history share). Verify
 * the signature first.
 */
export async function openEnvelope(envelope, device, key = null) {
  const contentKey = key ?? await unwrapContentKey(envelope, device);
  let plaintext;
  if (contentKey.length !== 32) throw new EnvelopeError('undecryptable', 'content key of the wrong length');
  try {
    plaintext = await crypto.unseal(contentKey, unb64u(envelope.iv), unb64u(envelope.ct));
  } catch {
    throw new EnvelopeError('undecryptable', 'ciphertext failed authentication');
  }
  return decodePlaintext(plaintext);
}

export function textContent(text) {
  return { meta: { mime: TEXT_MIME }, data: utf8(text) };
}
