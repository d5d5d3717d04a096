"""Clients speak plain http:// (and ws://) only to this machine unless told insecure
(client/transport.py); the `duet` command line's --insecure is in test_cli_boundary.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from client import Client
from client.errors import ConfigError, InsecureServer
from client.profile import Profile
from client.transport import check_server_url, is_loopback

pytestmark = pytest.mark.timeout(60)

LAN = "http://192.168.1.20:8000"


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8000", "http://127.45.6.7", "http://[::1]:8000", "http://localhost:8000",
    "http://LOCALHOST/", "ws://127.0.0.1:8000/ws", "ws://[::1]/ws",
    "http://[::ffff:127.0.0.1]:8000",
])
def test_check_plain_url_to_loopback_allowed(url: str) -> None:
    """Plain http and ws to 127.0.0.0/8, ::1 or localhost pass without the flag."""
    assert check_server_url(url, insecure=False) == url


@pytest.mark.parametrize("url", [
    LAN, "ws://192.168.1.20:8000/ws", "http://10.0.0.5", "http://[fe80::1]:8000",
    "http://chat.example.org", "http://localhost.example.org", "http://0.0.0.0:8000",
    "HTTP://192.168.1.20",
])
def test_check_plain_url_off_machine_refused(url: str) -> None:
    """Plain http and ws to a LAN address or any other host raise InsecureServer, whose
    message names the URL and the flag that allows it."""
    with pytest.raises(InsecureServer) as refused:
        check_server_url(url, insecure=False, flag="--insecure")
    assert isinstance(refused.value, ConfigError)
    assert refused.value.url == url
    assert url in str(refused.value) and "--insecure" in str(refused.value)


@pytest.mark.parametrize("url", [
    "https://192.168.1.20:8000", "https://chat.example.org", "wss://10.0.0.5/ws",
    "https://127.0.0.1:8000",
])
def test_check_tls_url_always_allowed(url: str) -> None:
    """https and wss pass to any host, flag or not."""
    assert check_server_url(url, insecure=False) == url


def test_check_insecure_lets_plain_url_through() -> None:
    """With insecure set, plain http to a LAN address passes."""
    assert check_server_url(LAN, insecure=True) == LAN


def test_check_refusal_hides_url_credentials() -> None:
    """A user:password part of the URL is not repeated in the refusal."""
    with pytest.raises(InsecureServer) as refused:
        check_server_url("http://me:hunter22@10.0.0.5:8000", insecure=False)
    assert "hunter22" not in str(refused.value)
    assert refused.value.url == "http://10.0.0.5:8000"


def test_is_loopback_judges_the_host_as_written() -> None:
    """Addresses in 127.0.0.0/8 and ::1 and the name localhost are loopback; other names
    are not, whatever they resolve to."""
    assert all(map(is_loopback, ["127.0.0.1", "127.255.255.254", "::1", "localhost"]))
    assert not any(map(is_loopback, ["", "128.0.0.1", "::2", "localhost6", "my-laptop"]))


async def test_sdk_client_refuses_plain_url_off_machine(tmp_path: Path) -> None:
    """Client(url) refuses plain http to a LAN address, also when the URL comes from the
    profile, and takes it with insecure=True."""
    with pytest.raises(InsecureServer, match="insecure=True"):
        Client(LAN, home=tmp_path)
    Profile(tmp_path).save_account(server=LAN, user_id="a" * 24, username="alice",
                                   token="t")
    with pytest.raises(InsecureServer):
        Client(home=tmp_path)
    client = Client(home=tmp_path, insecure=True)
    assert client.url == LAN
    await client.close()
    Client("http://127.0.0.1:8000", home=tmp_path / "other")  # loopback needs no flag
