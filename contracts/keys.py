"""The key directory: device keys as uploaded and as published."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from .envelope import MAX_DEVICES, Fingerprint

Spki = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+$", max_length=2800)]


class DeviceKeyIn(BaseModel):
    """One device: an RSA-OAEP (SHA-256) encryption key and an ECDSA P-256 signing key,
    each as base64url DER SubjectPublicKeyInfo."""

    model_config = ConfigDict(extra="forbid")

    enc: Spki
    sig: Spki
    label: Annotated[str, StringConstraints(max_length=64)] | None = None


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
