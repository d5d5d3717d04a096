// The key directory as this browser sees it: each user's published devices (live and
// revoked), fetched with GET /api/users/{name}, with the public keys imported on demand.
// It finds the key a received frame needs; verify.js decides what the frame is worth.

import { ApiError } from './api.js';
import { compareCodePoints } from './codec.js';
import { importEncPublic, importSigPublic } from './crypto.js';
import { keyNeeded } from './verify.js';

export class Directory {
  constructor(api) {
    this.api = api;
    this.users = new Map(); // user id -> {name, devices: Map(kid -> device), fetched}
    this.keys = new Map(); // "enc:<spki>" / "sig:<spki>" -> CryptoKey promise
  }

  /**
   * A user's devices. `refresh` asks the server again; when it cannot be reached and
   * `offline` allows it, the last known set is used (so a message can be written offline).
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
    const devices = new Map();
    for (const k of profile.keys ?? []) devices.set(k.kid, { kid: k.kid, sid: k.sid, enc: k.enc, sig: k.sig, revokedAt: null });
    for (const k of profile.revoked ?? []) {
      devices.set(k.kid, { kid: k.kid, sid: k.sid, enc: k.enc, sig: k.sig, revokedAt: k.revoked_at });
    }
    const entry = { name: profile.username, devices, fetched: Date.now() };
    this.users.set(userId, entry);
    return entry;
  }

  static live(entry) {
    return [...entry.devices.values()].filter((d) => d.revokedAt === null);
  }

  /** Sorted [[kid, sid], ...] of the live devices: what the safety number covers. */
  static pairs(entry) {
    return Directory.live(entry).map((d) => [d.kid, d.sid])
      .sort((x, y) => compareCodePoints(x[0], y[0]) || compareCodePoints(x[1], y[1]));
  }

  /**
   * The key verifyFrame needs for `frame` (context: {room, members}): {device, sigPublic};
   * {device: null} for a device the sender never published (asked again once, in case it
   * is new); {device: null, error} when the directory cannot be reached; null when the
   * frame is refused before any key is needed.
   */
  async keyFor(frame, context) {
    const need = keyNeeded(frame, context);
    if (!need) return null;
    const name = context.members[need.user];
    let device;
    try {
      device = (await this.get(need.user, name)).devices.get(need.kid);
      if (!device) device = (await this.get(need.user, name, { refresh: true })).devices.get(need.kid);
    } catch (err) {
      return { device: null, error: err.message };
    }
    if (!device) return { device: null };
    let sigPublic = null;
    try {
      sigPublic = await this.sigKey(device);
    } catch {
      sigPublic = null; // an SPKI that does not import verifies nothing: bad_signature
    }
    return { device, sigPublic };
  }

  encKey(device) {
    return this.imported(`enc:${device.enc}`, () => importEncPublic(device.enc));
  }

  sigKey(device) {
    return this.imported(`sig:${device.sig}`, () => importSigPublic(device.sig));
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
