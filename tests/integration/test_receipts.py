"""Receipts and typing end to end through the SDK: signed, encrypted envelopes between the
two users, ticks sent → stored → delivered → read, read receipts that can be turned off,
forgeries rejected, and none of it shown as a message or counted as unread."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pymongo
from support import Gateway, Stack, eventually, unique_name

from broker import Broker
from client import Alert, Client, Event, Message, Receipt, Typing
from contracts import room_id
from contracts.batch import CURSOR_HEADER, KIND_HEADER, ORIGIN_HEADER
from contracts.routing import message_key
from service import ServiceSettings

PASS = "test passphrase"


class Listening:
    """An SDK client listening to every conversation in the background (signals too)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.events: list[Event] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Listening:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        async for event in self.client.listen(signals=True):
            self.events.append(event)

    async def until(self, check: Callable[[], bool], what: str, timeout: float = 15.0) -> float:
        """Seconds until `check()` holds; fails after `timeout` or when listening failed."""
        started = time.monotonic()

        def heard() -> bool:
            assert self._task is not None
            if self._task.done():
                self._task.result()  # raises what ended the listening
            return check()

        try:
            await eventually(heard, timeout, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; events: {self.events}") from None
        return time.monotonic() - started

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


@contextlib.asynccontextmanager
async def friends(gw: Gateway, tmp_path: Path) -> AsyncIterator[tuple[Client, Client]]:
    a = Client(gw.http, home=tmp_path / unique_name("a"), passphrase=PASS)
    b = Client(gw.http, home=tmp_path / unique_name("b"), passphrase=PASS)
    na, nb = unique_name("alice"), unique_name("bob")
    await a.register(na, "password-a-123")
    await b.register(nb, "password-b-123")
    await a.add_friend(nb)
    await b.accept_friend(na)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def test_ticks_go_sent_stored_delivered_read(gw: Gateway, tmp_path: Path) -> None:
    """Bob's message is sent (acked), stored, delivered once Alice's device decrypts it,
    read once she has seen it; receipts are neither messages nor unread anywhere."""
    async with friends(gw, tmp_path) as (alice, bob), Listening(bob) as bobs:
        ack = await bob.send_text(alice.user_id or "", "did you get this?")
        mid = ack["id"]
        assert bob.status(mid) in ("sent", "stored")
        await bobs.until(lambda: bob.status(mid) == "stored", "stored")
        async with Listening(alice) as alices:
            await alices.until(lambda: len(alices.of(Message)) == 1, "Alice got it")
            await bobs.until(lambda: bob.status(mid) == "delivered", "delivered")
            assert bobs.of(Receipt)[-1].read is None
            await alice.mark_read(bob.user_id or "")
            await bobs.until(lambda: bob.status(mid) == "read", "read")
            receipt = bobs.of(Receipt)[-1]
            assert receipt.sender == alice.user_id and receipt.read == ack["cursor"]
            await asyncio.sleep(0.5)  # the point: no second copy and no alert follow
            assert [m.text for m in alices.of(Message)] == ["did you get this?"]
            assert alices.of(Alert) == [] and bobs.of(Alert) == []
        assert bobs.of(Message) == []  # his own send is not echoed to the socket it left
        for client in (alice, bob):
            [conv] = await client.conversations()
            assert conv["unread"] == 0 and conv["last"]["id"] == mid
        assert [m.text for m in await alice.history(bob.user_id or "")] == ["did you get this?"]


async def test_read_receipts_off_bob_never_sees_read(gw: Gateway, tmp_path: Path) -> None:
    """With Alice's read receipts off, Bob's message reaches delivered and stays there,
    while Alice's own read position (her unread count) still moves."""
    async with friends(gw, tmp_path) as (alice, bob), Listening(bob) as bobs:
        await alice.update_settings(read_receipts=False)
        ack = await bob.send_text(alice.user_id or "", "private reader")
        async with Listening(alice) as alices:
            await alices.until(lambda: len(alices.of(Message)) == 1, "Alice got it")
            await alice.mark_read(bob.user_id or "")
            await bobs.until(lambda: bob.status(ack["id"]) == "delivered", "delivered")
            await asyncio.sleep(3.0)  # the point: time passes and no read tick comes
            assert bob.status(ack["id"]) == "delivered"
            assert all(r.read is None for r in bobs.of(Receipt))
        [conv] = await alice.conversations()
        assert conv["unread"] == 0 and conv["read"] == ack["cursor"]


async def test_altered_or_forged_receipt_is_an_alert_and_moves_no_tick(
        gw: Gateway, stack: Stack, tmp_path: Path,
        mongo: pymongo.MongoClient[dict[str, object]]) -> None:
    """A receipt the server altered (its ciphertext changed) or forged (Alice's name, some
    other key) reaches Bob as a bad_signature / unknown_key alert; his tick stays."""
    async with friends(gw, tmp_path) as (alice, bob), Listening(bob) as bobs:
        ack = await bob.send_text(alice.user_id or "", "check me")
        async with Listening(alice) as alices:
            await alices.until(lambda: len(alices.of(Message)) == 1, "Alice got it")
        await bobs.until(lambda: bob.status(ack["id"]) == "delivered", "delivered")
        room = room_id(alice.user_id or "", bob.user_id or "")
        coll = mongo[stack.db_name].messages
        real = await eventually(
            lambda: asyncio.to_thread(coll.find_one, {"room": room, "kind": "receipt"}), 10,
            "a stored receipt", 0.1)
        body = dict(real["body"])
        altered = {**body, "ct": body["ct"][:-4] + ("AAAA" if body["ct"][-4:] != "AAAA"
                                                     else "BBBB")}
        forged = {**body, "from": "F" * 43}
        settings = ServiceSettings(amqp_url=stack.amqp_url, prefix=stack.prefix)
        async with Broker(settings, "test-forger") as broker:
            for n, envelope in enumerate((altered, forged)):
                cursor = f"{time.time_ns() // 1000:016x}{0:08x}{n:08x}"
                frame = {"type": "message", "id": f"forged{n}", "sender": alice.user_id,
                         "room": room, "kind": "receipt", "body": envelope,
                         "ts": int(time.time() * 1000), "cursor": cursor}
                await broker.publish(orjson.dumps(frame), message_key(room), headers={
                    ORIGIN_HEADER: "forger", CURSOR_HEADER: cursor, KIND_HEADER: "receipt"})
        await bobs.until(lambda: len(bobs.of(Alert)) == 2, "two alerts")
        assert sorted(a.kind for a in bobs.of(Alert)) == ["bad_signature", "unknown_key"]
        assert bob.status(ack["id"]) == "delivered"
        assert bobs.of(Message) == []


async def test_typing_reaches_the_friend_and_clears_within_six_seconds(
        gw: Gateway, tmp_path: Path) -> None:
    """Alice types: Bob's SDK hears it within a second and shows it no longer than 5 s
    after (docs/protocol.md); her `typing(False)` clears it at once."""
    async with friends(gw, tmp_path) as (alice, bob), Listening(bob) as bobs:
        await bob.friends()
        started = time.monotonic()
        await alice.typing(bob.user_id or "")
        await bobs.until(lambda: bob.is_typing(alice.user_id or ""), "typing shown", 5)
        assert time.monotonic() - started < 1.0
        assert bobs.of(Typing)[-1] == Typing(room_id(alice.user_id or "", bob.user_id or ""),
                                             alice.user_id or "", True)
        shown = await bobs.until(lambda: not bob.is_typing(alice.user_id or ""), "cleared", 8)
        assert shown < 5.0 + 0.1, shown  # 5 s, and `until`'s 0.05 s polling
        await alice.typing(bob.user_id or "")
        await bobs.until(lambda: bob.is_typing(alice.user_id or ""), "typing again", 5)
        await alice.typing(bob.user_id or "", False)
        assert await bobs.until(lambda: not bob.is_typing(alice.user_id or ""), "stopped",
                                2) < 1.0


async def test_conversations_list_unread_and_previews(gw: Gateway, tmp_path: Path) -> None:
    """GET /api/conversations via the SDK: the newest text decrypted as its preview, the
    unread count, the most recently active friend first."""
    async with friends(gw, tmp_path) as (alice, bob):
        carol = Client(gw.http, home=tmp_path / "c", passphrase=PASS)
        nc = unique_name("carol")
        await carol.register(nc, "password-c-123")
        await carol.add_friend(alice.username or "")
        await alice.accept_friend(nc)
        await bob.send_text(alice.user_id or "", "one")
        await bob.send_text(alice.user_id or "", "two")
        await carol.send_text(alice.user_id or "", "newest")
        await carol.close()
        async with httpx.AsyncClient() as http:
            r = await http.get(f"{gw.http}/api/conversations")
            assert r.status_code == 401

        async def previews() -> list[dict[str, Any]] | None:
            items = await alice.conversations()
            return items if all(i["last"] for i in items) else None

        items = await eventually(previews, 10, "every conversation's last message", 0.1)
        assert [i["username"] for i in items] == [nc, bob.username]
        assert [i["unread"] for i in items] == [1, 2]
        assert [i["preview"].text for i in items] == ["newest", "two"]
