"""The prekey directory (contracts/prekeys.py): devices publish signed bundles and one-time
prekeys; a friend claims a bundle per device, taking one one-time prekey each, which the
directory then forgets. The bundle's signature is checked against the device's own signing
key, so the directory holds only bundles their devices signed (clients check it again)."""

from __future__ import annotations

import base64
import logging
from typing import Any

from fastapi import APIRouter
from pymongo import ReturnDocument

from contracts import USERS
from contracts.documents import PREKEYS, prekey_doc_id
from contracts.prekeys import (
    MAX_ONE_TIME,
    DeviceBundle,
    PreKey,
    PreKeyStock,
    PreKeysUpload,
    UserBundles,
    bundle_signing_input,
)

from .deps import CurrentUser, Svc
from .errors import Conflict, Forbidden, InvalidKey, NotFound
from .friendship import are_friends
from .keys import der_of, load_public, signed_by

router = APIRouter(prefix="/api/prekeys", tags=["keys"])
security = logging.getLogger("duet.security")


def _raw_key(value: str, what: str) -> None:
    raw = der_of(value, what)
    if len(raw) != 32 or base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != value:
        raise InvalidKey(f"{what}: not a raw 32-byte X25519 key in canonical base64url")


@router.put("", response_model=PreKeyStock)
async def publish_prekeys(body: PreKeysUpload, svc: Svc, me: CurrentUser) -> PreKeyStock:
    """Publish this device's bundle and add one-time prekeys to its stock."""
    bundle = body.bundle
    if bundle.user != me:
        raise Forbidden("a bundle is published by its own user")
    user = await svc.db[USERS].find_one({"_id": me, "keys.kid": bundle.kid},
                                        projection={"keys.$": 1})
    if user is None:
        raise NotFound(f"no live device {bundle.kid} of this user")
    _raw_key(bundle.ik, "ik")
    _raw_key(bundle.spk.key, "spk")
    for key in body.one_time:
        _raw_key(key.key, f"one_time {key.id}")
    sig_key = load_public(der_of(user["keys"][0]["sig"], "sig"), "sig")
    if not signed_by(sig_key, bundle.sig, bundle_signing_input(bundle.model_dump())):
        raise InvalidKey("sig: not this device's signature over its bundle")
    ids = [k.id for k in body.one_time]
    if len(set(ids)) != len(ids):
        raise InvalidKey("one_time: an id appears twice")
    _id = prekey_doc_id(me, bundle.kid)
    held = await svc.db[PREKEYS].find_one({"_id": _id}, projection={"one_time": 1})
    stock: list[dict[str, Any]] = held["one_time"] if held else []
    clash = set(ids) & {k["id"] for k in stock}
    if clash:
        raise Conflict(f"one_time: id {min(clash)} is already held")
    if len(stock) + len(ids) > MAX_ONE_TIME:
        raise Conflict(f"at most {MAX_ONE_TIME} one-time prekeys per device; "
                       f"{len(stock)} are held")
    doc = await svc.db[PREKEYS].find_one_and_update(
        {"_id": _id},
        {"$set": {"user": me, "kid": bundle.kid, "bundle": bundle.model_dump()},
         "$push": {"one_time": {"$each": [k.model_dump() for k in body.one_time]}}},
        upsert=True, return_document=ReturnDocument.AFTER)
    assert doc is not None  # upserted
    security.info("prekeys published user=%s kid=%s spk=%d one_time=+%d", me, bundle.kid,
                  bundle.spk.id, len(ids))
    return PreKeyStock(kid=bundle.kid, spk_id=bundle.spk.id, one_time_left=len(doc["one_time"]))


@router.get("/{user_id}", response_model=UserBundles)
async def claim_bundles(user_id: str, svc: Svc, me: CurrentUser,
                        devices: str | None = None) -> UserBundles:
    """A bundle for each live device of a friend (or of oneself), or of those of them named
    in `devices` (kids, comma-separated), each with one one-time prekey taken from its
    stock."""
    if user_id != me and not await are_friends(svc.db, me, user_id):
        raise Forbidden("prekeys are served to the user's friends only")
    user = await svc.db[USERS].find_one({"_id": user_id}, projection={"keys.kid": 1})
    if user is None:
        raise NotFound("no such user")
    wanted = set(devices.split(",")) if devices else None
    found = []
    for kid in sorted(k["kid"] for k in user.get("keys", [])):
        if wanted is not None and kid not in wanted:
            continue
        # $pop takes the oldest one-time prekey; the document before it says which it was.
        doc = await svc.db[PREKEYS].find_one_and_update(
            {"_id": prekey_doc_id(user_id, kid)}, {"$pop": {"one_time": -1}},
            return_document=ReturnDocument.BEFORE)
        if doc is None:
            continue
        taken = doc["one_time"][0] if doc.get("one_time") else None
        found.append(DeviceBundle(bundle=doc["bundle"],
                                  one_time=PreKey(**taken) if taken else None))
    return UserBundles(user=user_id, devices=found)


@router.get("", response_model=list[PreKeyStock])
async def own_stock(svc: Svc, me: CurrentUser) -> list[PreKeyStock]:
    """How many one-time prekeys each of this user's devices has left."""
    docs = svc.db[PREKEYS].find({"user": me}).sort("_id", 1)
    return [PreKeyStock(kid=d["kid"], spk_id=d["bundle"]["spk"]["id"],
                        one_time_left=len(d.get("one_time", []))) async for d in docs]
