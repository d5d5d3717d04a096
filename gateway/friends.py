"""Friends: request by username, accept, list. A room opens only between accepted friends."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Response
from pymongo.errors import DuplicateKeyError

from contracts import FRIENDSHIPS, USERS, Friend, FriendRequest, Friends, is_user_id, room_id

from .deps import CurrentUser, Svc
from .errors import Conflict, NotFound
from .friendship import accepted_friends, are_friends

__all__ = ["accepted_friends", "are_friends", "router"]

router = APIRouter(prefix="/api/friends", tags=["friends"])


def _view(doc: dict[str, Any], me: str, peer_name: str) -> Friend:
    peer = doc["addressee"] if doc["requester"] == me else doc["requester"]
    if doc["status"] == "accepted":
        status = "accepted"
    else:
        status = "outgoing" if doc["requester"] == me else "incoming"
    return Friend(user_id=peer, username=peer_name, status=status)


@router.get("", response_model=Friends)
async def list_friends(svc: Svc, me: CurrentUser) -> Friends:
    docs = await svc.db[FRIENDSHIPS].find(
        {"$or": [{"requester": me}, {"addressee": me}]}).to_list(None)
    peers = [d["addressee"] if d["requester"] == me else d["requester"] for d in docs]
    names = {u["_id"]: u["username"] async for u in svc.db[USERS].find(
        {"_id": {"$in": peers}}, projection={"username": 1})}
    return Friends(friends=[
        _view(d, me, names.get(p, "?")) for d, p in zip(docs, peers, strict=True)])


@router.post("", response_model=Friend, status_code=201)
async def request_friend(body: FriendRequest, svc: Svc, me: CurrentUser,
                         response: Response) -> Friend:
    """Ask a user to be friends; if they already asked you, this accepts."""
    peer = await svc.db[USERS].find_one({"username_key": body.username.lower()})
    if peer is None:
        raise NotFound(f"no user {body.username!r}")
    if peer["_id"] == me:
        raise Conflict("you cannot befriend yourself")
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
    assert existing is not None
    return _view(existing, me, peer["username"])


@router.post("/{user_id}/accept", response_model=Friend)
async def accept_friend(user_id: str, svc: Svc, me: CurrentUser) -> Friend:
    if not is_user_id(user_id) or user_id == me:
        raise NotFound("no friend request from that user")
    doc = await svc.db[FRIENDSHIPS].find_one_and_update(
        {"_id": room_id(me, user_id), "addressee": me},
        {"$set": {"status": "accepted"}}, return_document=True)
    if doc is None:
        raise NotFound("no friend request from that user")
    peer = await svc.db[USERS].find_one({"_id": user_id}, projection={"username": 1})
    return _view(doc, me, peer["username"] if peer else "?")
