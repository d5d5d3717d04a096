"""Cursors: the order of a room's messages, stamped by the gateway that publishes them."""

from __future__ import annotations

import time
import zlib


class CursorClock:
    """32 hex digits: microseconds since the epoch, this replica, a counter.

    They sort by time across replicas and strictly increase within one, so one connection's
    messages keep their order in history.
    """

    def __init__(self, node: str) -> None:
        self._node = zlib.crc32(node.encode())
        self._last_us = 0
        self._n = 0

    def next(self) -> tuple[str, int]:
        """Return (cursor, ts in milliseconds)."""
        now = time.time_ns() // 1000
        # Strictly increasing even when the wall clock steps back.
        if now <= self._last_us:
            now = self._last_us + 1
        self._last_us = now
        self._n = (self._n + 1) & 0xFFFFFFFF
        return f"{now:016x}{self._node:08x}{self._n:08x}", now // 1000
