"""Consume straight on the AMQP channel (aiormq) under aio-pika's robust channel.

aio-pika builds an IncomingMessage (every property set through a checked __setattr__) and
a second task per delivery: in the persister's drain profile that was a third of its CPU.
Here the callback gets aiormq's DeliveredMessage as read off the wire. The robust channel
still re-declares the queue and its bindings after a reconnect; we then consume again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from aio_pika.abc import AbstractQueue, AbstractRobustChannel, AbstractRobustQueue
from aiormq.abc import AbstractChannel as AmqpChannel
from aiormq.abc import DeliveredMessage
from aiormq.exceptions import AMQPError

from .topology import REDECLARE_AFTER_S

log = logging.getLogger(__name__)

Delivery = DeliveredMessage
OnDelivery = Callable[[Delivery], Coroutine[Any, Any, None]]


def routing_key(delivery: Delivery) -> str:
    return delivery.routing_key or ""


def _tag(delivery: Delivery) -> int:
    tag = delivery.delivery_tag
    assert tag is not None, "not a consumed delivery"
    return tag


def headers(delivery: Delivery) -> dict[str, Any]:
    return delivery.header.properties.headers or {}


def message_id(delivery: Delivery) -> str | None:
    return delivery.header.properties.message_id


class Consumer:
    """`await Consumer(channel, queue, on_delivery).start()`; `await consumer.cancel()`.

    on_delivery must be a coroutine function: aiormq runs it as a task per delivery, in
    delivery order. With no_ack=False, settle through `ack` / `reject`, which use the
    channel the delivery came on (a tag means nothing on the channel after a reconnect).
    Consumes again after the channel reopens, and after the broker cancelled it (the queue
    was deleted): the queue is declared and bound again first, as aio-pika would.
    """

    def __init__(self, channel: AbstractRobustChannel, queue: AbstractQueue,
                 on_delivery: OnDelivery, *, no_ack: bool = False) -> None:
        self._channel = channel
        self._queue = queue
        self._on_delivery = on_delivery
        self._no_ack = no_ack
        self._amqp: AmqpChannel | None = None
        self._lock = asyncio.Lock()  # one consume at a time: reopen, recovery and resume race
        self._recovery: asyncio.Task[None] | None = None
        self._stopped = False
        self.tag: str | None = None

    async def start(self) -> None:
        self._channel.reopen_callbacks.add(self._reopened)
        await self.resume()

    async def resume(self, *, stale: bool = False) -> None:
        """Consume, unless this channel already delivers to us. stale: the broker counts
        no consumer on the queue, so the tag we hold is dead (its cancel never reached us:
        lost, or never sent); drop it and consume afresh."""
        if self._channel.is_closed and not self._stopped:
            # Its reopen failed (a re-declare the broker refused) or is under way: try
            # again; once open, _reopened consumes (outside the lock: it takes it).
            await self._channel.restore()
            return
        async with self._lock:
            if self._stopped:
                return
            amqp = await self._channel.get_underlay_channel()
            if amqp is self._amqp and self.tag in amqp.consumers:  # type: ignore[attr-defined]
                if not stale:
                    return
                # The broker may still hold deliveries for the dead tag (RabbitMQ keeps a
                # ghost of a deleted quorum queue's consumer): a new channel frees them,
                # and its reopen consumes again.
                log.warning("no consumer of %s on the broker: reopening the channel",
                            self._queue.name)
                await amqp.close()
                return
            if amqp is not self._amqp:
                amqp.on_consumer_cancel_callbacks.add(self._cancelled)
            ok = await amqp.basic_consume(self._queue.name, self._on_delivery,
                                          no_ack=self._no_ack)
            self._amqp, self.tag = amqp, ok.consumer_tag

    async def _reopened(self, _channel: Any) -> None:
        try:
            await self.resume()
            log.info("consuming %s again after the channel reopened", self._queue.name)
        except (AMQPError, ConnectionError, RuntimeError) as exc:
            # The connection dropped again: the next reopen calls us again.
            log.warning("could not consume %s after reopen: %s", self._queue.name,
                        type(exc).__name__)

    def _cancelled(self, frame: Any) -> None:
        # Called from the channel's reader: the recovery's RPCs need that reader, so they
        # run in a task of their own.
        if frame.consumer_tag == self.tag and not self._stopped:
            self._recovery = asyncio.create_task(self._recover())

    async def _recover(self) -> None:
        try:
            if isinstance(self._queue, AbstractRobustQueue):  # declare and bind again
                await asyncio.sleep(REDECLARE_AFTER_S)  # the other consumers' cancels first
                await self._queue.restore()
            await self.resume()
            log.warning("the broker cancelled our consumer of %s: declared it again and "
                        "consuming", self._queue.name)
        except (AMQPError, ConnectionError, RuntimeError) as exc:
            log.warning("could not consume %s again: %s", self._queue.name, type(exc).__name__)

    async def cancel(self) -> None:
        """Stop deliveries (those unacked are requeued when the channel closes)."""
        self._stopped = True
        self._channel.reopen_callbacks.discard(self._reopened)
        async with self._lock:
            amqp, tag = self._amqp, self.tag
            if amqp is not None and tag is not None and not amqp.is_closed:
                try:
                    await amqp.basic_cancel(tag)
                except (AMQPError, ConnectionError, RuntimeError) as exc:
                    log.info("cancel of %s failed: %s", tag, type(exc).__name__)


async def ack(delivery: Delivery, *, multiple: bool = False) -> None:
    await delivery.channel.basic_ack(_tag(delivery), multiple=multiple)


async def reject(delivery: Delivery) -> None:
    """To the dead letters (never requeued)."""
    await delivery.channel.basic_reject(_tag(delivery), requeue=False)
