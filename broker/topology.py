"""The RabbitMQ topology as code. Every declaration is idempotent."""

from __future__ import annotations

import logging

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from contracts import Names
from contracts.routing import MESSAGE_NS

log = logging.getLogger(__name__)


async def declare_exchange(channel: AbstractChannel, names: Names) -> AbstractExchange:
    return await channel.declare_exchange(
        names.exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )


async def declare_persist_queue(
    channel: AbstractChannel, names: Names, delivery_limit: int
) -> AbstractQueue:
    """The quorum queue the persisters compete on, with its dead-letter path."""
    exchange = await declare_exchange(channel, names)
    dead = await channel.declare_exchange(
        names.dead_letter_exchange, aio_pika.ExchangeType.FANOUT, durable=True
    )
    dead_letters = await channel.declare_queue(
        names.dead_letter_queue, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dead_letters.bind(dead)
    queue = await channel.declare_queue(
        names.persist_queue,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": names.dead_letter_exchange,
            "x-delivery-limit": delivery_limit,
        },
    )
    await queue.bind(exchange, f"{MESSAGE_NS}.#")
    log.debug("declared %s -> %s (delivery limit %s)", names.exchange, names.persist_queue,
             delivery_limit)
    return queue


async def declare_audit_stream(channel: AbstractChannel, names: Names, max_age: str,
                               max_bytes: int) -> AbstractQueue:
    """The audit log: a stream of every chat message (ciphertext), kept for `max_age`."""
    exchange = await declare_exchange(channel, names)
    stream = await channel.declare_queue(
        names.audit_stream, durable=True,
        arguments={"x-queue-type": "stream", "x-max-age": max_age,
                   "x-max-length-bytes": max_bytes})
    await stream.bind(exchange, f"{MESSAGE_NS}.#")
    return stream


async def declare_gateway_queue(channel: AbstractChannel, names: Names, node: str) -> AbstractQueue:
    """This replica's own queue; bound per connected user by gateway.hub."""
    return await channel.declare_queue(
        names.gateway_queue(node), exclusive=True, auto_delete=True
    )
