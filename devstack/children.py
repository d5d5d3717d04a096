"""Service processes of the local stack, their output shown on the terminal.

Each child runs in its own process group, so a Ctrl-C at the terminal reaches only the
launcher, which then stops the children in order (gateways before persisters before
mongod) instead of all at once. Every line a child prints is copied to our stdout
prefixed with its name, like `docker compose up` does.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

_LINE_LIMIT = 1 << 20  # longest output line we copy whole


@dataclass(frozen=True)
class Service:
    """What to run: a name for the terminal, argv, environment, and an optional health URL."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    health_url: str | None = None
    url: str | None = field(default=None, compare=False)  # printed when the stack is up


class Child:
    """One running service; `stop()` is safe to call twice and after the process exited."""

    def __init__(self, service: Service, label_width: int = 0) -> None:
        self.service = service
        self.name = service.name
        self._prefix = f"{service.name:<{label_width}} | ".encode()
        self._proc: asyncio.subprocess.Process | None = None
        self._pump: asyncio.Task[None] | None = None
        self._exited: asyncio.Task[int] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc else None

    async def start(self) -> Child:
        self._proc = await asyncio.create_subprocess_exec(
            *self.service.argv,
            env=dict(self.service.env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            process_group=0,
            limit=_LINE_LIMIT,
        )
        self._pump = asyncio.create_task(self._copy_output(), name=f"{self.name} output")
        self._exited = asyncio.create_task(self._proc.wait(), name=f"{self.name} wait")
        log.info("started %s (pid %s)", self.name, self._proc.pid)
        return self

    async def wait(self) -> int:
        """Wait for the process to exit, however that happens; returns its exit code."""
        assert self._exited is not None, "start() first"
        return await asyncio.shield(self._exited)

    async def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM by PID, SIGKILL if still alive after `timeout` s, then drain its output."""
        proc, exited = self._proc, self._exited
        if proc is None or exited is None:
            return
        if proc.returncode is None:
            with suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            # asyncio.wait, not wait_for/timeout: those misfire when our task is being cancelled.
            await asyncio.wait([exited], timeout=timeout)
            if not exited.done():
                log.warning("%s ignored SIGTERM for %.0f s, killing it", self.name, timeout)
                with suppress(ProcessLookupError):
                    proc.kill()
                await asyncio.wait([exited])
            log.info("stopped %s (pid %s, exit code %s)", self.name, proc.pid, proc.returncode)
        if self._pump is not None:
            # A grandchild could keep the pipe open; never let that hold up shutdown.
            await asyncio.wait([self._pump], timeout=2.0)
            self._pump.cancel()

    async def _copy_output(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        stream, out = self._proc.stdout, sys.stdout.buffer
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # longer than _LINE_LIMIT: asyncio dropped it, go on
                continue
            if not line:
                return
            out.write(self._prefix + line if line.endswith(b"\n") else self._prefix + line + b"\n")
            out.flush()
