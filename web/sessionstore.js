// This browser device's prekeys and its Double Ratchet sessions with other devices, as
// client/sessions.py keeps them (docs/sessions.md), sealed at rest (atrest.js), and the one
// thing envelopes need of them: a content key sealed to a device, and opened from one.
//
// Sessions are kept per peer device, most recently used first, at most MAX_SESSIONS: two
// devices that started a session with each other at the same moment each hold two, and the
// one that last opened a message is the one they send on (Signal's Sesame rule).
//
// Every tab of a browser profile is the same device: each read-modify-write of the sessions
// and prekeys runs under one Web Lock per device, so two tabs never advance a ratchet from
// the same state (one message key for two messages) nor answer one prekey message twice.

import * as atrest from './atrest.js';
import { b64u, compareCodePoints, unb64u } from './codec.js';
import { wrap } from './crypto.js';
import { KEY_ID_MAX, signBundle, verifyBundle } from './prekeys.js';
import { generateKeyPair, publicRaw, RatchetError, Session, x3dhInitiate, x3dhRespond } from './ratchet.js';
import * as store from './store.js';

// contracts/prekeys.py
export const MAX_ONE_TIME = 100;
export const REFILL_BELOW = 20;
export const MAX_SESSIONS = 3; // per peer device
export const SPK_ROTATE_MS = 7 * 86_400_000; // a new signed prekey this often (client/sessions.py)
const OLD_SPKS = 2; // replaced signed prekeys kept, for messages built on a bundle claimed before
const MAX_UNUSED_ONE_TIME = 4 * MAX_ONE_TIME; // private halves kept for claimed-but-unused keys

function withLock(name, fn) {
  return navigator.locks ? navigator.locks.request(name, fn) : fn();
}

/** The bundle is this user's device `kid`'s, signed by that device's key (sigPublic). */
export async function bundleVerifies(bundle, user, kid, sigPublic) {
  if (!bundle || bundle.user !== user || bundle.kid !== kid || bundle.v !== 1) return false;
  try {
    return await verifyBundle(bundle, sigPublic);
  } catch {
    return false;
  }
}

export class DeviceSessions {
  /** device: this browser's device ({kid, sig}). */
  constructor(device) {
    this.device = device;
    this.kid = device.kid;
    this.known = new Set(); // peer kids with a session (sessions are never dropped)
  }

  locked(fn) {
    return withLock(`duet-sessions/${this.kid}`, fn);
  }

  prekeysName() {
    return `${this.kid}/prekeys`;
  }

  peerName(kid) {
    return `${this.kid}/peer/${kid}`;
  }

  read(name) {
    return atrest.read('sessions', name);
  }

  entry(name, value) {
    return atrest.entry('sessions', name, value);
  }

  // -- prekeys ---------------------------------------------------------------------------
  /** Whether the signed prekey is older than SPK_ROTATE_MS (or not made yet). */
  async spkDue(now = Date.now()) {
    const d = await this.read(this.prekeysName());
    return !d || now - (d.spk.made ?? 0) > SPK_ROTATE_MS;
  }

  /**
   * PUT /api/prekeys's body: the bundle (made on first use; with a new signed prekey once
   * the current one is SPK_ROTATE_MS old, the previous ones kept for messages built on
   * them) and `wantOneTime` new one-time prekeys, whose private halves are kept before
   * they are published.
   */
  prekeyUpload(user, wantOneTime, now = Date.now()) {
    return this.locked(async () => {
      let d = await this.read(this.prekeysName());
      if (!d) {
        d = {
          ik: b64u((await generateKeyPair()).privateRaw),
          spk: { id: 1, private: b64u((await generateKeyPair()).privateRaw), made: now },
          one_time: {}, next_id: 1,
        };
      } else if (now - (d.spk.made ?? 0) > SPK_ROTATE_MS) {
        d.old_spk = [d.spk, ...(d.old_spk ?? [])].slice(0, OLD_SPKS);
        d.spk = { id: (d.spk.id % KEY_ID_MAX) + 1, private: b64u((await generateKeyPair()).privateRaw), made: now };
      }
      const fresh = [];
      for (let i = 0; i < wantOneTime; i += 1) {
        const pair = await generateKeyPair();
        const id = d.next_id;
        d.next_id = id < KEY_ID_MAX ? id + 1 : 1;
        d.one_time[String(id)] = b64u(pair.privateRaw);
        fresh.push({ id, key: b64u(pair.publicRaw) });
      }
      // Claimed keys whose messages never came: the oldest go.
      const ids = Object.keys(d.one_time).sort((a, b) => Number(a) - Number(b));
      for (const old of ids.slice(0, Math.max(0, ids.length - MAX_UNUSED_ONE_TIME))) delete d.one_time[old];
      await store.write([await this.entry(this.prekeysName(), d)]);
      const bundle = await signBundle(this.device.sig, {
        user, kid: this.kid,
        ik: b64u(await publicRaw(unb64u(d.ik))),
        spk: { id: d.spk.id, key: b64u(await publicRaw(unb64u(d.spk.private))) },
      });
      return { bundle, one_time: fresh };
    });
  }

  async hasSession(kid) {
    if (this.known.has(kid)) return true;
    const held = (await store.get('sessions', this.peerName(kid))) !== undefined;
    if (held) this.known.add(kid);
    return held;
  }

  // -- sealing and opening a content key ---------------------------------------------------
  /**
   * One `keys` entry per target ({kid, rsa, bundle, oneTime}), sorted by kid: a ratchet
   * message where a session exists or a verified bundle allows one, else the RSA-OAEP wrap
   * (a device that published no bundle). The sessions are written before this returns, so
   * the envelope never leaves with a state that could be used again.
   */
  seal(contentKey, targets) {
    return this.locked(async () => {
      const entries = [];
      const writes = [];
      let prekeys;
      for (const t of [...targets].sort((x, y) => compareCodePoints(x.kid, y.kid))) {
        let held = (await this.read(this.peerName(t.kid))) ?? [];
        if (!held.length && t.bundle) {
          if (prekeys === undefined) prekeys = await this.read(this.prekeysName());
          const started = prekeys ? await this.initiate(prekeys, t) : null;
          if (started) held = [started];
        }
        if (!held.length) {
          entries.push({ kid: t.kid, wk: b64u(await wrap(t.rsa, contentKey)) });
          continue;
        }
        const session = new Session(held[0].state);
        const { header, ct } = await session.encrypt(contentKey);
        held[0].state = session.state;
        entries.push({ kid: t.kid, h: header, pre: structuredClone(session.state.prekey ?? null), wk: b64u(ct) });
        writes.push(await this.entry(this.peerName(t.kid), held));
      }
      if (writes.length) await store.write(writes);
      for (const e of entries) if (e.h) this.known.add(e.kid);
      return entries;
    });
  }

  /** X3DH with a verified bundle: the new session's record, or null if the keys it holds
   * are unusable (a low-order key: the device then gets the RSA entry). */
  async initiate(d, t) {
    try {
      const ek = await generateKeyPair();
      const ik = unb64u(d.ik);
      const peerSpk = unb64u(t.bundle.spk.key);
      const opk = t.oneTime ? unb64u(t.oneTime.key) : null;
      const { sk, ad } = await x3dhInitiate(ik, ek.privateRaw, unb64u(t.bundle.ik), peerSpk, opk);
      const prekey = {
        ik: b64u(await publicRaw(ik)), ek: b64u(ek.publicRaw), spk: t.bundle.spk.id,
        opk: t.oneTime ? t.oneTime.id : null,
      };
      const session = await Session.initiate(sk, ad, peerSpk, prekey);
      return { ek: prekey.ek, state: session.state };
    } catch (err) {
      if (err instanceof RatchetError) return null;
      throw err;
    }
  }

  /**
   * The content key of a ratchet entry from the device `senderKid`. Throws RatchetError
   * (its code says why); the sessions change only when it opens. Under the same lock:
   * kept() first (the message opened already, in this tab or another: its kept key), and
   * keep(key), write entries stored in the same transaction as the sessions, so a message
   * whose ratchet step is stored is always kept too.
   */
  open(senderKid, entry, { kept = async () => null, keep = async () => [] } = {}) {
    return this.locked(async () => {
      const already = await kept();
      if (already) return already;
      const header = entry.h;
      const pre = entry.pre ?? null;
      let wk;
      try {
        wk = unb64u(String(entry.wk ?? ''));
      } catch {
        throw new RatchetError('bad_message', 'a malformed ratchet message');
      }
      if (!header || typeof header !== 'object' || (pre !== null && typeof pre !== 'object')) {
        throw new RatchetError('bad_message', 'a malformed ratchet header');
      }
      const name = this.peerName(senderKid);
      const held = (await this.read(name)) ?? [];
      if (pre !== null && !held.some((s) => s.ek === pre.ek)) {
        const prekeys = await this.read(this.prekeysName());
        const { record, key } = await this.respond(prekeys, pre, header, wk);
        held.unshift(record);
        held.splice(MAX_SESSIONS);
        const writes = [await this.entry(name, held)];
        if (pre.opk !== null && pre.opk !== undefined) {
          delete prekeys.one_time[String(pre.opk)]; // used once, then gone
          writes.push(await this.entry(this.prekeysName(), prekeys));
        }
        await store.write([...writes, ...(await keep(key))]);
        this.known.add(senderKid);
        return key;
      }
      let first = null;
      for (let i = 0; i < held.length; i += 1) {
        const session = new Session(held[i].state);
        let key;
        try {
          key = await session.decrypt(header, wk);
        } catch (err) {
          if (!(err instanceof RatchetError)) throw err;
          first ??= err;
          continue;
        }
        held[i].state = session.state;
        held.unshift(...held.splice(i, 1));
        await store.write([await this.entry(name, held), ...(await keep(key))]);
        return key;
      }
      if (!held.length) {
        throw new RatchetError('no_session', 'no session with the sending device, and the message starts none');
      }
      throw first;
    });
  }

  async respond(d, pre, header, wk) {
    if (!d) throw new RatchetError('prekey_gone', 'this device has published no prekeys');
    const signed = [d.spk, ...(d.old_spk ?? [])].find((k) => k.id === pre.spk);
    if (!signed) {
      throw new RatchetError('prekey_gone', `signed prekey ${pre.spk} is not this device’s (or was replaced long ago)`);
    }
    let opk = null;
    if (pre.opk !== null && pre.opk !== undefined) {
      const raw = Object.hasOwn(d.one_time, String(pre.opk)) ? d.one_time[String(pre.opk)] : null;
      if (raw === null) {
        throw new RatchetError('prekey_gone', `one-time prekey ${pre.opk} was used already or never made here`);
      }
      opk = unb64u(raw);
    }
    let peerIk;
    let peerEk;
    try {
      peerIk = unb64u(pre.ik);
      peerEk = unb64u(pre.ek);
    } catch {
      throw new RatchetError('bad_message', 'a malformed prekey header');
    }
    const spk = unb64u(signed.private);
    const { sk, ad } = await x3dhRespond(unb64u(d.ik), spk, opk, peerIk, peerEk);
    const session = Session.respond(sk, ad, spk);
    const key = await session.decrypt(header, wk);
    return { record: { ek: pre.ek, state: session.state }, key };
  }
}

/**
 * Publish this device's bundle if the directory has none or its signed prekey is due for
 * rotation, and top its one-time prekeys up to MAX_ONE_TIME when fewer than REFILL_BELOW
 * are left (client/sdk.py publish_prekeys). One tab at a time, so two tabs starting
 * together do not both fill the stock. How many it holds now.
 */
export function publishPrekeys(api, sessions, userId) {
  return withLock(`duet-prekeys/${sessions.kid}`, async () => {
    const mine = (await api.prekeyStock()).find((s) => s.kid === sessions.kid);
    const left = mine ? mine.one_time_left : 0;
    const now = Date.now();
    if (mine && left >= REFILL_BELOW && !(await sessions.spkDue(now))) return left;
    const upload = await sessions.prekeyUpload(userId, MAX_ONE_TIME - left, now);
    return (await api.publishPrekeys(upload)).one_time_left;
  });
}
