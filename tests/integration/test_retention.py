"""The server's retention (DUET_RETENTION_DAYS, docs/sessions.md "Retention"): a message's
ciphertext stays until every device it was for has fetched it, then for the retention; the
devices read it from their own history afterwards."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pymongo
import pytest
from support import Gateway, Stack, eventually, unique_name
from test_sdk import collect

from client import Client, Message
from contracts import MESSAGES
from contracts.documents import FETCHED

PASS = "test passphrase"
RETENTION_S = 2.0


@pytest.fixture(scope="module")
def gw(stack: Stack) -> Gateway:
    """A persister that keeps fetched ciphertext RETENTION_S, sweeping every 0.3 s."""
    stack.persister(DUET_RETENTION_DAYS=str(RETENTION_S / 86400), DUET_RETENTION_SWEEP_S="0.3")
    return stack.gateway()


async def test_ciphertext_waits_for_every_device_then_the_retention(
        gw: Gateway, stack: Stack, mongo: pymongo.MongoClient[dict[str, Any]],
        tmp_path: Path) -> None:
    """Bob has two devices. Once one of them fetched Alice's three messages they stay,
    well past the retention; once the other fetched them too they still stay, until
    Alice's sending device has fetched them as well; then they go after the retention, and
    both of Bob's devices and Alice's still show them from their own history."""
    a = Client(gw.http, home=tmp_path / "a", passphrase=PASS)
    b = Client(gw.http, home=tmp_path / "b", passphrase=PASS)
    b2 = Client(gw.http, home=tmp_path / "b2", passphrase=PASS)
    na, nb = unique_name("ra"), unique_name("rb")
    db = mongo[stack.db_name]
    try:
        await a.register(na, "password-a-123")
        await b.register(nb, "password-b-123")
        await b2.login(nb, "password-b-123")
        await b.approve_device(b2.link_code)
        await a.add_friend(nb)
        await b.accept_friend(na)
        acks = [await a.send_text(nb, f"m{i}") for i in range(3)]
        await a.wait_stored(nb, acks[-1]["id"])
        ids = [ack["id"] for ack in acks]
        assert [m.text for m in await collect(b, na, 3) if isinstance(m, Message)] == [
            "m0", "m1", "m2"]
        await eventually(lambda: db[FETCHED].find_one({"kid": b.device.kid}), 5,
                         "b's fetched position")
        await asyncio.sleep(RETENTION_S * 2)  # past the retention: b2 has not fetched
        assert db[MESSAGES].count_documents({"id": {"$in": ids}}) == 3
        got = await collect(b2, na, 3)
        assert [m.text for m in got if isinstance(m, Message)] == ["m0", "m1", "m2"]
        await asyncio.sleep(RETENTION_S * 2)  # past it again: the sending device has not
        assert db[MESSAGES].count_documents({"id": {"$in": ids}}) == 3
        await collect(a, nb, 3)  # Alice's device fetches its own (it keeps them, cursorless)
        fetched = time.monotonic()
        await eventually(lambda: db[MESSAGES].count_documents({"id": {"$in": ids}}) == 0,
                         RETENTION_S + 10, "the messages deleted")
        assert time.monotonic() - fetched >= RETENTION_S - 0.5  # kept the retention after
        for client, friend, own in ((b, na, False), (b2, na, False), (a, nb, True)):
            shown = [e for e in await client.history(friend) if isinstance(e, Message)]
            assert [(m.text, m.own) for m in shown] == [(f"m{i}", own) for i in range(3)]
    finally:
        for client in (a, b, b2):
            await client.close()
