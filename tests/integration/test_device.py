"""The v2 device socket: every room of a user over one socket, across gateways, with one
resume for all of them; O(1) broker bindings per user; read positions and unread counts."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections import Counter
from typing import Any

import httpx
import pymongo
import pytest
from bson import ObjectId
from support import (
    Gateway,
    Socket,
    Stack,
    User,
    befriend,
    device_send,
    eventually,
    open_device,
    open_socket,
    signup,
    wait_stored,
)

from contracts import Names, room_id


@pytest.fixture(scope="module")
def gateways(stack: Stack) -> tuple[Gateway, Gateway]:
    """One persister and two gateways with known node ids."""
    stack.persister()
    return stack.gateway(DUET_NODE="dev1"), stack.gateway(DUET_NODE="dev2")


async def users(gw: Gateway, n: int) -> list[User]:
    async with httpx.AsyncClient() as http:
        return [await signup(http, gw.http) for _ in range(n)]


async def befriend_all(gw: Gateway, a: User, others: list[User]) -> None:
    async with httpx.AsyncClient() as http:
        for o in others:
            await befriend(http, gw.http, a, o)


async def send_all(sock: Socket, sender: User, peer: User, ids: list[str]) -> None:
    """Send every id (pipelined) and wait for all their acks."""
    for n, mid in enumerate(ids):
        await sock.send(device_send(sender, peer, mid, n))
    acks = await sock.collect("ack", len(ids), timeout=30)
    assert sorted(a["id"] for a in acks) == sorted(ids)
    assert {a["room"] for a in acks} == {room_id(sender.user_id, peer.user_id)}


def cursors(frames: list[dict[str, Any]]) -> dict[str, str]:
    """The newest cursor per room among these message frames (a device's sync map)."""
    out: dict[str, str] = {}
    for f in frames:
        out[f["room"]] = max(out.get(f["room"], ""), f["cursor"])
    return out


async def test_one_device_socket_gets_every_room_live_and_resumes_all_at_once(
        stack: Stack, gateways: tuple[Gateway, Gateway],
        mongo: pymongo.MongoClient[dict[str, object]]) -> None:
    """Alice's one v2 socket gets Bob's (gateway 1) and Carol's (gateway 2) messages live,
    in each sender's order, once; Dave's, sent while she was away (stored, and in flight
    with no persister running, and live during the resume), arrive with one sync."""
    gw1, gw2 = gateways
    alice, bob, carol, dave = await users(gw1, 4)
    await befriend_all(gw1, alice, [bob, carol, dave])
    async with open_device(gw1, alice) as sa:
        await sa.send({"type": "sync", "after": None})
        assert (await sa.recv_type("synced"))["count"] == 0
        async with open_socket(gw1, bob, alice) as sb, open_device(gw2, carol) as sc:
            # Bob speaks v1 (`/ws/{alice}`), Carol v2: both reach Alice's device socket.
            bob_ids = [f"b{i}" for i in range(40)]
            carol_ids = [f"c{i}" for i in range(40)]
            for n, mid in enumerate(bob_ids):
                await sb.send({"type": "send", "id": mid, "kind": "text",
                               "body": device_send(bob, alice, mid, n)["body"]})
            await asyncio.gather(sb.collect("ack", 40), send_all(sc, carol, alice, carol_ids))
            got = await sa.collect("message", 80, timeout=30)
            assert await sa.quiet("message", 0.5) == []
        seen = [(m["sender"], m["id"]) for m in got]
        assert len(set(seen)) == 80
        assert [i for s, i in seen if s == bob.user_id] == bob_ids
        assert [i for s, i in seen if s == carol.user_id] == carol_ids
        rooms = {m["room"] for m in got}
        assert rooms == {room_id(alice.user_id, bob.user_id),
                         room_id(alice.user_id, carol.user_id)}
        position = cursors(got)

    # Alice is away: Dave sends 20 that are stored, then 20 while no persister runs.
    persister = stack.services[0]
    async with open_device(gw2, dave) as sd:
        await send_all(sd, dave, alice, [f"d{i}" for i in range(20)])
        dave_room = room_id(alice.user_id, dave.user_id)
        assert len(await wait_stored(mongo, stack.db_name, dave_room, 20)) == 20
        persister.stop()
        await send_all(sd, dave, alice, [f"d{i}" for i in range(20, 40)])
        async with open_device(gw1, alice) as sa:
            await sa.send({"type": "sync", "after": position})
            synced = await sa.recv_type("synced")
            assert synced["count"] == 20 and synced["cursor"] is None
            # Live during the resume, then the persister is back: the in-flight 20 come
            # through its stored notices, exactly once.
            await send_all(sd, dave, alice, [f"d{i}" for i in range(40, 50)])
            persister.start()
            got = await sa.collect("message", 50, timeout=30)
            assert await sa.quiet("message", 1.5) == []  # and nothing twice
    ids = [m["id"] for m in got]
    assert Counter(ids) == Counter(f"d{i}" for i in range(50))
    assert [i for i in ids if int(i[1:]) >= 40] == [f"d{i}" for i in range(40, 50)]
    assert {m["room"] for m in got} == {dave_room}


def gateway_bindings(names: Names, node: str) -> list[str]:
    """The routing keys bound to a gateway's queue, from rabbitmqctl."""
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_bindings", "destination_name", "routing_key",
         "--formatter", "json"], capture_output=True, text=True, timeout=60, check=True)
    queue = names.gateway_queue(node)
    return [b["routing_key"] for b in json.loads(out.stdout or "[]")
            if b["destination_name"] == queue]


async def test_user_with_200_friends_costs_two_bindings(
        stack: Stack, gateways: tuple[Gateway, Gateway],
        mongo: pymongo.MongoClient[dict[str, object]]) -> None:
    """A gateway holding v2 sockets (and a v1 socket) of a user with 200 friends has two
    broker bindings for that user, not 200; they go with the user's last socket."""
    gw1, _ = gateways
    (alice, bob) = await users(gw1, 2)
    await befriend_all(gw1, alice, [bob])
    friendships = mongo[stack.db_name]["friendships"]
    now = int(time.time() * 1000)
    friendships.insert_many([
        {"_id": room_id(alice.user_id, peer), "requester": alice.user_id, "addressee": peer,
         "status": "accepted", "created_at": now}
        for peer in (str(ObjectId()) for _ in range(199))])
    names = Names(prefix=stack.prefix)
    async with open_device(gw1, alice) as s1, open_device(gw1, alice), \
            open_socket(gw1, alice, bob):
        await s1.send({"type": "sync", "after": None})
        await s1.recv_type("synced")
        keys = [k for k in gateway_bindings(names, "dev1") if alice.user_id in k]
        assert sorted(keys) == sorted([f"*.{alice.user_id}.*", f"*.*.{alice.user_id}"])

    def unbound() -> bool:
        return not any(alice.user_id in k for k in gateway_bindings(names, "dev1"))

    await eventually(lambda: asyncio.to_thread(unbound), 10,
                     "bindings gone with the user's last socket", 0.2)


async def test_reading_on_one_device_clears_unread_on_the_other_within_a_second(
        gateways: tuple[Gateway, Gateway]) -> None:
    """Unread counts over REST and the socket; Alice's second device (another gateway)
    reads and her first hears the count drop to 0 within a second."""
    gw1, gw2 = gateways
    alice, bob = await users(gw1, 2)
    await befriend_all(gw1, alice, [bob])
    async with open_device(gw2, bob) as sb:
        await send_all(sb, bob, alice, ["u1", "u2", "u3"])
        receipt = device_send(bob, alice, "r1", kind="receipt")
        await sb.send(receipt)
        await sb.recv_type("ack")
    async with httpx.AsyncClient() as http:
        async def stored_last() -> dict[str, Any] | None:
            r = await http.get(f"{gw1.http}/api/conversations", headers=alice.auth)
            conv: dict[str, Any] = r.json()["conversations"][0]
            return conv if conv["last"] and conv["last"]["id"] == "u3" else None

        conv = await eventually(stored_last, 10, "u3 the conversation's last message", 0.1)
    assert conv["user_id"] == bob.user_id and conv["unread"] == 3  # the receipt not counted
    assert conv["last"]["kind"] == "text" and conv["last"]["body"]["kind"] == "text"
    async with open_device(gw1, alice) as d1, open_device(gw2, alice) as d2:
        await d1.send({"type": "sync", "after": None})
        got = await d1.collect("message", 4)
        assert [m["id"] for m in got] == ["u1", "u2", "u3", "r1"]
        last = got[2]["cursor"]
        await d2.send({"type": "read", "peer": bob.user_id, "cursor": got[0]["cursor"]})
        event = await d1.recv_type("read", timeout=5)
        assert event == {"type": "read", "room": conv["room"], "cursor": got[0]["cursor"],
                         "unread": 2, "newest": last}
        started = time.monotonic()
        await d2.send({"type": "read", "peer": bob.user_id, "cursor": last})
        event = await d1.recv_type("read", timeout=1)
        assert time.monotonic() - started < 1.0
        assert event["unread"] == 0 and event["cursor"] == last and event["newest"] is None
        # Positions never move back.
        await d2.send({"type": "read", "peer": bob.user_id, "cursor": got[0]["cursor"]})
        assert (await d1.recv_type("read", timeout=5))["cursor"] == last
    async with httpx.AsyncClient() as http:
        r = await http.get(f"{gw2.http}/api/conversations", headers=alice.auth)
        conv = r.json()["conversations"][0]
        assert conv["unread"] == 0 and conv["read"] == last
