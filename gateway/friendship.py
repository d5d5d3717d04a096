"""Who is friends with whom, who blocked whom, and how many friend requests a user made
today: the queries every part of the gateway asks (no routes here), and the notice that
tells every gateway a friendship ended."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import orjson
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from broker import Broker, PublishError
from contracts import FRIENDSHIPS, is_user_id, room_id
from contracts.documents import BLOCKS, FRIEND_REQUEST_DAYS, block_doc_id
from contracts.routing import friends_key

log = logging.getLogger(__name__)


async def are_friends(db: AsyncDatabase[dict[str, Any]], a: str, b: str) -> bool:
    if a == b or not is_user_id(b):
        return False
    doc = await db[FRIENDSHIPS].find_one({"_id": room_id(a, b), "status": "accepted"},
                                         projection={"_id": 1})
    return doc is not None


async def accepted_friends(db: AsyncDatabase[dict[str, Any]], user: str) -> list[str]:
    """The user ids of a user's accepted friends."""
    return (await accepted_friends_of(db, [user]))[user]


async def accepted_friends_of(db: AsyncDatabase[dict[str, Any]], users: list[str]
                              ) -> dict[str, list[str]]:
    """Each of these users' accepted friends, in one query."""
    friends: dict[str, list[str]] = {u: [] for u in users}
    async for d in db[FRIENDSHIPS].find(
            {"$or": [{"requester": {"$in": users}}, {"addressee": {"$in": users}}],
             "status": "accepted"}, projection={"requester": 1, "addressee": 1}):
        a, b = d["requester"], d["addressee"]
        if a in friends:
            friends[a].append(b)
        if b in friends:
            friends[b].append(a)
    return friends


async def has_blocked(db: AsyncDatabase[dict[str, Any]], blocker: str, blocked: str) -> bool:
    doc = await db[BLOCKS].find_one({"_id": block_doc_id(blocker, blocked)},
                                    projection={"_id": 1})
    return doc is not None


async def blocked_by(db: AsyncDatabase[dict[str, Any]], blocker: str) -> set[str]:
    """The users this user blocked."""
    return {d["blocked"] async for d in db[BLOCKS].find({"blocker": blocker},
                                                         projection={"blocked": 1})}


def _day_id(user: str, now: dt.datetime) -> tuple[str, dt.datetime]:
    """The counter's id for this UTC day, and when MongoDB may drop it (a day after)."""
    day = now.date()
    end = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) + dt.timedelta(days=2)
    return f"{user}/{day.isoformat()}", end


async def count_friend_request(db: AsyncDatabase[dict[str, Any]], user: str,
                               limit: int) -> int:
    """Count one friend request of the user's today (UTC); return the seconds until the
    next day when that makes more than `limit`, else 0. One atomic $inc on one document:
    every gateway counts in the same place."""
    now = dt.datetime.now(dt.UTC)
    doc_id, expires = _day_id(user, now)
    doc = await db[FRIEND_REQUEST_DAYS].find_one_and_update(
        {"_id": doc_id}, {"$inc": {"count": 1}, "$setOnInsert": {"user": user,
                                                                   "expires_at": expires}},
        upsert=True, return_document=ReturnDocument.AFTER, projection={"count": 1})
    if doc is None or doc["count"] <= limit:
        return 0
    midnight = dt.datetime(now.year, now.month, now.day, tzinfo=dt.UTC) + dt.timedelta(days=1)
    return max(1, int((midnight - now).total_seconds()) + 1)


async def announce_ended(broker: Broker, a: str, b: str) -> None:
    """Tell every gateway holding a socket of a or b that their friendship ended: they
    forget it and close the pair's v1 sockets (gateway.hub). Best effort, like every
    transient notice: MongoDB already says so, and a gateway that misses it still refuses
    the pair once the user's sockets there have closed (the cache lives no longer)."""
    for user, peer in ((a, b), (b, a)):
        try:
            await broker.notify(orjson.dumps({"type": "friendship_ended", "user": user,
                                              "peer": peer}), friends_key(user))
        except PublishError as exc:
            log.warning("friendship-ended notice not sent: %s", exc.reason)
