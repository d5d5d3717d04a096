"""Settings every service shares: where the broker and MongoDB are, and the names."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts import Names


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DUET_", extra="ignore")

    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    mongo_url: str = "mongodb://127.0.0.1:27017"
    mongo_db: str = "duet"
    exchange: str = "duet.rooms"
    prefix: str = Field("", description="Prepended to every exchange, queue and database name.")
    delivery_limit: int = Field(
        5, ge=1, description="Deliveries before a message is dead-lettered.")
    audit_max_age: str = Field("30D", description="Audit stream retention (RabbitMQ x-max-age).")
    audit_max_bytes: int = Field(20 * 1024**3, ge=1, description="Audit stream size cap.")
    log_level: str = "INFO"
    log_format: str = Field("json", pattern="^(json|text)$", description="json or text")

    @property
    def names(self) -> Names:
        return Names(prefix=self.prefix, exchange_name=self.exchange, db_name=self.mongo_db)
