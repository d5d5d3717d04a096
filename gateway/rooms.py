"""Local sockets per room, and this replica's queue on the broker.

The replica's queue is bound to a room's key while at least one local socket is in the
room: bound on the first join, unbound on the last leave. Deliveries are pushed to the
room's local sockets without blocking.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from aio_pika.abc import AbstractQueue
from pymongo.errors import PyMongoError

from broker import Broker
from broker.consumer import Consumer, Delivery, headers, message_id, routing_key
from broker.topology import declare_gateway_queue
from contracts import room_binding
from contracts.events import (
    CURSOR_HEADER,
    ORIGIN_HEADER,
    ROOM_HEADER,
    header_list,
    line_rooms,
    split_frames,
)
from contracts.routing import MESSAGE_NS, STORED_KEY

from .connection import Connection
from .metrics import GatewayMetrics

log = logging.getLogger(__name__)

# Read stored messages of a room by cursor, as `message` frames, oldest first.
Fetch = Callable[[str, list[str]], Awaitable[list[dict[str, Any]]]]


class _Room:
    __slots__ = ("members", "lock", "bound")

    def __init__(self) -> None:
        self.members: set[Connection] = set()
        self.lock = asyncio.Lock()
        self.bound = False


class Rooms:
    def __init__(self, broker: Broker, node: str, fetch: Fetch, metrics: GatewayMetrics,
                 prefetch: int = 1024) -> None:
        self._broker = broker
        self._metrics = metrics
        metrics.rooms.set_function(lambda: self.bound_rooms)
        self._fetch = fetch
        self._tasks: set[asyncio.Task[None]] = set()
        self._node = node
        self._prefetch = prefetch
        self._rooms: dict[str, _Room] = {}
        self._queue: AbstractQueue | None = None
        self._consumer: Consumer | None = None

    async def start(self) -> None:
        channel = await self._broker.channel(self._prefetch)
        self._queue = await declare_gateway_queue(channel, self._broker.names, self._node)
        # No acks: what this queue holds is only live push; durability lives in duet.persist.
        await self._queue.bind(self._broker.exchange, STORED_KEY)
        self._consumer = Consumer(channel, self._queue, self._on_delivery, no_ack=True)
        await self._consumer.start()
        log.info("gateway queue %s consuming", self._queue.name)

    async def check(self) -> None:
        """Declare our queue again and consume again if the broker counts no consumer on
        it (ours is its only one): a cancel that never reached us would otherwise end
        live push here for good."""
        assert self._queue is not None and self._consumer is not None, "rooms not started"
        declared = await self._queue.declare()
        if declared.consumer_count == 0:
            await self._consumer.resume(stale=True)

    @property
    def bound_rooms(self) -> int:
        return sum(1 for r in self._rooms.values() if r.bound)

    def connections(self) -> list[Connection]:
        return [c for r in self._rooms.values() for c in r.members]

    @asynccontextmanager
    async def joined(self, conn: Connection) -> AsyncIterator[None]:
        """Be in the room for the block; the binding exists before the block starts."""
        await self._join(conn)
        try:
            yield
        finally:
            await asyncio.shield(self._leave(conn))

    async def _join(self, conn: Connection) -> None:
        room = self._rooms.get(conn.room)
        if room is None:
            room = self._rooms[conn.room] = _Room()
        # Join before taking the lock, so a concurrent last leave sees us and keeps the binding.
        room.members.add(conn)
        try:
            async with room.lock:
                if not room.bound:
                    assert self._queue is not None, "rooms not started"
                    await self._queue.bind(self._broker.exchange, room_binding(conn.room))
                    room.bound = True
        except BaseException:  # joined() never began, so no leave follows: undo the join
            room.members.discard(conn)
            if not room.members and not room.bound and self._rooms.get(conn.room) is room:
                del self._rooms[conn.room]
            raise

    async def _leave(self, conn: Connection) -> None:
        room = self._rooms.get(conn.room)
        if room is None:
            return
        room.members.discard(conn)
        async with room.lock:
            if room.members or not room.bound:
                return
            assert self._queue is not None
            try:
                await self._queue.unbind(self._broker.exchange, room_binding(conn.room))
            finally:
                room.bound = False
                # Someone may have joined while we unbound: they will bind again.
                if not room.members and self._rooms.get(conn.room) is room:
                    del self._rooms[conn.room]

    def _on_delivery_sync(self, message: Delivery) -> None:
        key = routing_key(message)
        if key == STORED_KEY:
            self._on_stored(orjson.loads(message.body)["items"])
            return
        ns, _, key_room = key.partition(".")
        if ns != MESSAGE_NS:
            return
        props = headers(message)
        if ROOM_HEADER not in props and key_room not in self._rooms:
            return  # all of one room, which has no socket here
        origins = header_list(props.get(ORIGIN_HEADER))
        cursors = header_list(props.get(CURSOR_HEADER))
        frames = split_frames(message.body) if len(cursors) > 1 else [message.body]
        pushed = 0
        for frame, cursor, origin, room_name in zip(
                frames, cursors, origins, line_rooms(key_room, props, len(frames)), strict=True):
            room = self._rooms.get(room_name)
            if room is None:  # a room of another gateway's, in the same broker message
                continue
            text = frame.decode()
            for conn in room.members:
                if conn.id != origin:
                    conn.push(text, cursor)
                    pushed += 1
        self._metrics.out_message.inc(pushed)

    def _on_stored(self, items: list[dict[str, Any]]) -> None:
        """A batch's receipts: `stored` frames to senders here, catch-up where needed."""
        by_room: dict[str, list[dict[str, Any]]] = {}
        for item in items:
            if item["room"] in self._rooms:
                by_room.setdefault(item["room"], []).append(item)
        for room_name, room_items in by_room.items():
            for conn in list(self._rooms[room_name].members):
                for item in room_items:
                    if item["sender"] == conn.user:
                        conn.send({"type": "stored", "id": item["id"], "cursor": item["cursor"]})
                missed = conn.missed(room_items)
                if missed:
                    task = asyncio.create_task(self.catch_up(conn, missed))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)

    async def catch_up(self, conn: Connection, cursors: list[str]) -> None:
        """Send stored messages the socket may have missed: published before its binding
        existed, stored after its history read."""
        try:
            docs = await self._fetch(conn.room, cursors)
        except PyMongoError as exc:
            log.warning("catch-up read failed for %s: %s", conn.id, type(exc).__name__)
            return
        for doc in docs:
            if not conn.already_sent(doc["cursor"]):
                conn.push(orjson.dumps(doc).decode(), doc["cursor"])
                self._metrics.out_message.inc()

    async def _on_delivery(self, message: Delivery) -> None:
        try:
            self._on_delivery_sync(message)
        except Exception:  # one bad delivery must not stop the consumer
            log.exception("dropping undeliverable broker message %s", message_id(message))
