"""Envelope v1, v2 and v3: the outer shape the servers check. Its contents stay opaque to them.

A fresh AES-256-GCM key per message, wrapped with RSA-OAEP-256 for every live device of
the recipient and of the sender, signed (ECDSA P-256, SHA-256, raw r||s) by the sending
device over the canonical JSON of every other field. `seq` and `prev` chain one device's
envelopes in one room, so a receiver can tell a dropped, reordered or replayed message.
docs/protocol.md documents it byte by byte; client.envelope implements it.

v2 is v1 with two rules that leave no one but the signer a choice of bytes: the signature
is low-s (s <= n/2) and canonical base64url (`sig_is_canonical`), and the chain link is
the SHA-256 of the signing input, not of the whole envelope, so nothing outside the
signature can change a link. (In v1 a server could re-encode a signature, or replace s
with n - s, and the signature still verified while the link changed: a false fork or
replay alert.) v1 envelopes stay readable.

v3 is v2 whose content key travels, to each device with a session, as a Double Ratchet
message (`RatchetKey`: header, maybe X3DH's prekey header, 48 bytes) instead of an RSA-OAEP
wrap: forward secrecy (docs/sessions.md). A device without a published bundle still gets
an RSA entry in the same envelope, so conversations move over device by device.

Four kinds travel in it. `text` and `image` are messages: links of the sending device's
chain in the room (`seq` from 1). `receipt` (delivered / read up to a cursor) and `typing`
are signals: signed and encrypted the same way, but outside the chain (`seq` 0, `prev`
""), because typing is never stored and a v1 socket is never sent a receipt, so a chain
holding them would show gaps to a receiver that never sees them.
"""

from __future__ import annotations

import base64
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

ALG = "RSA-OAEP-256+A256GCM+ES256"
ALG_V3 = "X25519-DR+A256GCM+ES256"  # v3: a ratchet message per device (docs/sessions.md)
MAX_DEVICES = 10  # live device keys per user
MESSAGE_KINDS = ("text", "image")
SIGNAL_KINDS = ("receipt", "typing")
MAX_SIGNAL_BYTES = 512  # plaintext of a receipt or a typing signal

B64U = r"^[A-Za-z0-9_-]*$"
VERSIONS = (1, 2, 3)
# The order of P-256's group: a v2 signature's s is at most half of it.
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_SIG_DIGITS = re.compile(r"[A-Za-z0-9_-]{86}", re.ASCII)


def sig_is_canonical(sig: str) -> bool:
    """A v2 signature: 86 base64url digits whose 4 spare bits are zero (the one encoding of
    64 bytes), and r||s with 0 < s <= n/2 (the one of the two valid s values)."""
    # The last digit carries 2 bits of the 64th byte and the 4 spare bits: A, Q, g or w.
    if len(sig) != 86 or not _SIG_DIGITS.fullmatch(sig) or sig[-1] not in "AQgw":
        return False
    s = int.from_bytes(base64.urlsafe_b64decode(sig + "==")[32:], "big")
    return 0 < s <= P256_N // 2


Fingerprint = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{43}$")]
B64 = Annotated[str, StringConstraints(pattern=B64U)]


class WrappedKey(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kid: Fingerprint = Field(description="The recipient device's encryption-key fingerprint.")
    wk: Annotated[str, StringConstraints(pattern=B64U, min_length=342, max_length=1366)]


X25519Public = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{43}$")]
Counter = Annotated[int, Field(ge=0, le=2**32 - 1)]


class RatchetHeader(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dh: X25519Public
    pn: Counter
    n: Counter


class PreKeyHeader(BaseModel):
    """X3DH's initial message, repeated until the sender's session first hears back."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ik: X25519Public
    ek: X25519Public
    spk: Counter
    opk: Counter | None


class RatchetKey(BaseModel):
    """v3: the content key as a Double Ratchet message to one device (48 bytes: the key and
    the GCM tag)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kid: Fingerprint
    h: RatchetHeader
    pre: PreKeyHeader | None = Field(description="Always written (null once the sender's "
                                     "session heard back): the servers re-serialize "
                                     "envelopes, and a signature covers what was written.")
    wk: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{64}$")]


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    v: Literal[1, 2, 3]
    alg: Literal["RSA-OAEP-256+A256GCM+ES256", "X25519-DR+A256GCM+ES256"]
    room: str
    sender: str
    from_: Fingerprint = Field(alias="from", description="The sending device's kid.")
    seq: int = Field(ge=0, le=2**53 - 1, description="1, 2, … in a device's chain; 0 for a "
                     "signal (receipt, typing), which is outside it.")
    prev: Annotated[str, StringConstraints(pattern=r"^([A-Za-z0-9_-]{43})?$")]
    kind: Literal["text", "image", "receipt", "typing"]
    keys: list[RatchetKey | WrappedKey] = Field(min_length=1, max_length=2 * MAX_DEVICES)
    iv: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{16}$")]
    ct: Annotated[str, StringConstraints(pattern=B64U, min_length=22)]
    sig: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{86}$")]

    @model_validator(mode="after")
    def _chain(self) -> Envelope:
        if self.v >= 2 and not sig_is_canonical(self.sig):
            raise ValueError("a v2 or v3 signature is low-s r||s in canonical base64url")
        if self.alg != (ALG_V3 if self.v == 3 else ALG):
            raise ValueError(f"envelope v{self.v} names the algorithm {self.alg}")
        if self.v < 3 and any(isinstance(k, RatchetKey) for k in self.keys):
            raise ValueError("ratchet keys are v3's")
        if self.kind in SIGNAL_KINDS:
            if self.seq != 0 or self.prev:
                raise ValueError("a receipt or typing signal has seq 0 and prev \"\"")
        elif self.seq < 1:
            raise ValueError("a message's seq starts at 1")
        return self


def ct_limit(plaintext_bytes: int) -> int:
    """Longest base64url `ct` for a plaintext of this size (16-byte tag, 4 KiB of metadata)."""
    raw = plaintext_bytes + 4096 + 16
    return (raw * 4 + 2) // 3
