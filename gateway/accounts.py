"""Accounts: register, log in, look a user up."""

from __future__ import annotations

import logging
import math
import time

from bson import ObjectId
from fastapi import APIRouter, Request
from pymongo.errors import DuplicateKeyError

from contracts import USERS, Credentials, Registered, Token, UserOut

from . import sessions
from .deps import CurrentUser, Svc
from .errors import Conflict, NotFound, TooManyRequests, Unauthenticated

log = logging.getLogger(__name__)
security = logging.getLogger("duet.security")
router = APIRouter(prefix="/api", tags=["accounts"])
router.include_router(sessions.router)  # /api/sessions, /api/logout, /api/password


@router.post("/register", status_code=201, response_model=Registered)
async def register(body: Credentials, svc: Svc, request: Request) -> Registered:
    # Every attempt from an address counts, a taken name too; past the free ones, the
    # address waits longer for each (gateway.throttle.Backoff).
    ip = request.client.host if request.client else "?"
    wait = svc.registrations.retry_after(ip)
    if wait > 0:
        raise TooManyRequests(f"too many registrations from this address; try again in "
                              f"{math.ceil(wait)} s", retry_after=math.ceil(wait))
    svc.registrations.fail(ip)
    # The body is valid (Credentials) and the name free before argon2 runs: a taken name
    # costs one indexed read, not an argon2id run (~30 ms of CPU at the default cost).
    key = body.username.lower()
    if await svc.db[USERS].find_one({"username_key": key}, {"_id": 1}) is not None:
        raise Conflict(f"username {body.username!r} is taken")
    user_id = str(ObjectId())
    doc = {
        "_id": user_id,
        "username": body.username,
        "username_key": key,
        "password_hash": await svc.passwords.hash(body.password),
        "created_at": int(time.time() * 1000),
    }
    try:
        await svc.db[USERS].insert_one(doc)
    except DuplicateKeyError:  # taken meanwhile, by a registration racing this one
        raise Conflict(f"username {body.username!r} is taken") from None
    log.info("registered user %s", user_id)
    return Registered(user_id=user_id, username=body.username)


@router.post("/login", response_model=Token)
async def login(body: Credentials, svc: Svc, request: Request) -> Token:
    name = body.username.lower()
    ip = request.client.host if request.client else "?"
    # Failures count per (user, address) and per address, never per user alone: a
    # stranger failing Alice's password slows their own address, never Alice's login.
    pair = f"{name} {ip}"
    wait = max(svc.login_pairs.retry_after(pair), svc.login_ips.retry_after(ip))
    if wait > 0:
        # No username in the log: people type their password into that field.
        security.warning("login throttled address=%s window=%s", ip,
                         "user" if svc.login_pairs.retry_after(pair) > 0 else "address")
        raise TooManyRequests(f"too many failed logins; try again in {math.ceil(wait)} s",
                              retry_after=math.ceil(wait))
    user = await svc.db[USERS].find_one({"username_key": name})
    # An unknown username is refused without running argon2: the same answer as a wrong
    # password, sooner (what that reveals, and why it is accepted: docs/security.md).
    if user is None or not await svc.passwords.verify(user["password_hash"], body.password):
        svc.login_pairs.fail(pair)
        svc.login_ips.fail(ip)  # a growing delay for the address
        security.warning("login failed user=%s address=%s",
                         user["_id"] if user is not None else "unknown", ip)
        raise Unauthenticated("invalid username or password")
    svc.login_pairs.succeed(pair)
    sid = await sessions.store(request.app).create(
        user["_id"], request.headers.get("user-agent", ""))
    security.info("login user=%s session=%s address=%s", user["_id"], sid, ip)
    token = svc.tokens.issue(user["_id"], user["username"], sid)
    return Token(access_token=token, expires_in=svc.tokens.ttl_s, user_id=user["_id"])


@router.get("/users/{username}", response_model=UserOut)
async def get_user(username: str, svc: Svc, _: CurrentUser) -> UserOut:
    user = await svc.db[USERS].find_one({"username_key": username.lower()})
    if user is None:
        raise NotFound(f"no user {username!r}")
    return UserOut(user_id=user["_id"], username=user["username"],
                   keys=user.get("keys", []), revoked=user.get("revoked", []),
                   device_list=user.get("device_list"))
