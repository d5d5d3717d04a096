"""Stopping a child process by its PID: SIGTERM, wait up to a deadline, then SIGKILL."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from contextlib import suppress

log = logging.getLogger(__name__)


def terminate(proc: subprocess.Popen[bytes], timeout: float = 10.0, name: str = "") -> int:
    """Stop `proc` and reap it; safe on a process that already exited. Returns its exit code."""
    name = name or f"pid {proc.pid}"
    if proc.poll() is not None:
        return proc.returncode
    # The Popen object has not reaped the child yet, so its PID cannot belong to anyone else.
    with suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log.warning("%s ignored SIGTERM for %.0f s, killing it", name, timeout)
    with suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGKILL)
    return proc.wait()
