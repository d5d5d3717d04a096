"""Typing and presence on the device socket, across gateways: typing is routed but never
stored nor audited; presence follows sockets, heartbeats and a SIGKILLed gateway."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import aio_pika
import httpx
import pymongo
import pytest
from support import Gateway, Stack, User, befriend, device_send, envelope, open_device, signup

from contracts import Names, room_id


@pytest.fixture(scope="module")
def gateways(stack: Stack) -> tuple[Gateway, Gateway]:
    """One persister and two gateways."""
    stack.persister()
    return stack.gateway(), stack.gateway()


async def pair(gw: Gateway) -> tuple[User, User]:
    async with httpx.AsyncClient() as http:
        a, b = await signup(http, gw.http), await signup(http, gw.http)
        await befriend(http, gw.http, a, b)
    return a, b


async def stream_bodies(amqp_url: str, stream: str) -> list[bytes]:
    """Every message body in the audit stream, from its first entry."""
    bodies: list[bytes] = []
    async with await aio_pika.connect(amqp_url) as conn:
        channel = await conn.channel()
        await channel.set_qos(prefetch_count=512)
        queue = await channel.get_queue(stream, ensure=True)
        inbox: asyncio.Queue[Any] = asyncio.Queue()
        tag = await queue.consume(inbox.put, arguments={"x-stream-offset": "first"})
        while True:
            try:
                message = await asyncio.wait_for(inbox.get(), 1.5)
            except TimeoutError:
                break
            bodies.append(message.body)
            await message.ack()
        await queue.cancel(tag)
    return bodies


async def test_typing_crosses_gateways_and_is_neither_stored_nor_audited(
        stack: Stack, gateways: tuple[Gateway, Gateway],
        mongo: pymongo.MongoClient[dict[str, object]]) -> None:
    """Alice types on gateway 1, Bob's device on gateway 2 hears it within a second (Alice
    does not hear her own); MongoDB and the audit stream hold the message she then sends
    but not the typing signal."""
    gw1, gw2 = gateways
    alice, bob = await pair(gw1)
    signal_body = envelope(alice, bob, kind="typing", size=40)
    async with open_device(gw1, alice) as sa, open_device(gw2, bob) as sb:
        started = time.monotonic()
        await sa.send({"type": "typing", "peer": bob.user_id, "body": signal_body})
        event = await sb.recv_type("typing", timeout=1.0)
        assert time.monotonic() - started < 1.0
        assert event == {"type": "typing", "room": room_id(alice.user_id, bob.user_id),
                         "sender": alice.user_id, "body": signal_body}
        message = device_send(alice, bob, "after-typing")
        await sa.send(message)
        await sa.recv_type("stored", timeout=15)
        assert await sa.quiet("typing", 0.3) == []
    needle, control = signal_body["ct"].encode(), message["body"]["ct"].encode()
    db = mongo[stack.db_name]
    stored = [str(doc) for name in db.list_collection_names() for doc in db[name].find()]
    assert any(control.decode() in d for d in stored), "the search must see the message"
    assert not any(needle.decode() in d for d in stored), "a typing signal was stored"
    bodies = await stream_bodies(stack.amqp_url, Names(prefix=stack.prefix).audit_stream)
    assert any(control in b for b in bodies), "the audit search must see the message"
    assert not any(needle in b for b in bodies), "a typing signal was audited"


async def test_typing_faster_than_its_limit_is_dropped_with_an_error(
        gateways: tuple[Gateway, Gateway]) -> None:
    """Past DUET_TYPING_BURST at once, a typing signal is answered rate_limited and not
    delivered; the socket stays open."""
    gw1, gw2 = gateways
    alice, bob = await pair(gw1)
    async with open_device(gw1, alice) as sa, open_device(gw2, bob) as sb:
        for _ in range(5):
            await sa.send({"type": "typing", "peer": bob.user_id,
                           "body": envelope(alice, bob, kind="typing", size=40)})
        assert (await sa.recv_type("error"))["code"] == "rate_limited"
        await sb.collect("typing", 3)  # the burst
        assert await sb.quiet("typing", 1.0) == []  # and no more
        await sa.send(device_send(alice, bob, "still-open"))
        assert (await sa.recv_type("ack"))["id"] == "still-open"


# docs/protocol.md: a SIGKILLed gateway's users are offline within 1.2 × DUET_PRESENCE_TTL_S.
OFFLINE_WITHIN_S = 1.2 * 6


async def presence_of(sock: Any, user: User, online: bool, timeout: float) -> float:
    """Seconds until `sock` hears `user` is (or is not) online."""
    started = time.monotonic()
    while True:
        left = timeout - (time.monotonic() - started)
        event = await sock.recv_type("presence", timeout=max(left, 0.01))
        if event["user"] == user.user_id and event["online"] is online:
            return time.monotonic() - started


async def test_presence_follows_sockets_across_gateways_and_a_killed_gateway(
        stack: Stack, gateways: tuple[Gateway, Gateway]) -> None:
    """Alice (gateway 1) sees Bob online while any of his sockets is open on any gateway,
    offline within 7.2 s of his last one closing and of his gateway being SIGKILLed; a new
    socket of hers gets the current state at once."""
    gw1, gw2 = gateways
    alice, bob = await pair(gw1)
    async with open_device(gw1, alice) as sa:
        async with open_device(gw2, bob):
            await presence_of(sa, bob, True, 5)
            async with open_device(gw1, bob):
                async with open_device(gw1, alice) as sa2:  # the snapshot at connect
                    await presence_of(sa2, bob, True, 2)
            # One of his two sockets closed: still online.
            assert [e for e in await sa.quiet("presence", 1.0) if not e["online"]] == []
        assert await presence_of(sa, bob, False, OFFLINE_WITHIN_S) < OFFLINE_WITHIN_S
        doomed = stack.gateway()
        async with open_device(doomed, bob):
            await presence_of(sa, bob, True, 5)
            doomed.kill(signal.SIGKILL)
            killed = time.monotonic()
            await presence_of(sa, bob, False, OFFLINE_WITHIN_S + 2)
            assert time.monotonic() - killed < OFFLINE_WITHIN_S
    async with open_device(gw1, alice) as sa:
        assert [e for e in await sa.quiet("presence", 1.0) if e["user"] == bob.user_id] == []


async def test_hidden_presence_is_never_shown(gateways: tuple[Gateway, Gateway]) -> None:
    """A user who hides presence is not announced, not in snapshots, not online over
    REST; hiding while online announces offline."""
    gw1, gw2 = gateways
    alice, bob = await pair(gw1)
    async with httpx.AsyncClient() as http:
        r = await http.put(f"{gw1.http}/api/settings", json={"hide_presence": True},
                           headers=bob.auth)
        assert r.status_code == 200 and r.json() == {"read_receipts": True,
                                                      "hide_presence": True}
    async with open_device(gw1, alice) as sa:
        async with open_device(gw2, bob), open_device(gw1, bob):
            async with open_device(gw2, alice) as sa2:
                assert await sa2.quiet("presence", 1.5) == []
            async with httpx.AsyncClient() as http:
                r = await http.get(f"{gw2.http}/api/conversations", headers=alice.auth)
                assert r.json()["conversations"][0]["online"] is False
            assert await sa.quiet("presence", 1.5) == []
    async with open_device(gw1, alice) as sa, open_device(gw2, bob):
        async with httpx.AsyncClient() as http:
            await http.put(f"{gw1.http}/api/settings", json={"hide_presence": False},
                           headers=bob.auth)
            await presence_of(sa, bob, True, 5)
            await http.put(f"{gw1.http}/api/settings", json={"hide_presence": True},
                           headers=bob.auth)
            await presence_of(sa, bob, False, 5)
