"""One WebSocket's outgoing side: a bounded outbox drained by a single writer."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from starlette.websockets import WebSocket

log = logging.getLogger(__name__)

# Close codes (documented in the README).
NOT_AUTHENTICATED = 4401
FORBIDDEN_ROOM = 4403
POLICY = 1008
TOO_LARGE = 1009
RESTARTING = 1012
TRY_AGAIN_LATER = 1013


class Connection:
    """What the room fan-out needs of a socket: who, where, and a non-blocking push."""

    __slots__ = ("id", "user", "peer", "room", "_outbox", "_closed", "close_code",
                 "close_reason", "_held", "_seen_live")

    def __init__(self, conn_id: str, user: str, peer: str, room: str, outbox_frames: int) -> None:
        self.id = conn_id
        self.user = user
        self.peer = peer
        self.room = room
        self._outbox: asyncio.Queue[str] = asyncio.Queue(outbox_frames)
        self._closed = asyncio.Event()
        self.close_code = 1000
        self.close_reason = ""
        # While a sync replays history, live frames wait here (then are de-duplicated).
        self._held: list[tuple[str, str]] | None = None
        # Cursors pushed live before the first sync, so the replay does not repeat them.
        self._seen_live: set[str] | None = set()

    # -- fan-out side (never blocks) -------------------------------------------------
    def push(self, text: str, cursor: str | None = None) -> None:
        if self._closed.is_set():
            return
        if self._held is not None:
            if len(self._held) >= self._outbox.maxsize:
                self.close(TRY_AGAIN_LATER, "too far behind")
                return
            self._held.append((cursor or "", text))
            return
        if cursor is not None:
            if self._seen_live is not None:
                self._seen_live.add(cursor)
                if len(self._seen_live) > self._outbox.maxsize:
                    self._seen_live = None
        try:
            self._outbox.put_nowait(text)
        except asyncio.QueueFull:
            # A reader that does not keep up is closed rather than buffered without bound.
            self.close(TRY_AGAIN_LATER, "too far behind")

    def send(self, frame: dict[str, Any]) -> None:
        self.push(orjson.dumps(frame).decode())

    # -- sync replay -----------------------------------------------------------------
    def hold_live(self) -> None:
        self._held = []

    def already_sent(self, cursor: str) -> bool:
        return self._seen_live is not None and cursor in self._seen_live

    async def replay(self, text: str) -> None:
        """Queue a replayed frame, waiting for room (replay is paced by the reader)."""
        await self._outbox.put(text)

    def release_live(self, replayed: set[str]) -> None:
        """End a replay: send the live frames it held that it did not already send."""
        held, self._held = self._held or [], None
        self._seen_live = None
        for cursor, text in held:
            if cursor not in replayed:
                self.push(text)

    # -- lifecycle -------------------------------------------------------------------
    def close(self, code: int, reason: str) -> None:
        """Ask the socket to close with this code; the first call wins."""
        if not self._closed.is_set():
            self.close_code, self.close_reason = code, reason
            self._closed.set()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def write_loop(self, ws: WebSocket) -> None:
        """The single writer: drain the outbox into the socket, in order."""
        while True:
            text = await self._outbox.get()
            await ws.send_text(text)
