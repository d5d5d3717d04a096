// Sealing what this browser sends: to every live device of the friend and of this user
// (so the user's other devices can read it too), asked afresh (the last known set when
// offline). Messages are sealed by the conversation (they are links of its chain);
// signals (receipts, typing) here, outside the chain.

import { b64u } from './codec.js';
import { randomBytes } from './crypto.js';
import { Directory } from './directory.js';
import { sealEnvelope } from './envelope.js';

export function roomId(a, b) {
  return a < b ? `${a}.${b}` : `${b}.${a}`;
}

export function newId() {
  return b64u(randomBytes(16));
}

/** [{kid, key}] of every live device of both; throws if the friend has none. */
export async function recipients(dir, me, peer) {
  const [theirs, mine] = await Promise.all([
    dir.get(peer.id, peer.name, { refresh: true, offline: true }),
    dir.get(me.id, me.name, { refresh: true, offline: true }),
  ]);
  const peerDevices = Directory.live(theirs);
  if (!peerDevices.length) throw new Error(`${peer.name} has not set up a device yet`);
  return Promise.all([...peerDevices, ...Directory.live(mine)].map(
    async (d) => ({ kid: d.kid, key: await dir.encKey(d) })));
}

/** A receipt or typing envelope from this device to the room with `peer`. */
export async function sealSignal({ dir, me, device, peer, kind, content }) {
  return sealEnvelope({
    room: roomId(me.id, peer.id), sender: me.id, device, seq: 0, prev: '', kind,
    meta: content.meta, data: content.data, recipients: await recipients(dir, me, peer),
  });
}
