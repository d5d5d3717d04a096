"""Sessions: every token names one; logout, revocation, a password change, expiry and
deletion end it, its tokens are refused and its sockets closed with 4401 on every gateway;
renewal keeps a session (and its sockets) alive; the security log records it all."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import pymongo
import pytest
from support import (
    SECRETS,
    Gateway,
    Socket,
    Stack,
    User,
    befriend,
    eventually,
    open_device,
    open_socket,
    signup,
    unique_name,
)
from test_cli import PASSWORD, duet, ok
from websockets.exceptions import ConnectionClosed

from client import Client
from client.crypto import DeviceKeys
from client.errors import ApiError
from contracts.codes import NOT_AUTHENTICATED
from contracts.documents import SESSIONS

CLOSE_BOUND_S = 5.0  # issue 18: sockets of an ended session closed within this
CACHE_S = 2.0  # a DUET_SESSION_CACHE_S set above its default 0: trusted this long


@pytest.fixture(scope="module")
def gw2(stack: Stack, gw: Gateway) -> Gateway:
    """A second gateway of the same stack."""
    return stack.gateway()


async def login(http: httpx.AsyncClient, base: str, user: User,
                password: str | None = None) -> str:
    r = await http.post(f"{base}/api/login", json={"username": user.username,
                                                    "password": password or user.password})
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    SECRETS.add(token)
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sid(token: str) -> str:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return str(claims["sid"])


async def closed_within(sock: Socket, bound: float, since: float | None = None) -> float:
    """Seconds from `since` (default: now) until the server closed this socket with 4401;
    fails past `bound`."""
    start = time.monotonic() if since is None else since
    with pytest.raises(ConnectionClosed):
        while True:
            await sock.recv(timeout=max(0.01, start + bound - time.monotonic()))
    took = time.monotonic() - start
    assert sock.ws.close_code == NOT_AUTHENTICATED, sock.ws.close_code
    assert took < bound, took
    return took


async def still_open(sock: Socket) -> None:
    """The socket answers a frame (a sync), so the server has not closed it."""
    await sock.send({"type": "sync", "after": None})
    await sock.recv_type("synced", timeout=5)


async def test_logout_refuses_token_and_closes_sockets_on_two_gateways(
        gw: Gateway, gw2: Gateway) -> None:
    """After POST /api/logout the token is refused on REST at once by both gateways, and
    its v1 and v2 sockets on both gateways close with 4401 within 5 s; the user's other
    session keeps working."""
    async with httpx.AsyncClient() as http:
        a, b = await signup(http, gw.http), await signup(http, gw.http)
        await befriend(http, gw.http, a, b)
        other = await login(http, gw2.http, a)
        assert sid(other) != sid(a.token)
        async with open_socket(gw, a, b) as v1_1, open_device(gw, a) as v2_1, \
                open_socket(gw2, a, b) as v1_2, open_device(gw2, a) as v2_2, \
                open_device(gw2, a, additional_headers=bearer(other)) as kept:
            # both gateways have just seen the token live (so gw2 holds it in its cache)
            assert (await http.get(f"{gw2.http}/api/friends", headers=a.auth)).status_code == 200
            logged_out = time.monotonic()
            r = await http.post(f"{gw.http}/api/logout", headers=a.auth)
            assert r.status_code == 204, r.text
            r = await http.get(f"{gw.http}/api/friends", headers=a.auth)
            assert r.status_code == 401 and r.json()["code"] == "unauthenticated"
            names = ("gw v1", "gw v2", "gw2 v1", "gw2 v2")
            closing = [asyncio.create_task(closed_within(sock, CLOSE_BOUND_S, since=logged_out))
                       for sock in (v1_1, v2_1, v1_2, v2_2)]
            assert await _refused(http, gw2, a.token), "gw2 must refuse it at once"
            for where, took in zip(names, await asyncio.gather(*closing), strict=True):
                print(f"{where} socket closed 4401 {took:.2f} s after logout")
            await still_open(kept)
            assert (await http.get(f"{gw.http}/api/friends",
                                   headers=bearer(other))).status_code == 200
        r = await http.post(f"{gw.http}/api/logout", headers=a.auth)
        assert r.status_code == 401  # the same token cannot log out twice
        async with open_device(gw, a, ready=False) as late:
            with pytest.raises(ConnectionClosed):
                await late.recv()
            assert late.ws.close_code == NOT_AUTHENTICATED


async def test_with_a_cache_another_gateway_refuses_an_ended_session_within_it(
        gw: Gateway, stack: Stack) -> None:
    """With DUET_SESSION_CACHE_S=2 a gateway that did not end the session, and had just
    seen it live, refuses its token within those 2 s."""
    cached = stack.gateway(DUET_SESSION_CACHE_S=str(CACHE_S))
    async with httpx.AsyncClient() as http:
        a = await signup(http, gw.http)
        assert (await http.get(f"{cached.http}/api/friends", headers=a.auth)).status_code == 200
        assert (await http.post(f"{gw.http}/api/logout", headers=a.auth)).status_code == 204
        await eventually(lambda: _refused(http, cached, a.token), timeout=CACHE_S + 0.5,
                         what="the caching gateway refusing the logged-out token")


async def _refused(http: httpx.AsyncClient, gw: Gateway, token: str) -> bool:
    return (await http.get(f"{gw.http}/api/friends", headers=bearer(token))).status_code == 401


async def test_password_change_ends_every_other_session(gw: Gateway, gw2: Gateway) -> None:
    """POST /api/password keeps the caller's session, ends every other one (their sockets
    close with 4401), and only the new password logs in."""
    async with httpx.AsyncClient() as http:
        a = await signup(http, gw.http)
        second, third = await login(http, gw.http, a), await login(http, gw2.http, a)
        new = f"{a.password} changed"
        SECRETS.add(new)
        async with open_device(gw2, a, additional_headers=bearer(second)) as sock, \
                open_device(gw, a) as mine:
            r = await http.post(f"{gw.http}/api/password", headers=a.auth,
                                json={"current": a.password + "x", "new": new})
            assert r.status_code == 403 and r.json()["code"] == "forbidden", r.text
            r = await http.post(f"{gw.http}/api/password", headers=a.auth,
                                json={"current": a.password, "new": "short"})
            assert r.status_code == 422, r.text
            r = await http.post(f"{gw.http}/api/password", headers=a.auth,
                                json={"current": a.password, "new": new})
            assert r.status_code == 204, r.text
            await closed_within(sock, CLOSE_BOUND_S)
            await still_open(mine)
        for token in (second, third):
            assert await _refused(http, gw, token)
        assert (await http.get(f"{gw.http}/api/friends", headers=a.auth)).status_code == 200
        r = await http.post(f"{gw.http}/api/login",
                            json={"username": a.username, "password": a.password})
        assert r.status_code == 401
        await login(http, gw.http, a, new)


async def test_sessions_listed_revoked_one_by_one_and_everywhere(gw: Gateway) -> None:
    """GET /api/sessions lists live sessions and marks the caller's; DELETE ends one
    (404 for one not the user's); DELETE /api/sessions and ?everywhere=true end all."""
    async with httpx.AsyncClient() as http:
        a, b = await signup(http, gw.http), await signup(http, gw.http)
        second = await login(http, gw.http, a)
        r = await http.get(f"{gw.http}/api/sessions", headers=a.auth)
        assert r.status_code == 200, r.text
        listed = r.json()["sessions"]
        assert {s["id"] for s in listed} == {sid(a.token), sid(second)}
        assert [s["current"] for s in listed if s["id"] == sid(a.token)] == [True]
        assert all(s["label"].startswith("python-httpx") for s in listed)
        # Someone else's session id is not found, and stays live.
        r = await http.delete(f"{gw.http}/api/sessions/{sid(second)}", headers=b.auth)
        assert r.status_code == 404 and r.json()["code"] == "not_found"
        r = await http.delete(f"{gw.http}/api/sessions/{sid(second)}", headers=a.auth)
        assert r.status_code == 204
        assert await _refused(http, gw, second)
        r = await http.get(f"{gw.http}/api/sessions", headers=a.auth)
        assert [s["id"] for s in r.json()["sessions"]] == [sid(a.token)]
        r = await http.delete(f"{gw.http}/api/sessions/{sid(second)}", headers=a.auth)
        assert r.status_code == 404  # already ended
        third = await login(http, gw.http, a)
        r = await http.delete(f"{gw.http}/api/sessions", headers=a.auth)
        assert r.status_code == 204
        assert await _refused(http, gw, a.token) and await _refused(http, gw, third)
        fourth, fifth = await login(http, gw.http, a), await login(http, gw.http, a)
        r = await http.post(f"{gw.http}/api/logout", params={"everywhere": "true"},
                            headers=bearer(fourth))
        assert r.status_code == 204
        assert await _refused(http, gw, fourth) and await _refused(http, gw, fifth)


async def test_renewed_session_keeps_its_socket_and_an_expired_or_deleted_one_closes(
        gw: Gateway, stack: Stack, mongo: pymongo.MongoClient[dict[str, Any]]) -> None:
    """POST /api/sessions/renew gives a new token for the same session and moves its expiry;
    a session past expires_at, or whose document is deleted (account deletion), closes
    its sockets with 4401 within 5 s and refuses its tokens."""
    sessions = mongo[stack.db_name][SESSIONS]
    async with httpx.AsyncClient() as http:
        a = await signup(http, gw.http)
        before = sessions.find_one({"_id": sid(a.token)})
        assert before is not None and before["user"] == a.user_id and not before["revoked"]
        async with open_device(gw, a) as sock:
            r = await http.post(f"{gw.http}/api/sessions/renew", headers=a.auth)
            assert r.status_code == 200, r.text
            renewed = r.json()["access_token"]
            SECRETS.add(renewed)
            assert sid(renewed) == sid(a.token)
            after = sessions.find_one({"_id": sid(a.token)})
            assert after is not None and after["expires_at"] > before["expires_at"]
            assert (await http.get(f"{gw.http}/api/friends",
                                   headers=bearer(renewed))).status_code == 200
            await still_open(sock)
            # Expired: the session's time ran out without a renewal.
            sessions.update_one({"_id": sid(a.token)},
                                {"$set": {"expires_at": int(time.time() * 1000) - 1}})
            await closed_within(sock, CLOSE_BOUND_S)
        assert await _refused(http, gw, renewed)
        r = await http.post(f"{gw.http}/api/sessions/renew", headers=bearer(renewed))
        assert r.status_code == 401
        token = await login(http, gw.http, a)
        async with open_device(gw, a, additional_headers=bearer(token)) as sock:
            sessions.delete_one({"_id": sid(token)})
            await closed_within(sock, CLOSE_BOUND_S)
        assert await _refused(http, gw, token)


async def test_security_log_records_logins_revocations_and_keys_without_secrets(
        gw: Gateway) -> None:
    """duet.security has one line per login, failed and throttled login, revocation,
    password change and device key publish/revoke, each with the user, the session or key
    and the address, and none holds a password or token; no line names a v1 peer."""
    device = DeviceKeys.generate()
    async with httpx.AsyncClient() as http:
        a, b = await signup(http, gw.http), await signup(http, gw.http)
        await befriend(http, gw.http, a, b)
        async with open_socket(gw, a, b):
            pass
        r = await http.post(f"{gw.http}/api/login",
                            json={"username": a.username, "password": a.password + "x"})
        assert r.status_code == 401
        victim = await signup(http, gw.http)
        for _ in range(60):  # fail until throttled (the limit is a setting)
            r = await http.post(f"{gw.http}/api/login", json={
                "username": victim.username, "password": victim.password + "y"})
            if r.status_code == 429:
                break
        assert r.status_code == 429, r.text
        second = await login(http, gw.http, a)
        r = await http.delete(f"{gw.http}/api/sessions/{sid(second)}", headers=a.auth)
        assert r.status_code == 204
        r = await http.put(f"{gw.http}/api/keys", json={"keys": [device.public(a.user_id)]},
                           headers=a.auth)
        assert r.status_code == 200, r.text
        r = await http.delete(f"{gw.http}/api/keys/{device.kid}", headers=a.auth)
        assert r.status_code == 204, r.text
        new = f"{a.password} new"
        SECRETS.add(new)
        r = await http.post(f"{gw.http}/api/password", headers=a.auth,
                            json={"current": a.password, "new": new})
        assert r.status_code == 204
        await http.post(f"{gw.http}/api/logout", headers=a.auth)

    def security_lines() -> list[str]:
        lines = [orjson.loads(x) for x in gw.log().splitlines() if x.startswith("{")]
        return [x["msg"] for x in lines if x["logger"] == "duet.security"]

    me = a.user_id
    wanted = [f"login user={me} session={sid(a.token)} address=127.0.0.1",
              f"login failed user={me} address=127.0.0.1",
              "login throttled address=127.0.0.1",
              f"session revoked user={me} session={sid(second)} by={sid(a.token)}",
              f"device keys published user={me} session={sid(a.token)} kids={device.kid}",
              f"device key revoked user={me} session={sid(a.token)} kid={device.kid}",
              f"password changed user={me} session={sid(a.token)}",
              f"logged out user={me} session={sid(a.token)}"]
    lines = await eventually(
        lambda: (found := security_lines()) and all(
            any(w in line for line in found) for w in wanted) and found,
        what="every security event logged", timeout=5)
    secrets = [a.password, new, a.token, second, victim.password]
    assert not [line for line in lines if any(s in line for s in secrets)]
    log = gw.log()
    assert b.user_id not in log.replace(f"user {b.user_id}", "").replace(
        f"user={b.user_id}", ""), "a log line names the peer of a v1 socket"
    assert 'WebSocket /ws/-' in log  # uvicorn's line, without the peer


async def test_sdk_and_cli_list_revoke_renew_change_password_and_log_out(
        gw: Gateway, tmp_path: Path) -> None:
    """The SDK and `duet` list sessions (marking their own), revoke one, renew, change the
    password (ending the others) and log out, here and everywhere."""
    name, home, new = unique_name("cli"), tmp_path / "cli", "a new password 42"
    SECRETS.add(new)
    ok(duet(gw, home, "--json", "register", name))
    sdk = Client(gw.http, home=tmp_path / "sdk", passphrase="sdk passphrase")
    try:
        await sdk.login(name, PASSWORD)
        mine = [x for x in await sdk.sessions() if x["current"]]
        assert mine and mine[0]["label"] == "duet Python client"
        listed = ok(duet(gw, home, "--json", "sessions")).lines()
        assert len(listed) == 2 and mine and mine[0]["id"] in {x["id"] for x in listed}
        [cli_session] = [x["id"] for x in listed if x["current"]]
        assert cli_session != mine[0]["id"]
        await sdk.renew()
        assert sid(sdk.api.token or "") == mine[0]["id"]
        assert len(await sdk.sessions()) == 2  # the renewed token works
        ok(duet(gw, home, "--json", "sessions", "revoke", mine[0]["id"]))
        with pytest.raises(ApiError) as refused:
            await sdk.sessions()
        assert refused.value.status == 401
        await sdk.login(name, PASSWORD)
        run = duet(gw, home, "--json", "--password-stdin", "password",
                   stdin=f"{PASSWORD}\n{new}\n")
        assert ok(run).lines() == [{"type": "password_changed"}]
        with pytest.raises(ApiError):
            await sdk.sessions()  # every other session ended
        assert [x["id"] for x in ok(duet(gw, home, "--json", "sessions")).lines()] == [
            cli_session]
        ok(duet(gw, home, "--json", "logout"))
        gone = duet(gw, home, "sessions")
        assert gone.code == 1 and "no account on this device" in gone.err, str(gone)
        other = Client(gw.http, home=tmp_path / "other", passphrase="sdk passphrase")
        try:
            await sdk.login(name, new)
            await other.login(name, new)
            await sdk.logout(everywhere=True)
            with pytest.raises(ApiError):
                await other.sessions()
        finally:
            await other.close()
    finally:
        await sdk.close()


async def test_sdk_renews_its_session_while_its_device_socket_is_open(
        gw: Gateway, tmp_path: Path) -> None:
    """With its token near its end, an SDK client holding the device socket renews the
    session by itself: a new token for the same session, kept in its profile."""
    c = Client(gw.http, home=tmp_path / "renew", passphrase="sdk passphrase")
    try:
        await c.register(unique_name("renew"), PASSWORD)
        first = c.api.token or ""
        SECRETS.add(first)
        c.profile.save_account(token_expires=int(time.time()) + 1, token_ttl=5)
        session = await c._device_session()
        renewed = await eventually(
            lambda: (t := c.profile.account().get("token")) != first and t,
            timeout=10, what="the SDK renewing its token")
        SECRETS.add(renewed)
        assert sid(renewed) == sid(first) and c.api.token == renewed
        assert session is c._session  # the same device session, not a new login
        assert len(await c.sessions()) == 1
    finally:
        await c.close()
