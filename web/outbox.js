// The outbox: what this browser sends, until the server says what became of it.
//
// A message is sealed as the next link of this device's chain in the room and enters the
// outbox (IndexedDB) in the same transaction that advances the chain, before it leaves: a
// sequence number is never used twice, and a reload sends again what was not settled.
// While the tab runs, every pending send (messages and receipts) is also held here and
// sent again after each reconnect, marked `retry` so a gateway that already stored it
// answers from storage; either way its id keeps it one message.
//
// What a reply means (reply()), and an own message's tick (advance()):
//   ack                    sent       the broker confirmed; settled
//   stored                 stored     the persister wrote it; settled
//   error publish_failed   (pending)  sent again, same id, after RESEND_DELAY_MS
//   any other error        failed     settled: the same frame would fail again
// then the friend's receipts move it to delivered and read. A tick only moves forward
// (pending → sent → stored → delivered → read); failed can come at any time.
//
// Signals (receipts, typing) are sealed here too, outside the chain (seq 0, prev "");
// a receipt is a pending send like a message, a typing signal only best effort.
//
// Messages and receipts go as envelope v3 (the content key over each device's ratchet
// session: keyring.js), typing as v2 (docs/sessions.md "Signals" says why). A v3 message is
// kept in this browser's local history in the same transaction as its chain link: the
// sending device has no entry in what it sent, and reads it from there.

import { ERRORS } from './codes.js';
import { b64u } from './codec.js';
import { randomBytes } from './crypto.js';
import { Directory } from './directory.js';
import { envelopeHash, sealEnvelope, sealEnvelopeV3 } from './envelope.js';
import { typingContent } from './signals.js';
import * as store from './store.js';

const RESEND_DELAY_MS = 500;
const TYPING_EVERY_MS = 3000;
const TYPING_RETRY_MS = 1000;
const ORDER = { pending: 0, failed: 1, sent: 2, stored: 3, delivered: 4, read: 5 };

export function roomId(a, b) {
  return a < b ? `${a}.${b}` : `${b}.${a}`;
}

export function newId() {
  return b64u(randomBytes(16));
}

/** The state an own message moves to when `next` is heard in state `current`. */
export function advance(current, next) {
  if (!(next in ORDER)) return current;
  if (!current || next === 'failed' || ORDER[next] >= ORDER[current]) return next;
  return current;
}

/**
 * What an `ack`, `stored` or `error` frame about a send means: {settle, resend, state,
 * cursor, ts, detail}; null for any other frame.
 */
export function reply(frame) {
  switch (frame.type) {
    case 'ack':
      return { settle: true, resend: false, state: 'sent', cursor: frame.cursor, ts: frame.ts };
    case 'stored':
      return { settle: true, resend: false, state: 'stored', cursor: frame.cursor, ts: null };
    case 'error':
      if (frame.code === ERRORS.publish_failed.code) return { settle: false, resend: true, state: 'pending' };
      return { settle: true, resend: false, state: 'failed', detail: frame.detail ?? '' };
    default:
      return null;
  }
}

/**
 * [friend's entry, own entry] of the two users' trusted device lists (directory.js), asked
 * afresh: a device the server lists but no signed list names gets nothing. Throws while
 * the friend's identity key changed and the user has not accepted the new one, and for a
 * friend with no device list yet.
 */
export async function lists(dir, me, peer) {
  const [theirs, mine] = await Promise.all([
    dir.get(peer.id, peer.name, { refresh: true, offline: true }),
    dir.get(me.id, me.name, { refresh: true, offline: true }),
  ]);
  if (theirs.changedTo) {
    throw new Error(`${peer.name}’s identity key changed. Compare safety numbers, then Accept to send again.`);
  }
  if (!theirs.identity || !Directory.live(theirs).length) throw new Error(`${peer.name} has not set up an identity key yet`);
  return [theirs, mine];
}

/** [{kid, key}] of every live device of both users' trusted device lists (envelope v2). */
export async function recipients(dir, me, peer) {
  const [theirs, mine] = await lists(dir, me, peer);
  return Promise.all([...Directory.live(theirs), ...Directory.live(mine)].map(
    async (d) => ({ kid: d.kid, key: await dir.encKey(d) })));
}

/**
 * A receipt or typing envelope from this device to the room with `peer`: a receipt as v3
 * when `keyring` (keyring.js) is given, typing always as v2.
 */
export async function sealSignal({ dir, me, device, peer, kind, content, keyring = null }) {
  const fields = {
    room: roomId(me.id, peer.id), sender: me.id, device, seq: 0, prev: '', kind,
    meta: content.meta, data: content.data,
  };
  if (keyring && kind !== 'typing') {
    const { keys } = await keyring.plan(peer);
    return (await sealEnvelopeV3({ ...fields, keys })).envelope;
  }
  return sealEnvelope({ ...fields, recipients: await recipients(dir, me, peer) });
}

/**
 * This user's typing signals to one friend: at most one "typing" every few seconds and a
 * "stopped" only after one; they leave in the order they were asked for (sealing takes a
 * moment), best effort (never pending: a lost one is overtaken by the next).
 */
export class TypingSignal {
  /** post(frame): send now if the socket is up. */
  constructor({ dir, me, device, peer, post }) {
    Object.assign(this, { dir, me, device, peer, post });
    this.sent = 0;
    this.on = false;
    this.work = Promise.resolve();
    this.retry = null;
  }

  set(on) {
    const now = Date.now();
    if (on ? now - this.sent < TYPING_EVERY_MS : !this.sent) return this.work;
    this.sent = on ? now : 0;
    return this.say(on);
  }

  /**
   * The gateway dropped a signal (rate_limited: DUET_TYPING_PER_S, one a second by
   * default): the present state goes again after a second, when the bucket has refilled.
   */
  dropped() {
    clearTimeout(this.retry);
    this.retry = setTimeout(() => this.say(this.on), TYPING_RETRY_MS);
  }

  /** Safe twice. */
  close() {
    clearTimeout(this.retry);
  }

  say(on) {
    this.on = on;
    this.work = this.work.then(async () => {
      try {
        const body = await sealSignal({
          dir: this.dir, me: this.me, device: this.device, peer: this.peer, kind: 'typing',
          content: typingContent(on),
        });
        this.post({ type: 'typing', peer: this.peer.id, body });
      } catch {
        // a typing signal that cannot be sealed now is simply not sent
      }
    });
    return this.work;
  }
}

function withLock(name, fn) {
  return navigator.locks ? navigator.locks.request(name, fn) : fn();
}

export class Outbox {
  /** post(frame): send now if the socket is up (false if not). */
  constructor(userId, post) {
    this.userId = userId;
    this.post = post;
    this.pending = new Map(); // message id -> {room, frame}
    this.timers = new Set();
  }

  key(room, id) {
    return `${this.userId}/${room}/${id}`;
  }

  /**
   * Seal a message from `device` to the room with `peer` (one send at a time per chain,
   * across tabs: the Web Locks API), and keep it in the outbox with its chain link in
   * one transaction. {frame, hash}: the `send` frame, not sent yet. With `keys` (a v3
   * plan's, keyring.js) it is envelope v3, kept in `history` (localhistory.js) in that
   * same transaction; with `recipients`, v2.
   */
  async seal({ device, peer, room, kind, meta, data, recipients: to = null, keys = null, history = null }) {
    const id = newId();
    const chainKey = `${device.kid}/${room}`;
    return withLock(`duet-chain/${chainKey}`, async () => {
      const link = (await store.get('chains', chainKey)) ?? { seq: 0, hash: '' };
      const fields = { room, sender: this.userId, device, seq: link.seq + 1, prev: link.hash, kind, meta, data };
      let body;
      let contentKey = null;
      if (keys) ({ envelope: body, contentKey } = await sealEnvelopeV3({ ...fields, keys }));
      else body = await sealEnvelope({ ...fields, recipients: to });
      const frame = { type: 'send', id, peer: peer.id, kind, body };
      const hash = await envelopeHash(body);
      const writes = [
        ['chains', chainKey, { seq: body.seq, hash }],
        ['outbox', this.key(room, id), { frame, created: Date.now() }],
      ];
      if (history && contentKey) {
        writes.push(await history.entry({ id, sender: this.userId, room, kind, body }, hash, contentKey));
      }
      await store.write(writes);
      return { frame, hash };
    });
  }

  /**
   * An `ack` came (before it is settled): a message kept in `history` learns its time and
   * cursor there, so the history it is merged into can place it.
   */
  async acked(frame, history) {
    const entry = this.pending.get(frame.id);
    if (!entry || !history || !['text', 'image'].includes(entry.frame.kind) || entry.frame.body.v !== 3) return;
    try {
      await history.place(entry.room, await envelopeHash(entry.frame.body), frame.ts, frame.cursor);
    } catch {
      // its place is only for merging: the message itself is kept
    }
  }

  /** Send a `send` frame now if connected, and again after every reconnect until settled. */
  send(frame, room) {
    this.pending.set(frame.id, { room, frame });
    this.post(frame);
  }

  /** After each `ready` (and its sync): everything pending again, marked as a retry. */
  resendAll() {
    for (const { frame } of this.pending.values()) this.post({ ...frame, retry: true });
  }

  /** The broker did not confirm in time: the same frame again, shortly. */
  resendLater(id) {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      const entry = this.pending.get(id);
      if (entry) this.post({ ...entry.frame, retry: true });
    }, RESEND_DELAY_MS);
    this.timers.add(timer);
  }

  has(id) {
    return this.pending.has(id);
  }

  /** The room a pending send is for (to route a reply that does not name it). */
  roomOf(id) {
    return this.pending.get(id)?.room ?? null;
  }

  /** Done with a send (acked, stored or refused): forget it here and in storage. */
  async settle(room, id) {
    this.pending.delete(id);
    if (room) await store.remove('outbox', this.key(room, id));
  }

  /** What a previous page left in the outbox for `room`, oldest link first: [{frame}]. */
  async stored(room) {
    const entries = await store.withPrefix('outbox', `${this.userId}/${room}/`);
    return entries.sort((a, b) => a.frame.body.seq - b.frame.body.seq);
  }

  /** At start: send every room's unsettled messages again (same ids). */
  async restore() {
    for (const { frame } of await store.withPrefix('outbox', `${this.userId}/`)) {
      if (frame.peer) this.send(frame, roomId(this.userId, frame.peer));
    }
  }

  /** Safe twice. */
  close() {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.pending.clear();
  }
}
