"""Who is friends with whom: the queries every part of the gateway asks (no routes here)."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from contracts import FRIENDSHIPS, is_user_id, room_id


async def are_friends(db: AsyncDatabase[dict[str, Any]], a: str, b: str) -> bool:
    if a == b or not is_user_id(b):
        return False
    doc = await db[FRIENDSHIPS].find_one({"_id": room_id(a, b), "status": "accepted"},
                                         projection={"_id": 1})
    return doc is not None


async def accepted_friends(db: AsyncDatabase[dict[str, Any]], user: str) -> list[str]:
    """The user ids of a user's accepted friends."""
    docs = db[FRIENDSHIPS].find(
        {"$or": [{"requester": user}, {"addressee": user}], "status": "accepted"},
        projection={"requester": 1, "addressee": 1})
    return [d["addressee"] if d["requester"] == user else d["requester"] async for d in docs]
