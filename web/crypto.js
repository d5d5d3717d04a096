// Envelope v1 primitives on WebCrypto, byte for byte those of client/crypto.py:
// RSA-OAEP (SHA-256, MGF1-SHA-256, no label), AES-256-GCM (12-byte IV, 16-byte tag
// appended), ECDSA P-256 / SHA-256 with raw r||s signatures, key ids that are the
// base64url SHA-256 of the DER SubjectPublicKeyInfo.

import { b64u, bytes, canonicalBytes, compareCodePoints, concat, unb64u, utf8 } from './codec.js';

const subtle = globalThis.crypto.subtle;

export const RSA_OAEP = { name: 'RSA-OAEP', hash: 'SHA-256' };
export const ECDSA_P256 = { name: 'ECDSA', namedCurve: 'P-256' };
const ECDSA_SHA256 = { name: 'ECDSA', hash: 'SHA-256' };
const AES_GCM = 'AES-GCM';

export function randomBytes(n) {
  return globalThis.crypto.getRandomValues(new Uint8Array(n));
}

export async function sha256(data) {
  return new Uint8Array(await subtle.digest('SHA-256', data));
}

export async function sha512(data) {
  return new Uint8Array(await subtle.digest('SHA-512', data));
}

/** A key id: base64url SHA-256 of the key's DER SubjectPublicKeyInfo. */
export async function fingerprint(spkiDer) {
  return b64u(await sha256(bytes(spkiDer)));
}

/**
 * A new device: RSA-OAEP 2048 (e = 65537) for decryption and ECDSA P-256 for signing.
 * The private keys are not extractable; only the public halves leave as SPKI.
 */
export async function generateDevice() {
  const enc = await subtle.generateKey(
    { ...RSA_OAEP, modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) },
    false, ['encrypt', 'decrypt']);
  const sig = await subtle.generateKey(ECDSA_P256, false, ['sign', 'verify']);
  const encSpki = new Uint8Array(await subtle.exportKey('spki', enc.publicKey));
  const sigSpki = new Uint8Array(await subtle.exportKey('spki', sig.publicKey));
  return {
    kid: await fingerprint(encSpki),
    sid: await fingerprint(sigSpki),
    encSpki: b64u(encSpki),
    sigSpki: b64u(sigSpki),
    enc: enc.privateKey,
    sig: sig.privateKey,
  };
}

/** DER bytes of a PEM block (e.g. "-----BEGIN PRIVATE KEY-----"). */
export function pemToDer(pem) {
  const body = pem.replace(/-----(BEGIN|END) [A-Z ]+-----/g, '').replace(/\s+/g, '');
  return unb64u(body.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''));
}

/** A device from PKCS#8 private keys (PEM) and its public SPKIs: for the test vectors. */
export async function importDevice({ encPkcs8Pem, sigPkcs8Pem, encSpki, sigSpki }) {
  const enc = await subtle.importKey('pkcs8', pemToDer(encPkcs8Pem), RSA_OAEP, false, ['decrypt']);
  const sig = await subtle.importKey('pkcs8', pemToDer(sigPkcs8Pem), ECDSA_P256, false, ['sign']);
  return {
    kid: await fingerprint(unb64u(encSpki)),
    sid: await fingerprint(unb64u(sigSpki)),
    encSpki,
    sigSpki,
    enc,
    sig,
  };
}

export function importEncPublic(spkiB64u) {
  return subtle.importKey('spki', unb64u(spkiB64u), RSA_OAEP, false, ['encrypt']);
}

export function importSigPublic(spkiB64u) {
  return subtle.importKey('spki', unb64u(spkiB64u), ECDSA_P256, false, ['verify']);
}

export async function wrap(encPublic, contentKey) {
  return new Uint8Array(await subtle.encrypt(RSA_OAEP, encPublic, contentKey));
}

export async function unwrap(encPrivate, wrapped) {
  return new Uint8Array(await subtle.decrypt(RSA_OAEP, encPrivate, wrapped));
}

async function aesKey(raw, usage) {
  return subtle.importKey('raw', raw, AES_GCM, false, [usage]);
}

export async function seal(raw, iv, plaintext) {
  const key = await aesKey(raw, 'encrypt');
  return new Uint8Array(await subtle.encrypt({ name: AES_GCM, iv }, key, plaintext));
}

export async function unseal(raw, iv, ciphertext) {
  const key = await aesKey(raw, 'decrypt');
  return new Uint8Array(await subtle.decrypt({ name: AES_GCM, iv }, key, ciphertext));
}

// The order of P-256's group; a v2 signature's s is at most half of it.
const P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551n;

function toBigInt(raw) {
  let n = 0n;
  for (const b of raw) n = (n << 8n) | BigInt(b);
  return n;
}

function fromBigInt(n, length) {
  const out = new Uint8Array(length);
  for (let i = length - 1; i >= 0; i -= 1) { out[i] = Number(n & 0xFFn); n >>= 8n; }
  return out;
}

/**
 * ECDSA P-256 / SHA-256: WebCrypto's native format is 32-byte r then 32-byte s. s is made
 * low (n - s when s > n/2: the same signature's other valid form), as envelope v2 requires.
 */
export async function sign(sigPrivate, data) {
  const raw = new Uint8Array(await subtle.sign(ECDSA_SHA256, sigPrivate, data));
  const s = toBigInt(raw.subarray(32));
  if (s > P256_N / 2n) raw.set(fromBigInt(P256_N - s, 32), 32);
  return raw;
}

/**
 * A v2 signature (contracts/envelope.py sig_is_canonical): 86 base64url digits whose 4
 * spare bits are zero (the one encoding of 64 bytes), and 0 < s <= n/2.
 */
export function sigIsCanonical(sig) {
  if (typeof sig !== 'string' || !/^[A-Za-z0-9_-]{86}$/.test(sig)) return false;
  const raw = unb64u(sig);
  if (b64u(raw) !== sig) return false;
  const s = toBigInt(raw.subarray(32));
  return s > 0n && s <= P256_N / 2n;
}

export async function verify(sigPublic, data, signature) {
  if (signature.length !== 64) return false;
  try {
    return await subtle.verify(ECDSA_SHA256, sigPublic, signature, data);
  } catch {
    return false;
  }
}

function comparePairs(x, y) {
  return compareCodePoints(x[0], y[0]) || compareCodePoints(x[1], y[1]);
}

/**
 * Twelve groups of five digits, the same whichever friend computes it.
 * SHA-512 of "duet-safety-v1\n" + canonical JSON {user_id: sorted [[kid, sid], ...]} for
 * both users; each 5-byte big-endian chunk of the first 60 bytes mod 100000. Five bytes
 * exceed 32 bits, so the arithmetic is done in BigInt.
 */
export async function safetyNumber(a, aKeys, b, bKeys) {
  const sorted = (keys) => keys.map(([kid, sid]) => [kid, sid]).sort(comparePairs);
  const material = { [a]: sorted(aKeys), [b]: sorted(bKeys) };
  const digest = await sha512(concat(utf8('duet-safety-v1\n'), canonicalBytes(material)));
  const groups = [];
  for (let i = 0; i < 60; i += 5) {
    let n = 0n;
    for (let j = 0; j < 5; j += 1) n = (n << 8n) | BigInt(digest[i + j]);
    groups.push((n % 100000n).toString().padStart(5, '0'));
  }
  return groups.join(' ');
}
