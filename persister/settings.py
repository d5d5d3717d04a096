"""The persister's settings."""

from __future__ import annotations

from pydantic import Field

from service.settings import ServiceSettings


class PersisterSettings(ServiceSettings):
    health_host: str = "127.0.0.1"
    health_port: int = Field(8081, ge=0, description="/healthz, /readyz, /metrics; 0: none.")
    prefetch: int = Field(1024, ge=1, description="Unacked messages held at once.")
    batch_size: int = Field(1024, ge=1, description=(
        "Documents per insert_many; whole broker messages, so one may carry it past."))
    batch_ms: float = Field(20.0, ge=0, description="How long a batch waits to fill.")
    lag_check_s: float = Field(5.0, gt=0, description="How often duet.persist's backlog is "
                                                      "read for the `lag` gauge.")
    rebalance_s: float = Field(2.0, gt=0, description=(
        "Partitioned: how often a persister hands off the partitions beyond its share."))
    retention_days: float = Field(0.0, ge=0, description=(
        "Delete a message's ciphertext this many days after every device it was for "
        "fetched it; 0: keep it forever."))
    retention_sweep_s: float = Field(3600.0, gt=0, description=(
        "How often the retention sweep runs (with DUET_RETENTION_DAYS > 0)."))
    retry_max_s: float = Field(10.0, gt=0, description="Longest back-off while MongoDB is down.")
