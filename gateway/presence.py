"""Who is online, across every gateway, with MongoDB and the broker only.

A user is online while at least one of their devices has a socket on any gateway. Each
gateway keeps one `presence` document per user it holds a socket of (`<uid>/<node>`),
with an `expires_at` it pushes forward every `ttl / 3` seconds: a gateway that dies
(SIGKILL, a lost host) stops doing so, and its documents expire.

Events. When a user's first socket opens here, the gateway writes the document and
announces `online`; when their last socket here closes, it deletes it and, if no other
gateway's document of the user is live, announces `offline`. Every gateway also sweeps
expired documents (a dead gateway's), each deleted by one sweeper only, who announces
`offline` for users left with none. An announcement is one transient publish under
`presence.<room>` for one of the user's rooms, with every other room in CC: each friend's
gateways get it once. Events carry `at` (ms) so a client keeps the newest per user.

Worst case after a SIGKILL: a document refreshed just before the kill expires `ttl`
later, and the next sweep (every `ttl / 6`) finds it: `offline` within 1.2 × ttl (7.2 s
at the default 6 s).

Hidden users (settings.hide_presence) keep their documents, marked `hidden`, so nothing is
announced about them and snapshots leave them out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from broker import Broker, PublishError
from contracts import PRESENCE, USERS, room_id
from contracts.batch import CC_HEADER
from contracts.documents import presence_doc_id
from contracts.routing import presence_key

from .batcher import Batcher, first
from .friendship import accepted_friends, accepted_friends_of

log = logging.getLogger(__name__)
SWEEP_LIMIT = 1000  # expired documents handled per sweep
SNAPSHOT_BATCH = 100  # users whose friends' presence one pair of queries reads


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Presence:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], broker: Broker, node: str,
                 ttl_s: float) -> None:
        self._db = db
        self._docs = db[PRESENCE]
        self._broker = broker
        self._node = node
        self._ttl_ms = int(ttl_s * 1000)
        self._local: set[str] = set()  # users with a socket here
        # The snapshots of sockets connecting meanwhile: two queries for all of them.
        self._snapshots: Batcher[str, None, list[str]] = Batcher(
            self._online_friends, first, SNAPSHOT_BATCH)
        # Arrivals and departures, handled in order by one worker: a user's quick
        # arrive-leave never leaves a document behind.
        self._events: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        # Documents of an earlier process with this node id are not ours to refresh.
        await self._expire_node()
        self._tasks = [asyncio.create_task(self._work()), asyncio.create_task(self._tick())]

    async def close(self) -> None:
        await self._snapshots.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await self._expire_node()
        except PyMongoError as exc:
            log.warning("presence cleanup failed: %s", type(exc).__name__)

    # -- told by the hub -----------------------------------------------------------------
    def arrived(self, user: str) -> None:
        self._local.add(user)
        self._events.put_nowait((user, True))

    def left(self, user: str) -> None:
        self._local.discard(user)
        self._events.put_nowait((user, False))

    async def _work(self) -> None:
        while True:
            user, arrived = await self._events.get()
            try:
                if arrived:
                    await self._arrive(user)
                else:
                    await self._leave(user)
            except (PyMongoError, PublishError) as exc:
                # The heartbeat re-creates a missing document; a sweep ends a stale one.
                log.warning("presence of a user not updated: %s", type(exc).__name__)

    async def _arrive(self, user: str) -> None:
        if user not in self._local:
            return  # already gone again
        hidden = await self.hidden(user)
        await self._docs.update_one(
            {"_id": presence_doc_id(user, self._node)},
            {"$set": {"user": user, "node": self._node, "hidden": hidden,
                      "expires_at": now_ms() + self._ttl_ms}}, upsert=True)
        if not hidden:
            await self.announce(user, True)

    async def _leave(self, user: str) -> None:
        if user in self._local:
            return  # back again
        doc = await self._docs.find_one_and_delete({"_id": presence_doc_id(user, self._node)})
        if doc is not None and not doc.get("hidden") and not await self.live(user):
            await self.announce(user, False)

    # -- heartbeat and sweep ---------------------------------------------------------------
    async def _tick(self) -> None:
        period = self._ttl_ms / 6000
        n = 0
        while True:
            await asyncio.sleep(period)
            n += 1
            try:
                if n % 2 == 0:
                    await self._heartbeat()
                await self.sweep()
            except (PyMongoError, PublishError) as exc:
                log.warning("presence heartbeat failed: %s", type(exc).__name__)

    async def _heartbeat(self) -> None:
        expires = now_ms() + self._ttl_ms
        result = await self._docs.update_many({"node": self._node},
                                              {"$set": {"expires_at": expires}})
        if result.matched_count < len(self._local):
            # Swept while this gateway stalled (or never written): write them again.
            have = {d["user"] async for d in self._docs.find({"node": self._node},
                                                             projection={"user": 1})}
            for user in self._local - have:
                self._events.put_nowait((user, True))

    async def sweep(self) -> None:
        """Expired documents (a gateway that stopped refreshing): each deleted by one
        sweeper, who announces `offline` for a user left with no live document."""
        now = now_ms()
        expired = self._docs.find({"expires_at": {"$lt": now}}, limit=SWEEP_LIMIT)
        async for doc in expired:
            gone = await self._docs.delete_one({"_id": doc["_id"], "expires_at": {"$lt": now}})
            if gone.deleted_count and not doc.get("hidden") and not await self.live(
                    doc["user"]):
                await self.announce(doc["user"], False)

    async def _expire_node(self) -> None:
        await self._docs.update_many({"node": self._node}, {"$set": {"expires_at": 0}})

    # -- queries and announcements ---------------------------------------------------------
    async def live(self, user: str) -> bool:
        return await self._docs.find_one(
            {"user": user, "expires_at": {"$gt": now_ms()}}, projection={"_id": 1}) is not None

    async def hidden(self, user: str) -> bool:
        doc = await self._db[USERS].find_one({"_id": user}, projection={"settings": 1})
        return bool(doc and doc.get("settings", {}).get("hide_presence"))

    async def online(self, users: list[str]) -> list[str]:
        """Of these users, those shown online now."""
        if not users:
            return []
        docs = self._docs.find({"user": {"$in": users}, "expires_at": {"$gt": now_ms()},
                                "hidden": {"$ne": True}}, projection={"user": 1})
        return sorted({d["user"] async for d in docs})

    async def online_friends(self, user: str) -> list[str]:
        """Of the user's accepted friends, those shown online now (a connect's snapshot)."""
        return await self._snapshots.submit(user, None)

    async def _online_friends(self, users: dict[str, None]) -> dict[str, list[str]]:
        friends = await accepted_friends_of(self._db, list(users))
        online = set(await self.online(sorted({f for fs in friends.values() for f in fs})))
        return {u: sorted(f for f in fs if f in online) for u, fs in friends.items()}

    async def announce(self, user: str, online: bool) -> None:
        friends = await accepted_friends(self._db, user)
        if not friends:
            return
        keys = [presence_key(room_id(user, f)) for f in friends]
        body = orjson.dumps({"type": "presence", "user": user, "online": online,
                             "at": now_ms()})
        await self._broker.notify(body, keys[0], {CC_HEADER: keys[1:]} if keys[1:] else None)

    async def set_hidden(self, user: str, hidden: bool) -> None:
        """The user changed hide_presence: mark their documents and tell their friends."""
        await self._docs.update_many({"user": user}, {"$set": {"hidden": hidden}})
        if hidden:
            await self.announce(user, False)
        elif await self.live(user):
            await self.announce(user, True)

