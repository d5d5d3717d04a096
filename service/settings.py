"""Settings every service shares: where the broker and MongoDB are, and the names."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts import Names
from contracts.routing import MAX_PARTITIONS


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DUET_", extra="ignore")

    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    amqp_url_file: Path | None = Field(
        None, description="A file holding DUET_AMQP_URL (a Docker secret); not with it.")
    mongo_url: str = "mongodb://127.0.0.1:27017"
    mongo_url_file: Path | None = Field(
        None, description="A file holding DUET_MONGO_URL (a Docker secret); not with it.")
    mongo_db: str = "duet"
    exchange: str = "duet.rooms"
    prefix: str = Field("", description="Prepended to every exchange, queue and database name.")
    delivery_limit: int = Field(
        5, ge=1, description="Deliveries before a message is dead-lettered.")
    persist_partitions: int = Field(
        1, ge=1, le=MAX_PARTITIONS, description=(
            "Persist queues (duet.persist.<p>), each stored by one persister at a time; 1: "
            "the one queue duet.persist. The same for every service (docs/operations.md)."))
    audit_max_age: str = Field("30D", description="Audit stream retention (RabbitMQ x-max-age).")
    audit_max_bytes: int = Field(20 * 1024**3, ge=1, description="Audit stream size cap.")
    declare_topology: bool = Field(
        True, description="Declare the exchange and the durable path (duet.persist, its dead "
                          "letters, duet.audit) at start; false: only check that they exist, "
                          "and exit if not (an account without configure rights on them).")
    log_level: str = "INFO"
    log_format: str = Field("json", pattern="^(json|text)$", description="json or text")

    @model_validator(mode="after")
    def _read_url_files(self) -> ServiceSettings:
        """DUET_AMQP_URL_FILE / DUET_MONGO_URL_FILE: the URL (with its password) from a file,
        as Docker mounts secrets; giving both a URL and its file is refused."""
        for name in ("amqp_url", "mongo_url"):
            path: Path | None = getattr(self, f"{name}_file")
            if path is None:
                continue
            if name in self.model_fields_set:
                raise ValueError(f"set DUET_{name.upper()} or DUET_{name.upper()}_FILE, not both")
            value = path.read_text().strip()
            if not value:
                raise ValueError(f"DUET_{name.upper()}_FILE {path} is empty")
            setattr(self, name, value)
        return self

    @property
    def names(self) -> Names:
        return Names(prefix=self.prefix, exchange_name=self.exchange, db_name=self.mongo_db)
