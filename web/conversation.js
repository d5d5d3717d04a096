// One conversation view: history (newest page first, older pages on scroll), the live
// socket, sending, and the checks every received message passes before it is shown:
// envelope addressed to this room by its sender, sending device in the sender's key
// directory (live or revoked), signature, hash chain, then decryption. What fails any check
// is shown as a warning, never as a message. Messages are de-duplicated by (sender, id).

import { ChainBook } from './chain.js';
import { b64u, fromUtf8, utf8 } from './codec.js';
import { randomBytes } from './crypto.js';
import { Directory } from './directory.js';
import { formatDateTime, formatTime, h } from './dom.js';
import {
  ALG, envelopeHash, openEnvelope, safetyNumber, sealEnvelope, TEXT_MIME, verifySignature,
} from './envelope.js';
import { RoomSocket } from './socket.js';
import * as store from './store.js';

export const PAGE_SIZE = 25;
export const MAX_TEXT_BYTES = 64 * 1024;
export const MAX_IMAGE_BYTES = 5 * 1024 * 1024;
const NEAR_TOP_PX = 60;
const NEAR_BOTTOM_PX = 120;

const IMAGE_MAGIC = {
  'image/png': [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a],
  'image/jpeg': [0xff, 0xd8, 0xff],
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

const STATE_LABELS = {
  connecting: 'connecting…',
  connected: 'connected',
  lost: 'connection lost — reconnecting…',
  error: 'error',
};

const TICKS = { pending: '…', sent: '✓', stored: '✓✓', failed: '!' };
const TICK_TITLES = {
  pending: 'sending…',
  sent: 'sent: the server has it',
  stored: 'stored',
  failed: 'not sent',
};

export function roomId(a, b) {
  return a < b ? `${a}.${b}` : `${b}.${a}`;
}

/** The image type the bytes really are, among PNG and JPEG; null otherwise. */
export function sniffImage(data) {
  for (const [mime, magic] of Object.entries(IMAGE_MAGIC)) {
    if (data.length >= magic.length && magic.every((b, i) => data[i] === b)) return mime;
  }
  return null;
}

function withLock(name, fn) {
  return navigator.locks ? navigator.locks.request(name, fn) : fn();
}

export class Conversation {
  /**
   * me and peer: {id, name}; device: this browser's device keys; els: the view's elements
   * (list, state, banner, bannerText, safety, safetyNumber, notice); onFatal(detail): the
   * server refused the socket for good.
   */
  constructor({ api, me, device, peer, els, onFatal = () => {} }) {
    this.api = api;
    this.me = me;
    this.device = device;
    this.peer = peer;
    this.els = els;
    this.onFatal = onFatal;
    this.room = roomId(me.id, peer.id);
    this.dir = new Directory(api);
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
    this.socket = null;
    this.closed = false;
    this.onScroll = () => {
      if (this.els.list.scrollTop < NEAR_TOP_PX) this.loadOlder();
    };
  }

  // -- lifecycle -----------------------------------------------------------------------
  async open() {
    this.setState('connecting');
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
    this.socket = new RoomSocket(this.peer.id, this.api.token, {
      onFrame: (frame) => this.onFrame(frame),
      onState: (state, detail) => this.setState(state, detail),
      cursor: () => this.lastCursor,
    });
    await this.enqueue(() => this.ingest(page.messages, 'latest'));
    await this.enqueue(() => this.restoreOutbox());
    this.scrollToBottom();
    if (this.closed) return;
    this.socket.start();
    await this.fillViewport();
  }

  /** The newest page of history, asked again with back-off while the server is unreachable. */
  async firstPage() {
    for (let delay = 500; !this.closed; delay = Math.min(delay * 2, 10_000)) {
      try {
        return await this.api.messages(this.peer.id, { before: 'latest', limit: PAGE_SIZE });
      } catch (err) {
        if (err.status !== 0 && err.status < 500) throw err;
        this.setState('lost', err.message);
        await new Promise((resolve) => { setTimeout(resolve, delay * (0.5 + Math.random() / 2)); });
      }
    }
    return null;
  }

  /** Stop the socket and forget the view; safe twice. */
  close() {
    this.closed = true;
    if (this.socket) this.socket.close();
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

  setState(state, detail = '') {
    if (this.closed) return;
    const el = this.els.state;
    el.dataset.state = state;
    el.textContent = state === 'error' ? `error: ${detail}` : STATE_LABELS[state];
    el.title = detail || STATE_LABELS[state] || state;
    if (state === 'error') this.onFatal(detail);
  }

  notice(text) {
    this.els.notice.textContent = text;
    this.els.notice.hidden = !text;
  }

  // -- frames from the socket ----------------------------------------------------------
  onFrame(frame) {
    switch (frame.type) {
      case 'message':
        this.enqueue(() => this.ingest([frame], 'live'));
        break;
      case 'ack':
        this.enqueue(() => this.onAck(frame));
        break;
      case 'stored':
        this.enqueue(() => this.onStored(frame));
        break;
      case 'synced':
        this.enqueue(() => this.onSynced(frame));
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
    if (item.state === 'pending' || item.state === 'failed') this.setItemState(item, 'sent');
    this.placeItem(item, frame.cursor, frame.ts);
  }

  async onStored(frame) {
    const item = this.items.get(`${this.me.id}/${frame.id}`);
    if (!item) return;
    if (this.socket.pending.has(frame.id)) {
      this.socket.settle(frame.id);
      await store.remove('outbox', `${this.me.id}/${this.room}/${frame.id}`);
    }
    this.setItemState(item, 'stored');
    this.placeItem(item, frame.cursor, null);
  }

  async onSynced(frame) {
    if (frame.cursor && (!this.lastCursor || frame.cursor > this.lastCursor)) this.lastCursor = frame.cursor;
    if (this.headsChecked) return;
    this.headsChecked = true;
    for (const alert of this.chains.checkHeads(this.heads)) {
      const item = alert.id ? [...this.items.values()].find((i) => i.id === alert.id && i.device === alert.device) : null;
      this.addAlert(item ? { id: item.id, cursor: item.cursor } : null, alert);
    }
    this.saveHeads();
  }

  async onError(frame) {
    if (frame.id && this.socket.pending.has(frame.id)) {
      if (frame.code === 'publish_failed') {
        this.socket.resendLater(frame.id);
        return;
      }
      this.socket.settle(frame.id);
      await store.remove('outbox', `${this.me.id}/${this.room}/${frame.id}`);
      const item = this.items.get(`${this.me.id}/${frame.id}`);
      if (item) this.setItemState(item, 'failed', frame.detail);
      return;
    }
    if (frame.code === 'sync_failed') setTimeout(() => this.socket.resync(), 1000);
    else console.warn('duet: server error', frame.code, frame.detail);
  }

  // -- receiving -----------------------------------------------------------------------
  /**
   * Verify, chain-check, decrypt and show a batch of `message` frames, oldest first.
   * origin: 'latest' (newest history page), 'older' (a page before it) or 'live'.
   */
  async ingest(frames, origin) {
    const list = this.els.list;
    const height = list.scrollHeight;
    const top = list.scrollTop;
    const nearBottom = height - top - list.clientHeight < NEAR_BOTTOM_PX;
    const checked = [];
    for (const frame of frames) {
      if (origin !== 'older' && typeof frame.cursor === 'string'
          && (!this.lastCursor || frame.cursor > this.lastCursor)) {
        this.lastCursor = frame.cursor;
      }
      const key = `${frame.sender}/${frame.id}`;
      if (this.seen.has(key)) {
        // A re-delivery (sync after a reconnect, a resend): at most news that it is stored.
        const item = this.items.get(key);
        if (item && item.own && origin !== 'live') {
          this.setItemState(item, 'stored');
          this.placeItem(item, frame.cursor, frame.ts);
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
    if (origin === 'older') list.scrollTop = top + (list.scrollHeight - height);
    else if (nearBottom) this.scrollToBottom();
    if (origin !== 'older') this.saveHeadsSoon();
  }

  /** Everything but decryption: {frame, device, alerts, show}. */
  async check(frame, live) {
    const env = frame.body;
    const out = { frame, device: null, alerts: [], show: false };
    const fail = (kind, detail) => {
      out.alerts.push({ kind, detail });
      return out;
    };
    if (!env || typeof env !== 'object' || env.v !== 1 || env.alg !== ALG) {
      return fail('malformed', 'this is not an envelope v1');
    }
    const sender = frame.sender;
    if (sender !== this.me.id && sender !== this.peer.id) {
      return fail('mismatch', 'it comes from someone outside this conversation');
    }
    if (env.sender !== sender || env.room !== this.room || frame.room !== this.room
        || env.kind !== frame.kind) {
      return fail('mismatch', 'the envelope names another sender, room or kind');
    }
    const name = sender === this.me.id ? this.me.name : this.peer.name;
    let device;
    try {
      let entry = await this.dir.get(sender, name);
      device = entry.devices.get(env.from);
      if (!device) {
        entry = await this.dir.get(sender, name, { refresh: true });
        device = entry.devices.get(env.from);
        if (sender === this.peer.id) await this.tofu(entry, frame);
      }
    } catch (err) {
      return fail('unknown_key', `${name}’s keys could not be fetched: ${err.message}`);
    }
    if (!device) return fail('unknown_key', `signed by a key ${name} never published`);
    let valid = false;
    try {
      valid = await verifySignature(env, await this.dir.sigKey(device));
    } catch {
      valid = false;
    }
    if (!valid) return fail('bad_signature', `the signature does not match ${name}’s key`);
    if (!Number.isSafeInteger(env.seq) || env.seq < 1 || typeof env.prev !== 'string') {
      return fail('malformed', 'the chain fields are invalid');
    }
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
      const page = await this.api.messages(this.peer.id, { before: this.older, limit: PAGE_SIZE });
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
  }

  // -- sending -------------------------------------------------------------------------
  sendText(text) {
    const data = utf8(text);
    if (data.length > MAX_TEXT_BYTES) throw new Error(`a message holds at most ${MAX_TEXT_BYTES} bytes`);
    return this.queueSend('text', { mime: TEXT_MIME }, data);
  }

  async sendImage(file) {
    if (file.size > MAX_IMAGE_BYTES) throw new Error('images are limited to 5 MiB');
    const data = new Uint8Array(await file.arrayBuffer());
    const mime = sniffImage(data);
    if (!mime) throw new Error('only PNG and JPEG images can be sent');
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
    if (!this.socket) throw new Error('the conversation is still loading');
    // Every live device of both users, asked afresh (the last known set when offline).
    const [theirs, mine] = await Promise.all([
      this.dir.get(this.peer.id, this.peer.name, { refresh: true, offline: true }),
      this.dir.get(this.me.id, this.me.name, { refresh: true, offline: true }),
    ]);
    await this.tofu(theirs);
    const peerDevices = Directory.live(theirs);
    if (!peerDevices.length) throw new Error(`${this.peer.name} has not set up a device yet`);
    const recipients = await Promise.all([...peerDevices, ...Directory.live(mine)].map(
      async (d) => ({ kid: d.kid, key: await this.dir.encKey(d) })));
    const id = b64u(randomBytes(16));
    const chainKey = `${this.device.kid}/${this.room}`;
    const { frame, hash } = await withLock(`duet-chain/${chainKey}`, async () => {
      const link = (await store.get('chains', chainKey)) ?? { seq: 0, hash: '' };
      const body = await sealEnvelope({
        room: this.room, sender: this.me.id, device: this.device, seq: link.seq + 1,
        prev: link.hash, kind, meta, data, recipients,
      });
      const sealed = { frame: { type: 'send', id, kind, body }, hash: await envelopeHash(body) };
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
      this.scrollToBottom();
      this.socket.send(frame);
    });
    return id;
  }

  /** Show what a previous page left unacknowledged, and send it again (same ids). */
  async restoreOutbox() {
    const entries = await store.withPrefix('outbox', `${this.me.id}/${this.room}/`);
    entries.sort((a, b) => a.frame.body.seq - b.frame.body.seq);
    for (const { frame } of entries) {
      const key = `${this.me.id}/${frame.id}`;
      if (this.seen.has(key)) {
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
      this.socket.send(frame);
    }
  }

  // -- rendering -----------------------------------------------------------------------
  addMessage(m) {
    const body = m.kind === 'image' ? this.imageNode(m) : h('p', { class: 'text', text: fromUtf8(m.data) });
    const time = h('time', {});
    const ticks = m.own ? h('span', { class: 'ticks' }) : null;
    const el = h('li', { class: `msg ${m.own ? 'own' : 'theirs'}`, dataset: { id: m.id, sender: m.sender } },
      h('div', { class: 'bubble' }, body),
      h('div', { class: 'meta' }, time, ticks));
    const item = { ...m, el, time, ticks };
    this.items.set(`${m.sender}/${m.id}`, item);
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

  setItemState(item, state, detail = '') {
    const order = { pending: 0, failed: 1, sent: 2, stored: 3 };
    if (item.state && order[state] < order[item.state] && state !== 'failed') return;
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

  scrollToBottom() {
    this.els.list.scrollTop = this.els.list.scrollHeight;
  }
}
