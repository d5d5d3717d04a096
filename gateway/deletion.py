"""DELETE /api/account: the user, their devices, friendships, blocks, read positions,
presence and sessions go, and so do the conversations they were in (the policy and why:
docs/security.md, "Account deletion"). Their sockets close on every gateway at once.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from fastapi import APIRouter, Request, Response
from pymongo.asynchronous.database import AsyncDatabase

from contracts import FRIENDSHIPS, MESSAGES, PRESENCE, READS, USERS
from contracts.api import AccountDeletion
from contracts.documents import (
    BLOCKS,
    FETCHED,
    FRIEND_REQUEST_DAYS,
    HISTORY_SHARES,
    PREKEYS,
    SESSIONS,
)
from contracts.routing import account_key

from .deps import CurrentUser, Svc
from .errors import Forbidden, TooManyRequests, Unauthenticated
from .friendship import announce_ended
from .sessions import client_address

log = logging.getLogger(__name__)
security = logging.getLogger("duet.security")
router = APIRouter(prefix="/api", tags=["accounts"])

# A message acked before the deletion may still be on its way to MongoDB (in duet.persist,
# or in a persister's batch: well under a second when the persisters keep up), and a
# gateway may write the user's presence once more while their sockets close. One more
# sweep this long after catches those; the gateway that answered runs it.
SWEEP_AGAIN_S = 10.0
_sweeps: set[asyncio.Task[None]] = set()  # held so the loop does not drop them


def _rooms_of(user: str) -> dict[str, Any]:
    """Every room with this user in it, whether or not a friendship still names it."""
    uid = re.escape(user)
    return {"$regex": f"^{uid}\\.|\\.{uid}$"}


async def _sweep(db: AsyncDatabase[dict[str, Any]], user: str) -> None:
    """Remove what deletion leaves behind: the conversations and everything of the user's."""
    rooms = _rooms_of(user)
    await db[MESSAGES].delete_many({"room": rooms})
    await db[READS].delete_many({"$or": [{"user": user}, {"room": rooms}]})
    await db[PRESENCE].delete_many({"user": user})
    await db[SESSIONS].delete_many({"user": user})
    await db[FRIENDSHIPS].delete_many({"$or": [{"requester": user}, {"addressee": user}]})
    await db[BLOCKS].delete_many({"$or": [{"blocker": user}, {"blocked": user}]})
    await db[FRIEND_REQUEST_DAYS].delete_many({"user": user})
    await db[HISTORY_SHARES].delete_many({"user": user})
    await db[PREKEYS].delete_many({"user": user})
    await db[FETCHED].delete_many({"$or": [{"user": user}, {"room": rooms}]})


async def _sweep_later(db: AsyncDatabase[dict[str, Any]], user: str) -> None:
    await asyncio.sleep(SWEEP_AGAIN_S)
    try:
        await _sweep(db, user)
    except Exception:  # nothing waits on this task: say it failed
        log.exception("second sweep after deleting user %s failed", user)


@router.delete("/account", status_code=204)
async def delete_account(body: AccountDeletion, svc: Svc, me: CurrentUser,
                         request: Request) -> Response:
    """Delete the account of the token's user, given its password (a token alone, maybe
    stolen, is not enough). Wrong passwords count with the failed logins and password
    changes (per user and per address), so a token is no faster a password oracle."""
    user = await svc.db[USERS].find_one({"_id": me},
                                        projection={"password_hash": 1, "username_key": 1})
    if user is None:
        raise Unauthenticated("no such user")
    name, address = user["username_key"], client_address(request)
    wait = max(svc.login_users.retry_after(name), svc.login_ips.retry_after(address))
    if wait > 0:
        security.warning("account deletion throttled user=%s address=%s", me, address)
        raise TooManyRequests(f"too many failed attempts; try again in {int(wait) + 1} s",
                              retry_after=int(wait) + 1)
    if not await svc.passwords.verify(user["password_hash"], body.password):
        svc.login_users.fail(name)
        svc.login_ips.fail(address)
        security.warning("account deletion refused (wrong password) user=%s address=%s",
                         me, address)
        raise Forbidden("the password is wrong")
    # The user first: from here nobody can log in as them, and the name is free again.
    await svc.db[USERS].delete_one({"_id": me})
    await svc.db[SESSIONS].delete_many({"user": me})
    friends = [d["addressee"] if d["requester"] == me else d["requester"]
               async for d in svc.db[FRIENDSHIPS].find(
                   {"$or": [{"requester": me}, {"addressee": me}], "status": "accepted"},
                   projection={"requester": 1, "addressee": 1})]
    # Every gateway closes the user's sockets (not_authenticated) and the friends' v1
    # sockets with them (forbidden_room), and forgets the friendships.
    try:
        await svc.broker.notify(b'{"type":"account_deleted"}', account_key(me))
    except Exception as exc:  # best effort: the deleted sessions close them too
        log.warning("account-deleted notice not sent: %s", exc)
    for friend in friends:
        await announce_ended(svc.broker, me, friend)
    await _sweep(svc.db, me)
    task = asyncio.create_task(_sweep_later(svc.db, me))
    _sweeps.add(task)
    task.add_done_callback(_sweeps.discard)
    security.info("account deleted user=%s friends=%d", me, len(friends))
    return Response(status_code=204)
