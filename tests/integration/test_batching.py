"""Pipelined sends and batched broker messages, on real processes and the real broker."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlparse

import aio_pika
import httpx
import orjson
import pymongo
from support import (
    Gateway,
    Stack,
    dead_letters,
    drop_broker_names,
    envelope,
    eventually,
    friends,
    open_socket,
    wait_dead_letters,
    wait_stored,
)

from contracts import Names, room_id
from contracts.batch import (
    CC_HEADER,
    CURSOR_HEADER,
    ORIGIN_HEADER,
    ROOM_HEADER,
    Line,
    encode,
    header_list,
    join_frames,
    split_frames,
)
from devstack.ports import free_port, port_answers

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
    # b's gateway wrote each broker message's frames together: fewer writes than frames.
    frames_written, writes = await socket_writes(g2)
    assert frames_written >= 61 and writes < frames_written, (frames_written, writes)
    for m in tapped:
        lines = split_frames(m.body)
        headers = m.headers or {}
        # Strings of one line per frame, not AMQP arrays (cheaper to decode).
        assert isinstance(headers[CURSOR_HEADER], str)
        assert header_list(headers[CURSOR_HEADER]) == [orjson.loads(x)["cursor"] for x in lines]
        assert len(header_list(headers[ORIGIN_HEADER])) == len(lines)
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
            m = encode([Line(x, room, "x", f"{i:032x}") for i, x in enumerate(lines)])
            await exchange.publish(aio_pika.Message(m.body, headers=m.headers), m.routing_key)
        await wait_dead_letters(channel, names, dead0 + 1, "the bad batch")
    stored = await wait_stored(mongo, stack.db_name, room, 3)
    await asyncio.sleep(1.0)  # nothing of the bad batch may follow
    assert sorted(stored) == ["ok-0", "ok-1", "ok-2"]
    assert sorted(mongo[stack.db_name].messages.distinct("id", {"room": room})) == stored


async def test_persister_stores_frames_of_each_room_a_message_was_routed_under(
        stack: Stack, mongo: pymongo.MongoClient) -> None:
    """A frame of room 2 in a broker message under room 1's key is stored when room 2's key
    is in its CC header (and x-duet-room names each line's room), and dead-letters the
    message when it is not."""
    stack.persister()
    gw = stack.gateway()
    (a1, b1), (a2, b2) = await friends(gw), await friends(gw)
    room1, room2 = room_id(a1.user_id, b1.user_id), room_id(a2.user_id, b2.user_id)
    names = Names(prefix=stack.prefix)

    def frame(sender: str, room: str, mid: str, n: int) -> bytes:
        cursor = f"{time.time_ns() // 1000:016x}{n:016x}"
        return orjson.dumps({"type": "message", "id": mid, "sender": sender, "room": room,
                             "kind": "text", "body": envelope(a1, b1, n), "ts": 1,
                             "cursor": cursor})

    conn = await aio_pika.connect(stack.amqp_url)
    async with conn:
        channel = await conn.channel()
        exchange = await channel.get_exchange(names.exchange)
        dead0 = await dead_letters(channel, names)
        stray = join_frames([frame(a1.user_id, room1, "stray-1", 1),
                             frame(a2.user_id, room2, "stray-2", 2)])
        await exchange.publish(aio_pika.Message(stray), f"room.{room1}")
        await wait_dead_letters(channel, names, dead0 + 1, "the frame of an unrouted room")
        shared = encode([Line(frame(a1.user_id, room1, "cc-1", 3), room1, "x", "c1"),
                         Line(frame(a2.user_id, room2, "cc-2", 4), room2, "x", "c2")])
        assert shared.headers[CC_HEADER][0] == f"room.{room2}"
        await exchange.publish(aio_pika.Message(shared.body, headers=shared.headers),
                               shared.routing_key)
    assert await wait_stored(mongo, stack.db_name, room1, 1) == ["cc-1"]
    assert await wait_stored(mongo, stack.db_name, room2, 1) == ["cc-2"]


@contextlib.asynccontextmanager
async def held_confirms(amqp_url: str, tmp_path: Path,
                        mongo_url: str) -> AsyncIterator[tuple[Stack, Callable[[bool], None]]]:
    """A stack whose broker connections pass a TCP proxy, and `hold(True)` / `hold(False)`
    to stop and resume it (SIGSTOP): the broker's answers, confirms among them, wait."""
    rabbit_port = urlparse(amqp_url).port or 5672
    proxy_port = free_port()
    proxy = await asyncio.create_subprocess_exec(
        "python3", str(PROXY), str(proxy_port), str(rabbit_port))
    stack = Stack(amqp_url.replace(f":{rabbit_port}/", f":{proxy_port}/"), mongo_url, tmp_path)

    def hold(on: bool) -> None:
        os.kill(proxy.pid, signal.SIGSTOP if on else signal.SIGCONT)

    try:
        await eventually(lambda: asyncio.to_thread(port_answers, "127.0.0.1", proxy_port, 0.2),
                         10, "the TCP proxy listening")
        yield stack, hold
    finally:
        stack.stop()
        with contextlib.suppress(ProcessLookupError):
            hold(False)
        await asyncio.to_thread(drop_broker_names, stack)  # through the proxy, still up
        proxy.kill()
        await proxy.wait()


async def test_reader_stops_at_max_in_flight_until_confirms_come(
        amqp_url: str, tmp_path: Path, mongo_url: str) -> None:
    """With the broker's confirms held back, a socket gets no more than DUET_MAX_IN_FLIGHT
    sends published at once: the rest wait, then fail one window after another."""
    async with held_confirms(amqp_url, tmp_path, mongo_url) as (stack, hold):
        stack.persister()
        gw = stack.gateway(DUET_MAX_IN_FLIGHT="3", DUET_PUBLISH_TIMEOUT_S="1")
        a, b = await friends(gw)
        async with open_socket(gw, a, b) as sa:
            hold(True)  # the broker's answers stop arriving
            try:
                t0 = time.monotonic()
                for n in range(7):
                    await sa.send({"type": "send", "id": f"w{n}", "kind": "text",
                                   "body": envelope(a, b, n)})
                errors = await sa.collect("error", 7, timeout=20)
                seconds = [time.monotonic() - t0]
            finally:
                hold(False)
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
                await asyncio.sleep(0.5)  # between two tries, each waiting for its answer


async def socket_writes(gw: Gateway) -> tuple[float, float]:
    """(frames, writes) the gateway has written to client sockets (gateway.outbox)."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{gw.http}/metrics")).text
    values = dict(line.split(" ", 1) for line in text.splitlines()
                  if line.startswith("duet_gateway_socket_write"))
    return (float(values["duet_gateway_socket_write_frames_total"]),
            float(values["duet_gateway_socket_writes_total"]))


async def sends_read(gw: Gateway, count: int) -> bool:
    """Whether the gateway has read `count` send frames (its frames_in counter)."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{gw.http}/metrics")).text
    prefix = 'duet_gateway_frames_in_total{type="send"} '
    return any(float(line.removeprefix(prefix)) >= count
               for line in text.splitlines() if line.startswith(prefix))


async def test_waiting_messages_of_two_rooms_leave_as_one_broker_message(
        amqp_url: str, tmp_path: Path, mongo_url: str, mongo: pymongo.MongoClient) -> None:
    """While the gateway's one publish in flight (the default) awaits its confirm, what two
    pairs send waits and then leaves as one broker message routed under both rooms' keys
    (CC): each receiver gets its own room's messages only, in order, and each is stored
    once."""
    async with held_confirms(amqp_url, tmp_path, mongo_url) as (stack, hold):
        stack.persister()
        g1, g2 = stack.gateway(), stack.gateway()
        (a1, b1), (a2, b2) = await friends(g1), await friends(g1)
        room1, room2 = room_id(a1.user_id, b1.user_id), room_id(a2.user_id, b2.user_id)
        names = Names(prefix=stack.prefix)
        ids1, ids2 = [f"one-{i}" for i in range(6)], [f"two-{i}" for i in range(5)]
        conn = await aio_pika.connect(amqp_url)  # the broker itself, not the proxy
        async with conn:
            channel = await conn.channel()
            tap = await channel.declare_queue(exclusive=True, auto_delete=True)
            # Room 2's key only: a message under room 1's key reaches it through CC.
            await tap.bind(names.exchange, f"room.{room2}")
            async with open_socket(g2, b1, a1) as sb1, open_socket(g2, b2, a2) as sb2, \
                    open_socket(g1, a1, b1) as sa1, open_socket(g1, a2, b2) as sa2:
                hold(True)
                try:
                    await sa1.send({"type": "send", "id": ids1[0], "kind": "text",
                                    "body": envelope(a1, b1, 0)})
                    # In flight, its confirm held back: a state inside the gateway that no
                    # endpoint shows, so time, not a condition, orders it before the rest.
                    await asyncio.sleep(0.3)
                    for n in range(1, 6):
                        await sa1.send({"type": "send", "id": ids1[n], "kind": "text",
                                        "body": envelope(a1, b1, n)})
                        if n == 1:  # the first waiting message, so room 1's key leads
                            await asyncio.sleep(0.1)
                        if n - 1 < len(ids2):
                            await sa2.send({"type": "send", "id": ids2[n - 1], "kind": "text",
                                            "body": envelope(a2, b2, n - 1)})
                    # Every send read by the gateway (waiting behind the held confirm).
                    await eventually(lambda: sends_read(g1, 11), 10, "11 sends read", 0.05)
                finally:
                    hold(False)
                assert sorted(f["id"] for f in await sa1.collect("ack", 6)) == sorted(ids1)
                assert sorted(f["id"] for f in await sa2.collect("ack", 5)) == sorted(ids2)
                got1, got2 = await sb1.collect("message", 6), await sb2.collect("message", 5)
                assert await sb1.quiet("message", 0.5) == []
                assert await sb2.quiet("message", 0.5) == []
            tapped = []
            while (message := await tap.get(timeout=5, fail=False)) is not None:
                tapped.append(message)
    assert [m["id"] for m in got1] == ids1 and {m["room"] for m in got1} == {room1}
    assert [m["id"] for m in got2] == ids2 and {m["room"] for m in got2} == {room2}
    shared = [m for m in tapped if (m.headers or {}).get(ROOM_HEADER)]
    assert len(shared) == 1, [m.headers for m in tapped]
    lines = [orjson.loads(x) for x in split_frames(shared[0].body)]
    headers = shared[0].headers or {}
    assert shared[0].routing_key == f"room.{room1}"
    assert [k for k in headers[CC_HEADER] if k.startswith("room.")] == [f"room.{room2}"]
    assert header_list(headers[ROOM_HEADER]) == [f["room"] for f in lines]
    assert sorted(f["id"] for f in lines) == sorted(ids1[1:] + ids2)
    assert sorted(await wait_stored(mongo, stack.db_name, room1, 6)) == sorted(ids1)
    assert sorted(await wait_stored(mongo, stack.db_name, room2, 5)) == sorted(ids2)


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
        for n, m in enumerate((frame("nul", 1, {"a\u0000b": 1}),
                               frame("after", 2, envelope(a, b, 2)))):
            batch = encode([Line(m, room, "x", f"{n:032x}")])
            await exchange.publish(aio_pika.Message(batch.body, headers=batch.headers),
                                   batch.routing_key)
            if n == 0:
                await wait_dead_letters(channel, names, dead0 + 1, "the unencodable batch")
    assert await wait_stored(mongo, stack.db_name, room, 1) == ["after"]
