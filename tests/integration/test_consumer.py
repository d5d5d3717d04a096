"""broker.consumer on a real RabbitMQ: consuming again when the broker's cancel never came."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika

from broker.consumer import Consumer, Delivery, ack

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
