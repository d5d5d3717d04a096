"""RabbitMQ for development: probe the one at DUET_AMQP_URL, or start Debian's server.

The project's machines already run one on 127.0.0.1:5672. Elsewhere `ensure_rabbit()`
runs `rabbitmq-server -detached` (Debian package rabbitmq-server) when the URL names this
machine, waits until it answers, and runs `rabbitmqctl stop` on exit — only if it started it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from .errors import StackError, StartFailed, ToolMissing
from .ports import is_loopback

log = logging.getLogger(__name__)

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
INSTALL_HINT = (
    "install it with `sudo apt-get install rabbitmq-server` and run this again (it starts "
    "the server when none runs), or point DUET_AMQP_URL at a running broker"
)


def amqp_address(url: str) -> tuple[str, int]:
    """(host, port) of an amqp:// or amqps:// URL, with the scheme's default port."""
    parts = urlsplit(url)
    default = 5671 if parts.scheme == "amqps" else 5672
    return parts.hostname or "127.0.0.1", parts.port or default


def rabbit_answers(url: str, timeout: float = 1.0) -> bool:
    """True when an AMQP 0-9-1 server answers at the broker address in `url`.

    More than a TCP connect: a proxy or another server can hold the port. We send the
    protocol header; a broker replies with a method frame (Connection.Start, type 1).
    """
    host, port = amqp_address(url)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(PROTOCOL_HEADER)
            return sock.recv(1) == b"\x01"
    except OSError:
        return False


def redact(url: str) -> str:
    """`url` without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


@asynccontextmanager
async def ensure_rabbit(url: str, start_timeout: float = 60.0) -> AsyncIterator[str]:
    """Yield `url` once a broker answers there, starting a local one if none does. A list
    of nodes (a cluster's) is used when any answers; no node of it is started here."""
    if "," in url:
        nodes = [u.strip() for u in url.split(",") if u.strip()]
        if not any([await asyncio.to_thread(rabbit_answers, u) for u in nodes]):
            raise StartFailed("RabbitMQ", "no node of DUET_AMQP_URL answers")
        yield url
        return
    if await asyncio.to_thread(rabbit_answers, url):
        log.info("using RabbitMQ at %s", redact(url))
        yield url
        return
    host, port = amqp_address(url)
    if not is_loopback(host):
        raise StartFailed("RabbitMQ", f"nothing answers at {host}:{port} (DUET_AMQP_URL)")
    server = shutil.which("rabbitmq-server")
    if server is None:
        raise ToolMissing("rabbitmq-server", f"no broker answers at {host}:{port}; {INSTALL_HINT}")
    # A node that runs but does not listen where the URL says is not ours to start or stop.
    if await _node_running():
        raise StartFailed(
            "RabbitMQ",
            f"a node already runs on this machine but nothing answers at {host}:{port}; "
            "check DUET_AMQP_URL",
        )
    await _run("rabbitmq-server", [server, "-detached"], {"RABBITMQ_NODE_PORT": str(port)})
    try:
        await _wait_for_port(host, port, start_timeout)
        log.info("RabbitMQ started on %s:%s", host, port)
        yield url
    finally:
        # -detached leaves no child of ours to signal; rabbitmqctl asks the node to stop.
        ctl = shutil.which("rabbitmqctl")
        if ctl is None:
            log.error("rabbitmqctl not found; stop RabbitMQ yourself")
        else:
            try:
                await _run("rabbitmqctl", [ctl, "stop"], {})
                log.info("RabbitMQ stopped")
            except StackError as exc:
                log.error("could not stop RabbitMQ: %s", exc)


async def _node_running() -> bool:
    """True when this machine's default RabbitMQ node answers `rabbitmq-diagnostics ping`."""
    diagnostics = shutil.which("rabbitmq-diagnostics")
    if diagnostics is None:
        return False
    try:
        await _run("rabbitmq-diagnostics", [diagnostics, "-q", "ping"], {})
    except StackError:
        return False
    return True


async def _run(name: str, argv: list[str], extra_env: dict[str, str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **extra_env},
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        text = out.decode(errors="replace").strip()
        raise StartFailed(name, f"`{' '.join(argv)}` exited with {proc.returncode}: {text}")


async def _wait_for_port(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    url = f"amqp://{host}:{port}/"
    while not await asyncio.to_thread(rabbit_answers, url, 0.5):
        if time.monotonic() > deadline:
            raise StartFailed("RabbitMQ", f"nothing answers at {host}:{port} after {timeout:.0f} s")
        await asyncio.sleep(0.5)
