"""PUT /api/devicelist: store an account's device list as its identity key signed it.

The gateway checks what it can without trusting itself: the signature by the list's own
identity key, that the key is the one already on file (unless the upload says `reset`),
that the version grows, and that every listed device uploaded its keys with a proof of
possession (PUT /api/keys). It cannot write a list: clients verify every list against the
identity key they pinned (contracts/devicelist.py).
"""

from __future__ import annotations

import logging
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import APIRouter, Request

from contracts import USERS
from contracts.devicelist import DeviceListUpload, SignedDeviceList, list_signing_input

from .deps import CurrentUser, Svc
from .errors import Conflict, Forbidden, InvalidKey, NotFound
from .keys import client_address, der_of, load_public, session_of, signed_by

router = APIRouter(prefix="/api/devicelist", tags=["keys"])
security = logging.getLogger("duet.security")


def check_signature(upload: SignedDeviceList) -> None:
    identity = load_public(der_of(upload.list.identity, "identity"), "identity")
    if not isinstance(identity, ec.EllipticCurvePublicKey) or not isinstance(
            identity.curve, ec.SECP256R1):
        raise InvalidKey("identity: expected an ECDSA P-256 key")
    if not signed_by(identity, upload.sig,
                     list_signing_input(upload.list.model_dump(mode="json"))):
        raise InvalidKey("sig: not the identity key's signature over this list")


@router.put("", response_model=SignedDeviceList)
async def put_device_list(body: DeviceListUpload, svc: Svc, me: CurrentUser,
                          request: Request) -> SignedDeviceList:
    """Replace the account's device list with a newer one its identity key signed."""
    if body.list.user != me:
        raise Forbidden("a device list names its own user")
    check_signature(body)
    user = await svc.db[USERS].find_one({"_id": me}, projection={
        "keys": 1, "revoked": 1, "device_list": 1})
    if user is None:
        raise NotFound("no such user")
    stored: dict[str, Any] | None = user.get("device_list")
    if stored is not None:
        if body.list.version <= stored["list"]["version"]:
            raise Conflict(f"version {body.list.version} is not newer than "
                           f"{stored['list']['version']}")
        if body.list.identity != stored["list"]["identity"] and not body.reset:
            raise Conflict("signed by another identity key: say reset to replace it")
    uploaded = {k["kid"]: k for k in user.get("keys", [])}
    for d in body.list.devices:
        key = uploaded.get(d.kid)
        if key is None or key["enc"] != d.enc or key["sig"] != d.sig:
            raise Conflict(f"device {d.kid} has not uploaded these keys (PUT /api/keys)")
    gone = {d.kid for d in body.list.revoked}
    keys = [k for k in user.get("keys", []) if k["kid"] not in gone]
    revoked = user.get("revoked", []) + [
        {**uploaded[d.kid], "revoked_at": d.revoked_at} for d in body.list.revoked
        if d.kid in uploaded]
    signed = SignedDeviceList(list=body.list, sig=body.sig)
    # Compare-and-set on the version read: two approvals at once cannot both land.
    guard = {"device_list.list.version": stored["list"]["version"]} if stored else {
        "device_list": None}
    result = await svc.db[USERS].update_one({"_id": me, **guard}, {"$set": {
        "device_list": signed.model_dump(mode="json"), "keys": keys, "revoked": revoked}})
    if result.matched_count != 1:
        raise Conflict("the device list changed meanwhile: fetch it and sign again")
    security.info("device list v%d%s user=%s session=%s devices=%s address=%s",
                  body.list.version, " (identity reset)" if body.reset else "", me,
                  session_of(request), ",".join(d.kid for d in body.list.devices),
                  client_address(request))
    return signed
