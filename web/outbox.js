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

import { ERRORS } from './codes.js';
import { b64u } from './codec.js';
import { randomBytes } from './crypto.js';
import { Directory } from './directory.js';
import { envelopeHash, sealEnvelope } from './envelope.js';
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
 * [{kid, key}] of every live device of both users' trusted device lists (directory.js):
 * a device the server lists but no signed list names gets nothing. Throws while the
 * friend's identity key changed and the user has not accepted the new one, and for a
 * friend with no device list yet.
 */
export async function recipients(dir, me, peer) {
  const [theirs, mine] = await Promise.all([
    dir.get(peer.id, peer.name, { refresh: true, offline: true }),
    dir.get(me.id, me.name, { refresh: true, offline: true }),
  ]);
  if (theirs.changedTo) {
    throw new Error(`${peer.name}’s identity key changed. Compare safety numbers, then Accept to send again.`);
  }
  const peerDevices = Directory.live(theirs);
  if (!theirs.identity || !peerDevices.length) throw new Error(`${peer.name} has not set up an identity key yet`);
  return Promise.all([...peerDevices, ...Directory.live(mine)].map(
    async (d) => ({ kid: d.kid, key: await dir.encKey(d) })));
}

/** A receipt or typing envelope from this device to the room with `peer`. */
export async function sealSignal({ dir, me, device, peer, kind, content }) {
  return sealEnvelope({
    room: roomId(me.id, peer.id), sender: me.id, device, seq: 0, prev: '', kind,
    meta: content.meta, data: content.data, recipients: await recipients(dir, me, peer),
  });
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
   * one transaction. {frame, hash}: the `send` frame, not sent yet.
   */
  async seal({ device, peer, room, kind, meta, data, recipients: to }) {
    const id = newId();
    const chainKey = `${device.kid}/${room}`;
    return withLock(`duet-chain/${chainKey}`, async () => {
      const link = (await store.get('chains', chainKey)) ?? { seq: 0, hash: '' };
      const body = await sealEnvelope({
        room, sender: this.userId, device, seq: link.seq + 1, prev: link.hash, kind, meta, data, recipients: to,
      });
      const frame = { type: 'send', id, peer: peer.id, kind, body };
      const hash = await envelopeHash(body);
      await store.write([
        ['chains', chainKey, { seq: body.seq, hash }],
        ['outbox', this.key(room, id), { frame, created: Date.now() }],
      ]);
      return { frame, hash };
    });
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
