"""`python -m bench --profile bindings`: two topic bindings per user, against one per room.

A gateway must receive every message of every room of each user it holds a socket of.
Two ways to bind its queue on the topic exchange: one binding per room (`*.<lo>.<hi>`, as
v1 did per room socket), or two per user (`*.<uid>.*` and `*.*.<uid>`, what the hub does).
This measures both on the real broker, with USERS users of FRIENDS friends each spread
over two gateway queues (as a deployment of two gateways has them):

- what a first connect of a user with many friends costs in binding round trips
  (sequential binds, as the hub makes them);
- how many bindings the broker holds for the lot, and how long making them took;
- the broker's CPU per published message (1.6 KB, persistent, confirmed, to a random
  room, at a fixed rate, consumed from both queues) with each set bound: what the topic
  exchange's matching costs as the bindings grow.

Under a fresh prefix, deleted afterwards. Writes results/bindings-profile.txt.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import time
from pathlib import Path
from typing import Any

import aio_pika
import psutil
from aio_pika.abc import AbstractChannel, DeliveryMode

from broker.topology import declare_exchange, declare_gateway_queue
from contracts import Names, room_id, user_bindings

from .stack import delete_broker_names, local_broker

log = logging.getLogger(__name__)

USERS = 1000
FRIENDS = 20  # each: rooms (i, i ± 1..FRIENDS/2)
BIG = 200  # the friends of the one user whose connect is timed
RATE = 1000.0
SECONDS = 8.0
BODY_BYTES = 1604


def _users(n: int) -> list[str]:
    return [f"{i:024x}" for i in range(1, n + 1)]


def _rooms(users: list[str]) -> list[str]:
    n, half = len(users), FRIENDS // 2
    return sorted({room_id(users[i], users[(i + k) % n]) for i in range(n)
                   for k in range(1, half + 1)})


def _per_room(users: list[str], rooms: list[str]) -> list[tuple[int, str]]:
    """(queue index, pattern): each room bound on the queue of each of its members."""
    home = {u: i % 2 for i, u in enumerate(users)}
    return sorted({(home[m], f"*.{room}") for room in rooms for m in room.split(".")})


def _per_user(users: list[str]) -> list[tuple[int, str]]:
    return [(i % 2, p) for i, u in enumerate(users) for p in user_bindings(u)]


async def _bind_all(channel: AbstractChannel, names: Names,
                    bindings: list[tuple[int, str]]) -> float:
    queues = [await declare_gateway_queue(channel, names, f"g{i}") for i in range(2)]
    t0 = time.monotonic()
    for q, pattern in bindings:
        await queues[q].bind(names.exchange, pattern)
    return time.monotonic() - t0


async def _connect_cost(channel: AbstractChannel, names: Names, patterns: list[str]) -> float:
    """Sequential binds of one user's patterns on a fresh queue: seconds."""
    queue = await declare_gateway_queue(channel, names, "big")
    t0 = time.monotonic()
    for pattern in patterns:
        await queue.bind(names.exchange, pattern)
    return time.monotonic() - t0


async def _one(url: str, broker: psutil.Process, scheme: str) -> dict[str, Any]:
    names = Names(prefix=f"bench-{secrets.token_hex(6)}-")
    users = _users(USERS)
    rooms = _rooms(users)
    bindings = _per_room(users, rooms) if scheme == "per room" else _per_user(users)
    big = f"{USERS + 1:024x}"
    big_patterns = ([f"*.{room_id(big, u)}" for u in users[:BIG]] if scheme == "per room"
                    else list(user_bindings(big)))
    connection = await aio_pika.connect(url, client_properties={"connection_name": "bench"})
    try:
        setup = await connection.channel()
        await declare_exchange(setup, names)
        bind_s = await _bind_all(setup, names, bindings)
        connect_s = await _connect_cost(setup, names, big_patterns)
        # Drain both gateway queues as the gateways would (no acks).
        drain = await connection.channel()
        await drain.set_qos(prefetch_count=1024)
        received = 0

        async def count(message: Any) -> None:
            nonlocal received
            received += 1

        for i in range(2):
            queue = await drain.get_queue(names.gateway_queue(f"g{i}"))
            await queue.consume(count, no_ack=True)
        channel = await connection.channel(publisher_confirms=True)
        target = await channel.get_exchange(names.exchange)
        body = os.urandom(BODY_BYTES)
        keys = [f"room.{r}" for r in rooms]
        picks = random.Random(7)
        n = int(RATE * SECONDS)
        await asyncio.sleep(1.0)
        cpu0, t0 = broker.cpu_times(), time.monotonic()
        pending = []
        for i in range(n):
            pending.append(asyncio.ensure_future(target.publish(
                aio_pika.Message(body, delivery_mode=DeliveryMode.PERSISTENT),
                picks.choice(keys))))
            await asyncio.sleep(max(0.0, t0 + (i + 1) / RATE - time.monotonic()))
        await asyncio.gather(*pending)
        cpu1, elapsed = broker.cpu_times(), time.monotonic() - t0
        await asyncio.sleep(0.5)
        used = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        return {"scheme": scheme, "bindings": len(bindings), "bind_all_s": round(bind_s, 2),
                "connect_binds": len(big_patterns), "connect_ms": round(connect_s * 1000, 1),
                "msgs_s": round(n / elapsed, 1), "deliveries_per_msg": round(received / n, 2),
                "broker_us_per_msg": round(used * 1e6 / n)}
    finally:
        await delete_broker_names(connection, names)
        await connection.close()


async def run(out: Path) -> int:
    url, broker = local_broker()
    rows = []
    for scheme in ("per room", "per user", "per room", "per user"):
        r = await _one(url, broker, scheme)
        log.info("%s", r)
        rows.append(r)
    lines = [f"Gateway bindings, one per room against two per user: {USERS} users of "
             f"{FRIENDS} friends each ({len(_rooms(_users(USERS)))} rooms) over two gateway "
             f"queues; a first connect of a user with {BIG} friends; publishing {RATE:g} "
             f"msg/s ({BODY_BYTES} bytes, persistent, confirmed) to random rooms for "
             f"{SECONDS:g} s, consumed from both queues. Each scheme twice, alternating.", "",
             "| scheme | bindings | making them, s | connect: binds | connect: ms | "
             "published msg/s | deliveries per msg | broker µs per msg |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['scheme']} | {r['bindings']} | {r['bind_all_s']} | {r['connect_binds']} | "
              f"{r['connect_ms']} | {r['msgs_s']} | {r['deliveries_per_msg']} | "
              f"{r['broker_us_per_msg']} |" for r in rows]
    out.mkdir(parents=True, exist_ok=True)
    path = out / "bindings-profile.txt"
    path.write_text("\n".join(lines) + "\n")
    print(path.read_text())
    return 0
