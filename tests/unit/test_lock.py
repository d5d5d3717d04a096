"""Reproducible installs: the lock files pin every dependency, with hashes, within the
ranges pyproject.toml asks for; CI, the Dockerfile and `make run` install from them; and
the uvicorn internals gateway/wsprotocol.py subclasses exist in the pinned uvicorn."""

from __future__ import annotations

import asyncio
import inspect
import re
import tomllib
from pathlib import Path

import uvicorn
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from uvicorn.config import Config
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

from gateway.wsprotocol import Inbox, LeanWebSocketProtocol

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
_PIN = re.compile(r"^([A-Za-z0-9._-]+)==(\S+) \\\n((?:\s+--hash=sha256:[0-9a-f]{64}(?: \\)?\n)+)",
                  re.M)


def _pins(lock: str) -> dict[str, str]:
    text = (ROOT / "requirements" / lock).read_text()
    pins = {canonicalize_name(m[1]): m[2] for m in _PIN.finditer(text)}
    # Every requirement line is a pin with hashes (pip --require-hashes needs all of them).
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith((" ", "#"))]
    assert len(lines) == len(pins), "a lock line without a version or hashes"
    return pins


def _check(requirements: list[str], pins: dict[str, str]) -> None:
    for line in requirements:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in the lock"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"{req.name}=={pins[name]} is outside {req.specifier}"


def test_the_locks_pin_every_dependency_within_its_range() -> None:
    runtime, dev = _pins("runtime.lock"), _pins("dev.lock")
    _check(PROJECT["dependencies"], runtime)
    _check(PROJECT["dependencies"] + PROJECT["optional-dependencies"]["dev"], dev)
    # The runtime image carries none of the test tools.
    assert "pytest" not in runtime and "playwright" not in runtime


def test_ci_the_image_and_make_run_install_from_the_locks() -> None:
    bootstrap = (ROOT / "scripts" / "bootstrap.sh").read_text()  # make test, make run
    assert "--require-hashes -r requirements/dev.lock" in bootstrap
    assert "--no-deps -e ." in bootstrap
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes -r requirements/runtime.lock" in dockerfile
    assert re.search(r"pip install --no-deps \.", dockerfile)


def test_uvicorn_is_the_version_wsprotocol_was_written_against() -> None:
    (line,) = [d for d in PROJECT["dependencies"] if d.startswith("uvicorn")]
    assert Requirement(line).specifier.contains(uvicorn.__version__)


def test_the_uvicorn_internals_wsprotocol_replaces_exist() -> None:
    """LeanWebSocketProtocol swaps `queue` for an Inbox (so uvicorn may call on it only what
    Inbox has) and empties `request`/`response` once `handshake_complete`."""
    source = inspect.getsource(WebSocketsSansIOProtocol)
    used = set(re.findall(r"self\.queue\.(\w+)", source))
    assert used and used <= {n for n in dir(Inbox) if not n.startswith("_")}, used
    for name in ("request", "response", "handshake_complete"):
        assert re.search(rf"self\.{name}\b", source), f"uvicorn no longer has self.{name}"

    async def make() -> None:
        config = Config(app=lambda scope, receive, send: None, ws="websockets-sansio")
        config.load()
        stock = WebSocketsSansIOProtocol(config=config, server_state=ServerState(), app_state={})
        lean = LeanWebSocketProtocol(config=config, server_state=ServerState(), app_state={})
        assert isinstance(stock.queue, asyncio.Queue) and isinstance(lean.queue, Inbox)

    asyncio.run(make())
