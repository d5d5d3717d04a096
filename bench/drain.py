"""(d) Persister drain: a backlog in the persist queue, then how fast it reaches MongoDB.

With no persister running, M chat messages are published to the rooms exchange under
`room.<lo>.<hi>`, byte for byte as a gateway publishes them (gateway/publisher.py: the
`message` frames as JSON lines, persistent, the origin and cursor headers), with publisher
confirms: first one frame per broker message (a gateway's lone message), then again as
batches of `drain_frames` frames of one room (a gateway's batch under load). Each time a
persister starts and we time the documents arriving, until the collection holds them all;
then the one-frame backlog once more, drained by `drain_persisters` persisters at once.
In the same run the same documents (as the persister stores them) go into a scratch
collection with a bare `insert_many(ordered=False)` per batch: the ceiling for the
persister's writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import DeliveryMode

from broker.topology import declare_persist_queues
from contracts import MESSAGES, message_doc_id
from contracts.batch import Line, encode
from contracts.documents import MESSAGE_INDEXES
from contracts.routing import message_key
from persister.settings import PersisterSettings

from .envelopes import Cursors, room_message
from .scenarios import Context
from .stack import BenchError, Child

log = logging.getLogger(__name__)

# Around the drain, given the persister that drains (profile.py samples it with py-spy).
Watch = Callable[[Child], AbstractAsyncContextManager[Any]]

_PUBLISH_CHUNK = 500  # publishes awaiting their confirm at once
SCRATCH = "bench_scratch"


def backlog(count: int, rooms: int) -> list[tuple[str, str, bytes, str]]:
    """(routing key, message id, body, cursor) of `count` messages over `rooms` rooms."""
    members = [(os.urandom(12).hex(), os.urandom(12).hex()) for _ in range(rooms)]
    cursors = Cursors(node=0xBE4C4)
    out = []
    for i in range(count):
        a, b = members[i % rooms]
        sender, peer = (a, b) if (i // rooms) % 2 == 0 else (b, a)
        mid = f"d-{i}"
        body, cursor = room_message(sender, peer, mid, i // rooms + 1, cursors)
        room = f"{min(a, b)}.{max(a, b)}"
        out.append((message_key(room), message_doc_id(sender, mid), body, cursor))
    return out


def _grouped(backlog: list[tuple[str, str, bytes, str]],
             frames: int) -> list[list[tuple[str, str, bytes, str]]]:
    """The backlog as broker messages of up to `frames` frames of one room, each room's
    messages in order (as a gateway batches a burst)."""
    by_room: dict[str, list[tuple[str, str, bytes, str]]] = {}
    for item in backlog:
        by_room.setdefault(item[0], []).append(item)
    chunks = [items[i:i + frames] for items in by_room.values()
              for i in range(0, len(items), frames)]
    # Interleave the rooms again, as live traffic would be.
    chunks.sort(key=lambda c: c[0][3])
    return chunks


async def _publish(ctx: Context, backlog: list[tuple[str, str, bytes, str]],
                   frames: int) -> float:
    """Publish with confirms, `frames` chat messages per broker message; return chat
    messages per second."""
    settings = PersisterSettings.model_fields
    chunks = _grouped(backlog, frames)
    async with await ctx.stack.amqp.channel(publisher_confirms=True) as ch:
        # The queue, bound to room.#, exists before the first publish (idempotent, same
        # arguments as the persister declares it with).
        await declare_persist_queues(ch, ctx.stack.names, settings["delivery_limit"].default)
        exchange = await ch.get_exchange(ctx.stack.names.exchange)
        messages = [encode([Line(body, key.partition(".")[2], "bench-drain-1", cursor)
                            for key, _, body, cursor in chunk]) for chunk in chunks]
        t0 = time.monotonic()
        for start in range(0, len(messages), _PUBLISH_CHUNK):
            await asyncio.gather(*(
                exchange.publish(aio_pika.Message(
                    m.body, content_type="application/json",
                    delivery_mode=DeliveryMode.PERSISTENT, headers=m.headers), m.routing_key)
                for m in messages[start:start + _PUBLISH_CHUNK]))
        return len(backlog) / (time.monotonic() - t0)


async def _raw_inserts(ctx: Context, backlog: list[tuple[str, str, bytes, str]],
                       batch: int) -> dict[str, Any]:
    """The same documents, as the persister stores them, by bare insert_many batches."""
    now = int(time.time() * 1000)
    docs = []
    for _, doc_id, body, _ in backlog:
        doc = orjson.loads(body)
        del doc["type"]
        doc["_id"] = doc_id
        doc["stored_at"] = now
        docs.append(doc)
    scratch = ctx.stack.db[f"{SCRATCH}_{batch}"]
    await scratch.drop()
    for collection, keys, options in MESSAGE_INDEXES:
        if collection == MESSAGES:  # the same unique (room, cursor) index as the real one
            opts: dict[str, Any] = dict(options)
            await scratch.create_index(keys, **opts)
    meter = ctx.meter()
    cpu0, t0 = meter.snapshot(), time.monotonic()
    for start in range(0, len(docs), batch):
        await scratch.insert_many(docs[start:start + batch], ordered=False)
    elapsed, cpu = time.monotonic() - t0, meter.delta(cpu0, meter.snapshot())
    stored = await scratch.count_documents({})
    await scratch.drop()
    return {"batch": batch, "docs": stored, "seconds": round(elapsed, 2),
            "docs_s": round(len(docs) / elapsed, 1), "cpu_s": cpu}


async def drain(ctx: Context) -> dict[str, Any]:
    plan, stack = ctx.plan, ctx.stack
    # No persister may consume while the backlog builds: stop the one of (a) and (b),
    # once it has emptied the queue.
    await stack.wait_persisted()
    if ctx.persister is not None:
        await ctx.persister.stop_async()
        ctx.persister = None
    items = backlog(plan.drain_messages, plan.drain_rooms)
    result = await drain_once(ctx, items, 1)
    result["batched"] = [await drain_once(ctx, backlog(plan.drain_messages, plan.drain_rooms),
                                          frames) for frames in plan.drain_frames]
    # Persisters compete on duet.persist: how far more of them carry a one-frame backlog.
    result["scaled"] = [await drain_once(ctx, backlog(plan.drain_messages, plan.drain_rooms), 1,
                                         persisters=n) for n in plan.drain_persisters]
    result["raw_insert_many"] = [await _raw_inserts(ctx, items, b) for b in plan.insert_batches]
    return result


async def drain_once(ctx: Context, backlog: list[tuple[str, str, bytes, str]],
                     frames: int, watch: Watch | None = None,
                     persisters: int = 1) -> dict[str, Any]:
    """Queue the backlog with no persister running, then time `persisters` persisters
    draining it (inside `watch(first persister)` when given)."""
    plan, stack = ctx.plan, ctx.stack
    messages = stack.db[MESSAGES]
    base = await messages.count_documents({})
    publish_rate = await _publish(ctx, backlog, frames)
    ready, consumers = await stack.persist_queue_state()
    expected = len(_grouped(backlog, frames))
    if ready != expected or consumers:
        raise BenchError(f"persist queue holds {ready} messages, {consumers} consumers; "
                         f"expected {expected}, 0")
    log.info("(d) %s broker messages of %s frames queued (%.0f msg/s published)", ready,
             frames, publish_rate)

    target = base + len(backlog)
    t_spawn = time.monotonic()
    running = [stack.start_persister(f"persister-{i}" if i else "persister")
               for i in range(persisters)]
    async with watch(running[0]) if watch else contextlib.nullcontext():
        meter = ctx.meter(*running)
        cpu0 = meter.snapshot()
        t_first = None
        limit = max(120.0, len(backlog) / 500)
        while True:
            count = await messages.estimated_document_count()
            now = time.monotonic()
            if t_first is None and count > base:
                t_first = now
            if count >= target:
                break
            if now - t_spawn > limit or not all(p.alive() for p in running):
                raise BenchError(f"drain stalled at {count - base}/{len(backlog)} documents")
            await asyncio.sleep(0.02)
        t_done, cpu = time.monotonic(), meter.delta(cpu0, meter.snapshot())
    assert t_first is not None
    stored = await messages.count_documents({}) - base
    for persister in running:
        await persister.stop_async()
    n = len(backlog)
    result: dict[str, Any] = {
        "messages": n,
        "frames_per_message": frames,
        "persisters": persisters,
        "rooms": plan.drain_rooms,
        "publish_msgs_s": round(publish_rate, 1),
        "stored": stored,
        "drain_s": round(t_done - t_first, 2),
        "docs_s": round(n / max(t_done - t_first, 1e-6), 1),
        "docs_s_from_spawn": round(n / (t_done - t_spawn), 1),
        "cpu_s": cpu,
        "cpu_us_per_doc": {k: round(v * 1e6 / n, 1) for k, v in cpu.items()},
        "persister_settings": {k: PersisterSettings.model_fields[k].default
                               for k in ("prefetch", "batch_size", "batch_ms")},
    }
    log.info("(d) %s persister(s) stored %s docs in %.2f s: %s docs/s", persisters, stored,
             t_done - t_first, result["docs_s"])
    return result
