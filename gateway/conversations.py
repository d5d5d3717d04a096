"""The conversation list, read positions and unread counts, and a user's settings.

A read position is a cursor per (user, room), kept server-side so that reading on one
device clears the badge on the user's others: never content. It only moves forward.
Unread = the friend's messages (text and image, not receipts) after it, counted up to
UNREAD_CAP. Each move is announced under `user.<uid>.read` to that user's device sockets
(gateway.readmarks moves them, in batches).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter
from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from contracts import (
    FRIENDSHIPS,
    MESSAGES,
    READS,
    USERS,
    Conversation,
    Conversations,
    ReadPosition,
    ReadState,
    Settings,
    SettingsUpdate,
    room_id,
)
from contracts.api import LastMessage
from contracts.envelope import MESSAGE_KINDS

from .deps import CurrentUser, Services, Svc
from .errors import Forbidden
from .friendship import are_friends
from .history import as_frame
from .readmarks import UNREAD_CAP, unread_query

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api", tags=["conversations"])

_FRAME = {"_id": 0, "id": 1, "sender": 1, "room": 1, "kind": 1, "body": 1, "ts": 1,
          "cursor": 1}
# The last message: a text's envelope is small enough to preview; an image's (up to
# DUET_MAX_IMAGE_BYTES) never leaves MongoDB here, so a list of friends whose last messages
# are large images costs no more memory than one of texts.
_LAST = {**_FRAME, "body": {"$cond": [{"$eq": ["$kind", "text"]}, "$body", "$$REMOVE"]}}


async def unread_count(db: AsyncDatabase[dict[str, Any]], me: str, room: str,
                       after: str | None) -> int:
    return await db[MESSAGES].count_documents(unread_query(me, room, after),
                                              limit=UNREAD_CAP)


async def _conversation(db: AsyncDatabase[dict[str, Any]], me: str, friend: dict[str, Any],
                        read: str | None, online: bool) -> Conversation:
    peer, room = friend["user_id"], room_id(me, friend["user_id"])
    last_doc, unread, receipt = await asyncio.gather(
        db[MESSAGES].find_one({"room": room, "kind": {"$in": list(MESSAGE_KINDS)}},
                              projection=_LAST, sort=[("cursor", DESCENDING)]),
        unread_count(db, me, room, read),
        db[MESSAGES].find_one({"room": room, "sender": peer, "kind": "receipt"},
                              projection=_FRAME, sort=[("cursor", DESCENDING)]))
    last = None
    if last_doc is not None:
        last = LastMessage(**{**last_doc, "body": last_doc.get("body")})
    return Conversation(
        user_id=peer, username=friend["username"], room=room,
        last_activity=last.ts if last else friend["since"], last=last, unread=unread,
        read=read, online=online,
        peer_receipt=as_frame(receipt) if receipt is not None else None)


@router.get("/conversations", response_model=Conversations)
async def conversations(svc: Svc, me: CurrentUser) -> Conversations:
    """Each accepted friend: last activity, a preview, unread count, presence; the most
    recently active first."""
    docs = await svc.db[FRIENDSHIPS].find(
        {"$or": [{"requester": me}, {"addressee": me}], "status": "accepted"}).to_list(None)
    peers = {(d["addressee"] if d["requester"] == me else d["requester"]): d["created_at"]
             for d in docs}
    names = {u["_id"]: u["username"] async for u in svc.db[USERS].find(
        {"_id": {"$in": list(peers)}}, projection={"username": 1})}
    reads = {r["room"]: r["cursor"] async for r in svc.db[READS].find({"user": me})}
    online = set(await svc.presence.online(list(peers)))
    items = await asyncio.gather(*(
        _conversation(svc.db, me, {"user_id": p, "username": names.get(p, "?"), "since": t},
                      reads.get(room_id(me, p)), p in online)
        for p, t in peers.items()))
    items.sort(key=lambda c: c.last_activity, reverse=True)
    return Conversations(conversations=items)


@router.post("/conversations/{peer_id}/read", response_model=ReadState)
async def read(peer_id: str, body: ReadPosition, svc: Svc, me: CurrentUser) -> ReadState:
    """Read up to `cursor` in the room with this friend (the same as a `read` frame)."""
    if not await are_friends(svc.db, me, peer_id):
        raise Forbidden("you are not friends with that user")
    return await svc.reads.mark(me, room_id(me, peer_id), body.cursor)


async def _settings(svc: Services, me: str) -> Settings:
    user = await svc.db[USERS].find_one({"_id": me}, projection={"settings": 1})
    return Settings(**(user or {}).get("settings", {}))


@router.get("/settings", response_model=Settings)
async def get_settings(svc: Svc, me: CurrentUser) -> Settings:
    return await _settings(svc, me)


@router.put("/settings", response_model=Settings)
async def put_settings(body: SettingsUpdate, svc: Svc, me: CurrentUser) -> Settings:
    """Change some settings; hiding presence takes effect for friends at once."""
    before = await _settings(svc, me)
    changes = {f"settings.{k}": v for k, v in body.model_dump(exclude_none=True).items()}
    if changes:
        await svc.db[USERS].update_one({"_id": me}, {"$set": changes})
    after = await _settings(svc, me)
    if after.hide_presence != before.hide_presence:
        await svc.presence.set_hidden(me, after.hide_presence)
    return after
