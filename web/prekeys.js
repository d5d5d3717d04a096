// Prekey bundles, as contracts/prekeys.py defines them (docs/sessions.md): a device's X25519
// identity key `ik` and signed prekey `spk`, signed by its ECDSA P-256 signing key. A sender
// checks the signature before it runs X3DH (ratchet.js) with them. No I/O.
//
// Bytes: the signature is over "duet-prekeys-v1\n" + canonical JSON of
// {ik, kid, spk: {id, key}, user, v}, in envelope v2's form (raw r||s, low s, canonical
// base64url).

import { b64u, canonicalBytes, concat, unb64u, utf8 } from './codec.js';
import { sign, sigIsCanonical, verify } from './crypto.js';

export const BUNDLE_PREFIX = 'duet-prekeys-v1\n';
export const KEY_ID_MAX = 2 ** 32 - 1;

// 32 bytes in base64url: an X25519 public key, or a key id (a fingerprint).
const isKey = (text) => typeof text === 'string' && /^[A-Za-z0-9_-]{43}$/.test(text);

/** What the device signs: the prefix + canonical JSON of every signed field. */
export function bundleSigningInput(bundle) {
  const { ik, kid, spk, user, v } = bundle;
  return concat(utf8(BUNDLE_PREFIX), canonicalBytes({ ik, kid, spk, user, v }));
}

/**
 * The bundle {v, user, kid, ik, spk: {id, key}, sig}: ik and spk.key are raw X25519 public
 * keys in base64url, kid the signing device's key id, sigPrivate its ECDSA CryptoKey.
 */
export async function signBundle(sigPrivate, { user, kid, ik, spk }) {
  const bundle = { v: 1, user, kid, ik, spk: { id: spk.id, key: spk.key } };
  bundle.sig = b64u(await sign(sigPrivate, bundleSigningInput(bundle)));
  return bundle;
}

// The shape contracts/prekeys.py's Bundle model accepts (no other fields either), so the
// browser never runs X3DH on a bundle the SDK would refuse.
function wellFormed(bundle) {
  if (!bundle || typeof bundle !== 'object' || Array.isArray(bundle)) return false;
  const keys = Object.keys(bundle).sort().join(',');
  if (keys !== 'ik,kid,sig,spk,user,v') return false;
  const { v, user, kid, ik, spk } = bundle;
  if (v !== 1 || typeof user !== 'string' || !isKey(kid) || !isKey(ik)) return false;
  if (!spk || typeof spk !== 'object' || Object.keys(spk).sort().join(',') !== 'id,key') return false;
  return Number.isInteger(spk.id) && spk.id >= 0 && spk.id <= KEY_ID_MAX && isKey(spk.key);
}

/** True if the bundle is well formed and sigPublic (an ECDSA CryptoKey) signed it, low s. */
export async function verifyBundle(bundle, sigPublic) {
  if (!wellFormed(bundle) || !sigIsCanonical(bundle.sig)) return false;
  return verify(sigPublic, bundleSigningInput(bundle), unb64u(bundle.sig));
}
