// Every verification decision of the web client, in one pure module: inputs in, a verdict
// out. No DOM, no network, no storage; WebCrypto only computes. The caller looks the
// sender's key up (Directory.keyFor), and a content key shared with this browser for a
// message that holds none for it (SharedKeys.keyFor), and shows or stores what the
// verdict says.
//
// A verdict that refuses something names one of REASONS and a detail for the person:
//   malformed      not an envelope v1, v2 or v3, chain fields out of range, a signal out
//                  of shape
//   mismatch       from outside the room, or the envelope names another sender/room/kind
//   unknown_key    signed by a device the sender's trusted device list does not name (or
//                  the directory could not be reached)
//   bad_signature  the signature does not cover these bytes (altered or forged)
//   revoked_device signed by a device the list revoked, after it was revoked
//   not_for_device verified, but holds no key for this device (sent before it was added)
//                  and none was shared with it (sharing.js): explained quietly (one line
//                  per run of them), not a warning
//   undecryptable  verified, holds a key for this device, but that fails to decrypt (a
//                  ratchet entry names the session's code: key_gone, prekey_gone, …)
//   gap            links of a device's chain are missing
//   replay         a link seen before, again under another envelope or id, or too late
//   fork           a link that does not follow the one before it
// and, about the device lists themselves (identity.js judges, trust.js shows them):
//   unapproved_device  a device the server lists but the user's signed list does not name
//   identity_changed   the user's list is signed by another identity key than the pinned one
//   bad_device_list    a list that does not verify, is older than the pinned one, or is gone
//   bad_bundle         a device's prekey bundle its signing key did not sign (it gets the
//                      RSA entry: targets.js)
//
// Order of the checks for one frame: shape, addressing, key, signature, revocation, chain
// fields (frame verdicts); then the hash chain (ChainBook), then decryption (openFrame),
// then a signal's content (verifyReceipt, verifyTyping).

import { ALG, ALG_V3, envelopeHash, openEnvelope, verifySignature } from './envelope.js';
import { parseReceipt, parseTyping } from './signals.js';

export const REASONS = [
  'malformed', 'mismatch', 'unknown_key', 'bad_signature', 'revoked_device', 'not_for_device',
  'undecryptable', 'gap', 'replay', 'fork', 'unapproved_device', 'identity_changed',
  'bad_device_list', 'bad_bundle',
];

const SIGNAL_KINDS = new Set(['receipt', 'typing']);

function refuse(kind, detail) {
  return { device: null, alert: { kind, detail } };
}

/** The frame's shape and addressing, before any key is needed: an alert or null. */
function addressFault(frame, { room, members }) {
  const env = frame.body;
  const known = (env && typeof env === 'object')
    && (((env.v === 1 || env.v === 2) && env.alg === ALG) || (env.v === 3 && env.alg === ALG_V3));
  if (!known) return { kind: 'malformed', detail: 'this is not an envelope v1, v2 or v3' };
  if (!Object.hasOwn(members, frame.sender)) {
    return { kind: 'mismatch', detail: 'it comes from someone outside this conversation' };
  }
  const kind = frame.kind ?? 'typing';
  if (env.sender !== frame.sender || env.room !== room || frame.room !== room || env.kind !== kind) {
    return { kind: 'mismatch', detail: 'the envelope names another sender, room or kind' };
  }
  return null;
}

/**
 * The key a frame needs to be verified, {user, kid}; null when it is refused before that
 * (verifyFrame then says why, and no key lookup is spent on it).
 */
export function keyNeeded(frame, context) {
  return addressFault(frame, context) ? null : { user: frame.sender, kid: frame.body.from };
}

/**
 * Check one `message` or `typing` frame. members: {id: name} of the room's two users;
 * key: what the directory holds for keyNeeded(frame): {device, sigPublic} (device:
 * {kid, revokedAt}), {device: null} (not in the sender's trusted list) or {error} (could
 * not be fetched). Returns {device, alert}: the sending device when it verifies, else null
 * and the alert to show instead. A revoked device's frame counts only if the server's
 * `ts` is not after the revocation (a typing signal has none: refused).
 */
export async function verifyFrame(frame, { room, members, key }) {
  const fault = addressFault(frame, { room, members });
  if (fault) return { device: null, alert: fault };
  const env = frame.body;
  const name = members[frame.sender];
  if (key && key.error !== undefined) return refuse('unknown_key', `${name}’s keys could not be fetched: ${key.error}`);
  if (!key || !key.device || key.device.kid !== env.from) {
    return refuse('unknown_key', `signed by a device ${name}’s device list does not name`);
  }
  let valid = false;
  try {
    valid = Boolean(key.sigPublic) && await verifySignature(env, key.sigPublic);
  } catch {
    valid = false;
  }
  if (!valid) return refuse('bad_signature', `the signature does not match ${name}’s key`);
  const revokedAt = key.device.revokedAt ?? null;
  if (revokedAt !== null && !(Number.isSafeInteger(frame.ts) && frame.ts <= revokedAt)) {
    return refuse('revoked_device', `signed by a device ${name} revoked before it was sent`);
  }
  const signal = SIGNAL_KINDS.has(frame.kind ?? 'typing');
  if (signal ? env.seq !== 0 || env.prev !== '' : !Number.isSafeInteger(env.seq) || env.seq < 1
      || typeof env.prev !== 'string') {
    return refuse('malformed', 'the chain fields are invalid');
  }
  return { device: key.device, alert: null };
}

/**
 * Decrypt a verified frame with this browser's `reader`: {content, alert}. The reader is
 * the keyring (keyring.js: `contentKey(frame)` finds the key in the local history, or opens
 * the device's entry, ratchet or RSA; null when it holds none) or a bare device (RSA
 * entries only). A message that holds no key for the reader is opened with the content key
 * another device of the user shared for it, if `shared(envelope)` (sharing.js
 * SharedKeys.keyFor) finds one; else it is not_for_device. Signals are never shared.
 */
export async function openVerified(frame, reader, shared = null) {
  let key = null;
  let held;
  if (typeof reader.contentKey === 'function') {
    try {
      key = await reader.contentKey(frame);
    } catch (err) {
      return { content: null, alert: { kind: 'undecryptable', detail: err.message } };
    }
    held = key !== null;
  } else {
    held = (Array.isArray(frame.body.keys) ? frame.body.keys : []).some((k) => k && k.kid === reader.kid);
  }
  if (!held) {
    if (shared && !SIGNAL_KINDS.has(frame.kind ?? 'typing')) key = await shared(frame.body);
    if (!key) return { content: null, alert: { kind: 'not_for_device', detail: 'the message holds no key for this device' } };
  }
  try {
    return { content: await openEnvelope(frame.body, reader, key), alert: null };
  } catch (err) {
    return { content: null, alert: { kind: 'undecryptable', detail: err.message } };
  }
}

/** Verify, then decrypt (`shared`: as openVerified): {device, content, alert}. */
export async function openFrame(frame, context, reader, shared = null) {
  const { device, alert } = await verifyFrame(frame, context);
  if (alert) return { device: null, content: null, alert };
  return { device, ...(await openVerified(frame, reader, shared)) };
}

/** A friend's receipt: {marks: {delivered, read}, alert}. */
export async function verifyReceipt(frame, context, reader) {
  const { content, alert } = await openFrame(frame, context, reader);
  if (alert) return { marks: null, alert };
  try {
    return { marks: parseReceipt(content), alert: null };
  } catch (err) {
    return { marks: null, alert: { kind: 'malformed', detail: err.message } };
  }
}

/** A friend's typing signal: {typing, alert}; a stale one (replayed) is malformed. */
export async function verifyTyping(frame, context, reader, now = Date.now()) {
  const { content, alert } = await openFrame(frame, context, reader);
  if (alert) return { typing: null, alert };
  try {
    return { typing: parseTyping(content, now), alert: null };
  } catch (err) {
    return { typing: null, alert: { kind: 'malformed', detail: err.message } };
  }
}

// -- the hash chains ---------------------------------------------------------------------
//
// Each device numbers its envelopes in a room from 1 and names the previous one's hash
// (client/chain.py). A view loads the newest history page first, then live messages, then
// older pages as the user scrolls up, so the links it holds are a window of each chain.
// Within that window a receiver can tell a re-delivery (same seq, same hash, same id), a
// replay (a seq seen before under another envelope or id), a fork (a `prev` that is not
// the hash of the seq before) and a gap (a hole in the seq numbers, or a chain that does
// not start at 1 once the first page of history is loaded).

export class ChainBook {
  constructor() {
    this.devices = new Map(); // device kid -> Map(seq -> {hash, prev, id})
    this.atStart = false; // the oldest history page is loaded
    this.reported = new Set();
  }

  links(device) {
    let links = this.devices.get(device);
    if (!links) {
      links = new Map();
      this.devices.set(device, links);
    }
    return links;
  }

  newest(device) {
    const links = this.devices.get(device);
    return links && links.size ? Math.max(...links.keys()) : 0;
  }

  /**
   * add() for a verified envelope, hashing it: {kind, detail, show, hash, alert}, alert
   * null for a link that extends the chain or a re-delivery of one.
   */
  async addEnvelope(device, env, id, options = {}) {
    const hash = await envelopeHash(env);
    const verdict = this.add(device, env.seq, env.prev, hash, id, options);
    const fine = verdict.kind === 'ok' || verdict.kind === 'duplicate';
    return { ...verdict, hash, alert: fine ? null : { kind: verdict.kind, detail: verdict.detail } };
  }

  /**
   * Record one verified envelope and say what it means: {kind, detail, show}.
   * `live` envelopes (pushed or replayed after the newest page) must extend the chain.
   */
  add(device, seq, prev, hash, id, { live = false } = {}) {
    const links = this.links(device);
    const known = links.get(seq);
    if (known) {
      if (known.hash === hash && known.id === id) return { kind: 'duplicate', show: false };
      return { kind: 'replay', detail: `message #${seq} of this device arrived again`, show: false };
    }
    const newest = this.newest(device);
    if (live && newest && seq < newest) {
      return { kind: 'replay', detail: `#${seq} arrived after #${newest}`, show: false };
    }
    links.set(seq, { hash, prev, id });
    const before = links.get(seq - 1);
    if (before && before.hash !== prev) {
      return { kind: 'fork', detail: `#${seq} does not follow the #${seq - 1} this device sent`, show: true };
    }
    const after = links.get(seq + 1);
    if (after && after.prev !== hash) {
      return { kind: 'fork', detail: `#${seq + 1} does not follow #${seq}`, show: true };
    }
    return { kind: 'ok', show: true };
  }

  /** Holes in the loaded window of these devices' chains, each reported once. */
  gaps(devices) {
    const out = [];
    for (const device of devices) {
      const links = this.devices.get(device);
      if (!links || !links.size) continue;
      const seqs = [...links.keys()].sort((a, b) => a - b);
      const holes = [];
      if (this.atStart && seqs[0] > 1) holes.push([1, seqs[0] - 1, seqs[0]]);
      for (let i = 1; i < seqs.length; i += 1) {
        if (seqs[i] > seqs[i - 1] + 1) holes.push([seqs[i - 1] + 1, seqs[i] - 1, seqs[i]]);
      }
      for (const [from, to, at] of holes) {
        const key = `${device}/${from}/${to}`;
        if (this.reported.has(key)) continue;
        this.reported.add(key);
        const what = from === to ? `message #${from}` : `messages #${from}..#${to}`;
        out.push({ device, from, to, id: links.get(at).id, detail: `${what} of this device are missing` });
      }
    }
    return out;
  }

  /**
   * Compare with the newest link of each chain this browser saw before ({device: {seq,
   * hash}}): a different envelope at that seq, or a chain that now ends before it, means
   * the history changed since.
   */
  checkHeads(heads) {
    const out = [];
    for (const [device, head] of Object.entries(heads)) {
      const links = this.devices.get(device);
      if (!links || !links.size) continue;
      const at = links.get(head.seq);
      if (at && at.hash !== head.hash) {
        out.push({ kind: 'fork', device, id: at.id,
          detail: `#${head.seq} differs from the one this browser saw before` });
      } else if (!at && this.newest(device) < head.seq) {
        out.push({ kind: 'gap', device, id: null,
          detail: `messages up to #${head.seq}, seen here before, are missing from the history` });
      }
    }
    return out;
  }

  /**
   * The heads to remember for next time: `old` ({device: {seq, hash}}) moved on to the
   * newest links held now, except `own` device's (its chain is kept with its sends); null
   * when nothing moved.
   */
  rememberHeads(old, own) {
    const out = { ...old };
    let moved = false;
    for (const [device, head] of Object.entries(this.heads())) {
      if (device === own || (out[device] && head.seq <= out[device].seq)) continue;
      out[device] = head;
      moved = true;
    }
    return moved ? out : null;
  }

  /** The newest link of each device. */
  heads() {
    const out = {};
    for (const [device, links] of this.devices) {
      if (!links.size) continue;
      const seq = this.newest(device);
      out[device] = { seq, hash: links.get(seq).hash };
    }
    return out;
  }
}
