"""The WebSocket endpoints: authenticate, join the hub, then one reader and one writer.

    /ws/{peer_id}  protocol v1 (`duet.v1`): one room, with an accepted friend
    /ws            protocol v2 (`duet.v2`): the device socket, every room of its user

v1 is a filter over the same machinery: a v1 socket is a Connection with a fixed room,
sent only that room's messages; its frames are answered by the same handlers. Every bad
frame gets an `error` frame and the socket stays usable; only authentication, the room,
the frame size, the frame rate and a reader that falls behind close it (contracts.codes).
"""

from __future__ import annotations

import asyncio
import itertools
import logging

from fastapi import WebSocket
from pymongo.errors import PyMongoError
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

from contracts import room_id
from contracts.codes import (
    FORBIDDEN_ROOM,
    NOT_AUTHENTICATED,
    POLICY,
    TOO_LARGE,
    TOO_MANY_SOCKETS,
    UNAVAILABLE,
    error_frame,
)

from .deps import Services
from .errors import Unauthenticated
from .friendship import are_friends
from .handlers import handle
from .outbox import Connection
from .presence import now_ms
from .sessions import store
from .throttle import TokenBucket

log = logging.getLogger(__name__)

WS_PATH = "/ws"
SUBPROTOCOLS = {1: "duet.v1", 2: "duet.v2"}
_BEARER = "bearer."
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


class SocketRoute:
    """ASGI middleware that hands `/ws` and `/ws/{peer_id}` upgrades straight to `socket`.

    Through FastAPI's router a socket keeps a dozen suspended frames and exit stacks for
    its whole life (route, dependency and exception wrappers: ~10 KiB an idle socket,
    measured with tracemalloc); from here it keeps none. Other paths go on to the app.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            path: str = scope["path"]
            if path == WS_PATH:
                await socket(WebSocket(scope, receive, send), None)
                return
            peer_id = path[len(WS_PATH) + 1:]
            if path.startswith(WS_PATH + "/") and peer_id and "/" not in peer_id:
                # uvicorn logs the path of every accepted socket at INFO: it must not say
                # who is talking to whom, so the peer is taken out of it first.
                scope["path"], scope["raw_path"] = WS_PATH + "/-", b"/ws/-"
                await socket(WebSocket(scope, receive, send), peer_id)
                return
        await self.app(scope, receive, send)


async def socket(ws: WebSocket, peer_id: str | None) -> None:
    """peer_id: v1's room peer; None for a v2 device socket."""
    svc: Services = ws.app.state.services
    offered = ws.scope.get("subprotocols", [])
    wanted = SUBPROTOCOLS[1 if peer_id is not None else 2]
    # Accept first (selecting the protocol when offered) so a refusal can carry its code.
    await ws.accept(subprotocol=wanted if wanted in offered else None)
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


async def _authenticate_and_serve(ws: WebSocket, peer_id: str | None, svc: Services) -> None:
    token = _token(ws)
    try:
        if token is None:
            raise Unauthenticated("missing token")
        user, sid = svc.tokens.verify_session(token)
        sessions = store(ws.app)
        await sessions.check(user, sid)
    except PyMongoError:
        await ws.close(UNAVAILABLE, "storage unavailable")
        return
    except Unauthenticated as exc:
        svc.metrics.error(NOT_AUTHENTICATED)
        await ws.close(NOT_AUTHENTICATED, exc.detail)
        return
    del token  # this frame lives as long as the socket
    room = None
    if peer_id is not None:
        try:
            friends = await are_friends(svc.db, user, peer_id)
        except PyMongoError:
            await ws.close(UNAVAILABLE, "storage unavailable")
            return
        if not friends:
            svc.metrics.error(FORBIDDEN_ROOM)
            await ws.close(FORBIDDEN_ROOM, "not an accepted friend")
            return
        room = room_id(user, peer_id)
    # Nothing reads the request headers from here on; an idle socket need not keep them.
    ws.scope["headers"] = []
    if not await svc.quotas.open_socket(user):  # counted across gateways (gateway.quotas)
        svc.metrics.error(TOO_MANY_SOCKETS)
        await ws.close(TOO_MANY_SOCKETS, "too many sockets open for this user")
        return
    conn = Connection(f"{svc.settings.node}-{next(_conn_ids)}", user, peer_id, room,
                      svc.settings.outbox_frames, svc.metrics, svc.settings.max_in_flight,
                      outbox_bytes=svc.settings.outbox_bytes)
    svc.metrics.sockets.inc()
    # Closed (not_authenticated) when its session ends (gateway.sessions), not when the
    # token expires.
    sessions.attach(sid, conn)
    try:
        await _serve(ws, conn, svc)
    finally:
        sessions.detach(sid, conn)
        svc.metrics.sockets.dec()
        await svc.quotas.close_socket(user)


async def _serve(ws: WebSocket, conn: Connection, svc: Services) -> None:
    # First in the outbox; the writer starts only once the user's bindings exist, so
    # `ready` is the first frame and live frames flow from it on.
    if conn.device:
        conn.send({"type": "ready", "user": conn.user, "protocol": 2})
    else:
        conn.send({"type": "ready", "room": conn.room, "user": conn.user, "peer": conn.peer})
    async with svc.hub.joined(conn):
        # Two tasks a socket: this one reads, the writer writes (and sends our close).
        writer = asyncio.create_task(_write(ws, conn))
        if conn.device:
            await _presence_snapshot(conn, svc)
        elif conn.peer is not None and not await _still_friends(conn, svc):
            # Checked again once bound: an unfriend notice sent between the first check
            # and the binding reached no hub.
            conn.close(FORBIDDEN_ROOM, "not an accepted friend")
        try:
            await _read_loop(ws, conn, svc)
        finally:
            conn.stop()
            await asyncio.gather(writer, return_exceptions=True)


async def _still_friends(conn: Connection, svc: Services) -> bool:
    assert conn.peer is not None
    try:
        return await are_friends(svc.db, conn.user, conn.peer)
    except PyMongoError:
        return True  # storage did not answer: the first check's answer stands


async def _presence_snapshot(conn: Connection, svc: Services) -> None:
    """Which friends are online now, after the bindings exist (so no change between the
    two is lost); clients take the newest event per user (`at`)."""
    try:
        online = await svc.presence.online_friends(conn.user)
    except PyMongoError as exc:
        log.warning("presence snapshot failed: %s", type(exc).__name__,
                    extra={"conn": conn.id})
        return
    at = now_ms()
    for user in online:
        conn.send({"type": "presence", "user": user, "online": True, "at": at})


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
            conn.send(error_frame("binary_frame", "frames are JSON text"))
            continue
        if len(text) > limit:
            conn.close(TOO_LARGE, "frame too large")
            return
        await handle(text, conn, svc)
