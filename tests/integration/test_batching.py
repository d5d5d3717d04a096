"""Pipelined sends and batched broker messages, on real processes and the real broker."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path
from urllib.parse import urlparse

import aio_pika
import orjson
import pymongo
from support import (
    Stack,
    dead_letters,
    drop_broker_names,
    envelope,
    friends,
    open_socket,
    wait_dead_letters,
    wait_stored,
)

from contracts import Names, room_id
from contracts.events import CURSOR_HEADER, ORIGIN_HEADER, join_frames, split_frames
from devstack.ports import free_port

PROXY = Path(__file__).resolve().parents[1] / "tcp_proxy.py"


async def test_burst_leaves_as_few_broker_messages_delivered_in_order_and_stored(
        stack: Stack, mongo: pymongo.MongoClient) -> None:
    """60 frames written back to back travel in far fewer broker messages, one frame per
    line with per-line headers, and reach the peer and MongoDB once each, in order."""
    stack.persister()
    g1, g2 = stack.gateway(), stack.gateway()
    a, b = await friends(g1)
    room, names = room_id(a.user_id, b.user_id), Names(prefix=stack.prefix)
    ids = [f"burst-{i}" for i in range(60)]
    conn = await aio_pika.connect(stack.amqp_url)
    async with conn:
        channel = await conn.channel()
        tap = await channel.declare_queue(exclusive=True, auto_delete=True)
        await tap.bind(names.exchange, f"room.{room}")
        async with open_socket(g2, b, a) as sb, open_socket(g1, a, b) as sa:
            for n, mid in enumerate(ids):  # no waiting for acks: a pipelining client
                await sa.send({"type": "send", "id": mid, "kind": "text",
                               "body": envelope(a, b, n)})
            acks = await sa.collect("ack", 60)
            received = await sb.collect("message", 60)
        tapped: list[aio_pika.abc.AbstractIncomingMessage] = []
        while len(sum((split_frames(m.body) for m in tapped), [])) < 60:
            message = await tap.get(timeout=5, fail=False)
            if message is None:
                break
            tapped.append(message)
    assert sorted(f["id"] for f in acks) == sorted(ids)
    assert [m["id"] for m in received] == ids
    frames = [orjson.loads(line) for m in tapped for line in split_frames(m.body)]
    assert [f["id"] for f in frames] == ids
    assert len(tapped) <= 30, f"{len(tapped)} broker messages for 60 frames: not batched"
    for m in tapped:
        lines = split_frames(m.body)
        headers = m.headers or {}
        assert headers[CURSOR_HEADER] == [orjson.loads(x)["cursor"] for x in lines]
        assert len(headers[ORIGIN_HEADER]) == len(lines)
    assert sorted(await wait_stored(mongo, stack.db_name, room, 60)) == sorted(ids)


async def test_persister_stores_every_frame_and_dead_letters_a_batch_with_a_bad_one(
        stack: Stack, mongo: pymongo.MongoClient) -> None:
    """A broker message of three frames gives three documents; one with a bad frame among
    good ones is dead-lettered whole, and the persister carries on."""
    stack.persister()
    gw = stack.gateway()
    a, b = await friends(gw)
    names, room = Names(prefix=stack.prefix), room_id(a.user_id, b.user_id)

    def frame(mid: str, n: int) -> bytes:
        cursor = f"{time.time_ns() // 1000:016x}{n:016x}"
        return orjson.dumps({"type": "message", "id": mid, "sender": a.user_id, "room": room,
                             "kind": "text", "body": envelope(a, b, n), "ts": 1,
                             "cursor": cursor})

    good = [frame(f"ok-{i}", i) for i in range(3)]
    bad = [frame("bad-0", 10), b'{"type":"message"}', frame("bad-2", 12)]
    conn = await aio_pika.connect(stack.amqp_url)
    async with conn:
        channel = await conn.channel()
        exchange = await channel.get_exchange(names.exchange)
        dead0 = await dead_letters(channel, names)
        for lines in (good, bad):
            await exchange.publish(aio_pika.Message(
                join_frames(lines), headers={ORIGIN_HEADER: ["x"] * 3}), f"room.{room}")
        await wait_dead_letters(channel, names, dead0 + 1, "the bad batch")
    stored = await wait_stored(mongo, stack.db_name, room, 3)
    await asyncio.sleep(1.0)  # nothing of the bad batch may follow
    assert sorted(stored) == ["ok-0", "ok-1", "ok-2"]
    assert sorted(mongo[stack.db_name].messages.distinct("id", {"room": room})) == stored


async def test_reader_stops_at_max_in_flight_until_confirms_come(
        amqp_url: str, tmp_path: Path, mongo_url: str) -> None:
    """With the broker's confirms held back, a socket gets no more than DUET_MAX_IN_FLIGHT
    sends published at once: the rest wait, then fail one window after another."""
    rabbit_port = urlparse(amqp_url).port or 5672
    proxy_port = free_port()
    proxy = await asyncio.create_subprocess_exec(
        "python3", str(PROXY), str(proxy_port), str(rabbit_port))
    stack = Stack(amqp_url.replace(f":{rabbit_port}/", f":{proxy_port}/"), mongo_url, tmp_path)
    try:
        await asyncio.sleep(0.5)
        stack.persister()
        gw = stack.gateway(DUET_MAX_IN_FLIGHT="3", DUET_PUBLISH_TIMEOUT_S="1")
        a, b = await friends(gw)
        async with open_socket(gw, a, b) as sa:
            os.kill(proxy.pid, signal.SIGSTOP)  # the broker's answers stop arriving
            try:
                t0 = time.monotonic()
                for n in range(7):
                    await sa.send({"type": "send", "id": f"w{n}", "kind": "text",
                                   "body": envelope(a, b, n)})
                errors = await sa.collect("error", 7, timeout=20)
                seconds = [time.monotonic() - t0]
            finally:
                os.kill(proxy.pid, signal.SIGCONT)
            assert [e["code"] for e in errors] == ["publish_failed"] * 7
            assert [e["id"] for e in errors] == [f"w{n}" for n in range(7)]
            # Three windows of one publish timeout each: 3 + 3 + 1 sends.
            assert seconds[0] >= 2.8, f"all 7 answered after {seconds[0]:.1f} s"
            deadline = time.monotonic() + 30
            while True:  # the broker connection recovers; sends are acked again
                await sa.send({"type": "send", "id": "after", "kind": "text",
                               "body": envelope(a, b, 99), "retry": True})
                frame = await sa.recv(10)
                while frame["type"] not in ("ack", "error"):
                    frame = await sa.recv(10)
                if frame["type"] == "ack":
                    break
                assert time.monotonic() < deadline, frame
                await asyncio.sleep(0.5)
    finally:
        stack.stop()
        with contextlib.suppress(ProcessLookupError):
            os.kill(proxy.pid, signal.SIGCONT)
        await asyncio.to_thread(drop_broker_names, stack)  # through the proxy, still up
        proxy.kill()
        await proxy.wait()


async def test_batch_mongodb_cannot_encode_is_dead_lettered_and_writing_goes_on(
        stack: Stack, mongo: pymongo.MongoClient) -> None:
    """A frame BSON cannot encode (a NUL in a body key) fails its batch's insert for good:
    that batch is dead-lettered and the persister goes on storing what follows."""
    stack.persister()
    gw = stack.gateway()
    a, b = await friends(gw)
    names, room = Names(prefix=stack.prefix), room_id(a.user_id, b.user_id)

    def frame(mid: str, n: int, body: dict[str, object]) -> bytes:
        cursor = f"{time.time_ns() // 1000:016x}{n:016x}"
        return orjson.dumps({"type": "message", "id": mid, "sender": a.user_id, "room": room,
                             "kind": "text", "body": body, "ts": 1, "cursor": cursor})

    conn = await aio_pika.connect(stack.amqp_url)
    async with conn:
        channel = await conn.channel()
        exchange = await channel.get_exchange(names.exchange)
        dead0 = await dead_letters(channel, names)
        await exchange.publish(aio_pika.Message(frame("nul", 1, {"a\u0000b": 1})),
                               f"room.{room}")
        await wait_dead_letters(channel, names, dead0 + 1, "the unencodable batch")
        await exchange.publish(aio_pika.Message(frame("after", 2, envelope(a, b, 2))),
                               f"room.{room}")
    assert await wait_stored(mongo, stack.db_name, room, 1) == ["after"]
