// The key directory as this browser trusts it. GET /api/users/{name} serves what the server
// holds: the device keys uploaded, and the device list the user's identity key signed.
// Only the list counts: it is judged against the one pinned for the user (identity.js
// judge(), pins in IndexedDB), and the entry holds the devices it names, live and revoked.
// A device the server lists but the trusted list does not name is `unlisted`: a link
// request waiting for approval, or a device the server slipped in; it gets no key.
//
// It finds the key a received frame needs; verify.js decides what the frame is worth.
// An entry older than STALE_MS is asked for again first, so a device revoked meanwhile is
// seen as revoked within that time even in a conversation this browser only reads.

import { ApiError } from './api.js';
import { canonical } from './codec.js';
import { importEncPublic, importSigPublic } from './crypto.js';
import { judge } from './identity.js';
import * as store from './store.js';
import { keyNeeded } from './verify.js';

const STALE_MS = 30_000;

export class Directory {
  /** me: this user's id (pins are this user's). */
  constructor(api, me) {
    this.api = api;
    this.me = me;
    // user id -> {name, identity, version, list, devices: Map(kid -> device), unlisted,
    //             changedTo, verified, alert, fetched}
    this.users = new Map();
    this.keys = new Map(); // "enc:<spki>" / "sig:<spki>" -> CryptoKey promise
  }

  /**
   * A user's trusted devices. `refresh` asks the server again; when it cannot be reached
   * and `offline` allows it, the last known entry is used (so a message can be written
   * offline).
   */
  async get(userId, name, { refresh = false, offline = false } = {}) {
    const cached = this.users.get(userId);
    if (cached && !refresh) return cached;
    let profile;
    try {
      profile = await this.api.user(name);
    } catch (err) {
      if (cached && offline && err instanceof ApiError && err.status === 0) return cached;
      throw err;
    }
    if (profile.user_id !== userId) throw new ApiError(409, 'mismatch', `${name} is another user now`);
    return this.entryOf(userId, profile);
  }

  pinKey(userId) {
    return `${this.me}/${userId}`;
  }

  /** Judge a fetched profile's list against the pin, keep the pin up to date: the entry. */
  async entryOf(userId, profile) {
    const pin = (await store.get('pins', this.pinKey(userId))) ?? null;
    const { use, alert, changedTo } = await judge(pin, profile.device_list ?? null, userId);
    if (use && (!pin || canonical(use) !== canonical(pin.list))) {
      await store.put('pins', this.pinKey(userId), { list: use, verified: Boolean(pin && pin.verified) });
    }
    const devices = new Map();
    for (const d of use ? use.devices : []) devices.set(d.kid, device(d, null));
    for (const d of use ? use.revoked : []) devices.set(d.kid, device(d, d.revoked_at));
    const entry = {
      name: profile.username,
      identity: use ? use.identity : null,
      version: use ? use.version : 0,
      list: use,
      devices,
      unlisted: (profile.keys ?? []).filter((k) => !devices.has(k.kid)),
      changedTo,
      verified: Boolean(pin && pin.verified),
      alert,
      fetched: Date.now(),
    };
    this.users.set(userId, entry);
    return entry;
  }

  /** Pin a list this browser signed (the own one): trusted without asking the server. */
  async pin(userId, list) {
    const pin = await store.get('pins', this.pinKey(userId));
    if (pin && pin.list.identity === list.identity && pin.list.version >= list.version) return;
    await store.put('pins', this.pinKey(userId), { list, verified: Boolean(pin && pin.verified) });
  }

  /** The user accepts a changed identity key: its list becomes the pin (not verified). */
  async accept(userId, name) {
    const entry = this.users.get(userId);
    if (!entry || !entry.changedTo) return entry ?? null;
    await store.put('pins', this.pinKey(userId), { list: entry.changedTo, verified: false });
    return this.get(userId, name, { refresh: true });
  }

  /** The user compared safety numbers with this user and says they match. */
  async markVerified(userId) {
    const pin = await store.get('pins', this.pinKey(userId));
    if (!pin) return;
    await store.put('pins', this.pinKey(userId), { ...pin, verified: true });
    const entry = this.users.get(userId);
    if (entry) entry.verified = true;
  }

  static live(entry) {
    return [...entry.devices.values()].filter((d) => d.revokedAt === null);
  }

  /**
   * The key verifyFrame needs for `frame` (context: {room, members}): {device, sigPublic};
   * {device: null} for a device the sender's trusted list does not name (asked again once,
   * in case it is new); {device: null, error} when the directory cannot be reached; null
   * when the frame is refused before any key is needed.
   */
  async keyFor(frame, context) {
    const need = keyNeeded(frame, context);
    if (!need) return null;
    const name = context.members[need.user];
    const cached = this.users.get(need.user);
    const stale = !cached || Date.now() - cached.fetched > STALE_MS;
    let found;
    try {
      found = (await this.get(need.user, name, { refresh: stale, offline: true })).devices.get(need.kid);
      if (!found && !stale) found = (await this.get(need.user, name, { refresh: true })).devices.get(need.kid);
    } catch (err) {
      return { device: null, error: err.message };
    }
    if (!found) return { device: null };
    let sigPublic = null;
    try {
      sigPublic = await this.sigKey(found);
    } catch {
      sigPublic = null; // an SPKI that does not import verifies nothing: bad_signature
    }
    return { device: found, sigPublic };
  }

  encKey(d) {
    return this.imported(`enc:${d.enc}`, () => importEncPublic(d.enc));
  }

  sigKey(d) {
    return this.imported(`sig:${d.sig}`, () => importSigPublic(d.sig));
  }

  imported(key, load) {
    let promise = this.keys.get(key);
    if (!promise) {
      promise = load();
      promise.catch(() => this.keys.delete(key));
      this.keys.set(key, promise);
    }
    return promise;
  }
}

function device(d, revokedAt) {
  return { kid: d.kid, sid: d.sid, enc: d.enc, sig: d.sig, label: d.label ?? null, added: d.added, revokedAt };
}
