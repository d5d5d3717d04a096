// Devices (Settings → Devices): the account's signed device list as this browser trusts it
// (directory.js), and the devices waiting to be approved (docs/protocol.md "Linking a
// device"). Each approved device shows its label and when it was added, this browser's
// marked; each waiting one its link code, which the user compares with the code that
// device shows. Only the browser holding the identity key changes the list: Approve signs
// the next version with the device added, then hands that device the content keys of the
// history this browser reads (sharing.js); Revoke signs the next one with it moved to the
// revoked ones (from then on it gets no key to new messages, and what it signs after is
// refused); Decline removes the waiting device's keys (DELETE /api/keys/{kid}). A list
// another device changed meanwhile (409) is fetched again and the change signed once more.

import { ApiError, explain } from './api.js';
import { clear, formatDateTime, h } from './dom.js';
import { linkCode, signList, withDevice, withRevoked } from './identity.js';
import { holdsIdentity } from './linking.js';
import { shareHistory } from './sharing.js';

const POLL_MS = 3000;

function messages(n) {
  return n === 1 ? '1 earlier message' : `${n} earlier messages`;
}

export class Devices {
  /**
   * me: {id, name}; device: this browser's device; dir: the Directory; els: {list, status};
   * history: what this browser kept of what it read and sent (localhistory.js), shared too.
   */
  constructor({ api, me, device, dir, els, history = null }) {
    Object.assign(this, { api, me, device, dir, els, history });
    this.shown = ''; // what is drawn, so a poll that finds nothing new redraws nothing
    this.timer = null;
    this.closed = false;
  }

  /** The panel opened: show it, and keep it current while it stays open. */
  open() {
    clearInterval(this.timer);
    this.timer = setInterval(() => {
      if (document.visibilityState === 'visible') this.refresh();
    }, POLL_MS);
    return this.refresh();
  }

  hide() {
    clearInterval(this.timer);
    this.timer = null;
  }

  /** Stop and forget what is shown; safe twice. */
  close() {
    this.closed = true;
    this.hide();
    clear(this.els.list);
    this.els.status.textContent = '';
  }

  async refresh() {
    if (this.closed) return;
    let entry;
    try {
      entry = await this.dir.get(this.me.id, this.me.name, { refresh: true });
    } catch (err) {
      this.els.status.textContent = `Devices not loaded: ${explain(err)}`;
      return;
    }
    if (this.closed) return;
    const holder = holdsIdentity(this.device, entry);
    const approved = [...entry.devices.values()].filter((d) => d.revokedAt === null).sort((a, b) => a.added - b.added);
    const waiting = [...entry.unlisted].sort((a, b) => a.created_at - b.created_at);
    const codes = await Promise.all(waiting.map((k) => linkCode(k.kid, k.sid)));
    const drawn = JSON.stringify([holder, approved, waiting.map((k) => k.kid)]);
    if (drawn === this.shown || this.closed) return;
    this.shown = drawn;
    const list = clear(this.els.list);
    for (const d of approved) list.append(this.approvedRow(d, holder));
    waiting.forEach((k, i) => list.append(this.waitingRow(k, codes[i], holder)));
  }

  approvedRow(d, holder) {
    const current = d.kid === this.device.kid;
    let name = current ? 'this browser' : (d.label || 'unnamed device');
    if (current && holder) name += ' · holds your identity key';
    return h('li', { class: 'device', dataset: { kid: d.kid, current: String(current), state: 'approved' } },
      h('span', { class: 'name', text: name, title: d.kid }),
      h('span', { class: 'muted', text: `added ${formatDateTime(d.added)}` }),
      holder && !current
        ? h('button', { type: 'button', class: 'secondary revoke', onclick: () => this.revoke(d) }, 'Revoke')
        : null);
  }

  waitingRow(key, code, holder) {
    const label = key.label || 'unnamed device';
    return h('li', { class: 'device waiting', dataset: { kid: key.kid, current: 'false', state: 'pending' } },
      h('span', { class: 'name', text: `${label} — waiting for approval`, title: key.kid }),
      h('span', { class: 'muted', text: 'link code' }),
      h('span', { class: 'code', text: code }),
      holder
        ? [h('button', { type: 'button', class: 'approve', onclick: () => this.approve(key, code) }, 'Approve'),
          h('button', { type: 'button', class: 'secondary decline', onclick: () => this.decline(key) }, 'Decline')]
        : h('span', { class: 'muted', text: 'Approve it from the device that holds your identity key.' }));
  }

  /** Approve a waiting device: the next list names it; then it gets the history's keys. */
  async approve(key, code) {
    const done = `Approved ${key.label || 'the device'} (${code})`;
    let approved = null;
    const ok = await this.act(() => this.change((list, entry) => {
      approved = entry.unlisted.find((k) => k.kid === key.kid);
      if (!approved) throw new Error('that device no longer waits for approval');
      return withDevice(list, approved);
    }), `${done}.`, 'Not approved');
    if (ok) await this.share(approved, done);
  }

  /**
   * Give the device just approved the content keys of every message this browser reads
   * (sharing.js), saying how far it got. The approval stands whatever becomes of this.
   */
  async share(to, done) {
    const status = (text) => {
      if (!this.closed) this.els.status.textContent = text;
    };
    status(`${done}; looking for earlier messages to share…`);
    try {
      const n = await shareHistory({
        api: this.api, me: this.me, device: this.device, dir: this.dir, to, history: this.history,
        onCount: (count) => status(`${done}; sharing ${messages(count)}…`),
        stopped: () => this.closed,
      });
      if (n !== null) status(n ? `${done}; ${messages(n)} shared.` : `${done}.`);
    } catch (err) {
      status(`${done}, but sharing earlier messages with it failed: ${explain(err)}`);
    }
  }

  /** Decline a waiting device: its keys go, never to come back. */
  async decline(key) {
    await this.act(() => this.api.removeKey(key.kid), `Declined ${key.label || key.kid.slice(0, 12)}.`, 'Not declined');
  }

  /** Revoke an approved device: the next list moves it to the revoked ones, as of now. */
  async revoke(d) {
    await this.act(() => this.change((list) => withRevoked(list, d.kid)),
      `Revoked ${d.label || d.kid.slice(0, 12)}.`, 'Not revoked');
  }

  /** Run one change and say how it went: true if it was made. */
  async act(step, done, failed) {
    try {
      await step();
    } catch (err) {
      this.els.status.textContent = `${failed}: ${explain(err)}`;
      return false;
    }
    this.shown = '';
    await this.refresh();
    if (!this.closed) this.els.status.textContent = done;
    return true;
  }

  /** Sign and upload edit(trusted list, entry); on a conflict, fetch the list and edit it again, once. */
  async change(edit) {
    for (let attempt = 0; ; attempt += 1) {
      const entry = await this.dir.get(this.me.id, this.me.name, { refresh: true });
      if (!holdsIdentity(this.device, entry)) throw new Error('only the device that holds your identity key changes the list');
      const list = edit(entry.list, entry);
      try {
        await this.api.putDeviceList(await signList(this.device.identity, list));
      } catch (err) {
        if (attempt || !(err instanceof ApiError && err.status === 409)) throw err;
        continue;
      }
      await this.dir.pin(this.me.id, list);
      return;
    }
  }
}
