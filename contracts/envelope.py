"""Envelope v1: the outer shape the servers check. Its contents stay opaque to them.

A fresh AES-256-GCM key per message, wrapped with RSA-OAEP-256 for every live device of
the recipient and of the sender, signed (ECDSA P-256, SHA-256, raw r||s) by the sending
device over the canonical JSON of every other field. `seq` and `prev` chain one device's
envelopes in one room, so a receiver can tell a dropped, reordered or replayed message.
The README documents it byte by byte; client.envelope implements it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

ALG = "RSA-OAEP-256+A256GCM+ES256"
MAX_DEVICES = 10  # live device keys per user

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
    seq: int = Field(ge=1, le=2**53 - 1)
    prev: Annotated[str, StringConstraints(pattern=r"^([A-Za-z0-9_-]{43})?$")]
    kind: Literal["text", "image"]
    keys: list[WrappedKey] = Field(min_length=1, max_length=2 * MAX_DEVICES)
    iv: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{16}$")]
    ct: Annotated[str, StringConstraints(pattern=B64U, min_length=22)]
    sig: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{86}$")]


def ct_limit(plaintext_bytes: int) -> int:
    """Longest base64url `ct` for a plaintext of this size (16-byte tag, 4 KiB of metadata)."""
    raw = plaintext_bytes + 4096 + 16
    return (raw * 4 + 2) // 3
