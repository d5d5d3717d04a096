"""Stored messages of a room, in cursor order, a page at a time; and the reads a resume
makes (one room, or every room of a device at once).

Bounded memory. Every read is bounded in bytes as well as in messages (DUET_MAX_READ_BYTES,
`budget`, counted in characters of frame text: JSON, so bytes). MongoDB is read by `Scan`
in queries of about the budget each, a message at a time. A history page stops before
the message that would take it past the budget (one message always fits): fewer than
`limit` messages, with `next` to continue; it is gathered (at most the budget), then
written to the client a message at a time, each let go once written. A replay
(`replay_after_rooms`) hands each message to the socket's outbox, which waits for the
socket to drain (gateway.outbox, DUET_OUTBOX_BYTES) before the next is read. Nothing
reads a whole room at once.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from contextlib import aclosing
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pymongo.asynchronous.database import AsyncDatabase

from contracts import MESSAGES, HistoryPage, room_id

from .deps import CurrentUser, Svc
from .errors import Forbidden
from .friendship import are_friends

router = APIRouter(prefix="/api/rooms", tags=["history"])

LATEST = "latest"
MAX_BATCH = 500  # messages in one batch, whatever their size
_PROJECTION = {"_id": 0, "id": 1, "sender": 1, "room": 1, "kind": 1, "body": 1, "ts": 1,
               "cursor": 1}


def as_frame(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored document as the `message` frame it was published as."""
    return {"type": "message", **doc}


def _kinds(query: dict[str, Any], kinds: Sequence[str] | None) -> dict[str, Any]:
    if kinds is not None:
        query["kind"] = {"$in": list(kinds)}
    return query


class Scan:
    """Messages matching `query(last)` in cursor order (`direction` 1 oldest first, -1
    newest first) as (cursor, frame text), one at a time, from MongoDB queries of at most
    `budget` characters each: a query ends once it has given that much (or `most`
    messages, at most MAX_BATCH) and the next starts after the last message given. The
    batch size asked for is sized for the largest messages there can be, then for those
    seen, so the driver's buffer stays near the budget too (the server keeps a reply
    under 16 MiB)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]],
                 query: Callable[[str | None], dict[str, Any]], direction: int, budget: int,
                 largest: int = 1, most: int = MAX_BATCH) -> None:
        self._db, self._query, self._direction = db, query, direction
        self._budget, self._most = budget, min(most, MAX_BATCH)
        self._ask = max(1, budget // max(largest, 1))

    def __aiter__(self) -> AsyncGenerator[tuple[str, str], None]:
        return self._messages()

    async def _messages(self) -> AsyncGenerator[tuple[str, str], None]:
        last: str | None = None
        while True:
            ask = min(self._ask, self._most)
            cursor = self._db[MESSAGES].find(self._query(last), projection=_PROJECTION).sort(
                "cursor", self._direction).limit(ask).batch_size(ask)
            got = size = 0
            try:
                async for doc in cursor:
                    text = orjson.dumps(as_frame(doc)).decode()
                    last = doc["cursor"]
                    del doc
                    got += 1
                    size += len(text)
                    yield last, text
                    del text  # not held while the consumer waits for the next
                    if size >= self._budget:
                        break
            finally:
                await cursor.close()
            if got == 0 or (got < ask and size < self._budget):
                return  # ran out
            self._ask = max(1, self._budget * got // max(size, 1))


def _after_rooms(positions: Mapping[str, str | None], kinds: Sequence[str] | None
                 ) -> Callable[[str | None], dict[str, Any]]:
    """The query of these rooms' messages, each after its room's cursor and `last`."""
    def query(last: str | None) -> dict[str, Any]:
        branches = []
        for room, after in positions.items():
            bound = max(after or "", last or "") or None
            branches.append({"room": room} if bound is None
                            else {"room": room, "cursor": {"$gt": bound}})
        return _kinds(branches[0] if len(branches) == 1 else {"$or": branches}, kinds)
    return query


async def replay_after_rooms(db: AsyncDatabase[dict[str, Any]],
                             positions: Mapping[str, str | None], budget: int,
                             kinds: Sequence[str] | None = None, largest: int = 1
                             ) -> AsyncGenerator[tuple[str, str], None]:
    """Every message of these rooms, each after its room's cursor (None: from the
    start), oldest first across the rooms, as (cursor, frame text): one query per
    `budget` characters, each branch on the room_cursor index, merged by cursor."""
    if not positions:
        return
    async with aclosing(Scan(db, _after_rooms(positions, kinds), 1, budget,
                             largest).__aiter__()) as messages:
        async for item in messages:
            yield item


async def read_cursors(db: AsyncDatabase[dict[str, Any]],
                       cursors: Mapping[str, list[str]]) -> list[dict[str, Any]]:
    """These messages (room → cursors), oldest first."""
    branches = [{"room": room, "cursor": {"$in": cs}} for room, cs in cursors.items()]
    if not branches:
        return []
    query = branches[0] if len(branches) == 1 else {"$or": branches}
    cursor = db[MESSAGES].find(query, projection=_PROJECTION).sort("cursor", 1)
    return [as_frame(d) async for d in cursor]


async def _page(db: AsyncDatabase[dict[str, Any]], room: str, after: str | None,
                before: str | None, backward: bool, limit: int, budget: int,
                kinds: Sequence[str], largest: int) -> tuple[list[str], str | None]:
    """One history page as frame texts, oldest first, and its `next` cursor: at most
    `limit` messages and `budget` characters (at least one message)."""
    def query(last: str | None) -> dict[str, Any]:
        q: dict[str, Any] = _kinds({"room": room}, kinds)
        bound = last or (before if backward else after)
        if bound is not None:
            q["cursor"] = {"$lt" if backward else "$gt": bound}
        return q
    texts: list[str] = []
    size, last, more = 0, "", False
    # limit + 1: the one past the page says whether there is a next one.
    scan = Scan(db, query, -1 if backward else 1, budget, largest, most=limit + 1)
    async with aclosing(scan.__aiter__()) as messages:
        async for cursor, text in messages:
            if len(texts) == limit or (texts and size + len(text) > budget):
                more = True  # this one starts the next page
                break
            texts.append(text)
            size, last = size + len(text), cursor
    if backward:
        texts.reverse()
    return texts, last if more else None


async def _stream(texts: list[str], nxt: str | None) -> AsyncIterator[bytes]:
    """The page as JSON, one message at a time (each let go once it is written)."""
    yield b'{"messages":['
    for i in range(len(texts)):
        text, texts[i] = texts[i], ""
        yield (text if i == 0 else "," + text).encode()
        del text
    yield b'],"next":' + orjson.dumps(nxt) + b"}"


AfterParam = Annotated[str | None, Query(pattern=r"^[0-9a-f]{32}$")]
BeforeParam = Annotated[str | None, Query(pattern=r"^([0-9a-f]{32}|latest)$")]
KindsParam = Annotated[str, Query(pattern=r"^(text|image|receipt)(,(text|image|receipt))*$")]


@router.get("/{peer_id}/messages", response_model=HistoryPage)
async def messages(peer_id: str, svc: Svc, me: CurrentUser, after: AfterParam = None,
                   before: BeforeParam = None,
                   limit: Annotated[int, Query(ge=1)] = 100,
                   kinds: KindsParam = "text,image") -> StreamingResponse:
    """Page forward with `after`, backward with `before` (`before=latest` = newest page);
    `kinds=text,image,receipt` includes receipts (not by default)."""
    if not await are_friends(svc.db, me, peer_id):
        raise Forbidden("you are not friends with that user")
    limit = min(limit, svc.settings.history_max_limit)
    wanted = sorted(set(kinds.split(",")))
    texts, nxt = await _page(svc.db, room_id(me, peer_id), after,
                             None if before == LATEST else before, before is not None, limit,
                             svc.settings.max_read_bytes, wanted, max(svc.limits.values()))
    return StreamingResponse(_stream(texts, nxt), media_type="application/json")
