"""This device's one WebSocket (protocol v2, `/ws`): connect, resume every room it follows
from its cursors, resend what was not acked.

Reconnects by itself with jittered exponential back-off (contracts.codes says which close
codes end it for good). Sends are idempotent: a frame keeps its id across reconnects, so a
lost ack costs a resend, never a second message.
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
from websockets.typing import Subprotocol

from contracts.codes import CLOSES, ERRORS

from .errors import SendError

log = logging.getLogger(__name__)

SUBPROTOCOL = Subprotocol("duet.v2")
FrameHandler = Callable[[dict[str, Any]], Awaitable[None]]
# The sync to send after each `ready` (None: this session does not resume anything).
SyncFrame = Callable[[], dict[str, Any] | None]


class DeviceSession:
    def __init__(self, url: str, token: str, *, on_frame: FrameHandler, sync: SyncFrame,
                 catch_up: SyncFrame | None = None,
                 ssl_context: ssl.SSLContext | None = None,
                 max_size: int = 16 * 1024 * 1024) -> None:
        self._url = f"{url.rstrip('/').replace('http', 'ws', 1)}/ws"
        self._token = token
        self._on_frame = on_frame
        self._sync = sync
        # After `sync_needed`: a sync from a little further back (live frames may have
        # overtaken the notice, moving the cursors past what was lost).
        self._catch_up = catch_up or sync
        self._ssl = ssl_context
        self._max_size = max_size
        self._ws: ClientConnection | None = None
        self._pending: dict[str, tuple[str, asyncio.Future[dict[str, Any]]]] = {}
        self._connected = asyncio.Event()
        self.synced = asyncio.Event()
        self.sockets = 0  # device sockets opened so far (the first, then reconnects)
        self.stored: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.fatal: str | None = None
        self.state = "connecting"
        self._task: asyncio.Task[None] | None = None

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
        await self.post(text)
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(frame["id"], None)

    async def post(self, text: str) -> bool:
        """Send a frame now if connected (a signal, a read, a sync); False if not."""
        if self._ws is None or not self._connected.is_set():
            return False
        try:
            await self._ws.send(text)
            return True
        except ConnectionClosed:
            return False  # a send is resent after the reconnect; the rest is best effort

    async def resync(self, *, catch_up: bool = False) -> None:
        """Ask for a sync now (and after every reconnect, as always)."""
        frame = self._catch_up() if catch_up else self._sync()
        if frame is not None:
            self.synced.clear()
            await self.post(orjson.dumps(frame).decode())

    async def reconnect(self) -> None:
        """Start over on a new socket (which syncs as it opens): the gateway counts what
        it sent on a socket as delivered, so frames this client dropped while nothing
        followed them come back only on a new one. Pending sends are resent."""
        ws = self._ws
        self._connected.clear()
        if ws is not None:
            await ws.close(1000, "resync")

    async def _resync_later(self, delay: float = 1.0, *, catch_up: bool = False) -> None:
        await asyncio.sleep(delay)
        await self.resync(catch_up=catch_up)

    async def _resend_later(self, text: str, delay: float = 0.5) -> None:
        await asyncio.sleep(delay)
        await self.post(text)

    async def _run(self) -> None:
        delay = 0.2
        while True:
            wait = delay * random.uniform(0.5, 1.0)
            try:
                async with connect(self._url, additional_headers={
                        "Authorization": f"Bearer {self._token}"}, ssl=self._ssl,
                        subprotocols=[SUBPROTOCOL], max_size=self._max_size,
                        open_timeout=10) as ws:
                    await self._serve(ws)
                    delay, wait = 0.2, 0.0  # we closed it (reconnect): at once
            except ConnectionClosed as exc:
                close = CLOSES.get(exc.rcvd.code) if exc.rcvd else None
                if close is not None and close.retry == "never":
                    self._fail(close.cause)
                    return
                if close is not None and close.retry == "now":
                    wait = 0.05
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                log.info("connection to %s failed: %s", self._url, exc)
            finally:
                self._ws = None
                self._connected.clear()
            self.state = "reconnecting"
            await asyncio.sleep(wait)
            delay = min(delay * 2, 5.0)

    def _fail(self, reason: str) -> None:
        self.fatal = reason
        self.state = "error"
        self._connected.set()  # wake waiters so they see the failure
        for _, fut in self._pending.values():
            if not fut.done():
                fut.set_exception(SendError("?", "refused", reason))

    async def _serve(self, ws: ClientConnection) -> None:
        ready = orjson.loads(await ws.recv())
        if ready.get("type") != "ready":
            raise ConnectionClosed(None, None)
        self._ws = ws
        self.sockets += 1
        sync = self._sync()
        if sync is not None:
            self.synced.clear()
            await ws.send(orjson.dumps(sync).decode())
        for text, _ in list(self._pending.values()):
            # Pending frames are kept marked as retries: if the lost-ack message is already
            # stored, the gateway answers from storage instead of publishing it again.
            await ws.send(text)
        self._connected.set()
        self.state = "connected"
        async for raw in ws:
            await self._dispatch(orjson.loads(raw))

    async def _dispatch(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "ack":
            entry = self._pending.get(frame["id"])
            if entry and not entry[1].done():
                entry[1].set_result(frame)
        elif kind == "stored":
            fut = self.stored.get(frame["id"])
            if fut is not None and not fut.done():
                fut.set_result(frame)
        elif kind == "synced":
            self.synced.set()
        elif kind == "error":
            entry = self._pending.get(str(frame.get("id")))
            if entry and frame.get("code") == ERRORS["publish_failed"].code:
                # Not confirmed by the broker: the same frame again shortly is safe.
                asyncio.create_task(self._resend_later(entry[0]))
                return
            if entry and not entry[1].done():
                entry[1].set_exception(SendError(frame["id"], frame["code"], frame["detail"]))
                return
            if frame.get("code") == ERRORS["sync_failed"].code:
                asyncio.create_task(self._resync_later())
            elif frame.get("code") == ERRORS["sync_needed"].code:
                asyncio.create_task(self._resync_later(0, catch_up=True))
            elif entry is None:
                log.warning("server error: %s %s", frame.get("code"), frame.get("detail"))
        try:
            await self._on_frame(frame)
        except Exception:  # a bug in handling one frame must not end the session
            log.exception("handling a %s frame failed", kind)
