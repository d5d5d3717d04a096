"""The retention sweep (DUET_RETENTION_DAYS > 0; docs/sessions.md "Retention").

A message's ciphertext stays until every device it was for, and the device that sent it,
has fetched it (its envelope's `keys` and `from`, of those still live; each device says
how far it holds a room with a `fetched` frame), so `sync` still closes any gap; then for
the retention. Each sweep stamps `fetched_at` on the messages every such device now holds,
and deletes those stamped more than the retention ago: a message is kept at least the
retention after its last device fetched it, and at most one sweep interval longer. A
message from before devices said what they fetched (v1 sockets never do) is kept.
"""

from __future__ import annotations

import logging
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from contracts import MESSAGES, USERS, room_members
from contracts.documents import FETCHED

log = logging.getLogger(__name__)

PAGE = 1000  # unstamped messages read at once


async def sweep(db: AsyncDatabase[dict[str, Any]], now_ms: int, retention_ms: int) -> int:
    """Stamp what every device holds, delete what was stamped before the retention.
    Returns how many messages went."""
    live: dict[str, set[str]] = {}
    fetched: dict[str, dict[str, str]] = {}

    async def live_kids(user: str) -> set[str]:
        if user not in live:
            doc = await db[USERS].find_one({"_id": user}, projection={"keys.kid": 1})
            live[user] = {k["kid"] for k in (doc or {}).get("keys", [])}
        return live[user]

    async def held(room: str) -> dict[str, str]:
        if room not in fetched:
            fetched[room] = {d["kid"]: d["cursor"]
                             async for d in db[FETCHED].find({"room": room})}
        return fetched[room]

    last: tuple[str, str] | None = None
    while True:
        query: dict[str, Any] = {"fetched_at": None}
        if last is not None:
            query["$or"] = [{"room": {"$gt": last[0]}},
                            {"room": last[0], "cursor": {"$gt": last[1]}}]
        page = await db[MESSAGES].find(
            query, projection={"room": 1, "cursor": 1, "body.keys.kid": 1, "body.from": 1}
        ).sort([("room", 1), ("cursor", 1)]).limit(PAGE).to_list()
        if not page:
            break
        done = []
        for doc in page:
            room, cursor = doc["room"], doc["cursor"]
            body = doc.get("body", {})
            # The devices it was for, and the one that sent it (v3 keeps no entry for it:
            # it keeps its own copy, which needs the server's cursor first).
            kids = {k["kid"] for k in body.get("keys", [])} | {body.get("from")}
            members = set()
            for user in room_members(room):
                members |= await live_kids(user)
            holding = await held(room)
            if all(holding.get(kid, "") >= cursor for kid in kids & members):
                done.append(doc["_id"])
        if done:
            await db[MESSAGES].update_many({"_id": {"$in": done}},
                                           {"$set": {"fetched_at": now_ms}})
        last = (page[-1]["room"], page[-1]["cursor"])
    gone = await db[MESSAGES].delete_many({"fetched_at": {"$lt": now_ms - retention_ms}})
    if gone.deleted_count:
        log.info("retention: %d messages past DUET_RETENTION_DAYS deleted",
                 gone.deleted_count)
    return int(gone.deleted_count)
