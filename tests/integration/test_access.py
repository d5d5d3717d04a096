"""Who may open a room, and who the gateway says sent a message."""

from __future__ import annotations

import httpx
import pytest
from support import Gateway, befriend, envelope, friends, open_socket, signup
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


async def close_code(url: str, **kwargs: object) -> int | None:
    async with connect(url, **kwargs) as ws:
        with pytest.raises(ConnectionClosed):
            while True:
                await ws.recv()
    assert ws.close_code is not None
    return ws.close_code


async def test_open_socket_without_token_closes_4401(gw: Gateway) -> None:
    """No token: the socket is closed with 4401."""
    async with httpx.AsyncClient() as http:
        b = await signup(http, gw.http)
    assert await close_code(f"{gw.ws}/ws/{b.user_id}") == 4401


async def test_open_socket_with_forged_token_closes_4401(gw: Gateway) -> None:
    """A token signed with another key: 4401."""
    import jwt
    a, b = await friends(gw)
    forged = jwt.encode({"sub": a.user_id, "exp": 4102444800, "aud": "duet"}, "y" * 40)
    assert await close_code(f"{gw.ws}/ws/{b.user_id}",
                            additional_headers={"Authorization": f"Bearer {forged}"}) == 4401


async def test_open_socket_with_subprotocol_token_selects_duet_v1(gw: Gateway) -> None:
    """Browsers pass the token as a `bearer.<token>` subprotocol; the server picks duet.v1."""
    a, b = await friends(gw)
    async with open_socket(gw, a, b, additional_headers={},
                           subprotocols=["duet.v1", f"bearer.{a.token}"]) as sock:
        assert sock.ws.subprotocol == "duet.v1"


async def test_open_socket_to_stranger_closes_4403(gw: Gateway) -> None:
    """A room with someone who is not an accepted friend: 4403, pending requests included."""
    async with httpx.AsyncClient() as http:
        a, b, c = [await signup(http, gw.http) for _ in range(3)]
        r = await http.post(f"{gw.http}/api/friends", json={"username": c.username},
                            headers=a.auth)
        assert r.json()["status"] == "outgoing"
    assert await close_code(f"{gw.ws}/ws/{b.user_id}", additional_headers=a.auth) == 4403
    assert await close_code(f"{gw.ws}/ws/{c.user_id}", additional_headers=a.auth) == 4403
    assert await close_code(f"{gw.ws}/ws/not-a-user", additional_headers=a.auth) == 4403
    assert await close_code(f"{gw.ws}/ws/{a.user_id}", additional_headers=a.auth) == 4403


async def test_send_claiming_other_sender_is_stamped_with_real_sender(gw: Gateway) -> None:
    """A frame's own `sender` is ignored: delivery and storage carry the token's user."""
    async with httpx.AsyncClient() as http:
        a, b = await signup(http, gw.http), await signup(http, gw.http)
        await befriend(http, gw.http, a, b)
        async with open_socket(gw, b, a) as sb, open_socket(gw, a, b) as sa:
            await sa.send({"type": "send", "id": "spoof", "kind": "text", "sender": b.user_id,
                           "body": envelope(a, b, "spoof")})
            await sa.recv_type("ack")
            got = await sb.recv_type("message")
            assert got["sender"] == a.user_id
            await sa.recv_type("stored")
        r = await http.get(f"{gw.http}/api/rooms/{a.user_id}/messages", headers=b.auth)
        assert [m["sender"] for m in r.json()["messages"]] == [a.user_id]


async def test_other_device_of_sender_receives_message_but_not_sending_socket(
        gw: Gateway) -> None:
    """The sender's other sockets get the message; the sending socket gets only its ack."""
    a, b = await friends(gw)
    async with open_socket(gw, a, b) as phone, open_socket(gw, a, b) as laptop:
        await laptop.send({"type": "send", "id": "x1", "kind": "text",
                           "body": envelope(a, b, 1)})
        assert (await laptop.recv_type("ack"))["id"] == "x1"
        assert (await phone.recv_type("message"))["id"] == "x1"
        assert await laptop.quiet("message", 0.5) == []
