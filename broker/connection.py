"""One robust connection per process; publishes wait for the broker's confirm."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractRobustChannel,
    AbstractRobustConnection,
    DeliveryMode,
)
from aiormq.exceptions import AMQPError, DeliveryError

from service.settings import ServiceSettings

from .errors import PublishError
from .failover import connect_failover
from .topology import (
    check_durable_path,
    declare_audit_stream,
    declare_exchange,
    declare_persist_queues,
)

log = logging.getLogger(__name__)
_NOTICE = aiormq.spec.Basic.Properties(content_type="application/json", delivery_mode=1)


class Broker:
    """`async with Broker(settings, "gateway") as broker:` — connect, declare, publish."""

    def __init__(self, settings: ServiceSettings, name: str) -> None:
        self.settings = settings
        self.names = settings.names
        self.name = name
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._notices: AbstractChannel | None = None
        self._renewing: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Broker:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        self._connection = await connect_failover(self.settings.amqp_url,
                                                  f"{self.names.prefix}{self.name}")
        # on_return_raises: an unroutable publish fails instead of being confirmed into void.
        self._channel = await self._connection.channel(publisher_confirms=True,
                                                       on_return_raises=True)
        if self.settings.declare_topology:
            # Both services declare the durable path at start (idempotent), so no publish
            # is ever routed nowhere. Only at start: see service.crash.
            async with aio_pika.Channel(self._connection) as channel:
                await declare_persist_queues(channel, self.names, self.settings.delivery_limit,
                                             self.settings.persist_partitions)
                await declare_audit_stream(channel, self.names, self.settings.audit_max_age,
                                           self.settings.audit_max_bytes)
        else:
            # An account that may not configure them (compose's gateways): check they
            # exist, else raise TopologyMissing and the service exits 1 for a restart
            # (crash-only, service.crash), by which time the persister has declared them.
            await check_durable_path(self._connection, self.names,
                                     self.settings.persist_partitions)
        self._exchange = await declare_exchange(self._channel, self.names,
                                                passive=not self.settings.declare_topology)
        log.info("broker connected as %s, exchange %s", self.name, self.names.exchange)

    async def _probe(self, name: str) -> Any:
        """A queue's declare-ok (a passive declare, on a channel of its own: a missing
        queue closes the channel it is asked on)."""
        async with aio_pika.Channel(self.connection) as probe:
            queue = await probe.declare_queue(name, passive=True)
        return queue.declaration_result

    async def queue_depth(self, name: str) -> int:
        """Messages ready in a queue."""
        return int((await self._probe(name)).message_count or 0)

    async def consumer_count(self, name: str) -> int:
        """Consumers of a queue (of a single-active-consumer queue: only the active one)."""
        return int((await self._probe(name)).consumer_count or 0)

    async def delete_queue(self, name: str) -> None:
        async with aio_pika.Channel(self.connection) as channel:
            await channel.queue_delete(name)

    @property
    def connection(self) -> AbstractRobustConnection:
        assert self._connection is not None, "broker not opened"
        return self._connection

    @property
    def exchange(self) -> AbstractExchange:
        assert self._exchange is not None, "broker not opened"
        return self._exchange

    @property
    def ready(self) -> bool:
        """Connected now (not closed, not between a loss and its recovery)."""
        c = self._connection
        return c is not None and not c.is_closed and self._channel is not None and (
            not self._channel.is_closed
        )

    async def notify(self, body: bytes, routing_key: str,
                     headers: dict[str, Any] | None = None) -> None:
        """Publish a best-effort notice (transient, unconfirmed): for receipts, typing and
        presence, which only matter to whoever listens now, so the publisher never waits
        on a confirm. Straight on the AMQP channel, without building an aio-pika Message."""
        try:
            if self._notices is None:
                channel = await self.connection.channel(publisher_confirms=False)
                await declare_exchange(channel, self.names,
                                       passive=not self.settings.declare_topology)
                self._notices = channel
            amqp = await self._notices.get_underlay_channel()
            properties = _NOTICE if headers is None else aiormq.spec.Basic.Properties(
                content_type="application/json", delivery_mode=1, headers=headers)
            await amqp.basic_publish(body, exchange=self.names.exchange,
                                     routing_key=routing_key, properties=properties)
        except (AMQPError, ConnectionError, RuntimeError) as exc:
            self._notices = None
            raise PublishError(routing_key, type(exc).__name__) from exc

    async def channel(self, prefetch: int) -> AbstractRobustChannel:
        """A further channel, e.g. for consuming, so consumers never block publishes."""
        channel = await self.connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=prefetch)
        return channel

    async def publish(self, body: bytes, routing_key: str, *, timeout: float = 5.0,
                      headers: dict[str, Any] | None = None) -> None:
        """Publish persistently and mandatory (a message no queue takes is an error: chat
        messages always have duet.persist); return only once the broker confirmed it.

        Straight on the AMQP channel, not through aio-pika's Exchange: no Message object,
        and the channel's lock is held only to queue the frames (wait=False), not until
        the socket took them, so many publishes can be in flight behind one another.
        """
        assert self._channel is not None, "broker not opened"
        properties = aiormq.spec.Basic.Properties(
            content_type="application/json", delivery_mode=DeliveryMode.PERSISTENT.value,
            headers=headers)
        try:
            # The deadline covers waiting out a reconnect as well as the confirm.
            async with asyncio.timeout(timeout):
                channel = await self._channel.get_underlay_channel()
                # With confirms on, this returns on Basic.Ack and raises DeliveryError on a
                # nack (and PublishError when a mandatory message came back unroutable).
                await channel.basic_publish(  # type: ignore[call-arg]
                    body, exchange=self.names.exchange, routing_key=routing_key,
                    properties=properties, mandatory=True, wait=False)
        except TimeoutError:
            raise PublishError(routing_key, "timeout") from None
        except DeliveryError as exc:
            # RabbitMQ 3.10 keeps nacking on a channel whose first quorum-queue publish fell
            # inside a leader election (a node lost); a channel opened later is fine.
            self._renew_channel()
            raise PublishError(routing_key, "nack") from exc
        except (AMQPError, ConnectionError, RuntimeError) as exc:
            raise PublishError(routing_key, type(exc).__name__) from exc

    def _renew_channel(self) -> None:
        """Replace the publishing channel (once at a time; publishes meanwhile use the old
        one, and fail or succeed as it does: the client resends, idempotently)."""
        if self._renewing is None or self._renewing.done():
            self._renewing = asyncio.create_task(self._swap_channel())

    async def _swap_channel(self) -> None:
        old = self._channel
        try:
            self._channel = await self.connection.channel(publisher_confirms=True,
                                                          on_return_raises=True)
        except (AMQPError, ConnectionError, RuntimeError):
            log.warning("could not open a new publishing channel; keeping the old one")
            return
        log.info("publishing channel renewed after a nack")
        if old is not None and not old.is_closed:
            await asyncio.sleep(1.0)  # publishes in flight on it get their confirms first
            with contextlib.suppress(AMQPError, ConnectionError, RuntimeError):
                await old.close()

    async def close(self) -> None:
        """Close the connection; safe to call twice."""
        connection, self._connection = self._connection, None
        self._channel = self._exchange = self._notices = None
        if connection is not None and not connection.is_closed:
            await connection.close()
            log.info("broker connection %s closed", self.name)
