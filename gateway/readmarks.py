"""Read positions, moved in batches (group commit).

A device sends a `read` frame for each burst of messages it shows, so a gateway with many
open conversations gets many of them a second, and each used to cost three MongoDB round
trips (the upsert, the newest unread, the count), which on loopback cost more CPU than the
messages they were about. `ReadMarks.mark` queues the move; one flush at a time writes every
queued move (one `bulk_write`), reads back the positions they left (one `find`: another
device may be further on), and counts what is unread after each (one `aggregate`, a capped
count and the newest per room), then answers each caller and announces each position. What
is queued while a flush runs goes with the next one (gateway.batcher), so an idle gateway
flushes a mark at once and a busy one flushes many for the same three round trips.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from pymongo import DESCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from broker import Broker, PublishError
from contracts import MESSAGES, READS, ReadState
from contracts.documents import read_doc_id
from contracts.envelope import MESSAGE_KINDS
from contracts.routing import read_key

from .batcher import Batcher

log = logging.getLogger(__name__)

UNREAD_CAP = 1000  # unread messages are counted up to this many
MAX_BATCH = 100  # moves per flush: one $unionWith stage each, far below MongoDB's 1,000


def unread_query(me: str, room: str, after: str | None) -> dict[str, Any]:
    """The friend's messages (text and image, not receipts) in `room` after `after`."""
    query: dict[str, Any] = {"room": room, "sender": {"$ne": me},
                             "kind": {"$in": list(MESSAGE_KINDS)}}
    if after is not None:
        query["cursor"] = {"$gt": after}
    return query


def _unread_pipeline(key: int, me: str, room: str, after: str) -> list[dict[str, Any]]:
    """One group `{_id: key, unread, newest}`, or none when nothing is unread."""
    return [{"$match": unread_query(me, room, after)}, {"$sort": {"cursor": DESCENDING}},
            {"$limit": UNREAD_CAP}, {"$project": {"_id": 0, "cursor": 1}},
            {"$group": {"_id": key, "unread": {"$sum": 1}, "newest": {"$first": "$cursor"}}}]


class ReadMarks:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], broker: Broker) -> None:
        self._db, self._broker = db, broker
        # (user, room) -> the furthest cursor asked: moves of one room in a batch are one
        self._batches: Batcher[tuple[str, str], str, ReadState] = Batcher(
            self._flush, max, MAX_BATCH)

    async def mark(self, me: str, room: str, cursor: str) -> ReadState:
        """Move `me`'s read position in `room` forward to `cursor` (never back) and tell
        their devices; the position it is at now. Raises PyMongoError when not kept."""
        return await self.submit(me, room, cursor)

    def submit(self, me: str, room: str, cursor: str) -> asyncio.Future[ReadState]:
        """As `mark`, without waiting: the future is done once the move is written (or
        failed), so a socket goes on reading meanwhile."""
        return self._batches.submit((me, room), cursor)

    async def close(self) -> None:
        await self._batches.close()

    async def _flush(self, batch: dict[tuple[str, str], str]) -> dict[tuple[str, str], ReadState]:
        states = await self._write(batch)
        await self._announce(list(states.items()))
        return states

    async def _write(self, batch: dict[tuple[str, str], str]
                     ) -> dict[tuple[str, str], ReadState]:
        at = int(time.time() * 1000)
        ids = {read_doc_id(me, room): (me, room) for me, room in batch}
        await self._db[READS].bulk_write(
            [UpdateOne({"_id": doc_id}, {"$max": {"cursor": batch[key]},
                                         "$set": {"user": key[0], "room": key[1], "at": at}},
                       upsert=True) for doc_id, key in ids.items()], ordered=False)
        now = dict(batch)  # unless deleted meanwhile
        now.update({ids[d["_id"]]: d["cursor"] async for d in self._db[READS].find(
            {"_id": {"$in": list(ids)}}, projection={"cursor": 1})})
        keys = list(now)
        pipelines = [_unread_pipeline(i, me, room, now[(me, room)])
                     for i, (me, room) in enumerate(keys)]
        pipeline = [*pipelines[0], *({"$unionWith": {"coll": MESSAGES, "pipeline": p}}
                                     for p in pipelines[1:])]
        counted = {doc["_id"]: doc async for doc in
                   await self._db[MESSAGES].aggregate(pipeline)}
        return {key: ReadState(room=key[1], cursor=now[key],
                               newest=counted.get(i, {}).get("newest"),
                               unread=counted.get(i, {}).get("unread", 0))
                for i, key in enumerate(keys)}

    async def _announce(self, states: list[tuple[tuple[str, str], ReadState]]) -> None:
        for (me, _), state in states:
            try:
                await self._broker.notify(orjson.dumps({"type": "read", **state.model_dump()}),
                                          read_key(me))
            except PublishError as exc:  # the position is kept; other devices see it on reload
                log.warning("read position not announced: %s", exc.reason)
