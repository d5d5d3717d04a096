"""The prekey directory (docs/sessions.md "Prekeys"): a device publishes a bundle its signing
key signed and one-time prekeys; each claim by a friend takes one one-time prekey, never the
same one twice even when claims race; a new signed prekey replaces the old; a revoked
device's bundle is no longer served."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from support import Gateway, befriend, signup

from client import crypto
from client.ratchet import public_raw
from client.sessions import sign_bundle
from contracts.prekeys import MAX_ONE_TIME, bundle_signing_input


def x() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def one_time(ids: range) -> list[dict[str, Any]]:
    return [{"id": i, "key": crypto.b64u(public_raw(x()))} for i in ids]


async def device_of(http: httpx.AsyncClient, base: str, user: Any) -> crypto.DeviceKeys:
    keys = crypto.DeviceKeys.generate()
    r = await http.put(f"{base}/api/keys", json={"keys": [keys.public(user.user_id)]},
                       headers=user.auth)
    assert r.status_code == 200, r.text
    return keys


async def test_claims_take_each_one_time_prekey_once_then_none(gw: Gateway) -> None:
    """Bob's friend claims Bob's bundle four times: the three one-time prekeys in order, then
    none; the bundle verifies under Bob's device key; Bob's stock counts down to 0."""
    async with httpx.AsyncClient() as http:
        alice, bob = await signup(http, gw.http), await signup(http, gw.http)
        await befriend(http, gw.http, alice, bob)
        keys = await device_of(http, gw.http, bob)
        bundle = sign_bundle(keys, bob.user_id, x(), 1, x())
        stock = one_time(range(10, 13))
        r = await http.put(f"{gw.http}/api/prekeys", headers=bob.auth,
                           json={"bundle": bundle, "one_time": stock})
        assert r.status_code == 200, r.text
        assert r.json() == {"kid": keys.kid, "spk_id": 1, "one_time_left": 3}
        taken = []
        for _ in range(4):
            r = await http.get(f"{gw.http}/api/prekeys/{bob.user_id}", headers=alice.auth)
            assert r.status_code == 200, r.text
            [device] = r.json()["devices"]
            assert device["bundle"] == bundle
            assert crypto.verify(keys.sig.public_key(), bundle_signing_input(device["bundle"]),
                                 crypto.unb64u(device["bundle"]["sig"]))
            taken.append(device["one_time"])
        assert taken == [*stock, None]
        r = await http.get(f"{gw.http}/api/prekeys", headers=bob.auth)
        assert r.json() == [{"kid": keys.kid, "spk_id": 1, "one_time_left": 0}]


async def test_racing_claims_never_share_a_one_time_prekey(gw: Gateway) -> None:
    """Thirty claims at once for a stock of twenty: twenty distinct one-time prekeys and ten
    claims without one."""
    async with httpx.AsyncClient() as http:
        alice, bob = await signup(http, gw.http), await signup(http, gw.http)
        await befriend(http, gw.http, alice, bob)
        keys = await device_of(http, gw.http, bob)
        r = await http.put(f"{gw.http}/api/prekeys", headers=bob.auth, json={
            "bundle": sign_bundle(keys, bob.user_id, x(), 1, x()),
            "one_time": one_time(range(20))})
        assert r.status_code == 200, r.text
        answers = await asyncio.gather(*(
            http.get(f"{gw.http}/api/prekeys/{bob.user_id}", headers=alice.auth)
            for _ in range(30)))
        got = [a.json()["devices"][0]["one_time"] for a in answers]
        ids = [k["id"] for k in got if k is not None]
        assert sorted(ids) == list(range(20))
        assert got.count(None) == 10


async def test_new_signed_prekey_replaces_and_the_stock_is_bounded(gw: Gateway) -> None:
    """A new bundle (signed prekey 2) replaces the first and keeps the stock; an id already
    held is refused (409); the stock never exceeds MAX_ONE_TIME (409); a key that is not
    canonical base64url of 32 bytes is refused (422)."""
    async with httpx.AsyncClient() as http:
        bob = await signup(http, gw.http)
        keys = await device_of(http, gw.http, bob)
        url = f"{gw.http}/api/prekeys"
        r = await http.put(url, headers=bob.auth, json={
            "bundle": sign_bundle(keys, bob.user_id, x(), 1, x()),
            "one_time": one_time(range(60))})
        assert r.json()["one_time_left"] == 60
        second = sign_bundle(keys, bob.user_id, x(), 2, x())
        r = await http.put(url, headers=bob.auth, json={"bundle": second,
                                                        "one_time": one_time(range(59, 61))})
        assert r.status_code == 409, r.text
        assert "59" in r.json()["detail"]
        r = await http.put(url, headers=bob.auth, json={"bundle": second,
                                                        "one_time": one_time(range(60, 101))})
        assert r.status_code == 409, r.text
        r = await http.put(url, headers=bob.auth, json={"bundle": second,
                                                        "one_time": one_time(range(60, 100))})
        assert r.json() == {"kid": keys.kid, "spk_id": 2, "one_time_left": MAX_ONE_TIME}
        r = await http.get(f"{url}/{bob.user_id}", headers=bob.auth)  # one's own: allowed
        assert r.json()["devices"][0]["bundle"] == second
        r = await http.put(url, headers=bob.auth, json={
            "bundle": sign_bundle(keys, bob.user_id, x(), 3, x()),
            "one_time": [{"id": 500, "key": "A" * 42 + "B"}]})
        assert r.status_code == 422, r.text


async def test_a_revoked_device_bundle_is_no_longer_served(gw: Gateway) -> None:
    """A claim may name devices (only theirs are served, and only their stock shrinks); of
    Bob's two devices with bundles, only the live one is served after the other is
    revoked."""
    async with httpx.AsyncClient() as http:
        alice, bob = await signup(http, gw.http), await signup(http, gw.http)
        await befriend(http, gw.http, alice, bob)
        phone, laptop = (await device_of(http, gw.http, bob), await device_of(http, gw.http, bob))
        for keys in (phone, laptop):
            r = await http.put(f"{gw.http}/api/prekeys", headers=bob.auth, json={
                "bundle": sign_bundle(keys, bob.user_id, x(), 1, x()),
                "one_time": one_time(range(5))})
            assert r.status_code == 200, r.text
        url = f"{gw.http}/api/prekeys/{bob.user_id}"
        r = await http.get(url, headers=alice.auth)
        assert {d["bundle"]["kid"] for d in r.json()["devices"]} == {phone.kid, laptop.kid}
        r = await http.get(url, headers=alice.auth, params={"devices": laptop.kid})
        [only] = r.json()["devices"]
        assert (only["bundle"]["kid"], only["one_time"]["id"]) == (laptop.kid, 1)
        r = await http.get(f"{gw.http}/api/prekeys", headers=bob.auth)
        assert {s["kid"]: s["one_time_left"] for s in r.json()} == {phone.kid: 4, laptop.kid: 3}
        r = await http.delete(f"{gw.http}/api/keys/{laptop.kid}", headers=bob.auth)
        assert r.status_code == 204, r.text
        r = await http.get(url, headers=alice.auth)
        assert [d["bundle"]["kid"] for d in r.json()["devices"]] == [phone.kid]
