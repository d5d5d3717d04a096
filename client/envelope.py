"""Envelope v1: build one, and open one (verify, unwrap, decrypt). No I/O."""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from contracts.envelope import ALG

from . import crypto
from .errors import CryptoError

SIGNING_PREFIX = b"duet-envelope-v1\n"


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
    """What the signature covers: every field but `sig`, as canonical JSON."""
    return SIGNING_PREFIX + crypto.canonical({k: v for k, v in envelope.items() if k != "sig"})


def envelope_hash(envelope: dict[str, Any]) -> str:
    """The chain link: base64url SHA-256 of the whole envelope's canonical JSON."""
    return crypto.b64u(hashlib.sha256(crypto.canonical(envelope)).digest())


def seal(*, room: str, sender: str, device: crypto.DeviceKeys, seq: int, prev: str,
         kind: str, content: Content, recipients: list[Recipient]) -> dict[str, Any]:
    """Encrypt content for every recipient device and sign the result."""
    if not recipients:
        raise CryptoError("no recipient keys")
    key, iv = crypto.new_content_key()
    envelope: dict[str, Any] = {
        "v": 1, "alg": ALG, "room": room, "sender": sender, "from": device.kid,
        "seq": seq, "prev": prev, "kind": kind,
        "keys": [{"kid": r.kid, "wk": crypto.b64u(crypto.wrap(r.key, key))}
                 for r in sorted(recipients, key=lambda r: r.kid)],
        "iv": crypto.b64u(iv),
        "ct": crypto.b64u(crypto.seal(key, iv, content.encode())),
    }
    envelope["sig"] = crypto.b64u(crypto.sign(device.sig, signing_input(envelope)))
    return envelope


def verify_signature(envelope: dict[str, Any], public: ec.EllipticCurvePublicKey) -> bool:
    try:
        signature = crypto.unb64u(str(envelope.get("sig", "")))
    except CryptoError:
        return False
    return crypto.verify(public, signing_input(envelope), signature)


def open_content(envelope: dict[str, Any], device: crypto.DeviceKeys) -> Content:
    """Unwrap this device's content key and decrypt. Verify the signature first."""
    wrapped = next((k["wk"] for k in envelope.get("keys", []) if k.get("kid") == device.kid),
                   None)
    if wrapped is None:
        raise CryptoError("the message holds no key for this device")
    key = crypto.unwrap(device.enc, crypto.unb64u(wrapped))
    if len(key) != 32:
        raise CryptoError("content key of the wrong length")
    return Content.decode(crypto.unseal(key, crypto.unb64u(envelope["iv"]),
                                        crypto.unb64u(envelope["ct"])))
