"""The local stack: infrastructure, then persisters, then gateways; torn down in reverse.

Startup: RabbitMQ and MongoDB are used when they answer at DUET_AMQP_URL / DUET_MONGO_URL,
else started (see rabbit.py, mongo.py); a token secret is generated once into the state
dir; then the services start and the gateways must answer GET /healthz. While running,
a service that exits is started again, as compose's `restart:` would (the services are
crash-only: service/crash.py); one that exits more than RESTARTS times within
RESTART_WINDOW_S ends the stack with ChildDied. `request_stop()` (wired to SIGINT and
SIGTERM) ends it cleanly. Either way everything this process started is stopped, gateways
first so no socket is left talking to a stopped persister or database.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from .cluster import RabbitCluster, ReplicaSet
from .errors import ChildDied, StackError, StartFailed
from .launch import Child, Service
from .mongo import ensure_mongo
from .ports import port_is_free
from .rabbit import ensure_rabbit, redact
from .secret import ensure_token_secret

log = logging.getLogger(__name__)
RESTARTS = 3  # more exits than this within RESTART_WINDOW_S is a crash loop: give up
RESTART_WINDOW_S = 60.0

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_MONGO_URL = "mongodb://127.0.0.1:27017"


@dataclass(frozen=True)
class StackConfig:
    state_dir: Path
    amqp_url: str = DEFAULT_AMQP_URL
    mongo_url: str = DEFAULT_MONGO_URL
    host: str = "127.0.0.1"
    port: int = 8000
    gateways: int = 1
    persisters: int = 1
    tls: bool = False
    cluster: bool = False  # three RabbitMQ nodes and a three-member replica set, started here
    start_timeout: float = 60.0
    stop_timeout: float = 10.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: object) -> StackConfig:
        """Defaults from the same DUET_ variables the services read; `overrides` win."""
        values: dict[str, object] = {
            "state_dir": Path(environ.get("DUET_STATE_DIR") or ".duet"),
            "amqp_url": environ.get("DUET_AMQP_URL") or DEFAULT_AMQP_URL,
            "mongo_url": environ.get("DUET_MONGO_URL") or DEFAULT_MONGO_URL,
            "host": environ.get("DUET_HOST") or "127.0.0.1",
            "port": int(environ.get("DUET_PORT") or 8000),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


# Builds the services to run from the environment every child gets.
ServiceFactory = Callable[[StackConfig, Mapping[str, str]], Sequence[Service]]


def duet_services(config: StackConfig, env: Mapping[str, str]) -> list[Service]:
    """Persisters first (they only consume), then one gateway per port from config.port."""
    scheme = "https" if env.get("DUET_TLS_CERT") else "http"
    # Persister i serves /healthz, /readyz and /metrics on DUET_HEALTH_PORT + i (8081 + i).
    health = int(env.get("DUET_HEALTH_PORT") or 8081)
    services = [
        Service(f"persister-{i}", (sys.executable, "-m", "persister"),
                {**env, "DUET_HEALTH_PORT": str(health + i) if health else "0"},
                f"http://127.0.0.1:{health + i}/healthz" if health else None)
        for i in range(config.persisters)
    ]
    for i in range(config.gateways):
        port = config.port + i
        base = f"{scheme}://{_url_host(config.host)}:{port}/"
        probe = f"{scheme}://{_url_host(_probe_host(config.host))}:{port}/healthz"
        gateway_env = {**env, "DUET_HOST": config.host, "DUET_PORT": str(port)}
        services.append(
            Service(f"gateway-{i}", (sys.executable, "-m", "gateway"), gateway_env, probe, base)
        )
    return services


class Stack:
    """Runs the whole local stack until a service dies or `request_stop()` is called."""

    def __init__(self, config: StackConfig, services: ServiceFactory = duet_services) -> None:
        self.config = config
        self._services = services
        self.children: list[Child] = []
        self.urls: list[str] = []
        self.ready = asyncio.Event()
        self._task: asyncio.Task[object] | None = None
        self._infra = ("", "")
        self._stop_requested = False
        self._tearing_down = False

    def request_stop(self) -> None:
        """Stop everything and make run() return 0; a second request is ignored."""
        if self._task is None:
            raise RuntimeError("request_stop() before run()")
        if self._stop_requested or self._tearing_down:
            log.info("already stopping")
            return
        self._stop_requested = True
        log.info("stopping")
        self._task.cancel()

    async def run(self) -> int:
        """Start, supervise, tear down. Returns 0 after request_stop(); raises StackError."""
        task = asyncio.current_task()
        assert task is not None, "run() runs in a task"
        self._task = task
        try:
            async with AsyncExitStack() as exits:
                try:
                    await self._start(exits)
                    self.ready.set()
                    self._announce()
                    await self._supervise()
                finally:
                    # From here on a signal must not interrupt the teardown.
                    self._tearing_down = True
                    log.info("stopping everything this command started")
        except asyncio.CancelledError:
            if not self._stop_requested:
                raise
            task.uncancel()
        return 0

    async def _start(self, exits: AsyncExitStack) -> None:
        config = self.config
        state = config.state_dir
        (state / "logs").mkdir(parents=True, exist_ok=True)
        self._check_ports()
        if config.cluster:
            amqp_url, mongo_url = await self._start_cluster(exits, state / "cluster")
        else:
            amqp_url = await exits.enter_async_context(ensure_rabbit(config.amqp_url))
            mongo_url = await exits.enter_async_context(
                ensure_mongo(config.mongo_url, state / "mongo", state / "logs" / "mongod.log")
            )
        env = {
            **os.environ,
            "DUET_AMQP_URL": amqp_url,
            "DUET_MONGO_URL": mongo_url,
            "PYTHONUNBUFFERED": "1",  # child output shows up as it happens
        }
        env.setdefault("DUET_LOG_FORMAT", "text")  # a terminal, not a log shipper
        if not (env.get("DUET_TOKEN_SECRET") or env.get("DUET_TOKEN_SECRET_FILE")):
            env["DUET_TOKEN_SECRET_FILE"] = str(ensure_token_secret(state).resolve())
        if config.tls and not env.get("DUET_TLS_CERT"):
            env.update(ensure_dev_certificate(state / "tls", config.host))
        services = self._services(config, env)
        width = max((len(s.name) for s in services), default=0)
        # Registered before any child starts, after the infrastructure: runs first on exit.
        exits.push_async_callback(self._stop_children)
        for service in services:
            child = Child(service, label_width=width)
            self.children.append(child)
            child.start()
        # One after the other: they all boot in parallel anyway.
        for child in self.children:
            await child.wait_ready_async(self.config.start_timeout, watch=self.children)
        self.urls = [c.service.url for c in self.children if c.service.url]
        self._infra = (amqp_url, mongo_url)

    async def _start_cluster(self, exits: AsyncExitStack, home: Path) -> tuple[str, str]:
        """Three RabbitMQ nodes and a three-member replica set of our own (devstack.cluster),
        stopped on exit; the services get every address. A throwaway cluster, to try
        failover on: made afresh each run (its node names and ports are new each time)."""
        shutil.rmtree(home, ignore_errors=True)
        rabbit, mongo = RabbitCluster(home / "rabbit"), ReplicaSet(home / "mongo")
        exits.callback(rabbit.stop)
        await asyncio.to_thread(rabbit.start)
        exits.callback(mongo.stop)
        await asyncio.to_thread(mongo.start)
        return rabbit.amqp_url, mongo.url

    async def _stop_children(self) -> None:
        """Stop the children kind by kind in reverse start order (gateways first), each kind
        all at once, so the whole teardown takes at most a few stop_timeouts."""
        kinds: dict[str, list[Child]] = {}
        for child in self.children:
            kinds.setdefault(child.name.rsplit("-", 1)[0], []).append(child)
        for group in reversed(kinds.values()):
            await asyncio.gather(*(c.stop_async(self.config.stop_timeout) for c in group))

    def _check_ports(self) -> None:
        # A clear message beats a gateway dying on "address already in use".
        for i in range(self.config.gateways):
            port = self.config.port + i
            if not port_is_free(port, self.config.host):
                raise StartFailed("gateway", f"port {port} is in use (another duet?); pass --port")

    def _announce(self) -> None:
        amqp_url, mongo_url = self._infra
        first = self.urls[0] if self.urls else "(no gateway)"
        lines = [f"duet is running: {first}"]
        if len(self.urls) > 1:
            lines.append(f"  gateways: {' '.join(self.urls)}")
        lines.append(f"  RabbitMQ {redact(amqp_url)}  MongoDB {mongo_url}")
        lines.append(f"  state in {self.config.state_dir}/; Ctrl-C stops what this command started")
        print("\n".join(lines), flush=True)

    async def _supervise(self) -> None:
        if not self.children:
            await asyncio.Event().wait()  # nothing to watch: run until stopped
        exits: dict[str, list[float]] = {}
        waits = {asyncio.ensure_future(c.wait()): c for c in self.children}
        try:
            while True:
                done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    child = waits.pop(task)
                    code = child.returncode if child.returncode is not None else -1
                    now = asyncio.get_running_loop().time()
                    recent = [t for t in exits.get(child.name, []) if now - t < RESTART_WINDOW_S]
                    exits[child.name] = [*recent, now]
                    if len(recent) >= RESTARTS:
                        log.error("%s exited with code %s, %s times within %.0f s: stopping",
                                  child.name, code, len(recent) + 1, RESTART_WINDOW_S)
                        raise ChildDied(child.name, code, child.log_tail())
                    log.warning("%s exited with code %s: starting it again", child.name, code)
                    child.start()
                    waits[asyncio.ensure_future(child.wait())] = child
        finally:
            for task in waits:
                task.cancel()


def ensure_dev_certificate(directory: Path, host: str) -> dict[str, str]:
    """A development CA and server certificate (made once) for --tls."""
    from gateway.certs import make

    if not (directory / "server.pem").exists():
        hosts = list(dict.fromkeys(["localhost", "127.0.0.1", "::1", host]))
        make(directory, hosts, days=365)
    log.info("TLS on: trust %s in your browser or client", (directory / "ca.pem").resolve())
    return {"DUET_TLS_CERT": str((directory / "server.pem").resolve()),
            "DUET_TLS_KEY": str((directory / "server-key.pem").resolve())}


def _probe_host(host: str) -> str:
    """Where to reach a server bound to `host` from this machine."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


__all__ = ["ChildDied", "Stack", "StackConfig", "StackError", "duet_services"]
