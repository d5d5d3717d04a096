// The devices an envelope v3 is for (client/sdk.py _targets; docs/sessions.md "Which
// devices"): every live device of both users' trusted lists except this browser's own (it
// keeps what it sent in its local history), each with its RSA key and, when it has no
// session yet, its prekey bundle, claimed at most every CLAIM_EVERY_MS per user (a claim
// takes one of the device's one-time prekeys) and used only if the device's signing key,
// as the pinned list names it, signed it.

import { Directory } from './directory.js';
import { lists } from './outbox.js';
import { bundleVerifies } from './sessionstore.js';

export const CLAIM_EVERY_MS = 30_000;
const KID_SHOWN = 12;

export class Targets {
  /** me: {id, name}; device: this browser's; sessions: its DeviceSessions. */
  constructor({ api, dir, me, device, sessions }) {
    Object.assign(this, { api, dir, me, device, sessions });
    this.claimed = new Map(); // user id -> when its bundles were last asked for
  }

  /**
   * {targets: [{kid, rsa, bundle, oneTime}], alerts: [{kind: 'bad_bundle', kid, detail}]}
   * for a message to `peer` ({id, name}). Throws as outbox.js lists() does (a changed
   * identity key not yet accepted, a friend with no device list).
   */
  async for(peer) {
    const [theirs, mine] = await lists(this.dir, this.me, peer);
    const targets = [];
    const alerts = [];
    for (const [user, entry] of [[peer, theirs], [this.me, mine]]) {
      const devices = Directory.live(entry).filter((d) => d.kid !== this.device.kid);
      const need = [];
      for (const d of devices) if (!(await this.sessions.hasSession(d.kid))) need.push(d.kid);
      const claimed = await this.claim(user.id, need);
      for (const d of devices) {
        let c = claimed.get(d.kid) ?? null;
        if (c && !(await bundleVerifies(c.bundle, user.id, d.kid, await this.sigKey(d)))) {
          const whose = user.id === this.me.id ? 'your' : `${user.name}’s`;
          alerts.push({
            kind: 'bad_bundle', kid: d.kid,
            detail: `the prekey bundle of ${whose} device ${d.kid.slice(0, KID_SHOWN)} is not signed by it: no session with it`,
          });
          c = null;
        }
        targets.push({ kid: d.kid, rsa: await this.dir.encKey(d), bundle: c ? c.bundle : null, oneTime: c ? c.one_time ?? null : null });
      }
    }
    return { targets, alerts };
  }

  async sigKey(d) {
    try {
      return await this.dir.sigKey(d);
    } catch {
      return null;
    }
  }

  /** Map(kid -> {bundle, one_time}) of the devices `kids` of `userId`, if due. */
  async claim(userId, kids) {
    const found = new Map();
    const last = this.claimed.get(userId);
    if (!kids.length || (last !== undefined && Date.now() - last < CLAIM_EVERY_MS)) return found;
    this.claimed.set(userId, Date.now());
    try {
      for (const c of await this.api.claimPrekeys(userId, kids)) {
        if (c && c.bundle && typeof c.bundle.kid === 'string') found.set(c.bundle.kid, c);
      }
    } catch {
      this.claimed.delete(userId); // unreachable now (an offline send): asked again next time
    }
    return found;
  }

  /**
   * How the conversation with `peer` stands, from what this browser holds (no claim, no
   * fetch unless the lists were never fetched): {devices, without}: how many devices it
   * sends to, and how many of them have no session yet.
   */
  async scheme(peer) {
    const entries = [];
    for (const user of [peer, this.me]) {
      entries.push(this.dir.users.get(user.id) ?? await this.dir.get(user.id, user.name, { offline: true }));
    }
    const devices = entries.flatMap((e) => Directory.live(e)).filter((d) => d.kid !== this.device.kid);
    let without = 0;
    for (const d of devices) if (!(await this.sessions.hasSession(d.kid))) without += 1;
    return { devices: devices.length, without };
  }
}
