"""The bad-input catalogue: each hostile input gets its documented answer while an honest
conversation runs beside it and loses nothing. docs/protocol.md lists the same catalogue."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from reliability import record
from support import (
    TOKEN_SECRET,
    Gateway,
    Stack,
    User,
    befriend,
    device_send,
    envelope,
    eventually,
    open_device,
    open_socket,
    signup,
    stream,
)
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

CATALOGUE = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()


@dataclass(frozen=True)
class Case:
    name: str
    answer: str  # as docs/protocol.md's catalogue states it

    def __post_init__(self) -> None:
        assert f"| {self.name} | {self.answer} |" in CATALOGUE, f"the catalogue lacks {self}"


def token(user: User, **claims: Any) -> str:
    base = {"sub": user.user_id, "aud": "duet", "exp": int(time.time()) + 60}
    return jwt.encode({**base, **claims}, TOKEN_SECRET, algorithm="HS256")


# --- frames on an open, authenticated socket -------------------------------------------
def v2_signatures() -> tuple[str, str]:
    """A signature's two forms envelope v2 refuses: high s, and low s re-encoded (a spare
    bit of the last base64url digit set)."""
    import base64
    import secrets

    from contracts.envelope import P256_N

    def b64u(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    r = secrets.token_bytes(32)
    high = b64u(r + (P256_N - 7).to_bytes(32, "big"))
    low = b64u(r + (7).to_bytes(32, "big"))
    digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return high, low[:-1] + digits[digits.index(low[-1]) | 1]


def frame_cases(a: User, b: User, c: User) -> list[tuple[Case, Any]]:
    env = envelope(a, b)
    high_s, reencoded = v2_signatures()
    return [
        (Case("malformed JSON", "error bad_json"), "{not json"),
        (Case("binary frame", "error binary_frame"), b"\x00\xff"),
        (Case("JSON that is not an object", "error invalid_frame"), "[1, 2]"),
        (Case("unknown frame type", "error unknown_type"), {"type": "shout"}),
        (Case("frame without a type", "error unknown_type"), {"id": "x"}),
        (Case("send without id", "error invalid_frame"),
         {"type": "send", "kind": "text", "body": env}),
        (Case("send without body", "error invalid_frame"),
         {"type": "send", "id": "nb", "kind": "text"}),
        (Case("id with forbidden characters", "error invalid_frame"),
         {"type": "send", "id": "../etc", "kind": "text", "body": env}),
        (Case("id longer than 64", "error invalid_frame"),
         {"type": "send", "id": "x" * 65, "kind": "text", "body": env}),
        (Case("mistyped kind", "error invalid_frame"),
         {"type": "send", "id": "mk", "kind": 7, "body": env}),
        (Case("body that is not an envelope", "error invalid_frame"),
         {"type": "send", "id": "bs", "kind": "text", "body": "plain text!"}),
        (Case("envelope with an extra field", "error invalid_frame"),
         {"type": "send", "id": "ef", "kind": "text", "body": {**env, "plaintext": "x"}}),
        (Case("v2 envelope with a high-s signature", "error invalid_frame"),
         {"type": "send", "id": "hs", "kind": "text", "body": {**env, "v": 2, "sig": high_s}}),
        (Case("v2 envelope with a re-encoded signature", "error invalid_frame"),
         {"type": "send", "id": "re", "kind": "text", "body": {**env, "v": 2, "sig": reencoded}}),
        (Case("envelope for another room", "error envelope_mismatch"),
         {"type": "send", "id": "or", "kind": "text", "body": envelope(a, c)}),
        (Case("envelope claiming another sender", "error envelope_mismatch"),
         {"type": "send", "id": "os", "kind": "text", "body": envelope(b, a)}),
        (Case("text over the text limit", "error too_large"),
         {"type": "send", "id": "tl", "kind": "text", "body": envelope(a, b, size=70_000)}),
        (Case("sync with a malformed cursor", "error invalid_frame"),
         {"type": "sync", "after": "zzz"}),
        (Case("sync with an operator object as cursor", "error invalid_frame"),
         {"type": "sync", "after": {"$gt": ""}}),
    ]


async def test_bad_frames_answered_and_honest_conversation_unaffected(gw: Gateway) -> None:
    """Every bad frame gets its error frame on the same socket, which keeps working, while
    an honest pair exchanges messages without loss."""
    async with httpx.AsyncClient() as http:
        a, b, c, d = [await signup(http, gw.http) for _ in range(4)]
        await befriend(http, gw.http, a, b)
        await befriend(http, gw.http, c, d)
    async with open_socket(gw, c, d) as sc, open_socket(gw, d, c) as sd:
        # Paced under this gateway's 20 frames/s limit.
        honest = asyncio.create_task(stream(sc, c, d, [f"h{i}" for i in range(100)],
                                            pace=0.06))
        async with open_socket(gw, a, b) as sa:
            for case, raw in frame_cases(a, b, c):
                if isinstance(raw, bytes):
                    await sa.ws.send(raw)
                else:
                    await sa.send(raw)
                error = await sa.recv_type("error")
                assert f"error {error['code']}" == case.answer, (case, error)
                record("test_bad_frames_answered_and_honest_conversation_unaffected",
                       case.name, case.answer + "; the socket stays open")
            assert (await stream(sa, a, b, ["still-fine"])).acked == ["still-fine"]
        result = await honest
        got = await sd.collect("message", 100)
    assert result.acked == [f"h{i}" for i in range(100)]
    assert [m["id"] for m in got] == result.acked


# --- frames on a device socket (v2) ----------------------------------------------------
def device_cases(a: User, b: User, c: User) -> list[tuple[Case, Any]]:
    room = f"{min(a.user_id, b.user_id)}.{max(a.user_id, b.user_id)}"
    text = device_send(a, b, "x")
    receipt = device_send(a, b, "r", kind="receipt")
    typing = envelope(a, b, kind="typing", size=40)
    return [
        (Case("v2: unknown frame type", "error unknown_type"), {"type": "shout"}),
        (Case("v2: send without a peer", "error invalid_frame"),
         {k: v for k, v in text.items() if k != "peer"}),
        (Case("v2: send to a peer that is not a user id", "error invalid_frame"),
         {**text, "peer": "../admin"}),
        (Case("v2: send to a non-friend", "error not_friends"), {**text, "peer": c.user_id}),
        (Case("v2: send to oneself", "error not_friends"), {**text, "peer": a.user_id}),
        (Case("v2: send of kind typing", "error invalid_frame"),
         {**text, "kind": "typing", "body": typing}),
        (Case("v2: receipt inside the message chain", "error invalid_frame"),
         {**receipt, "body": {**receipt["body"], "seq": 1}}),
        (Case("v2: message outside the message chain", "error invalid_frame"),
         {**text, "body": {**text["body"], "seq": 0}}),
        (Case("v2: receipt over its size limit", "error too_large"),
         {**receipt, "body": envelope(a, b, kind="receipt", size=5000)}),
        (Case("v2: envelope for another room", "error envelope_mismatch"),
         {**text, "body": envelope(a, c)}),
        (Case("v2: sync with a malformed room", "error invalid_frame"),
         {"type": "sync", "after": {"room.*": None}}),
        (Case("v2: sync with an operator object as cursor", "error invalid_frame"),
         {"type": "sync", "after": {room: {"$gt": ""}}}),
        (Case("v2: sync naming over 10,000 rooms", "error invalid_frame"),
         {"type": "sync", "after": {f"{i:024x}.{i + 1:024x}": None for i in range(10_001)}}),
        (Case("v2: typing to a non-friend", "error not_friends"),
         {"type": "typing", "peer": c.user_id, "body": typing}),
        (Case("v2: typing whose envelope is a message", "error envelope_mismatch"),
         {"type": "typing", "peer": b.user_id, "body": text["body"]}),
        (Case("v2: read with a malformed cursor", "error invalid_frame"),
         {"type": "read", "peer": b.user_id, "cursor": "zzz"}),
        (Case("v2: read in a non-friend's room", "error not_friends"),
         {"type": "read", "peer": c.user_id, "cursor": "0" * 32}),
        (Case("v2: a v3 envelope naming the RSA algorithm", "error invalid_frame"),
         {**text, "body": {**text["body"], "v": 3}}),
        (Case("v2: a v2 envelope with a ratchet key entry", "error invalid_frame"),
         {**text, "body": {**text["body"], "keys": [
             {"kid": "A" * 43, "h": {"dh": "A" * 43, "pn": 0, "n": 0}, "pre": None,
              "wk": "A" * 64}]}}),
        (Case("v2: a ratchet key entry whose counter is past 2^32", "error invalid_frame"),
         {**text, "body": {**text["body"], "v": 3, "alg": "X25519-DR+A256GCM+ES256",
                           "keys": [{"kid": "A" * 43, "h": {"dh": "A" * 43, "pn": 0,
                                                             "n": 2**32}, "pre": None,
                                     "wk": "A" * 64}]}}),
        (Case("v2: fetched for another user's device", "error not_your_device"),
         {"type": "fetched", "device": "A" * 43, "peer": b.user_id, "cursor": "0" * 32}),
        (Case("v2: fetched with a malformed cursor", "error invalid_frame"),
         {"type": "fetched", "device": "A" * 43, "peer": b.user_id, "cursor": "zzz"}),
    ]


async def test_bad_device_frames_answered_and_honest_devices_unaffected(gw: Gateway) -> None:
    """Every bad v2 frame gets its error frame on the same device socket, which keeps
    working, while an honest pair on device sockets loses nothing; typing past its limit
    is refused without closing anything."""
    async with httpx.AsyncClient() as http:
        a, b, c, d = [await signup(http, gw.http) for _ in range(4)]
        await befriend(http, gw.http, a, b)
        await befriend(http, gw.http, c, d)
    async with open_device(gw, c) as sc, open_device(gw, d) as sd:
        async def honest() -> list[str]:
            acked = []
            for i in range(60):
                await sc.send(device_send(c, d, f"h{i}", i))
                acked.append((await sc.recv_type("ack", 30))["id"])
                await asyncio.sleep(0.06)  # paces the honest pair across the bad frames
            return acked
        task = asyncio.create_task(honest())
        async with open_device(gw, a) as sa:
            for case, raw in device_cases(a, b, c):
                await sa.send(raw)
                error = await sa.recv_type("error")
                assert f"error {error['code']}" == case.answer, (case, error)
                record("test_bad_device_frames_answered_and_honest_devices_unaffected",
                       case.name, case.answer + "; the socket stays open")
            flood = Case("v2: typing faster than DUET_TYPING_PER_S", "error rate_limited")
            for _ in range(6):
                await sa.send({"type": "typing", "peer": b.user_id,
                               "body": envelope(a, b, kind="typing", size=40)})
            assert f"error {(await sa.recv_type('error'))['code']}" == flood.answer
            record("test_bad_device_frames_answered_and_honest_devices_unaffected",
                   flood.name, flood.answer + "; the socket stays open")
            await sa.send(device_send(a, b, "still-fine"))
            assert (await sa.recv_type("ack"))["id"] == "still-fine"
        acked = await task
        got = await sd.collect("message", 60)
    assert acked == [f"h{i}" for i in range(60)]
    assert [m["id"] for m in got] == acked


# --- sockets refused or closed --------------------------------------------------------
async def closed_with(url: str, **kwargs: Any) -> int | None:
    async with connect(url, max_size=None, **kwargs) as ws:
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 10)
    return ws.close_code


async def test_bad_sockets_closed_with_documented_codes(gw: Gateway) -> None:
    """Absent, forged, expired and URL-borne tokens, foreign rooms and origins, oversized
    frames and floods each end the socket with their documented close code."""
    async with httpx.AsyncClient() as http:
        a, b, c = [await signup(http, gw.http) for _ in range(3)]
        await befriend(http, gw.http, a, b)
    url = f"{gw.ws}/ws/{b.user_id}"
    forged = jwt.encode({"sub": a.user_id, "aud": "duet", "exp": int(time.time()) + 60},
                        "not-the-secret-" * 3, algorithm="HS256")
    cases = [
        (Case("no token", "close 4401"), url, {}),
        (Case("forged token", "close 4401"),
         url, {"additional_headers": {"Authorization": f"Bearer {forged}"}}),
        (Case("expired token", "close 4401"),
         url, {"additional_headers": {"Authorization": f"Bearer {token(a, exp=1)}"}}),
        (Case("token in the URL (ignored)", "close 4401"), f"{url}?token={a.token}", {}),
        (Case("token for a deleted/unknown user id", "close 4401"),
         url, {"additional_headers": {"Authorization": f"Bearer {token(a, sub='x')}"}}),
        (Case("room with a non-friend", "close 4403"),
         f"{gw.ws}/ws/{c.user_id}", {"additional_headers": a.auth}),
        (Case("room id that is not a user id", "close 4403"),
         f"{gw.ws}/ws/not-a-user", {"additional_headers": a.auth}),
        (Case("foreign Origin", "close 1008"),
         url, {"additional_headers": a.auth, "origin": "http://evil.example"}),
        (Case("v2: no token", "close 4401"), f"{gw.ws}/ws", {}),
        (Case("v2: forged token", "close 4401"),
         f"{gw.ws}/ws", {"additional_headers": {"Authorization": f"Bearer {forged}"}}),
        (Case("v2: token in the URL (ignored)", "close 4401"),
         f"{gw.ws}/ws?token={a.token}", {}),
        (Case("v2: foreign Origin", "close 1008"),
         f"{gw.ws}/ws", {"additional_headers": a.auth, "origin": "http://evil.example"}),
    ]
    for case, target, kwargs in cases:
        code = await closed_with(target, **kwargs)
        assert f"close {code}" == case.answer, (case, code)
        record("test_bad_sockets_closed_with_documented_codes", case.name, case.answer)
    async with open_socket(gw, a, b) as sa:
        with pytest.raises(ConnectionClosed):
            await sa.send({"type": "send", "id": "big", "kind": "image",
                           "body": envelope(a, b, kind="image", size=9 * 1024 * 1024)})
            await sa.recv(10)
        assert sa.ws.close_code == 1009
    big = Case("frame over DUET_MAX_FRAME_BYTES", "close 1009")
    record("test_bad_sockets_closed_with_documented_codes", big.name, big.answer)
    async with open_socket(gw, a, b) as sa:
        with pytest.raises(ConnectionClosed):
            for i in range(500):
                await sa.send({"type": "send", "id": f"f{i}", "kind": "text",
                               "body": envelope(a, b, i)})
            while True:
                await sa.recv(10)
        assert sa.ws.close_code == 1008
    flood = Case("frame flood past the rate limit", "close 1008")
    record("test_bad_sockets_closed_with_documented_codes", flood.name, flood.answer)


# --- REST -----------------------------------------------------------------------------
async def test_bad_rest_requests_get_problem_json(gw: Gateway) -> None:
    """Injection objects, unicode tricks, oversized and malformed bodies, bad tokens and
    foreign rooms get problem JSON with their status; the service keeps answering."""
    async with httpx.AsyncClient() as http:
        a, b, c = [await signup(http, gw.http) for _ in range(3)]
        await befriend(http, gw.http, a, b)
        base = gw.http
        from client.crypto import DeviceKeys

        keys, other = DeviceKeys.generate(), DeviceKeys.generate()
        cases = [
            (Case("operator object as username", "422"), "POST", "/api/register",
             {"json": {"username": {"$gt": ""}, "password": "long enough"}}),
            (Case("operator object as password at login", "422"), "POST", "/api/login",
             {"json": {"username": a.username, "password": {"$ne": None}}}),
            (Case("operator object as friend name", "422"), "POST", "/api/friends",
             {"json": {"username": {"$regex": ".*"}}, "headers": a.auth}),
            (Case("fullwidth letters in a username", "422"), "POST", "/api/register",
             {"json": {"username": "ａｄｍｉｎ", "password": "long enough"}}),
            (Case("zero-width space in a username", "422"), "POST", "/api/register",
             {"json": {"username": "ad\u200bmin", "password": "long enough"}}),
            (Case("right-to-left override in a username", "422"), "POST", "/api/register",
             {"json": {"username": "adm\u202enig", "password": "long enough"}}),
            (Case("Cyrillic look-alike in a username", "422"), "POST", "/api/register",
             {"json": {"username": "\u0430dmin", "password": "long enough"}}),
            (Case("NUL in a username", "422"), "POST", "/api/register",
             {"json": {"username": "ad\x00min", "password": "long enough"}}),
            (Case("body that is a JSON array", "422"), "POST", "/api/register",
             {"json": ["alice", "password"]}),
            (Case("body that is not JSON", "422"), "POST", "/api/login",
             {"content": b"username=a&password=b",
              "headers": {"content-type": "application/x-www-form-urlencoded"}}),
            (Case("REST body over DUET_MAX_REST_BYTES", "413"), "POST", "/api/register",
             {"content": b'{"username":"' + b"a" * 200_000 + b'"}',
              "headers": {"content-type": "application/json"}}),
            (Case("no token on an authenticated call", "401"), "GET", "/api/friends", {}),
            (Case("expired token on REST", "401"), "GET", "/api/friends",
             {"headers": {"Authorization": f"Bearer {token(a, exp=1)}"}}),
            (Case("API docs page while DUET_API_DOCS is off", "404"), "GET", "/api/docs", {}),
            (Case("OpenAPI document while DUET_API_DOCS is off", "404"), "GET",
             "/api/openapi.json", {}),
            (Case("history of a room one is not in", "403"), "GET",
             f"/api/rooms/{a.user_id}/messages", {"headers": c.auth}),
            (Case("history with an operator object as cursor", "422"), "GET",
             f"/api/rooms/{b.user_id}/messages", {"params": {"after": '{"$gt": ""}'},
                                                   "headers": a.auth}),
            (Case("history with a malformed cursor", "422"), "GET",
             f"/api/rooms/{b.user_id}/messages?after=zzz", {"headers": a.auth}),
            (Case("conversations without a token", "401"), "GET", "/api/conversations", {}),
            (Case("read position in a room one is not in", "403"), "POST",
             f"/api/conversations/{c.user_id}/read",
             {"json": {"cursor": "0" * 32}, "headers": a.auth}),
            (Case("read position with an operator object as cursor", "422"), "POST",
             f"/api/conversations/{b.user_id}/read",
             {"json": {"cursor": {"$gt": ""}}, "headers": a.auth}),
            (Case("settings with a value that is not true or false", "422"), "PUT",
             "/api/settings", {"json": {"hide_presence": "yes please"}, "headers": a.auth}),
            (Case("settings with an unknown field", "422"), "PUT", "/api/settings",
             {"json": {"is_admin": True}, "headers": a.auth}),
            (Case("history of kinds that do not exist", "422"), "GET",
             f"/api/rooms/{b.user_id}/messages?kinds=typing", {"headers": a.auth}),
            (Case("a 1024-bit RSA key upload", "422"), "PUT", "/api/keys",
             {"json": {"keys": [{"enc": "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC",
                                 "sig": "AAAA", "proof": "A" * 86}]}, "headers": a.auth}),
            (Case("a key upload without its device's proof of possession", "422"), "PUT",
             "/api/keys", {"json": {"keys": [{"enc": keys.enc_spki, "sig": keys.sig_spki}]},
                           "headers": a.auth}),
            (Case("a key upload whose proof another key signed", "422"), "PUT", "/api/keys",
             {"json": {"keys": [{**keys.public(a.user_id), "sig": other.sig_spki}]},
              "headers": a.auth}),
            *_device_list_cases(a, b, *(await _stored_list(http, base, a, keys))),
            *_prekey_cases(a, c, keys, other),
        ]
        for case, method, path, kwargs in cases:
            r = await http.request(method, base + path, **kwargs)
            assert str(r.status_code) == case.answer, (case, r.status_code, r.text[:200])
            assert r.headers["content-type"] == "application/problem+json", case
            assert r.json()["status"] == r.status_code and r.json()["detail"]
            record("test_bad_rest_requests_get_problem_json", case.name,
                   f"HTTP {case.answer} problem JSON")
        assert (await http.get(f"{base}/api/friends", headers=a.auth)).status_code == 200


async def _stored_list(http: httpx.AsyncClient, base: str, a: User,
                       keys: Any) -> tuple[Any, dict[str, Any]]:
    """a's device uploaded and a first device list stored: (identity key, that list)."""
    from client.identity import identity_spki, listed, new_identity, sign_list
    r = await http.put(f"{base}/api/keys", json={"keys": [keys.public(a.user_id)]},
                       headers=a.auth)
    assert r.status_code == 200, r.text
    identity = new_identity()
    body = {"v": 1, "user": a.user_id, "identity": identity_spki(identity), "version": 1,
            "devices": [listed(r.json()["keys"][0])], "revoked": []}
    r = await http.put(f"{base}/api/devicelist", json=sign_list(identity, body),
                       headers=a.auth)
    assert r.status_code == 200, r.text
    return identity, body


def _device_list_cases(a: User, b: User, identity: Any, body: dict[str, Any]
                       ) -> list[tuple[Case, str, str, dict[str, Any]]]:
    """PUT /api/devicelist and /api/history-shares refusals (docs/protocol.md)."""
    from client.crypto import b64u, unb64u
    from client.identity import identity_spki, new_identity, sign_list
    from contracts.envelope import P256_N
    stranger = new_identity()
    v2 = {**body, "version": 2}
    signed = sign_list(identity, v2)
    raw = unb64u(signed["sig"])
    high_s = b64u(raw[:32] + (P256_N - int.from_bytes(raw[32:], "big")).to_bytes(32, "big"))
    ghost = {**body["devices"][0], "kid": "G" * 43}
    share = {"v": 1, "user": b.user_id, "to": body["devices"][0]["kid"],
             "from": body["devices"][0]["kid"], "part": 0, "wk": "A" * 342, "iv": "A" * 16,
             "ct": "AAAA", "sig": signed["sig"]}

    def put(case: Case, path: str, upload: dict[str, Any]) -> tuple[Case, str, str,
                                                                    dict[str, Any]]:
        return case, "PUT", path, {"json": upload, "headers": a.auth}
    return [
        put(Case("a device list for another user", "403"), "/api/devicelist",
            sign_list(identity, {**v2, "user": b.user_id})),
        put(Case("a device list its identity key did not sign", "422"), "/api/devicelist",
            sign_list(stranger, v2)),
        put(Case("a device list with a high-s signature", "422"), "/api/devicelist",
            {**signed, "sig": high_s}),
        put(Case("a device list not newer than the stored one", "409"), "/api/devicelist",
            sign_list(identity, body)),
        put(Case("a device list by another identity key, without reset", "409"),
            "/api/devicelist", sign_list(stranger, {**v2, "identity": identity_spki(stranger)})),
        put(Case("a device list naming a device that uploaded no keys", "409"),
            "/api/devicelist", sign_list(identity, {**v2, "devices": [*v2["devices"], ghost]})),
        put(Case("a history share for another user", "403"), "/api/history-shares", share),
        put(Case("a history share with a malformed wrapped key", "422"),
            "/api/history-shares", {**share, "user": a.user_id, "wk": "!" * 342}),
    ]


def _prekey_cases(a: User, stranger: User, keys: Any, other: Any
                  ) -> list[tuple[Case, str, str, dict[str, Any]]]:
    """PUT and GET /api/prekeys refusals (docs/protocol.md); a's device `keys` is live."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from client.crypto import b64u
    from client.ratchet import public_raw
    from client.sessions import sign_bundle

    def x() -> X25519PrivateKey:
        return X25519PrivateKey.generate()

    bundle = sign_bundle(keys, a.user_id, x(), 1, x())

    def put(case: Case, upload: dict[str, Any]) -> tuple[Case, str, str, dict[str, Any]]:
        return case, "PUT", "/api/prekeys", {"json": upload, "headers": a.auth}
    one_time = [{"id": i, "key": b64u(public_raw(x()))} for i in range(101)]
    return [
        put(Case("a prekey bundle for another user", "403"),
            {"bundle": sign_bundle(keys, stranger.user_id, x(), 1, x())}),
        put(Case("a prekey bundle its device did not sign", "422"),
            {"bundle": {**bundle, "sig": sign_bundle(other, a.user_id, x(), 1, x())["sig"]}}),
        put(Case("a prekey bundle with a key that is not 32 bytes", "422"),
            {"bundle": {**bundle, "ik": "A" * 42}}),
        put(Case("a prekey bundle of a device that uploaded no keys", "404"),
            {"bundle": sign_bundle(other, a.user_id, x(), 1, x())}),
        put(Case("more than 100 one-time prekeys", "422"),
            {"bundle": bundle, "one_time": one_time}),
        put(Case("a one-time prekey id twice", "422"),
            {"bundle": bundle, "one_time": [one_time[0], {**one_time[1], "id": 0}]}),
        (Case("prekeys of a user who is no friend", "403"), "GET",
         f"/api/prekeys/{stranger.user_id}", {"headers": a.auth}),
    ]


# --- unfriend, block, account deletion, friend requests per day -------------------------
async def test_unfriend_block_and_deletion_refusals(gw: Gateway) -> None:
    """Unfriending a stranger, blocking oneself or nobody, asking someone one blocked,
    deleting an account without its password, a blocked user's room and send, and the
    friend request past the day's limit each get their documented answer."""
    test = "test_unfriend_block_and_deletion_refusals"
    async with httpx.AsyncClient() as http:
        a, b, c, d = [await signup(http, gw.http) for _ in range(4)]
        await befriend(http, gw.http, a, b)
        await befriend(http, gw.http, a, d)
        r = await http.post(f"{gw.http}/api/blocks", json={"username": a.username},
                            headers=d.auth)  # d blocks a: the friendship ends
        assert r.status_code == 201, r.text
        r = await http.post(f"{gw.http}/api/blocks", json={"username": c.username},
                            headers=a.auth)  # a blocks c
        assert r.status_code == 201, r.text
        cases = [
            (Case("unfriend someone who is no friend", "404"), "DELETE",
             f"/api/friends/{c.user_id}", {}),
            (Case("unfriend with an id that is not a user id", "404"), "DELETE",
             "/api/friends/not-a-user", {}),
            (Case("block oneself", "409"), "POST", "/api/blocks",
             {"json": {"username": a.username}}),
            (Case("block an unknown user", "404"), "POST", "/api/blocks",
             {"json": {"username": "nobody_by_that_name"}}),
            (Case("block with an operator object as name", "422"), "POST", "/api/blocks",
             {"json": {"username": {"$ne": ""}}}),
            (Case("unblock someone not blocked", "404"), "DELETE",
             f"/api/blocks/{b.user_id}", {}),
            (Case("friend request to a user one blocked", "409"), "POST", "/api/friends",
             {"json": {"username": c.username}}),
            (Case("account deletion without the password", "422"), "DELETE", "/api/account",
             {}),
            (Case("account deletion with a wrong password", "403"), "DELETE", "/api/account",
             {"json": {"password": "not the password at all"}}),
            (Case("account deletion with an operator object as password", "422"), "DELETE",
             "/api/account", {"json": {"password": {"$ne": ""}}}),
        ]
        for case, method, path, kwargs in cases:
            r = await http.request(method, gw.http + path, headers=a.auth, **kwargs)
            assert str(r.status_code) == case.answer, (case, r.status_code, r.text[:200])
            assert r.headers["content-type"] == "application/problem+json", case
            record(test, case.name, f"HTTP {case.answer} problem JSON")
        room = Case("room with a user who blocked you", "close 4403")
        code = await closed_with(f"{gw.ws}/ws/{d.user_id}", additional_headers=a.auth)
        assert f"close {code}" == room.answer, code
        record(test, room.name, room.answer)
        send = Case("v2: send to a user who blocked you", "error not_friends")
        async with open_device(gw, a) as sa:
            await sa.send(device_send(a, d, "blocked"))
            assert f"error {(await sa.recv_type('error'))['code']}" == send.answer
            await sa.send(device_send(a, b, "still-fine"))
            assert (await sa.recv_type("ack"))["id"] == "still-fine"
        record(test, send.name, send.answer + "; the socket stays open")
        # Every request counts, found or not: the default limit is 50 a day.
        many = Case("friend requests over DUET_FRIEND_REQUESTS_PER_DAY", "429")
        for i in range(50):
            r = await http.post(f"{gw.http}/api/friends", json={"username": f"nobody_{i}"},
                                headers=b.auth)
            assert r.status_code == 404, r.text
        r = await http.post(f"{gw.http}/api/friends", json={"username": c.username},
                            headers=b.auth)
        assert str(r.status_code) == many.answer and r.headers["Retry-After"], r.text
        assert r.json()["code"] == "rate_limited"
        record(test, many.name, f"HTTP {many.answer} problem JSON")
        # Wrong passwords count as failed logins do: DUET_LOGIN_FAILURES_PER_USER (3 here).
        guess = Case("account deletion past DUET_LOGIN_FAILURES_PER_USER wrong passwords",
                     "429")
        for _ in range(3):
            r = await http.request("DELETE", f"{gw.http}/api/account", headers=d.auth,
                                   json={"password": "still not the password"})
            assert r.status_code == 403, r.text
        r = await http.request("DELETE", f"{gw.http}/api/account", headers=d.auth,
                               json={"password": d.password})
        assert str(r.status_code) == guess.answer and r.headers["Retry-After"], r.text
        record(test, guess.name, f"HTTP {guess.answer} problem JSON")
        assert (await http.get(f"{gw.http}/api/friends", headers=a.auth)).status_code == 200


# --- sessions: logout, revocation, password change --------------------------------------
async def test_session_refusals(gw: Gateway) -> None:
    """A token naming no session or an ended one, someone else's session, a wrong or
    malformed password change and a renewal of an ended session get their documented
    answers; the user's other session keeps working."""
    test = "test_session_refusals"
    async with httpx.AsyncClient() as http:
        a, b = await signup(http, gw.http), await signup(http, gw.http)
        await befriend(http, gw.http, a, b)
        r = await http.post(f"{gw.http}/api/login",
                            json={"username": a.username, "password": a.password})
        ended = r.json()["access_token"]
        assert (await http.post(f"{gw.http}/api/logout",
                                headers={"Authorization": f"Bearer {ended}"})).status_code == 204
        b_session = jwt.decode(b.token, options={"verify_signature": False})["sid"]
        gone = {"Authorization": f"Bearer {ended}"}
        cases = [
            (Case("token naming no session", "401"), "GET", "/api/friends",
             {"headers": {"Authorization": f"Bearer {token(a)}"}}),
            (Case("token of a logged-out session on REST", "401"), "GET", "/api/friends",
             {"headers": gone}),
            (Case("renewal of a logged-out session", "401"), "POST", "/api/sessions/renew",
             {"headers": gone}),
            (Case("logout without a token", "401"), "POST", "/api/logout", {}),
            (Case("revoke another user's session", "404"), "DELETE",
             f"/api/sessions/{b_session}", {"headers": a.auth}),
            (Case("password change with a wrong current password", "403"), "POST",
             "/api/password", {"json": {"current": "not the password", "new": "long enough"},
                               "headers": a.auth}),
            (Case("password change to a password under 8 characters", "422"), "POST",
             "/api/password", {"json": {"current": a.password, "new": "short"},
                               "headers": a.auth}),
            (Case("password change with an operator object as password", "422"), "POST",
             "/api/password", {"json": {"current": {"$ne": ""}, "new": "long enough"},
                               "headers": a.auth}),
        ]
        for case, method, path, kwargs in cases:
            r = await http.request(method, gw.http + path, **kwargs)
            assert str(r.status_code) == case.answer, (case, r.status_code, r.text[:200])
            assert r.headers["content-type"] == "application/problem+json", case
            record(test, case.name, f"HTTP {case.answer} problem JSON")
        for case, url in ((Case("token of a logged-out session", "close 4401"),
                           f"{gw.ws}/ws/{b.user_id}"),
                          (Case("v2: token of a logged-out session", "close 4401"),
                           f"{gw.ws}/ws")):
            code = await closed_with(url, additional_headers=gone)
            assert f"close {code}" == case.answer, (case, code)
            record(test, case.name, case.answer)
        assert (await http.get(f"{gw.http}/api/friends", headers=a.auth)).status_code == 200


# --- abuse limits: per address and per user across gateways ------------------------------
async def test_abuse_limit_refusals(stack: Stack) -> None:
    """Logins and registrations past their per-address or per-(user, address) limits get
    429 with Retry-After; a socket past the user's limit is closed 4429; sends past the
    user's messages a minute or bytes a day get their error frame on a socket that stays
    open; the same user from another address, and another user, are not refused."""
    test = "test_abuse_limit_refusals"
    gw = stack.gateway(DUET_LOGIN_FAILURES_PER_USER="2", DUET_LOGIN_FAILURES_PER_IP="3",
                       DUET_REGISTRATIONS_PER_IP="3", DUET_MAX_SOCKETS_PER_USER="2",
                       DUET_MESSAGES_PER_MINUTE="5", DUET_BYTES_PER_DAY="20000")
    async with httpx.AsyncClient() as http:
        a, b = await signup(http, gw.http), await signup(http, gw.http)
        await befriend(http, gw.http, a, b)

        async def login(name: str, password: str, address: str) -> httpx.Response:
            return await http.post(f"{gw.http}/api/login",
                                   json={"username": name, "password": password},
                                   headers={"X-Forwarded-For": address})

        pair = Case("login after DUET_LOGIN_FAILURES_PER_USER failures for that user from "
                    "that address", "429")
        for _ in range(2):
            assert (await login(a.username, "wrong password", "203.0.113.1")).status_code == 401
        r = await login(a.username, a.password, "203.0.113.1")
        assert str(r.status_code) == pair.answer and r.headers["Retry-After"], r.text
        assert (await login(a.username, a.password, "198.51.100.1")).status_code == 200
        record(test, pair.name, f"HTTP {pair.answer} problem JSON; the user's own address "
                                "logs in")
        spray = Case("login from an address in its back-off (past DUET_LOGIN_FAILURES_PER_IP)",
                     "429")
        for i in range(4):
            assert (await login(f"nobody_{i}", "wrong password", "203.0.113.2")).status_code == 401
        r = await login(b.username, b.password, "203.0.113.2")
        assert str(r.status_code) == spray.answer and r.headers["Retry-After"] == "1", r.text
        record(test, spray.name, f"HTTP {spray.answer} problem JSON, Retry-After doubling")
        farm = Case("registration from an address in its back-off (past "
                    "DUET_REGISTRATIONS_PER_IP)", "429")
        for i in range(5):
            r = await http.post(f"{gw.http}/api/register",
                                json={"username": f"farm_{a.user_id[-8:]}_{i}",
                                      "password": "long enough pw"},
                                headers={"X-Forwarded-For": "203.0.113.3"})
        assert str(r.status_code) == farm.answer and r.headers["Retry-After"], r.text
        record(test, farm.name, f"HTTP {farm.answer} problem JSON, Retry-After doubling")

    sockets = Case("socket past DUET_MAX_SOCKETS_PER_USER", "close 4429")
    async with open_device(gw, a), open_device(gw, a):
        code = await closed_with(f"{gw.ws}/ws", additional_headers=a.auth)
        assert f"close {code}" == sockets.answer, code
        async with open_device(gw, b) as other:
            assert other.ws.close_code is None
    record(test, sockets.name, sockets.answer)

    minute = Case("v2: send past DUET_MESSAGES_PER_MINUTE", "error too_many_messages")
    day = Case("v2: send past DUET_BYTES_PER_DAY", "error too_many_bytes")
    async with contextlib.AsyncExitStack() as sockets_of_a:
        async def reopened() -> Any:
            """A socket of a's, once the gateway has counted the two closed above (a
            moment after the client saw them close; a refused attempt is not counted)."""
            try:
                return await sockets_of_a.enter_async_context(open_device(gw, a))
            except ConnectionClosed:
                return None

        sa = await eventually(reopened, 5, "a socket of a's again")
        codes = []
        for i in range(11):  # 5 a minute: refused by the 6th, or the 11th across a minute
            await sa.send(device_send(a, b, f"m{i}", i))
            frame = await sa.recv()
            while frame["type"] not in ("ack", "error"):
                frame = await sa.recv()
            codes.append(frame.get("code", "ack"))
            if frame["type"] == "error":
                break
        assert f"error {codes[-1]}" == minute.answer, codes
        record(test, minute.name, minute.answer + "; the socket stays open")
    async with open_device(gw, b) as sb:
        big = {"type": "send", "id": "big", "peer": a.user_id, "kind": "text",
               "body": envelope(b, a, 1, size=15_000)}  # 20,000 base64url characters
        await sb.send(big)
        assert (await sb.recv_type("ack"))["id"] == "big"
        await sb.send({**big, "id": "big2", "body": envelope(b, a, 2, size=15_000)})
        error = await sb.recv_type("error")
        assert f"error {error['code']}" == day.answer and error["id"] == "big2", error
        await sb.send(device_send(b, a, "small", 3))
        assert (await sb.recv_type("error"))["code"] == "too_many_bytes"  # 20,000 used up
    record(test, day.name, day.answer + "; the socket stays open")
