"""One WebSocket's outgoing side: a bounded outbox drained by a single writer.

Per socket it holds a deque and at most one waiting future at a time (no asyncio.Queue,
Event or Semaphore: each carries deques of its own), because 10,000 idle sockets must fit
in ~20 KB each.

It also remembers enough of what it sent to close the in-flight race of a `sync`: a
message published before this socket's room binding existed and stored after its history
read reaches it through the persister's `stored` notice (see Rooms and the README).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

import orjson
from starlette.websockets import WebSocket

from .metrics import GatewayMetrics

log = logging.getLogger(__name__)

# Close codes (documented in the README).
NOT_AUTHENTICATED = 4401
FORBIDDEN_ROOM = 4403
POLICY = 1008
TOO_LARGE = 1009
RESTARTING = 1012
TRY_AGAIN_LATER = 1013

# Cursors a socket remembers having been sent, at most (then it may send a duplicate,
# which clients drop by (sender, id), but never leave a gap).
MAX_TRACKED = 20_000


def cursor_us(cursor: str) -> int:
    """The publish time (µs) a cursor begins with."""
    return int(cursor[:16], 16)


class Connection:
    """What the room fan-out needs of a socket: who, where, and a non-blocking push."""

    __slots__ = ("id", "user", "peer", "room", "_outbox", "_outbox_max", "_wake",
                 "closed", "close_code", "close_reason", "_held", "_held_items", "sent",
                 "track_until_us", "synced", "sync_after", "_metrics", "_in_flight",
                 "_max_in_flight", "_slot")

    def __init__(self, conn_id: str, user: str, peer: str, room: str, outbox_frames: int,
                 metrics: GatewayMetrics, max_in_flight: int = 32,
                 margin_s: float = 5.0) -> None:
        self._metrics = metrics
        self.id = conn_id
        self.user = user
        self.peer = peer
        self.room = room
        self._outbox: deque[str] = deque()
        self._outbox_max = outbox_frames
        # The writer waits on it for frames (or the close); replay waits on it for room.
        self._wake: asyncio.Future[None] | None = None
        # Messages published but not yet confirmed; at the limit the reader waits on _slot
        # until half are answered.
        self._in_flight = 0
        self._max_in_flight = max_in_flight
        self._slot: asyncio.Future[None] | None = None
        self.closed = False
        self.close_code: int | None = None  # set by close(): the server ends the socket
        self.close_reason = ""
        # While a sync replays history, live frames and stored notices wait here.
        self._held: list[tuple[str, str]] | None = None
        self._held_items: list[dict[str, Any]] = []
        # Cursors sent to this socket that are old enough to have been in flight when it
        # joined: published before the binding could route them here, plus a clock margin.
        self.sent: set[str] | None = set()
        self.track_until_us = time.time_ns() // 1000 + int(margin_s * 1_000_000)
        self.synced = False
        self.sync_after: str | None = None

    # -- fan-out side (never blocks) -------------------------------------------------
    def push(self, text: str, cursor: str | None = None) -> None:
        if self.closed:
            return
        if self._held is not None:
            if len(self._held) >= self._outbox_max:
                self.close(TRY_AGAIN_LATER, "too far behind")
                return
            self._held.append((cursor or "", text))
            return
        if len(self._outbox) >= self._outbox_max:
            # A reader that does not keep up is closed rather than buffered without bound.
            self.close(TRY_AGAIN_LATER, "too far behind")
            return
        if cursor is not None:
            self._track(cursor)
        self._outbox.append(text)
        self._wakeup()

    def _wakeup(self) -> None:
        wake, self._wake = self._wake, None
        if wake is not None and not wake.done():
            wake.set_result(None)

    def send(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        self._metrics.frame_out(kind)
        if kind == "error":
            self._metrics.error(frame["code"])
        self.push(orjson.dumps(frame).decode())

    def _track(self, cursor: str) -> None:
        if self.sent is not None and cursor_us(cursor) < self.track_until_us:
            self.sent.add(cursor)
            if len(self.sent) > MAX_TRACKED:
                self.sent = None

    def already_sent(self, cursor: str) -> bool:
        return self.sent is not None and cursor in self.sent

    # -- sends awaiting the broker's confirm (gateway.publisher) ------------------------
    async def begin_send(self) -> None:
        """Wait while the window is full; once full, until half of it is answered, so
        the reader then takes a burst (one batch) rather than one frame per confirm."""
        if self._in_flight >= self._max_in_flight:
            while self._in_flight > self._max_in_flight // 2:
                self._slot = asyncio.get_running_loop().create_future()
                await self._slot
        self._in_flight += 1

    def _end_send(self) -> None:
        self._in_flight -= 1
        if self._in_flight <= self._max_in_flight // 2:
            slot, self._slot = self._slot, None
            if slot is not None and not slot.done():
                slot.set_result(None)

    def confirmed(self, frame_id: str, ts: int, cursor: str) -> None:
        self._end_send()
        self.send({"type": "ack", "id": frame_id, "ts": ts, "cursor": cursor})

    def failed(self, frame_id: str) -> None:
        self._end_send()
        self.send({"type": "error", "code": "publish_failed", "id": frame_id,
                   "detail": "the broker did not confirm; retry with the same id"})

    # -- sync replay -----------------------------------------------------------------
    def hold_live(self, after: str | None) -> None:
        self._held = []
        self.sync_after = after

    async def replay(self, text: str, cursor: str | None = None) -> None:
        """Queue a replayed frame, waiting for room (replay is paced by the reader)."""
        if cursor is not None:
            self._track(cursor)
            self._metrics.out_message.inc()
        while len(self._outbox) >= self._outbox_max and not self.closed:
            self._wake = asyncio.get_running_loop().create_future()
            await self._wake
        self._outbox.append(text)
        self._wakeup()

    def release_live(self) -> list[str]:
        """End a replay: send the held live frames it did not already send; return the
        cursors of stored messages this socket may have missed (to fetch and send)."""
        held, self._held = self._held or [], None
        items, self._held_items = self._held_items, []
        self.synced = True
        for cursor, text in held:
            if not cursor or not self.already_sent(cursor):
                self.push(text, cursor or None)
        return self.missed(items)

    def missed(self, items: list[dict[str, Any]]) -> list[str]:
        """Of a stored notice's items, those this socket may never have been sent."""
        if self._held is not None:
            self._held_items.extend(items)
            return []
        if not self.synced:
            return []
        return [
            i["cursor"] for i in items
            if i.get("origin") != self.id
            and cursor_us(i["cursor"]) < self.track_until_us
            and (self.sync_after is None or i["cursor"] > self.sync_after)
            and not self.already_sent(i["cursor"])
        ]

    # -- lifecycle -------------------------------------------------------------------
    def close(self, code: int, reason: str) -> None:
        """Ask the socket to close with this code; the first call wins."""
        if not self.closed:
            self.close_code, self.close_reason = code, reason
            self._metrics.error(code)
            self.stop()

    def stop(self) -> None:
        """Stop the writer (the client has gone, or close() was asked)."""
        self.closed = True
        self._wakeup()

    async def write_loop(self, ws: WebSocket) -> None:
        """The single writer: drain the outbox into the socket, in order, until close()."""
        outbox = self._outbox
        loop = asyncio.get_running_loop()
        while not self.closed:
            if not outbox:
                self._wake = loop.create_future()
                await self._wake
                continue
            # Frames taken out make room: a replay waiting for it goes on.
            text = outbox.popleft()
            if self._wake is not None:
                self._wakeup()
            await ws.send_text(text)
