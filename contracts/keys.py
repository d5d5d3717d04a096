"""The key directory: device keys as uploaded and as published."""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from .envelope import MAX_DEVICES, Fingerprint, sig_is_canonical

Spki = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+$", max_length=2800)]
PROOF_PREFIX = b"duet-device-v1\n"


def device_proof_input(user: str, enc: str, sig: str, label: str | None) -> bytes:
    """What a device's proof of possession signs: that this user publishes these two keys
    (and this label). The proof is the device's own signing key's signature over it, in
    envelope v2's form: an upload of keys someone else holds cannot carry one."""
    claim = {"user": user, "enc": enc, "sig": sig, "label": label}
    return PROOF_PREFIX + json.dumps(claim, sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=False).encode()


def _canonical_signature(value: str) -> str:
    if not sig_is_canonical(value):
        raise ValueError("a low-s ECDSA P-256 r||s in canonical base64url")
    return value


class DeviceKeyIn(BaseModel):
    """One device: an RSA-OAEP (SHA-256) encryption key and an ECDSA P-256 signing key,
    each as base64url DER SubjectPublicKeyInfo."""

    model_config = ConfigDict(extra="forbid")

    enc: Spki
    sig: Spki
    label: Annotated[str, StringConstraints(max_length=64)] | None = None
    proof: Annotated[str, AfterValidator(_canonical_signature)] = Field(
        description="The `sig` key's signature over device_proof_input(user, enc, sig, "
                    "label): proof that the uploader holds the device's private key.")


class KeysUpload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[DeviceKeyIn] = Field(min_length=1, max_length=MAX_DEVICES)


class DeviceKey(BaseModel):
    kid: Fingerprint = Field(description="base64url SHA-256 of the encryption key's SPKI")
    sid: Fingerprint = Field(description="base64url SHA-256 of the signing key's SPKI")
    enc: Spki
    sig: Spki
    label: str | None = None
    created_at: int


class RevokedKey(DeviceKey):
    revoked_at: int


class KeySet(BaseModel):
    keys: list[DeviceKey]
