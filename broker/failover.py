"""One robust connection over several broker nodes (`DUET_AMQP_URL` lists them, comma-
separated): every connect attempt, the first and each after a loss, tries the nodes in
turn, starting after the one it last used, so a service whose node dies carries on with
another within a reconnect interval, and services spread over the nodes."""

from __future__ import annotations

import random
from typing import Any

from aio_pika import RobustConnection
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from yarl import URL

RECONNECT_INTERVAL_S = 1.0  # aio-pika's default is 5 s: half of a node loss's outage


def broker_urls(value: str) -> list[str]:
    """The nodes in a DUET_AMQP_URL: one URL, or several separated by commas."""
    urls = [part.strip() for part in value.split(",") if part.strip()]
    if not urls:
        raise ValueError("DUET_AMQP_URL names no broker")
    return urls


class FailoverConnection(RobustConnection):
    def __init__(self, urls: list[str], **kwargs: Any) -> None:
        self._urls = [URL(u) for u in urls]
        self._turn = random.randrange(len(self._urls))  # spreads services over the nodes
        super().__init__(self._urls[self._turn], **kwargs)

    # aio-pika 10's one connect attempt (RobustConnection.__connect_transport, name-mangled):
    # tests/unit/test_failover.py fails if a new aio-pika renames it.
    async def _RobustConnection__connect_transport(self) -> None:
        failure: BaseException | None = None
        for _ in range(len(self._urls)):
            self.url = self._urls[self._turn % len(self._urls)]
            self._turn += 1
            try:
                await super()._RobustConnection__connect_transport()  # type: ignore[misc]
                return
            except CONNECTION_EXCEPTIONS as exc:
                failure = exc
        assert failure is not None
        raise failure


async def connect_failover(amqp_url: str, name: str) -> FailoverConnection:
    connection = FailoverConnection(broker_urls(amqp_url),
                                    client_properties={"connection_name": name},
                                    reconnect_interval=RECONNECT_INTERVAL_S)
    await connection.connect()
    return connection
