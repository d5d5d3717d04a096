// Sessions: every login is one (a device login). The settings panel lists the user's with
// the browser or client that logged in, marks this browser's, and ends any of them; "Log out
// everywhere" ends them all. The token of this browser's session is renewed at 80% of its
// life (POST /api/sessions/renew: the same session, a later expiry), so the device socket
// never has to reconnect for a new token. docs/protocol.md "Sessions".

import { explain } from './api.js';
import { clear, formatDateTime, h } from './dom.js';

const RENEW_AT = 0.8; // share of the token's life after which it is renewed
const RETRY_MS = 30_000; // a renewal that failed for want of the server is tried again

export class Sessions {
  /**
   * session: {token, expiresAt, lifetimeMs?}; els: {list, status}; onRenewed(token): the
   * renewed token response (app.js saves it for every tab); onEnded(): this browser's
   * session was ended from here (the app logs out).
   */
  constructor({ api, session, els, onRenewed, onEnded }) {
    Object.assign(this, { api, session, els, onRenewed, onEnded });
    this.timer = null;
    this.closed = false;
  }

  /** Stop renewing and forget what is shown; safe twice. */
  close() {
    this.closed = true;
    clearTimeout(this.timer);
    clear(this.els.list);
    this.els.status.textContent = '';
  }

  /** Renew the token when RENEW_AT of its life has passed (at once if that is past). */
  keepRenewed() {
    clearTimeout(this.timer);
    if (this.closed) return;
    // A session saved before lifetimes were kept: 80% of what is left.
    const lifetime = this.session.lifetimeMs || Math.max(0, this.session.expiresAt - Date.now());
    const due = this.session.expiresAt - lifetime * (1 - RENEW_AT) - Date.now();
    this.timer = setTimeout(() => this.renew(), Math.max(1000, due));
  }

  async renew() {
    if (this.closed) return;
    try {
      const token = await this.api.renew();
      if (this.closed) return;
      this.onRenewed(token);
      this.keepRenewed();
    } catch (err) {
      // A 401 means the session ended: Api's onUnauthenticated logs out already.
      if (!this.closed && err.status !== 401) this.timer = setTimeout(() => this.renew(), RETRY_MS);
    }
  }

  async refresh() {
    if (this.closed) return;
    let sessions;
    try {
      sessions = await this.api.sessions();
    } catch (err) {
      this.els.status.textContent = `Sessions not loaded: ${explain(err)}`;
      return;
    }
    if (this.closed) return;
    this.els.status.textContent = '';
    const list = clear(this.els.list);
    for (const s of sessions) {
      const label = s.current ? 'this browser' : (s.label || 'unknown client');
      list.append(h('li', { class: 'session', dataset: { session: s.id, current: String(s.current) } },
        h('span', { class: 'name', text: label, title: s.label }),
        h('span', { class: 'muted', text: `since ${formatDateTime(s.created_at)}, seen ${formatDateTime(s.last_seen)}` }),
        h('button', { type: 'button', class: 'secondary revoke', onclick: () => this.revoke(s) },
          s.current ? 'Log out' : 'End')));
    }
  }

  async revoke(s) {
    try {
      await this.api.revokeSession(s.id);
    } catch (err) {
      this.els.status.textContent = `Not ended: ${explain(err)}`;
      return;
    }
    if (s.current) this.onEnded();
    else await this.refresh();
  }

  /** End every session of the user, this one too. */
  async everywhere() {
    try {
      await this.api.logout({ everywhere: true });
    } catch (err) {
      this.els.status.textContent = `Not logged out: ${explain(err)}`;
      return;
    }
    this.onEnded();
  }
}
