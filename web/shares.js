// History shares, as client/shares.py makes and opens them (docs/protocol.md "History for a
// linked device"): the content keys of earlier messages, from the device that approved a
// new one to that device, so it reads the history the approving one can. No I/O; the two
// ends that fetch and upload them are in sharing.js.
//
// A share part is {v: 1, user, to, from, part, wk, iv, ct, sig}: `ct` is AES-256-GCM under
// a fresh key (wrapped in `wk` with RSA-OAEP-256 for the device `to`) over the canonical
// JSON {<envelope hash>: <content key, base64url>} of at most SHARE_KEYS keys; `sig` is the
// device `from`'s ECDSA P-256 signature (low s) over shareSigningInput.

import { b64u, canonicalBytes, compareCodePoints, concat, fromUtf8, unb64u, utf8 } from './codec.js';
import { randomBytes, seal, sign, sigIsCanonical, unseal, unwrap, verify, wrap } from './crypto.js';

export const SHARE_PREFIX = 'duet-history-share-v1\n';
export const SHARE_KEYS = 400; // content keys per part: a part stays under the REST body limit

export class ShareError extends Error {}

/** What the sending device signs: the prefix + canonical JSON of every field but `sig`. */
export function shareSigningInput(share) {
  const unsigned = {};
  for (const [k, v] of Object.entries(share)) if (k !== 'sig') unsigned[k] = v;
  return concat(utf8(SHARE_PREFIX), canonicalBytes(unsigned));
}

/**
 * keys ({envelope hash: content key bytes}) in parts of SHARE_KEYS, each encrypted to the
 * device `toKid` (toKey: its RSA-OAEP public CryptoKey) and signed by `sender` (this
 * browser's device: {kid, sig}).
 */
export async function sealShares({ user, sender, toKid, toKey, keys }) {
  const items = Object.entries(keys).sort((x, y) => compareCodePoints(x[0], y[0]));
  const shares = [];
  for (let i = 0; i < items.length; i += SHARE_KEYS) {
    const plain = {};
    for (const [hash, key] of items.slice(i, i + SHARE_KEYS)) plain[hash] = b64u(key);
    const key = randomBytes(32);
    const iv = randomBytes(12);
    const share = {
      v: 1, user, to: toKid, from: sender.kid, part: i / SHARE_KEYS,
      wk: b64u(await wrap(toKey, key)), iv: b64u(iv), ct: b64u(await seal(key, iv, canonicalBytes(plain))),
    };
    share.sig = b64u(await sign(sender.sig, shareSigningInput(share)));
    shares.push(share);
  }
  return shares;
}

/**
 * The content keys of one part ({envelope hash: bytes}) if `signer` (the ECDSA public
 * CryptoKey of a live device of the user's trusted list) signed it for `device` (this
 * browser's: {kid, enc}); else throws ShareError.
 */
export async function openShare(share, { user, device, signer }) {
  if (!share || typeof share !== 'object' || share.v !== 1) throw new ShareError('not a history share');
  if (share.user !== user || share.to !== device.kid) throw new ShareError('a history share for another device');
  let input;
  try {
    input = shareSigningInput(share);
  } catch {
    throw new ShareError('a history share out of shape'); // a float, say: no canonical JSON
  }
  if (!sigIsCanonical(share.sig) || !(await verify(signer, input, unb64u(share.sig)))) {
    throw new ShareError('a history share not signed by the device it names');
  }
  let plain;
  try {
    const key = await unwrap(device.enc, unb64u(String(share.wk)));
    plain = JSON.parse(fromUtf8(await unseal(key, unb64u(String(share.iv)), unb64u(String(share.ct)))));
  } catch {
    throw new ShareError('a history share that does not decrypt');
  }
  if (!plain || typeof plain !== 'object' || Array.isArray(plain)) {
    throw new ShareError('a history share that is not an object');
  }
  const keys = {};
  for (const [hash, key] of Object.entries(plain)) {
    try {
      keys[hash] = unb64u(key);
    } catch {
      throw new ShareError('a history share with a key that is not base64url');
    }
  }
  return keys;
}
