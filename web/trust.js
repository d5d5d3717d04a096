// Trusting the friend's keys in the open conversation. The live keys first seen are
// trusted (trust on first use, kept in IndexedDB); a change afterwards is a warning line
// and a banner until the user accepts it, after comparing safety numbers. What counts as
// a change is verify.js's decision (trustKeys); this module keeps the record and shows it.

import { Directory } from './directory.js';
import { safetyNumber } from './envelope.js';
import * as store from './store.js';
import { trustKeys } from './verify.js';

export class KeyTrust {
  /** els: {banner, bannerText, safety, safetyNumber}; onAlert(frame, alert): a warning line. */
  constructor({ me, peer, dir, els, onAlert }) {
    Object.assign(this, { me, peer, dir, els, onAlert });
    this.key = `${me.id}/${peer.id}`;
  }

  /** The friend's directory entry was fetched (with `frame`, if a message brought it). */
  async check(entry, frame = null) {
    const pairs = Directory.pairs(entry);
    if (!pairs.length) return;
    const trust = trustKeys(await store.get('peers', this.key), pairs);
    if (trust.record) await store.put('peers', this.key, trust.record);
    if (trust.alert) {
      this.onAlert(frame, {
        kind: 'key_changed',
        detail: `${this.peer.name}’s keys changed. Compare safety numbers before you trust new messages.`,
      });
    }
    if (trust.changed) this.showBanner();
  }

  showBanner() {
    this.els.bannerText.textContent = `${this.peer.name}’s keys changed since you last talked. `
      + 'Compare your safety number with them before you trust new messages.';
    this.els.banner.hidden = false;
  }

  /** The user compared safety numbers: the friend's present keys are trusted. */
  async accept() {
    const known = await store.get('peers', this.key);
    if (known) await store.put('peers', this.key, { ...known, changed: false });
    this.els.banner.hidden = true;
  }

  async showSafetyNumber() {
    const [mine, theirs] = await Promise.all([
      this.dir.get(this.me.id, this.me.name, { refresh: true }),
      this.dir.get(this.peer.id, this.peer.name, { refresh: true }),
    ]);
    await this.check(theirs);
    const number = await safetyNumber(this.me.id, Directory.pairs(mine), this.peer.id, Directory.pairs(theirs));
    this.els.safetyNumber.textContent = number;
    this.els.safety.hidden = false;
    return number;
  }
}
