"""Friends: request by username, accept, list, unfriend; blocks. A room opens only between
accepted friends; a block ends the friendship and keeps the blocked user from asking again.

What a blocked user is told (nothing: their request looks pending, as one the other side
ignores) and why: docs/security.md.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Response
from pymongo.errors import DuplicateKeyError

from contracts import FRIENDSHIPS, USERS, Friend, FriendRequest, Friends, is_user_id, room_id
from contracts.api import Blocked, BlockRequest, Blocks
from contracts.documents import BLOCKS, block_doc_id

from .deps import CurrentUser, Svc
from .errors import Conflict, NotFound, TooManyRequests
from .friendship import (
    accepted_friends,
    announce_ended,
    are_friends,
    blocked_by,
    count_friend_request,
    has_blocked,
)

__all__ = ["accepted_friends", "are_friends", "router"]

router = APIRouter(tags=["friends"])


def _view(doc: dict[str, Any], me: str, peer_name: str) -> Friend:
    peer = doc["addressee"] if doc["requester"] == me else doc["requester"]
    if doc["status"] == "accepted":
        status = "accepted"
    else:
        status = "outgoing" if doc["requester"] == me else "incoming"
    return Friend(user_id=peer, username=peer_name, status=status)


@router.get("/api/friends", response_model=Friends)
async def list_friends(svc: Svc, me: CurrentUser) -> Friends:
    """Friends and requests both ways; requests from users I blocked are not shown."""
    docs = await svc.db[FRIENDSHIPS].find(
        {"$or": [{"requester": me}, {"addressee": me}]}).to_list(None)
    blocked = await blocked_by(svc.db, me) if docs else set()
    docs = [d for d in docs if d["requester"] not in blocked]
    peers = [d["addressee"] if d["requester"] == me else d["requester"] for d in docs]
    names = {u["_id"]: u["username"] async for u in svc.db[USERS].find(
        {"_id": {"$in": peers}}, projection={"username": 1})}
    return Friends(friends=[
        _view(d, me, names.get(p, "?")) for d, p in zip(docs, peers, strict=True)])


@router.post("/api/friends", response_model=Friend, status_code=201)
async def request_friend(body: FriendRequest, svc: Svc, me: CurrentUser,
                         response: Response) -> Friend:
    """Ask a user to be friends; if they already asked you, this accepts.

    Every call counts towards DUET_FRIEND_REQUESTS_PER_DAY, whatever its answer (so the
    limit also bounds probing for names). A user who blocked you gets nothing, and you
    are answered as if they had (a pending request they never act on)."""
    wait = await count_friend_request(svc.db, me, svc.settings.friend_requests_per_day)
    if wait:
        raise TooManyRequests(
            f"more than {svc.settings.friend_requests_per_day} friend requests today; "
            "try again tomorrow (UTC)", retry_after=wait)
    peer = await svc.db[USERS].find_one({"username_key": body.username.lower()})
    if peer is None:
        raise NotFound(f"no user {body.username!r}")
    if peer["_id"] == me:
        raise Conflict("you cannot befriend yourself")
    if await has_blocked(svc.db, me, peer["_id"]):
        raise Conflict("you blocked this user; unblock them first")
    room = room_id(me, peer["_id"])
    friendships = svc.db[FRIENDSHIPS]
    doc = {"_id": room, "requester": me, "addressee": peer["_id"], "status": "pending",
           "created_at": int(time.time() * 1000)}
    try:
        await friendships.insert_one(doc)
        return _view(doc, me, peer["username"])
    except DuplicateKeyError:
        pass
    existing = await friendships.find_one_and_update(
        {"_id": room, "addressee": me, "status": "pending"},
        {"$set": {"status": "accepted"}}, return_document=True)
    if existing is None:
        existing = await friendships.find_one({"_id": room})
    response.status_code = 200
    if existing is None:  # unfriended meanwhile
        raise Conflict("the friendship changed meanwhile; ask again")
    return _view(existing, me, peer["username"])


@router.post("/api/friends/{user_id}/accept", response_model=Friend)
async def accept_friend(user_id: str, svc: Svc, me: CurrentUser) -> Friend:
    if not is_user_id(user_id) or user_id == me or await has_blocked(svc.db, me, user_id):
        raise NotFound("no friend request from that user")
    doc = await svc.db[FRIENDSHIPS].find_one_and_update(
        {"_id": room_id(me, user_id), "addressee": me},
        {"$set": {"status": "accepted"}}, return_document=True)
    if doc is None:
        raise NotFound("no friend request from that user")
    peer = await svc.db[USERS].find_one({"_id": user_id}, projection={"username": 1})
    return _view(doc, me, peer["username"] if peer else "?")


async def _end(svc: Svc, me: str, peer: str) -> bool:
    """Remove the pair's friendship or request, either way round; when it was a
    friendship, every gateway forgets it and closes the pair's v1 sockets."""
    doc = await svc.db[FRIENDSHIPS].find_one_and_delete({"_id": room_id(me, peer)})
    if doc is None:
        return False
    if doc["status"] == "accepted":
        await announce_ended(svc.broker, me, peer)
    return True


@router.delete("/api/friends/{user_id}", status_code=204)
async def unfriend(user_id: str, svc: Svc, me: CurrentUser) -> Response:
    """End a friendship, or withdraw or decline a request (either side). The messages
    stay: befriending again brings the history back."""
    if not is_user_id(user_id) or user_id == me or not await _end(svc, me, user_id):
        raise NotFound("no friendship or request with that user")
    return Response(status_code=204)


@router.get("/api/blocks", response_model=Blocks)
async def list_blocks(svc: Svc, me: CurrentUser) -> Blocks:
    docs = await svc.db[BLOCKS].find({"blocker": me}).sort("created_at", 1).to_list(None)
    names = {u["_id"]: u["username"] async for u in svc.db[USERS].find(
        {"_id": {"$in": [d["blocked"] for d in docs]}}, projection={"username": 1})}
    return Blocks(blocks=[Blocked(user_id=d["blocked"], username=names.get(d["blocked"], "?"),
                                  since=d["created_at"]) for d in docs])


@router.post("/api/blocks", response_model=Blocked, status_code=201)
async def block(body: BlockRequest, svc: Svc, me: CurrentUser, response: Response) -> Blocked:
    """Block a user (friend or not): the friendship or request between us ends, and they
    can no longer open a room, deliver, or ask again. Blocking twice answers 200."""
    peer = await svc.db[USERS].find_one({"username_key": body.username.lower()},
                                        projection={"username": 1})
    if peer is None:
        raise NotFound(f"no user {body.username!r}")
    if peer["_id"] == me:
        raise Conflict("you cannot block yourself")
    doc = {"_id": block_doc_id(me, peer["_id"]), "blocker": me, "blocked": peer["_id"],
           "created_at": int(time.time() * 1000)}
    try:
        await svc.db[BLOCKS].insert_one(doc)
    except DuplicateKeyError:
        response.status_code = 200
        doc = await svc.db[BLOCKS].find_one({"_id": doc["_id"]}) or doc
    # After the block exists, so a request racing this one cannot slip in between.
    await _end(svc, me, peer["_id"])
    return Blocked(user_id=peer["_id"], username=peer["username"], since=doc["created_at"])


@router.delete("/api/blocks/{user_id}", status_code=204)
async def unblock(user_id: str, svc: Svc, me: CurrentUser) -> Response:
    """Lift a block. No friendship comes back: either of you may ask again."""
    if not is_user_id(user_id):
        raise NotFound("you have not blocked that user")
    gone = await svc.db[BLOCKS].delete_one({"_id": block_doc_id(me, user_id)})
    if gone.deleted_count == 0:
        raise NotFound("you have not blocked that user")
    return Response(status_code=204)
