"""RabbitMQ topology, connection and publish helpers (aio-pika)."""

from .connection import Broker
from .errors import BrokerError, PublishError
from .settings import ServiceSettings

__all__ = ["Broker", "BrokerError", "PublishError", "ServiceSettings"]
