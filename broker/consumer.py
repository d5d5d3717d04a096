"""Consume straight on the AMQP channel (aiormq) under aio-pika's robust channel.

aio-pika builds an IncomingMessage (every property set through a checked __setattr__) and
a second task per delivery: in the persister's drain profile that was a third of its CPU.
Here the callback gets aiormq's DeliveredMessage as read off the wire. The robust channel
still re-declares the queue and its bindings after a reconnect; we then consume again.
A consumer the broker cancels (its queue was deleted) is not healed in place: `on_lost`
is told, and the services crash for a restart (service.crash).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from aio_pika.abc import AbstractQueue, AbstractRobustChannel
from aiormq.abc import DeliveredMessage
from aiormq.exceptions import AMQPError

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
    """`await Consumer(channel, queue, on_delivery, on_lost).start()`; `await .cancel()`.

    on_delivery must be a coroutine function: aiormq runs it as a task per delivery, in
    delivery order. With no_ack=False, settle through `ack` / `reject`, which use the
    channel the delivery came on (a tag means nothing on the channel after a reconnect).
    Consumes again after the channel reopens (a reconnect); calls on_lost(reason) when the
    broker cancels it (the queue was deleted) or it cannot consume after a reopen.
    """

    def __init__(self, channel: AbstractRobustChannel, queue: AbstractQueue,
                 on_delivery: OnDelivery, on_lost: Callable[[str], None], *,
                 no_ack: bool = False) -> None:
        self._channel = channel
        self._queue = queue
        self._on_delivery = on_delivery
        self._on_lost = on_lost
        self._no_ack = no_ack
        self._stopped = False
        self.tag: str | None = None

    async def start(self) -> None:
        self._channel.reopen_callbacks.add(self._reopened)
        await self._consume()

    async def _consume(self) -> None:
        amqp = await self._channel.get_underlay_channel()
        amqp.on_consumer_cancel_callbacks.add(self._cancelled)
        ok = await amqp.basic_consume(self._queue.name, self._on_delivery,
                                      no_ack=self._no_ack)
        self.tag = ok.consumer_tag

    async def _reopened(self, _channel: Any) -> None:
        if self._stopped:
            return
        try:
            await self._consume()
            log.info("consuming %s again after the channel reopened", self._queue.name)
        except (AMQPError, ConnectionError, RuntimeError) as exc:
            self._on_lost(f"cannot consume {self._queue.name} after a reconnect "
                          f"({type(exc).__name__})")

    def _cancelled(self, frame: Any) -> None:
        if frame.consumer_tag == self.tag and not self._stopped:
            self._on_lost(f"the broker cancelled our consumer of {self._queue.name} "
                          "(was it deleted?)")

    async def cancel(self) -> None:
        """Stop deliveries (those unacked are requeued when the channel closes)."""
        self._stopped = True
        self._channel.reopen_callbacks.discard(self._reopened)
        if self.tag is None or self._channel.is_closed:
            return
        try:
            amqp = await self._channel.get_underlay_channel()
            await amqp.basic_cancel(self.tag)
        except (AMQPError, ConnectionError, RuntimeError) as exc:
            log.info("cancel of %s failed: %s", self.tag, type(exc).__name__)


async def ack(delivery: Delivery, *, multiple: bool = False) -> None:
    await delivery.channel.basic_ack(_tag(delivery), multiple=multiple)


async def reject(delivery: Delivery) -> None:
    """To the dead letters (never requeued)."""
    await delivery.channel.basic_reject(_tag(delivery), requeue=False)
