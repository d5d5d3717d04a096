"""broker/failover.py: DUET_AMQP_URL lists, and the aio-pika hook the failover rides on."""

from __future__ import annotations

import pytest
from aio_pika import RobustConnection

from broker.failover import FailoverConnection, broker_urls


def test_broker_urls_one_or_several() -> None:
    assert broker_urls("amqp://a:b@h1:5672/") == ["amqp://a:b@h1:5672/"]
    assert broker_urls(" amqp://h1/ , amqp://h2/,amqp://h3/ ") == [
        "amqp://h1/", "amqp://h2/", "amqp://h3/"]
    with pytest.raises(ValueError):
        broker_urls(" , ")


def test_aio_pika_still_has_the_connect_attempt_we_override() -> None:
    """FailoverConnection overrides aio-pika 10's private per-attempt method; a version
    that renames it would silently retry one node only."""
    assert "_RobustConnection__connect_transport" in vars(RobustConnection)
    assert "_RobustConnection__connect_transport" in vars(FailoverConnection)


async def test_first_attempt_moves_past_a_dead_node(amqp_url: str) -> None:
    """A list whose first node does not answer still connects, to the next."""
    dead = "amqp://guest:guest@127.0.0.1:1/"
    connection = FailoverConnection([dead, amqp_url], reconnect_interval=1)
    connection._turn = 0  # noqa: SLF001  (start at the dead one)
    await connection.connect(timeout=10)
    try:
        assert str(connection.url) == amqp_url
    finally:
        await connection.close()
