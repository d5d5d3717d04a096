"""broker.consumer and the gateway's rooms on a real RabbitMQ: consuming again when the
broker's cancel never came."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from typing import Any

import aio_pika
import orjson
import pytest
from support import Stack

from broker import Broker
from broker.consumer import Consumer, Delivery, ack
from broker.settings import ServiceSettings
from contracts.routing import STORED_KEY
from gateway.metrics import GatewayMetrics
from gateway.rooms import Rooms

# What aiormq announces, but without consumer_cancel_notify: the broker then drops the
# consumer of a deleted queue silently, as when its basic.cancel is lost.
NO_CANCEL_NOTIFY = {"capabilities": {
    "authentication_failure_close": True, "basic.nack": True, "connection.blocked": True,
    "consumer_cancel_notify": False, "publisher_confirms": True}}


async def test_stale_consumer_consumes_again_once_the_broker_counts_none(amqp_url: str) -> None:
    """Queue deleted and declared again without a cancel reaching us: resume() trusts the
    tag it holds and nothing arrives; resume(stale=True) reopens the channel, consumes
    afresh, and gets what was waiting and what comes next."""
    name = f"t{uuid.uuid4().hex[:10]}.consumer"
    got: asyncio.Queue[Delivery] = asyncio.Queue()

    async def deliver(d: Delivery) -> None:
        await ack(d)
        await got.put(d)

    conn = await aio_pika.connect_robust(amqp_url, client_properties=NO_CANCEL_NOTIFY)
    admin = await aio_pika.connect(amqp_url)
    other = await admin.channel()
    try:
        channel = await conn.channel()
        queue = await channel.declare_queue(name, durable=True,
                                            arguments={"x-queue-type": "quorum"})
        consumer = Consumer(channel, queue, deliver)
        await consumer.start()
        tag = consumer.tag
        await other.queue_delete(name)
        declared = await other.declare_queue(name, durable=True,
                                             arguments={"x-queue-type": "quorum"})
        assert declared.declaration_result.consumer_count == 0
        await consumer.resume()
        assert consumer.tag == tag  # it still takes its old tag for a live consumer
        await other.default_exchange.publish(aio_pika.Message(b"one"), routing_key=name)
        await asyncio.sleep(0.5)
        assert got.empty()

        await consumer.resume(stale=True)
        assert (await asyncio.wait_for(got.get(), 5)).body == b"one"
        assert consumer.tag != tag
        await other.default_exchange.publish(aio_pika.Message(b"two"), routing_key=name)
        assert (await asyncio.wait_for(got.get(), 5)).body == b"two"
        await consumer.cancel()
    finally:
        await other.queue_delete(name)
        await conn.close()
        await admin.close()


async def test_gateway_queue_deleted_unnoticed_is_consumed_again_by_the_check(
        stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway's queue deleted with no cancel reaching the gateway: its topology check
    declares the queue, finds no consumer, reopens the channel, and `stored` notices
    reach it again (the binding restored too)."""
    connect = aio_pika.connect_robust

    async def no_cancel_notify(url: str, **kwargs: Any) -> Any:
        kwargs["client_properties"] = {**kwargs.get("client_properties", {}),
                                       **NO_CANCEL_NOTIFY}
        return await connect(url, **kwargs)

    monkeypatch.setattr(aio_pika, "connect_robust", no_cancel_notify)
    node = f"unnoticed{uuid.uuid4().hex[:6]}"
    settings = ServiceSettings(amqp_url=stack.amqp_url, prefix=stack.prefix)
    got: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()

    async def fetch(room: str, cursors: list[str]) -> list[dict[str, Any]]:
        return []

    async with Broker(settings, "gateway") as broker:
        rooms = Rooms(broker, node, fetch, GatewayMetrics())
        rooms._on_stored = got.put_nowait  # type: ignore[method-assign]
        await rooms.start()
        notice = orjson.dumps({"items": [{"room": "a.b", "sender": "a", "id": "m1",
                                          "cursor": "0" * 32}]})
        await broker.notify(notice, STORED_KEY)
        assert (await asyncio.wait_for(got.get(), 5))[0]["id"] == "m1"

        queue = broker.names.gateway_queue(node)
        await asyncio.to_thread(subprocess.run, ["rabbitmqctl", "-q", "delete_queue", queue],
                                capture_output=True, timeout=30, check=True)
        await rooms.check()
        for _ in range(50):  # the channel reopens in the background and consumes
            await asyncio.sleep(0.1)
            await broker.notify(notice, STORED_KEY)
            if not got.empty():
                break
        assert (await asyncio.wait_for(got.get(), 1))[0]["id"] == "m1"
