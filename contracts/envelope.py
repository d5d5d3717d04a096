"""Envelope v1: the outer shape the servers check. Its contents stay opaque to them.

A fresh AES-256-GCM key per message, wrapped with RSA-OAEP-256 for every live device of
the recipient and of the sender, signed (ECDSA P-256, SHA-256, raw r||s) by the sending
device over the canonical JSON of every other field. `seq` and `prev` chain one device's
envelopes in one room, so a receiver can tell a dropped, reordered or replayed message.
The README documents it byte by byte; client.envelope implements it.

Four kinds travel in it. `text` and `image` are messages: links of the sending device's
chain in the room (`seq` from 1). `receipt` (delivered / read up to a cursor) and `typing`
are signals: signed and encrypted the same way, but outside the chain (`seq` 0, `prev`
""), because typing is never stored and a v1 socket is never sent a receipt, so a chain
holding them would show gaps to a receiver that never sees them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

ALG = "RSA-OAEP-256+A256GCM+ES256"
MAX_DEVICES = 10  # live device keys per user
MESSAGE_KINDS = ("text", "image")
SIGNAL_KINDS = ("receipt", "typing")
MAX_SIGNAL_BYTES = 512  # plaintext of a receipt or a typing signal

B64U = r"^[A-Za-z0-9_-]*$"
Fingerprint = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{43}$")]
B64 = Annotated[str, StringConstraints(pattern=B64U)]


class WrappedKey(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kid: Fingerprint = Field(description="The recipient device's encryption-key fingerprint.")
    wk: Annotated[str, StringConstraints(pattern=B64U, min_length=342, max_length=1366)]


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    v: Literal[1]
    alg: Literal["RSA-OAEP-256+A256GCM+ES256"]
    room: str
    sender: str
    from_: Fingerprint = Field(alias="from", description="The sending device's kid.")
    seq: int = Field(ge=0, le=2**53 - 1, description="1, 2, … in a device's chain; 0 for a "
                     "signal (receipt, typing), which is outside it.")
    prev: Annotated[str, StringConstraints(pattern=r"^([A-Za-z0-9_-]{43})?$")]
    kind: Literal["text", "image", "receipt", "typing"]
    keys: list[WrappedKey] = Field(min_length=1, max_length=2 * MAX_DEVICES)
    iv: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{16}$")]
    ct: Annotated[str, StringConstraints(pattern=B64U, min_length=22)]
    sig: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{86}$")]

    @model_validator(mode="after")
    def _chain(self) -> Envelope:
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
