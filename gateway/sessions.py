"""Server-side sessions: every access token names one (its `sid` claim), one per login.

A session ends when it is revoked (logout, `DELETE /api/sessions/{id}`, log out
everywhere, a password change), deleted (account deletion) or expired (`expires_at`, which
`POST /api/sessions/renew` pushes forward). From then on:

- REST: the gateway that ended it refuses its tokens at once (it drops its cached entry);
  another gateway within DUET_SESSION_CACHE_S (default 2 s), the life of a cached "this
  session is live" answer (0: every request asks MongoDB).
- Sockets (v1 and v2): the gateway that ended it closes them at once (close code
  not_authenticated); every gateway sweeps the sessions of its own sockets every SWEEP_S
  and closes those whose session ended, so a socket outlives its session by at most
  SWEEP_S plus one query (docs/design.md says why a sweep rather than a broker notice).

A socket is not bound to its token's `exp`: it lives as long as its session does, and a
client renews the session (sliding expiry) without reconnecting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import defaultdict
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from contracts import USERS, Token
from contracts.api import PasswordChange, SessionOut, Sessions
from contracts.codes import NOT_AUTHENTICATED
from contracts.documents import SESSION_INDEXES, SESSIONS

from .batcher import Batcher, first
from .errors import Forbidden, NotFound, TooManyRequests, Unauthenticated
from .outbox import Connection

log = logging.getLogger(__name__)
security = logging.getLogger("duet.security")

# DUET_SESSION_CACHE_S: on loopback, a cached check left authenticated REST requests/s
# where they were without sessions; asking MongoDB on every request cost 15-25%.
SWEEP_S = 2.0  # how often a gateway checks the sessions of its sockets
LAST_SEEN_MS = 60_000  # last_seen is written at most this often
SWEEP_BATCH = 1000  # session ids per query of a sweep
CHECK_BATCH = 500  # session ids per query of the checks asked at once (a connect storm)
_CHECKED = {"user": 1, "revoked": 1, "expires_at": 1, "last_seen": 1}
LABEL_CHARS = 80


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def client_address(request: Request) -> str:
    return request.client.host if request.client else "?"


class SessionStore:
    """One per gateway: the `sessions` collection, a short cache of live sessions, and the
    sockets of each session held here (swept every SWEEP_S)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]], ttl_s: int,
                 cache_s: float = 2.0) -> None:
        self._docs = db[SESSIONS]
        self._db = db
        self.ttl_ms = ttl_s * 1000
        self.cache_s = cache_s
        self._live: dict[str, tuple[float, str, int]] = {}  # sid -> (until, user, last_seen)
        self._sockets: dict[str, set[Connection]] = defaultdict(set)
        self._sweeper: asyncio.Task[None] | None = None
        self._indexed = False
        # Checks that miss the cache meanwhile: one query for all (many sockets connecting).
        self._lookups: Batcher[str, None, dict[str, Any] | None] = Batcher(
            self._find, first, CHECK_BATCH)

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def close(self) -> None:
        """Stop the sweep; safe twice."""
        task, self._sweeper = self._sweeper, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._lookups.close()

    # -- sessions ----------------------------------------------------------------------
    async def create(self, user: str, label: str) -> str:
        if not self._indexed:
            for collection, fields, options in SESSION_INDEXES:
                await self._db[collection].create_index(fields, **options)
            self._indexed = True
        sid = secrets.token_urlsafe(12)
        now = now_ms()
        await self._docs.insert_one({
            "_id": sid, "user": user, "created_at": now, "last_seen": now,
            "expires_at": now + self.ttl_ms, "label": label[:LABEL_CHARS], "revoked": False})
        # The user's ended sessions are kept until the next login, then dropped.
        await self._docs.delete_many({"user": user, "$or": [
            {"revoked": True}, {"expires_at": {"$lte": now}}]})
        self._live[sid] = (time.monotonic() + self.cache_s, user, now)
        return sid

    async def check(self, user: str, sid: str) -> None:
        """Raise Unauthenticated unless `sid` is a live session of `user`."""
        hit = self._live.get(sid)
        now = time.monotonic()
        if hit is not None and hit[0] > now and hit[1] == user:
            return
        if not sid:
            raise Unauthenticated("invalid token")
        doc = await self._lookups.submit(sid, None)
        at = now_ms()
        if doc is None or doc["user"] != user or doc["revoked"] or doc["expires_at"] <= at:
            self._live.pop(sid, None)
            raise Unauthenticated("session ended")
        if at - doc["last_seen"] >= LAST_SEEN_MS:
            await self._docs.update_one({"_id": sid}, {"$set": {"last_seen": at}})
        if len(self._live) > 100_000:
            self._live.clear()  # forget rather than grow
        self._live[sid] = (now + self.cache_s, user, at)

    async def _find(self, sids: dict[str, None]) -> dict[str, dict[str, Any] | None]:
        found = {d["_id"]: d async for d in self._docs.find({"_id": {"$in": list(sids)}},
                                                            _CHECKED)}
        return {sid: found.get(sid) for sid in sids}

    async def renew(self, user: str, sid: str) -> int:
        """Push the session's expiry forward; returns the new expires_at (ms)."""
        at = now_ms()
        expires = at + self.ttl_ms
        done = await self._docs.update_one(
            {"_id": sid, "user": user, "revoked": False, "expires_at": {"$gt": at}},
            {"$set": {"expires_at": expires, "last_seen": at}})
        if done.matched_count == 0:
            raise Unauthenticated("session ended")
        return expires

    async def live(self, user: str) -> list[dict[str, Any]]:
        cursor = self._docs.find({"user": user, "revoked": False,
                                  "expires_at": {"$gt": now_ms()}}).sort("created_at", -1)
        return [doc async for doc in cursor]

    async def revoke(self, user: str, *, only: str | None = None,
                     keep: str | None = None) -> list[str]:
        """End the user's live sessions (just `only`, or all but `keep`); close their
        sockets here at once. Returns the ids ended."""
        query: dict[str, Any] = {"user": user, "revoked": False}
        if only is not None:
            query["_id"] = only
        elif keep is not None:
            query["_id"] = {"$ne": keep}
        ended = [doc["_id"] async for doc in self._docs.find(query, {"_id": 1})]
        if ended:
            await self._docs.update_many({"_id": {"$in": ended}},
                                         {"$set": {"revoked": True}})
        for sid in ended:
            self._end(sid)
        return ended

    # -- sockets -----------------------------------------------------------------------
    def attach(self, sid: str, conn: Connection) -> None:
        self._sockets[sid].add(conn)

    def detach(self, sid: str, conn: Connection) -> None:
        conns = self._sockets.get(sid)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self._sockets[sid]

    def _end(self, sid: str) -> None:
        self._live.pop(sid, None)
        for conn in list(self._sockets.get(sid, ())):
            conn.close(NOT_AUTHENTICATED, "session ended")

    async def sweep(self) -> int:
        """Close the sockets here whose session was revoked, deleted or has expired;
        returns how many sessions ended."""
        sids = list(self._sockets)
        ended = 0
        for i in range(0, len(sids), SWEEP_BATCH):
            batch = sids[i:i + SWEEP_BATCH]
            live = {doc["_id"] async for doc in self._docs.find(
                {"_id": {"$in": batch}, "revoked": False, "expires_at": {"$gt": now_ms()}},
                {"_id": 1})}
            for sid in batch:
                if sid not in live:
                    ended += 1
                    self._end(sid)
        return ended

    async def _sweep_forever(self) -> None:
        failing = False  # one line per MongoDB outage, not one per round
        while True:
            await asyncio.sleep(SWEEP_S)
            try:
                ended = await self.sweep()
            except PyMongoError as exc:  # sockets stay open; try again next round
                if not failing:
                    log.warning("session sweep failed: %s", type(exc).__name__)
                failing = True
                continue
            if failing:
                log.info("session sweep works again")
                failing = False
            if ended:
                log.info("session sweep closed the sockets of %d ended sessions", ended)


def store(app: FastAPI) -> SessionStore:
    """The app's SessionStore, made (and its sweep started) on first use."""
    found: SessionStore | None = getattr(app.state, "session_store", None)
    if found is None:
        svc = app.state.services
        found = SessionStore(svc.db, svc.settings.token_ttl_s, svc.settings.session_cache_s)
        found.start()
        app.state.session_store = found
    return found


# -- REST --------------------------------------------------------------------------------
from .deps import CurrentSession, Svc  # noqa: E402  (deps imports SessionStore from here)

router = APIRouter(tags=["sessions"])  # under /api: included by accounts.router


@router.get("/sessions", response_model=Sessions)
async def list_sessions(request: Request, me: CurrentSession) -> Sessions:
    docs = await store(request.app).live(me.user)
    return Sessions(sessions=[
        SessionOut(id=d["_id"], created_at=d["created_at"], last_seen=d["last_seen"],
                   expires_at=d["expires_at"], label=d["label"], current=d["_id"] == me.sid)
        for d in docs])


@router.delete("/sessions/{session_id}", status_code=204)
async def revoke_session(session_id: str, request: Request, me: CurrentSession) -> Response:
    if not await store(request.app).revoke(me.user, only=session_id):
        raise NotFound("no live session with that id")
    security.info("session revoked user=%s session=%s by=%s address=%s", me.user, session_id,
                  me.sid, client_address(request))
    return Response(status_code=204)


async def _everywhere(request: Request, me: Any) -> Response:
    ended = await store(request.app).revoke(me.user)
    security.info("logged out everywhere user=%s sessions=%s by=%s address=%s", me.user,
                  ",".join(ended), me.sid, client_address(request))
    return Response(status_code=204)


@router.delete("/sessions", status_code=204)
async def revoke_all_sessions(request: Request, me: CurrentSession) -> Response:
    """Log out everywhere, this session included."""
    return await _everywhere(request, me)


@router.post("/logout", status_code=204)
async def logout(request: Request, me: CurrentSession, everywhere: bool = False) -> Response:
    if everywhere:
        return await _everywhere(request, me)
    await store(request.app).revoke(me.user, only=me.sid)
    security.info("logged out user=%s session=%s address=%s", me.user, me.sid,
                  client_address(request))
    return Response(status_code=204)


@router.post("/sessions/renew", response_model=Token)
async def renew_session(request: Request, svc: Svc, me: CurrentSession) -> Token:
    """A fresh token for the same session, whose expiry moves forward (sliding)."""
    await store(request.app).renew(me.user, me.sid)
    user = await svc.db[USERS].find_one({"_id": me.user}, {"username": 1})
    if user is None:
        raise Unauthenticated("session ended")
    token = svc.tokens.issue(me.user, user["username"], me.sid)
    return Token(access_token=token, expires_in=svc.tokens.ttl_s, user_id=me.user)


@router.post("/password", status_code=204)
async def change_password(body: PasswordChange, request: Request, svc: Svc,
                          me: CurrentSession) -> Response:
    """Check the current password (a wrong one counts as a failed login), store the new
    one, and end every other session of the user."""
    address = client_address(request)
    user = await svc.db[USERS].find_one({"_id": me.user}, {"username_key": 1,
                                                            "password_hash": 1})
    if user is None:
        raise Unauthenticated("session ended")
    name = user["username_key"]
    wait = max(svc.login_users.retry_after(name), svc.login_ips.retry_after(address))
    if wait > 0:
        security.warning("password change throttled user=%s session=%s address=%s",
                         me.user, me.sid, address)
        raise TooManyRequests(f"too many failed attempts; try again in {int(wait) + 1} s",
                              retry_after=int(wait) + 1)
    if not await svc.passwords.verify(user["password_hash"], body.current):
        svc.login_users.fail(name)
        svc.login_ips.fail(address)
        security.warning("password change refused (wrong current password) user=%s "
                         "session=%s address=%s", me.user, me.sid, address)
        raise Forbidden("the current password is wrong")
    await svc.db[USERS].update_one({"_id": me.user},
                                   {"$set": {"password_hash": await svc.passwords.hash(body.new)}})
    ended = await store(request.app).revoke(me.user, keep=me.sid)
    security.info("password changed user=%s session=%s address=%s ended=%s", me.user, me.sid,
                  address, ",".join(ended))
    return Response(status_code=204)
