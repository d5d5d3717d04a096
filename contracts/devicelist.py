"""Account identity and the signed device list: which devices speak for a user.

Each account has an identity key (ECDSA P-256), made on its first device and kept there;
the server never holds its private half. It signs the account's device list: every live
device's keys, the revoked ones with when, and a version that only grows. The directory
stores and serves the list as uploaded; it can refuse one, never make one. Clients pin a
user's identity key on first use and encrypt only to, and accept messages only from, the
devices a list signed by the pinned key names (docs/protocol.md "Device lists"). A device
that uploaded its keys but is not in the list is a pending link request (or an injected
device): it gets no wrapped key.

Bytes: the signature is over b"duet-devicelist-v1\\n" + canonical JSON of `list` (sorted
keys, no spaces, UTF-8), in envelope v2's form (raw r||s, low s, canonical base64url).
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from .envelope import MAX_DEVICES, Fingerprint, sig_is_canonical
from .keys import Spki

LIST_PREFIX = b"duet-devicelist-v1\n"
LINK_PREFIX = b"duet-link-v1\n"
SAFETY_PREFIX = b"duet-safety-v2\n"
MAX_REVOKED = 100


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def list_signing_input(device_list: dict[str, Any]) -> bytes:
    return LIST_PREFIX + canonical(device_list)


def link_code(kid: str, sid: str) -> str:
    """The code a new device shows and the approving device compares: 12 digits from the
    SHA-256 of both key ids (forging a device with the same code takes ~10^12 key pairs)."""
    digest = hashlib.sha256(LINK_PREFIX + f"{kid}\n{sid}".encode()).digest()
    digits = f"{int.from_bytes(digest[:8], 'big') % 10**12:012d}"
    return " ".join(digits[i:i + 4] for i in range(0, 12, 4))


def safety_number(a: str, a_identity: str, b: str, b_identity: str) -> str:
    """Twelve groups of five digits over the two users' identity keys (their fingerprints),
    the same whichever friend computes it; devices coming and going do not change it.
    SHA-512 of SAFETY_PREFIX + canonical JSON {user_id: identity fingerprint}; each 5-byte
    big-endian chunk of the first 60 bytes mod 100000."""
    digest = hashlib.sha512(SAFETY_PREFIX + canonical({a: a_identity, b: b_identity})).digest()
    groups = [int.from_bytes(digest[i:i + 5], "big") % 100000 for i in range(0, 60, 5)]
    return " ".join(f"{g:05d}" for g in groups)


def _canonical_signature(value: str) -> str:
    if not sig_is_canonical(value):
        raise ValueError("a low-s ECDSA P-256 r||s in canonical base64url")
    return value


class ListedDevice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kid: Fingerprint
    sid: Fingerprint
    enc: Spki
    sig: Spki
    label: Annotated[str, StringConstraints(max_length=64)] | None = None
    added: int = Field(ge=0, description="ms since the epoch, by the approving device")


class RevokedDevice(ListedDevice):
    revoked_at: int = Field(ge=0, description="ms since the epoch: messages this device "
                            "signed after it are refused")


class DeviceList(BaseModel):
    """What the identity key signs."""

    model_config = ConfigDict(extra="forbid")

    v: Literal[1]
    user: str
    identity: Spki = Field(description="the identity key, base64url DER SPKI (ECDSA P-256)")
    version: int = Field(ge=1, le=2**53 - 1)
    devices: list[ListedDevice] = Field(min_length=1, max_length=MAX_DEVICES)
    revoked: list[RevokedDevice] = Field(default_factory=list, max_length=MAX_REVOKED)


class SignedDeviceList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    list: DeviceList
    sig: Annotated[str, AfterValidator(_canonical_signature)]


class DeviceListUpload(SignedDeviceList):
    reset: bool = Field(default=False, description="a new identity key replaces the old one "
                        "(every friend is told, and must accept it before sending again)")


SHARE_PREFIX = b"duet-history-share-v1\n"
SHARE_KEYS = 400  # content keys per share: a share stays under the REST body limit
MAX_SHARES = 250  # per (user, receiving device): 100,000 messages of history


def share_signing_input(share: dict[str, Any]) -> bytes:
    """What the sharing device signs: every field but `sig`, canonical JSON."""
    return SHARE_PREFIX + canonical({k: v for k, v in share.items() if k != "sig"})


class HistoryShare(BaseModel):
    """Content keys of earlier messages, from a device that can read them to one linked
    later: `ct` is AES-256-GCM (key wrapped in `wk` with RSA-OAEP-256 for `to`) over the
    canonical JSON {envelope hash: content key}, and `sig` the sending device's signature
    over share_signing_input (docs/protocol.md "History for a linked device")."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    v: Literal[1]
    user: str
    to: Fingerprint
    from_: Fingerprint = Field(alias="from")
    part: int = Field(ge=0, lt=MAX_SHARES)
    wk: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{342,1366}$")]
    iv: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{16}$")]
    ct: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+$", max_length=48_000)]
    sig: Annotated[str, AfterValidator(_canonical_signature)]
