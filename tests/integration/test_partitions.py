"""Partitioned persistence: DUET_PERSIST_PARTITIONS=4 and two persisters. Rooms spread
over the four quorum queues by a hash, one persister at a time stores a partition, both
persisters end up storing, and each room's order holds live and in storage. Changing the
partition count afterwards loses nothing: the old queues are unbound and drained."""

from __future__ import annotations

import asyncio
import re
from contextlib import AsyncExitStack
from pathlib import Path

import aio_pika
import httpx
import pymongo
import pytest
from support import (
    Persister,
    Socket,
    Stack,
    User,
    befriend,
    device_send,
    drop_broker_names,
    eventually,
    open_device,
    signup,
    wait_stored,
)

from contracts import Names, room_id
from contracts.routing import persist_partition

PARTITIONS = 4


def stored_total(persister: Persister) -> float:
    text = httpx.get(f"{persister.http}/metrics", timeout=5).text
    found = re.search(r"^duet_persister_stored_total ([0-9.e+]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


async def friends_in_every_partition(http: httpx.AsyncClient, base: str,
                                     sender: User) -> list[User]:
    """Friends of `sender` until their rooms cover every partition (each new pair's room
    lands in a partition by a hash of two random ids: a handful of pairs do it)."""
    peers: list[User] = []
    covered: set[int] = set()
    while covered != set(range(PARTITIONS)):
        assert len(peers) < 40, "rooms do not spread over the partitions"
        peer = await signup(http, base, "pp")
        await befriend(http, base, sender, peer)
        peers.append(peer)
        covered.add(persist_partition(room_id(sender.user_id, peer.user_id), PARTITIONS))
    return peers


async def test_four_partitions_two_persisters_keep_each_rooms_order(
        amqp_url: str, mongo_url: str, mongo: pymongo.MongoClient, tmp_path: Path) -> None:
    stack = Stack(amqp_url, mongo_url, tmp_path,
                  extra_env={"DUET_PERSIST_PARTITIONS": str(PARTITIONS),
                             "DUET_REBALANCE_S": "0.5"})
    try:
        persisters = [stack.persister(), stack.persister()]
        gw_a, gw_b = stack.gateway(), stack.gateway()
        async with httpx.AsyncClient() as http:
            alice = await signup(http, gw_a.http, "pa")
            peers = await friends_in_every_partition(http, gw_a.http, alice)
        sent: dict[str, list[str]] = {p.user_id: [] for p in peers}
        async with AsyncExitStack() as sockets:
            sender = await sockets.enter_async_context(open_device(gw_a, alice))
            readers = [await sockets.enter_async_context(open_device(gw_b, p)) for p in peers]
            n = 0

            async def round_() -> None:
                """20 messages to each friend, interleaved, so a gateway's broker messages
                carry frames of several rooms (and partitions); then every ack."""
                nonlocal n
                for _ in range(20):
                    for peer in peers:
                        mid = f"p{n}"
                        await sender.send(device_send(alice, peer, mid, n))
                        sent[peer.user_id].append(mid)
                        n += 1
                await sender.collect("ack", 20 * len(peers), timeout=30)

            # Until the second persister has taken partitions over (the first holds them
            # all until it sees the second receive nothing; bounded).
            async def both_store() -> bool:
                await round_()
                totals = [await asyncio.to_thread(stored_total, p) for p in persisters]
                return all(t > 0 for t in totals)

            await eventually(both_store, 30, "both persisters store", 0.2)
            await round_()  # and more after the hand-off
            # Four single-active-consumer queues (one consumer each while two persisters
            # consume them all) and no duet.persist: so both persisters storing means each
            # holds some partitions.
            names = Names(prefix=stack.prefix)
            assert await queue_state(amqp_url, names.persist_queue) is None
            for queue in names.persist_queues(PARTITIONS):
                assert await queue_state(amqp_url, queue, "consumer_count") == 1, queue

            for peer, reader in zip(peers, readers, strict=True):
                got = await reader.collect("message", len(sent[peer.user_id]), timeout=30)
                assert [m["id"] for m in got] == sent[peer.user_id], "live order"
                await quiet(reader)

        names = Names(prefix=stack.prefix)
        for peer in peers:
            room = room_id(alice.user_id, peer.user_id)
            await wait_stored(mongo, names.database, room, len(sent[peer.user_id]))
            docs = list(mongo[names.database].messages.find({"room": room}).sort("cursor", 1))
            # Once each, and in the order sent, as history and sync read it.
            assert [d["id"] for d in docs] == sent[peer.user_id]
    finally:
        stack.stop()
        await asyncio.to_thread(drop_broker_names, stack)


async def quiet(reader: Socket) -> None:
    assert await reader.quiet("message", 0.2) == []


async def test_changing_the_partition_count_drains_the_old_queues(
        amqp_url: str, mongo_url: str, mongo: pymongo.MongoClient, tmp_path: Path) -> None:
    """Messages published while no persister runs wait in the queues of the old count
    (1); persisters started with 4 unbind duet.persist, drain it, then store the rest
    through the partitions: every message once."""
    stack = Stack(amqp_url, mongo_url, tmp_path, extra_env={"DUET_LAG_CHECK_S": "0.2"})
    try:
        first = stack.persister()
        gw = stack.gateway(DUET_PERSIST_PARTITIONS="1")
        async with httpx.AsyncClient() as http:
            alice, bob = await signup(http, gw.http, "pc"), await signup(http, gw.http, "pc")
            await befriend(http, gw.http, alice, bob)
        room = room_id(alice.user_id, bob.user_id)
        names = Names(prefix=stack.prefix)
        first.stop()
        async with open_device(gw, alice) as sock:
            for n in range(50):
                await sock.send(device_send(alice, bob, f"before{n}", n))
            await sock.collect("ack", 50)
            stack.extra_env["DUET_PERSIST_PARTITIONS"] = str(PARTITIONS)
            second = stack.persister()
            stored = await wait_stored(mongo, names.database, room, 50)
            assert sorted(stored) == sorted(f"before{n}" for n in range(50))
            gw4 = stack.gateway()
            async with open_device(gw4, alice) as sock4:
                for n in range(50):
                    await sock4.send(device_send(alice, bob, f"after{n}", 50 + n))
                await sock4.collect("ack", 50)
        stored = await wait_stored(mongo, names.database, room, 100)
        assert len(stored) == 100 and len(set(stored)) == 100
        # duet.persist took none of the later messages (unbound) and was drained: its
        # consumer stops, and the next persister to start deletes it.
        assert await queue_state(amqp_url, names.persist_queue) == 0
        await eventually(lambda: "drained" in Path(second.log_path).read_text(), 10,
                         "the drain's end")
        stack.persister()
        assert await queue_state(amqp_url, names.persist_queue) is None
    finally:
        stack.stop()
        await asyncio.to_thread(drop_broker_names, stack)


async def queue_state(amqp_url: str, name: str, field: str = "message_count") -> int | None:
    """A queue's message count (ready; or another count of its declare-ok), or None when
    it does not exist."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        try:
            async with connection.channel() as channel:
                queue = await channel.declare_queue(name, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return None
    return int(getattr(queue.declaration_result, field) or 0)


pytestmark = pytest.mark.timeout(180)
