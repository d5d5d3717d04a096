// History for a linked device, over REST (docs/protocol.md "History for a linked device"),
// as the SDK does it (client/sdk.py _share_history, _shared_key). shares.js seals and
// opens the parts; this module moves them:
//   shareHistory  the browser that approved a device gathers the content keys of every
//                 message it can read, in every conversation (those its RSA key unwraps,
//                 and those it kept in its local history: forward-secret messages open
//                 once), and uploads them for that device in parts (PUT /api/history-shares)
//   SharedKeys    a browser looks up the content key shared with it for a message that
//                 holds none for it (GET /api/history-shares?to=<its kid>), trusting only
//                 parts a live device of the user's own trusted list signed

import { envelopeHash, unwrapContentKey } from './envelope.js';
import { openShare, sealShares } from './shares.js';

const PAGE_SIZE = 100;
const MESSAGE_KINDS = new Set(['text', 'image']); // signals are not shared: their moment has passed

// An RSA entry for `kid` (a ratchet entry, `h`, opened once: its key is in the local history).
function holdsKeyFor(envelope, kid) {
  return Array.isArray(envelope.keys) && envelope.keys.some((k) => k && k.kid === kid && k.h === undefined);
}

/**
 * {envelope hash: content key} of every message `device` can read, in every conversation
 * of the user, paged from the start. null once `stopped()`.
 */
export async function readableKeys(api, device, stopped = () => false) {
  const keys = {};
  for (const conv of await api.conversations()) {
    let after = null;
    do {
      if (stopped()) return null;
      const page = await api.messages(conv.user_id, { after, limit: PAGE_SIZE });
      for (const m of page.messages) {
        const env = m.body;
        if (!MESSAGE_KINDS.has(m.kind) || !env || typeof env !== 'object' || !holdsKeyFor(env, device.kid)) continue;
        try {
          const key = await unwrapContentKey(env, device);
          if (key.length === 32) keys[await envelopeHash(env)] = key;
        } catch {
          // not readable here either: nothing to share
        }
      }
      after = page.next;
    } while (after);
  }
  return keys;
}

/**
 * Give `to` (the directory's entry of a device just approved: {kid, enc}) the content keys
 * of every message this browser's `device` can read, and of every message kept in its
 * local `history` (localhistory.js). onCount(n) once they are counted, before the upload.
 * The number shared (0: nothing to share; null: stopped).
 */
export async function shareHistory({ api, me, device, dir, to, history = null, onCount = () => {}, stopped = () => false }) {
  const keys = await readableKeys(api, device, stopped);
  if (keys === null) return null;
  if (history) Object.assign(keys, await history.keys());
  const n = Object.keys(keys).length;
  if (!n) return 0;
  onCount(n);
  const shares = await sealShares({ user: me.id, sender: device, toKid: to.kid, toKey: await dir.encKey(to), keys });
  for (const share of shares) {
    if (stopped()) return null;
    await api.putHistoryShare(share);
  }
  return n;
}

/**
 * The content keys other devices of this user shared with this browser, fetched on first
 * need, once per page load; again after renew() if that found none (an approval that
 * shares history may land after this browser started).
 */
export class SharedKeys {
  /** me: {id, name}; device: this browser's device; dir: the Directory. */
  constructor({ api, me, device, dir }) {
    Object.assign(this, { api, me, device, dir });
    this.loading = null; // promise of Map(envelope hash -> content key)
    this.empty = false; // the last look found no usable share (or could not look)
  }

  /** A conversation opens: if the last look found nothing, the next need looks again. */
  renew() {
    if (!this.empty) return;
    this.empty = false;
    this.loading = null;
  }

  /** The content key shared for `envelope`, or null. */
  async keyFor(envelope) {
    if (!this.loading) this.loading = this.load();
    const keys = await this.loading;
    if (!keys.size) return null;
    try {
      return keys.get(await envelopeHash(envelope)) ?? null;
    } catch {
      return null; // not an envelope v1 or v2: nothing was shared for it
    }
  }

  async load() {
    const keys = new Map();
    try {
      const shares = await this.api.historyShares(this.device.kid);
      let entry = null;
      let fresh = false;
      for (const share of shares) {
        entry ??= await this.dir.get(this.me.id, this.me.name, { offline: true });
        let signer = live(entry, share && share.from);
        if (!signer && !fresh) {
          // A device approved since this browser last asked: the list is fetched once more.
          entry = await this.dir.get(this.me.id, this.me.name, { refresh: true });
          fresh = true;
          signer = live(entry, share && share.from);
        }
        if (!signer) continue; // not signed by a live device of the user's trusted list
        try {
          const signerKey = await this.dir.sigKey(signer);
          const part = await openShare(share, { user: this.me.id, device: this.device, signer: signerKey });
          for (const [hash, key] of Object.entries(part)) keys.set(hash, key);
        } catch {
          // forged, damaged or for another device: its messages stay unreadable here
        }
      }
    } catch {
      // unreachable now: looked for again after renew()
    }
    this.empty = keys.size === 0;
    return keys;
  }
}

function live(entry, kid) {
  const d = typeof kid === 'string' ? entry.devices.get(kid) : null;
  return d && d.revokedAt === null ? d : null;
}
