"""The RabbitMQ topology as code. Every declaration is idempotent."""

from __future__ import annotations

import logging

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue
from pamqp.common import FieldTable

from contracts import Names
from contracts.routing import (
    MAX_PARTITIONS,
    MESSAGE_NS,
    PERSIST_SLOTS,
    persist_bindings,
    persist_key,
)

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


async def declare_persist_queues(
    channel: AbstractChannel, names: Names, delivery_limit: int, partitions: int = 1
) -> list[AbstractQueue]:
    """The quorum queues the persisters consume, with their dead-letter path: duet.persist
    bound to every room, or N partitions, each bound to its slots (contracts.routing),
    single active consumer (one persister at a time stores a room, in order), and their
    leaders placed on the node with the fewest."""
    exchange = await declare_exchange(channel, names)
    dead = await channel.declare_exchange(
        names.dead_letter_exchange, aio_pika.ExchangeType.FANOUT, durable=True
    )
    dead_letters = await channel.declare_queue(
        names.dead_letter_queue, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dead_letters.bind(dead)
    arguments: FieldTable = {"x-queue-type": "quorum",
                             "x-dead-letter-exchange": names.dead_letter_exchange,
                             "x-delivery-limit": delivery_limit}
    if partitions > 1:
        arguments |= {"x-single-active-consumer": True, "x-queue-leader-locator": "balanced"}
    queues = []
    for p, name in enumerate(names.persist_queues(partitions)):
        queue = await channel.declare_queue(name, durable=True, arguments=arguments)
        for key in persist_bindings(p, partitions):
            await queue.bind(exchange, key)
        queues.append(queue)
    log.debug("declared %s -> %s (delivery limit %s)", names.exchange,
              names.persist_queues(partitions), delivery_limit)
    return queues


async def retire_other_partitions(connection: aio_pika.abc.AbstractConnection, names: Names,
                                  partitions: int) -> list[str]:
    """Unbind from the exchange what another partition count bound (duet.persist's
    `room.#`; the slots of duet.persist.<p> that are not p's under this count), so each
    room reaches one persist queue. Returns the queues of another count that still exist:
    the persister drains them (their messages were acked to senders) and deletes them once
    empty. Run by the persister at start, before it consumes."""
    current = dict(zip(names.persist_queues(partitions),
                       (set(persist_bindings(p, partitions)) for p in range(partitions)),
                       strict=True))
    candidates = {names.persist_queue: [f"{MESSAGE_NS}.#"]} | {
        name: [persist_key(s) for s in range(PERSIST_SLOTS)]
        for name in names.persist_queues(MAX_PARTITIONS)}
    retired = []
    for name, keys in candidates.items():
        stale = [k for k in keys if k not in current.get(name, set())]
        if not stale:
            continue
        try:
            async with aio_pika.Channel(connection) as channel:
                queue = await channel.declare_queue(name, passive=True)
                for key in stale:
                    await queue.unbind(names.exchange, key)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            continue  # never declared
        if name not in current:
            retired.append(name)
    return retired


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


async def check_durable_path(connection: aio_pika.abc.AbstractConnection, names: Names,
                             partitions: int = 1) -> None:
    """Passive checks (they need no permission) that the exchange, the persist queues,
    their dead letters and duet.audit exist: what an account that may not declare them
    relies on. Raises TopologyMissing for the first one missing. A missing name closes the
    channel it is asked on, so each check has a channel of its own."""
    checks = [("exchange", names.exchange), ("exchange", names.dead_letter_exchange),
              *(("queue", q) for q in names.persist_queues(partitions)),
              ("queue", names.dead_letter_queue), ("queue", names.audit_stream)]
    for kind, name in checks:
        try:
            async with aio_pika.Channel(connection) as channel:
                if kind == "exchange":
                    await channel.declare_exchange(name, passive=True)
                else:
                    await channel.declare_queue(name, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            raise TopologyMissing(kind, name) from None
