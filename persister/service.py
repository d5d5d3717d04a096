"""consume duet.persist → batch → insert_many → ack, then publish `stored` receipts.

Partitioned (DUET_PERSIST_PARTITIONS = N > 1): every persister consumes all N queues,
each single-active-consumer, so one persister at a time stores a room, in order, and a
standby takes a partition over at once when its holder goes. The first to register holds
a queue, so every DUET_REBALANCE_S a persister that received from more than its fair share
(N / persisters, counted on duet.persisters) registers again on the excess, which moves it
to the back of those queues' lines. A broker message can carry frames of rooms in other
partitions (gateways split their batches by partition, but one with another N does not):
each partition stores only its own rooms' frames.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
from aio_pika.abc import AbstractQueue, AbstractRobustChannel
from aiormq.exceptions import AMQPError
from pydantic import ValidationError
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from broker import Broker, PublishError, consumer
from broker.consumer import Consumer, Delivery, headers, message_id, routing_key
from broker.topology import declare_persist_queues, retire_other_partitions
from contracts import message_doc_id, room_members
from contracts.batch import BatchError, decode_headers, frame_count
from contracts.events import storable_frames
from contracts.routing import MESSAGE_NS, STORED_KEY, persist_partition
from service.crash import crash

from . import retention
from .metrics import PersisterMetrics
from .settings import PersisterSettings
from .store import MessageStore

log = logging.getLogger(__name__)


WRITES_IN_FLIGHT = 2  # batches being written at once: one parses while one is inserted

# Which partition a delivery came from: its index, or None for every frame (the one
# queue, or a queue of another partition count being drained).
Owner = int | None


@dataclass(slots=True)
class _Batch:
    docs: list[dict[str, Any]] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)  # docs[i]'s publishing connection
    good: list[Delivery] = field(default_factory=list)
    owner: list[int] = field(default_factory=list)  # docs[i] came from good[owner[i]]


class Persister:
    def __init__(self, settings: PersisterSettings, broker: Broker, store: MessageStore,
                 metrics: PersisterMetrics) -> None:
        self._settings = settings
        self.metrics = metrics
        self.consuming = False
        self._broker = broker
        self._store = store
        self._inbox: asyncio.Queue[tuple[Delivery, Owner]] = asyncio.Queue()
        self._channel: AbstractRobustChannel | None = None
        self._consumers: dict[str, Consumer] = {}  # by queue name
        self._queues: list[AbstractQueue] = []  # this partition count's, by partition
        self._received: set[int] = set()  # partitions delivered from since the last check
        self._draining: list[str] = []  # queues of another partition count, still consumed
        self.stored = 0

    @property
    def partitions(self) -> int:
        return self._settings.persist_partitions

    async def run(self, stop: asyncio.Event) -> None:
        channel = await self._broker.channel(self._settings.prefetch)
        await self._consume(channel)
        self.consuming = True
        log.info("persister consuming %s", ", ".join(q.name for q in self._queues))
        writer = asyncio.create_task(self._write_loop())
        helpers = [asyncio.create_task(self._watch_lag())]
        if self.partitions > 1:
            helpers.append(asyncio.create_task(self._rebalance_loop()))
        if self._settings.retention_days > 0:
            helpers.append(asyncio.create_task(self._retention_loop()))
        await stop.wait()
        for helper in helpers:
            helper.cancel()
        # Stop taking work, finish the batch in hand, then return (unacked ones are requeued).
        for consumer_ in list(self._consumers.values()):
            await consumer_.cancel()
        await asyncio.sleep(self._settings.batch_ms / 1000)
        writer.cancel()
        await asyncio.gather(writer, *helpers, return_exceptions=True)
        log.info("persister stopped after storing %s messages", self.stored)

    async def _watch_lag(self) -> None:
        """Report the persist queues' backlog every lag_check_s (the `lag` gauge); stop
        consuming a drained queue of another partition count (the next persister to
        start deletes it: what this one still holds of it is stored and acked first)."""
        while True:
            await asyncio.sleep(self._settings.lag_check_s)
            try:
                depths = [await self._broker.queue_depth(q.name) for q in self._queues]
                self.metrics.lag.set(sum(depths))
                for name in list(self._draining):
                    if await self._broker.queue_depth(name) == 0:
                        await self._consumers.pop(name).cancel()
                        self._draining.remove(name)
                        log.info("drained %s", name)
            except (AMQPError, ConnectionError, RuntimeError) as exc:
                log.info("could not read the persist queues' depth: %s", type(exc).__name__)

    async def _consume(self, channel: AbstractRobustChannel) -> None:
        names = self._broker.names
        self._channel = channel
        self._queues = await declare_persist_queues(channel, names,
                                                    self._settings.delivery_limit,
                                                    self.partitions)
        retired = await retire_other_partitions(self._broker.connection, names,
                                                self.partitions)
        roll = await channel.declare_queue(names.persister_roll, durable=True,
                                           arguments={"x-queue-type": "quorum"})
        await self._start(roll, None)  # nothing is published to it: it only counts us
        for p, queue in enumerate(self._queues):
            await self._start(queue, p if self.partitions > 1 else None)
        for name in retired:
            # No message ready and no consumer (so none held unacked): nothing to lose.
            # (Quorum queues refuse if-empty deletes.) Unbound, it takes no new ones.
            if (await self._broker.queue_depth(name) == 0
                    and await self._broker.consumer_count(name) == 0):
                await self._broker.delete_queue(name)
                log.info("deleted %s (of another partition count; empty)", name)
            else:
                log.warning("draining %s (of another partition count)", name)
                await self._start(await channel.declare_queue(name, passive=True), None)
                self._draining.append(name)

    async def _start(self, queue: AbstractQueue, owner: Owner) -> None:
        assert self._channel is not None

        async def receive(delivery: Delivery) -> None:
            self._inbox.put_nowait((delivery, owner))
            if owner is not None:
                self._received.add(owner)

        consumer_ = Consumer(self._channel, queue, receive, crash)
        self._consumers[queue.name] = consumer_
        await consumer_.start()

    async def _retention_loop(self) -> None:
        retention_ms = int(self._settings.retention_days * 86_400_000)
        while True:
            try:
                await retention.sweep(self._store.db, int(time.time() * 1000), retention_ms)
            except PyMongoError as exc:  # MongoDB away: the next sweep does it
                log.info("retention sweep failed: %s", type(exc).__name__)
            await asyncio.sleep(self._settings.retention_sweep_s)

    async def _rebalance_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.rebalance_s)
            try:
                await self._rebalance()
            except (AMQPError, ConnectionError, RuntimeError) as exc:
                log.info("could not rebalance the partitions: %s", type(exc).__name__)

    async def _rebalance(self) -> None:
        """Give up the partitions received from beyond this persister's fair share: cancel
        and consume again, to the back of the line (what was delivered is still ours to
        store and ack; the next in line gets what follows)."""
        held, self._received = self._received, set()
        persisters = await self._broker.consumer_count(self._broker.names.persister_roll)
        fair = math.ceil(self.partitions / max(persisters, 1))
        if len(held) <= fair:
            return
        for p in random.sample(sorted(held), len(held) - fair):
            queue = self._queues[p]
            await self._consumers[queue.name].cancel()
            await self._start(queue, p)
            log.info("handed %s to the next persister in line", queue.name)

    async def _next_batch(self) -> list[tuple[Delivery, int, Owner]]:
        """Broker messages, each with its frame count and partition, until they hold
        batch_size frames or batch_ms passed."""
        first, owner = await self._inbox.get()
        batch = [(first, frame_count(first.body), owner)]
        frames = batch[0][1]
        try:
            # One deadline for the batch (not a wait_for, and its task, per message).
            async with asyncio.timeout(self._settings.batch_ms / 1000):
                while frames < self._settings.batch_size:
                    message, owner = (self._inbox.get_nowait() if not self._inbox.empty()
                                      else await self._inbox.get())
                    batch.append((message, frame_count(message.body), owner))
                    frames += batch[-1][1]
        except TimeoutError:
            pass
        return batch

    async def _write_loop(self) -> None:
        """Parse and start writing the next batch while the previous one's insert is in
        flight (at most WRITES_IN_FLIGHT); batches are settled strictly in order."""
        slots = asyncio.Semaphore(WRITES_IN_FLIGHT)
        writes: asyncio.Queue[tuple[_Batch, asyncio.Task[set[int]]]] = asyncio.Queue()
        settler = asyncio.create_task(self._settle_loop(writes, slots))
        try:
            while True:
                batch = await self._prepare(await self._next_batch())
                if batch is None:
                    continue
                await slots.acquire()
                writes.put_nowait((batch, asyncio.create_task(
                    self._insert_with_retry(batch.docs))))
        finally:
            settler.cancel()
            while not writes.empty():
                writes.get_nowait()[1].cancel()
            await asyncio.gather(settler, return_exceptions=True)

    async def _settle_loop(self, writes: asyncio.Queue[tuple[_Batch, asyncio.Task[set[int]]]],
                           slots: asyncio.Semaphore) -> None:
        while True:
            batch, write = await writes.get()
            try:
                try:
                    refused = {batch.owner[i] for i in await write}
                except asyncio.CancelledError:
                    raise
                except Exception:  # not an outage (those are retried): the batch itself
                    log.exception("MongoDB cannot take a batch of %s messages",
                                  len(batch.good))
                    refused = set(range(len(batch.good)))
                await self._settle_batch(batch, refused)
            finally:
                slots.release()

    async def _prepare(self, messages: list[tuple[Delivery, int, Owner]]) -> _Batch | None:
        """Parse a batch; dead-letter the messages that are not valid for their key. A
        message with no frame of its partition is acked with the batch, storing nothing."""
        batch = _Batch()
        now = int(time.time() * 1000)
        for message, lines, owner in messages:
            if message.channel.is_closed:
                continue  # the broker requeued it with its channel: it comes again
            parsed = _documents(message, lines, now)
            if parsed is None:
                log.warning("dead-lettering malformed message %s", message_id(message))
                self.metrics.dead_lettered.inc()
                await _settle(message, ack=False)
                continue
            if owner is not None:
                parsed = [(d, o) for d, o in parsed
                          if persist_partition(d["room"], self.partitions) == owner]
            batch.owner.extend([len(batch.good)] * len(parsed))
            batch.docs.extend(d for d, _ in parsed)
            batch.origins.extend(o for _, o in parsed)
            batch.good.append(message)
        return batch if batch.good else None

    async def _settle_batch(self, batch: _Batch, refused: set[int]) -> None:
        """Ack a written batch and send its receipts. `refused`: its broker messages
        MongoDB refused a frame of, dead-lettered whole (their other frames are stored: a
        replay from the dead letters is a no-op for them)."""
        good = batch.good
        for i in sorted(refused):
            log.warning("dead-lettering message MongoDB refused: %s", message_id(good[i]))
            self.metrics.dead_lettered.inc()
            await _settle(good[i], ack=False)
        # One ack for the batch: every earlier delivery on this channel is settled already
        # (batches are taken in delivery order and settled in that order), and on a quorum
        # queue each ack is a log entry, so this saves the broker work per message.
        if len(refused) < len(good):
            last = max(i for i in range(len(good)) if i not in refused)
            await _settle(good[last], ack=True, multiple=not refused)
            if refused:
                for i, message in enumerate(good[:last]):
                    if i not in refused:
                        await _settle(message, ack=True)
        stored = [(d, origin) for d, origin, o in zip(batch.docs, batch.origins, batch.owner,
                                                      strict=True) if o not in refused]
        self.stored += len(stored)
        self.metrics.stored.inc(len(stored))
        await self._publish_receipts(stored)

    async def _insert_with_retry(self, docs: list[dict[str, Any]]) -> set[int]:
        """Insert, waiting out a MongoDB outage with capped, jittered back-off."""
        if not docs:
            return set()  # only other partitions' frames
        delay = 0.1
        self.metrics.batch_size.observe(len(docs))
        while True:
            started = time.perf_counter()
            try:
                refused = await self._store.insert(docs)
                self.metrics.write_seconds.observe(time.perf_counter() - started)
                return refused
            except (ConnectionFailure, OperationFailure, PyMongoError) as exc:
                self.metrics.write_failures.inc()
                log.warning("MongoDB write failed (%s); retrying in %.2fs",
                            type(exc).__name__, delay)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, self._settings.retry_max_s)

    async def _publish_receipts(self, stored: list[tuple[dict[str, Any], str]]) -> None:
        """One `stored` notice for the batch: receipts for senders, catch-up for late
        joiners. Unconfirmed: a receipt only matters to sockets listening now."""
        if not stored:
            return
        items = [{"room": d["room"], "sender": d["sender"], "id": d["id"],
                  "cursor": d["cursor"], "kind": d["kind"], "origin": origin}
                 for d, origin in stored]
        try:
            await self._broker.notify(orjson.dumps({"items": items}), STORED_KEY)
        except PublishError as exc:
            log.warning("stored receipts for %s messages not published: %s", len(items),
                        exc.reason)


async def _settle(message: Delivery, *, ack: bool,
                  multiple: bool = False) -> None:
    """Ack, or reject to the dead letters. If the channel was lost meanwhile, the broker
    delivers the message again and the write of it is a no-op (same _id)."""
    try:
        if ack:
            await consumer.ack(message, multiple=multiple)
        else:
            await consumer.reject(message)
    except (AMQPError, ConnectionError, RuntimeError) as exc:
        log.info("could not settle %s (%s); it will be redelivered", message_id(message),
                 type(exc).__name__)


def _documents(message: Delivery, lines: int,
               stored_at: int) -> list[tuple[dict[str, Any], str]] | None:
    """The documents to store, each with its publishing connection (for the receipt, not
    stored), or None when any frame is not a valid one of a room it was routed under."""
    ns, _, room = routing_key(message).partition(".")
    if ns != MESSAGE_NS:
        return None
    try:
        # Each line's room: one the message was routed under, and where it was pushed live.
        pushed_to, origins, _, _ = decode_headers(room, headers(message), lines)
    except BatchError:
        return None
    try:
        frames = storable_frames(message.body, lines)
    except ValidationError:
        return None
    docs = []
    for i, frame in enumerate(frames):
        if frame["room"] != pushed_to[i] or frame["sender"] not in room_members(frame["room"]):
            return None
        # Store what was published, as published (not a re-serialisation of it).
        doc = cast(dict[str, Any], frame)
        del doc["type"]
        doc["_id"] = message_doc_id(frame["sender"], frame["id"])
        doc["stored_at"] = stored_at
        docs.append((doc, origins[i]))
    return docs
