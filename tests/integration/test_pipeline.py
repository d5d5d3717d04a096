"""The core pipeline on real processes: two gateways, a persister, RabbitMQ and mongod."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pymongo
import pytest
from support import Gateway, Stack, befriend, envelope, eventually, open_socket, signup

from contracts import room_id


@pytest.fixture(scope="module")
def gateways(stack: Stack) -> tuple[Gateway, Gateway]:
    stack.persister()
    return stack.gateway(), stack.gateway()


async def wait_for_documents(db: Any, room: str, count: int,
                             timeout: float = 30.0) -> list[dict]:
    """The room's documents in cursor order, once there are at least `count`."""
    def enough() -> list[dict] | None:
        docs = list(db.messages.find({"room": room}).sort("cursor", 1))
        return docs if len(docs) >= count else None

    found: list[dict] = await eventually(lambda: asyncio.to_thread(enough), timeout,
                                         f"{count} documents in {room}", 0.2)
    return found


async def test_send_200_messages_across_gateways_delivered_once_in_order(
        gateways: tuple[Gateway, Gateway], stack: Stack, mongo: pymongo.MongoClient) -> None:
    """A on gateway 1 sends 200 messages; B on gateway 2 gets each once, in order, all stored."""
    g1, g2 = gateways
    async with httpx.AsyncClient() as http:
        a, b = await signup(http, g1.http, "a"), await signup(http, g2.http, "b")
        await befriend(http, g1.http, a, b)
    bodies = [envelope(a, b, i) for i in range(200)]
    async with open_socket(g2, b, a) as sb, open_socket(g1, a, b) as sa:
        for i, body in enumerate(bodies):
            await sa.send({"type": "send", "id": f"m{i}", "kind": "text", "body": body})
        acks = await sa.collect("ack", 200)
        received = await sb.collect("message", 200)
        assert await sb.quiet("message", 0.5) == []
    assert sorted(a["id"] for a in acks) == sorted(f"m{i}" for i in range(200))
    assert [m["id"] for m in received] == [f"m{i}" for i in range(200)]
    assert all(m["sender"] == a.user_id for m in received)
    assert [m["body"] for m in received] == bodies
    docs = await wait_for_documents(mongo[stack.db_name], room_id(a.user_id, b.user_id), 200)
    assert len(docs) == 200
    assert [d["body"] for d in docs] == bodies
    assert [d["cursor"] for d in docs] == [m["cursor"] for m in received]


async def test_persister_sigkill_mid_stream_stores_each_message_once(
        gateways: tuple[Gateway, Gateway], stack: Stack, mongo: pymongo.MongoClient) -> None:
    """SIGKILL the persister mid-stream and restart it: exactly one document per message."""
    g1, _ = gateways
    persister = next(s for s in stack.services if s.module == "persister")
    async with httpx.AsyncClient() as http:
        a, b = await signup(http, g1.http, "a"), await signup(http, g1.http, "b")
        await befriend(http, g1.http, a, b)
    total = 600
    db, room = mongo[stack.db_name], room_id(a.user_id, b.user_id)

    async with open_socket(g1, a, b) as sa:
        async def stream() -> None:
            for i in range(total):
                await sa.send({"type": "send", "id": f"k{i}", "kind": "text",
                               "body": envelope(a, b, i)})
                if i % 20 == 0:
                    await asyncio.sleep(0.02)  # paces the stream so the kill lands mid-way

        sender = asyncio.create_task(stream())
        # Kill while messages are being stored, not before or after.
        def quarter() -> bool:
            return int(db.messages.count_documents({"room": room})) >= total // 4

        await eventually(lambda: asyncio.to_thread(quarter), 30, "a quarter stored", 0.01)
        await asyncio.to_thread(persister.kill)
        await asyncio.sleep(0.5)  # the outage is the point: 0.5 s with no persister
        persister.start()
        await sender
        acks = await sa.collect("ack", total)
    assert len({a["id"] for a in acks}) == total
    docs = await wait_for_documents(db, room, total)
    await asyncio.sleep(1.0)  # the point: re-deliveries after the restart must not add any
    docs = list(db.messages.find({"room": room}))
    assert len(docs) == total
    assert sorted(d["id"] for d in docs) == sorted(f"k{i}" for i in range(total))
