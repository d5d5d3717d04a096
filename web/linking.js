// This browser's place in the account (docs/protocol.md "Device lists", "Linking a device").
// Its device keys are made once (RSA-OAEP 2048 and ECDSA P-256, private keys not
// extractable), kept in IndexedDB and published on every login; then the account's signed
// device list says what the browser is:
//   identity  it holds the identity key: it made the account's first list
//   linked    the list the identity key signed names it
//   pending   it waits until the user approves it on the device that holds the identity
//             key, comparing its link code; until then nothing is encrypted to it
// Both steps run under one Web Lock per user: two tabs never make two devices or two
// identity keys.

import { ApiError } from './api.js';
import { generateDevice } from './crypto.js';
import { deviceUpload } from './envelope.js';
import { firstList, generateIdentity, listed, signList } from './identity.js';
import * as store from './store.js';

const LABEL = 'web browser';
export const POLL_MS = 2000;

export class Declined extends Error {
  constructor() {
    super('This browser’s request was declined. Log out, then log in again to ask again.');
  }
}

function withLock(name, fn) {
  return navigator.locks ? navigator.locks.request(name, fn) : fn();
}

/** This browser's device for `me` ({id, name}), published, and its state: {device, state}. */
export function enrol(api, dir, me) {
  return withLock(`duet-device/${me.id}`, async () => place(api, dir, me, await publishedDevice(api, me.id)));
}

/** Does this browser hold the identity key that signed the user's trusted list (`entry`)? */
export function holdsIdentity(device, entry) {
  return Boolean(device.identity) && entry.identity !== null && device.identitySpki === entry.identity;
}

function isLive(entry, kid) {
  const d = entry.devices.get(kid);
  return Boolean(d) && d.revokedAt === null;
}

async function newDevice(userId, old) {
  const device = { ...(await generateDevice()), created: Date.now() };
  // An identity key outlives the device keys made beside it.
  if (old && old.identity) Object.assign(device, { identity: old.identity, identitySpki: old.identitySpki });
  await store.put('devices', userId, device);
  return device;
}

async function publishedDevice(api, userId) {
  let device = (await store.get('devices', userId)) ?? (await newDevice(userId, null));
  for (let attempt = 0; ; attempt += 1) {
    try {
      await api.publishKeys([await deviceUpload(device, userId, LABEL)]);
      return device;
    } catch (err) {
      // This device was revoked or declined (from another device): start over with new keys.
      if (attempt || !(err instanceof ApiError && err.status === 409 && /revoked/.test(err.message))) throw err;
      device = await newDevice(userId, device);
    }
  }
}

/** The directory's entry for this device's keys (they were just published). */
function ownKey(profile, device) {
  const key = (profile.keys ?? []).find((k) => k.kid === device.kid);
  if (!key) throw new Error('the server does not list this browser’s keys');
  return key;
}

async function place(api, dir, me, published) {
  let device = published;
  let profile = await api.user(me.name);
  if (!profile.device_list) {
    // The account's first device: it makes the identity key and signs the first list.
    if (!device.identity) {
      const identity = await generateIdentity();
      device = { ...device, identity: identity.key, identitySpki: identity.spki };
      await store.put('devices', me.id, device);
    }
    const list = firstList(me.id, device.identitySpki, ownKey(profile, device));
    try {
      await api.putDeviceList(await signList(device.identity, list));
      await dir.pin(me.id, list);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 409)) throw err; // another device was first
    }
    profile = await api.user(me.name);
  }
  const entry = await dir.entryOf(me.id, profile);
  if (!holdsIdentity(device, entry)) return { device, state: isLive(entry, device.kid) ? 'linked' : 'pending' };
  if (!isLive(entry, device.kid)) await relist(api, dir, me, device, entry, profile);
  return { device, state: 'identity' };
}

/**
 * The identity key's own device lost its keys on the server (revoked there) and made new
 * ones: the next list names them, and moves listed devices the server no longer holds
 * keys for to the revoked ones (the server takes no list naming them).
 */
async function relist(api, dir, me, device, entry, profile) {
  const now = Date.now();
  const held = new Set((profile.keys ?? []).map((k) => k.kid));
  const gone = entry.list.devices.filter((d) => !held.has(d.kid));
  const list = {
    ...entry.list, version: entry.list.version + 1,
    devices: [...entry.list.devices.filter((d) => held.has(d.kid)), listed(ownKey(profile, device), now)],
    revoked: [...entry.list.revoked, ...gone.map((d) => ({ ...d, revoked_at: now }))],
  };
  await api.putDeviceList(await signList(device.identity, list));
  await dir.pin(me.id, list);
}

/**
 * Wait, asking every POLL_MS, until the account's trusted list names this device: true;
 * false once `stopped()`. Throws Declined when the request was declined.
 */
export async function approval(api, dir, me, device, stopped) {
  while (!stopped()) {
    await new Promise((resolve) => { setTimeout(resolve, POLL_MS); });
    if (stopped()) break;
    let profile;
    try {
      profile = await api.user(me.name);
    } catch (err) {
      if (err instanceof ApiError && (err.status === 0 || err.status >= 500)) continue;
      throw err;
    }
    if ((profile.revoked ?? []).some((k) => k.kid === device.kid)) throw new Declined();
    if (isLive(await dir.entryOf(me.id, profile), device.kid)) return !stopped();
  }
  return false;
}
