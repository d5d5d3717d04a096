// X3DH and the Double Ratchet on WebCrypto, byte for byte those of client/ratchet.py (the
// committed contracts/vectors/ratchet-v1.json proves it): X25519, HKDF-SHA-256,
// HMAC-SHA-256 and AES-256-GCM, with the choices docs/sessions.md fixes. A session's state
// is the SDK's `Session.state`: a plain object of base64url strings, integers and null, so
// it can be kept at rest, copied, or handed between the two clients. No I/O.

import { b64u, bytes, concat, unb64u, utf8 } from './codec.js';

const subtle = globalThis.crypto.subtle;

// contracts/prekeys.py
export const X3DH_INFO = 'duet-x3dh-v1';
export const ROOT_INFO = 'duet-ratchet-v1';
export const MESSAGE_INFO = 'duet-message-v1';
export const MAX_SKIP = 1000; // message keys one received chain may skip ahead
export const MAX_SKIPPED = 2000; // skipped message keys a session keeps; the oldest go first
export const MAX_OLD_CHAINS = 20; // earlier receiving ratchet keys kept, to name the fault

const X25519 = { name: 'X25519' };
// An X25519 private key in PKCS#8 (RFC 8410) is this prefix and then its 32 raw bytes:
// WebCrypto has no raw private format, so raw keys travel through it.
const PKCS8_PREFIX = Uint8Array.from([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20,
]);
// u = 9: X25519(k, base point) is k's public key, which WebCrypto cannot export otherwise.
const BASE_POINT = Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 9 : 0));
const ZEROS = new Uint8Array(32);
const X3DH = utf8(X3DH_INFO);
const ROOT = utf8(ROOT_INFO);
const MESSAGE = utf8(MESSAGE_INFO);

/** A message the session cannot open, with a code the clients show (docs/sessions.md). */
export class RatchetError extends Error {
  constructor(code, detail) {
    super(`${code}: ${detail}`);
    this.name = 'RatchetError';
    this.code = code;
    this.detail = detail;
  }
}

// ---- Primitives ---------------------------------------------------------------------

/** A new X25519 key pair as raw bytes: {privateRaw, publicRaw}, 32 bytes each. */
export async function generateKeyPair() {
  const pair = await subtle.generateKey(X25519, true, ['deriveBits']);
  const pkcs8 = new Uint8Array(await subtle.exportKey('pkcs8', pair.privateKey));
  // Only the bare form is its prefix + key; a form that also carried the public key would
  // end with that instead, so anything else is refused rather than misread.
  if (pkcs8.length !== 48 || PKCS8_PREFIX.some((b, i) => pkcs8[i] !== b)) {
    throw new Error('an X25519 private key in an unexpected PKCS#8 form');
  }
  return {
    privateRaw: pkcs8.slice(16),
    publicRaw: new Uint8Array(await subtle.exportKey('raw', pair.publicKey)),
  };
}

function importPrivate(privateRaw) {
  return subtle.importKey('pkcs8', concat(PKCS8_PREFIX, bytes(privateRaw)), X25519, false,
    ['deriveBits']);
}

/** X25519; a public key that is not 32 bytes or gives an all-zero result is refused. */
export async function dh(privateRaw, publicRaw) {
  const own = await importPrivate(privateRaw);
  let out;
  try {
    const peer = await subtle.importKey('raw', bytes(publicRaw), X25519, false, []);
    out = new Uint8Array(await subtle.deriveBits({ name: 'X25519', public: peer }, own, 256));
  } catch {
    // Chromium itself refuses a low-order point (an all-zero result) with OperationError.
    throw new RatchetError('bad_key', 'a public key of low order');
  }
  if (out.every((b) => b === 0)) throw new RatchetError('bad_key', 'a public key of low order');
  return out;
}

/** The raw public key of a raw private key. */
export async function publicRaw(privateRaw) {
  return dh(privateRaw, BASE_POINT);
}

async function hkdf(ikm, salt, info, length) {
  const key = await subtle.importKey('raw', ikm, 'HKDF', false, ['deriveBits']);
  const params = { name: 'HKDF', hash: 'SHA-256', salt, info };
  return new Uint8Array(await subtle.deriveBits(params, key, length * 8));
}

async function kdfRk(rk, dhOut) {
  const out = await hkdf(dhOut, rk, ROOT, 64);
  return [out.slice(0, 32), out.slice(32)];
}

/** [next chain key, message key]. */
async function kdfCk(ck) {
  const key = await subtle.importKey('raw', ck, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return [
    new Uint8Array(await subtle.sign('HMAC', key, Uint8Array.of(2))),
    new Uint8Array(await subtle.sign('HMAC', key, Uint8Array.of(1))),
  ];
}

// A message key gives the AES-256-GCM key (32 bytes) and its nonce (12): each is used once.
async function messageCipher(mk, usage) {
  const okm = await hkdf(mk, ZEROS, MESSAGE, 44);
  const key = await subtle.importKey('raw', okm.subarray(0, 32), 'AES-GCM', false, [usage]);
  return { key, params: { name: 'AES-GCM', iv: okm.slice(32) } };
}

async function seal(mk, plaintext, ad) {
  const { key, params } = await messageCipher(mk, 'encrypt');
  return new Uint8Array(await subtle.encrypt({ ...params, additionalData: ad }, key, plaintext));
}

async function open(mk, ciphertext, ad) {
  const { key, params } = await messageCipher(mk, 'decrypt');
  try {
    return new Uint8Array(await subtle.decrypt({ ...params, additionalData: ad }, key, ciphertext));
  } catch {
    throw new RatchetError('bad_message', 'the message failed authentication');
  }
}

// ---- Headers ------------------------------------------------------------------------

function isU32(value) {
  return Number.isInteger(value) && value >= 0 && value < 2 ** 32;
}

/** The bytes the AEAD authenticates: dh (32) ‖ pn (4, big-endian) ‖ n (4). */
export function encodeHeader({ dh: key, pn, n }) {
  // DataView would wrap an out-of-range count silently; Python's struct.pack refuses it.
  if (key.length !== 32 || !isU32(pn) || !isU32(n)) throw new RangeError('a ratchet header out of range');
  const out = new Uint8Array(40);
  out.set(key);
  const view = new DataView(out.buffer);
  view.setUint32(32, pn, false);
  view.setUint32(36, n, false);
  return out;
}

/** {dh: bytes, pn, n} from the wire form {dh: base64url, pn, n}, or RatchetError bad_message. */
export function headerFromWire(h) {
  let key;
  try {
    key = unb64u(h.dh);
  } catch {
    throw new RatchetError('bad_message', 'a malformed ratchet header');
  }
  const { pn, n } = h;
  if (key.length !== 32 || !isU32(pn) || !isU32(n)) {
    throw new RatchetError('bad_message', 'a malformed ratchet header');
  }
  return { dh: key, pn, n };
}

function headerToWire({ dh: key, pn, n }) {
  return { dh: b64u(key), pn, n };
}

// ---- X3DH ---------------------------------------------------------------------------

async function x3dhSecret(dhs) {
  return hkdf(concat(new Uint8Array(32).fill(0xff), ...dhs), ZEROS, X3DH, 32);
}

/**
 * The sender's side: {sk, ad}. ik and ek are raw private keys, the peer's raw public ones;
 * peerOpk is null when the bundle came without a one-time prekey. The bundle's signature
 * is checked before this (prekeys.js verifyBundle).
 */
export async function x3dhInitiate(ik, ek, peerIk, peerSpk, peerOpk) {
  const dhs = [await dh(ik, peerSpk), await dh(ek, peerIk), await dh(ek, peerSpk)];
  if (peerOpk !== null && peerOpk !== undefined) dhs.push(await dh(ek, peerOpk));
  return { sk: await x3dhSecret(dhs), ad: concat(await publicRaw(ik), bytes(peerIk)) };
}

/** The receiver's side of the same: {sk, ad}; opk is null when none was used. */
export async function x3dhRespond(ik, spk, opk, peerIk, peerEk) {
  const dhs = [await dh(spk, peerIk), await dh(ik, peerEk), await dh(spk, peerEk)];
  if (opk !== null && opk !== undefined) dhs.push(await dh(opk, peerEk));
  return { sk: await x3dhSecret(dhs), ad: concat(bytes(peerIk), await publicRaw(ik)) };
}

// ---- The Double Ratchet -------------------------------------------------------------

/**
 * One device's Double Ratchet with one other device, as client.ratchet.Session.
 *
 * `state` holds everything; message keys are deleted as they are used. Skipped keys are
 * kept (at most MAX_SKIPPED, oldest dropped) so a message that arrives late within
 * MAX_SKIP still opens. `prekey` is the X3DH header the initiator repeats until it first
 * hears back. keygen is an async function returning {privateRaw, publicRaw} (only the
 * private half is used: the public one is always derived from it).
 */
export class Session {
  constructor(state, keygen = generateKeyPair) {
    this.state = state;
    this._keygen = keygen;
    this._turn = Promise.resolve();
    this._public = null; // [dhs, its public key]: encrypt needs it for every message
  }

  static async initiate(sk, ad, peerSpk, prekey, keygen = generateKeyPair) {
    const own = await keygen();
    const [rk, cks] = await kdfRk(bytes(sk), await dh(own.privateRaw, peerSpk));
    return new Session({
      v: 1, ad: b64u(ad), dhs: b64u(own.privateRaw), dhr: b64u(peerSpk), rk: b64u(rk),
      cks: b64u(cks), ckr: null, ns: 0, nr: 0, pn: 0, skipped: [], old: [],
      prekey: structuredClone(prekey),
    }, keygen);
  }

  static respond(sk, ad, spkPrivateRaw, keygen = generateKeyPair) {
    return new Session({
      v: 1, ad: b64u(ad), dhs: b64u(spkPrivateRaw), dhr: null, rk: b64u(sk), cks: null,
      ckr: null, ns: 0, nr: 0, pn: 0, skipped: [], old: [], prekey: null,
    }, keygen);
  }

  copy() {
    return new Session(structuredClone(this.state), this._keygen);
  }

  /** {header: {dh: base64url, pn, n}, ct: bytes}. */
  encrypt(plaintext) {
    return this._serial(async () => {
      const s = this.state;
      if (s.cks === null) throw new RatchetError('no_session', 'this side has not received a message yet');
      const [cks, mk] = await kdfCk(unb64u(s.cks));
      const header = { dh: await this._ownPublic(s.dhs), pn: s.pn, n: s.ns };
      const ad = concat(unb64u(s.ad), encodeHeader(header));
      s.cks = b64u(cks);
      s.ns += 1;
      return { header: headerToWire(header), ct: await seal(mk, bytes(plaintext), ad) };
    });
  }

  /** Open a message (its header in the wire form); the state changes only if it opens. */
  decrypt(header, ciphertext) {
    return this._serial(async () => {
      const parsed = headerFromWire(header);
      const trial = structuredClone(this.state);
      const plaintext = await decryptIn(trial, parsed, bytes(ciphertext), this._keygen);
      this.state = trial;
      return plaintext;
    });
  }

  // WebCrypto is asynchronous: two calls that interleaved would read the same chain key
  // (one message key, so one AES key and nonce, for two messages). One at a time.
  _serial(operation) {
    const result = this._turn.then(operation);
    this._turn = result.catch(() => {});
    return result;
  }

  async _ownPublic(dhs) {
    if (this._public === null || this._public[0] !== dhs) {
      this._public = [dhs, await publicRaw(unb64u(dhs))];
    }
    return this._public[1];
  }
}

// The order of the checks is client/ratchet.py's _decrypt, so both name a fault alike.
async function decryptIn(s, header, ciphertext, keygen) {
  const ad = concat(unb64u(s.ad), encodeHeader(header));
  const dhB64 = b64u(header.dh);
  const i = s.skipped.findIndex(([key, n]) => key === dhB64 && n === header.n);
  if (i >= 0) {
    const plaintext = await open(unb64u(s.skipped[i][2]), ciphertext, ad);
    s.skipped.splice(i, 1);
    return plaintext;
  }
  if (s.old.includes(dhB64)) {
    throw new RatchetError('key_gone', 'a message of an earlier chain whose key was used or dropped');
  }
  if (dhB64 !== s.dhr) {
    await skip(s, header.pn);
    if (s.dhr !== null) s.old = [...s.old, s.dhr].slice(-MAX_OLD_CHAINS);
    [s.pn, s.ns, s.nr, s.dhr] = [s.ns, 0, 0, dhB64];
    const [rk1, ckr] = await kdfRk(unb64u(s.rk), await dh(unb64u(s.dhs), header.dh));
    const own = await keygen();
    const [rk, cks] = await kdfRk(rk1, await dh(own.privateRaw, header.dh));
    Object.assign(s, { rk: b64u(rk), ckr: b64u(ckr), cks: b64u(cks), dhs: b64u(own.privateRaw) });
  } else if (header.n < s.nr) {
    throw new RatchetError('key_gone', `message ${header.n} of this chain was already opened, or its key was dropped`);
  }
  await skip(s, header.n);
  const [ckr, mk] = await kdfCk(unb64u(s.ckr));
  const plaintext = await open(mk, ciphertext, ad);
  s.ckr = b64u(ckr);
  s.nr += 1;
  s.prekey = null; // heard back: the X3DH header has done its work
  return plaintext;
}

async function skip(s, until) {
  if (s.ckr === null) return;
  if (until - s.nr > MAX_SKIP) {
    throw new RatchetError('too_far_ahead', `${until - s.nr} messages skipped in one chain (at most ${MAX_SKIP})`);
  }
  let ckr = unb64u(s.ckr);
  while (s.nr < until) {
    let mk;
    [ckr, mk] = await kdfCk(ckr);
    s.skipped.push([s.dhr, s.nr, b64u(mk)]);
    s.nr += 1;
  }
  s.ckr = b64u(ckr);
  s.skipped.splice(0, Math.max(0, s.skipped.length - MAX_SKIPPED));
}
