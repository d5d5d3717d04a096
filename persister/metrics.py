"""The persister's Prometheus metrics (served on DUET_HEALTH_PORT at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class PersisterMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.batch_size = Histogram("duet_persister_batch_size", "Documents per insert_many",
                                    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
                                    registry=r)
        self.write_seconds = Histogram(
            "duet_persister_write_seconds", "insert_many latency",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5), registry=r)
        self.stored = Counter("duet_persister_stored_total", "Messages written (new or not)",
                              registry=r)
        self.dead_lettered = Counter("duet_persister_dead_lettered_total",
                                     "Messages rejected to the dead letters", registry=r)
        self.write_failures = Counter("duet_persister_write_failures_total",
                                      "insert_many attempts that failed (MongoDB down)",
                                      registry=r)
        self.lag = Gauge("duet_persister_consumer_lag",
                         "Messages ready in duet.persist, not yet delivered", registry=r)
