"""The account's identity key and its signed device list, as this client trusts them.

The identity key (ECDSA P-256) lives on the device that created the account, next to the
device keys and under the same passphrase. It signs device lists (contracts/devicelist.py).
For every user, this client pins the identity key first seen and the newest list it
verified; a later list must be signed by the pinned key with a version not older than the
pinned one, or it is not used (docs/protocol.md "Device lists").
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from contracts.devicelist import list_signing_input
from contracts.envelope import sig_is_canonical

from . import crypto
from .errors import CryptoError


def new_identity() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def identity_spki(key: ec.EllipticCurvePrivateKey) -> str:
    return crypto.b64u(crypto.spki(key.public_key()))


def now_ms() -> int:
    return int(time.time() * 1000)


def listed(device: dict[str, Any], added: int | None = None) -> dict[str, Any]:
    """A device of the directory (GET /api/users) as a device list names it."""
    return {"kid": device["kid"], "sid": device["sid"], "enc": device["enc"],
            "sig": device["sig"], "label": device.get("label"),
            "added": added if added is not None else now_ms()}


def sign_list(identity: ec.EllipticCurvePrivateKey, device_list: dict[str, Any]
              ) -> dict[str, Any]:
    sig = crypto.sign(identity, list_signing_input(device_list))
    return {"list": device_list, "sig": crypto.b64u(sig)}


def verify_list(signed: dict[str, Any], user: str) -> dict[str, Any]:
    """The list inside `signed`, if its identity key signed it for `user`; else CryptoError."""
    body, sig = signed.get("list"), signed.get("sig")
    if not isinstance(body, dict) or not isinstance(sig, str):
        raise CryptoError("not a signed device list")
    if body.get("v") != 1 or body.get("user") != user:
        raise CryptoError("a device list of another user or version")
    if not sig_is_canonical(sig):
        raise CryptoError("the device list's signature is not canonical")
    key = crypto.load_ec_public(str(body.get("identity", "")))
    if not crypto.verify(key, list_signing_input(body), crypto.unb64u(sig)):
        raise CryptoError("the device list is not signed by its identity key")
    return body


@dataclass
class Device:
    kid: str
    sid: str
    enc: str
    sig: str
    label: str | None = None
    added: int = 0
    revoked_at: int | None = None


@dataclass
class Directory:
    """A user's devices as this client trusts them: from the pinned, verified list."""

    identity: str | None = None  # the pinned identity key (SPKI), None: none yet
    version: int = 0
    devices: dict[str, Device] = field(default_factory=dict)
    # Uploaded to the server but in no list the identity signed: pending link requests,
    # or devices the server slipped in. They get no wrapped key.
    unlisted: list[dict[str, Any]] = field(default_factory=list)
    changed_to: dict[str, Any] | None = None  # a list under another identity, not accepted
    fetched: float = 0.0

    def live(self) -> list[Device]:
        return [d for d in self.devices.values() if d.revoked_at is None]

    @classmethod
    def from_list(cls, body: dict[str, Any] | None) -> Directory:
        directory = cls()
        if body is None:
            return directory
        directory.identity, directory.version = body["identity"], int(body["version"])
        for d in body["devices"]:
            directory.devices[d["kid"]] = Device(d["kid"], d["sid"], d["enc"], d["sig"],
                                                 d.get("label"), int(d["added"]))
        for d in body.get("revoked", []):
            directory.devices[d["kid"]] = Device(d["kid"], d["sid"], d["enc"], d["sig"],
                                                 d.get("label"), int(d["added"]),
                                                 int(d["revoked_at"]))
        return directory


@dataclass
class Pin:
    """What this client trusts of one user: the identity key and the newest list seen."""

    list: dict[str, Any]
    verified: bool = False  # the user compared safety numbers and said so

    @property
    def identity(self) -> str:
        return str(self.list["identity"])

    @property
    def version(self) -> int:
        return int(self.list["version"])


@dataclass(frozen=True)
class Judgement:
    """What a fetched list means against the pin: the list to use, and what to say."""

    use: dict[str, Any] | None
    alert: tuple[str, str] | None = None  # (kind, detail)
    changed_to: dict[str, Any] | None = None


def judge(pin: Pin | None, signed: dict[str, Any] | None, user: str) -> Judgement:
    """Pin on first use; afterwards only a list by the pinned key, not older, is used."""
    if signed is None:
        if pin is None:
            return Judgement(None)
        return Judgement(pin.list, ("bad_device_list", "the server no longer serves this "
                                    "user's signed device list; the pinned one is used"))
    try:
        body = verify_list(signed, user)
    except CryptoError as exc:
        return Judgement(pin.list if pin else None, ("bad_device_list", str(exc)))
    if pin is None:
        return Judgement(body)
    if body["identity"] != pin.identity:
        return Judgement(pin.list, ("identity_changed",
                                    "this user's identity key changed: compare safety "
                                    "numbers, then accept the new key to send again"), body)
    if int(body["version"]) < pin.version:
        return Judgement(pin.list, ("bad_device_list",
                                    f"the server served version {body['version']} of the "
                                    f"device list after version {pin.version}"))
    return Judgement(body)
