"""Broker errors.

    BrokerError
    └── PublishError      the broker did not confirm a publish (nack, timeout, connection lost)
"""

from __future__ import annotations


class BrokerError(Exception):
    """Base of every error this package raises."""


class PublishError(BrokerError):
    def __init__(self, routing_key: str, reason: str) -> None:
        super().__init__(routing_key, reason)
        self.routing_key = routing_key
        self.reason = reason

    def __str__(self) -> str:
        return f"publish to {self.routing_key} not confirmed: {self.reason}"
