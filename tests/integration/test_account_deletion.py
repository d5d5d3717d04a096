"""DELETE /api/account: refused without the right password; otherwise no document of the
user is left (user and device keys, friendships, blocks, read positions, presence,
sessions, request counts) nor of their conversations (docs/security.md), other rooms
untouched, and their sockets and their friends' rooms with them close on every gateway."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pymongo
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from support import (
    Gateway,
    Stack,
    befriend,
    device_send,
    eventually,
    open_device,
    open_socket,
    signup,
    wait_stored,
)
from test_cli import duet, ok, register_pair
from test_unfriend_block import closed_with

from client import Client
from client.crypto import DeviceKeys
from client.errors import ApiError
from client.sessions import sign_bundle
from contracts import FRIENDSHIPS, MESSAGES, PRESENCE, READS, USERS, room_id
from contracts.codes import FORBIDDEN_ROOM, NOT_AUTHENTICATED
from contracts.documents import BLOCKS, FRIEND_REQUEST_DAYS, HISTORY_SHARES, PREKEYS, SESSIONS

pytestmark = pytest.mark.timeout(90)
SECOND_SWEEP_S = 10.0  # gateway.deletion.SWEEP_AGAIN_S


@pytest.fixture(scope="module")
def gw2(stack: Stack, gw: Gateway) -> Gateway:
    """A second gateway of the same stack."""
    return stack.gateway()


def leftovers(db: Any, uid: str) -> dict[str, int]:
    """Documents anywhere that still name the user (or a room of theirs)."""
    rooms = {"$regex": f"^{uid}\\.|\\.{uid}$"}
    queries = {
        USERS: {"_id": uid},
        FRIENDSHIPS: {"$or": [{"requester": uid}, {"addressee": uid}]},
        BLOCKS: {"$or": [{"blocker": uid}, {"blocked": uid}]},
        READS: {"$or": [{"user": uid}, {"room": rooms}]},
        PRESENCE: {"user": uid},
        SESSIONS: {"user": uid},
        FRIEND_REQUEST_DAYS: {"user": uid},
        MESSAGES: {"$or": [{"room": rooms}, {"sender": uid}]},
        HISTORY_SHARES: {"user": uid},
        PREKEYS: {"user": uid},
    }
    counts = {name: db[name].count_documents(q) for name, q in queries.items()}
    return {name: n for name, n in counts.items() if n}


async def test_delete_account_refused_without_the_password(gw: Gateway) -> None:
    """No body, or a wrong password, deletes nothing."""
    async with httpx.AsyncClient() as http:
        a = await signup(http, gw.http)
        url = f"{gw.http}/api/account"
        r = await http.delete(url, headers=a.auth)
        assert r.status_code == 422 and r.json()["code"] == "invalid_request", r.text
        r = await http.request("DELETE", url, json={"password": "not the password"},
                               headers=a.auth)
        assert r.status_code == 403 and r.json()["code"] == "forbidden", r.text
        r = await http.request("DELETE", url, json={"password": a.password})
        assert r.status_code == 401
        r = await http.post(f"{gw.http}/api/login",
                            json={"username": a.username, "password": a.password})
        assert r.status_code == 200, "the account is still there"


async def publish_prekeys(http: httpx.AsyncClient, base: str, user: Any) -> None:
    """The user's device and its prekey bundle, published."""
    keys = DeviceKeys.generate()
    r = await http.put(f"{base}/api/keys", json={"keys": [keys.public(user.user_id)]},
                       headers=user.auth)
    assert r.status_code == 200, r.text
    bundle = sign_bundle(keys, user.user_id, X25519PrivateKey.generate(), 1,
                         X25519PrivateKey.generate())
    r = await http.put(f"{base}/api/prekeys", json={"bundle": bundle}, headers=user.auth)
    assert r.status_code == 200, r.text


async def test_delete_account_leaves_no_document_of_the_user(
        gw: Gateway, gw2: Gateway, stack: Stack,
        mongo: pymongo.MongoClient[dict[str, Any]]) -> None:
    """Everything of the user's and their conversations go; the friend's other room stays;
    the user's socket closes 4401 and the friend's room with them 4403 on another gateway."""
    db = mongo[stack.db_name]
    async with httpx.AsyncClient() as http:
        a, b, c, d, e = [await signup(http, gw.http) for _ in range(5)]
        await befriend(http, gw.http, a, b)
        await befriend(http, gw.http, b, c)
        for blocker, blocked in ((a, c), (d, a)):
            r = await http.post(f"{gw.http}/api/blocks", json={"username": blocked.username},
                                headers=blocker.auth)
            assert r.status_code == 201, r.text
        r = await http.post(f"{gw.http}/api/friends", json={"username": a.username},
                            headers=e.auth)  # a pending request to a
        assert r.status_code == 201, r.text
        await publish_prekeys(http, gw.http, a)
        ab, bc = room_id(a.user_id, b.user_id), room_id(b.user_id, c.user_id)
        async with open_device(gw2, a) as a_dev, open_socket(gw2, b, a) as b_room, \
                open_device(gw, b) as b_dev:
            await a_dev.send(device_send(a, b, "from-a", 0))
            await b_dev.send(device_send(b, a, "from-b", 0))
            await b_dev.send(device_send(b, c, "to-c", 0))
            await wait_stored(mongo, stack.db_name, ab, 2)
            await wait_stored(mongo, stack.db_name, bc, 1)
            cursor = db[MESSAGES].find_one({"room": ab, "id": "from-a"})["cursor"]
            for reader, peer in ((a, b), (b, a)):
                r = await http.post(f"{gw.http}/api/conversations/{peer.user_id}/read",
                                    json={"cursor": cursor}, headers=reader.auth)
                assert r.status_code == 200, r.text
            await eventually(lambda: db[PRESENCE].count_documents({"user": a.user_id}),
                             5, "a's presence document")
            assert set(leftovers(db, a.user_id)) == {
                USERS, FRIENDSHIPS, BLOCKS, READS, PRESENCE, SESSIONS, MESSAGES,
                FRIEND_REQUEST_DAYS, PREKEYS}

            r = await http.request("DELETE", f"{gw.http}/api/account",
                                   json={"password": a.password}, headers=a.auth)
            assert r.status_code == 204, r.text
            assert await closed_with(a_dev) == NOT_AUTHENTICATED
            assert await closed_with(b_room) == FORBIDDEN_ROOM
            # b's device stays open: b's other friend still gets sends, a is no friend now.
            await b_dev.send(device_send(b, c, "after", 1))
            while (await b_dev.recv_type("ack"))["id"] != "after":
                pass
            await b_dev.send(device_send(b, a, "to-nobody", 1))
            refused = await b_dev.recv_type("error")
            assert refused["code"] == "not_friends" and refused["id"] == "to-nobody"

        # The second sweep catches a presence document the closing socket wrote late.
        await eventually(lambda: not leftovers(db, a.user_id), SECOND_SWEEP_S + 5,
                         "no document of the deleted user")
        await wait_stored(mongo, stack.db_name, bc, 2)  # b's other room is untouched
        assert db[READS].count_documents({"user": b.user_id}) == 0
        r = await http.get(f"{gw.http}/api/friends", headers=b.auth)
        assert [f["user_id"] for f in r.json()["friends"]] == [c.user_id]
        r = await http.post(f"{gw.http}/api/login",
                            json={"username": a.username, "password": a.password})
        assert r.status_code == 401

        async def token_refused() -> bool:  # its session is gone (a cached answer lives 2 s)
            r = await http.get(f"{gw2.http}/api/friends", headers=a.auth)
            return r.status_code == 401
        await eventually(token_refused, 5, "the deleted user's token refused")
        r = await http.get(f"{gw.http}/api/users/{a.username}", headers=b.auth)
        assert r.status_code == 404
        r = await http.post(f"{gw.http}/api/register",
                            json={"username": a.username, "password": a.password})
        assert r.status_code == 201, "the name is free again"


async def test_sdk_and_cli_delete_account(
        gw: Gateway, sdk_pair: tuple[Client, Client, str, str], tmp_path: Path) -> None:
    """Client.delete_account refuses a wrong password and deletes with the right one;
    `duet delete-account` without a terminal needs --yes, then deletes."""
    a, b, na, _ = sdk_pair
    with pytest.raises(ApiError) as refused:
        await a.delete_account("not the password")
    assert refused.value.status == 403
    await a.delete_account("password-a-123")
    assert await b.friends() == []
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{gw.http}/api/login",
                            json={"username": na, "password": "password-a-123"})
        assert r.status_code == 401

    x, y, hx, hy = await asyncio.to_thread(register_pair, gw, tmp_path / "cli")
    unconfirmed = await asyncio.to_thread(duet, gw, hx, "delete-account")
    assert unconfirmed.code == 1 and "--yes" in unconfirmed.err, str(unconfirmed)
    ok(await asyncio.to_thread(duet, gw, hx, "delete-account", "--yes"))
    assert ok(await asyncio.to_thread(duet, gw, hy, "--json", "friends", "list")).lines() == []
    gone = await asyncio.to_thread(duet, gw, hx, "login", x)
    assert gone.code == 1, str(gone)
