"""Recovering from what the broker did unseen, on a real RabbitMQ: consumers whose cancel
never came, a reopen the broker refused, a failed check or bind, a lost channel."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiormq
import orjson
import pytest
from aio_pika.abc import AbstractChannel, AbstractRobustChannel
from support import Stack

from broker import Broker
from broker.consumer import Consumer, Delivery, ack
from broker.topology import declare_persist_queue
from contracts import room_id
from contracts.batch import Line, encode
from contracts.routing import STORED_KEY
from gateway.hub import Hub
from gateway.metrics import GatewayMetrics
from gateway.outbox import Connection
from persister.metrics import PersisterMetrics
from persister.service import Persister
from persister.settings import PersisterSettings
from service.settings import ServiceSettings

# What aiormq announces, but without consumer_cancel_notify: the broker then drops the
# consumer of a deleted queue silently, as when its basic.cancel is lost.
NO_CANCEL_NOTIFY = {"capabilities": {
    "authentication_failure_close": True, "basic.nack": True, "connection.blocked": True,
    "consumer_cancel_notify": False, "publisher_confirms": True}}


QUORUM = {"x-queue-type": "quorum"}


@dataclass
class Unnotified:
    """A Consumer of a fresh quorum queue on a connection the broker sends no cancels,
    the channel under it, an admin channel, and what the consumer received."""

    name: str
    consumer: Consumer
    channel: AbstractRobustChannel
    admin: AbstractChannel
    got: asyncio.Queue[Delivery]


@asynccontextmanager
async def unnotified_consumer(amqp_url: str) -> AsyncIterator[Unnotified]:
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
        queue = await channel.declare_queue(name, durable=True, arguments=QUORUM)
        consumer = Consumer(channel, queue, deliver)
        await consumer.start()
        yield Unnotified(name, consumer, channel, other, got)
        await consumer.cancel()
    finally:
        await other.queue_delete(name)
        await conn.close()
        await admin.close()


async def test_stale_consumer_consumes_again_once_the_broker_counts_none(amqp_url: str) -> None:
    """Queue deleted and declared again without a cancel reaching us: resume() trusts the
    tag it holds and nothing arrives; resume(stale=True) reopens the channel, consumes
    afresh, and gets what was waiting and what comes next."""
    async with unnotified_consumer(amqp_url) as u:
        tag = u.consumer.tag
        await u.admin.queue_delete(u.name)
        declared = await u.admin.declare_queue(u.name, durable=True, arguments=QUORUM)
        assert declared.declaration_result.consumer_count == 0
        await u.consumer.resume()
        assert u.consumer.tag == tag  # it still takes its old tag for a live consumer
        await u.admin.default_exchange.publish(aio_pika.Message(b"one"), routing_key=u.name)
        await asyncio.sleep(0.5)
        assert u.got.empty()

        await u.consumer.resume(stale=True)
        assert (await asyncio.wait_for(u.got.get(), 5)).body == b"one"
        assert u.consumer.tag != tag
        await u.admin.default_exchange.publish(aio_pika.Message(b"two"), routing_key=u.name)
        assert (await asyncio.wait_for(u.got.get(), 5)).body == b"two"


async def test_persist_queue_deleted_under_consumers_and_checked_at_once_loses_none(
        stack: Stack) -> None:
    """duet.persist deleted under consumers of three connections, and a topology check
    right after: it waits before declaring the queue again, so RabbitMQ cancels every
    consumer (declared within milliseconds, it leaves them as ghosts that take messages and
    never deliver them); each consumes again and every later message arrives."""
    settings = ServiceSettings(amqp_url=stack.amqp_url, prefix=stack.prefix)
    got: asyncio.Queue[bytes] = asyncio.Queue()

    async def deliver(d: Delivery) -> None:
        await ack(d)
        await got.put(d.body)

    async with Broker(settings, "persister") as broker:
        name = broker.names.persist_queue
        conns = [await aio_pika.connect_robust(stack.amqp_url) for _ in range(3)]
        admin = await aio_pika.connect(stack.amqp_url)
        try:
            for conn in conns:
                channel = await conn.channel()
                queue = await declare_persist_queue(channel, broker.names,
                                                    settings.delivery_limit)
                await Consumer(channel, queue, deliver).start()
            other = await admin.channel()
            await other.queue_delete(name)
            await broker.declare_topology()
            await asyncio.sleep(1.0)  # the consumers' recovery
            sent = [f"m{i}".encode() for i in range(30)]
            for body in sent:
                await other.default_exchange.publish(aio_pika.Message(body), routing_key=name)
            received = [await asyncio.wait_for(got.get(), 5) for _ in sent]
            assert sorted(received) == sorted(sent)
        finally:
            for conn in conns:
                await conn.close()
            await admin.close()


async def test_reopened_publishing_channel_leaves_a_deleted_persist_queue_alone(
        stack: Stack) -> None:
    """duet.persist deleted, then the broker's publishing channel reopens (as after a
    channel error): nothing declares the queue again at once. A robust channel that held
    its declaration re-created it within milliseconds, which is what left the consumers
    as ghosts; only a topology check declares it, REDECLARE_AFTER_S after seeing it gone."""
    async with Broker(ServiceSettings(amqp_url=stack.amqp_url, prefix=stack.prefix),
                      "gateway") as broker:
        name = broker.names.persist_queue
        admin = await aio_pika.connect(stack.amqp_url)
        async with admin:
            await (await admin.channel()).queue_delete(name)
            channel = broker._channel
            assert channel is not None
            await (await channel.get_underlay_channel()).close()
            for _ in range(50):  # the robust channel reopens
                await asyncio.sleep(0.05)
                if not channel.is_closed:
                    break
            await asyncio.sleep(0.2)
            probe = await admin.channel()
            with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):
                await probe.declare_queue(name, passive=True)
        await broker.declare_topology()  # back, for the module's other tests

async def test_reopen_the_broker_refused_is_tried_again(amqp_url: str) -> None:
    """The stale consumer's reopen fails (its queue came back with other arguments, so
    re-declaring it is refused); once the queue is right again, the next resume(stale=True)
    reopens the channel and consumes."""
    async with unnotified_consumer(amqp_url) as u:
        await u.admin.queue_delete(u.name)
        await u.admin.declare_queue(u.name, durable=True)  # classic: our re-declare fails
        await u.consumer.resume(stale=True)
        for _ in range(50):
            await asyncio.sleep(0.1)
            if u.channel.is_closed and u.channel._channel is None:  # the reopen gave up
                break
        assert u.channel.is_closed
        await u.admin.queue_delete(u.name)
        await u.admin.declare_queue(u.name, durable=True, arguments=QUORUM)
        await u.consumer.resume(stale=True)
        await u.admin.default_exchange.publish(aio_pika.Message(b"back"), routing_key=u.name)
        assert (await asyncio.wait_for(u.got.get(), 5)).body == b"back"


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

    async def fetch(cursors: Any) -> list[dict[str, Any]]:
        return []

    async with Broker(settings, "gateway") as broker:
        hub = Hub(broker, node, fetch, GatewayMetrics())
        hub._on_stored = got.put_nowait  # type: ignore[method-assign]
        await hub.start()
        notice = orjson.dumps({"items": [{"room": "a.b", "sender": "a", "id": "m1",
                                          "cursor": "0" * 32}]})
        await broker.notify(notice, STORED_KEY)
        assert (await asyncio.wait_for(got.get(), 5))[0]["id"] == "m1"

        queue = broker.names.gateway_queue(node)
        await asyncio.to_thread(subprocess.run, ["rabbitmqctl", "-q", "delete_queue", queue],
                                capture_output=True, timeout=30, check=True)
        await hub.check()
        for _ in range(50):  # the channel reopens in the background and consumes
            await asyncio.sleep(0.1)
            await broker.notify(notice, STORED_KEY)
            if not got.empty():
                break
        assert (await asyncio.wait_for(got.get(), 1))[0]["id"] == "m1"



async def test_failing_consumer_check_leaves_the_topology_ready(stack: Stack) -> None:
    """A check after the topology's declare that raises (say, on a channel mid-reopen) is
    logged and retried; the service does not turn unready for it."""
    calls = 0

    async def failing(_persist: Any) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("channel reopening")

    async with Broker(ServiceSettings(amqp_url=stack.amqp_url, prefix=stack.prefix),
                      "gateway") as broker:
        watch = asyncio.create_task(broker.watch_topology(0.05, failing))
        await asyncio.sleep(0.5)
        watch.cancel()
        assert calls >= 3 and broker.topology_ok


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
        batch = await persister._prepare([(delivery, 1)])
        assert batch is not None and [d["id"] for d in batch.docs] == ["m0"]
        await amqp.close()
        assert await persister._prepare([(delivery, 1)]) is None
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
        await broker.declare_topology()  # the exchange back, for the module's other tests
