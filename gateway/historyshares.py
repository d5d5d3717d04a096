"""History shares: content keys of earlier messages, passed from one of a user's devices to
one linked later (contracts/devicelist.py HistoryShare). Opaque here: encrypted to the
receiving device and signed by the sending one; the gateway keeps them for the user."""

from __future__ import annotations

import time

from fastapi import APIRouter, Response

from contracts.devicelist import HistoryShare
from contracts.documents import HISTORY_SHARES
from contracts.envelope import Fingerprint

from .deps import CurrentUser, Svc
from .errors import Forbidden

router = APIRouter(prefix="/api/history-shares", tags=["keys"])


@router.put("", status_code=204)
async def put_share(body: HistoryShare, svc: Svc, me: CurrentUser) -> Response:
    """Keep one part of a share (the same part again replaces it)."""
    if body.user != me:
        raise Forbidden("a history share is between devices of its own user")
    doc_id = f"{me}/{body.to}/{body.from_}/{body.part}"
    await svc.db[HISTORY_SHARES].replace_one(
        {"_id": doc_id}, {"user": me, "to": body.to, "share": body.model_dump(by_alias=True),
                          "created_at": int(time.time() * 1000)}, upsert=True)
    return Response(status_code=204)


@router.get("")
async def get_shares(svc: Svc, me: CurrentUser,
                     to: Fingerprint) -> dict[str, list[dict[str, object]]]:
    """Every part shared with the device `to` of this user."""
    docs = svc.db[HISTORY_SHARES].find({"user": me, "to": to}).sort("_id", 1)
    return {"shares": [d["share"] async for d in docs]}
