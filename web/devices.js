// Devices: the account's device keys, from the user's own directory entry (GET
// /api/users/{name}): each with its label and when it was added, this browser's marked. The
// settings panel lists them and revokes any other one (DELETE /api/keys/{kid}): from then on
// new messages wrap no key for it. What it already received it can still read; its session
// is not ended (Sessions does that). docs/clients.md "Devices".

import { explain } from './api.js';
import { clear, formatDateTime, h } from './dom.js';

export class Devices {
  /** me: {id, name}; device: this browser's device keys; els: {list, status}. */
  constructor({ api, me, device, els }) {
    Object.assign(this, { api, me, device, els });
    this.closed = false;
  }

  /** Forget what is shown; safe twice. */
  close() {
    this.closed = true;
    clear(this.els.list);
    this.els.status.textContent = '';
  }

  async refresh() {
    if (this.closed) return;
    let user;
    try {
      user = await this.api.user(this.me.name);
    } catch (err) {
      this.els.status.textContent = `Devices not loaded: ${explain(err)}`;
      return;
    }
    if (this.closed) return;
    this.els.status.textContent = '';
    const list = clear(this.els.list);
    const keys = [...(user.keys ?? [])].sort((a, b) => a.created_at - b.created_at);
    for (const key of keys) {
      const current = key.kid === this.device.kid;
      const name = current ? 'this browser' : (key.label || 'unnamed device');
      list.append(h('li', { class: 'device', dataset: { kid: key.kid, current: String(current) } },
        h('span', { class: 'name', text: name, title: key.kid }),
        h('span', { class: 'muted', text: `added ${formatDateTime(key.created_at)}` }),
        current ? null : h('button', { type: 'button', class: 'secondary revoke', onclick: () => this.revoke(key) },
          'Revoke')));
    }
  }

  /** Revoke another device: new messages wrap no key for it. */
  async revoke(key) {
    try {
      await this.api.call('DELETE', `/api/keys/${encodeURIComponent(key.kid)}`);
    } catch (err) {
      this.els.status.textContent = `Not revoked: ${explain(err)}`;
      return;
    }
    await this.refresh();
    if (!this.closed) this.els.status.textContent = `Revoked ${key.label || key.kid.slice(0, 12)}.`;
  }
}
