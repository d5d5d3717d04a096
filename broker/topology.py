"""The RabbitMQ topology as code. Every declaration is idempotent."""

from __future__ import annotations

import logging

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from contracts import Names
from contracts.routing import MESSAGE_NS

from .errors import BrokerError

log = logging.getLogger(__name__)


class TopologyMissing(BrokerError):
    """A name this service only checks (DUET_DECLARE_TOPOLOGY=false) does not exist."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(kind, name)
        self.kind = kind
        self.name = name

    def __str__(self) -> str:
        return (f"{self.kind} {self.name} does not exist; another service (the persister) "
                f"declares it")


async def declare_exchange(channel: AbstractChannel, names: Names, *,
                           passive: bool = False) -> AbstractExchange:
    """The topic exchange; passive: only look it up (no configure permission needed)."""
    return await channel.declare_exchange(
        names.exchange, aio_pika.ExchangeType.TOPIC, durable=True, passive=passive
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


async def check_durable_path(connection: aio_pika.abc.AbstractConnection, names: Names) -> None:
    """Passive checks (they need no permission) that the exchange, duet.persist, its dead
    letters and duet.audit exist: what an account that may not declare them relies on.
    Raises TopologyMissing for the first one missing. A missing name closes the channel it
    is asked on, so each check has a channel of its own."""
    checks = [("exchange", names.exchange), ("exchange", names.dead_letter_exchange),
              ("queue", names.persist_queue), ("queue", names.dead_letter_queue),
              ("queue", names.audit_stream)]
    for kind, name in checks:
        try:
            async with aio_pika.Channel(connection) as channel:
                if kind == "exchange":
                    await channel.declare_exchange(name, passive=True)
                else:
                    await channel.declare_queue(name, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            raise TopologyMissing(kind, name) from None
