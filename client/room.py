"""One room's WebSocket: connect, resume from a cursor, resend what was not acked.

Reconnects by itself with jittered exponential back-off. Sends are idempotent: a frame
keeps its id across reconnects, so a lost ack costs a resend, never a second message.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from .errors import SendError

log = logging.getLogger(__name__)

FATAL_CLOSE = {4401: "not authenticated", 4403: "not allowed in this room"}
FrameHandler = Callable[[dict[str, Any]], Awaitable[None]]


class RoomSession:
    def __init__(self, url: str, token: str, peer_id: str, *, on_message: FrameHandler,
                 cursor: str | None, sync: bool, ssl_context: ssl.SSLContext | None = None,
                 max_size: int = 16 * 1024 * 1024) -> None:
        self._url = f"{url.rstrip('/').replace('http', 'ws', 1)}/ws/{peer_id}"
        self._token = token
        self._on_message = on_message
        self.cursor = cursor
        self._sync = sync
        self.syncing = sync
        self._ssl = ssl_context
        self._max_size = max_size
        self._ws: ClientConnection | None = None
        self._pending: dict[str, tuple[str, asyncio.Future[dict[str, Any]]]] = {}
        self._connected = asyncio.Event()
        self.synced = asyncio.Event()
        self.stored: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.fatal: str | None = None
        self.state = "connecting"
        self.on_state: Callable[[str], None] | None = None
        self._task: asyncio.Task[None] | None = None

    def _set_state(self, state: str) -> None:
        self.state = state
        if self.on_state:
            self.on_state(state)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        """Stop reconnecting and close the socket; safe twice."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for _, fut in self._pending.values():
            if not fut.done():
                fut.set_exception(SendError("?", "closed", "the session closed"))

    async def wait_connected(self, timeout: float) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)
        if self.fatal:
            raise SendError("?", "refused", self.fatal)

    async def send(self, frame: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        """Send a `send` frame; return its ack (resending on reconnect until then)."""
        text = orjson.dumps(frame).decode()
        retry = orjson.dumps({**frame, "retry": True}).decode()
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[frame["id"]] = (retry, fut)
        self.stored[frame["id"]] = asyncio.get_running_loop().create_future()
        if self._ws is not None and self._connected.is_set():
            try:
                await self._ws.send(text)
            except ConnectionClosed:
                pass  # resent after the reconnect
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(frame["id"], None)

    async def _resend_later(self, text: str, delay: float = 0.5) -> None:
        await asyncio.sleep(delay)
        if self._ws is not None:
            try:
                await self._ws.send(text)
            except ConnectionClosed:
                pass

    async def _run(self) -> None:
        delay = 0.2
        while True:
            try:
                async with connect(self._url, additional_headers={
                        "Authorization": f"Bearer {self._token}"}, ssl=self._ssl,
                        max_size=self._max_size, open_timeout=10) as ws:
                    await self._serve(ws)
                    delay = 0.2
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else None
                if code in FATAL_CLOSE:
                    self._fail(FATAL_CLOSE[code])
                    return
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                log.info("connection to %s failed: %s", self._url, exc)
            finally:
                self._ws = None
                self._connected.clear()
            self._set_state("reconnecting")
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, 5.0)

    def _fail(self, reason: str) -> None:
        self.fatal = reason
        self._set_state("error")
        self._connected.set()  # wake waiters so they see the failure
        for _, fut in self._pending.values():
            if not fut.done():
                fut.set_exception(SendError("?", "refused", reason))

    async def _serve(self, ws: ClientConnection) -> None:
        ready = orjson.loads(await ws.recv())
        if ready.get("type") != "ready":
            raise ConnectionClosed(None, None)
        self._ws = ws
        if self._sync:
            self.synced.clear()
            await ws.send(orjson.dumps({"type": "sync", "after": self.cursor}).decode())
        for text, _ in list(self._pending.values()):
            # Pending frames are kept marked as retries: if the lost-ack message is already
            # stored, the gateway answers from storage instead of publishing it again.
            await ws.send(text)
        self._connected.set()
        self._set_state("connected")
        async for raw in ws:
            await self._dispatch(orjson.loads(raw))

    async def _dispatch(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        log.debug("frame %s %s", kind, frame.get("id"))
        if kind == "message":
            try:
                await self._on_message(frame)
            except Exception:  # a bug in handling one message must not end the session
                log.exception("handling message %s failed", frame.get("id"))
            self.cursor = max(self.cursor or "", frame["cursor"])
        elif kind == "ack":
            entry = self._pending.get(frame["id"])
            if entry and not entry[1].done():
                entry[1].set_result(frame)
        elif kind == "stored":
            fut = self.stored.get(frame["id"])
            if fut is not None and not fut.done():
                fut.set_result(frame)
        elif kind == "synced":
            if frame.get("cursor"):
                self.cursor = max(self.cursor or "", frame["cursor"])
            self.synced.set()
        elif kind == "error":
            entry = self._pending.get(str(frame.get("id")))
            if entry and frame.get("code") == "publish_failed":
                # Not confirmed by the broker: the same frame again shortly is safe.
                asyncio.create_task(self._resend_later(entry[0]))
            elif entry and not entry[1].done():
                entry[1].set_exception(SendError(frame["id"], frame["code"], frame["detail"]))
            elif entry is None:
                log.warning("server error: %s %s", frame.get("code"), frame.get("detail"))
