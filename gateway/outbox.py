"""One WebSocket's outgoing side: a bounded outbox drained by a single writer, the sends
awaiting the broker's confirm, and its resume state (gateway.resume).

Per socket it holds a deque and at most one waiting future at a time (no asyncio.Queue,
Event or Semaphore: each carries deques of its own), because 10,000 idle sockets must fit
in ~20 KB each.

The outbox is bounded twice: in frames (DUET_OUTBOX_FRAMES) and in characters of frame
text (DUET_OUTBOX_BYTES; frames are JSON, ASCII but for error details, so characters are
bytes). A live frame past either bound closes the socket (too_far_behind: a reader that
does not keep up is not buffered for); a replayed frame waits until the writer has
drained enough. One frame always fits an empty outbox, however large, so a message larger
than the bound still goes out, alone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

import orjson
from starlette.websockets import WebSocket

from contracts.codes import ERRORS, TRY_AGAIN_LATER
from contracts.envelope import MESSAGE_KINDS

from .metrics import GatewayMetrics
from .resume import Resume
from .wsprotocol import text_writer

log = logging.getLogger(__name__)

# DUET_OUTBOX_BYTES' default (gateway.settings): two of the largest images (5 MiB of
# plaintext, ~6.7 MiB as a frame) fit, a third waits.
OUTBOX_BYTES = 16 * 1024 * 1024
# The writer joins waiting frames into one socket write until it holds this many bytes.
WRITE_BYTES = 64 * 1024


class Connection:
    """What the fan-out needs of a socket: whose it is, which rooms it is sent, and a
    push that never blocks. v1 (`room` set): one room's messages. v2 (`room` None):
    everything about its user's rooms."""

    __slots__ = ("id", "user", "peer", "room", "_outbox", "_outbox_max", "_outbox_bytes",
                 "_outbox_bytes_max", "_wake",
                 "closed", "close_code", "close_reason", "resume", "_metrics", "_in_flight",
                 "_max_in_flight", "_slot", "typing")

    def __init__(self, conn_id: str, user: str, peer: str | None, room: str | None,
                 outbox_frames: int, metrics: GatewayMetrics, max_in_flight: int = 32,
                 margin_s: float = 5.0, outbox_bytes: int = OUTBOX_BYTES) -> None:
        self._metrics = metrics
        self.id = conn_id
        self.user = user
        self.peer = peer
        self.room = room
        self._outbox: deque[str] = deque()
        self._outbox_max = outbox_frames
        self._outbox_bytes = 0  # characters of the frames in _outbox
        self._outbox_bytes_max = outbox_bytes
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
        self.resume = Resume(time.time_ns() // 1000, int(margin_s * 1_000_000))
        self.typing: Any = None  # v2: a TokenBucket for typing signals, made on first use

    @property
    def device(self) -> bool:
        """A v2 device socket (every room of its user)."""
        return self.room is None

    def wants(self, room: str, kind: str | None = None) -> bool:
        """Is this socket sent a frame of this room (and, for a message, of this kind)?"""
        if self.room is None:
            return True
        return room == self.room and (kind is None or kind in MESSAGE_KINDS)

    # -- fan-out side (never blocks) -------------------------------------------------
    def push(self, text: str, cursor: str | None = None) -> None:
        if self.closed:
            return
        if self.resume.holding:
            frames, size = self.resume.hold(cursor or "", text)
            if frames > self._outbox_max or (frames > 1 and size > self._outbox_bytes_max):
                self.close(TRY_AGAIN_LATER, "too far behind")
            return
        if self._full(len(text)):
            # A reader that does not keep up is closed rather than buffered without bound.
            self.close(TRY_AGAIN_LATER, "too far behind")
            return
        if cursor is not None:
            self.resume.track(cursor)
        self._append(text)

    def _full(self, size: int) -> bool:
        """Would a frame of `size` characters overflow the outbox? Never when it is empty."""
        return bool(self._outbox) and (
            len(self._outbox) >= self._outbox_max
            or self._outbox_bytes + size > self._outbox_bytes_max)

    def _append(self, text: str) -> None:
        self._outbox.append(text)
        self._outbox_bytes += len(text)
        self._wakeup()

    @property
    def queued_bytes(self) -> int:
        """Characters of frame text waiting for the writer."""
        return self._outbox_bytes

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

    def confirmed(self, frame_id: str, ts: int, cursor: str, room: str) -> None:
        self._end_send()
        self.send({"type": "ack", "id": frame_id, "ts": ts, "cursor": cursor, "room": room})

    def failed(self, frame_id: str) -> None:
        self._end_send()
        self.send({"type": "error", "code": ERRORS["publish_failed"].code, "id": frame_id,
                   "detail": "the broker did not confirm; retry with the same id"})

    # -- sync replay -----------------------------------------------------------------
    async def replay(self, text: str, cursor: str | None = None) -> None:
        """Queue a replayed frame, waiting for room in frames and bytes (replay is paced
        by the reader: the writer sends a frame only once the socket can take it)."""
        if cursor is not None:
            self.resume.track(cursor)
            self._metrics.out_message.inc()
        while self._full(len(text)) and not self.closed:
            self._wake = asyncio.get_running_loop().create_future()
            await self._wake
        self._append(text)

    def release(self) -> list[dict[str, Any]]:
        """End a replay: send the held live frames it did not already send; return the
        stored items held meanwhile, for the fan-out to check with `missed`."""
        frames, items = self.resume.end()
        for cursor, text in frames:
            self.push(text, cursor or None)
        return items

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
        """The single writer: drain the outbox into the socket, in order, until close().
        On duet's protocol what waits goes out together, up to WRITE_BYTES a write."""
        outbox = self._outbox
        loop = asyncio.get_running_loop()
        send_texts = text_writer(ws)
        while not self.closed:
            if not outbox:
                self._wake = loop.create_future()
                await self._wake
                continue
            # Frames taken out make room: a replay waiting for it goes on.
            texts = [outbox.popleft()]
            size = len(texts[0])
            while send_texts is not None and outbox and size < WRITE_BYTES:
                texts.append(outbox.popleft())
                size += len(texts[-1])
            self._outbox_bytes -= size
            if self._wake is not None:
                self._wakeup()
            self._metrics.socket_writes.inc()
            self._metrics.socket_write_frames.inc(len(texts))
            if send_texts is not None:
                await send_texts(texts)
            else:
                await ws.send_text(texts[0])
