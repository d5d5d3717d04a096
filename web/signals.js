// Receipts and typing signals, as client/signals.py has them: signed, encrypted envelopes
// of kind `receipt` / `typing`, outside the message chain (seq 0, prev ""), whose
// plaintext is canonical JSON:
//   receipt  {"delivered": cursor|null, "read": cursor|null}   (read null: receipts off)
//   typing   {"typing": true|false, "at": ms}   refused more than FRESH_MS from our clock

import { canonicalBytes, fromUtf8 } from './codec.js';

export const RECEIPT_MIME = 'application/vnd.duet.receipt+json';
export const TYPING_MIME = 'application/vnd.duet.typing+json';
export const FRESH_MS = 30_000;
export const TYPING_SHOWN_MS = 5_000;
const CURSOR = /^[0-9a-f]{32}$/;

export function receiptContent(delivered, read) {
  return { meta: { mime: RECEIPT_MIME }, data: canonicalBytes({ delivered: delivered ?? null, read: read ?? null }) };
}

export function typingContent(typing, at = Date.now()) {
  return { meta: { mime: TYPING_MIME }, data: canonicalBytes({ typing, at }) };
}

function parse(content, mime) {
  if (content.meta.mime !== mime) throw new Error(`a signal of type ${content.meta.mime}`);
  let data;
  try {
    data = JSON.parse(fromUtf8(content.data));
  } catch {
    throw new Error('a signal that is not JSON');
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) throw new Error('a signal that is not an object');
  return data;
}

/** {delivered, read}: each a cursor or null. */
export function parseReceipt(content) {
  const data = parse(content, RECEIPT_MIME);
  const keys = Object.keys(data).sort().join(',');
  const ok = (m) => m === null || (typeof m === 'string' && CURSOR.test(m));
  if (keys !== 'delivered,read' || !ok(data.delivered) || !ok(data.read)) throw new Error('a receipt out of shape');
  return { delivered: data.delivered, read: data.read };
}

/** Whether the friend is typing; throws for a stale (replayed) or malformed signal. */
export function parseTyping(content, now = Date.now()) {
  const data = parse(content, TYPING_MIME);
  if (Object.keys(data).sort().join(',') !== 'at,typing' || typeof data.typing !== 'boolean'
      || !Number.isSafeInteger(data.at)) throw new Error('a typing signal out of shape');
  if (Math.abs(now - data.at) > FRESH_MS) throw new Error('a typing signal from another time');
  return data.typing;
}

export function later(a, b) {
  if (!a) return b ?? null;
  if (!b) return a;
  return a >= b ? a : b;
}

/** Where the friend stands in a room: the newest delivered and read cursors heard. */
export class Marks {
  constructor() {
    this.delivered = null;
    this.read = null;
  }

  /** Fold in one receipt; true when something moved. */
  add({ delivered, read }) {
    const before = `${this.delivered}/${this.read}`;
    this.read = later(this.read, read);
    this.delivered = later(later(this.delivered, delivered), read);
    return before !== `${this.delivered}/${this.read}`;
  }

  /** An own message's tick from its cursor: 'read', 'delivered', or null (not yet). */
  of(cursor) {
    if (!cursor) return null;
    if (this.read && this.read >= cursor) return 'read';
    if (this.delivered && this.delivered >= cursor) return 'delivered';
    return null;
  }
}
