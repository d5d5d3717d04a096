// The open conversation: its history (newest page first, older pages on scroll), the
// live frames of its room (routed here from the one device socket), sending, and the
// checks every received message passes before it is shown (verify.js, then the hash
// chain, then decryption). What fails any check is a warning, never a message. Messages
// are de-duplicated by (sender, id), laid out by cursor with a line for each new day.
// Own messages carry ticks: pending, sent (the broker confirmed), stored, delivered and
// read (the friend's receipts, kept by the inbox).

import { ChainBook } from './chain.js';
import { fromUtf8, utf8 } from './codec.js';
import { Directory } from './directory.js';
import { formatDateTime, formatDay, formatTime, h, linkify } from './dom.js';
import {
  envelopeHash, openEnvelope, safetyNumber, sealEnvelope, TEXT_MIME,
} from './envelope.js';
import { newId, recipients, roomId, sealSignal } from './outgoing.js';
import { typingContent } from './signals.js';
import * as store from './store.js';
import { verifyFrame } from './verify.js';

export const PAGE_SIZE = 25;
export const MAX_TEXT_BYTES = 64 * 1024;
export const MAX_IMAGE_BYTES = 5 * 1024 * 1024;
const NEAR_TOP_PX = 60;
const NEAR_BOTTOM_PX = 120;
const TYPING_EVERY_MS = 3000;
const HISTORY_KINDS = 'text,image,receipt';

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
  mismatch: 'Misaddressed message',
  malformed: 'Malformed message',
  gap: 'Missing messages',
  replay: 'Replayed message',
  fork: 'Broken message chain',
  key_changed: 'Keys changed',
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
const TICK_ORDER = { pending: 0, failed: 1, sent: 2, stored: 3, delivered: 4, read: 5 };

/** The image type the bytes really are, among PNG, JPEG, GIF and WebP; null otherwise. */
export function sniffImage(data) {
  for (const [mime, parts] of Object.entries(IMAGE_MAGIC)) {
    if (parts.every(([at, magic]) => data.length >= at + magic.length
        && magic.every((b, i) => data[at + i] === b))) return mime;
  }
  return null;
}

function withLock(name, fn) {
  return navigator.locks ? navigator.locks.request(name, fn) : fn();
}

export class Conversation {
  /**
   * me and peer: {id, name}; device: this browser's device keys; socket: the DeviceSocket;
   * inbox: the Inbox (receipts, the friend's marks); els: the view's elements (list,
   * banner, bannerText, safety, safetyNumber, notice); looking(): whether the user sees it.
   */
  constructor({ api, me, device, peer, dir, socket, inbox, els, looking = () => true }) {
    this.api = api;
    this.me = me;
    this.device = device;
    this.peer = peer;
    this.dir = dir;
    this.socket = socket;
    this.inbox = inbox;
    this.els = els;
    this.looking = looking;
    this.room = roomId(me.id, peer.id);
    this.chains = new ChainBook();
    this.items = new Map(); // "<sender>/<id>" -> shown message
    this.seen = new Set(); // "<sender>/<id>" of every frame handled (shown or not)
    this.rows = []; // [{key, el}] in display order
    this.localCount = 0;
    this.lastCursor = null;
    this.older = null;
    this.loadingOlder = false;
    this.work = Promise.resolve();
    this.sending = Promise.resolve();
    this.urls = [];
    this.heads = {};
    this.headsChecked = false;
    this.headsTimer = null;
    this.early = []; // live frames that came before the first page
    this.loaded = false;
    this.closed = false;
    this.typingSent = 0;
    this.onScroll = () => {
      if (this.els.list.scrollTop < NEAR_TOP_PX) this.loadOlder();
    };
  }

  // -- lifecycle -----------------------------------------------------------------------
  async open() {
    this.els.list.addEventListener('scroll', this.onScroll);
    try {
      await this.tofu(await this.dir.get(this.peer.id, this.peer.name, { refresh: true }));
    } catch (err) {
      this.notice(`Could not load ${this.peer.name}’s keys: ${err.message}`);
    }
    this.heads = (await store.get('heads', `${this.me.id}/${this.room}`)) ?? {};
    const page = await this.firstPage();
    if (!page) return;
    this.older = page.next;
    this.chains.atStart = page.next === null;
    await this.enqueue(() => this.ingest(page.messages, 'latest'));
    this.loaded = true;
    const early = this.early;
    this.early = [];
    for (const frame of early) this.onFrame(frame);
    await this.enqueue(() => this.restoreOutbox());
    await this.enqueue(() => this.checkHeads());
    this.scrollToBottom();
    this.applyMarks();
    await this.fillViewport();
  }

  /** The newest page of history, asked again with back-off while the server is unreachable. */
  async firstPage() {
    for (let delay = 500; !this.closed; delay = Math.min(delay * 2, 10_000)) {
      try {
        return await this.api.messages(this.peer.id, { before: 'latest', limit: PAGE_SIZE, kinds: HISTORY_KINDS });
      } catch (err) {
        if (err.status !== 0 && err.status < 500) throw err;
        await new Promise((resolve) => { setTimeout(resolve, delay * (0.5 + Math.random() / 2)); });
      }
    }
    return null;
  }

  /** Forget the view; safe twice. */
  close() {
    this.closed = true;
    this.els.list.removeEventListener('scroll', this.onScroll);
    clearTimeout(this.headsTimer);
    for (const url of this.urls) URL.revokeObjectURL(url);
    this.urls = [];
    this.els.list.replaceChildren();
  }

  /** Run one step of frame handling after the previous ones: chains see frames in order. */
  enqueue(step) {
    const run = this.work.then(() => (this.closed ? undefined : step()));
    this.work = run.catch((err) => console.error('duet:', err));
    return run;
  }

  notice(text) {
    this.els.notice.textContent = text;
    this.els.notice.hidden = !text;
  }

  // -- frames of this room (from the device socket) --------------------------------------
  onFrame(frame) {
    if (!this.loaded) {
      this.early.push(frame);
      return;
    }
    switch (frame.type) {
      case 'message':
        if (frame.kind !== 'receipt') this.enqueue(() => this.ingest([frame], 'live'));
        break;
      case 'ack':
        this.enqueue(() => this.onAck(frame));
        break;
      case 'stored':
        this.enqueue(() => this.onStored(frame));
        break;
      case 'error':
        this.enqueue(() => this.onError(frame));
        break;
      default:
        break;
    }
  }

  async onAck(frame) {
    this.socket.settle(frame.id);
    await store.remove('outbox', `${this.me.id}/${this.room}/${frame.id}`);
    const item = this.items.get(`${this.me.id}/${frame.id}`);
    if (!item) return;
    this.placeItem(item, frame.cursor, frame.ts);
    this.setItemState(item, 'sent');
    this.applyMarks();
  }

  async onStored(frame) {
    const item = this.items.get(`${this.me.id}/${frame.id}`);
    if (!item) return;
    if (this.socket.pending.has(frame.id)) {
      this.socket.settle(frame.id);
      await store.remove('outbox', `${this.me.id}/${this.room}/${frame.id}`);
    }
    this.placeItem(item, frame.cursor, null);
    this.setItemState(item, 'stored');
    this.applyMarks();
  }

  async onError(frame) {
    if (frame.code === 'publish_failed') {
      this.socket.resendLater(frame.id);
      return;
    }
    this.socket.settle(frame.id);
    await store.remove('outbox', `${this.me.id}/${this.room}/${frame.id}`);
    const item = this.items.get(`${this.me.id}/${frame.id}`);
    if (item) this.setItemState(item, 'failed', frame.detail);
  }

  /** The friend's receipts moved (the inbox keeps them): redraw the ticks. */
  applyMarks() {
    const marks = this.inbox.byPeer(this.peer.id)?.marks;
    if (!marks) return;
    for (const item of this.items.values()) {
      if (!item.own) continue;
      const tick = marks.of(item.cursor);
      if (tick) this.setItemState(item, tick);
    }
  }

  /** The user is looking at the conversation: everything from the friend shown is read. */
  markShown() {
    let newest = null;
    for (const item of this.items.values()) {
      if (!item.own && item.cursor && (!newest || item.cursor > newest)) newest = item.cursor;
    }
    if (newest) this.inbox.shown(this.room, newest);
  }

  // -- receiving -----------------------------------------------------------------------
  /**
   * Verify, chain-check, decrypt and show a batch of `message` frames, oldest first.
   * origin: 'latest' (newest history page), 'older' (a page before it) or 'live'.
   * Receipts among them go to the inbox, which keeps the friend's marks.
   */
  async ingest(frames, origin) {
    const list = this.els.list;
    const height = list.scrollHeight;
    const top = list.scrollTop;
    const nearBottom = height - top - list.clientHeight < NEAR_BOTTOM_PX;
    const checked = [];
    for (const frame of frames) {
      if (frame.kind === 'receipt') {
        this.inbox.enqueue(() => this.inbox.receipt(frame));
        continue;
      }
      if (origin !== 'older' && typeof frame.cursor === 'string'
          && (!this.lastCursor || frame.cursor > this.lastCursor)) {
        this.lastCursor = frame.cursor;
      }
      const key = `${frame.sender}/${frame.id}`;
      if (this.seen.has(key)) {
        // A re-delivery (sync after a reconnect, a resend): at most news that it is stored.
        const item = this.items.get(key);
        if (item && item.own && origin !== 'live') {
          this.placeItem(item, frame.cursor, frame.ts);
          this.setItemState(item, 'stored');
        }
        continue;
      }
      this.seen.add(key);
      checked.push(await this.check(frame, origin === 'live'));
    }
    let touched = new Set(checked.filter((c) => c.device).map((c) => c.device));
    if (origin === 'older' && this.chains.atStart) touched = new Set(this.chains.devices.keys());
    for (const gap of this.chains.gaps(touched)) {
      const inBatch = checked.find((c) => c.device === gap.device && c.frame.id === gap.id);
      if (inBatch) {
        inBatch.alerts.unshift({ kind: 'gap', detail: gap.detail });
      } else {
        const item = [...this.items.values()].find((i) => i.device === gap.device && i.id === gap.id);
        this.addAlert(item ? { id: item.id, cursor: item.cursor } : null, { kind: 'gap', detail: gap.detail });
      }
    }
    for (const c of checked) {
      for (const alert of c.alerts) this.addAlert(c.frame, alert);
      if (!c.show) continue;
      let content;
      try {
        content = await openEnvelope(c.frame.body, this.device);
      } catch (err) {
        this.addAlert(c.frame, { kind: 'undecryptable', detail: err.message });
        continue;
      }
      const own = c.frame.sender === this.me.id;
      this.addMessage({
        id: c.frame.id, sender: c.frame.sender, own, kind: c.frame.kind, device: c.device,
        meta: content.meta, data: content.data, ts: c.frame.ts, cursor: c.frame.cursor,
        state: own ? (origin === 'live' ? 'sent' : 'stored') : null,
      });
    }
    this.renderDays();
    this.applyMarks();
    if (origin === 'older') list.scrollTop = top + (list.scrollHeight - height);
    else if (nearBottom) this.scrollToBottom();
    if (origin !== 'older') this.saveHeadsSoon();
    if (this.isVisible()) this.markShown();
  }

  isVisible() {
    return this.looking();
  }

  /** Everything but decryption: {frame, device, alerts, show}. */
  async check(frame, live) {
    const out = { frame, device: null, alerts: [], show: false };
    const fetched = this.dir.users.get(this.peer.id)?.fetched;
    const { device, alert } = await verifyFrame(frame, {
      dir: this.dir, room: this.room, members: { [this.me.id]: this.me.name, [this.peer.id]: this.peer.name },
    });
    const entry = this.dir.users.get(this.peer.id);
    if (frame.sender === this.peer.id && entry && entry.fetched !== fetched) await this.tofu(entry, frame);
    if (alert) {
      out.alerts.push(alert);
      return out;
    }
    const env = frame.body;
    const verdict = this.chains.add(device.kid, env.seq, env.prev, await envelopeHash(env), frame.id, { live });
    out.device = device.kid;
    if (verdict.kind !== 'ok' && verdict.kind !== 'duplicate') {
      out.alerts.push({ kind: verdict.kind, detail: verdict.detail });
    }
    out.show = verdict.show;
    return out;
  }

  /** Trust the friend's keys on first use; afterwards a change is a warning until verified. */
  async tofu(entry, frame = null) {
    const pairs = Directory.pairs(entry);
    if (!pairs.length) return;
    const key = `${this.me.id}/${this.peer.id}`;
    const known = await store.get('peers', key);
    let changed = Boolean(known && known.changed);
    if (!known || !known.keys.length) {
      await store.put('peers', key, { keys: pairs, changed: false });
    } else if (JSON.stringify(known.keys) !== JSON.stringify(pairs)) {
      changed = true;
      await store.put('peers', key, { keys: pairs, changed: true });
      this.addAlert(frame, {
        kind: 'key_changed',
        detail: `${this.peer.name}’s keys changed. Compare safety numbers before you trust new messages.`,
      });
    }
    if (changed) this.showBanner();
  }

  showBanner() {
    this.els.bannerText.textContent = `${this.peer.name}’s keys changed since you last talked. `
      + 'Compare your safety number with them before you trust new messages.';
    this.els.banner.hidden = false;
  }

  async acceptKeys() {
    const key = `${this.me.id}/${this.peer.id}`;
    const known = await store.get('peers', key);
    if (known) await store.put('peers', key, { ...known, changed: false });
    this.els.banner.hidden = true;
  }

  async showSafetyNumber() {
    const [mine, theirs] = await Promise.all([
      this.dir.get(this.me.id, this.me.name, { refresh: true }),
      this.dir.get(this.peer.id, this.peer.name, { refresh: true }),
    ]);
    await this.tofu(theirs);
    const number = await safetyNumber(this.me.id, Directory.pairs(mine), this.peer.id, Directory.pairs(theirs));
    this.els.safetyNumber.textContent = number;
    this.els.safety.hidden = false;
    return number;
  }

  /** Once, after the first page and a first sync: has the history changed since? */
  checkHeads() {
    if (this.headsChecked) return;
    this.headsChecked = true;
    for (const alert of this.chains.checkHeads(this.heads)) {
      const item = alert.id ? [...this.items.values()].find((i) => i.id === alert.id && i.device === alert.device) : null;
      this.addAlert(item ? { id: item.id, cursor: item.cursor } : null, alert);
    }
    this.saveHeads();
  }

  saveHeadsSoon() {
    if (!this.headsChecked) return;
    clearTimeout(this.headsTimer);
    this.headsTimer = setTimeout(() => this.saveHeads(), 300);
  }

  /** Remember the newest link of each other device's chain, to notice a rewritten history. */
  async saveHeads() {
    let dirty = false;
    for (const [device, head] of Object.entries(this.chains.heads())) {
      if (device === this.device.kid) continue; // this device's own chain is in `chains`
      const old = this.heads[device];
      if (!old || head.seq > old.seq) {
        this.heads[device] = head;
        dirty = true;
      }
    }
    if (dirty) await store.put('heads', `${this.me.id}/${this.room}`, this.heads);
  }

  async loadOlder() {
    if (this.loadingOlder || !this.older || this.closed) return;
    this.loadingOlder = true;
    this.els.list.setAttribute('aria-busy', 'true');
    try {
      const page = await this.api.messages(this.peer.id, { before: this.older, limit: PAGE_SIZE, kinds: HISTORY_KINDS });
      this.older = page.next;
      if (page.next === null) this.chains.atStart = true;
      await this.enqueue(() => this.ingest(page.messages, 'older'));
      if (this.chains.atStart) this.markStart();
    } catch (err) {
      this.notice(`Could not load older messages: ${err.message}`);
    } finally {
      this.loadingOlder = false;
      this.els.list.removeAttribute('aria-busy');
    }
  }

  /** Load older pages until the list can scroll (or the history is all there). */
  async fillViewport() {
    const list = this.els.list;
    while (!this.closed && this.older && list.scrollHeight <= list.clientHeight + NEAR_TOP_PX) {
      await this.loadOlder();
    }
    if (this.chains.atStart) this.markStart();
  }

  markStart() {
    if (this.startMarked) return;
    this.startMarked = true;
    this.insertRow('', h('li', { class: 'start', text: 'Beginning of the conversation — end-to-end encrypted.' }));
    this.renderDays();
  }

  // -- sending -------------------------------------------------------------------------
  sendText(text) {
    const data = utf8(text);
    if (data.length > MAX_TEXT_BYTES) throw new Error(`a message holds at most ${MAX_TEXT_BYTES} bytes`);
    this.typing(false);
    return this.queueSend('text', { mime: TEXT_MIME }, data);
  }

  async sendImage(file) {
    if (file.size > MAX_IMAGE_BYTES) throw new Error('images are limited to 5 MiB');
    const data = new Uint8Array(await file.arrayBuffer());
    const mime = sniffImage(data);
    if (!mime) throw new Error('only PNG, JPEG, GIF and WebP images can be sent');
    const meta = { mime };
    if (file.name) meta.name = file.name.slice(0, 128);
    return this.queueSend('image', meta, data);
  }

  /** One send at a time: sequence numbers are handed out in order. */
  queueSend(kind, meta, data) {
    const run = this.sending.then(() => this.send(kind, meta, data));
    this.sending = run.catch(() => {});
    return run;
  }

  async send(kind, meta, data) {
    const to = await recipients(this.dir, this.me, this.peer);
    await this.tofu(this.dir.users.get(this.peer.id));
    const id = newId();
    const chainKey = `${this.device.kid}/${this.room}`;
    const { frame, hash } = await withLock(`duet-chain/${chainKey}`, async () => {
      const link = (await store.get('chains', chainKey)) ?? { seq: 0, hash: '' };
      const body = await sealEnvelope({
        room: this.room, sender: this.me.id, device: this.device, seq: link.seq + 1,
        prev: link.hash, kind, meta, data, recipients: to,
      });
      const sealed = { frame: { type: 'send', id, peer: this.peer.id, kind, body }, hash: await envelopeHash(body) };
      // The chain advances and the frame enters the outbox together, before it is sent: a
      // sequence number is never used twice and a reload resends what was not acked.
      await store.write([
        ['chains', chainKey, { seq: body.seq, hash: sealed.hash }],
        ['outbox', `${this.me.id}/${this.room}/${id}`, { frame: sealed.frame, created: Date.now() }],
      ]);
      return sealed;
    });
    await this.enqueue(() => {
      this.seen.add(`${this.me.id}/${id}`);
      this.chains.add(this.device.kid, frame.body.seq, frame.body.prev, hash, id, { live: true });
      this.addMessage({
        id, sender: this.me.id, own: true, kind, device: this.device.kid, meta, data,
        ts: Date.now(), cursor: null, state: 'pending',
      });
      this.renderDays();
      this.scrollToBottom();
      this.socket.send(frame, this.room);
    });
    return id;
  }

  /** Tell the friend this user is typing (at most every few seconds) or stopped; the
   * signals leave in the order they were asked for (sealing takes a moment). */
  typing(on) {
    const now = Date.now();
    if (on ? now - this.typingSent < TYPING_EVERY_MS : !this.typingSent) return this.typingWork;
    this.typingSent = on ? now : 0;
    this.typingWork = (this.typingWork ?? Promise.resolve()).then(async () => {
      try {
        const body = await sealSignal({
          dir: this.dir, me: this.me, device: this.device, peer: this.peer, kind: 'typing',
          content: typingContent(on),
        });
        this.socket.post({ type: 'typing', peer: this.peer.id, body });
      } catch {
        // best effort: a typing signal that cannot be sealed now is simply not sent
      }
    });
    return this.typingWork;
  }

  /** Show what a previous page left unacknowledged, and send it again (same ids). */
  async restoreOutbox() {
    const entries = await store.withPrefix('outbox', `${this.me.id}/${this.room}/`);
    entries.sort((a, b) => a.frame.body.seq - b.frame.body.seq);
    for (const { frame } of entries) {
      const key = `${this.me.id}/${frame.id}`;
      if (this.seen.has(key)) {
        this.socket.settle(frame.id);
        await store.remove('outbox', `${this.me.id}/${this.room}/${frame.id}`);
        continue;
      }
      let content;
      try {
        content = await openEnvelope(frame.body, this.device);
      } catch {
        await store.remove('outbox', `${this.me.id}/${this.room}/${frame.id}`);
        continue;
      }
      this.seen.add(key);
      this.chains.add(this.device.kid, frame.body.seq, frame.body.prev, await envelopeHash(frame.body),
        frame.id, { live: true });
      this.addMessage({
        id: frame.id, sender: this.me.id, own: true, kind: frame.kind, device: this.device.kid,
        meta: content.meta, data: content.data, ts: Date.now(), cursor: null, state: 'pending',
      });
      this.socket.send({ ...frame, peer: this.peer.id }, this.room);
    }
    this.renderDays();
  }

  // -- rendering -----------------------------------------------------------------------
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
    if (m.own) this.setItemState(item, m.state);
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
      const list = this.els.list;
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

  /** Ticks only move forward (a failed send can be retried: it goes back to pending). */
  setItemState(item, state, detail = '') {
    if (item.state && TICK_ORDER[state] < TICK_ORDER[item.state] && state !== 'failed') return;
    item.state = state;
    item.el.dataset.state = state;
    if (item.ticks) {
      item.ticks.textContent = TICKS[state];
      item.ticks.title = detail ? `${TICK_TITLES[state]}: ${detail}` : TICK_TITLES[state];
      item.ticks.setAttribute('aria-label', item.ticks.title);
    }
  }

  /** Give an own message its server cursor (and time) once, and move it into place. */
  placeItem(item, cursor, ts) {
    if (item.cursor || !cursor) return;
    item.cursor = cursor;
    if (ts) item.ts = ts;
    this.setTime(item);
    this.removeRow(item.el);
    this.insertRow(this.rowKey(cursor, 1), item.el);
    this.renderDays();
  }

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
    this.els.list.insertBefore(el, next ? next.el : null);
  }

  removeRow(el) {
    const i = this.rows.findIndex((r) => r.el === el);
    if (i >= 0) this.rows.splice(i, 1);
    el.remove();
  }

  /** A line with the date before the first message of each day. */
  renderDays() {
    for (const el of this.els.list.querySelectorAll('li.day')) el.remove();
    let day = null;
    for (const { el } of this.rows) {
      const item = el.duetItem;
      if (!item) continue;
      const date = new Date(item.ts).toDateString();
      if (date === day) continue;
      day = date;
      this.els.list.insertBefore(h('li', { class: 'day', role: 'separator', text: formatDay(item.ts) }), el);
    }
  }

  scrollToBottom() {
    this.els.list.scrollTop = this.els.list.scrollHeight;
  }
}
