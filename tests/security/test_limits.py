"""Per-socket rate limit, per-address socket cap, login throttling, idempotent retries."""

from __future__ import annotations

from contextlib import AsyncExitStack

import httpx
import pytest
from support import Gateway, envelope, friends, open_socket, signup
from websockets.exceptions import ConnectionClosed


async def test_flooding_socket_closed_1008_others_unaffected(gw: Gateway) -> None:
    """A socket past its token bucket is closed with 1008; another socket keeps working."""
    a, b = await friends(gw)
    async with open_socket(gw, a, b) as flood, open_socket(gw, b, a) as calm:
        with pytest.raises(ConnectionClosed):
            for i in range(200):
                await flood.send({"type": "send", "id": f"f{i}", "kind": "text",
                                  "body": envelope(a, b, i)})
            while True:
                await flood.recv(5)
        assert flood.ws.close_code == 1008 and "rate" in (flood.ws.close_reason or "")
        await calm.send({"type": "send", "id": "calm", "kind": "text", "body": envelope(b, a)})
        assert (await calm.recv_type("ack"))["id"] == "calm"
        got = await calm.collect("message", 40)  # the flood's accepted burst was delivered
        assert len({m["id"] for m in got}) == 40


async def test_too_many_sockets_from_one_address_closed_1008(gw: Gateway) -> None:
    """The seventh socket from one address is refused with 1008; closing one frees a slot."""
    a, b = await friends(gw)
    async with AsyncExitStack() as stack:
        for _ in range(6):
            await stack.enter_async_context(open_socket(gw, a, b))
        async with open_socket(gw, a, b, ready=False) as extra:
            with pytest.raises(ConnectionClosed):
                await extra.recv(5)
            assert extra.ws.close_code == 1008
    async with open_socket(gw, a, b) as again:
        assert again.ws.close_code is None


async def test_login_failures_throttled_per_user_with_retry_after(gw: Gateway) -> None:
    """After 3 wrong passwords the 4th attempt, even a right one, gets 429 + Retry-After."""
    async with httpx.AsyncClient() as http:
        u = await signup(http, gw.http)
        for _ in range(3):
            r = await http.post(f"{gw.http}/api/login",
                                json={"username": u.username, "password": "wrong password"})
            assert r.status_code == 401
        r = await http.post(f"{gw.http}/api/login",
                            json={"username": u.username, "password": u.password})
        assert r.status_code == 429 and r.json()["code"] == "rate_limited"
        assert int(r.headers["retry-after"]) > 0
        other = await signup(http, gw.http)  # another user is not affected
        assert other.token


async def test_retry_after_lost_ack_answered_from_storage(gw: Gateway) -> None:
    """A resend marked retry of a stored message is acked with the stored cursor, not
    published again: the peer sees it once."""
    a, b = await friends(gw)
    frame = {"type": "send", "id": "once", "kind": "text", "body": envelope(a, b)}
    async with open_socket(gw, b, a) as sb:
        async with open_socket(gw, a, b) as sa:
            await sa.send(frame)
            first = await sa.recv_type("ack")
            await sa.recv_type("stored")
        # The "lost ack" case: a new connection resends with retry=true.
        async with open_socket(gw, a, b) as sa2:
            await sa2.send({**frame, "retry": True})
            again = await sa2.recv_type("ack")
        assert again["cursor"] == first["cursor"] and again["ts"] == first["ts"]
        assert [m["id"] for m in await sb.collect("message", 1)] == ["once"]
        assert await sb.quiet("message", 0.5) == []
    async with httpx.AsyncClient() as http:
        r = await http.get(f"{gw.http}/api/rooms/{a.user_id}/messages", headers=b.auth)
    assert [m["id"] for m in r.json()["messages"]] == ["once"]
