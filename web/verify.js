// What every received envelope passes before anything of it is shown, whether a message
// in the open conversation, a preview in the list, a receipt or a typing signal: its
// outer shape, addressed to this room by its sender (one of the room's two members),
// the sending device in the sender's key directory (live or revoked), its signature,
// and for a signal that it stays outside the message chain. Pure checks over the
// directory and WebCrypto; the message chain is the conversation's (chain.js).

import { ALG, openEnvelope, verifySignature } from './envelope.js';

/**
 * Check one `message` or `typing` frame. members: {id: name} of the room's two users.
 * Returns {device, alert}: the sending device when it verifies, else an alert
 * ({kind, detail}) to show instead.
 */
export async function verifyFrame(frame, { dir, room, members }) {
  const env = frame.body;
  const fail = (kind, detail) => ({ device: null, alert: { kind, detail } });
  if (!env || typeof env !== 'object' || env.v !== 1 || env.alg !== ALG) {
    return fail('malformed', 'this is not an envelope v1');
  }
  const sender = frame.sender;
  if (!Object.hasOwn(members, sender)) return fail('mismatch', 'it comes from someone outside this conversation');
  const kind = frame.kind ?? 'typing';
  if (env.sender !== sender || env.room !== room || frame.room !== room || env.kind !== kind) {
    return fail('mismatch', 'the envelope names another sender, room or kind');
  }
  const name = members[sender];
  let device;
  try {
    let entry = await dir.get(sender, name);
    device = entry.devices.get(env.from);
    if (!device) {
      entry = await dir.get(sender, name, { refresh: true });
      device = entry.devices.get(env.from);
    }
  } catch (err) {
    return fail('unknown_key', `${name}’s keys could not be fetched: ${err.message}`);
  }
  if (!device) return fail('unknown_key', `signed by a key ${name} never published`);
  let valid = false;
  try {
    valid = await verifySignature(env, await dir.sigKey(device));
  } catch {
    valid = false;
  }
  if (!valid) return fail('bad_signature', `the signature does not match ${name}’s key`);
  const signal = kind === 'receipt' || kind === 'typing';
  if (signal ? env.seq !== 0 || env.prev !== '' : !Number.isSafeInteger(env.seq) || env.seq < 1
      || typeof env.prev !== 'string') {
    return fail('malformed', 'the chain fields are invalid');
  }
  return { device, alert: null };
}

/** Verify, then decrypt with this browser's device: {content, alert}. */
export async function openFrame(frame, context, myDevice) {
  const { alert } = await verifyFrame(frame, context);
  if (alert) return { content: null, alert };
  try {
    return { content: await openEnvelope(frame.body, myDevice), alert: null };
  } catch (err) {
    return { content: null, alert: { kind: 'undecryptable', detail: err.message } };
  }
}
