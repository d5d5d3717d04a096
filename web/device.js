// This tab's one WebSocket (protocol v2, `/ws`): every conversation of the user over it.
// Authenticates with subprotocols (`duet.v2`, `bearer.<token>`: never a token in a URL),
// resumes every room from its last cursor after each `ready` (then the outbox sends again
// what was not settled: outbox.js), and reconnects with jittered exponential back-off.
// What a close code means (give up, back off, reconnect at once) comes from codes.js, the
// one table.
//
// States: connecting → connected → lost (reconnecting…) → connected …, or error.

import { CLOSES, ERRORS } from './codes.js';

const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 10_000;
const READY_TIMEOUT_MS = 10_000;

export class DeviceSocket {
  /**
   * onFrame(frame): every frame after `ready`; onReady(): a new `ready` (before the sync);
   * onConnected(): the sync is asked for (pending sends go again); onState(state, detail).
   */
  constructor(token, { onFrame, onReady = () => {}, onConnected = () => {}, onState = () => {} }) {
    this.url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
    this.token = token;
    this.onFrame = onFrame;
    this.onReady = onReady;
    this.onConnected = onConnected;
    this.onState = onState;
    this.cursors = new Map(); // room -> the newest cursor this tab holds of it
    this.ws = null;
    this.ready = false;
    this.stopped = true;
    this.delay = FIRST_DELAY_MS;
    this.timer = null;
    this.state = 'connecting';
    this.onOnline = () => this.retryNow();
  }

  start() {
    this.stopped = false;
    window.addEventListener('online', this.onOnline);
    this.connect();
  }

  /** Stop for good; safe twice. */
  close() {
    this.stopped = true;
    window.removeEventListener('online', this.onOnline);
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000, 'closed');
    this.ws = null;
  }

  setState(state, detail = '') {
    this.state = state;
    this.onState(state, detail);
  }

  /** Remember that this tab holds a room up to `cursor` (the next sync starts there). */
  seen(room, cursor) {
    if (typeof cursor !== 'string') return;
    const known = this.cursors.get(room);
    if (!known || cursor > known) this.cursors.set(room, cursor);
  }

  connect() {
    clearTimeout(this.timer);
    if (this.stopped) return;
    this.ready = false;
    let ws;
    try {
      ws = new WebSocket(this.url, ['duet.v2', `bearer.${this.token}`]);
    } catch (err) {
      this.setState('error', String(err.message || err));
      return;
    }
    this.ws = ws;
    const readyTimer = setTimeout(() => ws.close(4000, 'no ready frame'), READY_TIMEOUT_MS);
    ws.onmessage = (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (!this.ready) {
        if (frame.type !== 'ready') return;
        clearTimeout(readyTimer);
        this.ready = true;
        this.delay = FIRST_DELAY_MS;
        this.onReady();
        this.sync();
        this.onConnected();
        this.setState('connected');
        return;
      }
      if (frame.type === 'message') this.seen(frame.room, frame.cursor);
      if (frame.type === 'error' && frame.code === ERRORS.sync_failed.code) {
        setTimeout(() => this.sync(), 1000);
      }
      if (frame.type === 'error' && frame.code === ERRORS.sync_needed.code) this.sync();
      this.onFrame(frame);
    };
    ws.onclose = (event) => {
      clearTimeout(readyTimer);
      if (this.ws === ws) this.ws = null;
      this.ready = false;
      if (this.stopped) return;
      const close = CLOSES[String(event.code)];
      if (close && close.retry === 'never') {
        this.setState('error', close.cause);
        return;
      }
      this.setState('lost', close ? close.cause : '');
      this.schedule(close && close.retry === 'now' ? 100 : null);
    };
    ws.onerror = () => {}; // a close event follows
  }

  /** Everything since each room's cursor; rooms this tab never saw, from their start. */
  sync() {
    if (this.connected) this.ws.send(JSON.stringify({ type: 'sync', after: Object.fromEntries(this.cursors) }));
  }

  schedule(delay = null) {
    clearTimeout(this.timer);
    const wait = delay ?? this.delay * (0.5 + Math.random() / 2);
    this.delay = Math.min(this.delay * 2, MAX_DELAY_MS);
    this.timer = setTimeout(() => this.connect(), wait);
  }

  retryNow() {
    if (!this.stopped && !this.ws) this.connect();
  }

  get connected() {
    return this.ready && this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  /** Send a frame now if connected (false if not): best effort; the outbox keeps sends. */
  post(frame) {
    if (!this.connected) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }
}
