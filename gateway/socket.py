"""The WebSocket endpoint `/ws/{peer_id}`: authenticate, join the room, then read and write.

Every bad frame is answered with an `error` frame and the socket stays usable; only
authentication, the room, the frame size and a reader that falls behind close it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

import orjson
from fastapi import WebSocket
from pydantic import ValidationError
from pymongo.errors import PyMongoError
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

from contracts import MESSAGES, SendFrame, SyncFrame, message_doc_id, room_id

from .connection import (
    FORBIDDEN_ROOM,
    NOT_AUTHENTICATED,
    POLICY,
    TOO_LARGE,
    Connection,
)
from .deps import Services
from .errors import Unauthenticated
from .friends import are_friends
from .history import read_after
from .publisher import Outgoing
from .throttle import TokenBucket

log = logging.getLogger(__name__)

WS_PATH = "/ws/"
SUBPROTOCOL = "duet.v1"
_BEARER = "bearer."
_REPLAY_PAGE = 500
_conn_ids = itertools.count(1)


def _header(ws: WebSocket, name: bytes) -> str | None:
    """A request header from the raw ASGI list (no cached Headers object per socket)."""
    for key, value in ws.scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _token(ws: WebSocket) -> str | None:
    header = _header(ws, b"authorization") or ""
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    for proto in ws.scope.get("subprotocols", []):
        if proto.startswith(_BEARER):
            return str(proto[len(_BEARER):])
    return None


def origin_allowed(ws: WebSocket, allowed: list[str]) -> bool:
    """Browsers send Origin: it must be listed, or (with no list) be this very host."""
    origin = _header(ws, b"origin")
    if origin is None:
        return True
    origin = origin.rstrip("/")
    if allowed:
        return origin in allowed or "*" in allowed
    host = _header(ws, b"host") or ""
    return origin.split("://", 1)[-1] == host


def _error(code: str, detail: str, frame_id: Any = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": code, "detail": detail}
    if isinstance(frame_id, str):
        frame["id"] = frame_id
    return frame


def _validation_detail(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "frame"
    return f"{where}: {first.get('msg', 'invalid')}"


class SocketRoute:
    """ASGI middleware that hands `/ws/{peer_id}` upgrades straight to `socket`.

    Through FastAPI's router a socket keeps a dozen suspended frames and exit stacks for
    its whole life (route, dependency and exception wrappers: ~10 KiB an idle socket,
    measured with tracemalloc); from here it keeps none. Other paths go on to the app.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            path: str = scope["path"]
            peer_id = path[len(WS_PATH):]
            if path.startswith(WS_PATH) and peer_id and "/" not in peer_id:
                await socket(WebSocket(scope, receive, send), peer_id)
                return
        await self.app(scope, receive, send)


async def socket(ws: WebSocket, peer_id: str) -> None:
    svc: Services = ws.app.state.services
    offered = ws.scope.get("subprotocols", [])
    # Accept first (selecting duet.v1 when offered) so a refusal can carry its close code.
    await ws.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
    if not origin_allowed(ws, svc.settings.allowed_origins):
        svc.metrics.error(POLICY)
        await ws.close(POLICY, "origin not allowed")
        return
    address = ws.client.host if ws.client else "?"
    if not svc.connections.acquire(address):
        await ws.close(POLICY, "too many connections from this address")
        return
    try:
        await _authenticate_and_serve(ws, peer_id, svc)
    finally:
        svc.connections.release(address)


async def _authenticate_and_serve(ws: WebSocket, peer_id: str, svc: Services) -> None:
    token = _token(ws)
    try:
        if token is None:
            raise Unauthenticated("missing token")
        user = svc.tokens.verify(token)
    except Unauthenticated as exc:
        svc.metrics.error(NOT_AUTHENTICATED)
        await ws.close(NOT_AUTHENTICATED, exc.detail)
        return
    del token  # this frame lives as long as the socket
    try:
        friends = await are_friends(svc.db, user, peer_id)
    except PyMongoError:
        await ws.close(1011, "storage unavailable")
        return
    if not friends:
        svc.metrics.error(FORBIDDEN_ROOM)
        await ws.close(FORBIDDEN_ROOM, "not an accepted friend")
        return
    # Nothing reads the request headers from here on; an idle socket need not keep them.
    ws.scope["headers"] = []
    conn = Connection(f"{svc.settings.node}-{next(_conn_ids)}", user, peer_id,
                      room_id(user, peer_id), svc.settings.outbox_frames, svc.metrics,
                      svc.settings.max_in_flight)
    svc.metrics.sockets.inc()
    try:
        await _serve(ws, conn, svc)
    finally:
        svc.metrics.sockets.dec()


async def _serve(ws: WebSocket, conn: Connection, svc: Services) -> None:
    # First in the outbox; the writer starts only once the room's binding exists, so
    # `ready` is the first frame and live messages flow from it on.
    conn.send({"type": "ready", "room": conn.room, "user": conn.user, "peer": conn.peer})
    async with svc.rooms.joined(conn):
        # Two tasks a socket: this one reads, the writer writes (and sends our close).
        writer = asyncio.create_task(_write(ws, conn))
        try:
            await _read_loop(ws, conn, svc)
        finally:
            conn.stop()
            await asyncio.gather(writer, return_exceptions=True)


async def _write(ws: WebSocket, conn: Connection) -> None:
    """Drain the outbox until the socket stops; a close() is sent as the close frame, and
    the client's answer to it ends the reader."""
    await conn.write_loop(ws)
    if conn.close_code is not None:
        log.info("closing socket: %s", conn.close_reason,
                 extra={"conn": conn.id, "user": conn.user, "code": conn.close_code})
        try:
            await ws.close(conn.close_code, conn.close_reason)
        except (RuntimeError, WebSocketDisconnect, OSError):
            pass  # the peer is already gone


async def _read_loop(ws: WebSocket, conn: Connection, svc: Services) -> None:
    limit = svc.settings.max_frame_bytes
    bucket = TokenBucket(svc.settings.rate_per_s, svc.settings.rate_burst)
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect" or conn.closed:
            return
        if not bucket.take():
            conn.close(POLICY, "rate limit exceeded")
            return
        text = message.get("text")
        if text is None:
            svc.metrics.frame_in("binary")
            conn.send(_error("binary_frame", "frames are JSON text"))
            continue
        if len(text) > limit:
            conn.close(TOO_LARGE, "frame too large")
            return
        await _handle(text, conn, svc)


async def _handle(text: str, conn: Connection, svc: Services) -> None:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        svc.metrics.frame_in("other")
        conn.send(_error("bad_json", "the frame is not valid JSON"))
        return
    if not isinstance(data, dict):
        svc.metrics.frame_in("other")
        conn.send(_error("invalid_frame", "a frame is a JSON object"))
        return
    kind = data.get("type")
    svc.metrics.frame_in(kind if kind in ("send", "sync") else "other")
    try:
        if kind == "send":
            await _send(SendFrame.model_validate(data), conn, svc)
        elif kind == "sync":
            await _sync(SyncFrame.model_validate(data), conn, svc)
        else:
            conn.send(_error("unknown_type", f"unknown frame type {str(kind)[:40]!r}",
                             data.get("id")))
    except ValidationError as exc:
        conn.send(_error("invalid_frame", _validation_detail(exc), data.get("id")))


def _envelope_problem(frame: SendFrame, conn: Connection, svc: Services) -> dict[str, Any] | None:
    """The envelope must be for this room, from this user, of this kind, within its size."""
    env = frame.body
    if env.room != conn.room or env.sender != conn.user or env.kind != frame.kind:
        return _error("envelope_mismatch",
                      "the envelope's room, sender and kind must match the socket and frame",
                      frame.id)
    if len(env.ct) > svc.limits[frame.kind]:
        return _error("too_large", f"{frame.kind} larger than this server accepts", frame.id)
    return None


async def _send(frame: SendFrame, conn: Connection, svc: Services) -> None:
    problem = _envelope_problem(frame, conn, svc)
    if problem is not None:
        conn.send(problem)
        return
    if frame.retry and await _answer_retry(frame, conn, svc):
        return
    # Pipelined: the ack (or publish_failed) follows the broker's confirm; the reader goes
    # on unless this socket already has its limit of messages awaiting one. Stamped after
    # that wait, so cursors follow the order messages reach the broker.
    await conn.begin_send()
    cursor, ts = svc.clock.next()
    # The sender is the token's user, whatever the frame claimed.
    message = {"type": "message", "id": frame.id, "sender": conn.user, "room": conn.room,
               "kind": frame.kind, "body": frame.body.model_dump(by_alias=True), "ts": ts,
               "cursor": cursor}
    svc.publisher.submit(Outgoing(conn.room, orjson.dumps(message), cursor, ts, frame.id, conn))


async def _answer_retry(frame: SendFrame, conn: Connection, svc: Services) -> bool:
    """A resend of a stored message is acknowledged from storage, not published again."""
    try:
        doc = await svc.db[MESSAGES].find_one({"_id": message_doc_id(conn.user, frame.id)},
                                              projection={"ts": 1, "cursor": 1})
    except PyMongoError:
        return False  # publish again: storage and clients de-duplicate by (sender, id)
    if doc is None:
        return False
    conn.send({"type": "ack", "id": frame.id, "ts": doc["ts"], "cursor": doc["cursor"]})
    conn.send({"type": "stored", "id": frame.id, "cursor": doc["cursor"]})
    return True


async def _sync(frame: SyncFrame, conn: Connection, svc: Services) -> None:
    """Replay stored messages after the cursor, then let the held live ones through."""
    conn.hold_live(frame.after)
    after, count = frame.after, 0
    try:
        while True:
            docs = await read_after(svc.db, conn.room, after, _REPLAY_PAGE)
            for doc in docs:
                cursor = doc["cursor"]
                if not conn.already_sent(cursor):
                    await conn.replay(orjson.dumps(doc).decode(), cursor)
                    count += 1
                after = cursor
            if len(docs) < _REPLAY_PAGE:
                break
    except PyMongoError as exc:
        log.warning("sync failed: %s", type(exc).__name__, extra={"conn": conn.id})
        conn.release_live()
        conn.send(_error("sync_failed", "history is unavailable; retry the sync"))
        return
    await conn.replay(orjson.dumps({"type": "synced", "count": count, "cursor": after}).decode())
    missed = conn.release_live()
    if missed:
        await svc.rooms.catch_up(conn, missed)
