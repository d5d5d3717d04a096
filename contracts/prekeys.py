"""Prekey bundles and the fixed values of forward-secret sessions (docs/sessions.md).

A device publishes an X25519 identity key `ik` and a signed prekey `spk`, signed by its
ECDSA signing key (the `sid` its user's device list names), and a stock of one-time
prekeys (unsigned, as in Signal's X3DH: a forged one cannot make a session the server can
read, since the session still needs `ik` and `spk`, but the device it names cannot open
what is built on it; senders then see `prekey_gone` or `bad_message` alerts from it). A
sender fetches a bundle with one one-time prekey, which the directory then forgets; X3DH
and the Double Ratchet (client.ratchet, web/ratchet.js) take it from there.

Bytes: the bundle signature is over b"duet-prekeys-v1\\n" + canonical JSON of
{"ik", "kid", "spk": {"id", "key"}, "user", "v"} in envelope v2's form (raw r||s, low s,
canonical base64url).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from .envelope import Fingerprint, sig_is_canonical

BUNDLE_PREFIX = b"duet-prekeys-v1\n"
X3DH_INFO = b"duet-x3dh-v1"
ROOT_INFO = b"duet-ratchet-v1"
MESSAGE_INFO = b"duet-message-v1"
MAX_SKIP = 1000  # message keys one received chain may skip ahead (Signal's MAX_SKIP)
MAX_SKIPPED = 2000  # skipped message keys a session keeps; the oldest go first
MAX_OLD_CHAINS = 20  # earlier receiving ratchet keys a session remembers, to name the fault
MAX_ONE_TIME = 100  # one-time prekeys a device may hold at the directory
REFILL_BELOW = 20  # a client tops its stock up to MAX_ONE_TIME when fewer are left
KEY_ID_MAX = 2**32 - 1

X25519Key = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{43}$")]
KeyId = Annotated[int, Field(ge=0, le=KEY_ID_MAX)]


def _canonical_signature(value: str) -> str:
    if not sig_is_canonical(value):
        raise ValueError("a low-s ECDSA P-256 r||s in canonical base64url")
    return value


class PreKey(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: KeyId
    key: X25519Key = Field(description="Raw 32-byte X25519 public key, base64url.")


class Bundle(BaseModel):
    """What a device signs and publishes: its session identity key and signed prekey."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1]
    user: str
    kid: Fingerprint
    ik: X25519Key
    spk: PreKey
    sig: Annotated[str, AfterValidator(_canonical_signature)]


def bundle_signing_input(bundle: dict[str, Any]) -> bytes:
    body = {k: bundle[k] for k in ("ik", "kid", "spk", "user", "v")}
    return BUNDLE_PREFIX + json.dumps(body, sort_keys=True, separators=(",", ":"),
                                      ensure_ascii=False).encode()


class PreKeysUpload(BaseModel):
    """PUT /api/prekeys: a device's bundle (replacing its earlier one: a new signed prekey)
    and one-time prekeys added to its stock."""

    model_config = ConfigDict(extra="forbid")

    bundle: Bundle
    one_time: list[PreKey] = Field(default_factory=list, max_length=MAX_ONE_TIME)


class PreKeyStock(BaseModel):
    kid: Fingerprint
    spk_id: KeyId
    one_time_left: int = Field(description="One-time prekeys the directory still holds for "
                               f"this device; refill below {REFILL_BELOW}.")


class DeviceBundle(BaseModel):
    bundle: Bundle
    one_time: PreKey | None = Field(description="One of the device's one-time prekeys, now "
                                    "forgotten by the directory; null when none is left.")


class UserBundles(BaseModel):
    """GET /api/prekeys/{user_id}: a bundle for each of the user's live devices that has one.
    The client uses only the devices its pinned device list names."""

    user: str
    devices: list[DeviceBundle]
