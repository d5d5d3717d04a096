"""Pipelined, batched publishing of chat messages.

A socket's read loop hands each checked message to `RoomPublisher.submit` and goes on
reading: it does not wait for the broker. What is submitted for one room in one event-loop
turn (a socket's burst, or both members on this replica) leaves as one broker message
(contracts.events: one `message` frame per line), so the broker routes, appends to the
quorum queue and the audit stream, and confirms once for the lot. Batches of a room are
published in submission order on one confirm channel, so a sender's order holds; many are
in flight at once, and each message's sender is told as its confirm arrives, or that it
failed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from broker import Broker, PublishError
from contracts.events import CURSOR_HEADER, ORIGIN_HEADER, join_frames
from contracts.routing import message_key

from .metrics import GatewayMetrics

log = logging.getLogger(__name__)


class Sender(Protocol):
    """Who is told how a submitted message fared (a socket)."""

    id: str

    def confirmed(self, frame_id: str, ts: int, cursor: str) -> None: ...

    def failed(self, frame_id: str) -> None: ...


class Outgoing:
    __slots__ = ("frame", "cursor", "ts", "frame_id", "sender")

    def __init__(self, frame: bytes, cursor: str, ts: int, frame_id: str,
                 sender: Sender) -> None:
        self.frame, self.cursor, self.ts = frame, cursor, ts
        self.frame_id, self.sender = frame_id, sender


class RoomPublisher:
    def __init__(self, broker: Broker, metrics: GatewayMetrics, timeout_s: float,
                 max_batch: int = 64, max_batch_bytes: int = 1 << 20) -> None:
        self._broker = broker
        self._metrics = metrics
        self._timeout_s = timeout_s
        self._max_batch = max_batch
        self._max_bytes = max_batch_bytes
        self._pending: dict[str, list[Outgoing]] = {}
        self._sizes: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, room: str, item: Outgoing) -> None:
        """Queue a message for the room's batch, published at the end of this loop turn."""
        batch = self._pending.get(room)
        if batch is None:
            if not self._pending:
                asyncio.get_running_loop().call_soon(self._flush)
            batch = self._pending[room] = []
            self._sizes[room] = 0
        elif (len(batch) >= self._max_batch
              or self._sizes[room] + len(item.frame) > self._max_bytes):
            self._start(room, batch)
            batch = self._pending[room] = []
            self._sizes[room] = 0
        batch.append(item)
        self._sizes[room] += len(item.frame)

    def _flush(self) -> None:
        pending, self._pending = self._pending, {}
        self._sizes.clear()
        for room, batch in pending.items():
            self._start(room, batch)

    def _start(self, room: str, batch: list[Outgoing]) -> None:
        # Tasks start in creation order and take the channel's lock in that order, so
        # batches of one room reach the broker in submission order.
        task = asyncio.create_task(self._publish(room, batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, room: str, batch: list[Outgoing]) -> None:
        started = time.perf_counter()
        try:
            await self._broker.publish(
                join_frames([m.frame for m in batch]), message_key(room),
                timeout=self._timeout_s,
                headers={ORIGIN_HEADER: [m.sender.id for m in batch],
                         CURSOR_HEADER: [m.cursor for m in batch]},
            )
        except PublishError as exc:
            log.warning("publish of %s messages failed: %s", len(batch), exc.reason,
                        extra={"room": room})
            for m in batch:
                m.sender.failed(m.frame_id)
            return
        self._metrics.publish_seconds.observe(time.perf_counter() - started)
        self._metrics.batch_size.observe(len(batch))
        for m in batch:
            m.sender.confirmed(m.frame_id, m.ts, m.cursor)

    async def close(self) -> None:
        """Publish what is queued and wait until nothing is in flight; safe twice."""
        self._flush()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
