"""Forward secrecy over the real services (docs/sessions.md): SDK devices send envelope v3,
a copy of a device's home taken at T cannot read what comes after the next ratchet step, the
device's own keys cannot open again what it received before T (its own kept history can),
and a device that publishes no prekeys still gets the messages, RSA-wrapped, until it does.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pymongo
import pytest
from support import Gateway, Stack
from test_sdk import collect

from client import Alert, Client, Message, ratchet
from client.envelope import envelope_hash
from contracts import MESSAGES, room_id
from contracts.documents import PREKEYS

PASS = "test passphrase"


async def stored(client: Client, friend: str, mongo: pymongo.MongoClient[dict[str, Any]],
                 stack: Stack, message_id: str) -> dict[str, Any]:
    """The client's message as MongoDB holds it."""
    await client.wait_stored(friend, message_id)
    doc = mongo[stack.db_name][MESSAGES].find_one({"sender": client.user_id, "id": message_id})
    assert doc is not None
    return doc


async def until(client: Client, friend: str, text: str, timeout: float = 20.0) -> Message:
    """Listen until the message with this text has been opened."""
    async def run() -> Message:
        async for event in client.listen(friend):
            if isinstance(event, Message) and event.text == text:
                return event
        raise AssertionError("listen ended")
    return await asyncio.wait_for(run(), timeout)


async def test_envelopes_are_v3_with_a_ratchet_entry_per_device(
        sdk_pair: Any, stack: Stack, mongo: pymongo.MongoClient[dict[str, Any]]) -> None:
    """Between two SDK devices every envelope is v3, with one ratchet entry (no RSA wrap)
    for the friend's device and none for the sending device; the first carries X3DH's
    prekey header until the friend answers, and later ones do not."""
    a, b, na, nb = sdk_pair
    first = await a.send_text(nb, "first")
    await collect(b, na, 1)
    await b.send_text(na, "answer")
    await collect(a, nb, 2)
    second = await a.send_text(nb, "second")
    for ack, pre in ((first, True), (second, False)):
        env = (await stored(a, nb, mongo, stack, ack["id"]))["body"]
        assert env["v"] == 3 and env["alg"] == "X25519-DR+A256GCM+ES256"
        [entry] = env["keys"]
        assert entry["kid"] == b.device.kid and "h" in entry and len(entry["wk"]) == 64
        assert (entry["pre"] is not None) is pre
    assert await a.without_session(nb) == [] and await b.without_session(na) == []


async def test_a_copy_taken_at_t_cannot_read_after_the_next_ratchet_step(
        sdk_pair: Any, gw: Gateway, tmp_path: Path) -> None:
    """Bob's whole home (keys, sessions, history, passphrase known) copied at T. Bob's own
    next DH step comes when he receives Alice's new ratchet key and answers with one of
    his own; what Alice sends after that (on a chain rooted in Bob's new key) does not open
    with the copy (an `undecryptable` alert, never the text); Bob reads it. Before that
    step the copy still reads: the window docs/sessions.md states."""
    a, b, na, nb = sdk_pair
    await a.send_text(nb, "before T")
    await collect(b, na, 1)
    copy_home = tmp_path / "bob-copy"
    shutil.copytree(b.profile.home, copy_home)  # T
    await b.send_text(na, "Bob answers")
    await until(a, nb, "Bob answers")
    await a.send_text(nb, "Alice ratchets: a new key of hers")
    await until(b, na, "Alice ratchets: a new key of hers")
    await b.send_text(na, "Bob ratchets: a new key of his")
    await until(a, nb, "Bob ratchets: a new key of his")
    ack = await a.send_text(nb, "after the step")
    await until(b, na, "after the step")
    thief = Client(gw.http, home=copy_home, passphrase=PASS)
    try:
        events = await thief.history(na)
    finally:
        await thief.close()
    texts = [e.text for e in events if isinstance(e, Message)]
    assert texts == ["before T", "Alice ratchets: a new key of hers"]  # the window
    alerts = [e for e in events if isinstance(e, Alert)]
    assert [(e.kind, e.detail.split(":")[0]) for e in alerts] == [
        ("not_for_device", "the message holds no key for this device"),  # Bob's own, live
        ("not_for_device", "the message holds no key for this device"),
        ("undecryptable", "bad_message")]
    assert alerts[-1].id == ack["id"]


async def test_current_keys_cannot_open_what_was_received_before(
        sdk_pair: Any, gw: Gateway) -> None:
    """Bob's device without its kept history (only its keys and sessions, as at a later
    time T) cannot open any of the messages it received before from the server's
    ciphertext: each says key_gone. With its history it reads them all."""
    a, b, na, nb = sdk_pair
    for i in range(3):
        await a.send_text(nb, f"m{i}")
    await collect(b, na, 3)
    await b.send_text(na, "reply")  # and Bob's own sent message
    assert [e.text for e in await b.history(na) if isinstance(e, Message)] == [
        "m0", "m1", "m2", "reply"]
    await b.close()
    shutil.rmtree(b.profile.home / "history")
    again = Client(gw.http, home=b.profile.home, passphrase=PASS)
    try:
        events = await again.history(na)
    finally:
        await again.close()
    assert not [e for e in events if isinstance(e, Message)]
    alerts = [e for e in events if isinstance(e, Alert)]
    assert [a.kind for a in alerts] == ["undecryptable"] * 3 + ["not_for_device"]
    assert all(a.detail.startswith("key_gone") for a in alerts[:3])


async def test_a_device_without_prekeys_gets_rsa_until_it_publishes(
        gw: Gateway, stack: Stack, mongo: pymongo.MongoClient[dict[str, Any]],
        tmp_path: Path) -> None:
    """Migration: Bob's device made before v3 (its bundle gone from the directory) gets an
    RSA-wrapped key and reads the message; Alice's client says the conversation is not
    forward secret. Once Bob's client starts again it publishes prekeys, and Alice's next
    message (after the claim interval) is a ratchet entry."""
    from support import unique_name
    a = Client(gw.http, home=tmp_path / "a", passphrase=PASS)
    b = Client(gw.http, home=tmp_path / "b", passphrase=PASS)
    na, nb = unique_name("mia"), unique_name("mib")
    try:
        await a.register(na, "password-a-123")
        await b.register(nb, "password-b-123")
        await a.add_friend(nb)
        await b.accept_friend(na)
        db = mongo[stack.db_name]
        db[PREKEYS].delete_many({"user": b.user_id})  # as a client made before v3
        ack = await a.send_text(nb, "to an old client")
        [entry] = (await stored(a, nb, mongo, stack, ack["id"]))["body"]["keys"]
        assert "h" not in entry and len(entry["wk"]) > 64  # RSA-OAEP
        assert await a.without_session(nb) == [b.device.kid]
        [got] = await collect(b, na, 1)
        assert isinstance(got, Message) and got.text == "to an old client"
        env = (await stored(a, nb, mongo, stack, ack["id"]))["body"]
        assert b.local.key(got.room, envelope_hash(env)) is not None  # kept, though RSA
        assert await b.publish_prekeys() == 100
        a._claimed.clear()  # the claim interval has passed
        ack = await a.send_text(nb, "now forward secret")
        [entry] = (await stored(a, nb, mongo, stack, ack["id"]))["body"]["keys"]
        assert "h" in entry and entry["pre"] is not None
        [got] = await collect(b, na, 1)
        assert isinstance(got, Message) and got.text == "now forward secret"
        assert await a.without_session(nb) == []
        doc = await stored(a, nb, mongo, stack, ack["id"])
        assert doc["room"] == room_id(a.user_id, b.user_id)
    finally:
        await a.close()
        await b.close()


async def test_dropped_messages_within_the_bound_open_and_beyond_it_are_named(
        sdk_pair: Any, stack: Stack, mongo: pymongo.MongoClient[dict[str, Any]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Alice's messages deleted from the server before Bob reads them (a server dropping
    them): with 3 of them gone, the next opens after a `gap` alert (its skipped keys
    derived); with more than MAX_SKIP gone (5 here) the next is an `undecryptable`
    too_far_ahead alert, never silently missing."""
    monkeypatch.setattr(ratchet, "MAX_SKIP", 5)
    a, b, na, nb = sdk_pair
    acks = [await a.send_text(nb, f"m{i}") for i in range(12)]
    await a.wait_stored(nb, acks[-1]["id"])
    coll = mongo[stack.db_name][MESSAGES]
    coll.delete_many({"id": {"$in": [x["id"] for x in acks[1:4] + acks[5:11]]}})
    events = await b.history(na)
    got = [(e.kind, e.text if isinstance(e, Message) else e.detail.split(":")[0])
           for e in events]
    assert got == [("text", "m0"), ("gap", got[1][1]), ("text", "m4"), ("gap", got[3][1]),
                   ("undecryptable", "too_far_ahead")]
