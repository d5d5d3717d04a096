"""The gateway's Prometheus metrics, in a registry of its own (served at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.sockets = Gauge("duet_gateway_sockets_open", "Open WebSockets", registry=r)
        self.users = Gauge("duet_gateway_users_bound",
                           "Users this replica's queue is bound for (two bindings each)",
                           registry=r)
        self.frames_in = Counter("duet_gateway_frames_in_total", "Frames received, by type",
                                 ["type"], registry=r)
        self.frames_out = Counter("duet_gateway_frames_out_total", "Frames sent, by type",
                                  ["type"], registry=r)
        self.publish_seconds = Histogram("duet_gateway_publish_confirm_seconds",
                                         "Publish until the broker's confirm", buckets=_LATENCY,
                                         registry=r)
        self.batch_size = Histogram("duet_gateway_publish_batch_messages",
                                    "Chat messages per broker message published",
                                    buckets=(1, 2, 4, 8, 16, 32, 64), registry=r)
        self.socket_writes = Counter("duet_gateway_socket_writes_total",
                                     "Writes to client sockets (gateway.outbox)", registry=r)
        self.socket_write_frames = Counter("duet_gateway_socket_write_frames_total",
                                           "Frames in those writes: over the writes, frames "
                                           "per system call", registry=r)
        self.errors = Counter("duet_gateway_errors_total",
                              "Error frames and refusing close codes, by code", ["code"],
                              registry=r)
        self.password_hashes = Counter("duet_gateway_password_hashes_total",
                                       "argon2id computations, by op (hash, verify)", ["op"],
                                       registry=r)
        self.out_message = self.frames_out.labels("message")
        # Label children looked up once, not per frame (labels() takes a lock and hashes).
        self._children: dict[tuple[int, str], Counter] = {}

    def _child(self, counter: Counter, label: str) -> Counter:
        key = (id(counter), label)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = counter.labels(label)
        return child

    def frame_in(self, kind: str) -> None:
        self._child(self.frames_in, kind).inc()

    def frame_out(self, kind: str) -> None:
        self._child(self.frames_out, kind).inc()

    def error(self, code: str | int) -> None:
        self._child(self.errors, str(code)).inc()
