"""Accounts: register, log in, look a user up."""

from __future__ import annotations

import logging
import time

from bson import ObjectId
from fastapi import APIRouter
from pymongo.errors import DuplicateKeyError

from contracts import USERS, Credentials, Registered, Token, UserOut

from .deps import CurrentUser, Svc
from .errors import Conflict, NotFound, Unauthenticated

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api", tags=["accounts"])


@router.post("/register", status_code=201, response_model=Registered)
async def register(body: Credentials, svc: Svc) -> Registered:
    user_id = str(ObjectId())
    doc = {
        "_id": user_id,
        "username": body.username,
        "username_key": body.username.lower(),
        "password_hash": await svc.passwords.hash(body.password),
        "created_at": int(time.time() * 1000),
    }
    try:
        await svc.db[USERS].insert_one(doc)
    except DuplicateKeyError:
        raise Conflict(f"username {body.username!r} is taken") from None
    log.info("registered user %s", user_id)
    return Registered(user_id=user_id, username=body.username)


@router.post("/login", response_model=Token)
async def login(body: Credentials, svc: Svc) -> Token:
    user = await svc.db[USERS].find_one({"username_key": body.username.lower()})
    # Unknown users are verified against a dummy hash: same cost, same answer.
    ok = await svc.passwords.verify(user["password_hash"] if user else None, body.password)
    if not ok or user is None:
        raise Unauthenticated("invalid username or password")
    token = svc.tokens.issue(user["_id"], user["username"])
    return Token(access_token=token, expires_in=svc.tokens.ttl_s, user_id=user["_id"])


@router.get("/users/{username}", response_model=UserOut)
async def get_user(username: str, svc: Svc, _: CurrentUser) -> UserOut:
    user = await svc.db[USERS].find_one({"username_key": username.lower()})
    if user is None:
        raise NotFound(f"no user {username!r}")
    return UserOut(user_id=user["_id"], username=user["username"],
                   keys=user.get("keys", []), revoked=user.get("revoked", []))
