"""consume duet.persist → batch → insert_many → ack, then publish `stored` receipts."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
from aio_pika.abc import AbstractRobustChannel
from aiormq.exceptions import AMQPError
from pydantic import ValidationError
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from broker import Broker, PublishError, consumer
from broker.consumer import Consumer, Delivery, headers, message_id, routing_key
from broker.topology import declare_persist_queue
from contracts import message_doc_id, room_members
from contracts.batch import BatchError, decode_headers, frame_count
from contracts.events import storable_frames
from contracts.routing import MESSAGE_NS, STORED_KEY
from service.crash import crash

from .metrics import PersisterMetrics
from .settings import PersisterSettings
from .store import MessageStore

log = logging.getLogger(__name__)


WRITES_IN_FLIGHT = 2  # batches being written at once: one parses while one is inserted


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
        self._inbox: asyncio.Queue[Delivery] = asyncio.Queue()
        self._consumer: Consumer | None = None
        self.stored = 0

    async def run(self, stop: asyncio.Event) -> None:
        channel = await self._broker.channel(self._settings.prefetch)
        await self._consume(channel)
        self.consuming = True
        log.info("persister consuming %s", self._broker.names.persist_queue)
        writer = asyncio.create_task(self._write_loop())
        watchdog = asyncio.create_task(self._watch_lag())
        await stop.wait()
        watchdog.cancel()
        # Stop taking work, finish the batch in hand, then return (unacked ones are requeued).
        assert self._consumer is not None
        await self._consumer.cancel()
        await asyncio.sleep(self._settings.batch_ms / 1000)
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        log.info("persister stopped after storing %s messages", self.stored)

    async def _watch_lag(self) -> None:
        """Report duet.persist's backlog every lag_check_s (the `lag` gauge)."""
        queue = self._broker.names.persist_queue
        while True:
            await asyncio.sleep(self._settings.lag_check_s)
            try:
                self.metrics.lag.set(await self._broker.queue_depth(queue))
            except (AMQPError, ConnectionError, RuntimeError) as exc:
                log.info("could not read the depth of %s: %s", queue, type(exc).__name__)

    async def _consume(self, channel: AbstractRobustChannel) -> None:
        queue = await declare_persist_queue(channel, self._broker.names,
                                            self._settings.delivery_limit)
        self._consumer = Consumer(channel, queue, self._inbox.put, crash)
        await self._consumer.start()

    async def _next_batch(self) -> list[tuple[Delivery, int]]:
        """Broker messages, each with its frame count, until they hold batch_size frames
        or batch_ms passed."""
        first = await self._inbox.get()
        batch = [(first, frame_count(first.body))]
        frames = batch[0][1]
        try:
            # One deadline for the batch (not a wait_for, and its task, per message).
            async with asyncio.timeout(self._settings.batch_ms / 1000):
                while frames < self._settings.batch_size:
                    message = (self._inbox.get_nowait() if not self._inbox.empty()
                               else await self._inbox.get())
                    batch.append((message, frame_count(message.body)))
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

    async def _prepare(self, messages: list[tuple[Delivery, int]]) -> _Batch | None:
        """Parse a batch; dead-letter the messages that are not valid for their key."""
        batch = _Batch()
        now = int(time.time() * 1000)
        for message, lines in messages:
            if message.channel.is_closed:
                continue  # the broker requeued it with its channel: it comes again
            parsed = _documents(message, lines, now)
            if parsed is None:
                log.warning("dead-lettering malformed message %s", message_id(message))
                self.metrics.dead_lettered.inc()
                await _settle(message, ack=False)
            else:
                batch.owner.extend([len(batch.good)] * len(parsed))
                batch.docs.extend(d for d, _ in parsed)
                batch.origins.extend(o for _, o in parsed)
                batch.good.append(message)
        return batch if batch.docs else None

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
