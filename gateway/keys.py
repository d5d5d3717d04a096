"""The key directory: publish and revoke device keys. Every key is parsed before it is kept."""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import time
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key
from fastapi import APIRouter, Request, Response

from contracts import USERS
from contracts.documents import PREKEYS, prekey_doc_id
from contracts.envelope import MAX_DEVICES
from contracts.keys import DeviceKey, DeviceKeyIn, KeySet, KeysUpload, device_proof_input

from .deps import CurrentUser, Svc
from .errors import Conflict, InvalidKey, NotFound

router = APIRouter(prefix="/api/keys", tags=["keys"])
security = logging.getLogger("duet.security")

MIN_RSA_BITS, MAX_RSA_BITS = 2048, 8192


def fingerprint(der: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def der_of(value: str, what: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise InvalidKey(f"{what}: not base64url") from None


def load_public(der: bytes, what: str) -> Any:
    try:
        return load_der_public_key(der)
    except (ValueError, TypeError):
        raise InvalidKey(f"{what}: not a DER SubjectPublicKeyInfo public key") from None


def signed_by(key: ec.EllipticCurvePublicKey, signature: str, data: bytes) -> bool:
    """Whether `signature` (raw r||s, base64url, as envelope v2's) is `key`'s over `data`."""
    raw = der_of(signature, "signature")
    try:
        key.verify(encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                        int.from_bytes(raw[32:], "big")),
                   data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def check_device(device: DeviceKeyIn, user: str) -> DeviceKey:
    """Parse both keys with `cryptography`; refuse weak, malformed or wrong-type keys, and
    a device whose proof is not its signing key's over this user's claim."""
    enc_der, sig_der = der_of(device.enc, "enc"), der_of(device.sig, "sig")
    enc, sig = load_public(enc_der, "enc"), load_public(sig_der, "sig")
    if not isinstance(enc, rsa.RSAPublicKey):
        raise InvalidKey(f"enc: expected an RSA key, got {type(enc).__name__}")
    if not MIN_RSA_BITS <= enc.key_size <= MAX_RSA_BITS:
        raise InvalidKey(f"enc: RSA key of {enc.key_size} bits; {MIN_RSA_BITS}–{MAX_RSA_BITS} "
                         "bits required")
    if enc.public_numbers().e != 65537:
        raise InvalidKey("enc: the RSA public exponent must be 65537")
    if not isinstance(sig, ec.EllipticCurvePublicKey) or not isinstance(sig.curve,
                                                                         ec.SECP256R1):
        raise InvalidKey("sig: expected an ECDSA P-256 key")
    if not signed_by(sig, device.proof,
                     device_proof_input(user, device.enc, device.sig, device.label)):
        raise InvalidKey("proof: not this device's signature over its keys for this user")
    return DeviceKey(kid=fingerprint(enc_der), sid=fingerprint(sig_der), enc=device.enc,
                     sig=device.sig, label=device.label, created_at=int(time.time() * 1000))


@router.put("", response_model=KeySet)
async def publish_keys(body: KeysUpload, svc: Svc, me: CurrentUser,
                       request: Request) -> KeySet:
    """Add these devices (already published ones are kept as they are)."""
    devices = [check_device(d, me) for d in body.keys]
    user = await svc.db[USERS].find_one({"_id": me}, projection={"keys": 1, "revoked": 1})
    if user is None:
        raise NotFound("no such user")
    live = {k["kid"]: k for k in user.get("keys", [])}
    revoked = {k["kid"] for k in user.get("revoked", [])}
    for d in devices:
        if d.kid in revoked:
            raise Conflict(f"key {d.kid} was revoked; generate a new one")
        live.setdefault(d.kid, d.model_dump())
    if len(live) > MAX_DEVICES:
        raise Conflict(f"at most {MAX_DEVICES} live device keys; revoke one first")
    await svc.db[USERS].update_one({"_id": me}, {"$set": {"keys": list(live.values())}})
    security.info("device keys published user=%s session=%s kids=%s address=%s", me,
                  session_of(request), ",".join(d.kid for d in devices), client_address(request))
    return KeySet(keys=[DeviceKey.model_validate(k) for k in live.values()])


@router.delete("/{kid}", status_code=204)
async def revoke_key(kid: str, svc: Svc, me: CurrentUser, request: Request) -> Response:
    """Revoke a device: it gets no new wrapped keys; old messages stay verifiable."""
    user = await svc.db[USERS].find_one({"_id": me, "keys.kid": kid}, projection={"keys": 1})
    if user is None:
        raise NotFound("no live key with that id")
    key = next(k for k in user["keys"] if k["kid"] == kid)
    key["revoked_at"] = int(time.time() * 1000)
    await svc.db[USERS].update_one(
        {"_id": me}, {"$pull": {"keys": {"kid": kid}}, "$push": {"revoked": key}})
    await svc.db[PREKEYS].delete_one({"_id": prekey_doc_id(me, kid)})  # no new sessions with it
    security.info("device key revoked user=%s session=%s kid=%s address=%s", me,
                  session_of(request), kid, client_address(request))
    return Response(status_code=204)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "?"


def session_of(request: Request) -> str:
    return str(getattr(request.state, "session", "-"))
