"""Local sockets per user, and this replica's queue on the broker.

The replica's queue is bound to `*.<uid>.*` and `*.*.<uid>` (contracts.routing) while at
least one local socket (v1 or v2) is its user's: bound on the first, unbound with the
last. Two bindings per user cover every room of the user, whatever the number of friends,
and its typing, presence and read events. A delivery is pushed, without blocking, to the
local sockets of the users it is about that want it (Connection.wants: a v1 socket only
its room's messages; a v2 socket everything of its user).

Users arriving on and leaving this replica are told to the `Presence` tracker.

A friendship that ends (unfriend, block, a deleted account) is announced under each
member's `user.<uid>.friends` key and a deleted account under `user.<uid>.account`
(contracts.routing): the replicas holding that user's sockets forget the friend (v2) and
close the pair's v1 sockets (forbidden_room), or close all the user's sockets
(not_authenticated).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Protocol

import orjson
from aio_pika.abc import AbstractQueue
from pymongo.errors import PyMongoError

from broker import Broker
from broker.consumer import Consumer, Delivery, headers, message_id, routing_key
from broker.topology import declare_gateway_queue
from contracts import room_members, user_bindings
from contracts.batch import ROOM_HEADER, BatchError, decode, routed_rooms
from contracts.codes import FORBIDDEN_ROOM, NOT_AUTHENTICATED, TRY_AGAIN_LATER, error_frame
from contracts.routing import (
    ACCOUNT_EVENT,
    FRIENDS_EVENT,
    MESSAGE_NS,
    PRESENCE_NS,
    STORED_KEY,
    TYPING_NS,
    UNSENT_NS,
    USER_NS,
)
from service.crash import crash

from .metrics import GatewayMetrics
from .outbox import Connection

log = logging.getLogger(__name__)

SYNC_NEEDED = "sync_needed"

# Read stored messages by cursor (room → cursors), as `message` frames, oldest first.
Fetch = Callable[[Mapping[str, list[str]]], Awaitable[list[dict[str, Any]]]]


class Arrivals(Protocol):
    """Told when a user's first local socket opens and their last one closes."""

    def arrived(self, user: str) -> None: ...

    def left(self, user: str) -> None: ...


class _User:
    __slots__ = ("sockets", "lock", "bound", "friends", "epoch")

    def __init__(self) -> None:
        self.sockets: set[Connection] = set()
        self.lock = asyncio.Lock()
        self.bound = False
        self.friends: set[str] = set()  # peers a v2 send was checked against, while here
        self.epoch = 0  # moved on by every friendship that ends: see remember_friend


class Hub:
    def __init__(self, broker: Broker, node: str, fetch: Fetch, metrics: GatewayMetrics,
                 prefetch: int = 1024, on_lost: Callable[[str], None] = crash) -> None:
        self._broker = broker
        self._on_lost = on_lost
        self._metrics = metrics
        metrics.users.set_function(lambda: self.bound_users)
        self._fetch = fetch
        self._tasks: set[asyncio.Task[None]] = set()
        self._node = node
        self._prefetch = prefetch
        self._users: dict[str, _User] = {}
        self._queue: AbstractQueue | None = None
        self._consumer: Consumer | None = None
        self.arrivals: Arrivals | None = None

    async def start(self) -> None:
        channel = await self._broker.channel(self._prefetch)
        self._queue = await declare_gateway_queue(channel, self._broker.names, self._node)
        # No acks: what this queue holds is only live push; durability lives in duet.persist.
        await self._queue.bind(self._broker.exchange, STORED_KEY)
        self._consumer = Consumer(channel, self._queue, self._on_delivery, self._on_lost,
                                  no_ack=True)
        await self._consumer.start()
        self._broker.connection.reconnect_callbacks.add(self._on_reconnected)
        log.info("gateway queue %s consuming", self._queue.name)

    def _on_reconnected(self, *_: object) -> None:
        """The broker connection came back (perhaps on another node) and this replica's
        queue with it; what was routed while it was gone reached no one here. Each device
        socket is told `sync_needed` and syncs over the same socket, the in-flight race
        open again for it (gateway.resume); a v1 socket is closed with too_far_behind and
        syncs on reconnecting. Stored messages come back from MongoDB, none is left
        unpushed (guarantee 3)."""
        sockets = self.connections()
        now_us = time.time_ns() // 1000
        for conn in sockets:
            if conn.device:
                conn.resume.reopen(now_us)
                conn.send(error_frame(SYNC_NEEDED))
            else:
                conn.close(TRY_AGAIN_LATER, "the gateway's broker connection was restored: sync")
        log.warning("broker connection restored: %d sockets asked to sync", len(sockets))

    @property
    def bound_users(self) -> int:
        return sum(1 for u in self._users.values() if u.bound)

    def connections(self) -> list[Connection]:
        return [c for u in self._users.values() for c in u.sockets]

    def knows_friend(self, user: str, peer: str) -> bool:
        entry = self._users.get(user)
        return entry is not None and peer in entry.friends

    def friend_epoch(self, user: str) -> int:
        """Read before asking MongoDB whether two users are friends (remember_friend)."""
        entry = self._users.get(user)
        return entry.epoch if entry is not None else -1

    def remember_friend(self, user: str, peer: str, epoch: int | None = None) -> None:
        """Cache a friendship MongoDB confirmed; not when a friendship of the user ended
        since `epoch` was read (the answer may predate the end)."""
        entry = self._users.get(user)
        if entry is not None and (epoch is None or epoch == entry.epoch):
            entry.friends.add(peer)

    def friendship_ended(self, user: str, peer: str) -> None:
        """Forget the friend; the pair's v1 sockets here close (forbidden_room)."""
        entry = self._users.get(user)
        if entry is None:
            return
        entry.friends.discard(peer)
        entry.epoch += 1
        for conn in list(entry.sockets):
            if conn.peer == peer:
                conn.close(FORBIDDEN_ROOM, "no longer friends")

    def account_deleted(self, user: str) -> None:
        """The user's sockets here close (not_authenticated): their token names no user."""
        for conn in list(self._sockets(user)):
            conn.close(NOT_AUTHENTICATED, "the account was deleted")

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- joining and leaving ---------------------------------------------------------------
    @asynccontextmanager
    async def joined(self, conn: Connection) -> AsyncIterator[None]:
        """Be here for the block; the user's bindings exist before the block starts."""
        await self._join(conn)
        try:
            yield
        finally:
            await asyncio.shield(self._leave(conn))

    async def _join(self, conn: Connection) -> None:
        entry = self._users.get(conn.user)
        if entry is None:
            entry = self._users[conn.user] = _User()
        # Join before taking the lock, so a concurrent last leave sees us and keeps the
        # bindings (broadcaster's subscribe() leaves this race open).
        entry.sockets.add(conn)
        try:
            async with entry.lock:
                if not entry.bound:
                    assert self._queue is not None, "hub not started"
                    for pattern in user_bindings(conn.user):
                        await self._queue.bind(self._broker.exchange, pattern)
                    entry.bound = True
                    if self.arrivals is not None:
                        self.arrivals.arrived(conn.user)
        except BaseException:  # joined() never began, so no leave follows: undo the join
            entry.sockets.discard(conn)
            if not entry.sockets and not entry.bound and self._users.get(conn.user) is entry:
                del self._users[conn.user]
            raise

    async def _leave(self, conn: Connection) -> None:
        entry = self._users.get(conn.user)
        if entry is None:
            return
        entry.sockets.discard(conn)
        async with entry.lock:
            if entry.sockets or not entry.bound:
                return
            assert self._queue is not None
            try:
                for pattern in user_bindings(conn.user):
                    await self._queue.unbind(self._broker.exchange, pattern)
            finally:
                entry.bound = False
                if self.arrivals is not None:
                    self.arrivals.left(conn.user)
                # Someone may have joined while we unbound: they will bind again.
                if not entry.sockets and self._users.get(conn.user) is entry:
                    del self._users[conn.user]

    def _sockets(self, user: str) -> Iterable[Connection]:
        entry = self._users.get(user)
        return entry.sockets if entry is not None else ()

    # -- deliveries ------------------------------------------------------------------------
    async def _on_delivery(self, message: Delivery) -> None:
        try:
            self._dispatch(message)
        except Exception:  # one bad delivery must not stop the consumer
            log.exception("dropping undeliverable broker message %s", message_id(message))

    def _dispatch(self, message: Delivery) -> None:
        key = routing_key(message)
        if key == STORED_KEY:
            self._on_stored(orjson.loads(message.body)["items"])
            return
        ns, _, rest = key.partition(".")
        if ns == MESSAGE_NS:
            self._on_messages(rest, message)
        elif ns == TYPING_NS:
            self._on_typing(rest, message.body)
        elif ns == UNSENT_NS:
            self._to_devices(room_members(rest), message.body.decode())
        elif ns == PRESENCE_NS:
            self._on_presence(rest, message)
        elif ns == USER_NS:
            user, _, event = rest.partition(".")
            if event == FRIENDS_EVENT:  # never pushed: the key's user, the body's peer
                self.friendship_ended(user, orjson.loads(message.body)["peer"])
                return
            if event == ACCOUNT_EVENT:
                self.account_deleted(user)
                return
            self._to_devices((user,), message.body.decode())

    def _on_messages(self, key_room: str, message: Delivery) -> None:
        props = headers(message)
        if ROOM_HEADER not in props and not any(u in self._users
                                                for u in room_members(key_room)):
            return  # all of one room, whose users have no socket here
        try:
            batch = decode(key_room, message.body, props)
        except BatchError as exc:  # not a gateway's: the persister dead-letters it
            log.warning("unreadable broker message %s: %s", message_id(message), exc)
            return
        kinds = batch.kinds
        pushed = 0
        for i, (frame, cursor, origin, room) in enumerate(zip(
                batch.frames, batch.cursors, batch.origins, batch.rooms, strict=True)):
            kind = kinds[i] if kinds is not None else None
            text: str | None = None
            for user in room_members(room):
                for conn in self._sockets(user):
                    if conn.id != origin and conn.wants(room, kind):
                        text = text if text is not None else frame.decode()
                        conn.push(text, cursor)
                        pushed += 1
        self._metrics.out_message.inc(pushed)

    def _on_typing(self, room: str, body: bytes) -> None:
        """To the room's other member's device sockets (not back to the typist's)."""
        sender = orjson.loads(body)["sender"]
        self._to_devices((u for u in room_members(room) if u != sender), body.decode())

    def _on_presence(self, key_room: str, message: Delivery) -> None:
        """One event, routed under every room of the user's: to each friend here."""
        subject = orjson.loads(message.body)["user"]
        self._to_devices((u for room in routed_rooms(key_room, headers(message), PRESENCE_NS)
                          for u in room_members(room) if u != subject), message.body.decode())

    def _to_devices(self, users: Iterable[str], text: str) -> None:
        """A v2-only frame (typing, presence, unsent, a user's own events) to these users'
        device sockets here."""
        for user in users:
            for conn in self._sockets(user):
                if conn.device:
                    conn.push(text)

    def _on_stored(self, items: list[dict[str, Any]]) -> None:
        """A batch's receipts: `stored` frames to senders here, catch-up where needed."""
        by_conn: dict[Connection, list[dict[str, Any]]] = {}
        for item in items:
            room = item["room"]
            for user in room_members(room):
                for conn in self._sockets(user):
                    if conn.wants(room, item.get("kind")):
                        by_conn.setdefault(conn, []).append(item)
        for conn, conn_items in by_conn.items():
            for item in conn_items:
                if item["sender"] == conn.user:
                    conn.send({"type": "stored", "id": item["id"], "cursor": item["cursor"],
                               "room": item["room"]})
            self.check_missed(conn, conn_items)

    def check_missed(self, conn: Connection, items: list[dict[str, Any]]) -> None:
        """Send what of these stored items the socket may have missed (gateway.resume)."""
        missed = conn.resume.missed(items, conn.id)
        if missed:
            self._spawn(self.catch_up(conn, missed))

    async def catch_up(self, conn: Connection, items: list[dict[str, Any]]) -> None:
        """Send stored messages the socket may have missed: published before its binding
        existed, stored after its history read."""
        cursors: dict[str, list[str]] = {}
        for item in items:
            cursors.setdefault(item["room"], []).append(item["cursor"])
        try:
            docs = await self._fetch(cursors)
        except PyMongoError as exc:
            log.warning("catch-up read failed for %s: %s", conn.id, type(exc).__name__)
            return
        for doc in docs:
            if conn.wants(doc["room"], doc["kind"]) and not conn.resume.already_sent(
                    doc["cursor"]):
                conn.push(orjson.dumps(doc).decode(), doc["cursor"])
                self._metrics.out_message.inc()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
