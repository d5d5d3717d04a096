// One room's WebSocket: authenticate with subprotocols, resume from the last cursor,
// resend what was not acknowledged, reconnect with jittered exponential back-off.
//
// States: connecting → connected → lost (reconnecting…) → connected …, or error (the server
// refused for good: bad token, not friends, foreign origin). The token goes in the
// subprotocol list (`duet.v1`, `bearer.<token>`), never in the URL.

const FATAL = {
  4401: 'not authenticated — log in again',
  4403: 'not allowed in this room',
  1008: 'refused by the server’s policy',
};
const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 10_000;
const READY_TIMEOUT_MS = 10_000;
const RESEND_DELAY_MS = 500;

export class RoomSocket {
  /**
   * onFrame(frame): every frame after `ready`; onState(state, detail): state changes;
   * cursor(): the last cursor seen, for `sync`.
   */
  constructor(peerId, token, { onFrame, onState, cursor }) {
    this.url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws/${encodeURIComponent(peerId)}`;
    this.token = token;
    this.onFrame = onFrame;
    this.onState = onState;
    this.cursor = cursor;
    this.pending = new Map(); // message id -> frame text, until acked
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

  connect() {
    clearTimeout(this.timer);
    if (this.stopped) return;
    this.ready = false;
    let ws;
    try {
      ws = new WebSocket(this.url, ['duet.v1', `bearer.${this.token}`]);
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
        ws.send(JSON.stringify({ type: 'sync', after: this.cursor() }));
        for (const text of this.pending.values()) ws.send(text);
        this.setState('connected');
        return;
      }
      this.onFrame(frame);
    };
    ws.onclose = (event) => {
      clearTimeout(readyTimer);
      if (this.ws === ws) this.ws = null;
      this.ready = false;
      if (this.stopped) return;
      if (FATAL[event.code]) {
        this.setState('error', FATAL[event.code]);
        return;
      }
      this.setState('lost', event.code === 1012 ? 'the server is restarting' : '');
      this.schedule(event.code === 1012 ? 100 : null);
    };
    ws.onerror = () => {}; // a close event follows
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

  /**
   * Send a `send` frame now if connected; keep it to resend after every reconnect until
   * it is acked. Resends are marked `retry` so a gateway that already stored the message
   * answers from storage; either way the id keeps it one message.
   */
  send(frame) {
    this.pending.set(frame.id, JSON.stringify({ ...frame, retry: true }));
    if (this.connected) this.ws.send(JSON.stringify(frame));
  }

  resendLater(id) {
    setTimeout(() => {
      const text = this.pending.get(id);
      if (text && this.connected) this.ws.send(text);
    }, RESEND_DELAY_MS);
  }

  resync() {
    if (this.connected) this.ws.send(JSON.stringify({ type: 'sync', after: this.cursor() }));
  }

  settle(id) {
    this.pending.delete(id);
  }
}
