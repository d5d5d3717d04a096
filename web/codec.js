// Bytes and text: base64url without padding, UTF-8, and canonical JSON.
//
// Canonical JSON is what the Python SDK writes with
// json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False):
// object keys sorted by Unicode code point, no white space, non-ASCII characters as they
// are. Key order is never taken from insertion order.

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8'); // invalid bytes become U+FFFD, as errors="replace"

export class CodecError extends Error {}

export function utf8(text) {
  return encoder.encode(text);
}

export function fromUtf8(bytes) {
  return decoder.decode(bytes);
}

export function bytes(data) {
  return data instanceof Uint8Array ? data : new Uint8Array(data);
}

export function concat(...parts) {
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function b64u(data) {
  const raw = bytes(data);
  let binary = '';
  for (let i = 0; i < raw.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, raw.subarray(i, i + 0x8000));
  }
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export function unb64u(text) {
  if (typeof text !== 'string' || !/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) {
    throw new CodecError('malformed base64url');
  }
  const padded = text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4);
  const binary = atob(padded);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) out[i] = binary.charCodeAt(i);
  return out;
}

/** Compare two strings by Unicode code point (Python's order), not by UTF-16 unit. */
export function compareCodePoints(a, b) {
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const x = a.codePointAt(i);
    const y = b.codePointAt(j);
    if (x !== y) return x < y ? -1 : 1;
    i += x > 0xffff ? 2 : 1;
    j += y > 0xffff ? 2 : 1;
  }
  if (i < a.length) return 1;
  if (j < b.length) return -1;
  return 0;
}

/** Canonical JSON text of a value made of objects, arrays, strings, integers, booleans, null. */
export function canonical(value) {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      // Envelopes hold integers only; floats print differently in Python and JS.
      if (!Number.isSafeInteger(value)) throw new CodecError(`not a safe integer: ${value}`);
      return String(value === 0 ? 0 : value);
    case 'string':
      // JSON.stringify escapes exactly what Python's json (ensure_ascii=False) escapes.
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
      const keys = Object.keys(value).sort(compareCodePoints);
      return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(',')}}`;
    }
    default:
      throw new CodecError(`cannot encode a ${typeof value} as JSON`);
  }
}

export function canonicalBytes(value) {
  return utf8(canonical(value));
}
