"""No service log line holds a message body, a token or a password."""

from __future__ import annotations

import httpx
import support
from support import Gateway, befriend, envelope, open_socket, signup, stream


async def test_service_logs_hold_no_body_token_or_password(gw: Gateway) -> None:
    """A conversation with failures on every path (bad logins, bad frames, a forged token,
    a slow consumer) leaves no secret or ciphertext in any service log."""
    async with httpx.AsyncClient() as http:
        a, b = await signup(http, gw.http), await signup(http, gw.http)
        await befriend(http, gw.http, a, b)
        await http.post(f"{gw.http}/api/login",
                        json={"username": a.username, "password": a.password + "x"})
        await http.get(f"{gw.http}/api/friends", headers={"Authorization": f"Bearer {a.token}x"})
    async with open_socket(gw, b, a), open_socket(gw, a, b) as sa:
        await stream(sa, a, b, [f"s{i}" for i in range(20)])
        await sa.send({"type": "send", "id": "bad", "kind": "text",
                       "body": {**envelope(a, b), "extra": "x"}})
        await sa.recv_type("error")
    logs = [p.read_text() for p in gw.log_path.parent.glob("*.log")]
    assert logs and any(logs), "the services wrote no logs at all"
    assert support.leaks() == []


def test_leak_scan_finds_a_planted_secret(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The scan does find a secret planted in a log file (so a clean result means something)."""
    secret = "planted-secret-0123456789"
    (tmp_path / "svc.log").write_text(f"INFO something {secret} happened\n")
    support.SECRETS.add(secret)
    support.LOG_DIRS.append(tmp_path)
    try:
        assert any("svc.log" in line for line in support.leaks())
    finally:
        support.LOG_DIRS.remove(tmp_path)
        support.SECRETS.discard(secret)
