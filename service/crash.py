"""Crash-only recovery: a service that finds it cannot go on as it should (say, the broker
cancelled its consumer because its queue was deleted) does not heal itself in place. It
logs why, stops as on SIGTERM (what it accepted still leaves) and exits with status 1;
its supervisor (compose's `restart:`, devstack's launcher) starts it again, and a start
declares what it needs. docs/design.md, "Recovery", says why."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable

log = logging.getLogger(__name__)
_reason: str | None = None
# How this process stops gracefully (its main sets it); else as on SIGTERM.
_stop: Callable[[], None] = lambda: os.kill(os.getpid(), signal.SIGTERM)  # noqa: E731


def stop_with(stop: Callable[[], None]) -> None:
    """Set how crash() stops this process (what SIGTERM would do, without the signal)."""
    global _stop
    _stop = stop


def crash(reason: str) -> None:
    """Stop this process for a restart (once; later calls are ignored)."""
    global _reason
    if _reason is None:
        _reason = reason
        log.error("%s: stopping for a restart", reason)
        _stop()


def exit_status() -> int:
    """1 if crash() was called, else 0: what the process should exit with."""
    return 0 if _reason is None else 1
