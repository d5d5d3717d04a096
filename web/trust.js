// Trust in the open conversation, as the two users' signed device lists say it (the
// directory keeps them, pinned: identity.js judge()). Shown here:
//   - the friend's identity key changed: a banner (louder if the friend was verified) that
//     blocks sending until the user accepts the new key, after comparing safety numbers;
//   - a device the server lists but a signed list does not name, the friend's or one's
//     own: a warning line naming it, once per device (it gets no key to what is sent);
//   - a list refused (bad_device_list): a warning line, once per reason;
//   - the safety number, over the two pinned identity keys only: devices coming and going
//     never change it; and "Mark verified".

import { identityFingerprint, safetyNumber } from './identity.js';

const KID_SHOWN = 12;

export class KeyTrust {
  /**
   * els: {banner, bannerText, safety, safetyNumber, safetyNew, safetyVerified, safetyMark};
   * onAlert(frame, alert): a warning line.
   */
  constructor({ me, peer, dir, els, onAlert }) {
    Object.assign(this, { me, peer, dir, els, onAlert });
    this.warned = new Set(); // what this view warned about already
  }

  /** Show what the directory's entries for both users say now (after each fetch). */
  check(frame = null) {
    const mine = this.dir.users.get(this.me.id);
    const theirs = this.dir.users.get(this.peer.id);
    if (theirs) this.showEntry(theirs, this.peer, frame);
    if (mine) this.showEntry(mine, null, frame);
    this.showBanner(theirs);
  }

  /** peer: the friend ({id, name}), or null for this user's own entry. */
  showEntry(entry, peer, frame) {
    const whose = peer ? `${peer.name}’s` : 'Your';
    if (entry.alert && entry.alert.kind === 'bad_device_list') {
      this.once(`list/${peer ? peer.id : 'me'}/${entry.alert.detail}`, frame, {
        kind: 'bad_device_list', detail: `${whose} device list: ${entry.alert.detail}`,
      });
    }
    if (entry.changedTo) {
      this.once(`identity/${entry.changedTo.identity}`, frame, {
        kind: 'identity_changed',
        detail: `${whose} identity key changed. Compare safety numbers before you accept it.`,
      });
    }
    // A device the new, not yet accepted identity key lists is news of that change, not this.
    const newly = new Set(entry.changedTo ? entry.changedTo.devices.map((d) => d.kid) : []);
    for (const key of entry.unlisted.filter((k) => !newly.has(k.kid))) {
      const device = `“${key.label || 'unnamed device'}” (${key.kid.slice(0, KID_SHOWN)})`;
      const detail = peer
        ? `${peer.name} has a device their identity key did not approve: ${device}. It gets no key to your messages.`
        : `Your account has a device your identity key did not approve: ${device}. It gets no key to your messages; `
          + 'if it is yours, approve it in Settings → Devices.';
      this.once(`unlisted/${key.kid}`, frame, { kind: 'unapproved_device', detail });
    }
  }

  once(key, frame, alert) {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.onAlert(frame, alert);
  }

  showBanner(entry) {
    const { banner, bannerText } = this.els;
    if (!entry || !entry.changedTo) {
      banner.hidden = true;
      return;
    }
    const name = this.peer.name;
    const changed = `${name}’s identity key changed. Compare safety numbers, then Accept to send again.`;
    bannerText.textContent = entry.verified ? `You had verified ${name}: ${changed}` : changed;
    banner.classList.toggle('verified', entry.verified);
    banner.hidden = false;
  }

  /** The user compared safety numbers: the friend's new identity key is pinned. */
  async accept() {
    await this.dir.accept(this.peer.id, this.peer.name);
    this.check();
    if (!this.els.safety.hidden) await this.showSafetyNumber();
  }

  /** The user compared the safety number with the friend and it matched. */
  async markVerified() {
    await this.dir.markVerified(this.peer.id);
    this.showVerified(true);
  }

  showVerified(verified) {
    this.els.safetyVerified.textContent = verified ? `✓ You marked ${this.peer.name} as verified.` : '';
    this.els.safetyMark.hidden = verified;
  }

  /** The safety number over the two pinned identity keys (and, while a change waits, the new one's). */
  async showSafetyNumber() {
    const [mine, theirs] = await Promise.all([
      this.dir.get(this.me.id, this.me.name, { refresh: true }),
      this.dir.get(this.peer.id, this.peer.name, { refresh: true }),
    ]);
    this.check();
    if (!theirs.identity) throw new Error(`${this.peer.name} has not set up an identity key yet`);
    if (!mine.identity) throw new Error('your account has no identity key yet');
    const number = await this.number(mine.identity, theirs.identity);
    this.els.safetyNumber.textContent = number;
    this.els.safetyNew.textContent = theirs.changedTo
      ? `With ${this.peer.name}’s new identity key it would be: ${await this.number(mine.identity, theirs.changedTo.identity)}`
      : '';
    this.els.safetyNew.hidden = !theirs.changedTo;
    this.showVerified(theirs.verified);
    if (theirs.changedTo) this.els.safetyMark.hidden = true; // the pinned key is on its way out
    this.els.safety.hidden = false;
    return number;
  }

  async number(mine, theirs) {
    return safetyNumber(this.me.id, await identityFingerprint(mine), this.peer.id, await identityFingerprint(theirs));
  }
}
