// The open conversation's list of messages, as DOM. Rows sort by server cursor (inserted
// in place, so an older page or a late own message lands where it belongs); rows without a
// cursor (pending sends, notices) come last, in arrival order. A line stands before the
// first message of each day; own messages carry ticks; a picture is shown only when its
// bytes are the type it claims; whatever failed a check is a warning line (role=alert),
// never a message. A message that holds no key for this device (sent before the device was
// added) and whose key no other device shared is no warning: each run of them is one quiet
// line that counts them. Messages and warnings are only ever text nodes (dom.js).

import { fromUtf8 } from './codec.js';
import { formatDateTime, formatDay, formatTime, h, linkify } from './dom.js';
import { advance } from './outbox.js';

const NEAR_BOTTOM_PX = 120;

const IMAGE_MAGIC = {
  'image/png': [[0, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]]],
  'image/jpeg': [[0, [0xff, 0xd8, 0xff]]],
  'image/gif': [[0, [0x47, 0x49, 0x46, 0x38]]], // GIF8(7|9)a
  'image/webp': [[0, [0x52, 0x49, 0x46, 0x46]], [8, [0x57, 0x45, 0x42, 0x50]]], // RIFF....WEBP
};

const ALERT_TITLES = {
  bad_signature: 'Signature check failed',
  unknown_key: 'Unknown sender key',
  undecryptable: 'Could not decrypt',
  not_for_device: 'Not for this device',
  mismatch: 'Misaddressed message',
  malformed: 'Malformed message',
  gap: 'Missing messages',
  replay: 'Replayed message',
  fork: 'Broken message chain',
  revoked_device: 'Revoked device',
  unapproved_device: 'Unapproved device',
  identity_changed: 'Identity key changed',
  bad_device_list: 'Device list refused',
  bad_bundle: 'Prekey bundle refused',
};

const TICKS = { pending: '…', failed: '!', sent: '✓', stored: '✓✓', delivered: '✓✓', read: '✓✓' };
const TICK_TITLES = {
  pending: 'sending…',
  failed: 'not sent',
  sent: 'sent: the server has it',
  stored: 'stored',
  delivered: 'delivered: a device of your friend decrypted it',
  read: 'read',
};

/** The image type the bytes really are, among PNG, JPEG, GIF and WebP; null otherwise. */
export function sniffImage(data) {
  for (const [mime, parts] of Object.entries(IMAGE_MAGIC)) {
    if (parts.every(([at, magic]) => data.length >= at + magic.length
        && magic.every((b, i) => data[at + i] === b))) return mime;
  }
  return null;
}

export class Timeline {
  constructor(list) {
    this.list = list;
    this.items = new Map(); // "<sender>/<id>" -> shown message
    this.rows = []; // [{key, el}] in display order
    this.localCount = 0;
    this.lastCursor = null; // the newest cursor seen (not from older pages)
    this.urls = [];
    this.startMarked = false;
  }

  /** Forget every row and picture; safe twice. */
  clear() {
    for (const url of this.urls) URL.revokeObjectURL(url);
    this.urls = [];
    this.list.replaceChildren();
  }

  item(sender, id) {
    return this.items.get(`${sender}/${id}`);
  }

  /** The shown message a device sent under `id` (for a warning about it). */
  find(device, id) {
    for (const item of this.items.values()) if (item.id === id && item.device === device) return item;
    return null;
  }

  /** A later cursor than any seen: where warnings without a cursor of their own go. */
  saw(cursor) {
    if (typeof cursor === 'string' && (!this.lastCursor || cursor > this.lastCursor)) this.lastCursor = cursor;
  }

  /** The newest cursor of a friend's message shown (null: none). */
  newestTheirs() {
    let newest = null;
    for (const item of this.items.values()) {
      if (!item.own && item.cursor && (!newest || item.cursor > newest)) newest = item.cursor;
    }
    return newest;
  }

  /** m: {id, sender, own, kind, device, meta, data, ts, cursor, state}. */
  addMessage(m) {
    const body = m.kind === 'image' ? this.imageNode(m) : h('p', { class: 'text' }, ...linkify(fromUtf8(m.data)));
    const time = h('time', {});
    const ticks = m.own ? h('span', { class: 'ticks' }) : null;
    const el = h('li', { class: `msg ${m.own ? 'own' : 'theirs'}`, dataset: { id: m.id, sender: m.sender } },
      h('div', { class: 'bubble' }, body),
      h('div', { class: 'meta' }, time, ticks));
    const item = { ...m, el, time, ticks };
    this.items.set(`${m.sender}/${m.id}`, item);
    el.duetItem = item;
    this.setTime(item);
    if (m.own) this.setState(item, m.state);
    this.insertRow(this.rowKey(m.cursor, 1), el);
    return item;
  }

  imageNode(m) {
    const mime = String(m.meta.mime ?? '');
    if (!(mime in IMAGE_MAGIC) || sniffImage(m.data) !== mime) {
      return h('p', { class: 'text unsupported', text: `[attachment not shown: ${mime || 'unknown type'}]` });
    }
    const url = URL.createObjectURL(new Blob([m.data], { type: mime }));
    this.urls.push(url);
    const name = typeof m.meta.name === 'string' ? m.meta.name : 'image';
    const img = h('img', { class: 'picture', src: url, alt: name });
    img.addEventListener('load', () => {
      const list = this.list;
      if (list.scrollHeight - list.scrollTop - list.clientHeight < NEAR_BOTTOM_PX + img.height) this.scrollToBottom();
    });
    return h('figure', {}, img, h('figcaption', { text: name }));
  }

  setTime(item) {
    if (!Number.isFinite(item.ts)) item.ts = Date.now();
    item.time.textContent = item.cursor || !item.own ? formatTime(item.ts) : 'sending…';
    item.time.setAttribute('datetime', new Date(item.ts).toISOString());
    item.time.title = formatDateTime(item.ts);
  }

  /** An own message's tick, as the outbox's state machine allows it to move. */
  setState(item, state, detail = '') {
    const next = advance(item.state, state);
    if (next !== state) return;
    item.state = state;
    item.el.dataset.state = state;
    if (item.ticks) {
      item.ticks.textContent = TICKS[state];
      item.ticks.title = detail ? `${TICK_TITLES[state]}: ${detail}` : TICK_TITLES[state];
      item.ticks.setAttribute('aria-label', item.ticks.title);
    }
  }

  /** A message shown live that the server did not confirm (`unsent`), or that came
   * again after it: dimmed and labelled "not sent" until then. */
  setUnsent(item, unsent) {
    item.el.classList.toggle('unsent', unsent);
    item.el.title = unsent ? 'not confirmed by the server: the sender\'s app sends it again' : '';
  }

  /** Give an own message its server cursor (and time) once, and move it into place. */
  place(item, cursor, ts) {
    if (item.cursor || !cursor) return;
    item.cursor = cursor;
    if (ts) item.ts = ts;
    this.setTime(item);
    this.removeRow(item.el);
    this.insertRow(this.rowKey(cursor, 1), item.el);
    this.renderDays();
  }

  /** A warning line about `frame` ({id, cursor} or null), before the message it is about. */
  addAlert(frame, alert) {
    const cursor = frame && typeof frame.cursor === 'string' ? frame.cursor : null;
    const el = h('li', { class: 'warning', role: 'alert', dataset: { kind: alert.kind, id: frame?.id ?? '' } },
      h('strong', { text: `⚠ ${ALERT_TITLES[alert.kind] ?? alert.kind}` }),
      h('span', { text: ` — ${alert.detail}` }));
    let key;
    if (cursor) key = this.rowKey(cursor, 0);
    else if (this.lastCursor) key = this.rowKey(this.lastCursor, 2);
    else key = this.rowKey(null, 0);
    this.insertRow(key, el);
  }

  /** A warning about the message `device` sent under `id`, before it if it is shown. */
  addAlertAbout(device, id, alert) {
    const item = id ? this.find(device, id) : null;
    this.addAlert(item ? { id: item.id, cursor: item.cursor } : null, alert);
  }

  /**
   * A message that holds no key for this device: a hidden row in its place, counted in the
   * line of its run (renderUnreadable).
   */
  addUnreadable(frame) {
    const cursor = typeof frame.cursor === 'string' ? frame.cursor : null;
    const el = h('li', { class: 'unreadable-msg', hidden: true, dataset: { id: frame.id ?? '' } });
    el.duetUnreadable = true;
    let key;
    if (cursor) key = this.rowKey(cursor, 1);
    else if (this.lastCursor) key = this.rowKey(this.lastCursor, 2);
    else key = this.rowKey(null, 0);
    this.insertRow(key, el);
  }

  /** One line before each run of unreadable messages (a shown message ends a run). */
  renderUnreadable() {
    for (const el of this.list.querySelectorAll('li.unreadable')) el.remove();
    let run = [];
    const flush = () => {
      if (!run.length) return;
      const n = run.length;
      const text = n === 1
        ? '1 earlier message was sent before this device was added and cannot be read here'
        : `${n} earlier messages were sent before this device was added and cannot be read here`;
      this.list.insertBefore(h('li', { class: 'unreadable', role: 'note', dataset: { count: String(n) }, text }), run[0]);
      run = [];
    };
    for (const { el } of this.rows) {
      if (el.duetUnreadable) run.push(el);
      else if (el.duetItem) flush();
    }
    flush();
  }

  /** The friend's receipts (Marks) move own messages' ticks on to delivered and read. */
  applyMarks(marks) {
    if (!marks) return;
    for (const item of this.items.values()) {
      const tick = item.own ? marks.of(item.cursor) : null;
      if (tick) this.setState(item, tick);
    }
  }

  markStart() {
    if (this.startMarked) return;
    this.startMarked = true;
    this.insertRow('', h('li', { class: 'start', text: 'Beginning of the conversation — end-to-end encrypted.' }));
    this.renderDays();
  }

  /** Rows sort by cursor; rows without one (pending, notices) come last, in arrival order. */
  rowKey(cursor, sub) {
    if (cursor) return `${cursor}:${sub}`;
    this.localCount += 1;
    return `~${String(this.localCount).padStart(12, '0')}`;
  }

  insertRow(key, el) {
    let lo = 0;
    let hi = this.rows.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.rows[mid].key <= key) lo = mid + 1;
      else hi = mid;
    }
    const next = this.rows[lo];
    this.rows.splice(lo, 0, { key, el });
    this.list.insertBefore(el, next ? next.el : null);
  }

  removeRow(el) {
    const i = this.rows.findIndex((r) => r.el === el);
    if (i >= 0) this.rows.splice(i, 1);
    el.remove();
  }

  /** A line with the date before the first message of each day. */
  renderDays() {
    for (const el of this.list.querySelectorAll('li.day')) el.remove();
    let day = null;
    for (const { el } of this.rows) {
      const item = el.duetItem;
      if (!item) continue;
      const date = new Date(item.ts).toDateString();
      if (date === day) continue;
      day = date;
      this.list.insertBefore(h('li', { class: 'day', role: 'separator', text: formatDay(item.ts) }), el);
    }
  }

  /** Where the list is scrolled, to keep it there (or at the bottom) after rows change. */
  position() {
    const { scrollHeight: height, scrollTop: top, clientHeight } = this.list;
    return { height, top, nearBottom: height - top - clientHeight < NEAR_BOTTOM_PX };
  }

  /** After an older page: the same rows stay in view. Else: follow the bottom if near it. */
  keep(position, older) {
    if (older) this.list.scrollTop = position.top + (this.list.scrollHeight - position.height);
    else if (position.nearBottom) this.scrollToBottom();
  }

  scrollToBottom() {
    this.list.scrollTop = this.list.scrollHeight;
  }
}
