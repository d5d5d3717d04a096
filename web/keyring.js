// This browser device's keys to messages, envelope v3 (docs/sessions.md), in one place for
// the rest of the client: its prekeys and ratchet sessions (sessionstore.js), what it kept
// of what it read and sent (localhistory.js), and the devices it sends to (targets.js).
//
// Reading (contentKey, the reader verify.js openVerified takes), as client/sdk.py _verify:
// a message is looked up in the local history by its envelope hash first (a
// forward-secret message opens once: read twice, from a history page or in another tab,
// it comes from there); else this device's entry opens it, a ratchet entry with the
// session of the sending device (`from`), an RSA entry with the device key, and the
// message is kept. Typing signals are neither looked up nor kept: they are never stored.

import { envelopeHash, ownEntry, unwrapContentKey } from './envelope.js';
import { keptFrame, LocalHistory } from './localhistory.js';
import { DeviceSessions, publishPrekeys } from './sessionstore.js';
import { Targets } from './targets.js';

const KEPT_KINDS = new Set(['text', 'image', 'receipt']);

export class Keyring {
  /** me: {id, name}; device: this browser's device; dir: the Directory. */
  constructor({ api, me, device, dir }) {
    this.api = api;
    this.me = me;
    this.device = device;
    this.kid = device.kid;
    this.sessions = new DeviceSessions(device);
    this.history = new LocalHistory(me.id);
    this.targets = new Targets({ api, dir, me, device, sessions: this.sessions });
  }

  /** Publish this device's prekeys (or top them up): how many one-time ones it holds. */
  publish() {
    return publishPrekeys(this.api, this.sessions, this.me.id);
  }

  /**
   * What a v3 envelope to `peer` needs: {keys(contentKey) → the `keys` entries, alerts}
   * (alerts: bundles that do not verify, whose device gets the RSA entry).
   */
  async plan(peer) {
    const { targets, alerts } = await this.targets.for(peer);
    return { keys: (contentKey) => this.sessions.seal(contentKey, targets), alerts };
  }

  /** {devices, without}: the conversation is forward secret when `without` is 0. */
  scheme(peer) {
    return this.targets.scheme(peer);
  }

  /**
   * The content key of a verified frame's envelope for this device; null when it holds no
   * entry for it and kept none. Throws RatchetError (code: key_gone, prekey_gone, …) or
   * EnvelopeError when the entry does not open.
   */
  async contentKey(frame) {
    const env = frame.body;
    const kind = frame.kind ?? 'typing';
    const room = frame.room ?? env.room;
    const lookup = KEPT_KINDS.has(kind);
    const hash = lookup ? await envelopeHash(env) : null;
    if (lookup) {
      const kept = await this.history.key(room, hash);
      if (kept) return kept;
    }
    const entry = ownEntry(env, this.kid);
    if (!entry) return null;
    // Only a stored frame is kept (it has its id and cursor: what a history page serves).
    const keep = lookup && typeof frame.id === 'string' && typeof frame.cursor === 'string';
    const record = keep ? keptFrame({ ...frame, room }) : null;
    if (entry.h !== undefined) {
      return this.sessions.open(env.from, entry, {
        kept: () => (lookup ? this.history.key(room, hash) : null),
        keep: async (key) => (record ? [await this.history.entry(record, hash, key)] : []),
      });
    }
    const key = await unwrapContentKey(env, this.device);
    if (record) await this.history.add(record, hash, key);
    return key;
  }
}
