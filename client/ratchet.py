"""X3DH and the Double Ratchet on `cryptography`, byte for byte those of web/ratchet.js.

Signal's two specifications (X3DH, rev. 1; the Double Ratchet, rev. 1) with X25519,
HKDF-SHA-256, HMAC-SHA-256 and AES-256-GCM; what duet fixes where they leave a choice is in
docs/sessions.md, and contracts/prekeys.py holds the constants. A session's state is a plain
dict of base64url strings and integers (`Session.state`), so a client can keep it at rest
and a test can copy it. No I/O.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from contracts.prekeys import (
    MAX_OLD_CHAINS,
    MAX_SKIP,
    MAX_SKIPPED,
    MESSAGE_INFO,
    ROOT_INFO,
    X3DH_INFO,
)

from .crypto import b64u, unb64u
from .errors import CryptoError

KeyGen = Callable[[], X25519PrivateKey]


class RatchetError(CryptoError):
    """A message the session cannot open, with a code the clients show (docs/sessions.md)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code, self.detail = code, detail


def public_raw(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def private_raw(key: X25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def dh(private: X25519PrivateKey, public: bytes) -> bytes:
    """X25519; an all-zero result (a low-order public key) is refused."""
    try:
        out = private.exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError as exc:
        raise RatchetError("bad_key", "a public key of low order") from exc
    if not any(out):
        raise RatchetError("bad_key", "a public key of low order")
    return out


def hkdf(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def kdf_rk(rk: bytes, dh_out: bytes) -> tuple[bytes, bytes]:
    out = hkdf(dh_out, rk, ROOT_INFO, 64)
    return out[:32], out[32:]


def kdf_ck(ck: bytes) -> tuple[bytes, bytes]:
    """(next chain key, message key)."""
    return (hmac.new(ck, b"\x02", hashlib.sha256).digest(),
            hmac.new(ck, b"\x01", hashlib.sha256).digest())


def encrypt(mk: bytes, plaintext: bytes, ad: bytes) -> bytes:
    okm = hkdf(mk, bytes(32), MESSAGE_INFO, 44)
    return AESGCM(okm[:32]).encrypt(okm[32:], plaintext, ad)


def decrypt(mk: bytes, ciphertext: bytes, ad: bytes) -> bytes:
    okm = hkdf(mk, bytes(32), MESSAGE_INFO, 44)
    try:
        return AESGCM(okm[:32]).decrypt(okm[32:], ciphertext, ad)
    except InvalidTag as exc:
        raise RatchetError("bad_message", "the message failed authentication") from exc


@dataclass(frozen=True)
class Header:
    dh: bytes
    pn: int
    n: int

    def encode(self) -> bytes:
        """The bytes the AEAD authenticates: dh (32) ‖ pn (4, big-endian) ‖ n (4)."""
        return self.dh + struct.pack(">II", self.pn, self.n)

    def wire(self) -> dict[str, Any]:
        return {"dh": b64u(self.dh), "pn": self.pn, "n": self.n}

    @classmethod
    def from_wire(cls, h: dict[str, Any]) -> Header:
        try:
            key, pn, n = unb64u(h["dh"]), h["pn"], h["n"]
        except (KeyError, TypeError) as exc:
            raise RatchetError("bad_message", "a malformed ratchet header") from exc
        if (len(key) != 32 or not isinstance(pn, int) or not isinstance(n, int)
                or not 0 <= pn < 2**32 or not 0 <= n < 2**32):
            raise RatchetError("bad_message", "a malformed ratchet header")
        return cls(key, pn, n)


# ---- X3DH ----------------------------------------------------------------------------

def x3dh_secret(dhs: list[bytes]) -> bytes:
    return hkdf(b"\xff" * 32 + b"".join(dhs), bytes(32), X3DH_INFO, 32)


def x3dh_initiate(ik: X25519PrivateKey, ek: X25519PrivateKey, peer_ik: bytes, peer_spk: bytes,
                  peer_opk: bytes | None) -> tuple[bytes, bytes]:
    """The sender's side: (SK, AD). The bundle's signature is checked before this."""
    dhs = [dh(ik, peer_spk), dh(ek, peer_ik), dh(ek, peer_spk)]
    if peer_opk is not None:
        dhs.append(dh(ek, peer_opk))
    return x3dh_secret(dhs), public_raw(ik) + peer_ik


def x3dh_respond(ik: X25519PrivateKey, spk: X25519PrivateKey, opk: X25519PrivateKey | None,
                 peer_ik: bytes, peer_ek: bytes) -> tuple[bytes, bytes]:
    """The receiver's side of the same: (SK, AD)."""
    dhs = [dh(spk, peer_ik), dh(ik, peer_ek), dh(spk, peer_ek)]
    if opk is not None:
        dhs.append(dh(opk, peer_ek))
    return x3dh_secret(dhs), peer_ik + public_raw(ik)


# ---- The Double Ratchet ---------------------------------------------------------------

def _priv(raw: str) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(unb64u(raw))


class Session:
    """One device's Double Ratchet with one other device.

    `state` holds everything (base64url strings, integers, None); message keys are deleted
    as they are used. Skipped keys are kept (at most MAX_SKIPPED, oldest dropped) so a
    message that arrives late within MAX_SKIP still opens. `prekey` is the X3DH header the
    initiator repeats until it first hears back (docs/sessions.md).
    """

    def __init__(self, state: dict[str, Any], keygen: KeyGen = X25519PrivateKey.generate) -> None:
        self.state = state
        self._keygen = keygen

    @classmethod
    def initiate(cls, sk: bytes, ad: bytes, peer_spk: bytes, prekey: dict[str, Any],
                 keygen: KeyGen = X25519PrivateKey.generate) -> Session:
        own = keygen()
        rk, cks = kdf_rk(sk, dh(own, peer_spk))
        return cls({"v": 1, "ad": b64u(ad), "dhs": b64u(private_raw(own)),
                    "dhr": b64u(peer_spk), "rk": b64u(rk), "cks": b64u(cks), "ckr": None,
                    "ns": 0, "nr": 0, "pn": 0, "skipped": [], "old": [], "prekey": prekey}, keygen)

    @classmethod
    def respond(cls, sk: bytes, ad: bytes, spk: X25519PrivateKey,
                keygen: KeyGen = X25519PrivateKey.generate) -> Session:
        return cls({"v": 1, "ad": b64u(ad), "dhs": b64u(private_raw(spk)), "dhr": None,
                    "rk": b64u(sk), "cks": None, "ckr": None, "ns": 0, "nr": 0, "pn": 0,
                    "skipped": [], "old": [], "prekey": None}, keygen)

    def copy(self) -> Session:
        return Session(copy.deepcopy(self.state), self._keygen)

    def encrypt(self, plaintext: bytes) -> tuple[Header, bytes]:
        s = self.state
        if s["cks"] is None:
            raise RatchetError("no_session", "this side has not received a message yet")
        cks, mk = kdf_ck(unb64u(s["cks"]))
        header = Header(public_raw(_priv(s["dhs"])), s["pn"], s["ns"])
        s["cks"], s["ns"] = b64u(cks), s["ns"] + 1
        return header, encrypt(mk, plaintext, unb64u(s["ad"]) + header.encode())

    def decrypt(self, header: Header, ciphertext: bytes) -> bytes:
        """Open a message; the state changes only if it opens."""
        trial = copy.deepcopy(self.state)
        plaintext = _decrypt(trial, header, ciphertext, self._keygen)
        self.state = trial
        return plaintext


def _decrypt(s: dict[str, Any], header: Header, ct: bytes, keygen: KeyGen) -> bytes:
    ad = unb64u(s["ad"]) + header.encode()
    dh_b64 = b64u(header.dh)
    for i, (key, n, mk) in enumerate(s["skipped"]):
        if key == dh_b64 and n == header.n:
            plaintext = decrypt(unb64u(mk), ct, ad)
            del s["skipped"][i]
            return plaintext
    if dh_b64 in s["old"]:
        raise RatchetError("key_gone", "a message of an earlier chain whose key was used "
                           "or dropped")
    if dh_b64 != s["dhr"]:
        _skip(s, header.pn)
        if s["dhr"] is not None:
            s["old"] = [*s["old"], s["dhr"]][-MAX_OLD_CHAINS:]
        s["pn"], s["ns"], s["nr"], s["dhr"] = s["ns"], 0, 0, dh_b64
        rk, ckr = kdf_rk(unb64u(s["rk"]), dh(_priv(s["dhs"]), header.dh))
        own = keygen()
        rk, cks = kdf_rk(rk, dh(own, header.dh))
        s.update(rk=b64u(rk), ckr=b64u(ckr), cks=b64u(cks), dhs=b64u(private_raw(own)))
    elif header.n < s["nr"]:
        raise RatchetError("key_gone", f"message {header.n} of this chain was already "
                           "opened, or its key was dropped")
    _skip(s, header.n)
    ckr, mk = kdf_ck(unb64u(s["ckr"]))
    plaintext = decrypt(mk, ct, ad)
    s["ckr"], s["nr"] = b64u(ckr), s["nr"] + 1
    s["prekey"] = None  # heard back: the X3DH header has done its work
    return plaintext


def _skip(s: dict[str, Any], until: int) -> None:
    if s["ckr"] is None:
        return
    if until - s["nr"] > MAX_SKIP:
        raise RatchetError("too_far_ahead", f"{until - s['nr']} messages skipped in one chain "
                           f"(at most {MAX_SKIP})")
    ckr = unb64u(s["ckr"])
    while s["nr"] < until:
        ckr, mk = kdf_ck(ckr)
        s["skipped"].append([s["dhr"], s["nr"], b64u(mk)])
        s["nr"] += 1
    s["ckr"] = b64u(ckr)
    del s["skipped"][:max(0, len(s["skipped"]) - MAX_SKIPPED)]
