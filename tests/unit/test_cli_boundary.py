"""What the `duet` command line keeps out, without a stack: the broker's client library, the
operators' audit (now `duet-admin`), secrets that come back in a server's words, and plain
http to a server off this machine without --insecure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from support import http_server

from client.profile import Profile

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
LAN = "http://192.168.1.20:8000"  # plain http to another machine


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m client ARGS` with no terminal and no DUET_ setting but `env`'s."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DUET_")}
    return subprocess.run([sys.executable, "-m", "client", *args], cwd=ROOT,
                          env={**clean, **(env or {})}, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=30, check=False)


class EchoingServer(BaseHTTPRequestHandler):
    """Refuses every request with a problem whose detail quotes the request body whole,
    as a careless proxy or server might."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        problem = json.dumps({"code": "unauthorized", "detail": f"refused {body}"}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/problem+json")
        self.send_header("Content-Length", str(len(problem)))
        self.end_headers()
        self.wfile.write(problem)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def echoing_server() -> Iterator[str]:
    """An HTTP server on a free port that echoes each request back in its error detail."""
    with http_server(EchoingServer) as url:
        yield url


def test_import_user_cli_leaves_out_aio_pika() -> None:
    """Importing the user's CLI, parser and commands included, does not import aio-pika."""
    code = ("import sys, client.cli, client.cli.parser; client.cli.parser.build_parser(); "
            "assert 'aio_pika' not in sys.modules, 'aio_pika imported'")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr


def test_run_duet_audit_points_to_duet_admin(tmp_path: Path) -> None:
    """`duet audit ...` exits 2 with one line naming the `duet-admin audit` command to run."""
    result = run("--home", str(tmp_path), "audit", "tail", "--room", "a b", "--follow")
    assert result.returncode == 2 and result.stdout == "", result
    assert result.stderr == ("duet: error: `duet audit` moved to the operators' command: "
                             "duet-admin audit tail --room 'a b' --follow\n")
    assert "audit" not in run("--help").stdout
    assert not any(tmp_path.iterdir())


def test_login_secret_echoed_by_server_is_redacted(echoing_server: str, tmp_path: Path
                                                   ) -> None:
    """A password that comes back in a server's error detail is printed as ***."""
    password = "a long password the server echoes"
    result = run("--server", echoing_server, "--home", str(tmp_path), "login", "alice",
                 env={"DUET_PASSWORD": password, "DUET_PASSPHRASE": "a passphrase"})
    assert result.returncode == 1, result
    [line] = result.stderr.splitlines()
    assert line.startswith("duet: error: refused ") and "***" in line, line
    assert password not in result.stderr + result.stdout
    assert line.endswith("(401 unauthorized)"), line  # the rest of the detail is kept


def test_redact_short_secret_leaves_words_alone() -> None:
    """A secret shorter than MIN_SECRET is not looked for: the words stay whole; a long
    one, and one that holds another, are replaced whole."""
    from argparse import Namespace

    from client.cli.session import MIN_SECRET, Session

    session = Session(Namespace(home="/nonexistent/duet-test", json=False))
    session.keep("wrong")
    session.keep("correct horse")
    session.keep("correct horse battery")
    assert len("wrong") < MIN_SECRET
    assert session.redact("wrong passphrase? (wrong)") == "wrong passphrase? (wrong)"
    assert session.redact("got 'correct horse battery', 'correct horse'") == "got '***', '***'"


def test_cli_refuses_plain_url_off_machine_before_sending(tmp_path: Path) -> None:
    """`duet --server http://LAN login` prints one error naming the URL and --insecure and
    exits 1 (a configuration error) before asking for a secret or sending anything."""
    result = run("--server", LAN, "--home", str(tmp_path), "login", "alice",
                 env={"DUET_PASSWORD": "a long password", "DUET_PASSPHRASE": "a passphrase"})
    assert result.returncode == 1 and result.stdout == "", result
    [line] = result.stderr.splitlines()
    assert line.startswith(f"duet: error: refusing {LAN}: ") and "--insecure" in line, line
    assert not (tmp_path / "profile.json").exists()


def test_cli_refuses_logged_in_device_on_plain_url_off_machine(tmp_path: Path) -> None:
    """A device whose profile names a plain LAN server is refused too, naming --insecure."""
    Profile(tmp_path).save_account(server=LAN, user_id="a" * 24, username="alice",
                                   token="t")
    result = run("--home", str(tmp_path), "inbox")
    assert result.returncode == 1, result
    [line] = result.stderr.splitlines()
    assert line.startswith(f"duet: error: refusing {LAN}: ") and "--insecure" in line, line


def test_cli_insecure_reaches_plain_server_off_loopback(echoing_server: str, tmp_path: Path
                                                        ) -> None:
    """With --insecure (before or after the command) the CLI talks to a plain server whose
    URL does not name loopback: here 0.0.0.0, which Linux connects to this machine."""
    url = echoing_server.replace("127.0.0.1", "0.0.0.0")
    env = {"DUET_PASSWORD": "a long password", "DUET_PASSPHRASE": "a passphrase"}
    refused = run("--server", url, "--home", str(tmp_path), "login", "alice", env=env)
    assert "--insecure" in refused.stderr, refused
    for args in (["--insecure", "--server", url, "--home", str(tmp_path), "login", "alice"],
                 ["--server", url, "--home", str(tmp_path), "login", "alice", "--insecure"]):
        result = run(*args, env=env)
        assert result.returncode == 1, result
        # The echoing server's own refusal: the request was sent.
        assert result.stderr.startswith("duet: error: refused "), result.stderr
