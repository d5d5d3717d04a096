"""Our service processes as children: start one, wait until it answers, stop it by its PID.

The one launcher of the repository: `make run` (devstack/stack.py), the tests
(tests/support.py) and the bench (bench/stack.py) start gateways, persisters and stand-ins
through it, and mongod.py stops its mongod with `terminate()`.

    child = Child(Service("gateway-0", [sys.executable, "-m", "gateway"], env,
                          health_url="http://127.0.0.1:8000/readyz"), log_path=path)
    child.start()
    child.wait_ready(30)           # on an event loop: await child.wait_ready_async(30)
    ...
    child.kill()                   # SIGKILL now (fault tests); start() again to restart
    child.stop()                   # SIGTERM, SIGKILL after a deadline; await child.stop_async()

Readiness is a condition, polled: the health URL answers 200 while the process is alive
(never a fixed sleep); a child that exits meanwhile fails the wait at once with its last
output. Output goes to `log_path`, or without one is copied to our stdout line by line
behind the child's name, as `docker compose up` does. With `own_group` the child runs in
its own process group, so a Ctrl-C at the terminal reaches only the launcher, which then
stops its children in order. Every signal goes to the PID while our Popen object still
holds the child unreaped, so it can never reach another process that reused the PID.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .errors import ChildDied, StartFailed

log = logging.getLogger(__name__)

_LINE_LIMIT = 1 << 20  # longest output line copied whole; longer ones are split
_POLL_S = 0.1  # between two readiness probes
_PROBE_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Service:
    """What to run: a name, argv, environment, and the URL that answers 200 once it is ready."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    health_url: str | None = None
    url: str | None = field(default=None, compare=False)  # printed when the stack is up


class Child:
    """One process of a Service; `start()` again after it exited restarts it; `stop()` and
    `stop_async()` are safe twice and after the process exited."""

    def __init__(self, service: Service, *, log_path: Path | None = None, label_width: int = 0,
                 cwd: Path | None = None, own_group: bool = True) -> None:
        self.service = service
        self.name = service.name
        self.log_path = log_path
        self._prefix = f"{service.name:<{label_width}} | ".encode()
        self._cwd = cwd
        self._own_group = own_group
        self._proc: subprocess.Popen[bytes] | None = None
        self._pump: threading.Thread | None = None

    # -- state -----------------------------------------------------------------------
    @property
    def proc(self) -> subprocess.Popen[bytes]:
        assert self._proc is not None, f"{self.name}: start() first"
        return self._proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log(self) -> str:
        """Everything the child wrote to its log file ("" when it logs to our stdout)."""
        if self.log_path is None:
            return ""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, chars: int = 3000) -> str:
        return self.log()[-chars:]

    # -- start -----------------------------------------------------------------------
    def start(self) -> Child:
        """Spawn the process (not waiting for it); refuses while it is still running."""
        if self.alive():
            raise StartFailed(self.name, f"already running as pid {self.pid}")
        out: IO[bytes] | int
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            out = self.log_path.open("ab")
        else:
            out = subprocess.PIPE
        try:
            self._proc = subprocess.Popen(
                list(self.service.argv), env=dict(self.service.env), cwd=self._cwd,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                process_group=0 if self._own_group else None)
        finally:
            if not isinstance(out, int):
                out.close()  # the child holds its own copy
        if self._proc.stdout is not None:
            self._pump = threading.Thread(target=self._copy_output, args=(self._proc.stdout,),
                                          name=f"{self.name} output", daemon=True)
            self._pump.start()
        log.info("started %s (pid %s)", self.name, self._proc.pid)
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until the health URL answers 200; raises ChildDied or StartFailed."""
        deadline = time.monotonic() + timeout
        while not self._ready_or_failed(deadline, timeout, ()):
            time.sleep(_POLL_S)

    async def wait_ready_async(self, timeout: float = 30.0, watch: Iterable[Child] = ()) -> None:
        """wait_ready() on an event loop; also fails as soon as one of `watch` exits."""
        deadline, others = time.monotonic() + timeout, tuple(watch)
        while not await asyncio.to_thread(self._ready_or_failed, deadline, timeout, others):
            await asyncio.sleep(_POLL_S)

    def _ready_or_failed(self, deadline: float, timeout: float,
                         others: tuple[Child, ...]) -> bool:
        """One probe: True when ready, False to probe again, an exception when it never will."""
        url = self.service.health_url
        # Any child: a persister that dies at startup is the cause, not the gateway after it.
        for child in (self, *others):
            code = child.returncode
            if code is not None:
                raise ChildDied(child.name, code, child.log_tail())
        if url is None or answers_200(url):
            return True
        if time.monotonic() > deadline:
            raise StartFailed(self.name, f"{url} did not answer 200 within {timeout:.0f} s\n"
                                         f"{self.log_tail()}")
        return False

    # -- stop ------------------------------------------------------------------------
    def kill(self, sig: int = signal.SIGKILL, timeout: float = 15.0) -> int | None:
        """Send `sig` (SIGKILL unless told) by PID and reap the child; for fault tests."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return self.returncode
        with suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        code = proc.wait(timeout)
        self._join_output()
        return code

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM by PID, SIGKILL if still alive after `timeout` s; returns the exit code."""
        proc = self._proc
        if proc is None:
            return None
        running = proc.poll() is None
        code = terminate(proc, timeout, self.name)
        self._join_output()
        if running:
            log.info("stopped %s (pid %s, exit code %s)", self.name, proc.pid, code)
        return code

    async def stop_async(self, timeout: float = 10.0) -> int | None:
        """stop() without blocking the event loop."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            with suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            exited = asyncio.ensure_future(self.wait())
            # asyncio.wait, not wait_for/timeout: those misfire when our task is being cancelled.
            await asyncio.wait([exited], timeout=timeout)
            if not exited.done():
                log.warning("%s ignored SIGTERM for %.0f s, killing it", self.name, timeout)
                with suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                await asyncio.wait([exited])
            log.info("stopped %s (pid %s, exit code %s)", self.name, proc.pid, proc.returncode)
        await asyncio.to_thread(self._join_output)
        return proc.returncode

    async def wait(self) -> int:
        """Wait for the process to exit, however that happens; returns its exit code."""
        proc = self.proc
        if proc.poll() is not None:
            return proc.returncode
        try:
            # A pidfd turns readable when the process exits: no polling, and cancellable.
            fd = os.pidfd_open(proc.pid)
        except ProcessLookupError:  # reaped by another thread's wait() meanwhile
            return proc.wait()
        loop = asyncio.get_running_loop()
        exited: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not exited.done():
                exited.set_result(None)

        loop.add_reader(fd, readable)
        try:
            await exited
        finally:
            loop.remove_reader(fd)
            os.close(fd)
        return proc.wait()

    # -- output ----------------------------------------------------------------------
    def _copy_output(self, stream: IO[bytes]) -> None:
        out = sys.stdout.buffer
        with stream:
            while line := stream.readline(_LINE_LIMIT):
                out.write(self._prefix + (line if line.endswith(b"\n") else line + b"\n"))
                out.flush()

    def _join_output(self) -> None:
        # A grandchild could keep the pipe open; never let that hold up shutdown.
        if self._pump is not None:
            self._pump.join(2.0)
            self._pump = None


def terminate(proc: subprocess.Popen[bytes], timeout: float = 10.0, name: str = "") -> int:
    """Stop `proc` and reap it: SIGTERM by PID, SIGKILL after `timeout` s; safe on a process
    that already exited. Returns its exit code."""
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


def answers_200(url: str, timeout: float = _PROBE_TIMEOUT_S) -> bool:
    """True when GET `url` answers 200 within `timeout` s."""
    # A local self-signed certificate is expected; this only asks "are you up?".
    context = ssl._create_unverified_context() if url.startswith("https") else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


__all__ = ["Child", "Service", "answers_200", "terminate"]
