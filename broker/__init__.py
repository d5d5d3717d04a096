"""RabbitMQ topology, connection, publish and consume helpers (aio-pika, aiormq beneath)."""

from .connection import Broker
from .errors import BrokerError, PublishError

__all__ = ["Broker", "BrokerError", "PublishError"]
