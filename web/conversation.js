// The open conversation: the glue between its history (newest page first, older pages on
// scroll), the live frames of its room (routed here from the one device socket), sending
// and typing. What each step decides lives in its own module:
//   verify.js    every verdict on what arrives: envelope, hash chain, device revoked
//   outbox.js    sealing what leaves, pending sends, what the server's replies mean
//   timeline.js  the list on screen: order, day lines, ticks, warnings
//   trust.js     what the signed device lists say: identity changes (sending blocked until
//                accepted), unapproved devices, the safety number
//   history.js   stored pages, and the chain heads remembered between visits
//   keyring.js   envelope v3: the sessions with each device, and what this browser kept
//                of what it read and sent (a forward-secret message opens once: it is
//                read from there again, and merged in where the server no longer holds it)
// What fails any check is a warning, never a message; what holds no key for this device
// shows as any other message if another device of the user shared its key (sharing.js),
// else as neither: one line counts each run of them (timeline.js). Messages are
// de-duplicated by (sender, id). Own messages tick through pending, sent, stored, then
// delivered and read (the friend's receipts, kept by the inbox).

import { utf8 } from './codec.js';
import { TEXT_MIME } from './envelope.js';
import { History } from './history.js';
import { recipients, reply, roomId, TypingSignal } from './outbox.js';
import { sniffImage, Timeline } from './timeline.js';
import { KeyTrust } from './trust.js';
import { ChainBook, openVerified, verifyFrame } from './verify.js';

export const MAX_TEXT_BYTES = 64 * 1024;
export const MAX_IMAGE_BYTES = 5 * 1024 * 1024;
const NEAR_TOP_PX = 60;
const MESSAGE_KINDS = new Set(['text', 'image']);

function byCursor(a, b) {
  if (a.cursor === b.cursor) return 0;
  return a.cursor < b.cursor ? -1 : 1;
}

export class Conversation {
  /**
   * me and peer: {id, name}; device: this browser's device keys; socket: the DeviceSocket;
   * outbox: the Outbox; inbox: the Inbox (receipts, the friend's marks); els: the view's
   * elements (list, banner, bannerText, safety, safetyNumber, safetyNew, safetyVerified,
   * safetyMark, notice, scheme); looking(): whether the user sees it; shared(envelope): a
   * content key shared with this browser (sharing.js), for messages that hold none for it;
   * keyring: this browser's sessions and local history (keyring.js; without it, v2).
   */
  constructor({ api, me, device, peer, dir, socket, outbox, inbox, els, looking = () => true, shared = null, keyring = null }) {
    Object.assign(this, { api, me, device, peer, dir, socket, outbox, inbox, els, looking, shared, keyring });
    this.reader = keyring ?? device;
    this.merged = false; // the kept messages the server no longer holds are in
    this.room = roomId(me.id, peer.id);
    this.members = { [me.id]: me.name, [peer.id]: peer.name };
    this.timeline = new Timeline(els.list);
    this.trust = new KeyTrust({ me, peer, dir, els, onAlert: (frame, alert) => this.timeline.addAlert(frame, alert) });
    this.chains = new ChainBook();
    this.history = new History({ api, me, peer, room: this.room, chains: this.chains });
    this.seen = new Set(); // "<sender>/<id>" of every frame handled (shown or not)
    this.unsent = new Set(); // "<sender>/<id>" shown, then said `unsent`, not yet come again
    this.work = Promise.resolve();
    this.sending = Promise.resolve();
    this.early = []; // live frames that came before the first page
    this.loaded = false;
    this.closed = false;
    this.typingSignal = new TypingSignal({ dir, me, device, peer, post: (frame) => socket.post(frame) });
    this.onScroll = () => {
      if (this.els.list.scrollTop < NEAR_TOP_PX) this.loadOlder();
    };
  }

  // -- lifecycle -----------------------------------------------------------------------
  async open() {
    this.els.list.addEventListener('scroll', this.onScroll);
    try {
      await Promise.all([
        this.dir.get(this.peer.id, this.peer.name, { refresh: true }),
        this.dir.get(this.me.id, this.me.name, { refresh: true }),
      ]);
    } catch (err) {
      this.notice(`Could not load ${this.peer.name}’s keys: ${err.message}`);
    }
    this.trust.check();
    this.showScheme();
    const page = await this.history.first();
    if (!page) return;
    await this.enqueue(() => this.ingest(page.messages, 'latest'));
    this.loaded = true;
    const early = this.early;
    this.early = [];
    for (const frame of early) this.onFrame(frame);
    await this.enqueue(() => this.restoreOutbox());
    await this.enqueue(() => this.checkHeads());
    this.timeline.scrollToBottom();
    this.applyMarks();
    await this.fillViewport();
  }

  /** Forget the view; safe twice. */
  close() {
    this.closed = true;
    this.typingSignal.close();
    this.els.list.removeEventListener('scroll', this.onScroll);
    this.history.close();
    this.timeline.clear();
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

  addAlert(frame, alert) {
    // A receipt sent before this device was added: not for it, and nothing to warn about.
    if (alert.kind === 'not_for_device') return;
    this.timeline.addAlert(frame, alert);
  }

  // -- frames of this room (from the device socket) --------------------------------------
  onFrame(frame) {
    if (!this.loaded) {
      this.early.push(frame);
      return;
    }
    if (frame.type === 'message') {
      if (frame.kind !== 'receipt') this.enqueue(() => this.ingest([frame], 'live'));
    } else if (['ack', 'stored', 'error'].includes(frame.type)) {
      this.enqueue(() => this.onReply(frame));
    } else if (frame.type === 'unsent') {
      this.enqueue(() => this.onUnsent(frame));
    }
  }

  /** Messages shown live that the broker did not confirm: shown as not sent until they
   * come again (their sender resends them under the same id). */
  onUnsent(frame) {
    for (const id of frame.ids) {
      const key = `${frame.sender}/${id}`;
      const item = this.timeline.items.get(key);
      if (!item) continue;
      this.unsent.add(key);
      this.timeline.setUnsent(item, true);
    }
  }

  /** The server's word on one of this browser's sends: settle it, move its tick. */
  async onReply(frame) {
    const step = reply(frame);
    if (step.resend) {
      this.outbox.resendLater(frame.id);
      return;
    }
    await this.outbox.settle(this.room, frame.id);
    const item = this.timeline.item(this.me.id, frame.id);
    if (!item) return;
    if (this.unsent.delete(`${this.me.id}/${frame.id}`)) this.timeline.setUnsent(item, false);
    this.timeline.place(item, step.cursor, step.ts);
    this.timeline.setState(item, step.state, step.detail);
    this.applyMarks();
  }

  /** The friend's receipts moved (the inbox keeps them): redraw the ticks. */
  applyMarks() {
    this.timeline.applyMarks(this.inbox.byPeer(this.peer.id)?.marks);
  }

  /** The user is looking at the conversation: everything from the friend shown is read. */
  markShown() {
    const newest = this.timeline.newestTheirs();
    if (newest) this.inbox.shown(this.room, newest);
  }

  // -- receiving -----------------------------------------------------------------------
  /**
   * Verify, chain-check, decrypt and show a batch of `message` frames, oldest first.
   * origin: 'latest' (newest history page), 'older' (a page before it) or 'live'.
   * Receipts among them go to the inbox, which keeps the friend's marks.
   */
  async ingest(frames, origin) {
    const position = this.timeline.position();
    const checked = [];
    if (origin !== 'live' && this.chains.atStart && !this.merged) {
      this.merged = true;
      frames = await this.withKept(frames);
    }
    for (const frame of frames) {
      if (frame.kind === 'receipt') {
        this.inbox.enqueue(() => this.inbox.receipt(frame));
        continue;
      }
      if (origin !== 'older') this.timeline.saw(frame.cursor);
      const key = `${frame.sender}/${frame.id}`;
      if (this.seen.has(key)) {
        // A re-delivery (sync after a reconnect, a resend): at most news that it is stored.
        const item = this.timeline.items.get(key);
        if (item && this.unsent.delete(key)) this.timeline.setUnsent(item, false);
        if (item && item.own && origin !== 'live') {
          this.timeline.place(item, frame.cursor, frame.ts);
          this.timeline.setState(item, 'stored');
        }
        continue;
      }
      this.seen.add(key);
      checked.push(await this.check(frame, origin === 'live'));
    }
    this.reportGaps(checked, origin);
    // Everything is opened first (a ratchet step, or a look in the kept history, takes a
    // moment each), then the batch goes on screen at once, with its day lines.
    for (const c of checked) if (c.show) c.opened = await openVerified(c.frame, this.reader, this.shared);
    for (const c of checked) {
      for (const alert of c.alerts) this.timeline.addAlert(c.frame, alert);
      if (!c.show) continue;
      const { content, alert } = c.opened;
      if (alert && alert.kind === 'not_for_device') {
        this.timeline.addUnreadable(c.frame);
        continue;
      }
      if (alert) {
        this.timeline.addAlert(c.frame, alert);
        continue;
      }
      const own = c.frame.sender === this.me.id;
      this.timeline.addMessage({
        id: c.frame.id, sender: c.frame.sender, own, kind: c.frame.kind, device: c.device,
        meta: content.meta, data: content.data, ts: c.frame.ts, cursor: c.frame.cursor,
        state: own ? (origin === 'live' ? 'sent' : 'stored') : null,
      });
    }
    this.timeline.renderDays();
    this.timeline.renderUnreadable();
    this.applyMarks();
    this.timeline.keep(position, origin === 'older');
    if (origin !== 'older') this.history.saveHeadsSoon(this.device.kid);
    if (this.looking()) this.markShown();
    if (checked.length) this.showScheme();
  }

  /**
   * The oldest page is in, so every message the server holds has been seen: the messages
   * this browser kept that the server no longer holds (past its retention) join `frames`,
   * in cursor order (client/sdk.py history()).
   */
  async withKept(frames) {
    if (!this.keyring) return frames;
    let kept;
    try {
      kept = await this.keyring.history.room(this.room);
    } catch {
      return frames;
    }
    const batch = new Set(frames.map((f) => `${f.sender}/${f.id}`));
    const extra = kept.map((e) => e.frame).filter((f) => MESSAGE_KINDS.has(f.kind)
      && typeof f.cursor === 'string' && !this.seen.has(`${f.sender}/${f.id}`) && !batch.has(`${f.sender}/${f.id}`));
    return extra.length ? [...frames, ...extra].sort(byCursor) : frames;
  }

  /**
   * The header's label: "forward secret" once every device this browser sends to holds a
   * session with it, else how many do not (they get the RSA entry: docs/sessions.md).
   */
  async showScheme() {
    const el = this.els.scheme;
    if (!el || !this.keyring) return;
    let text = '';
    let state = '';
    try {
      const { devices, without } = await this.keyring.scheme(this.peer);
      if (devices) {
        state = without ? 'partial' : 'forward-secret';
        text = without
          ? `not forward secret: ${without} device${without === 1 ? '' : 's'} without a session`
          : 'forward secret';
      }
    } catch {
      // the lists cannot be had now: no claim either way
    }
    if (this.closed) return;
    el.textContent = text;
    el.dataset.scheme = state;
    el.title = state === 'forward-secret'
      ? 'Each message’s key travels over a session with each device: a key stolen later opens nothing sent before.'
      : text ? 'Devices without a session get the message’s key wrapped to their long-lived key.' : '';
  }

  /** Everything but decryption: {frame, device, alerts, show}. */
  async check(frame, live) {
    const out = { frame, device: null, alerts: [], show: false };
    const fetched = () => [this.peer.id, this.me.id].map((id) => this.dir.users.get(id)?.fetched).join();
    const before = fetched();
    const context = { room: this.room, members: this.members };
    const { device, alert } = await verifyFrame(frame, { ...context, key: await this.dir.keyFor(frame, context) });
    if (fetched() !== before) this.trust.check(frame); // the frame brought news of the lists
    if (alert) {
      out.alerts.push(alert);
      return out;
    }
    const link = await this.chains.addEnvelope(device.kid, frame.body, frame.id, { live });
    out.device = device.kid;
    if (link.alert) out.alerts.push(link.alert);
    out.show = link.show;
    return out;
  }

  /** Holes in the chains this batch touched: a warning before the message after each. */
  reportGaps(checked, origin) {
    let touched = new Set(checked.filter((c) => c.device).map((c) => c.device));
    if (origin === 'older' && this.chains.atStart) touched = new Set(this.chains.devices.keys());
    for (const gap of this.chains.gaps(touched)) {
      const alert = { kind: 'gap', detail: gap.detail };
      const inBatch = checked.find((c) => c.device === gap.device && c.frame.id === gap.id);
      if (inBatch) inBatch.alerts.unshift(alert);
      else this.timeline.addAlertAbout(gap.device, gap.id, alert);
    }
  }

  /** The friend's new identity key is accepted (the banner's Accept): sends go again. */
  acceptIdentity() {
    return this.trust.accept();
  }

  markVerified() {
    return this.trust.markVerified();
  }

  showSafetyNumber() {
    return this.trust.showSafetyNumber();
  }

  /** Once, after the first page and a first sync: has the history changed since? */
  checkHeads() {
    for (const alert of this.history.checkHeads(this.device.kid)) this.timeline.addAlertAbout(alert.device, alert.id, alert);
  }

  /** The page before those shown; false when none was due (all loaded, or one loading). */
  async loadOlder() {
    if (!this.history.more || this.history.loading) return false;
    this.els.list.setAttribute('aria-busy', 'true');
    try {
      await this.history.older((page) => this.enqueue(() => this.ingest(page.messages, 'older')));
      if (this.chains.atStart) this.timeline.markStart();
      return true;
    } catch (err) {
      this.notice(`Could not load older messages: ${err.message}`);
      return false;
    } finally {
      this.els.list.removeAttribute('aria-busy');
    }
  }

  /** Load older pages until the list can scroll (or the history is all there). */
  async fillViewport() {
    const list = this.els.list;
    while (this.history.more && list.scrollHeight <= list.clientHeight + NEAR_TOP_PX) {
      if (!(await this.loadOlder())) break;
    }
    if (this.chains.atStart) this.timeline.markStart();
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
    let sealing;
    try {
      if (this.keyring) {
        const { keys, alerts } = await this.keyring.plan(this.peer);
        for (const alert of alerts) this.trust.once(`bundle/${alert.kid}`, null, { kind: alert.kind, detail: alert.detail });
        sealing = { keys, history: this.keyring.history };
      } else {
        sealing = { recipients: await recipients(this.dir, this.me, this.peer) };
      }
    } finally {
      this.trust.check(); // the banner, or a warning per unapproved device, as fetched now
    }
    const { frame, hash } = await this.outbox.seal({
      device: this.device, peer: this.peer, room: this.room, kind, meta, data, ...sealing,
    });
    this.showScheme();
    await this.enqueue(() => {
      this.seen.add(`${this.me.id}/${frame.id}`);
      this.chains.add(this.device.kid, frame.body.seq, frame.body.prev, hash, frame.id, { live: true });
      this.showPending(frame, meta, data);
      this.timeline.scrollToBottom();
      this.outbox.send(frame, this.room);
    });
    return frame.id;
  }

  showPending(frame, meta, data) {
    this.timeline.addMessage({
      id: frame.id, sender: this.me.id, own: true, kind: frame.kind, device: this.device.kid, meta, data,
      ts: Date.now(), cursor: null, state: 'pending',
    });
    this.timeline.renderDays();
  }

  /** Show what a previous page left unacknowledged, and send it again (same ids). */
  async restoreOutbox() {
    for (const { frame } of await this.outbox.stored(this.room)) {
      if (this.seen.has(`${this.me.id}/${frame.id}`)) {
        await this.outbox.settle(this.room, frame.id);
        continue;
      }
      const { content, alert } = await openVerified(frame, this.reader);
      if (alert) {
        await this.outbox.settle(this.room, frame.id);
        continue;
      }
      this.seen.add(`${this.me.id}/${frame.id}`);
      await this.chains.addEnvelope(this.device.kid, frame.body, frame.id, { live: true });
      this.showPending(frame, content.meta, content.data);
      this.outbox.send({ ...frame, peer: this.peer.id }, this.room);
    }
    this.timeline.renderDays();
  }

  /** Tell the friend this user is typing, or stopped. */
  typing(on) {
    return this.typingSignal.set(on);
  }
}
