"""Stored messages of a room, in cursor order, a page at a time; and the reads a resume
makes (one room, or every room of a device at once)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pymongo.asynchronous.database import AsyncDatabase

from contracts import MESSAGES, HistoryPage, MessageFrame, room_id
from contracts.envelope import MESSAGE_KINDS

from .deps import CurrentUser, Svc
from .errors import Forbidden
from .friendship import are_friends

router = APIRouter(prefix="/api/rooms", tags=["history"])

LATEST = "latest"
_PROJECTION = {"_id": 0, "id": 1, "sender": 1, "room": 1, "kind": 1, "body": 1, "ts": 1,
               "cursor": 1}


def as_frame(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored document as the `message` frame it was published as."""
    return {"type": "message", **doc}


def _kinds(query: dict[str, Any], kinds: Sequence[str] | None) -> dict[str, Any]:
    if kinds is not None:
        query["kind"] = {"$in": list(kinds)}
    return query


async def read_after(db: AsyncDatabase[dict[str, Any]], room: str, after: str | None,
                     limit: int, kinds: Sequence[str] | None = MESSAGE_KINDS
                     ) -> list[dict[str, Any]]:
    """Up to `limit` messages with a cursor greater than `after`, oldest first."""
    query: dict[str, Any] = {"room": room}
    if after is not None:
        query["cursor"] = {"$gt": after}
    cursor = db[MESSAGES].find(_kinds(query, kinds), projection=_PROJECTION).sort(
        "cursor", 1).limit(limit)
    return [as_frame(d) async for d in cursor]


async def read_after_rooms(db: AsyncDatabase[dict[str, Any]],
                           positions: Mapping[str, str | None], limit: int,
                           kinds: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Up to `limit` messages of these rooms, each after its room's cursor (None: from the
    start), oldest first across the rooms: one query, each branch on the room_cursor
    index, merged by cursor."""
    if not positions:
        return []
    branches = [{"room": room} if after is None else {"room": room, "cursor": {"$gt": after}}
                for room, after in positions.items()]
    query = branches[0] if len(branches) == 1 else {"$or": branches}
    cursor = db[MESSAGES].find(_kinds(query, kinds), projection=_PROJECTION).sort(
        "cursor", 1).limit(limit)
    return [as_frame(d) async for d in cursor]


async def read_cursors(db: AsyncDatabase[dict[str, Any]],
                       cursors: Mapping[str, list[str]]) -> list[dict[str, Any]]:
    """These messages (room → cursors), oldest first."""
    branches = [{"room": room, "cursor": {"$in": cs}} for room, cs in cursors.items()]
    if not branches:
        return []
    query = branches[0] if len(branches) == 1 else {"$or": branches}
    cursor = db[MESSAGES].find(query, projection=_PROJECTION).sort("cursor", 1)
    return [as_frame(d) async for d in cursor]


async def read_before(db: AsyncDatabase[dict[str, Any]], room: str, before: str | None,
                      limit: int, kinds: Sequence[str] | None = MESSAGE_KINDS
                      ) -> list[dict[str, Any]]:
    """Up to `limit` messages just before `before` (the newest when None), oldest first."""
    query: dict[str, Any] = _kinds({"room": room}, kinds)
    if before is not None:
        query["cursor"] = {"$lt": before}
    cursor = db[MESSAGES].find(query, projection=_PROJECTION).sort("cursor", -1).limit(limit)
    docs = [as_frame(d) async for d in cursor]
    docs.reverse()
    return docs


AfterParam = Annotated[str | None, Query(pattern=r"^[0-9a-f]{32}$")]
BeforeParam = Annotated[str | None, Query(pattern=r"^([0-9a-f]{32}|latest)$")]
KindsParam = Annotated[str, Query(pattern=r"^(text|image|receipt)(,(text|image|receipt))*$")]


@router.get("/{peer_id}/messages", response_model=HistoryPage)
async def messages(peer_id: str, svc: Svc, me: CurrentUser, after: AfterParam = None,
                   before: BeforeParam = None,
                   limit: Annotated[int, Query(ge=1)] = 100,
                   kinds: KindsParam = "text,image") -> HistoryPage:
    """Page forward with `after`, backward with `before` (`before=latest` = newest page);
    `kinds=text,image,receipt` includes receipts (not by default)."""
    if not await are_friends(svc.db, me, peer_id):
        raise Forbidden("you are not friends with that user")
    limit = min(limit, svc.settings.history_max_limit)
    room = room_id(me, peer_id)
    wanted = sorted(set(kinds.split(",")))
    # Ask for one more than a page to learn whether there is a next one.
    if before is not None:
        docs = await read_before(svc.db, room, None if before == LATEST else before, limit + 1,
                                 wanted)
        more = len(docs) > limit
        docs = docs[1:] if more else docs
        nxt = docs[0]["cursor"] if more and docs else None
    else:
        docs = await read_after(svc.db, room, after, limit + 1, wanted)
        more = len(docs) > limit
        docs = docs[:limit]
        nxt = docs[-1]["cursor"] if more and docs else None
    return HistoryPage(messages=[MessageFrame.model_validate(d) for d in docs], next=nxt)
