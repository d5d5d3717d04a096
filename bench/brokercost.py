"""`python -m bench --profile broker`: what the RabbitMQ node spends per broker message.

py-spy cannot sample the broker (it is Erlang), so it is measured from outside: one
publisher with confirms at a fixed rate, 1.6 KB persistent messages under
`room.<lo>.<hi>` (a gateway's lone message, as under light traffic) into a rooms exchange
with one part of duet's topology bound at a time: nothing (routing and the confirm
only), one gateway queue, `duet.persist` (quorum), `duet.audit` (stream), then all of
them, as a running stack has them. Declared by broker.topology, as the services do, under
a fresh prefix per run, deleted afterwards. The node's user and system CPU seconds over
each run, per message, are what each part costs it on the publish side (deliveries and
acks come on top: the (b) tables). Writes results/broker-profile.txt.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from pathlib import Path

import aio_pika
import psutil
from aio_pika.abc import AbstractChannel, DeliveryMode

from broker.topology import (
    declare_audit_stream,
    declare_exchange,
    declare_gateway_queue,
    declare_persist_queues,
)
from contracts import Names
from contracts.routing import message_key
from service.settings import ServiceSettings

from .stack import delete_broker_names, local_broker

log = logging.getLogger(__name__)

SECONDS = 8.0
RATES = (500.0, 1000.0)
BODY_BYTES = 1604  # the bench's `message` frame
ROOM_KEY = message_key("a" * 24 + "." + "b" * 24)
# Each part: (gateway queues bound to the room, duet.persist, duet.audit).
PARTS: dict[str, tuple[int, bool, bool]] = {
    "nothing": (0, False, False),
    "one gateway queue": (1, False, False),
    "duet.persist (quorum)": (0, True, False),
    "duet.audit (stream)": (0, False, True),
    "all: persist, audit, two gateway queues": (2, True, True),
}


async def _bind(channel: AbstractChannel, names: Names, part: str) -> None:
    settings = ServiceSettings()
    gateways, persist, audit = PARTS[part]
    for i in range(gateways):
        queue = await declare_gateway_queue(channel, names, f"g{i}")
        await queue.bind(names.exchange, ROOM_KEY)
    if persist:
        await declare_persist_queues(channel, names, settings.delivery_limit)
    if audit:
        await declare_audit_stream(channel, names, settings.audit_max_age,
                                   settings.audit_max_bytes)


async def _one(url: str, broker: psutil.Process, part: str, rate: float) -> dict[str, float]:
    names = Names(prefix=f"bench-{secrets.token_hex(6)}-")
    connection = await aio_pika.connect(url, client_properties={"connection_name": "bench"})
    try:
        setup = await connection.channel()
        await declare_exchange(setup, names)
        await _bind(setup, names, part)
        channel = await connection.channel(publisher_confirms=True)
        target = await channel.get_exchange(names.exchange)
        body = os.urandom(BODY_BYTES)
        count = int(rate * SECONDS)
        await asyncio.sleep(1.0)  # let the declarations settle before measuring
        cpu0, t0 = broker.cpu_times(), time.monotonic()
        pending = []
        for i in range(count):
            pending.append(asyncio.ensure_future(target.publish(
                aio_pika.Message(body, delivery_mode=DeliveryMode.PERSISTENT), ROOM_KEY)))
            await asyncio.sleep(max(0.0, t0 + (i + 1) / rate - time.monotonic()))
        await asyncio.gather(*pending)
        cpu1, elapsed = broker.cpu_times(), time.monotonic() - t0
        user, system = cpu1.user - cpu0.user, cpu1.system - cpu0.system
        return {"msgs_s": round(count / elapsed, 1), "user_s": round(user, 2),
                "system_s": round(system, 2), "us_per_msg": round((user + system) * 1e6 / count)}
    finally:
        await delete_broker_names(connection, names)
        await connection.close()


async def run(out: Path) -> int:
    url, broker = local_broker()
    rows = []
    for part in PARTS:
        for rate in RATES:
            r = await _one(url, broker, part, rate)
            log.info("%s at %g msg/s: %s µs of broker CPU per message", part, rate,
                     r["us_per_msg"])
            rows.append((part, rate, r))
    lines = [f"RabbitMQ node CPU per published message: one publisher with confirms, "
             f"{BODY_BYTES}-byte persistent messages, {SECONDS:g} s per row", "",
             "| bound to the rooms exchange | offered msg/s | published msg/s | user s | "
             "system s | µs per message |", "|---|---|---|---|---|---|"]
    lines += [f"| {part} | {rate:g} | {r['msgs_s']} | {r['user_s']} | {r['system_s']} | "
              f"{r['us_per_msg']} |" for part, rate, r in rows]
    out.mkdir(parents=True, exist_ok=True)
    path = out / "broker-profile.txt"
    path.write_text("\n".join(lines) + "\n")
    print(path.read_text())
    return 0
