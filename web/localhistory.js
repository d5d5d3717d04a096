// What this browser has read or sent, kept by it (docs/sessions.md "History a device
// keeps"), as client/localhistory.py: per room, every message frame it opened or sent, by
// envelope hash, with the message's content key, sealed at rest (atrest.js). A
// forward-secret message opens once: after that, this is where the browser reads it from,
// whether or not the server still holds it.

import { b64u, unb64u } from './codec.js';
import * as atrest from './atrest.js';
import * as store from './store.js';

const MESSAGE_KINDS = new Set(['text', 'image']);
const FRAME_FIELDS = ['type', 'id', 'sender', 'room', 'kind', 'body', 'ts', 'cursor'];

/** The part of a frame worth keeping (what a history page would serve). */
export function keptFrame(frame) {
  const out = {};
  for (const k of FRAME_FIELDS) if (frame[k] !== undefined) out[k] = frame[k];
  out.type = 'message';
  return out;
}

export class LocalHistory {
  /** userId: whose history (a browser profile may hold several accounts). */
  constructor(userId) {
    this.userId = userId;
  }

  name(room, hash) {
    return `${this.userId}/${room}/${hash}`;
  }

  /** {frame, key} kept for the envelope `hash` of `room`, or null. */
  async get(room, hash) {
    const kept = await atrest.read('history', this.name(room, hash));
    return kept ? { frame: kept.frame, key: unb64u(kept.key) } : null;
  }

  async key(room, hash) {
    const kept = await this.get(room, hash);
    return kept ? kept.key : null;
  }

  /** A write entry for store.write(), so the message is kept in the same transaction as
   * what else changed with it (a ratchet step, the sending chain). */
  entry(frame, hash, key) {
    return atrest.entry('history', this.name(frame.room ?? frame.body.room, hash),
      { frame: keptFrame(frame), key: b64u(key) });
  }

  async add(frame, hash, key) {
    await store.write([await this.entry(frame, hash, key)]);
  }

  /** An own message was acked: its kept frame learns its time and cursor. */
  async place(room, hash, ts, cursor) {
    const kept = await this.get(room, hash);
    if (!kept || kept.frame.cursor) return;
    await this.add({ ...kept.frame, ts, cursor }, hash, kept.key);
  }

  /** [{hash, frame, key}] of every message kept of `room`. */
  async room(room) {
    return this.entries(`${this.userId}/${room}/`);
  }

  /** {envelope hash: content key} of every message kept, in every room (for a history
   * share; signals are left out: their moment has passed). */
  async keys() {
    const out = {};
    for (const { hash, frame, key } of await this.entries(`${this.userId}/`)) {
      if (MESSAGE_KINDS.has(frame.kind)) out[hash] = key;
    }
    return out;
  }

  async entries(prefix) {
    const out = [];
    for (const [name, record] of await store.entriesWithPrefix('history', prefix)) {
      try {
        const kept = await atrest.open(name, record);
        out.push({ hash: name.slice(name.lastIndexOf('/') + 1), frame: kept.frame, key: unb64u(kept.key) });
      } catch {
        // a damaged record is one message less, not a history that cannot be read
      }
    }
    return out;
  }
}
