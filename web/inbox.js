// The conversation list: every friend's conversation, the most recently active first,
// each with a presence dot, a preview (verified and decrypted here, in the browser), an
// unread badge and "typing…"; the tab title counts the unread total; a browser
// notification for a message in another conversation or while the tab is hidden.
//
// Everything arrives over the one device socket. The inbox also keeps what the friends'
// receipts say (Marks, for the ticks) and sends this device's own receipts: `delivered`
// once it decrypted a friend's message, `read` once the open conversation showed it
// (unless read receipts are off); a burst of messages costs one receipt.

import { fromUtf8 } from './codec.js';
import { formatDay, formatTime, h } from './dom.js';
import { newId, roomId, sealSignal } from './outbox.js';
import { later, Marks, receiptContent, TYPING_SHOWN_MS } from './signals.js';
import { openFrame, verifyReceipt, verifyTyping } from './verify.js';

const RECEIPT_DELAY_MS = 400;
const PREVIEW_CHARS = 90;
const TITLE = 'duet';

export class Inbox {
  /**
   * view: {open: room|null, visible(): bool} — what the user is looking at;
   * onOpen(peerId): the user chose a conversation; onChange(room): its marks, typing or
   * presence changed (the open conversation redraws); shared(envelope): a content key
   * shared with this browser (sharing.js), for messages that hold none for it; keyring:
   * this browser's sessions and local history (keyring.js: messages and receipts are read
   * and sent as envelope v3; without it, v2).
   */
  constructor({ me, device, dir, socket, outbox, list, view, onOpen, onChange, shared = null, keyring = null }) {
    this.me = me;
    this.device = device;
    this.keyring = keyring;
    this.reader = keyring ?? device;
    this.dir = dir;
    this.shared = shared;
    this.socket = socket;
    this.outbox = outbox;
    this.list = list;
    this.view = view;
    this.onOpen = onOpen;
    this.onChange = onChange;
    this.convs = new Map(); // room -> conversation state
    this.seen = new Set(); // "<sender>/<id>" handled
    this.readReceipts = true;
    this.work = Promise.resolve();
    this.timers = new Set();
  }

  // -- state ---------------------------------------------------------------------------
  /** Take the server's list (GET /api/conversations), keeping what live frames taught. */
  load(conversations) {
    const fresh = new Map();
    for (const c of conversations) {
      const old = this.convs.get(c.room);
      const conv = old ?? {
        room: c.room, peer: { id: c.user_id, name: c.username }, marks: new Marks(),
        typingUntil: 0, onlineAt: 0, preview: null, peerCursors: [],
      };
      conv.peer.name = c.username;
      conv.lastActivity = Math.max(old?.lastActivity ?? 0, c.last_activity);
      conv.unread = c.unread;
      conv.read = later(old?.read, c.read);
      conv.counted = later(old?.counted, c.last ? c.last.cursor : null);
      if (!old) {
        conv.online = c.online;
        if (c.last) {
          conv.preview = { own: c.last.sender === this.me.id, text: c.last.kind === 'image' ? 'Photo' : '…' };
          if (c.last.body) this.enqueue(() => this.previewOf(conv, { type: 'message', room: c.room, ...c.last }));
        }
        if (c.peer_receipt) this.enqueue(() => this.receipt(c.peer_receipt));
      }
      for (const m of [c.last, c.peer_receipt]) if (m) this.socket.seen(c.room, m.cursor);
      fresh.set(c.room, conv);
    }
    this.convs = fresh;
    this.render();
  }

  byPeer(peerId) {
    return this.convs.get(roomId(this.me.id, peerId)) ?? null;
  }

  members(conv) {
    return { [this.me.id]: this.me.name, [conv.peer.id]: conv.peer.name };
  }

  /** What verify.js needs to judge a frame of `conv`: the room, its members, the key. */
  async context(conv, frame) {
    const context = { room: conv.room, members: this.members(conv) };
    return { ...context, key: await this.dir.keyFor(frame, context) };
  }

  enqueue(step) {
    const run = this.work.then(step);
    this.work = run.catch((err) => console.error('duet:', err));
    return run;
  }

  // -- frames --------------------------------------------------------------------------
  onFrame(frame) {
    switch (frame.type) {
      case 'message':
        if (frame.kind === 'receipt') this.enqueue(() => this.receipt(frame));
        else this.enqueue(() => this.message(frame));
        break;
      case 'typing':
        this.enqueue(() => this.typing(frame));
        break;
      case 'presence':
        this.presence(frame);
        break;
      case 'read':
        this.readEvent(frame);
        break;
      default:
        break;
    }
  }

  /** A new `ready`: presence starts over from the snapshot that follows it. */
  onReady() {
    for (const conv of this.convs.values()) conv.online = false;
    this.render();
  }

  async message(frame) {
    const conv = this.convs.get(frame.room);
    const key = `${frame.sender}/${frame.id}`;
    if (!conv || this.seen.has(key)) return;
    this.seen.add(key);
    const own = frame.sender === this.me.id;
    conv.lastActivity = Math.max(conv.lastActivity, frame.ts || 0);
    const text = await this.previewOf(conv, frame);
    if (!own && text !== null) this.delivered(conv, frame.cursor);
    const looking = this.view.open === frame.room && this.view.visible();
    if (!own) {
      conv.peerCursors.push(frame.cursor);
      if (conv.peerCursors.length > 500) conv.peerCursors.shift();
    }
    if (!own && (!conv.counted || frame.cursor > conv.counted)) {
      conv.counted = frame.cursor;
      if (!looking && (!conv.read || frame.cursor > conv.read)) {
        conv.unread += 1;
        this.notify(conv, text ?? 'New message');
      }
    }
    this.render();
  }

  /** Verify and decrypt a message for the preview; its text (null if it failed). */
  async previewOf(conv, frame) {
    const { content, alert } = await openFrame(frame, await this.context(conv, frame), this.reader, this.shared);
    let text = null;
    if (alert?.kind === 'not_for_device') {
      // Sent before this device was added: nothing failed, it is just not readable here.
      conv.preview = { own: frame.sender === this.me.id, text: 'a message this device cannot read' };
    } else if (alert) {
      conv.preview = { own: false, text: '⚠ a message failed verification', alert: true };
    } else {
      text = frame.kind === 'image' ? 'Photo' : fromUtf8(content.data).replace(/\s+/g, ' ').slice(0, PREVIEW_CHARS);
      if (!conv.previewCursor || frame.cursor >= conv.previewCursor) {
        conv.preview = { own: frame.sender === this.me.id, text };
        conv.previewCursor = frame.cursor;
      }
    }
    this.render();
    return text;
  }

  async receipt(frame) {
    const conv = this.convs.get(frame.room);
    if (!conv || frame.sender === this.me.id) return;
    const { marks, alert } = await verifyReceipt(frame, await this.context(conv, frame), this.reader);
    if (alert) {
      this.onChange(conv.room, { alert: { frame, ...alert } });
      return;
    }
    if (conv.marks.add(marks)) this.onChange(conv.room, { marks: conv.marks });
  }

  async typing(frame) {
    const conv = this.convs.get(frame.room);
    if (!conv || frame.sender === this.me.id) return;
    const { typing, alert } = await verifyTyping(frame, await this.context(conv, frame), this.reader);
    if (alert) return; // forged, stale or malformed: not shown
    conv.typingUntil = typing ? Date.now() + TYPING_SHOWN_MS : 0;
    if (typing) {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        this.render();
        this.onChange(conv.room, { typing: this.isTyping(conv) });
      }, TYPING_SHOWN_MS + 50);
      this.timers.add(timer);
    }
    this.render();
    this.onChange(conv.room, { typing: this.isTyping(conv) });
  }

  isTyping(conv) {
    return conv.typingUntil > Date.now();
  }

  presence(frame) {
    const conv = this.byPeer(frame.user);
    if (!conv || frame.at < conv.onlineAt) return; // an older event, overtaken
    conv.onlineAt = frame.at;
    conv.online = frame.online;
    this.render();
    this.onChange(conv.room, { online: conv.online });
  }

  /** The user's read position moved (here or on another device). The server counted
   * the friend's messages stored by then, up to `newest`; those this tab holds past it
   * (delivered live, stored after the count) are added. */
  readEvent(frame) {
    const conv = this.convs.get(frame.room);
    if (!conv) return;
    conv.read = later(conv.read, frame.cursor);
    if (conv.read === frame.cursor) {
      const counted = later(frame.cursor, frame.newest ?? null);
      conv.unread = frame.unread + conv.peerCursors.filter((c) => c > counted).length;
    }
    this.render();
  }

  // -- this device's receipts ------------------------------------------------------------
  delivered(conv, cursor) {
    conv.delivered = later(conv.delivered, cursor);
    this.receiptSoon(conv);
  }

  /** The open conversation showed the friend's messages up to `cursor`. */
  shown(room, cursor) {
    const conv = this.convs.get(room);
    if (!conv || !cursor) return;
    conv.shown = later(conv.shown, cursor);
    conv.delivered = later(conv.delivered, cursor);
    if (!conv.read || cursor > conv.read) {
      conv.read = cursor;
      conv.unread = 0;
      this.render();
    }
    this.receiptSoon(conv);
  }

  receiptSoon(conv) {
    if (conv.receiptTimer) return;
    conv.receiptTimer = setTimeout(() => {
      conv.receiptTimer = null;
      this.enqueue(() => this.sendReceipt(conv));
    }, RECEIPT_DELAY_MS);
  }

  async sendReceipt(conv) {
    if (conv.shown && conv.shown !== conv.toldRead) {
      if (this.socket.post({ type: 'read', peer: conv.peer.id, cursor: conv.shown })) conv.toldRead = conv.shown;
    }
    const read = this.readReceipts ? conv.shown ?? null : null;
    const marks = `${conv.delivered ?? null}/${read}`;
    if (marks === conv.told || (!conv.delivered && !read)) return;
    const body = await sealSignal({
      dir: this.dir, me: this.me, device: this.device, peer: conv.peer, kind: 'receipt',
      content: receiptContent(conv.delivered ?? null, read), keyring: this.keyring,
    });
    conv.told = marks;
    this.outbox.send({ type: 'send', id: newId(), peer: conv.peer.id, kind: 'receipt', body }, conv.room);
  }

  // -- notifications and rendering -------------------------------------------------------
  notify(conv, text) {
    if (!('Notification' in window) || Notification.permission !== 'granted') return;
    if (this.view.open === conv.room && this.view.visible()) return;
    const n = new Notification(conv.peer.name, { body: text, tag: conv.room });
    n.onclick = () => {
      window.focus();
      this.onOpen(conv.peer.id);
      n.close();
    };
  }

  total() {
    let n = 0;
    for (const conv of this.convs.values()) n += conv.unread;
    return n;
  }

  render() {
    const total = this.total();
    document.title = total ? `(${total}) ${TITLE}` : TITLE;
    const convs = [...this.convs.values()].sort((a, b) => b.lastActivity - a.lastActivity
      || a.peer.name.localeCompare(b.peer.name));
    const items = convs.map((conv) => {
      const typing = this.isTyping(conv);
      const preview = typing ? 'typing…' : conv.preview ? `${conv.preview.own ? 'You: ' : ''}${conv.preview.text}` : 'No messages yet';
      const when = conv.preview && conv.lastActivity ? (sameDay(conv.lastActivity) ? formatTime(conv.lastActivity) : formatDay(conv.lastActivity)) : '';
      return h('li', { class: 'conv', dataset: { user: conv.peer.id, room: conv.room } },
        h('button', {
          type: 'button', class: 'conv-open', 'aria-current': this.view.open === conv.room ? 'true' : null,
          onclick: () => this.onOpen(conv.peer.id),
        },
        h('span', { class: `dot${conv.online ? ' online' : ''}`, title: conv.online ? 'online' : 'offline', 'aria-label': conv.online ? 'online' : 'offline' }),
        h('span', { class: 'conv-main' },
          h('span', { class: 'conv-top' },
            h('span', { class: 'name', text: conv.peer.name }),
            h('time', { class: 'when', text: when })),
          h('span', { class: 'conv-bottom' },
            h('span', { class: `preview${typing ? ' typing' : ''}${conv.preview?.alert ? ' alert' : ''}`, text: preview }),
            conv.unread ? h('span', { class: 'badge', text: conv.unread > 999 ? '999+' : String(conv.unread), 'aria-label': `${conv.unread} unread` }) : null))));
    });
    if (!items.length) items.push(h('li', { class: 'muted', text: 'No conversations yet: find someone by username.' }));
    this.list.replaceChildren(...items);
  }

  close() {
    for (const timer of this.timers) clearTimeout(timer);
    for (const conv of this.convs.values()) clearTimeout(conv.receiptTimer);
  }
}

function sameDay(ts) {
  return new Date(ts).toDateString() === new Date().toDateString();
}
