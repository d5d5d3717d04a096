"""A server that alters, drops or replays messages is caught by the SDK, each as such."""

from __future__ import annotations

import asyncio
import copy

import pymongo
import pytest
from support import Gateway, Stack, eventually

from client import Alert, Message, crypto
from client.envelope import signing_input
from contracts import room_id


@pytest.fixture
async def convo(sdk_pair, stack: Stack, mongo: pymongo.MongoClient):  # type: ignore[no-untyped-def]
    """A sent B three messages, all stored; yields (a, b, name of a, messages collection)."""
    a, b, na, nb = sdk_pair
    for i in range(3):
        ack = await a.send_text(nb, f"secret {i}")
    await a.wait_stored(nb, ack["id"])
    coll = mongo[stack.db_name].messages
    room = room_id(a.user_id, b.user_id)
    docs = list(coll.find({"room": room}).sort("cursor", 1))
    assert len(docs) == 3
    return a, b, na, coll, docs


def kinds(events: list) -> list[str]:
    return [e.kind if isinstance(e, Alert) else f"msg:{e.text}" for e in events]


async def test_history_intact_verifies_every_message(convo) -> None:
    """Untouched history: three verified messages, no alert."""
    _, b, na, _, _ = convo
    assert kinds(await b.history(na)) == ["msg:secret 0", "msg:secret 1", "msg:secret 2"]


async def test_body_altered_in_storage_is_reported_bad_signature(convo) -> None:
    """Ciphertext changed in MongoDB: a bad_signature alert, never a message."""
    _, b, na, coll, docs = convo
    ct = docs[1]["body"]["ct"]
    coll.update_one({"_id": docs[1]["_id"]},
                    {"$set": {"body.ct": ("B" if ct[0] != "B" else "C") + ct[1:]}})
    # The altered message counts as missing, so the next one also reports the gap.
    assert kinds(await b.history(na)) == ["msg:secret 0", "bad_signature", "gap",
                                          "msg:secret 2"]


async def test_wrapped_key_swapped_is_reported_bad_signature(convo) -> None:
    """B's key entry replaced by B's entry of another message (a valid ratchet message for
    B, from the same sender): caught by the signature before the session is touched."""
    _, b, na, coll, docs = convo
    keys = docs[0]["body"]["keys"]
    mine = next(k for k in keys if k["kid"] == b.device.kid)
    other = next(k for k in docs[1]["body"]["keys"] if k["kid"] == b.device.kid)
    swapped = [other if k is mine else k for k in keys]
    coll.update_one({"_id": docs[0]["_id"]}, {"$set": {"body.keys": swapped}})
    assert kinds(await b.history(na))[0] == "bad_signature"


async def test_signature_from_another_key_is_reported(convo) -> None:
    """Re-signed by a key that is not the named device's: bad_signature; naming a key the
    sender never published: unknown_key."""
    _, b, na, coll, docs = convo
    forger = crypto.DeviceKeys.generate()
    env = copy.deepcopy(docs[2]["body"])
    env["sig"] = crypto.b64u(crypto.sign(forger.sig, signing_input(env)))
    coll.update_one({"_id": docs[2]["_id"]}, {"$set": {"body": env}})
    env2 = copy.deepcopy(docs[1]["body"])
    env2["from"] = forger.kid
    env2["sig"] = crypto.b64u(crypto.sign(forger.sig, signing_input(env2)))
    coll.update_one({"_id": docs[1]["_id"]}, {"$set": {"body": env2}})
    assert kinds(await b.history(na)) == ["msg:secret 0", "unknown_key", "bad_signature"]
    assert "secret 1" not in str(await b.history(na))


async def test_dropped_message_is_reported_as_gap(convo) -> None:
    """The middle message deleted: the third arrives with a gap alert before it."""
    _, b, na, coll, docs = convo
    coll.delete_one({"_id": docs[1]["_id"]})
    assert kinds(await b.history(na)) == ["msg:secret 0", "gap", "msg:secret 2"]


async def test_replayed_message_is_reported_as_replay(convo) -> None:
    """An old envelope re-inserted later under a new id: a replay alert, not a message."""
    _, b, na, coll, docs = convo
    copy_doc = dict(docs[0], _id=docs[0]["_id"] + "x", id=docs[0]["id"] + "x",
                    cursor="f" * 32)
    coll.insert_one(copy_doc)
    assert kinds(await b.history(na)) == ["msg:secret 0", "msg:secret 1", "msg:secret 2",
                                          "replay"]


async def test_live_tampering_is_reported_not_shown(convo, gw: Gateway) -> None:
    """Live delivery goes through the same checks: a gap is reported on the live path."""
    a, b, na, coll, docs = convo
    events: list = []

    async def listen() -> None:
        async for e in b.listen(na):
            events.append(e)
            if len(events) >= 5:
                return

    task = asyncio.create_task(listen())
    await eventually(lambda: len(events) >= 3, 10, "three events heard live")
    # A's device skips a sequence number, as a server dropping one would look live.
    room = room_id(a.user_id, b.user_id)
    a._send_chains[room]["seq"] += 1
    await a.send_text(b.username, "after a drop")
    await asyncio.wait_for(task, 10)
    assert kinds(events)[3:] == ["gap", "msg:after a drop"]
    assert isinstance(events[-1], Message)
