"""Crash-only recovery on a real RabbitMQ: a consumer the broker cancels is not healed in
place; the service stops with status 1 for its supervisor to restart, and a start declares
what it needs. Why, and the broker behaviour behind it: docs/design.md, "Recovery"."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
import aiormq
import orjson
import pymongo
import pytest
from reliability import record
from support import Stack, device_send, eventually, friends, open_device, wait_stored

from broker import Broker
from broker.consumer import Consumer, Delivery, ack
from contracts import Names, room_id
from contracts.batch import Line, encode
from gateway.hub import Hub
from gateway.metrics import GatewayMetrics
from gateway.outbox import Connection
from persister.metrics import PersisterMetrics
from persister.service import Persister
from persister.settings import PersisterSettings
from service.settings import ServiceSettings

QUORUM = {"x-queue-type": "quorum"}


@asynccontextmanager
async def consumed_queue(amqp_url: str) -> AsyncIterator[tuple[str, asyncio.Future[str],
                                                               aio_pika.abc.AbstractChannel]]:
    """A quorum queue with our Consumer on it; yields its name, a future set to the
    consumer's on_lost reason, and an admin channel of another connection."""
    name = f"t{uuid.uuid4().hex[:10]}.crash"
    lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def deliver(d: Delivery) -> None:
        await ack(d)

    conn = await aio_pika.connect_robust(amqp_url)
    admin = await aio_pika.connect(amqp_url)
    try:
        channel = await conn.channel()
        queue = await channel.declare_queue(name, durable=True, arguments=QUORUM)
        consumer = Consumer(channel, queue, deliver,
                            lambda reason: lost.done() or lost.set_result(reason))
        await consumer.start()
        yield name, lost, await admin.channel()
    finally:
        await (await admin.channel()).queue_delete(name)
        await conn.close()
        await admin.close()


async def test_a_deleted_quorum_queue_cancels_its_consumer(amqp_url: str) -> None:
    """The decision's premise, on the real broker: with nothing declaring the queue again
    within milliseconds, RabbitMQ cancels the consumer of a deleted quorum queue, and the
    Consumer reports it lost. (Declared again within ~10 ms, RabbitMQ 3.10 sends no cancel
    and keeps a ghost consumer: that race came from healing in place, which is gone.)"""
    async with consumed_queue(amqp_url) as (name, lost, admin):
        await admin.queue_delete(name)
        reason = await asyncio.wait_for(lost, 5)
        assert name in reason and "cancelled" in reason


async def test_persister_stops_for_a_restart_when_duet_persist_is_deleted(
        stack: Stack, mongo: pymongo.MongoClient) -> None:
    """An operator deletes duet.persist: the persister exits with status 1 (it does not
    re-declare in place), a restart declares the queue again and consumes it, and a message
    sent afterwards is stored."""
    persister = stack.persister()
    gw = stack.gateway()
    a, b = await friends(gw)
    names, room = Names(prefix=stack.prefix), room_id(a.user_id, b.user_id)
    conn = await aio_pika.connect(stack.amqp_url)
    async with conn:
        await (await conn.channel()).queue_delete(names.persist_queue)
    await eventually(lambda: persister.returncode is not None, 10, "the persister exits")
    assert persister.returncode == 1
    assert "stopping for a restart" in persister.log()
    persister.start()
    await persister.wait_ready_async()
    async with open_device(gw, a) as sa:
        await sa.send(device_send(a, b, "after-restart"))
        await sa.recv_type("ack")
    assert await wait_stored(mongo, stack.db_name, room, 1) == ["after-restart"]
    record("test_persister_stops_for_a_restart_when_duet_persist_is_deleted",
           "duet.persist deleted by hand",
           "the persister stopped with status 1 (no healing in place); restarted, as its "
           "supervisor would, it declared the queue again and the next message was stored",
           exit_status=1, stored_after_restart=1)


async def test_gateway_stops_for_a_restart_when_its_queue_is_deleted(stack: Stack) -> None:
    """The gateway's own queue deleted by hand: its sockets are closed with 1012 (come back
    elsewhere) and the gateway exits with status 1, for its supervisor to restart."""
    gw = stack.gateway()
    a, _ = await friends(gw)
    async with open_device(gw, a) as sa:
        queue = Names(prefix=stack.prefix).gateway_queue(_node(gw))
        await asyncio.to_thread(subprocess.run, ["rabbitmqctl", "-q", "delete_queue", queue],
                                capture_output=True, timeout=30, check=True)
        with pytest.raises(Exception) as closed:
            await sa.recv(timeout=10)
        assert getattr(closed.value, "rcvd", None) is not None
        assert closed.value.rcvd.code == 1012  # type: ignore[attr-defined]
    await eventually(lambda: gw.returncode is not None, 10, "the gateway exits")
    assert gw.returncode == 1
    record("test_gateway_stops_for_a_restart_when_its_queue_is_deleted",
           "a gateway's queue deleted by hand",
           "its sockets closed with 1012 (resume elsewhere) and the gateway stopped with "
           "status 1 for its supervisor to restart", close_code=1012, exit_status=1)


def _node(gw: Any) -> str:
    """The gateway's node name, as its log says it ("gateway <node> ready on ...")."""
    for line in gw.log().splitlines():
        if " ready on " in line:
            return str(orjson.loads(line)["msg"].split()[1])
    raise AssertionError("the gateway did not log its node")


async def test_persister_leaves_out_deliveries_of_a_closed_channel(amqp_url: str) -> None:
    """A delivery whose channel closed before its batch was parsed is left out: the broker
    requeued it, so writing it now would only store and announce it twice."""
    a, b = "a" * 24, "b" * 24
    room = room_id(a, b)
    frame = orjson.dumps({"type": "message", "id": "m0", "room": room, "sender": a,
                          "kind": "text", "body": {"ct": "x"}, "ts": 1, "cursor": "0" * 32})
    persister = Persister(PersisterSettings(), None, None, PersisterMetrics())  # type: ignore[arg-type]
    conn = await aio_pika.connect(amqp_url)
    try:
        channel = await conn.channel()
        exchange = await channel.declare_exchange(f"t{uuid.uuid4().hex[:10]}",
                                                  aio_pika.ExchangeType.TOPIC,
                                                  auto_delete=True)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, "#")
        m = encode([Line(frame, room, "x", "0" * 32)])
        await exchange.publish(aio_pika.Message(m.body, headers=m.headers), m.routing_key)
        amqp = await channel.get_underlay_channel()
        delivery = None
        while delivery is None or delivery.delivery_tag is None:
            await asyncio.sleep(0.05)
            delivery = await amqp.basic_get(queue.name)
        batch = await persister._prepare([(delivery, 1, None)])
        assert batch is not None and [d["id"] for d in batch.docs] == ["m0"]
        await amqp.close()
        assert await persister._prepare([(delivery, 1, None)]) is None
    finally:
        await conn.close()


async def test_failed_user_bind_leaves_no_member_behind(stack: Stack) -> None:
    """A socket whose user's binding fails is not left in the hub: no leave would ever
    take it out, and fan-out would keep pushing to it."""
    async def fetch(cursors: Any) -> list[dict[str, Any]]:
        return []

    settings = ServiceSettings(amqp_url=stack.amqp_url, prefix=stack.prefix)
    async with Broker(settings, "gateway") as broker:
        hub = Hub(broker, f"bindfail{uuid.uuid4().hex[:6]}", fetch, GatewayMetrics())
        await hub.start()
        admin = await aio_pika.connect(stack.amqp_url)
        async with admin:
            await (await admin.channel()).exchange_delete(broker.names.exchange)
        conn = Connection("c1", "a", "b", "a.b", 16, GatewayMetrics())
        with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):
            async with hub.joined(conn):
                pass
        assert hub.connections() == [] and hub.bound_users == 0
        # The exchange back, for the module's other tests.
        await (await broker.connection.channel()).declare_exchange(
            broker.names.exchange, aio_pika.ExchangeType.TOPIC, durable=True)
