"""RabbitMQ topology, connection, publish and consume helpers (aio-pika, aiormq beneath)."""

from .connection import Broker
from .errors import BrokerError, PublishError
from .settings import ServiceSettings

__all__ = ["Broker", "BrokerError", "PublishError", "ServiceSettings"]
