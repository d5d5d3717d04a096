"""Pipelined, batched publishing of chat messages (group commit).

A socket's read loop hands each checked message to `Publisher.submit` and goes on reading:
it does not wait for the broker. At most `in_flight` broker messages of this replica await
their confirm at once, and two publishes start at least `interval_s` apart; what is
submitted meanwhile, for any room, waits and leaves as the next broker message
(contracts.batch: one `message` frame per line). So an idle gateway publishes a message
at once, and a busy one sends fewer, larger broker messages, which
the broker routes, appends to the quorum queue and the audit stream, and confirms once for
the lot: its work per chat message falls as the load rises. A broker message with frames
of several rooms travels under the first room's key with the others' in `CC`, so every
queue bound to any of them gets it once. Broker messages are published in submission order
on one confirm channel, so a sender's order holds; each message's sender is told as its
confirm arrives, or that it failed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Protocol

import orjson

from broker import Broker, PublishError
from contracts.batch import Line, encode
from contracts.routing import persist_partition, unsent_key

from .metrics import GatewayMetrics

log = logging.getLogger(__name__)


class Sender(Protocol):
    """Who is told how a submitted message fared (a socket)."""

    id: str
    user: str

    def confirmed(self, frame_id: str, ts: int, cursor: str, room: str) -> None: ...

    def failed(self, frame_id: str) -> None: ...


class Outgoing:
    __slots__ = ("room", "frame", "cursor", "ts", "frame_id", "sender", "deadline", "kind")

    def __init__(self, room: str, frame: bytes, cursor: str, ts: int, frame_id: str,
                 sender: Sender, kind: str = "text") -> None:
        self.room, self.frame, self.cursor, self.ts = room, frame, cursor, ts
        self.frame_id, self.sender, self.kind = frame_id, sender, kind
        self.deadline = 0.0  # set by Publisher.submit


class Publisher:
    def __init__(self, broker: Broker, metrics: GatewayMetrics, timeout_s: float,
                 max_batch: int = 64, in_flight: int = 1, interval_s: float = 0.0,
                 max_batch_bytes: int = 1 << 20, partitions: int = 1) -> None:
        self._broker = broker
        self._metrics = metrics
        self._timeout_s = timeout_s
        self._max_batch = max_batch
        self._max_bytes = max_batch_bytes
        self._max_in_flight = in_flight
        self._interval_s = interval_s
        self._partitions = partitions  # DUET_PERSIST_PARTITIONS
        self._last_start = float("-inf")  # loop time of the latest publish's start
        self._pending: deque[Outgoing] = deque()
        self._scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._unsent_tasks: set[asyncio.Task[None]] = set()

    def submit(self, item: Outgoing) -> None:
        """Queue a message; it leaves at the end of this loop turn, or once the broker
        message in flight is confirmed and the interval since it started has passed."""
        # The publish timeout runs from here, waiting included: in an outage every sender
        # hears within it, however much is queued. On the loop's clock, which its timers
        # use: so messages time out in the order they came.
        item.deadline = asyncio.get_running_loop().time() + self._timeout_s
        self._pending.append(item)
        if not self._scheduled and len(self._tasks) < self._max_in_flight:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self, *, now: bool = False) -> None:
        self._scheduled = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        loop = asyncio.get_running_loop()
        while self._pending and len(self._tasks) < self._max_in_flight:
            wait = self._last_start + self._interval_s - loop.time()
            if wait > 0 and not now:
                # Too soon after the last publish: what waits gathers until then.
                self._scheduled = True
                self._timer = loop.call_later(wait, self._flush)
                return
            batch = self._take()
            if batch:
                self._start(batch)
                self._last_start = loop.time()

    def _take(self) -> list[Outgoing]:
        # A message with less than a quarter of its timeout left fails unpublished: sent,
        # it would likely be confirmed only after its sender was told it failed, and its
        # retry would be a second live push.
        cutoff = asyncio.get_running_loop().time() + self._timeout_s / 4
        while self._pending[0].deadline <= cutoff:
            expired = self._pending.popleft()
            expired.sender.failed(expired.frame_id)
            if not self._pending:
                return []
        batch = [self._pending.popleft()]
        size = len(batch[0].frame)
        while (self._pending and len(batch) < self._max_batch
               and size + len(self._pending[0].frame) <= self._max_bytes):
            item = self._pending.popleft()
            batch.append(item)
            size += len(item.frame)
        return batch

    def _start(self, batch: list[Outgoing]) -> None:
        # Tasks start in creation order and take the channel's lock in that order, so
        # broker messages reach the broker in submission order.
        task = asyncio.create_task(self._publish(batch))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._flush()  # what waited meanwhile leaves now, as one broker message

    async def _publish(self, batch: list[Outgoing]) -> None:
        """One broker message, or with partitioned persistence one per partition the
        batch's rooms fall in, published at once: each then reaches one persist queue, so
        it is appended and parsed once, not once per partition (bench/README.md). A
        room's messages stay together and in order."""
        if self._partitions == 1:
            await self._publish_part(batch)
            return
        parts: dict[int, list[Outgoing]] = {}
        for m in batch:
            parts.setdefault(persist_partition(m.room, self._partitions), []).append(m)
        if len(parts) == 1:
            await self._publish_part(batch)
        else:
            await asyncio.gather(*(self._publish_part(part) for part in parts.values()))

    async def _publish_part(self, batch: list[Outgoing]) -> None:
        started = time.perf_counter()
        message = encode([Line(m.frame, m.room, m.sender.id, m.cursor, m.kind) for m in batch])
        remaining = batch[0].deadline - asyncio.get_running_loop().time()
        try:
            await self._broker.publish(message.body, message.routing_key,
                                       headers=message.headers, timeout=remaining)
        except PublishError as exc:
            log.warning("publish of %s messages failed: %s", len(batch), exc.reason,
                        extra={"key": message.routing_key})
            for m in batch:
                m.sender.failed(m.frame_id)
            # Beside the publishing: in an outage the notice may wait as long as the
            # publish did, and the next batch must not wait for it.
            task = asyncio.create_task(self._unsent(batch))
            self._unsent_tasks.add(task)
            task.add_done_callback(self._unsent_tasks.discard)
            return
        self._metrics.publish_seconds.observe(time.perf_counter() - started)
        self._metrics.batch_size.observe(len(batch))
        for m in batch:
            m.sender.confirmed(m.frame_id, m.ts, m.cursor, m.room)

    async def _unsent(self, batch: list[Outgoing]) -> None:
        """The broker may have routed a message it did not confirm to the gateways, which
        pushed it live, while duet.persist refused it: say so to the room's device
        sockets (`unsent`; best-effort, like typing), so no one is left shown a message
        that may never be stored. The sender resends it (same id) and it comes again."""
        groups: dict[tuple[str, str], list[Outgoing]] = {}
        for m in batch:
            groups.setdefault((m.room, m.sender.user), []).append(m)
        try:
            async with asyncio.timeout(self._timeout_s):
                for (room, user), items in groups.items():
                    await self._broker.notify(orjson.dumps({
                        "type": "unsent", "room": room, "sender": user,
                        "ids": [m.frame_id for m in items],
                        "cursors": [m.cursor for m in items]}), unsent_key(room))
        except TimeoutError:
            log.warning("unsent notice for %s messages not published in time", len(batch))

    async def close(self) -> None:
        """Publish what is queued and wait until nothing is in flight; safe twice."""
        while self._pending or self._tasks:
            self._flush(now=True)
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await asyncio.gather(*list(self._unsent_tasks), return_exceptions=True)
