"""MongoDB work many sockets ask for at once goes as one batch (gateway.batcher): read
positions (gateway.readmarks), three commands for many moves, each still getting its own
position, unread count and newest unread message, never moving back, announced to its
user's devices; the presence snapshots of connecting device sockets (gateway.presence),
two commands for many users, each getting its own friends online; and the session checks
that miss the cache (gateway.sessions), one command for many; and the socket counts of
users' first sockets (gateway.quotas), one write and one read for many."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from pymongo import AsyncMongoClient, monitoring
from support import TOKEN_SECRET, Stack, eventually

from broker import Broker
from contracts import FRIENDSHIPS, MESSAGES, PRESENCE, READS, ReadState
from contracts.documents import presence_doc_id, read_doc_id
from contracts.routing import read_key
from gateway.errors import Unauthenticated
from gateway.presence import Presence, now_ms
from gateway.quotas import QUOTAS, Quotas
from gateway.readmarks import ReadMarks
from gateway.sessions import SessionStore
from gateway.settings import GatewaySettings


class Commands(monitoring.CommandListener):
    """The names of the commands sent to mongod."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.names.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def cursor(n: int) -> str:
    return f"{n:032x}"


@pytest.fixture
async def setup(stack: Stack) -> Any:
    commands = Commands()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        stack.mongo_url, event_listeners=[commands])
    db = client[f"{stack.db_name}-readmarks"]
    settings = GatewaySettings(token_secret=TOKEN_SECRET, amqp_url=stack.amqp_url,
                               prefix=stack.prefix)
    async with Broker(settings, "readmarks-test") as broker:
        yield db, broker, commands
    await client.drop_database(db.name)
    await client.close()


async def test_queued_moves_cost_three_commands_and_each_gets_its_own_state(
        setup: Any) -> None:
    """Five moves of four users queued at once: one update, one find, one aggregate. In
    each room the friend sent text at cursors 1–5 (and a receipt at 6, which never counts;
    the user's own message at 7 neither). u0 reads to 2: 3 unread, newest 5. u1 reads to 5:
    none. u2 asks 1 and then 3 in the same batch: both hear 3 (2 unread). u3 had read to 4
    already and asks 2: it stays at 4 (1 unread). Each move is announced on `read_key`."""
    db, broker, commands = setup
    users = [f"u{i}" for i in range(4)]
    rooms = {u: f"{u}.z{u}" for u in users}
    docs = [{"_id": f"{u}-{n}", "room": rooms[u], "sender": f"z{u}", "kind": "text",
             "cursor": cursor(n)} for u in users for n in range(1, 6)]
    docs += [{"_id": f"{u}-r", "room": rooms[u], "sender": f"z{u}", "kind": "receipt",
              "cursor": cursor(6)} for u in users]
    docs += [{"_id": f"{u}-own", "room": rooms[u], "sender": u, "kind": "text",
              "cursor": cursor(7)} for u in users]
    await db[MESSAGES].insert_many(docs)
    await db[READS].insert_one({"_id": read_doc_id("u3", rooms["u3"]), "user": "u3",
                                "room": rooms["u3"], "cursor": cursor(4)})

    channel = await broker.channel(16)
    queue = await channel.declare_queue(exclusive=True)
    for u in users:
        await queue.bind(broker.exchange, read_key(u))

    marks = ReadMarks(db, broker)
    try:
        commands.names.clear()
        got = await asyncio.gather(
            marks.mark("u0", rooms["u0"], cursor(2)), marks.mark("u1", rooms["u1"], cursor(5)),
            marks.mark("u2", rooms["u2"], cursor(1)), marks.mark("u2", rooms["u2"], cursor(3)),
            marks.mark("u3", rooms["u3"], cursor(2)))
        assert sorted(commands.names) == ["aggregate", "find", "update"]
        expected = [ReadState(room=rooms["u0"], cursor=cursor(2), unread=3, newest=cursor(5)),
                    ReadState(room=rooms["u1"], cursor=cursor(5), unread=0, newest=None),
                    ReadState(room=rooms["u2"], cursor=cursor(3), unread=2, newest=cursor(5)),
                    ReadState(room=rooms["u2"], cursor=cursor(3), unread=2, newest=cursor(5)),
                    ReadState(room=rooms["u3"], cursor=cursor(4), unread=1, newest=cursor(5))]
        assert got == expected
        stored = {d["_id"]: d["cursor"] async for d in db[READS].find()}
        assert stored == {read_doc_id(u, rooms[u]): c for u, c in
                          zip(users, [cursor(2), cursor(5), cursor(3), cursor(4)], strict=True)}

        announced: list[dict[str, Any]] = []

        async def four_announced() -> bool:
            while (message := await queue.get(fail=False)) is not None:
                announced.append(orjson.loads(message.body))
                await message.ack()
            return len(announced) >= 4

        await eventually(four_announced, 5, what="four read events")
        assert sorted(announced, key=lambda e: e["room"]) == [
            {"type": "read", **s.model_dump()} for s in (expected[0], expected[1], expected[2],
                                                          expected[4])]

        # A move on its own (an idle gateway) is flushed at once, for the same three.
        commands.names.clear()
        alone = await marks.mark("u0", rooms["u0"], cursor(4))
        assert alone == ReadState(room=rooms["u0"], cursor=cursor(4), unread=1,
                                  newest=cursor(5))
        assert sorted(commands.names) == ["aggregate", "find", "update"]
    finally:
        await marks.close()
        await channel.close()


async def test_snapshots_of_users_connecting_at_once_cost_two_commands(setup: Any) -> None:
    """Three users' snapshots asked at once (one of them twice): one friendships find and
    one presence find. u0's friends f1 (online), f2 (online, hidden), f3 (expired) and f4
    (only asked, never accepted): [f1]. u1's friends f1 and u0 (no document): [f1]. u2 has
    no friends: []."""
    db, broker, commands = setup
    await db[FRIENDSHIPS].insert_many([
        {"requester": "u0", "addressee": "f1", "status": "accepted"},
        {"requester": "f2", "addressee": "u0", "status": "accepted"},
        {"requester": "u0", "addressee": "f3", "status": "accepted"},
        {"requester": "u0", "addressee": "f4", "status": "pending"},
        {"requester": "u1", "addressee": "f1", "status": "accepted"},
        {"requester": "u0", "addressee": "u1", "status": "accepted"}])
    live = now_ms() + 60_000
    await db[PRESENCE].insert_many([
        {"_id": presence_doc_id(u, "n9"), "user": u, "node": "n9", "hidden": hidden,
         "expires_at": expires}
        for u, hidden, expires in (("f1", False, live), ("f2", True, live),
                                   ("f3", False, now_ms() - 1000), ("f4", False, live))])
    presence = Presence(db, broker, "n1", 6.0)
    try:
        commands.names.clear()
        got = await asyncio.gather(*(presence.online_friends(u) for u in ("u0", "u1", "u2",
                                                                          "u0")))
        assert got == [["f1"], ["f1"], [], ["f1"]]
        assert commands.names == ["find", "find"]
    finally:
        await presence.close()


async def test_session_checks_asked_at_once_cost_one_command(setup: Any) -> None:
    """Two live sessions checked four times at once, a revoked one and an unknown one:
    one find; the live pass, the others are refused; checked again within the cache, no
    command at all."""
    db, _, commands = setup
    store = SessionStore(db, ttl_s=3600, cache_s=60)
    try:
        live = [await store.create(u, "test") for u in ("u0", "u1")]
        revoked = await store.create("u2", "test")
        await store.revoke("u2", only=revoked)
        commands.names.clear()
        got = await asyncio.gather(
            store.check("u0", live[0]), store.check("u1", live[1]), store.check("u0", live[0]),
            store.check("u1", live[1]), store.check("u2", revoked),
            store.check("u3", "no-such-session"), return_exceptions=True)
        assert got[:4] == [None] * 4
        assert all(isinstance(r, Unauthenticated) for r in got[4:])
        assert commands.names == ["find"]
        commands.names.clear()
        await asyncio.gather(*(store.check(u, sid) for u, sid in zip(("u0", "u1"), live,
                                                                     strict=True)))
        assert commands.names == []
    finally:
        await store.close()


async def test_first_sockets_of_users_at_once_cost_one_write_and_one_read(setup: Any) -> None:
    """Three users' first sockets here, at once: one update (this gateway's counts) and one
    find (every gateway's). Another gateway holds 2 of u0's sockets and the limit is 3: of
    u0's two opens at once one is refused, and the count written here is u0's 1 socket."""
    db, _, commands = setup
    quotas = Quotas(db, "n1", sockets=3, messages_per_minute=100, bytes_per_day=10**6)
    await quotas.start()
    try:
        commands.names.clear()
        assert await asyncio.gather(*(quotas.open_socket(u) for u in ("u1", "u2", "u3")))
        assert commands.names == ["update", "find"]
        assert await db[QUOTAS].count_documents({"_id": {"$in": ["s.u1.n1", "s.u2.n1",
                                                                 "s.u3.n1"]}, "n": 1}) == 3

        await db[QUOTAS].insert_one({"_id": "s.u0.n2", "n": 2,
                                     "expires": datetime.now(UTC) + timedelta(seconds=60)})
        opened = await asyncio.gather(quotas.open_socket("u0"), quotas.open_socket("u0"))
        assert sorted(opened) == [False, True]
        assert (await db[QUOTAS].find_one({"_id": "s.u0.n1"}) or {}).get("n") == 1
    finally:
        await quotas.close()
