"""A one-line progress bar on a terminal: named stages, each a share of the whole.

    bar = Bar(stream, [("read", 0.4), ("encrypt", 0.2), ("send", 0.4)], label="dot.png")
    bar.update("read", 0.5)   # half of the reading done
    bar.update("send")        # the send stage started
    bar.close()               # draws 100 % on success and ends the line; safe twice

A bar that is not enabled (machine output, or a stream that is not a terminal) draws
nothing, so callers use it the same way in every mode.
"""

from __future__ import annotations

import time
from typing import TextIO

WIDTH = 30
_LABELS = {"read": "reading", "encrypt": "encrypting", "send": "sending", "sent": "sent"}


class Bar:
    def __init__(self, stream: TextIO, stages: list[tuple[str, float]], *, label: str = "",
                 enabled: bool = True, min_interval: float = 0.05) -> None:
        total = sum(share for _, share in stages)
        self._start: dict[str, float] = {}
        self._share: dict[str, float] = {}
        acc = 0.0
        for name, share in stages:
            self._start[name], self._share[name] = acc / total, share / total
            acc += share
        self._stream = stream
        self._label = label
        self._enabled = enabled
        self._min_interval = min_interval
        self._drawn_at = 0.0
        self._fraction = 0.0
        self._stage = ""
        self._closed = False

    def update(self, stage: str, done: float = 0.0) -> None:
        """Stage `stage` is `done` (0..1) complete; unknown stages count as the end."""
        start, share = self._start.get(stage, 1.0), self._share.get(stage, 0.0)
        self._fraction = max(self._fraction, min(1.0, start + share * max(0.0, min(done, 1.0))))
        changed, self._stage = stage != self._stage, stage
        now = time.monotonic()
        if changed or now - self._drawn_at >= self._min_interval:
            self._draw()
            self._drawn_at = now

    def close(self, *, ok: bool = True) -> None:
        """Draw the final state and end the line; safe twice."""
        if self._closed:
            return
        self._closed = True
        if ok:
            self._fraction, self._stage = 1.0, "sent"
        if self._enabled:
            self._draw()
            self._stream.write("\n" if ok else " failed\n")
            self._stream.flush()

    def _draw(self) -> None:
        if not self._enabled:
            return
        filled = round(self._fraction * WIDTH)
        bar = "#" * filled + "-" * (WIDTH - filled)
        stage = _LABELS.get(self._stage, self._stage)
        self._stream.write(f"\r{self._label} [{bar}] {self._fraction:4.0%} {stage:<10}")
        self._stream.flush()
