"""The key directory: every uploaded key is parsed; weak and wrong keys, and keys without
their device's proof of possession, are refused."""

from __future__ import annotations

from pathlib import Path

import httpx
import pymongo
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from support import Gateway, Stack, signup, unique_name

from client import Client
from client.crypto import DeviceKeys, b64u, sign, spki, unb64u
from contracts.envelope import P256_N
from contracts.keys import device_proof_input

GOOD, OTHER = DeviceKeys.generate(), DeviceKeys.generate()


def proof(device: dict, user: str, signer: DeviceKeys = GOOD) -> str:
    """signer's signature over the claim that `user` publishes this device."""
    return b64u(sign(signer.sig, device_proof_input(user, device.get("enc", ""),
                                                    device.get("sig", ""),
                                                    device.get("label"))))


def high_s(signature: str) -> str:
    raw = unb64u(signature)
    return b64u(raw[:32] + (P256_N - int.from_bytes(raw[32:], "big")).to_bytes(32, "big"))


def der(key: object) -> str:
    return b64u(key.public_bytes(serialization.Encoding.DER,  # type: ignore[attr-defined]
                                 serialization.PublicFormat.SubjectPublicKeyInfo))


def rsa_spki(bits: int, e: int = 65537) -> str:
    return b64u(spki(rsa.generate_private_key(public_exponent=e, key_size=bits).public_key()))


BAD_UPLOADS = [
    ("not base64url", {"enc": "%%%", "sig": GOOD.sig_spki}, 422),
    ("not a key", {"enc": b64u(b"hello, i am not a key at all"), "sig": GOOD.sig_spki}, 422),
    ("1024-bit RSA", {"enc": rsa_spki(1024), "sig": GOOD.sig_spki}, 422),
    ("exponent 3", {"enc": rsa_spki(2048, 3), "sig": GOOD.sig_spki}, 422),
    ("EC key as enc", {"enc": GOOD.sig_spki, "sig": GOOD.sig_spki}, 422),
    ("RSA key as sig", {"enc": GOOD.enc_spki, "sig": GOOD.enc_spki}, 422),
    ("P-384 sig", {"enc": GOOD.enc_spki,
                   "sig": b64u(spki(ec.generate_private_key(ec.SECP384R1()).public_key()))}, 422),
    ("Ed25519 sig", {"enc": GOOD.enc_spki,
                     "sig": der(ed25519.Ed25519PrivateKey.generate().public_key())}, 422),
    ("DSA enc", {"enc": der(dsa.generate_private_key(2048).public_key()),
                 "sig": GOOD.sig_spki}, 422),
    ("extra field", {"enc": GOOD.enc_spki, "sig": GOOD.sig_spki, "priv": "x"}, 422),
    ("missing sig", {"enc": GOOD.enc_spki}, 422),
    # Proof of possession (each of these uploads holds good keys):
    ("missing proof", {"enc": GOOD.enc_spki, "sig": GOOD.sig_spki, "proof": None}, 422),
    ("proof by another device's key", {"enc": GOOD.enc_spki, "sig": GOOD.sig_spki,
                                       "proof": "other"}, 422),
    ("proof for another user", {"enc": GOOD.enc_spki, "sig": GOOD.sig_spki,
                                "proof": "another user"}, 422),
    ("proof for another label", {"enc": GOOD.enc_spki, "sig": GOOD.sig_spki,
                                 "label": "phone", "proof": "another label"}, 422),
    ("proof with a high s", {"enc": GOOD.enc_spki, "sig": GOOD.sig_spki,
                             "proof": "high s"}, 422),
]


def upload(device: dict, user: str) -> dict:
    """The device as sent: with GOOD's proof for `user` unless the row says otherwise."""
    body, how = dict(device), device.get("proof", "good")
    if how is None:
        del body["proof"]
    elif how == "good":
        body["proof"] = proof(device, user)
    elif how == "other":
        body["proof"] = proof(device, user, OTHER)
    elif how == "another user":
        body["proof"] = proof(device, "ffffffffffffffffffffffff")
    elif how == "another label":
        body["proof"] = proof({**device, "label": None}, user)
    elif how == "high s":
        good = proof(device, user)
        body["proof"] = high_s(good)
    return body


@pytest.mark.parametrize(("what", "device", "status"), BAD_UPLOADS,
                         ids=[b[0] for b in BAD_UPLOADS])
async def test_put_keys_bad_key_returns_422_problem(gw: Gateway, what: str, device: dict,
                                                    status: int) -> None:
    """Malformed, short, wrong-algorithm and non-key uploads: 422 problem JSON."""
    async with httpx.AsyncClient() as http:
        u = await signup(http, gw.http)
        r = await http.put(f"{gw.http}/api/keys", json={"keys": [upload(device, u.user_id)]},
                           headers=u.auth)
        assert r.status_code == status, (what, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["detail"]
        r = await http.get(f"{gw.http}/api/users/{u.username}", headers=u.auth)
        assert r.json()["keys"] == []


async def test_put_keys_good_key_published_with_fingerprint(gw: Gateway) -> None:
    """A good device is published; its kid is the SHA-256 fingerprint of its SPKI."""
    async with httpx.AsyncClient() as http:
        u = await signup(http, gw.http)
        r = await http.put(f"{gw.http}/api/keys", json={"keys": [GOOD.public(u.user_id)]},
                           headers=u.auth)
        assert r.status_code == 200
        [key] = r.json()["keys"]
        assert (key["kid"], key["sid"]) == (GOOD.kid, GOOD.sid)
        r = await http.put(f"{gw.http}/api/keys", json={"keys": [GOOD.public(u.user_id)]},
                           headers=u.auth)
        assert len(r.json()["keys"]) == 1  # idempotent


async def test_revoked_key_gets_no_new_wrapped_keys(gw: Gateway, stack: Stack,
                                                    mongo: pymongo.MongoClient,
                                                    tmp_path: Path) -> None:
    """After B revokes a device, A's next message wraps no key for it; it cannot return."""
    pw = "password-123"
    a = Client(gw.http, home=tmp_path / "a", passphrase="p")
    b = Client(gw.http, home=tmp_path / "b", passphrase="p")
    b2 = Client(gw.http, home=tmp_path / "b2", passphrase="p")
    na, nb = unique_name("ra"), unique_name("rb")
    try:
        await a.register(na, pw)
        await b.register(nb, pw)
        await b2.login(nb, pw)
        await b.approve_device(b2.link_code)
        await a.add_friend(nb)
        await b.accept_friend(na)
        first = await a.send_text(nb, "to both devices")
        await b.revoke_device(b2.device.kid)
        second = await a.send_text(nb, "to one device")
        await a.wait_stored(nb, second["id"])
        coll = mongo[stack.db_name].messages
        kids = {d["id"]: {k["kid"] for k in d["body"]["keys"]}
                for d in coll.find({"id": {"$in": [first["id"], second["id"]]}})}
        assert b2.device.kid in kids[first["id"]]
        assert b2.device.kid not in kids[second["id"]] and b.device.kid in kids[second["id"]]
        user = await a.api.user(nb)
        assert [k["kid"] for k in user["revoked"]] == [b2.device.kid]
        r = await b.api._http.put("/api/keys", json={"keys": [b2.device.public(b.user_id)]},
                                  headers={"Authorization": f"Bearer {b.api.token}"})
        assert r.status_code == 409
    finally:
        for c in (a, b, b2):
            await c.close()
