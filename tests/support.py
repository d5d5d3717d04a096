"""Real processes and real clients for the integration tests."""

from __future__ import annotations

import asyncio
import base64
import inspect
import itertools
import os
import ssl
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import aio_pika
import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from broker.topology import declare_audit_stream, declare_exchange
from contracts import Names, room_id
from devstack import launch
from devstack.launch import Child
from devstack.ports import free_port
from service.settings import ServiceSettings

TOKEN_SECRET = "test-secret-" + "x" * 40
T = TypeVar("T")
_names = itertools.count(1)

# Every secret and ciphertext the tests handed to a service, and every log directory: at
# the end of the run (conftest.pytest_sessionfinish) no log line may contain any of them.
SECRETS: set[str] = set()
LOG_DIRS: list[Path] = []


def leaks() -> list[str]:
    """Log lines (file: excerpt) that contain a password, a token or a ciphertext."""
    found = []
    needles = [s for s in SECRETS if len(s) >= 12]
    for directory in LOG_DIRS:
        for path in Path(directory).glob("*.log"):
            for line in path.read_text(errors="replace").splitlines():
                for needle in needles:
                    if needle in line:
                        found.append(f"{path.name}: ...{needle[:8]}... in {line[:120]}")
    return found


@contextmanager
def http_server(handler: Callable[..., BaseHTTPRequestHandler]) -> Iterator[str]:
    """A threaded HTTP server with this handler on a free port of 127.0.0.1; its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def conversation_before(a: Any, b: Any, na: str, nb: str, password: str,
                              n: int) -> None:
    """SDK clients a and b register as na and nb, become friends, and store n messages
    (n - 1 from b, then one from a): history that a device added later cannot read."""
    await a.register(na, password)
    await b.register(nb, password)
    await a.add_friend(nb)
    await b.accept_friend(na)
    for i in range(n - 1):
        sent = await b.send_text(na, f"before {i}")
    await b.wait_stored(na, sent["id"])
    own = await a.send_text(nb, "before, from alice")
    await a.wait_stored(nb, own["id"])


def unique_name(stem: str = "u") -> str:
    return f"{stem}{next(_names)}_{uuid.uuid4().hex[:8]}"


async def eventually(check: Callable[[], T | Awaitable[T]], timeout: float = 10.0,
                     what: str = "condition", interval: float = 0.05) -> T:
    """Poll `check` (sync or async) until it returns something truthy, and return that;
    fail naming `what` (and the last value) after `timeout` s. A test waits on this, never
    on a fixed sleep; a blocking check goes through asyncio.to_thread."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s (last {value!r:.300})")
        await asyncio.sleep(interval)


class Service(Child):
    """One `python -m <module>` child process of a test stack, logging to `<name>.log`;
    started, waited for, killed and stopped by devstack.launch (by its PID only)."""

    def __init__(self, module: str, env: dict[str, str], log_dir: Path, name: str,
                 health_url: str | None = None) -> None:
        # In the test run's process group: a Ctrl-C of pytest stops the services too.
        super().__init__(launch.Service(name, (sys.executable, "-m", module), env, health_url),
                         log_path=log_dir / f"{name}.log", own_group=False)
        self.module = module
        self.env = env


@dataclass
class Stack:
    """Gateways and persisters of one test stack, all under one name prefix."""

    amqp_url: str
    mongo_url: str
    log_dir: Path
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}.")
    services: list[Service] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        LOG_DIRS.append(self.log_dir)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DUET_")}
        env.update({
            "DUET_AMQP_URL": self.amqp_url,
            "DUET_MONGO_URL": self.mongo_url,
            "DUET_PREFIX": self.prefix,
            "DUET_TOKEN_SECRET": TOKEN_SECRET,
            "DUET_LOG_LEVEL": "INFO",
            # Tests stream thousands of frames; the limits have tests of their own.
            "DUET_RATE_PER_S": "100000",
            "DUET_RATE_BURST": "100000",
            "PYTHONUNBUFFERED": "1",
        })
        env.update(self.extra_env)
        env.update(extra)
        return env

    @property
    def db_name(self) -> str:
        return Names(prefix=self.prefix).database

    def gateway(self, _scheme: str = "http", _verify: ssl.SSLContext | bool = True,
                **extra: str) -> Gateway:
        """A gateway on a free port, returned once its /readyz answers 200."""
        port = free_port()
        svc = Gateway("gateway", self.env(DUET_PORT=str(port), **extra), self.log_dir,
                      f"gateway-{port}", port, scheme=_scheme, verify=_verify)
        self.services.append(svc)
        svc.start().wait_ready()
        return svc

    def persister(self, **extra: str) -> Persister:
        """A persister, returned once its /readyz answers 200 (it consumes)."""
        port = free_port()
        svc = Persister("persister", self.env(DUET_HEALTH_PORT=str(port), **extra),
                        self.log_dir, f"persister-{len(self.services)}", port)
        self.services.append(svc)
        svc.start().wait_ready()
        return svc

    def stop(self) -> None:
        for svc in reversed(self.services):
            svc.stop()


class Persister(Service):
    def __init__(self, module: str, env: dict[str, str], log_dir: Path, name: str,
                 health_port: int) -> None:
        super().__init__(module, env, log_dir, name,
                         f"http://127.0.0.1:{health_port}/readyz")
        self.health_port = health_port

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.health_port}"


class Gateway(Service):
    def __init__(self, module: str, env: dict[str, str], log_dir: Path, name: str,
                 port: int, scheme: str = "http", verify: ssl.SSLContext | bool = True) -> None:
        super().__init__(module, env, log_dir, name, f"{scheme}://127.0.0.1:{port}/readyz")
        self.port = port
        self.scheme = scheme
        self.verify = verify

    @property
    def http(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"{self.scheme.replace('http', 'ws')}://127.0.0.1:{self.port}"


@dataclass
class User:
    user_id: str
    username: str
    password: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def signup(http: httpx.AsyncClient, base: str, stem: str = "u") -> User:
    name, password = unique_name(stem), f"correct horse battery {uuid.uuid4().hex[:12]}"
    SECRETS.add(password)
    r = await http.post(f"{base}/api/register", json={"username": name, "password": password})
    assert r.status_code == 201, r.text
    r = await http.post(f"{base}/api/login", json={"username": name, "password": password})
    assert r.status_code == 200, r.text
    body = r.json()
    SECRETS.add(body["access_token"])
    return User(body["user_id"], name, password, body["access_token"])


async def befriend(http: httpx.AsyncClient, base: str, a: User, b: User) -> None:
    r = await http.post(f"{base}/api/friends", json={"username": b.username}, headers=a.auth)
    assert r.status_code == 201, r.text
    r = await http.post(f"{base}/api/friends/{a.user_id}/accept", headers=b.auth)
    assert r.status_code == 200, r.text


async def friends(gw: Gateway) -> tuple[User, User]:
    """Two new users on this gateway, accepted friends."""
    async with httpx.AsyncClient(verify=gw.verify) as http:
        a, b = await signup(http, gw.http), await signup(http, gw.http)
        await befriend(http, gw.http, a, b)
    return a, b


class Socket:
    """A test client over a real WebSocket: frames in, frames out, JSON."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._skipped: list[dict[str, Any]] = []  # frames recv_type passed over, oldest first

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.ws.send(frame if isinstance(frame, str) else orjson.dumps(frame).decode())

    async def recv(self, timeout: float = 10.0) -> dict[str, Any]:
        data = await asyncio.wait_for(self.ws.recv(), timeout)
        result: dict[str, Any] = orjson.loads(data)
        return result

    async def recv_type(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        """The next frame of this type; frames of other types are kept for later calls."""
        for i, frame in enumerate(self._skipped):
            if frame["type"] == kind:
                return self._skipped.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            frame = await self.recv(max(0.01, deadline - time.monotonic()))
            if frame["type"] == kind:
                return frame
            self._skipped.append(frame)

    async def collect(self, kind: str, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        out: list[dict[str, Any]] = []
        while len(out) < count:
            try:
                out.append(await self.recv_type(kind, max(0.01, deadline - time.monotonic())))
            except TimeoutError:
                seen = [f.get("id", f["type"]) for f in out]
                raise AssertionError(f"{len(out)} of {count} {kind} frames: {seen}") from None
        return out

    async def quiet(self, kind: str, seconds: float) -> list[dict[str, Any]]:
        """Frames of this type arriving within `seconds` (expected: none)."""
        got = [f for f in self._skipped if f["type"] == kind]
        self._skipped = [f for f in self._skipped if f["type"] != kind]
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                frame = await self.recv(left)
            except TimeoutError:
                break
            if frame["type"] == kind:
                got.append(frame)
        return got


@asynccontextmanager
async def open_socket(gw: Gateway, user: User, peer: User, *, ready: bool = True,
                      **kwargs: Any) -> AsyncIterator[Socket]:
    headers = kwargs.pop("additional_headers", user.auth)
    async with connect(f"{gw.ws}/ws/{peer.user_id}", additional_headers=headers,
                       max_size=None, **kwargs) as ws:
        sock = Socket(ws)
        if ready:
            frame = await sock.recv()
            assert frame["type"] == "ready", frame
        yield sock


@asynccontextmanager
async def open_device(gw: Gateway, user: User, *, ready: bool = True,
                      **kwargs: Any) -> AsyncIterator[Socket]:
    """A v2 device socket (`/ws`) of this user."""
    headers = kwargs.pop("additional_headers", user.auth)
    async with connect(f"{gw.ws}/ws", additional_headers=headers, max_size=None,
                       subprotocols=["duet.v2"], **kwargs) as ws:  # type: ignore[list-item]
        sock = Socket(ws)
        if ready:
            frame = await sock.recv()
            assert frame["type"] == "ready" and frame["protocol"] == 2, frame
        yield sock


def _b64u(n: int) -> str:
    return base64.urlsafe_b64encode(os.urandom(n)).rstrip(b"=").decode()


def envelope(sender: User, peer: User, n: int | str = 0, *, kind: str = "text",
             size: int = 64) -> dict[str, Any]:
    """A random envelope of the right outer shape: all the servers can check of one."""
    ct = _b64u(size)
    if size <= 4096:
        SECRETS.add(ct)
    signal = kind in ("receipt", "typing")
    return {
        "v": 1, "alg": "RSA-OAEP-256+A256GCM+ES256",
        "room": room_id(sender.user_id, peer.user_id), "sender": sender.user_id,
        "from": _b64u(32), "seq": 0 if signal else int(n) + 1 if str(n).isdigit() else 1,
        "prev": "", "kind": kind, "keys": [{"kid": _b64u(32), "wk": _b64u(256)}],
        "iv": _b64u(12), "ct": ct, "sig": _b64u(64),
    }


def device_send(sender: User, peer: User, mid: str, n: int = 0, *,
                kind: str = "text") -> dict[str, Any]:
    """A v2 `send` frame to `peer`."""
    return {"type": "send", "id": mid, "peer": peer.user_id, "kind": kind,
            "body": envelope(sender, peer, n, kind=kind, size=48 if kind == "receipt" else 64)}


@dataclass
class StreamResult:
    acked: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # error frames about a send
    unanswered: list[str] = field(default_factory=list)  # socket lost before an answer


async def stream(sock: Socket, sender: User, peer: User, ids: list[str],
                 pace: float = 0.0) -> StreamResult:
    """Send each id, one frame at a time (waiting for its ack or error), as a careful
    client does; a socket lost mid-stream leaves the rest unanswered."""
    result = StreamResult()
    for n, mid in enumerate(ids):
        try:
            await sock.send({"type": "send", "id": mid, "kind": "text",
                             "body": envelope(sender, peer, n)})
            while True:
                frame = await sock.recv(30)
                if frame["type"] == "ack" and frame["id"] == mid:
                    result.acked.append(mid)
                    break
                if frame["type"] == "error" and frame.get("id") == mid:
                    result.failed.append(mid)
                    break
        except (ConnectionClosed, TimeoutError):
            result.unanswered.extend(ids[n:])
            return result
        if pace:
            await asyncio.sleep(pace)  # pacing the stream is the point: a client's send rate
    return result


def stored_ids(mongo: Any, db_name: str, room: str) -> list[str]:
    return [d["id"] for d in mongo[db_name].messages.find({"room": room}, {"id": 1})]


async def wait_stored(mongo: Any, db_name: str, room: str, count: int,
                      timeout: float = 60.0) -> list[str]:
    """The ids stored in `room`, once there are at least `count`."""
    async def enough() -> tuple[list[str]] | None:  # a tuple: truthy even when count is 0
        ids = await asyncio.to_thread(stored_ids, mongo, db_name, room)
        return (ids,) if len(ids) >= count else None

    try:
        (ids,) = await eventually(enough, timeout, f"{count} messages stored in {room}", 0.2)
    except AssertionError as exc:
        found = len(await asyncio.to_thread(stored_ids, mongo, db_name, room))
        raise AssertionError(f"{exc}: {found} stored") from None
    return ids


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def close_broker_connections(prefix: str) -> int:
    """Close this stack's AMQP connections (named by their prefix) the way a broker
    restart would; other stacks on the broker are left alone. Returns how many."""
    import json
    import subprocess

    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties",
         "--formatter", "json"], capture_output=True, text=True, timeout=30, check=True)
    closed = 0
    for conn in json.loads(out.stdout or "[]"):
        props = {p[0]: p[2] for p in conn["client_properties"]}
        if str(props.get("connection_name", "")).startswith(prefix):
            pid = conn["pid"].removeprefix("#PID")
            subprocess.run(["rabbitmqctl", "-q", "close_connection", pid, "duet fault test"],
                           capture_output=True, timeout=30, check=False)
            closed += 1
    return closed


def drop_broker_names(stack: Stack) -> None:
    """Delete the exchanges and durable queues the stack declared on the broker."""
    async def drop() -> None:
        queues, exchanges = Names(prefix=stack.prefix).durable_names()
        conn = await aio_pika.connect(stack.amqp_url.split(",")[0])
        async with conn:
            ch = await conn.channel()
            for q in queues:  # deleting what does not exist is a no-op
                await ch.queue_delete(q)
            for x in exchanges:
                await ch.exchange_delete(x)

    asyncio.run(drop())


async def dead_letters(channel: Any, names: Any) -> int:
    """Messages waiting in the stack's dead-letter queue."""
    dead = await channel.declare_queue(names.dead_letter_queue, passive=True)
    return int(dead.declaration_result.message_count or 0)


async def wait_dead_letters(channel: Any, names: Any, count: int, what: str,
                            timeout: float = 15.0) -> int:
    """Until the dead-letter queue holds `count` messages; fails naming `what`."""
    async def enough() -> tuple[int] | None:
        n = await dead_letters(channel, names)
        return (n,) if n >= count else None

    (n,) = await eventually(enough, timeout, f"{what} dead-lettered", 0.2)
    return n


async def declare_small_persist_queue(amqp_url: str, names: Names) -> None:
    """The durable path, its duet.persist a quorum queue of at most one message that
    refuses publishes past it (`x-overflow: reject-publish`), filled past it: RabbitMQ
    nacks a chat message published then, while still routing it to the gateways. For a
    gateway started with DUET_DECLARE_TOPOLOGY=false, and no persister."""
    settings = ServiceSettings()
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await declare_exchange(channel, names)
        dead = await channel.declare_exchange(names.dead_letter_exchange,
                                              aio_pika.ExchangeType.FANOUT, durable=True)
        dead_letters = await channel.declare_queue(names.dead_letter_queue, durable=True,
                                                   arguments={"x-queue-type": "quorum"})
        await dead_letters.bind(dead)
        queue = await channel.declare_queue(names.persist_queue, durable=True, arguments={
            "x-queue-type": "quorum", "x-max-length": 1, "x-overflow": "reject-publish"})
        await queue.bind(exchange, "room.#")
        filler = await connection.channel(publisher_confirms=False)
        for _ in range(3):  # full (no persister runs here); those past the limit are dropped
            await filler.default_exchange.publish(aio_pika.Message(b"filler"), queue.name)
        await asyncio.sleep(0.2)
        await declare_audit_stream(channel, names, settings.audit_max_age,
                                   settings.audit_max_bytes)


async def purge(amqp_url: str, name: str) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        await queue.purge()
