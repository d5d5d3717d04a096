"""Unfriend and block: the pair's v1 sockets close with 4403 and v2 sends are refused on
every gateway at once; a blocked user cannot open a room, deliver or be seen asking; friend
requests per day are counted across gateways."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import (
    Gateway,
    Socket,
    Stack,
    User,
    befriend,
    device_send,
    open_device,
    open_socket,
    signup,
)
from test_cli import duet, ok, register_pair
from websockets.exceptions import ConnectionClosed

from client import Client
from contracts.codes import FORBIDDEN_ROOM

pytestmark = pytest.mark.timeout(120)
AT_ONCE_S = 2.0  # a notice crosses the broker in milliseconds; this is the test's bound


@pytest.fixture(scope="module")
def gw2(stack: Stack, gw: Gateway) -> Gateway:
    """A second gateway of the same stack."""
    return stack.gateway()


async def closed_with(sock: Socket, timeout: float = AT_ONCE_S) -> int | None:
    """Read until the server closes the socket; its close code."""
    deadline = time.monotonic() + timeout
    with pytest.raises(ConnectionClosed):
        while True:
            await sock.recv(max(0.01, deadline - time.monotonic()))
    return sock.ws.close_code


async def send_until(sock: Socket, sender: User, peer: User, code: str) -> dict[str, Any]:
    """Send to `peer` until the gateway answers with this error code (within AT_ONCE_S)."""
    deadline = time.monotonic() + AT_ONCE_S
    n = 0
    while True:
        n += 1
        await sock.send(device_send(sender, peer, f"probe-{n}", n))
        while True:
            frame = await sock.recv(max(0.01, deadline - time.monotonic()))
            if frame["type"] in ("ack", "error"):
                break
        if frame["type"] == "error" and frame["code"] == code:
            return frame
        assert time.monotonic() < deadline, f"still {frame} after {AT_ONCE_S} s"


async def friend_list(http: httpx.AsyncClient, base: str, user: User) -> list[dict[str, Any]]:
    r = await http.get(f"{base}/api/friends", headers=user.auth)
    assert r.status_code == 200, r.text
    friends: list[dict[str, Any]] = r.json()["friends"]
    return friends


async def test_unfriend_closes_rooms_and_refuses_sends_on_two_gateways(
        gw: Gateway, gw2: Gateway) -> None:
    """Unfriending on one gateway closes the pair's v1 sockets (4403) on both and makes the
    other's cached v2 friendship refuse the next send (not_friends)."""
    async with httpx.AsyncClient() as http:
        a, b = await signup(http, gw.http), await signup(http, gw.http)
        await befriend(http, gw.http, a, b)
        async with open_socket(gw, a, b) as a_room, open_socket(gw2, b, a) as b_room, \
                open_device(gw2, b) as b_dev:
            await b_dev.send(device_send(b, a, "warm", 0))  # gw2 now caches the friendship
            assert (await b_dev.recv_type("ack"))["id"] == "warm"
            r = await http.delete(f"{gw.http}/api/friends/{b.user_id}", headers=a.auth)
            assert r.status_code == 204, r.text
            assert await closed_with(a_room) == FORBIDDEN_ROOM
            assert await closed_with(b_room) == FORBIDDEN_ROOM
            refused = await send_until(b_dev, b, a, "not_friends")
            assert refused["id"] == "probe-1", "the first send after the unfriend is refused"
        assert await friend_list(http, gw.http, a) == []
        assert await friend_list(http, gw2.http, b) == []
        r = await http.delete(f"{gw.http}/api/friends/{b.user_id}", headers=a.auth)
        assert r.status_code == 404 and r.json()["code"] == "not_found"
        async with open_socket(gw2, b, a, ready=False) as late:
            assert await closed_with(late) == FORBIDDEN_ROOM


async def test_unfriend_withdraws_and_declines_requests(gw: Gateway) -> None:
    """DELETE /api/friends/{id} cancels a pending request from either side."""
    async with httpx.AsyncClient() as http:
        a, b = await signup(http, gw.http), await signup(http, gw.http)
        for remover, other in ((a, b), (b, a)):  # withdrawn by the asker, declined by b
            r = await http.post(f"{gw.http}/api/friends", json={"username": b.username},
                                headers=a.auth)
            assert r.status_code == 201 and r.json()["status"] == "outgoing", r.text
            r = await http.delete(f"{gw.http}/api/friends/{other.user_id}",
                                  headers=remover.auth)
            assert r.status_code == 204, r.text
            assert await friend_list(http, gw.http, a) == []
            assert await friend_list(http, gw.http, b) == []
        r = await http.delete(f"{gw.http}/api/friends/{a.user_id}", headers=a.auth)
        assert r.status_code == 404
        r = await http.delete(f"{gw.http}/api/friends/not-an-id", headers=a.auth)
        assert r.status_code == 404


async def test_block_ends_friendship_and_hides_requests(gw: Gateway, gw2: Gateway) -> None:
    """A block closes the blocked user's room socket on another gateway, refuses their
    sends and rooms, and answers their new request as if pending while the blocker never
    sees it; unblocking lifts it without bringing the friendship back."""
    async with httpx.AsyncClient() as http:
        a, b = await signup(http, gw.http), await signup(http, gw.http)
        await befriend(http, gw.http, a, b)
        async with open_socket(gw2, b, a) as b_room, open_device(gw2, b) as b_dev:
            await b_dev.send(device_send(b, a, "warm", 0))
            assert (await b_dev.recv_type("ack"))["id"] == "warm"
            r = await http.post(f"{gw.http}/api/blocks", json={"username": b.username},
                                headers=a.auth)
            assert r.status_code == 201, r.text
            assert r.json()["user_id"] == b.user_id
            assert await closed_with(b_room) == FORBIDDEN_ROOM
            await send_until(b_dev, b, a, "not_friends")
        r = await http.post(f"{gw.http}/api/blocks", json={"username": b.username},
                            headers=a.auth)
        assert r.status_code == 200, "blocking twice is not an error"
        r = await http.get(f"{gw.http}/api/blocks", headers=a.auth)
        assert [x["user_id"] for x in r.json()["blocks"]] == [b.user_id]
        async with open_socket(gw, b, a, ready=False) as late:
            assert await closed_with(late) == FORBIDDEN_ROOM
        # The blocked user's request looks like any unanswered one; the blocker never sees it.
        r = await http.post(f"{gw2.http}/api/friends", json={"username": a.username},
                            headers=b.auth)
        assert r.status_code == 201 and r.json()["status"] == "outgoing", r.text
        assert await friend_list(http, gw.http, a) == []
        r = await http.post(f"{gw.http}/api/friends/{b.user_id}/accept", headers=a.auth)
        assert r.status_code == 404
        # The blocker must unblock first to ask; nobody can block themselves.
        r = await http.post(f"{gw.http}/api/friends", json={"username": b.username},
                            headers=a.auth)
        assert r.status_code == 409 and "unblock" in r.json()["detail"], r.text
        r = await http.post(f"{gw.http}/api/blocks", json={"username": a.username},
                            headers=a.auth)
        assert r.status_code == 409
        r = await http.post(f"{gw.http}/api/blocks", json={"username": "nobody_x_12"},
                            headers=a.auth)
        assert r.status_code == 404
        # Unblocking: the request b made meanwhile shows now; no friendship came back.
        r = await http.delete(f"{gw.http}/api/blocks/{b.user_id}", headers=a.auth)
        assert r.status_code == 204, r.text
        r = await http.delete(f"{gw.http}/api/blocks/{b.user_id}", headers=a.auth)
        assert r.status_code == 404
        assert await friend_list(http, gw.http, a) == [
            {"user_id": b.user_id, "username": b.username, "status": "incoming"}]
        r = await http.get(f"{gw.http}/api/blocks", headers=a.auth)
        assert r.json()["blocks"] == []


async def test_friend_requests_per_day_counted_across_gateways(stack: Stack) -> None:
    """With a limit of 3 a day, the fourth request is refused with 429 whichever gateway
    takes it; another user is not affected."""
    one = stack.gateway(DUET_FRIEND_REQUESTS_PER_DAY="3")
    two = stack.gateway(DUET_FRIEND_REQUESTS_PER_DAY="3")
    async with httpx.AsyncClient() as http:
        asker = await signup(http, one.http)
        others = [await signup(http, one.http) for _ in range(4)]
        for gw, other in zip((one, two, one), others, strict=False):
            r = await http.post(f"{gw.http}/api/friends", json={"username": other.username},
                                headers=asker.auth)
            assert r.status_code == 201, r.text
        r = await http.post(f"{two.http}/api/friends", json={"username": others[3].username},
                            headers=asker.auth)
        assert r.status_code == 429, r.text
        assert r.json()["code"] == "rate_limited"
        assert 0 < int(r.headers["Retry-After"]) <= 86400
        r = await http.post(f"{one.http}/api/friends", json={"username": asker.username},
                            headers=others[3].auth)
        assert r.status_code == 201, r.text


async def test_sdk_and_cli_unfriend_block_unblock(
        gw: Gateway, sdk_pair: tuple[Client, Client, str, str], tmp_path: Path) -> None:
    """The SDK's unfriend, block, blocks and unblock, and `duet unfriend`, `duet block`,
    `duet blocks`, `duet unblock` do what the REST calls do."""
    a, b, na, nb = sdk_pair
    await a.unfriend(nb)
    assert await a.friends() == [] and await b.friends() == []
    blocked = await b.block(na)
    assert blocked["username"] == na
    assert [x["username"] for x in await b.blocks()] == [na]
    await b.unblock(na)
    assert await b.blocks() == []

    x, y, hx, _ = await asyncio.to_thread(register_pair, gw, tmp_path / "cli")
    ok(await asyncio.to_thread(duet, gw, hx, "unfriend", y))
    assert ok(await asyncio.to_thread(duet, gw, hx, "--json", "friends", "list")).lines() == []
    ok(await asyncio.to_thread(duet, gw, hx, "block", y))
    listed = ok(await asyncio.to_thread(duet, gw, hx, "--json", "blocks")).lines()
    assert [(e["type"], e["username"]) for e in listed] == [("blocked", y)]
    ok(await asyncio.to_thread(duet, gw, hx, "unblock", y))
    again = await asyncio.to_thread(duet, gw, hx, "unblock", y)
    assert again.code == 1 and "not among the users you blocked" in again.err, str(again)
    assert ok(await asyncio.to_thread(duet, gw, hx, "--json", "blocks")).lines() == []
