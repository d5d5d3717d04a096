// Per-(room, sending device) hash chains, as a conversation view sees them.
//
// Each device numbers its envelopes in a room from 1 and names the previous one's hash
// (client/chain.py). A view loads the newest history page first, then live messages, then
// older pages as the user scrolls up, so the links it holds are a window of each chain.
// Within that window a receiver can tell a re-delivery (same seq, same hash, same id), a
// replay (a seq seen before under another envelope or id), a fork (a `prev` that is not
// the hash of the seq before) and a gap (a hole in the seq numbers, or a chain that does
// not start at 1 once the first page of history is loaded).

export class ChainBook {
  constructor() {
    this.devices = new Map(); // device kid -> Map(seq -> {hash, prev, id})
    this.atStart = false; // the oldest history page is loaded
    this.reported = new Set();
  }

  links(device) {
    let links = this.devices.get(device);
    if (!links) {
      links = new Map();
      this.devices.set(device, links);
    }
    return links;
  }

  newest(device) {
    const links = this.devices.get(device);
    return links && links.size ? Math.max(...links.keys()) : 0;
  }

  /**
   * Record one verified envelope and say what it means: {kind, detail, show}.
   * `live` envelopes (pushed or replayed after the newest page) must extend the chain.
   */
  add(device, seq, prev, hash, id, { live = false } = {}) {
    const links = this.links(device);
    const known = links.get(seq);
    if (known) {
      if (known.hash === hash && known.id === id) return { kind: 'duplicate', show: false };
      return { kind: 'replay', detail: `message #${seq} of this device arrived again`, show: false };
    }
    const newest = this.newest(device);
    if (live && newest && seq < newest) {
      return { kind: 'replay', detail: `#${seq} arrived after #${newest}`, show: false };
    }
    links.set(seq, { hash, prev, id });
    const before = links.get(seq - 1);
    if (before && before.hash !== prev) {
      return { kind: 'fork', detail: `#${seq} does not follow the #${seq - 1} this device sent`, show: true };
    }
    const after = links.get(seq + 1);
    if (after && after.prev !== hash) {
      return { kind: 'fork', detail: `#${seq + 1} does not follow #${seq}`, show: true };
    }
    return { kind: 'ok', show: true };
  }

  /** Holes in the loaded window of these devices' chains, each reported once. */
  gaps(devices) {
    const out = [];
    for (const device of devices) {
      const links = this.devices.get(device);
      if (!links || !links.size) continue;
      const seqs = [...links.keys()].sort((a, b) => a - b);
      const holes = [];
      if (this.atStart && seqs[0] > 1) holes.push([1, seqs[0] - 1, seqs[0]]);
      for (let i = 1; i < seqs.length; i += 1) {
        if (seqs[i] > seqs[i - 1] + 1) holes.push([seqs[i - 1] + 1, seqs[i] - 1, seqs[i]]);
      }
      for (const [from, to, at] of holes) {
        const key = `${device}/${from}/${to}`;
        if (this.reported.has(key)) continue;
        this.reported.add(key);
        const what = from === to ? `message #${from}` : `messages #${from}..#${to}`;
        out.push({ device, from, to, id: links.get(at).id, detail: `${what} of this device are missing` });
      }
    }
    return out;
  }

  /**
   * Compare with the newest link of each chain this browser saw before ({device: {seq,
   * hash}}): a different envelope at that seq, or a chain that now ends before it, means
   * the history changed since.
   */
  checkHeads(heads) {
    const out = [];
    for (const [device, head] of Object.entries(heads)) {
      const links = this.devices.get(device);
      if (!links || !links.size) continue;
      const at = links.get(head.seq);
      if (at && at.hash !== head.hash) {
        out.push({ kind: 'fork', device, id: at.id,
          detail: `#${head.seq} differs from the one this browser saw before` });
      } else if (!at && this.newest(device) < head.seq) {
        out.push({ kind: 'gap', device, id: null,
          detail: `messages up to #${head.seq}, seen here before, are missing from the history` });
      }
    }
    return out;
  }

  /** The newest link of each device: what to remember for next time. */
  heads() {
    const out = {};
    for (const [device, links] of this.devices) {
      if (!links.size) continue;
      const seq = this.newest(device);
      out[device] = { seq, hash: links.get(seq).hash };
    }
    return out;
  }
}
