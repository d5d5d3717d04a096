"""Envelope v1 and v2: build one (v2), and open either (verify, unwrap, decrypt). No I/O.
What v2 changes is said in contracts.envelope; docs/protocol.md has the bytes."""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from contracts.envelope import ALG, ALG_V3, sig_is_canonical

from . import crypto
from .errors import CryptoError

SIGNING_PREFIX = {1: b"duet-envelope-v1\n", 2: b"duet-envelope-v2\n",
                  3: b"duet-envelope-v3\n"}
VERSION = 2  # what seal() writes; seal_v3() writes v3


@dataclass(frozen=True)
class Content:
    """A message's plaintext: its metadata (mime type, file name) and payload bytes."""

    meta: dict[str, Any]
    data: bytes

    @classmethod
    def text(cls, text: str) -> Content:
        return cls({"mime": "text/plain;charset=utf-8"}, text.encode())

    @property
    def mime(self) -> str:
        return str(self.meta.get("mime", "application/octet-stream"))

    def as_text(self) -> str:
        return self.data.decode("utf-8", errors="replace")

    def encode(self) -> bytes:
        """4-byte big-endian length of the metadata JSON, the metadata JSON, the payload."""
        meta = crypto.canonical(self.meta)
        return struct.pack(">I", len(meta)) + meta + self.data

    @classmethod
    def decode(cls, raw: bytes) -> Content:
        if len(raw) < 4:
            raise CryptoError("plaintext too short")
        (n,) = struct.unpack(">I", raw[:4])
        if n > len(raw) - 4:
            raise CryptoError("plaintext metadata length out of range")
        try:
            meta = json.loads(raw[4:4 + n])
        except ValueError as exc:
            raise CryptoError("plaintext metadata is not JSON") from exc
        if not isinstance(meta, dict):
            raise CryptoError("plaintext metadata is not an object")
        return cls(meta, raw[4 + n:])


@dataclass(frozen=True)
class Recipient:
    kid: str
    key: rsa.RSAPublicKey


def signing_input(envelope: dict[str, Any]) -> bytes:
    """What the signature covers: the version's prefix, then every field but `sig` as
    canonical JSON."""
    prefix = SIGNING_PREFIX.get(envelope.get("v"))  # type: ignore[arg-type]
    if prefix is None:
        raise CryptoError(f"envelope version {envelope.get('v')!r} is not 1, 2 or 3")
    return prefix + crypto.canonical({k: v for k, v in envelope.items() if k != "sig"})


def envelope_hash(envelope: dict[str, Any]) -> str:
    """The chain link, base64url SHA-256: in v2 of the signing input (what no one but the
    signer can vary), in v1 of the whole envelope's canonical JSON."""
    signed = crypto.canonical(envelope) if envelope.get("v") == 1 else signing_input(envelope)
    return crypto.b64u(hashlib.sha256(signed).digest())


def seal(*, room: str, sender: str, device: crypto.DeviceKeys, seq: int, prev: str,
         kind: str, content: Content, recipients: list[Recipient]) -> dict[str, Any]:
    """Encrypt content for every recipient device and sign the result."""
    if not recipients:
        raise CryptoError("no recipient keys")
    key, iv = crypto.new_content_key()
    envelope: dict[str, Any] = {
        "v": VERSION, "alg": ALG, "room": room, "sender": sender, "from": device.kid,
        "seq": seq, "prev": prev, "kind": kind,
        "keys": [{"kid": r.kid, "wk": crypto.b64u(crypto.wrap(r.key, key))}
                 for r in sorted(recipients, key=lambda r: r.kid)],
        "iv": crypto.b64u(iv),
        "ct": crypto.b64u(crypto.seal(key, iv, content.encode())),
    }
    envelope["sig"] = crypto.b64u(crypto.sign(device.sig, signing_input(envelope)))
    return envelope


def seal_v3(*, room: str, sender: str, device: crypto.DeviceKeys, seq: int, prev: str,
            kind: str, content: Content,
            keys: Callable[[bytes], list[dict[str, Any]]]) -> tuple[dict[str, Any], bytes]:
    """Encrypt content, let `keys` seal the content key to each device (a ratchet message,
    or RSA-OAEP where there is no session: client.sessions), sign. Returns the envelope and
    the content key, which the sending device keeps in its own history."""
    key, iv = crypto.new_content_key()
    entries = keys(key)
    if not entries:
        raise CryptoError("no recipient devices")
    envelope: dict[str, Any] = {
        "v": 3, "alg": ALG_V3, "room": room, "sender": sender, "from": device.kid,
        "seq": seq, "prev": prev, "kind": kind, "keys": entries, "iv": crypto.b64u(iv),
        "ct": crypto.b64u(crypto.seal(key, iv, content.encode())),
    }
    envelope["sig"] = crypto.b64u(crypto.sign(device.sig, signing_input(envelope)))
    return envelope, key


def verify_signature(envelope: dict[str, Any], public: ec.EllipticCurvePublicKey) -> bool:
    """The signature verifies, and in v2 is in its one canonical low-s form."""
    sig = str(envelope.get("sig", ""))
    if envelope.get("v") != 1 and not sig_is_canonical(sig):
        return False
    try:
        return crypto.verify(public, signing_input(envelope), crypto.unb64u(sig))
    except CryptoError:
        return False


def own_entry(envelope: dict[str, Any], kid: str) -> dict[str, Any] | None:
    return next((k for k in envelope.get("keys") or () if isinstance(k, dict)
                 and k.get("kid") == kid), None)


def content_key(envelope: dict[str, Any], device: crypto.DeviceKeys) -> bytes:
    """This device's content key, unwrapped from its RSA-OAEP entry."""
    entry = own_entry(envelope, device.kid)
    if entry is None:
        raise CryptoError("the message holds no key for this device")
    if "h" in entry:
        raise CryptoError("a ratchet entry opens with the device's session (client.sessions)")
    return crypto.unwrap(device.enc, crypto.unb64u(str(entry["wk"])))


def open_content(envelope: dict[str, Any], device: crypto.DeviceKeys,
                 key: bytes | None = None) -> Content:
    """Decrypt with this device's content key (or `key`, from a history share). Verify the
    signature first."""
    key = key if key is not None else content_key(envelope, device)
    if len(key) != 32:
        raise CryptoError("content key of the wrong length")
    return Content.decode(crypto.unseal(key, crypto.unb64u(envelope["iv"]),
                                        crypto.unb64u(envelope["ct"])))
