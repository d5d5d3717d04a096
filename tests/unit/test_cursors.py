"""Cursor clock: strictly increasing, sortable, 32 hex digits."""

from __future__ import annotations

import re

from gateway.cursors import CursorClock


def test_cursor_clock_strictly_increases_and_sorts() -> None:
    """10,000 cursors from one clock are unique, 32 hex digits, and already sorted."""
    clock = CursorClock("node-a")
    cursors = [clock.next()[0] for _ in range(10_000)]
    assert cursors == sorted(cursors) and len(set(cursors)) == len(cursors)
    assert all(re.fullmatch(r"[0-9a-f]{32}", c) for c in cursors)


def test_cursor_clock_survives_wall_clock_step_back(monkeypatch) -> None:
    """When the wall clock steps back, cursors still increase."""
    import gateway.cursors as mod
    clock = CursorClock("n")
    first, _ = clock.next()
    monkeypatch.setattr(mod.time, "time_ns", lambda: 0)
    assert clock.next()[0] > first
